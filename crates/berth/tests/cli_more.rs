//! The rest of Docker's command line (issue 13): `--format` templates and filters on every
//! listing, and the observe/copy/change commands. Root integration tests; where podman
//! answers the same question, its output is the reference.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::TestEnv;

/// podman with its own storage (vfs: no mounts to clean) under the test directory.
struct Podman {
    root: PathBuf,
}

impl Podman {
    fn new(env: &TestEnv) -> Option<Podman> {
        if Command::new("podman").arg("--version").output().is_err() {
            eprintln!("podman is not installed: comparisons skipped");
            return None;
        }
        Some(Podman {
            root: env.dir.join("podman"),
        })
    }

    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let o = Command::new("podman")
            .arg("--root")
            .arg(self.root.join("root"))
            .arg("--runroot")
            .arg(self.root.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .output()
            .expect("podman runs");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "podman {args:?}: {err}");
        out
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-af", "-t", "0"]);
        let _ = self.run(&["rmi", "-af"]);
    }
}

/// Go templates from Docker's documentation render as podman renders them.
#[test]
fn inspect_templates_render_as_podman() {
    let env = TestEnv::new();
    let tar = env.path("rootfs.tar");
    common::busybox_rootfs_tar(&tar);
    let tar = tar.to_str().unwrap();
    env.ok(&["import", tar, "fmt:1"]);
    let create = [
        "create", "--name", "fmt-c", "-l", "a=1", "-l", "b=two", "fmt:1", "sleep", "5",
    ];
    env.ok(&create);
    let templates = [
        "{{.Config.Labels}}",
        "{{json .Config.Labels}}",
        "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}",
        "{{join .Config.Cmd \",\"}}",
        "{{upper (index .Config.Labels \"b\")}}|{{title \"hello world-x\"}}|{{truncate \"abcdef\" 3}}|{{pad \"x\" 1 2}}|",
        "{{len .Config.Cmd}} {{.State.Running}}",
        "{{printf \"%s|%5s|%-3d|%q\" \"a\" \"b\" 7 \"c\"}}",
        "{{println \"x\"}}",
        "{{split \"a:b\" \":\"}}",
        "{{.Config.Cmd}}",
        "{{lower \"ABC\"}} {{json .Config.Cmd}}",
        "{{if .State.Running}}up{{else}}down{{end}}",
        "{{range .Config.Cmd}}[{{.}}]{{end}}",
        "{{with .Config.Labels}}{{.a}}{{end}}",
        "{{.State.Status}}",
    ];
    let mut ours = Vec::new();
    for t in templates {
        ours.push(env.ok(&["inspect", "--format", t, "fmt-c"]));
    }
    assert_eq!(ours[0], "map[a:1 b:two]\n");
    assert_eq!(ours[3], "sleep,5\n");
    // Bad templates fail with the template's own message, exit 1 as Docker's CLI.
    let (code, msg) = env.fails(&["inspect", "--format", "{{.Id", "fmt-c"]);
    assert_eq!(code, 1);
    assert!(msg.contains("template"), "{msg}");
    let (_, msg) = env.fails(&["inspect", "--format", "{{nosuchfunc .Id}}", "fmt-c"]);
    assert!(msg.contains("nosuchfunc"), "{msg}");

    let Some(p) = Podman::new(&env) else { return };
    p.ok(&["import", "-q", tar, "localhost/fmt:1"]);
    p.ok(&create);
    for (t, mine) in templates.iter().zip(&ours) {
        let theirs = p.ok(&["inspect", "--format", t, "fmt-c"]);
        assert_eq!(mine, &theirs, "template {t}");
    }
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn ps_formats_filters_and_defaults() {
    let env = TestEnv::new();
    env.busybox_image("pf:1");
    let none = "--network=none";
    env.ok(&[
        "create", "--name", "pf-old", none, "-l", "tier=db", "pf:1", "true",
    ]);
    let o = env.berth(&[
        "run", "--name", "pf-done", none, "pf:1", "sh", "-c", "exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    env.ok(&[
        "run", "-d", "--name", "pf-up", none, "-l", "tier=web", "-l", "x=1", "pf:1", "sleep", "60",
    ]);

    // Templates, with `\t` and headers, as `docker ps` prints them.
    assert_eq!(env.ok(&["ps", "--format", "{{.Names}}"]), "pf-up\n");
    assert_eq!(
        env.ok(&[
            "ps",
            "--format",
            "{{.Names}} {{.State}} {{.Label \"tier\"}}"
        ]),
        "pf-up running web\n"
    );
    let t = env.ok(&["ps", "-a", "--format", "table {{.Names}}\\t{{.State}}"]);
    assert_eq!(
        lines(&t),
        [
            "NAMES     STATE",
            "pf-up     running",
            "pf-done   exited",
            "pf-old    created"
        ]
    );
    let t = env.ok(&["ps", "--format", "table {{.ID}}\\t{{.Names}}"]);
    assert!(t.starts_with("CONTAINER ID   NAMES\n"), "{t}");
    // The default table: Docker's columns.
    let t = env.ok(&["ps"]);
    let header: Vec<&str> = t
        .lines()
        .next()
        .unwrap()
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES"
        ]
    );
    // json: one object per line with Docker's field names.
    let j = env.ok(&["ps", "-a", "--format", "json"]);
    let objs: Vec<serde_json::Value> = j
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs.len(), 3);
    assert_eq!(objs[0]["Names"], "pf-up");
    assert_eq!(objs[0]["Labels"], "tier=web,x=1");
    assert_eq!(objs[0]["Command"], "\"sleep 60\"");
    assert!(objs[0].get("@labels").is_none());
    assert_eq!(
        env.ok(&["ps", "-a", "--format", "{{json .Names}}"])
            .lines()
            .count(),
        3
    );

    // Filters.
    let names = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["ps", "--format", "{{.Names}}"];
        a.extend_from_slice(args);
        env.ok(&a).lines().map(str::to_string).collect()
    };
    assert_eq!(names(&["-f", "status=exited"]), ["pf-done"]);
    assert_eq!(names(&["-f", "exited=3"]), ["pf-done"]);
    assert!(names(&["-f", "exited=0"]).is_empty());
    assert_eq!(names(&["-a", "-f", "label=tier"]), ["pf-up", "pf-old"]);
    assert_eq!(names(&["-a", "-f", "label=tier=db"]), ["pf-old"]);
    assert_eq!(names(&["-a", "-f", "name=done"]), ["pf-done"]);
    assert_eq!(names(&["-a", "-f", "ancestor=pf:1"]).len(), 3);
    assert!(names(&["-a", "-f", "ancestor=other"]).is_empty());
    assert_eq!(names(&["-a", "-f", "before=pf-done"]), ["pf-old"]);
    assert_eq!(names(&["-a", "-f", "since=pf-done"]), ["pf-up"]);
    assert_eq!(names(&["-a", "-f", "network=none"]).len(), 3);
    assert_eq!(
        names(&["-a", "-f", "status=created", "-f", "status=exited"]),
        ["pf-done", "pf-old"]
    );
    assert_eq!(
        names(&["-a", "-f", "label=tier", "-f", "status=running"]),
        ["pf-up"]
    );
    let (code, msg) = env.fails(&["ps", "-f", "colour=blue"]);
    assert_eq!(code, 1);
    assert!(msg.contains("colour"), "{msg}");
    // -n / -l / -q / --no-trunc / -s
    assert_eq!(names(&["-n", "2"]), ["pf-up", "pf-done"]);
    assert_eq!(names(&["-l"]), ["pf-up"]);
    let q = env.ok(&["ps", "-aq"]);
    assert!(q.lines().all(|l| l.len() == 12), "{q}");
    let q = env.ok(&["ps", "-aq", "--no-trunc"]);
    assert!(q.lines().all(|l| l.len() == 64), "{q}");
    let s = env.ok(&["ps", "-s"]);
    assert!(s.lines().next().unwrap().ends_with("SIZE"), "{s}");
    assert!(s.contains("(virtual "), "{s}");

    // ~/.docker/config.json's psFormat is the default; --format still wins.
    let cfg = env.path("dockercfg");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(
        cfg.join("config.json"),
        r#"{"psFormat": "{{.Names}}!", "imagesFormat": "{{.Repository}}?"}"#,
    )
    .unwrap();
    let run = |args: &[&str]| {
        let o = env.cmd(args).env("DOCKER_CONFIG", &cfg).output().unwrap();
        assert!(o.status.success());
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(run(&["ps"]), "pf-up!\n");
    assert_eq!(run(&["ps", "--format", "{{.State}}"]), "running\n");
    assert_eq!(run(&["images"]), "pf?\n");

    env.ok(&["rm", "-f", "pf-up", "pf-done", "pf-old"]);
}

