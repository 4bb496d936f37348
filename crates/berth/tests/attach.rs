//! Attaching and detaching (root): `run -it`, `start -ai`, `exec -it` and `attach` driven
//! through a real pseudo-terminal, Docker's Ctrl-P Ctrl-Q (and `--detach-keys`, config.json's
//! `detachKeys`), `attach --no-stdin`, `--sig-proxy=false`.

mod common;
#[path = "common/pty.rs"]
mod pty;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use pty::PtyChild;

const NONE: &str = "--network=none";
const DETACH: &[u8] = b"\x10\x11";

fn on_pty(env: &TestEnv, args: &[&str]) -> PtyChild {
    PtyChild::spawn(env.cmd(args))
}

fn running(env: &TestEnv, name: &str) -> bool {
    env.ok(&["inspect", "-f", "{{.State.Running}}", name])
        .trim()
        == "true"
}

#[test]
fn detach_from_run_it_then_attach_again() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let mut t = on_pty(&env, &["run", "-it", NONE, "--name", "dt", "bb", "sh"]);
    assert!(t.expect("# "), "no prompt: {:?}", t.output());
    t.send(b"echo one-$((40+2))\n");
    assert!(t.expect("one-42"), "{:?}", t.output());
    // Raw mode on the client's terminal: each line ends in one \r\n, never \r\r\n.
    assert!(!t.output().contains("\r\r\n"), "{:?}", t.output());
    t.send(DETACH);
    // Docker's `run`: a detach ends the client with status 0 and no message.
    assert_eq!(t.wait(), Some(0), "{:?}", t.output());
    assert!(!t.output().contains("escape"), "{:?}", t.output());
    assert!(running(&env, "dt"));

    // `attach`: the same shell, its state kept (a variable set before).
    let mut a = on_pty(&env, &["attach", "dt"]);
    a.send(b"X=kept; echo two-$X\n");
    assert!(a.expect("two-kept"), "{:?}", a.output());
    a.send(DETACH);
    // Docker's `attach`: "read escape sequence", status 1.
    assert_eq!(a.wait(), Some(1), "{:?}", a.output());
    assert!(
        a.output().contains("read escape sequence"),
        "{:?}",
        a.output()
    );
    assert!(running(&env, "dt"));

    // Other keys, and the container's exit code at the end.
    let mut a = on_pty(&env, &["attach", "--detach-keys", "ctrl-x,x", "dt"]);
    a.send(b"echo three-$X\n");
    assert!(a.expect("three-kept"), "{:?}", a.output());
    a.send(b"exit 3\n");
    assert_eq!(a.wait(), Some(3), "{:?}", a.output());
    assert!(!running(&env, "dt"));
    env.ok(&["rm", "dt"]);
}

#[test]
fn detach_keys_from_flag_and_config_file() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    // Invalid keys are refused before anything is created.
    let o = env.berth(&["run", "-it", "--detach-keys", "ctrl-P", NONE, "bb", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("invalid detach keys (ctrl-P)"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(env.ok(&["ps", "-aq"]), "");

    // config.json's detachKeys, when no flag is given.
    let cfg = env.path("docker-config");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("config.json"), r#"{"detachKeys": "ctrl-a,d"}"#).unwrap();
    let mut cmd = env.cmd(&["run", "-it", NONE, "--name", "dk", "bb", "sh"]);
    cmd.env("DOCKER_CONFIG", &cfg);
    let mut t = PtyChild::spawn(cmd);
    assert!(t.expect("# "), "{:?}", t.output());
    t.send(b"\x01d");
    assert_eq!(t.wait(), Some(0), "{:?}", t.output());
    assert!(running(&env, "dk"));

    // start -ai attaches to the running container (Docker's `start -a` of a running one).
    let mut s = on_pty(&env, &["start", "-ai", "--detach-keys", "ctrl-b", "dk"]);
    s.send(b"echo via-start\n");
    assert!(s.expect("via-start"), "{:?}", s.output());
    s.send(b"\x02");
    assert_eq!(s.wait(), Some(0), "{:?}", s.output());
    assert!(running(&env, "dk"));
    env.ok(&["rm", "-f", "dk"]);

    // start -ai of a created container with a terminal, detached at once.
    env.ok(&["create", "-it", NONE, "--name", "st", "bb", "sh"]);
    let mut s = on_pty(&env, &["start", "-ai", "st"]);
    assert!(s.expect("# "), "{:?}", s.output());
    s.send(DETACH);
    assert_eq!(s.wait(), Some(0), "{:?}", s.output());
    assert!(running(&env, "st"));
    env.ok(&["rm", "-f", "st"]);
}

#[test]
fn detach_from_exec_keeps_the_process() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    env.ok(&["run", "-d", NONE, "--name", "ex", "bb", "sleep", "1000"]);
    let mut t = on_pty(&env, &["exec", "-it", "ex", "sh"]);
    assert!(t.expect("# "), "{:?}", t.output());
    t.send(b"echo $$ > /tmp/execpid; echo written-$((6*7))\n");
    assert!(t.expect("written-42"), "{:?}", t.output());
    t.send(DETACH);
    assert_eq!(t.wait(), Some(1), "{:?}", t.output());
    assert!(
        t.output().contains("read escape sequence"),
        "{:?}",
        t.output()
    );
    // The exec'd shell lives on (its terminal is kept open).
    let pid = env.ok(&["exec", "ex", "cat", "/tmp/execpid"]);
    let o = env.berth(&["exec", "ex", "kill", "-0", pid.trim()]);
    assert!(o.status.success(), "exec'd shell gone after detach");
    env.ok(&["rm", "-f", "ex"]);
}

#[test]
fn attach_without_stdin_and_without_signal_forwarding() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    env.ok(&[
        "run",
        "-di",
        NONE,
        "--name",
        "ns",
        "bb",
        "sh",
        "-c",
        "while read l; do echo got-$l; done",
    ]);
    // A: output only; what is typed there never reaches the container.
    let mut a = on_pty(&env, &["attach", "--no-stdin", "--sig-proxy=false", "ns"]);
    a.send(b"typed-in-a\n");
    // B: with stdin (no terminal: plain pipes). Its input ending does not end it (the
    // container keeps its stdin): it is stopped with a signal it does not forward.
    let mut b = env
        .cmd(&["attach", "--sig-proxy=false", "ns"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A follows the output from when it attached: B sends until A has seen a line.
    let mut input = b.stdin.take().unwrap();
    let mut seen = false;
    for _ in 0..100 {
        use std::io::Write;
        input.write_all(b"from-b\n").unwrap();
        std::thread::sleep(Duration::from_millis(100));
        if a.output().contains("got-from-b") {
            seen = true;
            break;
        }
    }
    drop(input);
    assert!(seen, "{:?}", a.output());
    assert!(!a.output().contains("got-typed-in-a"), "{:?}", a.output());
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &b.id().to_string()])
        .status();
    assert!(!b.wait().unwrap().success());
    // --sig-proxy=false: SIGTERM ends the client, not the container.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &a.pid().to_string()])
        .status();
    assert_eq!(a.wait(), Some(128 + 15), "{:?}", a.output());
    assert!(running(&env, "ns"));
    env.ok(&["rm", "-f", "ns"]);
}

