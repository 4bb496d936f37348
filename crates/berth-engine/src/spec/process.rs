//! The process part of the runtime spec, shared by the container's init and `exec`:
//! capabilities, user and groups, rlimits, no_new_privs, AppArmor; and the seccomp section.

use std::collections::HashSet;
use std::path::Path;

use oci_spec::runtime::{
    LinuxCapabilitiesBuilder, PosixRlimit, PosixRlimitBuilder, PosixRlimitType, Process,
    ProcessBuilder, UserBuilder,
};

use super::oci_err;
use crate::seccomp::Profile;
use crate::security::{SeccompChoice, SecurityConfig};
use crate::user::ResolvedUser;
use crate::{EngineError, Result};

/// The capability names the container gets (Docker's rules, see [`crate::capabilities`]).
pub fn container_caps(sec: &SecurityConfig) -> Vec<String> {
    crate::capabilities::compute(sec.privileged, &sec.cap_add, &sec.cap_drop)
}

/// The process part shared by the container's init and `exec`.
///
/// Errors: [`EngineError::InvalidArgument`] for an unknown `--ulimit` name;
/// [`EngineError::Other`] when the OCI spec builders refuse a value.
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
        .build()
        .map_err(oci_err)?;
    // As Docker: root gets the set as effective and permitted; any other user only the
    // bounding set (execve clears the others for it anyway, and capabilities permitted before
    // execve would let a file capability through no_new_privs). Unset builder fields take
    // oci-spec's defaults (a few inheritable and ambient capabilities): Docker gives none.
    let root = user.uid == 0;
    capabilities.set_effective(root.then(|| caps.clone()));
    capabilities.set_permitted(root.then_some(caps));
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
    p.set_apparmor_profile(crate::apparmor::profile_for(
        sec,
        crate::apparmor::host_supports(),
    ));
    Ok(p)
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

/// The container's `linux.seccomp`: none when privileged or unconfined, else the chosen
/// profile converted for the container's capabilities and the host's architecture.
///
/// Errors: as [`crate::seccomp::Profile::to_oci`].
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
