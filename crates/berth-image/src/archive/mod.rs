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
mod load;
mod save;

pub use load::{load_file, load_reader};
pub use save::{oci_manifest, save, SaveItem};
