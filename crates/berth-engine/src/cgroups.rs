//! Containers' cgroups after the runtime made them: the OOM-kill check and removal, through
//! one interface for cgroup v1, v2 and hybrid hosts.
//!
//! The runtime creates the cgroups and applies the limits (from the spec's `cgroupsPath` and
//! `linux.resources`); berth writes the same limits again through [`Cgroups::apply`] once the
//! runtime created the cgroup (so they hold whichever runtime runs the container, and
//! `update` can change them later), reads the OOM counter when a container exits, tells
//! whether a process belongs to a container, and makes sure no cgroup outlives its container.

use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Cgroup limits in Docker's units (bytes, microseconds, shares), as given to `run` and
/// `update`. `None` leaves a setting alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// `--memory` in bytes.
    pub memory: Option<i64>,
    /// `--memory-swap`: memory plus swap in bytes (-1: unlimited swap).
    pub memory_swap: Option<i64>,
    /// `--memory-reservation` in bytes (v2: `memory.low`).
    pub memory_reservation: Option<i64>,
    /// `--memory-swappiness` 0–100 (v1 only).
    pub memory_swappiness: Option<u64>,
    /// `--oom-kill-disable` (v1 only).
    pub oom_kill_disable: bool,
    /// `--cpu-shares` (v2: converted to `cpu.weight`).
    pub cpu_shares: Option<u64>,
    /// CFS period in µs.
    pub cpu_period: Option<u64>,
    /// CFS quota in µs (-1: none).
    pub cpu_quota: Option<i64>,
    /// `--cpuset-cpus`.
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems`.
    pub cpuset_mems: Option<String>,
    /// `--pids-limit` (≤ 0: unlimited).
    pub pids_limit: Option<i64>,
    /// `--blkio-weight` 10–1000.
    pub blkio_weight: Option<u16>,
}

impl Limits {
    /// The limits of a container's configuration (`--cpus` becomes quota/period with
    /// Docker's 100 ms period).
    pub fn from_config(cfg: &crate::config::ContainerConfig) -> Limits {
        let r = &cfg.resources;
        let (mut period, mut quota) = (r.cpu_period, r.cpu_quota);
        if let Some(n) = cfg.nano_cpus {
            period = Some(100_000);
            quota = Some(n / 10_000);
        }
        Limits {
            memory: cfg.memory.filter(|m| *m > 0),
            memory_swap: r.memory_swap,
            memory_reservation: r.memory_reservation,
            memory_swappiness: r.memory_swappiness,
            oom_kill_disable: r.oom_kill_disable,
            cpu_shares: r.cpu_shares,
            cpu_period: period,
            cpu_quota: quota,
            cpuset_cpus: r.cpuset_cpus.clone(),
            cpuset_mems: r.cpuset_mems.clone(),
            pids_limit: cfg.pids_limit,
            blkio_weight: r.blkio_weight,
        }
    }
}

/// cgroup v2's `cpu.weight` for v1 shares, the conversion of crun, runc (≥ 1.3) and youki:
/// a quadratic in log2(shares) through (2 → 1), (1024 → 100, both defaults) and
/// (262144 → 10000); 0 (unset) gives the default 100.
pub fn shares_to_weight(shares: u64) -> u64 {
    match shares {
        0 => 100,
        1..=2 => 1,
        262_144.. => 10_000,
        _ => {
            #[allow(clippy::cast_precision_loss)] // shares < 2^18: exact in an f64
            let l = (shares as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            // 1 ≤ weight ≤ 10000 here, so the conversion back is exact.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let w = 10f64.powf(exponent).ceil() as u64;
            w.clamp(1, 10_000)
        }
    }
}

fn write_file(dir: &Path, file: &str, value: &str) -> std::io::Result<()> {
    let p = dir.join(file);
    std::fs::write(&p, value).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("writing {value:?} to {}: {e}", p.display()),
        )
    })
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
    let t = std::fs::read_to_string(p).ok()?;
    let t = t.trim();
    if t == "max" {
        return None;
    }
    t.parse::<u64>().ok().filter(|v| *v < (1u64 << 62))
}

fn read_u64(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
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
            let stat = std::fs::read_to_string(d.join("memory.stat")).unwrap_or_default();
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
                let t = std::fs::read_to_string(b.join("blkio.throttle.io_service_bytes"))
                    .unwrap_or_default();
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
            let stat = std::fs::read_to_string(d.join("memory.stat")).unwrap_or_default();
            s.memory_usage = usage.saturating_sub(keyed(&stat, "inactive_file").unwrap_or(0));
            s.memory_limit = read_limit(&d.join("memory.max"));
            let cpu = std::fs::read_to_string(d.join("cpu.stat")).unwrap_or_default();
            s.cpu_usage_ns = keyed(&cpu, "usage_usec").unwrap_or(0).saturating_mul(1000);
            s.pids = read_u64(&d.join("pids.current")).unwrap_or(0);
            s.pids_limit = read_limit(&d.join("pids.max"));
            let io = std::fs::read_to_string(d.join("io.stat")).unwrap_or_default();
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
        let rel = path.trim_matches('/');
        if rel.is_empty() {
            return Ok(());
        }
        let v2 = self.root.join("cgroup.controllers").exists();
        if v2 {
            let d = self.root.join(rel);
            if !d.is_dir() {
                return Ok(());
            }
            if let Some(m) = l.memory {
                write_file(&d, "memory.max", &m.to_string())?;
                if let Some(sw) = l.memory_swap {
                    let v = if sw < 0 {
                        "max".to_string()
                    } else {
                        (sw - m).max(0).to_string()
                    };
                    write_file(&d, "memory.swap.max", &v)?;
                }
            }
            if let Some(v) = l.memory_reservation {
                write_file(&d, "memory.low", &v.to_string())?;
            }
            if let Some(sh) = l.cpu_shares {
                write_file(&d, "cpu.weight", &shares_to_weight(sh).to_string())?;
            }
            if l.cpu_quota.is_some() || l.cpu_period.is_some() {
                let q = match l.cpu_quota {
                    Some(q) if q > 0 => q.to_string(),
                    _ => "max".to_string(),
                };
                let p = l.cpu_period.unwrap_or(100_000);
                write_file(&d, "cpu.max", &format!("{q} {p}"))?;
            }
            if let Some(c) = &l.cpuset_cpus {
                write_file(&d, "cpuset.cpus", c)?;
            }
            if let Some(m) = &l.cpuset_mems {
                write_file(&d, "cpuset.mems", m)?;
            }
            if let Some(p) = l.pids_limit {
                let v = if p > 0 { p.to_string() } else { "max".into() };
                write_file(&d, "pids.max", &v)?;
            }
            if let Some(w) = l.blkio_weight {
                if d.join("io.bfq.weight").exists() {
                    write_file(&d, "io.bfq.weight", &w.to_string())?;
                } else {
                    write_file(&d, "io.weight", &format!("default {w}"))?;
                }
            }
            return Ok(());
        }
        let dir = |ctrl: &str| -> Option<PathBuf> {
            let d = self.root.join(ctrl).join(rel);
            d.is_dir().then_some(d)
        };
        if let Some(d) = dir("memory") {
            if let Some(m) = l.memory {
                // memory + swap must stay ≥ memory at every step: raise it first (it may
                // fail while below the new memory value), then set memory, then set it again.
                let memsw = d.join("memory.memsw.limit_in_bytes").exists();
                let sw = l.memory_swap.map(|s| if s < 0 { -1 } else { s });
                if let (true, Some(sw)) = (memsw, sw) {
                    let _ = write_file(&d, "memory.memsw.limit_in_bytes", &sw.to_string());
                }
                write_file(&d, "memory.limit_in_bytes", &m.to_string())?;
                if let (true, Some(sw)) = (memsw, sw) {
                    write_file(&d, "memory.memsw.limit_in_bytes", &sw.to_string())?;
                }
            }
            if let Some(v) = l.memory_reservation {
                write_file(&d, "memory.soft_limit_in_bytes", &v.to_string())?;
            }
            if let Some(v) = l.memory_swappiness {
                write_file(&d, "memory.swappiness", &v.to_string())?;
            }
            if l.oom_kill_disable {
                write_file(&d, "memory.oom_control", "1")?;
            }
        }
        if let Some(d) = dir("cpu") {
            if let Some(sh) = l.cpu_shares {
                write_file(&d, "cpu.shares", &sh.to_string())?;
            }
            if let Some(p) = l.cpu_period {
                write_file(&d, "cpu.cfs_period_us", &p.to_string())?;
            }
            if let Some(q) = l.cpu_quota {
                write_file(&d, "cpu.cfs_quota_us", &q.to_string())?;
            }
        }
        if let Some(d) = dir("cpuset") {
            if let Some(c) = &l.cpuset_cpus {
                write_file(&d, "cpuset.cpus", c)?;
            }
            if let Some(m) = &l.cpuset_mems {
                write_file(&d, "cpuset.mems", m)?;
            }
        }
        if let (Some(d), Some(p)) = (dir("pids"), l.pids_limit) {
            let v = if p > 0 { p.to_string() } else { "max".into() };
            write_file(&d, "pids.max", &v)?;
        }
        if let (Some(d), Some(w)) = (dir("blkio"), l.blkio_weight) {
            if d.join("blkio.weight").exists() {
                write_file(&d, "blkio.weight", &w.to_string())?;
            } else {
                write_file(&d, "blkio.bfq.weight", &w.to_string())?;
            }
        }
        Ok(())
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
mod tests {
    use super::*;

    fn fs() -> (tempfile::TempDir, CgroupFs) {
        let t = tempfile::tempdir().unwrap();
        let cg = CgroupFs::at(&t.path().join("cg"), &t.path().join("proc"));
        std::fs::create_dir_all(t.path().join("cg")).unwrap();
        (t, cg)
    }

    #[test]
    fn oom_from_v1_memory_controller() {
        let (t, cg) = fs();
        let d = t.path().join("cg/memory/berth/c1");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        )
        .unwrap();
        assert!(cg.oom_killed("/berth/c1"));
        std::fs::write(
            d.join("memory.oom_control"),
            "oom_kill_disable 0\noom_kill 0\n",
        )
        .unwrap();
        assert!(!cg.oom_killed("/berth/c1"));
    }

    #[test]
    fn oom_from_v2_memory_events() {
        let (t, cg) = fs();
        let d = t.path().join("cg/berth/c2");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n",
        )
        .unwrap();
        assert!(cg.oom_killed("berth/c2"));
        assert!(!cg.oom_killed("/berth/missing"));
    }

    #[test]
    fn remove_clears_every_hierarchy_and_nothing_else() {
        let (t, cg) = fs();
        for d in [
            "cg/memory/berth/c3",
            "cg/pids/berth/c3",
            "cg/unified/berth/c3",
            "cg/berth/c3",
            "cg/memory/berth/other",
        ] {
            std::fs::create_dir_all(t.path().join(d)).unwrap();
        }
        cg.remove("/berth/c3");
        for d in [
            "cg/memory/berth/c3",
            "cg/pids/berth/c3",
            "cg/unified/berth/c3",
            "cg/berth/c3",
        ] {
            assert!(!t.path().join(d).exists(), "{d} left behind");
        }
        assert!(t.path().join("cg/memory/berth/other").exists());
        assert!(t.path().join("cg/memory/berth").exists());
    }

    fn limits() -> Limits {
        Limits {
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            memory_reservation: Some(32 << 20),
            cpu_shares: Some(512),
            cpu_period: Some(50_000),
            cpu_quota: Some(25_000),
            cpuset_cpus: Some("0-1".into()),
            pids_limit: Some(-1),
            ..Default::default()
        }
    }

    #[test]
    fn apply_writes_v1_files() {
        let (t, cg) = fs();
        for c in ["memory", "cpu", "cpuset", "pids"] {
            let d = t.path().join("cg").join(c).join("berth/c5");
            std::fs::create_dir_all(&d).unwrap();
        }
        std::fs::write(
            t.path()
                .join("cg/memory/berth/c5/memory.memsw.limit_in_bytes"),
            "",
        )
        .unwrap();
        cg.apply("/berth/c5", &limits()).unwrap();
        let r = |f: &str| std::fs::read_to_string(t.path().join("cg").join(f)).unwrap();
        assert_eq!(r("memory/berth/c5/memory.limit_in_bytes"), "67108864");
        assert_eq!(
            r("memory/berth/c5/memory.memsw.limit_in_bytes"),
            "134217728"
        );
        assert_eq!(r("memory/berth/c5/memory.soft_limit_in_bytes"), "33554432");
        assert_eq!(r("cpu/berth/c5/cpu.shares"), "512");
        assert_eq!(r("cpu/berth/c5/cpu.cfs_quota_us"), "25000");
        assert_eq!(r("cpu/berth/c5/cpu.cfs_period_us"), "50000");
        assert_eq!(r("cpuset/berth/c5/cpuset.cpus"), "0-1");
        assert_eq!(r("pids/berth/c5/pids.max"), "max");
        // A container without cgroups (not created yet) is left alone.
        cg.apply("/berth/none", &limits()).unwrap();
        assert!(!t.path().join("cg/memory/berth/none").exists());
    }

    #[test]
    fn apply_writes_v2_files_in_v2_units() {
        let (t, cg) = fs();
        std::fs::write(t.path().join("cg/cgroup.controllers"), "cpu memory pids").unwrap();
        std::fs::create_dir_all(t.path().join("cg/berth/c6")).unwrap();
        let mut l = limits();
        l.memory_swap = Some(-1);
        l.pids_limit = Some(40);
        l.blkio_weight = Some(300);
        cg.apply("berth/c6", &l).unwrap();
        let r = |f: &str| std::fs::read_to_string(t.path().join("cg/berth/c6").join(f)).unwrap();
        assert_eq!(r("memory.max"), "67108864");
        assert_eq!(r("memory.swap.max"), "max");
        assert_eq!(r("memory.low"), "33554432");
        assert_eq!(r("cpu.weight"), "59");
        assert_eq!(r("cpu.max"), "25000 50000");
        assert_eq!(r("pids.max"), "40");
        assert_eq!(r("io.weight"), "default 300");
        l.memory_swap = Some(96 << 20);
        l.cpu_quota = Some(-1);
        cg.apply("berth/c6", &l).unwrap();
        assert_eq!(r("memory.swap.max"), (32u64 << 20).to_string());
        assert_eq!(r("cpu.max"), "max 50000");
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 100);
        assert_eq!(shares_to_weight(2048), 174);
        assert_eq!(shares_to_weight(0), 100);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn remove_never_touches_the_root() {
        let (t, cg) = fs();
        std::fs::create_dir_all(t.path().join("cg/memory")).unwrap();
        cg.remove("/");
        assert!(t.path().join("cg/memory").exists());
    }

    #[test]
    fn freezer_v1_and_v2() {
        let (t, cg) = fs();
        let d = t.path().join("cg/freezer/berth/f1");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("freezer.state"), "THAWED").unwrap();
        cg.set_frozen("/berth/f1", true).unwrap();
        assert!(cg.is_frozen("/berth/f1"));
        cg.set_frozen("/berth/f1", false).unwrap();
        assert!(!cg.is_frozen("/berth/f1"));
        // v2: a directory file cannot change cgroup.events, so only the write is checked.
        let d = t.path().join("cg/berth/f2");
        std::fs::create_dir_all(&d).unwrap();
        for (f, v) in [
            ("cgroup.procs", "7\n"),
            ("cgroup.freeze", "0"),
            ("cgroup.events", "populated 1\nfrozen 1\n"),
        ] {
            std::fs::write(d.join(f), v).unwrap();
        }
        cg.set_frozen("/berth/f2", true).unwrap();
        assert!(cg.is_frozen("/berth/f2"));
        assert_eq!(cg.pids("/berth/f2"), vec![7]);
        assert!(cg.set_frozen("/berth/none", true).is_err());
    }

    #[test]
    fn stats_from_v1_and_v2_files() {
        let (t, cg) = fs();
        let m = t.path().join("cg/memory/berth/s1");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("memory.usage_in_bytes"), "1000\n").unwrap();
        std::fs::write(m.join("memory.stat"), "cache 5\ntotal_inactive_file 100\n").unwrap();
        std::fs::write(m.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        let p = t.path().join("cg/pids/berth/s1");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("pids.current"), "3\n").unwrap();
        std::fs::write(p.join("pids.max"), "max\n").unwrap();
        let s = cg.stats("/berth/s1");
        assert_eq!(
            (s.memory_usage, s.memory_limit, s.pids, s.pids_limit),
            (900, None, 3, None)
        );
        let d = t.path().join("cg/berth/s2");
        std::fs::create_dir_all(&d).unwrap();
        for (f, v) in [
            ("memory.current", "2048\n"),
            ("memory.stat", "anon 1\ninactive_file 48\n"),
            ("memory.max", "4096\n"),
            ("cpu.stat", "usage_usec 5\nuser_usec 3\n"),
            ("pids.current", "2\n"),
            ("pids.max", "10\n"),
            ("io.stat", "8:0 rbytes=10 wbytes=20 rios=1 wios=2\n"),
        ] {
            std::fs::write(d.join(f), v).unwrap();
        }
        let s = cg.stats("/berth/s2");
        assert_eq!(s.memory_usage, 2000);
        assert_eq!(s.memory_limit, Some(4096));
        assert_eq!(s.cpu_usage_ns, 5000);
        assert_eq!((s.pids, s.pids_limit), (2, Some(10)));
        assert_eq!((s.blkio_read, s.blkio_write), (10, 20));
    }

    #[test]
    fn membership_is_by_whole_path_components() {
        let (t, cg) = fs();
        let p = t.path().join("proc/42");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(
            p.join("cgroup"),
            "12:memory:/berth/abc\n11:pids:/berth/abc/sub\n0::/\n",
        )
        .unwrap();
        assert!(cg.contains(42, "/berth/abc"));
        assert!(!cg.contains(42, "/berth/ab"));
        assert!(!cg.contains(43, "/berth/abc"));
    }
}
