//! `up`: converge the project's containers to the model, replacing changed ones (start-first
//! when they can).

use super::*;

/// Options of [`up`].
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Services to bring up (empty: all), plus their dependencies unless `no_deps`.
    pub services: Vec<String>,
    /// Don't start linked services.
    pub no_deps: bool,
    /// Recreate containers even if nothing changed.
    pub force_recreate: bool,
    /// Never recreate existing containers.
    pub no_recreate: bool,
    /// Create, don't start.
    pub no_start: bool,
    /// Replica overrides (`--scale web=3`).
    pub scale: BTreeMap<String, u64>,
    /// Remove containers of services no longer in the project.
    pub remove_orphans: bool,
    /// `--pull always|missing|never` (default: each service's pull_policy, else missing).
    pub pull: Option<String>,
    /// Stop timeout for replaced containers (seconds).
    pub timeout: Option<u32>,
}

/// Bring the project to its model: images (built or pulled as needed), networks, then each
/// service in dependency order — containers are created when missing, recreated when their
/// configuration hash or image changed (or a dependency was recreated), started when
/// stopped; extra replicas removed. Returns the containers of the selected services.
///
/// Nothing is created when a service uses something unsupported or an image is missing
/// and cannot be built or pulled.
pub fn up(
    store: &Store,
    p: &Project,
    o: &UpOptions,
    images: &ImagePolicy<'_>,
    progress: Progress<'_>,
) -> Result<Vec<ProjectContainer>> {
    let services = selection(p, &o.services, o.no_deps)?;
    check_supported(store, p, &services)?;
    for (s, n) in &o.scale {
        if !p.services.contains_key(s) {
            return Err(RunError::Invalid(format!(
                "--scale {s}={n}: no such service"
            )));
        }
    }
    let policy = ImagePolicy {
        pull: o.pull.as_deref().or(images.pull),
        ..*images
    };
    let images = ensure_images(store, p, &services, &policy, progress)?;
    check_with_images(p, &services, &images)?;
    ensure_networks(store, p, &services, progress)?;
    ensure_volumes(store, p, &services, progress)?;
    let existing = list(store, &p.name)?;
    // Orphans.
    for pc in existing.iter().filter(|c| is_orphan(p, c)) {
        if o.remove_orphans {
            stop_remove(store, &pc.container, o.timeout)?;
            progress(&format!("Container {}", pc.container.name), "Removed");
        } else {
            progress(
                &format!("Container {}", pc.container.name),
                "Orphan (its service is not in the project; use --remove-orphans to remove it)",
            );
        }
    }
    let mut recreated: BTreeSet<String> = BTreeSet::new();
    let mut result = Vec::new();
    for name in &services {
        let s = &p.services[name];
        let (image_ref, image) = &images[name];
        let hash = service_hash(store, p, s)?;
        let want = o.scale.get(name).copied().unwrap_or_else(|| s.replicas());
        // Replicas are kept by count, lowest numbers first (numbers may have gaps after a
        // rolling replacement); extra ones are removed, missing ones get free numbers.
        let mine: Vec<&ProjectContainer> = existing
            .iter()
            .filter(|c| &c.service == name && !c.oneoff)
            .collect();
        let want_n = usize::try_from(want).unwrap_or(usize::MAX);
        let (keep, extra) = mine.split_at(mine.len().min(want_n));
        let mut used: BTreeSet<u64> = mine.iter().map(|c| c.number).collect();
        let dep_recreated = s.depends_on.keys().any(|d| recreated.contains(d));
        let rolling = start_first(s, o, want);
        if !o.no_start {
            // Only dependencies this `up` brings up (all of them, unless --no-deps or
            // services were named): docker compose drops the others from depends_on.
            wait_dependencies(store, p, name, s, &services)?;
        }
        let mut started: Vec<(Container, u64)> = Vec::new();
        for pc in keep {
            let c = &pc.container;
            let changed = c.config.labels.get(labels::CONFIG_HASH) != Some(&hash)
                || c.image_id != image.id
                || dep_recreated
                || o.force_recreate;
            if !changed || o.no_recreate {
                progress(
                    &format!("Container {}", c.name),
                    if c.state.is_active() {
                        "Running"
                    } else {
                        "Created"
                    },
                );
                started.push((c.clone(), pc.number));
                continue;
            }
            recreated.insert(name.clone());
            if rolling {
                // Start the replacement (under a free number) and wait for it to be ready
                // before the old container stops: the service keeps answering.
                let n = next_free(&mut used);
                let new = create_replacing(store, p, name, s, image_ref, image, n, Some(c))?;
                progress(&format!("Container {}", new.name), "Created");
                ops::start(store, &new, Attach::No)?;
                progress(&format!("Container {}", new.name), "Started");
                if new.config.healthcheck.is_some() {
                    if let Err(e) = wait_healthy(store, &new, None) {
                        let _ = stop_remove(store, &new, Some(0));
                        let _ = berth_engine::volumes::remove_anonymous(store, &new.config);
                        return Err(RunError::Dependency(format!(
                            "rolling update of service {name}: {e}; the old container {} keeps running",
                            c.name
                        )));
                    }
                    progress(&format!("Container {}", new.name), "Healthy");
                }
                drain(store, c);
                stop_remove(store, c, o.timeout)?;
                progress(&format!("Container {}", c.name), "Replaced");
                let new = state::get(store, &new.id)?.unwrap_or(new);
                started.push((new, n));
            } else {
                stop_remove(store, c, o.timeout)?;
                let new =
                    create_replacing(store, p, name, s, image_ref, image, pc.number, Some(c))?;
                progress(&format!("Container {}", new.name), "Recreated");
                started.push((new, pc.number));
            }
        }
        for _ in keep.len()..want_n {
            let n = next_free(&mut used);
            let c = create(store, p, name, s, image_ref, image, n)?;
            progress(&format!("Container {}", c.name), "Created");
            started.push((c, n));
        }
        for (c, n) in started {
            let c = if !o.no_start && !c.state.is_active() {
                let c = state::get(store, &c.id)?.unwrap_or(c);
                ops::start(store, &c, Attach::No)?;
                progress(&format!("Container {}", c.name), "Started");
                state::get(store, &c.id)?.unwrap_or(c)
            } else {
                c
            };
            result.push(ProjectContainer {
                container: c,
                service: name.clone(),
                number: n,
                oneoff: false,
            });
        }
        for x in extra {
            stop_remove(store, &x.container, o.timeout)?;
            progress(&format!("Container {}", x.container.name), "Removed");
        }
    }
    Ok(result)
}

