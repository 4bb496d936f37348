//! Registry hiccups against a scripted fake registry on loopback: transient answers (429 with
//! Retry-After, 502/503/504), connection resets and truncated bodies are retried and the pull
//! succeeds; permanent errors (401, 403, 404) fail at once with a clear message.

mod common;
#[path = "common/registry.rs"]
mod registry_support;

use std::time::{Duration, Instant};

use common::*;
use registry_support::*;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const BLOB: &str = "application/octet-stream";

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Incompressible bytes, so a gzip layer keeps its size.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[3]
        })
        .collect()
}

/// Paths and contents of an image served by the fake registry.
struct Served {
    reference: String,
    manifest: String,
    config: String,
    layers: Vec<String>,
    blobs: Vec<Vec<u8>>,
}

/// One image on the fake registry at `repo:1`.
fn serve_image(fake: &FakeRegistry, repo: &str) -> Served {
    let mut t = TarBuilder::new();
    t.file("small", 0o644, b"first layer");
    let small = TestLayer::new(&t.finish(), Comp::Gzip);
    let mut t = TarBuilder::new();
    t.file("big", 0o644, &noise(600_000, 3));
    let big = TestLayer::new(&t.finish(), Comp::Gzip);
    let layers = [small, big];
    let cfg = image_config(&layers, &["sh"], &[]);
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_hex(&cfg), "size": cfg.len()},
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": l.oci_media_type(), "digest": l.digest(), "size": l.blob.len()
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    let mpath = format!("/v2/{repo}/manifests/1");
    fake.route(&mpath, Canned::ok(OCI_MANIFEST, m));
    let cpath = format!("/v2/{repo}/blobs/{}", sha256_hex(&cfg));
    fake.route(&cpath, Canned::ok(BLOB, cfg));
    let mut lpaths = Vec::new();
    for l in &layers {
        let p = format!("/v2/{repo}/blobs/{}", l.digest());
        let mut c = Canned::ok(BLOB, l.blob.clone());
        c.ranges = true;
        fake.route(&p, c);
        lpaths.push(p);
    }
    Served {
        reference: format!("{}/{repo}:1", fake.host()),
        manifest: mpath,
        config: cpath,
        layers: lpaths,
        blobs: layers.iter().map(|l| l.blob.clone()).collect(),
    }
}

fn gets(fake: &FakeRegistry, path: &str) -> usize {
    fake.log()
        .iter()
        .filter(|l| **l == format!("GET {path}"))
        .count()
}

#[test]
fn transient_registry_answers_are_retried_until_the_pull_succeeds() {
    let fake = FakeRegistry::start();
    let env = TestEnv::new();
    let img = serve_image(&fake, "flaky/app");
    let (r, mpath, cpath, lpaths) = (&img.reference, &img.manifest, &img.config, &img.layers);
    let too_many = Canned::error(
        429,
        "TOOMANYREQUESTS",
        "you have reached your pull rate limit",
        &[("Retry-After", "1")],
    );
    // The manifest: rate limited (Retry-After: 1), then a gateway error.
    fake.route_once(mpath, too_many.clone());
    fake.route_once(mpath, Canned::error(502, "UNAVAILABLE", "bad gateway", &[]));
    // The config: 503 once.
    fake.route_once(cpath, Canned::error(503, "UNAVAILABLE", "try later", &[]));
    // The small layer: 429 then 504.
    fake.route_once(&lpaths[0], too_many);
    fake.route_once(
        &lpaths[0],
        Canned::error(504, "UNAVAILABLE", "timeout", &[]),
    );
    // The big layer: reset mid-body, then cut short (resumed with Range each time).
    let big = img.blobs[1].clone();
    fake.route_once(
        &lpaths[1],
        Canned::ok(BLOB, big.clone()).reset_after(200_000),
    );
    fake.route_once(&lpaths[1], Canned::ok(BLOB, big).reset_after(100_000));

    let start = Instant::now();
    let o = env.cmd(&["pull", r]).output().unwrap();
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    // The Retry-After of the first answer was honoured.
    assert!(start.elapsed() >= Duration::from_secs(1));
    // Progress said what happened.
    let all = format!("{out}{err}");
    assert!(all.contains("retrying in"), "{all}");
    assert!(
        all.contains("you have reached your pull rate limit"),
        "{all}"
    );
    assert!(all.contains("Retrying in"), "{all}");
    assert_eq!(gets(&fake, mpath), 3, "{:?}", fake.log());
    assert_eq!(gets(&fake, cpath), 2);
    assert_eq!(gets(&fake, &lpaths[0]), 3);
    assert_eq!(gets(&fake, &lpaths[1]), 3);
    // The image is complete and runs.
    env.ok(&["image", "inspect", r]);
}

