//! Root-only tests of the library against the real kernel: netns, bridge, veth, nftables.
//! Skipped (pass trivially) when not root. Everything created uses a per-run prefix and is
//! removed at the end, also on failure.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_net::{Attachment, NetConfig, NetError, NetworkMode};
use berth_store::Store;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

struct Env {
    root: PathBuf,
    prefix: String,
    store: Store,
    children: Vec<Child>,
}

impl Env {
    fn new() -> Env {
        // Unique per test in this process (counter), random across processes.
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        static BASE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let base = *BASE.get_or_init(rand::random::<u32>);
        let prefix = format!("bn{:03x}{:x}", (base >> 20) & 0xfff, n % 16);
        let root = std::env::temp_dir().join(format!("berth-net-root-{prefix}"));
        std::fs::create_dir_all(&root).unwrap();
        // Subnets from 10.216-218.x.0/24 (the CLI tests use 10.213-215).
        let x = (base % 251 + n) % 251;
        std::fs::write(
            root.join("net.conf"),
            format!(
                "prefix = {prefix}\nbridge_subnet = 10.216.{x}.0/24\npool = 10.217.{x}.0/24, 10.218.{x}.0/24\n"
            ),
        )
        .unwrap();
        let store = Store::open(&root).unwrap();
        Env {
            root,
            prefix,
            store,
            children: vec![],
        }
    }

    fn cfg(&self, name: &str, mode: NetworkMode, publish: &[String]) -> NetConfig {
        NetConfig {
            container_id: format!(
                "{:016x}{:016x}",
                rand::random::<u64>(),
                rand::random::<u64>()
            ),
            container_name: name.into(),
            hostname: name.into(),
            domainname: String::new(),
            mode,
            publish: publish.to_vec(),
            publish_all: vec![],
            dns: vec![],
            dns_search: vec![],
            dns_options: vec![],
            add_hosts: vec!["extra:10.1.2.3".into()],
            ipv4_address: String::new(),
            mac_address: String::new(),
            port_group: None,
            port_wait_healthy: false,
        }
    }

