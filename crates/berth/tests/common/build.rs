//! Helpers shared by the `berth build` test files (included with `#[path]`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use super::common::TestEnv;

/// A context directory in the scratch area with these files.
pub fn context(env: &TestEnv, name: &str, files: &[(&str, &str)]) -> PathBuf {
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
pub fn build(env: &TestEnv, dir: &Path, args: &[&str]) -> Output {
    let mut a = vec!["build", "--progress", "plain", "--network", "none"];
    a.extend_from_slice(args);
    a.push(dir.to_str().unwrap());
    env.berth(&a)
}

/// [`build`], asserting success; returns the progress output (stderr).
#[track_caller]
pub fn build_ok(env: &TestEnv, dir: &Path, args: &[&str]) -> String {
    let out = build(env, dir, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "build failed ({}):\n{err}",
        out.status
    );
    err
}

/// `berth run --rm --network none IMAGE CMD…`, asserting success; returns stdout.
pub fn run(env: &TestEnv, image: &str, cmd: &[&str]) -> String {
    let mut a = vec!["run", "--rm", "--network", "none", image];
    a.extend_from_slice(cmd);
    env.ok(&a)
}
