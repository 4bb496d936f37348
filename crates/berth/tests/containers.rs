//! Container lifecycle, isolation, limits and crash recovery (root integration tests).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const NONE: &str = "--network=none";

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An image whose config sets Entrypoint, Cmd, Env, WorkingDir and User.
fn configured_image(env: &TestEnv, name: &str) {
    let base = busybox_rootfs();
    let l = TestLayer::new(&base, Comp::Gzip);
    let mut t = TarBuilder::new();
    t.dir("www", 0o755)
        .file("www/index.html", 0o644, b"hello from berth\n");
    let extra = t.finish();
    let l2 = TestLayer::new(&extra, Comp::None);
    let cfg = serde_json::json!({
        "architecture": host_arch(), "os": "linux",
        "config": {
            "Entrypoint": ["/bin/echo", "ep"],
            "Cmd": ["default"],
            "Env": [PATH_ENV, "FOO=bar"],
            "WorkingDir": "/www",
            "User": "app",
            "ExposedPorts": {"80/tcp": {}}
        },
        "rootfs": {"type": "layers", "diff_ids": [l.diff_id.clone(), l2.diff_id.clone()]}
    });
    let p = env.path("configured.tar");
    write_docker_archive(&p, &serde_json::to_vec(&cfg).unwrap(), &[l, l2], &[name]);
    env.ok(&["load", "-i", p.to_str().unwrap()]);
}

