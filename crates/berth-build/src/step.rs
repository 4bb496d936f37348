//! A filesystem-changing step: an overlay of the layers so far plus a fresh upper directory,
//! mounted in the store's `tmp/`; files are written into it (COPY/ADD) or a container runs in
//! it (RUN); afterwards the upper directory becomes the step's layer.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_image::{Compression, ImageStore, Layer};
use berth_store::Store;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::{BuildError, Result};

/// A mounted overlay for one step (unmounted and removed on drop). The directory is
/// recorded in `build_steps` while it exists (see [`crate::recover`]).
#[derive(Debug)]
pub(crate) struct StepRoot<'s> {
    pub dir: PathBuf,
    mounted: bool,
    store: &'s Store,
}

fn mount_err(e: impl std::fmt::Display) -> BuildError {
    BuildError::Other(format!(
        "mounting the build step's root filesystem (overlayfs): {e}; berth build needs root and overlayfs"
    ))
}

impl<'s> StepRoot<'s> {
    /// Mount `lowers` (bottom layer first) with a fresh upper directory; `writable = false`
    /// mounts them read-only without an upper (for reading another stage's files).
    pub fn new(store: &'s Store, lowers: &[PathBuf], writable: bool) -> Result<StepRoot<'s>> {
        let distinct = berth_engine::overlay::distinct_lowers(lowers);
        let lowers = distinct.as_slice();
        let dir = store.tmp_path("step");
        crate::recover::begin(store, &dir)?;
        let mut me = StepRoot {
            dir: dir.clone(),
            mounted: false,
            store,
        };
        for d in ["upper", "work", "merged", "empty", "bundle"] {
            let p = dir.join(d);
            fs::create_dir_all(&p).map_err(|e| BuildError::io(&p, e))?;
        }
        let mut lower: Vec<String> = lowers
            .iter()
            .rev()
            .map(|p| p.to_string_lossy().replace(':', "\\:"))
            .collect();
        // A read-only overlay needs two lower layers; an empty one costs nothing.
        lower.push(dir.join("empty").to_string_lossy().into_owned());
        let data = if writable {
            format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.join(":"),
                dir.join("upper").display(),
                dir.join("work").display()
            )
        } else {
            format!("lowerdir={}", lower.join(":"))
        };
        if data.len() > berth_engine::overlay::MAX_OPTIONS_LEN {
            // Too many layers for one option string: pass them one by one.
            let top_first: Vec<PathBuf> = lowers
                .iter()
                .rev()
                .cloned()
                .chain(std::iter::once(dir.join("empty")))
                .collect();
            let (upper, work) = (dir.join("upper"), dir.join("work"));
            berth_engine::overlay::mount_each_layer(
                &dir.join("merged"),
                &top_first,
                writable.then_some((upper.as_path(), work.as_path())),
                !writable,
            )
            .map_err(|e| mount_err(berth_engine::overlay::too_deep_message(lowers.len(), &e)))?;
            me.mounted = true;
            return Ok(me);
        }
        let c = std::ffi::CString::new(data).map_err(|_| mount_err("a path holds a NUL byte"))?;
        rustix::mount::mount(
            "overlay",
            dir.join("merged"),
            "overlay",
            if writable {
                rustix::mount::MountFlags::empty()
            } else {
                rustix::mount::MountFlags::RDONLY
            },
            Some(c.as_c_str()),
        )
        .map_err(mount_err)?;
        me.mounted = true;
        Ok(me)
    }

    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }

    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    pub fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }

    pub fn unmount(&mut self) -> Result<()> {
        if self.mounted {
            rustix::mount::unmount(self.merged(), rustix::mount::UnmountFlags::DETACH)
                .map_err(|e| BuildError::Other(format!("unmounting a build step: {e}")))?;
            self.mounted = false;
        }
        Ok(())
    }

    /// Unmount and turn the upper directory into a recorded layer (`None` if the step changed
    /// nothing).
    pub fn into_layer(
        mut self,
        images: &ImageStore<'_>,
        compression: Compression,
    ) -> Result<Option<Layer>> {
        self.unmount()?;
        let upper = self.upper();
        let empty = fs::read_dir(&upper)
            .map_err(|e| BuildError::io(&upper, e))?
            .next()
            .is_none();
        if empty {
            return Ok(None);
        }
        // Move the upper dir out of the step dir so `ingest_dir` can rename it into place.
        let layer_dir = images.store().tmp_path("layer");
        fs::rename(&upper, &layer_dir).map_err(|e| BuildError::io(&layer_dir, e))?;
        let res = berth_image::ingest_dir(images.store().root(), &layer_dir, compression);
        if layer_dir.exists() {
            let _ = fs::remove_dir_all(&layer_dir);
        }
        let layer = res?;
        images.record_layer(&layer)?;
        Ok(Some(layer))
    }
}

