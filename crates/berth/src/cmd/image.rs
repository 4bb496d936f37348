//! `load`, `save`, `import`, `images`, `tag`, `rmi`, `image …`.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};

use anyhow::{anyhow, bail, Context, Result};
use berth_image::archive::{self, ArchiveFormat};
use berth_image::import::{import_rootfs, ImportOptions};
use berth_image::{ImageStore, Reference};
use berth_store::{Digest, Store};
use clap::{Args, Subcommand};
use serde_json::Value;

use super::{human_size, print_inspect, Ctx};

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from this tar archive instead of standard input.
    #[arg(short, long)]
    pub input: Option<std::path::PathBuf>,
    /// Print only image ids.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    pub output: Option<std::path::PathBuf>,
    /// docker-archive (default) or oci-archive.
    #[arg(long, default_value = "docker-archive")]
    pub format: String,
    /// Images to save.
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Root filesystem tarball: a file, "-" for standard input, or an http(s) URL (downloaded
    /// as it is read, as `docker import URL`).
    pub file: String,
    /// Name for the new image.
    pub reference: Option<String>,
    /// Apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL).
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Commit message.
    #[arg(short, long)]
    pub message: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Show only image ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Show all images (including dangling ones).
    #[arg(short, long)]
    pub all: bool,
    /// Output format: table, json, or a template such as '{{.Repository}}:{{.Tag}}'.
    #[arg(long)]
    pub format: Option<String>,
    /// Show full ids.
    #[arg(long)]
    pub no_trunc: bool,
    /// Filters: dangling=true|false, label=KEY[=VALUE], before=IMAGE, since=IMAGE,
    /// reference=PATTERN.
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Only images of this repository[:tag].
    pub reference: Option<String>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    pub source: String,
    pub target: String,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Remove even if tagged several times or used by a stopped container.
    #[arg(short, long)]
    pub force: bool,
    /// Every image (Podman).
    #[arg(short, long)]
    pub all: bool,
    /// Ignore images that do not exist (Podman).
    #[arg(short, long)]
    pub ignore: bool,
    #[arg(required_unless_present = "all")]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UntagArgs {
    pub image: String,
    /// Tags to remove (all of the image's tags when none are given).
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ImageExistsArgs {
    pub name: String,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all images not used by a container, not just dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ImageInspectArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Go-template-like format (only `{{json .}}` style paths are supported) .
    #[arg(short, long)]
    pub format: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// List images.
    Ls(ImagesArgs),
    /// Show details of images.
    Inspect(ImageInspectArgs),
    /// Remove unused images.
    Prune(PruneArgs),
    /// Remove images.
    Rm(RmiArgs),
    /// Tag an image.
    Tag(TagArgs),
    /// Load images.
    Load(LoadArgs),
    /// Save images.
    Save(SaveArgs),
    /// Import a rootfs tarball.
    Import(ImportArgs),
    /// Build an image from a Dockerfile.
    Build(Box<super::build::BuildArgs>),
    /// Show the history of an image.
    History(super::build::HistoryArgs),
    /// Alias of ls.
    #[command(hide = true)]
    List(ImagesArgs),
    /// Remove tags from an image (all of them when none are named).
    Untag(UntagArgs),
    /// Exit 0 if the image exists, 1 if not.
    Exists(ImageExistsArgs),
}

/// Open the image store; clean up after crashed commands when nobody else is working.
fn open_images(store: &Store) -> Result<ImageStore<'_>> {
    let is = ImageStore::open(store)?;
    if let Ok(Some(_lock)) = store.try_lock_exclusive() {
        if let Err(e) = is.sweep() {
            tracing::warn!("cleanup of leftovers failed: {e}");
        }
    }
    Ok(is)
}

fn print_loaded(loaded: &[archive::LoadedImage], quiet: bool) {
    for l in loaded {
        if quiet {
            println!("{}", l.id);
        } else if l.tags.is_empty() {
            println!("Loaded image ID: {}", l.id);
        } else {
            for t in &l.tags {
                println!("Loaded image: {}", t.familiar());
            }
        }
    }
}

pub fn load(ctx: &Ctx, a: LoadArgs) -> Result<i32> {
    let store = ctx.store()?;
    let is = open_images(store)?;
    let _lock = store.lock_shared()?;
    let loaded = match &a.input {
        Some(p) if p.as_os_str() != "-" => archive::load_file(&is, p)?,
        _ => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                bail!("requested load from standard input, but it is a terminal; use -i FILE or redirect an archive into berth load");
            }
            archive::load_reader(&is, &mut stdin.lock())?
        }
    };
    print_loaded(&loaded, a.quiet);
    Ok(0)
}

