//! The typed compose model (what `config` prints and `up` runs). Field names are the compose
//! specification's; the JSON form matches `docker compose config --format json`.
//!
//! Deserialisation accepts the canonical (long) forms produced by [`crate::normalize`]; the
//! lenient helpers accept numbers, booleans and strings interchangeably where compose does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

mod codec;
mod service;
mod service_items;

use codec::*;
pub use codec::{format_duration, parse_bytes, parse_duration, scalar_text, split_shell};
pub use service::{
    BlkioConfig, Build, DependsOn, Deploy, Device, Healthcheck, Logging, Positions, Resource,
    Resources, RestartPolicy, Service, ThrottleDevice, WeightDevice,
};
pub use service_items::{
    BindOptions, FileRef, Mount, Port, ServiceNetwork, TmpfsOptions, Ulimit, VolumeOptions,
};

/// A loaded project.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Project {
    /// Normalised project name.
    pub name: String,
    /// Networks used by the enabled services, by key.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Network>,
    /// Services, by name (only the enabled ones, see profiles).
    pub services: BTreeMap<String, Service>,
    /// Named volumes used by the services.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Volume>,
    /// Secrets used by the services.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, FileObject>,
    /// Configs used by the services.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, FileObject>,
    /// Top-level `x-*` extensions.
    #[serde(skip)]
    pub extensions: BTreeMap<String, Value>,
    /// The project directory (absolute).
    #[serde(skip)]
    pub working_dir: std::path::PathBuf,
    /// The compose files read (absolute), in order.
    #[serde(skip)]
    pub config_files: Vec<std::path::PathBuf>,
    /// Services left out by profiles (name → its definition), for `--profile`-less errors.
    #[serde(skip)]
    pub disabled: BTreeMap<String, Service>,
    /// Warnings for the user (unset variables, obsolete `version`).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// A top-level network.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// Name on the engine (`PROJECT_KEY` unless set or external).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Driver (bridge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "de_str_map"
    )]
    pub driver_opts: BTreeMap<String, String>,
    /// IP address management.
    #[serde(default)]
    pub ipam: Ipam,
    /// Managed outside the project.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub external: bool,
    /// No outside connectivity.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub internal: bool,
    /// IPv6.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_bool"
    )]
    pub enable_ipv6: Option<bool>,
    /// Attachable (accepted).
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub attachable: bool,
    /// Labels.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "de_str_map"
    )]
    pub labels: BTreeMap<String, String>,
}

/// `ipam` of a network.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Ipam {
    /// Driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Pools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<IpamPool>,
    /// Driver options.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "de_str_map"
    )]
    pub options: BTreeMap<String, String>,
}

/// One IPAM pool.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IpamPool {
    /// CIDR subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// IP range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// Gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Auxiliary addresses.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "de_str_map"
    )]
    pub aux_addresses: BTreeMap<String, String>,
}

/// A top-level volume.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// Name on the engine (`PROJECT_KEY` unless set or external).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Driver (local).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options (`type`, `o`, `device` for local).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "de_str_map"
    )]
    pub driver_opts: BTreeMap<String, String>,
    /// Managed outside the project.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub external: bool,
    /// Labels.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "de_str_map"
    )]
    pub labels: BTreeMap<String, String>,
}

/// A top-level secret or config (file-based, or from the environment / inline content).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileObject {
    /// Name (`PROJECT_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Host file (absolute after loading).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Environment variable holding the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Inline content (configs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Managed outside the project.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub external: bool,
    /// Labels.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "de_str_map"
    )]
    pub labels: BTreeMap<String, String>,
}

impl Project {
    /// The model as JSON, in `docker compose config --format json`'s shape (with extensions).
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            for (k, e) in &self.extensions {
                m.insert(k.clone(), e.clone());
            }
            if let Some(Value::Object(svcs)) = m.get_mut("services") {
                for (name, s) in &self.services {
                    if let Some(Value::Object(sm)) = svcs.get_mut(name) {
                        // Docker prints command and entrypoint even when unset.
                        sm.entry("command").or_insert(Value::Null);
                        sm.entry("entrypoint").or_insert(Value::Null);
                        // Service-level extensions are not printed (as Docker).
                        let _ = s;
                    }
                }
            }
        }
        escape_dollars(&mut v);
        v
    }

    /// Service names in dependency order (dependencies first), ties by name.
    pub fn dependency_order(&self) -> Vec<String> {
        let mut done: Vec<String> = Vec::new();
        fn visit(p: &Project, n: &str, done: &mut Vec<String>, stack: &mut Vec<String>) {
            if done.iter().any(|d| d == n) || stack.iter().any(|d| d == n) {
                return;
            }
            stack.push(n.to_string());
            if let Some(s) = p.services.get(n) {
                for dep in s.depends_on.keys() {
                    visit(p, dep, done, stack);
                }
            }
            stack.pop();
            done.push(n.to_string());
        }
        for n in self.services.keys() {
            visit(self, n, &mut done, &mut Vec::new());
        }
        done
    }
}

impl Service {
    /// Number of containers to run: `deploy.replicas`, else `scale`, else 1.
    pub fn replicas(&self) -> u64 {
        self.deploy
            .as_ref()
            .and_then(|d| d.replicas)
            .or(self.scale)
            .unwrap_or(1)
    }
}

/// JSON → YAML text (for `config`'s default format).
pub fn json_to_yaml(v: &Value) -> String {
    use yaml_rust2::{Yaml, YamlEmitter};
    fn conv(v: &Value) -> Yaml {
        match v {
            Value::Null => Yaml::Null,
            Value::Bool(b) => Yaml::Boolean(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Yaml::Integer(i),
                None => Yaml::Real(n.to_string()),
            },
            Value::String(s) => Yaml::String(s.clone()),
            Value::Array(a) => Yaml::Array(a.iter().map(conv).collect()),
            Value::Object(m) => {
                let mut h = yaml_rust2::yaml::Hash::new();
                for (k, v) in m {
                    h.insert(Yaml::String(k.clone()), conv(v));
                }
                Yaml::Hash(h)
            }
        }
    }
    let mut out = String::new();
    let mut em = YamlEmitter::new(&mut out);
    em.multiline_strings(true);
    if em.dump(&conv(v)).is_err() {
        return String::new();
    }
    let body = out.strip_prefix("---\n").unwrap_or(&out).to_string();
    body + "\n"
}

impl Project {
    /// The model as YAML (`config`'s default output).
    pub fn to_yaml(&self) -> String {
        let mut v = self.to_json();
        // Compose's JSON prints blkio_config's device items with Go's field names (`Path`,
        // `Rate`, `Weight`), its YAML with the spec's (`path`, `rate`, `weight`).
        if let Some(Value::Object(svcs)) = v.get_mut("services") {
            for s in svcs.values_mut() {
                let Some(Value::Object(b)) = s.get_mut("blkio_config") else {
                    continue;
                };
                for items in b.values_mut().filter_map(Value::as_array_mut) {
                    for it in items.iter_mut().filter_map(Value::as_object_mut) {
                        *it = std::mem::take(it)
                            .into_iter()
                            .map(|(k, v)| (k.to_ascii_lowercase(), v))
                            .collect();
                    }
                }
            }
        }
        json_to_yaml(&v)
    }
}

#[cfg(test)]
mod tests;
