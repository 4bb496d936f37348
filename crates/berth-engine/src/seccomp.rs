//! Seccomp profiles in Docker's JSON format (`defaultAction`, `archMap`, `syscalls` with
//! `includes`/`excludes` on capabilities, architectures and kernel versions), and their
//! conversion into the OCI runtime spec's `linux.seccomp` for one container.
//!
//! berth's default profile is data ([`DEFAULT_PROFILE`], `profiles/seccomp-default.json`),
//! parsed once per process. `--security-opt seccomp=FILE` loads any profile in the same
//! format (Docker's and Podman's own files load unchanged).

use std::collections::HashSet;
use std::sync::OnceLock;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};
use serde::{Deserialize, Deserializer, Serialize};

use crate::{EngineError, Result};

/// berth's default profile, in Docker's format (the policy of Docker's default profile).
pub const DEFAULT_PROFILE: &str = include_str!("../profiles/seccomp-default.json");

/// A seccomp profile in Docker's format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// Action for every syscall no rule matches.
    pub default_action: LinuxSeccompAction,
    /// errno returned by the default action when it is `SCMP_ACT_ERRNO` (default EPERM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_errno_ret: Option<u32>,
    /// Architectures the filter accepts (the old form; exclusive with `archMap`).
    #[serde(default, deserialize_with = "nullable")]
    pub architectures: Vec<Arch>,
    /// Per native architecture, the architectures the filter accepts.
    #[serde(default, deserialize_with = "nullable")]
    pub arch_map: Vec<ArchMap>,
    /// Rules, in order.
    #[serde(default, deserialize_with = "nullable")]
    pub syscalls: Vec<Syscall>,
    /// Filter flags (`SECCOMP_FILTER_FLAG_*`).
    #[serde(default, deserialize_with = "nullable")]
    pub flags: Vec<LinuxSeccompFilterFlag>,
    /// Socket of a seccomp agent for `SCMP_ACT_NOTIFY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_path: Option<String>,
    /// Opaque data passed to the seccomp agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_metadata: Option<String>,
}

/// One `archMap` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchMap {
    /// The native architecture this entry applies to.
    pub architecture: Arch,
    /// Compatible architectures accepted too (e.g. x86 and x32 on x86-64).
    #[serde(default, deserialize_with = "nullable")]
    pub sub_architectures: Vec<Arch>,
}

/// One rule: syscalls, the action, optional argument filters and conditions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Syscall {
    /// A single syscall name (the old form; exclusive with `names`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Syscall names.
    #[serde(default, deserialize_with = "nullable")]
    pub names: Vec<String>,
    /// What happens when the rule matches.
    pub action: LinuxSeccompAction,
    /// errno for `SCMP_ACT_ERRNO` (default EPERM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errno_ret: Option<u32>,
    /// Argument comparisons, all of which must hold.
    #[serde(default, deserialize_with = "nullable")]
    pub args: Vec<Arg>,
    /// Free text.
    #[serde(default, deserialize_with = "nullable")]
    pub comment: String,
    /// The rule applies only when all of these hold.
    #[serde(default, deserialize_with = "nullable")]
    pub includes: Filter,
    /// The rule does not apply when any of these holds.
    #[serde(default, deserialize_with = "nullable")]
    pub excludes: Filter,
}

/// Conditions of a rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    /// Capabilities (`CAP_SYS_ADMIN`, …).
    #[serde(default, deserialize_with = "nullable")]
    pub caps: Vec<String>,
    /// Architectures in Go's naming (`amd64`, `arm64`, `s390x`, …).
    #[serde(default, deserialize_with = "nullable")]
    pub arches: Vec<String>,
    /// Minimum kernel version `MAJOR.MINOR` (only in `includes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kernel: Option<String>,
}

/// An argument comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arg {
    /// Argument index, 0 to 5.
    pub index: u32,
    /// Value compared with (the mask for `SCMP_CMP_MASKED_EQ`).
    pub value: u64,
    /// Second value (the expected masked value for `SCMP_CMP_MASKED_EQ`).
    #[serde(default)]
    pub value_two: u64,
    /// The comparison.
    pub op: LinuxSeccompOperator,
}

