//! `cp`, `export`, `diff`, `top`, `stats`: flags and printing over `berth_engine::ops`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use berth_engine::{ops, state, view, EngineError};
use clap::Args;

use super::Ctx;

fn eng(e: EngineError) -> anyhow::Error {
    anyhow!("{e}")
}

#[derive(Debug, Args)]
pub struct CpArgs {
    /// Archive mode: keep uid/gid.
    #[arg(short, long)]
    pub archive: bool,
    /// Follow the source path if it is a symlink.
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// Print nothing (accepted for Docker compatibility).
    #[arg(short, long)]
    pub quiet: bool,
    /// CONTAINER:SRC_PATH, a host path, or - (a tar on standard input).
    pub src: String,
    /// CONTAINER:DEST_PATH, a host path, or - (a tar on standard output).
    pub dest: String,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    pub container: String,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    pub container: String,
    /// Options for ps (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Show all containers (default: running ones).
    #[arg(short, long)]
    pub all: bool,
    /// Print one sample and exit.
    #[arg(long)]
    pub no_stream: bool,
    /// Do not truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// table (default), table TEMPLATE, json, or a Go template.
    #[arg(long)]
    pub format: Option<String>,
    pub containers: Vec<String>,
}

/// `CONTAINER:PATH` (a colon before any slash), else a host path.
fn split_container(s: &str) -> Option<(&str, &str)> {
    let (c, p) = s.split_once(':')?;
    if c.is_empty() || c.contains('/') {
        return None;
    }
    Some((c, p))
}

fn open(ctx: &Ctx) -> Result<&berth_store::Store> {
    let store = ctx.store()?;
    ops::reconcile(store).map_err(eng)?;
    Ok(store)
}

fn pipe() -> Result<(std::fs::File, std::fs::File)> {
    let (r, w) = rustix::pipe::pipe().map_err(|e| anyhow!("cannot make a pipe: {e}"))?;
    Ok((std::fs::File::from(r), std::fs::File::from(w)))
}

pub fn cp(ctx: &Ctx, a: CpArgs) -> Result<i32> {
    let store = open(ctx)?;
    match (split_container(&a.src), split_container(&a.dest)) {
        (Some(_), Some(_)) => {
            bail!("copying between containers is not supported; copy through the host")
        }
        (None, None) => bail!("one of the paths must name a container: CONTAINER:PATH"),
        (Some((cn, src)), None) => {
            let c = state::lookup(store, cn).map_err(eng)?;
            let opts = (a.follow_link, a.archive);
            if a.dest == "-" {
                let mut out = std::io::stdout();
                ops::copy_out(store, &c, src, None, opts, &mut out).map_err(eng)?;
                out.flush()?;
                return Ok(0);
            }
            let dest = Path::new(&a.dest);
            let contents = ops::files_contents_only(src);
            let (dir, name): (PathBuf, Option<PathBuf>) = if dest.is_dir() {
                (dest.to_path_buf(), None)
            } else if contents {
                std::fs::create_dir(dest)
                    .with_context(|| format!("cannot create {}", dest.display()))?;
                (dest.to_path_buf(), None)
            } else {
                if a.dest.ends_with('/') {
                    bail!("destination directory {} does not exist", a.dest);
                }
                let parent = match dest.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                if !parent.is_dir() {
                    bail!("the parent directory of {} does not exist", a.dest);
                }
                (parent, dest.file_name().map(PathBuf::from))
            };
            let (mut r, mut w) = pipe()?;
            std::thread::scope(|s| -> Result<()> {
                let dir = &dir;
                let h = s.spawn(move || {
                    let res = berth_image::unpack_tree(&mut r, dir);
                    drop(r);
                    res
                });
                let res = ops::copy_out(store, &c, src, name.as_deref(), opts, &mut w);
                drop(w);
                let un = h.join().map_err(|_| anyhow!("extract worker panicked"))?;
                res.map_err(eng)?;
                un.map_err(|e| anyhow!("extracting into {}: {e}", dir.display()))?;
                Ok(())
            })?;
            Ok(0)
        }
        (None, Some((cn, dest))) => {
            let c = state::lookup(store, cn).map_err(eng)?;
            // What the docker CLI asks of the daemon: never swap a directory for a file or
            // the reverse; with -a, the container user's ownership.
            let copy_opts = ops::CopyInOptions {
                no_overwrite_dir_non_dir: true,
                copy_uid_gid: a.archive,
            };
            if a.src == "-" {
                let mut input = std::io::stdin();
                ops::copy_in(store, &c, dest, copy_opts, &mut input).map_err(eng)?;
                return Ok(0);
            }
            let src = Path::new(&a.src);
            std::fs::symlink_metadata(src)
                .with_context(|| format!("cannot read the source {}", a.src))?;
            let base = ops::files_base_name(&a.src);
            let (dir, mut name) = ops::copy_in_target(store, &c, dest, &base).map_err(eng)?;
            if ops::files_contents_only(&a.src) {
                name = PathBuf::from(".");
            }
            let (mut r, mut w) = pipe()?;
            let (follow, keep) = (a.follow_link, a.archive);
            std::thread::scope(|s| -> Result<()> {
                let h = s.spawn(move || {
                    let res = ops::host_tar(src, &name, follow, keep, &mut w);
                    drop(w);
                    res
                });
                let res = ops::copy_in(store, &c, &dir, copy_opts, &mut r);
                drop(r);
                let tar = h.join().map_err(|_| anyhow!("copy worker panicked"))?;
                // The container side's refusal first: it closed the pipe, so the tar writer
                // may only have seen a broken pipe.
                res.map_err(eng)?;
                tar.map_err(eng)?;
                Ok(())
            })?;
            Ok(0)
        }
    }
}

