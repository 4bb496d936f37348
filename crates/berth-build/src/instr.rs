//! Argument forms of single instructions: durations, HEALTHCHECK, RUN --mount, --chmod.

use std::collections::BTreeMap;

/// A Go-style duration (`30s`, `1m30s`, `500ms`, `1h`) in nanoseconds: the engine's parser,
/// the one `--health-*` flags use.
pub(crate) fn duration_ns(s: &str) -> Result<i64, String> {
    berth_engine::health::parse_duration("duration", s).map_err(|e| e.to_string())
}

/// `--chmod=0755` (octal).
pub(crate) fn chmod(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("invalid --chmod {s:?}: use an octal mode such as 0755"))
}

/// `key=value,key=value` options (`--mount`); a bare key means `true`.
pub(crate) fn csv_opts(s: &str) -> BTreeMap<String, String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim().to_string()),
            None => (p.trim().to_ascii_lowercase(), "true".to_string()),
        })
        .collect()
}

/// How concurrent builds share a cache mount (`sharing=`, BuildKit's modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Sharing {
    /// Every writer uses the same directory at once.
    #[default]
    Shared,
    /// A writer waits until the directory is free.
    Locked,
    /// A writer that finds the directory busy gets another one (kept for later builds).
    Private,
}

/// A RUN `--mount`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mount {
    /// Read-only (or throw-away writable) view of the context or of a stage/image.
    Bind {
        target: String,
        source: String,
        from: Option<String>,
        rw: bool,
    },
    /// A directory kept across builds (package caches).
    Cache {
        target: String,
        id: String,
        mode: u32,
        uid: u32,
        gid: u32,
        sharing: Sharing,
    },
    /// An empty tmpfs.
    Tmpfs {
        target: String,
        size: Option<String>,
    },
    /// A secret file given with `--secret id=…,src=…`.
    Secret {
        id: String,
        target: String,
        required: bool,
    },
}

fn num(o: &BTreeMap<String, String>, k: &str, def: u32, octal: bool) -> Result<u32, String> {
    match o.get(k) {
        None => Ok(def),
        Some(v) => {
            let r = if octal {
                u32::from_str_radix(v, 8)
            } else {
                v.parse()
            };
            r.map_err(|_| format!("invalid --mount {k}={v:?}"))
        }
    }
}

fn truthy(v: Option<&String>) -> bool {
    matches!(v.map(String::as_str), Some("true") | Some("1") | Some(""))
}

/// Parse one `--mount=…` value.
pub(crate) fn mount(s: &str) -> Result<Mount, String> {
    let o = csv_opts(s);
    let target = o
        .get("target")
        .or_else(|| o.get("dst"))
        .or_else(|| o.get("destination"))
        .cloned();
    let ty = o.get("type").map(String::as_str).unwrap_or("bind");
    let need_target = || {
        target
            .clone()
            .ok_or_else(|| format!("--mount {s:?} needs a target=PATH"))
    };
    Ok(match ty {
        "bind" => Mount::Bind {
            target: need_target()?,
            source: o
                .get("source")
                .or_else(|| o.get("src"))
                .cloned()
                .unwrap_or_default(),
            from: o.get("from").cloned(),
            rw: truthy(o.get("rw")) || truthy(o.get("readwrite")),
        },
        "cache" => {
            let target = need_target()?;
            Mount::Cache {
                id: o.get("id").cloned().unwrap_or_else(|| target.clone()),
                target,
                mode: num(&o, "mode", 0o755, true)?,
                uid: num(&o, "uid", 0, false)?,
                gid: num(&o, "gid", 0, false)?,
                sharing: match o.get("sharing").map(String::as_str) {
                    None | Some("shared") => Sharing::Shared,
                    Some("locked") => Sharing::Locked,
                    Some("private") => Sharing::Private,
                    Some(o) => {
                        return Err(format!(
                            "--mount sharing={o}: use shared, private or locked"
                        ))
                    }
                },
            }
        }
        "tmpfs" => Mount::Tmpfs {
            target: need_target()?,
            size: o.get("size").cloned(),
        },
        "secret" => {
            let id = o
                .get("id")
                .cloned()
                .or_else(|| {
                    target
                        .as_ref()
                        .map(|t| t.rsplit('/').next().unwrap_or(t).to_string())
                })
                .ok_or_else(|| format!("--mount {s:?} needs id=ID"))?;
            Mount::Secret {
                target: target.unwrap_or_else(|| format!("/run/secrets/{id}")),
                id,
                required: truthy(o.get("required")),
            }
        }
        other => {
            return Err(format!(
                "unsupported --mount type {other:?}; use bind, cache, tmpfs or secret"
            ))
        }
    })
}

