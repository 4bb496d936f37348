//! berth's own executable, as a path other processes can run.
//!
//! berth runs itself for much of its work (a container's monitor, health probes, the embedded
//! DNS server, `berth-supervise` next to it, the API service's `exec`). The kernel's name for
//! the running program (`/proc/self/exe`, [`std::env::current_exe`]) becomes
//! `/usr/bin/berth (deleted)` once the file is replaced, as `cargo build`, `install` or a
//! package upgrade do (a new file renamed over the old one), and that path does not exist:
//! a long-running `berth system service` would then fail every container start. [`path`]
//! gives the path on disk instead, where the new binary now is: what a user who upgraded
//! berth expects the running service to use.

use std::path::{Path, PathBuf};

/// The suffix Linux appends to `/proc/PID/exe` when the program's file was unlinked.
const DELETED: &str = " (deleted)";

/// Errors finding berth's executable.
#[derive(Debug, thiserror::Error)]
pub enum ExeError {
    /// The kernel could not tell which program runs (`/proc` not mounted).
    #[error("cannot find the berth executable: {0}; is /proc mounted?")]
    Unknown(#[source] std::io::Error),
    /// The binary was removed and nothing was installed at its path again.
    #[error("the berth executable {0} was removed; reinstall berth or restart the service")]
    Removed(PathBuf),
}

/// The path of the running berth executable: [`std::env::current_exe`], except that when
/// the file was replaced or removed (the kernel then names it `PATH (deleted)`) the path
/// without that suffix is returned if a file is there again (the upgraded binary).
///
/// # Errors
/// [`ExeError::Unknown`] when the kernel cannot say; [`ExeError::Removed`] when the binary
/// was deleted and no file took its place.
pub fn path() -> Result<PathBuf, ExeError> {
    resolve(std::env::current_exe().map_err(ExeError::Unknown)?)
}

/// [`path`]'s rule for the kernel's name `exe` of the program.
fn resolve(exe: PathBuf) -> Result<PathBuf, ExeError> {
    if exe.is_file() {
        return Ok(exe);
    }
    let Some(stripped) = exe.to_str().and_then(|s| s.strip_suffix(DELETED)) else {
        return Ok(exe);
    };
    let on_disk = Path::new(stripped);
    if on_disk.is_file() {
        Ok(on_disk.to_path_buf())
    } else {
        Err(ExeError::Removed(on_disk.to_path_buf()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_binary_is_found_at_its_path_again() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("berth");
        std::fs::write(&bin, b"new").unwrap();
        let deleted = PathBuf::from(format!("{}{DELETED}", bin.display()));
        assert_eq!(resolve(deleted.clone()).unwrap(), bin);
        assert_eq!(resolve(bin.clone()).unwrap(), bin);
        // A file really named `… (deleted)` is itself.
        std::fs::write(&deleted, b"odd").unwrap();
        assert_eq!(resolve(deleted.clone()).unwrap(), deleted);
        std::fs::remove_file(&deleted).unwrap();
        std::fs::remove_file(&bin).unwrap();
        assert!(matches!(resolve(deleted), Err(ExeError::Removed(p)) if p == bin));
    }

    #[test]
    fn the_test_binary_itself_is_found() {
        assert!(path().unwrap().is_file());
    }
}
