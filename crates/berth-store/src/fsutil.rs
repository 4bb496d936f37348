//! Small filesystem helpers for crash-safe writes.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::{Result, StoreError};

/// fsync a directory so that a rename inside it is durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(|e| StoreError::io(dir, e))?;
    f.sync_all().map_err(|e| StoreError::io(dir, e))
}

/// Replace `path` atomically and durably with `data`: sibling temp file, fsync, rename,
/// fsync of the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    replace(path, data, true)
}

/// Replace `path` with `data` by writing a sibling and renaming it, without fsync: for files
/// that only matter while this boot lasts (runtime state, generated /etc/hosts, OCI specs
/// that are rewritten on every start). Readers never see a partial file.
pub fn write_replace(path: &Path, data: &[u8]) -> Result<()> {
    replace(path, data, false)
}

fn replace(path: &Path, data: &[u8], durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| StoreError::io(&tmp, e))?;
    f.write_all(data).map_err(|e| StoreError::io(&tmp, e))?;
    if durable {
        f.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
    }
    drop(f);
    fs::rename(&tmp, path).map_err(|e| StoreError::io(path, e))?;
    if durable {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Whether a process with this pid exists (zombies count as alive).
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    Path::new(&format!("/proc/{pid}")).exists()
}
