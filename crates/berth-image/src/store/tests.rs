use super::*;
use crate::ingest_layer;
use std::collections::HashSet;

fn layer(store: &Store, content: &[u8]) -> Layer {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    h.set_size(content.len() as u64);
    b.append_data(&mut h, "f", content).unwrap();
    let t = b.into_inner().unwrap();
    ingest_layer(store.root(), &mut &t[..], Compression::None, None, None).unwrap()
}

fn config(layers: &[&Layer], cmd: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": [cmd]},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>()},
    }))
    .unwrap()
}

#[test]
fn commit_resolve_tag_remove() {
    let dir = std::env::temp_dir().join(format!("berth-istore-{:016x}", rand::random::<u64>()));
    let store = Store::open(&dir).unwrap();
    let is = ImageStore::open(&store).unwrap();
    let a = layer(&store, b"a");
    let b = layer(&store, b"b");
    // Unrecorded layers are refused.
    let cfg1 = config(&[&a, &b], "one");
    assert!(is
        .commit_image(&cfg1, &[a.clone(), b.clone()], None, &[], None)
        .is_err());
    is.record_layer(&a).unwrap();
    is.record_layer(&a).unwrap();
    is.record_layer(&b).unwrap();
    assert_eq!(is.layer_by_blob(&a.blob).unwrap().unwrap(), a);
    assert_eq!(is.layer_by_diff_id(&b.diff_id).unwrap().unwrap(), b);
    // diff ids must match the config.
    assert!(is
        .commit_image(&cfg1, &[b.clone(), a.clone()], None, &[], None)
        .is_err());
    let app = Reference::parse("app").unwrap();
    let pinned = Reference::parse(&format!("reg.example/app@{}", Digest::sha256_of(b"m"))).unwrap();
    let id1 = is
        .commit_image(
            &cfg1,
            &[a.clone(), b.clone()],
            Some(b"m"),
            std::slice::from_ref(&app),
            Some(&pinned),
        )
        .unwrap();
    assert_eq!(id1, Digest::sha256_of(&cfg1));
    let img = is.resolve("app:latest").unwrap();
    assert_eq!(img.id, id1);
    assert_eq!(img.config.cmd.as_deref(), Some(&["one".to_string()][..]));
    assert_eq!(
        img.repo_digests,
        vec![format!("reg.example/app@{}", Digest::sha256_of(b"m"))]
    );
    assert_eq!(img.manifest, Some(Digest::sha256_of(b"m")));
    assert_eq!(is.resolve(&id1.hex()[..6]).unwrap().id, id1);
    assert_eq!(is.resolve(id1.as_str()).unwrap().id, id1);
    assert_eq!(is.resolve(&pinned.to_string()).unwrap().id, id1);
    assert!(matches!(is.resolve("nope"), Err(ImageError::NotFound(_))));
    assert!(matches!(is.resolve("Bad"), Err(ImageError::Reference(_))));
    assert_eq!(is.layer_dirs(&img).len(), 2);

    // A second image takes the tag; the first becomes dangling but stays.
    let cfg2 = config(&[&a], "two");
    let id2 = is
        .commit_image(
            &cfg2,
            std::slice::from_ref(&a),
            None,
            std::slice::from_ref(&app),
            None,
        )
        .unwrap();
    assert_eq!(is.resolve("app").unwrap().id, id2);
    assert!(is.get(&id1).unwrap().tags.is_empty());
    is.tag(&id2, &Reference::parse("other:1").unwrap()).unwrap();

    // In use: refused without force, untag only with force.
    let used: HashSet<Digest> = [id2.clone()].into_iter().collect();
    assert_eq!(
        is.remove("other:1", false, &used).unwrap(),
        vec!["Untagged: other:1"]
    );
    assert!(matches!(
        is.remove("app", false, &used),
        Err(ImageError::Conflict(_))
    ));
    assert!(matches!(
        is.remove(id2.as_str(), false, &used),
        Err(ImageError::Conflict(_))
    ));
    assert_eq!(
        is.remove("app", true, &used).unwrap(),
        vec!["Untagged: app:latest"]
    );
    assert!(is.get(&id2).is_ok());

    // Prune: dangling only, then everything unused; shared layer a stays while id2 lives.
    let (out, _) = is.prune(false, &used).unwrap();
    assert!(out.contains(&format!("Deleted: {id1}")), "{out:?}");
    assert!(out.contains(&format!("Deleted: {}", b.diff_id)), "{out:?}");
    assert!(!layer_dir(&store, &b.diff_id).exists());
    assert!(!store.has_blob(&b.blob));
    assert!(!store.has_blob(&Digest::sha256_of(b"m")));
    assert!(layer_dir(&store, &a.diff_id).is_dir());
    let (out, _) = is.prune(true, &HashSet::new()).unwrap();
    assert!(out.contains(&format!("Deleted: {id2}")), "{out:?}");
    assert!(is.list().unwrap().is_empty());
    assert_eq!(
        fs::read_dir(store.root().join("layers")).unwrap().count(),
        0
    );

    // Sweep removes unrecorded layer directories.
    let c = layer(&store, b"c");
    assert!(layer_dir(&store, &c.diff_id).is_dir());
    is.sweep().unwrap();
    assert!(!layer_dir(&store, &c.diff_id).exists());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn leased_layers_outlive_their_images() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let is = ImageStore::open(&store).unwrap();
    let a = layer(&store, b"leased");
    let b = layer(&store, b"plain");
    is.record_layer(&a).unwrap();
    is.record_layer(&b).unwrap();
    is.lease_layer("build-cache", &a.diff_id).unwrap();
    is.lease_layer("build-cache", &a.diff_id).unwrap();
    let r = Reference::parse("leased:1").unwrap();
    is.commit_image(
        &config(&[&a, &b], "x"),
        &[a.clone(), b.clone()],
        None,
        &[r],
        None,
    )
    .unwrap();
    // rmi: the leased layer stays (row, directory, blob), the other goes.
    let out = is.remove("leased:1", false, &HashSet::new()).unwrap();
    assert!(!out.contains(&format!("Deleted: {}", a.diff_id)), "{out:?}");
    assert!(out.contains(&format!("Deleted: {}", b.diff_id)), "{out:?}");
    assert!(is.layer_by_diff_id(&a.diff_id).unwrap().is_some());
    assert!(store.has_blob(&a.blob));
    // prune -a keeps it too (a lease is not an orphan).
    is.prune(true, &HashSet::new()).unwrap();
    assert!(is.layer_by_diff_id(&a.diff_id).unwrap().is_some());
    // Still leased: not removed; released: removed.
    assert_eq!(
        is.remove_layers_unless_used(std::slice::from_ref(&a.diff_id))
            .unwrap(),
        0
    );
    is.release_layers("build-cache", std::slice::from_ref(&a.diff_id))
        .unwrap();
    assert!(
        is.remove_layers_unless_used(std::slice::from_ref(&a.diff_id))
            .unwrap()
            > 0
    );
    assert!(is.layer_by_diff_id(&a.diff_id).unwrap().is_none());
    assert!(!layer_dir(&store, &a.diff_id).exists());
}
