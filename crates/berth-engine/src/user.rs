//! Resolve `-u USER[:GROUP]` and `--group-add` against the container's /etc/passwd and
//! /etc/group, following Docker's rules (runc's `GetExecUser`, then the daemon's group handling):
//!
//! - USER is a name or a number. A name must have a passwd entry; a number may lack one, and
//!   then the uid is that number, the primary gid 0 and the home `/`. A number matching an entry
//!   takes that entry (its name, primary gid and home).
//! - Without `:GROUP`, the supplementary groups are every group in /etc/group that lists the
//!   user's *name* as a member (none for a number without an entry).
//! - With `:GROUP` (a name or a number; a number may lack an entry, a name must have one), the
//!   primary gid is that group's and there are no implicit supplementary groups: only the
//!   named group.
//! - `--group-add` entries (names or numbers, looked up the same way) are appended.
//! - The primary gid is always in the supplementary list too (the fix for CVE-2022-36109:
//!   otherwise a process could drop its primary group with `setgroups` and escape a
//!   group-deny permission such as a file mode `0705` owned by that group).
//!
//! Ids must be between 0 and 2147483647, as in Docker.

use std::path::Path;

use crate::{rootfs, EngineError, Result};

/// The identity a container process runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// Real and effective user id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (the OCI spec's `additionalGids`), the primary gid included, no
    /// duplicates, in the order: implicit memberships, `--group-add`, primary gid.
    pub additional_gids: Vec<u32>,
    /// The home directory from the passwd entry (`/` without one), for `HOME`.
    pub home: String,
}

/// Docker's limit for uids and gids (`0` to `2^31 - 1`).
const MAX_ID: u32 = i32::MAX.unsigned_abs();

/// Resolve `spec` (`USER[:GROUP]`, empty = root) and `group_add` against the files of the
/// container's root filesystem `rootfs` (missing files count as empty).
///
/// # Errors
/// [`EngineError::InvalidArgument`] when a name has no entry or an id is out of range.
pub fn resolve(rootfs: &Path, spec: &str, group_add: &[String]) -> Result<ResolvedUser> {
    let passwd = rootfs::read_file_in_root(rootfs, "/etc/passwd").unwrap_or_default();
    let groups = rootfs::read_file_in_root(rootfs, "/etc/group").unwrap_or_default();
    resolve_in(
        &String::from_utf8_lossy(&passwd),
        &String::from_utf8_lossy(&groups),
        spec,
        group_add,
    )
}

/// One /etc/group entry.
struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn group_entries(text: &str) -> Vec<GroupEntry<'_>> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(GroupEntry {
                name: f[0],
                gid: f[2].trim().parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .map(str::trim)
                            .filter(|m| !m.is_empty())
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

fn parse_id(s: &str, what: &str) -> Result<Option<u32>> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match s.parse::<u32>() {
        Ok(n) if n <= MAX_ID => Ok(Some(n)),
        _ => Err(EngineError::InvalidArgument(format!(
            "invalid {what} {s}: uids and gids must be in range 0-{MAX_ID}"
        ))),
    }
}

