//! Paths and constants shared by the lifecycle modules, the monitor and the runtimes. This
//! module depends on nothing else in the crate, so any module may use it without a cycle.

use std::path::{Path, PathBuf};

/// Environment variable telling the monitor that fds 0-2 belong to an attached CLI.
pub const ATTACH_ENV: &str = "BERTH_MONITOR_ATTACHED";
/// Set for a monitor whose client relays the terminal: the pty's window size, `ROWSxCOLS`.
pub const WINSIZE_ENV: &str = "BERTH_MONITOR_WINSIZE";

/// Environment variable choosing where containers' cgroups go (default [`DEFAULT_CGROUP_PARENT`]).
pub const CGROUP_PARENT_ENV: &str = "BERTH_CGROUP_PARENT";

/// Default parent of containers' cgroups, relative to each cgroup hierarchy's root.
pub const DEFAULT_CGROUP_PARENT: &str = "/berth";

/// Supervisor flags: fds 0-2 belong to an attached CLI.
pub const FLAG_ATTACHED: u32 = 1;
/// Supervisor flags: forward fd 0 to the container's stdin.
pub const FLAG_STDIN: u32 = 2;
/// Supervisor flags: the container has a terminal (OUT_FD is the pty master).
pub const FLAG_TTY: u32 = 4;

/// Where the cgroups of new containers go (`BERTH_CGROUP_PARENT`, default `/berth`). Read only
/// when a container is created; afterwards its row keeps the path.
pub fn cgroup_parent() -> String {
    std::env::var(CGROUP_PARENT_ENV).unwrap_or_else(|_| DEFAULT_CGROUP_PARENT.into())
}

/// The cgroup path (OCI `cgroupsPath`) of container `id` under `parent`: `/<parent>/<id>`.
pub fn cgroup_path_for(parent: &str, id: &str) -> String {
    let parent = parent.trim_matches('/');
    if parent.is_empty() {
        format!("/{id}")
    } else {
        format!("/{parent}/{id}")
    }
}

/// Runtime state directory of the runtime named `name` (`run/<name>` under the store root).
pub fn runtime_state_root(store_root: &Path, name: &str) -> PathBuf {
    store_root.join("run").join(name)
}

/// Directory for short-lived sockets (console sockets) under the store root.
pub fn run_dir(store_root: &Path) -> PathBuf {
    store_root.join("run")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_paths_are_absolute_and_single_slashed() {
        assert_eq!(cgroup_path_for("/berth", "abc"), "/berth/abc");
        assert_eq!(cgroup_path_for("berth/", "abc"), "/berth/abc");
        assert_eq!(cgroup_path_for("/a/b/", "x"), "/a/b/x");
        assert_eq!(cgroup_path_for("/", "x"), "/x");
        assert_eq!(cgroup_path_for("", "x"), "/x");
    }
}
