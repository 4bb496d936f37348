//! Devices in the runtime spec: Docker's default device cgroup, `--device` nodes and rules,
//! `--device-cgroup-rule`, and every host device for `--privileged`.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    LinuxDevice, LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
};

use super::oci_err;
use crate::security::{parse_device_rule, SecurityConfig};
use crate::{EngineError, Result};

fn dev_rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> Result<LinuxDeviceCgroup> {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .access(access.to_string());
    if let Some(t) = typ {
        b = b.typ(t);
    }
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    b.build().map_err(oci_err)
}

/// Docker's default device cgroup: deny all, then the standard character devices and ptys.
fn default_device_rules() -> Result<Vec<LinuxDeviceCgroup>> {
    let c = Some(LinuxDeviceType::C);
    let mut v = vec![dev_rule(false, None, None, None, "rwm")?];
    for (ma, mi) in [
        (1, Some(3)),
        (1, Some(5)),
        (1, Some(7)),
        (1, Some(8)),
        (1, Some(9)),
        (5, Some(0)),
        (5, Some(1)),
        (5, Some(2)),
        (136, None),
        (10, Some(200)),
    ] {
        v.push(dev_rule(true, c, Some(ma), mi, "rwm")?);
    }
    Ok(v)
}

/// The device node behind `path` on the host: `(type, major, minor, mode)`.
fn host_device(path: &Path) -> std::io::Result<(LinuxDeviceType, i64, i64, u32)> {
    let st = rustix::fs::stat(path)?;
    let typ = match st.st_mode & libc::S_IFMT {
        libc::S_IFCHR => LinuxDeviceType::C,
        libc::S_IFBLK => LinuxDeviceType::B,
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a device node",
            ))
        }
    };
    let major = i64::from(rustix::fs::major(st.st_rdev));
    let minor = i64::from(rustix::fs::minor(st.st_rdev));
    Ok((typ, major, minor, st.st_mode & 0o7777))
}

fn linux_device(
    path: &str,
    typ: LinuxDeviceType,
    major: i64,
    minor: i64,
    mode: u32,
) -> Result<LinuxDevice> {
    LinuxDeviceBuilder::default()
        .path(PathBuf::from(path))
        .typ(typ)
        .major(major)
        .minor(minor)
        .file_mode(mode)
        .uid(0u32)
        .gid(0u32)
        .build()
        .map_err(oci_err)
}

/// Every device node under the host's /dev (for `--privileged`), skipping the ones a
/// container has its own of (ptys, consoles, shm, mqueue).
fn host_devices() -> Vec<(String, LinuxDeviceType, i64, i64, u32)> {
    fn walk(dir: &Path, out: &mut Vec<(String, LinuxDeviceType, i64, i64, u32)>, depth: u32) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let s = p.to_string_lossy().into_owned();
            if matches!(
                s.as_str(),
                "/dev/pts" | "/dev/shm" | "/dev/mqueue" | "/dev/console" | "/dev/ptmx" | "/dev/fd"
            ) {
                continue;
            }
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() && depth < 4 {
                walk(&p, out, depth + 1);
            } else if !ft.is_symlink() {
                if let Ok((t, ma, mi, mode)) = host_device(&p) {
                    out.push((s, t, ma, mi, mode));
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/dev"), &mut out, 0);
    out
}

/// The spec's device nodes and device cgroup rules: Docker's defaults; `--device` adds nodes
/// and rules; `--privileged` gives every host device.
///
/// Errors: a `--device` that is not a device node on the host, a malformed
/// `--device-cgroup-rule`.
pub(super) fn devices(sec: &SecurityConfig) -> Result<(Vec<LinuxDevice>, Vec<LinuxDeviceCgroup>)> {
    let mut device_rules = if sec.privileged {
        vec![dev_rule(true, None, None, None, "rwm")?]
    } else {
        default_device_rules()?
    };
    let mut devices = Vec::new();
    if sec.privileged {
        for (path, t, ma, mi, mode) in host_devices() {
            devices.push(linux_device(&path, t, ma, mi, mode)?);
        }
    }
    for d in &sec.devices {
        let (t, ma, mi, mode) = host_device(Path::new(&d.host)).map_err(|e| {
            EngineError::InvalidArgument(format!(
                "--device {}: {e}; give the path of a device node on the host",
                d.host
            ))
        })?;
        devices.retain(|x: &LinuxDevice| x.path() != Path::new(&d.container));
        devices.push(linux_device(&d.container, t, ma, mi, mode)?);
        device_rules.push(dev_rule(true, Some(t), Some(ma), Some(mi), &d.permissions)?);
    }
    for r in &sec.device_cgroup_rules {
        let r = parse_device_rule(r)?;
        let t = match r.kind {
            'b' => Some(LinuxDeviceType::B),
            'c' => Some(LinuxDeviceType::C),
            _ => None,
        };
        device_rules.push(dev_rule(true, t, r.major, r.minor, &r.access)?);
    }
    Ok((devices, device_rules))
}
