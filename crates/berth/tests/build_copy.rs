//! `berth build`: COPY/ADD `--link` (a layer made and cached independently of the earlier
//! layers) and COPY `--parents` (source parent directories kept, `/./` pivot). Run as root
//! (RUN steps are containers).

#[path = "common/build.rs"]
mod buildutil;
mod common;

use std::collections::BTreeSet;

use buildutil::{build, build_ok, context, run};
use common::*;
use serde_json::Value;

fn layers(env: &TestEnv, name: &str) -> Vec<String> {
    let out = env.ok(&["image", "inspect", name]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0]["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

/// Whether the step whose title contains `needle` was answered from the cache.
fn step_cached(progress: &str, needle: &str) -> bool {
    let step = progress
        .lines()
        .find(|l| l.contains(needle) && l.contains('['))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no step {needle:?} in:\n{progress}"))
        .to_string();
    progress
        .lines()
        .any(|l| l == format!("{step} CACHED").as_str())
}

const LINKED: &str = "FROM busybox:local\n\
     WORKDIR /w\n\
     RUN echo STEP-one > /v.txt\n\
     COPY --link app.txt /opt/app/\n\
     COPY --link --chown=1000:1001 data/ /data/\n\
     COPY --link one.txt /etc/one\n\
     ADD --link <<EOF rel/\n\
     heredoc\n\
     EOF\n\
     RUN cat /opt/app/app.txt /v.txt /etc/one > /out.txt\n";

const PROBE: &str = "cat /out.txt /w/rel/EOF; \
     stat -c '%n %u:%g %a' /data /data/d.txt /data/sub /data/sub/e.txt /opt/app/app.txt /etc/one; \
     test -s /etc/passwd && echo passwd-kept; ls /etc | wc -l";

#[test]
fn copy_link_runs_the_same_and_is_reused_after_an_earlier_change() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let files = [
        ("app.txt", "app\n"),
        ("data/d.txt", "d\n"),
        ("data/sub/e.txt", "e\n"),
        ("one.txt", "one\n"),
    ];
    let mut with = files.to_vec();
    with.push(("Dockerfile", LINKED));
    let dir = context(&env, "link", &with);
    let mut without = files.to_vec();
    let plain = LINKED.replace(" --link", "");
    without.push(("Dockerfile", &plain));
    let pdir = context(&env, "nolink", &without);

    let first = build_ok(&env, &dir, &["-t", "linked:1"]);
    assert!(!step_cached(&first, "COPY --link app.txt"), "{first}");
    build_ok(&env, &pdir, &["-t", "plain:1"]);
    // The result runs the same as without --link.
    let probe = ["busybox", "sh", "-c", PROBE];
    let got = run(&env, "linked:1", &probe);
    assert_eq!(got, run(&env, "plain:1", &probe));
    assert!(got.starts_with("app\nSTEP-one\none\nheredoc\n"), "{got}");
    assert!(got.contains("/data/sub/e.txt 1000:1001"), "{got}");
    assert!(got.contains("passwd-kept"), "{got}");

    // Changing the RUN before them: the linked layers come from the cache, same digests.
    let changed = LINKED.replace("STEP-one", "STEP-two");
    std::fs::write(dir.join("Dockerfile"), &changed).unwrap();
    let second = build_ok(&env, &dir, &["-t", "linked:2"]);
    for step in [
        "COPY --link app.txt",
        "COPY --link --chown=1000:1001 data/",
        "COPY --link one.txt",
        "ADD --link <<EOF",
    ] {
        assert!(step_cached(&second, step), "{step} rebuilt:\n{second}");
    }
    let (l1, l2) = (layers(&env, "linked:1"), layers(&env, "linked:2"));
    let base = layers(&env, "busybox:local").len();
    assert_eq!(l1.len(), l2.len());
    assert_eq!(l1[base], l2[base], "WORKDIR /w comes before the change");
    assert_ne!(l1[base + 1], l2[base + 1], "the changed RUN's layer");
    // Three linked COPYs and the linked ADD.
    assert_eq!(l1[base + 2..base + 6], l2[base + 2..base + 6]);
    assert_ne!(l1[base + 6], l2[base + 6], "the last RUN reads /v.txt");
    let got = run(&env, "linked:2", &probe);
    assert!(got.starts_with("app\nSTEP-two\none\nheredoc\n"), "{got}");

    // A changed linked source is rebuilt and the miss says which file.
    std::fs::write(dir.join("data/sub/e.txt"), "E\n").unwrap();
    let third = build_ok(&env, &dir, &["-t", "linked:3"]);
    assert!(step_cached(&third, "COPY --link app.txt"), "{third}");
    assert!(
        !step_cached(&third, "COPY --link --chown=1000:1001 data/"),
        "{third}"
    );
    assert!(third.contains("data/sub/e.txt"), "{third}");

    // Names need the earlier layers' /etc/passwd, which a linked copy does not read.
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox:local\nCOPY --link --chown=nobody app.txt /x/\n",
    )
    .unwrap();
    let out = build(&env, &dir, &["-t", "linked:bad"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("Dockerfile:2:") && err.contains("numeric"),
        "{err}"
    );
}

#[test]
fn copy_parents_keeps_source_directories() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let dir = context(
        &env,
        "parents",
        &[
            (
                "Dockerfile",
                "FROM busybox:local AS b\n\
                 RUN mkdir -p /out/bin && echo app > /out/bin/app\n\
                 FROM busybox:local\n\
                 COPY ./x/a.txt ./y/a.txt /no_parents/\n\
                 COPY --parents ./x/a.txt ./y/a.txt /parents/\n\
                 COPY --parents ./x/./y/*.txt /pivot/\n\
                 COPY --parents src/lib /tree\n\
                 COPY --parents --from=b /out/./bin/app /usr/local/\n\
                 COPY --parents --link --from=b /out/bin/app /linked/\n",
            ),
            ("x/a.txt", "xa\n"),
            ("y/a.txt", "ya\n"),
            ("x/y/b.txt", "b\n"),
            ("x/y/c.txt", "c\n"),
            ("x/y/d.md", "d\n"),
            ("src/lib/m.txt", "m\n"),
            ("src/lib/deep/n.txt", "n\n"),
        ],
    );
    build_ok(&env, &dir, &["-t", "parents"]);
    let found: BTreeSet<String> = run(
        &env,
        "parents",
        &[
            "busybox",
            "find",
            "/no_parents",
            "/parents",
            "/pivot",
            "/tree",
            "/usr/local/bin",
            "/linked",
            "-type",
            "f",
        ],
    )
    .lines()
    .map(str::to_string)
    .collect();
    let want: BTreeSet<String> = [
        "/no_parents/a.txt",
        "/parents/x/a.txt",
        "/parents/y/a.txt",
        "/pivot/y/b.txt",
        "/pivot/y/c.txt",
        "/tree/src/lib/m.txt",
        "/tree/src/lib/deep/n.txt",
        "/usr/local/bin/app",
        "/linked/out/bin/app",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    assert_eq!(found, want);
    assert_eq!(
        run(
            &env,
            "parents",
            &["busybox", "cat", "/parents/y/a.txt", "/usr/local/bin/app"]
        ),
        "ya\napp\n"
    );
    // COPY only, as in BuildKit.
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox:local\nADD --parents x/a.txt /p/\n",
    )
    .unwrap();
    let out = build(&env, &dir, &["-t", "parents:bad"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("unknown flag --parents"), "{err}");
}

#[test]
fn an_image_listing_one_layer_twice_builds_and_runs() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    // The second linked COPY is the first one's cache entry: the same layer twice. RUN steps
    // that change no file (the runtime's /etc/hosts mount point aside) add no layer.
    let dir = context(
        &env,
        "twice",
        &[
            (
                "Dockerfile",
                "FROM busybox:local\n\
                 COPY --link a.txt /x/\n\
                 RUN true\n\
                 COPY --link a.txt /x/\n\
                 RUN cat /x/a.txt > /y.txt\n",
            ),
            ("a.txt", "twice\n"),
        ],
    );
    let out = build_ok(&env, &dir, &["-t", "twice"]);
    assert!(step_cached(&out, "[stage-0 4/5] COPY --link"), "{out}");
    let base = layers(&env, "busybox:local").len();
    let l = layers(&env, "twice");
    assert_eq!(l.len(), base + 3, "{l:?}");
    assert_eq!(l[base], l[base + 1]);
    assert_eq!(run(&env, "twice", &["busybox", "cat", "/y.txt"]), "twice\n");
    // And as the base of another build.
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM twice\nRUN cat /y.txt /x/a.txt > /z.txt\n",
    )
    .unwrap();
    build_ok(&env, &dir, &["-t", "twice:child"]);
    assert_eq!(
        run(&env, "twice:child", &["busybox", "cat", "/z.txt"]),
        "twice\ntwice\n"
    );
}

