//! `berth`: a daemonless container engine. This binary only maps flags to library calls.

mod cmd;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use cmd::{
    build, compose, container, files, image, internal, network, registry, shell, sif, system,
    update, volume, Ctx,
};

/// Run containers without a daemon.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, propagate_version = true)]
struct Cli {
    /// Storage root (images, containers, metadata).
    #[arg(long, global = true, env = "BERTH_ROOT", default_value = berth_store::DEFAULT_ROOT)]
    root: std::path::PathBuf,

    /// Log level for berth's own diagnostics (error, warn, info, debug, trace).
    #[arg(long, global = true, env = "BERTH_LOG", default_value = "warn")]
    log_level: String,

    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    // ---- containers ----
    /// Create and start a container.
    #[command(disable_help_flag = true)]
    Run(container::RunArgs),
    /// Create a container without starting it.
    #[command(disable_help_flag = true)]
    Create(container::CreateArgs),
    /// Start one or more stopped containers.
    Start(container::StartArgs),
    /// Stop running containers (SIGTERM, then SIGKILL after a grace period).
    Stop(container::StopArgs),
    /// Restart containers.
    Restart(container::StopArgs),
    /// Send a signal to running containers.
    Kill(container::KillArgs),
    /// Remove containers.
    Rm(container::RmArgs),
    /// List containers.
    Ps(container::PsArgs),
    /// Show a container's output.
    Logs(container::LogsArgs),
    /// Run a command in a running container.
    Exec(container::ExecArgs),
    /// Attach this terminal to a running container's input and output.
    Attach(container::AttachArgs),
    /// Show low-level information on containers or images.
    Inspect(container::InspectArgs),
    /// Wait for containers to stop and print their exit codes.
    Wait(container::WaitArgs),
    /// Pause all processes of containers.
    Pause(container::PauseArgs),
    /// Unpause containers.
    Unpause(container::PauseArgs),
    /// Rename a container.
    Rename(container::RenameArgs),
    /// Change containers' resource limits and restart policy.
    Update(update::UpdateArgs),
    /// Copy files between a container and the host (or a tar stream).
    Cp(files::CpArgs),
    /// Write a container's filesystem as a tar archive.
    Export(files::ExportArgs),
    /// Show changes to a container's filesystem.
    Diff(files::DiffArgs),
    /// Show a container's processes.
    Top(files::TopArgs),
    /// Show containers' resource usage.
    Stats(files::StatsArgs),
    /// Manage containers.
    #[command(subcommand)]
    Container(container::ContainerCmd),

