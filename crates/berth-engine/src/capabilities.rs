//! Linux capabilities: Docker's default set, `--cap-add`/`--cap-drop` (names with or without
//! `CAP_`, `ALL`) and `--privileged`, computed as Docker does.

use std::collections::HashSet;
use std::str::FromStr;

use oci_spec::runtime::{Capabilities, Capability};

use crate::{EngineError, Result};

/// Docker's default capability set (`CapEff` 00000000a80425fb).
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

/// Every capability Linux defines, indexed by its number.
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Normalise a `--cap-add`/`--cap-drop` value: `sys_admin`, `CAP_SYS_ADMIN` → `CAP_SYS_ADMIN`;
/// `all` → `ALL`.
///
/// Errors: an unknown capability name.
pub fn normalize(name: &str) -> Result<String> {
    let up = name.trim().to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    };
    if ALL_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(EngineError::InvalidArgument(format!(
            "unknown capability {name:?}: use a name such as NET_ADMIN or CAP_SYS_PTRACE, or ALL"
        )))
    }
}

/// The capabilities berth can hand out: those this kernel knows (up to
/// `/proc/sys/kernel/cap_last_cap`) that are in berth's own bounding set (a process cannot
/// give a container capabilities it may not hold itself).
pub fn host_caps() -> Vec<&'static str> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(ALL_CAPS.len() - 1);
    let bounding = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    ALL_CAPS
        .iter()
        .enumerate()
        .take(last + 1)
        .filter(|(i, _)| bounding & (1u64 << i) != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// The container's capability set, as Docker computes it: everything when privileged; else
/// the defaults minus drops plus adds, where `ALL` in adds means every capability except the
/// dropped ones, and `ALL` in drops means only the added ones. Inputs are normalised names.
pub fn compute(privileged: bool, add: &[String], drop: &[String]) -> Vec<String> {
    let all = || host_caps().into_iter().map(String::from);
    if privileged {
        return all().collect();
    }
    let mut out: Vec<String> = if add.iter().any(|c| c == "ALL") {
        all().filter(|c| !drop.contains(c)).collect()
    } else if drop.iter().any(|c| c == "ALL") {
        add.to_vec()
    } else {
        let mut v: Vec<String> = DEFAULT_CAPS
            .iter()
            .map(|s| s.to_string())
            .filter(|c| !drop.contains(c))
            .collect();
        v.extend(add.iter().cloned());
        v
    };
    let mut seen = HashSet::new();
    out.retain(|c| seen.insert(c.clone()));
    out
}

/// The OCI capability set for names such as `CAP_SYS_ADMIN` (unknown names are skipped).
pub fn to_oci(caps: &[String]) -> Capabilities {
    caps.iter()
        .filter_map(|c| Capability::from_str(c.strip_prefix("CAP_").unwrap_or(c)).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| normalize(x).unwrap()).collect()
    }

    #[test]
    fn docker_rules() {
        assert_eq!(normalize("net_admin").unwrap(), "CAP_NET_ADMIN");
        assert_eq!(normalize("CAP_SYS_ADMIN").unwrap(), "CAP_SYS_ADMIN");
        assert!(normalize("flying").is_err());
        assert_eq!(compute(false, &[], &[]).len(), 14);
        let c = compute(false, &s(&["sys_admin"]), &s(&["chown"]));
        assert!(c.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(!c.contains(&"CAP_CHOWN".to_string()));
        assert_eq!(
            compute(false, &s(&["NET_ADMIN"]), &s(&["ALL"])),
            ["CAP_NET_ADMIN"]
        );
        let c = compute(false, &s(&["ALL"]), &s(&["MKNOD"]));
        assert!(c.len() > 30 && !c.contains(&"CAP_MKNOD".to_string()));
        assert_eq!(compute(true, &[], &[]).len(), host_caps().len());
        assert_eq!(to_oci(&compute(false, &[], &[])).len(), 14);
    }
}
