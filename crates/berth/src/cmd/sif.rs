//! `berth sif …` (and berth called as `run-singularity`, `singularity` or `apptainer`):
//! Apptainer's workflow over the `berth-sif` library.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use berth_sif::run::{Action, Bind, RunOptions};
use clap::{Args, Subcommand};

use super::{Ctx, ExitError};

/// Exit status when berth itself fails in Apptainer's commands (Apptainer uses 255).
const EXIT_SIF: u8 = 255;

#[derive(Debug, Subcommand)]
pub enum SifCmd {
    /// Build a SIF image (or a sandbox directory) from a definition file or an image
    /// (docker://REF, oci-archive:PATH, docker-archive:PATH, a .sif, a directory, or an image
    /// in berth's store).
    Build(BuildArgs),
    /// Run the image's runscript (what `./image.sif ARGS` does).
    Run(RunArgs),
    /// Run a command in the image.
    Exec(ExecArgs),
    /// Start a shell in the image.
    Shell(RunArgs),
    /// Run the image's %test section.
    Test(RunArgs),
    /// Show an image's labels, runscript, definition file, environment.
    Inspect(InspectArgs),
    /// Turn a SIF image into an OCI image in berth's store.
    Import(ImportArgs),
    /// Background services from an image's %startscript.
    #[command(subcommand)]
    Instance(InstanceCmd),
}

#[derive(Debug, Subcommand)]
pub enum InstanceCmd {
    /// Start an instance (runs %startscript in the background).
    Start(InstanceStartArgs),
    /// List running instances.
    List,
    /// Stop instances.
    Stop(InstanceStopArgs),
}

#[derive(Debug, Args)]
pub struct InstanceStartArgs {
    #[command(flatten)]
    pub flags: RunFlags,
    /// SIF file or sandbox directory.
    pub image: PathBuf,
    /// Instance name.
    pub name: String,
    /// Arguments for the startscript.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct InstanceStopArgs {
    /// Stop every instance.
    #[arg(short, long)]
    pub all: bool,
    /// Seconds to wait after SIGTERM before SIGKILL.
    #[arg(short, long, default_value_t = 10)]
    pub timeout: u64,
    /// Instance names.
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Overwrite the destination if it exists.
    #[arg(short = 'F', long)]
    pub force: bool,
    /// Build a directory tree (sandbox) instead of a SIF file.
    #[arg(short, long)]
    pub sandbox: bool,
    /// Give the owner read/write access to every file (and search on directories).
    #[arg(long)]
    pub fix_perms: bool,
    /// Do not run the %test section after the build.
    #[arg(short = 'T', long)]
    pub notest: bool,
    /// Do not use the build cache.
    #[arg(long)]
    pub disable_cache: bool,
    /// Build argument for {{ NAME }} in the definition (NAME=VALUE).
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    pub build_arg: Vec<String>,
    /// File of NAME=VALUE lines with build arguments.
    #[arg(long)]
    pub build_arg_file: Option<PathBuf>,
    /// Verify registry TLS certificates (default: yes, except for localhost registries).
    #[arg(long)]
    pub tls_verify: Option<bool>,
    /// Output: a .sif file (or a directory with --sandbox).
    pub dest: PathBuf,
    /// Definition file, or image source.
    pub source: String,
}

