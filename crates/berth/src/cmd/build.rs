//! `build` (and `image build`), `history`, `commit`, `builder prune`: flags → berth-build calls.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context as _, Result};
use berth_build::{BuildOptions, Context, Event, ImageSource, Network, Progress};
use clap::{Args, Subcommand};

use super::{ago, human_size, Ctx, ExitError};

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The build context: a directory, or - for a tar archive (or a lone Dockerfile) on standard input.
    pub context: String,
    /// Name and optionally a tag (name:tag) for the image; may be repeated.
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// The Dockerfile (default CONTEXT/Dockerfile, else CONTEXT/Containerfile; - reads it from standard input).
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// Set a build-time variable (NAME=VALUE, or NAME to take it from the environment).
    #[arg(long = "build-arg", value_name = "NAME[=VALUE]")]
    pub build_args: Vec<String>,
    /// Build this stage (and what it needs) instead of the last one.
    #[arg(long)]
    pub target: Option<String>,
    /// Set a label on the image (KEY=VALUE).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Do not use the cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Do not use the cache for these stages.
    #[arg(long = "no-cache-filter", value_delimiter = ',')]
    pub no_cache_filter: Vec<String>,
    /// Always pull base images.
    #[arg(long)]
    pub pull: bool,
    /// Write the image id to this file.
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Print only the image id.
    #[arg(short, long)]
    pub quiet: bool,
    /// Progress output: auto, plain or tty.
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Network for RUN steps: default (bridge), none or host.
    #[arg(long)]
    pub network: Option<String>,
    /// Target platform (only the host's is supported).
    #[arg(long)]
    pub platform: Option<String>,
    /// A secret for RUN --mount=type=secret: id=ID,src=PATH.
    #[arg(long)]
    pub secret: Vec<String>,
    /// Layer compression: gzip (default) or zstd.
    #[arg(long)]
    pub compression: Option<String>,
    /// OCI runtime for RUN steps (default: berth's builtin one).
    #[arg(long)]
    pub runtime: Option<String>,
    /// Accepted for Docker compatibility (intermediate containers are always removed).
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true")]
    pub rm: Option<String>,
    /// Accepted for Docker compatibility.
    #[arg(long, hide = true)]
    pub force_rm: bool,
}

/// Pulls missing base images through the registry client.
struct Puller {
    root: PathBuf,
    quiet: bool,
}

impl ImageSource for Puller {
    fn pull(&self, reference: &str) -> std::result::Result<(), String> {
        let r = berth_image::Reference::parse(reference).map_err(|e| e.to_string())?;
        let store = berth_store::Store::open(&self.root).map_err(|e| e.to_string())?;
        let opts = berth_registry::PullOptions {
            progress: if self.quiet {
                berth_registry::ProgressMode::Quiet
            } else {
                berth_registry::ProgressMode::Auto
            },
            output: berth_registry::OutputStream::Stderr,
            ..berth_registry::PullOptions::default()
        };
        berth_registry::pull(&store, &r, &opts)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Quiet,
    Plain,
    Tty,
}

/// Renders build events on standard error.
struct Printer {
    mode: Mode,
    /// Partial output lines per step; the step's start time.
    state: Mutex<BTreeMap<usize, (Vec<u8>, String)>>,
}

impl Printer {
    fn out(&self, s: &str) {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(s.as_bytes());
        let _ = e.flush();
    }
}

impl Progress for Printer {
    fn event(&self, step: usize, e: Event<'_>) {
        if self.mode == Mode::Quiet {
            return;
        }
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        let tty = self.mode == Mode::Tty;
        match e {
            Event::Step {
                stage,
                n,
                total,
                text,
            } => {
                let title = format!("[{stage} {n}/{total}] {text}");
                st.insert(step, (Vec::new(), title.clone()));
                self.out(&format!("#{step} {title}\n"));
            }
            Event::Cached => self.out(&format!("#{step} CACHED\n")),
            Event::Miss(why) => self.out(&format!("#{step} cache miss: {why}\n")),
            Event::Output(data) => {
                let buf = &mut st.entry(step).or_default().0;
                buf.extend_from_slice(data);
                while let Some(p) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=p).collect();
                    let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
                    if tty {
                        // One live line per running step: the latest output.
                        let mut l: String = line.chars().take(100).collect();
                        l.retain(|c| !c.is_control());
                        self.out(&format!("\r\x1b[K#{step} {l}"));
                    } else {
                        self.out(&format!("#{step} {line}\n"));
                    }
                }
            }
            Event::Done(secs) => {
                if let Some((rest, _)) = st.remove(&step) {
                    if !rest.is_empty() && !tty {
                        self.out(&format!("#{step} {}\n", String::from_utf8_lossy(&rest)));
                    }
                }
                if tty {
                    self.out(&format!("\r\x1b[K#{step} DONE {secs:.1}s\n"));
                } else {
                    self.out(&format!("#{step} DONE {secs:.1}s\n"));
                }
            }
            Event::Note(n) => self.out(&format!("#{step} {n}\n")),
        }
    }
}

