//! `run`'s resource and namespace flags: what the container and the host's cgroup files see,
//! inspect's HostConfig, and Docker's errors (root integration tests; cgroup v1 here, v2 in
//! `/work/shared/tools/v2vm`: every check reads the files of whichever hierarchy it finds).

mod common;

use common::*;

const NONE: &str = "--network=none";

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn v2() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Removes the named containers when dropped (also when an assertion failed).
struct Cleanup<'a>(&'a TestEnv, Vec<&'a str>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for n in &self.1 {
            let _ = self.0.berth(&["rm", "-f", n]);
        }
    }
}

/// The container's cgroup directory for `controller` (v1) or its v2 directory, from its
/// init's /proc/PID/cgroup.
fn host_cgroup_dir(env: &TestEnv, name: &str, controller: &str) -> std::path::PathBuf {
    let pid = env.ok(&["inspect", "-f", "{{.State.Pid}}", name]);
    let text = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).unwrap();
    for l in text.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if v2() && ctrls.is_empty() {
            return std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
        }
        if !v2() && ctrls.split(',').any(|c| c == controller) {
            return std::path::Path::new("/sys/fs/cgroup")
                .join(controller)
                .join(path.trim_start_matches('/'));
        }
    }
    panic!("no {controller} cgroup in {text}");
}

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn cgroup_limits_inside_outside_and_inspect() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let _c = Cleanup(&env, vec!["lim"]);
    let mut args = vec![
        "run",
        "-d",
        NONE,
        "--name",
        "lim",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--memory-reservation",
        "32m",
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "25000",
        "--cpu-shares",
        "512",
        "--cpuset-cpus",
        "0",
        "--cpuset-mems",
        "0",
        "--pids-limit",
        "33",
        "--oom-score-adj",
        "100",
    ];
    if !v2() {
        args.extend(["--memory-swappiness", "10"]);
    }
    args.extend(["bb", "sleep", "300"]);
    env.ok(&args);

    // Inside: the container's own cgroup files.
    let inside = |script: &str| {
        env.ok(&["exec", "lim", "sh", "-c", script])
            .trim()
            .to_string()
    };
    assert_eq!(inside("cat /proc/1/oom_score_adj"), "100");
    if v2() {
        assert_eq!(inside("cat /sys/fs/cgroup/memory.max"), "67108864");
        assert_eq!(inside("cat /sys/fs/cgroup/memory.swap.max"), "67108864");
        assert_eq!(inside("cat /sys/fs/cgroup/memory.low"), "33554432");
        assert_eq!(inside("cat /sys/fs/cgroup/cpu.max"), "25000 50000");
        assert_eq!(inside("cat /sys/fs/cgroup/pids.max"), "33");
        assert_eq!(inside("cat /sys/fs/cgroup/cpuset.cpus"), "0");
        // cpu.weight from shares, the runtimes' conversion (crun, runc ≥ 1.3, youki).
        assert_eq!(inside("cat /sys/fs/cgroup/cpu.weight"), "59");
    } else {
        let m = "/sys/fs/cgroup/memory";
        assert_eq!(
            inside(&format!("cat {m}/memory.limit_in_bytes")),
            "67108864"
        );
        assert_eq!(
            inside(&format!("cat {m}/memory.memsw.limit_in_bytes")),
            "134217728"
        );
        assert_eq!(
            inside(&format!("cat {m}/memory.soft_limit_in_bytes")),
            "33554432"
        );
        assert_eq!(inside(&format!("cat {m}/memory.swappiness")), "10");
        assert_eq!(
            inside("cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpu/cpu.shares | tr '\\n' ' '"),
            "25000 50000 512"
        );
        assert_eq!(inside("cat /sys/fs/cgroup/pids/pids.max"), "33");
        assert_eq!(inside("cat /sys/fs/cgroup/cpuset/cpuset.cpus"), "0");
    }

    // Outside: the same values in the host's hierarchy.
    if v2() {
        let d = host_cgroup_dir(&env, "lim", "");
        assert_eq!(read(&d.join("memory.max")), "67108864");
        assert_eq!(read(&d.join("cpu.max")), "25000 50000");
        assert_eq!(read(&d.join("pids.max")), "33");
        assert_eq!(read(&d.join("cpuset.mems")), "0");
    } else {
        let d = host_cgroup_dir(&env, "lim", "memory");
        assert_eq!(read(&d.join("memory.limit_in_bytes")), "67108864");
        assert_eq!(read(&d.join("memory.memsw.limit_in_bytes")), "134217728");
        let d = host_cgroup_dir(&env, "lim", "cpu");
        assert_eq!(read(&d.join("cpu.cfs_quota_us")), "25000");
        assert_eq!(read(&d.join("cpu.shares")), "512");
        let d = host_cgroup_dir(&env, "lim", "pids");
        assert_eq!(read(&d.join("pids.max")), "33");
        let d = host_cgroup_dir(&env, "lim", "cpuset");
        assert_eq!(read(&d.join("cpuset.mems")), "0");
    }

    // inspect: Docker's names and units.
    let h = env.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.MemoryReservation}} {{.HostConfig.CpuShares}} {{.HostConfig.CpuPeriod}} {{.HostConfig.CpuQuota}} {{.HostConfig.CpusetCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.OomScoreAdj}} {{.HostConfig.NanoCpus}}",
        "lim",
    ]);
    assert_eq!(
        h.trim(),
        "67108864 134217728 33554432 512 50000 25000 0 33 100 0"
    );
}

