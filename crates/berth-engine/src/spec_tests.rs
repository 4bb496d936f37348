//! Unit tests of OCI runtime spec generation ([`crate::spec::build`]): a container
//! configuration in, Docker's defaults and the configured settings out. No root needed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use berth_net::{NetSetup, NetworkMode};
use oci_spec::runtime::{LinuxNamespaceType, Mount, PosixRlimitType, Spec};

use crate::config::{Bind, ContainerConfig, Tmpfs};
use crate::security::{SeccompChoice, Ulimit};
use crate::spec::{build, SpecInputs, DEFAULT_CAPS, DEFAULT_SHM_SIZE, MASKED, READONLY};
use crate::testutil;
use crate::user::ResolvedUser;

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn user() -> ResolvedUser {
    ResolvedUser {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![27, 1000],
        home: "/home/app".into(),
    }
}

fn net() -> NetSetup {
    NetSetup {
        netns_path: Some(PathBuf::from("/run/berth/netns/x")),
        hosts_file: PathBuf::from("/store/containers/x/hosts"),
        resolv_conf: PathBuf::from("/store/containers/x/resolv.conf"),
        hostname_file: PathBuf::from("/store/containers/x/hostname"),
        ..Default::default()
    }
}

fn config() -> ContainerConfig {
    let mut c = testutil::config();
    c.args = vec!["/bin/sh".into(), "-c".into(), "echo hi".into()];
    c.env = vec!["PATH=/usr/bin:/bin".into(), "A=1".into()];
    c.hostname = "web1".into();
    c.network = NetworkMode::Networks(vec![berth_net::Attachment {
        network: "bridge".into(),
        aliases: vec![],
    }]);
    c
}

/// The spec for `cfg` with the test user and network setup.
fn spec_of(cfg: &ContainerConfig) -> Spec {
    spec_with(cfg, &net(), None, None)
}

fn spec_with(
    cfg: &ContainerConfig,
    net: &NetSetup,
    join_netns: Option<&str>,
    init: Option<&Path>,
) -> Spec {
    let u = user();
    let inp = SpecInputs {
        id: ID,
        rootfs: Path::new("/store/containers/x/rootfs"),
        user: &u,
        net,
        join_netns: join_netns.map(str::to_string),
        cgroup_parent: "/berth/",
        init_binary: init,
        join_pidns: None,
        join_ipc: None,
        shm_source: None,
    };
    build(cfg, &inp).unwrap()
}

fn mounts(s: &Spec) -> &[Mount] {
    s.mounts().as_deref().unwrap()
}

fn mount<'a>(s: &'a Spec, dst: &str) -> &'a Mount {
    mounts(s)
        .iter()
        .find(|m| m.destination() == Path::new(dst))
        .unwrap_or_else(|| panic!("no mount at {dst}"))
}

fn opts(m: &Mount) -> Vec<&str> {
    m.options()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(String::as_str)
        .collect()
}

fn env(s: &Spec) -> Vec<String> {
    s.process().as_ref().unwrap().env().clone().unwrap()
}

fn caps(s: &Spec) -> (HashSet<String>, HashSet<String>, HashSet<String>) {
    let c = s
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .clone()
        .unwrap();
    let names = |set: Option<&oci_spec::runtime::Capabilities>| -> HashSet<String> {
        // oci-spec prints `SYS_ADMIN`; Docker and the spec's JSON say `CAP_SYS_ADMIN`.
        set.map(|s| s.iter().map(|c| format!("CAP_{c}")).collect())
            .unwrap_or_default()
    };
    assert!(
        c.inheritable().as_ref().is_none_or(|s| s.is_empty()),
        "no inheritable capabilities, as in Docker"
    );
    assert!(
        c.ambient().as_ref().is_none_or(|s| s.is_empty()),
        "no ambient capabilities, as in Docker"
    );
    (
        names(c.bounding().as_ref()),
        names(c.effective().as_ref()),
        names(c.permitted().as_ref()),
    )
}

fn cap_set(names: &[&str]) -> HashSet<String> {
    crate::capabilities::to_oci(&names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .iter()
        .map(|c| format!("CAP_{c}"))
        .collect()
}

fn namespaces(s: &Spec) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
    s.linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .clone()
        .unwrap()
        .iter()
        .map(|n| (n.typ(), n.path().clone()))
        .collect()
}

