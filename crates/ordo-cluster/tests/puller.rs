//! The block puller against fake orderers serving the blocks a real Fabric cluster made
//! (`fixtures/fabric-2.4/ledger/from-orderer1`) over TLS: it skips an endpoint that is down,
//! rejects a tampered block and pulls the rest again on a new stream, binds its requests to its
//! TLS certificate, and stops at the target until the target is raised; and that the newest
//! config block is fetched from the most advanced orderer.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use ordo_cluster::comm::{Comm, CommConfig};
use ordo_cluster::puller::{
    ProbeError, Puller, Replication, Source, SourceError, last_config_block,
};
use ordo_cluster::tls::{Alpn, ClientAuth, TlsServer, incoming};
use ordo_proto::common::{Block, ChannelHeader, Envelope, Header, Payload};
use ordo_proto::orderer::atomic_broadcast_server::{AtomicBroadcast, AtomicBroadcastServer};
use ordo_proto::orderer::seek_position::Type as Position;
use ordo_proto::orderer::{BroadcastResponse, DeliverResponse, SeekInfo, deliver_response};
use ordo_testkit::{ledger_blocks, read};
use prost::Message;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tonic::{Request, Response, Streaming};

const ORDERERS: &str = "crypto-config/ordererOrganizations/example.com/orderers";
const TLSCA: &str =
    "crypto-config/ordererOrganizations/example.com/tlsca/tlsca.example.com-cert.pem";
const WAIT: Duration = Duration::from_secs(20);

fn tls_file(node: u32, file: &str) -> Vec<u8> {
    read(&format!("{ORDERERS}/orderer{node}.example.com/tls/{file}"))
}

fn fixture_blocks() -> Vec<Block> {
    ledger_blocks("from-orderer1")
        .into_iter()
        .map(|(_, raw)| Block::decode(raw.as_slice()).unwrap())
        .collect()
}

/// A Deliver service over the fixture blocks. The first `tamper_streams` range streams carry
/// block 5 with altered data; the TLS binding hash of every request is recorded.
#[derive(Clone)]
struct FakeOrderer {
    blocks: Arc<Vec<Block>>,
    tamper_streams: Arc<AtomicUsize>,
    range_streams: Arc<AtomicUsize>,
    bindings: Arc<Mutex<Vec<Bytes>>>,
}

type Out<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl AtomicBroadcast for FakeOrderer {
    type BroadcastStream = Out<BroadcastResponse>;
    type DeliverStream = Out<DeliverResponse>;

    async fn broadcast(
        &self,
        _: Request<Streaming<Envelope>>,
    ) -> Result<Response<Self::BroadcastStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("not here"))
    }

    async fn deliver(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<Self::DeliverStream>, tonic::Status> {
        let mut input = request.into_inner();
        let env = input
            .message()
            .await?
            .ok_or(tonic::Status::cancelled("no seek"))?;
        let payload = Payload::decode(env.payload).unwrap();
        let ch = ChannelHeader::decode(payload.header.unwrap().channel_header).unwrap();
        self.bindings.lock().unwrap().push(ch.tls_cert_hash);
        let seek = SeekInfo::decode(payload.data).unwrap();
        let last = self.blocks.len() as u64 - 1;
        let number = |p: Option<ordo_proto::orderer::SeekPosition>| match p.and_then(|p| p.r#type) {
            Some(Position::Specified(s)) => s.number,
            _ => last,
        };
        let (start, stop) = (number(seek.start), number(seek.stop).min(last));
        let tamper = start < stop
            && self
                .tamper_streams
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if start < stop {
            self.range_streams.fetch_add(1, Ordering::SeqCst);
        }
        let mut out = Vec::new();
        for n in start..=stop {
            let mut b = self.blocks[n as usize].clone();
            if tamper && n == 5 {
                b.data.as_mut().unwrap().data[0] = Bytes::from_static(b"forged");
            }
            out.push(Ok(DeliverResponse {
                r#type: Some(deliver_response::Type::Block(b)),
            }));
        }
        out.push(Ok(DeliverResponse {
            r#type: Some(deliver_response::Type::Status(200)),
        }));
        Ok(Response::new(Box::pin(futures::stream::iter(out))))
    }
}

/// Serves `fake` over TLS with orderer`node`'s server certificate.
async fn serve(fake: FakeOrderer, node: u32) -> SocketAddr {
    let roots = CertificateDer::pem_slice_iter(&read(TLSCA))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let tls = TlsServer::new(
        &tls_file(node, "server.crt"),
        &tls_file(node, "server.key"),
        roots,
        ClientAuth::Required,
        Duration::ZERO,
        Alpn::Grpc,
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(AtomicBroadcastServer::new(fake))
            .serve_with_incoming(incoming(listener, Some(tls), None))
            .await
            .unwrap();
    });
    addr
}

/// An address nothing listens on, while the returned socket is held: bound but not listening,
/// so a connection to it is refused and the port cannot be given to anything else meanwhile (a
/// port bound and released could be, and then something might answer there).
fn dead_address() -> (tokio::net::TcpSocket, SocketAddr) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// Endpoints and roots as given; requests unsigned (the fake does not check); every block
/// accepted, counted.
struct TestSource {
    endpoints: Vec<String>,
    verified: Arc<AtomicUsize>,
}

impl Source for TestSource {
    fn endpoints(&self) -> Vec<String> {
        self.endpoints.clone()
    }

