//! Images: references, the image/layer store, safe layer unpacking, and archives
//! (docker-archive, oci-archive, rootfs import).
//!
//! Layout inside the berth root (see `berth-store` for blobs and the database):
//!
//! ```text
//! layers/<diff-id hex>/     unpacked layer (an overlayfs lower directory), immutable once published
//! ```
//!
//! Layers are keyed by their diff id (digest of the uncompressed tar): with overlayfs an
//! unpacked layer does not depend on its parents, so identical layers are shared between images
//! and layers can be unpacked in parallel.
//!
//! Publishing order (crash safety): blob files first, then each layer is unpacked into
//! `tmp/`, synced and renamed into `layers/`, then the `layers` row is inserted; the image row and
//! its tags are inserted last, in one transaction. Anything not reachable from a row is garbage
//! that [`ImageStore::sweep`] removes.

pub mod archive;
pub mod config;
pub mod decompress;
pub mod events;
pub mod import;
pub mod media;
mod pack;
pub mod reference;
pub mod sparse;
mod store;
mod unpack;
pub mod view;

pub use config::ImageConfig;
pub use pack::{copy_layer_dir, ingest_dir};
pub use reference::{Reference, ReferenceError};
pub use store::ImageStore;
pub use unpack::{
    detect_compression, ingest_layer, unpack_layer, unpack_tree, unpack_tree_with, TreeOptions,
};

/// Extended attribute on the root of an unpacked layer whose tar did not set `./`: that
/// layer says nothing about the image's root directory (mode, owner, times, xattrs), which
/// then comes from a lower layer (see the engine's rootfs).
pub const IMPLICIT_ROOT_XATTR: &str = "trusted.berth.implicit-root";

use std::path::{Path, PathBuf};

use berth_store::{Digest, Store, StoreError};

