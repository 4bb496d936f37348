//! HTTP transport to one registry: scheme selection (HTTPS, HTTP for loopback and insecure
//! registries), TLS roots from `certs.d`, and authentication (anonymous, Basic, Bearer tokens).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use berth_store::{Digest, Hasher};
use reqwest::header::{
    HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE,
};
use reqwest::{RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::auth::{parse_www_authenticate, Credentials};
use crate::conf::{is_loopback, registry_certs, RegistriesConf};
use crate::error::{RegistryError, Result};
use crate::manifest::{ACCEPT_MANIFESTS, MAX_MANIFEST};
use crate::retry::{self, Decision, RetryPolicy};

mod auth;
mod fetch;
mod response;

use auth::{challenges_of, pick_scheme, scheme_from_ping};
pub use fetch::read_limited;
pub use response::{error_from_response, error_message};
use response::{human_delay, retry_after_of};

const USER_AGENT: &str = concat!("berth/", env!("CARGO_PKG_VERSION"));

/// How to reach registries (shared by every client of one operation).
#[derive(Debug, Clone)]
pub struct Transport {
    /// `Some(false)`: HTTPS without verification, falling back to HTTP. `Some(true)`: verified
    /// HTTPS only, even for loopback registries. `None`: the default policy (see crate docs).
    pub tls_verify: Option<bool>,
    /// Mirrors and insecure registries (`registries.conf`).
    pub conf: RegistriesConf,
    /// Per-registry certificates: `<certs_dir>/<host[:port]>/{ca.crt,client.cert,client.key}`.
    pub certs_dir: PathBuf,
}

impl Transport {
    /// Defaults from the environment (`BERTH_REGISTRIES_CONF`, `BERTH_CERTS_D`).
    pub fn from_env(tls_verify: Option<bool>) -> Result<Transport> {
        Ok(Transport {
            tls_verify,
            conf: RegistriesConf::load_default()?,
            certs_dir: crate::conf::certs_dir(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Scheme {
    Anonymous,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Debug)]
struct AuthState {
    scheme: Scheme,
    tokens: HashMap<String, String>,
}

/// A connection to one registry endpoint.
#[derive(Debug)]
pub struct Client {
    /// The registry as references name it, e.g. `docker.io`.
    pub registry: String,
    /// `scheme://host[:port]` actually used.
    pub base: Url,
    http: reqwest::Client,
    creds: Option<Credentials>,
    state: Mutex<AuthState>,
    retry: RetryPolicy,
    notice: Notice,
}

/// A sink for one-line messages.
type NoticeFn = dyn Fn(&str) + Send + Sync;

/// Where retry notices go (the progress output of the operation).
#[derive(Clone, Default)]
struct Notice(Option<std::sync::Arc<NoticeFn>>);

impl std::fmt::Debug for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Notice(set)"
        } else {
            "Notice(none)"
        })
    }
}

/// Scope string for a repository.
pub fn repo_scope(repo: &str, actions: &str) -> String {
    format!("repository:{repo}:{actions}")
}

fn chain_text(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

fn is_cert_error(text: &str) -> bool {
    let t = text.to_ascii_lowercase();
    t.contains("certificate") || t.contains("unknownissuer") || t.contains("invalid peer")
}

impl Client {
    /// Connect to `registry` (or to `endpoint`, a mirror `[scheme://]host[:port]`), finding the
    /// scheme and the authentication it wants with `GET /v2/`.
    pub async fn connect(
        registry: &str,
        endpoint: Option<&str>,
        transport: &Transport,
        creds: Option<Credentials>,
    ) -> Result<Client> {
        let target = endpoint.unwrap_or(registry);
        let (explicit, hostport) = if let Some(r) = target.strip_prefix("https://") {
            (Some("https"), r)
        } else if let Some(r) = target.strip_prefix("http://") {
            (Some("http"), r)
        } else {
            (None, target)
        };
        let hostport = hostport.trim_end_matches('/');
        let hostport = if hostport == "docker.io" {
            "registry-1.docker.io"
        } else {
            hostport
        };
        let insecure = transport.tls_verify == Some(false)
            || transport.conf.is_insecure(registry)
            || transport.conf.is_insecure(hostport);
        let mut attempts: Vec<(&str, bool)> = Vec::new(); // (scheme, verify)
        match explicit {
            Some("http") => attempts.push(("http", true)),
            Some(_) => attempts.push(("https", !insecure)),
            None if insecure => {
                attempts.push(("https", false));
                attempts.push(("http", false));
            }
            None if is_loopback(hostport) && transport.tls_verify.is_none() => {
                attempts.push(("https", true));
                attempts.push(("http", true));
            }
            None => attempts.push(("https", true)),
        }
        let certs = registry_certs(&transport.certs_dir, hostport)?;
        let certs_dir = transport.certs_dir.display().to_string();
        let mut last_err = None;
        let probing = attempts.len() > 1;
        for (i, (scheme, verify)) in attempts.iter().enumerate() {
            // A loopback server that may not speak TLS gets a short handshake deadline.
            let timeout = if probing && *scheme == "https" { 5 } else { 30 };
            let http = build_http(&certs, *verify, hostport, Duration::from_secs(timeout))?;
            let base = Url::parse(&format!("{scheme}://{hostport}")).map_err(|e| {
                RegistryError::Other(format!("invalid registry address {hostport:?}: {e}"))
            })?;
            let ping = base.join("/v2/").expect("static path");
            let mut sent = http.get(ping.clone()).send().await;
            // A rate-limited or briefly unavailable registry gets the same retries as
            // later requests.
            let (policy, mut failures, mut waited) = (RetryPolicy::default(), 0, Duration::ZERO);
            while let Ok(resp) = &sent {
                if !retry::is_transient_status(resp.status().as_u16()) {
                    break;
                }
                failures += 1;
                match policy.next(failures, waited, retry_after_of(resp)) {
                    Decision::Retry(d) => {
                        tracing::warn!(
                            "{hostport}: GET /v2/ answered {}; retrying in {} ms",
                            resp.status(),
                            d.as_millis()
                        );
                        tokio::time::sleep(d).await;
                        waited += d;
                        sent = http.get(ping.clone()).send().await;
                    }
                    Decision::GiveUp(_) => break,
                }
            }
            match sent {
                Ok(resp) => {
                    let scheme = scheme_from_ping(resp, registry).await?;
                    return Ok(Client {
                        registry: registry.to_string(),
                        base,
                        http,
                        creds,
                        state: Mutex::new(AuthState {
                            scheme,
                            tokens: HashMap::new(),
                        }),
                        retry: RetryPolicy::default(),
                        notice: Notice::default(),
                    });
                }
                Err(e) => {
                    let text = chain_text(&e);
                    tracing::debug!("{scheme}://{hostport}: {text}");
                    if *scheme == "https" && *verify && is_cert_error(&text) {
                        return Err(RegistryError::Tls {
                            registry: hostport.to_string(),
                            detail: crate::tls::explain(&text, hostport),
                            certs_dir,
                        });
                    }
                    last_err = Some(text);
                    if i + 1 < attempts.len() {
                        continue;
                    }
                }
            }
        }
        Err(RegistryError::Connect {
            registry: hostport.to_string(),
            detail: last_err.unwrap_or_default(),
        })
    }

    /// The URL of `path` (`/v2/…`) on this registry.
    pub fn url(&self, path: &str) -> Url {
        self.base.join(path).expect("registry paths are valid")
    }

    /// Resolve a `Location` header against this registry.
    pub fn location(&self, resp: &Response) -> Result<Url> {
        let loc = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                RegistryError::Other(format!(
                    "registry {} sent no upload location; it may not support uploads",
                    self.registry
                ))
            })?;
        resp.url()
            .join(loc)
            .map_err(|e| RegistryError::Other(format!("registry sent a bad location {loc:?}: {e}")))
    }

    /// The HTTP client (TLS and timeouts as configured for this registry).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Whether credentials for this registry were found.
    pub fn has_credentials(&self) -> bool {
        self.creds.is_some()
    }

    /// Send retry notices (`what: error; retrying in N s (attempt I of M)`) to `f`, e.g. the
    /// progress output.
    pub fn set_retry_notice(&mut self, f: impl Fn(&str) + Send + Sync + 'static) {
        self.notice = Notice(Some(std::sync::Arc::new(f)));
    }

    /// Replace the retry bounds (default [`RetryPolicy::default`]).
    pub fn set_retry_policy(&mut self, p: RetryPolicy) {
        self.retry = p;
    }

    /// The retry bounds in force.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// Tell the user about a retry.
    pub fn notify(&self, msg: &str) {
        match &self.notice.0 {
            Some(f) => f(msg),
            None => tracing::warn!("{msg}"),
        }
    }

    /// Run `f` until it succeeds, fails for good, or the retry bounds run out (see
    /// [`crate::retry`]). `what` names the request in notices and errors.
    pub async fn retrying<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let (mut failures, mut waited) = (0u32, Duration::ZERO);
        loop {
            let e = match f().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let Some(retry_after) = retry::transient(&e) else {
                return Err(e);
            };
            failures += 1;
            match self.retry.next(failures, waited, retry_after) {
                Decision::Retry(d) => {
                    self.notify(&format!(
                        "{what}: {e}; retrying in {} (attempt {} of {})",
                        human_delay(d),
                        failures + 1,
                        self.retry.max_attempts
                    ));
                    tokio::time::sleep(d).await;
                    waited += d;
                }
                Decision::GiveUp(why) => {
                    return Err(RegistryError::GaveUp {
                        what: what.to_string(),
                        message: e.to_string(),
                        why,
                    })
                }
            }
        }
    }

    /// Send a request built by `mk`, authenticating for `scopes` and retrying once when the
    /// registry asks for (other) authentication.
    pub async fn send(
        &self,
        scopes: &[String],
        mk: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response> {
        let mut scopes: Vec<String> = scopes.to_vec();
        let auth = self.authorization(&scopes, false).await?;
        let mut rb = mk(&self.http);
        if let Some(a) = &auth {
            rb = rb.header(AUTHORIZATION, a);
        }
        let resp = rb.send().await.map_err(|e| self.conn_err(e))?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        // The registry wants something else: learn from its challenge and retry once.
        let challenges = challenges_of(resp.headers());
        let changed = {
            let mut st = self.state.lock().await;
            let new = pick_scheme(&challenges);
            if let Some(c) = challenges.iter().find(|c| c.scheme == "bearer") {
                if let Some(s) = c.param("scope") {
                    for s in s.split(' ') {
                        if !s.is_empty() && !scopes.iter().any(|x| x == s) {
                            scopes.push(s.to_string());
                        }
                    }
                }
            }
            let changed = new != st.scheme;
            if new != Scheme::Anonymous {
                st.scheme = new;
            }
            st.tokens.clear();
            changed
        };
        let auth2 = self.authorization(&scopes, true).await?;
        if auth2.is_none() || (auth2 == auth && !changed && self.creds.is_none()) {
            return Err(error_from_response(resp).await);
        }
        let mut rb = mk(&self.http);
        if let Some(a) = &auth2 {
            rb = rb.header(AUTHORIZATION, a);
        }
        let resp = rb.send().await.map_err(|e| self.conn_err(e))?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(error_from_response(resp).await);
        }
        Ok(resp)
    }

    /// Check the credentials we hold (for `login`): Basic against `/v2/`, Bearer at the realm.
    pub async fn verify_login(&self) -> Result<()> {
        let scheme = self.state.lock().await.scheme.clone();
        match scheme {
            Scheme::Anonymous => Ok(()),
            Scheme::Basic => {
                let resp = self.send(&[], |h| h.get(self.url("/v2/"))).await?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(error_from_response(resp).await)
                }
            }
            Scheme::Bearer { .. } => {
                self.authorization(&[], true).await?;
                let resp = self.send(&[], |h| h.get(self.url("/v2/"))).await?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(error_from_response(resp).await)
                }
            }
        }
    }

    fn conn_err(&self, e: reqwest::Error) -> RegistryError {
        RegistryError::Connect {
            registry: self.base.host_str().unwrap_or("").to_string()
                + &self
                    .base
                    .port()
                    .map(|p| format!(":{p}"))
                    .unwrap_or_default(),
            detail: chain_text(&e),
        }
    }
}

