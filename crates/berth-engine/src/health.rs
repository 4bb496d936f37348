//! Health checks, as Docker runs them.
//!
//! * Configuration: [`HealthConfig`] (the image's `HEALTHCHECK` overridden by `--health-*`),
//!   stored in the container's config.
//! * Schedule: nothing of berth runs for a container without a check. With one, the
//!   container's supervisor (`berth-supervise`, or the in-process monitor loop through
//!   [`Scheduler`]) starts `berth __healthcheck ID` when a probe is due: after the interval
//!   (the start interval while the container is still `starting` inside its start period),
//!   counted from the end of the previous probe. The supervisor learns the timing from
//!   [`SUPERVISE_ENV`] and whether the container has been healthy from the exit status of
//!   `__healthcheck` (0 = healthy).
//! * One probe ([`probe`]): the test command runs inside the container's namespaces (as
//!   `exec` does), its combined output is kept up to 4096 bytes, it is killed after the
//!   timeout; the result goes into the `health` table (owned by this module): status,
//!   failing streak and the last 5 results, as `inspect` shows under `State.Health`. A change
//!   of status is recorded as Docker's `health_status: STATUS` event.
//! * Acting on it ([`restart_unhealthy`], only with [`HealthConfig::restart_unhealthy`]): the
//!   probe that finds the container newly unhealthy stops it when its restart policy allows a
//!   restart, and the monitor's restart policy brings it back (`kill` and `die` events, then
//!   `start`).

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use berth_store::rusqlite::{params, OptionalExtension};
use berth_store::Store;
use serde::{Deserialize, Serialize};

use crate::runtime::{ExecHandle, StdioFds};
use crate::state::{self, State};
use crate::{EngineError, Result};

/// Environment variable with which the monitor hands the probe timing to `berth-supervise`:
/// `INTERVAL_MS:START_INTERVAL_MS:START_PERIOD_MS`.
pub const SUPERVISE_ENV: &str = "BERTH_HEALTH";

/// Docker's defaults (nanoseconds) and limits.
const DEFAULT_INTERVAL: i64 = 30_000_000_000;
const DEFAULT_TIMEOUT: i64 = 30_000_000_000;
const DEFAULT_START_INTERVAL: i64 = 5_000_000_000;
const DEFAULT_RETRIES: i64 = 3;
/// Bytes of probe output kept per result.
const MAX_OUTPUT: usize = 4096;
/// Results kept in `State.Health.Log`.
const MAX_LOG: usize = 5;

const MIGRATIONS: &[&str] = &["CREATE TABLE IF NOT EXISTS health (
    container TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    failing_streak INTEGER NOT NULL DEFAULT 0,
    log TEXT NOT NULL DEFAULT '[]'
)"];

fn migrate(store: &Store) -> Result<()> {
    store.migrate("health", MIGRATIONS)?;
    Ok(())
}

/// A container's health check, Docker's `Config.Healthcheck` (durations in nanoseconds, 0 =
/// Docker's default).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["CMD", args…]`, `["CMD-SHELL", command]`, `["NONE"]` (disabled) or empty (inherit).
    #[serde(default)]
    pub test: Vec<String>,
    /// Time between probes (ns).
    #[serde(default)]
    pub interval: i64,
    /// Time after which a probe is killed and counted as failed (ns).
    #[serde(default)]
    pub timeout: i64,
    /// Grace period after start during which failures do not count (ns).
    #[serde(default)]
    pub start_period: i64,
    /// Time between probes during the start period (ns).
    #[serde(default)]
    pub start_interval: i64,
    /// Consecutive failures that make the container unhealthy.
    #[serde(default)]
    pub retries: i64,
    /// berth's extension (Docker never acts on health): when the container turns unhealthy
    /// and its restart policy would restart it after a failure, the probe stops it (its stop
    /// signal, SIGKILL after its stop timeout) so that the policy restarts it; see
    /// [`restart_unhealthy`]. `berth compose` sets it for services with a restart policy.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart_unhealthy: bool,
}

/// The `--health-*` flags of `run`/`create` (durations as Docker writes them: `1m30s`).
#[derive(Debug, Clone, Default)]
pub struct HealthFlags {
    /// `--health-cmd` (run with `/bin/sh -c`).
    pub cmd: Option<String>,
    /// `--health-interval`.
    pub interval: Option<String>,
    /// `--health-timeout`.
    pub timeout: Option<String>,
    /// `--health-start-period`.
    pub start_period: Option<String>,
    /// `--health-start-interval`.
    pub start_interval: Option<String>,
    /// `--health-retries`.
    pub retries: Option<i64>,
    /// `--no-healthcheck`.
    pub disable: bool,
}

