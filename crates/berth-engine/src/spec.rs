//! Container configuration → OCI runtime spec (`config.json`), built from `oci-spec`'s typed
//! structures, with Docker's defaults: capabilities, masked and read-only paths, /dev, device
//! cgroup, seccomp profile (Docker's policy, see [`crate::seccomp`]), no_new_privs off.
//!
//! The same spec goes to the builtin runtime and to OCI runtime binaries. Mount destinations
//! are made safe (resolved inside the root) by [`crate::rootfs::secure_mounts`] before the
//! spec is written.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use berth_net::{NetSetup, NetworkMode};
use oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDevice,
    LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResourcesBuilder, LinuxThrottleDevice, LinuxThrottleDeviceBuilder,
    LinuxWeightDeviceBuilder, Mount, MountBuilder, PosixRlimit, PosixRlimitBuilder,
    PosixRlimitType, Process, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::config::ContainerConfig;
use crate::seccomp::Profile;
use crate::security::{parse_device_rule, SeccompChoice, SecurityConfig};
use crate::user::ResolvedUser;
use crate::{EngineError, Result};

pub use crate::capabilities::DEFAULT_CAPS;

/// Paths hidden from containers (Docker's list).
pub const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths mounted read-only in containers (Docker's list).
pub const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Docker's default /dev/shm size in bytes.
pub const DEFAULT_SHM_SIZE: i64 = 64 << 20;

/// Inputs to [`build`] that are only known at start time.
#[derive(Debug)]
pub struct SpecInputs<'a> {
    /// Container id (names its cgroup).
    pub id: &'a str,
    /// Host path of the mounted root filesystem.
    pub rootfs: &'a Path,
    /// The user the process runs as.
    pub user: &'a ResolvedUser,
    /// Network setup (namespace path, generated /etc files).
    pub net: &'a NetSetup,
    /// Network namespace of another container to join (`--network container:X`).
    pub join_netns: Option<String>,
    /// Parent cgroup of containers.
    pub cgroup_parent: &'a str,
    /// Path of a static init binary to mount at /sbin/berth-init when `--init` is used.
    pub init_binary: Option<&'a Path>,
    /// PID namespace of another container to join (`--pid container:X`: `/proc/PID/ns/pid`).
    pub join_pidns: Option<String>,
    /// IPC namespace of another container to join (`--ipc container:X`: `/proc/PID/ns/ipc`).
    pub join_ipc: Option<String>,
    /// A host directory to bind at /dev/shm instead of a fresh tmpfs: the tmpfs of a
    /// `--ipc shareable` container (its own, or its donor's for `--ipc container:X`).
    pub shm_source: Option<String>,
}

fn oci_err(e: oci_spec::OciSpecError) -> EngineError {
    EngineError::Other(format!("building the runtime spec: {e}"))
}

fn mount(dst: &str, typ: &str, src: &str, opts: &[&str]) -> Result<Mount> {
    MountBuilder::default()
        .destination(dst)
        .typ(typ)
        .source(src)
        .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(oci_err)
}

fn dev_rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> Result<LinuxDeviceCgroup> {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .access(access.to_string());
    if let Some(t) = typ {
        b = b.typ(t);
    }
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    b.build().map_err(oci_err)
}

/// Docker's default device cgroup: deny all, then the standard character devices and ptys.
fn default_device_rules() -> Result<Vec<LinuxDeviceCgroup>> {
    let c = Some(LinuxDeviceType::C);
    let mut v = vec![dev_rule(false, None, None, None, "rwm")?];
    for (ma, mi) in [
        (1, Some(3)),
        (1, Some(5)),
        (1, Some(7)),
        (1, Some(8)),
        (1, Some(9)),
        (5, Some(0)),
        (5, Some(1)),
        (5, Some(2)),
        (136, None),
        (10, Some(200)),
    ] {
        v.push(dev_rule(true, c, Some(ma), mi, "rwm")?);
    }
    Ok(v)
}

/// The capability names the container gets (Docker's rules, see [`crate::capabilities`]).
pub fn container_caps(sec: &SecurityConfig) -> Vec<String> {
    crate::capabilities::compute(sec.privileged, &sec.cap_add, &sec.cap_drop)
}

