//! Docker-compatible handling of users' inputs (root integration tests): signal names,
//! users and groups, resolv.conf on systemd-resolved hosts, host entries, archive compression.

mod common;

use std::time::{Duration, Instant};

use common::*;

const NONE: &str = "--network=none";

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn wait_until(mut f: impl FnMut() -> bool, secs: u64) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A container whose shell exits with 37 once signal 37 (SIGRTMIN+3) reaches it.
const TRAP_RT3: &str = "trap 'exit 37' 37; echo ready; while :; do sleep 0.1; done";

#[test]
fn realtime_signal_names_reach_the_container() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    // kill -s with the real-time name delivers signal 37.
    env.ok(&[
        "run", "-d", "--name", "rt", NONE, "bb", "sh", "-c", TRAP_RT3,
    ]);
    assert!(wait_until(|| env.ok(&["logs", "rt"]) == "ready\n", 10));
    env.ok(&["kill", "-s", "SIGRTMIN+3", "rt"]);
    assert_eq!(env.ok(&["wait", "rt"]).trim(), "37");
    // The same container again, with the lowercase short form.
    env.ok(&["start", "rt"]);
    assert!(wait_until(
        || env.ok(&["logs", "rt"]) == "ready\nready\n",
        10
    ));
    env.ok(&["kill", "--signal", "rtmin+3", "rt"]);
    assert_eq!(env.ok(&["wait", "rt"]).trim(), "37");

    // --stop-signal takes the same names; stop sends it.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "st",
        "--stop-signal",
        "SIGRTMAX-27",
        NONE,
        "bb",
        "sh",
        "-c",
        TRAP_RT3,
    ]);
    assert!(wait_until(|| env.ok(&["logs", "st"]) == "ready\n", 10));
    env.ok(&["stop", "-t", "30", "st"]);
    assert_eq!(env.ok(&["wait", "st"]).trim(), "37");

    // An image's STOPSIGNAL (here set by import --change) goes through the same parser.
    let rootfs = env.path("rootfs.tar");
    busybox_rootfs_tar(&rootfs);
    env.ok(&[
        "import",
        "-c",
        "STOPSIGNAL SIGRTMIN+3",
        rootfs.to_str().unwrap(),
        "bbsig:1",
    ]);
    env.ok(&[
        "run", "-d", "--name", "img", NONE, "bbsig:1", "sh", "-c", TRAP_RT3,
    ]);
    assert!(wait_until(|| env.ok(&["logs", "img"]) == "ready\n", 10));
    env.ok(&["stop", "-t", "30", "img"]);
    assert_eq!(env.ok(&["wait", "img"]).trim(), "37");
    let (code, msg) = env.fails(&[
        "import",
        "-c",
        "STOPSIGNAL SIGNOPE",
        rootfs.to_str().unwrap(),
        "bbsig:2",
    ]);
    assert_eq!(code, 1, "a failed import exits 1, as Docker's CLI");
    assert!(msg.contains("invalid signal"), "{msg}");

    // Bad names fail before anything is created, naming the input.
    let (code, msg) = env.fails(&["run", "--stop-signal", "SIGRTMIN+99", NONE, "bb", "true"]);
    assert_eq!(code, 125);
    assert!(msg.contains("invalid signal \"SIGRTMIN+99\""), "{msg}");
    let (code, msg) = env.fails(&["kill", "-s", "NOSUCH", "st"]);
    assert_eq!(code, 1, "a failed kill exits 1, as Docker's CLI");
    assert!(msg.contains("invalid signal"), "{msg}");
    let _ = out;
}