fn wait_until(mut f: impl FnMut() -> bool, secs: u64) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn run_prints_output_and_returns_exit_codes() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let o = env.berth(&["run", "--rm", NONE, "bb", "echo", "hello"]);
    assert_eq!(out(&o), "hello\n", "stderr: {}", err(&o));
    assert!(o.status.success());
    // --rm removed it.
    assert_eq!(env.ok(&["ps", "-aq"]), "");

    let o = env.berth(&[
        "run",
        "--rm",
        NONE,
        "bb",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(out(&o), "out\n");
    assert_eq!(err(&o), "err\n");

    let (code, msg) = env.fails(&["run", "--rm", NONE, "bb", "nosuchcmd"]);
    assert_eq!(code, 127, "{msg}");
    assert!(msg.contains("executable file not found"), "{msg}");
    assert_eq!(msg.lines().count(), 1, "{msg}");

    let (code, msg) = env.fails(&["run", "--rm", NONE, "bb", "/etc/passwd"]);
    assert_eq!(code, 126, "{msg}");

    let (code, msg) = env.fails(&["run", "--rm", NONE, "nosuchimage"]);
    assert_eq!(code, 125, "{msg}");
    assert!(msg.contains("nosuchimage"), "{msg}");

    let (code, msg) = env.fails(&["run", "--rm", NONE, "Bad:Ref:x", "true"]);
    assert_eq!(code, 125, "{msg}");

    let (code, msg) = env.fails(&["run", "--rm", NONE, "--memory", "lots", "bb", "true"]);
    assert_eq!(code, 125, "{msg}");
    assert!(msg.contains("invalid size"), "{msg}");
    let (code, msg) = env.fails(&["run", "--rm", NONE, "--restart", "sometimes", "bb", "true"]);
    assert_eq!(code, 125, "{msg}");
    // Failed runs with --rm leave nothing behind.
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

#[test]
fn image_config_is_applied_and_overridden() {
    let env = TestEnv::new();
    configured_image(&env, "cfg");
    assert_eq!(env.ok(&["run", "--rm", NONE, "cfg"]), "ep default\n");
    assert_eq!(env.ok(&["run", "--rm", NONE, "cfg", "x", "y"]), "ep x y\n");
    let s = env.ok(&[
        "run",
        "--rm",
        NONE,
        "--entrypoint",
        "/bin/sh",
        "cfg",
        "-c",
        "pwd; id -u; echo $FOO",
    ]);
    assert_eq!(s, "/www\n1000\nbar\n");
    let s = env.ok(&[
        "run",
        "--rm",
        NONE,
        "--entrypoint",
        "sh",
        "-w",
        "/tmp",
        "-u",
        "0:0",
        "-e",
        "FOO=baz",
        "-e",
        "NEW=1",
        "cfg",
        "-c",
        "pwd; id -u; id -g; echo $FOO $NEW",
    ]);
    assert_eq!(s, "/tmp\n0\n0\nbaz 1\n");
    let envfile = env.path("env.list");
    std::fs::write(&envfile, "# comment\nA=1\nB=two words\n").unwrap();
    let s = env.ok(&[
        "run",
        "--rm",
        NONE,
        "--env-file",
        envfile.to_str().unwrap(),
        "--entrypoint",
        "sh",
        "cfg",
        "-c",
        "echo $A-$B",
    ]);
    assert_eq!(s, "1-two words\n");
    let s = env.ok(&[
        "run",
        "--rm",
        NONE,
        "-h",
        "myhost",
        "--entrypoint",
        "hostname",
        "cfg",
    ]);
    assert_eq!(s, "myhost\n");
    let (code, msg) = env.fails(&["run", "--rm", NONE, "-u", "nobody-here", "cfg"]);
    assert_eq!(code, 125);
    assert!(msg.contains("unable to find user"), "{msg}");
}

#[test]
fn detached_lifecycle() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let id = env.ok(&[
        "run",
        "-d",
        NONE,
        "--name",
        "web",
        "bb",
        "sh",
        "-c",
        "echo started; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64);
    let ps = env.ok(&["ps"]);
    assert!(ps.contains("web") && ps.contains(&id[..12]), "{ps}");
    assert_eq!(env.ok(&["ps", "-q"]).trim(), &id[..12]);
    // One JSON object per line, as Docker prints them.
    let ps = env.ok(&["ps", "--format", "json"]);
    let js: serde_json::Value = serde_json::from_str(ps.lines().next().unwrap()).unwrap();
    assert_eq!(js["State"], "running");
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.State.Running}}", "web"])
            .trim(),
        "true"
    );
    assert!(wait_until(|| env.ok(&["logs", "web"]) == "started\n", 5));
    // exec: output, exit code, env, user, workdir
    assert_eq!(env.ok(&["exec", "web", "echo", "hi"]), "hi\n");
    let o = env.berth(&["exec", "web", "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(
        env.ok(&[
            "exec",
            "-e",
            "X=1",
            "-u",
            "1000",
            "-w",
            "/tmp",
            "web",
            "sh",
            "-c",
            "echo $X $(id -u) $(pwd)"
        ]),
        "1 1000 /tmp\n"
    );
    let o = env.berth_stdin(&["exec", "-i", "web", "cat"], b"piped\n");
    assert_eq!(out(&o), "piped\n");
    let (code, _) = env.fails(&["exec", "web", "nosuchcmd"]);
    assert_eq!(code, 127);
    // A second run with the same name is refused.
    let (code, msg) = env.fails(&["run", "-d", NONE, "--name", "web", "bb", "true"]);
    assert_eq!(code, 125);
    assert!(msg.contains("already in use"), "{msg}");
    // stop runs the trap; exit code 0
    env.ok(&["stop", "web"]);
    assert!(env.ok(&["logs", "web"]).contains("bye"));
    assert_eq!(
        env.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "web"
        ])
        .trim(),
        "exited 0"
    );
    assert_eq!(env.ok(&["ps", "-q"]), "");
    assert!(env.ok(&["ps", "-a"]).contains("Exited (0)"));
    let (code, _) = env.fails(&["exec", "web", "true"]);
    assert_eq!(code, 125);
    // start again, restart, kill
    env.ok(&["start", "web"]);
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.State.Status}}", "web"])
            .trim(),
        "running"
    );
    env.ok(&["restart", "-t", "1", "web"]);
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.State.Status}}", "web"])
            .trim(),
        "running"
    );
    env.ok(&["kill", "-s", "KILL", "web"]);
    assert_eq!(env.ok(&["wait", "web"]).trim(), "137");
    let (code, msg) = env.fails(&["kill", "web"]);
    assert_eq!(code, 1, "{msg}");
    // rm of a running container needs -f
    env.ok(&["start", "web"]);
    let (_, msg) = env.fails(&["rm", "web"]);
    assert!(msg.contains("stop it first"), "{msg}");
    env.ok(&["rm", "-f", "web"]);
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    assert!(!env.root.join("containers").join(id).exists());
}

