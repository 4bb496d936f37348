//! Building SIF images (and sandbox directories) from definition files or images.
//!
//! Every stage is an overlay stack, like a container's root: the bootstrap's directories at the
//! bottom (berth's image layers, a debootstrap root, an extracted SIF), then one directory with
//! what `%setup`/`%files`/`%post` changed (the overlay upper dir of that step), then, for the
//! image, a small directory with the `/.singularity.d` layout. Nothing is copied; mksquashfs
//! reads the merged, read-only overlay.
//!
//! Cache (under `<store>/sif/`, content-addressed, published by rename so a crash leaves at most
//! a `tmp/` entry that the store sweeps):
//!
//! ```text
//! sif/cache/<key>/   debootstrap roots and section results (overlay upper dirs)
//!                    key = sha256(bootstrap identity [+ parent key + %setup + %files inputs +
//!                          %post text]), so an unchanged rebuild skips %post
//! sif/bases/<key>/   SIF images used as bases, extracted (key: their UUID and partition size)
//! sif/sqfs/<key>     squashfs of a final tree (key: section key + metadata content), so an
//!                    unchanged rebuild also skips mksquashfs
//! ```
//!
//! All mounts are made in a private mount namespace of the building process, so they vanish
//! with it, even after `kill -9`.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_image::{ImageConfig, ImageStore, Reference};
use berth_store::Store;
use rustix::fs::{Mode, OFlags};
use sha2::{Digest as _, Sha256};

use crate::deffile::{self, Bootstrap, Definition, Script, Stage};
use crate::format::{self, DataType, NewObject, ObjectData};
use crate::run::{mountpoint_in_root, DEFAULT_PATH};
use crate::{squash, Result, SifError};

/// Options of [`build`].
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Overwrite an existing destination.
    pub force: bool,
    /// Write a directory tree (sandbox) instead of a SIF file.
    pub sandbox: bool,
    /// Give the owner read/write (and search on directories) on every file, as Apptainer's
    /// `--fix-perms`.
    pub fix_perms: bool,
    /// Build arguments for `{{ var }}`.
    pub build_args: deffile::BuildArgs,
    /// Do not use the build cache (run every section again).
    pub no_cache: bool,
    /// Registry TLS verification (`None`: berth's default per registry).
    pub tls_verify: Option<bool>,
}

/// What a build did.
#[derive(Debug, Clone, Default)]
pub struct BuildReport {
    /// Stages whose sections came from the cache (their `%post` did not run).
    pub cached_stages: usize,
    /// Stages whose sections ran.
    pub ran_stages: usize,
    /// Whether the squashfs came from the cache.
    pub cached_squashfs: bool,
    /// Whether the image has a `%test` section.
    pub has_test: bool,
}

/// Print a build status line on stderr (Apptainer prints `INFO:` lines).
fn info(msg: &str) {
    eprintln!("INFO:    {msg}");
}

fn sha(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(h.finalize())
}

/// A build source given on the command line: a definition file, or an image (then the
/// definition is synthesised, as Apptainer does for `build x.sif docker://…`).
pub fn load_source(source: &str, args: &deffile::BuildArgs) -> Result<Definition> {
    let synth = |bs: &str, from: &str| -> Result<Definition> {
        let text = format!("Bootstrap: {bs}\nFrom: {from}\n");
        deffile::parse(Path::new(source), &text, args)
    };
    if let Some(r) = source.strip_prefix("docker://") {
        return synth("docker", r);
    }
    if let Some(p) = source.strip_prefix("oci-archive:") {
        return synth("oci-archive", p);
    }
    if let Some(p) = source.strip_prefix("docker-archive:") {
        return synth("docker-archive", p);
    }
    if let Some(p) = source.strip_prefix("localimage:") {
        return synth("localimage", p);
    }
    let p = Path::new(source);
    if p.is_dir() {
        return synth("localimage", source);
    }
    if p.is_file() {
        let mut head = [0u8; 64];
        let n = std::fs::File::open(p)
            .and_then(|mut f| f.read(&mut head))
            .map_err(|e| SifError::io(p, e))?;
        if n >= 42 && &head[32..42] == b"SIF_MAGIC\0" {
            return synth("localimage", source);
        }
        if head[..n].starts_with(b"\x1f\x8b") || head[..n].windows(5).any(|w| w == b"ustar") {
            return Err(SifError::Build(format!(
                "{source}: looks like an archive; say oci-archive:{source} or docker-archive:{source}"
            )));
        }
        let text = std::fs::read(p).map_err(|e| SifError::io(p, e))?;
        let text = String::from_utf8(text).map_err(|_| SifError::Definition {
            file: p.to_path_buf(),
            line: 1,
            why: "not UTF-8 text (a definition file, a .sif, or an image name was expected)".into(),
        })?;
        return deffile::parse(p, &text, args);
    }
    // An image in berth's store.
    synth("localimage", source)
}

