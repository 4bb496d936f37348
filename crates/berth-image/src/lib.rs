//! Images: references, the image/layer store, safe layer unpacking, and archives
//! (docker-archive, oci-archive, rootfs import).
//!
//! Layout inside the berth root (see `berth-store` for blobs and the database):
//!
//! ```text
//! layers/<chain-id hex>/    unpacked layer (an overlayfs lower directory), immutable once published
//! ```
//!
//! Publishing order (crash safety): blob files first, then each layer is unpacked into
//! `tmp/`, synced and renamed into `layers/`, then the `layers` row is inserted; the image row and
//! its tags are inserted last, in one transaction. Anything not reachable from a row is garbage
//! that [`ImageStore::sweep`] removes.

pub mod config;
pub mod reference;

pub use config::ImageConfig;
pub use reference::{Reference, ReferenceError};

use std::path::PathBuf;

use berth_store::{Digest, Store, StoreError};

/// Errors of the image layer.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("no such image: {0}")]
    NotFound(String),
    #[error("image reference {name:?} is ambiguous: it matches {count} images; use a longer id")]
    Ambiguous { name: String, count: usize },
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;

/// Compression of a layer stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// A layer as stored: unpacked directory plus the blob it came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layer {
    /// Chain id (OCI image spec): identity of this layer on top of its parents.
    pub chain_id: Digest,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Digest of the stored (possibly compressed) blob.
    pub blob: Digest,
    pub blob_size: u64,
    pub compression: String,
    /// Bytes of unpacked content.
    pub size: u64,
}

/// A stored image.
#[derive(Debug, Clone)]
pub struct Image {
    /// `sha256:` of the config blob (Docker's image id).
    pub id: Digest,
    /// Raw config JSON, as loaded or pulled.
    pub raw_config: Vec<u8>,
    /// The runtime part of the config, parsed leniently.
    pub config: ImageConfig,
    /// Bottom layer first.
    pub layers: Vec<Layer>,
    /// Tags (fully qualified references) pointing at this image.
    pub tags: Vec<Reference>,
    /// `name@sha256:…` digests of manifests this image was pulled or pushed as.
    pub repo_digests: Vec<String>,
    /// Unix seconds from the config's `created`, else when it was stored.
    pub created: i64,
    /// Sum of unpacked layer sizes.
    pub size: u64,
}

/// Where an image's unpacked layer directories live.
pub fn layer_dir(store: &Store, chain_id: &Digest) -> PathBuf {
    store.root().join("layers").join(chain_id.hex())
}
