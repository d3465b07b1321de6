//! The outbound side of `orderer.Cluster/Step` (Fabric's `cluster.Comm`, `RPC` and
//! `connections.go`).
//!
//! A channel's chain tells [`Comm`] who the other consenters are ([`Comm::configure`]) and then
//! sends by Raft ID. Each (channel, destination, kind) gets its own stream, fed by a bounded queue
//! of `SendBufferSize` requests (forwarded envelopes: at most [`SUBMIT_STREAM_BUFFER`]) and opened
//! lazily by the first request; consensus and submit traffic never share a stream, so a slow
//! forwarded envelope cannot hold Raft heartbeats back.
//! A full consensus queue drops the request (Raft retransmits); a submit waits up to `RPCTimeout`
//! for room. A stream that fails or cannot take a request within `RPCTimeout` is closed; the next
//! request opens a new one.
//!
//! Connections are keyed by (endpoint, server certificate) and shared by every channel naming
//! that consenter. The TLS handshake checks the server's chain against the trusted orderer TLS
//! roots (every channel's orderer organizations plus `Cluster.RootCAs`, swapped by
//! [`Comm::set_roots`]) and then **pins** the leaf: its public key must be the one in the
//! consenter's `server_tls_cert`, so a certificate from the same CA for another node is refused.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use ordo_proto::orderer::cluster_client::ClusterClient;
use ordo_proto::orderer::{
    ConsensusRequest, StepRequest, StepResponse, SubmitRequest, step_request,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, ResolvesClientCert, WebPkiServerVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

/// Forwarded envelopes queued per leader, at most (a smaller SendBufferSize still applies).
/// A follower answers SUCCESS once an envelope is queued here, so at saturation a queue as deep
/// as SendBufferSize (100) only holds answered envelopes longer before they reach a block:
/// 100 → 16 took ~5 ms off p50 and ~20 ms off p99 with the same throughput (`ordo bench
/// local`, docs/performance.md). Raft traffic keeps the full SendBufferSize.
pub const SUBMIT_STREAM_BUFFER: usize = 16;

/// Requests a gRPC stream can be handed ahead of what it has encoded. gRPC encodes every request
/// it finds waiting into one HTTP/2 write, so a stream fed one request at a time writes (a
/// syscall through TLS and loopback TCP) once per forwarded envelope; with room for a burst,
/// several go per write. 1 → 16 raised `ordo bench local` by ~7 % (the followers' forwarding
/// went from ~1.5 to several envelopes per write; docs/performance.md). A stream that fails
/// loses what it held, as the queue in front of it would: Raft retransmits, and a forwarded
/// envelope was answered when it was queued, as in Fabric.
const STREAM_BATCH: usize = 16;

/// Another consenter of a channel, as the channel config names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteNode {
    /// Its Raft ID in the channel.
    pub id: u64,
    /// `host:port` of its cluster listener.
    pub endpoint: String,
    /// Its `server_tls_cert` (PEM): the key its TLS server must present.
    pub server_cert_pem: Bytes,
}

/// `General.Cluster` settings of the outbound side.
#[derive(Debug, Clone)]
pub struct CommConfig {
    /// The TLS client certificate (chain) and key this node presents, PEM.
    pub client_cert_pem: Vec<u8>,
    pub client_key_pem: Vec<u8>,
    /// Requests queued per stream (`SendBufferSize`).
    pub send_buffer_size: usize,
    /// `DialTimeout`: TCP connect plus TLS handshake.
    pub dial_timeout: Duration,
    /// `RPCTimeout`: opening a stream, and each request's wait for room.
    pub rpc_timeout: Duration,
    /// `TLSHandshakeTimeShift`: other orderers' certificates are checked as of this long ago,
    /// so that a cluster whose certificates all expired can still elect a leader and order the
    /// config updates that renew them.
    pub handshake_time_shift: Duration,
}