/// Build `def` into `dest` (a SIF file, or a directory with `sandbox`). Needs root.
///
/// Errors: [`SifError::NeedsRoot`], [`SifError::Conflict`] when `dest` exists without `force`,
/// [`SifError::Build`] when a bootstrap or section fails (naming it), store and registry
/// errors.
pub fn build(
    store: &Store,
    def: &Definition,
    dest: &Path,
    opts: &BuildOptions,
) -> Result<BuildReport> {
    if !crate::is_root() {
        return Err(SifError::NeedsRoot(
            "building images (bootstrap, %post and squashfs need root)".into(),
        ));
    }
    if dest.exists() && !opts.force {
        return Err(SifError::Conflict(format!(
            "{} exists; use --force to overwrite it",
            dest.display()
        )));
    }
    // A private mount namespace for this thread and its children: every mount below is
    // released when the process exits, whatever way it exits.
    // SAFETY: NEWNS does not unshare the fd table; only this thread's mount namespace changes.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(|e| SifError::sys("creating a mount namespace for the build", e))?;
    sys_mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )?;

    let sif_dir = store.root().join("sif");
    for d in ["cache", "bases", "sqfs"] {
        let p = sif_dir.join(d);
        std::fs::create_dir_all(&p).map_err(|e| SifError::io(&p, e))?;
    }
    let work = store.tmp_path("sif-build");
    std::fs::create_dir_all(&work).map_err(|e| SifError::io(&work, e))?;
    let _cleanup = RemoveOnDrop(work.clone());
    let mut b = Builder {
        store,
        sif_dir,
        work,
        opts,
        report: BuildReport::default(),
        stages: Vec::new(),
        n: 0,
    };
    for st in &def.stages {
        let built = b.stage(def, st)?;
        b.stages.push(built);
    }
    let last = b.stages.pop().expect("one stage");
    b.finish(def, last, dest)?;
    Ok(b.report)
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        // Unmount anything left below first (an error path may leave a mount).
        if let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") {
            let mut mps: Vec<&str> = info
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .filter(|m| Path::new(m).starts_with(&self.0))
                .collect();
            mps.sort_by_key(|m| std::cmp::Reverse(m.len()));
            for m in mps {
                let _ = rustix::mount::unmount(m, rustix::mount::UnmountFlags::DETACH);
            }
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A built stage: its overlay lower dirs (bottom first), cache key, image config of its base.
struct Built {
    name: Option<String>,
    lowers: Vec<PathBuf>,
    key: String,
    config: Option<ImageConfig>,
}

struct Builder<'a> {
    store: &'a Store,
    sif_dir: PathBuf,
    work: PathBuf,
    opts: &'a BuildOptions,
    report: BuildReport,
    stages: Vec<Built>,
    n: usize,
}

