//! The embedded DNS server of a user-defined network.
//!
//! One small process per network (`berth __dns NETWORK`), started by the first container that
//! joins the network and gone a moment after the last one leaves. It listens on the bridge's
//! gateway address, port 53 (UDP and TCP), answers container names, network aliases and short ids of
//! the containers on its network straight from the SQLite tables (so it never needs to be told
//! about changes), answers other single-label names with NXDOMAIN, and relays everything else
//! to the asking container's `--dns` servers when it has some (the file
//! [`crate::DNS_UPSTREAM_FILE`] in its directory), else to the host's resolvers
//! ([`crate::files::HostDns::upstreams`]: the host's /etc/resolv.conf, loopback resolvers
//! included since this server runs in the host's namespace).
//!
//! Exactly one server per network: the server holds an exclusive flock on
//! `<root>/run/dns/<network>.lock` for its lifetime. When it finds the network unused it drops
//! the lock, then looks again; a container that joined meanwhile either saw the lock free (and
//! started a new server) or is seen by that second look (and the server carries on).

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{rdata::A, rdata::PTR, Name, RData, Record, RecordType};
use rustix::fs::{flock, FlockOperation};

use crate::{state, NetError, Result};

fn dns_dir(root: &Path) -> PathBuf {
    root.join("run").join("dns")
}

fn lock_path(root: &Path, network: &str) -> PathBuf {
    dns_dir(root).join(format!("{network}.lock"))
}

fn open_lock(root: &Path, network: &str) -> Result<File> {
    let p = lock_path(root, network);
    fs::create_dir_all(dns_dir(root))
        .map_err(|e| NetError::Other(format!("{}: {e}", dns_dir(root).display())))?;
    File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&p)
        .map_err(|e| NetError::Other(format!("{}: {e}", p.display())))
}

fn try_lock(f: &File) -> bool {
    flock(f.as_fd(), FlockOperation::NonBlockingLockExclusive).is_ok()
}

/// The berth executable that serves `__dns` (this program, unless `BERTH_EXE` says otherwise).
fn berth_exe() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("BERTH_EXE") {
        return Ok(PathBuf::from(p));
    }
    berth_exe::path().map_err(|e| NetError::Other(e.to_string()))
}

/// Make sure the DNS server of `network` (whose id is `network_id`) runs; waits until it
/// answers. A server still running for an earlier network of the same name (removed and
/// created again, as `compose down` and `up` do) is waited for (at most 3 s): it exits once
/// it sees its network gone, and a server for this network starts.
pub fn ensure_running(root: &Path, network: &str, network_id: &str) -> Result<()> {
    let lock = open_lock(root, network)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while !try_lock(&lock) {
        // The holder wrote `PID NETWORK_ID` (older servers: `PID`).
        let text = fs::read_to_string(lock_path(root, network)).unwrap_or_default();
        let served = text.split_whitespace().nth(1);
        if served.is_none_or(|id| id == network_id) || std::time::Instant::now() >= deadline {
            return Ok(()); // a server holds it
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(lock);
    let log = fs::File::create(dns_dir(root).join(format!("{network}.log"))).ok();
    let mut cmd = Command::new(berth_exe()?);
    cmd.arg("--root")
        .arg(root)
        .arg("__dns")
        .arg(network)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log.map(Stdio::from).unwrap_or_else(Stdio::null));
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .map_err(|e| NetError::Other(format!("cannot start the DNS server: {e}")))?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    // The server keeps running in its own process group; the first berth command to exit
    // leaves it to init, which reaps it.
    if line.trim() == "ready" {
        Ok(())
    } else {
        let _ = child.try_wait();
        Err(NetError::Other(format!(
            "the DNS server for network {network} did not start; see {}",
            dns_dir(root).join(format!("{network}.log")).display()
        )))
    }
}

/// Stop the DNS server of `network` (just removed), so that a network created again under its
/// name gets its own server at once. Only a live `berth __dns NETWORK` process holding the
/// network's lock is signalled.
pub fn stop(root: &Path, network: &str) {
    let Ok(lock) = File::options()
        .read(true)
        .write(true)
        .open(lock_path(root, network))
    else {
        return;
    };
    if try_lock(&lock) {
        return; // nobody serves it
    }
    let text = fs::read_to_string(lock_path(root, network)).unwrap_or_default();
    let Some(pid) = text
        .split_whitespace()
        .next()
        .and_then(|p| p.parse::<i32>().ok())
        .filter(|&p| p > 1)
    else {
        return;
    };
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let want = format!("__dns\0{network}\0");
    if cmdline.windows(want.len()).any(|w| w == want.as_bytes()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

/// Stop the DNS servers of a store (by the pids they recorded).
pub fn stop_all(root: &Path) {
    let Ok(rd) = fs::read_dir(dns_dir(root)) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "lock") {
            let lock = match File::options().read(true).write(true).open(&p) {
                Ok(f) => f,
                Err(_) => continue,
            };
            if try_lock(&lock) {
                continue; // nobody serves it
            }
            if let Some(Ok(pid)) = fs::read_to_string(&p)
                .unwrap_or_default()
                .split_whitespace()
                .next()
                .map(str::parse::<i32>)
            {
                if pid > 1 {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGTERM,
                    );
                }
            }
        }
    }
}

