//! Manifests, indexes and platform selection (OCI image spec and Docker v2 schema 2).

use std::fmt;

use berth_store::Digest;
use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, Result};

use berth_image::media::{
    self, DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_LAYER_ZSTD, DOCKER_MANIFEST_V1,
    DOCKER_MANIFEST_V1_SIGNED,
};
pub use berth_image::media::{Descriptor, ImageIndex, ImageManifest, MediaType};

/// Largest manifest or index accepted from a registry.
pub const MAX_MANIFEST: u64 = 4 << 20;
/// Largest image config accepted from a registry.
pub const MAX_CONFIG: u64 = 16 << 20;

/// The `Accept` header for manifest requests.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A parsed manifest document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    /// An image manifest (OCI or Docker schema 2).
    Manifest(Box<ImageManifest>),
    /// An image index or Docker manifest list.
    Index(Box<ImageIndex>),
}

/// Every descriptor's digest must name a blob berth can store (sha256, sha512).
fn check_digests<'a>(descs: impl IntoIterator<Item = &'a Descriptor>) -> Result<()> {
    for d in descs {
        media::blob_digest(d).map_err(|e| RegistryError::InvalidManifest(e.to_string()))?;
    }
    Ok(())
}

/// The descriptor's digest as berth's blob store names it.
///
/// # Errors
/// `InvalidManifest` for a digest berth cannot store (not sha256 or sha512); documents from
/// [`parse_document`] have been checked already.
pub fn blob_digest(d: &Descriptor) -> Result<Digest> {
    media::blob_digest(d).map_err(|e| RegistryError::InvalidManifest(e.to_string()))
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
    let is_v1 = |t: &str| t == DOCKER_MANIFEST_V1 || t == DOCKER_MANIFEST_V1_SIGNED;
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
                MediaType::ImageIndex.to_string()
            } else if probe.layers.is_some() {
                MediaType::ImageManifest.to_string()
            } else {
                return Err(RegistryError::InvalidManifest(
                    "document has neither layers nor manifests".into(),
                ));
            }
        }
    };
    if let (Some(body_t), Some(h)) = (probe.media_type.as_deref(), header) {
        let known =
            media::is_index(&media::media_type(h)) || media::is_manifest(&media::media_type(h));
        if known && body_t != h {
            return Err(RegistryError::InvalidManifest(format!(
                "the registry sent content type {h} but the document says {body_t}"
            )));
        }
    }
    let bad = |e: serde_json::Error| RegistryError::InvalidManifest(e.to_string());
    let kind = media::media_type(&kind);
    if media::is_index(&kind) {
        let idx: ImageIndex = serde_json::from_slice(body).map_err(bad)?;
        if idx.schema_version() != 2 {
            return Err(RegistryError::InvalidManifest(format!(
                "schemaVersion {} is not supported",
                idx.schema_version()
            )));
        }
        check_digests(idx.manifests())?;
        Ok(Document::Index(Box::new(idx)))
    } else if media::is_manifest(&kind) {
        let m: ImageManifest = serde_json::from_slice(body).map_err(bad)?;
        if m.schema_version() != 2 {
            return Err(RegistryError::InvalidManifest(format!(
                "schemaVersion {} is not supported",
                m.schema_version()
            )));
        }
        check_digests(std::iter::once(m.config()).chain(m.layers()))?;
        Ok(Document::Manifest(Box::new(m)))
    } else {
        Err(RegistryError::UnsupportedMediaType(kind.to_string()))
    }
}

/// Layer compression named by a layer media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// Uncompressed tar.
    Tar,
    /// gzip-compressed tar.
    Gzip,
    /// zstd-compressed tar.
    Zstd,
}

/// What a layer media type says about its compression; `None` for types we cannot unpack.
pub fn layer_kind(media_type: &MediaType) -> Option<LayerKind> {
    match media_type {
        MediaType::ImageLayer | MediaType::ImageLayerNonDistributable => Some(LayerKind::Tar),
        MediaType::ImageLayerGzip | MediaType::ImageLayerNonDistributableGzip => {
            Some(LayerKind::Gzip)
        }
        MediaType::ImageLayerZstd | MediaType::ImageLayerNonDistributableZstd => {
            Some(LayerKind::Zstd)
        }
        MediaType::Other(t) => match t.as_str() {
            DOCKER_LAYER => Some(LayerKind::Tar),
            DOCKER_LAYER_GZIP | media::DOCKER_FOREIGN_LAYER_GZIP => Some(LayerKind::Gzip),
            DOCKER_LAYER_ZSTD => Some(LayerKind::Zstd),
            _ => None,
        },
        _ => None,
    }
}

