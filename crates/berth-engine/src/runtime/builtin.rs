//! The builtin runtime: youki's libcontainer, in-process.

use std::path::{Path, PathBuf};

use super::{ExecHandle, Runtime, StdioFds};
use crate::{EngineError, Result};

/// youki's libcontainer in this process, with its state under `state_root`.
#[derive(Debug, Clone)]
pub struct BuiltinRuntime {
    state_root: PathBuf,
}

impl Runtime for BuiltinRuntime {
    fn name(&self) -> &str {
        "builtin"
    }

    fn create(
        &self,
        id: &str,
        bundle: &Path,
        stdio: StdioFds,
        console_socket: Option<&Path>,
    ) -> Result<i32> {
        let state_root = &self.state_root;
        std::fs::create_dir_all(state_root).map_err(|e| EngineError::io(state_root, e))?;
        // A leftover state dir from a crashed run blocks re-creation.
        let _ = std::fs::remove_dir_all(state_root.join(id));
        let b = builder(state_root, id, stdio, console_socket)?;
        // The builtin runtime's copy of the spec, when there is one (see
        // seccomp::for_libcontainer).
        let own = crate::seccomp::builtin_bundle(bundle);
        let bundle = if own.join("config.json").exists() {
            own.as_path()
        } else {
            bundle
        };
        let c = b
            .as_init(bundle)
            .with_systemd(false)
            .with_detach(true)
            .build()
            .map_err(rt_err)?;
        c.pid()
            .map(|p| p.as_raw())
            .ok_or_else(|| EngineError::Runtime("runtime did not report a pid".into()))
    }

    fn start(&self, id: &str) -> Result<()> {
        let mut c =
            libcontainer::container::Container::load(self.state_root.join(id)).map_err(rt_err)?;
        c.start().map_err(rt_err)
    }

    fn delete(&self, id: &str) -> Result<()> {
        let dir = self.state_root.join(id);
        if !dir.exists() {
            return Ok(());
        }
        match libcontainer::container::Container::load(dir.clone()) {
            Ok(mut c) => {
                if let Err(e) = c.delete(true) {
                    tracing::warn!("runtime delete {id}: {e}");
                }
            }
            Err(e) => tracing::warn!("runtime state of {id}: {e}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }

    fn exec(
        &self,
        id: &str,
        process_json: &Path,
        stdio: StdioFds,
        console_socket: Option<&Path>,
    ) -> Result<ExecHandle> {
        let b = builder(&self.state_root, id, stdio, console_socket)?;
        let pid = b
            .as_tenant()
            .with_process(Some(process_json))
            .with_detach(true)
            .build()
            .map_err(rt_err)?;
        Ok(ExecHandle::Pid(pid.as_raw()))
    }
}

impl BuiltinRuntime {
    /// The builtin runtime keeping container state in `state_root/<id>`.
    pub fn new(state_root: PathBuf) -> Self {
        BuiltinRuntime { state_root }
    }
}

/// A libcontainer builder for container `id` with the given stdio and console socket.
fn builder(
    state_root: &Path,
    id: &str,
    stdio: StdioFds,
    console_socket: Option<&Path>,
) -> Result<libcontainer::container::builder::ContainerBuilder> {
    let mut b = libcontainer::container::builder::ContainerBuilder::new(
        id.to_string(),
        libcontainer::syscall::syscall::SyscallType::Linux,
    )
    .with_root_path(state_root.to_path_buf())
    .map_err(rt_err)?
    .with_console_socket(console_socket);
    if let Some(fd) = stdio.stdin {
        b = b.with_stdin(fd);
    }
    if let Some(fd) = stdio.stdout {
        b = b.with_stdout(fd);
    }
    if let Some(fd) = stdio.stderr {
        b = b.with_stderr(fd);
    }
    Ok(b)
}

fn rt_err(e: libcontainer::error::LibcontainerError) -> EngineError {
    EngineError::Runtime(e.to_string())
}
