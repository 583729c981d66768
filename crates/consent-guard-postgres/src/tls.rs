//! TLS for the PostgreSQL store, by rustls: what `sslmode` and `sslrootcert` in a
//! connection string mean, and the rustls configuration they make.
//!
//! tokio-postgres itself knows `sslmode` `disable`, `prefer` and `require`, and checks
//! no certificate; the store reads `verify-ca`, `verify-full` and `sslrootcert` out of
//! the string before tokio-postgres parses it, as libpq defines them:
//! - `disable`: no TLS;
//! - `prefer` (tokio-postgres's default), `require`: TLS (required for `require`); the
//!   certificate is checked against `sslrootcert` when one is given, otherwise not at
//!   all (encryption only, as libpq does);
//! - `verify-ca`: TLS, certificate signed by a trusted authority, any host name;
//! - `verify-full`: TLS, trusted authority, and the certificate names the host.
//!
//! The trusted authorities are the PEM file `sslrootcert` names, or else the Mozilla
//! roots of `webpki-roots` (managed services sign with public authorities).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use consent_guard::error::StoreError;

/// How far the server's certificate is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verify {
    /// Not at all: encryption only.
    Nothing,
    /// Signed by a trusted authority.
    Authority,
    /// Signed by a trusted authority and naming the host.
    Full,
}

/// The TLS settings read out of a connection string, and the string left for
/// tokio-postgres.
#[derive(Debug)]
pub(super) struct Settings {
    pub(super) rest: String,
    pub(super) verify: Verify,
    pub(super) root_cert: Option<String>,
}

/// Reads `sslmode=verify-ca|verify-full` and `sslrootcert=…` out of a URL
/// (`postgres://…?sslmode=…`) or a `key=value` string, rewriting the mode to `require`
/// for tokio-postgres.
pub(super) fn split(url: &str) -> Result<Settings, StoreError> {
    let mut mode = None;
    let mut root_cert = None;
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let (head, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => mode = Some(percent_decode(value)?),
                "sslrootcert" => root_cert = Some(percent_decode(value)?),
                _ => kept.push(pair.to_owned()),
            }
        }
        if let Some(mode) = &mode {
            kept.push(format!("sslmode={}", for_tokio_postgres(mode)));
        }
        if kept.is_empty() {
            head.to_owned()
        } else {
            format!("{head}?{}", kept.join("&"))
        }
    } else {
        // key=value pairs; values with spaces are quoted, which these two keys never need.
        let mut kept = Vec::new();
        for pair in url.split_whitespace() {
            match pair.split_once('=') {
                Some(("sslmode", value)) => mode = Some(value.trim_matches('\'').to_owned()),
                Some(("sslrootcert", value)) => root_cert = Some(value.trim_matches('\'').to_owned()),
                _ => kept.push(pair.to_owned()),
            }
        }
        if let Some(mode) = &mode {
            kept.push(format!("sslmode={}", for_tokio_postgres(mode)));
        }
        kept.join(" ")
    };
    let verify = match mode.as_deref() {
        Some("verify-full") => Verify::Full,
        Some("verify-ca") => Verify::Authority,
        Some("disable" | "allow" | "prefer" | "require") | None if root_cert.is_some() => Verify::Authority,
        Some("disable" | "allow" | "prefer" | "require") | None => Verify::Nothing,
        Some(other) => return Err(StoreError::new(format!("unknown sslmode `{other}`"))),
    };
    Ok(Settings { rest, verify, root_cert })
}

fn for_tokio_postgres(mode: &str) -> &str {
    match mode {
        "verify-ca" | "verify-full" => "require",
        // libpq's `allow` tries without TLS first; tokio-postgres has no such mode, and
        // preferring TLS is the safer reading.
        "allow" => "prefer",
        other => other,
    }
}

fn percent_decode(text: &str) -> Result<String, StoreError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let hex = bytes
                .get(index + 1..index + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| StoreError::new("invalid percent-encoding in the connection string"))?;
            out.push(hex);
            index += 3;
        } else {
            out.push(byte);
            index += 1;
        }
    }
    String::from_utf8(out).map_err(|_| StoreError::new("invalid UTF-8 in the connection string"))
}

/// The rustls client configuration for these settings.
pub(super) fn client_config(settings: &Settings) -> Result<ClientConfig, StoreError> {
    // rustls 0.23.48 deprecates the ring provider for lacking post-quantum key
    // exchange; the workspace keeps ring (no C toolchain beyond ring's own, no cmake)
    // until it moves to aws-lc-rs. Classical X25519/P-256 key exchange is unchanged.
    #[allow(deprecated, reason = "ring has no post-quantum key exchange; see the comment above")]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| StoreError::with_source("cannot configure TLS", error))?;
    let roots = match &settings.root_cert {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            let certificates = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|error| StoreError::with_source(format!("cannot read sslrootcert {path}"), error))?;
            let (added, _) = roots.add_parsable_certificates(certificates);
            if added == 0 {
                return Err(StoreError::new(format!("sslrootcert {path} holds no certificate")));
            }
            roots
        }
        None => RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() },
    };
    let config = match settings.verify {
        Verify::Full => builder.with_root_certificates(roots).with_no_client_auth(),
        Verify::Authority => {
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|error| StoreError::with_source("cannot configure TLS", error))?;
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyName(webpki))).with_no_client_auth()
        }
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// `verify-ca`: the chain is checked, the host name is not.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. })) => {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `require` without `sslrootcert`: encryption only, as libpq. The handshake
/// signatures are still checked, so the session is bound to the certificate shown.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_read_out_of_urls_and_key_value_strings() {
        let s = split("postgres://u:p@h:5/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.crt&application_name=x")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.verify, Verify::Full);
        assert_eq!(s.root_cert.as_deref(), Some("/tmp/ca.crt"));
        assert_eq!(s.rest, "postgres://u:p@h:5/db?application_name=x&sslmode=require");
        let s = split("host=h sslmode=verify-ca dbname=d").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.verify, s.rest.as_str()), (Verify::Authority, "host=h dbname=d sslmode=require"));
        let s = split("postgres://h/db").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.verify, s.rest.as_str()), (Verify::Nothing, "postgres://h/db"));
        let s = split("postgres://h/db?sslmode=require&sslrootcert=ca.pem").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.verify, Verify::Authority, "libpq: require with a root certificate verifies the chain");
        assert!(split("postgres://h/db?sslmode=verify-everything").is_err());
        assert!(split("postgres://h/db?sslrootcert=%zz").is_err());
    }
}
