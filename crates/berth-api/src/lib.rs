//! The Docker Engine API on a socket (`berth system service`): an HTTP/1.1 server (hyper 1 on
//! tokio) whose handlers call the same library functions as the CLI, so a container created
//! through the socket is the same row, bundle and monitor as one made by `berth run`.
//!
//! The service keeps no state of its own besides exec sessions and attach connections waiting
//! for a `start`; everything else lives in the store, so the service can be killed at any time
//! and the CLI and the socket always agree.
//!
//! Blocking library work (SQLite, mounts, the registry client with its own runtime) runs on
//! plain threads, one store handle per request. Work that must run in a single-threaded
//! process (the builtin runtime's `exec`, which clones the calling process) is done by a
//! `berth` child process.

#![recursion_limit = "256"]

mod archive;
mod attach;
mod auth;
mod build;
mod containers;
mod create;
mod events;
mod exec;
mod http;
mod images;
mod networks;
mod resize;
mod router;
mod server;
mod stats;
mod system;
mod update;
mod volumes;
mod wait;

use std::path::PathBuf;
use std::time::Duration;

pub use server::serve;

pub use berth_engine::info::{API_VERSION, MIN_API_VERSION};
/// The default socket of the root service.
pub const DEFAULT_SOCKET: &str = "/run/berth/docker.sock";

/// Options of [`serve`].
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Store root (`--root`).
    pub root: PathBuf,
    /// Where to listen: `unix:///path` or `tcp://127.0.0.1:PORT`; `None`: the socket passed by
    /// systemd (`LISTEN_FDS`), else [`DEFAULT_SOCKET`] (or `$XDG_RUNTIME_DIR/berth/docker.sock`
    /// for other users than root).
    pub listen: Option<String>,
    /// Exit after this long without any connection; `None`: never.
    pub idle: Option<Duration>,
    /// The `berth` binary, run for work that needs its own process (exec).
    pub exe: PathBuf,
}

/// Errors of the API service. Each maps to Docker's HTTP status ([`ApiError::status`]) and
/// is sent as `{"message": "…"}`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 404: no such container, image, network, volume or exec instance.
    #[error("{0}")]
    NotFound(String),
    /// 409: a name in use, a running container, an image in use.
    #[error("{0}")]
    Conflict(String),
    /// 401: a registry refused the credentials (`POST /auth`).
    #[error("{0}")]
    Unauthorized(String),
    /// 403: an operation Docker forbids (removing a predefined network).
    #[error("{0}")]
    Forbidden(String),
    /// 400: a bad query parameter or body field.
    #[error("{0}")]
    BadParameter(String),
    /// 304: already started / already stopped.
    #[error("{0}")]
    NotModified(String),
    /// 501: an endpoint berth does not implement.
    #[error("{0}")]
    NotImplemented(String),
    /// 500: anything else.
    #[error("{0}")]
    Internal(String),
    /// The listening socket could not be set up.
    #[error("{what}: {source}")]
    Listen {
        /// What was being done (`binding /run/berth/docker.sock`).
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl ApiError {
    /// Docker's HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::NotFound(_) => 404,
            ApiError::Conflict(_) => 409,
            ApiError::BadParameter(_) => 400,
            ApiError::Forbidden(_) => 403,
            ApiError::Unauthorized(_) => 401,
            ApiError::NotModified(_) => 304,
            ApiError::NotImplemented(_) => 501,
            ApiError::Internal(_) | ApiError::Listen { .. } => 500,
        }
    }
}

impl From<berth_engine::EngineError> for ApiError {
    fn from(e: berth_engine::EngineError) -> Self {
        use berth_engine::EngineError as E;
        match e {
            E::NotFound(n) => ApiError::NotFound(format!("No such container: {n}")),
            E::Ambiguous(_) | E::InvalidArgument(_) => ApiError::BadParameter(e.to_string()),
            E::NameInUse { name, id } => ApiError::Conflict(format!(
                "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
            )),
            E::AlreadyRunning(_) | E::NotRunning(_) => ApiError::Conflict(e.to_string()),
            E::Image(i) => i.into(),
            E::Net(n) => n.into(),
            E::Volume(v) => v.into(),
            E::CommandNotFound(_) | E::NotExecutable(_) | E::StartFailed { .. } => {
                ApiError::BadParameter(e.to_string())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<berth_image::ImageError> for ApiError {
    fn from(e: berth_image::ImageError) -> Self {
        use berth_image::ImageError as E;
        match e {
            E::NotFound(n) => ApiError::NotFound(format!("No such image: {n}")),
            E::Ambiguous { .. } | E::Reference(_) => ApiError::BadParameter(e.to_string()),
            E::Conflict(m) => ApiError::Conflict(m),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<berth_image::ReferenceError> for ApiError {
    fn from(e: berth_image::ReferenceError) -> Self {
        ApiError::BadParameter(e.to_string())
    }
}

impl From<berth_net::NetError> for ApiError {
    fn from(e: berth_net::NetError) -> Self {
        use berth_net::NetError as E;
        match e {
            E::NotFound(n) => ApiError::NotFound(format!("network {n} not found")),
            E::Ambiguous(_) | E::BadPort { .. } | E::BadFilter(_) => {
                ApiError::BadParameter(e.to_string())
            }
            E::Predefined(_) | E::NotPermitted(_) => ApiError::Forbidden(e.to_string()),
            E::InUse { .. } | E::Exists(_) | E::PortInUse(_) => ApiError::Conflict(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<berth_volume::VolumeError> for ApiError {
    fn from(e: berth_volume::VolumeError) -> Self {
        use berth_volume::VolumeError as E;
        match e {
            E::NotFound(_) => ApiError::NotFound(e.to_string()),
            E::InUse { .. } => ApiError::Conflict(e.to_string()),
            E::InvalidName(_) => ApiError::BadParameter(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<berth_store::StoreError> for ApiError {
    fn from(e: berth_store::StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<berth_registry::RegistryError> for ApiError {
    fn from(e: berth_registry::RegistryError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

/// Result of the API's handlers.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;
