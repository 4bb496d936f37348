//! One case of the compose corpus (tests/corpus/NAME): the directory with the compose
//! file(s), optionally `args` (`-f A -f B`, `-p NAME`, …), `environ` (KEY=VALUE lines given
//! as the process environment) and `expect-error` (docker compose refuses it). Shared by
//! this crate's config oracle and berth-compose-run's config-hash oracle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub struct Case {
    pub dir: PathBuf,
    pub args: Vec<String>,
    pub environ: BTreeMap<String, String>,
    #[allow(dead_code)] // the hash oracle skips error cases by their missing output
    pub expect_error: bool,
}

pub fn case(dir: &Path) -> Case {
    let args = std::fs::read_to_string(dir.join("args"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mut environ = BTreeMap::new();
    environ.insert("HOME".to_string(), "/home/oracle".to_string());
    environ.insert("PATH".to_string(), "/usr/bin:/bin".to_string());
    for l in std::fs::read_to_string(dir.join("environ"))
        .unwrap_or_default()
        .lines()
    {
        if let Some((k, v)) = l.split_once('=') {
            environ.insert(k.to_string(), v.to_string());
        }
    }
    Case {
        dir: dir.to_path_buf(),
        args,
        environ,
        expect_error: dir.join("expect-error").exists(),
    }
}

impl Case {
    /// The loader's options for this case: its directory, environment and `args`.
    pub fn options(&self) -> berth_compose::Options {
        let mut o = berth_compose::Options {
            cwd: self.dir.clone(),
            environ: self.environ.clone(),
            ..Default::default()
        };
        let mut it = self.args.iter();
        while let Some(a) = it.next() {
            let v = it.next().cloned().unwrap_or_default();
            match a.as_str() {
                "-f" => o.files.push(v.into()),
                "--profile" => o.profiles.push(v),
                "-p" => o.project_name = Some(v),
                "--env-file" => o.env_files.push(v.into()),
                other => panic!("unknown arg {other} in {}", self.dir.display()),
            }
        }
        o
    }
}
