//! Malformed projects give one-line errors naming file, line and key.

use std::path::Path;

fn load_in(dir: &Path, files: &[&str]) -> Result<berth_compose::Project, String> {
    let o = berth_compose::Options {
        cwd: dir.to_path_buf(),
        files: files.iter().map(|f| f.into()).collect(),
        ..Default::default()
    };
    berth_compose::load(&o).map_err(|e| e.to_string())
}

fn err(yaml: &str) -> String {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("compose.yaml"), yaml).unwrap();
    let e = load_in(d.path(), &[]).unwrap_err();
    e.replace(&format!("{}/", d.path().display()), "")
}

#[test]
fn bad_port_names_file_line_and_key() {
    let e = err(
        "services:\n  web:\n    image: busybox\n    ports:\n      - \"80:80\"\n      - \"80:x\"\n",
    );
    assert_eq!(
        e,
        "compose.yaml:6: services.web.ports[1]: invalid port \"80:x\""
    );
}

#[test]
fn interpolation_errors() {
    let e = err("services:\n  web:\n    image: ${IMG:?set IMG to the image}\n");
    assert_eq!(
        e,
        "compose.yaml:3: services.web.image: required variable IMG is missing a value: set IMG to the image"
    );
    let e = err("services:\n  web:\n    image: busybox\n    command: echo ${oops\n");
    assert!(
        e.starts_with("compose.yaml:4: services.web.command: invalid interpolation format"),
        "{e}"
    );
}

#[test]
fn unknown_key_and_types() {
    let e = err("services:\n  web:\n    image: busybox\n    colour: blue\n");
    assert_eq!(e, "compose.yaml:4: services.web: unknown key \"colour\"");
    let e = err("services:\n  web:\n    image: busybox\n    healthcheck:\n      interval: soon\n");
    assert!(
        e.starts_with(
            "compose.yaml:5: services.web.healthcheck.interval: invalid duration \"soon\""
        ),
        "{e}"
    );
    let e = err("services:\n  web:\n    image: busybox\n    volumes:\n      - a:b:c:d\n");
    assert!(
        e.starts_with("compose.yaml:5: services.web.volumes[0]: invalid volume"),
        "{e}"
    );
    let e = err("servics:\n  web: {}\n");
    assert!(
        e.starts_with("compose.yaml:1: servics: unknown top-level key"),
        "{e}"
    );
}

#[test]
fn an_empty_compose_file_is_refused() {
    for yaml in ["", "# only a comment\n", "{}\n", "version: \"3\"\n"] {
        let e = err(yaml);
        assert!(
            e.starts_with("compose.yaml: empty compose file"),
            "{yaml:?}: {e}"
        );
    }
    // An empty override on top of a real file is fine, as with docker compose.
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("a.yaml"), "services:\n  w:\n    image: x\n").unwrap();
    std::fs::write(d.path().join("b.yaml"), "").unwrap();
    assert!(load_in(d.path(), &["a.yaml", "b.yaml"]).is_ok());
    // A file with only a name or an extension is a project without services, as there.
    assert!(load_in_yaml("name: foo\n").is_ok());
}

fn load_in_yaml(yaml: &str) -> Result<berth_compose::Project, String> {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("compose.yaml"), yaml).unwrap();
    load_in(d.path(), &[])
}

#[test]
fn yaml_syntax_error_names_the_line() {
    let e = err("services:\n  web:\n    image: busybox\n   ports: [\n");
    assert!(
        e.starts_with("compose.yaml:4:") || e.starts_with("compose.yaml:5:"),
        "{e}"
    );
}

#[test]
fn error_in_an_override_file_names_that_file() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("a.yaml"),
        "services:\n  web:\n    image: busybox\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("b.yaml"),
        "services:\n  web:\n    ports: [\"1:2:3:4:x\"]\n",
    )
    .unwrap();
    let e = load_in(d.path(), &["a.yaml", "b.yaml"]).unwrap_err();
    assert!(
        e.contains("b.yaml:3: services.web.ports[0]: invalid port"),
        "{e}"
    );
}

#[test]
fn lookup_goes_upward_and_names_normalise() {
    let d = tempfile::tempdir().unwrap();
    let proj = d.path().join("My_Project.X");
    std::fs::create_dir_all(proj.join("sub/deeper")).unwrap();
    std::fs::write(
        proj.join("docker-compose.yml"),
        "services:\n  a:\n    image: busybox\n",
    )
    .unwrap();
    std::fs::write(
        proj.join("compose.override.yaml"),
        "services:\n  a:\n    environment: [X=1]\n",
    )
    .unwrap();
    let p = load_in(&proj.join("sub/deeper"), &[]).unwrap();
    assert_eq!(p.name, "my_projectx");
    assert_eq!(p.services["a"].environment["X"].as_deref(), Some("1"));
    assert_eq!(p.working_dir, proj);
    assert_eq!(p.config_files.len(), 2);
}

#[test]
fn project_name_precedence() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("compose.yaml"),
        "name: fromfile\nservices:\n  a:\n    image: busybox\n",
    )
    .unwrap();
    let mut o = berth_compose::Options {
        cwd: d.path().to_path_buf(),
        ..Default::default()
    };
    assert_eq!(berth_compose::load(&o).unwrap().name, "fromfile");
    o.environ
        .insert("COMPOSE_PROJECT_NAME".into(), "fromenv".into());
    assert_eq!(berth_compose::load(&o).unwrap().name, "fromenv");
    o.project_name = Some("fromflag".into());
    assert_eq!(berth_compose::load(&o).unwrap().name, "fromflag");
    o.project_name = Some("Bad Name".into());
    assert!(berth_compose::load(&o)
        .unwrap_err()
        .to_string()
        .contains("invalid project name"));
}

