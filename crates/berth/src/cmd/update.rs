//! `update`: new cgroup limits and restart policy for containers, running or stopped
//! (`berth_engine::ops::update`).

use anyhow::{bail, Result};
use berth_engine::config::{self as ccfg, RestartPolicy};
use berth_engine::ops::{self, UpdateRequest};
use clap::Args;

use super::container::{each_sel, eng};
use super::Ctx;

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Block I/O weight, 10 to 1000.
    #[arg(long)]
    pub blkio_weight: Option<i64>,
    /// CFS scheduler period in microseconds.
    #[arg(long)]
    pub cpu_period: Option<i64>,
    /// CFS scheduler quota in microseconds per period (-1: none).
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// Relative CPU weight (2 to 262144).
    #[arg(short = 'c', long)]
    pub cpu_shares: Option<i64>,
    /// CPUs (e.g. 0.5, 2).
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPUs the container may run on (0-3, 0,1).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use (0-3, 0,1).
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Kernel memory limit (deprecated; recorded and discarded, as by Docker).
    #[arg(long)]
    pub kernel_memory: Option<String>,
    /// Memory limit (e.g. 64m, 1g).
    #[arg(short, long)]
    pub memory: Option<String>,
    /// Soft memory limit (e.g. 32m).
    #[arg(long)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (e.g. 128m; -1 for unlimited swap).
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of processes (-1 for unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Restart policy: no, always, unless-stopped, on-failure[:N].
    #[arg(long)]
    pub restart: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

impl UpdateArgs {
    /// The library request; sizes parsed as Docker does (`64m`, `-1`).
    pub fn request(&self) -> Result<UpdateRequest> {
        let bytes = |v: &Option<String>| -> Result<Option<i64>> {
            match v.as_deref().map(str::trim) {
                None => Ok(None),
                Some("-1") => Ok(Some(-1)),
                Some(s) => Ok(Some(ccfg::parse_bytes(s).map_err(eng)?)),
            }
        };
        Ok(UpdateRequest {
            memory: bytes(&self.memory)?,
            memory_swap: bytes(&self.memory_swap)?,
            memory_reservation: bytes(&self.memory_reservation)?,
            kernel_memory: bytes(&self.kernel_memory)?,
            nano_cpus: self
                .cpus
                .as_deref()
                .map(ccfg::parse_cpus)
                .transpose()
                .map_err(eng)?,
            cpu_shares: self.cpu_shares,
            cpu_period: self.cpu_period,
            cpu_quota: self.cpu_quota,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            pids_limit: self.pids_limit,
            blkio_weight: self.blkio_weight,
            restart: self
                .restart
                .as_deref()
                .map(RestartPolicy::parse)
                .transpose()
                .map_err(eng)?,
        })
    }
}

/// `update [OPTIONS] CONTAINER...`: prints each container as named once updated; a failure is
/// reported and the others are still updated (exit 1 then), as Docker does.
pub fn update(ctx: &Ctx, a: UpdateArgs) -> Result<i32> {
    let req = a.request()?;
    if req.is_empty() {
        bail!(
            "you must provide one or more flags when using this command (see berth update --help)"
        );
    }
    each_sel(ctx, &a.containers, None, false, |store, c| {
        for w in ops::update(store, c, &req).map_err(eng)? {
            eprintln!("WARNING: {w}");
        }
        Ok(())
    })
}
