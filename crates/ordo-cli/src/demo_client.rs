//! The demo's client, which keeps going through refusals and lost streams as Fabric's SDKs do.
//! Broadcast: envelopes stay queued until the orderer answers SUCCESS; a refusal ends the stream
//! (the orderer closes it after a non-SUCCESS answer, as Fabric's does), and so may a leader
//! change, a restart or a network error, so after a short back-off a new stream is opened and
//! every envelope not yet acknowledged is sent again, the same signed bytes. Deliver: when the
//! stream ends (a node without a leader answers SERVICE_UNAVAILABLE) it is opened again from the
//! block after the last one received. Re-sent envelopes may be ordered twice (their first copy
//! was ordered but its answer lost), so delivered envelopes are counted by their hash (a re-sent
//! envelope is the same bytes; the demo's carry no transaction ID to tell them by), each once,
//! and the copies as duplicates.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ordo_proto::common::{Block, Envelope, HeaderType, Status};
use ordo_proto::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use ordo_proto::orderer::seek_info::{SeekBehavior, SeekErrorResponse};
use ordo_proto::orderer::{SeekInfo, deliver_response};
use prost::Message;
use tokio::sync::mpsc;
use tonic::transport::Channel as GrpcChannel;

/// Where the client reports what it had to do (a refusal, a new stream).
pub type Report = Arc<dyn Fn(&str) + Send + Sync>;

/// What the client did, for the final summary.
#[derive(Default)]
pub struct Counts {
    /// Envelopes sent (each counted once, however often it was sent).
    pub sent: AtomicU64,
    /// SUCCESS answers.
    pub acknowledged: AtomicU64,
    /// Sends of an envelope that had been sent before, on a new stream.
    pub resent: AtomicU64,
    /// Broadcast streams opened after the first.
    pub reopened: AtomicU64,
    /// Envelopes refused for good (an answer other than SERVICE_UNAVAILABLE or
    /// INTERNAL_SERVER_ERROR): not sent again.
    pub refused: AtomicU64,
    /// Distinct transactions seen in the delivered blocks.
    pub delivered: AtomicU64,
    /// Transactions seen in a delivered block again.
    pub duplicates: AtomicU64,
}

impl Counts {
    pub fn summary(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let refused = match get(&self.refused) {
            0 => String::new(),
            n => format!(", {n} refused for good"),
        };
        format!(
            "Client: {} envelopes sent, {} acknowledged, {} re-sent on {} new Broadcast stream(s){refused}; {} delivered in blocks ({} duplicate(s))",
            get(&self.sent),
            get(&self.acknowledged),
            get(&self.resent),
            get(&self.reopened),
            get(&self.delivered),
            get(&self.duplicates)
        )
    }
}

/// The wait before a new stream: 100 ms, doubling up to 2 s, back to 100 ms once the orderer
/// answers again.
struct Backoff(Duration);

impl Backoff {
    const MIN: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(2);

    fn new() -> Self {
        Backoff(Self::MIN)
    }

    fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(Self::MAX);
        d
    }

    fn reset(&mut self) {
        self.0 = Self::MIN;
    }
}

/// How long an envelope may wait for its answer before the stream is taken for dead.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Refusals worth sending again: the orderer could not take the envelope now (no leader, a
/// leader change, a full queue), not that the envelope is wrong.
fn transient(status: i32) -> bool {
    status == Status::ServiceUnavailable as i32 || status == Status::InternalServerError as i32
}

/// An envelope waiting for its SUCCESS, and whether it went out on an earlier stream.
struct Pending {
    envelope: Envelope,
    sent_before: bool,
}

/// Why a Broadcast stream was given up.
enum Ended {
    /// The producer stopped and nothing is left to send.
    Done,
    /// A refusal, or a stream that failed or went silent: open another.
    Retry(String),
}

