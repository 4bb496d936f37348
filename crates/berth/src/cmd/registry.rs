//! `login`, `logout`, `pull`, `push`.

use anyhow::{bail, Result};
use clap::Args;

use super::Ctx;

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Registry host[:port] (default docker.io).
    pub server: Option<String>,
    #[arg(short, long)]
    pub username: Option<String>,
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// Skip TLS verification for this registry.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    pub server: Option<String>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    pub reference: String,
    /// Platform os/arch[/variant] (default: this host's).
    #[arg(long)]
    pub platform: Option<String>,
    /// Print only the image digest.
    #[arg(short, long)]
    pub quiet: bool,
    /// Verify TLS certificates (false allows plain HTTP too).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Local image.
    pub image: String,
    /// Destination reference (default: the image name).
    pub destination: Option<String>,
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub tls_verify: bool,
}

pub fn login(_ctx: &Ctx, _a: LoginArgs) -> Result<i32> {
    bail!("login is not implemented yet")
}
pub fn logout(_ctx: &Ctx, _a: LogoutArgs) -> Result<i32> {
    bail!("logout is not implemented yet")
}
pub fn pull(_ctx: &Ctx, _a: PullArgs) -> Result<i32> {
    bail!("pull is not implemented yet")
}
pub fn push(_ctx: &Ctx, _a: PushArgs) -> Result<i32> {
    bail!("push is not implemented yet")
}
