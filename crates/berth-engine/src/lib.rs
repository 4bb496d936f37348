//! Containers: configuration → OCI runtime spec, lifecycle, the per-container monitor, logs,
//! exec, and the runtimes (builtin libcontainer, or any OCI runtime binary).
//!
//! Process model: the CLI creates rows and bundles and spawns one monitor per running
//! container ([`monitor`]); the monitor creates the container through the runtime, so the
//! builtin runtime (which clones without exec) always runs in a single-threaded process.

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
pub mod list;
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
    /// The store root (directories, locks, files under it) could not be used.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The SQLite metadata database (`containers` and the other tables) failed.
    #[error("metadata database: {0}")]
    Db(#[from] berth_store::DbError),
    /// An image could not be resolved, read or mounted (from `berth-image`).
    #[error(transparent)]
    Image(#[from] berth_image::ImageError),
    /// Network setup or teardown failed (from `berth-net`).
    #[error(transparent)]
    Net(#[from] berth_net::NetError),
    /// A volume could not be created, resolved or mounted (from `berth-volume`).
    #[error(transparent)]
    Volume(#[from] berth_volume::VolumeError),
    /// A file-system operation on `path` failed; built with [`EngineError::io`].
    #[error("{path}: {source}")]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// No container has this name, id or id prefix (the word the user gave).
    #[error("no such container: {0}")]
    NotFound(String),
    /// A word that is a prefix of several containers' ids.
    #[error("{0}")]
    Ambiguous(berth_store::lookup::LookupError),
    /// Another container already has this name (Docker's 409 Conflict on create or rename).
    #[error("the container name {name:?} is already in use by container {id}; remove that container or choose another name")]
    NameInUse {
        /// The requested name, without the leading `/`.
        name: String,
        /// The full id (64 hex digits) of the container holding the name.
        id: String,
    },
    /// The operation needs a stopped container but this one (id or name) is running.
    #[error("container {0} is already running")]
    AlreadyRunning(String),
    /// The operation needs a running container but this one (id or name) is not.
    #[error("container {0} is not running")]
    NotRunning(String),
    /// The command to run was not found in the container's `$PATH` (exit status 127, as Docker).
    #[error("exec: {0:?}: executable file not found in $PATH")]
    CommandNotFound(String),
    /// The command to run exists but is not executable (exit status 126, as Docker).
    #[error("exec: {0:?}: permission denied (not an executable file)")]
    NotExecutable(String),
    /// A value given by the user (flag, option, configuration field) is invalid; the message
    /// names it and says what is accepted.
    #[error("{0}")]
    InvalidArgument(String),
    /// The OCI runtime (builtin libcontainer or a runtime binary) failed.
    #[error("runtime: {0}")]
    Runtime(String),
    /// An AppArmor profile cannot be applied (see [`apparmor::ensure_loaded`]).
    #[error("apparmor: {0}")]
    AppArmor(String),
    /// The container monitor reported that the container could not start (its `error CODE
    /// MESSAGE` line on the sync pipe, or exit before `started PID`).
    #[error("{msg}")]
    StartFailed {
        /// The exit status to use: 125, or 126/127 when the command cannot be run (as Docker).
        code: i32,
        /// The monitor's message.
        msg: String,
    },
    /// The user typed the detach sequence (`exec -it`): the process keeps running.
    #[error("read escape sequence")]
    Detached,
    /// Any other failure, described by its message.
    #[error("{0}")]
    Other(String),
}

impl EngineError {
    /// An [`EngineError::Io`] for an operation on `path` that failed with `source`.
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

/// The engine's result type: errors are [`EngineError`].
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// Docker's refusal of a relative working directory `wd` (`--workdir`, `working_dir:`,
/// `WorkingDir`), which container create returns before anything is created.
pub fn working_dir_error(wd: &str) -> String {
    format!("the working directory '{wd}' is invalid, it needs to be an absolute path")
}