#[test]
fn docker_default_mounts() {
    let s = spec_of(&config());
    let want = [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/sys", "sysfs"),
        ("/sys/fs/cgroup", "cgroup"),
        ("/dev/mqueue", "mqueue"),
        ("/dev/shm", "tmpfs"),
    ];
    for (i, (dst, typ)) in want.iter().enumerate() {
        let m = &mounts(&s)[i];
        assert_eq!(m.destination(), Path::new(dst), "mount {i}");
        assert_eq!(m.typ().as_deref(), Some(*typ), "type of {dst}");
    }
    assert!(opts(mount(&s, "/sys")).contains(&"ro"));
    assert!(opts(mount(&s, "/sys/fs/cgroup")).contains(&"ro"));
    let pts = opts(mount(&s, "/dev/pts"));
    for o in ["newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] {
        assert!(pts.contains(&o), "devpts option {o}");
    }
    let shm = opts(mount(&s, "/dev/shm"));
    assert!(shm.contains(&format!("size={DEFAULT_SHM_SIZE}").as_str()));
    assert_eq!(DEFAULT_SHM_SIZE, 64 * 1024 * 1024);
    for o in ["nosuid", "noexec", "nodev", "mode=1777"] {
        assert!(shm.contains(&o), "shm option {o}");
    }
    // The network's generated files are bound in.
    for (dst, src) in [
        ("/etc/hosts", "/store/containers/x/hosts"),
        ("/etc/resolv.conf", "/store/containers/x/resolv.conf"),
        ("/etc/hostname", "/store/containers/x/hostname"),
    ] {
        let m = mount(&s, dst);
        assert_eq!(m.source().as_deref(), Some(Path::new(src)));
        assert_eq!(m.typ().as_deref(), Some("bind"));
    }
}

#[test]
fn shm_size_and_user_binds_override_generated_files() {
    let mut c = config();
    c.security.shm_size = Some(1 << 30);
    c.binds.push(Bind {
        source: "/host/hosts".into(),
        destination: "/etc/hosts".into(),
        read_only: true,
        propagation: None,
    });
    let s = spec_of(&c);
    assert!(opts(mount(&s, "/dev/shm")).contains(&"size=1073741824"));
    let hosts: Vec<&Mount> = mounts(&s)
        .iter()
        .filter(|m| m.destination() == Path::new("/etc/hosts"))
        .collect();
    assert_eq!(hosts.len(), 1, "only the user's bind at /etc/hosts");
    assert_eq!(hosts[0].source().as_deref(), Some(Path::new("/host/hosts")));
    assert!(opts(hosts[0]).contains(&"ro"));
}

#[test]
fn tmpfs_is_noexec_unless_asked() {
    let mut c = config();
    c.tmpfs = vec![
        Tmpfs {
            destination: "/run".into(),
            options: vec!["size=1m".into()],
        },
        Tmpfs {
            destination: "/x".into(),
            options: vec!["exec".into()],
        },
    ];
    let s = spec_of(&c);
    let run = opts(mount(&s, "/run"));
    assert!(run.contains(&"noexec") && run.contains(&"size=1m") && run.contains(&"nosuid"));
    let x = opts(mount(&s, "/x"));
    assert!(!x.contains(&"noexec") && !x.contains(&"exec"));
}

#[test]
fn masked_and_readonly_paths() {
    let s = spec_of(&config());
    let linux = s.linux().as_ref().unwrap();
    let masked = linux.masked_paths().clone().unwrap();
    let ro = linux.readonly_paths().clone().unwrap();
    assert_eq!(
        masked,
        MASKED.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    );
    assert_eq!(
        ro,
        READONLY.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    );
    for p in [
        "/proc/kcore",
        "/proc/keys",
        "/sys/firmware",
        "/proc/timer_list",
    ] {
        assert!(masked.iter().any(|m| m == p), "{p} masked");
    }
    for p in ["/proc/sys", "/proc/sysrq-trigger", "/proc/bus", "/proc/irq"] {
        assert!(ro.iter().any(|m| m == p), "{p} read-only");
    }
    assert!(linux.seccomp().is_some(), "default seccomp profile");
    assert_eq!(linux.rootfs_propagation().as_deref(), Some("private"));
}

