//! Confinement and container-escape tests (root): paths berth creates inside a container's
//! root never leave it, Docker's default seccomp/capabilities/no_new_privs, the flags that
//! loosen or tighten them, and the published escapes (CVE-2019-5736, CVE-2024-21626).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;

const NONE: &str = "--network=none";

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The static probe program (tests/helpers/probe.c), built once per test process.
fn probe() -> &'static [u8] {
    static P: OnceLock<Vec<u8>> = OnceLock::new();
    P.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("berth-t-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("probe");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/probe.c");
        let st = Command::new("cc")
            .args(["-static", "-O1", "-o"])
            .arg(&bin)
            .arg(&src)
            .status()
            .expect("a C compiler (gcc) with static glibc (libc6-dev) is needed");
        assert!(st.success(), "building the probe failed");
        let b = std::fs::read(&bin).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        b
    })
}

/// Load an image made of the busybox rootfs plus `extra` (a layer built by the caller), with
/// `config` merged into the image config.
fn image_with(env: &TestEnv, name: &str, extra: Vec<u8>, config: serde_json::Value) {
    let base = TestLayer::new(&busybox_rootfs(), Comp::None);
    let l2 = TestLayer::new(&extra, Comp::None);
    let mut cfg = serde_json::json!({"Env": [PATH_ENV], "Cmd": ["sh"]});
    if let (Some(c), Some(extra)) = (cfg.as_object_mut(), config.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    let full = serde_json::json!({
        "architecture": host_arch(), "os": "linux", "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": [base.diff_id.clone(), l2.diff_id.clone()]}
    });
    let p = env.path(&format!("{name}.tar"));
    write_docker_archive(
        &p,
        &serde_json::to_vec(&full).unwrap(),
        &[base, l2],
        &[name],
    );
    env.ok(&["load", "-i", p.to_str().unwrap()]);
}

/// An image with the probe at /probe and a setuid-root copy at /suid-probe.
fn probe_image(env: &TestEnv, name: &str) {
    let mut t = TarBuilder::new();
    t.file("probe", 0o755, probe())
        .file("suid-probe", 0o4755, probe())
        .dir("mnt", 0o755);
    image_with(env, name, t.finish(), serde_json::json!({}));
}

/// A unique host path under /tmp that must never appear (checked and removed by the guard).
struct MustNotExist(PathBuf);
impl MustNotExist {
    fn new(tag: &str) -> MustNotExist {
        let p = std::env::temp_dir().join(format!(
            "berth-t-escape-{tag}-{}-{:08x}",
            std::process::id(),
            rand_u32()
        ));
        MustNotExist(p)
    }
    fn s(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
    #[track_caller]
    fn check(&self) {
        assert!(
            !self.0.exists(),
            "{} was created on the host: a path escaped the container root",
            self.0.display()
        );
    }
}
impl Drop for MustNotExist {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(&self.0);
    }
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.subsec_nanos() ^ std::process::id().rotate_left(16)
}

#[test]
fn workdir_outside_the_root_is_created_inside_it() {
    let env = TestEnv::new();
    let esc = MustNotExist::new("workdir");
    let wd = format!("/../../../../../..{}", esc.s());
    image_with(
        &env,
        "wd",
        TarBuilder::new().finish(),
        serde_json::json!({"WorkingDir": wd}),
    );
    let o = env.berth(&["run", "--rm", NONE, "wd", "pwd"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o).trim(), esc.s());
    esc.check();

    env.busybox_image("bb");
    let esc2 = MustNotExist::new("dash-w");
    let wd2 = format!("/../../../../..{}/sub", esc2.s());
    let o = env.berth(&["run", "--rm", NONE, "-w", &wd2, "bb", "pwd"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o).trim(), format!("{}/sub", esc2.s()));
    esc2.check();

    // A WORKDIR through a symlink that points out of the root.
    let esc3 = MustNotExist::new("wd-link");
    let mut t = TarBuilder::new();
    t.symlink("up", &format!("../../../../../../..{}", esc3.s()));
    image_with(
        &env,
        "wdl",
        t.finish(),
        serde_json::json!({"WorkingDir": "/up/deeper"}),
    );
    let o = env.berth(&["run", "--rm", NONE, "wdl", "pwd"]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o).trim(), format!("{}/deeper", esc3.s()));
    esc3.check();
}

