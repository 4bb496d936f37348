use super::*;
use rustix::fs as rfs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let p = std::env::temp_dir().join(format!("berth-unpack-{:016x}", rand::random::<u64>()));
        fs::create_dir_all(p.join("dest")).unwrap();
        fs::create_dir_all(p.join("outside")).unwrap();
        Scratch(p)
    }
    fn dest(&self) -> PathBuf {
        self.0.join("dest")
    }
    fn outside(&self) -> PathBuf {
        self.0.join("outside")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(0);
    h
}

/// Append an entry with an unchecked raw name/link (hostile archives).
fn raw(
    b: &mut tar::Builder<Vec<u8>>,
    kind: tar::EntryType,
    name: &str,
    link: Option<&str>,
    data: &[u8],
) {
    let mut h = header(kind, 0o644);
    let old = h.as_old_mut();
    old.name = [0; 100];
    old.name[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(l) = link {
        old.linkname = [0; 100];
        old.linkname[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_size(data.len() as u64);
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn file(b: &mut tar::Builder<Vec<u8>>, name: &str, mode: u32, data: &[u8]) {
    let mut h = header(tar::EntryType::Regular, mode);
    h.set_size(data.len() as u64);
    b.append_data(&mut h, name, data).unwrap();
}

fn dir(b: &mut tar::Builder<Vec<u8>>, name: &str, mode: u32) {
    let mut h = header(tar::EntryType::Directory, mode);
    b.append_data(&mut h, name, io::empty()).unwrap();
}

fn unpack(s: &Scratch, tar: Vec<u8>) -> Result<u64> {
    unpack_layer(&mut &tar[..], &s.dest())
}

fn outside_untouched(s: &Scratch) {
    assert_eq!(
        fs::read_dir(s.outside()).unwrap().count(),
        0,
        "something was written outside"
    );
    assert!(!s.0.join("x").exists());
    assert!(!Path::new("/etc/berth-pwned").exists());
}

#[test]
fn refuses_dotdot_escape() {
    let s = Scratch::new();
    let mut b = tar::Builder::new(Vec::new());
    raw(&mut b, tar::EntryType::Regular, "../x", None, b"boom");
    let e = unpack(&s, b.into_inner().unwrap()).unwrap_err().to_string();
    assert!(
        e.contains("\"../x\"") && e.contains("leaves the layer root"),
        "{e}"
    );
    let mut b = tar::Builder::new(Vec::new());
    raw(
        &mut b,
        tar::EntryType::Regular,
        "a/../../outside/x",
        None,
        b"boom",
    );
    assert!(unpack(&s, b.into_inner().unwrap()).is_err());
    outside_untouched(&s);
}

#[test]
fn absolute_paths_stay_inside() {
    let s = Scratch::new();
    let mut b = tar::Builder::new(Vec::new());
    raw(
        &mut b,
        tar::EntryType::Regular,
        "/etc/berth-pwned",
        None,
        b"inside",
    );
    unpack(&s, b.into_inner().unwrap()).unwrap();
    assert_eq!(
        fs::read(s.dest().join("etc/berth-pwned")).unwrap(),
        b"inside"
    );
    outside_untouched(&s);
}

#[test]
fn symlink_escape_is_contained() {
    let s = Scratch::new();
    let out = s.outside();
    // Absolute symlink to a real host directory, then a file through it.
    let mut b = tar::Builder::new(Vec::new());
    raw(
        &mut b,
        tar::EntryType::Symlink,
        "evil",
        Some(out.to_str().unwrap()),
        b"",
    );
    raw(&mut b, tar::EntryType::Regular, "evil/pwned", None, b"boom");
    let r = unpack(&s, b.into_inner().unwrap());
    // Either refused or created inside the layer; never outside.
    if let Err(e) = &r {
        assert!(e.to_string().contains("evil/pwned"), "{e}");
    }
    outside_untouched(&s);
    // The symlink itself keeps its target.
    assert_eq!(fs::read_link(s.dest().join("evil")).unwrap(), out);

    // Relative symlink climbing out, and "/" as a target: resolved inside the root.
    let s = Scratch::new();
    let mut b = tar::Builder::new(Vec::new());
    raw(
        &mut b,
        tar::EntryType::Symlink,
        "up",
        Some("../../../../.."),
        b"",
    );
    raw(&mut b, tar::EntryType::Symlink, "slash", Some("/"), b"");
    raw(&mut b, tar::EntryType::Regular, "up/x", None, b"1");
    raw(
        &mut b,
        tar::EntryType::Regular,
        "slash/etc/berth-pwned",
        None,
        b"2",
    );
    unpack(&s, b.into_inner().unwrap()).unwrap();
    assert_eq!(fs::read(s.dest().join("x")).unwrap(), b"1");
    assert_eq!(fs::read(s.dest().join("etc/berth-pwned")).unwrap(), b"2");
    outside_untouched(&s);

    // A later regular file replaces a symlink instead of writing through it.
    let s = Scratch::new();
    let victim = s.outside().join("victim");
    fs::write(&victim, b"original").unwrap();
    let mut b = tar::Builder::new(Vec::new());
    raw(
        &mut b,
        tar::EntryType::Symlink,
        "s",
        Some(victim.to_str().unwrap()),
        b"",
    );
    raw(&mut b, tar::EntryType::Regular, "s", None, b"overwritten?");
    unpack(&s, b.into_inner().unwrap()).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"original");
    assert_eq!(fs::read(s.dest().join("s")).unwrap(), b"overwritten?");
}

#[test]
fn replaced_symlink_is_not_followed_later() {
    let s = Scratch::new();
    let mut b = tar::Builder::new(Vec::new());
    dir(&mut b, "x", 0o755);
    raw(&mut b, tar::EntryType::Symlink, "s", Some("x"), b"");
    raw(&mut b, tar::EntryType::Regular, "s/f1", None, b"1");
    dir(&mut b, "s", 0o755);
    raw(&mut b, tar::EntryType::Regular, "s/f2", None, b"2");
    unpack(&s, b.into_inner().unwrap()).unwrap();
    let d = s.dest();
    assert_eq!(fs::read(d.join("x/f1")).unwrap(), b"1");
    assert!(fs::symlink_metadata(d.join("s")).unwrap().is_dir());
    assert_eq!(fs::read(d.join("s/f2")).unwrap(), b"2");
    assert!(!d.join("x/f2").exists());
}

#[test]
fn hardlink_escape_refused() {
    let s = Scratch::new();
    let mut b = tar::Builder::new(Vec::new());
    raw(
        &mut b,
        tar::EntryType::Link,
        "h",
        Some("../../../etc/passwd"),
        b"",
    );
    let e = unpack(&s, b.into_inner().unwrap()).unwrap_err().to_string();
    assert!(
        e.contains("\"h\"") && e.contains("leaves the layer root"),
        "{e}"
    );
    // An absolute target means a path inside the layer, which does not exist.
    let s = Scratch::new();
    let mut b = tar::Builder::new(Vec::new());
    raw(&mut b, tar::EntryType::Link, "h", Some("/etc/passwd"), b"");
    let e = unpack(&s, b.into_inner().unwrap()).unwrap_err().to_string();
    assert!(e.contains("not in the layer"), "{e}");
    // Through a symlink pointing out of the root: resolved inside, so not found.
    let s = Scratch::new();
    let mut b = tar::Builder::new(Vec::new());
    raw(&mut b, tar::EntryType::Symlink, "etc", Some("/etc"), b"");
    raw(&mut b, tar::EntryType::Link, "h", Some("etc/passwd"), b"");
    assert!(unpack(&s, b.into_inner().unwrap()).is_err());
    assert!(!s.dest().join("h").exists());
}

#[test]
fn hardlinks_and_long_names() {
    let s = Scratch::new();
    let long_dir = "d".repeat(120);
    let long_file = format!("{long_dir}/{}", "f".repeat(200));
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "a", 0o644, b"shared");
    let mut h = header(tar::EntryType::Link, 0o644);
    b.append_link(&mut h, "b", "a").unwrap();
    file(&mut b, &long_file, 0o600, b"long");
    let mut h = header(tar::EntryType::Link, 0o644);
    b.append_link(&mut h, "c", &long_file).unwrap();
    let mut h = header(tar::EntryType::Symlink, 0o777);
    b.append_link(&mut h, "lnk", format!("/{long_file}"))
        .unwrap();
    let size = unpack(&s, b.into_inner().unwrap()).unwrap();
    assert_eq!(size, 6 + 4);
    let d = s.dest();
    assert_eq!(
        fs::metadata(d.join("a")).unwrap().ino(),
        fs::metadata(d.join("b")).unwrap().ino()
    );
    assert_eq!(fs::metadata(d.join("a")).unwrap().nlink(), 2);
    assert_eq!(fs::read(d.join(&long_file)).unwrap(), b"long");
    assert_eq!(fs::read(d.join("c")).unwrap(), b"long");
    assert_eq!(
        fs::read_link(d.join("lnk")).unwrap(),
        PathBuf::from(format!("/{long_file}"))
    );
}

/// A hardlink entry's header carries the shared inode's metadata as of that entry (Docker's
/// and containerd's extractors chmod, chown and touch the link): a later 0755 link makes a
/// 0644 file executable, a link naming another owner changes the owner.
#[test]
fn hardlink_header_metadata_applies_to_the_inode() {
    let s = Scratch::new();
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "bin/tool", 0o644, b"#!/bin/sh\n");
    let mut h = header(tar::EntryType::Link, 0o4755);
    h.set_uid(12);
    h.set_gid(34);
    h.set_mtime(1_700_000_000);
    b.append_link(&mut h, "bin/alias", "bin/tool").unwrap();
    let mut h = header(tar::EntryType::Symlink, 0o777);
    b.append_link(&mut h, "bin/sym", "tool").unwrap();
    let mut h = header(tar::EntryType::Link, 0o600);
    b.append_link(&mut h, "bin/sym2", "bin/sym").unwrap();
    unpack(&s, b.into_inner().unwrap()).unwrap();
    let md = fs::metadata(s.dest().join("bin/tool")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o4755);
    assert_eq!(md.mtime(), 1_700_000_000);
    if rustix::process::geteuid().is_root() {
        assert_eq!((md.uid(), md.gid()), (12, 34));
    }
    // A hardlinked symlink stays a symlink pointing where it did.
    let sym = fs::symlink_metadata(s.dest().join("bin/sym2")).unwrap();
    assert!(sym.file_type().is_symlink());
    assert_eq!(
        fs::read_link(s.dest().join("bin/sym2")).unwrap(),
        PathBuf::from("tool")
    );
}

#[test]
fn whiteouts_become_overlay_format() {
    let s = Scratch::new();
    let mut b = tar::Builder::new(Vec::new());
    dir(&mut b, "a", 0o755);
    file(&mut b, "a/.wh.gone", 0o644, b"");
    dir(&mut b, "opq", 0o750);
    file(&mut b, "opq/.wh..wh..opq", 0o644, b"");
    file(&mut b, "opq/kept", 0o644, b"k");
    // Parent created implicitly for a whiteout.
    file(&mut b, "x/y/.wh.z", 0o644, b"");
    unpack(&s, b.into_inner().unwrap()).unwrap();
    let d = s.dest();
    let m = fs::symlink_metadata(d.join("a/gone")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), 0);
    assert!(!d.join("a/.wh.gone").exists());
    assert!(fs::symlink_metadata(d.join("x/y/z"))
        .unwrap()
        .file_type()
        .is_char_device());
    let mut buf = [0u8; 8];
    let n = rfs::getxattr(d.join("opq"), "trusted.overlay.opaque", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"y");
    assert!(!d.join("opq/.wh..wh..opq").exists());
    assert_eq!(fs::metadata(d.join("opq")).unwrap().mode() & 0o7777, 0o750);
}

