//! Volumes: named and anonymous, copy-up, `--mount`, `--volumes-from`, in-use protection
//! (root integration tests).

mod common;

use common::*;

const NONE: &str = "--network=none";

/// busybox plus `/data` (owned 1000:1000, mode 0750) holding `f` (1001:1002, 0640) and a
/// symlink pointing out of the root, with `VOLUME /data`.
fn volume_image(env: &TestEnv, name: &str) {
    let l = TestLayer::new(&busybox_rootfs(), Comp::None);
    let mut t = TarBuilder::new();
    t.dir_owned("data", 0o750, 1000, 1000)
        .file_owned("data/f", 0o640, 1001, 1002, b"from the image\n")
        .dir_owned("data/sub", 0o700, 1003, 1003)
        .symlink("data/escape", "/../../../../etc");
    let l2 = TestLayer::new(&t.finish(), Comp::None);
    let cfg = serde_json::json!({
        "architecture": host_arch(), "os": "linux",
        "config": {"Cmd": ["sh"], "Env": [PATH_ENV], "Volumes": {"/data": {}}},
        "rootfs": {"type": "layers", "diff_ids": [l.diff_id.clone(), l2.diff_id.clone()]}
    });
    let p = env.path("volimg.tar");
    write_docker_archive(&p, &serde_json::to_vec(&cfg).unwrap(), &[l, l2], &[name]);
    env.ok(&["load", "-i", p.to_str().unwrap()]);
}

fn names(env: &TestEnv) -> Vec<String> {
    let mut v: Vec<String> = env
        .ok(&["volume", "ls", "-q"])
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

#[test]
fn named_volume_keeps_data_across_containers() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    assert_eq!(env.ok(&["volume", "create", "dbdata"]), "dbdata\n");
    // Creating it again is fine (Docker returns the existing volume).
    env.ok(&["volume", "create", "dbdata"]);
    env.ok(&[
        "run",
        "--rm",
        NONE,
        "-v",
        "dbdata:/var/lib/db",
        "bb",
        "sh",
        "-c",
        "echo kept > /var/lib/db/f",
    ]);
    assert_eq!(
        env.ok(&["run", "--rm", NONE, "-v", "dbdata:/d", "bb", "cat", "/d/f"]),
        "kept\n"
    );
    // --mount readonly: readable, not writable.
    let m = "type=volume,src=dbdata,dst=/data,readonly";
    assert_eq!(
        env.ok(&["run", "--rm", NONE, "--mount", m, "bb", "ls", "/data"]),
        "f\n"
    );
    let o = env.berth(&["run", "--rm", NONE, "--mount", m, "bb", "touch", "/data/x"]);
    assert!(!o.status.success());
    // -v NAME creates a missing volume.
    env.ok(&["run", "--rm", NONE, "-v", "auto:/a", "bb", "true"]);
    assert_eq!(names(&env), vec!["auto", "dbdata"]);
    let mp = env.ok(&["volume", "inspect", "--format", "{{.Mountpoint}}", "dbdata"]);
    assert_eq!(
        std::fs::read_to_string(std::path::Path::new(mp.trim()).join("f")).unwrap(),
        "kept\n"
    );
    // In use: cannot be removed, with a clear error; free again once the container is gone.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "holder",
        NONE,
        "-v",
        "dbdata:/d",
        "bb",
        "sleep",
        "100",
    ]);
    let mounts = env.ok(&["inspect", "--format", "{{json .Mounts}}", "holder"]);
    assert!(
        mounts.contains("\"Name\":\"dbdata\"") && mounts.contains("\"Type\":\"volume\""),
        "{mounts}"
    );
    let (code, msg) = env.fails(&["volume", "rm", "dbdata"]);
    assert_eq!(code, 1);
    assert!(msg.contains("in use"), "{msg}");
    // prune --all removes unused named volumes ("auto"), never one in use.
    assert!(env.berth(&["volume", "prune", "-af"]).status.success());
    assert_eq!(names(&env), vec!["dbdata"]);
    let o = env.ok(&["volume", "ls", "--filter", "dangling=false", "-q"]);
    assert_eq!(o, "dbdata\n");
    env.ok(&["rm", "-f", "holder"]);
    // Data survives rm of its containers.
    assert_eq!(
        env.ok(&["run", "--rm", NONE, "-v", "dbdata:/d", "bb", "cat", "/d/f"]),
        "kept\n"
    );
    env.ok(&["volume", "rm", "dbdata"]);
    assert!(!std::path::Path::new(mp.trim()).exists());
    let (_, msg) = env.fails(&["volume", "rm", "dbdata"]);
    assert!(msg.contains("no such volume"), "{msg}");
    env.ok(&["volume", "rm", "-f", "dbdata"]);
    // Bad input changes nothing.
    let (code, msg) = env.fails(&["volume", "create", "bad/name"]);
    assert_eq!(code, 1);
    assert!(msg.contains("invalid volume name"), "{msg}");
    env.fails(&["volume", "create", "--driver", "rexray", "x1"]);
    env.fails(&["volume", "create", "--opt", "colour=red", "x2"]);
    env.fails(&["run", "--rm", NONE, "-v", "./rel:/x", "bb", "true"]);
    env.fails(&[
        "run",
        "--rm",
        NONE,
        "--mount",
        "type=volume,src=v1",
        "bb",
        "true",
    ]);
    assert!(names(&env).is_empty());
}

