//! berth-net's tables (component `net`) and typed access to them.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use berth_store::rusqlite::{self, params, Connection, OptionalExtension, Row};
use berth_store::Store;
use ipnet::Ipv4Net;

use crate::Result;

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS net_networks (
    name TEXT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    driver TEXT NOT NULL,
    bridge TEXT NOT NULL UNIQUE,
    subnet TEXT NOT NULL,
    gateway TEXT NOT NULL,
    internal INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL,
    next_ip INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS net_sandboxes (
    container_id TEXT PRIMARY KEY,
    container_name TEXT NOT NULL,
    mode TEXT NOT NULL,
    netns TEXT,
    owns_netns INTEGER NOT NULL,
    dir TEXT NOT NULL,
    hostname TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS net_endpoints (
    container_id TEXT NOT NULL,
    network TEXT NOT NULL,
    container_name TEXT NOT NULL,
    ip TEXT NOT NULL,
    mac TEXT NOT NULL,
    aliases TEXT NOT NULL,
    veth TEXT NOT NULL,
    ifname TEXT NOT NULL,
    PRIMARY KEY (container_id, network),
    UNIQUE (network, ip)
);
CREATE TABLE IF NOT EXISTS net_ports (
    host_ip TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    proto TEXT NOT NULL,
    container_id TEXT NOT NULL,
    container_port INTEGER NOT NULL,
    container_ip TEXT NOT NULL,
    PRIMARY KEY (host_ip, host_port, proto)
);",
    "CREATE TABLE IF NOT EXISTS net_labels (
    network TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (network, key)
);",
    // A fixed host port may be shared by the containers of one port group (the replicas of a
    // compose service): one row per container, with the group and whether it takes traffic.
    "CREATE TABLE net_ports_v2 (
    host_ip TEXT NOT NULL,
    host_port INTEGER NOT NULL,
    proto TEXT NOT NULL,
    container_id TEXT NOT NULL,
    container_port INTEGER NOT NULL,
    container_ip TEXT NOT NULL,
    port_group TEXT NOT NULL DEFAULT '',
    active INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (host_ip, host_port, proto, container_id)
);
INSERT INTO net_ports_v2 (host_ip, host_port, proto, container_id, container_port, container_ip)
    SELECT host_ip, host_port, proto, container_id, container_port, container_ip FROM net_ports;
DROP TABLE net_ports;
ALTER TABLE net_ports_v2 RENAME TO net_ports;",
];

/// Create or upgrade the network tables (component `net`).
///
/// # Errors
/// The store's migration error.
pub fn migrate(store: &Store) -> Result<()> {
    store.migrate("net", MIGRATIONS)?;
    Ok(())
}

/// Run `f` in a `BEGIN IMMEDIATE` transaction: the write lock is taken up front, so two berth
/// processes allocating addresses or ports serialise instead of failing on lock upgrade.
pub fn immediate<T>(db: &Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    db.execute_batch("BEGIN IMMEDIATE")?;
    match f(db) {
        Ok(v) => match db.execute_batch("COMMIT") {
            Ok(()) => Ok(v),
            Err(e) => {
                let _ = db.execute_batch("ROLLBACK");
                Err(e.into())
            }
        },
        Err(e) => {
            let _ = db.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
/// A network row (`net_networks`).
pub struct Network {
    /// Name (unique; the default network is `berth`, alias `bridge`).
    pub name: String,
    /// Id: 64 hex characters.
    pub id: String,
    /// Driver (`bridge`).
    pub driver: String,
    /// Bridge device on the host.
    pub bridge: String,
    /// IPv4 subnet.
    pub subnet: Ipv4Net,
    /// Address of the bridge, the containers' default gateway.
    pub gateway: Ipv4Addr,
    /// No route out of the network.
    pub internal: bool,
    /// Creation time, Unix seconds.
    pub created: i64,
}

impl Network {
    /// True for the default network (`berth`, alias `bridge`).
    pub fn is_default(&self) -> bool {
        self.name == crate::DEFAULT_NETWORK
    }
}

fn parse_col<T: std::str::FromStr>(r: &Row, i: usize) -> rusqlite::Result<T> {
    let s: String = r.get(i)?;
    s.parse().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("bad value {s:?}").into(),
        )
    })
}

const NET_COLS: &str = "name, id, driver, bridge, subnet, gateway, internal, created";

fn net_row(r: &Row) -> rusqlite::Result<Network> {
    Ok(Network {
        name: r.get(0)?,
        id: r.get(1)?,
        driver: r.get(2)?,
        bridge: r.get(3)?,
        subnet: parse_col(r, 4)?,
        gateway: parse_col(r, 5)?,
        internal: r.get::<_, i64>(6)? != 0,
        created: r.get(7)?,
    })
}

