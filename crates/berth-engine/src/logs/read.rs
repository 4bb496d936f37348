//! Reading a container's log for `logs` and the API: rotated files first (oldest first,
//! gzipped ones decompressed), filters (`--since`, `--until`, `--tail`), and following the
//! log across rotations.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::rotate::{rotated_name, MAX_ROTATED};
use super::{bad_opt, Entry};
use crate::Result;

/// Options for [`print()`].
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Keep printing new output until the container stops (`-f`).
    pub follow: bool,
    /// Only the last N lines (`--tail`).
    pub tail: Option<usize>,
    /// Prefix each line with its time (`-t`).
    pub timestamps: bool,
    /// Only entries at or after this time (`--since`).
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    /// Only entries before this time (`--until`).
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Show extra attributes (`--details`; berth records none, so a space, as Docker).
    pub details: bool,
}

/// Parse `--since`/`--until`: RFC 3339 (`2024-01-02T03:04:05Z`, or a date), a Unix time
/// (`1700000000[.5]`), or a duration before now (`10m`, `1h30m`).
///
/// Errors: [`crate::EngineError::InvalidArgument`] naming `flag` when `s` is none of these.
pub fn parse_time(flag: &str, s: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
        return Ok(t.and_utc());
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            // Whole seconds and nanoseconds of a finite, non-negative value.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let (w, n) = (secs.trunc() as i64, (secs.fract() * 1e9) as u32);
            if let Some(t) = DateTime::from_timestamp(w, n) {
                return Ok(t);
            }
        }
    }
    if let Ok(ns) = crate::health::parse_duration(flag, s) {
        return Ok(Utc::now() - chrono::Duration::nanoseconds(ns));
    }
    Err(bad_opt(format!(
        "invalid {flag} {s:?}: use a time (2024-01-02T15:04:05Z), a Unix timestamp or a duration (10m)"
    )))
}

/// The files of a log, oldest first: `PATH.N[.gz]` … `PATH.1[.gz]` (the current `PATH` is not
/// included).
fn rotated_files(path: &Path) -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    for n in (1..=MAX_ROTATED).rev() {
        let gz = rotated_name(path, n, true);
        if gz.exists() {
            out.push((gz, true));
            continue;
        }
        let plain = rotated_name(path, n, false);
        if plain.exists() {
            out.push((plain, false));
        }
    }
    out
}

struct Printer<'a> {
    opts: &'a LogOptions,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    /// The last entry printed did not end its line (a partial message).
    open_line: bool,
}

impl Printer<'_> {
    /// Whether the entry is inside --since/--until.
    fn wanted(&self, e: &Entry) -> bool {
        if self.opts.since.is_none() && self.opts.until.is_none() {
            return true;
        }
        let Ok(t) = chrono::DateTime::parse_from_rfc3339(&e.time) else {
            return true;
        };
        let t = t.with_timezone(&chrono::Utc);
        self.opts.since.is_none_or(|s| t >= s) && self.opts.until.is_none_or(|u| t < u)
    }

    fn emit(&mut self, line: &str) -> std::io::Result<()> {
        let Ok(e) = serde_json::from_str::<Entry>(line) else {
            return Ok(());
        };
        if !self.wanted(&e) {
            return Ok(());
        }
        let w: &mut dyn Write = if e.stream == "stderr" {
            &mut *self.err
        } else {
            &mut *self.out
        };
        if self.opts.timestamps {
            write!(w, "{} ", e.time)?;
        }
        if self.opts.details {
            w.write_all(b" ")?;
        }
        self.open_line = !e.log.ends_with('\n');
        w.write_all(e.log.as_bytes())
    }

    /// Output was lost (the follower fell behind the rotation): end a partial line so the
    /// next one does not continue it.
    fn gap(&mut self) -> std::io::Result<()> {
        if std::mem::take(&mut self.open_line) {
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }
}

/// Read the complete lines of `r` (a trailing partial line is left unread: its length is
/// returned so a follower can rewind).
fn read_lines(r: &mut dyn BufRead, lines: &mut Vec<String>) -> std::io::Result<usize> {
    let mut buf = String::new();
    loop {
        buf.clear();
        let n = r.read_line(&mut buf)?;
        if n == 0 {
            return Ok(0);
        }
        if !buf.ends_with('\n') {
            return Ok(n);
        }
        lines.push(buf.trim_end_matches('\n').to_string());
    }
}

