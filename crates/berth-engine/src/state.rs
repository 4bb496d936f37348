//! The `containers` table and the container record.
//!
//! This module owns the table: every statement against `containers` is here, and state
//! changes go through named transitions ([`mark_running`], [`mark_exited`], [`request_stop`],
//! …) so a reader sees each lifecycle step and what it records.

use std::collections::HashSet;

use berth_store::rusqlite::{self, params, OptionalExtension, Row};
use berth_store::{Digest, Store};

use crate::config::ContainerConfig;
use crate::{EngineError, Result};

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS containers (
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
)",
    // The container's cgroup path (OCI `cgroupsPath`), decided once at create so every later
    // command (a monitor's OOM check, reconcile, removal) uses the same one.
    "ALTER TABLE containers ADD COLUMN cgroup_path TEXT",
];

/// Create the engine's tables if needed.
///
/// Errors: [`EngineError::Db`] when a migration fails.
pub fn migrate(store: &Store) -> Result<()> {
    store.migrate("engine", MIGRATIONS)?;
    Ok(())
}

/// Lifecycle state, as Docker names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Created (bundle and row exist) and never started, or reset after a failed start.
    Created,
    /// The init process is running under its monitor.
    Running,
    /// The init exited and the restart policy will start it again after a back-off.
    Restarting,
    /// The init exited (or never started: `exit_code` and `error` say why).
    Exited,
    /// `rm` is tearing the container down.
    Removing,
}

impl State {
    /// The lowercase name stored in the `state` column and shown by `ps`/`inspect`
    /// (Docker's `State.Status`).
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
    /// The container id: 64 lowercase hex digits.
    pub id: String,
    /// The unique name, without Docker's leading `/`.
    pub name: String,
    /// The image's config digest (`sha256:…`), Docker's `Image`.
    pub image_id: Digest,
    /// The image reference as the user gave it (Docker's `Config.Image`).
    pub image_name: String,
    /// The configuration the container was created with (stored as JSON).
    pub config: ContainerConfig,
    /// The lifecycle state.
    pub state: State,
    /// Creation time, seconds since the Unix epoch (UTC).
    pub created: i64,
    /// Host pid of the container's init while running.
    pub pid: Option<i32>,
    /// Host pid of the container's monitor while one is in charge.
    pub monitor_pid: Option<i32>,
    /// The monitor's start time in clock ticks since boot (`/proc/PID/stat` field 22, see
    /// [`process_start_time`]), to tell it from a reused pid.
    pub monitor_start: Option<u64>,
    /// When the init last started: RFC 3339, UTC.
    pub started_at: Option<String>,
    /// When the init last exited: RFC 3339, UTC.
    pub finished_at: Option<String>,
    /// The last exit status: 0-255, 128+N for signal N; 125-127 when the start failed (as
    /// Docker).
    pub exit_code: Option<i32>,
    /// Whether the kernel's OOM killer ended the last run.
    pub oom_killed: bool,
    /// How many times the restart policy has restarted the container (Docker's `RestartCount`).
    pub restart_count: i64,
    /// Whether `stop` (or `kill`) was asked, so the restart policy must not restart it.
    pub stop_requested: bool,
    /// The network set up for the current or last run (interfaces, addresses, ports).
    pub net: Option<berth_net::NetSetup>,
    /// Why the last start or run failed (Docker's `State.Error`), if it did.
    pub error: Option<String>,
    /// The container's cgroup path relative to the cgroup mount (e.g. `/berth/<id>`), chosen
    /// at create time; `None` only for rows written before the column existed.
    pub cgroup_path: Option<String>,
}

impl Container {
    /// The cgroup path of this container: the one recorded at create, or (for older rows) the
    /// default under `BERTH_CGROUP_PARENT`.
    pub fn cgroup_path(&self) -> String {
        self.cgroup_path.clone().unwrap_or_else(|| {
            crate::paths::cgroup_path_for(&crate::paths::cgroup_parent(), &self.id)
        })
    }
}

