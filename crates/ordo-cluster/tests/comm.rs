//! The cluster transport end to end on 127.0.0.1 with the fixture's orderer TLS material:
//! orderer1's `Comm` talks to a `Cluster` service running with orderer2's certificate. Requests
//! arrive in order with the sender's client certificate; consensus and submit travel on their
//! own streams; the server's key is pinned; a stream that breaks is reopened.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ordo_cluster::comm::{Comm, CommConfig, RemoteNode, SendError};
use ordo_cluster::service::{ClusterService, Sender, StepError, StepHandler};
use ordo_cluster::tls::{Alpn, ClientAuth, TlsServer, incoming};
use ordo_proto::orderer::cluster_server::ClusterServer;
use ordo_proto::orderer::{ConsensusRequest, SubmitRequest};
use ordo_testkit::read;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::sync::{mpsc, watch};

const ORDERERS: &str = "crypto-config/ordererOrganizations/example.com/orderers";
const TLSCA: &str =
    "crypto-config/ordererOrganizations/example.com/tlsca/tlsca.example.com-cert.pem";
const WAIT: Duration = Duration::from_secs(20);

fn tls_file(node: u32, file: &str) -> Vec<u8> {
    read(&format!("{ORDERERS}/orderer{node}.example.com/tls/{file}"))
}

#[derive(Debug, PartialEq)]
enum Got {
    Consensus(Vec<u8>, ConsensusRequest),
    Submit(Vec<u8>, SubmitRequest),
}

/// Records what arrives; refuses a consensus request whose payload is [255] as malformed and
/// one whose payload is [254] as coming from a sender that is not a consenter.
struct Recorder(mpsc::UnboundedSender<Got>);

#[tonic::async_trait]
impl StepHandler for Recorder {
    fn consensus(&self, sender: &Sender, req: ConsensusRequest) -> Result<(), StepError> {
        match req.payload.as_ref() {
            [255] => return Err(StepError::Invalid("refused".into())),
            [254] => return Err(StepError::Unauthorized("not a consenter".into())),
            _ => {}
        }
        let _ = self.0.send(Got::Consensus(sender.cert.clone(), req));
        Ok(())
    }

    async fn submit(&self, sender: &Sender, req: SubmitRequest) -> Result<(), StepError> {
        let _ = self.0.send(Got::Submit(sender.cert.clone(), req));
        Ok(())
    }
}

/// A Cluster service with orderer`node`'s server certificate, requiring client certificates
/// from the orderer TLS CA. Stops when the returned sender is dropped or set.
async fn serve(
    node: u32,
) -> (
    SocketAddr,
    mpsc::UnboundedReceiver<Got>,
    watch::Sender<bool>,
) {
    serve_cert(&tls_file(node, "server.crt"), &tls_file(node, "server.key")).await
}

/// As [`serve`], with the given server certificate and key (PEM).
async fn serve_cert(
    cert: &[u8],
    key: &[u8],
) -> (
    SocketAddr,
    mpsc::UnboundedReceiver<Got>,
    watch::Sender<bool>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (addr, stop) = serve_handler(cert, key, Recorder(tx)).await;
    (addr, rx, stop)
}

/// Server TLS with the given certificate and key (PEM), requiring client certificates from
/// the orderer TLS CA.
fn tls_server(cert: &[u8], key: &[u8]) -> TlsServer {
    let roots = CertificateDer::pem_slice_iter(&read(TLSCA))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    TlsServer::new(
        cert,
        key,
        roots,
        ClientAuth::Required,
        Duration::ZERO,
        Alpn::Grpc,
    )
    .unwrap()
}

/// A Cluster service running `handler`, with the given server certificate and key (PEM).
async fn serve_handler<H: StepHandler + 'static>(
    cert: &[u8],
    key: &[u8],
    handler: H,
) -> (SocketAddr, watch::Sender<bool>) {
    let tls = tls_server(cert, key);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, mut stopped) = watch::channel(false);
    let svc = ClusterServer::new(ClusterService::new(Arc::new(handler)));
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming(listener, Some(tls), None), async move {
                let _ = stopped.changed().await;
            })
            .await
            .unwrap();
    });
    (addr, stop)
}

