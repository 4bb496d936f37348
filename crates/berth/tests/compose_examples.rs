//! The seed's examples (examples/lamp, examples/flask) come up with one command, serve their
//! pages and come down leaving nothing (root; builds Debian-based images, so packages come
//! from Debian's mirror: slow). The base image is a debootstrapped bookworm, kept as a tar
//! under /var/cache/berth-test between runs.

mod common;
#[path = "common/net.rs"]
mod net;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::TestEnv;
use net::{http_get, is_root, NetEnv};

const BASE_TAR: &str = "/var/cache/berth-test/bookworm-minbase.tar";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Copy an example into the test's scratch area and import the base image.
fn prepare(env: &TestEnv, name: &str) -> Option<PathBuf> {
    if !is_root() {
        eprintln!("skipped: needs root");
        return None;
    }
    let dst = env.path(name);
    let st = Command::new("cp")
        .args([
            "-a",
            examples().join(name).to_str().unwrap(),
            dst.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let out = Command::new(examples().join("setup-base.sh"))
        .env("BERTH", env!("CARGO_BIN_EXE_berth"))
        .env("BERTH_ROOT", &env.root)
        .env("BASE_TAR", BASE_TAR)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "setup-base.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(dst)
}

fn compose(
    env: &TestEnv,
    dir: &Path,
    args: &[&str],
    vars: &[(&str, String)],
) -> std::process::Output {
    let mut c = env.cmd(&["compose"]);
    c.args(args).current_dir(dir).stdin(Stdio::null());
    for (k, v) in vars {
        c.env(k, v);
    }
    c.output().unwrap()
}

#[track_caller]
fn ok(out: std::process::Output) -> (String, String) {
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "failed:\nstdout: {o}\nstderr: {e}");
    (o, e)
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

#[test]
fn lamp_up_serves_rows_from_the_database_and_down_leaves_nothing() {
    let env = TestEnv::new();
    let net = NetEnv::new(&env);
    let Some(dir) = prepare(&env, "lamp") else {
        return;
    };
    let web = free_port();
    let vars = vec![
        ("HOST_MACHINE_UNSECURE_HOST_PORT", web.to_string()),
        ("HOST_MACHINE_SECURE_HOST_PORT", free_port().to_string()),
        ("HOST_MACHINE_MYSQL_PORT", free_port().to_string()),
    ];
    let (_, err) = ok(compose(&env, &dir, &["up", "-d"], &vars));
    assert!(err.contains("Container mysql  Started"), "{err}");
    // The page reads rows from the database by service name (once MariaDB is initialised).
    let mut body = String::new();
    for _ in 0..120 {
        body = http_get(local(web), "/", Duration::from_secs(2)).unwrap_or_default();
        if body.contains("hello from mariadb") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(body.contains("<li>hello from mariadb</li>"), "{body}");
    let (ps, _) = ok(compose(&env, &dir, &["ps"], &vars));
    assert!(
        ps.contains("7.4.x-webserver") && ps.contains("mysql"),
        "{ps}"
    );
    let (sel, _) = ok(compose(
        &env,
        &dir,
        &[
            "exec", "-T", "mysql", "mariadb", "-uroot", "-ptiger", "-N", "-e", "select 1",
        ],
        &vars,
    ));
    assert_eq!(sel.trim(), "1");
    // Apache's logs land in the bind-mounted directory.
    assert!(dir.join("logs/apache2/access.log").exists());
    // Nothing changed: nothing rebuilt or recreated.
    let (_, err) = ok(compose(&env, &dir, &["up", "-d"], &vars));
    assert!(
        !err.contains("Recreated") && !err.contains("Built"),
        "{err}"
    );
    // `down` and `up` at once (a bench hung here: the page waited on name resolution of a
    // network whose DNS server was the removed network's): the page comes back.
    ok(compose(&env, &dir, &["down"], &vars));
    ok(compose(&env, &dir, &["up", "-d"], &vars));
    for _ in 0..120 {
        body = http_get(local(web), "/", Duration::from_secs(5)).unwrap_or_default();
        if body.contains("hello from mariadb") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(body.contains("<li>hello from mariadb</li>"), "{body}");
    ok(compose(&env, &dir, &["down", "-v"], &vars));
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

#[test]
fn flask_up_attached_serves_and_ctrl_c_stops() {
    let env = TestEnv::new();
    let net = NetEnv::new(&env);
    let Some(dir) = prepare(&env, "flask") else {
        return;
    };
    let port = free_port();
    let file = dir.join("docker-compose.yml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("\"8080:8080\"", &format!("\"{port}:8080\"")),
    )
    .unwrap();
    // Build first (attached up would interleave the build output).
    ok(compose(&env, &dir, &["build"], &[]));
    let mut child = env
        .cmd(&["compose", "up"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let body = http_get(local(port), "/", Duration::from_secs(60));
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(i32::try_from(child.id()).unwrap(), libc::SIGINT);
    }
    let status = child.wait().unwrap();
    let lines = reader.join().unwrap();
    assert_eq!(
        body.as_deref(),
        Some("Hello from Flask on berth!\n"),
        "{lines:?}"
    );
    assert!(status.success(), "{status:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("web-1 | ") && l.contains("Debug mode: on")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("web-1 | ") && l.contains("\"GET / HTTP/1.0\" 200")),
        "{lines:?}"
    );
    ok(compose(&env, &dir, &["down"], &[]));
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}
