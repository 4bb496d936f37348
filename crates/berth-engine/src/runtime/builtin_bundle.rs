//! The builtin runtime's copy of a bundle (`bundle/builtin/`): the spec as libcontainer 0.7
//! must see it (`config.json`), and `init.json`, the steps berth takes in the container's init
//! right before the process runs, through libcontainer's `Executor` hook (libcontainer has no
//! other place for them):
//!
//! - loading berth's compiled seccomp filter ([`crate::seccomp_bpf`]) instead of libcontainer
//!   compiling the profile with libseccomp in every init;
//! - making the cgroup v1 hierarchies under `/sys/fs/cgroup` read-only, as runc does when the
//!   spec's cgroup mount says `ro` (libcontainer 0.7 mounts them read-write on a cgroup v1 or
//!   hybrid host; on cgroup v2 it honours `ro` itself);
//! - dropping to the process's real capabilities when those steps need `CAP_SYS_ADMIN` (the
//!   copy of the spec then keeps `CAP_SYS_ADMIN` and `CAP_SETPCAP`).
//!
//! OCI runtime binaries get the bundle's own `config.json`, unchanged.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxCapabilities, Process, Spec};
use serde::{Deserialize, Serialize};

use crate::seccomp_bpf::FilterFile;
use crate::{EngineError, Result};

/// The steps file in the builtin runtime's copy of a bundle.
pub const INIT_FILE: &str = "init.json";

/// The file older berth versions kept the compiled filter in (a [`FilterFile`] with the real
/// capabilities): still read for containers they started.
const LEGACY_FILTER_FILE: &str = "filter.json";

/// Where the cgroup hierarchies are mounted in a container.
const CGROUP_DIR: &str = "/sys/fs/cgroup";

/// What the container init does before running the process (`init.json`). The default (no
/// file) is nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitSteps {
    /// berth's compiled seccomp filter, loaded last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterFile>,
    /// Make the cgroup v1 hierarchies mounted under `/sys/fs/cgroup` read-only (see
    /// [`readonly_cgroup_hierarchies`]).
    #[serde(default)]
    pub readonly_cgroups: bool,
    /// The process's real capabilities, dropped to after the steps above when the runtime was
    /// told to keep `CAP_SYS_ADMIN`/`CAP_SETPCAP` for them; `None` when the runtime sets the
    /// capabilities itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<LinuxCapabilities>,
}

/// Directory of the builtin runtime's copy of a bundle (see [`write_builtin_bundle`]).
pub fn builtin_bundle(bundle: &Path) -> PathBuf {
    bundle.join("builtin")
}

/// Write the builtin runtime's copy of `spec` into `bundle/builtin/`: `config.json` and, when
/// the init has steps to take, `init.json` ([`InitSteps`]).
///
/// When berth can compile the spec's seccomp filter ([`crate::seccomp_bpf::compile`]) the copy
/// has no `linux.seccomp` and the program goes to `init.json`; otherwise the copy is
/// [`crate::seccomp::for_libcontainer`]'s and libcontainer loads the filter. The cgroup
/// hierarchies are made read-only when [`needs_readonly_cgroups`] says so and no filter loaded
/// by libcontainer would refuse the remount. Loading a filter without `no_new_privs`, or
/// remounting, needs `CAP_SYS_ADMIN`: the copy then keeps `CAP_SYS_ADMIN` and `CAP_SETPCAP` in
/// the bounding, effective and permitted sets, and `init.json` records the real ones.
///
/// Errors: the files cannot be written.
pub fn write_builtin_bundle(bundle: &Path, spec: &Spec) -> Result<()> {
    let dir = builtin_bundle(bundle);
    std::fs::create_dir_all(&dir).map_err(|e| EngineError::io(&dir, e))?;
    let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let compiled =
        seccomp.and_then(|sc| crate::seccomp_bpf::compile(sc, crate::seccomp::native_arch()?.0));
    let mut own = match compiled {
        Some(_) => {
            let mut own = spec.clone();
            if let Some(l) = own.linux_mut() {
                l.set_seccomp(None);
            }
            own
        }
        None => crate::seccomp::for_libcontainer(spec),
    };
    if let Some(p) = own.process_mut() {
        explicit_capabilities(p);
    }
    let readonly_cgroups =
        needs_readonly_cgroups(spec) && (seccomp.is_none() || compiled.is_some());
    let no_new_privs = spec
        .process()
        .as_ref()
        .is_some_and(|p| p.no_new_privileges() == Some(true));
    let capabilities = if readonly_cgroups || (compiled.is_some() && !no_new_privs) {
        own.process_mut().as_mut().and_then(keep_admin)
    } else {
        None
    };
    let steps = InitSteps {
        filter: compiled.map(|prog| FilterFile::new(&prog, None)),
        readonly_cgroups,
        capabilities,
    };
    let init_path = dir.join(INIT_FILE);
    remove_if_there(&dir.join(LEGACY_FILTER_FILE))?;
    if steps == InitSteps::default() {
        remove_if_there(&init_path)?;
    } else {
        let bytes = serde_json::to_vec(&steps)
            .map_err(|e| EngineError::Other(format!("writing {}: {e}", init_path.display())))?;
        berth_store::write_replace(&init_path, &bytes)?;
    }
    let bytes = serde_json::to_vec(&own)
        .map_err(|e| EngineError::Other(format!("writing the runtime spec: {e}")))?;
    berth_store::write_replace(&dir.join("config.json"), &bytes)?;
    Ok(())
}

