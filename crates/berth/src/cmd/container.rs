//! Container commands: `run`, `create`, `start`, `stop`, `ps`, `logs`, `exec`, …

use std::io::Write;

use anyhow::{anyhow, bail, Context, Result};
use berth_engine::attach::{self, ExecRequest};
use berth_engine::config::{self as ccfg, ContainerConfig, RestartPolicy};
use berth_engine::detach::DetachKeys;
use berth_engine::health::{HealthConfig, HealthFlags};
use berth_engine::ops::{self, Attach, CreateRequest};
use berth_engine::session::{self, Outcome};
use berth_engine::state::{self, Container, State};
use berth_engine::EngineError;
use berth_image::ImageStore;
use berth_net::{Attachment, NetworkMode};
use berth_store::Store;
use clap::{Args, Subcommand};

use super::{Ctx, ExitError};

/// Options shared by `run` and `create`.
#[derive(Debug, Args, Clone)]
pub struct ContainerOpts {
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Keep standard input open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Set environment variables (KEY=VALUE, or KEY to copy from the host).
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Read environment variables from a file.
    #[arg(long)]
    pub env_file: Vec<std::path::PathBuf>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// USER[:GROUP] (names or numeric ids).
    #[arg(short, long)]
    pub user: Option<String>,
    /// Override the image's entrypoint.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Container host name.
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Container NIS domain name (with the host name, the FQDN in /etc/hosts).
    #[arg(long)]
    pub domainname: Option<String>,
    /// Mount a volume or host path: [NAME|HOST:]CONTAINER[:ro|rw|nocopy|z|Z].
    #[arg(short, long = "volume")]
    pub volume: Vec<String>,
    /// Mount: type=bind|volume|tmpfs,src=…,dst=…[,readonly][,…].
    #[arg(long)]
    pub mount: Vec<String>,
    /// Mount the volumes of another container: CONTAINER[:ro|rw].
    #[arg(long)]
    pub volumes_from: Vec<String>,
    /// Mount a tmpfs: PATH[:OPTIONS].
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Mount the root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Network: bridge, none, host, container:NAME or a network name.
    #[arg(long = "network", alias = "net")]
    pub network: Option<String>,
    /// Extra name for the container on its user network.
    #[arg(long)]
    pub network_alias: Vec<String>,
    /// Publish ports: [IP:][HOST[-END]:]CONTAINER[-END][/PROTO], or
    /// published=HOST,target=CONTAINER[,protocol=tcp|udp][,mode=host][,host_ip=IP].
    #[arg(short, long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random host ports.
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// DNS servers (on user networks: the upstreams of the embedded DNS server).
    #[arg(long)]
    pub dns: Vec<String>,
    /// DNS search domains (`.`: none).
    #[arg(long)]
    pub dns_search: Vec<String>,
    /// DNS resolver options (e.g. ndots:2).
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Extra /etc/hosts entries: NAME:IP, NAME=IP, NAME:[IPv6], NAME:host-gateway (several
    /// space-separated names allowed).
    #[arg(long)]
    pub add_host: Vec<String>,
    /// Memory limit (e.g. 64m, 1g).
    #[arg(short, long)]
    pub memory: Option<String>,
    /// CPUs (e.g. 0.5, 2).
    #[arg(long)]
    pub cpus: Option<String>,
    /// Maximum number of processes (-1 for unlimited).
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// Memory plus swap limit (e.g. 128m; -1 for unlimited swap).
    #[arg(long)]
    pub memory_swap: Option<String>,
    /// Soft memory limit (e.g. 32m).
    #[arg(long)]
    pub memory_reservation: Option<String>,
    /// Swappiness of the container's memory, 0 to 100 (cgroup v1 only).
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swappiness: Option<i64>,
    /// Kernel memory limit (deprecated; accepted and discarded, as by Docker).
    #[arg(long)]
    pub kernel_memory: Option<String>,
    /// Disable the OOM killer (cgroup v1 only).
    #[arg(long)]
    pub oom_kill_disable: bool,
    /// The container's OOM score adjustment (-1000 to 1000).
    #[arg(long, allow_hyphen_values = true)]
    pub oom_score_adj: Option<i64>,
    /// Relative CPU weight (2 to 262144; Docker's default is 1024). No `-c` short form:
    /// `IMAGE -c …` must reach the entrypoint (`--entrypoint /bin/sh IMG -c 'cmd'`).
    #[arg(long)]
    pub cpu_shares: Option<i64>,
    /// CFS scheduler period in microseconds.
    #[arg(long)]
    pub cpu_period: Option<i64>,
    /// CFS scheduler quota in microseconds per period (-1: none).
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPUs the container may run on (0-3, 0,1).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use (0-3, 0,1).
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Block I/O weight, 10 to 1000.
    #[arg(long)]
    pub blkio_weight: Option<i64>,
    /// Block I/O weight of a device: DEVICE:WEIGHT.
    #[arg(long)]
    pub blkio_weight_device: Vec<String>,
    /// Read rate limit of a device: DEVICE:RATE (e.g. /dev/sda:1mb).
    #[arg(long)]
    pub device_read_bps: Vec<String>,
    /// Write rate limit of a device: DEVICE:RATE.
    #[arg(long)]
    pub device_write_bps: Vec<String>,
    /// Read operations per second of a device: DEVICE:N.
    #[arg(long)]
    pub device_read_iops: Vec<String>,
    /// Write operations per second of a device: DEVICE:N.
    #[arg(long)]
    pub device_write_iops: Vec<String>,
    /// PID namespace: host or container:NAME.
    #[arg(long)]
    pub pid: Option<String>,
    /// IPC namespace: private, shareable, host, none or container:NAME.
    #[arg(long)]
    pub ipc: Option<String>,
    /// UTS namespace: host.
    #[arg(long)]
    pub uts: Option<String>,
    /// Cgroup namespace: private or host.
    #[arg(long)]
    pub cgroupns: Option<String>,
    /// Write the container id to this file.
    #[arg(long)]
    pub cidfile: Option<std::path::PathBuf>,
    /// Attach to STDIN, STDOUT or STDERR (several allowed).
    #[arg(short = 'a', long = "attach")]
    pub attach: Vec<String>,
    /// Forward received signals to the container (--sig-proxy=false: do not).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// Key sequence to detach from the container's terminal (default ctrl-p,ctrl-q; also
    /// `detachKeys` in ~/.docker/config.json).
    #[arg(long)]
    pub detach_keys: Option<String>,
    /// Expose a port or a range of ports (PORT[-END][/PROTO]).
    #[arg(long)]
    pub expose: Vec<String>,
    /// Read labels from a file of KEY=VALUE lines.
    #[arg(long)]
    pub label_file: Vec<std::path::PathBuf>,
    /// IPv4 address on the container's user network.
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address on the container's user network.
    #[arg(long)]
    pub ip6: Option<String>,
    /// MAC address of the container's network interface.
    #[arg(long)]
    pub mac_address: Option<String>,
    /// Link to another container: NAME[:ALIAS] (legacy; an /etc/hosts entry).
    #[arg(long)]
    pub link: Vec<String>,
    /// Platform of the image; only the host's (e.g. linux/amd64).
    #[arg(long)]
    pub platform: Option<String>,
    /// Restart policy: no, always, on-failure[:N], unless-stopped.
    #[arg(long)]
    pub restart: Option<String>,
    /// Run an init process (reaps zombies, forwards signals) as PID 1.
    #[arg(long)]
    pub init: bool,
    /// OCI runtime: builtin (default), or a runtime binary such as runc, crun, youki.
    #[arg(long)]
    pub runtime: Option<String>,
    /// Labels KEY=VALUE.
    #[arg(short, long)]
    pub label: Vec<String>,
    /// Signal to stop the container.
    #[arg(long)]
    pub stop_signal: Option<String>,
    /// Seconds to wait before killing on stop (-1 to wait without limit).
    #[arg(long)]
    pub stop_timeout: Option<i64>,
    /// Give the container all capabilities, all host devices, no seccomp and a writable /sys.
    #[arg(long)]
    pub privileged: bool,
    /// Add Linux capabilities (NET_ADMIN, CAP_SYS_PTRACE, ALL).
    #[arg(long)]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities (CHOWN, ALL).
    #[arg(long)]
    pub cap_drop: Vec<String>,
    /// Security options: no-new-privileges, seccomp=unconfined|PROFILE.json, apparmor=NAME, label=...
    #[arg(long)]
    pub security_opt: Vec<String>,
    /// Add a host device: HOST[:CONTAINER][:rwm].
    #[arg(long)]
    pub device: Vec<String>,
    /// Allow devices in the device cgroup: 'c|b|a MAJOR:MINOR rwm'.
    #[arg(long)]
    pub device_cgroup_rule: Vec<String>,
    /// Add supplementary groups (names or ids).
    #[arg(long)]
    pub group_add: Vec<String>,
    /// Resource limits: NAME=SOFT[:HARD] (e.g. nofile=1024:2048).
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Namespaced kernel parameters NAME=VALUE (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*).
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// Size of /dev/shm (e.g. 128m).
    #[arg(long)]
    pub shm_size: Option<String>,
    /// Command to run to check health (run with /bin/sh -c).
    #[arg(long)]
    pub health_cmd: Option<String>,
    /// Time between health checks (e.g. 30s, 1m).
    #[arg(long)]
    pub health_interval: Option<String>,
    /// Maximum time a health check may run.
    #[arg(long)]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy.
    #[arg(long)]
    pub health_retries: Option<i64>,
    /// Start period during which failures do not count.
    #[arg(long)]
    pub health_start_period: Option<String>,
    /// Time between health checks during the start period.
    #[arg(long)]
    pub health_start_interval: Option<String>,
    /// Disable any health check (also the image's HEALTHCHECK).
    #[arg(long)]
    pub no_healthcheck: bool,
    /// Log driver: json-file (default), local, none, journald.
    #[arg(long)]
    pub log_driver: Option<String>,
    /// Log driver options: max-size=10m, max-file=3, compress=true.
    #[arg(long)]
    pub log_opt: Vec<String>,
    /// Pull policy: missing (default), always, never.
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Image to run.
    pub image: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run in the background and print the container id.
    #[arg(short, long)]
    pub detach: bool,
    #[command(flatten)]
    pub opts: ContainerOpts,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub opts: ContainerOpts,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach to the container's output and wait for it.
    #[arg(short, long)]
    pub attach: bool,
    /// Attach standard input.
    #[arg(short, long)]
    pub interactive: bool,
    /// Key sequence to detach from the container's terminal (default ctrl-p,ctrl-q).
    #[arg(long)]
    pub detach_keys: Option<String>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing (-1 to wait without limit).
    #[arg(short = 't', long = "time", visible_alias = "timeout")]
    pub time: Option<i64>,
    /// Every running container (Podman).
    #[arg(short, long)]
    pub all: bool,
    /// Ignore containers that do not exist (Podman).
    #[arg(short, long)]
    pub ignore: bool,
    #[arg(required_unless_present = "all")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send.
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    /// Every running container (Podman).
    #[arg(short, long)]
    pub all: bool,
    /// Ignore containers that do not exist (Podman).
    #[arg(short, long)]
    pub ignore: bool,
    #[arg(required_unless_present = "all")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill and remove running containers.
    #[arg(short, long)]
    pub force: bool,
    /// Also remove the container's anonymous volumes.
    #[arg(short, long)]
    pub volumes: bool,
    /// Every container (Podman).
    #[arg(short, long)]
    pub all: bool,
    /// Ignore containers that do not exist (Podman).
    #[arg(short, long)]
    pub ignore: bool,
    /// Seconds to wait for a running container to stop before killing it (Podman; implies
    /// stopping it first).
    #[arg(short = 't', long = "time")]
    pub time: Option<i64>,
    #[arg(required_unless_present = "all")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PauseArgs {
    /// Every running container (Podman).
    #[arg(short, long)]
    pub all: bool,
    #[arg(required_unless_present = "all")]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

#[derive(Debug, Args)]
pub struct ExistsArgs {
    pub name: String,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers, not only running ones.
    #[arg(short, long)]
    pub all: bool,
    /// Only ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// table (default), table TEMPLATE, json, or a Go template such as '{{.Names}}'.
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Show the last N created containers (all states).
    #[arg(short = 'n', long = "last")]
    pub last: Option<i64>,
    /// Show the latest created container (all states).
    #[arg(short, long)]
    pub latest: bool,
    /// Show sizes (the container's writable layer, and virtual: with its image).
    #[arg(short, long)]
    pub size: bool,
    /// Filters: id, name, label, status, exited, ancestor, before, since, volume, network,
    /// publish, expose, health, is-task (KEY=VALUE).
    #[arg(short, long)]
    pub filter: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow output.
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines from the end ("all" or a negative number for everything).
    #[arg(short = 'n', long)]
    pub tail: Option<String>,
    /// Show timestamps.
    #[arg(short, long)]
    pub timestamps: bool,
    /// Only output since this time (2024-01-02T15:04:05Z, a Unix time, or a duration like 10m).
    #[arg(long)]
    pub since: Option<String>,
    /// Only output before this time (same forms as --since).
    #[arg(long)]
    pub until: Option<String>,
    /// Show extra details given to the log (berth records none).
    #[arg(long)]
    pub details: bool,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[arg(short, long)]
    pub interactive: bool,
    #[arg(short, long)]
    pub tty: bool,
    #[arg(short, long)]
    pub detach: bool,
    /// Set environment variables (KEY=VALUE, or KEY to copy from the host).
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Read environment variables from a file.
    #[arg(long)]
    pub env_file: Vec<std::path::PathBuf>,
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Key sequence to detach from the process's terminal (default ctrl-p,ctrl-q).
    #[arg(long)]
    pub detach_keys: Option<String>,
    /// The caller relays a remote terminal over pipes (the API service's `exec start` with
    /// `Tty`): standard input need not be a terminal itself.
    #[arg(long, hide = true)]
    pub relayed_tty: bool,
    pub container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Do not attach standard input.
    #[arg(long)]
    pub no_stdin: bool,
    /// Forward received signals to the container (without a terminal; --sig-proxy=false: do not).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// Key sequence to detach from the container's terminal (default ctrl-p,ctrl-q; also
    /// `detachKeys` in ~/.docker/config.json).
    #[arg(long)]
    pub detach_keys: Option<String>,
    pub container: String,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// container or image (default: whichever matches).
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Format: json (default) or a Go-template-like {{.Path.To.Field}}.
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum ContainerCmd {
    Ls(PsArgs),
    #[command(disable_help_flag = true)]
    Run(RunArgs),
    #[command(disable_help_flag = true)]
    Create(CreateArgs),
    Start(StartArgs),
    Stop(StopArgs),
    Restart(StopArgs),
    Kill(KillArgs),
    Rm(RmArgs),
    Logs(LogsArgs),
    Exec(ExecArgs),
    /// Attach this terminal to a running container's input and output.
    Attach(AttachArgs),
    Inspect(InspectArgs),
    Wait(WaitArgs),
    /// Remove all stopped containers.
    Prune(PruneArgs),
    /// Alias of ls.
    #[command(hide = true)]
    List(PsArgs),
    /// Alias of ls.
    #[command(hide = true)]
    Ps(PsArgs),
    /// Pause all processes of containers.
    Pause(PauseArgs),
    /// Unpause containers.
    Unpause(PauseArgs),
    /// Rename a container.
    Rename(RenameArgs),
    /// Exit 0 if the container exists, 1 if not.
    Exists(ExistsArgs),
    /// Change containers' resource limits and restart policy.
    Update(super::update::UpdateArgs),
}

pub fn container_cmd(ctx: &Ctx, c: ContainerCmd) -> Result<i32> {
    match c {
        ContainerCmd::Ls(a) => ps(ctx, a),
        ContainerCmd::Run(a) => run(ctx, a),
        ContainerCmd::Create(a) => create(ctx, a),
        ContainerCmd::Start(a) => start(ctx, a),
        ContainerCmd::Stop(a) => stop(ctx, a),
        ContainerCmd::Restart(a) => restart(ctx, a),
        ContainerCmd::Kill(a) => kill(ctx, a),
        ContainerCmd::Rm(a) => rm(ctx, a),
        ContainerCmd::Logs(a) => logs(ctx, a),
        ContainerCmd::Exec(a) => exec(ctx, a),
        ContainerCmd::Attach(a) => attach(ctx, a),
        ContainerCmd::Inspect(a) => inspect(ctx, a),
        ContainerCmd::Wait(a) => wait(ctx, a),
        ContainerCmd::Prune(a) => prune(ctx, a),
        ContainerCmd::List(a) | ContainerCmd::Ps(a) => ps(ctx, a),
        ContainerCmd::Pause(a) => pause(ctx, a),
        ContainerCmd::Unpause(a) => unpause(ctx, a),
        ContainerCmd::Rename(a) => rename(ctx, a),
        ContainerCmd::Exists(a) => exists(ctx, a),
        ContainerCmd::Update(a) => super::update::update(ctx, a),
    }
}

/// Turn an engine error into an anyhow error carrying Docker's exit code.
pub(super) fn eng(e: EngineError) -> anyhow::Error {
    let code = e.exit_code();
    anyhow::Error::new(ExitError {
        code: u8::try_from(code.clamp(0, 255)).unwrap_or(u8::MAX),
        msg: e.to_string(),
    })
}

/// Open the store and bring container rows in line with reality (dead monitors etc.).
fn open(ctx: &Ctx) -> Result<&Store> {
    let store = ctx.store()?;
    ops::reconcile(store).map_err(eng)?;
    Ok(store)
}

fn find(store: &Store, name: &str) -> Result<Container> {
    state::lookup(store, name).map_err(eng)
}

/// The `--env-file` then `-e` variables of `run`, `create` and `exec` (`-e KEY` copies the
/// host's value, and is dropped when the host has none, as Docker does).
fn user_env(files: &[std::path::PathBuf], flags: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        out.extend(ccfg::read_env_file(f).map_err(eng)?);
    }
    for e in flags {
        if e.contains('=') {
            out.push(e.clone());
        } else if let Ok(v) = std::env::var(e) {
            out.push(format!("{e}={v}"));
        }
    }
    Ok(out)
}

/// Build the container configuration from flags and the image.
fn build_config(
    store: &Store,
    o: &ContainerOpts,
) -> Result<(berth_store::Digest, ContainerConfig)> {
    let images = ImageStore::open(store)?;
    let image = match images.resolve(&o.image) {
        Ok(i) => i,
        Err(berth_image::ImageError::NotFound(_)) if o.pull != "never" => {
            pull_for_run(store, &o.image)?;
            images.resolve(&o.image)?
        }
        Err(e) => return Err(e.into()),
    };
    if o.pull == "always" {
        pull_for_run(store, &o.image)?;
    }
    let image = if o.pull == "always" {
        images.resolve(&o.image)?
    } else {
        image
    };
    let ic = &image.config;
    let (args, entrypoint, cmd) =
        ops::resolve_args(ic, o.entrypoint.as_deref(), &o.command).map_err(eng)?;
    let mut env: Vec<String> = ic.env.clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        );
    }
    let env = ccfg::merge_env(&env, &user_env(&o.env_file, &o.env)?);
    let tmpfs = o
        .tmpfs
        .iter()
        .map(|v| ccfg::parse_tmpfs(v))
        .collect::<Result<Vec<_>, _>>()
        .map_err(eng)?;
    let network = match o.network.as_deref() {
        None | Some("bridge") | Some("default") if !o.network_alias.is_empty() => {
            bail!("network-scoped alias is supported only for containers in user defined networks; create a network with berth network create and use --network")
        }
        None | Some("bridge") | Some("default") => NetworkMode::Networks(vec![Attachment {
            network: "bridge".into(),
            aliases: o.network_alias.clone(),
        }]),
        Some("none") => NetworkMode::None,
        Some("host") => NetworkMode::Host,
        Some(n) if n.starts_with("container:") => {
            let other = find(store, &n["container:".len()..])?;
            NetworkMode::Container(other.id)
        }
        Some(n) => NetworkMode::Networks(
            n.split(',')
                .map(|net| Attachment {
                    network: net.to_string(),
                    aliases: o.network_alias.clone(),
                })
                .collect(),
        ),
    };
    let mut expose = Vec::new();
    for e in &o.expose {
        for p in ccfg::parse_expose(e).map_err(eng)? {
            if !expose.contains(&p) {
                expose.push(p);
            }
        }
    }
    let publish_all = if o.publish_all {
        let mut v: Vec<String> = ic
            .exposed_ports
            .as_ref()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        v.extend(
            expose
                .iter()
                .filter(|p| !v.contains(p))
                .cloned()
                .collect::<Vec<_>>(),
        );
        v
    } else {
        vec![]
    };
    let mut labels = ic.labels.clone().unwrap_or_default();
    for f in &o.label_file {
        labels.extend(ccfg::read_label_file(f).map_err(eng)?);
    }
    for l in &o.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let restart = match &o.restart {
        Some(r) => RestartPolicy::parse(r).map_err(eng)?,
        None => RestartPolicy {
            name: "no".into(),
            max_retries: 0,
        },
    };
    if o.rm && !restart.is_none() {
        bail!("conflicting options: --restart and --rm cannot be used together");
    }
    if let Some(s) = &o.stop_signal {
        ccfg::parse_signal(s).map_err(eng)?;
    }
    berth_net::files::validate_dns(&o.dns, &o.dns_search, &o.dns_option)
        .map_err(anyhow::Error::msg)?;
    for h in &o.add_host {
        berth_net::files::parse_add_host(h).map_err(anyhow::Error::msg)?;
    }
    if !matches!(o.pull.as_str(), "missing" | "always" | "never") {
        bail!("invalid --pull {:?}: use missing, always or never", o.pull);
    }
    let security = berth_engine::security::SecurityConfig::from_flags(
        &berth_engine::security::SecurityFlags {
            privileged: o.privileged,
            cap_add: o.cap_add.clone(),
            cap_drop: o.cap_drop.clone(),
            security_opt: o.security_opt.clone(),
            device: o.device.clone(),
            device_cgroup_rule: o.device_cgroup_rule.clone(),
            group_add: o.group_add.clone(),
            ulimit: o.ulimit.clone(),
            sysctl: o.sysctl.clone(),
            shm_size: o.shm_size.clone(),
        },
        matches!(network, NetworkMode::Host),
    )
    .map_err(eng)?;
    if let Some(p) = &o.platform {
        ccfg::check_platform(p, &o.image, &image.architecture()).map_err(eng)?;
    }
    let memory = o
        .memory
        .as_deref()
        .map(ccfg::parse_bytes)
        .transpose()
        .map_err(eng)?;
    let nano_cpus = o
        .cpus
        .as_deref()
        .map(ccfg::parse_cpus)
        .transpose()
        .map_err(eng)?;
    let resources = berth_engine::resources::ResourceFlags {
        cpu_shares: o.cpu_shares,
        cpuset_cpus: o.cpuset_cpus.clone(),
        cpuset_mems: o.cpuset_mems.clone(),
        cpu_period: o.cpu_period,
        cpu_quota: o.cpu_quota,
        memory_swap: o.memory_swap.clone(),
        memory_reservation: o.memory_reservation.clone(),
        memory_swappiness: o.memory_swappiness,
        oom_kill_disable: o.oom_kill_disable,
        oom_score_adj: o.oom_score_adj,
        blkio_weight: o.blkio_weight,
        blkio_weight_device: o.blkio_weight_device.clone(),
        device_read_bps: o.device_read_bps.clone(),
        device_write_bps: o.device_write_bps.clone(),
        device_read_iops: o.device_read_iops.clone(),
        device_write_iops: o.device_write_iops.clone(),
        kernel_memory: o.kernel_memory.clone(),
    }
    .parse(memory, nano_cpus)
    .map_err(eng)?;
    berth_engine::resources::check_kernel(&resources, false).map_err(eng)?;
    for w in resources.warnings(memory) {
        eprintln!("WARNING: {w}");
    }
    let namespaces = berth_engine::resources::parse_namespaces(
        o.pid.as_deref(),
        o.ipc.as_deref(),
        o.uts.as_deref(),
        o.cgroupns.as_deref(),
        &mut |n| state::lookup(store, n).map(|c| c.id),
    )
    .map_err(eng)?;
    if namespaces.uts.is_some() && o.hostname.is_some() {
        bail!("conflicting options: --hostname and --uts host cannot be used together");
    }
    let default_bridge =
        matches!(&network, NetworkMode::Networks(n) if n.iter().all(|a| a.network == "bridge"));
    if let Some(ip) = &o.ip {
        ip.parse::<std::net::Ipv4Addr>()
            .map_err(|_| anyhow!("invalid --ip {ip:?}: give an IPv4 address"))?;
        if !matches!(network, NetworkMode::Networks(_)) || default_bridge {
            bail!("user specified IP address is supported on user defined networks only; create one with berth network create --subnet and use --network");
        }
    }
    if let Some(ip6) = &o.ip6 {
        bail!("invalid --ip6 {ip6:?}: berth's networks are IPv4 only; there is no IPv6 to assign");
    }
    if let Some(m) = &o.mac_address {
        berth_net::ipam::check_mac(m).map_err(anyhow::Error::msg)?;
        if !matches!(network, NetworkMode::Networks(_)) {
            bail!("conflicting options: --mac-address needs a network the container has its own interface on (not host, none or container:)");
        }
    }
    let mut links = Vec::new();
    for l in &o.link {
        if !matches!(network, NetworkMode::Networks(_)) {
            bail!("conflicting options: --link needs a bridge or user-defined network (not host, none or container:)");
        }
        let (name, alias) = l.split_once(':').unwrap_or((l, l));
        let other = state::lookup(store, name)
            .map_err(|e| anyhow!("could not get container for {name}: {e}"))?;
        links.push(format!("{}:{alias}", other.name));
    }
    let extra = berth_engine::config::RunExtras {
        expose,
        links,
        ipv4_address: o.ip.clone().unwrap_or_default(),
        ipv6_address: o.ip6.clone().unwrap_or_default(),
        mac_address: o.mac_address.clone().unwrap_or_default(),
        cidfile: o
            .cidfile
            .as_ref()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
    };
    let mut cfg = ContainerConfig {
        resources,
        namespaces,
        extra,
        security,
        args,
        entrypoint,
        cmd,
        env,
        working_dir: o
            .workdir
            .clone()
            .or_else(|| ic.working_dir.clone())
            .unwrap_or_default(),
        user: o
            .user
            .clone()
            .or_else(|| ic.user.clone())
            .unwrap_or_default(),
        group_add: o.group_add.clone(),
        hostname: o.hostname.clone().unwrap_or_default(),
        domainname: o.domainname.clone().unwrap_or_default(),
        tty: o.tty,
        open_stdin: o.interactive,
        binds: Vec::new(),
        tmpfs,
        read_only: o.read_only,
        network,
        publish: o.publish.clone(),
        publish_all,
        dns: o.dns.clone(),
        dns_search: o.dns_search.clone(),
        dns_options: o.dns_option.clone(),
        add_hosts: o.add_host.clone(),
        memory,
        nano_cpus,
        pids_limit: o.pids_limit,
        restart,
        init: o.init,
        runtime: o.runtime.clone(),
        labels,
        stop_signal: o
            .stop_signal
            .clone()
            .or_else(|| ic.stop_signal.clone())
            .unwrap_or_else(|| "SIGTERM".into()),
        stop_timeout: o.stop_timeout.map_or(10, stop_seconds),
        auto_remove: o.rm,
        volumes: Vec::new(),
        healthcheck: HealthConfig::resolve(
            HealthConfig::from_image(ic.healthcheck.as_ref()),
            &HealthFlags {
                cmd: o.health_cmd.clone(),
                interval: o.health_interval.clone(),
                timeout: o.health_timeout.clone(),
                start_period: o.health_start_period.clone(),
                start_interval: o.health_start_interval.clone(),
                retries: o.health_retries,
                disable: o.no_healthcheck,
            },
        )
        .map_err(eng)?,
        log_config: berth_engine::logs::LogConfig::resolve(
            store.root(),
            o.log_driver.as_deref(),
            &o.log_opt,
        )
        .map_err(eng)?,
    };
    let image_volumes: Vec<String> = ic
        .volumes
        .as_ref()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    berth_engine::volumes::apply(
        store,
        &mut cfg,
        &berth_engine::volumes::MountFlags {
            volume: &o.volume,
            mount: &o.mount,
            volumes_from: &o.volumes_from,
        },
        &image_volumes,
    )
    .map_err(eng)?;
    if let Some(rt) = &cfg.runtime {
        berth_engine::runtime::open(store.root(), Some(rt)).map_err(eng)?;
    }
    Ok((image.id, cfg))
}