fn nullable<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl Profile {
    /// Parse a profile; `source` names it in errors (a file path). Errors name the JSON path of
    /// the bad value (`syscalls[3].action: unknown variant …`) and the line.
    pub fn parse(source: &str, text: &str) -> Result<Profile> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let p: Profile = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            EngineError::InvalidArgument(format!(
                "invalid seccomp profile {source}: at {path} (line {}): {inner}",
                inner.line()
            ))
        })?;
        p.validate(source)?;
        Ok(p)
    }

    fn validate(&self, source: &str) -> Result<()> {
        let bad = |what: String| {
            EngineError::InvalidArgument(format!("invalid seccomp profile {source}: {what}"))
        };
        if !self.architectures.is_empty() && !self.arch_map.is_empty() {
            return Err(bad(
                "use either architectures or archMap, not both".to_string()
            ));
        }
        if self.default_action == LinuxSeccompAction::ScmpActNotify {
            return Err(bad("defaultAction cannot be SCMP_ACT_NOTIFY".into()));
        }
        for (i, s) in self.syscalls.iter().enumerate() {
            if s.name.is_some() && !s.names.is_empty() {
                return Err(bad(format!(
                    "at syscalls[{i}]: use either name or names, not both"
                )));
            }
            if s.name.is_none() && s.names.is_empty() {
                return Err(bad(format!("at syscalls[{i}]: names is empty")));
            }
            if s.excludes.min_kernel.is_some() {
                return Err(bad(format!(
                    "at syscalls[{i}].excludes.minKernel: not supported (use includes.minKernel)"
                )));
            }
            if let Some(k) = &s.includes.min_kernel {
                parse_kernel(k).ok_or_else(|| {
                    bad(format!(
                        "at syscalls[{i}].includes.minKernel: {k:?} is not a kernel version such as 4.8"
                    ))
                })?;
            }
            for (j, a) in s.args.iter().enumerate() {
                if a.index > 5 {
                    return Err(bad(format!(
                        "at syscalls[{i}].args[{j}].index: {} is not an argument index (0 to 5)",
                        a.index
                    )));
                }
            }
        }
        Ok(())
    }

    /// berth's default profile (parsed once per process).
    pub fn default_profile() -> &'static Profile {
        static P: OnceLock<Profile> = OnceLock::new();
        P.get_or_init(|| {
            Profile::parse("(builtin default)", DEFAULT_PROFILE)
                .unwrap_or_else(|e| panic!("the builtin seccomp profile is invalid: {e}"))
        })
    }

    /// The OCI `linux.seccomp` for a container with capability set `caps` (names such as
    /// `CAP_SYS_ADMIN`) on the native architecture and the running kernel.
    ///
    /// Errors: as [`Profile::to_oci_for`].
    pub fn to_oci(&self, caps: &HashSet<String>) -> Result<LinuxSeccomp> {
        self.to_oci_for(caps, native_arch(), kernel_version())
    }

    /// [`Profile::to_oci`] for an explicit architecture (`(SCMP arch, Go arch name)`) and
    /// kernel version `(major, minor)`.
    ///
    /// Errors: [`EngineError::Other`] when a rule cannot be expressed in the OCI spec types.
    pub fn to_oci_for(
        &self,
        caps: &HashSet<String>,
        arch: Option<(Arch, &str)>,
        kernel: (u32, u32),
    ) -> Result<LinuxSeccomp> {
        let mut arches: Vec<Arch> = self.architectures.clone();
        if let Some((native, _)) = arch {
            for m in &self.arch_map {
                if m.architecture == native {
                    arches.push(m.architecture);
                    arches.extend(m.sub_architectures.iter().copied());
                }
            }
        }
        let goarch = arch.map(|(_, g)| g).unwrap_or("");
        let mut rules = Vec::new();
        for s in &self.syscalls {
            if !applies(s, caps, goarch, kernel) {
                continue;
            }
            let names = match &s.name {
                Some(n) => vec![n.clone()],
                None => s.names.clone(),
            };
            let args: Vec<LinuxSeccompArg> = s.args.iter().map(oci_arg).collect();
            rules.push(syscall(&names, s, &args)?);
        }
        let mut b = oci_spec::runtime::LinuxSeccompBuilder::default()
            .default_action(self.default_action)
            .architectures(arches)
            .syscalls(rules);
        if let Some(e) = self.default_errno_ret {
            b = b.default_errno_ret(e);
        }
        if !self.flags.is_empty() {
            b = b.flags(self.flags.clone());
        }
        if let Some(p) = &self.listener_path {
            b = b.listener_path(p);
        }
        if let Some(m) = &self.listener_metadata {
            b = b.listener_metadata(m.clone());
        }
        b.build().map_err(spec_err)
    }
}

