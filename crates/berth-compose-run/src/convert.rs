//! One service of a project → the engine's container configuration, with compose's labels;
//! and the configuration hash that decides whether `up` recreates a container.

use std::collections::BTreeMap;

use berth_compose::model::Mount;
use berth_compose::{Project, Service};
use berth_engine::config::{self as ccfg, Bind, ContainerConfig, RestartPolicy};
use berth_image::ImageConfig;
use berth_net::{Attachment, NetworkMode};
use sha2::{Digest as _, Sha256};

use crate::{labels, Result, RunError};

/// The image reference a service runs: `image:`, else `PROJECT-SERVICE` (what a build tags).
pub fn image_ref(p: &Project, name: &str, s: &Service) -> String {
    s.image
        .clone()
        .unwrap_or_else(|| format!("{}-{}", p.name, name))
}

/// Name of container number `n` of a service (`container_name:` or `PROJECT-SERVICE-N`).
pub fn container_name(p: &Project, name: &str, s: &Service, n: u64) -> String {
    match &s.container_name {
        Some(c) => c.clone(),
        None => format!("{}-{}-{}", p.name, name, n),
    }
}

/// Hash of what a container of this service is made from (the service's normalised model,
/// without the replica count: scaling does not recreate). Hex SHA-256.
pub fn config_hash(s: &Service) -> String {
    let mut s = s.clone();
    s.scale = None;
    if let Some(d) = &mut s.deploy {
        d.replicas = None;
    }
    let json = serde_json::to_vec(&s).unwrap_or_default();
    hex::encode(Sha256::digest(&json))
}

/// Keys berth cannot apply yet: `(key, why)`. `up`/`create`/`run` refuse such a service before
/// anything is created, naming every key.
pub fn unsupported(p: &Project, name: &str, s: &Service) -> Vec<String> {
    let mut out = Vec::new();
    let mut no = |k: &str, why: &str| out.push(format!("services.{name}.{k}: {why}"));
    let later = "not supported by berth yet";
    if !s.cap_add.is_empty() {
        no("cap_add", later);
    }
    if !s.cap_drop.is_empty() {
        no("cap_drop", later);
    }
    if s.privileged {
        no("privileged", later);
    }
    if !s.devices.is_empty() {
        no("devices", later);
    }
    if !s.ulimits.is_empty() {
        no("ulimits", later);
    }
    if !s.sysctls.is_empty() {
        no("sysctls", later);
    }
    if s.shm_size.is_some() {
        no("shm_size", later);
    }
    if s.healthcheck
        .as_ref()
        .is_some_and(|h| !h.disable && !h.test.is_empty() && h.test[0] != "NONE")
    {
        no(
            "healthcheck",
            "health checks are not supported by berth yet",
        );
    }
    for (dep, d) in &s.depends_on {
        if d.condition == "service_healthy" {
            no(
                &format!("depends_on.{dep}"),
                "condition service_healthy needs health checks, which berth does not support yet",
            );
        }
    }
    for (i, m) in s.volumes.iter().enumerate() {
        match m.kind.as_str() {
            "bind" | "tmpfs" => {}
            "volume" => no(&format!("volumes[{i}]"), "named and anonymous volumes are not supported by berth yet; use a bind mount (./dir:/path)"),
            other => no(&format!("volumes[{i}]"), &format!("mount type {other} is not supported")),
        }
    }
    if let Some(l) = &s.logging {
        if l.driver
            .as_deref()
            .is_some_and(|d| d != "json-file" && d != "local")
        {
            no(
                "logging.driver",
                "only the json-file log driver is supported",
            );
        }
    }
    if let Some(pf) = &s.platform {
        let host = format!("linux/{}", host_arch());
        if pf != &host && !pf.starts_with(&format!("{host}/")) {
            no(
                "platform",
                &format!("only the host's platform ({host}) is supported"),
            );
        }
    }
    for net in s.networks.keys() {
        if p.networks
            .get(net)
            .and_then(|n| n.driver.as_deref())
            .is_some_and(|d| d != "bridge")
        {
            no(
                &format!("networks.{net}"),
                "only bridge networks are supported",
            );
        }
    }
    for c in &s.configs {
        if p.configs
            .get(&c.source)
            .is_some_and(|f| f.file.is_none() && f.content.is_none())
        {
            no(
                &format!("configs.{}", c.source),
                "only file-based and inline configs are supported",
            );
        }
    }
    for c in &s.secrets {
        if p.secrets.get(&c.source).is_some_and(|f| f.file.is_none()) {
            no(
                &format!("secrets.{}", c.source),
                "only file-based secrets are supported",
            );
        }
    }
    out
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}

