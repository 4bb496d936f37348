//! `POST /containers/{id}/update`: Docker's `UpdateConfig` onto the engine's `update`.

use std::sync::Arc;

use serde_json::json;

use crate::containers::{find, read_json};
use crate::http::{self, Resp};
use crate::router::Req;
use crate::server::App;
use crate::{ApiError, Result};

/// `POST /containers/{id}/update`: Docker's `UpdateConfig` (resources and restart policy;
/// zeros and empty strings leave a setting as it is) through the engine's `update`, the call
/// `berth update` makes. 200 `{"Warnings": […]}`; 400 for values out of range, conflicts, or
/// settings berth cannot change on a container.
pub async fn update(app: &Arc<App>, id: String, mut r: Req) -> Result<Resp> {
    let b: bollard_stubs::models::ContainerUpdateBody = read_json(&mut r.inner).await?;
    let req = update_request(&b)?;
    let warnings = app
        .blocking(move |store| {
            let c = find(store, &id)?;
            Ok(berth_engine::ops::update(store, &c, &req)?)
        })
        .await?;
    Ok(http::json(200, &json!({"Warnings": warnings})))
}

/// The engine's request for an `UpdateConfig` body. Errors name the field berth cannot
/// change.
fn update_request(
    b: &bollard_stubs::models::ContainerUpdateBody,
) -> Result<berth_engine::ops::UpdateRequest> {
    let refuse = |field: &str| {
        Err(ApiError::BadParameter(format!(
            "{field} cannot be changed by update in berth: recreate the container with it"
        )))
    };
    for (f, v) in [
        ("Devices", b.devices.as_ref().map(Vec::len)),
        ("Ulimits", b.ulimits.as_ref().map(Vec::len)),
        (
            "BlkioWeightDevice",
            b.blkio_weight_device.as_ref().map(Vec::len),
        ),
        (
            "BlkioDeviceReadBps",
            b.blkio_device_read_bps.as_ref().map(Vec::len),
        ),
        (
            "BlkioDeviceWriteBps",
            b.blkio_device_write_bps.as_ref().map(Vec::len),
        ),
        (
            "BlkioDeviceReadIOps",
            b.blkio_device_read_iops.as_ref().map(Vec::len),
        ),
        (
            "BlkioDeviceWriteIOps",
            b.blkio_device_write_iops.as_ref().map(Vec::len),
        ),
    ] {
        if v.unwrap_or(0) > 0 {
            return refuse(f);
        }
    }
    if b.oom_kill_disable == Some(true) {
        return refuse("OomKillDisable");
    }
    if b.memory_swappiness.is_some_and(|s| s >= 0) {
        return refuse("MemorySwappiness");
    }
    if b.cgroup_parent.as_deref().is_some_and(|p| !p.is_empty()) {
        return refuse("CgroupParent");
    }
    if b.cpu_realtime_period.unwrap_or(0) != 0 || b.cpu_realtime_runtime.unwrap_or(0) != 0 {
        return refuse("CpuRealtimePeriod/CpuRealtimeRuntime");
    }
    let restart = match &b.restart_policy {
        Some(rp) => match rp.name {
            None | Some(bollard_stubs::models::RestartPolicyNameEnum::EMPTY) => None,
            Some(n) => {
                let text = match (n, rp.maximum_retry_count.filter(|c| *c > 0)) {
                    (bollard_stubs::models::RestartPolicyNameEnum::ON_FAILURE, Some(c)) => {
                        format!("on-failure:{c}")
                    }
                    (n, _) => n.to_string(),
                };
                Some(
                    berth_engine::config::RestartPolicy::parse(&text)
                        .map_err(|e| ApiError::BadParameter(format!("RestartPolicy: {e}")))?,
                )
            }
        },
        None => None,
    };
    Ok(berth_engine::ops::UpdateRequest {
        memory: b.memory,
        memory_swap: b.memory_swap,
        memory_reservation: b.memory_reservation,
        kernel_memory: None,
        nano_cpus: b.nano_cpus,
        cpu_shares: b.cpu_shares,
        cpu_period: b.cpu_period,
        cpu_quota: b.cpu_quota,
        cpuset_cpus: b.cpuset_cpus.clone().filter(|s| !s.is_empty()),
        cpuset_mems: b.cpuset_mems.clone().filter(|s| !s.is_empty()),
        pids_limit: b.pids_limit,
        blkio_weight: b.blkio_weight.filter(|w| *w != 0).map(i64::from),
        restart,
    })
}
