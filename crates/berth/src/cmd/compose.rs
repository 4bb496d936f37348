//! `berth compose …`: compose projects. Loading is `berth-compose`; this maps flags to it.

use std::path::PathBuf;

use anyhow::{bail, Result};
use berth_compose::{Options, Project};
use clap::{Args, Subcommand};

use super::Ctx;

/// Options shared by every `compose` subcommand.
#[derive(Debug, Args)]
pub struct ComposeArgs {
    /// Compose file(s), merged in order (default: compose.yaml … looked up from the working directory).
    #[arg(short = 'f', long = "file")]
    pub files: Vec<PathBuf>,
    /// Project name (default: COMPOSE_PROJECT_NAME, the file's name:, or the directory name).
    #[arg(short = 'p', long = "project-name")]
    pub project_name: Option<String>,
    /// Project directory (default: the first file's directory).
    #[arg(long)]
    pub project_directory: Option<PathBuf>,
    /// Environment file(s) for interpolation (default: .env in the project directory).
    #[arg(long = "env-file")]
    pub env_files: Vec<PathBuf>,
    /// Enable services of this profile (also COMPOSE_PROFILES).
    #[arg(long = "profile")]
    pub profiles: Vec<String>,
    #[command(subcommand)]
    pub cmd: ComposeCmd,
}

#[derive(Debug, Subcommand)]
pub enum ComposeCmd {
    /// Create and start the project's containers (and networks).
    Up(UpArgs),
    /// Stop and remove the project's containers and networks.
    Down(DownArgs),
    /// List the project's containers.
    Ps(PsArgs),
    /// Show the output of the project's containers.
    Logs(LogsArgs),
    /// Run a command in a running service container.
    Exec(ExecArgs),
    /// Run a one-off command in a new container of a service.
    #[command(disable_help_flag = true)]
    Run(RunArgs),
    /// Create the project's containers without starting them.
    Create(CreateArgs),
    /// Start existing containers.
    Start(ServicesArgs),
    /// Stop running containers.
    Stop(StopArgs),
    /// Restart containers.
    Restart(StopArgs),
    /// Send a signal to containers.
    Kill(KillArgs),
    /// Pause the services' running containers (cgroup freezer).
    Pause(ServicesArgs),
    /// Resume paused containers.
    Unpause(ServicesArgs),
    /// Show the processes of the services' running containers.
    Top(ServicesArgs),
    /// Remove stopped containers.
    Rm(RmArgs),
    /// Print the host address of a published port.
    Port(PortArgs),
    /// List the images the containers use.
    Images(ServicesArgs),
    /// List projects.
    Ls(LsArgs),
    /// Pull the services' images.
    Pull(ServicesArgs),
    /// Push the services' images.
    Push(ServicesArgs),
    /// Build the services' images.
    Build(ServicesArgs),
    /// Print the normalised project model.
    Config(ConfigArgs),
    /// Show the compose version.
    Version(VersionArgs),
}

