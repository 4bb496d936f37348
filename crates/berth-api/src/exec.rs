//! Exec instances: `POST /containers/{id}/exec`, `POST /exec/{id}/start` (hijacked),
//! `GET /exec/{id}/json`. The process runs through a `berth exec` child: the builtin runtime
//! clones the calling process, which must be single-threaded.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::json;

use crate::http::{self, Resp};
use crate::router::Req;
use crate::server::App;
use crate::{ApiError, Result};

/// The body of `POST /containers/{id}/exec` (Docker's `ExecConfig`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ExecConfig {
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    tty: bool,
    cmd: Vec<String>,
    env: Option<Vec<String>>,
    user: Option<String>,
    working_dir: Option<String>,
    privileged: bool,
    detach_keys: Option<String>,
}

/// The body of `POST /exec/{id}/start`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StartConfig {
    detach: bool,
    tty: bool,
}

/// One exec instance.
pub struct ExecSession {
    id: String,
    container_id: String,
    config: ExecConfig,
    state: Mutex<ExecState>,
}

#[derive(Default)]
struct ExecState {
    running: bool,
    started: bool,
    exit_code: Option<i32>,
    pid: u32,
}

fn new_id() -> String {
    let a: u128 = rand::random();
    let b: u128 = rand::random();
    format!("{a:032x}{b:032x}")
}

/// `POST /containers/{id}/exec`: 201 `{"Id": …}`; 409 when the container is not running.
pub async fn create(app: &Arc<App>, id: String, mut r: Req) -> Result<Resp> {
    let cfg: ExecConfig = crate::containers::read_json(&mut r.inner).await?;
    if cfg.cmd.is_empty() {
        return Err(ApiError::BadParameter(
            "Cmd: no exec command specified".into(),
        ));
    }
    let c = app
        .blocking(move |store| crate::containers::find(store, &id))
        .await?;
    if c.state != berth_engine::state::State::Running {
        return Err(ApiError::Conflict(format!(
            "container {} is not running",
            c.id
        )));
    }
    let s = Arc::new(ExecSession {
        id: new_id(),
        container_id: c.id,
        config: cfg,
        state: Mutex::new(ExecState::default()),
    });
    let id = s.id.clone();
    if let Ok(mut m) = app.execs.lock() {
        m.insert(id.clone(), s);
    }
    Ok(http::json(201, &json!({"Id": id})))
}

fn session(app: &Arc<App>, id: &str) -> Result<Arc<ExecSession>> {
    app.execs
        .lock()
        .ok()
        .and_then(|m| m.get(id).cloned())
        .ok_or_else(|| ApiError::NotFound(format!("No such exec instance: {id}")))
}

