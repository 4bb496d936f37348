//! AppArmor confinement as Docker applies it.
//!
//! On a host that enforces AppArmor, every container process runs under a profile: the one
//! named with `--security-opt apparmor=NAME`, `unconfined` for `--privileged` (or
//! `apparmor=unconfined`), else berth's default profile [`DEFAULT_PROFILE`]. That profile has
//! the rules of Docker's `docker-default`: everything allowed except mounting, writes into
//! /proc outside the process directories and `/proc/sys/kernel/shm*`, reading the kernel's
//! memory and `sysrq-trigger`, writes under /sys outside the cgroup tree, any access to the
//! firmware tables and to securityfs; signals only from unconfined processes, berth itself and
//! the container's own processes; ptrace only among the container's processes.
//!
//! Like Docker, berth generates the profile and loads it with `apparmor_parser -Kr` when it is
//! not loaded yet (at create and at exec: a profile unloaded meanwhile is loaded again). On a
//! host without AppArmor (or without `apparmor_parser`, or when berth itself runs inside a
//! container) no profile is set and `--security-opt apparmor=...` is accepted and has no
//! effect, as with Docker.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::security::SecurityConfig;
use crate::{EngineError, Result};

/// The name of berth's default profile (Docker's is `docker-default`).
pub const DEFAULT_PROFILE: &str = "berth-default";

/// The profile name that means "no AppArmor confinement".
pub const UNCONFINED: &str = "unconfined";

const ENABLED_PARAMETER: &str = "/sys/module/apparmor/parameters/enabled";
const SECURITYFS_DIR: &str = "/sys/kernel/security/apparmor";
const LOADED_PROFILES: &str = "/sys/kernel/security/apparmor/profiles";
const PARSERS: &[&str] = &["/sbin/apparmor_parser", "/usr/sbin/apparmor_parser"];
const PROFILE_DIR: &str = "/etc/apparmor.d";

/// What decides whether the host supports AppArmor (see [`host_supports`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// Contents of `/sys/module/apparmor/parameters/enabled` (`None`: the file is missing,
    /// the kernel has no AppArmor).
    pub enabled_parameter: Option<String>,
    /// Whether AppArmor's securityfs directory exists.
    pub securityfs: bool,
    /// Whether `apparmor_parser` is installed.
    pub parser: bool,
    /// Whether berth runs inside a container (the `container` environment variable is set).
    pub in_container: bool,
}

impl HostFacts {
    /// The facts of this host.
    pub fn probe() -> HostFacts {
        HostFacts {
            enabled_parameter: std::fs::read_to_string(ENABLED_PARAMETER).ok(),
            securityfs: Path::new(SECURITYFS_DIR).is_dir(),
            parser: parser().is_some(),
            in_container: std::env::var_os("container").is_some_and(|v| !v.is_empty()),
        }
    }

    /// Whether containers get AppArmor profiles on such a host: AppArmor enabled in the
    /// kernel (the parameter starts with `Y`), its securityfs mounted, `apparmor_parser`
    /// installed and berth not inside a container (Docker's conditions).
    pub fn supports(&self) -> bool {
        self.securityfs
            && self.parser
            && !self.in_container
            && self
                .enabled_parameter
                .as_deref()
                .is_some_and(|s| s.starts_with('Y'))
    }
}

/// Whether this host applies AppArmor profiles to containers ([`HostFacts::supports`]),
/// probed once per process.
pub fn host_supports() -> bool {
    static SUPPORTS: OnceLock<bool> = OnceLock::new();
    *SUPPORTS.get_or_init(|| HostFacts::probe().supports())
}

/// The `process.apparmorProfile` of a container's processes (its init and every exec):
/// `None` on a host without AppArmor; else the profile named with `--security-opt
/// apparmor=NAME` (also for `--privileged`), `unconfined` for a privileged container without
/// one, [`DEFAULT_PROFILE`] otherwise.
pub fn profile_for(sec: &SecurityConfig, host_supports: bool) -> Option<String> {
    if !host_supports {
        return None;
    }
    Some(match (&sec.apparmor, sec.privileged) {
        (Some(name), _) => name.clone(),
        (None, true) => UNCONFINED.to_string(),
        (None, false) => DEFAULT_PROFILE.to_string(),
    })
}

