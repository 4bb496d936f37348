//! A container's confinement settings (part of [`crate::config::ContainerConfig`]) and the
//! parsing of Docker's flags for them: `--privileged`, `--cap-add`/`--cap-drop`,
//! `--security-opt`, `--device`, `--device-cgroup-rule`, `--group-add`, `--ulimit`,
//! `--sysctl`, `--shm-size`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::seccomp::Profile;
use crate::{EngineError, Result};

/// Confinement of a container. The default is Docker's default confinement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecurityConfig {
    /// All capabilities, all host devices, no masked/read-only paths, no seccomp, writable /sys.
    pub privileged: bool,
    /// Capabilities added (normalised `CAP_*` names or `ALL`).
    pub cap_add: Vec<String>,
    /// Capabilities dropped (normalised `CAP_*` names or `ALL`).
    pub cap_drop: Vec<String>,
    /// Set the no_new_privs bit (`--security-opt no-new-privileges`); off by default as in Docker.
    pub no_new_privileges: bool,
    /// Which seccomp profile applies.
    pub seccomp: SeccompChoice,
    /// AppArmor profile name given with `--security-opt apparmor=NAME`.
    pub apparmor: Option<String>,
    /// `--security-opt label=...` values (accepted; berth applies no SELinux labels).
    pub labels: Vec<String>,
    /// Host devices made available (`--device`).
    pub devices: Vec<DeviceMapping>,
    /// Extra device cgroup rules (`--device-cgroup-rule 'c 1:3 rwm'`), checked syntax.
    pub device_cgroup_rules: Vec<String>,
    /// Resource limits (`--ulimit`).
    pub ulimits: Vec<Ulimit>,
    /// Namespaced kernel parameters (`--sysctl`).
    pub sysctls: BTreeMap<String, String>,
    /// Size of /dev/shm in bytes (`--shm-size`; Docker's default 64 MiB when `None`).
    pub shm_size: Option<i64>,
}

/// The seccomp profile of a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SeccompChoice {
    /// berth's default profile (Docker's policy).
    #[default]
    Default,
    /// No seccomp filter (`seccomp=unconfined`).
    Unconfined,
    /// A profile loaded from a file at create time (kept, so the file may go away).
    Profile {
        /// Where it came from (shown in errors).
        source: String,
        /// The profile as parsed.
        profile: Box<Profile>,
    },
}

/// `--device HOST[:CONTAINER][:PERMISSIONS]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMapping {
    /// Device node on the host.
    pub host: String,
    /// Path inside the container (defaults to the host path).
    pub container: String,
    /// Cgroup permissions: a combination of `r`, `w`, `m`.
    pub permissions: String,
}

/// `--ulimit NAME=SOFT[:HARD]`; -1 means unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// Name as Docker spells it (`nofile`, `nproc`, `core`, …).
    pub name: String,
    /// Soft limit.
    pub soft: i64,
    /// Hard limit.
    pub hard: i64,
}

