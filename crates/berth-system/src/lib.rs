//! Store-wide views and cleanup across berth's components, as Docker's `system df` and
//! `system prune` (and the Engine API's `GET /system/df`, `POST /*/prune`) present them.
//!
//! This crate owns no table: it reads each component through its own crate (containers from
//! `berth-engine`, images and layers from `berth-image`, volumes from `berth-volume`, build
//! cache entries from `berth-build`, networks from `berth-net`) and removes through their
//! removal calls, so each component's crash-safety rules still hold.
//!
//! - [`disk_usage`]: what uses space ([`DiskUsage`]), with Docker's summary rows
//!   ([`DiskUsage::summary_rows`]), `-v` rows and the API's JSON body.
//! - [`prune`]: stopped containers, unused networks, (anonymous) volumes, dangling or unused
//!   images and the build cache, with `until` and `label` filters ([`PruneFilters`]).

mod df;
mod prune;

pub use df::{
    disk_usage, BuildCacheUsage, ContainerUsage, DiskUsage, ImageUsage, VolumeUsage,
    BUILD_CACHE_HEADERS, BUILD_CACHE_TABLE, CONTAINERS_HEADERS, CONTAINERS_TABLE, IMAGES_HEADERS,
    IMAGES_TABLE, SUMMARY_HEADERS, SUMMARY_TABLE, VOLUMES_HEADERS, VOLUMES_TABLE,
};
pub use prune::{prune, PruneFilters, PruneOptions, PruneReport};

/// Errors of the store-wide operations: the component that failed, with its own error.
#[derive(Debug, thiserror::Error)]
pub enum SystemError {
    /// The store (database, lock).
    #[error(transparent)]
    Store(#[from] berth_store::StoreError),
    /// Containers.
    #[error(transparent)]
    Engine(#[from] berth_engine::EngineError),
    /// Images and layers.
    #[error(transparent)]
    Image(#[from] berth_image::ImageError),
    /// Volumes.
    #[error(transparent)]
    Volume(#[from] berth_volume::VolumeError),
    /// Networks.
    #[error(transparent)]
    Net(#[from] berth_net::NetError),
    /// The build cache.
    #[error(transparent)]
    Build(#[from] berth_build::BuildError),
    /// A `--filter` that is not `until=…`, `label=…` or `label!=…`, or has a bad value.
    #[error("{0}")]
    InvalidFilter(String),
}

/// Results of this crate.
pub type Result<T, E = SystemError> = std::result::Result<T, E>;