pub fn save(ctx: &Ctx, a: SaveArgs) -> Result<i32> {
    let format = ArchiveFormat::parse(&a.format)?;
    let store = ctx.store()?;
    let is = ImageStore::open(store)?;
    let _lock = store.lock_shared()?;
    let items = archive::save_items(&is, &a.images)?;
    match &a.output {
        Some(path) if path.as_os_str() != "-" => {
            let file_name = path
                .file_name()
                .ok_or_else(|| anyhow!("--output {}: not a file name", path.display()))?;
            let tmp = path.with_file_name(format!(
                ".{}.berth-{}.tmp",
                file_name.to_string_lossy(),
                std::process::id()
            ));
            let res = (|| -> Result<()> {
                let f = std::fs::File::create(&tmp)
                    .with_context(|| format!("cannot create {}", tmp.display()))?;
                let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
                archive::save(&is, &items, format, &mut w)?;
                let f = w
                    .into_inner()
                    .map_err(|e| anyhow!("cannot write {}: {}", tmp.display(), e.error()))?;
                f.sync_all()
                    .with_context(|| format!("cannot write {}", tmp.display()))?;
                std::fs::rename(&tmp, path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                Ok(())
            })();
            if res.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            res?;
        }
        _ => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                bail!("refusing to write an image archive to a terminal; use -o FILE or redirect the output");
            }
            let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            archive::save(&is, &items, format, &mut w)?;
            w.flush()?;
        }
    }
    Ok(0)
}

pub fn import(ctx: &Ctx, a: ImportArgs) -> Result<i32> {
    let reference = a.reference.as_deref().map(Reference::parse).transpose()?;
    let store = ctx.store()?;
    let is = open_images(store)?;
    let _lock = store.lock_shared()?;
    let opts = ImportOptions {
        changes: a.change.clone(),
        message: a.message.clone(),
        source: a.file.clone(),
        ..Default::default()
    };
    let id = if berth_registry::download::is_url(&a.file) {
        let mut body =
            berth_registry::download::open_url(&a.file, berth_registry::download::MAX_DOWNLOAD)?;
        import_rootfs(&is, &mut body, reference.as_ref(), &opts)
            .with_context(|| format!("cannot import {}", a.file))?
    } else if a.file == "-" {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            bail!("requested import from standard input, but it is a terminal; give a file or redirect a tarball");
        }
        import_rootfs(&is, &mut stdin.lock(), reference.as_ref(), &opts)
            .context("cannot import standard input")?
    } else {
        let mut f = std::fs::File::open(&a.file)
            .with_context(|| format!("cannot open the rootfs tarball {}", a.file))?;
        import_rootfs(&is, &mut f, reference.as_ref(), &opts)
            .with_context(|| format!("cannot import {}", a.file))?
    };
    println!("{id}");
    Ok(0)
}

fn matches_filter(t: &Reference, f: &Reference) -> bool {
    t.name() == f.name() && f.tag().map(|ft| t.tag() == Some(ft)).unwrap_or(true)
}

