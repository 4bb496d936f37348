//! docker-archive and oci-archive: load and save.
//!
//! Loading indexes the archive (a file; standard input is spooled to `tmp/` first), verifies
//! every digest it can (config names, blob names, descriptor sizes, `rootfs.diff_ids`),
//! ingests the layers in parallel and commits each image in one transaction. On failure the
//! layers this load published are removed again, so the store is as before.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use berth_store::{Digest, Hasher};
use serde_json::{json, Value};

use crate::decompress::{self, StreamCompression, MAGIC_LEN};
use crate::store::config_diff_ids;
use crate::unpack::decompressor;
use crate::{
    ingest_layer, layer_dir, Compression, Image, ImageError, ImageStore, Layer, Reference, Result,
};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";
const ANN_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Archive formats for `save`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `docker save` format: `manifest.json`, `<config>.json`, uncompressed `<id>/layer.tar`.
    Docker,
    /// OCI image layout in a tar: `oci-layout`, `index.json`, `blobs/sha256/…`.
    Oci,
}

impl ArchiveFormat {
    pub fn parse(s: &str) -> Result<ArchiveFormat> {
        match s {
            "docker-archive" | "docker" => Ok(ArchiveFormat::Docker),
            "oci-archive" | "oci" => Ok(ArchiveFormat::Oci),
            other => Err(ImageError::Other(format!(
                "unknown archive format {other:?}: use docker-archive or oci-archive"
            ))),
        }
    }
}

/// One image a load committed.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    pub id: Digest,
    pub tags: Vec<Reference>,
}

/// Where a member's data lies in the archive file.
#[derive(Debug, Clone)]
enum Member {
    File { offset: u64, size: u64 },
    Link(String),
}

/// An indexed tar archive on disk.
struct Archive {
    file: File,
    path: PathBuf,
    members: HashMap<String, Member>,
}

/// A reader over a byte range of a file (positional reads: shareable between threads).
struct Section<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for Section<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(left as usize);
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive is truncated",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Normalise a member name: no leading `./` or `/`, no `.` components, `..` resolved.
fn norm(name: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out.join("/")
}

impl Archive {
    fn open(path: &Path) -> Result<Archive> {
        let file = File::open(path).map_err(|e| ImageError::io(path, e))?;
        let mut members = HashMap::new();
        {
            let mut ar = tar::Archive::new(&file);
            let bad = |e: io::Error| {
                ImageError::Archive(format!(
                    "{}: not a valid tar archive: {e}; give a docker-archive or oci-archive (e.g. from docker save)",
                    path.display()
                ))
            };
            for e in ar.entries_with_seek().map_err(bad)? {
                let e = e.map_err(bad)?;
                let name = norm(&String::from_utf8_lossy(&e.path_bytes()));
                let kind = e.header().entry_type();
                if kind.is_file() {
                    members.insert(
                        name,
                        Member::File {
                            offset: e.raw_file_position(),
                            size: e.size(),
                        },
                    );
                } else if kind.is_symlink() || kind.is_hard_link() {
                    let target = e
                        .link_name_bytes()
                        .map(|t| String::from_utf8_lossy(&t).into_owned())
                        .unwrap_or_default();
                    let target = if kind.is_symlink() && !target.starts_with('/') {
                        let dir = name.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                        norm(&format!("{dir}/{target}"))
                    } else {
                        norm(&target)
                    };
                    members.insert(name, Member::Link(target));
                }
            }
        }
        Ok(Archive {
            file,
            path: path.to_path_buf(),
            members,
        })
    }

    /// Offset and size of a member (following links inside the archive).
    fn locate(&self, name: &str) -> Option<(u64, u64)> {
        let mut n = norm(name);
        for _ in 0..16 {
            match self.members.get(&n)? {
                Member::File { offset, size } => return Some((*offset, *size)),
                Member::Link(t) => n = t.clone(),
            }
        }
        None
    }

    fn has(&self, name: &str) -> bool {
        self.locate(name).is_some()
    }

