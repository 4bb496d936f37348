//! Writing a container's limits into its cgroups ([`super::Cgroups::apply`]), in v1 files or
//! in v2 files and units, and the limits themselves.

use std::path::{Path, PathBuf};

use super::CgroupFs;

/// Cgroup limits in Docker's units (bytes, microseconds, shares), as given to `run` and
/// `update`. `None` leaves a setting alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// `--memory` in bytes.
    pub memory: Option<i64>,
    /// `--memory-swap`: memory plus swap in bytes (-1: unlimited swap).
    pub memory_swap: Option<i64>,
    /// `--memory-reservation` in bytes (v2: `memory.low`).
    pub memory_reservation: Option<i64>,
    /// `--memory-swappiness` 0–100 (v1 only).
    pub memory_swappiness: Option<u64>,
    /// `--oom-kill-disable` (v1 only).
    pub oom_kill_disable: bool,
    /// `--cpu-shares` (v2: converted to `cpu.weight`).
    pub cpu_shares: Option<u64>,
    /// CFS period in µs.
    pub cpu_period: Option<u64>,
    /// CFS quota in µs (-1: none).
    pub cpu_quota: Option<i64>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems`.
    pub cpuset_mems: Option<String>,
    /// `--pids-limit` (≤ 0: unlimited).
    pub pids_limit: Option<i64>,
    /// `--blkio-weight` 10–1000.
    pub blkio_weight: Option<u16>,
}

impl Limits {
    /// The limits of a container's configuration (`--cpus` becomes quota/period with
    /// Docker's 100 ms period).
    pub fn from_config(cfg: &crate::config::ContainerConfig) -> Limits {
        let r = &cfg.resources;
        let (mut period, mut quota) = (r.cpu_period, r.cpu_quota);
        if let Some(n) = cfg.nano_cpus {
            period = Some(100_000);
            quota = Some(n / 10_000);
        }
        Limits {
            memory: cfg.memory.filter(|m| *m > 0),
            memory_swap: r.memory_swap,
            memory_reservation: r.memory_reservation,
            memory_swappiness: r.memory_swappiness,
            oom_kill_disable: r.oom_kill_disable,
            cpu_shares: r.cpu_shares,
            cpu_period: period,
            cpu_quota: quota,
            cpuset_cpus: r.cpuset_cpus.clone(),
            cpuset_mems: r.cpuset_mems.clone(),
            pids_limit: cfg.pids_limit,
            blkio_weight: r.blkio_weight,
        }
    }
}

/// cgroup v2's `cpu.weight` for v1 shares, the conversion of crun, runc (≥ 1.3) and youki:
/// a quadratic in log2(shares) through (2 → 1), (1024 → 100, both defaults) and
/// (262144 → 10000); 0 (unset) gives the default 100.
pub fn shares_to_weight(shares: u64) -> u64 {
    match shares {
        0 => 100,
        1..=2 => 1,
        262_144.. => 10_000,
        _ => {
            #[allow(clippy::cast_precision_loss)] // shares < 2^18: exact in an f64
            let l = (shares as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            // 1 ≤ weight ≤ 10000 here, so the conversion back is exact.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let w = 10f64.powf(exponent).ceil() as u64;
            w.clamp(1, 10_000)
        }
    }
}

fn write_file(dir: &Path, file: &str, value: &str) -> std::io::Result<()> {
    let p = dir.join(file);
    std::fs::write(&p, value).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("writing {value:?} to {}: {e}", p.display()),
        )
    })
}

impl CgroupFs {
    /// [`super::Cgroups::apply`] for these filesystems.
    pub(super) fn write_limits(&self, path: &str, l: &Limits) -> std::io::Result<()> {
        let rel = path.trim_matches('/');
        if rel.is_empty() {
            return Ok(());
        }
        let v2 = self.root.join("cgroup.controllers").exists();
        if v2 {
            let d = self.root.join(rel);
            if !d.is_dir() {
                return Ok(());
            }
            if let Some(m) = l.memory {
                write_file(&d, "memory.max", &m.to_string())?;
                if let Some(sw) = l.memory_swap {
                    let v = if sw < 0 {
                        "max".to_string()
                    } else {
                        (sw - m).max(0).to_string()
                    };
                    write_file(&d, "memory.swap.max", &v)?;
                }
            }
            if let Some(v) = l.memory_reservation {
                write_file(&d, "memory.low", &v.to_string())?;
            }
            if let Some(sh) = l.cpu_shares {
                write_file(&d, "cpu.weight", &shares_to_weight(sh).to_string())?;
            }
            if l.cpu_quota.is_some() || l.cpu_period.is_some() {
                let q = match l.cpu_quota {
                    Some(q) if q > 0 => q.to_string(),
                    _ => "max".to_string(),
                };
                let p = l.cpu_period.unwrap_or(100_000);
                write_file(&d, "cpu.max", &format!("{q} {p}"))?;
            }
            if let Some(c) = &l.cpuset_cpus {
                write_file(&d, "cpuset.cpus", c)?;
            }
            if let Some(m) = &l.cpuset_mems {
                write_file(&d, "cpuset.mems", m)?;
            }
            if let Some(p) = l.pids_limit {
                let v = if p > 0 { p.to_string() } else { "max".into() };
                write_file(&d, "pids.max", &v)?;
            }
            if let Some(w) = l.blkio_weight {
                if d.join("io.bfq.weight").exists() {
                    write_file(&d, "io.bfq.weight", &w.to_string())?;
                } else {
                    write_file(&d, "io.weight", &format!("default {w}"))?;
                }
            }
            return Ok(());
        }
        let dir = |ctrl: &str| -> Option<PathBuf> {
            let d = self.root.join(ctrl).join(rel);
            d.is_dir().then_some(d)
        };
        if let Some(d) = dir("memory") {
            if let Some(m) = l.memory {
                // memory + swap must stay ≥ memory at every step: raise it first (it may
                // fail while below the new memory value), then set memory, then set it again.
                let memsw = d.join("memory.memsw.limit_in_bytes").exists();
                let sw = l.memory_swap.map(|s| if s < 0 { -1 } else { s });
                if let (true, Some(sw)) = (memsw, sw) {
                    let _ = write_file(&d, "memory.memsw.limit_in_bytes", &sw.to_string());
                }
                write_file(&d, "memory.limit_in_bytes", &m.to_string())?;
                if let (true, Some(sw)) = (memsw, sw) {
                    write_file(&d, "memory.memsw.limit_in_bytes", &sw.to_string())?;
                }
            }
            if let Some(v) = l.memory_reservation {
                write_file(&d, "memory.soft_limit_in_bytes", &v.to_string())?;
            }
            if let Some(v) = l.memory_swappiness {
                write_file(&d, "memory.swappiness", &v.to_string())?;
            }
            if l.oom_kill_disable {
                write_file(&d, "memory.oom_control", "1")?;
            }
        }
        if let Some(d) = dir("cpu") {
            if let Some(sh) = l.cpu_shares {
                write_file(&d, "cpu.shares", &sh.to_string())?;
            }
            if let Some(p) = l.cpu_period {
                write_file(&d, "cpu.cfs_period_us", &p.to_string())?;
            }
            if let Some(q) = l.cpu_quota {
                write_file(&d, "cpu.cfs_quota_us", &q.to_string())?;
            }
        }
        if let Some(d) = dir("cpuset") {
            if let Some(c) = &l.cpuset_cpus {
                write_file(&d, "cpuset.cpus", c)?;
            }
            if let Some(m) = &l.cpuset_mems {
                write_file(&d, "cpuset.mems", m)?;
            }
        }
        if let (Some(d), Some(p)) = (dir("pids"), l.pids_limit) {
            let v = if p > 0 { p.to_string() } else { "max".into() };
            write_file(&d, "pids.max", &v)?;
        }
        if let (Some(d), Some(w)) = (dir("blkio"), l.blkio_weight) {
            if d.join("blkio.weight").exists() {
                write_file(&d, "blkio.weight", &w.to_string())?;
            } else {
                write_file(&d, "blkio.bfq.weight", &w.to_string())?;
            }
        }
        Ok(())
    }
}