/// A platform a user asks for (`--platform os/arch[/variant]`) or an image config names;
/// index entries carry oci-spec's `Platform`, compared through [`Platform::of_descriptor`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture, Go's `GOARCH` names (`amd64`, `arm64`, `arm`, …).
    pub architecture: String,
    /// Operating system, Go's `GOOS` names (`linux`).
    pub os: String,
    /// CPU variant (`v7` for arm, `v8` for arm64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// `os.version` (Windows builds).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// `os.features`.
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

    /// The platform of an index entry, as strings (Go's `GOOS`/`GOARCH` names).
    pub fn of_descriptor(p: &media::Platform) -> Platform {
        Platform {
            architecture: p.architecture().to_string(),
            os: p.os().to_string(),
            variant: p.variant().clone(),
            os_version: p.os_version().clone(),
            os_features: p.os_features().clone(),
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
pub fn select_platform<'a>(index: &'a ImageIndex, want: &Platform) -> Option<&'a Descriptor> {
    let candidates: Vec<(&Descriptor, Platform)> = index
        .manifests()
        .iter()
        .filter(|d| !media::is_index(d.media_type()))
        .filter_map(|d| Some((d, Platform::of_descriptor(d.platform().as_ref()?))))
        .filter(|(_, p)| want.matches(p))
        .collect();
    let (_, wv) = normalize_arch(&want.architecture, want.variant.as_deref());
    candidates
        .iter()
        .find(|(_, p)| normalize_arch(&p.architecture, p.variant.as_deref()).1 == wv)
        .or_else(|| candidates.first())
        .map(|(d, _)| *d)
}

/// Platforms offered by an index, for error messages.
pub fn available_platforms(index: &ImageIndex) -> String {
    let v: Vec<String> = index
        .manifests()
        .iter()
        .filter_map(|d| d.platform().as_ref().map(Platform::of_descriptor))
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
    use berth_image::media::{DOCKER_CONFIG, DOCKER_MANIFEST};

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn parses_manifest_kinds() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","digest":"{}","size":10}},"layers":[{{"mediaType":"{DOCKER_LAYER_GZIP}","digest":"{}","size":20}}]}}"#,
            d('a'),
            d('b')
        );
        match parse_document(Some(DOCKER_MANIFEST), m.as_bytes()).unwrap() {
            Document::Manifest(m) => {
                assert_eq!(m.layers().len(), 1);
                assert_eq!(
                    layer_kind(m.layers()[0].media_type()),
                    Some(LayerKind::Gzip)
                );
            }
            _ => panic!("expected a manifest"),
        }
        // OCI manifest without mediaType, identified by the header.
        let m2 = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"{}","size":1}},"layers":[]}}"#,
            MediaType::ImageConfig,
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
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{}","size":3,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#,
            MediaType::ImageIndex,
            MediaType::ImageManifest,
            d('c')
        );
        assert!(matches!(
            parse_document(Some(MediaType::ImageIndex.as_ref()), idx.as_bytes()),
            Ok(Document::Index(_))
        ));
        // Header and body disagree.
        assert!(parse_document(Some(DOCKER_MANIFEST), idx.as_bytes()).is_err());
        let v1 = r#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#;
        let e = parse_document(None, v1.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("schema 1"), "{e}");
        assert!(parse_document(None, b"<html>").is_err());
        assert!(parse_document(
            None,
            br#"{"schemaVersion":2,"layers":[{"digest":"sha256:12"}]}"#
        )
        .is_err());
        // A digest berth cannot store is refused when the document is read.
        let m3 = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"blake3:{}","size":1}},"layers":[]}}"#,
            MediaType::ImageConfig,
            "a".repeat(64)
        );
        assert!(parse_document(None, m3.as_bytes()).is_err());
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

        let entry = |arch: &str, variant: Option<&str>, c: char| {
            let os = if arch == "unknown" {
                "unknown"
            } else {
                "linux"
            };
            let mut p = serde_json::json!({"os": os, "architecture": arch});
            if let Some(v) = variant {
                p["variant"] = v.into();
            }
            serde_json::json!({
                "mediaType": MediaType::ImageManifest.to_string(),
                "digest": d(c),
                "size": 1,
                "platform": p,
            })
        };
        let idx: ImageIndex = serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MediaType::ImageIndex.to_string(),
            "manifests": [
                entry("unknown", None, '0'),
                entry("arm", Some("v6"), '1'),
                entry("arm", Some("v7"), '2'),
                entry("arm64", Some("v8"), '3'),
                entry("amd64", None, '4'),
            ],
        }))
        .unwrap();
        let pick = |s: &str| {
            select_platform(&idx, &Platform::parse(s).unwrap())
                .map(|d| blob_digest(d).unwrap().hex().chars().next().unwrap())
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