fn read_stdin() -> Result<Vec<u8>> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!("the build context is -, but standard input is a terminal; pipe a tar archive or a Dockerfile into berth build");
    }
    let mut buf = Vec::new();
    stdin.lock().read_to_end(&mut buf)?;
    Ok(buf)
}

fn looks_like_tar(b: &[u8]) -> bool {
    b.starts_with(&[0x1f, 0x8b]) || (b.len() >= 262 && &b[257..262] == b"ustar")
}

pub fn build(ctx: &Ctx, a: BuildArgs) -> Result<i32> {
    let store = ctx.store()?;
    let mut build_args = BTreeMap::new();
    for b in &a.build_args {
        match b.split_once('=') {
            Some((k, v)) => build_args.insert(k.to_string(), Some(v.to_string())),
            None => build_args.insert(b.clone(), None),
        };
    }
    let mut labels = BTreeMap::new();
    for l in &a.labels {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let mut secrets = BTreeMap::new();
    for s in &a.secret {
        let o: BTreeMap<&str, &str> = s.split(',').filter_map(|p| p.split_once('=')).collect();
        let id = o
            .get("id")
            .ok_or_else(|| anyhow!("--secret {s:?}: give id=ID,src=PATH"))?;
        let src = o
            .get("src")
            .or_else(|| o.get("source"))
            .map(|p| PathBuf::from(*p))
            .or_else(|| o.get("env").map(|_| PathBuf::new()))
            .ok_or_else(|| anyhow!("--secret {s:?}: give id=ID,src=PATH"))?;
        if !src.is_file() {
            bail!("--secret {s:?}: {} is not a file", src.display());
        }
        secrets.insert(id.to_string(), src);
    }
    let compression = match a.compression.as_deref() {
        None => None,
        Some("gzip") => Some(berth_image::Compression::Gzip),
        Some("zstd") => Some(berth_image::Compression::Zstd),
        Some(o) => bail!("--compression {o}: use gzip or zstd"),
    };
    // Context and Dockerfile.
    let (context, dockerfile, name) = if a.context == "-" {
        let data = read_stdin()?;
        if looks_like_tar(&data) {
            let c = Context::from_tar(store, &mut &data[..])?;
            let rel = a.file.clone().unwrap_or_else(|| "Dockerfile".into());
            let p = c.root.join(berth_build::context::confine(&rel));
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read {rel} from the context on standard input"))?;
            (c, text, rel)
        } else {
            // A lone Dockerfile: an empty context.
            let empty = store.tmp_path("context");
            std::fs::create_dir_all(&empty)?;
            let c = Context::from_tar(store, &mut std::io::empty())?;
            let _ = std::fs::remove_dir_all(&empty);
            let text =
                String::from_utf8(data).context("the Dockerfile on standard input is not UTF-8")?;
            (c, text, "Dockerfile".to_string())
        }
    } else {
        let dir = Path::new(&a.context);
        let (path, text, name) = match a.file.as_deref() {
            Some("-") => {
                let d = read_stdin()?;
                (
                    None,
                    String::from_utf8(d)
                        .context("the Dockerfile on standard input is not UTF-8")?,
                    "Dockerfile".to_string(),
                )
            }
            Some(f) => {
                let p = PathBuf::from(f);
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("cannot read the Dockerfile {f}"))?;
                (Some(p), text, f.to_string())
            }
            None => {
                let mut found = None;
                for n in ["Dockerfile", "Containerfile"] {
                    let p = dir.join(n);
                    if p.is_file() {
                        found = Some(p);
                        break;
                    }
                }
                let p = found.ok_or_else(|| {
                    anyhow!(
                        "no Dockerfile in {}: add one or give its path with -f",
                        dir.display()
                    )
                })?;
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("cannot read {}", p.display()))?;
                let n = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (Some(p), text, n)
            }
        };
        let ignore = path.map(|p| {
            let mut s = p.into_os_string();
            s.push(".dockerignore");
            PathBuf::from(s)
        });
        let c = Context::from_dir(dir, ignore.as_deref())?;
        (c, text, name)
    };
    let mode = if a.quiet {
        Mode::Quiet
    } else {
        match a.progress.as_str() {
            "plain" => Mode::Plain,
            "tty" => Mode::Tty,
            "quiet" => Mode::Quiet,
            "auto" => {
                if std::io::stderr().is_terminal() {
                    Mode::Tty
                } else {
                    Mode::Plain
                }
            }
            o => bail!("--progress {o}: use auto, plain, tty or quiet"),
        }
    };
    let opts = BuildOptions {
        dockerfile,
        dockerfile_name: name,
        tags: a.tags.clone(),
        build_args,
        target: a.target.clone(),
        labels,
        no_cache: a.no_cache,
        no_cache_filter: a.no_cache_filter.clone(),
        platform: a.platform.clone(),
        network: Network::parse(a.network.as_deref().unwrap_or("default"))?,
        pull: a.pull,
        compression,
        secrets,
        runtime: a.runtime.clone(),
    };
    let printer = Printer {
        mode,
        state: Mutex::new(BTreeMap::new()),
    };
    let puller = Puller {
        root: store.root().to_path_buf(),
        quiet: a.quiet,
    };
    let t0 = std::time::Instant::now();
    let res = berth_build::build(store, &context, &opts, &printer, Some(&puller));
    drop(context);
    let r = match res {
        Ok(r) => r,
        Err(e) => {
            let code = e.exit_code();
            return Err(ExitError {
                code: u8::try_from(code).unwrap_or(1),
                msg: e.to_string(),
            }
            .into());
        }
    };
    if let Some(p) = &a.iidfile {
        std::fs::write(p, r.image_id.as_str())
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    if a.quiet {
        println!("{}", r.image_id);
    } else {
        printer.out(&format!(
            "writing image {} done ({} steps cached, {} run, {:.1}s)\n",
            r.image_id,
            r.cached,
            r.executed,
            t0.elapsed().as_secs_f64()
        ));
        for t in &a.tags {
            printer.out(&format!("naming to {t} done\n"));
        }
    }
    Ok(0)
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    pub image: String,
    /// Do not truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Print sizes and dates in human-readable form.
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set)]
    pub human: bool,
    /// Output format: table, json, or a template such as '{{.CreatedBy}}'.
    #[arg(long)]
    pub format: Option<String>,
}

