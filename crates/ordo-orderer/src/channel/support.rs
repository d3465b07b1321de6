//! What a channel's parts share with the rest of the node: queue bounds, the ledger wrapper,
//! the commit waiters of ack-after-commit Broadcasts, the node's services, how the node finds
//! itself among a config's consenters, and config queries on a ledger.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use ordo_cluster::comm::Comm;
use ordo_cluster::puller::Replication;
use ordo_config::ChannelConfig;
use ordo_ledger::block::last_config_index;
use ordo_ledger::store::{BlockStore, StoreError};
use ordo_msp::SigningIdentity;
use ordo_proto::common::Block;
use ordo_proto::etcdraft::BlockMetadata;
use ordo_raft::chain::RaftMessage;
use tokio::sync::{mpsc, oneshot, watch};

use super::{ChannelError, Switch};
use crate::metrics::Metrics;
use crate::msgprocessor::FilterSettings;

/// Envelopes waiting for the driver. Beyond this, Broadcast waits (back-pressure). Each envelope
/// here was already answered SUCCESS and only waits for a block, so a deeper queue adds latency
/// without adding throughput once it holds what the driver takes between two cuts: 256 → 64 took
/// ~12 ms off p50 and p99 at saturation with the same throughput (`ordo bench local`, see
/// docs/performance.md).
pub const SUBMIT_QUEUE_CAPACITY: usize = 64;
/// Raft messages from other consenters waiting for the driver. Beyond this they are dropped,
/// as a lossy network would (Raft retransmits).
pub const INBOUND_QUEUE_CAPACITY: usize = 1024;

/// A Raft message from another consenter, with the ActiveNodes the leader piggybacks on it.
#[derive(Debug)]
pub struct Inbound {
    pub msg: RaftMessage,
    pub active_nodes: Option<Vec<u64>>,
}

pub use ordo_channel::Submission;

/// The `SubmitRequest` that forwards `s` to the leader of `channel` (Fabric's
/// `forwardToLeader`), with the config sequence it was validated against.
pub fn submit_request(
    channel: &str,
    s: &Submission,
) -> Result<ordo_proto::orderer::SubmitRequest, prost::DecodeError> {
    use prost::Message as _;
    Ok(ordo_proto::orderer::SubmitRequest {
        channel: channel.to_string(),
        last_validation_seq: s.config_seq,
        payload: Some(ordo_proto::common::Envelope::decode(s.envelope.clone())?),
    })
}

/// The ledger of a channel, shared by the driver (the only writer) and Deliver streams.
#[derive(Debug)]
pub struct Ledger {
    store: RwLock<BlockStore>,
    height: watch::Receiver<u64>,
}

impl Ledger {
    pub fn new(store: BlockStore) -> Ledger {
        let height = store.subscribe();
        Ledger {
            store: RwLock::new(store),
            height,
        }
    }

    pub fn height(&self) -> u64 {
        *self.height.borrow()
    }

    /// A receiver that changes whenever a block is appended.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.height.clone()
    }

    pub fn block_bytes(&self, n: u64) -> Result<Bytes, StoreError> {
        self.store
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .block_bytes(n)
    }

    pub fn block(&self, n: u64) -> Result<Block, StoreError> {
        self.store
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .block(n)
    }

    /// The store for writing (only the driver writes; a poisoned lock is safe to reuse, as
    /// every store method leaves it consistent or reports an error).
    fn writer(&self) -> std::sync::RwLockWriteGuard<'_, BlockStore> {
        self.store.write().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn append(&self, block: &Block) -> Result<(), StoreError> {
        self.writer().append(block)
    }

    /// Appends a block made from a committed Raft entry without fsyncing it: the WAL holds the
    /// entry until the ledger is synced (see [`Ledger::sync`]).
    pub(crate) fn append_unsynced(&self, block: &Block) -> Result<(), StoreError> {
        self.writer().append_unsynced(block)
    }

    /// Puts every appended block on stable storage. Called before the Raft WAL drops entries
    /// (a snapshot taken or received) or is wiped, so that no block exists only in the page
    /// cache once its entry is gone.
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        self.writer().sync()
    }
}

/// Broadcasts waiting for their envelope to be in a committed block (ack-after-commit mode), by
/// the envelope's SHA-256. The driver looks each written block's envelopes up here; with no
/// waiter it costs one lock per block.
#[derive(Debug, Default)]
pub struct CommitWaiters(std::sync::Mutex<HashMap<[u8; 32], Vec<oneshot::Sender<u64>>>>);

impl CommitWaiters {
    pub(super) fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Vec<oneshot::Sender<u64>>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the waiters of `block`'s envelopes that it is committed.
    pub(super) fn notify(&self, block: &Block) {
        let mut map = self.lock();
        if map.is_empty() {
            return;
        }
        let number = block.header.as_ref().map_or(0, |h| h.number);
        for env in block.data.iter().flat_map(|d| d.data.iter()) {
            if let Some(txs) = map.remove(&ordo_crypto::sha256(env)) {
                for tx in txs {
                    let _ = tx.send(number);
                }
            }
        }
    }
}

/// A Broadcast's wait for its envelope's block; dropping it forgets the wait.
#[derive(Debug)]
pub struct CommitWait {
    pub(super) rx: oneshot::Receiver<u64>,
    pub(super) hash: [u8; 32],
    pub(super) waiters: Arc<CommitWaiters>,
}

