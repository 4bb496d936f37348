//! A container's mounts beyond its root filesystem, from `-v`, `--mount`, `--volumes-from` and
//! the image's `VOLUME` list: bind mounts, tmpfs and volumes (see the `berth-volume` crate).
//!
//! Life of a volume mount: [`apply`] turns flags into the container's configuration (anonymous
//! volumes still unnamed); [`acquire`] (at create, before the container row exists) creates
//! missing volumes, names anonymous ones and records that the container uses them; [`prepare`]
//! (at every start, with the root mounted) mounts them, copies image content into empty ones
//! and returns the bind mounts for the runtime spec; [`release`] (after the row is gone) drops
//! the references, and [`remove_anonymous`] deletes the container's anonymous volumes (`rm -v`,
//! `--rm`).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use berth_store::Store;
use berth_volume::{CreateVolume, PruneFilter, Pruned, VolumeError, VolumeStore};
use serde::{Deserialize, Serialize};

use crate::config::{Bind, ContainerConfig, Tmpfs};
use crate::{state, EngineError, Result};

/// A volume mounted into a container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VolumeMount {
    /// The volume's name (assigned by [`acquire`] for anonymous volumes; empty before).
    pub name: String,
    /// Absolute path inside the container.
    pub destination: String,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
    /// Do not copy the image's content into the volume when it is empty.
    #[serde(default)]
    pub nocopy: bool,
    /// Created for this container (`-v /path`, image `VOLUME`); removed by `rm -v` and `--rm`.
    #[serde(default)]
    pub anonymous: bool,
    /// Driver options for creating the volume when it does not exist (`--mount volume-opt=`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_options: BTreeMap<String, String>,
    /// The `-v` mode string as given (`ro`, `z`, …), shown by `inspect`.
    #[serde(default)]
    pub mode: String,
}

/// One parsed `-v` or `--mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountRequest {
    /// A host path.
    Bind(Bind),
    /// A named or anonymous volume.
    Volume(VolumeMount),
    /// A tmpfs.
    Tmpfs(Tmpfs),
}

impl MountRequest {
    fn destination(&self) -> &str {
        match self {
            MountRequest::Bind(b) => &b.destination,
            MountRequest::Volume(v) => &v.destination,
            MountRequest::Tmpfs(t) => &t.destination,
        }
    }
}

fn invalid(msg: String) -> EngineError {
    EngineError::InvalidArgument(msg)
}

fn clean_destination(flag: &str, d: &str) -> Result<String> {
    if !d.starts_with('/') {
        return Err(invalid(format!(
            "invalid {flag}: the container path {d:?} must be absolute"
        )));
    }
    if d.split('/').any(|c| c == "..") {
        return Err(invalid(format!(
            "invalid {flag}: the container path {d:?} must not contain \"..\""
        )));
    }
    let t = d.trim_end_matches('/');
    Ok(if t.is_empty() {
        "/".into()
    } else {
        t.to_string()
    })
}