#[test]
fn privileged_has_no_masks_no_seccomp_and_all_caps() {
    let mut c = config();
    c.security.privileged = true;
    let s = spec_of(&c);
    let linux = s.linux().as_ref().unwrap();
    assert!(linux.masked_paths().is_none());
    assert!(linux.readonly_paths().is_none());
    assert!(linux.seccomp().is_none());
    assert!(opts(mount(&s, "/sys")).contains(&"rw"));
    let (bounding, _, _) = caps(&s);
    assert!(bounding.len() > DEFAULT_CAPS.len());
    assert!(bounding.contains("CAP_SYS_ADMIN"));
}

#[test]
fn default_capabilities_are_dockers() {
    let want = cap_set(DEFAULT_CAPS);
    assert_eq!(want.len(), 14);
    // A non-root user: the bounding set only (Docker's rule since 23.0).
    let s = spec_of(&config());
    let (bounding, effective, permitted) = caps(&s);
    assert_eq!(bounding, want);
    assert!(
        effective.is_empty() && permitted.is_empty(),
        "{effective:?}"
    );
    assert!(!bounding.contains("CAP_SYS_ADMIN"));
    // root: effective and permitted too.
    let root = ResolvedUser {
        uid: 0,
        gid: 0,
        additional_gids: vec![],
        home: "/root".into(),
    };
    let mut s = spec_of(&config());
    let sec = crate::security::SecurityConfig::default();
    let p = crate::spec::process(&sec, vec!["true".into()], vec![], "/", false, &root, &[], 0);
    s.set_process(Some(p.unwrap()));
    let (bounding, effective, permitted) = caps(&s);
    assert_eq!(bounding, want);
    assert_eq!(effective, want);
    assert_eq!(permitted, want);
}

#[test]
fn cap_add_and_drop() {
    let mut c = config();
    c.security.cap_add = vec!["CAP_NET_ADMIN".into()];
    c.security.cap_drop = vec!["CAP_CHOWN".into(), "CAP_NET_RAW".into()];
    let (bounding, _, _) = caps(&spec_of(&c));
    assert!(bounding.contains("CAP_NET_ADMIN"));
    assert!(!bounding.contains("CAP_CHOWN"));
    assert!(!bounding.contains("CAP_NET_RAW"));
    assert_eq!(bounding.len(), DEFAULT_CAPS.len() - 1);
}

#[test]
fn rlimits_keep_the_hosts_unless_asked() {
    let s = spec_of(&config());
    assert!(s.process().as_ref().unwrap().rlimits().is_none());

    let mut c = config();
    c.security.ulimits = vec![
        Ulimit {
            name: "nofile".into(),
            soft: 1024,
            hard: 4096,
        },
        Ulimit {
            name: "core".into(),
            soft: -1,
            hard: -1,
        },
    ];
    let s = spec_of(&c);
    let r = s.process().as_ref().unwrap().rlimits().clone().unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].typ(), PosixRlimitType::RlimitNofile);
    assert_eq!((r[0].soft(), r[0].hard()), (1024, 4096));
    assert_eq!(r[1].typ(), PosixRlimitType::RlimitCore);
    assert_eq!(
        (r[1].soft(), r[1].hard()),
        (u64::MAX, u64::MAX),
        "-1 is unlimited"
    );

    c.security.ulimits[0].name = "bogus".into();
    let u = user();
    let n = net();
    let inp = SpecInputs {
        id: ID,
        rootfs: Path::new("/r"),
        user: &u,
        net: &n,
        join_netns: None,
        cgroup_parent: "/berth",
        init_binary: None,
        join_pidns: None,
        join_ipc: None,
        shm_source: None,
    };
    let e = build(&c, &inp).unwrap_err().to_string();
    assert!(e.contains("unknown ulimit \"bogus\""), "{e}");
}

#[test]
fn environment_hostname_home_and_term() {
    let s = spec_of(&config());
    assert_eq!(
        env(&s),
        [
            "HOSTNAME=web1",
            "PATH=/usr/bin:/bin",
            "A=1",
            "HOME=/home/app"
        ]
    );

    let mut c = config();
    c.tty = true;
    c.env.push("HOME=/root".into());
    c.env.push("HOSTNAME=mine".into());
    let e = env(&spec_of(&c));
    assert!(e.contains(&"TERM=xterm".to_string()));
    assert!(e.contains(&"HOME=/root".to_string()));
    assert!(!e.contains(&"HOME=/home/app".to_string()));
    assert!(
        !e.iter().any(|v| v == "HOSTNAME=web1"),
        "the user's HOSTNAME wins"
    );
    assert!(s.process().as_ref().unwrap().terminal().is_none_or(|t| !t));
    assert_eq!(
        spec_of(&c).process().as_ref().unwrap().terminal(),
        Some(true)
    );

    let mut c = config();
    c.env.push("TERM=dumb".into());
    c.tty = true;
    let e = env(&spec_of(&c));
    assert_eq!(e.iter().filter(|v| v.starts_with("TERM=")).count(), 1);
}

