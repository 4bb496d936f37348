//! Exit codes of `--rm` containers, kept briefly after their row is gone so that `wait`
//! (and other waiters) report the real status, as Docker does. One small file per container
//! under `run/exits/`, written by the monitor before it deletes the row; old ones are swept.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long an exit code is kept for waiters.
const KEEP: Duration = Duration::from_secs(300);

fn dir(root: &Path) -> PathBuf {
    root.join("run").join("exits")
}

/// Record the exit `code` of container `id` (best effort).
pub fn record(root: &Path, id: &str, code: i32) {
    let d = dir(root);
    let _ = std::fs::create_dir_all(&d);
    let _ = berth_store::write_replace(&d.join(id), code.to_string().as_bytes());
}

/// The recorded exit code of container `id`, if any.
pub fn get(root: &Path, id: &str) -> Option<i32> {
    std::fs::read_to_string(dir(root).join(id))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Remove exit codes older than a few minutes.
pub fn sweep(root: &Path) {
    let Ok(rd) = std::fs::read_dir(dir(root)) else {
        return;
    };
    for e in rd.flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .map(|t| t.elapsed().unwrap_or_default() > KEEP)
            .unwrap_or(false);
        if old {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
