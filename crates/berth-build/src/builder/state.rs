//! A stage's state while it is built: layers, image config, history and cache key; writing the result.

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_image::{layer_dir, Image, ImageStore, Layer, Reference};
use berth_store::{Digest, Store};
use serde_json::{json, Map, Value};

use crate::cache;
use crate::{BuildError, Result};

/// The state of a stage being built.
#[derive(Debug, Clone)]
pub(super) struct State {
    pub(super) layers: Vec<Layer>,
    /// The image config's `config` object.
    pub(super) config: Map<String, Value>,
    pub(super) history: Vec<Value>,
    /// Cache key of everything so far.
    pub(super) key: String,
    pub(super) architecture: String,
    pub(super) author: Option<String>,
    /// RFC 3339 time of the newest layer (history times; the image's `created`).
    pub(super) created: String,
    /// ARGs in scope with their values.
    pub(super) args: BTreeMap<String, String>,
    /// Whether CMD was set in this stage (ENTRYPOINT resets an inherited CMD only).
    pub(super) cmd_set: bool,
}

pub(super) fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl State {
    pub(super) fn env(&self) -> Vec<(String, String)> {
        self.config
            .get("Env")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|e| match e.split_once('=') {
                        Some((k, v)) => (k.to_string(), v.to_string()),
                        None => (e.to_string(), String::new()),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(super) fn set_env(&mut self, k: &str, v: &str) {
        let mut env = self.env();
        match env.iter_mut().find(|(ek, _)| ek == k) {
            Some(e) => e.1 = v.to_string(),
            None => env.push((k.to_string(), v.to_string())),
        }
        self.config.insert(
            "Env".into(),
            json!(env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()),
        );
    }

    /// Variables for expansion: ENV wins over ARG (as in Docker).
    pub(super) fn lookup(&self, name: &str) -> Option<String> {
        self.env()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
            .or_else(|| self.args.get(name).cloned())
    }

    pub(super) fn str_field(&self, k: &str) -> String {
        self.config
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }

    pub(super) fn shell(&self) -> Vec<String> {
        self.config
            .get("Shell")
            .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    pub(super) fn fold(&mut self, what: &str) {
        self.key = cache::key(&self.key, what, "");
    }

    pub(super) fn history(&mut self, created_by: String, empty: bool) {
        let mut h = json!({
            "created": self.created,
            "created_by": created_by,
            "comment": "buildkit.dockerfile.v0",
        });
        if empty {
            h["empty_layer"] = json!(true);
        }
        self.history.push(h);
    }

    pub(super) fn lowers(&self, store: &Store) -> Vec<PathBuf> {
        self.layers
            .iter()
            .map(|l| layer_dir(store, &l.diff_id))
            .collect()
    }
}

/// Write the image: config blob and row, tags.
pub(super) fn commit_state(
    store: &Store,
    st: &State,
    labels: &BTreeMap<String, String>,
    tags: &[Reference],
) -> Result<Digest> {
    let mut config = st.config.clone();
    if !labels.is_empty() {
        let mut l = config
            .get("Labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in labels {
            l.insert(k.clone(), json!(v));
        }
        config.insert("Labels".into(), Value::Object(l));
    }
    let mut doc = json!({
        "architecture": st.architecture,
        "os": "linux",
        "created": st.created,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": st.layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>()},
        "history": st.history,
    });
    if let Some(a) = &st.author {
        doc["author"] = json!(a);
    }
    let bytes = serde_json::to_vec(&doc).map_err(|e| BuildError::Other(e.to_string()))?;
    let images = ImageStore::open(store)?;
    Ok(images.commit_image(&bytes, &st.layers, None, tags, None)?)
}

/// The base state of an image.
pub(super) fn state_of_image(img: &Image) -> State {
    let raw: Value = serde_json::from_slice(&img.raw_config).unwrap_or(Value::Null);
    let config = raw
        .get("config")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let history = raw
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    State {
        layers: img.layers.clone(),
        config,
        history,
        key: cache::key("", &format!("FROM {}", img.id), ""),
        architecture: img.architecture(),
        author: raw
            .get("author")
            .and_then(Value::as_str)
            .map(str::to_string),
        created: raw
            .get("created")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| rfc3339(img.created)),
        args: BTreeMap::new(),
        cmd_set: false,
    }
}

pub(super) fn scratch_state() -> State {
    State {
        layers: Vec::new(),
        config: Map::new(),
        history: Vec::new(),
        key: cache::key("", "FROM scratch", ""),
        architecture: berth_image::archive::host_arch().to_string(),
        author: None,
        created: rfc3339(0),
        args: BTreeMap::new(),
        cmd_set: false,
    }
}
