//! `POST /containers/create`: Docker's `Config` + `HostConfig` + `NetworkingConfig` body
//! (bollard-stubs' `ContainerCreateBody`) → berth's `ContainerConfig`, through the same
//! library parsers the CLI's flags go through (mount, port, restart, security, health, log).

use std::collections::BTreeMap;

use berth_engine::config::{self as ccfg, ContainerConfig};
use berth_engine::health::HealthConfig;
use berth_image::ImageStore;
use berth_net::NetworkMode;
use berth_store::Store;
use bollard_stubs::models::ContainerCreateBody;

use crate::{ApiError, Result};

mod host;
mod network;

/// Docker's default PATH, added when the image has none.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A 400 naming the body field that holds a bad value.
fn bad(field: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::BadParameter(format!("{field}: {e}"))
}

/// A container configuration made from a create body, with Docker's warnings for settings
/// that do less than asked.
pub struct Built {
    /// The image as the client named it.
    pub image_ref: String,
    /// The image's id.
    pub image_id: berth_store::Digest,
    /// The configuration `ops::create` stores.
    pub config: ContainerConfig,
    /// `Warnings` of the create response.
    pub warnings: Vec<String>,
}

/// Turn a create body into the image id and the container configuration, the same one
/// `berth run` builds from the equivalent flags. The image must be in the store (a 404 "No
/// such image" makes the docker CLI pull it and retry).
///
/// Errors: 400 naming the field for bad values; 404 for a missing image or `container:`
/// network peer.
pub fn build_config(store: &Store, body: &ContainerCreateBody) -> Result<Built> {
    let image_ref = body
        .image
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::BadParameter("Config.Image: an image is required".into()))?;
    let images = ImageStore::open(store)?;
    let image = images.resolve(&image_ref)?;
    let ic = &image.config;
    let h = body.host_config.clone().unwrap_or_default();

    // Entrypoint and command, with Docker's merge rules.
    let ep_given = body.entrypoint.clone().filter(|e| !e.is_empty());
    let entrypoint: Vec<String> = match &ep_given {
        Some(e) if e.len() == 1 && e[0].is_empty() => vec![],
        Some(e) => e.clone(),
        None => ic.entrypoint.clone().unwrap_or_default(),
    };
    let cmd: Vec<String> = match body.cmd.clone().filter(|c| !c.is_empty()) {
        Some(c) => c,
        None if ep_given.is_some() => vec![],
        None => ic.cmd.clone().unwrap_or_default(),
    };
    let mut args = entrypoint.clone();
    args.extend(cmd.iter().cloned());
    if args.is_empty() {
        return Err(ApiError::BadParameter(
            "no command specified: the image has no CMD or ENTRYPOINT; give Config.Cmd".into(),
        ));
    }

    let mut env: Vec<String> = ic.env.clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    let env = ccfg::merge_env(&env, &body.env.clone().unwrap_or_default());

    let network = network::network_mode(store, body, &h)?;
    if body.network_disabled == Some(true) {
        return Err(ApiError::BadParameter(
            "Config.NetworkDisabled is not supported: use HostConfig.NetworkMode \"none\"".into(),
        ));
    }

    let publish = host::publish_flags(&h);
    berth_net::validate_publish(&publish)
        .map_err(|e| bad("HostConfig.PortBindings", e.to_string()))?;
    let publish_all = if h.publish_all_ports == Some(true) {
        let mut p: Vec<String> = ic
            .exposed_ports
            .as_ref()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for k in body.exposed_ports.iter().flat_map(|m| m.keys()) {
            if !p.contains(k) {
                p.push(k.clone());
            }
        }
        p
    } else {
        vec![]
    };

    let mut labels: BTreeMap<String, String> = ic.labels.clone().unwrap_or_default();
    for (k, v) in body.labels.clone().unwrap_or_default() {
        labels.insert(k, v);
    }

    let restart = host::restart_policy(&h)?;
    let auto_remove = h.auto_remove == Some(true);
    if auto_remove && !restart.is_none() {
        return Err(ApiError::Conflict(
            "conflicting options: cannot specify both --restart and --rm".into(),
        ));
    }
    if let Some(s) = &body.stop_signal {
        if !s.is_empty() {
            ccfg::parse_signal(s).map_err(|e| bad("Config.StopSignal", e))?;
        }
    }
    let dns = h.dns.clone().unwrap_or_default();
    let dns_search = h.dns_search.clone().unwrap_or_default();
    let dns_options = h.dns_options.clone().unwrap_or_default();
    berth_net::files::validate_dns(&dns, &dns_search, &dns_options)
        .map_err(|e| bad("HostConfig.Dns", e))?;
    let add_hosts = h.extra_hosts.clone().unwrap_or_default();
    for x in &add_hosts {
        berth_net::files::parse_add_host(x).map_err(|e| bad("HostConfig.ExtraHosts", e))?;
    }

    let group_add = h.group_add.clone().unwrap_or_default();
    let security = berth_engine::security::SecurityConfig::from_flags(
        &host::security_flags(&h),
        matches!(network, NetworkMode::Host),
    )
    .map_err(|e| bad("HostConfig", e))?;

    let tmpfs = h
        .tmpfs
        .iter()
        .flatten()
        .map(|(p, o)| {
            let v = if o.is_empty() {
                p.clone()
            } else {
                format!("{p}:{o}")
            };
            ccfg::parse_tmpfs(&v)
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad("HostConfig.Tmpfs", e))?;

    let memory = h.memory.filter(|m| *m != 0);
    let nano_cpus = h.nano_cpus.filter(|n| *n != 0);
    let resources = host::resource_flags(&h)
        .parse(memory, nano_cpus)
        .map_err(|e| bad("HostConfig", e))?;
    berth_engine::resources::check_kernel(&resources, false).map_err(|e| bad("HostConfig", e))?;
    let warnings = resources.warnings(memory);
    let mode_of = |v: &Option<String>| v.clone().filter(|m| !m.is_empty());
    let cgroupns = h
        .cgroupns_mode
        .map(|m| m.to_string())
        .filter(|m| !m.is_empty());
    let namespaces = berth_engine::resources::parse_namespaces(
        mode_of(&h.pid_mode).as_deref(),
        mode_of(&h.ipc_mode).as_deref(),
        mode_of(&h.uts_mode).as_deref(),
        cgroupns.as_deref(),
        &mut |n| berth_engine::state::lookup(store, n).map(|c| c.id),
    )
    .map_err(|e| match e {
        berth_engine::EngineError::NotFound(n) => {
            ApiError::NotFound(format!("No such container: {n}"))
        }
        e => bad("HostConfig.PidMode/IpcMode/UTSMode/CgroupnsMode", e),
    })?;
    if namespaces.uts.is_some() && body.hostname.as_deref().is_some_and(|h| !h.is_empty()) {
        return Err(ApiError::BadParameter(
            "conflicting options: Config.Hostname and HostConfig.UTSMode host cannot be used together".into(),
        ));
    }
    let extra = network::run_extras(store, body, &h, &network)?;

    let log_config = {
        let driver = h.log_config.as_ref().and_then(|l| l.typ.clone());
        let opts: Vec<String> = h
            .log_config
            .as_ref()
            .and_then(|l| l.config.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        berth_engine::logs::LogConfig::resolve(
            store.root(),
            driver.as_deref().filter(|d| !d.is_empty()),
            &opts,
        )
        .map_err(|e| bad("HostConfig.LogConfig", e))?
    };

    let mut cfg = ContainerConfig {
        security,
        args,
        entrypoint,
        cmd,
        env,
        working_dir: body
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .or_else(|| ic.working_dir.clone())
            .unwrap_or_default(),
        user: body
            .user
            .clone()
            .filter(|u| !u.is_empty())
            .or_else(|| ic.user.clone())
            .unwrap_or_default(),
        group_add,
        hostname: body.hostname.clone().unwrap_or_default(),
        domainname: body.domainname.clone().unwrap_or_default(),
        tty: body.tty == Some(true),
        open_stdin: body.open_stdin == Some(true),
        binds: Vec::new(),
        tmpfs,
        read_only: h.readonly_rootfs == Some(true),
        network,
        publish,
        publish_all,
        dns,
        dns_search,
        dns_options,
        add_hosts,
        memory,
        nano_cpus,
        pids_limit: h.pids_limit.filter(|p| *p != 0),
        restart,
        init: h.init == Some(true),
        runtime: h
            .runtime
            .clone()
            .filter(|r| !r.is_empty() && r != "builtin"),
        labels,
        stop_signal: body
            .stop_signal
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| ic.stop_signal.clone())
            .unwrap_or_else(|| "SIGTERM".into()),
        stop_timeout: body.stop_timeout.map_or(10, host::stop_seconds),
        auto_remove,
        volumes: Vec::new(),
        healthcheck: host::health(
            HealthConfig::from_image(ic.healthcheck.as_ref()),
            body.healthcheck.as_ref(),
        ),
        log_config,
        resources,
        namespaces,
        extra,
    };

    let mut volume_flags: Vec<String> = h.binds.clone().unwrap_or_default();
    let mount_flags: Vec<String> = h
        .mounts
        .iter()
        .flatten()
        .map(host::mount_flag)
        .collect::<Result<_>>()?;
    // Anonymous volumes the client declared (`docker run -v /data`).
    let taken: Vec<String> = volume_flags
        .iter()
        .filter_map(|b| b.split(':').nth(1).map(str::to_string))
        .chain(h.mounts.iter().flatten().filter_map(|m| m.target.clone()))
        .collect();
    for path in body.volumes.iter().flat_map(|m| m.keys()) {
        if !taken.contains(path) {
            volume_flags.push(path.clone());
        }
    }
    let image_volumes: Vec<String> = ic
        .volumes
        .as_ref()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    berth_engine::volumes::apply(
        store,
        &mut cfg,
        &berth_engine::volumes::MountFlags {
            volume: &volume_flags,
            mount: &mount_flags,
            volumes_from: &h.volumes_from.clone().unwrap_or_default(),
        },
        &image_volumes,
    )
    .map_err(|e| match e {
        berth_engine::EngineError::NotFound(n) => {
            ApiError::NotFound(format!("No such container: {n}"))
        }
        e => bad("HostConfig.Binds", e),
    })?;
    if let Some(rt) = &cfg.runtime {
        berth_engine::runtime::open(store.root(), Some(rt))
            .map_err(|e| bad("HostConfig.Runtime", e))?;
    }
    Ok(Built {
        image_ref,
        image_id: image.id,
        config: cfg,
        warnings,
    })
}

#[cfg(test)]
mod tests;
