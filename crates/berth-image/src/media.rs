//! OCI descriptors, manifests, indexes and media types: one set of types for the whole of
//! berth, `oci-spec`'s (`oci_spec::image`), used by the archive loader and saver here and by
//! `berth-registry` for pull and push. oci-spec names the OCI media types
//! ([`MediaType`]); the Docker image manifest v2 schema 2 types it leaves as
//! [`MediaType::Other`] are named here.
//!
//! Digests in descriptors are oci-spec's [`oci_spec::image::Digest`] (any registered
//! algorithm); berth's blob store takes [`berth_store::Digest`] (sha256, sha512), which
//! [`blob_digest`] converts to.

use berth_store::{Digest, DigestError};
pub use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType, Platform};

/// Docker image manifest v2 schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (the schema 2 counterpart of an OCI image index).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest v2 schema 1 (deprecated; refused with a hint).
pub const DOCKER_MANIFEST_V1: &str = "application/vnd.docker.distribution.manifest.v1+json";
/// Signed Docker image manifest v2 schema 1 (deprecated; refused with a hint).
pub const DOCKER_MANIFEST_V1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker uncompressed layer.
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker zstd layer (written by some tools; Docker itself uses the OCI zstd type).
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
/// Docker foreign (non-distributable) gzip layer.
pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

/// Annotation naming an image in an OCI layout's `index.json` (a tag, or a full reference).
pub const ANNOTATION_REF_NAME: &str = oci_spec::image::ANNOTATION_REF_NAME;

/// Whether `mt` names an image index or a Docker manifest list.
pub fn is_index(mt: &MediaType) -> bool {
    *mt == MediaType::ImageIndex || mt.as_ref() == DOCKER_MANIFEST_LIST
}

/// Whether `mt` names an image manifest (OCI or Docker schema 2).
pub fn is_manifest(mt: &MediaType) -> bool {
    *mt == MediaType::ImageManifest || mt.as_ref() == DOCKER_MANIFEST
}

/// A media type given as a string (`application/vnd.docker…` becomes [`MediaType::Other`]).
pub fn media_type(s: &str) -> MediaType {
    MediaType::from(s)
}

/// The descriptor's digest as berth's blob store names blobs.
///
/// # Errors
/// [`DigestError`] when the algorithm is not sha256 or sha512 (or the digest is malformed).
pub fn blob_digest(d: &Descriptor) -> Result<Digest, DigestError> {
    Digest::parse(d.digest().as_ref())
}

/// A descriptor of the blob `digest` of `size` bytes with media type `mt`.
pub fn descriptor(mt: MediaType, digest: &Digest, size: u64) -> Descriptor {
    let d = oci_spec::image::Digest::try_from(digest.as_str())
        .expect("berth digests (sha256/sha512, lowercase hex) are valid OCI digests");
    Descriptor::new(mt, size, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_types_are_other_and_classified() {
        assert_eq!(
            media_type(DOCKER_MANIFEST),
            MediaType::Other(DOCKER_MANIFEST.into())
        );
        assert!(is_manifest(&media_type(DOCKER_MANIFEST)));
        assert!(is_manifest(&MediaType::ImageManifest));
        assert!(is_index(&media_type(DOCKER_MANIFEST_LIST)));
        assert!(is_index(&media_type(
            "application/vnd.oci.image.index.v1+json"
        )));
        assert!(!is_index(&MediaType::ImageManifest));
    }

    #[test]
    fn digests_convert_both_ways() {
        let d = Digest::sha256_of(b"x");
        let desc = descriptor(MediaType::ImageConfig, &d, 1);
        assert_eq!(blob_digest(&desc).unwrap(), d);
        let json = serde_json::to_string(&desc).unwrap();
        assert!(
            json.starts_with(
                r#"{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:"#
            ),
            "{json}"
        );
        let blake: Descriptor = serde_json::from_str(&format!(
            r#"{{"mediaType":"x/y","digest":"blake3:{}","size":1}}"#,
            "a".repeat(64)
        ))
        .unwrap();
        assert!(blob_digest(&blake).is_err());
    }
}
