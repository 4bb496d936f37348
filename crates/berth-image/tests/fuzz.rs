//! Property tests on hostile input (stable Rust, `cargo test`, a few seconds): the reference
//! parser, the layer unpacker (random tar streams never panic and never write outside the
//! root) and the archive manifest reader (random manifests never panic, never commit).

use std::io::Write;
use std::path::{Path, PathBuf};

use berth_image::{archive, unpack_layer, ImageStore, Reference};
use proptest::prelude::*;

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let n: u64 = rand_seed();
        let p = std::env::temp_dir().join(format!("berth-fuzz-{tag}-{}-{n:x}", std::process::id()));
        std::fs::create_dir_all(p.join("dest")).unwrap();
        std::fs::create_dir_all(p.join("outside")).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    u64::try_from(t % u128::from(u64::MAX)).unwrap_or_default()
        ^ N.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9e37_79b9)
}

/// Every path under `p`, relative, sorted.
fn tree(p: &Path) -> Vec<String> {
    fn walk(base: &Path, p: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                let path = e.path();
                out.push(
                    path.strip_prefix(base)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    walk(base, &path, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(p, p, &mut out);
    out.sort();
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn reference_parser_never_panics_and_round_trips(s in "[a-zA-Z0-9:/@._+-]{0,80}|\\PC{0,40}") {
        if let Ok(r) = Reference::parse(&s) {
            let again = Reference::parse(&r.to_string()).expect("a parsed reference prints as a valid one");
            prop_assert_eq!(again.to_string(), r.to_string());
        }
        let _ = Reference::parse_bare(&s);
    }
}

/// One tar entry of a random layer.
#[derive(Debug, Clone)]
enum Ent {
    Dir(String),
    File(String, Vec<u8>),
    Symlink(String, String),
    Hardlink(String, String),
    Whiteout(String),
}

fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_string()),
        Just("b".to_string()),
        Just("..".to_string()),
        Just(".".to_string()),
        Just("outside".to_string()),
        Just("etc".to_string()),
        Just(".wh..wh..opq".to_string()),
        "[a-z]{1,3}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(component(), 1..5)).prop_map(|(abs, c)| {
        let p = c.join("/");
        if abs {
            format!("/{p}")
        } else {
            p
        }
    })
}

fn entry() -> impl Strategy<Value = Ent> {
    prop_oneof![
        path().prop_map(Ent::Dir),
        (path(), prop::collection::vec(any::<u8>(), 0..16)).prop_map(|(p, d)| Ent::File(p, d)),
        (
            path(),
            prop_oneof![
                path(),
                Just("../outside".to_string()),
                Just("/".to_string()),
                Just("../../..".to_string())
            ]
        )
            .prop_map(|(p, t)| Ent::Symlink(p, t)),
        (path(), path()).prop_map(|(p, t)| Ent::Hardlink(p, t)),
        path().prop_map(Ent::Whiteout),
    ]
}