const PROPAGATIONS: &[&str] = &[
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// Parse `-v`: `/host:/ctr[:opts]` (bind), `NAME:/ctr[:opts]` (named volume), `/ctr` (anonymous
/// volume). Options, comma separated: `ro`, `rw`, `nocopy`, `z`, `Z` (SELinux labels: accepted,
/// nothing to relabel without SELinux) and a bind propagation (`rprivate`, `shared`, …).
///
/// Errors: [`EngineError::InvalidArgument`] naming the flag for a wrong number of fields, a
/// destination that is not absolute or contains `..`, a source that is neither an absolute host
/// path nor a volume name, an unknown option, or an option that does not fit the source
/// (`nocopy` on a host path, a propagation on a volume).
pub fn parse_volume_flag(s: &str) -> Result<MountRequest> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [dst] => ("", *dst, ""),
        [src, dst] => (*src, *dst, ""),
        [src, dst, opts] => (*src, *dst, *opts),
        _ => {
            return Err(invalid(format!(
                "invalid volume {s:?}: use SOURCE:DESTINATION[:OPTIONS] or a container path for an anonymous volume"
            )))
        }
    };
    let dst = clean_destination(&format!("volume {s:?}"), dst)?;
    let mut read_only = false;
    let mut nocopy = false;
    let mut propagation = None;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "nocopy" => nocopy = true,
            "z" | "Z" => {}
            p if PROPAGATIONS.contains(&p) => propagation = Some(p.to_string()),
            other => {
                return Err(invalid(format!(
                    "invalid volume {s:?}: unknown option {other:?} (use ro, rw, nocopy, z, Z or a propagation such as rshared)"
                )))
            }
        }
    }
    if src.starts_with('/') {
        if nocopy {
            return Err(invalid(format!(
                "invalid volume {s:?}: nocopy applies to volumes, not to host paths"
            )));
        }
        return Ok(MountRequest::Bind(Bind {
            source: src.to_string(),
            destination: dst,
            read_only,
            propagation,
        }));
    }
    if propagation.is_some() {
        return Err(invalid(format!(
            "invalid volume {s:?}: a propagation mode applies to host paths, not to volumes"
        )));
    }
    if !src.is_empty() && !berth_volume::valid_name(src) {
        return Err(invalid(format!(
            "invalid volume {s:?}: {src:?} is neither an absolute host path nor a volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)"
        )));
    }
    Ok(MountRequest::Volume(VolumeMount {
        name: src.to_string(),
        destination: dst,
        read_only,
        nocopy,
        anonymous: src.is_empty(),
        driver_options: BTreeMap::new(),
        mode: opts.to_string(),
    }))
}

fn parse_bool(flag: &str, k: &str, v: Option<&str>) -> Result<bool> {
    match v {
        None | Some("1") | Some("true") => Ok(true),
        Some("0") | Some("false") => Ok(false),
        Some(x) => Err(invalid(format!(
            "invalid {flag}: {k}={x:?} must be true or false"
        ))),
    }
}

