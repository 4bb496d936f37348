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

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::format::Sif;
use crate::{squash, Result, SifError};

mod exec;
mod mounts;

pub(crate) use exec::action_script;
pub use exec::exec_container;
pub(crate) use mounts::mountpoint_in_root;
use mounts::*;

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
