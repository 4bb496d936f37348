//! Hidden subcommands berth runs itself: the per-container monitor.

use anyhow::Result;
use clap::Args;

use super::Ctx;

#[derive(Debug, Args)]
pub struct MonitorArgs {
    pub id: String,
}

/// `berth __monitor ID`: runs until the container has stopped for good.
pub fn monitor(ctx: &Ctx, a: MonitorArgs) -> Result<i32> {
    Ok(berth_engine::monitor::run(&ctx.root, &a.id))
}
