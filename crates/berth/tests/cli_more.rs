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
        "bridge\n"
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
