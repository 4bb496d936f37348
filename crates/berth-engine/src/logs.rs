//! Container log files in Docker's json-file format: one JSON object per line,
//! `{"log":"…","stream":"stdout","time":"RFC 3339 with nanoseconds"}`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{EngineError, Result};

use serde::{Deserialize, Serialize};

/// One json-file log line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// The output, one line including its trailing `\n` (a partial last line has none).
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// When the chunk was read: RFC 3339 in UTC with nanoseconds
    /// (`2024-01-02T03:04:05.123456789Z`).
    pub time: String,
}

struct Buf(Vec<u8>);

impl berth_jsonlog::Sink for Buf {
    fn put(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

/// Append one chunk of output, split into one entry per line (a trailing partial line is its
/// own entry); bytes that are not UTF-8 become U+FFFD. The encoder is `berth-jsonlog`, the
/// same as `berth-supervise`'s.
pub fn append(f: &mut File, stream: &str, data: &[u8]) -> std::io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let mut out = Buf(Vec::with_capacity(berth_jsonlog::entry_size_bound(
        data.len(),
    )));
    berth_jsonlog::chunk(&mut out, data, stream.as_bytes(), time.as_bytes());
    f.write_all(&out.0)
}

/// One output stream's writer: holds back an incomplete UTF-8 sequence at the end of a read
/// until the next read completes it, so a character split across reads stays whole.
#[derive(Debug, Default)]
pub struct StreamLog {
    carry: Vec<u8>,
}

impl StreamLog {
    /// Log `data` read from `stream`, after what was held back.
    pub fn write(&mut self, f: &mut File, stream: &str, data: &[u8]) -> std::io::Result<()> {
        self.carry.extend_from_slice(data);
        let tail = berth_jsonlog::utf8_incomplete_tail(&self.carry);
        let keep = self.carry.split_off(self.carry.len() - tail);
        let res = append(f, stream, &self.carry);
        self.carry = keep;
        res
    }

    /// The stream ended: log what was held back (an incomplete sequence becomes U+FFFD).
    pub fn finish(&mut self, f: &mut File, stream: &str) -> std::io::Result<()> {
        let rest = std::mem::take(&mut self.carry);
        append(f, stream, &rest)
    }
}

/// A container's log driver and its options (`--log-driver`, `--log-opt`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogConfig {
    /// `json-file` (default), `local`, `none` or `journald`.
    pub driver: String,
    /// Driver options (`max-size`, `max-file`, `compress`, …).
    #[serde(default)]
    pub opts: BTreeMap<String, String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            driver: "json-file".into(),
            opts: BTreeMap::new(),
        }
    }
}

/// The daemon-wide defaults file in the store root, with Docker's `daemon.json` keys:
/// `{"log-driver": "local", "log-opts": {"max-size": "10m"}}`.
pub const DAEMON_CONFIG: &str = "daemon.json";

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

fn bad_opt(msg: String) -> EngineError {
    EngineError::InvalidArgument(msg)
}

