//! Apptainer definition files: a header (`Bootstrap:`, `From:`, `OSVersion:`, …) followed by
//! `%sections`; several `Bootstrap:` headers make a multi-stage build.
//!
//! Loading is staged like compose-go's loader: the text is split into lines, `{{ var }}` build
//! arguments are substituted (values from `--build-arg`, `--build-arg-file`, then `%arguments`
//! defaults), then headers and sections are parsed and validated. Every error names the file and
//! the 1-based line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{Result, SifError};

/// How a stage's root file system is obtained (the `Bootstrap:` header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bootstrap {
    /// `debootstrap`: `OSVersion`, `MirrorURL`, `Include`.
    Debootstrap,
    /// `docker`: `From:` is a registry reference (pulled into berth's store).
    Docker,
    /// `localimage`: `From:` is a SIF file, a sandbox directory, or an image in berth's store.
    LocalImage,
    /// `oci-archive`: `From:` is an OCI archive tar file.
    OciArchive,
    /// `docker-archive`: `From:` is a `docker save` tar file.
    DockerArchive,
    /// `scratch`: an empty root.
    Scratch,
}

impl Bootstrap {
    fn parse(s: &str) -> Option<Bootstrap> {
        Some(match s.to_ascii_lowercase().as_str() {
            "debootstrap" => Bootstrap::Debootstrap,
            "docker" => Bootstrap::Docker,
            "localimage" => Bootstrap::LocalImage,
            "oci-archive" => Bootstrap::OciArchive,
            "docker-archive" => Bootstrap::DockerArchive,
            "scratch" => Bootstrap::Scratch,
            _ => return None,
        })
    }

    /// The name as written in definition files.
    pub fn as_str(&self) -> &'static str {
        match self {
            Bootstrap::Debootstrap => "debootstrap",
            Bootstrap::Docker => "docker",
            Bootstrap::LocalImage => "localimage",
            Bootstrap::OciArchive => "oci-archive",
            Bootstrap::DockerArchive => "docker-archive",
            Bootstrap::Scratch => "scratch",
        }
    }
}

/// A script section (`%post`, `%runscript`, …).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Script {
    /// What follows the section name on its line (e.g. `-c /bin/bash`).
    pub args: String,
    /// The body, lines joined with `\n`, common indentation kept as written.
    pub body: String,
    /// 1-based line of the `%section` line.
    pub line: usize,
}

/// One `%files` line: copy `src` (host, or the named stage) to `dst` in the new root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCopy {
    /// Source path (host path, or a path in the `from` stage).
    pub src: String,
    /// Destination inside the image (defaults to `src`).
    pub dst: String,
    /// Stage to copy from (`%files from STAGE`), or `None` for the host.
    pub from: Option<String>,
    /// 1-based line.
    pub line: usize,
}

/// One build stage: a header and its sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// How the root is obtained.
    pub bootstrap: Bootstrap,
    /// `From:` (image reference, path).
    pub from: Option<String>,
    /// `OSVersion:` (debootstrap suite, e.g. `bookworm`).
    pub os_version: Option<String>,
    /// `MirrorURL:` (debootstrap mirror).
    pub mirror_url: Option<String>,
    /// `Include:` (extra packages for debootstrap, space or comma separated).
    pub include: Vec<String>,
    /// `Stage:` name (for `%files from`).
    pub name: Option<String>,
    /// Other header keys, lowercased, kept for `inspect`.
    pub other: BTreeMap<String, String>,
    /// 1-based line of the `Bootstrap:` header.
    pub line: usize,
    /// `%setup`: runs on the host, `$APPTAINER_ROOTFS` names the new root.
    pub setup: Option<Script>,
    /// `%files` lines, in order.
    pub files: Vec<FileCopy>,
    /// `%post`: runs inside the new root.
    pub post: Option<Script>,
    /// `%environment`: sourced before every action.
    pub environment: Option<Script>,
    /// `%runscript`: what `run` and `./x.sif` execute.
    pub runscript: Option<Script>,
    /// `%startscript`: what `instance start` executes.
    pub startscript: Option<Script>,
    /// `%test`: what `test` executes (and the build, unless `--notest`).
    pub test: Option<Script>,
    /// `%labels` (`KEY VALUE` lines), in order.
    pub labels: Vec<(String, String)>,
    /// `%help` text.
    pub help: Option<String>,
}

/// A parsed definition file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    /// The file it came from (for messages), or `-`.
    pub file: PathBuf,
    /// The text after build-argument substitution (stored in the SIF as the deffile object).
    pub text: String,
    /// Stages in order; the last one is the image.
    pub stages: Vec<Stage>,
}

