//! The error type of the registry client.

use std::path::PathBuf;

use berth_image::{ImageError, ReferenceError};
use berth_store::{Digest, StoreError};

/// Errors of pulling, pushing and logging in.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A malformed image reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// Storing the image failed.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The store failed (database, blobs, locking).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The registry could not be reached or the connection failed.
    #[error("cannot reach registry {registry}: {detail}; check the address, the network and --tls-verify")]
    Connect {
        /// Registry host (and port).
        registry: String,
        /// What failed (the underlying error).
        detail: String,
    },
    /// A TLS certificate problem.
    #[error("tls error talking to {registry}: {detail}; put the registry's CA in {certs_dir}/{registry}/ca.crt or use --tls-verify=false")]
    Tls {
        /// Registry host (and port).
        registry: String,
        /// What failed (the underlying error).
        detail: String,
        /// Directory of per-registry certificates (`certs.d`).
        certs_dir: String,
    },
    /// The registry refused our credentials (or we have none).
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// The message (the registry's, when it sent one).
        message: String,
    },
    /// The registry answered with an error (status plus its error document).
    #[error("{message}")]
    Registry {
        /// HTTP status code.
        status: u16,
        /// The message (the registry's, when it sent one).
        message: String,
    },
    /// A transient answer (429, 502, 503, 504), worth trying again after `retry_after` (the
    /// registry's `Retry-After`, when it sent one); see [`crate::retry`].
    #[error("{message}")]
    Unavailable {
        /// HTTP status code.
        status: u16,
        /// The message (the registry's, when it sent one).
        message: String,
        /// How long the registry asked to wait (`Retry-After`), if it said.
        retry_after: Option<std::time::Duration>,
    },
    /// A transient failure that persisted through every retry [`crate::retry`] allows.
    #[error("{what}: {message}; {why}; try again later")]
    GaveUp {
        /// What was being transferred (`layer`, `manifest`, `image config`, …).
        what: String,
        /// The message (the registry's, when it sent one).
        message: String,
        /// Why no further attempt is made.
        why: String,
    },
    /// A manifest or tag does not exist.
    #[error("manifest for {reference} not found: {message}")]
    ManifestUnknown {
        /// The image reference as given.
        reference: String,
        /// The message (the registry's, when it sent one).
        message: String,
    },
    /// Content whose digest is not the one asked for.
    #[error("{what} {expected} failed verification: the registry sent content that hashes to {actual}; nothing was stored")]
    DigestMismatch {
        /// What was being transferred (`layer`, `manifest`, `image config`, …).
        what: &'static str,
        /// Digest the descriptor names.
        expected: Digest,
        /// Digest of what the registry sent.
        actual: Digest,
    },
    #[error(
        "{what} {digest} has {actual} bytes but its descriptor says {expected}; nothing was stored"
    )]
    /// Content whose size is not the one its descriptor gives.
    SizeMismatch {
        /// What was being transferred (`layer`, `manifest`, `image config`, …).
        what: &'static str,
        /// Digest of the blob.
        digest: Digest,
        /// Size in bytes the descriptor gives.
        expected: u64,
        /// Bytes received.
        actual: u64,
    },
    /// A download that kept stopping early, through every retry.
    #[error("download of {what} {digest} stopped at {got} of {expected} bytes after {attempts} attempts ({detail}); nothing was stored; try again")]
    Truncated {
        /// What was being transferred (`layer`, `manifest`, `image config`, …).
        what: &'static str,
        /// Digest of the blob.
        digest: Digest,
        /// Bytes received before the transfer stopped.
        got: u64,
        /// Size in bytes the descriptor gives.
        expected: u64,
        /// Attempts made.
        attempts: u32,
        /// What failed (the underlying error).
        detail: String,
    },
    /// A document (manifest, config) over berth's size limit.
    #[error("{what} from {registry} is larger than {limit} bytes; refusing it")]
    TooLarge {
        /// What was being transferred (`layer`, `manifest`, `image config`, …).
        what: &'static str,
        /// Registry host (and port).
        registry: String,
        /// The limit, in bytes.
        limit: u64,
    },
    /// A manifest or index berth cannot read (what is wrong).
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// A media type berth cannot handle (an artifact, schema 1).
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    /// An index with no image for the wanted platform.
    #[error("no image for platform {wanted} in {reference}; available: {available}; choose one with --platform")]
    NoMatchingPlatform {
        /// The platform asked for (`os/arch[/variant]`).
        wanted: String,
        /// The image reference as given.
        reference: String,
        /// Platforms the image offers, comma separated.
        available: String,
    },
    /// A `--platform` value that is not `os/arch[/variant]`.
    #[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/amd64")]
    InvalidPlatform(String),
    /// Unpacking a layer failed.
    #[error("layer {digest}: {source}")]
    Layer {
        /// Digest of the blob.
        digest: Digest,
        /// The underlying error.
        #[source]
        source: ImageError,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A malformed configuration file (`config.json`, `registries.conf`).
    #[error("{path}: {message}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// The message (the registry's, when it sent one).
        message: String,
    },
    /// A Docker credential helper failed.
    #[error("credential helper docker-credential-{helper}: {message}")]
    CredentialHelper {
        /// Helper name (the program is `docker-credential-<helper>`).
        helper: String,
        /// The message (the registry's, when it sent one).
        message: String,
    },
    /// A file could not be downloaded ([`crate::download::open_url`]).
    #[error("cannot download {url}: {detail}; check the address and that the server answers")]
    Download {
        /// The URL asked for.
        url: String,
        /// What failed (connection, HTTP status, size).
        detail: String,
    },
    /// Anything else, with a message that says what to do.
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