#[test]
fn cpus_memory_defaults_and_oom_kill() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let _c = Cleanup(&env, vec!["hog2", "cpus"]);
    // --cpus: NanoCpus in inspect, quota/period in the cgroup; Docker's default swap for
    // --memory alone: as much again (MemorySwap = 2 × Memory) where swap is accounted.
    env.ok(&[
        "run", "-d", NONE, "--name", "cpus", "--cpus", "1.5", "--memory", "32m", "bb", "sleep",
        "300",
    ]);
    let s = env.ok(&["exec", "cpus", "sh", "-c",
        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max"]);
    assert_eq!(s.trim(), "150000");
    let h = env.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}",
        "cpus",
    ]);
    assert_eq!(h.trim(), "1500000000 33554432 67108864");

    // OOM: exit 137 and State.OOMKilled, also with a reservation and --oom-score-adj.
    let o = env.berth(&[
        "run",
        NONE,
        "--name",
        "hog2",
        "--memory",
        "16m",
        "--memory-reservation",
        "8m",
        "--oom-score-adj",
        "500",
        "bb",
        "sh",
        "-c",
        "x=a; while true; do x=$x$x; done",
    ]);
    assert_eq!(o.status.code(), Some(137), "{}", err(&o));
    assert_eq!(
        env.ok(&[
            "inspect",
            "-f",
            "{{.State.OOMKilled}} {{.State.ExitCode}}",
            "hog2"
        ])
        .trim(),
        "true 137"
    );
}

