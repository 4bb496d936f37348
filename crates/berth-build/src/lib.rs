//! Dockerfiles to images: the parser ([`parser`]), Docker's word expansion ([`expand`]), the
//! build context and `.dockerignore` ([`context`]), the persistent build cache ([`cache`]),
//! and the builder ([`build`]) that runs each `RUN` in a container on berth's runtime
//! (through `berth_engine::oneshot`) and turns every filesystem change into one layer
//! (through `berth_image::ingest_dir`). Also `commit` (a container's changes to an image) and
//! `history`.
//!
//! The CLI (`berth build`, `berth image build`, `berth commit`, `berth history`) is a thin
//! layer over [`build`], [`commit::commit`] and [`history::history`]; an API front end calls the
//! same functions.

mod builder;
pub mod cache;
pub mod commit;
pub mod context;
pub mod expand;
mod fetch;
pub mod history;
mod instr;
pub mod parser;
pub mod recover;
mod step;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use builder::build;
pub use context::Context;

/// Errors of a build.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile cannot be parsed.
    #[error("{file}:{line}: {msg}")]
    Syntax {
        /// The Dockerfile's name as given.
        file: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// An instruction is well-formed but cannot be carried out as written (bad flag, unknown
    /// stage, failed variable expansion, …).
    #[error("{file}:{line}: {msg}")]
    Instruction {
        /// The Dockerfile's name.
        file: String,
        /// 1-based line of the instruction.
        line: usize,
        /// What is wrong and what to do.
        msg: String,
    },
    /// A RUN step's process exited with a non-zero status; no image was created.
    #[error("{file}:{line}: step {step} failed: {text:?} exited with code {code}")]
    StepFailed {
        /// The Dockerfile's name.
        file: String,
        /// 1-based line of the instruction.
        line: usize,
        /// `stage n/total` as shown in the progress output.
        step: String,
        /// The instruction.
        text: String,
        /// Its exit status.
        code: i32,
    },
    /// A COPY/ADD source that is not in the context (or is excluded by `.dockerignore`).
    #[error("{0:?}: not found in the build context, or excluded by .dockerignore")]
    NotFound(String),
    /// The context cannot be used.
    #[error("build context: {0}")]
    Context(String),
    /// A base image that is not in the store.
    #[error("base image {0:?} is not in the store; pull or load it first (or use --pull)")]
    BaseImage(String),
    /// An image store error (reading a base image, writing layers or the result).
    #[error(transparent)]
    Image(#[from] berth_image::ImageError),
    /// An engine error (running a RUN step).
    #[error(transparent)]
    Engine(#[from] berth_engine::EngineError),
    /// A store error (blobs, tmp files).
    #[error(transparent)]
    Store(#[from] berth_store::StoreError),
    /// The metadata database failed.
    #[error("metadata database: {0}")]
    Db(#[from] berth_store::DbError),
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl BuildError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BuildError::Io {
            path: path.into(),
            source,
        }
    }

    /// Exit status for the CLI: the failing RUN's code is not passed through (Docker uses 1).
    pub fn exit_code(&self) -> i32 {
        match self {
            BuildError::StepFailed { .. } | BuildError::Syntax { .. } => 1,
            _ => 125,
        }
    }
}

/// Result of this crate.
pub type Result<T, E = BuildError> = std::result::Result<T, E>;

/// Network of RUN steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// The default bridge (with NAT), so package managers work.
    #[default]
    Bridge,
    /// Only loopback.
    None,
    /// The host's network namespace.
    Host,
}

impl Network {
    /// `default`/`bridge`, `none` or `host`.
    pub fn parse(s: &str) -> Result<Network> {
        match s {
            "" | "default" | "bridge" => Ok(Network::Bridge),
            "none" => Ok(Network::None),
            "host" => Ok(Network::Host),
            other => Err(BuildError::Other(format!(
                "unsupported network mode {other:?} for build steps; use default, none or host"
            ))),
        }
    }
}

/// Where the base images a build needs come from when they are not in the store (the CLI
/// implements this with the registry client).
pub trait ImageSource: Sync {
    /// Make `reference` available in the store (pull it). Errors are shown to the user as-is.
    fn pull(&self, reference: &str) -> std::result::Result<(), String>;
}

/// Everything a build needs besides the store.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// Its name for messages (`Dockerfile`, `deploy/Containerfile`).
    pub dockerfile_name: String,
    /// Tags for the result (`name[:tag]`; `:latest` when no tag is given).
    pub tags: Vec<String>,
    /// `--build-arg NAME=VALUE` (a `None` value: take it from the environment, or unset).
    pub build_args: BTreeMap<String, Option<String>>,
    /// `--target STAGE`: the last stage when `None`.
    pub target: Option<String>,
    /// `--label` added to the result's config.
    pub labels: BTreeMap<String, String>,
    /// `--no-cache`: look nothing up (results are still stored).
    pub no_cache: bool,
    /// `--no-cache-filter STAGE…`: look nothing up in these stages.
    pub no_cache_filter: Vec<String>,
    /// Network of RUN steps (`--network`).
    pub network: Network,
    /// `--pull`: pull base images even if they are in the store.
    pub pull: bool,
    /// Layer compression (`--compression gzip|zstd`).
    pub compression: Option<berth_image::Compression>,
    /// `--secret id=ID,src=PATH`: files RUN `--mount=type=secret,id=ID` can read.
    pub secrets: BTreeMap<String, PathBuf>,
    /// OCI runtime for RUN steps (`None`: berth's builtin one).
    pub runtime: Option<String>,
    /// `--platform OS/ARCH[/VARIANT]`: only the host's platform can be built (RUN steps run
    /// natively, without emulation); another one is refused before anything runs.
    pub platform: Option<String>,
}

/// What a build produced.
#[derive(Debug, Clone)]
pub struct BuildResult {
    /// The image id (`sha256:` of its config).
    pub image_id: berth_store::Digest,
    /// Steps whose result came from the cache.
    pub cached: usize,
    /// Steps executed (RUN, COPY, ADD that missed the cache).
    pub executed: usize,
}

/// Progress of a build, for the front end to show.
#[derive(Debug)]
pub enum Event<'a> {
    /// A step starts: `stage` name (or index), `n` of `total` steps of that stage, text.
    Step {
        /// Stage name or number.
        stage: &'a str,
        /// 1-based step number within the stage.
        n: usize,
        /// Steps in the stage (FROM included).
        total: usize,
        /// The instruction as written.
        text: &'a str,
    },
    /// The step's result came from the cache.
    Cached,
    /// The step missed the cache, and why (which instruction or input changed).
    Miss(&'a str),
    /// Output of a RUN step (raw bytes, stdout and stderr interleaved).
    Output(&'a [u8]),
    /// The step finished, after `secs` seconds.
    Done(f64),
    /// A note (pulling a base image, writing the image).
    Note(&'a str),
}

/// Receives build progress (from several threads when stages build in parallel).
pub trait Progress: Sync {
    /// One event of step `step` (a number unique within the build, in start order from 1;
    /// events of one step arrive in order, steps of parallel stages interleave).
    fn event(&self, step: usize, e: Event<'_>);
}

/// Progress that shows nothing (`-q`).
#[derive(Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn event(&self, _step: usize, _e: Event<'_>) {}
}