impl Drop for StepRoot<'_> {
    fn drop(&mut self) {
        let _ = self.unmount();
        let stuck = berth_store::unmount_under(&self.dir);
        if !stuck.is_empty() {
            tracing::warn!("cannot unmount {stuck:?}; the next berth command retries");
            return;
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::warn!("cannot remove {}: {e}", self.dir.display());
            }
        }
        crate::recover::end(self.store, &self.dir);
    }
}

const RESOLVE: rustix::fs::ResolveFlags =
    rustix::fs::ResolveFlags::IN_ROOT.union(rustix::fs::ResolveFlags::NO_MAGICLINKS);

/// Open `path` inside `root` (every component resolved inside it).
pub(crate) fn open_in(root: &Path, path: &str, flags: OFlags) -> io::Result<OwnedFd> {
    let r = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    Ok(rustix::fs::openat2(
        &r,
        rel,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    )?)
}

/// Whether `path` exists inside `root` (without following symlinks out of it).
pub(crate) fn exists_in(root: &Path, path: &str) -> bool {
    open_in(root, path, OFlags::PATH | OFlags::NOFOLLOW).is_ok()
        || open_in(root, path, OFlags::PATH).is_ok()
}

/// Whether `path` inside `root` is a directory (following symlinks inside the root).
pub(crate) fn is_dir_in(root: &Path, path: &str) -> bool {
    open_in(root, path, OFlags::PATH | OFlags::DIRECTORY).is_ok()
}

/// `mkdir -p` of `path` inside `root`; created directories get mode 0755 and `owner`.
pub(crate) fn mkdir_p_in(root: &Path, path: &str, owner: (u32, u32)) -> Result<()> {
    let comps: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    for i in 0..comps.len() {
        let prefix = comps[..=i].join("/");
        if is_dir_in(root, &prefix) {
            continue;
        }
        let parent = open_in(
            root,
            &comps[..i].join("/"),
            OFlags::PATH | OFlags::DIRECTORY,
        )
        .map_err(|e| BuildError::io(root.join(&prefix), e))?;
        match rustix::fs::mkdirat(&parent, comps[i], Mode::from_raw_mode(0o755)) {
            Ok(()) => {
                if owner != (0, 0) {
                    let _ = rustix::fs::chownat(
                        &parent,
                        comps[i],
                        Some(rustix::fs::Uid::from_raw(owner.0)),
                        Some(rustix::fs::Gid::from_raw(owner.1)),
                        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                    );
                }
            }
            Err(Errno::EXIST) => {}
            Err(e) => return Err(BuildError::io(root.join(&prefix), e.into())),
        }
    }
    Ok(())
}

/// One file to put into the step's root.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    /// A host file, directory, symlink or node, written at `dest` (absolute in the root).
    Host {
        src: PathBuf,
        dest: String,
        /// Recurse into a directory, writing its children below `dest`.
        recurse: bool,
        /// Path relative to the build context (for `.dockerignore`), if it comes from there.
        rel: Option<String>,
        /// Path relative to the source root (context or `--from`), for `--exclude`.
        src_rel: String,
    },
    /// A directory entry alone, with the metadata of the host directory `src` (`COPY
    /// --parents`: a kept parent directory), written at `dest`.
    Dir { src: PathBuf, dest: String },
    /// Literal content (a heredoc, a download).
    Data {
        dest: String,
        data: Vec<u8>,
        mode: u32,
    },
    /// A tar archive to extract below `dest` (ADD of a local archive).
    Archive { src: PathBuf, dest: String },
}

/// How copied files are owned and moded.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Attrs {
    /// `--chown` (else `keep_owner` decides).
    pub owner: Option<(u32, u32)>,
    /// Keep the source's owner (COPY --from a stage or image); else root.
    pub keep_owner: bool,
    /// `--chmod`.
    pub mode: Option<u32>,
}

