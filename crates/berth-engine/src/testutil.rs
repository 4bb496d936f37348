//! Helpers for unit tests: a store in a temporary directory and container rows without images.

use std::rc::Rc;

use berth_store::{Digest, Store};

use crate::config::{ContainerConfig, RestartPolicy};
use crate::host::Host;
use crate::runtime::fake::FakeRuntime;
use crate::state::{self, Container, State};

pub(crate) struct TestStore {
    pub dir: tempfile::TempDir,
    pub store: Store,
}

pub(crate) fn store() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("root")).unwrap();
    state::migrate(&store).unwrap();
    TestStore { dir, store }
}

pub(crate) fn config() -> ContainerConfig {
    ContainerConfig {
        args: vec!["/bin/true".into()],
        entrypoint: vec![],
        cmd: vec!["/bin/true".into()],
        env: vec![],
        working_dir: String::new(),
        user: String::new(),
        hostname: String::new(),
        domainname: String::new(),
        tty: false,
        open_stdin: false,
        binds: vec![],
        tmpfs: vec![],
        read_only: false,
        network: berth_net::NetworkMode::None,
        publish: vec![],
        publish_all: vec![],
        dns: vec![],
        dns_search: vec![],
        dns_options: vec![],
        add_hosts: vec![],
        group_add: vec![],
        memory: None,
        nano_cpus: None,
        pids_limit: None,
        restart: RestartPolicy::default(),
        init: false,
        runtime: None,
        labels: Default::default(),
        stop_signal: "SIGTERM".into(),
        stop_timeout: 10,
        auto_remove: false,
        security: Default::default(),
        healthcheck: None,
        log_config: Default::default(),
        resources: Default::default(),
        namespaces: Default::default(),
        extra: Default::default(),
        volumes: Default::default(),
    }
}

pub(crate) fn image_id() -> Digest {
    Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap()
}

/// Insert a row named `name` with id `<name padded>` in `state`, and its directory.
pub(crate) fn row(store: &Store, name: &str, st: State) -> Container {
    let id = format!("{:0>64}", hex_of(name));
    let c = Container {
        id: id.clone(),
        name: name.into(),
        image_id: image_id(),
        image_name: "img".into(),
        config: config(),
        state: State::Created,
        created: 1,
        pid: None,
        monitor_pid: None,
        monitor_start: None,
        started_at: None,
        finished_at: None,
        exit_code: None,
        oom_killed: false,
        restart_count: 0,
        stop_requested: false,
        net: None,
        error: None,
        cgroup_path: Some(format!("/berth-test/{id}")),
    };
    crate::rootfs::Bundle::new(store.root(), &id)
        .create()
        .unwrap();
    state::insert(store, &c).unwrap();
    match st {
        State::Created => {}
        State::Running => state::mark_running(store, &id, 4242).unwrap(),
        State::Exited => state::mark_exited(store, &id, 0, false, None).unwrap(),
        State::Restarting => state::mark_restarting(store, &id, 1, false, 1).unwrap(),
        State::Removing => state::mark_removing(store, &id).unwrap(),
    }
    state::get(store, &id).unwrap().unwrap()
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// A process id that is certainly not running (beyond the kernel's pid_max).
pub(crate) const DEAD_PID: i32 = 0x3fff_fff0;

/// Record this test process as the container's (live) monitor.
pub(crate) fn live_monitor(store: &Store, id: &str) {
    let me = i32::try_from(std::process::id()).unwrap();
    state::set_monitor(store, id, me, state::process_start_time(me)).unwrap();
}

/// Record a dead process as the container's monitor.
pub(crate) fn dead_monitor(store: &Store, id: &str) {
    state::set_monitor(store, id, DEAD_PID, Some(1)).unwrap();
}

pub(crate) struct Fakes {
    pub host: Host,
    pub runtime: Rc<FakeRuntime>,
    pub calls: Rc<std::cell::RefCell<Vec<crate::host::HostCall>>>,
}

pub(crate) fn fakes(t: &TestStore) -> Fakes {
    let runtime = Rc::new(FakeRuntime::new());
    let cg = t.dir.path().join("cgroup");
    let proc = t.dir.path().join("proc");
    std::fs::create_dir_all(&cg).unwrap();
    std::fs::create_dir_all(&proc).unwrap();
    let (host, calls) = Host::fake(runtime.clone(), &cg, &proc);
    Fakes {
        host,
        runtime,
        calls,
    }
}
