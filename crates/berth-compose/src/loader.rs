//! Stage 5: the loading pipeline as a whole (files, environment, project name, per-file
//! parse/interpolate/normalise, `include`, merge, `extends`, profiles, validation, typed model).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::interp::{self, InterpError};
use crate::model::{self, Network, Project, Service};
use crate::normalize::{self, clean_join};
use crate::yaml::{self, Kind, Mark, Node};
use crate::{dotenv, merge, ComposeError, Result};

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
    /// `--profile` (added to `COMPOSE_PROFILES`).
    pub profiles: Vec<String>,
    /// Working directory for relative paths and the lookup.
    pub cwd: PathBuf,
    /// The process environment (overrides `.env`).
    pub environ: BTreeMap<String, String>,
}

struct Env {
    vars: BTreeMap<String, String>,
    home: Option<String>,
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
    } else if let Some(cf) = o.environ.get("COMPOSE_FILE").filter(|s| !s.is_empty()) {
        cf.split(':').map(|f| clean_join(&o.cwd, f)).collect()
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
    let env_files: Vec<PathBuf> = if o.env_files.is_empty() {
        let d = project_dir.join(".env");
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
    };
    for f in &env_files {
        let look = |k: &str| o.environ.get(k).cloned().or_else(|| vars.get(k).cloned());
        for (k, v) in dotenv::read(f, &look)? {
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
    let mut profiles: BTreeSet<String> = o.profiles.iter().cloned().collect();
    if let Some(p) = env.get("COMPOSE_PROFILES") {
        profiles.extend(
            p.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        );
    }
    let mut p = convert(tree, &name, &profiles, &env)?;
    p.working_dir = project_dir;
    p.config_files = files;
    warnings.extend(std::mem::take(&mut p.warnings));
    p.warnings = warnings;
    Ok(p)
}

/// Parse, interpolate, include, normalise and rebase one file.
fn load_file(
    path: &Path,
    base: &Path,
    env: &Env,
    warnings: &mut Vec<String>,
    depth: usize,
) -> Result<Node> {
    if depth > MAX_DEPTH {
        return Err(ComposeError::Project(format!(
            "{}: include/extends nested more than {MAX_DEPTH} levels (a cycle?)",
            path.display()
        )));
    }
    let text = crate::read_bounded(path, MAX_COMPOSE_FILE)?;
    let display = path.display().to_string();
    let mut root = yaml::parse(&text, &display)?;
    if !matches!(root.kind, Kind::Map(_)) {
        return Err(ComposeError::Syntax {
            file: display,
            line: root.mark.line,
            msg: "the top level must be a mapping (services:, networks:, …)".into(),
        });
    }
    let lookup = |k: &str| env.get(k);
    let mut missing = BTreeSet::new();
    interp::interpolate_tree(&mut root, "", &lookup, &mut |n| {
        missing.insert(n.to_string());
    })
    .map_err(|b| interp_error(&b.0, &b.1, &b.2, &b.3))?;
    for m in missing {
        warnings.push(format!(
            "the {m:?} variable is not set; defaulting to a blank string"
        ));
    }
    if root.remove("version").is_some() {
        warnings.push(format!(
            "{display}: the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion"
        ));
    }
    if let Some(inc) = root.remove("include") {
        include(&mut root, inc, base, env, warnings, depth)?;
    }
    if let Some(svcs) = root.get_mut("services") {
        if svcs.is_null() {
            *svcs = Node::empty_map(svcs.mark.clone());
        }
        let Some(entries) = svcs.as_map_mut() else {
            return Err(ComposeError::Invalid {
                file: svcs.mark.file.to_string(),
                line: svcs.mark.line,
                path: "services".into(),
                msg: "must be a mapping of service names to definitions".into(),
            });
        };
        for (k, v) in entries.iter_mut() {
            normalize::service(v, &format!("services.{}", k.name))?;
            normalize::rebase_service(v, base, env.home.as_deref());
        }
    }
    for section in ["networks", "volumes", "secrets", "configs"] {
        if let Some(n) = root.get_mut(section) {
            if n.is_null() {
                *n = Node::empty_map(n.mark.clone());
            }
            if let Some(entries) = n.as_map_mut() {
                for (_, v) in entries.iter_mut() {
                    if v.is_null() {
                        *v = Node::empty_map(v.mark.clone());
                    }
                    if let Some(l) = v.get_mut("labels") {
                        normalize::labels(l, &format!("{section}.labels"))?;
                    }
                    // Legacy `external: {name: X}`.
                    if let Some(ext) = v.get("external").and_then(|e| e.get("name")).cloned() {
                        v.insert("name", ext.clone());
                        v.insert(
                            "external",
                            Node::new(Kind::Scalar("true".into(), true), ext.mark),
                        );
                    }
                }
            }
        }
    }
    normalize::rebase_top(&mut root, base, env.home.as_deref());
    Ok(root)
}

fn interp_error(path: &str, mark: &Mark, text: &str, e: &InterpError) -> ComposeError {
    let msg = match e {
        InterpError::Invalid => format!(
            "invalid interpolation format {text:?}: you may need to escape any $ with another $"
        ),
        InterpError::Required(var, m) => {
            if m.is_empty() {
                format!("required variable {var} is missing a value")
            } else {
                format!("required variable {var} is missing a value: {m}")
            }
        }
    };
    ComposeError::Invalid {
        file: mark.file.to_string(),
        line: mark.line,
        path: path.to_string(),
        msg,
    }
}

/// `include:` entries: each is loaded as its own project (paths relative to its directory)
/// and its resources are added; a resource defined on both sides is an error.
fn include(
    root: &mut Node,
    inc: Node,
    base: &Path,
    env: &Env,
    warnings: &mut Vec<String>,
    depth: usize,
) -> Result<()> {
    let Kind::Seq(items) = inc.kind else {
        return Err(ComposeError::Invalid {
            file: inc.mark.file.to_string(),
            line: inc.mark.line,
            path: "include".into(),
            msg: "must be a list of files".into(),
        });
    };
    for (i, it) in items.into_iter().enumerate() {
        let ipath = format!("include[{i}]");
        let bad = |m: &Mark, msg: &str| ComposeError::Invalid {
            file: m.file.to_string(),
            line: m.line,
            path: ipath.clone(),
            msg: msg.to_string(),
        };
        let (paths, pdir, env_files): (Vec<String>, Option<String>, Vec<String>) =
            if let Some(s) = it.as_str() {
                (vec![s.to_string()], None, vec![])
            } else if it.as_map().is_some() {
                let strs = |n: Option<&Node>| -> Vec<String> {
                    match n {
                        Some(n) => match &n.kind {
                            Kind::Seq(v) => v
                                .iter()
                                .filter_map(|x| x.as_str().map(str::to_string))
                                .collect(),
                            _ => n.as_str().map(|s| vec![s.to_string()]).unwrap_or_default(),
                        },
                        None => vec![],
                    }
                };
                (
                    strs(it.get("path")),
                    it.get("project_directory")
                        .and_then(Node::as_str)
                        .map(str::to_string),
                    strs(it.get("env_file")),
                )
            } else {
                return Err(bad(&it.mark, "must be a path or a mapping with path:"));
            };
        if paths.is_empty() {
            return Err(bad(&it.mark, "needs a path"));
        }
        let files: Vec<PathBuf> = paths.iter().map(|p| clean_join(base, p)).collect();
        let sub_dir = match pdir {
            Some(d) => clean_join(base, &d),
            None => files[0]
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| base.to_path_buf()),
        };
        let mut vars = env.vars.clone();
        let efiles: Vec<PathBuf> = if env_files.is_empty() {
            let d = sub_dir.join(".env");
            if d.is_file() {
                vec![d]
            } else {
                vec![]
            }
        } else {
            env_files.iter().map(|f| clean_join(base, f)).collect()
        };
        for f in efiles {
            let look = |k: &str| env.vars.get(k).cloned();
            for (k, v) in dotenv::read(&f, &look)? {
                if let Some(v) = v {
                    vars.entry(k).or_insert(v);
                }
            }
        }
        let sub_env = Env {
            vars,
            home: env.home.clone(),
        };
        let mut sub = Node::empty_map(it.mark.clone());
        for f in &files {
            let t = load_file(f, &sub_dir, &sub_env, warnings, depth + 1)?;
            merge::merge(&mut sub, t, "");
        }
        apply_extends(&mut sub, &sub_env, warnings)?;
        for section in ["services", "networks", "volumes", "secrets", "configs"] {
            let Some(Kind::Map(entries)) = sub.remove(section).map(|n| n.kind) else {
                continue;
            };
            if root.get(section).is_none() {
                root.insert(section, Node::empty_map(it.mark.clone()));
            }
            let target = root.get_mut(section).and_then(Node::as_map_mut);
            let Some(target) = target else { continue };
            for (k, v) in entries {
                if let Some((_, existing)) = target.iter().find(|(t, _)| t.name == k.name) {
                    if existing.to_json() != v.to_json() {
                        return Err(ComposeError::Invalid {
                            file: existing.mark.file.to_string(),
                            line: existing.mark.line,
                            path: format!("{section}.{}", k.name),
                            msg: format!("conflicts with the one imported from {}", v.mark.file),
                        });
                    }
                    continue;
                }
                target.push((k, v));
            }
        }
    }
    Ok(())
}

/// Resolve `extends:` of every service (recursively; from the same tree or another file).
fn apply_extends(root: &mut Node, env: &Env, warnings: &mut Vec<String>) -> Result<()> {
    let names: Vec<String> = match root.get("services").and_then(Node::as_map) {
        Some(m) => m.iter().map(|(k, _)| k.name.clone()).collect(),
        None => return Ok(()),
    };
    for n in names {
        let resolved = resolve_service(root, &n, env, warnings, &mut Vec::new())?;
        if let Some(s) = root.get_mut("services").and_then(|s| s.get_mut(&n)) {
            *s = resolved;
        }
    }
    Ok(())
}

fn resolve_service(
    root: &Node,
    name: &str,
    env: &Env,
    warnings: &mut Vec<String>,
    stack: &mut Vec<String>,
) -> Result<Node> {
    let svc = root
        .get("services")
        .and_then(|s| s.get(name))
        .cloned()
        .ok_or_else(|| {
            ComposeError::Project(format!("cannot extend service {name:?}: no such service"))
        })?;
    let Some(ext) = svc.get("extends").cloned() else {
        return Ok(svc);
    };
    let here = format!("{}#{name}", svc.mark.file);
    if stack.contains(&here) || stack.len() > MAX_DEPTH {
        return Err(ComposeError::Invalid {
            file: ext.mark.file.to_string(),
            line: ext.mark.line,
            path: format!("services.{name}.extends"),
            msg: "circular extends".into(),
        });
    }
    stack.push(here);
    let (base_name, file) = match (ext.as_str(), ext.get("service").and_then(Node::as_str)) {
        (Some(s), _) => (s.to_string(), None),
        (None, Some(s)) => (
            s.to_string(),
            ext.get("file").and_then(Node::as_str).map(PathBuf::from),
        ),
        _ => {
            return Err(ComposeError::Invalid {
                file: ext.mark.file.to_string(),
                line: ext.mark.line,
                path: format!("services.{name}.extends"),
                msg: "needs service: (and optionally file:)".into(),
            })
        }
    };
    let mut base = match file {
        Some(f) => {
            let dir = f.parent().map(Path::to_path_buf).unwrap_or_default();
            let other = load_file(&f, &dir, env, warnings, stack.len())?;
            if other
                .get("services")
                .and_then(|s| s.get(&base_name))
                .is_none()
            {
                return Err(ComposeError::Invalid {
                    file: ext.mark.file.to_string(),
                    line: ext.mark.line,
                    path: format!("services.{name}.extends"),
                    msg: format!("service {base_name:?} not found in {}", f.display()),
                });
            }
            resolve_service(&other, &base_name, env, warnings, stack)?
        }
        None => {
            if root
                .get("services")
                .and_then(|s| s.get(&base_name))
                .is_none()
            {
                return Err(ComposeError::Invalid {
                    file: ext.mark.file.to_string(),
                    line: ext.mark.line,
                    path: format!("services.{name}.extends"),
                    msg: format!("cannot extend service {base_name:?}: no such service"),
                });
            }
            resolve_service(root, &base_name, env, warnings, stack)?
        }
    };
    stack.pop();
    let mut own = svc;
    own.remove("extends");
    merge::merge(&mut base, own, &format!("services.{name}"));
    Ok(base)
}

/// Split `x-*` keys off a mapping.
fn take_extensions(n: &mut Node) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    if let Some(m) = n.as_map_mut() {
        m.retain(|(k, v)| {
            if k.name.starts_with("x-") {
                out.insert(k.name.clone(), v.to_json());
                false
            } else {
                true
            }
        });
    }
    out
}

