//! The consensus core of one channel (Fabric's `orderer/consensus/etcdraft/chain.go` + `node.go`,
//! minus every goroutine): raft-rs's `RawNode` over the in-memory [`MemLog`], the leader's block
//! cutting and block creation, in-flight control, and the application of committed entries.
//!
//! It is **pure**: the caller feeds it inputs — [`ChainCore::tick`], [`ChainCore::step`]
//! (a Raft message from a peer), [`ChainCore::submit`] (a validated envelope),
//! [`ChainCore::on_time`] (the batch timer) — and then drains [`ChainCore::take_actions`], which
//! must be carried out **in order**: a [`Action::Persist`] must be durable before any later
//! [`Action::Send`] leaves the node or any later [`Action::WriteBlock`] is written (Raft's rule:
//! never acknowledge what a crash could lose — the simulator in `ordo-sim` checks that this rule
//! is enough, and that breaking it is caught), and
//! [`Action::WriteBlock`]s must reach the ledger in order. No clock, socket or thread is used here,
//! so the simulator of the next issue can run many cores in one thread from a seed.
//!
//! Rules kept from Fabric:
//! - only the leader cuts and creates blocks, and only after it has applied every entry from
//!   earlier terms (so it builds on the true last block);
//! - a config envelope goes alone in its own block, after the pending batch is cut, and nothing
//!   else is accepted until that block is applied;
//! - at most `max_inflight_blocks` blocks are proposed and not yet applied;
//! - an entry is applied at most once: the Raft index of the last block in the ledger
//!   (`etcdraft.BlockMetadata.raft_index`) is the applied index after a restart, and entries up to
//!   it are skipped (raft's own `applied` is deliberately not trusted, as in Fabric);
//! - a snapshot (data = the last block) is taken every `snapshot_interval_size` bytes of blocks;
//! - a config block that adds or removes a consenter ([`crate::membership`]) is followed by a
//!   Raft conf change the leader proposes once the block is applied (any leader, also one elected
//!   in between: the change still to make is the difference between the Raft membership and the
//!   consenter IDs of the last block, [`ChainCore::pending_conf_change`]), and nothing else is
//!   accepted until it is applied;
//! - beyond Fabric ([`Options::learner_first`]): an added consenter enters the Raft group as a
//!   **learner** — it receives the log but is not counted in any quorum — and the leader promotes
//!   it to voter only once it holds the log up to the config block that added it and keeps up,
//!   and the promoted set still has an active quorum. Growing the group therefore never makes it
//!   wait for the new node (Fabric's AddNode makes 1 → 2 consenters unavailable until the second
//!   node has caught up, and for ever if it never starts). Promotion does not pause ordering;
//! - a leader never removes itself (or keeps leading with a rotated certificate): it transfers
//!   leadership first, and the next leader carries the change out;
//! - a node the config removes stops campaigning, keeps voting and acknowledging until its
//!   removal is applied (or the leader stops talking to it), then reports [`Action::Evicted`];
//! - beyond Fabric ([`ChainCore::hand_off`]): a node told it is stopping takes no more
//!   envelopes and, as leader, cuts its pending batch and transfers leadership once every block
//!   it created is applied, so an operator's restart costs a round trip, not an election;
//! - beyond Fabric ([`ChainCore::set_preferred_leaders`]): a leader that is not one of the
//!   operator's preferred consenters hands leadership to a caught-up preferred one, draining
//!   first in the same way.

use bytes::Bytes;
use ordo_ledger::block::{header_hash, is_config_block, new_block};
use ordo_proto::common::Block;
use ordo_proto::etcdraft::BlockMetadata;
use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType, HardState, Message,
    MessageType, Snapshot,
};
use raft::{RawNode, SnapshotStatus, StateRole};

use crate::blockcutter::{BatchLimits, BlockCutter, Pending};
use crate::membership;
use crate::storage::{MemLog, Recovered};

mod leadership;
mod snapshots;

/// Entries kept in the log before a snapshot's index, so that a follower slightly behind gets
/// entries rather than a whole snapshot (Fabric's `SnapshotCatchUpEntries`).
pub const SNAPSHOT_CATCH_UP_ENTRIES: u64 = 4;

/// Ticks the leader's ActiveNodes must hold before it is published (Fabric's tracker).
pub const ACTIVE_NODES_STABLE_TICKS: u32 = 3;

/// Fabric's `DefaultSnapshotIntervalSize` (16 MB), used when the channel says 0.
pub const DEFAULT_SNAPSHOT_INTERVAL_SIZE: u64 = 16 * 1024 * 1024;

/// The Raft options of a channel (`etcdraft.Options`) as the core uses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub election_tick: usize,
    pub heartbeat_tick: usize,
    pub max_inflight_blocks: u64,
    pub snapshot_interval_size: u64,
    /// Raft's MaxSizePerMsg: Fabric sets it to BatchSize.PreferredMaxBytes.
    pub max_size_per_msg: u64,
    /// A fixed election timeout range `[min, max)` in ticks (a simulation fixes it per node to
    /// be replayable). `None` is [`election_range`]'s.
    pub election_timeout: Option<(usize, usize)>,
    /// Adaptive block cutting (beyond Fabric): the leader also cuts the pending batch whenever
    /// fewer than [`ADAPTIVE_PIPELINE`] blocks are on their way through Raft. `false`: Fabric's
    /// cutting exactly (MaxMessageCount, PreferredMaxBytes, BatchTimeout).
    pub adaptive_cutting: bool,
    /// Added consenters enter as Raft learners and are promoted once caught up (beyond Fabric;
    /// see the module doc). `false`: Fabric's plain AddNode, for channels whose consenters may
    /// include Fabric orderers (etcdraft does not expect learner conf changes). Only the leader's
    /// choice matters: it proposes the conf changes; a leader that does not add learners still
    /// promotes the learners an earlier leader added, at once.
    pub learner_first: bool,
}

/// The Raft configuration change the leader still has to make for the config in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaftChange {
    /// A consenter the config added enters as a learner ([`Options::learner_first`]).
    AddLearner(u64),
    /// A consenter the config added enters as a voter at once (Fabric's AddNode).
    AddVoter(u64),
    /// A learner the config lists becomes a voter.
    Promote(u64),
    /// A voter or learner the config no longer lists leaves the group.
    Remove(u64),
}

impl RaftChange {
    /// Whether ordering waits for this change to be applied, as Fabric waits for every conf
    /// change. A promotion does not: the learner already holds the log, and the old voters'
    /// quorum keeps committing until the promotion is applied.
    pub fn pauses_ordering(self) -> bool {
        !matches!(self, RaftChange::Promote(_))
    }
}

/// Blocks in flight (proposed, not yet applied) below which an adaptive leader cuts whatever is
/// pending. At low load every envelope finds the pipeline empty and goes out at once, in a
/// small block; at high load a block is always on its way, envelopes gather while it commits,
/// and each commit releases one block holding everything that arrived meanwhile — so blocks
/// grow with the load, up to BatchSize. One rather than two: every block costs each node a
/// fixed amount (Raft entry, WAL and ledger writes, Deliver), and with two in flight blocks
/// held half as many envelopes at saturation; measured in interleaved runs (docs/performance.md),
/// one gave ~78 instead of ~45 envelopes per block and 8–10 % more ordered throughput, with the
/// same latency at 1,000 tx/s. Never MaxInflightBlocks: the leader accepts envelopes while
/// fewer than that are in flight, and cutting up to the same bound would release one envelope
/// per block at saturation (each commit frees room for exactly the next envelope).
pub const ADAPTIVE_PIPELINE: u64 = 1;

