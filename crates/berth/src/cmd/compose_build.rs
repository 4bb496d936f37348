//! `berth compose` builds through `berth-build`: the `ImageBuilder` of `berth-compose-run`.

use std::io::Write;
use std::path::{Path, PathBuf};

use berth_build::{BuildOptions, Context, Event, ImageSource, Network, Progress};
use berth_compose::model::Build;
use berth_compose_run::project::ImageBuilder;
use berth_store::Store;

/// Pulls missing base images through the registry client (progress on stderr).
struct Puller {
    root: PathBuf,
}

impl ImageSource for Puller {
    fn pull(&self, reference: &str) -> std::result::Result<(), String> {
        let r = berth_image::Reference::parse(reference).map_err(|e| e.to_string())?;
        let store = Store::open(&self.root).map_err(|e| e.to_string())?;
        let opts = berth_registry::PullOptions {
            output: berth_registry::OutputStream::Stderr,
            ..berth_registry::PullOptions::default()
        };
        berth_registry::pull(&store, &r, &opts)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Build progress as plain lines on stderr, prefixed by the service (`web #3 RUN …`).
struct Lines {
    service: String,
}

impl Progress for Lines {
    fn event(&self, step: usize, e: Event<'_>) {
        let mut err = std::io::stderr().lock();
        let p = &self.service;
        let _ = match e {
            Event::Step {
                stage,
                n,
                total,
                text,
            } => {
                writeln!(err, "{p} #{step} [{stage} {n}/{total}] {text}")
            }
            Event::Cached => writeln!(err, "{p} #{step} CACHED"),
            Event::Miss(_) => Ok(()),
            Event::Output(b) => {
                let text = String::from_utf8_lossy(b);
                let mut r = Ok(());
                for l in text.lines() {
                    r = writeln!(err, "{p} #{step} {l}");
                }
                r
            }
            Event::Done(secs) => writeln!(err, "{p} #{step} DONE {secs:.1}s"),
            Event::Note(n) => writeln!(err, "{p} {n}"),
        };
    }
}

/// Builds a service's `build:` section with berth's builder.
pub struct ComposeBuilder;

impl ImageBuilder for ComposeBuilder {
    fn build(
        &self,
        store: &Store,
        service: &str,
        b: &Build,
        tag: &str,
    ) -> std::result::Result<(), String> {
        let dir = Path::new(&b.context);
        if b.context.contains("://") || b.context.starts_with("git@") {
            return Err(format!(
                "remote build contexts ({}) are not supported; use a directory",
                b.context
            ));
        }
        let (text, name) = match (&b.dockerfile_inline, &b.dockerfile) {
            (Some(t), _) => (t.clone(), "Dockerfile".to_string()),
            (None, d) => {
                let rel = d.clone().unwrap_or_else(|| "Dockerfile".into());
                let p = if Path::new(&rel).is_absolute() {
                    PathBuf::from(&rel)
                } else {
                    dir.join(berth_build::context::confine(&rel))
                };
                let t = std::fs::read_to_string(&p)
                    .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                (t, rel)
            }
        };
        let ctx = Context::from_dir(dir, None).map_err(|e| e.to_string())?;
        let opts = BuildOptions {
            dockerfile: text,
            dockerfile_name: name,
            tags: vec![tag.to_string()],
            build_args: b.args.clone(),
            target: b.target.clone(),
            labels: b.labels.clone(),
            no_cache: b.no_cache,
            network: Network::parse(b.network.as_deref().unwrap_or("default"))
                .map_err(|e| e.to_string())?,
            pull: b.pull,
            ..BuildOptions::default()
        };
        let puller = Puller {
            root: store.root().to_path_buf(),
        };
        berth_build::build(
            store,
            &ctx,
            &opts,
            &Lines {
                service: service.to_string(),
            },
            Some(&puller),
        )
        .map(|_| ())
        .map_err(|e| e.to_string())
    }
}
