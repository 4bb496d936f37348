//! `update`: change a container's cgroup limits and restart policy, running or stopped
//! (Docker's `container update`, the API's `POST /containers/{id}/update`).
//!
//! The new values are checked as `run` checks them, written into a running container's
//! cgroups through [`crate::cgroups::Cgroups::apply`] (v1 and v2 files), into the bundle's
//! `config.json` (so a restart by the monitor's policy gets them from the runtime too), and
//! into the stored configuration last (so `inspect` shows them and every later start applies
//! them). A failed cgroup write changes nothing that is stored.

use berth_store::Store;

use crate::cgroups::Limits;
use crate::config::{ContainerConfig, RestartPolicy};
use crate::host::Host;
use crate::resources::MIN_MEMORY;
use crate::state::{self, Container, State};
use crate::{EngineError, Result};

/// What `update` changes. `None` leaves a setting as it is; so does a zero, as in Docker's
/// API (whose body has Go zero values for unset fields), except for `pids_limit`, where 0 and
/// -1 mean unlimited. Units are Docker's: bytes, microseconds, CPU shares, nano CPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateRequest {
    /// Memory limit in bytes (`--memory`, at least 6 MiB).
    pub memory: Option<i64>,
    /// Memory plus swap in bytes (`--memory-swap`; -1: unlimited swap); at least the memory
    /// limit.
    pub memory_swap: Option<i64>,
    /// Soft memory limit in bytes (`--memory-reservation`); at most the memory limit.
    pub memory_reservation: Option<i64>,
    /// Kernel memory in bytes (`--kernel-memory`): recorded, not applied (see
    /// [`crate::resources::Resources::warnings`]).
    pub kernel_memory: Option<i64>,
    /// CPUs in units of 10⁻⁹ CPUs (`--cpus`); excludes a CFS period or quota.
    pub nano_cpus: Option<i64>,
    /// Relative CPU weight, 2–262144 (`--cpu-shares`).
    pub cpu_shares: Option<i64>,
    /// CFS period in µs, 1000–1000000 (`--cpu-period`).
    pub cpu_period: Option<i64>,
    /// CFS quota in µs, at least 1000 or -1 for none (`--cpu-quota`).
    pub cpu_quota: Option<i64>,
    /// CPUs allowed, e.g. `0-1,3` (`--cpuset-cpus`); empty leaves it.
    pub cpuset_cpus: Option<String>,
    /// Memory nodes allowed (`--cpuset-mems`); empty leaves it.
    pub cpuset_mems: Option<String>,
    /// Maximum number of tasks (`--pids-limit`; 0 or -1: unlimited).
    pub pids_limit: Option<i64>,
    /// Block I/O weight, 10–1000 (`--blkio-weight`).
    pub blkio_weight: Option<i64>,
    /// The restart policy (`--restart`).
    pub restart: Option<RestartPolicy>,
}

impl UpdateRequest {
    /// Whether the request changes nothing (Docker's CLI refuses such an update).
    pub fn is_empty(&self) -> bool {
        *self == UpdateRequest::default()
    }
}

/// Change `c`'s limits and restart policy as `req` asks; returns Docker's warnings for
/// accepted values that do less than asked.
///
/// Errors: [`EngineError::InvalidArgument`] for a value out of Docker's range, a conflict
/// (`--cpus` on a container with a CFS quota and the reverse, memory above the stored swap
/// limit without a new one, a restart policy on an `--rm` container, a container being
/// removed) or a setting the host's cgroups cannot apply; [`EngineError::Runtime`] when the
/// kernel refuses a running container's new value (memory below what it uses); store errors.
pub fn update(store: &Store, c: &Container, req: &UpdateRequest) -> Result<Vec<String>> {
    update_with(&Host::real(), store, c, req)
}

