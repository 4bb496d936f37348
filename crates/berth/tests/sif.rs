//! Apptainer's workflow: definition files, SIF images, `./x.sif ARGS` as root and as an
//! unprivileged user (root integration tests; each creates and removes its own test user).

mod common;
#[path = "common/registry.rs"]
mod registry_support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::TestEnv;

static USERS: AtomicUsize = AtomicUsize::new(0);

/// An unprivileged user created for one test, removed on drop (with its files under the test
/// directory, which TestEnv removes).
struct TestUser {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

impl TestUser {
    fn new(env: &TestEnv) -> TestUser {
        let n = USERS.fetch_add(1, Ordering::SeqCst);
        let name = format!("bsif{}x{n}", std::process::id() % 100_000);
        let home = env.dir.join(format!("home-{name}"));
        let st = Command::new("useradd")
            .args(["-M", "-s", "/bin/sh", "-U", "-d"])
            .arg(&home)
            .arg(&name)
            .status()
            .expect("useradd");
        assert!(st.success(), "useradd {name} failed");
        let id = |flag: &str| -> u32 {
            let o = Command::new("id").arg(flag).arg(&name).output().unwrap();
            String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        std::fs::create_dir_all(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(uid), Some(gid)).unwrap();
        TestUser {
            name,
            uid,
            gid,
            home,
        }
    }

    /// A command run as this user, in `cwd`, with a login-like environment and `bin` first on
    /// PATH (where `run-singularity` is).
    fn cmd(&self, prog: &Path, args: &[&str], cwd: &Path, bin: &Path) -> Command {
        let mut c = Command::new(prog);
        c.args(args)
            .current_dir(cwd)
            .env_clear()
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env(
                "PATH",
                format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display()),
            )
            .uid(self.uid)
            .gid(self.gid)
            .stdin(Stdio::null());
        c
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Its processes are gone (every command was waited for); remove the account.
        let _ = Command::new("userdel").arg(&self.name).status();
        let _ = Command::new("groupdel")
            .arg(&self.name)
            .stderr(Stdio::null())
            .status();
    }
}

/// A directory with `run-singularity` → the berth under test (what setup.sh installs).
fn launcher_bin(env: &TestEnv) -> PathBuf {
    let bin = env.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let link = bin.join("run-singularity");
    if !link.exists() {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_berth"), &link).unwrap();
    }
    bin
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A world-readable directory for images and scripts (the test dir itself is root's).
fn shared_dir(env: &TestEnv, name: &str) -> PathBuf {
    let d = env.dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&env.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    d
}

const DEF: &str = "Bootstrap: localimage
From: sifbase:1

%labels
    Author berth-tests
    Version 1

%post
    echo POST-RAN-MARKER
    echo built > /built
    echo 'export FROMPOST=yes' >> $APPTAINER_ENVIRONMENT

%environment
    export FROMDEF=yes
    export OVERRIDE=fromdef

%runscript
    echo \"args: $*\"
    echo \"fromdef=$FROMDEF frompost=$FROMPOST host=$HOSTVAR override=$OVERRIDE\"
    echo \"uid=$(id -u) pwd=$PWD\"
    if [ \"$1\" = write ]; then echo hello > written.txt; fi
    if [ \"$1\" = fail ]; then exit 3; fi
    exit 0

%test
    test -f /built

%help
    Test image.
";

/// Build DEF (with `runscript_extra` appended to the runscript) into `dir/name`.
fn build(env: &TestEnv, dir: &Path, name: &str, def: &str) -> (PathBuf, Output) {
    let defp = dir.join(format!("{name}.def"));
    std::fs::write(&defp, def).unwrap();
    let out = dir.join(name);
    let o = env.berth(&[
        "sif",
        "build",
        "--force",
        out.to_str().unwrap(),
        defp.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "build failed: {}", text(&o));
    (out, o)
}

#[test]
fn sif_build_from_store_and_run_as_root_and_user() {
    let env = TestEnv::new();
    env.busybox_image("sifbase:1");
    let dir = shared_dir(&env, "work");
    let (sif, _) = build(&env, &dir, "app.sif", DEF);

    // Format: our reader, and the squashfs partition read by unsquashfs.
    let s = berth_sif::Sif::open(&sif).unwrap();
    assert_eq!(s.header.launch, "#!/usr/bin/env run-singularity\n");
    let part = s.rootfs_partition().unwrap();
    let ls = Command::new("unsquashfs")
        .args(["-l", "-o", &part.offset.to_string()])
        .arg(&sif)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&ls.stdout);
    for p in [
        ".singularity.d/runscript",
        ".singularity.d/env/90-environment.sh",
        ".singularity.d/labels.json",
        "squashfs-root/environment",
        "squashfs-root/singularity",
        "squashfs-root/built",
    ] {
        assert!(
            listing.contains(p),
            "{p} missing from the squashfs:\n{listing}"
        );
    }

    // As root, run like a script, with the host environment passed through.
    let bin = launcher_bin(&env);
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.display());
    let o = Command::new(&sif)
        .args(["a", "b c"])
        .current_dir(&dir)
        .env("PATH", &path)
        .env("HOSTVAR", "hv")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("args: a b c"), "{out}");
    assert!(
        out.contains("fromdef=yes frompost=yes host=hv override=fromdef"),
        "{out}"
    );
    assert!(out.contains("uid=0"), "{out}");
    assert!(out.contains(&format!("pwd={}", dir.display())), "{out}");
    // The runscript's exit status is berth's.
    let o = Command::new(&sif)
        .arg("fail")
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    // --env wins over %environment.
    let o = env.berth(&["sif", "run", "--env", "OVERRIDE=cli", sif.to_str().unwrap()]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("override=cli"),
        "{}",
        text(&o)
    );
    // %test passes.
    env.ok(&["sif", "test", sif.to_str().unwrap()]);

    // As an unprivileged user: files written in the cwd are the user's; $HOME is visible.
    let user = TestUser::new(&env);
    let cwd = user.home.join("proj");
    std::fs::create_dir_all(&cwd).unwrap();
    std::os::unix::fs::chown(&cwd, Some(user.uid), Some(user.gid)).unwrap();
    std::fs::write(user.home.join("marker"), "in-home\n").unwrap();
    let o = user
        .cmd(&sif, &["write"], &cwd, &bin)
        .env("HOSTVAR", "uv")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&format!("uid={}", user.uid)), "{out}");
    assert!(out.contains("host=uv"), "{out}");
    let md = std::fs::metadata(cwd.join("written.txt")).expect("runscript wrote into the cwd");
    assert_eq!((md.uid(), md.gid()), (user.uid, user.gid));
    let berth = Path::new(env!("CARGO_BIN_EXE_berth"));
    let marker = user.home.join("marker");
    let o = user
        .cmd(
            berth,
            &[
                "sif",
                "exec",
                sif.to_str().unwrap(),
                "cat",
                marker.to_str().unwrap(),
            ],
            &cwd,
            &bin,
        )
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "in-home\n");
    // whoami works (the user's passwd entry is added).
    let o = user
        .cmd(
            berth,
            &["sif", "exec", sif.to_str().unwrap(), "whoami"],
            &cwd,
            &bin,
        )
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        user.name,
        "{}",
        text(&o)
    );
    // --contain hides $HOME.
    let o = user
        .cmd(
            berth,
            &[
                "sif",
                "exec",
                "--contain",
                sif.to_str().unwrap(),
                "cat",
                marker.to_str().unwrap(),
            ],
            &cwd,
            &bin,
        )
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "--contain should hide $HOME: {}",
        text(&o)
    );
    // The image is read-only unless --writable-tmpfs.
    let o = user
        .cmd(
            berth,
            &["sif", "exec", sif.to_str().unwrap(), "touch", "/newfile"],
            &cwd,
            &bin,
        )
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));

    // inspect shows labels and the runscript.
    let o = env.ok(&["sif", "inspect", sif.to_str().unwrap()]);
    assert!(o.contains("Author: berth-tests"), "{o}");
    let o = env.ok(&["sif", "inspect", "--runscript", sif.to_str().unwrap()]);
    assert!(o.contains("echo \"args: $*\""), "{o}");
    let o = env.ok(&["sif", "inspect", "--deffile", sif.to_str().unwrap()]);
    assert!(o.contains("From: sifbase:1"), "{o}");
}

