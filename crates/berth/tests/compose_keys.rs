//! `berth compose` with the engine's features (root): named and anonymous volumes across
//! `down`/`up` and `down -v`, health checks with `depends_on: service_healthy` and
//! `up --wait`, and the service keys mapped onto the engine (capabilities, limits, mounts,
//! user, logging, …).

mod common;
#[path = "common/compose.rs"]
mod composeutil;
#[path = "common/net.rs"]
mod net;

use std::path::Path;
use std::process::Stdio;

use common::TestEnv;
use composeutil::{compose, compose_ok, project};
use net::{is_root, load_image, NetEnv};

const IMG: &str = "composekeys/bb:1";

macro_rules! setup {
    ($env:ident, $net:ident) => {
        if !is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let $env = TestEnv::new();
        let $net = NetEnv::new(&$env);
        if !load_image(&$env, IMG, &[]) {
            return;
        }
    };
}

fn exec(env: &TestEnv, dir: &Path, service: &str, script: &str) -> String {
    compose_ok(env, dir, &["exec", "-T", service, "sh", "-c", script])
        .trim()
        .to_string()
}

fn inspect(env: &TestEnv, name: &str, field: &str) -> String {
    env.ok(&[
        "inspect",
        "--format",
        &format!("{{{{json {field}}}}}"),
        name,
    ])
    .trim()
    .to_string()
}

