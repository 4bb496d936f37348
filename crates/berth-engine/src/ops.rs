//! Container lifecycle operations, called by the CLI.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_image::ImageStore;
use berth_net::{NetConfig, NetworkMode};
use berth_store::Store;

use crate::config::ContainerConfig;
use crate::rootfs::{self, Bundle, ExecCheck};
use crate::state::{self, Container, State};
use crate::{EngineError, Result};

/// A request to create a container. The caller has resolved the image (and merged its config
/// into `config`, see [`resolve_args`]).
#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub name: Option<String>,
    /// The image as the user named it (shown by `ps`).
    pub image_ref: String,
    pub image_id: berth_store::Digest,
    pub config: ContainerConfig,
}

/// Create a container row and its directory. Nothing runs yet.
pub fn create(store: &Store, req: CreateRequest) -> Result<Container> {
    state::migrate(store)?;
    if let Some(n) = &req.name {
        validate_name(n)?;
    }
    berth_net::validate_publish(&req.config.publish)?;
    let id = new_id();
    let name = req
        .name
        .clone()
        .unwrap_or_else(|| crate::names::generate(|n| state::lookup(store, n).is_ok()));
    let mut config = req.config;
    if config.hostname.is_empty() {
        config.hostname = id[..12].to_string();
    }
    // Volume references before the row (a crash leaves only a stale reference, forgotten later).
    crate::volumes::acquire(store, &id, &mut config)?;
    let c = Container {
        id: id.clone(),
        name,
        image_id: req.image_id.clone(),
        image_name: req.image_ref.clone(),
        config,
        state: State::Created,
        created: chrono::Utc::now().timestamp(),
        pid: None,
        monitor_pid: None,
        monitor_start: None,
        started_at: None,
        finished_at: None,
        exit_code: None,
        oom_killed: false,
        restart_count: 0,
        stop_requested: false,
        net: None,
        error: None,
    };
    // Directory first, row second: a crash in between leaves an orphan dir that sweep removes.
    let bundle = Bundle::new(store.root(), &id);
    if let Err(e) = bundle.create().and_then(|()| state::insert(store, &c)) {
        let _ = bundle.remove();
        let _ = crate::volumes::release(store, &id);
        let _ = crate::volumes::remove_anonymous(store, &c.config);
        return Err(e);
    }
    Ok(c)
}

