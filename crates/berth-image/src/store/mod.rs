//! The image tables: layers, images, tags, repo digests.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use berth_store::rusqlite::{params, OptionalExtension, Row};
use berth_store::{Digest, Store};

use crate::{layer_dir, Compression, Image, ImageConfig, ImageError, Layer, Reference, Result};

const MIGRATIONS: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS layers (
        diff_id TEXT PRIMARY KEY,
        diff_size INTEGER NOT NULL,
        blob TEXT NOT NULL,
        blob_size INTEGER NOT NULL,
        compression TEXT NOT NULL,
        size INTEGER NOT NULL,
        created INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS layer_blobs (
        blob TEXT PRIMARY KEY,
        diff_id TEXT NOT NULL,
        blob_size INTEGER NOT NULL,
        compression TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS layer_blobs_diff ON layer_blobs(diff_id);
    CREATE TABLE IF NOT EXISTS images (
        id TEXT PRIMARY KEY,
        created INTEGER NOT NULL,
        size INTEGER NOT NULL,
        layers TEXT NOT NULL,
        manifest TEXT,
        stored_at INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS tags (
        name TEXT PRIMARY KEY,
        image_id TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS tags_image ON tags(image_id);
    CREATE TABLE IF NOT EXISTS repo_digests (
        repo TEXT NOT NULL,
        digest TEXT NOT NULL,
        image_id TEXT NOT NULL,
        PRIMARY KEY (repo, digest)
    );
    CREATE INDEX IF NOT EXISTS repo_digests_image ON repo_digests(image_id);",
    // Layers another component keeps without an image (containerd calls these leases): the
    // build cache holds the layers of its entries, so `rmi` and `image prune` keep them.
    "CREATE TABLE IF NOT EXISTS layer_leases (
        holder TEXT NOT NULL,
        diff_id TEXT NOT NULL,
        PRIMARY KEY (holder, diff_id)
    );
    CREATE INDEX IF NOT EXISTS layer_leases_diff ON layer_leases(diff_id);",
];

/// Unreferenced blobs younger than this are left alone by [`ImageStore::sweep`]: they may be
/// in flight (written, not yet recorded) or belong to another component.
const BLOB_GRACE: Duration = Duration::from_secs(600);

/// The image part of a [`Store`].
#[derive(Debug)]
pub struct ImageStore<'a> {
    store: &'a Store,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn parse_digest(s: &str) -> Result<Digest> {
    Digest::parse(s).map_err(|e| ImageError::Other(format!("corrupt image metadata: {e}")))
}

fn layer_from_row(
    r: &Row<'_>,
) -> berth_store::rusqlite::Result<(String, u64, String, u64, String, u64)> {
    Ok((
        r.get(0)?,
        r.get::<_, u64>(1)?,
        r.get(2)?,
        r.get::<_, u64>(3)?,
        r.get(4)?,
        r.get::<_, u64>(5)?,
    ))
}

fn make_layer(t: (String, u64, String, u64, String, u64)) -> Result<Layer> {
    Ok(Layer {
        diff_id: parse_digest(&t.0)?,
        diff_size: t.1,
        blob: parse_digest(&t.2)?,
        blob_size: t.3,
        compression: Compression::parse(&t.4).unwrap_or(Compression::None),
        size: t.5,
    })
}

/// How `resolve` matched.
enum Matched {
    Id,
    Tag(Reference),
    RepoDigest(Reference),
}

/// Unix seconds of an RFC 3339 `created` in a config document.
pub(crate) fn config_created(config: &[u8]) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_slice(config).ok()?;
    let s = v.get("created")?.as_str()?;
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.timestamp())
}