/// Broadcasts `envelopes` through `client` until the producer stops and every envelope was
/// answered, re-sending what was not acknowledged on a new stream after each refusal or lost
/// stream.
pub async fn broadcast(
    mut client: AtomicBroadcastClient<GrpcChannel>,
    mut envelopes: mpsc::Receiver<Envelope>,
    counts: Arc<Counts>,
    report: Report,
) {
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut backoff = Backoff::new();
    let mut producing = true;
    loop {
        let ended = stream(
            &mut client,
            &mut envelopes,
            &mut producing,
            &mut pending,
            &counts,
            &mut backoff,
        )
        .await;
        let why = match ended {
            Ended::Done => return,
            Ended::Retry(why) => why,
        };
        let wait = backoff.next();
        report(&format!(
            "client: {why}; {} envelope(s) unacknowledged, a new Broadcast stream in {} ms",
            pending.len(),
            wait.as_millis()
        ));
        // The producer's envelopes are queued meanwhile, so that it keeps its pace.
        let wake = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => break,
                e = envelopes.recv(), if producing => match e {
                    Some(envelope) => pending.push_back(Pending { envelope, sent_before: false }),
                    None => producing = false,
                },
            }
        }
        counts.reopened.fetch_add(1, Ordering::Relaxed);
    }
}

/// One Broadcast stream: the pending envelopes first, then the producer's, answers matched to
/// them in order (the orderer answers each envelope of a stream in turn).
async fn stream(
    client: &mut AtomicBroadcastClient<GrpcChannel>,
    envelopes: &mut mpsc::Receiver<Envelope>,
    producing: &mut bool,
    pending: &mut VecDeque<Pending>,
    counts: &Counts,
    backoff: &mut Backoff,
) -> Ended {
    if !*producing && pending.is_empty() {
        return Ended::Done;
    }
    let (out, out_rx) = mpsc::unbounded_channel::<Envelope>();
    for p in pending.iter_mut() {
        // The receiver is held by the request stream below: this send cannot fail.
        let _ = out.send(p.envelope.clone());
        if p.sent_before {
            counts.resent.fetch_add(1, Ordering::Relaxed);
        } else {
            p.sent_before = true;
            counts.sent.fetch_add(1, Ordering::Relaxed);
        }
    }
    let requests =
        futures::stream::unfold(
            out_rx,
            |mut rx| async move { rx.recv().await.map(|e| (e, rx)) },
        );
    let mut answers = match tokio::time::timeout(ANSWER_TIMEOUT, client.broadcast(requests)).await {
        Ok(Ok(r)) => r.into_inner(),
        Ok(Err(status)) => {
            return Ended::Retry(format!("Broadcast failed: {}", status.message()));
        }
        Err(_) => return Ended::Retry("Broadcast not answered within 10 s".into()),
    };
    // When the oldest unanswered envelope went out (or this stream opened).
    let mut waiting_since = tokio::time::Instant::now();
    loop {
        tokio::select! {
            e = envelopes.recv(), if *producing => match e {
                Some(envelope) => {
                    if pending.is_empty() {
                        waiting_since = tokio::time::Instant::now();
                    }
                    let _ = out.send(envelope.clone());
                    counts.sent.fetch_add(1, Ordering::Relaxed);
                    pending.push_back(Pending { envelope, sent_before: true });
                }
                None => {
                    *producing = false;
                    if pending.is_empty() {
                        return Ended::Done;
                    }
                }
            },
            answer = answers.message() => match answer {
                Ok(Some(r)) if r.status == Status::Success as i32 => {
                    pending.pop_front();
                    counts.acknowledged.fetch_add(1, Ordering::Relaxed);
                    backoff.reset();
                    waiting_since = tokio::time::Instant::now();
                    if !*producing && pending.is_empty() {
                        return Ended::Done;
                    }
                }
                Ok(Some(r)) => {
                    let status = Status::try_from(r.status)
                        .map_or(r.status.to_string(), |s| s.as_str_name().to_string());
                    if !transient(r.status) {
                        // Sending it again would be refused again.
                        pending.pop_front();
                        counts.refused.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ended::Retry(format!("Broadcast answered {status}: {}", r.info));
                }
                Ok(None) => return Ended::Retry("the orderer ended the Broadcast stream".into()),
                Err(e) => return Ended::Retry(format!("Broadcast stream failed: {}", e.message())),
            },
            _ = tokio::time::sleep_until(waiting_since + ANSWER_TIMEOUT), if !pending.is_empty() => {
                return Ended::Retry("no answer within 10 s".into());
            }
        }
    }
}

/// Follows `channel`'s blocks from block 0 on through `client`'s Deliver, handing each to
/// `on_block` in order (once each) and counting its transactions; a stream that ends or fails
/// is opened again, after a back-off, from the next block. Runs until aborted (or fails to sign
/// its request).
pub async fn deliver(
    mut client: AtomicBroadcastClient<GrpcChannel>,
    channel: String,
    signer: Arc<ordo_msp::SigningIdentity>,
    counts: Arc<Counts>,
    report: Report,
    mut on_block: impl FnMut(&Block),
) -> anyhow::Result<()> {
    let mut next = 0u64;
    let mut seen: HashSet<[u8; 32]> = HashSet::new();
    let mut backoff = Backoff::new();
    loop {
        let seek = SeekInfo {
            start: Some(ordo_orderer::deliver::specified(next)),
            stop: Some(ordo_orderer::deliver::specified(u64::MAX)),
            behavior: SeekBehavior::BlockUntilReady as i32,
            error_response: SeekErrorResponse::Strict as i32,
        };
        let seek_env = ordo_config::envelope::create_signed_envelope(
            HeaderType::DeliverSeekInfo,
            &channel,
            &signer,
            seek.encode_to_vec().into(),
        )?;
        let why = match client.deliver(futures::stream::iter(vec![seek_env])).await {
            Err(e) => format!("Deliver failed: {}", e.message()),
            Ok(r) => {
                let mut blocks = r.into_inner();
                loop {
                    match blocks.message().await {
                        Ok(Some(msg)) => match msg.r#type {
                            Some(deliver_response::Type::Block(b)) => {
                                let number = b.header.as_ref().map_or(next, |h| h.number);
                                if number != next {
                                    break format!("Deliver sent block {number} for {next}");
                                }
                                backoff.reset();
                                count_transactions(&b, &mut seen, &counts);
                                on_block(&b);
                                next += 1;
                            }
                            Some(deliver_response::Type::Status(s)) => {
                                let status = Status::try_from(s)
                                    .map_or(s.to_string(), |s| s.as_str_name().to_string());
                                break format!("Deliver ended with {status}");
                            }
                            None => {}
                        },
                        Ok(None) => break "the orderer ended the Deliver stream".to_string(),
                        Err(e) => break format!("Deliver stream failed: {}", e.message()),
                    }
                }
            }
        };
        let wait = backoff.next();
        report(&format!(
            "client: {why}; Deliver again from block {next} in {} ms",
            wait.as_millis()
        ));
        tokio::time::sleep(wait).await;
    }
}

