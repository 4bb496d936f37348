//! `start`: mount the root, set up networking, write the OCI spec, spawn the monitor.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_image::ImageStore;
use berth_net::{NetConfig, NetworkMode};
use berth_store::Store;

use crate::host::Host;
use crate::paths::{ATTACH_ENV, WINSIZE_ENV};
use crate::rootfs::{self, Bundle, ExecCheck};
use crate::state::{self, Container, State};
use crate::{EngineError, Result};

/// How the CLI wants to be attached to a starting container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// Detached: the monitor gets /dev/null.
    No,
    /// The monitor gets the CLI's stdin/stdout/stderr and reports the exit code.
    Yes,
    /// As [`Attach::Yes`], but only the chosen streams (`run -a stdout`): the others are
    /// /dev/null for the monitor (the container's output still goes to the log).
    Streams {
        /// Attach standard input.
        stdin: bool,
        /// Attach standard output.
        stdout: bool,
        /// Attach standard error.
        stderr: bool,
    },
}

/// A started container.
#[derive(Debug)]
pub struct Started {
    /// Host pid of the container's init.
    pub pid: i32,
    /// Pid of its monitor.
    pub monitor_pid: i32,
    /// Read end of the monitor's sync pipe (attached mode: `exit N` arrives here).
    pub sync: BufReader<File>,
}

/// Start a created or exited container: mount its root, set up networking, write the OCI
/// spec and spawn its monitor. Returns once the process runs (or failed to start).
///
/// Errors: [`EngineError::AlreadyRunning`]; [`EngineError::CommandNotFound`] /
/// [`EngineError::NotExecutable`] (exit 127/126, recorded in the row) before anything runs;
/// [`EngineError::StartFailed`] with the monitor's message; network, mount and store errors.
/// On error, the network and the mount are released again.
pub fn start(store: &Store, c: &Container, attach: Attach) -> Result<Started> {
    start_with(&Host::real(), store, c, attach, None, None)
}

/// The standard streams an attached front end gives the monitor instead of its own:
/// `stdin` (read by the container when it keeps stdin open), `stdout` and `stderr` (with a
/// terminal everything goes to `stdout`). The API service passes pipes it relays to a
/// hijacked connection.
#[derive(Debug)]
pub struct AttachStdio {
    /// The container's standard input.
    pub stdin: OwnedFd,
    /// Where the container's standard output (and with a terminal, all output) goes.
    pub stdout: OwnedFd,
    /// Where the container's standard error goes.
    pub stderr: OwnedFd,
}

/// [`start`] attached to the given streams instead of this process's (as `Attach::Yes`:
/// the monitor writes `exit CODE` on [`Started::sync`] at the end). Errors as [`start`].
pub fn start_attached_to(store: &Store, c: &Container, stdio: AttachStdio) -> Result<Started> {
    start_with(&Host::real(), store, c, Attach::Yes, Some(stdio), None)
}

/// [`start_attached_to`] for a container with a terminal whose client relays it
/// ([`crate::session::start_tty`]): the pty gets the window size `size` (rows, columns)
/// before the container starts (the monitor's stdin is no terminal to copy it from).
/// Errors as [`start`].
pub fn start_attached_tty(
    store: &Store,
    c: &Container,
    stdio: AttachStdio,
    size: Option<(u16, u16)>,
) -> Result<Started> {
    start_with(&Host::real(), store, c, Attach::Yes, Some(stdio), size)
}

