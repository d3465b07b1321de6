//! The block puller (Fabric's `cluster.BlockPuller`): fetches a channel's blocks from other
//! orderers over their Deliver service, as a node catching up with a Raft snapshot does.
//!
//! Each round probes every endpoint of the channel's config for its height (a `Newest` seek),
//! picks one at random among those that have the next block, and streams blocks from it up to the
//! target. Every block must follow the previous one (number, previous hash), match its data hash
//! and pass the caller's [`Source::verify`] (signatures against BlockValidation, well-formed envelopes);
//! a bad block, a stream that stays silent for `ReplicationPullTimeout`, or an error status ends
//! the round and the next one goes elsewhere, after `ReplicationRetryTimeout` when no endpoint
//! could serve. Like Fabric's catch-up puller it never gives up while it is wanted.
//!
//! Blocks wait for the writer in a buffer of at most `ReplicationBufferSize` bytes (serialized
//! size): the stream stops reading when the writer falls behind, so a slow disk pushes back on
//! the remote orderer instead of filling memory.
//!
//! Requests are signed by the node's identity and carry the SHA-256 of its TLS client
//! certificate (Fabric's TLS binding), so an orderer under mutual TLS serves them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ordo_ledger::block::{last_config_index, verify_data_hash, verify_link};
use ordo_proto::common::{Block, BlockHeader, Envelope};
use ordo_proto::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use ordo_proto::orderer::deliver_response::Type as Response;
use ordo_proto::orderer::seek_info::{SeekBehavior, SeekErrorResponse};
use ordo_proto::orderer::seek_position::Type as Position;
use ordo_proto::orderer::{SeekInfo, SeekNewest, SeekPosition, SeekSpecified};
use prost::Message;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

use crate::comm::Comm;

/// `General.Cluster.Replication*` (Fabric's defaults: 20 MB, 5 s, 5 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replication {
    /// `ReplicationBufferSize`: bytes of pulled blocks waiting to be written.
    pub buffer_bytes: usize,
    /// `ReplicationPullTimeout`: the longest wait for the next block on a stream.
    pub pull_timeout: Duration,
    /// `ReplicationRetryTimeout`: the pause after a round in which no endpoint could serve.
    pub retry_timeout: Duration,
}

impl Default for Replication {
    fn default() -> Self {
        Replication {
            buffer_bytes: 20 * 1024 * 1024,
            pull_timeout: Duration::from_secs(5),
            retry_timeout: Duration::from_secs(5),
        }
    }
}

/// Why the channel's source could not sign a request or refused a block, as it reports it.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// Why the channel's last config block could not be learnt from its orderers.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no orderer of the channel answered")]
    NoAnswer,
    #[error("{endpoint}: {source}")]
    Endpoint {
        endpoint: String,
        #[source]
        source: SourceError,
    },
    #[error("{endpoint} sent another block than {number}")]
    WrongBlock { endpoint: String, number: u64 },
    #[error("{endpoint} answered status {status} for block {number}")]
    Status {
        endpoint: String,
        status: i32,
        number: u64,
    },
    #[error("{endpoint}: config block {number}: {source}")]
    BadConfigBlock {
        endpoint: String,
        number: u64,
        #[source]
        source: SourceError,
    },
}

/// What the channel supplies: where to pull from, how to sign requests, how to judge blocks.
pub trait Source: Send + Sync + 'static {
    /// `host:port` of the orderers to pull from, from the newest config known.
    fn endpoints(&self) -> Vec<String>;
    /// The TLS CAs (PEM) their server certificates chain to.
    fn tls_roots(&self) -> Vec<Bytes>;
    /// A signed `DELIVER_SEEK_INFO` envelope carrying `seek` and the TLS binding hash.
    fn seek_envelope(&self, seek: SeekInfo, tls_cert_hash: Bytes) -> Result<Envelope, SourceError>;
    /// Checks a block that is already known to follow the previous one and to match its data
    /// hash: signatures, envelopes. A config block that passes becomes the config later blocks
    /// are checked against.
    fn verify(&mut self, block: &Block) -> Result<(), SourceError>;
}

/// A verified block, holding its share of the replication buffer until it is dropped.
#[derive(Debug)]
pub struct Pulled {
    pub block: Block,
    _room: OwnedSemaphorePermit,
}

/// Why a round ended without reaching the target.
#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error("{0}")]
    Endpoint(String),
    #[error("no orderer has block {0} yet")]
    NobodyHasIt(u64),
    #[error("the block writer is gone")]
    Closed,
}

