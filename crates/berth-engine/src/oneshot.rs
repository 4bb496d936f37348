//! One-off processes in a root filesystem the caller prepared (image build steps): no
//! container row and no monitor. The caller mounts the root (an overlay of the layers so far
//! plus an upper directory it later turns into a layer), calls [`run`], and unmounts.
//!
//! The builtin runtime clones without exec, so the runtime is driven from a fresh
//! single-threaded helper process (`berth __oneshot`, entry point [`helper_main`]): the
//! caller may have threads.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Command, Stdio};

use berth_net::NetConfig;
use berth_store::Store;

use crate::config::ContainerConfig;
use crate::rootfs::{self, ExecCheck};
use crate::runtime::{Runtime, StdioFds};
use crate::{EngineError, Result};

/// What to run, and where.
#[derive(Debug)]
pub struct OneshotRequest<'a> {
    /// Unique id: names the runtime state, the cgroup and the network sandbox.
    pub id: &'a str,
    /// A directory the caller owns and removes afterwards; `config.json`, `hosts`,
    /// `resolv.conf` and `hostname` are written there.
    pub dir: &'a Path,
    /// The mounted root filesystem.
    pub rootfs: &'a Path,
    /// Process, user, working directory, network mode, bind and tmpfs mounts, runtime
    /// (`args` must not be empty). Restart policy, ports and `auto_remove` are ignored.
    pub config: &'a ContainerConfig,
    /// Receives the process's standard output and standard error.
    pub output: OwnedFd,
}

/// Run the process to completion and return its exit status (0-255, 128+N for signal N).
///
/// Errors: the command is missing or not executable in the root (127/126 as
/// [`EngineError::exit_code`] says), networking or the runtime failed (a `Runtime` error whose
/// text comes from the helper). Network and runtime state are released before returning.
pub fn run(store: &Store, req: OneshotRequest<'_>) -> Result<i32> {
    let cfg = req.config;
    let Some(arg0) = cfg.args.first() else {
        return Err(EngineError::InvalidArgument("no command to run".into()));
    };
    let user = crate::user::resolve(req.rootfs, &cfg.user, &cfg.group_add)?;
    // A command inside a bind mount (a heredoc script) cannot be checked before the mount.
    let in_bind = cfg
        .binds
        .iter()
        .any(|b| arg0.starts_with(&format!("{}/", b.destination.trim_end_matches('/'))));
    match rootfs::check_executable(req.rootfs, arg0, &cfg.env, &cfg.working_dir) {
        _ if in_bind => {}
        ExecCheck::Ok => {}
        ExecCheck::NotFound => return Err(EngineError::CommandNotFound(arg0.clone())),
        ExecCheck::NotExecutable => return Err(EngineError::NotExecutable(arg0.clone())),
    }
    let net_cfg = NetConfig {
        container_id: req.id.to_string(),
        container_name: format!("build-{}", &req.id[..req.id.len().min(12)]),
        hostname: cfg.hostname.clone(),
        domainname: cfg.domainname.clone(),
        mode: cfg.network.clone(),
        publish: Vec::new(),
        publish_all: Vec::new(),
        dns: cfg.dns.clone(),
        dns_search: cfg.dns_search.clone(),
        dns_options: cfg.dns_options.clone(),
        add_hosts: cfg.add_hosts.clone(),
        ipv4_address: String::new(),
        mac_address: String::new(),
        port_group: None,
        port_wait_healthy: false,
    };
    let net = berth_net::setup(store, &net_cfg, req.dir)?;
    let res = (|| {
        let spec = crate::spec::build(
            cfg,
            &crate::spec::SpecInputs {
                id: req.id,
                rootfs: req.rootfs,
                user: &user,
                net: &net,
                join_netns: None,
                cgroup_parent: &crate::paths::cgroup_parent(),
                init_binary: None,
                join_pidns: None,
                join_ipc: None,
                shm_source: None,
            },
        )?;
        let mut spec = spec;
        rootfs::secure_mounts(req.rootfs, &mut spec)?;
        crate::apparmor::ensure_loaded(
            spec.process()
                .as_ref()
                .and_then(|p| p.apparmor_profile().as_deref()),
        )?;
        let bytes =
            serde_json::to_vec_pretty(&spec).map_err(|e| EngineError::Other(e.to_string()))?;
        berth_store::write_replace(&req.dir.join("config.json"), &bytes)?;
        if crate::runtime::is_builtin(cfg.runtime.as_deref()) {
            crate::runtime::write_builtin_bundle(req.dir, &spec)?;
        }
        let r = spawn_helper(store, req.id, req.dir, cfg.runtime.as_deref(), req.output);
        // The read-only view of berth's binary the helper ran from (CVE-2019-5736).
        let exe = crate::exeguard::protected_dir(req.dir);
        while rootfs::is_mountpoint(&exe) {
            if rustix::mount::unmount(&exe, rustix::mount::UnmountFlags::DETACH).is_err() {
                break;
            }
        }
        r
    })();
    if let Err(e) = berth_net::teardown(store, req.id) {
        tracing::warn!("network teardown of build step {}: {e}", req.id);
    }
    res
}

/// Exit status the helper uses when the runtime itself failed (its message is on the status
/// pipe, not in the output).
const HELPER_FAILED: i32 = 125;

