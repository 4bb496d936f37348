//! `volume create|ls|inspect|rm|prune`.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use berth_volume::{CreateVolume, PruneFilter, Volume, VolumeStore};
use clap::{Args, Subcommand};

use super::{human_size, print_inspect, Ctx};

#[derive(Debug, Subcommand)]
pub enum VolumeCmd {
    /// Create a volume.
    Create(VolumeCreateArgs),
    /// List volumes.
    #[command(alias = "list")]
    Ls(VolumeLsArgs),
    /// Show details of volumes.
    Inspect(VolumeInspectArgs),
    /// Remove volumes.
    #[command(alias = "remove")]
    Rm(VolumeRmArgs),
    /// Remove unused volumes (anonymous ones; all unused with --all).
    Prune(VolumePruneArgs),
    /// Exit 0 if the volume exists, 1 if not.
    Exists(VolumeExistsArgs),
}

#[derive(Debug, Args)]
pub struct VolumeExistsArgs {
    pub name: String,
}

#[derive(Debug, Args)]
pub struct VolumeCreateArgs {
    /// Name (a random one if omitted).
    pub name: Option<String>,
    /// Volume driver (only `local`).
    #[arg(short, long, default_value = "local")]
    pub driver: String,
    /// Driver options KEY=VALUE: type=tmpfs|none|nfs|…, device=…, o=….
    #[arg(short, long = "opt")]
    pub opt: Vec<String>,
    /// Labels KEY=VALUE.
    #[arg(long)]
    pub label: Vec<String>,
}

#[derive(Debug, Args)]
pub struct VolumeLsArgs {
    /// Only names.
    #[arg(short, long)]
    pub quiet: bool,
    /// Filters: dangling=true|false, name=TEXT, label=KEY[=VALUE], driver=local.
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// table (default), json, or a `{{.Name}}` template.
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Args)]
pub struct VolumeInspectArgs {
    /// Output format (`json`, or a `{{.Field}}` template).
    #[arg(short, long)]
    pub format: Option<String>,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct VolumeRmArgs {
    /// Do not fail on volumes that do not exist.
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct VolumePruneArgs {
    /// Remove all unused volumes, not only anonymous ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask for confirmation (berth never asks).
    #[arg(short, long)]
    pub force: bool,
    /// Filters: label=KEY[=VALUE], label!=KEY[=VALUE].
    #[arg(long)]
    pub filter: Vec<String>,
}

fn key_values(flag: &str, items: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for i in items {
        let (k, v) = i.split_once('=').unwrap_or((i.as_str(), ""));
        if k.is_empty() {
            bail!("invalid {flag} {i:?}: use KEY=VALUE");
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// Docker's `volume inspect` document.
pub fn doc(v: &Volume) -> serde_json::Value {
    v.inspect_json()
}

pub fn volume_cmd(ctx: &Ctx, c: VolumeCmd) -> Result<i32> {
    let store = ctx.store()?;
    match c {
        VolumeCmd::Exists(a) => {
            let vs = VolumeStore::open(store)?;
            Ok(if vs.get(&a.name).is_ok() { 0 } else { 1 })
        }
        VolumeCmd::Create(a) => {
            let vs = VolumeStore::open(store)?;
            let (v, _) = vs.create(&CreateVolume {
                name: a.name,
                driver: Some(a.driver),
                options: key_values("--opt", &a.opt)?,
                labels: key_values("--label", &a.label)?,
            })?;
            println!("{}", v.name);
            Ok(0)
        }
        VolumeCmd::Ls(a) => ls(store, a),
        VolumeCmd::Inspect(a) => {
            let vs = VolumeStore::open(store)?;
            let mut docs = Vec::new();
            let mut failed = false;
            for n in &a.names {
                match vs.get(n) {
                    Ok(v) => docs.push(doc(&v)),
                    Err(e) => {
                        eprintln!("berth: {e}");
                        failed = true;
                    }
                }
            }
            print_inspect(&docs, a.format.as_deref())?;
            Ok(if failed { 1 } else { 0 })
        }
        VolumeCmd::Rm(a) => {
            let mut failed = false;
            for n in &a.names {
                match berth_engine::volumes::remove_volume(store, n, a.force) {
                    Ok(()) => println!("{n}"),
                    Err(e) => {
                        eprintln!("berth: {e}");
                        failed = true;
                    }
                }
            }
            Ok(if failed { 1 } else { 0 })
        }
        VolumeCmd::Prune(a) => {
            let mut filter = PruneFilter {
                all: a.all,
                ..Default::default()
            };
            for f in &a.filter {
                let cond = |s: &str| match s.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (s.to_string(), None),
                };
                if let Some(l) = f.strip_prefix("label!=") {
                    filter.not_labels.push(cond(l));
                } else if let Some(l) = f.strip_prefix("label=") {
                    filter.labels.push(cond(l));
                } else if f == "all=true" || f == "all=1" {
                    filter.all = true;
                } else {
                    bail!("invalid --filter {f:?}: use label=KEY[=VALUE] or label!=KEY[=VALUE]");
                }
            }
            let pruned = berth_engine::volumes::prune_volumes(store, &filter)?;
            let total: u64 = pruned.iter().map(|p| p.bytes).sum();
            if !pruned.is_empty() {
                println!("Deleted Volumes:");
                for p in &pruned {
                    println!("{}", p.name);
                }
                println!();
            }
            println!("Total reclaimed space: {}", human_size(total));
            Ok(0)
        }
    }
}

fn ls(store: &berth_store::Store, a: VolumeLsArgs) -> Result<i32> {
    let vs = VolumeStore::open(store)?;
    let used = vs.in_use()?;
    let mut vols = vs.list()?;
    for f in &a.filter {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("invalid --filter {f:?}: use KEY=VALUE"))?;
        match k {
            "dangling" => {
                let want = match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => bail!("invalid --filter {f:?}: dangling takes true or false"),
                };
                vols.retain(|x| used.contains(&x.name) != want);
            }
            "name" => vols.retain(|x| x.name.contains(v)),
            "driver" => vols.retain(|x| x.driver == v),
            "label" => {
                let (lk, lv) = match v.split_once('=') {
                    Some((a, b)) => (a, Some(b)),
                    None => (v, None),
                };
                vols.retain(|x| match (x.labels.get(lk), lv) {
                    (Some(_), None) => true,
                    (Some(have), Some(want)) => have == want,
                    (None, _) => false,
                });
            }
            _ => bail!("invalid --filter {f:?}: use dangling=, name=, label= or driver="),
        }
    }
    if a.quiet {
        for v in &vols {
            println!("{}", v.name);
        }
        return Ok(0);
    }
    let links = vs.links()?;
    let rows: Vec<serde_json::Value> = vols
        .iter()
        .map(|v| berth_volume::volume_row(v, links.get(&v.name).copied().unwrap_or(0)))
        .collect();
    super::print_rows(
        &rows,
        a.format.as_deref(),
        "volumesFormat",
        berth_volume::VOLUMES_TABLE,
        berth_volume::VOLUMES_HEADERS,
    )?;
    Ok(0)
}
