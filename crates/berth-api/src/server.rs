//! Listening (a unix socket, loopback TCP, or the socket systemd passes), connections,
//! the idle timer, and the shared state of the service.

use std::collections::HashMap;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, UnixListener};

use crate::{ApiError, Result, ServiceOptions, DEFAULT_SOCKET};

/// Pipes of an attach connection waiting for its container to start: the container's ends.
pub(crate) struct PendingAttach {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// State shared by every request.
pub(crate) struct App {
    /// Store root.
    pub root: PathBuf,
    /// The berth binary (exec runs `berth exec`).
    pub exe: PathBuf,
    /// Attach connections made before `start`, by container id.
    pub attaches: Mutex<HashMap<String, PendingAttach>>,
    /// Exec instances, by exec id.
    pub execs: Mutex<HashMap<String, Arc<crate::exec::ExecSession>>>,
    /// Store handles kept between requests ([`App::blocking`]).
    stores: Mutex<Vec<berth_store::Store>>,
    /// Wake-ups of `wait` requests, by container id: each waiting request's eventfd, rung
    /// when this service changes the container or hears of its exit ([`App::ring`]).
    bells: Mutex<HashMap<String, Vec<Arc<nix::sys::eventfd::EventFd>>>>,
    /// Container monitors this service started (its children): reaped when they exit, so
    /// no zombie is left behind.
    monitors: Mutex<Vec<i32>>,
    /// Open connections.
    active: AtomicUsize,
    /// When the last connection ended (or the service started).
    last: Mutex<Instant>,
}

/// How many store handles [`App::blocking`] keeps between requests.
const SPARE_STORES: usize = 2;

/// A `wait` request's registration for wake-ups ([`App::bell`]); unregisters on drop.
pub(crate) struct Bell {
    app: Arc<App>,
    id: String,
    /// Readable (counter above zero) after a ring.
    pub fd: Arc<nix::sys::eventfd::EventFd>,
}

impl Bell {
    /// Reset the counter after a ring (nonblocking; nothing to read is fine).
    pub fn clear(&self) {
        let _ = self.fd.read();
    }
}

impl Drop for Bell {
    fn drop(&mut self) {
        if let Ok(mut m) = self.app.bells.lock() {
            if let Some(v) = m.get_mut(&self.id) {
                v.retain(|b| !Arc::ptr_eq(b, &self.fd));
                if v.is_empty() {
                    m.remove(&self.id);
                }
            }
        }
    }
}

impl App {
    /// Register for wake-ups about container `id` (a `wait` request). Errors: no eventfd.
    pub fn bell(self: &Arc<Self>, id: &str) -> Result<Bell> {
        use nix::sys::eventfd::{EfdFlags, EventFd};
        let fd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
            .map(Arc::new)
            .map_err(|e| ApiError::Internal(format!("eventfd: {e}")))?;
        if let Ok(mut m) = self.bells.lock() {
            m.entry(id.to_string()).or_default().push(fd.clone());
        }
        Ok(Bell {
            app: self.clone(),
            id: id.to_string(),
            fd,
        })
    }

    /// Wake the `wait` requests on container `id`: it was started, stopped, removed, or its
    /// monitor reported its exit, so they look at the store again now instead of at their
    /// next poll.
    pub fn ring(&self, id: &str) {
        if let Ok(m) = self.bells.lock() {
            for b in m.get(id).into_iter().flatten() {
                let _ = b.write(1);
            }
        }
    }

    /// Ring for container `id` when its monitor reports the exit on `sync` (the pipe
    /// [`berth_engine::ops::Started::sync`] of an attached start: `exit CODE` comes once the
    /// row says so, before the monitor's last cleanup) and when the pipe closes.
    pub fn ring_on_exit(self: &Arc<Self>, id: &str, sync: std::io::BufReader<std::fs::File>) {
        use std::io::BufRead;
        let app = self.clone();
        let id = id.to_string();
        let _ = std::thread::Builder::new()
            .name("berth-api-exit".into())
            .spawn(move || {
                for line in sync.lines() {
                    match line {
                        Ok(l) if l.starts_with("exit ") => app.ring(&id),
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
                app.ring(&id);
            });
    }

    /// Remember the monitor of container `id` (just started by this service) for reaping.
    pub fn watch_monitor(&self, store: &berth_store::Store, id: &str) {
        let Ok(Some(c)) = berth_engine::state::get(store, id) else {
            return;
        };
        if let (Some(pid), Ok(mut m)) = (c.monitor_pid, self.monitors.lock()) {
            if !m.contains(&pid) {
                m.push(pid);
            }
        }
        self.reap();
    }

    /// Reap the monitors that have exited (`waitpid(WNOHANG)` on each; exec children are
    /// waited for by their own threads and never touched here).
    pub fn reap(&self) {
        let Ok(mut m) = self.monitors.lock() else {
            return;
        };
        m.retain(|&pid| {
            matches!(
                nix::sys::wait::waitpid(
                    nix::unistd::Pid::from_raw(pid),
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG)
                ),
                Ok(nix::sys::wait::WaitStatus::StillAlive)
            )
        });
    }

    /// Run `f` with a store handle on a plain thread (library calls block; the registry
    /// client starts its own runtime, which must not happen on a runtime thread). Handles
    /// are kept for the next request ([`SPARE_STORES`] at most): a connection holds no state
    /// of the service's own, and reusing it saves opening the database and checking every
    /// component's schema again on each request.
    pub async fn blocking<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&berth_store::Store) -> Result<T> + Send + 'static,
    {
        let app = self.clone();
        run_blocking(move || {
            let spare = app.stores.lock().ok().and_then(|mut v| v.pop());
            let store = match spare {
                Some(s) => s,
                None => berth_store::Store::open(&app.root)?,
            };
            let res = f(&store);
            if let Ok(mut v) = app.stores.lock() {
                if v.len() < SPARE_STORES {
                    v.push(store);
                }
            }
            res
        })
        .await
    }
}

/// Run `f` on a new thread and wait for its result.
pub(crate) async fn run_blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("berth-api-work".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| ApiError::Internal(format!("starting a worker thread: {e}")))?;
    rx.await
        .map_err(|_| ApiError::Internal("the request's worker thread failed".into()))?
}

