//! Pulling images.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use berth_image::{ImageStore, Layer, Reference};
use berth_store::{Digest, Store};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::Semaphore;

use crate::auth::{auth_file_path, AuthFile};
use crate::client::{Client, Transport};
use crate::error::{RegistryError, Result};
use crate::manifest::{
    available_platforms, blob_digest, config_diff_ids, layer_kind, parse_document, select_platform,
    Document, ImageManifest, MediaType, Platform, MAX_CONFIG, MAX_MANIFEST,
};
use crate::progress::{OutputStream, ProgressMode, Reporter};
use crate::sources;
use berth_image::media::DOCKER_CONFIG;

mod layer;
#[cfg(test)]
mod tests;

use layer::fetch_layer;

/// Called once the reference resolved to a manifest, before anything is downloaded.
pub type ResolvedHook = Arc<dyn Fn() + Send + Sync>;

/// Options of [`pull`].
#[derive(Clone)]
pub struct PullOptions {
    /// Platform to pick from an index (default: this host's).
    pub platform: Option<Platform>,
    /// See [`Transport::tls_verify`].
    pub tls_verify: Option<bool>,
    /// Credentials file (default: `REGISTRY_AUTH_FILE`, `DOCKER_CONFIG`, `~/.docker/config.json`).
    pub auth_file: Option<PathBuf>,
    /// How progress is shown.
    pub progress: ProgressMode,
    /// Where progress and status lines go (`run` wants stderr).
    pub output: OutputStream,
    /// Layers downloaded at the same time.
    pub max_concurrent_downloads: usize,
    /// Called when the registry answered the image's manifest (platform chosen, so a front end can tell a pull that
    /// failed before it began, such as an unreachable registry or an unknown tag, from one
    /// that failed midway).
    pub on_resolved: Option<ResolvedHook>,
}

impl std::fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullOptions")
            .field("platform", &self.platform)
            .field("tls_verify", &self.tls_verify)
            .field("auth_file", &self.auth_file)
            .field("progress", &self.progress)
            .field("output", &self.output)
            .field("max_concurrent_downloads", &self.max_concurrent_downloads)
            .field("on_resolved", &self.on_resolved.is_some())
            .finish()
    }
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: None,
            tls_verify: None,
            auth_file: None,
            progress: ProgressMode::Auto,
            output: OutputStream::Stdout,
            max_concurrent_downloads: 4,
            on_resolved: None,
        }
    }
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullReport {
    /// Image id (config digest).
    pub image_id: Digest,
    /// Digest of the manifest or index the reference resolved to.
    pub manifest_digest: Digest,
    /// Whether anything new was stored (Docker's "Downloaded newer image").
    pub downloaded: bool,
}

/// Pull `reference` into the store and return the image id. Prints progress as `opts` says.
///
/// Builds its own tokio runtime: call it from synchronous code only.
pub fn pull(store: &Store, reference: &Reference, opts: &PullOptions) -> Result<Digest> {
    pull_report(store, reference, opts).map(|r| r.image_id)
}

/// [`pull`], returning details.
pub fn pull_report(store: &Store, reference: &Reference, opts: &PullOptions) -> Result<PullReport> {
    let rt = crate::runtime()?;
    let rep = Reporter::new(opts.progress, opts.output);
    let r = rt.block_on(pull_async(store, reference, opts, &rep))?;
    // Docker's `pull` event: the actor is the reference pulled.
    berth_image::events::record_for(
        store,
        "pull",
        &reference.familiar(),
        &reference.familiar_name(),
        &r.image_id,
    );
    Ok(r)
}

async fn connect_for(
    registry: &str,
    endpoint: Option<&str>,
    transport: &Transport,
    auth: &AuthFile,
) -> Result<Client> {
    let key = endpoint.map(crate::auth::normalize_registry);
    let creds = auth.credentials(key.as_deref().unwrap_or(registry))?;
    Client::connect(registry, endpoint, transport, creds).await
}

fn short(d: &Digest) -> String {
    d.hex()[..12].to_string()
}