/// Parse `--mount type=bind|volume|tmpfs,src=…,dst=…,…` (Docker's keys: `source`/`src`,
/// `destination`/`dst`/`target`, `readonly`/`ro`, `bind-propagation`, `volume-nocopy`,
/// `volume-opt`, `volume-driver`, `tmpfs-size` (bytes or with a unit), `tmpfs-mode` (octal),
/// `consistency` (ignored)).
///
/// Errors: [`EngineError::InvalidArgument`] naming the flag for an unknown type or key, a key
/// without a value, a missing or relative destination, keys of another type, a bind source that
/// is not absolute or does not exist, an invalid volume name, a volume driver other than
/// `local`, or a bad propagation, mode or boolean.
pub fn parse_mount_flag(s: &str) -> Result<MountRequest> {
    let flag = format!("--mount {s:?}");
    let mut ty = "volume".to_string();
    let mut src = String::new();
    let mut dst = None;
    let mut read_only = false;
    let mut propagation = None;
    let mut nocopy = false;
    let mut vol_opts = BTreeMap::new();
    let mut tmpfs_opts = Vec::new();
    for field in s.split(',').filter(|f| !f.is_empty()) {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v)),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let need = |v: Option<&str>| -> Result<String> {
            v.map(str::to_string)
                .ok_or_else(|| invalid(format!("invalid {flag}: {k} needs a value ({k}=…)")))
        };
        match k.as_str() {
            "type" => ty = need(v)?,
            "source" | "src" => src = need(v)?,
            "destination" | "dst" | "target" => dst = Some(need(v)?),
            "readonly" | "ro" => read_only = parse_bool(&flag, &k, v)?,
            "bind-propagation" => {
                let p = need(v)?;
                if !PROPAGATIONS.contains(&p.as_str()) {
                    return Err(invalid(format!(
                        "invalid {flag}: bind-propagation {p:?} must be one of {}",
                        PROPAGATIONS.join(", ")
                    )));
                }
                propagation = Some(p);
            }
            "bind-nonrecursive" | "consistency" => {}
            "volume-nocopy" => nocopy = parse_bool(&flag, &k, v)?,
            "volume-driver" => {
                let d = need(v)?;
                if d != "local" {
                    return Err(invalid(format!(
                        "invalid {flag}: volume driver {d:?} is not available (only local)"
                    )));
                }
            }
            "volume-opt" => {
                let o = need(v)?;
                // `volume-opt=o=size=1m` arrives as "o=size=1m".
                let (ok, ov) = o.split_once('=').ok_or_else(|| {
                    invalid(format!("invalid {flag}: volume-opt needs KEY=VALUE"))
                })?;
                vol_opts.insert(ok.to_string(), ov.to_string());
            }
            "tmpfs-size" => {
                let b = crate::config::parse_bytes(&need(v)?)?;
                tmpfs_opts.push(format!("size={b}"));
            }
            "tmpfs-mode" => {
                let m = need(v)?;
                u32::from_str_radix(m.trim_start_matches("0o"), 8).map_err(|_| {
                    invalid(format!(
                        "invalid {flag}: tmpfs-mode {m:?} must be octal (e.g. 1777)"
                    ))
                })?;
                tmpfs_opts.push(format!("mode={}", m.trim_start_matches("0o")));
            }
            other => return Err(invalid(format!("invalid {flag}: unknown key {other:?}"))),
        }
    }
    let dst = dst.ok_or_else(|| {
        invalid(format!(
            "invalid {flag}: a destination is required (dst=/path or target=/path)"
        ))
    })?;
    let dst = clean_destination(&flag, &dst)?;
    let volume_only = nocopy || !vol_opts.is_empty();
    match ty.as_str() {
        "bind" => {
            if volume_only || !tmpfs_opts.is_empty() {
                return Err(invalid(format!(
                    "invalid {flag}: volume-* and tmpfs-* keys do not apply to type=bind"
                )));
            }
            if !src.starts_with('/') {
                return Err(invalid(format!(
                    "invalid {flag}: type=bind needs an absolute host path as source"
                )));
            }
            if !Path::new(&src).exists() {
                // Unlike -v, --mount does not create a missing bind source (Docker's rule).
                return Err(invalid(format!(
                    "invalid {flag}: bind source path does not exist: {src}"
                )));
            }
            Ok(MountRequest::Bind(Bind {
                source: src,
                destination: dst,
                read_only,
                propagation,
            }))
        }
        "volume" => {
            if propagation.is_some() || !tmpfs_opts.is_empty() {
                return Err(invalid(format!(
                    "invalid {flag}: bind-* and tmpfs-* keys do not apply to type=volume"
                )));
            }
            if !src.is_empty() && !berth_volume::valid_name(&src) {
                return Err(invalid(format!(
                    "invalid {flag}: {src:?} is not a valid volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)"
                )));
            }
            Ok(MountRequest::Volume(VolumeMount {
                anonymous: src.is_empty(),
                name: src,
                destination: dst,
                read_only,
                nocopy,
                driver_options: vol_opts,
                mode: String::new(),
            }))
        }
        "tmpfs" => {
            if !src.is_empty() || propagation.is_some() || volume_only {
                return Err(invalid(format!(
                    "invalid {flag}: type=tmpfs takes no source and no bind-*/volume-* keys"
                )));
            }
            if read_only {
                tmpfs_opts.push("ro".into());
            }
            Ok(MountRequest::Tmpfs(Tmpfs {
                destination: dst,
                options: tmpfs_opts,
            }))
        }
        other => Err(invalid(format!(
            "invalid {flag}: type {other:?} must be bind, volume or tmpfs"
        ))),
    }
}

/// The mount flags of `run`/`create`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MountFlags<'a> {
    /// `-v` values.
    pub volume: &'a [String],
    /// `--mount` values.
    pub mount: &'a [String],
    /// `--volumes-from CONTAINER[:ro|rw]` values.
    pub volumes_from: &'a [String],
}

