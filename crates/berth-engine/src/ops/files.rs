//! A container's files and processes seen from outside: `diff`, `export`, `cp` (both ways and
//! as tar streams), `top`, `stats`.
//!
//! The container's root filesystem is untrusted (its processes may swap a directory for a
//! symlink at any moment, CVE-2018-15664), so every walk of it runs in a thread that has its
//! own filesystem context (`unshare(CLONE_FS | CLONE_NEWNS)`) and is `chroot`ed into the
//! root: the kernel resolves every path, symlinks and `..` included, inside the container, as
//! Docker's `chrootarchive` does. A stopped container's root is mounted in that thread's
//! private mount namespace, so the mount disappears with the thread whatever happens.
//! Tars coming in are extracted with `berth_image::unpack_layer` (openat2
//! `RESOLVE_IN_ROOT` for every entry) inside that chroot.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_image::ImageStore;
use berth_store::Store;

use crate::cgroups::CgroupStats;
use crate::host::Host;
use crate::rootfs::Bundle;
use crate::state::{Container, State};
use crate::{EngineError, Result};

fn other(msg: impl Into<String>) -> EngineError {
    EngineError::Other(msg.into())
}

/// Run `f` in a new thread whose root directory is the container's root filesystem (mounted
/// privately for the thread when the container is not running). `f` sees `/` as the
/// container's `/`: for a running container with its mounts (volumes, binds, tmpfs), the view
/// of `/proc/PID/root`; for a stopped (created, exited) one, the image and writable layer
/// with the container's volumes and bind mounts bound over it at their destinations (parents
/// before children, read-only ones read-only), as Docker's daemon mounts them for `docker
/// cp`. A stopped container has no tmpfs mounts: paths under a tmpfs destination are the
/// root filesystem's (as with Docker). Every mount is made in the thread's private mount
/// namespace, so none outlives the thread, whatever happens to the process.
///
/// Errors: what `f` returns; [`EngineError::Image`] when the image's layers cannot be found;
/// [`EngineError::Volume`] when a volume cannot be found or mounted;
/// [`EngineError::InvalidArgument`] when a bind's host path is missing; [`EngineError::Io`]
/// when a bind's host path cannot be read or a mount point cannot be made in the root
/// filesystem;
/// [`EngineError::Other`] when the thread cannot get a private mount namespace or mount or
/// enter the root filesystem.
pub fn in_container_root<T: Send>(
    store: &Store,
    c: &Container,
    f: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    in_root(store, c, true, f)
}

