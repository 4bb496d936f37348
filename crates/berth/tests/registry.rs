//! Registry commands end to end against Debian's docker-registry on 127.0.0.1 (plain HTTP, TLS
//! with a CA made by the test, htpasswd auth), skopeo as the reference client, and a small fake
//! registry for misbehaving servers.

mod common;
#[path = "common/registry.rs"]
mod registry_support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use common::*;
use registry_support::*;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Incompressible bytes (xorshift), so compressed layers keep their size.
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

fn layer_with(files: &[(&str, &[u8])], comp: Comp) -> TestLayer {
    let mut t = TarBuilder::new();
    for (p, d) in files {
        t.file(p, 0o644, d);
    }
    TestLayer::new(&t.finish(), comp)
}

fn config_for(layers: &[TestLayer], arch: &str) -> Vec<u8> {
    let mut v: serde_json::Value =
        serde_json::from_slice(&image_config(layers, &["sh"], &[])).unwrap();
    v["architecture"] = serde_json::Value::String(arch.into());
    serde_json::to_vec(&v).unwrap()
}

fn oci_manifest(config: &[u8], layers: &[TestLayer]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256_hex(config), "size": config.len()},
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": l.oci_media_type(), "digest": l.digest(), "size": l.blob.len()
        })).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// Upload config, layers and manifest with curl; returns the manifest digest.
fn upload_image(
    reg: &Registry,
    repo: &str,
    tag: &str,
    config: &[u8],
    layers: &[TestLayer],
) -> String {
    for l in layers {
        reg.put_blob(repo, &l.blob);
    }
    reg.put_blob(repo, config);
    reg.put_manifest(repo, tag, OCI_MANIFEST, &oci_manifest(config, layers))
}

fn image_id(env: &TestEnv, name: &str) -> String {
    env.ok(&["image", "inspect", "--format", "{{.Id}}", name])
        .trim()
        .to_string()
}

fn dir_entries(p: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn push_with_berth_read_with_skopeo() {
    let reg = Registry::plain();
    let env = TestEnv::new();
    let id = env.busybox_image("app:1");
    let dest = format!("{}/team/app:1.2", reg.host());
    let out = env.ok(&["push", "app:1", &dest]);
    assert!(
        out.contains(&format!(
            "The push refers to repository [{}/team/app]",
            reg.host()
        )),
        "{out}"
    );
    assert!(out.contains(": Pushed"), "{out}");
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("1.2: digest: sha256:") && last.contains(" size: "),
        "{out}"
    );
    let digest = last.split_whitespace().nth(2).unwrap().to_string();

    let (ok, so, se) = skopeo(&["inspect", "--tls-verify=false", &format!("docker://{dest}")]);
    assert!(ok, "skopeo inspect: {se}");
    let v: serde_json::Value = serde_json::from_str(&so).unwrap();
    assert_eq!(v["Digest"], digest.as_str());
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1);
    let (ok, raw, se) = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{dest}"),
    ]);
    assert!(ok, "{se}");
    let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(m["config"]["digest"], id.as_str());
    // The busybox layer was loaded uncompressed: it is pushed as such, under an OCI manifest.
    assert_eq!(m["mediaType"], OCI_MANIFEST);
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar"
    );
    // skopeo copies it, checking every blob digest.
    let tmp = TempDir::new("skopeo-copy");
    let (ok, _, se) = skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{dest}"),
        &format!("dir:{}", tmp.path().join("img").display()),
    ]);
    assert!(ok, "skopeo copy: {se}");

    // Again: the registry has everything.
    let out = env.ok(&["push", "app:1", &dest]);
    assert!(out.contains("Layer already exists"), "{out}");
    assert!(out.contains(&digest), "{out}");
    // Another repository of the same registry: the layer is mounted, not uploaded.
    let out = env.ok(&["push", "app:1", &format!("{}/team/other:1", reg.host())]);
    assert!(out.contains("Mounted from team/app"), "{out}");
    // -q prints the digest only.
    let out = env.ok(&["push", "-q", "app:1", &format!("{}/team/q:1", reg.host())]);
    assert_eq!(out.trim(), digest);

    // Chunked upload (small chunk size) from a store that knows no source repository.
    let env2 = TestEnv::new();
    env2.busybox_image("app:1");
    let out = env2
        .cmd(&["push", "app:1", &format!("{}/chunked/app:1", reg.host())])
        .env("BERTH_PUSH_CHUNK_SIZE", "65536")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(": Pushed"), "{}", stdout(&out));
    let (ok, _, se) = skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/chunked/app:1", reg.host()),
        &format!("dir:{}", tmp.path().join("img2").display()),
    ]);
    assert!(ok, "skopeo copy of the chunked push: {se}");

    // Pull it back into a fresh store: same image id.
    let env3 = TestEnv::new();
    env3.ok(&["pull", &dest]);
    assert_eq!(image_id(&env3, &dest), id);
}