fn spawn_helper(
    store: &Store,
    id: &str,
    dir: &Path,
    runtime: Option<&str>,
    output: OwnedFd,
) -> Result<i32> {
    // The step's processes are clones of the helper: run it from a read-only view of berth's
    // binary, so a build step can never rewrite it (CVE-2019-5736).
    let exe = crate::exeguard::protected_exe(dir);
    let errfile = dir.join("oneshot.err");
    let _ = std::fs::remove_file(&errfile);
    let out2 = output
        .try_clone()
        .map_err(|e| EngineError::Other(format!("dup: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--root")
        .arg(store.root())
        .arg("__oneshot")
        .arg(id)
        .arg(dir);
    if let Some(r) = runtime {
        cmd.arg("--runtime").arg(r);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(output))
        .stderr(Stdio::from(out2));
    let status = cmd
        .status()
        .map_err(|e| EngineError::Other(format!("starting the build step helper: {e}")))?;
    let code = status.code().unwrap_or_else(|| {
        128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
    });
    if code == HELPER_FAILED {
        if let Ok(msg) = std::fs::read_to_string(&errfile) {
            if !msg.trim().is_empty() {
                return Err(EngineError::Runtime(msg.trim().to_string()));
            }
        }
    }
    Ok(code)
}

/// Entry point of `berth __oneshot ID DIR [--runtime R]`: create and start the container
/// described by `DIR/config.json` with this process's stdout/stderr, wait for its init, release
/// the runtime state, and return the init's exit status. A runtime failure is written to
/// `DIR/oneshot.err` and gives status 125.
pub fn helper_main(root: &Path, id: &str, dir: &Path, runtime: Option<&str>) -> i32 {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag and has no memory effects.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    match helper(root, id, dir, runtime) {
        Ok(code) => code,
        Err(e) => {
            let _ = std::fs::write(dir.join("oneshot.err"), e.to_string());
            HELPER_FAILED
        }
    }
}

fn helper(root: &Path, id: &str, dir: &Path, runtime: Option<&str>) -> Result<i32> {
    let rt = crate::runtime::open(root, runtime)?;
    let dup = |fd: i32| -> Result<OwnedFd> {
        // SAFETY: fds 1 and 2 are open for the whole life of this process; we only borrow them.
        let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        b.try_clone_to_owned()
            .map_err(|e| EngineError::Other(format!("dup: {e}")))
    };
    let null = File::open("/dev/null").map_err(|e| EngineError::io("/dev/null", e))?;
    let stdio = StdioFds {
        stdin: Some(null.into()),
        stdout: Some(dup(1)?),
        stderr: Some(dup(2)?),
    };
    let _ = nix::sys::signal::SigSet::all().thread_unblock();
    let res = (|| {
        let pid = rt.create(id, dir, stdio, None)?;
        rt.start(id)?;
        Ok::<i32, EngineError>(pid)
    })();
    let pid = match res {
        Ok(pid) => pid,
        Err(e) => {
            release(rt.as_ref(), id);
            return Err(e);
        }
    };
    let mut code = None;
    // Reap until the init exits (orphans of the container are reaped on the way).
    while code.is_none() {
        let mut status = 0;
        // SAFETY: waitpid with a valid out-pointer.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            break;
        }
        if r == pid {
            code = Some(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                continue;
            });
        }
    }
    release(rt.as_ref(), id);
    code.ok_or_else(|| EngineError::Runtime("lost track of the build step's process".into()))
}

/// Release what build step `id` left behind when the process that ran it died (`kill -9`
/// of `berth build`): its processes (killed through its cgroup under `cgroup_parent`, the
/// value [`crate::cgroup_parent`] had for that process), its runtime state and cgroups, its
/// network sandbox (namespace, veth, addresses) and the read-only view of berth's binary
/// under `dir`. Idempotent and best effort: failures are logged and the rest still runs.
pub fn abandon(store: &Store, id: &str, dir: &Path, runtime: Option<&str>, cgroup_parent: &str) {
    use crate::cgroups::Cgroups;
    let path = crate::paths::cgroup_path_for(cgroup_parent, id);
    let cg = crate::cgroups::CgroupFs::host();
    if !cg.kill_all(&path) {
        tracing::warn!("build step {id}: processes of cgroup {path} survive SIGKILL");
    }
    match crate::runtime::open(store.root(), runtime) {
        Ok(rt) => {
            if let Err(e) = rt.delete(id) {
                tracing::warn!("runtime delete of build step {id}: {e}");
            }
        }
        Err(e) => tracing::warn!("runtime of build step {id}: {e}"),
    }
    cg.remove(&path);
    if let Err(e) = berth_net::teardown(store, id) {
        tracing::warn!("network teardown of build step {id}: {e}");
    }
    let exe = crate::exeguard::protected_dir(dir);
    while rootfs::is_mountpoint(&exe) {
        if rustix::mount::unmount(&exe, rustix::mount::UnmountFlags::DETACH).is_err() {
            break;
        }
    }
}

/// Delete the runtime state and the cgroups of build step `id` (best effort).
fn release(rt: &dyn Runtime, id: &str) {
    use crate::cgroups::Cgroups;
    let _ = rt.delete(id);
    // The spec put the step under the cgroup parent of this process's environment.
    let path = crate::paths::cgroup_path_for(&crate::paths::cgroup_parent(), id);
    crate::cgroups::CgroupFs::host().remove(&path);
}
