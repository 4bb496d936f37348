//! Registry test support: Debian's `docker-registry` on a loopback port (plain HTTP, TLS with
//! a CA made here, htpasswd auth), a tiny scriptable fake registry, and upload helpers.
//! Every process started here is stopped by PID and every directory removed on drop.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

static N: AtomicUsize = AtomicUsize::new(0);

pub fn sha256_hex(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = N.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("berth-reg-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (SIGKILL, by PID) and reaped on drop.
pub struct Proc(pub Option<Child>);

impl Proc {
    pub fn pid(&self) -> u32 {
        self.0.as_ref().map(|c| c.id()).unwrap_or(0)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// TLS material: a CA and a server certificate for 127.0.0.1 / localhost signed by it.
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn make_tls(dir: &Path) -> Tls {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .expect("openssl is installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=berth test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    Tls {
        ca: dir.join("ca.crt"),
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
    }
}

/// Options for [`Registry::start`].
#[derive(Default)]
pub struct RegistryOpts {
    /// (user, password) accepted through htpasswd (bcrypt).
    pub htpasswd: Option<(String, String)>,
    pub tls: bool,
}

/// Debian's docker-registry (distribution 2.8) on 127.0.0.1:PORT.
pub struct Registry {
    pub port: u16,
    pub tls: Option<Tls>,
    proc: Proc,
    // Declared last: removed after the process is stopped.
    pub dir: TempDir,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    pub fn start(opts: RegistryOpts) -> Registry {
        let dir = TempDir::new("registry");
        let tls = opts.tls.then(|| make_tls(dir.path()));
        Self::start_in(dir, opts, tls, None)
    }

    /// A TLS registry serving the given certificate and key (made by the caller, e.g. a
    /// self-signed one-liner); with `client_ca`, it requires client certificates signed by it.
    pub fn start_with_tls(tls: Tls, client_ca: Option<&Path>) -> Registry {
        let dir = TempDir::new("registry");
        Self::start_in(dir, RegistryOpts::default(), Some(tls), client_ca)
    }

    fn start_in(
        dir: TempDir,
        opts: RegistryOpts,
        tls: Option<Tls>,
        client_ca: Option<&Path>,
    ) -> Registry {
        let mut auth = String::new();
        if let Some((u, p)) = &opts.htpasswd {
            let out = Command::new("htpasswd")
                .args(["-Bbn", u, p])
                .output()
                .expect("htpasswd (apache2-utils) is installed");
            assert!(out.status.success());
            std::fs::write(dir.path().join("htpasswd"), &out.stdout).unwrap();
            auth = format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            );
        }
        for _ in 0..5 {
            let port = free_port();
            let tls_conf = tls
                .as_ref()
                .map(|t| {
                    let clientcas = client_ca
                        .map(|c| format!("    clientcas:\n      - {}\n", c.display()))
                        .unwrap_or_default();
                    format!(
                        "  tls:\n    certificate: {}\n    key: {}\n{clientcas}",
                        t.cert.display(),
                        t.key.display()
                    )
                })
                .unwrap_or_default();
            let conf = format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: berth-test-secret\n{tls_conf}{auth}",
                dir.path().join("data").display()
            );
            let cfg = dir.path().join("config.yml");
            std::fs::write(&cfg, conf).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("docker-registry is installed");
            let mut proc = Proc(Some(child));
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Some(c) = proc.0.as_mut() {
                    if let Ok(Some(_)) = c.try_wait() {
                        break; // exited: port taken? try another
                    }
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Registry {
                        port,
                        tls,
                        proc,
                        dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            drop(proc);
        }
        panic!(
            "docker-registry did not start: {}",
            std::fs::read_to_string(dir.path().join("registry.log")).unwrap_or_default()
        );
    }

    pub fn plain() -> Registry {
        Self::start(RegistryOpts::default())
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    fn scheme(&self) -> &str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    fn curl(&self, args: &[&str]) -> std::process::Output {
        let mut c = Command::new("curl");
        c.args(["-sS", "--max-time", "30"]);
        if let Some(t) = &self.tls {
            c.arg("--cacert").arg(&t.ca);
        }
        c.args(args)
            .stdin(Stdio::null())
            .output()
            .expect("curl is installed")
    }

    /// Upload a blob (POST for a location, then one PUT) into `repo`; returns its digest.
    pub fn put_blob(&self, repo: &str, data: &[u8]) -> String {
        let d = sha256_hex(data);
        let tmp = self.dir.path().join(format!("upload-{}", &d[7..]));
        std::fs::write(&tmp, data).unwrap();
        let url = format!(
            "{}://{}/v2/{repo}/blobs/uploads/",
            self.scheme(),
            self.host()
        );
        let out = self.curl(&["-X", "POST", "-D", "-", "-o", "/dev/null", &url]);
        let head = String::from_utf8_lossy(&out.stdout).into_owned();
        let loc = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("location")
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no upload location in {head}"));
        let sep = if loc.contains('?') { '&' } else { '?' };
        let put = format!("{loc}{sep}digest={d}");
        let out = self.curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &format!("@{}", tmp.display()),
            &put,
        ]);
        let _ = std::fs::remove_file(&tmp);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "201",
            "blob upload of {d}"
        );
        d
    }

    /// Upload a manifest under `reference` (tag or digest); returns its digest.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        data: &[u8],
    ) -> String {
        let tmp = self
            .dir
            .path()
            .join(format!("manifest-{}", N.fetch_add(1, Ordering::SeqCst)));
        std::fs::write(&tmp, data).unwrap();
        let url = format!(
            "{}://{}/v2/{repo}/manifests/{reference}",
            self.scheme(),
            self.host()
        );
        let out = self.curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "PUT",
            "-H",
            &format!("Content-Type: {media_type}"),
            "--data-binary",
            &format!("@{}", tmp.display()),
            &url,
        ]);
        let _ = std::fs::remove_file(&tmp);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "201",
            "manifest upload to {url}"
        );
        sha256_hex(data)
    }
}

