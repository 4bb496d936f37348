//! One service of a project → the engine's container configuration, with compose's labels;
//! and the configuration hash that decides whether `up` recreates a container.

use std::collections::BTreeMap;
use std::path::Path;

use berth_compose::model::Mount;
use berth_compose::{Project, Service};
use berth_engine::config::{self as ccfg, Bind, ContainerConfig, RestartPolicy};
use berth_engine::volumes::VolumeMount;
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

/// The compose file(s) a project came from, for error messages (`compose.yaml`, or
/// `a.yaml+b.yaml`).
pub fn files_label(p: &Project) -> String {
    if p.config_files.is_empty() {
        return "compose.yaml".into();
    }
    p.config_files
        .iter()
        .map(|f| {
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| f.display().to_string())
        })
        .collect::<Vec<_>>()
        .join("+")
}

/// Keys berth cannot apply (yet), and values the engine refuses: one message per key,
/// `FILE: services.NAME.KEY: why`. `up`/`create`/`run` refuse such a service before anything
/// is created, naming every key. `root` is the store root (the daemon-wide log defaults).
pub fn unsupported(root: &Path, p: &Project, name: &str, s: &Service) -> Vec<String> {
    let file = files_label(p);
    let mut out = Vec::new();
    let mut no = |k: &str, why: &str| out.push(format!("{file}: services.{name}.{k}: {why}"));
    for (i, m) in s.volumes.iter().enumerate() {
        match m.kind.as_str() {
            "bind" | "tmpfs" => {}
            "volume" => {
                if m.volume.as_ref().is_some_and(|v| v.subpath.is_some()) {
                    no(
                        &format!("volumes[{i}].volume.subpath"),
                        "volume subpaths are not supported by berth yet; mount the whole volume",
                    );
                }
                if let Some(v) = m.source.as_ref().and_then(|src| p.volumes.get(src)) {
                    if v.driver.as_deref().is_some_and(|d| d != "local") {
                        no(
                            &format!("volumes[{i}]"),
                            &format!(
                                "volume driver {:?} is not available: only local is supported",
                                v.driver.as_deref().unwrap_or_default()
                            ),
                        );
                    }
                }
            }
            other => no(
                &format!("volumes[{i}]"),
                &format!("mount type {other} is not supported: use bind, volume or tmpfs"),
            ),
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
    // Values the engine checks: the same conversions `up` makes, without an image (a
    // healthcheck without test stands for the image's).
    let host_net = s.network_mode.as_deref() == Some("host");
    if let Err(e) = security(s, host_net) {
        no("security", &e.to_string());
    }
    let stand_in = berth_engine::health::HealthConfig {
        test: vec!["CMD".into(), "true".into()],
        ..Default::default()
    };
    if let Err(e) = healthcheck(name, s, Some(stand_in)) {
        out.push(format!("{file}: {e}"));
    }
    if let Err(e) = log_config(root, name, s) {
        out.push(format!("{file}: {e}"));
    }
    if let Some(sig) = &s.stop_signal {
        if let Err(e) = ccfg::parse_signal(sig) {
            out.push(format!("{file}: services.{name}.stop_signal: {e}"));
        }
    }
    out
}

/// The engine's confinement settings of a service (`privileged`, `cap_add`, `cap_drop`,
/// `security_opt`, `devices`, `group_add`, `ulimits`, `sysctls`, `shm_size`).
///
/// Errors: the engine's message for the first bad value.
pub fn security(
    s: &Service,
    host_network: bool,
) -> std::result::Result<berth_engine::security::SecurityConfig, berth_engine::EngineError> {
    berth_engine::security::SecurityConfig::from_flags(
        &berth_engine::security::SecurityFlags {
            privileged: s.privileged,
            cap_add: s.cap_add.clone(),
            cap_drop: s.cap_drop.clone(),
            security_opt: s.security_opt.clone(),
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
            device_cgroup_rule: Vec::new(),
            group_add: s.group_add.clone(),
            ulimit: s
                .ulimits
                .iter()
                .map(|(k, u)| {
                    if u.single {
                        format!("{k}={}", u.soft)
                    } else {
                        format!("{k}={}:{}", u.soft, u.hard)
                    }
                })
                .collect(),
            sysctl: s.sysctls.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            shm_size: s.shm_size.map(|n| n.to_string()),
        },
        host_network,
    )
}

/// The health check of a service: `healthcheck:` over the image's `HEALTHCHECK` (compose's
/// rules: a missing `test` keeps the image's, `disable: true` or `test: [NONE]` turns it off).
/// `None`: no check. Durations are nanoseconds in the model and in [`HealthConfig`].
///
/// Errors: [`RunError::Invalid`] naming `services.NAME.healthcheck` (a bad test, a duration
/// under 1ms, options without any test).
pub fn healthcheck(
    name: &str,
    s: &Service,
    image: Option<berth_engine::health::HealthConfig>,
) -> Result<Option<berth_engine::health::HealthConfig>> {
    use berth_engine::health::{HealthConfig, HealthFlags};
    let key = format!("services.{name}.healthcheck");
    let Some(h) = &s.healthcheck else {
        return HealthConfig::resolve(image, &HealthFlags::default())
            .map_err(|e| RunError::Invalid(format!("{key}: the image's HEALTHCHECK: {e}")));
    };
    if h.disable {
        return Ok(None);
    }
    let mut base = image.unwrap_or_default();
    if !h.test.is_empty() {
        base.test = h.test.clone();
    }
    if base.test.is_empty() {
        return Err(RunError::Invalid(format!(
            "{key}: no test: the image has no HEALTHCHECK; set healthcheck.test (e.g. [\"CMD\", \"true\"])"
        )));
    }
    let ns = |v: Option<u64>| v.map(|n| format!("{n}ns"));
    let flags = HealthFlags {
        cmd: None,
        interval: ns(h.interval),
        timeout: ns(h.timeout),
        start_period: ns(h.start_period),
        start_interval: ns(h.start_interval),
        retries: h.retries.map(|r| i64::try_from(r).unwrap_or(i64::MAX)),
        disable: false,
    };
    HealthConfig::resolve(Some(base), &flags).map_err(|e| {
        // The engine names its CLI flags; name the compose keys instead.
        let msg = e
            .to_string()
            .replace("--health-start-interval", "start_interval")
            .replace("--health-start-period", "start_period")
            .replace("--health-interval", "interval")
            .replace("--health-timeout", "timeout")
            .replace("--health-retries", "retries");
        RunError::Invalid(format!("{key}: {msg}"))
    })
}

/// The log driver and options of a service (`logging:` over the store's `daemon.json`
/// defaults, as `--log-driver`/`--log-opt` are).
///
/// Errors: [`RunError::Invalid`] naming `services.NAME.logging` (unknown driver or option,
/// bad value).
pub fn log_config(root: &Path, name: &str, s: &Service) -> Result<berth_engine::logs::LogConfig> {
    let (driver, opts) = match &s.logging {
        Some(l) => (
            l.driver.as_deref(),
            l.options
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
        ),
        None => (None, Vec::new()),
    };
    berth_engine::logs::LogConfig::resolve(root, driver, &opts).map_err(|e| {
        RunError::Invalid(format!(
            "services.{name}.logging: {}",
            e.to_string().replace("--log-opt", "option")
        ))
    })
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
    /// Anonymous volumes of the container this one replaces: (container path, volume name).
    pub inherit_volumes: Vec<(String, String)>,
}

/// Build the container configuration of one container of service `name`, given the image's
/// configuration. Host directories of bind mounts that do not exist are created (as Docker
/// compose does for the short syntax). Named volumes get their engine name
/// (`PROJECT_KEY` or `name:`) and driver options; anonymous ones stay unnamed until the
/// engine creates them. The image's `VOLUME`s are added by the caller
/// ([`berth_engine::volumes::apply`]). `root` is the store root (log defaults).
///
/// Errors: [`RunError::Invalid`] for values the engine refuses; [`RunError::Io`] when a bind
/// source cannot be created.
pub fn container_config(
    root: &Path,
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
    let mut volumes = Vec::new();
    for (i, m) in s.volumes.iter().enumerate() {
        mount(p, m, &mut binds, &mut tmpfs, &mut volumes, name, i)?;
    }
    for t in &s.tmpfs {
        tmpfs.push(ccfg::parse_tmpfs(t).map_err(|e| {
            RunError::Invalid(format!(
                "services.{name}.tmpfs: {}",
                e.to_string().replace("--tmpfs", "tmpfs")
            ))
        })?);
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

    let security = security(s, matches!(network, NetworkMode::Host)).map_err(bad)?;
    let mut healthcheck = healthcheck(
        name,
        s,
        berth_engine::health::HealthConfig::from_image(image.healthcheck.as_ref()),
    )?;
    // berth goes beyond Docker: an unhealthy container is restarted when its policy allows.
    if let Some(h) = healthcheck.as_mut() {
        h.restart_unhealthy = !restart.is_none();
    }
    let log_config = log_config(root, name, s)?;
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
        volumes,
        healthcheck,
        log_config,
        resources: Default::default(),
        namespaces: Default::default(),
        extra: Default::default(),
    })
}

fn mount(
    p: &Project,
    m: &Mount,
    binds: &mut Vec<Bind>,
    tmpfs: &mut Vec<ccfg::Tmpfs>,
    volumes: &mut Vec<VolumeMount>,
    name: &str,
    i: usize,
) -> Result<()> {
    let key = format!("services.{name}.volumes[{i}]");
    let seen = binds
        .iter()
        .map(|b| b.destination.as_str())
        .chain(tmpfs.iter().map(|t| t.destination.as_str()))
        .chain(volumes.iter().map(|v| v.destination.as_str()))
        .any(|d| d.trim_end_matches('/') == m.target.trim_end_matches('/'));
    if seen {
        return Err(RunError::Invalid(format!(
            "{key}: {} is mounted twice; give each target once",
            m.target
        )));
    }
    if !m.target.starts_with('/') {
        return Err(RunError::Invalid(format!(
            "{key}: target {:?} must be an absolute path",
            m.target
        )));
    }
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
                propagation: m.bind.as_ref().and_then(|b| b.propagation.clone()),
            });
        }
        "tmpfs" => {
            let mut options = Vec::new();
            if let Some(t) = &m.tmpfs {
                if let Some(sz) = t.size {
                    options.push(format!("size={sz}"));
                }
                if let Some(mode) = t.mode {
                    options.push(format!("mode={mode:o}"));
                }
            }
            if m.read_only {
                options.push("ro".into());
            }
            tmpfs.push(ccfg::Tmpfs {
                destination: m.target.clone(),
                options,
            });
        }
        "volume" => {
            let nocopy = m.volume.as_ref().is_some_and(|v| v.nocopy);
            let (vname, driver_options, anonymous) = match &m.source {
                Some(src) if !src.is_empty() => {
                    let decl = p.volumes.get(src);
                    (
                        decl.and_then(|v| v.name.clone())
                            .unwrap_or_else(|| format!("{}_{src}", p.name)),
                        decl.map(|v| v.driver_opts.clone()).unwrap_or_default(),
                        false,
                    )
                }
                _ => (String::new(), BTreeMap::new(), true),
            };
            volumes.push(VolumeMount {
                name: vname,
                destination: m.target.trim_end_matches('/').to_string(),
                read_only: m.read_only,
                nocopy,
                anonymous,
                driver_options,
                mode: if m.read_only {
                    "ro".into()
                } else {
                    String::new()
                },
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
        let root = std::env::temp_dir();
        let p = project("services:\n  w:\n    image: x\n    cap_add: [NET_ADMIN]\n    volumes: [data:/d]\nvolumes:\n  data:\n");
        assert_eq!(
            unsupported(&root, &p, "w", &p.services["w"]),
            Vec::<String>::new()
        );
        let p = project("services:\n  w:\n    image: x\n    cap_add: [NOT_A_CAP]\n    logging: {driver: syslog}\n    healthcheck: {test: [CMD, 'true'], interval: 10us}\n    volumes:\n      - {type: volume, source: data, target: /d, volume: {subpath: x}}\nvolumes:\n  data:\n    driver: nfs-plugin\n");
        let u = unsupported(&root, &p, "w", &p.services["w"]);
        assert_eq!(u.len(), 5, "{u:?}");
        for (i, k) in [
            "volumes[0].volume.subpath",
            "volumes[0]",
            "security",
            "healthcheck",
            "logging",
        ]
        .iter()
        .enumerate()
        {
            assert!(
                u[i].starts_with(&format!("compose.yaml: services.w.{k}: ")),
                "{i}: {u:?}"
            );
        }
        assert!(u[2].contains("NOT_A_CAP"), "{u:?}");
        assert!(u[3].contains("interval"), "{u:?}");
    }

    #[test]
    fn volumes_health_logging_security_map_to_the_engine() {
        let root = std::env::temp_dir();
        let p = project("services:\n  w:\n    image: x\n    command: [sleep, '1']\n    volumes: [data:/d, /anon, './h:/h:ro', {type: tmpfs, target: /t, tmpfs: {size: 1024}}]\n    healthcheck: {test: 'true', interval: 2s, retries: 4}\n    logging: {driver: json-file, options: {max-size: 1m}}\n    cap_add: [NET_ADMIN]\n    cap_drop: [ALL]\n    ulimits: {nofile: {soft: 100, hard: 200}, nproc: 50}\n    sysctls: {net.core.somaxconn: '1024'}\n    shm_size: 64m\n    security_opt: [no-new-privileges]\n    group_add: ['10']\n    read_only: true\n    init: true\n    stop_signal: SIGINT\n    stop_grace_period: 3s\n    user: '1000'\n    working_dir: /w\n    dns: [1.1.1.1]\n    labels: {a: b}\nvolumes:\n  data:\n    driver_opts: {type: tmpfs, device: tmpfs}\n");
        let mut s = p.services["w"].clone();
        // The bind source exists (created under the test's directory otherwise).
        s.volumes[2].source = Some(root.display().to_string());
        let img = ImageConfig {
            healthcheck: Some(
                serde_json::json!({"Test": ["CMD", "img"], "Timeout": 5000000000i64}),
            ),
            ..Default::default()
        };
        let c =
            container_config(&root, &p, "w", &s, &img, "sha256:x", &Instance::default()).unwrap();
        assert_eq!(c.volumes.len(), 2, "{:?}", c.volumes);
        assert_eq!(c.volumes[0].name, "t_data");
        assert_eq!(c.volumes[0].driver_options["type"], "tmpfs");
        assert!(!c.volumes[0].anonymous);
        assert!(c.volumes[1].anonymous && c.volumes[1].name.is_empty());
        assert_eq!(c.binds.len(), 1);
        assert!(c.binds[0].read_only);
        assert_eq!(c.tmpfs[0].options, vec!["size=1024".to_string()]);
        let h = c.healthcheck.unwrap();
        assert_eq!(h.test, vec!["CMD-SHELL", "true"]);
        assert_eq!(
            (h.interval, h.retries, h.timeout),
            (2_000_000_000, 4, 5_000_000_000)
        );
        assert_eq!(c.log_config.opts["max-size"], "1m");
        assert!(c.read_only && c.init);
        assert_eq!((c.stop_signal.as_str(), c.stop_timeout), ("SIGINT", 3));
        assert_eq!((c.user.as_str(), c.working_dir.as_str()), ("1000", "/w"));
        assert_eq!(c.labels["a"], "b");
        assert_eq!(c.group_add, vec!["10"]);
        // disable: true drops the image's check.
        s.healthcheck = Some(berth_compose::model::Healthcheck {
            disable: true,
            ..Default::default()
        });
        let c =
            container_config(&root, &p, "w", &s, &img, "sha256:x", &Instance::default()).unwrap();
        assert!(c.healthcheck.is_none());
        // No healthcheck: the image's.
        s.healthcheck = None;
        let c =
            container_config(&root, &p, "w", &s, &img, "sha256:x", &Instance::default()).unwrap();
        assert_eq!(c.healthcheck.unwrap().test, vec!["CMD", "img"]);
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
        let c = container_config(
            &std::env::temp_dir(),
            &p,
            "w",
            &p.services["w"],
            &img,
            "sha256:x",
            &inst,
        )
        .unwrap();
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
