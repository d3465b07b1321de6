//! Shared by the process-level test binaries: orderer.yaml files for the fixture's orderers,
//! a running `ordo node start` (killed when dropped), and Fabric-client helpers (Broadcast,
//! Deliver, chain checks) over the fixtures' identities.
#![allow(dead_code)] // each test binary uses its own subset

pub mod config;
pub mod lab;
pub mod lab_client;
pub mod relay;
pub mod wan;

#[allow(unused_imports)] // as dead_code above: some test binaries write no orderer.yaml
pub use config::*;

pub use std::io::{BufRead, BufReader};
pub use std::net::SocketAddr;
pub use std::path::{Path, PathBuf};
pub use std::process::{Child, Command, Stdio};
pub use std::sync::mpsc;
pub use std::time::Duration;

pub use bytes::Bytes;
pub use ordo_client::{ClientTls, HttpClient, grpc_channel};
pub use ordo_config::envelope::{create_signed_envelope, create_signed_envelope_with_tls_binding};
pub use ordo_msp::SigningIdentity;
pub use ordo_proto::common::{Block, Envelope, HeaderType, Status};
pub use ordo_proto::orderer::atomic_broadcast_client::AtomicBroadcastClient;
pub use ordo_proto::orderer::seek_info::{SeekBehavior, SeekErrorResponse};
pub use ordo_proto::orderer::{SeekInfo, deliver_response};
pub use ordo_testkit::fixture;
pub use prost::Message;

pub const ORDERER1: &str =
    "crypto-config/ordererOrganizations/example.com/orderers/orderer1.example.com";
pub const ADMIN_TLS: &str =
    "crypto-config/ordererOrganizations/example.com/users/Admin@example.com/tls";
pub const TLSCA: &str =
    "crypto-config/ordererOrganizations/example.com/tlsca/tlsca.example.com-cert.pem";
pub const USER1: &str =
    "crypto-config/peerOrganizations/org1.example.com/users/User1@org1.example.com/msp";
pub const ADMIN_MSP: &str =
    "crypto-config/ordererOrganizations/example.com/users/Admin@example.com/msp";
pub const ORG2_USER1: &str =
    "crypto-config/peerOrganizations/org2.example.com/users/User1@org2.example.com/msp";
/// Held by the tests that join channel-3: its genesis block names fixed cluster ports
/// (37151-37153), so a lone orderer1 on it would dial the three-node test's nodes.
pub static CHANNEL_3: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long any single wait in these tests may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(60);

pub struct Addrs {
    pub general: SocketAddr,
    /// The separate cluster listener, when the node has one.
    pub cluster: Option<SocketAddr>,
    pub admin: SocketAddr,
    pub operations: SocketAddr,
}

/// A running `ordo node start`, killed (-9) when dropped.
pub struct OrdoProcess {
    pub child: Child,
    pub addrs: Addrs,
}

impl OrdoProcess {
    /// Starts a node on ports the kernel chooses (`ordo node start --kernel-ports`), whatever
    /// its config says (see [`write_config`]).
    pub fn start(config: &Path) -> OrdoProcess {
        Self::try_start(config, true).expect("the node exited before reporting its listeners")
    }

    /// Starts orderer`n` of the fixture clusters (see [`write_cluster_node_config`]). Its fixed
    /// ports 3705n and 3715n lie in the kernel's ephemeral port range, so a client connection
    /// elsewhere may hold one for a moment: wait until both can be bound, and start again if
    /// the node still lost the race.
    pub async fn start_cluster_node(config: &Path, n: u32) -> OrdoProcess {
        Self::start_on_ports(config, [37050 + n as u16, 37150 + n as u16]).await
    }

    /// Starts a node whose config names the fixed `ports`, waiting until they can be bound.
    pub async fn start_on_ports(config: &Path, ports: [u16; 2]) -> OrdoProcess {
        Self::start_on_ports_with_env(config, ports, &[]).await
    }

