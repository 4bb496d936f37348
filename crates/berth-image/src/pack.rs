//! Layers from directories: an overlayfs upper directory (a build step's or a container's
//! changes) becomes one OCI layer, compressed once into a blob, and the directory itself
//! becomes the unpacked layer (it already is in the overlay lower-dir format).
//!
//! overlayfs → OCI: a whiteout (character device 0/0) becomes an empty `.wh.NAME` entry, an
//! opaque directory (`trusted.overlay.opaque=y`) gets a `.wh..wh..opq` entry; hard links,
//! extended attributes (file capabilities included, as PAX `SCHILY.xattr.*` records), device
//! nodes and FIFOs are kept; overlayfs' own bookkeeping attributes are dropped.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_store::{BlobWriter, Digest, Hasher};

use crate::{layer_dir_in, Compression, ImageError, Layer, Result};

/// Counts and hashes the uncompressed tar on its way to the compressor.
struct DiffWriter<W: Write> {
    inner: W,
    hasher: Hasher,
    n: u64,
}

impl<W: Write> Write for DiffWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The compressor in front of the blob writer.
enum Compressor {
    None(BlobWriter),
    Gzip(flate2::write::GzEncoder<BlobWriter>),
    Zstd(zstd::stream::write::Encoder<'static, BlobWriter>),
}

impl Write for Compressor {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::None(w) => w.write(buf),
            Compressor::Gzip(w) => w.write(buf),
            Compressor::Zstd(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::None(w) => w.flush(),
            Compressor::Gzip(w) => w.flush(),
            Compressor::Zstd(w) => w.flush(),
        }
    }
}

impl Compressor {
    fn finish(self) -> io::Result<BlobWriter> {
        match self {
            Compressor::None(w) => Ok(w),
            Compressor::Gzip(w) => w.finish(),
            Compressor::Zstd(w) => w.finish(),
        }
    }
}

fn io_err(p: &Path) -> impl FnOnce(io::Error) -> ImageError + '_ {
    move |e| ImageError::io(p, e)
}

/// Extended attributes of `p` (not following symlinks) worth keeping in a layer.
fn xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let n = match rustix::fs::llistxattr(p, &mut names[..]) {
        Ok(n) => n,
        Err(_) => return Vec::new(),
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let Ok(k) = std::str::from_utf8(name) else {
            continue;
        };
        if k.starts_with("trusted.overlay.") || k == "security.selinux" {
            continue;
        }
        let mut val = vec![0u8; 64 * 1024];
        if let Ok(len) = rustix::fs::lgetxattr(p, k, &mut val[..]) {
            val.truncate(len);
            out.push((k.to_string(), val));
        }
    }
    out
}

fn is_opaque(p: &Path) -> bool {
    let mut v = [0u8; 4];
    matches!(rustix::fs::lgetxattr(p, "trusted.overlay.opaque", &mut v[..]), Ok(1) if v[0] == b'y')
}

/// Drop overlayfs' bookkeeping attributes (origin, impure, …) except the opaque marker, so
/// the directory can serve as a lower layer.
fn clean_overlay_xattrs(p: &Path) {
    let mut names = vec![0u8; 4096];
    let Ok(n) = rustix::fs::llistxattr(p, &mut names[..]) else {
        return;
    };
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        if name.starts_with(b"trusted.overlay.") && name != b"trusted.overlay.opaque" {
            let _ = rustix::fs::lremovexattr(p, OsStr::from_bytes(name));
        }
    }
}

struct Packer<W: Write> {
    b: tar::Builder<W>,
    /// Remove overlayfs bookkeeping attributes from the source as it is read (only for a
    /// directory that is about to become a layer, never for a live upper directory).
    clean: bool,
    /// (dev, ino) of regular files with several links → first path written.
    links: HashMap<(u64, u64), PathBuf>,
    size: u64,
}

fn header_for(md: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(u64::from(md.uid()));
    h.set_gid(u64::from(md.gid()));
    h.set_mtime(u64::try_from(md.mtime()).unwrap_or(0));
    h.set_size(0);
    h
}

