//! `berth build` end to end: images built from Dockerfiles are checked by running them.
//! Run as root (RUN steps are containers; layers keep owners and whiteouts).

#[path = "common/build.rs"]
mod buildutil;
mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use buildutil::{build, build_ok, context, run};
use common::*;
use serde_json::Value;

fn inspect(env: &TestEnv, name: &str) -> Value {
    let out = env.ok(&["image", "inspect", name]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

#[test]
fn multi_stage_copy_from_and_target() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let dir = context(
        &env,
        "ms",
        &[(
            "Dockerfile",
            "FROM busybox:local AS build\n\
             RUN echo built > /artifact && mkdir -p /out/sub && echo x > /out/sub/f\n\
             FROM busybox:local AS unused\n\
             RUN exit 7\n\
             FROM busybox:local AS other\n\
             RUN echo other > /other\n\
             FROM busybox:local\n\
             COPY --from=build /artifact /app/artifact\n\
             COPY --from=other /other /app/other\n\
             COPY --from=0 /out/ /app/out/\n\
             CMD [\"cat\", \"/app/artifact\"]\n",
        )],
    );
    let log = build_ok(&env, &dir, &["-t", "ms:1"]);
    assert!(
        !log.contains("exit 7"),
        "the unused stage was built:\n{log}"
    );
    assert_eq!(run(&env, "ms:1", &[]), "built\n");
    assert_eq!(run(&env, "ms:1", &["cat", "/app/out/sub/f"]), "x\n");
    // The independent stages build and both reach the final one.
    assert_eq!(run(&env, "ms:1", &["cat", "/app/other"]), "other\n");
    // --target builds only what that stage needs.
    build_ok(&env, &dir, &["-t", "ms:build", "--target", "build"]);
    assert_eq!(run(&env, "ms:build", &["cat", "/artifact"]), "built\n");
    let out = build(&env, &dir, &["-t", "ms:unused", "--target", "unused"]);
    assert!(!out.status.success());
}

#[test]
fn heredocs() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let dir = context(
        &env,
        "hd",
        &[(
            "Dockerfile",
            "FROM busybox:local\n\
             RUN <<EOF\n\
             echo one > /h1\n\
             echo two >> /h1\n\
             EOF\n\
             RUN <<A cat > /a && <<-'B' cat > /b\n\
             alpha $HOME\n\
             A\n\
             \tbeta $HOME\n\
             \tB\n\
             ENV NAME=berth\n\
             COPY <<EOT /etc/greeting\n\
             hello ${NAME:-world} \"quoted\"\n\
             EOT\n\
             RUN <<EOF\n\
             #!/bin/sh\n\
             echo script > /s\n\
             EOF\n",
        )],
    );
    build_ok(&env, &dir, &["-t", "hd"]);
    assert_eq!(run(&env, "hd", &["cat", "/h1"]), "one\ntwo\n");
    assert_eq!(run(&env, "hd", &["cat", "/a"]), "alpha /root\n");
    assert_eq!(run(&env, "hd", &["cat", "/b"]), "beta $HOME\n");
    assert_eq!(
        run(&env, "hd", &["cat", "/etc/greeting"]),
        "hello berth \"quoted\"\n"
    );
    assert_eq!(run(&env, "hd", &["cat", "/s"]), "script\n");
}

#[test]
fn arg_and_env_expansion() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let dir = context(
        &env,
        "args",
        &[(
            "Dockerfile",
            "ARG BASE=busybox:local\n\
             FROM $BASE\n\
             ARG VERSION=1\n\
             ARG EMPTY\n\
             ENV APP_VERSION=${VERSION} GREETING=\"hello world\" DEF=${EMPTY:-dflt} ALT=${VERSION:+set}\n\
             ENV DIR=/opt/app\n\
             WORKDIR $DIR\n\
             WORKDIR sub\n\
             RUN echo \"$APP_VERSION|$GREETING|$DEF|$ALT|$(pwd)|$VERSION\" > /out\n\
             LABEL version=$VERSION \"two words\"=\"a b\"\n\
             EXPOSE 80 ${VERSION}53/udp\n",
        )],
    );
    build_ok(&env, &dir, &["-t", "args", "--build-arg", "VERSION=2"]);
    assert_eq!(
        run(&env, "args", &["cat", "/out"]),
        "2|hello world|dflt|set|/opt/app/sub|2\n"
    );
    // ARG values do not stay in the image; ENV does.
    assert_eq!(
        run(
            &env,
            "args",
            &["sh", "-c", "echo \"[$VERSION][$APP_VERSION]\""]
        ),
        "[][2]\n"
    );
    let i = inspect(&env, "args");
    assert_eq!(i["Config"]["Labels"]["version"], "2");
    assert_eq!(i["Config"]["Labels"]["two words"], "a b");
    assert_eq!(i["Config"]["WorkingDir"], "/opt/app/sub");
    let ports = i["Config"]["ExposedPorts"].as_object().unwrap();
    assert!(
        ports.contains_key("80/tcp") && ports.contains_key("253/udp"),
        "{ports:?}"
    );
}

