//! Loading docker-archive and oci-archive files (see the parent module).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use berth_store::Digest;
use serde_json::Value;

use crate::decompress::{self, StreamCompression, MAGIC_LEN};
use crate::store::config_diff_ids;
use crate::{
    ingest_layer, layer_dir, Compression, ImageError, ImageStore, Layer, Reference, Result,
};

use super::*;

struct Pending {
    config: Vec<u8>,
    manifest: Option<Vec<u8>>,
    /// (member name, expected blob digest) per layer, bottom first.
    layers: Vec<(String, Option<Digest>)>,
    diff_ids: Vec<Digest>,
    tags: Vec<Reference>,
}

/// Load every image in a docker-archive or oci-archive file, plain or compressed with gzip,
/// bzip2, xz or zstd (detected by content, whatever the file's name).
pub fn load_file(is: &ImageStore<'_>, path: &Path) -> Result<Vec<LoadedImage>> {
    load_file_inner(is, path).inspect(|l| record_loaded(is, l))
}

/// Docker's `load` event for each loaded image (actor: its id, `name`: its first tag).
fn record_loaded(is: &ImageStore<'_>, loaded: &[LoadedImage]) {
    for l in loaded {
        let name = l.tags.first().map(|t| t.familiar()).unwrap_or_default();
        crate::events::record(
            is.store(),
            "load",
            l.id.as_str(),
            &name,
            is.get(&l.id).ok().as_ref(),
        );
    }
}

fn load_file_inner(is: &ImageStore<'_>, path: &Path) -> Result<Vec<LoadedImage>> {
    let mut f = File::open(path).map_err(|e| ImageError::io(path, e))?;
    let mut head = Vec::new();
    (&mut f)
        .take(MAGIC_LEN as u64)
        .read_to_end(&mut head)
        .map_err(|e| ImageError::io(path, e))?;
    if StreamCompression::detect(&head) != StreamCompression::None {
        drop(f);
        let f = File::open(path).map_err(|e| ImageError::io(path, e))?;
        return load_stream(is, &mut io::BufReader::new(f), &path.display().to_string());
    }
    load_archive(is, &Archive::open(path)?)
}

/// Load from a stream (e.g. standard input), plain or compressed like [`load_file`]: spooled
/// to `tmp/` first, decompressed.
pub fn load_reader(is: &ImageStore<'_>, r: &mut dyn Read) -> Result<Vec<LoadedImage>> {
    load_stream(is, r, "standard input").inspect(|l| record_loaded(is, l))
}

