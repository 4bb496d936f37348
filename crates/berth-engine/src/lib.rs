//! Containers: configuration → OCI runtime spec, lifecycle, the per-container monitor, logs,
//! exec, and the runtimes (builtin libcontainer, or any OCI runtime binary).
//!
//! Process model: the CLI creates rows and bundles and spawns one monitor per running
//! container ([`monitor`]); the monitor creates the container through the runtime, so the
//! builtin runtime (which clones without exec) always runs in a single-threaded process.

// The workspace enables `missing_docs`; this crate still has 117 undocumented public items
// (issue 7). Remove this line once they are documented.
#![allow(missing_docs)]

pub mod apparmor;
pub mod attach;
pub mod capabilities;
pub mod cgroups;
pub mod config;
pub mod detach;
pub mod exeguard;
pub mod exits;
pub mod fdio;
pub mod health;
pub mod host;
pub mod info;
pub mod inspect;
pub mod journald;
pub mod links;
pub mod logs;
pub mod monitor;
pub mod names;
pub mod oneshot;
pub mod ops;
pub mod overlay;
pub mod paths;
pub mod pidfd;
pub mod resources;
pub mod rootfs;
pub mod runtime;
pub mod seccomp;
pub mod seccomp_bpf;
pub mod security;
pub mod session;
pub mod spec;
pub mod state;
pub mod terminal;
pub mod user;
pub mod view;
pub mod volumes;

#[cfg(test)]
mod spec_tests;
#[cfg(test)]
mod testutil;

pub use paths::cgroup_parent;
pub use state::image_ids_in_use;

use std::path::PathBuf;

use berth_store::StoreError;

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("metadata database: {0}")]
    Db(#[from] berth_store::DbError),
    #[error(transparent)]
    Image(#[from] berth_image::ImageError),
    #[error(transparent)]
    Net(#[from] berth_net::NetError),
    #[error(transparent)]
    Volume(#[from] berth_volume::VolumeError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no such container: {0}")]
    NotFound(String),
    /// A word that is a prefix of several containers' ids.
    #[error("{0}")]
    Ambiguous(berth_store::lookup::LookupError),
    #[error("the container name {name:?} is already in use by container {id}; remove that container or choose another name")]
    NameInUse { name: String, id: String },
    #[error("container {0} is already running")]
    AlreadyRunning(String),
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("exec: {0:?}: executable file not found in $PATH")]
    CommandNotFound(String),
    #[error("exec: {0:?}: permission denied (not an executable file)")]
    NotExecutable(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("runtime: {0}")]
    Runtime(String),
    /// An AppArmor profile cannot be applied (see [`apparmor::ensure_loaded`]).
    #[error("apparmor: {0}")]
    AppArmor(String),
    #[error("{msg}")]
    StartFailed { code: i32, msg: String },
    /// The user typed the detach sequence (`exec -it`): the process keeps running.
    #[error("read escape sequence")]
    Detached,
    #[error("{0}")]
    Other(String),
}

impl EngineError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EngineError::Io {
            path: path.into(),
            source,
        }
    }

    /// The exit status Docker would use for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::CommandNotFound(_) => 127,
            EngineError::NotExecutable(_) => 126,
            EngineError::StartFailed { code, .. } => *code,
            _ => 125,
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
