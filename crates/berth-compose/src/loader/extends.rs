//! `extends`: a service built on another one (same file or another), cycles refused.

use super::*;

/// Resolve `extends:` of every service (recursively; from the same tree or another file).
pub(super) fn apply_extends(root: &mut Node, env: &Env, warnings: &mut Vec<String>) -> Result<()> {
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

pub(super) fn resolve_service(
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
            let other = load_file(&f, &dir, env, warnings, stack.len()).map_err(|e| match e {
                // A missing file is named where the extends is written.
                ComposeError::Io { path, source } if path == f => ComposeError::Invalid {
                    file: ext.mark.file.to_string(),
                    line: ext.mark.line,
                    path: format!("services.{name}.extends.file"),
                    msg: format!("cannot read {}: {source}", path.display()),
                },
                other => other,
            })?;
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