#[test]
fn add_host_forms_and_host_gateway() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let conf = std::fs::read_to_string(env.root.join("net.conf")).unwrap();
    let subnet = conf
        .lines()
        .find_map(|l| l.strip_prefix("bridge_subnet = "))
        .unwrap()
        .to_string();
    // host-gateway defaults to the default bridge's gateway (the subnet's first address).
    let gw = subnet.replace(".0/24", ".1");
    let hosts = |extra: &[&str], net: &str| {
        let mut args = vec!["run", "--rm", net];
        for h in extra {
            args.push("--add-host");
            args.push(h);
        }
        args.extend(["bb", "cat", "/etc/hosts"]);
        env.ok(&args)
    };
    let h = hosts(
        &[
            "db:10.0.0.9",
            "web api=10.0.0.10",
            "v6:[fd00::5]",
            "v6b=fd00::6",
            "host.docker.internal:host-gateway",
        ],
        NONE,
    );
    for line in [
        "10.0.0.9\tdb\n",
        "10.0.0.10\tweb api\n",
        "fd00::5\tv6\n",
        "fd00::6\tv6b\n",
        &format!("{gw}\thost.docker.internal\n"),
    ] {
        assert!(h.contains(line), "{line:?} missing from:\n{h}");
    }
    // Also on the default bridge and with the host network.
    let h = hosts(&["gw=host-gateway"], "--network=bridge");
    assert!(h.contains(&format!("{gw}\tgw\n")), "{h}");
    let h = hosts(&["gw=host-gateway"], "--network=host");
    assert!(h.contains(&format!("{gw}\tgw\n")), "{h}");

    // A configured host-gateway address wins.
    std::fs::write(
        env.root.join("net.conf"),
        format!("{conf}host_gateway_ip = 192.0.2.7, fd00::7\n"),
    )
    .unwrap();
    let h = hosts(&["gw:host-gateway"], NONE);
    assert!(
        h.contains("192.0.2.7\tgw\n") && h.contains("fd00::7\tgw\n"),
        "{h}"
    );
    std::fs::write(env.root.join("net.conf"), &conf).unwrap();

    // Bad values fail before a container exists, naming the value.
    for bad in ["nope", "a:[1.2.3.4]", "a:notanip", ":1.2.3.4"] {
        let (code, msg) = env.fails(&["run", "--rm", NONE, "--add-host", bad, "bb", "true"]);
        assert_eq!(code, 125);
        assert!(msg.contains("invalid --add-host"), "{bad}: {msg}");
    }
    assert_eq!(env.ok(&["ps", "-aq"]), "");
}

/// busybox plus passwd/group files with alice (1000, member of wheel 10 and audio 29).
fn users_image(env: &TestEnv, name: &str) {
    let base = TestLayer::new(&busybox_rootfs(), Comp::None);
    let mut t = TarBuilder::new();
    t.dir("etc", 0o755)
        .file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\n",
        )
        .file(
            "etc/group",
            0o644,
            b"root:x:0:\nwheel:x:10:root,alice\naudio:x:29:alice\nalice:x:1000:\nstaff:x:50:\n",
        );
    let etc = TestLayer::new(&t.finish(), Comp::None);
    let layers = [base, etc];
    let cfg = image_config(&layers, &["sh"], &[]);
    let p = env.path("users.tar");
    write_docker_archive(&p, &cfg, &layers, &[name]);
    env.ok(&["load", "-i", p.to_str().unwrap()]);
}

/// `uid gid groups` as the kernel sees them (groups sorted by the kernel).
const ID: &str = "echo $(id -u) $(id -g) $(sed -n 's/^Groups:[[:space:]]*//p' /proc/self/status)";