/// The spec as the builtin runtime must see it. libcontainer 0.7 reads the two values of
/// `SCMP_CMP_MASKED_EQ` the other way round from the runtime spec and runc (it takes
/// `valueTwo` as the mask), which would turn Docker's "clone without namespace flags" rule
/// into "any clone". The builtin runtime therefore gets a copy with the two swapped; OCI
/// runtime binaries get the spec as written.
pub fn for_libcontainer(spec: &oci_spec::runtime::Spec) -> oci_spec::runtime::Spec {
    let mut spec = spec.clone();
    let Some(linux) = spec.linux_mut() else {
        return spec;
    };
    let Some(sc) = linux.seccomp().clone() else {
        return spec;
    };
    let mut sc = sc;
    if let Some(rules) = sc.syscalls().clone() {
        let fixed: Vec<LinuxSyscall> = rules
            .into_iter()
            .map(|mut r| {
                if let Some(args) = r.args().clone() {
                    let args = args
                        .into_iter()
                        .map(|a| {
                            if a.op() != LinuxSeccompOperator::ScmpCmpMaskedEq {
                                return a;
                            }
                            oci_spec::runtime::LinuxSeccompArgBuilder::default()
                                .index(a.index())
                                .value(a.value_two().unwrap_or(0))
                                .value_two(a.value())
                                .op(a.op())
                                .build()
                                .unwrap_or(a)
                        })
                        .collect();
                    r.set_args(Some(args));
                }
                r
            })
            .collect();
        sc.set_syscalls(Some(fixed));
    }
    linux.set_seccomp(Some(sc));
    spec
}

fn spec_err(e: oci_spec::OciSpecError) -> EngineError {
    EngineError::Other(format!("building the runtime spec: {e}"))
}

fn syscall(names: &[String], s: &Syscall, args: &[LinuxSeccompArg]) -> Result<LinuxSyscall> {
    let mut b = oci_spec::runtime::LinuxSyscallBuilder::default()
        .names(names.to_vec())
        .action(s.action);
    if let Some(e) = s.errno_ret {
        b = b.errno_ret(e);
    }
    if !args.is_empty() {
        b = b.args(args.to_vec());
    }
    b.build().map_err(spec_err)
}

fn oci_arg(a: &Arg) -> LinuxSeccompArg {
    let (v1, v2) = (a.value, a.value_two);
    oci_spec::runtime::LinuxSeccompArgBuilder::default()
        // An index was checked to be 0..=5 when the profile was parsed.
        .index(usize::try_from(a.index).unwrap_or(usize::MAX))
        .value(v1)
        .value_two(v2)
        .op(a.op)
        .build()
        .unwrap_or_default()
}

fn applies(s: &Syscall, caps: &HashSet<String>, goarch: &str, kernel: (u32, u32)) -> bool {
    if s.excludes.arches.iter().any(|a| a == goarch) {
        return false;
    }
    if !s.includes.arches.is_empty() && !s.includes.arches.iter().any(|a| a == goarch) {
        return false;
    }
    if s.excludes.caps.iter().any(|c| caps.contains(c)) {
        return false;
    }
    if !s.includes.caps.iter().all(|c| caps.contains(c)) {
        return false;
    }
    if let Some(k) = s.includes.min_kernel.as_deref().and_then(parse_kernel) {
        if kernel < k {
            return false;
        }
    }
    true
}

fn parse_kernel(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next().unwrap_or("0");
    let minor: String = minor.chars().take_while(|c| c.is_ascii_digit()).collect();
    Some((major, minor.parse().unwrap_or(0)))
}

/// The running kernel's `(major, minor)` version.
pub fn kernel_version() -> (u32, u32) {
    static K: OnceLock<(u32, u32)> = OnceLock::new();
    *K.get_or_init(|| {
        let u = rustix::system::uname();
        parse_kernel(&u.release().to_string_lossy()).unwrap_or((0, 0))
    })
}