/// A running pull; dropping it stops the task.
#[derive(Debug)]
pub struct Puller {
    target: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Puller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Puller {
    /// Starts pulling `channel`'s blocks after `prev` (from block 0 if `None`) up to block
    /// `target`, in order, into the returned receiver. With `target` [`FOLLOW`] it never ends:
    /// it keeps up with the channel (a follower), polling quietly while nothing is new.
    pub fn start<S: Source>(
        channel: &str,
        cfg: Replication,
        comm: Comm,
        source: S,
        prev: Option<BlockHeader>,
        target: u64,
    ) -> (Puller, mpsc::UnboundedReceiver<Pulled>) {
        let (target_tx, target_rx) = watch::channel(target);
        let (out, rx) = mpsc::unbounded_channel();
        let buffer = Arc::new(Semaphore::new(cfg.buffer_bytes.max(1)));
        let worker = Worker {
            channel: channel.to_string(),
            cfg,
            comm,
            source,
            prev,
            target: target_rx,
            out,
            buffer,
        };
        let task = tokio::spawn(worker.run());
        (
            Puller {
                target: target_tx,
                task,
            },
            rx,
        )
    }

    /// Raises the target (a newer snapshot arrived while pulling).
    pub fn set_target(&self, target: u64) {
        self.target.send_if_modified(|t| {
            let raise = target > *t;
            if raise {
                *t = target;
            }
            raise
        });
    }
}

/// The newest config block of `channel` as its most advanced orderer has it (Fabric's
/// `LastConfigBlock`, with which a node confirms it was evicted): that orderer's newest block
/// names the config block, which must match its data hash and pass `source`'s checks. Nothing
/// links it to this node's ledger, so it serves to decide, not to be written.
pub async fn last_config_block<S: Source>(
    channel: &str,
    cfg: Replication,
    comm: Comm,
    source: S,
) -> Result<Block, ProbeError> {
    Ok(last_config_block_and_height(channel, cfg, comm, source)
        .await?
        .0)
}

/// As [`last_config_block`], with the height of the orderer it came from (whether blocks
/// were ordered after the config block).
pub async fn last_config_block_and_height<S: Source>(
    channel: &str,
    cfg: Replication,
    comm: Comm,
    source: S,
) -> Result<(Block, u64), ProbeError> {
    let (out, _) = mpsc::unbounded_channel();
    let (_target, target_rx) = watch::channel(0);
    let mut worker = Worker {
        channel: channel.to_string(),
        cfg,
        comm,
        source,
        prev: None,
        target: target_rx,
        out,
        buffer: Arc::new(Semaphore::new(1)),
    };
    worker.newest_config().await
}

/// The target of a puller that follows the channel for good.
pub const FOLLOW: u64 = u64::MAX;

/// A follower's first wait before asking again for a block nobody has yet; it grows by half up
/// to `ReplicationRetryTimeout` while the channel stays idle (Fabric's follower: 500 ms to 10 s).
const FOLLOW_POLL_MIN: Duration = Duration::from_millis(500);

struct Worker<S> {
    channel: String,
    cfg: Replication,
    comm: Comm,
    source: S,
    prev: Option<BlockHeader>,
    target: watch::Receiver<u64>,
    out: mpsc::UnboundedSender<Pulled>,
    buffer: Arc<Semaphore>,
}

fn specified(number: u64) -> SeekPosition {
    SeekPosition {
        r#type: Some(Position::Specified(SeekSpecified { number })),
    }
}

impl<S: Source> Worker<S> {
    /// The number of the next block wanted.
    fn next(&self) -> u64 {
        self.prev.as_ref().map_or(0, |p| p.number + 1)
    }

    async fn run(mut self) {
        let channel = self.channel.clone();
        let mut poll = FOLLOW_POLL_MIN;
        loop {
            let target = *self.target.borrow_and_update();
            if self.prev.as_ref().is_some_and(|p| p.number >= target) {
                // Done unless the target moves; the writer dropping the puller ends the task.
                if self.target.changed().await.is_err() {
                    return;
                }
                continue;
            }
            let before = self.next();
            let result = self.round(target).await;
            let follow = target == FOLLOW;
            if self.next() > before {
                poll = FOLLOW_POLL_MIN;
            }
            match result {
                Ok(()) => {}
                Err(RoundError::Closed) => return,
                Err(e @ RoundError::NobodyHasIt(_)) if follow => {
                    // A follower that is up to date: nothing is wrong, ask again later.
                    tracing::debug!(%channel, next = self.next(), error = %e, retry_in = ?poll, "block puller: up to date");
                    tokio::time::sleep(poll).await;
                    poll = (poll * 3 / 2).min(self.cfg.retry_timeout.max(FOLLOW_POLL_MIN));
                }
                Err(e @ RoundError::NobodyHasIt(_)) => {
                    tracing::warn!(%channel, next = self.next(), target, error = %e, retry_in = ?self.cfg.retry_timeout, "block puller: waiting to retry");
                    tokio::time::sleep(self.cfg.retry_timeout).await;
                }
                Err(e) if follow && self.next() > before => {
                    // The stream went quiet after serving blocks: the channel is idle.
                    tracing::debug!(%channel, next = self.next(), error = %e, "block puller: stream ended");
                }
                Err(e) => {
                    tracing::warn!(%channel, next = self.next(), target, error = %e, "block puller: switching endpoint");
                }
            }
        }
    }