#[test]
fn images_volumes_networks_format_and_filter() {
    let env = TestEnv::new();
    env.busybox_image("imf:1");
    env.ok(&["tag", "imf:1", "imf:2"]);
    env.ok(&["tag", "imf:1", "other/thing:9"]);
    let f = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        a.extend_from_slice(args);
        let mut v: Vec<String> = env.ok(&a).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(f(&["-f", "reference=imf"]), ["imf:1", "imf:2"]);
    assert_eq!(f(&["-f", "reference=imf:2"]), ["imf:2"]);
    assert_eq!(f(&["-f", "reference=other/*"]), ["other/thing:9"]);
    assert!(f(&["-f", "dangling=true"]).is_empty());
    assert_eq!(f(&["-f", "dangling=false"]).len(), 3);
    let t = env.ok(&[
        "images",
        "--format",
        "table {{.Repository}}\\t{{.Tag}}\\t{{.ID}}",
    ]);
    assert!(t.starts_with("REPOSITORY    TAG       IMAGE ID\n"), "{t}");
    assert!(env.fails(&["images", "-f", "nope=1"]).1.contains("nope"));

    env.ok(&["volume", "create", "--label", "k=v", "vf1"]);
    env.ok(&["volume", "create", "vf2"]);
    assert_eq!(
        env.ok(&[
            "volume",
            "ls",
            "--format",
            "{{.Name}} {{.Label \"k\"}} {{.Driver}}"
        ]),
        "vf1 v local\nvf2  local\n"
    );
    let t = env.ok(&["volume", "ls"]);
    assert_eq!(lines(&t)[0], "DRIVER    VOLUME NAME");
    let j = env.ok(&["volume", "ls", "--format", "json"]);
    assert!(
        j.lines().next().unwrap().contains("\"Name\":\"vf1\""),
        "{j}"
    );

    let t = env.ok(&["network", "ls", "--format", "table {{.Name}}\\t{{.Driver}}"]);
    assert_eq!(lines(&t)[0], "NAME      DRIVER");
    assert_eq!(
        env.ok(&[
            "network",
            "ls",
            "-f",
            "type=builtin",
            "--format",
            "{{.Driver}}"
        ]),
        "bridge\nhost\nnull\n"
    );
    env.ok(&["volume", "rm", "vf1", "vf2"]);
}

