//! Running a SIF image (or a sandbox directory) as Apptainer does by default.
//!
//! The calling process becomes the container: no daemon, no monitor, and the exit status is the
//! runscript's own.
//!
//! 1. Root: a new mount namespace; the squashfs partition is mounted read-only through a loop
//!    device (`LOOP_CONFIGURE` with the partition's offset, autoclear). Other users: a new user
//!    namespace mapping only their own uid/gid, plus a mount namespace; the squashfs (which the
//!    kernel does not mount in user namespaces) is extracted once with `unsquashfs` into
//!    `$XDG_CACHE_HOME/berth/sif/<key>` (key: the image's UUID, partition size and the file's
//!    identity) and reused by later runs.
//! 2. A session tmpfs (mounted over /tmp in the private namespace; every bind source was opened
//!    before, so nothing on the host is hidden from the container) holds an overlay: the image is
//!    the lower layer, the tmpfs the upper one, so mount points for `$HOME`, the cwd and binds can
//!    be created even where the image lacks them. The overlay is remounted read-only unless
//!    `--writable-tmpfs`.
//! 3. Host `/proc`, `/sys`, `/dev`, `/tmp`, `/var/tmp`, `$HOME`, the cwd, `/etc/hosts`,
//!    `/etc/localtime`, `/etc/resolv.conf` are bound in (`--contain`: private /tmp, /var/tmp and
//!    an empty home; `--containall` also a clean environment), plus `--bind` entries; `/etc/passwd`
//!    and `/etc/group` get the calling user's entry. Every mount point is resolved inside the new
//!    root (`openat2` `RESOLVE_IN_ROOT`), so an image's symlinks never redirect a mount to the host.
//! 4. `chroot`, `chdir`, then `/bin/sh` sources `/.singularity.d/env/*.sh` (where `%environment`
//!    lives), applies `--env`/`APPTAINERENV_*`, and execs the runscript, the command, a shell or
//!    the test script.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};

use crate::format::Sif;
use crate::{squash, Result, SifError};

/// What to execute in the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `/.singularity.d/runscript` with the arguments.
    Run,
    /// The arguments as a command.
    Exec,
    /// An interactive shell.
    Shell,
    /// `/.singularity.d/test`.
    Test,
    /// `/.singularity.d/startscript` (instances).
    Start,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Run => "run",
            Action::Exec => "exec",
            Action::Shell => "shell",
            Action::Test => "test",
            Action::Start => "start",
        }
    }
}

/// A `--bind SRC[:DST[:ro|rw]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Host path.
    pub src: PathBuf,
    /// Path in the container.
    pub dst: String,
    /// Read-only.
    pub ro: bool,
}

impl Bind {
    /// Parse `SRC[:DST[:ro|rw]]`; several may be given comma separated.
    ///
    /// Errors: [`SifError::Run`] naming the malformed entry.
    pub fn parse_list(s: &str) -> Result<Vec<Bind>> {
        let mut out = Vec::new();
        for item in s.split(',').filter(|x| !x.is_empty()) {
            let parts: Vec<&str> = item.split(':').collect();
            let (src, dst, opt) = match parts.as_slice() {
                [s] => (*s, *s, None),
                [s, d] => (*s, *d, None),
                [s, d, o] => (*s, *d, Some(*o)),
                _ => {
                    return Err(SifError::Run(format!(
                        "--bind {item:?}: expected SRC[:DST[:ro|rw]]"
                    )))
                }
            };
            let ro = match opt {
                None | Some("rw") => false,
                Some("ro") => true,
                Some(o) => {
                    return Err(SifError::Run(format!(
                        "--bind {item:?}: unknown option {o:?} (ro or rw)"
                    )))
                }
            };
            if !dst.starts_with('/') {
                return Err(SifError::Run(format!(
                    "--bind {item:?}: the destination must be an absolute path"
                )));
            }
            out.push(Bind {
                src: PathBuf::from(src),
                dst: dst.to_string(),
                ro,
            });
        }
        Ok(out)
    }
}

