//! Paths inside an untrusted root (a container's root filesystem, a layer being unpacked),
//! resolved as the kernel would inside a chroot of that root: `..` stops at the root and an
//! absolute symlink target starts again at the root. Every lookup goes through
//! `openat2(RESOLVE_IN_ROOT)` (or `RESOLVE_NO_SYMLINKS` once a path is known to be free of
//! symlinks), so a hostile image cannot make berth create, open or write anything outside it.
//!
//! [`resolve`] follows symlinks also when the target does not exist yet (as runc's
//! `securejoin` does for mount destinations), so a mount onto a dangling link creates the
//! missing target inside the root instead of failing or escaping.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// How many symlinks one resolution may follow (Linux's own limit).
const MAX_LINKS: usize = 40;

/// Open `root` as a directory handle (`O_PATH`) to resolve paths under.
///
/// Errors: the root does not exist or is not a directory.
pub fn open_root(root: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn rel(path: &Path) -> &Path {
    let s = path.as_os_str().as_bytes();
    let mut i = 0;
    while i < s.len() && s[i] == b'/' {
        i += 1;
    }
    if i == s.len() {
        Path::new(".")
    } else {
        Path::new(OsStr::from_bytes(&s[i..]))
    }
}

/// Open `path` (absolute or relative, taken inside the root) with every component, symlinks
/// included, resolved inside `root` (`RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`).
///
/// Errors: as `openat2(2)` (`ENOENT` when a component is missing).
pub fn open_in(root: BorrowedFd<'_>, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat2(
        root,
        rel(path),
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// Open a path that [`resolve`] returned (no symlinks in it): any symlink found now (a race)
/// is refused instead of followed.
fn open_resolved(root: BorrowedFd<'_>, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat2(
        root,
        rel(path),
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// Resolve `path` inside `root` like a chroot would, following symlinks (also dangling ones)
/// and `..` without ever leaving the root. Returns the absolute path inside the root, free of
/// symlinks, `.` and `..`; its last components may not exist yet.
///
/// Errors: `ELOOP` after 40 links, `ENOTDIR` when a non-directory is used as a directory,
/// other `openat2`/`readlinkat` failures.
pub fn resolve(root: BorrowedFd<'_>, path: &Path) -> io::Result<PathBuf> {
    let mut todo: Vec<OsString> = components(path.as_os_str().as_bytes());
    todo.reverse();
    let mut done: Vec<OsString> = Vec::new();
    let mut links = 0usize;
    // Once a component is missing, everything below it is taken literally.
    let mut missing = false;
    while let Some(c) = todo.pop() {
        match c.as_bytes() {
            b"" | b"." => continue,
            b".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        if missing {
            done.push(c);
            continue;
        }
        let parent = join(&done);
        let dir = match open_resolved(root, &parent, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(d) => d,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                missing = true;
                done.push(c);
                continue;
            }
            Err(e) => return Err(e),
        };
        match rustix::fs::readlinkat(&dir, c.as_os_str(), Vec::new()) {
            Ok(target) => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let t = target.into_bytes();
                if t.first() == Some(&b'/') {
                    done.clear();
                }
                let mut more = components(&t);
                more.reverse();
                todo.extend(more);
            }
            // Exists and is not a symlink.
            Err(rustix::io::Errno::INVAL) => done.push(c),
            Err(rustix::io::Errno::NOENT) => {
                missing = true;
                done.push(c);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Path::new("/").join(join(&done)))
}

fn components(p: &[u8]) -> Vec<OsString> {
    p.split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .map(|c| OsString::from_vec(c.to_vec()))
        .collect()
}

fn join(c: &[OsString]) -> PathBuf {
    let mut p = PathBuf::new();
    for x in c {
        p.push(x);
    }
    p
}

/// Create every missing directory of `resolved` (a path returned by [`resolve`]) inside the
/// root, with mode 0755, and return a handle (`O_PATH`) of the last one.
///
/// Errors: a component exists and is not a directory (`ENOTDIR`/`EEXIST`), a symlink appeared
/// since resolution (`ELOOP`), or the filesystem refuses (read-only, no space).
pub fn mkdir_all(root: BorrowedFd<'_>, resolved: &Path) -> io::Result<OwnedFd> {
    let mut cur = open_resolved(root, Path::new("."), OFlags::PATH | OFlags::DIRECTORY)?;
    for c in components(resolved.as_os_str().as_bytes()) {
        match rustix::fs::mkdirat(&cur, c.as_os_str(), Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        cur = rustix::fs::openat2(
            &cur,
            c.as_os_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )?;
    }
    Ok(cur)
}

/// What [`create`] makes when the path is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A directory (mode 0755).
    Dir,
    /// An empty regular file (mode 0644), e.g. the mount point of a bound file.
    File,
}

/// Resolve `path` inside the root (see [`resolve`]) and create it there if it is missing
/// (parents as directories, the last component as `kind`); an existing entry is kept as it is.
/// Returns the resolved absolute path inside the root, free of symlinks.
///
/// Errors: as [`resolve`] and [`mkdir_all`]; the root path itself for [`Kind::File`]
/// (`EISDIR`).
pub fn create(root: &Path, path: &Path, kind: Kind) -> io::Result<PathBuf> {
    let rfd = open_root(root)?;
    let resolved = resolve(rfd.as_fd(), path)?;
    match kind {
        Kind::Dir => {
            mkdir_all(rfd.as_fd(), &resolved)?;
        }
        Kind::File => {
            let (Some(parent), Some(name)) = (resolved.parent(), resolved.file_name()) else {
                return Err(io::Error::from_raw_os_error(libc::EISDIR));
            };
            let dir = mkdir_all(rfd.as_fd(), parent)?;
            // O_PATH handles cannot create: reopen the parent as a real directory.
            let dir = rustix::fs::openat(
                &dir,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            match rustix::fs::openat(
                &dir,
                name,
                OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            ) {
                Ok(_) => {}
                // Exists as a directory (or another non-regular entry): leave it to the mount.
                Err(rustix::io::Errno::ISDIR) | Err(rustix::io::Errno::LOOP) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Scratch(PathBuf);
    impl Scratch {
        fn new() -> Scratch {
            let p =
                std::env::temp_dir().join(format!("berth-inroot-{:016x}", rand::random::<u64>()));
            std::fs::create_dir_all(p.join("root")).unwrap();
            std::fs::create_dir_all(p.join("outside")).unwrap();
            Scratch(p)
        }
        fn root(&self) -> PathBuf {
            self.0.join("root")
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn res(root: &Path, p: &str) -> String {
        let fd = open_root(root).unwrap();
        resolve(fd.as_fd(), Path::new(p))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn dotdot_and_absolute_links_stay_inside() {
        let s = Scratch::new();
        let r = s.root();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        symlink("/a", r.join("abs")).unwrap();
        symlink("../../../../outside", r.join("a/up")).unwrap();
        symlink("../outside/new.txt", r.join("dangle")).unwrap();
        symlink("loop2", r.join("loop1")).unwrap();
        symlink("loop1", r.join("loop2")).unwrap();
        assert_eq!(res(&r, "/../../../tmp/x"), "/tmp/x");
        assert_eq!(res(&r, "abs/b/../c"), "/a/c");
        assert_eq!(res(&r, "/a/up/f"), "/outside/f");
        assert_eq!(res(&r, "/dangle"), "/outside/new.txt");
        assert_eq!(res(&r, "/"), "/");
        let fd = open_root(&r).unwrap();
        assert!(resolve(fd.as_fd(), Path::new("/loop1/x")).is_err());

        let made = create(&r, Path::new("/dangle"), Kind::File).unwrap();
        assert_eq!(made, Path::new("/outside/new.txt"));
        assert!(r.join("outside/new.txt").is_file());
        let d = create(&r, Path::new("/a/up/deep/er"), Kind::Dir).unwrap();
        assert_eq!(d, Path::new("/outside/deep/er"));
        assert!(r.join("outside/deep/er").is_dir());
        // Nothing appeared next to the root.
        assert_eq!(std::fs::read_dir(s.0.join("outside")).unwrap().count(), 0);
    }

    #[test]
    fn file_in_the_way_is_an_error() {
        let s = Scratch::new();
        let r = s.root();
        std::fs::write(r.join("f"), b"x").unwrap();
        assert!(create(&r, Path::new("/f/sub"), Kind::Dir).is_err());
        // An existing file stays as it is.
        assert_eq!(
            create(&r, Path::new("/f"), Kind::File).unwrap(),
            Path::new("/f")
        );
        assert_eq!(std::fs::read(r.join("f")).unwrap(), b"x");
    }
}
