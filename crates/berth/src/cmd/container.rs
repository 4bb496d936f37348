//! Container commands: `run`, `create`, `start`, `stop`, `ps`, `logs`, `exec`, …

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use super::Ctx;

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
    /// Bind mount: HOST:CONTAINER[:ro|rw].
    #[arg(short, long = "volume")]
    pub volume: Vec<String>,
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
    /// Publish ports: [IP:][HOST:]CONTAINER[/PROTO].
    #[arg(short, long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random host ports.
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// DNS servers.
    #[arg(long)]
    pub dns: Vec<String>,
    /// Extra /etc/hosts entries HOST:IP.
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
    /// Seconds to wait before killing on stop.
    #[arg(long)]
    pub stop_timeout: Option<u32>,
    /// Pull policy: missing (default), always, never.
    #[arg(long, default_value = "missing")]
    pub pull: String,
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
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing.
    #[arg(short, long)]
    pub time: Option<u32>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send.
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill and remove running containers.
    #[arg(short, long)]
    pub force: bool,
    /// Remove anonymous volumes too (accepted for compatibility).
    #[arg(short, long)]
    pub volumes: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers, not only running ones.
    #[arg(short, long)]
    pub all: bool,
    /// Only ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// table (default) or json.
    #[arg(long)]
    pub format: Option<String>,
    /// Do not truncate output.
    #[arg(long)]
    pub no_trunc: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow output.
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines from the end ("all" for everything).
    #[arg(short = 'n', long)]
    pub tail: Option<String>,
    /// Show timestamps.
    #[arg(short, long)]
    pub timestamps: bool,
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
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    #[arg(short, long)]
    pub user: Option<String>,
    #[arg(short, long)]
    pub workdir: Option<String>,
    pub container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
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
    Run(RunArgs),
    Create(CreateArgs),
    Start(StartArgs),
    Stop(StopArgs),
    Restart(StopArgs),
    Kill(KillArgs),
    Rm(RmArgs),
    Logs(LogsArgs),
    Exec(ExecArgs),
    Inspect(InspectArgs),
    Wait(WaitArgs),
    /// Remove all stopped containers.
    Prune(PruneArgs),
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
        ContainerCmd::Inspect(a) => inspect(ctx, a),
        ContainerCmd::Wait(a) => wait(ctx, a),
        ContainerCmd::Prune(a) => prune(ctx, a),
    }
}

pub fn run(_ctx: &Ctx, _a: RunArgs) -> Result<i32> {
    bail!("run is not implemented yet")
}
pub fn create(_ctx: &Ctx, _a: CreateArgs) -> Result<i32> {
    bail!("create is not implemented yet")
}
pub fn start(_ctx: &Ctx, _a: StartArgs) -> Result<i32> {
    bail!("not implemented yet")
}
pub fn stop(_ctx: &Ctx, _a: StopArgs) -> Result<i32> {
    bail!("not implemented yet")
}
pub fn restart(_ctx: &Ctx, _a: StopArgs) -> Result<i32> {
    bail!("not implemented yet")
}
pub fn kill(_ctx: &Ctx, _a: KillArgs) -> Result<i32> {
    bail!("not implemented yet")
}
pub fn rm(_ctx: &Ctx, _a: RmArgs) -> Result<i32> {
    bail!("not implemented yet")
}
pub fn ps(_ctx: &Ctx, _a: PsArgs) -> Result<i32> {
    bail!("not implemented yet")
}
pub fn logs(_ctx: &Ctx, _a: LogsArgs) -> Result<i32> {
    bail!("not implemented yet")
}
pub fn exec(_ctx: &Ctx, _a: ExecArgs) -> Result<i32> {
    bail!("not implemented yet")
}
pub fn inspect(_ctx: &Ctx, _a: InspectArgs) -> Result<i32> {
    bail!("not implemented yet")
}
pub fn wait(_ctx: &Ctx, _a: WaitArgs) -> Result<i32> {
    bail!("not implemented yet")
}
pub fn prune(_ctx: &Ctx, _a: PruneArgs) -> Result<i32> {
    bail!("not implemented yet")
}