    // ---- images ----
    /// Load images from a docker-archive or oci-archive tar file.
    Load(image::LoadArgs),
    /// Save images to a tar archive.
    Save(image::SaveArgs),
    /// Create an image from a root filesystem tarball.
    Import(image::ImportArgs),
    /// List images.
    Images(image::ImagesArgs),
    /// Give an image another name.
    Tag(image::TagArgs),
    /// Remove images.
    Rmi(image::RmiArgs),
    /// Remove tags from an image (Podman).
    Untag(image::UntagArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(image::ImageCmd),
    /// Build an image from a Dockerfile.
    Build(build::BuildArgs),
    /// Show the history of an image.
    History(build::HistoryArgs),
    /// Create a new image from a container's changes.
    Commit(build::CommitArgs),
    /// Manage the build cache.
    #[command(subcommand)]
    Builder(build::BuilderCmd),

    // ---- registries ----
    /// Log in to a registry.
    Login(registry::LoginArgs),
    /// Log out from a registry.
    Logout(registry::LogoutArgs),
    /// Download an image from a registry.
    Pull(registry::PullArgs),
    /// Upload an image to a registry.
    Push(registry::PushArgs),

    // ---- networks ----
    /// Manage networks.
    #[command(subcommand)]
    Network(network::NetworkCmd),

    // ---- volumes ----
    /// Manage volumes.
    #[command(subcommand)]
    Volume(volume::VolumeCmd),
    /// List a container's published ports.
    Port(network::PortArgs),

    // ---- system ----
    /// Show berth's version.
    Version(system::VersionArgs),
    /// Show system-wide information.
    Info(system::InfoArgs),
    /// Show container, image, network and volume events (following new ones).
    Events(system::EventsArgs),
    /// Manage berth.
    #[command(subcommand)]
    System(system::SystemCmd),

    // ---- projects ----
    /// Define and run multi-container applications (compose files).
    Compose(compose::ComposeArgs),

    // ---- Apptainer ----
    /// Apptainer's workflow: build, run and inspect SIF images.
    #[command(subcommand)]
    Sif(sif::SifCmd),

    // ---- shell integration ----
    /// Print a completion script for bash, zsh or fish.
    Completion(shell::CompletionArgs),

    // ---- internal ----
    #[command(name = "__man", hide = true)]
    Man(shell::ManArgs),
    #[command(name = "__monitor", hide = true)]
    Monitor(internal::MonitorArgs),
    #[command(name = "__healthcheck", hide = true)]
    Healthcheck(internal::HealthcheckArgs),
    #[command(name = "__compress-log", hide = true)]
    CompressLog(internal::CompressLogArgs),
    #[command(name = "__dns", hide = true)]
    Dns(network::DnsArgs),
    #[command(name = "__oneshot", hide = true)]
    Oneshot(internal::OneshotArgs),
}

/// The command line definition, with every option that takes a value accepting a negative
/// number as a separate word (`--pids-limit -1`, `stop -t -1`, `logs --tail -1`), as Docker's
/// CLI does; without this clap reads `-1` as an unknown short option. An option given twice
/// takes the last value (`--name a --name b`, `-d -d`), as Docker's flag parser does.
fn cli_command() -> clap::Command {
    fn negative_numbers(cmd: clap::Command) -> clap::Command {
        cmd.args_override_self(true)
            .mut_args(|a| {
                if a.get_action().takes_values() {
                    a.allow_negative_numbers(true)
                } else {
                    a
                }
            })
            .mut_subcommands(negative_numbers)
    }
    shell::with_name_completion(negative_numbers(Cli::command()))
}

fn parse_cli(argv: Vec<std::ffi::OsString>) -> Result<Cli, clap::Error> {
    let mut cmd = cli_command();
    let m = cmd.try_get_matches_from_mut(argv)?;
    Cli::from_arg_matches(&m).map_err(|e| e.format(&mut cmd))
}

impl Cmd {
    /// The exit status of a failure that carries no status of its own. Docker's CLI uses 125
    /// ("the engine failed") only for `run`, `create` and `exec`; every other command exits 1.
    fn failure_code(&self) -> u8 {
        match self {
            Cmd::Run(_) | Cmd::Create(_) | Cmd::Exec(_) => cmd::EXIT_ENGINE,
            Cmd::Container(
                container::ContainerCmd::Run(_)
                | container::ContainerCmd::Create(_)
                | container::ContainerCmd::Exec(_),
            ) => cmd::EXIT_ENGINE,
            _ => 1,
        }
    }
}

/// Map an error to the process's exit status: an explicit status (126/127 from `run`, a
/// container's own code) wins; a status of 125 from the engine becomes the command's own
/// failure code (see [`Cmd::failure_code`]).
fn exit_status(e: &anyhow::Error, failure_code: u8) -> u8 {
    match cmd::exit_code_of(e) {
        cmd::EXIT_ENGINE => failure_code,
        c => c,
    }
}

fn main() -> ExitCode {
    cmd::output::end_quietly_on_broken_pipe();
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    shell::complete_if_asked(&argv, cli_command);
    let argv = sif::argv_for_alias(&argv).unwrap_or(argv);
    let cli = match parse_cli(argv) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 125 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let failure_code = cli.cmd.failure_code();
    init_tracing(&cli.log_level);
    tracing::debug!("berth {:?}", std::env::args().nth(1));
    let ctx = Ctx::new(cli.root);
    let res = match cli.cmd {
        Cmd::Run(a) => container::run(&ctx, a),
        Cmd::Create(a) => container::create(&ctx, a),
        Cmd::Start(a) => container::start(&ctx, a),
        Cmd::Stop(a) => container::stop(&ctx, a),
        Cmd::Restart(a) => container::restart(&ctx, a),
        Cmd::Kill(a) => container::kill(&ctx, a),
        Cmd::Rm(a) => container::rm(&ctx, a),
        Cmd::Ps(a) => container::ps(&ctx, a),
        Cmd::Logs(a) => container::logs(&ctx, a),
        Cmd::Exec(a) => container::exec(&ctx, a),
        Cmd::Attach(a) => container::attach(&ctx, a),
        Cmd::Inspect(a) => container::inspect(&ctx, a),
        Cmd::Wait(a) => container::wait(&ctx, a),
        Cmd::Pause(a) => container::pause(&ctx, a),
        Cmd::Unpause(a) => container::unpause(&ctx, a),
        Cmd::Rename(a) => container::rename(&ctx, a),
        Cmd::Update(a) => update::update(&ctx, a),
        Cmd::Cp(a) => files::cp(&ctx, a),
        Cmd::Export(a) => files::export(&ctx, a),
        Cmd::Diff(a) => files::diff(&ctx, a),
        Cmd::Top(a) => files::top(&ctx, a),
        Cmd::Stats(a) => files::stats(&ctx, a),
        Cmd::Container(c) => container::container_cmd(&ctx, c),
        Cmd::Load(a) => image::load(&ctx, a),
        Cmd::Save(a) => image::save(&ctx, a),
        Cmd::Import(a) => image::import(&ctx, a),
        Cmd::Images(a) => image::images(&ctx, a),
        Cmd::Tag(a) => image::tag(&ctx, a),
        Cmd::Rmi(a) => image::rmi(&ctx, a),
        Cmd::Untag(a) => image::untag(&ctx, a),
        Cmd::Version(a) => system::version(&ctx, a),
        Cmd::Info(a) => system::info(&ctx, a),
        Cmd::Events(a) => system::events(&ctx, a),
        Cmd::System(c) => system::system_cmd(&ctx, c),
        Cmd::Image(c) => image::image_cmd(&ctx, c),
        Cmd::Build(a) => build::build(&ctx, a),
        Cmd::History(a) => build::history(&ctx, a),
        Cmd::Commit(a) => build::commit(&ctx, a),
        Cmd::Builder(c) => build::builder_cmd(&ctx, c),
        Cmd::Login(a) => registry::login(&ctx, a),
        Cmd::Logout(a) => registry::logout(&ctx, a),
        Cmd::Pull(a) => registry::pull(&ctx, a),
        Cmd::Push(a) => registry::push(&ctx, a),
        Cmd::Network(c) => network::network_cmd(&ctx, c),
        Cmd::Volume(c) => volume::volume_cmd(&ctx, c),
        Cmd::Port(a) => network::port(&ctx, a),
        Cmd::Compose(a) => compose::compose(&ctx, a),
        Cmd::Sif(c) => sif::sif_cmd(&ctx, c),
        Cmd::Completion(a) => shell::completion(a),
        Cmd::Man(a) => shell::man(cli_command(), a),
        Cmd::Monitor(a) => internal::monitor(&ctx, a),
        Cmd::Healthcheck(a) => internal::healthcheck(&ctx, a),
        Cmd::CompressLog(a) => internal::compress_log(a),
        Cmd::Dns(a) => network::dns(&ctx, a),
        Cmd::Oneshot(a) => internal::oneshot(&ctx, a),
    };
    match res {
        Ok(code) => ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(u8::MAX)),
        Err(e) if cmd::output::is_broken_pipe(&e) => cmd::output::broken_pipe_exit(),
        Err(e) => {
            eprintln!("berth: {}", cmd::render_error(&e));
            ExitCode::from(exit_status(&e, failure_code))
        }
    }
}