/// [`update`] with the given host services.
///
/// Errors: as [`update`].
pub fn update_with(
    host: &Host,
    store: &Store,
    c: &Container,
    req: &UpdateRequest,
) -> Result<Vec<String>> {
    if c.state == State::Removing {
        return Err(bad(format!(
            "container {} is marked for removal and cannot be updated",
            c.name
        )));
    }
    let (cfg, unlimited_pids) = merged(&c.config, req)?;
    // Refuse what this host's cgroups cannot do, for the settings this request changes.
    let changed = changed_resources(&cfg, req);
    crate::resources::check_kernel(&changed, false)?;
    let warnings = changed.warnings(cfg.memory);

    if c.state.is_active() {
        let mut limits = Limits::from_config(&cfg);
        if unlimited_pids {
            limits.pids_limit = Some(-1);
        }
        if let Err(e) = host.cgroups.apply(&c.cgroup_path(), &limits) {
            // Put back what was there (best effort): the stored config is unchanged.
            let _ = host
                .cgroups
                .apply(&c.cgroup_path(), &Limits::from_config(&c.config));
            return Err(EngineError::Runtime(format!(
                "cannot update container {}: {e}",
                c.name
            )));
        }
    }
    rewrite_spec_resources(store, &c.id, &cfg);
    state::set_config(store, &c.id, &cfg)?;
    let mut updated = c.clone();
    updated.config = cfg;
    state::event(store, &updated, "update", &[]);
    Ok(warnings)
}

fn bad(msg: String) -> EngineError {
    EngineError::InvalidArgument(msg)
}

