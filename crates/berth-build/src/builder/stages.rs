//! Running stages: which ones the target needs, in dependency waves (independent ones in parallel), and each stage's instructions.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Instant;

use berth_image::{Image, ImageStore};
use berth_store::Store;

use super::{build_arg, check_platform, scratch_state, state_of_image, Build, State, STEP};
use crate::expand;
use crate::instr;
use crate::parser::{self, Instruction};
use crate::{BuildError, Event, Result};

impl Build<'_> {
    pub(super) fn emit(&self, e: Event<'_>) {
        self.progress.event(STEP.with(Cell::get), e);
    }

    /// Start a new step number for this thread.
    pub(super) fn begin_step(&self) {
        let n = self.next_step.fetch_add(1, Ordering::SeqCst);
        STEP.with(|s| s.set(n));
    }
    pub(super) fn stage_by_ref(&self, r: &str, before: usize) -> Option<usize> {
        let l = r.to_ascii_lowercase();
        if let Ok(n) = l.parse::<usize>() {
            return (n < before).then_some(n);
        }
        self.stages[..before]
            .iter()
            .position(|s| s.name.as_deref() == Some(l.as_str()))
    }

    /// Stages `target` depends on (FROM another stage, COPY --from, RUN --mount from=), plus itself.
    pub(super) fn needed(&self, target: usize) -> Vec<usize> {
        let mut need = HashSet::new();
        let mut todo = vec![target];
        while let Some(i) = todo.pop() {
            if !need.insert(i) {
                continue;
            }
            let s = &self.stages[i];
            let lookup =
                |n: &str| build_arg(self.opts, n).or_else(|| self.global_args.get(n).cloned());
            if let Some(d) = self.stage_by_ref(&s.base, i) {
                todo.push(d);
            }
            for ins in &s.body {
                let mut refs: Vec<String> = Vec::new();
                if let Some(f) = ins.flag("from") {
                    refs.push(f.to_string());
                }
                for m in ins.flag_all("mount") {
                    if let Some(f) = instr::csv_opts(m).get("from") {
                        refs.push(f.clone());
                    }
                }
                for r in refs {
                    let r = expand::word(&r, &lookup, self.escape).unwrap_or(r);
                    if let Some(d) = self.stage_by_ref(&r, i) {
                        todo.push(d);
                    }
                }
            }
        }
        let mut v: Vec<usize> = need.into_iter().collect();
        v.sort_unstable();
        v
    }

    /// Build `needed` stages; independent ones in parallel (each thread opens its own store).
    pub(super) fn run_stages(&self, store: &Store, needed: &[usize]) -> Result<()> {
        if needed.len() == 1 {
            let st = self.run_stage(store, needed[0])?;
            self.done
                .lock()
                .map_err(|_| BuildError::Other("lock".into()))?
                .insert(needed[0], st);
            return Ok(());
        }
        // Waves: a stage runs once every stage it needs is done.
        let deps: HashMap<usize, Vec<usize>> = needed
            .iter()
            .map(|&i| {
                let d: Vec<usize> = self.needed(i).into_iter().filter(|&j| j != i).collect();
                (i, d)
            })
            .collect();
        let mut remaining: Vec<usize> = needed.to_vec();
        let root = store.root().to_path_buf();
        while !remaining.is_empty() {
            let ready: Vec<usize> = {
                let done = self
                    .done
                    .lock()
                    .map_err(|_| BuildError::Other("lock".into()))?;
                remaining
                    .iter()
                    .copied()
                    .filter(|i| deps[i].iter().all(|d| done.contains_key(d)))
                    .collect()
            };
            if ready.is_empty() {
                return Err(BuildError::Other(
                    "stages depend on each other in a cycle".into(),
                ));
            }
            remaining.retain(|i| !ready.contains(i));
            if ready.len() == 1 {
                let st = self.run_stage(store, ready[0])?;
                self.done
                    .lock()
                    .map_err(|_| BuildError::Other("lock".into()))?
                    .insert(ready[0], st);
                continue;
            }
            let results: Vec<(usize, Result<State>)> = std::thread::scope(|s| {
                let hs: Vec<_> = ready
                    .iter()
                    .map(|&i| {
                        let root = root.clone();
                        s.spawn(move || {
                            let r = Store::open(&root)
                                .map_err(BuildError::from)
                                .and_then(|st| self.run_stage(&st, i));
                            (i, r)
                        })
                    })
                    .collect();
                hs.into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            (
                                usize::MAX,
                                Err(BuildError::Other("a build thread panicked".into())),
                            )
                        })
                    })
                    .collect()
            });
            for (i, r) in results {
                let st = r?;
                self.done
                    .lock()
                    .map_err(|_| BuildError::Other("lock".into()))?
                    .insert(i, st);
            }
        }
        Ok(())
    }

    pub(super) fn count(&self, cached: bool) {
        if let Ok(mut c) = self.counts.lock() {
            if cached {
                c.0 += 1;
            } else {
                c.1 += 1;
            }
        }
    }

    /// Resolve an image reference in the store, pulling it if allowed and needed.
    pub(super) fn image(&self, store: &Store, name: &str) -> Result<Image> {
        let images = ImageStore::open(store)?;
        let want_pull = self.opts.pull
            && !self
                .pulled
                .lock()
                .map(|p| p.contains(name))
                .unwrap_or(false);
        if !want_pull {
            match images.resolve(name) {
                Ok(i) => return Ok(i),
                Err(berth_image::ImageError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let Some(src) = self.source else {
            return Err(BuildError::BaseImage(name.to_string()));
        };
        self.emit(Event::Note(&format!("pulling {name}")));
        src.pull(name)
            .map_err(|e| BuildError::Other(format!("pulling base image {name:?}: {e}")))?;
        if let Ok(mut p) = self.pulled.lock() {
            p.insert(name.to_string());
        }
        Ok(images.resolve(name)?)
    }

    pub(super) fn run_stage(&self, store: &Store, idx: usize) -> Result<State> {
        let stage = &self.stages[idx];
        let label = stage.label();
        let total = stage.body.len() + 1;
        let t0 = Instant::now();
        self.begin_step();
        self.emit(Event::Step {
            stage: &label,
            n: 1,
            total,
            text: &stage.from.text(),
        });
        let mut st = if let Some(dep) = self.stage_by_ref(&stage.base, idx) {
            let done = self
                .done
                .lock()
                .map_err(|_| BuildError::Other("lock".into()))?;
            let mut s = done
                .get(&dep)
                .cloned()
                .ok_or_else(|| BuildError::Other(format!("stage {dep} was not built")))?;
            s.args.clear();
            s.cmd_set = false;
            s
        } else if stage.base.eq_ignore_ascii_case("scratch") {
            scratch_state()
        } else {
            let img = self.image(store, &stage.base).map_err(|e| match e {
                BuildError::BaseImage(_) | BuildError::Other(_) => BuildError::Instruction {
                    file: self.file.clone(),
                    line: stage.from.line,
                    msg: e.to_string(),
                },
                e => e,
            })?;
            let arch = img.architecture();
            if !arch.is_empty() && check_platform(&format!("linux/{arch}")).is_err() {
                return Err(BuildError::Instruction {
                    file: self.file.clone(),
                    line: stage.from.line,
                    msg: format!(
                        "FROM {}: the image is for linux/{arch}, but berth builds only for this host's platform (linux/{}): RUN steps run natively, without emulation; use an image for linux/{}",
                        stage.base,
                        berth_image::archive::host_arch(),
                        berth_image::archive::host_arch()
                    ),
                });
            }
            state_of_image(&img)
        };
        self.emit(Event::Done(t0.elapsed().as_secs_f64()));
        // ONBUILD triggers of the base image run first.
        let triggers: Vec<String> = st
            .config
            .remove("OnBuild")
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let mut body: Vec<Instruction> = Vec::new();
        for t in &triggers {
            let t = t.trim();
            let (kw, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
            let mut ins =
                parser::parse_rest(&self.file, stage.from.line, &kw.to_ascii_uppercase(), rest)?;
            // Heredocs inside a trigger: re-parse the trigger text as a small Dockerfile.
            if !parser::heredoc_starts(&ins.args).is_empty() {
                if let Ok(d) = parser::parse(&self.file, t) {
                    if let Some(i) = d.instructions.into_iter().next() {
                        ins = Instruction {
                            line: stage.from.line,
                            ..i
                        };
                    }
                }
            }
            body.push(ins);
        }
        body.extend(stage.body.iter().cloned());
        let total = body.len() + 1;
        let no_cache = self.opts.no_cache
            || self
                .opts
                .no_cache_filter
                .iter()
                .any(|f| f.eq_ignore_ascii_case(&label) || *f == idx.to_string());
        let mut missed = no_cache;
        for (n, ins) in body.iter().enumerate() {
            let t = Instant::now();
            self.begin_step();
            self.emit(Event::Step {
                stage: &label,
                n: n + 2,
                total,
                text: &ins.text(),
            });
            self.instruction(
                store,
                stage,
                &mut st,
                ins,
                no_cache,
                &mut missed,
                n + 2,
                total,
            )?;
            self.emit(Event::Done(t.elapsed().as_secs_f64()));
        }
        Ok(st)
    }

    pub(super) fn vars<'s>(&self, st: &'s State) -> impl Fn(&str) -> Option<String> + 's {
        move |n: &str| st.lookup(n)
    }
}