    /// As [`Self::start_on_ports`], with `env` set for the node.
    pub async fn start_on_ports_with_env(
        config: &Path,
        ports: [u16; 2],
        env: &[(&str, &str)],
    ) -> OrdoProcess {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let free = ports
                .iter()
                .all(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok());
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_ordo"));
            cmd.args(["node", "start", "--config"])
                .arg(config)
                .envs(env.iter().copied());
            if free && let Some(p) = Self::try_spawn(cmd) {
                return p;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "ports {ports:?} stayed taken (they lie in the kernel's ephemeral range, where a long-lived outgoing connection may hold one; as root, `echo 37050-37160 > /proc/sys/net/ipv4/ip_local_reserved_ports` keeps them free, as .ci/run does)"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts a node, on ports the kernel chooses if `kernel_ports`, else on its config's;
    /// `None` if it exited without reporting its listeners (its error is on stderr).
    pub fn try_start(config: &Path, kernel_ports: bool) -> Option<OrdoProcess> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ordo"));
        cmd.args(["node", "start", "--config"])
            .arg(config)
            .args(kernel_ports.then_some("--kernel-ports"));
        Self::try_spawn(cmd)
    }

    /// Runs `cmd`, which must end up running `ordo node start` in its process (an `exec`), and
    /// waits for its start line; `None` if it exited without one.
    pub fn try_spawn(mut cmd: Command) -> Option<OrdoProcess> {
        let mut child = cmd
            .env("FABRIC_LOGGING_SPEC", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ordo");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(rest) = line.strip_prefix("ordo node started: ") {
                    let _ = tx.send(rest.to_string());
                }
            }
        });
        let line = match rx.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("the node did not report its listeners"),
        };
        // `key=address` pairs, `cluster` only with a separate cluster listener.
        let addr = |key: &str| -> Option<SocketAddr> {
            line.split(' ')
                .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
                .map(|a| a.parse().unwrap())
        };
        let listener = |key: &str| addr(key).unwrap_or_else(|| panic!("no {key}= in {line}"));
        Some(OrdoProcess {
            addrs: Addrs {
                general: listener("general"),
                cluster: addr("cluster"),
                admin: listener("admin"),
                operations: listener("operations"),
            },
            child,
        })
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn admin(&self) -> HttpClient {
        HttpClient {
            addr: self.addrs.admin,
            tls: Some(client_tls(Some(ADMIN_TLS), b"http/1.1")),
        }
    }

    pub async fn grpc(&self) -> AtomicBroadcastClient<tonic::transport::Channel> {
        let tls = client_tls(None, b"h2");
        AtomicBroadcastClient::new(grpc_channel(self.addrs.general, Some(tls)).await.unwrap())
    }
}

impl Drop for OrdoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client's TLS towards the fixture orderers (trusting their TLS CA), presenting the
/// `client.crt`/`client.key` in the fixture folder `cert_dir` if given, offering `alpn`.
pub fn client_tls(cert_dir: Option<&str>, alpn: &[u8]) -> ClientTls {
    let root = std::fs::read(fixture(&format!("{ORDERER1}/tls/ca.crt"))).unwrap();
    let pair = cert_dir.map(|d| {
        (
            std::fs::read(fixture(&format!("{d}/client.crt"))).unwrap(),
            std::fs::read(fixture(&format!("{d}/client.key"))).unwrap(),
        )
    });
    let pair = pair.as_ref().map(|(c, k)| (&c[..], &k[..]));
    ClientTls::new(&[root], pair, "127.0.0.1", &[alpn]).unwrap()
}

pub fn signer(msp_dir: &str, msp_id: &str) -> SigningIdentity {
    ordo_msp::local::load_signing_identity(&fixture(msp_dir), msp_id)
        .unwrap()
        .signer
}

pub fn tx(signer: &SigningIdentity, channel: &str, i: u64) -> Envelope {
    create_signed_envelope(
        HeaderType::EndorserTransaction,
        channel,
        signer,
        Bytes::from(format!("transaction {i}").into_bytes()),
    )
    .unwrap()
}

