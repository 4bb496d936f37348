//! `inspect`: what an image says about itself (labels, runscript, definition, environment).

use std::path::Path;
use std::process::{Command, Stdio};

use crate::format::{DataType, Sif};
use crate::{Result, SifError};

/// An image's metadata, each part absent when the image has none.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Inspection {
    /// `/.singularity.d/labels.json` (or the SIF's labels object).
    pub labels: serde_json::Map<String, serde_json::Value>,
    /// The runscript.
    pub runscript: Option<String>,
    /// The definition file the image was built from.
    pub deffile: Option<String>,
    /// The environment scripts, by name (`90-environment.sh`, …).
    pub environment: std::collections::BTreeMap<String, String>,
    /// The `%test` script.
    pub test: Option<String>,
    /// The `%startscript`.
    pub startscript: Option<String>,
    /// The `%help` text.
    pub help: Option<String>,
}

/// Read a file of the image: from a sandbox directory, or the SIF's squashfs (`unsquashfs -cat`).
fn read_in_image(image: &Path, sif: Option<&Sif>, rel: &str) -> Option<String> {
    match sif {
        None => {
            let root = rustix::fs::open(
                image,
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
                rustix::fs::Mode::empty(),
            )
            .ok()?;
            let fd = rustix::fs::openat2(
                &root,
                rel,
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
                rustix::fs::ResolveFlags::IN_ROOT | rustix::fs::ResolveFlags::NO_MAGICLINKS,
            )
            .ok()?;
            let mut s = String::new();
            use std::io::Read;
            std::fs::File::from(fd)
                .take(4 << 20)
                .read_to_string(&mut s)
                .ok()?;
            Some(s)
        }
        Some(sif) => {
            let part = sif.rootfs_partition().ok()?;
            let out = Command::new("unsquashfs")
                .args(["-cat", "-o"])
                .arg(part.offset.to_string())
                .arg(image)
                .arg(rel)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        }
    }
}

/// Inspect a SIF file or sandbox directory.
///
/// Errors: the image cannot be opened or is not a valid SIF.
pub fn inspect(image: &Path) -> Result<Inspection> {
    let md = std::fs::metadata(image).map_err(|e| SifError::io(image, e))?;
    let sif = if md.is_dir() {
        None
    } else {
        Some(Sif::open(image)?)
    };
    let mut out = Inspection::default();
    let labels_text = match &sif {
        Some(s) => s
            .object_of(DataType::Labels)?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .filter(|t| !t.trim().is_empty())
            .or_else(|| read_in_image(image, Some(s), ".singularity.d/labels.json")),
        None => read_in_image(image, None, ".singularity.d/labels.json"),
    };
    if let Some(t) = labels_text {
        if let Ok(serde_json::Value::Object(m)) = serde_json::from_str(&t) {
            out.labels = m;
        }
    }
    out.deffile = match &sif {
        Some(s) => s
            .object_of(DataType::Deffile)?
            .map(|b| String::from_utf8_lossy(&b).into_owned()),
        None => None,
    }
    .or_else(|| read_in_image(image, sif.as_ref(), ".singularity.d/Singularity"));
    out.runscript = read_in_image(image, sif.as_ref(), ".singularity.d/runscript");
    out.test = read_in_image(image, sif.as_ref(), ".singularity.d/test");
    out.startscript = read_in_image(image, sif.as_ref(), ".singularity.d/startscript");
    out.help = read_in_image(image, sif.as_ref(), ".singularity.d/runscript.help");
    let env_names: Vec<String> = match &sif {
        Some(s) => match s.object_of(DataType::EnvVar)? {
            Some(b) => serde_json::from_slice::<std::collections::BTreeMap<String, String>>(&b)
                .map(|m| m.into_keys().collect())
                .unwrap_or_default(),
            None => vec!["90-environment.sh".into()],
        },
        None => std::fs::read_dir(image.join(".singularity.d/env"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default(),
    };
    for n in env_names {
        if n.contains('/') {
            continue;
        }
        if let Some(t) = read_in_image(image, sif.as_ref(), &format!(".singularity.d/env/{n}")) {
            out.environment.insert(n, t);
        }
    }
    Ok(out)
}
