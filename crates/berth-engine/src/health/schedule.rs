//! The probe schedule of the in-process monitor loop, used when `berth-supervise` is not
//! installed: the same schedule `berth-supervise` keeps.

use std::path::Path;
use std::time::{Duration, Instant};

use super::HealthConfig;

/// Probe scheduling for the in-process monitor loop (used when `berth-supervise` is not
/// installed): the same schedule `berth-supervise` keeps.
#[derive(Debug)]
pub struct Scheduler {
    cfg: HealthConfig,
    started: Instant,
    next: Instant,
    probe: Option<i32>,
    healthy_seen: bool,
    root: std::path::PathBuf,
    id: String,
}

impl Scheduler {
    /// A scheduler for a container that just started, or `None` without a check.
    pub fn new(root: &Path, id: &str, cfg: Option<&HealthConfig>) -> Option<Scheduler> {
        let cfg = cfg?.clone();
        let now = Instant::now();
        let mut s = Scheduler {
            cfg,
            started: now,
            next: now,
            probe: None,
            healthy_seen: false,
            root: root.to_path_buf(),
            id: id.to_string(),
        };
        s.next = now + s.gap();
        Some(s)
    }

    fn gap(&self) -> Duration {
        if !self.healthy_seen && self.started.elapsed() < self.cfg.start_period() {
            self.cfg.start_interval()
        } else {
            self.cfg.interval()
        }
    }

    /// How long the monitor may sleep before [`tick`](Self::tick) has work (`None` while a
    /// probe runs: its exit wakes the monitor with SIGCHLD).
    pub fn timeout(&self) -> Option<Duration> {
        if self.probe.is_some() {
            None
        } else {
            Some(self.next.saturating_duration_since(Instant::now()))
        }
    }

    /// Start a probe if one is due; notice the end of a running one.
    pub fn tick(&mut self) {
        if let Some(pid) = self.probe {
            use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
            match waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) => return,
                Ok(WaitStatus::Exited(_, 0)) => self.healthy_seen = true,
                _ => {}
            }
            self.probe = None;
            self.next = Instant::now() + self.gap();
            return;
        }
        if Instant::now() < self.next {
            return;
        }
        let Ok(exe) = berth_exe::path() else {
            return;
        };
        let child = std::process::Command::new(exe)
            .arg("--root")
            .arg(&self.root)
            .arg("__healthcheck")
            .arg(&self.id)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .env_remove(crate::monitor::ATTACH_ENV)
            .spawn();
        match child {
            Ok(ch) => {
                self.probe = i32::try_from(ch.id()).ok();
                // Reaped by `tick` through waitpid.
                std::mem::forget(ch);
            }
            Err(e) => {
                tracing::warn!("cannot start the health check of {}: {e}", self.id);
                self.next = Instant::now() + self.gap();
            }
        }
    }
}