#[test]
fn user_and_groups_follow_docker_for_run_and_exec() {
    let env = TestEnv::new();
    users_image(&env, "users");
    let table: &[(&str, &str)] = &[
        ("alice", "1000 1000 10 29 1000"),
        ("alice:audio", "1000 29 29"),
        ("alice:50", "1000 50 50"),
        ("1000", "1000 1000 10 29 1000"),
        ("1000:wheel", "1000 10 10"),
        ("5000", "5000 0 0"),
        ("5000:5000", "5000 5000 5000"),
        ("5000:audio", "5000 29 29"),
        ("root", "0 0 0 10"),
        ("0:0", "0 0 0"),
    ];
    for (u, want) in table {
        let got = env.ok(&["run", "--rm", NONE, "-u", u, "users", "sh", "-c", ID]);
        assert_eq!(got.trim(), *want, "run -u {u}");
    }
    // The default user is root with its memberships.
    let got = env.ok(&["run", "--rm", NONE, "users", "sh", "-c", ID]);
    assert_eq!(got.trim(), "0 0 0 10");

    // exec -u follows the same rules; exec without -u keeps the container's user.
    env.ok(&[
        "run",
        "-d",
        "--name",
        "u",
        NONE,
        "-u",
        "alice:audio",
        "users",
        "sleep",
        "300",
    ]);
    assert_eq!(env.ok(&["exec", "u", "sh", "-c", ID]).trim(), "1000 29 29");
    for (u, want) in table {
        let got = env.ok(&["exec", "-u", u, "u", "sh", "-c", ID]);
        assert_eq!(got.trim(), *want, "exec -u {u}");
    }
    let (_, msg) = env.fails(&["exec", "-u", "nosuch", "u", "true"]);
    assert!(msg.contains("unable to find user nosuch"), "{msg}");
    env.ok(&["rm", "-f", "u"]);

    let (code, msg) = env.fails(&["run", "--rm", NONE, "-u", "alice:nosuch", "users", "true"]);
    assert_eq!(code, 125);
    assert!(msg.contains("unable to find group nosuch"), "{msg}");
}

