//! TLS is verified: a server whose certificate no public root vouches for is refused, with a message
//! that says why and what to do. The server is a stand-in that answers PostgreSQL's TLS request and then
//! shows a self-signed certificate (made for this test only, valid until 2126), so no real one is needed.

use std::sync::Arc;

use chrono::{Duration, Utc};
use enrich_core::{ConnectorError, UserDirectory};
use enrich_postgres::{HeapConnectConfig, HeapConnectDirectory, TlsMode};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

const CERTIFICATE: &[u8] = include_bytes!("fixtures/self_signed_cert.pem");
const KEY: &[u8] = include_bytes!("fixtures/self_signed_key.pem");

/// Accepts one connection, says yes to its TLS request, and offers the self-signed certificate.
async fn self_signed_server() -> u16 {
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(CERTIFICATE).unwrap()],
            PrivateKeyDer::from_pem_slice(KEY).unwrap(),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        // PostgreSQL's SSLRequest: a length of 8, then the code 80877103.
        let mut request = [0; 8];
        socket.read_exact(&mut request).await.unwrap();
        assert_eq!(request, [0, 0, 0, 8, 4, 210, 22, 47]);
        socket.write_all(b"S").await.unwrap();
        // The client gives up during the handshake: that is the point.
        let _ = acceptor.accept(socket).await;
    });
    port
}

#[tokio::test]
async fn a_server_with_a_self_signed_certificate_is_refused_with_advice() {
    for tls in [TlsMode::Require, TlsMode::Prefer] {
        let port = self_signed_server().await;
        let directory = HeapConnectDirectory::new(&HeapConnectConfig {
            url: SecretString::from(format!("postgres://enrich:pa55word@127.0.0.1:{port}/analytics")),
            schema: "main_production".to_owned(),
            email_property: "email".to_owned(),
            given_name_property: None,
            family_name_property: None,
            tls: Some(tls),
            anonymous: false,
        })
        .unwrap();
        let message = match directory.users(Utc::now() - Duration::days(7)).await {
            Err(ConnectorError::Fatal(message)) => message,
            Err(other) => panic!("not fatal: {other:?}"),
            Ok(_) => panic!("a self-signed certificate was accepted with tls: {tls:?}"),
        };
        assert!(
            message.starts_with("cannot connect: error performing TLS handshake: invalid peer certificate"),
            "{message}"
        );
        assert!(message.ends_with("reachable only with `tls: disable`)"), "{message}");
        assert!(!message.contains("pa55word"), "{message}");
    }
}