    fn section(&self, name: &str) -> Result<Section<'_>> {
        let (offset, size) = self.locate(name).ok_or_else(|| {
            ImageError::Archive(format!(
                "{}: member {name:?} is missing; the archive is incomplete",
                self.path.display()
            ))
        })?;
        Ok(Section {
            file: &self.file,
            pos: offset,
            end: offset + size,
        })
    }

    /// A small member (JSON), at most 64 MiB.
    fn read(&self, name: &str) -> Result<Vec<u8>> {
        let (_, size) = self.locate(name).ok_or_else(|| {
            ImageError::Archive(format!(
                "{}: member {name:?} is missing; the archive is incomplete",
                self.path.display()
            ))
        })?;
        if size > 64 << 20 {
            return Err(ImageError::Archive(format!(
                "{}: member {name:?} is too large ({size} bytes) for a JSON document",
                self.path.display()
            )));
        }
        let mut buf = Vec::with_capacity(size as usize);
        self.section(name)?
            .read_to_end(&mut buf)
            .map_err(|e| ImageError::io(&self.path, e))?;
        Ok(buf)
    }

    /// A blob of an OCI layout, verified against its descriptor.
    fn blob(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        let name = format!("blobs/{}/{}", desc.digest.algorithm(), desc.digest.hex());
        let data = self.read(&name)?;
        check_blob(&data, desc, &self.path)?;
        Ok(data)
    }
}

fn check_blob(data: &[u8], desc: &Descriptor, path: &Path) -> Result<()> {
    let actual = Digest::compute(desc.digest.algorithm(), data)
        .map_err(|e| ImageError::Archive(format!("{}: {e}", path.display())))?;
    if actual != desc.digest {
        return Err(ImageError::Archive(format!(
            "{}: blob {} hashes to {actual}; the archive is corrupt",
            path.display(),
            desc.digest
        )));
    }
    if let Some(s) = desc.size {
        if s != data.len() as u64 {
            return Err(ImageError::Archive(format!(
                "{}: blob {} has {} bytes, its descriptor says {s}; the archive is corrupt",
                path.display(),
                desc.digest,
                data.len()
            )));
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct Descriptor {
    media_type: String,
    digest: Digest,
    size: Option<u64>,
    annotations: HashMap<String, String>,
    platform: Option<(String, String)>,
}

fn descriptor(v: &Value, what: &str, path: &Path) -> Result<Descriptor> {
    let bad = |why: String| {
        ImageError::Archive(format!(
            "{}: {what}: {why}; the archive is corrupt",
            path.display()
        ))
    };
    let digest = v
        .get("digest")
        .and_then(|d| d.as_str())
        .ok_or_else(|| bad("descriptor has no digest".into()))?;
    let digest = Digest::parse(digest).map_err(|e| bad(e.to_string()))?;
    let annotations = v
        .get("annotations")
        .and_then(|a| a.as_object())
        .map(|a| {
            a.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let platform = v.get("platform").map(|p| {
        (
            p.get("os")
                .and_then(|o| o.as_str())
                .unwrap_or("")
                .to_string(),
            p.get("architecture")
                .and_then(|o| o.as_str())
                .unwrap_or("")
                .to_string(),
        )
    });
    Ok(Descriptor {
        media_type: v
            .get("mediaType")
            .and_then(|m| m.as_str())
            .unwrap_or("")
            .to_string(),
        digest,
        size: v.get("size").and_then(|s| s.as_u64()),
        annotations,
        platform,
    })
}

/// `amd64`, `arm64`, … for this host (OCI platform names).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// An image found in an archive, before ingestion.
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
    load_stream(is, r, "standard input")
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
    if let Some(n) = desc.annotations.get(ANN_CONTAINERD_NAME) {
        return Some(n.clone());
    }
    let n = desc.annotations.get(ANN_REF_NAME)?;
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
        let d = descriptor(&m, "index.json", &ar.path)?;
        let name = image_name_from(&d);
        let manifest_desc = resolve_manifest(ar, d, 0)?;
        let slot = by_manifest
            .iter()
            .position(|(x, _)| x.digest == manifest_desc.digest);
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
        let mv: Value = serde_json::from_slice(&manifest).map_err(|e| {
            ImageError::Archive(format!(
                "{}: manifest {} is not valid JSON: {e}",
                ar.path.display(),
                desc.digest
            ))
        })?;
        let cdesc = descriptor(
            mv.get("config").unwrap_or(&Value::Null),
            &format!("manifest {} config", desc.digest),
            &ar.path,
        )?;
        let config = ar.blob(&cdesc)?;
        let diff_ids = config_diff_ids(&config).map_err(|x| {
            ImageError::Archive(format!(
                "{}: config {}: {x}",
                ar.path.display(),
                cdesc.digest
            ))
        })?;
        let mut layers = Vec::new();
        for l in mv
            .get("layers")
            .and_then(|l| l.as_array())
            .cloned()
            .unwrap_or_default()
        {
            let ld = descriptor(&l, &format!("manifest {} layer", desc.digest), &ar.path)?;
            let member = format!("blobs/{}/{}", ld.digest.algorithm(), ld.digest.hex());
            if let (Some(size), Some((_, actual))) = (ld.size, ar.locate(&member)) {
                if size != actual {
                    return Err(ImageError::Archive(format!(
                        "{}: layer {} has {actual} bytes, its descriptor says {size}; the archive is corrupt",
                        ar.path.display(),
                        ld.digest
                    )));
                }
            }
            layers.push((member, Some(ld.digest)));
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
    let is_index = d.media_type == OCI_INDEX || d.media_type == DOCKER_LIST;
    if !is_index {
        if !d.media_type.is_empty()
            && d.media_type != OCI_MANIFEST
            && d.media_type != DOCKER_MANIFEST
        {
            return Err(ImageError::Archive(format!(
                "{}: unsupported manifest media type {:?}",
                ar.path.display(),
                d.media_type
            )));
        }
        if d.media_type.is_empty() {
            // Unknown: look inside.
            let v: Value = serde_json::from_slice(&ar.blob(&d)?).unwrap_or(Value::Null);
            if v.get("manifests").is_some() {
                let mut d2 = d.clone();
                d2.media_type = OCI_INDEX.into();
                return resolve_manifest(ar, d2, depth);
            }
        }
        return Ok(d);
    }
    let v: Value = serde_json::from_slice(&ar.blob(&d)?).map_err(|e| {
        ImageError::Archive(format!(
            "{}: index {} is not valid JSON: {e}",
            ar.path.display(),
            d.digest
        ))
    })?;
    let mut cands = Vec::new();
    for m in v
        .get("manifests")
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default()
    {
        cands.push(descriptor(&m, &format!("index {}", d.digest), &ar.path)?);
    }
    let arch = host_arch();
    let pick = cands
        .iter()
        .find(|c| matches!(&c.platform, Some((os, a)) if os == "linux" && a == arch))
        .or_else(|| {
            cands.iter().find(|c| {
                c.platform.is_none()
                    && ar.has(&format!(
                        "blobs/{}/{}",
                        c.digest.algorithm(),
                        c.digest.hex()
                    ))
            })
        })
        .cloned()
        .ok_or_else(|| {
            ImageError::Archive(format!(
                "{}: index {} has no image for linux/{arch}",
                ar.path.display(),
                d.digest
            ))
        })?;
    resolve_manifest(ar, pick, depth + 1)
}

// ---------------------------------------------------------------------------------------------
// save
// ---------------------------------------------------------------------------------------------

/// An image to save and the names to record for it.
#[derive(Debug, Clone)]
pub struct SaveItem {
    pub image: Image,
    pub names: Vec<Reference>,
}

/// Decompresses a stored layer blob and checks length and diff id at the end.
struct DiffReader<'a> {
    inner: Box<dyn Read + 'a>,
    hasher: Option<Hasher>,
    n: u64,
    layer: &'a Layer,
}

impl Read for DiffReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            if let Some(h) = self.hasher.take() {
                let d = h.finish();
                if d != self.layer.diff_id || self.n != self.layer.diff_size {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "stored layer {} is corrupt (content hashes to {d}); remove the image and load or pull it again",
                            self.layer.diff_id
                        ),
                    ));
                }
            }
            return Ok(0);
        }
        self.n += n as u64;
        if self.n > self.layer.diff_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "stored layer {} is longer than recorded; it is corrupt",
                    self.layer.diff_id
                ),
            ));
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