fn load_stream(is: &ImageStore<'_>, r: &mut dyn Read, what: &str) -> Result<Vec<LoadedImage>> {
    let store = is.store();
    let spool = store.tmp_path("load.tar");
    let _guard = RemoveOnDrop(spool.clone());
    {
        let (comp, mut src) =
            decompress::decompressed(Box::new(r)).map_err(|e| ImageError::io(what, e))?;
        let mut out = File::create(&spool).map_err(|e| ImageError::io(&spool, e))?;
        let n = io::copy(&mut src, &mut out).map_err(|e| {
            let how = match comp {
                StreamCompression::None => String::new(),
                c => format!(" ({c} data)"),
            };
            ImageError::Archive(format!(
                "cannot read the archive from {what}{how}: {e}; the file is truncated or corrupt"
            ))
        })?;
        if n == 0 {
            return Err(ImageError::Archive(format!(
                "no archive data in {what}; use -i FILE or redirect a docker-archive or oci-archive into berth load"
            )));
        }
    }
    let mut ar = Archive::open(&spool)?;
    ar.path = PathBuf::from(what);
    load_archive(is, &ar)
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

fn load_archive(is: &ImageStore<'_>, ar: &Archive) -> Result<Vec<LoadedImage>> {
    let pending = if ar.has("manifest.json") {
        parse_docker(ar)?
    } else if ar.has("index.json") {
        parse_oci(ar)?
    } else {
        return Err(ImageError::Archive(format!(
            "{}: neither manifest.json (docker-archive) nor index.json (oci-archive) found; is this an image archive?",
            ar.path.display()
        )));
    };
    if pending.is_empty() {
        return Err(ImageError::Archive(format!(
            "{}: the archive holds no images",
            ar.path.display()
        )));
    }
    for p in &pending {
        if p.layers.len() != p.diff_ids.len() {
            return Err(ImageError::Archive(format!(
                "{}: an image has {} layers but its config lists {} diff ids; the archive is corrupt",
                ar.path.display(),
                p.layers.len(),
                p.diff_ids.len()
            )));
        }
    }
    let layers = ingest_all(is, ar, &pending)?;
    let mut out = Vec::new();
    for p in &pending {
        let ls: Vec<Layer> = p
            .diff_ids
            .iter()
            .map(|d| layers.get(d).cloned().expect("every layer was ingested"))
            .collect();
        let id = is.commit_image(&p.config, &ls, p.manifest.as_deref(), &p.tags, None)?;
        out.push(LoadedImage {
            id,
            tags: p.tags.clone(),
        });
    }
    Ok(out)
}

/// Ingest every distinct layer (in parallel) and record it. On error, layers this call
/// published are removed again.
fn ingest_all(
    is: &ImageStore<'_>,
    ar: &Archive,
    pending: &[Pending],
) -> Result<HashMap<Digest, Layer>> {
    let mut done: HashMap<Digest, Layer> = HashMap::new();
    let mut jobs: Vec<(String, Option<Digest>, Digest)> = Vec::new();
    let mut queued = HashSet::new();
    for p in pending {
        for ((member, blob), diff) in p.layers.iter().zip(&p.diff_ids) {
            if done.contains_key(diff) || queued.contains(diff) {
                continue;
            }
            if let Some(l) = is.layer_by_diff_id(diff)? {
                done.insert(diff.clone(), l);
                continue;
            }
            if !ar.has(member) {
                return Err(ImageError::Archive(format!(
                    "{}: layer {member:?} is missing; the archive is incomplete",
                    ar.path.display()
                )));
            }
            queued.insert(diff.clone());
            jobs.push((member.clone(), blob.clone(), diff.clone()));
        }
    }
    let root = is.store().root().to_path_buf();
    let preexisting: HashSet<Digest> = jobs
        .iter()
        .filter(|(_, _, d)| layer_dir(is.store(), d).exists())
        .map(|(_, _, d)| d.clone())
        .collect();
    let blobs_before: HashSet<Digest> = jobs
        .iter()
        .filter_map(|(_, b, _)| b.clone())
        .filter(|b| is.store().has_blob(b))
        .collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, Result<Layer>)>> = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4)
        .min(jobs.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((member, blob, diff)) = jobs.get(i) else {
                    break;
                };
                let r = ar
                    .section(member)
                    .and_then(|sec| ingest_member(&root, &ar.path, sec, blob.as_ref(), diff));
                let r = r.map_err(|e| ImageError::Archive(format!("layer {member:?}: {e}")));
                let failed = r.is_err();
                results.lock().expect("no panics while locked").push((i, r));
                if failed {
                    // Stop handing out work.
                    next.store(usize::MAX / 2, Ordering::SeqCst);
                }
            });
        }
    });
    let mut results = results.into_inner().expect("no panics while locked");
    results.sort_by_key(|(i, _)| *i);
    let mut first_err = None;
    let mut new = Vec::new();
    for (_, r) in results {
        match r {
            Ok(l) => new.push(l),
            Err(e) => {
                if first_err.is_none() {
                    first_err = Some(e);
                }
            }
        }
    }
    if first_err.is_none() {
        for l in &new {
            if let Err(e) = is.record_layer(l) {
                first_err = Some(e);
                break;
            }
        }
    }
    if let Some(e) = first_err {
        // Leave the store as it was: drop what this load published and nobody recorded.
        for l in &new {
            if preexisting.contains(&l.diff_id) || is.layer_recorded(&l.diff_id).unwrap_or(true) {
                continue;
            }
            crate::store::remove_tree(is.store(), &layer_dir(is.store(), &l.diff_id));
            if !blobs_before.contains(&l.blob) {
                let _ = is.store().remove_blob(&l.blob);
            }
        }
        return Err(e);
    }
    for l in new {
        done.insert(l.diff_id.clone(), l);
    }
    Ok(done)
}

