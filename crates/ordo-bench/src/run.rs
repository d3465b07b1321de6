//! One benchmark run: Broadcast streams feeding the orderers, a Deliver stream counting what
//! comes out in blocks.
//!
//! Each envelope's payload starts with `ordo-bench <run id> <index>`, so the Deliver side
//! recognises this run's envelopes among any others and knows which send each one answers,
//! whether the envelopes were signed in advance or on the fly.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ordo_client::{ClientTls, grpc_channel};
use ordo_config::envelope::create_signed_envelope;
use ordo_msp::SigningIdentity;
use ordo_proto::common::{Envelope, HeaderType, Payload, Status};
use ordo_proto::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use ordo_proto::orderer::seek_info::{SeekBehavior, SeekErrorResponse};
use ordo_proto::orderer::seek_position::Type as Position;
use ordo_proto::orderer::{SeekInfo, SeekNewest, SeekPosition, SeekSpecified, deliver_response};
use prost::Message;
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::cpu::{self, CpuUse, Watched};

/// What to run.
#[derive(Clone)]
pub struct BenchConfig {
    /// Orderers to broadcast to; streams are spread over them in turn.
    pub orderers: Vec<SocketAddr>,
    /// The orderer whose Deliver counts the envelopes.
    pub deliver_from: SocketAddr,
    /// TLS (with a client certificate for mutual TLS), or plain gRPC.
    pub tls: Option<ClientTls>,
    pub channel: String,
    pub signer: Arc<SigningIdentity>,
    pub envelopes: u64,
    /// Bytes of payload data per envelope.
    pub payload_size: usize,
    pub streams: usize,
    /// Unanswered envelopes allowed per stream.
    pub window: usize,
    /// Sign every envelope before the clock starts (otherwise each is signed when sent).
    pub presign: bool,
    /// Offered load in envelopes per second (open loop); `None`: as fast as answers come.
    pub rate: Option<f64>,
    /// How long to wait for the last blocks once every answer is in.
    pub drain_timeout: Duration,
    /// Print a progress line to stderr while running.
    pub progress: bool,
    /// Processes (the orderers, by role) whose CPU time the run measures over its window,
    /// besides the load generator's own ("client").
    pub watch: Vec<Watched>,
}

/// Why a run could not be carried out (the orderer's answers are results, not errors).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("connecting: {0}")]
    Connect(String),
    #[error("signing: {0}")]
    Sign(String),
    #[error("deliver: {0}")]
    Deliver(String),
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub envelopes: u64,
    pub payload_size: usize,
    pub streams: usize,
    pub window: usize,
    pub offered_rate: Option<f64>,
    /// Broadcast answers by status name.
    pub statuses: BTreeMap<String, u64>,
    /// Envelopes sent that got no answer (their stream ended first).
    pub unanswered: u64,
    /// This run's envelopes seen in blocks, each counted once.
    pub delivered: u64,
    /// Envelopes seen in more than one block (must be 0).
    pub duplicates: u64,
    /// Blocks that carried this run's envelopes.
    pub blocks: u64,
    /// Every delivered block followed the previous one (number and hash chain).
    pub chain_ok: bool,
    /// First send to last delivery.
    pub seconds: f64,
    /// Delivered envelopes per second over `seconds`.
    pub ordered_per_sec: f64,
    /// Send to delivery.
    pub latency_ms: Latency,
    pub txs_per_block: f64,
    /// CPU time over `seconds` of each watched process and of the load generator ("client"),
    /// per delivered envelope.
    pub cpu: Vec<CpuUse>,
}

impl BenchResult {
    /// Whether every envelope was acknowledged and delivered exactly once.
    pub fn all_ordered_once(&self) -> bool {
        self.statuses.get("SUCCESS").copied() == Some(self.envelopes)
            && self.delivered == self.envelopes
            && self.duplicates == 0
            && self.chain_ok
    }
}

fn payload_data(run: &str, i: u64, size: usize) -> Bytes {
    let mut data = format!("ordo-bench {run} {i} ").into_bytes();
    data.resize(size.max(data.len()), b'.');
    Bytes::from(data)
}

