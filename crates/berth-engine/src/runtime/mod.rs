//! OCI runtimes: the builtin one (youki's libcontainer, in-process) and any OCI runtime binary
//! (`runc`, `crun`, `youki`, `runsc`, …) driven through its CLI.
//!
//! The builtin runtime clones without exec, so it must only be used from a single-threaded
//! process: the monitor (`berth __monitor`) or the CLI before any async runtime exists.

mod binary;
mod builtin;
pub mod builtin_bundle;
mod console;
pub mod fake;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub use binary::BinaryRuntime;
pub use builtin::BuiltinRuntime;
pub use builtin_bundle::write_builtin_bundle;
pub use console::ConsoleSocket;

use crate::{EngineError, Result};

/// Standard streams for a container process; `None` means the runtime's own stream.
#[derive(Debug, Default)]
pub struct StdioFds {
    /// The process's fd 0.
    pub stdin: Option<OwnedFd>,
    /// The process's fd 1.
    pub stdout: Option<OwnedFd>,
    /// The process's fd 2.
    pub stderr: Option<OwnedFd>,
}

/// An OCI runtime, chosen per container at run time ([`open`]): the builtin libcontainer, an
/// OCI runtime binary, or [`fake::FakeRuntime`] in tests.
///
/// Methods follow the OCI runtime lifecycle (`create`, `start`, `delete`) plus `exec`. A
/// runtime only manages its own state: the caller removes the container's cgroups
/// ([`crate::cgroups::Cgroups::remove`]) after `delete`.
pub trait Runtime: std::fmt::Debug {
    /// Short name for messages (`builtin`, `runc`, …).
    fn name(&self) -> &str;

    /// Create container `id` from the bundle directory (its `config.json`), with the init
    /// waiting for `start`; returns the init's host pid. `console_socket` receives the pty
    /// master when the spec asks for a terminal.
    ///
    /// Errors: [`EngineError::Runtime`] with the runtime's message.
    fn create(
        &self,
        id: &str,
        bundle: &Path,
        stdio: StdioFds,
        console_socket: Option<&Path>,
    ) -> Result<i32>;

    /// Let the created container run its process.
    fn start(&self, id: &str) -> Result<()>;

    /// Release the runtime state of a stopped container. Idempotent: a container the runtime
    /// does not know is not an error.
    fn delete(&self, id: &str) -> Result<()>;

    /// Start an extra process (described by an OCI `process` JSON file) in a running
    /// container.
    fn exec(
        &self,
        id: &str,
        process_json: &Path,
        stdio: StdioFds,
        console_socket: Option<&Path>,
    ) -> Result<ExecHandle>;
}

/// Whether a container naming runtime `name` uses the builtin one (`None`, `""`, `builtin`,
/// `berth`, `libcontainer`).
pub fn is_builtin(name: Option<&str>) -> bool {
    matches!(
        name,
        None | Some("") | Some("builtin") | Some("berth") | Some("libcontainer")
    )
}

/// The runtime named `name`: `None`, `""`, `builtin`, `berth` or `libcontainer` → the builtin
/// libcontainer; anything else → an OCI runtime binary found on `PATH` (or a path), with its
/// state under `run/<basename>` in the store.
///
/// Errors: [`EngineError::InvalidArgument`] when the binary is not found.
pub fn open(store_root: &Path, name: Option<&str>) -> Result<Box<dyn Runtime>> {
    match name {
        n if is_builtin(n) => Ok(Box::new(BuiltinRuntime::new(
            crate::paths::runtime_state_root(store_root, "libcontainer"),
        ))),
        None => unreachable!("no name is the builtin runtime"),
        Some(n) => {
            let path = find_in_path(n).ok_or_else(|| {
                EngineError::InvalidArgument(format!(
                    "runtime {n:?} not found: install it or give its full path to --runtime"
                ))
            })?;
            let base = Path::new(n)
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "oci".into());
            Ok(Box::new(BinaryRuntime::new(
                path,
                crate::paths::runtime_state_root(store_root, &base),
            )))
        }
    }
}

/// A running exec'd process: a pid to wait for, or the runtime binary proxying it.
#[derive(Debug)]
pub enum ExecHandle {
    /// The process's pid in the host's pid namespace (builtin runtime, or a runtime binary
    /// run with `--detach` for a terminal exec).
    Pid(i32),
    /// The runtime binary's `exec` child, which waits for the process and exits with its status.
    Child(std::process::Child),
}

pub(crate) fn read_pid(pid_file: &Path) -> Result<i32> {
    let s = std::fs::read_to_string(pid_file).map_err(|e| EngineError::io(pid_file, e))?;
    s.trim()
        .parse()
        .map_err(|_| EngineError::Runtime(format!("bad pid file {}", pid_file.display())))
}

/// Extract the human message from runc-style JSON log lines.
pub(crate) fn clean_runtime_message(s: &str) -> String {
    let mut msgs = Vec::new();
    for line in s.lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
            if let Some(m) = v.get("msg").and_then(|m| m.as_str()) {
                msgs.push(m.to_string());
                continue;
            }
        }
        if !line.trim().is_empty() {
            msgs.push(line.trim().to_string());
        }
    }
    msgs.last()
        .cloned()
        .unwrap_or_else(|| "the OCI runtime failed".into())
}

/// Find an executable by name on PATH (or accept a path).
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    let path = std::env::var("PATH")
        .unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into());
    path.split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}