    fn tls_roots(&self) -> Vec<Bytes> {
        vec![Bytes::from(read(TLSCA))]
    }

    fn seek_envelope(&self, seek: SeekInfo, tls_cert_hash: Bytes) -> Result<Envelope, SourceError> {
        let ch = ChannelHeader {
            channel_id: "channel-3".into(),
            tls_cert_hash,
            ..Default::default()
        };
        let payload = Payload {
            header: Some(Header {
                channel_header: ch.encode_to_vec().into(),
                signature_header: Bytes::new(),
            }),
            data: seek.encode_to_vec().into(),
        };
        Ok(Envelope {
            payload: payload.encode_to_vec().into(),
            signature: Bytes::from_static(b"sig"),
        })
    }

    fn verify(&mut self, _: &Block) -> Result<(), SourceError> {
        self.verified.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn comm() -> Comm {
    Comm::new(
        CommConfig {
            client_cert_pem: tls_file(1, "server.crt"),
            client_key_pem: tls_file(1, "server.key"),
            send_buffer_size: 10,
            dial_timeout: Duration::from_secs(2),
            rpc_timeout: Duration::from_secs(2),
            handshake_time_shift: Duration::ZERO,
        },
        None,
    )
    .unwrap()
}

fn config() -> Replication {
    Replication {
        // Smaller than the whole range: the buffer must let blocks through as they are taken.
        buffer_bytes: 64 * 1024,
        pull_timeout: Duration::from_secs(2),
        retry_timeout: Duration::from_millis(100),
    }
}

#[tokio::test]
async fn skips_a_dead_endpoint_rejects_a_tampered_block_and_binds_its_requests() {
    let blocks = fixture_blocks();
    let fake = FakeOrderer {
        blocks: Arc::new(blocks.clone()),
        tamper_streams: Arc::new(AtomicUsize::new(1)),
        range_streams: Arc::new(AtomicUsize::new(0)),
        bindings: Arc::new(Mutex::new(Vec::new())),
    };
    let addr = serve(fake.clone(), 2).await;
    // Nothing listens there.
    let (_dead_socket, dead) = dead_address();
    let verified = Arc::new(AtomicUsize::new(0));
    let source = TestSource {
        endpoints: vec![dead.to_string(), addr.to_string()],
        verified: verified.clone(),
    };
    let c = comm();
    let expected_binding = Bytes::copy_from_slice(&ordo_crypto::sha256(
        &CertificateDer::from_pem_slice(&tls_file(1, "server.crt")).unwrap(),
    ));
    assert_eq!(c.client_cert_hash(), expected_binding);
    let prev = blocks[0].header.clone().unwrap();
    let (puller, mut rx) = Puller::start("channel-3", config(), c, source, Some(prev), 8);
    let mut got = Vec::new();
    while got.len() < 8 {
        let p = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("no block in time")
            .expect("puller stopped");
        got.push(p.block);
    }
    assert_eq!(
        got,
        blocks[1..=8].to_vec(),
        "exactly the fixture's blocks, in order"
    );
    assert!(
        fake.range_streams.load(Ordering::SeqCst) >= 2,
        "the tampered stream was abandoned for a new one"
    );
    // Blocks 1..4 of the tampered stream and 5..8 of the next passed the hash checks.
    assert_eq!(verified.load(Ordering::SeqCst), 8);
    assert!(
        fake.bindings
            .lock()
            .unwrap()
            .iter()
            .all(|b| *b == expected_binding)
    );

    // At the target it waits; raising the target pulls the rest.
    puller.set_target(13);
    for expected in &blocks[9..=13] {
        let p = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("no block in time")
            .expect("puller stopped");
        assert_eq!(p.block, *expected);
    }
    drop(puller);
    assert!(
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .is_none()
    );
}

fn fake_with(blocks: &[Block]) -> FakeOrderer {
    FakeOrderer {
        blocks: Arc::new(blocks.to_vec()),
        tamper_streams: Arc::new(AtomicUsize::new(0)),
        range_streams: Arc::new(AtomicUsize::new(0)),
        bindings: Arc::new(Mutex::new(Vec::new())),
    }
}

#[tokio::test]
async fn the_last_config_block_comes_from_the_most_advanced_orderer() {
    let blocks = fixture_blocks();
    // One orderer lags before config block 13, one has it, one is down.
    let behind = serve(fake_with(&blocks[..13]), 2).await;
    let ahead = serve(fake_with(&blocks), 3).await;
    let (_dead_socket, dead) = dead_address();
    let verified = Arc::new(AtomicUsize::new(0));
    let source = |endpoints: Vec<String>| TestSource {
        endpoints,
        verified: verified.clone(),
    };
    let all = vec![dead.to_string(), behind.to_string(), ahead.to_string()];
    let got = last_config_block("channel-3", config(), comm(), source(all))
        .await
        .unwrap();
    assert_eq!(got, blocks[13]);
    assert_eq!(verified.load(Ordering::SeqCst), 1, "the block was verified");

    // Block 12's LAST_CONFIG names the genesis block.
    let got = last_config_block(
        "channel-3",
        config(),
        comm(),
        source(vec![behind.to_string()]),
    )
    .await
    .unwrap();
    assert_eq!(got, blocks[0]);

    let err = last_config_block(
        "channel-3",
        config(),
        comm(),
        source(vec![dead.to_string()]),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ProbeError::NoAnswer), "{err}");
}
