//! Lifecycle decisions against fakes: no root, no kernel features, no real containers.

use crate::host::HostCall;
use crate::ops;
use crate::rootfs::Bundle;
use crate::runtime::fake::Call;
use crate::state::{self, State};
use crate::testutil::{self, dead_monitor, fakes, live_monitor, row, store};
use crate::EngineError;

fn request(name: Option<&str>) -> ops::CreateRequest {
    ops::CreateRequest {
        name: name.map(String::from),
        image_ref: "busybox".into(),
        image_id: testutil::image_id(),
        config: testutil::config(),
    }
}

#[test]
fn create_makes_row_and_directory_with_a_cgroup_path() {
    let t = store();
    let c = ops::create(&t.store, request(Some("web"))).unwrap();
    assert_eq!(c.id.len(), 64);
    assert_eq!(c.state, State::Created);
    assert_eq!(c.config.hostname, c.id[..12]);
    let cg = c.cgroup_path.clone().unwrap();
    assert!(cg.starts_with('/') && cg.ends_with(&c.id), "{cg}");
    assert!(Bundle::new(t.store.root(), &c.id).dir.is_dir());
    let back = state::lookup(&t.store, "web").unwrap();
    assert_eq!(back.cgroup_path, Some(cg));
}

#[test]
fn create_generates_a_name_when_none_is_given() {
    let t = store();
    let c = ops::create(&t.store, request(None)).unwrap();
    assert!(c.name.contains('_'), "{}", c.name);
}