fn append(
    b: &mut tar::Builder<&mut dyn Write>,
    name: &str,
    size: u64,
    data: &mut dyn Read,
) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(0);
    b.append_data(&mut h, name, data)
        .map_err(|e| ImageError::Other(format!("cannot write the archive member {name}: {e}")))
}

fn append_dir(b: &mut tar::Builder<&mut dyn Write>, name: &str) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h.set_mtime(0);
    b.append_data(&mut h, name, io::empty())
        .map_err(|e| ImageError::Other(format!("cannot write the archive member {name}: {e}")))
}

/// Write images as an archive of the given format.
pub fn save(
    is: &ImageStore<'_>,
    items: &[SaveItem],
    format: ArchiveFormat,
    out: &mut dyn Write,
) -> Result<()> {
    let mut b = tar::Builder::new(out);
    match format {
        ArchiveFormat::Docker => save_docker(is, items, &mut b)?,
        ArchiveFormat::Oci => save_oci(is, items, &mut b)?,
    }
    b.into_inner()
        .and_then(|w| w.flush())
        .map_err(|e| ImageError::Other(format!("cannot finish the archive: {e}")))?;
    Ok(())
}

fn save_docker(
    is: &ImageStore<'_>,
    items: &[SaveItem],
    b: &mut tar::Builder<&mut dyn Write>,
) -> Result<()> {
    let store = is.store();
    let mut written = HashSet::new();
    let mut manifest = Vec::new();
    for it in items {
        let mut layer_names = Vec::new();
        for l in &it.image.layers {
            let name = format!("{}/layer.tar", l.diff_id.hex());
            if written.insert(l.diff_id.clone()) {
                append_dir(b, &format!("{}/", l.diff_id.hex()))?;
                let blob = store.open_blob(&l.blob)?;
                let inner = decompressor(Box::new(blob), l.compression).map_err(|e| {
                    ImageError::Other(format!("cannot read layer {}: {e}", l.diff_id))
                })?;
                let mut r = DiffReader {
                    inner,
                    hasher: Some(Hasher::sha256()),
                    n: 0,
                    layer: l,
                };
                append(b, &name, l.diff_size, &mut r)?;
            }
            layer_names.push(name);
        }
        let cfg_name = format!("{}.json", it.image.id.hex());
        if written.insert(it.image.id.clone()) {
            append(
                b,
                &cfg_name,
                it.image.raw_config.len() as u64,
                &mut &it.image.raw_config[..],
            )?;
        }
        let tags: Vec<String> = it.names.iter().map(|r| r.familiar()).collect();
        manifest.push(json!({
            "Config": cfg_name,
            "RepoTags": if tags.is_empty() { Value::Null } else { json!(tags) },
            "Layers": layer_names,
        }));
    }
    let m = serde_json::to_vec(&manifest).expect("json");
    append(b, "manifest.json", m.len() as u64, &mut &m[..])?;
    // `repositories` (legacy): repo -> tag -> top layer id.
    let mut repos: serde_json::Map<String, Value> = serde_json::Map::new();
    for it in items {
        if let Some(top) = it.image.layers.last() {
            for r in &it.names {
                let e = repos.entry(r.familiar_name()).or_insert_with(|| json!({}));
                e[r.tag().unwrap_or("latest")] = json!(top.diff_id.hex());
            }
        }
    }
    if !repos.is_empty() {
        let r = serde_json::to_vec(&repos).expect("json");
        append(b, "repositories", r.len() as u64, &mut &r[..])?;
    }
    Ok(())
}