impl LogConfig {
    /// The daemon-wide default from `<root>/daemon.json` (json-file when absent).
    pub fn daemon_default(root: &Path) -> Result<LogConfig> {
        let p = root.join(DAEMON_CONFIG);
        let text = match std::fs::read(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LogConfig::default()),
            Err(e) => return Err(EngineError::io(&p, e)),
        };
        #[derive(Deserialize)]
        struct Daemon {
            #[serde(rename = "log-driver", default)]
            log_driver: Option<String>,
            #[serde(rename = "log-opts", default)]
            log_opts: BTreeMap<String, String>,
        }
        let d: Daemon = serde_json::from_slice(&text).map_err(|e| {
            bad_opt(format!(
                "{}: {e}; fix the file (keys \"log-driver\" and \"log-opts\" with string values)",
                p.display()
            ))
        })?;
        let c = LogConfig {
            driver: d.log_driver.unwrap_or_else(|| "json-file".into()),
            opts: d.log_opts,
        };
        c.validate()
            .map_err(|e| bad_opt(format!("{}: {e}", p.display())))?;
        Ok(c)
    }

    /// Merge `--log-driver` / `--log-opt KEY=VALUE` over the daemon default, as Docker does:
    /// the default driver's options apply unless another driver is chosen. Errors on unknown
    /// drivers or options and on bad values.
    pub fn resolve(root: &Path, driver: Option<&str>, opts: &[String]) -> Result<LogConfig> {
        let base = LogConfig::daemon_default(root)?;
        let mut c = match driver {
            Some(d) if d != base.driver => LogConfig {
                driver: d.to_string(),
                opts: BTreeMap::new(),
            },
            _ => base,
        };
        for o in opts {
            let (k, v) = o.split_once('=').ok_or_else(|| {
                bad_opt(format!(
                    "invalid --log-opt {o:?}: use KEY=VALUE (e.g. max-size=10m)"
                ))
            })?;
            c.opts.insert(k.to_string(), v.to_string());
        }
        c.validate()?;
        Ok(c)
    }

    /// Check the driver and its options.
    pub fn validate(&self) -> Result<()> {
        let allowed: &[&str] = match self.driver.as_str() {
            "json-file" => &[
                "max-size",
                "max-file",
                "compress",
                "labels",
                "labels-regex",
                "env",
                "env-regex",
                "tag",
            ],
            "local" => &["max-size", "max-file", "compress"],
            "none" => &[],
            "journald" => {
                if !crate::journald::available() {
                    return Err(bad_opt(format!(
                        "log driver journald needs systemd-journald, which is not running on this host ({} is missing): use json-file or local",
                        crate::journald::socket_path().display()
                    )));
                }
                &["tag"]
            }
            other => {
                return Err(bad_opt(format!(
                    "unknown log driver {other:?}: use json-file, local, none or journald"
                )))
            }
        };
        for k in self.opts.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(bad_opt(format!(
                    "unknown log opt {k:?} for the {} log driver{}",
                    self.driver,
                    if allowed.is_empty() {
                        String::new()
                    } else {
                        format!(" (use {})", allowed.join(", "))
                    }
                )));
            }
        }
        if let Some(v) = self.opts.get("max-size") {
            let n = crate::config::parse_bytes(v)?;
            if n <= 0 {
                return Err(bad_opt(format!("invalid max-size {v:?}: must be positive")));
            }
        }
        if let Some(v) = self.opts.get("max-file") {
            let n: u64 = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                bad_opt(format!(
                    "invalid max-file {v:?}: use a whole number of files, at least 1"
                ))
            })?;
            if n > 1 && !self.opts.contains_key("max-size") && self.driver == "json-file" {
                return Err(bad_opt(
                    "max-file needs max-size: give --log-opt max-size=… too".into(),
                ));
            }
        }
        if let Some(v) = self.opts.get("compress") {
            if v.parse::<bool>().is_err() {
                return Err(bad_opt(format!(
                    "invalid compress {v:?}: use true or false"
                )));
            }
        }
        Ok(())
    }

    /// Whether `logs` can read this driver's output (`journald` keeps a local copy, as
    /// Docker's dual logging does).
    pub fn readable(&self) -> bool {
        matches!(self.driver.as_str(), "json-file" | "local" | "journald")
    }

    /// The rotation settings, if the log is bounded (`local` and the local copy of
    /// `journald` are, by default: 20 MB × 5, compressed, as Docker's local driver and its
    /// dual-logging cache).
    pub fn rotation(&self) -> Option<Rotation> {
        let local = matches!(self.driver.as_str(), "local" | "journald");
        let size = match self.opts.get("max-size") {
            Some(v) => u64::try_from(crate::config::parse_bytes(v).ok()?).ok()?,
            None if local => 20 << 20,
            None => return None,
        };
        let max_file = self
            .opts
            .get("max-file")
            .and_then(|v| v.parse().ok())
            .unwrap_or(if local { 5 } else { 1 });
        let compress = self
            .opts
            .get("compress")
            .and_then(|v| v.parse().ok())
            .unwrap_or(local);
        Some(Rotation {
            max_size: size,
            max_file,
            compress,
        })
    }
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
const MAX_ROTATED: u64 = 100;