#[test]
fn create_rejects_bad_names_and_leaves_nothing() {
    let t = store();
    for bad in ["", "-x", "a/b", "a b", "ü"] {
        let e = ops::create(&t.store, request(Some(bad))).unwrap_err();
        assert!(matches!(e, EngineError::InvalidArgument(_)), "{bad}: {e}");
    }
    assert!(state::all(&t.store).unwrap().is_empty());
    let dirs = std::fs::read_dir(t.store.root().join("containers"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(dirs, 0);
}

#[test]
fn create_with_a_taken_name_names_the_owner_and_removes_its_directory() {
    let t = store();
    let first = ops::create(&t.store, request(Some("db"))).unwrap();
    match ops::create(&t.store, request(Some("db"))) {
        Err(EngineError::NameInUse { name, id }) => {
            assert_eq!(name, "db");
            assert_eq!(id, first.id);
        }
        other => panic!("expected NameInUse, got {other:?}"),
    }
    let dirs = std::fs::read_dir(t.store.root().join("containers"))
        .unwrap()
        .count();
    assert_eq!(dirs, 1);
}

#[test]
fn create_rejects_a_bad_publish_spec() {
    let t = store();
    let mut r = request(Some("p"));
    r.config.publish = vec!["notaport".into()];
    assert!(ops::create(&t.store, r).is_err());
    assert!(state::all(&t.store).unwrap().is_empty());
}

#[test]
fn create_refuses_a_relative_working_dir_and_a_bad_dns_server_as_docker() {
    let t = store();
    let mut r = request(Some("wd"));
    r.config.working_dir = "relative".into();
    let e = ops::create(&t.store, r).unwrap_err().to_string();
    assert_eq!(
        e,
        "the working directory 'relative' is invalid, it needs to be an absolute path"
    );
    let mut r = request(Some("dns"));
    r.config.dns = vec!["1.1.1.1".into(), "notanip".into()];
    let e = ops::create(&t.store, r).unwrap_err().to_string();
    assert!(e.contains("\"notanip\": expected an IP address"), "{e}");
    assert!(state::all(&t.store).unwrap().is_empty());
}

#[test]
fn resolve_args_follows_docker() {
    let img = berth_image::ImageConfig {
        entrypoint: Some(vec!["/ep".into()]),
        cmd: Some(vec!["a".into()]),
        ..Default::default()
    };
    let (args, _, _) = ops::resolve_args(&img, None, &[]).unwrap();
    assert_eq!(args, ["/ep", "a"]);
    let (args, _, _) = ops::resolve_args(&img, None, &["b".into()]).unwrap();
    assert_eq!(args, ["/ep", "b"]);
    // --entrypoint resets the image's CMD.
    let (args, _, cmd) = ops::resolve_args(&img, Some("/x"), &[]).unwrap();
    assert_eq!(args, ["/x"]);
    assert!(cmd.is_empty());
    assert!(ops::resolve_args(&img, Some(""), &[]).is_err());
}

#[test]
fn monitor_first_line_protocol() {
    use super::start::parse_first_line;
    assert_eq!(parse_first_line("started 42").unwrap(), 42);
    match parse_first_line("error 127 exec: \"x\": not found") {
        Err(EngineError::StartFailed { code, msg }) => {
            assert_eq!(code, 127);
            assert_eq!(msg, "exec: \"x\": not found");
        }
        other => panic!("{other:?}"),
    }
    match parse_first_line("") {
        Err(EngineError::StartFailed { code, .. }) => assert_eq!(code, 125),
        other => panic!("{other:?}"),
    }
}

#[test]
fn reconcile_marks_a_container_with_a_dead_monitor_exited_and_releases_it() {
    let t = store();
    let f = fakes(&t);
    let c = row(&t.store, "dead", State::Running);
    dead_monitor(&t.store, &c.id);
    let cg = t
        .dir
        .path()
        .join("cgroup/memory")
        .join(c.cgroup_path().trim_start_matches('/'));
    std::fs::create_dir_all(&cg).unwrap();
    let rows = ops::reconciled_rows_with(&f.host, &t.store).unwrap();
    let after = rows.iter().find(|r| r.id == c.id).unwrap();
    assert_eq!(after.state, State::Exited);
    assert_eq!(after.exit_code, Some(137));
    assert_eq!(after.pid, None);
    assert_eq!(after.monitor_pid, None);
    assert_eq!(f.runtime.calls(), vec![Call::Delete(c.id.clone())]);
    assert!(!cg.exists(), "cgroup left behind");
    assert_eq!(
        *f.calls.borrow(),
        vec![
            HostCall::NetTeardown(c.id.clone()),
            HostCall::NetCleanupStale
        ]
    );
}

#[test]
fn reconcile_keeps_an_exit_code_already_recorded() {
    let t = store();
    let f = fakes(&t);
    let c = row(&t.store, "r", State::Restarting);
    dead_monitor(&t.store, &c.id);
    ops::reconcile_with(&f.host, &t.store).unwrap();
    let after = state::get(&t.store, &c.id).unwrap().unwrap();
    assert_eq!(after.state, State::Exited);
    assert_eq!(after.exit_code, Some(1));
}

#[test]
fn reconcile_leaves_containers_with_a_live_monitor_alone() {
    let t = store();
    let f = fakes(&t);
    let c = row(&t.store, "alive", State::Running);
    live_monitor(&t.store, &c.id);
    ops::reconcile_with(&f.host, &t.store).unwrap();
    assert_eq!(
        state::get(&t.store, &c.id).unwrap().unwrap().state,
        State::Running
    );
    assert!(f.runtime.calls().is_empty());
    assert!(f.calls.borrow().is_empty());
}

#[test]
fn reconcile_ignores_created_and_exited_containers() {
    let t = store();
    let f = fakes(&t);
    row(&t.store, "c", State::Created);
    row(&t.store, "e", State::Exited);
    ops::reconcile_with(&f.host, &t.store).unwrap();
    assert!(f.runtime.calls().is_empty());
    assert!(f.calls.borrow().is_empty());
}

#[test]
fn reconcile_kills_a_surviving_process_only_if_it_is_in_the_container_cgroup() {
    let t = store();
    let f = fakes(&t);
    let ours = row(&t.store, "ours", State::Running);
    dead_monitor(&t.store, &ours.id);
    // pid 4242 (see testutil::row) is in this container's cgroup.
    let p = t.dir.path().join("proc/4242");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(
        p.join("cgroup"),
        format!("4:memory:{}\n", ours.cgroup_path()),
    )
    .unwrap();
    ops::reconcile_with(&f.host, &t.store).unwrap();
    assert!(f
        .calls
        .borrow()
        .contains(&HostCall::Kill(4242, libc::SIGKILL)));

    // After a reboot the pid belongs to something else: it is left alone.
    let t = store();
    let f = fakes(&t);
    let other = row(&t.store, "other", State::Running);
    dead_monitor(&t.store, &other.id);
    let p = t.dir.path().join("proc/4242");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::write(p.join("cgroup"), "4:memory:/user.slice\n").unwrap();
    ops::reconcile_with(&f.host, &t.store).unwrap();
    assert!(!f
        .calls
        .borrow()
        .iter()
        .any(|c| matches!(c, HostCall::Kill(..))));
}

#[test]
fn reconcile_removes_auto_remove_containers_entirely() {
    let t = store();
    let f = fakes(&t);
    let mut c = row(&t.store, "rm", State::Running);
    c.config.auto_remove = true;
    // Rewrite the row with --rm: delete and insert again.
    state::delete(&t.store, &c.id).unwrap();
    c.state = State::Created;
    state::insert(&t.store, &c).unwrap();
    state::mark_running(&t.store, &c.id, 4242).unwrap();
    dead_monitor(&t.store, &c.id);
    ops::reconcile_with(&f.host, &t.store).unwrap();
    assert!(state::get(&t.store, &c.id).unwrap().is_none());
    assert!(!Bundle::new(t.store.root(), &c.id).dir.exists());
}

#[test]
fn stop_of_an_exited_container_only_records_the_request() {
    let t = store();
    let f = fakes(&t);
    let c = row(&t.store, "s", State::Exited);
    ops::stop_with(&f.host, &t.store, &c, Some(1)).unwrap();
    let after = state::get(&t.store, &c.id).unwrap().unwrap();
    assert!(after.stop_requested);
    assert_eq!(after.state, State::Exited);
    assert!(f.calls.borrow().is_empty());
    assert!(f.runtime.calls().is_empty());
}

#[test]
fn stop_of_a_container_whose_monitor_died_reconciles_it() {
    let t = store();
    let f = fakes(&t);
    let c = row(&t.store, "s2", State::Running);
    dead_monitor(&t.store, &c.id);
    ops::stop_with(&f.host, &t.store, &c, Some(1)).unwrap();
    let after = state::get(&t.store, &c.id).unwrap().unwrap();
    assert_eq!(after.state, State::Exited);
    assert_eq!(f.runtime.calls(), vec![Call::Delete(c.id.clone())]);
}

#[test]
fn kill_needs_a_running_container_with_a_live_monitor() {
    let t = store();
    let f = fakes(&t);
    let c = row(&t.store, "k", State::Exited);
    assert!(matches!(
        ops::kill_with(&f.host, &t.store, &c, libc::SIGTERM),
        Err(EngineError::NotRunning(_))
    ));
    let r = row(&t.store, "k2", State::Running);
    dead_monitor(&t.store, &r.id);
    assert!(matches!(
        ops::kill_with(&f.host, &t.store, &r, libc::SIGTERM),
        Err(EngineError::NotRunning(_))
    ));
    live_monitor(&t.store, &r.id);
    ops::kill_with(&f.host, &t.store, &r, libc::SIGUSR1).unwrap();
    assert_eq!(*f.calls.borrow(), vec![HostCall::Kill(4242, libc::SIGUSR1)]);
}

/// A container process that ignores `ignore` and dies (its monitor recording the exit) on any
/// other signal.
#[derive(Debug)]
struct Stubborn {
    store: berth_store::Store,
    id: String,
    ignore: i32,
    sent: std::cell::RefCell<Vec<i32>>,
}

impl crate::host::Signals for Stubborn {
    fn signal_container(&self, _pid: i32, _id: &str, sig: i32) -> std::io::Result<bool> {
        self.sent.borrow_mut().push(sig);
        if sig != self.ignore {
            state::mark_exited(&self.store, &self.id, 128 + sig, false, None).unwrap();
        }
        Ok(true)
    }
}

#[test]
fn stop_sends_the_stop_signal_then_sigkill_after_the_timeout() {
    let t = store();
    let mut f = fakes(&t);
    let mut c = row(&t.store, "st", State::Running);
    live_monitor(&t.store, &c.id);
    c.config.stop_signal = "SIGINT".into();
    let sig = std::rc::Rc::new(Stubborn {
        store: berth_store::Store::open(t.store.root()).unwrap(),
        id: c.id.clone(),
        ignore: libc::SIGINT,
        sent: Default::default(),
    });
    f.host.signals = sig.clone();
    ops::stop_with(&f.host, &t.store, &c, Some(0)).unwrap();
    assert_eq!(*sig.sent.borrow(), vec![libc::SIGINT, libc::SIGKILL]);
    let after = state::get(&t.store, &c.id).unwrap().unwrap();
    assert_eq!(after.exit_code, Some(137));
    assert!(after.stop_requested);
}

#[test]
fn stop_needs_no_sigkill_when_the_container_obeys() {
    let t = store();
    let mut f = fakes(&t);
    let c = row(&t.store, "st2", State::Running);
    live_monitor(&t.store, &c.id);
    let sig = std::rc::Rc::new(Stubborn {
        store: berth_store::Store::open(t.store.root()).unwrap(),
        id: c.id.clone(),
        ignore: 0,
        sent: Default::default(),
    });
    f.host.signals = sig.clone();
    ops::stop_with(&f.host, &t.store, &c, Some(5)).unwrap();
    assert_eq!(*sig.sent.borrow(), vec![libc::SIGTERM]);
}

#[test]
fn remove_refuses_a_running_container_without_force() {
    let t = store();
    let f = fakes(&t);
    let c = row(&t.store, "busy", State::Running);
    live_monitor(&t.store, &c.id);
    let e = ops::remove_with(&f.host, &t.store, &c, false).unwrap_err();
    assert!(e.to_string().contains("rm -f"), "{e}");
    assert!(state::get(&t.store, &c.id).unwrap().is_some());
    assert!(f.runtime.calls().is_empty());
}

#[test]
fn remove_releases_network_runtime_cgroups_and_directory_in_order() {
    let t = store();
    let f = fakes(&t);
    let c = row(&t.store, "gone", State::Exited);
    let cg = t
        .dir
        .path()
        .join("cgroup/pids")
        .join(c.cgroup_path().trim_start_matches('/'));
    std::fs::create_dir_all(&cg).unwrap();
    ops::remove_with(&f.host, &t.store, &c, false).unwrap();
    assert!(state::get(&t.store, &c.id).unwrap().is_none());
    assert!(!Bundle::new(t.store.root(), &c.id).dir.exists());
    assert!(!cg.exists());
    assert_eq!(*f.calls.borrow(), vec![HostCall::NetTeardown(c.id.clone())]);
    assert_eq!(f.runtime.calls(), vec![Call::Delete(c.id.clone())]);
}

#[test]
fn remove_keeps_going_when_the_runtime_fails() {
    let t = store();
    let f = fakes(&t);
    f.runtime.fail_on("delete");
    let c = row(&t.store, "stubborn", State::Exited);
    ops::remove_with(&f.host, &t.store, &c, false).unwrap();
    assert!(state::get(&t.store, &c.id).unwrap().is_none());
}

#[test]
fn sweep_removes_only_old_directories_without_a_row() {
    let t = store();
    let kept = row(&t.store, "kept", State::Created);
    let base = t.store.root().join("containers");
    let old = base.join("f".repeat(64));
    let young = base.join("e".repeat(64));
    std::fs::create_dir_all(&old).unwrap();
    std::fs::create_dir_all(&young).unwrap();
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::open(&old)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    let old_kept = Bundle::new(t.store.root(), &kept.id).dir;
    std::fs::File::open(&old_kept)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    ops::sweep(&t.store).unwrap();
    assert!(!old.exists());
    assert!(young.exists());
    assert!(old_kept.exists());
}

#[test]
fn a_single_stats_sample_takes_cpu_percent_over_the_containers_life() {
    let t = store();
    let mut c = row(&t.store, "cpu", State::Running);
    c.started_at = Some((chrono::Utc::now() - chrono::Duration::seconds(10)).to_rfc3339());
    let mut s = ops::Stats::default();
    s.cgroup.cpu_usage_ns = 5_000_000_000;
    let pct = ops::lifetime_cpu_percent(&c, &s);
    assert!((45.0..=50.5).contains(&pct), "{pct}");
    c.state = State::Exited;
    assert_eq!(ops::lifetime_cpu_percent(&c, &s), 0.0);
    c.state = State::Running;
    c.started_at = None;
    assert_eq!(ops::lifetime_cpu_percent(&c, &s), 0.0);
}
