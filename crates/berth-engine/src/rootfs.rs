//! The container root filesystem: an overlay of the image layers plus a private upper dir,
//! and path lookups that never leave it.

use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use berth_store::inroot;
use rustix::fs::OFlags;

use crate::{EngineError, Result};

/// Open `path` (absolute inside the container) with every component resolved inside `root`.
///
/// Errors: the I/O error when `root` cannot be opened or `path` does not resolve inside it to
/// something that can be opened with `flags`.
pub fn open_in_root(root: &Path, path: &str, flags: OFlags) -> std::io::Result<OwnedFd> {
    let dir = inroot::open_root(root)?;
    inroot::open_in(dir.as_fd(), Path::new(path), flags)
}

/// Read a file of the container (at most 16 MiB), resolved inside `root`.
///
/// Errors: as [`open_in_root`], or the read fails.
pub fn read_file_in_root(root: &Path, path: &str) -> std::io::Result<Vec<u8>> {
    let fd = open_in_root(root, path, OFlags::RDONLY)?;
    let f = fs::File::from(fd);
    let mut buf = Vec::new();
    f.take(16 << 20).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Create the working directory inside the root if it is missing (as Docker does), resolving
/// it inside the root: a WORKDIR or `-w` with `..` or symlinks never creates anything on the
/// host.
///
/// Errors: a component exists and is not a directory, or the filesystem refuses.
pub fn create_workdir(root: &Path, dir: &str) -> Result<()> {
    if dir.is_empty() || dir == "/" {
        return Ok(());
    }
    inroot::create(root, Path::new(dir), inroot::Kind::Dir)
        .map(|_| ())
        .map_err(|e| {
            EngineError::InvalidArgument(format!(
                "cannot create the working directory {dir:?} in the container: {e}"
            ))
        })
}

/// Make every mount destination of `spec` safe before a runtime sees it: resolve it inside
/// the root (symlinks, also dangling ones, and `..` followed as a chroot would, never leaving
/// the root), create the missing mount point there (a file for a bound file, else a
/// directory) and put the resolved, symlink-free path into the spec. Destinations below the
/// kernel filesystems and earlier mounts are left to the runtime (they do not live in the
/// image).
///
/// Errors: a destination that cannot be created (a file in the way, read-only root).
pub fn secure_mounts(root: &Path, spec: &mut oci_spec::runtime::Spec) -> Result<()> {
    let Some(mounts) = spec.mounts().clone() else {
        return Ok(());
    };
    let mut earlier: Vec<PathBuf> = Vec::new();
    let mut out = Vec::with_capacity(mounts.len());
    for mut m in mounts {
        let dest = m.destination().clone();
        let under_earlier = earlier.iter().any(|e| dest != *e && dest.starts_with(e));
        // proc and sysfs must land on a real directory: the runtimes check that themselves.
        let kernel_fs = matches!(m.typ().as_deref(), Some("proc" | "sysfs" | "cgroup"));
        if !under_earlier && !kernel_fs && dest != Path::new("/") {
            let is_bind = m.typ().as_deref() == Some("bind")
                || m.options()
                    .as_ref()
                    .is_some_and(|o| o.iter().any(|o| o == "bind" || o == "rbind"));
            let kind = match (is_bind, m.source()) {
                (true, Some(src)) if !src.is_dir() => inroot::Kind::File,
                _ => inroot::Kind::Dir,
            };
            let resolved = inroot::create(root, &dest, kind).map_err(|e| {
                EngineError::InvalidArgument(format!(
                    "cannot create the mount point {} in the container: {e}",
                    dest.display()
                ))
            })?;
            m.set_destination(resolved);
        }
        earlier.push(dest);
        earlier.push(m.destination().clone());
        out.push(m);
    }
    spec.set_mounts(Some(out));
    Ok(())
}

/// Why a command cannot be started.
#[derive(Debug, PartialEq, Eq)]
pub enum ExecCheck {
    /// A regular file with an execute bit was found: the command can start.
    Ok,
    /// No candidate exists (Docker's "executable file not found in $PATH", exit status 127).
    NotFound,
    /// A candidate exists but is not an executable regular file (exit status 126).
    NotExecutable,
}

/// Look up `cmd` as the runtime would (PATH search inside the rootfs when it has no '/').
pub fn check_executable(root: &Path, cmd: &str, env: &[String], cwd: &str) -> ExecCheck {
    let candidates: Vec<String> = if cmd.contains('/') {
        if cmd.starts_with('/') {
            vec![cmd.to_string()]
        } else {
            vec![format!("{}/{}", cwd.trim_end_matches('/'), cmd)]
        }
    } else {
        let path = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| format!("{}/{}", d.trim_end_matches('/'), cmd))
            .collect()
    };
    let mut saw_non_exec = false;
    for c in candidates {
        let Ok(fd) = open_in_root(root, &c, OFlags::PATH) else {
            continue;
        };
        let Ok(st) = rustix::fs::fstat(&fd) else {
            continue;
        };
        let is_file = (st.st_mode & libc::S_IFMT) == libc::S_IFREG;
        if is_file && st.st_mode & 0o111 != 0 {
            return ExecCheck::Ok;
        }
        saw_non_exec = true;
    }
    if saw_non_exec {
        ExecCheck::NotExecutable
    } else {
        ExecCheck::NotFound
    }
}

