//! `commit`: a container's filesystem changes (its overlay upper directory) as a new image on
//! top of the container's image, with the container's configuration and Dockerfile-style
//! `--change`s.

use berth_image::{Compression, ImageConfig, ImageStore, Reference};
use berth_store::{Digest, Store};
use serde_json::{json, Map, Value};

use crate::{BuildError, Result};

/// Options of a commit.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// Tag for the new image.
    pub reference: Option<String>,
    /// Dockerfile instructions applied to the config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
    /// USER, VOLUME, WORKDIR, STOPSIGNAL).
    pub changes: Vec<String>,
    /// Commit message (the history entry's comment).
    pub message: Option<String>,
    /// Author (`author` of the image config).
    pub author: Option<String>,
}

/// Commit container `name_or_id` and return the new image id. The container may be running;
/// its changes are copied without pausing it (files being written at that moment may be
/// caught half-written).
pub fn commit(store: &Store, name_or_id: &str, opts: &CommitOptions) -> Result<Digest> {
    let tags = opts
        .reference
        .as_deref()
        .map(Reference::parse)
        .transpose()
        .map_err(|e| BuildError::Other(format!("invalid reference: {e}")))?;
    let c = berth_engine::state::lookup(store, name_or_id)?;
    let images = ImageStore::open(store)?;
    let base = images.get(&c.image_id)?;
    let _lock = store.lock_shared()?;
    // The image config: the base image's, with the container's settings and the changes.
    let raw: Value = serde_json::from_slice(&base.raw_config).unwrap_or(Value::Null);
    let mut cfg: Map<String, Value> = raw
        .get("config")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let cc = &c.config;
    let mut ic: ImageConfig =
        serde_json::from_value(Value::Object(cfg.clone())).unwrap_or_default();
    ic.env = Some(cc.env.clone());
    ic.cmd = (!cc.cmd.is_empty()).then(|| cc.cmd.clone());
    ic.entrypoint = (!cc.entrypoint.is_empty()).then(|| cc.entrypoint.clone());
    ic.working_dir = (!cc.working_dir.is_empty()).then(|| cc.working_dir.clone());
    ic.user = (!cc.user.is_empty()).then(|| cc.user.clone());
    if !cc.labels.is_empty() {
        ic.labels = Some(cc.labels.clone());
    }
    berth_image::import::apply_changes(&mut ic, &opts.changes)?;
    if let Value::Object(m) =
        serde_json::to_value(&ic).map_err(|e| BuildError::Other(e.to_string()))?
    {
        for (k, v) in m {
            if v.is_null() {
                cfg.remove(&k);
            } else {
                cfg.insert(k, v);
            }
        }
    }
    // The layer: a copy of the upper directory (the container keeps running on the original).
    let upper = berth_engine::rootfs::Bundle::new(store.root(), &c.id).upper();
    let tmp = store.tmp_path("commit");
    let res = berth_image::copy_layer_dir(&upper, &tmp)
        .and_then(|()| berth_image::ingest_dir(store.root(), &tmp, Compression::Gzip));
    if tmp.exists() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    let layer = res?;
    images.record_layer(&layer)?;
    let mut layers = base.layers.clone();
    layers.push(layer);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut history = raw
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut h = json!({"created": now, "created_by": cc.args.join(" ")});
    if let Some(m) = &opts.message {
        h["comment"] = json!(m);
    }
    if let Some(a) = &opts.author {
        h["author"] = json!(a);
    }
    history.push(h);
    let mut doc = json!({
        "architecture": base.architecture(),
        "os": base.os(),
        "created": now,
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>()},
        "history": history,
        "container": c.id,
    });
    if let Some(a) = &opts.author {
        doc["author"] = json!(a);
    }
    let bytes = serde_json::to_vec(&doc).map_err(|e| BuildError::Other(e.to_string()))?;
    let tags: Vec<Reference> = tags.into_iter().collect();
    let id = images.commit_image(&bytes, &layers, None, &tags, None)?;
    // Docker's events for `commit`: the image `tag`, then the container's `commit` with the
    // comment and the new image's id and reference.
    let refs = record_tag_events(store, &id, &tags);
    let image_ref = refs.first().cloned().unwrap_or_default();
    berth_engine::state::event(
        store,
        &c,
        "commit",
        &[
            ("comment", opts.message.as_deref().unwrap_or_default()),
            ("imageID", id.as_str()),
            ("imageRef", &image_ref),
        ],
    );
    Ok(id)
}

/// Record Docker's image `tag` event for each of `tags` now naming image `id` (actor: the id;
/// `name`: the familiar reference, `:latest` added when no tag was given); returns those
/// names.
pub(crate) fn record_tag_events(store: &Store, id: &Digest, tags: &[Reference]) -> Vec<String> {
    let mut names = Vec::new();
    let image = berth_image::ImageStore::open(store)
        .and_then(|is| is.get(id))
        .ok();
    for t in tags {
        let t = if t.tag().is_none() && t.digest().is_none() {
            t.with_tag(berth_image::reference::DEFAULT_TAG)
        } else {
            t.clone()
        };
        let name = t.familiar();
        berth_image::events::record(store, "tag", id.as_str(), &name, image.as_ref());
        names.push(name);
    }
    names
}
