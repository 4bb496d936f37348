//! The CLI side of interactive work: foreground `run`/`start -a` (signals and window size
//! forwarded to the monitor/container) and `exec` (the process runs as our child).

use std::io::BufRead;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::signalfd::{SfdFlags, SignalFd};

use berth_store::Store;

use crate::fdio::{copy_winsize, exit_code, reap, signal_set, write_all};
use crate::ops::Started;
use crate::rootfs::Bundle;
use crate::runtime::{ConsoleSocket, ExecHandle, StdioFds};
use crate::state::{self, Container, State};
use crate::{EngineError, Result};

pub use crate::terminal::{isatty, RawMode};

/// Wait for a foreground container, forwarding signals (Ctrl-C stops it) and window size.
pub fn foreground(store: &Store, c: &Container, started: &mut Started, tty: bool) -> i32 {
    foreground_with(store, c, started, tty, true)
}

/// [`foreground`] with `--sig-proxy`: when `sig_proxy` is false, signals are not forwarded
/// to the container; they act on berth itself (Ctrl-C ends the CLI, the container keeps
/// running), as Docker's `--sig-proxy=false`.
pub fn foreground_with(
    store: &Store,
    c: &Container,
    started: &mut Started,
    tty: bool,
    sig_proxy: bool,
) -> i32 {
    let _raw = RawMode::enable(tty && isatty(0));
    if !sig_proxy {
        return crate::ops::wait_attached(store, &c.id, started);
    }
    let set = signal_set(&[
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGWINCH,
    ]);
    let _ = set.thread_block();
    let Ok(sfd) = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) else {
        return crate::ops::wait_attached(store, &c.id, started);
    };
    // Ctrl-C is forwarded; a container that is still running shortly after (PID 1 ignores
    // SIGINT unless it installs a handler) is killed, so Ctrl-C always stops it.
    let mut kill_at: Option<std::time::Instant> = None;
    loop {
        let sync_fd = started.sync.get_ref().as_fd();
        let buffered = !started.sync.buffer().is_empty();
        let mut fds = [
            PollFd::new(sync_fd, PollFlags::POLLIN),
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
        ];
        if !buffered {
            let timeout = match kill_at {
                Some(t) => {
                    let left = t.saturating_duration_since(std::time::Instant::now());
                    PollTimeout::from(left.as_millis().min(60_000) as u16)
                }
                None => PollTimeout::NONE,
            };
            match poll(&mut fds, timeout) {
                Ok(0) => {
                    if kill_at.is_some_and(|t| std::time::Instant::now() >= t) {
                        // SAFETY: kill(2) has no memory effects.
                        unsafe {
                            libc::kill(started.pid, libc::SIGKILL);
                        }
                        kill_at = None;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
        let sync_ready = buffered || fds[0].revents().map(|r| !r.is_empty()).unwrap_or(false);
        let sig_ready = fds[1].revents().map(|r| !r.is_empty()).unwrap_or(false);
        if sig_ready {
            while let Ok(Some(si)) = sfd.read_signal() {
                let s = i32::try_from(si.ssi_signo).unwrap_or(0);
                if s == libc::SIGWINCH {
                    // SAFETY: kill(2) has no memory effects.
                    unsafe {
                        libc::kill(started.monitor_pid, libc::SIGWINCH);
                    }
                    continue;
                }
                // SAFETY: kill(2) has no memory effects.
                unsafe {
                    libc::kill(started.pid, s);
                }
                if s == libc::SIGINT || s == libc::SIGTERM {
                    let grace = std::time::Duration::from_secs(2);
                    kill_at.get_or_insert(std::time::Instant::now() + grace);
                }
            }
        }
        if sync_ready {
            let mut line = String::new();
            match started.sync.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {
                    if let Some(code) = line.trim_end().strip_prefix("exit ") {
                        return code.parse().unwrap_or(125);
                    }
                }
                Err(_) => break,
            }
        }
    }
    match state::get(store, &c.id) {
        Ok(Some(c)) => c.exit_code.unwrap_or(125),
        _ => 125,
    }
}

/// Options of `exec`.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// The command and its arguments (argv; a name without `/` is looked up in `PATH`).
    pub args: Vec<String>,
    /// `-e`/`--env-file`: extra `KEY=VALUE` entries over the container's environment (see
    /// [`exec_env`]).
    pub env: Vec<String>,
    /// `-u USER[:GROUP]` (`None`: the container's user).
    pub user: Option<String>,
    /// `-w`: the working directory (`None`: the container's).
    pub workdir: Option<String>,
    /// `-t`: give the process a pseudo-terminal.
    pub tty: bool,
    /// `-i`: keep stdin open and forward it.
    pub interactive: bool,
    /// `-d`: start the process and return without waiting for it.
    pub detach: bool,
}

/// The environment of an exec process, as Docker builds it: the default PATH, HOSTNAME and
/// (with a terminal) TERM, then the container's configured environment (image `ENV` and
/// `run -e`/`--env-file`), then the exec's own `-e`/`--env-file` (`extra`, `KEY=VALUE`);
/// HOME, when still unset, is the exec user's home from its passwd entry (`home`). Nothing
/// is taken from the main process's runtime environment (its HOME belongs to its user).
/// `hostname` and `configured` are the container's hostname and configured environment.
pub fn exec_env(
    hostname: &str,
    configured: &[String],
    tty: bool,
    home: &str,
    extra: &[String],
) -> Vec<String> {
    let mut base = vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        format!("HOSTNAME={hostname}"),
    ];
    if tty {
        base.push("TERM=xterm".into());
    }
    let env = crate::config::merge_env(&base, configured);
    let mut env = crate::config::merge_env(&env, extra);
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
    env
}