pub fn history(ctx: &Ctx, a: HistoryArgs) -> Result<i32> {
    let store = ctx.store()?;
    let rows = berth_build::history::history(store, &a.image)?;
    let docs: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let id = if a.no_trunc || r.id == "<missing>" {
                r.id.clone()
            } else {
                r.id.trim_start_matches("sha256:").chars().take(12).collect()
            };
            let created_by = if a.no_trunc || r.created_by.chars().count() <= 45 {
                r.created_by.clone()
            } else {
                format!("{}…", r.created_by.chars().take(44).collect::<String>())
            };
            serde_json::json!({
                "ID": id,
                "CreatedSince": if a.human { ago(r.created) } else { r.created.to_string() },
                "CreatedAt": chrono::DateTime::from_timestamp(r.created, 0).map(|d| d.to_rfc3339()).unwrap_or_default(),
                "CreatedBy": created_by,
                "Size": if a.human { human_size(r.size) } else { r.size.to_string() },
                "Comment": r.comment,
            })
        })
        .collect();
    if a.quiet {
        for d in &docs {
            println!("{}", d["ID"].as_str().unwrap_or(""));
        }
        return Ok(0);
    }
    super::print_rows(
        &docs,
        a.format.as_deref(),
        "historyFormat",
        "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
        &[
            ("ID", "IMAGE"),
            ("CreatedSince", "CREATED"),
            ("CreatedAt", "CREATED AT"),
            ("CreatedBy", "CREATED BY"),
        ],
    )?;
    Ok(0)
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    pub container: String,
    /// Repository and tag for the new image.
    pub reference: Option<String>,
    /// Apply Dockerfile instructions (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL).
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Commit message.
    #[arg(short, long)]
    pub message: Option<String>,
    /// Author.
    #[arg(short, long)]
    pub author: Option<String>,
    /// Accepted for Docker compatibility (containers are not paused).
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set)]
    pub pause: bool,
}