/// Find the node at a serde path below `n` (for the line of a conversion error).
fn node_at<'a>(n: &'a Node, path: &serde_path_to_error::Path) -> (&'a Node, String) {
    let mut cur = n;
    let mut text = String::new();
    for seg in path.iter() {
        match seg {
            serde_path_to_error::Segment::Seq { index } => {
                text.push_str(&format!("[{index}]"));
                if let Some(x) = cur.as_seq().and_then(|v| v.get(*index)) {
                    cur = x;
                }
            }
            serde_path_to_error::Segment::Map { key } => {
                text.push('.');
                text.push_str(key);
                if let Some((k, v)) = cur
                    .as_map()
                    .and_then(|m| m.iter().find(|(k, _)| &k.name == key))
                {
                    cur = v;
                    let _ = k;
                }
            }
            _ => {}
        }
    }
    (cur, text)
}

fn typed<T: serde::de::DeserializeOwned>(n: &Node, path: &str) -> Result<T> {
    let json = n.to_json();
    serde_path_to_error::deserialize(json).map_err(|e| {
        let (at, sub) = node_at(n, e.path());
        let mut msg = e.inner().to_string();
        if let Some(rest) = msg.strip_prefix("unknown field `") {
            let field = rest.split('`').next().unwrap_or("").to_string();
            msg = format!("unknown key {field:?}");
            // Point at the key itself.
            let sub = sub.strip_suffix(&format!(".{field}")).unwrap_or(&sub);
            let (p, key_mark) = (format!("{path}{sub}"), at.mark.clone());
            let key_line = at
                .as_map()
                .and_then(|m| m.iter().find(|(k, _)| k.name == field))
                .map_or(key_mark.line, |(k, _)| k.mark.line);
            return ComposeError::Invalid {
                file: key_mark.file.to_string(),
                line: key_line,
                path: p,
                msg,
            };
        }
        if msg.starts_with("invalid type") {
            msg = format!("{msg} (got {})", at.type_name());
        }
        ComposeError::Invalid {
            file: at.mark.file.to_string(),
            line: at.mark.line,
            path: format!("{path}{sub}"),
            msg,
        }
    })
}

