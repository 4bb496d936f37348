//! Reading from a registry: manifests (verified against their digest), blobs (ranged, for
//! resuming) and small blobs read whole under a size limit.

use super::*;

impl Client {
    /// Fetch a manifest, verified against `reference` when it is a digest (and against the
    /// registry's `Docker-Content-Digest` otherwise). Returns (bytes, content type, digest).
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
        display: &str,
    ) -> Result<(Vec<u8>, Option<String>, Digest)> {
        let what = format!("manifest {display}");
        self.retrying(&what, || self.get_manifest_once(repo, reference, display))
            .await
    }

    async fn get_manifest_once(
        &self,
        repo: &str,
        reference: &str,
        display: &str,
    ) -> Result<(Vec<u8>, Option<String>, Digest)> {
        let scopes = [repo_scope(repo, "pull")];
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let resp = self
            .send(&scopes, |h| {
                h.get(url.clone()).header(ACCEPT, ACCEPT_MANIFESTS)
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            let e = error_from_response(resp).await;
            return Err(RegistryError::ManifestUnknown {
                reference: display.to_string(),
                message: e.to_string(),
            });
        }
        if !resp.status().is_success() {
            return Err(error_from_response(resp).await);
        }
        let ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| Digest::parse(v.trim()).ok());
        let body = read_limited(resp, MAX_MANIFEST, "manifest", &self.registry).await?;
        let expected = Digest::parse(reference).ok().or(header_digest);
        let digest = match &expected {
            Some(e) => {
                let actual = Digest::compute(e.algorithm(), &body)
                    .map_err(|err| RegistryError::Other(err.to_string()))?;
                if &actual != e {
                    return Err(RegistryError::DigestMismatch {
                        what: "manifest",
                        expected: e.clone(),
                        actual,
                    });
                }
                if e.algorithm() == "sha256" {
                    actual
                } else {
                    Digest::sha256_of(&body)
                }
            }
            None => Digest::sha256_of(&body),
        };
        Ok((body, ct, digest))
    }

    /// Start a blob download (from `offset` when resuming); transient answers are retried.
    pub async fn get_blob(&self, repo: &str, digest: &Digest, offset: u64) -> Result<Response> {
        let what = format!("blob {digest}");
        self.retrying(&what, || self.get_blob_once(repo, digest, offset))
            .await
    }

    async fn get_blob_once(&self, repo: &str, digest: &Digest, offset: u64) -> Result<Response> {
        let scopes = [repo_scope(repo, "pull")];
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let resp = self
            .send(&scopes, |h| {
                let rb = h.get(url.clone());
                if offset > 0 {
                    rb.header(reqwest::header::RANGE, format!("bytes={offset}-"))
                } else {
                    rb
                }
            })
            .await?;
        if !resp.status().is_success() {
            return Err(error_from_response(resp).await);
        }
        Ok(resp)
    }

    /// Fetch a small blob whole, verified against its descriptor.
    pub async fn get_small_blob(
        &self,
        repo: &str,
        what: &'static str,
        digest: &Digest,
        size: u64,
        limit: u64,
    ) -> Result<Vec<u8>> {
        if size > limit {
            return Err(RegistryError::TooLarge {
                what,
                registry: self.registry.clone(),
                limit,
            });
        }
        let label = format!("{what} {digest}");
        self.retrying(&label, || {
            self.get_small_blob_once(repo, what, digest, size)
        })
        .await
    }

    async fn get_small_blob_once(
        &self,
        repo: &str,
        what: &'static str,
        digest: &Digest,
        size: u64,
    ) -> Result<Vec<u8>> {
        let resp = self.get_blob_once(repo, digest, 0).await?;
        let body = read_limited(resp, size, what, &self.registry)
            .await
            .map_err(|e| match e {
                RegistryError::TooLarge { .. } => RegistryError::SizeMismatch {
                    what,
                    digest: digest.clone(),
                    expected: size,
                    actual: size + 1,
                },
                e => e,
            })?;
        if body.len() as u64 != size {
            return Err(RegistryError::SizeMismatch {
                what,
                digest: digest.clone(),
                expected: size,
                actual: body.len() as u64,
            });
        }
        let mut h =
            Hasher::new(digest.algorithm()).map_err(|e| RegistryError::Other(e.to_string()))?;
        h.update(&body);
        let actual = h.finish();
        if &actual != digest {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: digest.clone(),
                actual,
            });
        }
        Ok(body)
    }
}

/// Read a response body, refusing more than `limit` bytes.
pub async fn read_limited(
    mut resp: Response,
    limit: u64,
    what: &'static str,
    registry: &str,
) -> Result<Vec<u8>> {
    let too_large = || RegistryError::TooLarge {
        what,
        registry: registry.to_string(),
        limit,
    };
    if let Some(len) = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > limit {
            return Err(too_large());
        }
    }
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if out.len() as u64 + c.len() as u64 > limit {
                    return Err(too_large());
                }
                out.extend_from_slice(&c);
            }
            Ok(None) => return Ok(out),
            Err(e) => {
                return Err(RegistryError::Connect {
                    registry: registry.to_string(),
                    detail: format!("reading {what}: {}", chain_text(&e)),
                })
            }
        }
    }
}
