//! The API served over TLS on loopback (`serve_tls`): a client that trusts the
//! certificate gets answers, with its peer address known to the routes (the owner-only
//! status route answers a loopback caller); a client that opens a connection and never
//! starts its handshake holds up no one; a client that speaks plain HTTP gets nothing.

mod common;

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use starling_api::tls::TlsSettings;
use starling_api::Exposure;
use starling_proto::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;

use common::node_exposed;

const WAIT: Duration = Duration::from_secs(10);

/// A self-signed certificate for 127.0.0.1, written to `dir`: (cert path, key path, DER).
fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path, cert.der().to_vec())
}

fn connector(trusted: Vec<u8>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(trusted)).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// `GET path` over TLS; the whole answer as text.
async fn get(addr: std::net::SocketAddr, tls: &TlsConnector, path: &str) -> String {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut stream = tokio::time::timeout(WAIT, tls.connect(name, tcp))
        .await
        .expect("a handshake within 10 s")
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn the_api_over_tls() {
    let node = node_exposed(Limits::default(), true, Exposure::Exposed);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = certificate(dir.path());
    let tls = TlsSettings::load(&cert, &key).unwrap();
    assert_eq!(
        tls.fingerprint(),
        starling_api::tls::fingerprint(&der),
        "the fingerprint is the leaf's"
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = node.state.clone();
    let server = tokio::spawn(async move { starling_api::serve_tls(listener, &tls, state).await });

    // A connection that never says anything first.
    let _silent = TcpStream::connect(addr).await.unwrap();

    let client = connector(der);
    let status = get(addr, &client, "/api/status").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(status.contains("\"events\""), "{status}");

    // Plain HTTP on the TLS port: no HTTP answer.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(format!("GET /api/status HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, plain.read_to_end(&mut answer))
        .await
        .expect("the connection ends within 10 s");
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1"),
        "{answer:?}"
    );

    // A client that does not trust the certificate fails its handshake.
    let stranger_cert = certificate(tempfile::tempdir().unwrap().path()).2;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    assert!(connector(stranger_cert).connect(name, tcp).await.is_err());

    node.state.shutdown.cancel();
    tokio::time::timeout(WAIT, server)
        .await
        .expect("the server ends on shutdown")
        .unwrap()
        .unwrap();
}
