//! `-p` / `--publish` specifications, every form of Docker's documentation:
//!
//! * short: `[IP:][HOST:]CONTAINER[/PROTO]`, where HOST and CONTAINER may be ranges
//!   (`8000-8001:80-81`: one to one; `8000-8010:80`: the first free host port of the range);
//! * long: `published=HOST,target=CONTAINER[,protocol=tcp|udp][,mode=host|ingress][,host_ip=IP]`.

use std::net::Ipv4Addr;

use crate::{NetError, Result};

/// One container port to publish; `host_port` `None` means "pick a free one".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// Host address to bind (`0.0.0.0`: all).
    pub host_ip: Ipv4Addr,
    /// Host port, or the first of a range.
    pub host_port: Option<u16>,
    /// With `host_port`, the last port of a host range mapped to this one container port: the
    /// first free port of `host_port..=host_port_end` is used (Docker's `8000-8010:80`).
    pub host_port_end: Option<u16>,
    /// Port inside the container.
    pub container_port: u16,
    /// Protocol.
    pub protocol: Proto,
}

impl PortMapping {
    /// The host ports to try, in order (empty: any free port).
    pub fn host_candidates(&self) -> std::ops::RangeInclusive<u16> {
        match (self.host_port, self.host_port_end) {
            (Some(a), Some(b)) => a..=b,
            (Some(a), None) => a..=a,
            #[allow(clippy::reversed_empty_ranges)]
            (None, _) => 1..=0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
/// Transport protocol of a published port.
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    /// Parse `tcp`/`udp` (any case); `None` for anything else.
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

/// Parse one `-p` specification (short or long syntax) into the mappings it stands for.
pub fn parse_publish(spec: &str) -> Result<Vec<PortMapping>> {
    if spec.contains('=') {
        return parse_long(spec);
    }
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
    let host_ip = parse_host_ip(spec, ip)?;
    let ctr = parse_range(spec, ctr, "container")?;
    let host = match host {
        None | Some("") => None,
        Some(h) => Some(parse_range(spec, h, "host")?),
    };
    mappings(spec, host_ip, host, ctr, proto)
}

fn parse_host_ip(spec: &str, ip: Option<&str>) -> Result<Ipv4Addr> {
    match ip {
        None | Some("") => Ok(Ipv4Addr::UNSPECIFIED),
        Some(ip) => ip
            .parse()
            .map_err(|_| bad(spec, format!("host address {ip:?} is not an IPv4 address"))),
    }
}

/// The mappings of a host port (range) and a container port range: one to one when both
/// ranges have the same length, the first free port of the host range when the container
/// side is a single port.
fn mappings(
    spec: &str,
    host_ip: Ipv4Addr,
    host: Option<(u16, u16)>,
    ctr: (u16, u16),
    protocol: Proto,
) -> Result<Vec<PortMapping>> {
    let n = ctr.1 - ctr.0;
    if let Some(h) = host {
        if n == 0 && h.1 > h.0 {
            return Ok(vec![PortMapping {
                host_ip,
                host_port: Some(h.0),
                host_port_end: Some(h.1),
                container_port: ctr.0,
                protocol,
            }]);
        }
        if h.1 - h.0 != n {
            return Err(bad(
                spec,
                "host and container port ranges must have the same length (or give one container port for a host range)",
            ));
        }
    }
    Ok((0..=n)
        .map(|i| PortMapping {
            host_ip,
            host_port: host.map(|h| h.0 + i),
            host_port_end: None,
            container_port: ctr.0 + i,
            protocol,
        })
        .collect())
}

/// The long syntax: comma-separated `key=value` fields `target` (required), `published`,
/// `protocol`, `mode` (`host`; `ingress` is the swarm routing mesh, taken as `host` without a
/// swarm, as Docker does for a single engine) and `host_ip`.
fn parse_long(spec: &str) -> Result<Vec<PortMapping>> {
    let (mut target, mut published, mut proto, mut host_ip) = (None, None, Proto::Tcp, None);
    for field in spec.split(',') {
        let (k, v) = field
            .split_once('=')
            .ok_or_else(|| bad(spec, format!("field {field:?} is not KEY=VALUE")))?;
        match k.trim().to_ascii_lowercase().as_str() {
            "target" => target = Some(parse_range(spec, v, "container")?),
            "published" => {
                published = if v.is_empty() {
                    None
                } else {
                    Some(parse_range(spec, v, "host")?)
                }
            }
            "protocol" => {
                proto = Proto::parse(v)
                    .ok_or_else(|| bad(spec, format!("protocol {v:?} is not tcp or udp")))?
            }
            "mode" => {
                if !matches!(v.to_ascii_lowercase().as_str(), "host" | "ingress") {
                    return Err(bad(spec, format!("mode {v:?} is not host or ingress")));
                }
            }
            "host_ip" | "host-ip" => host_ip = Some(v),
            other => {
                return Err(bad(
                    spec,
                    format!(
                        "unknown field {other:?}; use published, target, protocol, mode or host_ip"
                    ),
                ))
            }
        }
    }
    let target = target.ok_or_else(|| {
        bad(
            spec,
            "the target (container) port is missing; add target=PORT",
        )
    })?;
    let host_ip = parse_host_ip(spec, host_ip)?;
    mappings(spec, host_ip, published, target, proto)
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
            host_port_end: None,
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
            if let (Some(hp), None) = (m.host_port, m.host_port_end) {
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
            host_port_end: None,
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
        assert_eq!(
            parse_publish(":80").unwrap(),
            vec![m([0; 4], None, 80, Proto::Tcp)]
        );
        assert_eq!(
            parse_publish("0.0.0.0:8080:80/TCP").unwrap(),
            vec![m([0; 4], Some(8080), 80, Proto::Tcp)]
        );
    }

    /// A host range for one container port: the first free port of the range (Docker).
    #[test]
    fn host_range_to_one_container_port() {
        for spec in ["127.0.0.1:23200-23202:80", "23200-23202:80/tcp"] {
            let v = parse_publish(spec).unwrap();
            assert_eq!(v.len(), 1, "{spec}");
            assert_eq!(v[0].host_port, Some(23200));
            assert_eq!(v[0].host_port_end, Some(23202));
            assert_eq!(v[0].container_port, 80);
            assert_eq!(
                v[0].host_candidates().collect::<Vec<_>>(),
                vec![23200, 23201, 23202]
            );
        }
        let v = parse_publish("127.0.0.1:9000-9009:53/udp").unwrap();
        assert_eq!(v[0].host_ip, Ipv4Addr::LOCALHOST);
        assert_eq!(v[0].protocol, Proto::Udp);
        // Two overlapping host ranges are not "given twice": each takes a free port.
        assert!(parse_all(&["8000-8010:80".into(), "8000-8010:81".into()], &[]).is_ok());
        assert_eq!(parse_publish("80").unwrap()[0].host_candidates().count(), 0);
    }

    /// The long syntax of `--publish`.
    #[test]
    fn long_syntax() {
        assert_eq!(
            parse_publish("published=8080,target=80").unwrap(),
            vec![m([0; 4], Some(8080), 80, Proto::Tcp)]
        );
        assert_eq!(
            parse_publish("published=8080,target=80,protocol=udp,mode=host").unwrap(),
            vec![m([0; 4], Some(8080), 80, Proto::Udp)]
        );
        assert_eq!(
            parse_publish("mode=host,target=80,published=8080,host_ip=127.0.0.1").unwrap(),
            vec![m([127, 0, 0, 1], Some(8080), 80, Proto::Tcp)]
        );
        assert_eq!(
            parse_publish("target=80").unwrap(),
            vec![m([0; 4], None, 80, Proto::Tcp)]
        );
        assert_eq!(
            parse_publish("target=80,published=").unwrap(),
            vec![m([0; 4], None, 80, Proto::Tcp)]
        );
        let v = parse_publish("published=8000-8002,target=80").unwrap();
        assert_eq!(v[0].host_candidates().count(), 3);
        for bad in [
            "published=8080",
            "published=8080,target=80,protocol=sctp",
            "published=8080,target=80,mode=bridge",
            "published=8080,target=80,color=red",
            "published=x,target=80",
            "published=8080,target=80,host_ip=nope",
            "target",
        ] {
            assert!(parse_publish(bad).is_err(), "{bad} should fail");
        }
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
            "8000:80-81",
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
