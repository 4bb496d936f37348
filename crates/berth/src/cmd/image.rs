//! `load`, `save`, `import`, `images`, `tag`, `rmi`, `image …`.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};

use super::Ctx;

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
    /// Root filesystem tarball ("-" for standard input).
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
    /// Output format: table or json.
    #[arg(long)]
    pub format: Option<String>,
    /// Show full ids.
    #[arg(long)]
    pub no_trunc: bool,
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
    #[arg(required = true)]
    pub images: Vec<String>,
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
}

pub fn load(_ctx: &Ctx, _a: LoadArgs) -> Result<i32> {
    bail!("load is not implemented yet")
}
pub fn save(_ctx: &Ctx, _a: SaveArgs) -> Result<i32> {
    bail!("save is not implemented yet")
}
pub fn import(_ctx: &Ctx, _a: ImportArgs) -> Result<i32> {
    bail!("import is not implemented yet")
}
pub fn images(_ctx: &Ctx, _a: ImagesArgs) -> Result<i32> {
    bail!("images is not implemented yet")
}
pub fn tag(_ctx: &Ctx, _a: TagArgs) -> Result<i32> {
    bail!("tag is not implemented yet")
}
pub fn rmi(_ctx: &Ctx, _a: RmiArgs) -> Result<i32> {
    bail!("rmi is not implemented yet")
}
pub fn image_cmd(ctx: &Ctx, c: ImageCmd) -> Result<i32> {
    match c {
        ImageCmd::Ls(a) => images(ctx, a),
        ImageCmd::Rm(a) => rmi(ctx, a),
        ImageCmd::Tag(a) => tag(ctx, a),
        ImageCmd::Load(a) => load(ctx, a),
        ImageCmd::Save(a) => save(ctx, a),
        ImageCmd::Import(a) => import(ctx, a),
        ImageCmd::Inspect(_) | ImageCmd::Prune(_) => bail!("not implemented yet"),
    }
}