/// The process part shared by the container's init and `exec`.
#[allow(clippy::too_many_arguments)]
pub fn process(
    sec: &SecurityConfig,
    args: Vec<String>,
    env: Vec<String>,
    cwd: &str,
    terminal: bool,
    user: &ResolvedUser,
    extra_gids: &[u32],
    oom_score_adj: i32,
) -> Result<Process> {
    let caps = crate::capabilities::to_oci(&container_caps(sec));
    let mut capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .build()
        .map_err(oci_err)?;
    // Unset builder fields take oci-spec's defaults (a few inheritable and ambient
    // capabilities): Docker gives none, so a non-root process keeps no capabilities.
    capabilities.set_inheritable(None);
    capabilities.set_ambient(None);
    let mut gids = user.additional_gids.clone();
    for g in extra_gids {
        if !gids.contains(g) {
            gids.push(*g);
        }
    }
    let user = UserBuilder::default()
        .uid(user.uid)
        .gid(user.gid)
        .additional_gids(gids)
        .build()
        .map_err(oci_err)?;
    let mut p = ProcessBuilder::default()
        .terminal(terminal)
        .user(user)
        .args(args)
        .env(env)
        .cwd(if cwd.is_empty() { "/" } else { cwd })
        .capabilities(capabilities)
        .oom_score_adj(oom_score_adj)
        .build()
        .map_err(oci_err)?;
    p.set_rlimits(rlimits(sec)?);
    // Docker leaves no_new_privs off unless asked: setuid programs work. The field is left out
    // (not `false`) because runtimes read its presence as "load seccomp after dropping
    // capabilities", which fails without CAP_SYS_ADMIN.
    p.set_no_new_privileges(sec.no_new_privileges.then_some(true));
    if sec.privileged {
        p.set_apparmor_profile(None);
    } else if let Some(a) = sec.apparmor.as_deref().filter(|a| *a != "unconfined") {
        if apparmor_enabled() {
            p.set_apparmor_profile(Some(a.to_string()));
        }
    }
    Ok(p)
}

/// Whether the host enforces AppArmor (profiles are only applied then; Docker does the same).
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .map(|s| s.trim() == "Y")
        .unwrap_or(false)
}

fn rlimits(sec: &SecurityConfig) -> Result<Option<Vec<PosixRlimit>>> {
    if sec.ulimits.is_empty() {
        // Keep the host's limits (Docker's default on a daemon started with them).
        return Ok(None);
    }
    let mut out = Vec::new();
    for u in &sec.ulimits {
        let typ = match u.name.as_str() {
            "as" => PosixRlimitType::RlimitAs,
            "core" => PosixRlimitType::RlimitCore,
            "cpu" => PosixRlimitType::RlimitCpu,
            "data" => PosixRlimitType::RlimitData,
            "fsize" => PosixRlimitType::RlimitFsize,
            "locks" => PosixRlimitType::RlimitLocks,
            "memlock" => PosixRlimitType::RlimitMemlock,
            "msgqueue" => PosixRlimitType::RlimitMsgqueue,
            "nice" => PosixRlimitType::RlimitNice,
            "nofile" => PosixRlimitType::RlimitNofile,
            "nproc" => PosixRlimitType::RlimitNproc,
            "rss" => PosixRlimitType::RlimitRss,
            "rtprio" => PosixRlimitType::RlimitRtprio,
            "rttime" => PosixRlimitType::RlimitRttime,
            "sigpending" => PosixRlimitType::RlimitSigpending,
            "stack" => PosixRlimitType::RlimitStack,
            other => {
                return Err(EngineError::InvalidArgument(format!(
                    "unknown ulimit {other:?}"
                )))
            }
        };
        // -1 (unlimited) is RLIM_INFINITY, all bits set.
        let v = |x: i64| u64::try_from(x).unwrap_or(u64::MAX);
        out.push(
            PosixRlimitBuilder::default()
                .typ(typ)
                .soft(v(u.soft))
                .hard(v(u.hard))
                .build()
                .map_err(oci_err)?,
        );
    }
    Ok(Some(out))
}

