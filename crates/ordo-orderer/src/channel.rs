//! One channel this node is a consenter of: its current config, its ledger, and the task that
//! drives its Raft core (Fabric's `ChainSupport` + the I/O half of etcdraft's `Chain`).
//!
//! The driver task owns the pure [`ChainCore`] and carries out what it asks, in order: persisting
//! Raft state to the WAL (fsync) before anything that depends on it, sending messages, and writing
//! committed blocks — each block gets LAST_CONFIG and a SIGNATURES entry signed by the node's
//! local MSP identity (Fabric's `BlockWriter`), then is appended to the ledger (fsync). A config
//! block is parsed and checked before it is written and becomes the channel's config right after.
//!
//! A snapshot ahead of the ledger (this node was down or cut off while the others compacted
//! their logs) makes the driver pull the missing blocks from the channel's orderers with
//! `ordo_cluster::puller`, writing each as it arrives (re-signed, with the consenter metadata it
//! carries, as Fabric's `catchUp` does) while the core keeps taking part in Raft; the core applies
//! what was committed meanwhile once the ledger has reached the snapshot.
//!
//! Broadcast hands envelopes to the driver through a bounded queue that the driver reads only
//! while the core can take them, so MaxInflightBlocks pushes back on clients as in Fabric.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use ordo_cluster::comm::{Comm, RemoteNode};
use ordo_cluster::puller::{Pulled, Puller, Replication, last_config_block_and_height};
use ordo_config::ChannelConfig;
use ordo_config::duration::parse_go_duration;
use ordo_ledger::block::{
    BlockError, consenter_metadata, header_hash, is_config_block, last_config_index, sign_block,
};
use ordo_ledger::store::{BlockStore, StoreError};
use ordo_msp::SigningIdentity;
use ordo_proto::common::{Block, Envelope};
use ordo_proto::etcdraft::BlockMetadata;
use ordo_raft::blockcutter::{BatchLimits, Pending};
use ordo_raft::chain::{
    Action, ChainCore, ChainParams, ChainStatus, CoreError, LastBlock, Options, Proposal,
    RaftMessage, Start, encode_message,
};
use ordo_raft::wal::{RaftWal, WalError};
use prost::Message;
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

/// An envelope validated by Broadcast, on its way to the leader's block cutter.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The marshalled envelope, as it will appear in the block.
    pub envelope: Bytes,
    /// Fabric's size: payload + signature.
    pub size: u32,
    /// A CONFIG envelope made by this node from a CONFIG_UPDATE.
    pub config: bool,
    /// The config sequence it was validated against.
    pub config_seq: u64,
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

/// The consenters of `cfg` with the Raft IDs of `metadata` (the i-th ID is the i-th consenter's,
/// Fabric's pairing). Empty if the two disagree in length (a consenter change not applied yet).
pub fn members(cfg: &ChannelConfig, metadata: &BlockMetadata) -> Vec<Member> {
    let consenters = cfg.raft().map(|r| r.consenters()).unwrap_or_default();
    if consenters.len() != metadata.consenter_ids.len() {
        return Vec::new();
    }
    consenters
        .iter()
        .cloned()
        .zip(&metadata.consenter_ids)
        .map(|(c, id)| Member {
            id: *id,
            client_key: ordo_msp::Cert::from_pem(&c.client_tls_cert)
                .ok()
                .map(|cert| cert.public_key().clone()),
            host: c.host,
            port: c.port,
            client_tls_cert: c.client_tls_cert,
            server_tls_cert: c.server_tls_cert,
        })
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
    /// Whether a consenter added by a config update enters this channel's Raft group as a
    /// learner (`Consensus.FabricMembershipChanges` off), for the quorum-loss check.
    pub adds_learners: bool,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("name", &self.name).finish()
    }
}

