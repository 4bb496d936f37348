//! Project-level operations: find a project's containers by label, `up` (converge to the
//! model), `down`, and the per-container verbs in dependency order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use berth_compose::{Project, Service};
use berth_engine::ops::{self, Attach, CreateRequest};
use berth_engine::state::{self, Container};
use berth_image::ImageStore;
use berth_net::NetworkMode;
use berth_store::Store;

use crate::convert::{self, Instance};
use crate::{labels, Result, RunError};

/// A container that belongs to a project.
#[derive(Debug, Clone)]
pub struct ProjectContainer {
    /// The engine's row.
    pub container: Container,
    /// Its service.
    pub service: String,
    /// Its replica number.
    pub number: u64,
    /// A `compose run` container.
    pub oneoff: bool,
}

/// Every container of project `name` (one-offs included), by service then number.
pub fn list(store: &Store, name: &str) -> Result<Vec<ProjectContainer>> {
    let mut out: Vec<ProjectContainer> = ops::reconciled_rows(store)?
        .into_iter()
        .filter(|c| c.config.labels.get(labels::PROJECT).map(String::as_str) == Some(name))
        .map(|c| ProjectContainer {
            service: c
                .config
                .labels
                .get(labels::SERVICE)
                .cloned()
                .unwrap_or_default(),
            number: c
                .config
                .labels
                .get(labels::NUMBER)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
            oneoff: c.config.labels.get(labels::ONEOFF).map(String::as_str) == Some("True"),
            container: c,
        })
        .collect();
    out.sort_by(|a, b| (&a.service, a.oneoff, a.number).cmp(&(&b.service, b.oneoff, b.number)));
    Ok(out)
}

/// Projects that have containers: name → (containers, config files label).
pub fn projects(store: &Store) -> Result<BTreeMap<String, (Vec<Container>, String)>> {
    let mut out: BTreeMap<String, (Vec<Container>, String)> = BTreeMap::new();
    for c in ops::reconciled_rows(store)? {
        if let Some(p) = c.config.labels.get(labels::PROJECT).cloned() {
            let files = c
                .config
                .labels
                .get(labels::CONFIG_FILES)
                .cloned()
                .unwrap_or_default();
            let e = out.entry(p).or_insert_with(|| (Vec::new(), files));
            e.0.push(c);
        }
    }
    Ok(out)
}

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

/// A progress line: (object, e.g. `Container p-web-1`; status, e.g. `Started`).
pub type Progress<'a> = &'a mut dyn FnMut(&str, &str);

/// The services `targets` and, unless `no_deps`, everything they depend on; in dependency
/// order. Unknown names are an error.
pub fn selection(p: &Project, targets: &[String], no_deps: bool) -> Result<Vec<String>> {
    for t in targets {
        if !p.services.contains_key(t) {
            let why = if p.disabled.contains_key(t) {
                " (its profile is not enabled)"
            } else {
                ""
            };
            return Err(RunError::Invalid(format!("no such service: {t}{why}")));
        }
    }
    let mut want: BTreeSet<String> = if targets.is_empty() {
        p.services.keys().cloned().collect()
    } else {
        targets.iter().cloned().collect()
    };
    if !no_deps {
        let mut stack: Vec<String> = want.iter().cloned().collect();
        while let Some(s) = stack.pop() {
            if let Some(svc) = p.services.get(&s) {
                for d in svc.depends_on.keys() {
                    if p.services.contains_key(d) && want.insert(d.clone()) {
                        stack.push(d.clone());
                    }
                }
            }
        }
    }
    Ok(p.dependency_order()
        .into_iter()
        .filter(|s| want.contains(s))
        .collect())
}

/// Refuse services using what berth cannot run yet (or values the engine refuses), naming
/// every such key at once.
pub fn check_supported(store: &Store, p: &Project, services: &[String]) -> Result<()> {
    let mut all = Vec::new();
    for n in services {
        if let Some(s) = p.services.get(n) {
            all.extend(convert::unsupported(store.root(), p, n, s));
        }
    }
    if all.is_empty() {
        Ok(())
    } else {
        Err(RunError::Unsupported(all.join("; ")))
    }
}