/// Paths of a container's directory (its OCI bundle: `config.json` beside `rootfs`, plus
/// the overlay's upper and work directories and the json-file log).
#[derive(Debug, Clone)]
pub struct Bundle {
    /// `STORE/containers/ID`, mode 0700.
    pub dir: PathBuf,
}

impl Bundle {
    /// The bundle of container `id` (64 hex digits) in the store rooted at `root`; nothing
    /// is created.
    pub fn new(root: &Path, id: &str) -> Bundle {
        Bundle {
            dir: root.join("containers").join(id),
        }
    }
    /// `rootfs/`: the overlay mount point, the OCI spec's `root.path`.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    /// `upper/`: the overlay's writable layer (the container's changes).
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    /// `work/`: overlayfs's work directory (same file system as `upper`).
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    /// `config.json`: the OCI runtime spec the runtime reads.
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    /// `ctr.log`: the container's json-file log (see [`crate::logs`]).
    pub fn log(&self) -> PathBuf {
        self.dir.join("ctr.log")
    }

    /// Create the directory skeleton.
    ///
    /// Errors: [`EngineError::Io`] when a directory cannot be created or given mode 0700.
    pub fn create(&self) -> Result<()> {
        for d in [self.dir.clone(), self.rootfs(), self.upper(), self.work()] {
            fs::create_dir_all(&d).map_err(|e| EngineError::io(&d, e))?;
        }
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| EngineError::io(&self.dir, e))?;
        Ok(())
    }

    /// Whether the root file system (overlay) is mounted on [`Bundle::rootfs`].
    pub fn is_mounted(&self) -> bool {
        is_mountpoint(&self.rootfs())
    }

    /// Mount the overlay (idempotent). `lowers` bottom layer first.
    ///
    /// Errors: [`EngineError::Io`] when the mount point cannot be created;
    /// [`EngineError::Other`] when the kernel refuses the overlay mount (the message gives the
    /// kernel's reason).
    pub fn mount(&self, lowers: &[PathBuf]) -> Result<()> {
        if self.is_mounted() {
            return Ok(());
        }
        let rootfs = self.rootfs();
        fs::create_dir_all(&rootfs).map_err(|e| EngineError::io(&rootfs, e))?;
        let distinct = crate::overlay::distinct_lowers(lowers);
        let lowers = distinct.as_slice();
        let lower: Vec<String> = lowers
            .iter()
            .rev()
            .map(|p| p.to_string_lossy().replace(':', "\\:"))
            .collect();
        if lower.is_empty() {
            // An image without layers: bind an empty dir as the only lower.
            let empty = self.dir.join("empty");
            fs::create_dir_all(&empty).map_err(|e| EngineError::io(&empty, e))?;
            return self.mount(&[empty]);
        }
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            self.upper().display(),
            self.work().display()
        );
        if data.len() > crate::overlay::MAX_OPTIONS_LEN {
            // Too many layers for one option string: pass them one by one.
            self.apply_root_attributes(lowers);
            let top_first: Vec<PathBuf> = lowers.iter().rev().cloned().collect();
            return crate::overlay::mount_each_layer(
                &rootfs,
                &top_first,
                Some((&self.upper(), &self.work())),
                false,
            )
            .map_err(|e| {
                EngineError::Other(format!(
                    "mounting the container root filesystem: {}",
                    crate::overlay::too_deep_message(lowers.len(), &e)
                ))
            });
        }
        let data_c = std::ffi::CString::new(data.clone())
            .map_err(|_| EngineError::Other("layer path contains a NUL byte".into()))?;
        self.apply_root_attributes(lowers);
        let err = match rustix::mount::mount(
            "overlay",
            &rootfs,
            "overlay",
            rustix::mount::MountFlags::empty(),
            Some(data_c.as_c_str()),
        ) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        // The kernel refuses upper directories on some filesystems (overlayfs itself, when
        // berth runs inside a container; network filesystems). fuse-overlayfs can still do it
        // (Podman's fallback); otherwise say what to do.
        let fs = upper_fs_name(&self.upper());
        if let Some(fs) = fs {
            if let Some(fuse) = fuse_overlayfs() {
                return mount_fuse_overlayfs(&fuse, &data, &rootfs, fs, &self.dir);
            }
            return Err(EngineError::Other(format!(
                "mounting the container root filesystem: the store ({}) is on {fs}, which cannot hold overlay upper directories; put the store on another filesystem with --root (or BERTH_ROOT), e.g. a volume or a tmpfs, or install fuse-overlayfs",
                self.dir.parent().and_then(Path::parent).unwrap_or(&self.dir).display()
            )));
        }
        Err(EngineError::Other(format!(
            "mounting the container root filesystem: {err}"
        )))
    }

    /// Give a fresh upper directory (never mounted: empty work dir) the attributes of the
    /// image's root directory, as Docker's snapshotters do: the root of the merged view takes
    /// the upper directory's mode, owner, times and xattrs, so without this every container's
    /// `/` would be 0755 root whatever the image says. The image's root is the root of the
    /// topmost layer whose tar set `./` (unpack marks the others, see
    /// [`berth_image::IMPLICIT_ROOT_XATTR`]).
    fn apply_root_attributes(&self, lowers: &[PathBuf]) {
        let fresh = fs::read_dir(self.work())
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !fresh {
            return;
        }
        let Some(src) = lowers.iter().rev().find(|l| {
            rustix::fs::getxattr(
                l.as_path(),
                berth_image::IMPLICIT_ROOT_XATTR,
                &mut [0u8; 8][..],
            )
            .is_err()
        }) else {
            return;
        };
        if let Err(e) = copy_dir_attributes(src, &self.upper()) {
            tracing::warn!(
                "cannot give the container's root directory the image's attributes: {e}"
            );
        }
    }

    /// Unmount the overlay and the read-only view of berth's binary (idempotent).
    ///
    /// Errors: [`EngineError::Other`] when the root filesystem cannot be unmounted (the other
    /// mounts are best effort, logged).
    pub fn unmount(&self) -> Result<()> {
        let shm = self.shm();
        while is_mountpoint(&shm) {
            if let Err(e) = rustix::mount::unmount(&shm, rustix::mount::UnmountFlags::DETACH) {
                tracing::warn!("unmounting {}: {e}", shm.display());
                break;
            }
        }
        let exe = crate::exeguard::protected_dir(&self.dir);
        while is_mountpoint(&exe) {
            if let Err(e) = rustix::mount::unmount(&exe, rustix::mount::UnmountFlags::DETACH) {
                tracing::warn!("unmounting {}: {e}", exe.display());
                break;
            }
        }
        let rootfs = self.rootfs();
        while is_mountpoint(&rootfs) {
            if let Err(e) = rustix::mount::unmount(&rootfs, rustix::mount::UnmountFlags::DETACH) {
                // The monitor may unmount it between our look and our unmount (`rm -f` of a
                // paused container): EINVAL then only means it is gone.
                if e == rustix::io::Errno::INVAL && !is_mountpoint(&rootfs) {
                    break;
                }
                return Err(EngineError::Other(format!(
                    "unmounting {}: {e}",
                    rootfs.display()
                )));
            }
        }
        Ok(())
    }

    /// The host directory of a `--ipc shareable` container's /dev/shm tmpfs.
    pub fn shm(&self) -> PathBuf {
        self.dir.join("shm")
    }

    /// Mount the /dev/shm tmpfs of a `--ipc shareable` container at [`Bundle::shm`]
    /// (`size` bytes, mode 1777, nosuid/nodev/noexec), unless it is mounted already.
    ///
    /// Errors: [`EngineError::Io`] when the directory or the mount cannot be made.
    pub fn mount_shm(&self, size: i64) -> Result<()> {
        let shm = self.shm();
        if is_mountpoint(&shm) {
            return Ok(());
        }
        fs::create_dir_all(&shm).map_err(|e| EngineError::io(&shm, e))?;
        let opts = std::ffi::CString::new(format!("mode=1777,size={size}"))
            .map_err(|e| EngineError::Other(e.to_string()))?;
        rustix::mount::mount(
            "shm",
            &shm,
            "tmpfs",
            rustix::mount::MountFlags::NOSUID
                | rustix::mount::MountFlags::NODEV
                | rustix::mount::MountFlags::NOEXEC,
            opts.as_c_str(),
        )
        .map_err(|e| EngineError::io(&shm, e.into()))
    }

    /// Unmount and delete everything of this container.
    ///
    /// Errors: as [`Bundle::unmount`]; [`EngineError::Io`] when the directory cannot be deleted (a
    /// missing one is fine).
    pub fn remove(&self) -> Result<()> {
        self.unmount()?;
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(EngineError::io(&self.dir, e)),
        }
    }
}

