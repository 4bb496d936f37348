//! `system df`: the space used by images (layers counted once), containers' writable layers,
//! volumes and the build cache, with what a prune could reclaim.

use std::collections::{BTreeMap, HashMap, HashSet};

use berth_engine::state::{self, Container, State};
use berth_format::human;
use berth_image::ImageStore;
use berth_store::Store;
use serde_json::{json, Value};

use crate::Result;

/// One image: its layers' bytes, the part shared with other images, and its users.
#[derive(Debug, Clone)]
pub struct ImageUsage {
    /// The image.
    pub image: berth_image::Image,
    /// Bytes of its unpacked layers.
    pub size: u64,
    /// Bytes of its layers that other images use too.
    pub shared_size: u64,
    /// Containers (any state) created from it.
    pub containers: usize,
}

/// One container's writable layer.
#[derive(Debug, Clone)]
pub struct ContainerUsage {
    /// The container.
    pub container: Container,
    /// Bytes in its writable layer (overlay upper directory).
    pub size_rw: u64,
    /// Bytes of its image (`SizeRootFs` is this plus `size_rw`).
    pub image_size: u64,
}

/// One volume.
#[derive(Debug, Clone)]
pub struct VolumeUsage {
    /// The volume.
    pub volume: berth_volume::Volume,
    /// Bytes of its data.
    pub size: u64,
    /// Containers (any state) that mount it.
    pub links: usize,
}

/// One build cache entry.
#[derive(Debug, Clone)]
pub struct BuildCacheUsage {
    /// The entry.
    pub entry: berth_build::cache::CacheEntry,
    /// Bytes of its layer (0 for a step that changed no file).
    pub size: u64,
    /// Whether an image uses its layer too (then `system df` counts it with the images).
    pub shared: bool,
}

/// Everything `system df` reports.
#[derive(Debug, Clone, Default)]
pub struct DiskUsage {
    /// Bytes of all unpacked layers, each counted once.
    pub layers_size: u64,
    /// Images, newest first.
    pub images: Vec<ImageUsage>,
    /// Containers, newest first.
    pub containers: Vec<ContainerUsage>,
    /// Volumes, by name.
    pub volumes: Vec<VolumeUsage>,
    /// Build cache entries, oldest first.
    pub build_cache: Vec<BuildCacheUsage>,
}

/// Docker's default `system df` table.
pub const SUMMARY_TABLE: &str =
    "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";
/// Header text of the summary fields.
pub const SUMMARY_HEADERS: &[(&str, &str)] = &[("TotalCount", "TOTAL")];
/// The `-v` images table.
pub const IMAGES_TABLE: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}";
/// Header text of the `-v` images fields.
pub const IMAGES_HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE ID"),
    ("CreatedSince", "CREATED"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
];
/// The `-v` containers table.
pub const CONTAINERS_TABLE: &str = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}";
/// Header text of the `-v` containers fields.
pub const CONTAINERS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("RunningFor", "CREATED"),
];
/// The `-v` volumes table.
pub const VOLUMES_TABLE: &str = "table {{.Name}}\t{{.Links}}\t{{.Size}}";
/// Header text of the `-v` volumes fields.
pub const VOLUMES_HEADERS: &[(&str, &str)] = &[("Name", "VOLUME NAME")];
/// The `-v` build cache table.
pub const BUILD_CACHE_TABLE: &str = "table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}";
/// Header text of the `-v` build cache fields.
pub const BUILD_CACHE_HEADERS: &[(&str, &str)] = &[
    ("ID", "CACHE ID"),
    ("CacheType", "CACHE TYPE"),
    ("CreatedSince", "CREATED"),
    ("LastUsedSince", "LAST USED"),
    ("UsageCount", "USAGE"),
];

