//! `cp` into and out of the volumes and bind mounts of a container that is not running
//! (created, or exited), with `berth cp` and with the docker CLI on berth's socket: Docker
//! mounts the container's volumes and binds for the copy, so the files land in (and come
//! from) the volume or the host directory, never the container's own layer under the mount
//! point; a read-only mount refuses the copy; paths of the root filesystem still work; no
//! mount is left behind. Root integration tests.

mod common;

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A running `berth system service` on a socket in the test's directory, killed (by pid)
/// when dropped.
struct Service {
    child: Child,
    socket: PathBuf,
}

impl Service {
    fn start(env: &TestEnv) -> Service {
        let socket = env.dir.join("docker.sock");
        let uri = format!("unix://{}", socket.display());
        let child = env
            .cmd(&["system", "service", "--time", "0", &uri])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start berth system service");
        let s = Service { child, socket };
        let end = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&s.socket).is_err() {
            assert!(Instant::now() < end, "the service never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .env("DOCKER_CONFIG", self.socket.with_file_name("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null())
            .output()
            .expect("cannot run docker")
    }

    #[track_caller]
    fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn have_docker() -> bool {
    Command::new("docker")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The host's mounts of anything over a container root filesystem under `dir` (where a
/// copy's volume and bind mounts would show if they leaked out of its private mount
/// namespace). The root filesystems themselves are left out: a monitor may still be
/// unmounting one after `start -a` has returned.
fn mounts_under(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut v: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| m.starts_with(&needle) && m.contains("/rootfs/"))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// What a copy tool gives for one scenario, so berth's and docker's can be compared.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    /// The container's own view after a start: `cat` of the copied files.
    in_container: String,
    /// A new container with the same volume sees the file.
    volume_reused: String,
    /// The host directory of the bind got the file.
    on_host: String,
    /// Copied back out of the volume, the bind and the root filesystem.
    copied_out: (String, String, String),
    /// The message of the refused copy into the read-only bind.
    read_only_error: String,
    /// The file landed in the volume through a symlink of the root filesystem.
    through_symlink: String,
    /// The image's /etc content copied into the empty volume mounted there.
    copied_up: bool,
}

/// One run of the scenario with `cp` = berth's or docker's `cp` (and `tool` creating the
/// container the same way), for a container that is created (never started) or, with
/// `exited`, started once and exited. Names get `tag` so the runs share nothing.
fn scenario(env: &TestEnv, tag: &str, exited: bool, tool: &dyn Fn(&[&str]) -> Output) -> Seen {
    let ok = |args: &[&str]| -> String {
        let out = tool(args);
        assert!(
            out.status.success(),
            "{args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let host = env.dir.join(format!("host-{tag}"));
    let bind = host.join("bind");
    let ro = host.join("ro");
    std::fs::create_dir_all(&bind).unwrap();
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::write(ro.join("keep"), "kept\n").unwrap();
    let files = host.join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("x"), format!("volume {tag}\n")).unwrap();
    std::fs::write(files.join("y"), format!("bind {tag}\n")).unwrap();
    std::fs::write(files.join("z"), format!("rootfs {tag}\n")).unwrap();
    std::fs::write(files.join("w"), format!("symlink {tag}\n")).unwrap();
    let f = |n: &str| files.join(n).to_string_lossy().into_owned();

    let name = format!("cpm-{tag}");
    let vol = format!("cpmvol-{tag}");
    let etc = format!("cpmetc-{tag}");
    let vspec = format!("{vol}:/data");
    let bspec = format!("{}:/b", bind.display());
    let rspec = format!("{}:/r:ro", ro.display());
    let espec = format!("{etc}:/etc");
    ok(&[
        "create",
        "--name",
        &name,
        "--network",
        "none",
        "-v",
        &vspec,
        "-v",
        &bspec,
        "-v",
        &rspec,
        "-v",
        &espec,
        "busybox",
        "sh",
        "-c",
        "cat /data/x /b/y /tmp/z /data/w 2>&1; true",
    ]);
    if exited {
        ok(&["start", "-a", &name]);
    }
    assert_eq!(mounts_under(&env.dir), Vec::<String>::new());

    // Into the volume, the bind, the root filesystem.
    ok(&["cp", &f("x"), &format!("{name}:/data/x")]);
    ok(&["cp", &f("y"), &format!("{name}:/b/")]);
    ok(&["cp", &f("z"), &format!("{name}:/tmp/z")]);
    ok(&["cp", &f("x"), &format!("{name}:/etc/added")]);
    // A symlink of the root filesystem into the volume: followed in the container's view
    // (the volume mounted), as Docker does.
    let tar = {
        let mut b = TarBuilder::new();
        b.symlink("tovol", "/data");
        b.finish()
    };
    std::fs::write(host.join("link.tar"), tar).unwrap();
    let out = env
        .cmd(&["cp", "-", &format!("{name}:/")])
        .stdin(std::fs::File::open(host.join("link.tar")).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    ok(&["cp", &f("w"), &format!("{name}:/tovol/w")]);

    // A read-only bind refuses, the host directory unchanged.
    let refused = tool(&["cp", &f("x"), &format!("{name}:/r/")]);
    assert!(
        !refused.status.success(),
        "a copy into a read-only bind worked"
    );
    let read_only_error = String::from_utf8_lossy(&refused.stderr).trim().to_string();
    let mut left: Vec<String> = std::fs::read_dir(&ro)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["keep"]);

    // A symlink inside the bind naming a host directory: in the container that path does
    // not exist, so nothing reaches the host directory either way.
    let outside = host.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), "secret\n").unwrap();
    std::os::unix::fs::symlink(&outside, bind.join("esc")).unwrap();
    let _ = tool(&["cp", &f("x"), &format!("{name}:/b/esc/")]);
    let _ = tool(&["cp", &f("x"), &format!("{name}:/b/esc/x")]);
    assert!(
        !outside.join("x").exists(),
        "a copy followed a symlink out of the container"
    );
    let leak = host.join("leak");
    let out = tool(&[
        "cp",
        &format!("{name}:/b/esc/secret"),
        leak.to_str().unwrap(),
    ]);
    assert!(
        !out.status.success() && !leak.exists(),
        "a copy read a host file through a symlink"
    );
    std::fs::remove_file(bind.join("esc")).unwrap();