/// `rootfs.diff_ids` of a config document.
pub(crate) fn config_diff_ids(config: &[u8]) -> Result<Vec<Digest>> {
    let v: serde_json::Value = serde_json::from_slice(config)
        .map_err(|e| ImageError::Archive(format!("image config is not valid JSON: {e}")))?;
    let ids = v
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(|d| d.as_array())
        .ok_or_else(|| ImageError::Archive("image config has no rootfs.diff_ids".into()))?;
    ids.iter()
        .map(|d| {
            d.as_str()
                .and_then(|s| Digest::parse(s).ok())
                .ok_or_else(|| {
                    ImageError::Archive(format!(
                        "image config rootfs.diff_ids has an invalid digest {d}"
                    ))
                })
        })
        .collect()
}

impl<'a> ImageStore<'a> {
    /// Open the image tables (creating them if needed).
    pub fn open(store: &'a Store) -> Result<Self> {
        store.migrate("image", MIGRATIONS)?;
        fs::create_dir_all(store.root().join("layers"))
            .map_err(|e| ImageError::io(store.root().join("layers"), e))?;
        Ok(ImageStore { store })
    }

    /// The store this image store works in.
    pub fn store(&self) -> &'a Store {
        self.store
    }

    /// Make an ingested layer known (idempotent). Its directory must exist.
    pub fn record_layer(&self, layer: &Layer) -> Result<()> {
        let dir = layer_dir(self.store, &layer.diff_id);
        if !dir.is_dir() {
            return Err(ImageError::Layer(format!(
                "layer {} is not unpacked at {}; ingest it first",
                layer.diff_id,
                dir.display()
            )));
        }
        let db = self.store.db();
        let tx = db.unchecked_transaction()?;
        tx.execute(
            "INSERT OR IGNORE INTO layers(diff_id, diff_size, blob, blob_size, compression, size, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                layer.diff_id.as_str(),
                layer.diff_size,
                layer.blob.as_str(),
                layer.blob_size,
                layer.compression.as_str(),
                layer.size,
                now()
            ],
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO layer_blobs(blob, diff_id, blob_size, compression) VALUES (?1, ?2, ?3, ?4)",
            params![
                layer.blob.as_str(),
                layer.diff_id.as_str(),
                layer.blob_size,
                layer.compression.as_str()
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A known layer stored under this blob digest (the blob and the unpacked dir both exist).
    pub fn layer_by_blob(&self, blob: &Digest) -> Result<Option<Layer>> {
        let row = self
            .store
            .db()
            .query_row(
                "SELECT l.diff_id, l.diff_size, b.blob, b.blob_size, b.compression, l.size
                 FROM layer_blobs b JOIN layers l ON l.diff_id = b.diff_id WHERE b.blob = ?1",
                [blob.as_str()],
                layer_from_row,
            )
            .optional()?;
        let Some(t) = row else { return Ok(None) };
        let l = make_layer(t)?;
        if !self.store.has_blob(&l.blob) || !layer_dir(self.store, &l.diff_id).is_dir() {
            return Ok(None);
        }
        Ok(Some(l))
    }

    /// Whether a `layers` row exists for this diff id.
    pub(crate) fn layer_recorded(&self, diff: &Digest) -> Result<bool> {
        let n: i64 = self.store.db().query_row(
            "SELECT COUNT(*) FROM layers WHERE diff_id = ?1",
            [diff.as_str()],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// A known layer with this diff id (with its primary blob).
    pub fn layer_by_diff_id(&self, diff: &Digest) -> Result<Option<Layer>> {
        let row = self
            .store
            .db()
            .query_row(
                "SELECT diff_id, diff_size, blob, blob_size, compression, size FROM layers WHERE diff_id = ?1",
                [diff.as_str()],
                layer_from_row,
            )
            .optional()?;
        let Some(t) = row else { return Ok(None) };
        let l = make_layer(t)?;
        if !layer_dir(self.store, &l.diff_id).is_dir() {
            return Ok(None);
        }
        Ok(Some(l))
    }

    /// Store the config blob (and manifest blob), then insert the image row, its tags and repo
    /// digest in one transaction. All layers must be recorded already. Tags move from any
    /// image that had them before. Returns the image id.
    pub fn commit_image(
        &self,
        config: &[u8],
        layers: &[Layer],
        manifest: Option<&[u8]>,
        tags: &[Reference],
        repo_digest: Option<&Reference>,
    ) -> Result<Digest> {
        let diff_ids = config_diff_ids(config)?;
        let have: Vec<&Digest> = layers.iter().map(|l| &l.diff_id).collect();
        if diff_ids.iter().collect::<Vec<_>>() != have {
            return Err(ImageError::Archive(format!(
                "image config lists {} layer diff ids that do not match the {} layers given; the image is corrupt",
                diff_ids.len(),
                layers.len()
            )));
        }
        let id = self.store.put_blob(config, None)?;
        let manifest_digest = match manifest {
            Some(m) => Some(self.store.put_blob(m, None)?),
            None => None,
        };
        let created = config_created(config).unwrap_or_else(now);
        let size: u64 = layers.iter().map(|l| l.size).sum();
        let layers_json = serde_json::to_string(
            &layers
                .iter()
                .map(|l| l.diff_id.as_str())
                .collect::<Vec<_>>(),
        )
        .expect("strings serialise");
        let db = self.store.db();
        let tx = db.unchecked_transaction()?;
        for l in layers {
            let known: Option<String> = tx
                .query_row(
                    "SELECT diff_id FROM layers WHERE diff_id = ?1",
                    [l.diff_id.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            if known.is_none() || !layer_dir(self.store, &l.diff_id).is_dir() {
                return Err(ImageError::Layer(format!(
                    "layer {} is not in the store; record it before committing the image",
                    l.diff_id
                )));
            }
        }
        tx.execute(
            "INSERT INTO images(id, created, size, layers, manifest, stored_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(id) DO UPDATE SET manifest = COALESCE(images.manifest, excluded.manifest),
                 stored_at = excluded.stored_at",
            params![
                id.as_str(),
                created,
                size,
                layers_json,
                manifest_digest.as_ref().map(|d| d.as_str()),
                now()
            ],
        )?;
        for t in tags {
            let t = if t.tag().is_none() && t.digest().is_none() {
                t.with_tag(crate::reference::DEFAULT_TAG)
            } else {
                t.clone()
            };
            if t.tag().is_some() {
                let name = t.name() + ":" + t.tag().unwrap_or_default();
                tx.execute(
                    "INSERT INTO tags(name, image_id) VALUES (?1, ?2)
                     ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
                    params![name, id.as_str()],
                )?;
            }
        }
        if let Some(r) = repo_digest {
            let d = r.digest().cloned().or_else(|| manifest_digest.clone());
            if let Some(d) = d {
                tx.execute(
                    "INSERT INTO repo_digests(repo, digest, image_id) VALUES (?1, ?2, ?3)
                     ON CONFLICT(repo, digest) DO UPDATE SET image_id = excluded.image_id",
                    params![r.name(), d.as_str(), id.as_str()],
                )?;
            }
        }
        tx.commit()?;
        Ok(id)
    }

    /// Find an image by tag (normalised), repo digest (`name@sha256:…`), full id
    /// (`sha256:…` or 64 hex) or a unique id prefix of at least 4 hex digits.
    pub fn resolve(&self, name_or_id: &str) -> Result<Image> {
        self.resolve_how(name_or_id).map(|(i, _)| i)
    }

    fn resolve_how(&self, name_or_id: &str) -> Result<(Image, Matched)> {
        let s = name_or_id.trim();
        if s.is_empty() {
            return Err(ImageError::NotFound("(empty name)".into()));
        }
        if let Some(hex) = s.strip_prefix("sha256:") {
            return Ok((self.by_id_prefix(s, hex)?, Matched::Id));
        }
        let hexish = s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        match Reference::parse(s) {
            Ok(r) => {
                if let Some(d) = r.digest() {
                    let id: Option<String> = self
                        .store
                        .db()
                        .query_row(
                            "SELECT image_id FROM repo_digests WHERE repo = ?1 AND digest = ?2",
                            params![r.name(), d.as_str()],
                            |row| row.get(0),
                        )
                        .optional()?;
                    if let Some(id) = id {
                        return Ok((self.get(&parse_digest(&id)?)?, Matched::RepoDigest(r)));
                    }
                    return Err(ImageError::NotFound(s.to_string()));
                }
                let name = r.to_string();
                let id: Option<String> = self
                    .store
                    .db()
                    .query_row(
                        "SELECT image_id FROM tags WHERE name = ?1",
                        [&name],
                        |row| row.get(0),
                    )
                    .optional()?;
                if let Some(id) = id {
                    return Ok((self.get(&parse_digest(&id)?)?, Matched::Tag(r)));
                }
                if hexish && !s.contains(':') {
                    return Ok((self.by_id_prefix(s, s)?, Matched::Id));
                }
                Err(ImageError::NotFound(s.to_string()))
            }
            Err(e) => {
                if hexish {
                    Ok((self.by_id_prefix(s, s)?, Matched::Id))
                } else {
                    Err(e.into())
                }
            }
        }
    }

    /// An image by full id or unique id prefix (`hex` without `sha256:`), with the shared
    /// resolver's rules and messages ([`berth_store::lookup`]).
    fn by_id_prefix(&self, shown: &str, hex: &str) -> Result<Image> {
        use berth_store::lookup::{pick, Candidate, LookupError};
        if hex.is_empty()
            || hex.len() > 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ImageError::NotFound(shown.to_string()));
        }
        let mut st = self
            .store
            .db()
            .prepare("SELECT id FROM images WHERE substr(id, 1, length(?1)) = ?1")?;
        let ids: Vec<String> = st
            .query_map([format!("sha256:{hex}")], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        let candidates: Vec<Candidate<'_>> = ids
            .iter()
            .map(|id| Candidate {
                id,
                id_hex: id.strip_prefix("sha256:").unwrap_or(id),
                names: vec![],
            })
            .collect();
        match pick(&format!("sha256:{hex}"), &candidates) {
            Ok(i) => self.get(&parse_digest(&ids[i])?),
            Err(LookupError::NotFound(_)) => Err(ImageError::NotFound(shown.to_string())),
            Err(LookupError::Ambiguous { count, .. }) => Err(ImageError::Ambiguous {
                name: shown.to_string(),
                count,
            }),
        }
    }

    /// An image by id.
    pub fn get(&self, id: &Digest) -> Result<Image> {
        let db = self.store.db();
        let row: Option<(i64, u64, String, Option<String>, i64)> = db
            .query_row(
                "SELECT created, size, layers, manifest, stored_at FROM images WHERE id = ?1",
                [id.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((created, size, layers_json, manifest, stored_at)) = row else {
            return Err(ImageError::NotFound(id.to_string()));
        };
        let raw_config = self.store.read_blob(id)?;
        let config = ImageConfig::from_image_json(&raw_config).unwrap_or_default();
        let diff_ids: Vec<String> = serde_json::from_str(&layers_json)
            .map_err(|e| ImageError::Other(format!("corrupt image metadata for {id}: {e}")))?;
        let mut layers = Vec::with_capacity(diff_ids.len());
        for d in &diff_ids {
            let t = db
                .query_row(
                    "SELECT diff_id, diff_size, blob, blob_size, compression, size FROM layers WHERE diff_id = ?1",
                    [d],
                    layer_from_row,
                )
                .optional()?
                .ok_or_else(|| {
                    ImageError::Other(format!(
                        "image {id} refers to layer {d} which is not in the store; remove the image and load or pull it again"
                    ))
                })?;
            layers.push(make_layer(t)?);
        }
        let mut st = db.prepare("SELECT name FROM tags WHERE image_id = ?1 ORDER BY name")?;
        let tags: Vec<Reference> = st
            .query_map([id.as_str()], |r| r.get::<_, String>(0))?
            .filter_map(|n| n.ok().and_then(|n| Reference::parse(&n).ok()))
            .collect();
        let mut st = db.prepare(
            "SELECT repo, digest FROM repo_digests WHERE image_id = ?1 ORDER BY repo, digest",
        )?;
        let repo_digests: Vec<String> = st
            .query_map([id.as_str()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .filter_map(|x| x.ok())
            .map(|(repo, d)| match Reference::parse_bare(&repo) {
                Ok(r) => format!("{}@{d}", r.familiar_name()),
                Err(_) => format!("{repo}@{d}"),
            })
            .collect();
        Ok(Image {
            id: id.clone(),
            raw_config,
            config,
            layers,
            tags,
            repo_digests,
            manifest: manifest.and_then(|m| Digest::parse(&m).ok()),
            created,
            size,
            stored_at,
        })
    }

    /// All images, newest first (damaged ones are skipped with a warning).
    pub fn list(&self) -> Result<Vec<Image>> {
        let mut st = self
            .store
            .db()
            .prepare("SELECT id FROM images ORDER BY created DESC, stored_at DESC, id")?;
        let ids: Vec<String> = st
            .query_map([], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for i in &ids {
            // One damaged image must not hide the others: report it and go on.
            match parse_digest(i).and_then(|d| self.get(&d)) {
                Ok(img) => out.push(img),
                Err(e) => tracing::warn!("skipping image {i}: {e}"),
            }
        }
        Ok(out)
    }

    /// Point a tag at an image (moving it from any other image).
    pub fn tag(&self, id: &Digest, r: &Reference) -> Result<()> {
        if r.digest().is_some() && r.tag().is_none() {
            return Err(ImageError::Other(format!(
                "cannot tag with a digest reference {}; give a name[:tag]",
                r.familiar()
            )));
        }
        let exists: Option<String> = self
            .store
            .db()
            .query_row("SELECT id FROM images WHERE id = ?1", [id.as_str()], |r| {
                r.get(0)
            })
            .optional()?;
        if exists.is_none() {
            return Err(ImageError::NotFound(id.to_string()));
        }
        let name = r.name() + ":" + r.tag().unwrap_or(crate::reference::DEFAULT_TAG);
        self.store.db().execute(
            "INSERT INTO tags(name, image_id) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
            params![name, id.as_str()],
        )?;
        // Docker's LastTagTime: when the image was last stored or tagged.
        self.store.db().execute(
            "UPDATE images SET stored_at = ?1 WHERE id = ?2",
            params![now(), id.as_str()],
        )?;
        crate::events::record(
            self.store,
            "tag",
            id.as_str(),
            &r.familiar(),
            self.get(id).ok().as_ref(),
        );
        Ok(())
    }

    /// Unpacked layer directories of an image, bottom first (overlay lowerdir wants them
    /// reversed: top first).
    pub fn layer_dirs(&self, image: &Image) -> Vec<PathBuf> {
        image
            .layers
            .iter()
            .map(|l| layer_dir(self.store, &l.diff_id))
            .collect()
    }
}

/// Remove a directory tree: first renamed into `tmp/` (so it disappears at once and a crash
/// leaves it to the tmp sweep), then deleted.
pub(crate) fn remove_tree(store: &Store, dir: &std::path::Path) {
    let tmp = store.tmp_path("rm");
    let target = match fs::rename(dir, &tmp) {
        Ok(()) => tmp,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(_) => dir.to_path_buf(),
    };
    if let Err(e) = fs::remove_dir_all(&target) {
        tracing::warn!("cannot remove {}: {e}", target.display());
    }
}

mod remove;
#[cfg(test)]
mod tests;
