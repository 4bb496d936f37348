//! A container's health check: Docker's `Config.Healthcheck` (from the image's `HEALTHCHECK`)
//! overridden by the `--health-*` flags, with Docker's defaults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{EngineError, Result};

/// Docker's defaults (nanoseconds) and limits.
const DEFAULT_INTERVAL: i64 = 30_000_000_000;
const DEFAULT_TIMEOUT: i64 = 30_000_000_000;
const DEFAULT_START_INTERVAL: i64 = 5_000_000_000;
const DEFAULT_RETRIES: i64 = 3;

/// A container's health check, Docker's `Config.Healthcheck` (durations in nanoseconds, 0 =
/// Docker's default).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["CMD", args…]`, `["CMD-SHELL", command]`, `["NONE"]` (disabled) or empty (inherit).
    #[serde(default)]
    pub test: Vec<String>,
    /// Time between probes (ns).
    #[serde(default)]
    pub interval: i64,
    /// Time after which a probe is killed and counted as failed (ns).
    #[serde(default)]
    pub timeout: i64,
    /// Grace period after start during which failures do not count (ns).
    #[serde(default)]
    pub start_period: i64,
    /// Time between probes during the start period (ns).
    #[serde(default)]
    pub start_interval: i64,
    /// Consecutive failures that make the container unhealthy.
    #[serde(default)]
    pub retries: i64,
    /// berth's extension (Docker never acts on health): when the container turns unhealthy
    /// and its restart policy would restart it after a failure, the probe stops it (its stop
    /// signal, SIGKILL after its stop timeout) so that the policy restarts it; see
    /// [`restart_unhealthy`](super::restart_unhealthy). `berth compose` sets it for services
    /// with a restart policy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart_unhealthy: bool,
}

/// The `--health-*` flags of `run`/`create` (durations as Docker writes them: `1m30s`).
#[derive(Debug, Clone, Default)]
pub struct HealthFlags {
    /// `--health-cmd` (run with `/bin/sh -c`).
    pub cmd: Option<String>,
    /// `--health-interval`.
    pub interval: Option<String>,
    /// `--health-timeout`.
    pub timeout: Option<String>,
    /// `--health-start-period`.
    pub start_period: Option<String>,
    /// `--health-start-interval`.
    pub start_interval: Option<String>,
    /// `--health-retries`: consecutive failures that make the container unhealthy (0:
    /// Docker's default, 3).
    pub retries: Option<i64>,
    /// `--no-healthcheck`.
    pub disable: bool,
}

/// Parse a Go-style duration (`500ms`, `2s`, `1m30s`, `1h`) into nanoseconds.
///
/// Errors: [`EngineError::InvalidArgument`] naming `flag` for empty text, a bare number other
/// than `0`, an unknown unit, or a value above 10^18 ns.
pub fn parse_duration(flag: &str, s: &str) -> Result<i64> {
    let bad = || {
        EngineError::InvalidArgument(format!(
            "invalid {flag} {s:?}: use a duration such as 500ms, 10s or 1m30s"
        ))
    };
    let t = s.trim();
    if t == "0" {
        return Ok(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = t;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_end);
        let v: f64 = num.parse().map_err(|_| bad())?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let mult = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += v * mult;
        rest = next;
    }
    if !total.is_finite() || total > 1e18 {
        return Err(bad());
    }
    // In range (checked above) and whole nanoseconds are all Docker keeps.
    #[allow(clippy::cast_possible_truncation)]
    Ok(total as i64)
}

