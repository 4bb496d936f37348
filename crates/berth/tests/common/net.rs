//! Networking helpers for the integration tests: a per-test network configuration (own name
//! prefix, own subnets), HTTP fetches with retries, and a cleanup that removes everything
//! berth networking created (containers, networks, bridges, veths, nft table, namespaces)
//! and can list what is left over.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::common::TestEnv;

static N: AtomicU32 = AtomicU32::new(0);

/// Networking state of one test; cleans up on drop (declare it after the [`TestEnv`]).
pub struct NetEnv {
    pub root: PathBuf,
    pub prefix: String,
    /// Third octet of this test's subnets: default bridge 10.213.X.0/24, user networks from
    /// 10.214.X.0/24 and 10.215.X.0/24.
    pub x: u8,
    exe: PathBuf,
}

impl NetEnv {
    pub fn new(env: &TestEnv) -> NetEnv {
        // Unique per test within this process (the counter; tests of one binary run at the
        // same time), varied across processes by the pid. Two tests must never share a subnet:
        // their bridges would fight over the routes.
        let n = N.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let x = u8::try_from((pid as usize * 13 + n as usize) % 251).expect("below 251");
        let prefix = format!("bt{:03x}{:x}", pid % 4096, n % 16);
        std::fs::write(
            env.root.join("net.conf"),
            format!(
                "prefix = {prefix}\nbridge_subnet = 10.213.{x}.0/24\npool = 10.214.{x}.0/24, 10.215.{x}.0/24\n"
            ),
        )
        .unwrap();
        NetEnv {
            root: env.root.clone(),
            prefix,
            x,
            exe: PathBuf::from(env!("CARGO_BIN_EXE_berth")),
        }
    }

    /// Gateway of the default bridge (an address of the host that berth owns).
    pub fn bridge_gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.x, 1)
    }

    fn berth(&self, args: &[&str]) -> std::process::Output {
        Command::new(&self.exe)
            .args(args)
            .env("BERTH_ROOT", &self.root)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Remove containers, user networks and all host state of this store's networking.
    pub fn cleanup(&self) {
        let out = self.berth(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = self.berth(&["rm", "-f", id]);
        }
        let out = self.berth(&["network", "ls", "--format", "{{.Name}}"]);
        for n in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if n != "berth" {
                let _ = self.berth(&["network", "rm", n]);
            }
        }
        let _ = self.berth(&["network", "reset"]);
        // Whatever survived a failure: links with our prefix, our nft table.
        for l in self.links() {
            let _ = Command::new("ip")
                .args(["link", "del", &l])
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &self.prefix])
            .stderr(Stdio::null())
            .status();
    }

    fn links(&self) -> Vec<String> {
        std::fs::read_dir("/sys/class/net")
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .filter(|n| n.starts_with(&self.prefix))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// What berth networking left behind: links, the nft table, namespace mounts, addresses.
    /// Veths vanish with their namespace in the background, so wait a little for them.
    pub fn leftovers(&self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.links().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut left: Vec<String> = self
            .links()
            .into_iter()
            .map(|l| format!("link {l}"))
            .collect();
        let t = Command::new("nft")
            .args(["list", "table", "ip", &self.prefix])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        if t.success() {
            left.push(format!("nft table ip {}", self.prefix));
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let netns_dir = self.root.join("run/netns");
        for l in mounts.lines() {
            if l.contains(netns_dir.to_str().unwrap()) {
                left.push(format!("mount {l}"));
            }
        }
        let addrs = Command::new("ip")
            .args(["-o", "-4", "addr"])
            .output()
            .unwrap();
        for l in String::from_utf8_lossy(&addrs.stdout).lines() {
            for net in ["10.213.", "10.214.", "10.215."] {
                if l.contains(&format!("{net}{}.", self.x)) {
                    left.push(format!("address {l}"));
                }
            }
        }
        let ps = Command::new("ps")
            .args(["-eo", "pid,args"])
            .output()
            .unwrap();
        for l in String::from_utf8_lossy(&ps.stdout).lines() {
            if l.contains("__dns") && l.contains(self.root.to_str().unwrap()) {
                left.push(format!("process {l}"));
            }
        }
        left
    }
}

impl Drop for NetEnv {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// GET `path` from `addr` over HTTP/1.0, retrying until `timeout`; the body on a 200.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            s.set_read_timeout(Some(Duration::from_secs(2))).ok();
            let _ = s.write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes());
            let mut resp = String::new();
            if s.read_to_string(&mut resp).is_ok()
                && resp.starts_with("HTTP/1.")
                && resp.contains(" 200 ")
            {
                return resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Load a busybox image named `tag`; with `expose`, its config lists these ports
/// (`80/tcp`). Returns false when this berth cannot load images yet.
pub fn load_image(env: &TestEnv, tag: &str, expose: &[&str]) -> bool {
    use super::common::*;
    let l = TestLayer::new(&busybox_rootfs(), Comp::None);
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&image_config(std::slice::from_ref(&l), &["sh"], &[])).unwrap();
    if !expose.is_empty() {
        let ports: serde_json::Map<String, serde_json::Value> = expose
            .iter()
            .map(|p| (p.to_string(), serde_json::json!({})))
            .collect();
        cfg["config"]["ExposedPorts"] = serde_json::Value::Object(ports);
    }
    let p = env.path(&format!("{}.tar", tag.replace([':', '/'], "_")));
    write_docker_archive(&p, &serde_json::to_vec(&cfg).unwrap(), &[l], &[tag]);
    let out = env.berth(&["load", "-i", p.to_str().unwrap()]);
    let _ = std::fs::remove_file(&p);
    if !out.status.success() {
        eprintln!(
            "skipped: cannot load an image: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return false;
    }
    true
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