const ULIMITS: &[&str] = &[
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

fn bad(msg: String) -> EngineError {
    EngineError::InvalidArgument(msg)
}

/// Docker's confinement flags as given on a command line or in a compose file.
#[derive(Debug, Clone, Default)]
pub struct SecurityFlags {
    /// `--privileged`.
    pub privileged: bool,
    /// `--cap-add` values.
    pub cap_add: Vec<String>,
    /// `--cap-drop` values.
    pub cap_drop: Vec<String>,
    /// `--security-opt` values.
    pub security_opt: Vec<String>,
    /// `--device` values.
    pub device: Vec<String>,
    /// `--device-cgroup-rule` values.
    pub device_cgroup_rule: Vec<String>,
    /// `--group-add` values.
    pub group_add: Vec<String>,
    /// `--ulimit` values.
    pub ulimit: Vec<String>,
    /// `--sysctl` values.
    pub sysctl: Vec<String>,
    /// `--shm-size` value (`64m`, bytes).
    pub shm_size: Option<String>,
}

impl SecurityConfig {
    /// Check and convert the flags; `host_network` refuses `net.*` sysctls.
    ///
    /// Errors: the first bad value, naming the flag and what to use instead.
    pub fn from_flags(f: &SecurityFlags, host_network: bool) -> Result<SecurityConfig> {
        let norm = |v: &[String]| -> Result<Vec<String>> {
            v.iter()
                .map(|c| crate::capabilities::normalize(c))
                .collect()
        };
        let mut s = SecurityConfig {
            privileged: f.privileged,
            cap_add: norm(&f.cap_add)?,
            cap_drop: norm(&f.cap_drop)?,
            ..SecurityConfig::default()
        };
        for o in &f.security_opt {
            s.apply_security_opt(o)?;
        }
        s.devices = f
            .device
            .iter()
            .map(|d| parse_device(d))
            .collect::<Result<_>>()?;
        for r in &f.device_cgroup_rule {
            parse_device_rule(r)?;
            s.device_cgroup_rules.push(r.clone());
        }
        // --group-add is kept in ContainerConfig::group_add (resolved with the user); it is
        // checked here with the other flags.
        for g in &f.group_add {
            if g.is_empty() || g.contains(':') {
                return Err(bad(format!(
                    "invalid --group-add {g:?}: use a group name or a numeric id"
                )));
            }
        }
        s.ulimits = f
            .ulimit
            .iter()
            .map(|u| parse_ulimit(u))
            .collect::<Result<_>>()?;
        for x in &f.sysctl {
            let (k, v) = parse_sysctl(x, host_network)?;
            s.sysctls.insert(k, v);
        }
        if let Some(sz) = &f.shm_size {
            let n = crate::config::parse_bytes(sz)?;
            if n <= 0 {
                return Err(bad(format!(
                    "invalid --shm-size {sz:?}: must be greater than 0"
                )));
            }
            s.shm_size = Some(n);
        }
        Ok(s)
    }

    /// Apply one `--security-opt` value: `no-new-privileges[=true|false]` (also `:`),
    /// `seccomp=unconfined|PROFILE.json`, `apparmor=NAME`, `label=...` (`label=disable`,
    /// `label=type:...`).
    ///
    /// Errors: an unknown option, a profile that cannot be read or is malformed (naming the
    /// file and the JSON path of the error).
    pub fn apply_security_opt(&mut self, opt: &str) -> Result<()> {
        let (k, v) = match opt.split_once(['=', ':']) {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        match (k, v) {
            ("no-new-privileges", None) => self.no_new_privileges = true,
            ("no-new-privileges", Some(v)) => {
                self.no_new_privileges = match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(bad(format!(
                            "invalid --security-opt {opt:?}: use no-new-privileges=true or =false"
                        )))
                    }
                }
            }
            ("seccomp", Some("unconfined")) => self.seccomp = SeccompChoice::Unconfined,
            ("seccomp", Some("builtin") | Some("default")) => self.seccomp = SeccompChoice::Default,
            ("seccomp", Some(path)) if !path.is_empty() => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    bad(format!("cannot read seccomp profile {path}: {e}"))
                })?;
                let profile = Profile::parse(path, &text)?;
                self.seccomp = SeccompChoice::Profile {
                    source: path.to_string(),
                    profile: Box::new(profile),
                };
            }
            ("apparmor", Some(name)) if !name.is_empty() => self.apparmor = Some(name.to_string()),
            ("label", Some(v)) if !v.is_empty() => self.labels.push(v.to_string()),
            ("systempaths", Some("unconfined")) => {
                return Err(bad(
                    "--security-opt systempaths=unconfined is not supported: use --privileged".into(),
                ))
            }
            _ => {
                return Err(bad(format!(
                    "invalid --security-opt {opt:?}: use no-new-privileges, seccomp=unconfined|PROFILE.json, apparmor=NAME or label=..."
                )))
            }
        }
        Ok(())
    }
}

impl SecurityConfig {
    /// The `--security-opt` values this configuration stands for, as Docker lists them in
    /// inspect's `HostConfig.SecurityOpt` (a loaded profile file by its path).
    pub fn security_opts(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.no_new_privileges {
            v.push("no-new-privileges".to_string());
        }
        match &self.seccomp {
            SeccompChoice::Default => {}
            SeccompChoice::Unconfined => v.push("seccomp=unconfined".into()),
            SeccompChoice::Profile { source, .. } => v.push(format!("seccomp={source}")),
        }
        if let Some(a) = &self.apparmor {
            v.push(format!("apparmor={a}"));
        }
        v.extend(self.labels.iter().map(|l| format!("label={l}")));
        v
    }

