//! The builder: stages, instructions, cache, layers and the resulting image.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use berth_engine::config::{Bind, ContainerConfig, RestartPolicy, Tmpfs};
use berth_image::{layer_dir, Compression, Image, ImageStore, Layer, Reference};
use berth_net::{Attachment, NetworkMode};
use berth_store::{Digest, Store};
use serde_json::{json, Map, Value};

use crate::cache::{self, Hit};
use crate::context::{self, Context, Selected};
use crate::expand;
use crate::instr::{self, Mount, Sharing};
use crate::parser::{self, Instruction};
use crate::step::{self, Attrs, Item, StepRoot};
use crate::{BuildError, BuildOptions, BuildResult, Event, ImageSource, Network, Progress, Result};

/// Default PATH for RUN when the image sets none (Docker's).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Build args every build knows without a declaration in the Dockerfile (BuildKit's).
fn predefined_args() -> Vec<(&'static str, String)> {
    let arch = berth_image::archive::host_arch().to_string();
    vec![
        ("TARGETPLATFORM", format!("linux/{arch}")),
        ("TARGETOS", "linux".into()),
        ("TARGETARCH", arch.clone()),
        ("TARGETVARIANT", String::new()),
        ("BUILDPLATFORM", format!("linux/{arch}")),
        ("BUILDOS", "linux".into()),
        ("BUILDARCH", arch),
        ("BUILDVARIANT", String::new()),
    ]
}

/// Proxy args are passed to RUN without a declaration.
const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// A stage of the Dockerfile.
#[derive(Debug, Clone)]
struct Stage {
    index: usize,
    /// `AS name`, lower case.
    name: Option<String>,
    from: Instruction,
    /// The base as written, after expanding global args.
    base: String,
    body: Vec<Instruction>,
}

impl Stage {
    fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("stage-{}", self.index))
    }
}

