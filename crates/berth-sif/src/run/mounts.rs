//! Mounts inside the new root: every mount point resolved with `openat2(RESOLVE_IN_ROOT)`, bind
//! mounts, and loop devices for the squashfs partition.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};

use crate::{Result, SifError};

pub(super) fn cstr(p: &OsStr) -> Result<CString> {
    CString::new(p.as_bytes()).map_err(|_| SifError::Run(format!("{p:?} contains a NUL byte")))
}

/// mount(2) with optional source, type and data.
pub(super) fn mount(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<()> {
    let src_c = src.map(|s| cstr(s.as_os_str())).transpose()?;
    let target_c = cstr(target.as_os_str())?;
    let fs_c = fstype.map(|f| CString::new(f).expect("static"));
    let data_c = data.map(|d| cstr(OsStr::new(d))).transpose()?;
    // SAFETY: every pointer is either null or a NUL-terminated string that outlives the call.
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
        let e = std::io::Error::last_os_error();
        return Err(SifError::sys(
            format!(
                "mounting {} on {}",
                src.map_or_else(
                    || fstype.unwrap_or("-").to_string(),
                    |s| s.display().to_string()
                ),
                target.display()
            ),
            e,
        ));
    }
    Ok(())
}

/// `/proc/self/fd/N` for an fd (a path that mount(2) resolves to the open file).
pub(super) fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

pub(super) fn open_path(p: &Path) -> Result<OwnedFd> {
    rustix::fs::open(p, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| SifError::io(p, e.into()))
}

/// Open (creating if missing) the mount point `path` inside `root`: a directory, or an empty
/// file when `file`. Every component is resolved inside `root`.
pub(crate) fn mountpoint_in_root(root: &OwnedFd, path: &str, file: bool) -> Result<OwnedFd> {
    let rel = path.trim_start_matches('/');
    let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    if rel.is_empty() {
        return openat2(
            root,
            ".",
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            how,
        )
        .map_err(|e| SifError::sys("opening / in the container", e));
    }
    if let Ok(fd) = openat2(
        root,
        rel,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        how,
    ) {
        return Ok(fd);
    }
    // Create the parents, then the leaf.
    let mut dir = openat2(
        root,
        ".",
        OFlags::PATH | OFlags::CLOEXEC | OFlags::DIRECTORY,
        Mode::empty(),
        how,
    )
    .map_err(|e| SifError::sys("opening the container root", e))?;
    let comps: Vec<&str> = rel
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    for (i, c) in comps.iter().enumerate() {
        let last = i + 1 == comps.len();
        let sofar = comps[..=i].join("/");
        match openat2(
            root,
            sofar.as_str(),
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            how,
        ) {
            Ok(fd) => dir = fd,
            Err(_) => {
                // `dir` is an O_PATH fd of the resolved parent: reopen it for *at calls.
                let parent = openat2(
                    root,
                    if i == 0 {
                        "."
                    } else {
                        &sofar[..sofar.len() - c.len() - 1]
                    },
                    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                    how,
                )
                .map_err(|e| {
                    SifError::sys(format!("opening the parent of {path} in the container"), e)
                })?;
                if last && file {
                    let f = rustix::fs::openat(
                        &parent,
                        *c,
                        OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                        Mode::from_raw_mode(0o644),
                    )
                    .map_err(|e| {
                        SifError::sys(format!("creating mount point {path} in the container"), e)
                    })?;
                    drop(f);
                } else {
                    match rustix::fs::mkdirat(&parent, *c, Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                        Err(e) => {
                            return Err(SifError::sys(
                                format!("creating mount point {path} in the container"),
                                e,
                            ))
                        }
                    }
                }
                dir = openat2(
                    root,
                    sofar.as_str(),
                    OFlags::PATH | OFlags::CLOEXEC,
                    Mode::empty(),
                    how,
                )
                .map_err(|e| SifError::sys(format!("mount point {path} in the container"), e))?;
            }
        }
    }
    Ok(dir)
}