#[test]
fn symlinked_mount_destinations_resolve_inside_the_root() {
    let env = TestEnv::new();
    let file_target = MustNotExist::new("made-by-mount");
    let dir_target = MustNotExist::new("mnt-dir");
    let tmpfs_target = MustNotExist::new("tmpfs-dir");
    let mut t = TarBuilder::new();
    t.symlink("dangle.txt", &file_target.s())
        .symlink("data", &format!("../../../../../..{}", dir_target.s()))
        .symlink("scratch", &tmpfs_target.s());
    image_with(&env, "links", t.finish(), serde_json::json!({}));
    let host_file = env.path("host.txt");
    std::fs::write(&host_file, "from the host\n").unwrap();
    let host_dir = env.path("hostdir");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("f"), "in dir\n").unwrap();
    let v1 = format!("{}:/dangle.txt:ro", host_file.display());
    let v2 = format!("{}:/data", host_dir.display());
    let o = env.berth(&[
        "run",
        "--rm",
        NONE,
        "-v",
        &v1,
        "-v",
        &v2,
        "--tmpfs",
        "/scratch",
        "links",
        "sh",
        "-c",
        "cat /dangle.txt /data/f && touch /scratch/x && ls /scratch",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "from the host\nin dir\nx\n");
    file_target.check();
    dir_target.check();
    tmpfs_target.check();
}

#[test]
fn generated_files_and_passwd_symlinked_to_host_paths() {
    let env = TestEnv::new();
    // Host files the image's links point at: they must stay exactly as they are.
    let hosts = env.path("host-hosts");
    let resolv = env.path("host-resolv");
    let hostname = env.path("host-hostname");
    let passwd = env.path("host-passwd");
    for p in [&hosts, &resolv, &hostname] {
        std::fs::write(p, "HOST ORIGINAL\n").unwrap();
    }
    std::fs::write(&passwd, "hostonly:x:4242:4242::/:/bin/sh\n").unwrap();
    let rel = |p: &Path| format!("../../../../../../..{}", p.display());
    let mut t = TarBuilder::new();
    t.dir("etc", 0o755)
        .symlink("etc/hosts", &hosts.to_string_lossy())
        .symlink("etc/resolv.conf", &rel(&resolv))
        .symlink("etc/hostname", &hostname.to_string_lossy())
        .symlink("etc/passwd", &rel(&passwd));
    image_with(&env, "etclinks", t.finish(), serde_json::json!({}));
    let o = env.berth(&[
        "run",
        "--rm",
        "etclinks",
        "sh",
        "-c",
        "cat /etc/hosts /etc/hostname /etc/resolv.conf",
    ]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("localhost"), "{}", out(&o));
    assert!(!out(&o).contains("HOST ORIGINAL"), "{}", out(&o));
    for p in [&hosts, &resolv, &hostname] {
        assert_eq!(std::fs::read_to_string(p).unwrap(), "HOST ORIGINAL\n");
    }
    // The user lookup reads the image's passwd, never the host file the link names.
    let (code, e) = env.fails(&["run", "--rm", NONE, "-u", "hostonly", "etclinks", "id"]);
    assert_eq!(code, 125, "{e}");
    assert!(e.contains("unable to find user hostonly"), "{e}");
}

fn status_fields(s: &str) -> (String, String, String) {
    let get = |k: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    (get("Seccomp:"), get("NoNewPrivs:"), get("CapEff:"))
}

#[test]
fn default_confinement_is_dockers() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let cmd = [
        "grep",
        "-E",
        "Seccomp|NoNewPrivs|CapEff",
        "/proc/self/status",
    ];
    let mut args = vec!["run", "--rm", NONE, "bb"];
    args.extend(cmd);
    let o = env.ok(&args);
    // Docker's documented defaults: filter mode 2, no_new_privs off, its 14 capabilities.
    assert_eq!(
        status_fields(&o),
        ("2".into(), "0".into(), "00000000a80425fb".into()),
        "{o}"
    );
    let mut args = vec![
        "run",
        "--rm",
        NONE,
        "--security-opt",
        "no-new-privileges",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "chown",
        "bb",
    ];
    args.extend(cmd);
    let o = env.ok(&args);
    assert_eq!(
        status_fields(&o),
        ("2".into(), "1".into(), "0000000000000001".into()),
        "{o}"
    );
    let mut args = vec!["run", "--rm", NONE, "--privileged", "bb"];
    args.extend(cmd);
    let o = env.ok(&args);
    let (sc, nnp, eff) = status_fields(&o);
    assert_eq!((sc.as_str(), nnp.as_str()), ("0", "0"), "{o}");
    // Every capability berth itself may hold (its bounding set).
    let bnd = std::fs::read_to_string("/proc/self/status").unwrap();
    let bnd = bnd
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    assert_eq!(eff, bnd, "{o}");
    // The same values through an OCI runtime binary, when one is installed.
    if Path::new("/usr/sbin/runc").exists() {
        let mut args = vec!["run", "--rm", NONE, "--runtime", "runc", "bb"];
        args.extend(cmd);
        let o = env.ok(&args);
        assert_eq!(
            status_fields(&o),
            ("2".into(), "0".into(), "00000000a80425fb".into()),
            "{o}"
        );
    }
}

