//! The `containers` table and the container record.

use std::collections::HashSet;

use berth_store::rusqlite::{self, params, OptionalExtension, Row};
use berth_store::{Digest, Store};

use crate::config::ContainerConfig;
use crate::{EngineError, Result};

const MIGRATIONS: &[&str] = &["CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image_id TEXT NOT NULL,
    image_name TEXT NOT NULL,
    config TEXT NOT NULL,
    state TEXT NOT NULL,
    created INTEGER NOT NULL,
    pid INTEGER,
    monitor_pid INTEGER,
    monitor_start INTEGER,
    started_at TEXT,
    finished_at TEXT,
    exit_code INTEGER,
    oom_killed INTEGER NOT NULL DEFAULT 0,
    restart_count INTEGER NOT NULL DEFAULT 0,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    net TEXT,
    error TEXT
)"];

/// Create the engine's tables if needed.
pub fn migrate(store: &Store) -> Result<()> {
    store.migrate("engine", MIGRATIONS)?;
    Ok(())
}

/// Lifecycle state, as Docker names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Created,
    Running,
    Restarting,
    Exited,
    Removing,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Created => "created",
            State::Running => "running",
            State::Restarting => "restarting",
            State::Exited => "exited",
            State::Removing => "removing",
        }
    }

    fn parse(s: &str) -> State {
        match s {
            "running" => State::Running,
            "restarting" => State::Restarting,
            "exited" => State::Exited,
            "removing" => State::Removing,
            _ => State::Created,
        }
    }

    /// Whether a monitor should be alive for this state.
    pub fn is_active(self) -> bool {
        matches!(self, State::Running | State::Restarting)
    }
}

/// One row of the containers table.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image_id: Digest,
    pub image_name: String,
    pub config: ContainerConfig,
    pub state: State,
    pub created: i64,
    pub pid: Option<i32>,
    pub monitor_pid: Option<i32>,
    pub monitor_start: Option<u64>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: Option<i32>,
    pub oom_killed: bool,
    pub restart_count: i64,
    pub stop_requested: bool,
    pub net: Option<berth_net::NetSetup>,
    pub error: Option<String>,
}

const COLS: &str = "id, name, image_id, image_name, config, state, created, pid, monitor_pid, \
    monitor_start, started_at, finished_at, exit_code, oom_killed, restart_count, stop_requested, net, error";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Container> {
    let cfg: String = r.get(4)?;
    let net: Option<String> = r.get(16)?;
    let image_id: String = r.get(2)?;
    Ok(Container {
        id: r.get(0)?,
        name: r.get(1)?,
        image_id: Digest::parse(&image_id).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
        })?,
        image_name: r.get(3)?,
        config: serde_json::from_str(&cfg).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(4, rusqlite::types::Type::Text, Box::new(e))
        })?,
        state: State::parse(&r.get::<_, String>(5)?),
        created: r.get(6)?,
        pid: r.get(7)?,
        monitor_pid: r.get(8)?,
        monitor_start: r.get::<_, Option<i64>>(9)?.map(|v| v as u64),
        started_at: r.get(10)?,
        finished_at: r.get(11)?,
        exit_code: r.get(12)?,
        oom_killed: r.get::<_, i64>(13)? != 0,
        restart_count: r.get(14)?,
        stop_requested: r.get::<_, i64>(15)? != 0,
        net: net.and_then(|n| serde_json::from_str(&n).ok()),
        error: r.get(17)?,
    })
}