fn start_with(
    host: &Host,
    store: &Store,
    c: &Container,
    attach: Attach,
    stdio: Option<AttachStdio>,
    size: Option<(u16, u16)>,
) -> Result<Started> {
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
        let _ = host.network.teardown(store, &c.id);
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
        let failed = match rootfs::check_executable(
            &bundle.rootfs(),
            &cfg.args[0],
            &cfg.env,
            &cfg.working_dir,
        ) {
            ExecCheck::Ok => None,
            ExecCheck::NotFound => Some(EngineError::CommandNotFound(cfg.args[0].clone())),
            ExecCheck::NotExecutable => Some(EngineError::NotExecutable(cfg.args[0].clone())),
        };
        if let Some(e) = failed {
            let _ = state::mark_start_failed(store, &c.id, e.exit_code(), &e.to_string());
            return Err(fail(e));
        }
    }
    tracing::debug!("start {}: user and command checked", c.name);
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
    // `--pid container:X` / `--ipc container:X`: the other container must be running.
    let running_pid = |other: &str, what: &str| -> Result<(String, i32)> {
        let o = state::lookup(store, other)?;
        o.pid
            .filter(|_| o.state == State::Running)
            .map(|p| (o.name.clone(), p))
            .ok_or_else(|| {
                EngineError::InvalidArgument(format!(
                    "cannot join the {what} namespace of container {}: it is not running; start it first",
                    o.name
                ))
            })
    };
    let join_pidns = match cfg
        .namespaces
        .pid
        .as_deref()
        .and_then(|m| m.strip_prefix("container:"))
    {
        Some(other) => {
            let (_, pid) = running_pid(other, "PID").map_err(fail)?;
            Some(format!("/proc/{pid}/ns/pid"))
        }
        None => None,
    };
    let join_ipc = match cfg
        .namespaces
        .ipc
        .as_deref()
        .and_then(|m| m.strip_prefix("container:"))
    {
        Some(other) => {
            let (name, pid) = running_pid(other, "IPC").map_err(fail)?;
            let donor = state::lookup(store, other).map_err(fail)?;
            if !matches!(
                donor.config.namespaces.ipc.as_deref(),
                Some("shareable" | "host")
            ) {
                return Err(fail(EngineError::InvalidArgument(format!(
                    "cannot join the IPC namespace of container {name}: it is not shareable; create it with --ipc shareable"
                ))));
            }
            Some((
                format!("/proc/{pid}/ns/ipc"),
                Bundle::new(store.root(), &donor.id).shm(),
            ))
        }
        None => None,
    };
    // A shareable IPC namespace keeps its /dev/shm on the host (in the bundle), so that
    // containers joining it can mount the same tmpfs.
    let shm_source = match (&join_ipc, cfg.namespaces.ipc.as_deref()) {
        (Some((_, donor_shm)), _) => Some(donor_shm.to_string_lossy().into_owned()),
        (None, Some("shareable")) => {
            let size = cfg
                .security
                .shm_size
                .unwrap_or(crate::spec::DEFAULT_SHM_SIZE);
            bundle.mount_shm(size).map_err(fail)?;
            Some(bundle.shm().to_string_lossy().into_owned())
        }
        _ => None,
    };
    let join_ipc = join_ipc.map(|(ns, _)| ns);
    // `--link NAME:ALIAS`: /etc/hosts entries for the linked containers' addresses; on the
    // default bridge also Docker's legacy variables, when asked for (see `crate::links`).
    let mut add_hosts = cfg.add_hosts.clone();
    let mut link_env: Vec<String> = Vec::new();
    let on_bridge = |m: &NetworkMode| matches!(m, NetworkMode::Networks(n) if n.first().is_some_and(|a| a.network == "bridge"));
    let want_link_env = on_bridge(&cfg.network) && crate::links::enabled();
    for l in &cfg.extra.links {
        let (name, alias) = l.split_once(':').unwrap_or((l, l));
        let other = state::lookup(store, name).map_err(fail)?;
        let ip = other
            .net
            .as_ref()
            .filter(|_| other.state == State::Running)
            .and_then(|n| n.addresses.iter().find(|a| a.is_ipv4()).copied())
            .ok_or_else(|| {
                fail(EngineError::InvalidArgument(format!(
                    "cannot link to a non running container: /{} AS /{}/{alias}; start it first",
                    other.name, c.name
                )))
            })?;
        if want_link_env && on_bridge(&other.config.network) {
            let exposed: Vec<String> = images
                .get(&other.image_id)
                .ok()
                .and_then(|i| i.config.exposed_ports.clone())
                .map(|m| m.into_keys().collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .chain(other.config.extra.expose.iter().cloned())
                .collect();
            link_env.extend(crate::links::env_vars(
                &ip.to_string(),
                &format!("/{}/{alias}", c.name),
                &other.config.env,
                &exposed,
            ));
        }
        let names = if alias == other.name {
            alias.to_string()
        } else {
            format!("{alias} {}", other.name)
        };
        add_hosts.push(format!("{names}:{ip}"));
    }
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
        add_hosts,
        ipv4_address: cfg.extra.ipv4_address.clone(),
        mac_address: cfg.extra.mac_address.clone(),
        port_group: port_group(&cfg.labels),
        port_wait_healthy: cfg.healthcheck.is_some(),
    };
    let net = host
        .network
        .setup(store, &net_cfg, &bundle.dir)
        .map_err(fail)?;
    tracing::debug!("start {}: network ready", c.name);
    let init_binary = if cfg.init { find_init() } else { None };
    if cfg.init && init_binary.is_none() {
        return Err(fail(EngineError::InvalidArgument(
            "--init needs a static init binary: install Debian's tini package (tini-static) or set BERTH_INIT_PATH".into(),
        )));
    }
    let rootfs_path = bundle.rootfs();
    // The spec joins parent and id; the row holds the whole path chosen at create.
    let cgroup_path = c.cgroup_path();
    let cgroup_parent = cgroup_path
        .strip_suffix(c.id.as_str())
        .unwrap_or(cgroup_path.as_str());
    // Volumes (created, mounted, filled from the image) join the bind mounts.
    let spec_cfg = crate::config::ContainerConfig {
        binds: crate::volumes::prepare(store, &c.id, cfg, &rootfs_path).map_err(fail)?,
        // Link variables first: the container's own environment overrides them (Docker).
        env: if link_env.is_empty() {
            cfg.env.clone()
        } else {
            crate::config::merge_env(&link_env, &cfg.env)
        },
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
            cgroup_parent,
            init_binary: init_binary.as_deref(),
            join_pidns,
            join_ipc,
            shm_source,
        },
    )
    .map_err(fail)?;
    let mut spec = spec;
    rootfs::secure_mounts(&rootfs_path, &mut spec).map_err(fail)?;
    crate::apparmor::ensure_loaded(
        spec.process()
            .as_ref()
            .and_then(|p| p.apparmor_profile().as_deref()),
    )
    .map_err(fail)?;
    let spec_bytes =
        serde_json::to_vec_pretty(&spec).map_err(|e| fail(EngineError::Other(e.to_string())))?;
    berth_store::write_replace(&bundle.config(), &spec_bytes).map_err(|e| fail(e.into()))?;
    if crate::runtime::is_builtin(cfg.runtime.as_deref()) {
        crate::runtime::write_builtin_bundle(&bundle.dir, &spec).map_err(fail)?;
    }
    state::mark_starting(store, &c.id, &net).map_err(fail)?;
    tracing::debug!("start {}: spec written", c.name);
    spawn_monitor(store, c, attach, stdio, size).inspect_err(|_| {
        let _ = bundle.unmount();
    })
}

