//! The listeners' TLS (`ordo_cluster::tls`) against real handshakes on 127.0.0.1, with the
//! fixture's cryptogen material: which client certificates each client-auth mode lets in,
//! swapping the trusted client roots at run time (as a config block does), and
//! `TLSHandshakeTimeShift` letting an expired client certificate through.
//!
//! The server side answers every accepted connection with the number of client certificates it
//! verified, so a test learns the outcome from the client alone: under TLS 1.3 a refused client
//! certificate shows up as an alert on the client's first read, not in its handshake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use ordo_cluster::tls::{Alpn, ClientAuth, TlsServer, incoming};
use ordo_testkit::read;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ORDERER1_TLS: &str =
    "crypto-config/ordererOrganizations/example.com/orderers/orderer1.example.com/tls";
const ORDERER_TLSCA: &str = "crypto-config/ordererOrganizations/example.com/tlsca";
const ADMIN_TLS: &str =
    "crypto-config/ordererOrganizations/example.com/users/Admin@example.com/tls";
const ORG2_TLSCA: &str = "crypto-config/peerOrganizations/org2.example.com/tlsca";
const ORG2_USER_TLS: &str =
    "crypto-config/peerOrganizations/org2.example.com/users/User1@org2.example.com/tls";

const WAIT: Duration = Duration::from_secs(20);

