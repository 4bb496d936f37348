//! Pulling images.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_image::{ingest_layer, Compression, ImageStore, Layer, Reference};
use berth_store::{Digest, Hasher, Store};
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use reqwest::StatusCode;
use tokio::sync::{mpsc, Semaphore};

use crate::auth::{auth_file_path, AuthFile};
use crate::client::{Client, Transport};
use crate::error::{RegistryError, Result};
use crate::manifest::{
    available_platforms, blob_digest, config_diff_ids, layer_kind, parse_document, select_platform,
    Descriptor, Document, ImageManifest, LayerKind, MediaType, Platform, MAX_CONFIG, MAX_MANIFEST,
};
use crate::progress::{Item, OutputStream, ProgressMode, Reporter};
use crate::retry::Decision;
use crate::sources;
use berth_image::media::DOCKER_CONFIG;

/// Options of [`pull`].
#[derive(Debug, Clone)]
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
    berth_events::record(
        store,
        "image",
        "pull",
        &reference.familiar(),
        &[("name", &reference.familiar_name())],
    );
    Ok(r)
}

enum Msg {
    Data(Bytes),
    End,
    Err(io::Error),
}

/// Blocking reader over chunks sent by the download task.
struct ChannelReader {
    rx: mpsc::Receiver<Msg>,
    cur: Bytes,
    done: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if !self.cur.is_empty() {
                let n = buf.len().min(self.cur.len());
                buf[..n].copy_from_slice(&self.cur[..n]);
                let _ = self.cur.split_to(n);
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Msg::Data(b)) => self.cur = b,
                Some(Msg::End) => self.done = true,
                Some(Msg::Err(e)) => return Err(e),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "download aborted",
                    ))
                }
            }
        }
    }
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

/// Digest of what the registry serves for `desc` (at most `desc.size` bytes), if it can be read.
async fn remote_digest(client: &Client, repo: &str, desc: &Descriptor) -> Option<Digest> {
    let digest = blob_digest(desc).ok()?;
    let mut resp = client.get_blob(repo, &digest, 0).await.ok()?;
    let mut h = Hasher::new(digest.algorithm()).ok()?;
    let mut n = 0u64;
    while let Some(c) = resp.chunk().await.ok()? {
        n += c.len() as u64;
        if n > desc.size() {
            return None;
        }
        h.update(&c);
    }
    Some(h.finish())
}

/// Why feeding a layer stopped early.
enum FeedError {
    /// The ingest side stopped reading (it failed; its error is the one to report).
    ReaderGone,
    Failed(RegistryError),
}

async fn fetch_layer(
    client: Arc<Client>,
    repo: String,
    desc: Descriptor,
    diff_id: Digest,
    root: PathBuf,
    item: Item,
    sem: Arc<Semaphore>,
) -> Result<Layer> {
    let _permit = sem
        .acquire_owned()
        .await
        .map_err(|_| RegistryError::Other("download queue closed".into()))?;
    item.status("Downloading");
    let (tx, rx) = mpsc::channel::<Msg>(64);
    let blob = blob_digest(&desc)?;
    let hint = match layer_kind(desc.media_type()) {
        Some(LayerKind::Gzip) => Compression::Gzip,
        Some(LayerKind::Zstd) => Compression::Zstd,
        _ => Compression::None,
    };
    let ingest = {
        let digest = blob.clone();
        let diff_id = diff_id.clone();
        tokio::task::spawn_blocking(move || {
            let mut r = ChannelReader {
                rx,
                cur: Bytes::new(),
                done: false,
            };
            ingest_layer(&root, &mut r, hint, Some(&digest), Some(&diff_id))
        })
    };
    let fed = feed(&client, &repo, &desc, &tx, &item).await;
    match &fed {
        Ok(()) => {
            let _ = tx.send(Msg::End).await;
        }
        Err(FeedError::Failed(e)) => {
            let _ = tx
                .send(Msg::Err(io::Error::other(format!("download failed: {e}"))))
                .await;
        }
        Err(FeedError::ReaderGone) => {}
    }
    drop(tx);
    let res = ingest
        .await
        .map_err(|e| RegistryError::Other(format!("layer ingest task failed: {e}")))?;
    if let Err(FeedError::Failed(e)) = fed {
        item.abandon("Failed");
        return Err(e);
    }
    match res {
        Ok(l) => {
            item.finish("Pull complete");
            Ok(l)
        }
        Err(e) => {
            item.abandon("Failed");
            // The unpacker may give up on corrupt data before the blob digest is checked: fetch
            // the blob again (failure path only) to tell a registry sending wrong content apart.
            if let Some(actual) = remote_digest(&client, &repo, &desc).await {
                if actual != blob {
                    return Err(RegistryError::DigestMismatch {
                        what: "layer",
                        expected: blob.clone(),
                        actual,
                    });
                }
            }
            Err(RegistryError::Layer {
                digest: blob,
                source: e,
            })
        }
    }
}

