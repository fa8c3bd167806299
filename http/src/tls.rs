//! TLS on tickcast's own listeners (rustls): the server configuration from PEM files. The
//! handshake and the HTTP requests before an upgrade go through `tokio-rustls`; what a gateway
//! does with the session after an upgrade is its own (`tickcast-gateways`' `tls_session`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate or key could not be used. None of these heals on retry: fix the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "cannot read the TLS certificate chain {path}: {reason} (give PEM CERTIFICATE blocks, leaf first)"
    )]
    Certificate { path: PathBuf, reason: String },
    #[error("cannot read the TLS private key {path}: {reason} (give one PEM PRIVATE KEY block)")]
    Key { path: PathBuf, reason: String },
    #[error("the TLS certificate and key do not make a server identity: {0}")]
    Identity(#[from] rustls::Error),
}

/// A server TLS configuration from a PEM certificate chain and its PEM private key, speaking
/// HTTP/1.1 (the only protocol the server serves, and the one WebSocket upgrades from).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certificate_error = |reason: String| TlsError::Certificate { path: cert.to_owned(), reason };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| certificate_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| certificate_error(e.to_string()))?;
    if chain.is_empty() {
        return Err(certificate_error("no certificate in it".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError::Key { path: key.to_owned(), reason: e.to_string() })?;
    let mut config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