#[test]
fn bad_values_get_dockers_errors() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let bad = |args: &[&str], want: &str| {
        let mut a = vec!["run", "--rm", NONE];
        a.extend_from_slice(args);
        a.extend(["bb", "true"]);
        let (code, msg) = env.fails(&a);
        assert_eq!(code, 125, "{args:?}: {msg}");
        assert!(msg.contains(want), "{args:?}: {msg}");
    };
    bad(&["--memory", "4m"], "minimum memory limit allowed is 6MB");
    bad(
        &["--memory", "64m", "--memory-reservation", "1m"],
        "minimum memory reservation allowed is 6MB",
    );
    bad(&["--memory-swap", "64m"], "--memory-swap needs --memory");
    bad(
        &["--memory", "64m", "--memory-swap", "32m"],
        "should be larger than memory limit",
    );
    bad(
        &["--cpus", "1", "--cpu-quota", "50000"],
        "conflicting options",
    );
    bad(&["--cpu-shares", "1"], "--cpu-shares");
    bad(&["--cpu-period", "10"], "--cpu-period");
    bad(&["--cpuset-cpus", "4000"], "not available on this host");
    bad(&["--oom-score-adj", "2000"], "-1000 to 1000");
    bad(&["--pid", "private"], "invalid --pid");
    bad(&["--ipc", "container:nosuch"], "nosuch");
    bad(&["--uts", "host", "--hostname", "x"], "conflicting options");
    bad(&["--platform", "linux/s390x"], "only this host's platform");
    bad(&["--expose", "99999"], "invalid --expose");
    bad(
        &["-a", "stdweird"],
        "valid streams are STDIN, STDOUT and STDERR",
    );
    if v2() {
        bad(
            &["--memory-swappiness", "10"],
            "cgroup v2 has no per-cgroup swappiness",
        );
        bad(
            &["--oom-kill-disable"],
            "cgroup v2 cannot disable the OOM killer",
        );
    }
    // Nothing was left behind by the refused runs.
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    // --kernel-memory is accepted with Docker's deprecation warning, and not applied.
    let o = env.berth(&["run", "--rm", NONE, "--kernel-memory", "64m", "bb", "true"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("WARNING: Specifying a kernel memory limit is deprecated"));
}

#[test]
fn pid_ipc_uts_cgroup_namespaces() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let _c = Cleanup(&env, vec!["donor", "priv"]);
    // --pid host: the host's processes (this test's own pid) are visible.
    let me = std::process::id().to_string();
    let s = env.ok(&[
        "run",
        "--rm",
        NONE,
        "--pid",
        "host",
        "bb",
        "sh",
        "-c",
        &format!("test -d /proc/{me} && echo seen"),
    ]);
    assert_eq!(s.trim(), "seen");
    let s = env.ok(&[
        "run",
        "--rm",
        NONE,
        "bb",
        "sh",
        "-c",
        &format!("test -d /proc/{me} || echo hidden"),
    ]);
    assert_eq!(s.trim(), "hidden");

    // A shareable donor: --ipc container: shares its IPC namespace and /dev/shm, --pid
    // container: its processes.
    env.ok(&[
        "run",
        "-d",
        NONE,
        "--name",
        "donor",
        "--ipc",
        "shareable",
        "bb",
        "sh",
        "-c",
        "echo hi > /dev/shm/marker; exec sleep 300",
    ]);
    let donor_ipc = env
        .ok(&["exec", "donor", "readlink", "/proc/self/ns/ipc"])
        .trim()
        .to_string();
    let s = env.ok(&[
        "run",
        "--rm",
        NONE,
        "--ipc",
        "container:donor",
        "--pid",
        "container:donor",
        "bb",
        "sh",
        "-c",
        "readlink /proc/self/ns/ipc; cat /dev/shm/marker; ps -o args | grep -c 'sleep 30[0]'",
    ]);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines, vec![donor_ipc.as_str(), "hi", "1"], "{s}");
    let s = env.ok(&["run", "--rm", NONE, "bb", "readlink", "/proc/self/ns/ipc"]);
    assert_ne!(s.trim(), donor_ipc);
    // A private donor cannot be joined (Docker's rule).
    env.ok(&["run", "-d", NONE, "--name", "priv", "bb", "sleep", "300"]);
    let (code, msg) = env.fails(&["run", "--rm", NONE, "--ipc", "container:priv", "bb", "true"]);
    assert_eq!(code, 125);
    assert!(msg.contains("not shareable"), "{msg}");
    // --ipc host: the host's IPC namespace; --ipc none: no /dev/shm.
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    let s = env.ok(&[
        "run",
        "--rm",
        NONE,
        "--ipc",
        "host",
        "bb",
        "readlink",
        "/proc/self/ns/ipc",
    ]);
    assert_eq!(s.trim(), host_ipc.to_string_lossy());
    let s = env.ok(&[
        "run",
        "--rm",
        NONE,
        "--ipc",
        "none",
        "bb",
        "sh",
        "-c",
        "grep -c ' /dev/shm ' /proc/mounts || true",
    ]);
    assert_eq!(s.trim(), "0");

    // --uts host: the host's name; --cgroupns host: the host's cgroup namespace.
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let s = env.ok(&["run", "--rm", NONE, "--uts", "host", "bb", "hostname"]);
    assert_eq!(s.trim(), host_name.trim());
    let host_cg = std::fs::read_link("/proc/self/ns/cgroup").unwrap();
    let s = env.ok(&[
        "run",
        "--rm",
        NONE,
        "--cgroupns",
        "host",
        "bb",
        "readlink",
        "/proc/self/ns/cgroup",
    ]);
    assert_eq!(s.trim(), host_cg.to_string_lossy());
    let s = env.ok(&[
        "run",
        "--rm",
        NONE,
        "--cgroupns",
        "private",
        "bb",
        "readlink",
        "/proc/self/ns/cgroup",
    ]);
    assert_ne!(s.trim(), host_cg.to_string_lossy());
    let modes = env.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.IpcMode}} {{.HostConfig.PidMode}}|",
        "donor",
    ]);
    assert_eq!(modes.trim(), "shareable |");
}

