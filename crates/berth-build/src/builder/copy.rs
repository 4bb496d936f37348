//! `COPY` and `ADD`: sources (context, stage or image, heredocs, URLs), the cache key, and the files written.

use std::collections::{BTreeMap, HashSet};
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
            let ok = matches!(f.as_str(), "from" | "chown" | "chmod" | "link" | "exclude")
                || (!is_add && f == "parents")
                || (is_add && matches!(f.as_str(), "checksum" | "keep-git-dir" | "unpack"));
            if !ok {
                return Err(err(format!("unknown flag --{f}")));
            }
        }
        let parents = bool_flag(ins, "parents").map_err(err)?;
        // ADD `--unpack`: local archives are extracted unless it is false, downloads only when
        // it is true (BuildKit's).
        let unpack = match ins.flag("unpack") {
            Some(_) => Some(bool_flag(ins, "unpack").map_err(err)?),
            None => None,
        };
        // `--link`: the files form a layer of their own, made without reading the earlier
        // layers, and cached independently of them. As BuildKit, `--chmod` turns it back into
        // a plain copy.
        let link = bool_flag(ins, "link").map_err(err)? && chmod.is_none();
        let link_owner = match (&chown, link) {
            (Some(c), true) => Some(numeric_owner(c).ok_or_else(|| {
                err(format!(
                    "--chown={c}: with --link, user and group must be numeric IDs (or root): the earlier layers' /etc/passwd and /etc/group are not read; use --chown=UID:GID or drop --link"
                ))
            })?),
            _ => None,
        };
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
        if checksum.is_some() && (url_items.len() != 1 || n_sources != 1) {
            return Err(err(
                "--checksum needs exactly one http(s) source: ADD --checksum=sha256:HEX URL DEST"
                    .into(),
            ));
        }
        // With several sources (or a wildcard) the destination must be a directory.
        let multi = n_sources > 1 || paths.iter().any(|p| p.contains(['*', '?', '[']));
        if multi && !dest_is_dir_syntax && !parents {
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
        // With `--parents`: each selected path's pivot (the part of its source before `/./`,
        // whose components are not kept).
        let mut pivots: Vec<String> = Vec::new();
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
                    pivots.extend(sel.iter().map(|_| pivot(p)));
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
                    pivots.extend(sel.iter().map(|_| pivot(p)));
                    selected.append(&mut sel);
                }
                if let Some(x) = &exclude {
                    retain_both(&mut selected, &mut pivots, |s| !x.excluded("", &s.rel));
                }
                let (d, files) = self.ctx.hash_excluding(&selected, 5000, exclude.as_ref())?;
                digest.push_str(d.as_str());
                inputs = files;
                None
            }
        };
        if let Some(x) = &exclude {
            retain_both(&mut selected, &mut pivots, |s| !x.excluded("", &s.rel));
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
        // Only set flags change the key, so entries from before they existed stay valid.
        let instruction = match (link, parents) {
            (false, false) => instruction,
            _ => format!("{instruction} link={link} parents={parents}"),
        };
        let instruction = match unpack {
            None => instruction,
            Some(u) => format!("{instruction} unpack={u}"),
        };
        // BuildKit's history text keeps --parents, --chown and --chmod (as written).
        let mut shown = String::new();
        for f in ["parents", "chown", "chmod"] {
            match ins.flag(f) {
                Some("") => shown.push_str(&format!("--{f} ")),
                Some(v) => shown.push_str(&format!("--{f}={v} ")),
                None => {}
            }
        }
        let created_by = format!("{} {shown}{} # buildkit", ins.keyword, ins.args);
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
        // A linked copy's key leaves out everything before it (its content does not depend on
        // it); the stage's chain key then folds it in, so later steps still follow it.
        let chain = st.key.clone();
        let key = if link {
            st.key = LINK_PARENT.to_string();
            cache::key(LINK_PARENT, &instruction, &digest)
        } else {
            cache::key(&st.key, &instruction, &digest)
        };
        let relink = |st: &mut State| {
            if link {
                st.key = cache::key(&chain, "LINK", &key);
            }
        };
        if self.try_cache(store, st, &key, &created_by, no_cache)? {
            relink(st);
            return Ok(());
        }
        if link {
            // Whether an earlier step was rebuilt does not matter to this one.
            let mut fresh = false;
            self.miss(store, st, &instruction, &inputs, no_cache, &mut fresh)?;
            *missed = true;
        } else {
            self.miss(store, st, &instruction, &inputs, no_cache, missed)?;
        }
        let lowers = if link { Vec::new() } else { st.lowers(store) };
        let root = StepRoot::new(store, &lowers, true)?;
        let merged = root.merged();
        let owner = match &chown {
            Some(_) if link => link_owner,
            Some(c) => {
                let u = berth_engine::user::resolve(&merged, c, &[])
                    .map_err(|e| err(format!("--chown={c}: {e}")))?;
                Some((u.uid, u.gid))
            }
            None => None,
        };
        // Without --link an existing directory receives the files; a linked copy cannot see it.
        let into_dir = dest_is_dir_syntax
            || multi
            || parents
            || (!link && step::is_dir_in(&merged, &dest_abs));
        let target_for = |name: &str| -> String {
            if into_dir {
                format!("{}/{}", dest_abs.trim_end_matches('/'), name)
            } else {
                dest_abs.clone()
            }
        };
        let mut items = Vec::new();
        let src_dir = match &src_root {
            Some(r) => r.merged(),
            None => self.ctx.root.clone(),
        };
        let mut parent_dirs: HashSet<String> = HashSet::new();
        for (s, pivot) in selected.iter().zip(&pivots) {
            let md = fs::symlink_metadata(&s.path).map_err(|e| BuildError::io(&s.path, e))?;
            let kept = parents.then(|| kept_path(pivot, &s.rel)).flatten();
            if let Some(kept) = kept {
                // `--parents`: the path below the pivot is kept, its directories copied too.
                let base = dest_abs.trim_end_matches('/');
                let comps: Vec<&str> = kept.split('/').collect();
                for i in 1..comps.len() {
                    let dir = comps[..i].join("/");
                    if parent_dirs.insert(dir.clone()) {
                        let p = context::confine(pivot);
                        items.push(Item::Dir {
                            src: src_dir.join(if p.is_empty() {
                                dir.clone()
                            } else {
                                format!("{p}/{dir}")
                            }),
                            dest: format!("{base}/{dir}"),
                        });
                    }
                }
                items.push(Item::Host {
                    src: s.path.clone(),
                    dest: format!("{base}/{kept}"),
                    recurse: false,
                    rel: (from.is_none() && md.is_dir()).then(|| s.rel.clone()),
                    src_rel: s.rel.clone(),
                });
            } else if md.is_dir() {
                items.push(Item::Host {
                    src: s.path.clone(),
                    dest: dest_abs.clone(),
                    recurse: true,
                    rel: from.is_none().then(|| s.rel.clone()),
                    src_rel: s.rel.clone(),
                });
            } else if is_add
                && from.is_none()
                && unpack != Some(false)
                && md.is_file()
                && step::is_archive(&s.path)
            {
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
        for (n, (u, data)) in downloads.into_iter().enumerate() {
            if unpack == Some(true) {
                let p = root.dir.join(format!("download-{n}"));
                fs::write(&p, &data).map_err(|e| BuildError::io(&p, e))?;
                if step::is_archive(&p) {
                    items.push(Item::Archive {
                        src: p,
                        dest: dest_abs.clone(),
                    });
                    continue;
                }
            }
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
        } else if link {
            // The destination's directories are created (owned as the files are).
            let parent = dest_abs.rsplit_once('/').map_or("", |(p, _)| p);
            step::mkdir_p_in(&merged, parent, owner.unwrap_or((0, 0)))?;
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
        self.finish_step(store, st, root, &key, &instruction, &inputs, created_by)?;
        relink(st);
        Ok(())
    }
}

/// The parent "key" of linked copies' cache entries: they follow no step.
const LINK_PARENT: &str = "link";

/// A boolean flag (`--link`, `--link=true`, `--parents=false`), spelled as Go's
/// `strconv.ParseBool` accepts (as BuildKit does).
fn bool_flag(ins: &Instruction, name: &str) -> std::result::Result<bool, String> {
    match ins.flag(name) {
        None => Ok(false),
        Some("" | "1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(v) => Err(format!("--{name}={v}: expected true or false")),
    }
}

/// `--chown` for a linked copy, where no user database can be read: `UID[:GID]` with numeric
/// IDs or `root` (BuildKit's rule; a lone UID is also the GID). `None` for names.
fn numeric_owner(c: &str) -> Option<(u32, u32)> {
    let id = |s: &str| -> Option<u32> {
        if s == "root" {
            Some(0)
        } else {
            s.parse().ok()
        }
    };
    match c.split_once(':') {
        Some((u, g)) => Some((id(u)?, id(g)?)),
        None => id(c).map(|u| (u, u)),
    }
}

/// `--parents`: the pivot of a source, the part before its first `/./` (nothing when it has
/// none: every parent directory is kept).
fn pivot(src: &str) -> String {
    src.split_once("/./")
        .map(|(p, _)| p.to_string())
        .unwrap_or_default()
}

/// `--parents`: the path kept below the destination for a source selected at `rel` (relative
/// to the context or `--from` root) whose pivot is `pivot`. `None` when nothing is kept (the
/// source is the pivot itself: its contents are copied as without `--parents`).
fn kept_path(pivot: &str, rel: &str) -> Option<String> {
    let p = context::confine(pivot);
    let rel = rel.trim_matches('/');
    let kept = if p.is_empty() {
        rel
    } else {
        rel.strip_prefix(p.as_str())?.strip_prefix('/')?
    };
    (!kept.is_empty() && kept != ".").then(|| kept.to_string())
}

/// `retain` over a selection and its parallel pivot list.
fn retain_both(
    sel: &mut Vec<Selected>,
    pivots: &mut Vec<String>,
    keep: impl Fn(&Selected) -> bool,
) {
    let mut i = 0;
    while i < sel.len() {
        if keep(&sel[i]) {
            i += 1;
        } else {
            sel.remove(i);
            pivots.remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_pivot_and_kept_path() {
        assert_eq!(pivot("x/./y/*.txt"), "x");
        assert_eq!(pivot("/out/./bin/app"), "/out");
        assert_eq!(pivot("./x/a.txt"), "");
        assert_eq!(kept_path("", "x/a.txt").as_deref(), Some("x/a.txt"));
        assert_eq!(kept_path("x", "x/y/a.txt").as_deref(), Some("y/a.txt"));
        assert_eq!(kept_path("/out", "out/bin/app").as_deref(), Some("bin/app"));
        assert_eq!(kept_path("x", "x"), None);
        assert_eq!(kept_path("", "."), None);
    }

    #[test]
    fn link_owner_is_numeric() {
        assert_eq!(numeric_owner("1000"), Some((1000, 1000)));
        assert_eq!(numeric_owner("1000:50"), Some((1000, 50)));
        assert_eq!(numeric_owner("root"), Some((0, 0)));
        assert_eq!(numeric_owner("root:7"), Some((0, 7)));
        assert_eq!(numeric_owner("app"), None);
        assert_eq!(numeric_owner("1:staff"), None);
    }
}
