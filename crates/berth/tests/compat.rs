//! Docker compatibility faults found by replaying Docker/Podman users' bug reports against
//! berth (issue 15). Each test covers the fault's kind, not only the reported input.
//! Root integration tests: each uses its own store (TestEnv) and cleans up after itself.

mod common;
#[path = "common/net.rs"]
mod net;
#[path = "common/registry.rs"]
mod registry_support;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use common::TestEnv;
use net::NetEnv;

fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

// ---- 1. negative numbers as option values ----------------------------------------------------

#[test]
fn negative_numbers_are_option_values() {
    let env = TestEnv::new();
    env.busybox_image("negnum:1");
    // Limits: -1 means unlimited, given as a separate word.
    env.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--pids-limit",
        "-1",
        "negnum:1",
        "true",
    ]);
    let id = env
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--stop-timeout",
            "-1",
            "--pids-limit",
            "-1",
            "negnum:1",
            "sh",
            "-c",
            "echo a; echo b; echo c; sleep 30",
        ])
        .trim()
        .to_string();
    // Tails: a negative tail is everything.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !env.ok(&["logs", &id]).contains('c') && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(env.ok(&["logs", "--tail", "-1", &id]), "a\nb\nc\n");
    assert_eq!(env.ok(&["logs", "-n", "-1", &id]), "a\nb\nc\n");
    // Timeouts: stop -t with a number as a separate word (0: kill at once).
    env.ok(&["stop", "-t", "0", &id]);
    let o = env.berth(&["restart", "--time", "-1", "nosuch"]);
    assert!(!err(&o).contains("unexpected argument"), "{}", err(&o));
    env.ok(&["rm", "-f", &id]);
}

// ---- 2. output cut short by a closed pipe ----------------------------------------------------

