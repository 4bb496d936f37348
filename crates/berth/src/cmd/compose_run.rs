//! `berth compose up/down/ps/logs/exec/run/…`: flags → `berth-compose-run` calls.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use berth_compose::Project;
use berth_compose_run::convert::{self, Instance};
use berth_compose_run::project::{self as proj, ProjectContainer};
use berth_compose_run::{labels, logs, RunError};
use berth_engine::attach::{self, ExecRequest};
use berth_engine::ops::{self, Attach};
use berth_engine::state::{self, State};
use serde_json::json;

use super::compose::{ComposeCmd, LogsArgs, LsArgs, PsArgs, RunArgs, UpArgs};
use super::{ago, print_table, Ctx, ExitError};

fn rerr(e: RunError) -> anyhow::Error {
    anyhow::Error::new(ExitError {
        code: u8::try_from(e.exit_code()).unwrap_or(1),
        msg: e.to_string(),
    })
}

/// Progress lines on stderr, as Docker compose prints them (` ✔ Container x  Started`).
fn progress(obj: &str, status: &str) {
    eprintln!(" {obj}  {status}");
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn catch_sigint() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_sigint as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_sigint as *const () as libc::sighandler_t);
    }
}

/// Prefix of a container in logs: its name without the `PROJECT-` part (`web-1`).
fn short_name(p: &str, c: &str) -> String {
    c.strip_prefix(&format!("{p}-")).unwrap_or(c).to_string()
}