/// Ingest one layer member of an archive. Layers kept as OCI allows (plain tar, gzip, zstd)
/// are stored as they are, checked against their blob digest. bzip2 and xz layers, which
/// Docker's `load` also reads (its `DecompressStream`) but no registry takes, are stored
/// as the uncompressed tar, whose digest is the diff id: still verified, against the diff id
/// listed in the config that the archive's manifest names by digest.
fn ingest_member(
    root: &Path,
    archive: &Path,
    sec: Section<'_>,
    blob: Option<&Digest>,
    diff: &Digest,
) -> Result<Layer> {
    let (comp, mut raw) =
        decompress::sniff(Box::new(sec)).map_err(|e| ImageError::io(archive, e))?;
    if comp.as_layer().is_some() {
        return ingest_layer(root, &mut raw, Compression::None, blob, Some(diff));
    }
    let mut tar = comp.decoder(raw).map_err(|e| ImageError::io(archive, e))?;
    ingest_layer(root, &mut tar, Compression::None, None, Some(diff))
}

fn parse_refs(tags: &[String], path: &Path) -> Result<Vec<Reference>> {
    tags.iter()
        .map(|t| {
            Reference::parse(t).map_err(|e| {
                ImageError::Archive(format!(
                    "{}: bad image name {t:?} in the archive: {e}",
                    path.display()
                ))
            })
        })
        .collect()
}

/// Expected digest from a member name like `blobs/sha256/<hex>` or `<hex>.json`.
fn digest_from_name(name: &str) -> Option<Digest> {
    let n = norm(name);
    if let Some(rest) = n.strip_prefix("blobs/") {
        let (algo, hex) = rest.split_once('/')?;
        return Digest::parse(&format!("{algo}:{hex}")).ok();
    }
    let base = n.rsplit('/').next()?;
    let hex = base.strip_suffix(".json")?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}

fn parse_docker(ar: &Archive) -> Result<Vec<Pending>> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Entry {
        config: String,
        #[serde(default)]
        repo_tags: Option<Vec<String>>,
        #[serde(default)]
        layers: Vec<String>,
    }
    let data = ar.read("manifest.json")?;
    let entries: Vec<Entry> = serde_json::from_slice(&data).map_err(|e| {
        ImageError::Archive(format!(
            "{}: manifest.json is not a valid docker-archive manifest: {e}",
            ar.path.display()
        ))
    })?;
    let mut out = Vec::new();
    for e in entries {
        let config = ar.read(&e.config)?;
        // The config's name is its digest (<hex>.json or blobs/sha256/<hex>).
        if let Some(d) = digest_from_name(&e.config) {
            let actual = Digest::compute(d.algorithm(), &config)
                .map_err(|x| ImageError::Archive(format!("{}: {x}", ar.path.display())))?;
            if actual != d {
                return Err(ImageError::Archive(format!(
                    "{}: config {:?} hashes to {actual}; the archive is corrupt",
                    ar.path.display(),
                    e.config
                )));
            }
        }
        let diff_ids = config_diff_ids(&config).map_err(|x| {
            ImageError::Archive(format!("{}: config {:?}: {x}", ar.path.display(), e.config))
        })?;
        let layers = e
            .layers
            .iter()
            .map(|l| {
                let blob = if norm(l).starts_with("blobs/") {
                    digest_from_name(l)
                } else {
                    None
                };
                (l.clone(), blob)
            })
            .collect();
        out.push(Pending {
            config,
            manifest: None,
            layers,
            diff_ids,
            tags: parse_refs(&e.repo_tags.unwrap_or_default(), &ar.path)?,
        });
    }
    Ok(out)
}

fn image_name_from(desc: &Descriptor) -> Option<String> {
    let ann = desc.annotations().as_ref()?;
    if let Some(n) = ann.get(ANN_CONTAINERD_NAME) {
        return Some(n.clone());
    }
    let n = ann.get(ANN_REF_NAME)?;
    // A bare tag ("latest") names no repository.
    if n.contains(':') || n.contains('/') {
        Some(n.clone())
    } else {
        None
    }
}

