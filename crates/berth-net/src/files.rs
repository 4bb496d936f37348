//! The per-container `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname`.

use std::net::IpAddr;

/// The names of the container's own line in `/etc/hosts`, by Docker's rule: the FQDN
/// (`hostname.domainname`, or a dotted hostname as given) followed by the short name (its
/// first label) when the FQDN has a dot; a bare hostname alone. The container's name and its
/// network aliases are not there: on user networks the embedded DNS answers for them, on the
/// default bridge they do not resolve (as with Docker).
pub fn own_names(hostname: &str, domainname: &str) -> String {
    let fqdn = if domainname.is_empty() {
        hostname.to_string()
    } else {
        format!("{hostname}.{domainname}")
    };
    match fqdn.split_once('.') {
        Some((short, _)) if !short.is_empty() => format!("{fqdn} {short}"),
        _ => fqdn,
    }
}

/// `/etc/hosts`: loopback names, the container's own addresses with its names
/// ([`own_names`]), then `--add-host` entries (`HOST:IP`). Without an address (network
/// `none`), the names go on `127.0.1.1` (Debian's convention), so `hostname -f` still works.
pub fn hosts(
    hostname: &str,
    domainname: &str,
    own: &[IpAddr],
    add_hosts: &[(String, String)],
) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    let names = own_names(hostname, domainname);
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

/// The address of an `--add-host` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostAddr {
    /// A literal IPv4 or IPv6 address.
    Ip(IpAddr),
    /// `host-gateway`: the host's address as containers reach it (see
    /// [`crate::config::NetConf::host_gateway_ips`]).
    HostGateway,
}

/// One `--add-host` entry: one or more names for one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraHost {
    /// Host names, in the order given (whitespace-separated in the input).
    pub names: Vec<String>,
    /// Where they point.
    pub addr: HostAddr,
}

impl ExtraHost {
    /// The `(names, address)` pairs for `/etc/hosts`: one per address (`host-gateway` may stand
    /// for an IPv4 and an IPv6 address), names joined with a space.
    pub fn resolve(&self, host_gateway: &[IpAddr]) -> Vec<(String, String)> {
        let names = self.names.join(" ");
        match &self.addr {
            HostAddr::Ip(ip) => vec![(names, ip.to_string())],
            HostAddr::HostGateway => host_gateway
                .iter()
                .map(|ip| (names.clone(), ip.to_string()))
                .collect(),
        }
    }
}

/// Parse an `--add-host` value the way Docker 25+ does: `NAME:ADDR` or `NAME=ADDR`, where
/// ADDR is an IPv4 address, an IPv6 address (bare, or in brackets: `[fd00::1]`) or the special
/// value `host-gateway`; NAME may hold several whitespace-separated names for the address.
///
/// # Errors
/// A one-line message naming the input and the expected form.
pub fn parse_add_host(spec: &str) -> Result<ExtraHost, String> {
    let bad = |why: &str| {
        format!("invalid --add-host {spec:?}: {why}; expected NAME:IP, NAME=IP, NAME:[IPv6] or NAME:host-gateway")
    };
    // `=` first (Docker 25+): it cannot be part of a name or an address; `:` otherwise, the
    // first one (names have none; IPv6 addresses have several).
    let (h, addr) = spec
        .split_once('=')
        .or_else(|| spec.split_once(':'))
        .ok_or_else(|| bad("no address"))?;
    let names: Vec<String> = h.split_whitespace().map(str::to_string).collect();
    if names.is_empty() {
        return Err(bad("no host name"));
    }
    if let Some(n) = names.iter().find(|n| {
        !n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    }) {
        return Err(bad(&format!("{n:?} is not a valid host name")));
    }
    let addr = addr.trim();
    let inner = addr
        .strip_prefix('[')
        .and_then(|a| a.strip_suffix(']'))
        .unwrap_or(addr);
    if inner == "host-gateway" && inner.len() == addr.len() {
        return Ok(ExtraHost {
            names,
            addr: HostAddr::HostGateway,
        });
    }
    let ip: IpAddr = inner
        .parse()
        .map_err(|_| bad(&format!("{addr:?} is not an IP address")))?;
    if inner.len() != addr.len() && !ip.is_ipv6() {
        return Err(bad("brackets are only for IPv6 addresses"));
    }
    Ok(ExtraHost {
        names,
        addr: HostAddr::Ip(ip),
    })
}