/// Add the mounts of `flags` and the image's `VOLUME` paths to `cfg` (`binds`, `tmpfs`,
/// `volumes`). Errors on bad flags, a destination given twice, or an unknown `--volumes-from`
/// container.
pub fn apply(
    store: &Store,
    cfg: &mut ContainerConfig,
    flags: &MountFlags<'_>,
    image_volumes: &[String],
) -> Result<()> {
    let mut reqs: Vec<MountRequest> = Vec::new();
    for v in flags.volume {
        reqs.push(parse_volume_flag(v)?);
    }
    for m in flags.mount {
        reqs.push(parse_mount_flag(m)?);
    }
    let mut seen: HashSet<String> = cfg
        .tmpfs
        .iter()
        .map(|t| t.destination.clone())
        .chain(cfg.binds.iter().map(|b| b.destination.clone()))
        .chain(cfg.volumes.iter().map(|v| v.destination.clone()))
        .collect();
    for r in &reqs {
        if !seen.insert(r.destination().to_string()) {
            return Err(invalid(format!(
                "duplicate mount point: {} is mounted twice; give each destination once",
                r.destination()
            )));
        }
    }
    // --volumes-from: the other container's binds and volumes, unless given here.
    for spec in flags.volumes_from {
        let (name, mode) = match spec.rsplit_once(':') {
            Some((n, m @ ("ro" | "rw"))) => (n, Some(m)),
            _ => (spec.as_str(), None),
        };
        let other = state::lookup(store, name)?;
        for b in &other.config.binds {
            if seen.insert(b.destination.clone()) {
                let mut b = b.clone();
                if let Some(m) = mode {
                    b.read_only = m == "ro";
                }
                cfg.binds.push(b);
            }
        }
        for v in &other.config.volumes {
            if seen.insert(v.destination.clone()) {
                let mut v = v.clone();
                if let Some(m) = mode {
                    v.read_only = m == "ro";
                }
                // Shared, not owned: `rm -v` of this container must not delete it.
                v.anonymous = false;
                cfg.volumes.push(v);
            }
        }
    }
    for r in reqs {
        match r {
            MountRequest::Bind(b) => cfg.binds.push(b),
            MountRequest::Volume(v) => cfg.volumes.push(v),
            MountRequest::Tmpfs(t) => cfg.tmpfs.push(t),
        }
    }
    for p in image_volumes {
        let Ok(dst) = clean_destination("image VOLUME", p) else {
            tracing::warn!("ignoring the image's VOLUME {p:?}: not an absolute path");
            continue;
        };
        if seen.insert(dst.clone()) {
            cfg.volumes.push(VolumeMount {
                name: String::new(),
                destination: dst,
                read_only: false,
                nocopy: false,
                anonymous: true,
                driver_options: BTreeMap::new(),
                mode: String::new(),
            });
        }
    }
    Ok(())
}

fn vol_err(e: VolumeError) -> EngineError {
    EngineError::Volume(e)
}

/// Create the volumes of a new container `id` that do not exist yet (naming its anonymous
/// ones) and record that it uses them. Called before the container row is inserted; on error
/// nothing is left referenced and the anonymous volumes made so far are removed.
pub fn acquire(store: &Store, id: &str, cfg: &mut ContainerConfig) -> Result<()> {
    if cfg.volumes.is_empty() {
        return Ok(());
    }
    let vs = VolumeStore::open(store).map_err(vol_err)?;
    for i in 0..cfg.volumes.len() {
        let v = &cfg.volumes[i];
        let req = CreateVolume {
            name: (!v.name.is_empty()).then(|| v.name.clone()),
            driver: None,
            options: v.driver_options.clone(),
            labels: BTreeMap::new(),
        };
        match vs.acquire(&req, id) {
            Ok((vol, _)) => cfg.volumes[i].name = vol.name,
            Err(e) => {
                let _ = vs.release(id);
                let _ = remove_anonymous(store, cfg);
                return Err(vol_err(e));
            }
        }
    }
    Ok(())
}

