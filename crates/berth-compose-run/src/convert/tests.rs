//! Unit tests of the service conversion.

use super::*;

fn project(yaml: &str) -> Project {
    let d = std::env::temp_dir().join(format!(
        "berth-compose-run-unit-{}-{}",
        std::process::id(),
        yaml.len()
    ));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("compose.yaml"), yaml).unwrap();
    let p = berth_compose::load(&berth_compose::Options {
        cwd: d.clone(),
        project_name: Some("t".into()),
        ..Default::default()
    })
    .unwrap();
    let _ = std::fs::remove_dir_all(&d);
    p
}

#[test]
fn hash_ignores_replicas_but_not_environment() {
    let a = project("services:\n  w:\n    image: x\n    environment: {A: '1'}\n");
    let b = project(
        "services:\n  w:\n    image: x\n    environment: {A: '1'}\n    deploy: {replicas: 3}\n",
    );
    let c = project("services:\n  w:\n    image: x\n    environment: {A: '2'}\n");
    let h = |p: &Project| {
        let mut s = p.services["w"].clone();
        s.deploy = None;
        config_hash(&s)
    };
    assert_eq!(config_hash(&a.services["w"]).len(), 64);
    assert_eq!(h(&a), h(&b));
    assert_ne!(config_hash(&a.services["w"]), config_hash(&c.services["w"]));
}

#[test]
fn unsupported_keys_are_all_named() {
    let root = std::env::temp_dir();
    let p = project("services:\n  w:\n    image: x\n    cap_add: [NET_ADMIN]\n    volumes: [data:/d]\nvolumes:\n  data:\n");
    assert_eq!(
        unsupported(&root, &p, "w", &p.services["w"]),
        Vec::<String>::new()
    );
    let p = project("services:\n  w:\n    image: x\n    cap_add: [NOT_A_CAP]\n    logging: {driver: syslog}\n    healthcheck: {test: [CMD, 'true'], interval: 10us}\n    volumes:\n      - {type: volume, source: data, target: /d, volume: {subpath: x}}\nvolumes:\n  data:\n    driver: nfs-plugin\n");
    let u = unsupported(&root, &p, "w", &p.services["w"]);
    assert_eq!(u.len(), 5, "{u:?}");
    // File and line of the key, or of the entry the engine refuses (`cap_add[0]`).
    for (i, (line, k)) in [
        (8, "volumes[0].volume.subpath"),
        (8, "volumes[0]"),
        (4, "cap_add[0]"),
        (6, "healthcheck"),
        (5, "logging"),
    ]
    .iter()
    .enumerate()
    {
        assert!(
            u[i].contains(&format!("/compose.yaml:{line}: services.w.{k}: ")),
            "{i}: {u:?}"
        );
    }
    assert!(u[2].contains("NOT_A_CAP"), "{u:?}");
    assert!(u[3].contains("interval"), "{u:?}");
}

#[test]
fn bad_restart_and_ports_are_found_before_up_creates_anything() {
    let root = std::env::temp_dir();
    let p = project("services:\n  w:\n    image: x\n    restart: sometimes\n    ports:\n      - '8080:80'\n      - {target: 80, published: 99999}\n");
    let u = unsupported(&root, &p, "w", &p.services["w"]);
    assert_eq!(u.len(), 2, "{u:?}");
    assert!(
        u[0].contains("/compose.yaml:4: services.w.restart: invalid restart policy \"sometimes\""),
        "{u:?}"
    );
    assert!(
        u[1].contains("/compose.yaml:7: services.w.ports[1]: invalid port specification"),
        "{u:?}"
    );
    let p = project("services:\n  w:\n    image: x\n    restart: on-failure:3\n    ports: ['127.0.0.1:8080-8081:80-81/udp', '90']\n");
    assert_eq!(
        unsupported(&root, &p, "w", &p.services["w"]),
        Vec::<String>::new()
    );
}