impl Definition {
    /// The final stage (the image's own sections).
    pub fn last(&self) -> &Stage {
        self.stages.last().expect("at least one stage")
    }
}

/// Build-argument values given on the command line (`--build-arg K=V`, `--build-arg-file F`).
pub type BuildArgs = BTreeMap<String, String>;

/// Parse `KEY=VALUE` lines of a `--build-arg-file` (blank lines and `#` comments skipped).
///
/// Errors: [`SifError::Definition`] naming the file and line of a malformed entry.
pub fn parse_build_arg_file(path: &Path, text: &str, into: &mut BuildArgs) -> Result<()> {
    for (i, l) in text.lines().enumerate() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            return Err(def_err(path, i + 1, "expected KEY=VALUE"));
        };
        into.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(())
}

fn def_err(file: &Path, line: usize, why: impl Into<String>) -> SifError {
    SifError::Definition {
        file: file.to_path_buf(),
        line,
        why: why.into(),
    }
}

/// Known section names.
const SECTIONS: &[&str] = &[
    "setup",
    "files",
    "post",
    "environment",
    "runscript",
    "startscript",
    "test",
    "labels",
    "help",
    "arguments",
    "appinstall",
    "appenv",
    "apprun",
    "applabels",
    "appfiles",
    "apphelp",
    "apptest",
    "appstart",
];

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(x) if x.is_ascii_alphabetic() || x == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == '-' || x == '.')
}

/// `%name rest` at the start of a line (sections are only recognised in column 0, as Apptainer).
fn section_of(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('%')?;
    let end = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    let name = &rest[..end];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some((name, rest[end..].trim()))
}

/// Parse definition text. `file` is used in messages only.
///
/// Errors: [`SifError::Definition`] (file, line, what is wrong and what to do).
pub fn parse(file: &Path, text: &str, args: &BuildArgs) -> Result<Definition> {
    if text.len() > 4 << 20 {
        return Err(def_err(file, 1, "definition file larger than 4 MiB"));
    }
    let lines: Vec<&str> = text.lines().collect();
    // Pass 1: %arguments defaults (before substitution, as Apptainer).
    let mut values = BTreeMap::new();
    let mut in_args = false;
    for (i, l) in lines.iter().enumerate() {
        if let Some((name, _)) = section_of(l) {
            in_args = name.eq_ignore_ascii_case("arguments");
            continue;
        }
        if in_args {
            let t = l.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            if header_of(t).is_some_and(|(k, _)| k.eq_ignore_ascii_case("bootstrap")) {
                in_args = false;
                continue;
            }
            let Some((k, v)) = t.split_once('=') else {
                return Err(def_err(file, i + 1, "%arguments lines are KEY=VALUE"));
            };
            values.insert(k.trim().to_string(), v.trim().trim_matches('"').to_string());
        }
    }
    for (k, v) in args {
        values.insert(k.clone(), v.clone());
    }
    // Pass 2: substitute {{ var }}.
    let mut subst = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        subst.push(substitute(file, i + 1, l, &values)?);
    }
    let text_out = {
        let mut s = subst.join("\n");
        s.push('\n');
        s
    };
    // Pass 3: headers and sections.
    let mut stages: Vec<Stage> = Vec::new();
    let mut cur: Option<Stage> = None;
    let mut section: Option<(String, String, usize, Vec<String>)> = None;
    let mut pending_header: BTreeMap<String, (String, usize)> = BTreeMap::new();

    let finish_section = |stage: &mut Option<Stage>,
                          sec: Option<(String, String, usize, Vec<String>)>|
     -> Result<()> {
        let Some((name, args, line, body)) = sec else {
            return Ok(());
        };
        if name == "arguments" {
            return Ok(());
        }
        let Some(st) = stage.as_mut() else {
            return Err(def_err(
                file,
                line,
                format!("%{name} before any Bootstrap: header; start the file with `Bootstrap: …`"),
            ));
        };
        apply_section(file, st, &name, args, line, body)
    };

    for (i, l) in subst.iter().enumerate() {
        let lineno = i + 1;
        if let Some((name, rest)) = section_of(l) {
            let lname = name.to_ascii_lowercase();
            if !SECTIONS.contains(&lname.as_str()) {
                return Err(def_err(
                    file,
                    lineno,
                    format!("unknown section %{name} (known: %setup %files %post %environment %runscript %startscript %test %labels %help %arguments)"),
                ));
            }
            if lname.starts_with("app") {
                return Err(def_err(
                    file,
                    lineno,
                    format!(
                        "%{name}: SCIF apps are not supported by berth; use %post and %runscript"
                    ),
                ));
            }
            finish_section(&mut cur, section.take())?;
            if cur.is_none() && lname != "arguments" {
                // Sections before any header: the header must have come first.
                cur = Some(stage_from_header(file, &mut pending_header, lineno)?);
            }
            section = Some((lname, rest.to_string(), lineno, Vec::new()));
            continue;
        }
        // A Bootstrap: line (in column 0) starts a new stage, even after sections.
        if let Some((k, v)) = header_of(l) {
            let key = k.to_ascii_lowercase();
            let starts_stage = key == "bootstrap";
            let in_body = section.as_ref().is_some_and(|s| s.0 != "arguments");
            if starts_stage && (in_body || cur.is_some()) && !l.starts_with(char::is_whitespace) {
                finish_section(&mut cur, section.take())?;
                if let Some(st) = cur.take() {
                    stages.push(st);
                } else if !pending_header.is_empty() {
                    stages.push(stage_from_header(file, &mut pending_header, lineno)?);
                }
                pending_header.insert(key, (v.to_string(), lineno));
                continue;
            }
            if !in_body && cur.is_none() {
                if pending_header.contains_key(&key) {
                    return Err(def_err(file, lineno, format!("header key {k} given twice")));
                }
                if section.as_ref().is_some_and(|s| s.0 == "arguments") {
                    section = None;
                }
                pending_header.insert(key, (v.to_string(), lineno));
                continue;
            }
        }
        match section.as_mut() {
            Some(s) => s.3.push(l.clone()),
            None => {
                let t = l.trim();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                return Err(def_err(
                    file,
                    lineno,
                    format!("expected `Key: value` or a %section, found {t:?}"),
                ));
            }
        }
    }
    finish_section(&mut cur, section.take())?;
    if let Some(st) = cur.take() {
        stages.push(st);
    } else if !pending_header.is_empty() {
        let line = pending_header.values().map(|v| v.1).max().unwrap_or(1);
        stages.push(stage_from_header(file, &mut pending_header, line)?);
    }
    if stages.is_empty() {
        return Err(def_err(
            file,
            1,
            "no Bootstrap: header; a definition starts with e.g. `Bootstrap: docker` and `From: debian:12`",
        ));
    }
    // Stage names unique; %files from must name an earlier stage.
    for (i, st) in stages.iter().enumerate() {
        for f in &st.files {
            if let Some(from) = &f.from {
                if !stages[..i].iter().any(|s| s.name.as_deref() == Some(from)) {
                    return Err(def_err(
                        file,
                        f.line,
                        format!("%files from {from}: no earlier stage is named {from} (add `Stage: {from}` to its header)"),
                    ));
                }
            }
        }
    }
    Ok(Definition {
        file: file.to_path_buf(),
        text: text_out,
        stages,
    })
}

