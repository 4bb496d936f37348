//! Network namespaces: create one pinned by a bind mount, run code inside one, remove one.
//!
//! Namespace switches happen on short-lived helper threads: `setns`/`unshare` of the network
//! namespace affect only the calling thread, so the caller's thread never changes namespace.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

fn io_err(e: nix::Error) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Create a new network namespace pinned at `path` (an empty file is created there and the
/// namespace bind-mounted on it), then run `f` inside it on a helper thread.
pub fn create<T: Send>(path: &Path, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            unshare(CloneFlags::CLONE_NEWNET).map_err(io_err)?;
            mount(
                Some("/proc/thread-self/ns/net"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(io_err)?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("network namespace helper thread panicked")))
    })
}

/// Run `f` on a helper thread that has joined the network namespace at `path`.
pub fn run_in<T: Send>(path: &Path, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    let ns = File::open(path)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(io_err)?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("network namespace helper thread panicked")))
    })
}

/// Unpin and remove a namespace created by [`create`]. Missing paths are fine.
pub fn remove(path: &Path) -> io::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(e) => return Err(io_err(e)),
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// True if `path` currently has a network namespace mounted on it.
pub fn is_mounted(path: &Path) -> bool {
    // An nsfs mount reports the namespace's own device; an empty file on disk does not
    // resolve to a namespace inode, so compare with what `setns` would accept.
    match File::open(path) {
        Ok(f) => {
            // NS_GET_NSTYPE ioctl would be precise; a cheap check: nsfs files have st_nlink 1
            // and live on the nsfs device, which differs from the parent directory's device.
            let (Ok(m), Some(parent)) = (f.metadata(), path.parent()) else {
                return false;
            };
            let Ok(pm) = fs::metadata(parent) else {
                return false;
            };
            use std::os::unix::fs::MetadataExt;
            m.dev() != pm.dev()
        }
        Err(_) => false,
    }
}

/// True if some process (other than through the pin at `path`) lives in the namespace
/// pinned at `path`. Scans /proc; false if the path is not a namespace.
pub fn in_use_by_process(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = fs::metadata(path) else {
        return false;
    };
    if !is_mounted(path) {
        return false;
    }
    let want = format!("net:[{}]", m.ino());
    let Ok(rd) = fs::read_dir("/proc") else {
        return true;
    };
    rd.flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .any(|e| {
            fs::read_link(e.path().join("ns/net"))
                .map(|l| l.as_os_str() == want.as_str())
                .unwrap_or(false)
        })
}

/// Network namespaces as the container setup uses them.
pub trait Namespaces: std::fmt::Debug {
    /// Create a namespace pinned at `path`, with its loopback up.
    fn create(&self, path: &Path) -> io::Result<()>;
    /// Unpin and remove the namespace at `path`; a missing one is fine.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Whether a process still lives in the namespace pinned at `path`.
    fn in_use(&self, path: &Path) -> bool;
}

/// This host's namespaces (bind mounts, setns).
#[derive(Debug, Clone, Copy, Default)]
pub struct HostNamespaces;

impl Namespaces for HostNamespaces {
    fn create(&self, path: &Path) -> io::Result<()> {
        create(path, || {
            let mut nl = crate::netlink::Netlink::open()?;
            if let Some(lo) = nl.link_index("lo")? {
                nl.set_up(lo)?;
            }
            Ok(())
        })
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        remove(path)
    }
    fn in_use(&self, path: &Path) -> bool {
        in_use_by_process(path)
    }
}