/// Run a process in a running container; returns its exit code (0 when detached).
///
/// Errors: [`EngineError::NotFound`] when the row is gone, [`EngineError::NotRunning`] unless it
/// runs under a live monitor, [`EngineError::InvalidArgument`] for an unknown user or a missing
/// runtime binary, [`EngineError::Runtime`] when the runtime cannot start the process, store
/// and spec errors.
pub fn exec(store: &Store, c: &Container, req: &ExecRequest) -> Result<i32> {
    exec_with(store, c, req, None)
}

/// [`exec`] watching the input of a process with a terminal for the detach sequence `keys`
/// (`exec -it`): on it, the process keeps running (a background copy of this process keeps
/// its terminal open and drains its output) and [`EngineError::Detached`] is returned.
///
/// Errors: as [`exec`], and [`EngineError::Detached`] after the detach sequence.
pub fn exec_with(
    store: &Store,
    c: &Container,
    req: &ExecRequest,
    keys: Option<&crate::detach::DetachKeys>,
) -> Result<i32> {
    let fresh = state::get(store, &c.id)?.ok_or_else(|| EngineError::NotFound(c.name.clone()))?;
    if fresh.state != State::Running || !state::monitor_alive(&fresh) {
        return Err(EngineError::NotRunning(c.name.clone()));
    }
    // Fails early when the container's runtime binary is gone.
    crate::runtime::open(store.root(), c.config.runtime.as_deref())?;
    if crate::runtime::is_builtin(c.config.runtime.as_deref()) {
        // The builtin runtime clones this process into the container: run it from the
        // read-only view of berth's binary (CVE-2019-5736). Does not return when it re-execs.
        crate::exeguard::reexec_protected(&Bundle::new(store.root(), &c.id).dir);
    }
    let bundle = Bundle::new(store.root(), &c.id);
    let spec = oci_spec::runtime::Spec::load(bundle.config()).map_err(|e| {
        EngineError::Other(format!("container spec {}: {e}", bundle.config().display()))
    })?;
    let mut process = spec
        .process()
        .clone()
        .ok_or_else(|| EngineError::Other("container spec has no process".into()))?;
    // A profile unloaded since the container started is loaded again (as Docker does).
    crate::apparmor::ensure_loaded(process.apparmor_profile().as_deref())?;
    let rootfs = bundle.rootfs();
    // The exec's own user: its passwd entry gives HOME (never the main process's).
    let user_spec = req.user.as_deref().unwrap_or(&fresh.config.user);
    let user = crate::user::resolve(&rootfs, user_spec, &fresh.config.group_add)?;
    let env = exec_env(
        &fresh.config.hostname,
        &fresh.config.env,
        req.tty,
        &user.home,
        &req.env,
    );
    let cwd = req
        .workdir
        .clone()
        .unwrap_or_else(|| process.cwd().to_string_lossy().into_owned());
    match crate::rootfs::check_executable(&rootfs, &req.args[0], &env, &cwd) {
        crate::rootfs::ExecCheck::Ok => {}
        crate::rootfs::ExecCheck::NotFound => {
            return Err(EngineError::CommandNotFound(req.args[0].clone()))
        }
        crate::rootfs::ExecCheck::NotExecutable => {
            return Err(EngineError::NotExecutable(req.args[0].clone()))
        }
    }
    // Docker resolves `exec -u` like `run -u`, with the container's --group-add.
    if req.user.is_some() {
        let typed = crate::spec::process(
            &c.config.security,
            vec![],
            vec![],
            "/",
            false,
            &user,
            &[],
            c.config.resources.oom_score_adj.unwrap_or(0),
        )?;
        process.set_user(typed.user().clone());
        // The capabilities follow the user, as for the container's own process.
        process.set_capabilities(typed.capabilities().clone());
    }
    process.set_args(Some(req.args.clone()));
    process.set_env(Some(env));
    process.set_cwd(std::path::PathBuf::from(cwd));
    process.set_terminal(Some(req.tty));
    let pfile = bundle
        .dir
        .join(format!("exec-{:08x}.json", rand::random::<u32>()));
    berth_store::write_replace(&pfile, &serde_json::to_vec(&process).unwrap_or_default())?;
    let _guard = RemoveOnDrop(pfile.clone());

    let runtime = crate::runtime::open(store.root(), c.config.runtime.as_deref())?;
    // Processes whose runtime parent exits (runc exec --detach) are reparented to us.
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag only.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let mut stdio = StdioFds::default();
    let console = if req.tty {
        Some(ConsoleSocket::bind(&store.root().join("run"))?)
    } else {
        stdio.stdin = Some(if req.interactive && !req.detach {
            dup_fd(0)?
        } else {
            std::fs::File::open("/dev/null")
                .map_err(|e| EngineError::io("/dev/null", e))?
                .into()
        });
        if req.detach {
            let null = || -> Result<OwnedFd> {
                Ok(std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/null")
                    .map_err(|e| EngineError::io("/dev/null", e))?
                    .into())
            };
            stdio.stdout = Some(null()?);
            stdio.stderr = Some(null()?);
        } else {
            stdio.stdout = Some(dup_fd(1)?);
            stdio.stderr = Some(dup_fd(2)?);
        }
        None
    };
    // SAFETY: default SIGPIPE for the new process (it inherits dispositions at clone time).
    unsafe {
        let _ = nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigDfl);
    }
    let handle = runtime.exec(
        &c.id,
        &pfile,
        stdio,
        console.as_ref().map(|c| c.path.as_path()),
    );
    // SAFETY: back to ignoring SIGPIPE for ourselves.
    unsafe {
        let _ = nix::sys::signal::signal(Signal::SIGPIPE, nix::sys::signal::SigHandler::SigIgn);
    }
    let handle = handle?;
    if req.detach {
        return Ok(0);
    }
    let master = match &console {
        Some(cs) => Some(cs.receive()?),
        None => None,
    };
    match handle {
        ExecHandle::Child(mut child) => {
            let st = child
                .wait()
                .map_err(|e| EngineError::Runtime(e.to_string()))?;
            use std::os::unix::process::ExitStatusExt;
            Ok(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)))
        }
        ExecHandle::Pid(pid) => {
            let matcher = keys.filter(|_| req.tty).map(|k| k.matcher());
            match wait_with_tty(pid, master, req.interactive, matcher) {
                Waited::Exited(code) => Ok(code),
                Waited::Detached => Err(EngineError::Detached),
            }
        }
    }
}