#[test]
fn create_start_attach_logs_and_prune() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let id = env.ok(&[
        "create",
        NONE,
        "--name",
        "c1",
        "bb",
        "sh",
        "-c",
        "for i in 1 2 3; do echo line$i; done",
    ]);
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.State.Status}}", id.trim()])
            .trim(),
        "created"
    );
    assert_eq!(env.ok(&["start", "-a", "c1"]), "line1\nline2\nline3\n");
    assert_eq!(env.ok(&["logs", "--tail", "1", "c1"]), "line3\n");
    let ts = env.ok(&["logs", "-t", "c1"]);
    assert!(
        ts.lines().all(|l| l.contains('T') && l.contains('Z')),
        "{ts}"
    );
    // logs -f returns when the container ends
    env.ok(&[
        "run",
        "-d",
        NONE,
        "--name",
        "c2",
        "bb",
        "sh",
        "-c",
        "echo a; sleep 1; echo b",
    ]);
    assert_eq!(env.ok(&["logs", "-f", "c2"]), "a\nb\n");
    let o = env.berth_stdin(&["run", "-i", "--rm", NONE, "bb", "cat"], b"stdin works\n");
    assert_eq!(out(&o), "stdin works\n");
    env.ok(&["container", "prune", "-f"]);
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

#[test]
fn mounts_volumes_tmpfs_readonly() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let host = env.path("site");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("index.html"), "from host\n").unwrap();
    let v = format!("{}:/www", host.display());
    let vro = format!("{}:/www:ro", host.display());
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            NONE,
            "-v",
            &v,
            "bb",
            "cat",
            "/www/index.html"
        ]),
        "from host\n"
    );
    env.ok(&[
        "run",
        "--rm",
        NONE,
        "-v",
        &v,
        "bb",
        "sh",
        "-c",
        "echo new > /www/new.txt",
    ]);
    assert_eq!(
        std::fs::read_to_string(host.join("new.txt")).unwrap(),
        "new\n"
    );
    let o = env.berth(&["run", "--rm", NONE, "-v", &vro, "bb", "touch", "/www/x"]);
    assert!(!o.status.success());
    let o = env.berth(&["run", "--rm", NONE, "--read-only", "bb", "touch", "/x"]);
    assert!(!o.status.success());
    let s = env.ok(&[
        "run",
        "--rm",
        NONE,
        "--read-only",
        "--tmpfs",
        "/scratch",
        "bb",
        "sh",
        "-c",
        "echo ok > /scratch/f && cat /scratch/f && grep ' /scratch ' /proc/mounts | cut -d' ' -f3",
    ]);
    assert_eq!(s, "ok\ntmpfs\n");
    let (code, msg) = env.fails(&["run", "--rm", NONE, "-v", "./relative:/x", "bb", "true"]);
    assert_eq!(code, 125);
    assert!(msg.contains("absolute"), "{msg}");
    // Writes to the container's own filesystem don't touch the image.
    env.ok(&[
        "run",
        "--rm",
        NONE,
        "bb",
        "sh",
        "-c",
        "echo x > /bin/busybox",
    ]);
    assert_eq!(
        env.ok(&["run", "--rm", NONE, "bb", "echo", "still fine"]),
        "still fine\n"
    );
}

