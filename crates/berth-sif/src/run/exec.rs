//! Entering the container: namespaces, the session overlay, host binds, user entries, the
//! environment, and the final exec of the action.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};

use crate::{Result, SifError};

use super::*;

pub(super) fn write_file(p: &str, data: &str) -> Result<()> {
    std::fs::write(p, data).map_err(|e| SifError::io(p, e))
}

/// A host directory to mount the session tmpfs on: none of `avoid` may be inside it (or
/// contain it).
pub(super) fn session_dir(avoid: &[PathBuf]) -> Result<PathBuf> {
    for c in ["/mnt", "/media", "/srv", "/opt", "/boot", "/run", "/tmp"] {
        let p = Path::new(c);
        if !p.is_dir()
            || std::fs::symlink_metadata(p)
                .map(|m| m.is_symlink())
                .unwrap_or(true)
        {
            continue;
        }
        if avoid.iter().any(|a| a.starts_with(p) || p.starts_with(a)) {
            continue;
        }
        return Ok(p.to_path_buf());
    }
    Err(SifError::Run(
        "no free directory for the session mount (tried /mnt /media /srv /opt /boot /run /tmp)"
            .into(),
    ))
}

/// Host identity gathered before any namespace is entered.
pub(super) struct Host {
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) home: Option<PathBuf>,
    pub(super) cwd: Option<PathBuf>,
}

/// Directories whose host version must not cover the image's when they are the cwd.
pub(super) fn is_system_dir(p: &Path) -> bool {
    let s = p.to_string_lossy();
    if s == "/" {
        return true;
    }
    [
        "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/var", "/boot",
        "/proc", "/sys", "/dev", "/run", "/opt", "/srv",
    ]
    .iter()
    .any(|d| s == *d || (s.starts_with(&format!("{d}/")) && !s.starts_with("/var/tmp")))
}

