//! Containers' cgroups after the runtime made them: the OOM-kill check and removal, through
//! one interface for cgroup v1, v2 and hybrid hosts.
//!
//! The runtime creates the cgroups and applies the limits (from the spec's `cgroupsPath`);
//! berth only needs to read the OOM counter when a container exits, tell whether a process
//! belongs to a container, and make sure no cgroup outlives its container.

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

impl Cgroups for CgroupFs {
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

    #[test]
    fn remove_never_touches_the_root() {
        let (t, cg) = fs();
        std::fs::create_dir_all(t.path().join("cg/memory")).unwrap();
        cg.remove("/");
        assert!(t.path().join("cg/memory").exists());
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
