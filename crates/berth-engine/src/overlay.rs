//! Overlay mounts with more layers than one `mount(2)` option string can name.
//!
//! `mount(2)` takes overlayfs' options as one string of at most a page (4096 bytes), so
//! `lowerdir=a:b:…` fits only about 40 layers under a store path like
//! `/var/lib/berth/layers/<64 hex digits>`. The new mount API (`fsopen`, `fsconfig`,
//! `fsmount`, `move_mount`; Linux 5.2) passes each option separately, and overlayfs' `lowerdir+`
//! key (Linux 6.8) appends one lower layer per call, so the only limit left is overlayfs'
//! own stack depth (500 layers). Older kernels get a clear error instead.

use std::io;
use std::path::{Path, PathBuf};

use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, FsMountFlags, FsOpenFlags,
    MountAttrFlags, MoveMountFlags,
};

/// Longest `mount(2)` option string berth hands to overlayfs (the kernel copies one page).
pub const MAX_OPTIONS_LEN: usize = 4000;

/// `lowers` (bottom layer first) with each directory only once, at its topmost place. An image
/// may list one layer twice (identical diffs share a diff id, e.g. a cached `COPY --link` used
/// twice), and overlayfs refuses a lower directory given twice (ELOOP, "overlapping"). The
/// copies below the topmost one change nothing: every path the layer names (files, whiteouts,
/// opaque directories) is decided by that topmost copy, and it names nothing else.
pub fn distinct_lowers(lowers: &[PathBuf]) -> Vec<PathBuf> {
    let mut seen = std::collections::HashSet::new();
    let mut top_first: Vec<PathBuf> = lowers
        .iter()
        .rev()
        .filter(|p| seen.insert(p.as_path()))
        .cloned()
        .collect();
    top_first.reverse();
    top_first
}

/// Mount an overlay at `target` through the new mount API: `lowers` top layer first (as in
/// `lowerdir=`), `upper` = (upper dir, work dir) for a writable overlay, `read_only` for an
/// `MS_RDONLY` mount. A read-only overlay without an upper needs at least two lowers.
///
/// # Errors
/// The kernel's: `ENOSYS` without the new mount API, `EINVAL` when overlayfs does not know
/// `lowerdir+` (before Linux 6.8), or any error of the mount itself.
pub fn mount_each_layer(
    target: &Path,
    lowers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    read_only: bool,
) -> io::Result<()> {
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    for l in lowers {
        fsconfig_set_string(&fs, "lowerdir+", l.as_path())?;
    }
    if let Some((u, w)) = upper {
        fsconfig_set_string(&fs, "upperdir", u)?;
        fsconfig_set_string(&fs, "workdir", w)?;
    }
    fsconfig_create(&fs)?;
    let attrs = if read_only {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    } else {
        MountAttrFlags::empty()
    };
    let m = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
    move_mount(
        &m,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    Ok(())
}

/// A one-line explanation of a [`mount_each_layer`] failure for a deep image.
pub fn too_deep_message(layers: usize, e: &io::Error) -> String {
    format!(
        "the image has {layers} layers, more than one overlay mount option string can name, and this kernel cannot mount them one by one ({e}; overlayfs' lowerdir+ needs Linux 6.8); squash some RUN steps"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_lowers_keep_the_topmost_copy() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            distinct_lowers(&[p("a"), p("b"), p("a"), p("c"), p("b")]),
            vec![p("a"), p("c"), p("b")]
        );
        assert_eq!(distinct_lowers(&[p("a")]), vec![p("a")]);
    }
}
