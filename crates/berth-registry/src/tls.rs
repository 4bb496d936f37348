//! TLS for registries: the server certificates Docker's Go TLS stack accepts given the same
//! `certs.d` files, and TLS failures said in words.
//!
//! Go's `crypto/x509` trusts a certificate that is itself in the root pool, whatever its
//! basic constraints: the usual self-signed recipe (`openssl req -x509 … -subj /CN=HOST
//! -addext subjectAltName=IP:…`), which OpenSSL 3 marks `CA:TRUE`, placed as
//! `certs.d/HOST:PORT/ca.crt`, works with Docker. Go also ignores the basic constraints of
//! the leaf when it builds a chain, so a `CA:TRUE` server certificate signed by a `certs.d`
//! CA works too. webpki (rustls) refuses both (`CaUsedAsEndEntity`). [`CertsDirVerifier`]
//! therefore accepts a server certificate that is byte for byte one of the registry's
//! `certs.d` certificates, and, when webpki refuses a leaf only for being a CA, one whose
//! signature verifies with the public key of a `certs.d` certificate whose subject is the
//! leaf's issuer. In both cases the validity periods, the extended key usage (server
//! authentication, when the extension is present) and the subject alternative names against
//! the host name or IP address are still checked; the handshake signature proves the server
//! holds the leaf's key. Every other certificate goes through normal webpki verification
//! against the system roots plus the `certs.d` CAs. rustls is used directly (the same crate
//! reqwest uses) so that the verifier can be plugged into reqwest with
//! `use_preconfigured_tls`; certificates are read with `x509-parser` (its `verify` feature
//! checks signatures with ring, the provider rustls already uses here).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use crate::conf::RegistryCerts;
use crate::error::RegistryError;

/// The rustls client configuration for one registry: `verify` false accepts any certificate
/// (`--tls-verify=false`, insecure registries); otherwise [`CertsDirVerifier`]. A client
/// certificate (`X.cert` + `X.key`) is presented when the registry asks.
///
/// Errors: a `certs.d` file that is not PEM, or a client key rustls cannot use
/// ([`RegistryError::ConfigFile`]).
pub fn client_config(
    certs: &RegistryCerts,
    verify: bool,
) -> Result<rustls::ClientConfig, RegistryError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::Other(format!("tls setup: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = if verify {
        Arc::new(CertsDirVerifier::new(certs, provider.clone())?)
    } else {
        Arc::new(AcceptAny {
            provider: provider.clone(),
        })
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &certs.identity {
        Some((path, pem)) => {
            let bad = |message: String| RegistryError::ConfigFile {
                path: path.clone(),
                message,
            };
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    bad(format!(
                        "not a PEM client certificate ({e}); fix or remove it"
                    ))
                })?;
            let key = PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
                bad(format!("no PEM private key for the client certificate ({e}); fix or remove the .key file"))
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                bad(format!(
                    "client certificate and key cannot be used ({e}); fix or remove them"
                ))
            })?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Server certificate verification as Go's for a registry with `certs.d` files (see the
/// module documentation).
#[derive(Debug)]
pub struct CertsDirVerifier {
    /// The `certs.d` certificates, trusted as they are.
    pinned: Vec<CertificateDer<'static>>,
    /// webpki against the system roots plus the `certs.d` certificates.
    webpki: Arc<WebPkiServerVerifier>,
    provider: Arc<CryptoProvider>,
}

impl CertsDirVerifier {
    /// A verifier for `certs` (its `roots`, the `*.crt` files) and the system roots.
    ///
    /// Errors: a `*.crt` file that holds no PEM certificate ([`RegistryError::ConfigFile`]).
    pub fn new(
        certs: &RegistryCerts,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, RegistryError> {
        let mut roots = RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        let mut pinned = Vec::new();
        for (path, pem) in &certs.roots {
            let found: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| RegistryError::ConfigFile {
                    path: path.clone(),
                    message: format!("not a PEM certificate ({e}); fix or remove it"),
                })?;
            if found.is_empty() {
                return Err(RegistryError::ConfigFile {
                    path: path.clone(),
                    message: "no PEM certificate in this file; fix or remove it".into(),
                });
            }
            for c in found {
                // A certificate webpki cannot use as an anchor may still be pinned.
                let _ = roots.add(c.clone());
                pinned.push(c);
            }
        }
        let webpki = if roots.is_empty() {
            None
        } else {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .ok()
        };
        let webpki = match webpki {
            Some(v) => v,
            // No usable anchor at all: a verifier over an empty store refuses everything
            // (UnknownIssuer) except what is pinned.
            None => WebPkiServerVerifier::builder_with_provider(
                Arc::new(fallback_roots()),
                provider.clone(),
            )
            .build()
            .map_err(|e| RegistryError::Other(format!("tls setup: {e}")))?,
        };
        Ok(CertsDirVerifier {
            pinned,
            webpki,
            provider,
        })
    }
}