/// Why a request was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("node {id} is not a consenter of channel {channel} known to this node")]
    UnknownDestination { channel: String, id: u64 },
    #[error("send queue to node {0} overflown; request dropped")]
    Overflow(u64),
    /// Fabric's wording for a forward that could not be handed over in time.
    #[error("timed out ({0:?}) waiting on forwarding to {1}")]
    Timeout(Duration, u64),
    #[error("the cluster transport is shut down")]
    Closed,
    #[error("bad cluster TLS settings: {0}")]
    Tls(String),
}

/// Which stream a request travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Consensus,
    Submit,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Consensus => "consensus",
            Kind::Submit => "transaction",
        }
    }
}

/// What the transport reports, for metrics (Fabric's `cluster_comm_*`).
pub trait CommEvents: Send + Sync {
    /// A request was queued for `endpoint`; `len` is the queue length after it, of `cap`.
    fn queued(&self, channel: &str, endpoint: &str, kind: &'static str, len: usize, cap: usize);
    /// A consensus request met a full queue and was dropped.
    fn dropped(&self, channel: &str, endpoint: &str);
    /// A request went out on its stream after waiting `d` for the stream to take it.
    fn sent(&self, channel: &str, endpoint: &str, d: Duration);
    /// The number of open egress streams changed by `delta`.
    fn streams(&self, channel: &str, delta: i64);
}

struct NoEvents;

impl CommEvents for NoEvents {
    fn queued(&self, _: &str, _: &str, _: &'static str, _: usize, _: usize) {}
    fn dropped(&self, _: &str, _: &str) {}
    fn sent(&self, _: &str, _: &str, _: Duration) {}
    fn streams(&self, _: &str, _: i64) {}
}

type StreamKey = (String, u64, Kind);
/// A connection: endpoint, pinned server certificate, and the kind of traffic. Consensus and
/// submit traffic never share a connection: a receiver that makes forwarded envelopes wait (its
/// chain is not taking any) stops reading its submit stream, and HTTP/2 counts data buffered
/// unread against the whole connection's flow-control window — on a shared connection the
/// Raft messages behind it stalled too, the leader lost its quorum, nobody took submissions any
/// more, and the cluster stayed leaderless for good (seen with `ordo bench local`).
type ConnKey = (String, Bytes, Kind);

struct Stream {
    node: RemoteNode,
    tx: mpsc::Sender<StepRequest>,
}

struct Inner {
    cfg: CommConfig,
    /// This node's client certificate, replaceable at run time.
    client: Arc<SwappableClientCert>,
    roots: Arc<ArcSwapOption<WebPkiServerVerifier>>,
    members: Mutex<HashMap<String, HashMap<u64, RemoteNode>>>,
    conns: Mutex<HashMap<ConnKey, tonic::transport::Channel>>,
    streams: Mutex<HashMap<StreamKey, Stream>>,
    events: Arc<dyn CommEvents>,
    /// Per channel, how many times a consenter refused this node as unauthorized.
    refusals: Mutex<HashMap<String, watch::Sender<u64>>>,
}

/// The outbound cluster transport of a node; cheap to clone.
#[derive(Clone)]
pub struct Comm(Arc<Inner>);

impl std::fmt::Debug for Comm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Comm").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Comm {
    /// A transport presenting `cfg`'s client certificate. It trusts no server until
    /// [`Comm::set_roots`] is called.
    pub fn new(cfg: CommConfig, events: Option<Arc<dyn CommEvents>>) -> Result<Comm, SendError> {
        let client = crate::tls::certified_key(&cfg.client_cert_pem, &cfg.client_key_pem)
            .map_err(|e| SendError::Tls(format!("client {e}")))?;
        Ok(Comm(Arc::new(Inner {
            cfg,
            client: Arc::new(SwappableClientCert(ArcSwap::from_pointee(client))),
            roots: Arc::new(ArcSwapOption::empty()),
            members: Mutex::new(HashMap::new()),
            conns: Mutex::new(HashMap::new()),
            streams: Mutex::new(HashMap::new()),
            events: events.unwrap_or_else(|| Arc::new(NoEvents)),
            refusals: Mutex::new(HashMap::new()),
        })))
    }

