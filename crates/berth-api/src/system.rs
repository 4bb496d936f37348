//! `/_ping`, `/version`, `/info`, `/system/df`.

use std::sync::Arc;

use serde_json::json;

use crate::http::{self, Resp};
use crate::server::App;
use crate::{Result, API_VERSION, MIN_API_VERSION};

/// `GET|HEAD /_ping`: `OK` with the headers clients negotiate with (`Api-Version`,
/// `Builder-Version: 1`: the classic builder, since berth has no BuildKit session endpoint).
pub fn ping(head: bool) -> Resp {
    let mut r = http::with_headers(
        200,
        "text/plain; charset=utf-8",
        if head {
            http::empty()
        } else {
            http::full("OK")
        },
    );
    let h = r.headers_mut();
    h.insert(
        "Builder-Version",
        hyper::header::HeaderValue::from_static("1"),
    );
    h.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(
        hyper::header::PRAGMA,
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    r
}

fn kernel_version() -> String {
    rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned()
}

fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// Go's name for this architecture (`amd64`, `arm64`).
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// `GET /version`.
pub async fn version(_app: &Arc<App>) -> Result<Resp> {
    let v = env!("CARGO_PKG_VERSION");
    let doc = json!({
        "Platform": {"Name": "berth"},
        "Components": [{
            "Name": "Engine",
            "Version": v,
            "Details": {
                "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION,
                "Os": "linux",
                "Arch": go_arch(),
                "KernelVersion": kernel_version(),
                "Experimental": "false",
            }
        }],
        "Version": v,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": go_arch(),
        "KernelVersion": kernel_version(),
        "BuildTime": "",
    });
    Ok(http::json(200, &doc))
}

fn cgroup_version() -> &'static str {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    }
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map(|k| k * 1024)
        .unwrap_or(0)
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".into())
}

/// `GET /info`.
pub async fn info(app: &Arc<App>) -> Result<Resp> {
    let root = app.root.clone();
    let (containers, images) = app
        .blocking(|store| {
            let rows = berth_engine::ops::reconciled_rows(store)?;
            let images = berth_image::ImageStore::open(store)?.list()?.len();
            Ok((rows, images))
        })
        .await?;
    let running = containers
        .iter()
        .filter(|c| c.state == berth_engine::state::State::Running)
        .count();
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let doc = json!({
        "ID": "",
        "Containers": containers.len(),
        "ContainersRunning": running,
        "ContainersPaused": 0,
        "ContainersStopped": containers.len() - running,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"]],
        "DockerRootDir": root,
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "none"], "Log": ["json-file", "local", "none", "journald"]},
        "MemoryLimit": true,
        "SwapLimit": false,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "PidsLimit": true,
        "IPv4Forwarding": true,
        "Debug": false,
        "NFd": 0,
        "NGoroutines": 0,
        "SystemTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version(),
        "NEventsListener": 0,
        "KernelVersion": kernel_version(),
        "OperatingSystem": os_name(),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": []},
        "NCPU": ncpu,
        "MemTotal": mem_total(),
        "Name": hostname(),
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": {"builtin": {"path": "builtin"}, "runc": {"path": "runc"}},
        "DefaultRuntime": "builtin",
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null},
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "tini",
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": [],
    });
    Ok(http::json(200, &doc))
}

/// `GET /system/df`: images, containers, volumes and build cache with their sizes, from the
/// same `berth_system::disk_usage` that `berth system df` prints (the CLI and the socket agree).
pub async fn df(app: &Arc<App>) -> Result<Resp> {
    let doc = app
        .blocking(|store| {
            berth_system::disk_usage(store)
                .map(|u| u.api_json())
                .map_err(|e| crate::ApiError::Internal(e.to_string()))
        })
        .await?;
    Ok(http::json(200, &doc))
}
