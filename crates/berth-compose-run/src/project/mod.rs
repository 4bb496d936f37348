//! Project-level operations: find a project's containers by label, `up` (converge to the
//! model), `down`, and the per-container verbs in dependency order.

mod create;
mod images;
mod resources;
mod stop;
mod up;
mod wait;

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

pub use create::{create, create_instance, create_replacing, service_hash};
use images::check_with_images;
pub use images::{
    build_service, ensure_images, pull_image, push_images, ImageBuilder, ImagePolicy,
};
pub use resources::{ensure_networks, ensure_volumes, volume_name};
use stop::levels;
pub use stop::{down, stop_ordered, stop_remove, DownOptions};
pub use up::{start_first, up, UpOptions};
pub use wait::{wait_healthy, wait_ready};

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

/// A project known only by its name, for `-p NAME ps|logs|stop|down…` without a compose
/// file (docker compose allows these): one service per `com.docker.compose.service` label
/// of its containers (image: the container's), the networks its containers joined plus
/// `NAME_default`, and the volumes labelled with the project (for `down -v`). Nothing is
/// created.
pub fn from_labels(store: &Store, name: &str) -> Result<Project> {
    let mut p = Project {
        name: name.to_string(),
        ..Default::default()
    };
    let mut nets: BTreeSet<String> = BTreeSet::new();
    for pc in list(store, name)? {
        let c = &pc.container;
        if let NetworkMode::Networks(atts) = &c.config.network {
            nets.extend(atts.iter().map(|a| a.network.clone()));
        }
        if pc.oneoff {
            continue;
        }
        p.services
            .entry(pc.service.clone())
            .or_insert_with(|| Service {
                image: Some(c.image_name.clone()),
                ..Default::default()
            });
    }
    nets.insert(format!("{name}_default"));
    for real in nets {
        if real == "bridge" || berth_net::get_network(store, &real).is_err() {
            continue;
        }
        let key = real
            .strip_prefix(&format!("{name}_"))
            .unwrap_or(&real)
            .to_string();
        p.networks.insert(
            key,
            berth_compose::model::Network {
                name: Some(real),
                ..Default::default()
            },
        );
    }
    if let Ok(vs) = berth_volume::VolumeStore::open(store) {
        for v in vs.list().unwrap_or_default() {
            if v.labels.get(labels::PROJECT).map(String::as_str) != Some(name) {
                continue;
            }
            let key = v
                .labels
                .get(labels::VOLUME)
                .cloned()
                .unwrap_or_else(|| v.name.clone());
            p.volumes.insert(
                key,
                berth_compose::model::Volume {
                    name: Some(v.name),
                    ..Default::default()
                },
            );
        }
    }
    Ok(p)
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

/// A progress line: (object, e.g. `Container p-web-1`; status, e.g. `Started`).
pub type Progress<'a> = &'a mut dyn FnMut(&str, &str);

/// `restart`'s services: `targets` plus, transitively, the services that depend on one of
/// them with `restart: true` (docker compose restarts those too). Empty `targets` (all
/// services) stays empty.
pub fn with_restart_dependents(p: &Project, targets: &[String]) -> Vec<String> {
    let mut out: Vec<String> = targets.to_vec();
    if out.is_empty() {
        return out;
    }
    let mut i = 0;
    while i < out.len() {
        let dep = out[i].clone();
        for (name, s) in &p.services {
            if s.depends_on.get(&dep).is_some_and(|d| d.restart) && !out.contains(name) {
                out.push(name.clone());
            }
        }
        i += 1;
    }
    out
}

/// Whether `c` is an orphan: a container of a service the project no longer defines. Like
/// docker compose, a service left out by profiles is still defined (its containers are not
/// orphans) and one-off containers are not counted.
pub fn is_orphan(p: &Project, c: &ProjectContainer) -> bool {
    !c.oneoff && !p.services.contains_key(&c.service) && !p.disabled.contains_key(&c.service)
}

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
