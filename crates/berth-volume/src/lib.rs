//! Volumes: named and anonymous directories in the store that outlive their containers.
//!
//! This crate owns two tables (component `volume`):
//! * `volumes`: one row per volume (name, driver, driver options, labels, creation time,
//!   whether it is anonymous);
//! * `volume_refs`: which container uses which volume, so a volume in use cannot be removed.
//!
//! Data lives in `volumes/<name>/_data` under the store root (the "local" driver, as Docker
//! names it). With driver options (`type`, `device`, `o`) the `_data` directory is a mount point
//! that [`VolumeStore::mount`] fills on first use (tmpfs, a bind of a host directory, nfs, …).
//!
//! Crash safety: a volume's directory is made in `tmp/` and renamed into `volumes/` inside the
//! same write transaction that inserts its row; removal deletes the row first and then moves the
//! directory back to `tmp/` (swept if the remover dies). A directory in `volumes/` without a row
//! is an orphan of a crash and is discarded by the next create of that name or by
//! [`VolumeStore::sweep`]. References are added before a container row exists and dropped after
//! it is gone, so a crash can only leave a reference too many; [`VolumeStore::forget_refs_except`]
//! removes references of containers that no longer exist.

mod copyup;
mod driver;
mod refs;
mod remove;
#[cfg(test)]
mod tests;
mod view;

pub use copyup::copy_up;
pub use view::{volume_row, VOLUMES_HEADERS, VOLUMES_TABLE};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_store::rusqlite::{self, params, OptionalExtension};
use berth_store::Store;
use serde::Serialize;

/// Errors of the volume component.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A store-level failure (I/O in the store, database).
    #[error(transparent)]
    Store(#[from] berth_store::StoreError),
    /// A metadata database failure.
    #[error("metadata database: {0}")]
    Db(#[from] rusqlite::Error),
    /// A filesystem operation failed on `path`.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// No volume has this name.
    #[error("no such volume: {0}")]
    NotFound(String),
    /// The volume is used by containers (their ids).
    #[error("volume {name} is in use by container {}: remove the container first (berth rm)", .users.join(", "))]
    InUse {
        /// The volume's name.
        name: String,
        /// Ids of the containers using it.
        users: Vec<String>,
    },
    /// The name is not a valid volume name.
    #[error("invalid volume name {0:?}: use at least 2 characters of [a-zA-Z0-9_.-], starting with a letter or digit")]
    InvalidName(String),
    /// Only the `local` driver exists.
    #[error("volume driver {0:?} is not available: only \"local\" is supported")]
    UnknownDriver(String),
    /// A driver option is not understood or inconsistent.
    #[error("invalid volume option: {0}")]
    InvalidOption(String),
    /// The volume exists with a different driver.
    #[error(
        "volume {name} already exists with driver {driver:?}; remove it or use the same driver"
    )]
    DriverConflict {
        /// The volume's name.
        name: String,
        /// Its existing driver.
        driver: String,
    },
    /// Mounting the volume's filesystem failed.
    #[error("mounting volume {name}: {msg}")]
    Mount {
        /// The volume's name.
        name: String,
        /// What went wrong, and what to do.
        msg: String,
    },
}

