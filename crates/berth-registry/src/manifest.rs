//! Manifests, indexes and platform selection (OCI image spec and Docker v2 schema 2).

use std::collections::BTreeMap;
use std::fmt;

use berth_store::Digest;
use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, Result};

pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_DOCKER_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const MT_DOCKER_V1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const MT_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MT_DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const MT_OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MT_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MT_OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MT_DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const MT_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const MT_DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";

/// Largest manifest or index accepted from a registry.
pub const MAX_MANIFEST: u64 = 4 << 20;
/// Largest image config accepted from a registry.
pub const MAX_CONFIG: u64 = 16 << 20;

/// The `Accept` header for manifest requests.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An image manifest (OCI or Docker v2 schema 2; the JSON shapes are the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An image index or Docker manifest list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// A parsed manifest document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    Manifest(Box<Manifest>),
    Index(Index),
}

fn base_type(ct: &str) -> &str {
    ct.split(';').next().unwrap_or("").trim()
}

/// Parse a manifest document, using its `mediaType` and the `Content-Type` it came with.
pub fn parse_document(content_type: Option<&str>, body: &[u8]) -> Result<Document> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        schema_version: Option<u32>,
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
        fs_layers: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(body)
        .map_err(|e| RegistryError::InvalidManifest(format!("not a JSON manifest: {e}")))?;
    let header = content_type.map(base_type).filter(|s| !s.is_empty());
    let is_v1 = |t: &str| t == MT_DOCKER_V1 || t == MT_DOCKER_V1_SIGNED;
    if probe.schema_version == Some(1)
        || probe.fs_layers.is_some()
        || header.is_some_and(is_v1)
        || probe.media_type.as_deref().is_some_and(is_v1)
    {
        return Err(RegistryError::UnsupportedMediaType(
            "docker image manifest v1 (schema 1 is deprecated and not supported; push the image again with a current client)".into(),
        ));
    }
    let kind = match (probe.media_type.as_deref(), header) {
        (Some(t), _) => t.to_string(),
        (None, Some(h)) if h != "application/json" && h != "text/plain" => h.to_string(),
        _ => {
            if probe.manifests.is_some() {
                MT_OCI_INDEX.to_string()
            } else if probe.layers.is_some() {
                MT_OCI_MANIFEST.to_string()
            } else {
                return Err(RegistryError::InvalidManifest(
                    "document has neither layers nor manifests".into(),
                ));
            }
        }
    };
    if let (Some(body_t), Some(h)) = (probe.media_type.as_deref(), header) {
        let known = [
            MT_OCI_INDEX,
            MT_OCI_MANIFEST,
            MT_DOCKER_MANIFEST,
            MT_DOCKER_LIST,
        ];
        if known.contains(&h) && body_t != h {
            return Err(RegistryError::InvalidManifest(format!(
                "the registry sent content type {h} but the document says {body_t}"
            )));
        }
    }
    let bad = |e: serde_json::Error| RegistryError::InvalidManifest(e.to_string());
    match kind.as_str() {
        MT_OCI_INDEX | MT_DOCKER_LIST => {
            let idx: Index = serde_json::from_slice(body).map_err(bad)?;
            if idx.schema_version != 2 {
                return Err(RegistryError::InvalidManifest(format!(
                    "schemaVersion {} is not supported",
                    idx.schema_version
                )));
            }
            Ok(Document::Index(idx))
        }
        MT_OCI_MANIFEST | MT_DOCKER_MANIFEST => {
            let m: Manifest = serde_json::from_slice(body).map_err(bad)?;
            if m.schema_version != 2 {
                return Err(RegistryError::InvalidManifest(format!(
                    "schemaVersion {} is not supported",
                    m.schema_version
                )));
            }
            Ok(Document::Manifest(Box::new(m)))
        }
        other => Err(RegistryError::UnsupportedMediaType(other.to_string())),
    }
}

/// Layer compression named by a layer media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    Tar,
    Gzip,
    Zstd,
}

