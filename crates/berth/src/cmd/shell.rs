//! Shell integration: completion scripts for bash, zsh and fish (`berth completion SHELL`),
//! the dynamic completions they ask for (container, image, network and volume names read
//! from the store), and man pages (`berth __man DIR`).
//!
//! The scripts are clap_complete's dynamic ("env") registrations: on Tab the shell runs
//! `BERTH_COMPLETE=SHELL berth -- WORDS…` and berth answers from its own command
//! definition, so completions never drift from the parser and names come from the store
//! the command line would use (`--root` on the line, else `BERTH_ROOT`, else the default).

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result};
use berth_store::Store;
use clap::{Args, ValueEnum};
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};
use clap_complete::env::{Bash, CompleteEnv, EnvCompleter, Fish, Zsh};

/// The environment variable that switches berth into answering a completion request.
pub const COMPLETE_VAR: &str = "BERTH_COMPLETE";

/// The program name the scripts complete and call.
const BIN: &str = "berth";

/// A shell berth writes a completion script for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ShellKind {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to write the script for.
    pub shell: ShellKind,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write berth.1 and one berth-COMMAND.1 per subcommand into (created if missing).
    pub dir: PathBuf,
}

/// The store root a completion request reads names from.
static ROOT: OnceLock<PathBuf> = OnceLock::new();

/// Answer a completion request and exit when `BERTH_COMPLETE` is set; otherwise return.
pub fn complete_if_asked(argv: &[OsString], factory: fn() -> clap::Command) {
    if std::env::var_os(COMPLETE_VAR).is_none_or(|v| v.is_empty() || v == "0") {
        return;
    }
    let _ = ROOT.set(root_of_line(argv));
    let current_dir = std::env::current_dir().ok();
    let done = CompleteEnv::with_factory(factory)
        .var(COMPLETE_VAR)
        .bin(BIN)
        .try_complete(argv.iter().cloned(), current_dir.as_deref())
        .unwrap_or_else(|e| e.exit());
    if done {
        std::process::exit(0);
    }
}

/// The store root named by the words being completed (`berth -- berth --root DIR …`), else
/// `BERTH_ROOT`, else the default root.
fn root_of_line(argv: &[OsString]) -> PathBuf {
    let words = argv
        .iter()
        .skip_while(|a| *a != "--")
        .skip(1)
        .map(|a| a.to_string_lossy());
    let mut root = None;
    let mut next_is_root = false;
    for w in words {
        if next_is_root {
            root = Some(PathBuf::from(w.as_ref()));
            next_is_root = false;
        } else if w == "--root" {
            next_is_root = true;
        } else if let Some(r) = w.strip_prefix("--root=") {
            root = Some(PathBuf::from(r));
        }
    }
    root.or_else(|| std::env::var_os("BERTH_ROOT").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(berth_store::DEFAULT_ROOT))
}

/// The store for completion, only if one exists there (a Tab never creates a store) and can
/// be opened by this user.
fn completion_store() -> Option<Store> {
    let root = ROOT.get()?;
    if !Path::new(root).join("berth.db").exists() {
        return None;
    }
    Store::open(root).ok()
}

fn candidates(names: Vec<String>) -> Vec<CompletionCandidate> {
    let mut names = names;
    names.sort();
    names.dedup();
    names.into_iter().map(CompletionCandidate::new).collect()
}

fn container_names() -> Vec<CompletionCandidate> {
    let Some(store) = completion_store() else {
        return vec![];
    };
    let names = berth_engine::state::all(&store)
        .map(|cs| cs.into_iter().map(|c| c.name).collect())
        .unwrap_or_default();
    candidates(names)
}

fn image_names() -> Vec<CompletionCandidate> {
    let Some(store) = completion_store() else {
        return vec![];
    };
    let names = berth_image::ImageStore::open(&store)
        .and_then(|is| is.list())
        .map(|imgs| imgs.iter().flat_map(|i| i.familiar_tags()).collect())
        .unwrap_or_default();
    candidates(names)
}

