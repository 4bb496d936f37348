//! `ports:` short syntax (`[IP:]HOST[-END]:CONTAINER[/PROTO]`) to the long one.

use super::*;

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

pub(super) fn ports(n: &mut Node, path: &str) -> Result<()> {
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
