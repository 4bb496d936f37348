//! A container's log driver and its options: `--log-driver`, `--log-opt`, and the daemon-wide
//! defaults of `daemon.json` (Docker's keys).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{bad_opt, Rotation};
use crate::{EngineError, Result};

/// A container's log driver and its options (`--log-driver`, `--log-opt`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogConfig {
    /// `json-file` (default), `local`, `none` or `journald`.
    pub driver: String,
    /// Driver options (`max-size`, `max-file`, `compress`, …).
    #[serde(default)]
    pub opts: BTreeMap<String, String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            driver: "json-file".into(),
            opts: BTreeMap::new(),
        }
    }
}

/// The daemon-wide defaults file in the store root, with Docker's `daemon.json` keys:
/// `{"log-driver": "local", "log-opts": {"max-size": "10m"}}`.
pub const DAEMON_CONFIG: &str = "daemon.json";

impl LogConfig {
    /// The daemon-wide default from `<root>/daemon.json` (json-file when absent).
    ///
    /// Errors: [`EngineError::Io`] when the file exists but cannot be read;
    /// [`EngineError::InvalidArgument`] naming the file when it is not JSON of that shape or names
    /// an unknown driver, option or bad value.
    pub fn daemon_default(root: &Path) -> Result<LogConfig> {
        let p = root.join(DAEMON_CONFIG);
        let text = match std::fs::read(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LogConfig::default()),
            Err(e) => return Err(EngineError::io(&p, e)),
        };
        #[derive(Deserialize)]
        struct Daemon {
            #[serde(rename = "log-driver", default)]
            log_driver: Option<String>,
            #[serde(rename = "log-opts", default)]
            log_opts: BTreeMap<String, String>,
        }
        let d: Daemon = serde_json::from_slice(&text).map_err(|e| {
            bad_opt(format!(
                "{}: {e}; fix the file (keys \"log-driver\" and \"log-opts\" with string values)",
                p.display()
            ))
        })?;
        let c = LogConfig {
            driver: d.log_driver.unwrap_or_else(|| "json-file".into()),
            opts: d.log_opts,
        };
        c.validate()
            .map_err(|e| bad_opt(format!("{}: {e}", p.display())))?;
        Ok(c)
    }

    /// Merge `--log-driver` / `--log-opt KEY=VALUE` over the daemon default, as Docker does:
    /// the default driver's options apply unless another driver is chosen. Errors on unknown
    /// drivers or options and on bad values.
    pub fn resolve(root: &Path, driver: Option<&str>, opts: &[String]) -> Result<LogConfig> {
        let base = LogConfig::daemon_default(root)?;
        let mut c = match driver {
            Some(d) if d != base.driver => LogConfig {
                driver: d.to_string(),
                opts: BTreeMap::new(),
            },
            _ => base,
        };
        for o in opts {
            let (k, v) = o.split_once('=').ok_or_else(|| {
                bad_opt(format!(
                    "invalid --log-opt {o:?}: use KEY=VALUE (e.g. max-size=10m)"
                ))
            })?;
            c.opts.insert(k.to_string(), v.to_string());
        }
        c.validate()?;
        Ok(c)
    }

    /// Check the driver and its options.
    ///
    /// Errors: [`EngineError::InvalidArgument`] for an unknown driver, an option the driver does not
    /// take, a bad `max-size`/`max-file`/`compress` value, `max-file` without `max-size` on
    /// json-file, or journald on a host without systemd-journald.
    pub fn validate(&self) -> Result<()> {
        let allowed: &[&str] = match self.driver.as_str() {
            "json-file" => &[
                "max-size",
                "max-file",
                "compress",
                "labels",
                "labels-regex",
                "env",
                "env-regex",
                "tag",
            ],
            "local" => &["max-size", "max-file", "compress"],
            "none" => &[],
            "journald" => {
                if !crate::journald::available() {
                    return Err(bad_opt(format!(
                        "log driver journald needs systemd-journald, which is not running on this host ({} is missing): use json-file or local",
                        crate::journald::socket_path().display()
                    )));
                }
                &["tag"]
            }
            other => {
                return Err(bad_opt(format!(
                    "unknown log driver {other:?}: use json-file, local, none or journald"
                )))
            }
        };
        for k in self.opts.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(bad_opt(format!(
                    "unknown log opt {k:?} for the {} log driver{}",
                    self.driver,
                    if allowed.is_empty() {
                        String::new()
                    } else {
                        format!(" (use {})", allowed.join(", "))
                    }
                )));
            }
        }
        if let Some(v) = self.opts.get("max-size") {
            let n = crate::config::parse_bytes(v)?;
            if n <= 0 {
                return Err(bad_opt(format!("invalid max-size {v:?}: must be positive")));
            }
        }
        if let Some(v) = self.opts.get("max-file") {
            let n: u64 = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                bad_opt(format!(
                    "invalid max-file {v:?}: use a whole number of files, at least 1"
                ))
            })?;
            if n > 1 && !self.opts.contains_key("max-size") && self.driver == "json-file" {
                return Err(bad_opt(
                    "max-file needs max-size: give --log-opt max-size=… too".into(),
                ));
            }
        }
        if let Some(v) = self.opts.get("compress") {
            if v.parse::<bool>().is_err() {
                return Err(bad_opt(format!(
                    "invalid compress {v:?}: use true or false"
                )));
            }
        }
        Ok(())
    }

    /// Whether `logs` can read this driver's output (`journald` keeps a local copy, as
    /// Docker's dual logging does).
    pub fn readable(&self) -> bool {
        matches!(self.driver.as_str(), "json-file" | "local" | "journald")
    }

    /// The rotation settings, if the log is bounded (`local` and the local copy of
    /// `journald` are, by default: 20 MB × 5, compressed, as Docker's local driver and its
    /// dual-logging cache).
    pub fn rotation(&self) -> Option<Rotation> {
        let local = matches!(self.driver.as_str(), "local" | "journald");
        let size = match self.opts.get("max-size") {
            Some(v) => u64::try_from(crate::config::parse_bytes(v).ok()?).ok()?,
            None if local => 20 << 20,
            None => return None,
        };
        let max_file = self
            .opts
            .get("max-file")
            .and_then(|v| v.parse().ok())
            .unwrap_or(if local { 5 } else { 1 });
        let compress = self
            .opts
            .get("compress")
            .and_then(|v| v.parse().ok())
            .unwrap_or(local);
        Some(Rotation {
            max_size: size,
            max_file,
            compress,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_config() {
        let d = tempfile::tempdir().unwrap();
        let c = LogConfig::resolve(d.path(), None, &["max-size=1m".into(), "max-file=3".into()])
            .unwrap();
        assert_eq!(
            c.rotation(),
            Some(Rotation {
                max_size: 1 << 20,
                max_file: 3,
                compress: false
            })
        );
        assert!(LogConfig::resolve(d.path(), Some("syslog"), &[]).is_err());
        assert!(LogConfig::resolve(d.path(), None, &["max-file=3".into()]).is_err());
        assert!(LogConfig::resolve(d.path(), None, &["colour=red".into()]).is_err());
        assert!(LogConfig::resolve(d.path(), Some("none"), &["max-size=1m".into()]).is_err());
        let l = LogConfig::resolve(d.path(), Some("local"), &[]).unwrap();
        assert_eq!(l.rotation().unwrap().max_file, 5);
        std::fs::write(
            d.path().join(DAEMON_CONFIG),
            r#"{"log-driver": "json-file", "log-opts": {"max-size": "10m"}}"#,
        )
        .unwrap();
        let c = LogConfig::resolve(d.path(), None, &[]).unwrap();
        assert_eq!(c.opts.get("max-size").map(String::as_str), Some("10m"));
        let c = LogConfig::resolve(d.path(), Some("none"), &[]).unwrap();
        assert!(c.opts.is_empty() && !c.readable());
        std::fs::write(d.path().join(DAEMON_CONFIG), "{").unwrap();
        let e = LogConfig::resolve(d.path(), None, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("daemon.json"), "{e}");
    }
}