fn build_http(
    certs: &crate::conf::RegistryCerts,
    verify: bool,
    hostport: &str,
    connect_timeout: Duration,
) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .user_agent(USER_AGENT)
        .connect_timeout(connect_timeout)
        .read_timeout(Duration::from_secs(120))
        .pool_idle_timeout(Duration::from_secs(30))
        .tcp_nodelay(true);
    // Our own rustls configuration: certs.d certificates trusted as Docker (Go) trusts them,
    // client certificates, --tls-verify=false (see tls.rs).
    b = b.use_preconfigured_tls(crate::tls::client_config(certs, verify)?);
    b.build().map_err(|e| {
        RegistryError::Other(format!(
            "cannot set up HTTP for {hostport}: {}",
            chain_text(&e)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_error_documents() {
        let b = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#;
        assert_eq!(
            error_message(StatusCode::UNAUTHORIZED, b),
            "unauthorized: authentication required"
        );
        let b = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"},{"code":"DENIED"}]}"#;
        assert_eq!(
            error_message(StatusCode::NOT_FOUND, b),
            "manifest unknown: manifest unknown; denied"
        );
        assert_eq!(
            error_message(StatusCode::BAD_GATEWAY, b"\n<html>oops</html>"),
            "registry answered 502 bad gateway: <html>oops</html>"
        );
        assert_eq!(
            error_message(StatusCode::INTERNAL_SERVER_ERROR, b""),
            "registry answered 500 internal server error"
        );
    }

    #[test]
    fn picks_auth_scheme() {
        let ch = parse_www_authenticate(r#"Bearer realm="http://127.0.0.1:1/token",service="reg""#);
        assert_eq!(
            pick_scheme(&ch),
            Scheme::Bearer {
                realm: "http://127.0.0.1:1/token".into(),
                service: Some("reg".into())
            }
        );
        assert_eq!(
            pick_scheme(&parse_www_authenticate(r#"Basic realm="x""#)),
            Scheme::Basic
        );
        assert_eq!(pick_scheme(&[]), Scheme::Basic);
    }
}