/// Enter the container and exec the action: returns only on failure.
///
/// Errors: the image cannot be read or is invalid, a namespace or mount cannot be set up, `--nv`
/// (GPU pass-through is not implemented), or the final exec fails.
pub fn exec_container(image: &Path, opts: &RunOptions) -> Result<std::convert::Infallible> {
    if opts.nv {
        let why = if Path::new("/dev/nvidiactl").exists() {
            "berth does not pass NVIDIA libraries into containers yet"
        } else {
            "this host has no NVIDIA GPU (no /dev/nvidiactl)"
        };
        return Err(SifError::Run(format!("--nv: {why}; run without --nv")));
    }
    let image = std::path::absolute(image).map_err(|e| SifError::io(image, e))?;
    let lower = lower_for(&image, opts)?;
    let contain = opts.contain || opts.containall;
    let cleanenv = opts.cleanenv || opts.containall;
    let host = Host {
        uid: rustix::process::getuid().as_raw(),
        gid: rustix::process::getgid().as_raw(),
        home: home_dir(),
        cwd: std::env::current_dir().ok(),
    };
    let root_user = crate::is_root();

    // Namespaces.
    let flags = if root_user {
        rustix::thread::UnshareFlags::NEWNS
    } else {
        rustix::thread::UnshareFlags::NEWNS | rustix::thread::UnshareFlags::NEWUSER
    };
    // SAFETY: neither FILES nor FS is unshared, so no other thread's view of descriptors
    // changes; berth is single-threaded here (user namespaces require it and report EINVAL
    // otherwise).
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(|e| {
        SifError::sys(
            if root_user {
                "creating a mount namespace"
            } else {
                "creating a user namespace (is /proc/sys/user/max_user_namespaces 0?)"
            },
            e,
        )
    })?;
    if !root_user {
        write_file("/proc/self/setgroups", "deny")?;
        write_file("/proc/self/uid_map", &format!("{0} {0} 1\n", host.uid))?;
        write_file("/proc/self/gid_map", &format!("{0} {0} 1\n", host.gid))?;
    }
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?;

    // Open every bind source now: after unshare (a bind's source must be a mount of this
    // namespace) and before anything is mounted over /tmp.
    let mut sources: Vec<(OwnedFd, String, bool, bool)> = Vec::new(); // fd, dst, is_dir, ro
    let add = |sources: &mut Vec<(OwnedFd, String, bool, bool)>, p: &Path, dst: &str, ro: bool| {
        if let (Ok(fd), Ok(md)) = (open_path(p), std::fs::metadata(p)) {
            sources.push((fd, dst.to_string(), md.is_dir(), ro));
        }
    };
    for d in ["/proc", "/sys", "/dev"] {
        add(&mut sources, Path::new(d), d, false);
    }
    if !contain {
        add(&mut sources, Path::new("/tmp"), "/tmp", false);
        add(&mut sources, Path::new("/var/tmp"), "/var/tmp", false);
    }
    let mut home_bound = false;
    if let Some(h) = &host.home {
        if !contain && h.is_dir() && !is_system_dir(h) {
            add(&mut sources, h, &h.to_string_lossy(), false);
            home_bound = true;
        }
    }
    if let Some(c) = &host.cwd {
        let under_bound = |base: &str| c.starts_with(base);
        let covered = (home_bound && host.home.as_ref().is_some_and(|h| c.starts_with(h)))
            || (!contain && (under_bound("/tmp") || under_bound("/var/tmp")));
        if !contain && !covered && !is_system_dir(c) {
            add(&mut sources, c, &c.to_string_lossy(), false);
        }
    }
    for f in ["/etc/hosts", "/etc/localtime", "/etc/resolv.conf"] {
        add(&mut sources, Path::new(f), f, false);
    }
    for b in &opts.binds {
        let fd = open_path(&b.src)
            .map_err(|e| SifError::Run(format!("--bind {}: {e}", b.src.display())))?;
        let md = std::fs::metadata(&b.src).map_err(|e| SifError::io(&b.src, e))?;
        sources.push((fd, b.dst.clone(), md.is_dir(), b.ro));
    }
    let lower_fd = match &lower {
        Lower::Dir(d) => Some(open_path(d)?),
        Lower::Loop { .. } => None,
    };
    // The image file, opened now: /tmp (where it may live) is covered below.
    let backing = match &lower {
        Lower::Loop { file, .. } => {
            Some(std::fs::File::open(file).map_err(|e| SifError::io(file, e))?)
        }
        Lower::Dir(_) => None,
    };

    // The session tmpfs, over a host directory that holds no bind source (in this namespace
    // only: the host keeps seeing its own directory).
    let mut avoid: Vec<PathBuf> = sources
        .iter()
        .filter_map(|(fd, _, _, _)| std::fs::read_link(fd_path(fd)).ok())
        .collect();
    if let Lower::Dir(d) = &lower {
        avoid.push(d.clone());
    }
    avoid.push(image.clone());
    let session_buf = session_dir(&avoid)?;
    let session = session_buf.as_path();
    mount(
        Some(Path::new("tmpfs")),
        session,
        Some("tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV,
        Some("mode=0755,size=64m"),
    )?;
    for d in ["lower", "upper", "work", "root", "home", "tmp", "vartmp"] {
        let p = session.join(d);
        std::fs::create_dir(&p).map_err(|e| SifError::io(&p, e))?;
    }
    let lower_dir = session.join("lower");
    match &lower {
        Lower::Dir(_) => {
            let fd = lower_fd.as_ref().expect("opened above");
            mount(
                Some(&fd_path(fd)),
                &lower_dir,
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
            )?;
        }
        Lower::Loop { offset, size, .. } => {
            let (dev, _lo) = attach_loop(backing.as_ref().expect("opened above"), *offset, *size)?;
            mount(
                Some(&dev),
                &lower_dir,
                Some("squashfs"),
                libc::MS_RDONLY | libc::MS_NODEV,
                None,
            )?;
        }
    }
    let root = session.join("root");
    let data = format!(
        "lowerdir={},upperdir={},workdir={}{}",
        lower_dir.display(),
        session.join("upper").display(),
        session.join("work").display(),
        if root_user { "" } else { ",userxattr" }
    );
    mount(
        Some(Path::new("overlay")),
        &root,
        Some("overlay"),
        0,
        Some(&data),
    )?;
    let root_fd = rustix::fs::open(
        &root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SifError::sys("opening the container root", e))?;

    // Contained /tmp, /var/tmp, home: private directories of the session.
    if contain {
        for (src, dst) in [("tmp", "/tmp"), ("vartmp", "/var/tmp")] {
            let fd = open_path(&session.join(src))?;
            bind_into(&root_fd, &fd, dst, true, false)?;
        }
        if let Some(h) = &host.home {
            let fd = open_path(&session.join("home"))?;
            bind_into(&root_fd, &fd, &h.to_string_lossy(), true, false)?;
        }
    }
    // /etc/passwd and /etc/group with the caller's entry (so `id -un` and `whoami` work).
    if !root_user {
        add_user_entries(&root_fd, session, &host)?;
    }
    for (fd, dst, is_dir, ro) in &sources {
        // Files the image lacks, or that are symlinks leading nowhere, are skipped for the
        // optional host files.
        let optional = dst.starts_with("/etc/");
        match bind_into(&root_fd, fd, dst, *is_dir, *ro) {
            Ok(()) => {}
            Err(e) if optional => tracing::debug!("not binding {dst}: {e}"),
            Err(e) => return Err(e),
        }
    }
    if !opts.writable_tmpfs {
        mount(
            None,
            &root,
            None,
            libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY,
            None,
        )?;
    }

    // Environment (computed before chroot: it reads the host's).
    let env = environment(&image, opts, cleanenv, &host);

    rustix::process::chroot(&root).map_err(|e| SifError::sys("chroot into the container", e))?;
    rustix::process::chdir("/").map_err(|e| SifError::sys("chdir /", e))?;
    let target_cwd = if let Some(p) = &opts.pwd {
        Some(PathBuf::from(p))
    } else if contain {
        host.home.clone()
    } else {
        host.cwd.clone()
    };
    if let Some(c) = target_cwd {
        if rustix::process::chdir(&c).is_err() {
            if opts.pwd.is_some() {
                return Err(SifError::Run(format!(
                    "--pwd {}: no such directory in the container",
                    c.display()
                )));
            }
            tracing::warn!("{} is not in the container; using /", c.display());
        }
    }
    exec_action(opts, env)
}

pub(super) fn add_user_entries(root: &OwnedFd, session: &Path, host: &Host) -> Result<()> {
    let read = |p: &str| -> String {
        let Ok(fd) = openat2(
            root,
            p.trim_start_matches('/'),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) else {
            return String::new();
        };
        let mut s = String::new();
        use std::io::Read;
        let _ = std::fs::File::from(fd).take(4 << 20).read_to_string(&mut s);
        s
    };
    let Some(pw) = passwd_entry(host.uid) else {
        return Ok(());
    };
    let mut passwd = read("/etc/passwd");
    if !passwd
        .lines()
        .any(|l| l.split(':').nth(2) == Some(&host.uid.to_string()))
    {
        if !passwd.is_empty() && !passwd.ends_with('\n') {
            passwd.push('\n');
        }
        passwd.push_str(&format!(
            "{}:x:{}:{}:{}:{}:/bin/sh\n",
            pw.name,
            host.uid,
            host.gid,
            pw.gecos,
            host.home
                .as_ref()
                .map_or(pw.home.clone(), |h| h.display().to_string())
        ));
    }
    let mut group = read("/etc/group");
    if !group
        .lines()
        .any(|l| l.split(':').nth(2) == Some(&host.gid.to_string()))
    {
        let gname = std::fs::read_to_string("/etc/group")
            .ok()
            .and_then(|g| {
                g.lines().find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() >= 3 && f[2] == host.gid.to_string()).then(|| f[0].to_string())
                })
            })
            .unwrap_or_else(|| pw.name.clone());
        if !group.is_empty() && !group.ends_with('\n') {
            group.push('\n');
        }
        group.push_str(&format!("{gname}:x:{}:\n", host.gid));
    }
    for (name, text) in [("passwd", passwd), ("group", group)] {
        let p = session.join(name);
        std::fs::write(&p, text).map_err(|e| SifError::io(&p, e))?;
        let fd = open_path(&p)?;
        // An image without /etc cannot take them; that is fine.
        if let Err(e) = bind_into(root, &fd, &format!("/etc/{name}"), false, false) {
            tracing::debug!("not binding /etc/{name}: {e}");
        }
    }
    Ok(())
}