/// Names this server answers: container name, aliases and 12-character id per endpoint. An
/// alias shared by several containers (compose replicas of one service) gives all their
/// addresses, rotated at random so that clients spread over them (as Docker's DNS does).
fn lookup(db: &berth_store::rusqlite::Connection, network: &str, name: &str) -> Vec<Ipv4Addr> {
    let Ok(eps) = state::endpoints_of_network(db, network) else {
        return Vec::new();
    };
    let mut ips: Vec<Ipv4Addr> = eps
        .iter()
        .filter(|e| {
            e.container_name.eq_ignore_ascii_case(name)
                || e.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
                || (name.len() == 12 && e.container_id.starts_with(name))
        })
        .map(|e| e.ip)
        .collect();
    ips.dedup();
    if ips.len() > 1 {
        let k = rand::random::<usize>() % ips.len();
        ips.rotate_left(k);
    }
    ips
}

/// The reverse name (`PTR`) of a container address on `network` (or, through the client at
/// `peer`, on its other user networks), as Docker's embedded DNS answers it:
/// `CONTAINER_NAME.NETWORK_NAME.`. `name` is a lowercase `d.c.b.a.in-addr.arpa` query name.
fn reverse(
    db: &berth_store::rusqlite::Connection,
    network: &str,
    peer: Option<Ipv4Addr>,
    name: &str,
) -> Option<String> {
    let rest = name.strip_suffix(".in-addr.arpa")?;
    let o: Vec<u8> = rest
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<Vec<u8>>>()?;
    let [d, c, b, a] = o[..] else {
        return None;
    };
    let ip = Ipv4Addr::new(a, b, c, d);
    let find = |net: &str| {
        state::endpoints_of_network(db, net)
            .ok()?
            .into_iter()
            .find(|e| e.ip == ip)
            .map(|e| format!("{}.{}.", e.container_name, net))
    };
    if let Some(n) = find(network) {
        return Some(n);
    }
    let me = state::endpoints_of_network(db, network)
        .ok()?
        .into_iter()
        .find(|e| Some(e.ip) == peer)?;
    state::endpoints_of_container(db, &me.container_id)
        .unwrap_or_default()
        .iter()
        .filter(|e| e.network != network && e.network != crate::DEFAULT_NETWORK)
        .find_map(|e| find(&e.network))
}

/// The authoritative response to `req`'s query `q` with `code` and `answers` (TTL 10 s).
fn reply(req: &Message, q: &Query, code: ResponseCode, answers: Vec<Record>) -> Answer {
    let mut resp = Message::response(req.metadata.id, OpCode::Query);
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.metadata.authoritative = true;
    resp.add_query(q.clone());
    for a in answers {
        resp.add_answer(a);
    }
    resp.metadata.response_code = code;
    match resp.to_vec() {
        Ok(b) => Answer::Reply(b),
        Err(_) => Answer::Drop,
    }
}

enum Answer {
    Reply(Vec<u8>),
    Forward,
    Drop,
}

/// Names visible to the client at `peer` on `network`: that network's containers first, then
/// those of the client's other user networks (a container on several networks resolves the
/// names of all of them through the server of the network its resolv.conf points to).
fn resolve(
    db: &berth_store::rusqlite::Connection,
    network: &str,
    peer: Option<Ipv4Addr>,
    name: &str,
) -> Vec<Ipv4Addr> {
    let here = lookup(db, network, name);
    if !here.is_empty() {
        return here;
    }
    let Some(peer) = peer else {
        return Vec::new();
    };
    let Some(me) = state::endpoints_of_network(db, network)
        .ok()
        .and_then(|eps| eps.into_iter().find(|e| e.ip == peer))
    else {
        return Vec::new();
    };
    state::endpoints_of_container(db, &me.container_id)
        .unwrap_or_default()
        .iter()
        .filter(|e| e.network != network && e.network != crate::DEFAULT_NETWORK)
        .map(|e| lookup(db, &e.network, name))
        .find(|ips| !ips.is_empty())
        .unwrap_or_default()
}