/// Parse a Go-style duration (`500ms`, `2s`, `1m30s`, `1h`) into nanoseconds.
pub fn parse_duration(flag: &str, s: &str) -> Result<i64> {
    let bad = || {
        EngineError::InvalidArgument(format!(
            "invalid {flag} {s:?}: use a duration such as 500ms, 10s or 1m30s"
        ))
    };
    let t = s.trim();
    if t == "0" {
        return Ok(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = t;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_end);
        let v: f64 = num.parse().map_err(|_| bad())?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let mult = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += v * mult;
        rest = next;
    }
    if !total.is_finite() || total > 1e18 {
        return Err(bad());
    }
    // In range (checked above) and whole nanoseconds are all Docker keeps.
    #[allow(clippy::cast_possible_truncation)]
    Ok(total as i64)
}

impl HealthConfig {
    /// The image's `Healthcheck` object (`null`/missing → `None`).
    pub fn from_image(v: Option<&serde_json::Value>) -> Option<HealthConfig> {
        v.and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// Merge `--health-*` flags over the image's check. `None` when there is no check or it
    /// is disabled (`--no-healthcheck`, `NONE`). Errors on bad durations or values, or on
    /// `--no-healthcheck` together with other health flags.
    pub fn resolve(image: Option<HealthConfig>, f: &HealthFlags) -> Result<Option<HealthConfig>> {
        let any_flag = f.cmd.is_some()
            || f.interval.is_some()
            || f.timeout.is_some()
            || f.start_period.is_some()
            || f.start_interval.is_some()
            || f.retries.is_some();
        if f.disable {
            if any_flag {
                return Err(EngineError::InvalidArgument(
                    "--no-healthcheck conflicts with --health-* options: use one or the other"
                        .into(),
                ));
            }
            return Ok(None);
        }
        let mut h = image.unwrap_or_default();
        if let Some(c) = &f.cmd {
            h.test = vec!["CMD-SHELL".into(), c.clone()];
        }
        let dur = |flag: &str, v: &Option<String>, min_ns: i64| -> Result<Option<i64>> {
            let Some(s) = v else { return Ok(None) };
            let d = parse_duration(flag, s)?;
            if d != 0 && d < min_ns {
                return Err(EngineError::InvalidArgument(format!(
                    "invalid {flag} {s:?}: must be at least 1ms (or 0 for the default)"
                )));
            }
            Ok(Some(d))
        };
        if let Some(d) = dur("--health-interval", &f.interval, 1_000_000)? {
            h.interval = d;
        }
        if let Some(d) = dur("--health-timeout", &f.timeout, 1_000_000)? {
            h.timeout = d;
        }
        if let Some(d) = dur("--health-start-period", &f.start_period, 1_000_000)? {
            h.start_period = d;
        }
        if let Some(d) = dur("--health-start-interval", &f.start_interval, 1_000_000)? {
            h.start_interval = d;
        }
        if let Some(r) = f.retries {
            if r < 0 {
                return Err(EngineError::InvalidArgument(
                    "invalid --health-retries: must not be negative".into(),
                ));
            }
            h.retries = r;
        }
        if any_flag && h.test.is_empty() {
            return Err(EngineError::InvalidArgument(
                "--health-* options need a health check: give --health-cmd (the image has none)"
                    .into(),
            ));
        }
        match h.test.first().map(String::as_str) {
            None | Some("NONE") => Ok(None),
            Some("CMD") if h.test.len() > 1 => Ok(Some(h)),
            Some("CMD-SHELL") if h.test.len() == 2 => Ok(Some(h)),
            _ if any_flag && f.cmd.is_none() => Err(EngineError::InvalidArgument(
                "--health-* options need a health check: give --health-cmd (the image has none)"
                    .into(),
            )),
            _ => Err(EngineError::InvalidArgument(format!(
                "invalid health check test {:?}: use [\"CMD\", args…] or [\"CMD-SHELL\", command]",
                h.test
            ))),
        }
    }

    fn or(v: i64, d: i64) -> i64 {
        if v > 0 {
            v
        } else {
            d
        }
    }

    /// Time between probes.
    pub fn interval(&self) -> Duration {
        ns(Self::or(self.interval, DEFAULT_INTERVAL))
    }
    /// Probe timeout.
    pub fn timeout(&self) -> Duration {
        ns(Self::or(self.timeout, DEFAULT_TIMEOUT))
    }
    /// Start period (0 by default).
    pub fn start_period(&self) -> Duration {
        ns(self.start_period.max(0))
    }
    /// Time between probes during the start period.
    pub fn start_interval(&self) -> Duration {
        ns(Self::or(self.start_interval, DEFAULT_START_INTERVAL))
    }
    /// Failures in a row that make the container unhealthy.
    pub fn retries(&self) -> i64 {
        Self::or(self.retries, DEFAULT_RETRIES)
    }

    /// The probe's argv.
    pub fn argv(&self) -> Vec<String> {
        match self.test.first().map(String::as_str) {
            Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), self.test[1].clone()],
            _ => self.test.iter().skip(1).cloned().collect(),
        }
    }

    /// The value of [`SUPERVISE_ENV`] for this check.
    pub fn supervise_env(&self) -> String {
        let ms = |d: Duration| d.as_millis().min(u128::from(u32::MAX));
        format!(
            "{}:{}:{}",
            ms(self.interval()),
            ms(self.start_interval()),
            ms(self.start_period())
        )
    }
}

