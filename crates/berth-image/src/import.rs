//! `import`: an image from a root filesystem tarball, with Dockerfile-style `--change`s.

use std::collections::BTreeMap;
use std::io::Read;

use berth_store::Digest;
use serde_json::{json, Value};

use crate::archive::host_arch;
use crate::{
    ingest_layer, layer_dir, Compression, ImageConfig, ImageError, ImageStore, Reference, Result,
};

/// Options of an import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Dockerfile instructions: CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, VOLUME,
    /// STOPSIGNAL.
    pub changes: Vec<String>,
    /// Commit message (history comment).
    pub message: Option<String>,
    /// Where the rootfs came from (file name or `-`), for the default comment.
    pub source: String,
    /// The image's architecture (`amd64`, `arm64`, …) when not the host's (`--platform`).
    pub architecture: Option<String>,
}

/// Split a shell-ish word list: whitespace separated, with '…' / "…" quoting and \ escapes.
fn words(s: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '"') | (None, '\'') => {
                quote = Some(c);
                have = true;
            }
            (None, c) if c.is_whitespace() => {
                if have || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            (None, c) => cur.push(c),
        }
    }
    if quote.is_some() {
        return Err(change_err(s, "unterminated quote"));
    }
    if have || !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn change_err(change: &str, why: &str) -> ImageError {
    ImageError::Other(format!("--change {change:?}: {why}"))
}

/// JSON array form, else shell form (`/bin/sh -c …`).
fn exec_form(arg: &str) -> Vec<String> {
    let t = arg.trim();
    if t.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(t) {
            return v;
        }
    }
    vec!["/bin/sh".into(), "-c".into(), t.to_string()]
}

/// `K=V K2=V2` pairs, or the legacy `K V` form when `legacy_space` allows it.
fn pairs(change: &str, arg: &str, legacy_space: bool) -> Result<Vec<(String, String)>> {
    let first = arg.split_whitespace().next().unwrap_or("");
    if legacy_space && !first.contains('=') {
        let (k, v) = arg
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| change_err(change, "expected NAME=VALUE"))?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    words(arg)?
        .into_iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| change_err(change, "expected NAME=VALUE"))
        })
        .collect()
}

/// Apply Dockerfile-style instructions to a config.
pub fn apply_changes(cfg: &mut ImageConfig, changes: &[String]) -> Result<()> {
    for change in changes {
        let t = change.trim();
        let (kw, arg) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
        let arg = arg.trim();
        if arg.is_empty() {
            return Err(change_err(change, "missing argument"));
        }
        match kw.to_ascii_uppercase().as_str() {
            "CMD" => cfg.cmd = Some(exec_form(arg)),
            "ENTRYPOINT" => cfg.entrypoint = Some(exec_form(arg)),
            "WORKDIR" => cfg.working_dir = Some(arg.to_string()),
            "USER" => cfg.user = Some(arg.to_string()),
            "STOPSIGNAL" => {
                berth_signal::parse(arg).map_err(|e| change_err(change, &e.to_string()))?;
                cfg.stop_signal = Some(arg.to_string());
            }
            "ENV" => {
                let env = cfg.env.get_or_insert_with(Vec::new);
                for (k, v) in pairs(change, arg, true)? {
                    env.retain(|e| e.split_once('=').map(|(ek, _)| ek) != Some(k.as_str()));
                    env.push(format!("{k}={v}"));
                }
            }
            "LABEL" => {
                let labels = cfg.labels.get_or_insert_with(BTreeMap::new);
                for (k, v) in pairs(change, arg, false)? {
                    labels.insert(k, v);
                }
            }
            "EXPOSE" => {
                let ports = cfg.exposed_ports.get_or_insert_with(BTreeMap::new);
                for p in words(arg)? {
                    let (num, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                    let proto = proto.to_ascii_lowercase();
                    let ok_num = num
                        .split_once('-')
                        .map(|(a, b)| a.parse::<u16>().is_ok() && b.parse::<u16>().is_ok())
                        .unwrap_or_else(|| num.parse::<u16>().is_ok());
                    if !ok_num || !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                        return Err(change_err(change, &format!("invalid port {p:?}; use PORT[/tcp|udp|sctp]")));
                    }
                    ports.insert(format!("{num}/{proto}"), json!({}));
                }
            }
            "VOLUME" => {
                let vols = cfg.volumes.get_or_insert_with(BTreeMap::new);
                let list = if arg.starts_with('[') {
                    serde_json::from_str::<Vec<String>>(arg)
                        .map_err(|_| change_err(change, "invalid JSON array"))?
                } else {
                    words(arg)?
                };
                for v in list {
                    vols.insert(v, json!({}));
                }
            }
            other => {
                return Err(change_err(
                    change,
                    &format!("unsupported instruction {other}; use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR or STOPSIGNAL"),
                ))
            }
        }
    }
    Ok(())
}