/// Run berth with its stdout a pipe whose reader is already gone: every write fails with EPIPE.
fn with_closed_stdout(env: &TestEnv, args: &[&str]) -> std::process::Output {
    let (r, w) = rustix::pipe::pipe().unwrap();
    drop(r);
    env.cmd(args)
        .stdin(Stdio::null())
        .stdout(w)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_closed_output_pipe_ends_every_command_quietly() {
    let env = TestEnv::new();
    let img = env.busybox_image("pipe:1");
    let id = env
        .ok(&["create", "--name", "pipe-c", "pipe:1", "true"])
        .trim()
        .to_string();
    for args in [
        &["inspect", "pipe-c"][..],
        &["inspect", "--format", "{{.Id}}", "pipe-c"],
        &["inspect", "pipe:1"],
        &["container", "inspect", "pipe-c"],
        &["image", "inspect", &img],
        &["ps", "-a"],
        &["ps", "-aq"],
        &["ps", "-a", "--format", "json"],
        &["images"],
        &["images", "-q"],
        &["images", "--format", "json"],
        &["network", "ls"],
        &["network", "inspect", "bridge"],
        &["create", "pipe:1", "true"],
        &["rm", &id],
        &["--help"],
    ] {
        let o = with_closed_stdout(&env, args);
        let e = err(&o);
        assert!(
            !e.contains("panicked") && !e.contains("Broken pipe") && !e.contains("broken pipe"),
            "berth {args:?} with a closed stdout: {e}"
        );
        use std::os::unix::process::ExitStatusExt;
        assert!(
            o.status.success() || o.status.signal() == Some(libc::SIGPIPE),
            "berth {args:?} with a closed stdout ended with {}: {e}",
            o.status
        );
    }
}

// ---- 10. exit codes outside run --------------------------------------------------------------

#[test]
fn failed_commands_exit_as_docker_cli() {
    let env = TestEnv::new();
    env.busybox_image("codes:1");
    // Docker's CLI: 1 for every failed command except run/create/exec's engine failures.
    for args in [
        &["rmi", "no-such-image"][..],
        &["image", "rm", "no-such-image"],
        &["rm", "no-such-ctr"],
        &["stop", "no-such-ctr"],
        &["restart", "no-such-ctr"],
        &["kill", "no-such-ctr"],
        &["start", "no-such-ctr"],
        &["wait", "no-such-ctr"],
        &["logs", "no-such-ctr"],
        &["port", "no-such-ctr"],
        &["inspect", "no-such-object"],
        &["container", "inspect", "no-such-ctr"],
        &["image", "inspect", "no-such-image"],
        &["tag", "no-such-image", "x:1"],
        &["save", "-o", "/dev/null", "no-such-image"],
        &["network", "rm", "no-such-net"],
        &["network", "inspect", "no-such-net"],
        &["network", "create", "bridge"],
        &["load", "-i", "/no/such/file.tar"],
    ] {
        let (code, e) = env.fails(args);
        assert_eq!(code, 1, "berth {args:?}: {e}");
        assert!(!e.contains("panicked"), "{e}");
    }
    // run/create: 125 when the engine fails; the usage errors of every command: 125.
    for args in [
        &["run", "--rm", "--pull", "never", "no-such-image"][..],
        &["create", "--pull", "never", "no-such-image"],
        &["exec", "no-such-ctr", "true"],
        &["rmi", "--no-such-flag", "x"],
        &["ps", "--no-such-flag"],
    ] {
        let (code, e) = env.fails(args);
        assert_eq!(code, 125, "berth {args:?}: {e}");
    }
    // The container's command: 127 not found, 126 not executable.
    assert_eq!(
        env.fails(&[
            "run",
            "--rm",
            "--network",
            "none",
            "codes:1",
            "/no/such/cmd"
        ])
        .0,
        127
    );
    assert_eq!(
        env.fails(&["run", "--rm", "--network", "none", "codes:1", "/etc"])
            .0,
        126
    );
}

// ---- 8. one resolver for names, ids and prefixes ---------------------------------------------

/// A hex digit that starts at least two of `ids`, and one that starts exactly one.
fn shared_and_unique_first_digit(ids: &[String]) -> (char, Option<char>) {
    let mut count = std::collections::BTreeMap::new();
    for id in ids {
        *count.entry(id.chars().next().unwrap()).or_insert(0) += 1;
    }
    let shared = count
        .iter()
        .find(|(_, n)| **n >= 2)
        .map(|(c, _)| *c)
        .unwrap();
    let unique = count.iter().find(|(_, n)| **n == 1).map(|(c, _)| *c);
    (shared, unique)
}

#[test]
fn ambiguous_prefixes_are_reported_by_every_command() {
    let env = TestEnv::new();
    let base_id = env.busybox_image("prefix:1");
    // 17 containers: two of them share the first digit of their ids.
    let ids: Vec<String> = (0..17)
        .map(|i| {
            env.ok(&["create", "--name", &format!("pfx{i}"), "prefix:1", "true"])
                .trim()
                .to_string()
        })
        .collect();
    let (shared, unique) = shared_and_unique_first_digit(&ids);
    let p = shared.to_string();
    for args in [
        &["inspect", &p][..],
        &["container", "inspect", &p],
        &["inspect", "--type", "container", &p],
        &["rm", &p],
        &["start", &p],
        &["stop", &p],
        &["kill", &p],
        &["logs", &p],
        &["wait", &p],
        &["port", &p],
    ] {
        let (code, e) = env.fails(args);
        assert!(
            e.contains(&format!("multiple IDs found with provided prefix: {p}")),
            "berth {args:?}: {e}"
        );
        assert_eq!(code, 1, "berth {args:?}: {e}");
    }
    let (code, e) = env.fails(&["exec", &p, "true"]);
    assert!(e.contains("multiple IDs found with provided prefix"), "{e}");
    assert_eq!(code, 125);
    // A unique prefix, a full id and a name resolve (a name beats an id prefix).
    if let Some(u) = unique {
        let want = ids.iter().find(|i| i.starts_with(u)).unwrap();
        assert_eq!(
            env.ok(&["inspect", "--format", "{{.Id}}", &u.to_string()])
                .trim(),
            want
        );
    }
    assert_eq!(
        env.ok(&["inspect", "--format", "{{.Id}}", &ids[3]]).trim(),
        ids[3]
    );
    let o = env.ok(&["create", "--name", &p, "prefix:1", "true"]);
    assert_eq!(
        env.ok(&["inspect", "--format", "{{.Id}}", &p]).trim(),
        o.trim()
    );
    assert_eq!(env.ok(&["rm", &p]).trim(), p);
    // Containers out of the way: a plain `inspect` of an image id prefix finds a container
    // whose id happens to start with it first (as Docker's CLI does), which made this flaky.
    for id in &ids {
        env.ok(&["rm", id]);
    }

    // Images: 17 imported images, two of them share the first digit of their ids.
    let mut img_ids = Vec::new();
    for i in 0..17 {
        let mut t = common::TarBuilder::new();
        t.file("f", 0o644, format!("{i}").as_bytes());
        let tar = t.finish();
        let path = env.path(&format!("img{i}.tar"));
        std::fs::write(&path, tar).unwrap();
        let id = env.ok(&["import", path.to_str().unwrap(), &format!("pimg:{i}")]);
        img_ids.push(id.trim().trim_start_matches("sha256:").to_string());
    }
    let (shared, _) = shared_and_unique_first_digit(&img_ids);
    let p = shared.to_string();
    for args in [
        &["inspect", &p][..],
        &["image", "inspect", &p],
        &["inspect", "--type", "image", &p],
        &["rmi", &p],
        &["tag", &p, "x:1"],
        &["run", "--rm", "--pull", "never", &p],
    ] {
        let (_, e) = env.fails(args);
        assert!(
            e.contains(&format!("multiple IDs found with provided prefix: {p}"))
                || e.contains(&format!(
                    "multiple IDs found with provided prefix: sha256:{p}"
                )),
            "berth {args:?}: {e}"
        );
    }
    // A short unique image id prefix resolves (no minimum length, as Docker).
    let full = &img_ids[5];
    let mut all_ids = img_ids.clone();
    all_ids.push(base_id.trim_start_matches("sha256:").to_string());
    let short = (1..=full.len())
        .map(|n| &full[..n])
        .find(|s| all_ids.iter().filter(|i| i.starts_with(s)).count() == 1)
        .unwrap();
    let got = env.ok(&["image", "inspect", "--format", "{{.Id}}", short]);
    assert_eq!(got.trim(), format!("sha256:{full}"));
}

// ---- 3. /etc/hosts, /etc/hostname and the FQDN -----------------------------------------------

/// `cat /etc/hosts`, `/etc/hostname`, the UTS names and `hostname -f` of a one-off container.
fn names_in(env: &TestEnv, args: &[&str]) -> (String, String) {
    let mut argv = vec!["run", "--rm"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&[
        "hosts:1",
        "sh",
        "-c",
        "cat /etc/hosts; echo ==; cat /etc/hostname; hostname; cat /proc/sys/kernel/domainname; hostname -f",
    ]);
    let o = env.ok(&argv);
    let (hosts, rest) = o.split_once("==\n").unwrap();
    (hosts.to_string(), rest.to_string())
}

/// The line of /etc/hosts for an address that is not loopback.
fn own_lines(hosts: &str) -> Vec<String> {
    hosts
        .lines()
        .filter(|l| {
            let ip = l.split_whitespace().next().unwrap_or("");
            !ip.is_empty()
                && !ip.starts_with("127.0.0.1")
                && !ip.contains(':')
                && !l.trim_start().starts_with('#')
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn hosts_and_hostname_follow_docker_fqdn_rules() {
    let env = TestEnv::new();
    let net = NetEnv::new(&env);
    env.busybox_image("hosts:1");
    let user_net = format!("{}-n", net.prefix);
    env.ok(&["network", "create", &user_net]);
    for network in ["bridge", user_net.as_str(), "none"] {
        // A dotted hostname: the FQDN, then its short name; never the container's name.
        let (hosts, rest) = names_in(
            &env,
            &[
                "--network",
                network,
                "--name",
                "named-ctr",
                "--hostname",
                "web.example.com",
            ],
        );
        let own = own_lines(&hosts);
        assert_eq!(own.len(), 1, "{network}: {hosts}");
        assert!(
            own[0].ends_with("\tweb.example.com web"),
            "{network}: {hosts}"
        );
        assert!(!hosts.contains("named-ctr"), "{network}: {hosts}");
        let rest: Vec<&str> = rest.lines().collect();
        assert_eq!(rest[0], "web.example.com", "/etc/hostname on {network}");
        assert_eq!(rest[1], "web.example.com", "hostname on {network}");
        assert_eq!(
            rest.get(3).copied(),
            Some("web.example.com"),
            "hostname -f on {network}"
        );

        // --hostname plus --domainname: the FQDN joins them; /etc/hostname is the host name.
        let (hosts, rest) = names_in(
            &env,
            &[
                "--network",
                network,
                "--hostname",
                "db",
                "--domainname",
                "corp.example",
            ],
        );
        let own = own_lines(&hosts);
        assert_eq!(own.len(), 1, "{network}: {hosts}");
        assert!(
            own[0].ends_with("\tdb.corp.example db"),
            "{network}: {hosts}"
        );
        let rest: Vec<&str> = rest.lines().collect();
        assert_eq!(rest[0], "db", "/etc/hostname on {network}");
        assert_eq!(rest[1], "db", "hostname on {network}");
        assert_eq!(rest[2], "corp.example", "domainname on {network}");
        assert_eq!(
            rest.get(3).copied(),
            Some("db.corp.example"),
            "hostname -f on {network}"
        );

        // No hostname: the short id alone, without the container's name.
        let (hosts, rest) = names_in(&env, &["--network", network, "--name", "plain-ctr"]);
        let own = own_lines(&hosts);
        let short = rest.lines().next().unwrap();
        assert_eq!(short.len(), 12, "{rest}");
        assert!(
            own[0].ends_with(&format!("\t{short}")),
            "{network}: {hosts}"
        );
        assert!(!hosts.contains("plain-ctr"), "{network}: {hosts}");
    }
    // Aliases: on a user network only (Docker refuses them on the default bridge); they are
    // answered by the network's DNS, not written to /etc/hosts.
    let (code, e) = env.fails(&["run", "--rm", "--network-alias", "al", "hosts:1", "true"]);
    assert_eq!(code, 125);
    assert!(e.contains("user defined networks"), "{e}");
    let (hosts, _) = names_in(
        &env,
        &[
            "--network",
            &user_net,
            "--network-alias",
            "the-alias",
            "--hostname",
            "h.example.org",
        ],
    );
    assert!(!hosts.contains("the-alias"), "{hosts}");
    assert!(
        own_lines(&hosts)[0].ends_with("\th.example.org h"),
        "{hosts}"
    );
    net.cleanup();
}

// ---- 5. every -p form ------------------------------------------------------------------------

/// A port P on 127.0.0.1 such that P, P+1 and P+2 are free for TCP.
fn three_free_ports() -> u16 {
    for _ in 0..200 {
        let p = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if p < 60000 && (0..3).all(|i| std::net::TcpListener::bind(("127.0.0.1", p + i)).is_ok()) {
            return p;
        }
    }
    panic!("no three consecutive free ports");
}

fn port_of(env: &TestEnv, c: &str) -> String {
    env.ok(&["port", c])
}

#[test]
fn every_publish_form_is_accepted() {
    let env = TestEnv::new();
    let net = NetEnv::new(&env);
    if !net::load_image(&env, "pub:1", &["80/tcp"]) {
        return;
    }
    let httpd = ["httpd", "-f", "-p", "80", "-h", "/etc"];
    // A host range to one container port: the first free port of the range, skipping a port
    // another program holds.
    let base = three_free_ports();
    let holder = std::net::TcpListener::bind(("127.0.0.1", base)).unwrap();
    let mut args = vec![
        "run".to_string(),
        "-d".into(),
        "--name".into(),
        "ranged".into(),
        "-p".into(),
        format!("127.0.0.1:{base}-{}:80", base + 2),
        "pub:1".into(),
    ];
    args.extend(httpd.iter().map(|s| s.to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    env.ok(&argv);
    let p = port_of(&env, "ranged");
    assert_eq!(p.trim(), format!("80/tcp -> 127.0.0.1:{}", base + 1), "{p}");
    let got = net::http_get(
        SocketAddr::from((Ipv4Addr::LOCALHOST, base + 1)),
        "/hostname",
        Duration::from_secs(10),
    );
    assert!(got.is_some(), "no answer on the port picked from the range");
    // The next container with the same range takes the next free port; a third finds none.
    let mut args2 = args.clone();
    args2[3] = "ranged2".into();
    let argv2: Vec<&str> = args2.iter().map(String::as_str).collect();
    env.ok(&argv2);
    assert_eq!(
        port_of(&env, "ranged2").trim(),
        format!("80/tcp -> 127.0.0.1:{}", base + 2)
    );
    let mut args3 = args.clone();
    args3[3] = "ranged3".into();
    let argv3: Vec<&str> = args3.iter().map(String::as_str).collect();
    let (_, e) = env.fails(&argv3);
    assert!(e.contains("already in use"), "{e}");
    drop(holder);
    for c in ["ranged", "ranged2", "ranged3"] {
        let _ = env.berth(&["rm", "-f", c]);
    }

    // The long syntax, and the short forms of Docker's documentation.
    let (a, b) = (three_free_ports(), three_free_ports());
    let specs = [
        (
            format!("published={a},target=80,protocol=tcp,mode=host"),
            format!("80/tcp -> 0.0.0.0:{a}"),
        ),
        (
            format!("mode=host,target=80,published={b},host_ip=127.0.0.1"),
            format!("80/tcp -> 127.0.0.1:{b}"),
        ),
        (
            format!("127.0.0.1:{}:80", a + 1),
            format!("80/tcp -> 127.0.0.1:{}", a + 1),
        ),
        (
            format!("{}:80/tcp", b + 1),
            format!("80/tcp -> 0.0.0.0:{}", b + 1),
        ),
        (
            "127.0.0.1::80".to_string(),
            "80/tcp -> 127.0.0.1:".to_string(),
        ),
        ("80".to_string(), "80/tcp -> 0.0.0.0:".to_string()),
    ];
    for (i, (spec, want)) in specs.iter().enumerate() {
        let name = format!("pub{i}");
        let mut argv = vec!["run", "-d", "--name", &name, "--publish", spec, "pub:1"];
        argv.extend_from_slice(&httpd);
        env.ok(&argv);
        let got = port_of(&env, &name);
        assert!(got.trim().starts_with(want.as_str()), "{spec}: {got}");
        let host_port: u16 = got.trim().rsplit(':').next().unwrap().parse().unwrap();
        assert!(
            net::http_get(
                SocketAddr::from((Ipv4Addr::LOCALHOST, host_port)),
                "/hostname",
                Duration::from_secs(10)
            )
            .is_some(),
            "{spec}: no answer on {host_port}"
        );
        env.ok(&["rm", "-f", &name]);
    }
    net.cleanup();
}

// ---- 4. the exec environment comes from the exec's own user and flags -------------------------

#[test]
fn exec_environment_follows_the_exec_user() {
    let env = TestEnv::new();
    env.busybox_image("execenv:1");
    let show = "echo HOME=$HOME; echo PATH=$PATH; echo E=$E; echo F=$F; id -u";
    let envfile = env.path("exec.env");
    std::fs::write(&envfile, "F=from-file\n# comment\n").unwrap();
    // Main process as root, as app, and as nobody.
    for (main_user, main_home) in [
        ("", "/root"),
        ("app", "/home/app"),
        ("nobody", "/nonexistent"),
    ] {
        let name = format!(
            "ee-{}",
            if main_user.is_empty() {
                "root"
            } else {
                main_user
            }
        );
        let mut run = vec!["run", "-d", "--network", "none", "--name", &name];
        if !main_user.is_empty() {
            run.extend_from_slice(&["-u", main_user]);
        }
        run.extend_from_slice(&["-e", "E=from-run", "execenv:1", "sleep", "60"]);
        env.ok(&run);
        // No -u: the container's user and its home.
        let o = env.ok(&["exec", &name, "sh", "-c", show]);
        assert!(
            o.contains(&format!("HOME={main_home}\n")),
            "{main_user}: {o}"
        );
        assert!(o.contains("E=from-run\n"), "{o}");
        assert!(
            o.contains("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"),
            "{o}"
        );
        // -u: that user's own home, whatever the main process's user.
        for (user, home, uid) in [
            ("nobody", "/nonexistent", "65534"),
            ("app", "/home/app", "1000"),
            ("root", "/root", "0"),
            ("0", "/root", "0"),
            ("1000:1000", "/home/app", "1000"),
        ] {
            let o = env.ok(&["exec", "-u", user, &name, "sh", "-c", show]);
            assert!(
                o.contains(&format!("HOME={home}\n")),
                "main {main_user}, -u {user}: {o}"
            );
            assert!(o.ends_with(&format!("{uid}\n")), "{o}");
        }
        // -e and --env-file of the exec itself; an explicit HOME wins.
        let o = env.ok(&[
            "exec",
            "-u",
            "nobody",
            "-e",
            "E=from-exec",
            "--env-file",
            envfile.to_str().unwrap(),
            &name,
            "sh",
            "-c",
            show,
        ]);
        assert!(
            o.contains("E=from-exec\n") && o.contains("F=from-file\n"),
            "{o}"
        );
        let o = env.ok(&["exec", "-e", "HOME=/tmp", &name, "sh", "-c", show]);
        assert!(o.contains("HOME=/tmp\n"), "{o}");
        env.ok(&["rm", "-f", &name]);
    }
}

// ---- 11. registry certificates Docker accepts -------------------------------------------------

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl is installed");
    assert!(out.status.success(), "openssl {args:?}: {}", err(&out));
}

/// The usual self-signed one-liner (OpenSSL 3 marks it CA:TRUE), for `san`.
fn self_signed(dir: &std::path::Path, name: &str, san: &str) -> registry_support::Tls {
    let (cert, key) = (format!("{name}.crt"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &cert,
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            &format!("subjectAltName={san}"),
        ],
    );
    registry_support::Tls {
        ca: dir.join(&cert),
        cert: dir.join(&cert),
        key: dir.join(&key),
    }
}

/// A `CA:TRUE` server certificate for `san`, signed by the CA `ca` (`ca.crt`, `ca.key` in
/// `dir`), the way `openssl x509 -req -extfile` makes one.
fn ca_signed_leaf(dir: &std::path::Path, ca: &str, name: &str, san: &str) -> registry_support::Tls {
    let (cert, key, csr, ext) = (
        format!("{name}.crt"),
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    std::fs::write(
        dir.join(&ext),
        format!("basicConstraints=CA:TRUE\nsubjectAltName={san}\n"),
    )
    .unwrap();
    let (ca_cert, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_cert,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
    registry_support::Tls {
        ca: dir.join(&ca_cert),
        cert: dir.join(&cert),
        key: dir.join(&key),
    }
}

fn with_certs_d(env: &TestEnv, certs_d: &std::path::Path, args: &[&str]) -> std::process::Output {
    env.cmd(args)
        .env("BERTH_CERTS_D", certs_d)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn trust(certs_d: &std::path::Path, host: &str, file: &std::path::Path, as_name: &str) {
    std::fs::create_dir_all(certs_d.join(host)).unwrap();
    std::fs::copy(file, certs_d.join(host).join(as_name)).unwrap();
}

#[test]
fn self_signed_registry_certificates_docker_accepts() {
    let scratch = registry_support::TempDir::new("tls15");
    let env = TestEnv::new();
    env.busybox_image("app:1");

    // An IP SAN, the certificate itself in certs.d/HOST:PORT/ca.crt: push, pull, login.
    let tls = self_signed(scratch.path(), "ip", "IP:127.0.0.1");
    let cert = tls.cert.clone();
    let reg = registry_support::Registry::start_with_tls(tls, None);
    let host = reg.host();
    let certs_d = scratch.path().join("certs.d");
    std::fs::create_dir_all(&certs_d).unwrap();
    let dest = format!("{host}/tls15/app:1");
    // Not trusted yet: refused, in words.
    let o = with_certs_d(&env, &certs_d, &["push", "app:1", &dest]);
    assert!(!o.status.success());
    let e = err(&o);
    assert!(e.contains("not signed by a trusted authority"), "{e}");
    assert!(!e.contains("Other(") && !e.contains("OtherError"), "{e}");
    trust(&certs_d, &host, &cert, "ca.crt");
    let o = with_certs_d(&env, &certs_d, &["push", "app:1", &dest]);
    assert!(o.status.success(), "push: {}", err(&o));
    let env2 = TestEnv::new();
    let o = with_certs_d(&env2, &certs_d, &["pull", &dest]);
    assert!(o.status.success(), "pull: {}", err(&o));
    let cfg = registry_support::TempDir::new("tls15-docker-config");
    let o = env
        .cmd(&["login", &host, "-u", "u", "--password-stdin"])
        .env("BERTH_CERTS_D", &certs_d)
        .env("DOCKER_CONFIG", cfg.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"p\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(!err(&o).contains("certificate"), "login: {}", err(&o));
    drop(reg);

    // A DNS SAN: valid for localhost, and the host name is still verified (the same
    // certificate trusted for 127.0.0.1 is refused there).
    let tls = self_signed(scratch.path(), "dns", "DNS:localhost");
    let cert = tls.cert.clone();
    let reg = registry_support::Registry::start_with_tls(tls, None);
    let by_name = format!("localhost:{}", reg.port);
    let by_ip = reg.host();
    trust(&certs_d, &by_name, &cert, "ca.crt");
    trust(&certs_d, &by_ip, &cert, "ca.crt");
    let o = with_certs_d(
        &env,
        &certs_d,
        &["push", "app:1", &format!("{by_name}/tls15/app:2")],
    );
    assert!(o.status.success(), "push by name: {}", err(&o));
    let o = with_certs_d(
        &env,
        &certs_d,
        &["push", "app:1", &format!("{by_ip}/tls15/app:2")],
    );
    assert!(!o.status.success());
    assert!(err(&o).contains("not valid for the name"), "{}", err(&o));
    drop(reg);

    // A CA:TRUE leaf signed by a CA, only the CA in certs.d (Go ignores the leaf's basic
    // constraints): push and pull work, the signature and the host name are still checked.
    let d = scratch.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "sca.key",
            "-out",
            "sca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=server CA",
        ],
    );
    let tls = ca_signed_leaf(d, "sca", "caleaf", "IP:127.0.0.1");
    let ca = tls.ca.clone();
    let reg = registry_support::Registry::start_with_tls(tls, None);
    let host = reg.host();
    let dest = format!("{host}/tls15/app:4");
    let o = with_certs_d(&env, &certs_d, &["push", "app:1", &dest]);
    assert!(
        !o.status.success(),
        "an untrusted CA:TRUE leaf was accepted"
    );
    let e = err(&o);
    assert!(e.contains("not signed by a trusted authority"), "{e}");
    trust(&certs_d, &host, &ca, "ca.crt");
    let o = with_certs_d(&env, &certs_d, &["push", "app:1", &dest]);
    assert!(o.status.success(), "push to a CA:TRUE leaf: {}", err(&o));
    let env3 = TestEnv::new();
    let o = with_certs_d(&env3, &certs_d, &["pull", &dest]);
    assert!(o.status.success(), "pull from a CA:TRUE leaf: {}", err(&o));
    drop(reg);
    // Signed by the same CA but for another IP and a DNS name: refused by name, in words.
    for (name, san) in [
        ("caleaf2", "IP:127.0.0.2"),
        ("caleaf3", "DNS:registry.example"),
    ] {
        let tls = ca_signed_leaf(d, "sca", name, san);
        let reg = registry_support::Registry::start_with_tls(tls, None);
        let host = reg.host();
        trust(&certs_d, &host, &ca, "ca.crt");
        let o = with_certs_d(
            &env,
            &certs_d,
            &["push", "app:1", &format!("{host}/tls15/app:5")],
        );
        assert!(!o.status.success(), "{san} accepted for {host}");
        let e = err(&o);
        assert!(e.contains("not valid for the name"), "{san}: {e}");
        assert!(
            !e.contains("Other(") && !e.contains("CaUsedAsEndEntity"),
            "{e}"
        );
        drop(reg);
    }
    // A CA:TRUE leaf from another CA with the same name is not let in by this one.
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "sca2.key",
            "-out",
            "sca2.crt",
            "-days",
            "2",
            "-subj",
            "/CN=server CA",
        ],
    );
    let tls = ca_signed_leaf(d, "sca2", "caleaf4", "IP:127.0.0.1");
    let reg = registry_support::Registry::start_with_tls(tls, None);
    let host = reg.host();
    trust(&certs_d, &host, &ca, "ca.crt");
    let o = with_certs_d(
        &env,
        &certs_d,
        &["push", "app:1", &format!("{host}/tls15/app:6")],
    );
    assert!(!o.status.success(), "a leaf of another CA was accepted");
    assert!(
        err(&o).contains("not signed by a trusted authority"),
        "{}",
        err(&o)
    );
    drop(reg);

    // Client certificates: certs.d/HOST:PORT/client.cert + client.key.
    let d = scratch.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "cca.key",
            "-out",
            "cca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=client CA",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/CN=berth client",
        ],
    );
    std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "cca.crt",
            "-CAkey",
            "cca.key",
            "-CAcreateserial",
            "-out",
            "client.cert",
            "-days",
            "2",
            "-extfile",
            "client.ext",
        ],
    );
    let tls = self_signed(d, "mtls", "IP:127.0.0.1");
    let cert = tls.cert.clone();
    let reg = registry_support::Registry::start_with_tls(tls, Some(&d.join("cca.crt")));
    let host = reg.host();
    trust(&certs_d, &host, &cert, "ca.crt");
    let o = with_certs_d(
        &env,
        &certs_d,
        &["push", "app:1", &format!("{host}/tls15/app:3")],
    );
    assert!(
        !o.status.success(),
        "a registry that wants a client certificate let us in"
    );
    trust(&certs_d, &host, &d.join("client.cert"), "client.cert");
    trust(&certs_d, &host, &d.join("client.key"), "client.key");
    let o = with_certs_d(
        &env,
        &certs_d,
        &["push", "app:1", &format!("{host}/tls15/app:3")],
    );
    assert!(
        o.status.success(),
        "push with a client certificate: {}",
        err(&o)
    );
}

// ---- 9. the image's root directory attributes -------------------------------------------------

/// Load an image made of `layers` (tars, bottom first) tagged `tag`.
fn load_layers(env: &TestEnv, tag: &str, layers: &[Vec<u8>]) {
    let ls: Vec<common::TestLayer> = layers
        .iter()
        .map(|t| common::TestLayer::new(t, common::Comp::None))
        .collect();
    let cfg = common::image_config(&ls, &["sh"], &[]);
    let p = env.path(&format!("{}.tar", tag.replace(':', "_")));
    common::write_docker_archive(&p, &cfg, &ls, &[tag]);
    env.ok(&["load", "-i", p.to_str().unwrap()]);
}

#[test]
fn the_image_root_directory_keeps_its_attributes() {
    let env = TestEnv::new();
    let busybox = common::busybox_rootfs();
    let root_555 = root_dir_tar(0o555, 1000, 1000, &[]);
    let root_710 = root_dir_tar(0o710, 0, 1000, &[("etc/top", b"top\n")]);
    let extra = {
        let mut t = common::TarBuilder::new();
        t.file("etc/extra", 0o644, b"x\n");
        t.finish()
    };
    // The root set by the bottom layer, under layers that do not set it.
    load_layers(
        &env,
        "root:555",
        &[root_555.clone(), busybox.clone(), extra.clone()],
    );
    // The root set by the top layer.
    load_layers(&env, "root:710", &[busybox.clone(), root_710]);
    // No layer sets it: Docker's default.
    load_layers(&env, "root:none", &[busybox.clone(), extra]);
    for (img, want) in [
        ("root:555", format!("555 1000 1000 {}", common::MTIME)),
        ("root:710", format!("710 0 1000 {}", common::MTIME)),
        ("root:none", "755 0 0".to_string()),
    ] {
        let o = env.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            img,
            "stat",
            "-c",
            "%a %u %g %Y",
            "/",
        ]);
        assert!(o.trim().starts_with(&want), "{img}: / is {o}");
        // Writing into the root (overlay copies it up) keeps the attributes too.
        let o = env.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-u",
            "0",
            img,
            "sh",
            "-c",
            "mkdir -p /newdir && touch /etc/new && stat -c '%a %u %g' /",
        ]);
        assert!(want.starts_with(o.trim()), "{img} after a write: / is {o}");
    }
    // A container started again keeps what it changed in its root (not the image's again).
    let id = env
        .ok(&[
            "create",
            "--network",
            "none",
            "root:555",
            "sh",
            "-c",
            "stat -c %a /; chmod 700 /",
        ])
        .trim()
        .to_string();
    assert_eq!(env.ok(&["start", "-a", &id]).trim(), "555");
    assert_eq!(env.ok(&["start", "-a", &id]).trim(), "700");
}

