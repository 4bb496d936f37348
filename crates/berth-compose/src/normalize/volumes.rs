//! `volumes:` short syntax to the long one, secret/config references and `devices:`.

use super::*;

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

pub(super) fn volumes(n: &mut Node, path: &str) -> Result<()> {
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

pub(super) fn file_refs(n: &mut Node, path: &str) -> Result<()> {
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
        } else if secrets && it.get("target").is_none_or(Node::is_null) {
            // The long form without a target mounts at /run/secrets/SOURCE too.
            if let Some(src) = it.get("source").and_then(Node::as_str).map(str::to_string) {
                let m = it.mark.clone();
                it.insert("target", s(&format!("/run/secrets/{src}"), &m));
            }
        }
    }
    Ok(())
}

pub(super) fn devices(n: &mut Node, path: &str) -> Result<()> {
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