    /// inspect's top-level `AppArmorProfile`: the profile asked for, else the one the host
    /// applies ([`crate::apparmor::profile_for`]), else empty (Docker's values).
    pub fn apparmor_profile(&self, host_supports: bool) -> String {
        self.apparmor
            .clone()
            .or_else(|| crate::apparmor::profile_for(self, host_supports))
            .unwrap_or_default()
    }

    /// The confinement part of inspect's `HostConfig`, in Docker's names: `Privileged`,
    /// `CapAdd`, `CapDrop`, `SecurityOpt`, `Devices`, `DeviceCgroupRules`, `Ulimits`,
    /// `Sysctls`, `ShmSize` (bytes).
    pub fn host_config_json(&self) -> serde_json::Value {
        let list = |v: &[String]| (!v.is_empty()).then(|| v.to_vec());
        serde_json::json!({
            "Privileged": self.privileged,
            "CapAdd": list(&self.cap_add),
            "CapDrop": list(&self.cap_drop),
            "SecurityOpt": list(&self.security_opts()),
            "Devices": self.devices.iter().map(|d| serde_json::json!({
                "PathOnHost": d.host, "PathInContainer": d.container, "CgroupPermissions": d.permissions,
            })).collect::<Vec<_>>(),
            "DeviceCgroupRules": list(&self.device_cgroup_rules),
            "Ulimits": self.ulimits.iter().map(|u| serde_json::json!({
                "Name": u.name, "Soft": u.soft, "Hard": u.hard,
            })).collect::<Vec<_>>(),
            "Sysctls": (!self.sysctls.is_empty()).then_some(&self.sysctls),
            "ShmSize": self.shm_size.unwrap_or(crate::spec::DEFAULT_SHM_SIZE),
        })
    }
}

/// Parse `--device HOST[:CONTAINER][:PERMISSIONS]` (permissions default `rwm`).
///
/// Errors: a relative path, permissions other than `r`, `w`, `m`.
pub fn parse_device(s: &str) -> Result<DeviceMapping> {
    let parts: Vec<&str> = s.split(':').collect();
    let is_perm = |p: &str| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| "rwm".contains(c));
    let (host, container, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if is_perm(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => (*h, *c, *p),
        _ => {
            return Err(bad(format!(
                "invalid --device {s:?}: use HOST[:CONTAINER][:PERMISSIONS]"
            )))
        }
    };
    if !host.starts_with('/') || !container.starts_with('/') {
        return Err(bad(format!(
            "invalid --device {s:?}: device paths must be absolute"
        )));
    }
    if !is_perm(perms) {
        return Err(bad(format!(
            "invalid --device {s:?}: permissions must be a combination of r, w and m"
        )));
    }
    Ok(DeviceMapping {
        host: host.to_string(),
        container: container.to_string(),
        permissions: perms.to_string(),
    })
}

/// A parsed device cgroup rule: `TYPE MAJOR:MINOR ACCESS` (`c 1:3 rwm`, `b *:* r`, `a`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRule {
    /// `a`, `b` or `c`.
    pub kind: char,
    /// Major number; `None` for `*`.
    pub major: Option<i64>,
    /// Minor number; `None` for `*`.
    pub minor: Option<i64>,
    /// Combination of `r`, `w`, `m`.
    pub access: String,
}

/// Parse `--device-cgroup-rule`.
///
/// Errors: anything but `a|b|c MAJOR:MINOR rwm` with numbers or `*`.
pub fn parse_device_rule(s: &str) -> Result<DeviceRule> {
    let err = || {
        bad(format!(
            "invalid --device-cgroup-rule {s:?}: use 'TYPE MAJOR:MINOR ACCESS' such as 'c 1:3 rwm' (TYPE a, b or c; * for any number)"
        ))
    };
    let f: Vec<&str> = s.split_whitespace().collect();
    let kind = match f.first().copied() {
        Some("a") => 'a',
        Some("b") => 'b',
        Some("c") => 'c',
        _ => return Err(err()),
    };
    if kind == 'a' && f.len() == 1 {
        return Ok(DeviceRule {
            kind,
            major: None,
            minor: None,
            access: "rwm".into(),
        });
    }
    if f.len() != 3 {
        return Err(err());
    }
    let num = |x: &str| -> Result<Option<i64>> {
        if x == "*" {
            Ok(None)
        } else {
            x.parse::<i64>().map(Some).map_err(|_| err())
        }
    };
    let (ma, mi) = f[1].split_once(':').ok_or_else(err)?;
    let access = f[2];
    if access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) {
        return Err(err());
    }
    Ok(DeviceRule {
        kind,
        major: num(ma)?,
        minor: num(mi)?,
        access: access.to_string(),
    })
}

