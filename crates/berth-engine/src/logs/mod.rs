//! Container log files in Docker's json-file format: one JSON object per line,
//! `{"log":"…","stream":"stdout","time":"RFC 3339 with nanoseconds"}`.
//!
//! * Writing (this file): [`append`] and [`StreamLog`], the encoder shared with
//!   `berth-supervise` (`berth-jsonlog`).
//! * Driver and options ([`LogConfig`], `--log-driver`/`--log-opt`, `daemon.json`): `config.rs`.
//! * Size-based rotation and compression of rotated files ([`Rotation`]): `rotate.rs`.
//! * Reading for `logs` and the API, following across rotations ([`print()`], [`copy`]):
//!   `read.rs`.

use std::fs::File;
use std::io::Write;

use crate::EngineError;

use serde::{Deserialize, Serialize};

mod config;
mod read;
mod rotate;

pub use config::{LogConfig, DAEMON_CONFIG};
pub use read::{copy, parse_time, print, read_all, LogOptions};
pub use rotate::{compress_rotated, rotated_name, Rotation, ROTATE_ENV};

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
///
/// Errors: the write error of `f`.
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
    ///
    /// Errors: the write error of `f`.
    pub fn write(&mut self, f: &mut File, stream: &str, data: &[u8]) -> std::io::Result<()> {
        self.carry.extend_from_slice(data);
        let tail = berth_jsonlog::utf8_incomplete_tail(&self.carry);
        let keep = self.carry.split_off(self.carry.len() - tail);
        let res = append(f, stream, &self.carry);
        self.carry = keep;
        res
    }

    /// The stream ended: log what was held back (an incomplete sequence becomes U+FFFD).
    ///
    /// Errors: the write error of `f`.
    pub fn finish(&mut self, f: &mut File, stream: &str) -> std::io::Result<()> {
        let rest = std::mem::take(&mut self.carry);
        append(f, stream, &rest)
    }
}

/// An invalid log driver, option or `--since`/`--until` value (the message says which).
fn bad_opt(msg: String) -> EngineError {
    EngineError::InvalidArgument(msg)
}

#[cfg(test)]
mod stream_tests {
    use super::*;
    use std::path::Path;

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
