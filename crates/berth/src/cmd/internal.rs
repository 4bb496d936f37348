//! Hidden subcommands berth runs itself: the per-container monitor and the DNS server.

use anyhow::{bail, Result};
use clap::Args;

use super::Ctx;

#[derive(Debug, Args)]
pub struct MonitorArgs {
    pub id: String,
}

#[derive(Debug, Args)]
pub struct DnsArgs {
    pub network: String,
}

pub fn monitor(_ctx: &Ctx, _a: MonitorArgs) -> Result<i32> {
    bail!("monitor is not implemented yet")
}

pub fn dns(_ctx: &Ctx, _a: DnsArgs) -> Result<i32> {
    bail!("dns is not implemented yet")
}