fn parse_oci(ar: &Archive) -> Result<Vec<Pending>> {
    if !ar.has("oci-layout") {
        return Err(ImageError::Archive(format!(
            "{}: index.json without oci-layout; not an OCI image layout",
            ar.path.display()
        )));
    }
    let index: Value = serde_json::from_slice(&ar.read("index.json")?).map_err(|e| {
        ImageError::Archive(format!(
            "{}: index.json is not valid JSON: {e}",
            ar.path.display()
        ))
    })?;
    let mut by_manifest: Vec<(Descriptor, Vec<String>)> = Vec::new();
    for m in index
        .get("manifests")
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default()
    {
        let d = descriptor(&m, "index.json", ar)?;
        let name = image_name_from(&d);
        let manifest_desc = resolve_manifest(ar, d, 0)?;
        let slot = by_manifest
            .iter()
            .position(|(x, _)| x.digest() == manifest_desc.digest());
        let slot = match slot {
            Some(i) => i,
            None => {
                by_manifest.push((manifest_desc, Vec::new()));
                by_manifest.len() - 1
            }
        };
        if let Some(n) = name {
            by_manifest[slot].1.push(n);
        }
    }
    let mut out = Vec::new();
    for (desc, names) in by_manifest {
        let manifest = ar.blob(&desc)?;
        let desc_digest = desc.digest();
        let mv: Value = serde_json::from_slice(&manifest).map_err(|e| {
            ImageError::Archive(format!(
                "{}: manifest {} is not valid JSON: {e}",
                ar.path.display(),
                desc_digest
            ))
        })?;
        let cdesc = descriptor(
            mv.get("config").unwrap_or(&Value::Null),
            &format!("manifest {desc_digest} config"),
            ar,
        )?;
        let config = ar.blob(&cdesc)?;
        let diff_ids = config_diff_ids(&config).map_err(|x| {
            ImageError::Archive(format!(
                "{}: config {}: {x}",
                ar.path.display(),
                cdesc.digest()
            ))
        })?;
        let mut layers = Vec::new();
        for l in mv
            .get("layers")
            .and_then(|l| l.as_array())
            .cloned()
            .unwrap_or_default()
        {
            let ld = descriptor(&l, &format!("manifest {desc_digest} layer"), ar)?;
            let digest = digest_of(&ld, &ar.path)?;
            let member = blob_member(&digest);
            if let Some((_, actual)) = ar.locate(&member) {
                let size = ld.size();
                if size != actual {
                    return Err(ImageError::Archive(format!(
                        "{}: layer {digest} has {actual} bytes, its descriptor says {size}; the archive is corrupt",
                        ar.path.display(),
                    )));
                }
            }
            layers.push((member, Some(digest)));
        }
        out.push(Pending {
            config,
            manifest: Some(manifest),
            layers,
            diff_ids,
            tags: parse_refs(&names, &ar.path)?,
        });
    }
    Ok(out)
}

/// Follow (nested) indexes down to the image manifest for this platform.
fn resolve_manifest(ar: &Archive, d: Descriptor, depth: usize) -> Result<Descriptor> {
    if depth > 4 {
        return Err(ImageError::Archive(format!(
            "{}: image indexes nested too deeply",
            ar.path.display()
        )));
    }
    if !media::is_index(d.media_type()) {
        if !untyped(&d) && !media::is_manifest(d.media_type()) {
            return Err(ImageError::Archive(format!(
                "{}: unsupported manifest media type {:?}",
                ar.path.display(),
                d.media_type().as_ref()
            )));
        }
        if untyped(&d) {
            // Unknown: look inside.
            let v: Value = serde_json::from_slice(&ar.blob(&d)?).unwrap_or(Value::Null);
            if v.get("manifests").is_some() {
                let mut d2 = d.clone();
                d2.set_media_type(MediaType::ImageIndex);
                return resolve_manifest(ar, d2, depth);
            }
        }
        return Ok(d);
    }
    let v: Value = serde_json::from_slice(&ar.blob(&d)?).map_err(|e| {
        ImageError::Archive(format!(
            "{}: index {} is not valid JSON: {e}",
            ar.path.display(),
            d.digest()
        ))
    })?;
    let mut cands = Vec::new();
    for m in v
        .get("manifests")
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default()
    {
        cands.push(descriptor(&m, &format!("index {}", d.digest()), ar)?);
    }
    let arch = host_arch();
    let pick = cands
        .iter()
        .find(|c| {
            c.platform().as_ref().is_some_and(|p| {
                p.os().to_string() == "linux" && p.architecture().to_string() == arch
            })
        })
        .or_else(|| {
            cands.iter().find(|c| {
                c.platform().is_none()
                    && media::blob_digest(c).is_ok_and(|d| ar.has(&blob_member(&d)))
            })
        })
        .cloned()
        .ok_or_else(|| {
            ImageError::Archive(format!(
                "{}: index {} has no image for linux/{arch}",
                ar.path.display(),
                d.digest()
            ))
        })?;
    resolve_manifest(ar, pick, depth + 1)
}

// ---------------------------------------------------------------------------------------------
// save