/// Make container `c`'s volumes ready for a start with its root filesystem mounted at
/// `rootfs`: recreate a missing volume, mount driver volumes, copy the image's content into
/// empty ones (unless `nocopy`). Returns every bind mount for the runtime spec (the
/// container's binds and its volumes), parents before children.
///
/// Errors: [`EngineError::Volume`] when a volume cannot be found, created, referenced,
/// mounted or filled from the image.
pub fn prepare(store: &Store, id: &str, cfg: &ContainerConfig, rootfs: &Path) -> Result<Vec<Bind>> {
    let mut binds = cfg.binds.clone();
    for (m, data) in ready_volumes(store, id, cfg)? {
        if !m.nocopy && dir_is_empty(&data) {
            berth_volume::copy_up(rootfs, &m.destination, &data).map_err(vol_err)?;
        }
        binds.push(Bind {
            source: data.to_string_lossy().into_owned(),
            destination: m.destination.clone(),
            read_only: m.read_only,
            propagation: None,
        });
    }
    // Parents before children (Docker sorts mounts by depth), otherwise stable.
    binds.sort_by_key(|b| depth(&b.destination));
    Ok(binds)
}

/// How many components a container path has (`/` 0, `/a/b` 2): mounts go parents first.
fn depth(p: &str) -> usize {
    p.split('/').filter(|c| !c.is_empty()).count()
}

fn dir_is_empty(p: &Path) -> bool {
    std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_none())
}

/// Container `id`'s volumes with their data directories, each found (or recreated when it
/// went missing, and referenced) and mounted when its driver options ask for a mount.
fn ready_volumes<'a>(
    store: &Store,
    id: &str,
    cfg: &'a ContainerConfig,
) -> Result<Vec<(&'a VolumeMount, std::path::PathBuf)>> {
    if cfg.volumes.is_empty() {
        return Ok(Vec::new());
    }
    let vs = VolumeStore::open(store).map_err(vol_err)?;
    let mut out = Vec::with_capacity(cfg.volumes.len());
    for m in &cfg.volumes {
        let vol = match vs.find(&m.name).map_err(vol_err)? {
            Some(v) => {
                vs.add_ref(&m.name, id).map_err(vol_err)?;
                v
            }
            None => {
                let req = CreateVolume {
                    name: Some(m.name.clone()),
                    options: m.driver_options.clone(),
                    ..Default::default()
                };
                vs.acquire(&req, id).map_err(vol_err)?.0
            }
        };
        out.push((m, vs.mount(&vol).map_err(vol_err)?));
    }
    Ok(out)
}

/// A volume or bind mount of a stopped container as `cp` mounts it over the container's root
/// filesystem (see [`copy_mounts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyMount {
    /// What is mounted: the host path of a bind, the data directory of a volume.
    pub source: std::path::PathBuf,
    /// Absolute path inside the container.
    pub destination: String,
    /// Mounted read-only (a copy into it is refused).
    pub read_only: bool,
    /// A volume that gets the image's content at `destination` while it is empty (not
    /// `nocopy`), as Docker fills it when the container is created.
    pub copy_up: bool,
}

/// The binds and volumes of a container that is not running, parents before children, ready
/// to be mounted for a copy as Docker's daemon mounts them for `docker cp`: volumes found
/// (recreated when missing) and mounted when their driver asks for it, exactly as a start
/// would (such a driver mount stays, as after a start). tmpfs mounts are left out: they exist
/// only while the container runs (Docker's cp skips them as well).
///
/// Errors: [`EngineError::Volume`] when a volume cannot be found, created, referenced or
/// mounted.
pub fn copy_mounts(store: &Store, id: &str, cfg: &ContainerConfig) -> Result<Vec<CopyMount>> {
    let mut out: Vec<CopyMount> = cfg
        .binds
        .iter()
        .map(|b| CopyMount {
            source: b.source.clone().into(),
            destination: b.destination.clone(),
            read_only: b.read_only,
            copy_up: false,
        })
        .collect();
    for (m, data) in ready_volumes(store, id, cfg)? {
        out.push(CopyMount {
            source: data,
            destination: m.destination.clone(),
            read_only: m.read_only,
            copy_up: !m.nocopy,
        });
    }
    out.sort_by_key(|m| depth(&m.destination));
    Ok(out)
}

