//! Host ports for published container ports: reservation (inside the caller's write
//! transaction, so concurrent berth processes never hand out the same port) and the firewall
//! rule of a reservation.

use std::net::Ipv4Addr;

use berth_store::rusqlite::Connection;

use crate::nft::PortRule;
use crate::ports::{self, PortMapping, Proto};
use crate::state::{self, PortRow};
use crate::{NetError, Result};

/// Bind a host port for a moment to see whether it is free; returns the port bound (useful
/// with port 0, which asks the kernel for a free one).
fn probe_port(ip: Ipv4Addr, port: u16, proto: Proto) -> std::io::Result<u16> {
    match proto {
        Proto::Tcp => std::net::TcpListener::bind((ip, port))?
            .local_addr()
            .map(|a| a.port()),
        Proto::Udp => std::net::UdpSocket::bind((ip, port))?
            .local_addr()
            .map(|a| a.port()),
    }
}

fn container_name_of(db: &Connection, id: &str) -> String {
    state::get_sandbox(db, id)
        .ok()
        .flatten()
        .map(|s| s.container_name)
        .unwrap_or_else(|| id.chars().take(12).collect())
}

/// Reserve the host side of one mapping (inside the caller's write transaction). A fixed host
/// port already published only by containers of the same non-empty `group`, on the same host
/// address, is shared with them; the new row takes connections at once when `active`.
pub(crate) fn reserve_port(
    db: &Connection,
    m: &PortMapping,
    container_id: &str,
    container_ip: Ipv4Addr,
    group: &str,
    active: bool,
) -> Result<PortRow> {
    let mut port_group = String::new();
    let proto = m.protocol.as_str();
    let taken = |port: u16| -> Result<Option<PortRow>> {
        Ok(state::ports_on(db, port, proto)?
            .into_iter()
            .find(|r| ports::overlaps(r.host_ip, m.host_ip)))
    };
    let host_port = match (m.host_port, m.host_port_end) {
        // A host range for one container port: its first port that is free (Docker skips
        // ports that another container or program holds).
        (Some(first), Some(last)) => {
            let mut found = None;
            for p in m.host_candidates() {
                if taken(p)?.is_some() {
                    continue;
                }
                match probe_port(m.host_ip, p, m.protocol) {
                    Ok(_) => {
                        found = Some(p);
                        break;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                        return Err(NetError::Other(format!(
                            "cannot publish on {}: not an address of this host; use one of the host's addresses or omit it",
                            m.host_ip
                        )))
                    }
                    Err(e) => {
                        return Err(NetError::Other(format!(
                            "cannot check host port {p}/{proto} on {}: {e}",
                            m.host_ip
                        )))
                    }
                }
            }
            found.ok_or_else(|| {
                NetError::PortInUse(format!(
                    "every host port of {first}-{last}/{proto} on {} is already in use; give a wider or another range",
                    m.host_ip
                ))
            })?
        }
        (Some(p), None) if shareable(db, m, container_id, group)? => {
            port_group = group.to_string();
            p
        }
        (Some(p), None) => {
            if !group.is_empty() {
                port_group = group.to_string();
            }
            if let Some(r) = taken(p)? {
                return Err(NetError::PortInUse(format!(
                    "host port {p}/{proto} is already published by container {}; choose another host port",
                    container_name_of(db, &r.container_id)
                )));
            }
            match probe_port(m.host_ip, p, m.protocol) {
                Ok(_) => p,
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    return Err(NetError::PortInUse(format!(
                        "host port {p}/{proto} on {} is already in use by another program; choose another host port or stop that program",
                        m.host_ip
                    )))
                }
                Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                    return Err(NetError::Other(format!(
                        "cannot publish on {}: not an address of this host; use one of the host's addresses or omit it",
                        m.host_ip
                    )))
                }
                Err(e) => {
                    return Err(NetError::Other(format!(
                        "cannot check host port {p}/{proto} on {}: {e}",
                        m.host_ip
                    )))
                }
            }
        }
        (None, _) => {
            let mut found = None;
            for _ in 0..64 {
                let p = probe_port(m.host_ip, 0, m.protocol).map_err(|e| {
                    NetError::Other(format!(
                        "cannot find a free host port on {}: {e}",
                        m.host_ip
                    ))
                })?;
                if taken(p)?.is_none() {
                    found = Some(p);
                    break;
                }
            }
            found.ok_or_else(|| {
                NetError::PortInUse(format!(
                    "no free host port for {}/{proto}; give one explicitly with -p HOST:{}",
                    m.container_port, m.container_port
                ))
            })?
        }
    };
    let row = PortRow {
        host_ip: m.host_ip,
        host_port,
        proto: proto.to_string(),
        container_id: container_id.to_string(),
        container_port: m.container_port,
        container_ip,
        active: port_group.is_empty() || active,
        port_group,
    };
    state::insert_port(db, &row)?;
    Ok(row)
}

/// Whether fixed host port `m` is held, and only by other containers of `group` on the same
/// host address (then it is shared instead of refused).
fn shareable(db: &Connection, m: &PortMapping, container_id: &str, group: &str) -> Result<bool> {
    let Some(port) = m.host_port else {
        return Ok(false);
    };
    if group.is_empty() {
        return Ok(false);
    }
    let holders: Vec<PortRow> = state::ports_on(db, port, m.protocol.as_str())?
        .into_iter()
        .filter(|r| ports::overlaps(r.host_ip, m.host_ip))
        .collect();
    Ok(!holders.is_empty()
        && holders.iter().all(|r| {
            r.port_group == group && r.host_ip == m.host_ip && r.container_id != container_id
        }))
}

pub(crate) fn rule_of(p: &PortRow) -> PortRule {
    PortRule {
        host_ip: p.host_ip,
        host_port: p.host_port,
        proto: Proto::parse(&p.proto).unwrap_or(Proto::Tcp),
        ctr_ip: p.container_ip,
        ctr_port: p.container_port,
    }
}