fn roots(pem_rel: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(&read(pem_rel))
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A listener with orderer1's TLS certificate, answering each accepted connection with the
/// number of verified client certificates and a newline.
async fn serve(
    client_roots: Vec<CertificateDer<'static>>,
    auth: ClientAuth,
    shift: Duration,
) -> (SocketAddr, TlsServer) {
    let server = TlsServer::new(
        &read(&format!("{ORDERER1_TLS}/server.crt")),
        &read(&format!("{ORDERER1_TLS}/server.key")),
        client_roots,
        auth,
        shift,
        Alpn::Http,
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut conns = incoming(listener, Some(server.clone()), None);
    tokio::spawn(async move {
        while let Some(Ok(mut conn)) = conns.next().await {
            let n = conn.info().peer_certs.as_ref().map_or(0, |c| c.len());
            tokio::spawn(async move {
                let _ = conn.write_all(format!("{n}\n").as_bytes()).await;
                let _ = conn.flush().await;
                // Keep the connection until the client has read the answer and closed.
                let mut buf = [0u8; 1];
                let _ = conn.read(&mut buf).await;
            });
        }
    });
    (addr, server)
}

/// A client trusting the orderer TLS CA, with an optional certificate and key (PEM).
fn client(cert: Option<(Vec<u8>, Vec<u8>)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&read(&format!("{ORDERER1_TLS}/ca.crt"))) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match cert {
        None => builder.with_no_client_auth(),
        Some((c, k)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(&c)
                    .collect::<Result<_, _>>()
                    .unwrap(),
                rustls_pki_types::PrivateKeyDer::from_pem_slice(&k).unwrap(),
            )
            .unwrap(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn pair(dir: &str) -> Option<(Vec<u8>, Vec<u8>)> {
    Some((
        read(&format!("{dir}/client.crt")),
        read(&format!("{dir}/client.key")),
    ))
}

/// Connects and reads the server's answer: `Ok(number of client certificates it verified)`, or
/// `Err` when the handshake or the first read fails (the server refused the client).
async fn connect(addr: SocketAddr, tls: &Arc<rustls::ClientConfig>) -> Result<usize, String> {
    let attempt = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            match stream.read(&mut byte).await {
                Ok(0) => return Err("closed by the server".to_string()),
                Ok(_) if byte[0] == b'\n' => break,
                Ok(_) => answer.push(byte[0]),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        Ok(String::from_utf8(answer).unwrap().parse().unwrap())
    };
    tokio::time::timeout(WAIT, attempt)
        .await
        .expect("the connection neither succeeded nor failed")
}

#[tokio::test]
async fn required_client_auth_lets_in_only_certificates_from_the_trusted_roots() {
    let (addr, _server) = serve(
        roots(&format!("{ORDERER_TLSCA}/tlsca.example.com-cert.pem")),
        ClientAuth::Required,
        Duration::ZERO,
    )
    .await;
    assert_eq!(connect(addr, &client(pair(ADMIN_TLS))).await, Ok(1));
    let none = connect(addr, &client(None)).await;
    assert!(none.is_err(), "no certificate was let in: {none:?}");
    let foreign = connect(addr, &client(pair(ORG2_USER_TLS))).await;
    assert!(
        foreign.is_err(),
        "an Org2 certificate was let in: {foreign:?}"
    );
}

#[tokio::test]
async fn optional_client_auth_verifies_a_certificate_only_when_given() {
    let (addr, _server) = serve(
        roots(&format!("{ORDERER_TLSCA}/tlsca.example.com-cert.pem")),
        ClientAuth::Optional,
        Duration::ZERO,
    )
    .await;
    assert_eq!(connect(addr, &client(None)).await, Ok(0));
    assert_eq!(connect(addr, &client(pair(ADMIN_TLS))).await, Ok(1));
    let foreign = connect(addr, &client(pair(ORG2_USER_TLS))).await;
    assert!(
        foreign.is_err(),
        "an unverifiable certificate was let in: {foreign:?}"
    );
}

#[tokio::test]
async fn no_client_auth_asks_for_no_certificate() {
    let (addr, _server) = serve(Vec::new(), ClientAuth::None, Duration::ZERO).await;
    assert_eq!(connect(addr, &client(None)).await, Ok(0));
    // A client that has a certificate is not asked for it.
    assert_eq!(connect(addr, &client(pair(ORG2_USER_TLS))).await, Ok(0));
}

#[test]
fn required_client_auth_without_roots_is_refused() {
    let err = TlsServer::new(
        &read(&format!("{ORDERER1_TLS}/server.crt")),
        &read(&format!("{ORDERER1_TLS}/server.key")),
        Vec::new(),
        ClientAuth::Required,
        Duration::ZERO,
        Alpn::Grpc,
    )
    .unwrap_err();
    assert!(err.to_string().contains("no client root CA"), "{err}");
}

#[tokio::test]
async fn client_roots_swapped_at_run_time_apply_to_new_connections() {
    let org2 = client(pair(ORG2_USER_TLS));
    let (addr, server) = serve(
        roots(&format!("{ORDERER_TLSCA}/tlsca.example.com-cert.pem")),
        ClientAuth::Required,
        Duration::ZERO,
    )
    .await;
    assert!(connect(addr, &org2).await.is_err());
    // A config block adds Org2's TLS CA: the configured roots stay, Org2 now gets in.
    let org2_ca = roots(&format!("{ORG2_TLSCA}/tlsca.org2.example.com-cert.pem"));
    server
        .set_client_roots(org2_ca.iter().map(|c| c.to_vec()).collect())
        .unwrap();
    assert_eq!(connect(addr, &org2).await, Ok(1));
    assert_eq!(connect(addr, &client(pair(ADMIN_TLS))).await, Ok(1));
    // And removes it again: the same client (same TLS session cache) is refused, since a
    // resumed session would skip the certificate check.
    server.set_client_roots(Vec::new()).unwrap();
    assert!(connect(addr, &org2).await.is_err());
}

/// A TLS client certificate issued by the fixture's orderer TLS CA that expired ten days ago.
fn expired_admin_cert() -> (Vec<u8>, Vec<u8>) {
    let ca_key = rcgen::KeyPair::from_pem(
        &String::from_utf8(read(&format!("{ORDERER_TLSCA}/priv_sk"))).unwrap(),
    )
    .unwrap();
    let ca_pem =
        String::from_utf8(read(&format!("{ORDERER_TLSCA}/tlsca.example.com-cert.pem"))).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["expired.example.com".into()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(40);
    params.not_after = now - time::Duration::days(10);
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    ];
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem().into_bytes(), key.serialize_pem().into_bytes())
}

#[tokio::test]
async fn handshake_time_shift_lets_an_expired_client_certificate_in() {
    let ca = roots(&format!("{ORDERER_TLSCA}/tlsca.example.com-cert.pem"));
    let expired = client(Some(expired_admin_cert()));
    let (addr, _server) = serve(ca.clone(), ClientAuth::Required, Duration::ZERO).await;
    let refused = connect(addr, &expired).await;
    assert!(
        refused.is_err(),
        "an expired certificate was let in: {refused:?}"
    );
    // Shifted back 20 days, the certificate was valid then.
    let (addr, _server) = serve(ca, ClientAuth::Required, Duration::from_secs(20 * 86_400)).await;
    assert_eq!(connect(addr, &expired).await, Ok(1));
    // A certificate issued since (the fixture's admin certificate is younger than 20 days: not
    // yet valid in the shifted past) gets in too, so renewals work while the shift is set.
    assert_eq!(connect(addr, &client(pair(ADMIN_TLS))).await, Ok(1));
}

#[tokio::test]
async fn a_silent_client_does_not_hold_up_other_handshakes() {
    let (addr, _server) = serve(
        roots(&format!("{ORDERER_TLSCA}/tlsca.example.com-cert.pem")),
        ClientAuth::Required,
        Duration::ZERO,
    )
    .await;
    // Connections that never start their handshake (handshakes run concurrently, each with
    // its own timeout, so they do not block the accept loop).
    let _silent: Vec<TcpStream> =
        futures::future::join_all((0..5).map(|_| TcpStream::connect(addr)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    assert_eq!(connect(addr, &client(pair(ADMIN_TLS))).await, Ok(1));
}

/// The leaf certificate (DER) the server at `addr` presents.
async fn presented(addr: SocketAddr) -> Vec<u8> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let stream = tokio_rustls::TlsConnector::from(client(None))
        .connect(name, tcp)
        .await
        .unwrap();
    stream.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn the_server_certificate_is_replaced_at_run_time_and_a_mismatched_pair_is_refused() {
    let (addr, server) = serve(Vec::new(), ClientAuth::None, Duration::ZERO).await;
    let der = |rel: &str| roots(rel).remove(0).to_vec();
    let orderer2 =
        "crypto-config/ordererOrganizations/example.com/orderers/orderer2.example.com/tls";
    assert_eq!(
        presented(addr).await,
        der(&format!("{ORDERER1_TLS}/server.crt"))
    );

    server
        .set_certificate(
            &read(&format!("{orderer2}/server.crt")),
            &read(&format!("{orderer2}/server.key")),
        )
        .unwrap();
    assert_eq!(
        presented(addr).await,
        der(&format!("{orderer2}/server.crt"))
    );

    // A certificate with another certificate's key (a half-written renewal) is refused and the
    // current one stays.
    let err = server
        .set_certificate(
            &read(&format!("{ORDERER1_TLS}/server.crt")),
            &read(&format!("{orderer2}/server.key")),
        )
        .unwrap_err();
    assert!(err.to_string().contains("certificate and key"), "{err}");
    assert_eq!(
        presented(addr).await,
        der(&format!("{orderer2}/server.crt"))
    );
}
