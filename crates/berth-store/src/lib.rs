//! On-disk state shared by every berth component.
//!
//! A store is one directory (`--root`, `BERTH_ROOT`, default `/var/lib/berth`):
//!
//! ```text
//! berth.db            SQLite metadata (WAL); each component owns its tables (see [`Store::migrate`])
//! lock                flock(2) target for whole-store operations (prune, recovery)
//! blobs/sha256/<hex>  content-addressed blobs, written tmp + fsync + rename, verified on read
//! tmp/<pid>.<rand>    work in progress; entries of dead processes are swept
//! ```
//!
//! Crash safety rule for every component: write data first (tmp, fsync, rename), then commit the
//! metadata row that makes it visible. A crash before the commit leaves only garbage that a sweep
//! removes; a crash after leaves a complete object.

mod digest;
mod fsutil;
pub mod inroot;
pub mod lookup;

pub use digest::{Digest, DigestError, Hasher};
pub use fsutil::{fsync_dir, mounts_under, pid_alive, unmount_under, write_atomic, write_replace};
pub use rusqlite;
/// The SQLite error type, re-exported so components need not depend on rusqlite directly.
pub use rusqlite::Error as DbError;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

/// Errors of the store layer: files, the metadata database, blob verification.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// An SQLite error.
    #[error("metadata database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A malformed or unsupported digest.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// A blob whose content does not match its digest.
    #[error(
        "blob {expected} failed verification: content hashes to {actual}; the data was discarded"
    )]
    DigestMismatch {
        /// The digest the blob was stored or requested under.
        expected: Digest,
        /// The digest of the content that arrived.
        actual: Digest,
    },
    /// A blob whose size differs from the one announced.
    #[error("blob {digest} has {actual} bytes, expected {expected}; the data was discarded")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// Size announced, in bytes.
        expected: u64,
        /// Size received, in bytes.
        actual: u64,
    },
    /// No blob with this digest in the store.
    #[error("blob {0} is not in the store")]
    BlobMissing(Digest),
    /// A stored blob whose content no longer matches its digest.
    #[error("blob {0} in the store is corrupt (its content no longer matches its digest); remove the image and load or pull it again")]
    BlobCorrupt(Digest),
}

impl StoreError {
    /// An [`StoreError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result with [`StoreError`] as the default error.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Default root for rootful use.
pub const DEFAULT_ROOT: &str = "/var/lib/berth";

/// The berth store: root directory plus an open metadata connection.
pub struct Store {
    root: PathBuf,
    db: Connection,
    /// Components whose schema this connection has already brought up to date.
    migrated: std::cell::RefCell<std::collections::HashSet<String>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("root", &self.root).finish()
    }
}

