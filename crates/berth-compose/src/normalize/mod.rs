//! Stage 3: canonical forms. Short syntaxes become the long ones (ports, volumes, depends_on,
//! secrets, devices, lists of `KEY=VALUE` → mappings, …) while the tree still knows lines, so
//! a malformed entry is reported as `file:line: services.web.ports[1]: invalid port "80:x"`,
//! and so that merging can match entries by key (a volume by its target, …).

mod paths;
mod ports;
mod volumes;

use std::path::{Component, Path, PathBuf};

use crate::yaml::{Key, Kind, Mark, Node};
use crate::{ComposeError, Result};

pub use paths::{clean_join, rebase_service, rebase_top};
use ports::ports;
pub use ports::{parse_port, ShortPort};
use volumes::{devices, file_refs, volumes};

fn invalid(mark: &Mark, path: &str, msg: impl Into<String>) -> ComposeError {
    ComposeError::Invalid {
        file: mark.file.to_string(),
        line: mark.line,
        path: path.to_string(),
        msg: msg.into(),
    }
}

fn key(name: &str, mark: &Mark) -> Key {
    Key {
        name: name.to_string(),
        mark: mark.clone(),
    }
}

fn map(entries: Vec<(&str, Node)>, mark: &Mark) -> Node {
    Node::new(
        Kind::Map(
            entries
                .into_iter()
                .map(|(k, v)| (key(k, mark), v))
                .collect(),
        ),
        mark.clone(),
    )
}

fn s(v: &str, mark: &Mark) -> Node {
    Node::string(v, mark.clone())
}

fn plain(v: &str, mark: &Mark) -> Node {
    Node::new(Kind::Scalar(v.to_string(), true), mark.clone())
}

/// A list of `KEY=VALUE` (or `KEY`) / a mapping → a mapping. `sep` is the separator;
/// `bare_null` makes a bare `KEY` null (environment, args) instead of "" (labels).
fn list_to_map(n: &mut Node, path: &str, sep: char, bare_null: bool) -> Result<()> {
    let Kind::Seq(items) = &n.kind else {
        if n.is_null() {
            *n = Node::empty_map(n.mark.clone());
            return Ok(());
        }
        if !matches!(n.kind, Kind::Map(_)) {
            return Err(invalid(
                &n.mark,
                path,
                format!("must be a mapping or a list, not {}", n.type_name()),
            ));
        }
        return Ok(());
    };
    let mut out = Vec::new();
    for (i, it) in items.iter().enumerate() {
        let Some(text) = it.as_str() else {
            return Err(invalid(
                &it.mark,
                &format!("{path}[{i}]"),
                "must be a string KEY=VALUE",
            ));
        };
        let (k, v) = match text.split_once(sep) {
            Some((k, v)) => (k.to_string(), s(v, &it.mark)),
            None if bare_null => (text.to_string(), plain("", &it.mark)),
            None => (text.to_string(), s("", &it.mark)),
        };
        out.push((key(&k, &it.mark), v));
    }
    n.kind = Kind::Map(out);
    Ok(())
}

/// A single string → a one-item list.
fn string_to_list(n: &mut Node) {
    if let Kind::Scalar(_, _) = &n.kind {
        if !n.is_null() {
            let it = n.clone();
            n.kind = Kind::Seq(vec![it]);
        }
    }
}