fn validate_name(n: &str) -> Result<()> {
    let ok = !n.is_empty()
        && n.as_bytes()[0].is_ascii_alphanumeric()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(EngineError::InvalidArgument(format!(
            "invalid container name {n:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

fn new_id() -> String {
    let a: u128 = rand::random();
    let b: u128 = rand::random();
    format!("{a:032x}{b:032x}")
}

/// Merge image defaults with user options the way Docker does.
#[allow(clippy::too_many_arguments)]
pub fn resolve_args(
    image: &berth_image::ImageConfig,
    entrypoint_flag: Option<&str>,
    command: &[String],
) -> Result<(Vec<String>, Vec<String>, Vec<String>)> {
    let entrypoint: Vec<String> = match entrypoint_flag {
        Some("") => vec![],
        Some(e) => vec![e.to_string()],
        None => image.entrypoint.clone().unwrap_or_default(),
    };
    let cmd: Vec<String> = if !command.is_empty() {
        command.to_vec()
    } else if entrypoint_flag.is_some() {
        // Docker: --entrypoint resets the image's CMD.
        vec![]
    } else {
        image.cmd.clone().unwrap_or_default()
    };
    let mut args = entrypoint.clone();
    args.extend(cmd.iter().cloned());
    if args.is_empty() {
        return Err(EngineError::InvalidArgument(
            "no command specified: the image has no CMD or ENTRYPOINT; give a command after the image name".into(),
        ));
    }
    Ok((args, entrypoint, cmd))
}

/// How the CLI wants to be attached to a starting container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// Detached: the monitor gets /dev/null.
    No,
    /// The monitor gets the CLI's stdin/stdout/stderr and reports the exit code.
    Yes,
}

/// A started container.
#[derive(Debug)]
pub struct Started {
    pub pid: i32,
    pub monitor_pid: i32,
    /// Read end of the monitor's sync pipe (attached mode: `exit N` arrives here).
    pub sync: BufReader<File>,
}

/// Resolve where the cgroups of containers go (`BERTH_CGROUP_PARENT`, default `/berth`).
pub fn cgroup_parent() -> String {
    std::env::var("BERTH_CGROUP_PARENT").unwrap_or_else(|_| "/berth".into())
}

/// Start a created or exited container: mount its root, set up networking, write the OCI
/// spec and spawn its monitor. Returns once the process runs (or failed to start).
pub fn start(store: &Store, c: &Container, attach: Attach) -> Result<Started> {
    if c.state.is_active() && state::monitor_alive(c) {
        return Err(EngineError::AlreadyRunning(c.name.clone()));
    }
    tracing::debug!("start {}: begin", c.name);
    let images = ImageStore::open(store)?;
    let image = images.get(&c.image_id)?;
    let bundle = Bundle::new(store.root(), &c.id);
    bundle.mount(&images.layer_dirs(&image))?;
    tracing::debug!("start {}: rootfs mounted", c.name);
    let fail = |e: EngineError| -> EngineError {
        let _ = berth_net::teardown(store, &c.id);
        let _ = bundle.unmount();
        e
    };
    let cfg = &c.config;
    // Volumes must exist on the host (Docker creates missing dirs; we do the same).
    for b in &cfg.binds {
        if !Path::new(&b.source).exists() {
            std::fs::create_dir_all(&b.source).map_err(|e| fail(EngineError::io(&b.source, e)))?;
        }
    }
    let user = crate::user::resolve(&bundle.rootfs(), &cfg.user, &cfg.group_add).map_err(fail)?;
    // Docker creates the working directory if it is missing (inside the root, never outside).
    rootfs::create_workdir(&bundle.rootfs(), &cfg.working_dir).map_err(fail)?;
    if !cfg.init {
        match rootfs::check_executable(&bundle.rootfs(), &cfg.args[0], &cfg.env, &cfg.working_dir) {
            ExecCheck::Ok => {}
            ExecCheck::NotFound => {
                let e = EngineError::CommandNotFound(cfg.args[0].clone());
                record_start_failure(store, c, 127, &e.to_string());
                return Err(fail(e));
            }
            ExecCheck::NotExecutable => {
                let e = EngineError::NotExecutable(cfg.args[0].clone());
                record_start_failure(store, c, 126, &e.to_string());
                return Err(fail(e));
            }
        }
    }
    let (mode, join_netns) = match &cfg.network {
        NetworkMode::Container(other) => {
            let o = state::lookup(store, other).map_err(fail)?;
            let pid = o.pid.filter(|_| o.state == State::Running).ok_or_else(|| {
                fail(EngineError::InvalidArgument(format!(
                    "cannot join the network of container {}: it is not running",
                    o.name
                )))
            })?;
            (cfg.network.clone(), Some(format!("/proc/{pid}/ns/net")))
        }
        m => (m.clone(), None),
    };
    let net_cfg = NetConfig {
        container_id: c.id.clone(),
        container_name: c.name.clone(),
        hostname: cfg.hostname.clone(),
        domainname: cfg.domainname.clone(),
        mode,
        publish: cfg.publish.clone(),
        publish_all: cfg.publish_all.clone(),
        dns: cfg.dns.clone(),
        dns_search: cfg.dns_search.clone(),
        dns_options: cfg.dns_options.clone(),
        add_hosts: cfg.add_hosts.clone(),
    };
    let net = berth_net::setup(store, &net_cfg, &bundle.dir).map_err(|e| fail(e.into()))?;
    tracing::debug!("start {}: network ready", c.name);
    let init_binary = if cfg.init { find_init() } else { None };
    if cfg.init && init_binary.is_none() {
        return Err(fail(EngineError::InvalidArgument(
            "--init needs a static init binary: install Debian's tini package (tini-static) or set BERTH_INIT_PATH".into(),
        )));
    }
    let rootfs_path = bundle.rootfs();
    // Volumes (created, mounted, filled from the image) join the bind mounts.
    let spec_cfg = ContainerConfig {
        binds: crate::volumes::prepare(store, &c.id, cfg, &rootfs_path).map_err(fail)?,
        ..cfg.clone()
    };
    let spec = crate::spec::build(
        &spec_cfg,
        &crate::spec::SpecInputs {
            id: &c.id,
            rootfs: &rootfs_path,
            user: &user,
            net: &net,
            join_netns,
            cgroup_parent: &cgroup_parent(),
            init_binary: init_binary.as_deref(),
        },
    )
    .map_err(fail)?;
    let mut spec = spec;
    rootfs::secure_mounts(&rootfs_path, &mut spec).map_err(fail)?;
    let spec_bytes =
        serde_json::to_vec_pretty(&spec).map_err(|e| fail(EngineError::Other(e.to_string())))?;
    berth_store::write_replace(&bundle.config(), &spec_bytes).map_err(|e| fail(e.into()))?;
    if matches!(
        crate::runtime::Runtime::new(store.root(), cfg.runtime.as_deref()),
        Ok(crate::runtime::Runtime::Builtin { .. })
    ) {
        crate::seccomp::write_builtin_bundle(&bundle.dir, &spec).map_err(fail)?;
    }
    let net_json = serde_json::to_string(&net).unwrap_or_default();
    state::update(
        store,
        &c.id,
        "net = ?1, stop_requested = 0, error = NULL",
        &[&net_json],
    )
    .map_err(fail)?;
    spawn_monitor(store, c, attach).inspect_err(|_| {
        let _ = bundle.unmount();
    })
}

fn record_start_failure(store: &Store, c: &Container, code: i32, msg: &str) {
    let now = chrono::Utc::now().to_rfc3339();
    let _ = state::update(
        store,
        &c.id,
        "state = ?1, exit_code = ?2, error = ?3, finished_at = ?4",
        &[&State::Exited.as_str(), &code, &msg, &now],
    );
}

/// The static init used for `--init`.
pub fn find_init() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("BERTH_INIT_PATH") {
        return Some(PathBuf::from(p));
    }
    [
        "/usr/bin/tini-static",
        "/usr/libexec/berth/init",
        "/usr/local/lib/berth/init",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

fn spawn_monitor(store: &Store, c: &Container, attach: Attach) -> Result<Started> {
    let (r, w): (OwnedFd, OwnedFd) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| EngineError::Other(format!("pipe: {e}")))?;
    tracing::debug!("start {}: spawning monitor", c.name);
    let monitor_pid = exec_monitor(store, c, attach, &w)?;
    drop(w);

    let mut sync = BufReader::new(File::from(r));
    let mut line = String::new();
    sync.read_line(&mut line)
        .map_err(|e| EngineError::Other(format!("waiting for the monitor: {e}")))?;
    let line = line.trim_end();
    if let Some(pid) = line.strip_prefix("started ") {
        return Ok(Started {
            pid: pid.parse().unwrap_or(0),
            monitor_pid,
            sync,
        });
    }
    if let Some(rest) = line.strip_prefix("error ") {
        let (code, msg) = rest.split_once(' ').unwrap_or(("125", rest));
        return Err(EngineError::StartFailed {
            code: code.parse().unwrap_or(125),
            msg: msg.to_string(),
        });
    }
    Err(EngineError::StartFailed {
        code: 125,
        msg: "the container monitor exited before the container started".into(),
    })
}

/// Start the monitor as a fresh `berth __monitor` process. (Forking without exec would be a
/// little faster, but the child would inherit this process's SQLite connection state, which
/// SQLite forbids using across fork.)
fn exec_monitor(store: &Store, c: &Container, attach: Attach, w: &OwnedFd) -> Result<i32> {
    // The monitor (and the container init it clones) runs from a read-only view of berth's
    // binary, so a container can never write to it (CVE-2019-5736).
    let exe = crate::exeguard::protected_exe(&Bundle::new(store.root(), &c.id).dir);
    let mut cmd = Command::new(exe);
    cmd.arg("--root")
        .arg(store.root())
        .arg("__monitor")
        .arg(&c.id);
    cmd.env_remove(crate::monitor::ATTACH_ENV);
    match attach {
        Attach::No => {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        }
        Attach::Yes => {
            cmd.env(crate::monitor::ATTACH_ENV, "1");
        }
    }
    let wfd = w.as_raw_fd();
    // SAFETY: the closure runs in the child between fork and exec and only calls
    // async-signal-safe functions (setsid, dup2).
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            if libc::dup2(wfd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| EngineError::Other(format!("starting the container monitor: {e}")))?;
    let pid = child.id() as i32;
    // The monitor outlives us; we never wait for it (it reparents to init when we exit).
    std::mem::forget(child);
    Ok(pid)
}

/// After a foreground start: wait for `exit N` from the monitor.
pub fn wait_attached(store: &Store, id: &str, started: &mut Started) -> i32 {
    let mut line = String::new();
    loop {
        line.clear();
        match started.sync.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {
                if let Some(code) = line.trim_end().strip_prefix("exit ") {
                    return code.parse().unwrap_or(125);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    // The monitor went away without a word (killed): use what the store says.
    match state::get(store, id) {
        Ok(Some(c)) => c.exit_code.unwrap_or(125),
        _ => 125,
    }
}

/// Bring rows in line with reality: containers whose monitor died (crash, `kill -9`,
/// reboot) are marked exited and their mounts and network released.
pub fn reconcile(store: &Store) -> Result<()> {
    reconciled_rows(store).map(|_| ())
}

/// [`reconcile`], returning every container row as it is afterwards.
pub fn reconciled_rows(store: &Store) -> Result<Vec<Container>> {
    state::migrate(store)?;
    let all = state::all(store)?;
    let mut reconciled = false;
    for c in &all {
        if c.state.is_active() && !state::monitor_alive(c) {
            reconcile_one(store, c);
            reconciled = true;
        }
    }
    if reconciled {
        // After a crash or reboot, also release network resources that no container row
        // accounts for. Containers that are not exited may be starting right now: keep theirs.
        let rows = state::all(store)?;
        let keep: HashSet<String> = rows
            .iter()
            .filter(|c| c.state != State::Exited)
            .map(|c| c.id.clone())
            .collect();
        if let Err(e) = berth_net::cleanup_stale(store, &keep) {
            tracing::warn!("cleaning up stale network resources: {e}");
        }
        return Ok(rows);
    }
    Ok(all)
}

fn reconcile_one(store: &Store, c: &Container) {
    // A container process may survive its monitor; it must not run unobserved. After a reboot
    // the recorded pid may belong to anything: only a process in this container's cgroup is
    // killed.
    if let Some(pid) = c.pid {
        let _ = crate::pidfd::signal_container(pid, &c.id, libc::SIGKILL);
    }
    if let Ok(rt) = crate::runtime::Runtime::new(store.root(), c.config.runtime.as_deref()) {
        let _ = rt.delete(&c.id);
    }
    let now = chrono::Utc::now().to_rfc3339();
    let _ = state::update(
        store,
        &c.id,
        "state = ?1, exit_code = COALESCE(exit_code, 137), finished_at = ?2, pid = NULL, monitor_pid = NULL, monitor_start = NULL",
        &[&State::Exited.as_str(), &now],
    );
    let _ = berth_net::teardown(store, &c.id);
    let _ = Bundle::new(store.root(), &c.id).unmount();
    if c.config.auto_remove {
        let _ = remove_files(store, &c.id);
        let _ = state::delete(store, &c.id);
        let _ = crate::volumes::release(store, &c.id);
        let _ = crate::volumes::remove_anonymous(store, &c.config);
    }
}

/// Remove container directories that have no row (crash between mkdir and insert).
pub fn sweep(store: &Store) -> Result<()> {
    let dir = store.root().join("containers");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    crate::exits::sweep(store.root());
    let known: HashSet<String> = state::all(store)?.into_iter().map(|c| c.id).collect();
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.len() == 64 && !known.contains(&name) {
            // Only old enough orphans: a concurrent `create` may be between mkdir and insert.
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .map(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(60))
                .unwrap_or(false);
            if old {
                let _ = Bundle::new(store.root(), &name).remove();
            }
        }
    }
    Ok(())
}

/// Send a signal to the container's init.
pub fn kill(store: &Store, c: &Container, sig: i32) -> Result<()> {
    let fresh = state::get(store, &c.id)?.ok_or_else(|| EngineError::NotFound(c.name.clone()))?;
    match (fresh.state, fresh.pid) {
        (State::Running, Some(pid)) if state::monitor_alive(&fresh) => {
            match crate::pidfd::signal_container(pid, &c.id, sig) {
                Ok(true) => Ok(()),
                Ok(false) => Err(EngineError::NotRunning(c.name.clone())),
                Err(e) => Err(EngineError::Other(format!(
                    "cannot signal container {}: {e}",
                    c.name
                ))),
            }
        }
        _ => Err(EngineError::NotRunning(c.name.clone())),
    }
}

/// Stop: no restart, the stop signal, then SIGKILL after `timeout`; waits until recorded.
pub fn stop(store: &Store, c: &Container, timeout: Option<u32>) -> Result<()> {
    state::update(store, &c.id, "stop_requested = 1", &[])?;
    let fresh = state::get(store, &c.id)?.ok_or_else(|| EngineError::NotFound(c.name.clone()))?;
    if !fresh.state.is_active() || !state::monitor_alive(&fresh) {
        if fresh.state.is_active() {
            reconcile_one(store, &fresh);
        }
        return Ok(());
    }
    let sig = crate::config::parse_signal(&c.config.stop_signal).unwrap_or(libc::SIGTERM);
    let timeout = Duration::from_secs(timeout.unwrap_or(c.config.stop_timeout) as u64);
    if let Some(pid) = fresh.pid {
        let _ = crate::pidfd::signal_container(pid, &c.id, sig);
    }
    if wait_state(store, &c.id, timeout)? {
        return Ok(());
    }
    if let Some(pid) = state::get(store, &c.id)?.and_then(|c| c.pid) {
        let _ = crate::pidfd::signal_container(pid, &c.id, libc::SIGKILL);
    }
    if wait_state(store, &c.id, Duration::from_secs(10))? {
        return Ok(());
    }
    Err(EngineError::Other(format!(
        "container {} did not stop within the timeout",
        c.name
    )))
}

/// Poll until the container is no longer active (or gone). True if it stopped.
fn wait_state(store: &Store, id: &str, timeout: Duration) -> Result<bool> {
    let end = Instant::now() + timeout;
    let mut delay = Duration::from_millis(5);
    loop {
        match state::get(store, id)? {
            None => return Ok(true),
            Some(c) if !c.state.is_active() => return Ok(true),
            Some(c) if !state::monitor_alive(&c) => {
                reconcile_one(store, &c);
                return Ok(true);
            }
            _ => {}
        }
        if Instant::now() >= end {
            return Ok(false);
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// Block until the container is not running; returns its exit code.
pub fn wait(store: &Store, c: &Container) -> Result<i32> {
    loop {
        if wait_state(store, &c.id, Duration::from_secs(3600))? {
            break;
        }
    }
    // A --rm container's row is gone once it exited: its monitor left the code behind.
    Ok(match state::get(store, &c.id)? {
        Some(row) => row.exit_code.unwrap_or(0),
        None => crate::exits::get(store.root(), &c.id).unwrap_or(0),
    })
}

/// Remove a stopped container (or, with `force`, kill it first).
pub fn remove(store: &Store, c: &Container, force: bool) -> Result<()> {
    let fresh = state::get(store, &c.id)?.ok_or_else(|| EngineError::NotFound(c.name.clone()))?;
    if fresh.state.is_active() && state::monitor_alive(&fresh) {
        if !force {
            return Err(EngineError::Other(format!(
                "cannot remove container {}: it is running; stop it first or use rm -f",
                c.name
            )));
        }
        state::update(store, &c.id, "stop_requested = 1", &[])?;
        if let Some(pid) = fresh.pid {
            let _ = crate::pidfd::signal_container(pid, &c.id, libc::SIGKILL);
        }
        wait_state(store, &c.id, Duration::from_secs(10))?;
    } else if fresh.state.is_active() {
        reconcile_one(store, &fresh);
    }
    state::update(store, &c.id, "state = ?1", &[&State::Removing.as_str()])?;
    let _ = berth_net::teardown(store, &c.id);
    if let Ok(rt) = crate::runtime::Runtime::new(store.root(), c.config.runtime.as_deref()) {
        let _ = rt.delete(&c.id);
    }
    remove_files(store, &c.id)?;
    state::delete(store, &c.id)?;
    let _ = crate::health::forget(store, &c.id);
    crate::volumes::release(store, &c.id)
}

/// Delete a container's directory (unmounting first).
pub fn remove_files(store: &Store, id: &str) -> Result<()> {
    Bundle::new(store.root(), id).remove()
}
