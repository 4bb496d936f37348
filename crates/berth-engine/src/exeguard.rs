//! Protection against CVE-2019-5736 for the builtin runtime.
//!
//! The builtin runtime creates containers by cloning the calling berth process, so until the
//! container's command is exec'd, a process inside the container has berth's own binary as its
//! `/proc/PID/exe`; an image can also make it exec that binary again (`#!/proc/self/exe`). A
//! container process could then reopen the binary for writing through the magic link and
//! replace berth on the host. berth therefore runs every process that becomes (or enters) a
//! container from a **read-only bind mount of its own directory** in the container's bundle
//! (`containers/<id>/exe/`): the kernel refuses writes through that mount with `EROFS`,
//! whatever the container does. The mount is made when the container starts (two mount
//! calls) and released with the container's other mounts ([`crate::rootfs::Bundle::unmount`]);
//! `berth-supervise`, which lives next to `berth`, is reached through it too.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, MountPropagationFlags};

/// Environment marker set when `berth exec` re-executed itself from the protected path.
const REEXEC_ENV: &str = "BERTH_PROTECTED_EXE";

/// The mount point of the read-only view in a container's bundle directory.
pub fn protected_dir(bundle_dir: &Path) -> PathBuf {
    bundle_dir.join("exe")
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

fn read_only(p: &Path) -> bool {
    rustix::fs::statvfs(p)
        .map(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
        .unwrap_or(false)
}

/// berth's binary as seen through the read-only bind mount of its directory in the bundle
/// `bundle_dir` (created when missing). Falls back to the binary's own path when the mount
/// cannot be made (then a warning is logged).
pub fn protected_exe(bundle_dir: &Path) -> PathBuf {
    let Ok(exe) = berth_exe::path() else {
        return PathBuf::from("/proc/self/exe");
    };
    match ensure(bundle_dir, &exe) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("cannot protect the berth binary with a read-only mount: {e}");
            exe
        }
    }
}

fn ensure(bundle_dir: &Path, exe: &Path) -> std::io::Result<PathBuf> {
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
        return Err(std::io::Error::other("berth's path has no directory"));
    };
    let pdir = protected_dir(bundle_dir);
    if dir == pdir {
        // Already running from it.
        return Ok(exe.to_path_buf());
    }
    if !(same_dir(&pdir, dir) && read_only(&pdir)) {
        std::fs::create_dir_all(&pdir)?;
        // A stale mount (berth moved or rebuilt in another directory) goes first.
        while crate::rootfs::is_mountpoint(&pdir) {
            rustix::mount::unmount(&pdir, rustix::mount::UnmountFlags::DETACH)?;
        }
        rustix::mount::mount_bind(dir, &pdir)?;
        // Private, so that the container mounts made later never propagate into it.
        let _ = rustix::mount::mount_change(&pdir, MountPropagationFlags::PRIVATE);
        rustix::mount::mount_remount(&pdir, MountFlags::BIND | MountFlags::RDONLY, "")?;
    }
    Ok(pdir.join(name))
}

/// For the builtin runtime's `exec` into the container with bundle `bundle_dir`: make sure
/// this process runs from the protected binary, re-executing itself (same arguments) through
/// it when it does not. Returns only when no re-exec is needed or possible.
pub fn reexec_protected(bundle_dir: &Path) {
    if std::env::var_os(REEXEC_ENV).is_some() {
        return;
    }
    let Ok(exe) = berth_exe::path() else {
        return;
    };
    let target = protected_exe(bundle_dir);
    if target == exe {
        return;
    }
    use std::os::unix::process::CommandExt;
    let mut args = std::env::args_os();
    let mut cmd = std::process::Command::new(&target);
    if let Some(a0) = args.next() {
        cmd.arg0(a0);
    }
    cmd.args(args).env(REEXEC_ENV, "1");
    let e = cmd.exec();
    tracing::warn!("cannot re-execute berth from {}: {e}", target.display());
}
