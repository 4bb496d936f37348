//! Shell integration (issue 13): `berth completion bash` loaded into a real bash completes
//! subcommands and the names of the test store's containers, images, networks and volumes;
//! `berth __man DIR` writes a valid man page for berth and for every subcommand.

mod common;

use std::path::Path;
use std::process::Command;

use common::TestEnv;

/// What bash's completion offers for `line` (the words typed, the last one being completed),
/// with berth's script loaded as it is installed, `berth` found on PATH and `env` exported.
fn bash_complete(env_vars: &[(&str, &Path)], words: &[&str]) -> Vec<String> {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_berth")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let quoted: Vec<String> = words
        .iter()
        .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
        .collect();
    let cur = quoted.last().unwrap().clone();
    let prev = if quoted.len() > 1 {
        quoted[quoted.len() - 2].clone()
    } else {
        "''".into()
    };
    let script = format!(
        r#"set -e
source <(berth completion bash)
complete -p berth >/dev/null
COMP_WORDS=({words})
COMP_CWORD={cword}
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
COMP_TYPE=9
_clap_complete_berth berth {cur} {prev}
printf '%s\n' "${{COMPREPLY[@]}}"
"#,
        words = quoted.join(" "),
        cword = words.len() - 1,
    );
    let mut c = Command::new("bash");
    c.arg("--norc")
        .arg("-c")
        .arg(&script)
        .env("PATH", path)
        .env_remove("BERTH_ROOT");
    for (k, v) in env_vars {
        c.env(k, v);
    }
    let o = c.output().expect("bash runs");
    assert!(
        o.status.success(),
        "bash failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_subcommands_and_store_names() {
    let env = TestEnv::new();
    env.busybox_image("cmplimg:1");
    env.ok(&[
        "create",
        "--name",
        "cmpl-web",
        "--network=none",
        "cmplimg:1",
        "true",
    ]);
    env.ok(&["volume", "create", "cmpl-vol"]);
    let root: &[(&str, &Path)] = &[("BERTH_ROOT", &env.root)];

    // Subcommands.
    let got = bash_complete(root, &["berth", "st"]);
    for want in ["start", "stop", "stats"] {
        assert!(got.iter().any(|g| g == want), "{want} missing in {got:?}");
    }
    assert!(got.iter().all(|g| g.starts_with("st")), "{got:?}");
    let got = bash_complete(root, &["berth", "network", "co"]);
    assert_eq!(got, ["connect"]);

    // Container names for `rm`, with the store from BERTH_ROOT or from --root on the line.
    let got = bash_complete(root, &["berth", "rm", ""]);
    assert!(got.iter().any(|g| g == "cmpl-web"), "{got:?}");
    assert_eq!(bash_complete(root, &["berth", "rm", "cmpl"]), ["cmpl-web"]);
    let root_s = env.root.to_str().unwrap();
    assert_eq!(
        bash_complete(&[], &["berth", "--root", root_s, "rm", "cmpl"]),
        ["cmpl-web"]
    );
    assert_eq!(
        bash_complete(root, &["berth", "container", "start", "-a", "cm"]),
        ["cmpl-web"]
    );
    // Images, volumes and networks where those are named.
    assert_eq!(
        bash_complete(root, &["berth", "rmi", "cmpli"]),
        ["cmplimg:1"]
    );
    assert_eq!(
        bash_complete(root, &["berth", "run", "--rm", "cmpli"]),
        ["cmplimg:1"]
    );
    assert_eq!(
        bash_complete(root, &["berth", "volume", "rm", "cmpl"]),
        ["cmpl-vol"]
    );
    let got = bash_complete(root, &["berth", "run", "--network", ""]);
    for want in ["bridge", "host", "none"] {
        assert_eq!(
            got.iter().filter(|g| *g == want).count(),
            1,
            "{want} not once in {got:?}"
        );
    }
    // Options still complete.
    let got = bash_complete(root, &["berth", "rm", "--fo"]);
    assert_eq!(got, ["--force"]);
    // A store that does not exist offers no names and is not created by a Tab.
    let missing = env.path("no-store");
    let got = bash_complete(&[("BERTH_ROOT", &missing)], &["berth", "rm", "cmpl"]);
    assert!(got.is_empty(), "{got:?}");
    assert!(!missing.exists());
    env.ok(&["rm", "cmpl-web"]);
}

#[test]
fn zsh_and_fish_scripts_are_printed() {
    let env = TestEnv::new();
    let z = env.ok(&["completion", "zsh"]);
    assert!(z.starts_with("#compdef berth"), "{z}");
    assert!(z.contains("BERTH_COMPLETE=\"zsh\""), "{z}");
    let f = env.ok(&["completion", "fish"]);
    assert!(
        f.contains("complete") && f.contains("BERTH_COMPLETE=fish"),
        "{f}"
    );
    let b = env.ok(&["completion", "bash"]);
    let o = Command::new("bash")
        .args(["--norc", "-n", "-c", &b])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(env.fails(&["completion", "tcsh"]).0, 125);
}

/// The subcommands `berth [PATH…] --help` lists under "Commands:" (without `help`).
fn subcommands(env: &TestEnv, path: &[&str]) -> Vec<String> {
    let mut args: Vec<&str> = path.to_vec();
    args.push("--help");
    let help = env.ok(&args);
    let mut out = Vec::new();
    let mut inside = false;
    for l in help.lines() {
        if l == "Commands:" {
            inside = true;
            continue;
        }
        if inside {
            if !l.starts_with("  ") {
                break;
            }
            // A wrapped description continues on a deeper-indented line.
            if l.starts_with("   ") {
                continue;
            }
            let name = l.split_whitespace().next().unwrap().trim_end_matches(',');
            if name != "help" {
                out.push(name.to_string());
            }
        }
    }
    out
}

#[test]
fn man_pages_for_berth_and_every_subcommand_are_valid_roff() {
    let env = TestEnv::new();
    let dir = env.path("man1");
    env.ok(&["__man", dir.to_str().unwrap()]);
    // Every command path reachable through --help has its page.
    let mut want = vec!["berth".to_string()];
    let mut todo: Vec<Vec<String>> = vec![vec![]];
    while let Some(path) = todo.pop() {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        for s in subcommands(&env, &p) {
            let mut q = path.clone();
            q.push(s);
            want.push(format!("berth-{}", q.join("-")));
            todo.push(q);
        }
    }
    assert!(want.len() > 100, "{want:?}");
    for w in &want {
        let f = dir.join(format!("{w}.1"));
        assert!(f.exists(), "{} missing", f.display());
    }
    let pages: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert_eq!(pages.len(), want.len(), "pages for hidden commands?");
    for p in pages {
        let path = p.path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(".TH "), "{}", path.display());
        assert!(text.contains(".SH NAME"), "{}", path.display());
        // groff with every warning but line breaking: a malformed request, macro, escape or
        // font would be reported.
        let o = Command::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww", "-Wbreak", "-z"])
            .arg(&path)
            .output()
            .expect("groff (groff-base) must be installed");
        assert!(
            o.status.success() && o.stderr.is_empty(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let run = std::fs::read_to_string(dir.join("berth-run.1")).unwrap();
    assert!(
        run.contains("\\-\\-publish"),
        "berth-run.1 lists run's options"
    );
}

/// What fish's `complete -C LINE` offers (candidates without their descriptions), with berth's
/// script sourced as installed and `berth` found on PATH; `None` when fish is not installed.
fn fish_complete(root: &Path, line: &str) -> Option<Vec<String>> {
    if Command::new("fish").arg("--version").output().is_err() {
        return None;
    }
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_berth")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let o = Command::new("fish")
        .args(["--no-config", "-c"])
        .arg(format!(
            "berth completion fish | source; complete -C '{}'",
            line.replace('\'', "\\'")
        ))
        .env("PATH", path)
        .env("BERTH_ROOT", root)
        .output()
        .expect("fish runs");
    assert!(
        o.status.success(),
        "fish failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Some(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap_or("").to_string())
            .filter(|l| !l.is_empty())
            .collect(),
    )
}

#[test]
fn fish_completes_subcommands_and_store_names_and_zsh_script_parses() {
    let env = TestEnv::new();
    env.busybox_image("fishimg:1");
    env.ok(&[
        "create",
        "--name",
        "fish-web",
        "--network=none",
        "fishimg:1",
        "true",
    ]);
    env.ok(&["volume", "create", "fish-vol"]);
    // setup.sh installs fish and zsh; without them (a developer machine) there is nothing to run.
    if let Some(got) = fish_complete(&env.root, "berth st") {
        for want in ["start", "stats", "stop"] {
            assert!(got.iter().any(|g| g == want), "{want} missing in {got:?}");
        }
        assert_eq!(
            fish_complete(&env.root, "berth rm fish").unwrap(),
            ["fish-web"]
        );
        assert_eq!(
            fish_complete(&env.root, "berth rmi fishi").unwrap(),
            ["fishimg:1"]
        );
        assert_eq!(
            fish_complete(&env.root, "berth volume rm fish").unwrap(),
            ["fish-vol"]
        );
    }
    if Command::new("zsh").arg("--version").output().is_ok() {
        let z = env.ok(&["completion", "zsh"]);
        let o = Command::new("zsh")
            .args(["-f", "-n", "-c", &z])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    env.ok(&["rm", "fish-web"]);
}