/// The block the ledger ends with, from which the core continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastBlock {
    pub number: u64,
    pub header_hash: [u8; 32],
    /// Its consenter metadata (for the genesis block: IDs 1..N, next N+1, raft_index 0).
    pub metadata: BlockMetadata,
}

/// How the chain starts.
#[derive(Debug, Clone)]
pub enum Start {
    /// First start of a channel from its genesis block: the Raft group is the consenter IDs of
    /// `LastBlock::metadata`, and one node designated by the channel name campaigns at once.
    Fresh,
    /// First start on a node that joins a running channel (its ledger already holds blocks up
    /// to one whose consenter metadata lists this node, pulled from other orderers): the Raft
    /// group starts as that metadata's IDs, with an empty log, and the leader brings it up to
    /// date (entries, whose conf changes are replayed, or a snapshot). Nobody campaigns at once.
    Join,
    /// A restart from what the WAL recovered.
    Restart(Box<Recovered>),
}

/// Reads the consenters' client TLS certificates, in config order, from a config block: how the
/// core sees membership changes without knowing the config format. An error stops the chain
/// (a committed config block that cannot be read; Fabric panics).
pub type ConsentersOf = std::sync::Arc<
    dyn Fn(&Block) -> Result<Vec<Bytes>, Box<dyn std::error::Error + Send + Sync>> + Send + Sync,
>;

/// Everything needed to build a core.
#[derive(Clone)]
pub struct ChainParams {
    pub channel: String,
    /// This node's Raft ID in the channel.
    pub id: u64,
    pub options: Options,
    pub limits: BatchLimits,
    pub last_block: LastBlock,
    /// The client TLS certificates of the consenters of the config in force at `last_block`,
    /// in config order (paired with `last_block.metadata.consenter_ids`).
    pub consenters: Vec<Bytes>,
    pub consenters_of: ConsentersOf,
    pub start: Start,
}

impl std::fmt::Debug for ChainParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainParams")
            .field("channel", &self.channel)
            .field("id", &self.id)
            .field("last_block", &self.last_block)
            .finish_non_exhaustive()
    }
}

/// Raft state to make durable (one fsynced write), in the order: snapshot, entries, states.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Persist {
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
    pub conf_state: Option<ConfState>,
}

impl Persist {
    fn is_empty(&self) -> bool {
        self.snapshot.is_none()
            && self.entries.is_empty()
            && self.hard_state.is_none()
            && self.conf_state.is_none()
    }
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Raft messages for other consenters.
    Send(Vec<Message>),
    /// Raft state to make durable before going on.
    Persist(Persist),
    /// A block Raft committed: add LAST_CONFIG, the consenter metadata and the node's signature,
    /// then append it to the ledger. For a config block the driver then applies the new config
    /// and tells the core ([`ChainCore::config_applied`]).
    WriteBlock {
        block: Block,
        metadata: BlockMetadata,
        config: bool,
    },
    /// The core took a snapshot: store it, then drop the log up to `compact_to`. A driver that
    /// appends blocks to its ledger without fsync (the entries being their durable copy) syncs
    /// the ledger first; so too before persisting a received snapshot.
    Snapshot { snapshot: Snapshot, compact_to: u64 },
    /// The ledger is behind the Raft state: a snapshot from the leader (or, after a restart,
    /// the last snapshot received) holds a block ahead of the ledger's last. The driver pulls
    /// the blocks after its ledger up to `block`'s number from other orderers, writes them, and
    /// then calls [`ChainCore::caught_up`]. Until then the core keeps taking part in Raft but
    /// applies nothing (committed entries wait) and, as leader, accepts nothing.
    CatchUp { block: Block },
    /// The leader cut a batch that took `fill_ns` to fill, from its first envelope (for
    /// `blockcutter_block_fill_duration`); nothing to do but observe it.
    BatchCut { fill_ns: u64 },
    /// This node is no longer a consenter of the channel: its removal was applied, or the config
    /// removed it and the leader has stopped talking to it. The core does nothing more; the driver
    /// stops it (and follows the channel from other orderers instead).
    Evicted,
}

/// An envelope for ordering, already validated against the current config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proposal {
    Normal(Pending),
    /// A CONFIG envelope made by the node: it goes alone in its own block.
    Config(Bytes),
}

/// Why a submission was not taken.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// This node is not the leader; `leader` is 0 when there is none (Fabric's "no Raft leader").
    #[error("{}", if *leader == 0 { "no Raft leader".to_string() } else { format!("not the leader (leader is {leader})") })]
    NotLeader { leader: u64 },
    /// The leader cannot take more now (in-flight blocks, config in flight, catching up); the
    /// driver should have checked [`ChainCore::accepting`].
    #[error("the chain is not accepting envelopes right now")]
    Busy,
    /// The chain failed while ordering it and stops.
    #[error(transparent)]
    Halted(#[from] CoreError),
}

/// A failure that stops the chain (Fabric panics in these cases).
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    #[error("raft log: {0}")]
    Log(#[from] crate::storage::LogError),
    #[error("caught up to block {block} but the snapshot is at block {target}")]
    CaughtUpShort { block: u64, target: u64 },
    #[error("committed entry {index} is not a block: {reason}")]
    BadEntry { index: u64, reason: String },
    #[error(
        "committed block {number} at raft index {index} does not follow block {last} (expected number {}, and its previous hash)", last + 1
    )]
    Fork { number: u64, index: u64, last: u64 },
}

/// A Raft message as it travels in `ConsensusRequest.payload` (etcd's `raftpb.Message` wire
/// format, which raft-rs's `eraftpb` shares).
pub use raft::eraftpb::Message as RaftMessage;

/// A Raft message that does not decode.
#[derive(Debug, thiserror::Error)]
#[error("bad raft message: {0}")]
pub struct BadRaftMessage(#[from] protobuf::ProtobufError);

/// The wire bytes of a Raft message.
pub fn encode_message(msg: &Message) -> Vec<u8> {
    // Writing a complete in-memory message to a Vec cannot fail.
    msg.write_to_bytes().unwrap_or_default()
}

/// A Raft message from the wire. Entry data (whole blocks) are slices of `bytes`, not copies.
pub fn decode_message(bytes: &Bytes) -> Result<Message, BadRaftMessage> {
    Ok(Message::parse_from_carllerche_bytes(bytes)?)
}

/// Observable state, for metrics, health and the participation API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainStatus {
    pub id: u64,
    pub leader: u64,
    pub is_leader: bool,
    pub term: u64,
    /// The Raft voters (Fabric's `consensus_etcdraft_cluster_size`); learners are not counted.
    pub cluster_size: usize,
    /// The Raft learners: consenters the config added that are still catching up, in ID order.
    pub learners: Vec<u64>,
    pub last_block: u64,
    pub applied_index: u64,
    pub leader_changes: u64,
    pub proposal_failures: u64,
    /// The consenters the leader has heard from recently (its own count, or the last count it
    /// sent this follower), by ID; their number is Fabric's `consensus_etcdraft_active_nodes`,
    /// and a config update's quorum check counts them.
    pub active: Vec<u64>,
}