/// [`in_container_root`]; `with_mounts: false` gives a running container's root filesystem
/// without its mounts (what `docker export` archives: no volume contents).
fn in_root<T: Send>(
    store: &Store,
    c: &Container,
    with_mounts: bool,
    f: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    let bundle = Bundle::new(store.root(), &c.id);
    // A running container's root as its own processes see it: /proc/PID/root crosses the
    // mounts of the container's mount namespace (volumes, binds, tmpfs), as `docker cp` does
    // (Docker mounts the volumes for the copy). The pidfd, opened before the pid is checked
    // to be the container's, keeps a recycled pid from being taken for it.
    let live = match (c.state, c.pid) {
        (State::Running, Some(pid)) if with_mounts => {
            crate::pidfd::open_container(pid, &c.id).map(|fd| (pid, fd))
        }
        _ => None,
    };
    let lowers = if live.is_some() || bundle.is_mounted() {
        None
    } else {
        let images = ImageStore::open(store)?;
        let image = images.get(&c.image_id)?;
        Some(images.layer_dirs(&image))
    };
    let mounts = if live.is_none() && with_mounts {
        crate::volumes::copy_mounts(store, &c.id, &c.config)?
    } else {
        Vec::new()
    };
    std::thread::scope(|s| {
        s.spawn(move || -> Result<T> {
            use rustix::thread::UnshareFlags;
            // SAFETY: unsharing the filesystem context and the mount namespace affects only
            // this thread (no memory is shared differently); it ends with the thread.
            unsafe { rustix::thread::unshare_unsafe(UnshareFlags::FS | UnshareFlags::NEWNS) }
                .map_err(|e| other(format!("cannot enter a private mount namespace: {e}")))?;
            rustix::mount::mount_change(
                "/",
                rustix::mount::MountPropagationFlags::PRIVATE
                    | rustix::mount::MountPropagationFlags::REC,
            )
            .map_err(|e| other(format!("cannot make mounts private: {e}")))?;
            if let Some(l) = &lowers {
                bundle.mount(l)?;
            }
            if !mounts.is_empty() {
                mount_over_root(&bundle.rootfs(), &mounts)?;
            }
            let root = match &live {
                Some((pid, _)) => PathBuf::from(format!("/proc/{pid}/root")),
                None => bundle.rootfs(),
            };
            let c_root = CString::new(root.as_os_str().as_encoded_bytes())
                .map_err(|_| other("root path with a NUL byte"))?;
            // SAFETY: chroot(2) on a NUL-terminated path; it changes only this thread's
            // filesystem context, which was unshared above.
            if unsafe { libc::chroot(c_root.as_ptr()) } != 0 {
                return Err(EngineError::io(&root, std::io::Error::last_os_error()));
            }
            std::env::set_current_dir("/").map_err(|e| EngineError::io("/", e))?;
            if let Some((_, fd)) = &live {
                // The root is the container's only while its init lives (after its exit the
                // path could have named a recycled pid's root when chroot resolved it).
                if crate::pidfd::wait_exit(fd, std::time::Duration::ZERO).unwrap_or(true) {
                    return Err(other(format!(
                        "container {} stopped during the copy; try again",
                        c.name
                    )));
                }
            }
            f()
        })
        .join()
        .map_err(|_| other("the container file worker panicked"))?
    })
}

/// Mount a stopped container's binds and volumes (`mounts`, parents first) over its root
/// filesystem `rootfs`, in the calling thread's private mount namespace. Empty volumes that
/// copy up first get the image's content at their destination (read from the root filesystem
/// before anything is mounted over it, as a start does). Each destination is resolved, and
/// made when missing, inside the root (`RESOLVE_IN_ROOT`: a symlink in the image cannot send
/// a mount outside it), and the source tree is attached to that handle (`open_tree` +
/// `move_mount`), so no path is looked up twice.
fn mount_over_root(rootfs: &Path, mounts: &[crate::volumes::CopyMount]) -> Result<()> {
    use berth_store::inroot;
    use rustix::mount::{MountFlags, MoveMountFlags, OpenTreeFlags};
    use std::os::fd::{AsFd, AsRawFd};
    for m in mounts.iter().filter(|m| m.copy_up) {
        if fs::read_dir(&m.source).is_ok_and(|mut d| d.next().is_none()) {
            berth_volume::copy_up(rootfs, &m.destination, &m.source)?;
        }
    }
    let root = inroot::open_root(rootfs).map_err(|e| EngineError::io(rootfs, e))?;
    for m in mounts {
        let is_dir = match fs::metadata(&m.source) {
            Ok(md) => md.is_dir(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(EngineError::InvalidArgument(format!(
                    "bind source path does not exist: {}: create it on the host to copy to or from this container while it is stopped",
                    m.source.display()
                )))
            }
            Err(e) => return Err(EngineError::io(&m.source, e)),
        };
        let kind = if is_dir {
            inroot::Kind::Dir
        } else {
            inroot::Kind::File
        };
        let dest = Path::new(&m.destination);
        let fail = |what: &str, e: std::io::Error| {
            other(format!("cannot {what} {} for the copy: {e}", m.destination))
        };
        let resolved =
            inroot::create(rootfs, dest, kind).map_err(|e| fail("make the mount point", e))?;
        let target = inroot::open_in(
            root.as_fd(),
            &resolved,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::NOFOLLOW,
        )
        .map_err(|e| fail("open the mount point", e))?;
        let tree = rustix::mount::open_tree(
            rustix::fs::CWD,
            &m.source,
            OpenTreeFlags::OPEN_TREE_CLONE
                | OpenTreeFlags::OPEN_TREE_CLOEXEC
                | OpenTreeFlags::AT_RECURSIVE,
        )
        .map_err(|e| EngineError::io(&m.source, e.into()))?;
        rustix::mount::move_mount(
            &tree,
            "",
            &target,
            "",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )
        .map_err(|e| fail("mount", e.into()))?;
        if m.read_only {
            // The path now leads to the new mount's root; remount that one read-only.
            let top = inroot::open_in(
                root.as_fd(),
                &resolved,
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::NOFOLLOW,
            )
            .map_err(|e| fail("open the mount", e))?;
            rustix::mount::mount_remount(
                format!("/proc/self/fd/{}", top.as_raw_fd()).as_str(),
                MountFlags::BIND | MountFlags::RDONLY,
                "",
            )
            .map_err(|e| fail("make read-only the mount of", e.into()))?;
        }
    }
    Ok(())
}

