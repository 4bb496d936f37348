//! `GET /containers/{id}/stats?stream=&one-shot=`: Docker's `ContainerStatsResponse` JSON
//! built from the engine's counters (`berth_engine::ops::stats`, the numbers `berth stats`
//! shows). Each object carries the previous sample as `precpu_stats`, and both carry the
//! host's CPU time (`system_cpu_usage`), which is how the docker CLI computes CPU %.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use berth_engine::ops;
use berth_engine::state::{self, Container, State};

use crate::http::{self, Query, Resp};
use crate::server::App;
use crate::Result;

/// Docker's sampling interval of a stream.
const INTERVAL: Duration = Duration::from_secs(1);
/// The interval between the two samples of a single (`stream=false`) answer.
const SINGLE_INTERVAL: Duration = Duration::from_millis(500);
/// Nanoseconds per clock tick of /proc/stat (`USER_HZ` is 100 on Linux; Docker assumes it).
const NANOS_PER_TICK: u64 = 10_000_000;

/// One sample: the engine's counters, the host's CPU time and when it was read.
struct Sample {
    stats: ops::Stats,
    system_ns: u64,
    read: chrono::DateTime<chrono::Utc>,
}

/// The host's CPU time in nanoseconds (the `cpu` line of /proc/stat) and the number of
/// online CPUs.
fn host_cpu() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let mut total = 0u64;
    let mut cpus = 0u64;
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("cpu ") {
            total = rest
                .split_whitespace()
                .take(8)
                .filter_map(|v| v.parse::<u64>().ok())
                .fold(0u64, u64::saturating_add);
        } else if l.starts_with("cpu") {
            cpus += 1;
        }
    }
    (total.saturating_mul(NANOS_PER_TICK), cpus.max(1))
}

fn sample(c: &Container) -> Sample {
    Sample {
        stats: ops::stats(c),
        system_ns: host_cpu().0,
        read: chrono::Utc::now(),
    }
}

fn cpu_json(s: Option<&Sample>, online: u64) -> Value {
    match s {
        Some(s) => json!({
            "cpu_usage": {
                "total_usage": s.stats.cgroup.cpu_usage_ns,
                "usage_in_kernelmode": 0,
                "usage_in_usermode": 0,
            },
            "system_cpu_usage": s.system_ns,
            "online_cpus": online,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        }),
        None => json!({
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        }),
    }
}

/// Docker's zero time, which `read`/`preread` carry when there is no sample.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn rfc3339(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// One `ContainerStatsResponse` object. `cur` is `None` for a container that is not running
/// (Docker's all-zero answer).
fn document(c: &Container, cur: Option<&Sample>, pre: Option<&Sample>, online: u64) -> Value {
    let Some(s) = cur else {
        return json!({
            "name": format!("/{}", c.name),
            "id": c.id,
            "read": ZERO_TIME,
            "preread": ZERO_TIME,
            "pids_stats": {},
            "blkio_stats": {"io_service_bytes_recursive": null},
            "num_procs": 0,
            "storage_stats": {},
            "cpu_stats": cpu_json(None, online),
            "precpu_stats": cpu_json(None, online),
            "memory_stats": {},
        });
    };
    let g = &s.stats.cgroup;
    let limit = g
        .memory_limit
        .unwrap_or(u64::MAX)
        .min(berth_engine::info::mem_total().max(1));
    let mut pids = json!({"current": g.pids});
    if let Some(l) = g.pids_limit {
        pids["limit"] = json!(l);
    }
    let mut doc = json!({
        "name": format!("/{}", c.name),
        "id": c.id,
        "read": rfc3339(&s.read),
        "preread": pre.map_or_else(|| ZERO_TIME.to_string(), |p| rfc3339(&p.read)),
        "pids_stats": pids,
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"major": 0, "minor": 0, "op": "read", "value": g.blkio_read},
                {"major": 0, "minor": 0, "op": "write", "value": g.blkio_write},
            ],
            "io_serviced_recursive": null,
            "io_queue_recursive": null,
            "io_service_time_recursive": null,
            "io_wait_time_recursive": null,
            "io_merged_recursive": null,
            "io_time_recursive": null,
            "sectors_recursive": null,
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_json(Some(s), online),
        "precpu_stats": cpu_json(pre, online),
        // `usage` already leaves out the inactive file cache, so `stats` has nothing for
        // the client to subtract.
        "memory_stats": {"usage": g.memory_usage, "stats": {}, "limit": limit},
    });
    let has_netns = matches!(c.config.network, berth_net::NetworkMode::Networks(_));
    if has_netns {
        doc["networks"] = json!({"eth0": {
            "rx_bytes": s.stats.net_rx, "rx_packets": 0, "rx_errors": 0, "rx_dropped": 0,
            "tx_bytes": s.stats.net_tx, "tx_packets": 0, "tx_errors": 0, "tx_dropped": 0,
        }});
    }
    doc
}

fn running(c: &Container) -> bool {
    c.state == State::Running && state::monitor_alive(c)
}

/// `GET /containers/{id}/stats`: with `stream` (the default) one object per second until the
/// client goes away or the container is removed; `stream=false` one object whose
/// `precpu_stats` is a sample taken shortly before (`one-shot=true`: no previous sample).
pub async fn stats(app: &Arc<App>, id: String, q: &Query) -> Result<Resp> {
    let stream = q.bool("stream", true);
    let one_shot = q.bool("one-shot", false);
    let c = app
        .blocking(move |store| crate::containers::find(store, &id))
        .await?;
    let online = host_cpu().1;
    if !stream {
        let doc = crate::server::run_blocking(move || {
            if !running(&c) {
                return Ok(document(&c, None, None, online));
            }
            if one_shot {
                return Ok(document(&c, Some(&sample(&c)), None, online));
            }
            let pre = sample(&c);
            std::thread::sleep(SINGLE_INTERVAL);
            Ok(document(&c, Some(&sample(&c)), Some(&pre), online))
        })
        .await?;
        return Ok(http::json(200, &doc));
    }
    let (tx, body) = http::channel();
    let root = app.root.clone();
    std::thread::Builder::new()
        .name("berth-api-stats".into())
        .spawn(move || {
            let Ok(store) = berth_store::Store::open(&root) else {
                return;
            };
            let mut c = c;
            let mut pre: Option<Sample> = None;
            loop {
                let cur = running(&c).then(|| sample(&c));
                let doc = document(&c, cur.as_ref(), pre.as_ref(), online);
                if tx.blocking_send(Bytes::from(format!("{doc}\n"))).is_err() {
                    return;
                }
                pre = cur;
                std::thread::sleep(INTERVAL);
                match state::get(&store, &c.id) {
                    Ok(Some(row)) => c = row,
                    Ok(None) => return,
                    Err(_) => {}
                }
            }
        })
        .map_err(|e| crate::ApiError::Internal(format!("starting the stats thread: {e}")))?;
    Ok(http::with_headers(200, "application/json", body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_cpu_time_grows_and_counts_cpus() {
        let (a, n) = host_cpu();
        assert!(a > 0);
        assert!(n >= 1);
    }
}