/// Counts the envelopes of a block that is not a config block, each distinct one once.
fn count_transactions(block: &Block, seen: &mut HashSet<[u8; 32]>, counts: &Counts) {
    if ordo_ledger::block::is_config_block(block) {
        return;
    }
    for raw in block.data.iter().flat_map(|d| d.data.iter()) {
        if seen.insert(ordo_crypto::sha256(raw)) {
            counts.delivered.fetch_add(1, Ordering::Relaxed);
        } else {
            counts.duplicates.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::sync::Mutex;

    use bytes::Bytes;
    use futures::StreamExt;
    use ordo_proto::common::{BlockData, BlockHeader, ChannelHeader, Header, Payload};
    use ordo_proto::orderer::atomic_broadcast_server::{AtomicBroadcast, AtomicBroadcastServer};
    use ordo_proto::orderer::seek_position::Type as Position;
    use ordo_proto::orderer::{BroadcastResponse, DeliverResponse};
    use tonic::{Request, Response, Streaming};

    type Out<T> = Pin<Box<dyn futures::Stream<Item = Result<T, tonic::Status>> + Send>>;

    /// An orderer that misbehaves on a script. Broadcast: its first stream answers SUCCESS twice,
    /// then SERVICE_UNAVAILABLE, and ends; its second answers SUCCESS once and ends without
    /// answering the next envelope; later ones answer SUCCESS to everything. Deliver: its first
    /// stream sends blocks 0 and 1 and ends with SERVICE_UNAVAILABLE; later ones send `blocks`
    /// from the asked start and then stay open.
    #[derive(Clone, Default)]
    struct Scripted {
        broadcast_streams: Arc<AtomicU64>,
        /// The payload of each envelope answered SUCCESS, in answer order.
        acknowledged: Arc<Mutex<Vec<String>>>,
        deliver_streams: Arc<AtomicU64>,
        /// The start block of each Deliver request.
        starts: Arc<Mutex<Vec<u64>>>,
        blocks: Arc<Vec<Block>>,
    }

    fn answer(status: Status) -> Result<BroadcastResponse, tonic::Status> {
        Ok(BroadcastResponse {
            status: status as i32,
            info: String::new(),
        })
    }

    fn payload_text(env: &Envelope) -> String {
        let payload = Payload::decode(env.payload.as_ref()).unwrap();
        String::from_utf8(payload.data.to_vec()).unwrap()
    }

    #[tonic::async_trait]
    impl AtomicBroadcast for Scripted {
        type BroadcastStream = Out<BroadcastResponse>;
        type DeliverStream = Out<DeliverResponse>;

        async fn broadcast(
            &self,
            request: Request<Streaming<Envelope>>,
        ) -> Result<Response<Self::BroadcastStream>, tonic::Status> {
            let stream = self.broadcast_streams.fetch_add(1, Ordering::SeqCst);
            let mut input = request.into_inner();
            let (tx, rx) = mpsc::unbounded_channel();
            let acknowledged = self.acknowledged.clone();
            tokio::spawn(async move {
                let mut k = 0;
                while let Ok(Some(env)) = input.message().await {
                    let refuse = match stream {
                        0 => (k == 2).then_some(Some(Status::ServiceUnavailable)),
                        1 => (k == 1).then_some(None),
                        _ => None,
                    };
                    match refuse {
                        Some(Some(status)) => {
                            let _ = tx.send(answer(status));
                            return;
                        }
                        Some(None) => return,
                        None => {
                            acknowledged.lock().unwrap().push(payload_text(&env));
                            let _ = tx.send(answer(Status::Success));
                        }
                    }
                    k += 1;
                }
            });
            let out =
                futures::stream::unfold(
                    rx,
                    |mut rx| async move { rx.recv().await.map(|a| (a, rx)) },
                );
            Ok(Response::new(Box::pin(out)))
        }

        async fn deliver(
            &self,
            request: Request<Streaming<Envelope>>,
        ) -> Result<Response<Self::DeliverStream>, tonic::Status> {
            let env = request.into_inner().message().await?.unwrap();
            let payload = Payload::decode(env.payload.as_ref()).unwrap();
            let seek = SeekInfo::decode(payload.data.as_ref()).unwrap();
            let start = match seek.start.and_then(|p| p.r#type) {
                Some(Position::Specified(s)) => s.number,
                other => panic!("seek from {other:?}"),
            };
            self.starts.lock().unwrap().push(start);
            let block = |n: u64| {
                Ok(DeliverResponse {
                    r#type: Some(deliver_response::Type::Block(
                        self.blocks[n as usize].clone(),
                    )),
                })
            };
            if self.deliver_streams.fetch_add(1, Ordering::SeqCst) == 0 {
                let out = vec![
                    block(0),
                    block(1),
                    Ok(DeliverResponse {
                        r#type: Some(deliver_response::Type::Status(
                            Status::ServiceUnavailable as i32,
                        )),
                    }),
                ];
                return Ok(Response::new(Box::pin(futures::stream::iter(out))));
            }
            let out: Vec<_> = (start..self.blocks.len() as u64).map(block).collect();
            Ok(Response::new(Box::pin(
                futures::stream::iter(out).chain(futures::stream::pending()),
            )))
        }
    }

    /// Serves `orderer` on a port the kernel chooses; a client of it.
    async fn serve(orderer: Scripted) -> AtomicBroadcastClient<GrpcChannel> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = futures::stream::unfold(listener, |l| async move {
            let conn = l.accept().await.map(|(s, _)| s);
            Some((conn, l))
        });
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(AtomicBroadcastServer::new(orderer))
                .serve_with_incoming(incoming),
        );
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        AtomicBroadcastClient::new(channel)
    }

    fn envelope(text: &str, tx_id: &str) -> Envelope {
        let ch = ChannelHeader {
            r#type: HeaderType::EndorserTransaction as i32,
            tx_id: tx_id.to_string(),
            ..Default::default()
        };
        let payload = Payload {
            header: Some(Header {
                channel_header: ch.encode_to_vec().into(),
                signature_header: Bytes::new(),
            }),
            data: Bytes::copy_from_slice(text.as_bytes()),
        };
        Envelope {
            payload: payload.encode_to_vec().into(),
            signature: Bytes::new(),
        }
    }

    fn no_report() -> Report {
        Arc::new(|_: &str| {})
    }

    #[tokio::test]
    async fn refused_and_cut_off_envelopes_are_sent_again_until_acknowledged() {
        let orderer = Scripted::default();
        let client = serve(orderer.clone()).await;
        let (tx, rx) = mpsc::channel(16);
        let texts: Vec<String> = (0..6).map(|i| format!("tx {i}")).collect();
        for t in &texts {
            tx.send(envelope(t, t)).await.unwrap();
        }
        drop(tx);
        let counts = Arc::new(Counts::default());
        let done = broadcast(client, rx, counts.clone(), no_report());
        tokio::time::timeout(Duration::from_secs(30), done)
            .await
            .expect("every envelope acknowledged");
        // Each acknowledged once, in order, across the three streams.
        assert_eq!(*orderer.acknowledged.lock().unwrap(), texts);
        assert_eq!(orderer.broadcast_streams.load(Ordering::SeqCst), 3);
        let get = |c: &AtomicU64| c.load(Ordering::SeqCst);
        assert_eq!(get(&counts.sent), 6);
        assert_eq!(get(&counts.acknowledged), 6);
        assert_eq!(get(&counts.reopened), 2);
        // At least the refused one (tx 2) and the one cut off on the second stream (tx 3).
        assert!(get(&counts.resent) >= 2, "{}", counts.summary());
        assert_eq!(get(&counts.refused), 0);
    }

    #[tokio::test]
    async fn deliver_resumes_after_the_last_block_and_counts_each_transaction_once() {
        let block = |n: u64, txs: &[&str]| Block {
            header: Some(BlockHeader {
                number: n,
                ..Default::default()
            }),
            data: Some(BlockData {
                data: txs
                    .iter()
                    .map(|t| envelope(t, t).encode_to_vec().into())
                    .collect(),
            }),
            metadata: None,
        };
        // Block 2 holds "b" again, as when a re-sent envelope had been ordered already.
        let blocks = vec![
            block(0, &["genesis"]),
            block(1, &["a", "b"]),
            block(2, &["b", "c"]),
            block(3, &["d"]),
        ];
        let orderer = Scripted {
            blocks: Arc::new(blocks),
            ..Scripted::default()
        };
        let client = serve(orderer.clone()).await;
        let signer = ordo_msp::local::load_signing_identity(
            &ordo_testkit::fixture(
                "crypto-config/peerOrganizations/org1.example.com/users/User1@org1.example.com/msp",
            ),
            "Org1MSP",
        )
        .unwrap()
        .signer;
        let counts = Arc::new(Counts::default());
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        let follower = tokio::spawn(deliver(
            client,
            "ch".into(),
            Arc::new(signer),
            counts.clone(),
            no_report(),
            move |b: &Block| {
                let _ = seen_tx.send(b.header.as_ref().unwrap().number);
            },
        ));
        let mut numbers = Vec::new();
        while numbers.len() < 4 {
            let n = tokio::time::timeout(Duration::from_secs(30), seen.recv())
                .await
                .expect("the next block")
                .unwrap();
            numbers.push(n);
        }
        follower.abort();
        assert_eq!(numbers, [0, 1, 2, 3]);
        // The second stream asked for the block after the last one received.
        assert_eq!(*orderer.starts.lock().unwrap(), [0, 2]);
        // genesis, a, b, c, d once each; b's second copy a duplicate.
        assert_eq!(counts.delivered.load(Ordering::SeqCst), 5);
        assert_eq!(counts.duplicates.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_backoff_doubles_to_two_seconds_and_resets() {
        let mut b = Backoff::new();
        let waits: Vec<u128> = (0..7).map(|_| b.next().as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 2000, 2000]);
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(100));
    }

    #[test]
    fn only_unavailability_is_retried() {
        assert!(transient(Status::ServiceUnavailable as i32));
        assert!(transient(Status::InternalServerError as i32));
        assert!(!transient(Status::BadRequest as i32));
        assert!(!transient(Status::Forbidden as i32));
    }
}