/// Canonicalise one service definition in place. `path` is `services.NAME`.
pub fn service(svc: &mut Node, path: &str) -> Result<()> {
    if svc.is_null() {
        *svc = Node::empty_map(svc.mark.clone());
    }
    if !matches!(svc.kind, Kind::Map(_)) {
        return Err(invalid(&svc.mark, path, "a service must be a mapping"));
    }
    if let Some(b) = svc.get_mut("build") {
        if let Some(ctx) = b.as_str().map(str::to_string) {
            let m = b.mark.clone();
            *b = map(vec![("context", s(&ctx, &m))], &m);
        }
        let bp = format!("{path}.build");
        if let Some(a) = b.get_mut("args") {
            list_to_map(a, &format!("{bp}.args"), '=', true)?;
        }
        if let Some(a) = b.get_mut("labels") {
            list_to_map(a, &format!("{bp}.labels"), '=', false)?;
        }
        if b.as_map().is_some() && b.get("context").is_none() {
            let m = b.mark.clone();
            b.insert("context", s(".", &m));
        }
    }
    for (k, sep, bare_null) in [
        ("environment", '=', true),
        ("labels", '=', false),
        ("sysctls", '=', false),
        ("annotations", '=', false),
    ] {
        if let Some(n) = svc.get_mut(k) {
            list_to_map(n, &format!("{path}.{k}"), sep, bare_null)?;
        }
    }
    if let Some(d) = svc.get_mut("deploy") {
        if let Some(l) = d.get_mut("labels") {
            list_to_map(l, &format!("{path}.deploy.labels"), '=', false)?;
        }
    }
    for k in [
        "dns",
        "dns_search",
        "tmpfs",
        "env_file",
        "cap_add",
        "cap_drop",
        "expose",
        "profiles",
        "links",
    ] {
        if let Some(n) = svc.get_mut(k) {
            string_to_list(n);
        }
    }
    if let Some(n) = svc.get_mut("extra_hosts") {
        extra_hosts(n, &format!("{path}.extra_hosts"))?;
    }
    if let Some(n) = svc.get_mut("depends_on") {
        depends_on(n, &format!("{path}.depends_on"))?;
    }
    if let Some(n) = svc.get_mut("networks") {
        if let Kind::Seq(items) = &n.kind {
            let mut out = Vec::new();
            for (i, it) in items.iter().enumerate() {
                let Some(name) = it.as_str() else {
                    return Err(invalid(
                        &it.mark,
                        &format!("{path}.networks[{i}]"),
                        "must be a network name",
                    ));
                };
                out.push((key(name, &it.mark), plain("", &it.mark)));
            }
            n.kind = Kind::Map(out);
        }
    }
    if let Some(n) = svc.get_mut("ports") {
        ports(n, &format!("{path}.ports"))?;
    }
    if let Some(n) = svc.get_mut("volumes") {
        volumes(n, &format!("{path}.volumes"))?;
    }
    for k in ["secrets", "configs"] {
        if let Some(n) = svc.get_mut(k) {
            file_refs(n, &format!("{path}.{k}"))?;
        }
    }
    if let Some(n) = svc.get_mut("devices") {
        devices(n, &format!("{path}.devices"))?;
    }
    if let Some(n) = svc.get_mut("env_file") {
        if let Kind::Seq(items) = &mut n.kind {
            for it in items.iter_mut() {
                if let Some(p) = it.as_str().map(str::to_string) {
                    let m = it.mark.clone();
                    *it = map(
                        vec![("path", s(&p, &m)), ("required", plain("true", &m))],
                        &m,
                    );
                }
            }
        }
    }
    Ok(())
}

/// Labels given as a list (`[a=b, c]`) → a mapping (`c` → "").
pub fn labels(n: &mut Node, path: &str) -> Result<()> {
    list_to_map(n, path, '=', false)
}

fn extra_hosts(n: &mut Node, path: &str) -> Result<()> {
    match &mut n.kind {
        Kind::Map(entries) => {
            let items = entries
                .iter()
                .map(|(k, v)| s(&format!("{}={}", k.name, v.as_str().unwrap_or("")), &k.mark))
                .collect();
            n.kind = Kind::Seq(items);
        }
        Kind::Seq(items) => {
            for (i, it) in items.iter_mut().enumerate() {
                let Some(t) = it.as_str().map(str::to_string) else {
                    return Err(invalid(
                        &it.mark,
                        &format!("{path}[{i}]"),
                        "must be HOST:IP",
                    ));
                };
                let (h, ip) = match t.split_once('=') {
                    Some(x) => x,
                    None => t.split_once(':').ok_or_else(|| {
                        invalid(
                            &it.mark,
                            &format!("{path}[{i}]"),
                            format!("invalid extra host {t:?}: use HOST:IP"),
                        )
                    })?,
                };
                *it = s(&format!("{h}={ip}"), &it.mark);
            }
        }
        _ => string_to_list(n),
    }
    Ok(())
}

fn depends_on(n: &mut Node, path: &str) -> Result<()> {
    if let Kind::Seq(items) = &n.kind {
        let mut out = Vec::new();
        for (i, it) in items.iter().enumerate() {
            let Some(name) = it.as_str() else {
                return Err(invalid(
                    &it.mark,
                    &format!("{path}[{i}]"),
                    "must be a service name",
                ));
            };
            let m = &it.mark;
            out.push((
                key(name, m),
                map(
                    vec![
                        ("condition", s("service_started", m)),
                        ("required", plain("true", m)),
                    ],
                    m,
                ),
            ));
        }
        n.kind = Kind::Map(out);
    } else if let Kind::Map(entries) = &mut n.kind {
        for (k, v) in entries.iter_mut() {
            if v.is_null() {
                *v = Node::empty_map(k.mark.clone());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
