//! `berth build`: files into images — ADD of local archives in every compression Docker
//! reads, COPY `--exclude`, cache mounts' sharing modes, WORKDIR (`--link` and `--parents`:
//! build_copy.rs) —
//! and build options (`--compression zstd`, `--no-cache-filter`, `--platform`, `--progress`).
//! Run as root (RUN steps are containers).

#[path = "common/build.rs"]
mod buildutil;
mod common;

use std::io::Write;
use std::path::Path;

use buildutil::{build, build_ok, context, run};
use common::*;
use serde_json::Value;

#[test]
fn add_extracts_local_archives_in_every_compression() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let mut t = TarBuilder::new();
    t.dir("pkg", 0o755)
        .file("pkg/inside.txt", 0o644, b"from-tar\n")
        .symlink("pkg/link", "inside.txt")
        .raw(
            tar::EntryType::Regular,
            "../../escape.txt",
            None,
            b"confined\n",
        );
    let tar = t.finish();
    let dir = context(&env, "arch", &[]);
    std::fs::write(dir.join("a.tar"), &tar).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    std::fs::write(dir.join("a.tar.gz"), gz.finish().unwrap()).unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    bz.write_all(&tar).unwrap();
    std::fs::write(dir.join("a.tar.bz2"), bz.finish().unwrap()).unwrap();
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
    xz.write_all(&tar).unwrap();
    std::fs::write(dir.join("a.txz"), xz.finish().unwrap()).unwrap();
    // Detected by content, not by name (as Docker).
    std::fs::write(
        dir.join("zstd-blob"),
        zstd::encode_all(&tar[..], 1).unwrap(),
    )
    .unwrap();
    // A compressed file that is not a tar is copied as it is.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"just text\n").unwrap();
    let plain_gz = gz.finish().unwrap();
    std::fs::write(dir.join("notes.txt.gz"), &plain_gz).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox:local\n\
         ADD a.tar /plain/\n\
         ADD a.tar.gz /gz/\n\
         ADD a.tar.bz2 /bz2/\n\
         ADD a.txz /xz/\n\
         ADD zstd-blob /zst\n\
         ADD notes.txt.gz /notes/\n\
         COPY a.tar.gz /copied/\n",
    )
    .unwrap();
    build_ok(&env, &dir, &["-t", "arch"]);
    for d in ["plain", "gz", "bz2", "xz", "zst"] {
        assert_eq!(
            run(
                &env,
                "arch",
                &[
                    "cat",
                    &format!("/{d}/pkg/inside.txt"),
                    &format!("/{d}/pkg/link")
                ]
            ),
            "from-tar\nfrom-tar\n",
            "{d}"
        );
        // `../../escape.txt` stays inside the destination's root.
        assert_eq!(
            run(&env, "arch", &["cat", &format!("/{d}/escape.txt")]),
            "confined\n",
            "{d}"
        );
    }
    let out = run(&env, "arch", &["ls", "/", "/notes", "/copied"]);
    assert!(!out.contains("escape.txt"), "{out}");
    assert!(out.contains("notes.txt.gz"), "{out}");
    assert!(out.contains("a.tar.gz"), "COPY never extracts: {out}");
    let sizes = run(&env, "arch", &["wc", "-c", "/notes/notes.txt.gz"]);
    assert!(sizes.starts_with(&plain_gz.len().to_string()), "{sizes}");
}

