//! TLS for the cluster's links (`[cluster.tls]`): mutual TLS with one CA. Every node presents
//! its certificate and accepts only peers whose certificate the CA signed, so on an untrusted
//! network a node without a signed certificate cannot join, whatever cookie it guesses.
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ractor_cluster::{BoxRead, BoxWrite};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::cluster::TlsConfig;

/// A node's TLS acceptor (incoming links) and connector (dialled links).
#[derive(Clone)]
pub struct TlsSettings {
    /// For incoming links.
    pub acceptor: TlsAcceptor,
    /// For dialled links.
    pub connector: TlsConnector,
    /// The name peers' certificates are checked against.
    pub server_name: ServerName<'static>,
}

impl TlsSettings {
    /// Reads the PEM files of `[cluster.tls]`.
    pub fn load(c: &TlsConfig) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&c.cert)
            .and_then(|i| i.collect::<Result<_, _>>())
            .map_err(|e| format!("cert {}: {e}", c.cert.display()))?;
        if certs.is_empty() {
            return Err(format!("cert {}: no certificate in it", c.cert.display()));
        }
        let key = PrivateKeyDer::from_pem_file(&c.key)
            .map_err(|e| format!("key {}: {e}", c.key.display()))?;
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(&c.ca)
            .map_err(|e| format!("ca {}: {e}", c.ca.display()))?
        {
            let ca = ca.map_err(|e| format!("ca {}: {e}", c.ca.display()))?;
            roots
                .add(ca)
                .map_err(|e| format!("ca {}: {e}", c.ca.display()))?;
        }
        let roots = Arc::new(roots);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| format!("client verifier: {e}"))?;
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs.clone(), key.clone_key())
            .map_err(|e| format!("cert/key: {e}"))?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(|e| format!("cert/key: {e}"))?;
        let server_name = ServerName::try_from(c.server_name.clone())
            .map_err(|e| format!("server_name {:?}: {e}", c.server_name))?;
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            server_name,
        })
    }
}

/// The halves of a link once its TLS `handshake` (accepting or connecting) is done, which may
/// take at most `timeout`: a peer that never finishes it holds only its own connection.
pub(crate) async fn tls_halves<S>(
    handshake: impl Future<Output = std::io::Result<S>>,
    timeout: Duration,
) -> Result<(BoxRead, BoxWrite), String>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let s = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| format!("TLS handshake not finished within {timeout:?}"))?
        .map_err(|e| format!("TLS handshake: {e}"))?;
    let (r, w) = tokio::io::split(s);
    Ok((Box::new(r), Box::new(w)))
}

/// The halves of a plain TCP link.
pub(crate) fn tcp_halves(tcp: tokio::net::TcpStream) -> (BoxRead, BoxWrite) {
    let (r, w) = tcp.into_split();
    (Box::new(r), Box::new(w))
}
