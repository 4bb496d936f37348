//! Owners, modes, extended attributes and times of unpacked entries.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::PathBuf;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;

use super::extract::{entry_err, Unpacker};
use crate::Result;

impl Unpacker {
    pub(super) fn chown_at(
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

    pub(super) fn set_meta_fd(
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

    /// Apply a hardlink entry's metadata to the inode it names (`dir`/`name`, of type
    /// `kind`): a regular file through a descriptor, a device or FIFO by name (never opened),
    /// a symlink's owner only.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn link_meta(
        &self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        kind: FileType,
        owner: (u32, u32),
        mode: u32,
        xattrs: &[(String, Vec<u8>)],
        mtime: u64,
        shown: &str,
    ) -> Result<()> {
        if kind == FileType::Symlink {
            return self.chown_at(dir, name, owner, shown);
        }
        if kind == FileType::RegularFile {
            let opened = rfs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            );
            if let Ok(fd) = opened {
                return self.set_meta_fd(&fd, owner, mode, xattrs, Some(mtime), shown);
            }
        }
        self.chown_at(dir, name, owner, shown)?;
        rfs::chmodat(dir, name, Mode::from_raw_mode(mode), AtFlags::empty())
            .map_err(|err| entry_err(shown, format!("cannot set mode {mode:o}: {err}")))?;
        self.xattrs_at(dir, name, xattrs, shown)?;
        let _ = rfs::utimensat(dir, name, &times(mtime), AtFlags::SYMLINK_NOFOLLOW);
        Ok(())
    }

    pub(super) fn xattrs_at(
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
    /// from a lower layer (layers only; a copied tree's destination is left alone).
    pub(super) fn finish(&mut self) -> Result<()> {
        self.cache = None;
        if !self.saw_root && self.whiteouts {
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
pub(super) fn xattr_allowed(k: &str) -> bool {
    !(k.starts_with("trusted.overlay.") || k.starts_with("user.overlay."))
}

pub(super) fn times(secs: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: i64::try_from(secs).unwrap_or(i64::MAX),
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}
