//! OCI runtimes: the builtin one (youki's libcontainer, in-process) and any OCI runtime binary
//! (`runc`, `crun`, `youki`, `runsc`, …) driven through its CLI.
//!
//! The builtin runtime clones without exec, so it must only be used from a single-threaded
//! process: the monitor (`berth __monitor`) or the CLI before any async runtime exists.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{EngineError, Result};

/// Standard streams for a container process; `None` means the runtime's own stream.
#[derive(Debug, Default)]
pub struct StdioFds {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// Which runtime a container uses.
#[derive(Debug, Clone)]
pub enum Runtime {
    Builtin { state_root: PathBuf },
    Binary { path: PathBuf, state_root: PathBuf },
}

impl Runtime {
    /// `name` None or "builtin"/"berth" → libcontainer; otherwise a binary on PATH or a path.
    pub fn new(store_root: &Path, name: Option<&str>) -> Result<Runtime> {
        match name {
            None | Some("") | Some("builtin") | Some("berth") | Some("libcontainer") => {
                Ok(Runtime::Builtin {
                    state_root: store_root.join("run/libcontainer"),
                })
            }
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
                Ok(Runtime::Binary {
                    path,
                    state_root: store_root.join("run").join(base),
                })
            }
        }
    }

    /// Create the container (init process waiting for start); returns the init's host pid.
    pub fn create(
        &self,
        id: &str,
        bundle: &Path,
        stdio: StdioFds,
        console_socket: Option<&Path>,
    ) -> Result<i32> {
        match self {
            Runtime::Builtin { state_root } => {
                std::fs::create_dir_all(state_root).map_err(|e| EngineError::io(state_root, e))?;
                // A leftover state dir from a crashed run blocks re-creation.
                let _ = std::fs::remove_dir_all(state_root.join(id));
                let b = builtin_builder(state_root, id, stdio, console_socket)?;
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
            Runtime::Binary { path, state_root } => {
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
                // The runtime's own messages go to a log file; the inherited stdio belongs to
                // the container.
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
        }
    }

    /// Let the created container run its process.
    pub fn start(&self, id: &str) -> Result<()> {
        match self {
            Runtime::Builtin { state_root } => {
                let mut c = libcontainer::container::Container::load(state_root.join(id))
                    .map_err(rt_err)?;
                c.start().map_err(rt_err)
            }
            Runtime::Binary { path, state_root } => run_tool(
                Command::new(path)
                    .arg("--root")
                    .arg(state_root)
                    .args(["start", id]),
            ),
        }
    }

    /// Release runtime state (cgroups, state dir) of a stopped container. Idempotent.
    pub fn delete(&self, id: &str) -> Result<()> {
        let res = self.delete_state(id);
        // Whatever the runtime managed, no cgroup of this container may outlive it (its
        // state may already be gone after a crash, or it may have failed half-way).
        remove_cgroups(id);
        res
    }

    fn delete_state(&self, id: &str) -> Result<()> {
        match self {
            Runtime::Builtin { state_root } => {
                let dir = state_root.join(id);
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
            Runtime::Binary { path, state_root } => {
                let _ = Command::new(path)
                    .arg("--root")
                    .arg(state_root)
                    .args(["delete", "--force", id])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                Ok(())
            }
        }
    }

    /// Start an extra process (described by an OCI `process` JSON file) in a running container.
    /// Returns the pid, which is a child of the calling process.
    pub fn exec(
        &self,
        id: &str,
        process_json: &Path,
        stdio: StdioFds,
        console_socket: Option<&Path>,
    ) -> Result<ExecHandle> {
        match self {
            Runtime::Builtin { state_root } => {
                let b = builtin_builder(state_root, id, stdio, console_socket)?;
                let pid = b
                    .as_tenant()
                    .with_process(Some(process_json))
                    .with_detach(true)
                    .build()
                    .map_err(rt_err)?;
                Ok(ExecHandle::Pid(pid.as_raw()))
            }
            Runtime::Binary { path, state_root } => {
                let mut cmd = Command::new(path);
                cmd.arg("--root")
                    .arg(state_root)
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
    }
}

/// A running exec'd process: a pid to wait for, or the runtime binary proxying it.
#[derive(Debug)]
pub enum ExecHandle {
    Pid(i32),
    Child(std::process::Child),
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

fn read_pid(pid_file: &Path) -> Result<i32> {
    let s = std::fs::read_to_string(pid_file).map_err(|e| EngineError::io(pid_file, e))?;
    s.trim()
        .parse()
        .map_err(|_| EngineError::Runtime(format!("bad pid file {}", pid_file.display())))
}

/// Extract the human message from runc-style JSON log lines.
fn clean_runtime_message(s: &str) -> String {
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

/// Remove the (empty) cgroups of container `id` under berth's cgroup parent, v1 and v2.
fn remove_cgroups(id: &str) {
    let rel = format!("{}/{}", crate::cgroup_parent().trim_matches('/'), id);
    let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let mut dirs: Vec<PathBuf> = rd.flatten().map(|e| e.path().join(&rel)).collect();
    dirs.push(Path::new("/sys/fs/cgroup").join(&rel));
    for d in dirs {
        if d.is_dir() {
            // A cgroup dies only once its last process has: retry briefly.
            for _ in 0..20 {
                match std::fs::remove_dir(&d) {
                    Ok(()) => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(5))
                    }
                    Err(_) => break,
                }
            }
        }
    }
}

/// A libcontainer builder for container `id` with the given stdio and console socket.
fn builtin_builder(
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

/// A listening console socket: the runtime connects and sends the pty master.
#[derive(Debug)]
pub struct ConsoleSocket {
    pub path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn bind(dir: &Path) -> Result<ConsoleSocket> {
        let name = format!("cs-{:012x}.sock", rand::random::<u64>() & 0xffff_ffff_ffff);
        let mut path = dir.join(&name);
        if path.as_os_str().len() > 100 {
            path = std::env::temp_dir().join(name);
        }
        std::fs::create_dir_all(path.parent().unwrap_or(Path::new("/")))
            .map_err(|e| EngineError::io(&path, e))?;
        let listener = UnixListener::bind(&path).map_err(|e| EngineError::io(&path, e))?;
        Ok(ConsoleSocket { path, listener })
    }

    /// Wait for the runtime to send the pty master.
    pub fn receive(&self) -> Result<OwnedFd> {
        let (stream, _) = self
            .listener
            .accept()
            .map_err(|e| EngineError::io(&self.path, e))?;
        recv_fd(stream.as_raw_fd()).map_err(|e| EngineError::io(&self.path, e))
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn recv_fd(sock: RawFd) -> std::io::Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(std::io::Error::from)?;
    for c in msg.cmsgs().map_err(std::io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                for &extra in &fds[1..] {
                    // SAFETY: the kernel just gave us these descriptors; we own and close them.
                    drop(unsafe { OwnedFd::from_raw_fd(extra) });
                }
                // SAFETY: the kernel installed this descriptor for us via SCM_RIGHTS; nothing
                // else owns it.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(std::io::Error::other(
        "the runtime sent no terminal on the console socket",
    ))
}