    fn dir(&self, cfg: &NetConfig) -> PathBuf {
        let d = self.root.join("containers").join(&cfg.container_id);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn spawn_in(&mut self, ns: &Path, args: &[&str]) {
        let c = Command::new("nsenter")
            .arg(format!("--net={}", ns.display()))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(c);
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = berth_net::reset(&self.store);
        for n in berth_net::list_networks(&self.store).unwrap_or_default() {
            let _ = berth_net::remove_network(&self.store, &n.name);
        }
        // Belt and braces: anything with our prefix.
        if let Ok(out) = Command::new("ip").args(["-o", "link", "show"]).output() {
            for l in String::from_utf8_lossy(&out.stdout).lines() {
                if let Some(name) = l.split(": ").nth(1) {
                    let name = name.split('@').next().unwrap_or("");
                    if name.starts_with(&self.prefix) {
                        let _ = Command::new("ip").args(["link", "del", name]).status();
                    }
                }
            }
        }
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &self.prefix])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(addr: (Ipv4Addr, u16), timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr.into(), Duration::from_millis(500)) {
            s.set_read_timeout(Some(Duration::from_secs(2))).ok();
            let _ = s.write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n");
            let mut body = String::new();
            if s.read_to_string(&mut body).is_ok() && body.contains("200") {
                return Some(body);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Veths go away with their namespace, which the kernel destroys in the background.
fn link_gone_soon(name: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while link_exists(name) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    !link_exists(name)
}

#[test]
fn bridge_publish_and_cleanup() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut env = Env::new();
    let www = env.root.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello from berth\n").unwrap();
    let (p1, p2) = (free_port(), free_port());
    let cfg = env.cfg(
        "web",
        NetworkMode::Networks(vec![Attachment {
            network: "bridge".into(),
            aliases: vec![],
        }]),
        &[format!("127.0.0.1:{p1}:80"), format!("{p2}:80")],
    );
    let dir = env.dir(&cfg);
    let setup = berth_net::setup(&env.store, &cfg, &dir).expect("setup");
    let ns = setup.netns_path.clone().unwrap();
    assert_eq!(setup.ports.len(), 2);
    let hosts = std::fs::read_to_string(&setup.hosts_file).unwrap();
    assert!(
        hosts.contains(&format!("{}\tweb\n", setup.addresses[0])),
        "{hosts}"
    );
    assert!(hosts.contains("10.1.2.3\textra"), "{hosts}");
    env.spawn_in(
        &ns,
        &[
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            www.to_str().unwrap(),
        ],
    );
    let ip = match setup.addresses[0] {
        std::net::IpAddr::V4(ip) => ip,
        _ => unreachable!(),
    };
    assert!(
        http_get((ip, 80), Duration::from_secs(5)).is_some(),
        "container address"
    );
    let body = http_get((Ipv4Addr::LOCALHOST, p1), Duration::from_secs(5)).expect("127.0.0.1:p1");
    assert!(body.contains("hello from berth"));
    assert!(
        http_get((Ipv4Addr::LOCALHOST, p2), Duration::from_secs(5)).is_some(),
        "0.0.0.0:p2"
    );
    let ports = berth_net::ports_of(&env.store, &cfg.container_id).unwrap();
    assert_eq!(ports.len(), 2);
    let ns_json = berth_net::network_settings(&env.store, &cfg.container_id).unwrap();
    assert_eq!(ns_json["IPAddress"], ip.to_string());
    assert_eq!(ns_json["Ports"]["80/tcp"].as_array().unwrap().len(), 2);
    // Docker's name for the default network (stored as `berth`).
    assert_eq!(ns_json["Networks"]["bridge"]["IPAddress"], ip.to_string());

    // A second container asking for the same host port fails cleanly, leaving nothing.
    let cfg2 = env.cfg(
        "web2",
        NetworkMode::Networks(vec![Attachment {
            network: "berth".into(),
            aliases: vec![],
        }]),
        &[format!("{p1}:80")],
    );
    let dir2 = env.dir(&cfg2);
    match berth_net::setup(&env.store, &cfg2, &dir2) {
        Err(NetError::PortInUse(m)) => assert!(m.contains("web"), "{m}"),
        other => panic!("expected a port conflict, got {other:?}"),
    }
    assert!(!env.root.join("run/netns").join(&cfg2.container_id).exists());
    // A port used by another program is reported too.
    let busy = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let bp = busy.local_addr().unwrap().port();
    let cfg3 = env.cfg(
        "web3",
        NetworkMode::Networks(vec![Attachment {
            network: "bridge".into(),
            aliases: vec![],
        }]),
        &[format!("{bp}:80")],
    );
    let dir3 = env.dir(&cfg3);
    let e = berth_net::setup(&env.store, &cfg3, &dir3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("already in use"), "{e}");

    // None mode: own namespace with lo up.
    let cfgn = env.cfg("lonely", NetworkMode::None, &[]);
    let dirn = env.dir(&cfgn);
    let sn = berth_net::setup(&env.store, &cfgn, &dirn).unwrap();
    let out = Command::new("nsenter")
        .arg(format!(
            "--net={}",
            sn.netns_path.as_ref().unwrap().display()
        ))
        .args(["ip", "-o", "link"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&out.stdout);
    assert!(links.contains("lo:") && links.contains("UP"), "{links}");
    assert_eq!(links.lines().count(), 1, "{links}");

    let veths: Vec<String> = berth_net::endpoints_of(&env.store, &cfg.container_id)
        .unwrap()
        .iter()
        .map(|e| e.veth.clone())
        .collect();
    assert!(link_exists(&veths[0]));
    berth_net::teardown(&env.store, &cfg.container_id).unwrap();
    berth_net::teardown(&env.store, &cfg.container_id).unwrap(); // idempotent
    assert!(link_gone_soon(&veths[0]));
    assert!(!ns.exists());
    assert!(berth_net::ports_of(&env.store, &cfg.container_id)
        .unwrap()
        .is_empty());
    // cleanup_stale removes the `none` container's namespace.
    berth_net::cleanup_stale(&env.store, &HashSet::new()).unwrap();
    assert!(!sn.netns_path.unwrap().exists());
    let bridge = format!("{}0", env.prefix);
    assert!(link_exists(&bridge));
    berth_net::reset(&env.store).unwrap();
    assert!(!link_exists(&bridge));
    let t = Command::new("nft")
        .args(["list", "table", "ip", &env.prefix])
        .output()
        .unwrap();
    assert!(!t.status.success(), "nft table still there");
}

fn berth_exe() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/berth");
    p.exists().then_some(p)
}

#[test]
fn user_networks_dns_and_isolation() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let mut env = Env::new();
    // Made as `compose up` makes its networks: the firewall state comes with the first
    // container that joins (isolation, forwarding and DNS below rely on it).
    let shop = berth_net::create_network_deferred(
        &env.store,
        &berth_net::CreateOptions {
            name: format!("{}-shop", env.prefix),
            ..Default::default()
        },
    )
    .unwrap();
    let int = berth_net::create_network(
        &env.store,
        &berth_net::CreateOptions {
            name: format!("{}-int", env.prefix),
            internal: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(link_exists(&shop.bridge));
    let exe = berth_exe();
    if let Some(e) = &exe {
        std::env::set_var("BERTH_EXE", e);
    }
    let www = env.root.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "db says hi\n").unwrap();
    let db = env.cfg(
        "db",
        NetworkMode::Networks(vec![Attachment {
            network: shop.name.clone(),
            aliases: vec!["database".into()],
        }]),
        &[],
    );
    let dbdir = env.dir(&db);
    let dbs = berth_net::setup(&env.store, &db, &dbdir).unwrap();
    let resolv = std::fs::read_to_string(&dbs.resolv_conf).unwrap();
    assert!(
        resolv.contains(&format!("nameserver {}", shop.gateway)),
        "{resolv}"
    );
    env.spawn_in(
        dbs.netns_path.as_ref().unwrap(),
        &[
            "busybox",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            www.to_str().unwrap(),
        ],
    );
    let db_ip = match dbs.addresses[0] {
        std::net::IpAddr::V4(ip) => ip,
        _ => unreachable!(),
    };
    assert!(http_get((db_ip, 80), Duration::from_secs(5)).is_some());

    let client = env.cfg(
        "client",
        NetworkMode::Networks(vec![Attachment {
            network: shop.name.clone(),
            aliases: vec![],
        }]),
        &[],
    );
    let cdir = env.dir(&client);
    let cs = berth_net::setup(&env.store, &client, &cdir).unwrap();
    let cns = cs.netns_path.clone().unwrap();
    let run = |ns: &Path, args: &[&str]| {
        Command::new("timeout")
            .arg("5")
            .arg("nsenter")
            .arg(format!("--net={}", ns.display()))
            .args(["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"])
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(
        &cns,
        &["busybox", "wget", "-qO-", &format!("http://{db_ip}/")],
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("db says hi"),
        "{o:?}"
    );
    if exe.is_some() {
        for name in ["db", "database"] {
            let o = run(
                &cns,
                &["busybox", "nslookup", name, &shop.gateway.to_string()],
            );
            let out = String::from_utf8_lossy(&o.stdout);
            assert!(out.contains(&db_ip.to_string()), "{name}: {out} {o:?}");
        }
    }
    if exe.is_some() {
        // DNS over TCP, from the host to the gateway.
        use hickory_proto::op::{Message, Query};
        use hickory_proto::rr::{Name, RData, RecordType};
        let mut m = Message::query();
        m.metadata.id = 9;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(
            std::str::FromStr::from_str("database.")
                .map(|n: Name| n)
                .unwrap(),
            RecordType::A,
        ));
        let q = m.to_vec().unwrap();
        let mut s =
            TcpStream::connect_timeout(&(shop.gateway, 53).into(), Duration::from_secs(3)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut out = u16::try_from(q.len()).unwrap().to_be_bytes().to_vec();
        out.extend_from_slice(&q);
        s.write_all(&out).unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut body).unwrap();
        let r = Message::from_vec(&body).unwrap();
        assert_eq!(
            r.answers.first().map(|a| &a.data),
            Some(&RData::A(hickory_proto::rr::rdata::A(db_ip)))
        );
    }
    // network rm refuses while in use.
    match berth_net::remove_network(&env.store, &shop.name) {
        Err(e) => {
            let m = e.to_string();
            assert!(
                m.starts_with(&format!("network {} is in use by container ", shop.name)),
                "{m}"
            );
            assert!(
                m.ends_with("; stop it first or use network disconnect"),
                "{m}"
            );
        }
        Ok(_) => panic!("removed a network in use"),
    }
    // Internal network: no default route, no way to the shop network.
    let ic = env.cfg(
        "inside",
        NetworkMode::Networks(vec![Attachment {
            network: int.name.clone(),
            aliases: vec![],
        }]),
        &[],
    );
    let idir = env.dir(&ic);
    let is = berth_net::setup(&env.store, &ic, &idir).unwrap();
    let ins = is.netns_path.clone().unwrap();
    let o = run(&ins, &["ip", "route"]);
    let routes = String::from_utf8_lossy(&o.stdout);
    assert!(!routes.contains("default"), "{routes}");
    let o = run(
        &ins,
        &["busybox", "wget", "-qO-", &format!("http://{db_ip}/")],
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("db says hi"));
    // Even with a route, forwarding between networks is dropped.
    let _ = run(
        &ins,
        &[
            "ip",
            "route",
            "add",
            "default",
            "via",
            &int.gateway.to_string(),
        ],
    );
    let o = run(
        &ins,
        &["busybox", "wget", "-qO-", &format!("http://{db_ip}/")],
    );
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("db says hi"),
        "internal reached shop"
    );
    if exe.is_some() {
        // Another network's DNS server does not answer this one (even with a route to it).
        let o = run(
            &ins,
            &["busybox", "nslookup", "db", &shop.gateway.to_string()],
        );
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains(&db_ip.to_string()),
            "{o:?}"
        );
        let o = run(
            &ins,
            &["busybox", "nslookup", "db", &int.gateway.to_string()],
        );
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains(&db_ip.to_string()),
            "{o:?}"
        );
    }

    // connect / disconnect the internal container to shop.
    let ep = berth_net::connect(
        &env.store,
        &ic.container_id,
        &Attachment {
            network: shop.name.clone(),
            aliases: vec![],
        },
    )
    .unwrap();
    assert_eq!(ep.ifname, "eth1");
    let o = run(
        &ins,
        &["busybox", "wget", "-qO-", &format!("http://{db_ip}/")],
    );
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("db says hi"),
        "after connect: {o:?}"
    );
    berth_net::disconnect(&env.store, &ic.container_id, &shop.name).unwrap();
    assert!(!link_exists(&ep.veth));

    for c in [&db, &client, &ic] {
        berth_net::teardown(&env.store, &c.container_id).unwrap();
    }
    assert!(berth_net::network_endpoints(&env.store, &shop.name)
        .unwrap()
        .is_empty());
    let removed = berth_net::prune_networks(&env.store).unwrap();
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert!(!link_exists(&shop.bridge));
    // The DNS server exits by itself once the network is unused.
    if exe.is_some() {
        let lock = env.root.join("run/dns").join(format!("{}.lock", shop.name));
        let pid: i32 = std::fs::read_to_string(&lock)
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(5);
        while pid > 0 && Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            pid == 0
                || !Path::new(&format!("/proc/{pid}/cmdline")).exists()
                || !std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                    .unwrap_or_default()
                    .contains("__dns"),
            "dns server still running"
        );
    }
}