    // Back out.
    let outd = host.join("out");
    std::fs::create_dir_all(&outd).unwrap();
    let back = |src: &str, n: &str| -> String {
        ok(&[
            "cp",
            &format!("{name}:{src}"),
            outd.join(n).to_str().unwrap(),
        ]);
        std::fs::read_to_string(outd.join(n)).unwrap()
    };
    let copied_out = (back("/data/x", "x"), back("/b/y", "y"), back("/tmp/z", "z"));
    // Also the read-only bind's own file, and the volume's directory as a whole.
    assert_eq!(back("/r/keep", "keep"), "kept\n");
    ok(&[
        "cp",
        &format!("{name}:/data"),
        outd.join("whole").to_str().unwrap(),
    ]);
    assert!(outd.join("whole/x").is_file());

    assert_eq!(
        mounts_under(&env.dir),
        Vec::<String>::new(),
        "the copies left mounts behind"
    );

    let on_host = std::fs::read_to_string(bind.join("y")).unwrap_or_default();
    let in_container = ok(&["start", "-a", &name]);
    let volume_reused = env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &vspec,
        "busybox",
        "cat",
        "/data/x",
        "/data/w",
    ]);
    let through_symlink = env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &vspec,
        "busybox",
        "ls",
        "/data",
    ]);
    let etc_list = env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &format!("{etc}:/e"),
        "busybox",
        "ls",
        "/e",
    ]);
    let copied_up =
        etc_list.lines().any(|l| l == "passwd") && etc_list.lines().any(|l| l == "added");
    ok(&["rm", "-f", &name]);
    Seen {
        in_container,
        volume_reused,
        on_host,
        copied_out,
        read_only_error,
        through_symlink,
        copied_up,
    }
}

fn expect(tag: &str) -> (String, String, String, (String, String, String), String) {
    (
        format!("volume {tag}\nbind {tag}\nrootfs {tag}\nsymlink {tag}\n"),
        format!("volume {tag}\nsymlink {tag}\n"),
        format!("bind {tag}\n"),
        (
            format!("volume {tag}\n"),
            format!("bind {tag}\n"),
            format!("rootfs {tag}\n"),
        ),
        "w\nx\n".to_string(),
    )
}

#[track_caller]
fn check(s: &Seen, tag: &str) {
    let (inside, reused, host, out, ls) = expect(tag);
    assert_eq!(s.in_container, inside);
    assert_eq!(s.volume_reused, reused);
    assert_eq!(s.on_host, host);
    assert_eq!(s.copied_out, out);
    assert_eq!(s.through_symlink, ls);
    assert!(
        s.copied_up,
        "the empty volume at /etc did not get the image's files"
    );
    assert!(
        s.read_only_error
            .contains("mounted volume is marked read-only"),
        "{}",
        s.read_only_error
    );
}

