//! One container of a service: the engine's configuration, with compose's labels and mounts.

use super::*;

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
            let inline;
            let file = match (&obj.file, &obj.content) {
                (Some(f), _) => f,
                (None, Some(c)) => {
                    inline = super::content::file_for(root, c)?;
                    &inline
                }
                (None, None) => continue,
            };
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
            // Resolved by the caller to a container id (see project::create_instance).
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
        s.ports.iter().map(publish_spec).collect()
    } else {
        vec![]
    };
    let Limits {
        memory,
        nano_cpus,
        pids_limit,
        resources,
    } = limits(name, s)?;
    check_userns(name, s)?;
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
        resources,
        // ipc/pid name other containers: resolved by the caller (project::create_instance).
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

/// A service's port as the engine's `-p` specification (`[IP:][PUBLISHED:]TARGET/PROTO`).
pub(crate) fn publish_spec(pt: &berth_compose::model::Port) -> String {
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
}