    /// Replaces the CAs (DER) a consenter's server certificate must chain to. New connections
    /// and reconnections use them.
    pub fn set_roots(&self, ders: Vec<Vec<u8>>) -> Result<(), SendError> {
        let mut store = rustls::RootCertStore::empty();
        for d in ders {
            // Go's pool takes intermediates as trust anchors too; so do we.
            store
                .add(CertificateDer::from(d))
                .map_err(|e| SendError::Tls(e.to_string()))?;
        }
        if store.is_empty() {
            self.0.roots.store(None);
            return Ok(());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let v = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider)
            .build()
            .map_err(|e| SendError::Tls(e.to_string()))?;
        self.0.roots.store(Some(v));
        Ok(())
    }

    /// The other consenters of `channel` (this node excluded). Streams to nodes that left or
    /// changed address or certificate are closed; connections no channel names are dropped.
    pub fn configure(&self, channel: &str, nodes: Vec<RemoteNode>) {
        let nodes: HashMap<u64, RemoteNode> = nodes.into_iter().map(|n| (n.id, n)).collect();
        {
            let mut streams = lock(&self.0.streams);
            let before = streams.len();
            streams.retain(|(ch, id, _), s| ch != channel || nodes.get(id) == Some(&s.node));
            let closed = before - streams.len();
            if closed > 0 {
                self.0.events.streams(channel, -(closed as i64));
            }
        }
        let mut members = lock(&self.0.members);
        if nodes.is_empty() {
            members.remove(channel);
        } else {
            members.insert(channel.to_string(), nodes);
        }
        let used: std::collections::HashSet<(String, Bytes)> = members
            .values()
            .flat_map(|m| m.values())
            .map(|n| (n.endpoint.clone(), n.server_cert_pem.clone()))
            .collect();
        lock(&self.0.conns)
            .retain(|(endpoint, cert, _), _| used.contains(&(endpoint.clone(), cert.clone())));
    }

    /// Forgets a channel (removed, or this node left it).
    pub fn remove_channel(&self, channel: &str) {
        self.configure(channel, Vec::new());
        lock(&self.0.refusals).remove(channel);
    }

    /// Counts the times another consenter refused this node's `channel` stream as unauthorized
    /// (`PERMISSION_DENIED`: it does not know this node's certificate, or knows it under
    /// another Raft ID). That is what an evicted node sees, so the chain checks the channel's
    /// last config when the count moves (Fabric waits for `EvictionSuspicion` instead).
    pub fn refusals(&self, channel: &str) -> watch::Receiver<u64> {
        self.refusal_sender(channel).subscribe()
    }

    fn refusal_sender(&self, channel: &str) -> watch::Sender<u64> {
        lock(&self.0.refusals)
            .entry(channel.to_string())
            .or_insert_with(|| watch::channel(0).0)
            .clone()
    }

    /// Queues a Raft message for node `to`. Never waits: a full queue drops it.
    pub fn send_consensus(
        &self,
        channel: &str,
        to: u64,
        req: ConsensusRequest,
    ) -> Result<(), SendError> {
        let (tx, endpoint) = self.stream(channel, to, Kind::Consensus)?;
        let msg = StepRequest {
            payload: Some(step_request::Payload::ConsensusRequest(req)),
        };
        match tx.try_send(msg) {
            Ok(()) => {
                self.report_queued(channel, &endpoint, Kind::Consensus, &tx);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.0.events.dropped(channel, &endpoint);
                Err(SendError::Overflow(to))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SendError::Closed),
        }
    }

