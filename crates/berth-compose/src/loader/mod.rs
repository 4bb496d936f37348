//! Stage 5: the loading pipeline as a whole (files, environment, project name, per-file
//! parse/interpolate/normalise, `include`, merge, `extends`, profiles, validation, typed model).

mod extends;
mod file;
mod typed;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::interp::{self, InterpError};
use crate::model::{self, Network, Project, Service};
use crate::normalize::{self, clean_join};
use crate::yaml::{self, Kind, Mark, Node};
use crate::{dotenv, merge, ComposeError, Result};

use extends::apply_extends;
use file::load_file;
use typed::convert;

/// File names looked up (in this order) in the working directory and its parents.
pub const DEFAULT_FILES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// Override files read after the default file found in the same directory.
pub const OVERRIDE_FILES: [&str; 4] = [
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yml",
    "docker-compose.override.yaml",
];

/// Largest compose file read, in bytes.
pub const MAX_COMPOSE_FILE: u64 = 16 << 20;

/// How deep `include` and `extends` may nest.
const MAX_DEPTH: usize = 32;

/// What to load (the global options of `compose`).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `-f` files in order (empty: `COMPOSE_FILE`, else look up from `cwd`).
    pub files: Vec<PathBuf>,
    /// `-p`.
    pub project_name: Option<String>,
    /// `--project-directory` (default: the first file's directory).
    pub project_directory: Option<PathBuf>,
    /// `--env-file` (default: `.env` in the project directory, if present).
    pub env_files: Vec<PathBuf>,
    /// `--profile` (when empty: `COMPOSE_PROFILES`).
    pub profiles: Vec<String>,
    /// Services named on the command line: their profiles are enabled too, as docker compose
    /// does for `up SERVICE`/`run SERVICE` (not their dependencies' profiles). Unknown names
    /// are ignored here.
    pub services: Vec<String>,
    /// The text of the file named `-` in `files` (docker compose's `-f -`: the compose file
    /// on standard input; the front end reads it). Relative paths in it are relative to
    /// `cwd`.
    pub stdin: Option<String>,
    /// Working directory for relative paths and the lookup.
    pub cwd: PathBuf,
    /// The process environment (overrides `.env`).
    pub environ: BTreeMap<String, String>,
}

struct Env {
    vars: BTreeMap<String, String>,
    home: Option<String>,
    /// The text of the compose file `-` (standard input), if given.
    stdin: Option<std::sync::Arc<str>>,
}

impl Env {
    fn get(&self, k: &str) -> Option<String> {
        self.vars.get(k).cloned()
    }
}

/// Find the compose file(s) to use when no `-f` is given: the first of [`DEFAULT_FILES`] in
/// `cwd` or its closest parent, plus an override file next to it.
pub fn find_files(cwd: &Path) -> Result<Vec<PathBuf>> {
    let mut dir = Some(cwd);
    while let Some(d) = dir {
        for f in DEFAULT_FILES {
            let p = d.join(f);
            if p.is_file() {
                let mut out = vec![p];
                if let Some(o) = OVERRIDE_FILES
                    .iter()
                    .map(|o| d.join(o))
                    .find(|o| o.is_file())
                {
                    out.push(o);
                }
                return Ok(out);
            }
        }
        dir = d.parent();
    }
    Err(ComposeError::NotFound(cwd.to_path_buf()))
}

/// Docker's normalisation of a directory name into a project name: lowercase, only
/// `[a-z0-9_-]`, starting with a letter or digit.
pub fn normalize_project_name(s: &str) -> String {
    let lower: String = s
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    lower.trim_start_matches(['_', '-']).to_string()
}