pub fn commit(ctx: &Ctx, a: CommitArgs) -> Result<i32> {
    let store = ctx.store()?;
    let id = berth_build::commit::commit(
        store,
        &a.container,
        &berth_build::commit::CommitOptions {
            reference: a.reference.clone(),
            changes: a.change.clone(),
            message: a.message.clone(),
            author: a.author.clone(),
        },
    )?;
    println!("{id}");
    Ok(0)
}

#[derive(Debug, Subcommand)]
pub enum BuilderCmd {
    /// Remove build cache entries (and layers only they kept).
    Prune(BuilderPruneArgs),
}

#[derive(Debug, Args)]
pub struct BuilderPruneArgs {
    /// Remove all cache entries (the default removes entries unused for 48 hours… unless --all).
    #[arg(short, long)]
    pub all: bool,
    /// Filters: until=DURATION (e.g. 24h) or until=TIMESTAMP.
    #[arg(long)]
    pub filter: Vec<String>,
    /// Do not ask for confirmation (berth never asks).
    #[arg(short, long)]
    pub force: bool,
}

pub fn builder_cmd(ctx: &Ctx, c: BuilderCmd) -> Result<i32> {
    match c {
        BuilderCmd::Prune(a) => {
            let store = ctx.store()?;
            let mut until: Option<i64> = None;
            for f in &a.filter {
                let Some(v) = f.strip_prefix("until=") else {
                    bail!("unsupported filter {f:?}; use until=DURATION");
                };
                let now = chrono::Utc::now().timestamp();
                let t = if let Ok(ts) = v.parse::<i64>() {
                    ts
                } else if let Ok(d) = chrono::DateTime::parse_from_rfc3339(v) {
                    d.timestamp()
                } else {
                    let secs = parse_duration_secs(v).ok_or_else(|| {
                        anyhow!("invalid until={v}: use e.g. 24h, 30m or a timestamp")
                    })?;
                    now - secs
                };
                until = Some(t);
            }
            let report = berth_build::cache::prune_store(store, until)?;
            println!(
                "Deleted build cache objects: {}\nTotal reclaimed space: {}",
                report.entries,
                human_size(report.bytes)
            );
            Ok(0)
        }
    }
}

fn parse_duration_secs(s: &str) -> Option<i64> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = num.parse().ok()?;
    Some(match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return None,
    })
}