fn comm(node: u32) -> Comm {
    comm_shifted(node, Duration::ZERO)
}

fn comm_shifted(node: u32, handshake_time_shift: Duration) -> Comm {
    let c = Comm::new(
        CommConfig {
            client_cert_pem: tls_file(node, "server.crt"),
            client_key_pem: tls_file(node, "server.key"),
            send_buffer_size: 10,
            dial_timeout: Duration::from_secs(5),
            rpc_timeout: Duration::from_secs(7),
            handshake_time_shift,
        },
        None,
    )
    .unwrap();
    let roots = CertificateDer::pem_slice_iter(&read(TLSCA))
        .map(|c| c.unwrap().to_vec())
        .collect();
    c.set_roots(roots).unwrap();
    c
}

fn remote(id: u64, addr: SocketAddr, node: u32) -> RemoteNode {
    RemoteNode {
        id,
        endpoint: addr.to_string(),
        server_cert_pem: Bytes::from(tls_file(node, "server.crt")),
    }
}

fn raft(channel: &str, n: u8) -> ConsensusRequest {
    ConsensusRequest {
        channel: channel.into(),
        payload: Bytes::from(vec![n]),
        metadata: Bytes::new(),
    }
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Got>) -> Got {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("nothing arrived")
        .expect("server gone")
}

fn der_of(pem: &[u8]) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem).unwrap().to_vec()
}

#[tokio::test]
async fn requests_arrive_in_order_with_the_senders_certificate() {
    let (addr, mut rx, _stop) = serve(2).await;
    let c = comm(1);
    c.configure("ch", vec![remote(2, addr, 2)]);
    let me = der_of(&tls_file(1, "server.crt"));
    // The test runs on one thread, so the stream's worker does not drain the queue while we
    // fill it: SendBufferSize (10) requests fit, the 11th is dropped.
    for n in 0..10 {
        c.send_consensus("ch", 2, raft("ch", n)).unwrap();
    }
    assert_eq!(
        c.send_consensus("ch", 2, raft("ch", 10)),
        Err(SendError::Overflow(2))
    );
    for n in 0..10 {
        assert_eq!(
            next(&mut rx).await,
            Got::Consensus(me.clone(), raft("ch", n))
        );
    }
    for n in 11..60 {
        c.send_consensus("ch", 2, raft("ch", n)).unwrap();
        assert_eq!(
            next(&mut rx).await,
            Got::Consensus(me.clone(), raft("ch", n))
        );
    }
    let submit = SubmitRequest {
        channel: "ch".into(),
        last_validation_seq: 3,
        payload: Some(Default::default()),
    };
    c.send_submit("ch", 2, submit.clone()).await.unwrap();
    assert_eq!(next(&mut rx).await, Got::Submit(me, submit));
}

#[tokio::test]
async fn unknown_destinations_are_refused() {
    let c = comm(1);
    assert!(matches!(
        c.send_consensus("ch", 2, raft("ch", 0)),
        Err(SendError::UnknownDestination { .. })
    ));
    let (addr, _rx, _stop) = serve(2).await;
    c.configure("ch", vec![remote(2, addr, 2)]);
    c.remove_channel("ch");
    assert!(c.send_consensus("ch", 2, raft("ch", 0)).is_err());
}

#[tokio::test]
async fn the_server_key_is_pinned_to_the_consenters_server_certificate() {
    let (addr, _rx, _stop) = serve(2).await;
    let c = comm(1);
    c.check(&remote(2, addr, 2)).await.unwrap();
    // orderer3's certificate comes from the same CA, but it is not the key this server has.
    let err = c.check(&remote(2, addr, 3)).await.unwrap_err();
    assert!(
        err.to_string().contains("not node 2's server_tls_cert"),
        "{err}"
    );
    // With no trusted roots, nothing is trusted.
    c.set_roots(Vec::new()).unwrap();
    assert!(c.check(&remote(2, addr, 2)).await.is_err());
}