/// The cgroup hierarchies a container sees under /sys/fs/cgroup, with their read-only flag.
fn cgroup_mounts(env: &TestEnv, flags: &[&str]) -> Vec<(String, bool)> {
    let mut args = vec!["run", "--rm", NONE];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["bb", "cat", "/proc/self/mounts"]);
    let o = env.ok(&args);
    o.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let (point, typ, opts) = (*f.get(1)?, *f.get(2)?, *f.get(3)?);
            (point.starts_with("/sys/fs/cgroup") && (typ == "cgroup" || typ == "cgroup2"))
                .then(|| (point.to_string(), opts.split(',').any(|o| o == "ro")))
        })
        .collect()
}

/// As under runc: every cgroup hierarchy is mounted read-only (cgroup v1: each controller
/// under the /sys/fs/cgroup tmpfs; v2: the cgroup2 mount itself), whatever the user, seccomp
/// and no_new_privs settings; read-write with --privileged.
#[test]
fn cgroup_hierarchies_are_read_only_unless_privileged() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    for flags in [
        &[][..],
        &["--user", "1000"],
        &["--security-opt", "seccomp=unconfined"],
        &["--security-opt", "no-new-privileges", "--user", "1000"],
    ] {
        let m = cgroup_mounts(&env, flags);
        assert!(!m.is_empty(), "{flags:?}: no cgroup mounts");
        assert!(m.iter().all(|(_, ro)| *ro), "{flags:?}: {m:?}");
    }
    let m = cgroup_mounts(&env, &["--privileged"]);
    assert!(!m.is_empty() && m.iter().all(|(_, ro)| !ro), "{m:?}");
    let (point, _) = &cgroup_mounts(&env, &[])[0];
    let script = format!("mkdir {point}/berth-t-x 2>&1; true");
    let o = env.ok(&["run", "--rm", NONE, "bb", "sh", "-c", &script]);
    assert!(o.contains("Read-only file system"), "{o}");
    if Path::new("/usr/sbin/runc").exists() {
        assert_eq!(
            cgroup_mounts(&env, &[]),
            cgroup_mounts(&env, &["--runtime", "runc"])
        );
    }
}

fn probe_run(env: &TestEnv, flags: &[&str], what: &[&str]) -> String {
    let mut args = vec!["run", "--rm", NONE];
    args.extend_from_slice(flags);
    args.push("pr");
    args.push("/probe");
    args.extend_from_slice(what);
    env.ok(&args)
}

