//! Container network setup and teardown against a fake backend: what is called, in which
//! order, and that teardown keeps going past failures. No root needed.

use std::collections::HashSet;
use std::path::PathBuf;

use berth_store::Store;

use super::*;
use crate::backend::FakeLog;
use crate::config::NetConf;
use crate::state::Network;

struct T {
    _dir: tempfile::TempDir,
    store: Store,
    be: Backend,
    log: std::rc::Rc<FakeLog>,
    ctr_dir: PathBuf,
}

fn t() -> T {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("root")).unwrap();
    let (be, log) = Backend::fake(NetConf::default());
    let ctr_dir = dir.path().join("ctr");
    std::fs::create_dir_all(&ctr_dir).unwrap();
    T {
        _dir: dir,
        store,
        be,
        log,
        ctr_dir,
    }
}

fn cfg(id: &str, mode: NetworkMode) -> NetConfig {
    NetConfig {
        container_id: id.into(),
        container_name: format!("name-{id}"),
        hostname: format!("host-{id}"),
        domainname: String::new(),
        mode,
        publish: vec![],
        publish_all: vec![],
        dns: vec![],
        dns_search: vec![],
        dns_options: vec![],
        add_hosts: vec![],
        ipv4_address: String::new(),
        mac_address: String::new(),
        port_group: None,
        port_wait_healthy: false,
    }
}

fn default_net() -> NetworkMode {
    NetworkMode::Networks(vec![Attachment {
        network: "bridge".into(),
        aliases: vec![],
    }])
}

