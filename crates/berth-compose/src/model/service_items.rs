//! Items a service lists: network attachments, ports, mounts, file references (configs and
//! secrets) and ulimits.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::*;

/// A service's attachment to a network.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceNetwork {
    /// Extra DNS names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Fixed IPv4 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    /// Fixed IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
    /// Priority.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
}

/// A published port (long syntax).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Port {
    /// Port name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// ingress or host.
    #[serde(default = "ingress")]
    pub mode: String,
    /// Host address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// Container port.
    #[serde(deserialize_with = "de_u16")]
    pub target: u16,
    /// Host port or range (`None`: random).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_string"
    )]
    pub published: Option<String>,
    /// tcp or udp.
    #[serde(default = "tcp")]
    pub protocol: String,
    /// Application protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

pub(super) fn ingress() -> String {
    "ingress".into()
}
pub(super) fn tcp() -> String {
    "tcp".into()
}

/// A mount (long syntax).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    /// bind, volume, tmpfs (npipe, cluster, image are refused at `up`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Host path (bind, absolute after loading) or volume name; none for tmpfs/anonymous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Container path.
    pub target: String,
    /// Read-only.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub read_only: bool,
    /// Consistency (ignored on Linux).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    /// Bind options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindOptions>,
    /// Volume options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeOptions>,
    /// tmpfs options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<TmpfsOptions>,
}

/// Bind mount options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BindOptions {
    /// Propagation (rprivate, shared, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    /// SELinux relabel (z, Z).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux: Option<String>,
    /// Create the host path if missing.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub create_host_path: bool,
}

/// Volume mount options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VolumeOptions {
    /// Don't copy the image's content into a new volume.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "de_bool"
    )]
    pub nocopy: bool,
    /// Mount a sub-path of the volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
}

/// tmpfs mount options.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TmpfsOptions {
    /// Size in bytes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_bytes",
        serialize_with = "ser_opt_bytes"
    )]
    pub size: Option<u64>,
    /// Mode (octal).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_u64"
    )]
    pub mode: Option<u64>,
}

/// A secret or config reference of a service.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    /// Top-level key.
    pub source: String,
    /// Path in the container (secrets: relative to /run/secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Owner uid.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_string"
    )]
    pub uid: Option<String>,
    /// Owner gid.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_string"
    )]
    pub gid: Option<String>,
    /// File mode (printed in octal, `"0440"`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_mode",
        serialize_with = "ser_opt_mode"
    )]
    pub mode: Option<u32>,
}

pub(super) fn de_opt_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("invalid mode {n}"))),
        Value::String(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
            .map(Some)
            .map_err(|_| D::Error::custom(format!("invalid mode {s:?}: use octal, e.g. 0440"))),
        other => Err(D::Error::custom(format!("invalid mode {other}"))),
    }
}

#[allow(clippy::ref_option)] // serde's serialize_with passes a reference
pub(super) fn ser_opt_mode<S: Serializer>(v: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(n) => s.serialize_str(&format!("0{n:o}")),
        None => s.serialize_none(),
    }
}

/// A ulimit: one number (soft = hard) or a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ulimit {
    /// Soft limit.
    pub soft: i64,
    /// Hard limit.
    pub hard: i64,
    /// Written as a single number.
    pub single: bool,
}

impl Serialize for Ulimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.single {
            s.serialize_i64(self.soft)
        } else {
            let mut m = BTreeMap::new();
            m.insert("soft", self.soft);
            m.insert("hard", self.hard);
            // soft first, as Docker prints it.
            use serde::ser::SerializeMap;
            let mut map = s.serialize_map(Some(2))?;
            map.serialize_entry("soft", &m["soft"])?;
            map.serialize_entry("hard", &m["hard"])?;
            map.end()
        }
    }
}

impl<'de> Deserialize<'de> for Ulimit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let v = Value::deserialize(d)?;
        match &v {
            Value::Object(m) => {
                if let Some(k) = m.keys().find(|k| *k != "soft" && *k != "hard") {
                    return Err(D::Error::custom(format!(
                        "unknown key {k:?}: use soft and hard"
                    )));
                }
                let get = |k: &str| -> Result<i64, D::Error> {
                    m.get(k)
                        .and_then(value_i64)
                        .ok_or_else(|| D::Error::custom(format!("{k} must be an integer")))
                };
                Ok(Ulimit {
                    soft: get("soft")?,
                    hard: get("hard")?,
                    single: false,
                })
            }
            _ => {
                let n = value_i64(&v)
                    .ok_or_else(|| D::Error::custom("a ulimit is an integer or {soft, hard}"))?;
                Ok(Ulimit {
                    soft: n,
                    hard: n,
                    single: true,
                })
            }
        }
    }
}
