//! Copy-up: a new, empty volume mounted over a directory of the image gets a copy of that
//! directory's content (Docker's behaviour), keeping owners, modes and times.
//!
//! The image is untrusted input: the mount path is resolved with `openat2(RESOLVE_IN_ROOT)`
//! inside the container's root, and below it nothing is followed: every entry is opened
//! relative to its parent's descriptor with `O_NOFOLLOW`, symlinks are copied as symlinks.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{
    chownat, fchmod, fchown, futimens, mkdirat, mknodat, openat, openat2, readlinkat, statat,
    symlinkat, utimensat, AtFlags, Dir, FileType, Gid, Mode, OFlags, ResolveFlags, Stat, Timespec,
    Timestamps, Uid,
};

use crate::{Result, VolumeError};

/// Deepest directory nesting copied (deeper trees are refused, not truncated).
const MAX_DEPTH: usize = 256;

/// Copy the directory `path` (absolute inside the container) of the root filesystem at
/// `rootfs` into the empty directory `dest`, which also takes the source directory's owner and
/// mode. Returns false, copying nothing, when `path` does not exist or is not a directory.
///
/// Errors: I/O failures, or a tree deeper than 256 levels.
pub fn copy_up(rootfs: &Path, path: &str, dest: &Path) -> Result<bool> {
    let io = |p: &Path, e: rustix::io::Errno| VolumeError::io(p, e.into());
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(rootfs, e))?;
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let src = match openat2(
        &root,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => return Ok(false),
        Err(e) => return Err(io(&rootfs.join(rel), e)),
    };
    let dst = rustix::fs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(dest, e))?;
    copy_dir(&src, &dst, dest, 0)?;
    let st = rustix::fs::fstat(&src).map_err(|e| io(dest, e))?;
    set_meta_fd(&dst, &st).map_err(|e| io(dest, e))?;
    Ok(true)
}

fn copy_dir(src: &OwnedFd, dst: &OwnedFd, at: &Path, depth: usize) -> Result<()> {
    let io = |p: &Path, e: rustix::io::Errno| VolumeError::io(p, e.into());
    if depth > MAX_DEPTH {
        return Err(VolumeError::io(
            at,
            std::io::Error::other("directory tree too deep to copy into the volume"),
        ));
    }
    let mut dir = Dir::read_from(src).map_err(|e| io(at, e))?;
    while let Some(ent) = dir.read() {
        let ent = ent.map_err(|e| io(at, e))?;
        let name = ent.file_name().to_owned();
        let nb = name.to_bytes();
        if nb == b"." || nb == b".." {
            continue;
        }
        let here = at.join(String::from_utf8_lossy(nb).as_ref());
        let st = statat(src, &name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| io(&here, e))?;
        let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                mkdirat(dst, &name, Mode::from_bits_truncate(0o700)).map_err(|e| io(&here, e))?;
                let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
                let s = openat(src, &name, flags, Mode::empty()).map_err(|e| io(&here, e))?;
                let d = openat(dst, &name, flags, Mode::empty()).map_err(|e| io(&here, e))?;
                copy_dir(&s, &d, &here, depth + 1)?;
                set_meta_fd(&d, &st).map_err(|e| io(&here, e))?;
            }
            FileType::RegularFile => {
                let s = openat(
                    src,
                    &name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| io(&here, e))?;
                let d = openat(
                    dst,
                    &name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| io(&here, e))?;
                let mut sf = File::from(s);
                let mut df = File::from(d);
                std::io::copy(&mut sf, &mut df).map_err(|e| VolumeError::io(&here, e))?;
                set_meta_fd(&df, &st).map_err(|e| io(&here, e))?;
            }
            FileType::Symlink => {
                let target = readlinkat(src, &name, Vec::new()).map_err(|e| io(&here, e))?;
                symlinkat(&target, dst, &name).map_err(|e| io(&here, e))?;
                chownat(
                    dst,
                    &name,
                    Some(Uid::from_raw(st.st_uid)),
                    Some(Gid::from_raw(st.st_gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| io(&here, e))?;
                utimensat(dst, &name, &times(&st), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| io(&here, e))?;
            }
            ft @ (FileType::CharacterDevice
            | FileType::BlockDevice
            | FileType::Fifo
            | FileType::Socket) => {
                mknodat(dst, &name, ft, mode, st.st_rdev).map_err(|e| io(&here, e))?;
                chownat(
                    dst,
                    &name,
                    Some(Uid::from_raw(st.st_uid)),
                    Some(Gid::from_raw(st.st_gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| io(&here, e))?;
            }
            FileType::Unknown => {}
        }
    }
    Ok(())
}

fn times(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: Timespec {
            tv_sec: st.st_atime,
            tv_nsec: i64::try_from(st.st_atime_nsec).unwrap_or(0),
        },
        last_modification: Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: i64::try_from(st.st_mtime_nsec).unwrap_or(0),
        },
    }
}

/// Owner first (chown clears set-id bits), then mode, then times.
fn set_meta_fd(fd: impl AsFd, st: &Stat) -> rustix::io::Result<()> {
    fchown(
        &fd,
        Some(Uid::from_raw(st.st_uid)),
        Some(Gid::from_raw(st.st_gid)),
    )?;
    fchmod(&fd, Mode::from_bits_truncate(st.st_mode & 0o7777))?;
    futimens(&fd, &times(st))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn copies_tree_without_leaving_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("rootfs");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(root.join("data/sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), b"host").unwrap();
        std::fs::write(root.join("data/sub/f"), b"hello").unwrap();
        std::fs::set_permissions(
            root.join("data/sub/f"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        // A symlink pointing out of the root is copied as a link, never followed.
        std::os::unix::fs::symlink(&outside, root.join("data/escape")).unwrap();
        // The mount path itself resolves inside the root.
        std::os::unix::fs::symlink("/../../outside", root.join("link")).unwrap();
        let dest = d.path().join("vol");
        std::fs::create_dir_all(&dest).unwrap();
        assert!(copy_up(&root, "/data", &dest).unwrap());
        assert_eq!(std::fs::read(dest.join("sub/f")).unwrap(), b"hello");
        assert_eq!(
            std::fs::metadata(dest.join("sub/f")).unwrap().mode() & 0o7777,
            0o640
        );
        assert!(std::fs::symlink_metadata(dest.join("escape"))
            .unwrap()
            .file_type()
            .is_symlink());
        let dest2 = d.path().join("vol2");
        std::fs::create_dir_all(&dest2).unwrap();
        // "/link" resolves to "/outside" inside the root, which does not exist.
        assert!(!copy_up(&root, "/link", &dest2).unwrap());
        assert!(!copy_up(&root, "/missing", &dest2).unwrap());
    }
}