#[test]
fn udp_publish() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let env = Env::new();
    let hp = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = env.cfg(
        "udp",
        NetworkMode::Networks(vec![Attachment {
            network: "bridge".into(),
            aliases: vec![],
        }]),
        &[format!("127.0.0.1:{hp}:5353/udp")],
    );
    let dir = env.dir(&cfg);
    let s = berth_net::setup(&env.store, &cfg, &dir).unwrap();
    let ns = s.netns_path.clone().unwrap();
    // An echo server inside the container's namespace, for one datagram.
    let (tx, rx) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        berth_net::netns::run_in(&ns, move || {
            let sock = std::net::UdpSocket::bind("0.0.0.0:5353")?;
            sock.set_read_timeout(Some(Duration::from_secs(5)))?;
            let _ = tx.send(());
            let mut buf = [0u8; 64];
            let (n, peer) = sock.recv_from(&mut buf)?;
            sock.send_to(&buf[..n], peer)?;
            Ok(())
        })
    });
    rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let c = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.send_to(b"ping", ("127.0.0.1", hp)).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = c
        .recv_from(&mut buf)
        .expect("udp echo through the published port");
    assert_eq!(&buf[..n], b"ping");
    server.join().unwrap().unwrap();
    berth_net::teardown(&env.store, &cfg.container_id).unwrap();
}