#[test]
fn copy_up_keeps_owners_and_stays_in_the_root() {
    let env = TestEnv::new();
    volume_image(&env, "vimg");
    let stat = "stat -c '%n %u:%g %a' /data /data/f /data/sub && readlink /data/escape";
    let o = env.ok(&[
        "run",
        "--rm",
        NONE,
        "-v",
        "fresh:/data",
        "vimg",
        "sh",
        "-c",
        stat,
    ]);
    assert_eq!(
        o,
        "/data 1000:1000 750\n/data/f 1001:1002 640\n/data/sub 1003:1003 700\n/../../../../etc\n"
    );
    assert_eq!(
        env.ok(&[
            "run",
            "--rm",
            NONE,
            "-v",
            "fresh:/data",
            "vimg",
            "cat",
            "/data/f"
        ]),
        "from the image\n"
    );
    // Not empty any more: a second mount elsewhere copies nothing over it.
    env.ok(&[
        "run",
        "--rm",
        NONE,
        "-v",
        "fresh:/data",
        "vimg",
        "rm",
        "/data/f",
    ]);
    let o = env.ok(&[
        "run",
        "--rm",
        NONE,
        "-v",
        "fresh:/data",
        "vimg",
        "ls",
        "/data",
    ]);
    assert_eq!(o, "escape\nsub\n");
    // nocopy: stays empty.
    let o = env.ok(&[
        "run",
        "--rm",
        NONE,
        "-v",
        "empty:/data:nocopy",
        "vimg",
        "ls",
        "-A",
        "/data",
    ]);
    assert_eq!(o, "");
    // The host's /etc was not copied through the symlink.
    let mp = env.ok(&["volume", "inspect", "--format", "{{.Mountpoint}}", "fresh"]);
    let esc = std::fs::symlink_metadata(std::path::Path::new(mp.trim()).join("escape")).unwrap();
    assert!(esc.file_type().is_symlink());
}