#[test]
fn version_info_rename_pause_and_podman_habits() {
    let env = TestEnv::new();
    env.busybox_image("hb:1");
    let none = "--network=none";
    // version / info
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["version", "--format", "json"])).unwrap();
    assert_eq!(v["Client"]["Os"], "linux");
    assert!(env.ok(&["version"]).contains("Server: berth"));
    assert_eq!(env.ok(&["info", "--format", "{{.Driver}}"]), "overlay2\n");
    let info = env.ok(&["info"]);
    assert!(
        info.contains("Cgroup Version:") && info.contains("Images: 1"),
        "{info}"
    );

    // An option given twice takes the last value.
    env.ok(&[
        "run", "-d", none, "--name", "first", "--name", "hb-run", "hb:1", "sleep", "60",
    ]);
    assert_eq!(env.ok(&["ps", "--format", "{{.Names}}"]), "hb-run\n");
    // rename
    env.ok(&["rename", "hb-run", "hb-web"]);
    assert_eq!(
        env.ok(&["container", "ls", "--format", "{{.Names}}"]),
        "hb-web\n"
    );
    let (code, _) = env.fails(&["rename", "hb-web", "bad name"]);
    assert_eq!(code, 1);
    // pause / unpause
    env.ok(&["pause", "hb-web"]);
    assert_eq!(
        env.ok(&["ps", "--format", "{{.State}} {{.Status}}"])
            .split_whitespace()
            .next(),
        Some("paused")
    );
    assert!(env.ok(&["ps"]).contains("(Paused)"));
    assert_eq!(
        env.ok(&["ps", "-f", "status=paused", "-q"]).lines().count(),
        1
    );
    assert_eq!(
        env.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Paused}}",
            "hb-web"
        ]),
        "paused true\n"
    );
    assert_eq!(
        env.ok(&["info", "--format", "{{.ContainersPaused}}"]),
        "1\n"
    );
    assert!(env.fails(&["pause", "hb-web"]).1.contains("already paused"));
    env.ok(&["unpause", "hb-web"]);
    assert_eq!(env.ok(&["ps", "--format", "{{.State}}"]), "running\n");
    assert!(env.fails(&["unpause", "hb-web"]).1.contains("not paused"));
    // exists (exit 0/1, no output)
    for (args, want) in [
        (&["container", "exists", "hb-web"][..], 0),
        (&["container", "exists", "nope"], 1),
        (&["image", "exists", "hb:1"], 0),
        (&["image", "exists", "nope:1"], 1),
        (&["volume", "exists", "nope"], 1),
        (&["network", "exists", "bridge"], 0),
        (&["network", "exists", "nope"], 1),
    ] {
        let o = env.berth(args);
        assert_eq!(o.status.code(), Some(want), "{args:?}");
        assert!(o.stdout.is_empty());
    }
    // untag
    env.ok(&["tag", "hb:1", "hb:2"]);
    env.ok(&["tag", "hb:1", "hb:3"]);
    assert_eq!(env.ok(&["untag", "hb:1", "hb:2"]), "Untagged: hb:2\n");
    assert_eq!(
        env.berth(&["image", "exists", "hb:2"]).status.code(),
        Some(1)
    );
    // --ignore / --all
    assert_eq!(env.ok(&["rm", "-i", "nope"]), "");
    assert_eq!(env.ok(&["stop", "--ignore", "nope"]), "");
    assert_eq!(env.ok(&["rmi", "-i", "nope:9"]), "");
    assert_eq!(env.fails(&["rm", "nope"]).0, 1);
    env.ok(&["create", "--name", "hb-idle", none, "hb:1", "true"]);
    env.ok(&["run", "-d", none, "--name", "hb-two", "hb:1", "sleep", "60"]);
    env.ok(&["stop", "-a", "-t", "0"]);
    assert_eq!(env.ok(&["ps", "-q"]), "");
    let o = env.ok(&["wait", "hb-web", "hb-two"]);
    assert_eq!(o.lines().count(), 2, "{o}");
    env.ok(&["rm", "-a"]);
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    // rm -t stops a running container first.
    env.ok(&["run", "-d", none, "--name", "hb-t", "hb:1", "sleep", "60"]);
    env.ok(&["rm", "-t", "0", "hb-t"]);
    assert_eq!(env.ok(&["ps", "-aq"]), "");
    // inspect --type volume
    env.ok(&["volume", "create", "hbv"]);
    assert_eq!(
        env.ok(&["inspect", "--type", "volume", "-f", "{{.Name}}", "hbv"]),
        "hbv\n"
    );
    env.ok(&["volume", "rm", "hbv"]);
    env.ok(&["rmi", "-a", "-f"]);
    assert_eq!(env.ok(&["images", "-q"]), "");
}

