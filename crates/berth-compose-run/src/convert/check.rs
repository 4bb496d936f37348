//! What berth cannot run (yet), named key by key before anything is created.

use super::*;

/// Keys berth cannot apply (yet), and values the engine refuses: one message per key,
/// `FILE: services.NAME.KEY: why`. `up`/`create`/`run` refuse such a service before anything
/// is created, naming every key. `root` is the store root (the daemon-wide log defaults).
pub fn unsupported(root: &Path, p: &Project, name: &str, s: &Service) -> Vec<String> {
    // Messages naming their key; each is located (file and line) at the end.
    let mut msgs: Vec<String> = Vec::new();
    let mut no = |k: &str, why: &str| msgs.push(format!("services.{name}.{k}: {why}"));
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
    if s.cgroup_parent.is_some() {
        no(
            "cgroup_parent",
            "is not supported by berth: containers' cgroups are created under berth's own parent (BERTH_CGROUP_PARENT); remove the key",
        );
    }
    if !s.external_links.is_empty()
        && matches!(s.network_mode.as_deref(), Some(m) if m != "bridge" && m != "default")
    {
        no(
            "external_links",
            "links need a bridge or project network, not network_mode host, none or service:/container:",
        );
    }
    // Values the engine checks: the same conversions `up` makes, without an image (a
    // healthcheck without test stands for the image's).
    let host_net = s.network_mode.as_deref() == Some("host");
    if let Err(e) = security(s, host_net) {
        match security_culprit(s, host_net) {
            Some((key, why)) => no(&key, &why),
            None => no("security", &e.to_string()),
        }
    }
    let stand_in = berth_engine::health::HealthConfig {
        test: vec!["CMD".into(), "true".into()],
        ..Default::default()
    };
    if let Err(e) = healthcheck(name, s, Some(stand_in)) {
        msgs.push(e.to_string());
    }
    if let Err(e) = log_config(root, name, s) {
        msgs.push(e.to_string());
    }
    for e in [
        limits(name, s).err(),
        check_userns(name, s).err(),
        namespaces(name, s, &mut |m| Ok(m.to_string())).err(),
    ]
    .into_iter()
    .flatten()
    {
        msgs.push(e.to_string());
    }
    if let Some(r) = &s.restart {
        if let Err(e) = RestartPolicy::parse(r) {
            msgs.push(format!("services.{name}.restart: {e}"));
        }
    }
    for (i, pt) in s.ports.iter().enumerate() {
        if let Err(e) = berth_net::ports::parse_publish(&super::container::publish_spec(pt)) {
            msgs.push(format!("services.{name}.ports[{i}]: {e}"));
        }
    }
    // Host files the mounts need: checked here so that nothing (not even the project
    // network) is created when one is missing.
    for (kind, refs, table) in [
        ("secrets", &s.secrets, &p.secrets),
        ("configs", &s.configs, &p.configs),
    ] {
        for (i, r) in refs.iter().enumerate() {
            if let Some(file) = table.get(&r.source).and_then(|o| o.file.as_ref()) {
                if !Path::new(file).exists() {
                    msgs.push(format!(
                        "services.{name}.{kind}[{i}]: {kind}.{}: file {file} does not exist",
                        r.source
                    ));
                }
            }
        }
    }
    for (i, m) in s.volumes.iter().enumerate() {
        let src = m.source.as_deref().unwrap_or_default();
        if m.kind == "bind"
            && !m.bind.as_ref().is_some_and(|b| b.create_host_path)
            && !Path::new(src).exists()
        {
            msgs.push(format!("services.{name}.volumes[{i}]: bind source {src} does not exist (create it, or set bind.create_host_path: true)"));
        }
    }
    // What Docker's daemon refuses at create (compose's config accepts both).
    if let Some(wd) = s.working_dir.as_deref().filter(|w| !w.starts_with('/')) {
        msgs.push(format!(
            "services.{name}.working_dir: {}",
            berth_engine::working_dir_error(wd)
        ));
    }
    for (i, d) in s.dns.iter().enumerate() {
        if berth_net::files::validate_dns(std::slice::from_ref(d), &[], &[]).is_err() {
            msgs.push(format!("services.{name}.dns[{i}]: invalid DNS server address {d:?}: expected an IP address"));
        }
    }
    if let Some(sig) = &s.stop_signal {
        if let Err(e) = ccfg::parse_signal(sig) {
            msgs.push(format!("services.{name}.stop_signal: {e}"));
        }
    }
    msgs.iter().map(|m| locate(p, name, s, m)).collect()
}