#[test]
fn dockerignore_exceptions() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let dir = context(
        &env,
        "ign",
        &[
            ("Dockerfile", "FROM busybox:local\nCOPY . /ctx/\n"),
            (
                ".dockerignore",
                "*.log\n!keep.log\nsecret\n!secret/keep\n**/*.tmp\n",
            ),
            ("a.txt", "a"),
            ("b.log", "b"),
            ("keep.log", "k"),
            ("secret/x", "x"),
            ("secret/keep", "kept"),
            ("deep/dir/junk.tmp", "t"),
            ("deep/dir/ok.txt", "ok"),
        ],
    );
    build_ok(&env, &dir, &["-t", "ign"]);
    let ls = run(
        &env,
        "ign",
        &["ls", "-a", "/ctx", "/ctx/secret", "/ctx/deep/dir"],
    );
    for want in ["a.txt", "keep.log", "keep", "ok.txt"] {
        assert!(ls.contains(want), "{want} missing:\n{ls}");
    }
    for gone in ["b.log", "junk.tmp", "\nx\n"] {
        assert!(!ls.contains(gone), "{gone} copied:\n{ls}");
    }
    // Changing an ignored file does not invalidate the COPY.
    std::fs::write(dir.join("b.log"), "changed").unwrap();
    let log = build_ok(&env, &dir, &["-t", "ign"]);
    assert!(log.contains("CACHED"), "{log}");
    assert!(!log.contains("cache miss"), "{log}");
}

#[test]
fn user_workdir_shell() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let dir = context(
        &env,
        "uws",
        &[(
            "Dockerfile",
            "FROM busybox:local\n\
             WORKDIR /work\n\
             RUN touch by-root\n\
             USER app\n\
             RUN id -u > /tmp/uid && pwd > /tmp/pwd\n\
             USER root\n\
             SHELL [\"/bin/sh\", \"-c\", \"echo custom > /tmp/marker; eval \\\"$1\\\"\", \"shell\"]\n\
             RUN echo via-shell > /tmp/ran\n\
             USER app:app\n\
             CMD id -un\n",
        )],
    );
    build_ok(&env, &dir, &["-t", "uws"]);
    assert_eq!(run(&env, "uws", &["cat", "/tmp/uid"]), "1000\n");
    assert_eq!(run(&env, "uws", &["cat", "/tmp/pwd"]), "/work\n");
    assert_eq!(
        run(&env, "uws", &["cat", "/tmp/marker", "/tmp/ran"]),
        "custom\nvia-shell\n"
    );
    assert_eq!(
        run(&env, "uws", &["stat", "-c", "%u", "/work/by-root"]),
        "0\n"
    );
    // CMD in shell form uses SHELL; the image runs as app in /work.
    assert_eq!(run(&env, "uws", &[]), "app\n");
    let i = inspect(&env, "uws");
    assert_eq!(i["Config"]["User"], "app:app");
    assert_eq!(i["Config"]["Cmd"][4], "id -un");
}

#[test]
fn whiteouts_and_opaque_dirs() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let dir = context(
        &env,
        "wh",
        &[(
            "Dockerfile",
            "FROM busybox:local\n\
             RUN mkdir -p /data/dir && echo a > /data/file && echo b > /data/dir/old && echo k > /data/keep\n\
             RUN rm /data/file && rm -rf /data/dir && mkdir /data/dir && echo n > /data/dir/new && rm /bin/wget\n",
        )],
    );
    build_ok(&env, &dir, &["-t", "wh"]);
    assert_eq!(run(&env, "wh", &["ls", "/data"]), "dir\nkeep\n");
    assert_eq!(run(&env, "wh", &["ls", "/data/dir"]), "new\n");
    assert_eq!(
        run(&env, "wh", &["sh", "-c", "test -e /bin/wget || echo gone"]),
        "gone\n"
    );
    // The saved image carries OCI whiteouts: a fresh store loading it sees the same.
    let tar = env.path("wh.tar");
    env.ok(&["save", "-o", tar.to_str().unwrap(), "wh"]);
    let env2 = TestEnv::new();
    env2.ok(&["load", "-i", tar.to_str().unwrap()]);
    assert_eq!(
        run(&env2, "wh", &["ls", "/data", "/data/dir"]),
        "/data:\ndir\nkeep\n\n/data/dir:\nnew\n"
    );
}