/// The lowest replica number not in `used` (1-based), marked used.
fn next_free(used: &mut BTreeSet<u64>) -> u64 {
    let mut n = 1;
    while used.contains(&n) {
        n += 1;
    }
    used.insert(n);
    n
}

/// How long a replica that no longer takes new connections on the service's shared host
/// ports keeps running at least before it is stopped (connections the firewall sent it just
/// before may still be on their way).
const DRAIN: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a drained replica is given at most to finish the connections it is serving.
const DRAIN_MAX: std::time::Duration = std::time::Duration::from_secs(10);

/// Take container `c` out of its shared host ports (no new connections), wait [`DRAIN`],
/// then until it serves no connection on those ports any more (at most [`DRAIN_MAX`] in
/// all: a slow machine may take longer than a second to answer). Nothing to wait for
/// without shared ports.
fn drain(store: &Store, c: &Container) {
    if berth_net::set_port_backend(store, &c.id, false).is_err() {
        return;
    }
    let ports: Vec<u16> = berth_net::state::ports_of_container(store.db(), &c.id)
        .unwrap_or_default()
        .iter()
        .filter(|p| p.shared() && p.proto == "tcp")
        .map(|p| p.container_port)
        .collect();
    if ports.is_empty() {
        return;
    }
    let t0 = std::time::Instant::now();
    std::thread::sleep(DRAIN);
    let Some(pid) = state::get(store, &c.id).ok().flatten().and_then(|c| c.pid) else {
        return;
    };
    while berth_net::serving_connections(pid, &ports) > 0 && t0.elapsed() < DRAIN_MAX {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Whether a changed service is replaced start-first (new container up, and healthy when it
/// has a check, before the old one stops): `deploy.update_config.order: start-first`, or
/// `replicas` > 1 with a health check (berth's rolling replacement). The replicas share
/// fixed published host ports (the engine spreads new connections over the healthy ones, and
/// an old replica is drained before it stops). Never with a fixed `container_name` (the two
/// containers would clash), nor with `--no-start`.
pub fn start_first(s: &Service, o: &UpOptions, replicas: u64) -> bool {
    if o.no_start || s.container_name.is_some() {
        return false;
    }
    let order = s
        .deploy
        .as_ref()
        .and_then(|d| d.update_config.as_ref())
        .and_then(|u| u.get("order"))
        .and_then(|v| v.as_str());
    match order {
        Some("start-first") => true,
        Some(_) => false,
        None => {
            replicas > 1
                && s.healthcheck.as_ref().is_some_and(|h| {
                    !h.disable && h.test.first().map(String::as_str) != Some("NONE")
                })
        }
    }
}

/// Wait for the dependencies of `name` to reach their `depends_on` condition:
/// `service_completed_successfully` (exited 0) and `service_healthy` (health status
/// `healthy`; an unhealthy or exited container fails, as does one without a health check).
/// Started ones are started by now; dependencies outside `selected` (the services this `up`
/// brings up) are not waited for. Polls the engine's state every 100 ms: health results are
/// rows the container's supervisor writes.
fn wait_dependencies(
    store: &Store,
    p: &Project,
    name: &str,
    s: &Service,
    selected: &[String],
) -> Result<()> {
    for (dep, d) in &s.depends_on {
        if !p.services.contains_key(dep) || !selected.contains(dep) {
            continue;
        }
        match d.condition.as_str() {
            "service_completed_successfully" => {
                for pc in list(store, &p.name)?
                    .iter()
                    .filter(|c| &c.service == dep && !c.oneoff)
                {
                    let code = ops::wait(store, &pc.container)?;
                    if code != 0 {
                        return Err(RunError::Dependency(format!(
                            "service {name:?} depends on {dep:?} completing successfully, but container {} exited with {code}",
                            pc.container.name
                        )));
                    }
                }
            }
            "service_healthy" => {
                for pc in list(store, &p.name)?
                    .iter()
                    .filter(|c| &c.service == dep && !c.oneoff)
                {
                    wait_healthy(store, &pc.container, None).map_err(|e| {
                        RunError::Dependency(format!("dependency failed to start: {e}"))
                    })?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}
