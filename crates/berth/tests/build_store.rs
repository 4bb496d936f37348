//! `berth build` and the store: the build cache keeps its layers through `rmi` and
//! `image prune -a` (only `builder prune` drops them), a killed build leaves nothing behind
//! for the next command, and deep images (many RUN steps) still mount.
//! Run as root (RUN steps are containers).

#[path = "common/build.rs"]
mod buildutil;
mod common;
#[path = "common/net.rs"]
mod net;

use std::path::Path;

use buildutil::{build_ok, context, run};
use common::*;

fn layer_count(env: &TestEnv) -> usize {
    std::fs::read_dir(env.root.join("layers")).unwrap().count()
}

#[test]
fn build_cache_layers_survive_rmi_and_image_prune() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let dir = context(
        &env,
        "keep",
        &[
            (
                "Dockerfile",
                "FROM busybox:local\n\
                 COPY app.txt /app.txt\n\
                 RUN cat /app.txt > /copy && echo RAN-$((40+2))\n\
                 CMD [\"cat\", \"/copy\"]\n",
            ),
            ("app.txt", "kept\n"),
        ],
    );
    let first = build_ok(&env, &dir, &["-t", "keep:1"]);
    assert!(first.contains("RAN-42"), "{first}");
    let layers = layer_count(&env);
    // rmi: the image goes, the layers its build cached stay.
    let out = env.ok(&["rmi", "keep:1"]);
    assert!(out.contains("Deleted: sha256:"), "{out}");
    assert_eq!(layer_count(&env), layers, "rmi removed cached layers");
    // The rebuild takes every step from the cache and the image runs.
    let second = build_ok(&env, &dir, &["-t", "keep:2"]);
    assert!(!second.contains("RAN-42"), "{second}");
    assert_eq!(second.matches("CACHED").count(), 2, "{second}");
    assert_eq!(run(&env, "keep:2", &[]), "kept\n");
    // image prune -a (Docker: the build cache is not an image) keeps them too.
    env.ok(&["rmi", "keep:2"]);
    env.ok(&["image", "prune", "-a", "-f"]);
    assert_eq!(
        layer_count(&env),
        layers - 1,
        "only the base image's layer goes"
    );
    env.busybox_image("busybox:local");
    let third = build_ok(&env, &dir, &["-t", "keep:3"]);
    assert!(!third.contains("RAN-42"), "{third}");
    assert_eq!(run(&env, "keep:3", &[]), "kept\n");
    // builder prune clears the cache; the image keeps its layers and runs.
    let out = env.ok(&["builder", "prune", "-a", "-f"]);
    assert!(out.contains("Deleted build cache objects: 2"), "{out}");
    assert_eq!(run(&env, "keep:3", &[]), "kept\n");
    let fourth = build_ok(&env, &dir, &["-t", "keep:4"]);
    assert!(fourth.contains("RAN-42"), "{fourth}");
    // Nothing leaks: with the cache and the images gone, no layer is left.
    env.ok(&["rmi", "keep:3", "keep:4"]);
    env.ok(&["builder", "prune", "-a", "-f"]);
    env.ok(&["image", "prune", "-a", "-f"]);
    assert_eq!(layer_count(&env), 0);
}

/// Links named `<prefix>v…` (a container's host-side veth).
fn veths(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| n.strip_prefix(prefix).is_some_and(|r| r.starts_with('v')))
                .collect()
        })
        .unwrap_or_default()
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let needle = format!(" {}/", dir.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_string)
        .collect()
}

fn processes_with(arg: &str) -> Vec<String> {
    let out = std::process::Command::new("ps")
        .args(["-eo", "pid,args"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(arg) && !l.contains("ps -eo"))
        .map(str::to_string)
        .collect()
}

#[test]
fn killed_build_leaves_nothing_for_the_next_command() {
    let env = TestEnv::new();
    let net = net::NetEnv::new(&env);
    env.busybox_image("busybox:local");
    // A distinctive duration to find the step's process among others' tests.
    let nap = format!("{}", 3000 + std::process::id() % 900);
    let dir = context(
        &env,
        "killed",
        &[(
            "Dockerfile",
            &format!("FROM busybox:local\nRUN echo STEP-$((1+1))-STARTED && sleep {nap}\n"),
        )],
    );
    let mut child = env
        .cmd(&[
            "build",
            "--progress",
            "plain",
            "-t",
            "killed:1",
            dir.to_str().unwrap(),
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Whatever happens below, the build does not outlive the test.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stderr = child.stderr.take().unwrap();
    let mut child = KillOnDrop(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let started = l.contains("STEP-2-STARTED");
            let _ = tx.send(l);
            if started {
                break;
            }
        }
    });
    let mut seen = String::new();
    loop {
        match rx.recv_timeout(std::time::Duration::from_secs(120)) {
            Ok(l) => {
                seen.push_str(&l);
                seen.push('\n');
                if l.contains("STEP-2-STARTED") {
                    break;
                }
            }
            Err(_) => panic!("the RUN step never started:\n{seen}"),
        }
    }
    // The RUN step is running: its overlay, container and network exist. kill -9 the build.
    assert!(
        !mounts_under(&env.root).is_empty(),
        "no step mount while running"
    );
    assert!(!veths(&net.prefix).is_empty(), "no veth while running");
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    assert!(!processes_with(&format!("sleep {nap}")).is_empty());
    // The next command (any one) recovers: no mount, no netns, no veth, no step process.
    env.ok(&["images"]);
    assert_eq!(mounts_under(&env.root), Vec::<String>::new());
    let netns: Vec<_> = std::fs::read_dir(env.root.join("run/netns"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(netns.is_empty(), "{netns:?}");
    let mut left = veths(&net.prefix);
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        left = veths(&net.prefix);
    }
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(
        processes_with(&format!("sleep {nap}")),
        Vec::<String>::new()
    );
    let steps: Vec<_> = std::fs::read_dir(env.root.join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".step"))
        .collect();
    assert!(steps.is_empty(), "{steps:?}");
    // The store stays usable: the same build now runs to the end.
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox:local\nRUN echo again > /again\n",
    )
    .unwrap();
    let out = env.berth(&[
        "build",
        "--progress",
        "plain",
        "-t",
        "killed:2",
        dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(run(&env, "killed:2", &["cat", "/again"]), "again\n");
    assert!(veths(&net.prefix).is_empty());
}

#[test]
fn sixty_run_steps_build_and_run() {
    // 61 layers: their paths no longer fit in one overlay option string (one page), so both
    // the build steps and the container mount them one by one (lowerdir+).
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let mut df = String::from("FROM busybox:local\n");
    for i in 1..=60 {
        df.push_str(&format!("RUN echo {i} > /f{i}\n"));
    }
    let dir = context(&env, "deep", &[("Dockerfile", &df)]);
    build_ok(&env, &dir, &["-t", "deep"]);
    let out = env.ok(&["image", "inspect", "deep"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["RootFS"]["Layers"].as_array().unwrap().len(), 61);
    assert_eq!(
        run(&env, "deep", &["cat", "/f1", "/f33", "/f60"]),
        "1\n33\n60\n"
    );
    // A step on top of all of them (61 lowers in a build step).
    std::fs::write(
        dir.join("Dockerfile"),
        format!("{df}RUN cat /f1 /f60 > /both\n"),
    )
    .unwrap();
    build_ok(&env, &dir, &["-t", "deeper"]);
    assert_eq!(run(&env, "deeper", &["cat", "/both"]), "1\n60\n");
}
