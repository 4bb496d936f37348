//! `HostConfig` (and `Config`) fields turned into the texts and flag structs `berth run`'s
//! parsers take: mounts, published ports, restart policy, health check, cgroup resources and
//! security settings.

use berth_engine::config::RestartPolicy;
use berth_engine::health::HealthConfig;
use berth_engine::resources::ResourceFlags;
use berth_engine::security::SecurityFlags;
use bollard_stubs::models::{HostConfig, Mount, MountTypeEnum, RestartPolicyNameEnum};

use super::bad;
use crate::{ApiError, Result};

/// The `--mount` text of one `HostConfig.Mounts` entry.
pub(super) fn mount_flag(m: &Mount) -> Result<String> {
    let typ = match m.typ {
        Some(MountTypeEnum::BIND) => "bind",
        Some(MountTypeEnum::VOLUME) | None | Some(MountTypeEnum::EMPTY) => "volume",
        Some(MountTypeEnum::TMPFS) => "tmpfs",
        Some(other) => {
            return Err(ApiError::BadParameter(format!(
                "HostConfig.Mounts: mount type {other} is not supported by berth: use bind, volume or tmpfs"
            )))
        }
    };
    let mut parts = vec![format!("type={typ}")];
    if let Some(s) = m.source.as_deref().filter(|s| !s.is_empty()) {
        parts.push(format!("source={s}"));
    }
    let target = m
        .target
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::BadParameter("HostConfig.Mounts: Target is required".into()))?;
    parts.push(format!("target={target}"));
    if m.read_only == Some(true) {
        parts.push("readonly".into());
    }
    if let Some(b) = &m.bind_options {
        if let Some(p) = &b.propagation {
            let p = p.to_string();
            if !p.is_empty() {
                parts.push(format!("bind-propagation={p}"));
            }
        }
    }
    if let Some(v) = &m.volume_options {
        if v.no_copy == Some(true) {
            parts.push("volume-nocopy".into());
        }
    }
    if let Some(t) = &m.tmpfs_options {
        if let Some(sz) = t.size_bytes.filter(|s| *s > 0) {
            parts.push(format!("tmpfs-size={sz}"));
        }
        if let Some(mode) = t.mode.filter(|m| *m > 0) {
            parts.push(format!("tmpfs-mode={mode:o}"));
        }
    }
    Ok(parts.join(","))
}

/// `-p` texts of `HostConfig.PortBindings`.
pub(super) fn publish_flags(h: &HostConfig) -> Vec<String> {
    let mut out = Vec::new();
    let Some(pb) = &h.port_bindings else {
        return out;
    };
    let mut keys: Vec<&String> = pb.keys().collect();
    keys.sort();
    for port in keys {
        let (cport, proto) = port.split_once('/').unwrap_or((port.as_str(), "tcp"));
        let bindings = pb.get(port).cloned().flatten().unwrap_or_default();
        if bindings.is_empty() {
            out.push(format!("{cport}/{proto}"));
        }
        for b in bindings {
            let ip = b.host_ip.unwrap_or_default();
            let hp = b.host_port.unwrap_or_default();
            out.push(match (ip.is_empty(), hp.is_empty()) {
                (true, true) => format!("{cport}/{proto}"),
                (true, false) => format!("{hp}:{cport}/{proto}"),
                (false, true) => format!("{ip}::{cport}/{proto}"),
                (false, false) => format!("{ip}:{hp}:{cport}/{proto}"),
            });
        }
    }
    out
}

/// A stop timeout in seconds as the API gives it: negative is no limit.
pub(super) fn stop_seconds(t: i64) -> u32 {
    u32::try_from(t).unwrap_or(if t < 0 { u32::MAX } else { u32::MAX - 1 })
}

/// Merge the body's health check over the image's, as Docker does (empty `Test` inherits the
/// image's test; zero durations inherit; `["NONE"]` disables).
pub(super) fn health(
    image: Option<HealthConfig>,
    body: Option<&bollard_stubs::models::HealthConfig>,
) -> Option<HealthConfig> {
    let Some(b) = body else {
        return image.filter(|h| h.test.first().map(String::as_str) != Some("NONE"));
    };
    let mut h = image.unwrap_or_default();
    if let Some(t) = b.test.clone().filter(|t| !t.is_empty()) {
        h.test = t;
    }
    let pick = |v: Option<i64>, cur: i64| v.filter(|x| *x != 0).unwrap_or(cur);
    h.interval = pick(b.interval, h.interval);
    h.timeout = pick(b.timeout, h.timeout);
    h.start_period = pick(b.start_period, h.start_period);
    h.start_interval = pick(b.start_interval, h.start_interval);
    h.retries = pick(b.retries, h.retries);
    if h.test.is_empty() || h.test[0] == "NONE" {
        return None;
    }
    Some(h)
}