/// What one container of a service needs besides the project: its number, whether it is a
/// one-off (`run`), and overrides from `run`.
#[derive(Debug, Clone, Default)]
pub struct Instance {
    /// Replica number (1-based); one-offs use 1.
    pub number: u64,
    /// A `compose run` container.
    pub oneoff: bool,
    /// Command override (`run SERVICE CMD…`).
    pub command: Option<Vec<String>>,
    /// Extra environment `KEY=VALUE` (`run -e`).
    pub env: Vec<String>,
    /// Publish the service's ports (`up`, or `run --service-ports`).
    pub publish: bool,
    /// `run --rm`.
    pub auto_remove: bool,
    /// Allocate a tty (`run` with a terminal).
    pub tty: Option<bool>,
    /// Keep stdin open.
    pub stdin_open: Option<bool>,
}

/// Build the container configuration of one container of service `name`, given the image's
/// configuration. Host directories of bind mounts that do not exist are created (as Docker
/// compose does for the short syntax).
///
/// Errors: [`RunError::Invalid`] for values the engine refuses; [`RunError::Io`] when a bind
/// source cannot be created.
pub fn container_config(
    p: &Project,
    name: &str,
    s: &Service,
    image: &ImageConfig,
    image_id: &str,
    inst: &Instance,
) -> Result<ContainerConfig> {
    let bad = |e: berth_engine::EngineError| RunError::Invalid(format!("services.{name}: {e}"));
    let entrypoint: Vec<String> = match &s.entrypoint {
        Some(e) => e.clone(),
        None => image.entrypoint.clone().unwrap_or_default(),
    };
    let cmd: Vec<String> = match (&inst.command, &s.command) {
        (Some(c), _) => c.clone(),
        (None, Some(c)) => c.clone(),
        (None, None) if s.entrypoint.is_some() => vec![],
        (None, None) => image.cmd.clone().unwrap_or_default(),
    };
    let mut args = entrypoint.clone();
    args.extend(cmd.iter().cloned());
    if args.is_empty() {
        return Err(RunError::Invalid(format!(
            "services.{name}: no command: the image has no CMD or ENTRYPOINT; set command:"
        )));
    }
    let mut env: Vec<String> = image.env.clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    let mut user_env: Vec<String> = s
        .environment
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
    user_env.extend(inst.env.iter().cloned());
    let env = ccfg::merge_env(&env, &user_env);

    let mut binds = Vec::new();
    let mut tmpfs = Vec::new();
    for m in &s.volumes {
        mount(m, &mut binds, &mut tmpfs, name)?;
    }
    for t in &s.tmpfs {
        tmpfs.push(ccfg::parse_tmpfs(t).map_err(bad)?);
    }
    for (kind, refs, table) in [
        ("secrets", &s.secrets, &p.secrets),
        ("configs", &s.configs, &p.configs),
    ] {
        for r in refs {
            let Some(obj) = table.get(&r.source) else {
                continue;
            };
            let Some(file) = &obj.file else { continue };
            let target = match &r.target {
                Some(t) if t.starts_with('/') => t.clone(),
                Some(t) if kind == "secrets" => format!("/run/secrets/{t}"),
                Some(t) => format!("/{t}"),
                None if kind == "secrets" => format!("/run/secrets/{}", r.source),
                None => format!("/{}", r.source),
            };
            if !std::path::Path::new(file).exists() {
                return Err(RunError::Invalid(format!(
                    "services.{name}.{kind}.{}: file {file} does not exist",
                    r.source
                )));
            }
            binds.push(Bind {
                source: file.clone(),
                destination: target,
                read_only: true,
                propagation: None,
            });
        }
    }

    let network = match s.network_mode.as_deref() {
        Some("host") => NetworkMode::Host,
        Some("none") => NetworkMode::None,
        Some(m) if m.starts_with("service:") || m.starts_with("container:") => {
            // Resolved by the caller to a container id (see project::resolve_network_mode).
            NetworkMode::Container(m.to_string())
        }
        Some("bridge") | Some("default") => NetworkMode::Networks(vec![Attachment {
            network: "bridge".into(),
            aliases: vec![],
        }]),
        Some(other) => {
            return Err(RunError::Invalid(format!(
                "services.{name}.network_mode: {other:?} is not supported: use host, none, bridge, service:NAME or container:NAME"
            )))
        }
        None => {
            let mut atts = Vec::new();
            for (net, opts) in &s.networks {
                let real = p
                    .networks
                    .get(net)
                    .and_then(|n| n.name.clone())
                    .unwrap_or_else(|| format!("{}_{net}", p.name));
                let mut aliases = vec![name.to_string()];
                if let Some(o) = opts {
                    aliases.extend(o.aliases.iter().cloned());
                }
                atts.push(Attachment {
                    network: real,
                    aliases,
                });
            }
            NetworkMode::Networks(atts)
        }
    };
    let publish = if inst.publish {
        s.ports
            .iter()
            .map(|pt| {
                let ip = pt
                    .host_ip
                    .as_deref()
                    .map(|i| format!("{i}:"))
                    .unwrap_or_default();
                match &pt.published {
                    Some(h) => format!("{ip}{h}:{}/{}", pt.target, pt.protocol),
                    None if ip.is_empty() => format!("{}/{}", pt.target, pt.protocol),
                    None => format!("{ip}:{}/{}", pt.target, pt.protocol),
                }
            })
            .collect()
    } else {
        vec![]
    };
    let limits = s
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.limits.as_ref());
    let memory = limits
        .and_then(|l| l.memory)
        .map(|m| {
            i64::try_from(m)
                .map_err(|_| RunError::Invalid(format!("services.{name}: memory limit too large")))
        })
        .transpose()?;
    let nano_cpus = limits
        .and_then(|l| l.cpus)
        .map(|c| ccfg::parse_cpus(&c.to_string()).map_err(bad))
        .transpose()?;
    let pids_limit = limits
        .and_then(|l| l.pids)
        .and_then(|n| i64::try_from(n).ok());
    let restart = match (
        &s.restart,
        s.deploy.as_ref().and_then(|d| d.restart_policy.as_ref()),
    ) {
        (Some(r), _) => RestartPolicy::parse(r).map_err(bad)?,
        (None, Some(rp)) => match rp.condition.as_deref() {
            Some("none") => RestartPolicy::parse("no").map_err(bad)?,
            Some("on-failure") => RestartPolicy::parse(&match rp.max_attempts {
                Some(n) => format!("on-failure:{n}"),
                None => "on-failure".into(),
            })
            .map_err(bad)?,
            _ => RestartPolicy::parse("always").map_err(bad)?,
        },
        (None, None) => RestartPolicy::parse("no").map_err(bad)?,
    };
    if let Some(sig) = &s.stop_signal {
        ccfg::parse_signal(sig).map_err(bad)?;
    }
    let stop_timeout = match s.stop_grace_period {
        Some(ns) => u32::try_from(ns.div_ceil(1_000_000_000)).unwrap_or(u32::MAX),
        None => 10,
    };

    let mut lab: BTreeMap<String, String> = image.labels.clone().unwrap_or_default();
    lab.extend(s.labels.clone());
    lab.insert(labels::PROJECT.into(), p.name.clone());
    lab.insert(labels::SERVICE.into(), name.to_string());
    lab.insert(labels::NUMBER.into(), inst.number.to_string());
    lab.insert(
        labels::ONEOFF.into(),
        if inst.oneoff { "True" } else { "False" }.into(),
    );
    lab.insert(labels::CONFIG_HASH.into(), config_hash(s));
    lab.insert(
        labels::WORKING_DIR.into(),
        p.working_dir.display().to_string(),
    );
    lab.insert(
        labels::CONFIG_FILES.into(),
        p.config_files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(","),
    );
    lab.insert(
        labels::DEPENDS_ON.into(),
        s.depends_on
            .iter()
            .map(|(k, d)| format!("{k}:{}:{}", d.condition, d.restart))
            .collect::<Vec<_>>()
            .join(","),
    );
    lab.insert(labels::IMAGE.into(), image_id.to_string());
    lab.insert(labels::VERSION.into(), env!("CARGO_PKG_VERSION").into());

    let security = berth_engine::security::SecurityConfig::from_flags(
        &berth_engine::security::SecurityFlags {
            privileged: s.privileged,
            cap_add: s.cap_add.clone(),
            cap_drop: s.cap_drop.clone(),
            device: s
                .devices
                .iter()
                .map(|d| {
                    let perm = if d.permissions.is_empty() {
                        "rwm"
                    } else {
                        &d.permissions
                    };
                    let target = if d.target.is_empty() {
                        &d.source
                    } else {
                        &d.target
                    };
                    format!("{}:{target}:{perm}", d.source)
                })
                .collect(),
            ulimit: s
                .ulimits
                .iter()
                .map(|(k, u)| format!("{k}={}:{}", u.soft, u.hard))
                .collect(),
            sysctl: s.sysctls.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            shm_size: s.shm_size.map(|n| n.to_string()),
            ..Default::default()
        },
        matches!(network, NetworkMode::Host),
    )
    .map_err(bad)?;
    Ok(ContainerConfig {
        security,
        args,
        entrypoint,
        cmd,
        env,
        working_dir: s
            .working_dir
            .clone()
            .or_else(|| image.working_dir.clone())
            .unwrap_or_default(),
        user: s
            .user
            .clone()
            .or_else(|| image.user.clone())
            .unwrap_or_default(),
        hostname: s.hostname.clone().unwrap_or_default(),
        domainname: s.domainname.clone().unwrap_or_default(),
        tty: inst.tty.unwrap_or(s.tty),
        open_stdin: inst.stdin_open.unwrap_or(s.stdin_open),
        binds,
        tmpfs,
        read_only: s.read_only,
        network,
        publish,
        publish_all: vec![],
        dns: s.dns.clone(),
        dns_search: s.dns_search.clone(),
        dns_options: s.dns_opt.clone(),
        group_add: s.group_add.clone(),
        add_hosts: s
            .extra_hosts
            .iter()
            .map(|h| h.replacen('=', ":", 1))
            .collect(),
        memory,
        nano_cpus,
        pids_limit,
        restart,
        init: s.init.unwrap_or(false),
        runtime: None,
        labels: lab,
        stop_signal: s
            .stop_signal
            .clone()
            .or_else(|| image.stop_signal.clone())
            .unwrap_or_else(|| "SIGTERM".into()),
        stop_timeout,
        auto_remove: inst.auto_remove,
        volumes: Vec::new(),
        healthcheck: None,
        log_config: Default::default(),
    })
}

