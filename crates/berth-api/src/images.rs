//! Image endpoints: list, inspect, history, pull (`/images/create`), tag, delete, load, get
//! (save), prune.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::json;

use berth_engine::state::Container;
use berth_image::archive::{self, ArchiveFormat};
use berth_image::{Image, ImageStore, Reference};

use crate::http::{self, Query, Resp};
use crate::router::Req;
use crate::server::App;
use crate::{ApiError, Result};

/// The list entry of an image (Docker's `ImageSummary`); `rows` are the containers, for
/// the `Containers` count.
pub fn summary(i: &Image, rows: &[Container]) -> serde_json::Value {
    let labels = i.config.labels.clone().unwrap_or_default();
    json!({
        "Id": i.id.as_str(),
        "ParentId": "",
        "RepoTags": i.familiar_tags(),
        "RepoDigests": i.repo_digests,
        "Created": i.created,
        "Size": i.size,
        "SharedSize": -1,
        "VirtualSize": i.size,
        "Labels": labels,
        "Containers": rows.iter().filter(|c| c.image_id == i.id).count(),
    })
}

/// `GET /images/json?all=&filters=`: `reference`, `dangling`, `label` filters.
pub async fn list(app: &Arc<App>, r: Req) -> Result<Resp> {
    let filters = r.query.filters()?;
    let v = app
        .blocking(move |store| {
            let images = ImageStore::open(store)?.list()?;
            let rows = berth_engine::state::all(store)?;
            let mut out = Vec::new();
            'img: for i in &images {
                for (k, vals) in &filters {
                    let one = |v: &String| match k.as_str() {
                        "dangling" => (v == "true") == i.tags.is_empty(),
                        "label" => {
                            let l = i.config.labels.clone().unwrap_or_default();
                            match v.split_once('=') {
                                Some((a, b)) => l.get(a).map(String::as_str) == Some(b),
                                None => l.contains_key(v.as_str()),
                            }
                        }
                        "reference" => i.familiar_tags().iter().any(|t| {
                            t == v || t.split(':').next() == Some(v.as_str()) || glob(v, t)
                        }),
                        _ => true,
                    };
                    // Docker's rule: every `label` value must match; others are alternatives.
                    let ok = if k == "label" {
                        vals.iter().all(one)
                    } else {
                        vals.iter().any(one)
                    };
                    if !vals.is_empty() && !ok {
                        continue 'img;
                    }
                }
                out.push(summary(i, &rows));
            }
            Ok(out)
        })
        .await?;
    Ok(http::json(200, &v))
}

