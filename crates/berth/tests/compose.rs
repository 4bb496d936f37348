//! `berth compose` end to end (root): up/ps/exec/down of busybox services on a project
//! network, name resolution by service name, --scale, recreating only what changed, and
//! malformed or unsupported projects creating nothing.

mod common;
#[path = "common/compose.rs"]
mod composeutil;
#[path = "common/net.rs"]
mod net;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::TestEnv;
use composeutil::{compose, compose_ok, project};
use net::{is_root, load_image, NetEnv};

const IMG: &str = "composetest/bb:1";

macro_rules! setup {
    ($env:ident, $net:ident) => {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let $env = TestEnv::new();
        let $net = NetEnv::new(&$env);
        if !load_image(&$env, IMG, &[]) {
            return;
        }
    };
}

fn id_of(env: &TestEnv, name: &str) -> String {
    env.ok(&["inspect", "--format", "{{.Id}}", name])
        .trim()
        .to_string()
}

/// Fetch `url` from inside `service`'s first container (retrying while the server starts).
fn fetch(env: &TestEnv, dir: &Path, service: &str, url: &str) -> String {
    let mut last = String::new();
    for _ in 0..50 {
        let out = compose(env, dir, &["exec", "-T", service, "wget", "-qO-", url]);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("cannot fetch {url} from {service}: {last}");
}

const WEB_APP: &str = r#"
services:
  web:
    image: composetest/bb:1
    command: ["httpd", "-f", "-p", "80", "-h", "/etc"]
    stop_grace_period: 1s
  app:
    image: composetest/bb:1
    command: ["sleep", "1000"]
    stop_grace_period: 1s
    environment:
      MODE: ${MODE:-one}
    depends_on: [web]
"#;

#[test]
fn up_ps_exec_down_and_recreate_only_what_changed() {
    setup!(env, net);
    let dir = project(&env, "shop", WEB_APP);
    let out = compose(&env, &dir, &["up", "-d"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Network shop_default  Created"), "{err}");
    let ps = compose_ok(&env, &dir, &["ps"]);
    assert!(
        ps.contains("shop-web-1") && ps.contains("shop-app-1"),
        "{ps}"
    );
    assert_eq!(
        compose_ok(&env, &dir, &["ps", "--services"]).trim(),
        "app\nweb"
    );
    // Go templates over docker compose's fields; STATUS as docker compose v2 shows it.
    let st = compose_ok(&env, &dir, &["ps", "--format", "{{.Service}} {{.Status}}"]);
    let st: Vec<&str> = st.lines().collect();
    assert_eq!(st.len(), 2, "{st:?}");
    assert!(st.iter().all(|l| l.contains(" Up ")), "{st:?}");
    // images: docker compose v2's columns, one row per container, by name.
    let im = compose_ok(&env, &dir, &["images"]);
    let rows: Vec<&str> = im.lines().collect();
    assert_eq!(
        rows[0].split_whitespace().collect::<Vec<_>>(),
        [
            "CONTAINER",
            "REPOSITORY",
            "TAG",
            "PLATFORM",
            "IMAGE",
            "ID",
            "SIZE",
            "CREATED"
        ],
        "{im}"
    );
    assert!(
        rows[1].starts_with("shop-app-1 ") && rows[2].starts_with("shop-web-1 "),
        "{im}"
    );
    assert!(
        rows[1].contains(" composetest/bb ") && rows[1].contains(" linux/"),
        "{im}"
    );

    // Compose's labels, as Docker writes them.
    let labels: serde_json::Value = serde_json::from_str(&env.ok(&[
        "inspect",
        "--format",
        "{{json .Config.Labels}}",
        "shop-app-1",
    ]))
    .unwrap();
    assert_eq!(labels["com.docker.compose.project"], "shop");
    assert_eq!(labels["com.docker.compose.service"], "app");
    assert_eq!(labels["com.docker.compose.container-number"], "1");
    assert_eq!(labels["com.docker.compose.oneoff"], "False");
    assert_eq!(
        labels["com.docker.compose.depends_on"],
        "web:service_started:false"
    );
    assert_eq!(
        labels["com.docker.compose.project.working_dir"],
        dir.to_str().unwrap()
    );
    assert!(
        labels["com.docker.compose.config-hash"]
            .as_str()
            .unwrap()
            .len()
            == 64
    );

    // The network resolves services by name.
    let web_host = env.ok(&["inspect", "--format", "{{.Config.Hostname}}", "shop-web-1"]);
    assert_eq!(
        fetch(&env, &dir, "app", "http://web/hostname").trim(),
        web_host.trim()
    );
    assert_eq!(
        compose_ok(&env, &dir, &["exec", "-T", "app", "sh", "-c", "echo $MODE"]).trim(),
        "one"
    );

    // Nothing changed: nothing recreated.
    let (web1, app1) = (id_of(&env, "shop-web-1"), id_of(&env, "shop-app-1"));
    let out = compose(&env, &dir, &["up", "-d"]);
    assert!(out.status.success());
    assert_eq!(
        (id_of(&env, "shop-web-1"), id_of(&env, "shop-app-1")),
        (web1.clone(), app1.clone())
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("Recreated"));

    // A changed environment recreates only that service.
    let mut c = env.cmd(&["compose", "up", "-d"]);
    let out = c
        .current_dir(&dir)
        .env("MODE", "two")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(id_of(&env, "shop-web-1"), web1);
    assert_ne!(id_of(&env, "shop-app-1"), app1);
    let mut c = env.cmd(&["compose", "exec", "-T", "app", "sh", "-c", "echo $MODE"]);
    let out = c
        .current_dir(&dir)
        .env("MODE", "two")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "two");

    // Logs with prefixes; stop/start; ls.
    compose_ok(&env, &dir, &["stop", "app"]);
    let ps = compose_ok(&env, &dir, &["ps", "-a"]);
    assert!(
        ps.lines()
            .any(|l| l.contains("shop-app-1") && l.contains("Exited (")),
        "{ps}"
    );
    compose_ok(&env, &dir, &["start"]);
    assert!(compose_ok(&env, &dir, &["ls"]).contains("shop"));

    let out = compose(&env, &dir, &["down"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    assert!(!env.ok(&["network", "ls"]).contains("shop_default"));
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

#[test]
fn scale_gives_replicas_reachable_by_name() {
    setup!(env, net);
    let dir = project(&env, "scaled", WEB_APP);
    compose_ok(&env, &dir, &["up", "-d", "--scale", "web=3"]);
    let ps = compose_ok(&env, &dir, &["ps", "-q", "web"]);
    assert_eq!(ps.lines().count(), 3, "{ps}");
    for n in 1..=3 {
        let name = format!("scaled-web-{n}");
        let host = env.ok(&["inspect", "--format", "{{.Config.Hostname}}", &name]);
        assert_eq!(
            fetch(&env, &dir, "app", &format!("http://{name}/hostname")).trim(),
            host.trim()
        );
    }
    // The service name answers too (one of the replicas).
    assert!(!fetch(&env, &dir, "app", "http://web/hostname")
        .trim()
        .is_empty());
    // Scaling down removes the extra replicas, keeps the first.
    let first = id_of(&env, "scaled-web-1");
    compose_ok(&env, &dir, &["up", "-d", "--scale", "web=1"]);
    assert_eq!(
        compose_ok(&env, &dir, &["ps", "-q", "web"]).lines().count(),
        1
    );
    assert_eq!(id_of(&env, "scaled-web-1"), first);
    compose_ok(&env, &dir, &["down"]);
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

#[test]
fn malformed_or_unsupported_projects_create_nothing() {
    setup!(env, net);
    let before = env.ok(&["network", "ls"]);
    let cases = [
        (
            "badport",
            "services:\n  web:\n    image: composetest/bb:1\n    ports:\n      - \"80:80\"\n      - \"80:x\"\n",
            "compose.yaml:6: services.web.ports[1]: invalid port \"80:x\"",
        ),
        (
            "badvar",
            "services:\n  web:\n    image: composetest/bb:1\n    command: [\"echo\", \"${NEEDED:?please set NEEDED}\"]\n",
            "compose.yaml:4: services.web.command[1]: required variable NEEDED is missing a value: please set NEEDED",
        ),
        (
            "badyaml",
            "services:\n  web:\n    image: composetest/bb:1\n  command: [unclosed\n",
            "compose.yaml:",
        ),
        (
            "nodep",
            "services:\n  web:\n    image: composetest/bb:1\n    depends_on: [db]\n",
            "depends on undefined service \"db\"",
        ),
        (
            "noimage",
            "services:\n  a:\n    image: composetest/bb:1\n    command: [\"true\"]\n  web:\n    image: nosuch.invalid/none:1\n    pull_policy: never\n",
            "not found and pull_policy is never",
        ),
    ];
    for (name, yaml, want) in cases {
        let dir = project(&env, name, yaml);
        let out = compose(&env, &dir, &["up", "-d"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
        assert_eq!(env.ok(&["ps", "-aq"]).trim(), "", "{name}");
        assert_eq!(env.ok(&["network", "ls"]), before, "{name}");
    }
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

#[test]
fn run_oneoff_and_config_from_the_cli() {
    setup!(env, net);
    let dir = project(&env, "oneoff", WEB_APP);
    let out = compose(
        &env,
        &dir,
        &[
            "run",
            "--rm",
            "--no-deps",
            "-e",
            "X=42",
            "app",
            "sh",
            "-c",
            "echo x=$X mode=$MODE",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "x=42 mode=one");
    let out = compose(
        &env,
        &dir,
        &["run", "--rm", "--no-deps", "app", "sh", "-c", "exit 3"],
    );
    assert_eq!(out.status.code(), Some(3));
    // -e VAR takes berth's value (left out when unset); --entrypoint, -w and -u override.
    let out = env
        .cmd(&["compose"])
        .args([
            "run",
            "--rm",
            "--no-deps",
            "-e",
            "FROMHOST",
            "-e",
            "NOTSET",
            "-w",
            "/tmp",
            "-u",
            "1000",
            "--entrypoint",
            "sh -c",
            "app",
        ])
        .arg("echo [$FROMHOST][${NOTSET-unset}] $(pwd) $(id -u)")
        .env("FROMHOST", "hv")
        .env_remove("NOTSET")
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "[hv][unset] /tmp 1000",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg: serde_json::Value =
        serde_json::from_str(&compose_ok(&env, &dir, &["config", "--format", "json"])).unwrap();
    assert_eq!(cfg["name"], "oneoff");
    assert_eq!(cfg["services"]["app"]["environment"]["MODE"], "one");
    // Dependencies first (app depends on web), as docker compose lists them.
    assert_eq!(
        compose_ok(&env, &dir, &["config", "--services"]),
        "web\napp\n"
    );
    // -o FILE writes the model there instead.
    let out = dir.join("model.json");
    let o = out.to_string_lossy().into_owned();
    assert_eq!(
        compose_ok(&env, &dir, &["config", "--format", "json", "-o", &o]),
        ""
    );
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(written, cfg);
    compose_ok(&env, &dir, &["down"]);
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

/// A service in a profile runs when named on the command line (`run job`, `up job`), as with
/// docker compose; attached `up job` follows only job (not its running dependency) and
/// returns when job exits.
#[test]
fn a_named_profile_service_runs_and_up_attaches_to_it_alone() {
    setup!(env, net);
    let yaml = format!(
        "services:\n  web:\n    image: {IMG}\n    command: [sleep, '1000']\n    stop_grace_period: 1s\n  job:\n    image: {IMG}\n    command: [sh, -c, 'echo job-$${{X:-none}}; exit 3']\n    depends_on: [web]\n    profiles: [batch]\n"
    );
    let dir = project(&env, "prof", &yaml);
    let out = compose(&env, &dir, &["run", "--rm", "-e", "X=1", "job"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "job-1");
    let mut child = env
        .cmd(&["compose", "up", "job"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    let finished = child.try_wait().unwrap().is_some();
    if !finished {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(finished, "up job did not return when job exited: {err}");
    assert!(err.contains("Attaching to job-1\n"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("job-none"));
    assert_eq!(
        env.ok(&["inspect", "--format", "{{.State.Status}}", "prof-web-1"])
            .trim(),
        "running"
    );
    compose_ok(&env, &dir, &["--profile", "batch", "down", "-t", "0"]);
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

#[test]
fn attached_up_prefixes_output_and_ctrl_c_stops() {
    setup!(env, net);
    let dir = project(
        &env,
        "attached",
        "services:\n  a:\n    image: composetest/bb:1\n    command: [\"sh\", \"-c\", \"echo hello from a; sleep 1000\"]\n    stop_grace_period: 1s\n  longer:\n    image: composetest/bb:1\n    command: [\"sh\", \"-c\", \"echo hello from longer; sleep 1000\"]\n    stop_grace_period: 1s\n",
    );
    let mut child = env
        .cmd(&["compose", "up"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut lines = Vec::new();
        for l in std::io::BufReader::new(stdout).lines() {
            let l = l.unwrap();
            lines.push(l);
        }
        lines
    });
    // Wait until both containers run, then Ctrl-C.
    for _ in 0..100 {
        let ps = env.ok(&["ps", "--format", "json"]);
        if ps.matches("\"running\"").count() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT);
    }
    let status = child.wait().unwrap();
    let lines = reader.join().unwrap();
    assert!(status.success(), "{status:?} {lines:?}");
    assert!(
        lines.contains(&"a-1      | hello from a".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"longer-1 | hello from longer".to_string()),
        "{lines:?}"
    );
    // Stopped, not removed.
    let ps = compose_ok(&env, &dir, &["ps", "-a"]);
    assert_eq!(
        ps.lines().filter(|l| l.contains("Exited (")).count(),
        2,
        "{ps}"
    );
    // logs: aligned prefixes, --tail.
    let logs = compose_ok(&env, &dir, &["logs", "--no-color"]);
    assert!(logs.contains("a-1      | hello from a\n"), "{logs}");
    let logs = compose_ok(&env, &dir, &["logs", "--tail", "1", "longer"]);
    assert_eq!(logs, "longer-1 | hello from longer\n");
    compose_ok(&env, &dir, &["down"]);
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

#[test]
fn depends_on_completed_successfully_waits() {
    setup!(env, net);
    let dir = project(
        &env,
        "ordered",
        "services:\n  init:\n    image: composetest/bb:1\n    command: [\"sh\", \"-c\", \"sleep 1; echo done > /out/marker\"]\n    volumes: [\"./out:/out\"]\n  app:\n    image: composetest/bb:1\n    command: [\"sh\", \"-c\", \"cat /out/marker; sleep 1000\"]\n    stop_grace_period: 1s\n    volumes: [\"./out:/out\"]\n    depends_on:\n      init:\n        condition: service_completed_successfully\n",
    );
    compose_ok(&env, &dir, &["up", "-d"]);
    // app started only after init wrote the marker.
    let mut logs = String::new();
    for _ in 0..50 {
        logs = compose_ok(&env, &dir, &["logs", "app"]);
        if !logs.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(logs, "app-1 | done\n");
    compose_ok(&env, &dir, &["down"]);
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

/// `nslookup NAME` inside `service`'s container succeeds within 20 s; else the last output.
fn resolves(env: &TestEnv, dir: &Path, service: &str, name: &str) -> Result<(), String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while std::time::Instant::now() < deadline {
        let out = compose(env, dir, &["exec", "-T", service, "nslookup", name]);
        if out.status.success() {
            return Ok(());
        }
        last = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(last)
}

/// The pid of the DNS server holding `network`'s lock in this store (`PID NETWORK_ID`).
fn dns_server_pid(env: &TestEnv, network: &str) -> i32 {
    let lock = env.root.join(format!("run/dns/{network}.lock"));
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    let pid: i32 = text
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{}: no server pid in {text:?}", lock.display()));
    assert!(
        is_dns_server(pid),
        "pid {pid} of {} is not a DNS server",
        lock.display()
    );
    pid
}

/// Whether `pid` is a live `berth __dns` process (a zombie's command line is empty).
fn is_dns_server(pid: i32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&cmdline).contains("__dns")
}

/// Resumes (and, if it still runs, kills) a stopped DNS server, also when the test fails.
struct Frozen(i32);

impl Drop for Frozen {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, Signal};
        let pid = nix::unistd::Pid::from_raw(self.0);
        if is_dns_server(self.0) {
            let _ = kill(pid, Signal::SIGKILL);
        }
        let _ = kill(pid, Signal::SIGCONT);
    }
}

/// `down` then `up` at once: the network is removed and created again under its name, and
/// its DNS server must be the new network's. The old bug: the removed network's server kept
/// the name's lock until its next once-a-second check, `up` took the held lock for a running
/// server, and the old server then exited, leaving the new network without one. Stopping
/// the old server (SIGSTOP) across `down` and `up` makes that window certain: resumed only
/// after `up` returned (or after 2.5 s of `up`, less than the 3 s `up` waits for a server
/// of the old network), it must not be what the new network relies on.
#[test]
fn down_and_up_at_once_still_resolve_service_names() {
    use nix::sys::signal::{kill, Signal};
    setup!(env, net);
    // One container: nothing else joins the network after it (a later join would start a
    // server and hide the fault).
    let dir = project(
        &env,
        "again",
        "services:\n  solo:\n    image: composetest/bb:1\n    command: [\"sleep\", \"1000\"]\n",
    );
    compose_ok(&env, &dir, &["up", "-d"]);
    resolves(&env, &dir, "solo", "solo").expect("first up");
    for round in 0..2 {
        let old = Frozen(dns_server_pid(&env, "again_default"));
        kill(nix::unistd::Pid::from_raw(old.0), Signal::SIGSTOP).unwrap();
        compose_ok(&env, &dir, &["down", "-t", "0"]);
        let mut up = env.cmd(&["compose", "up", "-d"]);
        let mut up = up
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while up.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_millis(2500) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = kill(nix::unistd::Pid::from_raw(old.0), Signal::SIGCONT);
        let out = up.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "round {round}: up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The old server goes (at once when `down` told it to, else at its next check):
        // until then it would still answer on the new bridge and hide the fault.
        let gone = (0..500).any(|_| {
            !is_dns_server(old.0) || {
                std::thread::sleep(Duration::from_millis(20));
                false
            }
        });
        assert!(
            gone,
            "round {round}: the removed network's DNS server still runs"
        );
        if let Err(last) = resolves(&env, &dir, "solo", "solo") {
            panic!("round {round}: no name resolution after down and up: {last}");
        }
        drop(old);
    }
    compose_ok(&env, &dir, &["down", "-t", "0"]);
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

/// `down` stops dependents before their dependencies: `db` gets its stop signal only after
/// `app` (which takes a while to exit) has gone, also now that a level waits for its init
/// processes rather than for their monitors' records.
#[test]
fn down_stops_dependents_first() {
    setup!(env, net);
    let shared = env.path("order");
    std::fs::create_dir_all(&shared).unwrap();
    let yaml = format!(
        r#"
services:
  db:
    image: composetest/bb:1
    command: ["sh", "-c", "trap 'echo db >> /s/order; exit 0' TERM; touch /s/db-ready; while :; do sleep 0.1; done"]
    volumes: ["{s}:/s"]
  app:
    image: composetest/bb:1
    command: ["sh", "-c", "trap 'sleep 0.5; echo app >> /s/order; exit 0' TERM; touch /s/app-ready; while :; do sleep 0.1; done"]
    volumes: ["{s}:/s"]
    depends_on: [db]
"#,
        s = shared.display()
    );
    let dir = project(&env, "order", &yaml);
    compose_ok(&env, &dir, &["up", "-d"]);
    // Both shells have set their traps (bounded wait).
    let ready = (0..200).any(|_| {
        ["db-ready", "app-ready"]
            .iter()
            .all(|f| shared.join(f).exists())
            || {
                std::thread::sleep(Duration::from_millis(50));
                false
            }
    });
    assert!(ready, "the services did not start");
    compose_ok(&env, &dir, &["down"]);
    let order = std::fs::read_to_string(shared.join("order")).unwrap_or_default();
    assert_eq!(order, "app\ndb\n");
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

#[test]
fn attached_up_again_profiles_by_name_and_no_deps() {
    setup!(env, net);
    let dir = project(
        &env,
        "again",
        "services:\n  once:\n    image: composetest/bb:1\n    command: [\"sh\", \"-c\", \"echo line-$$RANDOM\"]\n  bad:\n    image: composetest/bb:1\n    command: [\"sh\", \"-c\", \"exit 3\"]\n    profiles: [setup]\n  app:\n    image: composetest/bb:1\n    command: [\"sleep\", \"1000\"]\n    stop_grace_period: 1s\n    profiles: [setup]\n    depends_on:\n      bad:\n        condition: service_completed_successfully\n",
    );
    // Attached twice: the second run shows only the new output, not the first run's again.
    let first = compose_ok(&env, &dir, &["up", "--abort-on-container-exit", "once"]);
    assert_eq!(first.lines().count(), 1, "{first}");
    let second = compose_ok(&env, &dir, &["up", "--abort-on-container-exit", "once"]);
    assert_eq!(second.lines().count(), 1, "{second}");
    assert_ne!(first, second);
    // A service named on the command line runs although its profile is not enabled; with
    // --no-deps its failing dependency is neither started nor waited for.
    compose_ok(&env, &dir, &["up", "-d", "--no-deps", "app"]);
    let ps = compose_ok(
        &env,
        &dir,
        &["ps", "-a", "--format", "{{.Service}} {{.State}}"],
    );
    assert_eq!(ps, "app running\nonce exited\n");
    // Its container is not an orphan of the profile-less project.
    let out = compose(&env, &dir, &["up", "-d", "--remove-orphans", "once"]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("Orphan"));
    let ps = compose_ok(&env, &dir, &["ps", "-a", "-q"]);
    assert_eq!(ps.lines().count(), 2, "{ps}");
    // Without a compose file, -p NAME finds the project by its containers' labels.
    let empty = env.path("nofile");
    std::fs::create_dir_all(&empty).unwrap();
    let ps = compose_ok(&env, &empty, &["-p", "again", "ps", "-a", "--services"]);
    assert_eq!(ps, "app\nonce\n");
    assert!(!compose(&env, &empty, &["-p", "again", "up", "-d"])
        .status
        .success());
    compose_ok(&env, &empty, &["-p", "again", "down"]);
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}