pub fn export(ctx: &Ctx, a: ExportArgs) -> Result<i32> {
    let store = open(ctx)?;
    let c = state::lookup(store, &a.container).map_err(eng)?;
    match &a.output {
        Some(p) => {
            let mut f = std::fs::File::create(p)
                .with_context(|| format!("cannot create {}", p.display()))?;
            ops::export(store, &c, &mut f).map_err(eng)?;
        }
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                bail!("cowardly refusing to write a tar to a terminal: use -o FILE or a pipe");
            }
            let mut out = std::io::stdout();
            ops::export(store, &c, &mut out).map_err(eng)?;
            out.flush()?;
        }
    }
    Ok(0)
}

pub fn diff(ctx: &Ctx, a: DiffArgs) -> Result<i32> {
    let store = open(ctx)?;
    let c = state::lookup(store, &a.container).map_err(eng)?;
    let mut out = std::io::stdout().lock();
    for (k, p) in ops::diff(store, &c).map_err(eng)? {
        writeln!(out, "{k} {p}")?;
    }
    Ok(0)
}

pub fn top(ctx: &Ctx, a: TopArgs) -> Result<i32> {
    let store = open(ctx)?;
    let c = state::lookup(store, &a.container).map_err(eng)?;
    let (titles, rows) = ops::top(&c, &a.ps_args).map_err(eng)?;
    let mut text = titles.join("\t");
    text.push('\n');
    for r in rows {
        text.push_str(&r.join("\t"));
        text.push('\n');
    }
    print!("{}", berth_format::tabwrite(&text, 20, 1));
    Ok(0)
}

pub fn stats(ctx: &Ctx, a: StatsArgs) -> Result<i32> {
    let store = open(ctx)?;
    let total = berth_engine::info::mem_total();
    let format = a
        .format
        .clone()
        .or_else(|| berth_format::config_format("statsFormat"));
    let fmt = berth_format::Format::new(format.as_deref(), view::STATS_TABLE)?;
    loop {
        let list: Vec<(String, state::Container)> = if a.containers.is_empty() {
            state::all(store)
                .map_err(eng)?
                .into_iter()
                .filter(|c| a.all || c.state.is_active())
                .map(|c| (c.id[..12].to_string(), c))
                .collect()
        } else {
            a.containers
                .iter()
                .map(|n| state::lookup(store, n).map(|c| (n.clone(), c)))
                .collect::<Result<_, _>>()
                .map_err(eng)?
        };
        // --no-stream: one sample, CPU % over the container's life (no second sample to
        // wait for); streaming: CPU % over each one-second interval.
        let cs: Vec<&state::Container> = list.iter().map(|(_, c)| c).collect();
        let rows: Vec<serde_json::Value> = if a.no_stream {
            list.iter()
                .zip(ops::stats_many(&cs))
                .map(|((given, c), s)| {
                    view::stats_row(c, &s, ops::lifetime_cpu_percent(c, &s), total, given)
                })
                .collect()
        } else {
            let first = ops::stats_many(&cs);
            let t0 = std::time::Instant::now();
            std::thread::sleep(std::time::Duration::from_secs(1));
            let wall = t0.elapsed().as_nanos().max(1);
            list.iter()
                .zip(first.iter().zip(ops::stats_many(&cs)))
                .map(|((given, c), (s0, s1))| {
                    let used = s1
                        .cgroup
                        .cpu_usage_ns
                        .saturating_sub(s0.cgroup.cpu_usage_ns);
                    #[allow(clippy::cast_precision_loss)] // a ratio of nanosecond counts
                    let pct = used as f64 * 100.0 / wall as f64;
                    view::stats_row(c, &s1, pct, total, given)
                })
                .collect()
        };
        let text = fmt.render(&rows, view::STATS_HEADERS)?;
        let mut out = std::io::stdout().lock();
        if !a.no_stream && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            write!(out, "\x1b[2J\x1b[H")?;
        }
        out.write_all(text.as_bytes())?;
        out.flush()?;
        if a.no_stream {
            return Ok(0);
        }
    }
}