/// What needs the images to check (a `healthcheck:` without `test` takes the image's), before
/// anything is created.
fn check_with_images(
    p: &Project,
    services: &[String],
    images: &BTreeMap<String, (String, berth_image::Image)>,
) -> Result<()> {
    let mut all = Vec::new();
    for n in services {
        let (Some(s), Some((_, img))) = (p.services.get(n), images.get(n)) else {
            continue;
        };
        let h = berth_engine::health::HealthConfig::from_image(img.config.healthcheck.as_ref());
        if let Err(e) = convert::healthcheck(n, s, h) {
            all.push(format!("{}: {e}", convert::files_label(p)));
        }
    }
    if all.is_empty() {
        Ok(())
    } else {
        Err(RunError::Invalid(all.join("; ")))
    }
}

/// Builds a service's image (the seam to `berth-build`; the CLI provides it).
pub trait ImageBuilder {
    /// Build `b` and tag the result `tag`. Errors are shown to the user as they are.
    fn build(
        &self,
        store: &Store,
        service: &str,
        b: &berth_compose::model::Build,
        tag: &str,
    ) -> std::result::Result<(), String>;
}

/// How [`ensure_images`] gets images.
#[derive(Clone, Copy, Default)]
pub struct ImagePolicy<'a> {
    /// `--pull always|missing|never` (default: each service's pull_policy, else missing).
    pub pull: Option<&'a str>,
    /// `--build`: build every selected service that has `build:`.
    pub build: bool,
    /// `--no-build`: never build (a missing built image is an error).
    pub no_build: bool,
    /// The builder (`None`: building is not available).
    pub builder: Option<&'a dyn ImageBuilder>,
}

/// Build the image of service `n` with `policy`'s builder.
pub fn build_service(
    store: &Store,
    p: &Project,
    n: &str,
    policy: &ImagePolicy<'_>,
    progress: Progress<'_>,
) -> Result<()> {
    let s = &p.services[n];
    let Some(b) = &s.build else { return Ok(()) };
    let r = convert::image_ref(p, n, s);
    let Some(builder) = policy.builder else {
        return Err(RunError::Unsupported(format!(
            "services.{n}.build: image {r} needs a build and berth compose cannot build images yet; build it and tag it {r}, or use image:"
        )));
    };
    progress(&format!("Service {n}"), "Building");
    builder
        .build(store, n, b, &r)
        .map_err(|e| RunError::Invalid(format!("services.{n}.build: {e}")))?;
    progress(&format!("Service {n}"), "Built");
    Ok(())
}

/// Resolve the image of each service, building (services with `build:` whose image is
/// missing, or all of them with `--build`) or pulling when needed and allowed:
/// name → (ref, image).
pub fn ensure_images(
    store: &Store,
    p: &Project,
    services: &[String],
    policy: &ImagePolicy<'_>,
    progress: Progress<'_>,
) -> Result<BTreeMap<String, (String, berth_image::Image)>> {
    let images = ImageStore::open(store)?;
    let mut out = BTreeMap::new();
    for n in services {
        let s = &p.services[n];
        let r = convert::image_ref(p, n, s);
        let pull_policy = policy
            .pull
            .map(str::to_string)
            .or_else(|| s.pull_policy.clone())
            .unwrap_or_else(|| "missing".into());
        let found = images.resolve(&r);
        if s.build.is_some()
            && !policy.no_build
            && (policy.build || pull_policy == "build" || found.is_err())
        {
            build_service(store, p, n, policy, progress)?;
            out.insert(n.clone(), (r.clone(), images.resolve(&r)?));
            continue;
        }
        let need_pull = match (&found, pull_policy.as_str()) {
            (_, "always") => s.image.is_some(),
            (Err(berth_image::ImageError::NotFound(_)), _) => true,
            (Err(e), _) => return Err(RunError::Invalid(format!("services.{n}.image: {e}"))),
            (Ok(_), _) => false,
        };
        if need_pull {
            if s.build.is_some() && found.is_err() {
                return Err(RunError::Invalid(format!(
                    "services.{n}: image {r} is not built (--no-build was given)"
                )));
            }
            if matches!(pull_policy.as_str(), "never") {
                return Err(RunError::Invalid(format!(
                    "services.{n}: image {r} not found and pull_policy is never"
                )));
            }
            pull_image(store, &r, progress)?;
        }
        let img = images.resolve(&r)?;
        out.insert(n.clone(), (r, img));
    }
    Ok(out)
}