/// Resolve `--group-add` values: numbers as they are, names in the image's /etc/group.
///
/// Errors: a name the image does not know.
pub fn group_ids(rootfs: &Path, groups: &[String]) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    let mut table: Option<String> = None;
    for g in groups {
        if let Ok(n) = g.parse::<u32>() {
            out.push(n);
            continue;
        }
        let t = table.get_or_insert_with(|| {
            String::from_utf8_lossy(
                &crate::rootfs::read_file_in_root(rootfs, "/etc/group").unwrap_or_default(),
            )
            .into_owned()
        });
        let id = t
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 3 && f[0] == g)
                    .then(|| f[2].parse::<u32>().ok())
                    .flatten()
            })
            .ok_or_else(|| {
                EngineError::InvalidArgument(format!(
                    "--group-add {g}: unable to find group {g} in the image's /etc/group; use a numeric id"
                ))
            })?;
        out.push(id);
    }
    Ok(out)
}

/// The device node behind `path` on the host: `(type, major, minor, mode)`.
fn host_device(path: &Path) -> std::io::Result<(LinuxDeviceType, i64, i64, u32)> {
    let st = rustix::fs::stat(path)?;
    let typ = match st.st_mode & libc::S_IFMT {
        libc::S_IFCHR => LinuxDeviceType::C,
        libc::S_IFBLK => LinuxDeviceType::B,
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a device node",
            ))
        }
    };
    let major = i64::from(rustix::fs::major(st.st_rdev));
    let minor = i64::from(rustix::fs::minor(st.st_rdev));
    Ok((typ, major, minor, st.st_mode & 0o7777))
}

fn linux_device(
    path: &str,
    typ: LinuxDeviceType,
    major: i64,
    minor: i64,
    mode: u32,
) -> Result<LinuxDevice> {
    LinuxDeviceBuilder::default()
        .path(PathBuf::from(path))
        .typ(typ)
        .major(major)
        .minor(minor)
        .file_mode(mode)
        .uid(0u32)
        .gid(0u32)
        .build()
        .map_err(oci_err)
}