#[test]
fn cache_hit_and_miss() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let dir = context(
        &env,
        "cache",
        &[
            (
                "Dockerfile",
                "FROM busybox:local\n\
                 COPY app.txt /app.txt\n\
                 RUN cat /app.txt > /copy && echo RAN-$((40+2))\n\
                 COPY other.txt /other.txt\n\
                 ENV X=1\n\
                 CMD [\"cat\", \"/copy\"]\n",
            ),
            ("app.txt", "v1\n"),
            ("other.txt", "o1\n"),
        ],
    );
    let first = build_ok(
        &env,
        &dir,
        &["-t", "c:1", "--iidfile", env.path("iid1").to_str().unwrap()],
    );
    assert!(first.contains("RAN-42"), "{first}");
    let layers_before = std::fs::read_dir(env.root.join("layers")).unwrap().count();
    // No change: every step from the cache, no container, no new layer, same image.
    let second = build_ok(
        &env,
        &dir,
        &["-t", "c:2", "--iidfile", env.path("iid2").to_str().unwrap()],
    );
    assert!(!second.contains("RAN-42"), "{second}");
    assert!(!second.contains("cache miss"), "{second}");
    assert_eq!(second.matches("CACHED").count(), 3, "{second}");
    assert_eq!(
        std::fs::read_dir(env.root.join("layers")).unwrap().count(),
        layers_before
    );
    assert_eq!(
        std::fs::read_to_string(env.path("iid1")).unwrap(),
        std::fs::read_to_string(env.path("iid2")).unwrap()
    );
    // mtime-only changes do not matter.
    let f = std::fs::File::options()
        .write(true)
        .open(dir.join("app.txt"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(100))
        .unwrap();
    drop(f);
    let third = build_ok(&env, &dir, &["-t", "c:3"]);
    assert!(!third.contains("cache miss"), "{third}");
    // A changed file: that COPY misses and says why; the RUN before it stays cached.
    std::fs::write(dir.join("other.txt"), "o2\n").unwrap();
    let fourth = build_ok(&env, &dir, &["-t", "c:4"]);
    assert!(!fourth.contains("RAN-42"), "{fourth}");
    assert!(fourth.contains("changed: other.txt"), "{fourth}");
    std::fs::write(dir.join("app.txt"), "v2\n").unwrap();
    let fifth = build_ok(&env, &dir, &["-t", "c:5"]);
    assert!(fifth.contains("changed: app.txt"), "{fifth}");
    assert!(fifth.contains("RAN-42"), "{fifth}");
    assert_eq!(run(&env, "c:5", &[]), "v2\n");
    // --no-cache runs everything again.
    let sixth = build_ok(&env, &dir, &["-t", "c:6", "--no-cache"]);
    assert!(sixth.contains("RAN-42"), "{sixth}");
    // builder prune empties the cache.
    env.ok(&["builder", "prune", "-a", "-f"]);
    let seventh = build_ok(&env, &dir, &["-t", "c:7"]);
    assert!(seventh.contains("RAN-42"), "{seventh}");
}

