//! The error type of the registry client.

use std::path::PathBuf;

use berth_image::{ImageError, ReferenceError};
use berth_store::{Digest, StoreError};

/// Errors of pulling, pushing and logging in.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The registry could not be reached or the connection failed.
    #[error("cannot reach registry {registry}: {detail}; check the address, the network and --tls-verify")]
    Connect { registry: String, detail: String },
    /// A TLS certificate problem.
    #[error("tls error talking to {registry}: {detail}; put the registry's CA in {certs_dir}/{registry}/ca.crt or use --tls-verify=false")]
    Tls {
        registry: String,
        detail: String,
        certs_dir: String,
    },
    /// The registry refused our credentials (or we have none).
    #[error("unauthorized: {message}")]
    Unauthorized { message: String },
    /// The registry answered with an error (status plus its error document).
    #[error("{message}")]
    Registry { status: u16, message: String },
    /// A transient answer (429, 502, 503, 504), worth trying again after `retry_after` (the
    /// registry's `Retry-After`, when it sent one); see [`crate::retry`].
    #[error("{message}")]
    Unavailable {
        status: u16,
        message: String,
        retry_after: Option<std::time::Duration>,
    },
    /// A transient failure that persisted through every retry [`crate::retry`] allows.
    #[error("{what}: {message}; {why}; try again later")]
    GaveUp {
        what: String,
        message: String,
        why: String,
    },
    /// A manifest or tag does not exist.
    #[error("manifest for {reference} not found: {message}")]
    ManifestUnknown { reference: String, message: String },
    #[error("{what} {expected} failed verification: the registry sent content that hashes to {actual}; nothing was stored")]
    DigestMismatch {
        what: &'static str,
        expected: Digest,
        actual: Digest,
    },
    #[error(
        "{what} {digest} has {actual} bytes but its descriptor says {expected}; nothing was stored"
    )]
    SizeMismatch {
        what: &'static str,
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("download of {what} {digest} stopped at {got} of {expected} bytes after {attempts} attempts ({detail}); nothing was stored; try again")]
    Truncated {
        what: &'static str,
        digest: Digest,
        got: u64,
        expected: u64,
        attempts: u32,
        detail: String,
    },
    #[error("{what} from {registry} is larger than {limit} bytes; refusing it")]
    TooLarge {
        what: &'static str,
        registry: String,
        limit: u64,
    },
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    #[error("no image for platform {wanted} in {reference}; available: {available}; choose one with --platform")]
    NoMatchingPlatform {
        wanted: String,
        reference: String,
        available: String,
    },
    #[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/amd64")]
    InvalidPlatform(String),
    #[error("layer {digest}: {source}")]
    Layer {
        digest: Digest,
        #[source]
        source: ImageError,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    ConfigFile { path: PathBuf, message: String },
    #[error("credential helper docker-credential-{helper}: {message}")]
    CredentialHelper { helper: String, message: String },
    #[error("{0}")]
    Other(String),
}

impl RegistryError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RegistryError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result with [`RegistryError`].
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