impl<W: Write> Packer<W> {
    fn pax(&mut self, x: &[(String, Vec<u8>)]) -> io::Result<()> {
        if x.is_empty() {
            return Ok(());
        }
        let recs: Vec<(String, &[u8])> = x
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
            .collect();
        self.b
            .append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), *v)))
    }

    /// Write `dir`'s children (sorted), recursing; `rel` is `dir` relative to the layer root.
    fn walk(&mut self, dir: &Path, rel: &Path) -> Result<()> {
        let mut ents: Vec<_> = fs::read_dir(dir)
            .map_err(io_err(dir))?
            .collect::<io::Result<Vec<_>>>()
            .map_err(io_err(dir))?;
        ents.sort_by_key(|e| e.file_name());
        for e in ents {
            let p = e.path();
            let name = e.file_name();
            let r = rel.join(&name);
            let md = fs::symlink_metadata(&p).map_err(io_err(&p))?;
            let ft = md.file_type();
            if ft.is_char_device() && md.rdev() == 0 {
                // overlayfs whiteout
                let wh = rel.join(format!(".wh.{}", name.to_string_lossy()));
                let mut h = header_for(&md, tar::EntryType::Regular);
                self.b
                    .append_data(&mut h, &wh, io::empty())
                    .map_err(io_err(&p))?;
                continue;
            }
            if self.clean {
                clean_overlay_xattrs(&p);
            }
            let x = xattrs(&p);
            if ft.is_dir() {
                self.pax(&x).map_err(io_err(&p))?;
                let mut h = header_for(&md, tar::EntryType::Directory);
                self.b
                    .append_data(&mut h, &r, io::empty())
                    .map_err(io_err(&p))?;
                if is_opaque(&p) {
                    let mut h = header_for(&md, tar::EntryType::Regular);
                    h.set_mode(0o644);
                    self.b
                        .append_data(&mut h, r.join(".wh..wh..opq"), io::empty())
                        .map_err(io_err(&p))?;
                }
                self.walk(&p, &r)?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&p).map_err(io_err(&p))?;
                self.pax(&x).map_err(io_err(&p))?;
                let mut h = header_for(&md, tar::EntryType::Symlink);
                self.b
                    .append_link(&mut h, &r, &target)
                    .map_err(io_err(&p))?;
            } else if ft.is_file() {
                if md.nlink() > 1 {
                    if let Some(first) = self.links.get(&(md.dev(), md.ino())) {
                        let first = first.clone();
                        let mut h = header_for(&md, tar::EntryType::Link);
                        self.b.append_link(&mut h, &r, &first).map_err(io_err(&p))?;
                        continue;
                    }
                    self.links.insert((md.dev(), md.ino()), r.clone());
                }
                self.pax(&x).map_err(io_err(&p))?;
                let mut h = header_for(&md, tar::EntryType::Regular);
                h.set_size(md.len());
                let f = File::open(&p).map_err(io_err(&p))?;
                // A file that changes size while being read would corrupt the tar: read
                // exactly the size we announced.
                let mut lim = io::Read::take(f, md.len());
                self.b
                    .append_data(&mut h, &r, &mut lim)
                    .map_err(io_err(&p))?;
                self.size += md.len();
            } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
                let kind = if ft.is_char_device() {
                    tar::EntryType::Char
                } else if ft.is_block_device() {
                    tar::EntryType::Block
                } else {
                    tar::EntryType::Fifo
                };
                self.pax(&x).map_err(io_err(&p))?;
                let mut h = header_for(&md, kind);
                if !ft.is_fifo() {
                    let dev = md.rdev();
                    h.set_device_major(rustix::fs::major(dev))
                        .map_err(io_err(&p))?;
                    h.set_device_minor(rustix::fs::minor(dev))
                        .map_err(io_err(&p))?;
                }
                self.b
                    .append_data(&mut h, &r, io::empty())
                    .map_err(io_err(&p))?;
            }
            // Sockets are not part of a layer (as in Docker).
        }
        Ok(())
    }
}

/// Turn `dir` (an overlayfs upper directory, or any directory tree) into a stored layer:
/// write its OCI tar, compressed once with `compression`, as a blob under `root`, then move
/// `dir` itself to `layers/<diff id>` (or drop it if that layer exists already). The caller
/// records the layer with [`crate::ImageStore::record_layer`]. On error nothing is published
/// and `dir` is left for the caller to remove.
///
/// Compression levels: gzip level 6 and zstd level 3 (what Docker and containerd use).
pub fn ingest_dir(root: &Path, dir: &Path, compression: Compression) -> Result<Layer> {
    let blob = BlobWriter::new(root)?;
    let comp = match compression {
        Compression::None => Compressor::None(blob),
        Compression::Gzip => Compressor::Gzip(flate2::write::GzEncoder::new(
            blob,
            flate2::Compression::new(6),
        )),
        Compression::Zstd => {
            Compressor::Zstd(zstd::stream::write::Encoder::new(blob, 3).map_err(io_err(dir))?)
        }
    };
    let mut p = Packer {
        b: tar::Builder::new(DiffWriter {
            inner: comp,
            hasher: Hasher::sha256(),
            n: 0,
        }),
        clean: true,
        links: HashMap::new(),
        size: 0,
    };
    p.b.mode(tar::HeaderMode::Complete);
    p.walk(dir, Path::new(""))?;
    let size = p.size;
    let dw = p.b.into_inner().map_err(io_err(dir))?;
    let DiffWriter { inner, hasher, n } = dw;
    let diff_id: Digest = hasher.finish();
    let blob = inner.finish().map_err(io_err(dir))?;
    let blob_size = blob.size();
    let blob_digest = blob.commit(None, None)?;
    let dest = layer_dir_in(root, &diff_id);
    if dest.is_dir() {
        let _ = fs::remove_dir_all(dir);
    } else {
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        match fs::rename(dir, &dest) {
            Ok(()) => {}
            Err(_) if dest.is_dir() => {
                let _ = fs::remove_dir_all(dir);
            }
            Err(e) => return Err(ImageError::io(&dest, e)),
        }
        berth_store::fsync_dir(dest.parent().unwrap_or(root))?;
    }
    Ok(Layer {
        diff_id,
        diff_size: n,
        blob: blob_digest,
        blob_size,
        compression,
        size,
    })
}

