//! Running a loaded compose project ([`berth_compose::Project`]) on berth's engine, the way
//! Docker compose does it: a `PROJECT_default` network, containers named
//! `PROJECT-SERVICE-N` carrying compose's labels, start in dependency order, stop in reverse,
//! and `up` recreating only services whose configuration hash or image changed (and the
//! services that depend on them).
//!
//! The CLI (`berth compose …`) is a thin layer over these calls.

#![warn(missing_docs)]

pub mod convert;
pub mod logs;
pub mod project;

pub use project::{down, list, up, DownOptions, ProjectContainer, UpOptions};

/// Label keys, as Docker compose writes them.
pub mod labels {
    /// Project name.
    pub const PROJECT: &str = "com.docker.compose.project";
    /// Service name.
    pub const SERVICE: &str = "com.docker.compose.service";
    /// Replica number (1-based).
    pub const NUMBER: &str = "com.docker.compose.container-number";
    /// Hash of the service configuration the container was created from.
    pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
    /// `True` for `compose run` containers.
    pub const ONEOFF: &str = "com.docker.compose.oneoff";
    /// Project directory.
    pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
    /// Compose files, comma-separated.
    pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
    /// Dependencies `SERVICE:CONDITION:RESTART`, comma-separated.
    pub const DEPENDS_ON: &str = "com.docker.compose.depends_on";
    /// Image id the container was created from.
    pub const IMAGE: &str = "com.docker.compose.image";
    /// Compose version.
    pub const VERSION: &str = "com.docker.compose.version";
    /// Key of a volume in the project's `volumes:` (on volumes).
    pub const VOLUME: &str = "com.docker.compose.volume";
    /// Key of a network in the project's `networks:` (on networks).
    pub const NETWORK: &str = "com.docker.compose.network";
}

/// Errors of running a project.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The engine refused or failed.
    #[error(transparent)]
    Engine(#[from] berth_engine::EngineError),
    /// Image store error.
    #[error(transparent)]
    Image(#[from] berth_image::ImageError),
    /// Network error.
    #[error(transparent)]
    Net(#[from] berth_net::NetError),
    /// Registry (pull or push) error.
    #[error("{image}: {source}")]
    Pull {
        /// The image.
        image: String,
        /// The cause.
        #[source]
        source: berth_registry::RegistryError,
    },
    /// The project uses something berth cannot run (yet).
    #[error("{0}")]
    Unsupported(String),
    /// Invalid request (unknown service, bad flag value, …).
    #[error("{0}")]
    Invalid(String),
    /// A dependency did not reach its condition.
    #[error("{0}")]
    Dependency(String),
    /// A file could not be read or created.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl RunError {
    /// The exit status Docker would use.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Engine(e) => e.exit_code(),
            _ => 1,
        }
    }
}

/// Result with [`RunError`].
pub type Result<T> = std::result::Result<T, RunError>;