impl CommitWait {
    /// The number of the block holding the envelope, once this node has written it (written
    /// means committed by a quorum: a node writes only committed entries), or `None` after
    /// `timeout`.
    pub async fn committed(mut self, timeout: Duration) -> Option<u64> {
        tokio::time::timeout(timeout, &mut self.rx).await.ok()?.ok()
    }
}

impl Drop for CommitWait {
    fn drop(&mut self) {
        self.rx.close();
        let mut map = self.waiters.lock();
        if let Some(txs) = map.get_mut(&self.hash) {
            txs.retain(|tx| !tx.is_closed());
            if txs.is_empty() {
                map.remove(&self.hash);
            }
        }
    }
}

/// Everything the driver needs from the node.
#[derive(Clone)]
pub struct NodeServices {
    pub signer: Arc<SigningIdentity>,
    pub filters: FilterSettings,
    pub metrics: Metrics,
    /// Called after a config block is applied, and when a channel is joined or removed (the
    /// node recomputes its trusted TLS client roots).
    pub on_config: Arc<dyn Fn() + Send + Sync>,
    /// The transport to the other consenters (absent without TLS: single-node channels only).
    pub comm: Option<Comm>,
    /// How blocks are pulled when catching up or following.
    pub replication: Replication,
    /// Where a channel asks the registrar to change its relation (set by the registrar).
    pub switch: Option<mpsc::UnboundedSender<Switch>>,
    /// How this node finds itself among a config's consenters (set by the registrar).
    pub self_key: SelfKey,
    /// `Consensus.EvictionSuspicion`: see `ordo_channel::consenter::Suspicion`.
    pub eviction_suspicion: Duration,
    /// `Consensus.FabricBlockCutting`: the core's adaptive cutting off.
    pub fabric_block_cutting: bool,
    /// `Consensus.FabricMembershipChanges`: added consenters become voters at once (the core's
    /// learners off).
    pub fabric_membership_changes: bool,
    /// `Consensus.PreferredLeaders`: see `ordo_raft::chain::ChainCore::set_preferred_leaders`.
    pub preferred_leaders: Vec<String>,
}

/// The public key (SEC1 point) of this node's server TLS certificate, by which it finds itself
/// among a config's consenters (Fabric's `detectSelfID`). Shared by the node's channels and
/// replaced when the certificate is reloaded with a new key.
#[derive(Debug, Clone, Default)]
pub struct SelfKey(Arc<ArcSwapOption<Vec<u8>>>);

impl SelfKey {
    pub fn new(key: Option<Vec<u8>>) -> SelfKey {
        SelfKey(Arc::new(ArcSwapOption::new(key.map(Arc::new))))
    }

    pub fn get(&self) -> Option<Arc<Vec<u8>>> {
        self.0.load_full()
    }

    pub fn set(&self, key: Vec<u8>) {
        self.0.store(Some(Arc::new(key)));
    }
}

/// A consenter of the channel: its Raft ID and its `etcdraft.Consenter` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub host: String,
    pub port: u32,
    pub client_tls_cert: Bytes,
    pub server_tls_cert: Bytes,
    /// The key of `client_tls_cert`, parsed once: inbound messages are matched against it.
    pub client_key: Option<ordo_crypto::PublicKey>,
}

impl From<&ordo_channel::Member> for Member {
    fn from(m: &ordo_channel::Member) -> Member {
        Member {
            id: m.id,
            host: m.host.clone(),
            port: m.port,
            client_key: ordo_msp::Cert::from_pem(&m.client_tls_cert)
                .ok()
                .map(|cert| cert.public_key().clone()),
            client_tls_cert: m.client_tls_cert.clone(),
            server_tls_cert: m.server_tls_cert.clone(),
        }
    }
}

/// The consenters of `cfg` with the Raft IDs of `metadata` (the i-th ID is the i-th consenter's,
/// Fabric's pairing). Empty if the two disagree in length (a consenter change not applied yet).
pub fn members(cfg: &ChannelConfig, metadata: &BlockMetadata) -> Vec<Member> {
    ordo_channel::consenter::members(cfg, metadata)
        .iter()
        .map(Member::from)
        .collect()
}

/// The consenters' client TLS certificates of a config, in config order (what the Raft core
/// pairs with the consenter IDs).
pub fn consenter_certs(cfg: &ChannelConfig) -> Vec<Bytes> {
    cfg.raft().map(|r| r.client_certs()).unwrap_or_default()
}

/// Whether this node is a consenter of `cfg` (Fabric's `detectSelfID`, by the public key of the
/// server certificate).
pub fn is_consenter(cfg: &ChannelConfig, key: &SelfKey) -> bool {
    let Some(key) = key.get() else {
        return false;
    };
    cfg.raft()
        .is_some_and(|r| r.position_of(key.as_slice()).is_some())
}

/// The channel config in force at the ledger's tip: the config block LAST_CONFIG points to.
pub fn config_at_tip(ledger: &Ledger) -> Result<(ChannelConfig, u64), ChannelError> {
    let height = ledger.height();
    let tip = ledger.block(height.checked_sub(1).ok_or(ChannelError::EmptyLedger)?)?;
    let last_config = if height == 1 {
        0
    } else {
        last_config_index(&tip)?
    };
    let block = ledger.block(last_config)?;
    Ok((config_of_block(&block)?, last_config))
}

/// The channel config carried by a config block.
pub fn config_of_block(block: &Block) -> Result<ChannelConfig, ChannelError> {
    Ok(ordo_channel::config::config_of_block(block)?)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