#[test]
fn sif_run_flags_bind_pwd_cleanenv_writable_nv() {
    let env = TestEnv::new();
    env.busybox_image("sifbase:1");
    let dir = shared_dir(&env, "work");
    let (sif, _) = build(&env, &dir, "f.sif", DEF);
    let s = sif.to_str().unwrap();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("in.txt"), "bound\n").unwrap();
    let bind = format!("{}:/mnt/data:ro", data.display());
    let o = env.ok(&[
        "sif",
        "exec",
        "--bind",
        &bind,
        "--pwd",
        "/mnt/data",
        s,
        "cat",
        "in.txt",
    ]);
    assert_eq!(o, "bound\n");
    // Read-only bind.
    let o = env.berth(&["sif", "exec", "--bind", &bind, s, "touch", "/mnt/data/x"]);
    assert!(!o.status.success(), "{}", text(&o));
    // --cleanenv drops the host's variables; %environment still applies.
    let o = env
        .cmd(&["sif", "exec", "--cleanenv", s, "env"])
        .env("HOSTVAR", "hv")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        !out.contains("HOSTVAR") && out.contains("FROMDEF=yes"),
        "{out}"
    );
    // --writable-tmpfs: writes succeed and vanish.
    env.ok(&["sif", "exec", "--writable-tmpfs", s, "touch", "/newfile"]);
    let o = env.berth(&["sif", "exec", s, "test", "-e", "/newfile"]);
    assert!(!o.status.success());
    // --nv is refused clearly on a machine without an NVIDIA GPU.
    if !Path::new("/dev/nvidiactl").exists() {
        let (code, err) = env.fails(&["sif", "exec", "--nv", s, "true"]);
        assert_eq!(code, 255);
        assert!(
            err.contains("--nv") && err.contains("no NVIDIA GPU"),
            "{err}"
        );
    }
}

