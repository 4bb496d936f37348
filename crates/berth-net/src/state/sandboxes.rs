//! The `net_sandboxes` table: one row per container with its network mode, namespace and
//! per-container files directory.

use std::path::PathBuf;

use berth_store::rusqlite::{self, params, Connection, OptionalExtension, Row};

use crate::Result;

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
