//! The `local` driver's options, as Docker's: `type` (a filesystem type such as `tmpfs`,
//! `nfs`, `btrfs`, or `none` for a bind mount), `device` (what to mount) and `o` (mount
//! options, comma separated: flags such as `ro`, `nosuid`, `bind` become mount flags, the rest
//! is passed to the filesystem).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::Path;

use rustix::mount::{MountFlags, UnmountFlags};

use crate::{Result, VolumeError};

/// Check the driver options of a new volume.
pub(crate) fn validate(opts: &BTreeMap<String, String>) -> Result<()> {
    for k in opts.keys() {
        if !matches!(k.as_str(), "type" | "device" | "o" | "size") {
            return Err(VolumeError::InvalidOption(format!(
                "{k:?} is not an option of the local driver: use type, device and o"
            )));
        }
    }
    let ty = opts.get("type").map(String::as_str);
    let dev = opts.get("device").map(String::as_str);
    match (ty, dev) {
        (None, None) if opts.get("o").is_none() && opts.get("size").is_none() => Ok(()),
        (None, _) => Err(VolumeError::InvalidOption(
            "the local driver needs type=... with device=... and o=... (e.g. type=tmpfs,device=tmpfs,o=size=100m)".into(),
        )),
        (Some("tmpfs"), _) => Ok(()),
        (Some(_), None) => Err(VolumeError::InvalidOption(
            "missing device=...: say what to mount (e.g. device=/srv/data with type=none,o=bind)"
                .into(),
        )),
        (Some("none"), Some(d)) => {
            let o = opts.get("o").map(String::as_str).unwrap_or("");
            if !o.split(',').any(|f| f == "bind" || f == "rbind") {
                return Err(VolumeError::InvalidOption(
                    "type=none needs o=bind (a bind mount of device)".into(),
                ));
            }
            if !d.starts_with('/') {
                return Err(VolumeError::InvalidOption(format!(
                    "device {d:?} must be an absolute host path for a bind mount"
                )));
            }
            Ok(())
        }
        (Some(_), Some(_)) => Ok(()),
    }
}

/// Split `o=` into mount flags and filesystem data.
fn parse_o(o: &str) -> (MountFlags, Vec<String>) {
    let mut flags = MountFlags::empty();
    let mut data = Vec::new();
    for part in o.split(',').filter(|p| !p.is_empty()) {
        match part {
            "ro" => flags |= MountFlags::RDONLY,
            "rw" => flags.remove(MountFlags::RDONLY),
            "nosuid" => flags |= MountFlags::NOSUID,
            "nodev" => flags |= MountFlags::NODEV,
            "noexec" => flags |= MountFlags::NOEXEC,
            "sync" => flags |= MountFlags::SYNCHRONOUS,
            "noatime" => flags |= MountFlags::NOATIME,
            "nodiratime" => flags |= MountFlags::NODIRATIME,
            "relatime" => flags |= MountFlags::RELATIME,
            "strictatime" => flags |= MountFlags::STRICTATIME,
            "bind" => flags |= MountFlags::BIND,
            "rbind" => flags |= MountFlags::BIND | MountFlags::REC,
            other => data.push(other.to_string()),
        }
    }
    (flags, data)
}

/// Mount the volume's filesystem on `data` unless something is mounted there already.
pub(crate) fn mount(name: &str, opts: &BTreeMap<String, String>, data: &Path) -> Result<()> {
    if is_mountpoint(data) {
        return Ok(());
    }
    let ty = opts.get("type").map(String::as_str).unwrap_or("tmpfs");
    let dev = opts
        .get("device")
        .map(String::as_str)
        .unwrap_or(if ty == "tmpfs" { "tmpfs" } else { "" });
    let mut o = opts.get("o").cloned().unwrap_or_default();
    if let Some(size) = opts.get("size") {
        if !o.is_empty() {
            o.push(',');
        }
        o.push_str(&format!("size={size}"));
    }
    let (flags, fsdata) = parse_o(&o);
    let err = |msg: String| VolumeError::Mount {
        name: name.to_string(),
        msg,
    };
    if flags.contains(MountFlags::BIND) {
        if !Path::new(dev).is_dir() {
            return Err(err(format!(
                "device {dev} is not a directory on the host: create it first"
            )));
        }
        rustix::mount::mount(dev, data, "", flags, None)
            .map_err(|e| err(format!("bind mount of {dev}: {e}")))?;
        if flags.contains(MountFlags::RDONLY) {
            rustix::mount::mount_remount(data, MountFlags::BIND | MountFlags::RDONLY, "")
                .map_err(|e| err(format!("read-only remount of {dev}: {e}")))?;
        }
        return Ok(());
    }
    let fsdata =
        CString::new(fsdata.join(",")).map_err(|_| err("options contain a NUL byte".into()))?;
    rustix::mount::mount(dev, data, ty, flags, Some(fsdata.as_c_str())).map_err(|e| {
        err(format!(
            "mount -t {ty} {dev}: {e} (check type=, device= and o= of the volume; `berth volume inspect` shows them)"
        ))
    })
}

/// Detach every mount stacked on `data` (best effort).
pub(crate) fn unmount_all(data: &Path) {
    let mut n = 0;
    while is_mountpoint(data) && n < 16 {
        if rustix::mount::unmount(data, UnmountFlags::DETACH).is_err() {
            break;
        }
        n += 1;
    }
}

/// Whether `p` is a mount point (its own entry in /proc/self/mountinfo).
pub(crate) fn is_mountpoint(p: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = p.to_string_lossy();
    info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .map(|m| unescape_octal(m) == want)
            .unwrap_or(false)
    })
}

/// Undo mountinfo's `\NNN` escapes.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if let Some(v) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options() {
        assert!(validate(&opts(&[])).is_ok());
        assert!(validate(&opts(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=1m")
        ]))
        .is_ok());
        assert!(validate(&opts(&[
            ("type", "none"),
            ("device", "/srv"),
            ("o", "bind")
        ]))
        .is_ok());
        assert!(validate(&opts(&[("type", "none"), ("device", "/srv")])).is_err());
        assert!(validate(&opts(&[("type", "nfs")])).is_err());
        assert!(validate(&opts(&[("o", "size=1m")])).is_err());
        assert!(validate(&opts(&[("colour", "x")])).is_err());
        let (f, d) = parse_o("ro,size=10m,nosuid,mode=1777");
        assert!(f.contains(MountFlags::RDONLY | MountFlags::NOSUID));
        assert_eq!(d, vec!["size=10m", "mode=1777"]);
        assert_eq!(unescape_octal("/a\\040b"), "/a b");
    }
}
