//! The `net_ports` table: published ports (host address, port and protocol to a container's
//! address), shared bindings and whether each is active.

use std::net::Ipv4Addr;

use berth_store::rusqlite::{self, params, Connection, Row};

use super::parse_col;
use crate::Result;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
/// A published port row (`net_ports`).
pub struct PortRow {
    /// Host address (`0.0.0.0`: all).
    pub host_ip: Ipv4Addr,
    /// Host port.
    pub host_port: u16,
    /// `tcp` or `udp`.
    pub proto: String,
    /// Full id of the container publishing it.
    pub container_id: String,
    /// Container port.
    pub container_port: u16,
    /// Container address the port forwards to.
    pub container_ip: Ipv4Addr,
    /// The port group sharing this fixed host port (empty: the container holds it alone).
    pub port_group: String,
    /// Whether a shared port sends connections to this container (always true unshared).
    pub active: bool,
}

impl PortRow {
    /// Whether the host port is shared with the other containers of its port group.
    pub fn shared(&self) -> bool {
        !self.port_group.is_empty()
    }
}

fn port_row(r: &Row) -> rusqlite::Result<PortRow> {
    Ok(PortRow {
        host_ip: parse_col(r, 0)?,
        host_port: r.get::<_, u16>(1)?,
        proto: r.get(2)?,
        container_id: r.get(3)?,
        container_port: r.get::<_, u16>(4)?,
        container_ip: parse_col(r, 5)?,
        port_group: r.get(6)?,
        active: r.get::<_, i64>(7)? != 0,
    })
}

const PORT_COLS: &str =
    "host_ip, host_port, proto, container_id, container_port, container_ip, port_group, active";

/// Ports container `id` publishes.
///
/// # Errors
/// A database error.
pub fn ports_of_container(db: &Connection, id: &str) -> Result<Vec<PortRow>> {
    let mut st = db.prepare(&format!(
        "SELECT {PORT_COLS} FROM net_ports WHERE container_id = ?1 ORDER BY container_port, proto"
    ))?;
    let v = st
        .query_map([id], port_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// Bindings of `port/proto` on any host address.
pub fn ports_on(db: &Connection, port: u16, proto: &str) -> Result<Vec<PortRow>> {
    let mut st = db.prepare(&format!(
        "SELECT {PORT_COLS} FROM net_ports WHERE host_port = ?1 AND proto = ?2"
    ))?;
    let v = st
        .query_map(params![port as i64, proto], port_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// Insert a port row.
///
/// # Errors
/// A database error (the binding taken: constraint violation).
pub fn insert_port(db: &Connection, p: &PortRow) -> Result<()> {
    db.execute(
        "INSERT INTO net_ports(host_ip, host_port, proto, container_id, container_port, container_ip, port_group, active)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            p.host_ip.to_string(),
            p.host_port as i64,
            p.proto,
            p.container_id,
            p.container_port as i64,
            p.container_ip.to_string(),
            p.port_group,
            i64::from(p.active)
        ],
    )?;
    Ok(())
}

/// Mark the shared ports of container `id` as taking connections (`active`) or not; returns
/// its shared rows.
pub fn set_ports_active(db: &Connection, id: &str, active: bool) -> Result<Vec<PortRow>> {
    db.execute(
        "UPDATE net_ports SET active = ?2 WHERE container_id = ?1 AND port_group != ''",
        params![id, i64::from(active)],
    )?;
    Ok(ports_of_container(db, id)?
        .into_iter()
        .filter(PortRow::shared)
        .collect())
}

/// The active rows sharing host port `ip:port/proto`, by container id.
pub fn shared_backends(
    db: &Connection,
    ip: Ipv4Addr,
    port: u16,
    proto: &str,
) -> Result<Vec<PortRow>> {
    let mut st = db.prepare(&format!(
        "SELECT {PORT_COLS} FROM net_ports WHERE host_ip = ?1 AND host_port = ?2 AND proto = ?3
         AND port_group != '' AND active != 0 ORDER BY container_id"
    ))?;
    let v = st
        .query_map(params![ip.to_string(), port as i64, proto], port_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// Forget the ports container `container_id` published to its address `ip`.
pub fn delete_ports_of_address(db: &Connection, container_id: &str, ip: Ipv4Addr) -> Result<()> {
    db.execute(
        "DELETE FROM net_ports WHERE container_id = ?1 AND container_ip = ?2",
        [container_id, ip.to_string().as_str()],
    )?;
    Ok(())
}
