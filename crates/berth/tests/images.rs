//! Image commands end to end: load, save, import, images, tag, rmi, image inspect/prune.
//! Run as root (layers keep their owners and device nodes).

mod common;

use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

/// A small second layer on top of busybox.
fn app_layer(comp: Comp, marker: &str) -> TestLayer {
    let mut t = TarBuilder::new();
    t.dir("srv", 0o755)
        .file("srv/marker", 0o644, marker.as_bytes())
        .file("srv/run.sh", 0o755, b"#!/bin/sh\necho hi\n");
    TestLayer::new(&t.finish(), comp)
}

fn two_layer_image(comp: Comp, marker: &str) -> (Vec<u8>, Vec<TestLayer>) {
    let layers = vec![
        TestLayer::new(&busybox_rootfs(), comp),
        app_layer(comp, marker),
    ];
    let cfg = image_config(&layers, &["sh"], &["APP=1"]);
    (cfg, layers)
}

fn inspect(env: &TestEnv, name: &str) -> Value {
    let out = env.ok(&["image", "inspect", name]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

fn layer_dir(env: &TestEnv, diff_id: &str) -> std::path::PathBuf {
    env.root
        .join("layers")
        .join(diff_id.trim_start_matches("sha256:"))
}

/// Store files minus SQLite's WAL side files (they come and go with connections).
fn files(env: &TestEnv) -> Vec<String> {
    env.store_files()
        .into_iter()
        .filter(|f| !f.ends_with("-wal") && !f.ends_with("-shm"))
        .collect()
}

#[test]
fn load_docker_archive_plain_gzip_zstd() {
    let env = TestEnv::new();
    for (comp, tag) in [
        (Comp::None, "plain"),
        (Comp::Gzip, "gzip"),
        (Comp::Zstd, "zstd"),
    ] {
        let (cfg, layers) = two_layer_image(comp, tag);
        let p = env.path(&format!("{tag}.tar"));
        write_docker_archive(&p, &cfg, &layers, &[&format!("app:{tag}")]);
        let out = env.ok(&["load", "-i", p.to_str().unwrap()]);
        assert_eq!(out.trim(), format!("Loaded image: app:{tag}"));
        let v = inspect(&env, &format!("app:{tag}"));
        assert_eq!(v["Id"], sha256(&cfg));
        assert_eq!(v["RepoTags"], serde_json::json!([format!("app:{tag}")]));
        assert_eq!(v["RootFS"]["Layers"][1], layers[1].diff_id);
        assert_eq!(v["Config"]["Cmd"], serde_json::json!(["sh"]));
        let top = layer_dir(&env, &layers[1].diff_id);
        assert_eq!(
            std::fs::read(top.join("srv/marker")).unwrap(),
            tag.as_bytes()
        );
        let bottom = layer_dir(&env, &layers[0].diff_id);
        assert!(bottom.join("bin/busybox").is_file());
        assert_eq!(
            std::fs::read_link(bottom.join("bin/echo"))
                .unwrap()
                .to_str(),
            Some("busybox")
        );
    }
    // Plain, gzip and zstd share the busybox layer directory (same diff id).
    let n = std::fs::read_dir(env.root.join("layers")).unwrap().count();
    assert_eq!(n, 4, "busybox layer shared, three app layers");
    let images = env.ok(&["images"]);
    for tag in ["plain", "gzip", "zstd"] {
        assert!(
            images
                .lines()
                .any(|l| l.starts_with("app") && l.contains(tag)),
            "{images}"
        );
    }
    // From standard input, and a gzip-compressed archive.
    let (cfg, layers) = two_layer_image(Comp::Gzip, "stdin");
    let p = env.path("stdin.tar");
    write_docker_archive(&p, &cfg, &layers, &["app:stdin"]);
    let data = std::fs::read(&p).unwrap();
    let out = env.berth_stdin(&["load"], &data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Loaded image: app:stdin"
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &data).unwrap();
    let gzp = env.path("stdin.tar.gz");
    std::fs::write(&gzp, gz.finish().unwrap()).unwrap();
    env.ok(&["rmi", "app:stdin"]);
    let out = env.ok(&["image", "load", "-i", gzp.to_str().unwrap()]);
    assert_eq!(out.trim(), "Loaded image: app:stdin");
    assert_eq!(std::fs::read_dir(env.root.join("tmp")).unwrap().count(), 0);
}

#[test]
fn load_oci_archive_plain_gzip_zstd() {
    let env = TestEnv::new();
    for (comp, tag) in [
        (Comp::None, "plain"),
        (Comp::Gzip, "gzip"),
        (Comp::Zstd, "zstd"),
    ] {
        let (cfg, layers) = two_layer_image(comp, tag);
        let p = env.path(&format!("{tag}.tar"));
        write_oci_archive(
            &p,
            &cfg,
            &layers,
            Some(&format!("localhost:5000/team/app:{tag}")),
        );
        let out = env.ok(&["load", "-i", p.to_str().unwrap()]);
        assert_eq!(
            out.trim(),
            format!("Loaded image: localhost:5000/team/app:{tag}")
        );
        let v = inspect(&env, &format!("localhost:5000/team/app:{tag}"));
        assert_eq!(v["Id"], sha256(&cfg));
        assert_eq!(v["Os"], "linux");
        assert_eq!(v["Architecture"], host_arch());
    }
    // Without a name: loaded by id.
    let (cfg, layers) = two_layer_image(Comp::Gzip, "noname");
    let p = env.path("noname.tar");
    write_oci_archive(&p, &cfg, &layers, None);
    let out = env.ok(&["load", "-i", p.to_str().unwrap()]);
    assert_eq!(out.trim(), format!("Loaded image ID: {}", sha256(&cfg)));
    let images = env.ok(&["images"]);
    assert!(images.lines().any(|l| l.starts_with("<none>")), "{images}");
    // Short id prefix resolves.
    let short = &sha256(&cfg)[7..19];
    assert_eq!(inspect(&env, short)["Id"], sha256(&cfg));
}

#[test]
fn load_archives_written_by_skopeo_and_umoci() {
    let env = TestEnv::new();
    let src = env.path("src.tar");
    busybox_oci_archive(&src, "busybox:src");
    // skopeo writes both formats itself.
    let dock = env.path("skopeo-docker.tar");
    let oci = env.path("skopeo-oci.tar");
    for (dst, name) in [
        (
            format!("docker-archive:{}:sk/busybox:docker", dock.display()),
            "sk/busybox:docker",
        ),
        (
            format!("oci-archive:{}:sk/busybox:oci", oci.display()),
            "sk/busybox:oci",
        ),
    ] {
        let st = Command::new("skopeo")
            .args([
                "copy",
                "--quiet",
                &format!("oci-archive:{}", src.display()),
                &dst,
            ])
            .status()
            .unwrap();
        assert!(st.success(), "skopeo copy to {dst}");
        let _ = name;
    }
    assert_eq!(
        env.ok(&["load", "-i", dock.to_str().unwrap()]).trim(),
        "Loaded image: sk/busybox:docker"
    );
    assert_eq!(
        env.ok(&["load", "-i", oci.to_str().unwrap()]).trim(),
        "Loaded image: sk/busybox:oci"
    );
    let a = inspect(&env, "sk/busybox:docker");
    let b = inspect(&env, "sk/busybox:oci");
    assert_eq!(a["RootFS"], b["RootFS"]);

    // umoci: an OCI layout with a layer umoci built from a directory.
    let layout = env.path("umoci-layout");
    let bundle = env.path("umoci-bundle");
    let l = layout.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new("umoci").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "umoci {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["init", "--layout", l]);
    run(&["new", "--image", &format!("{l}:app")]);
    run(&[
        "unpack",
        "--image",
        &format!("{l}:app"),
        bundle.to_str().unwrap(),
    ]);
    std::fs::create_dir_all(bundle.join("rootfs/data")).unwrap();
    std::fs::write(bundle.join("rootfs/data/hello"), "from umoci").unwrap();
    run(&[
        "repack",
        "--image",
        &format!("{l}:app"),
        bundle.to_str().unwrap(),
    ]);
    run(&[
        "config",
        "--image",
        &format!("{l}:app"),
        "--config.cmd",
        "sh",
    ]);
    let tarp = env.path("umoci.tar");
    let st = Command::new("tar")
        .args(["-C", l, "-cf", tarp.to_str().unwrap(), "."])
        .status()
        .unwrap();
    assert!(st.success());
    let out = env.ok(&["load", "-i", tarp.to_str().unwrap()]);
    // umoci names the manifest "app" (a bare tag): no repository, so loaded by id.
    let id = out
        .trim()
        .strip_prefix("Loaded image ID: ")
        .expect(&out)
        .to_string();
    let v = inspect(&env, &id);
    let top = v["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        std::fs::read_to_string(layer_dir(&env, &top).join("data/hello")).unwrap(),
        "from umoci"
    );
    assert_eq!(v["Config"]["Cmd"], serde_json::json!(["sh"]));
}

fn skopeo_inspect(transport: &str, path: &std::path::Path) -> Value {
    let out = Command::new("skopeo")
        .args(["inspect", &format!("{transport}:{}", path.display())])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {transport}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn save_roundtrip_both_formats() {
    let env = TestEnv::new();
    let (cfg, layers) = two_layer_image(Comp::Zstd, "save");
    let p = env.path("in.tar");
    write_docker_archive(&p, &cfg, &layers, &["app:save"]);
    env.ok(&["load", "-i", p.to_str().unwrap()]);
    let id = sha256(&cfg);

    let dock = env.path("out-docker.tar");
    env.ok(&["save", "-o", dock.to_str().unwrap(), "app:save"]);
    let v = skopeo_inspect("docker-archive", &dock);
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(v["Env"][1], "APP=1");
    let oci = env.path("out-oci.tar");
    env.ok(&[
        "image",
        "save",
        "--format",
        "oci-archive",
        "-o",
        oci.to_str().unwrap(),
        "app:save",
    ]);
    let v = skopeo_inspect("oci-archive", &oci);
    assert_eq!(
        v["Layers"][0],
        layers[0].digest(),
        "oci-archive keeps blobs as stored"
    );

    // Load both back into an empty store: same image id and layers.
    env.ok(&["rmi", "app:save"]);
    assert_eq!(env.ok(&["images", "-q"]).trim(), "");
    assert_eq!(
        env.ok(&["load", "-i", dock.to_str().unwrap()]).trim(),
        "Loaded image: app:save"
    );
    assert_eq!(inspect(&env, "app:save")["Id"], id);
    env.ok(&["rmi", "app:save"]);
    assert_eq!(
        env.ok(&["load", "-i", oci.to_str().unwrap()]).trim(),
        "Loaded image: app:save"
    );
    let v = inspect(&env, "app:save");
    assert_eq!(v["Id"], id);
    assert_eq!(
        std::fs::read(layer_dir(&env, &layers[1].diff_id).join("srv/marker")).unwrap(),
        b"save"
    );

    // Several images to standard output.
    env.busybox_image("bb:1");
    let out = env
        .cmd(&["save", "app:save", "bb:1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let multi = env.path("multi.tar");
    std::fs::write(&multi, &out.stdout).unwrap();
    let env2 = TestEnv::new();
    let loaded = env2.ok(&["load", "-i", multi.to_str().unwrap()]);
    assert!(
        loaded.contains("Loaded image: app:save") && loaded.contains("Loaded image: bb:1"),
        "{loaded}"
    );
}

#[test]
fn import_with_changes() {
    let env = TestEnv::new();
    let rootfs = env.path("rootfs.tar");
    busybox_rootfs_tar(&rootfs);
    let out = env.ok(&[
        "import",
        "--change",
        r#"CMD ["echo", "hello"]"#,
        "--change",
        "ENV A=b",
        "-c",
        "ENTRYPOINT [\"/bin/sh\", \"-c\"]",
        "-c",
        "WORKDIR /srv",
        "-c",
        "USER app",
        "-c",
        "EXPOSE 8080",
        "-c",
        "LABEL org.example=yes",
        "-m",
        "made by a test",
        rootfs.to_str().unwrap(),
        "imported:1",
    ]);
    let id = out.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{out}");
    let v = inspect(&env, "imported:1");
    assert_eq!(v["Id"], id);
    let c = &v["Config"];
    assert_eq!(c["Cmd"], serde_json::json!(["echo", "hello"]));
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["Env"], serde_json::json!(["A=b"]));
    assert_eq!(c["WorkingDir"], "/srv");
    assert_eq!(c["User"], "app");
    assert!(c["ExposedPorts"].get("8080/tcp").is_some());
    assert_eq!(c["Labels"]["org.example"], "yes");
    assert_eq!(v["Comment"], "made by a test");
    let diff = v["RootFS"]["Layers"][0].as_str().unwrap().to_string();
    assert_eq!(diff, sha256(&std::fs::read(&rootfs).unwrap()));
    let meta = std::fs::metadata(layer_dir(&env, &diff).join("tmp")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777,
        0o1777
    );

    // From standard input, gzip-compressed, without a name.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &std::fs::read(&rootfs).unwrap()).unwrap();
    let out = env.berth_stdin(&["image", "import", "-"], &gz.finish().unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id2 = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let v = inspect(&env, &id2);
    assert_eq!(v["RepoTags"], serde_json::json!([]));
    assert_eq!(v["RootFS"]["Layers"][0], diff.as_str());

    // A bad --change is refused before anything is stored.
    let before = files(&env);
    let (code, err) = env.fails(&[
        "import",
        "-c",
        "FROM scratch",
        rootfs.to_str().unwrap(),
        "x",
    ]);
    assert_eq!(code, 1, "a failed import exits 1, as Docker's CLI");
    assert!(err.contains("FROM") && err.lines().count() == 1, "{err}");
    assert_eq!(files(&env), before);
}

#[test]
fn images_listing_formats() {
    let env = TestEnv::new();
    let id = env.busybox_image("busybox:latest");
    env.ok(&["tag", "busybox", "example.com/tools/bb:v1"]);
    let (cfg, layers) = two_layer_image(Comp::Gzip, "list");
    let p = env.path("app.tar");
    write_docker_archive(&p, &cfg, &layers, &["app:1"]);
    env.ok(&["load", "-i", p.to_str().unwrap()]);

    let table = env.ok(&["images"]);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(col), "{header}");
    }
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "{table}");
    let bb = rows
        .iter()
        .find(|r| r.starts_with("busybox "))
        .expect(&table);
    assert!(
        bb.contains("latest") && bb.contains(&id[7..19]) && bb.contains("MB"),
        "{bb}"
    );
    assert!(rows
        .iter()
        .any(|r| r.starts_with("example.com/tools/bb ") && r.contains("v1")));

    let q = env.ok(&["images", "-q"]);
    let ids: Vec<&str> = q.lines().collect();
    assert_eq!(ids.len(), 2, "ids are listed once: {q}");
    assert!(ids.contains(&&id[7..19]));
    let q = env.ok(&["images", "-q", "--no-trunc"]);
    assert!(q.lines().any(|l| l == id));

    let json = env.ok(&["images", "--format", "json"]);
    let objs: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(objs.len(), 3);
    let app = objs.iter().find(|o| o["Repository"] == "app").unwrap();
    assert_eq!(app["Tag"], "1");
    assert_eq!(app["ID"], &sha256(&cfg)[7..19]);

    let filtered = env.ok(&["images", "busybox"]);
    assert_eq!(filtered.lines().count(), 2, "{filtered}");
    let filtered = env.ok(&[
        "image",
        "ls",
        "example.com/tools/bb:v1",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]);
    assert_eq!(filtered.trim(), "example.com/tools/bb:v1");
    assert_eq!(env.ok(&["images", "nothing-here"]).lines().count(), 1);
    let all = env.ok(&["images", "-a"]);
    assert_eq!(all.lines().count(), 4);
}

#[test]
fn tag_rmi_and_inspect() {
    let env = TestEnv::new();
    let id = env.busybox_image("bb");
    env.ok(&["tag", "bb", "bb:two"]);
    env.ok(&["image", "tag", &id[7..19], "localhost:5000/bb"]);
    let v = inspect(&env, "bb:latest");
    assert_eq!(v["Id"], id);
    let mut tags: Vec<String> = v["RepoTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().into())
        .collect();
    tags.sort();
    assert_eq!(
        tags,
        vec!["bb:latest", "bb:two", "localhost:5000/bb:latest"]
    );
    for key in [
        "Id",
        "RepoTags",
        "RepoDigests",
        "Created",
        "Size",
        "Config",
        "RootFS",
        "Architecture",
        "Os",
    ] {
        assert!(v.get(key).is_some(), "inspect lacks {key}");
    }
    assert_eq!(v["RootFS"]["Type"], "layers");
    assert!(v["Size"].as_u64().unwrap() > 1_000_000);
    assert_eq!(
        env.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Os}}/{{json .Config.Cmd}}",
            "bb"
        ])
        .trim(),
        "linux/[\"sh\"]"
    );

    // Untag while other names remain.
    assert_eq!(env.ok(&["rmi", "bb:two"]).trim(), "Untagged: bb:two");
    // By id with several names: refused without -f.
    let (code, err) = env.fails(&["rmi", &id[7..19]]);
    assert_eq!(code, 1);
    assert!(
        err.contains("must be forced") && err.lines().count() == 1,
        "{err}"
    );
    // Retag moves a tag: the old image keeps its other names.
    env.ok(&["rmi", "localhost:5000/bb"]);
    let out = env.ok(&["rmi", "bb"]);
    assert!(
        out.contains("Untagged: bb:latest") && out.contains(&format!("Deleted: {id}")),
        "{out}"
    );
    assert_eq!(env.ok(&["images", "-q"]).trim(), "");
    assert_eq!(
        std::fs::read_dir(env.root.join("layers")).unwrap().count(),
        0
    );
    let blobs = std::fs::read_dir(env.root.join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(
        blobs, 0,
        "layer and config blobs are removed with the image"
    );

    // -f by id with several tags untags all and deletes.
    let id = env.busybox_image("x:1");
    env.ok(&["tag", "x:1", "x:2"]);
    let out = env.ok(&["rmi", "-f", &id]);
    assert!(
        out.contains("Untagged: x:1") && out.contains("Untagged: x:2") && out.contains("Deleted:"),
        "{out}"
    );
}