/// Sends requests numbered from `n` until one arrives: requests sent while a broken stream is
/// being replaced may be lost (Raft retransmits), the point is that the stream comes back.
async fn send_until_one_arrives(c: &Comm, rx: &mut mpsc::UnboundedReceiver<Got>, mut n: u8) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let _ = c.send_consensus("ch", 2, raft("ch", n));
        match tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            Ok(Some(Got::Consensus(_, r))) => {
                assert!(r.payload[0] >= 10 && r.payload[0] < 255);
                return;
            }
            _ => assert!(
                tokio::time::Instant::now() < deadline,
                "the stream never came back"
            ),
        }
        n = n.wrapping_add(1) % 250;
    }
}

#[tokio::test]
async fn a_stream_ended_by_the_server_is_reopened() {
    let (addr, mut rx, _stop) = serve(2).await;
    let c = comm(1);
    c.configure("ch", vec![remote(2, addr, 2)]);
    c.send_consensus("ch", 2, raft("ch", 1)).unwrap();
    assert!(matches!(next(&mut rx).await, Got::Consensus(_, r) if r.payload[0] == 1));
    // The server refuses this one and ends the stream.
    c.send_consensus("ch", 2, raft("ch", 255)).unwrap();
    send_until_one_arrives(&c, &mut rx, 10).await;
}

#[tokio::test]
async fn a_refusal_as_unauthorized_is_reported_to_the_channel_and_others_are_not() {
    let (addr, mut rx, _stop) = serve(2).await;
    let c = comm(1);
    c.configure("ch", vec![remote(2, addr, 2)]);
    let mut refusals = c.refusals("ch");
    // A malformed request ends the stream but says nothing about membership.
    c.send_consensus("ch", 2, raft("ch", 255)).unwrap();
    send_until_one_arrives(&c, &mut rx, 10).await;
    assert!(!refusals.has_changed().unwrap());
    // "You are not a consenter" does.
    c.send_consensus("ch", 2, raft("ch", 254)).unwrap();
    tokio::time::timeout(WAIT, refusals.changed())
        .await
        .expect("the refusal was not reported")
        .unwrap();
    assert_eq!(*refusals.borrow_and_update(), 1);
}

#[tokio::test]
async fn a_restarted_server_gets_the_requests_sent_after_it_is_back() {
    let (addr, mut rx, stop) = serve(2).await;
    let c = comm(1);
    c.configure("ch", vec![remote(2, addr, 2)]);
    c.send_consensus("ch", 2, raft("ch", 1)).unwrap();
    assert!(matches!(next(&mut rx).await, Got::Consensus(_, r) if r.payload[0] == 1));
    stop.send(true).unwrap();
    drop(rx);
    // A new server on another port: the node's address changed in the config.
    let (addr2, mut rx2, _stop2) = serve(2).await;
    c.configure("ch", vec![remote(2, addr2, 2)]);
    send_until_one_arrives(&c, &mut rx2, 10).await;
}

