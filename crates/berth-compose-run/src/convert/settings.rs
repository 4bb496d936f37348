//! Engine settings derived from service keys: confinement, health check, logging.

use super::*;

/// The engine's confinement settings of a service (`privileged`, `cap_add`, `cap_drop`,
/// `security_opt`, `devices`, `group_add`, `ulimits`, `sysctls`, `shm_size`).
///
/// Errors: the engine's message for the first bad value.
pub fn security(
    s: &Service,
    host_network: bool,
) -> std::result::Result<berth_engine::security::SecurityConfig, berth_engine::EngineError> {
    berth_engine::security::SecurityConfig::from_flags(
        &berth_engine::security::SecurityFlags {
            privileged: s.privileged,
            cap_add: s.cap_add.clone(),
            cap_drop: s.cap_drop.clone(),
            security_opt: s.security_opt.clone(),
            device: s
                .devices
                .iter()
                .map(|d| {
                    let perm = if d.permissions.is_empty() {
                        "rwm"
                    } else {
                        &d.permissions
                    };
                    let target = if d.target.is_empty() {
                        &d.source
                    } else {
                        &d.target
                    };
                    format!("{}:{target}:{perm}", d.source)
                })
                .collect(),
            device_cgroup_rule: Vec::new(),
            group_add: s.group_add.clone(),
            ulimit: s
                .ulimits
                .iter()
                .map(|(k, u)| {
                    if u.single {
                        format!("{k}={}", u.soft)
                    } else {
                        format!("{k}={}:{}", u.soft, u.hard)
                    }
                })
                .collect(),
            sysctl: s.sysctls.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            shm_size: s.shm_size.map(|n| n.to_string()),
        },
        host_network,
    )
}

/// The health check of a service: `healthcheck:` over the image's `HEALTHCHECK` (compose's
/// rules: a missing `test` keeps the image's, `disable: true` or `test: [NONE]` turns it off).
/// `None`: no check. Durations are nanoseconds in the model and in [`HealthConfig`].
///
/// Errors: [`RunError::Invalid`] naming `services.NAME.healthcheck` (a bad test, a duration
/// under 1ms, options without any test).
pub fn healthcheck(
    name: &str,
    s: &Service,
    image: Option<berth_engine::health::HealthConfig>,
) -> Result<Option<berth_engine::health::HealthConfig>> {
    use berth_engine::health::{HealthConfig, HealthFlags};
    let key = format!("services.{name}.healthcheck");
    let Some(h) = &s.healthcheck else {
        return HealthConfig::resolve(image, &HealthFlags::default())
            .map_err(|e| RunError::Invalid(format!("{key}: the image's HEALTHCHECK: {e}")));
    };
    if h.disable {
        return Ok(None);
    }
    let mut base = image.unwrap_or_default();
    if !h.test.is_empty() {
        base.test = h.test.clone();
    }
    if base.test.is_empty() {
        return Err(RunError::Invalid(format!(
            "{key}: no test: the image has no HEALTHCHECK; set healthcheck.test (e.g. [\"CMD\", \"true\"])"
        )));
    }
    let ns = |v: Option<u64>| v.map(|n| format!("{n}ns"));
    let flags = HealthFlags {
        cmd: None,
        interval: ns(h.interval),
        timeout: ns(h.timeout),
        start_period: ns(h.start_period),
        start_interval: ns(h.start_interval),
        retries: h.retries.map(|r| i64::try_from(r).unwrap_or(i64::MAX)),
        disable: false,
    };
    HealthConfig::resolve(Some(base), &flags).map_err(|e| {
        // The engine names its CLI flags; name the compose keys instead.
        let msg = e
            .to_string()
            .replace("--health-start-interval", "start_interval")
            .replace("--health-start-period", "start_period")
            .replace("--health-interval", "interval")
            .replace("--health-timeout", "timeout")
            .replace("--health-retries", "retries");
        RunError::Invalid(format!("{key}: {msg}"))
    })
}

/// The log driver and options of a service (`logging:` over the store's `daemon.json`
/// defaults, as `--log-driver`/`--log-opt` are).
///
/// Errors: [`RunError::Invalid`] naming `services.NAME.logging` (unknown driver or option,
/// bad value).
pub fn log_config(root: &Path, name: &str, s: &Service) -> Result<berth_engine::logs::LogConfig> {
    let (driver, opts) = match &s.logging {
        Some(l) => (
            l.driver.as_deref(),
            l.options
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
        ),
        None => (None, Vec::new()),
    };
    berth_engine::logs::LogConfig::resolve(root, driver, &opts).map_err(|e| {
        RunError::Invalid(format!(
            "services.{name}.logging: {}",
            e.to_string().replace("--log-opt", "option")
        ))
    })
}
