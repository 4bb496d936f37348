//! Layer ingestion and safe unpacking.
//!
//! Layers are hostile input. Every entry is created by hand: its parent directory is opened
//! with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` relative to the layer root (so
//! symlinks, absolute targets and `..` all stay inside), and the final component is created
//! relative to that directory without following symlinks. Whiteouts become overlayfs
//! whiteouts (0/0 character devices, `trusted.overlay.opaque`).

use std::fs;
use std::io::{self, Cursor, Read, Write};
use std::path::{Path, PathBuf};

use berth_store::{BlobWriter, Digest, Hasher};

use crate::{layer_dir_in, Compression, ImageError, Layer, Result};

/// Compression named by a stream's first bytes (gzip `1f 8b`, zstd `28 b5 2f fd`).
pub fn detect_compression(first_bytes: &[u8]) -> Compression {
    if first_bytes.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if first_bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Read up to `n` bytes (fewer only at end of stream).
fn read_head(r: &mut dyn Read, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// A decompressing reader for `comp`.
pub(crate) fn decompressor<'a>(
    r: Box<dyn Read + 'a>,
    comp: Compression,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match comp {
        Compression::None => r,
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
    })
}

/// Copies everything read into a blob writer.
struct Tee<'a, R> {
    inner: R,
    out: &'a mut BlobWriter,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Hashes and counts everything read.
struct HashReader<R> {
    inner: R,
    hasher: Hasher,
    n: u64,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}

/// Removes a temporary directory on drop unless disarmed.
struct TmpDir(Option<PathBuf>);

impl Drop for TmpDir {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            if let Err(e) = fs::remove_dir_all(&p) {
                tracing::warn!("cannot remove {}: {e}", p.display());
            }
        }
    }
}

fn layer_read_error(comp: Compression, e: io::Error) -> ImageError {
    ImageError::Layer(format!(
        "cannot read the layer stream ({} data): {e}; the archive or download is corrupt",
        comp
    ))
}

/// Stream `raw` once: hash it (blob digest), write it as a blob, decompress, hash (diff id),
/// unpack safely into a tmp dir, then rename to `layers/<diff hex>`. Verifies `expected_blob`
/// and `expected_diff_id`; on any mismatch or error nothing is kept. If the layer directory
/// already exists, the stream is only drained and verified.
///
/// `compression` is a hint: the stream's magic bytes decide. Thread-safe (needs no database);
/// the caller then makes the layer known with [`crate::ImageStore::record_layer`].
pub fn ingest_layer(
    root: &Path,
    raw: &mut dyn Read,
    compression: Compression,
    expected_blob: Option<&Digest>,
    expected_diff_id: Option<&Digest>,
) -> Result<Layer> {
    let head = read_head(raw, 4).map_err(|e| layer_read_error(compression, e))?;
    let comp = if head.is_empty() {
        compression
    } else {
        detect_compression(&head)
    };
    let mut blob = BlobWriter::new(root)?;
    let existing = expected_diff_id.filter(|d| layer_dir_in(root, d).is_dir());
    let mut tmp = TmpDir(None);
    if existing.is_none() {
        let p = berth_store::tmp_path(root, "layer");
        fs::create_dir(&p).map_err(|e| ImageError::io(&p, e))?;
        tmp.0 = Some(p);
    }
    let (diff_id, diff_size, size) = {
        let mut tee = Tee {
            inner: Cursor::new(head).chain(&mut *raw),
            out: &mut blob,
        };
        let res = {
            let mut dec =
                decompressor(Box::new(&mut tee), comp).map_err(|e| layer_read_error(comp, e))?;
            match &tmp.0 {
                Some(dir) => pipelined_unpack(&mut dec, dir, comp)?,
                None => {
                    let mut hr = HashReader {
                        inner: dec,
                        hasher: Hasher::sha256(),
                        n: 0,
                    };
                    let size = scan_layer(&mut hr)?;
                    // The tar may have padding after its end marker: part of the diff id.
                    io::copy(&mut hr, &mut io::sink()).map_err(|e| layer_read_error(comp, e))?;
                    let HashReader { hasher, n, .. } = hr;
                    (hasher.finish(), n, size)
                }
            }
        };
        // Trailing bytes after the compressed stream still belong to the blob.
        io::copy(&mut tee, &mut io::sink()).map_err(|e| layer_read_error(comp, e))?;
        res
    };
    if let Some(exp) = expected_diff_id {
        if *exp != diff_id {
            return Err(ImageError::Layer(format!(
                "uncompressed content hashes to {diff_id}, expected diff id {exp}; the layer is corrupt and was discarded"
            )));
        }
    }
    let blob_size = blob.size();
    let blob_digest = blob.commit(expected_blob, None)?;
    if let Some(dir) = tmp.0.take() {
        let dest = layer_dir_in(root, &diff_id);
        let res = publish_dir(&dir, &dest);
        if res.is_err() || dir.exists() {
            tmp.0 = Some(dir);
        }
        res?;
    }
    Ok(Layer {
        diff_id,
        diff_size,
        blob: blob_digest,
        blob_size,
        compression: comp,
        size,
    })
}

