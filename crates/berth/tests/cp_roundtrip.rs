//! `cp` round trip (issue 13): a tree with symlinks, hardlinks, modes and owners copied into a
//! container with `-a`, back out with `-a`, and through `-` tar streams both ways, arrives
//! as it left: same types, contents, modes, owners, link targets and hardlink groups.
//! Root integration test.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{chown, symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::TestEnv;

/// One entry of a tree as the round trip must keep it.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    kind: &'static str,
    mode: u32,
    owner: (u32, u32),
    /// File content or symlink target.
    data: Vec<u8>,
    /// For a regular file: the other paths of the tree sharing its inode.
    links: Vec<String>,
}

fn snapshot(top: &Path) -> BTreeMap<String, Entry> {
    fn walk(top: &Path, p: &Path, out: &mut Vec<(String, std::fs::Metadata)>) {
        let md = std::fs::symlink_metadata(p).unwrap();
        let rel = p.strip_prefix(top).unwrap().display().to_string();
        let is_dir = md.is_dir();
        out.push((rel, md));
        if is_dir {
            for e in std::fs::read_dir(p).unwrap() {
                walk(top, &e.unwrap().path(), out);
            }
        }
    }
    let mut all = Vec::new();
    walk(top, top, &mut all);
    let mut by_inode: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (rel, md) in &all {
        if md.is_file() {
            by_inode.entry(md.ino()).or_default().push(rel.clone());
        }
    }
    all.iter()
        .map(|(rel, md)| {
            let p = top.join(rel);
            let ft = md.file_type();
            let (kind, data) = if ft.is_symlink() {
                (
                    "symlink",
                    std::fs::read_link(&p)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                )
            } else if ft.is_dir() {
                ("dir", vec![])
            } else {
                ("file", std::fs::read(&p).unwrap())
            };
            let mut links: Vec<String> = if ft.is_file() {
                by_inode[&md.ino()]
                    .iter()
                    .filter(|o| *o != rel)
                    .cloned()
                    .collect()
            } else {
                vec![]
            };
            links.sort();
            let mode = if ft.is_symlink() {
                0
            } else {
                md.permissions().mode() & 0o7777
            };
            (
                rel.clone(),
                Entry {
                    kind,
                    mode,
                    owner: (md.uid(), md.gid()),
                    data,
                    links,
                },
            )
        })
        .collect()
}

#[track_caller]
fn assert_same_tree(want: &Path, got: &Path) {
    let (w, g) = (snapshot(want), snapshot(got));
    let wk: Vec<_> = w.keys().collect();
    let gk: Vec<_> = g.keys().collect();
    assert_eq!(wk, gk, "paths differ between {want:?} and {got:?}");
    for (k, e) in &w {
        // The top directory's own mode and owner are the destination's business.
        if k.is_empty() {
            continue;
        }
        assert_eq!(Some(e), g.get(k), "{k} differs in {got:?}");
    }
}