/// What a layer media type says about its compression; `None` for types we cannot unpack.
pub fn layer_kind(media_type: &str) -> Option<LayerKind> {
    match media_type {
        MT_OCI_LAYER | MT_DOCKER_LAYER => Some(LayerKind::Tar),
        MT_OCI_LAYER_GZIP | MT_DOCKER_LAYER_GZIP => Some(LayerKind::Gzip),
        MT_OCI_LAYER_ZSTD | MT_DOCKER_LAYER_ZSTD => Some(LayerKind::Zstd),
        "application/vnd.oci.image.layer.nondistributable.v1.tar" => Some(LayerKind::Tar),
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Some(LayerKind::Gzip),
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Some(LayerKind::Zstd),
        _ => None,
    }
}

/// A target platform, `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant
        .map(|v| v.to_ascii_lowercase())
        .filter(|v| !v.is_empty());
    match arch.as_str() {
        "x86_64" | "x86-64" | "amd64" => {
            let v = variant.filter(|v| v != "v1");
            ("amd64".into(), v)
        }
        "aarch64" | "arm64" => {
            let v = variant.filter(|v| v != "v8" && v != "8");
            ("arm64".into(), v)
        }
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "arm" => {
            let v = variant.map(|v| {
                if v.starts_with('v') {
                    v
                } else {
                    format!("v{v}")
                }
            });
            ("arm".into(), v)
        }
        "i386" | "i686" | "386" => ("386".into(), variant),
        _ => (arch, variant),
    }
}

impl Platform {
    /// Parse `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(RegistryError::InvalidPlatform(s.to_string()));
        }
        let (architecture, variant) = normalize_arch(parts[1], parts.get(2).copied());
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture,
            variant,
            os_version: None,
            os_features: None,
        })
    }

    /// The platform of this host (`linux/amd64` on x86-64).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            other => other,
        };
        let variant = if arch == "arm" {
            Some("v7".into())
        } else {
            None
        };
        Platform {
            os: std::env::consts::OS.to_string(),
            architecture: arch.into(),
            variant,
            os_version: None,
            os_features: None,
        }
    }

    /// Whether an index entry's platform satisfies this wanted platform.
    pub fn matches(&self, candidate: &Platform) -> bool {
        let (a, av) = normalize_arch(&candidate.architecture, candidate.variant.as_deref());
        let (w, wv) = normalize_arch(&self.architecture, self.variant.as_deref());
        if !candidate.os.eq_ignore_ascii_case(&self.os) || a != w {
            return false;
        }
        match (&wv, &av) {
            (None, _) => true,
            (Some(x), Some(y)) => x == y,
            // arm without a variant in the index: accept for any wanted variant.
            (Some(_), None) => true,
        }
    }
}

/// Pick the index entry for `want`: exact variant first, then any compatible entry.
pub fn select_platform<'a>(index: &'a Index, want: &Platform) -> Option<&'a Descriptor> {
    let candidates: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| d.media_type != MT_OCI_INDEX && d.media_type != MT_DOCKER_LIST)
        .filter(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
        .collect();
    let (_, wv) = normalize_arch(&want.architecture, want.variant.as_deref());
    candidates
        .iter()
        .find(|d| {
            let p = d.platform.as_ref().expect("filtered on platform");
            normalize_arch(&p.architecture, p.variant.as_deref()).1 == wv
        })
        .or_else(|| candidates.first())
        .copied()
}

