//! `network …` and `port`.

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};

use super::Ctx;

#[derive(Debug, Subcommand)]
pub enum NetworkCmd {
    /// Create a network.
    Create(NetworkCreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(NetworkLsArgs),
    /// Show details of networks.
    Inspect(NetworkInspectArgs),
    /// Remove networks.
    #[command(alias = "remove")]
    Rm(NetworkNamesArgs),
    /// Remove unused networks.
    Prune(NetworkPruneArgs),
    /// Connect a container to a network.
    Connect(NetworkConnectArgs),
    /// Disconnect a container from a network.
    Disconnect(NetworkConnectArgs),
    /// Remove all host networking state of this store (bridges, rules, namespaces).
    #[command(hide = true)]
    Reset,
    /// Exit 0 if the network exists, 1 if not.
    Exists(NetworkExistsArgs),
}

#[derive(Debug, Args)]
pub struct NetworkExistsArgs {
    pub name: String,
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
    /// table (default), table TEMPLATE, json, or a Go template such as '{{.Name}}'.
    #[arg(long)]
    pub format: Option<String>,
    /// Show full network ids.
    #[arg(long)]
    pub no_trunc: bool,
    /// Filters: name=TEXT, id=PREFIX, driver=NAME, type=builtin|custom, label=KEY[=VALUE],
    /// scope=local, dangling=true|false.
    #[arg(short, long)]
    pub filter: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NetworkNamesArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NetworkInspectArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Output format (`json`, or a `{{.Field}}` template).
    #[arg(short, long)]
    pub format: Option<String>,
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

pub fn network_cmd(ctx: &Ctx, c: NetworkCmd) -> Result<i32> {
    let store = ctx.store()?;
    match c {
        NetworkCmd::Create(a) => {
            let n = berth_net::create_network(
                store,
                &berth_net::CreateOptions {
                    name: a.name,
                    subnet: a.subnet,
                    gateway: a.gateway,
                    internal: a.internal,
                    driver: a.driver,
                    labels: Default::default(),
                },
            )?;
            println!("{}", n.id);
        }
        NetworkCmd::Ls(a) => {
            let filters = berth_net::parse_filter_words(&a.filter)?;
            let nets = berth_net::filter_shown(store, &filters)?;
            if a.quiet {
                for n in &nets {
                    let id = n.id();
                    println!(
                        "{}",
                        if a.no_trunc {
                            id
                        } else {
                            &id[..12.min(id.len())]
                        }
                    );
                }
            } else {
                let rows: Vec<serde_json::Value> = nets
                    .iter()
                    .map(|n| berth_net::network_row(n, a.no_trunc))
                    .collect();
                super::print_rows(
                    &rows,
                    a.format.as_deref(),
                    "networksFormat",
                    berth_net::NETWORKS_TABLE,
                    berth_net::NETWORKS_HEADERS,
                )?;
            }
        }
        NetworkCmd::Inspect(a) => {
            let mut docs = Vec::new();
            let mut missing = None;
            for name in &a.names {
                match berth_net::inspect_network(store, name) {
                    Ok(d) => docs.push(d),
                    Err(berth_net::NetError::NotFound(n)) => missing = Some(n),
                    Err(e) => return Err(e.into()),
                }
            }
            super::print_inspect(&docs, a.format.as_deref())?;
            if let Some(n) = missing {
                bail!("no such network: {n}");
            }
        }
        NetworkCmd::Rm(a) => {
            let mut failed = None;
            for name in &a.names {
                match berth_net::remove_network(store, name) {
                    Ok(_) => println!("{name}"),
                    Err(e) => {
                        eprintln!("berth: {e}");
                        failed = Some(e);
                    }
                }
            }
            if failed.is_some() {
                return Ok(1);
            }
        }
        NetworkCmd::Prune(_) => {
            let removed = berth_net::prune_networks(store)?;
            if !removed.is_empty() {
                println!("Deleted Networks:");
                for n in removed {
                    println!("{n}");
                }
            }
        }
        NetworkCmd::Connect(a) => {
            let c = berth_engine::state::lookup(store, &a.container).map_err(|e| anyhow!("{e}"))?;
            berth_engine::ops::connect_network(
                store,
                &c,
                &berth_net::Attachment {
                    network: a.network,
                    aliases: a.alias,
                },
            )
            .map_err(|e| anyhow!("{e}"))?;
        }
        NetworkCmd::Disconnect(a) => {
            let c = berth_engine::state::lookup(store, &a.container).map_err(|e| anyhow!("{e}"))?;
            berth_engine::ops::disconnect_network(store, &c, &a.network, a.force)
                .map_err(|e| anyhow!("{e}"))?;
        }
        NetworkCmd::Reset => berth_net::reset(store)?,
        NetworkCmd::Exists(a) => {
            return Ok(match berth_net::find_shown(store, &a.name) {
                Ok(_) => 0,
                Err(berth_net::NetError::NotFound(_)) => 1,
                Err(e) => return Err(e.into()),
            })
        }
    }
    Ok(0)
}

/// Look a container up with the engine's resolver (full id, name, unique id prefix).
fn find_container(store: &berth_store::Store, what: &str) -> Result<(String, String)> {
    let c = berth_engine::state::lookup(store, what).map_err(|e| anyhow!("{e}"))?;
    Ok((c.id, c.name))
}

pub fn port(ctx: &Ctx, a: PortArgs) -> Result<i32> {
    let store = ctx.store()?;
    let (id, name) = find_container(store, &a.container)?;
    let ports = berth_net::ports_of(store, &id)?;
    let filter = match a.port.as_deref() {
        None => None,
        Some(p) => {
            let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            let num: u16 = num
                .parse()
                .with_context(|| format!("invalid port {p:?}: expected PORT[/PROTO]"))?;
            Some((num, proto.to_ascii_lowercase()))
        }
    };
    let mut shown = 0;
    for p in &ports {
        if let Some((n, proto)) = &filter {
            if p.container_port != *n || &p.protocol != proto {
                continue;
            }
            println!("{}:{}", p.host_ip, p.host_port);
        } else {
            println!(
                "{}/{} -> {}:{}",
                p.container_port, p.protocol, p.host_ip, p.host_port
            );
        }
        shown += 1;
    }
    if let (Some((n, proto)), 0) = (&filter, shown) {
        bail!("no public port {n}/{proto} published for container {name}");
    }
    Ok(0)
}

/// Arguments of the hidden `__dns` subcommand (the embedded DNS server).
#[derive(Debug, Args)]
pub struct DnsArgs {
    pub network: String,
}

pub fn dns(ctx: &Ctx, a: DnsArgs) -> Result<i32> {
    berth_net::dns::serve(&ctx.root, &a.network)?;
    Ok(0)
}