    /// Queues a forwarded envelope for node `to` (the leader), waiting up to `RPCTimeout` for
    /// room. Success means handed to the stream, not ordered: the leader does not answer.
    pub async fn send_submit(
        &self,
        channel: &str,
        to: u64,
        req: SubmitRequest,
    ) -> Result<(), SendError> {
        let (tx, endpoint) = self.stream(channel, to, Kind::Submit)?;
        let msg = StepRequest {
            payload: Some(step_request::Payload::SubmitRequest(req)),
        };
        let timeout = self.0.cfg.rpc_timeout;
        match tokio::time::timeout(timeout, tx.send(msg)).await {
            Ok(Ok(())) => {
                self.report_queued(channel, &endpoint, Kind::Submit, &tx);
                Ok(())
            }
            Ok(Err(_)) => Err(SendError::Closed),
            Err(_) => Err(SendError::Timeout(timeout, to)),
        }
    }

    fn report_queued(
        &self,
        channel: &str,
        endpoint: &str,
        kind: Kind,
        tx: &mpsc::Sender<StepRequest>,
    ) {
        let cap = tx.max_capacity();
        let len = cap - tx.capacity();
        self.0
            .events
            .queued(channel, endpoint, kind.as_str(), len, cap);
    }

    /// The queue of a (channel, node, kind) stream, started on first use.
    fn stream(
        &self,
        channel: &str,
        to: u64,
        kind: Kind,
    ) -> Result<(mpsc::Sender<StepRequest>, String), SendError> {
        let key = (channel.to_string(), to, kind);
        let mut streams = lock(&self.0.streams);
        if let Some(s) = streams.get(&key)
            && !s.tx.is_closed()
        {
            return Ok((s.tx.clone(), s.node.endpoint.clone()));
        }
        let node = lock(&self.0.members)
            .get(channel)
            .and_then(|m| m.get(&to))
            .cloned()
            .ok_or_else(|| SendError::UnknownDestination {
                channel: channel.to_string(),
                id: to,
            })?;
        let conn = self.connection(&node, kind)?;
        let cap = match kind {
            Kind::Submit => self.0.cfg.send_buffer_size.min(SUBMIT_STREAM_BUFFER),
            _ => self.0.cfg.send_buffer_size,
        };
        let (tx, rx) = mpsc::channel(cap.max(1));
        let worker = StreamWorker {
            channel: channel.to_string(),
            endpoint: node.endpoint.clone(),
            conn,
            rpc_timeout: self.0.cfg.rpc_timeout,
            events: self.0.events.clone(),
            refused: self.refusal_sender(channel),
        };
        tokio::spawn(worker.run(rx));
        self.0.events.streams(channel, 1);
        let endpoint = node.endpoint.clone();
        streams.insert(
            key,
            Stream {
                node,
                tx: tx.clone(),
            },
        );
        Ok((tx, endpoint))
    }

    /// The client TLS settings for dialling `node`: our certificate, its key pinned.
    fn tls_for(
        &self,
        node: &RemoteNode,
    ) -> Result<(Arc<ClientConfig>, ServerName<'static>), SendError> {
        let expected = ordo_msp::Cert::from_pem(&node.server_cert_pem)
            .map_err(|e| SendError::Tls(format!("server_tls_cert of node {}: {e}", node.id)))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(PinnedVerifier {
            roots: self.0.roots.clone(),
            expected_key: expected.public_key().clone(),
            node: node.id,
            algorithms: provider.signature_verification_algorithms,
            shift: self.0.cfg.handshake_time_shift,
        });
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| SendError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(self.0.client.clone());
        config.alpn_protocols = vec![b"h2".to_vec()];
        let config = Arc::new(config);
        Ok((config, server_name_of(&node.endpoint)?))
    }