    /// One round: probe, pick an endpoint, stream from it until the target or a failure.
    async fn round(&mut self, target: u64) -> Result<(), RoundError> {
        let next = self.next();
        let endpoints = self.source.endpoints();
        let roots = self.source.tls_roots();
        let probes = endpoints.iter().map(|e| self.probe(e, &roots));
        let heights = futures::future::join_all(probes).await;
        let able: Vec<&String> = endpoints
            .iter()
            .zip(&heights)
            .filter_map(|(e, h)| match h {
                Ok(h) if *h > next => Some(e),
                Ok(_) => None,
                Err(err) => {
                    tracing::debug!(channel = %self.channel, endpoint = %e, error = %err, "block puller: probe failed");
                    None
                }
            })
            .collect();
        if able.is_empty() {
            return Err(RoundError::NobodyHasIt(next));
        }
        // Fabric picks at random, spreading catching-up nodes over the orderers.
        let pick = usize::from(ordo_crypto::random_nonce()[0]) % able.len();
        let endpoint = able[pick].clone();
        tracing::info!(channel = %self.channel, %endpoint, from = next, to = target, "block puller: pulling blocks");
        self.stream(&endpoint, &roots, next, target).await
    }

    async fn client(
        &self,
        endpoint: &str,
        roots: &[Bytes],
    ) -> Result<AtomicBroadcastClient<tonic::transport::Channel>, RoundError> {
        let conn = self
            .comm
            .deliver_connection(endpoint, roots)
            .map_err(|e| RoundError::Endpoint(format!("{endpoint}: {e}")))?;
        Ok(AtomicBroadcastClient::new(conn).max_decoding_message_size(usize::MAX))
    }