#[test]
fn sif_malformed_definition_names_its_line() {
    let env = TestEnv::new();
    let dir = shared_dir(&env, "work");
    let defp = dir.join("bad.def");
    std::fs::write(&defp, "Bootstrap: localimage\nFrom: x\n\n%pots\n    true\n").unwrap();
    let out = dir.join("bad.sif");
    let (code, err) = env.fails(&[
        "sif",
        "build",
        out.to_str().unwrap(),
        defp.to_str().unwrap(),
    ]);
    assert_eq!(code, 255);
    assert!(err.contains("bad.def:4: unknown section %pots"), "{err}");
    assert!(!out.exists());
    std::fs::write(&defp, "Bootstrap: localimage\nFrom: {{ BASE }}\n").unwrap();
    let (_, err) = env.fails(&[
        "sif",
        "build",
        out.to_str().unwrap(),
        defp.to_str().unwrap(),
    ]);
    assert!(err.contains("bad.def:2: build argument BASE"), "{err}");
}

#[test]
fn sif_truncated_or_corrupted_is_refused() {
    let env = TestEnv::new();
    env.busybox_image("sifbase:1");
    let dir = shared_dir(&env, "work");
    let (sif, _) = build(&env, &dir, "ok.sif", DEF);
    let data = std::fs::read(&sif).unwrap();
    let bin = launcher_bin(&env);
    let path = format!("{}:/usr/bin:/bin", bin.display());

    let trunc = dir.join("trunc.sif");
    std::fs::write(&trunc, &data[..data.len() - 5000]).unwrap();
    std::fs::set_permissions(&trunc, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = Command::new(&trunc).env("PATH", &path).output().unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("truncated"),
        "{}",
        text(&o)
    );

    let bad = dir.join("bad.sif");
    let mut b = data.clone();
    b[35] ^= 0xff; // inside SIF_MAGIC
    std::fs::write(&bad, &b).unwrap();
    let (_, err) = env.fails(&["sif", "run", bad.to_str().unwrap()]);
    assert!(err.contains("not a SIF image"), "{err}");
    let (_, err) = env.fails(&["sif", "inspect", bad.to_str().unwrap()]);
    assert!(err.contains("not a SIF image"), "{err}");
}

