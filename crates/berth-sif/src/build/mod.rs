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
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_image::{ImageConfig, ImageStore, Reference};
use berth_store::Store;
use sha2::{Digest as _, Sha256};

use crate::deffile::{self, Bootstrap, Definition, Stage};
use crate::format::{self, DataType, NewObject, ObjectData};
use crate::run::mountpoint_in_root;
use crate::{squash, Result, SifError};

mod metadata;
mod mounts;
mod sections;

use metadata::*;
pub(crate) use mounts::sys_mount;
use mounts::*;
use sections::*;

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