/// The key (`cap_add[1]`, `ulimits.nofile`, `shm_size`) whose value the engine's confinement
/// check refuses, and the engine's message, found by checking each entry alone; `None` when
/// only a combination fails.
fn security_culprit(s: &Service, host_net: bool) -> Option<(String, String)> {
    let base = Service {
        privileged: s.privileged,
        ..Default::default()
    };
    let mut trials: Vec<(String, Service)> = Vec::new();
    for (k, list, set) in [
        (
            "cap_add",
            &s.cap_add,
            (|t: &mut Service, v| t.cap_add = v) as fn(&mut Service, Vec<String>),
        ),
        ("cap_drop", &s.cap_drop, |t, v| t.cap_drop = v),
        ("security_opt", &s.security_opt, |t, v| t.security_opt = v),
        ("group_add", &s.group_add, |t, v| t.group_add = v),
    ] {
        for (i, v) in list.iter().enumerate() {
            let mut t = base.clone();
            set(&mut t, vec![v.clone()]);
            trials.push((format!("{k}[{i}]"), t));
        }
    }
    for (i, d) in s.devices.iter().enumerate() {
        let mut t = base.clone();
        t.devices = vec![d.clone()];
        trials.push((format!("devices[{i}]"), t));
    }
    for (k, u) in &s.ulimits {
        let mut t = base.clone();
        t.ulimits.insert(k.clone(), *u);
        trials.push((format!("ulimits.{k}"), t));
    }
    for (k, v) in &s.sysctls {
        let mut t = base.clone();
        t.sysctls.insert(k.clone(), v.clone());
        trials.push((format!("sysctls.{k}"), t));
    }
    let mut t = base.clone();
    t.shm_size = s.shm_size;
    trials.push(("shm_size".into(), t));
    trials.into_iter().find_map(|(k, t)| {
        security(&t, host_net).err().map(|e| {
            // The engine's flag names in compose's terms.
            let mut why = e.to_string();
            for (flag, key) in [
                ("--cap-add", "cap_add"),
                ("--cap-drop", "cap_drop"),
                ("--security-opt", "security_opt"),
                ("--group-add", "group_add"),
                ("--device", "devices"),
                ("--ulimit", "ulimits"),
                ("--sysctl", "sysctls"),
                ("--shm-size", "shm_size"),
            ] {
                why = why.replace(flag, key);
            }
            (k, why)
        })
    })
}

/// `msg` (`services.NAME[.KEY…]: why`) prefixed with the file and line of KEY (or of its
/// entry, `cap_add[1]`), as `FILE:LINE: msg` (only the files when the service was not read
/// from a file). FILE is the path the loader read, as in the loader's own errors.
pub fn locate(p: &Project, name: &str, s: &Service, msg: &str) -> String {
    let rest = msg
        .strip_prefix(&format!("services.{name}"))
        .and_then(|r| r.strip_prefix('.'))
        .unwrap_or("");
    let key = rest.split_once(':').map_or(rest, |(k, _)| k);
    match s.positions.of(key) {
        // The file as the loader names it (absolute, as docker compose's own errors).
        Some((f, line)) => format!("{f}:{line}: {msg}"),
        None => format!("{}: {msg}", files_label(p)),
    }
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    }
}