/// Options of [`exec_container`] (Apptainer's flags).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// What to execute.
    pub action: Action,
    /// Arguments (for [`Action::Exec`], the command first).
    pub args: Vec<OsString>,
    /// `--bind` entries.
    pub binds: Vec<Bind>,
    /// `--contain`: private /tmp, /var/tmp and an empty home; the cwd is not bound.
    pub contain: bool,
    /// `--containall`: `--contain` plus `--cleanenv` (and no cwd).
    pub containall: bool,
    /// `--cleanenv`: do not pass the host environment.
    pub cleanenv: bool,
    /// `--writable-tmpfs`: the root is writable, changes vanish at exit.
    pub writable_tmpfs: bool,
    /// `--pwd DIR`: working directory in the container.
    pub pwd: Option<String>,
    /// `--env K=V`: set after `%environment`.
    pub env: Vec<(String, String)>,
    /// `--nv`: NVIDIA GPU pass-through (refused: berth does not pass GPU libraries).
    pub nv: bool,
    /// Where unprivileged runs extract squashfs partitions (default
    /// `$XDG_CACHE_HOME/berth/sif` or `~/.cache/berth/sif`).
    pub cache_dir: Option<PathBuf>,
}

impl RunOptions {
    /// Options for an action with defaults otherwise.
    pub fn new(action: Action, args: Vec<OsString>) -> RunOptions {
        RunOptions {
            action,
            args,
            binds: Vec::new(),
            contain: false,
            containall: false,
            cleanenv: false,
            writable_tmpfs: false,
            pwd: None,
            env: Vec::new(),
            nv: false,
            cache_dir: None,
        }
    }
}

/// Default `PATH` inside containers (Apptainer does not pass the host's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where the image's root comes from.
enum Lower {
    /// A directory (sandbox, or an unprivileged extraction).
    Dir(PathBuf),
    /// A squashfs at an offset of a file (root: loop mount).
    Loop {
        file: PathBuf,
        offset: u64,
        size: u64,
    },
}

/// Resolve the image: a sandbox directory, or a SIF file (validated).
fn lower_for(image: &Path, opts: &RunOptions) -> Result<Lower> {
    let md = std::fs::metadata(image).map_err(|e| SifError::io(image, e))?;
    if md.is_dir() {
        return Ok(Lower::Dir(image.to_path_buf()));
    }
    let sif = Sif::open(image)?;
    let part = sif.rootfs_partition()?.clone();
    if crate::is_root() {
        return Ok(Lower::Loop {
            file: image.to_path_buf(),
            offset: part.offset,
            size: part.size,
        });
    }
    let cache = match &opts.cache_dir {
        Some(c) => c.clone(),
        None => default_cache_dir(),
    };
    let key = format!(
        "{}-{:x}-{:x}-{:x}-{:x}",
        hex::encode(sif.header.id),
        part.size,
        md.ino(),
        md.dev(),
        md.mtime()
    );
    let dir = cache.join(&key);
    if dir.is_dir() {
        return Ok(Lower::Dir(dir));
    }
    std::fs::create_dir_all(&cache).map_err(|e| SifError::io(&cache, e))?;
    let tmp = cache.join(format!(".{key}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    squash::unsquashfs(image, part.offset, &tmp, true)?;
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        // Another run extracted it first: use theirs.
        let _ = std::fs::remove_dir_all(&tmp);
        if !dir.is_dir() {
            return Err(SifError::io(&dir, e));
        }
    }
    Ok(Lower::Dir(dir))
}

/// `$XDG_CACHE_HOME/berth/sif`, else `~/.cache/berth/sif`, else `/tmp/berth-sif-<uid>`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("berth/sif");
    }
    if let Some(h) = home_dir() {
        return h.join(".cache/berth/sif");
    }
    PathBuf::from(format!(
        "/tmp/berth-sif-{}",
        rustix::process::getuid().as_raw()
    ))
}

