//! Removing volumes: one by name (refused while in use), prune of unused ones, and the sweep of
//! directories a crash left without a row.

use std::collections::HashSet;

use berth_store::rusqlite::{self, OptionalExtension};

use crate::{dir_size, PruneFilter, Pruned, Result, VolumeError, VolumeStore};

/// Whether volume `name` has a row (read inside the caller's transaction).
pub(crate) fn exists(tx: &rusqlite::Transaction<'_>, name: &str) -> Result<bool> {
    let one: Option<i64> = tx
        .query_row("SELECT 1 FROM volumes WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(one.is_some())
}

impl VolumeStore<'_> {
    /// Remove volume `name`. A volume in use is never removed ([`VolumeError::InUse`]); with
    /// `force`, a missing volume is not an error.
    pub fn remove(&self, name: &str, force: bool) -> Result<()> {
        let tx = self.store.db().unchecked_transaction()?;
        if !exists(&tx, name)? {
            return if force {
                Ok(())
            } else {
                Err(VolumeError::NotFound(name.to_string()))
            };
        }
        let users: Vec<String> = {
            let mut st = tx.prepare(
                "SELECT container FROM volume_refs WHERE volume = ?1 ORDER BY container",
            )?;
            let rows = st.query_map([name], |r| r.get::<_, String>(0))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        };
        if !users.is_empty() {
            return Err(VolumeError::InUse {
                name: name.to_string(),
                users,
            });
        }
        tx.execute("DELETE FROM volumes WHERE name = ?1", [name])?;
        tx.commit()?;
        // The row is gone: the directory is now an orphan, removed here or by a later sweep.
        self.discard_dir(name);
        berth_events::record(
            self.store,
            "volume",
            "destroy",
            name,
            &[("driver", "local")],
        );
        Ok(())
    }

    /// Remove unused volumes: anonymous ones, or all with `filter.all`, matching the label
    /// conditions. Returns what was removed.
    pub fn prune(&self, filter: &PruneFilter) -> Result<Vec<Pruned>> {
        let used = self.in_use()?;
        let mut out = Vec::new();
        for v in self.list()? {
            if used.contains(&v.name) || !(filter.all || v.anonymous) {
                continue;
            }
            let has = |k: &str, want: &Option<String>| match (v.labels.get(k), want) {
                (Some(_), None) => true,
                (Some(x), Some(w)) => x == w,
                (None, _) => false,
            };
            if !filter.labels.iter().all(|(k, w)| has(k, w))
                || filter.not_labels.iter().any(|(k, w)| has(k, w))
            {
                continue;
            }
            let bytes = dir_size(&v.mountpoint);
            match self.remove(&v.name, false) {
                Ok(()) => out.push(Pruned {
                    name: v.name,
                    bytes,
                }),
                // Taken into use meanwhile: keep it.
                Err(VolumeError::InUse { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.sweep()?;
        Ok(out)
    }

    /// Discard directories in `volumes/` that have no row (left by a crash).
    pub fn sweep(&self) -> Result<()> {
        let Ok(rd) = std::fs::read_dir(self.dir()) else {
            return Ok(());
        };
        // Holding the write lock: creates publish directory and row together under it.
        let tx = self.store.db().unchecked_transaction()?;
        let known: HashSet<String> = {
            let mut st = tx.prepare("SELECT name FROM volumes")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect::<rusqlite::Result<HashSet<_>>>()?
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !known.contains(&name) {
                self.discard_dir(&name);
            }
        }
        tx.commit()?;
        Ok(())
    }
}
