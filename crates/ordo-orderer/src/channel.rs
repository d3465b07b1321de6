//! One channel this node is a consenter of: its current config, its ledger, and the task that
//! runs its engine (Fabric's `ChainSupport` + the I/O half of etcdraft's `Chain`).
//!
//! Every decision is the engine's ([`ordo_channel::ConsenterEngine`]: the durability order of
//! WAL writes, ledger syncs and snapshots; block writing and config application; catch-up; the
//! eviction check; whom the transport accepts). This module is its runtime: a tokio task feeding
//! it ticks, Raft messages, submissions and the batch timer, and [`NodeIo`], the engine's world
//! on a node — the raft-engine WAL (fsync), the block store, the node's signing identity (each
//! block gets LAST_CONFIG and a SIGNATURES entry, Fabric's `BlockWriter`), the cluster transport,
//! block pullers (a snapshot ahead of the ledger makes the engine pull the missing blocks from
//! the channel's orderers with `ordo_cluster::puller`) and eviction checks on their own tasks,
//! commit waiters and metrics.
//!
//! Broadcast hands envelopes to the driver through a bounded queue that the driver reads only
//! while the core can take them, so MaxInflightBlocks pushes back on clients as in Fabric.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use ordo_channel::{
    ConfigView, ConsenterEngine, EngineError, EngineParams, Event, Io, IoError, Suspicion,
};
use ordo_cluster::comm::{Comm, RemoteNode};
use ordo_cluster::puller::{Pulled, Puller, Replication, last_config_block_and_height};
use ordo_config::ChannelConfig;
use ordo_ledger::block::{BlockError, last_config_index, sign_block};
use ordo_ledger::store::{BlockStore, StoreError};
use ordo_msp::SigningIdentity;
use ordo_proto::common::{Block, BlockHeader, Envelope};
use ordo_proto::etcdraft::BlockMetadata;
use ordo_raft::chain::{ChainStatus, CoreError, Persist, RaftMessage, encode_message};
use ordo_raft::wal::{RaftWal, WalError};
use prost::Message;
use raft::eraftpb::Snapshot;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::catchup::ChannelSource;
use crate::configupdate::revalidate_config;
use crate::metrics::Metrics;
use crate::msgprocessor::{FilterSettings, process_normal};

/// Envelopes waiting for the driver. Beyond this, Broadcast waits (back-pressure). Each envelope
/// here was already answered SUCCESS and only waits for a block, so a deeper queue adds latency
/// without adding throughput once it holds what the driver takes between two cuts: 256 → 64 took
/// ~12 ms off p50 and p99 at saturation with the same throughput (`ordo bench local`, see
/// docs/performance.md).
pub const SUBMIT_QUEUE_CAPACITY: usize = 64;
/// Raft messages from other consenters waiting for the driver. Beyond this they are dropped,
/// as a lossy network would (Raft retransmits).
pub const INBOUND_QUEUE_CAPACITY: usize = 1024;

