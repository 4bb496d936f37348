//! `berth build`: independent stages build at the same time. Two stages meet through a shared
//! cache mount (each waits, a bounded number of times, for the other's mark), which only
//! succeeds when both RUN steps are running together. Run as root.

#[path = "common/build.rs"]
mod buildutil;
mod common;

use buildutil::{build_ok, context, run};
use common::*;

#[test]
fn independent_stages_run_in_parallel() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let wait = |me: &str, other: &str| {
        format!(
            "RUN --mount=type=cache,id=meet,target=/m,sharing=shared touch /m/{me} && i=0 && \
             while [ ! -e /m/{other} ]; do i=$((i+1)); [ $i -le 600 ] || exit 3; sleep 0.1; done && \
             echo {me}-met-{other} > /{me}.txt\n"
        )
    };
    let df = format!(
        "FROM busybox:local AS a\n{}FROM busybox:local AS b\n{}FROM busybox:local\n\
         COPY --from=a /a.txt /\nCOPY --from=b /b.txt /\n",
        wait("a", "b"),
        wait("b", "a")
    );
    let dir = context(&env, "par", &[("Dockerfile", &df)]);
    build_ok(&env, &dir, &["-t", "par"]);
    assert_eq!(
        run(&env, "par", &["cat", "/a.txt", "/b.txt"]),
        "a-met-b\nb-met-a\n"
    );
}