fn answer(
    db: &berth_store::rusqlite::Connection,
    network: &str,
    peer: Option<Ipv4Addr>,
    packet: &[u8],
) -> Answer {
    let Ok(req) = Message::from_vec(packet) else {
        return Answer::Drop;
    };
    if req.metadata.message_type != MessageType::Query || req.metadata.op_code != OpCode::Query {
        return Answer::Drop;
    }
    let Some(q) = req.queries.first() else {
        return Answer::Drop;
    };
    let name = q.name().to_ascii();
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if q.query_type() == RecordType::PTR {
        // A container's address: its name; anything else goes upstream.
        let Some(target) = reverse(db, network, peer, &name).and_then(|t| Name::from_ascii(t).ok())
        else {
            return Answer::Forward;
        };
        let ptr = Record::from_rdata(q.name().clone(), 10, RData::PTR(PTR(target)));
        return reply(&req, q, ResponseCode::NoError, vec![ptr]);
    }
    let found = resolve(db, network, peer, &name);
    let single_label = !name.contains('.');
    if found.is_empty() && !single_label {
        return Answer::Forward;
    }
    if found.is_empty() {
        return reply(&req, q, ResponseCode::NXDomain, Vec::new());
    }
    let answers = match q.query_type() {
        RecordType::A => found
            .into_iter()
            .map(|ip| Record::from_rdata(q.name().clone(), 10, RData::A(A(ip))))
            .collect(),
        // A name this server knows, without addresses of that type: an empty answer.
        _ => Vec::new(),
    };
    reply(&req, q, ResponseCode::NoError, answers)
}