impl Store {
    /// Open (creating if needed) the store at `root`.
    pub fn open(root: impl AsRef<Path>) -> Result<Store> {
        let root = root.as_ref();
        for sub in ["", "blobs/sha256", "tmp"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(|e| StoreError::io(&p, e))?;
        }
        let root = fs::canonicalize(root).map_err(|e| StoreError::io(root, e))?;
        // Several processes opening a fresh store at once can see SQLITE_BUSY from steps the
        // busy handler does not cover (switching a new database to WAL); such a race is
        // transient, so the open is retried a bounded number of times.
        let mut attempt = 0u32;
        loop {
            match Self::open_once(&root) {
                Err(StoreError::Db(e)) if is_busy(&e) && attempt < 50 => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(10 * u64::from(attempt.min(10))));
                }
                r => return r,
            }
        }
    }

    fn open_once(root: &Path) -> Result<Store> {
        let db = open_db(&root.join("berth.db"))?;
        let store = Store {
            root: root.to_path_buf(),
            db,
            migrated: Default::default(),
        };
        store.migrate(
            "store",
            &["CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL)"],
        )?;
        Ok(store)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The metadata connection. Components run their own statements; multi-row changes go
    /// in a transaction (`db().unchecked_transaction()`).
    pub fn db(&self) -> &Connection {
        &self.db
    }

    /// Open a second, independent connection to the same database (for another thread).
    pub fn open_db(&self) -> Result<Connection> {
        open_db(&self.root.join("berth.db"))
    }

    /// Apply a component's schema steps in order, each exactly once.
    ///
    /// `steps[i]` brings the component from version `i` to `i + 1`; steps are append-only.
    pub fn migrate(&self, component: &str, steps: &[&str]) -> Result<()> {
        if self.migrated.borrow().contains(component) {
            return Ok(());
        }
        self.migrate_now(component, steps)?;
        self.migrated.borrow_mut().insert(component.to_string());
        Ok(())
    }

    fn migrate_now(&self, component: &str, steps: &[&str]) -> Result<()> {
        self.db.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
        )?;
        let version = |db: &Connection| -> Result<usize> {
            Ok(db
                .query_row(
                    "SELECT version FROM schema_versions WHERE component = ?1",
                    [component],
                    |r| r.get(0),
                )
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(0),
                    e => Err(e),
                })?)
        };
        if version(&self.db)? >= steps.len() {
            return Ok(());
        }
        let tx = self.db.unchecked_transaction()?;
        // Re-read inside the write transaction: another process may have migrated meanwhile.
        let current = version(&tx)?;
        for step in &steps[current..] {
            tx.execute_batch(step)?;
        }
        tx.execute(
            "INSERT INTO schema_versions(component, version) VALUES (?1, ?2)
             ON CONFLICT(component) DO UPDATE SET version = excluded.version",
            rusqlite::params![component, steps.len()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Path of a blob (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        blob_path(&self.root, digest)
    }

    /// Whether a blob with this digest is in the store (its file exists; not verified).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Size of a stored blob.
    pub fn blob_size(&self, digest: &Digest) -> Result<u64> {
        let p = self.blob_path(digest);
        match fs::metadata(&p) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::BlobMissing(digest.clone()))
            }
            Err(e) => Err(StoreError::io(p, e)),
        }
    }

    /// A fresh temporary path inside the store (same filesystem as its final place).
    pub fn tmp_path(&self, hint: &str) -> PathBuf {
        tmp_path(&self.root, hint)
    }

    /// Start writing a blob; the digest is computed while writing.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        BlobWriter::new(&self.root)
    }

    /// Store bytes as a blob, verifying them against `expected` when given.
    pub fn put_blob(&self, data: &[u8], expected: Option<&Digest>) -> Result<Digest> {
        if let Some(d) = expected {
            if self.has_blob(d) {
                let actual = Digest::sha256_of(data);
                if &actual != d {
                    return Err(StoreError::DigestMismatch {
                        expected: d.clone(),
                        actual,
                    });
                }
                return Ok(d.clone());
            }
        }
        let mut w = self.blob_writer()?;
        w.write_all(data).map_err(|e| StoreError::io(&w.path, e))?;
        w.commit(expected, None)
    }

    /// Read a whole (small) blob, verifying its digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(digest);
        let data = match fs::read(&p) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::BlobMissing(digest.clone()))
            }
            Err(e) => return Err(StoreError::io(p, e)),
        };
        if &Digest::compute(digest.algorithm(), &data)? != digest {
            return Err(StoreError::BlobCorrupt(digest.clone()));
        }
        Ok(data)
    }

    /// Open a blob for streaming; the reader fails at end of data if the content is corrupt.
    pub fn open_blob(&self, digest: &Digest) -> Result<VerifyingReader<File>> {
        let p = self.blob_path(digest);
        let f = match File::open(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::BlobMissing(digest.clone()))
            }
            Err(e) => return Err(StoreError::io(p, e)),
        };
        VerifyingReader::new(f, digest.clone())
    }

    /// Remove a blob (no-op if absent).
    pub fn remove_blob(&self, digest: &Digest) -> Result<()> {
        let p = self.blob_path(digest);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(p, e)),
        }
    }

    /// All blob digests present on disk.
    pub fn list_blobs(&self) -> Result<Vec<Digest>> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for ent in fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
            let ent = ent.map_err(|e| StoreError::io(&dir, e))?;
            if let Some(name) = ent.file_name().to_str() {
                if let Ok(d) = Digest::parse(&format!("sha256:{name}")) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    /// Take the whole-store lock (blocks until other holders finish). Released on drop.
    pub fn lock_exclusive(&self) -> Result<StoreLock> {
        self.lock(rustix::fs::FlockOperation::LockExclusive)
    }

    /// Take the store lock shared (many holders; excludes [`Store::lock_exclusive`]).
    pub fn lock_shared(&self) -> Result<StoreLock> {
        self.lock(rustix::fs::FlockOperation::LockShared)
    }

    /// Take the whole-store lock if nobody holds it (shared or exclusive); `None` otherwise.
    pub fn try_lock_exclusive(&self) -> Result<Option<StoreLock>> {
        match self.lock(rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(l) => Ok(Some(l)),
            Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::WouldBlock => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn lock(&self, op: rustix::fs::FlockOperation) -> Result<StoreLock> {
        let p = self.root.join("lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| StoreError::io(&p, e))?;
        rustix::fs::flock(f.as_fd(), op).map_err(|e| StoreError::io(&p, e.into()))?;
        Ok(StoreLock { _file: f })
    }

    /// Remove temporary files left by processes that no longer run (crashed or killed);
    /// directories with something mounted below them stay for their owner's recovery.
    pub fn sweep_tmp(&self) -> Result<usize> {
        let dir = self.root.join("tmp");
        let mut n = 0;
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => return Err(StoreError::io(&dir, e)),
        };
        for ent in rd.flatten() {
            let name = ent.file_name();
            let Some(name) = name.to_str() else { continue };
            let pid: Option<i32> = name.split('.').next().and_then(|p| p.parse().ok());
            if let Some(pid) = pid {
                if pid_alive(pid) {
                    continue;
                }
            }
            let p = ent.path();
            // Never delete through a mount point (a killed build step's overlay): its owner's
            // recovery unmounts it first.
            if p.is_dir() && !p.is_symlink() && !fsutil::mounts_under(&p).is_empty() {
                continue;
            }
            let r = if p.is_dir() && !p.is_symlink() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
            if r.is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Path of a blob under a store root (whether or not it exists). Usable from any thread.
pub fn blob_path(root: &Path, digest: &Digest) -> PathBuf {
    root.join("blobs")
        .join(digest.algorithm())
        .join(digest.hex())
}

/// A fresh temporary path under a store root's `tmp/`, swept if this process dies.
pub fn tmp_path(root: &Path, hint: &str) -> PathBuf {
    let r: u64 = rand::random();
    root.join("tmp")
        .join(format!("{}.{r:016x}.{hint}", std::process::id()))
}

/// Whether `e` is SQLite's "database is busy/locked".
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

fn open_db(path: &Path) -> Result<Connection> {
    let mut db = Connection::open(path)?;
    // Every transaction takes the write lock up front: a deferred transaction that reads and
    // then writes fails at once with SQLITE_BUSY when another process committed in between,
    // whereas BEGIN IMMEDIATE waits (busy_timeout) like every other writer.
    db.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
    db.busy_timeout(Duration::from_secs(60))?;
    db.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
    )?;
    Ok(db)
}

/// Held whole-store lock.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

/// Writes a blob into `tmp/`, hashing as it goes; [`BlobWriter::commit`] verifies and publishes.
pub struct BlobWriter {
    root: PathBuf,
    path: PathBuf,
    file: Option<File>,
    hasher: Hasher,
    size: u64,
    /// Set once the blob is in place; until then drop removes the tmp file.
    done: bool,
}

impl BlobWriter {
    /// Start a blob under the store `root` (thread-safe: needs no database).
    pub fn new(root: &Path) -> Result<BlobWriter> {
        let path = tmp_path(root, "blob");
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        Ok(BlobWriter {
            root: root.to_path_buf(),
            path,
            file: Some(file),
            hasher: Hasher::sha256(),
            size: 0,
            done: false,
        })
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Verify against `expected` digest (and size), fsync, and move into place.
    pub fn commit(
        mut self,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
    ) -> Result<Digest> {
        let file = self.file.take().expect("writer already committed");
        let actual = std::mem::replace(&mut self.hasher, Hasher::sha256()).finish();
        if let Some(exp) = expected {
            if exp.algorithm() != "sha256" {
                return Err(DigestError::Unsupported(exp.algorithm().to_string()).into());
            }
            if *exp != actual {
                return Err(StoreError::DigestMismatch {
                    expected: exp.clone(),
                    actual,
                });
            }
        }
        if let Some(sz) = expected_size {
            if sz != self.size {
                return Err(StoreError::SizeMismatch {
                    digest: actual,
                    expected: sz,
                    actual: self.size,
                });
            }
        }
        file.sync_all().map_err(|e| StoreError::io(&self.path, e))?;
        drop(file);
        let dest = blob_path(&self.root, &actual);
        fs::rename(&self.path, &dest).map_err(|e| StoreError::io(&dest, e))?;
        self.done = true;
        fsync_dir(dest.parent().expect("blob path has a parent"))?;
        Ok(actual)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self
            .file
            .as_mut()
            .expect("writer already committed")
            .write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Also after a refused commit (digest or size mismatch): nothing may stay in tmp/.
        if !self.done {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// A reader that hashes what passes through and returns an error at EOF if the digest differs.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected: Digest,
    read: u64,
}

impl<R: Read> VerifyingReader<R> {
    /// Wrap `inner`, checking what it yields against `expected`.
    ///
    /// Errors: the digest's algorithm is not supported.
    pub fn new(inner: R, expected: Digest) -> Result<Self> {
        let hasher = Hasher::new(expected.algorithm())?;
        Ok(VerifyingReader {
            inner,
            hasher: Some(hasher),
            expected,
            read: 0,
        })
    }

    /// Bytes read through so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if n == 0 {
            if let Some(h) = self.hasher.take() {
                let actual = h.finish();
                if actual != self.expected {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "content of {} hashes to {actual}; refusing it",
                            self.expected
                        ),
                    ));
                }
            }
        } else if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Convenience: write `data` through a blob writer from any reader.
pub fn copy_to_blob(store: &Store, mut r: impl Read, expected: Option<&Digest>) -> Result<Digest> {
    let mut w = store.blob_writer()?;
    let p = w.path.clone();
    io::copy(&mut r, &mut w).map_err(|e| StoreError::io(p, e))?;
    w.commit(expected, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_roundtrip_and_verify() {
        let dir = tempfile_dir();
        let s = Store::open(&dir).unwrap();
        let d = s.put_blob(b"hello", None).unwrap();
        assert_eq!(
            d.to_string(),
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(s.read_blob(&d).unwrap(), b"hello");
        let wrong = Digest::sha256_of(b"other");
        assert!(matches!(
            s.put_blob(b"hello", Some(&wrong)),
            Err(StoreError::DigestMismatch { .. })
        ));
        assert!(!s.has_blob(&wrong));
        // Nothing left in tmp after a refused blob.
        assert_eq!(fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
        fs::write(s.blob_path(&d), b"jello").unwrap();
        assert!(matches!(s.read_blob(&d), Err(StoreError::BlobCorrupt(_))));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn migrations_run_once() {
        let dir = tempfile_dir();
        let s = Store::open(&dir).unwrap();
        let steps = [
            "CREATE TABLE t (a INTEGER)",
            "ALTER TABLE t ADD COLUMN b TEXT",
        ];
        s.migrate("x", &steps).unwrap();
        s.migrate("x", &steps).unwrap();
        let s2 = Store::open(&dir).unwrap();
        s2.migrate("x", &steps).unwrap();
        s2.db()
            .execute("INSERT INTO t(a, b) VALUES (1, 'x')", [])
            .unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let p =
            std::env::temp_dir().join(format!("berth-store-test-{:016x}", rand::random::<u64>()));
        fs::create_dir_all(&p).unwrap();
        p
    }
}