/// The index of this run's envelope, if `raw` is one.
fn index_of(raw: &[u8], prefix: &[u8]) -> Option<u64> {
    let env = Envelope::decode(raw).ok()?;
    let payload = Payload::decode(env.payload).ok()?;
    let rest = payload.data.strip_prefix(prefix)?;
    let end = rest.iter().position(|b| *b == b' ')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

fn sign(cfg: &BenchConfig, run: &str, i: u64) -> Result<Envelope, BenchError> {
    create_signed_envelope(
        HeaderType::EndorserTransaction,
        &cfg.channel,
        &cfg.signer,
        payload_data(run, i, cfg.payload_size),
    )
    .map_err(|e| BenchError::Sign(e.to_string()))
}

async fn client(
    addr: SocketAddr,
    tls: &Option<ClientTls>,
) -> Result<AtomicBroadcastClient<tonic::transport::Channel>, BenchError> {
    let ch = grpc_channel(addr, tls.clone())
        .await
        .map_err(|e| BenchError::Connect(e.to_string()))?;
    Ok(AtomicBroadcastClient::new(ch)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX))
}

/// A signed Deliver request from the newest block to `stop`.
fn seek_from_newest(
    channel: &str,
    signer: &SigningIdentity,
    stop: Position,
) -> Result<Envelope, BenchError> {
    let seek = SeekInfo {
        start: Some(SeekPosition {
            r#type: Some(Position::Newest(SeekNewest {})),
        }),
        stop: Some(SeekPosition { r#type: Some(stop) }),
        behavior: SeekBehavior::BlockUntilReady as i32,
        error_response: SeekErrorResponse::BestEffort as i32,
    };
    create_signed_envelope(
        HeaderType::DeliverSeekInfo,
        channel,
        signer,
        seek.encode_to_vec().into(),
    )
    .map_err(|e| BenchError::Sign(e.to_string()))
}

/// The number of the newest block `addr` serves on `channel`, asked over Deliver once (a new
/// connection, a request for the newest block alone): whether, and how soon, an orderer serves
/// its chain, e.g. after a restart.
pub async fn newest_block(
    addr: SocketAddr,
    tls: &Option<ClientTls>,
    channel: &str,
    signer: &SigningIdentity,
) -> Result<u64, BenchError> {
    let mut deliver = client(addr, tls).await?;
    let seek = seek_from_newest(channel, signer, Position::Newest(SeekNewest {}))?;
    let mut answers = deliver
        .deliver(futures::stream::iter([seek]))
        .await
        .map_err(|e| BenchError::Deliver(e.to_string()))?
        .into_inner();
    match answers
        .message()
        .await
        .map_err(|e| BenchError::Deliver(e.to_string()))?
        .and_then(|r| r.r#type)
    {
        Some(deliver_response::Type::Block(b)) => Ok(b.header.map_or(0, |h| h.number)),
        other => Err(BenchError::Deliver(format!("no block: {other:?}"))),
    }
}

/// Shared between the tasks of a run.
struct Shared {
    started: Instant,
    /// Send time of each envelope, in ns after `started` plus one (0: not sent).
    sent_at: Vec<AtomicU64>,
    next: AtomicU64,
    sent: AtomicU64,
    success: AtomicU64,
    delivered: AtomicU64,
}

/// Runs the benchmark.
pub async fn run(cfg: BenchConfig) -> Result<BenchResult, BenchError> {
    let run_id = hex::encode(&ordo_crypto::random_nonce()[..6]);
    let presigned: Option<Arc<Vec<Envelope>>> = if cfg.presign {
        let all = (0..cfg.envelopes)
            .map(|i| sign(&cfg, &run_id, i))
            .collect::<Result<Vec<_>, _>>()?;
        Some(Arc::new(all))
    } else {
        None
    };

    // Deliver first, from the newest block, so that nothing of this run is missed.
    let mut deliver = client(cfg.deliver_from, &cfg.tls).await?;
    let seek_env = seek_from_newest(
        &cfg.channel,
        &cfg.signer,
        Position::Specified(SeekSpecified { number: u64::MAX }),
    )?;
    let mut blocks = deliver
        .deliver(futures::stream::iter([seek_env]))
        .await
        .map_err(|e| BenchError::Deliver(e.to_string()))?
        .into_inner();
    // The newest block arrives first: the run starts after it.
    let first = blocks
        .message()
        .await
        .map_err(|e| BenchError::Deliver(e.to_string()))?;
    let mut prev = match first.and_then(|r| r.r#type) {
        Some(deliver_response::Type::Block(b)) => b.header,
        other => {
            return Err(BenchError::Deliver(format!(
                "unexpected first answer {other:?}"
            )));
        }
    };

    // The load generator's CPU counts from here, like the orderers': signing in advance is
    // not part of the run.
    let watched: Vec<Watched> = cfg
        .watch
        .iter()
        .cloned()
        .chain([Watched {
            label: "client".into(),
            pid: std::process::id(),
        }])
        .collect();
    let cpu_before = cpu::snapshot(&watched);
    let shared = Arc::new(Shared {
        started: Instant::now(),
        sent_at: (0..cfg.envelopes).map(|_| AtomicU64::new(0)).collect(),
        next: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        success: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
    });
    let (status_tx, mut status_rx) = mpsc::unbounded_channel::<i32>();
    let mut senders = Vec::new();
    for k in 0..cfg.streams.max(1) {
        let addr = cfg.orderers[k % cfg.orderers.len()];
        let c = client(addr, &cfg.tls).await?;
        senders.push(tokio::spawn(stream_task(
            cfg.clone(),
            run_id.clone(),
            presigned.clone(),
            shared.clone(),
            c,
            status_tx.clone(),
        )));
    }
    drop(status_tx);

    let (done_tx, done_rx) = watch::channel(false);
    let progress = cfg.progress.then(|| {
        let s = shared.clone();
        let n = cfg.envelopes;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                eprint!(
                    "\r  sent {:>9}/{n}  acknowledged {:>9}  delivered {:>9}  {:>6.1} s",
                    s.sent.load(Ordering::Relaxed),
                    s.success.load(Ordering::Relaxed),
                    s.delivered.load(Ordering::Relaxed),
                    s.started.elapsed().as_secs_f64()
                );
            }
        })
    });

    // Count statuses while the Deliver side counts blocks.
    let counting = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
            while let Some(s) = status_rx.recv().await {
                let name = Status::try_from(s).map_or_else(
                    |_| s.to_string(),
                    |s| s.as_str_name().trim_start_matches("STATUS_").to_string(),
                );
                *statuses.entry(name).or_default() += 1;
                if s == Status::Success as i32 {
                    shared.success.fetch_add(1, Ordering::Relaxed);
                }
            }
            let _ = done_tx.send(true);
            statuses
        })
    };

    let prefix = format!("ordo-bench {run_id} ").into_bytes();
    let mut seen = vec![false; cfg.envelopes as usize];
    let mut latencies: Vec<u64> = Vec::with_capacity(cfg.envelopes as usize);
    let (mut duplicates, mut n_blocks, mut chain_ok, mut last_delivery) = (0u64, 0u64, true, None);
    let mut in_blocks = 0u64;
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    let mut done = done_rx.clone();
    loop {
        let delivered = shared.delivered.load(Ordering::Relaxed);
        if delivered == cfg.envelopes {
            break;
        }
        if *done.borrow() {
            // Every answer is in: wait for the acknowledged ones, no longer than the drain
            // timeout.
            if delivered >= shared.success.load(Ordering::Relaxed) {
                break;
            }
            drain_deadline.get_or_insert(tokio::time::Instant::now() + cfg.drain_timeout);
        }
        let next = tokio::select! {
            m = blocks.message() => m.map_err(|e| BenchError::Deliver(e.to_string()))?,
            _ = done.changed(), if !*done.borrow() => continue,
            _ = sleep_until(drain_deadline) => break,
        };
        let Some(resp) = next else { break };
        let block = match resp.r#type {
            Some(deliver_response::Type::Block(b)) => b,
            Some(deliver_response::Type::Status(s)) => {
                return Err(BenchError::Deliver(format!(
                    "the orderer ended Deliver with {s}"
                )));
            }
            None => continue,
        };
        let now = shared.started.elapsed();
        if let (Some(p), Some(h)) = (&prev, &block.header) {
            let linked = h.number == p.number + 1
                && h.previous_hash[..] == ordo_ledger::block::header_hash(p)[..];
            chain_ok &= linked;
        }
        prev = block.header.clone();
        let mut ours = 0u64;
        for raw in block.data.iter().flat_map(|d| d.data.iter()) {
            let Some(i) = index_of(raw, &prefix) else {
                continue;
            };
            let Some(slot) = seen.get_mut(i as usize) else {
                continue;
            };
            ours += 1;
            if std::mem::replace(slot, true) {
                duplicates += 1;
                continue;
            }
            let sent = shared.sent_at[i as usize].load(Ordering::Relaxed);
            latencies.push((now.as_nanos() as u64).saturating_sub(sent.saturating_sub(1)));
            shared.delivered.fetch_add(1, Ordering::Relaxed);
        }
        if ours > 0 {
            n_blocks += 1;
            in_blocks += ours;
            last_delivery = Some(now);
        }
    }
    let cpu_after = cpu::snapshot(&watched);
    for s in &senders {
        s.abort();
    }
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let statuses = counting.await.unwrap_or_default();
    let delivered = shared.delivered.load(Ordering::Relaxed);
    let seconds = last_delivery.map_or(0.0, |d| d.as_secs_f64());
    latencies.sort_unstable();
    let pct = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let idx = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[idx] as f64 / 1e6
    };
    let answered: u64 = statuses.values().sum();
    Ok(BenchResult {
        envelopes: cfg.envelopes,
        payload_size: cfg.payload_size,
        streams: cfg.streams,
        window: cfg.window,
        offered_rate: cfg.rate,
        unanswered: shared.sent.load(Ordering::Relaxed).saturating_sub(answered),
        statuses,
        delivered,
        duplicates,
        blocks: n_blocks,
        chain_ok,
        seconds,
        ordered_per_sec: if seconds > 0.0 {
            delivered as f64 / seconds
        } else {
            0.0
        },
        latency_ms: Latency {
            p50: pct(0.50),
            p90: pct(0.90),
            p99: pct(0.99),
            max: pct(1.0),
        },
        txs_per_block: if n_blocks > 0 {
            in_blocks as f64 / n_blocks as f64
        } else {
            0.0
        },
        cpu: cpu::usage(&watched, &cpu_before, &cpu_after, delivered),
    })
}