/// The consensus core of one channel; see the module doc.
pub struct ChainCore {
    channel: String,
    raw: RawNode<MemLog>,
    options: Options,
    cutter: BlockCutter,
    /// The last block applied (written or to be written by the driver).
    last: LastBlock,
    /// The last block the leader created (≥ `last`); blocks between are in flight.
    created: (u64, [u8; 32]),
    /// Raft index of the last applied block: entries up to it are never applied again.
    applied_index: u64,
    /// Raft index of the last committed entry processed (blocks or not).
    processed_index: u64,
    /// As leader: blocks may be created once `processed_index` reaches this index.
    sync_index: Option<u64>,
    /// Applied index as of the end of the last [`ChainCore::advance`]: what the driver has
    /// persisted by the time the core runs again, so what the in-memory log may release.
    releasable: u64,
    config_inflight: bool,
    /// The latest time the driver gave (submit, batch timer): when an adaptive cut after a
    /// commit happens, for the batch fill-duration metric.
    now_ns: u64,
    /// The block number the ledger must reach before entries can be applied again.
    catching_up: Option<u64>,
    /// Committed entries that arrived while catching up, applied once caught up.
    deferred: Vec<Entry>,
    role: StateRole,
    leader: u64,
    /// Bytes of block entries applied since the last snapshot.
    since_snapshot: u64,
    /// Ticks left before the designated node campaigns (fresh channels only).
    campaign_in: Option<usize>,
    ticks: u64,
    leader_changes: u64,
    proposal_failures: u64,
    /// ActiveNodes as published: computed by the leader, received by a follower.
    active: Vec<u64>,
    /// The leader's latest computation and for how many ticks it has held.
    active_seen: (Vec<u64>, u32),
    /// Client TLS certificates of the consenters in force (paired with `last.metadata`).
    consenters: Vec<Bytes>,
    consenters_of: ConsentersOf,
    /// The tick at which the leader last proposed the pending conf change (or asked for a
    /// leadership transfer instead); raft-rs drops a conf change proposed while another is
    /// unapplied, so it is proposed again after an election timeout.
    conf_change_tried: Option<u64>,
    /// As leader, per learner: the commit index when this leader first considered promoting it
    /// (at or after the conf change that added it, so after the config block that added it). The
    /// learner is promoted only once it has acknowledged the log up to there.
    promotion_floor: std::collections::BTreeMap<u64, u64>,
    /// The last config block rotated this node's certificate: as leader it hands over (the
    /// others pin the new certificate, which this process may not be using yet).
    rotated_self: bool,
    /// The config removed this node: it no longer campaigns, and waits to be evicted.
    leaving: bool,
    /// The node is stopping (see [`ChainCore::hand_off`]): it takes no more envelopes, and as
    /// leader hands leadership over once every block it created is committed.
    stopping: bool,
    /// The tick of the last leadership transfer asked for while stopping.
    hand_off_tried: Option<u64>,
    /// The consenters the operator prefers as leader (see [`ChainCore::set_preferred_leaders`]).
    preferred: Vec<u64>,
    /// The tick at which this node last became leader.
    led_since: u64,
    /// The tick of the last transfer towards a preferred leader.
    prefer_tried: Option<u64>,
    /// A transfer to a preferred leader under way: its target, the tick it began, and whether
    /// raft-rs was asked yet. The leader takes no envelope meanwhile and asks for the transfer
    /// only once every block it created is applied, so nothing it accepted is dropped.
    draining: Option<(u64, u64, bool)>,
    /// Ticks since the leader last talked to this (leaving) node.
    leader_silent_ticks: usize,
    evicted: bool,
    actions: Vec<Action>,
}

impl std::fmt::Debug for ChainCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainCore")
            .field("channel", &self.channel)
            .field("status", &self.status())
            .finish()
    }
}

/// The range `[min, max)` of ticks a follower waits without hearing from a leader before it
/// campaigns: `[ElectionTick + 1, ElectionTick + ElectionTick/4 + 2)`. etcd/raft (and so Fabric)
/// draws from `[ElectionTick, 2 × ElectionTick)`, so replacing a dead leader can take twice the
/// configured election timeout; Ordo's longest draw is ElectionTick + ElectionTick/4 + 1 ticks
/// (13 × 250 ms = 3.25 s with Fabric's defaults), and a new leader follows within a second of it.
/// The spread left (three ticks, 750 ms, with Fabric's defaults) is still hundreds of
/// round trips, which keeps split votes rare; a split vote just draws again.
///
/// Why not start at ElectionTick: with CheckQuorum a follower ignores (does not even answer) a
/// pre-vote while its leader lease runs, i.e. until ElectionTick of its own ticks have passed since
/// the leader's last heartbeat. All followers heard that heartbeat at about the same moment but
/// tick at different phases, so a follower campaigning after exactly ElectionTick ticks can arrive
/// up to one tick before the others' leases end, be ignored, and wait a whole second timeout
/// (seen in CI: 4.9 s). One tick more and every lease has ended.
pub fn election_range(election_tick: usize) -> (usize, usize) {
    (election_tick + 1, election_tick + election_tick / 4 + 2)
}

/// Whether voter `id` is needed for a quorum of `voters`: the others alone are not a majority
/// (a group of one or two). A node the config removed but whose removal the Raft group has not
/// applied yet must then keep taking part, campaigns and restarts included, until it has (see
/// `ChainCore::tick`): otherwise the remaining voter could never be elected again.
pub fn needed_for_quorum(voters: &[u64], id: u64) -> bool {
    voters.contains(&id) && voters.len() - 1 < voters.len() / 2 + 1
}

/// Records the destinations of the snapshots among `msgs`.
fn note_snapshots(msgs: &[Message], to: &mut Vec<u64>) {
    to.extend(
        msgs.iter()
            .filter(|m| m.get_msg_type() == MessageType::MsgSnapshot)
            .map(|m| m.to),
    );
}

/// The consenter that campaigns first on a new channel: `DecodeVarint(sha256(channel)[24:]) % N + 1`
/// (Fabric's `node.go` `start`), so that every node agrees without talking.
pub fn initial_campaigner(channel: &str, cluster_size: usize) -> u64 {
    let digest = ordo_crypto::sha256(channel.as_bytes());
    // proto.DecodeVarint: an unterminated varint decodes as 0.
    let mut x: u64 = 0;
    let mut decoded = 0;
    for (i, b) in digest[24..].iter().enumerate() {
        x |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            decoded = x;
            break;
        }
    }
    decoded % (cluster_size.max(1) as u64) + 1
}

