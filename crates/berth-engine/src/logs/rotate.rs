//! Size-based rotation of a container's json-file log (`max-size`, `max-file`, `compress`):
//! `PATH` is renamed to `PATH.1`, older files shift up to `PATH.(max-file - 1)`, and rotated
//! files are gzipped to `PATH.N.gz` when asked; the same scheme as `berth-supervise`'s.

use std::fs::File;
use std::path::{Path, PathBuf};

/// Size-based rotation settings of a container's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate once the file holds this many bytes.
    pub max_size: u64,
    /// Files kept, the current one included (1 = truncate in place).
    pub max_file: u64,
    /// gzip rotated files.
    pub compress: bool,
}

/// Environment variable handing the rotation settings to `berth-supervise`.
pub const ROTATE_ENV: &str = "BERTH_LOG_ROTATE";

impl Rotation {
    /// The value of [`ROTATE_ENV`] for the log at `path`.
    pub fn supervise_env(&self, path: &Path) -> String {
        format!(
            "{}:{}:{}:{}",
            self.max_size,
            self.max_file,
            u8::from(self.compress),
            path.display()
        )
    }

    /// Rotate `f` (the log at `path`) if it is full; `f` then writes the fresh file. The same
    /// scheme as `berth-supervise`'s.
    ///
    /// Errors: the size of `f` cannot be read, it cannot be truncated, `path` cannot be renamed to
    /// `PATH.1` or the fresh file cannot be created (shifting older files is best effort).
    pub fn maybe_rotate(&self, f: &mut File, path: &Path) -> std::io::Result<()> {
        if f.metadata()?.len() < self.max_size {
            return Ok(());
        }
        if self.max_file < 2 {
            return f.set_len(0);
        }
        for i in (1..self.max_file - 1).rev() {
            for gz in [false, true] {
                let _ = std::fs::rename(rotated_name(path, i, gz), rotated_name(path, i + 1, gz));
            }
        }
        let _ = std::fs::remove_file(rotated_name(path, 1, true));
        std::fs::rename(path, rotated_name(path, 1, false))?;
        *f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        if self.compress {
            compress_rotated(path);
        }
        Ok(())
    }
}

/// `PATH.N` or `PATH.N.gz`.
pub fn rotated_name(path: &Path, n: u64, gz: bool) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(format!(".{n}{}", if gz { ".gz" } else { "" }));
    PathBuf::from(s)
}

/// gzip every rotated `PATH.N` that is not compressed yet (`PATH.N.gz`, written to a
/// temporary name and renamed, then `PATH.N` removed). Errors are logged, not returned.
pub fn compress_rotated(path: &Path) {
    for n in 1..=MAX_ROTATED {
        let plain = rotated_name(path, n, false);
        if !plain.exists() {
            continue;
        }
        let gz = rotated_name(path, n, true);
        let mut tmp = gz.as_os_str().to_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let r = (|| -> std::io::Result<()> {
            let mut input = File::open(&plain)?;
            let out = File::create(&tmp)?;
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
            std::io::copy(&mut input, &mut enc)?;
            enc.finish()?.sync_all()?;
            std::fs::rename(&tmp, &gz)?;
            std::fs::remove_file(&plain)
        })();
        if let Err(e) = r {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!("compressing {}: {e}", plain.display());
        }
    }
}

/// Highest rotated file number looked at.
pub(super) const MAX_ROTATED: u64 = 100;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::{append, read_all};

    #[test]
    fn rotation_keeps_files_bounded() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("ctr.log");
        let r = Rotation {
            max_size: 100,
            max_file: 3,
            compress: true,
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        for i in 0..50 {
            r.maybe_rotate(&mut f, &path).unwrap();
            append(&mut f, "stdout", format!("line {i}\n").as_bytes()).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["ctr.log", "ctr.log.1.gz", "ctr.log.2.gz"]);
        let all = read_all(&path).unwrap();
        assert_eq!(all.last().unwrap().log, "line 49\n");
        // Consecutive lines, the oldest ones rotated away.
        let first: usize = all[0].log[5..].trim().parse().unwrap();
        for (k, e) in all.iter().enumerate() {
            assert_eq!(e.log, format!("line {}\n", first + k));
        }
        assert!(first > 0);
    }
}