fn create_from(ctx: &Ctx, o: &ContainerOpts) -> Result<Container> {
    let store = open(ctx)?;
    attach_streams(o)?;
    // --cidfile: refuse an existing file before anything is created (Docker's rule), write
    // the id once the container exists, and leave no file if creating fails.
    let cidfile = match &o.cidfile {
        Some(p) => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(p)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => anyhow!(
                        "container ID file found, make sure the other container isn't running or delete {}",
                        p.display()
                    ),
                    _ => anyhow!("failed to create the container ID file {}: {e}", p.display()),
                })?;
            Some((p, f))
        }
        None => None,
    };
    let created = build_config(store, o).and_then(|(image_id, config)| {
        ops::create(
            store,
            CreateRequest {
                name: o.name.clone(),
                image_ref: o.image.clone(),
                image_id,
                config,
            },
        )
        .map_err(eng)
    });
    match (created, cidfile) {
        (Ok(c), Some((p, mut f))) => {
            if let Err(e) = f.write_all(c.id.as_bytes()).and_then(|()| f.sync_all()) {
                let _ = ops::remove(store, &c, true);
                let _ = std::fs::remove_file(p);
                bail!("failed to write the container ID file {}: {e}", p.display());
            }
            Ok(c)
        }
        (Err(e), Some((p, _))) => {
            let _ = std::fs::remove_file(p);
            Err(e)
        }
        (r, None) => r,
    }
}