#[test]
fn add_unpack_checksum_rules_chmod_and_dockerfile_dockerignore() {
    use std::io::{Read, Write};
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let mut t = TarBuilder::new();
    t.dir("pkg", 0o755)
        .file("pkg/inside.txt", 0o644, b"from-tar\n");
    let tar = t.finish();
    let dir = context(
        &env,
        "unpack",
        &[("keep.txt", "keep\n"), ("secret.txt", "secret\n")],
    );
    std::fs::write(dir.join("bundle.tar"), &tar).unwrap();
    // Dockerfile.dockerignore next to the Dockerfile wins over the context's .dockerignore.
    std::fs::write(dir.join(".dockerignore"), "keep.txt\n").unwrap();
    std::fs::write(dir.join("app.Dockerfile.dockerignore"), "secret.txt\n").unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let body = gz.finish().unwrap();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(&body);
    });
    let df = dir.join("app.Dockerfile");
    std::fs::write(
        &df,
        format!(
            "FROM busybox:local\n\
             ADD --unpack=false bundle.tar /raw/\n\
             ADD bundle.tar /ex/\n\
             ADD --unpack=true http://127.0.0.1:{port}/b.tar.gz /url/\n\
             COPY --chmod=750 keep.txt /k/keep.txt\n\
             COPY . /ctx/\n\
             VOLUME /data\n\
             MAINTAINER someone\n"
        ),
    )
    .unwrap();
    build_ok(&env, &dir, &["-f", df.to_str().unwrap(), "-t", "unpack"]);
    let _ = server.join();
    let got = run(
        &env,
        "unpack",
        &[
            "busybox",
            "sh",
            "-c",
            "test -f /raw/bundle.tar && echo raw-file; cat /ex/pkg/inside.txt /url/pkg/inside.txt; \
             busybox stat -c %a /k/keep.txt; busybox ls /ctx | busybox grep -v Dockerfile",
        ],
    );
    assert_eq!(
        got,
        "raw-file\nfrom-tar\nfrom-tar\n750\nbundle.tar\nkeep.txt\n"
    );
    let out = env.ok(&["image", "inspect", "unpack"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v[0]["Config"]["Volumes"]["/data"].is_object(), "{out}");
    assert_eq!(v[0]["Author"], "someone");
    // --checksum is for one downloaded source only.
    std::fs::write(
        &df,
        format!(
            "FROM busybox:local\nADD --checksum=sha256:{} keep.txt /x\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    let out = build(
        &env,
        &dir,
        &["-f", df.to_str().unwrap(), "-t", "unpack:bad"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("app.Dockerfile:2:") && err.contains("--checksum"),
        "{err}"
    );
}