/// `POST /exec/{id}/start`: hijacked stream of the process (framed unless it has a
/// terminal); with `Detach`, 200 at once.
pub async fn start(app: &Arc<App>, id: String, mut r: Req) -> Result<Resp> {
    let sc: StartConfig = crate::containers::read_json(&mut r.inner).await?;
    let s = session(app, &id)?;
    {
        let mut st = s
            .state
            .lock()
            .map_err(|_| ApiError::Internal("exec state".into()))?;
        if st.started {
            return Err(ApiError::Conflict(format!(
                "exec {id} has already been started"
            )));
        }
        st.started = true;
        st.running = true;
    }
    let tty = s.config.tty || sc.tty;
    let mut cmd = Command::new(&app.exe);
    cmd.arg("--root").arg(&app.root).arg("exec");
    if sc.detach {
        cmd.arg("-d");
    }
    if s.config.attach_stdin && !sc.detach {
        cmd.arg("-i");
    }
    if tty {
        // The client's terminal arrives over this connection, not as berth exec's stdin.
        cmd.arg("-t").arg("--relayed-tty");
    }
    if let Some(u) = s.config.user.as_deref().filter(|u| !u.is_empty()) {
        cmd.arg("-u").arg(u);
    }
    if let Some(w) = s.config.working_dir.as_deref().filter(|w| !w.is_empty()) {
        cmd.arg("-w").arg(w);
    }
    for e in s.config.env.iter().flatten() {
        cmd.arg("-e").arg(e);
    }
    if s.config.privileged {
        tracing::debug!("exec {id}: Privileged is not supported; running unprivileged");
    }
    // The detach sequence is watched by `berth exec` itself (with a terminal).
    if let Some(k) = s.config.detach_keys.as_deref().filter(|k| !k.is_empty()) {
        cmd.arg("--detach-keys").arg(k);
    }
    cmd.arg(&s.container_id).args(&s.config.cmd);
    if sc.detach {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(|e| ApiError::Internal(format!("running berth exec: {e}")))?;
        let s2 = s.clone();
        std::thread::spawn(move || {
            let code = child.wait().ok().and_then(|st| st.code()).unwrap_or(125);
            if let Ok(mut st) = s2.state.lock() {
                st.running = false;
                st.exit_code = Some(code);
            }
        });
        return Ok(http::json(200, &json!({})));
    }
    cmd.stdin(if s.config.attach_stdin {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| ApiError::Internal(format!("running berth exec: {e}")))?;
    if let Ok(mut st) = s.state.lock() {
        st.pid = child.id();
    }
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let stdin = child.stdin.take().map(std::os::fd::OwnedFd::from);
    let out = child.stdout.take().map(std::os::fd::OwnedFd::from);
    let err = child.stderr.take().map(std::os::fd::OwnedFd::from);
    let p1 = out.map(|fd| http::pump(fd, tx.clone(), 1, tty));
    let p2 = err.map(|fd| http::pump(fd, tx.clone(), 2, tty));
    let s2 = s.clone();
    std::thread::spawn(move || {
        let code = child.wait().ok().and_then(|st| st.code()).unwrap_or(125);
        if let Some(p) = p1 {
            let _ = p.join();
        }
        if let Some(p) = p2 {
            let _ = p.join();
        }
        if let Ok(mut st) = s2.state.lock() {
            st.running = false;
            st.exit_code = Some(code);
        }
        drop(tx);
    });
    Ok(http::hijack(
        &mut r.inner,
        http::stream_type(tty),
        rx,
        stdin,
    ))
}

/// `GET /exec/{id}/json`.
pub fn inspect(app: &Arc<App>, id: &str) -> Result<Resp> {
    let s = session(app, id)?;
    let st = s
        .state
        .lock()
        .map_err(|_| ApiError::Internal("exec state".into()))?;
    let doc = json!({
        "ID": s.id,
        "Running": st.running,
        "ExitCode": st.exit_code,
        "ProcessConfig": {
            "tty": s.config.tty,
            "entrypoint": s.config.cmd.first(),
            "arguments": s.config.cmd.get(1..).unwrap_or(&[]),
            "privileged": s.config.privileged,
            "user": s.config.user.clone().unwrap_or_default(),
        },
        "OpenStdin": s.config.attach_stdin,
        "OpenStderr": s.config.attach_stderr,
        "OpenStdout": s.config.attach_stdout,
        "CanRemove": false,
        "ContainerID": s.container_id,
        "DetachKeys": "",
        "Pid": st.pid,
    });
    Ok(http::json(200, &doc))
}

/// `POST /exec/{id}/resize?h=&w=`: 200; with a terminal, its size changes. 409 while the
/// process has no terminal yet (the docker CLI retries its first resize).
pub async fn resize(app: &Arc<App>, id: &str, q: &crate::http::Query) -> Result<Resp> {
    let (rows, cols) = crate::resize::size(q)?;
    let s = session(app, id)?;
    let (running, pid) = {
        let st = s
            .state
            .lock()
            .map_err(|_| ApiError::Internal("exec state".into()))?;
        (st.running, st.pid)
    };
    if !s.config.tty {
        return Ok(http::with_headers(200, "", http::empty()));
    }
    if !running || pid == 0 {
        return Err(ApiError::Conflict(format!(
            "cannot resize exec {id}: it is not running"
        )));
    }
    let pid = i32::try_from(pid).map_err(|_| ApiError::Internal("exec pid".into()))?;
    if !crate::resize::resize_pid(pid, rows, cols) {
        return Err(ApiError::Conflict(format!(
            "cannot resize exec {id}: its terminal is not open yet"
        )));
    }
    Ok(http::with_headers(200, "", http::empty()))
}
