//! One service of a project → the engine's container configuration, with compose's labels;
//! and the configuration hash that decides whether `up` recreates a container.

mod check;
mod container;
mod limits;
mod settings;

use std::collections::BTreeMap;
use std::path::Path;

use berth_compose::model::Mount;
use berth_compose::{Project, Service};
use berth_engine::config::{self as ccfg, Bind, ContainerConfig, RestartPolicy};
use berth_engine::volumes::VolumeMount;
use berth_image::ImageConfig;
use berth_net::{Attachment, NetworkMode};
use sha2::{Digest as _, Sha256};

use crate::{labels, Result, RunError};

pub use check::{locate, unsupported};
pub use container::container_config;
pub use limits::{check_userns, limits, namespaces, Limits};
pub use settings::{healthcheck, log_config, security};

/// The image reference a service runs: `image:`, else `PROJECT-SERVICE` (what a build tags).
pub fn image_ref(p: &Project, name: &str, s: &Service) -> String {
    s.image
        .clone()
        .unwrap_or_else(|| format!("{}-{}", p.name, name))
}

/// Name of container number `n` of a service (`container_name:` or `PROJECT-SERVICE-N`).
pub fn container_name(p: &Project, name: &str, s: &Service, n: u64) -> String {
    match &s.container_name {
        Some(c) => c.clone(),
        None => format!("{}-{}-{}", p.name, name, n),
    }
}

/// Hash of what a container of this service is made from (the service's normalised model,
/// without the replica count: scaling does not recreate). Hex SHA-256.
pub fn config_hash(s: &Service) -> String {
    let mut s = s.clone();
    s.scale = None;
    if let Some(d) = &mut s.deploy {
        d.replicas = None;
    }
    let json = serde_json::to_vec(&s).unwrap_or_default();
    hex::encode(Sha256::digest(&json))
}

/// The compose file(s) a project came from, for error messages (`compose.yaml`, or
/// `a.yaml+b.yaml`).
pub fn files_label(p: &Project) -> String {
    if p.config_files.is_empty() {
        return "compose.yaml".into();
    }
    p.config_files
        .iter()
        .map(|f| {
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| f.display().to_string())
        })
        .collect::<Vec<_>>()
        .join("+")
}

/// What one container of a service needs besides the project: its number, whether it is a
/// one-off (`run`), and overrides from `run`.
#[derive(Debug, Clone, Default)]
pub struct Instance {
    /// Replica number (1-based); one-offs use 1.
    pub number: u64,
    /// A `compose run` container.
    pub oneoff: bool,
    /// Command override (`run SERVICE CMD…`).
    pub command: Option<Vec<String>>,
    /// Extra environment `KEY=VALUE` (`run -e`).
    pub env: Vec<String>,
    /// Publish the service's ports (`up`, or `run --service-ports`).
    pub publish: bool,
    /// `run --rm`.
    pub auto_remove: bool,
    /// Allocate a tty (`run` with a terminal).
    pub tty: Option<bool>,
    /// Keep stdin open.
    pub stdin_open: Option<bool>,
    /// Anonymous volumes of the container this one replaces: (container path, volume name).
    pub inherit_volumes: Vec<(String, String)>,
}

#[cfg(test)]
mod tests;
