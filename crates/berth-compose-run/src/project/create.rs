//! Creating a service's containers from the model.

use super::*;

/// Create container number `n` of a service (not started).
pub fn create(
    store: &Store,
    p: &Project,
    name: &str,
    s: &Service,
    image_ref: &str,
    image: &berth_image::Image,
    n: u64,
) -> Result<Container> {
    create_replacing(store, p, name, s, image_ref, image, n, None)
}

/// Create container number `n` of a service; when it replaces `old`, it takes over `old`'s
/// anonymous volumes at the same paths (as Docker compose keeps their data on recreate).
#[allow(clippy::too_many_arguments)]
pub fn create_replacing(
    store: &Store,
    p: &Project,
    name: &str,
    s: &Service,
    image_ref: &str,
    image: &berth_image::Image,
    n: u64,
    old: Option<&Container>,
) -> Result<Container> {
    let inst = Instance {
        number: n,
        publish: true,
        inherit_volumes: old
            .map(|c| {
                c.config
                    .volumes
                    .iter()
                    .filter(|v| v.anonymous && !v.name.is_empty())
                    .map(|v| (v.destination.clone(), v.name.clone()))
                    .collect()
            })
            .unwrap_or_default(),
        ..Default::default()
    };
    create_instance(
        store,
        p,
        name,
        s,
        image_ref,
        image,
        &inst,
        Some(convert::container_name(p, name, s, n)),
    )
}

/// Create a container of a service for `inst` with `container_name` (`None`: generated).
#[allow(clippy::too_many_arguments)]
pub fn create_instance(
    store: &Store,
    p: &Project,
    name: &str,
    s: &Service,
    image_ref: &str,
    image: &berth_image::Image,
    inst: &Instance,
    container_name: Option<String>,
) -> Result<Container> {
    let mut cfg = convert::container_config(
        store.root(),
        p,
        name,
        s,
        &image.config,
        image.id.as_str(),
        inst,
    )?;
    let image_volumes: Vec<String> = image
        .config
        .volumes
        .as_ref()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    // volumes_from: SERVICE[:MODE] → that service's first container; container:NAME[:MODE].
    let mut volumes_from = Vec::new();
    for v in &s.volumes_from {
        let (target, mode) = match v.rsplit_once(':') {
            Some((t, m @ ("ro" | "rw"))) => (t, Some(m)),
            _ => (v.as_str(), None),
        };
        let target = if target.starts_with("container:") {
            target.to_string()
        } else {
            format!("service:{target}")
        };
        let id = resolve_container(store, p, &target)
            .map_err(|e| RunError::Invalid(format!("services.{name}.volumes_from: {e}")))?;
        volumes_from.push(match mode {
            Some(m) => format!("{id}:{m}"),
            None => id,
        });
    }
    berth_engine::volumes::apply(
        store,
        &mut cfg,
        &berth_engine::volumes::MountFlags {
            volumes_from: &volumes_from,
            ..Default::default()
        },
        &image_volumes,
    )
    .map_err(|e| RunError::Invalid(format!("services.{name}.volumes: {e}")))?;
    cfg.namespaces = convert::namespaces(name, s, &mut |m| resolve_container(store, p, m))?;
    for l in &s.external_links {
        let (other, alias) = l.split_once(':').unwrap_or((l, l));
        let c = state::lookup(store, other).map_err(|e| {
            RunError::Invalid(format!(
                "services.{name}.external_links: container {other}: {e}"
            ))
        })?;
        cfg.extra.links.push(format!("{}:{alias}", c.name));
    }
    for v in cfg
        .volumes
        .iter_mut()
        .filter(|v| v.anonymous && v.name.is_empty())
    {
        if let Some((_, old)) = inst
            .inherit_volumes
            .iter()
            .find(|(d, _)| *d == v.destination)
        {
            v.name = old.clone();
        }
    }
    if let NetworkMode::Container(m) = &cfg.network {
        cfg.network = NetworkMode::Container(resolve_container(store, p, m)?);
    }
    cfg.labels.insert(
        crate::labels::CONFIG_HASH.into(),
        service_hash(store, p, s)?,
    );
    Ok(ops::create(
        store,
        CreateRequest {
            name: container_name,
            image_ref: image_ref.to_string(),
            image_id: image.id.clone(),
            config: cfg,
        },
    )?)
}

/// `service:NAME` → the id of that service's first container; `container:NAME` → its id.
fn resolve_container(store: &Store, p: &Project, m: &str) -> Result<String> {
    if let Some(svc) = m.strip_prefix("service:") {
        return first_container(&list(store, &p.name)?, svc)
            .ok_or_else(|| RunError::Dependency(format!("{m}: service {svc} has no container")));
    }
    let other = m.strip_prefix("container:").unwrap_or(m);
    Ok(state::lookup(store, other)?.id)
}

/// The id of service `svc`'s first container by name among `cs` (docker compose's choice for
/// `service:NAME` references), one-offs aside.
fn first_container(cs: &[ProjectContainer], svc: &str) -> Option<String> {
    cs.iter()
        .filter(|c| c.service == svc && !c.oneoff)
        .min_by(|a, b| a.container.name.cmp(&b.container.name))
        .map(|c| c.container.id.clone())
}

/// docker compose's configuration hash of service `s` as its `up` computes it
/// ([`convert::config_hash_resolved`]): references to other services (`network_mode`,
/// `ipc`, `pid`, `volumes_from`) stand for the id of their first container. The project's
/// containers are listed only when the service has such references.
///
/// Errors: the store's, listing the project's containers.
pub fn service_hash(store: &Store, p: &Project, s: &Service) -> Result<String> {
    let refers = [&s.network_mode, &s.ipc, &s.pid]
        .iter()
        .any(|m| m.as_deref().is_some_and(|m| m.starts_with("service:")))
        || !s.volumes_from.is_empty();
    if !refers {
        return Ok(convert::config_hash(s));
    }
    let cs = list(store, &p.name)?;
    Ok(convert::config_hash_resolved(s, &mut |svc| {
        first_container(&cs, svc)
    }))
}