/// Bind `src` (an open fd) onto `dst` (inside `root`), recursively; read-only when `ro`.
pub(super) fn bind_into(
    root: &OwnedFd,
    src: &OwnedFd,
    dst: &str,
    is_dir: bool,
    ro: bool,
) -> Result<()> {
    let target = mountpoint_in_root(root, dst, !is_dir)?;
    let tp = fd_path(&target);
    mount(
        Some(&fd_path(src)),
        &tp,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .map_err(|e| SifError::Run(format!("binding {dst} into the container: {e}")))?;
    if ro {
        // The new mount now sits on top of the path: reopen it to remount that one.
        let top = mountpoint_in_root(root, dst, !is_dir)?;
        mount(
            None,
            &fd_path(&top),
            None,
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | libc::MS_REC,
            None,
        )?;
    }
    Ok(())
}

// Mirrors of the kernel's `struct loop_info64` and `struct loop_config` (linux/loop.h); the
// fields are read by the kernel, not by Rust.
#[repr(C)]
#[allow(dead_code)]
pub(super) struct LoopInfo64 {
    pub(super) lo_device: u64,
    pub(super) lo_inode: u64,
    pub(super) lo_rdevice: u64,
    pub(super) lo_offset: u64,
    pub(super) lo_sizelimit: u64,
    pub(super) lo_number: u32,
    pub(super) lo_encrypt_type: u32,
    pub(super) lo_encrypt_key_size: u32,
    pub(super) lo_flags: u32,
    pub(super) lo_file_name: [u8; 64],
    pub(super) lo_crypt_name: [u8; 64],
    pub(super) lo_encrypt_key: [u8; 32],
    pub(super) lo_init: [u64; 2],
}

#[repr(C)]
#[allow(dead_code)]
pub(super) struct LoopConfig {
    pub(super) fd: u32,
    pub(super) block_size: u32,
    pub(super) info: LoopInfo64,
    pub(super) reserved: [u64; 8],
}

pub(super) const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
pub(super) const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
pub(super) const LO_FLAGS_READ_ONLY: u32 = 1;
pub(super) const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// Attach `file[offset..offset+size]` to a free loop device (read-only, autoclear). Returns the
/// open loop device (keep it open until it is mounted).
pub(super) fn attach_loop(
    backing: &std::fs::File,
    offset: u64,
    size: u64,
) -> Result<(PathBuf, std::fs::File)> {
    let ctl = std::fs::File::open("/dev/loop-control")
        .map_err(|e| SifError::io("/dev/loop-control", e))?;
    for _ in 0..32 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if n < 0 {
            return Err(SifError::sys(
                "finding a free loop device",
                std::io::Error::last_os_error(),
            ));
        }
        let dev = PathBuf::from(format!("/dev/loop{n}"));
        let lo = match std::fs::OpenOptions::new().read(true).open(&dev) {
            Ok(f) => f,
            Err(e) => return Err(SifError::io(&dev, e)),
        };
        let cfg = LoopConfig {
            fd: u32::try_from(backing.as_raw_fd()).expect("fds are positive"),
            block_size: 0,
            info: LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: offset,
                lo_sizelimit: size,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
                lo_file_name: [0; 64],
                lo_crypt_name: [0; 64],
                lo_encrypt_key: [0; 32],
                lo_init: [0; 2],
            },
            reserved: [0; 8],
        };
        // SAFETY: LOOP_CONFIGURE reads a `struct loop_config`, which LoopConfig mirrors
        // (repr(C)); the pointer is valid for the call.
        let r = unsafe { libc::ioctl(lo.as_raw_fd(), LOOP_CONFIGURE, &cfg as *const LoopConfig) };
        if r == 0 {
            return Ok((dev, lo));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EBUSY) {
            return Err(SifError::sys(format!("configuring {}", dev.display()), e));
        }
        // Taken by someone else in the meantime: try the next free one.
    }
    Err(SifError::Run(
        "no free loop device after 32 attempts".into(),
    ))
}