/// What a resolv.conf says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HostResolv {
    /// `nameserver` addresses, in order.
    pub nameservers: Vec<String>,
    /// `search` domains (the last `search` or `domain` line wins, as in glibc).
    pub search: Vec<String>,
    /// `options` words (`ndots:2`, `edns0`, …), every line's, in order.
    pub options: Vec<String>,
}

/// Parse resolv.conf text (`#` and `;` comments, unknown lines ignored).
pub fn parse_resolv(text: &str) -> HostResolv {
    let mut r = HostResolv::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
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

/// Docker's public fallback resolvers (Google's), used only when allowed
/// (`public_dns_fallback = yes` in `net.conf`).
pub const PUBLIC_FALLBACK: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// The systemd-resolved stub's upstream file: the servers behind `nameserver 127.0.0.53`.
pub const SYSTEMD_RESOLVED_CONF: &str = "/run/systemd/resolve/resolv.conf";

/// Where the host's resolver settings are read from, and what to do when containers cannot
/// reach any of them. [`HostDns::system`] has the real paths; tests pass crafted files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDns {
    /// The host's resolv.conf (`/etc/resolv.conf`).
    pub resolv_conf: std::path::PathBuf,
    /// systemd-resolved's upstream list ([`SYSTEMD_RESOLVED_CONF`]), read when the host's
    /// file has only loopback resolvers (the `127.0.0.53` stub).
    pub resolved_conf: std::path::PathBuf,
    /// Use [`PUBLIC_FALLBACK`] when no resolver reachable from containers is found.
    pub public_fallback: bool,
}

/// The host's resolvers as seen from a container network namespace.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ContainerDns {
    /// The host's settings: nameservers reachable from a container (loopback and IPv6 ones
    /// dropped or replaced),
    /// search domains and options of the host's own file.
    pub resolv: HostResolv,
    /// Every nameserver of the host's file, loopback ones included (they are reachable from
    /// the host's namespace: the host network and the embedded DNS server use them).
    pub host_nameservers: Vec<String>,
    /// Set when the host has no resolver containers can reach: what to tell the user.
    pub warning: Option<String>,
}

impl HostDns {
    /// The real host paths; `public_fallback` from `net.conf`.
    pub fn system(public_fallback: bool) -> HostDns {
        HostDns {
            resolv_conf: "/etc/resolv.conf".into(),
            resolved_conf: SYSTEMD_RESOLVED_CONF.into(),
            public_fallback,
        }
    }

    /// The host's file, parsed (empty when missing).
    pub fn host(&self) -> HostResolv {
        parse_resolv(&std::fs::read_to_string(&self.resolv_conf).unwrap_or_default())
    }