/// A root store with one throwaway anchor, for a verifier that must exist but trusts nothing
/// useful (rustls refuses to build a verifier over an empty store).
fn fallback_roots() -> RootCertStore {
    let mut r = RootCertStore::empty();
    r.roots.push(rustls::pki_types::TrustAnchor {
        subject: rustls::pki_types::Der::from_slice(b"\x30\x00"),
        subject_public_key_info: rustls::pki_types::Der::from_slice(b"\x30\x00"),
        name_constraints: None,
    });
    r
}

impl CertsDirVerifier {
    /// A `CA:TRUE` server certificate `end_entity` that webpki refused only for its basic
    /// constraints: accepted when a `certs.d` certificate whose subject is its issuer signed
    /// it, both are within their validity periods, it may serve TLS (extended key usage) and
    /// it names `server_name`.
    ///
    /// Errors: `UnsupportedSignatureAlgorithm` for a SHA-1 signature (Go's rule);
    /// `UnknownIssuer` when no `certs.d` certificate signed it; `Expired`,
    /// `NotValidYet`, `InvalidPurpose`, `NotValidForName`, `BadEncoding` as webpki says them.
    fn verify_ca_leaf(
        &self,
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let leaf = parse(end_entity)?;
        // Go refuses SHA-1 certificate signatures (x509: insecure algorithm); so does berth.
        let alg = &leaf.signature_algorithm.algorithm;
        if *alg == x509_parser::oid_registry::OID_PKCS1_SHA1WITHRSA
            || *alg == x509_parser::oid_registry::OID_SHA1_WITH_RSA
        {
            return Err(CertificateError::UnsupportedSignatureAlgorithmContext {
                signature_algorithm_id: alg.as_bytes().to_vec(),
                supported_algorithms: Vec::new(),
            }
            .into());
        }
        let issuer = self
            .pinned
            .iter()
            .filter_map(|p| X509Certificate::from_der(p.as_ref()).ok())
            .map(|(_, ca)| ca)
            .find(|ca| {
                ca.subject().as_raw() == leaf.issuer().as_raw()
                    && leaf.verify_signature(Some(ca.public_key())).is_ok()
            })
            .ok_or(CertificateError::UnknownIssuer)?;
        check_dates(&issuer, now)?;
        check_dates(&leaf, now)?;
        check_server_auth(&leaf)?;
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, server_name)?;
        Ok(ServerCertVerified::assertion())
    }
}

/// `der` parsed; `BadEncoding` if it is not an X.509 certificate.
fn parse<'a>(der: &'a CertificateDer<'_>) -> Result<X509Certificate<'a>, CertificateError> {
    match X509Certificate::from_der(der.as_ref()) {
        Ok((_, cert)) => Ok(cert),
        Err(_) => Err(CertificateError::BadEncoding),
    }
}

/// `Expired` or `NotValidYet` unless `now` lies within `cert`'s validity period.
fn check_dates(cert: &X509Certificate<'_>, now: UnixTime) -> Result<(), CertificateError> {
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = cert.validity();
    if now > validity.not_after.timestamp() {
        return Err(CertificateError::Expired);
    }
    if now < validity.not_before.timestamp() {
        return Err(CertificateError::NotValidYet);
    }
    Ok(())
}