/// `data` compressed as `fmt` (gzip, bzip2, xz, zstd).
fn compress(data: &[u8], fmt: &str) -> Vec<u8> {
    use std::io::Write;
    match fmt {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "bzip2" => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "xz" => {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "zstd" => zstd::encode_all(data, 1).unwrap(),
        other => panic!("{other}"),
    }
}

/// An image's `RootFS.Layers` (diff ids).
fn layers(env: &TestEnv, image: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["image", "inspect", image])).unwrap();
    let v = if v.is_array() { v[0].clone() } else { v };
    v["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

const FORMATS: [&str; 4] = ["gzip", "bzip2", "xz", "zstd"];

#[test]
fn import_detects_every_compression_by_content() {
    let env = TestEnv::new();
    let tar = busybox_rootfs();
    let diff = sha256(&tar);
    for fmt in FORMATS {
        let data = compress(&tar, fmt);
        // A misleading file name: the content decides.
        let p = env.path(&format!("rootfs-{fmt}.tar"));
        std::fs::write(&p, &data).unwrap();
        let tag = format!("imp:{fmt}");
        env.ok(&["import", p.to_str().unwrap(), &tag]);
        assert_eq!(layers(&env, &tag), vec![diff.clone()], "{fmt}");
        let o = env.ok(&["run", "--rm", NONE, &tag, "/bin/echo", "ok"]);
        assert_eq!(o, "ok\n", "{fmt}");
        // Standard input too.
        let o = env.berth_stdin(&["import", "-", &format!("imp:{fmt}-stdin")], &data);
        assert!(
            o.status.success(),
            "{fmt}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(
            layers(&env, &format!("imp:{fmt}-stdin")),
            vec![diff.clone()],
            "{fmt} stdin"
        );
    }
    // A truncated compressed stream is refused, and nothing is stored.
    let before = env.ok(&["images", "-q"]);
    let xz = compress(&tar, "xz");
    let o = env.berth_stdin(&["import", "-", "broken:1"], &xz[..xz.len() / 2]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(env.ok(&["images", "-q"]), before);
}

#[test]
fn load_detects_every_compression_by_content() {
    let env = TestEnv::new();
    let plain = env.path("bb.tar");
    busybox_docker_archive(&plain, "bb:plain");
    let archive = std::fs::read(&plain).unwrap();
    for fmt in FORMATS {
        let data = compress(&archive, fmt);
        let p = env.path(&format!("image-{fmt}.tar"));
        std::fs::write(&p, &data).unwrap();
        let o = env.ok(&["load", "-i", p.to_str().unwrap()]);
        assert!(o.contains("Loaded image: bb:plain"), "{fmt}: {o}");
        env.ok(&["rmi", "bb:plain"]);
        let o = env.berth_stdin(&["load"], &data);
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Loaded image: bb:plain"),
            "{fmt} stdin: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let o = env.ok(&["run", "--rm", NONE, "bb:plain", "/bin/echo", "ok"]);
        assert_eq!(o, "ok\n", "{fmt}");
        env.ok(&["rmi", "bb:plain"]);
    }
    let bz = compress(&archive, "bzip2");
    let o = env.berth_stdin(&["load"], &bz[..bz.len() / 3]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("bzip2"), "{e}");
}

/// Layers inside an archive may be bzip2 or xz too (Docker's `load` reads them): they load,
/// keep their diff id, and run.
#[test]
fn load_reads_layers_compressed_any_way() {
    let env = TestEnv::new();
    let tar = busybox_rootfs();
    for fmt in FORMATS {
        let l = TestLayer {
            blob: compress(&tar, fmt),
            comp: Comp::None,
            diff_id: sha256(&tar),
        };
        let cfg = image_config(std::slice::from_ref(&l), &["sh"], &[]);
        let p = env.path(&format!("layers-{fmt}.tar"));
        let tag = format!("bbl:{fmt}");
        write_docker_archive(&p, &cfg, &[l], &[&tag]);
        let o = env.ok(&["load", "-i", p.to_str().unwrap()]);
        assert!(o.contains(&format!("Loaded image: {tag}")), "{fmt}: {o}");
        assert_eq!(layers(&env, &tag), vec![sha256(&tar)], "{fmt}");
        let o = env.ok(&["run", "--rm", NONE, &tag, "/bin/echo", "ok"]);
        assert_eq!(o, "ok\n", "{fmt}");
    }
    // A layer whose content does not match its diff id is refused, and nothing is stored.
    let before = env.ok(&["images", "-q"]);
    let mut other = tar.clone();
    other.extend_from_slice(&[0u8; 1024]);
    let l = TestLayer {
        blob: compress(&tar, "xz"),
        comp: Comp::None,
        diff_id: sha256(&other),
    };
    let cfg = image_config(std::slice::from_ref(&l), &["sh"], &[]);
    let p = env.path("layers-bad.tar");
    write_docker_archive(&p, &cfg, &[l], &["bbl:bad"]);
    let (code, msg) = env.fails(&["load", "-i", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{msg}");
    assert!(msg.contains("diff id"), "{msg}");
    assert_eq!(env.ok(&["images", "-q"]), before);
}

/// A scripted DNS upstream on a loopback address: answers every A query with `answer`, other
/// types with no records. Stops when the returned flag is set.
fn fake_dns(
    addr: &str,
    answer: [u8; 4],
) -> Option<(
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<()>,
)> {
    let sock = std::net::UdpSocket::bind(addr).ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let h = std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
            let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let q = &buf[..n];
            if n < 12 {
                continue;
            }
            // The question: labels up to the zero byte, then type and class.
            let mut i = 12;
            while i < n && q[i] != 0 {
                i += 1 + q[i] as usize;
            }
            if i + 5 > n {
                continue;
            }
            let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
            let question = &q[12..i + 5];
            let is_a = qtype == 1;
            let mut r = Vec::new();
            r.extend_from_slice(&q[..2]);
            r.extend_from_slice(&[0x81, 0x80, 0, 1, 0, u8::from(is_a), 0, 0, 0, 0]);
            r.extend_from_slice(question);
            if is_a {
                r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                r.extend_from_slice(&answer);
            }
            let _ = sock.send_to(&r, peer);
        }
    });
    Some((stop, h))
}

/// Run `script` (sh) in a private mount namespace where /etc/resolv.conf is `etc` and, when
/// given, systemd-resolved's upstream file is `resolved`. The host's files are not touched:
/// the bind mounts exist only inside that namespace.
fn in_crafted_host(
    env: &TestEnv,
    etc: &str,
    resolved: Option<&str>,
    script: &str,
) -> (String, String) {
    let n = rand_suffix();
    let etc_file = env.path(&format!("etc-resolv-{n}.conf"));
    std::fs::write(&etc_file, etc).unwrap();
    let resolved_file = env.path(&format!("resolved-{n}.conf"));
    let mut setup = format!(
        "set -e\nmount --bind '{}' /etc/resolv.conf\n",
        etc_file.display()
    );
    // A tmpfs over /run/systemd (or /run when it has none) hides the host's systemd-resolved
    // files inside the namespace; the crafted one goes there.
    let run = if std::path::Path::new("/run/systemd").is_dir() {
        "/run/systemd"
    } else {
        "/run"
    };
    setup.push_str(&format!("mount -t tmpfs berth-test {run}\n"));
    if let Some(r) = resolved {
        std::fs::write(&resolved_file, r).unwrap();
        setup.push_str(&format!(
            "mkdir -p /run/systemd/resolve\ncp '{}' /run/systemd/resolve/resolv.conf\n",
            resolved_file.display()
        ));
    }
    setup.push_str("set +e\n");
    setup.push_str(script);
    let o = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &setup])
        .env("BERTH_ROOT", &env.root)
        .env("BERTH", env!("CARGO_BIN_EXE_berth"))
        .env_remove("BERTH_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("unshare (util-linux) must be installed");
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(std::process::id().into());
    h.finish()
}