fn tar_err(e: io::Error) -> BuildError {
    BuildError::Other(format!("writing files into the build step: {e}"))
}

struct TarOut<'c, W: Write> {
    b: tar::Builder<W>,
    attrs: Attrs,
    ctx: Option<&'c crate::Context>,
    exclude: Option<&'c crate::context::Excludes>,
}

impl<W: Write> TarOut<'_, W> {
    fn header(&self, md: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        let mode = match (self.attrs.mode, kind) {
            (Some(m), tar::EntryType::Regular | tar::EntryType::Directory) => m,
            _ => md.mode() & 0o7777,
        };
        h.set_mode(mode);
        let (uid, gid) = match self.attrs.owner {
            Some(o) => o,
            None if self.attrs.keep_owner => (md.uid(), md.gid()),
            None => (0, 0),
        };
        h.set_uid(u64::from(uid));
        h.set_gid(u64::from(gid));
        h.set_mtime(u64::try_from(md.mtime()).unwrap_or(0));
        h.set_size(0);
        h
    }

    /// Write `src` at `dest`; `rel_ctx` is its path in the context (for `.dockerignore`),
    /// `x` = (the source's root-relative path, this entry's root-relative path) for
    /// `--exclude`.
    fn host(
        &mut self,
        src: &Path,
        dest: &str,
        recurse: bool,
        rel_ctx: Option<&str>,
        x: (&str, &str),
    ) -> Result<()> {
        let md = fs::symlink_metadata(src).map_err(|e| BuildError::io(src, e))?;
        let ft = md.file_type();
        let rel = dest.trim_start_matches('/');
        if ft.is_dir() {
            if !rel.is_empty() && !recurse {
                let mut h = self.header(&md, tar::EntryType::Directory);
                self.b
                    .append_data(&mut h, rel, io::empty())
                    .map_err(tar_err)?;
            }
            let mut names: Vec<_> = fs::read_dir(src)
                .map_err(|e| BuildError::io(src, e))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .collect();
            names.sort();
            for n in names {
                let child = format!("{}/{}", dest.trim_end_matches('/'), n.to_string_lossy());
                let child_rel = rel_ctx.map(|r| {
                    if r.is_empty() || r == "." {
                        n.to_string_lossy().into_owned()
                    } else {
                        format!("{r}/{}", n.to_string_lossy())
                    }
                });
                if let (Some(c), Some(cr)) = (self.ctx, child_rel.as_deref()) {
                    if c.skip(&src.join(&n), cr) {
                        continue;
                    }
                }
                let child_x = if x.1.is_empty() || x.1 == "." {
                    n.to_string_lossy().into_owned()
                } else {
                    format!("{}/{}", x.1, n.to_string_lossy())
                };
                if self.exclude.is_some_and(|e| e.excluded(x.0, &child_x)) {
                    continue;
                }
                self.host(
                    &src.join(&n),
                    &child,
                    false,
                    child_rel.as_deref(),
                    (x.0, &child_x),
                )?;
            }
        } else if ft.is_symlink() {
            let t = fs::read_link(src).map_err(|e| BuildError::io(src, e))?;
            let mut h = self.header(&md, tar::EntryType::Symlink);
            self.b.append_link(&mut h, rel, &t).map_err(tar_err)?;
        } else if ft.is_file() {
            let mut h = self.header(&md, tar::EntryType::Regular);
            h.set_size(md.len());
            let f = File::open(src).map_err(|e| BuildError::io(src, e))?;
            self.b
                .append_data(&mut h, rel, f.take(md.len()))
                .map_err(tar_err)?;
        } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_fifo() {
                tar::EntryType::Fifo
            } else if ft.is_char_device() {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            };
            let mut h = self.header(&md, kind);
            if !ft.is_fifo() {
                let _ = h.set_device_major(rustix::fs::major(md.rdev()));
                let _ = h.set_device_minor(rustix::fs::minor(md.rdev()));
            }
            self.b
                .append_data(&mut h, rel, io::empty())
                .map_err(tar_err)?;
        }
        Ok(())
    }

    /// A directory entry at `dest` moded and owned like `src` (0755 and the copy's owner when
    /// `src` is not a directory).
    fn dir(&mut self, src: &Path, dest: &str) -> Result<()> {
        let rel = dest.trim_start_matches('/');
        if rel.is_empty() {
            return Ok(());
        }
        let mut h = match fs::metadata(src) {
            Ok(md) if md.is_dir() => self.header(&md, tar::EntryType::Directory),
            _ => {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                let (uid, gid) = self.attrs.owner.unwrap_or((0, 0));
                h.set_uid(u64::from(uid));
                h.set_gid(u64::from(gid));
                h.set_size(0);
                h
            }
        };
        self.b
            .append_data(&mut h, rel, io::empty())
            .map_err(tar_err)
    }

    fn data(&mut self, dest: &str, data: &[u8], mode: u32) -> Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(self.attrs.mode.unwrap_or(mode));
        let (uid, gid) = self.attrs.owner.unwrap_or((0, 0));
        h.set_uid(u64::from(uid));
        h.set_gid(u64::from(gid));
        h.set_mtime(u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0));
        h.set_size(data.len() as u64);
        self.b
            .append_data(&mut h, dest.trim_start_matches('/'), data)
            .map_err(tar_err)
    }

    /// Re-emit an archive's entries below `dest`.
    fn archive(&mut self, src: &Path, dest: &str) -> Result<()> {
        let f = File::open(src).map_err(|e| BuildError::io(src, e))?;
        let r = decompress(f).map_err(|e| BuildError::io(src, e))?;
        let mut ar = tar::Archive::new(r);
        let base = dest
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string();
        let join = |p: &Path| -> String {
            let c = crate::context::confine(&p.to_string_lossy());
            if base.is_empty() {
                c
            } else if c.is_empty() {
                base.clone()
            } else {
                format!("{base}/{c}")
            }
        };
        let entries = ar.entries().map_err(|e| BuildError::io(src, e))?;
        for e in entries {
            let mut e = e.map_err(|e| BuildError::io(src, e))?;
            let path = e.path().map_err(|e| BuildError::io(src, e))?.into_owned();
            let target = join(&path);
            if target.is_empty() {
                continue;
            }
            let mut h = e.header().clone();
            let kind = h.entry_type();
            if matches!(
                kind,
                tar::EntryType::XHeader | tar::EntryType::XGlobalHeader
            ) {
                continue;
            }
            if let Some(o) = self.attrs.owner {
                h.set_uid(u64::from(o.0));
                h.set_gid(u64::from(o.1));
            }
            match kind {
                tar::EntryType::Link => {
                    let l = e
                        .link_name()
                        .map_err(|e| BuildError::io(src, e))?
                        .map(|l| join(&l))
                        .unwrap_or_default();
                    self.b.append_link(&mut h, &target, l).map_err(tar_err)?;
                }
                tar::EntryType::Symlink => {
                    let l = e
                        .link_name()
                        .map_err(|e| BuildError::io(src, e))?
                        .map(|l| l.into_owned())
                        .unwrap_or_default();
                    self.b.append_link(&mut h, &target, l).map_err(tar_err)?;
                }
                _ => {
                    self.b
                        .append_data(&mut h, &target, &mut e)
                        .map_err(tar_err)?;
                }
            }
        }
        Ok(())
    }
}

