//! Layer ingestion and safe unpacking.
//!
//! Layers are hostile input. Every entry is created by hand: its parent directory is opened
//! with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` relative to the layer root (so
//! symlinks, absolute targets and `..` all stay inside), and the final component is created
//! relative to that directory without following symlinks. Whiteouts become overlayfs
//! whiteouts (0/0 character devices, `trusted.overlay.opaque`).

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Cursor, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use berth_store::{BlobWriter, Digest, Hasher};
use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags,
};
use rustix::io::Errno;

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
pub fn unpack_layer(r: &mut dyn Read, dest: &Path) -> Result<u64> {
    let root = rfs::open(
        dest,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ImageError::io(dest, e.into()))?;
    let mut u = Unpacker {
        root,
        cache: None,
        dir_times: Vec::new(),
        buf: vec![0u8; 256 * 1024],
        is_root: rustix::process::geteuid().is_root(),
        dirty: std::cell::Cell::new(false),
        saw_root: false,
    };
    let mut ar = tar::Archive::new(r);
    let entries = ar
        .entries()
        .map_err(|e| ImageError::Layer(format!("not a tar archive: {e}")))?;
    let mut size = 0u64;
    let mut last = String::from("(start of archive)");
    for e in entries {
        let mut e = e.map_err(|err| {
            if size == 0 && last == "(start of archive)" {
                ImageError::Layer(format!("not a valid tar archive: {err}"))
            } else {
                ImageError::Layer(format!(
                    "corrupt tar after entry {last:?}: {err}; the layer is truncated or corrupt"
                ))
            }
        })?;
        let shown = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        last.clone_from(&shown);
        size += u.entry(&mut e, &shown)?;
    }
    u.finish()?;
    Ok(size)
}

fn entry_err(entry: &str, why: impl Into<String>) -> ImageError {
    ImageError::Entry {
        entry: entry.to_string(),
        why: why.into(),
    }
}

/// Lexically normalise a tar path into components inside the root. `/` prefixes are dropped
/// (relative to the root); `..` that would leave the root is refused.
fn normalise<'p>(path: &'p [u8], shown: &str) -> Result<Vec<&'p [u8]>> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err(entry_err(
                        shown,
                        "path leaves the layer root through '..'; the layer is hostile or corrupt",
                    ));
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

fn join(comps: &[&[u8]]) -> Vec<u8> {
    if comps.is_empty() {
        return b".".to_vec();
    }
    comps.join(&b'/')
}

struct Unpacker {
    root: OwnedFd,
    /// Last opened parent directory (path relative to the root, fd).
    cache: Option<(Vec<u8>, OwnedFd)>,
    /// Directory mtimes, applied at the end (creating children changes them).
    dir_times: Vec<(Vec<u8>, u64)>,
    buf: Vec<u8>,
    is_root: bool,
    /// Set when something was removed: cached parent lookups may be stale.
    dirty: std::cell::Cell<bool>,
    /// Whether the tar set the layer root (`./`); if not, the root is marked as implicit.
    saw_root: bool,
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

impl Unpacker {
    /// Open a directory inside the root (path resolved with RESOLVE_IN_ROOT).
    fn open_in_root(&self, rel: &[u8], flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let p = OsStr::from_bytes(if rel.is_empty() { b"." } else { rel });
        let mut tries = 0;
        loop {
            match rfs::openat2(
                &self.root,
                p,
                flags | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                RESOLVE,
            ) {
                // openat2 asks to retry when a rename raced with the lookup.
                Err(Errno::AGAIN) if tries < 16 => tries += 1,
                r => return r,
            }
        }
    }

    /// The parent directory `comps`, created (0755) where missing.
    fn pfd(&self) -> BorrowedFd<'_> {
        self.cache
            .as_ref()
            .expect("parent() opened the directory")
            .1
            .as_fd()
    }

