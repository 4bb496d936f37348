//! `pause`/`unpause`: freeze and thaw a running container's processes through the cgroup
//! freezer (v1 `freezer.state`, v2 `cgroup.freeze`). Paused is not a stored state: it is read
//! from the freezer, so it is right whatever froze or thawed the cgroup.

use berth_store::Store;

use crate::host::Host;
use crate::state::{Container, State};
use crate::{EngineError, Result};

/// Whether the container is running and its cgroup frozen.
pub fn is_paused(c: &Container) -> bool {
    is_paused_with(&Host::real(), c)
}

/// [`is_paused`] with the given host services.
pub fn is_paused_with(host: &Host, c: &Container) -> bool {
    c.state == State::Running && host.cgroups.is_frozen(&c.cgroup_path())
}

/// Freeze every process of a running container. Errors: not running, already paused, or
/// the freezer failed.
pub fn pause(store: &Store, c: &Container) -> Result<()> {
    pause_with(&Host::real(), store, c)
}

/// [`pause`] with the given host services.
///
/// Errors: as [`pause`].
pub fn pause_with(host: &Host, store: &Store, c: &Container) -> Result<()> {
    if c.state != State::Running {
        return Err(EngineError::NotRunning(c.name.clone()));
    }
    if host.cgroups.is_frozen(&c.cgroup_path()) {
        return Err(EngineError::InvalidArgument(format!(
            "container {} is already paused; unpause it first",
            c.name
        )));
    }
    host.cgroups
        .set_frozen(&c.cgroup_path(), true)
        .map_err(|e| EngineError::Runtime(format!("cannot pause container {}: {e}", c.name)))?;
    crate::state::event(store, c, "pause", &[]);
    Ok(())
}

/// Thaw a paused container. Errors: not paused, or the freezer failed.
pub fn unpause(store: &Store, c: &Container) -> Result<()> {
    unpause_with(&Host::real(), store, c)
}

/// [`unpause`] with the given host services.
///
/// Errors: as [`unpause`].
pub fn unpause_with(host: &Host, store: &Store, c: &Container) -> Result<()> {
    if !is_paused_with(host, c) {
        return Err(EngineError::InvalidArgument(format!(
            "container {} is not paused",
            c.name
        )));
    }
    host.cgroups
        .set_frozen(&c.cgroup_path(), false)
        .map_err(|e| EngineError::Runtime(format!("cannot unpause container {}: {e}", c.name)))?;
    crate::state::event(store, c, "unpause", &[]);
    Ok(())
}

/// Thaw the container if it is frozen (after a signal, so that a stop or kill takes effect
/// as Docker's does on a paused container). Best effort.
pub fn thaw_if_frozen(host: &Host, c: &Container) {
    if host.cgroups.is_frozen(&c.cgroup_path()) {
        let _ = host.cgroups.set_frozen(&c.cgroup_path(), false);
    }
}