#[test]
fn seccomp_default_profile_refuses_escapes_privileged_allows() {
    let env = TestEnv::new();
    probe_image(&env, "pr");
    let o = probe_run(
        &env,
        &[],
        &[
            "fork",
            "keyctl",
            "add_key",
            "unshare_user",
            "mount",
            "bpf",
            "perf_event_open",
            "kexec_load",
            "open_by_handle_at",
            "io_uring_setup",
        ],
    );
    assert_eq!(
        o,
        "fork=ok\nkeyctl=EPERM\nadd_key=EPERM\nunshare_user=EPERM\nmount=EPERM\nbpf=EPERM\n\
         perf_event_open=EPERM\nkexec_load=EPERM\nopen_by_handle_at=EPERM\nio_uring_setup=EPERM\n"
    );
    assert_eq!(
        probe_run(&env, &[], &["clone_newuser"]),
        "clone_newuser=EPERM\n"
    );
    // clone3's flags are out of seccomp's reach: Docker's profile answers ENOSYS (libc then
    // falls back to clone, which the profile checks) unless CAP_SYS_ADMIN.
    assert_eq!(
        probe_run(&env, &[], &["clone3_newuser"]),
        "clone3_newuser=ENOSYS\n"
    );
    assert_eq!(
        probe_run(&env, &["--privileged"], &["clone3_newuser"]),
        "clone3_newuser=ok\n"
    );
    // The kernel itself would allow these: it is the profile that refuses them.
    let o = probe_run(
        &env,
        &["--security-opt", "seccomp=unconfined"],
        &["keyctl", "io_uring_setup"],
    );
    assert_eq!(o, "keyctl=ok\nio_uring_setup=EFAULT\n");
    let o = probe_run(
        &env,
        &["--privileged"],
        &["keyctl", "mount", "unshare_user"],
    );
    assert_eq!(o, "keyctl=ok\nmount=ok\nunshare_user=ok\n");
    assert_eq!(
        probe_run(&env, &["--privileged"], &["clone_newuser"]),
        "clone_newuser=ok\n"
    );
    // CAP_SYS_ADMIN unlocks what the profile guards with it (Docker's rule).
    assert_eq!(
        probe_run(&env, &["--cap-add", "SYS_ADMIN"], &["mount", "keyctl"]),
        "mount=ok\nkeyctl=EPERM\n"
    );
    // busybox's own unshare applet, as a user would type it.
    let o = env.berth(&[
        "run", "--rm", NONE, "pr", "busybox", "unshare", "-U", "true",
    ]);
    assert!(!o.status.success());
    let o = env.berth(&[
        "run",
        "--rm",
        NONE,
        "--privileged",
        "pr",
        "busybox",
        "unshare",
        "-U",
        "true",
    ]);
    assert!(o.status.success(), "{}", err(&o));
}