fn volumes(env: &TestEnv) -> Vec<String> {
    env.ok(&["volume", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .collect()
}

const VOLS: &str = r#"
services:
  db:
    image: composekeys/bb:1
    command: ["sleep", "1000"]
    stop_grace_period: 1s
    volumes:
      - data:/data
      - /scratch
      - type: volume
        source: other
        target: /other
        read_only: true
volumes:
  data:
    labels:
      owner: test
  other:
    name: vols-explicit
"#;

#[test]
fn volumes_persist_across_down_and_up_and_down_v_removes_them() {
    setup!(env, net);
    let dir = project(&env, "vols", VOLS);
    let out = compose(&env, &dir, &["up", "-d"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Volume vols_data  Created"), "{err}");
    assert!(err.contains("Volume vols-explicit  Created"), "{err}");
    exec(
        &env,
        &dir,
        "db",
        "echo kept > /data/f; echo anon > /scratch/f",
    );
    assert!(
        compose(&env, &dir, &["exec", "-T", "db", "touch", "/other/x"])
            .status
            .code()
            .is_some_and(|c| c != 0)
    );

    // Compose's labels on the volume, as Docker compose writes them.
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["volume", "inspect", "vols_data"])).unwrap();
    let labels = &v[0]["Labels"];
    assert_eq!(labels["com.docker.compose.project"], "vols", "{v}");
    assert_eq!(labels["com.docker.compose.volume"], "data", "{v}");
    assert_eq!(labels["owner"], "test", "{v}");
    let n: serde_json::Value =
        serde_json::from_str(&env.ok(&["network", "inspect", "vols_default"])).unwrap();
    assert_eq!(n[0]["Labels"]["com.docker.compose.project"], "vols", "{n}");
    assert_eq!(
        n[0]["Labels"]["com.docker.compose.network"], "default",
        "{n}"
    );

    // Recreating the container (changed config) keeps both the named and the anonymous data.
    std::fs::write(
        dir.join("compose.yaml"),
        VOLS.replace("stop_grace_period: 1s", "stop_grace_period: 2s"),
    )
    .unwrap();
    let first = inspect(&env, "vols-db-1", ".Id");
    compose_ok(&env, &dir, &["up", "-d"]);
    assert_ne!(inspect(&env, "vols-db-1", ".Id"), first);
    assert_eq!(
        exec(&env, &dir, "db", "cat /data/f /scratch/f"),
        "kept\nanon"
    );

    // down keeps volumes; up finds the named one again.
    compose_ok(&env, &dir, &["down"]);
    let vs = volumes(&env);
    assert!(vs.contains(&"vols_data".to_string()), "{vs:?}");
    compose_ok(&env, &dir, &["up", "-d"]);
    assert_eq!(exec(&env, &dir, "db", "cat /data/f"), "kept");

    // down -v removes the project's named volumes and the containers' anonymous ones.
    let out = compose(&env, &dir, &["down", "-v"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Volume vols_data  Removed"), "{err}");
    let left = volumes(&env);
    // The anonymous volume of the first `up` (not recreated by the second) may remain, as
    // with Docker compose: down without -v leaves anonymous volumes.
    assert!(
        !left
            .iter()
            .any(|v| v == "vols_data" || v == "vols-explicit"),
        "{left:?}"
    );
    env.ok(&["volume", "prune", "-f"]);
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

#[test]
fn external_volume_must_exist() {
    setup!(env, net);
    let dir = project(
        &env,
        "extvol",
        "services:\n  a:\n    image: composekeys/bb:1\n    command: [\"sleep\", \"1000\"]\n    volumes: [\"ext:/e\"]\nvolumes:\n  ext:\n    external: true\n    name: extvol-outside\n",
    );
    let out = compose(&env, &dir, &["up", "-d"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("external volume \"extvol-outside\" not found"),
        "{err}"
    );
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    env.ok(&["volume", "create", "extvol-outside"]);
    compose_ok(&env, &dir, &["up", "-d"]);
    compose_ok(&env, &dir, &["down", "-v", "-t", "0"]);
    // External volumes are not the project's: down -v keeps them.
    assert!(volumes(&env).contains(&"extvol-outside".to_string()));
    env.ok(&["volume", "rm", "extvol-outside"]);
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

const HEALTHY: &str = r#"
services:
  db:
    image: composekeys/bb:1
    command: ["sh", "-c", "sleep 2; touch /tmp/ready; exec sleep 1000"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ready"]
      interval: 300ms
      retries: 50
  app:
    image: composekeys/bb:1
    command: ["sleep", "1000"]
    stop_grace_period: 1s
    depends_on:
      db:
        condition: service_healthy
"#;

#[test]
fn service_healthy_waits_and_ps_shows_health() {
    setup!(env, net);
    let dir = project(&env, "hc", HEALTHY);
    compose_ok(&env, &dir, &["up", "-d"]);
    // app was started only once db was healthy: db is healthy now, and app started after.
    assert_eq!(
        inspect(&env, "hc-db-1", ".State.Health.Status"),
        "\"healthy\""
    );
    let db_healthy_at: serde_json::Value =
        serde_json::from_str(&inspect(&env, "hc-db-1", ".State.Health.Log")).unwrap();
    let app_started: String =
        serde_json::from_str(&inspect(&env, "hc-app-1", ".State.StartedAt")).unwrap();
    let healthy_end = db_healthy_at
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ExitCode"] == 0)
        .map(|r| r["End"].as_str().unwrap().to_string())
        .unwrap();
    let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap();
    assert!(
        t(&app_started) >= t(&healthy_end),
        "app started {app_started}, db healthy {healthy_end}"
    );
    let ps = compose_ok(&env, &dir, &["ps"]);
    assert!(
        ps.lines()
            .any(|l| l.contains("hc-db-1") && l.contains("(healthy)")),
        "{ps}"
    );
    // One object per line with docker compose v2's fields (docker ps's row and the service's).
    let text = compose_ok(&env, &dir, &["ps", "--format", "json"]);
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2, "{text}");
    let db = rows
        .iter()
        .find(|c| c["Service"] == "db")
        .unwrap_or_else(|| panic!("{text}"));
    assert_eq!(db["Health"], "healthy", "{text}");
    assert_eq!(db["Name"], "hc-db-1");
    assert_eq!(db["Names"], "hc-db-1");
    assert_eq!(db["Project"], "hc");
    assert_eq!(db["ID"].as_str().unwrap().len(), 12);
    assert_eq!(db["Size"], "0B");
    assert!(db["Command"].as_str().unwrap().starts_with('"'), "{text}");
    assert!(db["Labels"]
        .as_str()
        .unwrap()
        .contains("com.docker.compose.service=db"));
    assert!(
        db["Publishers"].is_array() && db["RunningFor"].is_string(),
        "{text}"
    );
    // --wait: returns once everything runs and is healthy.
    compose_ok(&env, &dir, &["up", "-d", "--wait", "--wait-timeout", "60"]);
    compose_ok(&env, &dir, &["down", "-t", "0"]);

    // An unhealthy dependency fails `up`, and the dependent is not started.
    let bad = HEALTHY.replace("\"test\", \"-f\", \"/tmp/ready\"", "\"false\"");
    let bad = bad.replace("retries: 50", "retries: 1");
    let dir = project(&env, "hcbad", &bad);
    let out = compose(&env, &dir, &["up", "-d"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("dependency failed to start: container hcbad-db-1 is unhealthy"),
        "{err}"
    );
    let ps = compose_ok(&env, &dir, &["ps", "-a"]);
    assert!(
        !ps.contains("hcbad-app-1 ") || !ps.contains("running"),
        "{ps}"
    );
    // --wait fails on the unhealthy container too.
    let out = compose(&env, &dir, &["up", "-d", "--wait", "--no-deps", "db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is unhealthy"));
    compose_ok(&env, &dir, &["down", "-t", "0"]);
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

const KEYS: &str = r#"
services:
  k:
    image: composekeys/bb:1
    entrypoint: ["sh", "-c"]
    command: ["exec sleep 1000"]
    cap_drop: [ALL]
    cap_add: [NET_ADMIN]
    security_opt: [no-new-privileges]
    read_only: true
    tmpfs: [/scratch]
    working_dir: /scratch
    init: true
    ulimits:
      nofile: {soft: 1000, hard: 2000}
    sysctls:
      net.core.somaxconn: "1024"
    shm_size: 16m
    devices: ["/dev/null:/dev/mynull"]
    extra_hosts: ["myhost:10.1.2.3"]
    labels:
      tier: keys
    stop_signal: SIGINT
    stop_grace_period: 3s
    logging:
      driver: json-file
      options:
        max-size: 1k
        max-file: "2"
  u:
    image: composekeys/bb:1
    command: ["sleep", "1000"]
    user: "1000"
    group_add: ["1234"]
    network_mode: none
    dns: [10.9.9.9]
    stop_grace_period: 1s
"#;

#[test]
fn service_keys_reach_the_container() {
    setup!(env, net);
    let dir = project(&env, "keys", KEYS);
    compose_ok(&env, &dir, &["up", "-d"]);
    let status = exec(
        &env,
        &dir,
        "k",
        "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status",
    );
    assert!(status.contains("CapEff:\t0000000000001000"), "{status}");
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert_eq!(
        exec(&env, &dir, "k", "pwd; touch /scratch/x && echo ok"),
        "/scratch\nok"
    );
    assert!(compose(&env, &dir, &["exec", "-T", "k", "touch", "/x"])
        .status
        .code()
        .is_some_and(|c| c != 0));
    assert_eq!(exec(&env, &dir, "k", "ulimit -n"), "1000");
    assert_eq!(
        exec(&env, &dir, "k", "cat /proc/sys/net/core/somaxconn"),
        "1024"
    );
    assert_eq!(
        exec(
            &env,
            &dir,
            "k",
            "df -k /dev/shm | tail -1 | awk '{print $2}'"
        ),
        "16384"
    );
    assert_eq!(
        exec(&env, &dir, "k", "test -c /dev/mynull && echo dev"),
        "dev"
    );
    assert!(exec(&env, &dir, "k", "cat /etc/hosts").contains("10.1.2.3\tmyhost"));
    // Without a project network (whose resolver answers at the gateway), the service's
    // servers are in resolv.conf.
    let rc = exec(&env, &dir, "u", "cat /etc/resolv.conf");
    assert!(rc.contains("nameserver 10.9.9.9"), "{rc}");
    // init: the service's command is not PID 1.
    assert_ne!(exec(&env, &dir, "k", "cat /proc/1/comm"), "sleep");
    assert_eq!(inspect(&env, "keys-k-1", ".Config.Labels.tier"), "\"keys\"");
    assert_eq!(
        inspect(&env, "keys-k-1", ".Config.StopSignal"),
        "\"SIGINT\""
    );
    assert_eq!(inspect(&env, "keys-k-1", ".HostConfig.Init"), "true");
    let lc: serde_json::Value =
        serde_json::from_str(&inspect(&env, "keys-k-1", ".HostConfig.LogConfig")).unwrap();
    assert_eq!(lc["Type"], "json-file");
    assert_eq!(lc["Config"]["max-size"], "1k");
    let ids = exec(&env, &dir, "u", "id -u; id -G");
    assert!(ids.starts_with("1000\n"), "{ids}");
    assert!(ids.contains("1234"), "{ids}");
    compose_ok(&env, &dir, &["down", "-t", "0"]);
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

const LIMITS: &str = r#"
services:
  r:
    image: composekeys/bb:1
    command: ["sh", "-c", "echo shared > /data/f; exec sleep 1000"]
    stop_grace_period: 1s
    mem_limit: 64m
    cpus: 0.5
    pids_limit: 100
    cpu_shares: 512
    oom_score_adj: 200
    volumes:
      - /data
  s:
    image: composekeys/bb:1
    command: ["sleep", "1000"]
    stop_grace_period: 1s
    volumes_from:
      - r:ro
    pid: "service:r"
"#;

#[test]
fn resource_keys_reach_the_container() {
    setup!(env, net);
    let dir = project(&env, "lim", LIMITS);
    compose_ok(&env, &dir, &["up", "-d"]);
    assert_eq!(inspect(&env, "lim-r-1", ".HostConfig.Memory"), "67108864");
    assert_eq!(
        inspect(&env, "lim-r-1", ".HostConfig.NanoCpus"),
        "500000000"
    );
    assert_eq!(inspect(&env, "lim-r-1", ".HostConfig.PidsLimit"), "100");
    assert_eq!(inspect(&env, "lim-r-1", ".HostConfig.CpuShares"), "512");
    assert_eq!(inspect(&env, "lim-r-1", ".HostConfig.OomScoreAdj"), "200");
    assert_eq!(exec(&env, &dir, "r", "cat /proc/self/oom_score_adj"), "200");
    // volumes_from: r's anonymous volume, read-only; pid: service:r shares its processes.
    assert_eq!(exec(&env, &dir, "s", "cat /data/f"), "shared");
    assert!(
        compose(&env, &dir, &["exec", "-T", "s", "touch", "/data/x"])
            .status
            .code()
            .is_some_and(|c| c != 0)
    );
    // Both services' sleeps are visible in s (its own alone without the shared namespace).
    let n = exec(
        &env,
        &dir,
        "s",
        "grep -l 'slee[p]' /proc/[0-9]*/cmdline | wc -l",
    );
    assert_eq!(n, "2", "{n}");
    assert!(inspect(&env, "lim-s-1", ".HostConfig.PidMode").starts_with("\"container:"));
    compose_ok(&env, &dir, &["down", "-t", "0", "-v"]);
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    assert!(volumes(&env).is_empty());
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

#[test]
fn bad_values_name_file_line_service_and_key_and_create_nothing() {
    setup!(env, net);
    let before = env.ok(&["network", "ls"]);
    let cases = [
        (
            "badmount",
            "services:\n  web:\n    image: composekeys/bb:1\n    volumes:\n      - {type: npipe, source: x, target: /x}\n",
            "compose.yaml:5: services.web.volumes[0]: mount type npipe is not supported",
        ),
        (
            "badlog",
            "services:\n  web:\n    image: composekeys/bb:1\n    logging: {driver: fluentd-nope}\n",
            "compose.yaml:4: services.web.logging: ",
        ),
        (
            "badcap",
            "services:\n  web:\n    image: composekeys/bb:1\n    cap_add: [NOT_A_CAP]\n",
            "compose.yaml:4: services.web.cap_add[0]: unknown capability \"NOT_A_CAP\"",
        ),
        (
            "badhc",
            "services:\n  web:\n    image: composekeys/bb:1\n    healthcheck: {interval: 5s}\n",
            "compose.yaml:4: services.web.healthcheck: no test",
        ),
        (
            "badns",
            "services:\n  web:\n    image: composekeys/bb:1\n    userns_mode: \"remap\"\n",
            "compose.yaml:4: services.web.userns_mode: \"remap\" is not supported",
        ),
        (
            "badcg",
            "services:\n  web:\n    image: composekeys/bb:1\n    cgroup_parent: mine\n",
            "compose.yaml:4: services.web.cgroup_parent: is not supported",
        ),
        (
            "badblk",
            "services:\n  web:\n    image: composekeys/bb:1\n    blkio_config:\n      device_read_bps:\n        - {path: /dev/null, rate: 1mb}\n",
            "compose.yaml:5: services.web.blkio_config.device_read_bps: invalid blkio_config.device_read_bps \"/dev/null:1048576\": /dev/null is not a block device",
        ),
        (
            "badcpu",
            "services:\n  web:\n    image: composekeys/bb:1\n    cpus: 1\n    cpu_quota: 50000\n",
            "compose.yaml:4: services.web.cpus: conflicting options: cpus cannot be used with cpu_period or cpu_quota",
        ),
        (
            "badwd",
            "services:\n  web:\n    image: composekeys/bb:1\n    working_dir: relative\n",
            "compose.yaml:4: services.web.working_dir: the working directory 'relative' is invalid, it needs to be an absolute path",
        ),
        (
            "baddns",
            "services:\n  web:\n    image: composekeys/bb:1\n    dns:\n      - notanip\n",
            "compose.yaml:5: services.web.dns[0]: invalid DNS server address \"notanip\"",
        ),
    ];
    for (name, yaml, want) in cases {
        let dir = project(&env, name, yaml);
        let out = compose(&env, &dir, &["up", "-d"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
        assert_eq!(env.ok(&["ps", "-aq"]).trim(), "", "{name}");
        assert_eq!(env.ok(&["network", "ls"]), before, "{name}");
        assert!(volumes(&env).is_empty(), "{name}");
    }
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

/// A whole-disk block device of this machine: its /dev path and MAJOR:MINOR.
fn block_device() -> Option<(String, String)> {
    for name in ["vda", "sda", "nvme0n1", "xvda", "hda"] {
        let dev = format!("/dev/{name}");
        if let Ok(mm) = std::fs::read_to_string(format!("/sys/block/{name}/dev")) {
            if Path::new(&dev).exists() {
                return Some((dev, mm.trim().to_string()));
            }
        }
    }
    None
}

#[test]
fn blkio_device_throttles_reach_the_cgroup() {
    let Some((dev, mm)) = block_device() else {
        eprintln!("skipped: no block device");
        return;
    };
    setup!(env, net);
    let yaml = format!(
        "services:\n  t:\n    image: composekeys/bb:1\n    command: [sleep, '1000']\n    network_mode: none\n    blkio_config:\n      device_read_bps:\n        - {{path: {dev}, rate: 1mb}}\n      device_write_bps:\n        - {{path: {dev}, rate: '2097152'}}\n      device_read_iops:\n        - {{path: {dev}, rate: 100}}\n      device_write_iops:\n        - {{path: {dev}, rate: '200'}}\n"
    );
    let dir = project(&env, "blk", &yaml);
    compose_ok(&env, &dir, &["up", "-d"]);
    for (field, want) in [
        (".HostConfig.BlkioDeviceReadBps", 1_048_576),
        (".HostConfig.BlkioDeviceWriteBps", 2_097_152),
        (".HostConfig.BlkioDeviceReadIOps", 100),
        (".HostConfig.BlkioDeviceWriteIOps", 200),
    ] {
        let s = inspect(&env, "blk-t-1", field);
        assert_eq!(
            s,
            format!("[{{\"Path\":\"{dev}\",\"Rate\":{want}}}]"),
            "{field}"
        );
    }
    let pid = inspect(&env, "blk-t-1", ".State.Pid");
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let path = cg.lines().find_map(|l| l.strip_prefix("0::")).unwrap();
        let io = std::fs::read_to_string(format!("/sys/fs/cgroup{path}/io.max")).unwrap();
        let line = io
            .lines()
            .find(|l| l.starts_with(&format!("{mm} ")))
            .unwrap_or("");
        for want in ["rbps=1048576", "wbps=2097152", "riops=100", "wiops=200"] {
            assert!(line.split_whitespace().any(|w| w == want), "{want}: {io}");
        }
    } else {
        let path = cg
            .lines()
            .find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, c, p) = (f.next(), f.next()?, f.next()?);
                c.split(',').any(|c| c == "blkio").then(|| p.to_string())
            })
            .unwrap();
        for (file, want) in [
            ("blkio.throttle.read_bps_device", "1048576"),
            ("blkio.throttle.write_bps_device", "2097152"),
            ("blkio.throttle.read_iops_device", "100"),
            ("blkio.throttle.write_iops_device", "200"),
        ] {
            let s = std::fs::read_to_string(format!("/sys/fs/cgroup/blkio{path}/{file}")).unwrap();
            assert!(
                s.lines().any(|l| l == format!("{mm} {want}")),
                "{file}: {s}"
            );
        }
    }
    compose_ok(&env, &dir, &["down", "-t", "0"]);
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

const ROLLING: &str = r#"
services:
  web:
    image: composekeys/bb:1
    command: ["sh", "-c", "echo $$VERSION > /tmp/v; exec httpd -f -p 80 -h /tmp"]
    stop_grace_period: 1s
    environment:
      VERSION: ${VERSION:-one}
    deploy:
      replicas: 2
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/v"]
      interval: 200ms
  other:
    image: composekeys/bb:1
    command: ["sleep", "1000"]
    stop_grace_period: 1s
"#;

fn up_with_version(env: &TestEnv, dir: &Path, version: &str) -> String {
    let out = env
        .cmd(&["compose", "up", "-d"])
        .current_dir(dir)
        .env("VERSION", version)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

#[test]
fn rolling_replacement_starts_the_new_replica_before_stopping_the_old() {
    setup!(env, net);
    let dir = project(&env, "roll", ROLLING);
    up_with_version(&env, &dir, "one");
    let other = inspect(&env, "roll-other-1", ".Id");
    let old = compose_ok(&env, &dir, &["ps", "-q", "web"]);
    assert_eq!(old.lines().count(), 2, "{old}");

    // A changed environment: each replica is replaced by a new, healthy one first.
    let err = up_with_version(&env, &dir, "two");
    let pos = |needle: &str| {
        err.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in {err}"))
    };
    assert!(
        pos("Container roll-web-3  Healthy") < pos("Container roll-web-1  Replaced"),
        "{err}"
    );
    assert!(
        pos("Container roll-web-1  Replaced") < pos("Container roll-web-4  Started"),
        "{err}"
    );
    assert!(
        pos("Container roll-web-4  Healthy") < pos("Container roll-web-2  Replaced"),
        "{err}"
    );
    let new = compose_ok(&env, &dir, &["ps", "-q", "web"]);
    assert_eq!(new.lines().count(), 2, "{new}");
    assert!(new.lines().all(|id| !old.contains(id)), "{old} {new}");
    for n in ["roll-web-3", "roll-web-4"] {
        let v = env.ok(&["exec", n, "cat", "/tmp/v"]);
        assert_eq!(v.trim(), "two", "{n}");
    }
    // The unchanged service kept its container.
    assert_eq!(inspect(&env, "roll-other-1", ".Id"), other);

    // Nothing changed: nothing replaced, the replicas keep their numbers.
    let err = up_with_version(&env, &dir, "two");
    assert!(
        !err.contains("Replaced") && !err.contains("Created"),
        "{err}"
    );
    assert_eq!(compose_ok(&env, &dir, &["ps", "-q", "web"]), new);

    // Scaling down keeps the lowest numbers.
    let out = env
        .cmd(&["compose", "up", "-d", "--scale", "web=1"])
        .current_dir(&dir)
        .env("VERSION", "two")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let ps = compose_ok(&env, &dir, &["ps"]);
    assert!(
        ps.contains("roll-web-3") && !ps.contains("roll-web-4"),
        "{ps}"
    );
    compose_ok(&env, &dir, &["down", "-t", "0"]);
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

#[test]
fn top_pause_unpause() {
    setup!(env, net);
    let dir = project(
        &env,
        "tp",
        "services:\n  a:\n    image: composekeys/bb:1\n    command: [\"sleep\", \"1001\"]\n    stop_grace_period: 1s\n",
    );
    compose_ok(&env, &dir, &["up", "-d"]);
    let top = compose_ok(&env, &dir, &["top"]);
    assert!(top.starts_with("tp-a-1\n"), "{top}");
    assert!(top.contains("PID") && top.contains("sleep 1001"), "{top}");
    compose_ok(&env, &dir, &["pause"]);
    assert_eq!(inspect(&env, "tp-a-1", ".State.Paused"), "true");
    compose_ok(&env, &dir, &["unpause"]);
    assert_eq!(inspect(&env, "tp-a-1", ".State.Paused"), "false");
    compose_ok(&env, &dir, &["down", "-t", "0"]);
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

const UNHEALTHY: &str = r#"
services:
  kept:
    image: composekeys/bb:1
    command: ["sh", "-c", "touch /tmp/ok; exec sleep 1002"]
    restart: on-failure
    stop_grace_period: 1s
    healthcheck: &hc
      test: ["CMD", "test", "-f", "/tmp/ok"]
      interval: 300ms
      retries: 1
  left:
    image: composekeys/bb:1
    command: ["sh", "-c", "touch /tmp/ok; exec sleep 1003"]
    stop_grace_period: 1s
    healthcheck: *hc
"#;

/// Polls `inspect` until `field` of `name` equals `want` (bounded: 30 s).
fn wait_inspect(env: &TestEnv, name: &str, field: &str, want: &str) {
    let mut last = String::new();
    for _ in 0..300 {
        last = inspect(env, name, field);
        if last == want {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{name} {field}: {last}, want {want}");
}

#[test]
fn a_container_turning_unhealthy_is_restarted_when_its_policy_allows() {
    setup!(env, net);
    let dir = project(&env, "uh", UNHEALTHY);
    compose_ok(&env, &dir, &["up", "-d", "--wait"]);
    let started = inspect(&env, "uh-kept-1", ".State.StartedAt");
    // The probes start failing in both; only the one with a restart policy is restarted.
    exec(&env, &dir, "kept", "rm /tmp/ok");
    exec(&env, &dir, "left", "rm /tmp/ok");
    wait_inspect(&env, "uh-kept-1", ".RestartCount", "1");
    wait_inspect(&env, "uh-kept-1", ".State.Health.Status", "\"healthy\"");
    assert_ne!(inspect(&env, "uh-kept-1", ".State.StartedAt"), started);
    wait_inspect(&env, "uh-left-1", ".State.Health.Status", "\"unhealthy\"");
    assert_eq!(inspect(&env, "uh-left-1", ".State.Status"), "\"running\"");
    assert_eq!(inspect(&env, "uh-left-1", ".RestartCount"), "0");
    // Docker-style events: the health change, the kill, the exit, the new start.
    let ev = env.ok(&[
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--filter",
        "container=uh-kept-1",
        "--format",
        "{{.Action}}",
    ]);
    let got: Vec<&str> = ev.lines().collect();
    let after = |w: &str, from: usize| {
        got[from..]
            .iter()
            .position(|l| *l == w)
            .map(|p| p + from)
            .unwrap_or_else(|| panic!("{w} missing after {from}: {got:?}"))
    };
    let unhealthy = after("health_status: unhealthy", 0);
    let kill = after("kill", unhealthy);
    let die = after("die", kill);
    let start = after("start", die);
    after("health_status: healthy", start);
    compose_ok(&env, &dir, &["down", "-t", "0"]);
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}

const ROLLING_PORT: &str = r#"
services:
  web:
    image: composekeys/bb:1
    command: ["sh", "-c", "mkdir -p /www; echo $$VERSION > /www/index.html; exec httpd -f -p 80 -h /www"]
    stop_grace_period: 1s
    environment:
      VERSION: ${VERSION:-one}
    ports:
      - "${PORT}:80"
    deploy:
      replicas: 2
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 200ms
"#;

/// One `curl -m 5` of `http://127.0.0.1:PORT/`: the body on success.
fn curl(port: u16) -> Option<String> {
    let out = std::process::Command::new("curl")
        .args(["-sf", "-m", "5", &format!("http://127.0.0.1:{port}/")])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn rolling_update_on_a_shared_published_port_loses_no_request() {
    setup!(env, net);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = project(&env, "zero", ROLLING_PORT);
    let up = |version: &str| {
        let out = env
            .cmd(&["compose", "up", "-d", "--wait"])
            .current_dir(&dir)
            .env("VERSION", version)
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        err
    };
    up("one");
    // Both replicas publish the same host port; the page answers once they are healthy.
    let ps = compose_ok(&env, &dir, &["ps", "-q", "web"]);
    assert_eq!(ps.lines().count(), 2, "{ps}");
    assert_eq!(curl(port).as_deref(), Some("one"));

    // A bounded request loop on loopback while the service is replaced replica by replica.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed, mut seen) =
                (0u32, Vec::new(), std::collections::BTreeSet::new());
            for i in 0..5000 {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                match curl(port) {
                    Some(body) => {
                        ok += 1;
                        seen.insert(body);
                    }
                    None => failed.push(i),
                }
            }
            (ok, failed, seen)
        })
    };
    let err = up("two");
    assert!(err.contains("Replaced"), "{err}");
    // A few more requests after the update, then stop the loop.
    std::thread::sleep(std::time::Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, failed, seen) = loader.join().unwrap();
    eprintln!("{ok} requests answered during the update");
    assert_eq!(
        failed,
        Vec::<u32>::new(),
        "failed requests ({ok} good): {err}"
    );
    assert!(ok > 10, "only {ok} requests");
    assert!(seen.contains("one") && seen.contains("two"), "{seen:?}");
    assert_eq!(curl(port).as_deref(), Some("two"));
    let new = compose_ok(&env, &dir, &["ps", "-q", "web"]);
    assert_eq!(new.lines().count(), 2, "{new}");
    assert!(new.lines().all(|id| !ps.contains(id)), "{ps} {new}");

    compose_ok(&env, &dir, &["down", "-t", "0"]);
    assert_eq!(env.ok(&["ps", "-aq"]).trim(), "");
    assert_eq!(curl(port), None);
    net.cleanup();
    assert_eq!(net.leftovers(), Vec::<String>::new());
}
