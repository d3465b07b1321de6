//! Hostile clients of the general gRPC listener, against a real node: bytes that are not an
//! Envelope, a message over `MaxRecvMsgSize`, a flood of Broadcasts with bad signatures,
//! Deliver streams that ask for every block and never read, and strangers on the cluster
//! service (which shares the listener here). Each gets a bounded cost and a clear
//! refusal (Go gRPC's and Fabric's status), and an honest client is served meanwhile; the
//! figures are printed, not asserted.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use bytes::{Buf, BufMut};
use common::*;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// `MaxRecvMsgSize` of the node under test.
const MAX_RECV: usize = 1024 * 1024;

/// A codec that sends and receives raw message bytes, to put on the wire what no protobuf
/// library would.
#[derive(Default)]
struct Raw;
struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut v = vec![0; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// Sends `messages` as raw bytes on one stream of `method` and returns the responses read
/// before the stream ended, and the status it ended with.
async fn raw_stream(
    node: &OrdoProcess,
    method: &'static str,
    messages: Vec<Vec<u8>>,
) -> (Vec<Vec<u8>>, tonic::Status) {
    raw_stream_as(node, None, method, messages).await
}

/// As [`raw_stream`], presenting the TLS client certificate in `cert_dir` if given.
async fn raw_stream_as(
    node: &OrdoProcess,
    cert_dir: Option<&str>,
    method: &'static str,
    messages: Vec<Vec<u8>>,
) -> (Vec<Vec<u8>>, tonic::Status) {
    let channel = grpc_channel(node.addrs.general, Some(client_tls(cert_dir, b"h2")))
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(method);
    let call = grpc.streaming(
        tonic::Request::new(futures::stream::iter(messages)),
        path,
        Raw,
    );
    let mut stream = match tokio::time::timeout(WAIT, call).await.unwrap() {
        Ok(r) => r.into_inner(),
        Err(status) => return (Vec::new(), status),
    };
    let mut answers = Vec::new();
    loop {
        match tokio::time::timeout(WAIT, stream.message()).await.unwrap() {
            Ok(Some(m)) => answers.push(m),
            Ok(None) => return (answers, tonic::Status::ok("")),
            Err(status) => return (answers, status),
        }
    }
}

async fn node_with_channel_1(dir: &Path) -> (OrdoProcess, SigningIdentity) {
    let config = write_config(dir, false);
    // Fabric's default is 100 MiB; a smaller bound keeps the oversized message cheap to send.
    let yaml = std::fs::read_to_string(&config).unwrap().replace(
        "    LocalMSPID: OrdererMSP\n",
        &format!("    LocalMSPID: OrdererMSP\n    MaxRecvMsgSize: {MAX_RECV}\n"),
    );
    std::fs::write(&config, yaml).unwrap();
    let node = OrdoProcess::start(&config);
    let (_, user1) = led_channel_1(&node).await;
    (node, user1)
}

/// Broadcasts envelopes `ids` one at a time, each on its own stream; every one must succeed.
/// Returns how long each took.
async fn timed_broadcasts(
    client: &mut AtomicBroadcastClient<tonic::transport::Channel>,
    user: &SigningIdentity,
    ids: std::ops::RangeInclusive<u64>,
) -> Vec<Duration> {
    let mut took = Vec::new();
    for i in ids {
        let t = Instant::now();
        let r = broadcast(client, vec![tx(user, "channel-1", i)]).await;
        assert_eq!(r[0].0, Status::Success as i32, "{}", r[0].1);
        took.push(t.elapsed());
    }
    took.sort();
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_and_oversized_messages_end_the_stream_with_go_grpcs_status() {
    let dir = tempfile::tempdir().unwrap();
    let (node, user1) = node_with_channel_1(dir.path()).await;

    for method in [
        "/orderer.AtomicBroadcast/Broadcast",
        "/orderer.AtomicBroadcast/Deliver",
    ] {
        // Not protobuf: a field with the reserved wire type 7.
        let (answers, status) = raw_stream(&node, method, vec![vec![0x0f, 0xff, 0x01]]).await;
        assert!(answers.is_empty(), "{method}: {answers:?}");
        assert_eq!(status.code(), tonic::Code::Internal, "{method}: {status:?}");
        assert!(
            status
                .message()
                .starts_with("grpc: failed to unmarshal the received message: "),
            "{method}: {}",
            status.message()
        );

        // Over MaxRecvMsgSize: refused before it is read whole.
        let (_, status) = raw_stream(&node, method, vec![vec![0u8; MAX_RECV + 1]]).await;
        assert_eq!(
            status.code(),
            tonic::Code::ResourceExhausted,
            "{method}: {status:?}"
        );
        assert_eq!(
            status.message(),
            format!(
                "grpc: received message larger than max ({} vs. {MAX_RECV})",
                MAX_RECV + 1
            ),
            "{method}"
        );
    }

    // Envelopes before the unreadable one are answered first, then the stream ends with its
    // status.
    let good: Vec<Vec<u8>> = (1..=3)
        .map(|i| tx(&user1, "channel-1", i).encode_to_vec())
        .collect();
    let mut messages = good.clone();
    messages.push(vec![0x0f, 0xff, 0x01]);
    let (answers, status) = raw_stream(&node, "/orderer.AtomicBroadcast/Broadcast", messages).await;
    assert_eq!(answers.len(), 3, "{status:?}");
    for a in &answers {
        let r = ordo_proto::orderer::BroadcastResponse::decode(&a[..]).unwrap();
        assert_eq!(r.status, Status::Success as i32, "{}", r.info);
    }
    assert_eq!(status.code(), tonic::Code::Internal);

    // The node serves on: the three good envelopes are ordered, nothing else.
    let mut client = node.grpc().await;
    let r = broadcast(&mut client, vec![tx(&user1, "channel-1", 4)]).await;
    assert_eq!(r[0].0, Status::Success as i32, "{}", r[0].1);
    let blocks = deliver_envelopes(&mut client, &user1, "channel-1", 5).await;
    assert_eq!(envelope_count(&blocks), 5);
}

/// `env` with its signature's last byte changed: well formed, signed by a member, not valid.
fn forged(mut env: Envelope) -> Envelope {
    let mut sig = env.signature.to_vec();
    let last = sig.len() - 1;
    sig[last] ^= 0x01;
    env.signature = sig.into();
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_badly_signed_broadcasts_is_refused_and_honest_clients_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (node, user1) = node_with_channel_1(dir.path()).await;
    let mut client = node.grpc().await;

    // The honest client's latency before the flood.
    let before = timed_broadcasts(&mut client, &user1, 1..=20).await;

    // Four flooders, each on its own connection, each envelope on a stream of its own (a
    // refusal ends the stream, as in Fabric).
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicU64::new(0));
    let mut flooders = Vec::new();
    for f in 0..4u64 {
        let mut c = node.grpc().await;
        let user = signer(USER1, "Org1MSP");
        let (stop, refused) = (stop.clone(), refused.clone());
        flooders.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let env = forged(tx(&user, "channel-1", 1_000_000 * (f + 1) + i));
                let r = broadcast(&mut c, vec![env]).await;
                assert_eq!(r.len(), 1);
                assert_eq!(r[0].0, Status::Forbidden as i32, "{}", r[0].1);
                refused.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    wait_for("the flood to be under way", || {
        let refused = refused.clone();
        async move { refused.load(Ordering::Relaxed) >= 100 }
    })
    .await;

    let flood_started = refused.load(Ordering::Relaxed);
    let t_flood = Instant::now();
    let during = timed_broadcasts(&mut client, &user1, 21..=40).await;
    let blocks = deliver_envelopes(&mut client, &user1, "channel-1", 41).await;
    let rate =
        (refused.load(Ordering::Relaxed) - flood_started) as f64 / t_flood.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        f.await.unwrap();
    }

    // Only the honest envelopes were ordered.
    assert_eq!(envelope_count(&blocks), 41);
    let honest: Vec<String> = (0..=40).map(|i| format!("transaction {i}")).collect();
    assert_eq!(
        payload_texts(&blocks),
        honest,
        "a forged envelope was ordered"
    );
    eprintln!(
        "bad-signature flood: {rate:.0} refusals/s from 4 clients; an honest broadcast took {:?} (median) / {:?} (max) before, {:?} / {:?} during",
        before[before.len() / 2],
        before[before.len() - 1],
        during[during.len() / 2],
        during[during.len() - 1]
    );
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_streams_that_never_read_cost_a_few_blocks_each() {
    const BLOCKS: u64 = 40;
    const BLOCK_BYTES: usize = 512 * 1024;
    const READERS: usize = 32;
    let dir = tempfile::tempdir().unwrap();
    let (node, user1) = node_with_channel_1(dir.path()).await;
    let pid = node.child.id();
    let mut client = node.grpc().await;
    // Blocks of about BLOCK_BYTES each: channel-1 cuts a block at 512 KiB (PreferredMaxBytes).
    for i in 1..=BLOCKS {
        let r = broadcast(
            &mut client,
            vec![big_tx(&user1, "channel-1", i, BLOCK_BYTES - 8 * 1024)],
        )
        .await;
        assert_eq!(r[0].0, Status::Success as i32, "{}", r[0].1);
    }
    let blocks = deliver_envelopes(&mut client, &user1, "channel-1", BLOCKS as usize + 1).await;
    assert!(
        blocks.len() as u64 > BLOCKS,
        "{} blocks: the envelopes were not cut one per block",
        blocks.len()
    );
    let rss_before = vm_rss_kib(pid);

    // Readers that ask for every block (oldest to newest, then wait for more) and never read.
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let mut c = node.grpc().await;
        let stream = c
            .deliver(futures::stream::iter(vec![seek(
                &user1,
                "channel-1",
                0,
                u64::MAX,
                false,
            )]))
            .await
            .unwrap()
            .into_inner();
        readers.push((c, stream));
    }
    // The node fills what each stream may hold, then waits for the reader: watch its resident
    // memory until it stops growing.
    let mut rss = vm_rss_kib(pid);
    let mut settled = 0;
    let deadline = tokio::time::Instant::now() + WAIT;
    while settled < 10 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = vm_rss_kib(pid);
        settled = if now > rss + 1024 { 0 } else { settled + 1 };
        rss = rss.max(now);
    }
    let grown_mib = rss.saturating_sub(rss_before) as f64 / 1024.0;
    let per_reader_blocks = grown_mib * 1024.0 * 1024.0 / READERS as f64 / BLOCK_BYTES as f64;

    // An honest client is served meanwhile.
    let t = Instant::now();
    let r = broadcast(&mut client, vec![tx(&user1, "channel-1", BLOCKS + 1)]).await;
    assert_eq!(r[0].0, Status::Success as i32, "{}", r[0].1);
    let got = deliver_envelopes(&mut client, &user1, "channel-1", BLOCKS as usize + 2).await;
    assert_eq!(envelope_count(&got), BLOCKS as usize + 2);
    let served_in = t.elapsed();

    eprintln!(
        "{READERS} Deliver streams asking for {BLOCKS} blocks of {} KiB and never reading: the node grew by {grown_mib:.1} MiB (~{per_reader_blocks:.1} blocks per stream); an honest broadcast and full deliver took {served_in:?}",
        BLOCK_BYTES / 1024
    );
    // Each stream holds a few blocks (its queue, the block being read, what HTTP/2 flow control
    // lets through), not the range it asked for.
    assert!(
        per_reader_blocks < 8.0,
        "{READERS} stalled readers cost {grown_mib:.1} MiB: ~{per_reader_blocks:.1} blocks each"
    );
    drop(readers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_on_the_cluster_service_are_refused_and_the_channel_orders_on() {
    const ORG1_USER_TLS: &str =
        "crypto-config/peerOrganizations/org1.example.com/users/User1@org1.example.com/tls";
    const STEP: &str = "/orderer.Cluster/Step";
    let dir = tempfile::tempdir().unwrap();
    let (node, user1) = node_with_channel_1(dir.path()).await;
    // A forwarded envelope, as another consenter would send it.
    let submit = ordo_proto::orderer::StepRequest {
        payload: Some(ordo_proto::orderer::step_request::Payload::SubmitRequest(
            ordo_proto::orderer::SubmitRequest {
                channel: "channel-1".into(),
                last_validation_seq: 0,
                payload: Some(tx(&user1, "channel-1", 99)),
            },
        )),
    }
    .encode_to_vec();

    // Without a client certificate, the cluster service does not know who speaks.
    let (_, status) = raw_stream(&node, STEP, vec![submit.clone()]).await;
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    // A certificate the node trusts (Org1's TLS CA is channel-1's) but no consenter's.
    let (_, status) = raw_stream_as(&node, Some(ORG1_USER_TLS), STEP, vec![submit]).await;
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(
        status
            .message()
            .contains("isn't authorized for channel channel-1"),
        "{}",
        status.message()
    );
    // Bytes that are not a StepRequest.
    let (_, status) = raw_stream_as(
        &node,
        Some(ORG1_USER_TLS),
        STEP,
        vec![vec![0x0f, 0xff, 0x01]],
    )
    .await;
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert!(
        status
            .message()
            .starts_with("grpc: failed to unmarshal the received message: "),
        "{}",
        status.message()
    );

    // The forged forward was not ordered, and the channel orders on.
    let mut client = node.grpc().await;
    let r = broadcast(&mut client, vec![tx(&user1, "channel-1", 1)]).await;
    assert_eq!(r[0].0, Status::Success as i32, "{}", r[0].1);
    let blocks = deliver_envelopes(&mut client, &user1, "channel-1", 2).await;
    assert_eq!(
        payload_texts(&blocks),
        ["transaction 0", "transaction 1"],
        "the stranger's forward was ordered"
    );
}
