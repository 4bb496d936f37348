//! One instruction: the config-only ones directly, the filesystem ones through the cache.

use std::collections::BTreeMap;

use berth_image::{Compression, ImageStore, Layer};
use berth_store::Store;
use serde_json::{json, Value};

use super::{arg_pairs, build_arg, ins_err, normalize_abs, rfc3339, Build, Stage, State};
use crate::cache::{self, Hit};
use crate::expand;
use crate::instr;
use crate::parser::Instruction;
use crate::step::{self, StepRoot};
use crate::{BuildError, Event, Result};

impl Build<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn instruction(
        &self,
        store: &Store,
        stage: &Stage,
        st: &mut State,
        ins: &Instruction,
        no_cache: bool,
        missed: &mut bool,
        n: usize,
        total: usize,
    ) -> Result<()> {
        let e = self.escape;
        let err = |m: String| ins_err(&self.file, ins, m);
        match ins.keyword.as_str() {
            "ARG" => {
                let pairs = arg_pairs(ins, &self.vars(st), e).map_err(err)?;
                for (k, def) in pairs {
                    let v = build_arg(self.opts, &k)
                        .or(def)
                        .or_else(|| self.global_args.get(&k).cloned());
                    match v {
                        Some(v) => {
                            st.fold(&format!("ARG {k}={v}"));
                            st.args.insert(k, v);
                        }
                        None => {
                            st.fold(&format!("ARG {k}"));
                            st.args.remove(&k);
                        }
                    }
                }
                Ok(())
            }
            "ENV" => {
                let pairs = expand::pairs(&ins.args, &self.vars(st), e, true).map_err(err)?;
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    st.set_env(&k, &v);
                    shown.push(format!("{k}={v}"));
                }
                let text = format!("ENV {}", shown.join(" "));
                st.fold(&text);
                st.history(text, true);
                Ok(())
            }
            "LABEL" => {
                let pairs = expand::pairs(&ins.args, &self.vars(st), e, true).map_err(err)?;
                let mut l = st
                    .config
                    .get("Labels")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let mut shown = Vec::new();
                for (k, v) in pairs {
                    shown.push(format!("{k}={v}"));
                    l.insert(k, json!(v));
                }
                st.config.insert("Labels".into(), Value::Object(l));
                st.history(format!("LABEL {}", shown.join(" ")), true);
                Ok(())
            }
            "MAINTAINER" => {
                st.author = Some(ins.args.clone());
                st.history(format!("MAINTAINER {}", ins.args), true);
                Ok(())
            }
            "WORKDIR" => {
                let w = expand::word(&ins.args, &self.vars(st), e).map_err(err)?;
                let cur = st.str_field("WorkingDir");
                let path = if w.starts_with('/') {
                    w
                } else {
                    format!(
                        "{}/{}",
                        if cur.is_empty() {
                            ""
                        } else {
                            cur.trim_end_matches('/')
                        },
                        w
                    )
                };
                let path = normalize_abs(&path);
                st.config.insert("WorkingDir".into(), json!(path));
                let text = format!("WORKDIR {path}");
                if path == "/" {
                    st.fold(&text);
                    st.history(text, true);
                    return Ok(());
                }
                // As BuildKit: the directory is created (owned by USER) when missing; the step
                // has a layer only when it created something.
                let user = st.str_field("User");
                let instruction = format!("WORKDIR {path} user={user}");
                let key = cache::key(&st.key, &instruction, "");
                if self.try_cache(store, st, &key, &text, no_cache)? {
                    return Ok(());
                }
                let none = BTreeMap::new();
                self.miss(store, st, &instruction, &none, no_cache, missed)?;
                let root = StepRoot::new(store, &st.lowers(store), true)?;
                let merged = root.merged();
                if !step::is_dir_in(&merged, &path) {
                    let owner = if user.is_empty() {
                        (0, 0)
                    } else {
                        let u = berth_engine::user::resolve(&merged, &user, &[])
                            .map_err(|e| err(format!("USER {user}: {e}")))?;
                        (u.uid, u.gid)
                    };
                    step::mkdir_p_in(&merged, &path, owner).map_err(|e| err(e.to_string()))?;
                }
                self.finish_step(store, st, root, &key, &instruction, &none, text)
            }
            "USER" => {
                let u = expand::word(&ins.args, &self.vars(st), e).map_err(err)?;
                st.config.insert("User".into(), json!(u));
                let text = format!("USER {u}");
                st.fold(&text);
                st.history(text, true);
                Ok(())
            }
            "SHELL" => {
                let v = ins.json.clone().filter(|v| !v.is_empty()).ok_or_else(|| {
                    err("requires the JSON form, e.g. SHELL [\"/bin/bash\", \"-c\"]".into())
                })?;
                st.config.insert("Shell".into(), json!(v));
                let text = format!("SHELL {}", json!(v));
                st.fold(&text);
                st.history(text, true);
                Ok(())
            }
            "CMD" | "ENTRYPOINT" => {
                let v = match &ins.json {
                    Some(v) => v.clone(),
                    None => {
                        let mut s = st.shell();
                        s.push(ins.args.clone());
                        s
                    }
                };
                if ins.keyword == "CMD" {
                    st.config.insert("Cmd".into(), json!(v));
                    st.cmd_set = true;
                } else {
                    st.config.insert("Entrypoint".into(), json!(v));
                    if !st.cmd_set {
                        st.config.insert("Cmd".into(), Value::Null);
                    }
                }
                st.history(format!("{} {}", ins.keyword, json!(v)), true);
                Ok(())
            }
            "EXPOSE" => {
                let words = expand::words(&ins.args, &self.vars(st), e).map_err(err)?;
                let mut ports = st
                    .config
                    .get("ExposedPorts")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                for p in &words {
                    let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                    let proto = proto.to_ascii_lowercase();
                    let ok = num
                        .split_once('-')
                        .map(|(a, b)| a.parse::<u16>().is_ok() && b.parse::<u16>().is_ok())
                        .unwrap_or_else(|| num.parse::<u16>().is_ok());
                    if !ok || !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                        return Err(err(format!("invalid port {p:?}; use PORT[/tcp|udp|sctp]")));
                    }
                    ports.insert(format!("{num}/{proto}"), json!({}));
                }
                st.config
                    .insert("ExposedPorts".into(), Value::Object(ports));
                st.history(format!("EXPOSE {}", words.join(" ")), true);
                Ok(())
            }
            "VOLUME" => {
                let list = match &ins.json {
                    Some(v) => v
                        .iter()
                        .map(|w| expand::word(w, &self.vars(st), e))
                        .collect::<std::result::Result<Vec<_>, _>>()
                        .map_err(err)?,
                    None => expand::words(&ins.args, &self.vars(st), e).map_err(err)?,
                };
                let mut vols = st
                    .config
                    .get("Volumes")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                for v in &list {
                    if v.is_empty() {
                        return Err(err("a volume path is empty".into()));
                    }
                    vols.insert(v.clone(), json!({}));
                }
                st.config.insert("Volumes".into(), Value::Object(vols));
                st.history(format!("VOLUME {}", json!(list)), true);
                Ok(())
            }
            "STOPSIGNAL" => {
                let s = expand::word(&ins.args, &self.vars(st), e).map_err(err)?;
                berth_engine::config::parse_signal(&s).map_err(|_| {
                    err(format!(
                        "invalid signal {s:?}; use a name (SIGTERM) or number"
                    ))
                })?;
                st.config.insert("StopSignal".into(), json!(s));
                st.history(format!("STOPSIGNAL {s}"), true);
                Ok(())
            }
            "HEALTHCHECK" => {
                let hc =
                    instr::healthcheck(&ins.flags, &ins.args, ins.json.as_ref()).map_err(err)?;
                st.config.insert("Healthcheck".into(), hc);
                st.history(format!("HEALTHCHECK {}", ins.args), true);
                Ok(())
            }
            "ONBUILD" => {
                let t = ins.args.trim();
                let kw = t
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase();
                if matches!(kw.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                    return Err(err(format!("{kw} is not allowed as an ONBUILD trigger")));
                }
                let mut list: Vec<Value> = st
                    .config
                    .get("OnBuild")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                list.push(json!(t));
                st.config.insert("OnBuild".into(), Value::Array(list));
                st.history(format!("ONBUILD {t}"), true);
                Ok(())
            }
            "RUN" => self.run(store, stage, st, ins, no_cache, missed, n, total),
            "COPY" | "ADD" => self.copy(store, stage, st, ins, no_cache, missed),
            other => Err(err(format!("unknown instruction {other}"))),
        }
    }

    /// Look `key` up; on a hit apply it to `st`. Returns true on a hit.
    pub(super) fn try_cache(
        &self,
        store: &Store,
        st: &mut State,
        key: &str,
        created_by: &str,
        no_cache: bool,
    ) -> Result<bool> {
        if no_cache {
            return Ok(false);
        }
        let Some((hit, created)) = cache::lookup_with_time(store, key)? else {
            return Ok(false);
        };
        let images = ImageStore::open(store)?;
        match hit {
            Hit::Empty => {
                st.key = key.to_string();
                st.created = rfc3339(created);
                st.history(created_by.to_string(), true);
            }
            Hit::Layer(d) => {
                let Some(layer) = images
                    .layer_by_diff_id(&d)?
                    .filter(|l| store.has_blob(&l.blob))
                else {
                    cache::forget(store, key)?;
                    return Ok(false);
                };
                st.layers.push(layer);
                st.key = key.to_string();
                st.created = rfc3339(created);
                st.history(created_by.to_string(), false);
            }
        }
        self.count(true);
        self.emit(Event::Cached);
        Ok(true)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn miss(
        &self,
        store: &Store,
        st: &State,
        instruction: &str,
        inputs: &BTreeMap<String, String>,
        no_cache: bool,
        missed: &mut bool,
    ) -> Result<()> {
        let why = if no_cache {
            "cache disabled (--no-cache)".to_string()
        } else if *missed {
            "an earlier step was rebuilt".to_string()
        } else {
            cache::explain_miss(store, &st.key, instruction, inputs)?
        };
        *missed = true;
        self.emit(Event::Miss(&why));
        Ok(())
    }

    pub(super) fn compression(&self) -> Compression {
        self.opts.compression.unwrap_or(Compression::Gzip)
    }

    /// Finish a layer step: record the cache entry and apply the layer.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish_step(
        &self,
        store: &Store,
        st: &mut State,
        root: StepRoot,
        key: &str,
        instruction: &str,
        inputs: &BTreeMap<String, String>,
        created_by: String,
    ) -> Result<()> {
        let images = ImageStore::open(store)?;
        let layer = root.into_layer(&images, self.compression())?;
        cache::insert(
            store,
            key,
            &st.key,
            instruction,
            inputs,
            layer.as_ref().map(|l| &l.diff_id),
        )?;
        st.key = key.to_string();
        st.created = rfc3339(chrono::Utc::now().timestamp());
        let empty = layer.is_none();
        if let Some(l) = layer {
            st.layers.push(l);
        }
        st.history(created_by, empty);
        self.count(false);
        Ok(())
    }

    /// Layers of a `--from` reference: an earlier stage or an image.
    pub(super) fn layers_of_ref(
        &self,
        store: &Store,
        stage: &Stage,
        r: &str,
    ) -> Result<(Vec<Layer>, String)> {
        if let Some(i) = self.stage_by_ref(r, stage.index) {
            let done = self
                .done
                .lock()
                .map_err(|_| BuildError::Other("lock".into()))?;
            let s = done
                .get(&i)
                .ok_or_else(|| BuildError::Other(format!("stage {r} was not built")))?;
            return Ok((s.layers.clone(), s.key.clone()));
        }
        let img = self.image(store, r)?;
        Ok((img.layers.clone(), format!("image {}", img.id)))
    }
}
