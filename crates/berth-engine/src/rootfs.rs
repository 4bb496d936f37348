//! The container root filesystem: an overlay of the image layers plus a private upper dir,
//! and path lookups that never leave it.

use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};

use crate::{EngineError, Result};

/// Open `path` (absolute inside the container) with every component resolved inside `root`.
pub fn open_in_root(root: &Path, path: &str, flags: OFlags) -> std::io::Result<OwnedFd> {
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    Ok(openat2(
        &dir,
        rel,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?)
}

pub fn read_file_in_root(root: &Path, path: &str) -> std::io::Result<Vec<u8>> {
    let fd = open_in_root(root, path, OFlags::RDONLY)?;
    let f = fs::File::from(fd);
    let mut buf = Vec::new();
    f.take(16 << 20).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Why a command cannot be started.
#[derive(Debug, PartialEq, Eq)]
pub enum ExecCheck {
    Ok,
    NotFound,
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

/// Paths of a container's directory.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub dir: PathBuf,
}

impl Bundle {
    pub fn new(root: &Path, id: &str) -> Bundle {
        Bundle {
            dir: root.join("containers").join(id),
        }
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    pub fn log(&self) -> PathBuf {
        self.dir.join("ctr.log")
    }

    /// Create the directory skeleton.
    pub fn create(&self) -> Result<()> {
        for d in [self.dir.clone(), self.rootfs(), self.upper(), self.work()] {
            fs::create_dir_all(&d).map_err(|e| EngineError::io(&d, e))?;
        }
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| EngineError::io(&self.dir, e))?;
        Ok(())
    }

    pub fn is_mounted(&self) -> bool {
        is_mountpoint(&self.rootfs())
    }

    /// Mount the overlay (idempotent). `lowers` bottom layer first.
    pub fn mount(&self, lowers: &[PathBuf]) -> Result<()> {
        if self.is_mounted() {
            return Ok(());
        }
        let rootfs = self.rootfs();
        fs::create_dir_all(&rootfs).map_err(|e| EngineError::io(&rootfs, e))?;
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
        if data.len() > 4000 {
            return Err(EngineError::Other(format!(
                "image has too many layers for one overlay mount ({} layers)",
                lowers.len()
            )));
        }
        let data_c = std::ffi::CString::new(data)
            .map_err(|_| EngineError::Other("layer path contains a NUL byte".into()))?;
        rustix::mount::mount(
            "overlay",
            &rootfs,
            "overlay",
            rustix::mount::MountFlags::empty(),
            Some(data_c.as_c_str()),
        )
        .map_err(|e| EngineError::Other(format!("mounting the container root filesystem: {e}")))
    }

    /// Unmount the overlay (idempotent).
    pub fn unmount(&self) -> Result<()> {
        let rootfs = self.rootfs();
        while is_mountpoint(&rootfs) {
            if let Err(e) = rustix::mount::unmount(&rootfs, rustix::mount::UnmountFlags::DETACH) {
                return Err(EngineError::Other(format!(
                    "unmounting {}: {e}",
                    rootfs.display()
                )));
            }
        }
        Ok(())
    }

    /// Unmount and delete everything of this container.
    pub fn remove(&self) -> Result<()> {
        self.unmount()?;
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(EngineError::io(&self.dir, e)),
        }
    }
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