#[test]
fn cp_export_diff_top_stats() {
    let env = TestEnv::new();
    env.busybox_image("cp:1");
    let none = "--network=none";
    env.ok(&[
        "run", "-d", none, "--name", "cpc", "cp:1", "sh", "-c",
        "mkdir -p /data/sub && echo hi > /data/sub/f && chmod 640 /data/sub/f && chown 1000:1000 /data/sub/f \
         && ln -s /etc/passwd /data/link && rm /bin/wc && sleep 600",
    ]);
    let ready = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(50));
        env.ok(&["diff", "cpc"]).contains("/data/link")
    });
    assert!(ready);
    // diff: A/C/D as Docker, without berth's own mount points.
    let d = env.ok(&["diff", "cpc"]);
    for want in [
        "C /bin",
        "D /bin/wc",
        "A /data",
        "A /data/sub/f",
        "A /data/link",
    ] {
        assert!(d.lines().any(|l| l == want), "{want} missing in\n{d}");
    }
    assert!(!d.contains("/etc/hosts") && !d.contains("/proc"), "{d}");

    // cp out: a directory into an existing host directory keeps its name; -a keeps owners.
    let out = env.path("out");
    std::fs::create_dir(&out).unwrap();
    env.ok(&["cp", "-a", "cpc:/data", out.to_str().unwrap()]);
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let f = out.join("data/sub/f");
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "hi\n");
    let md = std::fs::metadata(&f).unwrap();
    assert_eq!(
        (md.uid(), md.gid(), md.permissions().mode() & 0o777),
        (1000, 1000, 0o640)
    );
    assert_eq!(
        std::fs::read_link(out.join("data/link")).unwrap(),
        PathBuf::from("/etc/passwd")
    );
    // Without -a the files belong to root; a new name for a file; -L follows the source link.
    env.ok(&["cp", "cpc:/data/sub/f", out.join("g").to_str().unwrap()]);
    assert_eq!(std::fs::metadata(out.join("g")).unwrap().uid(), 0);
    env.ok(&[
        "cp",
        "-L",
        "cpc:/data/link",
        out.join("pw").to_str().unwrap(),
    ]);
    assert!(std::fs::read_to_string(out.join("pw"))
        .unwrap()
        .starts_with("root:"));
    // SRC/. copies a directory's contents.
    env.ok(&["cp", "cpc:/data/.", out.join("contents").to_str().unwrap()]);
    assert!(out.join("contents/sub/f").exists());
    // cp in: a host tree into the container, and a tar on stdin; errors as Docker's.
    let tree = env.path("tree");
    std::fs::create_dir_all(tree.join("d")).unwrap();
    std::fs::write(tree.join("d/x"), "x1").unwrap();
    std::os::unix::fs::symlink("d/x", tree.join("lx")).unwrap();
    env.ok(&["cp", tree.to_str().unwrap(), "cpc:/in"]);
    assert_eq!(env.ok(&["exec", "cpc", "cat", "/in/d/x", "/in/lx"]), "x1x1");
    let o = env.berth(&["cp", "cpc:/in/d", "-"]);
    assert!(o.status.success());
    let tar = o.stdout;
    let o = env.berth_stdin(&["cp", "-", "cpc:/data"], &tar);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(env.ok(&["exec", "cpc", "cat", "/data/d/x"]), "x1");
    assert_eq!(env.fails(&["cp", "cpc:/nope", out.to_str().unwrap()]).0, 1);
    assert_eq!(
        env.fails(&["cp", tree.to_str().unwrap(), "cpc:/no/such/dir"])
            .0,
        1
    );

    // top: the container's processes only, through ps.
    let t = env.ok(&["top", "cpc"]);
    assert!(t.starts_with("UID") && t.contains("sleep 600"), "{t}");
    assert_eq!(t.lines().count(), 2, "{t}");
    let t = env.ok(&["top", "cpc", "-o", "pid,comm"]);
    assert!(t.lines().nth(1).unwrap().ends_with("sleep"), "{t}");

    // stats: memory moves when the container allocates.
    let mem = |env: &TestEnv| -> f64 {
        let s = env.ok(&["stats", "--no-stream", "--format", "{{.MemUsage}}", "cpc"]);
        let used = s.split(" / ").next().unwrap().to_string();
        let (n, unit) = used.split_at(used.find(|c: char| c.is_alphabetic()).unwrap());
        let mult = match unit {
            "B" => 1.0,
            "KiB" => 1024.0,
            "MiB" => 1048576.0,
            _ => 1073741824.0,
        };
        n.parse::<f64>().unwrap() * mult
    };
    let before = mem(&env);
    env.ok(&["exec", "-d", "cpc", "sh", "-c", "dd if=/dev/zero bs=1M count=40 | cat > /dev/shm/fill 2>/dev/null || head -c 41943040 /dev/zero > /tmp/fill; sleep 600"]);
    let grew = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        mem(&env) > before + 20.0 * 1048576.0
    });
    assert!(grew, "memory did not move from {before}");
    let j = env.ok(&["stats", "--no-stream", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(j.lines().next().unwrap()).unwrap();
    assert_eq!(v["Name"], "cpc");
    assert!(v["PIDs"].as_str().unwrap().parse::<u32>().unwrap() >= 1);
    let t = env.ok(&["stats", "--no-stream"]);
    assert!(t.starts_with("CONTAINER ID   NAME"), "{t}");
    // One sample: CPU % over the container's life moves when it computes.
    env.ok(&[
        "run",
        "-d",
        none,
        "--name",
        "cpub",
        "cp:1",
        "sh",
        "-c",
        "while :; do :; done",
    ]);
    let busy = (0..50).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let p = env.ok(&["stats", "--no-stream", "--format", "{{.CPUPerc}}", "cpub"]);
        p.trim().trim_end_matches('%').parse::<f64>().unwrap() > 1.0
    });
    assert!(busy, "CPU % did not move");
    env.ok(&["rm", "-f", "cpub"]);

    // export: the whole root as a tar, also for a stopped container; cp works stopped too.
    env.ok(&["stop", "-t", "0", "cpc"]);
    let tarf = env.path("export.tar");
    env.ok(&["export", "-o", tarf.to_str().unwrap(), "cpc"]);
    let names: Vec<String> = tar::Archive::new(std::fs::File::open(&tarf).unwrap())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert!(names.iter().any(|n| n == "bin/busybox"), "{names:?}");
    assert!(names.iter().any(|n| n == "data/sub/f"));
    assert!(!names.iter().any(|n| n == "bin/wc"));
    env.ok(&["cp", tree.join("d/x").to_str().unwrap(), "cpc:/stopped"]);
    assert!(env.ok(&["diff", "cpc"]).contains("A /stopped"));
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(
        !mounts.contains(env.root.to_str().unwrap()),
        "a mount was left behind"
    );
    env.ok(&["rm", "-f", "cpc"]);
}