#[test]
fn sif_cache_skips_post_on_unchanged_rebuild() {
    let env = TestEnv::new();
    env.busybox_image("sifbase:1");
    let dir = shared_dir(&env, "work");
    let (_, first) = build(&env, &dir, "c.sif", DEF);
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("POST-RAN-MARKER"),
        "{}",
        text(&first)
    );
    let (_, again) = build(&env, &dir, "c.sif", DEF);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        !String::from_utf8_lossy(&again.stdout).contains("POST-RAN-MARKER"),
        "{}",
        text(&again)
    );
    assert!(err.contains("skipping %post"), "{err}");
    // A %runscript-only change still skips %post, and the new runscript is used.
    let changed = DEF.replace("exit 0\n", "echo CHANGED\n    exit 0\n");
    let (sif, third) = build(&env, &dir, "c.sif", &changed);
    assert!(!String::from_utf8_lossy(&third.stdout).contains("POST-RAN-MARKER"));
    let o = env.ok(&["sif", "run", sif.to_str().unwrap()]);
    assert!(o.contains("CHANGED") && o.contains("frompost=yes"), "{o}");
}

#[test]
fn sif_import_and_apptainer_written_images() {
    let env = TestEnv::new();
    env.busybox_image("sifbase:1");
    let dir = shared_dir(&env, "work");
    let (sif, _) = build(&env, &dir, "i.sif", DEF);
    // SIF → OCI image in berth's store, runnable with `berth run`.
    env.ok(&["sif", "import", sif.to_str().unwrap(), "sifimported:1"]);
    let o = env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "sifimported:1",
        "x",
        "y",
    ]);
    assert!(o.contains("args: x y") && o.contains("fromdef=yes"), "{o}");
    // Images from berth's store, oci-archives and sandboxes build directly.
    let from_store = dir.join("store.sif");
    env.ok(&["sif", "build", from_store.to_str().unwrap(), "sifbase:1"]);
    let o = env.ok(&[
        "sif",
        "exec",
        from_store.to_str().unwrap(),
        "cat",
        "/etc/group",
    ]);
    assert!(o.contains("app:x:1000"), "{o}");
    let arch = env.path("base-oci.tar");
    common::busybox_oci_archive(&arch, "sifoci:1");
    let from_oci = dir.join("oci.sif");
    env.ok(&[
        "sif",
        "build",
        from_oci.to_str().unwrap(),
        &format!("oci-archive:{}", arch.display()),
    ]);
    env.ok(&["sif", "exec", from_oci.to_str().unwrap(), "true"]);
    let sandbox = dir.join("sandbox");
    env.ok(&[
        "sif",
        "build",
        "--sandbox",
        sandbox.to_str().unwrap(),
        sif.to_str().unwrap(),
    ]);
    assert!(sandbox.join(".singularity.d/runscript").is_file());
    let o = env.ok(&["sif", "run", sandbox.to_str().unwrap(), "sb"]);
    assert!(o.contains("args: sb"), "{o}");

    // An image written by sylabs' SIF library (as Apptainer writes them) is read back by that
    // library and runs under berth.
    let Some(sifcheck) = sifcheck(&env) else {
        eprintln!(
            "skipping the sylabs SIF library checks: go or golang-github-sylabs-sif-dev missing"
        );
        return;
    };
    let o = Command::new(&sifcheck)
        .arg("read")
        .arg(&sif)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let r = String::from_utf8_lossy(&o.stdout);
    assert!(
        r.contains("launch=\"#!/usr/bin/env run-singularity\\n\""),
        "{r}"
    );
    assert!(r.contains("version=01"), "{r}");
    assert!(r.contains("type=Def.FILE"), "{r}");
    assert!(r.contains("type=JSON.Labels"), "{r}");
    assert!(
        r.contains("type=FS") && r.contains("fs=Squashfs part=*System arch=amd64"),
        "{r}"
    );
    // Their writer: our squashfs partition and definition, their container format.
    let s = berth_sif::Sif::open(&sif).unwrap();
    let sq = env.path("part.sqfs");
    s.extract_partition(&sq).unwrap();
    let theirs = dir.join("theirs.sif");
    let def = dir.join("theirs.def");
    std::fs::write(&def, DEF).unwrap();
    let o = Command::new(&sifcheck)
        .arg("write")
        .arg(&theirs)
        .arg(&sq)
        .arg(&def)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = env.ok(&["sif", "run", theirs.to_str().unwrap(), "t"]);
    assert!(o.contains("args: t"), "{o}");
    let o = env.ok(&["sif", "inspect", "--deffile", theirs.to_str().unwrap()]);
    assert!(o.contains("Bootstrap: localimage"), "{o}");
}