#[test]
fn cidfile_attach_expose_labels() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let _c = Cleanup(&env, vec!["cid"]);
    // --cidfile: the id is written; an existing file is refused before anything is created.
    let cid = env.path("cid");
    let id = env.ok(&[
        "create",
        NONE,
        "--name",
        "cid",
        "--cidfile",
        cid.to_str().unwrap(),
        "bb",
        "true",
    ]);
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), id.trim());
    let (code, msg) = env.fails(&[
        "create",
        NONE,
        "--cidfile",
        cid.to_str().unwrap(),
        "bb",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(msg.contains("container ID file found"), "{msg}");
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 1);
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.HostConfig.ContainerIDFile}}", "cid"])
            .trim(),
        cid.to_str().unwrap()
    );
    // A failed create leaves no id file.
    let cid2 = env.path("cid2");
    env.fails(&[
        "create",
        NONE,
        "--cidfile",
        cid2.to_str().unwrap(),
        "--memory",
        "1m",
        "bb",
        "true",
    ]);
    assert!(!cid2.exists());

    // -a stdout: only the container's stdout reaches the terminal (both reach the log).
    let o = env.berth(&[
        "run",
        "--rm",
        NONE,
        "-a",
        "stdout",
        "bb",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "to-out\n");
    assert!(!err(&o).contains("to-err"), "{}", err(&o));
    let o = env.berth(&[
        "run",
        "--rm",
        NONE,
        "-a",
        "STDERR",
        "bb",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2",
    ]);
    assert_eq!(out(&o), "");
    assert!(err(&o).contains("to-err"), "{}", err(&o));
    let (_, msg) = env.fails(&["run", "-d", "-a", "stdout", NONE, "bb", "true"]);
    assert!(msg.contains("conflicting options"), "{msg}");

    // --expose joins the image's ports in inspect; --label-file then --label.
    let lf = env.path("labels");
    std::fs::write(&lf, "# team labels\nteam=db\ntier=back\n").unwrap();
    let s = env.ok(&[
        "create",
        NONE,
        "--expose",
        "7000-7001/udp",
        "--label-file",
        lf.to_str().unwrap(),
        "--label",
        "tier=front",
        "bb",
        "true",
    ]);
    let id = s.trim();
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["inspect", id])).unwrap();
    let ports = &v[0]["Config"]["ExposedPorts"];
    assert!(
        ports.get("7000/udp").is_some() && ports.get("7001/udp").is_some(),
        "{ports}"
    );
    assert_eq!(v[0]["Config"]["Labels"]["team"], "db");
    assert_eq!(v[0]["Config"]["Labels"]["tier"], "front");
    env.ok(&["rm", id]);
    // --platform: the host's own is fine.
    let host = format!("linux/{}", host_arch());
    env.ok(&["run", "--rm", NONE, "--platform", &host, "bb", "true"]);
}