fn ns(v: i64) -> Duration {
    Duration::from_nanos(u64::try_from(v).unwrap_or(0))
}

/// One probe result (`State.Health.Log[]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct HealthResult {
    /// RFC 3339 start time.
    pub start: String,
    /// RFC 3339 end time.
    pub end: String,
    /// The probe's exit code (-1 when it timed out or could not run).
    pub exit_code: i64,
    /// Its output (stdout and stderr), at most 4096 bytes.
    pub output: String,
}

/// `State.Health`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    /// Failed probes in a row.
    pub failing_streak: i64,
    /// The last 5 results, oldest first.
    pub log: Vec<HealthResult>,
}

/// The recorded health of container `id`, if it has a check and has been started.
pub fn get(store: &Store, id: &str) -> Result<Option<Health>> {
    migrate(store)?;
    let row = store
        .db()
        .query_row(
            "SELECT status, failing_streak, log FROM health WHERE container = ?1",
            [id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            },
        )
        .optional()?;
    Ok(row.map(|(status, failing_streak, log)| Health {
        status,
        failing_streak,
        log: serde_json::from_str(&log).unwrap_or_default(),
    }))
}

/// Every container's health status (`container id → status`).
pub fn all_status(store: &Store) -> Result<std::collections::HashMap<String, String>> {
    migrate(store)?;
    let mut st = store.db().prepare("SELECT container, status FROM health")?;
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
    Ok(rows.collect::<berth_store::rusqlite::Result<_>>()?)
}

/// A (re)started container with a check begins as `starting`, without history (Docker).
pub fn reset(store: &Store, id: &str) -> Result<()> {
    migrate(store)?;
    store.db().execute(
        "INSERT INTO health (container, status, failing_streak, log) VALUES (?1, 'starting', 0, '[]')
         ON CONFLICT(container) DO UPDATE SET status = 'starting', failing_streak = 0, log = '[]'",
        [id],
    )?;
    Ok(())
}

/// Forget the health of a removed container.
pub fn forget(store: &Store, id: &str) -> Result<()> {
    migrate(store)?;
    store
        .db()
        .execute("DELETE FROM health WHERE container = ?1", [id])?;
    Ok(())
}

/// Docker's rule for one result: success → healthy, streak 0; failure → streak + 1 (not
/// counted while `starting` inside the start period), unhealthy once the streak reaches the
/// retries.
fn next_state(
    h: &Health,
    cfg: &HealthConfig,
    exit_code: i64,
    since_start: Duration,
) -> (String, i64) {
    if exit_code == 0 {
        return ("healthy".into(), 0);
    }
    if h.status == "starting" && since_start < cfg.start_period() {
        return (h.status.clone(), h.failing_streak);
    }
    let streak = h.failing_streak + 1;
    if streak >= cfg.retries() {
        ("unhealthy".into(), streak)
    } else {
        (h.status.clone(), streak)
    }
}