#[test]
fn user_cwd_and_args() {
    let s = spec_of(&config());
    let p = s.process().as_ref().unwrap();
    assert_eq!(p.user().uid(), 1000);
    assert_eq!(p.user().gid(), 1000);
    assert_eq!(p.user().additional_gids().clone().unwrap(), [27, 1000]);
    assert_eq!(p.cwd(), Path::new("/"), "empty working dir is /");
    assert_eq!(p.args().clone().unwrap(), ["/bin/sh", "-c", "echo hi"]);
    assert!(
        p.no_new_privileges().is_none(),
        "off unless asked, as in Docker"
    );

    let mut c = config();
    c.working_dir = "/srv/app".into();
    c.security.no_new_privileges = true;
    let s = spec_of(&c);
    let p = s.process().as_ref().unwrap();
    assert_eq!(p.cwd(), Path::new("/srv/app"));
    assert_eq!(p.no_new_privileges(), Some(true));
}

#[test]
fn init_wraps_the_command_and_is_mounted() {
    let mut c = config();
    c.init = true;
    let s = spec_with(
        &c,
        &net(),
        None,
        Some(Path::new("/usr/lib/berth/berth-init")),
    );
    let p = s.process().as_ref().unwrap();
    assert_eq!(
        p.args().clone().unwrap(),
        ["/sbin/berth-init", "--", "/bin/sh", "-c", "echo hi"]
    );
    let m = mount(&s, "/sbin/berth-init");
    assert_eq!(
        m.source().as_deref(),
        Some(Path::new("/usr/lib/berth/berth-init"))
    );
    assert!(opts(m).contains(&"ro"));
    // Without an init binary the command is left alone.
    let s = spec_with(&c, &net(), None, None);
    assert_eq!(
        s.process().as_ref().unwrap().args().clone().unwrap()[0],
        "/bin/sh"
    );
}

#[test]
fn hostname_domainname_and_namespaces() {
    let mut c = config();
    c.domainname = "example.org".into();
    let s = spec_of(&c);
    assert_eq!(s.hostname().as_deref(), Some("web1"));
    assert_eq!(s.domainname().as_deref(), Some("example.org"));
    let ns = namespaces(&s);
    for t in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ] {
        assert!(ns.contains(&(t, None)), "{t:?} namespace");
    }
    assert!(ns.contains(&(
        LinuxNamespaceType::Network,
        Some(PathBuf::from("/run/berth/netns/x"))
    )));
    assert!(!ns.iter().any(|(t, _)| *t == LinuxNamespaceType::User));

    // --network container:X joins that namespace.
    let s = spec_with(&config(), &net(), Some("/proc/42/ns/net"), None);
    assert!(namespaces(&s).contains(&(
        LinuxNamespaceType::Network,
        Some(PathBuf::from("/proc/42/ns/net"))
    )));

    // none: a fresh, empty network namespace.
    let mut c = config();
    c.network = NetworkMode::None;
    let s = spec_with(&c, &NetSetup::default(), None, None);
    assert!(namespaces(&s).contains(&(LinuxNamespaceType::Network, None)));
    assert!(
        !mounts(&s)
            .iter()
            .any(|m| m.destination() == Path::new("/etc/hosts")),
        "no generated files, no bind"
    );

    // host: no network namespace and no hostname of its own.
    let mut c = config();
    c.network = NetworkMode::Host;
    let s = spec_with(&c, &NetSetup::default(), None, None);
    assert!(!namespaces(&s)
        .iter()
        .any(|(t, _)| *t == LinuxNamespaceType::Network));
    assert!(s.hostname().is_none());
}

