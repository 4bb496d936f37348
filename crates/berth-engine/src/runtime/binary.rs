//! Any OCI runtime binary (`runc`, `crun`, `youki`, `runsc`, …) driven through its CLI.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{clean_runtime_message, read_pid, ExecHandle, Runtime, StdioFds};
use crate::{EngineError, Result};

/// An OCI runtime binary at `path`, with its state under `state_root` (its `--root`).
#[derive(Debug, Clone)]
pub struct BinaryRuntime {
    path: PathBuf,
    state_root: PathBuf,
}

impl Runtime for BinaryRuntime {
    fn name(&self) -> &str {
        self.path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("oci")
    }

    fn create(
        &self,
        id: &str,
        bundle: &Path,
        stdio: StdioFds,
        console_socket: Option<&Path>,
    ) -> Result<i32> {
        let (path, state_root) = (&self.path, &self.state_root);
        std::fs::create_dir_all(state_root).map_err(|e| EngineError::io(state_root, e))?;
        // Leftover state of a crashed run would make `create` fail.
        if state_root.join(id).exists() {
            self.delete(id)?;
        }
        let pid_file = bundle.join("init.pid");
        let _ = std::fs::remove_file(&pid_file);
        let errfile = bundle.join("runtime.log");
        let _ = std::fs::remove_file(&errfile);
        let mut cmd = Command::new(path);
        // The runtime's own messages go to a log file; the inherited stdio belongs to the
        // container.
        cmd.arg("--root")
            .arg(state_root)
            .arg("--log")
            .arg(&errfile)
            .arg("--log-format")
            .arg("json")
            .arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(&pid_file);
        if let Some(cs) = console_socket {
            cmd.arg("--console-socket").arg(cs);
        }
        cmd.arg(id);
        cmd.stdin(stdio.stdin.map(Stdio::from).unwrap_or(Stdio::null()));
        cmd.stdout(stdio.stdout.map(Stdio::from).unwrap_or(Stdio::null()));
        cmd.stderr(stdio.stderr.map(Stdio::from).unwrap_or(Stdio::null()));
        run_binary_create(cmd, &pid_file, &errfile)
    }

    fn start(&self, id: &str) -> Result<()> {
        run_tool(
            Command::new(&self.path)
                .arg("--root")
                .arg(&self.state_root)
                .args(["start", id]),
        )
    }

    fn delete(&self, id: &str) -> Result<()> {
        let _ = Command::new(&self.path)
            .arg("--root")
            .arg(&self.state_root)
            .args(["delete", "--force", id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        Ok(())
    }

    fn exec(
        &self,
        id: &str,
        process_json: &Path,
        stdio: StdioFds,
        console_socket: Option<&Path>,
    ) -> Result<ExecHandle> {
        let path = &self.path;
        let mut cmd = Command::new(path);
        cmd.arg("--root")
            .arg(&self.state_root)
            .arg("exec")
            .arg("--process")
            .arg(process_json);
        if let Some(cs) = console_socket {
            cmd.arg("--console-socket").arg(cs).arg("--detach");
            let pid_file = process_json.with_extension("pid");
            cmd.arg("--pid-file").arg(&pid_file).arg(id);
            cmd.stdin(Stdio::null());
            let out = cmd
                .output()
                .map_err(|e| EngineError::Runtime(format!("{}: {e}", path.display())))?;
            if !out.status.success() {
                return Err(EngineError::Runtime(
                    String::from_utf8_lossy(&out.stderr).trim().to_string(),
                ));
            }
            let pid = read_pid(&pid_file)?;
            return Ok(ExecHandle::Pid(pid));
        }
        cmd.arg(id);
        cmd.stdin(stdio.stdin.map(Stdio::from).unwrap_or(Stdio::inherit()));
        cmd.stdout(stdio.stdout.map(Stdio::from).unwrap_or(Stdio::inherit()));
        cmd.stderr(stdio.stderr.map(Stdio::from).unwrap_or(Stdio::inherit()));
        let child = cmd
            .spawn()
            .map_err(|e| EngineError::Runtime(format!("{}: {e}", path.display())))?;
        Ok(ExecHandle::Child(child))
    }
}

impl BinaryRuntime {
    /// The runtime binary `path` keeping state in `state_root`.
    pub fn new(path: PathBuf, state_root: PathBuf) -> Self {
        BinaryRuntime { path, state_root }
    }
}

fn run_binary_create(mut cmd: Command, pid_file: &Path, errfile: &Path) -> Result<i32> {
    let status = cmd
        .status()
        .map_err(|e| EngineError::Runtime(format!("running the OCI runtime: {e}")))?;
    if !status.success() {
        let mut msg = String::new();
        let _ = File::open(errfile).and_then(|mut f| f.read_to_string(&mut msg));
        return Err(EngineError::Runtime(clean_runtime_message(&msg)));
    }
    read_pid(pid_file)
}

fn run_tool(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| EngineError::Runtime(format!("running the OCI runtime: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(EngineError::Runtime(clean_runtime_message(
            &String::from_utf8_lossy(&out.stderr),
        )))
    }
}