#[test]
fn volumes_health_logging_security_map_to_the_engine() {
    let root = std::env::temp_dir();
    let p = project("services:\n  w:\n    image: x\n    command: [sleep, '1']\n    volumes: [data:/d, /anon, './h:/h:ro', {type: tmpfs, target: /t, tmpfs: {size: 1024}}]\n    healthcheck: {test: 'true', interval: 2s, retries: 4}\n    logging: {driver: json-file, options: {max-size: 1m}}\n    cap_add: [NET_ADMIN]\n    cap_drop: [ALL]\n    ulimits: {nofile: {soft: 100, hard: 200}, nproc: 50}\n    sysctls: {net.core.somaxconn: '1024'}\n    shm_size: 64m\n    security_opt: [no-new-privileges]\n    group_add: ['10']\n    read_only: true\n    init: true\n    stop_signal: SIGINT\n    stop_grace_period: 3s\n    user: '1000'\n    working_dir: /w\n    dns: [1.1.1.1]\n    labels: {a: b}\nvolumes:\n  data:\n    driver_opts: {type: tmpfs, device: tmpfs}\n");
    let mut s = p.services["w"].clone();
    // The bind source exists (created under the test's directory otherwise).
    s.volumes[2].source = Some(root.display().to_string());
    let img = ImageConfig {
        healthcheck: Some(serde_json::json!({"Test": ["CMD", "img"], "Timeout": 5000000000i64})),
        ..Default::default()
    };
    let c = container_config(&root, &p, "w", &s, &img, "sha256:x", &Instance::default()).unwrap();
    assert_eq!(c.volumes.len(), 2, "{:?}", c.volumes);
    assert_eq!(c.volumes[0].name, "t_data");
    assert_eq!(c.volumes[0].driver_options["type"], "tmpfs");
    assert!(!c.volumes[0].anonymous);
    assert!(c.volumes[1].anonymous && c.volumes[1].name.is_empty());
    assert_eq!(c.binds.len(), 1);
    assert!(c.binds[0].read_only);
    assert_eq!(c.tmpfs[0].options, vec!["size=1024".to_string()]);
    let h = c.healthcheck.unwrap();
    assert_eq!(h.test, vec!["CMD-SHELL", "true"]);
    assert_eq!(
        (h.interval, h.retries, h.timeout),
        (2_000_000_000, 4, 5_000_000_000)
    );
    assert_eq!(c.log_config.opts["max-size"], "1m");
    assert!(c.read_only && c.init);
    assert_eq!((c.stop_signal.as_str(), c.stop_timeout), ("SIGINT", 3));
    assert_eq!((c.user.as_str(), c.working_dir.as_str()), ("1000", "/w"));
    assert_eq!(c.labels["a"], "b");
    assert_eq!(c.group_add, vec!["10"]);
    // disable: true drops the image's check.
    s.healthcheck = Some(berth_compose::model::Healthcheck {
        disable: true,
        ..Default::default()
    });
    let c = container_config(&root, &p, "w", &s, &img, "sha256:x", &Instance::default()).unwrap();
    assert!(c.healthcheck.is_none());
    // No healthcheck: the image's.
    s.healthcheck = None;
    let c = container_config(&root, &p, "w", &s, &img, "sha256:x", &Instance::default()).unwrap();
    assert_eq!(c.healthcheck.unwrap().test, vec!["CMD", "img"]);
}