/// Errors of the image layer.
#[derive(Debug, thiserror::Error)]
/// Errors of the image layer; messages are lowercase, one line, and say what to do.
pub enum ImageError {
    #[error(transparent)]
    /// The store failed (database open, blobs, locking).
    Store(#[from] StoreError),
    #[error(transparent)]
    /// A malformed image reference.
    Reference(#[from] ReferenceError),
    #[error("{path}: {source}")]
    /// A file operation failed.
    Io {
        /// The file.
        path: PathBuf,
        #[source]
        /// The error.
        source: std::io::Error,
    },
    #[error("metadata database: {0}")]
    /// A query on the image tables failed.
    Db(#[from] berth_store::DbError),
    #[error("no such image: {0}")]
    /// No image has this name, tag or id.
    NotFound(String),
    #[error("multiple IDs found with provided prefix: {name} ({count} images); use more characters of the id or the name")]
    /// An id prefix matching several images.
    Ambiguous {
        /// The prefix as given.
        name: String,
        /// How many images it matches.
        count: usize,
    },
    /// A layer tar entry that is refused or cannot be created.
    #[error("layer entry {entry:?}: {why}")]
    Entry {
        /// The entry's path in the tar.
        entry: String,
        /// Why it is refused.
        why: String,
    },
    /// A layer stream that is not a valid (compressed) tar or fails verification.
    #[error("layer: {0}")]
    Layer(String),
    /// Malformed archive (docker-archive / oci-archive / rootfs tar).
    #[error("{0}")]
    Archive(String),
    /// A copied tree's entry would replace a directory with a non-directory or the reverse
    /// (`cp` with Docker's `noOverwriteDirNonDir`); the message names the entry.
    #[error("{0}")]
    WouldOverwrite(String),
    /// Refused because of a conflict (image in use, several tags, …).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("{0}")]
    /// Anything else, with a message that says what to do.
    Other(String),
}

impl ImageError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ImageError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Results of the image layer.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;

/// Compression of a layer stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Uncompressed tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// `none`, `gzip` or `zstd` (as stored in the database).
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// Parse the database spelling (`none`, `gzip`, `zstd`); `None` for anything else.
    pub fn parse(s: &str) -> Option<Compression> {
        match s {
            "none" => Some(Compression::None),
            "gzip" => Some(Compression::Gzip),
            "zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// OCI layer media type for a blob with this compression.
    pub fn oci_media_type(self) -> media::MediaType {
        match self {
            Compression::None => media::MediaType::ImageLayer,
            Compression::Gzip => media::MediaType::ImageLayerGzip,
            Compression::Zstd => media::MediaType::ImageLayerZstd,
        }
    }

    /// Docker schema2 layer media type (Docker has no zstd type; the OCI one is used).
    pub fn docker_media_type(self) -> media::MediaType {
        match self {
            Compression::None => media::media_type(media::DOCKER_LAYER),
            Compression::Gzip => media::media_type(media::DOCKER_LAYER_GZIP),
            Compression::Zstd => media::MediaType::ImageLayerZstd,
        }
    }

    /// Compression named by a layer media type, if it says.
    pub fn from_media_type(mt: &str) -> Option<Compression> {
        if mt.ends_with("+gzip") || mt.ends_with(".tar.gzip") {
            Some(Compression::Gzip)
        } else if mt.ends_with("+zstd") {
            Some(Compression::Zstd)
        } else if mt.ends_with(".tar") {
            Some(Compression::None)
        } else {
            None
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A layer as stored: unpacked directory (`layers/<diff hex>`) plus the blob it came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layer {
    /// Digest of the uncompressed tar; names the unpacked directory.
    pub diff_id: Digest,
    /// Length of the uncompressed tar.
    pub diff_size: u64,
    /// Digest of the stored blob (as received: possibly compressed).
    pub blob: Digest,
    /// Length of the stored blob in bytes.
    pub blob_size: u64,
    /// Compression of the stored blob.
    pub compression: Compression,
    /// Bytes of unpacked content (sum of regular file sizes).
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
    /// Digest of the manifest blob the image came with (pull, oci-archive), if any.
    pub manifest: Option<Digest>,
    /// Unix seconds from the config's `created`, else when it was stored.
    pub created: i64,
    /// Sum of unpacked layer sizes.
    pub size: u64,
    /// Unix seconds when the image was last stored (loaded, pulled, built, imported) or
    /// tagged: Docker's `Metadata.LastTagTime`.
    pub stored_at: i64,
}

impl Image {
    /// `architecture` of the config (default `amd64`).
    pub fn architecture(&self) -> String {
        self.config_str("architecture")
            .unwrap_or_else(|| "amd64".into())
    }

    /// `os` of the config (default `linux`).
    pub fn os(&self) -> String {
        self.config_str("os").unwrap_or_else(|| "linux".into())
    }

    fn config_str(&self, key: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(&self.raw_config).ok()?;
        v.get(key)?.as_str().map(|s| s.to_string())
    }

    /// Familiar names of the tags (`app:latest`).
    pub fn familiar_tags(&self) -> Vec<String> {
        self.tags.iter().map(|t| t.familiar()).collect()
    }

    /// Docker-like `image inspect` object.
    pub fn inspect_json(&self) -> serde_json::Value {
        let raw: serde_json::Value =
            serde_json::from_slice(&self.raw_config).unwrap_or(serde_json::Value::Null);
        let get = |k: &str| raw.get(k).cloned().unwrap_or(serde_json::Value::Null);
        let created = raw
            .get("created")
            .and_then(|c| c.as_str())
            .map(|s| s.to_string())
            .unwrap_or_else(|| {
                chrono::DateTime::from_timestamp(self.created, 0)
                    .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                    .unwrap_or_default()
            });
        let mut config = raw
            .get("config")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        if !config.is_object() {
            config = serde_json::json!({});
        }
        serde_json::json!({
            "Id": self.id.as_str(),
            "RepoTags": self.familiar_tags(),
            "RepoDigests": self.repo_digests,
            "Parent": "",
            "Comment": history_comment(&raw),
            "Created": created,
            "DockerVersion": get("docker_version").as_str().unwrap_or(""),
            "Author": get("author").as_str().unwrap_or(""),
            "Config": config,
            "Architecture": self.architecture(),
            "Variant": raw.get("variant").cloned(),
            "Os": self.os(),
            "Size": self.size,
            "VirtualSize": self.size,
            "GraphDriver": {
                "Name": "overlay2",
                "Data": serde_json::Value::Null,
            },
            "RootFS": {
                "Type": "layers",
                "Layers": self.layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>(),
            },
            "Metadata": { "LastTagTime": chrono::DateTime::from_timestamp(self.stored_at, 0)
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".into()) },
        })
    }
}

fn history_comment(raw: &serde_json::Value) -> String {
    raw.get("history")
        .and_then(|h| h.as_array())
        .and_then(|h| h.last())
        .and_then(|h| h.get("comment"))
        .and_then(|c| c.as_str())
        .unwrap_or("")
        .to_string()
}

/// Where a layer's unpacked directory lives (whether or not it exists).
pub fn layer_dir(store: &Store, diff_id: &Digest) -> PathBuf {
    layer_dir_in(store.root(), diff_id)
}

/// [`layer_dir`] from a root path (usable from any thread).
pub fn layer_dir_in(root: &Path, diff_id: &Digest) -> PathBuf {
    root.join("layers").join(diff_id.hex())
}
