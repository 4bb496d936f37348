//! Registry configuration: `/etc/berth/registries.conf` (insecure registries, mirrors) and
//! per-registry TLS material in `/etc/berth/certs.d/HOST[:PORT]/`.
//!
//! `registries.conf` is TOML (a JSON object with the same members is accepted too):
//!
//! ```toml
//! # Registries reached over plain HTTP or HTTPS without certificate verification.
//! insecure = ["registry.lan:5000"]
//!
//! # Mirrors tried in order before the registry itself (pulls only).
//! [mirrors]
//! "docker.io" = ["mirror.lan:5000", "https://mirror.gcr.io"]
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{RegistryError, Result};

/// Where `registries.conf` is read from unless `BERTH_REGISTRIES_CONF` says otherwise.
pub const DEFAULT_REGISTRIES_CONF: &str = "/etc/berth/registries.conf";
/// Default directory of per-registry certificates.
pub const DEFAULT_CERTS_D: &str = "/etc/berth/certs.d";

/// Parsed `registries.conf`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistriesConf {
    /// Registries (`host[:port]`) allowed over HTTP or unverified HTTPS.
    #[serde(default)]
    pub insecure: Vec<String>,
    /// Mirrors per registry, tried in order for pulls.
    #[serde(default)]
    pub mirrors: BTreeMap<String, Vec<String>>,
}

impl RegistriesConf {
    /// Load from `BERTH_REGISTRIES_CONF` or `/etc/berth/registries.conf`; absent means empty.
    pub fn load_default() -> Result<RegistriesConf> {
        let p = std::env::var_os("BERTH_REGISTRIES_CONF")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_REGISTRIES_CONF));
        Self::load(&p)
    }

    /// Read `registries.conf` at `path`; a missing file means no settings.
    ///
    /// # Errors
    /// [`RegistryError::ConfigFile`] for a malformed file, [`RegistryError::Io`] for an unreadable
    /// one.
    pub fn load(path: &Path) -> Result<RegistriesConf> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(RegistryError::io(path, e)),
        };
        Self::parse(&text).map_err(|message| RegistryError::ConfigFile {
            path: path.into(),
            message,
        })
    }

    /// Parse TOML (or JSON) text.
    pub fn parse(text: &str) -> std::result::Result<RegistriesConf, String> {
        let mut c: RegistriesConf = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?
        } else {
            toml::from_str(text)
                .map_err(|e| format!("invalid TOML: {}", e.message().replace('\n', " ")))?
        };
        c.insecure = c
            .insecure
            .iter()
            .map(|s| crate::auth::normalize_registry(s))
            .collect();
        c.mirrors = c
            .mirrors
            .into_iter()
            .map(|(k, v)| (crate::auth::normalize_registry(&k), v))
            .collect();
        Ok(c)
    }

    /// Whether `registry` (host or host:port) is listed as insecure (plain HTTP or unverified TLS
    /// allowed).
    pub fn is_insecure(&self, registry: &str) -> bool {
        let r = crate::auth::normalize_registry(registry);
        let host = host_of(&r);
        self.insecure.iter().any(|i| i == &r || i == host)
    }

    /// Mirrors to try before `registry`, in order.
    pub fn mirrors_for(&self, registry: &str) -> &[String] {
        self.mirrors
            .get(&crate::auth::normalize_registry(registry))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// The host part of `host[:port]` (brackets kept off IPv6 literals).
pub fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match registry.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => registry,
    }
}

/// Whether a registry is on this machine (127.0.0.0/8, ::1, localhost), where Docker allows HTTP.
pub fn is_loopback(registry: &str) -> bool {
    let h = host_of(registry);
    if h.eq_ignore_ascii_case("localhost") || h.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    h.parse::<IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// Directory of per-registry certificates (`BERTH_CERTS_D`, default `/etc/berth/certs.d`).
pub fn certs_dir() -> PathBuf {
    std::env::var_os("BERTH_CERTS_D")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CERTS_D))
}