const COLS: &str = "id, name, image_id, image_name, config, state, created, pid, monitor_pid, \
    monitor_start, started_at, finished_at, exit_code, oom_killed, restart_count, stop_requested, net, error, \
    cgroup_path";

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
        monitor_start: r
            .get::<_, Option<i64>>(9)?
            .and_then(|v| u64::try_from(v).ok()),
        started_at: r.get(10)?,
        finished_at: r.get(11)?,
        exit_code: r.get(12)?,
        oom_killed: r.get::<_, i64>(13)? != 0,
        restart_count: r.get(14)?,
        stop_requested: r.get::<_, i64>(15)? != 0,
        net: net.and_then(|n| serde_json::from_str(&n).ok()),
        error: r.get(17)?,
        cgroup_path: r.get(18)?,
    })
}

/// Add the row of a new container (state, creation time and cgroup path from `c`; run
/// fields start empty), creating the table if needed.
///
/// Errors: [`EngineError::NameInUse`] when another container has `c.name` (with its id);
/// [`EngineError::Db`] for other database failures.
pub fn insert(store: &Store, c: &Container) -> Result<()> {
    migrate(store)?;
    let cfg = serde_json::to_string(&c.config).map_err(|e| EngineError::Other(e.to_string()))?;
    let r = store.db().execute(
        "INSERT INTO containers (id, name, image_id, image_name, config, state, created, cgroup_path)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            c.id,
            c.name,
            c.image_id.as_str(),
            c.image_name,
            cfg,
            c.state.as_str(),
            c.created,
            c.cgroup_path,
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

/// Every container, newest first (as `docker ps -a` lists them).
///
/// Errors: [`EngineError::Db`] when the table cannot be read or a row does not decode.
pub fn all(store: &Store) -> Result<Vec<Container>> {
    migrate(store)?;
    let mut st = store.db().prepare(&format!(
        "SELECT {COLS} FROM containers ORDER BY created DESC, rowid DESC"
    ))?;
    let rows = st.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The container with full id `id` (64 hex digits; see [`lookup`] for names and
/// prefixes), or `None` when there is none.
///
/// Errors: [`EngineError::Db`] when the table cannot be read or the row does not decode.
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

fn set(store: &Store, id: &str, set: &str, values: &[&dyn rusqlite::ToSql]) -> Result<()> {
    migrate(store)?;
    let sql = format!(
        "UPDATE containers SET {set} WHERE id = ?{}",
        values.len() + 1
    );
    let mut v: Vec<&dyn rusqlite::ToSql> = values.to_vec();
    v.push(&id);
    store.db().execute(&sql, v.as_slice())?;
    Ok(())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

/// The monitor took charge: record its pid and start time (clock ticks since boot, see
/// [`process_start_time`]) for liveness checks.
///
/// Errors: [`EngineError::Db`] when the row cannot be written (a missing row is not an error).
pub fn set_monitor(store: &Store, id: &str, pid: i32, start: Option<u64>) -> Result<()> {
    let start = start.and_then(|s| i64::try_from(s).ok());
    set(
        store,
        id,
        "monitor_pid = ?1, monitor_start = ?2",
        &[&pid, &start],
    )
}

/// A start begins: record the network set up for it and clear the previous run's stop request
/// and error.
pub fn mark_starting(store: &Store, id: &str, net: &berth_net::NetSetup) -> Result<()> {
    let net_json = serde_json::to_string(net).map_err(|e| EngineError::Other(e.to_string()))?;
    set(
        store,
        id,
        "net = ?1, stop_requested = 0, error = NULL",
        &[&net_json],
    )
}

/// A start failed before the process ran (command not found …): the container is exited with
/// `code` (Docker's 126/127) and `msg` as its error.
pub fn mark_start_failed(store: &Store, id: &str, code: i32, msg: &str) -> Result<()> {
    set(
        store,
        id,
        "state = ?1, exit_code = ?2, error = ?3, finished_at = ?4",
        &[&State::Exited.as_str(), &code, &msg, &now()],
    )
}

/// The runtime started the container's init, host pid `pid`.
///
/// Errors: [`EngineError::Db`] when the row cannot be written (a missing row is not an error).
pub fn mark_running(store: &Store, id: &str, pid: i32) -> Result<()> {
    set(
        store,
        id,
        "state = ?1, pid = ?2, started_at = ?3, error = NULL, exit_code = NULL, oom_killed = 0",
        &[&State::Running.as_str(), &pid, &now()],
    )
}

/// The init exited with `code` (0-255, 128+signal) and the restart policy brings it back:
/// state `restarting`, restart count `restart_count`.
///
/// Errors: [`EngineError::Db`] when the row cannot be written (a missing row is not an error).
pub fn mark_restarting(
    store: &Store,
    id: &str,
    code: i32,
    oom: bool,
    restart_count: i64,
) -> Result<()> {
    set(
        store,
        id,
        "state = ?1, exit_code = ?2, finished_at = ?3, restart_count = ?4, pid = NULL, oom_killed = ?5",
        &[&State::Restarting.as_str(), &code, &now(), &restart_count, &i64::from(oom)],
    )
}

/// The container stopped for good (its monitor is finishing): exit `code` (125 if the start
/// failed, `error` then says why), `oom` if the kernel's OOM killer fired; the process and
/// monitor are forgotten.
pub fn mark_exited(
    store: &Store,
    id: &str,
    code: i32,
    oom: bool,
    error: Option<&str>,
) -> Result<()> {
    set(
        store,
        id,
        "state = ?1, exit_code = ?2, finished_at = ?3, oom_killed = ?4, pid = NULL, monitor_pid = NULL, monitor_start = NULL, error = ?5",
        &[&State::Exited.as_str(), &code, &now(), &i64::from(oom), &error],
    )
}

/// The container's monitor died unobserved (`kill -9`, reboot): exited, keeping an exit code
/// already recorded, else 137 (killed).
///
/// Errors: [`EngineError::Db`] when the row cannot be written (a missing row is not an error).
pub fn mark_exited_unobserved(store: &Store, id: &str) -> Result<()> {
    set(
        store,
        id,
        "state = ?1, exit_code = COALESCE(exit_code, 137), finished_at = ?2, pid = NULL, monitor_pid = NULL, monitor_start = NULL",
        &[&State::Exited.as_str(), &now()],
    )
}

/// A user asked the container to stop (`stop`, `rm -f`): the restart policy no longer applies.
///
/// Errors: [`EngineError::Db`] when the row cannot be written (a missing row is not an error).
pub fn request_stop(store: &Store, id: &str) -> Result<()> {
    set(store, id, "stop_requested = 1", &[])
}

/// Removal began (`rm`): other commands see `removing`.
///
/// Errors: [`EngineError::Db`] when the row cannot be written (a missing row is not an error).
pub fn mark_removing(store: &Store, id: &str) -> Result<()> {
    set(store, id, "state = ?1", &[&State::Removing.as_str()])
}

/// Give the container another name (`rename`). Errors: [`EngineError::NameInUse`].
pub fn rename(store: &Store, id: &str, name: &str) -> Result<()> {
    migrate(store)?;
    let r = store
        .db()
        .execute("UPDATE containers SET name = ?1 WHERE id = ?2", [name, id]);
    match r {
        Ok(0) => Err(EngineError::NotFound(id.to_string())),
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            let owner: Option<String> = store
                .db()
                .query_row("SELECT id FROM containers WHERE name = ?1", [name], |r| {
                    r.get(0)
                })
                .optional()?;
            Err(EngineError::NameInUse {
                name: name.to_string(),
                id: owner.unwrap_or_default(),
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Replace the stored configuration (`update`: new limits or restart policy). The monitor and
/// every later start read it from here.
///
/// Errors: [`EngineError::Db`] when the row cannot be written (a missing row is not an error).
pub fn set_config(store: &Store, id: &str, cfg: &ContainerConfig) -> Result<()> {
    let json = serde_json::to_string(cfg).map_err(|e| EngineError::Other(e.to_string()))?;
    set(store, id, "config = ?1", &[&json])
}

/// Record a container event (`create`, `start`, `die`, …) with its name and image, plus
/// `extra` attributes, in the event log (best effort).
pub fn event(store: &Store, c: &Container, action: &str, extra: &[(&str, &str)]) {
    let mut attrs: Vec<(&str, &str)> =
        vec![("name", c.name.as_str()), ("image", c.image_name.as_str())];
    for (k, v) in &c.config.labels {
        attrs.push((k.as_str(), v.as_str()));
    }
    attrs.extend_from_slice(extra);
    berth_events::record(store, "container", action, &c.id, &attrs);
}

/// Forget the container's row (its name becomes free).
///
/// Errors: [`EngineError::Db`] when the row cannot be deleted (a missing row is not an error).
pub fn delete(store: &Store, id: &str) -> Result<()> {
    migrate(store)?;
    store
        .db()
        .execute("DELETE FROM containers WHERE id = ?1", [id])?;
    Ok(())
}

/// Ids of images that some container (in any state) was created from.
///
/// Errors: [`EngineError::Db`] when the table cannot be read.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{row, store};

    #[test]
    fn insert_and_get_round_trip_with_the_cgroup_path() {
        let t = store();
        let c = row(&t.store, "rt", State::Created);
        let back = get(&t.store, &c.id).unwrap().unwrap();
        assert_eq!(back.name, "rt");
        assert_eq!(back.config, c.config);
        assert_eq!(back.cgroup_path(), format!("/berth-test/{}", c.id));
        assert_eq!(back.state, State::Created);
    }

    #[test]
    fn lookup_by_name_id_and_unique_prefix() {
        let t = store();
        let a = row(&t.store, "alpha", State::Created);
        let b = row(&t.store, "beta", State::Created);
        assert_eq!(lookup(&t.store, "alpha").unwrap().id, a.id);
        assert_eq!(lookup(&t.store, "/beta").unwrap().id, b.id);
        assert_eq!(lookup(&t.store, &a.id).unwrap().name, "alpha");
        // Both ids start with zeros: a short prefix is ambiguous, a long one is not.
        let e = lookup(&t.store, "0000").unwrap_err();
        assert!(matches!(e, EngineError::Ambiguous(_)), "{e}");
        assert_eq!(lookup(&t.store, &a.id[..60]).unwrap().id, a.id);
        assert!(matches!(
            lookup(&t.store, "nope"),
            Err(EngineError::NotFound(_))
        ));
    }

    #[test]
    fn running_then_exited_records_code_oom_and_forgets_processes() {
        let t = store();
        let c = row(&t.store, "x", State::Created);
        set_monitor(&t.store, &c.id, 77, Some(123)).unwrap();
        mark_running(&t.store, &c.id, 99).unwrap();
        let r = get(&t.store, &c.id).unwrap().unwrap();
        assert_eq!(
            (r.state, r.pid, r.monitor_pid, r.monitor_start),
            (State::Running, Some(99), Some(77), Some(123))
        );
        assert!(r.started_at.is_some());
        mark_exited(&t.store, &c.id, 137, true, None).unwrap();
        let r = get(&t.store, &c.id).unwrap().unwrap();
        assert_eq!(r.state, State::Exited);
        assert_eq!(r.exit_code, Some(137));
        assert!(r.oom_killed);
        assert_eq!((r.pid, r.monitor_pid, r.monitor_start), (None, None, None));
        assert!(r.finished_at.is_some());
    }

    #[test]
    fn restarting_counts_and_keeps_the_monitor() {
        let t = store();
        let c = row(&t.store, "rs", State::Running);
        set_monitor(&t.store, &c.id, 5, None).unwrap();
        mark_restarting(&t.store, &c.id, 3, false, 4).unwrap();
        let r = get(&t.store, &c.id).unwrap().unwrap();
        assert_eq!(
            (r.state, r.exit_code, r.restart_count),
            (State::Restarting, Some(3), 4)
        );
        assert_eq!((r.pid, r.monitor_pid), (None, Some(5)));
        assert!(r.state.is_active());
    }

    #[test]
    fn a_new_run_clears_the_previous_stop_request_error_and_oom() {
        let t = store();
        let c = row(&t.store, "again", State::Exited);
        request_stop(&t.store, &c.id).unwrap();
        mark_start_failed(&t.store, &c.id, 127, "not found").unwrap();
        let r = get(&t.store, &c.id).unwrap().unwrap();
        assert!(r.stop_requested);
        assert_eq!(
            (r.exit_code, r.error.as_deref()),
            (Some(127), Some("not found"))
        );
        mark_starting(&t.store, &c.id, &berth_net::NetSetup::default()).unwrap();
        mark_running(&t.store, &c.id, 1).unwrap();
        let r = get(&t.store, &c.id).unwrap().unwrap();
        assert!(!r.stop_requested);
        assert_eq!((r.exit_code, r.error), (None, None));
        assert!(r.net.is_some());
    }

    #[test]
    fn unobserved_exit_keeps_a_recorded_code_else_137() {
        let t = store();
        let a = row(&t.store, "a", State::Running);
        mark_exited_unobserved(&t.store, &a.id).unwrap();
        assert_eq!(get(&t.store, &a.id).unwrap().unwrap().exit_code, Some(137));
        let b = row(&t.store, "b", State::Restarting);
        mark_exited_unobserved(&t.store, &b.id).unwrap();
        let r = get(&t.store, &b.id).unwrap().unwrap();
        assert_eq!((r.state, r.exit_code), (State::Exited, Some(1)));
    }

    #[test]
    fn removing_then_delete_frees_the_name() {
        let t = store();
        let c = row(&t.store, "n", State::Exited);
        mark_removing(&t.store, &c.id).unwrap();
        assert_eq!(
            get(&t.store, &c.id).unwrap().unwrap().state,
            State::Removing
        );
        delete(&t.store, &c.id).unwrap();
        assert!(get(&t.store, &c.id).unwrap().is_none());
        row(&t.store, "n", State::Created);
    }

    #[test]
    fn images_in_use_by_any_container() {
        let t = store();
        assert!(image_ids_in_use(&t.store).unwrap().is_empty());
        row(&t.store, "u", State::Exited);
        let ids = image_ids_in_use(&t.store).unwrap();
        assert!(ids.contains(&crate::testutil::image_id()));
    }

    #[test]
    fn rows_from_before_the_cgroup_column_fall_back_to_the_default_parent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // The schema as version 1 left it, with one row.
        store.migrate("engine", &MIGRATIONS[..1]).unwrap();
        store
            .db()
            .execute(
                "INSERT INTO containers (id, name, image_id, image_name, config, state, created)
                 VALUES ('abc', 'old', ?1, 'img', ?2, 'exited', 1)",
                params![
                    crate::testutil::image_id().as_str(),
                    serde_json::to_string(&crate::testutil::config()).unwrap()
                ],
            )
            .unwrap();
        // A fresh connection runs the remaining steps.
        let store = Store::open(dir.path()).unwrap();
        let c = get(&store, "abc").unwrap().unwrap();
        assert_eq!(c.cgroup_path, None);
        assert!(c.cgroup_path().ends_with("/abc"));
    }

    #[test]
    fn liveness_uses_pid_and_start_time() {
        let me = i32::try_from(std::process::id()).unwrap();
        let start = process_start_time(me);
        assert!(start.is_some());
        let t = store();
        let mut c = row(&t.store, "l", State::Running);
        c.monitor_pid = Some(me);
        c.monitor_start = start;
        assert!(monitor_alive(&c));
        // Same pid, another start time: a recycled pid.
        c.monitor_start = start.map(|s| s + 1);
        assert!(!monitor_alive(&c));
        c.monitor_pid = Some(crate::testutil::DEAD_PID);
        c.monitor_start = None;
        assert!(!monitor_alive(&c));
        assert_eq!(process_start_time(crate::testutil::DEAD_PID), None);
    }
}