/// Measure the store: every image, container, volume and build cache entry with its bytes.
/// Reads only; walks containers' writable layers and volumes' data to size them.
///
/// # Errors
/// Database errors of any component.
pub fn disk_usage(store: &Store) -> Result<DiskUsage> {
    let images = ImageStore::open(store)?.list()?;
    let containers = state::all(store)?;

    // How many images use each layer, and each layer's bytes.
    let mut layer_users: HashMap<String, usize> = HashMap::new();
    let mut layer_size: HashMap<String, u64> = HashMap::new();
    for img in &images {
        let mut seen = HashSet::new();
        for l in &img.layers {
            if seen.insert(l.diff_id.as_str()) {
                *layer_users.entry(l.diff_id.to_string()).or_default() += 1;
                layer_size.insert(l.diff_id.to_string(), l.size);
            }
        }
    }
    let mut users: HashMap<String, usize> = HashMap::new();
    for c in &containers {
        *users.entry(c.image_id.to_string()).or_default() += 1;
    }
    let mut out = DiskUsage {
        layers_size: layer_size.values().sum(),
        ..Default::default()
    };
    let mut image_size: HashMap<String, u64> = HashMap::new();
    for img in images {
        let mut seen = HashSet::new();
        let (mut size, mut shared) = (0u64, 0u64);
        for l in &img.layers {
            if !seen.insert(l.diff_id.as_str()) {
                continue;
            }
            size += l.size;
            if layer_users.get(l.diff_id.as_str()).copied().unwrap_or(0) > 1 {
                shared += l.size;
            }
        }
        image_size.insert(img.id.to_string(), size);
        out.images.push(ImageUsage {
            containers: users.get(img.id.as_str()).copied().unwrap_or(0),
            image: img,
            size,
            shared_size: shared,
        });
    }

    let mut volume_links: HashMap<String, usize> = HashMap::new();
    for c in containers {
        for v in &c.config.volumes {
            *volume_links.entry(v.name.clone()).or_default() += 1;
        }
        out.containers.push(ContainerUsage {
            size_rw: berth_engine::rootfs::upper_size(store, &c.id),
            image_size: image_size.get(c.image_id.as_str()).copied().unwrap_or(0),
            container: c,
        });
    }

    let vs = berth_volume::VolumeStore::open(store)?;
    for v in vs.list()? {
        out.volumes.push(VolumeUsage {
            size: vs.size(&v),
            links: volume_links.get(&v.name).copied().unwrap_or(0),
            volume: v,
        });
    }
    out.volumes
        .sort_by(|a, b| a.volume.name.cmp(&b.volume.name));

    let in_images: HashSet<&String> = layer_users.keys().collect();
    let sizes = ImageStore::open(store)?;
    for e in berth_build::cache::entries(store)? {
        let (size, shared) = match &e.diff_id {
            Some(d) => {
                let size = match layer_size.get(d.as_str()) {
                    Some(s) => *s,
                    None => sizes.layer_by_diff_id(d)?.map_or(0, |l| l.size),
                };
                (size, in_images.contains(&d.to_string()))
            }
            None => (0, false),
        };
        out.build_cache.push(BuildCacheUsage {
            entry: e,
            size,
            shared,
        });
    }
    Ok(out)
}

/// `N (P%)` of `total`, as Docker's CLI prints a reclaimable size.
fn with_percent(reclaimable: u64, total: u64) -> String {
    if total == 0 {
        return human::size(reclaimable);
    }
    let pct = u128::from(reclaimable) * 100 / u128::from(total);
    format!("{} ({pct}%)", human::size(reclaimable))
}

fn active(c: &Container) -> bool {
    matches!(c.state, State::Running | State::Restarting)
}

fn since(ts: i64) -> String {
    human::ago(ts)
}

impl DiskUsage {
    /// The four summary rows (`Images`, `Containers`, `Local Volumes`, `Build Cache`) with
    /// Docker's fields `Type`, `TotalCount`, `Active`, `Size`, `Reclaimable` as strings, and
    /// Docker's arithmetic: an image's reclaimable part is what no container's image keeps
    /// uniquely; a container's is its writable layer when it is not running; a volume's when
    /// no container mounts it; build cache that images do not share.
    pub fn summary_rows(&self) -> Vec<Value> {
        let used_images: u64 = self
            .images
            .iter()
            .filter(|i| i.containers > 0)
            .map(|i| i.size - i.shared_size)
            .sum();
        let img_reclaim = self.layers_size.saturating_sub(used_images);
        let c_size: u64 = self.containers.iter().map(|c| c.size_rw).sum();
        let c_reclaim: u64 = self
            .containers
            .iter()
            .filter(|c| !active(&c.container))
            .map(|c| c.size_rw)
            .sum();
        let v_size: u64 = self.volumes.iter().map(|v| v.size).sum();
        let v_reclaim: u64 = self
            .volumes
            .iter()
            .filter(|v| v.links == 0)
            .map(|v| v.size)
            .sum();
        let b_size: u64 = self
            .build_cache
            .iter()
            .filter(|b| !b.shared)
            .map(|b| b.size)
            .sum();
        let row = |t: &str, total: usize, act: usize, size: u64, reclaim: String| {
            json!({
                "Type": t,
                "TotalCount": total.to_string(),
                "Active": act.to_string(),
                "Size": human::size(size),
                "Reclaimable": reclaim,
            })
        };
        vec![
            row(
                "Images",
                self.images.len(),
                self.images.iter().filter(|i| i.containers > 0).count(),
                self.layers_size,
                with_percent(img_reclaim, self.layers_size),
            ),
            row(
                "Containers",
                self.containers.len(),
                self.containers
                    .iter()
                    .filter(|c| active(&c.container))
                    .count(),
                c_size,
                with_percent(c_reclaim, c_size),
            ),
            row(
                "Local Volumes",
                self.volumes.len(),
                self.volumes.iter().filter(|v| v.links > 0).count(),
                v_size,
                with_percent(v_reclaim, v_size),
            ),
            row(
                "Build Cache",
                self.build_cache.len(),
                0,
                b_size,
                human::size(b_size),
            ),
        ]
    }