impl HealthConfig {
    /// The image's `Healthcheck` object (`null`/missing → `None`).
    pub fn from_image(v: Option<&serde_json::Value>) -> Option<HealthConfig> {
        v.and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// Merge `--health-*` flags over the image's check. `None` when there is no check or it
    /// is disabled (`--no-healthcheck`, `NONE`). Errors on bad durations or values, or on
    /// `--no-healthcheck` together with other health flags.
    pub fn resolve(image: Option<HealthConfig>, f: &HealthFlags) -> Result<Option<HealthConfig>> {
        let any_flag = f.cmd.is_some()
            || f.interval.is_some()
            || f.timeout.is_some()
            || f.start_period.is_some()
            || f.start_interval.is_some()
            || f.retries.is_some();
        if f.disable {
            if any_flag {
                return Err(EngineError::InvalidArgument(
                    "--no-healthcheck conflicts with --health-* options: use one or the other"
                        .into(),
                ));
            }
            return Ok(None);
        }
        let mut h = image.unwrap_or_default();
        if let Some(c) = &f.cmd {
            h.test = vec!["CMD-SHELL".into(), c.clone()];
        }
        let dur = |flag: &str, v: &Option<String>, min_ns: i64| -> Result<Option<i64>> {
            let Some(s) = v else { return Ok(None) };
            let d = parse_duration(flag, s)?;
            if d != 0 && d < min_ns {
                return Err(EngineError::InvalidArgument(format!(
                    "invalid {flag} {s:?}: must be at least 1ms (or 0 for the default)"
                )));
            }
            Ok(Some(d))
        };
        if let Some(d) = dur("--health-interval", &f.interval, 1_000_000)? {
            h.interval = d;
        }
        if let Some(d) = dur("--health-timeout", &f.timeout, 1_000_000)? {
            h.timeout = d;
        }
        if let Some(d) = dur("--health-start-period", &f.start_period, 1_000_000)? {
            h.start_period = d;
        }
        if let Some(d) = dur("--health-start-interval", &f.start_interval, 1_000_000)? {
            h.start_interval = d;
        }
        if let Some(r) = f.retries {
            if r < 0 {
                return Err(EngineError::InvalidArgument(
                    "invalid --health-retries: must not be negative".into(),
                ));
            }
            h.retries = r;
        }
        if any_flag && h.test.is_empty() {
            return Err(EngineError::InvalidArgument(
                "--health-* options need a health check: give --health-cmd (the image has none)"
                    .into(),
            ));
        }
        match h.test.first().map(String::as_str) {
            None | Some("NONE") => Ok(None),
            Some("CMD") if h.test.len() > 1 => Ok(Some(h)),
            Some("CMD-SHELL") if h.test.len() == 2 => Ok(Some(h)),
            _ if any_flag && f.cmd.is_none() => Err(EngineError::InvalidArgument(
                "--health-* options need a health check: give --health-cmd (the image has none)"
                    .into(),
            )),
            _ => Err(EngineError::InvalidArgument(format!(
                "invalid health check test {:?}: use [\"CMD\", args…] or [\"CMD-SHELL\", command]",
                h.test
            ))),
        }
    }

    fn or(v: i64, d: i64) -> i64 {
        if v > 0 {
            v
        } else {
            d
        }
    }

    /// Time between probes.
    pub fn interval(&self) -> Duration {
        ns(Self::or(self.interval, DEFAULT_INTERVAL))
    }
    /// Probe timeout.
    pub fn timeout(&self) -> Duration {
        ns(Self::or(self.timeout, DEFAULT_TIMEOUT))
    }
    /// Start period (0 by default).
    pub fn start_period(&self) -> Duration {
        ns(self.start_period.max(0))
    }
    /// Time between probes during the start period.
    pub fn start_interval(&self) -> Duration {
        ns(Self::or(self.start_interval, DEFAULT_START_INTERVAL))
    }
    /// Failures in a row that make the container unhealthy.
    pub fn retries(&self) -> i64 {
        Self::or(self.retries, DEFAULT_RETRIES)
    }

    /// The probe's argv.
    pub fn argv(&self) -> Vec<String> {
        match self.test.first().map(String::as_str) {
            Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), self.test[1].clone()],
            _ => self.test.iter().skip(1).cloned().collect(),
        }
    }

    /// The value of [`SUPERVISE_ENV`](super::SUPERVISE_ENV) for this check.
    pub fn supervise_env(&self) -> String {
        let ms = |d: Duration| d.as_millis().min(u128::from(u32::MAX));
        format!(
            "{}:{}:{}",
            ms(self.interval()),
            ms(self.start_interval()),
            ms(self.start_period())
        )
    }
}

fn ns(v: i64) -> Duration {
    Duration::from_nanos(u64::try_from(v).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("x", "2s").unwrap(), 2_000_000_000);
        assert_eq!(parse_duration("x", "1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration("x", "500ms").unwrap(), 500_000_000);
        assert_eq!(parse_duration("x", "0").unwrap(), 0);
        assert!(parse_duration("x", "10").is_err());
        assert!(parse_duration("x", "abc").is_err());
        assert!(parse_duration("x", "").is_err());
    }

    #[test]
    fn resolve_flags_over_image() {
        let img = HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            interval: 5_000_000_000,
            retries: 2,
            ..Default::default()
        };
        let f = HealthFlags {
            interval: Some("1s".into()),
            ..Default::default()
        };
        let h = HealthConfig::resolve(Some(img.clone()), &f)
            .unwrap()
            .unwrap();
        assert_eq!(h.interval, 1_000_000_000);
        assert_eq!(h.retries(), 2);
        assert_eq!(h.argv(), vec!["true".to_string()]);
        let off = HealthFlags {
            disable: true,
            ..Default::default()
        };
        assert!(HealthConfig::resolve(Some(img), &off).unwrap().is_none());
        let cmd = HealthFlags {
            cmd: Some("exit 0".into()),
            ..Default::default()
        };
        let h = HealthConfig::resolve(None, &cmd).unwrap().unwrap();
        assert_eq!(h.argv(), vec!["/bin/sh", "-c", "exit 0"]);
        assert_eq!(h.timeout(), Duration::from_secs(30));
        assert!(HealthConfig::resolve(None, &f).is_err());
        assert!(HealthConfig::resolve(
            None,
            &HealthFlags {
                disable: true,
                cmd: Some("x".into()),
                ..Default::default()
            }
        )
        .is_err());
        assert!(HealthConfig::resolve(None, &HealthFlags::default())
            .unwrap()
            .is_none());
    }
}
