//! The cgroup and namespace flags of `run`/`create` beyond `--memory`, `--cpus` and
//! `--pids-limit`: `--cpu-shares`, `--cpuset-cpus`, `--cpuset-mems`, `--cpu-period`,
//! `--cpu-quota`, `--memory-swap`, `--memory-reservation`, `--memory-swappiness`,
//! `--oom-kill-disable`, `--oom-score-adj`, `--blkio-weight`, and `--pid`, `--ipc`, `--uts`,
//! `--cgroupns`.
//!
//! [`ResourceFlags::parse`] checks values as Docker does; [`check_kernel`] refuses what the
//! host's cgroups cannot do (v1 and v2 differ: v2 has no per-cgroup swappiness and no OOM-killer
//! switch), so a flag is never silently ignored.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{EngineError, Result};

/// Extra cgroup settings (units as Docker's flags: bytes, microseconds, shares).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Resources {
    /// Relative CPU weight (`cpu.shares`, 2–262144).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<u64>,
    /// CPUs allowed, e.g. `0-1,3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes allowed, e.g. `0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset_mems: Option<String>,
    /// CFS period in µs (1000–1000000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<u64>,
    /// CFS quota in µs per period (≥ 1000, or -1 for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<i64>,
    /// Memory + swap limit in bytes (-1 = unlimited swap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swap: Option<i64>,
    /// Soft memory limit in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<i64>,
    /// Swappiness 0–100 (cgroup v1 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_swappiness: Option<u64>,
    /// Disable the OOM killer (cgroup v1 only).
    #[serde(default)]
    pub oom_kill_disable: bool,
    /// The container's `oom_score_adj` (-1000–1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
    /// Block I/O weight 10–1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blkio_weight: Option<u16>,
    /// `--blkio-weight-device PATH:WEIGHT` (weight 10–1000).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blkio_weight_device: Vec<DeviceValue>,
    /// `--device-read-bps PATH:RATE` (bytes per second).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_bps: Vec<DeviceValue>,
    /// `--device-write-bps PATH:RATE` (bytes per second).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_bps: Vec<DeviceValue>,
    /// `--device-read-iops PATH:RATE` (operations per second).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_iops: Vec<DeviceValue>,
    /// `--device-write-iops PATH:RATE` (operations per second).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_iops: Vec<DeviceValue>,
    /// `--kernel-memory` in bytes: recorded (inspect shows it) but not applied, as Docker does
    /// on kernels that no longer limit kernel memory separately.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_memory: Option<i64>,
}

/// A per-device block I/O setting: the device node's host path and a weight or a rate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceValue {
    /// Host path of a block device node, e.g. `/dev/vda`.
    pub path: String,
    /// Weight (10–1000), bytes per second or operations per second, depending on the flag.
    pub value: u64,
    /// The device's major number (read from the node when the flag was parsed).
    pub major: i64,
    /// The device's minor number.
    pub minor: i64,
}

/// Docker's smallest memory limit and reservation: 6 MiB.
pub const MIN_MEMORY: i64 = 6 << 20;

/// Namespace modes (`None` = Docker's default: a private namespace).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NamespaceModes {
    /// `host` or `container:<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// `host`, `container:<id>`, `shareable`, `private` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    /// `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uts: Option<String>,
    /// `host` or `private`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroupns: Option<String>,
}