#[test]
fn isolation_matches_docker_defaults() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let s = env.ok(&["run", "--rm", NONE, "bb", "sh", "-c",
        "echo $$; ps -o pid > /tmp/ps.txt; wc -l < /tmp/ps.txt; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; cat /proc/kcore | wc -c; touch /sys/x 2>/dev/null || echo sys-ro; ls /dev | sort | tr '\\n' ' '; echo; ip link 2>/dev/null | grep -c '^[0-9]'"]);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines[0], "1", "{s}");
    // ps writes to a file first: in a pipe, wc may not exist yet when ps reads /proc.
    assert_eq!(lines[1], "3", "only sh and ps (plus header): {s}");
    assert!(s.contains("CapEff:\t00000000a80425fb"), "{s}");
    // Docker leaves no_new_privs off (setuid programs work); see tests/security.rs.
    assert!(s.contains("NoNewPrivs:\t0"), "{s}");
    assert_eq!(lines[4], "0", "/proc/kcore masked: {s}");
    assert!(s.contains("sys-ro"));
    for d in ["null", "zero", "urandom", "tty", "pts", "shm"] {
        assert!(lines[6].split(' ').any(|x| x == d), "/dev lacks {d}: {s}");
    }
    assert_eq!(lines[7], "1", "--network none has only lo: {s}");
    // seccomp: mount is refused even for root
    let o = env.berth(&[
        "run", "--rm", NONE, "bb", "mount", "-t", "tmpfs", "t", "/mnt",
    ]);
    assert!(!o.status.success());
    // host network shares the host's interfaces
    let s = env.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "bb",
        "sh",
        "-c",
        "ip link | grep -c '^[0-9]'",
    ]);
    let host_links = Command::new("sh")
        .args(["-c", "ip link | grep -c '^[0-9]'"])
        .output()
        .unwrap();
    assert_eq!(s.trim(), String::from_utf8_lossy(&host_links.stdout).trim());
}

#[test]
fn limits_are_enforced() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    // A process over --memory is OOM-killed and inspect says so.
    let o = env.berth(&[
        "run",
        NONE,
        "--name",
        "hog",
        "--memory",
        "16m",
        "bb",
        "sh",
        "-c",
        "x=a; while true; do x=$x$x; done",
    ]);
    assert_eq!(o.status.code(), Some(137), "{}", err(&o));
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.State.OOMKilled}}", "hog"])
            .trim(),
        "true"
    );
    // A fork loop stops at --pids-limit (busybox sh gives up when fork fails).
    let fork_loop = "i=0; while [ $i -lt 20 ]; do sleep 5 & i=$((i+1)); done; echo forked all";
    let (code, msg) = env.fails(&[
        "run",
        "--rm",
        NONE,
        "--pids-limit",
        "8",
        "bb",
        "sh",
        "-c",
        fork_loop,
    ]);
    assert_ne!(code, 0);
    assert!(msg.contains("can't fork"), "{msg}");
    assert_eq!(
        env.ok(&["run", "--rm", NONE, "bb", "sh", "-c", fork_loop]),
        "forked all\n"
    );
    // --cpus sets the CFS quota (cgroup v1 here, v2 elsewhere).
    let s = env.ok(&["run", "--rm", NONE, "--cpus", "0.5", "bb", "sh", "-c",
        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max"]);
    assert_eq!(s.trim(), "50000");
}

#[test]
fn restart_policy_restarts_n_times() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    env.ok(&[
        "run",
        "-d",
        NONE,
        "--name",
        "flaky",
        "--restart",
        "on-failure:3",
        "bb",
        "sh",
        "-c",
        "echo run; exit 1",
    ]);
    assert!(wait_until(
        || env
            .ok(&["inspect", "-f", "{{.State.Status}}", "flaky"])
            .trim()
            == "exited",
        20
    ));
    assert_eq!(
        env.ok(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.ExitCode}}",
            "flaky"
        ])
        .trim(),
        "3 1"
    );
    assert_eq!(env.ok(&["logs", "flaky"]), "run\nrun\nrun\nrun\n");
    // always: restarts until stopped
    env.ok(&[
        "run",
        "-d",
        NONE,
        "--name",
        "always",
        "--restart",
        "always",
        "bb",
        "sh",
        "-c",
        "sleep 0.2; exit 0",
    ]);
    assert!(wait_until(
        || env
            .ok(&["inspect", "-f", "{{.RestartCount}}", "always"])
            .trim()
            .parse::<u32>()
            .unwrap_or(0)
            >= 2,
        20
    ));
    env.ok(&["stop", "-t", "1", "always"]);
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.State.Status}}", "always"])
            .trim(),
        "exited"
    );
    let n1 = env.ok(&["inspect", "-f", "{{.RestartCount}}", "always"]);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.RestartCount}}", "always"]),
        n1,
        "restarted after stop"
    );
}

