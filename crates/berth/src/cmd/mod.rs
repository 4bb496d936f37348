//! Subcommand implementations, one module per area. Each returns the process exit code.

pub mod build;
pub mod compose;
pub mod compose_build;
pub mod compose_run;
pub mod container;
pub mod files;
pub mod image;
pub mod internal;
pub mod network;
pub mod output;
pub mod registry;
pub mod shell;
pub mod sif;
pub mod system;
pub mod update;
pub mod volume;

use std::cell::OnceCell;
use std::path::PathBuf;

use anyhow::Result;
use berth_store::Store;

/// Exit status for failures of berth itself (as Docker's 125).
pub const EXIT_ENGINE: u8 = 125;

/// Shared state for one CLI invocation.
pub struct Ctx {
    pub root: PathBuf,
    store: OnceCell<Store>,
}

impl Ctx {
    pub fn new(root: PathBuf) -> Ctx {
        Ctx {
            root,
            store: OnceCell::new(),
        }
    }

    /// The store, opened on first use.
    pub fn store(&self) -> Result<&Store> {
        if let Some(s) = self.store.get() {
            return Ok(s);
        }
        let s = Store::open(&self.root).map_err(|e| {
            anyhow::anyhow!(
                "cannot open the store at {}: {e} (run as root, or set --root/BERTH_ROOT to a writable directory)",
                self.root.display()
            )
        })?;
        // A build killed during a step left mounts, a container or a network sandbox behind.
        if let Err(e) = berth_build::recover::recover_if_needed(&s) {
            tracing::warn!("recovering killed build steps: {e}");
        }
        Ok(self.store.get_or_init(|| s))
    }
}

/// An error that carries its own exit status (e.g. 126/127 from `run`).
#[derive(Debug)]
pub struct ExitError {
    pub code: u8,
    pub msg: String,
}

impl std::fmt::Display for ExitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for ExitError {}

/// One line: the error and its causes joined with ": ", skipping causes already in the text.
pub fn render_error(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !out.contains(&c) {
            out.push_str(": ");
            out.push_str(&c);
        }
    }
    out
}

pub fn exit_code_of(e: &anyhow::Error) -> u8 {
    e.chain()
        .find_map(|c| c.downcast_ref::<ExitError>().map(|x| x.code))
        .unwrap_or(EXIT_ENGINE)
}

/// Print rows as an aligned table (columns separated by at least three spaces, as Docker).
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        let n = cells.len();
        for (i, c) in cells.into_iter().enumerate() {
            s.push_str(c);
            if i + 1 < n {
                let pad = widths[i] + 3 - c.chars().count();
                s.push_str(&" ".repeat(pad));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(|s| s.as_str()).collect());
    }
}

/// Human "x ago" for a unix timestamp, as Docker prints it.
pub fn ago(ts: i64) -> String {
    berth_format::human::ago(ts)
}

/// Human size with Docker's units (kB, MB, GB; powers of 1000).
pub fn human_size(n: u64) -> String {
    berth_format::human::size(n)
}

/// Print inspect documents: a JSON array, or each through a Go template.
pub fn print_inspect(docs: &[serde_json::Value], format: Option<&str>) -> Result<()> {
    use std::io::Write;
    let text = berth_format::inspect(docs, format)?;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// Print listing rows through `--format` (or the user's `config_key` default in
/// `~/.docker/config.json`, or `default_table`).
pub fn print_rows(
    rows: &[serde_json::Value],
    format: Option<&str>,
    config_key: &str,
    default_table: &str,
    headers: &[(&str, &str)],
) -> Result<()> {
    use std::io::Write;
    let configured = if format.is_none() {
        berth_format::config_format(config_key)
    } else {
        None
    };
    let f = berth_format::Format::new(format.or(configured.as_deref()), default_table)?;
    let text = f.render(rows, headers)?;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}