/// `cfg` with `req` applied and checked; also whether the request asked for unlimited pids
/// (which must be written to a live cgroup although nothing is stored).
fn merged(cfg: &ContainerConfig, req: &UpdateRequest) -> Result<(ContainerConfig, bool)> {
    let set = |v: Option<i64>| v.filter(|v| *v != 0);
    let mut n = cfg.clone();
    let r = &mut n.resources;

    // --cpus sets period and quota itself: it cannot be mixed with them (Docker's rule).
    let nano = set(req.nano_cpus);
    let (period, quota) = (set(req.cpu_period), set(req.cpu_quota));
    if nano.is_some() && (period.is_some() || quota.is_some()) {
        return Err(bad(
            "conflicting options: --cpus cannot be used with --cpu-period or --cpu-quota".into(),
        ));
    }
    if nano.is_some() && (r.cpu_period.is_some() || r.cpu_quota.is_some_and(|q| q > 0)) {
        return Err(bad(
            "conflicting options: the container already has a CPU period or quota; update --cpu-period/--cpu-quota instead of --cpus"
                .into(),
        ));
    }
    if (period.is_some() || quota.is_some_and(|q| q > 0)) && cfg.nano_cpus.is_some() {
        return Err(bad(
            "conflicting options: the container already has --cpus; update --cpus instead of --cpu-period/--cpu-quota"
                .into(),
        ));
    }
    if let Some(v) = nano {
        if v < 0 {
            return Err(bad(format!("invalid --cpus {v}: must be greater than 0")));
        }
        crate::resources::check_nano_cpus(v)?;
        n.nano_cpus = Some(v);
    }
    if let Some(p) = period {
        if !(1000..=1_000_000).contains(&p) {
            return Err(bad(format!(
                "invalid --cpu-period {p}: use 1000 to 1000000 microseconds"
            )));
        }
        r.cpu_period = u64::try_from(p).ok();
    }
    if let Some(q) = quota {
        if q != -1 && q < 1000 {
            return Err(bad(format!(
                "invalid --cpu-quota {q}: use at least 1000 microseconds (or -1 for no limit)"
            )));
        }
        r.cpu_quota = Some(q);
    }
    if let Some(s) = set(req.cpu_shares) {
        if !(2..=262_144).contains(&s) {
            return Err(bad(format!(
                "invalid --cpu-shares {s}: use a value from 2 to 262144"
            )));
        }
        r.cpu_shares = u64::try_from(s).ok();
    }
    let host = |f: &str| std::fs::read_to_string(f).ok();
    if let Some(c) = req.cpuset_cpus.as_deref().filter(|c| !c.trim().is_empty()) {
        let allowed = host("/sys/fs/cgroup/cpuset/cpuset.cpus")
            .or_else(|| host("/sys/fs/cgroup/cpuset.cpus.effective"))
            .or_else(|| host("/sys/devices/system/cpu/online"));
        crate::resources::check_cpuset("--cpuset-cpus", c, allowed.as_deref())?;
        r.cpuset_cpus = Some(c.trim().to_string());
    }
    if let Some(m) = req.cpuset_mems.as_deref().filter(|m| !m.trim().is_empty()) {
        let allowed = host("/sys/fs/cgroup/cpuset/cpuset.mems")
            .or_else(|| host("/sys/fs/cgroup/cpuset.mems.effective"))
            .or_else(|| host("/sys/devices/system/node/online"));
        crate::resources::check_cpuset("--cpuset-mems", m, allowed.as_deref())?;
        r.cpuset_mems = Some(m.trim().to_string());
    }
    if let Some(w) = set(req.blkio_weight) {
        if !(10..=1000).contains(&w) {
            return Err(bad(format!("invalid --blkio-weight {w}: use 10 to 1000")));
        }
        r.blkio_weight = u16::try_from(w).ok();
    }

    // Memory: the limit, then swap and reservation against the resulting limit.
    let swap = set(req.memory_swap);
    if let Some(m) = set(req.memory) {
        if m < MIN_MEMORY {
            return Err(bad(
                "minimum memory limit allowed is 6MB: give --memory 6m or more".into(),
            ));
        }
        if swap.is_none() && r.memory_swap.is_some_and(|s| s > 0 && m > s) {
            return Err(bad(
                "memory limit should be smaller than already set memoryswap limit: update --memory-swap at the same time"
                    .into(),
            ));
        }
        n.memory = Some(m);
    }
    let memory = n.memory.filter(|m| *m > 0);
    if let Some(s) = swap {
        let Some(mem) = memory else {
            return Err(bad(
                "--memory-swap needs a memory limit: set --memory too".into()
            ));
        };
        if s != -1 && s < mem {
            return Err(bad(format!(
                "minimum memoryswap limit should be larger than memory limit: --memory-swap {s} is memory plus swap, so it must be at least the memory limit {mem} (or -1 for unlimited swap)"
            )));
        }
        r.memory_swap = Some(s);
    }
    if let Some(v) = set(req.memory_reservation) {
        if v < MIN_MEMORY {
            return Err(bad(
                "minimum memory reservation allowed is 6MB: give --memory-reservation 6m or more"
                    .into(),
            ));
        }
        if memory.is_some_and(|m| v > m) {
            return Err(bad(
                "minimum memory limit can not be less than memory reservation limit: --memory-reservation must be at most the memory limit"
                    .into(),
            ));
        }
        r.memory_reservation = Some(v);
    }
    if let Some(v) = set(req.kernel_memory) {
        r.kernel_memory = Some(v);
    }

    let mut unlimited_pids = false;
    if let Some(p) = req.pids_limit {
        if p > 0 {
            n.pids_limit = Some(p);
        } else {
            n.pids_limit = None;
            unlimited_pids = true;
        }
    }
    if let Some(p) = &req.restart {
        if cfg.auto_remove && !p.is_none() {
            return Err(bad(
                "restart policy cannot be updated because --rm (AutoRemove) is enabled for the container"
                    .into(),
            ));
        }
        n.restart = p.clone();
    }
    Ok((n, unlimited_pids))
}

