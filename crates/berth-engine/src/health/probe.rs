//! One probe of a running container (`berth __healthcheck ID`): the test command runs inside
//! the container's namespaces as `exec` does, its result is recorded, and a container newly
//! unhealthy is stopped for its restart policy when asked ([`HealthConfig::restart_unhealthy`]).

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use berth_store::Store;

use super::status::now_rfc3339;
use super::{get, record, HealthConfig, HealthResult};
use crate::runtime::{ExecHandle, StdioFds};
use crate::state::{self, State};
use crate::{EngineError, Result};

/// Bytes of probe output kept per result.
const MAX_OUTPUT: usize = 4096;

/// `berth __healthcheck ID`: run one probe of a running container and record its result.
/// Returns 0 when the container is healthy afterwards, 1 when not, 2 when no probe ran (not
/// running, no check).
///
/// Errors: [`EngineError::Db`] when the container or health rows cannot be read or written;
/// failures of the probe itself are recorded as a result (exit code -1), not returned.
pub fn probe(store: &Store, id: &str) -> Result<i32> {
    let Some(c) = state::get(store, id)? else {
        return Ok(2);
    };
    let Some(cfg) = c.config.healthcheck.clone() else {
        return Ok(2);
    };
    if c.state != State::Running || !state::monitor_alive(&c) {
        return Ok(2);
    }
    let start = now_rfc3339();
    let (exit_code, output) = match run_probe(store, &c, &cfg) {
        Ok(r) => r,
        Err(e) => (-1, format!("cannot run the health check: {e}")),
    };
    // The container may have stopped meanwhile: then the result does not matter.
    match state::get(store, id)? {
        Some(now) if now.state == State::Running && now.started_at == c.started_at => {}
        _ => return Ok(2),
    }
    let before = get(store, id)?.map(|h| h.status);
    let status = record(
        store,
        id,
        &cfg,
        c.started_at.as_deref(),
        HealthResult {
            start,
            end: now_rfc3339(),
            exit_code,
            output,
        },
    )?;
    if before.as_deref() != Some(status.as_str()) {
        state::event(store, &c, &format!("health_status: {status}"), &[]);
        // Shared host ports (compose replicas) send new connections to healthy members only.
        if status == "healthy" || status == "unhealthy" {
            if let Err(e) = berth_net::set_port_backend(store, id, status == "healthy") {
                tracing::warn!("container {}: shared ports: {e}", c.name);
            }
        }
        if status == "unhealthy" && cfg.restart_unhealthy {
            restart_unhealthy(&crate::host::Host::real(), store, &c)?;
        }
    }
    Ok(if status == "healthy" { 0 } else { 1 })
}