/// CVE-2018-15664: while a container swaps a directory for a symlink to a host path, `cp`
/// in either direction never reads or writes outside the container.
#[test]
fn cp_never_follows_a_racing_symlink_out_of_the_container() {
    let env = TestEnv::new();
    env.busybox_image("race:1");
    let host = env.path("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "HOST SECRET").unwrap();
    let h = host.to_str().unwrap();
    let script = format!(
        "mkdir -p /swap; while true; do rm -rf /swap; mkdir /swap; echo inside > /swap/f; \
         rm -rf /swap; ln -s {h} /swap; done"
    );
    env.ok(&[
        "run",
        "-d",
        "--network=none",
        "--name",
        "racer",
        "race:1",
        "sh",
        "-c",
        &script,
    ]);
    let out = env.path("out");
    let src = env.path("payload");
    std::fs::write(&src, "PAYLOAD").unwrap();
    for i in 0..40 {
        let o = out.join(i.to_string());
        std::fs::create_dir_all(&o).unwrap();
        let _ = env.berth(&["cp", "racer:/swap/f", o.to_str().unwrap()]);
        let _ = env.berth(&["cp", "racer:/swap/.", o.join("all").to_str().unwrap()]);
        let _ = env.berth(&["cp", src.to_str().unwrap(), "racer:/swap/"]);
        let _ = env.berth(&["cp", src.to_str().unwrap(), "racer:/swap/f"]);
    }
    // Nothing read from the host directory, nothing written into it.
    let mut stack = vec![out.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else if p.is_file() && !p.is_symlink() {
                let t = std::fs::read_to_string(&p).unwrap_or_default();
                assert!(!t.contains("HOST SECRET"), "{} has host data", p.display());
            }
        }
    }
    let names: Vec<_> = std::fs::read_dir(&host)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from("f")]);
    assert_eq!(
        std::fs::read_to_string(host.join("f")).unwrap(),
        "HOST SECRET"
    );
    env.ok(&["rm", "-f", "racer"]);
}