/// The caller's home: `$HOME`, else the passwd entry.
fn home_dir() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(h));
    }
    passwd_entry(rustix::process::getuid().as_raw()).map(|e| PathBuf::from(e.home))
}

/// The fields of a host /etc/passwd entry berth uses.
struct PwEntry {
    name: String,
    gecos: String,
    home: String,
}

/// The host's /etc/passwd entry of a uid.
fn passwd_entry(uid: u32) -> Option<PwEntry> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() == 7 && f[2].parse::<u32>().ok() == Some(uid)).then(|| PwEntry {
            name: f[0].into(),
            gecos: f[4].into(),
            home: f[5].into(),
        })
    })
}

fn cstr(p: &OsStr) -> Result<CString> {
    CString::new(p.as_bytes()).map_err(|_| SifError::Run(format!("{p:?} contains a NUL byte")))
}

/// mount(2) with optional source, type and data.
fn mount(
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
fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

fn open_path(p: &Path) -> Result<OwnedFd> {
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
fn bind_into(root: &OwnedFd, src: &OwnedFd, dst: &str, is_dir: bool, ro: bool) -> Result<()> {
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
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

#[repr(C)]
#[allow(dead_code)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

/// Attach `file[offset..offset+size]` to a free loop device (read-only, autoclear). Returns the
/// open loop device (keep it open until it is mounted).
fn attach_loop(
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

fn write_file(p: &str, data: &str) -> Result<()> {
    std::fs::write(p, data).map_err(|e| SifError::io(p, e))
}

/// A host directory to mount the session tmpfs on: none of `avoid` may be inside it (or
/// contain it).
fn session_dir(avoid: &[PathBuf]) -> Result<PathBuf> {
    for c in ["/mnt", "/media", "/srv", "/opt", "/boot", "/run", "/tmp"] {
        let p = Path::new(c);
        if !p.is_dir()
            || std::fs::symlink_metadata(p)
                .map(|m| m.is_symlink())
                .unwrap_or(true)
        {
            continue;
        }
        if avoid.iter().any(|a| a.starts_with(p) || p.starts_with(a)) {
            continue;
        }
        return Ok(p.to_path_buf());
    }
    Err(SifError::Run(
        "no free directory for the session mount (tried /mnt /media /srv /opt /boot /run /tmp)"
            .into(),
    ))
}

/// Host identity gathered before any namespace is entered.
struct Host {
    uid: u32,
    gid: u32,
    home: Option<PathBuf>,
    cwd: Option<PathBuf>,
}

/// Directories whose host version must not cover the image's when they are the cwd.
fn is_system_dir(p: &Path) -> bool {
    let s = p.to_string_lossy();
    if s == "/" {
        return true;
    }
    [
        "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/var", "/boot",
        "/proc", "/sys", "/dev", "/run", "/opt", "/srv",
    ]
    .iter()
    .any(|d| s == *d || (s.starts_with(&format!("{d}/")) && !s.starts_with("/var/tmp")))
}

/// Enter the container and exec the action: returns only on failure.
///
/// Errors: the image cannot be read or is invalid, a namespace or mount cannot be set up, `--nv`
/// (GPU pass-through is not implemented), or the final exec fails.
pub fn exec_container(image: &Path, opts: &RunOptions) -> Result<std::convert::Infallible> {
    if opts.nv {
        let why = if Path::new("/dev/nvidiactl").exists() {
            "berth does not pass NVIDIA libraries into containers yet"
        } else {
            "this host has no NVIDIA GPU (no /dev/nvidiactl)"
        };
        return Err(SifError::Run(format!("--nv: {why}; run without --nv")));
    }
    let image = std::path::absolute(image).map_err(|e| SifError::io(image, e))?;
    let lower = lower_for(&image, opts)?;
    let contain = opts.contain || opts.containall;
    let cleanenv = opts.cleanenv || opts.containall;
    let host = Host {
        uid: rustix::process::getuid().as_raw(),
        gid: rustix::process::getgid().as_raw(),
        home: home_dir(),
        cwd: std::env::current_dir().ok(),
    };
    let root_user = crate::is_root();

    // Namespaces.
    let flags = if root_user {
        rustix::thread::UnshareFlags::NEWNS
    } else {
        rustix::thread::UnshareFlags::NEWNS | rustix::thread::UnshareFlags::NEWUSER
    };
    // SAFETY: neither FILES nor FS is unshared, so no other thread's view of descriptors
    // changes; berth is single-threaded here (user namespaces require it and report EINVAL
    // otherwise).
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(|e| {
        SifError::sys(
            if root_user {
                "creating a mount namespace"
            } else {
                "creating a user namespace (is /proc/sys/user/max_user_namespaces 0?)"
            },
            e,
        )
    })?;
    if !root_user {
        write_file("/proc/self/setgroups", "deny")?;
        write_file("/proc/self/uid_map", &format!("{0} {0} 1\n", host.uid))?;
        write_file("/proc/self/gid_map", &format!("{0} {0} 1\n", host.gid))?;
    }
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?;

    // Open every bind source now: after unshare (a bind's source must be a mount of this
    // namespace) and before anything is mounted over /tmp.
    let mut sources: Vec<(OwnedFd, String, bool, bool)> = Vec::new(); // fd, dst, is_dir, ro
    let add = |sources: &mut Vec<(OwnedFd, String, bool, bool)>, p: &Path, dst: &str, ro: bool| {
        if let (Ok(fd), Ok(md)) = (open_path(p), std::fs::metadata(p)) {
            sources.push((fd, dst.to_string(), md.is_dir(), ro));
        }
    };
    for d in ["/proc", "/sys", "/dev"] {
        add(&mut sources, Path::new(d), d, false);
    }
    if !contain {
        add(&mut sources, Path::new("/tmp"), "/tmp", false);
        add(&mut sources, Path::new("/var/tmp"), "/var/tmp", false);
    }
    let mut home_bound = false;
    if let Some(h) = &host.home {
        if !contain && h.is_dir() && !is_system_dir(h) {
            add(&mut sources, h, &h.to_string_lossy(), false);
            home_bound = true;
        }
    }
    if let Some(c) = &host.cwd {
        let under_bound = |base: &str| c.starts_with(base);
        let covered = (home_bound && host.home.as_ref().is_some_and(|h| c.starts_with(h)))
            || (!contain && (under_bound("/tmp") || under_bound("/var/tmp")));
        if !contain && !covered && !is_system_dir(c) {
            add(&mut sources, c, &c.to_string_lossy(), false);
        }
    }
    for f in ["/etc/hosts", "/etc/localtime", "/etc/resolv.conf"] {
        add(&mut sources, Path::new(f), f, false);
    }
    for b in &opts.binds {
        let fd = open_path(&b.src)
            .map_err(|e| SifError::Run(format!("--bind {}: {e}", b.src.display())))?;
        let md = std::fs::metadata(&b.src).map_err(|e| SifError::io(&b.src, e))?;
        sources.push((fd, b.dst.clone(), md.is_dir(), b.ro));
    }
    let lower_fd = match &lower {
        Lower::Dir(d) => Some(open_path(d)?),
        Lower::Loop { .. } => None,
    };
    // The image file, opened now: /tmp (where it may live) is covered below.
    let backing = match &lower {
        Lower::Loop { file, .. } => {
            Some(std::fs::File::open(file).map_err(|e| SifError::io(file, e))?)
        }
        Lower::Dir(_) => None,
    };

    // The session tmpfs, over a host directory that holds no bind source (in this namespace
    // only: the host keeps seeing its own directory).
    let mut avoid: Vec<PathBuf> = sources
        .iter()
        .filter_map(|(fd, _, _, _)| std::fs::read_link(fd_path(fd)).ok())
        .collect();
    if let Lower::Dir(d) = &lower {
        avoid.push(d.clone());
    }
    avoid.push(image.clone());
    let session_buf = session_dir(&avoid)?;
    let session = session_buf.as_path();
    mount(
        Some(Path::new("tmpfs")),
        session,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755,size=64m"),
    )?;
    for d in ["lower", "upper", "work", "root", "home", "tmp", "vartmp"] {
        let p = session.join(d);
        std::fs::create_dir(&p).map_err(|e| SifError::io(&p, e))?;
    }
    let lower_dir = session.join("lower");
    match &lower {
        Lower::Dir(_) => {
            let fd = lower_fd.as_ref().expect("opened above");
            mount(
                Some(&fd_path(fd)),
                &lower_dir,
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            )?;
        }
        Lower::Loop { offset, size, .. } => {
            let (dev, _lo) = attach_loop(backing.as_ref().expect("opened above"), *offset, *size)?;
            mount(
                Some(&dev),
                &lower_dir,
                Some("squashfs"),
                libc::MS_RDONLY | libc::MS_NODEV,
                None,
            )?;
        }
    }
    let root = session.join("root");
    let data = format!(
        "lowerdir={},upperdir={},workdir={}{}",
        lower_dir.display(),
        session.join("upper").display(),
        session.join("work").display(),
        if root_user { "" } else { ",userxattr" }
    );
    mount(
        Some(Path::new("overlay")),
        &root,
        Some("overlay"),
        0,
        Some(&data),
    )?;
    let root_fd = rustix::fs::open(
        &root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SifError::sys("opening the container root", e))?;

    // Contained /tmp, /var/tmp, home: private directories of the session.
    if contain {
        for (src, dst) in [("tmp", "/tmp"), ("vartmp", "/var/tmp")] {
            let fd = open_path(&session.join(src))?;
            bind_into(&root_fd, &fd, dst, true, false)?;
        }
        if let Some(h) = &host.home {
            let fd = open_path(&session.join("home"))?;
            bind_into(&root_fd, &fd, &h.to_string_lossy(), true, false)?;
        }
    }
    // /etc/passwd and /etc/group with the caller's entry (so `id -un` and `whoami` work).
    if !root_user {
        add_user_entries(&root_fd, session, &host)?;
    }
    for (fd, dst, is_dir, ro) in &sources {
        // Files the image lacks, or that are symlinks leading nowhere, are skipped for the
        // optional host files.
        let optional = dst.starts_with("/etc/");
        match bind_into(&root_fd, fd, dst, *is_dir, *ro) {
            Ok(()) => {}
            Err(e) if optional => tracing::debug!("not binding {dst}: {e}"),
            Err(e) => return Err(e),
        }
    }
    if !opts.writable_tmpfs {
        mount(
            None,
            &root,
            None,
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
            None,
        )?;
    }

    // Environment (computed before chroot: it reads the host's).
    let env = environment(&image, opts, cleanenv, &host);

    rustix::process::chroot(&root).map_err(|e| SifError::sys("chroot into the container", e))?;
    rustix::process::chdir("/").map_err(|e| SifError::sys("chdir /", e))?;
    let target_cwd = if let Some(p) = &opts.pwd {
        Some(PathBuf::from(p))
    } else if contain {
        host.home.clone()
    } else {
        host.cwd.clone()
    };
    if let Some(c) = target_cwd {
        if rustix::process::chdir(&c).is_err() {
            if opts.pwd.is_some() {
                return Err(SifError::Run(format!(
                    "--pwd {}: no such directory in the container",
                    c.display()
                )));
            }
            tracing::warn!("{} is not in the container; using /", c.display());
        }
    }
    exec_action(opts, env)
}

fn add_user_entries(root: &OwnedFd, session: &Path, host: &Host) -> Result<()> {
    let read = |p: &str| -> String {
        let Ok(fd) = openat2(
            root,
            p.trim_start_matches('/'),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) else {
            return String::new();
        };
        let mut s = String::new();
        use std::io::Read;
        let _ = std::fs::File::from(fd).take(4 << 20).read_to_string(&mut s);
        s
    };
    let Some(pw) = passwd_entry(host.uid) else {
        return Ok(());
    };
    let mut passwd = read("/etc/passwd");
    if !passwd
        .lines()
        .any(|l| l.split(':').nth(2) == Some(&host.uid.to_string()))
    {
        if !passwd.is_empty() && !passwd.ends_with('\n') {
            passwd.push('\n');
        }
        passwd.push_str(&format!(
            "{}:x:{}:{}:{}:{}:/bin/sh\n",
            pw.name,
            host.uid,
            host.gid,
            pw.gecos,
            host.home
                .as_ref()
                .map_or(pw.home.clone(), |h| h.display().to_string())
        ));
    }
    let mut group = read("/etc/group");
    if !group
        .lines()
        .any(|l| l.split(':').nth(2) == Some(&host.gid.to_string()))
    {
        let gname = std::fs::read_to_string("/etc/group")
            .ok()
            .and_then(|g| {
                g.lines().find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() >= 3 && f[2] == host.gid.to_string()).then(|| f[0].to_string())
                })
            })
            .unwrap_or_else(|| pw.name.clone());
        if !group.is_empty() && !group.ends_with('\n') {
            group.push('\n');
        }
        group.push_str(&format!("{gname}:x:{}:\n", host.gid));
    }
    for (name, text) in [("passwd", passwd), ("group", group)] {
        let p = session.join(name);
        std::fs::write(&p, text).map_err(|e| SifError::io(&p, e))?;
        let fd = open_path(&p)?;
        // An image without /etc cannot take them; that is fine.
        if let Err(e) = bind_into(root, &fd, &format!("/etc/{name}"), false, false) {
            tracing::debug!("not binding /etc/{name}: {e}");
        }
    }
    Ok(())
}

fn valid_env_name(k: &str) -> bool {
    let mut c = k.chars();
    matches!(c.next(), Some(x) if x.is_ascii_alphabetic() || x == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// The environment the action shell starts with, and the variables it sets after sourcing the
/// image's environment scripts (`--env`, `APPTAINERENV_*`, `SINGULARITYENV_*`).
struct Env {
    vars: BTreeMap<OsString, OsString>,
    late: Vec<String>,
}

fn environment(image: &Path, opts: &RunOptions, cleanenv: bool, host: &Host) -> Env {
    let mut vars: BTreeMap<OsString, OsString> = BTreeMap::new();
    let mut late: BTreeMap<String, OsString> = BTreeMap::new();
    for (k, v) in std::env::vars_os() {
        let ks = k.to_string_lossy().into_owned();
        for pre in ["SINGULARITYENV_", "APPTAINERENV_"] {
            if let Some(name) = ks.strip_prefix(pre) {
                if valid_env_name(name) {
                    late.insert(name.to_string(), v.clone());
                }
            }
        }
        if ks.starts_with("SINGULARITY") || ks.starts_with("APPTAINER") || ks.starts_with("BERTH_")
        {
            continue;
        }
        let keep_clean = matches!(ks.as_str(), "TERM" | "LANG" | "HOME" | "USER" | "LOGNAME");
        if cleanenv && !keep_clean {
            continue;
        }
        if matches!(
            ks.as_str(),
            "PATH" | "LD_LIBRARY_PATH" | "PS1" | "PROMPT_COMMAND"
        ) {
            continue;
        }
        vars.insert(k, v);
    }
    for (k, v) in &opts.env {
        late.insert(k.clone(), OsString::from(v));
    }
    vars.insert("PATH".into(), DEFAULT_PATH.into());
    if let Some(h) = &host.home {
        vars.insert("HOME".into(), h.clone().into_os_string());
    }
    let name = image
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    for pre in ["APPTAINER", "SINGULARITY"] {
        vars.insert(
            format!("{pre}_CONTAINER").into(),
            image.as_os_str().to_owned(),
        );
        vars.insert(format!("{pre}_NAME").into(), name.clone());
        vars.insert(format!("{pre}_COMMAND").into(), opts.action.name().into());
        vars.insert(
            format!("{pre}_ENVIRONMENT").into(),
            "/.singularity.d/env/91-environment.sh".into(),
        );
    }
    vars.insert("PS1".into(), "Apptainer> ".into());
    let mut late_names = Vec::new();
    for (k, v) in late {
        if !valid_env_name(&k) {
            continue;
        }
        vars.insert(format!("BERTH_SIF_ENV_{k}").into(), v);
        late_names.push(k);
    }
    Env {
        vars,
        late: late_names,
    }
}

/// The action shell script: source the image's environment, apply late variables, exec.
pub(crate) fn action_script(action: Action, late: &[String]) -> String {
    let mut s = String::from(
        "for f in /.singularity.d/env/*.sh; do if [ -f \"$f\" ]; then . \"$f\"; fi; done\n",
    );
    for k in late {
        s.push_str(&format!(
            "export {k}=\"$BERTH_SIF_ENV_{k}\"; unset BERTH_SIF_ENV_{k}\n"
        ));
    }
    s.push_str(match action {
        Action::Run => {
            "if [ -x /.singularity.d/runscript ]; then exec /.singularity.d/runscript \"$@\"; fi\n\
             if [ -x /singularity ]; then exec /singularity \"$@\"; fi\n\
             echo 'berth: this image has no runscript; use exec' >&2; exit 1\n"
        }
        Action::Exec => "exec \"$@\"\n",
        Action::Shell => {
            "if [ -x /bin/bash ]; then exec /bin/bash --norc \"$@\"; fi\nexec /bin/sh \"$@\"\n"
        }
        Action::Test => {
            "if [ -x /.singularity.d/test ]; then exec /.singularity.d/test \"$@\"; fi\n\
             echo 'berth: this image has no %test section' >&2; exit 1\n"
        }
        Action::Start => {
            "if [ -x /.singularity.d/startscript ]; then exec /.singularity.d/startscript \"$@\"; fi\n\
             echo 'berth: this image has no %startscript; the instance only holds its namespaces' >&2\n\
             while :; do sleep 3600; done\n"
        }
    });
    s
}

fn exec_action(opts: &RunOptions, env: Env) -> Result<std::convert::Infallible> {
    use std::os::unix::process::CommandExt;
    if opts.action == Action::Exec && opts.args.is_empty() {
        return Err(SifError::Run("exec needs a command".into()));
    }
    let script = action_script(opts.action, &env.late);
    let mut c = std::process::Command::new("/bin/sh");
    c.arg("-c")
        .arg(script)
        .arg(format!("berth-{}", opts.action.name()));
    c.args(&opts.args);
    c.env_clear().envs(&env.vars);
    let e = c.exec();
    Err(SifError::Run(format!(
        "cannot start /bin/sh in the container ({e}); the image needs a /bin/sh"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_parse() {
        let b = Bind::parse_list("/a,/b:/c:ro,/d:/e:rw").unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].dst, "/a");
        assert!(b[1].ro);
        assert!(!b[2].ro);
        assert!(Bind::parse_list("/a:/b:xx").is_err());
        assert!(Bind::parse_list("/a:rel").is_err());
    }

    #[test]
    fn script_applies_late_env() {
        let s = action_script(Action::Run, &["FOO".into()]);
        assert!(s.contains("export FOO=\"$BERTH_SIF_ENV_FOO\""));
        assert!(s.contains("runscript"));
    }
}
