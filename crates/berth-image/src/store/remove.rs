//! Removing images, tags and layers: `rmi`, prune and the sweep of unreferenced layers.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::time::SystemTime;

use berth_store::rusqlite::{params, OptionalExtension};
use berth_store::Digest;

use crate::{layer_dir, Image, ImageError, Reference, Result};

use super::*;

impl ImageStore<'_> {
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
                    self.untag(&r, &img)?;
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
                        self.untag(t, &img)?;
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

    /// `untag IMAGE [NAME...]` (Podman): remove the given tags of the image, or all its tags
    /// when none are given; the image itself stays (untagged images are listed as `<none>`).
    /// Returns `Untagged: NAME` lines. Errors: no such image, or a name that is not one of
    /// its tags.
    pub fn untag_image(&self, name_or_id: &str, names: &[Reference]) -> Result<Vec<String>> {
        let img = self.resolve(name_or_id)?;
        let targets: Vec<Reference> = if names.is_empty() {
            img.tags.clone()
        } else {
            names.to_vec()
        };
        let strip =
            |r: &Reference| r.name() + ":" + r.tag().unwrap_or(crate::reference::DEFAULT_TAG);
        for r in &targets {
            if !img.tags.iter().any(|t| strip(t) == strip(r)) {
                return Err(ImageError::NotFound(format!(
                    "{} is not a tag of image {}",
                    r.familiar(),
                    img.id.short()
                )));
            }
        }
        let mut out = Vec::new();
        for r in &targets {
            self.untag(r, &img)?;
            out.push(format!("Untagged: {}", r.familiar()));
        }
        Ok(out)
    }

    fn untag(&self, r: &Reference, img: &Image) -> Result<()> {
        let name = r.name() + ":" + r.tag().unwrap_or(crate::reference::DEFAULT_TAG);
        self.store
            .db()
            .execute("DELETE FROM tags WHERE name = ?1", [&name])?;
        crate::events::record(self.store, "untag", &r.familiar(), &r.familiar(), Some(img));
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

    /// Delete an image with its names; layers no other image uses and no holder leases go too.
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
        crate::events::record(
            self.store,
            "delete",
            img.id.as_str(),
            img.id.as_str(),
            Some(img),
        );
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
    /// layers no image uses and no holder leases (the build cache's stay, as Docker's
    /// `image prune -a` leaves BuildKit's cache to `builder prune`). Returns the lines to print and the bytes reclaimed.
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
            for r in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))? {
                let (d, size) = r?;
                if !used.contains(&d) {
                    if let Ok(d) = Digest::parse(&d) {
                        orphans.push((d, size));
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

    /// Keep the layer `diff` for `holder` (e.g. `build-cache`) even when no image uses it:
    /// `rmi`, `image prune` and [`ImageStore::remove_layers_unless_used`] leave it until
    /// every holder released it. Idempotent. Runs on the store's connection, so a caller's
    /// open transaction covers it.
    ///
    /// # Errors
    /// Database errors.
    pub fn lease_layer(&self, holder: &str, diff: &Digest) -> Result<()> {
        self.store.db().execute(
            "INSERT OR IGNORE INTO layer_leases(holder, diff_id) VALUES (?1, ?2)",
            params![holder, diff.as_str()],
        )?;
        Ok(())
    }

    /// Drop `holder`'s leases on `diffs` (the layers themselves stay until removed).
    /// Runs on the store's connection, so a caller's open transaction covers it.
    ///
    /// # Errors
    /// Database errors.
    pub fn release_layers(&self, holder: &str, diffs: &[Digest]) -> Result<()> {
        let db = self.store.db();
        for d in diffs {
            db.execute(
                "DELETE FROM layer_leases WHERE holder = ?1 AND diff_id = ?2",
                params![holder, d.as_str()],
            )?;
        }
        Ok(())
    }

    /// Remove these layers (rows, unpacked directories, blobs) unless an image uses them or a
    /// holder leases them (release the lease first). Returns the bytes of content removed.
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
                r.get::<_, u64>(0)
            })?)
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
}

/// Diff ids referenced by any image row or leased by a holder (the build cache).
fn layers_in_use(tx: &berth_store::rusqlite::Connection) -> Result<BTreeSet<String>> {
    let mut used = BTreeSet::new();
    let mut st = tx.prepare("SELECT layers FROM images")?;
    for r in st.query_map([], |r| r.get::<_, String>(0))? {
        let ids: Vec<String> = serde_json::from_str(&r?).unwrap_or_default();
        used.extend(ids);
    }
    let mut st = tx.prepare("SELECT DISTINCT diff_id FROM layer_leases")?;
    for r in st.query_map([], |r| r.get::<_, String>(0))? {
        used.insert(r?);
    }
    Ok(used)
}