pub fn insert(store: &Store, c: &Container) -> Result<()> {
    migrate(store)?;
    let cfg = serde_json::to_string(&c.config).map_err(|e| EngineError::Other(e.to_string()))?;
    let r = store.db().execute(
        "INSERT INTO containers (id, name, image_id, image_name, config, state, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            c.id,
            c.name,
            c.image_id.as_str(),
            c.image_name,
            cfg,
            c.state.as_str(),
            c.created
        ],
    );
    match r {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            let owner: Option<String> = store
                .db()
                .query_row(
                    "SELECT id FROM containers WHERE name = ?1",
                    [&c.name],
                    |r| r.get(0),
                )
                .optional()?;
            Err(EngineError::NameInUse {
                name: c.name.clone(),
                id: owner.unwrap_or_default(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

pub fn all(store: &Store) -> Result<Vec<Container>> {
    migrate(store)?;
    let mut st = store.db().prepare(&format!(
        "SELECT {COLS} FROM containers ORDER BY created DESC, rowid DESC"
    ))?;
    let rows = st.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn get(store: &Store, id: &str) -> Result<Option<Container>> {
    migrate(store)?;
    Ok(store
        .db()
        .query_row(
            &format!("SELECT {COLS} FROM containers WHERE id = ?1"),
            [id],
            from_row,
        )
        .optional()?)
}

/// Find by full id, exact name, or unique id prefix (Docker's precedence, see
/// [`berth_store::lookup`]); an ambiguous prefix is [`EngineError::Ambiguous`].
pub fn lookup(store: &Store, name_or_id: &str) -> Result<Container> {
    use berth_store::lookup::{pick, Candidate, LookupError, ID_OR_NAME_OR_PREFIX};
    migrate(store)?;
    let key = name_or_id.trim_start_matches('/');
    let mut st = store.db().prepare(&format!(
        "SELECT id, name FROM containers WHERE {ID_OR_NAME_OR_PREFIX}"
    ))?;
    let rows: Vec<(String, String)> = st
        .query_map([key], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let candidates: Vec<Candidate<'_>> = rows
        .iter()
        .map(|(id, name)| Candidate {
            id,
            id_hex: id,
            names: vec![name.as_str()],
        })
        .collect();
    match pick(key, &candidates) {
        Ok(i) => get(store, &rows[i].0)?.ok_or_else(|| EngineError::NotFound(name_or_id.into())),
        Err(LookupError::NotFound(_)) => Err(EngineError::NotFound(name_or_id.to_string())),
        Err(e @ LookupError::Ambiguous { .. }) => Err(EngineError::Ambiguous(e)),
    }
}

/// Apply a partial update with a closure-built SQL fragment.
pub fn update(store: &Store, id: &str, set: &str, values: &[&dyn rusqlite::ToSql]) -> Result<()> {
    let sql = format!(
        "UPDATE containers SET {set} WHERE id = ?{}",
        values.len() + 1
    );
    let mut v: Vec<&dyn rusqlite::ToSql> = values.to_vec();
    v.push(&id);
    store.db().execute(&sql, v.as_slice())?;
    Ok(())
}

pub fn delete(store: &Store, id: &str) -> Result<()> {
    store
        .db()
        .execute("DELETE FROM containers WHERE id = ?1", [id])?;
    Ok(())
}

/// Ids of images that some container (in any state) was created from.
pub fn image_ids_in_use(store: &Store) -> Result<HashSet<Digest>> {
    migrate(store)?;
    let mut st = store
        .db()
        .prepare("SELECT DISTINCT image_id FROM containers")?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = HashSet::new();
    for r in rows {
        if let Ok(d) = Digest::parse(&r?) {
            out.insert(d);
        }
    }
    Ok(out)
}

/// Names like Docker's: `adjective_scientist`.
pub fn random_name() -> String {
    const A: &[&str] = &[
        "brave", "calm", "clever", "eager", "fervent", "gentle", "happy", "jolly", "keen", "lucid",
        "merry", "nifty", "quirky", "serene", "sharp", "tender", "upbeat", "vivid", "wise",
        "zealous", "bold", "cool", "dazzling", "elated", "festive", "gallant",
    ];
    const B: &[&str] = &[
        "albattani",
        "babbage",
        "curie",
        "darwin",
        "euler",
        "fermat",
        "galileo",
        "hopper",
        "hypatia",
        "kepler",
        "lovelace",
        "meitner",
        "newton",
        "noether",
        "pascal",
        "ramanujan",
        "shannon",
        "tesla",
        "turing",
        "volta",
        "wright",
        "yalow",
        "zuse",
        "knuth",
        "ritchie",
        "thompson",
    ];
    let a = A[rand::random::<usize>() % A.len()];
    let b = B[rand::random::<usize>() % B.len()];
    format!("{a}_{b}")
}

/// Start time of a live process in clock ticks since boot (field 22 of /proc/PID/stat);
/// `None` when it does not exist or is a zombie (dead, not yet reaped).
pub fn process_start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    let mut fields = after.split_whitespace();
    if matches!(fields.next(), Some("Z") | Some("X")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Whether the recorded monitor process is still the one we started.
pub fn monitor_alive(c: &Container) -> bool {
    match (c.monitor_pid, c.monitor_start) {
        (Some(pid), Some(start)) => process_start_time(pid) == Some(start),
        (Some(pid), None) => berth_store::pid_alive(pid),
        _ => false,
    }
}
