//! Apptainer's workflow in berth: definition files, SIF single-file images, and running them
//! like scripts (`./x.sif ARGS`) as root or as an unprivileged user.
//!
//! * [`format`]: the SIF container format (read with validation, write).
//! * [`deffile`]: definition files (header keys, sections, `{{ var }}` build arguments).
//! * [`build`]: bootstrap (berth's store, registries, archives, SIF/sandbox, debootstrap), the
//!   build sections, the `/.singularity.d` layout, the content-addressed build cache, and the
//!   squashfs + SIF output.
//! * [`run`]: `run`/`exec`/`shell`/`test` in a mount namespace (plus a user namespace when not
//!   root) with the host's home, cwd, /tmp, /proc, /sys, /dev and network files bound in.

//! * [`instance`]: `instance start|list|stop` for `%startscript` services.
//! * [`inspect`]: labels, runscript, definition, environment of an image.

pub mod build;
pub mod deffile;
pub mod format;
pub mod inspect;
pub mod instance;

pub mod run;
mod squash;

use std::path::PathBuf;

pub use deffile::{BuildArgs, Definition};
pub use format::Sif;

/// Errors of the SIF layer.
#[derive(Debug, thiserror::Error)]
pub enum SifError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A SIF file that is malformed, truncated or of an unsupported kind.
    #[error("{path}: {why}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        why: String,
    },
    /// A definition file error at a line.
    #[error("{file}:{line}: {why}")]
    Definition {
        /// The definition file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong and what to do.
        why: String,
    },
    /// A build step (bootstrap, section script, squashfs) failed.
    #[error("{0}")]
    Build(String),
    /// Setting up or starting the container failed.
    #[error("{0}")]
    Run(String),
    /// An operation that needs root was asked for by another user.
    #[error("{0} needs root; run it with sudo")]
    NeedsRoot(String),
    /// A system call failed.
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Store or image layer.
    #[error(transparent)]
    Image(#[from] berth_image::ImageError),
    /// The store.
    #[error(transparent)]
    Store(#[from] berth_store::StoreError),
    /// A registry pull.
    #[error(transparent)]
    Registry(#[from] berth_registry::RegistryError),
    /// Refused because it exists (`--force` overrides) or similar.
    #[error("{0}")]
    Conflict(String),
}

impl SifError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SifError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn sys(what: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        SifError::Sys {
            what: what.into(),
            source: source.into(),
        }
    }
}

/// Result of this crate.
pub type Result<T, E = SifError> = std::result::Result<T, E>;

/// Whether the effective user is root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Turn a SIF image (or sandbox directory) into an OCI image in berth's store, tagged
/// `reference`: one layer with the root file system; `ENTRYPOINT` is Apptainer's run action
/// (sources `/.singularity.d/env`, runs the runscript); labels are kept. Needs root.
///
/// Errors: the image is invalid, extraction fails, store errors.
pub fn import(
    store: &berth_store::Store,
    image: &std::path::Path,
    reference: &berth_image::Reference,
) -> Result<berth_store::Digest> {
    use std::process::{Command, Stdio};
    if !is_root() {
        return Err(SifError::NeedsRoot("importing into berth's store".into()));
    }
    let md = std::fs::metadata(image).map_err(|e| SifError::io(image, e))?;
    let tmp = store.tmp_path("sif-import");
    let root = if md.is_dir() {
        image.to_path_buf()
    } else {
        let sif = Sif::open(image)?;
        let part = sif.rootfs_partition()?;
        squash::unsquashfs(image, part.offset, &tmp, false)?;
        tmp.clone()
    };
    let res = (|| {
        let insp = inspect::inspect(image)?;
        let mut changes = vec![
            r#"ENTRYPOINT ["/.singularity.d/actions/run"]"#.to_string(),
            format!("ENV PATH={}", run::DEFAULT_PATH),
        ];
        for (k, v) in &insp.labels {
            let v = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
            changes.push(format!("LABEL {}={}", q(k), q(&v)));
        }
        let mut child = Command::new("tar")
            .args(["--numeric-owner", "--one-file-system", "-C"])
            .arg(&root)
            .args(["-cf", "-", "."])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| SifError::sys("running tar", e))?;
        let mut out = child.stdout.take().expect("piped");
        let is = berth_image::ImageStore::open(store)?;
        let opts = berth_image::import::ImportOptions {
            changes,
            message: None,
            source: image.display().to_string(),
            ..Default::default()
        };
        let id = berth_image::import::import_rootfs(&is, &mut out, Some(reference), &opts);
        let st = child
            .wait()
            .map_err(|e| SifError::sys("waiting for tar", e))?;
        if !st.success() {
            return Err(SifError::Build(format!(
                "tar of {} failed ({st})",
                root.display()
            )));
        }
        Ok(id?)
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    res
}