#[derive(Debug, Args)]
pub struct RunFlags {
    /// Bind a host path: SRC[:DST[:ro|rw]] (comma-separated list or repeated).
    #[arg(short = 'B', long = "bind", value_name = "SRC[:DST[:OPTS]]")]
    pub bind: Vec<String>,
    /// Private /tmp, /var/tmp and an empty home; the cwd is not shared.
    #[arg(short = 'c', long)]
    pub contain: bool,
    /// --contain plus --cleanenv.
    #[arg(short = 'C', long)]
    pub containall: bool,
    /// Do not pass the host's environment.
    #[arg(short = 'e', long)]
    pub cleanenv: bool,
    /// A writable root that is discarded at exit.
    #[arg(long)]
    pub writable_tmpfs: bool,
    /// Working directory in the container.
    #[arg(long)]
    pub pwd: Option<String>,
    /// Set a variable after the image's %environment (NAME=VALUE).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// NVIDIA GPU support (refused when unavailable).
    #[arg(long)]
    pub nv: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub flags: RunFlags,
    /// SIF file or sandbox directory.
    pub image: PathBuf,
    /// Arguments for the runscript.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub flags: RunFlags,
    /// SIF file or sandbox directory.
    pub image: PathBuf,
    /// Command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Labels.
    #[arg(short, long)]
    pub labels: bool,
    /// The runscript.
    #[arg(short, long)]
    pub runscript: bool,
    /// The definition file.
    #[arg(short, long)]
    pub deffile: bool,
    /// The environment scripts.
    #[arg(short, long)]
    pub environment: bool,
    /// The %test script.
    #[arg(short, long)]
    pub test: bool,
    /// The %help text.
    #[arg(short = 'H', long)]
    pub helpfile: bool,
    /// Everything, as JSON.
    #[arg(short, long)]
    pub json: bool,
    /// SIF file or sandbox directory.
    pub image: PathBuf,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// SIF file or sandbox directory.
    pub image: PathBuf,
    /// Name for the OCI image (NAME[:TAG]).
    pub reference: String,
}

fn sif_err(e: impl Into<anyhow::Error>) -> anyhow::Error {
    let e = e.into();
    anyhow::Error::new(ExitError {
        code: EXIT_SIF,
        msg: super::render_error(&e),
    })
}

pub fn sif_cmd(ctx: &Ctx, cmd: SifCmd) -> Result<i32> {
    match cmd {
        SifCmd::Build(a) => build(ctx, a),
        SifCmd::Run(a) => run_action(Action::Run, a.flags, a.image, a.args),
        SifCmd::Exec(a) => run_action(Action::Exec, a.flags, a.image, a.command),
        SifCmd::Shell(a) => run_action(Action::Shell, a.flags, a.image, a.args),
        SifCmd::Test(a) => run_action(Action::Test, a.flags, a.image, a.args),
        SifCmd::Inspect(a) => inspect(a),
        SifCmd::Import(a) => import(ctx, a),
        SifCmd::Instance(c) => instance(c),
    }
}

fn instance(c: InstanceCmd) -> Result<i32> {
    use berth_sif::instance;
    match c {
        InstanceCmd::Start(a) => {
            let o = run_options(Action::Start, a.flags, a.args)?;
            let i = instance::start(&a.image, &a.name, &o).map_err(sif_err)?;
            eprintln!(
                "INFO:    instance started successfully ({} pid {})",
                i.name, i.pid
            );
            Ok(0)
        }
        InstanceCmd::List => {
            let rows: Vec<Vec<String>> = instance::list()
                .map_err(sif_err)?
                .into_iter()
                .map(|i| vec![i.name, i.pid.to_string(), i.image.display().to_string()])
                .collect();
            super::print_table(&["INSTANCE NAME", "PID", "IMAGE"], &rows);
            Ok(0)
        }
        InstanceCmd::Stop(a) => {
            let names: Vec<String> = if a.all {
                instance::list()
                    .map_err(sif_err)?
                    .into_iter()
                    .map(|i| i.name)
                    .collect()
            } else {
                a.names
            };
            if names.is_empty() {
                bail!("instance stop: name an instance or use --all");
            }
            for n in names {
                instance::stop(&n, a.timeout).map_err(sif_err)?;
                eprintln!("INFO:    Stopping {n} instance");
            }
            Ok(0)
        }
    }
}

fn build(ctx: &Ctx, a: BuildArgs) -> Result<i32> {
    let mut args = berth_sif::BuildArgs::new();
    if let Some(f) = &a.build_arg_file {
        let text = std::fs::read_to_string(f).with_context(|| format!("{}", f.display()))?;
        berth_sif::deffile::parse_build_arg_file(f, &text, &mut args).map_err(sif_err)?;
    }
    for kv in &a.build_arg {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("--build-arg {kv:?}: expected NAME=VALUE");
        };
        args.insert(k.to_string(), v.to_string());
    }
    let def = berth_sif::build::load_source(&a.source, &args).map_err(sif_err)?;
    let store = ctx.store()?;
    let opts = berth_sif::build::BuildOptions {
        force: a.force,
        sandbox: a.sandbox,
        fix_perms: a.fix_perms,
        build_args: args,
        no_cache: a.disable_cache,
        tls_verify: a.tls_verify,
    };
    let report = berth_sif::build::build(store, &def, &a.dest, &opts).map_err(sif_err)?;
    if report.has_test && !a.notest {
        eprintln!("INFO:    Running %test (--notest skips it)");
        let st = std::process::Command::new(berth_exe::path()?)
            .args(["sif", "test"])
            .arg(&a.dest)
            .status()
            .context("running %test")?;
        if !st.success() {
            return Err(sif_err(anyhow::anyhow!(
                "%test failed ({st}); the image was written to {}",
                a.dest.display()
            )));
        }
    }
    Ok(0)
}

