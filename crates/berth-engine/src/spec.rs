//! Container configuration → OCI runtime spec (`config.json`), with Docker's defaults:
//! capabilities, masked and read-only paths, /dev, cgroup limits, seccomp.

use std::path::Path;

use berth_net::{NetSetup, NetworkMode};
use serde_json::{json, Value};

use crate::config::ContainerConfig;
use crate::user::ResolvedUser;

/// Docker's default capability set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
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

const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Syscalls refused (EPERM) by the default seccomp profile. Everything else is allowed; the
/// dangerous ones below need capabilities containers don't get anyway, so this is defence in depth.
const DENIED_SYSCALLS: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "get_kernel_syms",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "move_mount",
    "fsopen",
    "fsmount",
    "fspick",
    "open_tree",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapon",
    "swapoff",
    "sysfs",
    "_sysctl",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
];

/// Inputs to [`build`] that are only known at start time.
#[derive(Debug)]
pub struct SpecInputs<'a> {
    pub id: &'a str,
    pub rootfs: &'a Path,
    pub user: &'a ResolvedUser,
    pub net: &'a NetSetup,
    /// Network namespace of another container to join (`--network container:X`).
    pub join_netns: Option<String>,
    pub cgroup_parent: &'a str,
    /// Path of a static init binary to mount at /sbin/berth-init when `--init` is used.
    pub init_binary: Option<&'a Path>,
}

/// The OCI runtime spec for a container.
pub fn build(cfg: &ContainerConfig, inp: &SpecInputs<'_>) -> Value {
    let caps: Vec<&str> = DEFAULT_CAPS.to_vec();
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

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]}),
    ];
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
        mounts.push(json!({"destination": dst, "type": "bind", "source": src, "options": ["rbind", "rprivate"]}));
    }
    if let (true, Some(init)) = (cfg.init, inp.init_binary) {
        mounts.push(json!({"destination": "/sbin/berth-init", "type": "bind", "source": init, "options": ["bind", "ro", "nosuid", "nodev"]}));
    }
    for t in &cfg.tmpfs {
        let mut opts = vec!["nosuid".to_string(), "nodev".to_string()];
        if !t.options.iter().any(|o| o == "exec") {
            opts.push("noexec".into());
        }
        opts.extend(t.options.iter().filter(|o| *o != "exec").cloned());
        mounts.push(json!({"destination": t.destination, "type": "tmpfs", "source": "tmpfs", "options": opts}));
    }
    for b in &cfg.binds {
        let mut opts = vec!["rbind", "rprivate"];
        if b.read_only {
            opts.push("ro");
        }
        mounts.push(json!({"destination": b.destination, "type": "bind", "source": b.source, "options": opts}));
    }

    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
        json!({"type": "cgroup"}),
    ];
    match (&cfg.network, &inp.net.netns_path, &inp.join_netns) {
        (NetworkMode::Host, _, _) => {}
        (_, _, Some(p)) => namespaces.push(json!({"type": "network", "path": p})),
        (_, Some(p), None) => namespaces.push(json!({"type": "network", "path": p})),
        (_, None, None) => namespaces.push(json!({"type": "network"})),
    }

    let mut resources = json!({
        "devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
            {"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
            {"allow": true, "type": "c", "major": 136, "access": "rwm"},
            {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"}
        ]
    });
    if let Some(m) = cfg.memory {
        resources["memory"] = json!({"limit": m, "swap": m});
    }
    if let Some(n) = cfg.nano_cpus {
        let period: i64 = 100_000;
        resources["cpu"] = json!({"quota": n * period / 1_000_000_000, "period": period});
    }
    if let Some(p) = cfg.pids_limit {
        if p > 0 {
            resources["pids"] = json!({"limit": p});
        }
    }

    let syscalls: Vec<&str> = DENIED_SYSCALLS.to_vec();
    let hostname = if matches!(cfg.network, NetworkMode::Host) {
        Value::Null
    } else {
        json!(cfg.hostname)
    };
    let cwd = if cfg.working_dir.is_empty() {
        "/"
    } else {
        &cfg.working_dir
    };
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": cfg.tty,
            "user": {"uid": inp.user.uid, "gid": inp.user.gid, "additionalGids": inp.user.additional_gids},
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": true,
            "oomScoreAdj": 0
        },
        "root": {"path": inp.rootfs, "readonly": cfg.read_only},
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "resources": resources,
            "cgroupsPath": format!("{}/{}", inp.cgroup_parent.trim_end_matches('/'), inp.id),
            "maskedPaths": MASKED,
            "readonlyPaths": READONLY,
            "seccomp": {
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                "syscalls": [{"names": syscalls, "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
            },
            "rootfsPropagation": "private"
        }
    });
    if !hostname.is_null() {
        spec["hostname"] = hostname;
        if !cfg.domainname.is_empty() {
            spec["domainname"] = json!(cfg.domainname);
        }
    }
    spec
}
