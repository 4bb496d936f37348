//! cgroup v1 and v2 files in a temporary directory: OOM, removal, limits, freezer, stats,
//! membership.

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
