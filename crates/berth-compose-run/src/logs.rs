//! Following several containers' logs at once with `NAME | ` prefixes (aligned, colored as
//! Docker compose colors them), for `compose logs` and attached `compose up`.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth_engine::logs::Entry;
use berth_engine::state;
use berth_store::Store;

/// Options of [`follow`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Keep printing new lines while the containers run.
    pub follow: bool,
    /// Only the last N lines of each log.
    pub tail: Option<usize>,
    /// Prefix lines with their time.
    pub timestamps: bool,
    /// ANSI colors for the prefixes.
    pub color: bool,
}

/// One log to show: its prefix (container or service name) and container id.
#[derive(Debug, Clone)]
pub struct Source {
    /// Text before ` | `.
    pub prefix: String,
    /// Container id.
    pub id: String,
    /// Byte offset in the container's log file where the output to show starts (0: all of
    /// it). Attached `up` passes the log's length before it started the container again, so
    /// that only new output shows, as Docker's attach does. Ignored when the log is shorter
    /// (rotated).
    pub from: u64,
}

const COLORS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

/// Print the logs of `sources` (one thread each) until they end (not following), or until
/// their containers stopped and the logs are drained, or until `stop` is set. Returns when
/// all are done.
pub fn follow(root: PathBuf, sources: &[Source], o: &Options, stop: &Arc<AtomicBool>) {
    let width = sources
        .iter()
        .map(|s| s.prefix.chars().count())
        .max()
        .unwrap_or(0);
    let handles: Vec<_> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let pad = width - s.prefix.chars().count();
            let prefix = if o.color {
                format!(
                    "\x1b[{}m{}{} |\x1b[0m ",
                    COLORS[i % COLORS.len()],
                    s.prefix,
                    " ".repeat(pad)
                )
            } else {
                format!("{}{} | ", s.prefix, " ".repeat(pad))
            };
            let root = root.clone();
            let id = s.id.clone();
            let from = s.from;
            let o = o.clone();
            let stop = stop.clone();
            std::thread::spawn(move || one(&root, &id, from, &prefix, &o, &stop))
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
}

/// The current length of container `id`'s log file in bytes (0 when it has none), for
/// [`Source::from`].
pub fn log_len(root: &std::path::Path, id: &str) -> u64 {
    std::fs::metadata(berth_engine::rootfs::Bundle::new(root, id).log()).map_or(0, |m| m.len())
}

fn one(root: &std::path::Path, id: &str, from: u64, prefix: &str, o: &Options, stop: &AtomicBool) {
    let Ok(store) = Store::open(root) else { return };
    let path = berth_engine::rootfs::Bundle::new(root, id).log();
    let running = || match state::get(&store, id) {
        Ok(Some(c)) => c.state.is_active() && state::monitor_alive(&c),
        _ => false,
    };
    let mut waited = 0;
    let f = loop {
        match File::open(&path) {
            Ok(f) => break f,
            Err(_) if o.follow && waited < 100 && !stop.load(Ordering::Relaxed) => {
                waited += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(_) => return,
        }
    };
    let mut f = f;
    if from > 0 && f.metadata().is_ok_and(|m| m.len() >= from) {
        use std::io::Seek as _;
        let _ = f.seek(std::io::SeekFrom::Start(from));
    }
    let mut rd = BufReader::new(f);
    let emit = |line: &str| {
        let Ok(e) = serde_json::from_str::<Entry>(line) else {
            return;
        };
        let mut text = e.log;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let ts = if o.timestamps {
            format!("{} ", e.time)
        } else {
            String::new()
        };
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "{prefix}{ts}{text}");
        let _ = out.flush();
    };
    // Backlog (honouring --tail).
    let mut backlog = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match rd.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.ends_with('\n') => backlog.push(line.clone()),
            Ok(_) => break, // partial line: wait for the rest below
        }
    }
    let partial = line.clone();
    let skip = o.tail.map_or(0, |t| backlog.len().saturating_sub(t));
    for l in &backlog[skip..] {
        emit(l);
    }
    if !o.follow {
        return;
    }
    let mut pending = partial;
    let mut idle_checks = 0u32;
    loop {
        let mut chunk = String::new();
        match rd.read_line(&mut chunk) {
            Ok(0) | Err(_) => {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                idle_checks += 1;
                // Look at the container's state now and then; drain once more after it stops.
                if idle_checks % 5 == 0 && !running() {
                    let mut rest = String::new();
                    while rd.read_line(&mut rest).map(|n| n > 0).unwrap_or(false) {
                        pending.push_str(&rest);
                        if pending.ends_with('\n') {
                            emit(&pending);
                            pending.clear();
                        }
                        rest.clear();
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Ok(_) => {
                idle_checks = 0;
                pending.push_str(&chunk);
                if pending.ends_with('\n') {
                    emit(&pending);
                    pending.clear();
                }
            }
        }
    }
}