/// The state of a stage being built.
#[derive(Debug, Clone)]
struct State {
    layers: Vec<Layer>,
    /// The image config's `config` object.
    config: Map<String, Value>,
    history: Vec<Value>,
    /// Cache key of everything so far.
    key: String,
    architecture: String,
    author: Option<String>,
    /// RFC 3339 time of the newest layer (history times; the image's `created`).
    created: String,
    /// ARGs in scope with their values.
    args: BTreeMap<String, String>,
    /// Whether CMD was set in this stage (ENTRYPOINT resets an inherited CMD only).
    cmd_set: bool,
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl State {
    fn env(&self) -> Vec<(String, String)> {
        self.config
            .get("Env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|e| match e.split_once('=') {
                        Some((k, v)) => (k.to_string(), v.to_string()),
                        None => (e.to_string(), String::new()),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn set_env(&mut self, k: &str, v: &str) {
        let mut env = self.env();
        match env.iter_mut().find(|(ek, _)| ek == k) {
            Some(e) => e.1 = v.to_string(),
            None => env.push((k.to_string(), v.to_string())),
        }
        self.config.insert(
            "Env".into(),
            json!(env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()),
        );
    }

    /// Variables for expansion: ENV wins over ARG (as in Docker).
    fn lookup(&self, name: &str) -> Option<String> {
        self.env()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .or_else(|| self.args.get(name).cloned())
    }

    fn str_field(&self, k: &str) -> String {
        self.config
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }

    fn shell(&self) -> Vec<String> {
        self.config
            .get("Shell")
            .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    fn fold(&mut self, what: &str) {
        self.key = cache::key(&self.key, what, "");
    }

    fn history(&mut self, created_by: String, empty: bool) {
        let mut h = json!({
            "created": self.created,
            "created_by": created_by,
            "comment": "buildkit.dockerfile.v0",
        });
        if empty {
            h["empty_layer"] = json!(true);
        }
        self.history.push(h);
    }

    fn lowers(&self, store: &Store) -> Vec<PathBuf> {
        self.layers
            .iter()
            .map(|l| layer_dir(store, &l.diff_id))
            .collect()
    }
}

/// Shared, read-only inputs of a build.
struct Build<'a> {
    opts: &'a BuildOptions,
    ctx: &'a Context,
    progress: &'a dyn Progress,
    source: Option<&'a dyn ImageSource>,
    file: String,
    escape: char,
    stages: Vec<Stage>,
    /// Global ARG values (before the first FROM).
    global_args: BTreeMap<String, String>,
    /// Finished stages' states, by index.
    done: Mutex<HashMap<usize, State>>,
    counts: Mutex<(usize, usize)>,
    pulled: Mutex<HashSet<String>>,
    next_step: AtomicUsize,
}

thread_local! {
    /// The step this thread is working on (for progress events).
    static STEP: Cell<usize> = const { Cell::new(0) };
}

fn ins_err(file: &str, ins: &Instruction, msg: impl Into<String>) -> BuildError {
    BuildError::Instruction {
        file: file.to_string(),
        line: ins.line,
        msg: format!("{}: {}", ins.keyword, msg.into()),
    }
}

/// Build the Dockerfile in `opts` with context `ctx`. `source` pulls missing base images
/// (`None`: they must be in the store). Returns the new image's id; on failure no image is
/// created or tagged (layers of the steps that succeeded stay in the cache).
pub fn build(
    store: &Store,
    ctx: &Context,
    opts: &BuildOptions,
    progress: &dyn Progress,
    source: Option<&dyn ImageSource>,
) -> Result<BuildResult> {
    let file = if opts.dockerfile_name.is_empty() {
        "Dockerfile".to_string()
    } else {
        opts.dockerfile_name.clone()
    };
    let tags = opts
        .tags
        .iter()
        .map(|t| {
            Reference::parse(t).map_err(|e| BuildError::Other(format!("invalid tag {t:?}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(p) = &opts.platform {
        check_platform(p).map_err(|m| BuildError::Other(format!("--platform {p}: {m}")))?;
    }
    let df = parser::parse(&file, &opts.dockerfile)?;
    cache::migrate(store)?;
    let _lock = store.lock_shared()?;
    cache::lease_legacy_entries(store)?;
    // Leftovers of builds killed during a step (mounts, containers, network sandboxes).
    if let Err(e) = crate::recover::recover(store) {
        tracing::warn!("recovering killed build steps: {e}");
    }
    // Global args and stages.
    let mut global_args: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in predefined_args() {
        global_args.insert(k.to_string(), v);
    }
    let mut stages: Vec<Stage> = Vec::new();
    for ins in &df.instructions {
        if ins.keyword == "FROM" {
            let lookup = |n: &str| global_args.get(n).cloned();
            let words =
                expand::words(&ins.args, &lookup, df.escape).map_err(|e| ins_err(&file, ins, e))?;
            let (base, name) = match words.as_slice() {
                [b] => (b.clone(), None),
                [b, as_, n] if as_.eq_ignore_ascii_case("as") => {
                    (b.clone(), Some(n.to_ascii_lowercase()))
                }
                _ => {
                    return Err(ins_err(
                        &file,
                        ins,
                        "expected FROM [--platform=P] IMAGE [AS NAME]",
                    ))
                }
            };
            if let Some(n) = &name {
                if stages.iter().any(|s| s.name.as_deref() == Some(n.as_str())) {
                    return Err(ins_err(&file, ins, format!("duplicate stage name {n:?}")));
                }
            }
            if base.is_empty() {
                return Err(ins_err(
                    &file,
                    ins,
                    "the base image name is empty (an unset ARG?)",
                ));
            }
            if let Some(p) = ins.flag("platform") {
                let p = expand::word(p, &lookup, df.escape).map_err(|e| ins_err(&file, ins, e))?;
                check_platform(&p)
                    .map_err(|m| ins_err(&file, ins, format!("--platform={p}: {m}")))?;
            }
            stages.push(Stage {
                index: stages.len(),
                name,
                from: ins.clone(),
                base,
                body: Vec::new(),
            });
        } else if let Some(st) = stages.last_mut() {
            st.body.push(ins.clone());
        } else if ins.keyword == "ARG" {
            let lookup = |n: &str| global_args.get(n).cloned();
            let pairs = arg_pairs(ins, &lookup, df.escape).map_err(|e| ins_err(&file, ins, e))?;
            for (k, def) in pairs {
                if let Some(v) = build_arg(opts, &k).or(def) {
                    global_args.insert(k, v);
                } else {
                    global_args.remove(&k);
                }
            }
        } else {
            return Err(BuildError::Syntax {
                file: file.clone(),
                line: ins.line,
                msg: format!(
                    "{} before the first FROM; only ARG may come before FROM",
                    ins.keyword
                ),
            });
        }
    }
    if stages.is_empty() {
        return Err(BuildError::Syntax {
            file: file.clone(),
            line: 1,
            msg: "the Dockerfile has no FROM instruction".into(),
        });
    }
    let target = match &opts.target {
        None => stages.len() - 1,
        Some(t) => stages
            .iter()
            .position(|s| s.name.as_deref() == Some(t.to_ascii_lowercase().as_str()))
            .ok_or_else(|| {
                BuildError::Other(format!(
                    "target stage {t:?} is not in {file}; stages: {}",
                    stages
                        .iter()
                        .filter_map(|s| s.name.clone())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?,
    };
    let b = Build {
        opts,
        ctx,
        progress,
        source,
        file,
        escape: df.escape,
        stages,
        global_args,
        done: Mutex::new(HashMap::new()),
        counts: Mutex::new((0, 0)),
        pulled: Mutex::new(HashSet::new()),
        next_step: AtomicUsize::new(1),
    };
    // Stages the target needs (and only those).
    let needed = b.needed(target);
    b.run_stages(store, &needed)?;
    let state = b
        .done
        .lock()
        .map_err(|_| BuildError::Other("a build thread panicked".into()))?
        .remove(&target)
        .ok_or_else(|| BuildError::Other("the target stage was not built".into()))?;
    let id = commit_state(store, &state, &opts.labels, &tags)?;
    let (cached, executed) = *b
        .counts
        .lock()
        .map_err(|_| BuildError::Other("lock".into()))?;
    Ok(BuildResult {
        image_id: id,
        cached,
        executed,
    })
}

/// `Ok` when `platform` (`linux/amd64`, `amd64`, `linux/arm64/v8`, …) names the host's; the
/// reason otherwise. Docker's normalisation: `x86_64` is `amd64`, `aarch64` is `arm64`.
fn check_platform(platform: &str) -> std::result::Result<(), String> {
    let host = berth_image::archive::host_arch();
    let parts: Vec<String> = platform
        .split('/')
        .map(|p| p.trim().to_ascii_lowercase())
        .collect();
    let (os, arch) = match parts.as_slice() {
        [a] => ("linux", a.as_str()),
        [o, a] | [o, a, _] => (o.as_str(), a.as_str()),
        _ => return Err("expected OS/ARCH[/VARIANT], e.g. linux/amd64".into()),
    };
    let arch = match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    if os == "linux" && arch == host {
        return Ok(());
    }
    Err(format!(
        "berth builds only for this host's platform (linux/{host}): RUN steps run natively, without emulation; drop --platform or use linux/{host}"
    ))
}

fn build_arg(opts: &BuildOptions, k: &str) -> Option<String> {
    match opts.build_args.get(k) {
        Some(Some(v)) => Some(v.clone()),
        Some(None) => std::env::var(k).ok(),
        None => None,
    }
}

/// `ARG a=1 b` → [(a, Some(1)), (b, None)].
fn arg_pairs(
    ins: &Instruction,
    vars: &dyn expand::Vars,
    escape: char,
) -> std::result::Result<Vec<(String, Option<String>)>, String> {
    let raw = expand::split_raw(&ins.args, escape)?;
    raw.iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), Some(expand::word(v, vars, escape)?))),
            None => Ok((w.clone(), None)),
        })
        .collect()
}

/// Write the image: config blob and row, tags.
fn commit_state(
    store: &Store,
    st: &State,
    labels: &BTreeMap<String, String>,
    tags: &[Reference],
) -> Result<Digest> {
    let mut config = st.config.clone();
    if !labels.is_empty() {
        let mut l = config
            .get("Labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in labels {
            l.insert(k.clone(), json!(v));
        }
        config.insert("Labels".into(), Value::Object(l));
    }
    let mut doc = json!({
        "architecture": st.architecture,
        "os": "linux",
        "created": st.created,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": st.layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>()},
        "history": st.history,
    });
    if let Some(a) = &st.author {
        doc["author"] = json!(a);
    }
    let bytes = serde_json::to_vec(&doc).map_err(|e| BuildError::Other(e.to_string()))?;
    let images = ImageStore::open(store)?;
    Ok(images.commit_image(&bytes, &st.layers, None, tags, None)?)
}

/// The base state of an image.
fn state_of_image(img: &Image) -> State {
    let raw: Value = serde_json::from_slice(&img.raw_config).unwrap_or(Value::Null);
    let config = raw
        .get("config")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let history = raw
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    State {
        layers: img.layers.clone(),
        config,
        history,
        key: cache::key("", &format!("FROM {}", img.id), ""),
        architecture: img.architecture(),
        author: raw
            .get("author")
            .and_then(Value::as_str)
            .map(str::to_string),
        created: raw
            .get("created")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| rfc3339(img.created)),
        args: BTreeMap::new(),
        cmd_set: false,
    }
}

fn scratch_state() -> State {
    State {
        layers: Vec::new(),
        config: Map::new(),
        history: Vec::new(),
        key: cache::key("", "FROM scratch", ""),
        architecture: berth_image::archive::host_arch().to_string(),
        author: None,
        created: rfc3339(0),
        args: BTreeMap::new(),
        cmd_set: false,
    }
}

impl Build<'_> {
    fn emit(&self, e: Event<'_>) {
        self.progress.event(STEP.with(Cell::get), e);
    }

    /// Start a new step number for this thread.
    fn begin_step(&self) {
        let n = self.next_step.fetch_add(1, Ordering::SeqCst);
        STEP.with(|s| s.set(n));
    }
    fn stage_by_ref(&self, r: &str, before: usize) -> Option<usize> {
        let l = r.to_ascii_lowercase();
        if let Ok(n) = l.parse::<usize>() {
            return (n < before).then_some(n);
        }
        self.stages[..before]
            .iter()
            .position(|s| s.name.as_deref() == Some(l.as_str()))
    }

    /// Stages `target` depends on (FROM another stage, COPY --from, RUN --mount from=), plus itself.
    fn needed(&self, target: usize) -> Vec<usize> {
        let mut need = HashSet::new();
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if !need.insert(i) {
                continue;
            }
            let s = &self.stages[i];
            let lookup =
                |n: &str| build_arg(self.opts, n).or_else(|| self.global_args.get(n).cloned());
            if let Some(d) = self.stage_by_ref(&s.base, i) {
                todo.push(d);
            }
            for ins in &s.body {
                let mut refs: Vec<String> = Vec::new();
                if let Some(f) = ins.flag("from") {
                    refs.push(f.to_string());
                }
                for m in ins.flag_all("mount") {
                    if let Some(f) = instr::csv_opts(m).get("from") {
                        refs.push(f.clone());
                    }
                }
                for r in refs {
                    let r = expand::word(&r, &lookup, self.escape).unwrap_or(r);
                    if let Some(d) = self.stage_by_ref(&r, i) {
                        todo.push(d);
                    }
                }
            }
        }
        let mut v: Vec<usize> = need.into_iter().collect();
        v.sort_unstable();
        v
    }

    /// Build `needed` stages; independent ones in parallel (each thread opens its own store).
    fn run_stages(&self, store: &Store, needed: &[usize]) -> Result<()> {
        if needed.len() == 1 {
            let st = self.run_stage(store, needed[0])?;
            self.done
                .lock()
                .map_err(|_| BuildError::Other("lock".into()))?
                .insert(needed[0], st);
            return Ok(());
        }
        // Waves: a stage runs once every stage it needs is done.
        let deps: HashMap<usize, Vec<usize>> = needed
            .iter()
            .map(|&i| {
                let d: Vec<usize> = self.needed(i).into_iter().filter(|&j| j != i).collect();
                (i, d)
            })
            .collect();
        let mut remaining: Vec<usize> = needed.to_vec();
        let root = store.root().to_path_buf();
        while !remaining.is_empty() {
            let ready: Vec<usize> = {
                let done = self
                    .done
                    .lock()
                    .map_err(|_| BuildError::Other("lock".into()))?;
                remaining
                    .iter()
                    .copied()
                    .filter(|i| deps[i].iter().all(|d| done.contains_key(d)))
                    .collect()
            };
            if ready.is_empty() {
                return Err(BuildError::Other(
                    "stages depend on each other in a cycle".into(),
                ));
            }
            remaining.retain(|i| !ready.contains(i));
            if ready.len() == 1 {
                let st = self.run_stage(store, ready[0])?;
                self.done
                    .lock()
                    .map_err(|_| BuildError::Other("lock".into()))?
                    .insert(ready[0], st);
                continue;
            }
            let results: Vec<(usize, Result<State>)> = std::thread::scope(|s| {
                let hs: Vec<_> = ready
                    .iter()
                    .map(|&i| {
                        let root = root.clone();
                        s.spawn(move || {
                            let r = Store::open(&root)
                                .map_err(BuildError::from)
                                .and_then(|st| self.run_stage(&st, i));
                            (i, r)
                        })
                    })
                    .collect();
                hs.into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            (
                                usize::MAX,
                                Err(BuildError::Other("a build thread panicked".into())),
                            )
                        })
                    })
                    .collect()
            });
            for (i, r) in results {
                let st = r?;
                self.done
                    .lock()
                    .map_err(|_| BuildError::Other("lock".into()))?
                    .insert(i, st);
            }
        }
        Ok(())
    }

    fn count(&self, cached: bool) {
        if let Ok(mut c) = self.counts.lock() {
            if cached {
                c.0 += 1;
            } else {
                c.1 += 1;
            }
        }
    }

    /// Resolve an image reference in the store, pulling it if allowed and needed.
    fn image(&self, store: &Store, name: &str) -> Result<Image> {
        let images = ImageStore::open(store)?;
        let want_pull = self.opts.pull
            && !self
                .pulled
                .lock()
                .map(|p| p.contains(name))
                .unwrap_or(false);
        if !want_pull {
            match images.resolve(name) {
                Ok(i) => return Ok(i),
                Err(berth_image::ImageError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let Some(src) = self.source else {
            return Err(BuildError::BaseImage(name.to_string()));
        };
        self.emit(Event::Note(&format!("pulling {name}")));
        src.pull(name)
            .map_err(|e| BuildError::Other(format!("pulling base image {name:?}: {e}")))?;
        if let Ok(mut p) = self.pulled.lock() {
            p.insert(name.to_string());
        }
        Ok(images.resolve(name)?)
    }

    fn run_stage(&self, store: &Store, idx: usize) -> Result<State> {
        let stage = &self.stages[idx];
        let label = stage.label();
        let total = stage.body.len() + 1;
        let t0 = Instant::now();
        self.begin_step();
        self.emit(Event::Step {
            stage: &label,
            n: 1,
            total,
            text: &stage.from.text(),
        });
        let mut st = if let Some(dep) = self.stage_by_ref(&stage.base, idx) {
            let done = self
                .done
                .lock()
                .map_err(|_| BuildError::Other("lock".into()))?;
            let mut s = done
                .get(&dep)
                .cloned()
                .ok_or_else(|| BuildError::Other(format!("stage {dep} was not built")))?;
            s.args.clear();
            s.cmd_set = false;
            s
        } else if stage.base.eq_ignore_ascii_case("scratch") {
            scratch_state()
        } else {
            let img = self.image(store, &stage.base).map_err(|e| match e {
                BuildError::BaseImage(_) | BuildError::Other(_) => BuildError::Instruction {
                    file: self.file.clone(),
                    line: stage.from.line,
                    msg: e.to_string(),
                },
                e => e,
            })?;
            let arch = img.architecture();
            if !arch.is_empty() && check_platform(&format!("linux/{arch}")).is_err() {
                return Err(BuildError::Instruction {
                    file: self.file.clone(),
                    line: stage.from.line,
                    msg: format!(
                        "FROM {}: the image is for linux/{arch}, but berth builds only for this host's platform (linux/{}): RUN steps run natively, without emulation; use an image for linux/{}",
                        stage.base,
                        berth_image::archive::host_arch(),
                        berth_image::archive::host_arch()
                    ),
                });
            }
            state_of_image(&img)
        };
        self.emit(Event::Done(t0.elapsed().as_secs_f64()));
        // ONBUILD triggers of the base image run first.
        let triggers: Vec<String> = st
            .config
            .remove("OnBuild")
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let mut body: Vec<Instruction> = Vec::new();
        for t in &triggers {
            let t = t.trim();
            let (kw, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
            let mut ins =
                parser::parse_rest(&self.file, stage.from.line, &kw.to_ascii_uppercase(), rest)?;
            // Heredocs inside a trigger: re-parse the trigger text as a small Dockerfile.
            if !parser::heredoc_starts(&ins.args).is_empty() {
                if let Ok(d) = parser::parse(&self.file, t) {
                    if let Some(i) = d.instructions.into_iter().next() {
                        ins = Instruction {
                            line: stage.from.line,
                            ..i
                        };
                    }
                }
            }
            body.push(ins);
        }
        body.extend(stage.body.iter().cloned());
        let total = body.len() + 1;
        let no_cache = self.opts.no_cache
            || self
                .opts
                .no_cache_filter
                .iter()
                .any(|f| f.eq_ignore_ascii_case(&label) || *f == idx.to_string());
        let mut missed = no_cache;
        for (n, ins) in body.iter().enumerate() {
            let t = Instant::now();
            self.begin_step();
            self.emit(Event::Step {
                stage: &label,
                n: n + 2,
                total,
                text: &ins.text(),
            });
            self.instruction(
                store,
                stage,
                &mut st,
                ins,
                no_cache,
                &mut missed,
                n + 2,
                total,
            )?;
            self.emit(Event::Done(t.elapsed().as_secs_f64()));
        }
        Ok(st)
    }

    fn vars<'s>(&self, st: &'s State) -> impl Fn(&str) -> Option<String> + 's {
        move |n: &str| st.lookup(n)
    }

    #[allow(clippy::too_many_arguments)]
    fn instruction(
        &self,
        store: &Store,
        stage: &Stage,
        st: &mut State,
        ins: &Instruction,
        no_cache: bool,
        missed: &mut bool,
        n: usize,
        total: usize,
    ) -> Result<()> {
        let e = self.escape;
        let err = |m: String| ins_err(&self.file, ins, m);
        match ins.keyword.as_str() {
            "ARG" => {
                let pairs = arg_pairs(ins, &self.vars(st), e).map_err(err)?;
                for (k, def) in pairs {
                    let v = build_arg(self.opts, &k)
                        .or(def)
                        .or_else(|| self.global_args.get(&k).cloned());
                    match v {
                        Some(v) => {
                            st.fold(&format!("ARG {k}={v}"));
                            st.args.insert(k, v);
                        }
                        None => {
                            st.fold(&format!("ARG {k}"));
                            st.args.remove(&k);
                        }
                    }
                }
                Ok(())
            }
            "ENV" => {
                let pairs = expand::pairs(&ins.args, &self.vars(st), e, true).map_err(err)?;
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    st.set_env(&k, &v);
                    shown.push(format!("{k}={v}"));
                }
                let text = format!("ENV {}", shown.join(" "));
                st.fold(&text);
                st.history(text, true);
                Ok(())
            }
            "LABEL" => {
                let pairs = expand::pairs(&ins.args, &self.vars(st), e, true).map_err(err)?;
                let mut l = st
                    .config
                    .get("Labels")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    shown.push(format!("{k}={v}"));
                    l.insert(k, json!(v));
                }
                st.config.insert("Labels".into(), Value::Object(l));
                st.history(format!("LABEL {}", shown.join(" ")), true);
                Ok(())
            }
            "MAINTAINER" => {
                st.author = Some(ins.args.clone());
                st.history(format!("MAINTAINER {}", ins.args), true);
                Ok(())
            }
            "WORKDIR" => {
                let w = expand::word(&ins.args, &self.vars(st), e).map_err(err)?;
                let cur = st.str_field("WorkingDir");
                let path = if w.starts_with('/') {
                    w
                } else {
                    format!(
                        "{}/{}",
                        if cur.is_empty() {
                            ""
                        } else {
                            cur.trim_end_matches('/')
                        },
                        w
                    )
                };
                let path = normalize_abs(&path);
                st.config.insert("WorkingDir".into(), json!(path));
                let text = format!("WORKDIR {path}");
                if path == "/" {
                    st.fold(&text);
                    st.history(text, true);
                    return Ok(());
                }
                // As BuildKit: the directory is created (owned by USER) when missing; the step
                // has a layer only when it created something.
                let user = st.str_field("User");
                let instruction = format!("WORKDIR {path} user={user}");
                let key = cache::key(&st.key, &instruction, "");
                if self.try_cache(store, st, &key, &text, no_cache)? {
                    return Ok(());
                }
                let none = BTreeMap::new();
                self.miss(store, st, &instruction, &none, no_cache, missed)?;
                let root = StepRoot::new(store, &st.lowers(store), true)?;
                let merged = root.merged();
                if !step::is_dir_in(&merged, &path) {
                    let owner = if user.is_empty() {
                        (0, 0)
                    } else {
                        let u = berth_engine::user::resolve(&merged, &user, &[])
                            .map_err(|e| err(format!("USER {user}: {e}")))?;
                        (u.uid, u.gid)
                    };
                    step::mkdir_p_in(&merged, &path, owner).map_err(|e| err(e.to_string()))?;
                }
                self.finish_step(store, st, root, &key, &instruction, &none, text)
            }
            "USER" => {
                let u = expand::word(&ins.args, &self.vars(st), e).map_err(err)?;
                st.config.insert("User".into(), json!(u));
                let text = format!("USER {u}");
                st.fold(&text);
                st.history(text, true);
                Ok(())
            }
            "SHELL" => {
                let v = ins.json.clone().filter(|v| !v.is_empty()).ok_or_else(|| {
                    err("requires the JSON form, e.g. SHELL [\"/bin/bash\", \"-c\"]".into())
                })?;
                st.config.insert("Shell".into(), json!(v));
                let text = format!("SHELL {}", json!(v));
                st.fold(&text);
                st.history(text, true);
                Ok(())
            }
            "CMD" | "ENTRYPOINT" => {
                let v = match &ins.json {
                    Some(v) => v.clone(),
                    None => {
                        let mut s = st.shell();
                        s.push(ins.args.clone());
                        s
                    }
                };
                if ins.keyword == "CMD" {
                    st.config.insert("Cmd".into(), json!(v));
                    st.cmd_set = true;
                } else {
                    st.config.insert("Entrypoint".into(), json!(v));
                    if !st.cmd_set {
                        st.config.insert("Cmd".into(), Value::Null);
                    }
                }
                st.history(format!("{} {}", ins.keyword, json!(v)), true);
                Ok(())
            }
            "EXPOSE" => {
                let words = expand::words(&ins.args, &self.vars(st), e).map_err(err)?;
                let mut ports = st
                    .config
                    .get("ExposedPorts")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                for p in &words {
                    let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                    let proto = proto.to_ascii_lowercase();
                    let ok = num
                        .split_once('-')
                        .map(|(a, b)| a.parse::<u16>().is_ok() && b.parse::<u16>().is_ok())
                        .unwrap_or_else(|| num.parse::<u16>().is_ok());
                    if !ok || !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                        return Err(err(format!("invalid port {p:?}; use PORT[/tcp|udp|sctp]")));
                    }
                    ports.insert(format!("{num}/{proto}"), json!({}));
                }
                st.config
                    .insert("ExposedPorts".into(), Value::Object(ports));
                st.history(format!("EXPOSE {}", words.join(" ")), true);
                Ok(())
            }
            "VOLUME" => {
                let list = match &ins.json {
                    Some(v) => v
                        .iter()
                        .map(|w| expand::word(w, &self.vars(st), e))
                        .collect::<std::result::Result<Vec<_>, _>>()
                        .map_err(err)?,
                    None => expand::words(&ins.args, &self.vars(st), e).map_err(err)?,
                };
                let mut vols = st
                    .config
                    .get("Volumes")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                for v in &list {
                    if v.is_empty() {
                        return Err(err("a volume path is empty".into()));
                    }
                    vols.insert(v.clone(), json!({}));
                }
                st.config.insert("Volumes".into(), Value::Object(vols));
                st.history(format!("VOLUME {}", json!(list)), true);
                Ok(())
            }
            "STOPSIGNAL" => {
                let s = expand::word(&ins.args, &self.vars(st), e).map_err(err)?;
                berth_engine::config::parse_signal(&s).map_err(|_| {
                    err(format!(
                        "invalid signal {s:?}; use a name (SIGTERM) or number"
                    ))
                })?;
                st.config.insert("StopSignal".into(), json!(s));
                st.history(format!("STOPSIGNAL {s}"), true);
                Ok(())
            }
            "HEALTHCHECK" => {
                let hc =
                    instr::healthcheck(&ins.flags, &ins.args, ins.json.as_ref()).map_err(err)?;
                st.config.insert("Healthcheck".into(), hc);
                st.history(format!("HEALTHCHECK {}", ins.args), true);
                Ok(())
            }
            "ONBUILD" => {
                let t = ins.args.trim();
                let kw = t
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase();
                if matches!(kw.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                    return Err(err(format!("{kw} is not allowed as an ONBUILD trigger")));
                }
                let mut list: Vec<Value> = st
                    .config
                    .get("OnBuild")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                list.push(json!(t));
                st.config.insert("OnBuild".into(), Value::Array(list));
                st.history(format!("ONBUILD {t}"), true);
                Ok(())
            }
            "RUN" => self.run(store, stage, st, ins, no_cache, missed, n, total),
            "COPY" | "ADD" => self.copy(store, stage, st, ins, no_cache, missed),
            other => Err(err(format!("unknown instruction {other}"))),
        }
    }

    /// Look `key` up; on a hit apply it to `st`. Returns true on a hit.
    fn try_cache(
        &self,
        store: &Store,
        st: &mut State,
        key: &str,
        created_by: &str,
        no_cache: bool,
    ) -> Result<bool> {
        if no_cache {
            return Ok(false);
        }
        let Some((hit, created)) = cache::lookup_with_time(store, key)? else {
            return Ok(false);
        };
        let images = ImageStore::open(store)?;
        match hit {
            Hit::Empty => {
                st.key = key.to_string();
                st.created = rfc3339(created);
                st.history(created_by.to_string(), true);
            }
            Hit::Layer(d) => {
                let Some(layer) = images
                    .layer_by_diff_id(&d)?
                    .filter(|l| store.has_blob(&l.blob))
                else {
                    cache::forget(store, key)?;
                    return Ok(false);
                };
                st.layers.push(layer);
                st.key = key.to_string();
                st.created = rfc3339(created);
                st.history(created_by.to_string(), false);
            }
        }
        self.count(true);
        self.emit(Event::Cached);
        Ok(true)
    }

    #[allow(clippy::too_many_arguments)]
    fn miss(
        &self,
        store: &Store,
        st: &State,
        instruction: &str,
        inputs: &BTreeMap<String, String>,
        no_cache: bool,
        missed: &mut bool,
    ) -> Result<()> {
        let why = if no_cache {
            "cache disabled (--no-cache)".to_string()
        } else if *missed {
            "an earlier step was rebuilt".to_string()
        } else {
            cache::explain_miss(store, &st.key, instruction, inputs)?
        };
        *missed = true;
        self.emit(Event::Miss(&why));
        Ok(())
    }

    fn compression(&self) -> Compression {
        self.opts.compression.unwrap_or(Compression::Gzip)
    }

    /// Finish a layer step: record the cache entry and apply the layer.
    #[allow(clippy::too_many_arguments)]
    fn finish_step(
        &self,
        store: &Store,
        st: &mut State,
        root: StepRoot,
        key: &str,
        instruction: &str,
        inputs: &BTreeMap<String, String>,
        created_by: String,
    ) -> Result<()> {
        let images = ImageStore::open(store)?;
        let layer = root.into_layer(&images, self.compression())?;
        cache::insert(
            store,
            key,
            &st.key,
            instruction,
            inputs,
            layer.as_ref().map(|l| &l.diff_id),
        )?;
        st.key = key.to_string();
        st.created = rfc3339(chrono::Utc::now().timestamp());
        let empty = layer.is_none();
        if let Some(l) = layer {
            st.layers.push(l);
        }
        st.history(created_by, empty);
        self.count(false);
        Ok(())
    }

    /// Layers of a `--from` reference: an earlier stage or an image.
    fn layers_of_ref(&self, store: &Store, stage: &Stage, r: &str) -> Result<(Vec<Layer>, String)> {
        if let Some(i) = self.stage_by_ref(r, stage.index) {
            let done = self
                .done
                .lock()
                .map_err(|_| BuildError::Other("lock".into()))?;
            let s = done
                .get(&i)
                .ok_or_else(|| BuildError::Other(format!("stage {r} was not built")))?;
            return Ok((s.layers.clone(), s.key.clone()));
        }
        let img = self.image(store, r)?;
        Ok((img.layers.clone(), format!("image {}", img.id)))
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        store: &Store,
        stage: &Stage,
        st: &mut State,
        ins: &Instruction,
        no_cache: bool,
        missed: &mut bool,
        n: usize,
        total: usize,
    ) -> Result<()> {
        let err = |m: String| ins_err(&self.file, ins, m);
        let shell = st.shell();
        // The process: exec form, shell form, or a heredoc script.
        let mut script: Option<(String, String)> = None;
        let args: Vec<String> = if let Some(j) = &ins.json {
            j.clone()
        } else if ins.heredocs.len() == 1
            && ins.args.trim().starts_with("<<")
            && parser::heredoc_starts(&ins.args).len() == 1
            && ins.args.split_whitespace().count() == 1
        {
            let h = &ins.heredocs[0];
            if h.content.starts_with("#!") {
                script = Some((h.name.clone(), h.content.clone()));
                vec![format!("/dev/pipes/{}", h.name)]
            } else {
                let mut v = shell.clone();
                v.push(h.content.clone());
                v
            }
        } else {
            let mut text = ins.args.clone();
            text.push('\n');
            for h in &ins.heredocs {
                text.push_str(&h.raw);
            }
            let mut v = shell.clone();
            v.push(text.trim_end_matches('\n').to_string());
            v
        };
        let mounts: Vec<Mount> = ins
            .flag_all("mount")
            .iter()
            .map(|m| {
                let m = expand::word(m, &self.vars(st), self.escape).map_err(err)?;
                instr::mount(&m).map_err(err)
            })
            .collect::<Result<_>>()?;
        let network = match ins.flag("network") {
            Some(n) => Network::parse(n).map_err(|e| err(e.to_string()))?,
            None => self.opts.network,
        };
        // Environment: ENV, then ARGs not shadowed by ENV.
        let mut env: Vec<String> = st.env().iter().map(|(k, v)| format!("{k}={v}")).collect();
        let env_keys: HashSet<String> = st.env().into_iter().map(|(k, _)| k).collect();
        for (k, v) in &st.args {
            if !env_keys.contains(k) {
                env.push(format!("{k}={v}"));
            }
        }
        for p in PROXY_ARGS {
            if let Some(v) = build_arg(self.opts, p) {
                if !env_keys.contains(*p) && !st.args.contains_key(*p) {
                    env.push(format!("{p}={v}"));
                }
            }
        }
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, format!("PATH={DEFAULT_PATH}"));
        }
        let created_by = format!(
            "RUN {} # buildkit",
            if ins.json.is_some() {
                json!(args).to_string()
            } else {
                args.join(" ")
            }
        );
        // Inputs of bind mounts from the context are part of the key.
        let mut inputs = BTreeMap::new();
        let mut input_digest = String::new();
        for m in &mounts {
            if let Mount::Bind {
                source, from: None, ..
            } = m
            {
                let sel = self
                    .ctx
                    .select(if source.is_empty() { "." } else { source })?;
                let (d, files) = self.ctx.hash(&sel, 2000)?;
                input_digest.push_str(d.as_str());
                inputs.extend(files);
            } else if let Mount::Bind { from: Some(f), .. } = m {
                let (_, k) = self.layers_of_ref(store, stage, f)?;
                input_digest.push_str(&k);
            }
        }
        let instruction = format!(
            "RUN {} mounts={:?} network={:?} user={} workdir={}",
            json!(args),
            mounts,
            network,
            st.str_field("User"),
            st.str_field("WorkingDir")
        );
        let key = cache::key(&st.key, &instruction, &input_digest);
        if self.try_cache(store, st, &key, &created_by, no_cache)? {
            return Ok(());
        }
        self.miss(store, st, &instruction, &inputs, no_cache, missed)?;
        // Execute.
        let root = StepRoot::new(store, &st.lowers(store), true)?;
        let merged = root.merged();
        let workdir = st.str_field("WorkingDir");
        let user = st.str_field("User");
        if !workdir.is_empty() {
            step::mkdir_p_in(&merged, &workdir, (0, 0))?;
        }
        let mut binds = Vec::new();
        let mut tmpfs = Vec::new();
        // Locks of `sharing=locked|private` cache mounts, held until the step ends.
        let mut cache_locks: Vec<fs::File> = Vec::new();
        let mut stubs: Vec<String> = vec![
            "/etc/hosts".into(),
            "/etc/resolv.conf".into(),
            "/etc/hostname".into(),
            "/proc".into(),
            "/sys".into(),
            "/dev".into(),
        ];
        let mut keep_alive: Vec<StepRoot> = Vec::new();
        let abs = |t: &str| -> String {
            if t.starts_with('/') {
                t.to_string()
            } else {
                normalize_abs(&format!(
                    "{}/{t}",
                    if workdir.is_empty() { "/" } else { &workdir }
                ))
            }
        };
        for m in &mounts {
            match m {
                Mount::Bind {
                    target,
                    source,
                    from,
                    rw,
                } => {
                    let (base, src_rel) = match from {
                        None => (self.ctx.root.clone(), context::confine(source)),
                        Some(f) => {
                            let (layers, _) = self.layers_of_ref(store, stage, f)?;
                            let lowers: Vec<PathBuf> = layers
                                .iter()
                                .map(|l| layer_dir(store, &l.diff_id))
                                .collect();
                            let r = StepRoot::new(store, &lowers, false)?;
                            let m = r.merged();
                            keep_alive.push(r);
                            (m, context::confine(source))
                        }
                    };
                    let mut src = base.join(&src_rel);
                    if !step::exists_in(&base, &src_rel) {
                        return Err(err(format!("--mount source {source:?} does not exist")));
                    }
                    if *rw {
                        // Writes are thrown away: an overlay over the source.
                        if src.is_dir() {
                            let r = StepRoot::new(store, &[src.clone()], true)?;
                            src = r.merged();
                            keep_alive.push(r);
                        }
                    }
                    stubs.push(abs(target));
                    binds.push(Bind {
                        source: src.to_string_lossy().into_owned(),
                        destination: abs(target),
                        read_only: !rw,
                        propagation: None,
                    });
                }
                Mount::Cache {
                    target,
                    id,
                    mode,
                    uid,
                    gid,
                    sharing,
                } => {
                    let base = store
                        .root()
                        .join("build-cache-mounts")
                        .join(&cache::key("", id, "")[..32]);
                    let d = match sharing {
                        Sharing::Shared => base,
                        Sharing::Locked => {
                            cache_locks.push(lock_cache_dir(&base, true)?.ok_or_else(|| {
                                BuildError::Other("locking a cache mount".into())
                            })?);
                            base
                        }
                        Sharing::Private => {
                            // The first instance no other step holds (BuildKit keeps the
                            // extra instances for later builds too).
                            let mut chosen = None;
                            for n in 0..64 {
                                let cand = if n == 0 {
                                    base.clone()
                                } else {
                                    PathBuf::from(format!("{}-{n}", base.display()))
                                };
                                if let Some(l) = lock_cache_dir(&cand, false)? {
                                    cache_locks.push(l);
                                    chosen = Some(cand);
                                    break;
                                }
                            }
                            chosen.ok_or_else(|| {
                                err(format!("--mount id={id}: every private instance is busy"))
                            })?
                        }
                    };
                    if !d.exists() {
                        fs::create_dir_all(&d).map_err(|e| BuildError::io(&d, e))?;
                        let _ = rustix::fs::chmod(&d, rustix::fs::Mode::from_raw_mode(*mode));
                        let _ = rustix::fs::chown(
                            &d,
                            Some(rustix::fs::Uid::from_raw(*uid)),
                            Some(rustix::fs::Gid::from_raw(*gid)),
                        );
                    }
                    stubs.push(abs(target));
                    binds.push(Bind {
                        source: d.to_string_lossy().into_owned(),
                        destination: abs(target),
                        read_only: false,
                        propagation: None,
                    });
                }
                Mount::Tmpfs { target, size } => {
                    stubs.push(abs(target));
                    let mut options = vec!["exec".to_string()];
                    if let Some(s) = size {
                        options.push(format!("size={s}"));
                    }
                    tmpfs.push(Tmpfs {
                        destination: abs(target),
                        options,
                    });
                }
                Mount::Secret {
                    id,
                    target,
                    required,
                } => match self.opts.secrets.get(id) {
                    Some(src) => {
                        stubs.push(abs(target));
                        binds.push(Bind {
                            source: src.to_string_lossy().into_owned(),
                            destination: abs(target),
                            read_only: true,
                            propagation: None,
                        });
                    }
                    None if *required => {
                        return Err(err(format!(
                            "secret {id:?} is required: pass --secret id={id},src=FILE"
                        )))
                    }
                    None => {}
                },
            }
        }
        let script_dir;
        if let Some((name, content)) = &script {
            script_dir = root.dir.join("pipes");
            fs::create_dir_all(&script_dir).map_err(|e| BuildError::io(&script_dir, e))?;
            let p = script_dir.join(name);
            fs::write(&p, content).map_err(|e| BuildError::io(&p, e))?;
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
                .map_err(|e| BuildError::io(&p, e))?;
            binds.push(Bind {
                source: script_dir.to_string_lossy().into_owned(),
                destination: "/dev/pipes".into(),
                read_only: true,
                propagation: None,
            });
        }
        // Mount points the runtime creates must not end up in the layer: note what is missing.
        let mut created_stubs: Vec<String> = Vec::new();
        for s in &stubs {
            let mut p = String::new();
            for c in s.split('/').filter(|c| !c.is_empty()) {
                p.push('/');
                p.push_str(c);
                if !step::exists_in(&merged, &p) {
                    created_stubs.push(p.clone());
                }
            }
        }
        let id = format!(
            "b{}",
            &cache::key(&key, &format!("{:?}", Instant::now()), "")[..31]
        );
        let cfg = ContainerConfig {
            args: args.clone(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            env,
            working_dir: if workdir.is_empty() {
                "/".into()
            } else {
                workdir.clone()
            },
            user,
            hostname: "buildkitsandbox".into(),
            domainname: String::new(),
            tty: false,
            open_stdin: false,
            binds,
            tmpfs,
            read_only: false,
            network: match network {
                Network::Bridge => NetworkMode::Networks(vec![Attachment {
                    network: "bridge".into(),
                    aliases: Vec::new(),
                }]),
                Network::None => NetworkMode::None,
                Network::Host => NetworkMode::Host,
            },
            publish: Vec::new(),
            publish_all: Vec::new(),
            dns: Vec::new(),
            dns_search: Vec::new(),
            dns_options: Vec::new(),
            group_add: Vec::new(),
            add_hosts: Vec::new(),
            memory: None,
            nano_cpus: None,
            pids_limit: None,
            restart: RestartPolicy::default(),
            init: false,
            runtime: self.opts.runtime.clone(),
            labels: BTreeMap::new(),
            stop_signal: "SIGTERM".into(),
            stop_timeout: 10,
            auto_remove: false,
            security: Default::default(),
            volumes: Vec::new(),
            healthcheck: None,
            log_config: Default::default(),
            resources: Default::default(),
            namespaces: Default::default(),
            extra: Default::default(),
        };
        let code = self.exec(store, &id, &root, &cfg).map_err(|e| match e {
            BuildError::Engine(e) => err(e.to_string()),
            e => e,
        })?;
        drop(keep_alive);
        drop(cache_locks);
        if code != 0 {
            return Err(BuildError::StepFailed {
                file: self.file.clone(),
                line: ins.line,
                step: format!("[{} {n}/{total}]", stage.label()),
                text: ins.text(),
                code,
            });
        }
        let mut root = root;
        root.unmount()?;
        for s in created_stubs.iter().rev() {
            step::remove_stub(&root.upper(), s);
        }
        self.finish_step(store, st, root, &key, &instruction, &inputs, created_by)
    }

    /// Run the step's process, forwarding its output to the progress view.
    fn exec(&self, store: &Store, id: &str, root: &StepRoot, cfg: &ContainerConfig) -> Result<i32> {
        let (r, w): (OwnedFd, OwnedFd) =
            rustix::pipe::pipe().map_err(|e| BuildError::Other(format!("pipe: {e}")))?;
        let merged = root.merged();
        let bundle = root.bundle();
        crate::recover::set_container(store, &root.dir, id, cfg.runtime.as_deref())?;
        std::thread::scope(|s| {
            let progress = self.progress;
            let sid = STEP.with(Cell::get);
            let reader = s.spawn(move || {
                let mut f = fs::File::from(r);
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match f.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => progress.event(sid, Event::Output(&buf[..n])),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            });
            let res = berth_engine::oneshot::run(
                store,
                berth_engine::oneshot::OneshotRequest {
                    id,
                    dir: &bundle,
                    rootfs: &merged,
                    config: cfg,
                    output: w,
                },
            );
            let _ = reader.join();
            Ok(res?)
        })
    }

    fn copy(
        &self,
        store: &Store,
        stage: &Stage,
        st: &mut State,
        ins: &Instruction,
        no_cache: bool,
        missed: &mut bool,
    ) -> Result<()> {
        let err = |m: String| ins_err(&self.file, ins, m);
        let is_add = ins.keyword == "ADD";
        let snapshot = st.clone();
        let vars = self.vars(&snapshot);
        let words: Vec<String> = match &ins.json {
            Some(v) => v
                .iter()
                .map(|w| expand::word(w, &vars, self.escape))
                .collect::<std::result::Result<_, _>>()
                .map_err(err)?,
            None => {
                // Heredoc markers are kept as written; everything else is expanded.
                let raw = expand::split_raw(&ins.args, self.escape).map_err(err)?;
                let mut out = Vec::new();
                for w in raw {
                    if w.starts_with("<<") {
                        out.push(w);
                    } else {
                        out.extend(expand::words(&w, &vars, self.escape).map_err(err)?);
                    }
                }
                out
            }
        };
        if words.len() < 2 {
            return Err(err("requires at least two arguments: SOURCE... DEST".into()));
        }
        let (srcs, dest) = words.split_at(words.len() - 1);
        let dest_raw = dest[0].clone();
        let workdir = st.str_field("WorkingDir");
        let dest_abs = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!(
                "{}/{}",
                if workdir.is_empty() {
                    ""
                } else {
                    workdir.trim_end_matches('/')
                },
                dest_raw
            )
        };
        let dest_is_dir_syntax =
            dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/.");
        let dest_abs = normalize_abs(&dest_abs);
        let flag = |n: &str| -> Result<Option<String>> {
            ins.flag(n)
                .map(|v| expand::word(v, &vars, self.escape).map_err(err))
                .transpose()
        };
        let from = flag("from")?;
        let chown = flag("chown")?;
        let chmod = flag("chmod")?
            .map(|m| instr::chmod(&m).map_err(err))
            .transpose()?;
        let checksum = flag("checksum")?;
        let excludes: Vec<String> = ins
            .flag_all("exclude")
            .iter()
            .map(|s| expand::word(s, &vars, self.escape).map_err(err))
            .collect::<Result<_>>()?;
        // `--exclude` patterns apply at any depth below each source (and never reach the
        // cache key).
        let exclude = (!excludes.is_empty()).then(|| context::Excludes::new(&excludes));
        for (f, _) in &ins.flags {
            let ok = matches!(
                f.as_str(),
                "from" | "chown" | "chmod" | "link" | "exclude" | "parents"
            ) || (is_add && matches!(f.as_str(), "checksum" | "keep-git-dir" | "unpack"));
            if !ok {
                return Err(err(format!("unknown flag --{f}")));
            }
        }
        // Sources: heredocs, URLs (ADD), a stage/image, or the context.
        let mut heredoc_items: Vec<(String, String)> = Vec::new();
        let mut url_items: Vec<String> = Vec::new();
        let mut paths: Vec<String> = Vec::new();
        for s in srcs {
            if let Some(name) = s.strip_prefix("<<") {
                let name = name
                    .trim_start_matches('-')
                    .trim_matches(|c| c == '\'' || c == '"');
                let h = ins
                    .heredocs
                    .iter()
                    .find(|h| h.name == name)
                    .ok_or_else(|| err(format!("here-document {name:?} has no content")))?;
                let content = if h.expand {
                    expand::heredoc(&h.content, &vars, self.escape).map_err(err)?
                } else {
                    h.content.clone()
                };
                heredoc_items.push((name.to_string(), content));
            } else if is_add && (s.starts_with("http://") || s.starts_with("https://")) {
                url_items.push(s.clone());
            } else if s.starts_with("http://") || s.starts_with("https://") {
                return Err(err("COPY cannot fetch URLs; use ADD".into()));
            } else {
                paths.push(s.clone());
            }
        }
        let n_sources = heredoc_items.len() + url_items.len() + paths.len();
        // With several sources (or a wildcard) the destination must be a directory.
        let multi = n_sources > 1 || paths.iter().any(|p| p.contains(['*', '?', '[']));
        if multi && !dest_is_dir_syntax {
            return Err(err(format!(
                "with more than one source file, the destination must be a directory and end with a /: {dest_raw:?}"
            )));
        }
        // Inputs → cache key.
        let mut inputs: BTreeMap<String, String> = BTreeMap::new();
        let mut digest = String::new();
        let from_layers = match &from {
            Some(f) => Some(self.layers_of_ref(store, stage, f).map_err(|e| match e {
                BuildError::BaseImage(_) => err(format!("--from={f}: no such stage or image")),
                e => e,
            })?),
            None => None,
        };
        let mut selected: Vec<Selected> = Vec::new();
        let src_root: Option<StepRoot> = match &from_layers {
            Some((layers, key)) => {
                digest.push_str(key);
                let lowers: Vec<PathBuf> = layers
                    .iter()
                    .map(|l| layer_dir(store, &l.diff_id))
                    .collect();
                let r = StepRoot::new(store, &lowers, false)?;
                for p in &paths {
                    let mut sel = context::select_in(&r.merged(), p, None).map_err(|e| {
                        err(format!("{e} (in --from={})", from.as_deref().unwrap_or("")))
                    })?;
                    selected.append(&mut sel);
                }
                Some(r)
            }
            None => {
                for p in &paths {
                    let mut sel = self.ctx.select(p).map_err(|e| match e {
                        BuildError::NotFound(_) => err(e.to_string()),
                        e => e,
                    })?;
                    selected.append(&mut sel);
                }
                if let Some(x) = &exclude {
                    selected.retain(|s| !x.excluded("", &s.rel));
                }
                let (d, files) = self.ctx.hash_excluding(&selected, 5000, exclude.as_ref())?;
                digest.push_str(d.as_str());
                inputs = files;
                None
            }
        };
        if let Some(x) = &exclude {
            selected.retain(|s| !x.excluded("", &s.rel));
        }
        for (name, content) in &heredoc_items {
            digest.push_str(&format!(
                "heredoc {name} {}",
                berth_store::Digest::sha256_of(content.as_bytes())
            ));
        }
        for u in &url_items {
            digest.push_str(&format!("url {u} {}", checksum.as_deref().unwrap_or("")));
        }
        let instruction = format!(
            "{} from={:?} chown={:?} chmod={:?} excludes={:?} srcs={:?} dest={dest_abs}{}",
            ins.keyword,
            from,
            chown,
            chmod,
            excludes,
            srcs,
            if dest_is_dir_syntax { "/" } else { "" }
        );
        let created_by = format!("{} {} # buildkit", ins.keyword, ins.args);
        // URLs are fetched before the key is known (their content is an input).
        let mut downloads: Vec<(String, Vec<u8>)> = Vec::new();
        for u in &url_items {
            let data = crate::fetch::get(u).map_err(|e| err(format!("{u}: {e}")))?;
            let d = berth_store::Digest::sha256_of(&data);
            if let Some(c) = &checksum {
                if c != d.as_str() {
                    return Err(err(format!(
                        "{u}: checksum mismatch: the content is {d}, --checksum says {c}"
                    )));
                }
            }
            digest.push_str(d.as_str());
            inputs.insert(u.clone(), d.hex()[..16].to_string());
            downloads.push((u.clone(), data));
        }
        let key = cache::key(&st.key, &instruction, &digest);
        if self.try_cache(store, st, &key, &created_by, no_cache)? {
            return Ok(());
        }
        self.miss(store, st, &instruction, &inputs, no_cache, missed)?;
        let root = StepRoot::new(store, &st.lowers(store), true)?;
        let merged = root.merged();
        let owner = match &chown {
            Some(c) => {
                let u = berth_engine::user::resolve(&merged, c, &[])
                    .map_err(|e| err(format!("--chown={c}: {e}")))?;
                Some((u.uid, u.gid))
            }
            None => None,
        };
        let into_dir = dest_is_dir_syntax || multi || step::is_dir_in(&merged, &dest_abs);
        let target_for = |name: &str| -> String {
            if into_dir {
                format!("{}/{}", dest_abs.trim_end_matches('/'), name)
            } else {
                dest_abs.clone()
            }
        };
        let mut items = Vec::new();
        for s in &selected {
            let md = fs::symlink_metadata(&s.path).map_err(|e| BuildError::io(&s.path, e))?;
            if md.is_dir() {
                items.push(Item::Host {
                    src: s.path.clone(),
                    dest: dest_abs.clone(),
                    recurse: true,
                    rel: from.is_none().then(|| s.rel.clone()),
                    src_rel: s.rel.clone(),
                });
            } else if is_add && from.is_none() && md.is_file() && step::is_archive(&s.path) {
                items.push(Item::Archive {
                    src: s.path.clone(),
                    dest: dest_abs.clone(),
                });
            } else {
                let name = s
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                items.push(Item::Host {
                    src: s.path.clone(),
                    dest: target_for(&name),
                    recurse: false,
                    rel: None,
                    src_rel: s.rel.clone(),
                });
            }
        }
        for (name, content) in &heredoc_items {
            items.push(Item::Data {
                dest: target_for(name),
                data: content.clone().into_bytes(),
                mode: 0o644,
            });
        }
        for (u, data) in downloads {
            let name = u
                .split(['?', '#'])
                .next()
                .unwrap_or(&u)
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty())
                .unwrap_or("index.html")
                .to_string();
            items.push(Item::Data {
                dest: target_for(&name),
                data,
                mode: 0o600,
            });
        }
        if into_dir {
            step::mkdir_p_in(&merged, &dest_abs, owner.unwrap_or((0, 0)))?;
        }
        let attrs = Attrs {
            owner,
            keep_owner: from.is_some(),
            mode: chmod,
        };
        step::write_items(
            &merged,
            &items,
            attrs,
            from.is_none().then_some(self.ctx),
            exclude.as_ref(),
        )
        .map_err(|e| err(e.to_string()))?;
        drop(src_root);
        self.finish_step(store, st, root, &key, &instruction, &inputs, created_by)
    }
}

/// Lock the cache mount directory `dir` (through `DIR.lock`): waiting when `wait`, else
/// `None` if another step holds it.
fn lock_cache_dir(dir: &std::path::Path, wait: bool) -> Result<Option<fs::File>> {
    let p = PathBuf::from(format!("{}.lock", dir.display()));
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).map_err(|e| BuildError::io(parent, e))?;
    }
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| BuildError::io(&p, e))?;
    let op = if wait {
        rustix::fs::FlockOperation::LockExclusive
    } else {
        rustix::fs::FlockOperation::NonBlockingLockExclusive
    };
    match rustix::fs::flock(&f, op) {
        Ok(()) => Ok(Some(f)),
        Err(rustix::io::Errno::WOULDBLOCK) if !wait => Ok(None),
        Err(e) => Err(BuildError::io(&p, e.into())),
    }
}

/// `/a/./b/../c/` → `/a/c`.
fn normalize_abs(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize() {
        assert_eq!(normalize_abs("/a/./b/../c/"), "/a/c");
        assert_eq!(normalize_abs("/"), "/");
        assert_eq!(normalize_abs("/../x"), "/x");
    }
}
