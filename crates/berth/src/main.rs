//! `berth`: a daemonless container engine. This binary only maps flags to library calls.

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cmd::{build, compose, container, image, internal, network, registry, sif, Ctx};

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
    /// Show low-level information on containers or images.
    Inspect(container::InspectArgs),
    /// Wait for containers to stop and print their exit codes.
    Wait(container::WaitArgs),
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
    /// List a container's published ports.
    Port(network::PortArgs),

    // ---- projects ----
    /// Define and run multi-container applications (compose files).
    Compose(compose::ComposeArgs),

    // ---- Apptainer ----
    /// Apptainer's workflow: build, run and inspect SIF images.
    #[command(subcommand)]
    Sif(sif::SifCmd),

    // ---- internal ----
    #[command(name = "__monitor", hide = true)]
    Monitor(internal::MonitorArgs),
    #[command(name = "__dns", hide = true)]
    Dns(network::DnsArgs),
    #[command(name = "__oneshot", hide = true)]
    Oneshot(internal::OneshotArgs),
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let argv = sif::argv_for_alias(&argv).unwrap_or(argv);
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 125 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
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
        Cmd::Inspect(a) => container::inspect(&ctx, a),
        Cmd::Wait(a) => container::wait(&ctx, a),
        Cmd::Container(c) => container::container_cmd(&ctx, c),
        Cmd::Load(a) => image::load(&ctx, a),
        Cmd::Save(a) => image::save(&ctx, a),
        Cmd::Import(a) => image::import(&ctx, a),
        Cmd::Images(a) => image::images(&ctx, a),
        Cmd::Tag(a) => image::tag(&ctx, a),
        Cmd::Rmi(a) => image::rmi(&ctx, a),
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
        Cmd::Port(a) => network::port(&ctx, a),
        Cmd::Compose(a) => compose::compose(&ctx, a),
        Cmd::Sif(c) => sif::sif_cmd(&ctx, c),
        Cmd::Monitor(a) => internal::monitor(&ctx, a),
        Cmd::Dns(a) => network::dns(&ctx, a),
        Cmd::Oneshot(a) => internal::oneshot(&ctx, a),
    };
    match res {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("berth: {}", cmd::render_error(&e));
            ExitCode::from(cmd::exit_code_of(&e))
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
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