#[test]
fn events_record_lifecycle_in_order_and_follow() {
    let env = TestEnv::new();
    env.busybox_image("ev:1");
    // A follower started before the container exists sees its events live.
    let follower = env
        .cmd(&[
            "events",
            "--filter",
            "type=container",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let o = env.berth(&["run", "--network=none", "--name", "evc", "ev:1", "true"]);
    assert!(o.status.success());
    env.ok(&["rm", "evc"]);
    env.ok(&["volume", "create", "evv"]);
    env.ok(&["volume", "rm", "evv"]);
    let all = env.ok(&[
        "events",
        "--since",
        "1m",
        "--until",
        "0s",
        "--format",
        "{{.Type}} {{.Action}}",
    ]);
    let got: Vec<&str> = all.lines().collect();
    let pos = |w: &str| {
        got.iter()
            .position(|l| *l == w)
            .unwrap_or_else(|| panic!("{w} missing: {got:?}"))
    };
    assert!(pos("container create") < pos("container start"));
    assert!(pos("container start") < pos("container die"));
    assert!(pos("container die") < pos("container destroy"));
    assert!(pos("volume create") < pos("volume destroy"));
    let j = env.ok(&[
        "events",
        "--since",
        "1m",
        "--until",
        "0s",
        "--filter",
        "event=die",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(j.lines().next().unwrap()).unwrap();
    assert_eq!(v["Actor"]["Attributes"]["exitCode"], "0");
    assert_eq!(v["Actor"]["Attributes"]["name"], "evc");
    // The follower saw the same container events.
    std::thread::sleep(std::time::Duration::from_millis(700));
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(i32::try_from(follower.id()).unwrap(), libc::SIGTERM);
    }
    let out = follower.wait_with_output().unwrap();
    let live = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        live.lines().collect::<Vec<_>>(),
        ["create evc", "start evc", "die evc", "destroy evc"],
        "{live}"
    );
}

/// A root file system tar for podman containers: /bin/busybox only. (Not the shared busybox
/// tar: its hard link entries carry mode 0644, which podman's import applies to busybox.)
fn podman_rootfs_tar(env: &TestEnv) -> PathBuf {
    let rootfs = env.path("prootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    let tar = env.path("prootfs.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg("bin")
        .status()
        .unwrap();
    assert!(st.success());
    tar
}

/// The container's cgroup file `file` of `controller` (v1) or of its v2 directory, read from
/// the host through its init's /proc/PID/cgroup.
fn cgroup_file(env: &TestEnv, name: &str, controller: &str, file: &str) -> String {
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let pid = env.ok(&["inspect", "-f", "{{.State.Pid}}", name]);
    let text = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).unwrap();
    for l in text.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        let dir = if v2 && ctrls.is_empty() {
            PathBuf::from("/sys/fs/cgroup").join(path.trim_start_matches('/'))
        } else if !v2 && ctrls.split(',').any(|c| c == controller) {
            PathBuf::from("/sys/fs/cgroup")
                .join(controller)
                .join(path.trim_start_matches('/'))
        } else {
            continue;
        };
        let p = dir.join(file);
        return std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .trim()
            .to_string();
    }
    panic!("no {controller} cgroup in {text}");
}

/// `update` on a running and on a stopped container: the cgroup files change at once (v1 or
/// v2 names), inspect shows the new values, a restart keeps them, the restart policy of a
/// running container takes effect at its next exit; Docker's refusals. The files match what
/// podman writes for the same update.
#[test]
fn update_limits_and_restart_policy_running_and_stopped() {
    let env = TestEnv::new();
    env.busybox_image("up:1");
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let none = "--network=none";
    env.ok(&[
        "run",
        "-d",
        none,
        "--name",
        "upd",
        "--memory",
        "64m",
        "--cpu-shares",
        "512",
        "up:1",
        "sleep",
        "600",
    ]);
    let changes = [
        "--memory",
        "128m",
        "--memory-swap",
        "256m",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "256",
        "--pids-limit",
        "40",
        "--memory-reservation",
        "32m",
    ];
    let mut args = vec!["update"];
    args.extend(changes);
    args.push("upd");
    assert_eq!(env.ok(&args), "upd\n");
    let files = |env: &TestEnv, name: &str| -> Vec<String> {
        if v2 {
            [
                "memory.max",
                "memory.low",
                "cpu.max",
                "cpu.weight",
                "pids.max",
            ]
            .iter()
            .map(|f| cgroup_file(env, name, "", f))
            .collect()
        } else {
            vec![
                cgroup_file(env, name, "memory", "memory.limit_in_bytes"),
                cgroup_file(env, name, "memory", "memory.soft_limit_in_bytes"),
                cgroup_file(env, name, "cpu", "cpu.cfs_quota_us"),
                cgroup_file(env, name, "cpu", "cpu.cfs_period_us"),
                cgroup_file(env, name, "cpu", "cpu.shares"),
                cgroup_file(env, name, "pids", "pids.max"),
            ]
        }
    };
    let want: Vec<String> = if v2 {
        ["134217728", "33554432", "50000 100000", "35", "40"]
            .map(String::from)
            .to_vec()
    } else {
        ["134217728", "33554432", "50000", "100000", "256", "40"]
            .map(String::from)
            .to_vec()
    };
    assert_eq!(files(&env, "upd"), want);
    let hc = "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.MemoryReservation}} {{.HostConfig.NanoCpus}} {{.HostConfig.CpuShares}} {{.HostConfig.PidsLimit}}";
    let shown = "134217728 268435456 33554432 500000000 256 40\n";
    assert_eq!(env.ok(&["inspect", "-f", hc, "upd"]), shown);
    // A restart (stop + start) applies the stored values again.
    env.ok(&["restart", "-t", "0", "upd"]);
    assert_eq!(files(&env, "upd"), want);
    assert_eq!(env.ok(&["inspect", "-f", hc, "upd"]), shown);

    // Stopped: only the stored config changes; the next start applies it.
    env.ok(&["stop", "-t", "0", "upd"]);
    env.ok(&[
        "update",
        "--pids-limit",
        "-1",
        "--cpu-shares",
        "1024",
        "upd",
    ]);
    env.ok(&["start", "upd"]);
    let pids = if v2 {
        cgroup_file(&env, "upd", "", "pids.max")
    } else {
        cgroup_file(&env, "upd", "pids", "pids.max")
    };
    assert_eq!(pids, "max");
    assert_eq!(
        env.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.CpuShares}} {{.HostConfig.Memory}}",
            "upd"
        ]),
        "1024 134217728\n"
    );

    // Docker's refusals, exit 1, nothing stored.
    for bad in [
        &["update", "upd"][..],
        &["update", "--memory", "512m", "upd"],
        &["update", "--memory", "1m", "upd"],
        &["update", "--cpu-quota", "20000", "upd"],
        &["update", "--cpu-shares", "1", "upd"],
        &["update", "--restart", "sometimes", "upd"],
    ] {
        let (code, msg) = env.fails(bad);
        assert_eq!(code, 1, "{bad:?}: {msg}");
        assert!(!msg.trim().is_empty() && msg.lines().count() == 1, "{msg}");
    }
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.HostConfig.Memory}}", "upd"]),
        "134217728\n"
    );
    // Several containers: a missing one is reported, the others are updated (exit 1).
    let o = env.berth(&["update", "--cpu-shares", "700", "nosuch", "upd"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "upd\n");

    // The restart policy of a running container applies at its next exit.
    env.ok(&[
        "run",
        "-d",
        none,
        "--name",
        "upr",
        "up:1",
        "sh",
        "-c",
        "while [ ! -f /tmp/go ]; do sleep 0.1; done; exit 3",
    ]);
    env.ok(&["update", "--restart", "on-failure:2", "upr"]);
    assert_eq!(
        env.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}",
            "upr"
        ]),
        "on-failure:2\n"
    );
    env.ok(&["exec", "upr", "touch", "/tmp/go"]);
    let restarted = (0..200).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        env.ok(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.Status}}",
            "upr",
        ]) == "2 exited\n"
    });
    assert!(
        restarted,
        "{}",
        env.ok(&[
            "inspect",
            "-f",
            "{{.RestartCount}} {{.State.Status}}",
            "upr"
        ])
    );
    // --rm containers take no restart policy.
    env.ok(&[
        "run", "-d", none, "--rm", "--name", "uprm", "up:1", "sleep", "600",
    ]);
    let (_, msg) = env.fails(&["update", "--restart", "always", "uprm"]);
    assert!(msg.contains("restart policy"), "{msg}");
    env.ok(&["update", "--restart", "no", "uprm"]);

    // podman writes the same files for the same update (its 4.x update has no pids-limit).
    let Some(p) = Podman::new(&env) else { return };
    let tar = podman_rootfs_tar(&env);
    p.ok(&["import", "-q", tar.to_str().unwrap(), "localhost/up:1"]);
    p.ok(&[
        "run",
        "-d",
        none,
        "--name",
        "upd-p",
        "--memory",
        "64m",
        "--cpu-shares",
        "512",
        "localhost/up:1",
        "/bin/busybox",
        "sleep",
        "600",
    ]);
    env.ok(&["rm", "-f", "upd"]);
    env.ok(&[
        "run",
        "-d",
        none,
        "--name",
        "upd",
        "--memory",
        "64m",
        "--cpu-shares",
        "512",
        "up:1",
        "sleep",
        "600",
    ]);
    let same = ["--memory", "128m", "--cpus", "0.5", "--cpu-shares", "256"];
    let mut pa = vec!["update"];
    pa.extend(same);
    pa.push("upd-p");
    p.ok(&pa);
    let mut ba = vec!["update"];
    ba.extend(same);
    ba.push("upd");
    env.ok(&ba);
    let pid = p.ok(&["inspect", "-f", "{{.State.Pid}}", "upd-p"]);
    let theirs = |controller: &str, file: &str| -> String {
        let text = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).unwrap();
        let line = text
            .lines()
            .find(|l| {
                let c = l.split(':').nth(1).unwrap_or("");
                if v2 {
                    c.is_empty()
                } else {
                    c.split(',').any(|x| x == controller)
                }
            })
            .unwrap();
        let path = line.splitn(3, ':').nth(2).unwrap().trim_start_matches('/');
        let base = if v2 {
            PathBuf::from("/sys/fs/cgroup")
        } else {
            PathBuf::from("/sys/fs/cgroup").join(controller)
        };
        std::fs::read_to_string(base.join(path).join(file))
            .unwrap()
            .trim()
            .to_string()
    };
    let compared: &[(&str, &str)] = if v2 {
        &[("", "memory.max"), ("", "cpu.max"), ("", "cpu.weight")]
    } else {
        &[
            ("memory", "memory.limit_in_bytes"),
            ("cpu", "cpu.cfs_quota_us"),
            ("cpu", "cpu.cfs_period_us"),
            ("cpu", "cpu.shares"),
        ]
    };
    for (ctrl, f) in compared {
        assert_eq!(cgroup_file(&env, "upd", ctrl, f), theirs(ctrl, f), "{f}");
    }
}

