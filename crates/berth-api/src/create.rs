//! `POST /containers/create`: Docker's `Config` + `HostConfig` + `NetworkingConfig` body
//! (bollard-stubs' `ContainerCreateBody`) → berth's `ContainerConfig`, through the same
//! library parsers the CLI's flags go through (mount, port, restart, security, health, log).

use std::collections::BTreeMap;

use berth_engine::config::{self as ccfg, ContainerConfig, RestartPolicy};
use berth_engine::health::HealthConfig;
use berth_engine::resources::ResourceFlags;
use berth_image::ImageStore;
use berth_net::{Attachment, NetworkMode};
use berth_store::Store;
use bollard_stubs::models::{
    ContainerCreateBody, HostConfig, Mount, MountTypeEnum, RestartPolicyNameEnum,
};

use crate::{ApiError, Result};

/// Docker's default PATH, added when the image has none.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn bad(field: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::BadParameter(format!("{field}: {e}"))
}

/// The `--mount` text of one `HostConfig.Mounts` entry.
fn mount_flag(m: &Mount) -> Result<String> {
    let typ = match m.typ {
        Some(MountTypeEnum::BIND) => "bind",
        Some(MountTypeEnum::VOLUME) | None | Some(MountTypeEnum::EMPTY) => "volume",
        Some(MountTypeEnum::TMPFS) => "tmpfs",
        Some(other) => {
            return Err(ApiError::BadParameter(format!(
                "HostConfig.Mounts: mount type {other} is not supported by berth: use bind, volume or tmpfs"
            )))
        }
    };
    let mut parts = vec![format!("type={typ}")];
    if let Some(s) = m.source.as_deref().filter(|s| !s.is_empty()) {
        parts.push(format!("source={s}"));
    }
    let target = m
        .target
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::BadParameter("HostConfig.Mounts: Target is required".into()))?;
    parts.push(format!("target={target}"));
    if m.read_only == Some(true) {
        parts.push("readonly".into());
    }
    if let Some(b) = &m.bind_options {
        if let Some(p) = &b.propagation {
            let p = p.to_string();
            if !p.is_empty() {
                parts.push(format!("bind-propagation={p}"));
            }
        }
    }
    if let Some(v) = &m.volume_options {
        if v.no_copy == Some(true) {
            parts.push("volume-nocopy".into());
        }
    }
    if let Some(t) = &m.tmpfs_options {
        if let Some(sz) = t.size_bytes.filter(|s| *s > 0) {
            parts.push(format!("tmpfs-size={sz}"));
        }
        if let Some(mode) = t.mode.filter(|m| *m > 0) {
            parts.push(format!("tmpfs-mode={mode:o}"));
        }
    }
    Ok(parts.join(","))
}

/// `-p` texts of `HostConfig.PortBindings`.
fn publish_flags(h: &HostConfig) -> Vec<String> {
    let mut out = Vec::new();
    let Some(pb) = &h.port_bindings else {
        return out;
    };
    let mut keys: Vec<&String> = pb.keys().collect();
    keys.sort();
    for port in keys {
        let (cport, proto) = port.split_once('/').unwrap_or((port.as_str(), "tcp"));
        let bindings = pb.get(port).cloned().flatten().unwrap_or_default();
        if bindings.is_empty() {
            out.push(format!("{cport}/{proto}"));
        }
        for b in bindings {
            let ip = b.host_ip.unwrap_or_default();
            let hp = b.host_port.unwrap_or_default();
            out.push(match (ip.is_empty(), hp.is_empty()) {
                (true, true) => format!("{cport}/{proto}"),
                (true, false) => format!("{hp}:{cport}/{proto}"),
                (false, true) => format!("{ip}::{cport}/{proto}"),
                (false, false) => format!("{ip}:{hp}:{cport}/{proto}"),
            });
        }
    }
    out
}

/// A stop timeout in seconds as the API gives it: negative is no limit.
fn stop_seconds(t: i64) -> u32 {
    u32::try_from(t).unwrap_or(if t < 0 { u32::MAX } else { u32::MAX - 1 })
}