#[test]
fn resources_cgroup_path_and_root() {
    let mut c = config();
    c.memory = Some(256 << 20);
    c.nano_cpus = Some(1_500_000_000);
    c.pids_limit = Some(100);
    c.read_only = true;
    let s = spec_of(&c);
    let linux = s.linux().as_ref().unwrap();
    assert_eq!(
        linux.cgroups_path().as_deref(),
        Some(Path::new(&format!("/berth/{ID}")))
    );
    let r = linux.resources().as_ref().unwrap();
    let mem = r.memory().as_ref().unwrap();
    assert_eq!(mem.limit(), Some(256 << 20));
    assert_eq!(
        mem.swap(),
        Some(512 << 20),
        "without --memory-swap, as much swap as memory (Docker's default)"
    );
    let cpu = r.cpu().as_ref().unwrap();
    assert_eq!(cpu.quota(), Some(150_000));
    assert_eq!(cpu.period(), Some(100_000));
    assert_eq!(r.pids().as_ref().unwrap().limit(), 100);
    let devices = r.devices().clone().unwrap();
    assert!(!devices[0].allow(), "device cgroup: deny all first");
    assert!(devices.len() > 1, "then Docker's default device rules");
    let root = s.root().as_ref().unwrap();
    assert_eq!(root.path(), Path::new("/store/containers/x/rootfs"));
    assert_eq!(root.readonly(), Some(true));

    // No limits given: none in the spec.
    let s = spec_of(&config());
    let r = s.linux().as_ref().unwrap().resources().clone().unwrap();
    assert!(r.memory().is_none() && r.cpu().is_none() && r.pids().is_none());
}

/// The spec carries the AppArmor profile [`crate::apparmor::profile_for`] chooses on this host
/// (none without AppArmor), for the default, a named profile and `--privileged`.
#[test]
fn apparmor_profile_follows_the_host() {
    let host = crate::apparmor::host_supports();
    let mut c = config();
    for (name, privileged) in [(None, false), (Some("custom"), false), (None, true)] {
        c.security.apparmor = name.map(str::to_string);
        c.security.privileged = privileged;
        let s = spec_of(&c);
        assert_eq!(
            s.process().as_ref().unwrap().apparmor_profile().clone(),
            crate::apparmor::profile_for(&c.security, host),
            "{name:?} privileged={privileged}"
        );
    }
}

#[test]
fn sysctls_and_unconfined_seccomp() {
    let mut c = config();
    c.security
        .sysctls
        .insert("net.ipv4.ip_forward".into(), "1".into());
    c.security.seccomp = SeccompChoice::Unconfined;
    let s = spec_of(&c);
    let linux = s.linux().as_ref().unwrap();
    assert_eq!(
        linux
            .sysctl()
            .as_ref()
            .unwrap()
            .get("net.ipv4.ip_forward")
            .map(String::as_str),
        Some("1")
    );
    assert!(linux.seccomp().is_none());
    assert!(
        linux.masked_paths().is_some(),
        "unconfined seccomp keeps the masks"
    );
}

#[test]
fn resources_and_namespace_modes() {
    let mut c = config();
    c.memory = Some(64 << 20);
    c.resources.memory_swap = Some(128 << 20);
    c.resources.memory_reservation = Some(32 << 20);
    c.resources.cpu_shares = Some(512);
    c.resources.cpu_period = Some(50_000);
    c.resources.cpu_quota = Some(25_000);
    c.resources.cpuset_cpus = Some("0".into());
    c.resources.oom_score_adj = Some(100);
    c.resources.kernel_memory = Some(1 << 30);
    c.namespaces.pid = Some("host".into());
    c.namespaces.ipc = Some("none".into());
    c.namespaces.uts = Some("host".into());
    c.namespaces.cgroupns = Some("host".into());
    let v = serde_json::to_value(spec_of(&c)).unwrap();
    let r = &v["linux"]["resources"];
    assert_eq!(r["memory"]["limit"], 64 << 20);
    assert_eq!(r["memory"]["swap"], 128 << 20);
    assert_eq!(r["memory"]["reservation"], 32 << 20);
    assert!(r["memory"].get("kernel").is_none());
    assert_eq!(r["cpu"]["shares"], 512);
    assert_eq!(r["cpu"]["quota"], 25_000);
    assert_eq!(r["cpu"]["period"], 50_000);
    assert_eq!(r["cpu"]["cpus"], "0");
    assert_eq!(v["process"]["oomScoreAdj"], 100);
    let kinds: Vec<String> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap().to_string())
        .collect();
    assert!(kinds.contains(&"ipc".to_string()), "{kinds:?}");
    for gone in ["pid", "uts", "cgroup"] {
        assert!(!kinds.contains(&gone.to_string()), "{kinds:?}");
    }
    assert!(v.get("hostname").is_none());
    assert!(!v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["destination"] == "/dev/shm"));
}
