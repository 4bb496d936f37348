//! `login`, `logout`, `pull`, `push`.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use berth_image::Reference;
use berth_registry::{
    Credentials, LoginOptions, OutputStream, Platform, ProgressMode, PullOptions, PushOptions,
};
use clap::Args;

use super::Ctx;

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry host[:port] (default docker.io).
    pub server: Option<String>,
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin: command lines are visible to other users).
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Verify TLS certificates (false allows unverified HTTPS and plain HTTP).
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    pub tls_verify: Option<bool>,
    /// Credentials file (default: $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json, ~/.docker/config.json).
    #[arg(long, value_name = "PATH")]
    pub authfile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    pub server: Option<String>,
    /// Credentials file (default: $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json, ~/.docker/config.json).
    #[arg(long, value_name = "PATH")]
    pub authfile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    pub reference: String,
    /// Platform os/arch[/variant] (default: this host's).
    #[arg(long)]
    pub platform: Option<String>,
    /// Print only the image id.
    #[arg(short, long)]
    pub quiet: bool,
    /// Verify TLS certificates (false allows unverified HTTPS and plain HTTP).
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    pub tls_verify: Option<bool>,
    /// Credentials file.
    #[arg(long, value_name = "PATH")]
    pub authfile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Local image.
    pub image: String,
    /// Destination reference (default: the image name).
    pub destination: Option<String>,
    /// Print only the manifest digest.
    #[arg(short, long)]
    pub quiet: bool,
    /// Verify TLS certificates (false allows unverified HTTPS and plain HTTP).
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    pub tls_verify: Option<bool>,
    /// Credentials file.
    #[arg(long, value_name = "PATH")]
    pub authfile: Option<PathBuf>,
    /// Upload blobs larger than this many bytes in chunks of this size.
    #[arg(long, hide = true, env = "BERTH_PUSH_CHUNK_SIZE", default_value_t = 64 << 20)]
    pub chunk_size: u64,
}

fn prompt_line(prompt: &str) -> Result<String> {
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn prompt_password(prompt: &str) -> Result<String> {
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    let stdin = std::io::stdin();
    let old = tcgetattr(&stdin).context("cannot read the terminal settings")?;
    let mut quiet = old.clone();
    quiet.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet).context("cannot turn off echo")?;
    let r = prompt_line(prompt);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &old);
    eprintln!();
    r
}

pub fn login(_ctx: &Ctx, a: LoginArgs) -> Result<i32> {
    let server = a.server.as_deref().unwrap_or("docker.io");
    let registry = berth_registry::auth::normalize_registry(server);
    let tty = std::io::stdin().is_terminal();
    if a.password_stdin && a.password.is_some() {
        bail!("--password and --password-stdin are mutually exclusive; use one");
    }
    let username = match a.username {
        Some(u) => u,
        None if tty && !a.password_stdin => prompt_line("Username: ")?,
        None => bail!("a username is required with a non-interactive login; use --username"),
    };
    if username.is_empty() {
        bail!("the username is empty; give one with --username");
    }
    let password = if a.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read the password from standard input")?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = a.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p
    } else if tty {
        prompt_password("Password: ")?
    } else {
        bail!("no password given; use --password-stdin")
    };
    if password.is_empty() {
        bail!("the password is empty; give one with --password-stdin");
    }
    let creds = Credentials { username, password };
    let opts = LoginOptions {
        tls_verify: a.tls_verify,
        auth_file: a.authfile,
    };
    berth_registry::login(&registry, &creds, &opts)
        .map_err(|e| anyhow!("login to {registry} failed: {e}"))?;
    println!("Login Succeeded");
    Ok(0)
}

pub fn logout(_ctx: &Ctx, a: LogoutArgs) -> Result<i32> {
    let server = a.server.as_deref().unwrap_or("docker.io");
    let registry = berth_registry::auth::normalize_registry(server);
    let opts = LoginOptions {
        tls_verify: None,
        auth_file: a.authfile,
    };
    if berth_registry::logout(&registry, &opts)? {
        println!("Removing login credentials for {registry}");
    } else {
        println!("Not logged in to {registry}");
    }
    Ok(0)
}

pub fn pull(ctx: &Ctx, a: PullArgs) -> Result<i32> {
    let reference = Reference::parse(&a.reference)?;
    let platform = a.platform.as_deref().map(Platform::parse).transpose()?;
    let opts = PullOptions {
        platform,
        tls_verify: a.tls_verify,
        auth_file: a.authfile,
        progress: progress_mode(a.quiet),
        output: OutputStream::Stdout,
        ..PullOptions::default()
    };
    let store = ctx.store()?;
    let id = berth_registry::pull(store, &reference, &opts)?;
    if a.quiet {
        println!("{id}");
    }
    Ok(0)
}

pub fn push(ctx: &Ctx, a: PushArgs) -> Result<i32> {
    let dest = match &a.destination {
        Some(d) => Reference::parse(d)?,
        None => Reference::parse(&a.image).map_err(|_| {
            anyhow!(
                "{:?} is not a repository name; give a destination such as registry.example.com/team/app:tag",
                a.image
            )
        })?,
    };
    let opts = PushOptions {
        tls_verify: a.tls_verify,
        auth_file: a.authfile,
        progress: progress_mode(a.quiet),
        output: OutputStream::Stdout,
        chunk_size: a.chunk_size,
        ..PushOptions::default()
    };
    let store = ctx.store()?;
    let digest = berth_registry::push(store, &a.image, &dest, &opts)?;
    if a.quiet {
        println!("{digest}");
    }
    Ok(0)
}

fn progress_mode(quiet: bool) -> ProgressMode {
    if quiet {
        ProgressMode::Quiet
    } else {
        ProgressMode::Auto
    }
}