/// One line of `diff`: `A` added, `C` changed, `D` deleted, and the absolute path.
pub type Change = (char, String);

/// Changes of the container's writable layer against its image (`docker diff`), sorted by
/// path. Directories holding a change are listed as changed, as Docker does.
///
/// Errors: [`EngineError::Image`] when the container's image or its layers cannot be found;
/// entries of the writable layer that cannot be read are skipped.
pub fn diff(store: &Store, c: &Container) -> Result<Vec<Change>> {
    let images = ImageStore::open(store)?;
    let image = images.get(&c.image_id)?;
    let lowers = images.layer_dirs(&image);
    let upper = Bundle::new(store.root(), &c.id).upper();
    let in_lower = |rel: &Path| -> bool {
        lowers.iter().any(|l| {
            berth_store::inroot::open_root(l)
                .and_then(|r| {
                    berth_store::inroot::open_in(
                        std::os::fd::AsFd::as_fd(&r),
                        rel,
                        rustix::fs::OFlags::PATH | rustix::fs::OFlags::NOFOLLOW,
                    )
                })
                .is_ok()
        })
    };
    // Mount points berth creates for every container (Docker keeps them in an init layer
    // below the container's own, so its diff never shows them).
    const OWN: &[&str] = &[
        "/dev",
        "/proc",
        "/sys",
        "/etc/hostname",
        "/etc/hosts",
        "/etc/resolv.conf",
    ];
    let mut out = Vec::new();
    let mut dirs = Vec::new();
    walk_upper(&upper, Path::new(""), &mut |rel, md| {
        let abs = format!("/{}", rel.display());
        let whiteout = md.file_type().is_char_device() && md.rdev() == 0;
        let kind = if whiteout {
            'D'
        } else if in_lower(rel) {
            'C'
        } else {
            'A'
        };
        if md.is_dir() && kind == 'C' {
            dirs.push(abs.clone());
        }
        if !OWN.contains(&abs.as_str()) {
            out.push((kind, abs));
        }
    })?;
    // A changed directory whose only changes were berth's own mount points is unchanged.
    let keep: Vec<bool> = out
        .iter()
        .map(|(k, p)| {
            *k != 'C'
                || !dirs.contains(p)
                || out.iter().any(|(_, q)| q.starts_with(&format!("{p}/")))
        })
        .collect();
    let mut out: Vec<Change> = out
        .into_iter()
        .zip(keep)
        .filter_map(|(c, k)| k.then_some(c))
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// Depth-first walk of an overlay upper directory without following symlinks (a directory
/// entry is descended only if it is still a directory when opened with `O_NOFOLLOW`).
fn walk_upper(base: &Path, rel: &Path, f: &mut dyn FnMut(&Path, &fs::Metadata)) -> Result<()> {
    let dir = base.join(rel);
    let Ok(rd) = fs::read_dir(&dir) else {
        return Ok(());
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let r = rel.join(e.file_name());
        let Ok(md) = e.metadata() else { continue };
        f(&r, &md);
        if md.is_dir() {
            let still_dir = rustix::fs::open(
                base.join(&r),
                rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::NOFOLLOW
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .is_ok();
            if still_dir {
                walk_upper(base, &r, f)?;
            }
        }
    }
    Ok(())
}

/// Write a tar of the container's whole root filesystem (`docker export`) to `w`: image and
/// writable layer, without the contents of volumes, binds and tmpfs mounts (as Docker).
///
/// Errors: as [`in_container_root`]; [`EngineError::Io`] for a file that cannot be read,
/// [`EngineError::Other`] when writing to `w` fails.
pub fn export(store: &Store, c: &Container, w: &mut (dyn Write + Send)) -> Result<()> {
    in_root(store, c, false, || {
        let mut b = tar::Builder::new(w);
        append_tree(&mut b, Path::new("/"), Path::new("."), true, true)?;
        b.finish()
            .map_err(|e| other(format!("writing the tar: {e}")))?;
        Ok(())
    })
}

/// Add `src` (a path in the current root) to the tar as `name`, recursing into directories
/// without following symlinks. `keep_owner`: the files' uid/gid, else 0/0. `top` marks the
/// root of an export (whose `/proc`, `/sys` contents are skipped). A regular file met again
/// through another hardlink in the tree becomes a hardlink entry naming the first one, so
/// extracting the tar links them again (as Docker's archiver does).
fn append_tree<W: Write>(
    b: &mut tar::Builder<W>,
    src: &Path,
    name: &Path,
    keep_owner: bool,
    top: bool,
) -> Result<()> {
    let mut links = HashMap::new();
    append_entry(b, src, name, keep_owner, top, &mut links)
}

/// [`append_tree`]'s recursion; `links`: the tar name of the first entry written for each
/// (device, inode) of a regular file with more than one link.
fn append_entry<W: Write>(
    b: &mut tar::Builder<W>,
    src: &Path,
    name: &Path,
    keep_owner: bool,
    top: bool,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<()> {
    let md = fs::symlink_metadata(src).map_err(|e| EngineError::io(src, e))?;
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(&md, tar::HeaderMode::Complete);
    if !keep_owner {
        h.set_uid(0);
        h.set_gid(0);
    }
    let ft = md.file_type();
    let tar_err =
        |e: std::io::Error| other(format!("writing the tar entry {}: {e}", name.display()));
    if ft.is_dir() {
        if name != Path::new(".") {
            h.set_size(0);
            b.append_data(&mut h, name, std::io::empty())
                .map_err(tar_err)?;
        }
        let mut entries: Vec<_> = fs::read_dir(src)
            .map_err(|e| EngineError::io(src, e))?
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if top && matches!(e.file_name().to_str(), Some("proc" | "sys")) {
                let mut hd = tar::Header::new_gnu();
                if let Ok(m) = e.metadata() {
                    hd.set_metadata_in_mode(&m, tar::HeaderMode::Complete);
                }
                hd.set_size(0);
                b.append_data(&mut hd, name.join(e.file_name()), std::io::empty())
                    .map_err(tar_err)?;
                continue;
            }
            append_entry(
                b,
                &src.join(e.file_name()),
                &name.join(e.file_name()),
                keep_owner,
                false,
                links,
            )?;
        }
    } else if ft.is_symlink() {
        let target = fs::read_link(src).map_err(|e| EngineError::io(src, e))?;
        h.set_size(0);
        b.append_link(&mut h, name, &target).map_err(tar_err)?;
    } else if ft.is_file() {
        if md.nlink() > 1 {
            if let Some(first) = links.get(&(md.dev(), md.ino())) {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                b.append_link(&mut h, name, first).map_err(tar_err)?;
                return Ok(());
            }
            links.insert((md.dev(), md.ino()), name.to_path_buf());
        }
        let f = fs::File::open(src).map_err(|e| EngineError::io(src, e))?;
        b.append_data(&mut h, name, f).map_err(tar_err)?;
    } else {
        // Devices, FIFOs, sockets: headers only.
        h.set_size(0);
        b.append_data(&mut h, name, std::io::empty())
            .map_err(tar_err)?;
    }
    Ok(())
}

/// Whether a cp source ends in `/.` (copy a directory's contents rather than the directory).
pub fn contents_only(p: &str) -> bool {
    p.ends_with("/.") || p == "."
}

/// The last component of a cp path (`/a/b/` → `b`).
pub fn base_name(p: &str) -> PathBuf {
    let t = p.trim_end_matches("/.").trim_end_matches('/');
    Path::new(t)
        .file_name()
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// `cp CONTAINER:SRC -`: write a tar of `src` (inside the container) to `w`, the top entry
/// named `name` (default: `src`'s last component; the directory's contents for `SRC/.`).
/// `opts`: (follow `src` itself when it is a symlink (`-L`), keep uid/gid (`-a`, else 0/0)).
/// Errors: `src` does not exist in the container.
pub fn copy_out(
    store: &Store,
    c: &Container,
    src: &str,
    name: Option<&Path>,
    opts: (bool, bool),
    w: &mut (dyn Write + Send),
) -> Result<()> {
    let (follow, keep_owner) = opts;
    let src = src.to_string();
    let given = name.map(Path::to_path_buf);
    in_container_root(store, c, move || {
        let mut p = PathBuf::from(if src.starts_with('/') {
            src.clone()
        } else {
            format!("/{src}")
        });
        if follow {
            p = fs::canonicalize(&p).map_err(|e| not_found(&src, e))?;
        }
        fs::symlink_metadata(&p).map_err(|e| not_found(&src, e))?;
        let name = if contents_only(&src) {
            PathBuf::from(".")
        } else {
            given.unwrap_or_else(|| base_name(&src))
        };
        let mut b = tar::Builder::new(w);
        append_tree(&mut b, &p, &name, keep_owner, false)?;
        b.finish()
            .map_err(|e| other(format!("writing the tar: {e}")))?;
        Ok(())
    })
}

fn not_found(p: &str, e: std::io::Error) -> EngineError {
    if e.kind() == std::io::ErrorKind::NotFound {
        EngineError::InvalidArgument(format!(
            "could not find the file {p} in container: no such file or directory"
        ))
    } else {
        EngineError::io(p, e)
    }
}

/// How [`copy_in`] extracts: the flags of Docker's `PUT /containers/{id}/archive` (the docker
/// CLI sends `no_overwrite_dir_non_dir` on every copy, `copy_uid_gid` with `cp -a`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyInOptions {
    /// `noOverwriteDirNonDir`: refuse to replace an existing directory with a non-directory
    /// or a non-directory with a directory ([`berth_image::ImageError::WouldOverwrite`]).
    pub no_overwrite_dir_non_dir: bool,
    /// `copyUIDGID`: when the container has a user (`--user` or the image's `USER`), every
    /// entry is owned by that user's uid and primary gid, looked up in the container's
    /// /etc/passwd and /etc/group as Docker's daemon does; without a user (and without this
    /// flag) entries keep the tar's uid/gid.
    pub copy_uid_gid: bool,
}

/// `cp - CONTAINER:DEST`: extract a tar stream into the directory `dest` of the container
/// (`dest` itself may be a symlink to a directory; its own owner and mode are kept).
/// Every entry is created inside the container's root (openat2 `RESOLVE_IN_ROOT`, within a
/// chroot).
///
/// # Errors
/// [`EngineError::InvalidArgument`] when `dest` does not exist or is not a directory, when
/// `dest` (its symlinks followed) is inside a read-only volume or bind mount ("mounted volume
/// is marked read-only") or, outside every volume and bind, the container's root filesystem is
/// read-only ("container rootfs is marked read-only"), Docker's messages for both; or the
/// container's user cannot be resolved (`copy_uid_gid`); [`EngineError::Image`] for a bad tar
/// or a refused entry (see [`CopyInOptions`]).
pub fn copy_in(
    store: &Store,
    c: &Container,
    dest: &str,
    opts: CopyInOptions,
    r: &mut (dyn Read + Send),
) -> Result<()> {
    let dest = dest.to_string();
    let user = c.config.user.clone();
    let cfg = &c.config;
    in_container_root(store, c, move || {
        let p = PathBuf::from(format!("/{}", dest.trim_start_matches('/')));
        match fs::metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(EngineError::InvalidArgument(format!(
                    "destination {dest} in the container is not a directory"
                )))
            }
            Err(e) => return Err(not_found(&dest, e)),
        }
        // Docker's checks, on the path with its symlinks followed (in the container's view):
        // a read-only volume or bind holding it, or a read-only root filesystem.
        let real = fs::canonicalize(&p).map_err(|e| not_found(&dest, e))?;
        match crate::volumes::mount_holding(cfg, &real.to_string_lossy()) {
            Some((_, true)) => {
                return Err(EngineError::InvalidArgument(
                    "mounted volume is marked read-only".into(),
                ))
            }
            None if cfg.read_only => {
                return Err(EngineError::InvalidArgument(
                    "container rootfs is marked read-only".into(),
                ))
            }
            _ => {}
        }
        let owner = if opts.copy_uid_gid && !user.is_empty() {
            let u = crate::user::resolve(Path::new("/"), &user, &[]).map_err(|e| {
                EngineError::InvalidArgument(format!(
                    "cannot copy with the container user's ownership: {e}"
                ))
            })?;
            Some((u.uid, u.gid))
        } else {
            None
        };
        let tree = berth_image::TreeOptions {
            no_overwrite_dir_non_dir: opts.no_overwrite_dir_non_dir,
            owner,
        };
        berth_image::unpack_tree_with(r, &p, tree)?;
        Ok(())
    })
}

