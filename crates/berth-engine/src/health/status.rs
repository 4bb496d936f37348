//! The `health` table (owned by this module): each container's status, failing streak and
//! last results, as `inspect` shows under `State.Health`, and Docker's rules for moving
//! between `starting`, `healthy` and `unhealthy`.

use std::time::Duration;

use berth_store::rusqlite::{params, OptionalExtension};
use berth_store::Store;
use serde::{Deserialize, Serialize};

use super::HealthConfig;
use crate::Result;

/// Results kept in `State.Health.Log`.
const MAX_LOG: usize = 5;

const MIGRATIONS: &[&str] = &["CREATE TABLE IF NOT EXISTS health (
    container TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    failing_streak INTEGER NOT NULL DEFAULT 0,
    log TEXT NOT NULL DEFAULT '[]'
)"];

fn migrate(store: &Store) -> Result<()> {
    store.migrate("health", MIGRATIONS)?;
    Ok(())
}

/// One probe result (`State.Health.Log[]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct HealthResult {
    /// RFC 3339 start time.
    pub start: String,
    /// RFC 3339 end time.
    pub end: String,
    /// The probe's exit code (-1 when it timed out or could not run).
    pub exit_code: i64,
    /// Its output (stdout and stderr), at most 4096 bytes.
    pub output: String,
}

/// `State.Health`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    /// Failed probes in a row.
    pub failing_streak: i64,
    /// The last 5 results, oldest first.
    pub log: Vec<HealthResult>,
}

/// The recorded health of container `id`, if it has a check and has been started.
///
/// Errors: [`crate::EngineError::Db`] when the table cannot be read.
pub fn get(store: &Store, id: &str) -> Result<Option<Health>> {
    migrate(store)?;
    let row = store
        .db()
        .query_row(
            "SELECT status, failing_streak, log FROM health WHERE container = ?1",
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            },
        )
        .optional()?;
    Ok(row.map(|(status, failing_streak, log)| Health {
        status,
        failing_streak,
        log: serde_json::from_str(&log).unwrap_or_default(),
    }))
}

/// Every container's health status (`container id → status`).
///
/// Errors: [`crate::EngineError::Db`] when the table cannot be read.
pub fn all_status(store: &Store) -> Result<std::collections::HashMap<String, String>> {
    migrate(store)?;
    let mut st = store.db().prepare("SELECT container, status FROM health")?;
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    Ok(rows.collect::<berth_store::rusqlite::Result<_>>()?)
}

/// A (re)started container with a check begins as `starting`, without history (Docker).
///
/// Errors: [`crate::EngineError::Db`] when the row cannot be written.
pub fn reset(store: &Store, id: &str) -> Result<()> {
    migrate(store)?;
    store.db().execute(
        "INSERT INTO health (container, status, failing_streak, log) VALUES (?1, 'starting', 0, '[]')
         ON CONFLICT(container) DO UPDATE SET status = 'starting', failing_streak = 0, log = '[]'",
        [id],
    )?;
    Ok(())
}

/// Forget the health of a removed container.
///
/// Errors: [`crate::EngineError::Db`] when the row cannot be deleted.
pub fn forget(store: &Store, id: &str) -> Result<()> {
    migrate(store)?;
    store
        .db()
        .execute("DELETE FROM health WHERE container = ?1", [id])?;
    Ok(())
}

/// Docker's rule for one result: success → healthy, streak 0; failure → streak + 1 (not
/// counted while `starting` inside the start period), unhealthy once the streak reaches the
/// retries.
fn next_state(
    h: &Health,
    cfg: &HealthConfig,
    exit_code: i64,
    since_start: Duration,
) -> (String, i64) {
    if exit_code == 0 {
        return ("healthy".into(), 0);
    }
    if h.status == "starting" && since_start < cfg.start_period() {
        return (h.status.clone(), h.failing_streak);
    }
    let streak = h.failing_streak + 1;
    if streak >= cfg.retries() {
        ("unhealthy".into(), streak)
    } else {
        (h.status.clone(), streak)
    }
}

/// Record one probe result for container `id`; returns the new status.
///
/// Errors: [`crate::EngineError::Db`] when the row cannot be read or written (the update is one
/// transaction: a failure leaves the previous state).
pub fn record(
    store: &Store,
    id: &str,
    cfg: &HealthConfig,
    started_at: Option<&str>,
    result: HealthResult,
) -> Result<String> {
    migrate(store)?;
    let since_start = started_at
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .and_then(|t| {
            chrono::DateTime::parse_from_rfc3339(&result.start)
                .ok()
                .map(|s| (s - t).to_std().unwrap_or_default())
        })
        .unwrap_or(Duration::MAX);
    let tx = store.db().unchecked_transaction()?;
    let cur = tx
        .query_row(
            "SELECT status, failing_streak, log FROM health WHERE container = ?1",
            [id],
            |r| {
                Ok(Health {
                    status: r.get(0)?,
                    failing_streak: r.get(1)?,
                    log: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                })
            },
        )
        .optional()?
        .unwrap_or(Health {
            status: "starting".into(),
            failing_streak: 0,
            log: vec![],
        });
    let (status, streak) = next_state(&cur, cfg, result.exit_code, since_start);
    let mut log = cur.log;
    log.push(result);
    if log.len() > MAX_LOG {
        log.drain(..log.len() - MAX_LOG);
    }
    tx.execute(
        "INSERT INTO health (container, status, failing_streak, log) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(container) DO UPDATE SET status = ?2, failing_streak = ?3, log = ?4",
        params![
            id,
            status,
            streak,
            serde_json::to_string(&log).unwrap_or_else(|_| "[]".into())
        ],
    )?;
    tx.commit()?;
    Ok(status)
}

pub(super) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_state_rules() {
        let cfg = HealthConfig {
            test: vec!["CMD".into(), "x".into()],
            retries: 2,
            start_period: 10_000_000_000,
            ..Default::default()
        };
        let h = |s: &str, n| Health {
            status: s.into(),
            failing_streak: n,
            log: vec![],
        };
        let early = Duration::from_secs(1);
        let late = Duration::from_secs(60);
        assert_eq!(
            next_state(&h("starting", 0), &cfg, 1, early),
            ("starting".into(), 0)
        );
        assert_eq!(
            next_state(&h("starting", 0), &cfg, 1, late),
            ("starting".into(), 1)
        );
        assert_eq!(
            next_state(&h("starting", 1), &cfg, 1, late),
            ("unhealthy".into(), 2)
        );
        assert_eq!(
            next_state(&h("unhealthy", 2), &cfg, 0, late),
            ("healthy".into(), 0)
        );
        assert_eq!(
            next_state(&h("healthy", 0), &cfg, 7, early),
            ("healthy".into(), 1)
        );
    }

    #[test]
    fn table() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let cfg = HealthConfig {
            test: vec!["CMD".into(), "x".into()],
            retries: 1,
            ..Default::default()
        };
        reset(&s, "c1").unwrap();
        for i in 0..7 {
            let r = HealthResult {
                start: now_rfc3339(),
                end: now_rfc3339(),
                exit_code: i % 2,
                output: format!("{i}"),
            };
            record(&s, "c1", &cfg, None, r).unwrap();
        }
        let h = get(&s, "c1").unwrap().unwrap();
        assert_eq!(h.log.len(), 5);
        assert_eq!(h.log[4].output, "6");
        assert_eq!(h.status, "healthy");
        reset(&s, "c1").unwrap();
        assert_eq!(get(&s, "c1").unwrap().unwrap().status, "starting");
        forget(&s, "c1").unwrap();
        assert!(get(&s, "c1").unwrap().is_none());
    }
}
