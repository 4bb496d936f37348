//! Log drivers, rotation that `logs -f` follows, `--since/--until/--details`, the daemon-wide
//! default (root integration tests).

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

const NONE: &str = "--network=none";

fn wait_until(mut f: impl FnMut() -> bool, secs: u64) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Names and sizes of the log files of container `id`.
fn log_files(env: &TestEnv, id: &str) -> Vec<(String, u64)> {
    let dir = env.root.join("containers").join(id);
    let mut v: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().map(|m| m.len()).unwrap_or(0),
            )
        })
        .filter(|(n, _)| n.starts_with("ctr.log"))
        .collect();
    v.sort();
    v
}

const PRODUCER: &str = "i=0; while [ $i -lt 20000 ]; do \
    echo \"line $i ..................................................................\"; \
    i=$((i+1)); done; echo done; exec sleep 1000";

/// The numbers of the complete producer lines in `text` (a follower that falls behind a fast
/// rotation may lose whole files and end a cut line early).
fn numbers(text: &str) -> Vec<u64> {
    text.lines()
        .filter(|l| l.ends_with(&".".repeat(66)) && l.len() <= 90)
        .filter_map(|l| l.strip_prefix("line "))
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect()
}

#[test]
fn rotation_is_bounded_and_followed() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let id = env.ok(&[
        "run",
        "-d",
        NONE,
        "--log-opt",
        "max-size=100k",
        "--log-opt",
        "max-file=3",
        "bb",
        "sh",
        "-c",
        PRODUCER,
    ]);
    let id = id.trim().to_string();
    // A follower started while the log rotates underneath it.
    let mut follower = env
        .cmd(&["logs", "-f", &id])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = follower.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let done = line == "done";
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    });
    let mut max_files = 0;
    let finished = wait_until(
        || {
            let files = log_files(&env, &id);
            max_files = max_files.max(files.len());
            for (n, size) in &files {
                // max-size plus at most one buffered write.
                assert!(*size <= 100 * 1024 + 64 * 1024 + 4096, "{n}: {size} bytes");
            }
            env.ok(&["logs", "--tail", "1", &id]) == "done\n"
        },
        120,
    );
    assert!(finished, "the producer did not finish");
    assert!(max_files <= 3, "{max_files} log files");
    let names: Vec<String> = log_files(&env, &id).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, vec!["ctr.log", "ctr.log.1", "ctr.log.2"]);
    // `logs` shows what the kept files hold: consecutive lines up to the end.
    let all = env.ok(&["logs", &id]);
    let nums = numbers(&all);
    assert!(
        nums.windows(2).all(|w| w[1] == w[0] + 1),
        "gap in the kept log"
    );
    assert_eq!(nums.last(), Some(&19_999));
    assert!(nums[0] > 0, "nothing was rotated away");
    // The follower reached the end through every rotation, in order.
    let seen = reader.join().unwrap();
    let _ = follower.kill();
    let _ = follower.wait();
    assert_eq!(seen.last().map(String::as_str), Some("done"));
    let nums = numbers(&seen.join("\n"));
    let bad: Vec<&[u64]> = nums.windows(2).filter(|w| w[0] >= w[1]).take(5).collect();
    assert!(bad.is_empty(), "out of order: {bad:?}");
    assert_eq!(nums.last(), Some(&19_999));
    env.ok(&["rm", "-f", &id]);
}

#[test]
fn compress_local_none_and_daemon_default() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    let id = env.ok(&[
        "run",
        "-d",
        NONE,
        "--log-opt",
        "max-size=50k",
        "--log-opt",
        "max-file=2",
        "--log-opt",
        "compress=true",
        "bb",
        "sh",
        "-c",
        PRODUCER,
    ]);
    let id = id.trim().to_string();
    assert!(wait_until(
        || env.ok(&["logs", "--tail", "1", &id]) == "done\n",
        120
    ));
    assert!(
        wait_until(
            || log_files(&env, &id)
                .into_iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
                == vec!["ctr.log".to_string(), "ctr.log.1.gz".to_string()],
            30
        ),
        "{:?}",
        log_files(&env, &id)
    );
    let nums = numbers(&env.ok(&["logs", &id]));
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1));
    env.ok(&["rm", "-f", &id]);

    // local: bounded by default; inspect shows the driver.
    env.ok(&[
        "run",
        "--name",
        "loc",
        NONE,
        "--log-driver",
        "local",
        "bb",
        "echo",
        "hi",
    ]);
    assert_eq!(env.ok(&["logs", "loc"]), "hi\n");
    let lc = env.ok(&[
        "inspect",
        "--format",
        "{{.HostConfig.LogConfig.Type}}",
        "loc",
    ]);
    assert_eq!(lc, "local\n");

    // none: nothing kept, logs says why.
    env.ok(&[
        "run",
        "--name",
        "quiet",
        NONE,
        "--log-driver",
        "none",
        "bb",
        "echo",
        "hi",
    ]);
    let (_, msg) = env.fails(&["logs", "quiet"]);
    assert!(msg.contains("does not support reading"), "{msg}");
    // journald is refused clearly where the host does not run it.
    if !std::path::Path::new("/run/systemd/journal/socket").exists() {
        let (code, msg) = env.fails(&[
            "run",
            "--rm",
            NONE,
            "--log-driver",
            "journald",
            "bb",
            "true",
        ]);
        assert_eq!(code, 125);
        assert!(msg.contains("journald"), "{msg}");
    }
    let (_, msg) = env.fails(&["run", "--rm", NONE, "--log-opt", "max-file=3", "bb", "true"]);
    assert!(msg.contains("max-size"), "{msg}");
    env.fails(&["run", "--rm", NONE, "--log-driver", "syslog", "bb", "true"]);

    // The daemon-wide default from daemon.json.
    std::fs::write(env.root.join("daemon.json"), r#"{"log-driver": "none"}"#).unwrap();
    env.ok(&["run", "--name", "dflt", NONE, "bb", "echo", "hi"]);
    assert_eq!(
        env.ok(&[
            "inspect",
            "--format",
            "{{.HostConfig.LogConfig.Type}}",
            "dflt"
        ]),
        "none\n"
    );
    std::fs::remove_file(env.root.join("daemon.json")).unwrap();
}

