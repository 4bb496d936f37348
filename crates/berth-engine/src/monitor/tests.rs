//! The restart policy with backoff, as the monitor applies it.

use std::time::Duration;

use super::{after_exit, AfterExit, BACKOFF_MAX, BACKOFF_START};
use crate::config::RestartPolicy;

fn policy(s: &str) -> RestartPolicy {
    RestartPolicy::parse(s).unwrap()
}

const SHORT: Duration = Duration::from_millis(50);

#[test]
fn no_policy_never_restarts() {
    for code in [0, 1, 137] {
        assert_eq!(
            after_exit(
                &RestartPolicy::default(),
                code,
                0,
                false,
                true,
                SHORT,
                BACKOFF_START
            ),
            AfterExit::Finish
        );
        assert_eq!(
            after_exit(&policy("no"), code, 0, false, true, SHORT, BACKOFF_START),
            AfterExit::Finish
        );
    }
}

#[test]
fn on_failure_counts_retries_and_ignores_success() {
    let p = policy("on-failure:2");
    assert!(matches!(
        after_exit(&p, 1, 0, false, true, SHORT, BACKOFF_START),
        AfterExit::Restart { .. }
    ));
    assert!(matches!(
        after_exit(&p, 1, 1, false, true, SHORT, BACKOFF_START),
        AfterExit::Restart { .. }
    ));
    assert_eq!(
        after_exit(&p, 1, 2, false, true, SHORT, BACKOFF_START),
        AfterExit::Finish
    );
    assert_eq!(
        after_exit(&p, 0, 0, false, true, SHORT, BACKOFF_START),
        AfterExit::Finish
    );
}

#[test]
fn backoff_doubles_from_100ms_and_caps_at_a_minute() {
    let p = policy("always");
    let mut backoff = BACKOFF_START;
    let mut delays = Vec::new();
    for n in 0..12 {
        match after_exit(&p, 0, n, false, true, SHORT, backoff) {
            AfterExit::Restart { delay, next } => {
                delays.push(delay.as_millis());
                backoff = next;
            }
            AfterExit::Finish => panic!("always must restart"),
        }
    }
    assert_eq!(&delays[..5], &[100, 200, 400, 800, 1600]);
    assert_eq!(*delays.last().unwrap(), BACKOFF_MAX.as_millis());
}

#[test]
fn a_long_run_resets_the_backoff() {
    let p = policy("unless-stopped");
    let r = after_exit(
        &p,
        0,
        5,
        false,
        true,
        Duration::from_secs(11),
        Duration::from_secs(30),
    );
    assert_eq!(
        r,
        AfterExit::Restart {
            delay: BACKOFF_START,
            next: BACKOFF_START * 2
        }
    );
}

#[test]
fn a_stop_request_or_a_removed_row_ends_the_container() {
    let p = policy("always");
    assert_eq!(
        after_exit(&p, 1, 0, true, true, SHORT, BACKOFF_START),
        AfterExit::Finish
    );
    assert_eq!(
        after_exit(&p, 1, 0, false, false, SHORT, BACKOFF_START),
        AfterExit::Finish
    );
}

#[test]
fn a_zero_backoff_from_an_old_supervisor_starts_at_the_minimum() {
    let p = policy("always");
    assert!(matches!(
        after_exit(&p, 0, 0, false, true, SHORT, Duration::ZERO),
        AfterExit::Restart { delay, .. } if delay == BACKOFF_START
    ));
}

#[test]
fn a_runtime_eperm_with_ulimits_names_them() {
    let u = crate::security::parse_ulimit("nproc=10:20").unwrap();
    let e = super::ulimit_hint(
        crate::EngineError::Runtime(
            "failed to create container: intermediate process error EPERM".into(),
        ),
        &[u],
    )
    .to_string();
    assert!(e.ends_with("EPERM: the kernel may have refused a ulimit (nproc=10:20): lower its hard limit to what this host allows (nofile: at most /proc/sys/fs/nr_open)"), "{e}");
    let e = super::ulimit_hint(crate::EngineError::Runtime("EPERM".into()), &[]).to_string();
    assert_eq!(e, "runtime: EPERM");
}
