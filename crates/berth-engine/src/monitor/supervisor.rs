//! Handing a running container over to `berth-supervise`, the static program that waits for
//! it with a few KiB of memory.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use berth_store::Store;

use super::io::Running;

/// The static supervisor binary, if installed next to berth (and not disabled).
pub(super) fn supervisor_path() -> Option<std::path::PathBuf> {
    if std::env::var_os("BERTH_NO_SUPERVISOR").is_some() {
        return None;
    }
    let exe = berth_exe::path().ok()?;
    let p = exe.parent()?.join("berth-supervise");
    p.is_file().then_some(p)
}

/// Replace this process with `berth-supervise`, handing over the container's stdio.
#[allow(clippy::too_many_arguments)]
pub(super) fn exec_supervisor(
    sup: &Path,
    store: &Store,
    id: &str,
    run: &Running,
    log: &File,
    flags: u32,
    backoff: Duration,
    started_ms: u64,
) {
    use std::ffi::CString;
    let Ok(exe) = berth_exe::path() else {
        return;
    };
    let keep = |fd: Option<i32>| -> i32 {
        match fd {
            Some(fd) => {
                // SAFETY: clearing FD_CLOEXEC on a descriptor we own.
                unsafe {
                    libc::fcntl(fd, libc::F_SETFD, 0);
                }
                fd
            }
            None => -1,
        }
    };
    let out = keep(
        run.master
            .as_ref()
            .or(run.stdout.as_ref())
            .map(|f| f.as_raw_fd()),
    );
    let err = keep(run.stderr.as_ref().map(|f| f.as_raw_fd()));
    let inp = keep(run.stdin.as_ref().map(|f| f.as_raw_fd()));
    let logfd = keep(Some(log.as_raw_fd()));
    let args: Vec<String> = vec![
        sup.to_string_lossy().into_owned(),
        exe.to_string_lossy().into_owned(),
        store.root().to_string_lossy().into_owned(),
        id.to_string(),
        run.pid.to_string(),
        logfd.to_string(),
        out.to_string(),
        err.to_string(),
        inp.to_string(),
        flags.to_string(),
        u64::try_from(backoff.as_millis())
            .unwrap_or(u64::MAX)
            .to_string(),
        started_ms.to_string(),
    ];
    let Ok(cargs) = args
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return;
    };
    let Ok(path) = CString::new(sup.as_os_str().as_encoded_bytes()) else {
        return;
    };
    let e = nix::unistd::execv(&path, &cargs);
    tracing::warn!(
        "cannot exec {}: {e:?}; supervising in-process",
        sup.display()
    );
}
