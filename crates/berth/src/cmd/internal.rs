//! Hidden subcommands berth runs itself: the per-container monitor.

use anyhow::{bail, Result};
use clap::Args;

use super::Ctx;

#[derive(Debug, Args)]
pub struct MonitorArgs {
    pub id: String,
}

pub fn monitor(_ctx: &Ctx, _a: MonitorArgs) -> Result<i32> {
    bail!("monitor is not implemented yet")
}
