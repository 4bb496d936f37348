//! Which repositories of which registries a blob is known to exist in (for cross-repository
//! mounts on push). Table `registry_blob_sources`, owned by this crate.

use berth_store::{Digest, Store};

const MIGRATIONS: &[&str] = &["CREATE TABLE IF NOT EXISTS registry_blob_sources (
        blob TEXT NOT NULL,
        registry TEXT NOT NULL,
        repository TEXT NOT NULL,
        PRIMARY KEY (blob, registry, repository)
    )"];

/// Remember that `blobs` exist in `registry/repository`.
pub fn record(
    store: &Store,
    registry: &str,
    repository: &str,
    blobs: &[&Digest],
) -> berth_store::Result<()> {
    store.migrate("registry", MIGRATIONS)?;
    let tx = store.db().unchecked_transaction()?;
    for b in blobs {
        tx.execute(
            "INSERT OR IGNORE INTO registry_blob_sources(blob, registry, repository) VALUES (?1, ?2, ?3)",
            berth_store::rusqlite::params![b.as_str(), registry, repository],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Other repositories of `registry` known to hold `blob`.
pub fn lookup(
    store: &Store,
    registry: &str,
    blob: &Digest,
    except_repository: &str,
) -> berth_store::Result<Vec<String>> {
    store.migrate("registry", MIGRATIONS)?;
    let mut st = store.db().prepare(
        "SELECT repository FROM registry_blob_sources WHERE blob = ?1 AND registry = ?2 AND repository != ?3 ORDER BY repository",
    )?;
    let rows = st.query_map(
        berth_store::rusqlite::params![blob.as_str(), registry, except_repository],
        |r| r.get::<_, String>(0),
    )?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_finds_sources() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        record(&store, "reg:5000", "team/app", &[&a, &b]).unwrap();
        record(&store, "reg:5000", "team/app", &[&a]).unwrap();
        record(&store, "reg:5000", "team/other", &[&a]).unwrap();
        record(&store, "elsewhere", "x/y", &[&a]).unwrap();
        assert_eq!(
            lookup(&store, "reg:5000", &a, "team/new").unwrap(),
            ["team/app", "team/other"]
        );
        assert_eq!(
            lookup(&store, "reg:5000", &a, "team/app").unwrap(),
            ["team/other"]
        );
        assert!(lookup(&store, "reg:5000", &b, "team/app")
            .unwrap()
            .is_empty());
    }
}
