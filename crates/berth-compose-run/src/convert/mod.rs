//! One service of a project → the engine's container configuration, with compose's labels;
//! and the configuration hash that decides whether `up` recreates a container.

mod check;
mod container;
pub mod content;
mod gojson;
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
use serde_json::Value;
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

/// docker compose's configuration hash of a service (`com.docker.compose.config-hash`,
/// `config --hash`): hex SHA-256 of Go's `json.Marshal` of compose-go's service model with
/// what does not make a container cleared (`build`, `pull_policy`, `scale`,
/// `deploy.replicas`, `depends_on`, `profiles`; docker compose v2.40.3's `ServiceHash`).
/// Byte-for-byte docker compose's, so either tool leaves the other's containers alone.
/// References to other services (`network_mode`/`ipc`/`pid: service:NAME`, `volumes_from`)
/// are hashed as written; `up` hashes them resolved ([`config_hash_resolved`]).
pub fn config_hash(s: &Service) -> String {
    hash_value(&service_value(s))
}

/// [`config_hash`] as docker compose's `up` computes it: `network_mode`, `ipc` and `pid`
/// `service:NAME` become `container:ID` and `volumes_from` entries become the bare container
/// id (`SERVICE[:MODE]` → `resolve(SERVICE)`, `container:NAME[:MODE]` → `NAME`; docker
/// compose drops the mode), `resolve` giving the id of a service's first container (by
/// name). A reference `resolve` cannot answer is hashed as written.
pub fn config_hash_resolved(
    s: &Service,
    resolve: &mut dyn FnMut(&str) -> Option<String>,
) -> String {
    let mut v = service_value(s);
    if let Value::Object(m) = &mut v {
        for key in ["network_mode", "ipc", "pid"] {
            if let Some(Value::String(x)) = m.get_mut(key) {
                if let Some(id) = x.strip_prefix("service:").and_then(&mut *resolve) {
                    *x = format!("container:{id}");
                }
            }
        }
        if let Some(Value::Array(a)) = m.get_mut("volumes_from") {
            for e in a.iter_mut() {
                if let Value::String(x) = e {
                    let mut spec = x.split(':');
                    let first = spec.next().unwrap_or_default();
                    let new = if first == "container" {
                        spec.next().map(str::to_string)
                    } else {
                        resolve(first)
                    };
                    if let Some(n) = new {
                        *x = n;
                    }
                }
            }
        }
    }
    hash_value(&v)
}

/// The service's JSON with the fields docker compose clears before hashing removed.
fn service_value(s: &Service) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        for k in ["build", "pull_policy", "scale", "depends_on", "profiles"] {
            m.remove(k);
        }
        if let Some(Value::Object(d)) = m.get_mut("deploy") {
            d.remove("replicas");
        }
        // compose-go writes these two even when unset (`json:"command"`, no omitempty).
        m.entry("command").or_insert(Value::Null);
        m.entry("entrypoint").or_insert(Value::Null);
    }
    v
}

/// The exact text [`config_hash`] hashes: the service as Go's `json.Marshal` writes
/// compose-go's model, cleared fields removed (for comparing with docker compose's).
pub fn config_json(s: &Service) -> String {
    gojson::service_json(&service_value(s))
}

fn hash_value(v: &Value) -> String {
    hex::encode(Sha256::digest(gojson::service_json(v).as_bytes()))
}

/// The compose file(s) a project came from, for error messages, as the loader names them
/// (`/srv/app/compose.yaml`, or `/srv/a.yaml+/srv/b.yaml`; `compose.yaml` when none).
pub fn files_label(p: &Project) -> String {
    if p.config_files.is_empty() {
        return "compose.yaml".into();
    }
    p.config_files
        .iter()
        .map(|f| f.display().to_string())
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
