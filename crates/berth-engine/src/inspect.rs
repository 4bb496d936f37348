//! Docker's inspect document of a container, shared by the CLI (`inspect`) and the API
//! service (`GET /containers/{id}/json`). List rows and filters are in [`crate::view`].

use serde_json::json;

use berth_net::NetworkMode;
use berth_store::Store;

use crate::state::{Container, State};

/// Docker's inspect document of a container (`docker inspect`, `GET /containers/{id}/json`):
/// `Id`, `State`, `Config`, `HostConfig`, `Mounts`, `NetworkSettings`, … as JSON.
pub fn container_json(store: &Store, c: &Container) -> serde_json::Value {
    let running = c.state == State::Running;
    let paused = crate::ops::is_paused(c);
    let mut net_settings = berth_net::network_settings(store, &c.id).unwrap_or_else(|_| json!({}));
    configured_networks(store, c, &mut net_settings);
    let exposed: serde_json::Map<String, serde_json::Value> = berth_image::ImageStore::open(store)
        .and_then(|i| i.get(&c.image_id))
        .ok()
        .and_then(|i| i.config.exposed_ports.clone())
        .map(|m| m.into_keys().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(c.config.extra.expose.iter().cloned())
        .map(|p| (p, json!({})))
        .collect();
    let mut doc = json!({
        "Id": c.id,
        "Created": chrono::DateTime::from_timestamp(c.created, 0).map(|t| t.to_rfc3339()).unwrap_or_default(),
        "Path": c.config.args.first(),
        "Args": c.config.args.get(1..).unwrap_or(&[]),
        "State": {
            "Status": crate::view::state_text(c, paused),
            "Running": running,
            "Paused": paused,
            "Restarting": c.state == State::Restarting,
            "OOMKilled": c.oom_killed,
            "Dead": false,
            "Pid": c.pid.unwrap_or(0),
            "ExitCode": c.exit_code.unwrap_or(0),
            "Error": c.error.clone().unwrap_or_default(),
            "StartedAt": c.started_at.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            "FinishedAt": c.finished_at.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
            "Health": c.config.healthcheck.as_ref().and_then(|_| crate::health::get(store, &c.id).ok().flatten()),
        },
        "Image": c.image_id.as_str(),
        "Name": format!("/{}", c.name),
        "RestartCount": c.restart_count,
        "HostConfig": {
            "Binds": c.config.binds.iter().map(|b| format!("{}:{}{}", b.source, b.destination, if b.read_only { ":ro" } else { "" }))
                .chain(c.config.volumes.iter().filter(|v| !v.anonymous).map(|v| format!("{}:{}{}", v.name, v.destination, if v.mode.is_empty() { String::new() } else { format!(":{}", v.mode) })))
                .collect::<Vec<_>>(),
            "NetworkMode": match &c.config.network { NetworkMode::None => "none".to_string(), NetworkMode::Host => "host".into(), NetworkMode::Container(id) => format!("container:{id}"), NetworkMode::Networks(n) => n.first().map(|a| a.network.clone()).unwrap_or_default() },
            "RestartPolicy": {"Name": c.config.restart.name, "MaximumRetryCount": c.config.restart.max_retries},
            "AutoRemove": c.config.auto_remove,
            "Memory": c.config.memory.unwrap_or(0),
            "NanoCpus": c.config.nano_cpus.unwrap_or(0),
            "PidsLimit": c.config.pids_limit,
            "ReadonlyRootfs": c.config.read_only,
            "Init": c.config.init,
            "Runtime": c.config.runtime.clone().unwrap_or_else(|| "builtin".into()),
            "LogConfig": {"Type": c.config.log_config.driver, "Config": c.config.log_config.opts},
            "Tmpfs": c.config.tmpfs.iter().map(|t| (t.destination.clone(), json!(t.options.join(",")))).collect::<serde_json::Map<_, _>>(),
        },
        "Config": {
            "Hostname": c.config.hostname,
            "Domainname": c.config.domainname,
            "User": c.config.user,
            "Env": c.config.env,
            "Cmd": c.config.cmd,
            "Entrypoint": c.config.entrypoint,
            "WorkingDir": c.config.working_dir,
            "Image": c.image_name,
            "Tty": c.config.tty,
            "OpenStdin": c.config.open_stdin,
            "Labels": c.config.labels,
            "StopSignal": c.config.stop_signal,
            "Healthcheck": c.config.healthcheck,
            "ExposedPorts": (!exposed.is_empty()).then_some(exposed),
            "MacAddress": c.config.extra.mac_address,
        },
        "Mounts": crate::volumes::mounts_json(store, &c.config),
        "NetworkSettings": net_settings,
    });
    for more in [host_config_more(c), c.config.security.host_config_json()] {
        if let (Some(h), serde_json::Value::Object(more)) = (
            doc.get_mut("HostConfig").and_then(|h| h.as_object_mut()),
            more,
        ) {
            h.extend(more);
        }
    }
    if let Some(h) = doc.get_mut("HostConfig").and_then(|h| h.as_object_mut()) {
        h.insert(
            "GroupAdd".into(),
            json!((!c.config.group_add.is_empty()).then_some(&c.config.group_add)),
        );
    }
    doc["AppArmorProfile"] = json!(c
        .config
        .security
        .apparmor_profile(crate::apparmor::host_supports()));
    doc
}

/// The resource, namespace and legacy-network parts of inspect's `HostConfig` (Docker's
/// names and units: bytes, microseconds, shares).
fn host_config_more(c: &Container) -> serde_json::Value {
    let (r, ns) = (&c.config.resources, &c.config.namespaces);
    json!({
        "CpuShares": r.cpu_shares.unwrap_or(0),
        "CpuPeriod": r.cpu_period.unwrap_or(0),
        "CpuQuota": r.cpu_quota.unwrap_or(0),
        "CpusetCpus": r.cpuset_cpus.clone().unwrap_or_default(),
        "CpusetMems": r.cpuset_mems.clone().unwrap_or_default(),
        "MemoryReservation": r.memory_reservation.unwrap_or(0),
        "MemorySwap": r.memory_swap.unwrap_or(0),
        "MemorySwappiness": r.memory_swappiness,
        "KernelMemory": r.kernel_memory.unwrap_or(0),
        "OomKillDisable": r.oom_kill_disable,
        "OomScoreAdj": r.oom_score_adj.unwrap_or(0),
        "BlkioWeight": r.blkio_weight.unwrap_or(0),
        "BlkioWeightDevice": r.blkio_weight_device.iter().map(|d| json!({"Path": d.path, "Weight": d.value})).collect::<Vec<_>>(),
        "BlkioDeviceReadBps": r.device_read_bps.iter().map(|d| json!({"Path": d.path, "Rate": d.value})).collect::<Vec<_>>(),
        "BlkioDeviceWriteBps": r.device_write_bps.iter().map(|d| json!({"Path": d.path, "Rate": d.value})).collect::<Vec<_>>(),
        "BlkioDeviceReadIOps": r.device_read_iops.iter().map(|d| json!({"Path": d.path, "Rate": d.value})).collect::<Vec<_>>(),
        "BlkioDeviceWriteIOps": r.device_write_iops.iter().map(|d| json!({"Path": d.path, "Rate": d.value})).collect::<Vec<_>>(),
        "PidMode": ns.pid.clone().unwrap_or_default(),
        "IpcMode": ns.ipc.clone().unwrap_or_else(|| "private".into()),
        "UTSMode": ns.uts.clone().unwrap_or_default(),
        "CgroupnsMode": ns.cgroupns.clone().unwrap_or_else(|| "private".into()),
        "ContainerIDFile": c.config.extra.cidfile,
        "Links": (!c.config.extra.links.is_empty()).then(|| c.config.extra.links.iter().map(|l| {
                let (n, a) = l.split_once(':').unwrap_or((l, l));
                format!("/{n}:/{}/{a}", c.name)
            }).collect::<Vec<_>>()),
    })
}

/// Add to `NetworkSettings.Networks` the networks the container is configured for but not
/// attached to (a stopped container, or one connected while stopped), with empty addresses
/// as Docker shows them.
///
/// A container networked with `host` or `none` shows that network (Docker's key and id).
fn configured_networks(store: &Store, c: &Container, settings: &mut serde_json::Value) {
    // An endpoint without addresses (Docker's EndpointSettings of an unattached network).
    let unattached = |id: &str, aliases: &[String]| {
        json!({
            "Aliases": if aliases.is_empty() { serde_json::Value::Null } else { json!(aliases) },
            "NetworkID": id,
            "EndpointID": "",
            "Gateway": "",
            "IPAddress": "",
            "IPPrefixLen": 0,
            "MacAddress": "",
            "DNSNames": serde_json::Value::Null,
        })
    };
    let Some(nets) = settings
        .get_mut("Networks")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    let pseudo = match &c.config.network {
        NetworkMode::Networks(_) | NetworkMode::Container(_) => None,
        NetworkMode::Host => Some("host"),
        NetworkMode::None => Some("none"),
    };
    if let Some(name) = pseudo {
        let id = berth_net::find_shown(store, name)
            .map(|l| l.id().to_string())
            .unwrap_or_default();
        nets.insert(name.to_string(), unattached(&id, &[]));
    }
    let NetworkMode::Networks(list) = &c.config.network else {
        return;
    };
    for a in list {
        let (name, id) = match berth_net::get_network(store, &a.network) {
            Ok(n) => (berth_net::shown_name(&n.name).to_string(), n.id),
            Err(_) => (a.network.clone(), String::new()),
        };
        if nets.contains_key(&name) {
            continue;
        }
        nets.insert(name, unattached(&id, &a.aliases));
    }
}