/// The bind or volume of `cfg` that holds the container path `path` (absolute, free of
/// symlinks): the one with the longest destination that is `path` or one of its parents, as
/// `(destination, read_only)`; `None` for a path of the root filesystem.
pub fn mount_holding<'a>(cfg: &'a ContainerConfig, path: &str) -> Option<(&'a str, bool)> {
    let under = |d: &str| {
        let d = d.trim_end_matches('/');
        d.is_empty() || path == d || path.strip_prefix(d).is_some_and(|r| r.starts_with('/'))
    };
    cfg.binds
        .iter()
        .map(|b| (b.destination.as_str(), b.read_only))
        .chain(
            cfg.volumes
                .iter()
                .map(|v| (v.destination.as_str(), v.read_only)),
        )
        .filter(|(d, _)| under(d))
        .max_by_key(|(d, _)| depth(d))
}

/// Forget that container `id` uses any volume (after its row is gone).
///
/// Errors: [`EngineError::Volume`] when the references cannot be updated.
pub fn release(store: &Store, id: &str) -> Result<()> {
    VolumeStore::open(store)
        .and_then(|vs| vs.release(id))
        .map_err(vol_err)
}

/// Remove the anonymous volumes of a removed container that nothing else uses.
///
/// Errors: [`EngineError::Volume`] when a volume cannot be removed (one still in use is kept,
/// not an error).
pub fn remove_anonymous(store: &Store, cfg: &ContainerConfig) -> Result<()> {
    let vs = VolumeStore::open(store).map_err(vol_err)?;
    for v in cfg
        .volumes
        .iter()
        .filter(|v| v.anonymous && !v.name.is_empty())
    {
        match vs.remove(&v.name, true) {
            Ok(()) | Err(VolumeError::InUse { .. }) => {}
            Err(e) => return Err(vol_err(e)),
        }
    }
    Ok(())
}

/// Drop volume references of containers that no longer exist (crash between reference and
/// row, or after the row's removal).
fn forget_stale(store: &Store, vs: &VolumeStore<'_>) -> Result<()> {
    let live: HashSet<String> = state::all(store)?.into_iter().map(|c| c.id).collect();
    vs.forget_refs_except(&live, 60).map_err(vol_err)
}

/// `volume rm`: remove volume `name` unless a container uses it; with `force`, a missing
/// volume is not an error.
pub fn remove_volume(store: &Store, name: &str, force: bool) -> Result<(), VolumeError> {
    let vs = VolumeStore::open(store)?;
    let _ = forget_stale(store, &vs);
    vs.remove(name, force)
}

/// `volume prune`: remove unused volumes matching `filter`.
///
/// Errors: [`VolumeError`] from the volume store.
pub fn prune_volumes(store: &Store, filter: &PruneFilter) -> Result<Vec<Pruned>, VolumeError> {
    let vs = VolumeStore::open(store)?;
    let _ = forget_stale(store, &vs);
    vs.prune(filter)
}

