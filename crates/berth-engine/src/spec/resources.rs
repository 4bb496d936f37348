//! The runtime spec's `linux.resources` (memory, CPU, pids, block I/O) from a container's
//! configuration.

use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
    LinuxResourcesBuilder, LinuxThrottleDevice, LinuxThrottleDeviceBuilder,
    LinuxWeightDeviceBuilder,
};

use super::oci_err;
use crate::config::ContainerConfig;
use crate::Result;

/// The spec's `linux.resources` (without devices) from `--memory`, `--cpus`, `--pids-limit`
/// and [`crate::resources::Resources`], in the OCI units (bytes, microseconds, shares; the
/// runtime converts them for cgroup v2). `--kernel-memory` is left out (see
/// [`crate::resources::Resources::warnings`]).
///
/// Errors: only oci-spec builder failures.
pub fn linux_resources(cfg: &ContainerConfig) -> Result<LinuxResourcesBuilder> {
    let r = &cfg.resources;
    let mut resources = LinuxResourcesBuilder::default();
    let memory = cfg.memory.filter(|m| *m > 0);
    if memory.is_some()
        || r.memory_reservation.is_some()
        || r.memory_swappiness.is_some()
        || r.oom_kill_disable
    {
        let mut b = LinuxMemoryBuilder::default();
        if let Some(m) = memory {
            b = b.limit(m);
            // memory + swap; without --memory-swap, Docker's default: twice the limit (the
            // CLI records that at create where swap is accounted; other front ends may not).
            b = b.swap(r.memory_swap.unwrap_or_else(|| m.saturating_mul(2)));
        }
        if let Some(v) = r.memory_reservation {
            b = b.reservation(v);
        }
        if let Some(v) = r.memory_swappiness {
            b = b.swappiness(v);
        }
        if r.oom_kill_disable {
            b = b.disable_oom_killer(true);
        }
        resources = resources.memory(b.build().map_err(oci_err)?);
    }
    let mut cpu = LinuxCpuBuilder::default();
    let mut any_cpu = false;
    if let Some(n) = cfg.nano_cpus {
        let period: u64 = 100_000;
        cpu = cpu.quota(n * 100_000 / 1_000_000_000).period(period);
        any_cpu = true;
    }
    if let Some(p) = r.cpu_period {
        cpu = cpu.period(p);
        any_cpu = true;
    }
    if let Some(q) = r.cpu_quota {
        cpu = cpu.quota(q);
        any_cpu = true;
    }
    if let Some(sh) = r.cpu_shares {
        cpu = cpu.shares(sh);
        any_cpu = true;
    }
    if let Some(c) = &r.cpuset_cpus {
        cpu = cpu.cpus(c.clone());
        any_cpu = true;
    }
    if let Some(m) = &r.cpuset_mems {
        cpu = cpu.mems(m.clone());
        any_cpu = true;
    }
    if any_cpu {
        resources = resources.cpu(cpu.build().map_err(oci_err)?);
    }
    if let Some(p) = cfg.pids_limit.filter(|p| *p > 0) {
        resources = resources.pids(
            LinuxPidsBuilder::default()
                .limit(p)
                .build()
                .map_err(oci_err)?,
        );
    }
    let throttle =
        |v: &[crate::resources::DeviceValue]| -> Result<Option<Vec<LinuxThrottleDevice>>> {
            if v.is_empty() {
                return Ok(None);
            }
            v.iter()
                .map(|d| {
                    LinuxThrottleDeviceBuilder::default()
                        .major(d.major)
                        .minor(d.minor)
                        .rate(d.value)
                        .build()
                        .map_err(oci_err)
                })
                .collect::<Result<Vec<_>>>()
                .map(Some)
        };
    if r.blkio_weight.is_some()
        || !r.blkio_weight_device.is_empty()
        || !r.device_read_bps.is_empty()
        || !r.device_write_bps.is_empty()
        || !r.device_read_iops.is_empty()
        || !r.device_write_iops.is_empty()
    {
        let mut b = LinuxBlockIoBuilder::default().build().map_err(oci_err)?;
        b.set_weight(r.blkio_weight);
        if !r.blkio_weight_device.is_empty() {
            b.set_weight_device(Some(
                r.blkio_weight_device
                    .iter()
                    .map(|d| {
                        LinuxWeightDeviceBuilder::default()
                            .major(d.major)
                            .minor(d.minor)
                            .weight(u16::try_from(d.value).unwrap_or(1000))
                            .build()
                            .map_err(oci_err)
                    })
                    .collect::<Result<Vec<_>>>()?,
            ));
        }
        b.set_throttle_read_bps_device(throttle(&r.device_read_bps)?);
        b.set_throttle_write_bps_device(throttle(&r.device_write_bps)?);
        b.set_throttle_read_iops_device(throttle(&r.device_read_iops)?);
        b.set_throttle_write_iops_device(throttle(&r.device_write_iops)?);
        resources = resources.block_io(b);
    }
    Ok(resources)
}