/// Config object without null members (as Docker writes it).
fn config_value(cfg: &ImageConfig) -> Value {
    let mut v = serde_json::to_value(cfg).expect("config serialises");
    if let Value::Object(m) = &mut v {
        m.retain(|_, x| !x.is_null());
    }
    v
}

/// Create an image from a root filesystem tar stream and tag it. The stream may be plain or
/// compressed with gzip, bzip2, xz or zstd (detected by content). gzip and zstd layers are
/// kept as received; bzip2 and xz ones (which OCI layers cannot carry) are stored as the plain
/// tar. The diff id is always the digest of the uncompressed tar.
pub fn import_rootfs(
    is: &ImageStore<'_>,
    r: &mut dyn Read,
    reference: Option<&Reference>,
    opts: &ImportOptions,
) -> Result<Digest> {
    let id = import_rootfs_inner(is, r, reference, opts)?;
    // Docker's `import` event (actor: the new image id).
    let name = reference.map(|r| r.familiar()).unwrap_or_default();
    crate::events::record(
        is.store(),
        "import",
        id.as_str(),
        &name,
        is.get(&id).ok().as_ref(),
    );
    Ok(id)
}

fn import_rootfs_inner(
    is: &ImageStore<'_>,
    r: &mut dyn Read,
    reference: Option<&Reference>,
    opts: &ImportOptions,
) -> Result<Digest> {
    // Validate the changes before touching the store.
    let mut cfg = ImageConfig::default();
    apply_changes(&mut cfg, &opts.changes)?;
    let store = is.store();
    let (comp, sniffed) = crate::decompress::sniff(Box::new(r))
        .map_err(|e| ImageError::io(opts.source.as_str(), e))?;
    let (hint, mut src) = match comp.as_layer() {
        Some(c) => (c, sniffed),
        None => (
            Compression::None,
            comp.decoder(sniffed)
                .map_err(|e| ImageError::io(opts.source.as_str(), e))?,
        ),
    };
    let layer = ingest_layer(store.root(), &mut src, hint, None, None).map_err(|e| match e {
        ImageError::Layer(m) if comp != crate::decompress::StreamCompression::None => {
            ImageError::Layer(format!("{m} ({comp} data from {})", opts.source))
        }
        e => e,
    })?;
    let existed = is.layer_recorded(&layer.diff_id)?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let comment = opts
        .message
        .clone()
        .unwrap_or_else(|| format!("Imported from {}", opts.source));
    let config = json!({
        "architecture": opts.architecture.as_deref().unwrap_or(host_arch()),
        "os": "linux",
        "created": now,
        "config": config_value(&cfg),
        "rootfs": { "type": "layers", "diff_ids": [layer.diff_id.as_str()] },
        "history": [{ "created": now, "created_by": "berth import", "comment": comment }],
    });
    let config = serde_json::to_vec(&config).expect("json");
    let tags: Vec<Reference> = reference.cloned().into_iter().collect();
    let res = is
        .record_layer(&layer)
        .and_then(|()| is.commit_image(&config, std::slice::from_ref(&layer), None, &tags, None));
    if res.is_err() && !existed {
        crate::store::remove_tree(store, &layer_dir(store, &layer.diff_id));
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply() {
        let mut c = ImageConfig::default();
        apply_changes(
            &mut c,
            &[
                r#"CMD ["echo", "hi"]"#.into(),
                "ENTRYPOINT /bin/run me".into(),
                "ENV A=b C=\"d e\"".into(),
                "env X y z".into(),
                "WORKDIR /srv".into(),
                "USER app".into(),
                "EXPOSE 80 53/udp".into(),
                "LABEL a=1 \"b c\"=2".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.cmd.unwrap(), vec!["echo", "hi"]);
        assert_eq!(c.entrypoint.unwrap(), vec!["/bin/sh", "-c", "/bin/run me"]);
        assert_eq!(c.env.unwrap(), vec!["A=b", "C=d e", "X=y z"]);
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.user.as_deref(), Some("app"));
        let ports: Vec<_> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, vec!["53/udp", "80/tcp"]);
        let labels = c.labels.unwrap();
        assert_eq!(labels["a"], "1");
        assert_eq!(labels["b c"], "2");
        let mut c = ImageConfig::default();
        assert!(apply_changes(&mut c, &["FROM x".into()]).is_err());
        assert!(apply_changes(&mut c, &["EXPOSE abc".into()]).is_err());
        assert!(apply_changes(&mut c, &["CMD".into()]).is_err());
        // STOPSIGNAL takes every name Docker accepts, and only those.
        for ok in ["SIGRTMIN+3", "rtmax-2", "TERM", "9"] {
            let mut c = ImageConfig::default();
            apply_changes(&mut c, &[format!("STOPSIGNAL {ok}")]).unwrap();
            assert_eq!(c.stop_signal.as_deref(), Some(ok));
        }
        let e = apply_changes(&mut c, &["STOPSIGNAL SIGNOPE".into()]).unwrap_err();
        assert!(e.to_string().contains("invalid signal"), "{e}");
    }
}