/// Inputs of [`default_profile`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileParams {
    /// The profile's name.
    pub name: String,
    /// The profile berth itself runs under (its processes send signals to containers).
    pub engine_profile: String,
    /// Whether `<tunables/global>` exists (it defines `@{PROC}`); else `@{PROC}` is defined
    /// in the profile.
    pub tunables_global: bool,
    /// Whether `<abstractions/base>` exists (included inside the profile when it does).
    pub abstractions_base: bool,
}

impl ProfileParams {
    /// The parameters on this host for a profile called `name`.
    pub fn probe(name: &str) -> ProfileParams {
        let dir = Path::new(PROFILE_DIR);
        ProfileParams {
            name: name.to_string(),
            engine_profile: current_profile(),
            tunables_global: dir.join("tunables/global").is_file(),
            abstractions_base: dir.join("abstractions/base").is_file(),
        }
    }
}

/// The profile the calling process runs under (`unconfined` when unknown).
fn current_profile() -> String {
    [
        "/proc/self/attr/apparmor/current",
        "/proc/self/attr/current",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok())
    .and_then(|s| {
        // "NAME (enforce)": names have no spaces.
        let name = s.split_whitespace().next()?.to_string();
        (!name.is_empty()).then_some(name)
    })
    .unwrap_or_else(|| UNCONFINED.to_string())
}

/// The text of berth's default profile (Docker's `docker-default` rules), for
/// `apparmor_parser`.
pub fn default_profile(p: &ProfileParams) -> String {
    let mut out = String::new();
    if p.tunables_global {
        out.push_str("#include <tunables/global>\n");
    } else {
        out.push_str("@{PROC}=/proc/\n");
    }
    out.push('\n');
    out.push_str(&format!(
        "profile {} flags=(attach_disconnected,mediate_deleted) {{\n",
        p.name
    ));
    if p.abstractions_base {
        out.push_str("  #include <abstractions/base>\n\n");
    }
    // Allowed by default: the rest of the profile takes away.
    for rule in ["network", "capability", "file", "umount"] {
        out.push_str(&format!("  {rule},\n"));
    }
    out.push('\n');
    out.push_str("  # Signals: from unconfined host processes and berth; within the container.\n");
    out.push_str("  signal (receive) peer=unconfined,\n");
    if p.engine_profile != UNCONFINED {
        out.push_str(&format!("  signal (receive) peer={},\n", p.engine_profile));
    }
    out.push_str(&format!("  signal (send,receive) peer={},\n", p.name));
    out.push('\n');
    out.push_str(
        "  # /proc: no writes to its top-level files, nor below any entry other than a\n  \
         # process directory (a number not starting with 0) or sys; in /proc/sys only\n  \
         # kernel/shm* is writable (IPC limits are namespaced).\n",
    );
    for rule in PROC_DENIES {
        out.push_str(&format!("  deny {rule},\n"));
    }
    out.push('\n');
    out.push_str("  deny mount,\n\n");
    out.push_str(
        "  # /sys: read-only but for the cgroup tree; firmware and securityfs not even readable.\n",
    );
    for rule in SYS_DENIES {
        out.push_str(&format!("  deny {rule},\n"));
    }
    out.push('\n');
    out.push_str("  # ps and the like read their fellow processes; nothing outside.\n");
    out.push_str(&format!(
        "  ptrace (trace,read,tracedby,readby) peer={},\n",
        p.name
    ));
    out.push_str("}\n");
    out
}

/// The /proc rules (access modes after the path).
const PROC_DENIES: &[&str] = &[
    "@{PROC}/* w",
    // Entries of 1, 2, 3 and 4+ characters that are neither a pid nor `sys`.
    "@{PROC}/{[^1-9],[^1-9][^0-9],[^1-9s][^0-9y][^0-9s],[^1-9][^0-9][^0-9][^0-9]*}/** w",
    "@{PROC}/sys/[^k]** w",
    "@{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w",
    "@{PROC}/sysrq-trigger rwklx",
    "@{PROC}/kcore rwklx",
];