/// The etcdraft numbers of a channel config.
fn raft_settings(cfg: &ChannelConfig) -> Result<(Options, BatchLimits, Duration), ChannelError> {
    let o = cfg
        .orderer
        .as_ref()
        .ok_or_else(|| ChannelError::Config("the channel has no orderer config".into()))?;
    let md = o
        .etcdraft()
        .map_err(|e| ChannelError::Config(e.to_string()))?
        .ok_or_else(|| {
            ChannelError::Config(format!(
                "consensus type {:?} is not supported (Ordo orders with etcdraft)",
                o.consensus_type
            ))
        })?;
    let opts = md.options();
    let tick = parse_go_duration(&opts.tick_interval)
        .ok()
        .filter(|ns| *ns > 0)
        .ok_or_else(|| {
            ChannelError::Config(format!("bad TickInterval {:?}", opts.tick_interval))
        })?;
    let limits = BatchLimits {
        max_message_count: o.batch_size.max_message_count,
        preferred_max_bytes: o.batch_size.preferred_max_bytes,
        timeout_ns: u64::try_from(o.batch_timeout_ns).unwrap_or(0),
    };
    let options = Options {
        election_tick: opts.election_tick as usize,
        heartbeat_tick: opts.heartbeat_tick as usize,
        max_inflight_blocks: u64::from(opts.max_inflight_blocks),
        snapshot_interval_size: u64::from(opts.snapshot_interval_size),
        max_size_per_msg: u64::from(o.batch_size.preferred_max_bytes),
        election_timeout: None,
        // Local choices, not the channel's: `Channel::start` sets them.
        adaptive_cutting: true,
        learner_first: true,
    };
    Ok((options, limits, Duration::from_nanos(tick as u64)))
}

/// The `Orderer.EtcdRaft.Options` that differ between two configs and, as in Fabric, only take
/// effect when the node restarts (all but SnapshotIntervalSize), as "Name: old -> new".
fn restart_only_changes(old: &ChannelConfig, new: &ChannelConfig) -> Vec<String> {
    let options = |c: &ChannelConfig| c.raft().map(|r| r.options()).unwrap_or_default();
    let (a, b) = (options(old), options(new));
    let mut changes = Vec::new();
    let mut note = |name: &str, x: String, y: String| {
        if x != y {
            changes.push(format!("{name}: {x} -> {y}"));
        }
    };
    note("TickInterval", a.tick_interval, b.tick_interval);
    note(
        "ElectionTick",
        a.election_tick.to_string(),
        b.election_tick.to_string(),
    );
    note(
        "HeartbeatTick",
        a.heartbeat_tick.to_string(),
        b.heartbeat_tick.to_string(),
    );
    note(
        "MaxInflightBlocks",
        a.max_inflight_blocks.to_string(),
        b.max_inflight_blocks.to_string(),
    );
    changes
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
    let env = block
        .data
        .as_ref()
        .and_then(|d| d.data.first())
        .ok_or_else(|| ChannelError::Config("config block without envelope".into()))?;
    let env = Envelope::decode(env.clone()).map_err(|e| ChannelError::Config(e.to_string()))?;
    let ce = ordo_config::envelope::config_envelope(&env)
        .map_err(|e| ChannelError::Config(e.to_string()))?;
    let config = ce
        .config
        .ok_or_else(|| ChannelError::Config("config envelope without config".into()))?;
    ChannelConfig::new(&config).map_err(|e| ChannelError::Config(e.to_string()))
}

/// The consenter metadata of the ledger's last block (for a genesis block: IDs 1..N in config
/// order, as Fabric assigns them).
fn tip_metadata(ledger: &Ledger, cfg: &ChannelConfig) -> Result<LastBlock, ChannelError> {
    let height = ledger.height();
    let tip = ledger.block(height - 1)?;
    let header = tip
        .header
        .as_ref()
        .ok_or_else(|| ChannelError::Config("block without header".into()))?;
    let metadata = if height == 1 {
        let n = cfg.raft().map_or(0, |r| r.consenters().len() as u64);
        BlockMetadata {
            consenter_ids: (1..=n).collect(),
            next_consenter_id: n + 1,
            raft_index: 0,
        }
    } else {
        let raw = ordo_ledger::block::consenter_metadata(&tip)?;
        BlockMetadata::decode(raw).map_err(|e| {
            ChannelError::Config(format!("block {} consenter metadata: {e}", header.number))
        })?
    };
    Ok(LastBlock {
        number: header.number,
        header_hash: header_hash(header),
        metadata,
    })
}