#[test]
fn failing_run_reports_step_and_leaves_no_image() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let dir = context(
        &env,
        "fail",
        &[(
            "Dockerfile",
            "FROM busybox:local\nRUN echo first > /f\nRUN echo about-to-fail && exit 3\nRUN echo never\n",
        )],
    );
    let images_before = env.ok(&["images", "-q"]);
    let out = build(&env, &dir, &["-t", "fail:1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("about-to-fail"), "{err}");
    assert!(err.contains("Dockerfile:3:"), "{err}");
    assert!(err.contains("exited with code 3"), "{err}");
    assert!(err.contains("2/3") || err.contains("3/4"), "{err}");
    assert!(!err.contains("never"), "{err}");
    env.fails(&["image", "inspect", "fail:1"]);
    assert_eq!(env.ok(&["images", "-q"]), images_before);
    // Nothing left mounted or in tmp/ by the failed step.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(env.root.to_str().unwrap()), "{mounts}");
}

#[test]
fn syntax_errors_name_file_and_line() {
    let env = TestEnv::new();
    let dir = context(
        &env,
        "syn",
        &[
            (
                "Dockerfile",
                "FROM busybox:local\n\n# comment\nRUNN echo x\n",
            ),
            (
                "other/Containerfile",
                "FROM busybox:local\nRUN <<EOF\necho never ends\n",
            ),
        ],
    );
    let out = build(&env, &dir, &["-t", "syn"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Dockerfile:4:"), "{err}");
    assert!(err.contains("RUNN"), "{err}");
    let f = dir.join("other/Containerfile");
    let out = build(&env, &dir, &["-f", f.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Containerfile:2:"), "{err}");
    assert!(err.contains("EOF"), "{err}");
}

#[test]
fn add_archive_and_url_with_checksum() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let mut t = TarBuilder::new();
    t.dir("pkg", 0o755)
        .file("pkg/inside.txt", 0o644, b"from-tar\n");
    let dir = context(&env, "add", &[]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&t.finish()).unwrap();
    std::fs::write(dir.join("bundle.tar.gz"), gz.finish().unwrap()).unwrap();
    // A one-shot HTTP server on loopback.
    let body = b"downloaded\n".to_vec();
    let sum = sha256(&body);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        for _ in 0..2 {
            let Ok((mut s, _)) = l.accept() else { return };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            );
            let _ = s.write_all(&body);
        }
    });
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM busybox:local\n\
             ADD bundle.tar.gz /opt/\n\
             ADD --checksum={sum} http://127.0.0.1:{port}/files/dl.txt /dl/\n"
        ),
    )
    .unwrap();
    build_ok(&env, &dir, &["-t", "add"]);
    assert_eq!(
        run(&env, "add", &["cat", "/opt/pkg/inside.txt", "/dl/dl.txt"]),
        "from-tar\ndownloaded\n"
    );
    // A wrong checksum fails the build.
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM busybox:local\nADD --checksum=sha256:{} http://127.0.0.1:{port}/x /x\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    let out = build(&env, &dir, &["-t", "add:bad"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("checksum"));
    let _ = server.join();
}

#[test]
fn context_from_stdin_and_run_mounts() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let mut t = TarBuilder::new();
    t.file(
        "Dockerfile",
        0o644,
        b"FROM busybox:local\n\
          COPY data.txt /data.txt\n\
          RUN --mount=type=cache,target=/cache sh -c 'echo x >> /cache/count; wc -l < /cache/count > /runs'\n\
          RUN --mount=type=bind,source=data.txt,target=/mnt/d cat /mnt/d > /from-bind\n\
          RUN --mount=type=tmpfs,target=/scratch sh -c 'echo t > /scratch/f && cat /scratch/f > /from-tmpfs'\n\
          RUN --mount=type=secret,id=tok cat /run/secrets/tok > /tmp/leak-check-len && wc -c < /run/secrets/tok > /secret-len && rm /tmp/leak-check-len\n",
    )
    .file("data.txt", 0o644, b"payload\n");
    let tar = t.finish();
    let secret = env.path("tok");
    std::fs::write(&secret, "s3cret").unwrap();
    let sec = format!("id=tok,src={}", secret.display());
    let out = env.berth_stdin(
        &[
            "build",
            "--progress",
            "plain",
            "--network",
            "none",
            "--secret",
            &sec,
            "-t",
            "stdin",
            "-",
        ],
        &tar,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        run(
            &env,
            "stdin",
            &[
                "cat",
                "/data.txt",
                "/from-bind",
                "/from-tmpfs",
                "/secret-len"
            ]
        ),
        "payload\npayload\nt\n6\n"
    );
    assert_eq!(run(&env, "stdin", &["cat", "/runs"]), "1\n");
    // Mount points and secrets stay out of the image.
    assert_eq!(
        run(
            &env,
            "stdin",
            &[
                "sh",
                "-c",
                "ls /cache /scratch /mnt/d /run/secrets 2>&1 | grep -c 'No such' ; true"
            ]
        ),
        "4\n"
    );
    // The cache mount survives across builds (even with --no-cache).
    let out = env.berth_stdin(
        &[
            "build",
            "--progress",
            "plain",
            "--network",
            "none",
            "--no-cache",
            "--secret",
            &sec,
            "-t",
            "stdin:2",
            "-",
        ],
        &tar,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(run(&env, "stdin:2", &["cat", "/runs"]), "2\n");
}

