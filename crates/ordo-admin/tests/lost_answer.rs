//! A consenter change whose Broadcast answer is lost, against a fake orderer serving the blocks a
//! real Fabric cluster made (`fixtures/fabric-2.4/ledger/from-orderer1`: blocks 0..12, then block
//! 13, the config block adding orderer4). The fake's first Broadcast stream ends without an
//! answer; the second answers BAD_REQUEST, as an orderer does to an update sent again once it
//! was ordered (its config sequence is stale). Whether the lost attempt was ordered decides:
//! if block 13 is there, the change is done; if not, the refusal is the answer.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use ordo_admin::AdminError;
use ordo_admin::consenters::{Change, Progress, change_consenters};
use ordo_admin::endpoint::{Endpoint, TlsFiles};
use ordo_config::consenters::{ConsenterEdit, consenters};
use ordo_proto::common::{Block, Envelope, Payload, Status};
use ordo_proto::etcdraft::Consenter;
use ordo_proto::orderer::atomic_broadcast_server::{AtomicBroadcast, AtomicBroadcastServer};
use ordo_proto::orderer::seek_position::Type as Position;
use ordo_proto::orderer::{BroadcastResponse, DeliverResponse, SeekInfo, deliver_response};
use ordo_testkit::{fixture, ledger_blocks};
use prost::Message;
use tonic::{Request, Response, Streaming};

type Out<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;

/// An orderer whose ledger is `served`; the first Broadcast stream ends without an answer, and
/// appends `ordered_by_lost_attempt` (if any) to the ledger first; later streams answer
/// BAD_REQUEST.
#[derive(Clone)]
struct Fake {
    served: Arc<Mutex<Vec<Block>>>,
    ordered_by_lost_attempt: Option<Block>,
    broadcasts: Arc<AtomicUsize>,
}

#[tonic::async_trait]
impl AtomicBroadcast for Fake {
    type BroadcastStream = Out<BroadcastResponse>;
    type DeliverStream = Out<DeliverResponse>;

    async fn broadcast(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<Self::BroadcastStream>, tonic::Status> {
        let mut input = request.into_inner();
        let _update = input.message().await?;
        if self.broadcasts.fetch_add(1, Ordering::SeqCst) == 0 {
            if let Some(b) = &self.ordered_by_lost_attempt {
                self.served.lock().unwrap().push(b.clone());
            }
            // The stream ends with no answer: the client cannot tell whether it was ordered.
            return Ok(Response::new(Box::pin(futures::stream::empty())));
        }
        let refusal = BroadcastResponse {
            status: Status::BadRequest as i32,
            info: "config sequence mismatch".into(),
        };
        Ok(Response::new(Box::pin(futures::stream::iter([Ok(
            refusal,
        )]))))
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
        let seek = SeekInfo::decode(payload.data).unwrap();
        let blocks = self.served.lock().unwrap().clone();
        let last = blocks.len() as u64 - 1;
        let number = |p: Option<ordo_proto::orderer::SeekPosition>| match p.and_then(|p| p.r#type) {
            Some(Position::Specified(s)) => s.number,
            _ => last,
        };
        let (start, stop) = (number(seek.start), number(seek.stop));
        let out: Vec<_> = blocks
            .into_iter()
            .skip(start as usize)
            .take((stop.min(last) + 1).saturating_sub(start) as usize)
            .map(|b| {
                Ok(DeliverResponse {
                    r#type: Some(deliver_response::Type::Block(b)),
                })
            })
            .collect();
        // Blocks not there yet are waited for (BlockUntilReady): the stream stays open.
        let waits = stop > last;
        let done = DeliverResponse {
            r#type: Some(deliver_response::Type::Status(Status::Success as i32)),
        };
        let rest: Out<DeliverResponse> = if waits {
            Box::pin(futures::stream::pending())
        } else {
            Box::pin(futures::stream::iter([Ok(done)]))
        };
        Ok(Response::new(Box::pin(futures::StreamExt::chain(
            futures::stream::iter(out),
            rest,
        ))))
    }
}

async fn serve(fake: Fake) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(AtomicBroadcastServer::new(fake))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    addr
}

fn fixture_blocks() -> Vec<Block> {
    ledger_blocks("from-orderer1")
        .into_iter()
        .map(|(_, raw)| Block::decode(raw.as_slice()).unwrap())
        .collect()
}

fn consenters_of(block: &Block) -> Vec<Consenter> {
    let cfg = ordo_channel::config::config_of_block(block).unwrap();
    consenters(cfg.config()).unwrap()
}

/// Runs the change that block 13 makes (adding orderer4) against a fake serving blocks 0..12,
/// whose lost first attempt orders block 13 or not.
async fn add_orderer4(lost_attempt_ordered: bool) -> (Result<Option<u64>, AdminError>, usize) {
    let mut blocks = fixture_blocks();
    let block13 = blocks.pop().unwrap();
    assert_eq!(
        blocks.len(),
        13,
        "fixture blocks 0..12 before the config block"
    );
    let before = consenters_of(&blocks[0]);
    let orderer4 = consenters_of(&block13)
        .into_iter()
        .find(|c| !before.contains(c))
        .expect("block 13 adds a consenter");
    let fake = Fake {
        served: Arc::new(Mutex::new(blocks)),
        ordered_by_lost_attempt: lost_attempt_ordered.then_some(block13),
        broadcasts: Arc::new(AtomicUsize::new(0)),
    };
    let broadcasts = fake.broadcasts.clone();
    let addr = serve(fake).await;
    let orderer = Endpoint::new(
        &addr.to_string(),
        &TlsFiles {
            ca: None,
            client_cert: None,
            client_key: None,
        },
        &[b"h2"],
    )
    .unwrap();
    let admin = ordo_msp::local::load_signing_identity(
        &fixture("crypto-config/ordererOrganizations/example.com/users/Admin@example.com/msp"),
        "OrdererMSP",
    )
    .unwrap()
    .signer;
    let change = Change {
        channel: "channel-3".into(),
        edit: ConsenterEdit::Add(orderer4),
        signers: vec![admin],
        check_quorum: false,
        adds_learners: true,
        probe_timeout: Duration::from_secs(1),
        wait: true,
        timeout: Duration::from_secs(20),
    };
    let mut steps = Vec::new();
    let outcome = change_consenters(&orderer, &change, &mut |p: Progress| steps.push(p)).await;
    let retried = steps
        .iter()
        .any(|p| matches!(p, Progress::Retrying(why) if why.contains("without an answer")));
    assert!(retried, "the lost answer is reported as retried: {steps:?}");
    let block = outcome.map(|o| o.config_block.and_then(|b| b.header).map(|h| h.number));
    (block, broadcasts.load(Ordering::SeqCst))
}

#[tokio::test]
async fn a_change_ordered_by_an_attempt_whose_answer_was_lost_is_done() {
    let (outcome, broadcasts) = add_orderer4(true).await;
    assert_eq!(
        broadcasts, 2,
        "sent again on a new stream after the lost answer"
    );
    assert_eq!(
        outcome.expect("the change is carried by block 13"),
        Some(13)
    );
}

#[tokio::test]
async fn a_refusal_after_a_lost_answer_stands_when_nothing_was_ordered() {
    let (outcome, broadcasts) = add_orderer4(false).await;
    assert_eq!(broadcasts, 2);
    match outcome {
        Err(AdminError::Refused { status, info }) => {
            assert_eq!(status, "BAD_REQUEST");
            assert_eq!(info, "config sequence mismatch");
        }
        other => panic!("expected the refusal, got {other:?}"),
    }
}
