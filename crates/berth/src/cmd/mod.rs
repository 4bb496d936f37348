//! Subcommand implementations, one module per area. Each returns the process exit code.

pub mod build;
pub mod compose;
pub mod compose_build;
pub mod compose_run;
pub mod container;
pub mod image;
pub mod internal;
pub mod network;
pub mod output;
pub mod registry;
pub mod sif;
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
    let now = chrono::Utc::now().timestamp();
    let d = (now - ts).max(0);
    let s = match d {
        0 => return "Less than a second ago".into(),
        1 => "1 second".into(),
        2..=59 => format!("{d} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", d / 60),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => format!("{} hours", d / 3600),
        172_800..=1_209_599 => format!("{} days", d / 86400),
        1_209_600..=5_183_999 => format!("{} weeks", d / 604_800),
        5_184_000..=63_071_999 => format!("{} months", d / 2_592_000),
        _ => format!("{} years", d / 31_536_000),
    };
    format!("{s} ago")
}

/// Human size with Docker's units (kB, MB, GB; powers of 1000).
pub fn human_size(n: u64) -> String {
    const U: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < U.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        format!("{:.3}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + U[i]
    }
}

/// Print inspect documents: a JSON array, or each through a `{{.A.B}}` / `{{json .A}}` format.
pub fn print_inspect(docs: &[serde_json::Value], format: Option<&str>) -> Result<()> {
    match format {
        None | Some("json") => {
            println!("{}", serde_json::to_string_pretty(docs)?);
        }
        Some(f) => {
            for d in docs {
                println!("{}", render_template(f, d));
            }
        }
    }
    Ok(())
}

/// A small subset of Go templates: text with `{{.Path.To.Field}}` and `{{json .Path}}`;
/// `\t` and `\n` written in the format stand for a tab and a newline, as with Docker.
pub fn render_template(f: &str, doc: &serde_json::Value) -> String {
    let f = f.replace("\\t", "\t").replace("\\n", "\n");
    let mut out = String::new();
    let mut rest = f.as_str();
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let expr = rest[start + 2..start + end].trim();
        let (json_mode, path) = match expr.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, expr),
        };
        let mut v = doc;
        for seg in path
            .trim_start_matches('.')
            .split('.')
            .filter(|s| !s.is_empty())
        {
            v = v.get(seg).unwrap_or(&serde_json::Value::Null);
        }
        let text = match (json_mode, v) {
            (true, v) => v.to_string(),
            (false, serde_json::Value::String(s)) => s.clone(),
            (false, serde_json::Value::Null) => "<no value>".to_string(),
            (false, v) => v.to_string(),
        };
        out.push_str(&text);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    out
}