/// Options for [`print`].
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

/// [`print`] into the writers `out` (the `stdout` entries) and `err` (the `stderr` entries):
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
    fn log_config() {
        let d = tempfile::tempdir().unwrap();
        let c = LogConfig::resolve(d.path(), None, &["max-size=1m".into(), "max-file=3".into()])
            .unwrap();
        assert_eq!(
            c.rotation(),
            Some(Rotation {
                max_size: 1 << 20,
                max_file: 3,
                compress: false
            })
        );
        assert!(LogConfig::resolve(d.path(), Some("syslog"), &[]).is_err());
        assert!(LogConfig::resolve(d.path(), None, &["max-file=3".into()]).is_err());
        assert!(LogConfig::resolve(d.path(), None, &["colour=red".into()]).is_err());
        assert!(LogConfig::resolve(d.path(), Some("none"), &["max-size=1m".into()]).is_err());
        let l = LogConfig::resolve(d.path(), Some("local"), &[]).unwrap();
        assert_eq!(l.rotation().unwrap().max_file, 5);
        std::fs::write(
            d.path().join(DAEMON_CONFIG),
            r#"{"log-driver": "json-file", "log-opts": {"max-size": "10m"}}"#,
        )
        .unwrap();
        let c = LogConfig::resolve(d.path(), None, &[]).unwrap();
        assert_eq!(c.opts.get("max-size").map(String::as_str), Some("10m"));
        let c = LogConfig::resolve(d.path(), Some("none"), &[]).unwrap();
        assert!(c.opts.is_empty() && !c.readable());
        std::fs::write(d.path().join(DAEMON_CONFIG), "{").unwrap();
        let e = LogConfig::resolve(d.path(), None, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("daemon.json"), "{e}");
    }

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

#[cfg(test)]
mod stream_tests {
    use super::*;

    fn entries(path: &Path) -> Vec<Entry> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn a_character_split_across_reads_is_logged_whole() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ctr.log");
        let mut f = File::create(&p).unwrap();
        let mut s = StreamLog::default();
        let text = "a€\n".as_bytes();
        s.write(&mut f, "stdout", &text[..2]).unwrap();
        s.write(&mut f, "stdout", &text[2..]).unwrap();
        s.finish(&mut f, "stdout").unwrap();
        let e = entries(&p);
        let joined: String = e.iter().map(|e| e.log.as_str()).collect();
        assert_eq!(joined, "a€\n");
        assert!(e.iter().all(|e| e.stream == "stdout"));
    }

    #[test]
    fn an_unfinished_sequence_at_the_end_becomes_a_replacement_character() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ctr.log");
        let mut f = File::create(&p).unwrap();
        let mut s = StreamLog::default();
        s.write(&mut f, "stderr", b"x\xe2\x82").unwrap();
        s.finish(&mut f, "stderr").unwrap();
        let joined: String = entries(&p).iter().map(|e| e.log.clone()).collect();
        assert_eq!(joined, "x\u{fffd}\u{fffd}");
    }

    #[test]
    fn lines_are_entries_with_nanosecond_times() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("ctr.log");
        let mut f = File::create(&p).unwrap();
        append(&mut f, "stdout", b"one\ntwo\nthr").unwrap();
        let e = entries(&p);
        let logs: Vec<&str> = e.iter().map(|e| e.log.as_str()).collect();
        assert_eq!(logs, ["one\n", "two\n", "thr"]);
        assert!(
            e[0].time.ends_with('Z') && e[0].time.len() == 30,
            "{}",
            e[0].time
        );
    }
}
