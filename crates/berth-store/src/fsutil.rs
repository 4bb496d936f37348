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

/// Mount points strictly below `dir` in this process's mount namespace (from
/// `/proc/self/mountinfo`), deepest first, so that unmounting them in order works.
pub fn mounts_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out: Vec<std::path::PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| std::path::PathBuf::from(unescape_mountinfo(m)))
        .filter(|m| m.starts_with(dir) && m != dir)
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    out
}

/// Undo mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Detach every mount below `dir` (deepest first; see [`mounts_under`]). Returns the mount
/// points that could not be unmounted.
pub fn unmount_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut failed = Vec::new();
    for m in mounts_under(dir) {
        // Stacked mounts on one point: detach until it is no longer listed (bounded).
        for _ in 0..8 {
            if let Err(e) = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH) {
                if e != rustix::io::Errno::INVAL && e != rustix::io::Errno::NOENT {
                    failed.push(m.clone());
                }
                break;
            }
        }
    }
    failed
}

#[cfg(test)]
mod mount_tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/a\040b/c\134d"), "/a b/c\\d");
        assert_eq!(unescape_mountinfo(r"/plain\04"), r"/plain\04");
    }
}
