//! `RUN` steps: the process, its mounts, and its container on berth's runtime.

use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Instant;

use berth_engine::config::{Bind, ContainerConfig, RestartPolicy, Tmpfs};
use berth_image::layer_dir;
use berth_net::{Attachment, NetworkMode};
use berth_store::Store;
use serde_json::json;

use super::{build_arg, ins_err, normalize_abs, Build, Stage, State, STEP};
use crate::cache;
use crate::context;
use crate::expand;
use crate::instr::{self, Mount, Sharing};
use crate::parser::{self, Instruction};
use crate::step::{self, StepRoot};
use crate::{BuildError, Event, Network, Result};

/// Default PATH for RUN when the image sets none (Docker's).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Proxy args are passed to RUN without a declaration.
const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

impl Build<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn run(
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
        let err = |m: String| ins_err(&self.file, ins, m);
        let shell = st.shell();
        // The process: exec form, shell form, or a heredoc script.
        let mut script: Option<(String, String)> = None;
        let args: Vec<String> = if let Some(j) = &ins.json {
            j.clone()
        } else if ins.heredocs.len() == 1
            && ins.args.trim().starts_with("<<")
            && parser::heredoc_starts(&ins.args).len() == 1
            && ins.args.split_whitespace().count() == 1
        {
            let h = &ins.heredocs[0];
            if h.content.starts_with("#!") {
                script = Some((h.name.clone(), h.content.clone()));
                vec![format!("/dev/pipes/{}", h.name)]
            } else {
                let mut v = shell.clone();
                v.push(h.content.clone());
                v
            }
        } else {
            let mut text = ins.args.clone();
            text.push('\n');
            for h in &ins.heredocs {
                text.push_str(&h.raw);
            }
            let mut v = shell.clone();
            v.push(text.trim_end_matches('\n').to_string());
            v
        };
        let mounts: Vec<Mount> = ins
            .flag_all("mount")
            .iter()
            .map(|m| {
                let m = expand::word(m, &self.vars(st), self.escape).map_err(err)?;
                instr::mount(&m).map_err(err)
            })
            .collect::<Result<_>>()?;
        let network = match ins.flag("network") {
            Some(n) => Network::parse(n).map_err(|e| err(e.to_string()))?,
            None => self.opts.network,
        };
        // Environment: ENV, then ARGs not shadowed by ENV.
        let mut env: Vec<String> = st.env().iter().map(|(k, v)| format!("{k}={v}")).collect();
        let env_keys: HashSet<String> = st.env().into_iter().map(|(k, _)| k).collect();
        for (k, v) in &st.args {
            if !env_keys.contains(k) {
                env.push(format!("{k}={v}"));
            }
        }
        for p in PROXY_ARGS {
            if let Some(v) = build_arg(self.opts, p) {
                if !env_keys.contains(*p) && !st.args.contains_key(*p) {
                    env.push(format!("{p}={v}"));
                }
            }
        }
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, format!("PATH={DEFAULT_PATH}"));
        }
        let created_by = format!(
            "RUN {} # buildkit",
            if ins.json.is_some() {
                json!(args).to_string()
            } else {
                args.join(" ")
            }
        );
        // Inputs of bind mounts from the context are part of the key.
        let mut inputs = BTreeMap::new();
        let mut input_digest = String::new();
        for m in &mounts {
            if let Mount::Bind {
                source, from: None, ..
            } = m
            {
                let sel = self
                    .ctx
                    .select(if source.is_empty() { "." } else { source })?;
                let (d, files) = self.ctx.hash(&sel, 2000)?;
                input_digest.push_str(d.as_str());
                inputs.extend(files);
            } else if let Mount::Bind { from: Some(f), .. } = m {
                let (_, k) = self.layers_of_ref(store, stage, f)?;
                input_digest.push_str(&k);
            }
        }
        let instruction = format!(
            "RUN {} mounts={:?} network={:?} user={} workdir={}",
            json!(args),
            mounts,
            network,
            st.str_field("User"),
            st.str_field("WorkingDir")
        );
        let key = cache::key(&st.key, &instruction, &input_digest);
        if self.try_cache(store, st, &key, &created_by, no_cache)? {
            return Ok(());
        }
        self.miss(store, st, &instruction, &inputs, no_cache, missed)?;
        // Execute.
        let root = StepRoot::new(store, &st.lowers(store), true)?;
        let merged = root.merged();
        let workdir = st.str_field("WorkingDir");
        let user = st.str_field("User");
        if !workdir.is_empty() {
            step::mkdir_p_in(&merged, &workdir, (0, 0))?;
        }
        let mut binds = Vec::new();
        let mut tmpfs = Vec::new();
        // Locks of `sharing=locked|private` cache mounts, held until the step ends.
        let mut cache_locks: Vec<fs::File> = Vec::new();
        let mut stubs: Vec<String> = vec![
            "/etc/hosts".into(),
            "/etc/resolv.conf".into(),
            "/etc/hostname".into(),
            "/proc".into(),
            "/sys".into(),
            "/dev".into(),
        ];
        let mut keep_alive: Vec<StepRoot> = Vec::new();
        let abs = |t: &str| -> String {
            if t.starts_with('/') {
                t.to_string()
            } else {
                normalize_abs(&format!(
                    "{}/{t}",
                    if workdir.is_empty() { "/" } else { &workdir }
                ))
            }
        };
        for m in &mounts {
            match m {
                Mount::Bind {
                    target,
                    source,
                    from,
                    rw,
                } => {
                    let (base, src_rel) = match from {
                        None => (self.ctx.root.clone(), context::confine(source)),
                        Some(f) => {
                            let (layers, _) = self.layers_of_ref(store, stage, f)?;
                            let lowers: Vec<PathBuf> = layers
                                .iter()
                                .map(|l| layer_dir(store, &l.diff_id))
                                .collect();
                            let r = StepRoot::new(store, &lowers, false)?;
                            let m = r.merged();
                            keep_alive.push(r);
                            (m, context::confine(source))
                        }
                    };
                    let mut src = base.join(&src_rel);
                    if !step::exists_in(&base, &src_rel) {
                        return Err(err(format!("--mount source {source:?} does not exist")));
                    }
                    if *rw {
                        // Writes are thrown away: an overlay over the source.
                        if src.is_dir() {
                            let r = StepRoot::new(store, &[src.clone()], true)?;
                            src = r.merged();
                            keep_alive.push(r);
                        }
                    }
                    stubs.push(abs(target));
                    binds.push(Bind {
                        source: src.to_string_lossy().into_owned(),
                        destination: abs(target),
                        read_only: !rw,
                        propagation: None,
                    });
                }
                Mount::Cache {
                    target,
                    id,
                    mode,
                    uid,
                    gid,
                    sharing,
                } => {
                    let base = store
                        .root()
                        .join("build-cache-mounts")
                        .join(&cache::key("", id, "")[..32]);
                    let d = match sharing {
                        Sharing::Shared => base,
                        Sharing::Locked => {
                            cache_locks.push(lock_cache_dir(&base, true)?.ok_or_else(|| {
                                BuildError::Other("locking a cache mount".into())
                            })?);
                            base
                        }
                        Sharing::Private => {
                            // The first instance no other step holds (BuildKit keeps the
                            // extra instances for later builds too).
                            let mut chosen = None;
                            for n in 0..64 {
                                let cand = if n == 0 {
                                    base.clone()
                                } else {
                                    PathBuf::from(format!("{}-{n}", base.display()))
                                };
                                if let Some(l) = lock_cache_dir(&cand, false)? {
                                    cache_locks.push(l);
                                    chosen = Some(cand);
                                    break;
                                }
                            }
                            chosen.ok_or_else(|| {
                                err(format!("--mount id={id}: every private instance is busy"))
                            })?
                        }
                    };
                    if !d.exists() {
                        fs::create_dir_all(&d).map_err(|e| BuildError::io(&d, e))?;
                        let _ = rustix::fs::chmod(&d, rustix::fs::Mode::from_raw_mode(*mode));
                        let _ = rustix::fs::chown(
                            &d,
                            Some(rustix::fs::Uid::from_raw(*uid)),
                            Some(rustix::fs::Gid::from_raw(*gid)),
                        );
                    }
                    stubs.push(abs(target));
                    binds.push(Bind {
                        source: d.to_string_lossy().into_owned(),
                        destination: abs(target),
                        read_only: false,
                        propagation: None,
                    });
                }
                Mount::Tmpfs { target, size } => {
                    stubs.push(abs(target));
                    let mut options = vec!["exec".to_string()];
                    if let Some(s) = size {
                        options.push(format!("size={s}"));
                    }
                    tmpfs.push(Tmpfs {
                        destination: abs(target),
                        options,
                    });
                }
                Mount::Secret {
                    id,
                    target,
                    required,
                } => match self.opts.secrets.get(id) {
                    Some(src) => {
                        stubs.push(abs(target));
                        binds.push(Bind {
                            source: src.to_string_lossy().into_owned(),
                            destination: abs(target),
                            read_only: true,
                            propagation: None,
                        });
                    }
                    None if *required => {
                        return Err(err(format!(
                            "secret {id:?} is required: pass --secret id={id},src=FILE"
                        )))
                    }
                    None => {}
                },
            }
        }
        let script_dir;
        if let Some((name, content)) = &script {
            script_dir = root.dir.join("pipes");
            fs::create_dir_all(&script_dir).map_err(|e| BuildError::io(&script_dir, e))?;
            let p = script_dir.join(name);
            fs::write(&p, content).map_err(|e| BuildError::io(&p, e))?;
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755))
                .map_err(|e| BuildError::io(&p, e))?;
            binds.push(Bind {
                source: script_dir.to_string_lossy().into_owned(),
                destination: "/dev/pipes".into(),
                read_only: true,
                propagation: None,
            });
        }
        // Mount points the runtime creates must not end up in the layer: note what is missing.
        // The directories they go into are copied up to the upper dir (`/etc` for
        // `/etc/hosts`): note their attributes, to drop them again if nothing else changed.
        let mut created_stubs: Vec<String> = Vec::new();
        let mut stub_parents: Vec<(String, step::DirAttrs)> = Vec::new();
        for s in &stubs {
            let mut p = String::new();
            for c in s.split('/').filter(|c| !c.is_empty()) {
                let parent = p.clone();
                p.push('/');
                p.push_str(c);
                if !step::exists_in(&merged, &p) {
                    if !created_stubs.contains(&p) {
                        created_stubs.push(p.clone());
                    }
                    if !parent.is_empty() && !stub_parents.iter().any(|(d, _)| *d == parent) {
                        if let Some(a) = step::dir_attrs_in(&merged, &parent) {
                            stub_parents.push((parent, a));
                        }
                    }
                }
            }
        }
        let id = format!(
            "b{}",
            &cache::key(&key, &format!("{:?}", Instant::now()), "")[..31]
        );
        let cfg = ContainerConfig {
            args: args.clone(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            env,
            working_dir: if workdir.is_empty() {
                "/".into()
            } else {
                workdir.clone()
            },
            user,
            hostname: "buildkitsandbox".into(),
            domainname: String::new(),
            tty: false,
            open_stdin: false,
            binds,
            tmpfs,
            read_only: false,
            network: match network {
                Network::Bridge => NetworkMode::Networks(vec![Attachment {
                    network: "bridge".into(),
                    aliases: Vec::new(),
                }]),
                Network::None => NetworkMode::None,
                Network::Host => NetworkMode::Host,
            },
            publish: Vec::new(),
            publish_all: Vec::new(),
            dns: Vec::new(),
            dns_search: Vec::new(),
            dns_options: Vec::new(),
            group_add: Vec::new(),
            add_hosts: Vec::new(),
            memory: None,
            nano_cpus: None,
            pids_limit: None,
            restart: RestartPolicy::default(),
            init: false,
            runtime: self.opts.runtime.clone(),
            labels: BTreeMap::new(),
            stop_signal: "SIGTERM".into(),
            stop_timeout: 10,
            auto_remove: false,
            security: Default::default(),
            volumes: Vec::new(),
            healthcheck: None,
            log_config: Default::default(),
            resources: Default::default(),
            namespaces: Default::default(),
            extra: Default::default(),
        };
        let code = self.exec(store, &id, &root, &cfg).map_err(|e| match e {
            BuildError::Engine(e) => err(e.to_string()),
            e => e,
        })?;
        drop(keep_alive);
        drop(cache_locks);
        if code != 0 {
            return Err(BuildError::StepFailed {
                file: self.file.clone(),
                line: ins.line,
                step: format!("[{} {n}/{total}]", stage.label()),
                text: ins.text(),
                code,
            });
        }
        let mut root = root;
        root.unmount()?;
        for s in created_stubs.iter().rev() {
            step::remove_stub(&root.upper(), s);
        }
        // Deepest first, so a parent emptied by its child's removal goes too.
        stub_parents.sort_by_key(|(d, _)| std::cmp::Reverse(d.len()));
        for (d, attrs) in &stub_parents {
            step::remove_unchanged_copy_up(&root.upper(), d, *attrs);
        }
        self.finish_step(store, st, root, &key, &instruction, &inputs, created_by)
    }

    /// Run the step's process, forwarding its output to the progress view.
    pub(super) fn exec(
        &self,
        store: &Store,
        id: &str,
        root: &StepRoot,
        cfg: &ContainerConfig,
    ) -> Result<i32> {
        let (r, w): (OwnedFd, OwnedFd) =
            rustix::pipe::pipe().map_err(|e| BuildError::Other(format!("pipe: {e}")))?;
        let merged = root.merged();
        let bundle = root.bundle();
        crate::recover::set_container(store, &root.dir, id, cfg.runtime.as_deref())?;
        std::thread::scope(|s| {
            let progress = self.progress;
            let sid = STEP.with(Cell::get);
            let reader = s.spawn(move || {
                let mut f = fs::File::from(r);
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match f.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => progress.event(sid, Event::Output(&buf[..n])),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            });
            let res = berth_engine::oneshot::run(
                store,
                berth_engine::oneshot::OneshotRequest {
                    id,
                    dir: &bundle,
                    rootfs: &merged,
                    config: cfg,
                    output: w,
                },
            );
            let _ = reader.join();
            Ok(res?)
        })
    }
}

/// Lock the cache mount directory `dir` (through `DIR.lock`): waiting when `wait`, else
/// `None` if another step holds it.
fn lock_cache_dir(dir: &std::path::Path, wait: bool) -> Result<Option<fs::File>> {
    let p = PathBuf::from(format!("{}.lock", dir.display()));
    if let Some(parent) = p.parent() {
        fs::create_dir_all(parent).map_err(|e| BuildError::io(parent, e))?;
    }
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| BuildError::io(&p, e))?;
    let op = if wait {
        rustix::fs::FlockOperation::LockExclusive
    } else {
        rustix::fs::FlockOperation::NonBlockingLockExclusive
    };
    match rustix::fs::flock(&f, op) {
        Ok(()) => Ok(Some(f)),
        Err(rustix::io::Errno::WOULDBLOCK) if !wait => Ok(None),
        Err(e) => Err(BuildError::io(&p, e.into())),
    }
}