/// The text between `=== name` and the next marker in a script's output.
fn section<'a>(out: &'a str, name: &str) -> &'a str {
    let start = out
        .find(&format!("=== {name}\n"))
        .unwrap_or_else(|| panic!("no section {name} in:\n{out}"))
        + name.len()
        + 5;
    let rest = &out[start..];
    &rest[..rest.find("=== ").unwrap_or(rest.len())]
}

const STUB: &str = "# crafted systemd-resolved stub\nnameserver 127.0.0.53\noptions edns0 trust-ad ndots:2\nsearch corp.example lab.example\n";

#[test]
fn resolv_conf_on_a_systemd_resolved_host() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let conf = std::fs::read_to_string(env.root.join("net.conf")).unwrap();
    let pool = conf
        .lines()
        .find_map(|l| l.strip_prefix("pool = "))
        .unwrap()
        .to_string();
    let user_gw = pool.replace(".0/24", ".1");
    // The host's resolvers: 127.0.0.53 (the stub, which the embedded DNS server uses) and,
    // for --dns on a user network, 127.0.0.54. Both answer for any name.
    let stub = fake_dns("127.0.0.53:53", [192, 0, 2, 99]);
    let alt = fake_dns("127.0.0.54:53", [192, 0, 2, 100]);
    let script = r#"