/// The /sys rules: every top-level path but `fs/cgroup` (spelled out letter by letter, as
/// AppArmor globs have no negation of words).
const SYS_DENIES: &[&str] = &[
    "/sys/[^f]*/** wklx",
    "/sys/f[^s]*/** wklx",
    "/sys/fs/[^c]*/** wklx",
    "/sys/fs/c[^g]*/** wklx",
    "/sys/fs/cg[^r]*/** wklx",
    "/sys/firmware/** rwklx",
    "/sys/kernel/security/** rwklx",
];

/// `apparmor_parser`, if installed.
pub fn parser() -> Option<PathBuf> {
    PARSERS.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Whether the kernel's list of loaded profiles (`/sys/kernel/security/apparmor/profiles`:
/// one `NAME (MODE)` a line) has `name`.
pub fn listed(profiles: &str, name: &str) -> bool {
    profiles.lines().any(|l| {
        l.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with(' '))
    })
}

/// Make sure `profile` (a container's `process.apparmorProfile`) can be applied: nothing for
/// `None` and `unconfined`; [`DEFAULT_PROFILE`] is generated and loaded with
/// `apparmor_parser -Kr` when the kernel does not have it; any other profile must be loaded
/// already.
///
/// Errors: the default profile cannot be loaded, or a named profile is not loaded (saying how
/// to load it or to run unconfined).
pub fn ensure_loaded(profile: Option<&str>) -> Result<()> {
    let Some(name) = profile.filter(|n| *n != UNCONFINED && !n.is_empty()) else {
        return Ok(());
    };
    let loaded = std::fs::read_to_string(LOADED_PROFILES)
        .map(|s| listed(&s, name))
        .map_err(|e| {
            EngineError::AppArmor(format!(
                "cannot list the loaded profiles ({LOADED_PROFILES}: {e}); run with --security-opt apparmor=unconfined"
            ))
        })?;
    if loaded {
        return Ok(());
    }
    if name != DEFAULT_PROFILE {
        return Err(EngineError::AppArmor(format!(
            "profile {name:?} is not loaded: load it with apparmor_parser -r FILE, or choose another with --security-opt apparmor=NAME"
        )));
    }
    load(&default_profile(&ProfileParams::probe(name)))
        .map_err(|e| EngineError::AppArmor(format!(
            "the host enforces AppArmor but the {name} profile could not be loaded: {e}; check apparmor_parser, or run with --security-opt apparmor=unconfined"
        )))
}

/// Load (or replace) a profile given as text: `apparmor_parser -Kr` reading it on stdin.
fn load(text: &str) -> std::result::Result<(), String> {
    let parser = parser().ok_or("apparmor_parser is not installed")?;
    parse(&parser, &["-K", "-r"], text)
}