/// `berth cp` on a created and on an exited container.
#[test]
fn berth_cp_reaches_volumes_and_binds_of_stopped_containers() {
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let berth = |a: &[&str]| env.berth(a);
    for (tag, exited) in [("bc", false), ("be", true)] {
        let s = scenario(&env, tag, exited, &berth);
        check(&s, tag);
        assert_eq!(
            s.read_only_error,
            "berth: mounted volume is marked read-only"
        );
    }

    // A tmpfs exists only while the container runs: copied into an exited container, a file
    // under its destination lands in the root filesystem (as with Docker) and is hidden by
    // the fresh tmpfs of the next start.
    env.ok(&[
        "run",
        "--name",
        "cpm-tmp",
        "--network",
        "none",
        "--tmpfs",
        "/t",
        "busybox",
        "true",
    ]);
    std::fs::write(env.dir.join("q"), "q\n").unwrap();
    let q = env.dir.join("q").to_string_lossy().into_owned();
    env.ok(&["cp", &q, "cpm-tmp:/t/"]);
    let q_back = env.dir.join("q-back");
    env.ok(&["cp", "cpm-tmp:/t/q", q_back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(q_back).unwrap(), "q\n");
    assert!(env.ok(&["diff", "cpm-tmp"]).lines().any(|l| l == "A /t/q"));
    env.ok(&["rm", "cpm-tmp"]);

    // Nested mounts: the longest destination holding the path takes the copy.
    let sub = env.dir.join("nested-sub");
    let rosub = env.dir.join("nested-ro");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::create_dir_all(&rosub).unwrap();
    let sspec = format!("{}:/data/sub", sub.display());
    let rspec = format!("{}:/data/sub/ro:ro", rosub.display());
    env.ok(&[
        "create",
        "--name",
        "cpm-nest",
        "-v",
        "cpm-nestvol:/data",
        "-v",
        &sspec,
        "-v",
        &rspec,
        "busybox",
        "true",
    ]);
    std::fs::write(env.dir.join("n"), "n\n").unwrap();
    let n = env.dir.join("n").to_string_lossy().into_owned();
    env.ok(&["cp", &n, "cpm-nest:/data/sub/"]);
    assert_eq!(std::fs::read_to_string(sub.join("n")).unwrap(), "n\n");
    let (_, msg) = env.fails(&["cp", &n, "cpm-nest:/data/sub/ro/"]);
    assert!(msg.contains("mounted volume is marked read-only"), "{msg}");
    env.ok(&["cp", &n, "cpm-nest:/data/top"]);
    let vol_ls = env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "cpm-nestvol:/v",
        "busybox",
        "ls",
        "/v",
    ]);
    assert_eq!(
        vol_ls, "sub\ntop\n",
        "the volume holds its own file and the mount point"
    );
    env.ok(&["rm", "cpm-nest"]);

    // A bind whose host directory is gone: the copy says so (Docker fails there too).
    let gone = env.dir.join("gone");
    std::fs::create_dir_all(&gone).unwrap();
    let gspec = format!("{}:/g", gone.display());
    env.ok(&[
        "create", "--name", "cpm-gone", "-v", &gspec, "busybox", "true",
    ]);
    std::fs::remove_dir(&gone).unwrap();
    let (_, msg) = env.fails(&["cp", "cpm-gone:/etc/passwd", "-"]);
    assert!(msg.contains("bind source path does not exist"), "{msg}");
    env.ok(&["rm", "cpm-gone"]);

    // A running container's read-only bind refuses with the same message.
    let ro = env.dir.join("run-ro");
    std::fs::create_dir_all(&ro).unwrap();
    let rspec = format!("{}:/r:ro", ro.display());
    env.ok(&[
        "run",
        "-d",
        "--name",
        "cpm-run",
        "--network",
        "none",
        "-v",
        &rspec,
        "busybox",
        "sleep",
        "300",
    ]);
    std::fs::write(env.dir.join("h"), "h\n").unwrap();
    let h = env.dir.join("h").to_string_lossy().into_owned();
    let (_, msg) = env.fails(&["cp", &h, "cpm-run:/r/"]);
    assert!(msg.contains("mounted volume is marked read-only"), "{msg}");
    env.ok(&["rm", "-f", "cpm-run"]);

    // A read-only root filesystem: its own paths refuse, its volumes take the copy.
    std::fs::write(env.dir.join("f"), "f\n").unwrap();
    let f = env.dir.join("f").to_string_lossy().into_owned();
    // A bound file (its mount point made in the stopped container's root) reads as the host
    // file.
    std::fs::write(env.dir.join("conf"), "host conf\n").unwrap();
    let fspec = format!("{}:/etc/app.conf:ro", env.dir.join("conf").display());
    env.ok(&[
        "create",
        "--name",
        "cpm-ro",
        "--read-only",
        "-v",
        "cpm-rovol:/data",
        "-v",
        &fspec,
        "busybox",
        "true",
    ]);
    let conf = env.dir.join("conf-back");
    env.ok(&["cp", "cpm-ro:/etc/app.conf", conf.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(conf).unwrap(), "host conf\n");
    let (_, msg) = env.fails(&["cp", &f, "cpm-ro:/tmp/"]);
    assert!(
        msg.contains("container rootfs is marked read-only"),
        "{msg}"
    );
    env.ok(&["cp", &f, "cpm-ro:/data/"]);
    let back = env.dir.join("f-back");
    env.ok(&["cp", "cpm-ro:/data/f", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(back).unwrap(), "f\n");
}

/// A copy killed with SIGKILL while its mounts are up (they exist only in its worker's
/// private mount namespace) leaves no mount on the host, and the container stays usable.
#[test]
fn killed_cp_of_a_stopped_container_leaves_no_mount() {
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let bind = env.dir.join("kbind");
    std::fs::create_dir_all(&bind).unwrap();
    let bspec = format!("{}:/b", bind.display());
    env.ok(&[
        "create",
        "--name",
        "cpm-kill",
        "--network",
        "none",
        "-v",
        "cpm-kvol:/data",
        "-v",
        &bspec,
        "busybox",
        "ls",
        "/data",
    ]);
    assert_eq!(mounts_under(&env.dir), Vec::<String>::new());
    let mut child = env
        .cmd(&["cp", "-", "cpm-kill:/data/"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // One entry's header and part of its data: the copy waits for the rest.
    let mut h = tar::Header::new_gnu();
    h.set_path("big").unwrap();
    h.set_size(1 << 20);
    h.set_mode(0o644);
    h.set_cksum();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, h.as_bytes()).unwrap();
    std::io::Write::write_all(&mut stdin, &[b'x'; 4096]).unwrap();
    // Wait until one of its threads has the bind mounted over the container's /b.
    let pid = child.id();
    let sees_bind = || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|t| {
                std::fs::read_to_string(t.path().join("mountinfo")).is_ok_and(|m| {
                    // Mount points show relative to the thread's root (the container's).
                    m.lines().any(|l| l.split_whitespace().nth(4) == Some("/b"))
                })
            })
    };
    let end = Instant::now() + Duration::from_secs(20);
    while !sees_bind() {
        assert!(Instant::now() < end, "the copy never mounted the bind");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        mounts_under(&env.dir),
        Vec::<String>::new(),
        "the copy's mounts reached the host"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    assert_eq!(
        mounts_under(&env.dir),
        Vec::<String>::new(),
        "a killed copy left mounts behind"
    );
    // The store and the container are fine: it starts and sees its volume.
    env.ok(&["start", "-a", "cpm-kill"]);
    env.ok(&["rm", "cpm-kill"]);
}

/// The docker CLI on berth's socket does the same as `berth cp` (same files, same message
/// for the read-only bind), through `HEAD`/`GET`/`PUT /containers/{id}/archive`.
#[test]
fn docker_cp_reaches_volumes_and_binds_of_stopped_containers() {
    if !have_docker() {
        eprintln!("skipped: no docker CLI");
        return;
    }
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let svc = Service::start(&env);
    let docker = |a: &[&str]| svc.docker(a);
    for (tag, exited) in [("dc", false), ("de", true)] {
        let s = scenario(&env, tag, exited, &docker);
        check(&s, tag);
        assert_eq!(
            s.read_only_error,
            "Error response from daemon: mounted volume is marked read-only"
        );
    }
    // The stat (HEAD) sees the volume: a directory that exists only in the volume is a
    // destination directory of a stopped container.
    svc.docker_ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "cpm-mk",
        "-v",
        "cpm-mkvol:/data",
        "busybox",
        "mkdir",
        "/data/only-in-volume",
    ]);
    std::fs::write(env.dir.join("g"), "g\n").unwrap();
    let g = env.dir.join("g").to_string_lossy().into_owned();
    svc.docker_ok(&["cp", &g, "cpm-mk:/data/only-in-volume/"]);
    let back = env.dir.join("g-back");
    svc.docker_ok(&[
        "cp",
        "cpm-mk:/data/only-in-volume/g",
        back.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(back).unwrap(), "g\n");
    svc.docker_ok(&["rm", "cpm-mk"]);
}
