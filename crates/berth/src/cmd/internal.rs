//! Hidden subcommands berth runs itself: the per-container monitor, the build-step helper.

use anyhow::Result;
use clap::Args;

use super::Ctx;

#[derive(Debug, Args)]
pub struct MonitorArgs {
    pub id: String,
    /// Set by berth-supervise when it hands back after the container's init exited.
    #[arg(long)]
    pub exited: Option<i32>,
    #[arg(long)]
    pub flags: Option<u32>,
    /// Restart bookkeeping passed through the supervisor: backoff ms, start time ms.
    pub extra: Vec<String>,
}

/// `berth __monitor ID`: runs until the container has stopped for good.
pub fn monitor(ctx: &Ctx, a: MonitorArgs) -> Result<i32> {
    let resume = a.exited.map(|code| berth_engine::monitor::Resume {
        code,
        flags: a.flags.unwrap_or(0),
        backoff_ms: a.extra.first().and_then(|v| v.parse().ok()).unwrap_or(100),
        started_ms: a.extra.get(1).and_then(|v| v.parse().ok()).unwrap_or(0),
    });
    Ok(berth_engine::monitor::run(&ctx.root, &a.id, resume))
}

#[derive(Debug, Args)]
pub struct OneshotArgs {
    pub id: String,
    pub dir: std::path::PathBuf,
    #[arg(long)]
    pub runtime: Option<String>,
}

/// `berth __oneshot ID DIR`: runs one build step's container (see berth_engine::oneshot).
pub fn oneshot(ctx: &Ctx, a: OneshotArgs) -> Result<i32> {
    Ok(berth_engine::oneshot::helper_main(
        &ctx.root,
        &a.id,
        &a.dir,
        a.runtime.as_deref(),
    ))
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    pub id: String,
}

/// `berth __healthcheck ID`: one probe, started by the container's supervisor. Exit status 0
/// when the container is healthy afterwards, 1 when not, 2 when no probe ran.
pub fn healthcheck(ctx: &Ctx, a: HealthcheckArgs) -> Result<i32> {
    let store = ctx.store()?;
    Ok(berth_engine::health::probe(store, &a.id)?)
}

#[derive(Debug, Args)]
pub struct CompressLogArgs {
    /// The container log whose rotated files (`PATH.N`) are to be gzipped.
    pub path: std::path::PathBuf,
}

/// `berth __compress-log PATH`: gzip rotated log files (started by the supervisor).
pub fn compress_log(a: CompressLogArgs) -> Result<i32> {
    berth_engine::logs::compress_rotated(&a.path);
    Ok(0)
}
