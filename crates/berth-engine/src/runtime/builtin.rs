//! The builtin runtime: youki's libcontainer, in-process.

use std::path::{Path, PathBuf};

use super::{builtin_bundle, ExecHandle, Runtime, StdioFds};
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
        let mut b = builder(state_root, id, stdio, console_socket)?;
        // The builtin runtime's copy of the spec, when there is one (see
        // builtin_bundle::write_builtin_bundle), and the init's own steps next to it.
        let own = builtin_bundle::builtin_bundle(bundle);
        let bundle = if own.join("config.json").exists() {
            own.as_path()
        } else {
            bundle
        };
        if let Some(steps) = builtin_bundle::read_init_steps(bundle)? {
            b = b.with_executor(InitExecutor::new(bundle, steps)?);
        }
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
        let mut b = builder(&self.state_root, id, stdio, console_socket)?;
        // With berth's compiled filter, the exec'd process loads it too (its spec has none).
        let c =
            libcontainer::container::Container::load(self.state_root.join(id)).map_err(rt_err)?;
        let mut process_json = process_json.to_path_buf();
        let text = std::fs::read(&process_json).map_err(|e| EngineError::io(&process_json, e))?;
        let mut p: oci_spec::runtime::Process = serde_json::from_slice(&text)
            .map_err(|e| EngineError::Runtime(format!("{}: {e}", process_json.display())))?;
        let mut changed = builtin_bundle::explicit_capabilities(&mut p);
        let steps = builtin_bundle::read_init_steps(c.bundle())?;
        if let Some(filter) = steps.and_then(|s| s.filter) {
            // Without no_new_privs loading the filter needs CAP_SYS_ADMIN.
            let caps = if p.no_new_privileges() == Some(true) {
                None
            } else {
                builtin_bundle::keep_admin(&mut p)
            };
            changed |= caps.is_some();
            let steps = builtin_bundle::InitSteps {
                filter: Some(filter),
                readonly_cgroups: false,
                capabilities: caps,
            };
            b = b.with_executor(InitExecutor::new(c.bundle(), steps)?);
        }
        if changed {
            let own = process_json.with_extension("builtin.json");
            let bytes = serde_json::to_vec(&p).map_err(|e| EngineError::Other(e.to_string()))?;
            berth_store::write_replace(&own, &bytes)?;
            process_json = own;
        }
        let pid = b
            .as_tenant()
            .with_process(Some(process_json.as_path()))
            .with_detach(true)
            .build();
        if changed {
            // Read by the builder; the caller removes its own file.
            let _ = std::fs::remove_file(&process_json);
        }
        Ok(ExecHandle::Pid(pid.map_err(rt_err)?.as_raw()))
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

/// The container init's last steps (see [`builtin_bundle::InitSteps`]): make the cgroup
/// hierarchies read-only, load berth's compiled filter, drop to the real capabilities when the
/// runtime kept `CAP_SYS_ADMIN` for those steps, then run the process as libcontainer's
/// default executor does.
#[derive(Clone)]
struct InitExecutor {
    prog: Option<crate::seccomp_bpf::Program>,
    readonly_cgroups: bool,
    caps: Option<oci_spec::runtime::LinuxCapabilities>,
}

impl InitExecutor {
    /// The executor for the steps read from bundle directory `dir` (named in errors).
    fn new(dir: &Path, steps: builtin_bundle::InitSteps) -> Result<InitExecutor> {
        let prog = match &steps.filter {
            None => None,
            Some(f) => Some(f.program().ok_or_else(|| {
                EngineError::Runtime(format!(
                    "{}: the seccomp program does not match its digest: start the container again to rewrite it",
                    dir.join(builtin_bundle::INIT_FILE).display()
                ))
            })?),
        };
        Ok(InitExecutor {
            prog,
            readonly_cgroups: steps.readonly_cgroups,
            caps: steps.capabilities,
        })
    }
}

impl libcontainer::workload::Executor for InitExecutor {
    fn exec(
        &self,
        spec: &oci_spec::runtime::Spec,
    ) -> std::result::Result<(), libcontainer::workload::ExecutorError> {
        use libcontainer::workload::ExecutorError;
        if self.readonly_cgroups {
            builtin_bundle::readonly_cgroup_hierarchies().map_err(|e| {
                ExecutorError::Other(format!("making /sys/fs/cgroup read-only: {e}"))
            })?;
        }
        if let Some(prog) = &self.prog {
            crate::seccomp_bpf::load(prog)
                .map_err(|e| ExecutorError::Other(format!("loading the seccomp filter: {e}")))?;
        }
        if let Some(caps) = &self.caps {
            let sys = libcontainer::syscall::syscall::create_syscall();
            libcontainer::capabilities::drop_privileges(caps, sys.as_ref())
                .map_err(|e| ExecutorError::Other(format!("dropping capabilities: {e}")))?;
        }
        libcontainer::workload::default::DefaultExecutor {}.exec(spec)
    }

    fn validate(
        &self,
        spec: &oci_spec::runtime::Spec,
    ) -> std::result::Result<(), libcontainer::workload::ExecutorValidationError> {
        libcontainer::workload::default::DefaultExecutor {}.validate(spec)
    }
}

fn rt_err(e: libcontainer::error::LibcontainerError) -> EngineError {
    EngineError::Runtime(e.to_string())
}