/// Parse `--ulimit NAME=SOFT[:HARD]` (-1 or `unlimited` for no limit).
///
/// Errors: an unknown name, non-numbers, soft above hard.
pub fn parse_ulimit(s: &str) -> Result<Ulimit> {
    let (name, vals) = s.split_once('=').ok_or_else(|| {
        bad(format!(
            "invalid --ulimit {s:?}: use NAME=SOFT[:HARD] such as nofile=1024:2048"
        ))
    })?;
    if !ULIMITS.contains(&name) {
        return Err(bad(format!(
            "invalid --ulimit {s:?}: unknown limit {name:?} (use one of {})",
            ULIMITS.join(", ")
        )));
    }
    let num = |x: &str| -> Result<i64> {
        if x == "unlimited" {
            return Ok(-1);
        }
        x.parse::<i64>()
            .ok()
            .filter(|v| *v >= -1)
            .ok_or_else(|| bad(format!("invalid --ulimit {s:?}: {x:?} is not a number")))
    };
    let (soft, hard) = match vals.split_once(':') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let v = num(vals)?;
            (v, v)
        }
    };
    let as_u = |v: i64| u64::try_from(v).unwrap_or(u64::MAX);
    if as_u(soft) > as_u(hard) {
        return Err(bad(format!(
            "invalid --ulimit {s:?}: the soft limit {soft} is above the hard limit {hard}"
        )));
    }
    // The kernel refuses a nofile limit above fs.nr_open (EPERM, even as root, only when the
    // container starts): said here, at create, naming the limit.
    if name == "nofile" {
        if let Some(max) = nr_open() {
            if as_u(hard) > max {
                return Err(bad(format!(
                    "invalid --ulimit {s:?}: the hard limit {} is above this host's fs.nr_open ({max}), the most open files the kernel allows a process: use at most {max} (or raise fs.nr_open with sysctl)",
                    if hard < 0 { "unlimited".to_string() } else { hard.to_string() }
                )));
            }
        }
    }
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// The host's `fs.nr_open` (`/proc/sys/fs/nr_open`): the highest `RLIMIT_NOFILE` the kernel
/// accepts; `None` when it cannot be read.
fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Parse `--sysctl NAME=VALUE`, accepting only sysctls that belong to the container's own
/// namespaces (IPC: `kernel.msg*`, `kernel.sem`, `kernel.shm*`, `fs.mqueue.*`; network:
/// `net.*` unless `host_network`); others would change the host and are refused.
///
/// Errors: no `=`, or a sysctl that is not namespaced.
pub fn parse_sysctl(s: &str, host_network: bool) -> Result<(String, String)> {
    let (k, v) = s.split_once('=').ok_or_else(|| {
        bad(format!(
            "invalid --sysctl {s:?}: use NAME=VALUE such as net.ipv4.ip_forward=1"
        ))
    })?;
    let k = k.trim().replace('/', ".");
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&k.as_str()) || k.starts_with("fs.mqueue.") {
        return Ok((k, v.to_string()));
    }
    if k.starts_with("net.") {
        if host_network {
            return Err(bad(format!(
                "--sysctl {k} cannot be set with --network host: it would change the host's network settings"
            )));
        }
        return Ok((k, v.to_string()));
    }
    if k == "kernel.domainname" || k == "kernel.hostname" {
        return Err(bad(format!(
            "--sysctl {k} is not allowed: use --hostname (or --domainname) instead"
        )));
    }
    Err(bad(format!(
        "--sysctl {k} is not allowed: it is not namespaced and would change the host; only kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.* and net.* can be set"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let mut s = SecurityConfig::default();
        s.apply_security_opt("no-new-privileges").unwrap();
        assert!(s.no_new_privileges);
        s.apply_security_opt("no-new-privileges=false").unwrap();
        assert!(!s.no_new_privileges);
        s.apply_security_opt("no-new-privileges:true").unwrap();
        assert!(s.no_new_privileges);
        s.apply_security_opt("seccomp=unconfined").unwrap();
        assert_eq!(s.seccomp, SeccompChoice::Unconfined);
        s.apply_security_opt("label=disable").unwrap();
        s.apply_security_opt("apparmor=unconfined").unwrap();
        assert!(s.apply_security_opt("bogus").is_err());
        let e = s
            .apply_security_opt("seccomp=/nonexistent/p.json")
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/p.json"));

        assert_eq!(parse_device("/dev/fuse").unwrap().container, "/dev/fuse");
        let d = parse_device("/dev/null:/dev/n2:r").unwrap();
        assert_eq!(
            (d.container.as_str(), d.permissions.as_str()),
            ("/dev/n2", "r")
        );
        assert_eq!(parse_device("/dev/null:rw").unwrap().permissions, "rw");
        assert!(parse_device("dev/null").is_err());
        assert!(parse_device("/dev/null:/x:rwx").is_err());

        assert_eq!(parse_device_rule("c 1:3 rwm").unwrap().major, Some(1));
        assert_eq!(parse_device_rule("b *:* r").unwrap().minor, None);
        assert!(parse_device_rule("c 1 rwm").is_err());
        assert!(parse_device_rule("x 1:3 rwm").is_err());

        let u = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!((u.soft, u.hard), (1024, 2048));
        assert_eq!(parse_ulimit("core=-1").unwrap().hard, -1);
        assert!(parse_ulimit("nofile=10:5").is_err());
        assert!(parse_ulimit("bogus=1").is_err());
        // nofile above fs.nr_open: the kernel would refuse it at start (EPERM).
        let max = nr_open().unwrap();
        assert!(parse_ulimit(&format!("nofile={max}")).is_ok());
        let e = parse_ulimit(&format!("nofile=1024:{}", max + 1))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!(
                "the hard limit {} is above this host's fs.nr_open ({max})",
                max + 1
            )),
            "{e}"
        );
        let e = parse_ulimit("nofile=unlimited").unwrap_err().to_string();
        assert!(e.contains("the hard limit unlimited is above"), "{e}");

        assert!(parse_sysctl("net.ipv4.ip_forward=1", false).is_ok());
        assert!(parse_sysctl("net.ipv4.ip_forward=1", true).is_err());
        assert!(parse_sysctl("kernel.shmmax=1000", false).is_ok());
        assert!(parse_sysctl("fs.mqueue.msg_max=100", false).is_ok());
        let e = parse_sysctl("kernel.panic=1", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not namespaced"), "{e}");
        assert!(parse_sysctl("vm.swappiness=1", false).is_err());
    }

    #[test]
    fn inspect_fields() {
        let mut s = SecurityConfig::default();
        let h = s.host_config_json();
        assert_eq!(h["Privileged"], false);
        assert!(h["SecurityOpt"].is_null() && h["CapAdd"].is_null());
        assert_eq!(h["ShmSize"], 64 << 20);
        assert_eq!(s.apparmor_profile(false), "");
        assert_eq!(s.apparmor_profile(true), crate::apparmor::DEFAULT_PROFILE);
        for o in [
            "no-new-privileges",
            "seccomp=unconfined",
            "apparmor=custom",
            "label=disable",
        ] {
            s.apply_security_opt(o).unwrap();
        }
        s.cap_add = vec!["CAP_NET_ADMIN".into()];
        s.ulimits = vec![parse_ulimit("nofile=10:20").unwrap()];
        let h = s.host_config_json();
        assert_eq!(
            h["SecurityOpt"],
            serde_json::json!([
                "no-new-privileges",
                "seccomp=unconfined",
                "apparmor=custom",
                "label=disable"
            ])
        );
        assert_eq!(h["CapAdd"], serde_json::json!(["CAP_NET_ADMIN"]));
        assert_eq!(h["Ulimits"][0]["Soft"], 10);
        assert_eq!(s.apparmor_profile(false), "custom");
    }
}
