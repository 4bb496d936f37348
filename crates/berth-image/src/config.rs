//! The runtime part of an image config (`config` object of the OCI/Docker image JSON).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Runtime defaults an image carries. Unknown fields are ignored; missing ones are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageConfig {
    /// `User`: user (and group) to run as, `name`, `uid` or `uid:gid`.
    pub user: Option<String>,
    /// `Env`: `KEY=value` entries.
    pub env: Option<Vec<String>>,
    /// `Entrypoint`: argv prefix.
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`: default arguments (or command).
    pub cmd: Option<Vec<String>>,
    /// `WorkingDir`: absolute working directory.
    pub working_dir: Option<String>,
    /// `ExposedPorts`: `port/proto` keys (values are empty objects).
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// `Volumes`: mount-point keys (values are empty objects).
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    /// `Labels`.
    pub labels: Option<BTreeMap<String, String>>,
    /// `StopSignal`: a signal name or number.
    pub stop_signal: Option<String>,
    /// `Healthcheck`, as Docker writes it (`Test`, `Interval`, … in nanoseconds).
    pub healthcheck: Option<serde_json::Value>,
}

impl ImageConfig {
    /// Parse the `config` member of an image config document.
    pub fn from_image_json(doc: &[u8]) -> Result<ImageConfig, serde_json::Error> {
        #[derive(Deserialize)]
        struct Outer {
            #[serde(default)]
            config: Option<ImageConfig>,
        }
        let o: Outer = serde_json::from_slice(doc)?;
        Ok(o.config.unwrap_or_default())
    }
}
