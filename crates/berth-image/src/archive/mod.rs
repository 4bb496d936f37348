//! docker-archive and oci-archive: load and save.
//!
//! Loading indexes the archive (a file; standard input is spooled to `tmp/` first), verifies
//! every digest it can (config names, blob names, descriptor sizes, `rootfs.diff_ids`),
//! ingests the layers in parallel and commits each image in one transaction. On failure the
//! layers this load published are removed again, so the store is as before.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use berth_store::Digest;
use serde_json::Value;

use crate::{ImageError, Reference, Result};

use crate::media::{self, Descriptor, MediaType, ANNOTATION_REF_NAME as ANN_REF_NAME};

/// containerd's annotation with the full image reference in an OCI layout's `index.json`.
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
    /// Parse a `--format` value: `docker-archive`/`docker` or `oci-archive`/`oci`.
    ///
    /// # Errors
    /// [`ImageError::Other`] naming the accepted values.
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
    /// The image id (digest of its config).
    pub id: Digest,
    /// Tags the archive gave it (none for an untagged image).
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
        let want = usize::try_from(left).map_or(buf.len(), |l| buf.len().min(l));
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
        // At most 64 MiB (checked above).
        let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        self.section(name)?
            .read_to_end(&mut buf)
            .map_err(|e| ImageError::io(&self.path, e))?;
        Ok(buf)
    }

    /// A blob of an OCI layout, verified against its descriptor.
    fn blob(&self, desc: &Descriptor) -> Result<Vec<u8>> {
        let data = self.read(&blob_member(&digest_of(desc, &self.path)?))?;
        check_blob(&data, desc, &self.path)?;
        Ok(data)
    }
}

fn check_blob(data: &[u8], desc: &Descriptor, path: &Path) -> Result<()> {
    let digest = digest_of(desc, path)?;
    let actual = Digest::compute(digest.algorithm(), data)
        .map_err(|e| ImageError::Archive(format!("{}: {e}", path.display())))?;
    if actual != digest {
        return Err(ImageError::Archive(format!(
            "{}: blob {digest} hashes to {actual}; the archive is corrupt",
            path.display(),
        )));
    }
    let s = desc.size();
    if s != data.len() as u64 {
        return Err(ImageError::Archive(format!(
            "{}: blob {digest} has {} bytes, its descriptor says {s}; the archive is corrupt",
            path.display(),
            data.len()
        )));
    }
    Ok(())
}

/// Member name of blob `d` in an OCI layout.
fn blob_member(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm(), d.hex())
}

/// The descriptor's digest as the blob store names it (checked when the descriptor was read).
fn digest_of(desc: &Descriptor, path: &Path) -> Result<Digest> {
    media::blob_digest(desc).map_err(|e| {
        ImageError::Archive(format!("{}: {e}; the archive is corrupt", path.display()))
    })
}

/// Read the descriptor `v` (of `what`, for messages) as an OCI descriptor, as leniently as
/// image tools write them: a missing `mediaType` is unknown (the loader looks inside), a
/// missing `size` is not checked (the member's own size is taken), non-string annotations and
/// a platform without `os`/`architecture` are ignored.
fn descriptor(v: &Value, what: &str, ar: &Archive) -> Result<Descriptor> {
    let bad = |why: String| {
        ImageError::Archive(format!(
            "{}: {what}: {why}; the archive is corrupt",
            ar.path.display()
        ))
    };
    let digest = v
        .get("digest")
        .and_then(|d| d.as_str())
        .ok_or_else(|| bad("descriptor has no digest".into()))?;
    let digest = Digest::parse(digest).map_err(|e| bad(e.to_string()))?;
    let mut v = v.clone();
    let Some(o) = v.as_object_mut() else {
        return Err(bad("descriptor is not an object".into()));
    };
    if !o.get("mediaType").is_some_and(Value::is_string) {
        o.insert("mediaType".into(), Value::from(""));
    }
    if !o.get("size").is_some_and(Value::is_u64) {
        let size = ar.locate(&blob_member(&digest)).map_or(0, |(_, s)| s);
        o.insert("size".into(), Value::from(size));
    }
    if let Some(a) = o.get_mut("annotations") {
        match a.as_object_mut() {
            Some(a) => a.retain(|_, v| v.is_string()),
            None => *a = Value::Null,
        }
    }
    if let Some(p) = o.get_mut("platform") {
        match p.as_object_mut() {
            Some(p) => {
                for k in ["os", "architecture"] {
                    if !p.get(k).is_some_and(Value::is_string) {
                        p.insert(k.into(), Value::from(""));
                    }
                }
            }
            None => *p = Value::Null,
        }
    }
    o.retain(|_, v| !v.is_null());
    serde_json::from_value(v).map_err(|e| bad(e.to_string()))
}

/// Whether the descriptor has no media type (the loader then looks inside the blob).
fn untyped(d: &Descriptor) -> bool {
    d.media_type().as_ref().is_empty()
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
mod load;
mod save;

pub use load::{load_file, load_reader};
pub use save::{oci_manifest, save, save_items, SaveItem};