impl VolumeError {
    fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        VolumeError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result type of this crate.
pub type Result<T, E = VolumeError> = std::result::Result<T, E>;

/// The label Docker puts on anonymous volumes (`volume prune` without `--all` removes only
/// these).
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

const MIGRATIONS: &[&str] = &["CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    driver TEXT NOT NULL,
    options TEXT NOT NULL,
    labels TEXT NOT NULL,
    created TEXT NOT NULL,
    anonymous INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS volume_refs (
    volume TEXT NOT NULL REFERENCES volumes(name),
    container TEXT NOT NULL,
    since INTEGER NOT NULL,
    PRIMARY KEY (volume, container)
);"];

/// One volume, as `volume inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Volume {
    /// Its name (64 hex digits for anonymous volumes).
    pub name: String,
    /// Always `local`.
    pub driver: String,
    /// Driver options (`type`, `device`, `o`).
    pub options: BTreeMap<String, String>,
    /// User labels (anonymous volumes carry [`ANONYMOUS_LABEL`]).
    pub labels: BTreeMap<String, String>,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Whether it was created for a container's `-v /path` or an image `VOLUME`.
    pub anonymous: bool,
    /// The host directory holding its data (`<root>/volumes/<name>/_data`).
    pub mountpoint: PathBuf,
}

impl Volume {
    /// Docker's inspect document of a volume (`docker volume inspect`, `GET /volumes/{name}`):
    /// `CreatedAt`, `Driver`, `Labels`, `Mountpoint`, `Name`, `Options`, `Scope`.
    pub fn inspect_json(&self) -> serde_json::Value {
        serde_json::json!({
            "CreatedAt": self.created,
            "Driver": self.driver,
            "Labels": self.labels,
            "Mountpoint": self.mountpoint,
            "Name": self.name,
            "Options": self.options,
            "Scope": "local",
        })
    }
}

/// What to create.
#[derive(Debug, Clone, Default)]
pub struct CreateVolume {
    /// Name; `None` makes an anonymous volume with a random 64-hex name.
    pub name: Option<String>,
    /// Driver (`None` or `local`).
    pub driver: Option<String>,
    /// Driver options (`type`, `device`, `o`).
    pub options: BTreeMap<String, String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// Which volumes [`VolumeStore::prune`] may remove.
#[derive(Debug, Clone, Default)]
pub struct PruneFilter {
    /// Also named volumes (`prune --all`); otherwise only anonymous ones.
    pub all: bool,
    /// `label=KEY` or `label=KEY=VALUE` conditions, all of which must hold.
    pub labels: Vec<(String, Option<String>)>,
    /// `label!=KEY[=VALUE]` conditions, none of which may hold.
    pub not_labels: Vec<(String, Option<String>)>,
}

/// A removed volume and the bytes it held.
#[derive(Debug, Clone)]
pub struct Pruned {
    /// Its name.
    pub name: String,
    /// Bytes its data occupied (apparent sizes of regular files).
    pub bytes: u64,
}

/// The volumes of one store.
#[derive(Debug)]
pub struct VolumeStore<'a> {
    store: &'a Store,
}

/// Whether `name` is a valid volume name (Docker's `[a-zA-Z0-9][a-zA-Z0-9_.-]+`).
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b.len() <= 255
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn random_name() -> String {
    let a: u128 = rand::random();
    let b: u128 = rand::random();
    format!("{a:032x}{b:032x}")
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

impl<'a> VolumeStore<'a> {
    /// Open the volume tables of `store`, creating them if needed.
    pub fn open(store: &'a Store) -> Result<VolumeStore<'a>> {
        store.migrate("volume", MIGRATIONS)?;
        Ok(VolumeStore { store })
    }

    fn dir(&self) -> PathBuf {
        self.store.root().join("volumes")
    }

    fn volume_dir(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// The data directory of volume `name` (whether or not it exists).
    pub fn data_path(&self, name: &str) -> PathBuf {
        self.volume_dir(name).join("_data")
    }

    fn row_to_volume(&self, r: &rusqlite::Row<'_>) -> rusqlite::Result<Volume> {
        let name: String = r.get(0)?;
        let opts: String = r.get(2)?;
        let labels: String = r.get(3)?;
        Ok(Volume {
            mountpoint: self.data_path(&name),
            name,
            driver: r.get(1)?,
            options: serde_json::from_str(&opts).unwrap_or_default(),
            labels: serde_json::from_str(&labels).unwrap_or_default(),
            created: r.get(4)?,
            anonymous: r.get::<_, i64>(5)? != 0,
        })
    }

    /// The volume called `name`; [`VolumeError::NotFound`] if there is none.
    pub fn get(&self, name: &str) -> Result<Volume> {
        self.find(name)?
            .ok_or_else(|| VolumeError::NotFound(name.to_string()))
    }

    /// The volume called `name`, if it exists.
    pub fn find(&self, name: &str) -> Result<Option<Volume>> {
        Ok(self
            .store
            .db()
            .query_row(
                "SELECT name, driver, options, labels, created, anonymous FROM volumes WHERE name = ?1",
                [name],
                |r| self.row_to_volume(r),
            )
            .optional()?)
    }

    /// Every volume, sorted by name.
    pub fn list(&self) -> Result<Vec<Volume>> {
        let mut st = self.store.db().prepare(
            "SELECT name, driver, options, labels, created, anonymous FROM volumes ORDER BY name",
        )?;
        let rows = st.query_map([], |r| self.row_to_volume(r))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Create a volume. Creating an existing named volume again returns it unchanged (as
    /// Docker does), unless the driver differs. Returns the volume and whether it is new.
    ///
    /// Errors: invalid name, unknown driver or option, I/O in the store.
    pub fn create(&self, req: &CreateVolume) -> Result<(Volume, bool)> {
        let (v, new) = self.create_and_ref(req, None)?;
        if new {
            berth_events::record(
                self.store,
                "volume",
                "create",
                &v.name,
                &[("driver", &v.driver)],
            );
        }
        Ok((v, new))
    }

    /// Like [`create`](Self::create), and record in the same transaction that `container`
    /// uses the volume (existing or new).
    pub fn acquire(&self, req: &CreateVolume, container: &str) -> Result<(Volume, bool)> {
        self.create_and_ref(req, Some(container))
    }

    fn create_and_ref(
        &self,
        req: &CreateVolume,
        container: Option<&str>,
    ) -> Result<(Volume, bool)> {
        let anonymous = req.name.is_none();
        let name = req.name.clone().unwrap_or_else(random_name);
        if !valid_name(&name) {
            return Err(VolumeError::InvalidName(name));
        }
        let driver = req.driver.clone().unwrap_or_else(|| "local".into());
        if driver != "local" {
            return Err(VolumeError::UnknownDriver(driver));
        }
        driver::validate(&req.options)?;
        let mut labels = req.labels.clone();
        if anonymous {
            labels.insert(ANONYMOUS_LABEL.into(), String::new());
        }

        // Data first: the directory is prepared in tmp/ (swept if we die) ...
        let tmp = berth_store::tmp_path(self.store.root(), "volume");
        let data = tmp.join("_data");
        std::fs::create_dir_all(&data).map_err(|e| VolumeError::io(&data, e))?;
        set_mode(&tmp, 0o701)?;
        set_mode(&data, 0o755)?;
        let vols = self.dir();
        std::fs::create_dir_all(&vols).map_err(|e| VolumeError::io(&vols, e))?;

        // ... then, holding the database's write lock, published together with its row.
        let tx = self.store.db().unchecked_transaction()?;
        let existing: Option<String> = tx
            .query_row("SELECT driver FROM volumes WHERE name = ?1", [&name], |r| {
                r.get(0)
            })
            .optional()?;
        let created = match existing {
            Some(d) => {
                if req.driver.is_some() && d != driver {
                    drop(tx);
                    let _ = std::fs::remove_dir_all(&tmp);
                    return Err(VolumeError::DriverConflict { name, driver: d });
                }
                let _ = std::fs::remove_dir_all(&tmp);
                false
            }
            None => {
                let target = self.volume_dir(&name);
                if target.exists() {
                    // An orphan of a crash (no row): its data was already deleted.
                    self.discard_dir(&name);
                }
                std::fs::rename(&tmp, &target).map_err(|e| VolumeError::io(&target, e))?;
                let r = tx.execute(
                    "INSERT INTO volumes (name, driver, options, labels, created, anonymous)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        name,
                        driver,
                        serde_json::to_string(&req.options).unwrap_or_else(|_| "{}".into()),
                        serde_json::to_string(&labels).unwrap_or_else(|_| "{}".into()),
                        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        i64::from(anonymous),
                    ],
                );
                if let Err(e) = r {
                    drop(tx);
                    self.discard_dir(&name);
                    return Err(e.into());
                }
                true
            }
        };
        if let Some(c) = container {
            tx.execute(
                "INSERT OR IGNORE INTO volume_refs (volume, container, since) VALUES (?1, ?2, ?3)",
                params![name, c, now_secs()],
            )?;
        }
        if let Err(e) = tx.commit() {
            if created {
                self.discard_dir(&name);
            }
            return Err(e.into());
        }
        if created {
            let _ = berth_store::fsync_dir(&vols);
        }
        Ok((self.get(&name)?, created))
    }

    /// Move a volume directory out of `volumes/` (into swept `tmp/`) and delete it.
    fn discard_dir(&self, name: &str) {
        let dir = self.volume_dir(name);
        let data = dir.join("_data");
        driver::unmount_all(&data);
        let trash = berth_store::tmp_path(self.store.root(), "volume-rm");
        if std::fs::rename(&dir, &trash).is_ok() {
            if let Err(e) = std::fs::remove_dir_all(&trash) {
                tracing::warn!("removing {}: {e}", trash.display());
            }
        }
    }

    /// Make the volume's data available at its mountpoint (mounting it if it has driver
    /// options and is not mounted yet). Returns the mountpoint.
    pub fn mount(&self, v: &Volume) -> Result<PathBuf> {
        let data = self.data_path(&v.name);
        if !data.is_dir() {
            // The directory went missing (deleted by hand): give the volume a fresh one.
            std::fs::create_dir_all(&data).map_err(|e| VolumeError::io(&data, e))?;
        }
        if !v.options.is_empty() {
            driver::mount(&v.name, &v.options, &data)?;
        }
        Ok(data)
    }

    /// Whether the volume's data directory has no entries.
    pub fn is_empty(&self, v: &Volume) -> bool {
        std::fs::read_dir(&v.mountpoint)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false)
    }

    /// Bytes of data in volume `v` (apparent sizes of its regular files).
    pub fn size(&self, v: &Volume) -> u64 {
        dir_size(&v.mountpoint)
    }
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| VolumeError::io(p, e))
}

/// Total apparent size of the regular files under `p` (not following symlinks, staying on
/// one filesystem is not needed: volumes hold no mounts of their own).
fn dir_size(p: &Path) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() {
                total = total.saturating_add(m.len());
            }
        }
    }
    total
}
