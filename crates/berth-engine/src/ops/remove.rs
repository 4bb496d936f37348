//! `rm`: release everything a container holds and forget it.

use std::time::Duration;

use berth_store::Store;

use super::reconcile::{reconcile_one, release_runtime};
use super::stop::wait_state;
use crate::host::Host;
use crate::rootfs::Bundle;
use crate::state::{self, Container};
use crate::{EngineError, Result};

/// Remove a stopped container (or, with `force`, kill it first): network, runtime state,
/// cgroups, mounts, directory, row.
///
/// Errors: [`EngineError::Other`] if it runs and `force` is false; filesystem errors removing
/// its directory.
pub fn remove(store: &Store, c: &Container, force: bool) -> Result<()> {
    remove_with(&Host::real(), store, c, force)
}

/// [`remove`] with the given host services.
///
/// Errors: as [`remove`].
pub fn remove_with(host: &Host, store: &Store, c: &Container, force: bool) -> Result<()> {
    let fresh = state::get(store, &c.id)?.ok_or_else(|| EngineError::NotFound(c.name.clone()))?;
    if fresh.state.is_active() && state::monitor_alive(&fresh) {
        if !force {
            return Err(EngineError::Other(format!(
                "cannot remove container {}: it is running; stop it first or use rm -f",
                c.name
            )));
        }
        state::request_stop(store, &c.id)?;
        if let Some(pid) = fresh.pid {
            let _ = host.signals.signal_container(pid, &c.id, libc::SIGKILL);
        }
        // A paused container gets the SIGKILL only when thawed (Docker thaws on kill too).
        super::thaw_if_frozen(host, &fresh);
        // Tearing down beside a monitor that is still releasing the container races it
        // (mounts, files in the directory): refuse instead, as Docker's rm -f does when the
        // kill does not take.
        if !wait_state(host, store, &c.id, Duration::from_secs(10))? {
            return Err(EngineError::Other(format!(
                "cannot remove container {}: it did not stop within 10 s of SIGKILL; try again",
                c.name
            )));
        }
    } else if fresh.state.is_active() {
        reconcile_one(host, store, &fresh);
    }
    state::mark_removing(store, &c.id)?;
    let _ = host.network.teardown(store, &c.id);
    release_runtime(host, store, &fresh);
    Bundle::new(store.root(), &c.id).remove()?;
    state::delete(store, &c.id)?;
    state::event(store, c, "destroy", &[]);
    let _ = crate::health::forget(store, &c.id);
    crate::volumes::release(store, &c.id)
}
