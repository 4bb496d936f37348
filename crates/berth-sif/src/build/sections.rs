//! The build sections: cache-key hashing of host inputs, `%files` copies, `%setup` on the host
//! and `%post`/`%test` inside the root.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::fs::{Mode, OFlags};
use sha2::{Digest as _, Sha256};

use crate::deffile::{self, Definition, Script};
use crate::run::{mountpoint_in_root, DEFAULT_PATH};
use crate::{Result, SifError};

use super::*;

/// Hash a host path for the cache key: names, modes, sizes, link targets and contents.
pub(super) fn hash_tree(h: &mut Sha256, src: &Path, def: &Definition) -> Result<()> {
    let p = host_path(src, def);
    hash_tree_plain(h, &p)
}

pub(super) fn hash_tree_plain(h: &mut Sha256, p: &Path) -> Result<()> {
    let md = std::fs::symlink_metadata(p).map_err(|e| SifError::io(p, e))?;
    h.update(p.file_name().map(|n| n.as_bytes()).unwrap_or(b"/"));
    h.update(md.permissions().mode().to_le_bytes());
    if md.is_symlink() {
        let t = std::fs::read_link(p).map_err(|e| SifError::io(p, e))?;
        h.update(t.as_os_str().as_bytes());
    } else if md.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(p)
            .map_err(|e| SifError::io(p, e))?
            .flatten()
            .map(|e| e.path())
            .collect();
        names.sort();
        for n in names {
            hash_tree_plain(h, &n)?;
        }
    } else if md.is_file() {
        let mut f = std::fs::File::open(p).map_err(|e| SifError::io(p, e))?;
        h.update(md.len().to_le_bytes());
        std::io::copy(&mut f, h).map_err(|e| SifError::io(p, e))?;
    }
    Ok(())
}

/// Host paths of `%files` are relative to the build's working directory (as Apptainer).
pub(super) fn host_path(src: &Path, _def: &Definition) -> PathBuf {
    src.to_path_buf()
}

