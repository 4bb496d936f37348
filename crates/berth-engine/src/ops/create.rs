//! `create`: the container's row and directory. Nothing runs yet.

use berth_store::Store;

use crate::config::ContainerConfig;
use crate::rootfs::Bundle;
use crate::state::{self, Container, State};
use crate::{EngineError, Result};

/// A request to create a container. The caller has resolved the image (and merged its config
/// into `config`, see [`resolve_args`]).
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// The container's name; `None` picks a Docker-style random one.
    pub name: Option<String>,
    /// The image as the user named it (shown by `ps`).
    pub image_ref: String,
    /// The image's id (config digest).
    pub image_id: berth_store::Digest,
    /// Everything the container runs with.
    pub config: ContainerConfig,
}

/// Create a container row and its directory. Nothing runs yet. The cgroup path is decided
/// here (under `BERTH_CGROUP_PARENT`) and kept with the row.
///
/// Errors: [`EngineError::InvalidArgument`] for a bad name or `-p` value,
/// [`EngineError::NameInUse`], and store errors.
pub fn create(store: &Store, req: CreateRequest) -> Result<Container> {
    state::migrate(store)?;
    if let Some(n) = &req.name {
        validate_name(n)?;
    }
    berth_net::validate_publish(&req.config.publish)?;
    // What Docker's daemon refuses at create, whichever front end sent it.
    let wd = &req.config.working_dir;
    if !wd.is_empty() && !wd.starts_with('/') {
        return Err(EngineError::InvalidArgument(crate::working_dir_error(wd)));
    }
    berth_net::files::validate_dns(
        &req.config.dns,
        &req.config.dns_search,
        &req.config.dns_options,
    )
    .map_err(EngineError::InvalidArgument)?;
    let id = new_id();
    let name = req
        .name
        .clone()
        .unwrap_or_else(|| crate::names::generate(|n| state::lookup(store, n).is_ok()));
    let mut config = req.config;
    if config.hostname.is_empty() {
        config.hostname = id[..12].to_string();
    }
    // Volume references before the row (a crash leaves only a stale reference, forgotten later).
    crate::volumes::acquire(store, &id, &mut config)?;
    let c = Container {
        id: id.clone(),
        name,
        image_id: req.image_id.clone(),
        image_name: req.image_ref.clone(),
        config,
        state: State::Created,
        created: chrono::Utc::now().timestamp(),
        pid: None,
        monitor_pid: None,
        monitor_start: None,
        started_at: None,
        finished_at: None,
        exit_code: None,
        oom_killed: false,
        restart_count: 0,
        stop_requested: false,
        net: None,
        error: None,
        cgroup_path: Some(crate::paths::cgroup_path_for(
            &crate::paths::cgroup_parent(),
            &id,
        )),
    };
    // Directory first, row second: a crash in between leaves an orphan dir that sweep removes.
    let bundle = Bundle::new(store.root(), &id);
    if let Err(e) = bundle.create().and_then(|()| state::insert(store, &c)) {
        let _ = bundle.remove();
        let _ = crate::volumes::release(store, &id);
        let _ = crate::volumes::remove_anonymous(store, &c.config);
        return Err(e);
    }
    state::event(store, &c, "create", &[]);
    Ok(c)
}

pub(crate) fn validate_name(n: &str) -> Result<()> {
    let ok = !n.is_empty()
        && n.as_bytes()[0].is_ascii_alphanumeric()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(EngineError::InvalidArgument(format!(
            "invalid container name {n:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

fn new_id() -> String {
    let a: u128 = rand::random();
    let b: u128 = rand::random();
    format!("{a:032x}{b:032x}")
}

/// Merge image defaults with user options the way Docker does: returns `(args, entrypoint,
/// cmd)`, where `args` is the final argv.
///
/// Errors: [`EngineError::InvalidArgument`] when neither gives a command.
pub fn resolve_args(
    image: &berth_image::ImageConfig,
    entrypoint_flag: Option<&str>,
    command: &[String],
) -> Result<(Vec<String>, Vec<String>, Vec<String>)> {
    let entrypoint: Vec<String> = match entrypoint_flag {
        Some("") => vec![],
        Some(e) => vec![e.to_string()],
        None => image.entrypoint.clone().unwrap_or_default(),
    };
    let cmd: Vec<String> = if !command.is_empty() {
        command.to_vec()
    } else if entrypoint_flag.is_some() {
        // Docker: --entrypoint resets the image's CMD.
        vec![]
    } else {
        image.cmd.clone().unwrap_or_default()
    };
    let mut args = entrypoint.clone();
    args.extend(cmd.iter().cloned());
    if args.is_empty() {
        return Err(EngineError::InvalidArgument(
            "no command specified: the image has no CMD or ENTRYPOINT; give a command after the image name".into(),
        ));
    }
    Ok((args, entrypoint, cmd))
}
