//! `berth build` and the store: the build cache keeps its layers through `rmi` and
//! `image prune -a` (only `builder prune` drops them), a killed build leaves nothing behind
//! for the next command, and deep images (many RUN steps) still mount.
//! Run as root (RUN steps are containers).

mod common;

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

fn layer_count(env: &TestEnv) -> usize {
    std::fs::read_dir(env.root.join("layers")).unwrap().count()
}

#[test]
fn build_cache_layers_survive_rmi_and_image_prune() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let dir = context(
        &env,
        "keep",
        &[
            (
                "Dockerfile",
                "FROM busybox:local\n\
                 COPY app.txt /app.txt\n\
                 RUN cat /app.txt > /copy && echo RAN-$((40+2))\n\
                 CMD [\"cat\", \"/copy\"]\n",
            ),
            ("app.txt", "kept\n"),
        ],
    );
    let first = build_ok(&env, &dir, &["-t", "keep:1"]);
    assert!(first.contains("RAN-42"), "{first}");
    let layers = layer_count(&env);
    // rmi: the image goes, the layers its build cached stay.
    let out = env.ok(&["rmi", "keep:1"]);
    assert!(out.contains("Deleted: sha256:"), "{out}");
    assert_eq!(layer_count(&env), layers, "rmi removed cached layers");
    // The rebuild takes every step from the cache and the image runs.
    let second = build_ok(&env, &dir, &["-t", "keep:2"]);
    assert!(!second.contains("RAN-42"), "{second}");
    assert_eq!(second.matches("CACHED").count(), 2, "{second}");
    assert_eq!(run(&env, "keep:2", &[]), "kept\n");
    // image prune -a (Docker: the build cache is not an image) keeps them too.
    env.ok(&["rmi", "keep:2"]);
    env.ok(&["image", "prune", "-a", "-f"]);
    assert_eq!(
        layer_count(&env),
        layers - 1,
        "only the base image's layer goes"
    );
    env.busybox_image("busybox:local");
    let third = build_ok(&env, &dir, &["-t", "keep:3"]);
    assert!(!third.contains("RAN-42"), "{third}");
    assert_eq!(run(&env, "keep:3", &[]), "kept\n");
    // builder prune clears the cache; the image keeps its layers and runs.
    let out = env.ok(&["builder", "prune", "-a", "-f"]);
    assert!(out.contains("Deleted build cache objects: 2"), "{out}");
    assert_eq!(run(&env, "keep:3", &[]), "kept\n");
    let fourth = build_ok(&env, &dir, &["-t", "keep:4"]);
    assert!(fourth.contains("RAN-42"), "{fourth}");
    // Nothing leaks: with the cache and the images gone, no layer is left.
    env.ok(&["rmi", "keep:3", "keep:4"]);
    env.ok(&["builder", "prune", "-a", "-f"]);
    env.ok(&["image", "prune", "-a", "-f"]);
    assert_eq!(layer_count(&env), 0);
}
