//! `POST /build`: the classic builder protocol (a tar context as the body, JSON messages
//! `{"stream": …}` back, `{"aux": {"ID": …}}` with the result), over `berth_build::build`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::json;
use tokio::sync::mpsc;

use berth_build::{BuildOptions, Context, Event, ImageSource, Network, Progress};

use crate::http::{self, Resp};
use crate::router::Req;
use crate::server::App;
use crate::{ApiError, Result};

fn msg(v: serde_json::Value) -> Bytes {
    Bytes::from(format!("{v}\r\n"))
}

/// Build progress as Docker's classic builder prints it (`Step 1/3 : FROM …`, RUN output,
/// ` ---> Using cache`).
struct Stream {
    tx: mpsc::Sender<Bytes>,
    partial: Mutex<BTreeMap<usize, Vec<u8>>>,
}

impl Stream {
    fn say(&self, text: String) {
        let _ = self.tx.blocking_send(msg(json!({ "stream": text })));
    }
}

impl Progress for Stream {
    fn event(&self, step: usize, e: Event<'_>) {
        match e {
            Event::Step { n, total, text, .. } => self.say(format!("Step {n}/{total} : {text}\n")),
            Event::Cached => self.say(" ---> Using cache\n".into()),
            Event::Miss(_) => {}
            Event::Output(data) => {
                let Ok(mut p) = self.partial.lock() else {
                    return;
                };
                let buf = p.entry(step).or_default();
                buf.extend_from_slice(data);
                if let Some(end) = buf.iter().rposition(|b| *b == b'\n') {
                    let lines: Vec<u8> = buf.drain(..=end).collect();
                    drop(p);
                    self.say(String::from_utf8_lossy(&lines).into_owned());
                }
            }
            Event::Done(_) => {
                let rest = self
                    .partial
                    .lock()
                    .ok()
                    .and_then(|mut p| p.remove(&step))
                    .filter(|r| !r.is_empty());
                if let Some(r) = rest {
                    self.say(format!("{}\n", String::from_utf8_lossy(&r)));
                }
            }
            Event::Note(n) => self.say(format!("{n}\n")),
        }
    }
}

struct Puller {
    root: std::path::PathBuf,
}

impl ImageSource for Puller {
    fn pull(&self, reference: &str) -> std::result::Result<(), String> {
        let r = berth_image::Reference::parse(reference).map_err(|e| e.to_string())?;
        let store = berth_store::Store::open(&self.root).map_err(|e| e.to_string())?;
        let opts = berth_registry::PullOptions {
            progress: berth_registry::ProgressMode::Quiet,
            ..Default::default()
        };
        berth_registry::pull(&store, &r, &opts)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn json_map(q: &crate::http::Query, k: &str) -> Result<BTreeMap<String, Option<String>>> {
    match q.get(k).filter(|s| !s.is_empty()) {
        None => Ok(BTreeMap::new()),
        Some(s) => serde_json::from_str(s)
            .map_err(|e| ApiError::BadParameter(format!("{k}: invalid JSON object: {e}"))),
    }
}

/// `POST /build?t=&dockerfile=&buildargs=&labels=&target=&nocache=&pull=&networkmode=&q=`.
pub async fn build(app: &Arc<App>, mut r: Req) -> Result<Resp> {
    let q = &r.query;
    if q.get("remote").is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::NotImplemented(
            "building from a remote URL is not supported by berth: send the context as a tar"
                .into(),
        ));
    }
    let dockerfile_name = q
        .get("dockerfile")
        .filter(|s| !s.is_empty())
        .unwrap_or("Dockerfile")
        .to_string();
    let build_args = json_map(q, "buildargs")?;
    let labels: BTreeMap<String, String> = json_map(q, "labels")?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();
    let network = Network::parse(q.get("networkmode").unwrap_or("default"))
        .map_err(|e| ApiError::BadParameter(e.to_string()))?;
    let tags = q.all("t");
    let opts = BuildOptions {
        dockerfile: String::new(),
        dockerfile_name: dockerfile_name.clone(),
        tags: tags.clone(),
        build_args,
        target: q
            .get("target")
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        labels,
        no_cache: q.bool("nocache", false),
        pull: q.bool("pull", false),
        network,
        ..Default::default()
    };
    let quiet = q.bool("q", false);

    // The context, spooled to a file in the store's tmp/.
    let spool = berth_store::tmp_path(&app.root, "api-build.tar");
    if let Some(d) = spool.parent() {
        std::fs::create_dir_all(d).map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    let mut f = tokio::fs::File::create(&spool)
        .await
        .map_err(|e| ApiError::Internal(format!("{}: {e}", spool.display())))?;
    let body = r.inner.body_mut();
    let res: Result<()> = async {
        use tokio::io::AsyncWriteExt;
        while let Some(fr) = body.frame().await {
            let fr =
                fr.map_err(|e| ApiError::BadParameter(format!("reading the build context: {e}")))?;
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
        let _ = std::fs::remove_file(&spool);
        return Err(e);
    }

    let (tx, body) = http::channel();
    let root = app.root.clone();
    std::thread::spawn(move || {
        let fail = |tx: &mpsc::Sender<Bytes>, e: String| {
            let _ = tx.blocking_send(msg(json!({"errorDetail": {"message": e}, "error": e})));
        };
        let res = (|| -> std::result::Result<berth_build::BuildResult, String> {
            let store = berth_store::Store::open(&root).map_err(|e| e.to_string())?;
            let mut file = std::fs::File::open(&spool).map_err(|e| e.to_string())?;
            let context = Context::from_tar(&store, &mut file).map_err(|e| e.to_string())?;
            let _ = std::fs::remove_file(&spool);
            let path = context
                .root
                .join(berth_build::context::confine(&dockerfile_name));
            let text = std::fs::read_to_string(&path).map_err(|_| {
                format!("cannot read {dockerfile_name} from the build context: send it in the context's tar")
            })?;
            let opts = BuildOptions {
                dockerfile: text,
                ..opts
            };
            let progress = Stream {
                tx: tx.clone(),
                partial: Mutex::new(BTreeMap::new()),
            };
            let puller = Puller { root: root.clone() };
            let quiet_progress = berth_build::Quiet;
            let p: &dyn Progress = if quiet { &quiet_progress } else { &progress };
            let r = berth_build::build(&store, &context, &opts, p, Some(&puller))
                .map_err(|e| e.to_string());
            drop(context);
            r
        })();
        let _ = std::fs::remove_file(&spool);
        match res {
            Ok(r) => {
                let id = r.image_id.to_string();
                let _ = tx.blocking_send(msg(json!({"aux": {"ID": id}})));
                if quiet {
                    let _ = tx.blocking_send(msg(json!({ "stream": format!("{id}\n") })));
                } else {
                    let short: String = id.trim_start_matches("sha256:").chars().take(12).collect();
                    let _ = tx.blocking_send(msg(
                        json!({ "stream": format!("Successfully built {short}\n") }),
                    ));
                    for t in &tags {
                        let t = if t.rsplit('/').next().is_some_and(|l| l.contains(':')) {
                            t.clone()
                        } else {
                            format!("{t}:latest")
                        };
                        let _ = tx.blocking_send(msg(
                            json!({ "stream": format!("Successfully tagged {t}\n") }),
                        ));
                    }
                }
            }
            Err(e) => fail(&tx, e),
        }
    });
    Ok(http::with_headers(200, "application/json", body))
}