/// Look a group up by name or number; a number without an entry stands for itself.
fn lookup_group(groups: &[GroupEntry<'_>], g: &str) -> Result<u32> {
    let num = parse_id(g, "group id")?;
    if let Some(e) = groups.iter().find(|e| e.name == g || Some(e.gid) == num) {
        return Ok(e.gid);
    }
    num.ok_or_else(|| {
        EngineError::InvalidArgument(format!(
            "unable to find group {g}: no matching entries in group file"
        ))
    })
}

/// [`resolve`] over the text of a passwd and a group file.
///
/// # Errors
/// As [`resolve`].
pub fn resolve_in(
    passwd: &str,
    group: &str,
    spec: &str,
    group_add: &[String],
) -> Result<ResolvedUser> {
    let (user, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g).filter(|g| !g.is_empty())),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let uid_arg = parse_id(user, "user id")?;
    let entry = passwd
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            let uid = f[2].trim().parse::<u32>().ok()?;
            let gid = f[3].trim().parse::<u32>().ok()?;
            (f[0] == user || Some(uid) == uid_arg).then(|| {
                let home = f.get(5).copied().filter(|h| !h.is_empty()).unwrap_or("/");
                (f[0], uid, gid, home.to_string())
            })
        });
    let (uname, uid, mut gid, home) = match (entry, uid_arg) {
        (Some(e), _) => (Some(e.0), e.1, e.2, e.3),
        (None, Some(uid)) => (None, uid, 0, "/".to_string()),
        (None, None) => {
            return Err(EngineError::InvalidArgument(format!(
                "unable to find user {user}: no matching entries in passwd file"
            )))
        }
    };
    let groups = group_entries(group);
    let mut additional_gids: Vec<u32> = Vec::new();
    let push = |g: u32, list: &mut Vec<u32>| {
        if !list.contains(&g) {
            list.push(g);
        }
    };
    match group_arg {
        Some(g) => gid = lookup_group(&groups, g)?,
        None => {
            if let Some(name) = uname {
                for e in groups.iter().filter(|e| e.members.contains(&name)) {
                    push(e.gid, &mut additional_gids);
                }
            }
        }
    }
    for g in group_add {
        let g = lookup_group(&groups, g.trim())?;
        push(g, &mut additional_gids);
    }
    push(gid, &mut additional_gids);
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:1001::/home/bob:/bin/sh
# a comment
nogroup:x:1002:4242::/:/bin/false
twin:x:1000:1000:same uid as alice:/home/twin:/bin/sh
";
    const GROUP: &str = "\
root:x:0:
wheel:x:10:root,alice
audio:x:29:alice, bob
alice:x:1000:
bob:x:1001:
staff:x:50:
dup:x:29:
";

    fn r(spec: &str, add: &[&str]) -> Result<(u32, u32, Vec<u32>, String)> {
        let add: Vec<String> = add.iter().map(|s| s.to_string()).collect();
        resolve_in(PASSWD, GROUP, spec, &add).map(|u| (u.uid, u.gid, u.additional_gids, u.home))
    }

    /// `-u` spec, `--group-add`, and the expected (uid, gid, supplementary groups, home).
    type Row = (
        &'static str,
        &'static [&'static str],
        (u32, u32, &'static [u32], &'static str),
    );

    #[test]
    fn docker_rules_table() {
        #[rustfmt::skip]
        let table: &[Row] = &[
            // The cases: implicit memberships plus the primary gid.
            ("alice", &[], (1000, 1000, &[10, 29, 1000], "/home/alice")),
            // An explicit group: only that group.
            ("alice:audio", &[], (1000, 29, &[29], "/home/alice")),
            ("alice:29", &[], (1000, 29, &[29], "/home/alice")),
            ("alice:staff", &[], (1000, 50, &[50], "/home/alice")),
            // A number without a group entry is fine.
            ("alice:5000", &[], (1000, 5000, &[5000], "/home/alice")),
            // A uid with an entry behaves like its name.
            ("1000", &[], (1000, 1000, &[10, 29, 1000], "/home/alice")),
            ("1000:1001", &[], (1000, 1001, &[1001], "/home/alice")),
            // Default and root.
            ("", &[], (0, 0, &[10, 0], "/root")),
            ("root", &[], (0, 0, &[10, 0], "/root")),
            ("0", &[], (0, 0, &[10, 0], "/root")),
            ("0:0", &[], (0, 0, &[0], "/root")),
            // Numbers without a passwd entry: gid 0 unless given, home /.
            ("5000", &[], (5000, 0, &[0], "/")),
            ("5000:5000", &[], (5000, 5000, &[5000], "/")),
            ("5000:audio", &[], (5000, 29, &[29], "/")),
            ("5000:", &[], (5000, 0, &[0], "/")),
            // A user whose primary group has no entry, and who is in no group.
            ("nogroup", &[], (1002, 4242, &[4242], "/")),
            ("bob", &[], (1001, 1001, &[29, 1001], "/home/bob")),
            // --group-add: names and numbers (with or without entries), after memberships.
            ("alice", &["staff"], (1000, 1000, &[10, 29, 50, 1000], "/home/alice")),
            ("alice", &["audio", "7777"], (1000, 1000, &[10, 29, 7777, 1000], "/home/alice")),
            ("alice:audio", &["wheel", "1000"], (1000, 29, &[10, 1000, 29], "/home/alice")),
            ("5000", &["staff", "50"], (5000, 0, &[50, 0], "/")),
            ("daemon", &[], (1, 1, &[1], "/usr/sbin")),
        ];
        for (spec, add, (uid, gid, sgids, home)) in table {
            let got = r(spec, add).unwrap_or_else(|e| panic!("{spec} {add:?}: {e}"));
            assert_eq!(
                got,
                (*uid, *gid, sgids.to_vec(), home.to_string()),
                "-u {spec:?} --group-add {add:?}"
            );
        }
    }

    #[test]
    fn refused() {
        for (spec, add, msg) in [
            ("nosuch", &[][..], "unable to find user nosuch"),
            ("alice:nosuch", &[], "unable to find group nosuch"),
            ("alice", &["nosuch"], "unable to find group nosuch"),
            ("4294967296", &[], "must be in range"),
            ("2147483648", &[], "must be in range"),
            ("alice:2147483648", &[], "must be in range"),
            ("alice", &["99999999999"], "must be in range"),
        ] {
            let add: Vec<String> = add.iter().map(|s: &&str| s.to_string()).collect();
            let e = resolve_in(PASSWD, GROUP, spec, &add)
                .unwrap_err()
                .to_string();
            assert!(e.contains(msg), "{spec}: {e}");
        }
        // Empty files: numbers only.
        let u = resolve_in("", "", "1234:5678", &["42".into()]).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids),
            (1234, 5678, vec![42, 5678])
        );
        assert!(resolve_in("", "", "root", &[]).is_err());
        let u = resolve_in("", "", "", &[]).unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids), (0, 0, vec![0]));
    }
}