/// Run `parser FLAGS` with `text` on stdin; `Err` carries its message.
///
/// `apparmor_parser -QK` compiles a profile without loading it (what the tests use on hosts
/// without AppArmor).
pub fn parse(parser: &Path, flags: &[&str], text: &str) -> std::result::Result<(), String> {
    let mut child = std::process::Command::new(parser)
        .args(flags)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", parser.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| format!("{}: writing the profile: {e}", parser.display()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{}: {e}", parser.display()))?;
    if out.status.success() {
        return Ok(());
    }
    let msg = String::from_utf8_lossy(&out.stderr);
    let msg = msg
        .lines()
        .filter(|l| !l.starts_with("Cache read/write disabled"))
        .collect::<Vec<_>>()
        .join("; ");
    Err(format!("{} failed: {}", parser.display(), msg.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(param: Option<&str>) -> HostFacts {
        HostFacts {
            enabled_parameter: param.map(str::to_string),
            securityfs: true,
            parser: true,
            in_container: false,
        }
    }

    #[test]
    fn host_support_follows_dockers_conditions() {
        assert!(facts(Some("Y\n")).supports());
        assert!(!facts(Some("N\n")).supports());
        assert!(!facts(None).supports(), "no AppArmor in the kernel");
        let mut f = facts(Some("Y\n"));
        f.parser = false;
        assert!(!f.supports(), "no apparmor_parser");
        let mut f = facts(Some("Y\n"));
        f.securityfs = false;
        assert!(!f.supports(), "securityfs not mounted");
        let mut f = facts(Some("Y\n"));
        f.in_container = true;
        assert!(!f.supports(), "berth inside a container");
    }

    #[test]
    fn profile_choice() {
        let mut sec = SecurityConfig::default();
        // Without AppArmor on the host nothing is set, whatever was asked.
        assert_eq!(profile_for(&sec, false), None);
        sec.apparmor = Some("custom".into());
        assert_eq!(profile_for(&sec, false), None);
        // With it: the default, unconfined for --privileged, a named one always wins.
        let mut sec = SecurityConfig::default();
        assert_eq!(profile_for(&sec, true).as_deref(), Some(DEFAULT_PROFILE));
        sec.privileged = true;
        assert_eq!(profile_for(&sec, true).as_deref(), Some(UNCONFINED));
        sec.apparmor = Some("custom".into());
        assert_eq!(profile_for(&sec, true).as_deref(), Some("custom"));
        sec.privileged = false;
        sec.apparmor = Some(UNCONFINED.into());
        assert_eq!(profile_for(&sec, true).as_deref(), Some(UNCONFINED));
    }

    #[test]
    fn loaded_profile_list() {
        let list = "berth-default (enforce)\n/usr/bin/man (enforce)\nberth-default-x (complain)\n";
        assert!(listed(list, "berth-default"));
        assert!(listed(list, "/usr/bin/man"));
        assert!(!listed(list, "berth"));
        assert!(!listed(list, "docker-default"));
        // Nothing to load for no profile or unconfined, on any host.
        assert!(ensure_loaded(None).is_ok());
        assert!(ensure_loaded(Some(UNCONFINED)).is_ok());
    }

    #[test]
    fn default_profile_rules() {
        let p = ProfileParams {
            name: "berth-default".into(),
            engine_profile: "berth-engine".into(),
            tunables_global: false,
            abstractions_base: false,
        };
        let t = default_profile(&p);
        assert!(t.starts_with("@{PROC}=/proc/\n"), "{t}");
        assert!(t.contains("profile berth-default flags=(attach_disconnected,mediate_deleted) {"));
        for rule in [
            "  network,",
            "  capability,",
            "  file,",
            "  umount,",
            "  deny mount,",
            "  signal (receive) peer=unconfined,",
            "  signal (receive) peer=berth-engine,",
            "  signal (send,receive) peer=berth-default,",
            "  deny @{PROC}/kcore rwklx,",
            "  deny /sys/firmware/** rwklx,",
            "  ptrace (trace,read,tracedby,readby) peer=berth-default,",
        ] {
            assert!(t.lines().any(|l| l == rule), "{rule:?} missing:\n{t}");
        }
        assert!(!t.contains("#include"));
        let p = ProfileParams {
            engine_profile: UNCONFINED.into(),
            tunables_global: true,
            abstractions_base: true,
            ..p
        };
        let t = default_profile(&p);
        assert!(t.starts_with("#include <tunables/global>\n"));
        assert!(t.contains("  #include <abstractions/base>\n"));
        assert_eq!(t.matches("peer=unconfined").count(), 1, "{t}");
    }

    /// The generated profile compiles with the real `apparmor_parser` (Debian's `apparmor`
    /// package, installed by scripts/setup.sh), without loading it: this works on hosts whose
    /// kernel has no AppArmor. Both shapes: with the host's include files and without.
    #[test]
    fn default_profile_compiles_with_apparmor_parser() {
        let Some(parser) = parser() else {
            assert!(
                std::env::var_os("CI").is_none(),
                "apparmor_parser is missing: scripts/setup.sh installs Debian's apparmor"
            );
            eprintln!("skipped: apparmor_parser is not installed (apt-get install apparmor)");
            return;
        };
        let host = ProfileParams::probe(DEFAULT_PROFILE);
        let bare = ProfileParams {
            tunables_global: false,
            abstractions_base: false,
            engine_profile: "some-engine".into(),
            ..host.clone()
        };
        for p in [host, bare] {
            let text = default_profile(&p);
            parse(&parser, &["-Q", "-K"], &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        }
        // And the parser does refuse a broken profile (the check is real).
        let broken = default_profile(&ProfileParams::probe(DEFAULT_PROFILE))
            .replace("deny mount,", "deny mount");
        assert!(parse(&parser, &["-Q", "-K"], &broken).is_err());
    }
}