#[test]
fn metadata_devices_and_xattrs() {
    let s = Scratch::new();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = header(tar::EntryType::Regular, 0o4755);
    h.set_uid(1000);
    h.set_gid(1001);
    h.set_size(2);
    b.append_pax_extensions([
        ("SCHILY.xattr.user.berth", &b"v"[..]),
        ("SCHILY.xattr.trusted.overlay.redirect", &b"/etc"[..]),
    ])
    .unwrap();
    b.append_data(&mut h, "suid", &b"#!"[..]).unwrap();
    dir(&mut b, "tmp", 0o1777);
    let mut h = header(tar::EntryType::Char, 0o666);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    b.append_data(&mut h, "dev/null", io::empty()).unwrap();
    let mut h = header(tar::EntryType::Fifo, 0o600);
    b.append_data(&mut h, "fifo", io::empty()).unwrap();
    unpack(&s, b.into_inner().unwrap()).unwrap();
    let d = s.dest();
    let m = fs::metadata(d.join("suid")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o4755);
    assert_eq!((m.uid(), m.gid()), (1000, 1001));
    assert_eq!(m.mtime(), 1_600_000_000);
    let mut buf = [0u8; 8];
    let n = rfs::getxattr(d.join("suid"), "user.berth", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"v");
    assert!(rfs::getxattr(d.join("suid"), "trusted.overlay.redirect", &mut buf[..]).is_err());
    let t = fs::metadata(d.join("tmp")).unwrap();
    assert_eq!(t.mode() & 0o7777, 0o1777);
    assert_eq!(t.mtime(), 1_600_000_000);
    let n = fs::symlink_metadata(d.join("dev/null")).unwrap();
    assert!(n.file_type().is_char_device());
    assert_eq!(n.rdev(), rfs::makedev(1, 3));
    assert!(fs::symlink_metadata(d.join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
}

fn tree(p: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, p: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = fs::read_dir(p) {
            for e in rd.flatten() {
                out.push(e.path().strip_prefix(base).unwrap().display().to_string());
                if e.file_type().unwrap().is_dir() {
                    walk(base, &e.path(), out);
                }
            }
        }
    }
    walk(p, p, &mut out);
    out.sort();
    out
}

#[test]
fn ingest_verifies_and_leaves_nothing_on_error() {
    let s = Scratch::new();
    let root = s.0.join("store");
    berth_store::Store::open(&root).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "hello", 0o644, b"world");
    let plain = b.into_inner().unwrap();
    let diff = Digest::sha256_of(&plain);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    let before = tree(&root);

    // Corrupt gzip.
    let mut bad = gz.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    bad.truncate(bad.len() - 4);
    assert!(ingest_layer(&root, &mut &bad[..], Compression::Gzip, None, None).is_err());
    assert_eq!(tree(&root), before);
    // Wrong diff id and wrong blob digest.
    let wrong = Digest::sha256_of(b"x");
    let e = ingest_layer(&root, &mut &gz[..], Compression::Gzip, None, Some(&wrong)).unwrap_err();
    assert!(e.to_string().contains("expected diff id"), "{e}");
    assert_eq!(tree(&root), before);
    assert!(ingest_layer(&root, &mut &gz[..], Compression::Gzip, Some(&wrong), None).is_err());
    assert_eq!(tree(&root), before);
    // Hostile entry.
    let mut b = tar::Builder::new(Vec::new());
    raw(&mut b, tar::EntryType::Regular, "../../x", None, b"boom");
    let hostile = b.into_inner().unwrap();
    let e = ingest_layer(&root, &mut &hostile[..], Compression::None, None, None).unwrap_err();
    assert!(e.to_string().contains("../../x"), "{e}");
    assert_eq!(tree(&root), before);
    // Not a tar at all.
    assert!(ingest_layer(
        &root,
        &mut &b"garbage garbage"[..],
        Compression::None,
        None,
        None
    )
    .is_err());
    assert_eq!(tree(&root), before);

    // Good: gzip, then zstd and plain of the same content share the layer directory.
    let l = ingest_layer(
        &root,
        &mut &gz[..],
        Compression::None,
        Some(&Digest::sha256_of(&gz)),
        Some(&diff),
    )
    .unwrap();
    assert_eq!(l.diff_id, diff);
    assert_eq!(l.compression, Compression::Gzip);
    assert_eq!(l.blob, Digest::sha256_of(&gz));
    assert_eq!(l.diff_size, plain.len() as u64);
    assert_eq!(l.size, 5);
    assert_eq!(
        fs::read(layer_dir_in(&root, &diff).join("hello")).unwrap(),
        b"world"
    );
    assert_eq!(
        fs::read(berth_store::blob_path(&root, &l.blob)).unwrap(),
        gz
    );
    let z = ingest_layer(&root, &mut &zst[..], Compression::None, None, Some(&diff)).unwrap();
    assert_eq!(z.compression, Compression::Zstd);
    assert_eq!(z.size, 5);
    let p = ingest_layer(&root, &mut &plain[..], Compression::None, None, None).unwrap();
    assert_eq!(p.compression, Compression::None);
    assert_eq!(p.blob, diff);
    assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
    assert_eq!(detect_compression(&[0x1f, 0x8b, 8]), Compression::Gzip);
    assert_eq!(detect_compression(b"abc"), Compression::None);
}