impl Channel {
    /// Starts the chain of a channel whose ledger holds at least the genesis block, as Raft
    /// node `id`. `wal` decides between a fresh start and a restart.
    pub fn start(
        name: &str,
        id: u64,
        ledger: Arc<Ledger>,
        mut wal: RaftWal,
        services: NodeServices,
    ) -> Result<Arc<Channel>, ChannelError> {
        let (config, last_config) = config_at_tip(&ledger)?;
        let (mut options, limits, tick) = raft_settings(&config)?;
        options.adaptive_cutting = !services.fabric_block_cutting;
        options.learner_first = !services.fabric_membership_changes;
        let adds_learners = options.learner_first;
        let election_tick = u32::try_from(options.election_tick).unwrap_or(u32::MAX);
        let last_block = tip_metadata(&ledger, &config)?;
        let last_block_md = last_block.metadata.clone();
        let start = if !wal.is_fresh()? {
            Start::Restart(Box::new(wal.recover()?))
        } else if ledger.height() == 1 {
            Start::Fresh
        } else {
            // The ledger was pulled from the others (a follower that became a consenter).
            Start::Join
        };
        let consenters_of: ordo_raft::chain::ConsentersOf = Arc::new(|block: &Block| {
            config_of_block(block)
                .map(|c| consenter_certs(&c))
                .map_err(|e| e.to_string())
        });
        let mut core = ChainCore::new(ChainParams {
            channel: name.to_string(),
            id,
            options,
            limits,
            last_block,
            consenters: consenter_certs(&config),
            consenters_of,
            start,
        })?;
        // The fresh bootstrap state must be durable before the task starts; the rest (a
        // catch-up a restart left unfinished) is the task's first work.
        let mut startup = Vec::new();
        for a in core.take_actions() {
            match a {
                Action::Persist(p) => wal.persist(&p)?,
                other => startup.push(other),
            }
        }
        // Applied entries' data need not stay in memory: the WAL gives it back when asked.
        core.set_cold_entries(wal.entries_reader());
        // Whose state this is decides whether a later start may reuse it (see the registrar).
        wal.set_node_id(id)?;
        let members = Arc::new(ArcSwap::from_pointee(members(&config, &last_block_md)));
        let config = Arc::new(ArcSwap::from_pointee(config));
        let (submit, queue) = mpsc::channel(SUBMIT_QUEUE_CAPACITY);
        let (inbound, inbound_rx) = mpsc::channel(INBOUND_QUEUE_CAPACITY);
        let initial = ChainState {
            status: core.status(),
            halted: None,
            relation: Relation::Consenter,
        };
        let learner = initial.is_learner();
        let (state_tx, state) = watch::channel(initial);
        let (stop, stop_rx) = watch::channel(false);
        let waiters = Arc::new(CommitWaiters::default());
        let suspicion = Arc::new(Notify::new());
        let refusals = services.comm.as_ref().map(|c| c.refusals(name));
        services.metrics.ledger_height(name, ledger.height());
        // A consenter (Fabric's participation gauges): active, or onboarding while a learner.
        services
            .metrics
            .participation(name, if learner { 2 } else { 1 }, 1);
        let driver = Driver {
            name: name.to_string(),
            id,
            members: members.clone(),
            core,
            wal,
            ledger: ledger.clone(),
            config: config.clone(),
            last_config,
            services,
            state: state_tx,
            origin: Instant::now(),
            catch_up: None,
            waiters: waiters.clone(),
            active_sent: HashMap::new(),
            election_timeout: tick * election_tick,
            evicted: false,
            config_members: members.load().to_vec(),
            voters: Vec::new(),
            leaderless: Duration::ZERO,
            suspicion: suspicion.clone(),
            refusals,
            probe: None,
            last_probe: None,
            evicted_at: None,
        };
        driver.configure_comm();
        let task = tokio::spawn(driver.run(startup, queue, inbound_rx, stop_rx, tick));
        let mut channel = Channel::assemble(
            name, id, config, ledger, submit, inbound, state, stop, task, waiters,
        );
        channel.members = members;
        channel.suspicion = suspicion;
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

    /// Stops the driver and waits for it to finish its current step.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

struct Driver {
    name: String,
    id: u64,
    members: Arc<ArcSwap<Vec<Member>>>,
    core: ChainCore,
    wal: RaftWal,
    ledger: Arc<Ledger>,
    config: Arc<ArcSwap<ChannelConfig>>,
    last_config: u64,
    services: NodeServices,
    state: watch::Sender<ChainState>,
    origin: Instant,
    catch_up: Option<CatchUp>,
    waiters: Arc<CommitWaiters>,
    /// The ActiveNodes last sent to each follower.
    active_sent: HashMap<u64, Vec<u64>>,
    /// ElectionTick × TickInterval.
    election_timeout: Duration,
    /// The core reported this node's eviction: the driver stops after this step.
    evicted: bool,
    /// The consenters of the config in force (`members` adds removed ones still voting).
    config_members: Vec<Member>,
    /// The Raft group (voters and learners) when `members` was last computed.
    voters: Vec<u64>,
    /// Time without a known leader, since one was last known.
    leaderless: Duration,
    /// See [`Channel::suspect_eviction`].
    suspicion: Arc<Notify>,
    /// See [`Comm::refusals`].
    refusals: Option<watch::Receiver<u64>>,
    /// The eviction check under way (the channel's last config block, from the others), and
    /// when the last one started.
    probe: Option<Probe>,
    last_probe: Option<Instant>,
    /// The config block, learnt from the others, that no longer has this node under its ID.
    evicted_at: Option<Block>,
}

/// The least time between two eviction checks (Fabric's `DefaultLeaderlessCheckInterval`).
const EVICTION_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// An eviction check under way: the channel's last config block and height as the most advanced
/// orderer has them, and whether what started the check already proves a removal.
struct Probe {
    result: oneshot::Receiver<Result<(Block, u64), String>>,
    /// Another consenter refused this node: it no longer has it in its Raft group, so a removal
    /// there is in force. Otherwise (no leader for long) a config without this node is not
    /// enough: the conf change removing it may not be applied yet, and the other voter may
    /// need this node to elect the leader that applies it.
    proven: bool,
}

/// Where this node stands in a config block learnt from the other orderers.
#[derive(Debug, PartialEq, Eq)]
enum Standing {
    /// A consenter under this chain's Raft ID.
    Member,
    /// Not a consenter.
    Removed,
    /// A consenter under another Raft ID: removed, then added back.
    ReAdded(u64),
}

/// A catch-up under way: blocks up to `target` are being pulled.
struct CatchUp {
    target: u64,
    /// The header hash of the snapshot's block: the pulled one must match it.
    target_hash: [u8; 32],
    puller: Puller,
    blocks: mpsc::UnboundedReceiver<Pulled>,
    started: std::time::Instant,
    pulled: u64,
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

/// The result of the eviction check under way, or never without one.
async fn probed(p: &mut Option<Probe>) -> Result<(Block, u64), String> {
    match p {
        Some(p) => (&mut p.result)
            .await
            .unwrap_or_else(|_| Err("the check was abandoned".into())),
        None => std::future::pending().await,
    }
}

/// The next pulled block, or never when no catch-up is under way.
async fn next_pulled(c: &mut Option<CatchUp>) -> Option<Pulled> {
    match c {
        Some(c) => c.blocks.recv().await,
        None => std::future::pending().await,
    }
}

impl Driver {
    fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    /// The consenters the transport talks to and accepts: those of the config, plus a removed
    /// one until the Raft group has removed it too (its acknowledgements may be what commits
    /// its removal; Fabric likewise reconfigures the transport only once the conf change is
    /// applied).
    fn refresh_members(&mut self) {
        let voters = self.core.members();
        if self.config_members.is_empty() {
            return;
        }
        let mut now = self.config_members.clone();
        for m in self.members.load().iter() {
            if voters.contains(&m.id) && !now.iter().any(|n| n.id == m.id) {
                now.push(m.clone());
            }
        }
        self.voters = voters;
        if **self.members.load() != now {
            self.members.store(Arc::new(now));
            self.configure_comm();
        }
    }

    /// Tells the transport who the other consenters are.
    fn configure_comm(&self) {
        if let Some(comm) = &self.services.comm {
            let remotes = self
                .members
                .load()
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
    }

    async fn run(
        mut self,
        startup: Vec<Action>,
        mut queue: mpsc::Receiver<Submission>,
        mut inbound: mpsc::Receiver<Inbound>,
        mut stop: watch::Receiver<bool>,
        tick: Duration,
    ) {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut first = Some(startup);
        let suspicion = self.suspicion.clone();
        loop {
            if let Some(actions) = first.take()
                && let Err(e) = self.perform(actions)
            {
                self.halt(e);
                return;
            }
            let deadline = self
                .core
                .deadline()
                .map(|ns| self.origin + Duration::from_nanos(ns));
            let accepting = self.core.accepting();
            let step: Result<(), ChannelError> = tokio::select! {
                _ = stop.changed() => break,
                _ = ticker.tick() => {
                    let r = self.guarded(|c| c.tick());
                    self.count_leaderless(tick);
                    r
                }
                _ = suspicion.notified() => {
                    self.suspect("a consenter addressed this node under another Raft ID", true);
                    Ok(())
                }
                _ = refused(&mut self.refusals) => {
                    self.suspect("a consenter refused this node as unauthorized", true);
                    Ok(())
                }
                r = probed(&mut self.probe) => {
                    self.on_probe(r);
                    Ok(())
                }
                Some(m) = inbound.recv() => {
                    if let Some(active) = m.active_nodes {
                        self.core.set_active_nodes(m.msg.from, active);
                    }
                    self.guarded(|c| c.step(m.msg))
                }
                Some(s) = queue.recv(), if accepting => self.submit(s),
                Some(p) = next_pulled(&mut self.catch_up) => self.on_pulled(p),
                _ = sleep_until(deadline), if deadline.is_some() => {
                    let now = self.now_ns();
                    self.guarded(|c| c.on_time(now))
                }
            };
            let result = step.and_then(|()| self.carry_out());
            if let Err(e) = result {
                self.halt(e);
                return;
            }
            if self.core.members() != self.voters {
                self.refresh_members();
            }
            self.publish(None);
            if self.evicted {
                if let Some(switch) = &self.services.switch {
                    let _ = switch.send(Switch::ToFollower {
                        channel: self.name.clone(),
                        until: self.evicted_at.take().map(Box::new),
                    });
                }
                break;
            }
        }
        if let Some(comm) = &self.services.comm {
            comm.remove_channel(&self.name);
        }
    }

    /// Fabric's eviction suspector: after `EvictionSuspicion` without a leader, check whether
    /// this node was removed while it could not hear about it.
    fn count_leaderless(&mut self, tick: Duration) {
        if self.core.status().leader != 0 {
            self.leaderless = Duration::ZERO;
            return;
        }
        self.leaderless += tick;
        if self.leaderless >= self.services.eviction_suspicion {
            self.suspect(
                "no leader for longer than the eviction suspicion threshold",
                false,
            );
        }
    }

    /// Starts fetching the channel's last config block from the other orderers (at most once
    /// per [`EVICTION_CHECK_INTERVAL`]); [`Driver::on_probe`] judges it. `proven`: see
    /// [`Probe::proven`].
    fn suspect(&mut self, reason: &str, proven: bool) {
        if self.probe.is_some()
            || self
                .last_probe
                .is_some_and(|t| t.elapsed() < EVICTION_CHECK_INTERVAL)
        {
            return;
        }
        let Some(comm) = self.services.comm.clone() else {
            return;
        };
        tracing::info!(channel = %self.name, reason, "checking whether this node was removed from the channel: fetching the channel's last config block from its orderers");
        let source = ChannelSource::new(
            &self.name,
            (**self.config.load()).clone(),
            self.services.signer.clone(),
        );
        let (name, replication) = (self.name.clone(), self.services.replication);
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let r = last_config_block_and_height(&name, replication, comm, source).await;
            let _ = tx.send(r);
        });
        self.probe = Some(Probe { result: rx, proven });
        self.last_probe = Some(Instant::now());
    }

    /// Acts on the channel's last config block as the other orderers have it: a config that no
    /// longer has this node under its Raft ID ends this chain, and the node follows the channel
    /// from its own ledger up to that block and on (Fabric: halt, pull up to the eviction
    /// block, follow).
    fn on_probe(&mut self, r: Result<(Block, u64), String>) {
        let proven = self.probe.take().is_some_and(|p| p.proven);
        let (block, height) = match r {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(channel = %self.name, error = %e, "cannot check whether this node was removed from the channel");
                return;
            }
        };
        let number = block.header.as_ref().map_or(0, |h| h.number);
        if number < self.last_config {
            // Whoever answered is behind this node: its config says nothing about ours.
            tracing::info!(channel = %self.name, block = number, "the channel's orderers are behind this node's config: not removed");
            return;
        }
        match self.standing_in(&block) {
            Ok(Standing::Member) => {
                tracing::info!(channel = %self.name, block = number, raft_id = self.id, "still a consenter of the channel's last config");
            }
            // Ordering waits for a membership conf change to be applied, so a block after the
            // config block shows the removal in force.
            Ok(Standing::Removed) if !proven && height <= number + 1 => {
                tracing::info!(channel = %self.name, block = number, "the channel's last config removes this node, but nothing was ordered after it: the removal may not be applied yet, staying");
            }
            Ok(standing) => {
                match standing {
                    Standing::ReAdded(id) => {
                        tracing::warn!(channel = %self.name, block = number, raft_id = self.id, new_raft_id = id, "Detected our own eviction from the channel: the last config has this node under a new Raft ID; following the channel up to that block, then rejoining its Raft group");
                    }
                    _ => {
                        tracing::warn!(channel = %self.name, block = number, "Detected our own eviction from the channel in block {number}: following the channel instead");
                    }
                }
                self.evicted = true;
                self.evicted_at = Some(block);
            }
            Err(e) => {
                tracing::warn!(channel = %self.name, block = number, error = %e, "cannot check whether this node was removed from the channel");
            }
        }
    }

    fn standing_in(&self, block: &Block) -> Result<Standing, ChannelError> {
        let cfg = config_of_block(block)?;
        let md = BlockMetadata::decode(consenter_metadata(block)?)
            .map_err(|e| ChannelError::Config(format!("consenter metadata: {e}")))?;
        // Raft IDs are never reused: a consenter with this chain's ID is this node, its
        // certificate perhaps rotated (and not reloaded here yet).
        if md.consenter_ids.contains(&self.id) {
            return Ok(Standing::Member);
        }
        let key = self.services.self_key.get();
        let pos = key
            .as_deref()
            .and_then(|k| cfg.raft().and_then(|r| r.position_of(k)));
        match pos.map(|p| md.consenter_ids.get(p)) {
            None => Ok(Standing::Removed),
            Some(Some(&id)) => Ok(Standing::ReAdded(id)),
            Some(None) => Err(ChannelError::Config(
                "the consenter IDs do not match the consenters".into(),
            )),
        }
    }

    /// Runs `f` on the core; a panic in it (raft-rs's assertions) halts this channel, reported
    /// as failed, instead of ending the task unseen.
    fn guarded(
        &mut self,
        f: impl FnOnce(&mut ChainCore) -> Result<(), ordo_raft::chain::CoreError>,
    ) -> Result<(), ChannelError> {
        let core = &mut self.core;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(core))) {
            Ok(r) => r.map_err(Into::into),
            Err(p) => Err(ChannelError::Panicked(
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".to_string()),
            )),
        }
    }

    fn halt(&self, e: ChannelError) {
        tracing::error!(channel = %self.name, error = %e, "chain halted");
        self.services.metrics.participation(&self.name, 3, 1);
        self.publish(Some(e.to_string()));
    }

    fn publish(&self, halted: Option<String>) {
        let status = self.core.status();
        let m = &self.services.metrics;
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

    fn submit(&mut self, s: Submission) -> Result<(), ChannelError> {
        let config = self.config.load();
        if s.config_seq < config.sequence() {
            // The config changed since this envelope was validated: check it again, as Fabric's
            // leader does; a failure drops it silently (the client already got SUCCESS).
            let env = match Envelope::decode(s.envelope.clone()) {
                Ok(e) => e,
                Err(_) => return Ok(()),
            };
            let now = unix_now();
            let still_valid = if s.config {
                revalidate_config(&env, &self.name, &config)
            } else {
                process_normal(&env, &config, self.services.filters, now)
                    .map(|_| ())
                    .map_err(|r| r.info)
            };
            if let Err(e) = still_valid {
                tracing::warn!(channel = %self.name, error = %e, "envelope dropped: no longer valid under the new config");
                return Ok(());
            }
        }
        let proposal = if s.config {
            self.services.metrics.config_proposal(&self.name);
            Proposal::Config(s.envelope)
        } else {
            self.services.metrics.normal_proposal(&self.name);
            Proposal::Normal(Pending {
                envelope: s.envelope,
                size: s.size,
            })
        };
        let now = self.now_ns();
        match self.core.submit(proposal, now) {
            Ok(()) => Ok(()),
            Err(ordo_raft::chain::SubmitError::Halted(e)) => Err(e.into()),
            Err(e) => {
                // Leadership moved between Broadcast's check and now; the envelope is lost as in
                // Fabric when a leader steps down with pending envelopes.
                tracing::warn!(channel = %self.name, error = %e, "envelope dropped");
                Ok(())
            }
        }
    }

    /// Raft messages to the other consenters. Losses are Raft's to repair, so a failed send is
    /// only logged.
    fn send(&mut self, msgs: Vec<RaftMessage>) {
        let Some(comm) = self.services.comm.clone() else {
            return;
        };
        let leading = self.core.status().is_leader;
        for m in msgs {
            let to = m.to;
            // Fabric's disseminator: the leader's ActiveNodes ride on the next message to each
            // follower after they change.
            let active = self.core.active_nodes();
            let metadata =
                if leading && self.active_sent.get(&to).map(Vec::as_slice) != Some(active) {
                    self.active_sent.insert(to, active.to_vec());
                    ordo_proto::etcdraft::ClusterMetadata {
                        active_nodes: active.to_vec(),
                    }
                    .encode_to_vec()
                    .into()
                } else {
                    Bytes::new()
                };
            let req = ordo_proto::orderer::ConsensusRequest {
                channel: self.name.clone(),
                payload: encode_message(&m).into(),
                metadata,
            };
            if let Err(e) = comm.send_consensus(&self.name, to, req) {
                tracing::debug!(channel = %self.name, to, error = %e, "raft message not sent");
            }
        }
    }

    /// Carries out the core's actions in order.
    fn carry_out(&mut self) -> Result<(), ChannelError> {
        let actions = self.core.take_actions();
        self.perform(actions)
    }

    fn perform(&mut self, actions: Vec<Action>) -> Result<(), ChannelError> {
        for action in actions {
            match action {
                Action::Persist(p) => {
                    if p.snapshot.is_some() {
                        // The WAL is about to drop entries up to the leader's snapshot.
                        self.ledger.sync()?;
                    }
                    let t = std::time::Instant::now();
                    self.wal.persist(&p)?;
                    let took = t.elapsed();
                    self.services.metrics.data_persist(&self.name, took);
                    if took > self.election_timeout / 2 {
                        // Fabric's warning: a sync this slow holds back heartbeats and votes.
                        tracing::warn!(channel = %self.name, ?took, election_timeout = ?self.election_timeout, "WAL sync took more than half the election timeout: the disk is too slow and may cause loss of quorum and trigger leadership elections");
                    }
                }
                Action::Send(msgs) => self.send(msgs),
                Action::WriteBlock {
                    block,
                    metadata,
                    config,
                } => self.write_block(block, metadata, config, Durability::Wal)?,
                Action::Snapshot {
                    snapshot,
                    compact_to,
                } => {
                    // The entries the snapshot lets go of are the only other copy of the blocks
                    // appended unsynced since the last sync.
                    self.ledger.sync()?;
                    self.wal.save_snapshot(&snapshot, compact_to)?;
                    if let Ok(b) = Block::decode(snapshot.get_data())
                        && let Some(h) = b.header
                    {
                        self.services.metrics.snapshot_block(&self.name, h.number);
                    }
                }
                Action::BatchCut { fill_ns } => self
                    .services
                    .metrics
                    .block_fill(&self.name, Duration::from_nanos(fill_ns)),
                Action::CatchUp { block } => self.start_catch_up(&block)?,
                Action::Evicted => {
                    tracing::info!(channel = %self.name, "this node was removed from the channel's consenters: it will follow the channel instead");
                    self.evicted = true;
                }
            }
        }
        Ok(())
    }

    /// Starts pulling the blocks up to the snapshot's `block`, or raises the target of the pull
    /// under way.
    fn start_catch_up(&mut self, block: &Block) -> Result<(), ChannelError> {
        let header = block
            .header
            .as_ref()
            .ok_or_else(|| ChannelError::Config("snapshot block without header".into()))?;
        let (target, target_hash) = (header.number, header_hash(header));
        self.services.metrics.catch_up_target(&self.name, target);
        if let Some(c) = &mut self.catch_up {
            if target > c.target {
                tracing::info!(channel = %self.name, target, "a newer snapshot: catching up further");
                c.target = target;
                c.target_hash = target_hash;
                c.puller.set_target(target);
            }
            return Ok(());
        }
        let comm = self.services.comm.clone().ok_or_else(|| {
            ChannelError::Config("catching up needs the cluster transport (TLS)".into())
        })?;
        let height = self.ledger.height();
        let prev = self
            .ledger
            .block(height - 1)?
            .header
            .ok_or_else(|| ChannelError::Config("ledger block without header".into()))?;
        tracing::info!(channel = %self.name, from = height, to = target, "the leader's snapshot is ahead of this ledger: pulling the missing blocks from the channel's orderers");
        let source = ChannelSource::new(
            &self.name,
            (**self.config.load()).clone(),
            self.services.signer.clone(),
        );
        let (puller, blocks) = Puller::start(
            &self.name,
            self.services.replication,
            comm,
            source,
            Some(prev),
            target,
        );
        self.catch_up = Some(CatchUp {
            target,
            target_hash,
            puller,
            blocks,
            started: std::time::Instant::now(),
            pulled: 0,
        });
        Ok(())
    }

    /// Writes a pulled block (already checked by the puller) and, at the target, hands the
    /// ledger back to the core.
    fn on_pulled(&mut self, p: Pulled) -> Result<(), ChannelError> {
        let Pulled { block, .. } = p;
        let number = block.header.as_ref().map_or(0, |h| h.number);
        let hash = block.header.as_ref().map(header_hash).unwrap_or_default();
        let metadata = BlockMetadata::decode(consenter_metadata(&block)?).map_err(|e| {
            ChannelError::Config(format!("pulled block {number}: consenter metadata: {e}"))
        })?;
        let config = is_config_block(&block);
        self.write_block(block, metadata, config, Durability::Ledger)?;
        self.services.metrics.block_pulled(&self.name);
        let Some(c) = &mut self.catch_up else {
            return Ok(());
        };
        c.pulled += 1;
        if c.pulled % 100 == 0 {
            tracing::info!(channel = %self.name, block = number, target = c.target, "catching up");
        }
        if number < c.target {
            return Ok(());
        }
        if hash != c.target_hash {
            return Err(ChannelError::Config(format!(
                "pulled block {number} differs from the block in the leader's snapshot"
            )));
        }
        tracing::info!(channel = %self.name, blocks = c.pulled, to = number, took = ?c.started.elapsed(), "caught up with the snapshot");
        self.catch_up = None;
        let last = tip_metadata(&self.ledger, &self.config.load())?;
        let consenters = consenter_certs(&self.config.load());
        self.core.caught_up(last, consenters)?;
        Ok(())
    }

    /// Fabric's `BlockWriter`: LAST_CONFIG, consenter metadata and the node's signature, then
    /// the ledger; a config block is checked and becomes the channel config.
    fn write_block(
        &mut self,
        mut block: Block,
        metadata: BlockMetadata,
        config: bool,
        durability: Durability,
    ) -> Result<(), ChannelError> {
        let number = block.header.as_ref().map_or(0, |h| h.number);
        let mut new_config = None;
        if config {
            let next = config_of_block(&block)?;
            let current = self.config.load();
            if next.sequence() <= current.sequence() {
                return Err(ChannelError::Config(format!(
                    "config block {number} has sequence {} but the channel is at {}",
                    next.sequence(),
                    current.sequence()
                )));
            }
            self.last_config = number;
            new_config = Some(next);
        }
        sign_block(
            &mut block,
            &self.services.signer,
            self.last_config,
            Some(&metadata.encode_to_vec()),
        )?;
        let t = std::time::Instant::now();
        // Config blocks are synced even when the WAL holds them: a restart decides from the
        // ledger's last config whether this node is a consenter at all.
        if durability == Durability::Wal && !config {
            self.ledger.append_unsynced(&block)?;
        } else {
            self.ledger.append(&block)?;
        }
        self.waiters.notify(&block);
        let m = &self.services.metrics;
        m.block_committed(&self.name, number, t.elapsed());
        if let Some(next) = new_config {
            let (options, limits, _) = raft_settings(&next)?;
            let later = restart_only_changes(&self.config.load(), &next);
            if !later.is_empty() {
                tracing::warn!(channel = %self.name, block = number, changes = %later.join(", "), "Raft options changed: they take effect when this node restarts (only SnapshotIntervalSize applies at once, as in Fabric)");
            }
            self.core
                .config_applied(limits, options.snapshot_interval_size);
            self.config_members = members(&next, &metadata);
            self.refresh_members();
            self.config.store(Arc::new(next));
            tracing::info!(channel = %self.name, block = number, "applied a new channel config");
            (self.services.on_config)();
        }
        Ok(())
    }
}