enum Listener {
    Unix(UnixListener, Option<PathBuf>),
    Tcp(TcpListener),
}

/// Serve the Docker Engine API until idle for `opts.idle` (or killed). Blocks.
///
/// Errors: the socket cannot be created (in use by a live service, no permission), a TCP
/// address that is not loopback.
pub fn serve(opts: ServiceOptions) -> Result<()> {
    // Idle memory: one malloc arena per pair of threads instead of eight per core (request
    // threads come and go), and what they freed is returned to the kernel once the service
    // is quiet (see the idle tick).
    // SAFETY: mallopt only changes glibc's allocator tuning; called before other threads
    // exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
    // One thread runs every connection (I/O only); library work runs on request threads.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ApiError::Internal(format!("starting the runtime: {e}")))?;
    rt.block_on(serve_async(opts))
}

async fn serve_async(opts: ServiceOptions) -> Result<()> {
    let listener = listen(opts.listen.as_deref())?;
    let app = Arc::new(App {
        root: opts.root.clone(),
        exe: opts.exe.clone(),
        attaches: Mutex::new(HashMap::new()),
        execs: Mutex::new(HashMap::new()),
        stores: Mutex::new(Vec::new()),
        bells: Mutex::new(HashMap::new()),
        monitors: Mutex::new(Vec::new()),
        active: AtomicUsize::new(0),
        last: Mutex::new(Instant::now()),
    });
    let socket_path = match &listener {
        Listener::Unix(_, p) => p.clone(),
        Listener::Tcp(_) => None,
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| ApiError::Internal(format!("signal handler: {e}")))?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| ApiError::Internal(format!("signal handler: {e}")))?;
    let mut chld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())
        .map_err(|e| ApiError::Internal(format!("signal handler: {e}")))?;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut trimmed = true;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = chld.recv() => app.reap(),
            _ = tick.tick() => {
                let quiet_for = if app.active.load(Ordering::SeqCst) == 0 {
                    app.last.lock().map(|l| l.elapsed()).unwrap_or_default()
                } else {
                    Duration::ZERO
                };
                if let Some(idle) = opts.idle {
                    if quiet_for >= idle {
                        tracing::info!("idle for {idle:?}: exiting");
                        break;
                    }
                }
                if !trimmed && quiet_for >= Duration::from_secs(1) {
                    // SAFETY: malloc_trim only returns free heap pages to the kernel.
                    unsafe {
                        libc::malloc_trim(0);
                    }
                    trimmed = true;
                }
            }
            conn = accept(&listener) => {
                match conn {
                    Ok(io) => {
                        trimmed = false;
                        spawn_connection(&app, io);
                    }
                    Err(e) => {
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    }
    if let Some(p) = socket_path {
        let _ = std::fs::remove_file(p);
    }
    Ok(())
}

enum Conn {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

async fn accept(l: &Listener) -> std::io::Result<Conn> {
    match l {
        Listener::Unix(u, _) => u.accept().await.map(|(s, _)| Conn::Unix(s)),
        Listener::Tcp(t) => t.accept().await.map(|(s, _)| {
            let _ = s.set_nodelay(true);
            Conn::Tcp(s)
        }),
    }
}

fn spawn_connection(app: &Arc<App>, conn: Conn) {
    let app = app.clone();
    app.active.fetch_add(1, Ordering::SeqCst);
    tokio::spawn(async move {
        let svc_app = app.clone();
        let svc = service_fn(move |req| {
            let app = svc_app.clone();
            async move { Ok::<_, std::convert::Infallible>(crate::router::route(app, req).await) }
        });
        let builder = hyper::server::conn::http1::Builder::new();
        let res = match conn {
            Conn::Unix(s) => {
                builder
                    .serve_connection(TokioIo::new(s), svc)
                    .with_upgrades()
                    .await
            }
            Conn::Tcp(s) => {
                builder
                    .serve_connection(TokioIo::new(s), svc)
                    .with_upgrades()
                    .await
            }
        };
        if let Err(e) = res {
            tracing::debug!("connection: {e}");
        }
        if let Ok(mut l) = app.last.lock() {
            *l = Instant::now();
        }
        app.active.fetch_sub(1, Ordering::SeqCst);
    });
}

/// The socket systemd passed (`LISTEN_PID` = us, `LISTEN_FDS` ≥ 1: fd 3).
fn systemd_listener() -> Option<Listener> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let fds: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if pid != std::process::id() || fds < 1 {
        return None;
    }
    // SAFETY: systemd passes the listening socket as fd 3 (SD_LISTEN_FDS_START) for this pid;
    // nothing else in this process owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(3) };
    let is_unix = rustix::net::getsockname(&fd)
        .map(|a| a.address_family() == rustix::net::AddressFamily::UNIX)
        .unwrap_or(false);
    if is_unix {
        let std = std::os::unix::net::UnixListener::from(fd);
        std.set_nonblocking(true).ok()?;
        UnixListener::from_std(std)
            .ok()
            .map(|l| Listener::Unix(l, None))
    } else {
        let std = std::net::TcpListener::from(fd);
        std.set_nonblocking(true).ok()?;
        TcpListener::from_std(std).ok().map(Listener::Tcp)
    }
}

/// The default socket: root's [`DEFAULT_SOCKET`], else `$XDG_RUNTIME_DIR/berth/docker.sock`.
pub fn default_socket() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        return PathBuf::from(DEFAULT_SOCKET);
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) => Path::new(&d).join("berth/docker.sock"),
        None => PathBuf::from(format!(
            "/run/user/{}/berth/docker.sock",
            rustix::process::geteuid().as_raw()
        )),
    }
}