pub fn run_cmd(ctx: &Ctx, p: &Project, cmd: &ComposeCmd) -> Result<i32> {
    let store = ctx.store()?;
    ops::reconcile(store).map_err(|e| anyhow!(e))?;
    let mut pr = progress;
    match cmd {
        ComposeCmd::Up(a) => up(ctx, p, a),
        ComposeCmd::Down(a) => {
            if let Some(r) = &a.rmi {
                if r != "local" && r != "all" {
                    bail!("invalid --rmi {r:?}: use local or all");
                }
            }
            proj::down(
                store,
                p,
                &berth_compose_run::DownOptions {
                    remove_orphans: a.remove_orphans,
                    timeout: a.timeout,
                    volumes: a.volumes,
                    rmi: a.rmi.clone(),
                },
                &mut pr,
            )
            .map_err(rerr)?;
            Ok(0)
        }
        ComposeCmd::Ps(a) => ps(ctx, p, a),
        ComposeCmd::Logs(a) => logs_cmd(ctx, p, a),
        ComposeCmd::Exec(a) => {
            let cs = proj::service_containers(store, p, std::slice::from_ref(&a.service))
                .map_err(rerr)?;
            let c = cs
                .iter()
                .find(|c| c.number == a.index && c.container.state == State::Running)
                .ok_or_else(|| anyhow!("service {:?} is not running (no running container number {}): run berth compose up first", a.service, a.index))?;
            let tty = !a.no_tty && !a.detach && attach::isatty(0);
            let req = ExecRequest {
                args: a.command.clone(),
                env: a.env.clone(),
                user: a.user.clone(),
                workdir: a.workdir.clone(),
                tty,
                interactive: !a.detach,
                detach: a.detach,
            };
            attach::exec(store, &c.container, &req).map_err(|e| anyhow!(e))
        }
        ComposeCmd::Run(a) => run(ctx, p, a),
        ComposeCmd::Create(a) => {
            proj::up(
                store,
                p,
                &berth_compose_run::UpOptions {
                    services: a.services.clone(),
                    force_recreate: a.force_recreate,
                    no_recreate: a.no_recreate,
                    no_start: true,
                    ..Default::default()
                },
                &image_policy(false, false),
                &mut pr,
            )
            .map_err(rerr)?;
            Ok(0)
        }
        ComposeCmd::Start(a) => {
            proj::start(store, p, &a.services, &mut pr).map_err(rerr)?;
            Ok(0)
        }
        ComposeCmd::Stop(a) => {
            let cs = proj::service_containers(store, p, &a.services).map_err(rerr)?;
            proj::stop_ordered(store, Some(p), &cs, a.timeout, &mut pr).map_err(rerr)?;
            Ok(0)
        }
        ComposeCmd::Restart(a) => {
            let services = proj::with_restart_dependents(p, &a.services);
            let cs = proj::service_containers(store, p, &services).map_err(rerr)?;
            proj::stop_ordered(store, Some(p), &cs, a.timeout, &mut pr).map_err(rerr)?;
            proj::start(store, p, &services, &mut pr).map_err(rerr)?;
            Ok(0)
        }
        ComposeCmd::Kill(a) => {
            let sig = berth_engine::config::parse_signal(&a.signal).map_err(|e| anyhow!(e))?;
            for pc in proj::service_containers(store, p, &a.services).map_err(rerr)? {
                if pc.container.state.is_active() {
                    ops::kill(store, &pc.container, sig).map_err(|e| anyhow!(e))?;
                    progress(&format!("Container {}", pc.container.name), "Killed");
                }
            }
            Ok(0)
        }
        ComposeCmd::Pause(a) | ComposeCmd::Unpause(a) => {
            let pause = matches!(cmd, ComposeCmd::Pause(_));
            for pc in proj::service_containers(store, p, &a.services).map_err(rerr)? {
                let c = &pc.container;
                if c.state != State::Running || ops::is_paused(c) == pause {
                    continue;
                }
                if pause {
                    ops::pause(store, c).map_err(|e| anyhow!(e))?;
                    progress(&format!("Container {}", c.name), "Paused");
                } else {
                    ops::unpause(store, c).map_err(|e| anyhow!(e))?;
                    progress(&format!("Container {}", c.name), "Unpaused");
                }
            }
            Ok(0)
        }
        ComposeCmd::Top(a) => {
            // Docker compose: one block per running container, its name, then `ps -ef`'s table.
            let mut first = true;
            for pc in proj::service_containers(store, p, &a.services).map_err(rerr)? {
                let c = &pc.container;
                if c.state != State::Running {
                    continue;
                }
                let (titles, rows) = ops::top(c, &[]).map_err(|e| anyhow!(e))?;
                if !first {
                    println!();
                }
                first = false;
                println!("{}", c.name);
                let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
                print_table(&titles, &rows);
            }
            Ok(0)
        }
        ComposeCmd::Rm(a) => {
            let cs = proj::service_containers(store, p, &a.services).map_err(rerr)?;
            if a.stop {
                proj::stop_ordered(store, Some(p), &cs, None, &mut pr).map_err(rerr)?;
            }
            let mut n = 0;
            for pc in &cs {
                let fresh = state::get(store, &pc.container.id)?;
                if fresh.is_some_and(|c| !c.state.is_active()) {
                    ops::remove(store, &pc.container, false).map_err(|e| anyhow!(e))?;
                    progress(&format!("Container {}", pc.container.name), "Removed");
                    n += 1;
                }
            }
            if n == 0 {
                eprintln!("No stopped containers");
            }
            Ok(0)
        }
        ComposeCmd::Port(a) => {
            let cs = proj::service_containers(store, p, std::slice::from_ref(&a.service))
                .map_err(rerr)?;
            let c = cs.iter().find(|c| c.number == a.index).ok_or_else(|| {
                anyhow!(
                    "service {:?} has no container number {}",
                    a.service,
                    a.index
                )
            })?;
            let ports = berth_net::ports_of(store, &c.container.id)?;
            match ports
                .iter()
                .find(|pp| pp.container_port == a.private_port && pp.protocol == a.protocol)
            {
                Some(pp) => {
                    println!("{}:{}", pp.host_ip, pp.host_port);
                    Ok(0)
                }
                None => bail!(
                    "no port {}/{} published for service {:?}",
                    a.private_port,
                    a.protocol,
                    a.service
                ),
            }
        }
        ComposeCmd::Images(a) => {
            let mut cs = proj::service_containers(store, p, &a.services).map_err(rerr)?;
            // docker compose v2: one row per container, by container name.
            cs.sort_by(|x, y| x.container.name.cmp(&y.container.name));
            let images = berth_image::ImageStore::open(store)?;
            let rows: Vec<Vec<String>> = cs
                .iter()
                .map(|pc| {
                    let c = &pc.container;
                    let (repo, tag) = match c.image_name.rsplit_once(':') {
                        Some((r, t)) if !t.contains('/') => (r.to_string(), t.to_string()),
                        _ => (c.image_name.clone(), "latest".to_string()),
                    };
                    let img = images.resolve(c.image_id.as_str()).ok();
                    let platform = img.as_ref().map_or_else(String::new, |i| {
                        let v: serde_json::Value =
                            serde_json::from_slice(&i.raw_config).unwrap_or_default();
                        match v.get("variant").and_then(|v| v.as_str()) {
                            Some(var) if !var.is_empty() => {
                                format!("{}/{}/{var}", i.os(), i.architecture())
                            }
                            _ => format!("{}/{}", i.os(), i.architecture()),
                        }
                    });
                    vec![
                        c.name.clone(),
                        repo,
                        tag,
                        platform,
                        c.image_id.short().to_string(),
                        img.as_ref()
                            .map(|i| berth_format::human::size3(i.size))
                            .unwrap_or_default(),
                        img.as_ref()
                            .map_or_else(|| "N/A".to_string(), |i| ago(i.created)),
                    ]
                })
                .collect();
            print_table(
                &[
                    "CONTAINER",
                    "REPOSITORY",
                    "TAG",
                    "PLATFORM",
                    "IMAGE ID",
                    "SIZE",
                    "CREATED",
                ],
                &rows,
            );
            Ok(0)
        }
        ComposeCmd::Pull(a) => {
            let services = proj::selection(p, &a.services, true).map_err(rerr)?;
            for n in services {
                let s = &p.services[&n];
                if s.image.is_none() {
                    continue;
                }
                proj::pull_image(store, &convert::image_ref(p, &n, s), &mut pr).map_err(rerr)?;
            }
            Ok(0)
        }
        ComposeCmd::Push(a) => {
            let services = proj::selection(p, &a.services, true).map_err(rerr)?;
            proj::push_images(store, p, &services, &mut pr).map_err(rerr)?;
            Ok(0)
        }
        ComposeCmd::Build(a) => {
            let services = proj::selection(p, &a.services, true).map_err(rerr)?;
            let policy = image_policy(true, false);
            for n in services {
                proj::build_service(store, p, &n, &policy, &mut pr).map_err(rerr)?;
            }
            Ok(0)
        }
        ComposeCmd::Config(_) | ComposeCmd::Version(_) | ComposeCmd::Ls(_) => unreachable!(),
    }
}

