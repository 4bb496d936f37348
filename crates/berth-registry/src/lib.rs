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

pub mod auth;
pub mod client;
pub mod conf;
pub mod error;
pub mod manifest;

pub use auth::Credentials;
pub use client::Transport;
pub use error::{RegistryError, Result};
pub use manifest::Platform;