/// Pull one image (progress on stderr).
pub fn pull_image(store: &Store, r: &str, progress: Progress<'_>) -> Result<()> {
    progress(&format!("Image {r}"), "Pulling");
    let reference = berth_image::Reference::parse(r)
        .map_err(|e| RunError::Invalid(format!("invalid image reference {r:?}: {e}")))?;
    let opts = berth_registry::PullOptions {
        output: berth_registry::OutputStream::Stderr,
        ..Default::default()
    };
    berth_registry::pull(store, &reference, &opts).map_err(|e| RunError::Pull {
        image: r.to_string(),
        source: e,
    })?;
    progress(&format!("Image {r}"), "Pulled");
    Ok(())
}

/// Push the image of each service that names one (`image:`), as `compose push` does.
pub fn push_images(
    store: &Store,
    p: &Project,
    services: &[String],
    progress: Progress<'_>,
) -> Result<()> {
    for n in services {
        let Some(r) = p.services.get(n).and_then(|s| s.image.clone()) else {
            continue;
        };
        let reference = berth_image::Reference::parse(&r).map_err(|e| {
            RunError::Invalid(format!("services.{n}.image: invalid reference {r:?}: {e}"))
        })?;
        progress(&format!("Image {r}"), "Pushing");
        berth_registry::push(
            store,
            &r,
            &reference,
            &berth_registry::PushOptions::default(),
        )
        .map_err(|e| RunError::Pull {
            image: r.clone(),
            source: e,
        })?;
        progress(&format!("Image {r}"), "Pushed");
    }
    Ok(())
}

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
        berth_net::create_network(
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

fn vol_err(e: berth_volume::VolumeError) -> RunError {
    RunError::Engine(berth_engine::EngineError::Volume(e))
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
    for pc in existing
        .iter()
        .filter(|c| !c.oneoff && !p.services.contains_key(&c.service))
    {
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
        let hash = convert::config_hash(s);
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
        wait_dependencies(store, p, name, s)?;
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

/// Whether a changed service is replaced start-first (new container up, and healthy when it
/// has a check, before the old one stops): `deploy.update_config.order: start-first`, or
/// `replicas` > 1 with a health check (berth's rolling replacement). Never with a fixed
/// `container_name` or a fixed published host port (the two containers would clash), nor
/// with `--no-start`.
pub fn start_first(s: &Service, o: &UpOptions, replicas: u64) -> bool {
    if o.no_start || s.container_name.is_some() || s.ports.iter().any(|p| p.published.is_some()) {
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
/// Started ones are started by now. Polls the engine's state every 100 ms: health results are
/// rows the container's supervisor writes.
fn wait_dependencies(store: &Store, p: &Project, name: &str, s: &Service) -> Result<()> {
    for (dep, d) in &s.depends_on {
        if !p.services.contains_key(dep) {
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

/// `up --wait`: block until every container of `cs` runs, and is healthy when it has a health
/// check (Docker compose's rule). A container that exited with 0 is ready when another service
/// depends on it with `service_completed_successfully`; any other exit, or an unhealthy
/// container, fails. `deadline` bounds the wait (`--wait-timeout`).
///
/// Errors: [`RunError::Dependency`] naming the container and what it did, or the timeout.
pub fn wait_ready(
    store: &Store,
    p: &Project,
    cs: &[ProjectContainer],
    deadline: Option<std::time::Instant>,
) -> Result<()> {
    let completes = |svc: &str| {
        p.services.values().any(|s| {
            s.depends_on
                .get(svc)
                .is_some_and(|d| d.condition == "service_completed_successfully")
        })
    };
    let mut pending: Vec<&ProjectContainer> = cs.iter().collect();
    loop {
        let health = berth_engine::health::all_status(store)?;
        let mut still = Vec::new();
        for pc in pending {
            let Some(c) = state::get(store, &pc.container.id)? else {
                return Err(RunError::Dependency(format!(
                    "container {} was removed",
                    pc.container.name
                )));
            };
            match c.state {
                berth_engine::state::State::Running => {}
                berth_engine::state::State::Exited
                    if c.exit_code == Some(0) && completes(&pc.service) =>
                {
                    continue
                }
                berth_engine::state::State::Exited => {
                    return Err(RunError::Dependency(format!(
                        "container {} exited ({})",
                        c.name,
                        c.exit_code.unwrap_or(0)
                    )))
                }
                _ => {
                    still.push(pc);
                    continue;
                }
            }
            if c.config.healthcheck.is_none() {
                continue;
            }
            match health.get(&c.id).map(String::as_str) {
                Some("healthy") => {}
                Some("unhealthy") => {
                    return Err(RunError::Dependency(format!(
                        "container {} is unhealthy",
                        c.name
                    )))
                }
                _ => still.push(pc),
            }
        }
        if still.is_empty() {
            return Ok(());
        }
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            return Err(RunError::Dependency(format!(
                "timeout waiting for {} to be running and healthy: {}",
                if still.len() == 1 {
                    "a container"
                } else {
                    "containers"
                },
                still
                    .iter()
                    .map(|c| c.container.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        pending = still;
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Block until container `c` is healthy. Errors (as text) when it has no health check, turns
/// unhealthy, stops, or `deadline` passes.
pub fn wait_healthy(
    store: &Store,
    c: &Container,
    deadline: Option<std::time::Instant>,
) -> std::result::Result<(), String> {
    if c.config.healthcheck.is_none() {
        return Err(format!(
            "container {} has no healthcheck configured",
            c.name
        ));
    }
    loop {
        let fresh = state::get(store, &c.id)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("container {} was removed", c.name))?;
        if !fresh.state.is_active() {
            return Err(format!(
                "container {} exited ({})",
                c.name,
                fresh.exit_code.unwrap_or(0)
            ));
        }
        match berth_engine::health::get(store, &c.id)
            .map_err(|e| e.to_string())?
            .map(|h| h.status)
            .as_deref()
        {
            Some("healthy") => return Ok(()),
            Some("unhealthy") => return Err(format!("container {} is unhealthy", c.name)),
            _ => {}
        }
        if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            return Err(format!("container {} is not healthy yet", c.name));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

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
    berth_engine::volumes::apply(
        store,
        &mut cfg,
        &berth_engine::volumes::MountFlags::default(),
        &image_volumes,
    )
    .map_err(|e| RunError::Invalid(format!("services.{name}.volumes: {e}")))?;
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
        cfg.network = NetworkMode::Container(resolve_network_mode(store, p, m)?);
    }
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
fn resolve_network_mode(store: &Store, p: &Project, m: &str) -> Result<String> {
    if let Some(svc) = m.strip_prefix("service:") {
        let c = list(store, &p.name)?
            .into_iter()
            .find(|c| c.service == svc && !c.oneoff)
            .ok_or_else(|| {
                RunError::Dependency(format!("network_mode {m}: service {svc} has no container"))
            })?;
        return Ok(c.container.id);
    }
    let other = m.strip_prefix("container:").unwrap_or(m);
    Ok(state::lookup(store, other)?.id)
}

/// Stop (if running) and remove a container.
pub fn stop_remove(store: &Store, c: &Container, timeout: Option<u32>) -> Result<()> {
    let _ = ops::stop(store, c, timeout);
    match ops::remove(store, c, true) {
        Ok(()) | Err(berth_engine::EngineError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Stop containers, in reverse dependency order of their services; containers of one
/// service (and of independent services at the same depth) stop in parallel.
pub fn stop_ordered(
    store: &Store,
    p: Option<&Project>,
    cs: &[ProjectContainer],
    timeout: Option<u32>,
    progress: Progress<'_>,
) -> Result<()> {
    let errors = stop_levels(store, p, cs, timeout, None, progress);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RunError::Invalid(errors.join("; ")))
    }
}

/// What [`stop_levels`] does after a container stopped.
#[derive(Debug, Clone, Copy)]
struct RemoveAfterStop {
    /// Also remove its anonymous volumes.
    anonymous_volumes: bool,
}

enum StopEvent {
    Stopped(String),
    StopFailed(String),
    Removed(String),
    Failed(String),
}

/// Stop `cs` level by level (dependents first), every container of a level in its own
/// thread; with `remove`, each thread removes its container as soon as it stopped, while the
/// next level is already stopping (a level waits only for the previous level's stops).
/// Returns every failure; keeps going after one.
fn stop_levels(
    store: &Store,
    p: Option<&Project>,
    cs: &[ProjectContainer],
    timeout: Option<u32>,
    remove: Option<RemoveAfterStop>,
    progress: Progress<'_>,
) -> Vec<String> {
    let root = store.root().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel::<StopEvent>();
    let mut handles = Vec::new();
    let mut errors = Vec::new();
    let mut handle = |ev: StopEvent, errors: &mut Vec<String>| match ev {
        StopEvent::Stopped(n) => progress(&format!("Container {n}"), "Stopped"),
        StopEvent::Removed(n) => progress(&format!("Container {n}"), "Removed"),
        StopEvent::StopFailed(e) | StopEvent::Failed(e) => errors.push(e),
    };
    for level in levels(p, cs).into_iter().rev() {
        let mut pending = 0usize;
        for pc in level {
            if remove.is_none() && !pc.container.state.is_active() {
                continue;
            }
            pending += 1;
            let root = root.clone();
            let c = pc.container.clone();
            let tx = tx.clone();
            handles.push(std::thread::spawn(move || {
                let st = match Store::open(&root) {
                    Ok(st) => st,
                    Err(e) => {
                        let _ = tx.send(StopEvent::StopFailed(format!("{}: {e}", c.name)));
                        return;
                    }
                };
                let active = state::get(&st, &c.id)
                    .ok()
                    .flatten()
                    .is_some_and(|f| f.state.is_active());
                if active {
                    match ops::stop(&st, &c, timeout) {
                        Ok(()) => {
                            let _ = tx.send(StopEvent::Stopped(c.name.clone()));
                        }
                        Err(e) => {
                            let _ = tx.send(StopEvent::StopFailed(format!("{}: {e}", c.name)));
                        }
                    }
                } else {
                    // Counted as stopped for the level's wait.
                    let _ = tx.send(StopEvent::StopFailed(String::new()));
                }
                let Some(r) = remove else { return };
                match ops::remove(&st, &c, true) {
                    Ok(()) | Err(berth_engine::EngineError::NotFound(_)) => {
                        let _ = tx.send(StopEvent::Removed(c.name.clone()));
                        if r.anonymous_volumes {
                            if let Err(e) = berth_engine::volumes::remove_anonymous(&st, &c.config)
                            {
                                let _ = tx.send(StopEvent::Failed(format!(
                                    "{}: anonymous volumes: {e}",
                                    c.name
                                )));
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(StopEvent::Failed(format!("{}: {e}", c.name)));
                    }
                }
            }));
        }
        // The next level stops once this one has: removals may still run.
        while pending > 0 {
            let Ok(ev) = rx.recv() else { break };
            if matches!(ev, StopEvent::Stopped(_) | StopEvent::StopFailed(_)) {
                pending -= 1;
            }
            if !matches!(&ev, StopEvent::StopFailed(e) if e.is_empty()) {
                handle(ev, &mut errors);
            }
        }
    }
    drop(tx);
    for ev in rx {
        if !matches!(&ev, StopEvent::StopFailed(e) if e.is_empty()) {
            handle(ev, &mut errors);
        }
    }
    for h in handles {
        if h.join().is_err() {
            errors.push("a stop thread panicked".into());
        }
    }
    errors
}

/// Group containers by the dependency depth of their service (0: no dependencies).
fn levels(p: Option<&Project>, cs: &[ProjectContainer]) -> Vec<Vec<ProjectContainer>> {
    fn depth(p: &Project, s: &str, seen: &mut Vec<String>) -> usize {
        if seen.iter().any(|x| x == s) {
            return 0;
        }
        seen.push(s.to_string());
        let d = p
            .services
            .get(s)
            .map(|svc| {
                svc.depends_on
                    .keys()
                    .map(|d| depth(p, d, seen) + 1)
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        seen.pop();
        d
    }
    let mut by: BTreeMap<usize, Vec<ProjectContainer>> = BTreeMap::new();
    for pc in cs {
        let d = match p {
            Some(p) => {
                if pc.oneoff {
                    usize::MAX
                } else {
                    depth(p, &pc.service, &mut Vec::new())
                }
            }
            None => 0,
        };
        by.entry(d).or_default().push(pc.clone());
    }
    by.into_values().collect()
}

/// Options of [`down`].
#[derive(Debug, Clone, Default)]
pub struct DownOptions {
    /// Remove containers of services not in the project too.
    pub remove_orphans: bool,
    /// Stop timeout (seconds).
    pub timeout: Option<u32>,
    /// Remove the named volumes the project declares (not external ones) and the anonymous
    /// volumes of its containers.
    pub volumes: bool,
    /// Remove images: `local` (built ones without a custom tag) or `all`.
    pub rmi: Option<String>,
}

/// Stop and remove the project's containers (reverse dependency order), then its networks.
/// Keeps going after a failure and reports every one.
pub fn down(store: &Store, p: &Project, o: &DownOptions, progress: Progress<'_>) -> Result<()> {
    let all = list(store, &p.name)?;
    let cs: Vec<ProjectContainer> = all
        .into_iter()
        .filter(|c| o.remove_orphans || c.oneoff || p.services.contains_key(&c.service))
        .collect();
    let mut errors = stop_levels(
        store,
        Some(p),
        &cs,
        o.timeout,
        Some(RemoveAfterStop {
            anonymous_volumes: o.volumes,
        }),
        progress,
    );
    if !list(store, &p.name)?
        .iter()
        .any(|c| !o.remove_orphans && !p.services.contains_key(&c.service))
    {
        for (key, n) in &p.networks {
            if n.external {
                continue;
            }
            let real = n
                .name
                .clone()
                .unwrap_or_else(|| format!("{}_{key}", p.name));
            if berth_net::get_network(store, &real).is_err() {
                continue;
            }
            match berth_net::remove_network(store, &real) {
                Ok(_) => progress(&format!("Network {real}"), "Removed"),
                Err(e) => errors.push(format!("network {real}: {e}")),
            }
        }
    }
    if o.volumes {
        for (key, v) in &p.volumes {
            if v.external {
                continue;
            }
            let real = volume_name(p, key);
            match berth_engine::volumes::remove_volume(store, &real, false) {
                Ok(()) => progress(&format!("Volume {real}"), "Removed"),
                Err(berth_volume::VolumeError::NotFound(_)) => {}
                Err(e) => errors.push(format!("volume {real}: {e}")),
            }
        }
    }
    if let Some(rmi) = &o.rmi {
        let images = ImageStore::open(store)?;
        let in_use = berth_engine::image_ids_in_use(store)?;
        for (n, s) in &p.services {
            if rmi == "local" && s.image.is_some() {
                continue;
            }
            let r = convert::image_ref(p, n, s);
            if images.resolve(&r).is_ok() {
                match images.remove(&r, false, &in_use) {
                    Ok(_) => progress(&format!("Image {r}"), "Removed"),
                    Err(e) => errors.push(format!("image {r}: {e}")),
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RunError::Invalid(format!("down: {}", errors.join("; "))))
    }
}

/// The containers of `services` (all when empty), without one-offs.
pub fn service_containers(
    store: &Store,
    p: &Project,
    services: &[String],
) -> Result<Vec<ProjectContainer>> {
    for s in services {
        if !p.services.contains_key(s) {
            return Err(RunError::Invalid(format!("no such service: {s}")));
        }
    }
    Ok(list(store, &p.name)?
        .into_iter()
        .filter(|c| !c.oneoff && (services.is_empty() || services.contains(&c.service)))
        .collect())
}

/// Start stopped containers of `services` in dependency order.
pub fn start(
    store: &Store,
    p: &Project,
    services: &[String],
    progress: Progress<'_>,
) -> Result<()> {
    let cs = service_containers(store, p, services)?;
    if cs.is_empty() {
        return Err(RunError::Invalid(
            "no containers to start: run up first".into(),
        ));
    }
    for level in levels(Some(p), &cs) {
        for pc in level {
            if !pc.container.state.is_active() {
                ops::start(store, &pc.container, Attach::No)?;
                progress(&format!("Container {}", pc.container.name), "Started");
            }
        }
    }
    Ok(())
}

/// Project directory label of a container (where `compose` was run).
pub fn working_dir(c: &Container) -> Option<&Path> {
    c.config.labels.get(labels::WORKING_DIR).map(Path::new)
}