/// The static init used for `--init`: `BERTH_INIT_PATH`, else tini-static or berth's own.
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

fn spawn_monitor(
    store: &Store,
    c: &Container,
    attach: Attach,
    stdio: Option<AttachStdio>,
    size: Option<(u16, u16)>,
) -> Result<Started> {
    let (r, w): (OwnedFd, OwnedFd) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| EngineError::Other(format!("pipe: {e}")))?;
    tracing::debug!("start {}: spawning monitor", c.name);
    let monitor_pid = exec_monitor(store, c, attach, stdio, size, &w)?;
    drop(w);

    let mut sync = BufReader::new(File::from(r));
    let mut line = String::new();
    sync.read_line(&mut line)
        .map_err(|e| EngineError::Other(format!("waiting for the monitor: {e}")))?;
    tracing::debug!("start {}: monitor answered {:?}", c.name, line.trim_end());
    parse_first_line(line.trim_end()).map(|pid| Started {
        pid,
        monitor_pid,
        sync,
    })
}

/// The monitor's first word on the sync pipe: `started PID` or `error CODE MESSAGE`.
pub(crate) fn parse_first_line(line: &str) -> Result<i32> {
    if let Some(pid) = line.strip_prefix("started ") {
        return Ok(pid.parse().unwrap_or(0));
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
fn exec_monitor(
    store: &Store,
    c: &Container,
    attach: Attach,
    stdio: Option<AttachStdio>,
    size: Option<(u16, u16)>,
    w: &OwnedFd,
) -> Result<i32> {
    // The monitor (and the container init it clones) runs from a read-only view of berth's
    // binary, so a container can never write to it (CVE-2019-5736).
    let exe = crate::exeguard::protected_exe(&Bundle::new(store.root(), &c.id).dir);
    let mut cmd = Command::new(exe);
    cmd.arg("--root")
        .arg(store.root())
        .arg("__monitor")
        .arg(&c.id);
    cmd.env_remove(ATTACH_ENV).env_remove(WINSIZE_ENV);
    if let Some((rows, cols)) = size {
        cmd.env(WINSIZE_ENV, format!("{rows}x{cols}"));
    }
    match attach {
        Attach::No => {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        }
        Attach::Yes => {
            cmd.env(ATTACH_ENV, "1");
            if let Some(s) = stdio {
                cmd.stdin(Stdio::from(s.stdin))
                    .stdout(Stdio::from(s.stdout))
                    .stderr(Stdio::from(s.stderr));
            }
        }
        Attach::Streams {
            stdin,
            stdout,
            stderr,
        } => {
            cmd.env(ATTACH_ENV, "1");
            if !stdin {
                cmd.stdin(Stdio::null());
            }
            if !stdout {
                cmd.stdout(Stdio::null());
            }
            if !stderr {
                cmd.stderr(Stdio::null());
            }
        }
    }
    let wfd = w.as_raw_fd();
    // SAFETY: the closure runs in the child between fork and exec and only calls
    // async-signal-safe functions (setsid, dup2, close_range).
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            if libc::dup2(wfd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The monitor holds nothing of its caller's beyond fds 0-3 (descriptors the
            // caller leaked without close-on-exec: sockets, other terminals).
            libc::syscall(
                libc::SYS_close_range,
                4u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| EngineError::Other(format!("starting the container monitor: {e}")))?;
    let pid = i32::try_from(child.id())
        .map_err(|_| EngineError::Other("the monitor's pid is out of range".into()))?;
    // The monitor outlives us; we never wait for it (it reparents to init when we exit).
    std::mem::forget(child);
    Ok(pid)
}

/// After a foreground start: wait for `exit N` from the monitor; returns N (or the recorded
/// exit code if the monitor vanished, 125 if there is none).
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

/// The port group of a container: the replicas of one compose service (Docker compose's
/// project and service labels, as compose and clients of the API write them) may publish the
/// same fixed host port, which spreads new connections over those that are healthy.
fn port_group(labels: &std::collections::BTreeMap<String, String>) -> Option<String> {
    let project = labels.get("com.docker.compose.project")?;
    let service = labels.get("com.docker.compose.service")?;
    let oneoff = labels.get("com.docker.compose.oneoff").map(String::as_str);
    (oneoff != Some("True")).then(|| format!("{project}/{service}"))
}