#[test]
fn sif_multistage_files_setup_and_build_args() {
    let env = TestEnv::new();
    env.busybox_image("sifbase:1");
    let dir = shared_dir(&env, "work");
    std::fs::write(dir.join("hostfile.txt"), "from-host\n").unwrap();
    let def = format!(
        "Bootstrap: localimage
From: {{{{ BASE }}}}
Stage: build

%post
    echo artifact > /artifact

Bootstrap: localimage
From: sifbase:1

%setup
    echo from-setup > $APPTAINER_ROOTFS/setup.txt

%files
    {host} /opt/host.txt

%files from build
    /artifact /copied
",
        host = dir.join("hostfile.txt").display()
    );
    let defp = dir.join("multi.def");
    std::fs::write(&defp, def).unwrap();
    let out = dir.join("multi.sif");
    env.ok(&[
        "sif",
        "build",
        "--build-arg",
        "BASE=sifbase:1",
        out.to_str().unwrap(),
        defp.to_str().unwrap(),
    ]);
    let o = env.ok(&[
        "sif",
        "exec",
        out.to_str().unwrap(),
        "cat",
        "/copied",
        "/setup.txt",
        "/opt/host.txt",
    ]);
    assert_eq!(o, "artifact\nfrom-setup\nfrom-host\n");
    // The stored definition has the build argument substituted.
    let o = env.ok(&["sif", "inspect", "--deffile", out.to_str().unwrap()]);
    assert!(o.contains("From: sifbase:1"), "{o}");
}