    /// Dials `node` now and reports whether the TLS handshake (chain and pinned key) succeeds;
    /// for diagnostics and tests, the streams do not need it.
    pub async fn check(&self, node: &RemoteNode) -> Result<(), SendError> {
        let (config, server_name) = self.tls_for(node)?;
        let dial = self.0.cfg.dial_timeout;
        let attempt = async {
            let tcp = TcpStream::connect(&node.endpoint)
                .await
                .map_err(|e| SendError::Tls(format!("dialing {}: {e}", node.endpoint)))?;
            tokio_rustls::TlsConnector::from(config)
                .connect(server_name, tcp)
                .await
                .map_err(|e| SendError::Tls(format!("handshake with {}: {e}", node.endpoint)))?;
            Ok(())
        };
        tokio::time::timeout(dial, attempt)
            .await
            .map_err(|_| SendError::Tls(format!("dialing {}: timed out", node.endpoint)))?
    }

    /// The connection to a consenter for one kind of traffic (see [`ConnKey`]), shared by the
    /// channels, created lazily (dialled on first use).
    fn connection(
        &self,
        node: &RemoteNode,
        kind: Kind,
    ) -> Result<tonic::transport::Channel, SendError> {
        let key = (node.endpoint.clone(), node.server_cert_pem.clone(), kind);
        let mut conns = lock(&self.0.conns);
        if let Some(c) = conns.get(&key) {
            return Ok(c.clone());
        }
        let (config, server_name) = self.tls_for(node)?;
        let channel = lazy_channel(&node.endpoint, config, server_name, self.0.cfg.dial_timeout)?;
        conns.insert(key, channel.clone());
        Ok(channel)
    }

