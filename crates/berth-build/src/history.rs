//! `history`: an image's build history, newest step first, with each layer's size.

use berth_image::ImageStore;
use berth_store::Store;
use serde_json::Value;

use crate::Result;

/// One history entry.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryRow {
    /// The image id for the newest entry, `<missing>` for the others (as Docker shows).
    pub id: String,
    /// Unix seconds (0 when unknown).
    pub created: i64,
    /// The instruction that made the step.
    pub created_by: String,
    /// Bytes of the step's layer content (0 for metadata-only steps).
    pub size: u64,
    /// The entry's comment.
    pub comment: String,
    /// Whether the step made no layer.
    pub empty_layer: bool,
}

/// The history of image `name` (tag, id or digest), newest first. An image without history
/// entries gets one row per layer.
pub fn history(store: &Store, name: &str) -> Result<Vec<HistoryRow>> {
    let images = ImageStore::open(store)?;
    let img = images.resolve(name)?;
    let raw: Value = serde_json::from_slice(&img.raw_config).unwrap_or(Value::Null);
    let entries = raw
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut rows = Vec::new();
    let mut layers = img.layers.iter();
    if entries.is_empty() {
        for l in img.layers.iter() {
            rows.push(HistoryRow {
                id: "<missing>".into(),
                created: img.created,
                created_by: String::new(),
                size: l.size,
                comment: String::new(),
                empty_layer: false,
            });
        }
    }
    for h in &entries {
        let empty = h
            .get("empty_layer")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let size = if empty {
            0
        } else {
            layers.next().map(|l| l.size).unwrap_or(0)
        };
        let created = h
            .get("created")
            .and_then(Value::as_str)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.timestamp())
            .unwrap_or(0);
        let s = |k: &str| h.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        rows.push(HistoryRow {
            id: "<missing>".into(),
            created,
            created_by: s("created_by"),
            size,
            comment: s("comment"),
            empty_layer: empty,
        });
    }
    rows.reverse();
    if let Some(first) = rows.first_mut() {
        first.id = img.id.to_string();
    }
    Ok(rows)
}