#[test]
fn permanent_errors_fail_fast_and_persistent_hiccups_give_up() {
    let fake = FakeRegistry::start();
    let env = TestEnv::new();
    // 404: no retry, a clear message.
    let Served {
        reference: r,
        manifest: mpath,
        ..
    } = serve_image(&fake, "perm/a");
    fake.route(
        &mpath,
        Canned::error(404, "MANIFEST_UNKNOWN", "manifest unknown", &[]),
    );
    let (code, err) = env.fails(&["pull", &r]);
    assert_eq!(code, 1);
    assert!(
        err.contains("not found") && err.contains("manifest unknown"),
        "{err}"
    );
    assert_eq!(gets(&fake, &mpath), 1, "{:?}", fake.log());
    // 401 and 403: no retry either.
    for (status, code_name) in [(401, "UNAUTHORIZED"), (403, "DENIED")] {
        let Served {
            reference: r,
            manifest: mpath,
            ..
        } = serve_image(&fake, &format!("perm/s{status}"));
        fake.route(
            &mpath,
            Canned::error(status, code_name, "access to the resource is denied", &[]),
        );
        let (code, err) = env.fails(&["pull", &r]);
        assert_eq!(code, 1);
        assert!(err.contains("denied"), "{status}: {err}");
        assert!(!err.contains("retrying"), "{status}: {err}");
        assert_eq!(gets(&fake, &mpath), 1, "{status}: {:?}", fake.log());
    }
    // A layer that is missing: fails at once.
    let Served {
        reference: r,
        layers: lpaths,
        ..
    } = serve_image(&fake, "perm/blob");
    fake.route(
        &lpaths[1],
        Canned::error(404, "BLOB_UNKNOWN", "blob unknown to registry", &[]),
    );
    let (code, err) = env.fails(&["pull", &r]);
    assert_eq!(code, 1);
    assert!(err.contains("blob unknown"), "{err}");
    assert_eq!(gets(&fake, &lpaths[1]), 1);
    // A Retry-After far beyond the retry budget: fails at once, saying when to come back.
    let Served {
        reference: r,
        manifest: mpath,
        ..
    } = serve_image(&fake, "perm/later");
    fake.route(
        &mpath,
        Canned::error(
            429,
            "TOOMANYREQUESTS",
            "slow down",
            &[("Retry-After", "3600")],
        ),
    );
    let (code, err) = env.fails(&["pull", &r]);
    assert_eq!(code, 1);
    assert!(
        err.contains("slow down") && err.contains("wait 3600 s") && err.contains("try again later"),
        "{err}"
    );
    assert_eq!(gets(&fake, &mpath), 1);
    // Always unavailable: bounded tries, then a clear message.
    let Served {
        reference: r,
        manifest: mpath,
        ..
    } = serve_image(&fake, "perm/down");
    fake.route(
        &mpath,
        Canned::error(503, "UNAVAILABLE", "maintenance", &[]),
    );
    let (code, err) = env.fails(&["pull", &r]);
    assert_eq!(code, 1);
    assert!(
        err.contains("maintenance") && err.contains("gave up after 6 attempts"),
        "{err}"
    );
    assert_eq!(gets(&fake, &mpath), 6);
    // Nothing of the failed pulls was kept as an image.
    assert_eq!(env.ok(&["images", "-q"]).trim(), "");
}

/// An empty answer with `status` and, when given, a `Location`.
fn bare(status: u16, location: Option<&str>) -> Canned {
    Canned {
        status,
        headers: location
            .map(|l| vec![("Location".to_string(), l.to_string())])
            .unwrap_or_default(),
        body: vec![],
        stall_after: None,
        cut_after: None,
        cut_once: false,
        ranges: false,
    }
}

#[test]
fn push_retries_transient_answers() {
    let fake = FakeRegistry::start();
    let env = TestEnv::new();
    env.busybox_image("bb");
    // A registry that accepts uploads: a session at /upload/s1, blobs and manifest created.
    fake.route("/v2/p/app/blobs/uploads/", bare(202, Some("/upload/s1")));
    fake.route("/upload/s1", bare(201, None));
    fake.route("/v2/p/app/manifests/1", bare(201, None));
    // Hiccups: one upload session refused with 503, the manifest rate limited once.
    fake.route_once(
        "/v2/p/app/blobs/uploads/",
        Canned::error(503, "UNAVAILABLE", "back soon", &[]),
    );
    fake.route_once(
        "/v2/p/app/manifests/1",
        Canned::error(429, "TOOMANYREQUESTS", "slow down", &[("Retry-After", "1")]),
    );
    let r = format!("{}/p/app:1", fake.host());
    env.ok(&["tag", "bb", &r]);
    let o = env.cmd(&["push", &r]).output().unwrap();
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    let all = format!("{out}{err}");
    assert!(
        all.contains("back soon") && all.contains("slow down"),
        "{all}"
    );
    assert!(all.contains("retrying in"), "{all}");
    let count = |what: &str| fake.log().iter().filter(|l| *l == what).count();
    // Two blobs (layer, config): one extra upload session for the 503.
    assert_eq!(
        count("POST /v2/p/app/blobs/uploads/"),
        3,
        "{:?}",
        fake.log()
    );
    assert_eq!(count("PUT /upload/s1"), 2, "{:?}", fake.log());
    assert_eq!(count("PUT /v2/p/app/manifests/1"), 2, "{:?}", fake.log());
}
