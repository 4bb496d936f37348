//! Stage 3: canonical forms. Short syntaxes become the long ones (ports, volumes, depends_on,
//! secrets, devices, lists of `KEY=VALUE` → mappings, …) while the tree still knows lines, so
//! a malformed entry is reported as `file:line: services.web.ports[1]: invalid port "80:x"`,
//! and so that merging can match entries by key (a volume by its target, …).

use std::path::{Component, Path, PathBuf};

use crate::yaml::{Key, Kind, Mark, Node};
use crate::{ComposeError, Result};

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

/// One port of the short syntax: (host_ip, published, target, protocol).
pub type ShortPort = (Option<String>, Option<String>, u16, String);

/// Parse one short-syntax port: `[[IP:][HOST[-HOST]]:]CONTAINER[-CONTAINER][/PROTO]`.
/// Returns (host_ip, published, target, protocol) entries (ranges expanded pairwise).
pub fn parse_port(spec: &str) -> std::result::Result<Vec<ShortPort>, String> {
    let bad = || format!("invalid port {spec:?}");
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!(
            "invalid port {spec:?}: protocol must be tcp, udp or sctp"
        ));
    }
    let (ip, host, ctr) = if let Some(r) = rest.strip_prefix('[') {
        let (ip, after) = r.split_once("]:").ok_or_else(bad)?;
        let (h, c) = after.rsplit_once(':').ok_or_else(bad)?;
        (Some(ip.to_string()), h.to_string(), c.to_string())
    } else {
        let parts: Vec<&str> = rest.split(':').collect();
        match parts.len() {
            1 => (None, String::new(), parts[0].to_string()),
            2 => (None, parts[0].to_string(), parts[1].to_string()),
            n => (
                Some(parts[..n - 2].join(":")),
                parts[n - 2].to_string(),
                parts[n - 1].to_string(),
            ),
        }
    };
    let range = |t: &str| -> std::result::Result<(u16, u16), String> {
        let (a, b) = t.split_once('-').unwrap_or((t, t));
        let a: u16 = a.trim().parse().map_err(|_| bad())?;
        let b: u16 = b.trim().parse().map_err(|_| bad())?;
        if b < a {
            return Err(bad());
        }
        Ok((a, b))
    };
    let (c0, c1) = range(&ctr)?;
    let ip = ip.filter(|i| !i.is_empty());
    if host.is_empty() {
        return Ok((c0..=c1)
            .map(|p| (ip.clone(), None, p, proto.clone()))
            .collect());
    }
    let (h0, h1) = range(&host)?;
    if c0 == c1 {
        let published = if h0 == h1 {
            h0.to_string()
        } else {
            format!("{h0}-{h1}")
        };
        return Ok(vec![(ip, Some(published), c0, proto)]);
    }
    if h1 - h0 != c1 - c0 {
        return Err(format!(
            "invalid port {spec:?}: host and container port ranges differ in size"
        ));
    }
    Ok((0..=(c1 - c0))
        .map(|i| {
            (
                ip.clone(),
                Some((h0 + i).to_string()),
                c0 + i,
                proto.clone(),
            )
        })
        .collect())
}

fn ports(n: &mut Node, path: &str) -> Result<()> {
    string_to_list(n);
    let Kind::Seq(items) = &n.kind else {
        return Err(invalid(&n.mark, path, "must be a list"));
    };
    let mut out = Vec::new();
    for (i, it) in items.iter().enumerate() {
        if matches!(it.kind, Kind::Map(_)) {
            out.push(it.clone());
            continue;
        }
        let Some(spec) = it.as_str() else {
            return Err(invalid(
                &it.mark,
                &format!("{path}[{i}]"),
                "must be a port or a mapping",
            ));
        };
        let parsed = parse_port(spec).map_err(|e| invalid(&it.mark, &format!("{path}[{i}]"), e))?;
        let m = &it.mark;
        for (ip, published, target, proto) in parsed {
            let mut e = vec![("mode", s("ingress", m))];
            if let Some(ip) = ip {
                e.push(("host_ip", s(&ip, m)));
            }
            e.push(("target", plain(&target.to_string(), m)));
            if let Some(p) = published {
                e.push(("published", s(&p, m)));
            }
            e.push(("protocol", s(&proto, m)));
            out.push(map(e, m));
        }
    }
    n.kind = Kind::Seq(out);
    Ok(())
}