impl ComposeCmd {
    /// The services named on the command line (empty when none or not applicable).
    pub fn named_services(&self) -> Vec<String> {
        match self {
            ComposeCmd::Up(x) => x.services.clone(),
            ComposeCmd::Create(x) => x.services.clone(),
            ComposeCmd::Logs(x) => x.services.clone(),
            ComposeCmd::Stop(x) | ComposeCmd::Restart(x) => x.services.clone(),
            ComposeCmd::Kill(x) => x.services.clone(),
            ComposeCmd::Rm(x) => x.services.clone(),
            ComposeCmd::Start(x)
            | ComposeCmd::Pause(x)
            | ComposeCmd::Unpause(x)
            | ComposeCmd::Top(x)
            | ComposeCmd::Images(x)
            | ComposeCmd::Pull(x)
            | ComposeCmd::Push(x)
            | ComposeCmd::Build(x) => x.services.clone(),
            ComposeCmd::Run(x) => vec![x.service.clone()],
            ComposeCmd::Exec(x) => vec![x.service.clone()],
            ComposeCmd::Port(x) => vec![x.service.clone()],
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Run in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// Build images before starting.
    #[arg(long)]
    pub build: bool,
    /// Don't build images.
    #[arg(long)]
    pub no_build: bool,
    /// Wait for the services to be running (implies --detach).
    #[arg(long)]
    pub wait: bool,
    /// Seconds --wait waits at most.
    #[arg(long)]
    pub wait_timeout: Option<u64>,
    /// Replicas of a service: SERVICE=N (repeatable).
    #[arg(long)]
    pub scale: Vec<String>,
    /// Recreate containers even if their configuration is unchanged.
    #[arg(long)]
    pub force_recreate: bool,
    /// Don't recreate existing containers.
    #[arg(long)]
    pub no_recreate: bool,
    /// Don't start the services' dependencies.
    #[arg(long)]
    pub no_deps: bool,
    /// Remove containers of services not in the project.
    #[arg(long)]
    pub remove_orphans: bool,
    /// With SERVICE names: attach to their dependencies' output too (default: only to the
    /// named services, as docker compose).
    #[arg(long)]
    pub attach_dependencies: bool,
    /// Stop all containers when one exits (attached).
    #[arg(long)]
    pub abort_on_container_exit: bool,
    /// Exit with this service's exit code (implies --abort-on-container-exit).
    #[arg(long)]
    pub exit_code_from: Option<String>,
    /// Create containers, don't start them.
    #[arg(long)]
    pub no_start: bool,
    /// Pull images: always, missing, never.
    #[arg(long)]
    pub pull: Option<String>,
    /// Seconds to wait when stopping replaced containers.
    #[arg(short = 't', long)]
    pub timeout: Option<u32>,
    /// No colors in log prefixes.
    #[arg(long)]
    pub no_color: bool,
    /// Don't prefix log lines.
    #[arg(long)]
    pub no_log_prefix: bool,
    /// Services (default: all).
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Remove named volumes declared by the project.
    #[arg(short, long)]
    pub volumes: bool,
    /// Remove images: local (those without an image: name) or all.
    #[arg(long)]
    pub rmi: Option<String>,
    /// Remove containers of services not in the project.
    #[arg(long)]
    pub remove_orphans: bool,
    /// Seconds to wait before killing.
    #[arg(short = 't', long)]
    pub timeout: Option<u32>,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show stopped containers too.
    #[arg(short, long)]
    pub all: bool,
    /// Only ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Only the service names.
    #[arg(long)]
    pub services: bool,
    /// table (default) or json.
    #[arg(long)]
    pub format: Option<String>,
    /// Services (default: all).
    pub service: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow output.
    #[arg(short, long)]
    pub follow: bool,
    /// Lines from the end of each log ("all" for everything).
    #[arg(short = 'n', long)]
    pub tail: Option<String>,
    /// Show timestamps.
    #[arg(short, long)]
    pub timestamps: bool,
    /// No colors.
    #[arg(long)]
    pub no_color: bool,
    /// Don't prefix lines.
    #[arg(long)]
    pub no_log_prefix: bool,
    /// Services (default: all).
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Run in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// Don't allocate a terminal (default: allocate one when stdin is a terminal).
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Environment KEY=VALUE.
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// User.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory.
    #[arg(short, long)]
    pub workdir: Option<String>,
    /// Which replica (1-based).
    #[arg(long, default_value_t = 1)]
    pub index: u64,
    /// Service.
    pub service: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Environment KEY=VALUE.
    #[arg(short, long = "env")]
    pub env: Vec<String>,
    /// Don't start dependencies.
    #[arg(long)]
    pub no_deps: bool,
    /// Publish the service's ports.
    #[arg(long)]
    pub service_ports: bool,
    /// Don't allocate a terminal.
    #[arg(short = 'T', long = "no-TTY")]
    pub no_tty: bool,
    /// Container name.
    #[arg(long)]
    pub name: Option<String>,
    /// Override the service's entrypoint (split as a shell would).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Working directory in the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// User (name or uid[:gid]) to run as.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Service.
    pub service: String,
    /// Command and arguments (default: the service's).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Recreate containers even if unchanged.
    #[arg(long)]
    pub force_recreate: bool,
    /// Don't recreate existing containers.
    #[arg(long)]
    pub no_recreate: bool,
    /// Services (default: all).
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ServicesArgs {
    /// Services (default: all).
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing.
    #[arg(short = 't', long)]
    pub timeout: Option<u32>,
    /// Services (default: all).
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal.
    #[arg(short, long, default_value = "SIGKILL")]
    pub signal: String,
    /// Services (default: all).
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Don't ask (accepted; berth never asks).
    #[arg(short, long)]
    pub force: bool,
    /// Stop the containers first.
    #[arg(short, long)]
    pub stop: bool,
    /// Remove anonymous volumes (accepted).
    #[arg(short, long)]
    pub volumes: bool,
    /// Services (default: all).
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    /// tcp or udp.
    #[arg(long, default_value = "tcp")]
    pub protocol: String,
    /// Which replica (1-based).
    #[arg(long, default_value_t = 1)]
    pub index: u64,
    /// Service.
    pub service: String,
    /// Container port.
    pub private_port: u16,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Show stopped projects too.
    #[arg(short, long)]
    pub all: bool,
    /// Only names.
    #[arg(short, long)]
    pub quiet: bool,
    /// table (default) or json.
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print the service names, one per line.
    #[arg(long)]
    pub services: bool,
    /// Print the volume names, one per line.
    #[arg(long)]
    pub volumes: bool,
    /// Print the network names, one per line.
    #[arg(long)]
    pub networks: bool,
    /// Print the profile names, one per line.
    #[arg(long = "profiles", id = "list_profiles")]
    pub profiles: bool,
    /// Print the image names, one per line.
    #[arg(long)]
    pub images: bool,
    /// Print each service's configuration hash (`com.docker.compose.config-hash`) as
    /// `SERVICE HASH` lines: `*` for all, or `a,b`.
    #[arg(long, value_name = "SERVICES")]
    pub hash: Option<String>,
    /// Output format: yaml (default) or json.
    #[arg(long, default_value = "yaml")]
    pub format: String,
    /// Only validate; print nothing.
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the model to this file instead of standard output.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VersionArgs {
    /// Only the version number.
    #[arg(long)]
    pub short: bool,
}

/// Without a compose file, commands that act on existing containers (`ps`, `logs`, `stop`,
/// `down`, …) work on the project named by `-p` or `COMPOSE_PROJECT_NAME`, as docker compose
/// allows: the project as its containers' labels describe it. Otherwise `e` stands.
fn project_by_name(ctx: &Ctx, a: &ComposeArgs, e: anyhow::Error) -> Result<Project> {
    let not_found = matches!(
        e.downcast_ref::<berth_compose::ComposeError>(),
        Some(berth_compose::ComposeError::NotFound(_))
    );
    let needs_model = matches!(
        a.cmd,
        ComposeCmd::Up(_)
            | ComposeCmd::Create(_)
            | ComposeCmd::Run(_)
            | ComposeCmd::Build(_)
            | ComposeCmd::Pull(_)
            | ComposeCmd::Push(_)
            | ComposeCmd::Config(_)
    );
    let name = a
        .project_name
        .clone()
        .or_else(|| std::env::var("COMPOSE_PROJECT_NAME").ok())
        .filter(|n| !n.is_empty());
    match name {
        Some(n) if not_found && !needs_model => {
            if berth_compose::loader::normalize_project_name(&n) != n {
                bail!("invalid project name {n:?}: use only lowercase letters, digits, '-' and '_', starting with a letter or digit");
            }
            let store = ctx.store()?;
            Ok(berth_compose_run::project::from_labels(store, &n)
                .map_err(|e| anyhow::anyhow!(e))?)
        }
        _ => Err(e),
    }
}

/// Load the project of these options, printing loader warnings on stderr.
pub fn load_project(a: &ComposeArgs) -> Result<Project> {
    let o = Options {
        files: a.files.clone(),
        project_name: a.project_name.clone(),
        project_directory: a.project_directory.clone(),
        env_files: a.env_files.clone(),
        profiles: a.profiles.clone(),
        services: a.cmd.named_services(),
        stdin: if a.files.iter().any(|f| f.as_os_str() == "-") {
            // `-f -`: the compose file on standard input (bounded like a file).
            use std::io::Read as _;
            let mut t = String::new();
            std::io::stdin()
                .take(berth_compose::MAX_COMPOSE_FILE + 1)
                .read_to_string(&mut t)?;
            if t.len() as u64 > berth_compose::MAX_COMPOSE_FILE {
                bail!(
                    "the compose file on standard input is larger than {} bytes",
                    berth_compose::MAX_COMPOSE_FILE
                );
            }
            Some(t)
        } else {
            None
        },
        cwd: std::env::current_dir()?,
        environ: std::env::vars().collect(),
    };
    let p = berth_compose::load(&o)?;
    for w in &p.warnings {
        eprintln!("berth: warning: {w}");
    }
    Ok(p)
}

pub fn compose(ctx: &Ctx, a: ComposeArgs) -> Result<i32> {
    let r = match &a.cmd {
        ComposeCmd::Config(c) => config(&a, c),
        ComposeCmd::Version(v) => {
            if v.short {
                println!("{}", env!("CARGO_PKG_VERSION"));
            } else {
                println!("berth compose version {}", env!("CARGO_PKG_VERSION"));
            }
            Ok(0)
        }
        ComposeCmd::Ls(l) => super::compose_run::ls(ctx, l),
        _ => load_project(&a)
            .or_else(|e| project_by_name(ctx, &a, e))
            .and_then(|p| super::compose_run::run_cmd(ctx, &p, &a.cmd)),
    };
    // Docker compose exits 1 on its own failures.
    r.map_err(|e| match e.downcast_ref::<super::ExitError>() {
        Some(_) => e,
        None => anyhow::Error::new(super::ExitError {
            code: 1,
            msg: super::render_error(&e),
        }),
    })
}

fn config(a: &ComposeArgs, c: &ConfigArgs) -> Result<i32> {
    let p = load_project(a)?;
    if c.quiet {
        return Ok(0);
    }
    if c.services {
        // Dependencies first, as docker compose lists them.
        for n in p.dependency_order() {
            println!("{n}");
        }
        return Ok(0);
    }
    if c.volumes {
        for n in p.volumes.keys() {
            println!("{n}");
        }
        return Ok(0);
    }
    if c.networks {
        for n in p.networks.keys() {
            println!("{n}");
        }
        return Ok(0);
    }
    if c.profiles {
        let mut all: Vec<&String> = p
            .services
            .values()
            .chain(p.disabled.values())
            .flat_map(|s| &s.profiles)
            .collect();
        all.sort();
        all.dedup();
        for n in all {
            println!("{n}");
        }
        return Ok(0);
    }
    if c.images {
        for (n, s) in &p.services {
            println!("{}", service_image(&p, n, s));
        }
        return Ok(0);
    }
    if let Some(h) = &c.hash {
        // docker compose's hash of the model: what `up` puts on the service's containers
        // (berth resolves env_file at load, so this is also `up`'s value for services
        // with env_file, where docker compose's `config --hash` hashes them unresolved).
        let names: Vec<String> = if h == "*" {
            p.services.keys().cloned().collect()
        } else {
            let mut v: Vec<String> = h.split(',').map(str::to_string).collect();
            v.sort();
            v
        };
        for n in names {
            let Some(s) = p.services.get(&n) else {
                bail!("no such service: {n}");
            };
            println!("{n} {}", berth_compose_run::convert::config_hash(s));
        }
        return Ok(0);
    }
    let text = match c.format.as_str() {
        "json" => format!("{}\n", serde_json::to_string_pretty(&p.to_json())?),
        "yaml" => p.to_yaml(),
        f => bail!("unsupported --format {f:?}: use yaml or json"),
    };
    match &c.output {
        Some(f) => {
            std::fs::write(f, text).map_err(|e| anyhow::anyhow!("writing {}: {e}", f.display()))?
        }
        None => print!("{text}"),
    }
    Ok(0)
}

/// The image a service runs: `image:`, or `PROJECT-SERVICE` for a build without one.
pub fn service_image(p: &Project, name: &str, s: &berth_compose::Service) -> String {
    s.image
        .clone()
        .unwrap_or_else(|| format!("{}-{}", p.name, name))
}