struct RemoveOnDrop(std::path::PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn dup_fd(fd: i32) -> Result<OwnedFd> {
    // SAFETY: fd 0-2 are open for the life of the process; borrowing them to duplicate is sound.
    let b = unsafe { BorrowedFd::borrow_raw(fd) };
    b.try_clone_to_owned()
        .map_err(|e| EngineError::Other(format!("dup: {e}")))
}

enum Waited {
    Exited(i32),
    Detached,
}

/// Wait for `pid` (our child), proxying a pty master to our stdio when given; with a
/// matcher, the detach sequence on stdin leaves the process running.
fn wait_with_tty(
    pid: i32,
    master: Option<OwnedFd>,
    interactive: bool,
    mut matcher: Option<crate::detach::EscapeMatcher>,
) -> Waited {
    let set = signal_set(&[
        Signal::SIGCHLD,
        Signal::SIGWINCH,
        Signal::SIGINT,
        Signal::SIGTERM,
    ]);
    let _ = set.thread_block();
    let Ok(sfd) = SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK) else {
        return Waited::Exited(125);
    };
    let mut raw = RawMode::enable(master.is_some() && (isatty(0) || isatty(1)));
    if let Some(m) = &master {
        copy_winsize(if isatty(1) { 1 } else { 0 }, m.as_raw_fd());
    }
    let mut code: Option<i32> = None;
    let mut stdin_open = interactive && master.is_some();
    let mut master_open = master.is_some();
    let mut buf = vec![0u8; 32 * 1024];
    let mut fwd: Vec<u8> = Vec::new();
    // Send what was typed before raw mode, through the matcher like the rest.
    let pending = raw.take_pending();
    if let (Some(m), true) = (&master, stdin_open && !pending.is_empty()) {
        let detached = match matcher.as_mut() {
            Some(x) => x.feed(&pending, &mut fwd),
            None => {
                fwd.extend_from_slice(&pending);
                false
            }
        };
        write_all(m.as_raw_fd(), &fwd);
        if detached {
            drop(raw);
            keep_draining(master);
            return Waited::Detached;
        }
    }
    if let Some(ws) = reap(pid) {
        code = exit_code(ws);
    }
    loop {
        if code.is_some() && !master_open {
            break;
        }
        // SAFETY: fd 0 is open for the life of the process.
        let stdin0 = unsafe { BorrowedFd::borrow_raw(0) };
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let (true, Some(m)) = (master_open, &master) {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
        }
        let in_idx = if stdin_open {
            fds.push(PollFd::new(stdin0, PollFlags::POLLIN));
            Some(fds.len() - 1)
        } else {
            None
        };
        let timeout = if code.is_some() {
            PollTimeout::from(200u16)
        } else {
            PollTimeout::NONE
        };
        match poll(&mut fds, timeout) {
            Ok(0) if code.is_some() => break,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
        let r = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .map(|r| !r.is_empty())
                .unwrap_or(false)
        };
        let sig_ready = r(0);
        let master_ready = master_open && r(1);
        let in_ready = in_idx.map(r).unwrap_or(false);
        drop(fds);
        if sig_ready {
            while let Ok(Some(si)) = sfd.read_signal() {
                match i32::try_from(si.ssi_signo).unwrap_or(0) {
                    libc::SIGCHLD => {
                        if let Some(ws) = reap(pid) {
                            code = exit_code(ws);
                        }
                    }
                    libc::SIGWINCH => {
                        if let Some(m) = &master {
                            copy_winsize(if isatty(1) { 1 } else { 0 }, m.as_raw_fd());
                        }
                    }
                    s => {
                        // SAFETY: kill(2) has no memory effects.
                        unsafe {
                            libc::kill(pid, s);
                        }
                    }
                }
            }
        }
        if master_ready {
            let m = master.as_ref().map(|m| m.as_raw_fd()).unwrap_or(-1);
            // SAFETY: reading into our own buffer.
            let n = unsafe { libc::read(m, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                master_open = false;
            } else {
                write_all(1, &buf[..n.unsigned_abs()]);
            }
        }
        if in_ready {
            // SAFETY: reading into our own buffer.
            let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            fwd.clear();
            let mut detached = false;
            if n <= 0 {
                stdin_open = false;
                if let Some(x) = matcher.as_mut() {
                    x.flush(&mut fwd);
                }
            } else {
                let data = &buf[..n.unsigned_abs()];
                match matcher.as_mut() {
                    Some(x) => detached = x.feed(data, &mut fwd),
                    None => fwd.extend_from_slice(data),
                }
            }
            if let Some(m) = &master {
                write_all(m.as_raw_fd(), &fwd);
            }
            if detached && code.is_none() {
                drop(raw);
                keep_draining(master);
                return Waited::Detached;
            }
        }
    }
    Waited::Exited(code.unwrap_or(125))
}

/// After a detach from `exec -it`: a background copy of this process keeps the pty master
/// open (the process would get SIGHUP otherwise) and discards its output until the process
/// side closes; this process returns at once.
fn keep_draining(master: Option<OwnedFd>) {
    let Some(master) = master else { return };
    // SAFETY: the child only calls async-signal-safe functions (setsid, open, dup2, poll,
    // read, sigprocmask, _exit) on memory it owns (a stack buffer), so forking is sound even
    // if another thread held a lock.
    let pid = unsafe { libc::fork() };
    if pid != 0 {
        return;
    }
    // SAFETY: see above; every call acts on descriptors and memory this child owns.
    unsafe {
        libc::setsid();
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
        let fd = master.as_raw_fd();
        let mut buf = [0u8; 4096];
        loop {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            if libc::poll(&mut p, 1, -1) < 0 {
                if *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                break;
            }
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            if n == 0 {
                break;
            }
            if n < 0 {
                let e = *libc::__errno_location();
                if e == libc::EINTR || e == libc::EAGAIN {
                    continue;
                }
                break;
            }
        }
        libc::_exit(0);
    }
}

#[cfg(test)]
mod tests {
    use super::exec_env;

    fn get<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
        env.iter().find_map(|e| e.strip_prefix(&format!("{key}=")))
    }

    #[test]
    fn exec_environment_comes_from_the_exec_user_and_flags() {
        let configured = vec!["PATH=/opt/bin:/bin".to_string(), "APP=1".to_string()];
        // HOME from the exec user's passwd entry, not from the container's first process.
        let env = exec_env("h1", &configured, false, "/nonexistent", &[]);
        assert_eq!(get(&env, "HOME"), Some("/nonexistent"));
        assert_eq!(get(&env, "PATH"), Some("/opt/bin:/bin"));
        assert_eq!(get(&env, "HOSTNAME"), Some("h1"));
        assert_eq!(get(&env, "APP"), Some("1"));
        assert_eq!(get(&env, "TERM"), None);
        // A HOME the image or `run -e` configured stays, as with Docker.
        let with_home = vec!["HOME=/srv".to_string()];
        assert_eq!(
            get(&exec_env("h", &with_home, false, "/root", &[]), "HOME"),
            Some("/srv")
        );
        // The exec's own -e wins over everything; a terminal brings TERM.
        let env = exec_env(
            "h",
            &configured,
            true,
            "/root",
            &["HOME=/tmp".into(), "APP=2".into()],
        );
        assert_eq!(get(&env, "HOME"), Some("/tmp"));
        assert_eq!(get(&env, "APP"), Some("2"));
        assert_eq!(get(&env, "TERM"), Some("xterm"));
        // Without a PATH anywhere, Docker's default.
        let env = exec_env("h", &[], false, "/", &[]);
        assert_eq!(
            get(&env, "PATH"),
            Some("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        );
    }
}
