//! TLS for the webhook port: rustls (TLS 1.2 and 1.3 only), with a certificate that can be
//! swapped while serving. A broken new pair never replaces a working one.

use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ServerConfig, version};

/// Why a certificate pair was refused.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("no certificate in the certificate file")]
    NoCertificate,
    #[error("invalid certificate PEM: {0}")]
    CertificatePem(String),
    #[error("invalid private key PEM: {0}")]
    KeyPem(String),
    #[error("the key does not fit the certificate: {0}")]
    Key(#[from] rustls::Error),
    #[error("the certificate cannot be parsed: {0}")]
    X509(String),
}

/// A loaded pair and when it expires.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    /// Unix seconds.
    pub not_after: i64,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses a PEM certificate chain and private key, checking that they belong together.
pub fn load(cert_pem: &[u8], key_pem: &[u8]) -> Result<Loaded, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::CertificatePem(e.to_string()))?;
    let leaf = chain.first().ok_or(TlsError::NoCertificate)?;
    let not_after = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| TlsError::X509(e.to_string()))?
        .1
        .validity()
        .not_after
        .timestamp();
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::KeyPem(e.to_string()))?;
    let key = CertifiedKey::from_der(chain, key, &provider())?;
    Ok(Loaded {
        key: Arc::new(key),
        not_after,
    })
}

/// The certificate in service; swapped atomically on reload.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<Loaded>,
}

impl CertStore {
    pub fn new(initial: Loaded) -> Self {
        Self {
            current: RwLock::new(initial),
        }
    }

    /// Puts a new pair in service for new handshakes.
    pub fn replace(&self, loaded: Loaded) {
        if let Ok(mut current) = self.current.write() {
            *current = loaded;
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.key.clone())
    }
}

/// The server configuration: TLS 1.3 and 1.2, HTTP/1.1, certificates from `store`.
pub fn server_config(store: Arc<CertStore>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&version::TLS13, &version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::certs;

    #[test]
    fn loads_a_generated_pair_and_refuses_mismatches() {
        let a = certs::generate(&["localhost".into()], &[], 2).expect("a");
        let b = certs::generate(&["localhost".into()], &[], 2).expect("b");
        let loaded = load(a.cert_pem.as_bytes(), a.key_pem.as_bytes()).expect("pair loads");
        let in_two_days = time::OffsetDateTime::now_utc().unix_timestamp() + 2 * 86400;
        assert!((loaded.not_after - in_two_days).abs() < 60);
        assert!(matches!(
            load(a.cert_pem.as_bytes(), b.key_pem.as_bytes()),
            Err(TlsError::Key(_))
        ));
        assert!(matches!(
            load(b"", a.key_pem.as_bytes()),
            Err(TlsError::NoCertificate)
        ));
        assert!(load(a.cert_pem.as_bytes(), b"garbage").is_err());
        assert!(server_config(Arc::new(CertStore::new(loaded))).is_ok());
    }
}