#[path = "common/net.rs"]
mod net;

#[test]
fn ip_mac_address_and_link() {
    let env = TestEnv::new();
    let nenv = net::NetEnv::new(&env);
    env.busybox_image("bb");
    struct NetCleanup<'a>(&'a net::NetEnv);
    impl Drop for NetCleanup<'_> {
        fn drop(&mut self) {
            self.0.cleanup();
        }
    }
    let _n = NetCleanup(&nenv);
    let shop = format!("{}-shop", nenv.prefix);
    env.ok(&["network", "create", &shop]);
    let subnet = env.ok(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Subnet}}",
        &shop,
    ]);
    let base = subnet.trim().trim_end_matches("0/24").to_string();
    let want_ip = format!("{base}50");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "fixed",
        "--network",
        &shop,
        "--ip",
        &want_ip,
        "--mac-address",
        "02:42:de:ad:be:ef",
        "bb",
        "sleep",
        "300",
    ]);
    let s = env.ok(&["exec", "fixed", "ip", "addr", "show", "eth0"]);
    assert!(s.contains(&format!("inet {want_ip}/")), "{s}");
    assert!(s.contains("02:42:de:ad:be:ef"), "{s}");
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.Config.MacAddress}}", "fixed"])
            .trim(),
        "02:42:de:ad:be:ef"
    );
    // The same address again, or on the default bridge, or IPv6: refused.
    let (_, msg) = env.fails(&[
        "run",
        "--rm",
        "--network",
        &shop,
        "--ip",
        &want_ip,
        "bb",
        "true",
    ]);
    assert!(msg.contains("already in use"), "{msg}");
    let (_, msg) = env.fails(&["run", "--rm", "--ip", &want_ip, "bb", "true"]);
    assert!(msg.contains("user defined networks only"), "{msg}");
    let (_, msg) = env.fails(&[
        "run",
        "--rm",
        "--network",
        &shop,
        "--ip6",
        "fd00::5",
        "bb",
        "true",
    ]);
    assert!(msg.contains("IPv4 only"), "{msg}");
    let (_, msg) = env.fails(&[
        "run",
        "--rm",
        "--mac-address",
        "01:00:00:00:00:01",
        "bb",
        "true",
    ]);
    assert!(msg.contains("multicast"), "{msg}");

    // --link on the default bridge: the linked container's address under its alias and name.
    env.ok(&["run", "-d", "--name", "db", "bb", "sleep", "300"]);
    let db_ip = env
        .ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "db"])
        .trim()
        .to_string();
    let s = env.ok(&[
        "run",
        "--rm",
        "--link",
        "db:database",
        "bb",
        "grep",
        "database",
        "/etc/hosts",
    ]);
    assert!(
        s.starts_with(&db_ip) && s.contains("database") && s.contains(" db"),
        "{s} / {db_ip}"
    );
    let (_, msg) = env.fails(&["run", "--rm", "--link", "nosuch:x", "bb", "true"]);
    assert!(msg.contains("could not get container for nosuch"), "{msg}");
    // --detach-keys is taken (tests/attach.rs detaches with it); bad keys are refused.
    let (_, msg) = env.fails(&["run", "--rm", "--detach-keys", "ctrl-1", "bb", "true"]);
    assert!(msg.contains("invalid detach keys"), "{msg}");

    // Docker's legacy link variables (default bridge), set since Docker 29 only with
    // DOCKER_KEEP_DEPRECATED_LEGACY_LINKS_ENV_VARS=1.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "pg",
        "--expose",
        "5432",
        "-e",
        "PGPASS=s3cret",
        "bb",
        "sleep",
        "300",
    ]);
    let pg_ip = env
        .ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "pg"])
        .trim()
        .to_string();
    let o = env
        .cmd(&[
            "run", "--rm", "--name", "app", "--link", "pg:db", "bb", "env",
        ])
        .env("DOCKER_KEEP_DEPRECATED_LEGACY_LINKS_ENV_VARS", "1")
        .output()
        .unwrap();
    let s = out(&o);
    for want in [
        "DB_NAME=/app/db".to_string(),
        format!("DB_PORT=tcp://{pg_ip}:5432"),
        format!("DB_PORT_5432_TCP_ADDR={pg_ip}"),
        "DB_PORT_5432_TCP_PORT=5432".to_string(),
        "DB_PORT_5432_TCP_PROTO=tcp".to_string(),
        "DB_ENV_PGPASS=s3cret".to_string(),
    ] {
        assert!(s.lines().any(|l| l == want), "{want} missing in {s}");
    }
    let s = env.ok(&["run", "--rm", "--link", "pg:db", "bb", "env"]);
    assert!(!s.contains("DB_"), "{s}");
}