/// A header with an unchecked raw name (and link name), as a hostile archive would have.
fn raw(
    b: &mut tar::Builder<Vec<u8>>,
    kind: tar::EntryType,
    name: &str,
    link: Option<&str>,
    data: &[u8],
) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_mtime(1_600_000_000);
    h.set_size(data.len() as u64);
    let old = h.as_old_mut();
    old.name = [0; 100];
    let n = name.as_bytes();
    old.name[..n.len().min(100)].copy_from_slice(&n[..n.len().min(100)]);
    if let Some(l) = link {
        old.linkname = [0; 100];
        let l = l.as_bytes();
        old.linkname[..l.len().min(100)].copy_from_slice(&l[..l.len().min(100)]);
    }
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn layer(ents: &[Ent]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in ents {
        match e {
            Ent::Dir(p) => raw(&mut b, tar::EntryType::Directory, p, None, &[]),
            Ent::File(p, d) => raw(&mut b, tar::EntryType::Regular, p, None, d),
            Ent::Symlink(p, t) => raw(&mut b, tar::EntryType::Symlink, p, Some(t), &[]),
            Ent::Hardlink(p, t) => raw(&mut b, tar::EntryType::Link, p, Some(t), &[]),
            Ent::Whiteout(p) => {
                let (dir, name) = p.rsplit_once('/').unwrap_or(("", p));
                let w = if dir.is_empty() {
                    format!(".wh.{name}")
                } else {
                    format!("{dir}/.wh.{name}")
                };
                raw(&mut b, tar::EntryType::Regular, &w, None, &[])
            }
        }
    }
    b.into_inner().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn unpacker_never_writes_outside_the_root(ents in prop::collection::vec(entry(), 1..12)) {
        let s = Scratch::new("unpack");
        let tar = layer(&ents);
        let _ = unpack_layer(&mut &tar[..], &s.0.join("dest"));
        prop_assert_eq!(tree(&s.0.join("outside")), Vec::<String>::new());
        let top: Vec<String> = tree(&s.0).into_iter().filter(|p| !p.contains('/')).collect();
        prop_assert_eq!(top, vec!["dest".to_string(), "outside".to_string()]);
    }

    #[test]
    fn unpacker_survives_random_and_truncated_streams(
        bytes in prop::collection::vec(any::<u8>(), 0..2048),
        ents in prop::collection::vec(entry(), 1..6),
        cut in any::<prop::sample::Index>(),
        flip in any::<(prop::sample::Index, u8)>(),
    ) {
        let s = Scratch::new("stream");
        let _ = unpack_layer(&mut &bytes[..], &s.0.join("dest"));
        let mut tar = layer(&ents);
        let i = flip.0.index(tar.len());
        tar[i] ^= flip.1;
        let n = cut.index(tar.len() + 1);
        let _ = unpack_layer(&mut &tar[..n], &s.0.join("dest"));
        prop_assert_eq!(tree(&s.0.join("outside")), Vec::<String>::new());
    }
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::json;
    let leaf = prop_oneof![
        Just(json!(null)),
        any::<bool>().prop_map(|b| json!(b)),
        any::<i64>().prop_map(|n| json!(n)),
        Just(json!(
            "sha256:0000000000000000000000000000000000000000000000000000000000000000"
        )),
        Just(json!("../../etc/passwd")),
        Just(json!("blobs/sha256/abc")),
        Just(json!("application/vnd.oci.image.manifest.v1+json")),
        Just(json!("application/vnd.oci.image.index.v1+json")),
        "[a-z:/.]{0,12}".prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        let key = prop_oneof![
            Just("Config".to_string()),
            Just("RepoTags".to_string()),
            Just("Layers".to_string()),
            Just("manifests".to_string()),
            Just("mediaType".to_string()),
            Just("digest".to_string()),
            Just("size".to_string()),
            Just("schemaVersion".to_string()),
            Just("annotations".to_string()),
            Just("config".to_string()),
            Just("layers".to_string()),
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(key, inner, 0..5)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn archive_reader_refuses_random_manifests_without_panicking(
        manifest in json_value(),
        index in json_value(),
        layout in any::<bool>(),
    ) {
        let s = Scratch::new("archive");
        let store = berth_store::Store::open(s.0.join("dest")).unwrap();
        let is = ImageStore::open(&store).unwrap();
        let p = s.0.join("a.tar");
        {
            let mut b = tar::Builder::new(std::fs::File::create(&p).unwrap());
            let mut add = |name: &str, data: &[u8]| {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                b.append_data(&mut h, name, data).unwrap();
            };
            add("manifest.json", manifest.to_string().as_bytes());
            add("index.json", index.to_string().as_bytes());
            if layout {
                add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
            }
            add("blobs/sha256/abc", b"{}");
            b.into_inner().unwrap().flush().unwrap();
        }
        if archive::load_file(&is, &p).is_err() {
            prop_assert!(is.list().unwrap().is_empty());
        }
        prop_assert_eq!(tree(&s.0.join("outside")), Vec::<String>::new());
    }
}
