//! Mounts of a build (bind, overlay) in the builder's private mount namespace, and publishing
//! results by rename.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};

use crate::{Result, SifError};

/// Rename `tmp` to `dest`; if another build published `dest` first, keep theirs.
pub(super) fn publish(tmp: &Path, dest: &Path) -> Result<()> {
    if let Err(e) = std::fs::rename(tmp, dest) {
        if dest.is_dir() {
            let _ = std::fs::remove_dir_all(tmp);
            return Ok(());
        }
        return Err(SifError::io(dest, e));
    }
    if let Some(p) = dest.parent() {
        let _ = berth_store::fsync_dir(p);
    }
    Ok(())
}

pub(super) fn open_dir(p: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        p,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SifError::io(p, e.into()))
}

pub(crate) fn sys_mount(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<()> {
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes()).map_err(|_| SifError::Build("path with NUL".into()))
    };
    let src_c = src.map(c).transpose()?;
    let target_c = c(target)?;
    let fs_c = fstype.map(|f| CString::new(f).expect("static"));
    let data_c = data
        .map(|d| CString::new(d).map_err(|_| SifError::Build("mount data with NUL".into())))
        .transpose()?;
    // SAFETY: all pointers are null or NUL-terminated strings alive for the call.
    let r = unsafe {
        libc::mount(
            src_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            target_c.as_ptr(),
            fs_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            flags,
            data_c
                .as_ref()
                .map_or(std::ptr::null(), |c| c.as_ptr().cast()),
        )
    };
    if r != 0 {
        return Err(SifError::sys(
            format!("mounting {}", target.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Mount an overlay of `lowers` (bottom first) at `target`, writable when `upper` is given.
pub(super) fn mount_overlay(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
    empty: &Path,
) -> Result<()> {
    let mut l: Vec<String> = lowers
        .iter()
        .rev()
        .map(|p| p.to_string_lossy().replace(':', "\\:").replace(',', "\\,"))
        .collect();
    // A read-only overlay wants two lowers; an empty one is harmless.
    while l.len() < 2 {
        l.push(empty.to_string_lossy().into_owned());
    }
    let mut data = format!("lowerdir={}", l.join(":"));
    if let Some((u, w)) = upper {
        data.push_str(&format!(
            ",upperdir={},workdir={}",
            u.display(),
            w.display()
        ));
    }
    if data.len() > 4000 {
        return Err(SifError::Build(format!(
            "too many layers for one overlay mount ({})",
            lowers.len()
        )));
    }
    sys_mount(
        Some(Path::new("overlay")),
        target,
        Some("overlay"),
        0,
        Some(&data),
    )
}