/// `system df [-v] [--format]` counts and sizes, TOTAL/ACTIVE compared with podman's for the
/// same objects; `system prune` with and without `-a`, `--volumes`, `--filter`, and its
/// confirmation.
#[test]
fn system_df_and_prune() {
    let env = TestEnv::new();
    let tar = env.path("rootfs.tar");
    common::busybox_rootfs_tar(&tar);
    let tar = tar.to_str().unwrap();
    env.ok(&["import", tar, "df:1"]);
    let none = "--network=none";
    env.ok(&["run", "-d", none, "--name", "dfrun", "df:1", "sleep", "600"]);
    env.ok(&[
        "create",
        none,
        "--name",
        "dfcr",
        "-v",
        "dfvol:/data",
        "df:1",
        "true",
    ]);
    env.ok(&["volume", "create", "dflonely"]);
    let f = env.path("payload");
    std::fs::write(&f, vec![7u8; 5000]).unwrap();
    env.ok(&["cp", f.to_str().unwrap(), "dfcr:/payload"]);

    let table = env.ok(&["system", "df"]);
    let head: Vec<Vec<String>> = table
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .collect();
    assert_eq!(
        head[0],
        ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        "{table}"
    );
    let counts: Vec<String> = head[1..].iter().map(|r| r[..3].join(" ")).collect();
    assert_eq!(
        counts,
        [
            "Images 1 1",
            "Containers 2 1",
            "Local Volumes 2 1",
            "Build Cache 0 0"
        ],
        "{table}"
    );
    // The created container's 5000 bytes are its writable layer, all reclaimable.
    assert_eq!(head[2][3], "5kB", "{table}");
    assert_eq!(head[2][4], "5kB (100%)", "{table}");
    let rows: Vec<serde_json::Value> = env
        .ok(&["system", "df", "--format", "json"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["Type"], "Images");
    assert_eq!(rows[0]["TotalCount"], "1");
    assert_eq!(
        env.ok(&["system", "df", "--format", "{{.Type}}={{.Active}}"]),
        "Images=1\nContainers=1\nLocal Volumes=1\nBuild Cache=0\n"
    );
    let v = env.ok(&["system", "df", "-v"]);
    for want in [
        "Images space usage:",
        "Containers space usage:",
        "Local Volumes space usage:",
        "Build cache usage: 0B",
        "dflonely",
        "dfcr",
    ] {
        assert!(v.contains(want), "{want} missing in\n{v}");
    }
    let vol_line = v.lines().find(|l| l.starts_with("dfvol ")).unwrap();
    assert_eq!(
        vol_line.split_whitespace().collect::<Vec<_>>(),
        ["dfvol", "1", "0B"]
    );

    // podman: the same objects give the same TOTAL and ACTIVE counts.
    if let Some(p) = Podman::new(&env) {
        let ptar = podman_rootfs_tar(&env);
        p.ok(&["import", "-q", ptar.to_str().unwrap(), "localhost/df:1"]);
        p.ok(&[
            "create",
            none,
            "--name",
            "dfrun",
            "localhost/df:1",
            "/bin/busybox",
            "sleep",
            "600",
        ]);
        p.ok(&[
            "create",
            none,
            "--name",
            "dfcr",
            "-v",
            "dfvol:/data",
            "localhost/df:1",
            "/bin/busybox",
            "true",
        ]);
        p.ok(&["volume", "create", "dflonely"]);
        let started = p.run(&["start", "dfrun"]);
        if started.0 {
            let theirs: Vec<String> = p
                .ok(&["system", "df"])
                .lines()
                .skip(1)
                .map(|l| {
                    l.split("  ")
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .take(3)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            assert_eq!(theirs[..], counts[..3], "podman's system df");
        } else {
            eprintln!("podman cannot start a container here: {}", started.2);
        }
    }

    // prune asks first; "n" keeps everything.
    let o = env.berth_stdin(&["system", "prune"], b"n\n");
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("all stopped containers"));
    assert_eq!(env.ok(&["ps", "-aq"]).lines().count(), 2);

    // Filters: a stopped container with a label is kept by label!=, everything new by until.
    env.ok(&[
        "create", none, "--name", "dfkeep", "-l", "keep=1", "df:1", "true",
    ]);
    env.ok(&["network", "create", "dfnet"]);
    let out = env.ok(&["system", "prune", "-f", "--filter", "until=1h"]);
    assert_eq!(out, "Total reclaimed space: 0B\n");
    let out = env.ok(&["system", "prune", "-f", "--filter", "label!=keep"]);
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert!(out.contains("Deleted Networks:\ndfnet\n"), "{out}");
    assert!(out.ends_with("Total reclaimed space: 5kB\n"), "{out}");
    let left = env.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    let mut left: Vec<&str> = left.lines().collect();
    left.sort();
    assert_eq!(left, ["dfkeep", "dfrun"]);
    assert!(env
        .fails(&["system", "prune", "-f", "--filter", "dangling=1"])
        .1
        .contains("until"));

    // -a --volumes: stopped containers, images no container uses, anonymous volumes; the
    // running container, its image and named volumes stay.
    env.ok(&["import", tar, "dfother:1"]);
    env.ok(&[
        "run", none, "--name", "dfanon", "-v", "/anon", "df:1", "true",
    ]);
    let anon = env.ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Name}}{{end}}",
        "dfanon",
    ]);
    let out = env.ok(&["system", "prune", "-af", "--volumes"]);
    assert!(
        out.contains(&format!("Deleted Volumes:\n{}\n", anon.trim())),
        "{out}"
    );
    assert!(out.contains("untagged: dfother:1"), "{out}");
    assert_eq!(env.ok(&["ps", "-a", "--format", "{{.Names}}"]), "dfrun\n");
    assert_eq!(env.ok(&["images", "--format", "{{.Repository}}"]), "df\n");
    let vols = env.ok(&["volume", "ls", "-q"]);
    assert!(
        vols.contains("dfvol") && vols.contains("dflonely"),
        "{vols}"
    );
    env.ok(&["rm", "-f", "dfrun"]);
    env.ok(&["system", "prune", "-af"]);
    let counts = env.ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert_eq!(
        counts,
        "Images 0\nContainers 0\nLocal Volumes 2\nBuild Cache 0\n"
    );
}

