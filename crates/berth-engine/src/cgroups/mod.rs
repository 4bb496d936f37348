//! Containers' cgroups after the runtime made them: the OOM-kill check and removal, through
//! one interface for cgroup v1, v2 and hybrid hosts.
//!
//! The runtime creates the cgroups and applies the limits (from the spec's `cgroupsPath` and
//! `linux.resources`); berth writes the same limits again through [`Cgroups::apply`] once the
//! runtime created the cgroup (so they hold whichever runtime runs the container, and
//! `update` can change them later), reads the OOM counter when a container exits, tells
//! whether a process belongs to a container, and makes sure no cgroup outlives its container.

mod limits;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use limits::{shares_to_weight, Limits};

/// What berth asks of a container's cgroups. `path` is the container's cgroup path relative to
/// each hierarchy's root (`/berth/<id>`, see [`crate::paths::cgroup_path_for`]).
pub trait Cgroups: std::fmt::Debug {
    /// Whether the kernel's OOM killer killed a process of the cgroup (v1
    /// `memory.oom_control`, v2 `memory.events`: `oom_kill` > 0).
    fn oom_killed(&self, path: &str) -> bool;

    /// Remove the (empty) cgroup from every hierarchy it exists in. Best effort: a cgroup still
    /// holding a process is retried briefly, then left.
    fn remove(&self, path: &str);

    /// Whether process `pid` is a member of the cgroup (in any hierarchy).
    fn contains(&self, pid: i32, path: &str) -> bool;

    /// Freeze (`true`) or thaw the cgroup's processes: v1 `freezer.state` (`FROZEN`/`THAWED`,
    /// waiting until the kernel reports the state), v2 `cgroup.freeze` (`1`/`0`, waiting for
    /// `frozen` in `cgroup.events`). Errors: no freezer for this cgroup, or the write failed.
    fn set_frozen(&self, path: &str, frozen: bool) -> std::io::Result<()>;

    /// Whether the cgroup is frozen (`pause`d).
    fn is_frozen(&self, path: &str) -> bool;

    /// Pids of the processes in the cgroup and its descendants, sorted.
    fn pids(&self, path: &str) -> Vec<i32>;

    /// Resource usage counters of the cgroup (what `docker stats` shows).
    fn stats(&self, path: &str) -> CgroupStats;

    /// Write `limits` into the container's existing cgroup: the v1 controllers' files
    /// (`memory.limit_in_bytes`, `cpu.cfs_quota_us`, …) or the v2 ones (`memory.max`,
    /// `cpu.max`, `cpu.weight`, …), converting Docker's units as runc does. Settings left
    /// `None` are not touched; hierarchies the cgroup does not exist in are skipped.
    ///
    /// Errors: the first file that cannot be written, named in the error.
    fn apply(&self, path: &str, limits: &Limits) -> std::io::Result<()>;
}

/// Usage counters of one cgroup. Fields the host does not provide are 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupStats {
    /// Memory in use in bytes, minus the inactive file cache (as `docker stats` counts it).
    pub memory_usage: u64,
    /// The memory limit in bytes (`None`: unlimited).
    pub memory_limit: Option<u64>,
    /// CPU time used in nanoseconds.
    pub cpu_usage_ns: u64,
    /// Number of tasks.
    pub pids: u64,
    /// The pids limit (`None`: unlimited).
    pub pids_limit: Option<u64>,
    /// Bytes read from block devices.
    pub blkio_read: u64,
    /// Bytes written to block devices.
    pub blkio_write: u64,
}

/// The cgroup filesystems mounted under `root` (`/sys/fs/cgroup` on a host): v1 controllers in
/// subdirectories, a v2 hierarchy at the root itself or at `unified/` (hybrid).
#[derive(Debug, Clone)]
pub struct CgroupFs {
    root: PathBuf,
    proc: PathBuf,
}

impl CgroupFs {
    /// The host's cgroups (`/sys/fs/cgroup`, processes in `/proc`).
    pub fn host() -> Self {
        CgroupFs::at(Path::new("/sys/fs/cgroup"), Path::new("/proc"))
    }

    /// Cgroups mounted under `root`, processes listed under `proc` (tests use directories).
    pub fn at(root: &Path, proc: &Path) -> Self {
        CgroupFs {
            root: root.to_path_buf(),
            proc: proc.to_path_buf(),
        }
    }