/// Stream the blob into `tx`, resuming with a range request when the connection drops.
async fn feed(
    client: &Client,
    repo: &str,
    desc: &Descriptor,
    tx: &mpsc::Sender<Msg>,
    item: &Item,
) -> std::result::Result<(), FeedError> {
    let policy = client.retry_policy();
    let size = desc.size();
    let digest = blob_digest(desc).map_err(FeedError::Failed)?;
    let too_long = |actual: u64| {
        FeedError::Failed(RegistryError::SizeMismatch {
            what: "layer",
            digest: digest.clone(),
            expected: size,
            actual,
        })
    };
    let mut got: u64 = 0;
    // Interrupted bodies (resets, truncation, bad resumes): each resumes where it stopped,
    // within the client's retry bounds. Transient answers to the request itself are retried
    // inside `get_blob`.
    let (mut failures, mut waited) = (0u32, Duration::ZERO);
    let mut last_err = String::new();
    loop {
        if failures > 0 {
            match policy.next(failures, waited, None) {
                Decision::Retry(d) => {
                    item.status(&format!(
                        "Retrying in {} s ({last_err})",
                        d.as_secs_f32().ceil()
                    ));
                    tokio::time::sleep(d).await;
                    waited += d;
                    item.status("Downloading");
                }
                Decision::GiveUp(_) => {
                    return Err(FeedError::Failed(RegistryError::Truncated {
                        what: "layer",
                        digest: digest.clone(),
                        got,
                        expected: size,
                        attempts: failures,
                        detail: last_err,
                    }));
                }
            }
        }
        failures += 1;
        let mut resp = match client.get_blob(repo, &digest, got).await {
            Ok(r) => r,
            Err(e) => return Err(FeedError::Failed(e)),
        };
        // Bytes to drop from this response (a server that ignores Range restarts at 0).
        let mut skip = 0u64;
        if resp.status() == StatusCode::PARTIAL_CONTENT {
            let start = resp
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.parse::<u64>().ok());
            if start != Some(got) {
                last_err = "the registry resumed at the wrong offset".into();
                continue;
            }
        } else {
            skip = got;
            if let Some(len) = resp.content_length() {
                if len > size {
                    return Err(too_long(len));
                }
            }
        }
        loop {
            match resp.chunk().await {
                Ok(Some(mut c)) => {
                    if skip > 0 {
                        let n = usize::try_from(skip).map_or(c.len(), |s| s.min(c.len()));
                        let _ = c.split_to(n);
                        skip -= n as u64;
                        if c.is_empty() {
                            continue;
                        }
                    }
                    if got + c.len() as u64 > size {
                        return Err(too_long(got + c.len() as u64));
                    }
                    got += c.len() as u64;
                    item.inc(c.len() as u64);
                    if tx.send(Msg::Data(c)).await.is_err() {
                        return Err(FeedError::ReaderGone);
                    }
                }
                Ok(None) => {
                    if got == size {
                        return Ok(());
                    }
                    last_err = format!("the registry sent {got} of {size} bytes");
                    break;
                }
                Err(e) => {
                    last_err = e.to_string();
                    break;
                }
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_reader_streams_and_reports_errors() {
        let (tx, rx) = mpsc::channel(4);
        let t = std::thread::spawn(move || {
            let mut r = ChannelReader {
                rx,
                cur: Bytes::new(),
                done: false,
            };
            let mut out = Vec::new();
            let res = r.read_to_end(&mut out);
            (out, res.map_err(|e| e.to_string()))
        });
        tx.blocking_send(Msg::Data(Bytes::from_static(b"hello ")))
            .unwrap();
        tx.blocking_send(Msg::Data(Bytes::from_static(b"world")))
            .unwrap();
        tx.blocking_send(Msg::End).unwrap();
        let (out, res) = t.join().unwrap();
        assert_eq!(out, b"hello world");
        assert!(res.is_ok());

        // Dropped without an explicit end: an error, never a silent short read.
        let (tx, rx) = mpsc::channel(4);
        tx.blocking_send(Msg::Data(Bytes::from_static(b"part")))
            .unwrap();
        drop(tx);
        let mut r = ChannelReader {
            rx,
            cur: Bytes::new(),
            done: false,
        };
        let mut out = Vec::new();
        assert!(r.read_to_end(&mut out).is_err());

        let (tx, rx) = mpsc::channel(4);
        tx.blocking_send(Msg::Err(io::Error::other("boom")))
            .unwrap();
        let mut r = ChannelReader {
            rx,
            cur: Bytes::new(),
            done: false,
        };
        assert_eq!(r.read(&mut [0u8; 8]).unwrap_err().to_string(), "boom");
    }

    #[test]
    fn platform_of_config() {
        let p = config_platform(br#"{"os":"linux","architecture":"arm","variant":"v7"}"#).unwrap();
        assert_eq!(p.to_string(), "linux/arm/v7");
        assert!(config_platform(br#"{"os":"linux"}"#).is_none());
    }
}
