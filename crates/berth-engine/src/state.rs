//! The `containers` table.

use std::collections::HashSet;

use berth_store::{Digest, Store};

use crate::Result;

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

/// Ids of images that some container (in any state) was created from.
pub fn image_ids_in_use(store: &Store) -> Result<HashSet<Digest>> {
    migrate(store)?;
    let mut st = store.db().prepare("SELECT DISTINCT image_id FROM containers")?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = HashSet::new();
    for r in rows {
        if let Ok(d) = Digest::parse(&r?) {
            out.insert(d);
        }
    }
    Ok(out)
}
