//! `instance start|list|stop`: `%startscript` services running in the background.
//!
//! An instance is a forked process (its own session) that enters the container as
//! [`crate::run::exec_container`] does and runs `/.singularity.d/startscript`. Its record is a
//! JSON file per name in the caller's instance directory (`<cache>/../sif-instances/NAME.json`,
//! written atomically) with the pid and the pid's start time, so a recycled pid is never taken
//! for the instance; its output goes to `NAME.out` and `NAME.err` next to it.

use std::path::{Path, PathBuf};

use crate::run::{Action, RunOptions};
use crate::{Result, SifError};

/// A recorded instance.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Instance {
    /// Its name.
    pub name: String,
    /// Pid of the instance's process (the container's first process).
    pub pid: i32,
    /// The pid's start time (clock ticks after boot, field 22 of /proc/PID/stat).
    pub start_time: u64,
    /// The image it runs.
    pub image: PathBuf,
}

/// Where this user's instance records live.
pub fn instance_dir() -> PathBuf {
    let cache = crate::run::default_cache_dir();
    cache
        .parent()
        .map_or_else(|| cache.clone(), Path::to_path_buf)
        .join("sif-instances")
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && !n.starts_with('.')
}

/// Start time of a pid, if it runs.
fn start_time(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = s.rsplit_once(')')?.1;
    // Fields after the command: state is field 3 (a zombie has exited); starttime is field 22.
    let mut f = after.split_whitespace();
    if f.next()? == "Z" {
        return None;
    }
    f.nth(18)?.parse().ok()
}

fn alive(i: &Instance) -> bool {
    start_time(i.pid) == Some(i.start_time)
}

/// Start `image` as instance `name` with `opts` (its action is forced to start).
///
/// Errors: a bad or taken name, fork failure; setup errors of the instance itself go to its
/// `NAME.err` log and the instance is then not listed.
pub fn start(image: &Path, name: &str, opts: &RunOptions) -> Result<Instance> {
    if !valid_name(name) {
        return Err(SifError::Run(format!(
            "instance name {name:?}: use letters, digits, '-', '_' and '.'"
        )));
    }
    let dir = instance_dir();
    std::fs::create_dir_all(&dir).map_err(|e| SifError::io(&dir, e))?;
    if let Some(i) = list()?.into_iter().find(|i| i.name == name) {
        return Err(SifError::Conflict(format!(
            "instance {name} already runs (pid {}); stop it first",
            i.pid
        )));
    }
    let image = std::path::absolute(image).map_err(|e| SifError::io(image, e))?;
    // Validate the image before forking, so errors reach the caller.
    if !image.is_dir() {
        crate::Sif::open(&image)?.rootfs_partition()?;
    }
    let out = std::fs::File::create(dir.join(format!("{name}.out")))
        .map_err(|e| SifError::io(dir.join(format!("{name}.out")), e))?;
    let err = std::fs::File::create(dir.join(format!("{name}.err")))
        .map_err(|e| SifError::io(dir.join(format!("{name}.err")), e))?;
    let mut o = opts.clone();
    o.action = Action::Start;
    // SAFETY: berth is single-threaded when it starts instances, so the child may allocate
    // and run arbitrary code until it execs.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(SifError::sys("fork", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        use std::os::fd::AsRawFd;
        // SAFETY: plain system calls on descriptors this process owns.
        unsafe {
            libc::setsid();
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
            libc::dup2(null, 0);
            libc::dup2(out.as_raw_fd(), 1);
            libc::dup2(err.as_raw_fd(), 2);
        }
        let e = crate::run::exec_container(&image, &o).err();
        if let Some(e) = e {
            eprintln!("berth: instance {name}: {e}");
        }
        std::process::exit(255);
    }
    let inst = Instance {
        name: name.to_string(),
        pid,
        start_time: start_time(pid).unwrap_or(0),
        image,
    };
    let rec = dir.join(format!("{name}.json"));
    berth_store::write_atomic(&rec, &serde_json::to_vec(&inst).expect("json"))
        .map_err(|e| SifError::Run(format!("recording instance {name}: {e}")))?;
    Ok(inst)
}

/// Running instances of the caller (records of dead ones are removed).
///
/// Errors: the instance directory cannot be read.
pub fn list() -> Result<Vec<Instance>> {
    let dir = instance_dir();
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SifError::io(&dir, e)),
    };
    let mut out = Vec::new();
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let Ok(i) = std::fs::read(&p)
            .map_err(|_| ())
            .and_then(|b| serde_json::from_slice::<Instance>(&b).map_err(|_| ()))
        else {
            continue;
        };
        if alive(&i) {
            out.push(i);
        } else {
            let _ = std::fs::remove_file(&p);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Stop instance `name`: SIGTERM to its process group, SIGKILL after `timeout_s` seconds.
///
/// Errors: no such instance.
pub fn stop(name: &str, timeout_s: u64) -> Result<()> {
    let Some(i) = list()?.into_iter().find(|i| i.name == name) else {
        return Err(SifError::Run(format!(
            "no instance named {name} (see `instance list`)"
        )));
    };
    // SAFETY: kill(2) on a process group we created (the instance leads its session).
    unsafe { libc::kill(-i.pid, libc::SIGTERM) };
    let steps = timeout_s.saturating_mul(10).max(1);
    for _ in 0..steps {
        if !alive(&i) {
            break;
        }
        // Reap it if it is our child (it is not when started by another command).
        // SAFETY: waitpid with WNOHANG on a pid; harmless if it is not our child.
        unsafe { libc::waitpid(i.pid, std::ptr::null_mut(), libc::WNOHANG) };
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    if alive(&i) {
        // SAFETY: as above.
        unsafe { libc::kill(-i.pid, libc::SIGKILL) };
    }
    let _ = std::fs::remove_file(instance_dir().join(format!("{name}.json")));
    Ok(())
}
