//! Reconcile: bring rows in line with reality after a monitor died (crash, `kill -9`,
//! reboot), and sweep directories no row accounts for.

use std::collections::HashSet;
use std::time::Duration;

use berth_store::Store;

use crate::host::Host;
use crate::rootfs::Bundle;
use crate::state::{self, Container, State};
use crate::Result;

/// Containers whose monitor died are marked exited and their mounts and network released.
///
/// Errors: [`crate::EngineError::Db`] when the rows cannot be read; releasing a container's
/// resources is best effort (failures are logged).
pub fn reconcile(store: &Store) -> Result<()> {
    reconciled_rows(store).map(|_| ())
}

/// [`reconcile`], returning every container row as it is afterwards (newest first).
///
/// Errors: as [`reconcile`].
pub fn reconciled_rows(store: &Store) -> Result<Vec<Container>> {
    reconciled_rows_with(&Host::real(), store)
}

/// [`reconcile`] with the given host services.
///
/// Errors: as [`reconcile`].
pub fn reconcile_with(host: &Host, store: &Store) -> Result<()> {
    reconciled_rows_with(host, store).map(|_| ())
}

/// [`reconciled_rows`] with the given host services.
///
/// Errors: as [`reconcile`].
pub fn reconciled_rows_with(host: &Host, store: &Store) -> Result<Vec<Container>> {
    state::migrate(store)?;
    let all = state::all(store)?;
    let mut reconciled = false;
    for c in &all {
        if c.state.is_active() && !state::monitor_alive(c) {
            reconcile_one(host, store, c);
            reconciled = true;
        }
    }
    if reconciled {
        // After a crash or reboot, also release network resources that no container row
        // accounts for. Containers that are not exited may be starting right now: keep theirs.
        let rows = state::all(store)?;
        let keep: HashSet<String> = rows
            .iter()
            .filter(|c| c.state != State::Exited)
            .map(|c| c.id.clone())
            .collect();
        if let Err(e) = host.network.cleanup_stale(store, &keep) {
            tracing::warn!("cleaning up stale network resources: {e}");
        }
        return Ok(rows);
    }
    Ok(all)
}

/// Delete the runtime state and the cgroups of a container. Best effort.
pub(crate) fn release_runtime(host: &Host, store: &Store, c: &Container) {
    if let Ok(rt) = host.runtime(store.root(), c.config.runtime.as_deref()) {
        if let Err(e) = rt.delete(&c.id) {
            tracing::warn!("runtime delete of {}: {e}", c.id);
        }
    }
    // Whatever the runtime managed, no cgroup of this container may outlive it (its state may
    // already be gone after a crash, or it may have failed half-way).
    host.cgroups.remove(&c.cgroup_path());
}

/// Record an active container whose monitor is gone as exited and release what it held.
pub(crate) fn reconcile_one(host: &Host, store: &Store, c: &Container) {
    // A container process may survive its monitor; it must not run unobserved. After a reboot
    // the recorded pid may belong to anything: only a process in this container's cgroup is
    // killed.
    if let Some(pid) = c.pid {
        if host.cgroups.contains(pid, &c.cgroup_path()) {
            let _ = host.signals.signal_container(pid, &c.id, libc::SIGKILL);
        }
    }
    release_runtime(host, store, c);
    let _ = state::mark_exited_unobserved(store, &c.id);
    let _ = host.network.teardown(store, &c.id);
    let bundle = Bundle::new(store.root(), &c.id);
    let _ = bundle.unmount();
    if c.config.auto_remove {
        let _ = bundle.remove();
        let _ = state::delete(store, &c.id);
        let _ = crate::volumes::release(store, &c.id);
        let _ = crate::volumes::remove_anonymous(store, &c.config);
    }
}

/// Remove container directories that have no row (crash between mkdir and insert) and are
/// older than a minute (a concurrent `create` may be between mkdir and insert).
///
/// Errors: [`crate::EngineError::Db`] when the rows cannot be read; removals are best effort.
pub fn sweep(store: &Store) -> Result<()> {
    let dir = store.root().join("containers");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    crate::exits::sweep(store.root());
    let known: HashSet<String> = state::all(store)?.into_iter().map(|c| c.id).collect();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.len() == 64 && !known.contains(&name) {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(60))
                .unwrap_or(false);
            if old {
                let _ = Bundle::new(store.root(), &name).remove();
            }
        }
    }
    Ok(())
}