    /// The host's resolvers the way Docker derives a container's on a network without IPv6:
    /// the host file's nameservers that are neither loopback nor IPv6; when there are none,
    /// systemd-resolved's upstream servers; when
    /// there are none either, [`PUBLIC_FALLBACK`] if allowed, else none and a warning. Search
    /// domains and options always come from the host's file.
    pub fn for_containers(&self) -> ContainerDns {
        let host = self.host();
        // As Docker on a network without IPv6 (berth's networks are IPv4): loopback and IPv6
        // resolvers are unreachable from the container.
        let reachable = |r: &HostResolv| -> Vec<String> {
            r.nameservers
                .iter()
                .filter(|n| !is_loopback(n) && !n.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6()))
                .cloned()
                .collect()
        };
        let mut ns = reachable(&host);
        let mut warning = None;
        if ns.is_empty() {
            let resolved = std::fs::read_to_string(&self.resolved_conf)
                .map(|t| parse_resolv(&t))
                .unwrap_or_default();
            ns = reachable(&resolved);
        }
        if ns.is_empty() {
            let had = if host.nameservers.is_empty() {
                format!("{} lists no nameserver", self.resolv_conf.display())
            } else {
                format!(
                    "{} lists only loopback or IPv6 resolvers ({}), which containers cannot reach, and {} has no other",
                    self.resolv_conf.display(),
                    host.nameservers.join(", "),
                    self.resolved_conf.display()
                )
            };
            if self.public_fallback {
                ns = PUBLIC_FALLBACK.iter().map(|s| s.to_string()).collect();
                warning = Some(format!(
                    "{had}; containers use the public resolvers {}",
                    PUBLIC_FALLBACK.join(", ")
                ));
            } else {
                warning = Some(format!(
                    "{had}; containers get no DNS server: use --dns, or allow Docker's public fallback ({}) with public_dns_fallback = yes in the store's net.conf",
                    PUBLIC_FALLBACK.join(", ")
                ));
            }
        }
        ContainerDns {
            resolv: HostResolv {
                nameservers: ns,
                search: host.search.clone(),
                options: host.options.clone(),
            },
            host_nameservers: host.nameservers,
            warning,
        }
    }

    /// The servers the embedded DNS server relays to (it runs in the host's namespace, so
    /// loopback resolvers work): the host file's nameservers, else those of
    /// [`HostDns::for_containers`].
    pub fn upstreams(&self) -> Vec<String> {
        let host = self.host();
        if !host.nameservers.is_empty() {
            return host.nameservers;
        }
        self.for_containers().resolv.nameservers
    }
}

/// The user's DNS flags: `--dns`, `--dns-search`, `--dns-option`.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DnsOverrides {
    /// `--dns`: nameservers replacing the host's.
    #[serde(default)]
    pub servers: Vec<String>,
    /// `--dns-search`: search domains replacing the host's (`.` alone: none).
    #[serde(default)]
    pub search: Vec<String>,
    /// `--dns-option`: options replacing the host's.
    #[serde(default)]
    pub options: Vec<String>,
}

impl DnsOverrides {
    /// True when no flag was given.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty() && self.search.is_empty() && self.options.is_empty()
    }

    /// Check the flags: `--dns` takes IP addresses, `--dns-search` domain names, `--dns-option`
    /// single words ([`validate_dns`] of its lists).
    ///
    /// # Errors
    /// A one-line message naming the flag and value.
    pub fn validate(&self) -> Result<(), String> {
        validate_dns(&self.servers, &self.search, &self.options)
    }
}