    /// `system df -v` image rows (one per tag, or one `<none>` row), fields `Repository`,
    /// `Tag`, `ID`, `CreatedSince`, `Size`, `SharedSize`, `UniqueSize`, `Containers`.
    pub fn image_rows(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for i in &self.images {
            let tags: Vec<(String, String)> = if i.image.tags.is_empty() {
                vec![("<none>".into(), "<none>".into())]
            } else {
                i.image
                    .tags
                    .iter()
                    .map(|t| (t.familiar_name(), t.tag().unwrap_or("latest").to_string()))
                    .collect()
            };
            for (repo, tag) in tags {
                out.push(json!({
                    "Repository": repo,
                    "Tag": tag,
                    "ID": i.image.id.short(),
                    "CreatedSince": since(i.image.created),
                    "Size": human::size(i.size),
                    "SharedSize": human::size(i.shared_size),
                    "UniqueSize": human::size(i.size - i.shared_size),
                    "Containers": i.containers.to_string(),
                }));
            }
        }
        out
    }

    /// `system df -v` container rows: `ID`, `Image`, `Command`, `LocalVolumes`, `Size`,
    /// `RunningFor`, `Status`, `Names`.
    pub fn container_rows(&self) -> Vec<Value> {
        self.containers
            .iter()
            .map(|u| {
                let c = &u.container;
                json!({
                    "ID": &c.id[..12.min(c.id.len())],
                    "Image": c.image_name,
                    "Command": berth_engine::view::command_text(c, true),
                    "LocalVolumes": c.config.volumes.len().to_string(),
                    "Size": human::size(u.size_rw),
                    "RunningFor": since(c.created),
                    "Status": berth_engine::view::status_text(c, None),
                    "Names": c.name,
                })
            })
            .collect()
    }

    /// `system df -v` volume rows: `Name`, `Links`, `Size`.
    pub fn volume_rows(&self) -> Vec<Value> {
        self.volumes
            .iter()
            .map(|v| {
                json!({
                    "Name": v.volume.name,
                    "Links": v.links.to_string(),
                    "Size": human::size(v.size),
                })
            })
            .collect()
    }

    /// `system df -v` build cache rows: `ID`, `CacheType`, `Size`, `CreatedSince`,
    /// `LastUsedSince`, `UsageCount`, `Shared`.
    pub fn build_cache_rows(&self) -> Vec<Value> {
        self.build_cache
            .iter()
            .map(|b| {
                json!({
                    "ID": &b.entry.key[..12.min(b.entry.key.len())],
                    "CacheType": "regular",
                    "Size": human::size(b.size),
                    "CreatedSince": since(b.entry.created),
                    "LastUsedSince": since(b.entry.last_used),
                    "UsageCount": "0",
                    "Shared": b.shared.to_string(),
                    "Description": b.entry.instruction,
                })
            })
            .collect()
    }

    /// Bytes of build cache that images do not share (the `Build cache usage:` line).
    pub fn build_cache_size(&self) -> u64 {
        self.build_cache
            .iter()
            .filter(|b| !b.shared)
            .map(|b| b.size)
            .sum()
    }