fn listen(uri: Option<&str>) -> Result<Listener> {
    if uri.is_none() {
        if let Some(l) = systemd_listener() {
            return Ok(l);
        }
    }
    let uri = uri
        .map(str::to_string)
        .unwrap_or_else(|| format!("unix://{}", default_socket().display()));
    if let Some(path) = uri.strip_prefix("unix://") {
        return listen_unix(Path::new(path));
    }
    if let Some(addr) = uri.strip_prefix("tcp://") {
        let sa: std::net::SocketAddr = addr.parse().map_err(|_| {
            ApiError::BadParameter(format!(
                "invalid address {uri:?}: use tcp://127.0.0.1:PORT or unix:///path"
            ))
        })?;
        if !sa.ip().is_loopback() {
            return Err(ApiError::BadParameter(format!(
                "refusing to listen on {addr}: the API gives root on this host to anyone who reaches it; use a loopback address (tcp://127.0.0.1:PORT) or a unix socket"
            )));
        }
        let std = std::net::TcpListener::bind(sa).map_err(|e| ApiError::Listen {
            what: format!("binding {addr}"),
            source: e,
        })?;
        std.set_nonblocking(true).map_err(|e| ApiError::Listen {
            what: format!("binding {addr}"),
            source: e,
        })?;
        return TcpListener::from_std(std)
            .map(Listener::Tcp)
            .map_err(|e| ApiError::Listen {
                what: format!("binding {addr}"),
                source: e,
            });
    }
    Err(ApiError::BadParameter(format!(
        "invalid address {uri:?}: use unix:///path or tcp://127.0.0.1:PORT"
    )))
}

fn listen_unix(path: &Path) -> Result<Listener> {
    let err = |what: String| move |e: std::io::Error| ApiError::Listen { what, source: e };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err(format!("creating {}", dir.display())))?;
    }
    if path.exists() {
        // A socket nobody answers on is left over from a killed service.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ApiError::Listen {
                what: format!(
                    "{}: another service is listening there; stop it or choose another socket",
                    path.display()
                ),
                source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
            });
        }
        std::fs::remove_file(path).map_err(err(format!("removing {}", path.display())))?;
    }
    let std = std::os::unix::net::UnixListener::bind(path)
        .map_err(err(format!("binding {}", path.display())))?;
    // 0660 root:berth, like Docker's socket with its docker group.
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660));
    if let Ok(Some(g)) = nix::unistd::Group::from_name("berth") {
        let _ = nix::unistd::chown(path, None, Some(g.gid));
    }
    std.set_nonblocking(true)
        .map_err(err(format!("binding {}", path.display())))?;
    let l = UnixListener::from_std(std).map_err(err(format!("binding {}", path.display())))?;
    Ok(Listener::Unix(l, Some(path.to_path_buf())))
}