#[test]
fn seccomp_profile_files() {
    let env = TestEnv::new();
    probe_image(&env, "pr");
    // Docker's format: allow everything but keyctl.
    let p = env.path("profile.json");
    std::fs::write(
        &p,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","archMap":null,"syscalls":[
            {"names":["keyctl"],"action":"SCMP_ACT_ERRNO","errnoRet":13,"args":[],"comment":"","includes":{},"excludes":{}}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", p.display());
    let o = probe_run(&env, &["--security-opt", &opt], &["keyctl", "unshare_user"]);
    assert_eq!(o, "keyctl=EACCES\nunshare_user=ok\n");
    // A malformed profile is refused before anything is created, naming file and JSON path.
    let bad = env.path("bad.json");
    std::fs::write(
        &bad,
        r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"},{"names":["write"],"action":"SCMP_ACT_SOMETIMES"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", bad.display());
    let before = env.ok(&["ps", "-aq"]);
    let (code, e) = env.fails(&["run", "--rm", NONE, "--security-opt", &opt, "pr", "true"]);
    assert_eq!(code, 125);
    assert!(
        e.contains(&bad.display().to_string()) && e.contains("syscalls[1].action"),
        "{e}"
    );
    assert_eq!(env.ok(&["ps", "-aq"]), before);
}

#[test]
fn setuid_works_by_default_and_not_with_no_new_privileges() {
    let env = TestEnv::new();
    probe_image(&env, "pr");
    let o = env.ok(&[
        "run",
        "--rm",
        NONE,
        "-u",
        "1000",
        "pr",
        "/suid-probe",
        "euid",
    ]);
    assert_eq!(o, "euid=0\n");
    let o = env.ok(&[
        "run",
        "--rm",
        NONE,
        "-u",
        "1000",
        "--security-opt",
        "no-new-privileges=true",
        "pr",
        "/suid-probe",
        "euid",
    ]);
    assert_eq!(o, "euid=1000\n");
}

/// A file capability in an image (`security.capability`, here CAP_NET_RAW as `ping` has in
/// Debian) works for a non-root user by default, as under Docker, and gives nothing with
/// `--security-opt no-new-privileges`.
#[test]
fn file_capabilities_work_by_default_and_not_with_no_new_privileges() {
    let env = TestEnv::new();
    // struct vfs_cap_data, revision 2, effective: permitted = CAP_NET_RAW (bit 13).
    let mut cap = Vec::new();
    for w in [0x0200_0001u32, 1 << 13, 0, 0, 0] {
        cap.extend_from_slice(&w.to_le_bytes());
    }
    let busybox = std::fs::read("/bin/busybox").unwrap();
    let mut t = TarBuilder::new();
    t.dir("opt", 0o755).file_with_xattrs(
        "opt/busybox",
        0o755,
        &busybox,
        &[("security.capability", &cap)],
    );
    image_with(&env, "fcap", t.finish(), serde_json::json!({}));
    let eff = |flags: &[&str]| {
        let mut a = vec!["run", "--rm", NONE, "-u", "1000"];
        a.extend_from_slice(flags);
        a.extend_from_slice(&[
            "fcap",
            "/opt/busybox",
            "grep",
            "CapEff",
            "/proc/self/status",
        ]);
        env.ok(&a)
    };
    assert_eq!(eff(&[]).trim(), "CapEff:\t0000000000002000");
    let nnp = ["--security-opt", "no-new-privileges"];
    assert_eq!(eff(&nnp).trim(), "CapEff:\t0000000000000000");
    if Path::new("/usr/sbin/runc").exists() {
        let mut flags = vec!["--runtime", "runc"];
        flags.extend_from_slice(&nnp);
        assert_eq!(eff(&flags).trim(), "CapEff:\t0000000000000000");
    }
    // `exec -u` into a root container: the same rules for the exec'd process.
    let name = format!("berth-t-fcap-{:08x}", rand_u32());
    env.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        NONE,
        "--security-opt",
        "no-new-privileges",
        "fcap",
        "sleep",
        "100",
    ]);
    let o = env.ok(&[
        "exec",
        "-u",
        "1000",
        &name,
        "/opt/busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    let _ = env.berth(&["rm", "-f", &name]);
    assert_eq!(o.trim(), "CapEff:\t0000000000000000");
}

#[test]
fn capability_device_ulimit_sysctl_shm_group_flags() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let o = env.ok(&[
        "run",
        "--rm",
        NONE,
        "--cap-drop",
        "all",
        "--cap-add",
        "CAP_NET_ADMIN",
        "bb",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert!(o.contains("0000000000001000"), "{o}");
    let (code, e) = env.fails(&["run", "--rm", NONE, "--cap-add", "FLY", "bb", "true"]);
    assert_eq!(code, 125);
    assert!(e.contains("unknown capability"), "{e}");

    let o = env.ok(&[
        "run",
        "--rm",
        NONE,
        "--device",
        "/dev/null:/dev/mynull",
        "--ulimit",
        "nofile=512:1024",
        "--sysctl",
        "kernel.shmmni=2048",
        "--shm-size",
        "16m",
        "--group-add",
        "4242",
        "--group-add",
        "app",
        "bb",
        "sh",
        "-c",
        "echo hi > /dev/mynull && ulimit -n && cat /proc/sys/kernel/shmmni && df -k /dev/shm | tail -1 && id -G",
    ]);
    let lines: Vec<&str> = o.lines().collect();
    assert_eq!(lines[0], "512", "{o}");
    assert_eq!(lines[1], "2048", "{o}");
    assert!(lines[2].contains("16384"), "{o}");
    assert!(
        lines[3].contains("4242") && lines[3].contains("1000"),
        "{o}"
    );

    let (code, e) = env.fails(&[
        "run",
        "--rm",
        NONE,
        "--sysctl",
        "kernel.panic=1",
        "bb",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(e.contains("not namespaced"), "{e}");
    let (code, e) = env.fails(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "bb",
        "true",
    ]);
    assert_eq!(code, 125, "{e}");
    // Accepted where the host has no LSM to apply them.
    env.ok(&[
        "run",
        "--rm",
        NONE,
        "--security-opt",
        "label=disable",
        "--security-opt",
        "apparmor=unconfined",
        "bb",
        "true",
    ]);
    // --privileged: host devices, writable /sys, no masked paths.
    let o = env.ok(&[
        "run",
        "--rm",
        NONE,
        "--privileged",
        "bb",
        "sh",
        "-c",
        "test -c /dev/tty && grep -c ' /sys sysfs rw' /proc/mounts && cat /proc/timer_list | head -c 5",
    ]);
    assert!(o.starts_with("1\n") && o.len() > 2, "{o}");
}

/// AppArmor as Docker applies it. Where the host enforces AppArmor a container runs under
/// berth-default (loaded by berth when missing), `--privileged` unconfined, and a named
/// profile that is not loaded is refused before anything starts. Where it does not (this
/// machine's kernel), no profile is set and `--security-opt apparmor=NAME` is accepted for any
/// name, with the container running as usual.
#[test]
fn apparmor_profiles_as_docker() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let missing = "berth-t-no-such-profile";
    if !berth_engine::apparmor::host_supports() {
        let o = env.ok(&[
            "run",
            "--rm",
            NONE,
            "--security-opt",
            &format!("apparmor={missing}"),
            "bb",
            "echo",
            "ran",
        ]);
        assert_eq!(o.trim(), "ran");
        return;
    }
    let current = |flags: &[&str]| {
        let mut a = vec!["run", "--rm", NONE];
        a.extend_from_slice(flags);
        a.extend_from_slice(&["bb", "cat", "/proc/self/attr/current"]);
        env.ok(&a)
    };
    assert!(
        current(&[]).starts_with("berth-default "),
        "{}",
        current(&[])
    );
    assert!(current(&["--privileged"]).starts_with("unconfined"));
    let (code, e) = env.fails(&[
        "run",
        "--rm",
        NONE,
        "--security-opt",
        &format!("apparmor={missing}"),
        "bb",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(e.contains("is not loaded"), "{e}");
}

#[test]
fn cve_2024_21626_leaked_fd_as_working_directory() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let marker = env.path("marker-21626");
    std::fs::write(&marker, "host\n").unwrap();
    let host_path = format!("../../../../../../../..{}", marker.display());
    for n in 3..=12 {
        let wd = format!("/proc/self/fd/{n}");
        let o = env.berth(&["run", "--rm", NONE, "-w", &wd, "bb", "cat", &host_path]);
        assert!(
            !out(&o).contains("host"),
            "-w {wd} reached the host: {}",
            out(&o)
        );
    }
    env.ok(&["run", "-d", "--name", "c21626", NONE, "bb", "sleep", "60"]);
    for n in 3..=12 {
        let wd = format!("/proc/self/fd/{n}");
        let o = env.berth(&["exec", "-w", &wd, "c21626", "cat", &host_path]);
        assert!(
            !out(&o).contains("host"),
            "exec -w {wd} reached the host: {}",
            out(&o)
        );
    }
    env.ok(&["rm", "-f", "c21626"]);
}

/// The freestanding loader stand-in (tests/helpers/ldso.c), built once per test process.
fn ldso() -> &'static [u8] {
    static P: OnceLock<Vec<u8>> = OnceLock::new();
    P.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("berth-t-ldso-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("ldso");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/helpers/ldso.c");
        let st = Command::new("cc")
            .args([
                // Position-independent without relocations: the kernel maps an ET_DYN
                // interpreter wherever it fits (a fixed-address one crashed on Linux 6.1).
                "-static-pie",
                "-fPIE",
                "-nostdlib",
                "-ffreestanding",
                "-fno-stack-protector",
                "-fno-builtin",
                "-O1",
                "-o",
            ])
            .arg(&bin)
            .arg(&src)
            .status()
            .expect("a C compiler (gcc) is needed");
        assert!(st.success(), "building the ldso helper failed");
        let b = std::fs::read(&bin).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        b
    })
}