/// Free bytes on the file system holding `path`, from `stat -f` (statvfs of the path itself:
/// `df` would look the path up in this process's mount table, which does not have the node's
/// tmpfs).
pub fn free_bytes(path: &Path) -> u64 {
    let out = Command::new("stat")
        .args(["-f", "--format=%a %S"])
        .arg(path)
        .output()
        .expect("running stat");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    match (fields.next().flatten(), fields.next().flatten()) {
        (Some(blocks), Some(size)) => blocks * size,
        _ => panic!("stat -f {}: {text}", path.display()),
    }
}

/// Joins `node` to channel-1 (a single consenter) and waits until it orders: one envelope from
/// Org1's User1 answered SUCCESS. Returns a client and that user.
pub async fn led_channel_1(
    node: &OrdoProcess,
) -> (
    AtomicBroadcastClient<tonic::transport::Channel>,
    SigningIdentity,
) {
    let genesis = std::fs::read(fixture("channel-genesis/channel-1.block")).unwrap();
    assert_eq!(node.admin().join(&genesis).await.unwrap().status, 201);
    let user1 = signer(USER1, "Org1MSP");
    let mut client = node.grpc().await;
    let r = broadcast_when_led(&mut client, tx(&user1, "channel-1", 0)).await;
    assert_eq!(r.0, Status::Success as i32, "{}", r.1);
    (client, user1)
}

/// Broadcasts envelopes on one stream; returns the (status, info) answers.
pub async fn broadcast(
    client: &mut AtomicBroadcastClient<tonic::transport::Channel>,
    envs: Vec<Envelope>,
) -> Vec<(i32, String)> {
    let resp = tokio::time::timeout(WAIT, client.broadcast(futures::stream::iter(envs)))
        .await
        .expect("broadcast timed out")
        .unwrap();
    let mut stream = resp.into_inner();
    let mut out = Vec::new();
    while let Some(r) = tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("broadcast response timed out")
        .unwrap()
    {
        out.push((r.status, r.info));
    }
    out
}

/// Broadcasts one envelope until the channel has a leader (a fresh channel elects within a few
/// ticks); any other answer is returned.
pub async fn broadcast_when_led(
    client: &mut AtomicBroadcastClient<tonic::transport::Channel>,
    env: Envelope,
) -> (i32, String) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = broadcast(client, vec![env.clone()]).await.remove(0);
        if r.0 != Status::ServiceUnavailable as i32 || tokio::time::Instant::now() > deadline {
            return r;
        }
        // Waiting for an election; the answer itself is the event we poll for.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn seek(
    signer: &SigningIdentity,
    channel: &str,
    start: u64,
    stop: u64,
    fail_if_not_ready: bool,
) -> Envelope {
    seek_bound(
        signer,
        channel,
        start,
        stop,
        fail_if_not_ready,
        Bytes::new(),
    )
}

/// A seek request carrying `tls_cert_hash` (Fabric's TLS binding).
pub fn seek_bound(
    signer: &SigningIdentity,
    channel: &str,
    start: u64,
    stop: u64,
    fail_if_not_ready: bool,
    tls_cert_hash: Bytes,
) -> Envelope {
    let info = SeekInfo {
        start: Some(ordo_orderer::deliver::specified(start)),
        stop: Some(ordo_orderer::deliver::specified(stop)),
        behavior: if fail_if_not_ready {
            SeekBehavior::FailIfNotReady as i32
        } else {
            SeekBehavior::BlockUntilReady as i32
        },
        error_response: SeekErrorResponse::Strict as i32,
    };
    create_signed_envelope_with_tls_binding(
        HeaderType::DeliverSeekInfo,
        channel,
        signer,
        info.encode_to_vec().into(),
        tls_cert_hash,
    )
    .unwrap()
}

/// Opens a Deliver stream carrying one seek request.
pub async fn open_deliver(
    client: &mut AtomicBroadcastClient<tonic::transport::Channel>,
    env: Envelope,
) -> tonic::Streaming<ordo_proto::orderer::DeliverResponse> {
    tokio::time::timeout(WAIT, client.deliver(futures::stream::iter(vec![env])))
        .await
        .expect("deliver timed out")
        .unwrap()
        .into_inner()
}

