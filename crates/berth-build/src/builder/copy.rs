//! `COPY` and `ADD`: sources (context, stage or image, heredocs, URLs), the cache key, and the files written.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use berth_image::layer_dir;
use berth_store::Store;

use super::{ins_err, normalize_abs, Build, Stage, State};
use crate::cache;
use crate::context::{self, Selected};
use crate::expand;
use crate::instr;
use crate::parser::Instruction;
use crate::step::{self, Attrs, Item, StepRoot};
use crate::{BuildError, Result};

impl Build<'_> {
    pub(super) fn copy(
        &self,
        store: &Store,
        stage: &Stage,
        st: &mut State,
        ins: &Instruction,
        no_cache: bool,
        missed: &mut bool,
    ) -> Result<()> {
        let err = |m: String| ins_err(&self.file, ins, m);
        let is_add = ins.keyword == "ADD";
        let snapshot = st.clone();
        let vars = self.vars(&snapshot);
        let words: Vec<String> = match &ins.json {
            Some(v) => v
                .iter()
                .map(|w| expand::word(w, &vars, self.escape))
                .collect::<std::result::Result<_, _>>()
                .map_err(err)?,
            None => {
                // Heredoc markers are kept as written; everything else is expanded.
                let raw = expand::split_raw(&ins.args, self.escape).map_err(err)?;
                let mut out = Vec::new();
                for w in raw {
                    if w.starts_with("<<") {
                        out.push(w);
                    } else {
                        out.extend(expand::words(&w, &vars, self.escape).map_err(err)?);
                    }
                }
                out
            }
        };
        if words.len() < 2 {
            return Err(err("requires at least two arguments: SOURCE... DEST".into()));
        }
        let (srcs, dest) = words.split_at(words.len() - 1);
        let dest_raw = dest[0].clone();
        let workdir = st.str_field("WorkingDir");
        let dest_abs = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!(
                "{}/{}",
                if workdir.is_empty() {
                    ""
                } else {
                    workdir.trim_end_matches('/')
                },
                dest_raw
            )
        };
        let dest_is_dir_syntax =
            dest_raw.ends_with('/') || dest_raw == "." || dest_raw.ends_with("/.");
        let dest_abs = normalize_abs(&dest_abs);
        let flag = |n: &str| -> Result<Option<String>> {
            ins.flag(n)
                .map(|v| expand::word(v, &vars, self.escape).map_err(err))
                .transpose()
        };
        let from = flag("from")?;
        let chown = flag("chown")?;
        let chmod = flag("chmod")?
            .map(|m| instr::chmod(&m).map_err(err))
            .transpose()?;
        let checksum = flag("checksum")?;
        let excludes: Vec<String> = ins
            .flag_all("exclude")
            .iter()
            .map(|s| expand::word(s, &vars, self.escape).map_err(err))
            .collect::<Result<_>>()?;
        // `--exclude` patterns apply at any depth below each source (and never reach the
        // cache key).
        let exclude = (!excludes.is_empty()).then(|| context::Excludes::new(&excludes));
        for (f, _) in &ins.flags {
            let ok = matches!(
                f.as_str(),
                "from" | "chown" | "chmod" | "link" | "exclude" | "parents"
            ) || (is_add && matches!(f.as_str(), "checksum" | "keep-git-dir" | "unpack"));
            if !ok {
                return Err(err(format!("unknown flag --{f}")));
            }
        }
        // Sources: heredocs, URLs (ADD), a stage/image, or the context.
        let mut heredoc_items: Vec<(String, String)> = Vec::new();
        let mut url_items: Vec<String> = Vec::new();
        let mut paths: Vec<String> = Vec::new();
        for s in srcs {
            if let Some(name) = s.strip_prefix("<<") {
                let name = name
                    .trim_start_matches('-')
                    .trim_matches(|c| c == '\'' || c == '"');
                let h = ins
                    .heredocs
                    .iter()
                    .find(|h| h.name == name)
                    .ok_or_else(|| err(format!("here-document {name:?} has no content")))?;
                let content = if h.expand {
                    expand::heredoc(&h.content, &vars, self.escape).map_err(err)?
                } else {
                    h.content.clone()
                };
                heredoc_items.push((name.to_string(), content));
            } else if is_add && (s.starts_with("http://") || s.starts_with("https://")) {
                url_items.push(s.clone());
            } else if s.starts_with("http://") || s.starts_with("https://") {
                return Err(err("COPY cannot fetch URLs; use ADD".into()));
            } else {
                paths.push(s.clone());
            }
        }
        let n_sources = heredoc_items.len() + url_items.len() + paths.len();
        // With several sources (or a wildcard) the destination must be a directory.
        let multi = n_sources > 1 || paths.iter().any(|p| p.contains(['*', '?', '[']));
        if multi && !dest_is_dir_syntax {
            return Err(err(format!(
                "with more than one source file, the destination must be a directory and end with a /: {dest_raw:?}"
            )));
        }
        // Inputs → cache key.
        let mut inputs: BTreeMap<String, String> = BTreeMap::new();
        let mut digest = String::new();
        let from_layers = match &from {
            Some(f) => Some(self.layers_of_ref(store, stage, f).map_err(|e| match e {
                BuildError::BaseImage(_) => err(format!("--from={f}: no such stage or image")),
                e => e,
            })?),
            None => None,
        };
        let mut selected: Vec<Selected> = Vec::new();
        let src_root: Option<StepRoot> = match &from_layers {
            Some((layers, key)) => {
                digest.push_str(key);
                let lowers: Vec<PathBuf> = layers
                    .iter()
                    .map(|l| layer_dir(store, &l.diff_id))
                    .collect();
                let r = StepRoot::new(store, &lowers, false)?;
                for p in &paths {
                    let mut sel = context::select_in(&r.merged(), p, None).map_err(|e| {
                        err(format!("{e} (in --from={})", from.as_deref().unwrap_or("")))
                    })?;
                    selected.append(&mut sel);
                }
                Some(r)
            }
            None => {
                for p in &paths {
                    let mut sel = self.ctx.select(p).map_err(|e| match e {
                        BuildError::NotFound(_) => err(e.to_string()),
                        e => e,
                    })?;
                    selected.append(&mut sel);
                }
                if let Some(x) = &exclude {
                    selected.retain(|s| !x.excluded("", &s.rel));
                }
                let (d, files) = self.ctx.hash_excluding(&selected, 5000, exclude.as_ref())?;
                digest.push_str(d.as_str());
                inputs = files;
                None
            }
        };
        if let Some(x) = &exclude {
            selected.retain(|s| !x.excluded("", &s.rel));
        }
        for (name, content) in &heredoc_items {
            digest.push_str(&format!(
                "heredoc {name} {}",
                berth_store::Digest::sha256_of(content.as_bytes())
            ));
        }
        for u in &url_items {
            digest.push_str(&format!("url {u} {}", checksum.as_deref().unwrap_or("")));
        }
        let instruction = format!(
            "{} from={:?} chown={:?} chmod={:?} excludes={:?} srcs={:?} dest={dest_abs}{}",
            ins.keyword,
            from,
            chown,
            chmod,
            excludes,
            srcs,
            if dest_is_dir_syntax { "/" } else { "" }
        );
        let created_by = format!("{} {} # buildkit", ins.keyword, ins.args);
        // URLs are fetched before the key is known (their content is an input).
        let mut downloads: Vec<(String, Vec<u8>)> = Vec::new();
        for u in &url_items {
            let data = crate::fetch::get(u).map_err(|e| err(format!("{u}: {e}")))?;
            let d = berth_store::Digest::sha256_of(&data);
            if let Some(c) = &checksum {
                if c != d.as_str() {
                    return Err(err(format!(
                        "{u}: checksum mismatch: the content is {d}, --checksum says {c}"
                    )));
                }
            }
            digest.push_str(d.as_str());
            inputs.insert(u.clone(), d.hex()[..16].to_string());
            downloads.push((u.clone(), data));
        }
        let key = cache::key(&st.key, &instruction, &digest);
        if self.try_cache(store, st, &key, &created_by, no_cache)? {
            return Ok(());
        }
        self.miss(store, st, &instruction, &inputs, no_cache, missed)?;
        let root = StepRoot::new(store, &st.lowers(store), true)?;
        let merged = root.merged();
        let owner = match &chown {
            Some(c) => {
                let u = berth_engine::user::resolve(&merged, c, &[])
                    .map_err(|e| err(format!("--chown={c}: {e}")))?;
                Some((u.uid, u.gid))
            }
            None => None,
        };
        let into_dir = dest_is_dir_syntax || multi || step::is_dir_in(&merged, &dest_abs);
        let target_for = |name: &str| -> String {
            if into_dir {
                format!("{}/{}", dest_abs.trim_end_matches('/'), name)
            } else {
                dest_abs.clone()
            }
        };
        let mut items = Vec::new();
        for s in &selected {
            let md = fs::symlink_metadata(&s.path).map_err(|e| BuildError::io(&s.path, e))?;
            if md.is_dir() {
                items.push(Item::Host {
                    src: s.path.clone(),
                    dest: dest_abs.clone(),
                    recurse: true,
                    rel: from.is_none().then(|| s.rel.clone()),
                    src_rel: s.rel.clone(),
                });
            } else if is_add && from.is_none() && md.is_file() && step::is_archive(&s.path) {
                items.push(Item::Archive {
                    src: s.path.clone(),
                    dest: dest_abs.clone(),
                });
            } else {
                let name = s
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                items.push(Item::Host {
                    src: s.path.clone(),
                    dest: target_for(&name),
                    recurse: false,
                    rel: None,
                    src_rel: s.rel.clone(),
                });
            }
        }
        for (name, content) in &heredoc_items {
            items.push(Item::Data {
                dest: target_for(name),
                data: content.clone().into_bytes(),
                mode: 0o644,
            });
        }
        for (u, data) in downloads {
            let name = u
                .split(['?', '#'])
                .next()
                .unwrap_or(&u)
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty())
                .unwrap_or("index.html")
                .to_string();
            items.push(Item::Data {
                dest: target_for(&name),
                data,
                mode: 0o600,
            });
        }
        if into_dir {
            step::mkdir_p_in(&merged, &dest_abs, owner.unwrap_or((0, 0)))?;
        }
        let attrs = Attrs {
            owner,
            keep_owner: from.is_some(),
            mode: chmod,
        };
        step::write_items(
            &merged,
            &items,
            attrs,
            from.is_none().then_some(self.ctx),
            exclude.as_ref(),
        )
        .map_err(|e| err(e.to_string()))?;
        drop(src_root);
        self.finish_step(store, st, root, &key, &instruction, &inputs, created_by)
    }
}