#[tokio::test]
async fn a_new_client_certificate_is_presented_on_fresh_streams() {
    let (addr, mut rx, _stop) = serve(2).await;
    let c = comm(1);
    c.configure("ch", vec![remote(2, addr, 2)]);
    c.send_consensus("ch", 2, raft("ch", 1)).unwrap();
    let first = der_of(&tls_file(1, "server.crt"));
    assert!(matches!(next(&mut rx).await, Got::Consensus(cert, _) if cert == first));
    let before = c.client_cert_hash();

    // Orderer3's pair stands in for a renewed certificate of this node.
    c.set_client_certificate(&tls_file(3, "server.crt"), &tls_file(3, "server.key"))
        .unwrap();
    let renewed = der_of(&tls_file(3, "server.crt"));
    assert_eq!(c.client_cert_hash().as_ref(), ordo_crypto::sha256(&renewed));
    assert_ne!(c.client_cert_hash(), before);
    c.send_consensus("ch", 2, raft("ch", 2)).unwrap();
    assert!(
        matches!(next(&mut rx).await, Got::Consensus(cert, r) if cert == renewed && r.payload[0] == 2)
    );

    // A mismatched pair is refused and changes nothing.
    assert!(
        c.set_client_certificate(&tls_file(1, "server.crt"), &tls_file(3, "server.key"))
            .is_err()
    );
    assert_eq!(c.client_cert_hash().as_ref(), ordo_crypto::sha256(&renewed));
}

/// A TLS server certificate for 127.0.0.1 from the orderer TLS CA, valid from `from` to `to`
/// seconds from now: PEM certificate and key.
fn minted(from: i64, to: i64) -> (Vec<u8>, Vec<u8>) {
    let tlsca = "crypto-config/ordererOrganizations/example.com/tlsca";
    let ca_key =
        rcgen::KeyPair::from_pem(&String::from_utf8(read(&format!("{tlsca}/priv_sk"))).unwrap())
            .unwrap();
    let ca_pem = String::from_utf8(read(TLSCA)).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::seconds(from);
    params.not_after = now + time::Duration::seconds(to);
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (cert.pem().into_bytes(), key.serialize_pem().into_bytes())
}

#[tokio::test]
async fn an_expired_consenter_is_reached_only_with_a_time_shift_and_a_renewed_one_either_way() {
    let day = 24 * 3600;
    let (expired, key) = minted(-2 * day, -day);
    let (addr, _rx, _stop) = serve_cert(&expired, &key).await;
    let node = RemoteNode {
        id: 2,
        endpoint: addr.to_string(),
        server_cert_pem: Bytes::from(expired),
    };
    let err = comm(1).check(&node).await.unwrap_err();
    assert!(err.to_string().contains("xpired"), "{err}");
    comm_shifted(1, Duration::from_secs(36 * 3600))
        .check(&node)
        .await
        .unwrap();

    // Renewed while the shift is still set: valid now, not yet in the shifted past.
    let (renewed, key) = minted(-3600, 30 * day);
    let (addr, _rx, _stop) = serve_cert(&renewed, &key).await;
    let node = RemoteNode {
        id: 2,
        endpoint: addr.to_string(),
        server_cert_pem: Bytes::from(renewed),
    };
    comm(1).check(&node).await.unwrap();
    comm_shifted(1, Duration::from_secs(36 * 3600))
        .check(&node)
        .await
        .unwrap();
}

/// Records consensus requests; never finishes taking a forwarded envelope (a chain that takes
/// no submissions: not the leader, or its queue full).
struct NeverTakesSubmissions(mpsc::UnboundedSender<Got>);

#[tonic::async_trait]
impl StepHandler for NeverTakesSubmissions {
    fn consensus(&self, sender: &Sender, req: ConsensusRequest) -> Result<(), StepError> {
        let _ = self.0.send(Got::Consensus(sender.cert.clone(), req));
        Ok(())
    }

    async fn submit(&self, _: &Sender, _: SubmitRequest) -> Result<(), StepError> {
        std::future::pending().await
    }
}