fn run_options(action: Action, f: RunFlags, args: Vec<OsString>) -> Result<RunOptions> {
    let mut o = RunOptions::new(action, args);
    for b in &f.bind {
        o.binds.extend(Bind::parse_list(b).map_err(sif_err)?);
    }
    for kv in &f.env {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(sif_err(anyhow::anyhow!(
                "--env {kv:?}: expected NAME=VALUE"
            )));
        };
        o.env.push((k.to_string(), v.to_string()));
    }
    o.contain = f.contain;
    o.containall = f.containall;
    o.cleanenv = f.cleanenv;
    o.writable_tmpfs = f.writable_tmpfs;
    o.pwd = f.pwd;
    o.nv = f.nv;
    Ok(o)
}

fn run_action(action: Action, f: RunFlags, image: PathBuf, args: Vec<OsString>) -> Result<i32> {
    let o = run_options(action, f, args)?;
    match berth_sif::run::exec_container(&image, &o) {
        Ok(never) => match never {},
        Err(e) => Err(sif_err(e)),
    }
}

fn inspect(a: InspectArgs) -> Result<i32> {
    let i = berth_sif::inspect::inspect(&a.image).map_err(sif_err)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&i)?);
        return Ok(0);
    }
    let any = a.labels || a.runscript || a.deffile || a.environment || a.test || a.helpfile;
    if a.labels || !any {
        for (k, v) in &i.labels {
            let v = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            println!("{k}: {v}");
        }
    }
    let show = |t: &Option<String>, what: &str| match t {
        Some(t) => print!("{t}{}", if t.ends_with('\n') { "" } else { "\n" }),
        None => eprintln!("this image has no {what}"),
    };
    if a.runscript {
        show(&i.runscript, "runscript");
    }
    if a.deffile {
        show(&i.deffile, "definition file");
    }
    if a.environment {
        for (n, t) in &i.environment {
            println!("=== /.singularity.d/env/{n} ===");
            print!("{t}{}", if t.ends_with('\n') { "" } else { "\n" });
        }
    }
    if a.test {
        show(&i.test, "%test section");
    }
    if a.helpfile {
        show(&i.help, "%help section");
    }
    Ok(0)
}

fn import(ctx: &Ctx, a: ImportArgs) -> Result<i32> {
    let r = berth_image::Reference::parse(&a.reference)
        .with_context(|| format!("invalid reference {:?}", a.reference))?;
    let id = berth_sif::import(ctx.store()?, &a.image, &r).map_err(sif_err)?;
    println!("{}", id.as_str());
    Ok(0)
}

/// argv rewriting when berth is called as `run-singularity` (the SIF launch line),
/// `singularity` or `apptainer`; `None` when called as berth.
pub fn argv_for_alias(argv: &[OsString]) -> Option<Vec<OsString>> {
    let name = std::path::Path::new(argv.first()?).file_name()?.to_str()?;
    let mut out: Vec<OsString> = vec!["berth".into(), "sif".into()];
    match name {
        "run-singularity" => {
            // `./x.sif ARGS` → `run-singularity ./x.sif ARGS`: every argument is the runscript's.
            out.push("run".into());
            if argv.len() > 1 {
                out.push(argv[1].clone());
                out.push("--".into());
                out.extend(argv[2..].iter().cloned());
            }
        }
        "singularity" | "apptainer" => {
            let rest = &argv[1..];
            if rest
                .first()
                .is_some_and(|a| a == "--version" || a == "version")
            {
                println!("{name} version berth-{}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            out.extend(rest.iter().cloned());
        }
        _ => return None,
    }
    Some(out)
}