/// Parse one short-syntax volume `[SOURCE:]TARGET[:MODE]` into its long form.
fn parse_volume(spec: &str, m: &Mark, path: &str) -> Result<Node> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, target, mode) = match parts.len() {
        1 => (None, parts[0], None),
        2 => (Some(parts[0]), parts[1], None),
        3 => (Some(parts[0]), parts[1], Some(parts[2])),
        _ => {
            return Err(invalid(
                m,
                path,
                format!("invalid volume {spec:?}: use [SOURCE:]TARGET[:MODE]"),
            ))
        }
    };
    if target.is_empty() || src == Some("") {
        return Err(invalid(
            m,
            path,
            format!("invalid volume {spec:?}: use [SOURCE:]TARGET[:MODE]"),
        ));
    }
    let is_bind =
        src.is_some_and(|s| s.starts_with('.') || s.starts_with('/') || s.starts_with('~'));
    let kind = if is_bind { "bind" } else { "volume" };
    let mut e = vec![("type", s(kind, m))];
    if let Some(src) = src {
        e.push(("source", s(src, m)));
    }
    e.push(("target", s(target, m)));
    let mut read_only = false;
    let mut selinux = None;
    let mut propagation = None;
    let mut nocopy = false;
    for opt in mode.unwrap_or("").split(',').filter(|o| !o.is_empty()) {
        match opt {
            "ro" => read_only = true,
            "rw" => {}
            "z" | "Z" => selinux = Some(opt),
            "nocopy" => nocopy = true,
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                propagation = Some(opt)
            }
            _ => {
                return Err(invalid(
                    m,
                    path,
                    format!("invalid volume {spec:?}: unknown mode {opt:?}"),
                ))
            }
        }
    }
    if read_only {
        e.push(("read_only", plain("true", m)));
    }
    if is_bind {
        let mut b = Vec::new();
        if let Some(p) = propagation {
            b.push(("propagation", s(p, m)));
        }
        if let Some(z) = selinux {
            b.push(("selinux", s(z, m)));
        }
        b.push(("create_host_path", plain("true", m)));
        e.push(("bind", map(b, m)));
    } else {
        let mut v = Vec::new();
        if nocopy {
            v.push(("nocopy", plain("true", m)));
        }
        e.push(("volume", map(v, m)));
    }
    Ok(map(e, m))
}

fn volumes(n: &mut Node, path: &str) -> Result<()> {
    string_to_list(n);
    let Kind::Seq(items) = &mut n.kind else {
        return Err(invalid(&n.mark, path, "must be a list"));
    };
    for (i, it) in items.iter_mut().enumerate() {
        let p = format!("{path}[{i}]");
        if let Some(spec) = it.as_str().map(str::to_string) {
            *it = parse_volume(&spec, &it.mark, &p)?;
        } else if matches!(it.kind, Kind::Map(_)) {
            if it.get("target").is_none() {
                return Err(invalid(&it.mark, &p, "a volume needs a target"));
            }
            let t = it.get("type").and_then(Node::as_str).map(str::to_string);
            match t.as_deref() {
                Some("volume") if it.get("volume").is_none() => {
                    let m = it.mark.clone();
                    it.insert("volume", Node::empty_map(m));
                }
                Some("bind" | "volume" | "tmpfs" | "npipe" | "image" | "cluster") => {}
                Some(o) => {
                    return Err(invalid(
                        &it.mark,
                        &format!("{p}.type"),
                        format!("invalid mount type {o:?}: use bind, volume or tmpfs"),
                    ))
                }
                None => {
                    return Err(invalid(
                        &it.mark,
                        &p,
                        "a volume needs a type (bind, volume or tmpfs)",
                    ))
                }
            }
        } else {
            return Err(invalid(&it.mark, &p, "must be a string or a mapping"));
        }
    }
    Ok(())
}

fn file_refs(n: &mut Node, path: &str) -> Result<()> {
    string_to_list(n);
    let Kind::Seq(items) = &mut n.kind else {
        return Err(invalid(&n.mark, path, "must be a list"));
    };
    let secrets = path.ends_with(".secrets");
    for (i, it) in items.iter_mut().enumerate() {
        if let Some(src) = it.as_str().map(str::to_string) {
            let m = it.mark.clone();
            let mut e = vec![("source", s(&src, &m))];
            if secrets {
                e.push(("target", s(&format!("/run/secrets/{src}"), &m)));
            }
            *it = map(e, &m);
        } else if it.get("source").is_none() {
            return Err(invalid(&it.mark, &format!("{path}[{i}]"), "needs a source"));
        }
    }
    Ok(())
}

fn devices(n: &mut Node, path: &str) -> Result<()> {
    string_to_list(n);
    let Kind::Seq(items) = &mut n.kind else {
        return Err(invalid(&n.mark, path, "must be a list"));
    };
    for (i, it) in items.iter_mut().enumerate() {
        if let Some(spec) = it.as_str().map(str::to_string) {
            let parts: Vec<&str> = spec.split(':').collect();
            let (src, dst, perm) = match parts.len() {
                1 => (parts[0], parts[0], "rwm"),
                2 if parts[1].chars().all(|c| "rwm".contains(c)) && !parts[1].is_empty() => {
                    (parts[0], parts[0], parts[1])
                }
                2 => (parts[0], parts[1], "rwm"),
                3 => (parts[0], parts[1], parts[2]),
                _ => {
                    return Err(invalid(
                        &it.mark,
                        &format!("{path}[{i}]"),
                        format!("invalid device {spec:?}: use HOST[:CONTAINER[:PERMISSIONS]]"),
                    ))
                }
            };
            let m = it.mark.clone();
            *it = map(
                vec![
                    ("source", s(src, &m)),
                    ("target", s(dst, &m)),
                    ("permissions", s(perm, &m)),
                ],
                &m,
            );
        }
    }
    Ok(())
}