pub(super) fn valid_env_name(k: &str) -> bool {
    let mut c = k.chars();
    matches!(c.next(), Some(x) if x.is_ascii_alphabetic() || x == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// The environment the action shell starts with, and the variables it sets after sourcing the
/// image's environment scripts (`--env`, `APPTAINERENV_*`, `SINGULARITYENV_*`).
pub(super) struct Env {
    pub(super) vars: BTreeMap<OsString, OsString>,
    pub(super) late: Vec<String>,
}

pub(super) fn environment(image: &Path, opts: &RunOptions, cleanenv: bool, host: &Host) -> Env {
    let mut vars: BTreeMap<OsString, OsString> = BTreeMap::new();
    let mut late: BTreeMap<String, OsString> = BTreeMap::new();
    for (k, v) in std::env::vars_os() {
        let ks = k.to_string_lossy().into_owned();
        for pre in ["SINGULARITYENV_", "APPTAINERENV_"] {
            if let Some(name) = ks.strip_prefix(pre) {
                if valid_env_name(name) {
                    late.insert(name.to_string(), v.clone());
                }
            }
        }
        if ks.starts_with("SINGULARITY") || ks.starts_with("APPTAINER") || ks.starts_with("BERTH_")
        {
            continue;
        }
        let keep_clean = matches!(ks.as_str(), "TERM" | "LANG" | "HOME" | "USER" | "LOGNAME");
        if cleanenv && !keep_clean {
            continue;
        }
        if matches!(
            ks.as_str(),
            "PATH" | "LD_LIBRARY_PATH" | "PS1" | "PROMPT_COMMAND"
        ) {
            continue;
        }
        vars.insert(k, v);
    }
    for (k, v) in &opts.env {
        late.insert(k.clone(), OsString::from(v));
    }
    vars.insert("PATH".into(), DEFAULT_PATH.into());
    if let Some(h) = &host.home {
        vars.insert("HOME".into(), h.clone().into_os_string());
    }
    let name = image
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    for pre in ["APPTAINER", "SINGULARITY"] {
        vars.insert(
            format!("{pre}_CONTAINER").into(),
            image.as_os_str().to_owned(),
        );
        vars.insert(format!("{pre}_NAME").into(), name.clone());
        vars.insert(format!("{pre}_COMMAND").into(), opts.action.name().into());
        vars.insert(
            format!("{pre}_ENVIRONMENT").into(),
            "/.singularity.d/env/91-environment.sh".into(),
        );
    }
    vars.insert("PS1".into(), "Apptainer> ".into());
    let mut late_names = Vec::new();
    for (k, v) in late {
        if !valid_env_name(&k) {
            continue;
        }
        vars.insert(format!("BERTH_SIF_ENV_{k}").into(), v);
        late_names.push(k);
    }
    Env {
        vars,
        late: late_names,
    }
}

/// The action shell script: source the image's environment, apply late variables, exec.
pub(crate) fn action_script(action: Action, late: &[String]) -> String {
    let mut s = String::from(
        "for f in /.singularity.d/env/*.sh; do if [ -f \"$f\" ]; then . \"$f\"; fi; done\n",
    );
    for k in late {
        s.push_str(&format!(
            "export {k}=\"$BERTH_SIF_ENV_{k}\"; unset BERTH_SIF_ENV_{k}\n"
        ));
    }
    s.push_str(match action {
        Action::Run => {
            "if [ -x /.singularity.d/runscript ]; then exec /.singularity.d/runscript \"$@\"; fi\n\
             if [ -x /singularity ]; then exec /singularity \"$@\"; fi\n\
             echo 'berth: this image has no runscript; use exec' >&2; exit 1\n"
        }
        Action::Exec => "exec \"$@\"\n",
        Action::Shell => {
            "if [ -x /bin/bash ]; then exec /bin/bash --norc \"$@\"; fi\nexec /bin/sh \"$@\"\n"
        }
        Action::Test => {
            "if [ -x /.singularity.d/test ]; then exec /.singularity.d/test \"$@\"; fi\n\
             echo 'berth: this image has no %test section' >&2; exit 1\n"
        }
        Action::Start => {
            "if [ -x /.singularity.d/startscript ]; then exec /.singularity.d/startscript \"$@\"; fi\n\
             echo 'berth: this image has no %startscript; the instance only holds its namespaces' >&2\n\
             while :; do sleep 3600; done\n"
        }
    });
    s
}

pub(super) fn exec_action(opts: &RunOptions, env: Env) -> Result<std::convert::Infallible> {
    use std::os::unix::process::CommandExt;
    if opts.action == Action::Exec && opts.args.is_empty() {
        return Err(SifError::Run("exec needs a command".into()));
    }
    let script = action_script(opts.action, &env.late);
    let mut c = std::process::Command::new("/bin/sh");
    c.arg("-c")
        .arg(script)
        .arg(format!("berth-{}", opts.action.name()));
    c.args(&opts.args);
    c.env_clear().envs(&env.vars);
    let e = c.exec();
    Err(SifError::Run(format!(
        "cannot start /bin/sh in the container ({e}); the image needs a /bin/sh"
    )))
}