#[test]
fn tree_no_overwrite_refuses_dir_file_swaps_and_skips_its_root() {
    let s = Scratch::new();
    fs::create_dir(s.dest().join("d")).unwrap();
    fs::write(s.dest().join("d/keep"), "k").unwrap();
    fs::write(s.dest().join("f"), "old").unwrap();
    fs::set_permissions(s.dest(), fs::Permissions::from_mode(0o1777)).unwrap();
    let strict = TreeOptions {
        no_overwrite_dir_non_dir: true,
        owner: None,
    };
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "d", 0o644, b"file");
    let err = unpack_tree_with(&mut &b.into_inner().unwrap()[..], &s.dest(), strict).unwrap_err();
    assert!(matches!(err, ImageError::WouldOverwrite(_)), "{err}");
    assert!(
        err.to_string().contains("cannot overwrite directory"),
        "{err}"
    );
    assert!(s.dest().join("d/keep").exists());
    let mut b = tar::Builder::new(Vec::new());
    dir(&mut b, "f", 0o755);
    let err = unpack_tree_with(&mut &b.into_inner().unwrap()[..], &s.dest(), strict).unwrap_err();
    assert!(
        err.to_string().contains("cannot overwrite non-directory"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(s.dest().join("f")).unwrap(), "old");
    // A directory over a directory merges; a file over a file is replaced; `./` is skipped.
    let mut b = tar::Builder::new(Vec::new());
    dir(&mut b, ".", 0o700);
    dir(&mut b, "d", 0o755);
    file(&mut b, "d/new", 0o644, b"n");
    file(&mut b, "f", 0o644, b"new");
    unpack_tree_with(&mut &b.into_inner().unwrap()[..], &s.dest(), strict).unwrap();
    assert!(s.dest().join("d/keep").exists() && s.dest().join("d/new").exists());
    assert_eq!(fs::read_to_string(s.dest().join("f")).unwrap(), "new");
    let m = fs::metadata(s.dest()).unwrap().permissions().mode() & 0o7777;
    assert_eq!(m, 0o1777);
    // Without the flag the swap happens (Docker's default for the API).
    let mut b = tar::Builder::new(Vec::new());
    file(&mut b, "d", 0o644, b"file");
    unpack_tree(&mut &b.into_inner().unwrap()[..], &s.dest()).unwrap();
    assert_eq!(fs::read_to_string(s.dest().join("d")).unwrap(), "file");
}
