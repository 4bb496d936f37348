//! `berth build` against an oracle: an image berth built (multi-stage, linked and `--parents`
//! copies, a whiteout, WORKDIR/USER/ENV/ENTRYPOINT/CMD) is saved, loaded by podman and run
//! there; its output must be the one `berth run` gives. Root integration test; skipped (with a
//! note) where podman is not installed.

#[path = "common/build.rs"]
mod buildutil;
mod common;

use std::path::PathBuf;
use std::process::Command;

use buildutil::{build_ok, context};
use common::*;

/// podman with its own storage (vfs: no mounts to clean) under the test directory.
struct Podman {
    root: PathBuf,
}

impl Podman {
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let o = Command::new("podman")
            .arg("--root")
            .arg(self.root.join("root"))
            .arg("--runroot")
            .arg(self.root.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .output()
            .expect("podman runs");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-af", "-t", "0"]);
        let _ = self.run(&["rmi", "-af"]);
    }
}

#[test]
fn built_image_runs_the_same_under_podman() {
    if Command::new("podman").arg("--version").output().is_err() {
        eprintln!("podman is not installed: the oracle comparison is skipped");
        return;
    }
    let env = TestEnv::new();
    // The base is built here too, FROM scratch: the shared busybox fixture writes its hard
    // links with mode 0644 headers, which podman (as Docker) applies to the shared inode.
    let dir = context(
        &env,
        "oracle",
        &[
            (
                "Dockerfile",
                "FROM scratch AS base\n\
                 COPY busybox /bin/busybox\n\
                 COPY passwd /etc/passwd\n\
                 RUN [\"/bin/busybox\", \"ln\", \"-s\", \"busybox\", \"/bin/sh\"]\n\
                 FROM base AS build\n\
                 RUN mkdir -p /out && echo built > /out/app\n\
                 FROM base\n\
                 ENV GREETING=hello\n\
                 WORKDIR /srv\n\
                 COPY --from=build /out/app ./app\n\
                 COPY --link msg.txt /srv/\n\
                 COPY --link msg.txt /srv/\n\
                 COPY --parents conf/./a/b.conf /etc/\n\
                 RUN echo x > /srv/deleted && chmod 604 /srv/app\n\
                 RUN rm /srv/deleted\n\
                 USER 1000:1000\n\
                 ENTRYPOINT [\"/bin/sh\", \"-c\"]\n\
                 CMD [\"echo $GREETING; pwd; busybox id -u; busybox cat /srv/app /srv/msg.txt /etc/a/b.conf; busybox ls /srv; busybox stat -c %a /srv/app\"]\n",
            ),
            ("msg.txt", "message\n"),
            ("conf/a/b.conf", "conf\n"),
            ("passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        ],
    );
    std::fs::copy("/bin/busybox", dir.join("busybox")).unwrap();
    build_ok(&env, &dir, &["-t", "oracle:1"]);
    let ours = env.ok(&["run", "--rm", "--network", "none", "oracle:1"]);
    assert_eq!(
        ours,
        "hello\n/srv\n1000\nbuilt\nmessage\nconf\napp\nmsg.txt\n604\n"
    );
    let tar = env.path("oracle.tar");
    env.ok(&["save", "-o", tar.to_str().unwrap(), "oracle:1"]);
    let podman = Podman {
        root: env.dir.join("podman"),
    };
    let (ok, _, err) = podman.run(&["load", "-i", tar.to_str().unwrap()]);
    assert!(ok, "podman load: {err}");
    let (ok, theirs, err) = podman.run(&["run", "--rm", "--network", "none", "oracle:1"]);
    assert!(ok, "podman run: {err}");
    assert_eq!(theirs, ours);
}
