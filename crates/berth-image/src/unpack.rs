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
            let dec =
                decompressor(Box::new(&mut tee), comp).map_err(|e| layer_read_error(comp, e))?;
            let mut hr = HashReader {
                inner: dec,
                hasher: Hasher::sha256(),
                n: 0,
            };
            let size = match &tmp.0 {
                Some(dir) => unpack_layer(&mut hr, dir)?,
                None => scan_layer(&mut hr)?,
            };
            // The tar may have padding after its end marker: it is part of the diff id.
            io::copy(&mut hr, &mut io::sink()).map_err(|e| layer_read_error(comp, e))?;
            let HashReader { hasher, n, .. } = hr;
            (hasher.finish(), n, size)
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

/// syncfs the unpacked tree, then rename it into place (an existing identical layer wins).
fn publish_dir(dir: &Path, dest: &Path) -> Result<()> {
    let f = File::open(dir).map_err(|e| ImageError::io(dir, e))?;
    rfs::syncfs(&f).map_err(|e| ImageError::io(dir, e.into()))?;
    drop(f);
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
    };
    let mut ar = tar::Archive::new(r);
    let entries = ar
        .entries()
        .map_err(|e| ImageError::Layer(format!("not a tar archive: {e}")))?;
    let mut size = 0u64;
    let mut last = String::from("(start of archive)");
    for e in entries {
        let mut e =
            e.map_err(|err| ImageError::Layer(format!("corrupt tar after entry {last:?}: {err}")))?;
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
    fn clear(dir: BorrowedFd<'_>, name: &OsStr, keep_dir: bool, shown: &str) -> Result<bool> {
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
            fs::remove_dir_all(&p)
                .map_err(|e| entry_err(shown, format!("cannot replace existing directory: {e}")))?;
        } else {
            rfs::unlinkat(dir, name, AtFlags::empty())
                .map_err(|e| entry_err(shown, format!("cannot replace existing file: {e}")))?;
        }
        Ok(false)
    }

    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, shown: &str) -> Result<u64> {
        let path = e.path_bytes().into_owned();
        let comps = normalise(&path, shown)?;
        let h = e.header().clone();
        let kind = h.entry_type();
        let mode = h
            .mode()
            .map_err(|err| entry_err(shown, format!("bad mode: {err}")))?
            & 0o7777;
        let uid = h
            .uid()
            .map_err(|err| entry_err(shown, format!("bad uid: {err}")))?;
        let gid = h
            .gid()
            .map_err(|err| entry_err(shown, format!("bad gid: {err}")))?;
        let mtime = h.mtime().unwrap_or(0);
        let owner = (
            u32::try_from(uid).map_err(|_| entry_err(shown, "uid out of range"))?,
            u32::try_from(gid).map_err(|_| entry_err(shown, "gid out of range"))?,
        );
        let mut xattrs = Vec::new();
        if let Some(exts) = e
            .pax_extensions()
            .map_err(|err| entry_err(shown, format!("bad PAX header: {err}")))?
        {
            for ext in exts {
                let ext = ext.map_err(|err| entry_err(shown, format!("bad PAX header: {err}")))?;
                if let Ok(k) = ext.key() {
                    if let Some(name) = k.strip_prefix("SCHILY.xattr.") {
                        xattrs.push((name.to_string(), ext.value_bytes().to_vec()));
                    }
                }
            }
        }
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            return Ok(0);
        }
        let Some((name, parent)) = comps.split_last() else {
            // The layer root itself ("./"): take its metadata.
            if kind.is_dir() {
                let fd = self
                    .open_in_root(b".", OFlags::RDONLY)
                    .map_err(|err| entry_err(shown, format!("cannot open layer root: {err}")))?;
                self.set_meta_fd(&fd, owner, mode, &xattrs, None, shown)?;
                self.dir_times.push((Vec::new(), mtime));
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
            Self::clear(dir, &real, false, shown)?;
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
                let existed = Self::clear(dir, &name, true, shown)?;
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
                Self::clear(dir, &name, false, shown)?;
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
                Self::clear(dir, &name, false, shown)?;
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
                Self::clear(dir, &name, false, shown)?;
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
                Self::clear(dir, &name, false, shown)?;
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

    /// Directory mtimes last, since creating entries inside changed them.
    fn finish(&mut self) -> Result<()> {
        self.cache = None;
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