fn bad_at(n: &Node, path: &str, msg: String) -> ComposeError {
    ComposeError::Invalid {
        file: n.mark.file.to_string(),
        line: n.mark.line,
        path: path.to_string(),
        msg,
    }
}

/// Env file entry of a service (`env_file:` long form).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvFileRef {
    path: String,
    #[serde(default = "yes", deserialize_with = "de_bool_lenient")]
    required: bool,
    #[serde(default)]
    #[allow(dead_code)] // accepted: only the default format exists
    format: Option<String>,
}

fn yes() -> bool {
    true
}

fn de_bool_lenient<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    use serde::Deserialize;
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::String(s) => s == "true",
        _ => true,
    })
}

fn convert(mut tree: Node, name: &str, profiles: &BTreeSet<String>, env: &Env) -> Result<Project> {
    let extensions = take_extensions(&mut tree);
    let mut p = Project {
        name: name.to_string(),
        extensions,
        ..Default::default()
    };
    for (k, _) in tree.as_map().cloned().unwrap_or_default() {
        if !matches!(
            k.name.as_str(),
            "name" | "services" | "networks" | "volumes" | "secrets" | "configs"
        ) {
            return Err(ComposeError::Invalid {
                file: k.mark.file.to_string(),
                line: k.mark.line,
                path: k.name.clone(),
                msg: format!("unknown top-level key {:?}: use services, networks, volumes, secrets, configs, include, name or x-*", k.name),
            });
        }
    }
    let services = tree.remove("services");
    let mut all: BTreeMap<String, (Service, Node)> = BTreeMap::new();
    if let Some(svcs) = services {
        for (k, mut v) in svcs.as_map().cloned().unwrap_or_default() {
            let path = format!("services.{}", k.name);
            if !valid_service_name(&k.name) {
                return Err(bad_at(
                    &v,
                    &path,
                    format!(
                        "invalid service name {:?}: use letters, digits, '.', '-' and '_'",
                        k.name
                    ),
                ));
            }
            let ext = take_extensions(&mut v);
            let env_files = v.remove("env_file");
            v.remove("extends");
            let mut s: Service = typed(&v, &path)?;
            s.extensions = ext;
            // env_file first, then environment; unset values from the project environment.
            let mut environment: BTreeMap<String, Option<String>> = BTreeMap::new();
            if let Some(ef) = env_files {
                let refs: Vec<EnvFileRef> = typed(&ef, &format!("{path}.env_file"))?;
                for r in refs {
                    let pth = PathBuf::from(&r.path);
                    if !pth.exists() && !r.required {
                        continue;
                    }
                    let look = |k: &str| env.get(k);
                    for (ek, evv) in dotenv::read(&pth, &look).map_err(|e| match e {
                        ComposeError::Io { path, source } => bad_at(
                            &ef,
                            &format!("{path_s}.env_file", path_s = path_str(&k.name)),
                            format!("env file {} not found: {source}", path.display()),
                        ),
                        other => other,
                    })? {
                        environment.insert(ek.clone(), evv.or_else(|| env.get(&ek)));
                    }
                }
            }
            for (ek, ev) in std::mem::take(&mut s.environment) {
                let ev = ev.or_else(|| env.get(&ek));
                environment.insert(ek, ev);
            }
            s.environment = environment;
            all.insert(k.name.clone(), (s, v));
        }
    }
    // Profiles.
    for (n, (s, _)) in all {
        if s.profiles.is_empty()
            || s.profiles.iter().any(|x| profiles.contains(x) || x == "*")
            || profiles.contains("*")
        {
            p.services.insert(n, s);
        } else {
            p.disabled.insert(n, s);
        }
    }
    let section = |tree: &mut Node, key: &str| -> Vec<(String, Node)> {
        tree.remove(key)
            .and_then(|n| n.as_map().cloned())
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.name, v))
            .collect()
    };
    let mut networks: BTreeMap<String, Network> = BTreeMap::new();
    for (k, v) in section(&mut tree, "networks") {
        let mut v = v;
        take_extensions(&mut v);
        let mut n: Network = typed(&v, &format!("networks.{k}"))?;
        if n.name.is_none() {
            n.name = Some(if n.external {
                k.clone()
            } else {
                format!("{name}_{k}")
            });
        }
        networks.insert(k, n);
    }
    let mut volumes = BTreeMap::new();
    for (k, v) in section(&mut tree, "volumes") {
        let mut v = v;
        take_extensions(&mut v);
        let mut vol: model::Volume = typed(&v, &format!("volumes.{k}"))?;
        if vol.name.is_none() {
            vol.name = Some(if vol.external {
                k.clone()
            } else {
                format!("{name}_{k}")
            });
        }
        volumes.insert(k, vol);
    }
    let mut files: BTreeMap<&str, BTreeMap<String, model::FileObject>> = BTreeMap::new();
    for sec in ["secrets", "configs"] {
        let mut m = BTreeMap::new();
        for (k, v) in section(&mut tree, sec) {
            let mut v = v;
            take_extensions(&mut v);
            let mut f: model::FileObject = typed(&v, &format!("{sec}.{k}"))?;
            if f.name.is_none() {
                f.name = Some(if f.external {
                    k.clone()
                } else {
                    format!("{name}_{k}")
                });
            }
            if f.file.is_none() && f.environment.is_none() && f.content.is_none() && !f.external {
                return Err(bad_at(
                    &v,
                    &format!("{sec}.{k}"),
                    "needs file:, environment:, content: or external:".into(),
                ));
            }
            m.insert(k, f);
        }
        files.insert(sec, m);
    }

    // Defaults and references.
    let mut used_networks = BTreeSet::new();
    let mut used_volumes = BTreeSet::new();
    let mut used_secrets = BTreeSet::new();
    let mut used_configs = BTreeSet::new();
    for (sn, s) in p.services.iter_mut() {
        if s.image.is_none() && s.build.is_none() {
            return Err(ComposeError::Project(format!(
                "service {sn:?} has neither an image nor a build context specified: add image: or build:"
            )));
        }
        if let Some(b) = &mut s.build {
            // Arguments without a value come from the environment, or are left out.
            let args = std::mem::take(&mut b.args);
            b.args = args
                .into_iter()
                .filter_map(|(k, v)| v.or_else(|| env.get(&k)).map(|v| (k, Some(v))))
                .collect();
            if b.dockerfile.is_none() && b.dockerfile_inline.is_none() {
                b.dockerfile = Some("Dockerfile".into());
            }
        }
        // Docker keeps extra hosts in a map: printed sorted.
        s.extra_hosts.sort();
        if s.network_mode.is_none() && s.networks.is_empty() {
            s.networks.insert("default".into(), None);
        }
        for n in s.networks.keys() {
            used_networks.insert(n.clone());
        }
        for m in &s.volumes {
            if m.kind == "volume" {
                if let Some(src) = &m.source {
                    used_volumes.insert(src.clone());
                }
            }
        }
        for r in &s.secrets {
            used_secrets.insert(r.source.clone());
        }
        for r in &s.configs {
            used_configs.insert(r.source.clone());
        }
        if let Some(d) = &mut s.deploy {
            if d.placement.is_null() {
                d.placement = Value::Object(Default::default());
            }
        }
    }
    // Implicit dependencies (links, network_mode: service:X, volumes_from), as Docker adds them.
    let names: BTreeSet<String> = p.services.keys().cloned().collect();
    for (sn, s) in p.services.iter_mut() {
        let mut implicit: Vec<String> = s
            .links
            .iter()
            .map(|l| l.split(':').next().unwrap_or(l).to_string())
            .collect();
        if let Some(other) = s
            .network_mode
            .as_deref()
            .and_then(|m| m.strip_prefix("service:"))
        {
            implicit.push(other.to_string());
        }
        for dep in implicit {
            if !names.contains(&dep) {
                return Err(ComposeError::Project(format!(
                    "service {sn:?} refers to undefined service {dep:?}: invalid compose project"
                )));
            }
            s.depends_on.entry(dep).or_insert(model::DependsOn {
                condition: "service_started".into(),
                restart: true,
                required: true,
            });
        }
        if s.container_name.is_some() && s.replicas() > 1 {
            return Err(ComposeError::Project(format!(
                "services.{sn}: container_name {:?} cannot be used with {} replicas (container names must be unique): remove container_name or set one replica",
                s.container_name.as_deref().unwrap_or_default(),
                s.replicas()
            )));
        }
    }
    for (sn, s) in &p.services {
        for (dep, d) in &s.depends_on {
            if !p.services.contains_key(dep) && d.required {
                let why = if p.disabled.contains_key(dep) {
                    format!(
                        " (it is in a profile that is not enabled: use --profile {})",
                        p.disabled[dep].profiles.join(",")
                    )
                } else {
                    String::new()
                };
                return Err(ComposeError::Project(format!(
                    "service {sn:?} depends on undefined service {dep:?}{why}: invalid compose project"
                )));
            }
        }
        for l in &s.links {
            let target = l.split(':').next().unwrap_or(l);
            if !p.services.contains_key(target) {
                return Err(ComposeError::Project(format!(
                    "service {sn:?} links to undefined service {target:?}"
                )));
            }
        }
        if let Some(nm) = &s.network_mode {
            if let Some(other) = nm.strip_prefix("service:") {
                if !p.services.contains_key(other) {
                    return Err(ComposeError::Project(format!(
                        "service {sn:?} uses the network stack of undefined service {other:?}"
                    )));
                }
            }
        }
    }
    if let Some(cycle) = dependency_cycle(&p) {
        return Err(ComposeError::Project(format!(
            "dependency cycle detected: {}",
            cycle.join(" -> ")
        )));
    }
    for n in &used_networks {
        if n == "default" && !networks.contains_key("default") {
            networks.insert(
                "default".into(),
                Network {
                    name: Some(format!("{name}_default")),
                    ..Default::default()
                },
            );
        }
        if !networks.contains_key(n) {
            let who = p
                .services
                .iter()
                .find(|(_, s)| s.networks.contains_key(n))
                .map(|(k, _)| k.clone())
                .unwrap_or_default();
            return Err(ComposeError::Project(format!(
                "service {who:?} refers to undefined network {n}: invalid compose project"
            )));
        }
    }
    for v in &used_volumes {
        if !volumes.contains_key(v) {
            let who = p
                .services
                .iter()
                .find(|(_, s)| s.volumes.iter().any(|m| m.source.as_deref() == Some(v)))
                .map(|(k, _)| k.clone())
                .unwrap_or_default();
            return Err(ComposeError::Project(format!(
                "service {who:?} refers to undefined volume {v}: invalid compose project"
            )));
        }
    }
    let mut secrets = files.remove("secrets").unwrap_or_default();
    let mut configs = files.remove("configs").unwrap_or_default();
    for (used, defined, what) in [
        (&used_secrets, &secrets, "secret"),
        (&used_configs, &configs, "config"),
    ] {
        for u in used {
            if !defined.contains_key(u) {
                return Err(ComposeError::Project(format!(
                    "undefined {what} {u:?}: declare it under the top-level {what}s:"
                )));
            }
        }
    }
    networks.retain(|k, _| used_networks.contains(k));
    volumes.retain(|k, _| used_volumes.contains(k));
    secrets.retain(|k, _| used_secrets.contains(k));
    configs.retain(|k, _| used_configs.contains(k));
    p.networks = networks;
    p.volumes = volumes;
    p.secrets = secrets;
    p.configs = configs;
    Ok(p)
}

/// A cycle in `depends_on` (its services, first repeated at the end), if any.
fn dependency_cycle(p: &Project) -> Option<Vec<String>> {
    fn visit(
        p: &Project,
        n: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|x| x == n) {
            let mut c = stack[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        if let Some(s) = p.services.get(n) {
            for d in s.depends_on.keys() {
                if let Some(c) = visit(p, d, stack, done) {
                    return Some(c);
                }
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    p.services
        .keys()
        .find_map(|n| visit(p, n, &mut Vec::new(), &mut done))
}

fn path_str(service: &str) -> String {
    format!("services.{service}")
}

fn valid_service_name(s: &str) -> bool {
    !s.is_empty()
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}
