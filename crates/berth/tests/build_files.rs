//! `berth build`: files into images — ADD of local archives in every compression Docker
//! reads, COPY `--link`, `--parents` and `--exclude`, cache mounts' sharing modes, WORKDIR —
//! and build options (`--compression zstd`, `--no-cache-filter`, `--platform`, `--progress`).
//! Run as root (RUN steps are containers).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

/// A context directory in the scratch area with these files.
fn context(env: &TestEnv, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = env.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (p, content) in files {
        let f = dir.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, content).unwrap();
    }
    dir
}

/// `berth build --progress plain --network none ARGS… DIR`.
fn build(env: &TestEnv, dir: &Path, args: &[&str]) -> Output {
    let mut a = vec!["build", "--progress", "plain", "--network", "none"];
    a.extend_from_slice(args);
    a.push(dir.to_str().unwrap());
    env.berth(&a)
}

#[track_caller]
fn build_ok(env: &TestEnv, dir: &Path, args: &[&str]) -> String {
    let out = build(env, dir, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "build failed ({}):\n{err}",
        out.status
    );
    err
}

fn run(env: &TestEnv, image: &str, cmd: &[&str]) -> String {
    let mut a = vec!["run", "--rm", "--network", "none", image];
    a.extend_from_slice(cmd);
    env.ok(&a)
}

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
