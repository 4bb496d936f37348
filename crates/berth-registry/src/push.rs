//! Pushing images.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use berth_image::media::{self, DOCKER_CONFIG, DOCKER_MANIFEST};
use berth_image::{Compression, Image, ImageStore, Layer, Reference};
use berth_store::{Digest, Hasher, Store, VerifyingReader};
use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, Semaphore};

use crate::auth::{auth_file_path, AuthFile};
use crate::client::{error_from_response, repo_scope, Client, Transport};
use crate::error::{RegistryError, Result};
use crate::manifest::{parse_document, Document, ImageManifest, MediaType};
use crate::progress::{Item, OutputStream, ProgressMode, Reporter};
use crate::sources;

/// Options of [`push`].
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// See [`Transport::tls_verify`].
    pub tls_verify: Option<bool>,
    /// Credentials file (default: `REGISTRY_AUTH_FILE`, `DOCKER_CONFIG`, `~/.docker/config.json`).
    pub auth_file: Option<PathBuf>,
    /// How progress is shown.
    pub progress: ProgressMode,
    /// Where progress and status lines go.
    pub output: OutputStream,
    /// Blobs larger than this are uploaded in chunks of this size (PATCH); smaller ones in one PUT.
    pub chunk_size: u64,
    /// Blobs uploaded at once (at least 1).
    pub max_concurrent_uploads: usize,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            tls_verify: None,
            auth_file: None,
            progress: ProgressMode::Auto,
            output: OutputStream::Stdout,
            chunk_size: 64 << 20,
            max_concurrent_uploads: 4,
        }
    }
}

/// Push the local image `image` (name or id) as `destination`; returns the manifest digest.
///
/// Layer blobs are sent as stored: gzip blobs under a Docker v2 schema 2 manifest, and when
/// any layer is uncompressed or zstd, an OCI manifest with the matching layer media types.
/// A manifest the image was pulled with is reused unchanged, so its digest stays the same.
pub fn push(
    store: &Store,
    image: &str,
    destination: &Reference,
    opts: &PushOptions,
) -> Result<Digest> {
    let rt = crate::runtime()?;
    let rep = Reporter::new(opts.progress, opts.output);
    let d = rt.block_on(push_async(store, image, destination, opts, &rep))?;
    // Docker's `push` event: the actor is the reference pushed.
    let img = ImageStore::open(store)
        .and_then(|is| is.resolve(image))
        .ok();
    berth_image::events::record(
        store,
        "push",
        &destination.familiar(),
        &destination.familiar_name(),
        img.as_ref(),
    );
    Ok(d)
}

struct BlobJob {
    digest: Digest,
    size: u64,
    path: PathBuf,
}

