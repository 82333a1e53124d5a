//! https and wss for an API exposed beyond loopback: the certificate and key (PEM files)
//! become a rustls server configuration (ring, HTTP/1.1 only: WebSockets upgrade over
//! it), and [`TlsListener`] hands axum connections whose TLS handshake is done.
//!
//! Handshakes run in their own tasks, at most [`MAX_HANDSHAKES`] at once and each for at
//! most [`HANDSHAKE_TIMEOUT`], so a client that opens a connection and says nothing holds
//! up no one else. The accepting task and its handshakes end when the listener is dropped
//! (when [`crate::serve_tls`] returns).

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

/// Most TLS handshakes in progress at once; further connections wait to be accepted.
pub const MAX_HANDSHAKES: usize = 64;
/// How long a client may take to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the TLS configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate {}: {source}", path.display())]
    Cert {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("cannot read the TLS private key {}: {source}", path.display())]
    Key {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("the TLS certificate and key cannot be used: {0}")]
    Config(#[source] rustls::Error),
}

/// A loaded certificate chain and key, ready to serve.
#[derive(Clone)]
pub struct TlsSettings {
    config: Arc<ServerConfig>,
    /// SHA-256 of the leaf certificate (DER), what clients pin or compare.
    fingerprint: String,
}

impl TlsSettings {
    /// Loads a PEM certificate chain (leaf first) and a PEM private key (PKCS#8, PKCS#1
    /// or SEC1).
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|source| TlsError::Cert {
                path: cert.to_owned(),
                source,
            })?;
        let Some(leaf) = chain.first() else {
            return Err(TlsError::Cert {
                path: cert.to_owned(),
                source: rustls::pki_types::pem::Error::NoItemsFound,
            });
        };
        let fingerprint = fingerprint(leaf);
        let private = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Key {
            path: key.to_owned(),
            source,
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(TlsError::Config)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
            fingerprint,
        })
    }

    /// The leaf certificate's SHA-256 fingerprint, as colon-separated upper-case hex.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// SHA-256 of a certificate (DER), as `AB:CD:...`, the form browsers show.
pub fn fingerprint(cert_der: &[u8]) -> String {
    Sha256::digest(cert_der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Connections that finished their TLS handshake, for `axum::serve`.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::AbortHandle,
}

impl TlsListener {
    /// Starts accepting on `listener` (within a tokio runtime).
    pub fn new(listener: TcpListener, tls: &TlsSettings) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(MAX_HANDSHAKES);
        let acceptor = TlsAcceptor::from(tls.config.clone());
        let accepting = tokio::spawn(accept_loop(listener, acceptor, tx)).abort_handle();
        Ok(Self {
            ready,
            local,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accepting task ended (it only does when aborted): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Accepts TCP connections and runs their handshakes, bounded (see the module docs).
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    let mut handshakes = JoinSet::new();
    loop {
        while handshakes.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                warn!(error = %e, "cannot accept an API connection");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        handshakes.spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}