/// Copy a directory in overlay layer form (e.g. a running container's upper directory) to
/// the new directory `dest`, through the OCI tar form so whiteouts, opaque markers, hard
/// links, owners and extended attributes survive. `src` is not modified.
pub fn copy_layer_dir(src: &Path, dest: &Path) -> Result<()> {
    fs::create_dir(dest).map_err(io_err(dest))?;
    let (r, w) = rustix::pipe::pipe().map_err(|e| ImageError::io(dest, e.into()))?;
    let mut rf = File::from(r);
    let wf = File::from(w);
    std::thread::scope(|s| {
        let producer = s.spawn(move || -> Result<()> {
            let mut p = Packer {
                b: tar::Builder::new(io::BufWriter::with_capacity(256 * 1024, wf)),
                clean: false,
                links: HashMap::new(),
                size: 0,
            };
            p.b.mode(tar::HeaderMode::Complete);
            p.walk(src, Path::new(""))?;
            p.b.into_inner()
                .and_then(|mut w| w.flush())
                .map_err(io_err(src))?;
            Ok(())
        });
        let unpacked = crate::unpack_layer(&mut rf, dest);
        let _ = io::copy(&mut rf, &mut io::sink());
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(ImageError::Layer("the layer copier panicked".into())));
        produced?;
        unpacked.map(|_| ())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::symlink;

    #[test]
    fn upper_dir_to_oci_tar() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        fs::create_dir_all(root.join("tmp")).unwrap();
        fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        let up = t.path().join("up");
        fs::create_dir_all(up.join("etc/sub")).unwrap();
        fs::write(up.join("etc/a"), b"hello").unwrap();
        fs::hard_link(up.join("etc/a"), up.join("etc/b")).unwrap();
        symlink("a", up.join("etc/l")).unwrap();
        let is_root = rustix::process::geteuid().is_root();
        if is_root {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                up.join("etc/gone"),
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::Mode::empty(),
                0,
            )
            .unwrap();
            rustix::fs::setxattr(
                up.join("etc/sub"),
                "trusted.overlay.opaque",
                b"y",
                rustix::fs::XattrFlags::empty(),
            )
            .unwrap();
        }
        let l = ingest_dir(&root, &up, Compression::Gzip).unwrap();
        assert!(!up.exists());
        assert!(layer_dir_in(&root, &l.diff_id).join("etc/a").is_file());
        assert_eq!(l.size, 5);
        let blob = fs::read(berth_store::blob_path(&root, &l.blob)).unwrap();
        assert_eq!(Digest::sha256_of(&blob), l.blob);
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&blob[..])
            .read_to_end(&mut raw)
            .unwrap();
        assert_eq!(Digest::sha256_of(&raw), l.diff_id);
        let mut ar = tar::Archive::new(&raw[..]);
        let mut names = Vec::new();
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            let kind = e.header().entry_type();
            names.push(format!("{} {:?}", e.path().unwrap().display(), kind));
        }
        assert!(names.contains(&"etc/a Regular".to_string()), "{names:?}");
        assert!(names.contains(&"etc/b Link".to_string()), "{names:?}");
        assert!(names.contains(&"etc/l Symlink".to_string()), "{names:?}");
        if is_root {
            assert!(
                names.contains(&"etc/.wh.gone Regular".to_string()),
                "{names:?}"
            );
            assert!(
                names.contains(&"etc/sub/.wh..wh..opq Regular".to_string()),
                "{names:?}"
            );
        }
    }
}