#[test]
fn sif_build_from_registry_and_instances() {
    let reg = registry_support::Registry::plain();
    let env = TestEnv::new();
    env.busybox_image("sifpush:1");
    let dest = format!("{}/team/sifapp:1", reg.host());
    env.ok(&["push", "sifpush:1", &dest]);
    let dir = shared_dir(&env, "work");
    let sif = dir.join("reg.sif");
    env.ok(&[
        "sif",
        "build",
        sif.to_str().unwrap(),
        &format!("docker://{dest}"),
    ]);
    let o = env.ok(&["sif", "exec", sif.to_str().unwrap(), "cat", "/etc/passwd"]);
    assert!(o.contains("app:x:1000"), "{o}");

    // An instance runs %startscript in the background until stopped.
    let def = "Bootstrap: localimage\nFrom: sifpush:1\n\n%startscript\n    echo started-$1\n    exec sleep 1000\n";
    let (svc, _) = build(&env, &dir, "svc.sif", def);
    let name = format!("sifinst{}", std::process::id());
    let cache = env.dir.join("instcache");
    let run = |args: &[&str]| {
        env.cmd(args)
            .env("XDG_CACHE_HOME", &cache)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let o = run(&[
        "sif",
        "instance",
        "start",
        svc.to_str().unwrap(),
        &name,
        "arg1",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["sif", "instance", "list"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&name),
        "{}",
        text(&o)
    );
    let log = cache
        .join("berth/sif-instances")
        .join(format!("{name}.out"));
    let mut seen = String::new();
    for _ in 0..100 {
        seen = std::fs::read_to_string(&log).unwrap_or_default();
        if seen.contains("started-arg1") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(seen.contains("started-arg1"), "{seen}");
    let o = run(&["sif", "instance", "stop", &name]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["sif", "instance", "list"]);
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains(&name),
        "{}",
        text(&o)
    );
}

/// Build the sylabs-library checker (tests/sifcheck) offline from Debian's sources.
fn sifcheck(env: &TestEnv) -> Option<PathBuf> {
    let src = Path::new("/usr/share/gocode/src/github.com/sylabs/sif");
    let uuid = Path::new("/usr/share/gocode/src/github.com/google/uuid");
    if !src.is_dir() || !uuid.is_dir() {
        return None;
    }
    let gopath = env.dir.join("gopath");
    std::fs::create_dir_all(gopath.join("src/github.com/sylabs/sif")).ok()?;
    std::fs::create_dir_all(gopath.join("src/github.com/google")).ok()?;
    std::fs::create_dir_all(gopath.join("src/sifcheck")).ok()?;
    std::os::unix::fs::symlink(src, gopath.join("src/github.com/sylabs/sif/v2")).ok()?;
    std::os::unix::fs::symlink(uuid, gopath.join("src/github.com/google/uuid")).ok()?;
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sifcheck/main.go"),
        gopath.join("src/sifcheck/main.go"),
    )
    .ok()?;
    let out = gopath.join("sifcheck");
    let st = Command::new("go")
        .args(["build", "-o"])
        .arg(&out)
        .arg(".")
        .current_dir(gopath.join("src/sifcheck"))
        .env("GO111MODULE", "off")
        .env("GOPATH", &gopath)
        .env("GOCACHE", gopath.join("cache"))
        .env("GOFLAGS", "")
        .status()
        .ok()?;
    st.success().then_some(out)
}

/// The example's definition, built with debootstrap from Debian's mirror; skipped when the
/// mirror cannot be reached (or BERTH_TEST_NO_MIRROR is set).
#[test]
fn sif_debootstrap_lolcow_from_debian_mirror() {
    if std::env::var_os("BERTH_TEST_NO_MIRROR").is_some() || !mirror_reachable() {
        eprintln!("skipping: deb.debian.org:80 unreachable (or BERTH_TEST_NO_MIRROR set)");
        return;
    }
    let env = TestEnv::new();
    let dir = shared_dir(&env, "lolcow");
    let def = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/lolcow/Singularity"),
    )
    .unwrap();
    std::fs::write(dir.join("Singularity"), def).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["sif", "build", "--force", "lolcow.sif", "Singularity"])
        .current_dir(&dir)
        .env("BERTH_ROOT", &env.root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let user = TestUser::new(&env);
    let bin = launcher_bin(&env);
    let cwd = user.home.clone();
    std::fs::write(cwd.join("in.txt"), "moo from berth\n").unwrap();
    let sif = dir.join("lolcow.sif");
    let o = user
        .cmd(&sif, &["in.txt", "out.txt"], &cwd, &bin)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let cow = std::fs::read_to_string(cwd.join("out.txt")).unwrap();
    assert!(
        cow.contains("moo from berth") && cow.contains("(oo)"),
        "{cow}"
    );
    assert_eq!(
        std::fs::metadata(cwd.join("out.txt")).unwrap().uid(),
        user.uid
    );
    let o = user.cmd(&sif, &["only-one"], &cwd, &bin).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Please provide an input and an output file.")
    );
}

fn mirror_reachable() -> bool {
    use std::net::ToSocketAddrs;
    let Ok(addrs) = ("deb.debian.org", 80).to_socket_addrs() else {
        return false;
    };
    addrs.take(2).any(|a| {
        std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(5)).is_ok()
    })
}
