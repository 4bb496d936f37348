//! Registry credentials a client sends: the `X-Registry-Auth` header of pull and push (base64url
//! JSON `AuthConfig`) and the body of `POST /auth`. The registry client reads credentials from
//! a Docker `config.json`; a client's credentials are written to a private one (a 0700
//! directory under the store's tmp, file 0600) for the one request, and removed after it.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use crate::http::{self, Resp};
use crate::router::Req;
use crate::server::App;
use crate::{ApiError, Result};

/// Docker's `AuthConfig` (the fields berth uses).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct AuthConfig {
    #[serde(alias = "Username")]
    username: String,
    #[serde(alias = "Password")]
    password: String,
    #[serde(alias = "ServerAddress")]
    serveraddress: String,
    #[serde(alias = "IdentityToken")]
    identitytoken: String,
    #[serde(alias = "RegistryToken")]
    registrytoken: String,
}

impl AuthConfig {
    /// Whether the client gave any credential.
    fn is_empty(&self) -> bool {
        self.username.is_empty()
            && self.password.is_empty()
            && self.identitytoken.is_empty()
            && self.registrytoken.is_empty()
    }
}

/// Decode an `X-Registry-Auth` value (base64url or standard base64, padded or not, of JSON).
///
/// Errors: 400 when it is not base64 of a JSON object.
pub(crate) fn decode_header(v: &str) -> Result<AuthConfig> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(AuthConfig::default());
    }
    let unpadded = v.trim_end_matches('=');
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(unpadded)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(unpadded))
        .map_err(|_| {
            ApiError::BadParameter("X-Registry-Auth: not base64 of a JSON AuthConfig".into())
        })?;
    serde_json::from_slice(&raw).map_err(|e| {
        ApiError::BadParameter(format!("X-Registry-Auth: invalid AuthConfig JSON: {e}"))
    })
}

/// A private `config.json` holding one registry's credentials; removed on drop.
pub(crate) struct TempAuthFile {
    dir: PathBuf,
}

impl TempAuthFile {
    /// The file to pass as `auth_file`.
    pub(crate) fn path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// Write `auth` for `registry` (`host[:port]`, or `docker.io`) under the store's tmp.
    /// `None` when `auth` holds no credential (the service's own config applies).
    ///
    /// Errors: 500 when the file cannot be written.
    pub(crate) fn write(
        root: &Path,
        registry: &str,
        auth: &AuthConfig,
    ) -> Result<Option<TempAuthFile>> {
        if auth.is_empty() {
            return Ok(None);
        }
        let n: u64 = rand::random();
        let dir = berth_store::tmp_path(root, &format!("api-auth-{n:016x}"));
        if let Some(p) = dir.parent() {
            std::fs::create_dir_all(p).map_err(|e| ApiError::Internal(format!("{e}")))?;
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| ApiError::Internal(format!("{}: {e}", dir.display())))?;
        let t = TempAuthFile { dir };
        let entry = if !auth.identitytoken.is_empty() {
            json!({"identitytoken": auth.identitytoken})
        } else if !auth.registrytoken.is_empty() {
            json!({"identitytoken": auth.registrytoken})
        } else {
            let raw = format!("{}:{}", auth.username, auth.password);
            json!({"auth": base64::engine::general_purpose::STANDARD.encode(raw)})
        };
        let key = berth_registry::auth::config_key(registry);
        let doc = json!({"auths": {key: entry}});
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(t.path())
            .map_err(|e| ApiError::Internal(format!("{}: {e}", t.path().display())))?;
        f.write_all(doc.to_string().as_bytes())
            .map_err(|e| ApiError::Internal(format!("{}: {e}", t.path().display())))?;
        Ok(Some(t))
    }
}

impl Drop for TempAuthFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The credentials of a pull or push request's `X-Registry-Auth` header, written for
/// `registry`.
pub(crate) fn from_request(
    root: &Path,
    headers: &hyper::HeaderMap,
    registry: &str,
) -> Result<Option<TempAuthFile>> {
    let Some(v) = headers.get("X-Registry-Auth") else {
        return Ok(None);
    };
    let text = v
        .to_str()
        .map_err(|_| ApiError::BadParameter("X-Registry-Auth: not ASCII".into()))?;
    let auth = decode_header(text)?;
    TempAuthFile::write(root, registry, &auth)
}

/// `POST /auth`: check the credentials against the registry (`serveraddress`, default Docker
/// Hub) without saving them; 200 `{"Status": "Login Succeeded"}`, 401 when refused.
pub async fn login(app: &Arc<App>, mut r: Req) -> Result<Resp> {
    let auth: AuthConfig = crate::containers::read_json(&mut r.inner).await?;
    let server = if auth.serveraddress.is_empty() {
        "docker.io".to_string()
    } else {
        auth.serveraddress.clone()
    };
    let root = app.root.clone();
    crate::server::run_blocking(move || {
        let registry = berth_registry::auth::normalize_registry(&server);
        // Saved into a private file that is removed at once: the service keeps nothing.
        let n: u64 = rand::random();
        let dir = berth_store::tmp_path(&root, &format!("api-login-{n:016x}"));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| ApiError::Internal(format!("{}: {e}", dir.display())))?;
        let res = berth_registry::login(
            &registry,
            &berth_registry::Credentials {
                username: auth.username.clone(),
                password: auth.password.clone(),
            },
            &berth_registry::LoginOptions {
                tls_verify: None,
                auth_file: Some(dir.join("config.json")),
            },
        );
        let _ = std::fs::remove_dir_all(&dir);
        res.map_err(|e| ApiError::Unauthorized(e.to_string()))
    })
    .await?;
    Ok(http::json(
        200,
        &json!({"Status": "Login Succeeded", "IdentityToken": ""}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_in_either_base64() {
        let doc = r#"{"username":"u","password":"p?>","serveraddress":"127.0.0.1:5000"}"#;
        for enc in [
            base64::engine::general_purpose::URL_SAFE.encode(doc),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(doc),
        ] {
            let a = decode_header(&enc).unwrap();
            assert_eq!((a.username.as_str(), a.password.as_str()), ("u", "p?>"));
        }
        assert!(decode_header("e30=").unwrap().is_empty());
        assert!(decode_header("!!").is_err());
    }

    #[test]
    fn temp_file_is_private_and_removed() {
        let t = tempfile::tempdir().unwrap();
        let a = AuthConfig {
            username: "u".into(),
            password: "p".into(),
            ..Default::default()
        };
        let f = TempAuthFile::write(t.path(), "127.0.0.1:5000", &a)
            .unwrap()
            .unwrap();
        let p = f.path();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("127.0.0.1:5000"), "{text}");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        drop(f);
        assert!(!p.exists());
    }
}