/// Every device node under the host's /dev (for `--privileged`), skipping the ones a
/// container has its own of (ptys, consoles, shm, mqueue).
fn host_devices() -> Vec<(String, LinuxDeviceType, i64, i64, u32)> {
    fn walk(dir: &Path, out: &mut Vec<(String, LinuxDeviceType, i64, i64, u32)>, depth: u32) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let s = p.to_string_lossy().into_owned();
            if matches!(
                s.as_str(),
                "/dev/pts" | "/dev/shm" | "/dev/mqueue" | "/dev/console" | "/dev/ptmx" | "/dev/fd"
            ) {
                continue;
            }
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() && depth < 4 {
                walk(&p, out, depth + 1);
            } else if !ft.is_symlink() {
                if let Ok((t, ma, mi, mode)) = host_device(&p) {
                    out.push((s, t, ma, mi, mode));
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/dev"), &mut out, 0);
    out
}

/// The OCI runtime spec for a container.
///
/// Errors: a `--device` that is not a device node on the host, a `--group-add` name the image
/// does not have, a malformed `--device-cgroup-rule`.
pub fn build(cfg: &ContainerConfig, inp: &SpecInputs<'_>) -> Result<Spec> {
    let sec = &cfg.security;
    let mut args = cfg.args.clone();
    if cfg.init && inp.init_binary.is_some() {
        let mut v = vec!["/sbin/berth-init".to_string(), "--".to_string()];
        v.extend(args);
        args = v;
    }
    let mut env = cfg.env.clone();
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
        env.insert(0, format!("HOSTNAME={}", cfg.hostname));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", inp.user.home));
    }
    if cfg.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    // --group-add is resolved with the user (ContainerConfig::group_add, user::resolve).
    let extra_gids: Vec<u32> = Vec::new();
    let cwd = if cfg.working_dir.is_empty() {
        "/"
    } else {
        &cfg.working_dir
    };
    let process = process(
        sec,
        args,
        env,
        cwd,
        cfg.tty,
        inp.user,
        &extra_gids,
        cfg.resources.oom_score_adj.unwrap_or(0),
    )?;
    let ns_modes = &cfg.namespaces;

    let shm = format!("size={}", sec.shm_size.unwrap_or(DEFAULT_SHM_SIZE));
    let sys_opts: &[&str] = if sec.privileged {
        &["nosuid", "noexec", "nodev", "rw"]
    } else {
        &["nosuid", "noexec", "nodev", "ro"]
    };
    let cgroup_opts: &[&str] = if sec.privileged {
        &["nosuid", "noexec", "nodev", "relatime", "rw"]
    } else {
        &["nosuid", "noexec", "nodev", "relatime", "ro"]
    };
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount("/sys", "sysfs", "sysfs", sys_opts)?,
        mount("/sys/fs/cgroup", "cgroup", "cgroup", cgroup_opts)?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
    ];
    // /dev/shm: a fresh tmpfs, the host's (`--ipc host`), the donor's (`--ipc container:X`),
    // or none (`--ipc none`).
    match (ns_modes.ipc.as_deref(), &inp.shm_source) {
        (Some("none"), _) => {}
        (Some("host"), _) => mounts.push(mount(
            "/dev/shm",
            "bind",
            "/dev/shm",
            &["rbind", "rprivate"],
        )?),
        (_, Some(shm_dir)) => mounts.push(mount(
            "/dev/shm",
            "bind",
            shm_dir,
            &["rbind", "rprivate", "nosuid", "noexec", "nodev"],
        )?),
        _ => mounts.push(mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &shm],
        )?),
    }
    for (dst, src) in [
        ("/etc/hosts", &inp.net.hosts_file),
        ("/etc/resolv.conf", &inp.net.resolv_conf),
        ("/etc/hostname", &inp.net.hostname_file),
    ] {
        if src.as_os_str().is_empty() {
            continue;
        }
        if cfg.binds.iter().any(|b| b.destination == dst) {
            continue;
        }
        mounts.push(mount(
            dst,
            "bind",
            &src.to_string_lossy(),
            &["rbind", "rprivate"],
        )?);
    }
    if let (true, Some(init)) = (cfg.init, inp.init_binary) {
        mounts.push(mount(
            "/sbin/berth-init",
            "bind",
            &init.to_string_lossy(),
            &["bind", "ro", "nosuid", "nodev"],
        )?);
    }
    for t in &cfg.tmpfs {
        let mut opts = vec!["nosuid".to_string(), "nodev".to_string()];
        if !t.options.iter().any(|o| o == "exec") {
            opts.push("noexec".into());
        }
        opts.extend(t.options.iter().filter(|o| *o != "exec").cloned());
        let o: Vec<&str> = opts.iter().map(String::as_str).collect();
        mounts.push(mount(&t.destination, "tmpfs", "tmpfs", &o)?);
    }
    for b in &cfg.binds {
        let mut opts = vec!["rbind", "rprivate"];
        if b.read_only {
            opts.push("ro");
        }
        mounts.push(mount(&b.destination, "bind", &b.source, &opts)?);
    }

    let ns = |t: LinuxNamespaceType, path: Option<&str>| -> Result<LinuxNamespace> {
        let mut b = LinuxNamespaceBuilder::default().typ(t);
        if let Some(p) = path {
            b = b.path(PathBuf::from(p));
        }
        b.build().map_err(oci_err)
    };
    let mut namespaces = vec![ns(LinuxNamespaceType::Mount, None)?];
    match (ns_modes.pid.as_deref(), &inp.join_pidns) {
        (Some("host"), _) => {}
        (_, Some(p)) => namespaces.push(ns(LinuxNamespaceType::Pid, Some(p))?),
        _ => namespaces.push(ns(LinuxNamespaceType::Pid, None)?),
    }
    match (ns_modes.ipc.as_deref(), &inp.join_ipc) {
        (Some("host"), _) => {}
        (_, Some(p)) => namespaces.push(ns(LinuxNamespaceType::Ipc, Some(p))?),
        _ => namespaces.push(ns(LinuxNamespaceType::Ipc, None)?),
    }
    if ns_modes.uts.as_deref() != Some("host") {
        namespaces.push(ns(LinuxNamespaceType::Uts, None)?);
    }
    if ns_modes.cgroupns.as_deref() != Some("host") {
        namespaces.push(ns(LinuxNamespaceType::Cgroup, None)?);
    }
    match (&cfg.network, &inp.net.netns_path, &inp.join_netns) {
        (NetworkMode::Host, _, _) => {}
        (_, _, Some(p)) => namespaces.push(ns(LinuxNamespaceType::Network, Some(p))?),
        (_, Some(p), None) => {
            namespaces.push(ns(LinuxNamespaceType::Network, Some(&p.to_string_lossy()))?)
        }
        (_, None, None) => namespaces.push(ns(LinuxNamespaceType::Network, None)?),
    }

    // Devices: Docker's defaults; --device adds nodes and cgroup rules; --privileged all.
    let mut device_rules = if sec.privileged {
        vec![dev_rule(true, None, None, None, "rwm")?]
    } else {
        default_device_rules()?
    };
    let mut devices = Vec::new();
    if sec.privileged {
        for (path, t, ma, mi, mode) in host_devices() {
            devices.push(linux_device(&path, t, ma, mi, mode)?);
        }
    }
    for d in &sec.devices {
        let (t, ma, mi, mode) = host_device(Path::new(&d.host)).map_err(|e| {
            EngineError::InvalidArgument(format!(
                "--device {}: {e}; give the path of a device node on the host",
                d.host
            ))
        })?;
        devices.retain(|x: &LinuxDevice| x.path() != Path::new(&d.container));
        devices.push(linux_device(&d.container, t, ma, mi, mode)?);
        device_rules.push(dev_rule(true, Some(t), Some(ma), Some(mi), &d.permissions)?);
    }
    for r in &sec.device_cgroup_rules {
        let r = parse_device_rule(r)?;
        let t = match r.kind {
            'b' => Some(LinuxDeviceType::B),
            'c' => Some(LinuxDeviceType::C),
            _ => None,
        };
        device_rules.push(dev_rule(true, t, r.major, r.minor, &r.access)?);
    }

    let mut resources = linux_resources(cfg)?.devices(device_rules);
    if let Some(p) = cfg.pids_limit.filter(|p| *p > 0) {
        resources = resources.pids(
            LinuxPidsBuilder::default()
                .limit(p)
                .build()
                .map_err(oci_err)?,
        );
    }

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build().map_err(oci_err)?)
        .cgroups_path(PathBuf::from(format!(
            "{}/{}",
            inp.cgroup_parent.trim_end_matches('/'),
            inp.id
        )))
        .rootfs_propagation("private")
        .build()
        .map_err(oci_err)?;
    if sec.privileged {
        linux.set_masked_paths(None);
        linux.set_readonly_paths(None);
    } else {
        linux.set_masked_paths(Some(MASKED.iter().map(|s| s.to_string()).collect()));
        linux.set_readonly_paths(Some(READONLY.iter().map(|s| s.to_string()).collect()));
    }
    linux.set_devices((!devices.is_empty()).then_some(devices));
    linux.set_sysctl((!sec.sysctls.is_empty()).then(|| {
        sec.sysctls
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<HashMap<_, _>>()
    }));
    linux.set_seccomp(seccomp(sec)?);

    let root = RootBuilder::default()
        .path(inp.rootfs)
        .readonly(cfg.read_only)
        .build()
        .map_err(oci_err)?;
    let mut spec = SpecBuilder::default()
        .version("1.0.2")
        .root(root)
        .mounts(mounts)
        .process(process)
        .linux(linux)
        .build()
        .map_err(oci_err)?;
    spec.set_annotations(None);
    if !matches!(cfg.network, NetworkMode::Host) && ns_modes.uts.as_deref() != Some("host") {
        spec.set_hostname(Some(cfg.hostname.clone()));
        if !cfg.domainname.is_empty() {
            spec.set_domainname(Some(cfg.domainname.clone()));
        }
    } else {
        spec.set_hostname(None);
    }
    Ok(spec)
}

