//! `-p` / `--publish` specifications: `[IP:][HOST:]CONTAINER[/PROTO]` with optional ranges.

use std::net::Ipv4Addr;

use crate::{NetError, Result};

/// One container port to publish; `host_port` `None` means "pick a free one".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    pub host_ip: Ipv4Addr,
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub protocol: Proto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    pub fn parse(s: &str) -> Option<Proto> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            _ => None,
        }
    }
}

fn bad(spec: &str, why: impl Into<String>) -> NetError {
    NetError::BadPort {
        spec: spec.to_string(),
        why: why.into(),
    }
}

fn parse_range(spec: &str, s: &str, what: &str) -> Result<(u16, u16)> {
    let one = |p: &str| -> Result<u16> {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(bad(
                spec,
                format!("{what} port {p:?} is not a number from 1 to 65535"),
            )),
        }
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if a > b {
                return Err(bad(
                    spec,
                    format!("{what} port range {s} ends before it starts"),
                ));
            }
            Ok((a, b))
        }
        None => {
            let a = one(s)?;
            Ok((a, a))
        }
    }
}

/// Parse one `-p` specification into the mappings it stands for.
pub fn parse_publish(spec: &str) -> Result<Vec<PortMapping>> {
    let (body, proto) = match spec.rsplit_once('/') {
        Some((b, p)) => (
            b,
            Proto::parse(p)
                .ok_or_else(|| bad(spec, format!("protocol {p:?} is not tcp or udp")))?,
        ),
        None => (spec, Proto::Tcp),
    };
    if body.starts_with('[') || body.matches(':').count() > 2 {
        return Err(bad(
            spec,
            "IPv6 host addresses are not supported; use an IPv4 address",
        ));
    }
    let parts: Vec<&str> = body.split(':').collect();
    let (ip, host, ctr) = match parts.as_slice() {
        [c] => (None, None, *c),
        [h, c] => (None, Some(*h), *c),
        [ip, h, c] => (Some(*ip), Some(*h), *c),
        _ => unreachable!(),
    };
    let host_ip = match ip {
        None | Some("") => Ipv4Addr::UNSPECIFIED,
        Some(ip) => ip
            .parse()
            .map_err(|_| bad(spec, format!("host address {ip:?} is not an IPv4 address")))?,
    };
    let ctr = parse_range(spec, ctr, "container")?;
    let host = match host {
        None | Some("") => None,
        Some(h) => Some(parse_range(spec, h, "host")?),
    };
    let n = ctr.1 - ctr.0;
    if let Some(h) = host {
        if h.1 - h.0 != n {
            return Err(bad(
                spec,
                "host and container port ranges must have the same length",
            ));
        }
    }
    Ok((0..=n)
        .map(|i| PortMapping {
            host_ip,
            host_port: host.map(|h| h.0 + i),
            container_port: ctr.0 + i,
            protocol: proto,
        })
        .collect())
}

/// Parse an image EXPOSE entry (`80`, `80/tcp`, `53/udp`) for `-P`: a random host port each.
pub fn parse_expose(spec: &str) -> Result<Vec<PortMapping>> {
    let (port, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = Proto::parse(proto)
        .ok_or_else(|| bad(spec, format!("protocol {proto:?} is not tcp or udp")))?;
    let (a, b) = parse_range(spec, port, "container")?;
    Ok((a..=b)
        .map(|p| PortMapping {
            host_ip: Ipv4Addr::UNSPECIFIED,
            host_port: None,
            container_port: p,
            protocol: proto,
        })
        .collect())
}

/// All mappings of a container's `-p` and `-P` lists; rejects duplicates of one host port.
pub fn parse_all(publish: &[String], publish_all: &[String]) -> Result<Vec<PortMapping>> {
    let mut out: Vec<PortMapping> = Vec::new();
    for s in publish {
        for m in parse_publish(s)? {
            if let Some(hp) = m.host_port {
                if out.iter().any(|o| {
                    o.host_port == Some(hp)
                        && o.protocol == m.protocol
                        && overlaps(o.host_ip, m.host_ip)
                }) {
                    return Err(bad(
                        s,
                        format!("host port {hp}/{} is given twice", m.protocol.as_str()),
                    ));
                }
            }
            out.push(m);
        }
    }
    for s in publish_all {
        for m in parse_expose(s)? {
            if !out
                .iter()
                .any(|o| o.container_port == m.container_port && o.protocol == m.protocol)
            {
                out.push(m);
            }
        }
    }
    Ok(out)
}

/// True if two host addresses conflict for the same port (equal, or one is the wildcard).
pub fn overlaps(a: Ipv4Addr, b: Ipv4Addr) -> bool {
    a == b || a.is_unspecified() || b.is_unspecified()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(ip: [u8; 4], h: Option<u16>, c: u16, p: Proto) -> PortMapping {
        PortMapping {
            host_ip: Ipv4Addr::from(ip),
            host_port: h,
            container_port: c,
            protocol: p,
        }
    }

    #[test]
    fn forms() {
        assert_eq!(
            parse_publish("80").unwrap(),
            vec![m([0; 4], None, 80, Proto::Tcp)]
        );
        assert_eq!(
            parse_publish("8080:80").unwrap(),
            vec![m([0; 4], Some(8080), 80, Proto::Tcp)]
        );
        assert_eq!(
            parse_publish("127.0.0.1:8080:80/udp").unwrap(),
            vec![m([127, 0, 0, 1], Some(8080), 80, Proto::Udp)]
        );
        assert_eq!(
            parse_publish("127.0.0.1::80").unwrap(),
            vec![m([127, 0, 0, 1], None, 80, Proto::Tcp)]
        );
        assert_eq!(
            parse_publish("8000-8001:80-81/tcp").unwrap(),
            vec![
                m([0; 4], Some(8000), 80, Proto::Tcp),
                m([0; 4], Some(8001), 81, Proto::Tcp)
            ]
        );
        assert_eq!(parse_publish("5000-5001").unwrap().len(), 2);
    }

    #[test]
    fn errors() {
        for s in [
            "",
            "abc",
            "0",
            "70000",
            "80/sctp",
            "8000-8002:80-81",
            "90-80",
            "x:80:80",
            "[::1]:80:80",
            "1:2:3:4",
        ] {
            assert!(parse_publish(s).is_err(), "{s} should fail");
        }
        let e = parse_publish("80/sctp").unwrap_err().to_string();
        assert!(e.contains("sctp"), "{e}");
        assert!(parse_all(&["8080:80".into(), "8080:81".into()], &[]).is_err());
        assert!(parse_all(&["8080:80".into(), "8080:81/udp".into()], &[]).is_ok());
    }

    #[test]
    fn expose() {
        let all = parse_all(&["8080:80".into()], &["80/tcp".into(), "53/udp".into()]).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1], m([0; 4], None, 53, Proto::Udp));
    }
}