B="$BERTH"
cat_resolv() { "$B" run --rm "$@" bb cat /etc/resolv.conf; }
echo "=== bridge"; cat_resolv --network=bridge
echo "=== none"; cat_resolv --network=none
echo "=== flags"; cat_resolv --network=bridge --dns 10.0.0.1 --dns-search x.example --dns-option ndots:5
echo "=== nosearch"; cat_resolv --network=none --dns-search .
echo "=== host"; cat_resolv --network=host
"$B" network create t16dns >/dev/null
echo "=== user"; cat_resolv --network=t16dns
echo "=== user-flags"; cat_resolv --network=t16dns --dns 127.0.0.54 --dns-search y.example
echo "=== lookup"; "$B" run --rm --network=t16dns bb nslookup www.corp.example
echo "=== lookup-dns"; "$B" run --rm --network=t16dns --dns 127.0.0.54 bb nslookup www.corp.example
echo "=== end"
"#;
    let upstream = "nameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch corp.example\n";
    let (out, err) = in_crafted_host(&env, STUB, Some(upstream), script);
    let want = "nameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch corp.example lab.example\noptions edns0 trust-ad ndots:2\n";
    assert_eq!(section(&out, "bridge"), want, "stderr: {err}");
    assert_eq!(section(&out, "none"), want);
    assert_eq!(
        section(&out, "flags"),
        "nameserver 10.0.0.1\nsearch x.example\noptions ndots:5\n"
    );
    assert_eq!(
        section(&out, "nosearch"),
        "nameserver 192.0.2.1\nnameserver 192.0.2.2\noptions edns0 trust-ad ndots:2\n"
    );
    assert_eq!(section(&out, "host"), STUB);
    assert_eq!(
        section(&out, "user"),
        format!("nameserver {user_gw}\nsearch corp.example lab.example\noptions edns0 trust-ad ndots:2\n")
    );
    assert_eq!(
        section(&out, "user-flags"),
        format!("nameserver {user_gw}\nsearch y.example\noptions edns0 trust-ad ndots:2\n")
    );
    // The embedded server relays to the host's resolver (loopback, reachable from the
    // host's namespace), or to the container's --dns servers.
    if stub.is_some() && alt.is_some() {
        assert!(
            section(&out, "lookup").contains("192.0.2.99"),
            "{out}\n{err}"
        );
        assert!(
            section(&out, "lookup-dns").contains("192.0.2.100"),
            "{out}\n{err}"
        );
    } else {
        eprintln!("127.0.0.53:53 or 127.0.0.54:53 is busy; relay checks skipped");
    }
    for (stop, h) in [stub, alt].into_iter().flatten() {
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        h.join().unwrap();
    }

    // No upstream file: no nameserver and a clear warning, unless the public fallback is
    // allowed in net.conf.
    let script = r#"echo "=== bridge"; "$BERTH" run --rm --network=bridge bb cat /etc/resolv.conf; echo "=== end""#;
    let (out, err) = in_crafted_host(&env, STUB, None, script);
    let r = section(&out, "bridge");
    assert!(!r.contains("nameserver"), "{r}");
    assert!(r.contains("search corp.example lab.example"), "{r}");
    assert!(
        err.contains("only loopback or IPv6 resolvers")
            && err.contains("use --dns")
            && err.contains("public_dns_fallback"),
        "{err}"
    );
    std::fs::write(
        env.root.join("net.conf"),
        format!("{conf}public_dns_fallback = yes\n"),
    )
    .unwrap();
    let (out, _) = in_crafted_host(&env, STUB, None, script);
    assert!(
        section(&out, "bridge").starts_with("nameserver 8.8.8.8\nnameserver 8.8.4.4\n"),
        "{out}"
    );
    std::fs::write(env.root.join("net.conf"), &conf).unwrap();
    // The host's /etc/resolv.conf is what it was.
    assert!(!std::fs::read_to_string("/etc/resolv.conf")
        .unwrap()
        .contains("crafted"));
}

/// `group_add` (compose's form of `--group-add`) for run and exec: names and numbers without
/// entries, after the implicit memberships, the primary gid included.
#[test]
fn group_add_through_compose_for_run_and_exec() {
    let env = TestEnv::new();
    users_image(&env, "users");
    let f = env.path("compose.yaml");
    std::fs::write(
        &f,
        "services:\n  s:\n    image: users\n    network_mode: none\n    user: alice\n    group_add: [staff, \"4242\"]\n    command: [sleep, \"300\"]\n",
    )
    .unwrap();
    let fs = f.to_str().unwrap();
    let c = |args: &[&str]| {
        let mut a = vec!["compose", "-f", fs, "-p", "t16groups"];
        a.extend_from_slice(args);
        env.ok(&a)
    };
    assert_eq!(
        c(&["run", "--rm", "s", "sh", "-c", ID]).trim(),
        "1000 1000 10 29 50 1000 4242"
    );
    c(&["up", "-d"]);
    assert_eq!(
        c(&["exec", "s", "sh", "-c", ID]).trim(),
        "1000 1000 10 29 50 1000 4242"
    );
    // An explicit group drops the implicit memberships, not the added groups.
    assert_eq!(
        c(&["exec", "-u", "alice:audio", "s", "sh", "-c", ID]).trim(),
        "1000 29 29 50 4242"
    );
    c(&["down"]);
}
