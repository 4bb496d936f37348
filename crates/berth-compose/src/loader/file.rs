//! One compose file: read (bounded), parse, interpolate, normalise; and its `include`s.

use super::*;

/// Parse, interpolate, include, normalise and rebase one file.
pub(super) fn load_file(
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
    let text = match &env.stdin {
        Some(t) if path.file_name().is_some_and(|n| n == "-") => t.to_string(),
        _ => crate::read_bounded(path, MAX_COMPOSE_FILE)?,
    };
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

pub(super) fn interp_error(path: &str, mark: &Mark, text: &str, e: &InterpError) -> ComposeError {
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
            stdin: None,
        };
        let mut sub = Node::empty_map(it.mark.clone());
        for f in &files {
            let t = load_file(f, &sub_dir, &sub_env, warnings, depth + 1).map_err(|e| match e {
                // A missing included file is named where the include is written.
                ComposeError::Io { path, source } if path == *f => bad(
                    &it.mark,
                    &format!("cannot read {}: {source}", path.display()),
                ),
                other => other,
            })?;
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