#[test]
fn blkio_device_errors_name_the_item() {
    let e = err(
        "services:\n  web:\n    image: busybox\n    blkio_config:\n      device_read_bps:\n        - path: /dev/sda\n          rate: 12mb\n        - path: /dev/sdb\n          rate: fast\n",
    );
    assert!(
        e.starts_with(
            "compose.yaml:9: services.web.blkio_config.device_read_bps[1].rate: invalid rate \"fast\""
        ),
        "{e}"
    );
    let e = err(
        "services:\n  web:\n    image: busybox\n    blkio_config:\n      weight_device:\n        - path: /dev/sda\n          weight: 70000\n",
    );
    assert!(
        e.starts_with(
            "compose.yaml:7: services.web.blkio_config.weight_device[0].weight: invalid weight 70000"
        ),
        "{e}"
    );
    let e = err(
        "services:\n  web:\n    image: busybox\n    blkio_config:\n      device_write_iops:\n        - path: /dev/sda\n          rate: 1\n          burst: 2\n",
    );
    assert_eq!(
        e,
        "compose.yaml:8: services.web.blkio_config.device_write_iops[0]: unknown key \"burst\""
    );
}

#[test]
fn named_services_enable_their_profiles() {
    // docker compose: `up dbg` / `run dbg` enable dbg's profiles (and so the other services of
    // those profiles), not the profiles of its dependencies.
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("compose.yaml"),
        "services:\n  base:\n    image: busybox\n  dbg:\n    image: busybox\n    profiles: [debug]\n  dbg2:\n    image: busybox\n    profiles: [debug, other]\n  web:\n    image: busybox\n    profiles: [front]\n",
    )
    .unwrap();
    let mut o = berth_compose::Options {
        cwd: d.path().to_path_buf(),
        project_name: Some("t".into()),
        ..Default::default()
    };
    let names = |o: &berth_compose::Options| -> Vec<String> {
        berth_compose::load(o)
            .unwrap()
            .services
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(names(&o), ["base"]);
    o.services = vec!["dbg".into(), "base".into(), "nosuch".into()];
    assert_eq!(names(&o), ["base", "dbg", "dbg2"]);
}

#[test]
fn compose_file_on_standard_input() {
    // `-f -`: the text comes from the front end; paths are relative to the working directory,
    // whose name is the project's.
    let d = tempfile::tempdir().unwrap();
    let o = berth_compose::Options {
        cwd: d.path().join("proj"),
        files: vec!["-".into()],
        stdin: Some("services:\n  a:\n    image: busybox\n    volumes: [./x:/x]\n".into()),
        ..Default::default()
    };
    let p = berth_compose::load(&o).unwrap();
    assert_eq!(p.name, "proj");
    assert_eq!(
        p.services["a"].volumes[0].source.as_deref(),
        Some(&*d.path().join("proj/x").to_string_lossy())
    );
    let o = berth_compose::Options {
        stdin: Some("services:\n  a:\n    image: [\n".into()),
        ..o
    };
    let e = berth_compose::load(&o).unwrap_err().to_string();
    assert!(e.contains("proj/-:"), "{e}");
}

#[test]
fn missing_included_or_extended_file_is_named_where_it_is_referenced() {
    let e = err("include:\n  - nosuch.yaml\nservices:\n  a:\n    image: x\n");
    assert!(
        e.starts_with("compose.yaml:2: include[0]: cannot read ") && e.contains("nosuch.yaml"),
        "{e}"
    );
    let e = err("services:\n  a:\n    extends:\n      file: nosuch.yaml\n      service: b\n");
    assert!(
        e.starts_with("compose.yaml:4: services.a.extends.file: cannot read ")
            && e.contains("nosuch.yaml"),
        "{e}"
    );
}

#[test]
fn undefined_services_networks_and_volumes_are_named_at_their_entry() {
    let e = err("services:\n  web:\n    image: busybox\n    depends_on:\n      - db\n");
    assert_eq!(
        e,
        "compose.yaml:5: services.web.depends_on: service \"web\" depends on undefined service \"db\": invalid compose project"
    );
    let e = err("services:\n  web:\n    image: busybox\n    depends_on:\n      db: {condition: service_healthy}\n");
    assert!(e.starts_with("compose.yaml:5: services.web.depends_on: service \"web\" depends on undefined service \"db\""), "{e}");
    let e = err("services:\n  web:\n    image: busybox\n    networks:\n      - front\n      - nope\nnetworks:\n  front:\n");
    assert_eq!(
        e,
        "compose.yaml:6: services.web.networks: service \"web\" refers to undefined network nope: invalid compose project"
    );
    let e = err("services:\n  web:\n    image: busybox\n    volumes:\n      - /a:/a\n      - nov:/x\nnetworks:\n  front:\n");
    assert_eq!(
        e,
        "compose.yaml:6: services.web.volumes: service \"web\" refers to undefined volume nov: invalid compose project"
    );
    let e = err("services:\n  web:\n    image: busybox\n    links:\n      - zz:alias\n");
    assert!(e.starts_with("compose.yaml:5: services.web.links: "), "{e}");
}
