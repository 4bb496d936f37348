//! Container log files in Docker's json-file format: one JSON object per line,
//! `{"log":"…","stream":"stdout","time":"RFC 3339 with nanoseconds"}`.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Append one chunk of output, split into one entry per line (a trailing partial line is its
/// own entry).
pub fn append(f: &mut File, stream: &str, data: &[u8]) -> std::io::Result<()> {
    let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let mut out = Vec::with_capacity(data.len() + 64);
    for piece in data.split_inclusive(|b| *b == b'\n') {
        let e = Entry {
            log: String::from_utf8_lossy(piece).into_owned(),
            stream: stream.to_string(),
            time: time.clone(),
        };
        serde_json::to_writer(&mut out, &e)?;
        out.push(b'\n');
    }
    f.write_all(&out)
}

/// Options for [`print`].
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub follow: bool,
    pub tail: Option<usize>,
    pub timestamps: bool,
}

/// Print a log to stdout/stderr. With `follow`, keep printing until `running()` is false and
/// everything written has been shown.
pub fn print(
    path: &Path,
    opts: &LogOptions,
    running: &mut dyn FnMut() -> bool,
) -> std::io::Result<()> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !opts.follow {
                return Ok(());
            }
            // Wait for the monitor to create it.
            let mut n = 0;
            loop {
                if let Ok(f) = File::open(path) {
                    break f;
                }
                if !running() || n > 100 {
                    return Ok(());
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Err(e) => return Err(e),
    };
    let mut rd = BufReader::new(f);
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    let emit = |line: &str, out: &mut dyn Write, err: &mut dyn Write| -> std::io::Result<()> {
        let Ok(e) = serde_json::from_str::<Entry>(line) else {
            return Ok(());
        };
        let w: &mut dyn Write = if e.stream == "stderr" { err } else { out };
        if opts.timestamps {
            write!(w, "{} ", e.time)?;
        }
        w.write_all(e.log.as_bytes())
    };
    // Initial part (with --tail).
    let mut lines: Vec<String> = Vec::new();
    let mut buf = String::new();
    loop {
        buf.clear();
        let n = rd.read_line(&mut buf)?;
        if n == 0 || !buf.ends_with('\n') {
            // Partial line: rewind so follow mode re-reads it complete.
            if n > 0 {
                rd.seek(SeekFrom::Current(-(n as i64)))?;
            }
            break;
        }
        lines.push(buf.trim_end_matches('\n').to_string());
    }
    let skip = match opts.tail {
        Some(t) if t < lines.len() => lines.len() - t,
        _ => 0,
    };
    for l in &lines[skip..] {
        emit(l, &mut stdout, &mut stderr)?;
    }
    stdout.flush()?;
    if !opts.follow {
        return Ok(());
    }
    loop {
        let was_running = running();
        let mut progressed = false;
        loop {
            buf.clear();
            let n = rd.read_line(&mut buf)?;
            if n == 0 {
                break;
            }
            if !buf.ends_with('\n') {
                rd.seek(SeekFrom::Current(-(n as i64)))?;
                break;
            }
            progressed = true;
            emit(buf.trim_end_matches('\n'), &mut stdout, &mut stderr)?;
        }
        stdout.flush()?;
        if !was_running && !progressed {
            return Ok(());
        }
        if !progressed {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