/// A log file being read: complete lines are handed out, an incomplete last line (the writer
/// is in the middle of it) waits for its end.
struct Tail {
    file: File,
    pending: Vec<u8>,
}

impl Tail {
    fn new(file: File) -> Tail {
        Tail {
            file,
            pending: Vec::new(),
        }
    }

    /// Append the complete lines written since the last call to `out`.
    fn read(&mut self, out: &mut Vec<String>) -> std::io::Result<()> {
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = match self.file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.pending.extend_from_slice(&buf[..n]);
        }
        if let Some(end) = self.pending.iter().rposition(|b| *b == b'\n') {
            let rest = self.pending.split_off(end + 1);
            let done = std::mem::replace(&mut self.pending, rest);
            out.extend(String::from_utf8_lossy(&done).lines().map(str::to_string));
        }
        Ok(())
    }
}

/// After the file with inode `ino` (renamed to `PATH.k`), the file written after it:
/// `PATH.(k-1)`, …, `PATH`. Compressed ones in between are printed whole; the first plain one
/// is returned open. `None` when `ino` is no longer among the rotated files.
fn next_file(path: &Path, ino: u64, p: &mut Printer<'_>) -> std::io::Result<Option<File>> {
    let Some(k) = (1..=MAX_ROTATED)
        .find(|k| std::fs::metadata(rotated_name(path, *k, false)).is_ok_and(|m| m.ino() == ino))
    else {
        return Ok(None);
    };
    for j in (0..k).rev() {
        let plain = if j == 0 {
            path.to_path_buf()
        } else {
            rotated_name(path, j, false)
        };
        if let Ok(f) = File::open(&plain) {
            return Ok(Some(f));
        }
        if let Ok(f) = File::open(rotated_name(path, j, true)) {
            let mut lines = Vec::new();
            let _ = read_lines(
                &mut BufReader::new(flate2::read::GzDecoder::new(f)),
                &mut lines,
            );
            for l in &lines {
                p.emit(l)?;
            }
        }
    }
    Ok(None)
}