/// `NAME=ERRNO` lines of the ldso helper: each attempt to open the runtime binary for writing
/// failed with ETXTBSY, EACCES or EROFS; `want` names the attempts that must be there.
#[track_caller]
fn all_refused(what: &str, text: &str, want: &[&str]) {
    for w in want {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{w}=")))
            .unwrap_or_else(|| panic!("{what}: no {w} result in {text:?}"));
        let v = &line[w.len() + 1..];
        assert!(
            ["26", "13", "30"].contains(&v),
            "{what}: {w} was not refused with ETXTBSY/EACCES/EROFS: {line}"
        );
    }
}

#[test]
fn cve_2019_5736_runtime_binary_is_not_writable_from_the_container() {
    // The image's dynamic loader is the helper and its entrypoint `#!/proc/self/exe`: the
    // runtime re-executes itself in the container and the helper runs with the runtime's
    // binary as /proc/self/exe, every time (no race).
    let loader = match std::env::consts::ARCH {
        "x86_64" => "lib64/ld-linux-x86-64.so.2",
        "aarch64" => "lib/ld-linux-aarch64.so.1",
        a => {
            eprintln!("skipped: no loader path known for {a}");
            return;
        }
    };
    let env = TestEnv::new();
    let mut t = TarBuilder::new();
    t.dir(loader.split('/').next().unwrap_or("lib"), 0o755)
        .file(loader, 0o755, ldso())
        .file("evil", 0o755, b"#!/proc/self/exe\n");
    image_with(
        &env,
        "evil",
        t.finish(),
        serde_json::json!({"Entrypoint": ["/evil"], "Cmd": []}),
    );
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_berth")).parent().unwrap();
    let binaries: Vec<(PathBuf, Vec<u8>)> = ["berth", "berth-supervise"]
        .iter()
        .map(|n| bin_dir.join(n))
        .filter(|p| p.exists())
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    // The entrypoint: the container's init re-executes the runtime.
    let o = env.berth(&["run", "--rm", NONE, "evil"]);
    all_refused(
        &format!("run (status {}, stderr: {})", o.status, err(&o)),
        &out(&o),
        &["self-wronly", "self-rdwr", "fd-reopen"],
    );
    // exec: the exec'd process re-executes the runtime; a child tries /proc/PARENT/exe and,
    // after the runtime process exited, the O_PATH fd it kept.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "w5736",
        NONE,
        "--entrypoint",
        "sleep",
        "evil",
        "60",
    ]);
    let o = env.berth(&["exec", "w5736", "/evil"]);
    all_refused(
        &format!("exec (status {}, stderr: {})", o.status, err(&o)),
        &out(&o),
        &["self-wronly", "self-rdwr", "fd-reopen"],
    );
    let mut child = String::new();
    for _ in 0..100 {
        child = out(&env.berth(&["exec", "w5736", "cat", "/result-child"]));
        if child.contains("child-after-exit=") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    all_refused(
        "exec child",
        &child,
        &["child-parent-exe", "child-after-exit"],
    );
    env.ok(&["rm", "-f", "w5736"]);
    for (p, b) in &binaries {
        assert!(
            std::fs::read(p).unwrap() == *b,
            "{} changed on the host",
            p.display()
        );
    }
}