/// One Broadcast stream: takes envelope indices from the shared counter, keeps at most
/// `window` unanswered, reports each answer's status.
async fn stream_task(
    cfg: BenchConfig,
    run_id: String,
    presigned: Option<Arc<Vec<Envelope>>>,
    shared: Arc<Shared>,
    mut client: AtomicBroadcastClient<tonic::transport::Channel>,
    statuses: mpsc::UnboundedSender<i32>,
) {
    let window = Arc::new(Semaphore::new(cfg.window.max(1)));
    let (tx, rx) = mpsc::channel::<Envelope>(cfg.window.max(1));
    // The call is opened in the task that reads the answers, and envelopes are queued at
    // once: gRPC servers may send the response headers only with the first answer (grpc-go,
    // hence Fabric's orderer, does), so waiting for them before sending would wait forever.
    let answers = {
        let window = window.clone();
        tokio::spawn(async move {
            let opened = client
                .broadcast(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await;
            match opened {
                Ok(r) => {
                    let mut responses = r.into_inner();
                    while let Ok(Some(r)) = responses.message().await {
                        window.add_permits(1);
                        if statuses.send(r.status).is_err() {
                            break;
                        }
                    }
                }
                Err(e) => eprintln!("opening a Broadcast stream: {e}"),
            }
            // No more answers: the sender stops waiting for room in the window.
            window.close();
        })
    };
    let mut pace = cfg.rate.map(|r| {
        let per_stream = (r / cfg.streams.max(1) as f64).max(0.001);
        let mut i = tokio::time::interval(Duration::from_secs_f64(1.0 / per_stream));
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        i
    });
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        if i >= cfg.envelopes {
            break;
        }
        if let Some(p) = pace.as_mut() {
            p.tick().await;
        }
        let Ok(permit) = window.acquire().await else {
            break;
        };
        permit.forget();
        let env = match &presigned {
            Some(all) => all[i as usize].clone(),
            None => match sign(&cfg, &run_id, i) {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("{e}");
                    break;
                }
            },
        };
        shared.sent_at[i as usize].store(
            shared.started.elapsed().as_nanos() as u64 + 1,
            Ordering::Relaxed,
        );
        if tx.send(env).await.is_err() {
            break;
        }
        shared.sent.fetch_add(1, Ordering::Relaxed);
    }
    drop(tx);
    let _ = answers.await;
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