/// TLS material for one registry.
#[derive(Debug, Default)]
pub struct RegistryCerts {
    /// PEM CA certificates (`*.crt`).
    pub roots: Vec<(PathBuf, Vec<u8>)>,
    /// Client certificate and key, PEM concatenated (`X.cert` + `X.key`).
    pub identity: Option<(PathBuf, Vec<u8>)>,
}

/// Read `certs.d/REGISTRY/`: every `*.crt` is a CA; `X.cert` with `X.key` is a client identity.
pub fn registry_certs(dir: &Path, registry: &str) -> Result<RegistryCerts> {
    let d = dir.join(registry);
    let mut out = RegistryCerts::default();
    let rd = match std::fs::read_dir(&d) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(RegistryError::io(&d, e)),
    };
    let mut names: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    names.sort();
    for p in names {
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        match ext {
            "crt" => {
                let pem = std::fs::read(&p).map_err(|e| RegistryError::io(&p, e))?;
                out.roots.push((p, pem));
            }
            "cert" => {
                let key = p.with_extension("key");
                let mut pem = std::fs::read(&p).map_err(|e| RegistryError::io(&p, e))?;
                match std::fs::read(&key) {
                    Ok(k) => {
                        pem.push(b'\n');
                        pem.extend_from_slice(&k);
                        out.identity = Some((p, pem));
                    }
                    Err(_) => {
                        return Err(RegistryError::ConfigFile {
                            path: p.clone(),
                            message: format!(
                                "client certificate without its key; add {}",
                                key.display()
                            ),
                        })
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        for r in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost",
            "localhost:5000",
            "[::1]:5000",
            "a.localhost",
        ] {
            assert!(is_loopback(r), "{r}");
        }
        for r in [
            "docker.io",
            "10.0.0.1:5000",
            "example.com:443",
            "[fe80::1]:5000",
        ] {
            assert!(!is_loopback(r), "{r}");
        }
        assert_eq!(host_of("[::1]:5000"), "::1");
        assert_eq!(host_of("reg:5000"), "reg");
    }

    #[test]
    fn parses_registries_conf() {
        let c = RegistriesConf::parse(
            r#"
insecure = ["reg.lan:5000", "http://other.lan"]
[mirrors]
"docker.io" = ["mirror.lan:5000"]
"#,
        )
        .unwrap();
        assert!(c.is_insecure("reg.lan:5000"));
        assert!(c.is_insecure("other.lan:8080"));
        assert!(!c.is_insecure("reg.lan:5001"));
        assert_eq!(
            c.mirrors_for("index.docker.io"),
            ["mirror.lan:5000".to_string()]
        );
        assert!(c.mirrors_for("quay.io").is_empty());
        let j = RegistriesConf::parse(r#"{"insecure":["a:1"]}"#).unwrap();
        assert!(j.is_insecure("a:1"));
        assert!(RegistriesConf::parse("insecure = 3").is_err());
        assert!(RegistriesConf::parse("bogus = []").is_err());
        let missing = RegistriesConf::load(Path::new("/nonexistent/registries.conf")).unwrap();
        assert_eq!(missing, RegistriesConf::default());
    }

    #[test]
    fn reads_certs_d() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("127.0.0.1:5000");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("ca.crt"), "A").unwrap();
        std::fs::write(d.join("extra.crt"), "B").unwrap();
        std::fs::write(d.join("client.cert"), "C").unwrap();
        std::fs::write(d.join("client.key"), "K").unwrap();
        let c = registry_certs(dir.path(), "127.0.0.1:5000").unwrap();
        assert_eq!(c.roots.len(), 2);
        assert_eq!(c.identity.unwrap().1, b"C\nK");
        assert!(registry_certs(dir.path(), "none:1")
            .unwrap()
            .roots
            .is_empty());
    }
}