/// `*` wildcards as Docker's reference filter (`busy*`, `*/app:*`).
fn glob(pat: &str, s: &str) -> bool {
    if !pat.contains('*') {
        return false;
    }
    let parts: Vec<&str> = pat.split('*').collect();
    let mut rest = s;
    for (n, p) in parts.iter().enumerate() {
        if n == 0 {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if n == parts.len() - 1 {
            return rest.ends_with(p);
        } else if let Some(i) = rest.find(p) {
            rest = &rest[i + p.len()..];
        } else {
            return false;
        }
    }
    true
}

/// `GET /images/{name}/json`.
pub async fn inspect(app: &Arc<App>, name: String) -> Result<Resp> {
    let doc = app
        .blocking(move |store| Ok(ImageStore::open(store)?.resolve(&name)?.inspect_json()))
        .await?;
    Ok(http::json(200, &doc))
}

/// `GET /images/{name}/history`.
pub async fn history(app: &Arc<App>, name: String) -> Result<Resp> {
    let v = app
        .blocking(move |store| {
            ImageStore::open(store)?.resolve(&name)?;
            let rows = berth_build::history::history(store, &name)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok(rows
                .iter()
                .map(|r| {
                    json!({"Id": r.id, "Created": r.created, "CreatedBy": r.created_by,
                           "Tags": null, "Size": r.size, "Comment": r.comment})
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(http::json(200, &v))
}

/// `POST /images/{name}/tag?repo=&tag=`: 201.
pub async fn tag(app: &Arc<App>, name: String, q: &Query) -> Result<Resp> {
    let repo = q.get("repo").unwrap_or("").to_string();
    let tag = q.get("tag").filter(|t| !t.is_empty()).unwrap_or("latest");
    if repo.is_empty() {
        return Err(ApiError::BadParameter(
            "repo: a repository name is required".into(),
        ));
    }
    let target_text = format!("{repo}:{tag}");
    app.blocking(move |store| {
        let target = Reference::parse(&target_text)?;
        let is = ImageStore::open(store)?;
        let img = is.resolve(&name)?;
        is.tag(&img.id, &target)?;
        Ok(())
    })
    .await?;
    Ok(http::with_headers(201, "", http::empty()))
}

/// `DELETE /images/{name}?force=&noprune=`: `[{"Untagged": …}, {"Deleted": …}]`.
pub async fn remove(app: &Arc<App>, name: String, q: &Query) -> Result<Resp> {
    let force = q.bool("force", false);
    let v = app
        .blocking(move |store| {
            let is = ImageStore::open(store)?;
            let _lock = store.lock_exclusive()?;
            let used = berth_engine::image_ids_in_use(store)?;
            let lines = is.remove(&name, force, &used)?;
            let _ = is.sweep();
            Ok(lines
                .iter()
                .map(|l| {
                    if let Some(t) = l.strip_prefix("Untagged: ") {
                        json!({"Untagged": t})
                    } else if let Some(d) = l.strip_prefix("Deleted: ") {
                        json!({"Deleted": d})
                    } else {
                        json!({"Deleted": l})
                    }
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(http::json(200, &v))
}

/// `POST /images/prune?filters=`.
pub async fn prune(app: &Arc<App>, r: Req) -> Result<Resp> {
    let all = r
        .query
        .filters()?
        .iter()
        .any(|(k, v)| k == "dangling" && v.iter().any(|x| x == "false" || x == "0"));
    let v = app
        .blocking(move |store| {
            let is = ImageStore::open(store)?;
            let _lock = store.lock_exclusive()?;
            let used = berth_engine::image_ids_in_use(store)?;
            let (lines, reclaimed) = is.prune(all, &used)?;
            let deleted: Vec<serde_json::Value> = lines
                .iter()
                .map(|l| match l.strip_prefix("Untagged: ") {
                    Some(t) => json!({"Untagged": t}),
                    None => json!({"Deleted": l.strip_prefix("Deleted: ").unwrap_or(l)}),
                })
                .collect();
            Ok(json!({"ImagesDeleted": deleted, "SpaceReclaimed": reclaimed}))
        })
        .await?;
    Ok(http::json(200, &v))
}

fn line(v: serde_json::Value) -> Bytes {
    Bytes::from(format!("{v}\r\n"))
}

/// `POST /images/create?fromImage=&tag=`: pull, with Docker's JSON progress messages
/// (errors after the 200 header arrive as `{"error": …, "errorDetail": …}`).
pub async fn create(app: &Arc<App>, r: Req) -> Result<Resp> {
    let q = &r.query;
    if q.get("fromSrc").is_some() {
        return import(app, r).await;
    }
    let from = q
        .get("fromImage")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::BadParameter("fromImage: an image name is required".into()))?;
    let tag = q.get("tag").unwrap_or("");
    let text = if tag.is_empty() {
        from.to_string()
    } else if tag.starts_with("sha256:") {
        format!("{from}@{tag}")
    } else {
        format!("{from}:{tag}")
    };
    let reference = Reference::parse(&text)?;
    let creds = crate::auth::from_request(&app.root, r.inner.headers(), reference.registry())?;
    // The pull runs on its own thread; the answer waits for the manifest, so a pull that
    // fails before it began (unreachable registry, unknown tag, no access) is an HTTP
    // error status as the daemon sends it, and only later failures go into the stream.
    enum Ev {
        Resolved,
        Done(std::result::Result<berth_registry::PullReport, berth_registry::RegistryError>),
    }
    let (etx, mut erx) = tokio::sync::mpsc::unbounded_channel::<Ev>();
    let root = app.root.clone();
    let name = reference.familiar();
    let short_name = reference.familiar_name();
    let tag = reference.tag().unwrap_or("latest").to_string();
    let repository = reference.repository().to_string();
    std::thread::spawn(move || {
        let hook_tx = etx.clone();
        let res = berth_store::Store::open(&root)
            .map_err(berth_registry::RegistryError::from)
            .and_then(|store| {
                let opts = berth_registry::PullOptions {
                    progress: berth_registry::ProgressMode::Quiet,
                    auth_file: creds.as_ref().map(crate::auth::TempAuthFile::path),
                    on_resolved: Some(Arc::new(move || {
                        let _ = hook_tx.send(Ev::Resolved);
                    })),
                    ..Default::default()
                };
                berth_registry::pull_report(&store, &reference, &opts)
            });
        drop(creds);
        let _ = etx.send(Ev::Done(res));
    });
    match erx.recv().await {
        Some(Ev::Resolved) => {}
        Some(Ev::Done(Err(e))) => return Err(pull_error(e, &short_name)),
        // Nothing was stored yet before the manifest resolved: only a store-side no-op.
        Some(Ev::Done(Ok(_))) | None => {}
    }
    let (tx, body) = http::channel();
    tokio::spawn(async move {
        let _ = tx
            .send(line(
                json!({"status": format!("Pulling from {repository}"), "id": tag}),
            ))
            .await;
        let done = loop {
            match erx.recv().await {
                Some(Ev::Done(r)) => break Some(r),
                Some(Ev::Resolved) => continue,
                None => break None,
            }
        };
        let msg = match done {
            Some(Ok(rep)) => vec![
                json!({"status": format!("Digest: {}", rep.manifest_digest)}),
                json!({"status": if rep.downloaded {
                    format!("Status: Downloaded newer image for {name}")
                } else {
                    format!("Status: Image is up to date for {name}")
                }}),
            ],
            Some(Err(e)) => {
                let e = e.to_string();
                vec![json!({"errorDetail": {"message": e}, "error": e})]
            }
            None => {
                let e = "the pull stopped unexpectedly".to_string();
                vec![json!({"errorDetail": {"message": e}, "error": e})]
            }
        };
        for m in msg {
            let _ = tx.send(line(m)).await;
        }
    });
    Ok(http::with_headers(200, "application/json", body))
}

/// The HTTP error of a pull that failed before anything was streamed, with the daemon's
/// statuses: 404 for an unknown repository, tag or platform (and refused access, which the
/// daemon cannot tell from a missing repository), 500 for the rest (unreachable registry).
fn pull_error(e: berth_registry::RegistryError, name: &str) -> ApiError {
    use berth_registry::RegistryError as E;
    match e {
        E::ManifestUnknown { .. } | E::NoMatchingPlatform { .. } => ApiError::NotFound(e.to_string()),
        E::Registry { status: 404, .. } => ApiError::NotFound(e.to_string()),
        E::Unauthorized { .. } => ApiError::NotFound(format!(
            "pull access denied for {name}, repository does not exist or may require 'docker login': {e}"
        )),
        E::Reference(_) | E::InvalidPlatform(_) => ApiError::BadParameter(e.to_string()),
        other => ApiError::Internal(other.to_string()),
    }
}

/// Largest root filesystem `POST /images/create?fromSrc=-` takes, in bytes (as received,
/// possibly compressed).
pub const MAX_IMPORT: u64 = 64 << 30;

/// A reader that fails (rather than truncating) once more than `left` bytes came through.
struct Bounded<R> {
    inner: R,
    left: u64,
}

impl<R: std::io::Read> std::io::Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let n64 = u64::try_from(n).unwrap_or(u64::MAX);
        if n64 > self.left {
            return Err(std::io::Error::other(format!(
                "the root filesystem is larger than {MAX_IMPORT} bytes"
            )));
        }
        self.left -= n64;
        Ok(n)
    }
}

/// `POST /images/create?fromSrc=-|URL&repo=&tag=&changes=&message=&platform=` (`docker
/// import`): the body (or the http(s) download of fromSrc=URL, as the daemon does) is a tar
/// of a root filesystem (plain, gzip, bzip2, xz or zstd), streamed into
/// the store through the same library call as `berth import`. Answers Docker's progress
/// stream ending in `{"status": "sha256:…"}`; a failure before that is an HTTP error.
async fn import(app: &Arc<App>, r: Req) -> Result<Resp> {
    let q = &r.query;
    let src = q.get("fromSrc").unwrap_or("").to_string();
    let url = berth_registry::download::is_url(&src);
    if src != "-" && !url {
        return Err(ApiError::BadParameter(format!(
            "fromSrc {src:?}: give - (the tarball as the request body) or an http(s) URL"
        )));
    }
    let repo = q.get("repo").unwrap_or("");
    let tag = q.get("tag").unwrap_or("");
    let reference = if repo.is_empty() {
        if !tag.is_empty() {
            return Err(ApiError::BadParameter(
                "tag: a tag needs a repository (repo)".into(),
            ));
        }
        None
    } else if tag.is_empty() {
        Some(Reference::parse(repo)?)
    } else {
        Some(Reference::parse(&format!("{repo}:{tag}"))?)
    };
    let mut architecture = None;
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        let mut parts = p.split('/');
        let os = parts.next().unwrap_or("");
        if !os.eq_ignore_ascii_case("linux") {
            return Err(ApiError::BadParameter(format!(
                "platform {p:?}: only linux images can be imported"
            )));
        }
        architecture = parts
            .next()
            .filter(|a| !a.is_empty())
            .map(str::to_ascii_lowercase);
    }
    let changes = q.all("changes");
    // Bad changes are the client's error (400), found before reading the body.
    berth_image::import::apply_changes(&mut berth_image::ImageConfig::default(), &changes)
        .map_err(|e| ApiError::BadParameter(e.to_string()))?;
    let opts = berth_image::import::ImportOptions {
        changes,
        message: q
            .get("message")
            .filter(|m| !m.is_empty())
            .map(str::to_string),
        source: src.clone(),
        architecture,
    };
    // The tarball: the request body, or (fromSrc=URL) the download, read as it arrives.
    let mut body: Box<dyn std::io::Read + Send> = if url {
        let src = src.clone();
        tokio::task::spawn_blocking(move || {
            berth_registry::download::open_url(&src, berth_registry::download::MAX_DOWNLOAD)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?
    } else {
        Box::new(Bounded {
            inner: http::BodyReader::new(r.inner.into_body()),
            left: MAX_IMPORT,
        })
    };
    let id = app
        .blocking(move |store| {
            let is = ImageStore::open(store)?;
            let _lock = store.lock_shared()?;
            Ok(berth_image::import::import_rootfs(
                &is,
                &mut body,
                reference.as_ref(),
                &opts,
            )?)
        })
        .await?;
    let out = format!("{}\r\n", json!({"status": id.as_str()}));
    Ok(http::with_headers(200, "application/json", http::full(out)))
}

/// `POST /images/load?quiet=`: a docker/oci archive (any compression) as the body.
pub async fn load(app: &Arc<App>, mut r: Req) -> Result<Resp> {
    let root = app.root.clone();
    let store_tmp = berth_store::tmp_path(&root, "api-load.tar");
    if let Some(d) = store_tmp.parent() {
        std::fs::create_dir_all(d).map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    let mut f = tokio::fs::File::create(&store_tmp)
        .await
        .map_err(|e| ApiError::Internal(format!("{}: {e}", store_tmp.display())))?;
    let body = r.inner.body_mut();
    let res: Result<()> = async {
        use tokio::io::AsyncWriteExt;
        while let Some(fr) = body.frame().await {
            let fr = fr.map_err(|e| ApiError::BadParameter(format!("reading the archive: {e}")))?;
            if let Ok(d) = fr.into_data() {
                f.write_all(&d)
                    .await
                    .map_err(|e| ApiError::Internal(e.to_string()))?;
            }
        }
        f.flush()
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))
    }
    .await;
    drop(f);
    if let Err(e) = res {
        let _ = std::fs::remove_file(&store_tmp);
        return Err(e);
    }
    let tmp = store_tmp.clone();
    let loaded = app
        .blocking(move |store| {
            let is = ImageStore::open(store)?;
            let _lock = store.lock_shared()?;
            let r = archive::load_file(&is, &tmp);
            let _ = std::fs::remove_file(&tmp);
            Ok(r?)
        })
        .await;
    let _ = std::fs::remove_file(&store_tmp);
    let loaded = loaded?;
    let mut out = String::new();
    // One message per line, as Docker's daemon sends them: clients match each `stream`
    // against `^Loaded image: (.+)$` (docker-py's `images.load` found nothing in a message
    // holding two lines).
    for l in &loaded {
        let lines: Vec<String> = if l.tags.is_empty() {
            vec![format!("Loaded image ID: {}\n", l.id)]
        } else {
            l.tags
                .iter()
                .map(|t| format!("Loaded image: {}\n", t.familiar()))
                .collect()
        };
        for text in lines {
            out.push_str(&format!("{}\r\n", json!({"stream": text})));
        }
    }
    Ok(http::with_headers(200, "application/json", http::full(out)))
}

/// `GET /images/get?names=a&names=b`: a docker-archive tar of the images.
pub async fn get(app: &Arc<App>, r: Req) -> Result<Resp> {
    let names = r.query.all("names");
    save(app, names).await
}

/// `GET /images/{name}/get`.
pub async fn get_one(app: &Arc<App>, name: String) -> Result<Resp> {
    save(app, vec![name]).await
}

async fn save(app: &Arc<App>, names: Vec<String>) -> Result<Resp> {
    if names.is_empty() {
        return Err(ApiError::BadParameter(
            "names: give at least one image".into(),
        ));
    }
    // Resolve first, so a missing image is a 404 rather than a broken stream.
    let check = names.clone();
    app.blocking(move |store| {
        let is = ImageStore::open(store)?;
        for n in &check {
            is.resolve(n)?;
        }
        Ok(())
    })
    .await?;
    let (tx, body) = http::channel();
    let root = app.root.clone();
    std::thread::spawn(move || {
        let Ok(store) = berth_store::Store::open(&root) else {
            return;
        };
        let Ok(is) = ImageStore::open(&store) else {
            return;
        };
        let Ok(items) = archive::save_items(&is, &names) else {
            return;
        };
        let mut w = std::io::BufWriter::with_capacity(
            1 << 20,
            http::ChannelWriter {
                tx,
                stream: 0,
                multiplex: false,
            },
        );
        let _ = archive::save(&is, &items, ArchiveFormat::Docker, &mut w);
        let _ = std::io::Write::flush(&mut w);
    });
    Ok(http::with_headers(200, "application/x-tar", body))
}

/// `POST /images/{name}/push?tag=`: push to its registry, JSON progress messages. Credentials
/// come from the request's `X-Registry-Auth` header, else the service's `~/.docker/config.json`.
pub async fn push(app: &Arc<App>, name: String, r: Req) -> Result<Resp> {
    let q = &r.query;
    let tag = q.get("tag").filter(|t| !t.is_empty());
    let text = match tag {
        Some(t) if t.starts_with("sha256:") => format!("{name}@{t}"),
        Some(t) => format!("{name}:{t}"),
        None => name.clone(),
    };
    let dest = Reference::parse(&text)?;
    let creds = crate::auth::from_request(&app.root, r.inner.headers(), dest.registry())?;
    let check = text.clone();
    app.blocking(move |store| {
        ImageStore::open(store)?.resolve(&check)?;
        Ok(())
    })
    .await?;
    let (tx, body) = http::channel();
    let root = app.root.clone();
    std::thread::spawn(move || {
        let _ = tx.blocking_send(line(json!({
            "status": format!("The push refers to repository [{}]", dest.familiar_name())
        })));
        let res = berth_store::Store::open(&root)
            .map_err(|e| e.to_string())
            .and_then(|store| {
                let opts = berth_registry::PushOptions {
                    progress: berth_registry::ProgressMode::Quiet,
                    auth_file: creds.as_ref().map(crate::auth::TempAuthFile::path),
                    ..Default::default()
                };
                berth_registry::push(&store, &text, &dest, &opts).map_err(|e| e.to_string())
            });
        drop(creds);
        let msgs = match res {
            Ok(d) => {
                let tag = dest.tag().unwrap_or("latest");
                vec![
                    json!({"status": format!("{tag}: digest: {d} size: 0")}),
                    json!({"progressDetail": {}, "aux": {"Tag": tag, "Digest": d.to_string(), "Size": 0}}),
                ]
            }
            Err(e) => vec![json!({"errorDetail": {"message": e}, "error": e})],
        };
        for m in msgs {
            let _ = tx.blocking_send(line(m));
        }
    });
    Ok(http::with_headers(200, "application/json", body))
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&changes=`: 201 `{"Id": …}`.
pub async fn commit(app: &Arc<App>, q: &Query) -> Result<Resp> {
    let container = q
        .get("container")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::BadParameter("container: give the container to commit".into()))?
        .to_string();
    let reference = match (q.get("repo").filter(|r| !r.is_empty()), q.get("tag")) {
        (Some(r), Some(t)) if !t.is_empty() => Some(format!("{r}:{t}")),
        (Some(r), _) => Some(r.to_string()),
        _ => None,
    };
    let opts = berth_build::commit::CommitOptions {
        reference,
        changes: q
            .all("changes")
            .into_iter()
            .filter(|c| !c.is_empty())
            .collect(),
        message: q
            .get("comment")
            .filter(|c| !c.is_empty())
            .map(str::to_string),
        author: q
            .get("author")
            .filter(|c| !c.is_empty())
            .map(str::to_string),
    };
    let id = app
        .blocking(move |store| {
            crate::containers::find(store, &container)?;
            berth_build::commit::commit(store, &container, &opts)
                .map_err(|e| ApiError::Internal(e.to_string()))
        })
        .await?;
    Ok(http::json(201, &json!({"Id": id.to_string()})))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reference_globs() {
        assert!(super::glob("busy*", "busybox:latest"));
        assert!(super::glob("*:1", "app:1"));
        assert!(!super::glob("x*", "busybox:latest"));
        assert!(!super::glob("plain", "plain"));
    }
}