/// The container `c` (running, as of its latest start) turned unhealthy: when its restart
/// policy would restart it after a failure (`always`, `unless-stopped`, `on-failure` with
/// retries left; not after `stop`), send its stop signal, and SIGKILL once its stop timeout
/// has passed without the container exiting, so that its monitor applies the policy. Returns
/// whether it was stopped (false: the policy does not allow a restart, or it is no longer
/// running). `on-failure` restarts it only if it exits non-zero (a signal gives 128+N).
///
/// Errors: [`EngineError`] from the store.
pub fn restart_unhealthy(
    host: &crate::host::Host,
    store: &Store,
    c: &state::Container,
) -> Result<bool> {
    // As it is now (a stop may have been requested meanwhile), if still the same run.
    let c = match state::get(store, &c.id)? {
        Some(now) if now.state == State::Running && now.started_at == c.started_at => now,
        _ => return Ok(false),
    };
    let c = &c;
    let restarts = u32::try_from(c.restart_count).unwrap_or(u32::MAX);
    // 137 (SIGKILL) stands for "exited because it was stopped": a failure.
    if !c
        .config
        .restart
        .should_restart(137, restarts, c.stop_requested)
    {
        return Ok(false);
    }
    let same_run = |store: &Store| -> Result<bool> {
        Ok(matches!(state::get(store, &c.id)?,
            Some(now) if now.state == State::Running && now.started_at == c.started_at))
    };
    let sig = crate::config::parse_signal(&c.config.stop_signal).unwrap_or(libc::SIGTERM);
    tracing::info!(
        "container {} is unhealthy: stopping it for its restart policy",
        c.name
    );
    if crate::ops::kill_with(host, store, c, sig).is_err() {
        return Ok(false);
    }
    let end = Instant::now() + Duration::from_secs(u64::from(c.config.stop_timeout));
    while Instant::now() < end {
        if !same_run(store)? {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if same_run(store)? {
        let _ = crate::ops::kill_with(host, store, c, libc::SIGKILL);
    }
    Ok(true)
}

/// Run the test command in the container; (exit code, output). A timeout kills the probe and
/// gives -1.
fn run_probe(store: &Store, c: &state::Container, cfg: &HealthConfig) -> Result<(i64, String)> {
    let bundle = crate::rootfs::Bundle::new(store.root(), &c.id);
    let spec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(bundle.config()).map_err(|e| EngineError::io(bundle.config(), e))?,
    )
    .map_err(|e| EngineError::Other(format!("container spec: {e}")))?;
    let mut process = spec["process"].clone();
    process["args"] = serde_json::json!(cfg.argv());
    process["terminal"] = serde_json::json!(false);
    let pfile = bundle
        .dir
        .join(format!("health-{:08x}.json", rand::random::<u32>()));
    berth_store::write_replace(&pfile, &serde_json::to_vec(&process).unwrap_or_default())?;
    struct Rm<'a>(&'a Path);
    impl Drop for Rm<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    let _rm = Rm(&pfile);

    let (r, w): (OwnedFd, OwnedFd) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| EngineError::Other(format!("pipe: {e}")))?;
    let w2 = w
        .try_clone()
        .map_err(|e| EngineError::Other(format!("dup: {e}")))?;
    let null = std::fs::File::open("/dev/null").map_err(|e| EngineError::io("/dev/null", e))?;
    let stdio = StdioFds {
        stdin: Some(null.into()),
        stdout: Some(w),
        stderr: Some(w2),
    };
    // Children whose runtime parent exits are reparented to us, so we can wait for them.
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag only.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let runtime = crate::runtime::open(store.root(), c.config.runtime.as_deref())?;
    let handle = runtime.exec(&c.id, &pfile, stdio, None)?;
    let (pid, mut child) = match handle {
        ExecHandle::Pid(p) => (p, None),
        ExecHandle::Child(ch) => (i32::try_from(ch.id()).unwrap_or(0), Some(ch)),
    };
    crate::fdio::set_nonblocking(r.as_raw_fd());
    let mut f = std::fs::File::from(r);
    let deadline = Instant::now() + cfg.timeout();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let mut timed_out = false;
    let mut status: Option<i64> = None;
    loop {
        // Read what is there (keeping at most MAX_OUTPUT bytes, draining the rest).
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = MAX_OUTPUT.saturating_sub(out.len());
                    out.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(_) => break,
            }
        }
        if status.is_none() {
            status = match &mut child {
                Some(ch) => ch.try_wait().ok().flatten().map(|s| {
                    use std::os::unix::process::ExitStatusExt;
                    s.code()
                        .map(i64::from)
                        .unwrap_or_else(|| 128 + i64::from(s.signal().unwrap_or(0)))
                }),
                None => wait_nohang(pid),
            };
        }
        if status.is_some() {
            // Drain anything written just before the exit.
            if let Ok(n) = f.read(&mut buf) {
                let room = MAX_OUTPUT.saturating_sub(out.len());
                out.extend_from_slice(&buf[..n.min(room)]);
            }
            break;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            // SAFETY: kill(2) has no memory effects; pid is our child (or its runtime).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            if let Some(ch) = &mut child {
                let _ = ch.wait();
            } else {
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if timed_out {
        return Ok((
            -1,
            format!(
                "Health check exceeded timeout ({}s)",
                cfg.timeout().as_secs_f64()
            ),
        ));
    }
    Ok((
        status.unwrap_or(-1),
        String::from_utf8_lossy(&out).into_owned(),
    ))
}

/// Non-blocking wait for child `pid`: its Docker-style exit code once it has exited.
fn wait_nohang(pid: i32) -> Option<i64> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    match waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, c)) => Some(i64::from(c)),
        Ok(WaitStatus::Signaled(_, s, _)) => Some(128 + i64::from(s as i32)),
        Ok(_) => None,
        Err(_) => Some(-1),
    }
}