#[test]
fn push_with_skopeo_pull_with_berth() {
    let reg = Registry::plain();
    let env = TestEnv::new();
    let archive = env.path("bb.tar");
    busybox_docker_archive(&archive, "bb:1");
    let dest = format!("{}/lib/bb:1", reg.host());
    let (ok, _, se) = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("docker-archive:{}", archive.display()),
        &format!("docker://{dest}"),
    ]);
    assert!(ok, "skopeo copy: {se}");
    let (_, raw, _) = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{dest}"),
    ]);
    let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let manifest_digest = sha256_hex(raw.as_bytes());

    // `run` pulls a missing image (progress on stderr, the container's output on stdout);
    // --pull never refuses; --pull always pulls again.
    let env2 = TestEnv::new();
    let (code, msg) = env2.fails(&[
        "run",
        "--rm",
        "--network=none",
        "--pull",
        "never",
        &dest,
        "true",
    ]);
    assert_eq!(code, 125, "{msg}");
    let o = env2.berth(&[
        "run",
        "--rm",
        "--network=none",
        &dest,
        "echo",
        "pulled and ran",
    ]);
    assert_eq!(stdout(&o), "pulled and ran\n", "{}", stderr(&o));
    assert!(stderr(&o).contains("Pulling from lib/bb"), "{}", stderr(&o));
    let o = env2.berth(&[
        "run",
        "--rm",
        "--network=none",
        "--pull",
        "always",
        &dest,
        "true",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("Image is up to date"), "{}", stderr(&o));
    drop(env2);

    let out = env.ok(&["pull", &dest]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1: Pulling from lib/bb", "{out}");
    assert!(out.contains("Pull complete"), "{out}");
    assert!(out.contains(&format!("Digest: {manifest_digest}")), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {dest}")),
        "{out}"
    );
    assert_eq!(*lines.last().unwrap(), dest);
    let images = env.ok(&["images"]);
    assert!(
        images.contains(&format!("{}/lib/bb", reg.host())),
        "{images}"
    );
    let id = image_id(&env, &dest);
    assert_eq!(id, m["config"]["digest"].as_str().unwrap());
    // The unpacked layer has busybox in it.
    let layers = dir_entries(&env.root.join("layers"));
    assert_eq!(layers.len(), 1, "{layers:?}");
    assert!(env
        .root
        .join("layers")
        .join(&layers[0])
        .join("bin/busybox")
        .is_file());

    let out = env.ok(&["pull", &dest]);
    assert!(
        out.contains(&format!("Status: Image is up to date for {dest}")),
        "{out}"
    );
    // Pushed elsewhere, the image keeps the manifest (and digest) it was pulled with.
    let copy = format!("{}/copies/bb:1", reg.host());
    let out = env.ok(&["push", &dest, &copy]);
    assert!(out.contains("Mounted from lib/bb"), "{out}");
    assert!(
        out.contains(&format!("1: digest: {manifest_digest} size: {}", raw.len())),
        "{out}"
    );
    // By digest, quietly: prints the image id.
    let by_digest = format!("{}/lib/bb@{manifest_digest}", reg.host());
    let out = env.ok(&["pull", "-q", &by_digest]);
    assert_eq!(out.trim(), id);

    // A store that has the same layer content from another blob (loaded uncompressed) reuses it.
    let env_loaded = TestEnv::new();
    env_loaded.busybox_image("local:1");
    let out = env_loaded.ok(&["pull", &dest]);
    assert!(out.contains("Already exists"), "{out}");
    assert!(!out.contains("Pull complete"), "{out}");
    assert_eq!(image_id(&env_loaded, &dest), id);

    // OCI manifest with a zstd and a plain layer, uploaded by hand.
    let l1 = layer_with(&[("zstd-file", b"from zstd")], Comp::Zstd);
    let l2 = layer_with(&[("plain-file", b"from tar")], Comp::None);
    let cfg = config_for(&[l1.clone(), l2.clone()], host_arch());
    let md = upload_image(&reg, "lib/mixed", "v1", &cfg, &[l1.clone(), l2.clone()]);
    let r = format!("{}/lib/mixed:v1", reg.host());
    let out = env.ok(&["pull", &r]);
    assert!(out.contains(&format!("Digest: {md}")), "{out}");
    assert_eq!(image_id(&env, &r), sha256_hex(&cfg));
    let zdir = env.root.join("layers").join(&l1.diff_id[7..]);
    assert_eq!(std::fs::read(zdir.join("zstd-file")).unwrap(), b"from zstd");
    let pdir = env.root.join("layers").join(&l2.diff_id[7..]);
    assert_eq!(std::fs::read(pdir.join("plain-file")).unwrap(), b"from tar");
}

#[test]
fn pull_multi_platform_index() {
    let reg = Registry::plain();
    let env = TestEnv::new();
    let amd = layer_with(&[("arch", b"amd64")], Comp::Gzip);
    let arm = layer_with(&[("arch", b"arm64")], Comp::Gzip);
    let amd_cfg = config_for(std::slice::from_ref(&amd), "amd64");
    let arm_cfg = config_for(std::slice::from_ref(&arm), "arm64");
    let repo = "multi/app";
    let amd_m = oci_manifest(&amd_cfg, std::slice::from_ref(&amd));
    let arm_m = oci_manifest(&arm_cfg, std::slice::from_ref(&arm));
    upload_image(
        &reg,
        repo,
        &sha256_hex(&amd_m),
        &amd_cfg,
        std::slice::from_ref(&amd),
    );
    upload_image(
        &reg,
        repo,
        &sha256_hex(&arm_m),
        &arm_cfg,
        std::slice::from_ref(&arm),
    );
    let entry = |m: &[u8], arch: &str, variant: Option<&str>| {
        let mut p = serde_json::json!({"os": "linux", "architecture": arch});
        if let Some(v) = variant {
            p["variant"] = v.into();
        }
        serde_json::json!({"mediaType": OCI_MANIFEST, "digest": sha256_hex(m), "size": m.len(), "platform": p})
    };
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            entry(&arm_m, "arm64", Some("v8")),
            entry(&amd_m, "amd64", None),
            // An attestation-like entry that must never be picked.
            {"mediaType": OCI_MANIFEST, "digest": sha256_hex(&amd_m), "size": amd_m.len(),
             "platform": {"os": "unknown", "architecture": "unknown"}},
        ],
    }))
    .unwrap();
    let index_digest = reg.put_manifest(repo, "1", OCI_INDEX, &index);
    let r = format!("{}/{repo}:1", reg.host());

    let out = env.ok(&["pull", "--platform", "linux/amd64", &r]);
    assert!(out.contains(&format!("Digest: {index_digest}")), "{out}");
    assert_eq!(image_id(&env, &r), sha256_hex(&amd_cfg));
    let env_arm = TestEnv::new();
    env_arm.ok(&["pull", "--platform", "linux/arm64", &r]);
    assert_eq!(image_id(&env_arm, &r), sha256_hex(&arm_cfg));
    let (code, err) = env_arm.fails(&["pull", "--platform", "linux/s390x", &r]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no image for platform linux/s390x")
            && err.contains("linux/arm64/v8, linux/amd64"),
        "{err}"
    );
    if host_arch() == "amd64" {
        // The default is this host's platform.
        let env_def = TestEnv::new();
        env_def.ok(&["pull", &r]);
        assert_eq!(image_id(&env_def, &r), sha256_hex(&amd_cfg));
    }
}