/// Run skopeo; returns (success, stdout, stderr).
pub fn skopeo(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("skopeo")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("skopeo is installed");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One canned answer of the fake registry.
#[derive(Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send only this many body bytes, then hold the connection open until released.
    pub stall_after: Option<usize>,
    /// Send only this many body bytes, then close (a truncated response).
    pub cut_after: Option<usize>,
    /// Apply `cut_after` to the first answer only.
    pub cut_once: bool,
    /// Honour `Range: bytes=N-` with 206 answers.
    pub ranges: bool,
}

impl Canned {
    /// An error answer with an OCI error document and extra headers (e.g. `Retry-After`).
    pub fn error(status: u16, code: &str, message: &str, headers: &[(&str, &str)]) -> Canned {
        let mut h: Vec<(String, String)> = vec![("Content-Type".into(), "application/json".into())];
        h.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Canned {
            status,
            headers: h,
            body: format!(r#"{{"errors":[{{"code":"{code}","message":"{message}"}}]}}"#)
                .into_bytes(),
            stall_after: None,
            cut_after: None,
            cut_once: false,
            ranges: false,
        }
    }

    /// `self`, but the connection is reset after `n` body bytes.
    pub fn reset_after(mut self, n: usize) -> Canned {
        self.cut_after = Some(n);
        self.headers.push((RESET_MARK.into(), "1".into()));
        self
    }

    pub fn ok(content_type: &str, body: Vec<u8>) -> Canned {
        Canned {
            status: 200,
            headers: vec![
                ("Content-Type".into(), content_type.into()),
                ("Docker-Content-Digest".into(), sha256_hex(&body)),
            ],
            body,
            stall_after: None,
            cut_after: None,
            cut_once: false,
            ranges: false,
        }
    }
}

struct FakeState {
    routes: HashMap<String, Canned>,
    /// One-shot answers served (in order) before `routes`' answer for the path.
    once: HashMap<String, std::collections::VecDeque<Canned>>,
    log: Vec<String>,
    /// When set: every request but `/token` needs `Authorization: Bearer <token>`, and
    /// `/token` hands the token out to `Basic <basic>` (or to anyone when `basic` is None).
    bearer: Option<(String, Option<String>)>,
}

/// A minimal HTTP/1.1 registry on 127.0.0.1 serving canned answers by path (`GET /v2/` answers
/// 200 by default; unknown paths 404 with an error document). Stops its threads on drop.
pub struct FakeRegistry {
    pub port: u16,
    state: Arc<Mutex<FakeState>>,
    stop: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeRegistry {
    pub fn start() -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(FakeState {
            routes: HashMap::new(),
            once: HashMap::new(),
            log: Vec::new(),
            bearer: None,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        let (st, sp, rl) = (state.clone(), stop.clone(), release.clone());
        let thread = std::thread::spawn(move || {
            let mut workers = Vec::new();
            while !sp.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (st, sp, rl) = (st.clone(), sp.clone(), rl.clone());
                        workers.push(std::thread::spawn(move || serve(conn, st, sp, rl)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            for w in workers {
                let _ = w.join();
            }
        });
        FakeRegistry {
            port,
            state,
            stop,
            release,
            thread: Some(thread),
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn route(&self, path: &str, c: Canned) {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(path.to_string(), c);
    }

    /// Answer the next request for `path` with `c`, once (queued behind earlier ones), before
    /// the path's regular answer.
    pub fn route_once(&self, path: &str, c: Canned) {
        self.state
            .lock()
            .unwrap()
            .once
            .entry(path.to_string())
            .or_default()
            .push_back(c);
    }

    /// Require Bearer tokens from `/token` (see `FakeState::bearer`).
    pub fn require_bearer(&self, token: &str, basic: Option<&str>) {
        self.state.lock().unwrap().bearer = Some((token.into(), basic.map(String::from)));
    }

    /// Requests seen so far (`METHOD /path`; `/token` with its query).
    pub fn log(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    /// Let stalled responses finish (they then close without sending the rest).
    pub fn release_stalled(&self) {
        self.release.store(true, Ordering::SeqCst);
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.release.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    conn: TcpStream,
    st: Arc<Mutex<FakeState>>,
    stop: Arc<AtomicBool>,
    release: Arc<AtomicBool>,
) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut w = conn;
    loop {
        // Wait for a request while the client keeps the connection idle; a TLS handshake
        // (first byte 0x16) is refused by closing, so clients fall back to plain HTTP.
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            match reader.fill_buf() {
                Ok([]) => return,
                Ok(b) if b[0] == 0x16 => return,
                Ok(_) => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return,
            }
        }
        let mut line = String::new();
        loop {
            if stop.load(Ordering::SeqCst) {
                return;
            }
            match reader.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => break,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if !line.is_empty() {
                        continue;
                    }
                }
                Err(_) => return,
            }
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut content_length = 0usize;
        let mut authorization = String::new();
        let mut range_start: Option<usize> = None;
        loop {
            let mut h = String::new();
            match reader.read_line(&mut h) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    continue
                }
                Err(_) => return,
            }
            let t = h.trim();
            if t.is_empty() {
                break;
            }
            if let Some((k, v)) = t.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    content_length = v.trim().parse().unwrap_or(0);
                }
                if k.eq_ignore_ascii_case("range") {
                    range_start = v
                        .trim()
                        .strip_prefix("bytes=")
                        .and_then(|r| r.strip_suffix('-'))
                        .and_then(|n| n.parse().ok());
                }
                if k.eq_ignore_ascii_case("authorization") {
                    authorization = v.trim().to_string();
                }
            }
        }
        let mut body = vec![0u8; content_length];
        let _ = reader.read_exact(&mut body);
        let path_only = path.split('?').next().unwrap_or("").to_string();
        let port = w.local_addr().map(|a| a.port()).unwrap_or(0);
        let (canned, bearer) = {
            let mut s = st.lock().unwrap();
            if path_only == "/token" {
                s.log.push(format!("{method} {path}"));
            } else {
                s.log.push(format!("{method} {path_only}"));
            }
            let once = s.once.get_mut(&path_only).and_then(|q| q.pop_front());
            (
                once.or_else(|| s.routes.get(&path_only).cloned()),
                s.bearer.clone(),
            )
        };
        let unauthorized = |challenge: String| Canned {
            status: 401,
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("WWW-Authenticate".into(), challenge),
            ],
            body: br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#
                .to_vec(),
            stall_after: None,
            cut_after: None,
            cut_once: false,
            ranges: false,
        };
        let forced = match &bearer {
            Some((token, basic)) if path_only == "/token" => {
                let ok = match basic {
                    None => true,
                    Some(b) => authorization == format!("Basic {b}"),
                };
                Some(if ok {
                    Canned::ok(
                        "application/json",
                        format!(r#"{{"token":"{token}"}}"#).into_bytes(),
                    )
                } else {
                    unauthorized(r#"Basic realm="token""#.into())
                })
            }
            Some((token, _)) if authorization != format!("Bearer {token}") => {
                let repo = path_only
                    .strip_prefix("/v2/")
                    .and_then(|p| {
                        p.rsplit_once("/manifests/")
                            .or_else(|| p.rsplit_once("/blobs/"))
                    })
                    .map(|(r, _)| format!(",scope=\"repository:{r}:pull\""))
                    .unwrap_or_default();
                Some(unauthorized(format!(
                    r#"Bearer realm="http://127.0.0.1:{port}/token",service="fake"{repo}"#
                )))
            }
            _ => None,
        };
        let c = match forced.or(canned) {
            Some(c) => c,
            None if path_only == "/v2/" => Canned::ok("application/json", b"{}".to_vec()),
            None => Canned {
                status: 404,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: br#"{"errors":[{"code":"NOT_FOUND","message":"no such thing"}]}"#.to_vec(),
                stall_after: None,
                cut_after: None,
                cut_once: false,
                ranges: false,
            },
        };
        let mut c = c;
        if c.cut_once && c.cut_after.is_some() {
            if let Some(r) = st.lock().unwrap().routes.get_mut(&path_only) {
                r.cut_after = None;
            }
        }
        if let (true, Some(start), 200) = (c.ranges, range_start, c.status) {
            let total = c.body.len();
            let start = start.min(total);
            c.status = 206;
            c.headers.push((
                "Content-Range".into(),
                format!("bytes {start}-{}/{total}", total.saturating_sub(1)),
            ));
            c.body = c.body[start..].to_vec();
        }
        let reset = c.headers.iter().any(|(k, _)| k == RESET_MARK);
        c.headers.retain(|(k, _)| k != RESET_MARK);
        let mut head = format!(
            "HTTP/1.1 {} X\r\nContent-Length: {}\r\n",
            c.status,
            c.body.len()
        );
        for (k, v) in &c.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        if w.write_all(head.as_bytes()).is_err() {
            return;
        }
        if method == "HEAD" {
            continue;
        }
        let limit = c
            .stall_after
            .or(c.cut_after)
            .unwrap_or(c.body.len())
            .min(c.body.len());
        if w.write_all(&c.body[..limit]).is_err() {
            return;
        }
        let _ = w.flush();
        if c.stall_after.is_some() {
            while !release.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            return;
        }
        if c.cut_after.is_some() {
            if reset {
                // SO_LINGER 0: closing sends RST, a "connection reset by peer".
                let _ = rustix::net::sockopt::set_socket_linger(&w, Some(Duration::ZERO));
            }
            return;
        }
    }
}

/// Header name marking a canned answer whose connection is reset (not closed) after
/// `cut_after` bytes; never sent.
const RESET_MARK: &str = "X-Fake-Reset";

/// Wait for `cond`, panicking with `what` after `secs`.
pub fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}
