//! Downloading one layer: the blob streamed from the registry (resuming with range requests
//! when a connection drops, within the client's retry policy) through a channel into the
//! blocking ingest, which unpacks it while it arrives.

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_image::{ingest_layer, Compression, Layer};
use berth_store::{Digest, Hasher};
use bytes::Bytes;
use reqwest::StatusCode;
use tokio::sync::{mpsc, Semaphore};

use crate::client::Client;
use crate::error::{RegistryError, Result};
use crate::manifest::{blob_digest, layer_kind, Descriptor, LayerKind};
use crate::progress::Item;
use crate::retry::Decision;

pub(super) enum Msg {
    Data(Bytes),
    End,
    Err(io::Error),
}

/// Blocking reader over chunks sent by the download task.
pub(super) struct ChannelReader {
    pub(super) rx: mpsc::Receiver<Msg>,
    pub(super) cur: Bytes,
    pub(super) done: bool,
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

pub(super) async fn fetch_layer(
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