async fn push_async(
    store: &Store,
    image: &str,
    dest: &Reference,
    opts: &PushOptions,
    rep: &Reporter,
) -> Result<Digest> {
    let _lock = store.lock_shared()?;
    let images = ImageStore::open(store)?;
    let img = images.resolve(image)?;
    let transport = Transport::from_env(opts.tls_verify)?;
    let auth = AuthFile::load(&auth_file_path(opts.auth_file.as_deref()))?;
    let registry = dest.registry();
    let repo = dest.repository();
    rep.line(&format!("The push refers to repository [{}]", dest.name()));

    if !store.has_blob(&img.id) {
        store.put_blob(&img.raw_config, Some(&img.id))?;
    }
    let (manifest_raw, media_type) = manifest_for(store, &img)?;
    let manifest_digest = Digest::sha256_of(&manifest_raw);

    let creds = auth.credentials(registry)?;
    let mut client = Client::connect(registry, None, &transport, creds).await?;
    let r = rep.clone();
    client.set_retry_notice(move |msg| r.line(msg));
    let client = Arc::new(client);

    // Layers (top first, as Docker shows them), then the config.
    let mut jobs: Vec<BlobJob> = Vec::new();
    for l in img.layers.iter().rev() {
        if jobs.iter().any(|j| j.digest == l.blob) {
            continue;
        }
        if !store.has_blob(&l.blob) {
            return Err(RegistryError::Other(format!(
                "layer blob {} of {image} is not in the store; pull or load the image again",
                l.blob
            )));
        }
        jobs.push(BlobJob {
            digest: l.blob.clone(),
            size: store.blob_size(&l.blob)?,
            path: store.blob_path(&l.blob),
        });
    }
    let sem = Arc::new(Semaphore::new(opts.max_concurrent_uploads.max(1)));
    let mut running = FuturesUnordered::new();
    let n_layers = jobs.len();
    jobs.push(BlobJob {
        digest: img.id.clone(),
        size: img.raw_config.len() as u64,
        path: store.blob_path(&img.id),
    });
    let mut handles = Vec::new();
    for (i, j) in jobs.into_iter().enumerate() {
        let from = sources::lookup(store, registry, &j.digest, repo).unwrap_or_default();
        let item = if i < n_layers {
            Some(rep.item(&j.digest.hex()[..12], j.size, "Preparing"))
        } else {
            None
        };
        let h = tokio::spawn(upload_blob(
            client.clone(),
            repo.to_string(),
            j,
            from,
            opts.chunk_size.max(1),
            item,
            sem.clone(),
        ));
        handles.push(h.abort_handle());
        running.push(h);
    }
    while let Some(r) = running.next().await {
        let r = r
            .map_err(|e| RegistryError::Other(format!("upload task failed: {e}")))
            .and_then(|r| r);
        if let Err(e) = r {
            for h in &handles {
                h.abort();
            }
            return Err(e);
        }
    }

    // The manifest.
    let scopes = [repo_scope(repo, "pull,push")];
    let reference = dest.tag_or_digest();
    let url = client.url(&format!("/v2/{repo}/manifests/{reference}"));
    let body = Bytes::from(manifest_raw.clone());
    let resp = client
        .retrying("manifest upload", || async {
            let resp = client
                .send(&scopes, |h| {
                    h.put(url.clone())
                        .header(CONTENT_TYPE, media_type.to_string())
                        .body(body.clone())
                })
                .await?;
            if resp.status().is_success() {
                return Ok(resp);
            }
            match error_from_response(resp).await {
                e @ RegistryError::Unavailable { .. } => Err(e),
                e => Err(RegistryError::Other(format!(
                    "the registry refused the manifest: {e}"
                ))),
            }
        })
        .await?;
    if let Some(d) = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Digest::parse(v.trim()).ok())
    {
        if d != manifest_digest {
            return Err(RegistryError::DigestMismatch {
                what: "pushed manifest",
                expected: manifest_digest,
                actual: d,
            });
        }
    }

    let mut blobs: Vec<&Digest> = img.layers.iter().map(|l| &l.blob).collect();
    blobs.push(&img.id);
    if let Err(e) = sources::record(store, registry, repo, &blobs) {
        tracing::warn!("cannot record blob sources: {e}");
    }
    if let Err(e) = images.commit_image(
        &img.raw_config,
        &img.layers,
        None,
        &[],
        Some(&dest.with_digest(manifest_digest.clone())),
    ) {
        tracing::warn!("cannot record the repo digest: {e}");
    }
    rep.line(&format!(
        "{reference}: digest: {manifest_digest} size: {}",
        manifest_raw.len()
    ));
    Ok(manifest_digest)
}

/// The manifest to push (bytes and media type): the one the image came with if it still
/// describes it, else a new one (Docker schema 2 when every layer is gzip, as Docker writes
/// it; OCI otherwise).
fn manifest_for(store: &Store, img: &Image) -> Result<(Vec<u8>, MediaType)> {
    if let Some(md) = &img.manifest {
        if let Ok(raw) = store.read_blob(md) {
            if let Ok(Document::Manifest(m)) = parse_document(None, &raw) {
                let same_layers = m.layers().len() == img.layers.len()
                    && m.layers()
                        .iter()
                        .zip(&img.layers)
                        .all(|(d, l)| d.digest().as_ref() == l.blob.as_str());
                if m.config().digest().as_ref() == img.id.as_str() && same_layers {
                    let mt = match m.media_type() {
                        Some(t) if t.as_ref() == DOCKER_MANIFEST => t.clone(),
                        _ => MediaType::ImageManifest,
                    };
                    return Ok((raw, mt));
                }
            }
        }
    }
    let docker = img
        .layers
        .iter()
        .all(|l| l.compression == Compression::Gzip);
    new_manifest(&img.id, img.raw_config.len() as u64, &img.layers, docker)
}