/// `Key: value` (key in column 0, letters only).
fn header_of(l: &str) -> Option<(&str, &str)> {
    let (k, v) = l.split_once(':')?;
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some((k, v.trim()))
}

fn stage_from_header(
    file: &Path,
    h: &mut BTreeMap<String, (String, usize)>,
    line: usize,
) -> Result<Stage> {
    let hdr = std::mem::take(h);
    let Some((bs, bs_line)) = hdr.get("bootstrap").cloned() else {
        return Err(def_err(
            file,
            line,
            "no Bootstrap: header before this section; start the file with e.g. `Bootstrap: docker`",
        ));
    };
    let bootstrap = Bootstrap::parse(&bs).ok_or_else(|| {
        def_err(
            file,
            bs_line,
            format!("unknown Bootstrap: {bs:?} (berth knows debootstrap, docker, localimage, oci-archive, docker-archive, scratch)"),
        )
    })?;
    let get = |k: &str| hdr.get(k).map(|v| v.0.clone()).filter(|v| !v.is_empty());
    let mut stage = Stage {
        bootstrap: bootstrap.clone(),
        from: get("from"),
        os_version: get("osversion"),
        mirror_url: get("mirrorurl"),
        include: get("include")
            .map(|s| {
                s.split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|x| !x.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        name: get("stage"),
        other: BTreeMap::new(),
        line: bs_line,
        setup: None,
        files: Vec::new(),
        post: None,
        environment: None,
        runscript: None,
        startscript: None,
        test: None,
        labels: Vec::new(),
        help: None,
    };
    for (k, (v, l)) in &hdr {
        match k.as_str() {
            "bootstrap" | "from" | "osversion" | "mirrorurl" | "include" | "stage" => {}
            "fingerprints" | "registry" | "namespace" | "confurl" | "updateurl" | "product"
            | "user" | "setopt" | "librarian" => {
                stage.other.insert(k.clone(), v.clone());
            }
            _ => {
                return Err(def_err(
                    file,
                    *l,
                    format!("unknown header key {k:?} (known: Bootstrap From OSVersion MirrorURL Include Stage)"),
                ))
            }
        }
    }
    match bootstrap {
        Bootstrap::Scratch | Bootstrap::Debootstrap => {}
        _ if stage.from.is_none() => {
            return Err(def_err(
                file,
                bs_line,
                format!("Bootstrap: {} needs a From: header", bootstrap.as_str()),
            ))
        }
        _ => {}
    }
    if bootstrap == Bootstrap::Debootstrap && stage.os_version.is_none() {
        return Err(def_err(
            file,
            bs_line,
            "Bootstrap: debootstrap needs OSVersion: (e.g. bookworm)",
        ));
    }
    Ok(stage)
}

fn apply_section(
    file: &Path,
    st: &mut Stage,
    name: &str,
    args: String,
    line: usize,
    body: Vec<String>,
) -> Result<()> {
    // Drop trailing blank lines.
    let mut body = body;
    while body.last().is_some_and(|l| l.trim().is_empty()) {
        body.pop();
    }
    let script = |body: &[String]| Script {
        args: args.clone(),
        body: body.join("\n"),
        line,
    };
    let dup = |has: bool| -> Result<()> {
        if has {
            Err(def_err(
                file,
                line,
                format!("%{name} appears twice in this stage; merge them"),
            ))
        } else {
            Ok(())
        }
    };
    match name {
        "setup" => {
            dup(st.setup.is_some())?;
            st.setup = Some(script(&body));
        }
        "post" => {
            dup(st.post.is_some())?;
            st.post = Some(script(&body));
        }
        "environment" => {
            dup(st.environment.is_some())?;
            st.environment = Some(script(&body));
        }
        "runscript" => {
            dup(st.runscript.is_some())?;
            st.runscript = Some(script(&body));
        }
        "startscript" => {
            dup(st.startscript.is_some())?;
            st.startscript = Some(script(&body));
        }
        "test" => {
            dup(st.test.is_some())?;
            st.test = Some(script(&body));
        }
        "help" => {
            dup(st.help.is_some())?;
            st.help = Some(body.join("\n"));
        }
        "labels" => {
            for l in &body {
                let t = l.trim();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                let (k, v) = match t.split_once(char::is_whitespace) {
                    Some((k, v)) => (k, v.trim()),
                    None => (t, ""),
                };
                st.labels.push((k.to_string(), v.to_string()));
            }
        }
        "files" => {
            let from = {
                let mut w = args.split_whitespace();
                match (w.next(), w.next(), w.next()) {
                    (None, _, _) => None,
                    (Some("from"), Some(s), None) => Some(s.to_string()),
                    _ => {
                        return Err(def_err(
                            file,
                            line,
                            format!("%files {args}: expected `%files` or `%files from STAGE`"),
                        ))
                    }
                }
            };
            for (i, l) in body.iter().enumerate() {
                let t = l.trim();
                if t.is_empty() || t.starts_with('#') {
                    continue;
                }
                let w: Vec<&str> = t.split_whitespace().collect();
                let (src, dst) = match w.as_slice() {
                    [s] => (*s, *s),
                    [s, d] => (*s, *d),
                    _ => {
                        return Err(def_err(
                            file,
                            line + 1 + i,
                            "a %files line is `SOURCE [DESTINATION]`",
                        ))
                    }
                };
                st.files.push(FileCopy {
                    src: src.to_string(),
                    dst: dst.to_string(),
                    from: from.clone(),
                    line: line + 1 + i,
                });
            }
        }
        _ => unreachable!("checked against SECTIONS"),
    }
    Ok(())
}

fn substitute(
    file: &Path,
    line: usize,
    l: &str,
    values: &BTreeMap<String, String>,
) -> Result<String> {
    let mut out = String::with_capacity(l.len());
    let mut rest = l;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(def_err(
                file,
                line,
                "unterminated {{ (build arguments are {{ NAME }})",
            ));
        };
        let name = after[..end].trim();
        if !is_ident(name) {
            return Err(def_err(
                file,
                line,
                format!("{{{{ {name} }}}}: not a build argument name"),
            ));
        }
        let Some(v) = values.get(name) else {
            return Err(def_err(
                file,
                line,
                format!("build argument {name} has no value; give --build-arg {name}=VALUE or a default in %arguments"),
            ));
        };
        out.push_str(v);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests;