/// `-a/--attach` values: which of stdin, stdout, stderr to attach (`None`: all, Docker's
/// default for a foreground run).
fn attach_streams(o: &ContainerOpts) -> Result<Option<Attach>> {
    if o.attach.is_empty() {
        return Ok(None);
    }
    let (mut stdin, mut stdout, mut stderr) = (false, false, false);
    for a in &o.attach {
        match a.to_ascii_lowercase().as_str() {
            "stdin" => stdin = true,
            "stdout" => stdout = true,
            "stderr" => stderr = true,
            _ => bail!(
                "invalid argument {a:?} for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR"
            ),
        }
    }
    Ok(Some(Attach::Streams {
        stdin,
        stdout,
        stderr,
    }))
}

/// `--detach-keys` (else `detachKeys` of the Docker CLI's config.json, else Ctrl-P Ctrl-Q),
/// checked before anything is created.
fn detach_keys(flag: Option<&str>) -> Result<DetachKeys> {
    DetachKeys::resolve(flag).map_err(eng)
}

/// The exit status of an attached session: the container's code; 0 after a detach from
/// `run`/`start` (as Docker); 128 + the signal that ended it.
fn session_code(o: Outcome) -> i32 {
    match o {
        Outcome::Exited(c) => c,
        Outcome::Detached => 0,
        Outcome::Signalled(s) => 128 + s,
    }
}