/// One read of the whole log for [`copy`]: the current file (left open to follow) and every
/// line so far, oldest first; `false` when the file opened first was rotated away unseen
/// during the pass (its lines may then stand after newer ones).
fn first_pass(path: &Path) -> std::io::Result<(Option<Tail>, Vec<String>, bool)> {
    // The current file is opened first: rotated files read afterwards may then include it
    // (renamed meanwhile), which is detected by its inode and not read twice.
    let mut cur = match File::open(path) {
        Ok(f) => Some(Tail::new(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let cur_ino = match &cur {
        Some(t) => Some(t.file.metadata()?.ino()),
        None => None,
    };
    let mut lines: Vec<String> = Vec::new();
    // Set when the file opened first was rotated meanwhile: its lines then go where it now
    // stands among the rotated files (files rotated after it are newer), and the file at PATH
    // is opened afresh afterwards.
    let mut cur_rotated = false;
    for (f, gz) in rotated_files(path) {
        let Ok(file) = File::open(&f) else { continue };
        if !gz && Some(file.metadata()?.ino()) == cur_ino {
            if let Some(t) = cur.as_mut() {
                t.read(&mut lines)?;
            }
            cur_rotated = true;
            continue;
        }
        let mut r: Box<dyn BufRead> = if gz {
            Box::new(BufReader::new(flate2::read::GzDecoder::new(file)))
        } else {
            Box::new(BufReader::new(file))
        };
        // A damaged rotated file ends its part early; the rest is still shown.
        let _ = read_lines(&mut *r, &mut lines);
    }
    if cur_rotated {
        // A rotation between these opens skips that file (a gap), never repeats one: the file
        // now at PATH is newer than every rotated file read above.
        cur = match File::open(path) {
            Ok(f) => Some(Tail::new(f)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
    }
    let consistent = cur_rotated
        || cur_ino.is_none()
        || std::fs::metadata(path).is_ok_and(|m| Some(m.ino()) == cur_ino);
    if let Some(t) = cur.as_mut() {
        t.read(&mut lines)?;
    }
    Ok((cur, lines, consistent))
}

/// Print a log (rotated files first, oldest first) to stdout/stderr. With `follow`, keep
/// printing until `running()` is false and everything written has been shown, following the
/// log across rotations (a writer that rotates faster than the follower polls can make it
/// skip whole files, never repeat or reorder lines).
///
/// Errors: as [`copy`].
pub fn print(
    path: &Path,
    opts: &LogOptions,
    running: &mut dyn FnMut() -> bool,
) -> std::io::Result<()> {
    copy(
        path,
        opts,
        running,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr(),
    )
}

/// [`print()`] into the writers `out` (the `stdout` entries) and `err` (the `stderr` entries):
/// the API's `logs` frames each into Docker's multiplexed stream. Errors: the first read or
/// write error (a closed connection ends a follow).
pub fn copy(
    path: &Path,
    opts: &LogOptions,
    running: &mut dyn FnMut() -> bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    let mut p = Printer {
        opts,
        out,
        err,
        open_line: false,
    };
    // A file rotated twice while the rotated files are read would put its lines after newer
    // ones: such a pass is detected (the file opened first left PATH without being seen among
    // the rotated files) and read again, a bounded number of times.
    let mut attempt = 0;
    let (mut cur, mut lines) = loop {
        attempt += 1;
        let (cur, lines, consistent) = first_pass(path)?;
        if consistent || attempt >= 20 {
            break (cur, lines);
        }
    };
    if let Some(t) = cur.as_mut() {
        t.read(&mut lines)?;
    }
    let skip = match opts.tail {
        Some(t) if t < lines.len() => lines.len() - t,
        _ => 0,
    };
    for l in &lines[skip..] {
        p.emit(l)?;
    }
    p.out.flush()?;
    p.err.flush()?;
    if !opts.follow {
        return Ok(());
    }
    drop(lines);
    let mut waited = 0;
    // Poll quickly while output flows (a fast writer rotates often), slowly when idle.
    let mut delay = Duration::from_millis(10);
    let mut fresh = Vec::new();
    loop {
        let was_running = running();
        let Some(t) = cur.as_mut() else {
            match File::open(path) {
                Ok(f) => {
                    cur = Some(Tail::new(f));
                    continue;
                }
                Err(_) => {
                    if !was_running || waited > 100 {
                        return Ok(());
                    }
                    waited += 1;
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            }
        };
        fresh.clear();
        t.read(&mut fresh)?;
        for l in &fresh {
            p.emit(l)?;
        }
        p.out.flush()?;
        p.err.flush()?;
        if !fresh.is_empty() {
            delay = Duration::from_millis(10);
            continue;
        }
        // Nothing new here: has the file been rotated (a new file at PATH) or truncated?
        let ours = t.file.metadata()?;
        match std::fs::metadata(path) {
            Ok(m) if m.ino() != ours.ino() || m.dev() != ours.dev() => {
                // The writer finished this file before renaming it: take its last lines,
                // then continue with the file written after it.
                fresh.clear();
                t.read(&mut fresh)?;
                for l in &fresh {
                    p.emit(l)?;
                }
                cur = None;
                match next_file(path, ours.ino(), &mut p)? {
                    Some(f) => cur = Some(Tail::new(f)),
                    // Rotated away before we got here: what it held is lost to us.
                    None => p.gap()?,
                }
                continue;
            }
            Ok(m) => {
                let pos = t.file.stream_position()?;
                if m.len() < pos {
                    t.file.seek(SeekFrom::Start(0))?;
                    t.pending.clear();
                    continue;
                }
            }
            Err(_) => {}
        }
        if !was_running {
            return Ok(());
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

/// Read every entry of a log (rotated files included), for tests and tools.
///
/// Errors: a rotated or the current file exists but cannot be read or decompressed; lines
/// that are not entries are skipped.
pub fn read_all(path: &Path) -> std::io::Result<Vec<Entry>> {
    let mut lines = Vec::new();
    for (f, gz) in rotated_files(path) {
        let mut data = Vec::new();
        let file = File::open(&f)?;
        if gz {
            flate2::read::GzDecoder::new(file).read_to_end(&mut data)?;
        } else {
            BufReader::new(file).read_to_end(&mut data)?;
        }
        let _ = read_lines(&mut &data[..], &mut lines);
    }
    if let Ok(f) = File::open(path) {
        read_lines(&mut BufReader::new(f), &mut lines)?;
    }
    Ok(lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let t = parse_time("--since", "2024-01-02T03:04:05Z").unwrap();
        assert_eq!(t.timestamp(), 1_704_164_645);
        assert_eq!(
            parse_time("--since", "1700000000").unwrap().timestamp(),
            1_700_000_000
        );
        let ago = parse_time("--since", "10m").unwrap();
        assert!((chrono::Utc::now() - ago).num_seconds() >= 599);
        assert!(parse_time("--since", "yesterday").is_err());
    }
}
