//! `version`, `info`, `system info`: thin printing over `berth_engine::info`; `system service`:
//! the Docker Engine API on a socket (crate `berth-api`).

use anyhow::Result;
use berth_engine::info;
use clap::{Args, Subcommand};
use serde_json::Value;

use super::Ctx;

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Go template over the version object, or json.
    #[arg(short, long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Go template over the info object, or json.
    #[arg(short, long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Exit after this many seconds without a connection (0: never).
    #[arg(short = 't', long = "time", default_value_t = 5)]
    pub time: u64,
    /// Where to listen: unix:///path (default /run/berth/docker.sock, or the socket systemd
    /// passes) or tcp://127.0.0.1:PORT.
    pub uri: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SystemCmd {
    /// Serve the Docker Engine API (for the docker CLI, SDKs, compose) on a socket.
    Service(ServiceArgs),
    /// Show system-wide information.
    Info(InfoArgs),
    /// Show disk usage of images, containers, volumes and the build cache.
    Df(DfArgs),
    /// Remove stopped containers, unused networks, dangling images and the build cache.
    Prune(SystemPruneArgs),
    /// Show container, image, network and volume events (following new ones).
    Events(EventsArgs),
}

#[derive(Debug, Args)]
pub struct DfArgs {
    /// Show each image, container, volume and build cache entry.
    #[arg(short, long)]
    pub verbose: bool,
    /// table (default), table TEMPLATE, json, or a Go template over the summary rows.
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct SystemPruneArgs {
    /// Remove all unused images, not only dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Filters: until=TIME, label=KEY[=VALUE], label!=KEY[=VALUE].
    #[arg(long)]
    pub filter: Vec<String>,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Also remove anonymous volumes no container uses.
    #[arg(long)]
    pub volumes: bool,
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn print_doc(doc: &Value, format: &str) -> Result<()> {
    if format == "json" || format == "{{json .}}" {
        println!("{}", serde_json::to_string(doc)?);
    } else {
        super::print_inspect(std::slice::from_ref(doc), Some(format))?;
    }
    Ok(())
}

pub fn version(_ctx: &Ctx, a: VersionArgs) -> Result<i32> {
    let v = info::version();
    if let Some(f) = &a.format {
        print_doc(&v, f)?;
        return Ok(0);
    }
    let c = &v["Client"];
    let e = &v["Server"];
    println!("Client:");
    println!(" Version:           {}", s(&c["Version"]));
    println!(" API version:       {}", s(&c["ApiVersion"]));
    println!(" OS/Arch:           {}/{}", s(&c["Os"]), s(&c["Arch"]));
    println!(" Context:           default");
    println!();
    println!("Server: berth");
    println!(" Engine:");
    println!("  Version:          {}", s(&e["Version"]));
    println!(
        "  API version:      {} (minimum version {})",
        s(&e["ApiVersion"]),
        s(&e["MinAPIVersion"])
    );
    println!("  OS/Arch:          {}/{}", s(&e["Os"]), s(&e["Arch"]));
    println!("  Kernel Version:   {}", s(&e["KernelVersion"]));
    Ok(0)
}

pub fn info(ctx: &Ctx, a: InfoArgs) -> Result<i32> {
    let store = ctx.store()?;
    let d = info::info(store, &ctx.root)?;
    if let Some(f) = &a.format {
        print_doc(&d, f)?;
        return Ok(0);
    }
    println!("Client:");
    println!(" Version:    {}", info::VERSION);
    println!(" Context:    default");
    println!(" Debug Mode: false");
    println!();
    println!("Server:");
    println!(" Containers: {}", s(&d["Containers"]));
    println!("  Running: {}", s(&d["ContainersRunning"]));
    println!("  Paused: {}", s(&d["ContainersPaused"]));
    println!("  Stopped: {}", s(&d["ContainersStopped"]));
    println!(" Images: {}", s(&d["Images"]));
    println!(" Server Version: {}", s(&d["ServerVersion"]));
    println!(" Storage Driver: {}", s(&d["Driver"]));
    println!(" Logging Driver: {}", s(&d["LoggingDriver"]));
    println!(" Cgroup Driver: {}", s(&d["CgroupDriver"]));
    println!(" Cgroup Version: {}", s(&d["CgroupVersion"]));
    println!(" Plugins:");
    for (k, label) in [("Volume", "Volume"), ("Network", "Network"), ("Log", "Log")] {
        let items: Vec<String> = d["Plugins"][k]
            .as_array()
            .map(|a| a.iter().map(s).collect())
            .unwrap_or_default();
        println!("  {label}: {}", items.join(" "));
    }
    let runtimes: Vec<String> = d["Runtimes"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    println!(" Runtimes: {}", runtimes.join(" "));
    println!(" Default Runtime: {}", s(&d["DefaultRuntime"]));
    println!(" Init Binary: {}", s(&d["InitBinary"]));
    println!(" Security Options:");
    for o in d["SecurityOptions"].as_array().into_iter().flatten() {
        let o = s(o);
        let mut parts = o.split(',');
        if let Some(name) = parts.next() {
            println!("  {}", name.trim_start_matches("name="));
        }
        for p in parts {
            if let Some((k, v)) = p.split_once('=') {
                let mut k = k.to_string();
                if let Some(f) = k.get_mut(0..1) {
                    f.make_ascii_uppercase();
                }
                println!("   {k}: {v}");
            }
        }
    }
    println!(" Kernel Version: {}", s(&d["KernelVersion"]));
    println!(" Operating System: {}", s(&d["OperatingSystem"]));
    println!(" OSType: {}", s(&d["OSType"]));
    println!(" Architecture: {}", s(&d["Architecture"]));
    println!(" CPUs: {}", s(&d["NCPU"]));
    println!(
        " Total Memory: {}",
        berth_format::human::binary_size(d["MemTotal"].as_u64().unwrap_or(0))
    );
    println!(" Name: {}", s(&d["Name"]));
    println!(" Docker Root Dir: {}", s(&d["DockerRootDir"]));
    println!(" Debug Mode: false");
    println!(" Live Restore Enabled: true");
    Ok(0)
}

pub fn system_cmd(ctx: &Ctx, c: SystemCmd) -> Result<i32> {
    match c {
        SystemCmd::Service(a) => service(ctx, a),
        SystemCmd::Info(a) => info(ctx, a),
        SystemCmd::Df(a) => df(ctx, a),
        SystemCmd::Prune(a) => prune(ctx, a),
        SystemCmd::Events(a) => events(ctx, a),
    }
}

/// `system df [-v] [--format]`: the summary table (or template rows), and with `-v` the
/// per-object tables as Docker prints them.
fn df(ctx: &Ctx, a: DfArgs) -> Result<i32> {
    use berth_system as sys;
    let store = ctx.store()?;
    berth_engine::ops::reconcile(store)?;
    let du = sys::disk_usage(store)?;
    if !a.verbose || a.format.is_some() {
        super::print_rows(
            &du.summary_rows(),
            a.format.as_deref(),
            "",
            sys::SUMMARY_TABLE,
            sys::SUMMARY_HEADERS,
        )?;
        return Ok(0);
    }
    println!("Images space usage:\n");
    super::print_rows(
        &du.image_rows(),
        None,
        "",
        sys::IMAGES_TABLE,
        sys::IMAGES_HEADERS,
    )?;
    println!("\nContainers space usage:\n");
    super::print_rows(
        &du.container_rows(),
        None,
        "",
        sys::CONTAINERS_TABLE,
        sys::CONTAINERS_HEADERS,
    )?;
    println!("\nLocal Volumes space usage:\n");
    super::print_rows(
        &du.volume_rows(),
        None,
        "",
        sys::VOLUMES_TABLE,
        sys::VOLUMES_HEADERS,
    )?;
    println!(
        "\nBuild cache usage: {}\n",
        berth_format::human::size(du.build_cache_size())
    );
    super::print_rows(
        &du.build_cache_rows(),
        None,
        "",
        sys::BUILD_CACHE_TABLE,
        sys::BUILD_CACHE_HEADERS,
    )?;
    Ok(0)
}

/// `system prune [-a] [--volumes] [-f] [--filter]`, with Docker's warning and report.
fn prune(ctx: &Ctx, a: SystemPruneArgs) -> Result<i32> {
    use berth_system as sys;
    let filters = sys::PruneFilters::parse(&a.filter)?;
    if !a.force {
        let mut what = vec![
            "all stopped containers",
            "all networks not used by at least one container",
        ];
        if a.volumes {
            what.push("all anonymous volumes not used by at least one container");
        }
        if a.all {
            what.push("all images without at least one container associated to them");
            what.push("all build cache");
        } else {
            what.push("all dangling images");
            what.push("unused build cache");
        }
        eprintln!("WARNING! This will remove:");
        for w in what {
            eprintln!("  - {w}");
        }
        eprint!("\nAre you sure you want to continue? [y/N] ");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let store = ctx.store()?;
    let r = sys::prune(
        store,
        &sys::PruneOptions {
            all: a.all,
            volumes: a.volumes,
            filters,
        },
    )?;
    for (title, items) in [
        ("Deleted Containers:", &r.containers),
        ("Deleted Networks:", &r.networks),
        ("Deleted Volumes:", &r.volumes),
        ("Deleted Images:", &r.images),
        ("Deleted build cache objects:", &r.build_cache),
    ] {
        if items.is_empty() {
            continue;
        }
        println!("{title}");
        for i in items {
            println!("{i}");
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        berth_format::human::size(r.space_reclaimed)
    );
    Ok(0)
}

fn service(ctx: &Ctx, a: ServiceArgs) -> Result<i32> {
    let exe = berth_exe::path()?;
    berth_api::serve(berth_api::ServiceOptions {
        root: ctx.root.clone(),
        listen: a.uri,
        idle: (a.time > 0).then(|| std::time::Duration::from_secs(a.time)),
        exe,
    })?;
    Ok(0)
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Show events from this time (RFC 3339, Unix seconds, or a duration such as 10m).
    #[arg(long)]
    pub since: Option<String>,
    /// Stop at this time (same forms); without it, follow new events.
    #[arg(long)]
    pub until: Option<String>,
    /// Filters: type, event, container, image, network, volume, label (KEY=VALUE).
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// json, or a Go template over each event.
    #[arg(long)]
    pub format: Option<String>,
}

/// A `--since`/`--until` value in Unix nanoseconds.
fn time_arg(s: &str) -> Result<i64> {
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_nanos_opt().unwrap_or(0));
    }
    if let Ok(f) = s.parse::<f64>() {
        #[allow(clippy::cast_possible_truncation)] // seconds with a fraction, as Docker takes
        return Ok((f * 1e9) as i64);
    }
    let d = berth_engine::health::parse_duration("--since/--until", s).map_err(|_| {
        anyhow::anyhow!("invalid time {s:?}: use RFC 3339, Unix seconds or a duration like 10m")
    })?;
    Ok(now - d)
}

pub fn events(ctx: &Ctx, a: EventsArgs) -> Result<i32> {
    use std::io::Write;
    let store = ctx.store()?;
    let since = a.since.as_deref().map(time_arg).transpose()?;
    let until = a.until.as_deref().map(time_arg).transpose()?;
    let mut filters = Vec::new();
    for f in &a.filter {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("invalid filter {f:?}: use KEY=VALUE"))?;
        if !matches!(
            k,
            "type" | "event" | "action" | "container" | "image" | "network" | "volume" | "label"
        ) {
            anyhow::bail!("invalid filter {f:?}: the key is one of type, event, container, image, network, volume, label");
        }
        filters.push((k.to_string(), v.to_string()));
    }
    let tmpl = match a.format.as_deref() {
        None => None,
        Some("json") | Some("{{json .}}") => Some(None),
        Some(f) => Some(Some(berth_format::Template::parse(
            &f.replace("\\t", "\t").replace("\\n", "\n"),
        )?)),
    };
    let mut after = if since.is_some() || until.is_some() {
        0
    } else {
        berth_events::last_seq(store)?
    };
    loop {
        let batch = berth_events::list(store, since, until, after, 1000)?;
        let mut out = std::io::stdout().lock();
        for e in &batch {
            after = e.seq;
            if !e.matches(&filters) {
                continue;
            }
            match &tmpl {
                None => writeln!(out, "{}", e.line())?,
                Some(None) => writeln!(out, "{}", serde_json::to_string(&e.to_json())?)?,
                Some(Some(t)) => writeln!(out, "{}", t.render(&e.template_fields())?)?,
            }
        }
        out.flush()?;
        drop(out);
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
        if until.is_some_and(|u| u <= now) && batch.len() < 1000 {
            return Ok(0);
        }
        if batch.len() < 1000 {
            // Follow: a bounded poll of the log.
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}