#[test]
fn since_until_details() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    env.ok(&[
        "run",
        "--name",
        "t",
        NONE,
        "bb",
        "sh",
        "-c",
        "echo first; sleep 2; echo second",
    ]);
    let ts = env.ok(&["logs", "-t", "t"]);
    let times: Vec<&str> = ts.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(times.len(), 2, "{ts}");
    let t1 = chrono::DateTime::parse_from_rfc3339(times[0]).unwrap();
    let mid = (t1 + chrono::Duration::seconds(1)).to_rfc3339();
    assert_eq!(env.ok(&["logs", "--since", &mid, "t"]), "second\n");
    assert_eq!(env.ok(&["logs", "--until", &mid, "t"]), "first\n");
    assert_eq!(env.ok(&["logs", "--since", "1h", "t"]), "first\nsecond\n");
    assert_eq!(env.ok(&["logs", "--details", "t"]), " first\n second\n");
    let (code, msg) = env.fails(&["logs", "--since", "yesterday", "t"]);
    assert_eq!(code, 1);
    assert!(msg.contains("--since"), "{msg}");
}

/// Fields of one native-protocol journal datagram (`KEY=value` lines and binary fields).
fn journal_fields(d: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < d.len() {
        let end = d[i..]
            .iter()
            .position(|b| *b == b'\n' || *b == b'=')
            .unwrap()
            + i;
        let key = String::from_utf8_lossy(&d[i..end]).into_owned();
        if d[end] == b'=' {
            let nl = d[end..].iter().position(|b| *b == b'\n').unwrap() + end;
            out.push((key, String::from_utf8_lossy(&d[end + 1..nl]).into_owned()));
            i = nl + 1;
        } else {
            let len = usize::try_from(u64::from_le_bytes(d[end + 1..end + 9].try_into().unwrap()))
                .unwrap();
            out.push((
                key,
                String::from_utf8_lossy(&d[end + 9..end + 9 + len]).into_owned(),
            ));
            i = end + 9 + len + 1;
        }
    }
    out
}

#[test]
fn journald_entries_with_container_fields() {
    let env = TestEnv::new();
    env.busybox_image("bb");
    // A stand-in journal: a datagram socket at a path berth is pointed to.
    let sock = env.path("journal.sock");
    let server = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let o = env
        .cmd(&[
            "run",
            "--name",
            "jd",
            NONE,
            "--log-driver",
            "journald",
            "--log-opt",
            "tag=app-{{.Name}}",
            "bb",
            "sh",
            "-c",
            "echo first; echo second >&2",
        ])
        .env("BERTH_JOURNALD_SOCKET", &sock)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let id = env
        .ok(&["inspect", "-f", "{{.Id}}", "jd"])
        .trim()
        .to_string();
    let mut buf = vec![0u8; 65536];
    let mut entries = Vec::new();
    for _ in 0..2 {
        let n = server.recv(&mut buf).expect("no journal entry arrived");
        entries.push(journal_fields(&buf[..n]));
    }
    let get = |e: &Vec<(String, String)>, k: &str| {
        e.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    entries.sort_by_key(|e| get(e, "MESSAGE"));
    assert_eq!(get(&entries[0], "MESSAGE"), "first");
    assert_eq!(get(&entries[0], "PRIORITY"), "6");
    assert_eq!(get(&entries[1], "MESSAGE"), "second");
    assert_eq!(get(&entries[1], "PRIORITY"), "3");
    for e in &entries {
        assert_eq!(get(e, "CONTAINER_ID"), id[..12]);
        assert_eq!(get(e, "CONTAINER_ID_FULL"), id);
        assert_eq!(get(e, "CONTAINER_NAME"), "jd");
        assert_eq!(get(e, "CONTAINER_TAG"), "app-jd");
        assert_eq!(get(e, "SYSLOG_IDENTIFIER"), "app-jd");
    }
    // The local copy (Docker's dual logging) keeps `logs` working.
    let o = env.berth(&["logs", "jd"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "first\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "second\n");
    // Without a journal socket the driver is refused before anything is created.
    let o = env
        .cmd(&[
            "run",
            "--rm",
            NONE,
            "--log-driver",
            "journald",
            "bb",
            "true",
        ])
        .env("BERTH_JOURNALD_SOCKET", env.path("missing.sock"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs systemd-journald"));
    env.ok(&["rm", "jd"]);
}