/// The source tree: modes from 0 to setuid, owners other than root, a hardlink group of three
/// across directories, a hardlinked executable, relative, absolute and dangling symlinks.
fn make_tree(top: &Path) {
    let set = |p: &Path, mode: u32, uid: u32, gid: u32| {
        chown(p, Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    std::fs::create_dir_all(top.join("d/sub")).unwrap();
    std::fs::create_dir_all(top.join("private")).unwrap();
    std::fs::write(top.join("d/f"), "shared content\n").unwrap();
    set(&top.join("d/f"), 0o640, 1234, 5678);
    std::fs::hard_link(top.join("d/f"), top.join("d/f.link")).unwrap();
    std::fs::hard_link(top.join("d/f"), top.join("d/sub/f.again")).unwrap();
    std::fs::write(top.join("d/tool"), "#!/bin/sh\necho tool\n").unwrap();
    set(&top.join("d/tool"), 0o4755, 0, 0);
    std::fs::hard_link(top.join("d/tool"), top.join("tool-alias")).unwrap();
    std::fs::write(top.join("d/sub/secret"), "s").unwrap();
    set(&top.join("d/sub/secret"), 0o600, 1000, 1000);
    std::fs::write(top.join("d/sub/none"), "").unwrap();
    set(&top.join("d/sub/none"), 0o000, 7, 8);
    symlink("f", top.join("d/rel")).unwrap();
    symlink("/etc/passwd", top.join("abs")).unwrap();
    symlink("no/such/target", top.join("dangling")).unwrap();
    set(&top.join("private"), 0o700, 4242, 4343);
    set(&top.join("d/sub"), 0o2750, 1000, 2000);
    set(&top.join("d"), 0o755, 0, 0);
}

#[test]
fn cp_round_trip_keeps_symlinks_hardlinks_modes_and_owners() {
    let env = TestEnv::new();
    env.busybox_image("cprt:1");
    env.ok(&[
        "run",
        "-d",
        "--network=none",
        "--name",
        "cprt",
        "cprt:1",
        "sleep",
        "600",
    ]);
    let tree = env.path("tree");
    make_tree(&tree);

    // Host -> container with -a: owners, modes and the hardlink group as on the host.
    env.ok(&["cp", "-a", tree.to_str().unwrap(), "cprt:/rt"]);
    let st = env.ok(&[
        "exec",
        "cprt",
        "stat",
        "-c",
        "%a %u:%g %h %i",
        "/rt/d/f",
        "/rt/d/f.link",
        "/rt/d/sub/f.again",
        "/rt/d/tool",
        "/rt/tool-alias",
    ]);
    let rows: Vec<Vec<&str>> = st.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(rows.len(), 5, "{st}");
    for r in &rows[..3] {
        assert_eq!(&r[..3], &["640", "1234:5678", "3"], "{st}");
        assert_eq!(r[3], rows[0][3], "not one inode:\n{st}");
    }
    for r in &rows[3..] {
        assert_eq!(&r[..3], &["4755", "0:0", "2"], "{st}");
        assert_eq!(r[3], rows[3][3], "not one inode:\n{st}");
    }
    assert_eq!(
        env.ok(&["exec", "cprt", "/rt/tool-alias"]),
        "tool\n",
        "the hardlinked setuid tool runs"
    );

    // Container -> host with -a: the same tree comes back.
    let out = env.path("out");
    std::fs::create_dir(&out).unwrap();
    env.ok(&["cp", "-a", "cprt:/rt", out.to_str().unwrap()]);
    assert_same_tree(&tree, &out.join("rt"));

    // Container -> tar stream: the second and third names of an inode are hardlink entries.
    let o = env.berth(&["cp", "-a", "cprt:/rt", "-"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tar_bytes = o.stdout;
    let mut links = Vec::new();
    for e in tar::Archive::new(tar_bytes.as_slice()).entries().unwrap() {
        let e = e.unwrap();
        if e.header().entry_type() == tar::EntryType::Link {
            links.push(e.path().unwrap().display().to_string());
        }
    }
    assert_eq!(links.len(), 3, "hardlink entries: {links:?}");

    // Tar stream -> container, then back out: the same tree again.
    env.ok(&["exec", "cprt", "mkdir", "/back"]);
    let o = env.berth_stdin(&["cp", "-", "cprt:/back"], &tar_bytes);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out2 = env.path("out2");
    std::fs::create_dir(&out2).unwrap();
    env.ok(&["cp", "-a", "cprt:/back/rt", out2.to_str().unwrap()]);
    assert_same_tree(&tree, &out2.join("rt"));

    // A GNU tar of the host tree (hardlinks as link entries) extracts linked too.
    let o = std::process::Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .args(["-cf", "-", "--transform", "s,^\\.,ht,", "."])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let host_tar = o.stdout;
    env.ok(&["exec", "cprt", "mkdir", "/fromhost"]);
    let o = env.berth_stdin(&["cp", "-", "cprt:/fromhost"], &host_tar);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let st = env.ok(&[
        "exec",
        "cprt",
        "stat",
        "-c",
        "%h",
        "/fromhost/ht/d/f",
        "/fromhost/ht/tool-alias",
    ]);
    assert_eq!(st, "3\n2\n", "links counted inside the container");

    // Without -a, copies out belong to root and keep their modes and hardlinks.
    let out3 = env.path("out3");
    std::fs::create_dir(&out3).unwrap();
    env.ok(&["cp", "cprt:/rt/d", out3.to_str().unwrap()]);
    let f = std::fs::metadata(out3.join("d/f")).unwrap();
    let g = std::fs::metadata(out3.join("d/sub/f.again")).unwrap();
    assert_eq!((f.uid(), f.gid(), f.mode() & 0o7777), (0, 0, 0o640));
    assert_eq!(f.ino(), g.ino());
    env.ok(&["rm", "-f", "cprt"]);
    let _ = std::fs::remove_dir_all(PathBuf::from(&tree));
}

/// `cp` to and from a running container sees the container's mounts as its processes do: a
/// named volume, a bind mount and a tmpfs (Docker mounts the volumes for the copy), not the
/// image layer underneath them.
#[test]
fn cp_reaches_volumes_binds_and_tmpfs_of_a_running_container() {
    let env = TestEnv::new();
    env.busybox_image("cpvol:1");
    let host = env.path("bind");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("from-host"), b"host side\n").unwrap();
    let bind = format!("{}:/bind", host.display());
    env.ok(&[
        "run",
        "-d",
        "--network=none",
        "--name",
        "cpvol",
        "-v",
        "cpvol-data:/data",
        "-v",
        &bind,
        "--tmpfs",
        "/scratch",
        "cpvol:1",
        "sleep",
        "600",
    ]);
    let src = env.path("in.txt");
    std::fs::write(&src, b"copied in\n").unwrap();
    for dst in ["/data", "/bind", "/scratch"] {
        env.ok(&["cp", src.to_str().unwrap(), &format!("cpvol:{dst}/in.txt")]);
        assert_eq!(
            env.ok(&["exec", "cpvol", "cat", &format!("{dst}/in.txt")]),
            "copied in\n",
            "{dst}"
        );
    }
    // The bind mount's host directory got the file; the volume keeps it past the container.
    assert_eq!(std::fs::read(host.join("in.txt")).unwrap(), b"copied in\n");
    // Out: files written by the container in each mount, and one the host put in the bind.
    env.ok(&[
        "exec",
        "cpvol",
        "sh",
        "-c",
        "echo vol > /data/out; echo tmp > /scratch/out",
    ]);
    for (src, want) in [
        ("/data/out", "vol\n"),
        ("/scratch/out", "tmp\n"),
        ("/bind/from-host", "host side\n"),
    ] {
        let dst = env.path("out");
        let _ = std::fs::remove_file(&dst);
        env.ok(&["cp", &format!("cpvol:{src}"), dst.to_str().unwrap()]);
        assert_eq!(std::fs::read_to_string(&dst).unwrap(), want, "{src}");
    }
    env.ok(&["rm", "-f", "cpvol"]);
    env.ok(&["volume", "rm", "cpvol-data"]);
}