/// Resolver addresses (port 53) from `nameserver`-style strings; unparsable ones skipped.
fn socket_addrs(servers: &[String]) -> Vec<SocketAddr> {
    servers
        .iter()
        .filter_map(|n| n.parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Where to relay a query from `peer`: its container's `--dns` servers, else the host's.
fn upstreams_for(
    db: &berth_store::rusqlite::Connection,
    host: &crate::files::HostDns,
    network: &str,
    peer: Option<Ipv4Addr>,
) -> Vec<SocketAddr> {
    let own = peer.and_then(|peer| {
        let ep = state::endpoints_of_network(db, network)
            .ok()?
            .into_iter()
            .find(|e| e.ip == peer)?;
        let sb = state::get_sandbox(db, &ep.container_id).ok()??;
        let text = fs::read_to_string(sb.dir.join(crate::DNS_UPSTREAM_FILE)).ok()?;
        Some(crate::files::parse_resolv(&text).nameservers)
    });
    match own {
        Some(servers) if !servers.is_empty() => socket_addrs(&servers),
        _ => socket_addrs(&host.upstreams()),
    }
}

fn v4(ip: std::net::IpAddr) -> Option<Ipv4Addr> {
    match ip {
        std::net::IpAddr::V4(ip) => Some(ip),
        std::net::IpAddr::V6(ip) => ip.to_ipv4_mapped(),
    }
}

/// Ask `ups` in turn (at most three, 3 s each); the raw answer.
async fn upstream_query(packet: &[u8], ups: Vec<SocketAddr>) -> Option<Vec<u8>> {
    for up in ups.into_iter().take(3) {
        let bind: SocketAddr = if up.is_ipv4() {
            "0.0.0.0:0".parse().unwrap()
        } else {
            "[::]:0".parse().unwrap()
        };
        let Ok(u) = tokio::net::UdpSocket::bind(bind).await else {
            continue;
        };
        if u.send_to(packet, up).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_secs(3), u.recv_from(&mut buf)).await
        {
            buf.truncate(n);
            return Some(buf);
        }
    }
    None
}

async fn forward(
    sock: Arc<tokio::net::UdpSocket>,
    packet: Vec<u8>,
    peer: SocketAddr,
    ups: Vec<SocketAddr>,
) {
    if let Some(b) = upstream_query(&packet, ups).await {
        let _ = sock.send_to(&b, peer).await;
    }
}

/// One DNS-over-TCP connection: length-prefixed queries until the client closes or idles.
async fn serve_tcp(
    mut conn: tokio::net::TcpStream,
    db: std::rc::Rc<berth_store::rusqlite::Connection>,
    network: String,
    host: crate::files::HostDns,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let peer = conn.peer_addr().ok().and_then(|a| v4(a.ip()));
    for _ in 0..64 {
        let mut len = [0u8; 2];
        let read = async {
            conn.read_exact(&mut len).await?;
            let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
            conn.read_exact(&mut msg).await?;
            Ok::<_, std::io::Error>(msg)
        };
        let Ok(Ok(msg)) = tokio::time::timeout(Duration::from_secs(10), read).await else {
            return;
        };
        let reply = match answer(&db, &network, peer, &msg) {
            Answer::Reply(b) => Some(b),
            Answer::Forward => {
                let ups = upstreams_for(&db, &host, &network, peer);
                upstream_query(&msg, ups).await
            }
            Answer::Drop => None,
        };
        let Some(b) = reply else { return };
        // DNS over TCP frames a message with a 16-bit length; a longer one cannot be sent.
        let Ok(len) = u16::try_from(b.len()) else {
            return;
        };
        let mut out = len.to_be_bytes().to_vec();
        out.extend_from_slice(&b);
        if conn.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// Serve DNS for `network` until no container uses it. Prints `ready` on stdout once it
/// listens (or when another server already runs).
pub fn serve(root: &Path, network: &str) -> Result<()> {
    let store = berth_store::Store::open(root)?;
    state::migrate(&store)?;
    let net = state::get_network(store.db(), network)?
        .ok_or_else(|| NetError::NotFound(network.to_string()))?;
    let host_dns = crate::config::NetConf::load(root)?.host_dns();
    let lock = open_lock(root, network)?;
    let ready = || {
        let mut out = std::io::stdout();
        let _ = out.write_all(b"ready\n");
        let _ = out.flush();
    };
    if !try_lock(&lock) {
        ready();
        return Ok(());
    }
    let _ = fs::write(
        lock_path(root, network),
        format!("{} {}\n", std::process::id(), net.id),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| NetError::Other(format!("dns runtime: {e}")))?;
    let db = std::rc::Rc::new(store.open_db()?);
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let addr = SocketAddr::from((net.gateway, 53));
        let (mut sock, mut tcp) = (None, None);
        for _ in 0..50 {
            if sock.is_none() {
                sock = tokio::net::UdpSocket::bind(addr).await.ok();
            }
            if tcp.is_none() {
                tcp = tokio::net::TcpListener::bind(addr).await.ok();
            }
            if sock.is_some() && tcp.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let sock = Arc::new(sock.ok_or_else(|| {
            NetError::Other(format!("cannot listen on {addr}; is another DNS server using it?"))
        })?);
        ready();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut buf = vec![0u8; 4096];
        loop {
            tokio::select! {
                r = sock.recv_from(&mut buf) => {
                    let Ok((n, peer)) = r else { continue };
                    match answer(&db, &net.name, v4(peer.ip()), &buf[..n]) {
                        Answer::Reply(b) => { let _ = sock.send_to(&b, peer).await; }
                        Answer::Forward => {
                            let ups = upstreams_for(&db, &host_dns, &net.name, v4(peer.ip()));
                            tokio::spawn(forward(sock.clone(), buf[..n].to_vec(), peer, ups));
                        }
                        Answer::Drop => {}
                    }
                }
                c = async { match &tcp { Some(l) => l.accept().await, None => std::future::pending().await } } => {
                    if let Ok((conn, _)) = c {
                        tokio::task::spawn_local(serve_tcp(conn, db.clone(), net.name.clone(), host_dns.clone()));
                    }
                }
                _ = tick.tick() => {
                    let in_use = |db: &berth_store::rusqlite::Connection| -> bool {
                        matches!(state::get_network(db, &net.name), Ok(Some(n)) if n.id == net.id)
                            && state::endpoints_of_network(db, &net.name).map(|v| !v.is_empty()).unwrap_or(true)
                    };
                    if !in_use(&db) {
                        let _ = flock(lock.as_fd(), FlockOperation::Unlock);
                        if in_use(&db) && try_lock(&lock) {
                            continue;
                        }
                        return Ok(());
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Name;
    use std::str::FromStr;

    fn query(name: &str, t: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 77;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_str(name).unwrap(), t));
        m.to_vec().unwrap()
    }

    #[test]
    fn answers_from_tables() {
        let dir = std::env::temp_dir().join(format!("berth-dns-test-{:x}", rand::random::<u64>()));
        let store = berth_store::Store::open(&dir).unwrap();
        state::migrate(&store).unwrap();
        let ep = state::Endpoint {
            container_id: "0123456789abcdef".into(),
            network: "shop".into(),
            container_name: "db".into(),
            ip: Ipv4Addr::new(10, 90, 0, 2),
            mac: String::new(),
            aliases: vec!["database".into()],
            veth: "v".into(),
            ifname: "eth0".into(),
        };
        state::insert_endpoint(store.db(), &ep).unwrap();
        for name in ["db.", "DATABASE", "0123456789ab"] {
            let Answer::Reply(b) = answer(store.db(), "shop", None, &query(name, RecordType::A))
            else {
                panic!("no reply for {name}")
            };
            let m = Message::from_vec(&b).unwrap();
            assert_eq!(m.metadata.id, 77);
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            assert_eq!(m.answers.len(), 1, "{name}");
            assert_eq!(&m.answers[0].data, &RData::A(A(ep.ip)));
        }
        // Reverse lookups (PTR) of a container address: NAME.NETWORK., as Docker answers.
        let Answer::Reply(b) = answer(
            store.db(),
            "shop",
            None,
            &query("2.0.90.10.in-addr.arpa.", RecordType::PTR),
        ) else {
            panic!("no PTR reply")
        };
        let m = Message::from_vec(&b).unwrap();
        assert_eq!(m.answers.len(), 1);
        assert_eq!(
            &m.answers[0].data,
            &RData::PTR(PTR(Name::from_str("db.shop.").unwrap()))
        );
        // Other addresses are not this server's to answer.
        assert!(matches!(
            answer(
                store.db(),
                "shop",
                None,
                &query("9.0.90.10.in-addr.arpa.", RecordType::PTR)
            ),
            Answer::Forward
        ));
        let Answer::Reply(b) = answer(store.db(), "shop", None, &query("db", RecordType::AAAA))
        else {
            panic!()
        };
        assert!(Message::from_vec(&b).unwrap().answers.is_empty());
        let Answer::Reply(b) = answer(store.db(), "shop", None, &query("nosuch", RecordType::A))
        else {
            panic!()
        };
        assert_eq!(
            Message::from_vec(&b).unwrap().metadata.response_code,
            ResponseCode::NXDomain
        );
        // A client on shop and back: sees names of back through shop's server.
        let mk = |id: &str, net: &str, name: &str, ip: [u8; 4]| state::Endpoint {
            container_id: id.into(),
            network: net.into(),
            container_name: name.into(),
            ip: Ipv4Addr::from(ip),
            mac: String::new(),
            aliases: vec![],
            veth: format!("v{id}{net}"),
            ifname: "eth0".into(),
        };
        for e in [
            mk("c1", "shop", "client", [10, 90, 0, 3]),
            mk("c1", "back", "client", [10, 91, 0, 3]),
            mk("c2", "back", "cache", [10, 91, 0, 4]),
        ] {
            state::insert_endpoint(store.db(), &e).unwrap();
        }
        let q = query("cache", RecordType::A);
        let Answer::Reply(b) = answer(store.db(), "shop", Some(Ipv4Addr::new(10, 90, 0, 3)), &q)
        else {
            panic!()
        };
        let m = Message::from_vec(&b).unwrap();
        assert_eq!(
            &m.answers[0].data,
            &RData::A(A(Ipv4Addr::new(10, 91, 0, 4)))
        );
        let Answer::Reply(b) = answer(store.db(), "shop", Some(ep.ip), &q) else {
            panic!()
        };
        assert_eq!(
            Message::from_vec(&b).unwrap().metadata.response_code,
            ResponseCode::NXDomain
        );
        // Other network: not visible.
        assert!(matches!(
            answer(store.db(), "other", None, &query("db", RecordType::A)),
            Answer::Reply(_)
        ));
        assert!(matches!(
            answer(
                store.db(),
                "shop",
                None,
                &query("example.org", RecordType::A)
            ),
            Answer::Forward
        ));
        fs::remove_dir_all(&dir).unwrap();
    }
}
