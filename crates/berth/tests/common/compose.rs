//! Helpers shared by the `berth compose` test files (included with `#[path]`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use super::common::TestEnv;

/// A project directory with `compose.yaml` = `yaml`.
pub fn project(env: &TestEnv, name: &str, yaml: &str) -> PathBuf {
    let d = env.path(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("compose.yaml"), yaml).unwrap();
    d
}

/// `berth compose ARGS…` in `dir`, stdin closed.
pub fn compose(env: &TestEnv, dir: &Path, args: &[&str]) -> Output {
    let mut c = env.cmd(&["compose"]);
    c.args(args).current_dir(dir).stdin(Stdio::null());
    c.output().unwrap()
}

/// [`compose`], asserting success; returns stdout.
#[track_caller]
pub fn compose_ok(env: &TestEnv, dir: &Path, args: &[&str]) -> String {
    let out = compose(env, dir, args);
    assert!(
        out.status.success(),
        "compose {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