/// The next response on a Deliver stream (a block or a status).
pub async fn next_response(
    stream: &mut tonic::Streaming<ordo_proto::orderer::DeliverResponse>,
) -> Option<deliver_response::Type> {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("deliver response timed out")
        .unwrap()
        .expect("stream ended early")
        .r#type
}

/// Delivers blocks start..=stop; returns them and the final status.
pub async fn deliver(
    client: &mut AtomicBroadcastClient<tonic::transport::Channel>,
    env: Envelope,
) -> (Vec<Block>, i32) {
    let mut stream = open_deliver(client, env).await;
    let mut blocks = Vec::new();
    loop {
        match next_response(&mut stream).await {
            Some(deliver_response::Type::Block(b)) => blocks.push(b),
            Some(deliver_response::Type::Status(s)) => return (blocks, s),
            None => panic!("empty deliver response"),
        }
    }
}

/// Delivers from block 0 until the blocks after the genesis block hold `n` envelopes.
pub async fn deliver_envelopes(
    client: &mut AtomicBroadcastClient<tonic::transport::Channel>,
    signer: &SigningIdentity,
    channel: &str,
    n: usize,
) -> Vec<Block> {
    let env = seek(signer, channel, 0, u64::MAX, false);
    let mut stream = open_deliver(client, env).await;
    let mut blocks = Vec::new();
    while blocks.len() < 2 || envelope_count(&blocks) < n {
        match next_response(&mut stream).await {
            Some(deliver_response::Type::Block(b)) => blocks.push(b),
            other => panic!("unexpected {other:?}"),
        }
    }
    blocks
}