/// Platforms offered by an index, for error messages.
pub fn available_platforms(index: &Index) -> String {
    let v: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .filter(|p| p.os != "unknown")
        .map(|p| p.to_string())
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// `rootfs.diff_ids` of an image config.
pub fn config_diff_ids(config: &[u8]) -> Result<Vec<Digest>> {
    #[derive(Deserialize)]
    struct RootFs {
        #[serde(default)]
        diff_ids: Vec<Digest>,
    }
    #[derive(Deserialize)]
    struct Cfg {
        rootfs: RootFs,
    }
    let c: Cfg = serde_json::from_slice(config)
        .map_err(|e| RegistryError::InvalidManifest(format!("image config: {e}")))?;
    Ok(c.rootfs.diff_ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn parses_manifest_kinds() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MT_DOCKER_MANIFEST}","config":{{"mediaType":"{MT_DOCKER_CONFIG}","digest":"{}","size":10}},"layers":[{{"mediaType":"{MT_DOCKER_LAYER_GZIP}","digest":"{}","size":20}}]}}"#,
            d('a'),
            d('b')
        );
        match parse_document(Some(MT_DOCKER_MANIFEST), m.as_bytes()).unwrap() {
            Document::Manifest(m) => {
                assert_eq!(m.layers.len(), 1);
                assert_eq!(layer_kind(&m.layers[0].media_type), Some(LayerKind::Gzip));
            }
            _ => panic!("expected a manifest"),
        }
        // OCI manifest without mediaType, identified by the header.
        let m2 = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{MT_OCI_CONFIG}","digest":"{}","size":1}},"layers":[]}}"#,
            d('a')
        );
        assert!(matches!(
            parse_document(
                Some("application/vnd.oci.image.manifest.v1+json"),
                m2.as_bytes()
            ),
            Ok(Document::Manifest(_))
        ));
        assert!(matches!(
            parse_document(None, m2.as_bytes()),
            Ok(Document::Manifest(_))
        ));
        let idx = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MT_OCI_INDEX}","manifests":[{{"mediaType":"{MT_OCI_MANIFEST}","digest":"{}","size":3,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            d('c')
        );
        assert!(matches!(
            parse_document(Some(MT_OCI_INDEX), idx.as_bytes()),
            Ok(Document::Index(_))
        ));
        // Header and body disagree.
        assert!(parse_document(Some(MT_DOCKER_MANIFEST), idx.as_bytes()).is_err());
        let v1 = r#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        let e = parse_document(None, v1.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("schema 1"), "{e}");
        assert!(parse_document(None, b"<html>").is_err());
        assert!(parse_document(
            None,
            br#"{"schemaVersion":2,"layers":[{"digest":"sha256:12"}]}"#
        )
        .is_err());
    }

    #[test]
    fn platform_parsing_and_selection() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.to_string(), "linux/arm64");
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/arm/7").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());

        let entry = |arch: &str, variant: Option<&str>, c: char| Descriptor {
            media_type: MT_OCI_MANIFEST.into(),
            digest: Digest::parse(&d(c)).unwrap(),
            size: 1,
            urls: None,
            annotations: None,
            platform: Some(Platform {
                os: if arch == "unknown" {
                    "unknown"
                } else {
                    "linux"
                }
                .into(),
                architecture: arch.into(),
                variant: variant.map(String::from),
                os_version: None,
                os_features: None,
            }),
        };
        let idx = Index {
            schema_version: 2,
            media_type: Some(MT_OCI_INDEX.into()),
            manifests: vec![
                entry("unknown", None, '0'),
                entry("arm", Some("v6"), '1'),
                entry("arm", Some("v7"), '2'),
                entry("arm64", Some("v8"), '3'),
                entry("amd64", None, '4'),
            ],
        };
        let pick = |s: &str| {
            select_platform(&idx, &Platform::parse(s).unwrap())
                .map(|d| d.digest.hex().chars().next().unwrap())
        };
        assert_eq!(pick("linux/amd64"), Some('4'));
        assert_eq!(pick("linux/arm64"), Some('3'));
        assert_eq!(pick("linux/arm64/v8"), Some('3'));
        assert_eq!(pick("linux/arm/v7"), Some('2'));
        assert_eq!(pick("linux/arm/v6"), Some('1'));
        assert_eq!(pick("linux/arm/v5"), None);
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(pick("windows/amd64"), None);
        assert_eq!(
            available_platforms(&idx),
            "linux/arm/v6, linux/arm/v7, linux/arm64/v8, linux/amd64"
        );
        assert_eq!(Platform::host().os, "linux");
    }

    #[test]
    fn diff_ids_from_config() {
        let c = format!(
            r#"{{"rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            d('e')
        );
        assert_eq!(config_diff_ids(c.as_bytes()).unwrap().len(), 1);
        assert!(config_diff_ids(b"{}").is_err());
    }
}