fn init_tracing(level: &str) {
    let level = if level.contains("libcgroups") || level.contains('=') {
        level.to_string()
    } else {
        format!("{level},libcgroups=off,libcontainer=off")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let debug = level.contains("debug") || level.contains("trace");
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // Timestamps only when debugging (they show where time goes across CLI and monitor).
    let _ = if debug {
        b.try_init()
    } else {
        b.without_time().try_init()
    };
}

#[cfg(test)]
mod tests {
    use clap::FromArgMatches;

    #[test]
    fn cli_definition_is_consistent() {
        super::cli_command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<super::Cli, clap::Error> {
        let m = super::cli_command()
            .try_get_matches_from(std::iter::once("berth").chain(args.iter().copied()))?;
        super::Cli::from_arg_matches(&m)
    }

    /// Every option that takes a value, in every subcommand, takes `-1` as its value when it is
    /// given as a separate word: the value may then be refused by the option's own parser (a
    /// name, a path), but never read as an unknown option `-1`.
    #[test]
    fn every_value_option_takes_a_negative_number_as_a_separate_word() {
        fn walk(cmd: &clap::Command, path: &mut Vec<String>, checked: &mut usize) {
            if cmd.get_subcommands().next().is_some() {
                for sub in cmd.get_subcommands() {
                    path.push(sub.get_name().to_string());
                    walk(sub, path, checked);
                    path.pop();
                }
                return;
            }
            let positionals: Vec<String> = cmd
                .get_positionals()
                .filter(|p| p.is_required_set())
                .map(|_| "x".to_string())
                .collect();
            for opt in cmd.get_opts().filter(|o| o.get_action().takes_values()) {
                let flag = match (opt.get_long(), opt.get_short()) {
                    (Some(l), _) => format!("--{l}"),
                    (None, Some(s)) => format!("-{s}"),
                    (None, None) => continue,
                };
                let mut argv = vec!["berth".to_string()];
                argv.extend(path.iter().cloned());
                argv.push(flag.clone());
                argv.push("-1".into());
                argv.extend(positionals.iter().cloned());
                let root = super::cli_command();
                if let Err(e) = root.try_get_matches_from(&argv) {
                    assert!(
                        !matches!(
                            e.kind(),
                            clap::error::ErrorKind::UnknownArgument
                                | clap::error::ErrorKind::NoEquals
                        ) && !e.to_string().contains("unexpected argument '-1'"),
                        "{argv:?}: {e}"
                    );
                }
                *checked += 1;
            }
        }
        let mut checked = 0;
        walk(&super::cli_command(), &mut vec![], &mut checked);
        assert!(checked > 20, "only {checked} options checked");
    }

    #[test]
    fn negative_limits_timeouts_and_tails_parse() {
        use super::Cmd;
        use crate::cmd::container::ContainerCmd;
        match parse(&["run", "--rm", "--pids-limit", "-1", "img", "true"])
            .unwrap()
            .cmd
        {
            Cmd::Run(a) => assert_eq!(a.opts.pids_limit, Some(-1)),
            c => panic!("{c:?}"),
        }
        match parse(&["create", "--stop-timeout", "-1", "img"])
            .unwrap()
            .cmd
        {
            Cmd::Create(a) => assert_eq!(a.opts.stop_timeout, Some(-1)),
            c => panic!("{c:?}"),
        }
        for args in [
            &["stop", "-t", "-1", "c"][..],
            &["restart", "--time", "-1", "c"],
        ] {
            match parse(args).unwrap().cmd {
                Cmd::Stop(a) | Cmd::Restart(a) => assert_eq!(a.time, Some(-1)),
                c => panic!("{c:?}"),
            }
        }
        match parse(&["container", "stop", "--timeout", "-5", "c"])
            .unwrap()
            .cmd
        {
            Cmd::Container(ContainerCmd::Stop(a)) => assert_eq!(a.time, Some(-5)),
            c => panic!("{c:?}"),
        }
        match parse(&["logs", "--tail", "-1", "c"]).unwrap().cmd {
            Cmd::Logs(a) => assert_eq!(a.tail.as_deref(), Some("-1")),
            c => panic!("{c:?}"),
        }
        match parse(&["logs", "-n", "-1", "c"]).unwrap().cmd {
            Cmd::Logs(a) => assert_eq!(a.tail.as_deref(), Some("-1")),
            c => panic!("{c:?}"),
        }
        // A flag without a value is still a flag: `-1` after it is the image, refused later.
        assert!(parse(&["run", "--rm", "-d", "img"]).is_ok());
    }
}