/// Docker's CLI check before attaching a terminal: standard input given to a container's
/// TTY must be a terminal itself (a pipe or file cannot carry a terminal session). Fails with
/// Docker's message and status 1, before anything is created.
fn check_tty(attach_stdin: bool, tty: bool) -> Result<()> {
    if tty && attach_stdin && !attach::isatty(0) {
        return Err(ExitError {
            code: 1,
            msg: "the input device is not a TTY; run from a terminal, or without -t (or -i)".into(),
        }
        .into());
    }
    Ok(())
}

pub fn run(ctx: &Ctx, a: RunArgs) -> Result<i32> {
    if a.detach && a.opts.rm && a.opts.restart.is_some() {
        bail!("conflicting options: --restart and --rm cannot be used together");
    }
    if a.detach && !a.opts.attach.is_empty() {
        bail!("conflicting options: cannot specify both --attach and --detach");
    }
    let keys = detach_keys(a.opts.detach_keys.as_deref())?;
    let streams = attach_streams(&a.opts)?;
    if !a.detach {
        let stdin = match &streams {
            Some(Attach::Streams { stdin, .. }) => *stdin,
            _ => a.opts.interactive,
        };
        check_tty(stdin, a.opts.tty)?;
    }
    let c = create_from(ctx, &a.opts)?;
    let store = ctx.store()?;
    if a.detach {
        ops::start(store, &c, Attach::No).map_err(|e| cleanup_failed(store, &c, e))?;
        println!("{}", c.id);
        return Ok(0);
    }
    if a.opts.tty && streams.is_none() {
        let opts = session::AttachOptions {
            stdin: a.opts.interactive,
            detach_keys: keys,
            sig_proxy: a.opts.sig_proxy,
        };
        let o = session::start_tty(store, &c, &opts).map_err(|e| cleanup_failed(store, &c, e))?;
        return Ok(session_code(o));
    }
    let mut started = ops::start(store, &c, streams.unwrap_or(Attach::Yes))
        .map_err(|e| cleanup_failed(store, &c, e))?;
    let code = attach::foreground_with(store, &c, &mut started, a.opts.tty, a.opts.sig_proxy);
    Ok(code)
}

