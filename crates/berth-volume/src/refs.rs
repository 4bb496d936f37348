//! The `volume_refs` table: which container uses which volume, so a volume in use is never
//! removed; references are added before a container row exists and forgotten after it is gone.

use std::collections::{HashMap, HashSet};

use berth_store::rusqlite::{self, params};

use crate::{now_secs, Result, VolumeError, VolumeStore};

impl VolumeStore<'_> {
    /// Ids of the containers that use volume `name` (sorted).
    pub fn users(&self, name: &str) -> Result<Vec<String>> {
        let mut st = self
            .store
            .db()
            .prepare("SELECT container FROM volume_refs WHERE volume = ?1 ORDER BY container")?;
        let rows = st.query_map([name], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Names of every volume some container uses.
    pub fn in_use(&self) -> Result<HashSet<String>> {
        let mut st = self
            .store
            .db()
            .prepare("SELECT DISTINCT volume FROM volume_refs")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<HashSet<_>>>()?)
    }

    /// How many containers use each volume (volumes no container uses are absent).
    pub fn links(&self) -> Result<HashMap<String, usize>> {
        let mut st = self
            .store
            .db()
            .prepare("SELECT volume, COUNT(DISTINCT container) FROM volume_refs GROUP BY volume")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = HashMap::new();
        for r in rows {
            let (v, n) = r?;
            out.insert(v, usize::try_from(n).unwrap_or(0));
        }
        Ok(out)
    }

    /// Record that `container` uses volume `name` (which must exist).
    pub fn add_ref(&self, name: &str, container: &str) -> Result<()> {
        let tx = self.store.db().unchecked_transaction()?;
        if !crate::remove::exists(&tx, name)? {
            return Err(VolumeError::NotFound(name.to_string()));
        }
        tx.execute(
            "INSERT OR IGNORE INTO volume_refs (volume, container, since) VALUES (?1, ?2, ?3)",
            params![name, container, now_secs()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Forget every reference of `container` (it was removed).
    pub fn release(&self, container: &str) -> Result<()> {
        self.store
            .db()
            .execute("DELETE FROM volume_refs WHERE container = ?1", [container])?;
        Ok(())
    }

    /// Forget references of containers not in `live` that are older than `min_age_secs`
    /// (younger ones may belong to a container being created right now).
    pub fn forget_refs_except(&self, live: &HashSet<String>, min_age_secs: i64) -> Result<()> {
        let mut st = self
            .store
            .db()
            .prepare("SELECT DISTINCT container FROM volume_refs WHERE since <= ?1")?;
        let rows = st.query_map([now_secs() - min_age_secs], |r| r.get::<_, String>(0))?;
        let stale: Vec<String> = rows
            .collect::<rusqlite::Result<Vec<_>>>()?
            .into_iter()
            .filter(|c| !live.contains(c))
            .collect();
        for c in stale {
            tracing::debug!("forgetting volume references of removed container {c}");
            self.release(&c)?;
        }
        Ok(())
    }
}
