//! squashfs through squashfs-tools (`mksquashfs`, `unsquashfs`): the reference implementation,
//! multi-threaded, and what Apptainer itself runs.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::{Result, SifError};

fn tool_missing(tool: &str, e: std::io::Error) -> SifError {
    if e.kind() == std::io::ErrorKind::NotFound {
        SifError::Build(format!(
            "{tool} not found; install squashfs-tools (apt-get install squashfs-tools)"
        ))
    } else {
        SifError::sys(format!("running {tool}"), e)
    }
}

/// Make a squashfs image `dest` from directory `src` (gzip, as Apptainer's default, so every
/// Apptainer and squashfuse can read it).
pub fn mksquashfs(src: &Path, dest: &Path) -> Result<()> {
    let out = Command::new("mksquashfs")
        .arg(src)
        .arg(dest)
        .args(["-noappend", "-comp", "gzip", "-no-progress", "-quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| tool_missing("mksquashfs", e))?;
    if !out.status.success() {
        return Err(SifError::Build(format!(
            "mksquashfs {} failed: {}",
            src.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Extract the squashfs at `offset` bytes in `file` into the new directory `dest`.
/// `unprivileged`: do not try to restore ownership or device nodes (they are skipped).
pub fn unsquashfs(file: &Path, offset: u64, dest: &Path, unprivileged: bool) -> Result<()> {
    let mut c = Command::new("unsquashfs");
    c.args(["-no-progress", "-quiet", "-no-xattrs", "-o"])
        .arg(offset.to_string())
        .arg("-d")
        .arg(dest);
    if unprivileged {
        // Device nodes and ownership cannot be restored; keep going.
        c.arg("-ignore-errors").arg("-no-exit-code");
    }
    let out = c
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| tool_missing("unsquashfs", e))?;
    if !out.status.success() {
        return Err(SifError::Run(format!(
            "unsquashfs {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}