    /// The Engine API's `GET /system/df` body: `LayersSize`, `Images` (ImageSummary with
    /// `SharedSize` and `Containers`), `Containers` (with `SizeRw`, `SizeRootFs`), `Volumes`
    /// (with `UsageData`), `BuildCache` (cache records). Sizes in bytes, times in Unix seconds
    /// (images, containers) or RFC 3339 (volumes, build cache), as Docker sends them.
    pub fn api_json(&self) -> Value {
        let rfc3339 = |t: i64| {
            chrono::DateTime::from_timestamp(t, 0)
                .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default()
        };
        let images: Vec<Value> = self
            .images
            .iter()
            .map(|i| {
                let tags: Vec<String> = i.image.tags.iter().map(|t| t.familiar()).collect();
                json!({
                    "Id": i.image.id.to_string(),
                    "ParentId": "",
                    "RepoTags": tags,
                    "RepoDigests": i.image.repo_digests,
                    "Created": i.image.created,
                    "Size": i.size,
                    "SharedSize": i.shared_size,
                    "VirtualSize": i.size,
                    "Labels": i.image.config.labels.clone().unwrap_or_default(),
                    "Containers": i.containers,
                })
            })
            .collect();
        let containers: Vec<Value> = self
            .containers
            .iter()
            .map(|u| {
                let c = &u.container;
                json!({
                    "Id": c.id,
                    "Names": [format!("/{}", c.name)],
                    "Image": c.image_name,
                    "ImageID": c.image_id.to_string(),
                    "Command": c.config.args.join(" "),
                    "Created": c.created,
                    "State": c.state.as_str(),
                    "Status": berth_engine::view::status_text(c, None),
                    "SizeRw": u.size_rw,
                    "SizeRootFs": u.size_rw + u.image_size,
                    "Labels": c.config.labels,
                })
            })
            .collect();
        let volumes: Vec<Value> = self
            .volumes
            .iter()
            .map(|v| {
                let mut doc = v.volume.inspect_json();
                doc["UsageData"] = json!({"Size": v.size, "RefCount": v.links});
                doc
            })
            .collect();
        let cache: Vec<Value> = self
            .build_cache
            .iter()
            .map(|b| {
                json!({
                    "ID": b.entry.key,
                    "Parents": Value::Null,
                    "Type": "regular",
                    "Description": b.entry.instruction,
                    "InUse": false,
                    "Shared": b.shared,
                    "Size": b.size,
                    "CreatedAt": rfc3339(b.entry.created),
                    "LastUsedAt": rfc3339(b.entry.last_used),
                    "UsageCount": 0,
                })
            })
            .collect();
        json!({
            "LayersSize": self.layers_size,
            "Images": images,
            "Containers": containers,
            "Volumes": volumes,
            "BuildCache": cache,
        })
    }
}

/// Label conditions as `--filter label=K[=V]` / `label!=K[=V]` give them, checked on `labels`.
pub(crate) fn labels_match(
    labels: &BTreeMap<String, String>,
    want: &[(String, Option<String>)],
    not: &[(String, Option<String>)],
) -> bool {
    let holds = |(k, v): &(String, Option<String>)| match (labels.get(k), v) {
        (Some(_), None) => true,
        (Some(have), Some(v)) => have == v,
        (None, _) => false,
    };
    want.iter().all(holds) && !not.iter().any(holds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_and_labels() {
        assert_eq!(with_percent(0, 0), "0B");
        assert_eq!(with_percent(500, 1000), "500B (50%)");
        assert_eq!(with_percent(1000, 3000), "1kB (33%)");
        let mut l = BTreeMap::new();
        l.insert("a".to_string(), "1".to_string());
        assert!(labels_match(&l, &[("a".into(), None)], &[]));
        assert!(labels_match(&l, &[("a".into(), Some("1".into()))], &[]));
        assert!(!labels_match(&l, &[("a".into(), Some("2".into()))], &[]));
        assert!(!labels_match(&l, &[], &[("a".into(), None)]));
        assert!(labels_match(&l, &[], &[("b".into(), None)]));
    }

    #[test]
    fn an_empty_store_has_four_zero_rows() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path()).unwrap();
        let du = disk_usage(&store).unwrap();
        let rows = du.summary_rows();
        let types: Vec<&str> = rows.iter().map(|r| r["Type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            ["Images", "Containers", "Local Volumes", "Build Cache"]
        );
        for r in &rows {
            assert_eq!(r["TotalCount"], "0");
            assert_eq!(r["Size"], "0B");
            assert_eq!(r["Reclaimable"], "0B");
        }
        let api = du.api_json();
        assert_eq!(api["LayersSize"], 0);
        assert!(api["Images"].as_array().unwrap().is_empty());
    }
}