pub fn images(ctx: &Ctx, a: ImagesArgs) -> Result<i32> {
    use berth_image::view::{image_row, ImageFilter, IMAGES_HEADERS, IMAGES_TABLE};
    let filter = a
        .reference
        .as_deref()
        .map(Reference::parse_bare)
        .transpose()?;
    let store = ctx.store()?;
    let is = open_images(store)?;
    let mut filters = ImageFilter::parse(&a.filter)?;
    for (k, v) in filters
        .references()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<Vec<_>>()
    {
        let t = is.resolve(&v)?.created;
        if k == "before" {
            filters.before = Some(t);
        } else {
            filters.since = Some(t);
        }
    }
    let mut rows: Vec<Value> = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    for img in is.list()? {
        if !filters.matches_image(&img) {
            continue;
        }
        let tags: Vec<&Reference> = img
            .tags
            .iter()
            .filter(|t| filter.as_ref().is_none_or(|f| matches_filter(t, f)))
            .filter(|t| filters.matches_tag(t))
            .collect();
        if tags.is_empty() {
            if filter.is_some() || filters.has_reference() {
                continue;
            }
            rows.push(image_row(&img, None, a.no_trunc));
        } else {
            for t in tags {
                rows.push(image_row(&img, Some(t), a.no_trunc));
            }
        }
        let id = if a.no_trunc {
            img.id.to_string()
        } else {
            img.id.short().to_string()
        };
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if a.quiet {
        for id in ids {
            println!("{id}");
        }
        return Ok(0);
    }
    super::print_rows(
        &rows,
        a.format.as_deref(),
        "imagesFormat",
        IMAGES_TABLE,
        IMAGES_HEADERS,
    )?;
    Ok(0)
}

pub fn tag(ctx: &Ctx, a: TagArgs) -> Result<i32> {
    let target = Reference::parse(&a.target)?;
    if target.digest().is_some() {
        bail!(
            "invalid reference format: {:?}: a tag cannot contain a digest; give name[:tag]",
            a.target
        );
    }
    let store = ctx.store()?;
    let is = ImageStore::open(store)?;
    let img = is.resolve(&a.source)?;
    is.tag(&img.id, &target)?;
    Ok(0)
}

pub fn untag(ctx: &Ctx, a: UntagArgs) -> Result<i32> {
    let store = ctx.store()?;
    let is = ImageStore::open(store)?;
    let names = a
        .names
        .iter()
        .map(|n| Reference::parse(n))
        .collect::<Result<Vec<_>, _>>()?;
    for l in is.untag_image(&a.image, &names)? {
        println!("{l}");
    }
    Ok(0)
}

fn in_use(store: &Store) -> Result<HashSet<Digest>> {
    berth_engine::image_ids_in_use(store)
        .map_err(|e| anyhow!("cannot list the images containers use: {e}"))
}

pub fn rmi(ctx: &Ctx, a: RmiArgs) -> Result<i32> {
    let store = ctx.store()?;
    let is = ImageStore::open(store)?;
    let _lock = store.lock_exclusive()?;
    let used = in_use(store)?;
    let mut failed: Option<anyhow::Error> = None;
    let names: Vec<String> = if a.all {
        is.list()?.iter().map(|i| i.id.to_string()).collect()
    } else {
        a.images.clone()
    };
    for name in &names {
        if a.ignore && matches!(is.resolve(name), Err(berth_image::ImageError::NotFound(_))) {
            continue;
        }
        match is.remove(name, a.force, &used) {
            Ok(lines) => {
                for l in lines {
                    println!("{l}");
                }
            }
            Err(e) => {
                if let Some(prev) = failed.take() {
                    eprintln!("berth: {}", super::render_error(&prev));
                }
                failed = Some(e.into());
            }
        }
    }
    if let Err(e) = is.sweep() {
        tracing::warn!("cleanup failed: {e}");
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(0),
    }
}

/// `image inspect` documents for names (for `berth inspect` too).
pub fn inspect_docs(store: &Store, names: &[String]) -> Result<Vec<Value>> {
    let is = ImageStore::open(store)?;
    names
        .iter()
        .map(|n| Ok(is.resolve(n)?.inspect_json()))
        .collect()
}

pub fn image_inspect(ctx: &Ctx, a: ImageInspectArgs) -> Result<i32> {
    let store = ctx.store()?;
    let docs = inspect_docs(store, &a.images)?;
    print_inspect(&docs, a.format.as_deref())?;
    Ok(0)
}

pub fn prune(ctx: &Ctx, a: PruneArgs) -> Result<i32> {
    if !a.force {
        let what = if a.all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        };
        eprint!("WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let store = ctx.store()?;
    let is = ImageStore::open(store)?;
    let _lock = store.lock_exclusive()?;
    let used = in_use(store)?;
    let (lines, reclaimed) = is.prune(a.all, &used)?;
    if !lines.is_empty() {
        println!("Deleted Images:");
        for l in lines {
            let l = l
                .replacen("Untagged: ", "untagged: ", 1)
                .replacen("Deleted: ", "deleted: ", 1);
            println!("{l}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(0)
}

pub fn image_cmd(ctx: &Ctx, c: ImageCmd) -> Result<i32> {
    match c {
        ImageCmd::Ls(a) => images(ctx, a),
        ImageCmd::Rm(a) => rmi(ctx, a),
        ImageCmd::Tag(a) => tag(ctx, a),
        ImageCmd::Load(a) => load(ctx, a),
        ImageCmd::Save(a) => save(ctx, a),
        ImageCmd::Import(a) => import(ctx, a),
        ImageCmd::Inspect(a) => image_inspect(ctx, a),
        ImageCmd::Prune(a) => prune(ctx, a),
        ImageCmd::Build(a) => super::build::build(ctx, *a),
        ImageCmd::History(a) => super::build::history(ctx, a),
        ImageCmd::List(a) => images(ctx, a),
        ImageCmd::Untag(a) => untag(ctx, a),
        ImageCmd::Exists(a) => {
            let is = ImageStore::open(ctx.store()?)?;
            match is.resolve(&a.name) {
                Ok(_) => Ok(0),
                Err(berth_image::ImageError::NotFound(_)) => Ok(1),
                Err(e) => Err(e.into()),
            }
        }
    }
}