impl ChainCore {
    pub fn new(p: ChainParams) -> Result<ChainCore, CoreError> {
        let fresh = matches!(p.start, Start::Fresh);
        let leaving = !p.last_block.metadata.consenter_ids.contains(&p.id);
        let bootstrap = matches!(p.start, Start::Fresh | Start::Join);
        let ids = &p.last_block.metadata.consenter_ids;
        let log = match p.start {
            Start::Fresh => MemLog::bootstrap(ids.clone(), Vec::new()),
            // A node joining a running group does not know yet whether the leader has it as a
            // learner or a voter: it starts as a learner in its own eyes, which only keeps it from
            // campaigning (raft-rs learners still vote) until the log or a snapshot tells it the
            // group's real membership. The others are assumed voters meanwhile, which matters
            // for nothing but this node's own campaign.
            Start::Join if ids.len() > 1 && ids.contains(&p.id) => MemLog::bootstrap(
                ids.iter().copied().filter(|id| *id != p.id).collect(),
                vec![p.id],
            ),
            Start::Join => MemLog::bootstrap(ids.clone(), Vec::new()),
            Start::Restart(r) => MemLog::restore(*r)?,
        };
        // A restart after a snapshot was received but before the ledger caught up with it (a
        // crash during catch-up): the blocks up to the snapshot's must be pulled first.
        let snap = raft::Storage::snapshot(&log, 0, 0).unwrap_or_default();
        let snap_index = snap.get_metadata().index;
        let behind = if snap.get_data().is_empty() {
            None
        } else {
            let block = Block::decode(snap.get_data()).map_err(|err| CoreError::BadEntry {
                index: snap_index,
                reason: format!("snapshot data is not a block: {err}"),
            })?;
            let number = block.header.as_ref().map_or(0, |h| h.number);
            (number > p.last_block.number).then_some((number, block))
        };
        let mut cfg = raft::Config {
            id: p.id,
            election_tick: p.options.election_tick,
            heartbeat_tick: p.options.heartbeat_tick,
            max_size_per_msg: p.options.max_size_per_msg,
            max_inflight_msgs: p.options.max_inflight_blocks.max(1) as usize,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        let (min, max) = p
            .options
            .election_timeout
            .unwrap_or_else(|| election_range(p.options.election_tick));
        cfg.min_election_tick = min;
        cfg.max_election_tick = max;
        cfg.validate()?;
        let logger = crate::logger::raft_logger(&p.channel, p.id);
        let raw = RawNode::new(&cfg, log, &logger)?;
        let voters = raw.raft.prs().conf().voters().ids().len();
        let mut actions = Vec::new();
        if bootstrap {
            // The bootstrap membership must be durable before anything else happens.
            actions.push(Action::Persist(Persist {
                conf_state: Some(raw.store().conf_state().clone()),
                ..Default::default()
            }));
        }
        let campaign_in = if fresh {
            (initial_campaigner(&p.channel, voters) == p.id)
                .then_some(2 * p.options.heartbeat_tick.max(1))
        } else if bootstrap {
            None
        } else if raw.raft.prs().conf().voters().ids().iter().eq([p.id]) {
            // A group of one cannot split its vote: campaign at the first tick instead of
            // waiting out an election timeout after every restart.
            Some(1)
        } else {
            None
        };
        // The raft index of the ledger's last block: entries up to it are already applied.
        let applied_index = p.last_block.metadata.raft_index;
        let created = (p.last_block.number, p.last_block.header_hash);
        let mut catching_up = None;
        let mut processed_index = applied_index;
        if let Some((number, block)) = behind {
            tracing::info!(channel = %p.channel, ledger = p.last_block.number, snapshot = number, "the ledger is behind the last Raft snapshot: catching up");
            catching_up = Some(number);
            processed_index = processed_index.max(snap_index);
            actions.push(Action::CatchUp { block });
        }
        Ok(ChainCore {
            channel: p.channel,
            cutter: BlockCutter::new(p.limits),
            options: p.options,
            last: p.last_block,
            created,
            applied_index,
            processed_index,
            sync_index: None,
            releasable: 0,
            config_inflight: false,
            now_ns: 0,
            catching_up,
            deferred: Vec::new(),
            role: StateRole::Follower,
            leader: 0,
            since_snapshot: 0,
            campaign_in,
            ticks: 0,
            leader_changes: 0,
            proposal_failures: 0,
            active: Vec::new(),
            active_seen: (Vec::new(), 0),
            leaving,
            consenters: p.consenters,
            consenters_of: p.consenters_of,
            conf_change_tried: None,
            promotion_floor: Default::default(),
            rotated_self: false,
            stopping: false,
            hand_off_tried: None,
            preferred: Vec::new(),
            led_since: 0,
            prefer_tried: None,
            draining: None,
            leader_silent_ticks: 0,
            evicted: false,
            actions,
            raw,
        })
    }

    /// Lets the in-memory log drop the data of applied entries, reading them back from `cold`
    /// (the WAL) if they are needed again; see [`crate::storage`].
    pub fn set_cold_entries(&mut self, cold: std::sync::Arc<dyn crate::storage::ColdEntries>) {
        self.raw.mut_store().set_cold(cold);
        let applied = self.raw.raft.raft_log.applied;
        self.raw.mut_store().release_applied(applied);
    }

    pub fn status(&self) -> ChainStatus {
        ChainStatus {
            id: self.raw.raft.id,
            leader: self.leader,
            is_leader: self.role == StateRole::Leader,
            term: self.raw.raft.term,
            cluster_size: self.raw.raft.prs().conf().voters().ids().len(),
            learners: self.learners(),
            last_block: self.last.number,
            applied_index: self.applied_index,
            leader_changes: self.leader_changes,
            proposal_failures: self.proposal_failures,
            active: self.active.clone(),
        }
    }

    /// The Raft voters as applied, in ID order.
    pub fn voters(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.raw.raft.prs().conf().voters().ids().iter().collect();
        v.sort_unstable();
        v
    }

    /// The Raft learners as applied, in ID order.
    pub fn learners(&self) -> Vec<u64> {
        let mut l: Vec<u64> = self
            .raw
            .raft
            .prs()
            .conf()
            .learners()
            .iter()
            .copied()
            .collect();
        l.sort_unstable();
        l
    }

    /// Every member of the Raft group as applied (voters and learners), in ID order: whom the
    /// transport must reach.
    pub fn members(&self) -> Vec<u64> {
        let mut m = self.voters();
        m.extend(self.learners());
        m.sort_unstable();
        m
    }

    /// The conf change still to make: the difference between the Raft membership and the
    /// consenter IDs of the last block (Fabric's `getInFlightConfChange`), then a learner to
    /// promote. A config block changes one consenter at most, so at most one addition or
    /// removal is ever pending; learners added by earlier config blocks may wait for promotion
    /// meanwhile, the lowest ID first.
    pub fn pending_conf_change(&self) -> Option<RaftChange> {
        let (voters, learners) = (self.voters(), self.learners());
        let ids = &self.last.metadata.consenter_ids;
        if let Some(&add) = ids
            .iter()
            .find(|id| !voters.contains(id) && !learners.contains(id))
        {
            return Some(if self.options.learner_first {
                RaftChange::AddLearner(add)
            } else {
                RaftChange::AddVoter(add)
            });
        }
        if let Some(&gone) = voters
            .iter()
            .chain(&learners)
            .find(|member| !ids.contains(member))
        {
            return Some(RaftChange::Remove(gone));
        }
        learners.first().map(|l| RaftChange::Promote(*l))
    }

    /// Whether a pending conf change holds ordering back (see [`RaftChange::pauses_ordering`]).
    fn conf_change_pauses_ordering(&self) -> bool {
        self.pending_conf_change()
            .is_some_and(RaftChange::pauses_ordering)
    }

    /// Whether the config in force removed this node (it is waiting to be evicted).
    pub fn leaving(&self) -> bool {
        self.leaving
    }

    /// The consenter metadata stamped on blocks.
    pub fn block_metadata(&self) -> &BlockMetadata {
        &self.last.metadata
    }

    /// Whether the leader can take an envelope now. The driver stops reading submissions while
    /// this is false, which is how Fabric's MaxInflightBlocks pushes back on clients.
    pub fn accepting(&self) -> bool {
        self.role == StateRole::Leader
            && !self.stopping
            && self.draining.is_none()
            && self.sync_index.is_none()
            && self.catching_up.is_none()
            && !self.config_inflight
            && !self.evicted
            && !self.conf_change_pauses_ordering()
            && self.created.0 - self.last.number < self.options.max_inflight_blocks.max(1)
    }

    /// When the batch timer fires (the caller's time base), if an envelope is pending.
    pub fn deadline(&self) -> Option<u64> {
        self.cutter.deadline()
    }

    /// One Raft tick (the channel's TickInterval).
    pub fn tick(&mut self) -> Result<(), CoreError> {
        if self.evicted {
            return Ok(());
        }
        self.ticks += 1;
        if self.leaving && self.role != StateRole::Leader && !self.needed_for_quorum() {
            // A node on its way out must not start elections (it could win one among nodes
            // that have not applied its removal yet, and then have to hand over at once); it
            // still votes and acknowledges, which the conf change removing it may need. Once
            // the leader stops talking to it, the removal is in force — or the leader is gone,
            // and the other voters elect a new one without this node, which then removes it.
            self.leader_silent_ticks += 1;
            if self.leader_silent_ticks >= 2 * self.options.election_tick.max(1) {
                tracing::info!(channel = %self.channel, "the leader no longer talks to this removed node: leaving the channel's Raft group");
                self.evict();
            }
            return Ok(());
        }
        self.raw.tick();
        self.track_active();
        self.push_conf_change()?;
        self.try_hand_off();
        self.move_to_preferred();
        self.transfer_drained();
        if let Some(left) = self.campaign_in.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                if self.raw.raft.leader_id == 0 {
                    self.raw.campaign()?;
                    self.campaign_in = Some(2 * self.options.heartbeat_tick.max(1));
                } else {
                    self.campaign_in = None;
                }
            }
        }
        self.advance()
    }

    /// Whether the other voters cannot form a quorum of the voters without this node: a voter
    /// of a two-voter group (a learner waiting for promotion makes this more common: two
    /// voters and a third consenter). Such a node, even when the config removed it, stays a
    /// full voter, campaigns included, until its removal is applied: were it to stop first —
    /// say the leader removing it is itself the other voter and crashes — the remaining voter
    /// could never be elected again, and the channel would be dead.
    fn needed_for_quorum(&self) -> bool {
        needed_for_quorum(&self.voters(), self.raw.raft.id)
    }

    /// Fabric's tracker: the leader's set of recently active voters (itself included), published
    /// once it has held for [`ACTIVE_NODES_STABLE_TICKS`] ticks, so that CheckQuorum's periodic
    /// reset of the flags does not make it flicker.
    fn track_active(&mut self) {
        if self.role != StateRole::Leader {
            return;
        }
        let id = self.raw.raft.id;
        let mut now: Vec<u64> = self
            .raw
            .raft
            .prs()
            .iter()
            .filter(|(pid, pr)| **pid == id || pr.recent_active)
            .map(|(pid, _)| *pid)
            .filter(|pid| self.raw.raft.prs().conf().voters().contains(*pid))
            .collect();
        now.sort_unstable();
        if now == self.active_seen.0 {
            self.active_seen.1 += 1;
        } else {
            self.active_seen = (now, 1);
        }
        if self.active_seen.1 >= ACTIVE_NODES_STABLE_TICKS && self.active != self.active_seen.0 {
            self.active = self.active_seen.0.clone();
            tracing::info!(channel = %self.channel, active = ?self.active, "active nodes changed");
        }
    }

    /// The consenters the leader counts as active (see [`ChainStatus::active`]).
    pub fn active_nodes(&self) -> &[u64] {
        &self.active
    }

    /// ActiveNodes piggybacked by node `from` on a Raft message (`ClusterMetadata`); taken
    /// only from the leader this node follows, as Fabric does.
    pub fn set_active_nodes(&mut self, from: u64, active: Vec<u64>) {
        if from == self.leader && self.role != StateRole::Leader {
            self.active = active;
        }
    }

    /// A Raft message from another consenter.
    pub fn step(&mut self, mut msg: Message) -> Result<(), CoreError> {
        if self.evicted {
            return Ok(());
        }
        if msg.get_msg_type() == MessageType::MsgSnapshot {
            self.admit_into_snapshot(&mut msg);
        }
        if msg.from == self.raw.raft.leader_id
            && matches!(
                msg.get_msg_type(),
                MessageType::MsgAppend | MessageType::MsgHeartbeat | MessageType::MsgSnapshot
            )
        {
            self.leader_silent_ticks = 0;
        }
        match self.raw.step(msg) {
            // Messages from unknown or removed peers, or stale responses, are not fatal.
            Err(raft::Error::StepPeerNotFound) | Err(raft::Error::StepLocalMsg) => {}
            Err(e) => return Err(e.into()),
            Ok(()) => {}
        }
        self.advance()?;
        if self.stopping || self.draining.is_some() {
            // The commit this step brought may be the last one the hand-off waited for.
            self.try_hand_off();
            self.transfer_drained();
            self.advance()?;
        }
        Ok(())
    }

    /// An envelope to order (already validated). Only the leader takes it.
    pub fn submit(&mut self, p: Proposal, now_ns: u64) -> Result<(), SubmitError> {
        self.now_ns = self.now_ns.max(now_ns);
        if self.role != StateRole::Leader {
            return Err(SubmitError::NotLeader {
                leader: self.leader,
            });
        }
        if !self.accepting() {
            return Err(SubmitError::Busy);
        }
        match p {
            Proposal::Normal(pending) => {
                for batch in self.cutter.ordered(pending, now_ns) {
                    self.propose_block(batch);
                }
                self.cut_adaptively();
            }
            Proposal::Config(env) => {
                self.propose_pending(now_ns);
                self.propose_block(vec![env]);
                self.config_inflight = true;
            }
        }
        self.advance()?;
        Ok(())
    }

    /// The batch timer: cuts the pending batch if its deadline has passed.
    pub fn on_time(&mut self, now_ns: u64) -> Result<(), CoreError> {
        self.now_ns = self.now_ns.max(now_ns);
        if self.role == StateRole::Leader
            && let Some(batch) = self.cutter.tick(now_ns)
        {
            self.propose_block(batch);
        }
        self.advance()
    }

    /// The driver applied a config block: new batch limits and snapshot interval (membership
    /// changes the core has seen itself, when it applied the block).
    pub fn config_applied(&mut self, limits: BatchLimits, snapshot_interval_size: u64) {
        self.cutter.set_limits(limits);
        self.options.snapshot_interval_size = snapshot_interval_size;
        self.options.max_size_per_msg = u64::from(limits.preferred_max_bytes);
    }

    /// As leader, once every earlier entry is applied: proposes the conf change the last config
    /// block calls for, again after an election timeout if it has not been applied by then; or,
    /// if the change removes this node, hands leadership to an up-to-date active voter first.
    fn push_conf_change(&mut self) -> Result<(), CoreError> {
        if self.role != StateRole::Leader
            || self.sync_index.is_some()
            || self.catching_up.is_some()
            || self.evicted
        {
            return Ok(());
        }
        let me = self.raw.raft.id;
        // A rotation of this leader's own certificate is handled as its removal would be: by
        // handing leadership over (there is no conf change to make). It comes before promoting
        // a learner, which may wait for a node that never starts.
        let change = match self.pending_conf_change() {
            Some(c) if c.pauses_ordering() => c,
            _ if self.rotated_self => RaftChange::Remove(me),
            Some(c) => c,
            None => return Ok(()),
        };
        if let RaftChange::Promote(id) = change
            && self.options.learner_first
            && !self.ready_for_promotion(id)
        {
            return Ok(());
        }
        let retry_after = self.options.election_tick.max(1) as u64;
        if self
            .conf_change_tried
            .is_some_and(|t| self.ticks < t + retry_after)
        {
            return Ok(());
        }
        self.conf_change_tried = Some(self.ticks);
        if change == RaftChange::Remove(me) {
            // Fabric's abdication: a leader does not remove itself (nor keeps leading with a
            // certificate the others no longer pin); the next leader carries the change out.
            match self.transfer_target() {
                Some(to) => {
                    tracing::info!(channel = %self.channel, to, "transferring leadership before this node's removal or certificate rotation");
                    self.raw.transfer_leader(to);
                    return Ok(());
                }
                None => {
                    // The other consenters are all learners: one must become a voter first,
                    // and can then take over.
                    let learner = self
                        .learners()
                        .into_iter()
                        .find(|l| self.last.metadata.consenter_ids.contains(l));
                    match learner {
                        Some(l) if !self.options.learner_first || self.ready_for_promotion(l) => {
                            return self.propose_conf_change(RaftChange::Promote(l));
                        }
                        Some(_) => self.conf_change_tried = None,
                        None => {
                            tracing::warn!(channel = %self.channel, "no active follower to hand leadership to before this node's removal or certificate rotation")
                        }
                    }
                    return Ok(());
                }
            }
        }
        self.propose_conf_change(change)
    }

    fn propose_conf_change(&mut self, change: RaftChange) -> Result<(), CoreError> {
        let mut cc = ConfChange::default();
        let (kind, id) = match change {
            RaftChange::AddLearner(id) => (ConfChangeType::AddLearnerNode, id),
            // AddNode on a learner promotes it (raft-rs's `make_voter`).
            RaftChange::AddVoter(id) | RaftChange::Promote(id) => (ConfChangeType::AddNode, id),
            RaftChange::Remove(id) => (ConfChangeType::RemoveNode, id),
        };
        cc.set_change_type(kind);
        cc.node_id = id;
        tracing::info!(channel = %self.channel, ?change, "proposing the raft configuration change of the last config block");
        if let Err(e) = self.raw.propose_conf_change(Vec::new(), cc) {
            tracing::warn!(channel = %self.channel, error = %e, "failed to propose configuration change to raft");
        }
        Ok(())
    }

    /// Whether learner `id` may become a voter now: it has acknowledged the log up to this
    /// leader's promotion floor for it (see `promotion_floor`), it is no further behind the
    /// leader's log than a full pipeline of blocks (so the new quorum does not wait for it to
    /// catch up), the leader has heard from it within the last election timeout, and the voters
    /// with it would still have an active quorum.
    fn ready_for_promotion(&mut self, id: u64) -> bool {
        let committed = self.raw.raft.raft_log.committed;
        let floor = *self.promotion_floor.entry(id).or_insert(committed);
        let last = self.raw.raft.raft_log.last_index();
        let me = self.raw.raft.id;
        let prs = self.raw.raft.prs();
        let Some(pr) = prs.get(id) else {
            return false;
        };
        let keeps_up = last.saturating_sub(pr.matched) <= self.options.max_inflight_blocks + 2;
        let voters = self.voters();
        let active = voters
            .iter()
            .filter(|v| **v == me || prs.get(**v).is_some_and(|p| p.recent_active))
            .count();
        let voters_after = voters.len() + 1;
        let quorum_after = voters_after / 2 + 1;
        let ready =
            pr.matched >= floor && keeps_up && pr.recent_active && active + 1 >= quorum_after;
        if ready {
            tracing::info!(channel = %self.channel, node = id, matched = pr.matched, floor, "the learner holds the log: promoting it to voter");
        }
        ready
    }

    fn evict(&mut self) {
        if !self.evicted {
            self.evicted = true;
            self.actions.push(Action::Evicted);
        }
    }

    /// Whether the core waits for the ledger to catch up (see [`Action::CatchUp`]).
    pub fn catching_up(&self) -> Option<u64> {
        self.catching_up
    }

    /// The driver wrote the pulled blocks up to the one [`Action::CatchUp`] asked for; `last`
    /// is the ledger's last block now, with its consenter metadata, and `consenters` the client
    /// TLS certificates of the config in force there. Entries committed meanwhile are applied
    /// now.
    pub fn caught_up(&mut self, last: LastBlock, consenters: Vec<Bytes>) -> Result<(), CoreError> {
        let Some(target) = self.catching_up else {
            return Ok(());
        };
        if last.number < target {
            return Err(CoreError::CaughtUpShort {
                block: last.number,
                target,
            });
        }
        tracing::info!(channel = %self.channel, block = last.number, "caught up with the snapshot");
        self.catching_up = None;
        self.applied_index = self.applied_index.max(last.metadata.raft_index);
        if !last.metadata.consenter_ids.contains(&self.raw.raft.id) && !self.leaving {
            tracing::info!(channel = %self.channel, block = last.number, "a pulled config block removed this node from the consenters");
            self.leaving = true;
            self.leader_silent_ticks = 0;
        }
        self.consenters = consenters;
        self.last = last;
        self.created = (self.last.number, self.last.header_hash);
        let deferred = std::mem::take(&mut self.deferred);
        self.apply(deferred)?;
        self.advance()
    }

    /// Adaptive cutting (see [`ADAPTIVE_PIPELINE`]): as leader, with envelopes pending and room
    /// in the pipeline, cuts them now rather than waiting for a full batch or the timer. The
    /// batch timer's rules otherwise hold: only a leader whose log is applied cuts, and never
    /// while a config block or a conf change is on its way (the timer cuts then; Fabric's too).
    fn cut_adaptively(&mut self) {
        let in_flight = self.created.0.saturating_sub(self.last.number);
        if self.options.adaptive_cutting
            && self.role == StateRole::Leader
            && self.cutter.pending_len() > 0
            && self.sync_index.is_none()
            && self.catching_up.is_none()
            && !self.config_inflight
            && !self.conf_change_pauses_ordering()
            && in_flight < ADAPTIVE_PIPELINE.min(self.options.max_inflight_blocks.max(1))
        {
            let batch = self.cutter.cut_at(self.now_ns);
            self.propose_block(batch);
        }
    }

    /// Cuts whatever the block cutter holds, as of `now_ns`, and proposes it as a block.
    fn propose_pending(&mut self, now_ns: u64) {
        let pending = self.cutter.cut_at(now_ns);
        if !pending.is_empty() {
            self.propose_block(pending);
        }
    }

    /// The actions produced so far, to be carried out in order.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    fn propose_block(&mut self, batch: Vec<Bytes>) {
        debug_assert!(
            self.role == StateRole::Leader,
            "only the leader creates blocks"
        );
        debug_assert!(
            self.created.0 >= self.last.number,
            "the leader builds on block {} behind the last applied {}",
            self.created.0,
            self.last.number
        );
        let block = new_block(self.created.0 + 1, &self.created.1, batch);
        let Some(header) = block.header.as_ref() else {
            return;
        };
        let hash = header_hash(header);
        let number = header.number;
        match self.raw.propose(Vec::new(), block.encode_to_vec()) {
            Ok(()) => self.created = (number, hash),
            Err(e) => {
                // The block is lost (the clients already got SUCCESS, as in Fabric); creating the
                // next one from `created` would leave a hole, so resynchronise from the ledger.
                tracing::warn!(channel = %self.channel, block = number, error = %e, "failed to propose block to raft");
                self.proposal_failures += 1;
                self.sync_index = Some(self.raw.raft.raft_log.last_index());
            }
        }
    }

    /// Notices role changes, then drains raft's Ready into actions.
    fn advance(&mut self) -> Result<(), CoreError> {
        // Entries applied during the previous call were persisted since (the driver carries out
        // every action before calling again); those applied during this one may still be on
        // their way to the WAL (a single node commits what it has just appended), so they are
        // released only next time.
        self.raw.mut_store().release_applied(self.releasable);
        for fill_ns in self.cutter.take_fill_durations() {
            self.actions.push(Action::BatchCut { fill_ns });
        }
        self.observe_role();
        while self.raw.has_ready() {
            let mut rd = self.raw.ready();
            let mut snapshots_sent = Vec::new();
            if !rd.messages().is_empty() {
                let msgs = rd.take_messages();
                note_snapshots(&msgs, &mut snapshots_sent);
                self.actions.push(Action::Send(msgs));
            }
            let mut persist = Persist::default();
            let mut catch_up = None;
            if !rd.snapshot().is_empty() {
                let snap = rd.snapshot().clone();
                self.raw.mut_store().apply_snapshot(snap.clone())?;
                catch_up = self.on_snapshot_received(&snap)?;
                persist.conf_state = Some(snap.get_metadata().get_conf_state().clone());
                persist.snapshot = Some(snap);
            }
            let committed = rd.take_committed_entries();
            if !rd.entries().is_empty() {
                self.raw.mut_store().append(rd.entries())?;
                persist.entries = rd.take_entries();
            }
            if let Some(hs) = rd.hs() {
                self.raw.mut_store().set_hard_state(hs.clone());
                persist.hard_state = Some(hs.clone());
            }
            if !persist.is_empty() {
                self.actions.push(Action::Persist(persist));
            }
            // The snapshot is durable before the ledger is brought up to it.
            if let Some(block) = catch_up {
                self.actions.push(Action::CatchUp { block });
            }
            // Entries committed in this Ready were persisted by earlier ones (raft-rs hands out
            // only persisted entries as committed), so they can be applied now.
            self.apply(committed)?;
            if !rd.persisted_messages().is_empty() {
                let msgs = rd.take_persisted_messages();
                note_snapshots(&msgs, &mut snapshots_sent);
                self.actions.push(Action::Send(msgs));
            }
            let mut light = self.raw.advance(rd);
            if let Some(commit) = light.commit_index() {
                self.raw.mut_store().set_commit(commit);
                let hs = self.raw.store().hard_state().clone();
                self.actions.push(Action::Persist(Persist {
                    hard_state: Some(hs),
                    ..Default::default()
                }));
            }
            if !light.messages().is_empty() {
                let msgs = light.take_messages();
                note_snapshots(&msgs, &mut snapshots_sent);
                self.actions.push(Action::Send(msgs));
            }
            self.apply(light.take_committed_entries())?;
            self.raw.advance_apply();
            self.push_conf_change()?;
            // Blocks applied: room in the pipeline for what gathered meanwhile.
            self.cut_adaptively();
            // As Fabric does, a snapshot handed to the transport counts as delivered: the
            // follower's progress leaves Snapshot state for Probe. Without this a snapshot lost
            // on the way (dropped from a full queue, connection down) would leave the leader
            // waiting for it forever and the follower never caught up; with it, the next probe
            // finds the follower still behind and a new snapshot goes out.
            for to in snapshots_sent {
                self.raw.report_snapshot(to, SnapshotStatus::Finish);
            }
            self.observe_role();
        }
        self.releasable = self.raw.raft.raft_log.applied;
        Ok(())
    }

    fn observe_role(&mut self) {
        let role = self.raw.raft.state;
        let leader = self.raw.raft.leader_id;
        if leader != self.leader {
            if leader != 0 {
                self.leader_changes += 1;
                tracing::info!(channel = %self.channel, leader, term = self.raw.raft.term, "raft leader changed");
            } else {
                tracing::info!(channel = %self.channel, "raft leader lost");
            }
            self.leader = leader;
        }
        if role == self.role {
            return;
        }
        let was_leader = self.role == StateRole::Leader;
        self.role = role;
        self.draining = None;
        self.active_seen = (Vec::new(), 0);
        self.promotion_floor.clear();
        if role == StateRole::Leader {
            self.led_since = self.ticks;
            // Build on the last block only after every entry of earlier terms is applied: the
            // leader's own empty entry marks that point.
            self.sync_index = Some(self.raw.raft.raft_log.last_index());
            self.created = (self.last.number, self.last.header_hash);
            self.check_synced();
        } else if was_leader {
            // Fabric's becomeFollower: drop the pending batch, forget in-flight bookkeeping.
            let _ = self.cutter.cut();
            self.rotated_self = false;
            self.config_inflight = false;
            self.sync_index = None;
            self.created = (self.last.number, self.last.header_hash);
        }
    }

    fn check_synced(&mut self) {
        if let Some(idx) = self.sync_index
            && self.catching_up.is_none()
            && self.processed_index >= idx
        {
            self.sync_index = None;
            self.created = (self.last.number, self.last.header_hash);
            self.conf_change_tried = None;
        }
    }

    fn apply(&mut self, entries: Vec<Entry>) -> Result<(), CoreError> {
        if self.catching_up.is_some() {
            self.deferred.extend(entries);
            return Ok(());
        }
        for e in entries {
            if self.evicted {
                break;
            }
            if e.index <= self.processed_index {
                // Blocks are applied once; conf changes are replayed (each adds or removes one
                // ID, and IDs are never reused, so replaying them in order over the membership
                // ends where it started): a node that joined a running channel starts from the
                // consenter IDs of its last block and learns the rest this way, as in Fabric.
                if e.get_entry_type() == EntryType::EntryConfChange
                    && let Ok(cc) = ConfChange::parse_from_bytes(&e.data)
                {
                    self.apply_conf_change(&cc)?;
                }
                continue;
            }
            match e.get_entry_type() {
                EntryType::EntryNormal if e.data.is_empty() => {}
                EntryType::EntryNormal => self.apply_block(&e)?,
                EntryType::EntryConfChange => {
                    let cc = ConfChange::parse_from_bytes(&e.data).map_err(|err| {
                        CoreError::BadEntry {
                            index: e.index,
                            reason: err.to_string(),
                        }
                    })?;
                    self.apply_conf_change(&cc)?;
                    self.snapshot_for_new_voter(e.index, &cc)?;
                }
                EntryType::EntryConfChangeV2 => {
                    let cc = ConfChangeV2::parse_from_bytes(&e.data).map_err(|err| {
                        CoreError::BadEntry {
                            index: e.index,
                            reason: err.to_string(),
                        }
                    })?;
                    let cs = self.raw.apply_conf_change(&cc)?;
                    self.record_conf_state(cs)?;
                }
            }
            self.processed_index = e.index;
        }
        self.check_synced();
        Ok(())
    }

    fn apply_conf_change(&mut self, cc: &ConfChange) -> Result<(), CoreError> {
        // Ordo adds as a learner only a node outside the group, so a learner conf change for a
        // voter can only be met when replaying the log over a joining node's assumed membership
        // (see `Start::Join`): applied, it would demote the voter, and could leave no voter.
        if cc.get_change_type() == ConfChangeType::AddLearnerNode
            && self.raw.raft.prs().conf().voters().contains(cc.node_id)
        {
            return Ok(());
        }
        let before = (self.voters(), self.learners());
        let cs = self.raw.apply_conf_change(cc)?;
        self.record_conf_state(cs)?;
        let after = (self.voters(), self.learners());
        if before != after {
            tracing::info!(channel = %self.channel, node = cc.node_id, change = ?cc.get_change_type(), voters = ?after.0, learners = ?after.1, "applied a raft configuration change");
            self.conf_change_tried = None;
            self.promotion_floor.retain(|id, _| after.1.contains(id));
        }
        if cc.get_change_type() == ConfChangeType::RemoveNode && cc.node_id == self.raw.raft.id {
            tracing::info!(channel = %self.channel, "this node was removed from the channel's raft group");
            self.evict();
        }
        Ok(())
    }

    fn record_conf_state(&mut self, cs: ConfState) -> Result<(), CoreError> {
        debug_assert!(!cs.voters.is_empty(), "a membership without voters");
        self.raw.mut_store().set_conf_state(cs.clone());
        self.actions.push(Action::Persist(Persist {
            conf_state: Some(cs),
            ..Default::default()
        }));
        Ok(())
    }

    fn apply_block(&mut self, e: &Entry) -> Result<(), CoreError> {
        debug_assert!(
            e.index > self.applied_index,
            "entry {} applied again (last applied {})",
            e.index,
            self.applied_index
        );
        // Decoding from the entry's `Bytes` makes the envelopes slices of it instead of copies.
        let block = Block::decode(e.data.clone()).map_err(|err| CoreError::BadEntry {
            index: e.index,
            reason: err.to_string(),
        })?;
        let Some(header) = block.header.as_ref() else {
            return Err(CoreError::BadEntry {
                index: e.index,
                reason: "block without header".into(),
            });
        };
        if header.number == self.last.number && header_hash(header) == self.last.header_hash {
            // The block the ledger already holds. Fabric stamps a consenter-changing config
            // block with the raft index of the block before it, so after a restart on such a
            // block (pulled from a Fabric orderer) its entry is applied again; Fabric skips
            // it, and so does this, having checked it is the very same block.
            debug_assert!(self.last.metadata.raft_index < e.index);
            self.last.metadata.raft_index = e.index;
            self.applied_index = e.index;
            return Ok(());
        }
        if header.number != self.last.number + 1
            || header.previous_hash.as_ref() != self.last.header_hash.as_slice()
        {
            return Err(CoreError::Fork {
                number: header.number,
                index: e.index,
                last: self.last.number,
            });
        }
        let config = is_config_block(&block);
        if config {
            self.apply_membership(&block, e.index)?;
        }
        self.last.number = header.number;
        self.last.header_hash = header_hash(header);
        self.last.metadata.raft_index = e.index;
        self.applied_index = e.index;
        if config {
            self.config_inflight = false;
        }
        self.actions.push(Action::WriteBlock {
            block,
            metadata: self.last.metadata.clone(),
            config,
        });
        self.since_snapshot += e.data.len() as u64;
        let interval = match self.options.snapshot_interval_size {
            0 => DEFAULT_SNAPSHOT_INTERVAL_SIZE,
            n => n,
        };
        if self.since_snapshot >= interval {
            self.since_snapshot = 0;
            let cs = self.raw.store().conf_state().clone();
            let compact_to = e.index.saturating_sub(SNAPSHOT_CATCH_UP_ENTRIES);
            let snapshot =
                self.raw
                    .mut_store()
                    .take_snapshot(e.index, cs, e.data.to_vec(), compact_to)?;
            self.actions.push(Action::Snapshot {
                snapshot,
                compact_to,
            });
        }
        Ok(())
    }

    /// A committed config block: the consenter metadata it and the next blocks carry, and what
    /// the Raft group must do (the leader proposes it once the block is applied).
    fn apply_membership(&mut self, block: &Block, index: u64) -> Result<(), CoreError> {
        let bad = |reason: String| CoreError::BadEntry { index, reason };
        let certs = (self.consenters_of)(block).map_err(|e| bad(e.to_string()))?;
        let change = membership::compute(&self.last.metadata, &self.consenters, &certs)
            .map_err(|e| bad(e.to_string()))?;
        let number = block.header.as_ref().map_or(0, |h| h.number);
        if let Some(cc) = change.conf_change {
            tracing::info!(channel = %self.channel, block = number, change = ?cc, "config block changes the consenters: pausing ordering until the raft configuration follows");
        }
        let me = self.raw.raft.id;
        self.rotated_self = false;
        if let Some(id) = change.rotated {
            tracing::info!(channel = %self.channel, block = number, node = id, "config block rotates the TLS certificate of node {id}");
            self.rotated_self = id == me;
        }
        self.last.metadata = change.metadata;
        self.consenters = certs;
        if !self.last.metadata.consenter_ids.contains(&me) && !self.leaving {
            tracing::info!(channel = %self.channel, block = number, "config block removes this node from the consenters");
            self.leaving = true;
            self.leader_silent_ticks = 0;
        }
        self.conf_change_tried = None;
        Ok(())
    }
}
