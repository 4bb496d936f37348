//! The per-container `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname`.

use std::net::IpAddr;

/// `/etc/hosts`: loopback names, the container's own addresses with its hostname (and name),
/// then `--add-host` entries (`HOST:IP`).
pub fn hosts(hostname: &str, name: &str, own: &[IpAddr], add_hosts: &[(String, String)]) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    let mut names = hostname.to_string();
    if !name.is_empty() && name != hostname {
        names.push(' ');
        names.push_str(name);
    }
    if own.is_empty() {
        s.push_str(&format!("127.0.1.1\t{names}\n"));
    }
    for ip in own {
        s.push_str(&format!("{ip}\t{names}\n"));
    }
    for (h, ip) in add_hosts {
        s.push_str(&format!("{ip}\t{h}\n"));
    }
    s
}

/// Parse `--add-host HOST:IP` (also `HOST=IP`); IPv6 addresses may contain colons.
pub fn parse_add_host(spec: &str) -> Option<(String, String)> {
    let (h, ip) = spec.split_once('=').or_else(|| spec.split_once(':'))?;
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    if h.is_empty() || ip.parse::<IpAddr>().is_err() {
        return None;
    }
    Some((h.to_string(), ip.to_string()))
}

/// What the host's resolv.conf says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HostResolv {
    pub nameservers: Vec<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

pub fn parse_resolv(text: &str) -> HostResolv {
    let mut r = HostResolv::default();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("nameserver") => r.nameservers.extend(w.next().map(str::to_string)),
            Some("search") | Some("domain") => r.search = w.map(str::to_string).collect(),
            Some("options") => r.options.extend(w.map(str::to_string)),
            _ => {}
        }
    }
    r
}

fn is_loopback(ns: &str) -> bool {
    ns.parse::<IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// `/etc/resolv.conf` for a container. `dns` = `--dns`; `embedded` = the gateway of a user
/// network whose DNS server answers for container names. Without either, the host's
/// non-loopback resolvers (a loopback resolver of the host is unreachable from a container).
pub fn resolv_conf(host: &HostResolv, dns: &[String], embedded: Option<&str>) -> String {
    let mut s = String::new();
    if !dns.is_empty() {
        for d in dns {
            s.push_str(&format!("nameserver {d}\n"));
        }
    } else if let Some(gw) = embedded {
        s.push_str(&format!("nameserver {gw}\n"));
    } else {
        let usable: Vec<&String> = host
            .nameservers
            .iter()
            .filter(|n| !is_loopback(n))
            .collect();
        if usable.is_empty() {
            s.push_str("# the host has no resolvers reachable from containers; use --dns\n");
        }
        for n in usable {
            s.push_str(&format!("nameserver {n}\n"));
        }
    }
    if embedded.is_none() && !host.search.is_empty() {
        s.push_str(&format!("search {}\n", host.search.join(" ")));
    }
    let opts: Vec<&String> = host
        .options
        .iter()
        .filter(|o| !o.starts_with("ndots"))
        .collect();
    if embedded.is_some() && dns.is_empty() {
        s.push_str("options ndots:0\n");
    } else if !opts.is_empty() {
        s.push_str(&format!(
            "options {}\n",
            opts.iter()
                .map(|o| o.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file() {
        let h = hosts(
            "abc123",
            "web",
            &["172.17.0.2".parse().unwrap()],
            &[("db".into(), "10.0.0.9".into())],
        );
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.contains("172.17.0.2\tabc123 web\n"));
        assert!(h.ends_with("10.0.0.9\tdb\n"));
        let h = hosts("web", "web", &[], &[]);
        assert!(h.contains("127.0.1.1\tweb\n"));
    }

    #[test]
    fn add_host() {
        assert_eq!(
            parse_add_host("db:10.0.0.9"),
            Some(("db".into(), "10.0.0.9".into()))
        );
        assert_eq!(
            parse_add_host("v6:fd00::1"),
            Some(("v6".into(), "fd00::1".into()))
        );
        assert_eq!(
            parse_add_host("x=1.2.3.4"),
            Some(("x".into(), "1.2.3.4".into()))
        );
        assert_eq!(parse_add_host("nope"), None);
        assert_eq!(parse_add_host("a:notip"), None);
    }

    #[test]
    fn resolv() {
        let host = parse_resolv(
            "# c\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch corp.example\noptions edns0 ndots:2\n",
        );
        assert_eq!(host.nameservers, vec!["127.0.0.53", "192.0.2.53"]);
        let r = resolv_conf(&host, &[], None);
        assert_eq!(
            r,
            "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n"
        );
        let r = resolv_conf(&host, &[], Some("10.90.0.1"));
        assert_eq!(r, "nameserver 10.90.0.1\noptions ndots:0\n");
        let r = resolv_conf(&host, &["9.9.9.9".into()], None);
        assert!(r.starts_with("nameserver 9.9.9.9\n"));
        let only_lo = parse_resolv("nameserver 127.0.0.53\n");
        assert!(resolv_conf(&only_lo, &[], None).contains("--dns"));
    }
}
