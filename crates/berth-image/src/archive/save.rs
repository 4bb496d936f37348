//! Saving images as a docker-archive or an oci-archive.

use std::collections::HashSet;
use std::io::{self, Read, Write};

use berth_store::{Digest, Hasher};
use serde_json::{json, Value};

use crate::unpack::decompressor;
use crate::{Image, ImageError, ImageStore, Layer, Reference, Result};

use super::*;

/// An image to save and the names to record for it.
#[derive(Debug, Clone)]
pub struct SaveItem {
    /// The image to write.
    pub image: Image,
    /// Names to record for it in the archive (`RepoTags`, `org.opencontainers.image.ref.name`);
    /// empty: untagged.
    pub names: Vec<Reference>,
}

/// The images `names` (tags, ids, id prefixes, digests) refer to, each once, with the names
/// to record for it, as Docker's `save` does: a tag names itself, an image id (full or a
/// prefix, with or without `sha256:`) records no name (an untagged entry), anything else
/// (a repository@digest) every tag of the image. Errors: an unknown or ambiguous name.
pub fn save_items(is: &ImageStore<'_>, names: &[String]) -> Result<Vec<SaveItem>> {
    let mut items: Vec<SaveItem> = Vec::new();
    for name in names {
        let image = is.resolve(name)?;
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        let refs = match Reference::parse(name) {
            Ok(r) if r.digest().is_none() && image.tags.contains(&r) => vec![r],
            _ if !hex.is_empty()
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
                && image.id.hex().starts_with(hex) =>
            {
                Vec::new()
            }
            _ => image.tags.clone(),
        };
        if let Some(it) = items.iter_mut().find(|i| i.image.id == image.id) {
            for n in refs {
                if !it.names.contains(&n) {
                    it.names.push(n);
                }
            }
        } else {
            items.push(SaveItem { image, names: refs });
        }
    }
    Ok(items)
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
    // Docker's `save` event per image (actor: its id, `name`: the first name given).
    for it in items {
        let name = it.names.first().map(|t| t.familiar()).unwrap_or_default();
        crate::events::record(
            is.store(),
            "save",
            it.image.id.as_str(),
            &name,
            Some(&it.image),
        );
    }
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
        "mediaType": MediaType::ImageManifest.as_ref(),
        "config": {
            "mediaType": MediaType::ImageConfig.as_ref(),
            "digest": image.id.as_str(),
            "size": image.raw_config.len(),
        },
        "layers": image.layers.iter().map(|l| json!({
            "mediaType": l.compression.oci_media_type().as_ref(),
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
            "mediaType": MediaType::ImageManifest.as_ref(),
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
        "mediaType": MediaType::ImageIndex.as_ref(),
        "manifests": descs,
    }))
    .expect("json");
    append(b, "index.json", index.len() as u64, &mut &index[..])?;
    Ok(())
}
