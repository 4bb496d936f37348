//! Resolve `USER[:GROUP]` against the container's /etc/passwd and /etc/group.

use std::path::Path;

use crate::{rootfs, EngineError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: String,
}

/// Docker semantics: empty = root; numeric ids need no passwd entry; names must exist.
pub fn resolve(rootfs: &Path, spec: &str) -> Result<ResolvedUser> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = rootfs::read_file_in_root(rootfs, "/etc/passwd").unwrap_or_default();
    let groups = rootfs::read_file_in_root(rootfs, "/etc/group").unwrap_or_default();
    let passwd = String::from_utf8_lossy(&passwd);
    let groups = String::from_utf8_lossy(&groups);
    let user = if user.is_empty() { "0" } else { user };

    let entry = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        let matches = f[0] == user
            || (user.parse::<u32>().ok() == f[2].parse::<u32>().ok()
                && user.parse::<u32>().is_ok());
        matches.then(|| {
            (
                f[0].to_string(),
                f[2].parse::<u32>().ok(),
                f[3].parse::<u32>().ok(),
                f[5].to_string(),
            )
        })
    });
    let (uname, uid, mut gid, home) = match (entry, user.parse::<u32>()) {
        (Some((n, Some(uid), Some(gid), home)), _) => (n, uid, gid, home),
        (_, Ok(uid)) => (String::new(), uid, 0, "/".to_string()),
        _ => {
            return Err(EngineError::InvalidArgument(format!(
                "unable to find user {user}: no matching entries in passwd file"
            )))
        }
    };
    if let Some(g) = group {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .lines()
                .find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() >= 3 && f[0] == g)
                        .then(|| f[2].parse::<u32>().ok())
                        .flatten()
                })
                .ok_or_else(|| {
                    EngineError::InvalidArgument(format!(
                        "unable to find group {g}: no matching entries in group file"
                    ))
                })?,
        };
    }
    let mut additional_gids = Vec::new();
    if !uname.is_empty() {
        for l in groups.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() >= 4 && f[3].split(',').any(|m| m == uname) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if g != gid && !additional_gids.contains(&g) {
                        additional_gids.push(g);
                    }
                }
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}