/// Decompressed data flows from the reading thread (download or archive, blob copy,
/// decompression, two digests) to the unpacking thread (tar parsing, file creation) in chunks
/// of this size, at most `PIPE_DEPTH` chunks ahead.
const PIPE_CHUNK: usize = 256 * 1024;
const PIPE_DEPTH: usize = 16;

/// Unpack the tar read from `src` into `dir`: reading and decompressing on this thread;
/// hashing (the diff id) and unpacking on another, so the two overlap. Reads `src` to its end
/// (tar padding after the end marker is part of the diff id). Returns the diff id, the
/// uncompressed size and the unpacked content size.
fn pipelined_unpack(
    src: &mut dyn Read,
    dir: &Path,
    comp: Compression,
) -> Result<(Digest, u64, u64)> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(PIPE_DEPTH);
    let failed = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let failed = &failed;
        let unpacker = scope.spawn(move || -> Result<(Digest, u64, u64)> {
            let mut hr = HashReader {
                inner: ChanReader {
                    rx,
                    cur: Vec::new(),
                    pos: 0,
                },
                hasher: Hasher::sha256(),
                n: 0,
            };
            let res = unpack_layer(&mut hr, dir).and_then(|size| {
                // Padding after the tar's end marker still counts for the diff id.
                io::copy(&mut hr, &mut io::sink()).map_err(|e| layer_read_error(comp, e))?;
                Ok(size)
            });
            match res {
                Ok(size) => {
                    let HashReader { hasher, n, .. } = hr;
                    Ok((hasher.finish(), n, size))
                }
                Err(e) => {
                    // Hanging up tells the producer to stop.
                    failed.store(true, std::sync::atomic::Ordering::SeqCst);
                    drop(hr);
                    Err(e)
                }
            }
        });
        let mut produce = || -> std::result::Result<(), io::Error> {
            loop {
                let mut chunk = vec![0u8; PIPE_CHUNK];
                let mut got = 0;
                while got < PIPE_CHUNK {
                    match src.read(&mut chunk[got..]) {
                        Ok(0) => break,
                        Ok(n) => got += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                if got == 0 {
                    return Ok(());
                }
                chunk.truncate(got);
                if tx.send(chunk).is_err() && failed.load(std::sync::atomic::Ordering::SeqCst) {
                    // The unpacker refused the layer; its error is reported below.
                    return Ok(());
                }
            }
        };
        let produced = produce();
        drop(tx);
        let unpacked = unpacker
            .join()
            .unwrap_or_else(|_| Err(ImageError::Layer("the layer unpacker panicked".into())));
        produced.map_err(|e| layer_read_error(comp, e))?;
        unpacked
    })
}

/// Reads the chunks sent by [`pipelined_unpack`]'s producer; end of stream when it hangs up.
struct ChanReader {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.recv() {
                Ok(c) => {
                    self.cur = c;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Rename the unpacked tree into place (an existing identical layer wins).
///
/// The files are not fsynced one by one nor with syncfs (which would also wait for every other
/// process's dirty data on the filesystem), as Docker and Podman do not: a `kill -9` cannot
/// lose page-cache data, and the layer's blob, which is fsynced, stays in the store.
fn publish_dir(dir: &Path, dest: &Path) -> Result<()> {
    let parent = dest.parent().expect("layer dir has a parent");
    fs::create_dir_all(parent).map_err(|e| ImageError::io(parent, e))?;
    match fs::rename(dir, dest) {
        Ok(()) => {}
        // Someone else published the same layer meanwhile: keep theirs.
        Err(e)
            if dest.is_dir()
                && matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) =>
        {
            return Ok(());
        }
        Err(e) => return Err(ImageError::io(dest, e)),
    }
    berth_store::fsync_dir(parent)?;
    Ok(())
}

/// Walk a layer tar without extracting; returns the content size.
fn scan_layer(r: &mut dyn Read) -> Result<u64> {
    let mut ar = tar::Archive::new(r);
    let mut size = 0;
    let entries = ar
        .entries()
        .map_err(|e| ImageError::Layer(format!("not a tar archive: {e}")))?;
    for e in entries {
        let e = e.map_err(|e| ImageError::Layer(format!("corrupt tar: {e}")))?;
        if e.header().entry_type().is_file() {
            size += e.size();
        }
    }
    Ok(size)
}

/// Unpack a layer tar stream into the existing directory `dest` (safely; see the module
/// documentation). Returns the unpacked content size (sum of regular file sizes).
mod extract;
mod meta;
#[cfg(test)]
mod tests;

pub use extract::{unpack_layer, unpack_tree, unpack_tree_with, TreeOptions};