/// Merge the body's health check over the image's, as Docker does (empty `Test` inherits the
/// image's test; zero durations inherit; `["NONE"]` disables).
fn health(
    image: Option<HealthConfig>,
    body: Option<&bollard_stubs::models::HealthConfig>,
) -> Option<HealthConfig> {
    let Some(b) = body else {
        return image.filter(|h| h.test.first().map(String::as_str) != Some("NONE"));
    };
    let mut h = image.unwrap_or_default();
    if let Some(t) = b.test.clone().filter(|t| !t.is_empty()) {
        h.test = t;
    }
    let pick = |v: Option<i64>, cur: i64| v.filter(|x| *x != 0).unwrap_or(cur);
    h.interval = pick(b.interval, h.interval);
    h.timeout = pick(b.timeout, h.timeout);
    h.start_period = pick(b.start_period, h.start_period);
    h.start_interval = pick(b.start_interval, h.start_interval);
    h.retries = pick(b.retries, h.retries);
    if h.test.is_empty() || h.test[0] == "NONE" {
        return None;
    }
    Some(h)
}

/// `HostConfig`'s cgroup settings as the flags `berth run` parses (Docker's API units: bytes,
/// microseconds, shares; zero is "not set").
fn resource_flags(h: &HostConfig) -> ResourceFlags {
    let nz = |v: Option<i64>| v.filter(|v| *v != 0);
    let devs = |v: &Option<Vec<bollard_stubs::models::ThrottleDevice>>| -> Vec<String> {
        v.iter()
            .flatten()
            .map(|d| {
                format!(
                    "{}:{}",
                    d.path.clone().unwrap_or_default(),
                    d.rate.unwrap_or(0)
                )
            })
            .collect()
    };
    ResourceFlags {
        cpu_shares: nz(h.cpu_shares),
        cpuset_cpus: h.cpuset_cpus.clone().filter(|s| !s.is_empty()),
        cpuset_mems: h.cpuset_mems.clone().filter(|s| !s.is_empty()),
        cpu_period: nz(h.cpu_period),
        cpu_quota: nz(h.cpu_quota),
        memory_swap: nz(h.memory_swap).map(|v| v.to_string()),
        memory_reservation: nz(h.memory_reservation).map(|v| v.to_string()),
        // The docker CLI sends -1 (or nothing) when --memory-swappiness is not given.
        memory_swappiness: h.memory_swappiness.filter(|v| *v != -1),
        oom_kill_disable: h.oom_kill_disable == Some(true),
        oom_score_adj: nz(h.oom_score_adj),
        blkio_weight: h.blkio_weight.filter(|w| *w != 0).map(i64::from),
        blkio_weight_device: h
            .blkio_weight_device
            .iter()
            .flatten()
            .map(|d| {
                format!(
                    "{}:{}",
                    d.path.clone().unwrap_or_default(),
                    d.weight.unwrap_or(0)
                )
            })
            .collect(),
        device_read_bps: devs(&h.blkio_device_read_bps),
        device_write_bps: devs(&h.blkio_device_write_bps),
        device_read_iops: devs(&h.blkio_device_read_iops),
        device_write_iops: devs(&h.blkio_device_write_iops),
        kernel_memory: None,
    }
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

    // Networks.
    let mode = h.network_mode.clone().unwrap_or_default();
    let endpoints = body
        .networking_config
        .as_ref()
        .and_then(|n| n.endpoints_config.clone())
        .unwrap_or_default();
    let aliases_of = |net: &str| -> Vec<String> {
        endpoints
            .get(net)
            .and_then(|e| e.aliases.clone())
            .unwrap_or_default()
    };
    let network = match mode.as_str() {
        "" | "default" | "bridge" => {
            // compose names its networks in EndpointsConfig with NetworkMode = that network.
            let user: Vec<&String> = endpoints
                .keys()
                .filter(|k| !matches!(k.as_str(), "bridge" | "default"))
                .collect();
            if user.is_empty() {
                NetworkMode::Networks(vec![Attachment {
                    network: "bridge".into(),
                    aliases: vec![],
                }])
            } else {
                NetworkMode::Networks(
                    user.iter()
                        .map(|n| Attachment {
                            network: n.to_string(),
                            aliases: aliases_of(n),
                        })
                        .collect(),
                )
            }
        }
        "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        m if m.starts_with("container:") => {
            let other = berth_engine::state::lookup(store, &m["container:".len()..])?;
            NetworkMode::Container(other.id)
        }
        m => {
            let mut nets = vec![Attachment {
                network: m.to_string(),
                aliases: aliases_of(m),
            }];
            for (n, e) in &endpoints {
                if n != m {
                    nets.push(Attachment {
                        network: n.clone(),
                        aliases: e.aliases.clone().unwrap_or_default(),
                    });
                }
            }
            NetworkMode::Networks(nets)
        }
    };
    if body.network_disabled == Some(true) {
        return Err(ApiError::BadParameter(
            "Config.NetworkDisabled is not supported: use HostConfig.NetworkMode \"none\"".into(),
        ));
    }

    let publish = publish_flags(&h);
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

    let restart = match &h.restart_policy {
        Some(rp) => match rp.name {
            None | Some(RestartPolicyNameEnum::EMPTY) | Some(RestartPolicyNameEnum::NO) => {
                RestartPolicy {
                    name: "no".into(),
                    max_retries: 0,
                }
            }
            Some(n) => {
                let text = match (n, rp.maximum_retry_count.filter(|c| *c > 0)) {
                    (RestartPolicyNameEnum::ON_FAILURE, Some(c)) => format!("on-failure:{c}"),
                    (n, _) => n.to_string(),
                };
                RestartPolicy::parse(&text).map_err(|e| bad("HostConfig.RestartPolicy", e))?
            }
        },
        None => RestartPolicy {
            name: "no".into(),
            max_retries: 0,
        },
    };
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
    berth_net::files::DnsOverrides {
        servers: dns.clone(),
        search: dns_search.clone(),
        options: dns_options.clone(),
    }
    .validate()
    .map_err(|e| bad("HostConfig.Dns", e))?;
    let add_hosts = h.extra_hosts.clone().unwrap_or_default();
    for x in &add_hosts {
        berth_net::files::parse_add_host(x).map_err(|e| bad("HostConfig.ExtraHosts", e))?;
    }

    let group_add = h.group_add.clone().unwrap_or_default();
    let security = berth_engine::security::SecurityConfig::from_flags(
        &berth_engine::security::SecurityFlags {
            privileged: h.privileged == Some(true),
            cap_add: h.cap_add.clone().unwrap_or_default(),
            cap_drop: h.cap_drop.clone().unwrap_or_default(),
            security_opt: h.security_opt.clone().unwrap_or_default(),
            device: h
                .devices
                .iter()
                .flatten()
                .map(|d| {
                    let host = d.path_on_host.clone().unwrap_or_default();
                    let ctr = d.path_in_container.clone().unwrap_or_else(|| host.clone());
                    let perms = d
                        .cgroup_permissions
                        .clone()
                        .filter(|p| !p.is_empty())
                        .unwrap_or_else(|| "rwm".into());
                    format!("{host}:{ctr}:{perms}")
                })
                .collect(),
            device_cgroup_rule: h.device_cgroup_rules.clone().unwrap_or_default(),
            group_add: group_add.clone(),
            ulimit: h
                .ulimits
                .iter()
                .flatten()
                .map(|u| {
                    format!(
                        "{}={}:{}",
                        u.name.clone().unwrap_or_default(),
                        u.soft.unwrap_or(0),
                        u.hard.unwrap_or(0)
                    )
                })
                .collect(),
            sysctl: h
                .sysctls
                .iter()
                .flatten()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            shm_size: h.shm_size.filter(|s| *s > 0).map(|s| s.to_string()),
        },
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
    let resources = resource_flags(&h)
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
    let extra = run_extras(store, body, &h, &network)?;

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
        stop_timeout: body.stop_timeout.map_or(10, stop_seconds),
        auto_remove,
        volumes: Vec::new(),
        healthcheck: health(
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
        .map(mount_flag)
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

/// `Config.ExposedPorts` (less the image's and the published ones, which `berth run` does
/// not record either), `HostConfig.Links`, the endpoint's requested address and MAC,
/// `HostConfig.ContainerIDFile`: what `--expose`, `--link`, `--ip`, `--mac-address` and
/// `--cidfile` give the CLI's configuration.
fn run_extras(
    store: &Store,
    body: &ContainerCreateBody,
    h: &HostConfig,
    network: &NetworkMode,
) -> Result<ccfg::RunExtras> {
    let image_ports: Vec<String> = body
        .image
        .as_deref()
        .and_then(|i| ImageStore::open(store).ok()?.resolve(i).ok())
        .and_then(|i| i.config.exposed_ports.clone())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let published: Vec<&String> = h.port_bindings.iter().flat_map(|m| m.keys()).collect();
    let mut expose: Vec<String> = Vec::new();
    for p in body.exposed_ports.iter().flat_map(|m| m.keys()) {
        let p = if p.contains('/') {
            p.clone()
        } else {
            format!("{p}/tcp")
        };
        if !image_ports.contains(&p) && !published.contains(&&p) && !expose.contains(&p) {
            expose.push(p);
        }
    }
    let mut links = Vec::new();
    for l in h.links.iter().flatten() {
        if !matches!(network, NetworkMode::Networks(_)) {
            return Err(ApiError::BadParameter(
                "HostConfig.Links: links need a bridge or user-defined network (not host, none or container:)".into(),
            ));
        }
        let l = l.trim_start_matches('/');
        let (name, alias) = l.split_once(':').unwrap_or((l, l));
        let alias = alias.rsplit('/').next().unwrap_or(alias);
        let other = berth_engine::state::lookup(store, name).map_err(|e| {
            bad(
                "HostConfig.Links",
                format!("could not get container for {name}: {e}"),
            )
        })?;
        links.push(format!("{}:{alias}", other.name));
    }
    let endpoints = body
        .networking_config
        .as_ref()
        .and_then(|n| n.endpoints_config.as_ref());
    let first_net = match network {
        NetworkMode::Networks(n) => n.first().map(|a| a.network.clone()),
        _ => None,
    };
    let endpoint = first_net
        .as_ref()
        .and_then(|n| endpoints.and_then(|e| e.get(n)));
    let ipv4 = endpoint
        .and_then(|e| e.ipam_config.as_ref())
        .and_then(|i| i.ipv4_address.clone())
        .unwrap_or_default();
    let ipv6 = endpoint
        .and_then(|e| e.ipam_config.as_ref())
        .and_then(|i| i.ipv6_address.clone())
        .unwrap_or_default();
    #[allow(deprecated)]
    let mac = endpoint
        .and_then(|e| e.mac_address.clone())
        .filter(|m| !m.is_empty())
        .or_else(|| body.mac_address.clone())
        .unwrap_or_default();
    if !ipv4.is_empty() {
        ipv4.parse::<std::net::Ipv4Addr>().map_err(|_| {
            bad(
                "EndpointsConfig.IPAMConfig.IPv4Address",
                format!("{ipv4:?} is not an IPv4 address"),
            )
        })?;
        if first_net.as_deref().is_none_or(|n| n == "bridge") {
            return Err(ApiError::BadParameter(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
    }
    if !ipv6.is_empty() {
        return Err(ApiError::BadParameter(format!(
            "EndpointsConfig.IPAMConfig.IPv6Address {ipv6:?}: berth's networks are IPv4 only"
        )));
    }
    if !mac.is_empty() {
        berth_net::ipam::check_mac(&mac).map_err(|e| bad("MacAddress", e))?;
        if first_net.is_none() {
            return Err(ApiError::BadParameter(
                "conflicting options: MacAddress needs a network the container has its own interface on (not host, none or container:)".into(),
            ));
        }
    }
    Ok(ccfg::RunExtras {
        expose,
        links,
        ipv4_address: ipv4,
        ipv6_address: ipv6,
        mac_address: mac,
        cidfile: h.container_id_file.clone().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_bindings_become_publish_flags() {
        let h: HostConfig = serde_json::from_str(
            r#"{"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}],
                 "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}], "9000/tcp": null}}"#,
        )
        .unwrap();
        assert_eq!(
            publish_flags(&h),
            vec!["127.0.0.1::53/udp", "8080:80/tcp", "9000/tcp"]
        );
    }

    #[test]
    fn mounts_become_mount_flags() {
        let m: Mount = serde_json::from_str(
            r#"{"Type": "bind", "Source": "/srv", "Target": "/data", "ReadOnly": true}"#,
        )
        .unwrap();
        assert_eq!(
            mount_flag(&m).unwrap(),
            "type=bind,source=/srv,target=/data,readonly"
        );
        let m: Mount = serde_json::from_str(r#"{"Type": "npipe", "Target": "/x"}"#).unwrap();
        assert!(mount_flag(&m).is_err());
    }

    #[test]
    fn health_merges_over_the_image() {
        let image = HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            interval: 5,
            ..Default::default()
        };
        let body: bollard_stubs::models::HealthConfig =
            serde_json::from_str(r#"{"Interval": 7, "Timeout": 0}"#).unwrap();
        let h = health(Some(image.clone()), Some(&body)).unwrap();
        assert_eq!(h.test, image.test);
        assert_eq!(h.interval, 7);
        let none: bollard_stubs::models::HealthConfig =
            serde_json::from_str(r#"{"Test": ["NONE"]}"#).unwrap();
        assert!(health(Some(image), Some(&none)).is_none());
    }
}