/// Why a channel could not be started or stopped working.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("ledger: {0}")]
    Ledger(#[from] StoreError),
    #[error("block: {0}")]
    Block(#[from] BlockError),
    #[error("raft WAL: {0}")]
    Wal(#[from] WalError),
    #[error("raft: {0}")]
    Core(#[from] CoreError),
    #[error("channel config: {0}")]
    Config(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// raft-rs asserts on states it holds impossible (a commit index past the end of the log,
    /// say); a message from another node must not kill the node's task silently.
    #[error("raft core panicked: {0}")]
    Panicked(String),
}

/// A Raft message from another consenter, with the ActiveNodes the leader piggybacks on it.
#[derive(Debug)]
pub struct Inbound {
    pub msg: RaftMessage,
    pub active_nodes: Option<Vec<u64>>,
}

pub use ordo_channel::Submission;

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
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Vec<oneshot::Sender<u64>>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells the waiters of `block`'s envelopes that it is committed.
    fn notify(&self, block: &Block) {
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
    rx: oneshot::Receiver<u64>,
    hash: [u8; 32],
    waiters: Arc<CommitWaiters>,
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

/// How this node takes part in a channel (Fabric's `consensusRelation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// A member of the channel's Raft group.
    Consenter,
    /// Not a consenter: it pulls the channel's blocks from the orderers of its config.
    /// `onboarding` until its ledger has reached the block it joined with.
    Follower { onboarding: bool },
}

/// What other parts of the node see of a running chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    pub status: ChainStatus,
    /// Set when the chain stopped on an error (the channel is then "failed").
    pub halted: Option<String>,
    pub relation: Relation,
}

impl ChainState {
    /// Whether this node is a learner of the channel's Raft group: a consenter the config added
    /// that is still catching up and not yet counted in the quorum.
    pub fn is_learner(&self) -> bool {
        self.relation == Relation::Consenter && self.status.learners.contains(&self.status.id)
    }
}

/// A change of relation the registrar must carry out for a channel (the chain cannot replace
/// itself).
#[derive(Debug, Clone, PartialEq)]
pub enum Switch {
    /// This consenter was removed from the channel: follow it instead. With `until`, the
    /// eviction was learnt from the other orderers, not from this ledger: the follower must
    /// reach that (config) block before its config counts.
    ToFollower {
        channel: String,
        until: Option<Box<Block>>,
    },
    /// This follower's ledger reached a config block that makes the node a consenter.
    ToConsenter(String),
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
    /// `Consensus.EvictionSuspicion`: see [`Driver::suspect`].
    pub eviction_suspicion: Duration,
    /// `Consensus.FabricBlockCutting`: the core's adaptive cutting off.
    pub fabric_block_cutting: bool,
    /// `Consensus.FabricMembershipChanges`: added consenters become voters at once (the core's
    /// learners off).
    pub fabric_membership_changes: bool,
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

/// A running channel; see the module doc.
pub struct Channel {
    pub name: String,
    pub id: u64,
    config: Arc<ArcSwap<ChannelConfig>>,
    members: Arc<ArcSwap<Vec<Member>>>,
    inbound: mpsc::Sender<Inbound>,
    ledger: Arc<Ledger>,
    submit: mpsc::Sender<Submission>,
    state: watch::Receiver<ChainState>,
    stop: watch::Sender<bool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    waiters: Arc<CommitWaiters>,
    /// Wakes the driver to check whether this node was removed from the channel.
    suspicion: Arc<Notify>,
    /// Wakes the driver to check whether this node's config is behind the channel's.
    unknown_sender: Arc<Notify>,
    /// Whether a consenter added by a config update enters this channel's Raft group as a
    /// learner (`Consensus.FabricMembershipChanges` off), for the quorum-loss check.
    pub adds_learners: bool,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("name", &self.name).finish()
    }
}

/// The channel config in force at the ledger's tip: the config block LAST_CONFIG points to.
pub fn config_at_tip(ledger: &Ledger) -> Result<(ChannelConfig, u64), ChannelError> {
    let height = ledger.height();
    let tip = ledger.block(
        height
            .checked_sub(1)
            .ok_or_else(|| ChannelError::Config("the ledger is empty".into()))?,
    )?;
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
    ordo_channel::config::config_of_block(block).map_err(|e| ChannelError::Config(e.to_string()))
}

/// Ticks (rounded up, at least one) in `d`.
fn ticks_in(d: Duration, tick: Duration) -> u64 {
    (d.as_nanos().div_ceil(tick.as_nanos().max(1)) as u64).max(1)
}

impl Channel {
    /// Starts the chain of a channel whose ledger holds at least the genesis block, as Raft
    /// node `id`. `wal` decides between a fresh start and a restart.
    pub fn start(
        name: &str,
        id: u64,
        ledger: Arc<Ledger>,
        wal: RaftWal,
        services: NodeServices,
    ) -> Result<Arc<Channel>, ChannelError> {
        let (config, last_config) = config_at_tip(&ledger)?;
        let settings = config
            .raft_settings()
            .map_err(|e| ChannelError::Config(e.to_string()))?;
        let tick = Duration::from_nanos(settings.tick_ns);
        let election_tick = u32::try_from(settings.options.election_tick).unwrap_or(u32::MAX);
        let height = ledger.height();
        let tip = ledger.block(height - 1)?;
        let last_block = ordo_channel::consenter::last_block_of(&tip, height, &config)?;
        let start = ordo_channel::start::start_kind(wal.is_fresh()?, height, || wal.recover())?;
        let cold = wal.entries_reader();
        let members_handle = Arc::new(ArcSwap::from_pointee(Vec::new()));
        let config_handle = Arc::new(ArcSwap::from_pointee(config.clone()));
        let waiters = Arc::new(CommitWaiters::default());
        let mut io = NodeIo {
            name: name.to_string(),
            id,
            wal,
            ledger: ledger.clone(),
            services: services.clone(),
            waiters: waiters.clone(),
            config: config_handle.clone(),
            members: members_handle.clone(),
            election_timeout: tick * election_tick,
            pull: None,
            probe: None,
        };
        let engine = ConsenterEngine::start(
            EngineParams {
                channel: name.to_string(),
                id,
                config,
                last_config,
                last_block,
                start,
                cold_entries: Some(cold),
                adaptive_cutting: !services.fabric_block_cutting,
                learner_first: !services.fabric_membership_changes,
                election_timeout: None,
                eviction_suspicion_ticks: ticks_in(services.eviction_suspicion, tick),
                eviction_check_interval_ticks: ticks_in(EVICTION_CHECK_INTERVAL, tick),
                bug: None,
            },
            &mut io,
        )?;
        // Whose state this is decides whether a later start may reuse it (see the registrar).
        io.wal.set_node_id(id)?;
        let adds_learners = !services.fabric_membership_changes;
        let (submit, queue) = mpsc::channel(SUBMIT_QUEUE_CAPACITY);
        let (inbound, inbound_rx) = mpsc::channel(INBOUND_QUEUE_CAPACITY);
        let initial = ChainState {
            status: engine.status(),
            halted: None,
            relation: Relation::Consenter,
        };
        let learner = initial.is_learner();
        let (state_tx, state) = watch::channel(initial);
        let (stop, stop_rx) = watch::channel(false);
        let suspicion = Arc::new(Notify::new());
        let unknown_sender = Arc::new(Notify::new());
        let refusals = services.comm.as_ref().map(|c| c.refusals(name));
        services.metrics.ledger_height(name, ledger.height());
        // A consenter (Fabric's participation gauges): active, or onboarding while a learner.
        services
            .metrics
            .participation(name, if learner { 2 } else { 1 }, 1);
        let driver = Driver {
            name: name.to_string(),
            engine,
            io,
            state: state_tx,
            origin: Instant::now(),
            suspicion: suspicion.clone(),
            unknown_sender: unknown_sender.clone(),
            refusals,
        };
        let task = tokio::spawn(driver.run(queue, inbound_rx, stop_rx, tick));
        let mut channel = Channel::assemble(
            name,
            id,
            config_handle,
            ledger,
            submit,
            inbound,
            state,
            stop,
            task,
            waiters,
        );
        channel.members = members_handle;
        channel.suspicion = suspicion;
        channel.unknown_sender = unknown_sender;
        channel.adds_learners = adds_learners;
        Ok(Arc::new(channel))
    }

    /// A channel around a running task (a Raft driver or a follower).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn assemble(
        name: &str,
        id: u64,
        config: Arc<ArcSwap<ChannelConfig>>,
        ledger: Arc<Ledger>,
        submit: mpsc::Sender<Submission>,
        inbound: mpsc::Sender<Inbound>,
        state: watch::Receiver<ChainState>,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
        waiters: Arc<CommitWaiters>,
    ) -> Channel {
        Channel {
            name: name.to_string(),
            id,
            config,
            members: Arc::new(ArcSwap::from_pointee(Vec::new())),
            inbound,
            ledger,
            submit,
            state,
            stop,
            task: std::sync::Mutex::new(Some(task)),
            waiters,
            suspicion: Arc::new(Notify::new()),
            unknown_sender: Arc::new(Notify::new()),
            adds_learners: true,
        }
    }

    pub fn config(&self) -> Arc<ChannelConfig> {
        self.config.load_full()
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    pub fn state(&self) -> ChainState {
        self.state.borrow().clone()
    }

    /// A receiver that changes with the chain's state (leader, halts).
    pub fn watch_state(&self) -> watch::Receiver<ChainState> {
        self.state.clone()
    }

    /// Hands a validated envelope to the driver, waiting while its queue is full. Fails only if
    /// the chain has stopped.
    pub async fn submit(&self, s: Submission) -> Result<(), String> {
        self.submit
            .send(s)
            .await
            .map_err(|_| "the chain is halted".to_string())
    }

    /// Starts waiting for `envelope` (its marshalled bytes) to be committed; call it before
    /// submitting or forwarding the envelope, so that the block cannot slip by.
    pub fn wait_commit(&self, envelope: &[u8]) -> CommitWait {
        let (tx, rx) = oneshot::channel();
        let hash = ordo_crypto::sha256(envelope);
        self.waiters.lock().entry(hash).or_default().push(tx);
        CommitWait {
            rx,
            hash,
            waiters: self.waiters.clone(),
        }
    }

    /// The consenters as of the last config block.
    pub fn members(&self) -> Arc<Vec<Member>> {
        self.members.load_full()
    }

    /// The Raft ID of the consenter whose `client_tls_cert` has the public key `key`, as
    /// Fabric identifies a cluster connection's sender (validity periods ignored).
    pub fn member_by_client_key(&self, key: &ordo_crypto::PublicKey) -> Option<u64> {
        self.members
            .load()
            .iter()
            .find(|m| m.client_key.as_ref() == Some(key))
            .map(|m| m.id)
    }

    /// A Raft message from another consenter; dropped when the driver is this far behind.
    pub fn step(&self, msg: Inbound) -> Result<(), String> {
        self.inbound.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => "the chain's inbound queue is full".to_string(),
            mpsc::error::TrySendError::Closed(_) => "the chain is halted".to_string(),
        })
    }

    /// Another consenter sent this node a Raft message for another Raft ID: it knows this node
    /// under an ID given after this node's own, so this node was removed and perhaps added
    /// back. The driver checks the channel's last config (Fabric halts "cowardly" instead and
    /// stays stuck, hyperledger/fabric#3992).
    pub fn suspect_eviction(&self) {
        self.suspicion.notify_one();
    }

    /// A node that is not among this channel's members sent it a Raft message (and was
    /// refused): this node's config may be behind the channel's, the sender added since — even
    /// its leader. The driver checks the channel's last config with the other orderers.
    pub fn unknown_sender(&self) {
        self.unknown_sender.notify_one();
    }

    /// Stops the driver and waits for it to finish its current step.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

/// The least time between two eviction checks (Fabric's `DefaultLeaderlessCheckInterval`).
const EVICTION_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// The consenter runtime: a tokio task feeding the engine its inputs (ticks, Raft messages,
/// submissions while it accepts them, the batch timer, pulled blocks, suspicions and the answers
/// to eviction checks) and publishing its state after each.
struct Driver {
    name: String,
    engine: ConsenterEngine<ChannelConfig>,
    io: NodeIo,
    state: watch::Sender<ChainState>,
    origin: Instant,
    /// See [`Channel::suspect_eviction`].
    suspicion: Arc<Notify>,
    /// See [`Channel::unknown_sender`].
    unknown_sender: Arc<Notify>,
    /// See [`Comm::refusals`].
    refusals: Option<watch::Receiver<u64>>,
}

/// The next change of the refusal count, or never without a transport.
async fn refused(r: &mut Option<watch::Receiver<u64>>) {
    if let Some(r) = r
        && r.changed().await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

/// The answer to the eviction check under way, or never without one.
async fn probed(
    p: &mut Option<oneshot::Receiver<Result<(Block, u64), String>>>,
) -> Result<(Block, u64), String> {
    match p {
        Some(rx) => rx
            .await
            .unwrap_or_else(|_| Err("the check was abandoned".into())),
        None => std::future::pending().await,
    }
}

/// The next pulled block, or never when no pull is under way.
async fn next_pulled(p: &mut Option<(Puller, mpsc::UnboundedReceiver<Pulled>)>) -> Option<Pulled> {
    match p {
        Some((_, rx)) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Driver {
    fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    async fn run(
        mut self,
        mut queue: mpsc::Receiver<Submission>,
        mut inbound: mpsc::Receiver<Inbound>,
        mut stop: watch::Receiver<bool>,
        tick: Duration,
    ) {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let suspicion = self.suspicion.clone();
        let unknown_sender = self.unknown_sender.clone();
        loop {
            let deadline = self
                .engine
                .deadline()
                .map(|ns| self.origin + Duration::from_nanos(ns));
            let accepting = self.engine.accepting();
            let step: Result<(), EngineError> = tokio::select! {
                _ = stop.changed() => break,
                _ = ticker.tick() => self.engine.tick(&mut self.io),
                _ = suspicion.notified() => {
                    self.engine.suspect(&mut self.io, Suspicion::AddressedUnderAnotherId);
                    Ok(())
                }
                _ = unknown_sender.notified() => {
                    self.engine.suspect(&mut self.io, Suspicion::UnknownSender);
                    Ok(())
                }
                _ = refused(&mut self.refusals) => {
                    self.engine.suspect(&mut self.io, Suspicion::Refused);
                    Ok(())
                }
                r = probed(&mut self.io.probe) => {
                    self.io.probe = None;
                    self.engine.on_probe(&mut self.io, r.map_err(IoError::from));
                    Ok(())
                }
                Some(m) = inbound.recv() => self.engine.step(&mut self.io, m.msg, m.active_nodes),
                Some(s) = queue.recv(), if accepting => {
                    let now = self.now_ns();
                    self.engine.submit(&mut self.io, s, now)
                }
                Some(p) = next_pulled(&mut self.io.pull) => self.engine.on_pulled(&mut self.io, p.block),
                _ = sleep_until(deadline), if deadline.is_some() => {
                    let now = self.now_ns();
                    self.engine.on_time(&mut self.io, now)
                }
            };
            if let Err(e) = step {
                self.halt(e.into());
                return;
            }
            self.publish(None);
            if let Some(until) = self.engine.evicted() {
                if let Some(switch) = &self.io.services.switch {
                    let _ = switch.send(Switch::ToFollower {
                        channel: self.name.clone(),
                        until: until.cloned().map(Box::new),
                    });
                }
                break;
            }
        }
        if let Some(comm) = &self.io.services.comm {
            comm.remove_channel(&self.name);
        }
    }

    fn halt(&self, e: ChannelError) {
        tracing::error!(channel = %self.name, error = %e, "chain halted");
        self.io.services.metrics.participation(&self.name, 3, 1);
        self.publish(Some(e.to_string()));
    }

    fn publish(&self, halted: Option<String>) {
        let status = self.engine.status();
        let m = &self.io.services.metrics;
        m.raft_status(&self.name, &status);
        let learner = status.learners.contains(&status.id);
        let (was_learner, failed) = {
            let s = self.state.borrow();
            (s.is_learner(), s.halted.is_some())
        };
        if learner != was_learner && !failed && halted.is_none() {
            m.participation(&self.name, if learner { 2 } else { 1 }, 1);
        }
        self.state.send_if_modified(|s| {
            let next = ChainState {
                status,
                halted: halted.or_else(|| s.halted.clone()),
                relation: s.relation,
            };
            let changed = *s != next;
            *s = next;
            changed
        });
    }
}

/// The engine's world on a real node: the raft-engine WAL, the block store, the node's signing
/// identity and filters, the cluster transport, pullers and probes on tokio tasks, and the
/// channel's published config, members, commit waiters and metrics.
struct NodeIo {
    name: String,
    id: u64,
    wal: RaftWal,
    ledger: Arc<Ledger>,
    services: NodeServices,
    waiters: Arc<CommitWaiters>,
    /// What Broadcast validates against and the participation API shows.
    config: Arc<ArcSwap<ChannelConfig>>,
    /// Whom inbound cluster messages are matched against.
    members: Arc<ArcSwap<Vec<Member>>>,
    /// ElectionTick × TickInterval.
    election_timeout: Duration,
    /// The pull under way while catching up.
    pull: Option<(Puller, mpsc::UnboundedReceiver<Pulled>)>,
    /// The eviction check under way.
    probe: Option<oneshot::Receiver<Result<(Block, u64), String>>>,
}

impl Io for NodeIo {
    type Config = ChannelConfig;

    fn persist(&mut self, p: &Persist) -> Result<(), IoError> {
        let t = std::time::Instant::now();
        self.wal.persist(p)?;
        let took = t.elapsed();
        self.services.metrics.data_persist(&self.name, took);
        if took > self.election_timeout / 2 {
            // Fabric's warning: a sync this slow holds back heartbeats and votes.
            tracing::warn!(channel = %self.name, ?took, election_timeout = ?self.election_timeout, "WAL sync took more than half the election timeout: the disk is too slow and may cause loss of quorum and trigger leadership elections");
        }
        Ok(())
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot, compact_to: u64) -> Result<(), IoError> {
        Ok(self.wal.save_snapshot(snapshot, compact_to)?)
    }

    fn ledger_height(&self) -> u64 {
        self.ledger.height()
    }

    fn ledger_block(&self, number: u64) -> Result<Block, IoError> {
        Ok(self.ledger.block(number)?)
    }

    fn append(&mut self, block: &Block, synced: bool) -> Result<(), IoError> {
        let t = std::time::Instant::now();
        if synced {
            self.ledger.append(block)?;
        } else {
            self.ledger.append_unsynced(block)?;
        }
        let number = block.header.as_ref().map_or(0, |h| h.number);
        self.services
            .metrics
            .block_committed(&self.name, number, t.elapsed());
        Ok(())
    }

    fn sync_ledger(&mut self) -> Result<(), IoError> {
        Ok(self.ledger.sync()?)
    }

    fn sign(
        &self,
        block: &mut Block,
        last_config: u64,
        consenter_metadata: &[u8],
    ) -> Result<(), IoError> {
        Ok(sign_block(
            block,
            &self.services.signer,
            last_config,
            Some(consenter_metadata),
        )?)
    }

    fn revalidate(&self, s: &Submission, config: &ChannelConfig) -> Result<(), IoError> {
        let env = Envelope::decode(s.envelope.clone())?;
        if s.config {
            revalidate_config(&env, &self.name, config)?;
        } else {
            process_normal(&env, config, self.services.filters, unix_now()).map_err(|r| r.info)?;
        }
        Ok(())
    }

    fn self_key(&self) -> Option<Vec<u8>> {
        self.services.self_key.get().map(|k| k.to_vec())
    }

    fn send(&mut self, msg: RaftMessage, active_nodes: Option<&[u64]>) {
        let Some(comm) = &self.services.comm else {
            return;
        };
        let to = msg.to;
        let metadata = active_nodes.map_or_else(Bytes::new, |active| {
            ordo_proto::etcdraft::ClusterMetadata {
                active_nodes: active.to_vec(),
            }
            .encode_to_vec()
            .into()
        });
        let req = ordo_proto::orderer::ConsensusRequest {
            channel: self.name.clone(),
            payload: encode_message(&msg).into(),
            metadata,
        };
        if let Err(e) = comm.send_consensus(&self.name, to, req) {
            tracing::debug!(channel = %self.name, to, error = %e, "raft message not sent");
        }
    }

    fn set_members(&mut self, members: &[ordo_channel::Member]) {
        let now: Vec<Member> = members.iter().map(Member::from).collect();
        if let Some(comm) = &self.services.comm {
            let remotes = now
                .iter()
                .filter(|m| m.id != self.id)
                .map(|m| RemoteNode {
                    id: m.id,
                    endpoint: format!("{}:{}", m.host, m.port),
                    server_cert_pem: m.server_tls_cert.clone(),
                })
                .collect();
            comm.configure(&self.name, remotes);
        }
        self.members.store(Arc::new(now));
    }

    fn start_pull(
        &mut self,
        prev: &BlockHeader,
        target: u64,
        config: &ChannelConfig,
    ) -> Result<(), IoError> {
        let comm = self
            .services
            .comm
            .clone()
            .ok_or("catching up needs the cluster transport (TLS)")?;
        let source = ChannelSource::new(&self.name, config.clone(), self.services.signer.clone());
        self.pull = Some(Puller::start(
            &self.name,
            self.services.replication,
            comm,
            source,
            Some(prev.clone()),
            target,
        ));
        Ok(())
    }

    fn raise_pull(&mut self, target: u64) {
        if let Some((puller, _)) = &self.pull {
            puller.set_target(target);
        }
    }

    fn stop_pull(&mut self) {
        self.pull = None;
    }

    fn start_probe(&mut self, config: &ChannelConfig) {
        let Some(comm) = self.services.comm.clone() else {
            return;
        };
        let source = ChannelSource::new(&self.name, config.clone(), self.services.signer.clone());
        let (name, replication) = (self.name.clone(), self.services.replication);
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let r = last_config_block_and_height(&name, replication, comm, source).await;
            let _ = tx.send(r);
        });
        self.probe = Some(rx);
    }

    fn event(&mut self, e: Event<'_, ChannelConfig>) {
        let m = &self.services.metrics;
        match e {
            Event::BlockWritten { block, pulled } => {
                self.waiters.notify(block);
                if pulled {
                    m.block_pulled(&self.name);
                }
            }
            Event::ConfigApplied { config, .. } => {
                self.config.store(Arc::new(config.clone()));
                (self.services.on_config)();
            }
            Event::Snapshot { block } => m.snapshot_block(&self.name, block),
            Event::CatchUpTarget { target } => m.catch_up_target(&self.name, target),
            Event::BatchCut { fill_ns } => m.block_fill(&self.name, Duration::from_nanos(fill_ns)),
            Event::Proposed { config: true } => m.config_proposal(&self.name),
            Event::Proposed { config: false } => m.normal_proposal(&self.name),
            Event::Dropped => {}
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