/// `InvalidPurpose` when `cert` has an extended key usage extension that allows neither TLS
/// server authentication nor any purpose (Go's rule; no extension allows everything);
/// `BadEncoding` when the extension cannot be read.
fn check_server_auth(cert: &X509Certificate<'_>) -> Result<(), CertificateError> {
    match cert.extended_key_usage() {
        Ok(None) => Ok(()),
        Ok(Some(eku)) if eku.value.server_auth || eku.value.any => Ok(()),
        Ok(Some(_)) => Err(CertificateError::InvalidPurpose),
        Err(_) => Err(CertificateError::BadEncoding),
    }
}

impl ServerCertVerifier for CertsDirVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|p| p.as_ref() == end_entity.as_ref())
        {
            let leaf = parse(end_entity)?;
            check_dates(&leaf, now)?;
            check_server_auth(&leaf)?;
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_name(&parsed, server_name)?;
            return Ok(ServerCertVerified::assertion());
        }
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            // A CA certificate as leaf: Go accepts it when a trusted CA signed it. If no
            // certs.d certificate did, it is for Go (and so for the user) simply signed by an
            // unknown authority.
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(e)))
                if format!("{e:?}").contains("CaUsedAsEndEntity") =>
            {
                self.verify_ca_leaf(end_entity, server_name, now)
            }
            r => r,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `--tls-verify=false`: any certificate (the handshake signatures are still checked).
