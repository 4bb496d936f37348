//! The project's networks and named volumes, created before its containers.

use super::*;

/// Create the project's networks used by `services` (external ones must exist).
pub fn ensure_networks(
    store: &Store,
    p: &Project,
    services: &[String],
    progress: Progress<'_>,
) -> Result<()> {
    let used: BTreeSet<&String> = services
        .iter()
        .filter_map(|s| p.services.get(s))
        .filter(|s| s.network_mode.is_none())
        .flat_map(|s| s.networks.keys())
        .collect();
    for key in used {
        let Some(n) = p.networks.get(key) else {
            continue;
        };
        let real = n
            .name
            .clone()
            .unwrap_or_else(|| format!("{}_{key}", p.name));
        if berth_net::get_network(store, &real).is_ok() {
            continue;
        }
        if n.external {
            return Err(RunError::Invalid(format!(
                "network {real} declared as external, but could not be found: create it with berth network create {real}"
            )));
        }
        let pool = n.ipam.config.first();
        // Its firewall state goes with the first container's ports (one nftables
        // transaction less before the first container runs).
        berth_net::create_network_deferred(
            store,
            &berth_net::CreateOptions {
                name: real.clone(),
                subnet: pool.and_then(|c| c.subnet.clone()),
                gateway: pool.and_then(|c| c.gateway.clone()),
                internal: n.internal,
                driver: n.driver.clone().unwrap_or_default(),
                labels: {
                    let mut l = n.labels.clone();
                    l.insert(labels::PROJECT.into(), p.name.clone());
                    l.insert(labels::NETWORK.into(), key.clone());
                    l.insert(labels::VERSION.into(), env!("CARGO_PKG_VERSION").into());
                    l
                },
            },
        )?;
        progress(&format!("Network {real}"), "Created");
    }
    Ok(())
}

/// The engine name of top-level volume `key` (`name:`, else `PROJECT_KEY`).
pub fn volume_name(p: &Project, key: &str) -> String {
    p.volumes
        .get(key)
        .and_then(|v| v.name.clone())
        .unwrap_or_else(|| format!("{}_{key}", p.name))
}

/// Create the project's named volumes used by `services`, with compose's labels
/// (`com.docker.compose.project`, `com.docker.compose.volume`) and their driver options;
/// external ones must exist. An existing volume is kept as it is.
pub fn ensure_volumes(
    store: &Store,
    p: &Project,
    services: &[String],
    progress: Progress<'_>,
) -> Result<()> {
    let used: BTreeSet<&String> = services
        .iter()
        .filter_map(|s| p.services.get(s))
        .flat_map(|s| s.volumes.iter())
        .filter(|m| m.kind == "volume")
        .filter_map(|m| m.source.as_ref())
        .collect();
    if used.is_empty() {
        return Ok(());
    }
    let vs = berth_volume::VolumeStore::open(store).map_err(vol_err)?;
    for key in used {
        let Some(v) = p.volumes.get(key) else {
            continue;
        };
        let real = volume_name(p, key);
        if vs.find(&real).map_err(vol_err)?.is_some() {
            continue;
        }
        if v.external {
            return Err(RunError::Invalid(format!(
                "external volume \"{real}\" not found: create it with berth volume create {real}"
            )));
        }
        let mut lab = v.labels.clone();
        lab.insert(labels::PROJECT.into(), p.name.clone());
        lab.insert(labels::VOLUME.into(), key.clone());
        lab.insert(labels::VERSION.into(), env!("CARGO_PKG_VERSION").into());
        vs.create(&berth_volume::CreateVolume {
            name: Some(real.clone()),
            driver: v.driver.clone(),
            options: v.driver_opts.clone(),
            labels: lab,
        })
        .map_err(|e| RunError::Invalid(format!("volumes.{key}: {e}")))?;
        progress(&format!("Volume {real}"), "Created");
    }
    Ok(())
}

pub(super) fn vol_err(e: berth_volume::VolumeError) -> RunError {
    RunError::Engine(berth_engine::EngineError::Volume(e))
}
