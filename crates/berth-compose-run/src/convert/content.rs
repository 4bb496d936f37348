//! Inline configs (`configs.NAME.content`, compose-spec): their text lives in a host file
//! under the store root, `ROOT/compose-content/SHA256`, bind-mounted read-only into the
//! containers that use it; [`sweep`] removes the files no container uses any more.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use berth_store::Store;
use sha2::Digest as _;

use crate::{Result, RunError};

/// Largest inline config, in bytes.
const MAX_INLINE_CONTENT: usize = 16 << 20;

/// Files (and temporary files of writers) younger than this are kept by [`sweep`]: a
/// concurrent `up` writes (or touches) the file before it creates the container using it.
const KEEP_YOUNG: Duration = Duration::from_secs(60);

/// Directory of the content files under the store root.
fn dir(root: &Path) -> std::path::PathBuf {
    root.join("compose-content")
}

/// The host file holding an inline config's `content`, for a read-only bind mount:
/// `ROOT/compose-content/SHA256` (content-addressed, so equal contents share one file;
/// written to a temporary name, fsynced and renamed, mode 0444; an existing one gets a new
/// modification time so that a concurrent [`sweep`] keeps it). Returns its path as a string.
///
/// Errors: [`RunError::Invalid`] above 16 MiB; [`RunError::Io`] when the file cannot be
/// written.
pub(crate) fn file_for(root: &Path, content: &str) -> Result<String> {
    if content.len() > MAX_INLINE_CONTENT {
        return Err(RunError::Invalid(format!(
            "an inline config is {} bytes, more than {MAX_INLINE_CONTENT}: use a file",
            content.len()
        )));
    }
    let dir = dir(root);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RunError::Io { path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let path = dir.join(hex::encode(sha2::Sha256::digest(content.as_bytes())));
    let touched = std::fs::File::open(&path)
        .and_then(|f| f.set_modified(SystemTime::now()))
        .is_ok();
    if !touched {
        let tmp = dir.join(format!(
            ".tmp-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(content.as_bytes()).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o444)).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
    }
    Ok(path.to_string_lossy().into_owned())
}

/// Remove the content files (and leftover temporary files of killed writers) that no
/// container of the store binds and that are older than a minute. Returns how many went.
/// Called by `down` once the project's containers are gone; best effort.
///
/// Errors: [`RunError`] when the store's containers cannot be listed.
pub fn sweep(store: &Store) -> Result<usize> {
    let dir = dir(store.root());
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(0);
    };
    let used: std::collections::HashSet<std::path::PathBuf> =
        berth_engine::ops::reconciled_rows(store)?
            .iter()
            .flat_map(|c| c.config.binds.iter())
            .map(|b| std::path::PathBuf::from(&b.source))
            .filter(|p| p.starts_with(&dir))
            .collect();
    let now = SystemTime::now();
    let mut removed = 0;
    for e in entries.flatten() {
        let path = e.path();
        let young = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).unwrap_or_default() < KEEP_YOUNG);
        if young || used.contains(&path) {
            continue;
        }
        if std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_contents_share_one_file_and_unused_old_ones_are_swept() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let a = file_for(t.path(), "x=1\n").unwrap();
        assert_eq!(a, file_for(t.path(), "x=1\n").unwrap());
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "x=1\n");
        let b = file_for(t.path(), "y=2\n").unwrap();
        // Young files stay; once old and unused they go.
        assert_eq!(sweep(&store).unwrap(), 0);
        let old = SystemTime::now() - Duration::from_secs(3600);
        for p in [&a, &b] {
            std::fs::File::open(p).unwrap().set_modified(old).unwrap();
        }
        assert_eq!(sweep(&store).unwrap(), 2);
        assert!(!Path::new(&a).exists() && !Path::new(&b).exists());
        assert!(file_for(t.path(), &"z".repeat(MAX_INLINE_CONTENT + 1)).is_err());
    }
}