/// A new manifest for the image with config `id` (`config_len` bytes) and `layers`, with
/// Docker schema 2 media types when `docker`, else OCI's.
fn new_manifest(
    id: &Digest,
    config_len: u64,
    layers: &[Layer],
    docker: bool,
) -> Result<(Vec<u8>, MediaType)> {
    let mt = if docker {
        media::media_type(DOCKER_MANIFEST)
    } else {
        MediaType::ImageManifest
    };
    let config_mt = if docker {
        media::media_type(DOCKER_CONFIG)
    } else {
        MediaType::ImageConfig
    };
    let layers = layers
        .iter()
        .map(|l| {
            let lmt = if docker {
                l.compression.docker_media_type()
            } else {
                l.compression.oci_media_type()
            };
            media::descriptor(lmt, &l.blob, l.blob_size)
        })
        .collect::<Vec<_>>();
    let m: ImageManifest = oci_spec::image::ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(mt.clone())
        .config(media::descriptor(config_mt, id, config_len))
        .layers(layers)
        .build()
        .map_err(|e| RegistryError::Other(format!("cannot build the manifest: {e}")))?;
    let raw = serde_json::to_vec_pretty(&m)
        .map_err(|e| RegistryError::Other(format!("cannot encode the manifest: {e}")))?;
    Ok((raw, mt))
}

