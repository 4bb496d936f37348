//! Pull/push progress: bars on a terminal, Docker-like lines otherwise, or nothing.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// Bars when the output stream is a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Plain lines (`abc123def456: Pull complete`).
    Plain,
    /// Nothing at all (the caller prints what it needs).
    Quiet,
}

/// Where progress and status lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputStream {
    /// Standard output.
    #[default]
    Stdout,
    /// Standard error.
    Stderr,
}

#[derive(Clone)]
pub(crate) struct Reporter {
    inner: Arc<Inner>,
}

struct Inner {
    mode: ProgressMode,
    stream: OutputStream,
    multi: Option<MultiProgress>,
    lock: Mutex<()>,
}

impl Reporter {
    pub fn new(mode: ProgressMode, stream: OutputStream) -> Reporter {
        let tty = match stream {
            OutputStream::Stdout => std::io::stdout().is_terminal(),
            OutputStream::Stderr => std::io::stderr().is_terminal(),
        };
        let bars = mode == ProgressMode::Auto && tty;
        let multi = bars.then(|| {
            let target = match stream {
                OutputStream::Stdout => ProgressDrawTarget::stdout_with_hz(8),
                OutputStream::Stderr => ProgressDrawTarget::stderr_with_hz(8),
            };
            MultiProgress::with_draw_target(target)
        });
        Reporter {
            inner: Arc::new(Inner {
                mode,
                stream,
                multi,
                lock: Mutex::new(()),
            }),
        }
    }

    pub fn quiet(&self) -> bool {
        self.inner.mode == ProgressMode::Quiet
    }

    /// Print a status line (not in quiet mode).
    pub fn line(&self, s: &str) {
        if self.quiet() {
            return;
        }
        if let Some(m) = &self.inner.multi {
            let _ = m.println(s);
            return;
        }
        let _g = self.inner.lock.lock();
        match self.inner.stream {
            OutputStream::Stdout => {
                let mut o = std::io::stdout().lock();
                let _ = writeln!(o, "{s}");
                let _ = o.flush();
            }
            OutputStream::Stderr => {
                let _ = writeln!(std::io::stderr().lock(), "{s}");
            }
        }
    }

    /// A per-item tracker (one bar or a series of lines prefixed with `id`).
    pub fn item(&self, id: &str, total: u64, status: &str) -> Item {
        let bar = self.inner.multi.as_ref().map(|m| {
            let b = m.add(ProgressBar::new(total));
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix}: {msg:<16} [{bar:30}] {bytes:>10}/{total_bytes:<10} {binary_bytes_per_sec:>12} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b.set_prefix(id.to_string());
            b.set_message(status.to_string());
            b.enable_steady_tick(Duration::from_millis(250));
            b
        });
        let it = Item {
            rep: self.clone(),
            id: id.to_string(),
            bar,
        };
        if it.bar.is_none() {
            self.line(&format!("{id}: {status}"));
        }
        it
    }
}

#[derive(Clone)]
pub(crate) struct Item {
    rep: Reporter,
    id: String,
    bar: Option<ProgressBar>,
}

impl Item {
    pub fn status(&self, s: &str) {
        match &self.bar {
            Some(b) => b.set_message(s.to_string()),
            None => self.rep.line(&format!("{}: {s}", self.id)),
        }
    }

    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    pub fn set_position(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.set_position(n);
        }
    }

    /// Final state: the bar stays with `s` as its message.
    pub fn finish(&self, s: &str) {
        match &self.bar {
            Some(b) => {
                b.set_style(
                    ProgressStyle::with_template("{prefix}: {msg}").expect("valid template"),
                );
                b.finish_with_message(s.to_string());
            }
            None => self.rep.line(&format!("{}: {s}", self.id)),
        }
    }

    pub fn abandon(&self, s: &str) {
        if let Some(b) = &self.bar {
            b.set_style(ProgressStyle::with_template("{prefix}: {msg}").expect("valid template"));
            b.abandon_with_message(s.to_string());
        }
    }
}