/// A container's new name in its sandbox and endpoint rows (DNS answers the new name).
pub fn rename_container(db: &Connection, id: &str, name: &str) -> Result<()> {
    db.execute(
        "UPDATE net_sandboxes SET container_name = ?1 WHERE container_id = ?2",
        [name, id],
    )?;
    db.execute(
        "UPDATE net_endpoints SET container_name = ?1 WHERE container_id = ?2",
        [name, id],
    )?;
    Ok(())
}

/// The network named `name` or with id `name`, if any.
///
/// # Errors
/// A database error.
pub fn get_network(db: &Connection, name: &str) -> Result<Option<Network>> {
    Ok(db
        .query_row(
            &format!("SELECT {NET_COLS} FROM net_networks WHERE name = ?1 OR id = ?1"),
            [name],
            net_row,
        )
        .optional()?)
}

/// A network by full id, exact name or unique id prefix (Docker's precedence, see
/// [`berth_store::lookup`]); [`crate::NetError::Ambiguous`] when the word is a prefix of
/// several ids.
pub fn find_network(db: &Connection, name: &str) -> Result<Option<Network>> {
    use berth_store::lookup::{pick, Candidate, LookupError, ID_OR_NAME_OR_PREFIX};
    let mut st = db.prepare(&format!(
        "SELECT {NET_COLS} FROM net_networks WHERE {ID_OR_NAME_OR_PREFIX}"
    ))?;
    let rows: Vec<Network> = st
        .query_map([name], net_row)?
        .collect::<rusqlite::Result<_>>()?;
    let candidates: Vec<Candidate<'_>> = rows
        .iter()
        .map(|n| Candidate {
            id: &n.id,
            id_hex: &n.id,
            names: vec![n.name.as_str()],
        })
        .collect();
    match pick(name, &candidates) {
        Ok(i) => Ok(rows.into_iter().nth(i)),
        Err(LookupError::NotFound(_)) => Ok(None),
        Err(e) => Err(crate::NetError::Ambiguous(e)),
    }
}