fn mount(m: &Mount, binds: &mut Vec<Bind>, tmpfs: &mut Vec<ccfg::Tmpfs>, name: &str) -> Result<()> {
    match m.kind.as_str() {
        "bind" => {
            let src = m.source.clone().unwrap_or_default();
            let create = m.bind.as_ref().is_some_and(|b| b.create_host_path);
            let path = std::path::Path::new(&src);
            if !path.exists() {
                if create {
                    std::fs::create_dir_all(path).map_err(|e| RunError::Io {
                        path: path.to_path_buf(),
                        source: e,
                    })?;
                } else {
                    return Err(RunError::Invalid(format!(
                        "services.{name}.volumes: bind source {src} does not exist"
                    )));
                }
            }
            binds.push(Bind {
                source: src,
                destination: m.target.clone(),
                read_only: m.read_only,
                propagation: None,
            });
        }
        "tmpfs" => {
            let mut options = Vec::new();
            if let Some(t) = &m.tmpfs {
                if let Some(sz) = t.size {
                    options.push(format!("size={sz}"));
                }
                if let Some(mode) = t.mode {
                    options.push(format!("mode={mode}"));
                }
            }
            tmpfs.push(ccfg::Tmpfs {
                destination: m.target.clone(),
                options,
            });
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(yaml: &str) -> Project {
        let d = std::env::temp_dir().join(format!(
            "berth-compose-run-unit-{}-{}",
            std::process::id(),
            yaml.len()
        ));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("compose.yaml"), yaml).unwrap();
        let p = berth_compose::load(&berth_compose::Options {
            cwd: d.clone(),
            project_name: Some("t".into()),
            ..Default::default()
        })
        .unwrap();
        let _ = std::fs::remove_dir_all(&d);
        p
    }

    #[test]
    fn hash_ignores_replicas_but_not_environment() {
        let a = project("services:\n  w:\n    image: x\n    environment: {A: '1'}\n");
        let b = project(
            "services:\n  w:\n    image: x\n    environment: {A: '1'}\n    deploy: {replicas: 3}\n",
        );
        let c = project("services:\n  w:\n    image: x\n    environment: {A: '2'}\n");
        let h = |p: &Project| {
            let mut s = p.services["w"].clone();
            s.deploy = None;
            config_hash(&s)
        };
        assert_eq!(config_hash(&a.services["w"]).len(), 64);
        assert_eq!(h(&a), h(&b));
        assert_ne!(config_hash(&a.services["w"]), config_hash(&c.services["w"]));
    }

    #[test]
    fn unsupported_keys_are_all_named() {
        let p = project("services:\n  w:\n    image: x\n    cap_add: [NET_ADMIN]\n    volumes: [data:/d]\nvolumes:\n  data:\n");
        let u = unsupported(&p, "w", &p.services["w"]);
        assert_eq!(u.len(), 2, "{u:?}");
        assert!(u[0].starts_with("services.w.cap_add"), "{u:?}");
        assert!(u[1].starts_with("services.w.volumes[0]"), "{u:?}");
    }

    #[test]
    fn command_entrypoint_and_labels() {
        let p = project("services:\n  w:\n    image: x\n    entrypoint: [/bin/sh, -c]\n    environment: {A: '1', UNSET: null}\n    ports: ['127.0.0.1:8080:80', '53/udp']\n    extra_hosts: ['h:1.2.3.4']\n");
        let img = ImageConfig {
            cmd: Some(vec!["image-cmd".into()]),
            entrypoint: Some(vec!["image-ep".into()]),
            ..Default::default()
        };
        let inst = Instance {
            number: 2,
            publish: true,
            ..Default::default()
        };
        let c = container_config(&p, "w", &p.services["w"], &img, "sha256:x", &inst).unwrap();
        // An entrypoint set in the service resets the image's CMD (as Docker).
        assert_eq!(c.args, vec!["/bin/sh", "-c"]);
        assert!(c.env.contains(&"A=1".to_string()));
        assert!(!c.env.iter().any(|e| e.starts_with("UNSET")));
        assert_eq!(c.publish, vec!["127.0.0.1:8080:80/tcp", "53/udp"]);
        assert_eq!(c.add_hosts, vec!["h:1.2.3.4"]);
        assert_eq!(c.labels[labels::NUMBER], "2");
        assert_eq!(c.labels[labels::PROJECT], "t");
        assert_eq!(c.labels[labels::ONEOFF], "False");
        match &c.network {
            NetworkMode::Networks(a) => {
                assert_eq!(a[0].network, "t_default");
                assert_eq!(a[0].aliases, vec!["w"]);
            }
            other => panic!("{other:?}"),
        }
    }
}