/// `%files` line: copy into the new root, every destination component resolved inside it.
pub(super) fn copy_in(
    f: &deffile::FileCopy,
    from_root: Option<&Path>,
    merged: &Path,
    def: &Definition,
) -> Result<()> {
    let src = match from_root {
        Some(r) => {
            // Resolve inside the other stage's root.
            let root = open_dir(r)?;
            let fd = rustix::fs::openat2(
                &root,
                f.src.trim_start_matches('/'),
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                rustix::fs::ResolveFlags::IN_ROOT | rustix::fs::ResolveFlags::NO_MAGICLINKS,
            )
            .map_err(|e| SifError::Definition {
                file: def.file.clone(),
                line: f.line,
                why: format!(
                    "%files from {}: {}: {e}",
                    f.from.as_deref().unwrap_or(""),
                    f.src
                ),
            })?;
            // `cp` reads it through this process's descriptor (kept open until exit).
            let p = PathBuf::from(format!(
                "/proc/{}/fd/{}",
                std::process::id(),
                fd.as_raw_fd()
            ));
            std::mem::forget(fd);
            p
        }
        None => host_path(Path::new(&f.src), def),
    };
    if std::fs::symlink_metadata(&src).is_err() {
        return Err(SifError::Definition {
            file: def.file.clone(),
            line: f.line,
            why: format!("%files: {} does not exist", f.src),
        });
    }
    let dst = f.dst.trim_end_matches('/');
    let (parent, name) = match dst.rsplit_once('/') {
        Some((p, n)) if !n.is_empty() => (p, n),
        _ => ("", dst),
    };
    let root = open_dir(merged)?;
    let pfd = mountpoint_in_root(&root, if parent.is_empty() { "/" } else { parent }, false)?;
    // `cp` is another process: name our descriptor through our pid.
    let target = PathBuf::from(format!(
        "/proc/{}/fd/{}/{}",
        std::process::id(),
        pfd.as_raw_fd(),
        name
    ));
    let out = Command::new("cp")
        .arg("-a")
        .arg("-L")
        .arg(&src)
        .arg(&target)
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| SifError::sys("running cp", e))?;
    if !out.status.success() {
        return Err(SifError::Definition {
            file: def.file.clone(),
            line: f.line,
            why: format!(
                "%files {} {}: {}",
                f.src,
                f.dst,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// The interpreter of a script section: `-c /bin/bash` in its arguments, else `/bin/sh`.
pub(super) fn interpreter(s: &Script) -> String {
    let w: Vec<&str> = s.args.split_whitespace().collect();
    w.iter()
        .position(|x| *x == "-c")
        .and_then(|i| w.get(i + 1))
        .map_or_else(|| "/bin/sh".to_string(), |s| s.to_string())
}

pub(super) fn section_failed(
    s: &Script,
    def: &Definition,
    name: &str,
    status: std::process::ExitStatus,
) -> SifError {
    SifError::Build(format!(
        "{}:{}: %{name} failed ({status}); fix the section and build again",
        def.file.display(),
        s.line
    ))
}

/// `%setup`: on the host, `$APPTAINER_ROOTFS` = the new root.
pub(super) fn run_host_script(s: &Script, merged: &Path, def: &Definition) -> Result<()> {
    let st = Command::new(interpreter(s))
        .arg("-e")
        .arg("-c")
        .arg(&s.body)
        .env("APPTAINER_ROOTFS", merged)
        .env("SINGULARITY_ROOTFS", merged)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| SifError::sys("running %setup", e))?;
    if !st.success() {
        return Err(section_failed(s, def, "setup", st));
    }
    Ok(())
}

/// `%post`: chrooted into the new root, host network, /proc /sys /dev and the host's
/// resolv.conf and hosts bound in (the build's private mount namespace; unmounted with the root).
pub(super) fn run_in_root(s: &Script, merged: &Path, def: &Definition) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let root = open_dir(merged)?;
    let interp = interpreter(s);
    for (src, dst, is_dir) in [
        ("/proc", "/proc", true),
        ("/sys", "/sys", true),
        ("/dev", "/dev", true),
        ("/etc/resolv.conf", "/etc/resolv.conf", false),
        ("/etc/hosts", "/etc/hosts", false),
    ] {
        if !Path::new(src).exists() {
            continue;
        }
        // Resolved inside the new root, so an image's symlink cannot send the mount outside.
        let Ok(fd) = mountpoint_in_root(&root, dst, !is_dir) else {
            continue;
        };
        let target = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        let flags = libc::MS_BIND | if is_dir { libc::MS_REC } else { 0 };
        sys_mount(Some(Path::new(src)), &target, None, flags, None)?;
    }
    let merged_c = CString::new(merged.as_os_str().as_bytes())
        .map_err(|_| SifError::Build("root path with NUL".into()))?;
    let mut c = Command::new(&interp);
    c.arg("-e").arg("-c").arg(&s.body);
    c.env_clear()
        .env("PATH", DEFAULT_PATH)
        .env("HOME", "/root")
        .env("LANG", "C")
        .env(
            "TERM",
            std::env::var("TERM").unwrap_or_else(|_| "dumb".into()),
        )
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("APPTAINER_ROOTFS", "/")
        .env("SINGULARITY_ROOTFS", "/")
        .env(
            "APPTAINER_ENVIRONMENT",
            "/.singularity.d/env/91-environment.sh",
        )
        .env(
            "SINGULARITY_ENVIRONMENT",
            "/.singularity.d/env/91-environment.sh",
        )
        .stdin(Stdio::null());
    // SAFETY: the closure runs between fork and exec and only makes raw system calls on
    // memory prepared before the fork (no allocation, no locks).
    unsafe {
        c.pre_exec(move || {
            if libc::chroot(merged_c.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let st = c.status().map_err(|e| {
        SifError::Build(format!(
            "{}:{}: cannot start %post with {interp} in the new root: {e}",
            def.file.display(),
            s.line
        ))
    })?;
    if !st.success() {
        return Err(section_failed(s, def, "post", st));
    }
    Ok(())
}

pub(super) fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
