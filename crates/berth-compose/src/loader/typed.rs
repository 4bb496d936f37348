//! The merged tree → the typed model, with errors at the node's file and line; dependency
//! cycles.

use super::*;

/// Find the node at a serde path below `n` (for the line of a conversion error).
pub(super) fn node_at<'a>(n: &'a Node, path: &serde_path_to_error::Path) -> (&'a Node, String) {
    let mut cur = n;
    let mut text = String::new();
    for seg in path.iter() {
        match seg {
            serde_path_to_error::Segment::Seq { index } => {
                text.push_str(&format!("[{index}]"));
                if let Some(x) = cur.as_seq().and_then(|v| v.get(*index)) {
                    cur = x;
                }
            }
            serde_path_to_error::Segment::Map { key } => {
                text.push('.');
                text.push_str(key);
                if let Some((k, v)) = cur
                    .as_map()
                    .and_then(|m| m.iter().find(|(k, _)| &k.name == key))
                {
                    cur = v;
                    let _ = k;
                }
            }
            _ => {}
        }
    }
    (cur, text)
}

pub(super) fn typed<T: serde::de::DeserializeOwned>(n: &Node, path: &str) -> Result<T> {
    let json = n.to_json();
    serde_path_to_error::deserialize(json).map_err(|e| {
        let (at, sub) = node_at(n, e.path());
        let mut msg = e.inner().to_string();
        if let Some(rest) = msg.strip_prefix("unknown field `") {
            let field = rest.split('`').next().unwrap_or("").to_string();
            msg = format!("unknown key {field:?}");
            // Point at the key itself.
            let sub = sub.strip_suffix(&format!(".{field}")).unwrap_or(&sub);
            let (p, key_mark) = (format!("{path}{sub}"), at.mark.clone());
            let key_line = at
                .as_map()
                .and_then(|m| m.iter().find(|(k, _)| k.name == field))
                .map_or(key_mark.line, |(k, _)| k.mark.line);
            return ComposeError::Invalid {
                file: key_mark.file.to_string(),
                line: key_line,
                path: p,
                msg,
            };
        }
        if msg.starts_with("invalid type") {
            msg = format!("{msg} (got {})", at.type_name());
        }
        ComposeError::Invalid {
            file: at.mark.file.to_string(),
            line: at.mark.line,
            path: format!("{path}{sub}"),
            msg,
        }
    })
}

/// `msg` at the first of `keys` (`depends_on.db`, `depends_on`) service `sn` was read with, as
/// `FILE:LINE: services.SN.KEY: msg`; without a position (a service not read from a file),
/// [`ComposeError::Project`].
fn at_key(sn: &str, s: &Service, keys: &[String], msg: String) -> ComposeError {
    match keys
        .iter()
        .find_map(|k| s.positions.0.get(k).map(|p| (k, p)))
    {
        Some((k, (file, line))) => ComposeError::Invalid {
            file: file.clone(),
            line: *line,
            path: format!("services.{sn}.{}", k.split(['.', '[']).next().unwrap_or(k)),
            msg,
        },
        None => ComposeError::Project(msg),
    }
}

pub(super) fn bad_at(n: &Node, path: &str, msg: String) -> ComposeError {
    ComposeError::Invalid {
        file: n.mark.file.to_string(),
        line: n.mark.line,
        path: path.to_string(),
        msg,
    }
}

/// Env file entry of a service (`env_file:` long form).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvFileRef {
    path: String,
    #[serde(default = "yes", deserialize_with = "de_bool_lenient")]
    required: bool,
    #[serde(default)]
    #[allow(dead_code)] // accepted: only the default format exists
    format: Option<String>,
}

pub(super) fn yes() -> bool {
    true
}

fn de_bool_lenient<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    use serde::Deserialize;
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => b,
        Value::String(s) => s == "true",
        _ => true,
    })
}