#[test]
fn command_entrypoint_and_labels() {
    let p = project("services:\n  w:\n    image: x\n    entrypoint: [/bin/sh, -c]\n    environment: {A: '1', UNSET: null}\n    ports: ['127.0.0.1:8080:80', '53/udp']\n    extra_hosts: ['h:1.2.3.4']\n");
    let img = ImageConfig {
        cmd: Some(vec!["image-cmd".into()]),
        entrypoint: Some(vec!["image-ep".into()]),
        ..Default::default()
    };
    let inst = Instance {
        number: 2,
        publish: true,
        ..Default::default()
    };
    let c = container_config(
        &std::env::temp_dir(),
        &p,
        "w",
        &p.services["w"],
        &img,
        "sha256:x",
        &inst,
    )
    .unwrap();
    // An entrypoint set in the service resets the image's CMD (as Docker).
    assert_eq!(c.args, vec!["/bin/sh", "-c"]);
    assert!(c.env.contains(&"A=1".to_string()));
    assert!(!c.env.iter().any(|e| e.starts_with("UNSET")));
    assert_eq!(c.publish, vec!["127.0.0.1:8080:80/tcp", "53/udp"]);
    assert_eq!(c.add_hosts, vec!["h:1.2.3.4"]);
    assert_eq!(c.labels[labels::NUMBER], "2");
    assert_eq!(c.labels[labels::PROJECT], "t");
    assert_eq!(c.labels[labels::ONEOFF], "False");
    match &c.network {
        NetworkMode::Networks(a) => {
            assert_eq!(a[0].network, "t_default");
            assert_eq!(a[0].aliases, vec!["w"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn up_hashes_service_references_as_docker_compose_resolves_them() {
    let p = project("services:\n  db:\n    image: x\n  w:\n    image: x\n    network_mode: service:db\n    ipc: service:db\n    volumes_from: ['db:ro', 'container:other:rw']\n");
    let s = &p.services["w"];
    let mut asked = Vec::new();
    let resolved = config_hash_resolved(s, &mut |svc| {
        asked.push(svc.to_string());
        Some("c0ffee".into())
    });
    assert_eq!(asked, ["db", "db", "db"]);
    // docker compose's up: container:ID for namespaces; bare ids, modes dropped, for
    // volumes_from.
    let mut want = s.clone();
    want.network_mode = Some("container:c0ffee".into());
    want.ipc = Some("container:c0ffee".into());
    want.volumes_from = vec!["c0ffee".into(), "other".into()];
    assert_eq!(resolved, config_hash(&want));
    assert!(config_json(&want).contains(r#""volumes_from":["c0ffee","other"]"#));
    // Unresolvable references are hashed as written.
    assert_eq!(config_hash_resolved(s, &mut |_| None), {
        let mut w = s.clone();
        w.volumes_from = vec!["db:ro".into(), "other".into()];
        config_hash(&w)
    });
}

#[test]
fn inline_configs_are_mounted_from_a_file_under_the_store() {
    // configs.NAME.content: docker compose puts the text at /NAME (or the target).
    let p = project("services:\n  w:\n    image: x\n    command: run\n    configs:\n      - c2\n      - {source: c3, target: /etc/c3}\nconfigs:\n  c2:\n    content: inline text\n  c3:\n    content: other\n");
    let root =
        std::env::temp_dir().join(format!("berth-compose-run-inline-{}", std::process::id()));
    let s = p.services["w"].clone();
    let c = container_config(
        &root,
        &p,
        "w",
        &s,
        &ImageConfig::default(),
        "sha256:x",
        &Instance::default(),
    )
    .unwrap();
    let b: Vec<(&str, String)> = c
        .binds
        .iter()
        .map(|b| {
            (
                b.destination.as_str(),
                std::fs::read_to_string(&b.source).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        b,
        [
            ("/c2", "inline text".to_string()),
            ("/etc/c3", "other".to_string())
        ]
    );
    assert!(c
        .binds
        .iter()
        .all(|b| b.read_only && b.source.starts_with(&*root.to_string_lossy())));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn missing_host_files_are_named_before_anything_is_created() {
    // A secret's or config's file, and a bind source that may not be created, must exist;
    // `up` checks them before it creates the project network.
    let root = std::env::temp_dir();
    let p = project("services:\n  w:\n    image: x\n    secrets: [s]\n    configs: [c]\n    volumes:\n      - {type: bind, source: /nonexistent-brk2/b, target: /b, bind: {create_host_path: false}}\n      - /nonexistent-brk2/short:/short\nsecrets:\n  s: {file: /nonexistent-brk2/s}\nconfigs:\n  c: {file: /nonexistent-brk2/c}\n");
    let u = unsupported(&root, &p, "w", &p.services["w"]);
    assert_eq!(u.len(), 3, "{u:?}");
    assert!(u[0].ends_with("compose.yaml:4: services.w.secrets[0]: secrets.s: file /nonexistent-brk2/s does not exist"), "{u:?}");
    assert!(u[1].ends_with("compose.yaml:5: services.w.configs[0]: configs.c: file /nonexistent-brk2/c does not exist"), "{u:?}");
    assert!(
        u[2].contains(
            "compose.yaml:7: services.w.volumes[0]: bind source /nonexistent-brk2/b does not exist"
        ),
        "{u:?}"
    );
}

#[test]
fn restart_takes_dependents_with_restart_true() {
    let p = project("services:\n  db:\n    image: x\n  web:\n    image: x\n    depends_on:\n      db: {condition: service_started, restart: true}\n  proxy:\n    image: x\n    depends_on:\n      web: {condition: service_started, restart: true}\n  cron:\n    image: x\n    depends_on: [db]\n");
    let r = crate::project::with_restart_dependents;
    assert_eq!(r(&p, &["db".to_string()]), ["db", "web", "proxy"]);
    assert_eq!(r(&p, &["proxy".to_string()]), ["proxy"]);
    assert!(r(&p, &[]).is_empty());
}

#[test]
fn engine_refusals_name_the_entry_and_its_line() {
    let root = std::env::temp_dir();
    let p = project("services:\n  w:\n    image: x\n    cap_add:\n      - NET_ADMIN\n      - NOT_A_CAP\n    cap_drop: [NOPE]\n    ulimits:\n      nofile: 10\n      bogus: 5\n    sysctls:\n      kernel.nope: '1'\n    security_opt:\n      - bogus\n    working_dir: relative\n    dns:\n      - 1.1.1.1\n      - notanip\n    cpus: 1\n    cpu_quota: 50000\n");
    let u = unsupported(&root, &p, "w", &p.services["w"]);
    let has = |s: &str| u.iter().any(|m| m.contains(s));
    for want in [
        "/compose.yaml:6: services.w.cap_add[1]: unknown capability \"NOT_A_CAP\"",
        "/compose.yaml:15: services.w.working_dir: the working directory 'relative' is invalid, it needs to be an absolute path",
        "/compose.yaml:18: services.w.dns[1]: invalid DNS server address \"notanip\"",
        "/compose.yaml:19: services.w.cpus: conflicting options: cpus cannot be used with cpu_period or cpu_quota",
    ] {
        assert!(has(want), "{want}: {u:?}");
    }
    // One message for confinement: the first bad entry, checked alone.
    let p = project("services:\n  w:\n    image: x\n    cap_drop: [NOPE]\n");
    let u = unsupported(&root, &p, "w", &p.services["w"]);
    assert!(
        u[0].contains("/compose.yaml:4: services.w.cap_drop[0]: unknown capability"),
        "{u:?}"
    );
    let p =
        project("services:\n  w:\n    image: x\n    ulimits:\n      nofile: 10\n      bogus: 5\n");
    let u = unsupported(&root, &p, "w", &p.services["w"]);
    assert!(
        u[0].contains("/compose.yaml:6: services.w.ulimits.bogus: invalid ulimits \"bogus=5\""),
        "{u:?}"
    );
    let p = project(
        "services:\n  w:\n    image: x\n    ulimits:\n      nproc: 10\n      nofile: 99999999\n",
    );
    let u = unsupported(&root, &p, "w", &p.services["w"]);
    assert!(u[0].contains("/compose.yaml:6: services.w.ulimits.nofile: invalid ulimits \"nofile=99999999\": the hard limit 99999999 is above this host's fs.nr_open"), "{u:?}");
    let p = project("services:\n  w:\n    image: x\n    sysctls:\n      kernel.nope: '1'\n");
    let u = unsupported(&root, &p, "w", &p.services["w"]);
    assert!(
        u[0].contains(
            "/compose.yaml:5: services.w.sysctls.kernel.nope: sysctls kernel.nope is not allowed"
        ),
        "{u:?}"
    );
    let p = project("services:\n  w:\n    image: x\n    security_opt:\n      - bogus\n");
    let u = unsupported(&root, &p, "w", &p.services["w"]);
    assert!(
        u[0].contains(
            "/compose.yaml:5: services.w.security_opt[0]: invalid security_opt \"bogus\""
        ),
        "{u:?}"
    );
}