    fn parent(&mut self, comps: &[&[u8]], shown: &str) -> Result<()> {
        let key = join(comps);
        if self.cache.as_ref().map(|(k, _)| k != &key).unwrap_or(true) {
            let fd = match self.open_in_root(&key, OFlags::PATH) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    for i in 1..=comps.len() {
                        let prefix = join(&comps[..i]);
                        match self.open_in_root(&prefix, OFlags::PATH) {
                            Ok(_) => continue,
                            Err(Errno::NOENT) => {}
                            Err(e) => {
                                return Err(entry_err(
                                    shown,
                                    format!(
                                        "cannot open parent {:?}: {e}",
                                        String::from_utf8_lossy(&prefix)
                                    ),
                                ))
                            }
                        }
                        let up = self
                            .open_in_root(&join(&comps[..i - 1]), OFlags::PATH)
                            .map_err(|e| {
                                entry_err(shown, format!("cannot open parent directory: {e}"))
                            })?;
                        match rfs::mkdirat(
                            &up,
                            OsStr::from_bytes(comps[i - 1]),
                            Mode::from_raw_mode(0o755),
                        ) {
                            Ok(()) | Err(Errno::EXIST) => {}
                            Err(e) => {
                                return Err(entry_err(
                                    shown,
                                    format!("cannot create parent directory: {e}"),
                                ))
                            }
                        }
                    }
                    self.open_in_root(&key, OFlags::PATH).map_err(|e| {
                        entry_err(
                            shown,
                            format!("parent directory cannot be created inside the layer: {e}"),
                        )
                    })?
                }
                Err(e) => {
                    return Err(entry_err(
                        shown,
                        format!("cannot open parent directory: {e}"),
                    ))
                }
            };
            self.cache = Some((key, fd));
        }
        Ok(())
    }

    /// Remove whatever is at `name` in `dir` (a directory only if `keep_dir` is false).
    /// Returns true if a directory was kept.
    fn clear(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        keep_dir: bool,
        shown: &str,
    ) -> Result<bool> {
        let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => {
                return Err(entry_err(
                    shown,
                    format!("cannot inspect existing file: {e}"),
                ))
            }
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            if keep_dir {
                return Ok(true);
            }
            // The fd path is /proc/self/fd/N, a directory inside our own tmp tree;
            // remove_dir_all does not follow symlinks below it.
            let p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name);
            self.dirty.set(true);
            fs::remove_dir_all(&p)
                .map_err(|e| entry_err(shown, format!("cannot replace existing directory: {e}")))?;
        } else {
            self.dirty.set(true);
            rfs::unlinkat(dir, name, AtFlags::empty())
                .map_err(|e| entry_err(shown, format!("cannot replace existing file: {e}")))?;
        }
        Ok(false)
    }

    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, shown: &str) -> Result<u64> {
        let r = self.entry_inner(e, shown);
        if self.dirty.replace(false) {
            self.cache = None;
        }
        r
    }

    fn entry_inner<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, shown: &str) -> Result<u64> {
        let mut path = e.path_bytes().into_owned();
        let h = e.header().clone();
        let kind = h.entry_type();
        let mode = h
            .mode()
            .map_err(|err| entry_err(shown, format!("bad mode: {err}")))?
            & 0o7777;
        // Empty numeric fields mean 0 (some writers leave them blank); PAX records override.
        let mut uid = h.uid().unwrap_or(0);
        let mut gid = h.gid().unwrap_or(0);
        let mut mtime = h.mtime().unwrap_or(0);
        let mut xattrs = Vec::new();
        let mut sparse_records: Vec<(String, Vec<u8>)> = Vec::new();
        if let Some(exts) = e
            .pax_extensions()
            .map_err(|err| entry_err(shown, format!("bad PAX header: {err}")))?
        {
            for ext in exts {
                let ext = ext.map_err(|err| entry_err(shown, format!("bad PAX header: {err}")))?;
                let Ok(k) = ext.key() else { continue };
                let num = || {
                    ext.value()
                        .ok()
                        .and_then(|v| v.split('.').next())
                        .and_then(|v| v.parse::<u64>().ok())
                };
                match k {
                    "uid" => uid = num().unwrap_or(uid),
                    "gid" => gid = num().unwrap_or(gid),
                    "mtime" => mtime = num().unwrap_or(mtime),
                    _ => {
                        if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                            xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                        } else if k.starts_with("GNU.sparse.") {
                            sparse_records.push((k.to_string(), ext.value_bytes().to_vec()));
                        }
                    }
                }
            }
        }
        let owner = (
            u32::try_from(uid).map_err(|_| entry_err(shown, "uid out of range"))?,
            u32::try_from(gid).map_err(|_| entry_err(shown, "gid out of range"))?,
        );
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            return Ok(0);
        }
        // A GNU sparse file in PAX form: its real name and chunk map (see sparse.rs).
        let sparse = if matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous) {
            crate::sparse::from_pax(&sparse_records, shown)?
        } else {
            None
        };
        if let Some(name) = sparse.as_ref().and_then(|s| s.name.clone()) {
            path = name;
        }
        let comps = normalise(&path, shown)?;
        let Some((name, parent)) = comps.split_last() else {
            // The layer root itself ("./"): take its metadata.
            if kind.is_dir() {
                let fd = self
                    .open_in_root(b".", OFlags::RDONLY)
                    .map_err(|err| entry_err(shown, format!("cannot open layer root: {err}")))?;
                self.set_meta_fd(&fd, owner, mode, &xattrs, None, shown)?;
                self.dir_times.push((Vec::new(), mtime));
                self.saw_root = true;
            }
            return Ok(0);
        };
        let name: &[u8] = name;
        // Whiteouts (AUFS format in the tar) become overlayfs whiteouts.
        if let Some(real) = name.strip_prefix(b".wh.") {
            if real == b".wh..opq" {
                let dir_rel = join(parent);
                self.parent(parent, shown)?;
                let fd = self.open_in_root(&dir_rel, OFlags::RDONLY).map_err(|err| {
                    entry_err(shown, format!("cannot open opaque directory: {err}"))
                })?;
                rfs::fsetxattr(&fd, "trusted.overlay.opaque", b"y", XattrFlags::empty()).map_err(
                    |err| {
                        entry_err(
                            shown,
                            format!("cannot mark directory opaque (trusted.overlay.opaque): {err}"),
                        )
                    },
                )?;
                return Ok(0);
            }
            if real.is_empty() || real == b"." || real == b".." || real.starts_with(b".wh.") {
                return Err(entry_err(shown, "invalid whiteout name"));
            }
            let real = OsStr::from_bytes(real).to_owned();
            self.parent(parent, shown)?;
            let dir = self.pfd();
            self.clear(dir, &real, false, shown)?;
            rfs::mknodat(
                dir,
                &real,
                FileType::CharacterDevice,
                Mode::empty(),
                rfs::makedev(0, 0),
            )
            .map_err(|err| entry_err(shown, format!("cannot create overlay whiteout: {err}")))?;
            self.chown_at(dir, &real, owner, shown)?;
            return Ok(0);
        }
        let name = OsStr::from_bytes(name).to_owned();
        let mut size = 0;
        match kind {
            tar::EntryType::Directory => {
                self.parent(parent, shown)?;
                let dir = self.pfd();
                let existed = self.clear(dir, &name, true, shown)?;
                if !existed {
                    rfs::mkdirat(dir, &name, Mode::from_raw_mode(0o700)).map_err(|err| {
                        entry_err(shown, format!("cannot create directory: {err}"))
                    })?;
                }
                let fd = rfs::openat(
                    dir,
                    &name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|err| entry_err(shown, format!("cannot open directory: {err}")))?;
                self.set_meta_fd(&fd, owner, mode, &xattrs, None, shown)?;
                let mut rel = join(parent);
                if rel == b"." {
                    rel.clear();
                } else {
                    rel.push(b'/');
                }
                rel.extend_from_slice(name.as_bytes());
                self.dir_times.push((rel, mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.parent(parent, shown)?;
                let dir = self.pfd();
                self.clear(dir, &name, false, shown)?;
                let fd = rfs::openat(
                    dir,
                    &name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|err| entry_err(shown, format!("cannot create file: {err}")))?;
                let mut f = File::from(fd);
                if let Some(sp) = &sparse {
                    let mut data_len = e.size();
                    let map = match &sp.map {
                        Some(m) => m.clone(),
                        None => {
                            let (m, used) = crate::sparse::read_map_v1(e, shown)?;
                            data_len = data_len.checked_sub(used).ok_or_else(|| {
                                entry_err(shown, "GNU sparse map is larger than the entry")
                            })?;
                            m
                        }
                    };
                    crate::sparse::write(
                        e,
                        &mut f,
                        &map,
                        sp.real_size,
                        data_len,
                        &mut self.buf,
                        shown,
                    )?;
                    self.set_meta_fd(&f, owner, mode, &xattrs, Some(mtime), shown)?;
                    return Ok(sp.real_size);
                }
                loop {
                    let n = match e.read(&mut self.buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                        Err(err) => {
                            return Err(ImageError::Layer(format!(
                                "cannot read the content of entry {shown:?}: {err}; the layer is corrupt or truncated"
                            )))
                        }
                    };
                    f.write_all(&self.buf[..n])
                        .map_err(|err| entry_err(shown, format!("cannot write file: {err}")))?;
                    size += n as u64;
                }
                self.set_meta_fd(&f, owner, mode, &xattrs, Some(mtime), shown)?;
            }
            tar::EntryType::Symlink => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| entry_err(shown, "symlink without a target"))?
                    .into_owned();
                self.parent(parent, shown)?;
                let dir = self.pfd();
                self.clear(dir, &name, false, shown)?;
                // Any target is allowed: it is resolved inside the container (and inside the
                // layer root by our own later lookups).
                rfs::symlinkat(OsStr::from_bytes(&target), dir, &name)
                    .map_err(|err| entry_err(shown, format!("cannot create symlink: {err}")))?;
                self.parent(parent, shown)?;
                let dir = self.pfd();
                self.chown_at(dir, &name, owner, shown)?;
                self.xattrs_at(dir, &name, &xattrs, shown)?;
                let _ = rfs::utimensat(dir, &name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW);
                self.cache = None;
            }
            tar::EntryType::Link => {
                let target = e
                    .link_name_bytes()
                    .ok_or_else(|| entry_err(shown, "hardlink without a target"))?
                    .into_owned();
                let tshown = String::from_utf8_lossy(&target).into_owned();
                let tcomps = normalise(&target, shown).map_err(|_| {
                    entry_err(shown, format!("hardlink target {tshown:?} leaves the layer root; the layer is hostile or corrupt"))
                })?;
                if tcomps == comps {
                    return Ok(0);
                }
                let Some((tname, tparent)) = tcomps.split_last() else {
                    return Err(entry_err(shown, "hardlink to the layer root"));
                };
                let tdir = self
                    .open_in_root(&join(tparent), OFlags::PATH)
                    .map_err(|err| {
                        entry_err(
                            shown,
                            format!("hardlink target {tshown:?} is not in the layer (yet): {err}"),
                        )
                    })?;
                let tname = OsStr::from_bytes(tname).to_owned();
                match rfs::statat(&tdir, &tname, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                        return Err(entry_err(
                            shown,
                            format!("hardlink target {tshown:?} is a directory"),
                        ))
                    }
                    Ok(_) => {}
                    Err(err) => {
                        return Err(entry_err(
                            shown,
                            format!("hardlink target {tshown:?} is not in the layer (yet): {err}"),
                        ))
                    }
                }
                self.parent(parent, shown)?;
                let dir = self.pfd();
                self.clear(dir, &name, false, shown)?;
                rfs::linkat(&tdir, &tname, dir, &name, AtFlags::empty()).map_err(|err| {
                    entry_err(
                        shown,
                        format!("cannot create hardlink to {tshown:?}: {err}"),
                    )
                })?;
                self.cache = None;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let dev = rfs::makedev(
                    h.device_major().ok().flatten().unwrap_or(0),
                    h.device_minor().ok().flatten().unwrap_or(0),
                );
                self.parent(parent, shown)?;
                let dir = self.pfd();
                self.clear(dir, &name, false, shown)?;
                rfs::mknodat(dir, &name, ft, Mode::from_raw_mode(0o600), dev).map_err(|err| {
                    entry_err(shown, format!("cannot create device node or fifo: {err}"))
                })?;
                self.parent(parent, shown)?;
                let dir = self.pfd();
                self.chown_at(dir, &name, owner, shown)?;
                rfs::chmodat(dir, &name, Mode::from_raw_mode(mode), AtFlags::empty())
                    .map_err(|err| entry_err(shown, format!("cannot set mode: {err}")))?;
                self.xattrs_at(dir, &name, &xattrs, shown)?;
                let _ = rfs::utimensat(dir, &name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW);
            }
            other => {
                return Err(entry_err(
                    shown,
                    format!("unsupported tar entry type {other:?}"),
                ));
            }
        }
        Ok(size)
    }

    fn chown_at(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        (uid, gid): (u32, u32),
        shown: &str,
    ) -> Result<()> {
        match rfs::chownat(
            dir,
            name,
            Some(rfs::Uid::from_raw(uid)),
            Some(rfs::Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        ) {
            Ok(()) => Ok(()),
            Err(Errno::PERM) if !self.is_root => Ok(()),
            Err(err) => Err(entry_err(
                shown,
                format!("cannot set owner {uid}:{gid}: {err}"),
            )),
        }
    }

    fn set_meta_fd(
        &self,
        fd: impl AsFd,
        (uid, gid): (u32, u32),
        mode: u32,
        xattrs: &[(String, Vec<u8>)],
        mtime: Option<u64>,
        shown: &str,
    ) -> Result<()> {
        match rfs::fchown(
            &fd,
            Some(rfs::Uid::from_raw(uid)),
            Some(rfs::Gid::from_raw(gid)),
        ) {
            Ok(()) => {}
            Err(Errno::PERM) if !self.is_root => {}
            Err(err) => {
                return Err(entry_err(
                    shown,
                    format!("cannot set owner {uid}:{gid}: {err}"),
                ))
            }
        }
        // After chown, which clears setuid/setgid.
        rfs::fchmod(&fd, Mode::from_raw_mode(mode))
            .map_err(|err| entry_err(shown, format!("cannot set mode {mode:o}: {err}")))?;
        for (k, v) in xattrs {
            if !xattr_allowed(k) {
                continue;
            }
            match rfs::fsetxattr(&fd, k.as_str(), v, XattrFlags::empty()) {
                Ok(()) => {}
                Err(Errno::NOTSUP) | Err(Errno::PERM) => {
                    tracing::warn!("layer entry {shown:?}: xattr {k} not supported here; skipped")
                }
                Err(err) => return Err(entry_err(shown, format!("cannot set xattr {k}: {err}"))),
            }
        }
        if let Some(t) = mtime {
            rfs::futimens(&fd, &times(t))
                .map_err(|err| entry_err(shown, format!("cannot set mtime: {err}")))?;
        }
        Ok(())
    }

    fn xattrs_at(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        xattrs: &[(String, Vec<u8>)],
        shown: &str,
    ) -> Result<()> {
        if xattrs.is_empty() {
            return Ok(());
        }
        let p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name);
        for (k, v) in xattrs {
            if !xattr_allowed(k) {
                continue;
            }
            match rfs::lsetxattr(&p, k.as_str(), v, XattrFlags::empty()) {
                Ok(()) => {}
                Err(Errno::NOTSUP) | Err(Errno::PERM) => {
                    tracing::warn!("layer entry {shown:?}: xattr {k} not supported here; skipped")
                }
                Err(err) => return Err(entry_err(shown, format!("cannot set xattr {k}: {err}"))),
            }
        }
        Ok(())
    }

    /// Directory mtimes last, since creating entries inside changed them. A root the tar did
    /// not set is marked [`crate::IMPLICIT_ROOT_XATTR`]: the image's root attributes then come
    /// from a lower layer.
    fn finish(&mut self) -> Result<()> {
        self.cache = None;
        if !self.saw_root {
            if let Ok(fd) = self.open_in_root(b".", OFlags::RDONLY) {
                let _ = rfs::fsetxattr(&fd, crate::IMPLICIT_ROOT_XATTR, b"1", XattrFlags::empty());
            }
        }
        let dirs = std::mem::take(&mut self.dir_times);
        for (rel, mtime) in dirs {
            let fd = self.open_in_root(if rel.is_empty() { b"." } else { &rel }, OFlags::RDONLY);
            if let Ok(fd) = fd {
                let _ = rfs::futimens(&fd, &times(mtime));
            }
        }
        Ok(())
    }
}

