//! The image tables: layers, images, tags, repo digests.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use berth_store::rusqlite::{params, OptionalExtension, Row};
use berth_store::{Digest, Store};

use crate::{layer_dir, Compression, Image, ImageConfig, ImageError, Layer, Reference, Result};

const MIGRATIONS: &[&str] = &["CREATE TABLE IF NOT EXISTS layers (
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
    CREATE INDEX IF NOT EXISTS repo_digests_image ON repo_digests(image_id);"];

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
        r.get::<_, i64>(1)? as u64,
        r.get(2)?,
        r.get::<_, i64>(3)? as u64,
        r.get(4)?,
        r.get::<_, i64>(5)? as u64,
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
                layer.diff_size as i64,
                layer.blob.as_str(),
                layer.blob_size as i64,
                layer.compression.as_str(),
                layer.size as i64,
                now()
            ],
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO layer_blobs(blob, diff_id, blob_size, compression) VALUES (?1, ?2, ?3, ?4)",
            params![
                layer.blob.as_str(),
                layer.diff_id.as_str(),
                layer.blob_size as i64,
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
             ON CONFLICT(id) DO UPDATE SET manifest = COALESCE(images.manifest, excluded.manifest)",
            params![
                id.as_str(),
                created,
                size as i64,
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
        let row: Option<(i64, i64, String, Option<String>)> = db
            .query_row(
                "SELECT created, size, layers, manifest FROM images WHERE id = ?1",
                [id.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((created, size, layers_json, manifest)) = row else {
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
            size: size as u64,
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
        Ok(())
    }

    /// Remove an image or one of its names, with Docker's rules. Returns the lines to print
    /// (`Untagged: app:latest`, `Deleted: sha256:…`).
    ///
    /// By name: the tag is removed; the image is deleted when that was its last name, unless a
    /// container uses it (refused without `force`; with `force` only the tag goes). By id: the
    /// image is deleted with all its tags; several tags need `force`; an image in use is
    /// refused, or only untagged with `force`.
    pub fn remove(
        &self,
        name_or_id: &str,
        force: bool,
        in_use: &HashSet<Digest>,
    ) -> Result<Vec<String>> {
        let (img, how) = self.resolve_how(name_or_id)?;
        let used = in_use.contains(&img.id);
        let mut out = Vec::new();
        match how {
            Matched::Tag(r) | Matched::RepoDigest(r) => {
                let is_tag = r.digest().is_none();
                // Other names keep the image: only this one goes.
                let others = if is_tag {
                    img.tags.len() > 1
                } else {
                    img.tags.len() + img.repo_digests.len() > 1
                };
                if !others && used && !force {
                    return Err(ImageError::Conflict(format!(
                        "unable to remove repository reference {:?} (must force) - a container is using its referenced image {}; remove the container first or use -f to only untag",
                        name_or_id,
                        img.id.short()
                    )));
                }
                if is_tag {
                    self.untag(&r)?;
                } else {
                    self.remove_repo_digest(&r)?;
                }
                out.push(format!("Untagged: {}", r.familiar()));
                if others || used {
                    return Ok(out);
                }
                // The last tag is gone (repo digests alone do not keep an image, as Docker).
                let img = self.get(&img.id)?;
                out.extend(self.delete_image(&img)?);
            }
            Matched::Id => {
                if used {
                    if !force {
                        return Err(ImageError::Conflict(format!(
                            "unable to delete {} (must be forced) - image is being used by a container; remove the container first or use -f to only untag it",
                            img.id.short()
                        )));
                    }
                    for t in &img.tags {
                        self.untag(t)?;
                        out.push(format!("Untagged: {}", t.familiar()));
                    }
                    return Ok(out);
                }
                if img.tags.len() > 1 && !force {
                    return Err(ImageError::Conflict(format!(
                        "unable to delete {} (must be forced) - image is referenced in multiple repositories; remove the tags or use -f",
                        img.id.short()
                    )));
                }
                out.extend(self.delete_image(&img)?);
            }
        }
        Ok(out)
    }

    fn untag(&self, r: &Reference) -> Result<()> {
        let name = r.name() + ":" + r.tag().unwrap_or(crate::reference::DEFAULT_TAG);
        self.store
            .db()
            .execute("DELETE FROM tags WHERE name = ?1", [name])?;
        Ok(())
    }

    fn remove_repo_digest(&self, r: &Reference) -> Result<()> {
        if let Some(d) = r.digest() {
            self.store.db().execute(
                "DELETE FROM repo_digests WHERE repo = ?1 AND digest = ?2",
                params![r.name(), d.as_str()],
            )?;
        }
        Ok(())
    }

    /// Delete an image with its names; layers no other image uses go too.
    fn delete_image(&self, img: &Image) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for t in &img.tags {
            out.push(format!("Untagged: {}", t.familiar()));
        }
        for d in &img.repo_digests {
            out.push(format!("Untagged: {d}"));
        }
        let db = self.store.db();
        let tx = db.unchecked_transaction()?;
        tx.execute("DELETE FROM tags WHERE image_id = ?1", [img.id.as_str()])?;
        tx.execute(
            "DELETE FROM repo_digests WHERE image_id = ?1",
            [img.id.as_str()],
        )?;
        tx.execute("DELETE FROM images WHERE id = ?1", [img.id.as_str()])?;
        let still_used = layers_in_use(&tx)?;
        let manifest_used = match &img.manifest {
            Some(m) => tx
                .query_row(
                    "SELECT COUNT(*) FROM images WHERE manifest = ?1",
                    [m.as_str()],
                    |r| r.get::<_, i64>(0),
                )
                .map(|n| n > 0)?,
            None => true,
        };
        let mut gone_layers = Vec::new();
        let mut seen = HashSet::new();
        for l in &img.layers {
            if still_used.contains(l.diff_id.as_str()) || !seen.insert(l.diff_id.clone()) {
                continue;
            }
            gone_layers.push(self.forget_layer(&tx, &l.diff_id)?);
        }
        tx.commit()?;
        out.push(format!("Deleted: {}", img.id));
        // Files go after the commit: a crash here leaves only unreferenced files for sweep.
        self.store.remove_blob(&img.id)?;
        if let (false, Some(m)) = (manifest_used, &img.manifest) {
            self.store.remove_blob(m)?;
        }
        for (diff, blobs) in gone_layers {
            self.remove_layer_files(&diff, &blobs);
            out.push(format!("Deleted: {diff}"));
        }
        Ok(out)
    }

    /// Delete a layer's rows; returns its diff id and blobs, whose files the caller removes.
    fn forget_layer(
        &self,
        tx: &berth_store::rusqlite::Transaction<'_>,
        diff: &Digest,
    ) -> Result<(Digest, Vec<Digest>)> {
        let mut blobs = Vec::new();
        {
            let mut st = tx.prepare("SELECT blob FROM layer_blobs WHERE diff_id = ?1")?;
            for b in st.query_map([diff.as_str()], |r| r.get::<_, String>(0))? {
                if let Ok(d) = Digest::parse(&b?) {
                    blobs.push(d);
                }
            }
            let main: Option<String> = tx
                .query_row(
                    "SELECT blob FROM layers WHERE diff_id = ?1",
                    [diff.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(d) = main.and_then(|m| Digest::parse(&m).ok()) {
                if !blobs.contains(&d) {
                    blobs.push(d);
                }
            }
        }
        tx.execute(
            "DELETE FROM layer_blobs WHERE diff_id = ?1",
            [diff.as_str()],
        )?;
        tx.execute("DELETE FROM layers WHERE diff_id = ?1", [diff.as_str()])?;
        Ok((diff.clone(), blobs))
    }

    fn remove_layer_files(&self, diff: &Digest, blobs: &[Digest]) {
        let dir = layer_dir(self.store, diff);
        remove_tree(self.store, &dir);
        for b in blobs {
            if let Err(e) = self.store.remove_blob(b) {
                tracing::warn!("cannot remove blob {b}: {e}");
            }
        }
    }

    /// Remove dangling images (no tags), or with `all` every image no container uses, plus
    /// layers no image uses. Returns the lines to print and the bytes reclaimed.
    pub fn prune(&self, all: bool, in_use: &HashSet<Digest>) -> Result<(Vec<String>, u64)> {
        let mut out = Vec::new();
        let mut reclaimed = 0u64;
        for img in self.list()? {
            if in_use.contains(&img.id) || (!all && !img.tags.is_empty()) {
                continue;
            }
            let before = self.layer_sizes()?;
            out.extend(self.delete_image(&img)?);
            reclaimed += before.saturating_sub(self.layer_sizes()?);
        }
        // Layers recorded but never committed into an image (e.g. an interrupted pull).
        let db = self.store.db();
        let tx = db.unchecked_transaction()?;
        let used = layers_in_use(&tx)?;
        let mut orphans = Vec::new();
        {
            let mut st = tx.prepare("SELECT diff_id, size FROM layers")?;
            for r in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                let (d, size) = r?;
                if !used.contains(&d) {
                    if let Ok(d) = Digest::parse(&d) {
                        orphans.push((d, size as u64));
                    }
                }
            }
        }
        let mut gone = Vec::new();
        for (d, size) in &orphans {
            gone.push(self.forget_layer(&tx, d)?);
            reclaimed += size;
        }
        tx.commit()?;
        for (d, blobs) in gone {
            self.remove_layer_files(&d, &blobs);
        }
        self.sweep()?;
        Ok((out, reclaimed))
    }

    /// Remove these layers (rows, unpacked directories, blobs) unless an image uses them
    /// (e.g. layers only the build cache kept). Returns the bytes of content removed.
    pub fn remove_layers_unless_used(&self, diffs: &[Digest]) -> Result<u64> {
        let db = self.store.db();
        let tx = db.unchecked_transaction()?;
        let used = layers_in_use(&tx)?;
        let mut gone = Vec::new();
        let mut bytes = 0u64;
        for d in diffs {
            if used.contains(d.as_str()) {
                continue;
            }
            let size: Option<i64> = tx
                .query_row(
                    "SELECT size FROM layers WHERE diff_id = ?1",
                    [d.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(size) = size else { continue };
            bytes += u64::try_from(size).unwrap_or(0);
            gone.push(self.forget_layer(&tx, d)?);
        }
        tx.commit()?;
        for (d, blobs) in gone {
            self.remove_layer_files(&d, &blobs);
        }
        Ok(bytes)
    }

    fn layer_sizes(&self) -> Result<u64> {
        Ok(self
            .store
            .db()
            .query_row("SELECT COALESCE(SUM(size), 0) FROM layers", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }

    /// Crash recovery: remove `tmp/` entries of dead processes, layer directories no row
    /// refers to, and unreferenced blobs older than a grace period. Call with the store lock
    /// held exclusively (a concurrent ingest has files not yet recorded).
    pub fn sweep(&self) -> Result<()> {
        self.store.sweep_tmp()?;
        let db = self.store.db();
        let mut known_layers = HashSet::new();
        let mut known_blobs = HashSet::new();
        {
            let mut st = db.prepare("SELECT diff_id, blob FROM layers")?;
            for r in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))? {
                let (d, b) = r?;
                known_layers.insert(d.trim_start_matches("sha256:").to_string());
                known_blobs.insert(b);
            }
            let mut st = db.prepare("SELECT blob FROM layer_blobs")?;
            for b in st.query_map([], |r| r.get::<_, String>(0))? {
                known_blobs.insert(b?);
            }
            let mut st = db.prepare("SELECT id, manifest FROM images")?;
            for r in st.query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
            })? {
                let (id, m) = r?;
                known_blobs.insert(id);
                if let Some(m) = m {
                    known_blobs.insert(m);
                }
            }
        }
        let layers = self.store.root().join("layers");
        if let Ok(rd) = fs::read_dir(&layers) {
            for ent in rd.flatten() {
                let name = ent.file_name().to_string_lossy().into_owned();
                if !known_layers.contains(&name) {
                    tracing::info!("removing unreferenced layer directory {name}");
                    remove_tree(self.store, &ent.path());
                }
            }
        }
        let cutoff = SystemTime::now() - BLOB_GRACE;
        for b in self.store.list_blobs()? {
            if known_blobs.contains(b.as_str()) {
                continue;
            }
            let old = fs::metadata(self.store.blob_path(&b))
                .and_then(|m| m.modified())
                .map(|t| t < cutoff)
                .unwrap_or(false);
            if old {
                tracing::info!("removing unreferenced blob {b}");
                self.store.remove_blob(&b)?;
            }
        }
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

/// Diff ids referenced by any image row.
fn layers_in_use(tx: &berth_store::rusqlite::Connection) -> Result<BTreeSet<String>> {
    let mut used = BTreeSet::new();
    let mut st = tx.prepare("SELECT layers FROM images")?;
    for r in st.query_map([], |r| r.get::<_, String>(0))? {
        let ids: Vec<String> = serde_json::from_str(&r?).unwrap_or_default();
        used.extend(ids);
    }
    Ok(used)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest_layer;

    fn layer(store: &Store, content: &[u8]) -> Layer {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        h.set_size(content.len() as u64);
        b.append_data(&mut h, "f", content).unwrap();
        let t = b.into_inner().unwrap();
        ingest_layer(store.root(), &mut &t[..], Compression::None, None, None).unwrap()
    }

    fn config(layers: &[&Layer], cmd: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": [cmd]},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>()},
        }))
        .unwrap()
    }

    #[test]
    fn commit_resolve_tag_remove() {
        let dir = std::env::temp_dir().join(format!("berth-istore-{:016x}", rand::random::<u64>()));
        let store = Store::open(&dir).unwrap();
        let is = ImageStore::open(&store).unwrap();
        let a = layer(&store, b"a");
        let b = layer(&store, b"b");
        // Unrecorded layers are refused.
        let cfg1 = config(&[&a, &b], "one");
        assert!(is
            .commit_image(&cfg1, &[a.clone(), b.clone()], None, &[], None)
            .is_err());
        is.record_layer(&a).unwrap();
        is.record_layer(&a).unwrap();
        is.record_layer(&b).unwrap();
        assert_eq!(is.layer_by_blob(&a.blob).unwrap().unwrap(), a);
        assert_eq!(is.layer_by_diff_id(&b.diff_id).unwrap().unwrap(), b);
        // diff ids must match the config.
        assert!(is
            .commit_image(&cfg1, &[b.clone(), a.clone()], None, &[], None)
            .is_err());
        let app = Reference::parse("app").unwrap();
        let pinned =
            Reference::parse(&format!("reg.example/app@{}", Digest::sha256_of(b"m"))).unwrap();
        let id1 = is
            .commit_image(
                &cfg1,
                &[a.clone(), b.clone()],
                Some(b"m"),
                std::slice::from_ref(&app),
                Some(&pinned),
            )
            .unwrap();
        assert_eq!(id1, Digest::sha256_of(&cfg1));
        let img = is.resolve("app:latest").unwrap();
        assert_eq!(img.id, id1);
        assert_eq!(img.config.cmd.as_deref(), Some(&["one".to_string()][..]));
        assert_eq!(
            img.repo_digests,
            vec![format!("reg.example/app@{}", Digest::sha256_of(b"m"))]
        );
        assert_eq!(img.manifest, Some(Digest::sha256_of(b"m")));
        assert_eq!(is.resolve(&id1.hex()[..6]).unwrap().id, id1);
        assert_eq!(is.resolve(id1.as_str()).unwrap().id, id1);
        assert_eq!(is.resolve(&pinned.to_string()).unwrap().id, id1);
        assert!(matches!(is.resolve("nope"), Err(ImageError::NotFound(_))));
        assert!(matches!(is.resolve("Bad"), Err(ImageError::Reference(_))));
        assert_eq!(is.layer_dirs(&img).len(), 2);

        // A second image takes the tag; the first becomes dangling but stays.
        let cfg2 = config(&[&a], "two");
        let id2 = is
            .commit_image(
                &cfg2,
                std::slice::from_ref(&a),
                None,
                std::slice::from_ref(&app),
                None,
            )
            .unwrap();
        assert_eq!(is.resolve("app").unwrap().id, id2);
        assert!(is.get(&id1).unwrap().tags.is_empty());
        is.tag(&id2, &Reference::parse("other:1").unwrap()).unwrap();

        // In use: refused without force, untag only with force.
        let used: HashSet<Digest> = [id2.clone()].into_iter().collect();
        assert_eq!(
            is.remove("other:1", false, &used).unwrap(),
            vec!["Untagged: other:1"]
        );
        assert!(matches!(
            is.remove("app", false, &used),
            Err(ImageError::Conflict(_))
        ));
        assert!(matches!(
            is.remove(id2.as_str(), false, &used),
            Err(ImageError::Conflict(_))
        ));
        assert_eq!(
            is.remove("app", true, &used).unwrap(),
            vec!["Untagged: app:latest"]
        );
        assert!(is.get(&id2).is_ok());

        // Prune: dangling only, then everything unused; shared layer a stays while id2 lives.
        let (out, _) = is.prune(false, &used).unwrap();
        assert!(out.contains(&format!("Deleted: {id1}")), "{out:?}");
        assert!(out.contains(&format!("Deleted: {}", b.diff_id)), "{out:?}");
        assert!(!layer_dir(&store, &b.diff_id).exists());
        assert!(!store.has_blob(&b.blob));
        assert!(!store.has_blob(&Digest::sha256_of(b"m")));
        assert!(layer_dir(&store, &a.diff_id).is_dir());
        let (out, _) = is.prune(true, &HashSet::new()).unwrap();
        assert!(out.contains(&format!("Deleted: {id2}")), "{out:?}");
        assert!(is.list().unwrap().is_empty());
        assert_eq!(
            fs::read_dir(store.root().join("layers")).unwrap().count(),
            0
        );

        // Sweep removes unrecorded layer directories.
        let c = layer(&store, b"c");
        assert!(layer_dir(&store, &c.diff_id).is_dir());
        is.sweep().unwrap();
        assert!(!layer_dir(&store, &c.diff_id).exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