/// Where a copy into the container lands: the directory to extract into and the name the
/// top entry gets. Docker's rules: an existing directory receives the source under its own
/// name (or its contents for `SRC/.`); anything else is the new name, in its parent
/// directory. Errors: the parent does not exist.
pub fn copy_in_target(
    store: &Store,
    c: &Container,
    dest: &str,
    src_base: &Path,
) -> Result<(String, PathBuf)> {
    let dest = dest.to_string();
    let src_base = src_base.to_path_buf();
    in_container_root(store, c, move || {
        let p = PathBuf::from(format!("/{}", dest.trim_start_matches('/')));
        if fs::metadata(&p).is_ok_and(|m| m.is_dir()) {
            return Ok((p.display().to_string(), src_base));
        }
        if dest.ends_with('/') {
            return Err(EngineError::InvalidArgument(format!(
                "destination directory {dest} does not exist in the container"
            )));
        }
        let parent = p.parent().unwrap_or(Path::new("/")).to_path_buf();
        if !fs::metadata(&parent).is_ok_and(|m| m.is_dir()) {
            return Err(EngineError::InvalidArgument(format!(
                "the parent directory of {dest} does not exist in the container"
            )));
        }
        let name = p
            .file_name()
            .map_or_else(|| PathBuf::from("."), PathBuf::from);
        Ok((parent.display().to_string(), name))
    })
}