/// Overlay metadata in a layer could fake redirects or metacopy: never taken from a tar.
fn xattr_allowed(k: &str) -> bool {
    !(k.starts_with("trusted.overlay.") || k.starts_with("user.overlay."))
}

fn times(secs: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: secs.min(i64::MAX as u64) as i64,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    /// A scratch directory removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Scratch {
            let p =
                std::env::temp_dir().join(format!("berth-unpack-{:016x}", rand::random::<u64>()));
            fs::create_dir_all(p.join("dest")).unwrap();
            fs::create_dir_all(p.join("outside")).unwrap();
            Scratch(p)
        }
        fn dest(&self) -> PathBuf {
            self.0.join("dest")
        }
        fn outside(&self) -> PathBuf {
            self.0.join("outside")
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h
    }

    /// Append an entry with an unchecked raw name/link (hostile archives).
    fn raw(
        b: &mut tar::Builder<Vec<u8>>,
        kind: tar::EntryType,
        name: &str,
        link: Option<&str>,
        data: &[u8],
    ) {
        let mut h = header(kind, 0o644);
        let old = h.as_old_mut();
        old.name = [0; 100];
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            old.linkname = [0; 100];
            old.linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, mode: u32, data: &[u8]) {
        let mut h = header(tar::EntryType::Regular, mode);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data).unwrap();
    }

    fn dir(b: &mut tar::Builder<Vec<u8>>, name: &str, mode: u32) {
        let mut h = header(tar::EntryType::Directory, mode);
        b.append_data(&mut h, name, io::empty()).unwrap();
    }

    fn unpack(s: &Scratch, tar: Vec<u8>) -> Result<u64> {
        unpack_layer(&mut &tar[..], &s.dest())
    }

    fn outside_untouched(s: &Scratch) {
        assert_eq!(
            fs::read_dir(s.outside()).unwrap().count(),
            0,
            "something was written outside"
        );
        assert!(!s.0.join("x").exists());
        assert!(!Path::new("/etc/berth-pwned").exists());
    }

    #[test]
    fn refuses_dotdot_escape() {
        let s = Scratch::new();
        let mut b = tar::Builder::new(Vec::new());
        raw(&mut b, tar::EntryType::Regular, "../x", None, b"boom");
        let e = unpack(&s, b.into_inner().unwrap()).unwrap_err().to_string();
        assert!(
            e.contains("\"../x\"") && e.contains("leaves the layer root"),
            "{e}"
        );
        let mut b = tar::Builder::new(Vec::new());
        raw(
            &mut b,
            tar::EntryType::Regular,
            "a/../../outside/x",
            None,
            b"boom",
        );
        assert!(unpack(&s, b.into_inner().unwrap()).is_err());
        outside_untouched(&s);
    }

    #[test]
    fn absolute_paths_stay_inside() {
        let s = Scratch::new();
        let mut b = tar::Builder::new(Vec::new());
        raw(
            &mut b,
            tar::EntryType::Regular,
            "/etc/berth-pwned",
            None,
            b"inside",
        );
        unpack(&s, b.into_inner().unwrap()).unwrap();
        assert_eq!(
            fs::read(s.dest().join("etc/berth-pwned")).unwrap(),
            b"inside"
        );
        outside_untouched(&s);
    }

    #[test]
    fn symlink_escape_is_contained() {
        let s = Scratch::new();
        let out = s.outside();
        // Absolute symlink to a real host directory, then a file through it.
        let mut b = tar::Builder::new(Vec::new());
        raw(
            &mut b,
            tar::EntryType::Symlink,
            "evil",
            Some(out.to_str().unwrap()),
            b"",
        );
        raw(&mut b, tar::EntryType::Regular, "evil/pwned", None, b"boom");
        let r = unpack(&s, b.into_inner().unwrap());
        // Either refused or created inside the layer; never outside.
        if let Err(e) = &r {
            assert!(e.to_string().contains("evil/pwned"), "{e}");
        }
        outside_untouched(&s);
        // The symlink itself keeps its target.
        assert_eq!(fs::read_link(s.dest().join("evil")).unwrap(), out);

        // Relative symlink climbing out, and "/" as a target: resolved inside the root.
        let s = Scratch::new();
        let mut b = tar::Builder::new(Vec::new());
        raw(
            &mut b,
            tar::EntryType::Symlink,
            "up",
            Some("../../../../.."),
            b"",
        );
        raw(&mut b, tar::EntryType::Symlink, "slash", Some("/"), b"");
        raw(&mut b, tar::EntryType::Regular, "up/x", None, b"1");
        raw(
            &mut b,
            tar::EntryType::Regular,
            "slash/etc/berth-pwned",
            None,
            b"2",
        );
        unpack(&s, b.into_inner().unwrap()).unwrap();
        assert_eq!(fs::read(s.dest().join("x")).unwrap(), b"1");
        assert_eq!(fs::read(s.dest().join("etc/berth-pwned")).unwrap(), b"2");
        outside_untouched(&s);

        // A later regular file replaces a symlink instead of writing through it.
        let s = Scratch::new();
        let victim = s.outside().join("victim");
        fs::write(&victim, b"original").unwrap();
        let mut b = tar::Builder::new(Vec::new());
        raw(
            &mut b,
            tar::EntryType::Symlink,
            "s",
            Some(victim.to_str().unwrap()),
            b"",
        );
        raw(&mut b, tar::EntryType::Regular, "s", None, b"overwritten?");
        unpack(&s, b.into_inner().unwrap()).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"original");
        assert_eq!(fs::read(s.dest().join("s")).unwrap(), b"overwritten?");
    }

    #[test]
    fn replaced_symlink_is_not_followed_later() {
        let s = Scratch::new();
        let mut b = tar::Builder::new(Vec::new());
        dir(&mut b, "x", 0o755);
        raw(&mut b, tar::EntryType::Symlink, "s", Some("x"), b"");
        raw(&mut b, tar::EntryType::Regular, "s/f1", None, b"1");
        dir(&mut b, "s", 0o755);
        raw(&mut b, tar::EntryType::Regular, "s/f2", None, b"2");
        unpack(&s, b.into_inner().unwrap()).unwrap();
        let d = s.dest();
        assert_eq!(fs::read(d.join("x/f1")).unwrap(), b"1");
        assert!(fs::symlink_metadata(d.join("s")).unwrap().is_dir());
        assert_eq!(fs::read(d.join("s/f2")).unwrap(), b"2");
        assert!(!d.join("x/f2").exists());
    }

    #[test]
    fn hardlink_escape_refused() {
        let s = Scratch::new();
        let mut b = tar::Builder::new(Vec::new());
        raw(
            &mut b,
            tar::EntryType::Link,
            "h",
            Some("../../../etc/passwd"),
            b"",
        );
        let e = unpack(&s, b.into_inner().unwrap()).unwrap_err().to_string();
        assert!(
            e.contains("\"h\"") && e.contains("leaves the layer root"),
            "{e}"
        );
        // An absolute target means a path inside the layer, which does not exist.
        let s = Scratch::new();
        let mut b = tar::Builder::new(Vec::new());
        raw(&mut b, tar::EntryType::Link, "h", Some("/etc/passwd"), b"");
        let e = unpack(&s, b.into_inner().unwrap()).unwrap_err().to_string();
        assert!(e.contains("not in the layer"), "{e}");
        // Through a symlink pointing out of the root: resolved inside, so not found.
        let s = Scratch::new();
        let mut b = tar::Builder::new(Vec::new());
        raw(&mut b, tar::EntryType::Symlink, "etc", Some("/etc"), b"");
        raw(&mut b, tar::EntryType::Link, "h", Some("etc/passwd"), b"");
        assert!(unpack(&s, b.into_inner().unwrap()).is_err());
        assert!(!s.dest().join("h").exists());
    }

    #[test]
    fn hardlinks_and_long_names() {
        let s = Scratch::new();
        let long_dir = "d".repeat(120);
        let long_file = format!("{long_dir}/{}", "f".repeat(200));
        let mut b = tar::Builder::new(Vec::new());
        file(&mut b, "a", 0o644, b"shared");
        let mut h = header(tar::EntryType::Link, 0o644);
        b.append_link(&mut h, "b", "a").unwrap();
        file(&mut b, &long_file, 0o600, b"long");
        let mut h = header(tar::EntryType::Link, 0o644);
        b.append_link(&mut h, "c", &long_file).unwrap();
        let mut h = header(tar::EntryType::Symlink, 0o777);
        b.append_link(&mut h, "lnk", format!("/{long_file}"))
            .unwrap();
        let size = unpack(&s, b.into_inner().unwrap()).unwrap();
        assert_eq!(size, 6 + 4);
        let d = s.dest();
        assert_eq!(
            fs::metadata(d.join("a")).unwrap().ino(),
            fs::metadata(d.join("b")).unwrap().ino()
        );
        assert_eq!(fs::metadata(d.join("a")).unwrap().nlink(), 2);
        assert_eq!(fs::read(d.join(&long_file)).unwrap(), b"long");
        assert_eq!(fs::read(d.join("c")).unwrap(), b"long");
        assert_eq!(
            fs::read_link(d.join("lnk")).unwrap(),
            PathBuf::from(format!("/{long_file}"))
        );
    }

    #[test]
    fn whiteouts_become_overlay_format() {
        let s = Scratch::new();
        let mut b = tar::Builder::new(Vec::new());
        dir(&mut b, "a", 0o755);
        file(&mut b, "a/.wh.gone", 0o644, b"");
        dir(&mut b, "opq", 0o750);
        file(&mut b, "opq/.wh..wh..opq", 0o644, b"");
        file(&mut b, "opq/kept", 0o644, b"k");
        // Parent created implicitly for a whiteout.
        file(&mut b, "x/y/.wh.z", 0o644, b"");
        unpack(&s, b.into_inner().unwrap()).unwrap();
        let d = s.dest();
        let m = fs::symlink_metadata(d.join("a/gone")).unwrap();
        assert!(m.file_type().is_char_device());
        assert_eq!(m.rdev(), 0);
        assert!(!d.join("a/.wh.gone").exists());
        assert!(fs::symlink_metadata(d.join("x/y/z"))
            .unwrap()
            .file_type()
            .is_char_device());
        let mut buf = [0u8; 8];
        let n = rfs::getxattr(d.join("opq"), "trusted.overlay.opaque", &mut buf[..]).unwrap();
        assert_eq!(&buf[..n], b"y");
        assert!(!d.join("opq/.wh..wh..opq").exists());
        assert_eq!(fs::metadata(d.join("opq")).unwrap().mode() & 0o7777, 0o750);
    }

    #[test]
    fn metadata_devices_and_xattrs() {
        let s = Scratch::new();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = header(tar::EntryType::Regular, 0o4755);
        h.set_uid(1000);
        h.set_gid(1001);
        h.set_size(2);
        b.append_pax_extensions([
            ("SCHILY.xattr.user.berth", &b"v"[..]),
            ("SCHILY.xattr.trusted.overlay.redirect", &b"/etc"[..]),
        ])
        .unwrap();
        b.append_data(&mut h, "suid", &b"#!"[..]).unwrap();
        dir(&mut b, "tmp", 0o1777);
        let mut h = header(tar::EntryType::Char, 0o666);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        b.append_data(&mut h, "dev/null", io::empty()).unwrap();
        let mut h = header(tar::EntryType::Fifo, 0o600);
        b.append_data(&mut h, "fifo", io::empty()).unwrap();
        unpack(&s, b.into_inner().unwrap()).unwrap();
        let d = s.dest();
        let m = fs::metadata(d.join("suid")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o4755);
        assert_eq!((m.uid(), m.gid()), (1000, 1001));
        assert_eq!(m.mtime(), 1_600_000_000);
        let mut buf = [0u8; 8];
        let n = rfs::getxattr(d.join("suid"), "user.berth", &mut buf[..]).unwrap();
        assert_eq!(&buf[..n], b"v");
        assert!(rfs::getxattr(d.join("suid"), "trusted.overlay.redirect", &mut buf[..]).is_err());
        let t = fs::metadata(d.join("tmp")).unwrap();
        assert_eq!(t.mode() & 0o7777, 0o1777);
        assert_eq!(t.mtime(), 1_600_000_000);
        let n = fs::symlink_metadata(d.join("dev/null")).unwrap();
        assert!(n.file_type().is_char_device());
        assert_eq!(n.rdev(), rfs::makedev(1, 3));
        assert!(fs::symlink_metadata(d.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
    }

    fn tree(p: &Path) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(base: &Path, p: &Path, out: &mut Vec<String>) {
            if let Ok(rd) = fs::read_dir(p) {
                for e in rd.flatten() {
                    out.push(e.path().strip_prefix(base).unwrap().display().to_string());
                    if e.file_type().unwrap().is_dir() {
                        walk(base, &e.path(), out);
                    }
                }
            }
        }
        walk(p, p, &mut out);
        out.sort();
        out
    }

    #[test]
    fn ingest_verifies_and_leaves_nothing_on_error() {
        let s = Scratch::new();
        let root = s.0.join("store");
        berth_store::Store::open(&root).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        file(&mut b, "hello", 0o644, b"world");
        let plain = b.into_inner().unwrap();
        let diff = Digest::sha256_of(&plain);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&plain[..], 3).unwrap();
        let before = tree(&root);

        // Corrupt gzip.
        let mut bad = gz.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0xff;
        bad.truncate(bad.len() - 4);
        assert!(ingest_layer(&root, &mut &bad[..], Compression::Gzip, None, None).is_err());
        assert_eq!(tree(&root), before);
        // Wrong diff id and wrong blob digest.
        let wrong = Digest::sha256_of(b"x");
        let e =
            ingest_layer(&root, &mut &gz[..], Compression::Gzip, None, Some(&wrong)).unwrap_err();
        assert!(e.to_string().contains("expected diff id"), "{e}");
        assert_eq!(tree(&root), before);
        assert!(ingest_layer(&root, &mut &gz[..], Compression::Gzip, Some(&wrong), None).is_err());
        assert_eq!(tree(&root), before);
        // Hostile entry.
        let mut b = tar::Builder::new(Vec::new());
        raw(&mut b, tar::EntryType::Regular, "../../x", None, b"boom");
        let hostile = b.into_inner().unwrap();
        let e = ingest_layer(&root, &mut &hostile[..], Compression::None, None, None).unwrap_err();
        assert!(e.to_string().contains("../../x"), "{e}");
        assert_eq!(tree(&root), before);
        // Not a tar at all.
        assert!(ingest_layer(
            &root,
            &mut &b"garbage garbage"[..],
            Compression::None,
            None,
            None
        )
        .is_err());
        assert_eq!(tree(&root), before);

        // Good: gzip, then zstd and plain of the same content share the layer directory.
        let l = ingest_layer(
            &root,
            &mut &gz[..],
            Compression::None,
            Some(&Digest::sha256_of(&gz)),
            Some(&diff),
        )
        .unwrap();
        assert_eq!(l.diff_id, diff);
        assert_eq!(l.compression, Compression::Gzip);
        assert_eq!(l.blob, Digest::sha256_of(&gz));
        assert_eq!(l.diff_size, plain.len() as u64);
        assert_eq!(l.size, 5);
        assert_eq!(
            fs::read(layer_dir_in(&root, &diff).join("hello")).unwrap(),
            b"world"
        );
        assert_eq!(
            fs::read(berth_store::blob_path(&root, &l.blob)).unwrap(),
            gz
        );
        let z = ingest_layer(&root, &mut &zst[..], Compression::None, None, Some(&diff)).unwrap();
        assert_eq!(z.compression, Compression::Zstd);
        assert_eq!(z.size, 5);
        let p = ingest_layer(&root, &mut &plain[..], Compression::None, None, None).unwrap();
        assert_eq!(p.compression, Compression::None);
        assert_eq!(p.blob, diff);
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
        assert_eq!(detect_compression(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(detect_compression(b"abc"), Compression::None);
    }
}