/// A layer tar whose first entry is the root directory `./` with these attributes.
fn root_dir_tar(mode: u32, uid: u64, gid: u64, files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..2].copy_from_slice(b"./");
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_mtime(common::MTIME);
    h.set_size(0);
    h.set_cksum();
    b.append(&h, std::io::empty()).unwrap();
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_mtime(common::MTIME);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, *data).unwrap();
    }
    b.into_inner().unwrap()
}

// ---- 7. a store on overlayfs ------------------------------------------------------------------

/// Removes the containers of a second store and unmounts what it mounted.
struct AltStore<'a> {
    env: &'a TestEnv,
    root: std::path::PathBuf,
}

impl AltStore<'_> {
    fn cmd(&self, args: &[&str]) -> std::process::Command {
        let mut c = self.env.cmd(args);
        c.env("BERTH_ROOT", &self.root).stdin(Stdio::null());
        c
    }
}

impl Drop for AltStore<'_> {
    fn drop(&mut self) {
        if let Ok(o) = self.cmd(&["ps", "-aq"]).output() {
            for id in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                let _ = self.cmd(&["rm", "-f", id]).output();
            }
        }
        common::wait_for_processes_using(&self.root);
        common::unmount_under(&self.env.dir);
    }
}

#[test]
fn a_store_on_overlayfs_works_or_says_what_to_do() {
    let env = TestEnv::new();
    let ovl = env.dir.join("ovl");
    for d in ["lower", "upper", "work", "merged"] {
        std::fs::create_dir_all(ovl.join(d)).unwrap();
    }
    let st = std::process::Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!(
            "lowerdir={},upperdir={},workdir={}",
            ovl.join("lower").display(),
            ovl.join("upper").display(),
            ovl.join("work").display()
        ))
        .arg(ovl.join("merged"))
        .status()
        .unwrap();
    assert!(st.success(), "cannot mount a test overlay");
    let alt = AltStore {
        env: &env,
        root: ovl.join("merged").join("store"),
    };
    std::fs::create_dir_all(&alt.root).unwrap();
    std::fs::copy(env.root.join("net.conf"), alt.root.join("net.conf")).unwrap();
    let archive = env.path("bb.tar");
    common::busybox_docker_archive(&archive, "ovl:1");
    let o = alt
        .cmd(&["load", "-i", archive.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "load: {}", err(&o));
    // Without fuse-overlayfs: a clear message saying what to do.
    let o = alt
        .cmd(&["run", "--rm", "--network", "none", "ovl:1", "true"])
        .env("BERTH_FUSE_OVERLAYFS", "")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = err(&o);
    assert!(e.contains("overlayfs") && e.contains("--root"), "{e}");
    assert!(!e.contains("os error 22"), "{e}");
    // With fuse-overlayfs (Podman's fallback), containers run.
    if std::path::Path::new("/usr/bin/fuse-overlayfs").exists() {
        let o = alt
            .cmd(&[
                "run",
                "--rm",
                "--network",
                "none",
                "ovl:1",
                "sh",
                "-c",
                "echo hi > /tmp/f && cat /tmp/f /etc/passwd",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "run with fuse-overlayfs: {}", err(&o));
        assert!(out(&o).starts_with("hi\nroot:"), "{}", out(&o));
    } else {
        eprintln!("fuse-overlayfs is not installed: the fallback is not tested");
    }
}