/// Mode, owner, xattrs (not overlay's or berth's own) and times of directory `src` onto `dst`.
fn copy_dir_attributes(src: &Path, dst: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let md = fs::symlink_metadata(src)?;
    std::os::unix::fs::chown(dst, Some(md.uid()), Some(md.gid()))?;
    fs::set_permissions(dst, fs::Permissions::from_mode(md.mode() & 0o7777))?;
    let mut names = vec![0u8; 4096];
    if let Ok(n) = rustix::fs::listxattr(src, &mut names[..]) {
        for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
            let name = String::from_utf8_lossy(name).into_owned();
            if name.starts_with("trusted.overlay.")
                || name.starts_with("user.overlay.")
                || name.starts_with("trusted.berth.")
            {
                continue;
            }
            let mut value = vec![0u8; 65536];
            if let Ok(len) = rustix::fs::getxattr(src, name.as_str(), &mut value[..]) {
                let _ = rustix::fs::setxattr(
                    dst,
                    name.as_str(),
                    &value[..len],
                    rustix::fs::XattrFlags::empty(),
                );
            }
        }
    }
    let times = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: md.atime(),
            tv_nsec: md.atime_nsec(),
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: md.mtime(),
            tv_nsec: md.mtime_nsec(),
        },
    };
    rustix::fs::utimensat(rustix::fs::CWD, dst, &times, rustix::fs::AtFlags::empty())?;
    Ok(())
}