#[test]
fn run_sig_proxy_false_does_not_forward_signals() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    // The container exits 9 on SIGINT/SIGTERM (PID 1 ignores signals it has no handler for).
    let script = "trap 'exit 9' INT TERM; echo ready; while :; do sleep 0.1; done";
    let mut child = env
        .cmd(&[
            "run",
            "--sig-proxy=false",
            NONE,
            "--name",
            "sp",
            "bb",
            "sh",
            "-c",
            script,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(
        || String::from_utf8_lossy(&env.berth(&["logs", "sp"]).stdout).contains("ready"),
        60
    ));
    for sig in ["-INT", "-TERM"] {
        if child.try_wait().unwrap().is_none() {
            let _ = std::process::Command::new("kill")
                .args([sig, &child.id().to_string()])
                .status();
        }
    }
    let st = child.wait().unwrap();
    assert!(!st.success());
    // Anything forwarded would have been sent before the client ended: the container has
    // had its signals (none) and keeps running.
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(50));
        assert!(running(&env, "sp"), "the container got the client's signal");
    }
    // With the default (--sig-proxy=true) the same signal stops it.
    let mut child = env
        .cmd(&["run", NONE, "--name", "sp2", "bb", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(
        || String::from_utf8_lossy(&env.berth(&["logs", "sp2"]).stdout).contains("ready"),
        60
    ));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert_eq!(child.wait().unwrap().code(), Some(9));
    env.ok(&["rm", "-f", "sp"]);
}

fn wait_until(mut f: impl FnMut() -> bool, secs: u64) -> bool {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Docker's CLI refuses a terminal session whose input is not a terminal: `run -it`,
/// `exec -it` and `start -ai` of a TTY container with a pipe or file on stdin fail with "the
/// input device is not a TTY" and status 1, before anything is created; `-t` alone, `-i`
/// alone and `-d -it` are fine.
#[test]
fn terminal_sessions_need_a_terminal_on_stdin() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let refused = |args: &[&str]| {
        let o = env.berth_stdin(args, b"echo piped\n");
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("the input device is not a TTY"),
            "{args:?}: {err}"
        );
    };
    refused(&["run", "-it", NONE, "--name", "notty", "bb", "sh"]);
    refused(&["run", "-i", "-t", "--rm", NONE, "bb", "sh"]);
    assert_eq!(env.ok(&["ps", "-aq"]), "", "nothing was created");
    // -t without -i, -i without -t, and -a stdout with -it do not read a terminal.
    let o = env.berth_stdin(&["run", "--rm", "-t", NONE, "bb", "echo", "tty-only"], b"");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = env.berth_stdin(&["run", "--rm", "-i", NONE, "bb", "sh"], b"echo piped\n");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "piped\n");
    let o = env.berth_stdin(
        &[
            "run", "--rm", "-it", "-a", "stdout", NONE, "bb", "echo", "out",
        ],
        b"",
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Detached, the container keeps its terminal; exec -it into it is refused, exec -i is not.
    env.ok(&["run", "-d", "-it", NONE, "--name", "bgtty", "bb", "sh"]);
    refused(&["exec", "-it", "bgtty", "sh"]);
    let o = env.berth_stdin(&["exec", "-i", "bgtty", "sh"], b"echo via-exec\n");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "via-exec\n");
    env.ok(&["create", "-it", NONE, "--name", "sttty", "bb", "sh"]);
    refused(&["start", "-ai", "sttty"]);
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.State.Status}}", "sttty"])
            .trim(),
        "created"
    );
    env.ok(&["rm", "-f", "bgtty", "sttty"]);
}
