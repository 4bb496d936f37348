use super::*;
use std::collections::HashSet;

fn store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path()).unwrap();
    (d, s)
}

#[test]
fn names() {
    assert!(valid_name("db-data_1.x"));
    assert!(!valid_name("a"));
    assert!(!valid_name("-x"));
    assert!(!valid_name("a/b"));
    assert!(!valid_name("../x"));
}

#[test]
fn create_ref_remove() {
    let (_d, s) = store();
    let vs = VolumeStore::open(&s).unwrap();
    let req = CreateVolume {
        name: Some("data".into()),
        ..Default::default()
    };
    let (v, new) = vs.create(&req).unwrap();
    assert!(new);
    assert!(v.mountpoint.is_dir());
    let (_, new) = vs.create(&req).unwrap();
    assert!(!new);
    vs.add_ref("data", "c1").unwrap();
    assert!(matches!(
        vs.remove("data", true),
        Err(VolumeError::InUse { .. })
    ));
    vs.release("c1").unwrap();
    vs.remove("data", false).unwrap();
    assert!(!v.mountpoint.exists());
    assert!(matches!(
        vs.remove("data", false),
        Err(VolumeError::NotFound(_))
    ));
    vs.remove("data", true).unwrap();
}

#[test]
fn anonymous_and_prune() {
    let (_d, s) = store();
    let vs = VolumeStore::open(&s).unwrap();
    let (a, _) = vs.acquire(&CreateVolume::default(), "c1").unwrap();
    assert!(a.anonymous && a.name.len() == 64);
    assert!(a.labels.contains_key(ANONYMOUS_LABEL));
    let (b, _) = vs.create(&CreateVolume::default()).unwrap();
    vs.create(&CreateVolume {
        name: Some("named".into()),
        ..Default::default()
    })
    .unwrap();
    let p = vs.prune(&PruneFilter::default()).unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].name, b.name);
    let live = HashSet::new();
    vs.forget_refs_except(&live, 0).unwrap();
    let p = vs
        .prune(&PruneFilter {
            all: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(p.len(), 2);
    assert!(vs.list().unwrap().is_empty());
}

#[test]
fn orphan_dir_is_discarded() {
    let (_d, s) = store();
    let vs = VolumeStore::open(&s).unwrap();
    let orphan = s.root().join("volumes/ghost/_data");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("old"), b"x").unwrap();
    let (v, new) = vs
        .create(&CreateVolume {
            name: Some("ghost".into()),
            ..Default::default()
        })
        .unwrap();
    assert!(new);
    assert!(vs.is_empty(&v));
    std::fs::create_dir_all(s.root().join("volumes/other/_data")).unwrap();
    vs.sweep().unwrap();
    assert!(!s.root().join("volumes/other").exists());
    assert!(s.root().join("volumes/ghost").exists());
}

#[test]
fn bad_input() {
    let (_d, s) = store();
    let vs = VolumeStore::open(&s).unwrap();
    let bad = |req: CreateVolume| vs.create(&req).is_err();
    assert!(bad(CreateVolume {
        name: Some("x/y".into()),
        ..Default::default()
    }));
    assert!(bad(CreateVolume {
        name: Some("xy".into()),
        driver: Some("nfs-plugin".into()),
        ..Default::default()
    }));
    let mut o = BTreeMap::new();
    o.insert("colour".into(), "blue".into());
    assert!(bad(CreateVolume {
        name: Some("xy".into()),
        options: o,
        ..Default::default()
    }));
    assert!(vs.list().unwrap().is_empty());
}