/// Delivers `channel`'s blocks from block 0 until every envelope `transaction {i}` of
/// `wanted` is in them (envelopes re-sent after a refusal may be ordered twice, so a count is
/// not enough); fails naming the missing ones if they are not all there within [`WAIT`].
pub async fn deliver_until_all(
    client: &mut AtomicBroadcastClient<tonic::transport::Channel>,
    signer: &SigningIdentity,
    channel: &str,
    wanted: &[u64],
) -> Vec<Block> {
    let env = seek(signer, channel, 0, u64::MAX, false);
    let mut stream = open_deliver(client, env).await;
    let mut missing: std::collections::BTreeSet<String> =
        wanted.iter().map(|i| format!("transaction {i}")).collect();
    let mut blocks = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while blocks.len() < 2 || !missing.is_empty() {
        let next = tokio::time::timeout_at(deadline, stream.message()).await;
        let Ok(Ok(Some(msg))) = next else {
            panic!(
                "{} acknowledged envelope(s) not delivered within {WAIT:?}: {:?}",
                missing.len(),
                missing.iter().take(10).collect::<Vec<_>>()
            );
        };
        match msg.r#type {
            Some(deliver_response::Type::Block(b)) => {
                for raw in b.data.iter().flat_map(|d| d.data.iter()) {
                    let text = Envelope::decode(raw.clone())
                        .ok()
                        .and_then(|env| ordo_proto::common::Payload::decode(env.payload).ok())
                        .map(|p| String::from_utf8_lossy(&p.data).into_owned());
                    if let Some(t) = text {
                        missing.remove(&t);
                    }
                }
                blocks.push(b);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    blocks
}

/// A CONFIG_UPDATE setting channel-1's BatchSize.MaxMessageCount, signed by the orderer admin
/// (the BatchSize mod_policy is /Channel/Orderer/Admins).
pub fn batch_size_update(genesis: &Block, max_message_count: u32) -> Envelope {
    let cfg = ordo_orderer::channel::config_of_block(genesis).unwrap();
    let original = cfg.config().clone();
    let mut updated = original.clone();
    let orderer = updated
        .channel_group
        .as_mut()
        .unwrap()
        .groups
        .get_mut("Orderer")
        .unwrap();
    let value = orderer.values.get_mut("BatchSize").unwrap();
    let mut bs = ordo_proto::orderer::BatchSize::decode(value.value.clone()).unwrap();
    bs.max_message_count = max_message_count;
    value.value = bs.encode_to_vec().into();
    admin_update("channel-1", &original, &updated)
}

/// The CONFIG_UPDATE turning `original` into `updated`, signed by the orderer organization's
/// admin (both as config signature and as envelope creator).
pub fn admin_update(
    channel: &str,
    original: &ordo_proto::common::Config,
    updated: &ordo_proto::common::Config,
) -> Envelope {
    let admin = signer(ADMIN_MSP, "OrdererMSP");
    ordo_config::consenters::signed_config_update(channel, original, updated, &[&admin]).unwrap()
}

/// Hash chain, data hashes and every block's signatures against BlockValidation.
pub fn verify_chain(blocks: &[Block]) {
    let genesis_cfg = ordo_orderer::channel::config_of_block(&blocks[0]).unwrap();
    let policy = genesis_cfg
        .policies()
        .get_policy("/Channel/Orderer/BlockValidation")
        .unwrap();
    for (i, b) in blocks.iter().enumerate() {
        assert_eq!(b.header.as_ref().unwrap().number, i as u64);
        ordo_ledger::block::verify_data_hash(b).unwrap();
        if i > 0 {
            ordo_ledger::block::verify_link(blocks[i - 1].header.as_ref().unwrap(), b).unwrap();
            ordo_ledger::block::verify_signatures(b, &policy, genesis_cfg.msp_manager()).unwrap();
        }
    }
}

/// The payload data of every envelope after the genesis block, as text.
pub fn payload_texts(blocks: &[Block]) -> Vec<String> {
    blocks[1..]
        .iter()
        .flat_map(|b| b.data.as_ref().unwrap().data.iter())
        .map(|raw| {
            let env = Envelope::decode(raw.as_ref()).unwrap();
            let payload = ordo_proto::common::Payload::decode(env.payload.as_ref()).unwrap();
            // Config envelopes carry protobuf, not text.
            String::from_utf8_lossy(&payload.data).into_owned()
        })
        .collect()
}

pub fn envelope_count(blocks: &[Block]) -> usize {
    blocks[1..]
        .iter()
        .map(|b| b.data.as_ref().unwrap().data.len())
        .sum()
}

/// Whether `node` reports itself as channel-3's Raft leader in its metrics.
pub async fn leads(node: &OrdoProcess, channel: &str) -> bool {
    let ops = HttpClient {
        addr: node.addrs.operations,
        tls: None,
    };
    let Ok(r) = ops.get("/metrics").await else {
        return false;
    };
    let page = String::from_utf8_lossy(&r.body).to_string();
    page.lines()
        .any(|l| l == format!("consensus_etcdraft_is_leader{{channel=\"{channel}\"}} 1"))
}

/// Header and data of each block: what every node must agree on (the metadata holds each
/// node's own signature).
pub fn agreed(
    blocks: &[Block],
) -> Vec<(
    Option<ordo_proto::common::BlockHeader>,
    Option<ordo_proto::common::BlockData>,
)> {
    blocks
        .iter()
        .map(|b| (b.header.clone(), b.data.clone()))
        .collect()
}

/// Delivers blocks 0..height from `node`, waiting until it has them all. A node that has no
/// leader yet answers SERVICE_UNAVAILABLE (strict seek), so that answer is retried.
pub async fn blocks_of(
    node: &OrdoProcess,
    signer: &SigningIdentity,
    channel: &str,
    height: u64,
) -> Vec<Block> {
    blocks_of_range(node, signer, channel, 0, height - 1).await
}

/// An envelope whose payload is `transaction {i}` padded to `size` bytes.
pub fn big_tx(signer: &SigningIdentity, channel: &str, i: u64, size: usize) -> Envelope {
    let mut text = format!("transaction {i} ");
    text.extend(std::iter::repeat_n('x', size.saturating_sub(text.len())));
    create_signed_envelope(
        HeaderType::EndorserTransaction,
        channel,
        signer,
        Bytes::from(text.into_bytes()),
    )
    .unwrap()
}

/// The value of the metric series `series` (name with labels, as `/metrics` prints it).
pub async fn metric(node: &OrdoProcess, series: &str) -> Option<f64> {
    let ops = HttpClient {
        addr: node.addrs.operations,
        tls: None,
    };
    let page = ops.get("/metrics").await.ok()?;
    let page = String::from_utf8_lossy(&page.body).to_string();
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The latest snapshot's block number on `node` (0 before any).
pub async fn snapshot_block(node: &OrdoProcess, channel: &str) -> u64 {
    metric(
        node,
        &format!("consensus_etcdraft_snapshot_block_number{{channel=\"{channel}\"}}"),
    )
    .await
    .unwrap_or(0.0) as u64
}

/// Waits until `cond` holds, polling every 50 ms, failing the test after `WAIT`.
pub async fn wait_for<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The index of the node that reports itself leader of `channel`, once one does.
pub async fn leader_of(nodes: &[Option<OrdoProcess>], channel: &str) -> usize {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        for (i, n) in nodes.iter().enumerate() {
            if let Some(n) = n
                && leads(n, channel).await
            {
                return i;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no leader reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client broadcasting through `node` in batches of ten until `stop`, retrying whatever was
/// not acknowledged; returns the numbers of the acknowledged envelopes.
pub fn start_load(
    node: &OrdoProcess,
    channel: &'static str,
    first: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    acked: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
) -> tokio::task::JoinHandle<()> {
    let general = node.addrs.general;
    tokio::spawn(async move {
        let tls = client_tls(None, b"h2");
        let mut client =
            AtomicBroadcastClient::new(grpc_channel(general, Some(tls)).await.unwrap());
        let user1 = signer(USER1, "Org1MSP");
        let mut pending: Vec<u64> = Vec::new();
        let mut next = first;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            while pending.len() < 10 {
                pending.push(next);
                next += 1;
            }
            let envs = pending.iter().map(|i| tx(&user1, channel, *i)).collect();
            let answers = broadcast(&mut client, envs).await;
            let ok = answers
                .iter()
                .take_while(|(status, _)| *status == Status::Success as i32)
                .count();
            acked.lock().unwrap().extend(pending.drain(..ok));
            if ok < 10 {
                // Refused (no leader yet, or not committed in time): retried on a fresh stream
                // once the cluster can take it again.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    })
}

/// The consenter entry the fixtures' configtx.yaml gives orderer`n` (cluster port 3715n, its TLS
/// server certificate as both client and server certificate).
pub fn fixture_consenter(n: u32) -> ordo_proto::etcdraft::Consenter {
    let cert = std::fs::read(fixture(&format!(
        "crypto-config/ordererOrganizations/example.com/orderers/orderer{n}.example.com/tls/server.crt"
    )))
    .unwrap();
    ordo_proto::etcdraft::Consenter {
        host: "127.0.0.1".into(),
        port: 37150 + n,
        client_tls_cert: cert.clone().into(),
        server_tls_cert: cert.into(),
    }
}

/// The config in a fixture channel's genesis block (`channel-genesis/{channel}.block`), to
/// build a variant of the channel from.
pub fn fixture_channel_config(channel: &str) -> ordo_proto::common::Config {
    let genesis = Block::decode(
        std::fs::read(fixture(&format!("channel-genesis/{channel}.block")))
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    ordo_orderer::channel::config_of_block(&genesis)
        .unwrap()
        .config()
        .clone()
}

/// Edits the etcdraft consenters of `config` in place.
pub fn edit_consenters(
    config: &mut ordo_proto::common::Config,
    edit: impl FnOnce(&mut Vec<ordo_proto::etcdraft::Consenter>),
) {
    ordo_config::consenters::edit_consenters(config, edit).unwrap();
}

/// A CONFIG_UPDATE of `channel` that edits the etcdraft consenters of the config in
/// `config_block`, signed by the orderer organization's admin (what `ordo channel
/// add-consenter` and its siblings build).
pub fn consenters_update(
    config_block: &Block,
    channel: &str,
    edit: impl FnOnce(&mut Vec<ordo_proto::etcdraft::Consenter>),
) -> Envelope {
    let cfg = ordo_orderer::channel::config_of_block(config_block).unwrap();
    let original = cfg.config().clone();
    let mut updated = original.clone();
    edit_consenters(&mut updated, edit);
    admin_update(channel, &original, &updated)
}

/// The height of `channel` on `node` (its participation API), or 0 if it does not have it.
pub async fn height_of(node: &OrdoProcess, channel: &str) -> u64 {
    channel_info(node, channel)
        .await
        .and_then(|v| v["height"].as_u64())
        .unwrap_or(0)
}

/// `GET /participation/v1/channels/{channel}` on `node`, if it answers 200.
pub async fn channel_info(node: &OrdoProcess, channel: &str) -> Option<serde_json::Value> {
    let r = node
        .admin()
        .get(&format!("/participation/v1/channels/{channel}"))
        .await
        .ok()?;
    if r.status != 200 {
        return None;
    }
    r.json().ok()
}

/// The newest config block of `channel` on `node` (the one its last block's LAST_CONFIG names).
pub async fn last_config_block(node: &OrdoProcess, channel: &str) -> Block {
    let admin = signer(ADMIN_MSP, "OrdererMSP");
    let height = height_of(node, channel).await;
    let tip = blocks_of_range(node, &admin, channel, height - 1, height - 1)
        .await
        .remove(0);
    let last = ordo_ledger::block::last_config_index(&tip).unwrap();
    blocks_of_range(node, &admin, channel, last, last)
        .await
        .remove(0)
}

/// Delivers blocks `from..=to` of `channel` from `node`, retrying while it has no leader.
pub async fn blocks_of_range(
    node: &OrdoProcess,
    signer: &SigningIdentity,
    channel: &str,
    from: u64,
    to: u64,
) -> Vec<Block> {
    let mut client = node.grpc().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (blocks, status) = deliver(&mut client, seek(signer, channel, from, to, false)).await;
        if status == Status::Success as i32 {
            return blocks;
        }
        assert_eq!(status, Status::ServiceUnavailable as i32);
        assert!(tokio::time::Instant::now() < deadline, "no leader in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `consensusRelation` and `status` `node` reports for `channel`.
pub async fn relation(node: &OrdoProcess, channel: &str) -> (String, String) {
    let info = channel_info(node, channel).await.unwrap_or_default();
    (
        info["consensusRelation"].as_str().unwrap_or("").to_string(),
        info["status"].as_str().unwrap_or("").to_string(),
    )
}

/// Waits until the leader counts `n` consenters, all active (a config update that changes the
/// membership is refused while a quorum of the new set is not active).
pub async fn wait_active(nodes: &[Option<OrdoProcess>], channel: &str, n: usize) {
    let size = format!("consensus_etcdraft_cluster_size{{channel=\"{channel}\"}}");
    let active = format!("consensus_etcdraft_active_nodes{{channel=\"{channel}\"}}");
    wait_for(&format!("{n} active consenters"), || async {
        let leader = leader_of(nodes, channel).await;
        let l = nodes[leader].as_ref().unwrap();
        metric(l, &size).await == Some(n as f64) && metric(l, &active).await == Some(n as f64)
    })
    .await;
}

/// Consenter IDs and next ID in the consenter metadata of `block`.
pub fn consenter_ids(block: &Block) -> (Vec<u64>, u64) {
    let raw = ordo_ledger::block::consenter_metadata(block).unwrap();
    let md = ordo_proto::etcdraft::BlockMetadata::decode(raw).unwrap();
    (md.consenter_ids, md.next_consenter_id)
}

/// The expiry a node reports for its certificate `cert` (general_tls, cluster_server, ...), in
/// seconds from now.
pub async fn tls_expiry(n: &OrdoProcess, cert: &str) -> Option<f64> {
    metric(
        n,
        &format!("ordo_cert_expiry_seconds{{cert=\"{cert}\",channel=\"\",endpoint=\"\"}}"),
    )
    .await
}

/// Replaces a node's TLS key and certificate files as an operator would (each file written
/// aside and renamed into place).
pub fn install_tls(dir: &Path, cert: &str, key: &str) {
    for (name, content) in [("server.key", key), ("server.crt", cert)] {
        let tmp = dir.join(format!("{name}.new"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}