/// Mark an image as used by a container, through the engine when it can create one.
fn use_image(env: &TestEnv, image: &str) -> bool {
    let out = env.berth(&["create", "--name", "user-of-image", image]);
    out.status.success()
}

#[test]
fn rmi_image_in_use() {
    let env = TestEnv::new();
    let id = env.busybox_image("inuse");
    if !use_image(&env, "inuse") {
        eprintln!("skipping: berth create does not work yet");
        return;
    }
    let (code, err) = env.fails(&["rmi", "inuse"]);
    assert_eq!(code, 1);
    assert!(err.contains("container"), "{err}");
    let (_, err) = env.fails(&["rmi", &id]);
    assert!(err.contains("container"), "{err}");
    // -f only untags: the container keeps its image.
    assert_eq!(
        env.ok(&["rmi", "-f", "inuse"]).trim(),
        "Untagged: inuse:latest"
    );
    assert_eq!(inspect(&env, &id)["Id"], id);
    // Prune -a leaves it too.
    env.ok(&["image", "prune", "-a", "-f"]);
    assert_eq!(inspect(&env, &id)["Id"], id);
}

#[test]
fn image_prune() {
    let env = TestEnv::new();
    let old = env.busybox_image("app");
    // A new image takes the tag: the old one becomes dangling.
    let (cfg, layers) = two_layer_image(Comp::Gzip, "new");
    let p = env.path("new.tar");
    write_docker_archive(&p, &cfg, &layers, &["app:latest"]);
    env.ok(&["load", "-i", p.to_str().unwrap()]);
    let table = env.ok(&["images"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("<none>") && l.contains(&old[7..19])),
        "{table}"
    );
    let out = env.ok(&["image", "prune", "-f"]);
    assert!(out.contains(&format!("deleted: {old}")), "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    // The busybox layer is shared with the new image: still there.
    assert!(layer_dir(&env, &layers[0].diff_id).is_dir());
    let out = env.ok(&["image", "prune", "-f"]);
    assert!(!out.contains("deleted"), "{out}");
    env.busybox_image("other");
    let out = env.ok(&["image", "prune", "-a", "-f"]);
    assert!(
        out.contains("untagged: app:latest") && out.contains("untagged: other:latest"),
        "{out}"
    );
    assert_eq!(env.ok(&["images", "-q"]).trim(), "");
    assert_eq!(
        std::fs::read_dir(env.root.join("layers")).unwrap().count(),
        0
    );
}

/// Runs a failing command and checks the one-line error, exit code 1 (Docker's CLI for every
/// failed command but run/create/exec) and an unchanged store.
#[track_caller]
fn fails_cleanly(env: &TestEnv, args: &[&str], needle: &str) -> String {
    let images = env.ok(&["images", "-a", "--no-trunc"]);
    let before = files(env);
    let (code, err) = env.fails(args);
    assert_eq!(code, 1, "{args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.to_lowercase().contains(&needle.to_lowercase()),
        "{args:?}: expected {needle:?} in {err}"
    );
    assert_eq!(env.ok(&["images", "-a", "--no-trunc"]), images);
    assert_eq!(files(env), before, "{args:?} changed the store");
    err
}

#[test]
fn bad_inputs_fail_cleanly() {
    let env = TestEnv::new();
    env.busybox_image("ok");
    fails_cleanly(&env, &["image", "inspect", "nope"], "no such image: nope");
    fails_cleanly(&env, &["rmi", "nope:1"], "no such image");
    fails_cleanly(&env, &["tag", "nope", "x"], "no such image");
    fails_cleanly(
        &env,
        &["save", "-o", env.path("x.tar").to_str().unwrap(), "nope"],
        "no such image",
    );
    assert!(!env.path("x.tar").exists());
    fails_cleanly(&env, &["tag", "ok", "Bad:Ref"], "invalid reference format");
    fails_cleanly(
        &env,
        &["image", "inspect", "UPPER"],
        "invalid reference format",
    );
    fails_cleanly(
        &env,
        &["load", "-i", env.path("missing.tar").to_str().unwrap()],
        "missing.tar",
    );
    fails_cleanly(
        &env,
        &["save", "--format", "zip", "ok"],
        "unknown archive format",
    );

    // Garbage, a truncated archive, a wrong diff id, a corrupt layer blob.
    let junk = env.path("junk.tar");
    std::fs::write(&junk, b"this is not a tar archive at all").unwrap();
    fails_cleanly(&env, &["load", "-i", junk.to_str().unwrap()], "junk.tar");

    let (cfg, layers) = two_layer_image(Comp::Gzip, "bad");
    let good = env.path("good.tar");
    write_docker_archive(&good, &cfg, &layers, &["bad:1"]);
    let data = std::fs::read(&good).unwrap();
    let trunc = env.path("trunc.tar");
    std::fs::write(&trunc, &data[..data.len() / 2]).unwrap();
    fails_cleanly(&env, &["load", "-i", trunc.to_str().unwrap()], "trunc.tar");

    let mut wrong = layers.clone();
    wrong[1].diff_id = sha256(b"something else");
    let cfg_wrong = image_config(&wrong, &["sh"], &[]);
    let p = env.path("wrong-diff.tar");
    write_docker_archive(&p, &cfg_wrong, &layers, &["bad:2"]);
    fails_cleanly(&env, &["load", "-i", p.to_str().unwrap()], "diff id");

    let mut corrupt = layers.clone();
    let n = corrupt[1].blob.len();
    corrupt[1].blob[n / 2] ^= 0x55;
    let p = env.path("corrupt-oci.tar");
    write_oci_archive(&p, &cfg, &corrupt, Some("bad:3"));
    // The OCI descriptor names the original digest: the blob fails verification.
    let p2 = env.path("corrupt-oci2.tar");
    let _ = p2;
    fails_cleanly(&env, &["load", "-i", p.to_str().unwrap()], "layer");

    // Hostile layers: path traversal and a hardlink out of the root.
    for (i, (kind, name, link)) in [
        (tar_kind::REGULAR, "../../../../tmp/berth-pwned", None),
        (tar_kind::LINK, "h", Some("../../../../etc/passwd")),
    ]
    .into_iter()
    .enumerate()
    {
        let mut t = TarBuilder::new();
        t.file("fine", 0o644, b"ok");
        t.raw(kind, name, link, b"x");
        let hostile = TestLayer::new(&t.finish(), Comp::None);
        let base = TestLayer::new(&busybox_rootfs(), Comp::None);
        let ls = vec![base, hostile];
        let cfg = image_config(&ls, &["sh"], &[]);
        let p = env.path(&format!("hostile{i}.tar"));
        write_docker_archive(&p, &cfg, &ls, &["hostile:1"]);
        let err = fails_cleanly(&env, &["load", "-i", p.to_str().unwrap()], name);
        assert!(err.contains("leaves the layer root"), "{err}");
        assert!(!std::path::Path::new("/tmp/berth-pwned").exists());
    }
    // The busybox layer above was already present, and stays; a fresh store stays empty.
    let env2 = TestEnv::new();
    env2.ok(&["images"]);
    let mut t = TarBuilder::new();
    t.raw(tar_kind::REGULAR, "../escape", None, b"x");
    let ls = vec![
        TestLayer::new(&busybox_rootfs(), Comp::Gzip),
        TestLayer::new(&t.finish(), Comp::Gzip),
    ];
    let cfg = image_config(&ls, &["sh"], &[]);
    let p = env2.path("hostile.tar");
    write_oci_archive(&p, &cfg, &ls, Some("hostile:2"));
    fails_cleanly(&env2, &["load", "-i", p.to_str().unwrap()], "../escape");
    assert_eq!(
        std::fs::read_dir(env2.root.join("layers")).unwrap().count(),
        0
    );
}

mod tar_kind {
    pub const REGULAR: tar::EntryType = tar::EntryType::Regular;
    pub const LINK: tar::EntryType = tar::EntryType::Link;
}

#[test]
fn kill_during_load_then_load_again() {
    let env = TestEnv::new();
    // Several big layers so that the kill lands while unpacking.
    let mut layers = vec![TestLayer::new(&busybox_rootfs(), Comp::Gzip)];
    for i in 0..4u8 {
        let mut t = TarBuilder::new();
        for j in 0..40u32 {
            let data: Vec<u8> = (0..256 * 1024u32)
                .map(|k| (k.wrapping_mul(31).wrapping_add(j * 7 + i as u32)).to_le_bytes()[0])
                .collect();
            t.file(&format!("d{i}/f{j}"), 0o644, &data);
        }
        layers.push(TestLayer::new(&t.finish(), Comp::Gzip));
    }
    let cfg = image_config(&layers, &["sh"], &[]);
    let p = env.path("big.tar");
    write_docker_archive(&p, &cfg, &layers, &["big:1"]);
    let id = sha256(&cfg);
    for delay_ms in [5u64, 30, 80, 150, 300, 600] {
        let mut child = env
            .cmd(&["load", "-i", p.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL, by pid
        let _ = child.wait();
        // No half image: either absent or complete.
        let q = env.ok(&["images", "-q", "--no-trunc"]);
        if q.contains(&id) {
            let v = inspect(&env, "big:1");
            for l in v["RootFS"]["Layers"].as_array().unwrap() {
                assert!(layer_dir(&env, l.as_str().unwrap()).is_dir());
            }
            env.ok(&["rmi", "big:1"]);
        }
    }
    assert_eq!(
        env.ok(&["load", "-i", p.to_str().unwrap()]).trim(),
        "Loaded image: big:1"
    );
    let v = inspect(&env, "big:1");
    assert_eq!(v["Id"], id);
    let top = layer_dir(&env, &layers[4].diff_id);
    assert_eq!(std::fs::read_dir(top.join("d3")).unwrap().count(), 40);
    // Leftovers of the killed loads are gone from tmp/ (their pids are dead).
    env.ok(&["images"]);
    assert_eq!(std::fs::read_dir(env.root.join("tmp")).unwrap().count(), 0);
}

#[test]
fn layers_work_as_overlay_lowerdirs() {
    let env = TestEnv::new();
    let mut t = TarBuilder::new();
    t.dir("a", 0o755)
        .file("a/keep", 0o644, b"k")
        .file("a/gone", 0o644, b"g")
        .dir("opq", 0o755)
        .file("opq/old", 0o644, b"o");
    let bottom = TestLayer::new(&t.finish(), Comp::Gzip);
    let mut t = TarBuilder::new();
    t.dir("a", 0o755)
        .file("a/.wh.gone", 0o644, b"")
        .dir("opq", 0o755)
        .file("opq/.wh..wh..opq", 0o644, b"")
        .file("opq/new", 0o644, b"n");
    let top = TestLayer::new(&t.finish(), Comp::Zstd);
    let layers = vec![bottom, top];
    let cfg = image_config(&layers, &["sh"], &[]);
    let p = env.path("wh.tar");
    write_oci_archive(&p, &cfg, &layers, Some("wh:1"));
    env.ok(&["load", "-i", p.to_str().unwrap()]);
    let merged = env.dir.join("merged");
    std::fs::create_dir_all(&merged).unwrap();
    let lower = format!(
        "lowerdir={}:{}",
        layer_dir(&env, &layers[1].diff_id).display(),
        layer_dir(&env, &layers[0].diff_id).display()
    );
    let st = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &lower])
        .arg(&merged)
        .status()
        .unwrap();
    assert!(st.success(), "overlay mount failed");
    // Unmount even when an assertion below fails.
    struct Unmount<'a>(&'a std::path::Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&merged);
    assert_eq!(std::fs::read(merged.join("a/keep")).unwrap(), b"k");
    assert!(!merged.join("a/gone").exists(), "whiteout hides a/gone");
    assert!(!merged.join("opq/old").exists(), "opaque dir hides opq/old");
    assert_eq!(std::fs::read(merged.join("opq/new")).unwrap(), b"n");
}

#[test]
fn concurrent_loads_share_layers() {
    let env = TestEnv::new();
    let (cfg, layers) = two_layer_image(Comp::Gzip, "conc");
    let p = env.path("conc.tar");
    write_docker_archive(&p, &cfg, &layers, &["conc:1"]);
    let children: Vec<_> = (0..3)
        .map(|_| {
            env.cmd(&["load", "-i", p.to_str().unwrap()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "Loaded image: conc:1"
        );
    }
    assert_eq!(env.ok(&["images", "-q"]).lines().count(), 1);
    assert_eq!(
        std::fs::read_dir(env.root.join("layers")).unwrap().count(),
        2
    );
    assert_eq!(std::fs::read_dir(env.root.join("tmp")).unwrap().count(), 0);
}