/// Every network, by name.
///
/// # Errors
/// A database error.
pub fn list_networks(db: &Connection) -> Result<Vec<Network>> {
    let mut st = db.prepare(&format!(
        "SELECT {NET_COLS} FROM net_networks ORDER BY created, name"
    ))?;
    let v = st
        .query_map([], net_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// Insert a network row.
///
/// # Errors
/// A database error (a name or id taken: constraint violation).
pub fn insert_network(db: &Connection, n: &Network) -> Result<()> {
    db.execute(
        "INSERT INTO net_networks(name, id, driver, bridge, subnet, gateway, internal, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            n.name,
            n.id,
            n.driver,
            n.bridge,
            n.subnet.to_string(),
            n.gateway.to_string(),
            n.internal as i64,
            n.created
        ],
    )?;
    Ok(())
}

/// Delete the network named `name` and its labels.
///
/// # Errors
/// A database error.
pub fn delete_network(db: &Connection, name: &str) -> Result<()> {
    db.execute("DELETE FROM net_networks WHERE name = ?1", [name])?;
    db.execute("DELETE FROM net_labels WHERE network = ?1", [name])?;
    Ok(())
}

/// Record the labels of network `name` (in the transaction that inserts its row).
pub fn insert_labels(
    db: &Connection,
    name: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    for (k, v) in labels {
        db.execute(
            "INSERT OR REPLACE INTO net_labels(network, key, value) VALUES (?1, ?2, ?3)",
            params![name, k, v],
        )?;
    }
    Ok(())
}

/// The labels of network `name` (`com.docker.compose.network=…`, user labels).
pub fn labels_of(
    db: &Connection,
    name: &str,
) -> Result<std::collections::BTreeMap<String, String>> {
    let mut st = db.prepare("SELECT key, value FROM net_labels WHERE network = ?1")?;
    let rows = st.query_map([name], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The next address (as a `u32`) to try when allocating on network `network` (addresses are handed
/// out round-robin).
///
/// # Errors
/// A database error; no row for a missing network.
pub fn next_ip(db: &Connection, network: &str) -> Result<u32> {
    Ok(db.query_row(
        "SELECT next_ip FROM net_networks WHERE name = ?1",
        [network],
        |r| r.get::<_, u32>(0),
    )?)
}

/// Remember where the next allocation on `network` starts.
///
/// # Errors
/// A database error.
pub fn set_next_ip(db: &Connection, network: &str, v: u32) -> Result<()> {
    db.execute(
        "UPDATE net_networks SET next_ip = ?2 WHERE name = ?1",
        params![network, v as i64],
    )?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
/// A container's network sandbox row (`net_sandboxes`): its namespace and files.
pub struct Sandbox {
    /// Full container id.
    pub container_id: String,
    /// Container name.
    pub container_name: String,
    /// `none`, `host`, `container` or `networks`.
    pub mode: String,
    /// Pinned network namespace (`None` for the host's).
    pub netns: Option<PathBuf>,
    /// Whether berth created the namespace (and removes it at teardown).
    pub owns_netns: bool,
    /// Directory holding the container's hosts, resolv.conf and hostname files.
    pub dir: PathBuf,
    /// Hostname inside the container.
    pub hostname: String,
}

fn sb_row(r: &Row) -> rusqlite::Result<Sandbox> {
    Ok(Sandbox {
        container_id: r.get(0)?,
        container_name: r.get(1)?,
        mode: r.get(2)?,
        netns: r.get::<_, Option<String>>(3)?.map(PathBuf::from),
        owns_netns: r.get::<_, i64>(4)? != 0,
        dir: PathBuf::from(r.get::<_, String>(5)?),
        hostname: r.get(6)?,
    })
}

const SB_COLS: &str = "container_id, container_name, mode, netns, owns_netns, dir, hostname";

/// The sandbox of container `id` (full id), if any.
///
/// # Errors
/// A database error.
pub fn get_sandbox(db: &Connection, id: &str) -> Result<Option<Sandbox>> {
    Ok(db
        .query_row(
            &format!("SELECT {SB_COLS} FROM net_sandboxes WHERE container_id = ?1"),
            [id],
            sb_row,
        )
        .optional()?)
}

/// A sandbox by container id, container name or unique id prefix.
pub fn find_sandbox(db: &Connection, what: &str) -> Result<Option<Sandbox>> {
    let mut st = db.prepare(&format!(
        "SELECT {SB_COLS} FROM net_sandboxes WHERE container_id = ?1 OR container_name = ?1
         OR container_id LIKE ?1 || '%'"
    ))?;
    let v: Vec<Sandbox> = st
        .query_map([what], sb_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v.iter()
        .find(|s| s.container_id == what || s.container_name == what)
        .cloned()
        .or_else(|| {
            if v.len() == 1 {
                v.into_iter().next()
            } else {
                None
            }
        }))
}

/// Every sandbox.
///
/// # Errors
/// A database error.
pub fn list_sandboxes(db: &Connection) -> Result<Vec<Sandbox>> {
    let mut st = db.prepare(&format!("SELECT {SB_COLS} FROM net_sandboxes"))?;
    let v = st.query_map([], sb_row)?.collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// Insert (or replace) a sandbox row.
///
/// # Errors
/// A database error.
pub fn insert_sandbox(db: &Connection, s: &Sandbox) -> Result<()> {
    db.execute(
        "INSERT INTO net_sandboxes(container_id, container_name, mode, netns, owns_netns, dir, hostname)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            s.container_id,
            s.container_name,
            s.mode,
            s.netns.as_ref().map(|p| p.to_string_lossy().into_owned()),
            s.owns_netns as i64,
            s.dir.to_string_lossy(),
            s.hostname
        ],
    )?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
/// A container's endpoint on one network (`net_endpoints`).
pub struct Endpoint {
    /// Full container id.
    pub container_id: String,
    /// Network name.
    pub network: String,
    /// Container name (a DNS name on the network).
    pub container_name: String,
    /// The container's address on the network.
    pub ip: Ipv4Addr,
    /// MAC address of the container's interface (`aa:bb:cc:dd:ee:ff`; `02:42:` and the address
    /// unless `--mac-address`).
    pub mac: String,
    /// Extra DNS names (`--network-alias`).
    pub aliases: Vec<String>,
    /// Host side of the veth pair.
    pub veth: String,
    /// Interface name inside the container.
    pub ifname: String,
}

const EP_COLS: &str = "container_id, network, container_name, ip, mac, aliases, veth, ifname";

fn ep_row(r: &Row) -> rusqlite::Result<Endpoint> {
    let aliases: String = r.get(5)?;
    Ok(Endpoint {
        container_id: r.get(0)?,
        network: r.get(1)?,
        container_name: r.get(2)?,
        ip: parse_col(r, 3)?,
        mac: r.get(4)?,
        aliases: serde_json::from_str(&aliases).unwrap_or_default(),
        veth: r.get(6)?,
        ifname: r.get(7)?,
    })
}

/// Endpoints of container `id`, by network.
///
/// # Errors
/// A database error.
pub fn endpoints_of_container(db: &Connection, id: &str) -> Result<Vec<Endpoint>> {
    let mut st = db.prepare(&format!(
        "SELECT {EP_COLS} FROM net_endpoints WHERE container_id = ?1 ORDER BY ifname"
    ))?;
    let v = st
        .query_map([id], ep_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// Every endpoint of every container, in one query (for container lists).
///
/// # Errors
/// A database error.
pub fn all_endpoints(db: &Connection) -> Result<Vec<Endpoint>> {
    let mut st = db.prepare(&format!(
        "SELECT {EP_COLS} FROM net_endpoints ORDER BY container_id, ifname"
    ))?;
    let v = st.query_map([], ep_row)?.collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// Endpoints on network `network`.
///
/// # Errors
/// A database error.
pub fn endpoints_of_network(db: &Connection, network: &str) -> Result<Vec<Endpoint>> {
    let mut st = db.prepare(&format!(
        "SELECT {EP_COLS} FROM net_endpoints WHERE network = ?1 ORDER BY container_name"
    ))?;
    let v = st
        .query_map([network], ep_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// Addresses taken on network `network`.
///
/// # Errors
/// A database error.
pub fn used_ips(db: &Connection, network: &str) -> Result<Vec<Ipv4Addr>> {
    let mut st = db.prepare("SELECT ip FROM net_endpoints WHERE network = ?1")?;
    let v = st
        .query_map([network], |r| parse_col::<Ipv4Addr>(r, 0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

/// Insert an endpoint row.
///
/// # Errors
/// A database error (the address taken: constraint violation).
pub fn insert_endpoint(db: &Connection, e: &Endpoint) -> Result<()> {
    db.execute(
        "INSERT INTO net_endpoints(container_id, network, container_name, ip, mac, aliases, veth, ifname)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            e.container_id,
            e.network,
            e.container_name,
            e.ip.to_string(),
            e.mac,
            serde_json::to_string(&e.aliases).unwrap_or_else(|_| "[]".into()),
            e.veth,
            e.ifname
        ],
    )?;
    Ok(())
}

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

/// Forget container `container_id`'s endpoint on `network`.
pub fn delete_endpoint(db: &Connection, container_id: &str, network: &str) -> Result<()> {
    db.execute(
        "DELETE FROM net_endpoints WHERE container_id = ?1 AND network = ?2",
        [container_id, network],
    )?;
    Ok(())
}

/// Forget the ports container `container_id` published to its address `ip`.
pub fn delete_ports_of_address(db: &Connection, container_id: &str, ip: Ipv4Addr) -> Result<()> {
    db.execute(
        "DELETE FROM net_ports WHERE container_id = ?1 AND container_ip = ?2",
        [container_id, ip.to_string().as_str()],
    )?;
    Ok(())
}

/// Forget everything about container `id` (sandbox, endpoints, ports).
///
/// # Errors
/// A database error.
pub fn delete_container(db: &Connection, id: &str) -> Result<()> {
    db.execute("DELETE FROM net_ports WHERE container_id = ?1", [id])?;
    db.execute("DELETE FROM net_endpoints WHERE container_id = ?1", [id])?;
    db.execute("DELETE FROM net_sandboxes WHERE container_id = ?1", [id])?;
    Ok(())
}

/// Every container id any table still mentions.
pub fn all_container_ids(db: &Connection) -> Result<Vec<String>> {
    let mut st = db.prepare(
        "SELECT container_id FROM net_sandboxes UNION SELECT container_id FROM net_endpoints
         UNION SELECT container_id FROM net_ports",
    )?;
    let v = st
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str, id: &str, third: u8) -> Network {
        Network {
            name: name.into(),
            id: id.into(),
            driver: "bridge".into(),
            bridge: format!("br-{name}"),
            subnet: format!("10.250.{third}.0/24").parse().unwrap(),
            gateway: Ipv4Addr::new(10, 250, third, 1),
            internal: false,
            created: 0,
        }
    }

    /// Networks resolve as containers and images do: full id, then name, then a unique id
    /// prefix; an ambiguous prefix says so instead of "not found".
    #[test]
    fn networks_resolve_by_id_name_and_unique_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        migrate(&store).unwrap();
        let db = store.db();
        insert_network(db, &net("front", "1a2b", 1)).unwrap();
        insert_network(db, &net("back", "1a3c", 2)).unwrap();
        insert_network(db, &net("1a", "ffff", 3)).unwrap();
        let find = |w: &str| find_network(db, w).map(|n| n.map(|n| n.name));
        assert_eq!(find("1a2b").unwrap().as_deref(), Some("front"));
        assert_eq!(find("back").unwrap().as_deref(), Some("back"));
        assert_eq!(find("1a3").unwrap().as_deref(), Some("back"));
        // A name beats an id prefix.
        assert_eq!(find("1a").unwrap().as_deref(), Some("1a"));
        assert_eq!(find("f").unwrap().as_deref(), Some("1a"));
        assert_eq!(find("zz").unwrap(), None);
        let e = find("1").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("multiple IDs found with provided prefix: 1"),
            "{e}"
        );
    }
}