/// Lexically join `rel` onto `base` and clean it (`.`/`..` removed), as Go's filepath.Join.
pub fn clean_join(base: &Path, rel: &str) -> PathBuf {
    let p = Path::new(rel);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn abs_path(base: &Path, p: &str, home: Option<&str>) -> String {
    if let (Some(rest), Some(h)) = (p.strip_prefix('~'), home) {
        if rest.is_empty() || rest.starts_with('/') {
            return clean_join(Path::new(h), rest.trim_start_matches('/'))
                .display()
                .to_string();
        }
    }
    clean_join(base, p).display().to_string()
}

fn is_remote(ctx: &str) -> bool {
    ctx.contains("://") || ctx.starts_with("git@") || ctx.starts_with("github.com/")
}

/// Make a service's relative host paths absolute against `base` (build context, bind
/// sources, env files, extends.file). `home` expands `~`.
pub fn rebase_service(svc: &mut Node, base: &Path, home: Option<&str>) {
    if let Some(b) = svc.get_mut("build") {
        if let Some(c) = b.get_mut("context") {
            if let Some(t) = c.as_str().map(str::to_string) {
                if !is_remote(&t) {
                    *c = Node::string(abs_path(base, &t, home), c.mark.clone());
                }
            }
        }
    }
    if let Some(Kind::Seq(items)) = svc.get_mut("volumes").map(|n| &mut n.kind) {
        for it in items.iter_mut() {
            if it.get("type").and_then(Node::as_str) == Some("bind") {
                if let Some(src) = it.get_mut("source") {
                    if let Some(t) = src.as_str().map(str::to_string) {
                        *src = Node::string(abs_path(base, &t, home), src.mark.clone());
                    }
                }
            }
        }
    }
    if let Some(Kind::Seq(items)) = svc.get_mut("env_file").map(|n| &mut n.kind) {
        for it in items.iter_mut() {
            if let Some(p) = it.get_mut("path") {
                if let Some(t) = p.as_str().map(str::to_string) {
                    *p = Node::string(abs_path(base, &t, home), p.mark.clone());
                }
            }
        }
    }
    if let Some(e) = svc.get_mut("extends") {
        if let Some(f) = e.get_mut("file") {
            if let Some(t) = f.as_str().map(str::to_string) {
                *f = Node::string(abs_path(base, &t, home), f.mark.clone());
            }
        }
    }
}

/// Make top-level secrets/configs `file:` paths absolute against `base`.
pub fn rebase_top(root: &mut Node, base: &Path, home: Option<&str>) {
    for section in ["secrets", "configs"] {
        if let Some(Kind::Map(entries)) = root.get_mut(section).map(|n| &mut n.kind) {
            for (_, v) in entries.iter_mut() {
                if let Some(f) = v.get_mut("file") {
                    if let Some(t) = f.as_str().map(str::to_string) {
                        *f = Node::string(abs_path(base, &t, home), f.mark.clone());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_short_syntax() {
        assert_eq!(
            parse_port("80").unwrap(),
            vec![(None, None, 80, "tcp".into())]
        );
        assert_eq!(
            parse_port("127.0.0.1:8000-8001:80-81/udp").unwrap(),
            vec![
                (
                    Some("127.0.0.1".into()),
                    Some("8000".into()),
                    80,
                    "udp".into()
                ),
                (
                    Some("127.0.0.1".into()),
                    Some("8001".into()),
                    81,
                    "udp".into()
                )
            ]
        );
        assert_eq!(
            parse_port("8000-8010:80").unwrap(),
            vec![(None, Some("8000-8010".into()), 80, "tcp".into())]
        );
        assert_eq!(
            parse_port("[::1]:80:81").unwrap(),
            vec![(Some("::1".into()), Some("80".into()), 81, "tcp".into())]
        );
        assert_eq!(parse_port("80:x").unwrap_err(), "invalid port \"80:x\"");
        assert!(parse_port("80/foo").is_err());
        assert!(parse_port("1-3:1-2").is_err());
    }

    #[test]
    fn joins_clean() {
        assert_eq!(
            clean_join(Path::new("/a/b"), "./c/../d"),
            PathBuf::from("/a/b/d")
        );
        assert_eq!(clean_join(Path::new("/a/b"), "../x"), PathBuf::from("/a/x"));
        assert_eq!(clean_join(Path::new("/a/b"), "/abs"), PathBuf::from("/abs"));
    }
}
