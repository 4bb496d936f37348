//! Container lifecycle operations, called by the CLI (and later the API and compose front
//! ends): one module per step, like the OCI lifecycle.
//!
//! - [`create`](create()): the row and the bundle directory; nothing runs.
//! - [`start`](start()): rootfs, network, spec, then the monitor.
//! - [`stop`](stop()), [`kill`](kill()), [`wait`](wait()): signals and waiting for the recorded exit.
//! - [`remove`](remove()): release everything and forget the container.
//! - [`reconcile`](reconcile()): containers whose monitor died are recorded as exited.
//! - [`update`](update()): new cgroup limits and restart policy, running or not.
//! - [`connect_network`], [`disconnect_network`]: a container's networks, running or not.
//!
//! Each public operation uses the real host ([`crate::host::Host::real`]); the `*_with`
//! variants take the host services as trait objects, so tests run them against fakes.

mod create;
mod files;
mod network;
mod pause;
mod reconcile;
mod remove;
mod rename;
mod start;
mod stop;
mod update;

pub use crate::paths::cgroup_parent;
pub use create::{create, resolve_args, CreateRequest};
pub use files::{
    base_name as files_base_name, contents_only as files_contents_only, copy_in, copy_in_target,
    copy_out, diff, export, host_tar, in_container_root, lifetime_cpu_percent, stats, stats_many,
    top, Change, CopyInOptions, Stats,
};
pub use network::{connect_network, disconnect_network};
pub use pause::{
    is_paused, is_paused_with, pause, pause_with, thaw_if_frozen, unpause, unpause_with,
};
pub use reconcile::{reconcile, reconcile_with, reconciled_rows, reconciled_rows_with, sweep};
pub use remove::{remove, remove_with};
pub use rename::rename;
pub use start::{
    find_init, start, start_attached_to, start_attached_tty, wait_attached, Attach, AttachStdio,
    Started,
};
pub use stop::{kill, kill_with, stop, stop_with, wait};
pub use update::{update, update_with, UpdateRequest};

#[cfg(test)]
mod tests;