    async fn open(
        &self,
        endpoint: &str,
        roots: &[Bytes],
        seek: SeekInfo,
    ) -> Result<tonic::Streaming<ordo_proto::orderer::DeliverResponse>, RoundError> {
        let env = self
            .source
            .seek_envelope(seek, self.comm.client_cert_hash())
            .map_err(|e| RoundError::Endpoint(e.to_string()))?;
        let mut client = self.client(endpoint, roots).await?;
        let call = client.deliver(futures::stream::iter([env]));
        match tokio::time::timeout(self.cfg.pull_timeout, call).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(e)) => Err(RoundError::Endpoint(format!("{endpoint}: {e}"))),
            Err(_) => Err(RoundError::Endpoint(format!(
                "{endpoint}: no answer in {:?}",
                self.cfg.pull_timeout
            ))),
        }
    }

    /// The endpoint's height (its newest block number + 1).
    async fn probe(&self, endpoint: &str, roots: &[Bytes]) -> Result<u64, RoundError> {
        let newest = SeekPosition {
            r#type: Some(Position::Newest(SeekNewest {})),
        };
        let seek = SeekInfo {
            start: Some(newest),
            stop: Some(newest),
            behavior: SeekBehavior::BlockUntilReady as i32,
            error_response: SeekErrorResponse::BestEffort as i32,
        };
        let mut stream = self.open(endpoint, roots, seek).await?;
        match self.recv(endpoint, &mut stream).await? {
            Response::Block(b) => Ok(b.header.map_or(0, |h| h.number) + 1),
            Response::Status(s) => Err(RoundError::Endpoint(format!(
                "{endpoint} answered status {s} to a probe"
            ))),
        }
    }

    async fn recv(
        &self,
        endpoint: &str,
        stream: &mut tonic::Streaming<ordo_proto::orderer::DeliverResponse>,
    ) -> Result<Response, RoundError> {
        match tokio::time::timeout(self.cfg.pull_timeout, stream.message()).await {
            Ok(Ok(Some(r))) => r
                .r#type
                .ok_or_else(|| RoundError::Endpoint(format!("{endpoint}: empty response"))),
            Ok(Ok(None)) => Err(RoundError::Endpoint(format!("{endpoint} ended the stream"))),
            Ok(Err(e)) => Err(RoundError::Endpoint(format!("{endpoint}: {e}"))),
            Err(_) => Err(RoundError::Endpoint(format!(
                "{endpoint}: no block for {:?}",
                self.cfg.pull_timeout
            ))),
        }
    }

    async fn stream(
        &mut self,
        endpoint: &str,
        roots: &[Bytes],
        next: u64,
        target: u64,
    ) -> Result<(), RoundError> {
        let seek = SeekInfo {
            start: Some(specified(next)),
            stop: Some(specified(target)),
            behavior: SeekBehavior::BlockUntilReady as i32,
            error_response: SeekErrorResponse::BestEffort as i32,
        };
        let mut stream = self.open(endpoint, roots, seek).await?;
        while self.prev.as_ref().is_none_or(|p| p.number < target) {
            let block = match self.recv(endpoint, &mut stream).await? {
                Response::Block(b) => b,
                Response::Status(s) => {
                    return Err(RoundError::Endpoint(format!(
                        "{endpoint} answered status {s} before block {}",
                        self.next()
                    )));
                }
            };
            self.check(&block)
                .map_err(|e| RoundError::Endpoint(format!("{endpoint} sent a bad block: {e}")))?;
            let size = block.encoded_len().clamp(1, self.cfg.buffer_bytes.max(1));
            let room = self
                .buffer
                .clone()
                .acquire_many_owned(u32::try_from(size).unwrap_or(u32::MAX))
                .await
                .map_err(|_| RoundError::Closed)?;
            self.prev = Some(block.header.clone().unwrap_or_default());
            self.out
                .send(Pulled { block, _room: room })
                .map_err(|_| RoundError::Closed)?;
        }
        Ok(())
    }

    /// See [`last_config_block`].
    async fn newest_config(&mut self) -> Result<(Block, u64), ProbeError> {
        let endpoints = self.source.endpoints();
        let roots = self.source.tls_roots();
        let probes = endpoints.iter().map(|e| self.probe(e, &roots));
        let heights = futures::future::join_all(probes).await;
        let (endpoint, height) = endpoints
            .iter()
            .zip(heights)
            .filter_map(|(e, h)| h.ok().map(|h| (e, h)))
            .max_by_key(|(_, h)| *h)
            .ok_or(ProbeError::NoAnswer)?;
        let newest = self.fetch(endpoint, &roots, height - 1).await?;
        let index = last_config_index(&newest).map_err(|e| ProbeError::Endpoint {
            endpoint: endpoint.clone(),
            source: e.into(),
        })?;
        let block = if index + 1 == height {
            newest
        } else {
            self.fetch(endpoint, &roots, index).await?
        };
        let bad = |source: SourceError| ProbeError::BadConfigBlock {
            endpoint: endpoint.clone(),
            number: index,
            source,
        };
        verify_data_hash(&block).map_err(|e| bad(e.into()))?;
        self.source.verify(&block).map_err(bad)?;
        Ok((block, height))
    }

    /// Block `number` from `endpoint`.
    async fn fetch(
        &self,
        endpoint: &str,
        roots: &[Bytes],
        number: u64,
    ) -> Result<Block, ProbeError> {
        let failed = |source: SourceError| ProbeError::Endpoint {
            endpoint: endpoint.to_string(),
            source,
        };
        let seek = SeekInfo {
            start: Some(specified(number)),
            stop: Some(specified(number)),
            behavior: SeekBehavior::BlockUntilReady as i32,
            error_response: SeekErrorResponse::BestEffort as i32,
        };
        let mut stream = self
            .open(endpoint, roots, seek)
            .await
            .map_err(|e| failed(e.into()))?;
        match self
            .recv(endpoint, &mut stream)
            .await
            .map_err(|e| failed(e.into()))?
        {
            Response::Block(b) if b.header.as_ref().is_some_and(|h| h.number == number) => Ok(b),
            Response::Block(_) => Err(ProbeError::WrongBlock {
                endpoint: endpoint.to_string(),
                number,
            }),
            Response::Status(status) => Err(ProbeError::Status {
                endpoint: endpoint.to_string(),
                status,
                number,
            }),
        }
    }

    /// Fabric's `VerifyBlockHash` (sequence, previous hash, data hash), then the source's
    /// checks.
    fn check(&mut self, block: &Block) -> Result<(), SourceError> {
        match &self.prev {
            Some(prev) => verify_link(prev, block)?,
            None => {
                let number = block.header.as_ref().map_or(0, |h| h.number);
                if number != 0 {
                    return Err(format!("expected block 0, got block {number}").into());
                }
            }
        }
        verify_data_hash(block)?;
        self.source.verify(block)
    }
}