/// The OCI manifest berth writes for an image (layers as stored).
pub fn oci_manifest(image: &Image) -> Vec<u8> {
    let m = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": image.id.as_str(),
            "size": image.raw_config.len(),
        },
        "layers": image.layers.iter().map(|l| json!({
            "mediaType": l.compression.oci_media_type(),
            "digest": l.blob.as_str(),
            "size": l.blob_size,
        })).collect::<Vec<_>>(),
    });
    serde_json::to_vec(&m).expect("json")
}

fn save_oci(
    is: &ImageStore<'_>,
    items: &[SaveItem],
    b: &mut tar::Builder<&mut dyn Write>,
) -> Result<()> {
    let store = is.store();
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    append(b, "oci-layout", layout.len() as u64, &mut &layout[..])?;
    append_dir(b, "blobs/")?;
    append_dir(b, "blobs/sha256/")?;
    let mut written = HashSet::new();
    let mut descs = Vec::new();
    for it in items {
        for l in &it.image.layers {
            if written.insert(l.blob.clone()) {
                let mut r = store.open_blob(&l.blob)?;
                append(
                    b,
                    &format!("blobs/sha256/{}", l.blob.hex()),
                    l.blob_size,
                    &mut r,
                )?;
            }
        }
        if written.insert(it.image.id.clone()) {
            append(
                b,
                &format!("blobs/sha256/{}", it.image.id.hex()),
                it.image.raw_config.len() as u64,
                &mut &it.image.raw_config[..],
            )?;
        }
        let manifest = oci_manifest(&it.image);
        let md = Digest::sha256_of(&manifest);
        if written.insert(md.clone()) {
            append(
                b,
                &format!("blobs/sha256/{}", md.hex()),
                manifest.len() as u64,
                &mut &manifest[..],
            )?;
        }
        let desc = json!({
            "mediaType": OCI_MANIFEST,
            "digest": md.as_str(),
            "size": manifest.len(),
        });
        if it.names.is_empty() {
            descs.push(desc.clone());
        }
        for r in &it.names {
            let mut d = desc.clone();
            d["annotations"] = json!({
                ANN_CONTAINERD_NAME: r.to_string(),
                ANN_REF_NAME: r.tag().unwrap_or("latest"),
            });
            descs.push(d);
        }
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": descs,
    }))
    .expect("json");
    append(b, "index.json", index.len() as u64, &mut &index[..])?;
    Ok(())
}
