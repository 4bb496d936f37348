//! Container networking end to end (root): published ports, user networks with name
//! resolution, internal networks, refusals, and that nothing is left behind.

mod common;
#[path = "common/net.rs"]
mod net;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::TestEnv;
use net::{http_get, is_root, load_image, NetEnv};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

macro_rules! setup {
    ($env:ident, $net:ident, $img:expr, $expose:expr) => {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let $env = TestEnv::new();
        let $net = NetEnv::new(&$env);
        if !load_image(&$env, $img, $expose) {
            return;
        }
    };
}

#[test]
fn published_ports_from_host_and_containers() {
    setup!(env, net, "nettest/web:1", &["80/tcp"]);
    let (p1, p2) = (free_port(), free_port());
    env.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--hostname",
        "webhost",
        "-p",
        &format!("127.0.0.1:{p1}:80"),
        "-p",
        &format!("{p2}:80/tcp"),
        "nettest/web:1",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let body = http_get(local(p1), "/hostname", Duration::from_secs(10)).expect("127.0.0.1 port");
    assert_eq!(body.trim(), "webhost");
    let body = http_get(local(p2), "/hostname", Duration::from_secs(5)).expect("0.0.0.0 port");
    assert_eq!(body.trim(), "webhost");
    let ports = env.ok(&["port", "web"]);
    assert!(
        ports.contains(&format!("80/tcp -> 127.0.0.1:{p1}")),
        "{ports}"
    );
    assert!(
        ports.contains(&format!("80/tcp -> 0.0.0.0:{p2}")),
        "{ports}"
    );

    // Hairpin: another container reaches the published port through a host address.
    let out = env.ok(&[
        "run",
        "--rm",
        "nettest/web:1",
        "wget",
        "-qO-",
        &format!("http://{}:{p2}/hostname", net.bridge_gateway()),
    ]);
    assert_eq!(out.trim(), "webhost");

    // Random host port (-p CTR) and -P for the image's EXPOSE.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "rnd",
        "-p",
        "80",
        "nettest/web:1",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let hp = env.ok(&["port", "rnd", "80/tcp"]);
    let port: u16 = hp.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        http_get(local(port), "/hostname", Duration::from_secs(10)).is_some(),
        "random port {hp}"
    );
    env.ok(&[
        "run",
        "-d",
        "--name",
        "all",
        "-P",
        "nettest/web:1",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let hp = env.ok(&["port", "all"]);
    assert!(hp.starts_with("80/tcp -> 0.0.0.0:"), "{hp}");

    // A range: two host ports to two container ports.
    let base = loop {
        let b = free_port();
        if b < 65000 && std::net::TcpListener::bind(("0.0.0.0", b + 1)).is_ok() {
            break b;
        }
    };
    env.ok(&[
        "run",
        "-d",
        "--name",
        "range",
        "--hostname",
        "rangehost",
        "-p",
        &format!("{}-{}:80-81", base, base + 1),
        "nettest/web:1",
        "sh",
        "-c",
        "httpd -p 81 -h /etc; exec httpd -f -p 80 -h /etc",
    ]);
    for port in [base, base + 1] {
        let body = http_get(local(port), "/hostname", Duration::from_secs(10));
        assert_eq!(
            body.as_deref().map(str::trim),
            Some("rangehost"),
            "port {port}"
        );
    }
    let hp = env.ok(&["port", "range"]);
    assert!(
        hp.contains(&format!("81/tcp -> 0.0.0.0:{}", base + 1)),
        "{hp}"
    );

    // Conflicts are reported before the container starts.
    let (_, err) = env.fails(&[
        "run",
        "-d",
        "--name",
        "clash",
        "-p",
        &format!("{p2}:80"),
        "nettest/web:1",
        "true",
    ]);
    assert!(
        err.contains(&format!(
            "host port {p2}/tcp is already published by container web"
        )),
        "{err}"
    );
    let busy = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let bp = busy.local_addr().unwrap().port();
    let (_, err) = env.fails(&[
        "run",
        "-d",
        "--name",
        "clash2",
        "-p",
        &format!("{bp}:80"),
        "nettest/web:1",
        "true",
    ]);
    assert!(err.contains("already in use"), "{err}");
    let (_, err) = env.fails(&["run", "-d", "-p", "80/sctp", "nettest/web:1", "true"]);
    assert!(err.contains("sctp"), "{err}");

    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

#[test]
fn user_network_name_resolution() {
    setup!(env, net, "nettest/dns:1", &[]);
    let shop = format!("{}-shop", net.prefix);
    env.ok(&["network", "create", &shop]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--hostname",
        "dbhost",
        "--network",
        &shop,
        "--network-alias",
        "database",
        "nettest/dns:1",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    for name in ["database", "db"] {
        let mut got = String::new();
        // The server may need a moment to start listening.
        for _ in 0..20 {
            let out = env.berth(&[
                "run",
                "--rm",
                "--network",
                &shop,
                "nettest/dns:1",
                "wget",
                "-qO-",
                &format!("http://{name}/hostname"),
            ]);
            got = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert_eq!(got.trim(), "dbhost", "fetch by {name}");
    }
    // Reverse lookup of a container address: NAME.NETWORK, as Docker's embedded DNS answers.
    let ip = env
        .ok(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            "db",
        ])
        .trim()
        .to_string();
    let ptr = env.ok(&[
        "run",
        "--rm",
        "--network",
        &shop,
        "nettest/dns:1",
        "busybox",
        "nslookup",
        &ip,
    ]);
    assert!(ptr.contains(&format!("name = db.{shop}")), "{ptr}");
    let resolv = env.ok(&[
        "run",
        "--rm",
        "--network",
        &shop,
        "--add-host",
        "extra:10.1.2.3",
        "nettest/dns:1",
        "sh",
        "-c",
        "cat /etc/resolv.conf /etc/hosts",
    ]);
    assert!(
        resolv.contains(&format!("nameserver 10.214.{}.1", net.x))
            || resolv.contains(&format!("nameserver 10.215.{}.1", net.x)),
        "{resolv}"
    );
    assert!(resolv.contains("10.1.2.3\textra"), "{resolv}");

    let ls = env.ok(&["network", "ls", "--format", "json"]);
    assert!(
        ls.lines()
            .any(|l| l.contains(&format!("\"Name\":\"{shop}\""))),
        "{ls}"
    );
    assert!(env.ok(&["network", "ls"]).contains("bridge"));
    let insp: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", &shop])).unwrap();
    let ctrs = insp[0]["Containers"].as_object().unwrap();
    assert_eq!(ctrs.len(), 1);
    assert_eq!(ctrs.values().next().unwrap()["Name"], "db");
    assert_eq!(insp[0]["Driver"], "bridge");

    let (_, err) = env.fails(&["network", "rm", &shop]);
    assert!(
        err.contains(&format!(
            "network {shop} is in use by container db; stop it first or use network disconnect"
        )),
        "{err}"
    );
    // `bridge` selects the default network.
    env.ok(&[
        "run",
        "--rm",
        "--network",
        "bridge",
        "nettest/dns:1",
        "true",
    ]);
    let (_, err) = env.fails(&["network", "create", "bridge"]);
    assert!(err.contains("predefined"), "{err}");

    env.ok(&["rm", "-f", "db"]);
    env.ok(&["network", "rm", &shop]);
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

#[test]
fn internal_network_is_isolated() {
    setup!(env, net, "nettest/int:1", &[]);
    let (shop, priv_) = (format!("{}-a", net.prefix), format!("{}-int", net.prefix));
    env.ok(&["network", "create", &shop]);
    env.ok(&["network", "create", "--internal", &priv_]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "db",
        "--hostname",
        "dbhost",
        "--network",
        &shop,
        "nettest/int:1",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    let insp: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", &shop])).unwrap();
    let ip = insp[0]["Containers"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()["IPv4Address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    // Reachable from its own network…
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        &shop,
        "nettest/int:1",
        "wget",
        "-qO-",
        &format!("http://{ip}/hostname"),
    ]);
    assert_eq!(out.trim(), "dbhost");
    // …but not from the internal one, which has no default route either.
    let routes = env.ok(&[
        "run",
        "--rm",
        "--network",
        &priv_,
        "nettest/int:1",
        "ip",
        "route",
    ]);
    assert!(!routes.contains("default"), "{routes}");
    let script =
        format!("wget -qO- http://{ip}/hostname & p=$!; sleep 2; kill $p 2>/dev/null; echo end");
    let out = env.ok(&[
        "run",
        "--rm",
        "--network",
        &priv_,
        "nettest/int:1",
        "sh",
        "-c",
        &script,
    ]);
    assert!(!out.contains("dbhost"), "{out}");
    // Nor from the default bridge (networks are isolated from each other).
    let out = env.ok(&["run", "--rm", "nettest/int:1", "sh", "-c", &script]);
    assert!(!out.contains("dbhost"), "{out}");

    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

#[test]
fn connect_disconnect_and_prune() {
    setup!(env, net, "nettest/conn:1", &[]);
    let (a, b) = (format!("{}-a", net.prefix), format!("{}-b", net.prefix));
    env.ok(&["network", "create", &a]);
    env.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("10.215.{}.0/24", net.x),
        &b,
    ]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--hostname",
        "srvhost",
        "nettest/conn:1",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    env.ok(&["network", "connect", "--alias", "api", &a, "srv"]);
    let mut got = String::new();
    for _ in 0..20 {
        let out = env.berth(&[
            "run",
            "--rm",
            "--network",
            &a,
            "nettest/conn:1",
            "wget",
            "-qO-",
            "http://api/hostname",
        ]);
        got = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(got.trim(), "srvhost");
    let insp: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", &a])).unwrap();
    assert_eq!(insp[0]["Containers"].as_object().unwrap().len(), 1);
    let (_, err) = env.fails(&["network", "rm", &a]);
    assert!(err.contains("in use by container srv"), "{err}");
    env.ok(&["network", "disconnect", &a, "srv"]);
    let insp: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", &a])).unwrap();
    assert!(insp[0]["Containers"].as_object().unwrap().is_empty());
    // --dns is written as is.
    let r = env.ok(&[
        "run",
        "--rm",
        "--dns",
        "10.9.9.9",
        "nettest/conn:1",
        "cat",
        "/etc/resolv.conf",
    ]);
    assert!(r.contains("nameserver 10.9.9.9"), "{r}");
    // --network none: only loopback, up.
    let links = env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "nettest/conn:1",
        "ip",
        "-o",
        "link",
    ]);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.contains("lo") && links.contains("UP"), "{links}");
    let pruned = env.ok(&["network", "prune", "-f"]);
    assert!(pruned.contains(&a) && pruned.contains(&b), "{pruned}");
    assert!(!env.ok(&["network", "ls", "-q"]).is_empty());
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

#[test]
fn crashed_container_networking_is_released() {
    setup!(env, net, "nettest/crash:1", &[]);
    let p = free_port();
    let id = env
        .ok(&[
            "run",
            "-d",
            "--name",
            "crashme",
            "-p",
            &format!("{p}:80"),
            "nettest/crash:1",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/etc",
        ])
        .trim()
        .to_string();
    assert!(http_get(local(p), "/hostname", Duration::from_secs(10)).is_some());
    let db = berth_store::rusqlite::Connection::open(env.root.join("berth.db")).unwrap();
    let (pid, mon): (i64, i64) = db
        .query_row(
            "SELECT pid, monitor_pid FROM containers WHERE id = ?1",
            [&id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    drop(db);
    // Simulate a crash of berth's monitor, then of the container.
    for pid in [mon, pid] {
        // SAFETY: kill(2) on pids this test's container owns.
        unsafe { libc::kill(i32::try_from(pid).unwrap(), libc::SIGKILL) };
    }
    std::thread::sleep(Duration::from_millis(300));
    // The next command notices and releases the network: namespace, port, address.
    env.ok(&["ps", "-a"]);
    assert!(!env.root.join("run/netns").join(&id).exists());
    assert_eq!(env.ok(&["port", "crashme"]).trim(), "");
    env.ok(&[
        "run",
        "-d",
        "--name",
        "again",
        "-p",
        &format!("{p}:80"),
        "nettest/crash:1",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    if http_get(local(p), "/hostname", Duration::from_secs(10)).is_none() {
        let t = std::process::Command::new("nft")
            .args(["list", "table", "ip", &net.prefix])
            .output()
            .unwrap();
        panic!(
            "port {p} not reachable after restart:\n{}\n{}\n{}",
            env.ok(&["ps", "-a"]),
            env.ok(&["network", "inspect", "bridge"]),
            String::from_utf8_lossy(&t.stdout)
        );
    }
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

#[test]
fn host_and_container_modes() {
    setup!(env, net, "nettest/modes:1", &[]);
    env.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--hostname",
        "webhost",
        "nettest/modes:1",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    // container:web shares web's namespace: its server is on 127.0.0.1.
    let mut out = String::new();
    for _ in 0..20 {
        let o = env.berth(&[
            "run",
            "--rm",
            "--network",
            "container:web",
            "nettest/modes:1",
            "wget",
            "-qO-",
            "http://127.0.0.1/hostname",
        ]);
        out = String::from_utf8_lossy(&o.stdout).into_owned();
        if o.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(out.trim(), "webhost");
    // host: the host's interfaces, and the host's bridge is visible.
    let links = env.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "nettest/modes:1",
        "ip",
        "-o",
        "link",
    ]);
    assert!(links.contains(&format!("{}0", net.prefix)), "{links}");
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

/// The IPv4 addresses (not loopback) inside a running container.
fn addrs_in(env: &TestEnv, c: &str) -> Vec<String> {
    env.ok(&["exec", c, "ip", "-o", "-4", "addr"])
        .lines()
        .filter(|l| !l.contains(" lo "))
        .filter_map(|l| l.split_whitespace().nth(3).map(str::to_string))
        .collect()
}

/// Network names in a container's inspect document.
fn inspect_nets(env: &TestEnv, c: &str) -> String {
    env.ok(&[
        "inspect",
        "--format",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}} {{end}}",
        c,
    ])
}

/// `network connect|disconnect` of created and exited containers change what the next start
/// attaches (Docker's behaviour); a running container's connect and disconnect survive a
/// restart.
#[test]
fn connect_and_disconnect_stopped_containers() {
    setup!(env, net, "nettest/stopped:1", &[]);
    let a = format!("{}-sa", net.prefix);
    env.ok(&["network", "create", &a]);
    env.ok(&[
        "create",
        "--name",
        "stc",
        "--hostname",
        "stchost",
        "nettest/stopped:1",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    // Created: connect is recorded, shown by inspect without an address, attached at start.
    env.ok(&["network", "connect", "--alias", "stweb", &a, "stc"]);
    let nets = inspect_nets(&env, "stc");
    assert!(nets.contains(&format!("{a}= ")), "{nets}");
    // Connecting again while stopped changes nothing (as Docker).
    env.ok(&["network", "connect", &a, "stc"]);
    env.ok(&["start", "stc"]);
    assert_eq!(addrs_in(&env, "stc").len(), 2);
    let mut got = String::new();
    for _ in 0..20 {
        let out = env.berth(&[
            "run",
            "--rm",
            "--network",
            &a,
            "nettest/stopped:1",
            "wget",
            "-qO-",
            "http://stweb/hostname",
        ]);
        got = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(got.trim(), "stchost");
    // Exited: disconnect is recorded; the next start leaves that network out.
    env.ok(&["stop", "-t", "1", "stc"]);
    env.ok(&["network", "disconnect", &a, "stc"]);
    assert!(!inspect_nets(&env, "stc").contains(&a));
    let (_, err) = env.fails(&["network", "disconnect", &a, "stc"]);
    assert!(err.contains("not connected"), "{err}");
    env.ok(&["start", "stc"]);
    assert_eq!(addrs_in(&env, "stc").len(), 1);
    // Running: connect and disconnect are kept across a restart.
    env.ok(&["network", "connect", &a, "stc"]);
    assert_eq!(addrs_in(&env, "stc").len(), 2);
    env.ok(&["restart", "-t", "1", "stc"]);
    assert_eq!(addrs_in(&env, "stc").len(), 2);
    env.ok(&["network", "disconnect", "bridge", "stc"]);
    env.ok(&["restart", "-t", "1", "stc"]);
    assert_eq!(addrs_in(&env, "stc").len(), 1);
    let nets = inspect_nets(&env, "stc");
    assert!(
        nets.contains(&a) && !nets.contains("bridge=") && !nets.contains("berth="),
        "{nets}"
    );
    // Disconnected from every network: only loopback at the next start.
    env.ok(&["stop", "-t", "1", "stc"]);
    env.ok(&["network", "disconnect", &a, "stc"]);
    env.ok(&["start", "stc"]);
    assert!(addrs_in(&env, "stc").is_empty());
    env.ok(&["rm", "-f", "stc"]);
    // Errors: an unknown network; a container networked with none.
    env.ok(&[
        "create",
        "--name",
        "stn",
        "--network",
        "none",
        "nettest/stopped:1",
    ]);
    let (_, err) = env.fails(&["network", "connect", &a, "stn"]);
    assert!(err.contains("none"), "{err}");
    let (_, err) = env.fails(&["network", "connect", "nosuchnet-st", "stn"]);
    assert!(err.contains("not found"), "{err}");
    env.ok(&["rm", "-f", "stn"]);
    env.ok(&["network", "rm", &a]);
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

/// Docker's `network connect` and `disconnect` events as a container joins its networks at
/// start and leaves them when it stops (the default network named `bridge`), in Docker's order
/// (moby's handleContainerExit releases the network before it logs `die`); `run --rm` records
/// `die` and `destroy` too.
#[test]
fn start_and_stop_record_network_connect_and_disconnect_events() {
    setup!(env, net, "nettest/ev:1", &[]);
    let shop = format!("{}-evshop", net.prefix);
    env.ok(&["network", "create", &shop]);
    let id = env
        .ok(&[
            "run",
            "-d",
            "--name",
            "evnet",
            "--network",
            &shop,
            "nettest/ev:1",
            "sleep",
            "600",
        ])
        .trim()
        .to_string();
    env.ok(&["stop", "-t", "0", "evnet"]);
    env.ok(&["run", "--rm", "nettest/ev:1", "true"]);
    let until = (chrono::Utc::now().timestamp() + 1).to_string();
    let got: Vec<String> = env
        .ok(&[
            "events",
            "--since",
            "0",
            "--until",
            &until,
            "--filter",
            "type=network",
            "--filter",
            "type=container",
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
        ])
        .lines()
        .filter(|l| {
            l.starts_with("network connect")
                || l.starts_with("network disconnect")
                || l.starts_with("container start")
                || l.starts_with("container die")
                || l.starts_with("container destroy")
        })
        .map(|l| {
            let mut w: Vec<&str> = l.split(' ').collect();
            if w[0] == "container" && w[2] != "evnet" {
                w[2] = "RM"; // the --rm container's generated name
            }
            w.join(" ")
        })
        .collect();
    assert_eq!(
        got,
        [
            format!("network connect {shop}"),
            "container start evnet".to_string(),
            format!("network disconnect {shop}"),
            "container die evnet".to_string(),
            "network connect bridge".to_string(),
            "container start RM".to_string(),
            "network disconnect bridge".to_string(),
            "container die RM".to_string(),
            "container destroy RM".to_string(),
        ],
        "container {id}"
    );
    env.ok(&["rm", "evnet"]);
    env.ok(&["network", "rm", &shop]);
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}