fn remove_if_there(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(EngineError::io(path, e)),
        _ => Ok(()),
    }
}

/// The init steps of a builtin bundle directory (`init.json`, or the filter file of a
/// container started by an older berth); `None` when there are none.
///
/// Errors: a file that cannot be read or parsed (start the container again to rewrite it).
pub fn read_init_steps(dir: &Path) -> Result<Option<InitSteps>> {
    if let Some(steps) = read_json::<InitSteps>(&dir.join(INIT_FILE))? {
        return Ok(Some(steps));
    }
    Ok(
        read_json::<FilterFile>(&dir.join(LEGACY_FILTER_FILE))?.map(|f| InitSteps {
            capabilities: f.capabilities.clone(),
            filter: Some(f),
            readonly_cgroups: false,
        }),
    )
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            EngineError::Runtime(format!(
                "{}: {e}: start the container again to rewrite it",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(EngineError::io(path, e)),
    }
}

/// Give every capability set of `p` a value (an unset one becomes empty). libcontainer 0.7
/// leaves a set the spec omits as it was in the init, which runs as root with every
/// capability permitted: a non-root process would then still have them permitted right before
/// execve, and the kernel lets a file capability through `no_new_privs` when it was permitted
/// before. runc reads an omitted set as empty; so does the builtin runtime with this.
/// Returns whether anything changed.
pub fn explicit_capabilities(p: &mut Process) -> bool {
    let Some(mut c) = p.capabilities().clone() else {
        return false;
    };
    let before = c.clone();
    let empty = || Some(oci_spec::runtime::Capabilities::default());
    if c.bounding().is_none() {
        c.set_bounding(empty());
    }
    if c.effective().is_none() {
        c.set_effective(empty());
    }
    if c.permitted().is_none() {
        c.set_permitted(empty());
    }
    if c.inheritable().is_none() {
        c.set_inheritable(empty());
    }
    if c.ambient().is_none() {
        c.set_ambient(empty());
    }
    let changed = c != before;
    p.set_capabilities(Some(c));
    changed
}

/// Add `CAP_SYS_ADMIN` and `CAP_SETPCAP` to the bounding, effective and permitted sets of `p`
/// (for the init's own steps, then dropping the bounding set) and return its real
/// capabilities; `None` (and `p` unchanged) when it has no capability list.
pub fn keep_admin(p: &mut Process) -> Option<LinuxCapabilities> {
    use oci_spec::runtime::Capability;
    let real = p.capabilities().clone()?;
    let mut c = real.clone();
    let add = |s: &Option<oci_spec::runtime::Capabilities>| {
        let mut s = s.clone().unwrap_or_default();
        s.insert(Capability::SysAdmin);
        s.insert(Capability::Setpcap);
        Some(s)
    };
    c.set_bounding(add(real.bounding()));
    c.set_effective(add(real.effective()));
    c.set_permitted(add(real.permitted()));
    p.set_capabilities(Some(c));
    Some(real)
}

/// Whether the init must make the cgroup hierarchies read-only: the spec mounts the cgroup
/// tree at `/sys/fs/cgroup` with `ro` (every container but `--privileged` ones) and no other
/// mount lands on `/sys`, `/sys/fs` or under `/sys/fs/cgroup` (a user's bind mount there is
/// left as the user asked).
pub fn needs_readonly_cgroups(spec: &Spec) -> bool {
    let Some(mounts) = spec.mounts() else {
        return false;
    };
    let is_cgroup = |m: &oci_spec::runtime::Mount| {
        m.destination() == Path::new(CGROUP_DIR) && m.typ().as_deref() == Some("cgroup")
    };
    let ro = mounts.iter().any(|m| {
        is_cgroup(m)
            && m.options()
                .as_ref()
                .is_some_and(|o| o.iter().any(|o| o == "ro"))
    });
    let other_below = mounts.iter().any(|m| {
        let d = m.destination();
        let ours = is_cgroup(m) || (d == Path::new("/sys") && m.typ().as_deref() == Some("sysfs"));
        !ours && (Path::new(CGROUP_DIR).starts_with(d) || d.starts_with(CGROUP_DIR))
    });
    ro && !other_below
}

/// In the container's init (after `pivot_root`): when `/sys/fs/cgroup` is a tmpfs holding one
/// mount per cgroup v1 hierarchy, make every hierarchy read-only and leave the tmpfs itself as
/// it was (what runc gives, and Docker shows, on such hosts). Nothing on cgroup v2 (a cgroup2
/// mount, read-only already) or without `/sys/fs/cgroup`.
///
/// Errors: `mount_setattr(2)` fails (no `CAP_SYS_ADMIN`, a kernel older than 5.12).
pub fn readonly_cgroup_hierarchies() -> std::io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    let dir = match rustix::fs::open(
        CGROUP_DIR,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let st = rustix::fs::fstatfs(&dir)?;
    if st.f_type != libc::TMPFS_MAGIC {
        return Ok(());
    }
    // Every mount from the tmpfs down read-only, then the tmpfs back as it was.
    mount_setattr(&dir, true, libc::MOUNT_ATTR_RDONLY, 0)?;
    mount_setattr(&dir, false, 0, libc::MOUNT_ATTR_RDONLY)
}

/// `mount_setattr(2)` on the mount `fd` is the root of (and every mount below it when
/// `recursive`), setting and clearing `MOUNT_ATTR_*` bits.
fn mount_setattr(fd: &impl AsFd, recursive: bool, set: u64, clear: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let attr = libc::mount_attr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    // SAFETY: mount_setattr(2) with a valid fd, an empty NUL-terminated path, a pointer to a
    // live `struct mount_attr` and its size; the kernel only reads them.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_fd().as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{Mount, MountBuilder, SpecBuilder};

    fn m(dst: &str, typ: &str, opts: &[&str]) -> Mount {
        MountBuilder::default()
            .destination(dst)
            .typ(typ)
            .source(typ)
            .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .build()
            .unwrap()
    }

    fn spec(mounts: Vec<Mount>) -> Spec {
        SpecBuilder::default().mounts(mounts).build().unwrap()
    }

    #[test]
    fn readonly_cgroups_only_where_the_spec_asks_and_nothing_is_mounted_over() {
        let base = || {
            vec![
                m("/proc", "proc", &[]),
                m("/sys", "sysfs", &["ro"]),
                m("/sys/fs/cgroup", "cgroup", &["nosuid", "ro"]),
                m("/data", "bind", &["rbind"]),
            ]
        };
        assert!(needs_readonly_cgroups(&spec(base())));
        // --privileged: rw.
        let mut v = base();
        v[2] = m("/sys/fs/cgroup", "cgroup", &["nosuid", "rw"]);
        assert!(!needs_readonly_cgroups(&spec(v)));
        // A user's mounts on or under the cgroup tree, or over /sys, are left alone.
        for dst in ["/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/sys", "/sys/fs"] {
            let mut v = base();
            v.push(m(dst, "bind", &["rbind", "rw"]));
            assert!(!needs_readonly_cgroups(&spec(v)), "{dst}");
        }
        let mut v = base();
        v.push(m("/sys/fs/cgroupx", "bind", &["rbind"]));
        assert!(needs_readonly_cgroups(&spec(v)));
        assert!(!needs_readonly_cgroups(&spec(vec![])));
    }

    #[test]
    fn init_steps_files() {
        let dir = std::env::temp_dir().join(format!("berth-u-init-{:08x}", rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(read_init_steps(&dir).unwrap(), None);
        // The filter file of an older berth still gives its filter and capabilities.
        let prog = crate::seccomp_bpf::Program {
            flags: 0,
            insns: vec![crate::seccomp_bpf::SockFilter {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0x7fff_0000,
            }],
        };
        let caps = oci_spec::runtime::LinuxCapabilities::default();
        let legacy = FilterFile::new(&prog, Some(caps.clone()));
        std::fs::write(
            dir.join(LEGACY_FILTER_FILE),
            serde_json::to_vec(&legacy).unwrap(),
        )
        .unwrap();
        let s = read_init_steps(&dir).unwrap().unwrap();
        assert_eq!(s.filter.as_ref().and_then(|f| f.program()), Some(prog));
        assert_eq!(s.capabilities, Some(caps));
        assert!(!s.readonly_cgroups);
        // init.json wins; a damaged one is an error naming it.
        std::fs::write(dir.join(INIT_FILE), br#"{"readonlyCgroups":true}"#).unwrap();
        let s = read_init_steps(&dir).unwrap().unwrap();
        assert!(s.readonly_cgroups && s.filter.is_none());
        std::fs::write(dir.join(INIT_FILE), b"{").unwrap();
        let e = read_init_steps(&dir).unwrap_err().to_string();
        assert!(e.contains(INIT_FILE), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
