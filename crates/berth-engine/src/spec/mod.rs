//! Container configuration → OCI runtime spec (`config.json`), built from `oci-spec`'s typed
//! structures, with Docker's defaults: capabilities, masked and read-only paths, /dev, device
//! cgroup, seccomp profile (Docker's policy, see [`crate::seccomp`]), no_new_privs off.
//!
//! The same spec goes to the builtin runtime and to OCI runtime binaries. Mount destinations
//! are made safe (resolved inside the root) by [`crate::rootfs::secure_mounts`] before the
//! spec is written.

mod devices;
mod process;
mod resources;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use berth_net::{NetSetup, NetworkMode};
use oci_spec::runtime::{
    LinuxBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    Mount, MountBuilder, RootBuilder, Spec, SpecBuilder,
};

use crate::config::ContainerConfig;
use crate::user::ResolvedUser;
use crate::{EngineError, Result};

pub use crate::capabilities::DEFAULT_CAPS;
pub use process::{container_caps, group_ids, process, seccomp};
pub use resources::linux_resources;

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
    let (devices, device_rules) = devices::devices(sec)?;

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