/// Linux `statfs` magic numbers of filesystems the kernel's overlayfs refuses as upper layer.
const NO_UPPER_FS: &[(i64, &str)] = &[
    (0x794c_7630, "overlayfs"),
    (0x6969, "NFS"),
    (0xff53_4d42, "CIFS"),
    (0xfe53_4d42, "SMB2"),
    (0x0102_1997, "9p"),
    (0x6573_5546, "a FUSE filesystem"),
];

/// The name of the filesystem holding `upper` when overlayfs cannot use it as upper layer.
pub fn upper_fs_name(upper: &Path) -> Option<&'static str> {
    let st = rustix::fs::statfs(upper).ok()?;
    #[allow(clippy::unnecessary_cast)] // f_type's type differs between targets
    let magic = st.f_type as i64;
    NO_UPPER_FS
        .iter()
        .find(|(m, _)| *m == magic)
        .map(|(_, name)| *name)
}

/// The fuse-overlayfs binary: `BERTH_FUSE_OVERLAYFS` (a path; empty disables it), else the
/// first `fuse-overlayfs` on PATH.
fn fuse_overlayfs() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BERTH_FUSE_OVERLAYFS") {
        let p = PathBuf::from(p);
        return (!p.as_os_str().is_empty() && p.is_file()).then_some(p);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("fuse-overlayfs"))
            .find(|p| p.is_file())
    })
}

/// Mount the overlay with fuse-overlayfs (same `lowerdir=…,upperdir=…,workdir=…` options).
/// It daemonizes: its error output goes to a file in the bundle, not to a pipe it would hold.
fn mount_fuse_overlayfs(bin: &Path, data: &str, rootfs: &Path, fs: &str, dir: &Path) -> Result<()> {
    tracing::info!("the store is on {fs}: mounting the root filesystem with fuse-overlayfs");
    let errpath = dir.join("fuse-overlayfs.err");
    let errfile = fs::File::create(&errpath).map_err(|e| EngineError::io(&errpath, e))?;
    let status = std::process::Command::new(bin)
        .arg("-o")
        .arg(data)
        .arg(rootfs)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(errfile)
        .status()
        .map_err(|e| EngineError::Other(format!("running {}: {e}", bin.display())))?;
    let err = fs::read_to_string(&errpath).unwrap_or_default();
    let _ = fs::remove_file(&errpath);
    if !status.success() || !is_mountpoint(rootfs) {
        return Err(EngineError::Other(format!(
            "mounting the container root filesystem with fuse-overlayfs (the store is on {fs}): {}; put the store on another filesystem with --root",
            err.trim()
        )));
    }
    Ok(())
}

/// Whether `p` is a mount point (its own entry in /proc/self/mountinfo).
pub fn is_mountpoint(p: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = p.to_string_lossy();
    info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .map(|m| unescape_mount(m) == want)
            .unwrap_or(false)
    })
}

fn unescape_mount(s: &str) -> String {
    let mut out = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v as char);
                i += 4;
                continue;
            }
        }
        out.push(b[i] as char);
        i += 1;
    }
    out
}

/// Bytes of regular files (and symlink targets' lengths) in a container's writable layer
/// (its overlay upper directory), as `ps -s` and `system df` count them; 0 when it cannot be
/// read. Symlinks are not followed.
pub fn upper_size(store: &berth_store::Store, id: &str) -> u64 {
    dir_size(&Bundle::new(store.root(), id).upper())
}

/// Bytes under `dir` (regular files and symlinks, not following them; hard links counted
/// once per name).
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                stack.push(e.path());
            } else {
                total = total.saturating_add(md.len());
            }
        }
    }
    total
}
