//! The build cache: one table, `build_cache`, owned by this module.
//!
//! A step's key is `sha256(parent key, instruction as expanded, digest of its inputs)`, like
//! BuildKit's cache keys: the parent key chains everything before the step (base image id,
//! ENV/ARG/WORKDIR/USER/SHELL values), the inputs digest covers the content of the files a
//! COPY/ADD reads (names, modes, contents; not mtimes). A row maps a key to the layer the step
//! produced (or none, when it changed nothing). Rows are shared by every build in the store.
//!
//! To explain a miss, a row also keeps its parent key, its instruction and a short per-file
//! digest list; a miss looks for rows with the same parent and says what differs.

use std::collections::BTreeMap;

use berth_store::rusqlite::{params, OptionalExtension};
use berth_store::{Digest, Store};

use crate::BuildError;

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS build_cache (
        key TEXT PRIMARY KEY,
        parent TEXT NOT NULL,
        instruction TEXT NOT NULL,
        inputs TEXT NOT NULL,
        diff_id TEXT,
        created INTEGER NOT NULL,
        last_used INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS build_cache_parent ON build_cache(parent);",
    // Whether the entry's layer is leased in the image store (rows from before leases: no).
    "ALTER TABLE build_cache ADD COLUMN leased INTEGER NOT NULL DEFAULT 0;",
];

/// The holder name of the cache's layer leases in the image store.
pub const LEASE_HOLDER: &str = "build-cache";

/// Create the table if needed.
pub fn migrate(store: &Store) -> Result<(), BuildError> {
    store.migrate("build-cache", MIGRATIONS)?;
    Ok(())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The key of a step (lowercase hex sha256).
pub fn key(parent: &str, instruction: &str, inputs: &str) -> String {
    let mut h = berth_store::Hasher::sha256();
    for part in [parent, instruction, inputs] {
        h.update(part.as_bytes());
        h.update(b"\0");
    }
    h.finish().hex().to_string()
}

/// What a cached step produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hit {
    /// The step changed no file.
    Empty,
    /// The step's layer (diff id).
    Layer(Digest),
}

/// The cached result of `key`, if any (and marks it used).
pub fn lookup(store: &Store, key: &str) -> Result<Option<Hit>, BuildError> {
    Ok(lookup_with_time(store, key)?.map(|(h, _)| h))
}