pub(super) fn convert(
    mut tree: Node,
    name: &str,
    profiles: &BTreeSet<String>,
    env: &Env,
) -> Result<Project> {
    let extensions = take_extensions(&mut tree);
    let mut p = Project {
        name: name.to_string(),
        extensions,
        ..Default::default()
    };
    for (k, _) in tree.as_map().cloned().unwrap_or_default() {
        if !matches!(
            k.name.as_str(),
            "name" | "services" | "networks" | "volumes" | "secrets" | "configs"
        ) {
            return Err(ComposeError::Invalid {
                file: k.mark.file.to_string(),
                line: k.mark.line,
                path: k.name.clone(),
                msg: format!("unknown top-level key {:?}: use services, networks, volumes, secrets, configs, include, name or x-*", k.name),
            });
        }
    }
    let services = tree.remove("services");
    let mut all: BTreeMap<String, (Service, Node)> = BTreeMap::new();
    if let Some(svcs) = services {
        for (k, mut v) in svcs.as_map().cloned().unwrap_or_default() {
            let path = format!("services.{}", k.name);
            if !valid_service_name(&k.name) {
                return Err(bad_at(
                    &v,
                    &path,
                    format!(
                        "invalid service name {:?}: use letters, digits, '.', '-' and '_'",
                        k.name
                    ),
                ));
            }
            let ext = take_extensions(&mut v);
            strip_nested_extensions(&mut v);
            let env_files = v.remove("env_file");
            v.remove("extends");
            let mut s: Service = typed(&v, &path)?;
            s.extensions = ext;
            let pos = &mut s.positions.0;
            pos.insert(String::new(), (k.mark.file.to_string(), k.mark.line));
            for (key, val) in v.as_map().into_iter().flatten() {
                pos.insert(key.name.clone(), (key.mark.file.to_string(), key.mark.line));
                // Entries one level down (`cap_add[0]`, `ulimits.nofile`), for errors that
                // name one entry.
                for (i, e) in val.as_seq().into_iter().flatten().enumerate() {
                    let at = (e.mark.file.to_string(), e.mark.line);
                    // A name in a list (`depends_on: [db]`) also as `depends_on.db`, as in
                    // the map form.
                    if let Some(v) = e.as_str() {
                        pos.insert(format!("{}.{v}", key.name), at.clone());
                    }
                    pos.insert(format!("{}[{i}]", key.name), at);
                }
                for (sub, _) in val.as_map().into_iter().flatten() {
                    pos.insert(
                        format!("{}.{}", key.name, sub.name),
                        (sub.mark.file.to_string(), sub.mark.line),
                    );
                }
            }
            // env_file first, then environment; unset values from the project environment.
            let mut environment: BTreeMap<String, Option<String>> = BTreeMap::new();
            if let Some(ef) = env_files {
                let refs: Vec<EnvFileRef> = typed(&ef, &format!("{path}.env_file"))?;
                for r in refs {
                    let pth = PathBuf::from(&r.path);
                    if !pth.exists() && !r.required {
                        continue;
                    }
                    let look = |k: &str| env.get(k);
                    for (ek, evv) in dotenv::read(&pth, &look).map_err(|e| match e {
                        ComposeError::Io { path, source } => bad_at(
                            &ef,
                            &format!("{path_s}.env_file", path_s = path_str(&k.name)),
                            format!("env file {} not found: {source}", path.display()),
                        ),
                        other => other,
                    })? {
                        environment.insert(ek.clone(), evv.or_else(|| env.get(&ek)));
                    }
                }
            }
            for (ek, ev) in std::mem::take(&mut s.environment) {
                let ev = ev.or_else(|| env.get(&ek));
                environment.insert(ek, ev);
            }
            s.environment = environment;
            all.insert(k.name.clone(), (s, v));
        }
    }
    // Profiles.
    for (n, (s, _)) in all {
        if s.profiles.is_empty()
            || s.profiles.iter().any(|x| profiles.contains(x) || x == "*")
            || profiles.contains("*")
        {
            p.services.insert(n, s);
        } else {
            p.disabled.insert(n, s);
        }
    }
    let section = |tree: &mut Node, key: &str| -> Vec<(String, Node)> {
        tree.remove(key)
            .and_then(|n| n.as_map().cloned())
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.name, v))
            .collect()
    };
    let mut networks: BTreeMap<String, Network> = BTreeMap::new();
    for (k, v) in section(&mut tree, "networks") {
        let mut v = v;
        take_extensions(&mut v);
        strip_nested_extensions(&mut v);
        let mut n: Network = typed(&v, &format!("networks.{k}"))?;
        if n.name.is_none() {
            n.name = Some(if n.external {
                k.clone()
            } else {
                format!("{name}_{k}")
            });
        }
        networks.insert(k, n);
    }
    let mut volumes = BTreeMap::new();
    for (k, v) in section(&mut tree, "volumes") {
        let mut v = v;
        take_extensions(&mut v);
        strip_nested_extensions(&mut v);
        let mut vol: model::Volume = typed(&v, &format!("volumes.{k}"))?;
        if vol.name.is_none() {
            vol.name = Some(if vol.external {
                k.clone()
            } else {
                format!("{name}_{k}")
            });
        }
        volumes.insert(k, vol);
    }
    let mut files: BTreeMap<&str, BTreeMap<String, model::FileObject>> = BTreeMap::new();
    for sec in ["secrets", "configs"] {
        let mut m = BTreeMap::new();
        for (k, v) in section(&mut tree, sec) {
            let mut v = v;
            take_extensions(&mut v);
            strip_nested_extensions(&mut v);
            let mut f: model::FileObject = typed(&v, &format!("{sec}.{k}"))?;
            if f.name.is_none() {
                f.name = Some(if f.external {
                    k.clone()
                } else {
                    format!("{name}_{k}")
                });
            }
            if f.file.is_none() && f.environment.is_none() && f.content.is_none() && !f.external {
                return Err(bad_at(
                    &v,
                    &format!("{sec}.{k}"),
                    "needs file:, environment:, content: or external:".into(),
                ));
            }
            m.insert(k, f);
        }
        files.insert(sec, m);
    }

    // Defaults and references.
    let mut used_networks = BTreeSet::new();
    let mut used_volumes = BTreeSet::new();
    let mut used_secrets = BTreeSet::new();
    let mut used_configs = BTreeSet::new();
    for (sn, s) in p.services.iter_mut() {
        if s.image.is_none() && s.build.is_none() {
            return Err(ComposeError::Project(format!(
                "service {sn:?} has neither an image nor a build context specified: add image: or build:"
            )));
        }
        if let Some(b) = &mut s.build {
            // Arguments without a value come from the environment, or are left out.
            let args = std::mem::take(&mut b.args);
            b.args = args
                .into_iter()
                .filter_map(|(k, v)| v.or_else(|| env.get(&k)).map(|v| (k, Some(v))))
                .collect();
            if b.dockerfile.is_none() && b.dockerfile_inline.is_none() {
                b.dockerfile = Some("Dockerfile".into());
            }
        }
        // Docker keeps extra hosts in a map: printed sorted.
        s.extra_hosts.sort();
        if s.network_mode.is_none() && s.networks.is_empty() {
            s.networks.insert("default".into(), None);
        }
        for n in s.networks.keys() {
            used_networks.insert(n.clone());
        }
        for m in &s.volumes {
            if m.kind == "volume" {
                if let Some(src) = &m.source {
                    used_volumes.insert(src.clone());
                }
            }
        }
        for r in &s.secrets {
            used_secrets.insert(r.source.clone());
        }
        for r in &s.configs {
            used_configs.insert(r.source.clone());
        }
        if let Some(d) = &mut s.deploy {
            if d.placement.is_null() {
                d.placement = Value::Object(Default::default());
            }
        }
    }
    // Implicit dependencies (links, network_mode/ipc/pid: service:X, volumes_from), as Docker
    // adds them.
    let names: BTreeSet<String> = p.services.keys().cloned().collect();
    for (sn, s) in p.services.iter_mut() {
        let mut implicit: Vec<String> = s
            .links
            .iter()
            .map(|l| l.split(':').next().unwrap_or(l).to_string())
            .collect();
        for mode in [&s.network_mode, &s.ipc, &s.pid] {
            if let Some(other) = mode.as_deref().and_then(|m| m.strip_prefix("service:")) {
                implicit.push(other.to_string());
            }
        }
        // volumes_from: SERVICE[:MODE] (not container:NAME), without restart (as Docker).
        let from: Vec<String> = s
            .volumes_from
            .iter()
            .filter(|v| !v.starts_with("container:"))
            .map(|v| v.split(':').next().unwrap_or(v).to_string())
            .collect();
        for dep in implicit
            .iter()
            .map(|d| (d, true))
            .chain(from.iter().map(|d| (d, false)))
            .map(|(d, restart)| (d.clone(), restart))
            .collect::<Vec<_>>()
        {
            let (dep, restart) = dep;
            if !names.contains(&dep) {
                let svc = Some(format!("service:{dep}"));
                let key = if !restart {
                    "volumes_from"
                } else if s.network_mode == svc {
                    "network_mode"
                } else if s.ipc == svc {
                    "ipc"
                } else if s.pid == svc {
                    "pid"
                } else {
                    "links"
                };
                let mut keys = vec![key.to_string()];
                if key == "links" {
                    if let Some(l) = s.links.iter().find(|l| l.split(':').next() == Some(&dep)) {
                        keys.insert(0, format!("links.{l}"));
                    }
                }
                return Err(at_key(
                    sn,
                    s,
                    &keys,
                    format!("service {sn:?} refers to undefined service {dep:?}: invalid compose project"),
                ));
            }
            s.depends_on.entry(dep).or_insert(model::DependsOn {
                condition: "service_started".into(),
                restart,
                required: true,
            });
        }
        if s.container_name.is_some() && s.replicas() > 1 {
            return Err(ComposeError::Project(format!(
                "services.{sn}: container_name {:?} cannot be used with {} replicas (container names must be unique): remove container_name or set one replica",
                s.container_name.as_deref().unwrap_or_default(),
                s.replicas()
            )));
        }
    }
    for (sn, s) in &p.services {
        for (dep, d) in &s.depends_on {
            if !p.services.contains_key(dep) && d.required {
                let why = if p.disabled.contains_key(dep) {
                    format!(
                        " (it is in a profile that is not enabled: use --profile {})",
                        p.disabled[dep].profiles.join(",")
                    )
                } else {
                    String::new()
                };
                return Err(at_key(
                    sn,
                    s,
                    &[format!("depends_on.{dep}"), "depends_on".into()],
                    format!("service {sn:?} depends on undefined service {dep:?}{why}: invalid compose project"),
                ));
            }
        }
        for l in &s.links {
            let target = l.split(':').next().unwrap_or(l);
            if !p.services.contains_key(target) {
                return Err(at_key(
                    sn,
                    s,
                    &[format!("links.{l}"), "links".into()],
                    format!("service {sn:?} links to undefined service {target:?}"),
                ));
            }
        }
        if let Some(nm) = &s.network_mode {
            if let Some(other) = nm.strip_prefix("service:") {
                if !p.services.contains_key(other) {
                    return Err(at_key(
                        sn,
                        s,
                        &["network_mode".into()],
                        format!(
                            "service {sn:?} uses the network stack of undefined service {other:?}"
                        ),
                    ));
                }
            }
        }
    }
    if let Some(cycle) = dependency_cycle(&p) {
        return Err(ComposeError::Project(format!(
            "dependency cycle detected: {}",
            cycle.join(" -> ")
        )));
    }
    for n in &used_networks {
        if n == "default" && !networks.contains_key("default") {
            networks.insert(
                "default".into(),
                Network {
                    name: Some(format!("{name}_default")),
                    ..Default::default()
                },
            );
        }
        if !networks.contains_key(n) {
            let msg = |who: &str| {
                format!("service {who:?} refers to undefined network {n}: invalid compose project")
            };
            return Err(
                match p.services.iter().find(|(_, s)| s.networks.contains_key(n)) {
                    Some((who, s)) => at_key(
                        who,
                        s,
                        &[format!("networks.{n}"), "networks".into()],
                        msg(who),
                    ),
                    None => ComposeError::Project(msg("")),
                },
            );
        }
    }
    for v in &used_volumes {
        if !volumes.contains_key(v) {
            let msg = |who: &str| {
                format!("service {who:?} refers to undefined volume {v}: invalid compose project")
            };
            let user = p.services.iter().find_map(|(who, s)| {
                s.volumes
                    .iter()
                    .position(|m| m.source.as_deref() == Some(v))
                    .map(|i| (who, s, i))
            });
            return Err(match user {
                Some((who, s, i)) => at_key(
                    who,
                    s,
                    &[format!("volumes[{i}]"), "volumes".into()],
                    msg(who),
                ),
                None => ComposeError::Project(msg("")),
            });
        }
    }
    let mut secrets = files.remove("secrets").unwrap_or_default();
    let mut configs = files.remove("configs").unwrap_or_default();
    for (used, defined, what) in [
        (&used_secrets, &secrets, "secret"),
        (&used_configs, &configs, "config"),
    ] {
        for u in used {
            if !defined.contains_key(u) {
                return Err(ComposeError::Project(format!(
                    "undefined {what} {u:?}: declare it under the top-level {what}s:"
                )));
            }
        }
    }
    networks.retain(|k, _| used_networks.contains(k));
    volumes.retain(|k, _| used_volumes.contains(k));
    secrets.retain(|k, _| used_secrets.contains(k));
    configs.retain(|k, _| used_configs.contains(k));
    p.networks = networks;
    p.volumes = volumes;
    p.secrets = secrets;
    p.configs = configs;
    Ok(p)
}

