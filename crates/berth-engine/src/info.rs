//! `version` and `info`: what berth is and what the host offers, as Docker's `/version` and
//! `/info` objects (same field names), for the CLI and the API.

use std::path::Path;

use berth_store::Store;
use serde_json::{json, Value};

use crate::state::State;

/// The Docker Engine API version berth speaks (Docker 28's; berth-api serves it and accepts
/// older versioned paths down to [`MIN_API_VERSION`]).
pub const API_VERSION: &str = "1.50";
/// The oldest API version berth answers.
pub const MIN_API_VERSION: &str = "1.24";

/// berth's version (the workspace version).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Go's name for this machine's architecture (`amd64`, `arm64`, …).
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn uname() -> rustix::system::Uname {
    rustix::system::uname()
}

/// The kernel release (`6.1.0-18-amd64`).
pub fn kernel_version() -> String {
    uname().release().to_string_lossy().into_owned()
}

/// Which cgroup version containers get: `2` on a unified host, `1` on v1 or hybrid hosts.
pub fn cgroup_version() -> &'static str {
    match rustix::fs::statfs("/sys/fs/cgroup") {
        Ok(s) if s.f_type == 0x6367_7270 => "2",
        _ => "1",
    }
}

fn os_release() -> (String, String) {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    (get("PRETTY_NAME"), get("VERSION_ID"))
}

/// The host's memory in bytes (`MemTotal` of /proc/meminfo; 0 if it cannot be read).
pub fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb.saturating_mul(1024))
}

/// `docker version`'s object: `Client` and `Server` (with `Components`).
pub fn version() -> Value {
    let server = json!({
        "Platform": {"Name": "berth"},
        "Components": [{
            "Name": "Engine",
            "Version": VERSION,
            "Details": {
                "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION,
                "Os": "linux",
                "Arch": go_arch(),
                "KernelVersion": kernel_version(),
                "Experimental": "false",
            },
        }],
        "Version": VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": go_arch(),
        "KernelVersion": kernel_version(),
        "BuildTime": "",
    });
    json!({
        "Client": {
            "Platform": {"Name": "berth"},
            "Version": VERSION,
            "ApiVersion": API_VERSION,
            "DefaultAPIVersion": API_VERSION,
            "GitCommit": "",
            "GoVersion": "",
            "Os": "linux",
            "Arch": go_arch(),
            "BuildTime": "",
            "Context": "default",
        },
        "Server": server,
    })
}

/// Runtimes berth can use: `builtin` (in-process libcontainer) and OCI runtime binaries on
/// the `PATH`.
pub fn runtimes() -> Vec<(String, String)> {
    let mut out = vec![("builtin".to_string(), "berth (libcontainer)".to_string())];
    for name in ["runc", "crun", "youki", "runsc"] {
        if let Some(p) = crate::runtime::find_in_path(name) {
            out.push((name.to_string(), p.display().to_string()));
        }
    }
    out
}

/// `docker info`'s object (the fields berth can answer; same names as Docker's `/info`).
/// Errors: the store cannot be read.
pub fn info(store: &Store, root: &Path) -> crate::Result<Value> {
    let rows = crate::ops::reconciled_rows(store)?;
    let count = |f: &dyn Fn(State) -> bool| rows.iter().filter(|c| f(c.state)).count();
    let running = count(&|s| matches!(s, State::Running | State::Restarting));
    let paused = rows.iter().filter(|c| crate::ops::is_paused(c)).count();
    let images = berth_image::ImageStore::open(store)
        .and_then(|is| is.list())
        .map(|l| l.len())
        .unwrap_or(0);
    let (os, os_version) = os_release();
    let host = uname();
    let runtimes: serde_json::Map<String, Value> = runtimes()
        .into_iter()
        .map(|(n, p)| (n, json!({"path": p})))
        .collect();
    let ncpu = std::thread::available_parallelism().map_or(1, usize::from);
    let log_driver = crate::logs::LogConfig::daemon_default(root)
        .map(|l| l.driver)
        .unwrap_or_else(|_| "json-file".into());
    let mut doc = json!({
        "ID": "",
        "Containers": rows.len(),
        "ContainersRunning": running.saturating_sub(paused),
        "ContainersPaused": paused,
        "ContainersStopped": rows.len().saturating_sub(running),
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", ""], ["Supports d_type", "true"]],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "none"],
            "Log": ["json-file", "local", "none", "journald"],
        },
        "MemoryLimit": true,
        "SwapLimit": true,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": true,
        "PidsLimit": true,
        "OomKillDisable": cgroup_version() == "1",
    });
    let more = json!({
        "IPv4Forwarding": std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .map(|s| s.trim() == "1")
            .unwrap_or(false),
        "Debug": false,
        "SystemTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "LoggingDriver": log_driver,
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version(),
        "KernelVersion": kernel_version(),
        "OperatingSystem": os,
        "OSVersion": os_version,
        "OSType": "linux",
        "Architecture": host.machine().to_string_lossy(),
        "NCPU": ncpu,
        "MemTotal": mem_total(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "DockerRootDir": root.display().to_string(),
        "Name": host.nodename().to_string_lossy(),
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": VERSION,
        "Runtimes": runtimes,
        "DefaultRuntime": "builtin",
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "tini",
        // As Docker: AppArmor listed first where the host enforces it.
        "SecurityOptions": crate::apparmor::host_supports()
            .then_some("name=apparmor")
            .into_iter()
            .chain(["name=seccomp,profile=builtin", "name=cgroupns"])
            .collect::<Vec<_>>(),
        "Warnings": [],
    });
    if let (Some(d), Value::Object(m)) = (doc.as_object_mut(), more) {
        d.extend(m);
    }
    Ok(doc)
}