fn valid_project_name(s: &str) -> bool {
    !s.is_empty()
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn check_name(s: &str, from: &str) -> Result<String> {
    if valid_project_name(s) {
        Ok(s.to_string())
    } else {
        Err(ComposeError::Project(format!(
            "invalid project name {s:?} ({from}): use only lowercase letters, digits, '-' and '_', starting with a letter or digit"
        )))
    }
}

/// A `COMPOSE_*` setting read before the files are known: the process environment, else
/// the env file(s) (`--env-file`, else `.env` in `--project-directory` or the working
/// directory), as docker compose reads `COMPOSE_FILE` and `COMPOSE_PATH_SEPARATOR`.
/// The env files of a project: `--env-file`s (relative to the working directory), else
/// `DIR/.env` when it exists.
fn env_file_paths(o: &Options, dir: &Path) -> Vec<PathBuf> {
    if o.env_files.is_empty() {
        let d = dir.join(".env");
        if d.is_file() {
            vec![d]
        } else {
            vec![]
        }
    } else {
        o.env_files
            .iter()
            .map(|f| clean_join(&o.cwd, &f.to_string_lossy()))
            .collect()
    }
}

fn compose_var(o: &Options, key: &str) -> Result<Option<String>> {
    if let Some(v) = o.environ.get(key) {
        return Ok(Some(v.clone()));
    }
    let dir = o.project_directory.as_ref().map_or_else(
        || o.cwd.clone(),
        |d| clean_join(&o.cwd, &d.to_string_lossy()),
    );
    let files = env_file_paths(o, &dir);
    let mut found = None;
    for f in files {
        let look = |k: &str| o.environ.get(k).cloned();
        for (k, v) in dotenv::read(&f, &look)? {
            if k == key {
                found = v.or(found);
            }
        }
    }
    Ok(found)
}

/// Load a project.
///
/// Errors: [`ComposeError`] naming the file and line for malformed YAML, bad interpolation,
/// invalid values and unknown keys; [`ComposeError::Project`] for inconsistencies across
/// services; [`ComposeError::NotFound`] when there is no compose file.
pub fn load(o: &Options) -> Result<Project> {
    let mut warnings = Vec::new();
    let files: Vec<PathBuf> = if !o.files.is_empty() {
        o.files
            .iter()
            .map(|f| clean_join(&o.cwd, &f.to_string_lossy()))
            .collect()
    } else if let Some(cf) = compose_var(o, "COMPOSE_FILE")?.filter(|s| !s.is_empty()) {
        let sep = compose_var(o, "COMPOSE_PATH_SEPARATOR")?
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| ":".into());
        cf.split(sep.as_str())
            .filter(|f| !f.is_empty())
            .map(|f| clean_join(&o.cwd, f))
            .collect()
    } else {
        find_files(&o.cwd)?
    };
    let project_dir = match &o.project_directory {
        Some(d) => clean_join(&o.cwd, &d.to_string_lossy()),
        None => files[0]
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| o.cwd.clone()),
    };
    // Environment: .env (or --env-file), overridden by the process environment.
    let mut vars = BTreeMap::new();
    let env_files = env_file_paths(o, &project_dir);
    for f in &env_files {
        let look = |k: &str| o.environ.get(k).cloned();
        let earlier = |k: &str| vars.get(k).cloned();
        for (k, v) in dotenv::read_layered(f, &look, &earlier)? {
            if let Some(v) = v {
                vars.insert(k, v);
            }
        }
    }
    for (k, v) in &o.environ {
        vars.insert(k.clone(), v.clone());
    }
    let env = Env {
        home: o.environ.get("HOME").cloned(),
        vars,
        stdin: o.stdin.as_deref().map(std::sync::Arc::from),
    };

    let mut tree = Node::empty_map(Mark {
        file: files[0].display().to_string().into(),
        line: 1,
        col: 1,
    });
    for f in &files {
        let t = load_file(f, &project_dir, &env, &mut warnings, 0)?;
        merge::merge(&mut tree, t, "");
    }
    // Nothing at all (an empty file, only comments, `{}`, only `version:`): docker compose
    // refuses it rather than running an empty project.
    if tree.as_map_mut().is_some_and(|m| m.is_empty()) {
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        return Err(ComposeError::Project(format!(
            "{}: empty compose file: define at least one service (services: NAME: image: …)",
            names.join(", ")
        )));
    }
    apply_extends(&mut tree, &env, &mut warnings)?;

    let name_in_file = tree.get("name").and_then(Node::as_str).map(str::to_string);
    let name = if let Some(p) = &o.project_name {
        check_name(p, "-p")?
    } else if let Some(p) = env.get("COMPOSE_PROJECT_NAME").filter(|s| !s.is_empty()) {
        check_name(&p, "COMPOSE_PROJECT_NAME")?
    } else if let Some(p) = name_in_file {
        // Docker normalises a name: from the file (but refuses a bad -p or env name).
        check_name(&normalize_project_name(&p), "name:")?
    } else {
        let base = project_dir
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let n = normalize_project_name(&base);
        if n.is_empty() {
            return Err(ComposeError::Project(format!(
                "cannot derive a project name from the directory {}: use -p NAME",
                project_dir.display()
            )));
        }
        n
    };
    // `--profile` replaces COMPOSE_PROFILES (docker compose reads the variable only when no
    // flag is given).
    let mut profiles: BTreeSet<String> = o.profiles.iter().cloned().collect();
    if let Some(p) = env
        .get("COMPOSE_PROFILES")
        .filter(|_| o.profiles.is_empty())
    {
        profiles.extend(
            p.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        );
    }
    let named: Vec<String> = o
        .services
        .iter()
        .filter_map(|n| tree.get("services").and_then(|ss| ss.get(n)))
        .filter_map(|svc| svc.get("profiles").and_then(Node::as_seq))
        .flatten()
        .filter_map(Node::as_str)
        .map(str::to_string)
        .collect();
    profiles.extend(named);
    let mut p = convert(tree, &name, &profiles, &env)?;
    p.working_dir = project_dir;
    p.config_files = files;
    warnings.extend(std::mem::take(&mut p.warnings));
    p.warnings = warnings;
    Ok(p)
}