/// Check the flags: `--dns` takes IP addresses, `--dns-search` domain names, `--dns-option`
/// single words (the checks of [`DnsOverrides::validate`], on borrowed lists).
///
/// # Errors
/// A one-line message naming the flag and value.
pub fn validate_dns(
    servers: &[String],
    search: &[String],
    options: &[String],
) -> Result<(), String> {
    for s in servers {
        if s.parse::<IpAddr>().is_err() {
            return Err(format!("invalid --dns {s:?}: expected an IP address"));
        }
    }
    for s in search {
        let ok = s == "."
            || (!s.is_empty()
                && s.len() <= 253
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')));
        if !ok {
            return Err(format!(
                "invalid --dns-search {s:?}: expected a domain name"
            ));
        }
    }
    for s in options {
        if s.is_empty() || s.contains(char::is_whitespace) {
            return Err(format!(
                "invalid --dns-option {s:?}: expected one option such as ndots:2"
            ));
        }
    }
    Ok(())
}

/// `/etc/resolv.conf` for a container, derived as Docker does.
///
/// - `host`: the host's settings ([`ContainerDns::resolv`]; for the host network, the host's
///   file as is).
/// - `ov`: the user's flags, each replacing the host's part it names.
/// - `embedded`: the address of the embedded DNS server (user networks); it becomes the only
///   nameserver (the others are its upstreams) and `ndots:0` is added unless an `ndots`
///   option is already there.
pub fn resolv_conf(host: &HostResolv, ov: &DnsOverrides, embedded: Option<&str>) -> String {
    let mut s = String::new();
    let servers: Vec<String> = match embedded {
        Some(gw) => vec![gw.to_string()],
        None if !ov.servers.is_empty() => ov.servers.clone(),
        None => host.nameservers.clone(),
    };
    if servers.is_empty() {
        s.push_str("# the host has no resolvers reachable from containers; use --dns\n");
    }
    for n in &servers {
        s.push_str(&format!("nameserver {n}\n"));
    }
    let search: Vec<&String> = if ov.search.is_empty() {
        host.search.iter().collect()
    } else {
        ov.search.iter().filter(|d| d.as_str() != ".").collect()
    };
    if !search.is_empty() {
        let words: Vec<&str> = search.iter().map(|d| d.as_str()).collect();
        s.push_str(&format!("search {}\n", words.join(" ")));
    }
    let mut options: Vec<String> = if ov.options.is_empty() {
        host.options.clone()
    } else {
        ov.options.clone()
    };
    if embedded.is_some() && !options.iter().any(|o| o.starts_with("ndots:")) {
        options.push("ndots:0".into());
    }
    if !options.is_empty() {
        s.push_str(&format!("options {}\n", options.join(" ")));
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
            "",
            &["172.17.0.2".parse().unwrap()],
            &[("db".into(), "10.0.0.9".into())],
        );
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.contains("172.17.0.2\tabc123\n"), "{h}");
        assert!(h.ends_with("10.0.0.9\tdb\n"));
        let h = hosts("web", "", &[], &[]);
        assert!(h.contains("127.0.1.1\tweb\n"));
    }

    /// Docker's rules for the container's own line: FQDN then short name, whether the FQDN
    /// comes from a dotted --hostname or from --hostname plus --domainname; never the
    /// container's name.
    #[test]
    fn own_line_follows_docker_fqdn_rules() {
        let ip: IpAddr = "10.1.0.2".parse().unwrap();
        for (hostname, domain, want) in [
            ("web.example.com", "", "web.example.com web"),
            ("web", "example.com", "web.example.com web"),
            ("web.a", "b.c", "web.a.b.c web"),
            ("web", "", "web"),
            ("3f2a9c1d0b7e", "", "3f2a9c1d0b7e"),
            ("db.internal", "", "db.internal db"),
        ] {
            assert_eq!(own_names(hostname, domain), want);
            let h = hosts(hostname, domain, &[ip], &[]);
            assert!(h.contains(&format!("10.1.0.2\t{want}\n")), "{h}");
            assert_eq!(h.matches("10.1.0.2").count(), 1, "{h}");
            let none = hosts(hostname, domain, &[], &[]);
            assert!(none.contains(&format!("127.0.1.1\t{want}\n")), "{none}");
        }
    }

    #[test]
    fn add_host_forms() {
        let v4: IpAddr = "172.17.0.1".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        let gw = [v4, v6];
        let table: &[(&str, &[(&str, &str)])] = &[
            ("db:10.0.0.9", &[("db", "10.0.0.9")]),
            ("db=10.0.0.9", &[("db", "10.0.0.9")]),
            ("v6:fd00::1", &[("v6", "fd00::1")]),
            ("v6:[fd00::1]", &[("v6", "fd00::1")]),
            ("v6=[fd00::1]", &[("v6", "fd00::1")]),
            ("v6=::1", &[("v6", "::1")]),
            ("lo6:::1", &[("lo6", "::1")]),
            ("v6=[2001:db8::a:b]", &[("v6", "2001:db8::a:b")]),
            ("x.example.com:1.2.3.4", &[("x.example.com", "1.2.3.4")]),
            ("a b c:10.1.1.1", &[("a b c", "10.1.1.1")]),
            ("a b=10.1.1.1", &[("a b", "10.1.1.1")]),
            (
                "host.docker.internal:host-gateway",
                &[
                    ("host.docker.internal", "172.17.0.1"),
                    ("host.docker.internal", "fd00::1"),
                ],
            ),
            (
                "gw=host-gateway",
                &[("gw", "172.17.0.1"), ("gw", "fd00::1")],
            ),
        ];
        for (spec, want) in table {
            let e = parse_add_host(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
            let got = e.resolve(&gw);
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            assert_eq!(got, want, "{spec}");
        }
        for bad in [
            "nope",
            "a:notip",
            ":1.2.3.4",
            "=1.2.3.4",
            "a:[1.2.3.4]",
            "a:[host-gateway]",
            "a:Host-Gateway",
            "a/b:1.2.3.4",
            "a:1.2.3.4.5",
            "a:",
        ] {
            let e = parse_add_host(bad).unwrap_err();
            assert!(e.starts_with("invalid --add-host"), "{bad}: {e}");
        }
    }

    /// A crafted host: files in a temporary directory.
    fn host_dns(etc: &str, resolved: Option<&str>, fallback: bool) -> (tempfile::TempDir, HostDns) {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("resolv.conf"), etc).unwrap();
        if let Some(r) = resolved {
            std::fs::write(d.path().join("resolved.conf"), r).unwrap();
        }
        let h = HostDns {
            resolv_conf: d.path().join("resolv.conf"),
            resolved_conf: d.path().join("resolved.conf"),
            public_fallback: fallback,
        };
        (d, h)
    }

    const STUB: &str = "# systemd-resolved stub\nnameserver 127.0.0.53\noptions edns0 trust-ad ndots:2\nsearch corp.example lab.example\n";
    const UPSTREAM: &str =
        "nameserver 192.0.2.1\nnameserver 2001:db8::1\nnameserver 127.0.0.1\nsearch corp.example\n";

    #[test]
    fn host_resolvers_like_docker() {
        // systemd-resolved: the stub is replaced by the upstream servers; search and options
        // (ndots included) stay.
        let (_d, h) = host_dns(STUB, Some(UPSTREAM), false);
        let c = h.for_containers();
        assert_eq!(c.resolv.nameservers, vec!["192.0.2.1"]);
        assert_eq!(c.resolv.search, vec!["corp.example", "lab.example"]);
        assert_eq!(c.resolv.options, vec!["edns0", "trust-ad", "ndots:2"]);
        assert_eq!(c.warning, None);
        assert_eq!(h.upstreams(), vec!["127.0.0.53"]);
        assert_eq!(
            resolv_conf(&c.resolv, &DnsOverrides::default(), None),
            "nameserver 192.0.2.1\nsearch corp.example lab.example\noptions edns0 trust-ad ndots:2\n"
        );
        // A host with real resolvers: loopback and IPv6 ones dropped (berth's networks have
        // no IPv6), the rest kept, no fallback.
        let (_d, h) = host_dns(
            "nameserver 127.0.0.1\nnameserver ::1\nnameserver 2001:db8::53\nnameserver 198.51.100.7 # c\n",
            Some(UPSTREAM),
            true,
        );
        let c = h.for_containers();
        assert_eq!(c.resolv.nameservers, vec!["198.51.100.7"]);
        assert_eq!(c.warning, None);
        // Only loopback and no upstream file: a warning, and the public servers only if allowed.
        for (fallback, want) in [(false, vec![]), (true, vec!["8.8.8.8", "8.8.4.4"])] {
            let (_d, h) = host_dns(STUB, None, fallback);
            let c = h.for_containers();
            assert_eq!(c.resolv.nameservers, want);
            let w = c.warning.unwrap();
            assert!(
                w.contains("127.0.0.53") && w.contains("only loopback"),
                "{w}"
            );
            if fallback {
                assert!(w.contains("public resolvers 8.8.8.8, 8.8.4.4"), "{w}");
            } else {
                assert!(
                    w.contains("use --dns") && w.contains("public_dns_fallback = yes"),
                    "{w}"
                );
                assert!(
                    resolv_conf(&c.resolv, &DnsOverrides::default(), None).contains("use --dns")
                );
            }
            assert_eq!(c.resolv.search, vec!["corp.example", "lab.example"]);
        }
        // An upstream file with only loopback servers does not count.
        let (_d, h) = host_dns(STUB, Some("nameserver 127.0.0.1\n"), false);
        assert!(h.for_containers().resolv.nameservers.is_empty());
        // No host file at all.
        let (d, mut h) = host_dns("", None, false);
        h.resolv_conf = d.path().join("missing");
        let c = h.for_containers();
        assert!(c.resolv.nameservers.is_empty());
        assert!(c.warning.unwrap().contains("lists no nameserver"));
        assert!(h.upstreams().is_empty());
    }

    #[test]
    fn container_resolv_conf_table() {
        let host = HostResolv {
            nameservers: vec!["192.0.2.1".into()],
            search: vec!["corp.example".into()],
            options: vec!["edns0".into(), "ndots:3".into()],
        };
        let plain = HostResolv {
            nameservers: vec!["192.0.2.1".into()],
            ..Default::default()
        };
        let ov = |servers: &[&str], search: &[&str], options: &[&str]| DnsOverrides {
            servers: servers.iter().map(|s| s.to_string()).collect(),
            search: search.iter().map(|s| s.to_string()).collect(),
            options: options.iter().map(|s| s.to_string()).collect(),
        };
        let table: &[(&HostResolv, DnsOverrides, Option<&str>, &str)] = &[
            // Default bridge: the host's servers, search and options (ndots kept).
            (&host, ov(&[], &[], &[]), None,
             "nameserver 192.0.2.1\nsearch corp.example\noptions edns0 ndots:3\n"),
            // Each flag replaces its part only.
            (&host, ov(&["9.9.9.9", "fd00::53"], &[], &[]), None,
             "nameserver 9.9.9.9\nnameserver fd00::53\nsearch corp.example\noptions edns0 ndots:3\n"),
            (&host, ov(&[], &["a.example", "b.example"], &[]), None,
             "nameserver 192.0.2.1\nsearch a.example b.example\noptions edns0 ndots:3\n"),
            (&host, ov(&[], &["."], &[]), None,
             "nameserver 192.0.2.1\noptions edns0 ndots:3\n"),
            (&host, ov(&[], &[], &["ndots:5", "timeout:1"]), None,
             "nameserver 192.0.2.1\nsearch corp.example\noptions ndots:5 timeout:1\n"),
            // User network: the embedded server, the host's search and options; ndots kept
            // when set, else ndots:0.
            (&host, ov(&[], &[], &[]), Some("10.89.0.1"),
             "nameserver 10.89.0.1\nsearch corp.example\noptions edns0 ndots:3\n"),
            (&plain, ov(&[], &[], &[]), Some("10.89.0.1"),
             "nameserver 10.89.0.1\noptions ndots:0\n"),
            // --dns on a user network: still the embedded server (the flag's servers become
            // its upstreams for this container).
            (&host, ov(&["9.9.9.9"], &["x.example"], &["attempts:2"]), Some("10.89.0.1"),
             "nameserver 10.89.0.1\nsearch x.example\noptions attempts:2 ndots:0\n"),
        ];
        for (i, (h, o, emb, want)) in table.iter().enumerate() {
            assert_eq!(resolv_conf(h, o, *emb), *want, "row {i}");
        }
    }

    #[test]
    fn dns_flags_validated() {
        let ok = DnsOverrides {
            servers: vec!["1.1.1.1".into(), "fd00::1".into()],
            search: vec![".".into(), "corp.example".into()],
            options: vec!["ndots:2".into()],
        };
        assert!(ok.validate().is_ok());
        for bad in [
            DnsOverrides {
                servers: vec!["dns.example".into()],
                ..Default::default()
            },
            DnsOverrides {
                search: vec!["a b".into()],
                ..Default::default()
            },
            DnsOverrides {
                options: vec!["".into()],
                ..Default::default()
            },
        ] {
            assert!(
                bad.validate().unwrap_err().starts_with("invalid --dns"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn parse_resolv_forms() {
        let r = parse_resolv("; c\nnameserver 10.0.0.1 ; trailing\ndomain a.example\nsearch b.example c.example\noptions ndots:2\noptions edns0\n");
        assert_eq!(r.nameservers, vec!["10.0.0.1"]);
        assert_eq!(r.search, vec!["b.example", "c.example"]);
        assert_eq!(r.options, vec!["ndots:2", "edns0"]);
    }
}