/// HEALTHCHECK options and command → Docker's `Healthcheck` config object.
pub(crate) fn healthcheck(
    flags: &[(String, Option<String>)],
    args: &str,
    json: Option<&Vec<String>>,
) -> Result<serde_json::Value, String> {
    let t = args.trim();
    if t.eq_ignore_ascii_case("none") {
        return Ok(serde_json::json!({"Test": ["NONE"]}));
    }
    let (kw, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
    if !kw.eq_ignore_ascii_case("CMD") {
        return Err("HEALTHCHECK takes NONE or [OPTIONS] CMD command".into());
    }
    let rest = rest.trim();
    let test: Vec<String> = match (json, serde_json::from_str::<Vec<String>>(rest)) {
        (_, Ok(v)) if rest.starts_with('[') => {
            let mut t = vec!["CMD".to_string()];
            t.extend(v);
            t
        }
        _ => {
            if rest.is_empty() {
                return Err("HEALTHCHECK CMD needs a command".into());
            }
            vec!["CMD-SHELL".to_string(), rest.to_string()]
        }
    };
    let mut hc = serde_json::Map::new();
    hc.insert("Test".into(), serde_json::json!(test));
    for (k, v) in flags {
        let v = v.as_deref().unwrap_or("");
        let key = match k.as_str() {
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            "start-interval" => "StartInterval",
            "retries" => {
                let n: i64 = v
                    .parse()
                    .map_err(|_| format!("invalid --retries {v:?}: use a number"))?;
                hc.insert("Retries".into(), serde_json::json!(n));
                continue;
            }
            other => return Err(format!("unknown HEALTHCHECK flag --{other}")),
        };
        hc.insert(key.into(), serde_json::json!(duration_ns(v)?));
    }
    Ok(serde_json::Value::Object(hc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_ns("30s").unwrap(), 30_000_000_000);
        assert_eq!(duration_ns("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(duration_ns("500ms").unwrap(), 500_000_000);
        assert_eq!(duration_ns("0").unwrap(), 0);
        assert!(duration_ns("5x").is_err());
        assert!(duration_ns("").is_err());
    }

    #[test]
    fn mounts() {
        assert_eq!(
            mount("type=cache,target=/root/.cache,id=pip").unwrap(),
            Mount::Cache {
                target: "/root/.cache".into(),
                id: "pip".into(),
                mode: 0o755,
                uid: 0,
                gid: 0,
                sharing: Sharing::Shared,
            }
        );
        assert!(matches!(
            mount("type=cache,target=/c,sharing=locked").unwrap(),
            Mount::Cache {
                sharing: Sharing::Locked,
                ..
            }
        ));
        assert!(mount("type=cache,target=/c,sharing=sometimes").is_err());
        assert_eq!(
            mount("target=/src,source=app,rw").unwrap(),
            Mount::Bind {
                target: "/src".into(),
                source: "app".into(),
                from: None,
                rw: true
            }
        );
        assert_eq!(
            mount("type=secret,id=tok").unwrap(),
            Mount::Secret {
                id: "tok".into(),
                target: "/run/secrets/tok".into(),
                required: false
            }
        );
        assert!(mount("type=ssh").is_err());
        assert!(mount("type=cache").is_err());
    }

    #[test]
    fn healthchecks() {
        let hc = healthcheck(
            &[
                ("interval".into(), Some("5s".into())),
                ("retries".into(), Some("3".into())),
            ],
            "CMD curl -f http://localhost/",
            None,
        )
        .unwrap();
        assert_eq!(hc["Test"][0], "CMD-SHELL");
        assert_eq!(hc["Interval"], 5_000_000_000i64);
        assert_eq!(hc["Retries"], 3);
        let hc = healthcheck(&[], "CMD [\"true\"]", None).unwrap();
        assert_eq!(hc["Test"], serde_json::json!(["CMD", "true"]));
        assert_eq!(healthcheck(&[], "NONE", None).unwrap()["Test"][0], "NONE");
        assert!(healthcheck(&[], "true", None).is_err());
    }
}