/// A whole-disk block device of this machine: its /dev path and MAJOR:MINOR.
fn block_device() -> Option<(String, String)> {
    for name in ["vda", "sda", "nvme0n1", "xvda", "hda"] {
        let dev = format!("/dev/{name}");
        if let Ok(mm) = std::fs::read_to_string(format!("/sys/block/{name}/dev")) {
            if std::path::Path::new(&dev).exists() {
                return Some((dev, mm.trim().to_string()));
            }
        }
    }
    None
}

#[test]
fn device_throttles_in_the_cgroup_files() {
    let Some((dev, mm)) = block_device() else {
        eprintln!("skipped: no block device");
        return;
    };
    let env = TestEnv::new();
    env.busybox_image("bb");
    let _c = Cleanup(&env, vec!["thr"]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "thr",
        "--network",
        "none",
        "--device-read-bps",
        &format!("{dev}:1mb"),
        "--device-write-bps",
        &format!("{dev}:2mb"),
        "--device-read-iops",
        &format!("{dev}:100"),
        "--device-write-iops",
        &format!("{dev}:200"),
        "bb",
        "sleep",
        "300",
    ]);
    if v2() {
        let dir = host_cgroup_dir(&env, "thr", "");
        let io = read(&dir.join("io.max"));
        let line = io
            .lines()
            .find(|l| l.starts_with(&format!("{mm} ")))
            .unwrap_or_else(|| panic!("no {mm} in io.max: {io}"));
        for want in ["rbps=1048576", "wbps=2097152", "riops=100", "wiops=200"] {
            assert!(line.split_whitespace().any(|w| w == want), "{want}: {line}");
        }
    } else {
        let dir = host_cgroup_dir(&env, "thr", "blkio");
        for (file, want) in [
            ("blkio.throttle.read_bps_device", "1048576"),
            ("blkio.throttle.write_bps_device", "2097152"),
            ("blkio.throttle.read_iops_device", "100"),
            ("blkio.throttle.write_iops_device", "200"),
        ] {
            let s = read(&dir.join(file));
            assert!(
                s.lines().any(|l| l == format!("{mm} {want}")),
                "{file}: {s}"
            );
        }
    }
    // Inspect shows them as Docker does.
    let s = env.ok(&[
        "inspect",
        "-f",
        "{{json .HostConfig.BlkioDeviceReadBps}}",
        "thr",
    ]);
    assert!(
        s.contains(&format!("\"Path\":\"{dev}\"")) && s.contains("1048576"),
        "{s}"
    );
}
