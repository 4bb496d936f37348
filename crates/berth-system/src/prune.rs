//! `system prune`: stopped containers, unused networks, unused (anonymous) volumes, dangling or
//! unused images and the build cache, in Docker's order, each through its component's own
//! removal call.

use std::collections::{BTreeMap, HashSet};

use berth_engine::state::{self, State};
use berth_image::ImageStore;
use berth_store::{Digest, Store};

use crate::df::labels_match;
use crate::{Result, SystemError};

/// `--filter` values of the prune commands: `until=TIME` (created before; a timestamp, an
/// RFC 3339 time or a duration before now such as `24h`), `label=K[=V]`, `label!=K[=V]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneFilters {
    /// Only objects created before this Unix time.
    pub until: Option<i64>,
    /// Label conditions that must all hold.
    pub labels: Vec<(String, Option<String>)>,
    /// Label conditions none of which may hold.
    pub not_labels: Vec<(String, Option<String>)>,
}

impl PruneFilters {
    /// Parse `KEY=VALUE` filters.
    ///
    /// # Errors
    /// [`SystemError::InvalidFilter`] for another key or a bad time.
    pub fn parse(items: &[String]) -> Result<PruneFilters> {
        let mut f = PruneFilters::default();
        let cond = |s: &str| match s.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (s.to_string(), None),
        };
        for i in items {
            if let Some(v) = i.strip_prefix("until=") {
                let t = berth_engine::logs::parse_time("until", v).map_err(|e| {
                    SystemError::InvalidFilter(format!("invalid filter {i:?}: {e}"))
                })?;
                f.until = Some(t.timestamp());
            } else if let Some(l) = i.strip_prefix("label!=") {
                f.not_labels.push(cond(l));
            } else if let Some(l) = i.strip_prefix("label=") {
                f.labels.push(cond(l));
            } else {
                return Err(SystemError::InvalidFilter(format!(
                    "invalid filter {i:?}: use until=TIME, label=KEY[=VALUE] or label!=KEY[=VALUE]"
                )));
            }
        }
        Ok(f)
    }

    fn matches(&self, created: i64, labels: &BTreeMap<String, String>) -> bool {
        self.until.is_none_or(|u| created < u)
            && labels_match(labels, &self.labels, &self.not_labels)
    }
}

/// What `system prune` removes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneOptions {
    /// `-a`: every image no container uses (not only dangling ones).
    pub all: bool,
    /// `--volumes`: also anonymous volumes no container uses.
    pub volumes: bool,
    /// `--filter`.
    pub filters: PruneFilters,
}

/// What `system prune` removed, in Docker's sections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Ids of removed containers.
    pub containers: Vec<String>,
    /// Names of removed networks.
    pub networks: Vec<String>,
    /// Names of removed volumes.
    pub volumes: Vec<String>,
    /// `untagged: REF` and `deleted: sha256:…` lines of removed images.
    pub images: Vec<String>,
    /// Keys of removed build cache entries.
    pub build_cache: Vec<String>,
    /// Bytes freed in all (writable layers, volume data, layers).
    pub space_reclaimed: u64,
}

/// Remove what `opts` selects: stopped (exited or created) containers, networks no container
/// uses (not the default one), with `volumes` anonymous volumes no container uses, dangling
/// images (with `all`: every image no container uses), then the build cache (entries last
/// used before `until`, or all). Filters apply to containers, networks, volumes (labels) and
/// images. A container or network that cannot be removed (it started meanwhile) is skipped.
///
/// # Errors
/// The first failing component's error; what was removed before stays removed.
pub fn prune(store: &Store, opts: &PruneOptions) -> Result<PruneReport> {
    let f = &opts.filters;
    let mut r = PruneReport::default();
    berth_engine::ops::reconcile(store)?;

    for c in state::all(store)? {
        if !matches!(c.state, State::Exited | State::Created)
            || !f.matches(c.created, &c.config.labels)
        {
            continue;
        }
        let size = berth_engine::rootfs::upper_size(store, &c.id);
        match berth_engine::ops::remove(store, &c, false) {
            Ok(()) => {
                r.space_reclaimed += size;
                r.containers.push(c.id);
            }
            Err(e) => tracing::debug!("prune: container {} kept: {e}", c.name),
        }
    }
    berth_engine::ops::sweep(store)?;

    for n in berth_net::list_networks(store)? {
        if n.is_default()
            || !berth_net::state::endpoints_of_network(store.db(), &n.name)?.is_empty()
        {
            continue;
        }
        let labels = berth_net::state::labels_of(store.db(), &n.name)?;
        if !f.matches(n.created, &labels) {
            continue;
        }
        match berth_net::remove_network(store, &n.name) {
            Ok(_) => r.networks.push(n.name),
            Err(berth_net::NetError::InUse { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }

    if opts.volumes {
        let filter = berth_volume::PruneFilter {
            all: false,
            labels: f.labels.clone(),
            not_labels: f.not_labels.clone(),
        };
        for p in berth_engine::volumes::prune_volumes(store, &filter)? {
            r.space_reclaimed += p.bytes;
            r.volumes.push(p.name);
        }
    }

    {
        let is = ImageStore::open(store)?;
        let _lock = store.lock_exclusive()?;
        // Images the filters leave out are kept like images in use.
        let mut keep: HashSet<Digest> = berth_engine::image_ids_in_use(store)?;
        for img in is.list()? {
            let labels = img.config.labels.clone().unwrap_or_default();
            if !f.matches(img.created, &labels) {
                keep.insert(img.id.clone());
            }
        }
        let (lines, bytes) = is.prune(opts.all, &keep)?;
        r.images = lines
            .into_iter()
            .map(|l| {
                l.replacen("Untagged: ", "untagged: ", 1)
                    .replacen("Deleted: ", "deleted: ", 1)
            })
            .collect();
        r.space_reclaimed += bytes;
    }

    let cutoff = f.until.unwrap_or(i64::MAX);
    let keys: Vec<String> = berth_build::cache::entries(store)?
        .into_iter()
        .filter(|e| e.last_used < cutoff)
        .map(|e| e.key)
        .collect();
    let summary = berth_build::cache::prune_store(store, f.until)?;
    r.space_reclaimed += summary.bytes;
    r.build_cache = keys;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_match() {
        let f = PruneFilters::parse(&[
            "until=1700000000".into(),
            "label=a".into(),
            "label!=b=2".into(),
        ])
        .unwrap();
        assert_eq!(f.until, Some(1_700_000_000));
        let mut l = BTreeMap::new();
        l.insert("a".to_string(), "x".to_string());
        assert!(f.matches(1, &l));
        assert!(!f.matches(1_800_000_000, &l));
        l.insert("b".to_string(), "2".to_string());
        assert!(!f.matches(1, &l));
        assert!(PruneFilters::parse(&["dangling=true".into()]).is_err());
        assert!(PruneFilters::parse(&["until=soon".into()]).is_err());
        let d = PruneFilters::parse(&["until=24h".into()]).unwrap();
        assert!(d.until.unwrap() < chrono::Utc::now().timestamp() - 86_000);
    }

    #[test]
    fn an_empty_store_prunes_nothing() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let r = prune(
            &store,
            &PruneOptions {
                all: true,
                volumes: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(r, PruneReport::default());
    }
}