/// A receiver that stops reading forwarded envelopes still gets Raft messages. Envelopes are
/// forwarded to it until the sender has found its submit stream stuck four times (each time it
/// opens another); then Raft messages must still arrive. On a connection shared by both kinds
/// of traffic the envelopes left unread used up the connection's flow-control window and the
/// Raft messages never arrived (a three-node cluster lost its leader for good that way).
#[tokio::test]
async fn raft_messages_arrive_while_the_receiver_takes_no_forwarded_envelopes() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (addr, _stop) = serve_handler(
        &tls_file(2, "server.crt"),
        &tls_file(2, "server.key"),
        NeverTakesSubmissions(tx),
    )
    .await;
    let c = Comm::new(
        CommConfig {
            client_cert_pem: tls_file(1, "server.crt"),
            client_key_pem: tls_file(1, "server.key"),
            send_buffer_size: 10,
            dial_timeout: Duration::from_secs(5),
            // A forwarded envelope that cannot be handed over within this gives up quickly.
            rpc_timeout: Duration::from_millis(500),
            handshake_time_shift: Duration::ZERO,
        },
        None,
    )
    .unwrap();
    c.set_roots(
        CertificateDer::pem_slice_iter(&read(TLSCA))
            .map(|c| c.unwrap().to_vec())
            .collect(),
    )
    .unwrap();
    c.configure("ch", vec![remote(2, addr, 2)]);
    let envelope = ordo_proto::common::Envelope {
        payload: Bytes::from(vec![7u8; 64 * 1024]),
        signature: Bytes::new(),
    };
    let req = SubmitRequest {
        channel: "ch".into(),
        last_validation_seq: 0,
        payload: Some(envelope),
    };
    // Forward until the stream has been found stuck (and replaced by a new one) four times:
    // each stuck stream leaves a stream window of envelopes unread on the other side, together
    // more than the connection's window (hyper: 2 MB per stream, 5 MB per connection).
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut stuck = 0;
    while stuck < 4 {
        if c.send_submit("ch", 2, req.clone()).await.is_err() {
            stuck += 1;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the receiver took every envelope"
        );
    }
    for n in 10..40u8 {
        c.send_consensus("ch", 2, raft("ch", n)).unwrap();
        loop {
            match next(&mut rx).await {
                Got::Consensus(_, r) if r.payload[0] == n => break,
                _ => {}
            }
        }
    }
}

/// A Cluster service as Fabric's (grpc-go) behaves: its Step handler reads the stream and never
/// answers, so no response headers are ever sent. Records each consensus payload.
struct HeaderWithholding(mpsc::UnboundedSender<Bytes>);

#[tonic::async_trait]
impl ordo_proto::orderer::cluster_server::Cluster for HeaderWithholding {
    type StepStream = std::pin::Pin<
        Box<
            dyn futures::Stream<Item = Result<ordo_proto::orderer::StepResponse, tonic::Status>>
                + Send,
        >,
    >;

    async fn step(
        &self,
        req: tonic::Request<tonic::Streaming<ordo_proto::orderer::StepRequest>>,
    ) -> Result<tonic::Response<Self::StepStream>, tonic::Status> {
        use ordo_proto::orderer::step_request::Payload;
        let mut stream = req.into_inner();
        while let Ok(Some(m)) = stream.message().await {
            if let Some(Payload::ConsensusRequest(c)) = m.payload {
                let _ = self.0.send(c.payload);
            }
        }
        Err(tonic::Status::cancelled("the client ended the stream"))
    }
}

/// Fabric's orderer sends no response headers on a Step stream: messages must flow without
/// them. Waiting for the headers (up to the 7 s RPC timeout, then reopening) let one message
/// through per 7 s; here 20 messages arrive within 3 s.
#[tokio::test]
async fn messages_flow_to_a_server_that_never_sends_response_headers() {
    let tls = tls_server(&tls_file(2, "server.crt"), &tls_file(2, "server.key"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let svc = ordo_proto::orderer::cluster_server::ClusterServer::new(HeaderWithholding(tx));
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(incoming(listener, Some(tls), None))
            .await
            .unwrap();
    });
    let c = comm(1);
    c.configure("ch", vec![remote(2, addr, 2)]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    for n in 0..20u8 {
        c.send_consensus("ch", 2, raft("ch", n)).unwrap();
        let got = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("message {n} did not arrive within 3 s"))
            .unwrap();
        assert_eq!(got, Bytes::from(vec![n]));
    }
}