fn ops(log: &FakeLog) -> Vec<String> {
    log.calls()
        .into_iter()
        .map(|c| c.split(' ').next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn none_mode_gets_its_own_namespace_and_files() {
    let t = t();
    let out = setup_with(&t.store, &t.be, &cfg("c1", NetworkMode::None), &t.ctr_dir).unwrap();
    assert_eq!(ops(&t.log), ["netns.create"]);
    assert_eq!(
        out.netns_path,
        Some(default_netns_path(t.store.root(), "c1"))
    );
    assert_eq!(
        std::fs::read_to_string(&out.hostname_file).unwrap(),
        "host-c1\n"
    );
    let hosts = std::fs::read_to_string(&out.hosts_file).unwrap();
    assert!(hosts.contains("host-c1"), "{hosts}");
    assert!(out.resolv_conf.is_file());
    let sb = state::get_sandbox(t.store.db(), "c1").unwrap().unwrap();
    assert!(sb.owns_netns);
    assert_eq!(sb.mode, "none");
}

#[test]
fn host_mode_creates_no_namespace() {
    let t = t();
    let mut c = cfg("h", NetworkMode::Host);
    c.add_hosts = vec!["db:10.1.2.3".into()];
    let out = setup_with(&t.store, &t.be, &c, &t.ctr_dir).unwrap();
    assert!(t.log.calls().is_empty());
    assert_eq!(out.netns_path, None);
    let hosts = std::fs::read_to_string(&out.hosts_file).unwrap();
    assert!(hosts.contains("10.1.2.3\tdb"), "{hosts}");
}

#[test]
fn a_bad_add_host_is_rejected_before_anything_is_made() {
    let t = t();
    let mut c = cfg("bad", NetworkMode::None);
    c.add_hosts = vec!["nocolon".into()];
    let e = setup_with(&t.store, &t.be, &c, &t.ctr_dir).unwrap_err();
    assert!(e.to_string().contains("--add-host"), "{e}");
    assert!(t.log.calls().is_empty());
    assert!(state::get_sandbox(t.store.db(), "bad").unwrap().is_none());
}

#[test]
fn bridge_setup_order_is_namespace_link_firewall_attach_publish_commit() {
    let t = t();
    let mut c = cfg("b1", default_net());
    c.publish = vec!["127.0.0.1::80".into()];
    let out = setup_with(&t.store, &t.be, &c, &t.ctr_dir).unwrap();
    assert_eq!(
        ops(&t.log),
        [
            "netns.create",
            "driver.ensure_network",
            "firewall.ensure_network",
            "driver.attach",
            "firewall.publish",
            "firewall.commit"
        ]
    );
    // The only network carries the default route; one port is published.
    assert!(
        t.log.calls()[3].ends_with(" default"),
        "{:?}",
        t.log.calls()
    );
    assert_eq!(t.log.calls()[4], "firewall.publish 1");
    assert_eq!(out.addresses.len(), 1);
    assert_eq!(out.ports.len(), 1);
    assert_eq!(out.ports[0].container_port, 80);
    let net = NetConf::default();
    let IpAddr::V4(ip) = out.addresses[0] else {
        panic!("v4 expected")
    };
    assert!(net.bridge_subnet.contains(&ip));
    let hosts = std::fs::read_to_string(&out.hosts_file).unwrap();
    assert!(hosts.contains(&format!("{ip}\thost-b1")), "{hosts}");
}

#[test]
fn two_containers_get_different_addresses() {
    let t = t();
    let a = setup_with(&t.store, &t.be, &cfg("a", default_net()), &t.ctr_dir).unwrap();
    let b = setup_with(&t.store, &t.be, &cfg("b", default_net()), &t.ctr_dir).unwrap();
    assert_ne!(a.addresses, b.addresses);
}

#[test]
fn setting_up_again_releases_the_previous_setup_first() {
    let t = t();
    setup_with(&t.store, &t.be, &cfg("r", default_net()), &t.ctr_dir).unwrap();
    t.log.calls.borrow_mut().clear();
    setup_with(&t.store, &t.be, &cfg("r", default_net()), &t.ctr_dir).unwrap();
    let o = ops(&t.log);
    assert_eq!(
        &o[..3],
        ["firewall.unpublish", "firewall.commit", "netns.remove"]
    );
    assert!(o.contains(&"netns.create".to_string()));
    assert_eq!(
        state::endpoints_of_container(t.store.db(), "r")
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_failed_attach_tears_down_what_was_made() {
    let t = t();
    t.log.fail("driver.attach");
    let e = setup_with(&t.store, &t.be, &cfg("f", default_net()), &t.ctr_dir).unwrap_err();
    assert!(e.to_string().contains("driver.attach failed"), "{e}");
    assert!(ops(&t.log).contains(&"netns.remove".to_string()));
    assert!(state::get_sandbox(t.store.db(), "f").unwrap().is_none());
    assert!(state::endpoints_of_container(t.store.db(), "f")
        .unwrap()
        .is_empty());
}

#[test]
fn a_failed_namespace_creation_leaves_no_rows() {
    let t = t();
    t.log.fail("netns.create");
    let e = setup_with(&t.store, &t.be, &cfg("n", NetworkMode::None), &t.ctr_dir).unwrap_err();
    assert!(e.to_string().contains("run berth as root"), "{e}");
    assert!(state::get_sandbox(t.store.db(), "n").unwrap().is_none());
}

#[test]
fn teardown_keeps_going_and_reports_every_failure() {
    let t = t();
    let mut c = cfg("k", default_net());
    c.publish = vec!["127.0.0.1::8080".into()];
    setup_with(&t.store, &t.be, &c, &t.ctr_dir).unwrap();
    t.log.calls.borrow_mut().clear();
    t.log.fail("firewall.commit");
    t.log.fail("netns.remove");
    t.log.fail("driver.detach");
    let e = teardown_with(&t.store, &t.be, "k").unwrap_err().to_string();
    // Every step ran although earlier ones failed...
    assert_eq!(
        ops(&t.log),
        [
            "firewall.unpublish",
            "firewall.commit",
            "netns.remove",
            "driver.detach"
        ]
    );
    assert_eq!(t.log.calls()[0], "firewall.unpublish 1");
    // ...every failure is reported...
    for want in [
        "firewall.commit failed",
        "netns.remove failed",
        "driver.detach failed",
    ] {
        assert!(e.contains(want), "{want} missing from {e}");
    }
    // ...and the rows are gone, so the next teardown has nothing left to do.
    assert!(state::get_sandbox(t.store.db(), "k").unwrap().is_none());
    assert!(state::ports_of_container(t.store.db(), "k")
        .unwrap()
        .is_empty());
}

#[test]
fn teardown_skips_veths_that_went_with_the_namespace() {
    let t = t();
    setup_with(&t.store, &t.be, &cfg("v", default_net()), &t.ctr_dir).unwrap();
    t.log.calls.borrow_mut().clear();
    teardown_with(&t.store, &t.be, "v").unwrap();
    assert!(!ops(&t.log).contains(&"driver.detach".to_string()));
}

#[test]
fn teardown_is_idempotent() {
    let t = t();
    setup_with(&t.store, &t.be, &cfg("i", NetworkMode::None), &t.ctr_dir).unwrap();
    teardown_with(&t.store, &t.be, "i").unwrap();
    teardown_with(&t.store, &t.be, "i").unwrap();
    teardown_with(&t.store, &t.be, "never-existed").unwrap();
}

#[test]
fn teardown_of_a_shared_namespace_leaves_it_to_its_owner() {
    let t = t();
    setup_with(
        &t.store,
        &t.be,
        &cfg("owner", NetworkMode::None),
        &t.ctr_dir,
    )
    .unwrap();
    let guest_dir = t.ctr_dir.join("guest");
    std::fs::create_dir_all(&guest_dir).unwrap();
    let out = setup_with(
        &t.store,
        &t.be,
        &cfg("guest", NetworkMode::Container("owner".into())),
        &guest_dir,
    )
    .unwrap();
    assert_eq!(
        out.netns_path,
        Some(default_netns_path(t.store.root(), "owner"))
    );
    t.log.calls.borrow_mut().clear();
    teardown_with(&t.store, &t.be, "guest").unwrap();
    assert!(!ops(&t.log).contains(&"netns.remove".to_string()));
    assert!(state::get_sandbox(t.store.db(), "owner").unwrap().is_some());
}

#[test]
fn joining_a_host_network_container_is_refused() {
    let t = t();
    setup_with(
        &t.store,
        &t.be,
        &cfg("hostc", NetworkMode::Host),
        &t.ctr_dir,
    )
    .unwrap();
    let dir = t.ctr_dir.join("j");
    std::fs::create_dir_all(&dir).unwrap();
    let e = setup_with(
        &t.store,
        &t.be,
        &cfg("j", NetworkMode::Container("hostc".into())),
        &dir,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("--network host"), "{e}");
}

#[test]
fn aliases_need_a_user_defined_network() {
    let t = t();
    let c = cfg(
        "al",
        NetworkMode::Networks(vec![Attachment {
            network: "bridge".into(),
            aliases: vec!["db".into()],
        }]),
    );
    let e = setup_with(&t.store, &t.be, &c, &t.ctr_dir)
        .unwrap_err()
        .to_string();
    assert!(e.contains("aliases"), "{e}");
    assert!(!ops(&t.log)
        .iter()
        .any(|o| o == "netns.create" || o.starts_with("driver.")));
}

#[test]
fn ports_cannot_be_published_from_internal_networks_only() {
    let t = t();
    state::migrate(&t.store).unwrap();
    let n = Network {
        name: "inner".into(),
        id: "f".repeat(64),
        driver: "bridge".into(),
        bridge: "berth-test0".into(),
        subnet: "10.250.3.0/24".parse().unwrap(),
        gateway: "10.250.3.1".parse().unwrap(),
        internal: true,
        created: 0,
    };
    state::insert_network(t.store.db(), &n).unwrap();
    let mut c = cfg(
        "in",
        NetworkMode::Networks(vec![Attachment {
            network: "inner".into(),
            aliases: vec![],
        }]),
    );
    c.publish = vec!["127.0.0.1::80".into()];
    let e = setup_with(&t.store, &t.be, &c, &t.ctr_dir)
        .unwrap_err()
        .to_string();
    assert!(e.contains("internal"), "{e}");
    assert!(state::endpoints_of_container(t.store.db(), "in")
        .unwrap()
        .is_empty());
}

#[test]
fn a_host_port_is_published_once() {
    let t = t();
    // A free port, found the way berth finds one.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut a = cfg("pa", default_net());
    a.publish = vec![format!("127.0.0.1:{port}:80")];
    setup_with(&t.store, &t.be, &a, &t.ctr_dir).unwrap();
    let mut b = cfg("pb", default_net());
    b.publish = vec![format!("127.0.0.1:{port}:80")];
    let e = setup_with(&t.store, &t.be, &b, &t.ctr_dir).unwrap_err();
    assert!(matches!(e, NetError::PortInUse(_)), "{e}");
    assert!(e.to_string().contains("name-pa"), "{e}");
    assert!(state::get_sandbox(t.store.db(), "pb").unwrap().is_none());
}

#[test]
fn cleanup_stale_releases_only_containers_not_kept() {
    let t = t();
    setup_with(&t.store, &t.be, &cfg("live", NetworkMode::None), &t.ctr_dir).unwrap();
    setup_with(&t.store, &t.be, &cfg("dead", NetworkMode::None), &t.ctr_dir).unwrap();
    let keep: HashSet<String> = ["live".to_string()].into();
    cleanup_stale_with(&t.store, &t.be, &keep).unwrap();
    assert!(state::get_sandbox(t.store.db(), "live").unwrap().is_some());
    assert!(state::get_sandbox(t.store.db(), "dead").unwrap().is_none());
}

#[test]
fn errors_are_joined_into_one_line() {
    assert!(join_errors(vec![]).is_ok());
    let one = join_errors(vec![NetError::Other("a".into())]).unwrap_err();
    assert_eq!(one.to_string(), "a");
    let many = join_errors(vec![
        NetError::Other("a".into()),
        NetError::Other("b".into()),
    ])
    .unwrap_err();
    assert_eq!(many.to_string(), "a; b");
}
