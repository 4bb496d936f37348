//! OCI distribution client: pull, push, login.
//!
//! * Pull: OCI and Docker v2 schema 2 manifests, indexes with platform selection, gzip/zstd/plain
//!   layers downloaded in parallel and streamed through verification, decompression and
//!   unpacking in one pass. Layers already in the store are not fetched again; the image is
//!   published only when all of its layers are.
//! * Push: blobs the registry has are skipped, blobs from another repository of the same
//!   registry are mounted, others uploaded (monolithic PUT, or chunked PATCH for big blobs).
//! * Auth: anonymous, Basic and Bearer tokens; credentials in Docker's `config.json` format.
//! * Transport policy: HTTPS verified with the system roots plus `certs.d/HOST:PORT/*.crt`.
//!   Loopback registries (127.0.0.0/8, ::1, localhost) try verified HTTPS and fall back to plain
//!   HTTP when the server does not speak TLS. Registries listed as insecure in
//!   `registries.conf`, or any registry with `tls_verify = Some(false)`, use HTTPS without
//!   verification and fall back to HTTP.
//! * Hiccups ([`retry`]): 429, 502, 503, 504, resets and truncated bodies are retried with
//!   backoff honouring `Retry-After`, bounded in tries and time, and progress says so; other
//!   errors fail at once.
//! * Distrust: manifests are limited to 4 MiB and configs to 16 MiB; every manifest, config and
//!   layer is checked against its digest and size before anything is published.
//!
//! Files and environment:
//!
//! | what | default | override |
//! |---|---|---|
//! | credentials (Docker `config.json` format, mode 0600) | `~/.docker/config.json` | `--authfile`, `REGISTRY_AUTH_FILE`, `DOCKER_CONFIG` |
//! | credential helpers | `credsStore` / `credHelpers` in that file run `docker-credential-NAME get\|store\|erase` | |
//! | insecure registries, mirrors ([`conf`]) | `/etc/berth/registries.conf` | `BERTH_REGISTRIES_CONF` |
//! | per-registry CAs (`*.crt`) and client certs (`X.cert` + `X.key`) | `/etc/berth/certs.d/HOST:PORT/` | `BERTH_CERTS_D` |
//!
//! Every public entry point ([`pull`], [`push`], [`login`], [`logout`]) is synchronous and
//! builds its own tokio runtime; do not call them from inside an async runtime.

pub mod auth;
pub mod client;
pub mod conf;
pub mod download;
pub mod error;
pub mod manifest;
pub mod retry;

pub use auth::Credentials;
pub use client::Transport;
pub use error::{RegistryError, Result};
pub use manifest::Platform;
pub mod progress;
mod pull;
mod push;
mod sources;
pub mod tls;

pub use progress::{OutputStream, ProgressMode};
pub use pull::{pull, pull_report, PullOptions, PullReport};
pub use push::{push, PushOptions};

use std::path::PathBuf;

/// Options of [`login`] and [`logout`].
#[derive(Debug, Clone, Default)]
pub struct LoginOptions {
    /// See [`Transport::tls_verify`].
    pub tls_verify: Option<bool>,
    /// Credentials file (default: `REGISTRY_AUTH_FILE`, `DOCKER_CONFIG`, `~/.docker/config.json`).
    pub auth_file: Option<PathBuf>,
}

/// Check `creds` against `registry` (`GET /v2/`, or the token server it names) and save them.
/// Returns the file written.
pub fn login(registry: &str, creds: &Credentials, opts: &LoginOptions) -> Result<PathBuf> {
    let registry = auth::normalize_registry(registry);
    let rt = runtime()?;
    rt.block_on(async {
        let transport = Transport::from_env(opts.tls_verify)?;
        let c = client::Client::connect(&registry, None, &transport, Some(creds.clone())).await?;
        c.verify_login().await
    })?;
    let path = auth::auth_file_path(opts.auth_file.as_deref());
    let mut f = auth::AuthFile::load(&path)?;
    f.store(&registry, creds)?;
    Ok(path)
}

/// Remove saved credentials for `registry`; returns whether there were any.
pub fn logout(registry: &str, opts: &LoginOptions) -> Result<bool> {
    let path = auth::auth_file_path(opts.auth_file.as_deref());
    let mut f = auth::AuthFile::load(&path)?;
    f.erase(registry)
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(32)
        .thread_name("berth-registry")
        .enable_all()
        .build()
        .map_err(|e| RegistryError::Other(format!("cannot start the async runtime: {e}")))
}
