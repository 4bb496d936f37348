//! Every tar entry form that Go's `archive/tar` (Docker's and Podman's extractor) reads
//! extracts to the same tree as GNU tar's own `tar -x`: sparse files (PAX 0.0, 0.1, 1.0 and the
//! old GNU form), long names and link targets (GNU `L`/`K` records and PAX `path`/`linkpath`),
//! PAX uid/gid/mtime and xattrs. Fixtures are written by GNU tar here, in each format.
//! Runs as root (ownership beyond 16 bits, trusted tar extraction); skipped otherwise.

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

const LONG_DIR: &str = "a-directory-with-a-rather-long-name-to-pass-the-ustar-limit/and-another-level-that-is-also-quite-long";

/// The source tree: sparse files, long names and targets, big ids, xattrs, odd modes.
fn make_source(src: &Path) {
    std::fs::create_dir_all(src.join(LONG_DIR)).unwrap();
    // A 6 MiB file with holes (the reported case), and one that ends in a hole.
    let mut f = std::fs::File::create(src.join("sparse6m")).unwrap();
    f.write_all(&[b'A'; 4096]).unwrap();
    f.seek(SeekFrom::Start(3 << 20)).unwrap();
    f.write_all(&[b'B'; 8192]).unwrap();
    f.seek(SeekFrom::Start((6 << 20) - 100)).unwrap();
    f.write_all(&[b'C'; 100]).unwrap();
    drop(f);
    let f = std::fs::File::create(src.join("trailing-hole")).unwrap();
    f.set_len(1 << 20).unwrap();
    let mut f = f;
    f.write_all(b"head").unwrap();
    drop(f);
    // Long names, a long symlink target, a hardlink to a long name.
    let long_file =
        format!("{LONG_DIR}/a-file-whose-full-path-is-longer-than-one-hundred-bytes.txt");
    std::fs::write(src.join(&long_file), b"long\n").unwrap();
    std::os::unix::fs::symlink(format!("/{long_file}"), src.join("long-link")).unwrap();
    std::fs::hard_link(src.join(&long_file), src.join("hard-to-long")).unwrap();
    // Ids beyond the octal header fields (PAX uid/gid), an old mtime, a read-only directory.
    let big = src.join("big-ids");
    std::fs::write(&big, b"ids\n").unwrap();
    std::os::unix::fs::chown(&big, Some(3_000_000), Some(3_000_001)).unwrap();
    let ro = src.join("ro-dir");
    std::fs::create_dir(&ro).unwrap();
    std::fs::write(ro.join("inside"), b"x").unwrap();
    // An xattr (PAX SCHILY.xattr).
    let x = src.join("with-xattr");
    std::fs::write(&x, b"x\n").unwrap();
    let _ = rustix::fs::setxattr(&x, "user.berth", b"hello", rustix::fs::XattrFlags::empty());
    Command::new("touch")
        .args(["-h", "-d", "2001-02-03 04:05:06"])
        .arg(&big)
        .arg(src.join("long-link"))
        .status()
        .unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(src, std::fs::Permissions::from_mode(0o751)).unwrap();
}

#[derive(Debug, PartialEq)]
struct Node {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: i64,
    content: Option<Vec<u8>>,
    target: Option<PathBuf>,
    xattr: Option<Vec<u8>>,
    nlink: u64,
}

fn tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, p: &Path, out: &mut BTreeMap<String, Node>) {
    let md = std::fs::symlink_metadata(p).unwrap();
    let rel = p.strip_prefix(root).unwrap().display().to_string();
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        "dir"
    } else if ft.is_symlink() {
        "symlink"
    } else {
        "file"
    };
    let xattr = if ft.is_symlink() {
        None
    } else {
        let mut buf = vec![0u8; 256];
        rustix::fs::getxattr(p, "user.berth", &mut buf[..])
            .ok()
            .map(|n| buf[..n].to_vec())
    };
    out.insert(
        if rel.is_empty() { ".".into() } else { rel },
        Node {
            kind,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            size: if ft.is_file() { md.size() } else { 0 },
            // Directory times change as their children are created; both sides set them last.
            mtime: if ft.is_symlink() { 0 } else { md.mtime() },
            content: ft.is_file().then(|| std::fs::read(p).unwrap()),
            target: ft.is_symlink().then(|| std::fs::read_link(p).unwrap()),
            xattr,
            nlink: if ft.is_file() { md.nlink() } else { 0 },
        },
    );
    if ft.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(p)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        names.sort();
        for n in names {
            walk(root, &n, out);
        }
    }
}