/// The resource settings `req` changes, as they end up in `cfg` (for the host check).
fn changed_resources(cfg: &ContainerConfig, req: &UpdateRequest) -> crate::resources::Resources {
    let r = &cfg.resources;
    let on = |v: Option<i64>| v.is_some_and(|v| v != 0);
    let on_s = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.trim().is_empty());
    crate::resources::Resources {
        cpu_shares: r.cpu_shares.filter(|_| on(req.cpu_shares)),
        cpuset_cpus: r.cpuset_cpus.clone().filter(|_| on_s(&req.cpuset_cpus)),
        cpuset_mems: r.cpuset_mems.clone().filter(|_| on_s(&req.cpuset_mems)),
        cpu_period: r.cpu_period.filter(|_| on(req.cpu_period)),
        cpu_quota: r.cpu_quota.filter(|_| on(req.cpu_quota)),
        memory_swap: r.memory_swap.filter(|_| on(req.memory_swap)),
        memory_reservation: r.memory_reservation.filter(|_| on(req.memory_reservation)),
        blkio_weight: r.blkio_weight.filter(|_| on(req.blkio_weight)),
        kernel_memory: r.kernel_memory.filter(|_| on(req.kernel_memory)),
        ..Default::default()
    }
}

/// Put the new limits into the bundle's `config.json` (written by the last start), so a
/// restart by the monitor gets them from the runtime as well. Best effort: the next `start`
/// rewrites the whole file from the stored configuration anyway.
fn rewrite_spec_resources(store: &Store, id: &str, cfg: &ContainerConfig) {
    let path = crate::rootfs::Bundle::new(store.root(), id).config();
    if !path.exists() {
        return;
    }
    let res = (|| -> Result<()> {
        let mut spec = oci_spec::runtime::Spec::load(&path)
            .map_err(|e| EngineError::Other(format!("{}: {e}", path.display())))?;
        let Some(mut linux) = spec.linux().clone() else {
            return Ok(());
        };
        let old = linux.resources().clone().unwrap_or_default();
        let mut new = crate::spec::linux_resources(cfg)?
            .build()
            .map_err(|e| EngineError::Other(e.to_string()))?;
        new.set_devices(old.devices().clone());
        linux.set_resources(Some(new));
        spec.set_linux(Some(linux));
        let tmp = path.with_extension("json.update");
        spec.save(&tmp)
            .map_err(|e| EngineError::Other(format!("{}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(|e| EngineError::io(&path, e))
    })();
    if let Err(e) = res {
        tracing::warn!("update of {id}: config.json not rewritten: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{fakes, live_monitor, row, store};

    fn req() -> UpdateRequest {
        UpdateRequest::default()
    }

    #[test]
    fn a_running_container_gets_new_cgroup_values_and_a_stored_config() {
        let t = store();
        let f = fakes(&t);
        let c = row(&t.store, "up1", State::Running);
        live_monitor(&t.store, &c.id);
        let cg = t.dir.path().join("cgroup");
        let rel = c.cgroup_path();
        let rel = rel.trim_matches('/');
        for ctrl in ["memory", "cpu", "pids"] {
            std::fs::create_dir_all(cg.join(ctrl).join(rel)).unwrap();
        }
        let r = UpdateRequest {
            memory: Some(64 << 20),
            cpu_shares: Some(512),
            nano_cpus: Some(1_500_000_000),
            pids_limit: Some(50),
            restart: Some(RestartPolicy::parse("on-failure:3").unwrap()),
            ..req()
        };
        update_with(&f.host, &t.store, &c, &r).unwrap();
        let file =
            |ctrl: &str, f: &str| std::fs::read_to_string(cg.join(ctrl).join(rel).join(f)).unwrap();
        assert_eq!(
            file("memory", "memory.limit_in_bytes"),
            (64u64 << 20).to_string()
        );
        assert_eq!(file("cpu", "cpu.shares"), "512");
        assert_eq!(file("cpu", "cpu.cfs_quota_us"), "150000");
        assert_eq!(file("cpu", "cpu.cfs_period_us"), "100000");
        assert_eq!(file("pids", "pids.max"), "50");
        let back = state::get(&t.store, &c.id).unwrap().unwrap();
        assert_eq!(back.config.memory, Some(64 << 20));
        assert_eq!(back.config.resources.cpu_shares, Some(512));
        assert_eq!(back.config.nano_cpus, Some(1_500_000_000));
        assert_eq!(back.config.pids_limit, Some(50));
        assert_eq!(back.config.restart.name, "on-failure");
        assert_eq!(back.config.restart.max_retries, 3);

        // Unlimited pids is written to the live cgroup and forgotten in the config.
        let r = UpdateRequest {
            pids_limit: Some(-1),
            ..req()
        };
        update_with(&f.host, &t.store, &back, &r).unwrap();
        assert_eq!(file("pids", "pids.max"), "max");
        let back = state::get(&t.store, &c.id).unwrap().unwrap();
        assert_eq!(back.config.pids_limit, None);
        assert_eq!(back.config.memory, Some(64 << 20), "other values kept");
    }

    #[test]
    fn a_stopped_container_only_changes_its_stored_config() {
        let t = store();
        let f = fakes(&t);
        let c = row(&t.store, "up2", State::Exited);
        let r = UpdateRequest {
            memory: Some(32 << 20),
            ..req()
        };
        update_with(&f.host, &t.store, &c, &r).unwrap();
        assert!(!t.dir.path().join("cgroup/memory").exists());
        let back = state::get(&t.store, &c.id).unwrap().unwrap();
        assert_eq!(back.config.memory, Some(32 << 20));
    }

    #[test]
    fn docker_rules_refuse_and_store_nothing() {
        let t = store();
        let f = fakes(&t);
        let mut c = row(&t.store, "up3", State::Exited);
        c.config.memory = Some(64 << 20);
        c.config.resources.memory_swap = Some(128 << 20);
        c.config.resources.cpu_quota = Some(50_000);
        c.config.auto_remove = true;
        state::set_config(&t.store, &c.id, &c.config).unwrap();
        let cases = [
            UpdateRequest {
                memory: Some(1 << 20),
                ..req()
            },
            UpdateRequest {
                memory: Some(256 << 20),
                ..req()
            },
            UpdateRequest {
                memory_swap: Some(32 << 20),
                ..req()
            },
            UpdateRequest {
                memory_reservation: Some(96 << 20),
                ..req()
            },
            UpdateRequest {
                nano_cpus: Some(1_000_000_000),
                ..req()
            },
            UpdateRequest {
                cpu_shares: Some(1),
                ..req()
            },
            UpdateRequest {
                cpu_period: Some(10),
                ..req()
            },
            UpdateRequest {
                blkio_weight: Some(5),
                ..req()
            },
            UpdateRequest {
                cpuset_cpus: Some("x-y".into()),
                ..req()
            },
            UpdateRequest {
                restart: Some(RestartPolicy::parse("always").unwrap()),
                ..req()
            },
        ];
        for r in cases {
            let e = update_with(&f.host, &t.store, &c, &r).unwrap_err();
            assert!(matches!(e, EngineError::InvalidArgument(_)), "{r:?}: {e}");
        }
        let back = state::get(&t.store, &c.id).unwrap().unwrap();
        assert_eq!(back.config, c.config);
        // Memory and swap together, and a zero (Docker's "unchanged") are fine.
        let r = UpdateRequest {
            memory: Some(256 << 20),
            memory_swap: Some(-1),
            cpu_shares: Some(0),
            restart: Some(RestartPolicy::parse("no").unwrap()),
            ..req()
        };
        update_with(&f.host, &t.store, &c, &r).unwrap();
        let back = state::get(&t.store, &c.id).unwrap().unwrap();
        assert_eq!(back.config.memory, Some(256 << 20));
        assert_eq!(back.config.resources.memory_swap, Some(-1));
        assert_eq!(back.config.resources.cpu_shares, None);
    }

    #[test]
    fn a_removing_container_is_refused() {
        let t = store();
        let f = fakes(&t);
        let c = row(&t.store, "up4", State::Removing);
        let r = UpdateRequest {
            memory: Some(64 << 20),
            ..req()
        };
        assert!(update_with(&f.host, &t.store, &c, &r).is_err());
        assert!(req().is_empty());
        assert!(!r.is_empty());
    }
}