#[test]
fn generated_names_never_run_out_and_wait_reports_rm_exit_status() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let id = env.ok(&[
        "run",
        "-d",
        "--rm",
        NONE,
        "bb",
        "sh",
        "-c",
        "sleep 1; exit 7",
    ]);
    let o = env.berth(&["wait", id.trim()]);
    assert_eq!(out(&o).trim(), "7", "{}", err(&o));
}

/// A private dockerd (Debian's `docker.io`) for comparisons: its own socket, data and exec
/// roots under the test's scratch directory, no iptables, no bridge. Killed by pid (with the
/// containerd it started) and its mounts removed on drop.
struct Dockerd {
    child: std::process::Child,
    sock: String,
    dir: PathBuf,
}

impl Dockerd {
    /// `None` (with the reason printed) when dockerd is not installed or does not start.
    fn start(env: &TestEnv) -> Option<Dockerd> {
        let Some(bin) = ["/usr/sbin/dockerd", "/usr/bin/dockerd"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
        else {
            eprintln!("skipped: dockerd is not installed (apt-get install docker.io)");
            return None;
        };
        // Its own directory under /tmp (world-searchable: runc resolves the process in the
        // container's root through it), removed on drop.
        let _ = env;
        let dir = std::env::temp_dir().join(format!(
            "berth-t-dockerd-{}-{:08x}",
            std::process::id(),
            rand_u32()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("docker.sock").display().to_string();
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!("--host=unix://{sock}"))
            .arg(format!("--data-root={}", dir.join("data").display()))
            .arg(format!("--exec-root={}", dir.join("exec").display()))
            .arg(format!("--pidfile={}", dir.join("docker.pid").display()))
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--ip-forward=false",
                "--ip-masq=false",
                "--exec-opt",
                "native.cgroupdriver=cgroupfs",
                "--storage-driver=overlay2",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .ok()?;
        let d = Dockerd { child, sock, dir };
        for _ in 0..300 {
            if d.docker(&["version"]).status.success() {
                return Some(d);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(d.dir.join("dockerd.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        eprintln!("skipped: dockerd did not start on this host: {tail:?}");
        None
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.sock))
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("the docker CLI")
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(o.status.success(), "docker {args:?}: {}", err(&o));
        out(&o)
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let pid = i32::try_from(self.child.id()).unwrap_or(0);
        // SAFETY: kill(2) on the pid of the dockerd this test started and has not reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        for _ in 0..200 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The containerd dockerd started (its pid file in the exec root), if still there.
        let cpid = self.dir.join("exec/containerd/containerd.pid");
        if let Some(p) = std::fs::read_to_string(cpid)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            // SAFETY: kill(2) on the containerd our dockerd started.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut ours: Vec<String> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&*self.dir.to_string_lossy()))
            .map(String::from)
            .collect();
        ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ours {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `Field:\tvalue` lines of /proc/self/status for the given fields.
fn status_map(s: &str, fields: &[&str]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|f| {
            let v = s
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{f}:")))
                .map(|v| v.trim().to_string())
                .unwrap_or_default();
            (f.to_string(), v)
        })
        .collect()
}

/// Mount points under /proc and /sys with their read-only flag, from /proc/self/mounts.
fn proc_sys_mounts(s: &str) -> std::collections::BTreeMap<String, bool> {
    s.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let (point, opts) = (*f.get(1)?, *f.get(3)?);
            (point.starts_with("/proc") || point.starts_with("/sys"))
                .then(|| (point.to_string(), opts.split(',').any(|o| o == "ro")))
        })
        .collect()
}

#[test]
fn docker_agrees_on_default_confinement() {
    let env = TestEnv::new();
    // A plain busybox rootfs, tarred by tar(1) and imported.
    let rootfs = env.path("cmproot");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::create_dir_all(rootfs.join("tmp")).unwrap();
    let bb = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static");
    std::fs::copy(bb, rootfs.join("bin/busybox")).unwrap();
    let rtar = env.path("cmproot.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&rtar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    env.ok(&["import", rtar.to_str().unwrap(), "cmpbb"]);
    let Some(d) = Dockerd::start(&env) else {
        return;
    };
    let tar = env.path("cmpbb.tar");
    env.ok(&["save", "-o", tar.to_str().unwrap(), "cmpbb"]);
    d.ok(&["load", "-i", tar.to_str().unwrap()]);
    let both = |args: &[&str]| -> (String, String) {
        let mut b = vec!["run", "--rm", NONE, "cmpbb"];
        b.extend_from_slice(args);
        let mut k = vec!["run", "--rm", "--network=none", "cmpbb"];
        k.extend_from_slice(args);
        (out(&env.berth(&b)), d.ok(&k))
    };
    let fields = [
        "Seccomp",
        "NoNewPrivs",
        "CapInh",
        "CapPrm",
        "CapEff",
        "CapBnd",
        "CapAmb",
    ];
    let (b, k) = both(&["/bin/busybox", "cat", "/proc/self/status"]);
    assert_eq!(
        status_map(&b, &fields),
        status_map(&k, &fields),
        "berth:\n{b}\ndocker:\n{k}"
    );
    // Masked and read-only paths: every mount Docker makes under /proc and /sys, with the same
    // read-only flag. berth follows Docker 28, which also masks /proc/interrupts and
    // /sys/devices/virtual/powercap (this dockerd is 20.10). On a cgroup v1 host that includes
    // each hierarchy under /sys/fs/cgroup, read-only (the builtin runtime's init remounts them).
    let (b, k) = both(&["/bin/busybox", "cat", "/proc/self/mounts"]);
    let (bm, km) = (proc_sys_mounts(&b), proc_sys_mounts(&k));
    for (point, ro) in &km {
        assert_eq!(
            bm.get(point),
            Some(ro),
            "{point}: berth {bm:?}\ndocker {km:?}"
        );
    }
    for point in bm.keys().filter(|p| !km.contains_key(*p)) {
        assert!(
            ["/proc/interrupts", "/sys/devices/virtual/powercap"].contains(&point.as_str()),
            "berth only: {point}"
        );
    }
    // Syscall probes: exit statuses agree.
    for probe in [
        "/bin/busybox unshare -U true",
        "/bin/busybox mount -t tmpfs none /tmp",
        "/bin/busybox echo 1 > /proc/sys/kernel/panic",
        "/bin/busybox chroot / true",
        "/bin/busybox cat /proc/kcore",
    ] {
        let script = format!("{probe} >/dev/null 2>&1; /bin/busybox echo $?");
        let (b, k) = both(&["/bin/busybox", "sh", "-c", &script]);
        assert_eq!(b.trim(), k.trim(), "{probe}: berth {b} docker {k}");
    }
    let _ = d.docker(&["rmi", "-f", "cmpbb"]);
}
