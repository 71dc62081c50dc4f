//! Which certificates HTTPS targets are verified against, and what a certificate failure
//! is called in an attempt's record.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::CertificateDer;
use rustls::{CertificateError, ClientConfig, RootCertStore};

/// Why the trusted certificates could not be loaded; the server does not start.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("extra_ca_file {path}: {reason}")]
    ExtraCaFile { path: PathBuf, reason: String },
}

/// The TLS client settings every attempt uses: the system's trust store (which honours
/// `SSL_CERT_FILE` and `SSL_CERT_DIR`) plus `extra_ca_file`.
#[derive(Clone)]
pub struct TrustedRoots {
    client: Arc<ClientConfig>,
}

impl std::fmt::Debug for TrustedRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedRoots").finish_non_exhaustive()
    }
}

impl TrustedRoots {
    /// Loads the system store and the PEM certificates of `extra_ca_file`. A system without
    /// a store (a bare container) gets the bundled Mozilla roots, with a warning, so public
    /// HTTPS targets still work there.
    pub fn load(extra_ca_file: Option<&Path>) -> Result<Self, TrustError> {
        let mut roots = RootCertStore::empty();
        let system = rustls_native_certs::load_native_certs();
        for error in &system.errors {
            log::warn!("system trust store: {error}");
        }
        let (added, _unparsable) = roots.add_parsable_certificates(system.certs);
        if added == 0 {
            log::warn!(
                "no certificate in the system trust store (install ca-certificates, or set SSL_CERT_FILE); \
                 trusting the bundled Mozilla roots instead"
            );
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        if let Some(path) = extra_ca_file {
            let extra =
                read_certificates(path).map_err(|reason| TrustError::ExtraCaFile { path: path.to_owned(), reason })?;
            let count = extra.len();
            for certificate in extra {
                roots.add(certificate).map_err(|e| TrustError::ExtraCaFile {
                    path: path.to_owned(),
                    reason: format!("not a CA certificate rustls accepts: {e}"),
                })?;
            }
            log::info!("trusting {count} extra CA certificate(s) from {}", path.display());
        }
        Ok(Self::with_roots(roots))
    }

    /// Exactly these roots and nothing else (for tests and embedding apps).
    pub fn with_roots(roots: RootCertStore) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self { client: Arc::new(client) }
    }

    pub(super) fn client_config(&self) -> Arc<ClientConfig> {
        self.client.clone()
    }
}

/// Every certificate in a PEM file; a file without one is an error, since a typo'd path
/// or a key file given by mistake would otherwise trust nothing silently.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(describe_pem_error)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(describe_pem_error)?;
    if certificates.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into());
    }
    Ok(certificates)
}

fn describe_pem_error(error: pem::Error) -> String {
    match error {
        pem::Error::Io(e) => format!("cannot read it: {e}"),
        other => format!("not a PEM file: {other:?}"),
    }
}

/// The plain reason for a failed TLS handshake, if `error` is one: what a user can act on
/// (SPEC §6), not rustls's enum names.
pub fn handshake_failure(error: &awc::error::SendRequestError) -> Option<String> {
    let awc::error::SendRequestError::Connect(awc::error::ConnectError::Io(io)) = error else {
        return None;
    };
    let tls = io.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(match tls {
        rustls::Error::InvalidCertificate(certificate) => describe_certificate_error(certificate),
        other => format!("TLS handshake failed: {other}"),
    })
}

fn describe_certificate_error(error: &CertificateError) -> String {
    match error {
        CertificateError::UnknownIssuer => "untrusted certificate: unknown issuer".into(),
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => "certificate expired".into(),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "certificate not valid yet".into()
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => "name mismatch".into(),
        CertificateError::Revoked => "certificate revoked".into(),
        other => format!("invalid certificate: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_extra_ca_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = TrustedRoots::load(Some(&missing)).unwrap_err().to_string();
        assert!(error.contains("missing.pem") && error.contains("cannot read it"), "{error}");

        let key_only = dir.path().join("key.pem");
        std::fs::write(&key_only, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
        let error = TrustedRoots::load(Some(&key_only)).unwrap_err().to_string();
        assert!(error.contains("no PEM certificate"), "{error}");
    }
}