#[test]
fn concurrent_setups_get_distinct_addresses() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let env = Env::new();
    let p = env.root.join("containers");
    let cfgs: Vec<NetConfig> = (0..8)
        .map(|i| {
            env.cfg(
                &format!("c{i}"),
                NetworkMode::Networks(vec![Attachment {
                    network: "bridge".into(),
                    aliases: vec![],
                }]),
                &["80".to_string()],
            )
        })
        .collect();
    let results: Vec<(String, Vec<std::net::IpAddr>, u16)> = std::thread::scope(|s| {
        let hs: Vec<_> = cfgs
            .iter()
            .map(|cfg| {
                let root = env.root.clone();
                let dir = p.join(&cfg.container_id);
                s.spawn(move || {
                    std::fs::create_dir_all(&dir).unwrap();
                    let store = Store::open(&root).unwrap();
                    let r = berth_net::setup(&store, cfg, &dir).expect("concurrent setup");
                    (cfg.container_id.clone(), r.addresses, r.ports[0].host_port)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ips: HashSet<_> = results.iter().map(|r| r.1[0]).collect();
    let ports: HashSet<_> = results.iter().map(|r| r.2).collect();
    assert_eq!(ips.len(), 8, "{results:?}");
    assert_eq!(ports.len(), 8, "{results:?}");
    for (id, _, _) in &results {
        berth_net::teardown(&env.store, id).unwrap();
    }
}

#[test]
fn default_subnet_overlapping_a_host_route_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let Some((dev, route)) = berth_net::ipam::host_routes().into_iter().next() else {
        return;
    };
    let env = Env::new();
    std::fs::write(
        env.root.join("net.conf"),
        format!("prefix = {}\nbridge_subnet = {route}\n", env.prefix),
    )
    .unwrap();
    let cfg = env.cfg(
        "x",
        NetworkMode::Networks(vec![Attachment {
            network: "bridge".into(),
            aliases: vec![],
        }]),
        &[],
    );
    let dir = env.dir(&cfg);
    let e = berth_net::setup(&env.store, &cfg, &dir)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("overlaps the host route {route} on {dev}")),
        "{e}"
    );
    assert!(e.contains("bridge_subnet"), "{e}");
    assert!(!link_exists(&format!("{}0", env.prefix)));
    assert!(!env.root.join("run/netns").join(&cfg.container_id).exists());
}