/// A cycle in `depends_on` (its services, first repeated at the end), if any.
pub(super) fn dependency_cycle(p: &Project) -> Option<Vec<String>> {
    fn visit(
        p: &Project,
        n: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|x| x == n) {
            let mut c = stack[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        if let Some(s) = p.services.get(n) {
            for d in s.depends_on.keys() {
                if let Some(c) = visit(p, d, stack, done) {
                    return Some(c);
                }
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    p.services
        .keys()
        .find_map(|n| visit(p, n, &mut Vec::new(), &mut done))
}

pub(super) fn path_str(service: &str) -> String {
    format!("services.{service}")
}

pub(super) fn valid_service_name(s: &str) -> bool {
    !s.is_empty()
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Drop `x-*` keys from the structured mappings nested anywhere below `n` (a service, network,
/// volume, secret or config): compose-spec allows extensions in every such object (a port,
/// a network attachment, `deploy.resources`, `healthcheck`, …) and docker compose's JSON model
/// leaves them out. Free-form mappings (`environment`, `labels`, `args`, `driver_opts`,
/// `options`, `sysctls`, …) keep theirs: there an `x-` key is data.
pub(super) fn strip_nested_extensions(n: &mut Node) {
    const FREE_FORM: &[&str] = &[
        "environment",
        "labels",
        "args",
        "driver_opts",
        "options",
        "sysctls",
        "extra_hosts",
        "annotations",
        "additional_contexts",
        "storage_opt",
        "networks",
        "depends_on",
        "ulimits",
        "links",
        "external_links",
    ];
    fn walk(n: &mut Node, free: bool) {
        match &mut n.kind {
            crate::yaml::Kind::Map(m) => {
                if !free {
                    m.retain(|(k, _)| !k.name.starts_with("x-"));
                }
                for (k, v) in m.iter_mut() {
                    let child_free = FREE_FORM.contains(&k.name.as_str());
                    match &mut v.kind {
                        crate::yaml::Kind::Seq(items) => {
                            for i in items {
                                walk(i, child_free);
                            }
                        }
                        _ => walk(v, child_free),
                    }
                }
            }
            crate::yaml::Kind::Seq(items) => items.iter_mut().for_each(|i| walk(i, free)),
            crate::yaml::Kind::Scalar(..) => {}
        }
    }
    walk(n, false);
}

/// Split `x-*` keys off a mapping.
pub(super) fn take_extensions(n: &mut Node) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    if let Some(m) = n.as_map_mut() {
        m.retain(|(k, v)| {
            if k.name.starts_with("x-") {
                out.insert(k.name.clone(), v.to_json());
                false
            } else {
                true
            }
        });
    }
    out
}