/// The spec's `linux.resources` (without devices) from `--memory`, `--cpus`, `--pids-limit`
/// and [`crate::resources::Resources`], in the OCI units (bytes, microseconds, shares; the
/// runtime converts them for cgroup v2). `--kernel-memory` is left out (see
/// [`crate::resources::Resources::warnings`]).
///
/// Errors: only oci-spec builder failures.
pub fn linux_resources(cfg: &ContainerConfig) -> Result<LinuxResourcesBuilder> {
    let r = &cfg.resources;
    let mut resources = LinuxResourcesBuilder::default();
    let memory = cfg.memory.filter(|m| *m > 0);
    if memory.is_some()
        || r.memory_reservation.is_some()
        || r.memory_swappiness.is_some()
        || r.oom_kill_disable
    {
        let mut b = LinuxMemoryBuilder::default();
        if let Some(m) = memory {
            b = b.limit(m);
            // memory + swap; without --memory-swap, Docker's default: twice the limit (the
            // CLI records that at create where swap is accounted; other front ends may not).
            b = b.swap(r.memory_swap.unwrap_or_else(|| m.saturating_mul(2)));
        }
        if let Some(v) = r.memory_reservation {
            b = b.reservation(v);
        }
        if let Some(v) = r.memory_swappiness {
            b = b.swappiness(v);
        }
        if r.oom_kill_disable {
            b = b.disable_oom_killer(true);
        }
        resources = resources.memory(b.build().map_err(oci_err)?);
    }
    let mut cpu = LinuxCpuBuilder::default();
    let mut any_cpu = false;
    if let Some(n) = cfg.nano_cpus {
        let period: u64 = 100_000;
        cpu = cpu.quota(n * 100_000 / 1_000_000_000).period(period);
        any_cpu = true;
    }
    if let Some(p) = r.cpu_period {
        cpu = cpu.period(p);
        any_cpu = true;
    }
    if let Some(q) = r.cpu_quota {
        cpu = cpu.quota(q);
        any_cpu = true;
    }
    if let Some(sh) = r.cpu_shares {
        cpu = cpu.shares(sh);
        any_cpu = true;
    }
    if let Some(c) = &r.cpuset_cpus {
        cpu = cpu.cpus(c.clone());
        any_cpu = true;
    }
    if let Some(m) = &r.cpuset_mems {
        cpu = cpu.mems(m.clone());
        any_cpu = true;
    }
    if any_cpu {
        resources = resources.cpu(cpu.build().map_err(oci_err)?);
    }
    if let Some(p) = cfg.pids_limit.filter(|p| *p > 0) {
        resources = resources.pids(
            LinuxPidsBuilder::default()
                .limit(p)
                .build()
                .map_err(oci_err)?,
        );
    }
    let throttle =
        |v: &[crate::resources::DeviceValue]| -> Result<Option<Vec<LinuxThrottleDevice>>> {
            if v.is_empty() {
                return Ok(None);
            }
            v.iter()
                .map(|d| {
                    LinuxThrottleDeviceBuilder::default()
                        .major(d.major)
                        .minor(d.minor)
                        .rate(d.value)
                        .build()
                        .map_err(oci_err)
                })
                .collect::<Result<Vec<_>>>()
                .map(Some)
        };
    if r.blkio_weight.is_some()
        || !r.blkio_weight_device.is_empty()
        || !r.device_read_bps.is_empty()
        || !r.device_write_bps.is_empty()
        || !r.device_read_iops.is_empty()
        || !r.device_write_iops.is_empty()
    {
        let mut b = LinuxBlockIoBuilder::default().build().map_err(oci_err)?;
        b.set_weight(r.blkio_weight);
        if !r.blkio_weight_device.is_empty() {
            b.set_weight_device(Some(
                r.blkio_weight_device
                    .iter()
                    .map(|d| {
                        LinuxWeightDeviceBuilder::default()
                            .major(d.major)
                            .minor(d.minor)
                            .weight(u16::try_from(d.value).unwrap_or(1000))
                            .build()
                            .map_err(oci_err)
                    })
                    .collect::<Result<Vec<_>>>()?,
            ));
        }
        b.set_throttle_read_bps_device(throttle(&r.device_read_bps)?);
        b.set_throttle_write_bps_device(throttle(&r.device_write_bps)?);
        b.set_throttle_read_iops_device(throttle(&r.device_read_iops)?);
        b.set_throttle_write_iops_device(throttle(&r.device_write_iops)?);
        resources = resources.block_io(b);
    }
    Ok(resources)
}

/// The container's `linux.seccomp`: none when privileged or unconfined, else the chosen
/// profile converted for the container's capabilities and the host's architecture.
pub fn seccomp(sec: &SecurityConfig) -> Result<Option<oci_spec::runtime::LinuxSeccomp>> {
    if sec.privileged {
        return Ok(None);
    }
    let caps: HashSet<String> = container_caps(sec).into_iter().collect();
    match &sec.seccomp {
        SeccompChoice::Unconfined => Ok(None),
        SeccompChoice::Default => Profile::default_profile().to_oci(&caps).map(Some),
        SeccompChoice::Profile { profile, .. } => profile.to_oci(&caps).map(Some),
    }
}