impl Builder<'_> {
    fn scratch(&mut self, hint: &str) -> Result<PathBuf> {
        self.n += 1;
        let p = self.work.join(format!("{hint}{}", self.n));
        std::fs::create_dir_all(&p).map_err(|e| SifError::io(&p, e))?;
        Ok(p)
    }

    fn image_lowers(&self, id: &str) -> Result<(Vec<PathBuf>, String, ImageConfig)> {
        let is = ImageStore::open(self.store)?;
        let img = is.resolve(id)?;
        Ok((is.layer_dirs(&img), img.id.as_str().to_string(), img.config))
    }

    /// The bootstrap: lower dirs, identity for the cache key, image config (image bases).
    fn bootstrap(&mut self, st: &Stage) -> Result<(Vec<PathBuf>, String, Option<ImageConfig>)> {
        let from = st.from.clone().unwrap_or_default();
        match st.bootstrap {
            Bootstrap::Scratch => Ok((Vec::new(), "scratch".into(), None)),
            Bootstrap::Docker => {
                let r = Reference::parse(&from)
                    .map_err(|e| SifError::Build(format!("From: {from}: {e}")))?;
                info(&format!("Pulling {}", r.familiar()));
                let opts = berth_registry::PullOptions {
                    tls_verify: self.opts.tls_verify,
                    progress: berth_registry::ProgressMode::Quiet,
                    output: berth_registry::OutputStream::Stderr,
                    ..Default::default()
                };
                let id = berth_registry::pull(self.store, &r, &opts)?;
                let (l, k, c) = self.image_lowers(id.as_str())?;
                Ok((l, format!("image:{k}"), Some(c)))
            }
            Bootstrap::OciArchive | Bootstrap::DockerArchive => {
                let is = ImageStore::open(self.store)?;
                // oci-archive:path[:tag] — a tag suffix picks one image.
                let path = Path::new(&from);
                let loaded = berth_image::archive::load_file(&is, path)?;
                let first = loaded.first().ok_or_else(|| {
                    SifError::Build(format!("{from}: the archive holds no image"))
                })?;
                let (l, k, c) = self.image_lowers(first.id.as_str())?;
                Ok((l, format!("image:{k}"), Some(c)))
            }
            Bootstrap::LocalImage => {
                let p = Path::new(&from);
                if p.is_dir() {
                    let md = std::fs::metadata(p).map_err(|e| SifError::io(p, e))?;
                    use std::os::unix::fs::MetadataExt;
                    let abs = std::path::absolute(p).map_err(|e| SifError::io(p, e))?;
                    let key = format!(
                        "dir:{}:{}:{}",
                        abs.display(),
                        md.ino(),
                        md.mtime_nsec() + md.mtime() * 1_000_000_000
                    );
                    return Ok((vec![abs], key, None));
                }
                if p.is_file() {
                    let sif = crate::Sif::open(p)?;
                    let part = sif.rootfs_partition()?;
                    let key = sha(&[b"sif", &sif.header.id, &part.size.to_le_bytes()]);
                    let dir = self.sif_dir.join("bases").join(&key);
                    if !dir.is_dir() {
                        info(&format!("Extracting {}", p.display()));
                        let tmp = self.scratch("base")?;
                        let _ = std::fs::remove_dir(&tmp);
                        squash::unsquashfs(p, part.offset, &tmp, false)?;
                        publish(&tmp, &dir)?;
                    }
                    return Ok((vec![dir], format!("sif:{key}"), None));
                }
                match self.image_lowers(&from) {
                    Ok((l, k, c)) => Ok((l, format!("image:{k}"), Some(c))),
                    Err(SifError::Image(berth_image::ImageError::NotFound(_))) => Err(SifError::Build(format!(
                        "From: {from}: not a file, a directory, or an image in berth's store (berth pull it, or use docker://{from})"
                    ))),
                    Err(e) => Err(e),
                }
            }
            Bootstrap::Debootstrap => {
                let suite = st.os_version.clone().unwrap_or_default();
                let mirror = st
                    .mirror_url
                    .clone()
                    .unwrap_or_else(|| "http://deb.debian.org/debian".into());
                let include = st.include.join(",");
                let key = sha(&[
                    b"debootstrap",
                    suite.as_bytes(),
                    mirror.as_bytes(),
                    include.as_bytes(),
                    std::env::consts::ARCH.as_bytes(),
                ]);
                let dir = self.sif_dir.join("cache").join(&key);
                if dir.is_dir() && !self.opts.no_cache {
                    info(&format!("Using cached debootstrap of {suite}"));
                    return Ok((vec![dir], format!("debootstrap:{key}"), None));
                }
                info(&format!("Running debootstrap {suite} from {mirror}"));
                let tmp = self.scratch("debootstrap")?;
                let mut c = Command::new("debootstrap");
                c.arg("--variant=minbase");
                if !include.is_empty() {
                    c.arg(format!("--include={include}"));
                }
                c.arg(&suite).arg(&tmp).arg(&mirror);
                let out = c
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .output()
                    .map_err(|e| {
                        if e.kind() == std::io::ErrorKind::NotFound {
                            SifError::Build(
                                "debootstrap not found; apt-get install debootstrap".into(),
                            )
                        } else {
                            SifError::sys("running debootstrap", e)
                        }
                    })?;
                if !out.status.success() {
                    let text = String::from_utf8_lossy(&out.stderr).into_owned()
                        + &String::from_utf8_lossy(&out.stdout);
                    let tail: Vec<&str> = text.lines().rev().take(3).collect();
                    return Err(SifError::Build(format!(
                        "debootstrap {suite} {mirror} failed ({}): {}",
                        out.status,
                        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                    )));
                }
                // Do not keep the apt cache in the image's lowest layer.
                let _ = std::fs::remove_dir_all(tmp.join("var/cache/apt/archives"));
                let _ = std::fs::create_dir_all(tmp.join("var/cache/apt/archives/partial"));
                publish(&tmp, &dir)?;
                Ok((vec![dir], format!("debootstrap:{key}"), None))
            }
        }
    }

    fn stage(&mut self, def: &Definition, st: &Stage) -> Result<Built> {
        let (mut lowers, base_key, config) = self.bootstrap(st)?;
        let has_sections = st.setup.is_some() || !st.files.is_empty() || st.post.is_some();
        if !has_sections {
            return Ok(Built {
                name: st.name.clone(),
                lowers,
                key: base_key,
                config,
            });
        }
        // The key of this stage's sections: the base, the scripts, the %files inputs.
        let mut h = Sha256::new();
        h.update(base_key.as_bytes());
        for s in [&st.setup, &st.post].into_iter().flatten() {
            h.update(b"\0script\0");
            h.update(s.args.as_bytes());
            h.update(b"\0");
            h.update(s.body.as_bytes());
        }
        for f in &st.files {
            h.update(b"\0file\0");
            h.update(f.src.as_bytes());
            h.update(b"\0");
            h.update(f.dst.as_bytes());
            match &f.from {
                Some(from) => {
                    let k = self
                        .stages
                        .iter()
                        .find(|s| s.name.as_deref() == Some(from.as_str()))
                        .map(|s| s.key.clone())
                        .unwrap_or_default();
                    h.update(k.as_bytes());
                }
                None => hash_tree(&mut h, Path::new(&f.src), def)?,
            }
        }
        let key = hex::encode(h.finalize());
        let dir = self.sif_dir.join("cache").join(&key);
        if dir.is_dir() && !self.opts.no_cache {
            info(&format!(
                "Using cached result of %setup/%files/%post (stage at line {}); skipping %post",
                st.line
            ));
            self.report.cached_stages += 1;
            lowers.push(dir);
            return Ok(Built {
                name: st.name.clone(),
                lowers,
                key,
                config,
            });
        }
        self.report.ran_stages += 1;
        let upper = self.scratch("upper")?;
        let workdir = self.scratch("work")?;
        let merged = self.scratch("merged")?;
        mount_overlay(
            &lowers,
            Some((&upper, &workdir)),
            &merged,
            &self.scratch("empty")?,
        )?;
        // Apptainer's skeleton, so %post can write $APPTAINER_ENVIRONMENT.
        for d in [
            ".singularity.d/env",
            ".singularity.d/libs",
            ".singularity.d/actions",
        ] {
            let root = open_dir(&merged)?;
            mountpoint_in_root(&root, d, false)?;
        }
        let res = (|| -> Result<()> {
            if let Some(s) = &st.setup {
                info("Running setup scriptlet");
                run_host_script(s, &merged, def)?;
            }
            for f in &st.files {
                let src_root = match &f.from {
                    Some(from) => {
                        let s = self
                            .stages
                            .iter()
                            .find(|s| s.name.as_deref() == Some(from.as_str()))
                            .expect("checked by the parser");
                        let lowers = s.lowers.clone();
                        let m = self.scratch("from")?;
                        mount_overlay(&lowers, None, &m, &self.scratch("empty")?)?;
                        Some(m)
                    }
                    None => None,
                };
                copy_in(f, src_root.as_deref(), &merged, def)?;
            }
            if let Some(s) = &st.post {
                info("Running post scriptlet");
                run_in_root(s, &merged, def)?;
            }
            Ok(())
        })();
        let _ = rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH);
        res?;
        publish(&upper, &dir)?;
        lowers.push(dir);
        Ok(Built {
            name: st.name.clone(),
            lowers,
            key,
            config,
        })
    }

    fn finish(&mut self, def: &Definition, last: Built, dest: &Path) -> Result<()> {
        let st = def.last();
        let meta = self.scratch("meta")?;
        // What the base already has (a SIF or sandbox base keeps its runscript, environment and
        // labels unless this definition replaces them).
        let base_file = |rel: &str| -> Option<PathBuf> {
            last.lowers
                .iter()
                .rev()
                .map(|l| l.join(rel))
                .find(|p| std::fs::symlink_metadata(p).is_ok())
        };
        let base = BaseMeta {
            runscript: base_file(".singularity.d/runscript").is_some(),
            environment: base_file(".singularity.d/env/90-environment.sh").is_some(),
            labels: base_file(".singularity.d/labels.json")
                .and_then(|p| std::fs::read(p).ok())
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default(),
        };
        write_metadata(&meta, def, st, last.config.as_ref(), &base)?;
        self.report.has_test = st.test.is_some();
        let mut lowers = last.lowers.clone();
        lowers.push(meta.clone());
        let merged = self.scratch("final")?;
        mount_overlay(&lowers, None, &merged, &self.scratch("empty")?)?;
        if self.opts.sandbox {
            if dest.exists() {
                std::fs::remove_dir_all(dest).map_err(|e| SifError::io(dest, e))?;
            }
            info(&format!("Creating sandbox directory {}", dest.display()));
            let out = Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", merged.display()))
                .arg(dest)
                .stderr(Stdio::piped())
                .output()
                .map_err(|e| SifError::sys("running cp", e))?;
            if !out.status.success() {
                return Err(SifError::Build(format!(
                    "copying the tree into {}: {}",
                    dest.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            if self.opts.fix_perms {
                fix_perms(dest)?;
            }
            return Ok(());
        }
        // The squashfs: cached by the section key and the definition (the metadata is a
        // function of both, apart from the build date label, which the cache keeps).
        let sq_key = sha(&[
            last.key.as_bytes(),
            def.text.as_bytes(),
            if self.opts.fix_perms { b"fix" } else { b"asis" },
            env!("CARGO_PKG_VERSION").as_bytes(),
        ]);
        let sq = self.sif_dir.join("sqfs").join(&sq_key);
        let sq_labels = self.sif_dir.join("sqfs").join(format!("{sq_key}.labels"));
        if sq.is_file() && !self.opts.no_cache {
            info("Using cached squashfs of an identical tree");
            self.report.cached_squashfs = true;
            if let Ok(l) = std::fs::read(&sq_labels) {
                let p = meta.join(".singularity.d/labels.json");
                std::fs::write(&p, l).map_err(|e| SifError::io(&p, e))?;
            }
        } else {
            let src = if self.opts.fix_perms {
                let copy = self.scratch("fixperms")?;
                let _ = std::fs::remove_dir(&copy);
                let out = Command::new("cp")
                    .arg("-a")
                    .arg(&merged)
                    .arg(&copy)
                    .output()
                    .map_err(|e| SifError::sys("running cp", e))?;
                if !out.status.success() {
                    return Err(SifError::Build(
                        "copying the tree for --fix-perms failed".into(),
                    ));
                }
                fix_perms(&copy)?;
                copy
            } else {
                merged.clone()
            };
            info("Creating SIF file (squashfs)");
            let tmp = self.work.join("rootfs.sqfs");
            squash::mksquashfs(&src, &tmp)?;
            let labels = meta.join(".singularity.d/labels.json");
            let _ = std::fs::copy(&labels, &sq_labels);
            std::fs::rename(&tmp, &sq).map_err(|e| SifError::io(&sq, e))?;
        }
        let labels = std::fs::read(meta.join(".singularity.d/labels.json")).unwrap_or_default();
        let mut envs = BTreeMap::new();
        if let Ok(rd) = std::fs::read_dir(merged.join(".singularity.d/env")) {
            for e in rd.flatten() {
                if let Ok(t) = std::fs::read_to_string(e.path()) {
                    envs.insert(e.file_name().to_string_lossy().into_owned(), t);
                }
            }
        }
        let _ = rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH);
        let objects = vec![
            NewObject {
                data_type: DataType::Deffile,
                name: String::new(),
                data: ObjectData::Bytes(def.text.clone().into_bytes()),
                partition: None,
            },
            NewObject {
                data_type: DataType::Labels,
                name: String::new(),
                data: ObjectData::Bytes(labels),
                partition: None,
            },
            NewObject {
                data_type: DataType::EnvVar,
                name: String::new(),
                data: ObjectData::Bytes(serde_json::to_vec(&envs).expect("json")),
                partition: None,
            },
            NewObject {
                data_type: DataType::Partition,
                name: String::new(),
                data: ObjectData::File(sq),
                partition: Some((
                    format::FS_SQUASH,
                    format::PART_PRIMSYS,
                    format::host_arch_code(),
                )),
            },
        ];
        if dest.is_dir() {
            return Err(SifError::Conflict(format!(
                "{} is a directory; remove it or pick another name",
                dest.display()
            )));
        }
        format::write_sif(dest, &objects)?;
        info(&format!("Build complete: {}", dest.display()));
        Ok(())
    }
}

/// Rename `tmp` to `dest`; if another build published `dest` first, keep theirs.
fn publish(tmp: &Path, dest: &Path) -> Result<()> {
    if let Err(e) = std::fs::rename(tmp, dest) {
        if dest.is_dir() {
            let _ = std::fs::remove_dir_all(tmp);
            return Ok(());
        }
        return Err(SifError::io(dest, e));
    }
    if let Some(p) = dest.parent() {
        let _ = berth_store::fsync_dir(p);
    }
    Ok(())
}

fn open_dir(p: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        p,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SifError::io(p, e.into()))
}

pub(crate) fn sys_mount(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<()> {
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes()).map_err(|_| SifError::Build("path with NUL".into()))
    };
    let src_c = src.map(c).transpose()?;
    let target_c = c(target)?;
    let fs_c = fstype.map(|f| CString::new(f).expect("static"));
    let data_c = data
        .map(|d| CString::new(d).map_err(|_| SifError::Build("mount data with NUL".into())))
        .transpose()?;
    // SAFETY: all pointers are null or NUL-terminated strings alive for the call.
    let r = unsafe {
        libc::mount(
            src_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            target_c.as_ptr(),
            fs_c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            flags,
            data_c
                .as_ref()
                .map_or(std::ptr::null(), |c| c.as_ptr().cast()),
        )
    };
    if r != 0 {
        return Err(SifError::sys(
            format!("mounting {}", target.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Mount an overlay of `lowers` (bottom first) at `target`, writable when `upper` is given.
fn mount_overlay(
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    target: &Path,
    empty: &Path,
) -> Result<()> {
    let mut l: Vec<String> = lowers
        .iter()
        .rev()
        .map(|p| p.to_string_lossy().replace(':', "\\:").replace(',', "\\,"))
        .collect();
    // A read-only overlay wants two lowers; an empty one is harmless.
    while l.len() < 2 {
        l.push(empty.to_string_lossy().into_owned());
    }
    let mut data = format!("lowerdir={}", l.join(":"));
    if let Some((u, w)) = upper {
        data.push_str(&format!(
            ",upperdir={},workdir={}",
            u.display(),
            w.display()
        ));
    }
    if data.len() > 4000 {
        return Err(SifError::Build(format!(
            "too many layers for one overlay mount ({})",
            lowers.len()
        )));
    }
    sys_mount(
        Some(Path::new("overlay")),
        target,
        Some("overlay"),
        0,
        Some(&data),
    )
}

/// Hash a host path for the cache key: names, modes, sizes, link targets and contents.
fn hash_tree(h: &mut Sha256, src: &Path, def: &Definition) -> Result<()> {
    let p = host_path(src, def);
    hash_tree_plain(h, &p)
}

fn hash_tree_plain(h: &mut Sha256, p: &Path) -> Result<()> {
    let md = std::fs::symlink_metadata(p).map_err(|e| SifError::io(p, e))?;
    h.update(p.file_name().map(|n| n.as_bytes()).unwrap_or(b"/"));
    h.update(md.permissions().mode().to_le_bytes());
    if md.is_symlink() {
        let t = std::fs::read_link(p).map_err(|e| SifError::io(p, e))?;
        h.update(t.as_os_str().as_bytes());
    } else if md.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(p)
            .map_err(|e| SifError::io(p, e))?
            .flatten()
            .map(|e| e.path())
            .collect();
        names.sort();
        for n in names {
            hash_tree_plain(h, &n)?;
        }
    } else if md.is_file() {
        let mut f = std::fs::File::open(p).map_err(|e| SifError::io(p, e))?;
        h.update(md.len().to_le_bytes());
        std::io::copy(&mut f, h).map_err(|e| SifError::io(p, e))?;
    }
    Ok(())
}

/// Host paths of `%files` are relative to the build's working directory (as Apptainer).
fn host_path(src: &Path, _def: &Definition) -> PathBuf {
    src.to_path_buf()
}

/// `%files` line: copy into the new root, every destination component resolved inside it.
fn copy_in(
    f: &deffile::FileCopy,
    from_root: Option<&Path>,
    merged: &Path,
    def: &Definition,
) -> Result<()> {
    let src = match from_root {
        Some(r) => {
            // Resolve inside the other stage's root.
            let root = open_dir(r)?;
            let fd = rustix::fs::openat2(
                &root,
                f.src.trim_start_matches('/'),
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                rustix::fs::ResolveFlags::IN_ROOT | rustix::fs::ResolveFlags::NO_MAGICLINKS,
            )
            .map_err(|e| SifError::Definition {
                file: def.file.clone(),
                line: f.line,
                why: format!(
                    "%files from {}: {}: {e}",
                    f.from.as_deref().unwrap_or(""),
                    f.src
                ),
            })?;
            // `cp` reads it through this process's descriptor (kept open until exit).
            let p = PathBuf::from(format!(
                "/proc/{}/fd/{}",
                std::process::id(),
                fd.as_raw_fd()
            ));
            std::mem::forget(fd);
            p
        }
        None => host_path(Path::new(&f.src), def),
    };
    if std::fs::symlink_metadata(&src).is_err() {
        return Err(SifError::Definition {
            file: def.file.clone(),
            line: f.line,
            why: format!("%files: {} does not exist", f.src),
        });
    }
    let dst = f.dst.trim_end_matches('/');
    let (parent, name) = match dst.rsplit_once('/') {
        Some((p, n)) if !n.is_empty() => (p, n),
        _ => ("", dst),
    };
    let root = open_dir(merged)?;
    let pfd = mountpoint_in_root(&root, if parent.is_empty() { "/" } else { parent }, false)?;
    // `cp` is another process: name our descriptor through our pid.
    let target = PathBuf::from(format!(
        "/proc/{}/fd/{}/{}",
        std::process::id(),
        pfd.as_raw_fd(),
        name
    ));
    let out = Command::new("cp")
        .arg("-a")
        .arg("-L")
        .arg(&src)
        .arg(&target)
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| SifError::sys("running cp", e))?;
    if !out.status.success() {
        return Err(SifError::Definition {
            file: def.file.clone(),
            line: f.line,
            why: format!(
                "%files {} {}: {}",
                f.src,
                f.dst,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// The interpreter of a script section: `-c /bin/bash` in its arguments, else `/bin/sh`.
fn interpreter(s: &Script) -> String {
    let w: Vec<&str> = s.args.split_whitespace().collect();
    w.iter()
        .position(|x| *x == "-c")
        .and_then(|i| w.get(i + 1))
        .map_or_else(|| "/bin/sh".to_string(), |s| s.to_string())
}

fn section_failed(
    s: &Script,
    def: &Definition,
    name: &str,
    status: std::process::ExitStatus,
) -> SifError {
    SifError::Build(format!(
        "{}:{}: %{name} failed ({status}); fix the section and build again",
        def.file.display(),
        s.line
    ))
}

/// `%setup`: on the host, `$APPTAINER_ROOTFS` = the new root.
fn run_host_script(s: &Script, merged: &Path, def: &Definition) -> Result<()> {
    let st = Command::new(interpreter(s))
        .arg("-e")
        .arg("-c")
        .arg(&s.body)
        .env("APPTAINER_ROOTFS", merged)
        .env("SINGULARITY_ROOTFS", merged)
        .stdin(Stdio::null())
        .status()
        .map_err(|e| SifError::sys("running %setup", e))?;
    if !st.success() {
        return Err(section_failed(s, def, "setup", st));
    }
    Ok(())
}

/// `%post`: chrooted into the new root, host network, /proc /sys /dev and the host's
/// resolv.conf and hosts bound in (the build's private mount namespace; unmounted with the root).
fn run_in_root(s: &Script, merged: &Path, def: &Definition) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let root = open_dir(merged)?;
    let interp = interpreter(s);
    for (src, dst, is_dir) in [
        ("/proc", "/proc", true),
        ("/sys", "/sys", true),
        ("/dev", "/dev", true),
        ("/etc/resolv.conf", "/etc/resolv.conf", false),
        ("/etc/hosts", "/etc/hosts", false),
    ] {
        if !Path::new(src).exists() {
            continue;
        }
        // Resolved inside the new root, so an image's symlink cannot send the mount outside.
        let Ok(fd) = mountpoint_in_root(&root, dst, !is_dir) else {
            continue;
        };
        let target = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        let flags = libc::MS_BIND | if is_dir { libc::MS_REC } else { 0 };
        sys_mount(Some(Path::new(src)), &target, None, flags, None)?;
    }
    let merged_c = CString::new(merged.as_os_str().as_bytes())
        .map_err(|_| SifError::Build("root path with NUL".into()))?;
    let mut c = Command::new(&interp);
    c.arg("-e").arg("-c").arg(&s.body);
    c.env_clear()
        .env("PATH", DEFAULT_PATH)
        .env("HOME", "/root")
        .env("LANG", "C")
        .env(
            "TERM",
            std::env::var("TERM").unwrap_or_else(|_| "dumb".into()),
        )
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("APPTAINER_ROOTFS", "/")
        .env("SINGULARITY_ROOTFS", "/")
        .env(
            "APPTAINER_ENVIRONMENT",
            "/.singularity.d/env/91-environment.sh",
        )
        .env(
            "SINGULARITY_ENVIRONMENT",
            "/.singularity.d/env/91-environment.sh",
        )
        .stdin(Stdio::null());
    // SAFETY: the closure runs between fork and exec and only makes raw system calls on
    // memory prepared before the fork (no allocation, no locks).
    unsafe {
        c.pre_exec(move || {
            if libc::chroot(merged_c.as_ptr()) != 0 || libc::chdir(c"/".as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let st = c.status().map_err(|e| {
        SifError::Build(format!(
            "{}:{}: cannot start %post with {interp} in the new root: {e}",
            def.file.display(),
            s.line
        ))
    })?;
    if !st.success() {
        return Err(section_failed(s, def, "post", st));
    }
    Ok(())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// What a SIF or sandbox base image already provides.
struct BaseMeta {
    runscript: bool,
    environment: bool,
    labels: BTreeMap<String, String>,
}

/// Write the `/.singularity.d` layout for the image (Apptainer's names) into `meta`.
fn write_metadata(
    meta: &Path,
    def: &Definition,
    st: &Stage,
    config: Option<&ImageConfig>,
    base: &BaseMeta,
) -> Result<()> {
    let sd = meta.join(".singularity.d");
    for d in ["env", "actions", "libs"] {
        let p = sd.join(d);
        std::fs::create_dir_all(&p).map_err(|e| SifError::io(&p, e))?;
    }
    let write = |rel: &str, text: &str, mode: u32| -> Result<()> {
        let p = sd.join(rel);
        std::fs::write(&p, text).map_err(|e| SifError::io(&p, e))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| SifError::io(&p, e))
    };
    let script = |s: &Script| -> String {
        let mut shebang = "#!/bin/sh".to_string();
        let args = s.args.trim();
        if !args.is_empty() {
            shebang.push(' ');
            shebang.push_str(args);
        }
        format!("{shebang}\n\n{}\n", s.body)
    };
    // Runscript: the definition's, else one from the image's ENTRYPOINT/CMD, else a notice.
    let runscript = match (&st.runscript, config) {
        (Some(s), _) => script(s),
        (None, Some(c)) if c.entrypoint.is_some() || c.cmd.is_some() => {
            let q = |v: &Option<Vec<String>>| {
                v.as_ref()
                    .map(|w| {
                        w.iter()
                            .map(|x| shell_quote(x))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default()
            };
            let ep = q(&c.entrypoint);
            let cmd = q(&c.cmd);
            format!(
                "#!/bin/sh\n# from the OCI image's ENTRYPOINT and CMD\nif [ $# -gt 0 ]; then\n    exec {ep} \"$@\"\nfi\nexec {ep} {cmd}\n"
            )
        }
        _ if base.runscript => String::new(),
        _ => "#!/bin/sh\n\necho \"There is no runscript defined for this container\"\n".to_string(),
    };
    if !runscript.is_empty() {
        write("runscript", &runscript, 0o755)?;
    }
    if let Some(s) = &st.startscript {
        write("startscript", &script(s), 0o755)?;
    }
    if let Some(s) = &st.test {
        write("test", &script(s), 0o755)?;
    }
    if let Some(h) = &st.help {
        write("runscript.help", &format!("{h}\n"), 0o644)?;
    }
    write(
        "env/01-base.sh",
        "#!/bin/sh\n# Apptainer/berth base environment\n",
        0o755,
    )?;
    if let Some(c) = config {
        let mut s = String::from("#!/bin/sh\n# from the OCI image's Env\n");
        for kv in c.env.iter().flatten() {
            if let Some((k, v)) = kv.split_once('=') {
                if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !k.is_empty() {
                    s.push_str(&format!(
                        "export {k}=\"${{{k}:-{}}}\"\n",
                        v.replace('"', "\\\"")
                            .replace('$', "\\$")
                            .replace('`', "\\`")
                    ));
                }
            }
        }
        // PATH always comes from the image.
        if let Some(p) = c
            .env
            .iter()
            .flatten()
            .find_map(|kv| kv.strip_prefix("PATH="))
        {
            s.push_str(&format!("export PATH={}\n", shell_quote(p)));
        }
        write("env/10-docker2singularity.sh", &s, 0o755)?;
    }
    if st.environment.is_some() || !base.environment {
        let env_body = st
            .environment
            .as_ref()
            .map(|s| s.body.clone())
            .unwrap_or_default();
        write(
            "env/90-environment.sh",
            &format!("#!/bin/sh\n# Custom environment shell code should follow\n\n{env_body}\n"),
            0o755,
        )?;
    }
    // Labels: the base image's, then the definition's, then the schema labels.
    let mut labels: BTreeMap<String, String> = base.labels.clone();
    labels.extend(config.and_then(|c| c.labels.clone()).unwrap_or_default());
    for (k, v) in &st.labels {
        labels.insert(k.clone(), v.clone());
    }
    labels.insert(
        "org.label-schema.build-date".into(),
        chrono::Utc::now()
            .format("%A_%-d_%B_%Y_%H:%M:%S_%Z")
            .to_string(),
    );
    labels.insert("org.label-schema.schema-version".into(), "1.0".into());
    labels.insert(
        "org.label-schema.build-arch".into(),
        crate::format::arch_name(&crate::format::host_arch_code()).into(),
    );
    if st.help.is_some() {
        labels.insert(
            "org.label-schema.usage".into(),
            "/.singularity.d/runscript.help".into(),
        );
    }
    labels.insert(
        "org.label-schema.usage.singularity.version".into(),
        format!("berth {}", env!("CARGO_PKG_VERSION")),
    );
    write(
        "labels.json",
        &serde_json::to_string_pretty(&labels).expect("json"),
        0o644,
    )?;
    write("Singularity", &def.text, 0o644)?;
    for a in [
        crate::run::Action::Run,
        crate::run::Action::Exec,
        crate::run::Action::Shell,
        crate::run::Action::Test,
        crate::run::Action::Start,
    ] {
        let name = match a {
            crate::run::Action::Start => "start",
            crate::run::Action::Run => "run",
            crate::run::Action::Exec => "exec",
            crate::run::Action::Shell => "shell",
            crate::run::Action::Test => "test",
        };
        write(
            &format!("actions/{name}"),
            &format!("#!/bin/sh\n{}", crate::run::action_script(a, &[])),
            0o755,
        )?;
    }
    for (link, target) in [
        ("environment", ".singularity.d/env/90-environment.sh"),
        ("singularity", ".singularity.d/runscript"),
    ] {
        let p = meta.join(link);
        std::os::unix::fs::symlink(target, &p).map_err(|e| SifError::io(&p, e))?;
    }
    Ok(())
}

/// `--fix-perms`: owner rw on files, rwx on directories.
fn fix_perms(p: &Path) -> Result<()> {
    let md = std::fs::symlink_metadata(p).map_err(|e| SifError::io(p, e))?;
    if md.is_symlink() {
        return Ok(());
    }
    let mode = md.permissions().mode();
    let want = if md.is_dir() {
        mode | 0o700
    } else {
        mode | 0o600
    };
    if want != mode {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(want))
            .map_err(|e| SifError::io(p, e))?;
    }
    if md.is_dir() {
        for e in std::fs::read_dir(p)
            .map_err(|e| SifError::io(p, e))?
            .flatten()
        {
            fix_perms(&e.path())?;
        }
    }
    Ok(())
}
