//! `network …` and `port`.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use super::Ctx;

#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// Create a network.
    Create(NetworkCreateArgs),
    /// List networks.
    Ls(NetworkLsArgs),
    /// Show details of networks.
    Inspect(NetworkNamesArgs),
    /// Remove networks.
    Rm(NetworkNamesArgs),
    /// Remove unused networks.
    Prune(NetworkPruneArgs),
    /// Connect a container to a network.
    Connect(NetworkConnectArgs),
    /// Disconnect a container from a network.
    Disconnect(NetworkConnectArgs),
}

#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    pub name: String,
    #[arg(long)]
    pub subnet: Option<String>,
    #[arg(long)]
    pub gateway: Option<String>,
    /// No external connectivity.
    #[arg(long)]
    pub internal: bool,
    #[arg(short, long, default_value = "bridge")]
    pub driver: String,
}

#[derive(Debug, Args)]
pub struct NetworkLsArgs {
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct NetworkNamesArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NetworkPruneArgs {
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct NetworkConnectArgs {
    pub network: String,
    pub container: String,
    #[arg(long)]
    pub alias: Vec<String>,
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    pub container: String,
    /// PORT[/PROTO] to show.
    pub port: Option<String>,
}

pub fn network_cmd(_ctx: &Ctx, _c: NetworkCmd) -> Result<i32> {
    bail!("network commands are not implemented yet")
}
pub fn port(_ctx: &Ctx, _a: PortArgs) -> Result<i32> {
    bail!("port is not implemented yet")
}

/// Arguments of the hidden `__dns` subcommand (the embedded DNS server).
#[derive(Debug, Args)]
pub struct DnsArgs {
    pub network: String,
}

pub fn dns(_ctx: &Ctx, _a: DnsArgs) -> Result<i32> {
    bail!("dns is not implemented yet")
}