/// A request body streaming a stored blob, verified against its digest while read.
fn file_body(path: PathBuf, digest: Digest, item: Option<Item>) -> reqwest::Body {
    let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(8);
    tokio::task::spawn_blocking(move || {
        let f = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        let mut r = match VerifyingReader::new(f, digest) {
            Ok(r) => r,
            Err(e) => {
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                return;
            }
        };
        loop {
            let mut buf = vec![0u8; 1 << 20];
            match r.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if let Some(i) = &item {
                        i.inc(n as u64);
                    }
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    reqwest::Body::wrap_stream(stream)
}

fn with_digest(mut u: Url, d: &Digest) -> Url {
    u.query_pairs_mut().append_pair("digest", d.as_str());
    u
}

async fn upload_blob(
    client: Arc<Client>,
    repo: String,
    job: BlobJob,
    from: Vec<String>,
    chunk_size: u64,
    item: Option<Item>,
    sem: Arc<Semaphore>,
) -> Result<()> {
    let _permit = sem
        .acquire_owned()
        .await
        .map_err(|_| RegistryError::Other("upload queue closed".into()))?;
    // A transient failure restarts the blob's upload with a fresh session.
    let what = format!("upload of blob {}", job.digest);
    let res = client
        .retrying(&what, || {
            upload_inner(&client, &repo, &job, &from, chunk_size, item.as_ref())
        })
        .await;
    if let Some(i) = &item {
        match &res {
            Ok(s) => i.finish(s),
            Err(_) => i.abandon("Failed"),
        }
    }
    res.map(|_| ())
}

async fn upload_inner(
    client: &Client,
    repo: &str,
    job: &BlobJob,
    from: &[String],
    chunk_size: u64,
    item: Option<&Item>,
) -> Result<String> {
    let scopes = [repo_scope(repo, "pull,push")];
    let digest = &job.digest;
    let blob_url = client.url(&format!("/v2/{repo}/blobs/{digest}"));
    let resp = client.send(&scopes, |h| h.head(blob_url.clone())).await?;
    if resp.status().is_success() {
        return Ok("Layer already exists".into());
    }
    let uploads = client.url(&format!("/v2/{repo}/blobs/uploads/"));
    let mut location = None;
    for src in from.iter().take(3) {
        let mut u = uploads.clone();
        u.query_pairs_mut()
            .append_pair("mount", digest.as_str())
            .append_pair("from", src);
        let mscopes = [scopes[0].clone(), repo_scope(src, "pull")];
        match client
            .send(&mscopes, |h| h.post(u.clone()).header(CONTENT_LENGTH, "0"))
            .await
        {
            Ok(r) if r.status() == StatusCode::CREATED => {
                return Ok(format!("Mounted from {src}"));
            }
            Ok(r) if r.status() == StatusCode::ACCEPTED => {
                location = Some(client.location(&r)?);
                break;
            }
            Ok(r) => tracing::debug!("mount from {src} refused: {}", r.status()),
            Err(e) => tracing::debug!("mount from {src} failed: {e}"),
        }
    }
    let mut location = match location {
        Some(l) => l,
        None => {
            let r = client
                .send(&scopes, |h| {
                    h.post(uploads.clone()).header(CONTENT_LENGTH, "0")
                })
                .await?;
            if r.status() != StatusCode::ACCEPTED {
                return Err(error_from_response(r).await);
            }
            client.location(&r)?
        }
    };
    if let Some(i) = item {
        i.status("Pushing");
    }
    let size = job.size;
    if size <= chunk_size {
        // Monolithic: one PUT with the whole blob.
        let url = with_digest(location, digest);
        let r = client
            .send(&scopes, |h| {
                if let Some(i) = item {
                    i.set_position(0);
                }
                h.put(url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size.to_string())
                    .body(file_body(job.path.clone(), digest.clone(), item.cloned()))
            })
            .await?;
        if r.status() != StatusCode::CREATED {
            return Err(error_from_response(r).await);
        }
        return Ok("Pushed".into());
    }
    // Chunked: PATCH each piece (following the new location every time), then PUT the digest.
    let mut f = tokio::fs::File::open(&job.path)
        .await
        .map_err(|e| RegistryError::io(&job.path, e))?;
    let mut hasher =
        Hasher::new(digest.algorithm()).map_err(|e| RegistryError::Other(e.to_string()))?;
    let mut start = 0u64;
    while start < size {
        // At most chunk_size, which is a buffer size in memory.
        let len = usize::try_from(chunk_size.min(size - start)).unwrap_or(usize::MAX);
        let mut buf = vec![0u8; len];
        f.read_exact(&mut buf)
            .await
            .map_err(|e| RegistryError::io(&job.path, e))?;
        hasher.update(&buf);
        let chunk = Bytes::from(buf);
        let end = start + len as u64 - 1;
        let url = location.clone();
        let r = client
            .send(&scopes, |h| {
                h.patch(url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_RANGE, format!("{start}-{end}"))
                    .header(CONTENT_LENGTH, len.to_string())
                    .body(chunk.clone())
            })
            .await?;
        if r.status() != StatusCode::ACCEPTED {
            return Err(error_from_response(r).await);
        }
        location = client.location(&r)?;
        start += len as u64;
        if let Some(i) = item {
            i.inc(len as u64);
        }
    }
    let actual = std::mem::replace(&mut hasher, Hasher::sha256()).finish();
    if &actual != digest {
        return Err(RegistryError::Other(format!(
            "blob {digest} in the store is corrupt (it hashes to {actual}); remove the image and pull or load it again"
        )));
    }
    let url = with_digest(location, digest);
    let r = client
        .send(&scopes, |h| h.put(url.clone()).header(CONTENT_LENGTH, "0"))
        .await?;
    if r.status() != StatusCode::CREATED {
        return Err(error_from_response(r).await);
    }
    Ok("Pushed".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(c: Compression) -> Layer {
        let d = Digest::sha256_of(b"layer");
        Layer {
            diff_id: d.clone(),
            diff_size: 10,
            blob: d,
            blob_size: 7,
            compression: c,
            size: 3,
        }
    }

    /// The manifest a push writes is byte for byte what berth wrote before it used oci-spec's
    /// types (same digest for the same image).
    #[test]
    fn new_manifests_keep_their_bytes() {
        let id = Digest::sha256_of(b"config");
        let (raw, mt) = new_manifest(&id, 5, &[layer(Compression::Gzip)], true).unwrap();
        assert_eq!(mt.as_ref(), DOCKER_MANIFEST);
        let l = Digest::sha256_of(b"layer");
        let want = format!(
            "{{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"{DOCKER_MANIFEST}\",\n  \"config\": {{\n    \"mediaType\": \"{DOCKER_CONFIG}\",\n    \"digest\": \"{id}\",\n    \"size\": 5\n  }},\n  \"layers\": [\n    {{\n      \"mediaType\": \"{}\",\n      \"digest\": \"{l}\",\n      \"size\": 7\n    }}\n  ]\n}}",
            media::DOCKER_LAYER_GZIP
        );
        assert_eq!(String::from_utf8(raw).unwrap(), want);
        let (raw, mt) = new_manifest(&id, 5, &[layer(Compression::Zstd)], false).unwrap();
        assert_eq!(mt, MediaType::ImageManifest);
        let text = String::from_utf8(raw).unwrap();
        assert!(
            text.contains("application/vnd.oci.image.layer.v1.tar+zstd"),
            "{text}"
        );
        assert!(
            text.contains("application/vnd.oci.image.config.v1+json"),
            "{text}"
        );
    }
}