/// The native architecture as `(SCMP arch, Go's name)`; `None` when seccomp does not know it.
pub fn native_arch() -> Option<(Arch, &'static str)> {
    Some(match std::env::consts::ARCH {
        "x86_64" => (Arch::ScmpArchX86_64, "amd64"),
        "x86" => (Arch::ScmpArchX86, "386"),
        "aarch64" => (Arch::ScmpArchAarch64, "arm64"),
        "arm" => (Arch::ScmpArchArm, "arm"),
        "riscv64" => (Arch::ScmpArchRiscv64, "riscv64"),
        "s390x" => (Arch::ScmpArchS390x, "s390x"),
        "powerpc64" => (Arch::ScmpArchPpc64le, "ppc64le"),
        "mips64" => (Arch::ScmpArchMips64, "mips64"),
        "loongarch64" => (Arch::ScmpArchLoongarch64, "loong64"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(v: &[&str]) -> HashSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn allowed(s: &LinuxSeccomp, name: &str) -> Vec<LinuxSyscall> {
        s.syscalls()
            .iter()
            .flatten()
            .filter(|r| r.names().iter().any(|n| n == name))
            .cloned()
            .collect()
    }

    #[test]
    fn default_profile_follows_docker_policy() {
        let p = Profile::default_profile();
        assert_eq!(p.default_action, LinuxSeccompAction::ScmpActErrno);
        let amd64 = Some((Arch::ScmpArchX86_64, "amd64"));
        let def = caps(crate::capabilities::DEFAULT_CAPS);
        let s = p.to_oci_for(&def, amd64, (6, 1)).unwrap();
        assert_eq!(
            s.architectures().as_deref().unwrap(),
            &[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
        );
        for denied in [
            "mount",
            "unshare",
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf_event_open",
            "kexec_load",
            "open_by_handle_at",
            "io_uring_setup",
            "io_uring_enter",
            "setns",
            "init_module",
        ] {
            assert!(
                allowed(&s, denied).is_empty(),
                "{denied} allowed by default"
            );
        }
        for ok in ["read", "execve", "ptrace", "arch_prctl", "chroot", "socket"] {
            assert!(!allowed(&s, ok).is_empty(), "{ok} refused by default");
        }
        // clone only without namespace flags (both readings of MASKED_EQ), clone3 → ENOSYS.
        let clone = allowed(&s, "clone");
        assert_eq!(clone.len(), 1);
        let a = clone[0].args().as_ref().unwrap()[0];
        assert_eq!(a.op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        assert_eq!((a.value(), a.value_two()), (0x7E02_0000, Some(0)));
        let clone3 = allowed(&s, "clone3");
        assert_eq!(clone3[0].errno_ret(), Some(38));
        // Not on arm64: no x86 calls, the arm ones instead.
        let arm = p
            .to_oci_for(&def, Some((Arch::ScmpArchAarch64, "arm64")), (6, 1))
            .unwrap();
        assert!(allowed(&arm, "arch_prctl").is_empty());
        assert!(!allowed(&arm, "set_tls").is_empty());
        // ptrace needs 4.8 or CAP_SYS_PTRACE.
        let old = p.to_oci_for(&def, amd64, (4, 4)).unwrap();
        assert!(allowed(&old, "ptrace").is_empty());
    }

    #[test]
    fn sys_admin_unlocks_namespaces() {
        let p = Profile::default_profile();
        let mut c = caps(crate::capabilities::DEFAULT_CAPS);
        c.insert("CAP_SYS_ADMIN".into());
        let s = p
            .to_oci_for(&c, Some((Arch::ScmpArchX86_64, "amd64")), (6, 1))
            .unwrap();
        for n in ["mount", "unshare", "setns", "clone3"] {
            let r = allowed(&s, n);
            assert!(
                r.iter()
                    .any(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none()),
                "{n}"
            );
        }
        assert!(allowed(&s, "keyctl").is_empty());
    }

    /// Podman's own profile file (Debian's golang-github-containers-common, installed by
    /// scripts/setup.sh) loads unchanged and keeps its policy.
    #[test]
    fn podmans_profile_file_loads() {
        let path = "/usr/share/containers/seccomp.json";
        let Ok(text) = std::fs::read_to_string(path) else {
            eprintln!(
                "skipped: {path} is missing (apt-get install golang-github-containers-common)"
            );
            return;
        };
        let p = Profile::parse(path, &text).unwrap();
        assert_eq!(p.default_action, LinuxSeccompAction::ScmpActErrno);
        let amd64 = Some((Arch::ScmpArchX86_64, "amd64"));
        let s = p
            .to_oci_for(&caps(crate::capabilities::DEFAULT_CAPS), amd64, (6, 1))
            .unwrap();
        // Its default is ENOSYS; read allowed; kexec_load refused with EPERM by its own rule.
        assert_eq!(s.default_errno_ret(), Some(38));
        assert!(allowed(&s, "read")
            .iter()
            .any(|r| r.action() == LinuxSeccompAction::ScmpActAllow));
        let k = allowed(&s, "kexec_load");
        assert!(!k.is_empty());
        assert!(k
            .iter()
            .all(|r| r.action() == LinuxSeccompAction::ScmpActErrno && r.errno_ret() == Some(1)));
    }

    #[test]
    fn malformed_profiles_name_the_path() {
        let e = Profile::parse(
            "/x/p.json",
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"},{"names":["write"],"action":"ALLOW"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("/x/p.json") && e.contains("syscalls[1].action"),
            "{e}"
        );
        let e = Profile::parse("p.json", r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":"zero","value":1,"op":"SCMP_CMP_EQ"}]}]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("syscalls[0].args[0].index"), "{e}");
        assert!(Profile::parse("p.json", "{").is_err());
        // Docker-style nulls and unknown fields load.
        let p = Profile::parse(
            "p.json",
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"archMap":null,"syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW","args":null,"comment":"","includes":{},"excludes":{},"extra":1}]}"#,
        )
        .unwrap();
        assert_eq!(p.syscalls.len(), 1);
    }
}