fn inspect(env: &TestEnv, name: &str) -> Value {
    let out = env.ok(&["image", "inspect", name]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

/// Media types of the layers of `image`, read from `berth save --format oci-archive`.
fn oci_layer_media_types(env: &TestEnv, image: &str, tar_path: &Path) -> Vec<String> {
    env.ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        tar_path.to_str().unwrap(),
        image,
    ]);
    let mut files = std::collections::HashMap::new();
    let mut ar = tar::Archive::new(std::fs::File::open(tar_path).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        if p == "index.json" || e.header().size().unwrap() < 1_000_000 {
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            files.insert(p, data);
        }
    }
    let blob = |d: &str| -> Value {
        let p = format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
        serde_json::from_slice(&files[&p]).unwrap()
    };
    let index: Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let manifest = blob(index["manifests"][0]["digest"].as_str().unwrap());
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn compression_zstd_no_cache_filter_platform_and_progress() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let dir = context(
        &env,
        "opts",
        &[(
            "Dockerfile",
            "FROM busybox:local AS one\n\
             RUN echo one-$((0+1)) | tee /one\n\
             FROM busybox:local AS two\n\
             COPY --from=one /one /one\n\
             RUN echo two-$((1+1)) | tee /two\n",
        )],
    );
    // --compression zstd: the new layers are zstd blobs, and the image runs.
    let out = build_ok(&env, &dir, &["--compression", "zstd", "-t", "z"]);
    assert!(out.contains("one-1") && out.contains("two-2"), "{out}");
    assert_eq!(run(&env, "z", &["cat", "/one", "/two"]), "one-1\ntwo-2\n");
    let tar_path = env.path("z.oci.tar");
    let types = oci_layer_media_types(&env, "z", &tar_path);
    assert_eq!(types.len(), 3, "{types:?}");
    for t in &types[1..] {
        assert_eq!(
            t, "application/vnd.oci.image.layer.v1.tar+zstd",
            "{types:?}"
        );
    }
    if std::process::Command::new("skopeo")
        .arg("--version")
        .output()
        .is_ok()
    {
        let o = std::process::Command::new("skopeo")
            .args([
                "inspect",
                "--raw",
                &format!("oci-archive:{}", tar_path.display()),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let mimes: Vec<&str> = v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["mediaType"].as_str().unwrap())
            .collect();
        assert_eq!(
            mimes[1..],
            types[1..].iter().map(String::as_str).collect::<Vec<_>>()[..]
        );
    }
    // --no-cache-filter two: stage one comes from the cache, stage two runs again.
    let out = build_ok(&env, &dir, &["--no-cache-filter", "two", "-t", "f"]);
    assert!(!out.contains("one-1"), "{out}");
    assert!(out.contains("two-2"), "{out}");
    assert!(out.contains("CACHED"), "{out}");
    // --platform: the host's is fine, another is refused before anything runs.
    let host = host_arch();
    let other = if host == "arm64" { "amd64" } else { "arm64" };
    build_ok(
        &env,
        &dir,
        &["--platform", &format!("linux/{host}"), "-t", "p"],
    );
    let out = build(
        &env,
        &dir,
        &["--platform", &format!("linux/{other}"), "-t", "bad"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("linux/{other}")) && err.contains(&format!("linux/{host}")),
        "{err}"
    );
    assert!(!err.contains("one-1"), "{err}");
    let fp = context(
        &env,
        "fromplat",
        &[(
            "Dockerfile",
            &format!("FROM --platform=linux/{other} busybox:local\nRUN true\n"),
        )],
    );
    let out = build(&env, &fp, &["-t", "bad2"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("Dockerfile:1:"), "{err}");
    let fp = context(
        &env,
        "fromplat2",
        &[(
            "Dockerfile",
            "FROM --platform=$BUILDPLATFORM busybox:local\nRUN true\n",
        )],
    );
    build_ok(&env, &fp, &["-t", "good2"]);
    env.fails(&["image", "inspect", "bad"]);
    // --progress plain: one line per event with step numbers and timings.
    let out = build_ok(&env, &dir, &["--no-cache", "-t", "pl"]);
    assert!(
        out.lines()
            .filter(|l| !l.starts_with("writing image") && !l.starts_with("naming to"))
            .all(|l| l.starts_with('#')),
        "{out}"
    );
    assert!(out.contains("DONE"), "{out}");
    assert!(!out.contains('\r'), "{out}");
    // --progress tty: a live line per step, rewritten in place.
    let o = env.berth(&[
        "build",
        "--progress",
        "tty",
        "--network",
        "none",
        "--no-cache",
        "-t",
        "tt",
        dir.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("\r\x1b[K"), "{err:?}");
    assert!(err.contains("DONE"), "{err}");
    let o = env.berth(&["build", "--progress", "fancy", dir.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("plain"));
}

#[test]
fn workdir_creates_a_layer_only_when_it_creates_a_directory() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let dir = context(
        &env,
        "wd",
        &[(
            "Dockerfile",
            "FROM busybox:local\n\
             WORKDIR /tmp\n\
             WORKDIR /app/sub\n\
             USER 1000:1000\n\
             WORKDIR /data\n\
             USER root\n\
             WORKDIR /\n",
        )],
    );
    build_ok(&env, &dir, &["-t", "wd"]);
    let i = inspect(&env, "wd");
    let h = i["History"].as_array().cloned().unwrap_or_default();
    let hist: Vec<(String, bool)> = if h.is_empty() {
        // berth history as the source of truth when inspect omits it.
        Vec::new()
    } else {
        h.iter()
            .map(|e| {
                (
                    e["created_by"].as_str().unwrap_or("").to_string(),
                    e["empty_layer"].as_bool().unwrap_or(false),
                )
            })
            .collect()
    };
    // Base layer + /app/sub + /data.
    assert_eq!(
        i["RootFS"]["Layers"].as_array().unwrap().len(),
        3,
        "{hist:?}"
    );
    assert_eq!(
        run(&env, "wd", &["stat", "-c", "%u:%g %a", "/data", "/app/sub"]),
        "1000:1000 755\n0:0 755\n"
    );
    // Rebuilt from the cache, with the same result.
    let again = build_ok(&env, &dir, &["-t", "wd2"]);
    assert!(!again.contains("cache miss"), "{again}");
    assert_eq!(inspect(&env, "wd2")["Id"], i["Id"]);
}

#[test]
fn copy_exclude_applies_at_any_depth_and_stays_out_of_the_cache_key() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let dir = context(
        &env,
        "excl",
        &[
            (
                "Dockerfile",
                "FROM busybox:local\n\
                 COPY --exclude=**/*.log --exclude=sub/skipdir src/ /app/\n\
                 COPY --exclude=*.log src /flat/\n\
                 RUN echo RAN-$((6*7))\n",
            ),
            ("src/keep.txt", "k\n"),
            ("src/a.log", "a\n"),
            ("src/sub/b.log", "b\n"),
            ("src/sub/keep2.txt", "k2\n"),
            ("src/sub/deep/c.log", "c\n"),
            ("src/sub/skipdir/x.txt", "x\n"),
        ],
    );
    build_ok(&env, &dir, &["-t", "excl"]);
    assert_eq!(
        run(&env, "excl", &["busybox", "find", "/app", "-type", "f"])
            .lines()
            .collect::<std::collections::BTreeSet<_>>(),
        ["/app/keep.txt", "/app/sub/keep2.txt"]
            .into_iter()
            .collect()
    );
    // `*.log` matches at the source's top level only (as a .dockerignore line does).
    assert_eq!(
        run(
            &env,
            "excl",
            &["busybox", "find", "/flat", "-name", "*.log"]
        )
        .lines()
        .collect::<std::collections::BTreeSet<_>>(),
        ["/flat/sub/b.log", "/flat/sub/deep/c.log"]
            .into_iter()
            .collect()
    );
    // Changing a file both COPYs exclude changes nothing.
    std::fs::write(dir.join("src/a.log"), "changed\n").unwrap();
    let again = build_ok(&env, &dir, &["-t", "excl2"]);
    assert!(!again.contains("cache miss"), "{again}");
    assert!(!again.contains("RAN-42"), "{again}");
}

#[test]
fn cache_mount_sharing_locked_and_private() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    // Two independent stages run at the same time; each meets the other through a shared
    // cache mount (bounded wait), so both hold their cache mounts at once.
    let step = |me: &str, other: &str, sharing: &str| {
        format!(
            "RUN --mount=type=cache,id=rv-{sharing},target=/rv \
             --mount=type=cache,id=c-{sharing},target=/c,sharing={sharing} \
             sh -c 'if [ -e /c/busy ]; then echo CLASH-$((1+1)); fi; touch /c/busy /c/{me} /rv/{me}; \
             i=0; while [ ! -e /rv/{other} ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done; \
             echo seen-{me}: $(ls /c | grep -v busy | tr \"\\n\" \" \"); rm -f /c/busy; touch /done-{me}'\n"
        )
    };
    for sharing in ["locked", "private"] {
        let df = format!(
            "FROM busybox:local AS a\n{}FROM busybox:local AS b\n{}FROM busybox:local\n\
             COPY --from=a /done-A /a\nCOPY --from=b /done-B /b\n",
            step("A", "B", sharing),
            step("B", "A", sharing)
        );
        let dir = context(&env, &format!("share-{sharing}"), &[("Dockerfile", &df)]);
        let out = build_ok(&env, &dir, &["-t", &format!("share-{sharing}")]);
        // Never two writers in one directory at once.
        assert!(!out.contains("CLASH-2"), "{out}");
        if sharing == "private" {
            // Each writer had a directory of its own.
            assert!(
                out.contains("seen-A: A \n") || out.contains("seen-A: A\n"),
                "{out}"
            );
            assert!(
                out.contains("seen-B: B \n") || out.contains("seen-B: B\n"),
                "{out}"
            );
        } else {
            // One after the other in the same directory: the second sees the first's file.
            assert!(
                out.contains("seen-A: A B") || out.contains("seen-B: A B"),
                "{out}"
            );
        }
    }
}