    /// Send SIGKILL to every process in cgroup `path` (all hierarchies) until none is left
    /// or about 2 seconds passed (for a crashed owner's leftovers: nothing else may be
    /// in that cgroup). Returns whether the cgroup is empty.
    pub fn kill_all(&self, path: &str) -> bool {
        if path.trim_matches('/').is_empty() {
            return false;
        }
        for _ in 0..200 {
            let mut pids: Vec<i32> = Vec::new();
            for d in self.dirs(path) {
                if let Ok(t) = std::fs::read_to_string(d.join("cgroup.procs")) {
                    pids.extend(t.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
                }
            }
            pids.retain(|p| *p > 1);
            if pids.is_empty() {
                return true;
            }
            for p in pids {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(p),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Every directory this cgroup may have: one per v1 controller (and the hybrid `unified/`
    /// v2), plus the v2 directory at the root.
    fn dirs(&self, path: &str) -> Vec<PathBuf> {
        let rel = path.trim_matches('/');
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&self.root)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
                    .map(|e| e.path().join(rel))
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        dirs.push(self.root.join(rel));
        dirs
    }
}

fn oom_count_positive(text: &str) -> bool {
    text.lines().any(|l| {
        l.strip_prefix("oom_kill ")
            .map(|v| v.trim() != "0")
            .unwrap_or(false)
    })
}

/// A number in a cgroup file (`max` and absurdly large v1 limits are `None`).
fn read_limit(p: &Path) -> Option<u64> {
    let t = read_small(p).ok()?;
    let t = t.trim();
    if t == "max" {
        return None;
    }
    t.parse::<u64>().ok().filter(|v| *v < (1u64 << 62))
}

fn read_u64(p: &Path) -> Option<u64> {
    read_small(p).ok()?.trim().parse().ok()
}

/// A small kernel file in one read: sysfs and procfs files report size 0, so
/// `fs::read_to_string` would stat and seek first and then read with a growing buffer, several
/// times (`stats` reads several such files per container).
pub(crate) fn read_small(p: impl AsRef<Path>) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(p)?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// `key value` lines (memory.stat, cgroup.events, cpu.stat): the value of `key`.
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

impl CgroupFs {
    /// The v2 directory of a cgroup: at the root on a unified host, under `unified/` on a
    /// hybrid one (only if it exists there).
    fn v2_dir(&self, rel: &str) -> Option<PathBuf> {
        [self.root.join(rel), self.root.join("unified").join(rel)]
            .into_iter()
            .find(|d| d.join("cgroup.procs").exists() && d.join("cgroup.freeze").exists())
    }

    fn v1_dir(&self, controller: &str, rel: &str) -> Option<PathBuf> {
        let d = self.root.join(controller).join(rel);
        d.is_dir().then_some(d)
    }
}

impl Cgroups for CgroupFs {
    fn set_frozen(&self, path: &str, frozen: bool) -> std::io::Result<()> {
        let rel = path.trim_matches('/');
        if let Some(d) = self.v1_dir("freezer", rel) {
            let want = if frozen { "FROZEN" } else { "THAWED" };
            // Writing FROZEN may report FREEZING for a while: write again until it holds.
            for _ in 0..1000 {
                std::fs::write(d.join("freezer.state"), want)?;
                if std::fs::read_to_string(d.join("freezer.state"))?.trim() == want {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the freezer did not reach {want}"),
            ));
        }
        if let Some(d) = self.v2_dir(rel) {
            std::fs::write(d.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
            for _ in 0..1000 {
                let ev = std::fs::read_to_string(d.join("cgroup.events"))?;
                if keyed(&ev, "frozen") == Some(u64::from(frozen)) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the cgroup did not reach the requested freeze state",
            ));
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no freezer cgroup for {path}"),
        ))
    }

    fn is_frozen(&self, path: &str) -> bool {
        let rel = path.trim_matches('/');
        if let Some(d) = self.v1_dir("freezer", rel) {
            return std::fs::read_to_string(d.join("freezer.state"))
                .is_ok_and(|s| s.trim() == "FROZEN");
        }
        if let Some(d) = self.v2_dir(rel) {
            return std::fs::read_to_string(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1");
        }
        false
    }

    fn pids(&self, path: &str) -> Vec<i32> {
        let rel = path.trim_matches('/');
        let top = ["pids", "memory", "cpu,cpuacct", "freezer"]
            .iter()
            .find_map(|c| self.v1_dir(c, rel))
            .or_else(|| self.v2_dir(rel))
            .or_else(|| {
                let d = self.root.join(rel);
                d.join("cgroup.procs").exists().then_some(d)
            });
        let mut out = Vec::new();
        let mut stack: Vec<PathBuf> = top.into_iter().collect();
        while let Some(d) = stack.pop() {
            if let Ok(t) = std::fs::read_to_string(d.join("cgroup.procs")) {
                out.extend(t.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
            if let Ok(rd) = std::fs::read_dir(&d) {
                stack.extend(
                    rd.flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    fn stats(&self, path: &str) -> CgroupStats {
        let rel = path.trim_matches('/');
        let mut s = CgroupStats::default();
        if let Some(d) = self.v1_dir("memory", rel) {
            let usage = read_u64(&d.join("memory.usage_in_bytes")).unwrap_or(0);
            let stat = read_small(d.join("memory.stat")).unwrap_or_default();
            let inactive = keyed(&stat, "total_inactive_file").unwrap_or(0);
            s.memory_usage = usage.saturating_sub(inactive);
            s.memory_limit = read_limit(&d.join("memory.limit_in_bytes"));
            if let Some(c) = ["cpuacct", "cpu,cpuacct"]
                .iter()
                .find_map(|c| self.v1_dir(c, rel))
            {
                s.cpu_usage_ns = read_u64(&c.join("cpuacct.usage")).unwrap_or(0);
            }
            if let Some(p) = self.v1_dir("pids", rel) {
                s.pids = read_u64(&p.join("pids.current")).unwrap_or(0);
                s.pids_limit = read_limit(&p.join("pids.max"));
            }
            if let Some(b) = self.v1_dir("blkio", rel) {
                let t = read_small(b.join("blkio.throttle.io_service_bytes")).unwrap_or_default();
                for l in t.lines() {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    if let [_, op, v] = f[..] {
                        let v: u64 = v.parse().unwrap_or(0);
                        match op {
                            "Read" => s.blkio_read = s.blkio_read.saturating_add(v),
                            "Write" => s.blkio_write = s.blkio_write.saturating_add(v),
                            _ => {}
                        }
                    }
                }
            }
            return s;
        }
        let d = [self.root.join(rel), self.root.join("unified").join(rel)]
            .into_iter()
            .find(|d| d.join("memory.current").exists());
        if let Some(d) = d {
            let usage = read_u64(&d.join("memory.current")).unwrap_or(0);
            let stat = read_small(d.join("memory.stat")).unwrap_or_default();
            s.memory_usage = usage.saturating_sub(keyed(&stat, "inactive_file").unwrap_or(0));
            s.memory_limit = read_limit(&d.join("memory.max"));
            let cpu = read_small(d.join("cpu.stat")).unwrap_or_default();
            s.cpu_usage_ns = keyed(&cpu, "usage_usec").unwrap_or(0).saturating_mul(1000);
            s.pids = read_u64(&d.join("pids.current")).unwrap_or(0);
            s.pids_limit = read_limit(&d.join("pids.max"));
            let io = read_small(d.join("io.stat")).unwrap_or_default();
            for l in io.lines() {
                for kv in l.split_whitespace().skip(1) {
                    if let Some(v) = kv.strip_prefix("rbytes=") {
                        s.blkio_read = s.blkio_read.saturating_add(v.parse().unwrap_or(0));
                    } else if let Some(v) = kv.strip_prefix("wbytes=") {
                        s.blkio_write = s.blkio_write.saturating_add(v.parse().unwrap_or(0));
                    }
                }
            }
        }
        s
    }

    fn oom_killed(&self, path: &str) -> bool {
        let rel = path.trim_matches('/');
        // cgroup v1
        if let Ok(s) = std::fs::read_to_string(
            self.root
                .join("memory")
                .join(rel)
                .join("memory.oom_control"),
        ) {
            return oom_count_positive(&s);
        }
        // cgroup v2
        if let Ok(s) = std::fs::read_to_string(self.root.join(rel).join("memory.events")) {
            return oom_count_positive(&s);
        }
        false
    }

    fn remove(&self, path: &str) {
        if path.trim_matches('/').is_empty() {
            return;
        }
        // Children first: a v1 hierarchy's `memory/<rel>` comes after the v2 `<rel>` only if
        // they are distinct directories, so order does not matter between hierarchies.
        for d in self.dirs(path) {
            if d.is_dir() {
                // A cgroup dies only once its last process has: retry briefly.
                for _ in 0..20 {
                    match std::fs::remove_dir(&d) {
                        Ok(()) => break,
                        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        Err(_) => break,
                    }
                }
            }
        }
    }

    fn apply(&self, path: &str, l: &Limits) -> std::io::Result<()> {
        self.write_limits(path, l)
    }

    fn contains(&self, pid: i32, path: &str) -> bool {
        let want = format!("/{}", path.trim_matches('/'));
        let Ok(text) = std::fs::read_to_string(self.proc.join(pid.to_string()).join("cgroup"))
        else {
            return false;
        };
        // Lines are `hierarchy-id:controllers:path`; the process may be in a child cgroup.
        text.lines().any(|l| {
            l.splitn(3, ':').nth(2).is_some_and(|p| {
                p == want
                    || p.strip_prefix(want.as_str())
                        .is_some_and(|r| r.starts_with('/'))
            })
        })
    }
}

#[cfg(test)]
mod tests;