/// Image events with Docker's actions: load, import, save, tag, untag, delete, in order.
#[test]
fn image_events_load_import_save_tag_untag_delete() {
    let env = TestEnv::new();
    let since = chrono::Utc::now().timestamp().to_string();
    env.busybox_image("ev:1");
    let tar = env.path("rootfs.tar");
    common::busybox_rootfs_tar(&tar);
    env.ok(&["import", tar.to_str().unwrap(), "evimp:1"]);
    let out = env.path("saved.tar");
    env.ok(&["save", "-o", out.to_str().unwrap(), "ev:1"]);
    env.ok(&["tag", "ev:1", "ev:2"]);
    env.ok(&["untag", "ev:2"]);
    env.ok(&["rmi", "evimp:1"]);
    let until = (chrono::Utc::now().timestamp() + 1).to_string();
    let lines = env.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=image",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]);
    let got: Vec<&str> = lines.lines().collect();
    let want = [
        "load ev:1",
        "import evimp:1",
        "save ev:1",
        "tag ev:2",
        "untag ev:2",
        "untag evimp:1",
        "delete",
    ];
    let mut it = got.iter();
    for w in want {
        assert!(
            it.any(|g| g.trim_end() == w || (w == "delete" && g.starts_with("delete"))),
            "{w:?} missing or out of order in\n{lines}"
        );
    }
}

/// Files named `.wh.*` inside a copied tree are ordinary files in both directions and in `-`
/// tar streams, never whiteouts.
#[test]
fn cp_copies_whiteout_named_files_as_files() {
    let env = TestEnv::new();
    env.busybox_image("wh:1");
    env.ok(&[
        "run",
        "-d",
        "--network=none",
        "--name",
        "whc",
        "wh:1",
        "sleep",
        "600",
    ]);
    let t = env.path("t");
    std::fs::create_dir_all(t.join("d")).unwrap();
    std::fs::write(t.join(".wh.x"), "w").unwrap();
    std::fs::write(t.join("d/.wh..wh..opq"), "o").unwrap();
    std::fs::write(t.join("d/keep"), "k").unwrap();
    env.ok(&["cp", t.to_str().unwrap(), "whc:/in"]);
    assert_eq!(
        env.ok(&[
            "exec",
            "whc",
            "cat",
            "/in/.wh.x",
            "/in/d/.wh..wh..opq",
            "/in/d/keep"
        ]),
        "wok"
    );
    let back = env.path("back");
    env.ok(&["cp", "whc:/in", back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(back.join(".wh.x")).unwrap(), "w");
    assert_eq!(
        std::fs::read_to_string(back.join("d/.wh..wh..opq")).unwrap(),
        "o"
    );
    let o = env.berth(&["cp", "whc:/in", "-"]);
    assert!(o.status.success());
    let o2 = env.berth_stdin(&["cp", "-", "whc:/tmp"], &o.stdout);
    assert!(
        o2.status.success(),
        "{}",
        String::from_utf8_lossy(&o2.stderr)
    );
    assert_eq!(env.ok(&["exec", "whc", "cat", "/tmp/in/.wh.x"]), "w");
}

/// `rm -f` of a paused container removes it (the monitor unmounting the root filesystem
/// between rm's look and rm's unmount made rm fail with EINVAL and left it "Removing").
#[test]
fn rm_force_removes_a_paused_container() {
    let env = TestEnv::new();
    env.busybox_image("hp:1");
    for i in 0..3 {
        let name = format!("hp-{i}");
        env.ok(&[
            "run",
            "-d",
            "--network=none",
            "--name",
            &name,
            "hp:1",
            "sleep",
            "60",
        ]);
        env.ok(&["pause", &name]);
        env.ok(&["rm", "-f", &name]);
        assert_eq!(env.ok(&["ps", "-aq"]).trim(), "", "after rm -f {name}");
    }
}