async fn pull_async(
    store: &Store,
    reference: &Reference,
    opts: &PullOptions,
    rep: &Reporter,
) -> Result<PullReport> {
    let _lock = store.lock_shared()?;
    let images = ImageStore::open(store)?;
    let transport = Transport::from_env(opts.tls_verify)?;
    let auth = AuthFile::load(&auth_file_path(opts.auth_file.as_deref()))?;
    let registry = reference.registry();
    let repo = reference.repository();
    let wanted = reference.tag_or_digest();
    let display = reference.familiar();
    let repo_display = reference
        .familiar_name()
        .strip_prefix(&format!("{registry}/"))
        .map(String::from)
        .unwrap_or_else(|| repo.to_string());

    // Mirrors first (pulls only), then the registry itself.
    let mirrors: Vec<String> = transport.conf.mirrors_for(registry).to_vec();
    let mut found = None;
    for m in mirrors.iter().map(|m| Some(m.as_str())).chain([None]) {
        let attempt = async {
            let mut c = connect_for(registry, m, &transport, &auth).await?;
            let r = rep.clone();
            c.set_retry_notice(move |msg| r.line(msg));
            let man = c.get_manifest(repo, &wanted, &display).await?;
            Ok::<_, RegistryError>((c, man))
        }
        .await;
        match attempt {
            Ok(x) => {
                found = Some(x);
                break;
            }
            Err(e) if m.is_some() => {
                tracing::warn!("mirror {}: {e}; trying the next source", m.unwrap_or(""));
            }
            Err(e) => return Err(e),
        }
    }
    let (client, (top_raw, top_ct, top_digest)) = found.expect("the loop returns or finds");
    rep.line(&format!("{wanted}: Pulling from {repo_display}"));
    let client = Arc::new(client);

    let (manifest_raw, manifest) = match parse_document(top_ct.as_deref(), &top_raw)? {
        Document::Manifest(m) => (top_raw, *m),
        Document::Index(idx) => {
            let want = opts.platform.clone().unwrap_or_else(Platform::host);
            let d =
                select_platform(&idx, &want).ok_or_else(|| RegistryError::NoMatchingPlatform {
                    wanted: want.to_string(),
                    reference: display.clone(),
                    available: available_platforms(&idx),
                })?;
            let digest = blob_digest(d)?;
            if d.size() > MAX_MANIFEST {
                return Err(RegistryError::TooLarge {
                    what: "manifest",
                    registry: registry.to_string(),
                    limit: MAX_MANIFEST,
                });
            }
            let (raw, ct, _) = client.get_manifest(repo, digest.as_str(), &display).await?;
            if raw.len() as u64 != d.size() {
                return Err(RegistryError::SizeMismatch {
                    what: "manifest",
                    digest,
                    expected: d.size(),
                    actual: raw.len() as u64,
                });
            }
            match parse_document(ct.as_deref().or(Some(d.media_type().as_ref())), &raw)? {
                Document::Manifest(m) => (raw, *m),
                Document::Index(_) => {
                    return Err(RegistryError::InvalidManifest(
                        "an index entry points at another index; nested indexes are not supported"
                            .into(),
                    ))
                }
            }
        }
    };
    check_manifest(&manifest)?;
    if let Some(hook) = &opts.on_resolved {
        hook();
    }

    // The config: small, fetched whole and verified.
    let cfg_desc = manifest.config();
    let cfg_digest = blob_digest(cfg_desc)?;
    let config = if store.has_blob(&cfg_digest) {
        store.read_blob(&cfg_digest)?
    } else {
        client
            .get_small_blob(
                repo,
                "image config",
                &cfg_digest,
                cfg_desc.size(),
                MAX_CONFIG,
            )
            .await?
    };
    let diff_ids = config_diff_ids(&config)?;
    if let Some(actual) = config_platform(&config) {
        match &opts.platform {
            Some(want) if !want.matches(&actual) => {
                return Err(RegistryError::NoMatchingPlatform {
                    wanted: want.to_string(),
                    reference: display.clone(),
                    available: actual.to_string(),
                })
            }
            None if !Platform::host().matches(&actual) => {
                tracing::warn!(
                    "the image's platform ({actual}) does not match this host ({}); it may not run",
                    Platform::host()
                );
            }
            _ => {}
        }
    }
    if diff_ids.len() != manifest.layers().len() {
        return Err(RegistryError::InvalidManifest(format!(
            "the manifest has {} layers but the image config lists {} diff ids",
            manifest.layers().len(),
            diff_ids.len()
        )));
    }
    let image_id = cfg_digest;
    let up_to_date = images
        .resolve(&reference.to_string())
        .map(|i| i.id == image_id)
        .unwrap_or(false);

    // Layers: reuse what the store has, download the rest in parallel.
    let mut layers: Vec<Option<Layer>> = vec![None; manifest.layers().len()];
    let mut pending: HashMap<Digest, Vec<usize>> = HashMap::new();
    let mut jobs = Vec::new();
    let sem = Arc::new(Semaphore::new(opts.max_concurrent_downloads.max(1)));
    let mut layer_digests = Vec::with_capacity(manifest.layers().len());
    for (i, (desc, diff_id)) in manifest.layers().iter().zip(&diff_ids).enumerate() {
        let digest = blob_digest(desc)?;
        layer_digests.push(digest.clone());
        if let Some(l) = images.layer_by_blob(&digest)? {
            if &l.diff_id != diff_id {
                return Err(RegistryError::InvalidManifest(format!(
                    "layer {} has diff id {} in the store but the image config says {diff_id}",
                    digest, l.diff_id
                )));
            }
            if !up_to_date {
                rep.line(&format!("{}: Already exists", short(&digest)));
            }
            layers[i] = Some(l);
            continue;
        }
        // The same content stored from another blob (e.g. loaded from an archive): as Docker
        // does, reuse it; the diff id was verified when that layer was stored.
        if let Some(l) = images.layer_by_diff_id(diff_id)? {
            if !up_to_date {
                rep.line(&format!("{}: Already exists", short(&digest)));
            }
            layers[i] = Some(l);
            continue;
        }
        if let Some(v) = pending.get_mut(&digest) {
            v.push(i);
            continue;
        }
        let item = rep.item(&short(&digest), desc.size(), "Pulling fs layer");
        pending.insert(digest, vec![i]);
        jobs.push(tokio::spawn(fetch_layer(
            client.clone(),
            repo.to_string(),
            desc.clone(),
            diff_id.clone(),
            store.root().to_path_buf(),
            item,
            sem.clone(),
        )));
    }
    let downloaded = !jobs.is_empty();
    let aborts: Vec<_> = jobs.iter().map(|j| j.abort_handle()).collect();
    let mut running: FuturesUnordered<_> = jobs.into_iter().collect();
    while let Some(res) = running.next().await {
        let res = res
            .map_err(|e| RegistryError::Other(format!("download task failed: {e}")))
            .and_then(|r| r);
        match res {
            Ok(layer) => {
                // Recorded at once: an interrupted pull keeps finished layers for the retry.
                images.record_layer(&layer)?;
                for &i in pending.get(&layer.blob).map(Vec::as_slice).unwrap_or(&[]) {
                    layers[i] = Some(layer.clone());
                }
            }
            Err(e) => {
                for a in &aborts {
                    a.abort();
                }
                // Let the aborted ingests see the closed channel and clean up.
                while running.next().await.is_some() {}
                return Err(e);
            }
        }
    }
    let layers: Vec<Layer> = layers
        .into_iter()
        .map(|l| l.expect("every layer was reused or downloaded"))
        .collect();

    let tags: Vec<Reference> = if reference.digest().is_none() {
        vec![reference.clone()]
    } else {
        Vec::new()
    };
    let repo_digest = reference.with_digest(top_digest.clone());
    let id = images.commit_image(
        &config,
        &layers,
        Some(&manifest_raw),
        &tags,
        Some(&repo_digest),
    )?;
    if id != image_id {
        return Err(RegistryError::Other(format!(
            "stored image id {id} differs from the config digest {image_id}"
        )));
    }
    // What this repository of the registry holds (for cross-repository mounts on push).
    let mut blobs: Vec<&Digest> = layer_digests.iter().collect();
    blobs.push(&image_id);
    if let Err(e) = sources::record(store, registry, repo, &blobs) {
        tracing::warn!("cannot record blob sources: {e}");
    }
    rep.line(&format!("Digest: {top_digest}"));
    if up_to_date && !downloaded {
        rep.line(&format!("Status: Image is up to date for {display}"));
    } else {
        rep.line(&format!("Status: Downloaded newer image for {display}"));
    }
    rep.line(&reference.to_string());
    Ok(PullReport {
        image_id,
        manifest_digest: top_digest,
        downloaded: downloaded || !up_to_date,
    })
}

fn check_manifest(m: &ImageManifest) -> Result<()> {
    let ct = m.config().media_type();
    if *ct != MediaType::ImageConfig && ct.as_ref() != DOCKER_CONFIG {
        return Err(RegistryError::UnsupportedMediaType(format!(
            "{ct} (the artifact is not a container image)"
        )));
    }
    for l in m.layers() {
        if layer_kind(l.media_type()).is_none() {
            return Err(RegistryError::UnsupportedMediaType(format!(
                "{} for layer {}",
                l.media_type(),
                l.digest()
            )));
        }
    }
    Ok(())
}

/// `os/architecture/variant` of an image config, when it says.
fn config_platform(config: &[u8]) -> Option<Platform> {
    #[derive(serde::Deserialize)]
    struct C {
        os: Option<String>,
        architecture: Option<String>,
        variant: Option<String>,
    }
    let c: C = serde_json::from_slice(config).ok()?;
    Some(Platform {
        os: c.os.filter(|s| !s.is_empty())?,
        architecture: c.architecture.filter(|s| !s.is_empty())?,
        variant: c.variant.filter(|s| !s.is_empty()),
        os_version: None,
        os_features: None,
    })
}
