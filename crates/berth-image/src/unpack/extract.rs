//! The tar extractor: every entry created by hand inside the layer root (see the parent
//! module's documentation).

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, XattrFlags};
use rustix::io::Errno;

use super::meta::times;
use crate::{ImageError, Result};

/// Unpack the layer tar read from `r` into the directory `dest` (every path resolved inside
/// it, whiteouts turned into overlayfs ones); returns the bytes of regular-file content
/// written.
///
/// # Errors
/// [`ImageError::Layer`] for a stream that is not a valid tar, [`ImageError::Entry`] for an
/// entry that is refused (escapes `dest`, unsupported type) or cannot be created.
pub fn unpack_layer(r: &mut dyn Read, dest: &Path) -> Result<u64> {
    unpack(r, dest, true, TreeOptions::default())
}

/// Unpack a tar of ordinary files (`cp` into a container or to the host) into `dest` like
/// [`unpack_layer`], except that `.wh.*` names are plain files, never whiteouts, and an entry
/// for `dest` itself (`./`) is skipped (the directory keeps its owner and mode), as Docker's
/// copy does.
///
/// # Errors
/// As [`unpack_layer`].
pub fn unpack_tree(r: &mut dyn Read, dest: &Path) -> Result<u64> {
    unpack(r, dest, false, TreeOptions::default())
}

/// How [`unpack_tree_with`] treats what is already in the destination and the entries'
/// owners: the flags of Docker's `PUT /containers/{id}/archive`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeOptions {
    /// `noOverwriteDirNonDir`: refuse (with [`ImageError::WouldOverwrite`]) an entry that
    /// would replace an existing directory with a non-directory, or an existing
    /// non-directory with a directory. Without it the existing file or tree is replaced.
    pub no_overwrite_dir_non_dir: bool,
    /// Every entry gets this (uid, gid) instead of the tar's.
    pub owner: Option<(u32, u32)>,
}

/// [`unpack_tree`] with Docker's copy options.
///
/// # Errors
/// As [`unpack_layer`], and [`ImageError::WouldOverwrite`] (nothing after the refused entry
/// is extracted).
pub fn unpack_tree_with(r: &mut dyn Read, dest: &Path, opts: TreeOptions) -> Result<u64> {
    unpack(r, dest, false, opts)
}

fn unpack(r: &mut dyn Read, dest: &Path, whiteouts: bool, opts: TreeOptions) -> Result<u64> {
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
        whiteouts,
        opts,
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

pub(super) fn entry_err(entry: &str, why: impl Into<String>) -> ImageError {
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

pub(super) struct Unpacker {
    pub(super) root: OwnedFd,
    /// Last opened parent directory (path relative to the root, fd).
    pub(super) cache: Option<(Vec<u8>, OwnedFd)>,
    /// Directory mtimes, applied at the end (creating children changes them).
    pub(super) dir_times: Vec<(Vec<u8>, u64)>,
    pub(super) buf: Vec<u8>,
    pub(super) is_root: bool,
    /// Set when something was removed: cached parent lookups may be stale.
    pub(super) dirty: std::cell::Cell<bool>,
    /// Whether the tar set the layer root (`./`); if not, the root is marked as implicit.
    pub(super) saw_root: bool,
    /// Whether `.wh.` names are whiteouts (layers) or ordinary files (`cp`, a tree: its
    /// root entry is skipped and the root is not marked implicit).
    pub(super) whiteouts: bool,
    /// Copy options of a tree (defaults for layers).
    pub(super) opts: TreeOptions,
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

impl Unpacker {
    /// Open a directory inside the root (path resolved with RESOLVE_IN_ROOT).
    pub(super) fn open_in_root(&self, rel: &[u8], flags: OFlags) -> rustix::io::Result<OwnedFd> {
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
        let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        if self.opts.no_overwrite_dir_non_dir && is_dir != keep_dir {
            let (old, new) = if is_dir {
                ("directory", "non-directory")
            } else {
                ("non-directory", "directory")
            };
            return Err(ImageError::WouldOverwrite(format!(
                "cannot overwrite {old} {shown:?} with {new}; remove it first or copy to another path"
            )));
        }
        if is_dir {
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
        let owner = match self.opts.owner {
            Some(o) => o,
            None => (
                u32::try_from(uid).map_err(|_| entry_err(shown, "uid out of range"))?,
                u32::try_from(gid).map_err(|_| entry_err(shown, "gid out of range"))?,
            ),
        };
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
            // The layer root itself ("./"): take its metadata (a copied tree's destination
            // keeps its own).
            if kind.is_dir() && self.whiteouts {
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
        if let Some(real) = name.strip_prefix(b".wh.").filter(|_| self.whiteouts) {
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
                let tkind = match rfs::statat(&tdir, &tname, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                        return Err(entry_err(
                            shown,
                            format!("hardlink target {tshown:?} is a directory"),
                        ))
                    }
                    Ok(st) => FileType::from_raw_mode(st.st_mode),
                    Err(err) => {
                        return Err(entry_err(
                            shown,
                            format!("hardlink target {tshown:?} is not in the layer (yet): {err}"),
                        ))
                    }
                };
                self.parent(parent, shown)?;
                let dir = self.pfd();
                self.clear(dir, &name, false, shown)?;
                rfs::linkat(&tdir, &tname, dir, &name, AtFlags::empty()).map_err(|err| {
                    entry_err(
                        shown,
                        format!("cannot create hardlink to {tshown:?}: {err}"),
                    )
                })?;
                // The link's header describes the shared inode as of this entry: its owner,
                // mode, xattrs and mtime win over the first entry's (as Docker's and
                // containerd's extractors apply them), except on a hardlinked symlink.
                self.link_meta(dir, &name, tkind, owner, mode, &xattrs, mtime, shown)?;
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
}