/// Where a block written to the ledger is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// Made from a committed entry of this node's Raft WAL, which keeps it until the next
    /// snapshot: the ledger appends without fsync (writing each block to stable storage once
    /// instead of twice) and syncs before the WAL lets go.
    Wal,
    /// Pulled from another orderer: only the ledger holds it, fsynced before it counts.
    Ledger,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_config() -> ChannelConfig {
        let raw = ordo_testkit::read("channel-genesis/channel-3.block");
        config_of_block(&Block::decode(raw.as_slice()).unwrap()).unwrap()
    }

    /// `fixture_config` with its etcdraft options edited.
    fn with_options(edit: impl FnOnce(&mut ordo_proto::etcdraft::Options)) -> ChannelConfig {
        let mut config = fixture_config().config().clone();
        let orderer = config
            .channel_group
            .as_mut()
            .unwrap()
            .groups
            .get_mut("Orderer")
            .unwrap();
        let value = orderer.values.get_mut("ConsensusType").unwrap();
        let mut ct = ordo_proto::orderer::ConsensusType::decode(value.value.clone()).unwrap();
        let mut md = ordo_proto::etcdraft::ConfigMetadata::decode(ct.metadata.clone()).unwrap();
        edit(md.options.as_mut().unwrap());
        ct.metadata = md.encode_to_vec().into();
        value.value = ct.encode_to_vec().into();
        ChannelConfig::new(&config).unwrap()
    }

    #[test]
    fn only_options_other_than_the_snapshot_interval_wait_for_a_restart() {
        let old = fixture_config();
        let snapshot = with_options(|o| o.snapshot_interval_size *= 2);
        assert!(restart_only_changes(&old, &snapshot).is_empty());
        let slower = with_options(|o| {
            o.tick_interval = "500ms".into();
            o.election_tick = 20;
        });
        assert_eq!(
            restart_only_changes(&old, &slower),
            ["TickInterval: 250ms -> 500ms", "ElectionTick: 10 -> 20"]
        );
    }
}