fn with_config(
    env: &TestEnv,
    cfg: &std::path::Path,
    args: &[&str],
    input: Option<&[u8]>,
) -> std::process::Output {
    let mut c = env.cmd(args);
    c.env("DOCKER_CONFIG", cfg).env_remove("REGISTRY_AUTH_FILE");
    match input {
        Some(data) => {
            c.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = c.spawn().unwrap();
            use std::io::Write;
            child.stdin.take().unwrap().write_all(data).unwrap();
            child.wait_with_output().unwrap()
        }
        None => c.stdin(Stdio::null()).output().unwrap(),
    }
}

#[test]
fn login_push_pull_logout_with_htpasswd() {
    let reg = Registry::start(RegistryOpts {
        htpasswd: Some(("alice".into(), "wonderland".into())),
        tls: false,
    });
    let host = reg.host();
    let env = TestEnv::new();
    env.busybox_image("app:1");
    let cfg = TempDir::new("docker-config");
    let cfg_file = cfg.path().join("config.json");

    // No credentials: the registry says so.
    let out = with_config(
        &env,
        cfg.path(),
        &["push", "app:1", &format!("{host}/team/app:1")],
        None,
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unauthorized"), "{}", stderr(&out));

    // A wrong password: clear error, nothing saved.
    let out = with_config(
        &env,
        cfg.path(),
        &["login", &host, "-u", "alice", "--password-stdin"],
        Some(b"nope\n"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with(&format!("berth: login to {host} failed: unauthorized: ")),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(!cfg_file.exists());

    let out = with_config(
        &env,
        cfg.path(),
        &["login", &host, "-u", "alice", "--password-stdin"],
        Some(b"wonderland\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Login Succeeded"));
    let mode = std::fs::metadata(&cfg_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_file).unwrap()).unwrap();
    // base64("alice:wonderland")
    assert_eq!(v["auths"][&host]["auth"], "YWxpY2U6d29uZGVybGFuZA==");

    let out = with_config(
        &env,
        cfg.path(),
        &["push", "app:1", &format!("{host}/team/app:1")],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let env2 = TestEnv::new();
    let out = with_config(
        &env2,
        cfg.path(),
        &["pull", &format!("{host}/team/app:1")],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // REGISTRY_AUTH_FILE / --authfile, like podman.
    let alt = cfg.path().join("auth.json");
    let out = with_config(
        &env,
        cfg.path(),
        &[
            "login",
            &host,
            "-u",
            "alice",
            "--password-stdin",
            "--authfile",
            alt.to_str().unwrap(),
        ],
        Some(b"wonderland"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(alt.is_file());
    let env3 = TestEnv::new();
    let out = env3
        .cmd(&["pull", &format!("{host}/team/app:1")])
        .env("REGISTRY_AUTH_FILE", &alt)
        .env("DOCKER_CONFIG", cfg.path().join("empty"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let out = with_config(&env, cfg.path(), &["logout", &host], None);
    assert!(stdout(&out).contains(&format!("Removing login credentials for {host}")));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg_file).unwrap()).unwrap();
    assert!(v["auths"].get(&host).is_none(), "{v}");
    let env4 = TestEnv::new();
    let out = with_config(
        &env4,
        cfg.path(),
        &["pull", &format!("{host}/team/app:1")],
        None,
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unauthorized"), "{}", stderr(&out));
}

#[test]
fn tls_registry_with_certs_d() {
    let reg = Registry::start(RegistryOpts {
        htpasswd: None,
        tls: true,
    });
    let host = reg.host();
    let env = TestEnv::new();
    env.busybox_image("app:1");
    let certs = TempDir::new("certs-d");
    let run = |args: &[&str], certs_d: &std::path::Path| {
        env.cmd(args)
            .env("BERTH_CERTS_D", certs_d)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // Unknown CA: refused, and the message says where the CA goes.
    let out = run(
        &["push", "app:1", &format!("{host}/tls/app:1")],
        certs.path(),
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("certs.d") || stderr(&out).contains(certs.path().to_str().unwrap()),
        "{}",
        stderr(&out)
    );
    // With --tls-verify=false it works.
    let out = run(
        &[
            "push",
            "--tls-verify=false",
            "app:1",
            &format!("{host}/tls/app:0"),
        ],
        certs.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Listed as insecure in registries.conf: works without the CA.
    let conf = certs.path().join("registries.conf");
    std::fs::write(&conf, format!("insecure = [\"{host}\"]\n")).unwrap();
    let out = env
        .cmd(&["push", "app:1", &format!("{host}/tls/app:2")])
        .env("BERTH_CERTS_D", certs.path())
        .env("BERTH_REGISTRIES_CONF", &conf)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // With the CA in certs.d/HOST:PORT/ca.crt it works, verified.
    std::fs::create_dir_all(certs.path().join(&host)).unwrap();
    std::fs::copy(
        reg.tls.as_ref().unwrap().ca.clone(),
        certs.path().join(&host).join("ca.crt"),
    )
    .unwrap();
    let out = run(
        &["push", "app:1", &format!("{host}/tls/app:1")],
        certs.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let env2 = TestEnv::new();
    let out = env2
        .cmd(&["pull", &format!("{host}/tls/app:1")])
        .env("BERTH_CERTS_D", certs.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A fake registry serving one image; returns (reference, layers, config).
fn fake_image(
    fake: &FakeRegistry,
    repo: &str,
    layers: Vec<TestLayer>,
) -> (String, Vec<TestLayer>, Vec<u8>) {
    let cfg = config_for(&layers, host_arch());
    let m = oci_manifest(&cfg, &layers);
    fake.route(
        &format!("/v2/{repo}/manifests/1"),
        Canned::ok(OCI_MANIFEST, m),
    );
    fake.route(
        &format!("/v2/{repo}/blobs/{}", sha256_hex(&cfg)),
        Canned::ok("application/octet-stream", cfg.clone()),
    );
    for l in &layers {
        fake.route(
            &format!("/v2/{repo}/blobs/{}", l.digest()),
            Canned::ok("application/octet-stream", l.blob.clone()),
        );
    }
    (format!("{}/{repo}:1", fake.host()), layers, cfg)
}

fn assert_store_has_no_content(env: &TestEnv) {
    assert!(
        dir_entries(&env.root.join("blobs/sha256")).is_empty(),
        "blobs left: {:?}",
        env.store_files()
    );
    assert!(
        dir_entries(&env.root.join("layers")).is_empty(),
        "layers left: {:?}",
        env.store_files()
    );
    let images = env.ok(&["images", "-q"]);
    assert!(images.trim().is_empty(), "{images}");
}

#[test]
fn kill_during_pull_then_retry_reuses_finished_layers() {
    let fake = FakeRegistry::start();
    let env = TestEnv::new();
    let small = layer_with(&[("small", b"first layer")], Comp::Gzip);
    let big = layer_with(&[("big", &noise(3 << 20, 7))], Comp::Gzip);
    let (r, layers, cfg) = fake_image(&fake, "slow/app", vec![small.clone(), big.clone()]);
    let big_path = format!("/v2/slow/app/blobs/{}", big.digest());
    let mut stalled = Canned::ok("application/octet-stream", big.blob.clone());
    stalled.stall_after = Some(1 << 20);
    fake.route(&big_path, stalled);

    let child = env
        .cmd(&["pull", &r])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut proc = Proc(Some(child));
    let small_dir = env.root.join("layers").join(&small.diff_id[7..]);
    wait_for(60, "the small layer and the stalled download", || {
        small_dir.is_dir() && fake.log().iter().any(|l| l == &format!("GET {big_path}"))
    });
    // Give the finished layer time to be recorded in the database.
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let pid = proc.pid();
    let st = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let _ = proc.0.as_mut().unwrap().wait();
    drop(proc);

    // Nothing half-visible.
    let images = env.ok(&["images", "-q"]);
    assert!(images.trim().is_empty(), "{images}");

    fake.release_stalled();
    fake.route(
        &big_path,
        Canned::ok("application/octet-stream", big.blob.clone()),
    );
    let out = env.ok(&["pull", &r]);
    assert!(out.contains("Already exists"), "{out}");
    assert_eq!(image_id(&env, &r), sha256_hex(&cfg));
    let small_gets = fake
        .log()
        .iter()
        .filter(|l| **l == format!("GET /v2/slow/app/blobs/{}", layers[0].digest()))
        .count();
    assert_eq!(
        small_gets,
        1,
        "the finished layer was downloaded again: {:?}",
        fake.log()
    );
    let big_dir = env.root.join("layers").join(&big.diff_id[7..]);
    assert_eq!(
        std::fs::metadata(big_dir.join("big")).unwrap().len(),
        3 << 20
    );
    // Leftovers of the killed process are gone from tmp/ (swept by later commands).
    env.ok(&["images"]);
    let tmp = dir_entries(&env.root.join("tmp"));
    assert!(tmp.is_empty(), "tmp leftovers: {tmp:?}");
}

#[test]
fn misbehaving_registry_is_refused_and_nothing_is_stored() {
    let fake = FakeRegistry::start();
    let env = TestEnv::new();
    env.ok(&["images"]);

    // A layer whose content does not match its digest.
    let good = layer_with(&[("f", &noise(200_000, 3))], Comp::Gzip);
    let (r, layers, _) = fake_image(&fake, "bad/digest", vec![good]);
    let mut wrong = layers[0].blob.clone();
    let n = wrong.len();
    wrong[n / 2] ^= 0xff;
    fake.route(
        &format!("/v2/bad/digest/blobs/{}", layers[0].digest()),
        Canned::ok("application/octet-stream", wrong),
    );
    let (code, err) = env.fails(&["pull", &r]);
    assert_eq!(code, 1);
    assert!(
        err.contains("failed verification") && err.contains(&layers[0].digest()),
        "{err}"
    );
    assert_store_has_no_content(&env);

    // A truncated body (the connection closes early, every time).
    let (r, layers, _) = fake_image(
        &fake,
        "bad/short",
        vec![layer_with(&[("f", &noise(100_000, 4))], Comp::Gzip)],
    );
    let mut cut = Canned::ok("application/octet-stream", layers[0].blob.clone());
    cut.cut_after = Some(1000);
    fake.route(&format!("/v2/bad/short/blobs/{}", layers[0].digest()), cut);
    let (_, err) = env.fails(&["pull", &r]);
    assert!(
        err.contains("stopped at") && err.contains("nothing was stored"),
        "{err}"
    );
    assert_store_has_no_content(&env);

    // A connection that drops once: the download resumes with a range request.
    let (r, layers, cfg) = fake_image(
        &fake,
        "flaky/app",
        vec![layer_with(&[("f", &noise(300_000, 5))], Comp::Gzip)],
    );
    let blob_path = format!("/v2/flaky/app/blobs/{}", layers[0].digest());
    let mut flaky = Canned::ok("application/octet-stream", layers[0].blob.clone());
    flaky.cut_after = Some(100_000);
    flaky.cut_once = true;
    flaky.ranges = true;
    fake.route(&blob_path, flaky);
    let env_ok = TestEnv::new();
    env_ok.ok(&["pull", &r]);
    assert_eq!(image_id(&env_ok, &r), sha256_hex(&cfg));
    let gets = fake
        .log()
        .iter()
        .filter(|l| **l == format!("GET {blob_path}"))
        .count();
    assert_eq!(gets, 2, "{:?}", fake.log());

    // An oversized manifest.
    let mut big = b"{\"schemaVersion\":2,\"pad\":\"".to_vec();
    big.extend(std::iter::repeat_n(b'x', 5 << 20));
    big.extend_from_slice(b"\"}");
    fake.route("/v2/bad/huge/manifests/1", Canned::ok(OCI_MANIFEST, big));
    let (_, err) = env.fails(&["pull", &format!("{}/bad/huge:1", fake.host())]);
    assert!(
        err.contains("manifest") && err.contains("larger than 4194304 bytes"),
        "{err}"
    );

    // An error document.
    fake.route(
        "/v2/bad/err/manifests/1",
        Canned {
            status: 500,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: br#"{"errors":[{"code":"UNKNOWN","message":"storage is on fire"}]}"#.to_vec(),
            stall_after: None,
            cut_after: None,
            cut_once: false,
            ranges: false,
        },
    );
    let (_, err) = env.fails(&["pull", &format!("{}/bad/err:1", fake.host())]);
    assert_eq!(err.trim(), "berth: unknown: storage is on fire");
    // Not found.
    let (_, err) = env.fails(&["pull", &format!("{}/bad/none:1", fake.host())]);
    assert!(
        err.contains("manifest for") && err.contains("not found"),
        "{err}"
    );

    // A manifest that does not match the digest it was asked for.
    let asked = sha256_hex(b"{}");
    fake.route(
        &format!("/v2/bad/pin/manifests/{asked}"),
        Canned::ok(OCI_MANIFEST, br#"{"other":1}"#.to_vec()),
    );
    let (_, err) = env.fails(&["pull", &format!("{}/bad/pin@{asked}", fake.host())]);
    assert!(err.contains("failed verification"), "{err}");
    assert_store_has_no_content(&env);
}

#[test]
fn bearer_token_auth() {
    let fake = FakeRegistry::start();
    let env = TestEnv::new();
    let (r, _, cfg) = fake_image(
        &fake,
        "bear/app",
        vec![layer_with(&[("f", b"bear")], Comp::Gzip)],
    );
    // base64("bob:secret")
    fake.require_bearer("tok-123", Some("Ym9iOnNlY3JldA=="));
    let cfg_dir = TempDir::new("bearer-config");
    // Anonymous: the token server refuses.
    let out = with_config(&env, cfg_dir.path(), &["pull", &r], None);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unauthorized"), "{}", stderr(&out));
    // Bad password at login: refused by the token server.
    let host = fake.host();
    let out = with_config(
        &env,
        cfg_dir.path(),
        &["login", &host, "-u", "bob", "--password-stdin"],
        Some(b"wrong"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with(&format!("berth: login to {host} failed: unauthorized")),
        "{}",
        stderr(&out)
    );
    let out = with_config(
        &env,
        cfg_dir.path(),
        &["login", &host, "-u", "bob", "--password-stdin"],
        Some(b"secret"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = with_config(&env, cfg_dir.path(), &["pull", &r], None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(image_id(&env, &r), sha256_hex(&cfg));
    let log = fake.log();
    assert!(
        log.iter().any(|l| l.starts_with("GET /token?")
            && l.contains("scope=repository%3Abear%2Fapp%3Apull")
            && l.contains("service=fake")),
        "{log:?}"
    );
}

#[test]
fn docker_hub_names_go_to_the_configured_mirror() {
    let reg = Registry::plain();
    let env = TestEnv::new();
    let l = layer_with(&[("hello", b"from the mirror")], Comp::Gzip);
    let cfg = config_for(std::slice::from_ref(&l), host_arch());
    upload_image(
        &reg,
        "library/mirrored",
        "1",
        &cfg,
        std::slice::from_ref(&l),
    );
    let conf = TempDir::new("registries-conf");
    let conf_file = conf.path().join("registries.conf");
    std::fs::write(
        &conf_file,
        format!("[mirrors]\n\"docker.io\" = [\"http://{}\"]\n", reg.host()),
    )
    .unwrap();
    let out = env
        .cmd(&["pull", "mirrored:1"])
        .env("BERTH_REGISTRIES_CONF", &conf_file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let so = stdout(&out);
    assert!(so.starts_with("1: Pulling from library/mirrored"), "{so}");
    assert!(
        so.contains("Status: Downloaded newer image for mirrored:1"),
        "{so}"
    );
    assert_eq!(so.lines().last(), Some("docker.io/library/mirrored:1"));
    assert_eq!(image_id(&env, "mirrored:1"), sha256_hex(&cfg));
    assert_eq!(
        image_id(&env, "docker.io/library/mirrored:1"),
        sha256_hex(&cfg)
    );
}
