//! TLS for registries: the server certificates Docker's Go TLS stack accepts given the same
//! `certs.d` files, and TLS failures said in words.
//!
//! Go's `crypto/x509` trusts a certificate that is itself in the root pool, whatever its
//! basic constraints: the usual self-signed recipe (`openssl req -x509 … -subj /CN=HOST
//! -addext subjectAltName=IP:…`), which OpenSSL 3 marks `CA:TRUE`, placed as
//! `certs.d/HOST:PORT/ca.crt`, works with Docker. webpki (rustls) refuses such a leaf
//! (`CaUsedAsEndEntity`). [`CertsDirVerifier`] therefore accepts a server certificate that is
//! byte for byte one of the registry's `certs.d` certificates, after checking its validity
//! period and that its subject alternative names cover the host name or IP address; the
//! handshake signature still proves the server holds its key. Every other certificate goes
//! through normal webpki verification against the system roots plus the `certs.d` CAs.
//! rustls is used directly (the same crate reqwest uses) so that the verifier can be plugged
//! into reqwest with `use_preconfigured_tls`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

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
            if let Some((not_before, not_after)) = validity(end_entity.as_ref()) {
                let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
                if now > not_after {
                    return Err(CertificateError::Expired.into());
                }
                if now < not_before {
                    return Err(CertificateError::NotValidYet.into());
                }
            } else {
                return Err(CertificateError::BadEncoding.into());
            }
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
            // A CA certificate as leaf that is not itself trusted: for Go (and so for the
            // user) it is simply signed by an unknown authority.
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(e)))
                if format!("{e:?}").contains("CaUsedAsEndEntity") =>
            {
                Err(CertificateError::UnknownIssuer.into())
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

/// `notBefore` and `notAfter` of a DER certificate, in Unix seconds.
fn validity(der: &[u8]) -> Option<(i64, i64)> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL,
    //   serialNumber INTEGER, signature SEQUENCE, issuer SEQUENCE, validity SEQUENCE {..}, .. } .. }
    let (_, cert, _) = der_item(der)?;
    let (_, tbs, _) = der_item(cert)?;
    let mut rest = tbs;
    let (tag, _, after) = der_item(rest)?;
    if tag == 0xa0 {
        rest = after;
    }
    for _ in 0..3 {
        let (_, _, after) = der_item(rest)?;
        rest = after;
    }
    let (tag, validity, _) = der_item(rest)?;
    if tag != 0x30 {
        return None;
    }
    let (t1, nb, after) = der_item(validity)?;
    let (t2, na, _) = der_item(after)?;
    Some((der_time(t1, nb)?, der_time(t2, na)?))
}

/// One DER element: (tag, contents, the bytes after it).
fn der_item(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, head) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*b.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let end = head.checked_add(len)?;
    Some((tag, b.get(head..end)?, b.get(end..)?))
}

/// UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime (`YYYYMMDDHHMMSSZ`, tag 0x18).
fn der_time(tag: u8, b: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(b).ok()?.strip_suffix('Z')?;
    let (year, rest) = match tag {
        0x17 => {
            let yy: i64 = s.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, s.get(2..)?)
        }
        0x18 => (s.get(..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    let num = |r: std::ops::Range<usize>| -> Option<i64> { rest.get(r)?.parse().ok() };
    let (mo, d, h, mi, se) = (num(0..2)?, num(2..4)?, num(4..6)?, num(6..8)?, num(8..10)?);
    Some(days_from_civil(year, mo, d)? * 86_400 + h * 3600 + mi * 60 + se)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> Option<i64> {
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_times() {
        assert_eq!(der_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(der_time(0x18, b"20000301000000Z"), Some(951_868_800));
        assert_eq!(der_time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(der_time(0x17, b"bad"), None);
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
