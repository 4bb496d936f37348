//! The builder: stages, instructions, cache, layers and the resulting image.
//!
//! `mod.rs` holds the entry point ([`build`]) and the Dockerfile's stage list; [`stages`] runs
//! stages (in parallel when independent), [`instruction`] carries out one instruction and talks
//! to the cache, [`run`] executes `RUN` steps, [`copy`] `COPY`/`ADD`, and [`state`] is a stage's
//! image config under construction.

mod copy;
mod instruction;
mod run;
mod stages;
mod state;

use state::{commit_state, rfc3339, scratch_state, state_of_image, State};

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;

use berth_image::Reference;
use berth_store::Store;

use crate::cache;
use crate::context::Context;
use crate::expand;
use crate::parser::{self, Instruction};
use crate::{BuildError, BuildOptions, BuildResult, ImageSource, Progress, Result};

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
    // Docker's events for a build: an image `tag` per name, then the image's `create`
    // (actor and name: the image id), as its BuildKit exporter reports them.
    crate::commit::record_tag_events(store, &id, &tags);
    berth_image::events::record_for(store, "create", id.as_str(), id.as_str(), &id);
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