/// A reader that decompresses gzip, bzip2, xz or zstd by content, as Docker's ADD does
/// (its `archive.DetectCompression`); a plain tar is read as it is.
pub(crate) fn decompress(f: File) -> io::Result<Box<dyn Read>> {
    let (_, r) = berth_image::decompress::decompressed(Box::new(io::BufReader::new(f)))?;
    Ok(r)
}

/// Whether `p` looks like a tar archive ADD would extract: a tar, plain or compressed with
/// gzip, bzip2, xz or zstd, whose first header has a valid checksum (Docker's `IsArchive`
/// reads one header; anything else is copied as a file).
pub(crate) fn is_archive(p: &Path) -> bool {
    let Ok(f) = File::open(p) else { return false };
    let Ok(mut r) = decompress(f) else {
        return false;
    };
    let mut block = vec![0u8; 512];
    let mut got = 0;
    while got < 512 {
        match r.read(&mut block[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got == 512 && tar_header_valid(&block)
}

/// Whether a 512-byte block is a tar header: its checksum field matches (ustar, GNU and v7
/// headers alike; the `tar` crate computes it the same way).
fn tar_header_valid(block: &[u8]) -> bool {
    let mut h = tar::Header::new_old();
    h.as_mut_bytes().copy_from_slice(&block[..512]);
    let Ok(want) = h.cksum() else { return false };
    let sum: u32 = block[..148]
        .iter()
        .chain(&[b' '; 8])
        .chain(&block[156..512])
        .map(|b| u32::from(*b))
        .sum();
    sum == want && block[..100].iter().any(|b| *b != 0)
}

/// Write `items` into the mounted root `merged` (through a tar stream unpacked with berth's
/// safe unpacker: every path resolved inside the root).
pub(crate) fn write_items(
    merged: &Path,
    items: &[Item],
    attrs: Attrs,
    ctx: Option<&crate::Context>,
    exclude: Option<&crate::context::Excludes>,
) -> Result<()> {
    let (r, w) = rustix::pipe::pipe().map_err(|e| BuildError::Other(format!("pipe: {e}")))?;
    let mut rf = File::from(r);
    let wf = File::from(w);
    std::thread::scope(|s| {
        let producer = s.spawn(move || -> Result<()> {
            let mut t = TarOut {
                b: tar::Builder::new(io::BufWriter::with_capacity(256 * 1024, wf)),
                attrs,
                ctx,
                exclude,
            };
            for it in items {
                match it {
                    Item::Host {
                        src,
                        dest,
                        recurse,
                        rel,
                        src_rel,
                    } => t.host(src, dest, *recurse, rel.as_deref(), (src_rel, src_rel))?,
                    Item::Dir { src, dest } => t.dir(src, dest)?,
                    Item::Data { dest, data, mode } => t.data(dest, data, *mode)?,
                    Item::Archive { src, dest } => t.archive(src, dest)?,
                }
            }
            t.b.into_inner()
                .and_then(|mut w| w.flush())
                .map_err(tar_err)?;
            Ok(())
        });
        let unpacked = berth_image::unpack_layer(&mut rf, merged);
        // Drain so the producer never blocks on a full pipe after an unpack error.
        let _ = io::copy(&mut rf, &mut io::sink());
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(BuildError::Other("the file copier panicked".into())));
        produced?;
        unpacked?;
        Ok(())
    })
}

/// Remove `rel` from the upper dir if it is an empty file or directory the step created only
/// as a mount point.
pub(crate) fn remove_stub(upper: &Path, rel: &str) {
    let p = upper.join(rel.trim_start_matches('/'));
    let Ok(md) = fs::symlink_metadata(&p) else {
        return;
    };
    if md.is_dir() {
        let _ = fs::remove_dir(&p);
    } else if md.is_file() && md.len() == 0 {
        let _ = fs::remove_file(&p);
    }
}

/// Mode, owner and group of a directory (to tell whether a RUN step changed it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DirAttrs {
    mode: u32,
    uid: u32,
    gid: u32,
}

/// The attributes of the directory `path` inside `root` (not following a final symlink);
/// `None` when it is not a directory.
pub(crate) fn dir_attrs_in(root: &Path, path: &str) -> Option<DirAttrs> {
    let fd = open_in(root, path, OFlags::PATH | OFlags::NOFOLLOW).ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    (rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory).then_some(
        DirAttrs {
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
        },
    )
}

/// Remove the directory `rel` from the upper dir when overlayfs only copied it up for a mount
/// point the runtime created in it (since removed): it is empty, not opaque, and still has
/// `before`'s mode and owner.
pub(crate) fn remove_unchanged_copy_up(upper: &Path, rel: &str, before: DirAttrs) {
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        return;
    }
    let p = upper.join(rel);
    let Ok(md) = fs::symlink_metadata(&p) else {
        return;
    };
    let now = DirAttrs {
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
    };
    let empty = fs::read_dir(&p).is_ok_and(|mut d| d.next().is_none());
    let mut buf = [0u8; 8];
    let opaque = rustix::fs::lgetxattr(&p, "trusted.overlay.opaque", &mut buf).is_ok();
    if md.is_dir() && empty && !opaque && now == before {
        let _ = fs::remove_dir(&p);
    }
}

/// A file name as an `OsStr` (for the *at calls).
#[allow(dead_code)]
pub(crate) fn os(s: &str) -> &OsStr {
    OsStr::from_bytes(s.as_bytes())
}
