//! Stopping and removing containers in reverse dependency order, and `down`.

use super::*;

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
    /// The container (by name) is stopped: recorded, or it was not running.
    Stopped(String),
    /// Stopping it failed (name, message).
    StopFailed(String, String),
    Removed(String),
    Failed(String),
}

/// Stop `cs` level by level (dependents first), every container of a level in its own
/// thread; with `remove`, each thread removes its container as soon as it stopped, while the
/// next level is already stopping. A level waits only until the previous level's containers
/// stopped, or their init processes exited (seen through pidfds: their processes are gone,
/// while their monitors are still releasing network and mounts), as Docker's order means:
/// a dependency gets its stop signal once its dependents no longer run.
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
        StopEvent::StopFailed(_, e) | StopEvent::Failed(e) => errors.push(e),
    };
    for level in levels(p, cs).into_iter().rev() {
        // Containers of this level not yet stopped, with their init's pidfd when running.
        let mut pending: BTreeMap<String, Option<std::os::fd::OwnedFd>> = BTreeMap::new();
        for pc in level {
            let active = pc.container.state.is_active();
            if remove.is_none() && !active {
                continue;
            }
            let init = pc
                .container
                .pid
                .filter(|_| active)
                .and_then(|pid| berth_engine::pidfd::open_container(pid, &pc.container.id));
            pending.insert(pc.container.name.clone(), init);
            let root = root.clone();
            let c = pc.container.clone();
            let tx = tx.clone();
            handles.push(std::thread::spawn(move || {
                let st = match Store::open(&root) {
                    Ok(st) => st,
                    Err(e) => {
                        let _ = tx.send(StopEvent::StopFailed(
                            c.name.clone(),
                            format!("{}: {e}", c.name),
                        ));
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
                            let _ = tx.send(StopEvent::StopFailed(
                                c.name.clone(),
                                format!("{}: {e}", c.name),
                            ));
                        }
                    }
                } else {
                    // Counted as stopped for the level's wait; nothing to report.
                    let _ = tx.send(StopEvent::StopFailed(c.name.clone(), String::new()));
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
        // The next level stops once this one has: removals (and the monitors' releases)
        // may still run.
        while !pending.is_empty() {
            let ev = match rx.recv_timeout(std::time::Duration::from_millis(5)) {
                Ok(ev) => Some(ev),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            };
            if let Some(ev) = ev {
                if let StopEvent::Stopped(n) | StopEvent::StopFailed(n, _) = &ev {
                    pending.remove(n);
                }
                if !matches!(&ev, StopEvent::StopFailed(_, e) if e.is_empty()) {
                    handle(ev, &mut errors);
                }
            }
            pending.retain(|_, init| {
                init.as_ref().is_none_or(|fd| {
                    !berth_engine::pidfd::wait_exit(fd, std::time::Duration::ZERO).unwrap_or(false)
                })
            });
        }
    }
    drop(tx);
    for ev in rx {
        if !matches!(&ev, StopEvent::StopFailed(_, e) if e.is_empty()) {
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
pub(super) fn levels(p: Option<&Project>, cs: &[ProjectContainer]) -> Vec<Vec<ProjectContainer>> {
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
        .filter(|c| {
            c.oneoff || p.services.contains_key(&c.service) || (o.remove_orphans && is_orphan(p, c))
        })
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
    if o.volumes {
        // Removals overlap: an anonymous volume another container still used (volumes_from)
        // when its owner went is unused now that every container is gone.
        for pc in &cs {
            let _ = berth_engine::volumes::remove_anonymous(store, &pc.container.config);
        }
    }
    if !list(store, &p.name)?
        .iter()
        .any(|c| !c.oneoff && !p.services.contains_key(&c.service))
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
    // Inline configs no container uses any more (best effort: a leftover file is harmless).
    let _ = convert::content::sweep(store);
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