fn gnu_tar(src: &Path, out: &Path, format_args: &[&str]) {
    let mut c = Command::new("tar");
    c.args(format_args);
    if format_args.contains(&"--format=posix") {
        c.arg("--xattrs");
    }
    c.args(["--numeric-owner", "-C"])
        .arg(src)
        .arg("-cf")
        .arg(out)
        .arg(".");
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "tar {format_args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn every_tar_form_go_reads_extracts_like_gnu_tar() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    make_source(&src);
    let forms: &[(&str, &[&str])] = &[
        (
            "pax-sparse-1.0",
            &["--format=posix", "--sparse-version=1.0", "-S"],
        ),
        (
            "pax-sparse-0.1",
            &["--format=posix", "--sparse-version=0.1", "-S"],
        ),
        (
            "pax-sparse-0.0",
            &["--format=posix", "--sparse-version=0.0", "-S"],
        ),
        ("gnu-sparse", &["--format=gnu", "-S"]),
        ("gnu-long-names", &["--format=gnu"]),
        ("pax", &["--format=posix"]),
    ];
    for (name, args) in forms {
        let tar = tmp.path().join(format!("{name}.tar"));
        gnu_tar(&src, &tar, args);
        let want = tmp.path().join(format!("{name}-tar-x"));
        std::fs::create_dir(&want).unwrap();
        let o = Command::new("tar")
            .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
            .arg(&tar)
            .arg("-C")
            .arg(&want)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "tar -x {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let got = tmp.path().join(format!("{name}-berth"));
        std::fs::create_dir(&got).unwrap();
        let mut f = std::fs::File::open(&tar).unwrap();
        berth_image::unpack_layer(&mut f, &got)
            .unwrap_or_else(|e| panic!("{name}: berth refused what GNU tar wrote: {e}"));
        let (w, g) = (tree(&want), tree(&got));
        assert_eq!(
            w.keys().collect::<Vec<_>>(),
            g.keys().collect::<Vec<_>>(),
            "{name}: the same paths"
        );
        for (path, wn) in &w {
            assert_eq!(Some(wn), g.get(path), "{name}: {path}");
        }
        // Holes stay holes.
        let md = std::fs::metadata(got.join("sparse6m")).unwrap();
        assert_eq!(md.len(), 6 << 20);
        if name.contains("sparse") && !name.starts_with("gnu") {
            assert!(md.blocks() * 512 < 1 << 20, "{name}: holes were filled");
        }
    }
}

/// Forms Go's reader refuses are refused with an error naming the entry.
#[test]
fn broken_sparse_entries_are_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    // A PAX 0.1 sparse entry whose map runs past its real size.
    let mut b = tar::Builder::new(Vec::new());
    let data = b"0123456789";
    let mut h = tar::Header::new_ustar();
    h.set_path("GNUSparseFile.0/bad").unwrap();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    b.append_pax_extensions([
        ("GNU.sparse.major", &b"0"[..]),
        ("GNU.sparse.minor", b"1"),
        ("GNU.sparse.name", b"bad"),
        ("GNU.sparse.size", b"5"),
        ("GNU.sparse.numblocks", b"1"),
        ("GNU.sparse.map", b"0,10"),
    ])
    .unwrap();
    b.append(&h, &data[..]).unwrap();
    let bytes = b.into_inner().unwrap();
    let dest = tmp.path().join("x");
    std::fs::create_dir(&dest).unwrap();
    let e = berth_image::unpack_layer(&mut &bytes[..], &dest)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("GNUSparseFile.0/bad") && e.contains("sparse"),
        "{e}"
    );
    // An unknown sparse version.
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("GNU.sparse.major", &b"7"[..]), ("GNU.sparse.minor", b"0")])
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_path("f").unwrap();
    h.set_size(0);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    let bytes = b.into_inner().unwrap();
    let e = berth_image::unpack_layer(&mut &bytes[..], &dest)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sparse format 7.0"), "{e}");
}