#[test]
fn anonymous_volumes_go_with_rm_v_and_run_rm() {
    let env = TestEnv::new();
    volume_image(&env, "vimg");
    // The image's VOLUME gets an anonymous volume filled from the image, removed by --rm.
    assert_eq!(
        env.ok(&["run", "--rm", NONE, "vimg", "cat", "/data/f"]),
        "from the image\n"
    );
    assert!(names(&env).is_empty(), "{:?}", names(&env));
    // -v /path is anonymous too; rm -v removes them, named ones stay.
    env.ok(&[
        "run", "-d", "--name", "keep", NONE, "-v", "/cache", "-v", "named:/n", "vimg", "sleep",
        "100",
    ]);
    let vols = names(&env);
    assert_eq!(vols.len(), 3, "{vols:?}");
    env.ok(&["rm", "-f", "-v", "keep"]);
    assert_eq!(names(&env), vec!["named"]);
    // Without -v an anonymous volume stays (dangling) until prune.
    env.ok(&["create", "--name", "k2", NONE, "vimg", "true"]);
    assert_eq!(names(&env).len(), 2);
    env.ok(&["rm", "k2"]);
    assert_eq!(names(&env).len(), 2);
    let o = env.ok(&["volume", "prune", "-f"]);
    assert!(o.contains("Deleted Volumes:"), "{o}");
    assert_eq!(names(&env), vec!["named"]);
    let o = env.ok(&["volume", "prune", "-f", "--all"]);
    assert!(o.contains("named"), "{o}");
    assert!(names(&env).is_empty());
}

#[test]
fn volumes_from_mount_and_tmpfs_volumes() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "src",
        NONE,
        "-v",
        "shared:/s",
        "bb",
        "sh",
        "-c",
        "echo shared > /s/f; sleep 100",
    ]);
    let mut tries = 0;
    let got = loop {
        let o = env.berth(&[
            "run",
            "--rm",
            NONE,
            "--volumes-from",
            "src:ro",
            "bb",
            "cat",
            "/s/f",
        ]);
        if o.status.success() || tries > 100 {
            break String::from_utf8_lossy(&o.stdout).into_owned();
        }
        tries += 1;
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(got, "shared\n");
    let o = env.berth(&[
        "run",
        "--rm",
        NONE,
        "--volumes-from",
        "src:ro",
        "bb",
        "touch",
        "/s/x",
    ]);
    assert!(!o.status.success());
    env.ok(&["rm", "-f", "src"]);

    // A tmpfs-backed volume (driver options).
    env.ok(&[
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=1m",
        "tv",
    ]);
    let o = env.ok(&["volume", "inspect", "--format", "{{.Options.type}}", "tv"]);
    assert_eq!(o, "tmpfs\n");
    let o = env.ok(&[
        "run",
        "--rm",
        NONE,
        "-v",
        "tv:/t",
        "bb",
        "sh",
        "-c",
        "grep ' /t ' /proc/mounts | cut -d' ' -f3",
    ]);
    assert_eq!(o, "tmpfs\n");
    env.ok(&["volume", "rm", "tv"]);

    // --mount type=tmpfs and type=bind.
    let o = env.ok(&[
        "run",
        "--rm",
        NONE,
        "--mount",
        "type=tmpfs,dst=/x,tmpfs-size=1m,tmpfs-mode=1770",
        "bb",
        "sh",
        "-c",
        "grep ' /x ' /proc/mounts; stat -c %a /x",
    ]);
    assert!(o.contains("size=1024k") && o.ends_with("1770\n"), "{o}");
    let host = env.path("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("h"), "host\n").unwrap();
    let m = format!("type=bind,src={},dst=/h,readonly", host.display());
    assert_eq!(
        env.ok(&["run", "--rm", NONE, "--mount", &m, "bb", "cat", "/h/h"]),
        "host\n"
    );
    let (code, msg) = env.fails(&[
        "run",
        "--rm",
        NONE,
        "--mount",
        "type=bind,src=/nonexistent-berth-dir,dst=/h",
        "bb",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(msg.contains("does not exist"), "{msg}");
    let (_, msg) = env.fails(&[
        "run", "--rm", NONE, "-v", "a1:/x", "-v", "a2:/x", "bb", "true",
    ]);
    assert!(msg.contains("duplicate mount point"), "{msg}");
}