/// A tar of the host path `src` (trusted: the user's own files), the top entry named `name`;
/// `follow`: follow `src` itself if it is a symlink; `keep_owner`: keep uid/gid (`-a`).
///
/// Errors: [`EngineError::Io`] for a path that cannot be resolved or read,
/// [`EngineError::Other`] when writing to `w` fails.
pub fn host_tar(
    src: &Path,
    name: &Path,
    follow: bool,
    keep_owner: bool,
    w: &mut dyn Write,
) -> Result<()> {
    let p = if follow {
        fs::canonicalize(src).map_err(|e| EngineError::io(src, e))?
    } else {
        src.to_path_buf()
    };
    let mut b = tar::Builder::new(w);
    append_tree(&mut b, &p, name, keep_owner, false)?;
    b.finish()
        .map_err(|e| other(format!("writing the tar: {e}")))?;
    Ok(())
}

/// `top CONTAINER [ps options]`: run the host's `ps` (default `-ef`) and keep the lines of
/// the container's processes, as Docker does. Returns the titles and the rows (the last
/// column keeps its spaces). Errors: not running, `ps` failed or has no PID column.
pub fn top(c: &Container, ps_args: &[String]) -> Result<(Vec<String>, Vec<Vec<String>>)> {
    let host = Host::real();
    if c.state != State::Running {
        return Err(EngineError::NotRunning(c.name.clone()));
    }
    let pids = host.cgroups.pids(&c.cgroup_path());
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        ps_args.to_vec()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| other(format!("cannot run ps: {e}")))?;
    if !out.status.success() {
        return Err(EngineError::InvalidArgument(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let titles: Vec<String> = header.split_whitespace().map(str::to_string).collect();
    let pid_col = titles.iter().position(|t| t == "PID").ok_or_else(|| {
        EngineError::InvalidArgument(
            "ps output has no PID column; give ps options that show it".into(),
        )
    })?;
    let mut rows = Vec::new();
    for l in lines {
        let mut fields: Vec<String> = Vec::new();
        let mut rest = l.trim_start();
        while fields.len() + 1 < titles.len() {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            fields.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
        fields.push(rest.to_string());
        let pid: Option<i32> = fields.get(pid_col).and_then(|p| p.parse().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            rows.push(fields);
        }
    }
    Ok((titles, rows))
}

/// One sample of `docker stats` numbers for a container.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Cgroup counters (memory, CPU time, pids, block I/O).
    pub cgroup: CgroupStats,
    /// Bytes received and sent on the container's interfaces (its network namespace).
    pub net_rx: u64,
    /// See [`Stats::net_rx`].
    pub net_tx: u64,
}

/// CPU use in percent of one CPU over the container's life so far: its cgroup's CPU time in
/// `s` divided by the wall time since it started (`started_at`), as podman computes a first
/// sample. `stats --no-stream` takes this one sample instead of sleeping for a second one.
/// 0 when the container is not running or its start time is unknown.
pub fn lifetime_cpu_percent(c: &Container, s: &Stats) -> f64 {
    let Some(started) = c
        .started_at
        .as_deref()
        .filter(|_| c.state == State::Running)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
    else {
        return 0.0;
    };
    let wall = (chrono::Utc::now() - started.with_timezone(&chrono::Utc))
        .num_nanoseconds()
        .unwrap_or(0);
    if wall <= 0 {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)] // a ratio of nanosecond counts
    let pct = s.cgroup.cpu_usage_ns as f64 * 100.0 / wall as f64;
    pct
}

/// [`stats`] of every container in `cs`, in order. The cgroup and /proc reads (about ten
/// files per container) run on up to four threads, one share of the list each, so a listing
/// of many containers takes a fraction of the time of reading them one after the other.
pub fn stats_many(cs: &[&Container]) -> Vec<Stats> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(4);
    if threads < 2 || cs.len() < 8 {
        return cs.iter().map(|c| stats(c)).collect();
    }
    let share = cs.len().div_ceil(threads);
    std::thread::scope(|sc| {
        let parts: Vec<_> = cs
            .chunks(share)
            .map(|part| sc.spawn(move || part.iter().map(|c| stats(c)).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    })
}

/// Read the container's counters now (zeros for a container that is not running).
pub fn stats(c: &Container) -> Stats {
    let host = Host::real();
    if c.state != State::Running {
        return Stats::default();
    }
    let mut s = Stats {
        cgroup: host.cgroups.stats(&c.cgroup_path()),
        ..Default::default()
    };
    if let Some(pid) = c.pid {
        // /proc/PID/net/dev shows the interfaces of the process's network namespace.
        if let Ok(t) = crate::cgroups::read_small(format!("/proc/{pid}/net/dev")) {
            for l in t.lines().skip(2) {
                let Some((ifname, rest)) = l.split_once(':') else {
                    continue;
                };
                if ifname.trim() == "lo" {
                    continue;
                }
                let f: Vec<u64> = rest
                    .split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect();
                if f.len() >= 9 {
                    s.net_rx = s.net_rx.saturating_add(f[0]);
                    s.net_tx = s.net_tx.saturating_add(f[8]);
                }
            }
        }
    }
    s
}
