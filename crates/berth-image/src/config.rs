//! The runtime part of an image config (`config` object of the OCI/Docker image JSON).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Runtime defaults an image carries. Unknown fields are ignored; missing ones are empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageConfig {
    pub user: Option<String>,
    pub env: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub stop_signal: Option<String>,
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
