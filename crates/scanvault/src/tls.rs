//! HTTPS served directly: a certificate chain and key from PEM files (`TLS_CERT_FILE`,
//! `TLS_KEY_FILE`), rustls with its safe defaults, HTTP/2 and HTTP/1.1 offered by ALPN.

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// The acceptor for a certificate chain and its private key, each a PEM file.
pub fn acceptor(cert_file: &Path, key_file: &Path) -> anyhow::Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .with_context(|| format!("TLS_CERT_FILE {}: cannot read it", cert_file.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| {
            format!(
                "TLS_CERT_FILE {}: not PEM certificates",
                cert_file.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!(
            "TLS_CERT_FILE {}: no certificate in it (expected PEM `BEGIN CERTIFICATE` blocks)",
            cert_file.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key_file).with_context(|| {
        format!(
            "TLS_KEY_FILE {}: no PEM private key in it (PKCS#8, PKCS#1 or SEC1)",
            key_file.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS: protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("TLS_CERT_FILE and TLS_KEY_FILE do not make a usable pair")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