/// The `Mounts` list of `inspect` for container `c` (Docker's shape).
pub fn mounts_json(store: &Store, cfg: &ContainerConfig) -> serde_json::Value {
    let mut out = Vec::new();
    for b in &cfg.binds {
        out.push(serde_json::json!({
            "Type": "bind",
            "Source": b.source,
            "Destination": b.destination,
            "Mode": if b.read_only { "ro" } else { "" },
            "RW": !b.read_only,
            "Propagation": b.propagation.clone().unwrap_or_else(|| "rprivate".into()),
        }));
    }
    let data = |n: &str| store.root().join("volumes").join(n).join("_data");
    for v in &cfg.volumes {
        out.push(serde_json::json!({
            "Type": "volume",
            "Name": v.name,
            "Source": data(&v.name),
            "Destination": v.destination,
            "Driver": "local",
            "Mode": v.mode,
            "RW": !v.read_only,
            "Propagation": "",
        }));
    }
    for t in &cfg.tmpfs {
        out.push(serde_json::json!({
            "Type": "tmpfs",
            "Source": "",
            "Destination": t.destination,
            "Mode": t.options.join(","),
            "RW": !t.options.iter().any(|o| o == "ro"),
            "Propagation": "",
        }));
    }
    serde_json::Value::Array(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_mount_destination_holds_a_path() {
        let mut cfg = crate::testutil::config();
        for s in [
            "/srv:/data:ro",
            "vol:/data/rw",
            "/h:/b/",
            "/f:/etc/app.conf:ro",
        ] {
            match parse_volume_flag(s).unwrap() {
                MountRequest::Bind(b) => cfg.binds.push(b),
                MountRequest::Volume(v) => cfg.volumes.push(v),
                MountRequest::Tmpfs(t) => cfg.tmpfs.push(t),
            }
        }
        cfg.tmpfs.push(crate::config::parse_tmpfs("/t:ro").unwrap());
        let at = |p: &str| mount_holding(&cfg, p);
        assert_eq!(at("/data"), Some(("/data", true)));
        assert_eq!(at("/data/x"), Some(("/data", true)));
        assert_eq!(at("/data/rw"), Some(("/data/rw", false)));
        assert_eq!(at("/data/rw/deep/er"), Some(("/data/rw", false)));
        assert_eq!(at("/data/rwx"), Some(("/data", true)));
        assert_eq!(at("/b/y"), Some(("/b", false)));
        assert_eq!(at("/bb"), None);
        assert_eq!(at("/etc/app.conf"), Some(("/etc/app.conf", true)));
        assert_eq!(at("/etc/hosts"), None);
        // tmpfs mounts do not exist while a container is stopped, and Docker's check skips
        // them: a path under one is the root filesystem's.
        assert_eq!(at("/t/x"), None);
        assert_eq!(at("/"), None);
    }

    #[test]
    fn volume_flags() {
        match parse_volume_flag("data:/var/lib/x:ro,nocopy").unwrap() {
            MountRequest::Volume(v) => {
                assert_eq!(v.name, "data");
                assert!(v.read_only && v.nocopy && !v.anonymous);
            }
            o => panic!("{o:?}"),
        }
        match parse_volume_flag("/srv:/srv:rshared,Z").unwrap() {
            MountRequest::Bind(b) => assert_eq!(b.propagation.as_deref(), Some("rshared")),
            o => panic!("{o:?}"),
        }
        match parse_volume_flag("/cache/").unwrap() {
            MountRequest::Volume(v) => {
                assert!(v.anonymous && v.name.is_empty());
                assert_eq!(v.destination, "/cache");
            }
            o => panic!("{o:?}"),
        }
        assert!(parse_volume_flag("rel/x:/a").is_err());
        assert!(parse_volume_flag("data:rel").is_err());
        assert!(parse_volume_flag("data:/a:bogus").is_err());
        assert!(parse_volume_flag("data:/a/../b").is_err());
        assert!(parse_volume_flag("/h:/a:nocopy").is_err());
    }

    #[test]
    fn mount_flags() {
        match parse_mount_flag("type=volume,src=dd,dst=/data,readonly,volume-nocopy=true").unwrap()
        {
            MountRequest::Volume(v) => assert!(v.read_only && v.nocopy && v.name == "dd"),
            o => panic!("{o:?}"),
        }
        match parse_mount_flag("type=tmpfs,target=/run,tmpfs-size=1m,tmpfs-mode=1770").unwrap() {
            MountRequest::Tmpfs(t) => {
                assert_eq!(
                    t.options,
                    vec!["size=1048576".to_string(), "mode=1770".into()]
                )
            }
            o => panic!("{o:?}"),
        }
        match parse_mount_flag("type=bind,source=/tmp,target=/t,bind-propagation=rslave").unwrap() {
            MountRequest::Bind(b) => assert_eq!(b.propagation.as_deref(), Some("rslave")),
            o => panic!("{o:?}"),
        }
        assert!(parse_mount_flag("type=bind,source=/nonexistent-berth,target=/t").is_err());
        assert!(parse_mount_flag("type=volume,src=d").is_err());
        assert!(parse_mount_flag("type=tmpfs,src=x,dst=/x").is_err());
        assert!(parse_mount_flag("type=nfs,dst=/x").is_err());
        assert!(parse_mount_flag("type=volume,dst=/x,colour=red").is_err());
        assert!(parse_mount_flag("type=bind,src=/tmp,dst=/x,volume-nocopy").is_err());
    }
}
