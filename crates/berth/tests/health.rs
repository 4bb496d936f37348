//! Health checks: Docker's states and schedule, `ps`/`inspect` output (root integration
//! tests).

mod common;

use std::time::{Duration, Instant};

use common::*;

const NONE: &str = "--network=none";

fn wait_until(mut f: impl FnMut() -> bool, secs: u64) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn health(env: &TestEnv, name: &str) -> serde_json::Value {
    let o = env.ok(&["inspect", "--format", "{{json .State.Health}}", name]);
    serde_json::from_str(o.trim()).unwrap()
}

fn status(env: &TestEnv, name: &str) -> String {
    health(env, name)["Status"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn starting_then_healthy_then_unhealthy() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    // Failures inside the start period do not count; /tmp/ok appears after 2 s.
    let id = env.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        NONE,
        "--health-cmd",
        "echo probe-output; test -f /tmp/ok",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        "--health-start-period",
        "60s",
        "--health-start-interval",
        "500ms",
        "bb",
        "sh",
        "-c",
        "sleep 2; touch /tmp/ok; exec sleep 1000",
    ]);
    let id = id.trim();
    let ps = env.ok(&["ps"]);
    assert!(ps.contains("(health: starting)"), "{ps}");
    assert_eq!(status(&env, "web"), "starting");
    assert!(
        wait_until(|| status(&env, "web") == "healthy", 30),
        "{}",
        health(&env, "web")
    );
    let ps = env.ok(&["ps"]);
    assert!(ps.contains("(healthy)"), "{ps}");
    assert_eq!(
        env.ok(&["ps", "-q", "--no-trunc", "--filter", "health=healthy"])
            .trim(),
        id
    );
    assert_eq!(env.ok(&["ps", "-q", "--filter", "health=unhealthy"]), "");
    let h = health(&env, "web");
    assert_eq!(h["FailingStreak"], 0);
    let log = h["Log"].as_array().unwrap();
    assert!(!log.is_empty() && log.len() <= 5);
    let last = log.last().unwrap();
    assert_eq!(last["ExitCode"], 0);
    assert_eq!(last["Output"], "probe-output\n");

    // The probe starts failing: unhealthy after 2 failures in a row.
    env.ok(&["exec", "web", "rm", "/tmp/ok"]);
    assert!(
        wait_until(|| status(&env, "web") == "unhealthy", 30),
        "{}",
        health(&env, "web")
    );
    let ps = env.ok(&["ps"]);
    assert!(ps.contains("(unhealthy)"), "{ps}");
    assert_eq!(
        env.ok(&["ps", "-q", "--no-trunc", "--filter", "health=unhealthy"])
            .trim(),
        id
    );
    let h = health(&env, "web");
    assert!(h["FailingStreak"].as_i64().unwrap() >= 2, "{h}");
    // Never more than 5 results are kept.
    assert!(wait_until(
        || health(&env, "web")["Log"].as_array().unwrap().len() == 5,
        30
    ));
    let cfg = env.ok(&["inspect", "--format", "{{json .Config.Healthcheck}}", "web"]);
    assert!(cfg.contains("\"Interval\":1000000000"), "{cfg}");
    env.ok(&["rm", "-f", "web"]);
}

#[test]
fn image_healthcheck_timeout_and_opt_out() {
    let env = TestEnv::new();
    let l = TestLayer::new(&busybox_rootfs(), Comp::None);
    let cfg = serde_json::json!({
        "architecture": host_arch(), "os": "linux",
        "config": {"Cmd": ["sleep", "1000"], "Env": [PATH_ENV],
                   "Healthcheck": {"Test": ["CMD", "true"], "Interval": 500_000_000u64, "Retries": 1}},
        "rootfs": {"type": "layers", "diff_ids": [l.diff_id.clone()]}
    });
    let p = env.path("hc.tar");
    write_docker_archive(&p, &serde_json::to_vec(&cfg).unwrap(), &[l], &["hc"]);
    env.ok(&["load", "-i", p.to_str().unwrap()]);

    env.ok(&["run", "-d", "--name", "img", NONE, "hc"]);
    assert!(wait_until(|| status(&env, "img") == "healthy", 30));

    // A probe that outlives its timeout is killed and counts as a failure.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "slow",
        NONE,
        "--health-cmd",
        "sleep 30",
        "--health-timeout",
        "500ms",
        "hc",
    ]);
    assert!(
        wait_until(|| status(&env, "slow") == "unhealthy", 30),
        "{}",
        health(&env, "slow")
    );
    let h = health(&env, "slow");
    let last = h["Log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["ExitCode"], -1);
    assert!(
        last["Output"]
            .as_str()
            .unwrap()
            .contains("exceeded timeout"),
        "{last}"
    );

    // --no-healthcheck: no health at all, shown as none.
    env.ok(&["run", "-d", "--name", "off", NONE, "--no-healthcheck", "hc"]);
    assert_eq!(
        env.ok(&["inspect", "--format", "{{json .State.Health}}", "off"])
            .trim(),
        "null"
    );
    let ps = env.ok(&["ps", "--filter", "health=none", "--format", "json"]);
    assert!(ps.contains("\"off\""), "{ps}");
    assert!(!ps.contains("\"img\""), "{ps}");
    let (code, msg) = env.fails(&[
        "run",
        "--rm",
        NONE,
        "--no-healthcheck",
        "--health-cmd",
        "true",
        "hc",
    ]);
    assert_eq!(code, 125);
    assert!(msg.contains("--no-healthcheck"), "{msg}");
    let (_, msg) = env.fails(&["run", "--rm", NONE, "--health-interval", "soon", "hc"]);
    assert!(msg.contains("--health-interval"), "{msg}");
    for n in ["img", "slow", "off"] {
        env.ok(&["rm", "-f", n]);
    }
}