/// A failed start of `run --rm` leaves nothing behind.
fn cleanup_failed(store: &Store, c: &Container, e: EngineError) -> anyhow::Error {
    if c.config.auto_remove {
        let _ = ops::remove(store, c, true);
        let _ = berth_engine::volumes::remove_anonymous(store, &c.config);
    }
    eng(e)
}

pub fn create(ctx: &Ctx, a: CreateArgs) -> Result<i32> {
    detach_keys(a.opts.detach_keys.as_deref())?;
    let c = create_from(ctx, &a.opts)?;
    println!("{}", c.id);
    Ok(0)
}

pub fn start(ctx: &Ctx, a: StartArgs) -> Result<i32> {
    let store = open(ctx)?;
    let attach = a.attach || a.interactive;
    if attach && a.containers.len() > 1 {
        bail!("you cannot start and attach multiple containers at once");
    }
    let keys = detach_keys(a.detach_keys.as_deref())?;
    let session_opts = session::AttachOptions {
        stdin: a.interactive,
        detach_keys: keys,
        sig_proxy: true,
    };
    let mut failed = false;
    for name in &a.containers {
        let c = match find(store, name) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("berth: {e}");
                failed = true;
                continue;
            }
        };
        if c.state.is_active() {
            if attach {
                // Docker's `start -a` of a running container attaches to it.
                let o = session::attach(store, &c, &session_opts).map_err(eng)?;
                return Ok(session_code(o));
            }
            println!("{name}");
            continue;
        }
        if attach && c.config.tty {
            check_tty(a.interactive, true)?;
            let o = session::start_tty(store, &c, &session_opts).map_err(eng)?;
            return Ok(session_code(o));
        }
        if attach {
            let mut started = ops::start(store, &c, Attach::Yes).map_err(eng)?;
            return Ok(attach::foreground(store, &c, &mut started, c.config.tty));
        }
        match ops::start(store, &c, Attach::No) {
            Ok(_) => println!("{name}"),
            Err(e) => {
                eprintln!("berth: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

fn each(
    ctx: &Ctx,
    names: &[String],
    f: impl FnMut(&Store, &Container) -> Result<()>,
) -> Result<i32> {
    each_sel(ctx, names, None, false, f)
}

/// Apply `f` to the named containers (or, with `all`, to every container `all` selects,
/// printing their ids), printing each name that succeeded; with `ignore`, names of no
/// container are skipped silently (Podman's `--ignore`).
pub(super) fn each_sel(
    ctx: &Ctx,
    names: &[String],
    all: Option<&dyn Fn(&Container) -> bool>,
    ignore: bool,
    mut f: impl FnMut(&Store, &Container) -> Result<()>,
) -> Result<i32> {
    let store = open(ctx)?;
    let names: Vec<String> = match all {
        Some(sel) => state::all(store)
            .map_err(eng)?
            .iter()
            .filter(|c| sel(c))
            .map(|c| c.id.clone())
            .collect(),
        None => names.to_vec(),
    };
    let mut failed = false;
    for n in &names {
        let found = find(store, n);
        if ignore {
            if let Err(e) = &found {
                if e.chain().any(|c| {
                    c.downcast_ref::<ExitError>()
                        .is_some_and(|x| x.msg.starts_with("no such container"))
                }) {
                    continue;
                }
            }
        }
        let r = found.and_then(|c| f(store, &c));
        match r {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("berth: {}", super::render_error(&e));
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// A stop timeout given on the command line: negative means no limit (as Docker's `-1`).
fn stop_seconds(t: i64) -> u32 {
    u32::try_from(t).unwrap_or(if t < 0 { u32::MAX } else { u32::MAX - 1 })
}

fn running(c: &Container) -> bool {
    c.state.is_active()
}

fn any(_: &Container) -> bool {
    true
}

pub fn stop(ctx: &Ctx, a: StopArgs) -> Result<i32> {
    let time = a.time.map(stop_seconds);
    let sel: Option<&dyn Fn(&Container) -> bool> = if a.all { Some(&running) } else { None };
    each_sel(ctx, &a.containers, sel, a.ignore, |s, c| {
        ops::stop(s, c, time).map_err(eng)
    })
}

pub fn restart(ctx: &Ctx, a: StopArgs) -> Result<i32> {
    let time = a.time.map(stop_seconds);
    each(ctx, &a.containers, |s, c| {
        ops::stop(s, c, time).map_err(eng)?;
        let c = find(s, &c.id)?;
        ops::start(s, &c, Attach::No).map_err(eng)?;
        Ok(())
    })
}

pub fn kill(ctx: &Ctx, a: KillArgs) -> Result<i32> {
    let sig = ccfg::parse_signal(&a.signal).map_err(eng)?;
    let sel: Option<&dyn Fn(&Container) -> bool> = if a.all { Some(&running) } else { None };
    each_sel(ctx, &a.containers, sel, a.ignore, |s, c| {
        ops::kill(s, c, sig).map_err(eng)
    })
}

pub fn rm(ctx: &Ctx, a: RmArgs) -> Result<i32> {
    let sel: Option<&dyn Fn(&Container) -> bool> = if a.all { Some(&any) } else { None };
    let time = a.time.map(stop_seconds);
    each_sel(ctx, &a.containers, sel, a.ignore, |s, c| {
        if let (Some(t), true) = (time, c.state.is_active()) {
            ops::stop(s, c, Some(t)).map_err(eng)?;
        }
        let c = &find(s, &c.id)?;
        ops::remove(s, c, a.force || time.is_some()).map_err(eng)?;
        if a.volumes {
            berth_engine::volumes::remove_anonymous(s, &c.config).map_err(eng)?;
        }
        Ok(())
    })
}

pub fn ps(ctx: &Ctx, a: PsArgs) -> Result<i32> {
    use berth_engine::{list, view};
    let store = ctx.store()?;
    let all = ops::reconciled_rows(store).map_err(eng)?;
    let lctx = list::ListContext::load(store, &all).map_err(eng)?;
    let filters = view::PsFilter::parse(&a.filter)?;
    let mut fctx = view::FilterContext {
        order: all.iter().map(|c| c.id.clone()).collect(),
        paused: lctx.paused_ids(),
        ..Default::default()
    };
    for (k, v) in filters.references() {
        let c = find(store, v)?;
        if k == "before" {
            fctx.before = Some(c);
        } else {
            fctx.since = Some(c);
        }
    }
    let ancestors: Vec<&str> = a
        .filter
        .iter()
        .filter_map(|f| f.strip_prefix("ancestor="))
        .collect();
    if !ancestors.is_empty() {
        if let Ok(is) = berth_image::ImageStore::open(store) {
            for f in ancestors {
                if let Ok(img) = is.resolve(f) {
                    fctx.ancestor_ids.push(img.id.to_string());
                }
            }
        }
    }
    let last = if a.latest {
        Some(1)
    } else {
        a.last.filter(|n| *n >= 0)
    };
    let show_all = a.all || last.is_some() || filters.implies_all();
    let mut list: Vec<&Container> = all
        .iter()
        .filter(|c| show_all || c.state.is_active())
        .filter(|c| filters.matches(c, lctx.health_of(c), &fctx))
        .collect();
    if let Some(n) = last {
        list.truncate(usize::try_from(n).unwrap_or(usize::MAX));
    }
    if a.quiet {
        let mut out = std::io::stdout().lock();
        for c in list {
            let id = if a.no_trunc { &c.id[..] } else { &c.id[..12] };
            writeln!(out, "{id}")?;
        }
        return Ok(0);
    }
    // As the docker CLI: a format (given or psFormat) that shows .Size asks for the sizes.
    let size = a.size
        || a.format
            .clone()
            .or_else(|| berth_format::config_format("psFormat"))
            .is_some_and(|f| f.contains(".Size"));
    let image_sizes: std::collections::HashMap<String, u64> = if size {
        berth_image::ImageStore::open(store)
            .and_then(|is| is.list())
            .map(|l| l.into_iter().map(|i| (i.id.to_string(), i.size)).collect())
            .unwrap_or_default()
    } else {
        Default::default()
    };
    let rows: Vec<serde_json::Value> = list
        .iter()
        .map(|c| {
            let sizes = size.then(|| list::Sizes {
                rw: berth_engine::rootfs::upper_size(store, &c.id),
                image: image_sizes.get(c.image_id.as_str()).copied().unwrap_or(0),
            });
            view::ps_row(&list::summary(store, c, &lctx, sizes), a.no_trunc)
        })
        .collect();
    let table = if a.size {
        format!("{}\t{{{{.Size}}}}", view::PS_TABLE)
    } else {
        view::PS_TABLE.to_string()
    };
    super::print_rows(
        &rows,
        a.format.as_deref(),
        "psFormat",
        &table,
        view::PS_HEADERS,
    )?;
    Ok(0)
}

pub fn pause(ctx: &Ctx, a: PauseArgs) -> Result<i32> {
    let sel: Option<&dyn Fn(&Container) -> bool> = if a.all {
        Some(&|c: &Container| c.state == State::Running && !ops::is_paused(c))
    } else {
        None
    };
    each_sel(ctx, &a.containers, sel, false, |s, c| {
        ops::pause(s, c).map_err(eng)
    })
}

pub fn unpause(ctx: &Ctx, a: PauseArgs) -> Result<i32> {
    let sel: Option<&dyn Fn(&Container) -> bool> = if a.all {
        Some(&|c: &Container| ops::is_paused(c))
    } else {
        None
    };
    each_sel(ctx, &a.containers, sel, false, |s, c| {
        ops::unpause(s, c).map_err(eng)
    })
}

pub fn rename(ctx: &Ctx, a: RenameArgs) -> Result<i32> {
    let store = open(ctx)?;
    let c = find(store, &a.container)?;
    ops::rename(store, &c, &a.new_name).map_err(eng)?;
    Ok(0)
}

/// `container exists NAME`: exit 0 if it exists, 1 if not (Podman).
pub fn exists(ctx: &Ctx, a: ExistsArgs) -> Result<i32> {
    let store = open(ctx)?;
    match state::lookup(store, &a.name) {
        Ok(_) => Ok(0),
        Err(EngineError::NotFound(_)) => Ok(1),
        Err(e) => Err(eng(e)),
    }
}

pub fn logs(ctx: &Ctx, a: LogsArgs) -> Result<i32> {
    let store = open(ctx)?;
    let c = find(store, &a.container)?;
    let tail = match a.tail.as_deref() {
        None | Some("all") => None,
        Some(n) if n.parse::<i64>().is_ok_and(|n| n < 0) => None,
        Some(n) => Some(
            n.parse::<usize>()
                .map_err(|_| anyhow!("invalid --tail {n:?}: use a number or \"all\""))?,
        ),
    };
    if !c.config.log_config.readable() {
        bail!(
            "configured logging driver {:?} does not support reading: run the container with --log-driver json-file or local",
            c.config.log_config.driver
        );
    }
    let time = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| berth_engine::logs::parse_time(flag, s))
            .transpose()
            .map_err(eng)
    };
    let opts = berth_engine::logs::LogOptions {
        follow: a.follow,
        tail,
        timestamps: a.timestamps,
        since: time("--since", &a.since)?,
        until: time("--until", &a.until)?,
        details: a.details,
    };
    let path = berth_engine::rootfs::Bundle::new(store.root(), &c.id).log();
    let id = c.id.clone();
    let mut running = || match state::get(store, &id) {
        Ok(Some(c)) => c.state.is_active() && state::monitor_alive(&c),
        _ => false,
    };
    match berth_engine::logs::print(&path, &opts, &mut running) {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(e).context("reading the container log"),
    }
}

pub fn exec(ctx: &Ctx, a: ExecArgs) -> Result<i32> {
    let store = open(ctx)?;
    let c = find(store, &a.container)?;
    let req = ExecRequest {
        args: a.command.clone(),
        env: user_env(&a.env_file, &a.env)?,
        user: a.user.clone(),
        workdir: a.workdir.clone(),
        tty: a.tty,
        interactive: a.interactive,
        detach: a.detach,
    };
    let keys = detach_keys(a.detach_keys.as_deref())?;
    if !a.detach && !a.relayed_tty {
        check_tty(a.interactive, a.tty)?;
    }
    match attach::exec_with(store, &c, &req, Some(&keys)) {
        Err(EngineError::Detached) => {
            // Docker's CLI reports a detach from `exec` as this error (exit status 1).
            eprintln!("read escape sequence");
            Ok(1)
        }
        r => r.map_err(eng),
    }
}

/// `attach [--no-stdin] [--sig-proxy] [--detach-keys] CONTAINER`: this terminal to a running
/// container's streams. A detach ends it as Docker's does: "read escape sequence", status 1.
pub fn attach(ctx: &Ctx, a: AttachArgs) -> Result<i32> {
    let store = open(ctx)?;
    let keys = detach_keys(a.detach_keys.as_deref())?;
    let c = find(store, &a.container)?;
    if c.config.tty && !a.no_stdin && c.config.open_stdin && !attach::isatty(0) {
        bail!("the input device is not a TTY; attach from a terminal or with --no-stdin");
    }
    let opts = session::AttachOptions {
        stdin: !a.no_stdin,
        detach_keys: keys,
        sig_proxy: a.sig_proxy,
    };
    match session::attach(store, &c, &opts).map_err(eng)? {
        Outcome::Detached => {
            eprintln!("read escape sequence");
            Ok(1)
        }
        o => Ok(session_code(o)),
    }
}

pub fn inspect(ctx: &Ctx, a: InspectArgs) -> Result<i32> {
    let store = open(ctx)?;
    let kind = a.kind.as_deref();
    if let Some(k) = kind {
        if !matches!(k, "container" | "image" | "network" | "volume") {
            bail!("invalid --type {k:?}: use container, image, network or volume");
        }
    }
    let mut docs = Vec::new();
    let mut failed = false;
    for n in &a.names {
        // Each kind in turn (Docker's order): a kind that does not know the word passes it
        // on; any other failure (an ambiguous id prefix) is the answer, as Docker's CLI does.
        let mut problem: Option<String> = None;
        let mut found = None;
        if kind.is_none() || kind == Some("container") {
            match state::lookup(store, n) {
                Ok(c) => found = Some(berth_engine::inspect::container_json(store, &c)),
                Err(EngineError::NotFound(_)) => {}
                Err(e) => problem = Some(e.to_string()),
            }
        }
        if found.is_none() && problem.is_none() && (kind.is_none() || kind == Some("image")) {
            match super::image::inspect_docs(store, std::slice::from_ref(n)) {
                Ok(mut v) => found = v.pop(),
                Err(e) => {
                    if let Some(berth_image::ImageError::Ambiguous { .. }) =
                        e.downcast_ref::<berth_image::ImageError>()
                    {
                        problem = Some(e.to_string());
                    }
                }
            }
        }
        if found.is_none() && problem.is_none() && (kind.is_none() || kind == Some("network")) {
            match berth_net::inspect_network(store, n) {
                Ok(v) => found = Some(v),
                Err(berth_net::NetError::NotFound(_)) => {}
                Err(e) => problem = Some(e.to_string()),
            }
        }
        if found.is_none() && problem.is_none() && (kind.is_none() || kind == Some("volume")) {
            if let Ok(v) = berth_volume::VolumeStore::open(store).and_then(|vs| vs.get(n)) {
                found = Some(super::volume::doc(&v));
            }
        }
        match found {
            Some(d) => docs.push(d),
            None => {
                let what = kind.unwrap_or("object");
                eprintln!(
                    "berth: {}",
                    problem.unwrap_or_else(|| format!("no such {what}: {n}"))
                );
                failed = true;
            }
        }
    }
    super::print_inspect(&docs, a.format.as_deref())?;
    Ok(if failed { 1 } else { 0 })
}

pub fn wait(ctx: &Ctx, a: WaitArgs) -> Result<i32> {
    let store = open(ctx)?;
    let mut failed = false;
    for n in &a.containers {
        match find(store, n).and_then(|c| ops::wait(store, &c).map_err(eng)) {
            Ok(code) => println!("{code}"),
            Err(e) => {
                eprintln!("berth: {}", super::render_error(&e));
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

pub fn prune(ctx: &Ctx, _a: PruneArgs) -> Result<i32> {
    let store = open(ctx)?;
    let mut n = 0;
    for c in state::all(store).map_err(eng)? {
        if matches!(c.state, State::Exited | State::Created)
            && ops::remove(store, &c, false).is_ok()
        {
            println!("{}", c.id);
            n += 1;
        }
    }
    ops::sweep(store).map_err(eng)?;
    println!("Deleted {n} containers");
    Ok(0)
}

/// Pull an image that `run`/`create` needs (progress on stderr, as Docker does).
fn pull_for_run(store: &Store, image: &str) -> Result<()> {
    let reference = berth_image::Reference::parse(image)?;
    let opts = berth_registry::PullOptions {
        output: berth_registry::OutputStream::Stderr,
        ..Default::default()
    };
    berth_registry::pull(store, &reference, &opts)
        .with_context(|| format!("unable to find image {image:?} locally and pulling it failed"))?;
    Ok(())
}