/// [`lookup`], with when the entry was created (Unix seconds: the step's history time).
pub fn lookup_with_time(store: &Store, key: &str) -> Result<Option<(Hit, i64)>, BuildError> {
    migrate(store)?;
    let row: Option<(Option<String>, i64)> = store
        .db()
        .query_row(
            "SELECT diff_id, created FROM build_cache WHERE key = ?1",
            [key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((diff, created)) = row else {
        return Ok(None);
    };
    store.db().execute(
        "UPDATE build_cache SET last_used = ?1 WHERE key = ?2",
        params![now(), key],
    )?;
    let hit = match diff {
        None => Hit::Empty,
        Some(d) => Hit::Layer(
            Digest::parse(&d)
                .map_err(|e| BuildError::Other(format!("corrupt build cache row: {e}")))?,
        ),
    };
    Ok(Some((hit, created)))
}

/// Forget one entry (its layer vanished).
pub fn forget(store: &Store, key: &str) -> Result<(), BuildError> {
    store
        .db()
        .execute("DELETE FROM build_cache WHERE key = ?1", [key])?;
    Ok(())
}

/// Record a step's result. The layer must already be recorded in the image store; it is
/// leased there in the same transaction, so `rmi`/`image prune` keep it for the cache.
pub fn insert(
    store: &Store,
    key: &str,
    parent: &str,
    instruction: &str,
    inputs: &BTreeMap<String, String>,
    diff_id: Option<&Digest>,
) -> Result<(), BuildError> {
    migrate(store)?;
    let images = berth_image::ImageStore::open(store)?;
    let inputs = serde_json::to_string(inputs).unwrap_or_else(|_| "{}".into());
    let tx = store.db().unchecked_transaction()?;
    if let Some(d) = diff_id {
        images.lease_layer(LEASE_HOLDER, d)?;
    }
    tx.execute(
        "INSERT INTO build_cache(key, parent, instruction, inputs, diff_id, created, last_used, leased)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 1)
         ON CONFLICT(key) DO UPDATE SET diff_id = excluded.diff_id, last_used = excluded.last_used, leased = 1",
        params![
            key,
            parent,
            instruction,
            inputs,
            diff_id.map(|d| d.as_str().to_string()),
            now()
        ],
    )?;
    tx.commit()?;
    Ok(())
}

/// Lease the layers of entries written before the cache leased its layers (a store from an
/// older berth), so that `rmi` keeps them from now on. Cheap when there are none.
pub fn lease_legacy_entries(store: &Store) -> Result<(), BuildError> {
    migrate(store)?;
    let images = berth_image::ImageStore::open(store)?;
    let tx = store.db().unchecked_transaction()?;
    let diffs: Vec<String> = {
        let mut st = tx.prepare(
            "SELECT DISTINCT diff_id FROM build_cache WHERE leased = 0 AND diff_id IS NOT NULL",
        )?;
        let v = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        v
    };
    for d in diffs.iter().filter_map(|d| Digest::parse(d).ok()) {
        images.lease_layer(LEASE_HOLDER, &d)?;
    }
    tx.execute("UPDATE build_cache SET leased = 1 WHERE leased = 0", [])?;
    tx.commit()?;
    Ok(())
}

/// Why `instruction` (with `inputs`, after `parent`) missed the cache, in one line.
pub fn explain_miss(
    store: &Store,
    parent: &str,
    instruction: &str,
    inputs: &BTreeMap<String, String>,
) -> Result<String, BuildError> {
    migrate(store)?;
    let mut st = store.db().prepare(
        "SELECT instruction, inputs FROM build_cache WHERE parent = ?1 ORDER BY last_used DESC LIMIT 50",
    )?;
    let rows: Vec<(String, String)> = st
        .query_map([parent], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    if rows.is_empty() {
        return Ok("no cached step follows the previous step (first build of this step, or an earlier step changed)".into());
    }
    if let Some((_, old)) = rows.iter().find(|(i, _)| i == instruction) {
        let old: BTreeMap<String, String> = serde_json::from_str(old).unwrap_or_default();
        let mut changed = Vec::new();
        let mut added = Vec::new();
        let mut removed = Vec::new();
        for (k, v) in inputs {
            match old.get(k) {
                Some(o) if o == v => {}
                Some(_) => changed.push(k.as_str()),
                None => added.push(k.as_str()),
            }
        }
        for k in old.keys() {
            if !inputs.contains_key(k) {
                removed.push(k.as_str());
            }
        }
        let mut parts = Vec::new();
        for (what, list) in [
            ("changed", &changed),
            ("added", &added),
            ("removed", &removed),
        ] {
            if list.is_empty() {
                continue;
            }
            let shown: Vec<&str> = list.iter().take(3).copied().collect();
            let more = if list.len() > 3 {
                format!(" and {} more", list.len() - 3)
            } else {
                String::new()
            };
            parts.push(format!("{what}: {}{more}", shown.join(", ")));
        }
        if parts.is_empty() {
            return Ok("the files this step reads changed (modes, links or file types)".into());
        }
        return Ok(format!("input files {}", parts.join("; ")));
    }
    let (prev, _) = &rows[0];
    Ok(format!(
        "the instruction changed; the cache has {prev:?} after the previous step"
    ))
}

/// One line per removed entry count and the layers no longer referenced by the cache.
#[derive(Debug, Default)]
pub struct PruneReport {
    /// Cache entries removed.
    pub entries: usize,
    /// Diff ids that the removed entries referenced (the caller removes those no image uses).
    pub layers: Vec<Digest>,
}

/// Remove cache entries: all of them, or only those not used since `until` (Unix seconds),
/// and release the leases of the layers no remaining entry refers to (the caller removes
/// those no image uses).
pub fn prune(store: &Store, until: Option<i64>) -> Result<PruneReport, BuildError> {
    migrate(store)?;
    let images = berth_image::ImageStore::open(store)?;
    let db = store.db();
    let tx = db.unchecked_transaction()?;
    let cutoff = until.unwrap_or(i64::MAX);
    let mut layers = Vec::new();
    {
        let mut st = tx.prepare(
            "SELECT DISTINCT diff_id FROM build_cache WHERE last_used < ?1 AND diff_id IS NOT NULL",
        )?;
        for d in st.query_map([cutoff], |r| r.get::<_, String>(0))? {
            if let Ok(d) = Digest::parse(&d?) {
                layers.push(d);
            }
        }
    }
    let n = tx.execute("DELETE FROM build_cache WHERE last_used < ?1", [cutoff])?;
    // Layers still referenced by remaining entries stay.
    let mut keep = std::collections::HashSet::new();
    {
        let mut st =
            tx.prepare("SELECT DISTINCT diff_id FROM build_cache WHERE diff_id IS NOT NULL")?;
        for d in st.query_map([], |r| r.get::<_, String>(0))? {
            keep.insert(d?);
        }
    }
    layers.retain(|d| !keep.contains(d.as_str()));
    images.release_layers(LEASE_HOLDER, &layers)?;
    tx.commit()?;
    Ok(PruneReport { entries: n, layers })
}

/// What [`prune_store`] removed.
#[derive(Debug, Default)]
pub struct PruneSummary {
    /// Cache entries removed.
    pub entries: usize,
    /// Bytes of layer content removed (layers no image and no remaining entry used).
    pub bytes: u64,
}

/// `builder prune`: remove cache entries unused since `until` (Unix seconds; all when
/// `None`), then the layers only they kept, and the cache mounts when everything goes.
pub fn prune_store(store: &Store, until: Option<i64>) -> Result<PruneSummary, BuildError> {
    let _lock = store.lock_shared()?;
    lease_legacy_entries(store)?;
    let r = prune(store, until)?;
    let images = berth_image::ImageStore::open(store)?;
    let bytes = images.remove_layers_unless_used(&r.layers)?;
    if until.is_none() {
        let d = store.root().join("build-cache-mounts");
        if d.exists() {
            let _ = std::fs::remove_dir_all(&d);
        }
    }
    Ok(PruneSummary {
        entries: r.entries,
        bytes,
    })
}

/// One build cache entry as `system df` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The entry's key (hex SHA-256; Docker's cache record ID).
    pub key: String,
    /// The instruction as expanded (`RUN apk add curl`).
    pub instruction: String,
    /// The layer the step made (`None`: the step changed no file).
    pub diff_id: Option<Digest>,
    /// Unix seconds when the entry was made.
    pub created: i64,
    /// Unix seconds of its last cache hit (or creation).
    pub last_used: i64,
}

/// Every build cache entry, oldest first.
///
/// # Errors
/// Database errors.
pub fn entries(store: &Store) -> Result<Vec<CacheEntry>, BuildError> {
    migrate(store)?;
    let mut st = store.db().prepare(
        "SELECT key, instruction, diff_id, created, last_used FROM build_cache ORDER BY created, key",
    )?;
    let rows = st.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<String>>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (key, instruction, diff, created, last_used) = row?;
        out.push(CacheEntry {
            key,
            instruction,
            diff_id: diff.and_then(|d| Digest::parse(&d).ok()),
            created,
            last_used,
        });
    }
    Ok(out)
}

/// Diff ids any cache entry refers to.
pub fn layers_in_use(store: &Store) -> Result<Vec<Digest>, BuildError> {
    migrate(store)?;
    let mut st = store
        .db()
        .prepare("SELECT DISTINCT diff_id FROM build_cache WHERE diff_id IS NOT NULL")?;
    let v: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    Ok(v.iter().filter_map(|d| Digest::parse(d).ok()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_misses() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let k0 = key("", "FROM sha256:abc", "");
        let mut inputs = BTreeMap::new();
        inputs.insert("src/a".to_string(), "1111".to_string());
        inputs.insert("src/b".to_string(), "2222".to_string());
        let k1 = key(&k0, "COPY src /app", "digest1");
        assert_ne!(k1, key(&k0, "COPY src /app", "digest2"));
        assert_eq!(lookup(&store, &k1).unwrap(), None);
        insert(&store, &k1, &k0, "COPY src /app", &inputs, None).unwrap();
        assert_eq!(lookup(&store, &k1).unwrap(), Some(Hit::Empty));
        let listed = entries(&store).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (
                listed[0].key.as_str(),
                listed[0].instruction.as_str(),
                &listed[0].diff_id
            ),
            (k1.as_str(), "COPY src /app", &None)
        );
        let mut changed = inputs.clone();
        changed.insert("src/b".into(), "3333".into());
        changed.insert("src/c".into(), "4444".into());
        let why = explain_miss(&store, &k0, "COPY src /app", &changed).unwrap();
        assert!(why.contains("changed: src/b"), "{why}");
        assert!(why.contains("added: src/c"), "{why}");
        let why = explain_miss(&store, &k0, "COPY other /app", &changed).unwrap();
        assert!(why.contains("instruction changed"), "{why}");
        let why = explain_miss(&store, "nope", "RUN x", &BTreeMap::new()).unwrap();
        assert!(why.contains("no cached step"), "{why}");
        let r = prune(&store, None).unwrap();
        assert_eq!(r.entries, 1);
        lease_legacy_entries(&store).unwrap();
        assert_eq!(lookup(&store, &k1).unwrap(), None);
    }
}
