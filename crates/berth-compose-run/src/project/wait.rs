//! Waiting for containers to be running and healthy (`up --wait`, `service_healthy`).

use super::*;

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