/// The raw flags, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct ResourceFlags {
    /// `--cpu-shares`: relative CPU weight (Docker's default 1024).
    pub cpu_shares: Option<i64>,
    /// `--cpuset-cpus`: CPUs allowed, as a list (`0-3,5`).
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems`: memory nodes allowed, as a list (`0,1`).
    pub cpuset_mems: Option<String>,
    /// `--cpu-period` (µs).
    pub cpu_period: Option<i64>,
    /// `--cpu-quota` (µs).
    pub cpu_quota: Option<i64>,
    /// `--memory-swap` (bytes with unit, or -1).
    pub memory_swap: Option<String>,
    /// `--memory-reservation`: soft limit, bytes with an optional unit (`512m`).
    pub memory_reservation: Option<String>,
    /// `--memory-swappiness`: 0-100 (-1: the host's).
    pub memory_swappiness: Option<i64>,
    /// `--oom-kill-disable`.
    pub oom_kill_disable: bool,
    /// `--oom-score-adj`: -1000 to 1000, added to the kernel's OOM score.
    pub oom_score_adj: Option<i64>,
    /// `--blkio-weight`: 10-1000 (0: unset).
    pub blkio_weight: Option<i64>,
    /// `--blkio-weight-device PATH:WEIGHT`.
    pub blkio_weight_device: Vec<String>,
    /// `--device-read-bps PATH:RATE` (rate with unit: `1mb`).
    pub device_read_bps: Vec<String>,
    /// `--device-write-bps PATH:RATE`.
    pub device_write_bps: Vec<String>,
    /// `--device-read-iops PATH:N`.
    pub device_read_iops: Vec<String>,
    /// `--device-write-iops PATH:N`.
    pub device_write_iops: Vec<String>,
    /// `--kernel-memory` (bytes with unit).
    pub kernel_memory: Option<String>,
}

/// Parse `PATH:VALUE` of the per-device block I/O flags; `bytes` allows units (`1mb`).
fn parse_device_value(flag: &str, s: &str, bytes: bool) -> Result<DeviceValue> {
    let (path, v) = s.rsplit_once(':').ok_or_else(|| {
        bad(format!(
            "invalid {flag} {s:?}: use DEVICE:VALUE, e.g. /dev/sda:{}",
            if bytes { "1mb" } else { "100" }
        ))
    })?;
    let value = if bytes {
        crate::config::parse_bytes(v)?
    } else {
        v.parse::<i64>()
            .map_err(|_| bad(format!("invalid {flag} {s:?}: {v:?} is not a number")))?
    };
    let value = u64::try_from(value)
        .map_err(|_| bad(format!("invalid {flag} {s:?}: the value must be positive")))?;
    if !path.starts_with("/dev/") {
        return Err(bad(format!(
            "invalid {flag} {s:?}: the device must be a path under /dev"
        )));
    }
    let st = rustix::fs::stat(path).map_err(|e| {
        bad(format!(
            "invalid {flag} {s:?}: {path}: {e}; give a block device of this host"
        ))
    })?;
    if st.st_mode & libc::S_IFMT != libc::S_IFBLK {
        return Err(bad(format!(
            "invalid {flag} {s:?}: {path} is not a block device"
        )));
    }
    Ok(DeviceValue {
        path: path.to_string(),
        value,
        major: i64::from(rustix::fs::major(st.st_rdev)),
        minor: i64::from(rustix::fs::minor(st.st_rdev)),
    })
}

/// Docker's minimum-memory rule for `--memory`: at least [`MIN_MEMORY`] when set (0 = none).
///
/// Errors: [`EngineError::InvalidArgument`] with Docker's message.
pub fn check_memory(memory: Option<i64>) -> Result<()> {
    if let Some(m) = memory {
        if m != 0 && m < MIN_MEMORY {
            return Err(bad(
                "minimum memory limit allowed is 6MB: give --memory 6m or more".into(),
            ));
        }
    }
    Ok(())
}

/// Docker's `--cpus` range: from 0.01 CPU (10_000_000 nano CPUs) to the number of CPUs this
/// process may run on (`sched_getaffinity`, as the daemon's `sysinfo.NumCPU`); 0 = no limit.
///
/// Errors: [`EngineError::InvalidArgument`] with Docker's message.
pub fn check_nano_cpus(nano: i64) -> Result<()> {
    let n = rustix::thread::sched_getaffinity(None).map_or(1, |s| s.count().max(1));
    if nano != 0 && (nano < 10_000_000 || nano > i64::from(n) * 1_000_000_000) {
        let s = if n == 1 { "" } else { "s" };
        return Err(bad(format!(
            "range of CPUs is from 0.01 to {n}.00, as there are only {n} CPU{s} available: give a --cpus value in that range"
        )));
    }
    Ok(())
}

fn bad(msg: String) -> EngineError {
    EngineError::InvalidArgument(msg)
}

/// Check a cpuset list such as `0-3,5` against the host's `allowed` list (same syntax).
pub(crate) fn check_cpuset(flag: &str, v: &str, allowed: Option<&str>) -> Result<()> {
    let parse = |s: &str| -> Option<Vec<u32>> {
        let mut out = Vec::new();
        for part in s.trim().split(',').filter(|p| !p.is_empty()) {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
                    if a > b || b - a > 4096 {
                        return None;
                    }
                    out.extend(a..=b);
                }
                None => out.push(part.parse().ok()?),
            }
        }
        (!out.is_empty()).then_some(out)
    };
    let want =
        parse(v).ok_or_else(|| bad(format!("invalid {flag} {v:?}: use a list such as 0-2,4")))?;
    if let Some(have) = allowed.and_then(parse) {
        if let Some(x) = want.iter().find(|x| !have.contains(x)) {
            return Err(bad(format!(
                "invalid {flag} {v:?}: {x} is not available on this host (available: {})",
                allowed.unwrap_or("").trim()
            )));
        }
    }
    Ok(())
}

impl ResourceFlags {
    /// Check the values (Docker's ranges and rules) and convert them. `memory` is the
    /// `--memory` limit in bytes, `nano_cpus` the `--cpus` value.
    ///
    /// Errors: [`EngineError::InvalidArgument`] naming the flag and the allowed values.
    pub fn parse(&self, memory: Option<i64>, nano_cpus: Option<i64>) -> Result<Resources> {
        let mut r = Resources::default();
        check_memory(memory)?;
        if let Some(n) = nano_cpus {
            check_nano_cpus(n)?;
        }
        let memory = memory.filter(|m| *m != 0);
        if let Some(s) = self.cpu_shares {
            if s != 0 && !(2..=262_144).contains(&s) {
                return Err(bad(format!(
                    "invalid --cpu-shares {s}: use a value from 2 to 262144"
                )));
            }
            r.cpu_shares = u64::try_from(s).ok().filter(|s| *s != 0);
        }
        if nano_cpus.is_some() && (self.cpu_period.is_some() || self.cpu_quota.is_some()) {
            return Err(bad(
                "conflicting options: --cpus cannot be used with --cpu-period or --cpu-quota"
                    .into(),
            ));
        }
        if let Some(p) = self.cpu_period {
            if p != 0 && !(1000..=1_000_000).contains(&p) {
                return Err(bad(format!(
                    "invalid --cpu-period {p}: use 1000 to 1000000 microseconds"
                )));
            }
            r.cpu_period = u64::try_from(p).ok().filter(|p| *p != 0);
        }
        if let Some(q) = self.cpu_quota {
            if q != 0 && q != -1 && q < 1000 {
                return Err(bad(format!(
                    "invalid --cpu-quota {q}: use at least 1000 microseconds (or -1 for no limit)"
                )));
            }
            r.cpu_quota = (q != 0).then_some(q);
        }
        let host = |f: &str| std::fs::read_to_string(f).ok();
        if let Some(c) = &self.cpuset_cpus {
            let allowed = host("/sys/fs/cgroup/cpuset/cpuset.cpus")
                .or_else(|| host("/sys/fs/cgroup/cpuset.cpus.effective"))
                .or_else(|| host("/sys/devices/system/cpu/online"));
            check_cpuset("--cpuset-cpus", c, allowed.as_deref())?;
            r.cpuset_cpus = Some(c.trim().to_string());
        }
        if let Some(m) = &self.cpuset_mems {
            let allowed = host("/sys/fs/cgroup/cpuset/cpuset.mems")
                .or_else(|| host("/sys/fs/cgroup/cpuset.mems.effective"))
                .or_else(|| host("/sys/devices/system/node/online"));
            check_cpuset("--cpuset-mems", m, allowed.as_deref())?;
            r.cpuset_mems = Some(m.trim().to_string());
        }
        if let Some(s) = &self.memory_swap {
            let v = if s.trim() == "-1" {
                -1
            } else {
                crate::config::parse_bytes(s)?
            };
            let Some(mem) = memory else {
                return Err(bad(
                    "--memory-swap needs --memory: set the memory limit too".into(),
                ));
            };
            if v != -1 && v != 0 && v < mem {
                return Err(bad(format!(
                    "minimum memoryswap limit should be larger than memory limit: --memory-swap {s:?} is memory plus swap, so it must be at least --memory (or -1 for unlimited swap)"
                )));
            }
            r.memory_swap = (v != 0).then_some(v);
        }
        // Docker's default: as much swap as memory (memory + swap = twice the limit), where
        // the kernel accounts swap.
        if let (Some(mem), None) = (memory, r.memory_swap) {
            if swap_accounting() {
                r.memory_swap = Some(mem.saturating_mul(2));
            }
        }
        if let Some(s) = &self.memory_reservation {
            let v = crate::config::parse_bytes(s)?;
            if v != 0 && v < MIN_MEMORY {
                return Err(bad(
                    "minimum memory reservation allowed is 6MB: give --memory-reservation 6m or more"
                        .into(),
                ));
            }
            if let Some(mem) = memory {
                if v > mem {
                    return Err(bad(format!(
                        "minimum memory limit can not be less than memory reservation limit: --memory-reservation {s:?} must be at most --memory"
                    )));
                }
            }
            r.memory_reservation = (v != 0).then_some(v);
        }
        if let Some(s) = &self.kernel_memory {
            let v = crate::config::parse_bytes(s)?;
            r.kernel_memory = (v != 0).then_some(v);
        }
        let devs = |flag: &str, v: &[String], bytes: bool| -> Result<Vec<DeviceValue>> {
            v.iter()
                .map(|s| parse_device_value(flag, s, bytes))
                .collect()
        };
        r.blkio_weight_device = devs("--blkio-weight-device", &self.blkio_weight_device, false)?;
        if let Some(d) = r
            .blkio_weight_device
            .iter()
            .find(|d| !(10..=1000).contains(&d.value))
        {
            return Err(bad(format!(
                "invalid --blkio-weight-device {}:{}: use a weight from 10 to 1000",
                d.path, d.value
            )));
        }
        r.device_read_bps = devs("--device-read-bps", &self.device_read_bps, true)?;
        r.device_write_bps = devs("--device-write-bps", &self.device_write_bps, true)?;
        r.device_read_iops = devs("--device-read-iops", &self.device_read_iops, false)?;
        r.device_write_iops = devs("--device-write-iops", &self.device_write_iops, false)?;
        if let Some(s) = self.memory_swappiness {
            if s != -1 && !(0..=100).contains(&s) {
                return Err(bad(format!(
                    "invalid --memory-swappiness {s}: use 0 to 100 (or -1 for the host's)"
                )));
            }
            r.memory_swappiness = u64::try_from(s).ok();
        }
        r.oom_kill_disable = self.oom_kill_disable;
        if let Some(a) = self.oom_score_adj {
            r.oom_score_adj = Some(
                i32::try_from(a)
                    .ok()
                    .filter(|a| (-1000..=1000).contains(a))
                    .ok_or_else(|| {
                        bad(format!("invalid --oom-score-adj {a}: use -1000 to 1000"))
                    })?,
            );
        }
        if let Some(w) = self.blkio_weight {
            if w != 0 && !(10..=1000).contains(&w) {
                return Err(bad(format!("invalid --blkio-weight {w}: use 10 to 1000")));
            }
            r.blkio_weight = u16::try_from(w).ok().filter(|w| *w != 0);
        }
        Ok(r)
    }
}

impl Resources {
    /// Docker's warnings for accepted settings that do less than asked (printed by the front
    /// end as `WARNING: …`). `memory` is the `--memory` limit in bytes.
    pub fn warnings(&self, memory: Option<i64>) -> Vec<String> {
        let mut w = Vec::new();
        if self.kernel_memory.is_some() {
            w.push("Specifying a kernel memory limit is deprecated and will be removed in a future release; this kernel no longer limits kernel memory separately, so --kernel-memory is discarded.".to_string());
        }
        if self.oom_kill_disable && memory.is_none_or(|m| m == 0) {
            w.push("Disabling the OOM killer on containers without setting a '-m/--memory' limit may be dangerous.".to_string());
        }
        w
    }
}

/// Whether the host's memory cgroup accounts swap (v1 `memory.memsw.*`, v2 `memory.swap.max`).
pub fn swap_accounting() -> bool {
    let root = Path::new("/sys/fs/cgroup");
    match cgroup_version() {
        CgroupVersion::V1 => root.join("memory/memory.memsw.limit_in_bytes").exists(),
        CgroupVersion::V2 => {
            let parent = crate::cgroup_parent();
            let p = root.join(parent.trim_matches('/'));
            p.join("memory.swap.max").exists()
                || std::fs::read_dir(root).is_ok_and(|rd| {
                    rd.flatten()
                        .any(|e| e.path().join("memory.swap.max").exists())
                })
        }
    }
}

/// The cgroup hierarchy of this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Legacy or hybrid: controllers under `/sys/fs/cgroup/<controller>`.
    V1,
    /// Unified: `/sys/fs/cgroup/cgroup.controllers`.
    V2,
}

/// Which hierarchy the host uses.
pub fn cgroup_version() -> CgroupVersion {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        CgroupVersion::V2
    } else {
        CgroupVersion::V1
    }
}

/// Refuse settings the host's cgroups cannot apply (checked in berth's cgroup parent, where
/// the container's cgroup will be created).
///
/// Errors: [`EngineError::InvalidArgument`] naming the flag and why, when the cgroup
/// controller or interface file it needs is missing (swap accounting, swappiness, OOM-killer
/// control, blkio/io weight, the cpu or cpuset controller); on cgroup v2, also for
/// `--memory-swappiness` and `--oom-kill-disable`, which v2 lacks.
pub fn check_kernel(r: &Resources, swap_limit_with_memory: bool) -> Result<()> {
    let parent = crate::cgroup_parent();
    let parent = parent.trim_matches('/');
    let v = cgroup_version();
    let has = |ctrl: &str, file: &str| -> bool {
        let base = match v {
            CgroupVersion::V1 => Path::new("/sys/fs/cgroup").join(ctrl),
            CgroupVersion::V2 => Path::new("/sys/fs/cgroup").to_path_buf(),
        };
        // The parent may not exist yet: then look at the hierarchy's root.
        let p = base.join(parent).join(file);
        p.exists() || base.join(file).exists()
    };
    let v2_controller = |c: &str| -> bool {
        std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .map(|s| s.split_whitespace().any(|x| x == c))
            .unwrap_or(false)
    };
    let refuse = |flag: &str, why: &str| -> Result<()> {
        Err(bad(format!(
            "{flag} cannot be honoured on this host: {why}"
        )))
    };
    match v {
        CgroupVersion::V1 => {
            if (r.memory_swap.is_some_and(|s| s != -1) || swap_limit_with_memory)
                && !has("memory", "memory.memsw.limit_in_bytes")
            {
                return refuse(
                    "--memory-swap",
                    "the kernel has no swap accounting (memory.memsw.limit_in_bytes is missing; boot with swapaccount=1)",
                );
            }
            if r.memory_swappiness.is_some() && !has("memory", "memory.swappiness") {
                return refuse("--memory-swappiness", "memory.swappiness is missing");
            }
            if r.oom_kill_disable && !has("memory", "memory.oom_control") {
                return refuse("--oom-kill-disable", "memory.oom_control is missing");
            }
            if r.blkio_weight.is_some()
                && !has("blkio", "blkio.weight")
                && !has("blkio", "blkio.bfq.weight")
            {
                return refuse(
                    "--blkio-weight",
                    "the blkio controller has no weight file (needs the BFQ or CFQ I/O scheduler)",
                );
            }
            if (r.cpu_shares.is_some() || r.cpu_period.is_some() || r.cpu_quota.is_some())
                && !has("cpu", "cpu.shares")
            {
                return refuse(
                    "--cpu-shares/--cpu-period/--cpu-quota",
                    "the cpu controller is not mounted",
                );
            }
            if (r.cpuset_cpus.is_some() || r.cpuset_mems.is_some()) && !has("cpuset", "cpuset.cpus")
            {
                return refuse(
                    "--cpuset-cpus/--cpuset-mems",
                    "the cpuset controller is not mounted",
                );
            }
        }
        CgroupVersion::V2 => {
            if r.memory_swappiness.is_some() {
                return refuse(
                    "--memory-swappiness",
                    "cgroup v2 has no per-cgroup swappiness",
                );
            }
            if r.oom_kill_disable {
                return refuse(
                    "--oom-kill-disable",
                    "cgroup v2 cannot disable the OOM killer",
                );
            }
            if (r.memory_swap.is_some() || r.memory_reservation.is_some())
                && !v2_controller("memory")
            {
                return refuse(
                    "--memory-swap/--memory-reservation",
                    "the memory controller is not enabled",
                );
            }
            if r.blkio_weight.is_some() && !v2_controller("io") {
                return refuse("--blkio-weight", "the io controller is not enabled");
            }
            if (r.cpu_shares.is_some() || r.cpu_period.is_some() || r.cpu_quota.is_some())
                && !v2_controller("cpu")
            {
                return refuse(
                    "--cpu-shares/--cpu-period/--cpu-quota",
                    "the cpu controller is not enabled",
                );
            }
            if (r.cpuset_cpus.is_some() || r.cpuset_mems.is_some()) && !v2_controller("cpuset") {
                return refuse(
                    "--cpuset-cpus/--cpuset-mems",
                    "the cpuset controller is not enabled",
                );
            }
        }
    }
    Ok(())
}

/// Check `--pid`, `--ipc`, `--uts` and `--cgroupns` values; `container:NAME` is resolved to
/// `container:<id>` by `resolve` (which fails for unknown containers).
pub fn parse_namespaces(
    pid: Option<&str>,
    ipc: Option<&str>,
    uts: Option<&str>,
    cgroupns: Option<&str>,
    resolve: &mut dyn FnMut(&str) -> Result<String>,
) -> Result<NamespaceModes> {
    let mut m = NamespaceModes::default();
    let mut join = |flag: &str, v: &str, extra: &[&str]| -> Result<Option<String>> {
        if v == "host" || extra.contains(&v) {
            return Ok(Some(v.to_string()));
        }
        if let Some(name) = v.strip_prefix("container:") {
            return Ok(Some(format!("container:{}", resolve(name)?)));
        }
        Err(bad(format!(
            "invalid {flag} {v:?}: use host, container:NAME{}",
            extra.iter().map(|e| format!(", {e}")).collect::<String>()
        )))
    };
    if let Some(v) = pid {
        m.pid = join("--pid", v, &[])?;
    }
    if let Some(v) = ipc {
        m.ipc = join("--ipc", v, &["shareable", "private", "none"])?;
    }
    if let Some(v) = uts {
        if v != "host" {
            return Err(bad(format!("invalid --uts {v:?}: only host is supported")));
        }
        m.uts = Some(v.to_string());
    }
    if let Some(v) = cgroupns {
        if !matches!(v, "host" | "private") {
            return Err(bad(format!(
                "invalid --cgroupns {v:?}: use host or private"
            )));
        }
        m.cgroupns = Some(v.to_string());
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_between_a_hundredth_and_the_host_cpus() {
        let f = ResourceFlags::default();
        assert!(f.parse(None, Some(1_000_000_000)).is_ok());
        assert!(f.parse(None, Some(10_000_000)).is_ok());
        let e = f.parse(None, Some(5_000_000)).unwrap_err().to_string();
        assert!(e.contains("range of CPUs is from 0.01 to"), "{e}");
        assert!(f.parse(None, Some(999_000_000_000)).is_err());
        assert!(check_nano_cpus(0).is_ok());
    }

    #[test]
    fn docker_ranges() {
        let ok = |f: ResourceFlags| f.parse(Some(64 << 20), None);
        assert!(ok(ResourceFlags {
            cpu_shares: Some(1),
            ..Default::default()
        })
        .is_err());
        assert_eq!(
            ok(ResourceFlags {
                cpu_shares: Some(512),
                ..Default::default()
            })
            .unwrap()
            .cpu_shares,
            Some(512)
        );
        assert!(ok(ResourceFlags {
            cpu_period: Some(10),
            ..Default::default()
        })
        .is_err());
        assert!(ResourceFlags {
            cpu_quota: Some(50_000),
            ..Default::default()
        }
        .parse(None, Some(1_000_000_000))
        .is_err());
        assert!(ok(ResourceFlags {
            memory_swap: Some("32m".into()),
            ..Default::default()
        })
        .is_err());
        assert_eq!(
            ok(ResourceFlags {
                memory_swap: Some("-1".into()),
                ..Default::default()
            })
            .unwrap()
            .memory_swap,
            Some(-1)
        );
        assert!(ResourceFlags {
            memory_swap: Some("1g".into()),
            ..Default::default()
        }
        .parse(None, None)
        .is_err());
        assert!(ok(ResourceFlags {
            memory_swappiness: Some(101),
            ..Default::default()
        })
        .is_err());
        assert!(ok(ResourceFlags {
            oom_score_adj: Some(2000),
            ..Default::default()
        })
        .is_err());
        assert!(ok(ResourceFlags {
            blkio_weight: Some(5),
            ..Default::default()
        })
        .is_err());
        assert!(check_cpuset("x", "0-1", Some("0-3\n")).is_ok());
        assert!(check_cpuset("x", "5", Some("0-3\n")).is_err());
        assert!(check_cpuset("x", "a-b", None).is_err());
    }

    #[test]
    fn namespaces() {
        let mut r = |n: &str| -> Result<String> {
            if n == "db" {
                Ok("abc".into())
            } else {
                Err(EngineError::NotFound(n.into()))
            }
        };
        let m = parse_namespaces(
            Some("container:db"),
            Some("shareable"),
            Some("host"),
            Some("host"),
            &mut r,
        )
        .unwrap();
        assert_eq!(m.pid.as_deref(), Some("container:abc"));
        assert_eq!(m.ipc.as_deref(), Some("shareable"));
        assert!(parse_namespaces(Some("private"), None, None, None, &mut r).is_err());
        assert!(parse_namespaces(None, None, Some("private"), None, &mut r).is_err());
        assert!(parse_namespaces(None, Some("container:nope"), None, None, &mut r).is_err());
    }
}