#[derive(Debug)]
struct AcceptAny {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS failure in words a user understands, from the error text of the HTTP stack (which
/// carries rustls's variant names, e.g. `invalid peer certificate: UnknownIssuer`).
pub fn explain(detail: &str, host: &str) -> String {
    let has = |s: &str| detail.contains(s);
    if has("CaUsedAsEndEntity") {
        format!("the certificate of {host} is a CA certificate (CA:TRUE) that no certs.d file lists; put that very certificate in certs.d")
    } else if has("NotValidForName") || has("not valid for name") {
        format!("the certificate of {host} is not valid for the name {host} (its subject alternative names do not include it)")
    } else if has("UnknownIssuer") || has("unknown issuer") {
        format!("the certificate of {host} is not signed by a trusted authority")
    } else if has("Expired") || has("certificate expired") {
        format!("the certificate of {host} has expired")
    } else if has("NotValidYet") || has("not valid yet") {
        format!("the certificate of {host} is not valid yet (check the clocks)")
    } else if has("BadSignature") || has("InvalidSignatureForPublicKey") {
        format!("the certificate of {host} has a bad signature")
    } else if has("UnsupportedSignatureAlgorithm") {
        format!("the certificate of {host} uses a signature algorithm that is not supported")
    } else if has("BadEncoding") {
        format!("the certificate of {host} is malformed")
    } else if has("InvalidPurpose") {
        format!("the certificate of {host} is not meant for TLS servers (extended key usage)")
    } else if has("CertificateRequired") || has("certificate required") {
        format!("{host} requires a client certificate: add CLIENT.cert and CLIENT.key to its certs.d directory")
    } else if has("BadCertificate") || has("bad certificate") || has("UnknownCA") {
        format!("{host} refused our client certificate")
    } else {
        format!("tls handshake with {host} failed ({})", last_part(detail))
    }
}

/// The innermost part of an error chain text ("a: b: c" → "c").
fn last_part(detail: &str) -> &str {
    detail.rsplit(": ").next().unwrap_or(detail).trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &[u8] = include_bytes!("../testdata/tls/ca.crt");

    /// A verifier whose certs.d holds only `ca.crt` (and `ca_rsa.crt`), and the DER of
    /// `testdata/tls/NAME.crt`.
    fn setup(name: &str) -> (CertsDirVerifier, CertificateDer<'static>) {
        let certs = RegistryCerts {
            roots: vec![
                ("certs.d/127.0.0.1:5000/ca.crt".into(), CA.to_vec()),
                (
                    "certs.d/127.0.0.1:5000/ca_rsa.crt".into(),
                    include_bytes!("../testdata/tls/ca_rsa.crt").to_vec(),
                ),
            ],
            identity: None,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let v = CertsDirVerifier::new(&certs, provider).unwrap();
        let path = format!("{}/testdata/tls/{name}.crt", env!("CARGO_MANIFEST_DIR"));
        let pem = std::fs::read(path).unwrap();
        (v, CertificateDer::from_pem_slice(&pem).unwrap())
    }

    fn verify(name: &str, host: &str, now_secs: u64) -> Result<ServerCertVerified, rustls::Error> {
        let (v, leaf) = setup(name);
        let server = ServerName::try_from(host.to_string()).unwrap();
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(now_secs));
        v.verify_server_cert(&leaf, &[], &server, &[], now)
    }

    /// 2030-01-01: inside every fixture's validity period (2026 to 2126).
    const NOW: u64 = 1_893_456_000;

    #[test]
    fn ca_leaf_signed_by_a_certs_d_ca_is_accepted_for_its_names_only() {
        verify("leaf_ip", "127.0.0.1", NOW).unwrap();
        verify("leaf_dns", "registry.test", NOW).unwrap();
        let e = verify("leaf_ip", "127.0.0.2", NOW).unwrap_err();
        assert!(
            explain(&format!("{e:?}"), "h").contains("not valid for the name"),
            "{e:?}"
        );
        let e = verify("leaf_dns", "other.test", NOW).unwrap_err();
        assert!(format!("{e:?}").contains("NotValidForName"), "{e:?}");
        let e = verify("leaf_dns", "127.0.0.1", NOW).unwrap_err();
        assert!(format!("{e:?}").contains("NotValidForName"), "{e:?}");
    }

    #[test]
    fn ca_leaf_dates_purpose_and_signer_are_checked() {
        // 2200-01-01 and 1970: outside the validity period.
        let e = verify("leaf_ip", "127.0.0.1", 7_258_118_400).unwrap_err();
        assert!(explain(&format!("{e:?}"), "h").contains("expired"), "{e:?}");
        let e = verify("leaf_ip", "127.0.0.1", 0).unwrap_err();
        assert!(
            explain(&format!("{e:?}"), "h").contains("not valid yet"),
            "{e:?}"
        );
        // Signed by another CA with the same subject name: the signature decides.
        let e = verify("leaf_other_ca", "127.0.0.1", NOW).unwrap_err();
        assert!(
            explain(&format!("{e:?}"), "h").contains("not signed by a trusted authority"),
            "{e:?}"
        );
        // RSA: SHA-256 accepted, SHA-1 refused as Go refuses it.
        verify("leaf_rsa", "127.0.0.1", NOW).unwrap();
        let e = verify("leaf_sha1", "127.0.0.1", NOW).unwrap_err();
        assert!(
            explain(&format!("{e:?}"), "h").contains("signature algorithm"),
            "{e:?}"
        );
        // extendedKeyUsage=clientAuth only: not for a TLS server.
        let e = verify("leaf_client_only", "127.0.0.1", NOW).unwrap_err();
        assert!(
            explain(&format!("{e:?}"), "h").contains("not meant for TLS servers"),
            "{e:?}"
        );
    }

    #[test]
    fn pinned_certificate_dates_and_names_are_checked() {
        let (v, ca) = setup("ca");
        let now = UnixTime::since_unix_epoch(std::time::Duration::from_secs(NOW));
        // The CA has no SAN: pinned, but not valid for any name.
        let server = ServerName::try_from("127.0.0.1".to_string()).unwrap();
        let e = v
            .verify_server_cert(&ca, &[], &server, &[], now)
            .unwrap_err();
        assert!(format!("{e:?}").contains("NotValidForName"), "{e:?}");
        let later = UnixTime::since_unix_epoch(std::time::Duration::from_secs(7_258_118_400));
        let e = v
            .verify_server_cert(&ca, &[], &server, &[], later)
            .unwrap_err();
        assert!(format!("{e:?}").contains("Expired"), "{e:?}");
    }

    #[test]
    fn explanations_are_words() {
        let e = explain(
            "error sending request: client error (Connect): invalid peer certificate: UnknownIssuer",
            "127.0.0.1:5000",
        );
        assert_eq!(
            e,
            "the certificate of 127.0.0.1:5000 is not signed by a trusted authority"
        );
        assert!(explain(
            "invalid peer certificate: NotValidForNameContext { .. }",
            "h"
        )
        .contains("not valid for the name h"));
        assert!(explain(
            "invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))",
            "h"
        )
        .contains("CA:TRUE"));
        assert!(explain("invalid peer certificate: Expired", "h").contains("expired"));
        assert!(!explain("received fatal alert: HandshakeFailure", "h").contains("Other("));
    }
}
