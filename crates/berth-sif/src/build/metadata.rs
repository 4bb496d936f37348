//! The `/.singularity.d` layout of a built image: runscript, environment, labels, help, and
//! permissions.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use berth_image::ImageConfig;

use crate::deffile::{Definition, Script, Stage};
use crate::{Result, SifError};

use super::*;

/// What a SIF or sandbox base image already provides.
pub(super) struct BaseMeta {
    pub(super) runscript: bool,
    pub(super) environment: bool,
    pub(super) labels: BTreeMap<String, String>,
}

/// Write the `/.singularity.d` layout for the image (Apptainer's names) into `meta`.
pub(super) fn write_metadata(
    meta: &Path,
    def: &Definition,
    st: &Stage,
    config: Option<&ImageConfig>,
    base: &BaseMeta,
) -> Result<()> {
    let sd = meta.join(".singularity.d");
    for d in ["env", "actions", "libs"] {
        let p = sd.join(d);
        std::fs::create_dir_all(&p).map_err(|e| SifError::io(&p, e))?;
    }
    let write = |rel: &str, text: &str, mode: u32| -> Result<()> {
        let p = sd.join(rel);
        std::fs::write(&p, text).map_err(|e| SifError::io(&p, e))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| SifError::io(&p, e))
    };
    let script = |s: &Script| -> String {
        let mut shebang = "#!/bin/sh".to_string();
        let args = s.args.trim();
        if !args.is_empty() {
            shebang.push(' ');
            shebang.push_str(args);
        }
        format!("{shebang}\n\n{}\n", s.body)
    };
    // Runscript: the definition's, else one from the image's ENTRYPOINT/CMD, else a notice.
    let runscript = match (&st.runscript, config) {
        (Some(s), _) => script(s),
        (None, Some(c)) if c.entrypoint.is_some() || c.cmd.is_some() => {
            let q = |v: &Option<Vec<String>>| {
                v.as_ref()
                    .map(|w| {
                        w.iter()
                            .map(|x| shell_quote(x))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default()
            };
            let ep = q(&c.entrypoint);
            let cmd = q(&c.cmd);
            format!(
                "#!/bin/sh\n# from the OCI image's ENTRYPOINT and CMD\nif [ $# -gt 0 ]; then\n    exec {ep} \"$@\"\nfi\nexec {ep} {cmd}\n"
            )
        }
        _ if base.runscript => String::new(),
        _ => "#!/bin/sh\n\necho \"There is no runscript defined for this container\"\n".to_string(),
    };
    if !runscript.is_empty() {
        write("runscript", &runscript, 0o755)?;
    }
    if let Some(s) = &st.startscript {
        write("startscript", &script(s), 0o755)?;
    }
    if let Some(s) = &st.test {
        write("test", &script(s), 0o755)?;
    }
    if let Some(h) = &st.help {
        write("runscript.help", &format!("{h}\n"), 0o644)?;
    }
    write(
        "env/01-base.sh",
        "#!/bin/sh\n# Apptainer/berth base environment\n",
        0o755,
    )?;
    if let Some(c) = config {
        let mut s = String::from("#!/bin/sh\n# from the OCI image's Env\n");
        for kv in c.env.iter().flatten() {
            if let Some((k, v)) = kv.split_once('=') {
                if k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !k.is_empty() {
                    s.push_str(&format!(
                        "export {k}=\"${{{k}:-{}}}\"\n",
                        v.replace('"', "\\\"")
                            .replace('$', "\\$")
                            .replace('`', "\\`")
                    ));
                }
            }
        }
        // PATH always comes from the image.
        if let Some(p) = c
            .env
            .iter()
            .flatten()
            .find_map(|kv| kv.strip_prefix("PATH="))
        {
            s.push_str(&format!("export PATH={}\n", shell_quote(p)));
        }
        write("env/10-docker2singularity.sh", &s, 0o755)?;
    }
    if st.environment.is_some() || !base.environment {
        let env_body = st
            .environment
            .as_ref()
            .map(|s| s.body.clone())
            .unwrap_or_default();
        write(
            "env/90-environment.sh",
            &format!("#!/bin/sh\n# Custom environment shell code should follow\n\n{env_body}\n"),
            0o755,
        )?;
    }
    // Labels: the base image's, then the definition's, then the schema labels.
    let mut labels: BTreeMap<String, String> = base.labels.clone();
    labels.extend(config.and_then(|c| c.labels.clone()).unwrap_or_default());
    for (k, v) in &st.labels {
        labels.insert(k.clone(), v.clone());
    }
    labels.insert(
        "org.label-schema.build-date".into(),
        chrono::Utc::now()
            .format("%A_%-d_%B_%Y_%H:%M:%S_%Z")
            .to_string(),
    );
    labels.insert("org.label-schema.schema-version".into(), "1.0".into());
    labels.insert(
        "org.label-schema.build-arch".into(),
        crate::format::arch_name(&crate::format::host_arch_code()).into(),
    );
    if st.help.is_some() {
        labels.insert(
            "org.label-schema.usage".into(),
            "/.singularity.d/runscript.help".into(),
        );
    }
    labels.insert(
        "org.label-schema.usage.singularity.version".into(),
        format!("berth {}", env!("CARGO_PKG_VERSION")),
    );
    write(
        "labels.json",
        &serde_json::to_string_pretty(&labels).expect("json"),
        0o644,
    )?;
    write("Singularity", &def.text, 0o644)?;
    for a in [
        crate::run::Action::Run,
        crate::run::Action::Exec,
        crate::run::Action::Shell,
        crate::run::Action::Test,
        crate::run::Action::Start,
    ] {
        let name = match a {
            crate::run::Action::Start => "start",
            crate::run::Action::Run => "run",
            crate::run::Action::Exec => "exec",
            crate::run::Action::Shell => "shell",
            crate::run::Action::Test => "test",
        };
        write(
            &format!("actions/{name}"),
            &format!("#!/bin/sh\n{}", crate::run::action_script(a, &[])),
            0o755,
        )?;
    }
    for (link, target) in [
        ("environment", ".singularity.d/env/90-environment.sh"),
        ("singularity", ".singularity.d/runscript"),
    ] {
        let p = meta.join(link);
        std::os::unix::fs::symlink(target, &p).map_err(|e| SifError::io(&p, e))?;
    }
    Ok(())
}

/// `--fix-perms`: owner rw on files, rwx on directories.
pub(super) fn fix_perms(p: &Path) -> Result<()> {
    let md = std::fs::symlink_metadata(p).map_err(|e| SifError::io(p, e))?;
    if md.is_symlink() {
        return Ok(());
    }
    let mode = md.permissions().mode();
    let want = if md.is_dir() {
        mode | 0o700
    } else {
        mode | 0o600
    };
    if want != mode {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(want))
            .map_err(|e| SifError::io(p, e))?;
    }
    if md.is_dir() {
        for e in std::fs::read_dir(p)
            .map_err(|e| SifError::io(p, e))?
            .flatten()
        {
            fix_perms(&e.path())?;
        }
    }
    Ok(())
}