#[test]
fn init_and_other_runtimes() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    if berth_has("tini-static") {
        let s = env.ok(&[
            "run",
            "--rm",
            NONE,
            "--init",
            "bb",
            "sh",
            "-c",
            "cat /proc/1/cmdline | tr '\\0' ' '",
        ]);
        assert!(s.starts_with("/sbin/berth-init"), "{s}");
    }
    if which("runc") {
        assert_eq!(
            env.ok(&[
                "run",
                "--rm",
                NONE,
                "--runtime",
                "runc",
                "bb",
                "echo",
                "runc ok"
            ]),
            "runc ok\n"
        );
        env.ok(&[
            "run",
            "-d",
            NONE,
            "--runtime",
            "runc",
            "--name",
            "r",
            "bb",
            "sleep",
            "100",
        ]);
        assert_eq!(env.ok(&["exec", "r", "echo", "in runc"]), "in runc\n");
        env.ok(&["rm", "-f", "r"]);
    }
    let (code, msg) = env.fails(&[
        "run",
        "--rm",
        NONE,
        "--runtime",
        "no-such-runtime",
        "bb",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(msg.contains("not found"), "{msg}");
}

fn which(name: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn berth_has(bin: &str) -> bool {
    which(bin)
}

#[test]
fn tty_gives_a_real_terminal() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let Some(o) = in_pty(&env, &format!("run --rm -t {NONE} bb sh -c 'tty'")) else {
        return;
    };
    let s = out(&o);
    assert!(s.contains("/dev/pts/0"), "{s}");
}

/// Run `berth ARGS` (a shell fragment) with a terminal as its stdio, via script(1).
fn in_pty(env: &TestEnv, args: &str) -> Option<std::process::Output> {
    if !which("script") {
        return None;
    }
    let cmd = format!(
        "BERTH_ROOT={} {} {args}",
        env.root.display(),
        env!("CARGO_BIN_EXE_berth")
    );
    Some(
        Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap(),
    )
}

#[test]
fn parallel_runs_of_one_image() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let handles: Vec<_> = (0..10)
        .map(|i| {
            let mut c = env.cmd(&["run", "--rm", NONE, "bb", "sh", "-c", &format!("echo n{i}")]);
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
            (i, c.spawn().unwrap())
        })
        .collect();
    for (i, h) in handles {
        let o = h.wait_with_output().unwrap();
        assert_eq!(out(&o), format!("n{i}\n"), "stderr: {}", err(&o));
    }
    // Containers that exit at once (the monitor must never miss their exit).
    for _ in 0..20 {
        let o = env.berth(&["run", "--rm", NONE, "bb", "true"]);
        assert!(o.status.success(), "stderr: {}", err(&o));
    }
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

#[test]
fn killing_berth_leaves_a_usable_store() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    // kill -9 the foreground CLI: the container lives on under its monitor.
    let mut child = env
        .cmd(&["run", NONE, "--name", "fg", "bb", "sleep", "1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(|| env.ok(&["ps", "-q"]).trim().len() == 12, 10));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(env.ok(&["ps"]).contains("fg"));
    // kill -9 the monitor: the next command notices, the container is recorded as exited
    // and its mounts are released.
    let pid: i32 = env
        .ok(&["inspect", "-f", "{{.State.Pid}}", "fg"])
        .trim()
        .parse()
        .unwrap();
    let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid: i32 = ppid[ppid.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    unsafe_kill(ppid);
    assert!(wait_until(
        || !std::path::Path::new(&format!("/proc/{ppid}")).exists()
            || std::fs::read_to_string(format!("/proc/{ppid}/stat"))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true),
        5
    ));
    let ps = env.ok(&["ps", "-a"]);
    assert!(ps.contains("Exited"), "{ps}");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || wait_until(
                || !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                5
            )
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(env.root.to_str().unwrap()),
        "mount left behind"
    );
    // And everything still works.
    assert_eq!(env.ok(&["run", "--rm", NONE, "bb", "echo", "ok"]), "ok\n");
    env.ok(&["start", "fg"]);
    env.ok(&["rm", "-f", "fg"]);
    // kill -9 during a run's startup at random moments.
    for delay in [0u64, 5, 20, 50] {
        let mut c = env
            .cmd(&["run", "--rm", NONE, "bb", "sleep", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = c.kill();
        let _ = c.wait();
    }
    let _ = env.ok(&["ps", "-a"]);
    assert_eq!(
        env.ok(&["run", "--rm", NONE, "bb", "echo", "still ok"]),
        "still ok\n"
    );
    env.ok(&["images"]);
}

fn unsafe_kill(pid: i32) {
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
}

#[test]
fn ctrl_c_stops_a_foreground_container() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    for args in [
        // PID 1 without a SIGINT handler: berth kills it after a short grace period.
        vec!["run", NONE, "--name", "c1", "bb", "sleep", "100"],
        // A process that handles SIGINT exits on its own.
        vec![
            "run",
            NONE,
            "--name",
            "c2",
            "bb",
            "sh",
            "-c",
            "trap 'exit 130' INT; while true; do sleep 0.1; done",
        ],
    ] {
        let name = args[3];
        let mut child = env
            .cmd(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        assert!(wait_until(
            || env.ok(&["ps", "-q", "--no-trunc"]).len() > 10,
            10
        ));
        std::thread::sleep(Duration::from_millis(200));
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        let start = Instant::now();
        let st = child.wait().unwrap();
        assert!(start.elapsed() < Duration::from_secs(8));
        assert_ne!(st.code(), Some(0));
        assert_eq!(
            env.ok(&["inspect", "-f", "{{.State.Status}}", name]).trim(),
            "exited"
        );
        env.ok(&["rm", name]);
    }
}

#[test]
fn exec_with_a_terminal() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    env.ok(&["run", "-d", NONE, "--name", "t", "bb", "sleep", "100"]);
    let Some(o) = in_pty(&env, "exec -it t sh -c 'tty; exit 4'") else {
        return;
    };
    let s = out(&o);
    assert!(s.contains("/dev/pts/"), "{s}");
    assert_eq!(o.status.code(), Some(4), "{s}");
}

#[test]
fn terminal_size_follows_the_window() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    if !which("tmux") {
        return;
    }
    let sock = env.path("tmux.sock");
    let tmux = |args: &[&str]| {
        Command::new("tmux")
            .arg("-S")
            .arg(&sock)
            .args(args)
            .output()
            .unwrap()
    };
    let cmd = format!(
        "BERTH_ROOT={} {} run --rm -it {NONE} bb sh; sleep 5",
        env.root.display(),
        env!("CARGO_BIN_EXE_berth")
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        "t",
        "-x",
        "101",
        "-y",
        "31",
        &cmd,
    ]);
    let screen =
        || String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned();
    assert!(wait_until(|| screen().contains("/ #"), 10), "{}", screen());
    tmux(&["send-keys", "-t", "t", "echo size-$(stty size)", "Enter"]);
    assert!(
        wait_until(|| screen().contains("size-31 101"), 5),
        "{}",
        screen()
    );
    tmux(&["resize-window", "-t", "t", "-x", "90", "-y", "20"]);
    std::thread::sleep(Duration::from_millis(300));
    tmux(&["send-keys", "-t", "t", "echo size-$(stty size)", "Enter"]);
    assert!(
        wait_until(|| screen().contains("size-20 90"), 5),
        "{}",
        screen()
    );
    tmux(&["send-keys", "-t", "t", "exit", "Enter"]);
    assert!(wait_until(|| env.ok(&["ps", "-aq"]).is_empty(), 10));
    tmux(&["kill-server"]);
}