#[test]
fn built_image_saves_for_skopeo_and_commit_history() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let dir = context(
        &env,
        "save",
        &[
            (
                "Dockerfile",
                "FROM busybox:local\n\
                 LABEL org.example.name=demo\n\
                 ENV MODE=prod\n\
                 COPY hello.txt /srv/hello.txt\n\
                 RUN echo built > /srv/built\n\
                 EXPOSE 8080\n\
                 STOPSIGNAL SIGINT\n\
                 HEALTHCHECK --interval=5s CMD true\n\
                 ONBUILD RUN echo child > /child\n\
                 ENTRYPOINT [\"cat\"]\n\
                 CMD [\"/srv/hello.txt\"]\n",
            ),
            ("hello.txt", "hello\n"),
        ],
    );
    // The default network (bridge) works for RUN steps.
    let mut a = vec![
        "build",
        "--progress",
        "plain",
        "-t",
        "saved:1",
        "--label",
        "extra=yes",
    ];
    a.push(dir.to_str().unwrap());
    env.ok(&a);
    assert_eq!(run(&env, "saved:1", &[]), "hello\n");
    let i = inspect(&env, "saved:1");
    assert_eq!(i["Config"]["StopSignal"], "SIGINT");
    assert_eq!(i["Config"]["Healthcheck"]["Test"][0], "CMD-SHELL");
    assert_eq!(i["Config"]["OnBuild"][0], "RUN echo child > /child");
    assert_eq!(i["Config"]["Labels"]["extra"], "yes");
    // history: newest first, with created_by and sizes.
    let h = env.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Size}}",
        "saved:1",
    ]);
    let lines: Vec<&str> = h.lines().collect();
    assert!(lines[0].starts_with("CMD [\"/srv/hello.txt\"]"), "{h}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("RUN /bin/sh -c echo built > /srv/built")),
        "{h}"
    );
    // save → skopeo reads it.
    let tar = env.path("saved.tar");
    env.ok(&["save", "-o", tar.to_str().unwrap(), "saved:1"]);
    let out = std::process::Command::new("skopeo")
        .args([
            "inspect",
            "--config",
            &format!("docker-archive:{}", tar.display()),
        ])
        .output()
        .expect("skopeo must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cfg["config"]["Labels"]["org.example.name"], "demo");
    assert!(cfg["config"]["Env"].to_string().contains("MODE=prod"));
    let non_empty = cfg["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| !h["empty_layer"].as_bool().unwrap_or(false))
        .count();
    assert_eq!(
        non_empty,
        cfg["rootfs"]["diff_ids"].as_array().unwrap().len()
    );
    // ONBUILD triggers run in a child build.
    let child = context(&env, "child", &[("Dockerfile", "FROM saved:1\n")]);
    build_ok(&env, &child, &["-t", "child"]);
    assert_eq!(run(&env, "child", &["/child"]), "child\n");
    assert!(inspect(&env, "child")["Config"]["OnBuild"].is_null());
    // commit: a container's changes become an image.
    env.ok(&[
        "run",
        "--name",
        "c1",
        "--network",
        "none",
        "--entrypoint",
        "sh",
        "saved:1",
        "-c",
        "echo committed > /srv/new",
    ]);
    env.ok(&[
        "commit",
        "-c",
        "ENTRYPOINT [\"cat\"]",
        "-c",
        "CMD [\"/srv/new\"]",
        "c1",
        "committed:1",
    ]);
    assert_eq!(run(&env, "committed:1", &[]), "committed\n");
    env.ok(&["rm", "c1"]);
}

#[test]
fn compose_builds_services_through_berth_build() {
    let env = TestEnv::new();
    env.busybox_image("busybox:local");
    let dir = context(
        &env,
        "cb",
        &[
            (
                "docker-compose.yml",
                "services:\n  app:\n    build:\n      context: .\n      args:\n        V: \"7\"\n      labels:\n        built.by: compose\n",
            ),
            ("Dockerfile", "FROM busybox:local\nARG V\nRUN echo $V > /v\nCMD [\"cat\", \"/v\"]\n"),
        ],
    );
    let out = env
        .cmd(&["compose", "build"])
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(run(&env, "cb-app", &[]), "7\n");
    assert_eq!(
        inspect(&env, "cb-app")["Config"]["Labels"]["built.by"],
        "compose"
    );
}