fn parse_scale(v: &[String]) -> Result<BTreeMap<String, u64>> {
    v.iter()
        .map(|s| {
            let (k, n) = s
                .split_once('=')
                .ok_or_else(|| anyhow!("invalid --scale {s:?}: use SERVICE=NUMBER"))?;
            let n: u64 = n
                .parse()
                .map_err(|_| anyhow!("invalid --scale {s:?}: use SERVICE=NUMBER"))?;
            Ok((k.to_string(), n))
        })
        .collect()
}

/// How `up`/`run`/`create`/`build` get images: `build` forces builds, `no_build` forbids them.
fn image_policy(build: bool, no_build: bool) -> proj::ImagePolicy<'static> {
    proj::ImagePolicy {
        pull: None,
        build,
        no_build,
        builder: Some(&super::compose_build::ComposeBuilder),
    }
}

fn up(ctx: &Ctx, p: &Project, a: &UpArgs) -> Result<i32> {
    let store = ctx.store()?;
    if a.build && a.no_build {
        bail!("--build and --no-build cannot be used together");
    }
    if let Some(x) = &a.exit_code_from {
        if !p.services.contains_key(x) {
            bail!("--exit-code-from {x}: no such service");
        }
    }
    let opts = berth_compose_run::UpOptions {
        services: a.services.clone(),
        no_deps: a.no_deps,
        force_recreate: a.force_recreate,
        no_recreate: a.no_recreate,
        no_start: a.no_start,
        scale: parse_scale(&a.scale)?,
        remove_orphans: a.remove_orphans,
        pull: a.pull.clone(),
        timeout: a.timeout,
    };
    let mut pr = progress;
    let detach = a.detach || a.wait;
    if !detach && !a.no_start {
        catch_sigint();
    }
    // Log lengths of the containers that exist now: when attached, a container started
    // again shows only its new output (Docker attaches without the log's history).
    let log_from: BTreeMap<String, u64> = proj::list(store, &p.name)
        .map_err(rerr)?
        .into_iter()
        .map(|pc| {
            let n = logs::log_len(store.root(), &pc.container.id);
            (pc.container.id, n)
        })
        .collect();
    let cs =
        proj::up(store, p, &opts, &image_policy(a.build, a.no_build), &mut pr).map_err(rerr)?;
    if a.no_start {
        return Ok(0);
    }
    if a.wait {
        let deadline = a
            .wait_timeout
            .map(|t| std::time::Instant::now() + std::time::Duration::from_secs(t));
        proj::wait_ready(store, p, &cs, deadline).map_err(rerr)?;
        return Ok(0);
    }
    if detach {
        return Ok(0);
    }
    // Attached: print the output of the named services' containers (all when none are
    // named, or with --attach-dependencies) until they stop, or until Ctrl-C.
    let attached: Vec<&ProjectContainer> = cs
        .iter()
        .filter(|c| {
            a.services.is_empty() || a.attach_dependencies || a.services.contains(&c.service)
        })
        .collect();
    let sources: Vec<logs::Source> = attached
        .iter()
        .map(|pc| logs::Source {
            prefix: if a.no_log_prefix {
                String::new()
            } else {
                short_name(&p.name, &pc.container.name)
            },
            id: pc.container.id.clone(),
            from: log_from.get(&pc.container.id).copied().unwrap_or(0),
        })
        .collect();
    eprintln!(
        "Attaching to {}",
        sources
            .iter()
            .map(|s| s.prefix.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let stop = Arc::new(AtomicBool::new(false));
    let root = store.root().to_path_buf();
    let lopts = logs::Options {
        follow: true,
        tail: None,
        timestamps: false,
        color: !a.no_color && attach::isatty(1) && std::env::var_os("NO_COLOR").is_none(),
    };
    let follower = {
        let stop = stop.clone();
        std::thread::spawn(move || logs::follow(root, &sources, &lopts, &stop))
    };
    let abort = a.abort_on_container_exit || a.exit_code_from.is_some();
    let mut exit_code = 0;
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
            INTERRUPTED.store(false, Ordering::SeqCst);
            break;
        }
        let now = proj::service_containers(store, p, &[]).map_err(rerr)?;
        let mine: Vec<&ProjectContainer> = now
            .iter()
            .filter(|c| attached.iter().any(|x| x.container.id == c.container.id))
            .collect();
        if abort {
            if let Some(pc) = mine.iter().find(|c| c.container.state == State::Exited) {
                eprintln!(
                    "{} exited with code {}",
                    short_name(&p.name, &pc.container.name),
                    pc.container.exit_code.unwrap_or(0)
                );
                exit_code = match &a.exit_code_from {
                    Some(s) => mine
                        .iter()
                        .find(|c| &c.service == s && c.container.state == State::Exited)
                        .and_then(|c| c.container.exit_code)
                        .unwrap_or(0),
                    None => pc.container.exit_code.unwrap_or(0),
                };
                break;
            }
        }
        if mine.iter().all(|c| !c.container.state.is_active()) {
            let _ = follower.join();
            return Ok(0);
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Ctrl-C (or abort): stop everything we attached to; a second Ctrl-C kills.
    let now = proj::service_containers(store, p, &[]).map_err(rerr)?;
    let mine: Vec<ProjectContainer> = now
        .into_iter()
        .filter(|c| cs.iter().any(|x| x.container.id == c.container.id))
        .collect();
    let root = store.root().to_path_buf();
    let stopper = {
        let p = p.clone();
        let mine = mine.clone();
        let timeout = a.timeout;
        std::thread::spawn(move || -> Result<(), String> {
            let st = berth_store::Store::open(&root).map_err(|e| e.to_string())?;
            let mut pr = progress;
            proj::stop_ordered(&st, Some(&p), &mine, timeout, &mut pr).map_err(|e| e.to_string())
        })
    };
    while !stopper.is_finished() {
        if INTERRUPTED.load(Ordering::SeqCst) {
            for pc in &mine {
                let _ = ops::kill(store, &pc.container, libc::SIGKILL);
            }
            INTERRUPTED.store(false, Ordering::SeqCst);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = stopper.join();
    stop.store(true, Ordering::SeqCst);
    let _ = follower.join();
    Ok(exit_code)
}

/// `running`, `running (healthy)`, `exited (1)`, … (`health`: the container's health status).
/// Docker compose v2's STATUS: the engine's `Up 5 seconds (healthy)`, `Exited (0) 2 minutes
/// ago`, as `docker ps` shows it.
fn status_text(c: &berth_engine::state::Container, health: Option<&str>) -> String {
    berth_engine::view::status_text(c, health)
}

fn ps(ctx: &Ctx, p: &Project, a: &PsArgs) -> Result<i32> {
    let store = ctx.store()?;
    for s in &a.service {
        if !p.services.contains_key(s) {
            bail!("no such service: {s}");
        }
    }
    let mut cs: Vec<ProjectContainer> = proj::list(store, &p.name)
        .map_err(rerr)?
        .into_iter()
        .filter(|c| a.service.is_empty() || a.service.contains(&c.service))
        .filter(|c| a.all || c.container.state.is_active())
        .collect();
    // docker compose v2 lists containers by name.
    cs.sort_by(|x, y| x.container.name.cmp(&y.container.name));
    if a.services {
        let mut names: Vec<&String> = Vec::new();
        for c in &cs {
            if !names.contains(&&c.service) {
                names.push(&c.service);
            }
        }
        for n in names {
            println!("{n}");
        }
        return Ok(0);
    }
    if a.quiet {
        for c in &cs {
            println!("{}", c.container.id);
        }
        return Ok(0);
    }
    let health = berth_engine::health::all_status(store).unwrap_or_default();
    let health_of = |c: &berth_engine::state::Container| -> Option<&str> {
        c.config
            .healthcheck
            .as_ref()
            .and_then(|_| health.get(&c.id).map(String::as_str))
    };
    use berth_engine::{list, view};
    let all: Vec<berth_engine::state::Container> =
        cs.iter().map(|pc| pc.container.clone()).collect();
    let lctx = list::ListContext::load(store, &all).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(f) = a.format.as_deref().filter(|f| *f != "table") {
        // `json` (one object per line, as docker compose v2 prints) or a Go template
        // (`{{.Name}} {{.Status}}`, `table {{.Service}}\t{{.State}}`) over docker compose's
        // fields: docker ps's row (the engine's list row) plus the service's.
        let rows: Vec<serde_json::Value> = cs
            .iter()
            .map(|pc| {
                let c = &pc.container;
                let mut row = view::ps_row(&list::summary(store, c, &lctx, None), false);
                let publishers: Vec<serde_json::Value> = berth_net::ports_of(store, &c.id)
                    .unwrap_or_default()
                    .iter()
                    .map(|pp| {
                        json!({"URL": pp.host_ip, "TargetPort": pp.container_port,
                               "PublishedPort": pp.host_port, "Protocol": pp.protocol})
                    })
                    .collect();
                if let Some(o) = row.as_object_mut() {
                    o.insert("Name".into(), json!(c.name));
                    o.insert("Project".into(), json!(p.name));
                    o.insert("Service".into(), json!(pc.service));
                    o.insert("Status".into(), json!(status_text(c, health_of(c))));
                    o.insert("Health".into(), json!(health_of(c).unwrap_or_default()));
                    o.insert("ExitCode".into(), json!(c.exit_code.unwrap_or(0)));
                    o.insert("Publishers".into(), json!(publishers));
                }
                row
            })
            .collect();
        super::print_rows(
            &rows,
            Some(f),
            "",
            "table {{.Name}}\t{{.Image}}\t{{.Command}}\t{{.Service}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}",
            &[("RunningFor", "CREATED")],
        )?;
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = cs
        .iter()
        .map(|pc| {
            let c = &pc.container;
            vec![
                c.name.clone(),
                c.image_name.clone(),
                berth_engine::view::command_text(c, true),
                pc.service.clone(),
                ago(c.created),
                status_text(c, health_of(c)),
                // PORTS as docker ps shows them: sorted, ranges folded, exposed ones too.
                view::ps_row(&list::summary(store, c, &lctx, None), false)["Ports"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ]
        })
        .collect();
    print_table(
        &[
            "NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS",
        ],
        &rows,
    );
    Ok(0)
}

fn logs_cmd(ctx: &Ctx, p: &Project, a: &LogsArgs) -> Result<i32> {
    let store = ctx.store()?;
    let cs: Vec<ProjectContainer> = proj::list(store, &p.name)
        .map_err(rerr)?
        .into_iter()
        .filter(|c| a.services.is_empty() || a.services.contains(&c.service))
        .collect();
    for s in &a.services {
        if !p.services.contains_key(s) {
            bail!("no such service: {s}");
        }
    }
    let tail = match a.tail.as_deref() {
        None | Some("all") => None,
        Some(n) => Some(
            n.parse::<usize>()
                .map_err(|_| anyhow!("invalid --tail {n:?}: use a number or \"all\""))?,
        ),
    };
    let sources: Vec<logs::Source> = cs
        .iter()
        .map(|pc| logs::Source {
            prefix: if a.no_log_prefix {
                String::new()
            } else {
                short_name(&p.name, &pc.container.name)
            },
            id: pc.container.id.clone(),
            from: 0,
        })
        .collect();
    let o = logs::Options {
        follow: a.follow,
        tail,
        timestamps: a.timestamps,
        color: !a.no_color && attach::isatty(1) && std::env::var_os("NO_COLOR").is_none(),
    };
    logs::follow(
        store.root().to_path_buf(),
        &sources,
        &o,
        &Arc::new(AtomicBool::new(false)),
    );
    Ok(0)
}

fn run(ctx: &Ctx, p: &Project, a: &RunArgs) -> Result<i32> {
    let store = ctx.store()?;
    let mut service = p
        .services
        .get(&a.service)
        .ok_or_else(|| anyhow!("no such service: {}", a.service))?
        .clone();
    if let Some(e) = &a.entrypoint {
        let words = shlex::split(e)
            .ok_or_else(|| anyhow!("invalid --entrypoint {e:?}: unbalanced quotes"))?;
        service.entrypoint = Some(words);
    }
    if let Some(w) = &a.workdir {
        service.working_dir = Some(w.clone());
    }
    if let Some(u) = &a.user {
        service.user = Some(u.clone());
    }
    let s = &service;
    let mut pr = progress;
    if !a.no_deps {
        let deps: Vec<String> = s
            .depends_on
            .keys()
            .filter(|d| p.services.contains_key(*d))
            .cloned()
            .collect();
        if !deps.is_empty() {
            proj::up(
                store,
                p,
                &berth_compose_run::UpOptions {
                    services: deps,
                    ..Default::default()
                },
                &image_policy(false, false),
                &mut pr,
            )
            .map_err(rerr)?;
        }
    }
    proj::check_supported(store, p, std::slice::from_ref(&a.service)).map_err(rerr)?;
    let images = proj::ensure_images(
        store,
        p,
        std::slice::from_ref(&a.service),
        &image_policy(false, false),
        &mut pr,
    )
    .map_err(rerr)?;
    proj::ensure_networks(store, p, std::slice::from_ref(&a.service), &mut pr).map_err(rerr)?;
    let (image_ref, image) = &images[&a.service];
    let tty = !a.no_tty && !a.detach && attach::isatty(0);
    let inst = Instance {
        number: 1,
        oneoff: true,
        command: if a.command.is_empty() {
            None
        } else {
            Some(a.command.clone())
        },
        // `-e VAR` takes VAR from berth's environment (left out when unset), as docker
        // compose does.
        env: a
            .env
            .iter()
            .filter_map(|e| {
                if e.contains('=') {
                    Some(e.clone())
                } else {
                    std::env::var(e).ok().map(|v| format!("{e}={v}"))
                }
            })
            .collect(),
        publish: a.service_ports,
        auto_remove: a.rm,
        tty: Some(tty),
        stdin_open: Some(!a.detach),
        inherit_volumes: Vec::new(),
    };
    let name = a.name.clone().unwrap_or_else(|| {
        let id: String = format!("{:x}", rand_u64()).chars().take(12).collect();
        format!("{}-{}-run-{id}", p.name, a.service)
    });
    let c = proj::create_instance(store, p, &a.service, s, image_ref, image, &inst, Some(name))
        .map_err(rerr)?;
    if a.detach {
        ops::start(store, &c, Attach::No).map_err(|e| anyhow!(e))?;
        println!("{}", c.name);
        return Ok(0);
    }
    let mut started = ops::start(store, &c, Attach::Yes).map_err(|e| {
        if a.rm {
            let _ = ops::remove(store, &c, true);
        }
        anyhow!(e)
    })?;
    Ok(attach::foreground(store, &c, &mut started, tty))
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut b);
    }
    u64::from_le_bytes(b)
}

pub fn ls(ctx: &Ctx, a: &LsArgs) -> Result<i32> {
    let store = ctx.store()?;
    ops::reconcile(store).map_err(|e| anyhow!(e))?;
    let projects = proj::projects(store).map_err(rerr)?;
    let mut rows = Vec::new();
    let mut docs = Vec::new();
    for (name, (cs, files)) in &projects {
        let running = cs.iter().filter(|c| c.state == State::Running).count();
        if running == 0 && !a.all {
            continue;
        }
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for c in cs {
            let s = match c.state {
                State::Running => "running",
                State::Exited => "exited",
                State::Created => "created",
                State::Restarting => "restarting",
                State::Removing => "removing",
            };
            *counts.entry(s).or_default() += 1;
        }
        let status = counts
            .iter()
            .map(|(k, v)| format!("{k}({v})"))
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(vec![name.clone(), status.clone(), files.clone()]);
        docs.push(json!({"Name": name, "Status": status, "ConfigFiles": files}));
    }
    if a.quiet {
        for r in &rows {
            println!("{}", r[0]);
        }
    } else if a.format.as_deref() == Some("json") {
        println!("{}", serde_json::to_string(&docs)?);
    } else {
        print_table(&["NAME", "STATUS", "CONFIG FILES"], &rows);
    }
    let _ = labels::PROJECT;
    Ok(0)
}