/// `HostConfig`'s cgroup settings as the flags `berth run` parses (Docker's API units: bytes,
/// microseconds, shares; zero is "not set").
pub(super) fn resource_flags(h: &HostConfig) -> ResourceFlags {
    let nz = |v: Option<i64>| v.filter(|v| *v != 0);
    let devs = |v: &Option<Vec<bollard_stubs::models::ThrottleDevice>>| -> Vec<String> {
        v.iter()
            .flatten()
            .map(|d| {
                format!(
                    "{}:{}",
                    d.path.clone().unwrap_or_default(),
                    d.rate.unwrap_or(0)
                )
            })
            .collect()
    };
    ResourceFlags {
        cpu_shares: nz(h.cpu_shares),
        cpuset_cpus: h.cpuset_cpus.clone().filter(|s| !s.is_empty()),
        cpuset_mems: h.cpuset_mems.clone().filter(|s| !s.is_empty()),
        cpu_period: nz(h.cpu_period),
        cpu_quota: nz(h.cpu_quota),
        memory_swap: nz(h.memory_swap).map(|v| v.to_string()),
        memory_reservation: nz(h.memory_reservation).map(|v| v.to_string()),
        // The docker CLI sends -1 (or nothing) when --memory-swappiness is not given.
        memory_swappiness: h.memory_swappiness.filter(|v| *v != -1),
        oom_kill_disable: h.oom_kill_disable == Some(true),
        oom_score_adj: nz(h.oom_score_adj),
        blkio_weight: h.blkio_weight.filter(|w| *w != 0).map(i64::from),
        blkio_weight_device: h
            .blkio_weight_device
            .iter()
            .flatten()
            .map(|d| {
                format!(
                    "{}:{}",
                    d.path.clone().unwrap_or_default(),
                    d.weight.unwrap_or(0)
                )
            })
            .collect(),
        device_read_bps: devs(&h.blkio_device_read_bps),
        device_write_bps: devs(&h.blkio_device_write_bps),
        device_read_iops: devs(&h.blkio_device_read_iops),
        device_write_iops: devs(&h.blkio_device_write_iops),
        kernel_memory: None,
    }
}

/// `HostConfig.RestartPolicy` as berth's policy (absent, empty or `no` is "no").
///
/// Errors: 400 naming `HostConfig.RestartPolicy` for a policy berth cannot parse.
pub(super) fn restart_policy(h: &HostConfig) -> Result<RestartPolicy> {
    let restart = match &h.restart_policy {
        Some(rp) => match rp.name {
            None | Some(RestartPolicyNameEnum::EMPTY) | Some(RestartPolicyNameEnum::NO) => {
                RestartPolicy {
                    name: "no".into(),
                    max_retries: 0,
                }
            }
            Some(n) => {
                let text = match (n, rp.maximum_retry_count.filter(|c| *c > 0)) {
                    (RestartPolicyNameEnum::ON_FAILURE, Some(c)) => format!("on-failure:{c}"),
                    (n, _) => n.to_string(),
                };
                RestartPolicy::parse(&text).map_err(|e| bad("HostConfig.RestartPolicy", e))?
            }
        },
        None => RestartPolicy {
            name: "no".into(),
            max_retries: 0,
        },
    };
    Ok(restart)
}

/// `HostConfig`'s privilege, capability, device, ulimit, sysctl and shm settings as the flags
/// `berth run` parses (`--privileged`, `--cap-add`, `--device`, `--ulimit`, …).
pub(super) fn security_flags(h: &HostConfig) -> SecurityFlags {
    SecurityFlags {
        privileged: h.privileged == Some(true),
        cap_add: h.cap_add.clone().unwrap_or_default(),
        cap_drop: h.cap_drop.clone().unwrap_or_default(),
        security_opt: h.security_opt.clone().unwrap_or_default(),
        device: h
            .devices
            .iter()
            .flatten()
            .map(|d| {
                let host = d.path_on_host.clone().unwrap_or_default();
                let ctr = d.path_in_container.clone().unwrap_or_else(|| host.clone());
                let perms = d
                    .cgroup_permissions
                    .clone()
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "rwm".into());
                format!("{host}:{ctr}:{perms}")
            })
            .collect(),
        device_cgroup_rule: h.device_cgroup_rules.clone().unwrap_or_default(),
        group_add: h.group_add.clone().unwrap_or_default(),
        ulimit: h
            .ulimits
            .iter()
            .flatten()
            .map(|u| {
                format!(
                    "{}={}:{}",
                    u.name.clone().unwrap_or_default(),
                    u.soft.unwrap_or(0),
                    u.hard.unwrap_or(0)
                )
            })
            .collect(),
        sysctl: h
            .sysctls
            .iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        shm_size: h.shm_size.filter(|s| *s > 0).map(|s| s.to_string()),
    }
}
