//! `system service`: the Docker Engine API on a socket (crate `berth-api`).

use anyhow::Result;
use clap::{Args, Subcommand};

use super::Ctx;

#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Exit after this many seconds without a connection (0: never).
    #[arg(short = 't', long = "time", default_value_t = 5)]
    pub time: u64,
    /// Where to listen: unix:///path (default /run/berth/docker.sock, or the socket systemd
    /// passes) or tcp://127.0.0.1:PORT.
    pub uri: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum SystemCmd {
    /// Serve the Docker Engine API (for the docker CLI, SDKs, compose) on a socket.
    Service(ServiceArgs),
}

pub fn system_cmd(ctx: &Ctx, c: SystemCmd) -> Result<i32> {
    match c {
        SystemCmd::Service(a) => service(ctx, a),
    }
}

fn service(ctx: &Ctx, a: ServiceArgs) -> Result<i32> {
    let exe = std::env::current_exe()?;
    berth_api::serve(berth_api::ServiceOptions {
        root: ctx.root.clone(),
        listen: a.uri,
        idle: (a.time > 0).then(|| std::time::Duration::from_secs(a.time)),
        exe,
    })?;
    Ok(0)
}