    /// A connection to an orderer's Deliver service (its general listener), for the block
    /// puller: the server's chain is checked against `roots_pem` and its name against the
    /// endpoint's host, as Go's TLS client does, and this node's client certificate is
    /// presented. Dialled on first use.
    pub fn deliver_connection(
        &self,
        endpoint: &str,
        roots_pem: &[Bytes],
    ) -> Result<tonic::transport::Channel, SendError> {
        let tls = |e: &dyn std::fmt::Display| SendError::Tls(e.to_string());
        let mut store = rustls::RootCertStore::empty();
        for pem in roots_pem {
            for cert in CertificateDer::pem_slice_iter(pem) {
                store.add(cert.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = ShiftedVerifier {
            inner: WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                .build()
                .map_err(|e| tls(&e))?,
            shift: self.0.cfg.handshake_time_shift,
            algorithms: provider.signature_verification_algorithms,
        };
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls(&e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_cert_resolver(self.0.client.clone());
        config.alpn_protocols = vec![b"h2".to_vec()];
        let server_name = server_name_of(endpoint)?;
        lazy_channel(
            endpoint,
            Arc::new(config),
            server_name,
            self.0.cfg.dial_timeout,
        )
    }

    /// SHA-256 of this node's TLS client certificate: the TLS binding of its Deliver requests.
    pub fn client_cert_hash(&self) -> Bytes {
        let ck = self.0.client.0.load();
        Bytes::copy_from_slice(&ordo_crypto::sha256(
            ck.end_entity_cert().map_or(&[][..], |c| c),
        ))
    }

    /// Presents this client certificate (PEM chain) and key from now on: every stream and
    /// connection is closed so that the next message opens them again with it (the peers
    /// identify a consenter by the certificate of the connection). Refused, with the old one
    /// kept, unless they parse and match.
    pub fn set_client_certificate(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), SendError> {
        let ck = crate::tls::certified_key(cert_pem, key_pem)
            .map_err(|e| SendError::Tls(format!("client {e}")))?;
        self.0.client.0.store(Arc::new(ck));
        let closed = {
            let mut streams = lock(&self.0.streams);
            let mut per_channel: HashMap<String, i64> = HashMap::new();
            for ((ch, _, _), _) in streams.drain() {
                *per_channel.entry(ch).or_default() += 1;
            }
            per_channel
        };
        for (ch, n) in closed {
            self.0.events.streams(&ch, -n);
        }
        lock(&self.0.conns).clear();
        Ok(())
    }
}

fn server_name_of(endpoint: &str) -> Result<ServerName<'static>, SendError> {
    let host = host_of(endpoint);
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(ServerName::IpAddress(ip.into())),
        Err(_) => ServerName::try_from(host.to_string())
            .map_err(|e| SendError::Tls(format!("{endpoint}: {e}"))),
    }
}

/// A gRPC channel to `endpoint` over TLS, dialled lazily (TCP connect plus handshake within
/// `dial`).
fn lazy_channel(
    endpoint: &str,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    dial: Duration,
) -> Result<tonic::transport::Channel, SendError> {
    let addr = endpoint.to_string();
    let endpoint = tonic::transport::Endpoint::from_shared(format!("https://{endpoint}"))
        .map_err(|e| SendError::Tls(format!("{endpoint}: {e}")))?
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(Duration::from_secs(20));
    let connector = tower::service_fn(move |_uri: tonic::codegen::http::Uri| {
        let (config, server_name, addr) = (config.clone(), server_name.clone(), addr.clone());
        async move {
            let attempt = async {
                let tcp = TcpStream::connect(&addr).await?;
                let _ = tcp.set_nodelay(true);
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(server_name, tcp)
                    .await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            };
            match tokio::time::timeout(dial, attempt).await {
                Ok(r) => r,
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("dialing {addr}: timed out after {dial:?}"),
                )),
            }
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}

/// How often a cluster connection is pinged: Fabric's client interval. Fabric's server
/// (`General.Keepalive.ServerMinInterval`, 60 s) counts pings that come sooner as abuse and
/// closes the connection ("too many pings") after a few; the Step stream carries no data from
/// the server, so hyper pings at every interval.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);

fn host_of(endpoint: &str) -> &str {
    let host = endpoint.rsplit_once(':').map_or(endpoint, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Feeds one stream from its queue, reopening it after a failure.
struct StreamWorker {
    channel: String,
    endpoint: String,
    conn: tonic::transport::Channel,
    rpc_timeout: Duration,
    events: Arc<dyn CommEvents>,
    refused: watch::Sender<u64>,
}

impl StreamWorker {
    /// Notes a stream that failed with `status`; see [`Comm::refusals`].
    fn failed(&self, status: &tonic::Status) {
        if status.code() == tonic::Code::PermissionDenied {
            tracing::warn!(channel = %self.channel, to = %self.endpoint, error = %status.message(), "refused by a consenter as unauthorized");
            self.refused.send_modify(|n| *n += 1);
        }
    }

    async fn run(self, mut queue: mpsc::Receiver<StepRequest>) {
        // Like Fabric's `logSendFailure`: the first failure of a streak is a warning, the
        // repeats (one per Raft message while the node is down) are debug.
        let mut failing = false;
        // Opened by the first request; a failed stream drops the request that found it broken.
        while let Some(first) = queue.recv().await {
            let (tx, rx) = mpsc::channel::<StepRequest>(STREAM_BATCH);
            let _ = tx.try_send(first);
            let mut client = ClusterClient::new(self.conn.clone())
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX);
            // The call runs beside the sending rather than before it: Fabric's server (grpc-go)
            // sends response headers only with a first response, and its Step handler never
            // responds, so waiting for the headers would hold every message for the RPC
            // timeout. A peer that cannot be reached fails the call within the dial timeout.
            let call = client.step(ReceiverStream::new(rx));
            tokio::pin!(call);
            let mut responses: Option<tonic::Streaming<StepResponse>> = None;
            let opened_at = Instant::now();
            loop {
                tokio::select! {
                    next = queue.recv() => {
                        let Some(msg) = next else { return };
                        let started = Instant::now();
                        match tokio::time::timeout(self.rpc_timeout, tx.send(msg)).await {
                            Ok(Ok(())) => {
                                self.events.sent(&self.channel, &self.endpoint, started.elapsed());
                                // A peer that withholds headers shows its stream works by not
                                // failing it for an RPC timeout.
                                if failing && opened_at.elapsed() > self.rpc_timeout {
                                    tracing::info!(channel = %self.channel, to = %self.endpoint, "cluster stream open again");
                                    failing = false;
                                }
                            }
                            _ => {
                                tracing::warn!(channel = %self.channel, to = %self.endpoint, "cluster stream stuck; closing it");
                                break;
                            }
                        }
                    }
                    opened = &mut call, if responses.is_none() => match opened {
                        Ok(r) => {
                            if failing {
                                tracing::info!(channel = %self.channel, to = %self.endpoint, "cluster stream open again");
                                failing = false;
                            }
                            responses = Some(r.into_inner());
                        }
                        Err(e) => {
                            self.failed(&e);
                            let error = e.to_string();
                            if failing {
                                tracing::debug!(channel = %self.channel, to = %self.endpoint, %error, "cannot open a cluster stream");
                            } else {
                                tracing::warn!(channel = %self.channel, to = %self.endpoint, %error, "cannot open a cluster stream (further failures are logged at debug level until it opens)");
                                failing = true;
                            }
                            break;
                        }
                    },
                    // Fabric's server never answers on this stream: anything here means it ended.
                    r = next_response(&mut responses), if responses.is_some() => {
                        if let Err(e) = r {
                            tracing::debug!(channel = %self.channel, to = %self.endpoint, error = %e, "cluster stream ended");
                            self.failed(&e);
                        }
                        break;
                    }
                }
            }
        }
    }
}

/// The next message of an opened Step stream (`responses` is `Some` when this is polled).
async fn next_response(
    responses: &mut Option<tonic::Streaming<StepResponse>>,
) -> Result<Option<StepResponse>, tonic::Status> {
    match responses {
        Some(r) => r.message().await,
        None => std::future::pending().await,
    }
}

/// This node's client certificate, replaceable at run time (see
/// [`Comm::set_client_certificate`]).
#[derive(Debug)]
struct SwappableClientCert(ArcSwap<CertifiedKey>);

impl ResolvesClientCert for SwappableClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Chain verification against the trusted roots, then the consenter's key pinned.
#[derive(Debug)]
struct PinnedVerifier {
    roots: Arc<ArcSwapOption<WebPkiServerVerifier>>,
    expected_key: ordo_crypto::PublicKey,
    node: u64,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
    shift: Duration,
}

/// Runs `verify` as of now and, if that fails and a `TLSHandshakeTimeShift` is set, as of
/// `shift` ago: expired certificates pass with the shift, and so do certificates renewed while
/// it is set (not yet valid in the shifted past).
fn verify_now_or_shifted<T>(
    now: UnixTime,
    shift: Duration,
    verify: impl Fn(UnixTime) -> Result<T, rustls::Error>,
) -> Result<T, rustls::Error> {
    let at_now = verify(now);
    if at_now.is_ok() || shift.is_zero() {
        return at_now;
    }
    verify(UnixTime::since_unix_epoch(Duration::from_secs(
        now.as_secs().saturating_sub(shift.as_secs()),
    )))
}

/// Normal chain and name verification, as of `TLSHandshakeTimeShift` ago.
#[derive(Debug)]
struct ShiftedVerifier {
    inner: Arc<WebPkiServerVerifier>,
    shift: Duration,
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ShiftedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        verify_now_or_shifted(now, self.shift, |t| {
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, t)
        })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let leaf = ordo_msp::Cert::from_der(end_entity)
            .map_err(|e| rustls::Error::General(format!("server certificate: {e}")))?;
        if *leaf.public_key() != self.expected_key {
            return Err(rustls::Error::General(format!(
                "the server certificate is not node {}'s server_tls_cert",
                self.node
            )));
        }
        let Some(roots) = self.roots.load_full() else {
            return Err(rustls::Error::General(
                "no orderer TLS root CA is trusted yet".into(),
            ));
        };
        verify_now_or_shifted(now, self.shift, |t| {
            roots.verify_server_cert(end_entity, intermediates, server_name, ocsp, t)
        })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