fn network_names() -> Vec<CompletionCandidate> {
    let Some(store) = completion_store() else {
        return vec![];
    };
    let names = berth_net::list_shown(&store)
        .map(|ns| ns.iter().map(|n| n.name().to_string()).collect())
        .unwrap_or_default();
    candidates(names)
}

fn volume_names() -> Vec<CompletionCandidate> {
    let Some(store) = completion_store() else {
        return vec![];
    };
    let names = berth_volume::VolumeStore::open(&store)
        .and_then(|vs| vs.list())
        .map(|vs| vs.into_iter().map(|v| v.name).collect())
        .unwrap_or_default();
    candidates(names)
}

/// Completes an argument with the names of the store's containers.
pub fn containers() -> ArgValueCandidates {
    ArgValueCandidates::new(container_names)
}

/// Completes an argument with the store's image references (`name:tag`).
pub fn images() -> ArgValueCandidates {
    ArgValueCandidates::new(image_names)
}

/// Completes an argument with the names of the store's networks.
pub fn networks() -> ArgValueCandidates {
    ArgValueCandidates::new(network_names)
}

/// Completes an argument with the names of the store's volumes.
pub fn volumes() -> ArgValueCandidates {
    ArgValueCandidates::new(volume_names)
}

/// Write the completion script for a shell (`berth completion bash`).
pub fn script(shell: ShellKind, out: &mut dyn Write) -> std::io::Result<()> {
    let completer: &dyn EnvCompleter = match shell {
        ShellKind::Bash => &Bash,
        ShellKind::Zsh => &Zsh,
        ShellKind::Fish => &Fish,
    };
    completer.write_registration(COMPLETE_VAR, BIN, BIN, BIN, out)?;
    if let ShellKind::Zsh = shell {
        // Installed in an fpath directory the file is autoloaded as the function `_berth` on
        // the first Tab: complete that Tab too, not only register for the next ones.
        writeln!(
            out,
            "if [[ \"${{funcstack[1]}}\" == \"_{BIN}\" ]]; then _clap_dynamic_completer_{BIN} \"$@\"; fi"
        )?;
    }
    Ok(())
}

/// `berth completion SHELL`: print the script to stdout.
pub fn completion(a: CompletionArgs) -> Result<i32> {
    let mut out = std::io::stdout().lock();
    script(a.shell, &mut out)?;
    out.flush()?;
    Ok(0)
}

/// `berth __man DIR`: write berth.1 and one page per visible subcommand (berth-run.1,
/// berth-network-create.1, …) into `dir`.
pub fn man(cmd: clap::Command, a: ManArgs) -> Result<i32> {
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("cannot create {}", a.dir.display()))?;
    clap_mangen::generate_to(cmd, &a.dir)
        .with_context(|| format!("cannot write man pages into {}", a.dir.display()))?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every argument naming store objects completes them; options with other values do not.
    #[test]
    fn name_arguments_complete_store_objects() {
        fn find(cmd: &clap::Command, path: &[&str], id: &str) -> bool {
            let mut c = cmd;
            for p in path {
                c = c.find_subcommand(p).unwrap_or_else(|| panic!("no {p}"));
            }
            let a = c
                .get_arguments()
                .find(|a| a.get_id() == id)
                .unwrap_or_else(|| panic!("no {id} in {path:?}"));
            a.get::<ArgValueCandidates>().is_some()
        }
        let cmd = crate::cli_command();
        for (path, id) in [
            (&["rm"][..], "containers"),
            (&["logs"], "container"),
            (&["exec"], "container"),
            (&["container", "stop"], "containers"),
            (&["run"], "image"),
            (&["run"], "network"),
            (&["run"], "volumes_from"),
            (&["rmi"], "images"),
            (&["tag"], "source"),
            (&["image", "exists"], "name"),
            (&["inspect"], "names"),
            (&["network", "rm"], "names"),
            (&["network", "connect"], "network"),
            (&["network", "connect"], "container"),
            (&["volume", "rm"], "names"),
            (&["volume", "inspect"], "names"),
        ] {
            assert!(find(&cmd, path, id), "{path:?} {id}");
        }
        for (path, id) in [
            (&["run"][..], "name"),
            (&["run"], "volume"),
            (&["network", "create"], "name"),
            (&["volume", "create"], "name"),
            (&["tag"], "target"),
        ] {
            assert!(!find(&cmd, path, id), "{path:?} {id}");
        }
    }

    fn argv(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn root_comes_from_the_line_being_completed() {
        assert_eq!(
            root_of_line(&argv(&["berth", "--", "berth", "--root", "/x", "rm", ""])),
            PathBuf::from("/x")
        );
        assert_eq!(
            root_of_line(&argv(&["berth", "--", "berth", "--root=/y", "rm", ""])),
            PathBuf::from("/y")
        );
    }

    #[test]
    fn scripts_name_berth_and_the_variable() {
        for shell in [ShellKind::Bash, ShellKind::Zsh, ShellKind::Fish] {
            let mut buf = Vec::new();
            script(shell, &mut buf).unwrap();
            let s = String::from_utf8(buf).unwrap();
            assert!(s.contains(COMPLETE_VAR), "{shell:?}: {s}");
            assert!(s.contains("berth"), "{shell:?}: {s}");
        }
    }
}

