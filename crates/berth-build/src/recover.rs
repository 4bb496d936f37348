//! Build steps in progress: one table, `build_steps`, owned by this module.
//!
//! A step's directory under `tmp/` is recorded (with the pid and start time of the process
//! working in it) before anything is created in it, and the RUN container's id before the
//! container and its network exist; the row goes once the step released everything. When
//! that process dies (`kill -9` of `berth build`), the overlay mounts, the step's container,
//! its cgroups and its network sandbox outlive it: [`recover`] (run by every berth command
//! that finds such a directory, and at the start of every build) releases them.

use std::path::{Path, PathBuf};

use berth_store::rusqlite::params;
use berth_store::Store;

use crate::BuildError;

const MIGRATIONS: &[&str] = &["CREATE TABLE IF NOT EXISTS build_steps (
        dir TEXT PRIMARY KEY,
        pid INTEGER NOT NULL,
        pid_start INTEGER,
        container TEXT,
        runtime TEXT,
        cgroup_parent TEXT
    );"];

fn migrate(store: &Store) -> Result<(), BuildError> {
    store.migrate("build-steps", MIGRATIONS)?;
    Ok(())
}

fn me() -> (i64, Option<i64>) {
    let pid = std::process::id();
    let start = berth_engine::state::process_start_time(i32::try_from(pid).unwrap_or(-1))
        .and_then(|t| i64::try_from(t).ok());
    (i64::from(pid), start)
}

fn alive(pid: i64, start: Option<i64>) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    match start {
        Some(s) => {
            berth_engine::state::process_start_time(pid).and_then(|t| i64::try_from(t).ok())
                == Some(s)
        }
        None => berth_store::pid_alive(pid),
    }
}

/// Record that this process starts working in step directory `dir` (before creating it).
pub(crate) fn begin(store: &Store, dir: &Path) -> Result<(), BuildError> {
    migrate(store)?;
    let (pid, start) = me();
    store.db().execute(
        "INSERT OR REPLACE INTO build_steps(dir, pid, pid_start) VALUES (?1, ?2, ?3)",
        params![dir.to_string_lossy(), pid, start],
    )?;
    Ok(())
}

/// Record the RUN container of step `dir` (before it or its network exists).
pub(crate) fn set_container(
    store: &Store,
    dir: &Path,
    id: &str,
    runtime: Option<&str>,
) -> Result<(), BuildError> {
    migrate(store)?;
    store.db().execute(
        "UPDATE build_steps SET container = ?2, runtime = ?3, cgroup_parent = ?4 WHERE dir = ?1",
        params![
            dir.to_string_lossy(),
            id,
            runtime,
            berth_engine::cgroup_parent()
        ],
    )?;
    Ok(())
}

/// Forget step `dir` (everything in it was released).
pub(crate) fn end(store: &Store, dir: &Path) {
    if let Err(e) = store.db().execute(
        "DELETE FROM build_steps WHERE dir = ?1",
        [dir.to_string_lossy()],
    ) {
        tracing::warn!("forgetting build step {}: {e}", dir.display());
    }
}

/// A step whose process died.
struct Orphan {
    dir: PathBuf,
    pid: i64,
    start: Option<i64>,
    container: Option<String>,
    runtime: Option<String>,
    cgroup_parent: Option<String>,
}

/// Release the leftovers of build steps whose process died: kill and delete their RUN
/// container, tear its network down, unmount the step's overlays and remove its directory.
/// Returns how many steps were recovered. Steps of live processes are left alone; two
/// recoveries at once each take a step over before touching it.
///
/// # Errors
/// Database errors (the leftovers then stay for the next command).
pub fn recover(store: &Store) -> Result<usize, BuildError> {
    migrate(store)?;
    let rows: Vec<Orphan> = {
        let mut st = store.db().prepare(
            "SELECT dir, pid, pid_start, container, runtime, cgroup_parent FROM build_steps",
        )?;
        let v = st
            .query_map([], |r| {
                Ok(Orphan {
                    dir: PathBuf::from(r.get::<_, String>(0)?),
                    pid: r.get(1)?,
                    start: r.get(2)?,
                    container: r.get(3)?,
                    runtime: r.get(4)?,
                    cgroup_parent: r.get(5)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        v
    };
    let (my_pid, my_start) = me();
    let mut n = 0;
    for o in rows {
        if alive(o.pid, o.start) {
            continue;
        }
        // Take the step over: a recovery that dies half-way leaves it to the next one.
        let took = store.db().execute(
            "UPDATE build_steps SET pid = ?2, pid_start = ?3
             WHERE dir = ?1 AND pid = ?4 AND pid_start IS ?5",
            params![o.dir.to_string_lossy(), my_pid, my_start, o.pid, o.start],
        )?;
        if took != 1 {
            continue;
        }
        tracing::info!(
            "recovering build step {} of dead process {}",
            o.dir.display(),
            o.pid
        );
        if let Some(id) = &o.container {
            berth_engine::oneshot::abandon(
                store,
                id,
                &o.dir.join("bundle"),
                o.runtime.as_deref(),
                o.cgroup_parent
                    .as_deref()
                    .unwrap_or(&berth_engine::cgroup_parent()),
            );
        }
        let stuck = berth_store::unmount_under(&o.dir);
        if !stuck.is_empty() {
            tracing::warn!("cannot unmount {stuck:?}; they stay for the next command");
            continue;
        }
        if let Err(e) = std::fs::remove_dir_all(&o.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("removing {}: {e}", o.dir.display());
            }
        }
        end(store, &o.dir);
        n += 1;
    }
    // Step directories without a row (from a berth that did not record steps).
    if let Ok(rd) = std::fs::read_dir(store.root().join("tmp")) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let dead = name.ends_with(".step")
                && name
                    .split('.')
                    .next()
                    .and_then(|p| p.parse::<i32>().ok())
                    .is_some_and(|p| !berth_store::pid_alive(p));
            if !dead || recorded(store, &e.path())? {
                continue;
            }
            if berth_store::unmount_under(&e.path()).is_empty() {
                let _ = std::fs::remove_dir_all(e.path());
                n += 1;
            }
        }
    }
    Ok(n)
}

fn recorded(store: &Store, dir: &Path) -> Result<bool, BuildError> {
    let n: i64 = store.db().query_row(
        "SELECT COUNT(*) FROM build_steps WHERE dir = ?1",
        [dir.to_string_lossy()],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// [`recover`], but only when `tmp/` holds a step directory of a dead process (one directory
/// listing otherwise): cheap enough for every command to call.
///
/// # Errors
/// As [`recover`].
pub fn recover_if_needed(store: &Store) -> Result<usize, BuildError> {
    let Ok(rd) = std::fs::read_dir(store.root().join("tmp")) else {
        return Ok(0);
    };
    let found = rd.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name.ends_with(".step")
            && name
                .split('.')
                .next()
                .and_then(|p| p.parse::<i32>().ok())
                .is_some_and(|p| !berth_store::pid_alive(p))
    });
    if found {
        recover(store)
    } else {
        Ok(0)
    }
}
