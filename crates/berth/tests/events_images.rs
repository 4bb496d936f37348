//! Image events of the commands that talk to registries and make images (issue 13): `pull`
//! and `push` against Debian's docker-registry on loopback, `build` and `commit`, with
//! Docker's actions, actors and `name` attributes, in order. Root integration tests.

mod common;
#[path = "common/registry.rs"]
mod registry_support;

use common::TestEnv;
use registry_support::Registry;

/// The events passing `filter` in the test's own store (its whole log, `--since 0`) after the
/// first `skip` of them, as `ACTION ACTOR NAME` lines.
fn image_events(env: &TestEnv, skip: usize, filter: &str) -> Vec<String> {
    let since = "0";
    let until = (chrono::Utc::now().timestamp() + 1).to_string();
    env.ok(&[
        "events",
        "--since",
        since,
        "--until",
        &until,
        "--filter",
        filter,
        "--format",
        "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.name}}",
    ])
    .lines()
    .map(|l| l.trim_end().to_string())
    .skip(skip)
    .collect()
}

#[test]
fn pull_and_push_record_docker_image_events() {
    let reg = Registry::plain();
    let env = TestEnv::new();
    env.busybox_image("evreg:1");
    let before = image_events(&env, 0, "type=image").len();
    let dest = format!("{}/team/evreg:1", reg.host());
    env.ok(&["push", "evreg:1", &dest]);
    let env2 = TestEnv::new();
    env2.ok(&["pull", &dest]);
    // Docker: actor = the familiar reference, name = the repository.
    let repo = format!("{}/team/evreg", reg.host());
    assert_eq!(
        image_events(&env, before, "type=image"),
        [format!("push {dest} {repo}")]
    );
    let got = image_events(&env2, 0, "type=image");
    assert_eq!(got, [format!("pull {dest} {repo}")], "{got:?}");
    // The filters apply to them like to any event.
    assert_eq!(image_events(&env2, 0, "event=push"), Vec::<String>::new());
    assert_eq!(image_events(&env2, 0, &format!("image={dest}")).len(), 1);
}

#[test]
fn build_and_commit_record_docker_image_events() {
    let env = TestEnv::new();
    let base = env.busybox_image("evb:1");
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM evb:1\nLABEL purpose=events\n").unwrap();
    let before = image_events(&env, 0, "type=image").len();
    env.ok(&[
        "build",
        "-q",
        "-t",
        "evbuilt:1",
        "-t",
        "evbuilt",
        ctx.to_str().unwrap(),
    ]);
    let id = env
        .ok(&["image", "inspect", "--format", "{{.Id}}", "evbuilt:1"])
        .trim()
        .to_string();
    assert_ne!(id, base);
    // Docker (BuildKit's exporter): a `tag` per name, then `create` with the id as name; no
    // container events.
    assert_eq!(
        image_events(&env, before, "type=image"),
        [
            format!("tag {id} evbuilt:1"),
            format!("tag {id} evbuilt:latest"),
            format!("create {id} {id}"),
        ]
    );
    assert_eq!(
        image_events(&env, 0, "type=container"),
        Vec::<String>::new()
    );

    // commit: the image `tag`, then the container's `commit` naming the new image.
    env.ok(&[
        "create",
        "--name",
        "evc",
        "--network=none",
        "evbuilt:1",
        "true",
    ]);
    let before = image_events(&env, 0, "type=image").len();
    env.ok(&["commit", "-m", "snap", "evc", "evsnap:2"]);
    let snap = env
        .ok(&["image", "inspect", "--format", "{{.Id}}", "evsnap:2"])
        .trim()
        .to_string();
    assert_eq!(
        image_events(&env, before, "type=image"),
        [format!("tag {snap} evsnap:2")]
    );
    let until = (chrono::Utc::now().timestamp() + 1).to_string();
    let c = env.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &until,
        "--filter",
        "event=commit",
        "--format",
        "{{.Type}} {{.Actor.Attributes.name}} {{.Actor.Attributes.comment}} {{.Actor.Attributes.imageID}} {{.Actor.Attributes.imageRef}}",
    ]);
    assert_eq!(c.trim_end(), format!("container evc snap {snap} evsnap:2"));
    env.ok(&["rm", "evc"]);
}