/// What an argument names, for its completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Names {
    Containers,
    Images,
    ContainersAndImages,
    Networks,
    /// `--network`: a network's name or a mode (`host`, `none`, `bridge`).
    NetworkModes,
    Volumes,
}

/// The names an argument takes: `path` is the subcommand path (`["network", "rm"]`), `id`
/// the argument's id, `positional` whether it is one. Compose and SIF arguments name
/// services and files, not store objects.
fn names_for(path: &[&str], id: &str, positional: bool) -> Option<Names> {
    let leaf = *path.last()?;
    let group = path.len().checked_sub(2).map(|i| path[i]);
    if matches!(path.first(), Some(&"compose" | &"sif")) {
        return None;
    }
    match id {
        "container" | "containers" | "volumes_from" => Some(Names::Containers),
        "network" if positional => Some(Names::Networks),
        "network" => Some(Names::NetworkModes),
        "image" | "images" => Some(Names::Images),
        "source" if leaf == "tag" => Some(Names::Images),
        "reference" if matches!(leaf, "images" | "ls" | "list") => Some(Names::Images),
        "name" | "names" if positional && matches!(leaf, "exists" | "inspect" | "rm") => {
            match group {
                Some("network") => Some(Names::Networks),
                Some("volume") => Some(Names::Volumes),
                Some("image") => Some(Names::Images),
                Some("container") => Some(Names::Containers),
                None if leaf == "inspect" => Some(Names::ContainersAndImages),
                _ => None,
            }
        }
        _ => None,
    }
}

fn candidates_for(n: Names) -> ArgValueCandidates {
    match n {
        Names::Containers => containers(),
        Names::Images => images(),
        Names::ContainersAndImages => ArgValueCandidates::new(|| {
            let mut c = container_names();
            c.extend(image_names());
            c
        }),
        Names::Networks => networks(),
        Names::NetworkModes => ArgValueCandidates::new(|| {
            // The predefined networks, also without a store (they are listed with one).
            let mut c = network_names();
            for m in ["bridge", "host", "none"] {
                if !c.iter().any(|x| x.get_value() == m) {
                    c.push(CompletionCandidate::new(m));
                }
            }
            c
        }),
        Names::Volumes => volumes(),
    }
}

/// Attach name completion to every argument that takes container, image, network or volume
/// names (see [`names_for`]).
pub fn with_name_completion(cmd: clap::Command) -> clap::Command {
    fn walk(cmd: clap::Command, path: &mut Vec<String>) -> clap::Command {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        let cmd = cmd.mut_args(|a| {
            let positional = a.get_long().is_none() && a.get_short().is_none();
            match names_for(&p, a.get_id().as_str(), positional) {
                Some(n) => a.add(candidates_for(n)),
                None => a,
            }
        });
        let subs: Vec<String> = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        let mut cmd = cmd;
        for name in subs {
            path.push(name.clone());
            cmd = cmd.mut_subcommand(&name, |s| walk(s, path));
            path.pop();
        }
        cmd
    }
    walk(cmd, &mut Vec::new())
}