/// Record one probe result for container `id`; returns the new status.
pub fn record(
    store: &Store,
    id: &str,
    cfg: &HealthConfig,
    started_at: Option<&str>,
    result: HealthResult,
) -> Result<String> {
    migrate(store)?;
    let since_start = started_at
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .and_then(|t| {
            chrono::DateTime::parse_from_rfc3339(&result.start)
                .ok()
                .map(|s| (s - t).to_std().unwrap_or_default())
        })
        .unwrap_or(Duration::MAX);
    let tx = store.db().unchecked_transaction()?;
    let cur = tx
        .query_row(
            "SELECT status, failing_streak, log FROM health WHERE container = ?1",
            [id],
            |r| {
                Ok(Health {
                    status: r.get(0)?,
                    failing_streak: r.get(1)?,
                    log: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                })
            },
        )
        .optional()?
        .unwrap_or(Health {
            status: "starting".into(),
            failing_streak: 0,
            log: vec![],
        });
    let (status, streak) = next_state(&cur, cfg, result.exit_code, since_start);
    let mut log = cur.log;
    log.push(result);
    if log.len() > MAX_LOG {
        log.drain(..log.len() - MAX_LOG);
    }
    tx.execute(
        "INSERT INTO health (container, status, failing_streak, log) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(container) DO UPDATE SET status = ?2, failing_streak = ?3, log = ?4",
        params![
            id,
            status,
            streak,
            serde_json::to_string(&log).unwrap_or_else(|_| "[]".into())
        ],
    )?;
    tx.commit()?;
    Ok(status)
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// `berth __healthcheck ID`: run one probe of a running container and record its result.
/// Returns 0 when the container is healthy afterwards, 1 when not, 2 when no probe ran (not
/// running, no check).
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
        let Ok(exe) = std::env::current_exe() else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("x", "2s").unwrap(), 2_000_000_000);
        assert_eq!(parse_duration("x", "1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration("x", "500ms").unwrap(), 500_000_000);
        assert_eq!(parse_duration("x", "0").unwrap(), 0);
        assert!(parse_duration("x", "10").is_err());
        assert!(parse_duration("x", "abc").is_err());
        assert!(parse_duration("x", "").is_err());
    }

    #[test]
    fn resolve_flags_over_image() {
        let img = HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            interval: 5_000_000_000,
            retries: 2,
            ..Default::default()
        };
        let f = HealthFlags {
            interval: Some("1s".into()),
            ..Default::default()
        };
        let h = HealthConfig::resolve(Some(img.clone()), &f)
            .unwrap()
            .unwrap();
        assert_eq!(h.interval, 1_000_000_000);
        assert_eq!(h.retries(), 2);
        assert_eq!(h.argv(), vec!["true".to_string()]);
        let off = HealthFlags {
            disable: true,
            ..Default::default()
        };
        assert!(HealthConfig::resolve(Some(img), &off).unwrap().is_none());
        let cmd = HealthFlags {
            cmd: Some("exit 0".into()),
            ..Default::default()
        };
        let h = HealthConfig::resolve(None, &cmd).unwrap().unwrap();
        assert_eq!(h.argv(), vec!["/bin/sh", "-c", "exit 0"]);
        assert_eq!(h.timeout(), Duration::from_secs(30));
        assert!(HealthConfig::resolve(None, &f).is_err());
        assert!(HealthConfig::resolve(
            None,
            &HealthFlags {
                disable: true,
                cmd: Some("x".into()),
                ..Default::default()
            }
        )
        .is_err());
        assert!(HealthConfig::resolve(None, &HealthFlags::default())
            .unwrap()
            .is_none());
    }

    #[test]
    fn docker_state_rules() {
        let cfg = HealthConfig {
            test: vec!["CMD".into(), "x".into()],
            retries: 2,
            start_period: 10_000_000_000,
            ..Default::default()
        };
        let h = |s: &str, n| Health {
            status: s.into(),
            failing_streak: n,
            log: vec![],
        };
        let early = Duration::from_secs(1);
        let late = Duration::from_secs(60);
        assert_eq!(
            next_state(&h("starting", 0), &cfg, 1, early),
            ("starting".into(), 0)
        );
        assert_eq!(
            next_state(&h("starting", 0), &cfg, 1, late),
            ("starting".into(), 1)
        );
        assert_eq!(
            next_state(&h("starting", 1), &cfg, 1, late),
            ("unhealthy".into(), 2)
        );
        assert_eq!(
            next_state(&h("unhealthy", 2), &cfg, 0, late),
            ("healthy".into(), 0)
        );
        assert_eq!(
            next_state(&h("healthy", 0), &cfg, 7, early),
            ("healthy".into(), 1)
        );
    }

    #[test]
    fn table() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path()).unwrap();
        let cfg = HealthConfig {
            test: vec!["CMD".into(), "x".into()],
            retries: 1,
            ..Default::default()
        };
        reset(&s, "c1").unwrap();
        for i in 0..7 {
            let r = HealthResult {
                start: now_rfc3339(),
                end: now_rfc3339(),
                exit_code: i % 2,
                output: format!("{i}"),
            };
            record(&s, "c1", &cfg, None, r).unwrap();
        }
        let h = get(&s, "c1").unwrap().unwrap();
        assert_eq!(h.log.len(), 5);
        assert_eq!(h.log[4].output, "6");
        assert_eq!(h.status, "healthy");
        reset(&s, "c1").unwrap();
        assert_eq!(get(&s, "c1").unwrap().unwrap().status, "starting");
        forget(&s, "c1").unwrap();
        assert!(get(&s, "c1").unwrap().is_none());
    }
}
