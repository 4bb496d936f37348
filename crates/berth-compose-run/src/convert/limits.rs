//! The cgroup limits and namespaces of a service (`mem_limit`, `cpus`, `pids_limit`,
//! `cpu_shares`, …, `ipc`, `pid`): the same checks and engine settings as `berth run`'s
//! `--memory`, `--cpus`, `--pids-limit`, `--cpu-shares`, …, `--ipc`, `--pid`.

use berth_compose::model::{BlkioConfig, ThrottleDevice};
use berth_engine::resources::{NamespaceModes, ResourceFlags, Resources};

use super::*;

/// A service's limits in the engine's units.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// Memory limit in bytes (`deploy.resources.limits.memory`, else `mem_limit`).
    pub memory: Option<i64>,
    /// Billionths of a CPU (`deploy.resources.limits.cpus`, else `cpus`).
    pub nano_cpus: Option<i64>,
    /// Maximum number of processes (`deploy.resources.limits.pids`, else `pids_limit`).
    pub pids_limit: Option<i64>,
    /// The other cgroup settings.
    pub resources: Resources,
}

/// The engine's flag names in its messages → the compose keys the user wrote.
const KEYS: &[(&str, &str)] = &[
    ("--memory-swappiness", "mem_swappiness"),
    ("--memory-swap", "memswap_limit"),
    ("--memory-reservation", "mem_reservation"),
    ("--memory", "mem_limit"),
    ("--cpu-shares", "cpu_shares"),
    ("--cpu-period", "cpu_period"),
    ("--cpu-quota", "cpu_quota"),
    ("--cpuset-cpus", "cpuset"),
    ("--cpus", "cpus"),
    ("--oom-kill-disable", "oom_kill_disable"),
    ("--oom-score-adj", "oom_score_adj"),
    ("--blkio-weight-device", "blkio_config.weight_device"),
    ("--blkio-weight", "blkio_config.weight"),
    ("--device-read-bps", "blkio_config.device_read_bps"),
    ("--device-write-bps", "blkio_config.device_write_bps"),
    ("--device-read-iops", "blkio_config.device_read_iops"),
    ("--device-write-iops", "blkio_config.device_write_iops"),
    ("--pid", "pid"),
    ("--ipc", "ipc"),
    ("-m/--memory", "mem_limit"),
];

/// Rewrite an engine message in compose's terms, prefixed with `services.NAME.KEY`, KEY the
/// compose key of the first flag the message names (`services.NAME` when it names none).
fn keyed(name: &str, e: &berth_engine::EngineError) -> RunError {
    let mut msg = e.to_string();
    // The flag written first; of flags starting at the same place, the longest.
    let first = KEYS
        .iter()
        .filter_map(|(flag, key)| msg.find(flag).map(|at| (at, usize::MAX - flag.len(), *key)))
        .min()
        .map(|(_, _, key)| key);
    for (flag, key) in KEYS {
        msg = msg.replace(flag, key);
    }
    match first {
        Some(key) => RunError::Invalid(format!("services.{name}.{key}: {msg}")),
        None => RunError::Invalid(format!("services.{name}: {msg}")),
    }
}

/// Convert and check the limits of service `name` as `berth run` checks its flags (Docker's
/// ranges, and what this host's cgroups can do).
///
/// Errors: [`RunError::Invalid`] naming the service and the compose key.
pub fn limits(name: &str, s: &Service) -> Result<Limits> {
    let bad = |e: berth_engine::EngineError| keyed(name, &e);
    let deploy = s
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.limits.as_ref());
    let reservation = s
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.reservations.as_ref())
        .and_then(|r| r.memory)
        .and_then(|m| i64::try_from(m).ok())
        .or(s.mem_reservation);
    let memory =
        match deploy.and_then(|l| l.memory) {
            Some(m) => Some(i64::try_from(m).map_err(|_| {
                RunError::Invalid(format!("services.{name}: memory limit too large"))
            })?),
            None => s.mem_limit.filter(|m| *m > 0),
        };
    let cpus = deploy.and_then(|l| l.cpus).or(s.cpus);
    let nano_cpus = cpus
        .map(|c| ccfg::parse_cpus(&c.to_string()).map_err(bad))
        .transpose()?;
    let pids_limit = deploy
        .and_then(|l| l.pids)
        .and_then(|n| i64::try_from(n).ok())
        .or(s.pids_limit);
    let blkio = s.blkio_config.as_ref();
    // `PATH:RATE` as the engine's flags take them (bytes or operations per second).
    let throttle = |field: fn(&BlkioConfig) -> &Vec<ThrottleDevice>| -> Vec<String> {
        blkio
            .map(|b| {
                field(b)
                    .iter()
                    .map(|d| format!("{}:{}", d.path, d.rate))
                    .collect()
            })
            .unwrap_or_default()
    };
    let resources = ResourceFlags {
        cpu_shares: s.cpu_shares,
        cpuset_cpus: s.cpuset.clone(),
        cpu_period: s.cpu_period,
        cpu_quota: s.cpu_quota,
        memory_swap: s.memswap_limit.map(|v| v.to_string()),
        memory_reservation: reservation.map(|v| v.to_string()),
        memory_swappiness: s.mem_swappiness,
        oom_kill_disable: s.oom_kill_disable,
        oom_score_adj: s.oom_score_adj,
        blkio_weight: blkio.and_then(|b| b.weight),
        blkio_weight_device: blkio
            .map(|b| {
                b.weight_device
                    .iter()
                    .map(|d| format!("{}:{}", d.path, d.weight))
                    .collect()
            })
            .unwrap_or_default(),
        device_read_bps: throttle(|b| &b.device_read_bps),
        device_write_bps: throttle(|b| &b.device_write_bps),
        device_read_iops: throttle(|b| &b.device_read_iops),
        device_write_iops: throttle(|b| &b.device_write_iops),
        ..Default::default()
    }
    .parse(memory, nano_cpus)
    .map_err(bad)?;
    berth_engine::resources::check_kernel(&resources, false).map_err(bad)?;
    Ok(Limits {
        memory,
        nano_cpus,
        pids_limit,
        resources,
    })
}

/// The `ipc` and `pid` namespaces of service `name`. `resolve` turns `service:NAME` or
/// `container:NAME` into a container id.
///
/// Errors: [`RunError::Invalid`] for a mode the engine does not know; `resolve`'s errors.
pub fn namespaces(
    name: &str,
    s: &Service,
    resolve: &mut dyn FnMut(&str) -> Result<String>,
) -> Result<NamespaceModes> {
    let mut join = |v: &Option<String>| -> Result<Option<String>> {
        Ok(match v.as_deref() {
            Some(m) if m.starts_with("service:") || m.starts_with("container:") => {
                Some(format!("container:{}", resolve(m)?))
            }
            other => other.map(str::to_string),
        })
    };
    let (pid, ipc) = (join(&s.pid)?, join(&s.ipc)?);
    berth_engine::resources::parse_namespaces(
        pid.as_deref(),
        ipc.as_deref(),
        None,
        None,
        &mut |id| Ok(id.to_string()),
    )
    .map_err(|e| keyed(name, &e))
}

/// `userns_mode`: berth does not remap user ids, so only `host` (or unset) is possible.
///
/// Errors: [`RunError::Invalid`] for any other mode.
pub fn check_userns(name: &str, s: &Service) -> Result<()> {
    match s.userns_mode.as_deref() {
        None | Some("host") => Ok(()),
        Some(m) => Err(RunError::Invalid(format!(
            "services.{name}.userns_mode: {m:?} is not supported: berth runs containers without user-namespace remapping; remove it or use host"
        ))),
    }
}
