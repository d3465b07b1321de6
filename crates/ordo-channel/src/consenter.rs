//! The engine of a channel this node is a consenter of: the Raft core, and every decision the
//! runtime around it takes (see the crate doc). Each input — a tick, a Raft message, a
//! submission, the batch timer, a pulled block, a suspicion, the answer to an eviction check —
//! is handled to the end before the call returns: the core's actions carried out in order
//! through [`Io`], the transport told of any change of members.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use ordo_ledger::block::{consenter_metadata, header_hash, is_config_block};
use ordo_proto::common::Block;
use ordo_proto::etcdraft::BlockMetadata;
use ordo_raft::blockcutter::Pending;
use ordo_raft::chain::{
    Action, ChainCore, ChainParams, ChainStatus, ConsentersOf, LastBlock, Proposal, RaftMessage,
    Start, SubmitError,
};
use ordo_raft::storage::ColdEntries;
use prost::Message as _;

use crate::config::ConfigView;
use crate::error::EngineError;
use crate::io::{Event, Io, IoError, Submission};

/// A consenter of the channel: its Raft ID and its entry in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub host: String,
    pub port: u32,
    pub client_tls_cert: Bytes,
    pub server_tls_cert: Bytes,
}

/// The consenters of `cfg` with the Raft IDs of `metadata` (the i-th ID is the i-th consenter's,
/// Fabric's pairing). Empty if the two disagree in length (a consenter change not applied yet).
pub fn members<C: ConfigView>(cfg: &C, metadata: &BlockMetadata) -> Vec<Member> {
    let consenters = cfg.consenters();
    if consenters.len() != metadata.consenter_ids.len() {
        return Vec::new();
    }
    consenters
        .into_iter()
        .zip(&metadata.consenter_ids)
        .map(|(c, id)| Member {
            id: *id,
            host: c.host,
            port: c.port,
            client_tls_cert: c.client_tls_cert,
            server_tls_cert: c.server_tls_cert,
        })
        .collect()
}

/// The block the ledger ends with, with its consenter metadata (see [`last_block_of`]).
pub fn tip<I: Io>(io: &I, config: &I::Config) -> Result<LastBlock, EngineError> {
    let height = io.ledger_height();
    let number = height.saturating_sub(1);
    let tip = io.ledger_block(number).map_err(EngineError::Ledger)?;
    last_block_of(&tip, height, config)
}

/// `tip`, the last of a ledger of `height` blocks, with its consenter metadata (for a genesis
/// block: IDs 1..N in config order, as Fabric assigns them).
pub fn last_block_of<C: ConfigView>(
    tip: &Block,
    height: u64,
    config: &C,
) -> Result<LastBlock, EngineError> {
    let header = tip
        .header
        .as_ref()
        .ok_or(EngineError::NoHeader(height.saturating_sub(1)))?;
    let metadata = if height == 1 {
        let n = config.consenters().len() as u64;
        BlockMetadata {
            consenter_ids: (1..=n).collect(),
            next_consenter_id: n + 1,
            raft_index: 0,
        }
    } else {
        block_metadata(tip)?
    };
    Ok(LastBlock {
        number: header.number,
        header_hash: header_hash(header),
        metadata,
    })
}

/// The consenter metadata a block carries.
fn block_metadata(block: &Block) -> Result<BlockMetadata, EngineError> {
    let number = block.header.as_ref().map_or(0, |h| h.number);
    let bad = |reason: String| EngineError::ConsenterMetadata { number, reason };
    let raw = consenter_metadata(block).map_err(|e| bad(e.to_string()))?;
    BlockMetadata::decode(raw).map_err(|e| bad(e.to_string()))
}

/// The consenters with IDs `wanted` as the config blocks before config block `from` give them
/// (each config block's consenters paired with its own consenter IDs), newest first.
fn earlier_members<I: Io>(io: &I, from: u64, wanted: &[u64]) -> Vec<Member> {
    let mut found: Vec<Member> = Vec::new();
    let mut config_number = from;
    while config_number > 0 && found.len() < wanted.len() {
        let Ok(before) = io.ledger_block(config_number - 1) else {
            break;
        };
        let previous = if config_number == 1 {
            0
        } else {
            match ordo_ledger::block::last_config_index(&before) {
                Ok(n) if n < config_number => n,
                _ => break,
            }
        };
        let Ok(block) = io.ledger_block(previous) else {
            break;
        };
        let Ok(cfg) = I::Config::from_block(&block) else {
            break;
        };
        let md = if previous == 0 {
            let n = cfg.consenters().len() as u64;
            BlockMetadata {
                consenter_ids: (1..=n).collect(),
                next_consenter_id: n + 1,
                raft_index: 0,
            }
        } else {
            match block_metadata(&block) {
                Ok(md) => md,
                Err(_) => break,
            }
        };
        for m in members(&cfg, &md) {
            if wanted.contains(&m.id) && !found.iter().any(|f| f.id == m.id) {
                found.push(m);
            }
        }
        config_number = previous;
    }
    found
}

/// Where this node stands in a config block learnt from the other orderers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// A consenter under this chain's Raft ID.
    Member,
    /// Not a consenter.
    Removed,
    /// A consenter under another Raft ID: removed, then added back.
    ReAdded(u64),
}

/// What makes a consenter wonder whether it was removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suspicion {
    /// Another consenter refused it as unauthorized: that consenter's Raft group no longer has
    /// it, so a removal there is in force.
    Refused,
    /// Another consenter addressed it under another Raft ID: it was removed, then added back.
    AddressedUnderAnotherId,
    /// No leader for `EvictionSuspicion`: a config without this node is not enough then (the
    /// conf change removing it may not be applied yet, and the other voter may need this node
    /// to elect the leader that applies it) — a block ordered after it is.
    Leaderless,
    /// A node that is not among this node's members sent it a Raft message: this node's config
    /// may be behind the channel's (the sender was added since, and may even lead). The check
    /// tells, and the members of a newer config that still lists this node are then accepted,
    /// so that their leader can bring this node up to date.
    UnknownSender,
}

impl Suspicion {
    fn proves_removal(self) -> bool {
        matches!(
            self,
            Suspicion::Refused | Suspicion::AddressedUnderAnotherId
        )
    }

    fn reason(self) -> &'static str {
        match self {
            Suspicion::Refused => "a consenter refused this node as unauthorized",
            Suspicion::AddressedUnderAnotherId => {
                "a consenter addressed this node under another Raft ID"
            }
            Suspicion::Leaderless => "no leader for longer than the eviction suspicion threshold",
            Suspicion::UnknownSender => "a node this config does not know sent a Raft message",
        }
    }
}

/// Everything needed to start the engine.
pub struct EngineParams<C> {
    pub channel: String,
    /// This node's Raft ID in the channel.
    pub id: u64,
    /// The config in force at the ledger's tip, and the number of its config block.
    pub config: C,
    pub last_config: u64,
    /// The ledger's last block (see [`tip`]).
    pub last_block: LastBlock,
    /// Fresh, join or restart (see [`ordo_raft::chain::Start`]).
    pub start: Start,
    /// Where released Raft entries are read back from (the WAL), if anywhere.
    pub cold_entries: Option<Arc<dyn ColdEntries>>,
    /// Local choices (`Consensus.FabricBlockCutting`, `Consensus.FabricMembershipChanges`).
    pub adaptive_cutting: bool,
    pub learner_first: bool,
    /// A fixed election timeout range in ticks (a simulation fixes it per node).
    pub election_timeout: Option<(usize, usize)>,
    /// Ticks without a leader before the eviction check (`Consensus.EvictionSuspicion`).
    pub eviction_suspicion_ticks: u64,
    /// The fewest ticks between two eviction checks (Fabric's `DefaultLeaderlessCheckInterval`).
    pub eviction_check_interval_ticks: u64,
    /// A deliberately broken engine, for the simulator to prove its checker; `None` always on a
    /// node.
    pub bug: Option<InjectedBug>,
    /// The consenters preferred as leader, as `host:port` the channel config names them
    /// (`Consensus.PreferredLeaders`; see `ChainCore::set_preferred_leaders`).
    pub preferred_leaders: Vec<String>,
}

/// A deliberately broken engine: the simulator runs seeds with one to show that its checker
/// catches what the rule it breaks protects. The node never sets one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedBug {
    /// The WAL lets entries go (a snapshot taken or received) before the blocks appended
    /// unsynced from them are synced: a crash can then lose committed blocks everywhere.
    CompactBeforeLedgerSync,
}

/// A catch-up under way: blocks up to `target` are being pulled.
struct CatchUp {
    target: u64,
    /// The header hash of the snapshot's block: the pulled one must match it.
    target_hash: [u8; 32],
    pulled: u64,
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

/// The engine of a consenter; see the module doc.
pub struct ConsenterEngine<C: ConfigView> {
    name: String,
    id: u64,
    core: ChainCore,
    config: C,
    last_config: u64,
    /// The consenters of the config in force (`members` adds removed ones still in the group).
    config_members: Vec<Member>,
    /// Whom the transport reaches and accepts.
    members: Vec<Member>,
    /// The consenters of a newer config than this node's, learnt from the other orderers (see
    /// [`Suspicion::UnknownSender`]), and that config block's number: accepted until this
    /// node's own config reaches it.
    ahead: Option<(u64, Vec<Member>)>,
    /// The Raft group (voters and learners) when `members` was last computed.
    group: Vec<u64>,
    /// The ActiveNodes last sent to each follower.
    active_sent: HashMap<u64, Vec<u64>>,
    catch_up: Option<CatchUp>,
    ticks: u64,
    /// Ticks in a row without a known leader.
    leaderless_ticks: u64,
    eviction_suspicion_ticks: u64,
    eviction_check_interval_ticks: u64,
    /// The eviction check under way, and whether what started it proves a removal.
    probe: Option<bool>,
    last_probe_tick: Option<u64>,
    /// This node is no longer a consenter under its Raft ID: the runtime stops the engine and
    /// follows the channel, up to the given config block (learnt from the others) if any.
    evicted: Option<Option<Block>>,
    bug: Option<InjectedBug>,
    /// See [`EngineParams::preferred_leaders`].
    preferred_leaders: Vec<String>,
}

impl<C: ConfigView> std::fmt::Debug for ConsenterEngine<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsenterEngine")
            .field("channel", &self.name)
            .field("id", &self.id)
            .field("status", &self.core.status())
            .finish_non_exhaustive()
    }
}

impl<C: ConfigView> ConsenterEngine<C> {
    /// Builds the core and carries out its first actions (the bootstrap membership made
    /// durable; a catch-up a restart left unfinished).
    pub fn start<I: Io<Config = C>>(p: EngineParams<C>, io: &mut I) -> Result<Self, EngineError> {
        let settings = p
            .config
            .raft_settings()
            .map_err(|source| EngineError::Config {
                number: p.last_config,
                source,
            })?;
        let mut options = settings.options;
        options.adaptive_cutting = p.adaptive_cutting;
        options.learner_first = p.learner_first;
        options.election_timeout = p.election_timeout;
        let consenters_of: ConsentersOf = Arc::new(|block: &Block| {
            C::from_block(block)
                .map(|c| c.consenter_certs())
                .map_err(|e| e.into())
        });
        let config_members = members(&p.config, &p.last_block.metadata);
        let core = ChainCore::new(ChainParams {
            channel: p.channel.clone(),
            id: p.id,
            options,
            limits: settings.limits,
            consenters: p.config.consenter_certs(),
            last_block: p.last_block,
            consenters_of,
            start: p.start,
        })?;
        let mut engine = ConsenterEngine {
            name: p.channel,
            id: p.id,
            core,
            config: p.config,
            last_config: p.last_config,
            members: config_members.clone(),
            config_members,
            ahead: None,
            group: Vec::new(),
            active_sent: HashMap::new(),
            catch_up: None,
            ticks: 0,
            leaderless_ticks: 0,
            eviction_suspicion_ticks: p.eviction_suspicion_ticks.max(1),
            eviction_check_interval_ticks: p.eviction_check_interval_ticks,
            probe: None,
            last_probe_tick: None,
            evicted: None,
            bug: p.bug,
            preferred_leaders: p.preferred_leaders,
        };
        engine.prefer();
        // A node the config removed may still be in the Raft group (its removal not applied
        // yet) and be needed for a quorum: the transport must reach it after a restart too, at
        // the address an earlier config gives it.
        let config_ids: Vec<u64> = engine.config_members.iter().map(|m| m.id).collect();
        let removed: Vec<u64> = engine
            .core
            .members()
            .into_iter()
            .filter(|id| !config_ids.contains(id))
            .collect();
        if !removed.is_empty() && !engine.config_members.is_empty() {
            let earlier = earlier_members(io, engine.last_config, &removed);
            engine.members.extend(earlier);
        }
        io.set_members(&engine.members);
        // The bootstrap membership is durable before anything else happens (the first
        // action); only then may the log let go of entries into the cold source.
        engine.settle(io)?;
        if let Some(cold) = p.cold_entries {
            engine.core.set_cold_entries(cold);
        }
        Ok(engine)
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Tells the core the Raft IDs of the preferred leaders among the config's consenters.
    fn prefer(&mut self) {
        if self.preferred_leaders.is_empty() {
            return;
        }
        let ids = self
            .config_members
            .iter()
            .filter(|m| {
                self.preferred_leaders
                    .iter()
                    .any(|p| *p == format!("{}:{}", m.host, m.port))
            })
            .map(|m| m.id)
            .collect();
        self.core.set_preferred_leaders(ids);
    }

    /// The config in force, and the number of its config block.
    pub fn config(&self) -> (&C, u64) {
        (&self.config, self.last_config)
    }

    pub fn status(&self) -> ChainStatus {
        self.core.status()
    }

    /// Whom the transport reaches and accepts.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Whether the leader takes an envelope now (the runtime reads submissions only then,
    /// which is how MaxInflightBlocks pushes back on clients).
    pub fn accepting(&self) -> bool {
        self.core.accepting()
    }

    /// When the batch timer fires (the time base of `submit` and `on_time`), if it is armed.
    pub fn deadline(&self) -> Option<u64> {
        self.core.deadline()
    }

    /// The core, for what only tests and the simulator ask of it.
    pub fn core(&self) -> &ChainCore {
        &self.core
    }

    /// `Some` once this node is no longer a consenter under its Raft ID: the runtime stops the
    /// engine and follows the channel instead — up to the given config block (learnt from the
    /// other orderers, not in this ledger yet) when there is one.
    pub fn evicted(&self) -> Option<Option<&Block>> {
        self.evicted.as_ref().map(Option::as_ref)
    }

    /// One Raft tick (the channel's TickInterval).
    pub fn tick<I: Io<Config = C>>(&mut self, io: &mut I) -> Result<(), EngineError> {
        self.ticks += 1;
        self.guarded(|c| c.tick())??;
        if self.core.status().leader != 0 {
            self.leaderless_ticks = 0;
        } else {
            self.leaderless_ticks += 1;
            if self.leaderless_ticks >= self.eviction_suspicion_ticks {
                self.suspect(io, Suspicion::Leaderless);
            }
        }
        self.settle(io)
    }

    /// A Raft message from another consenter, with the ActiveNodes its leader piggybacked.
    pub fn step<I: Io<Config = C>>(
        &mut self,
        io: &mut I,
        msg: RaftMessage,
        active_nodes: Option<Vec<u64>>,
    ) -> Result<(), EngineError> {
        if let Some(active) = active_nodes {
            self.core.set_active_nodes(msg.from, active);
        }
        self.guarded(|c| c.step(msg))??;
        self.settle(io)
    }

    /// The node is stopping: see [`ChainCore::hand_off`] (a leader hands leadership over first).
    pub fn hand_off<I: Io<Config = C>>(&mut self, io: &mut I) -> Result<(), EngineError> {
        self.guarded(|c| c.hand_off())??;
        self.settle(io)
    }

    /// An envelope Broadcast validated; `now_ns` is the runtime's time base. An envelope that
    /// is no longer valid under a config that changed since, or that finds this node no longer
    /// leading, is dropped as in Fabric (its client already got SUCCESS).
    pub fn submit<I: Io<Config = C>>(
        &mut self,
        io: &mut I,
        s: Submission,
        now_ns: u64,
    ) -> Result<(), EngineError> {
        if s.config_seq < self.config.sequence()
            && let Err(e) = io.revalidate(&s, &self.config)
        {
            tracing::warn!(channel = %self.name, error = %e, "envelope dropped: no longer valid under the new config");
            io.event(Event::Dropped);
            return Ok(());
        }
        io.event(Event::Proposed { config: s.config });
        let proposal = if s.config {
            Proposal::Config(s.envelope)
        } else {
            Proposal::Normal(Pending {
                envelope: s.envelope,
                size: s.size,
            })
        };
        match self.guarded(|c| c.submit(proposal, now_ns))? {
            Ok(()) => {}
            Err(SubmitError::Halted(e)) => return Err(e.into()),
            Err(e) => {
                // Leadership moved between Broadcast's check and now; the envelope is lost as in
                // Fabric when a leader steps down with pending envelopes.
                tracing::warn!(channel = %self.name, error = %e, "envelope dropped");
                io.event(Event::Dropped);
            }
        }
        self.settle(io)
    }

    /// The batch timer, at `now_ns`.
    pub fn on_time<I: Io<Config = C>>(
        &mut self,
        io: &mut I,
        now_ns: u64,
    ) -> Result<(), EngineError> {
        self.guarded(|c| c.on_time(now_ns))??;
        self.settle(io)
    }

    /// A block the puller fetched (already checked by it: hash chain, signatures) while
    /// catching up: written, and at the target handed back to the core.
    pub fn on_pulled<I: Io<Config = C>>(
        &mut self,
        io: &mut I,
        block: Block,
    ) -> Result<(), EngineError> {
        let header = block.header.clone().ok_or(EngineError::NoHeader(0))?;
        let (number, hash) = (header.number, header_hash(&header));
        let metadata = block_metadata(&block)?;
        let config = is_config_block(&block);
        debug_assert!(
            self.catch_up.as_ref().is_some_and(|c| number <= c.target),
            "a pulled block {number} beyond or without a catch-up"
        );
        self.write_block(io, block, metadata, config, Durability::Ledger)?;
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
            return Err(EngineError::CatchUpMismatch(number));
        }
        tracing::info!(channel = %self.name, blocks = c.pulled, to = number, "caught up with the snapshot");
        self.catch_up = None;
        io.stop_pull();
        let last = tip(io, &self.config)?;
        let consenters = self.config.consenter_certs();
        self.guarded(|c| c.caught_up(last, consenters))??;
        self.settle(io)
    }

    /// Something suggests this node was removed: the channel's last config is fetched from the
    /// other orderers (at most once per eviction check interval), and [`Self::on_probe`]
    /// judges it.
    pub fn suspect<I: Io<Config = C>>(&mut self, io: &mut I, why: Suspicion) {
        if self.probe.is_some()
            || self
                .last_probe_tick
                .is_some_and(|t| self.ticks < t + self.eviction_check_interval_ticks)
        {
            return;
        }
        tracing::info!(channel = %self.name, reason = why.reason(), "checking whether this node was removed from the channel: fetching the channel's last config block from its orderers");
        io.start_probe(&self.config);
        self.probe = Some(why.proves_removal());
        self.last_probe_tick = Some(self.ticks);
    }

    /// The channel's last config block and the height of the orderer it came from (the answer
    /// to [`Self::suspect`]): a config that no longer has this node under its Raft ID ends this
    /// engine, and the node follows the channel from its own ledger up to that block and on
    /// (Fabric: halt, pull up to the eviction block, follow).
    pub fn on_probe<I: Io<Config = C>>(
        &mut self,
        io: &mut I,
        answer: Result<(Block, u64), IoError>,
    ) {
        let proven = self.probe.take().unwrap_or(false);
        let (block, height) = match answer {
            Ok(a) => a,
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
        match self.standing_in(&block, io.self_key().as_deref()) {
            Ok(Standing::Member) if number > self.last_config => {
                tracing::info!(channel = %self.name, block = number, raft_id = self.id, last_config = self.last_config, "this node's config is behind the channel's: accepting the consenters of config block {number} until its own config reaches it");
                let newer = C::from_block(&block).ok().zip(block_metadata(&block).ok());
                if let Some((cfg, md)) = newer {
                    self.ahead = Some((number, members(&cfg, &md)));
                    self.refresh_members(io);
                }
            }
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
                self.evicted = Some(Some(block));
            }
            Err(e) => {
                tracing::warn!(channel = %self.name, block = number, error = %e, "cannot check whether this node was removed from the channel");
            }
        }
    }

    /// Where this node stands in `block` (a config block).
    pub fn standing_in(
        &self,
        block: &Block,
        self_key: Option<&[u8]>,
    ) -> Result<Standing, EngineError> {
        let number = block.header.as_ref().map_or(0, |h| h.number);
        let cfg = C::from_block(block).map_err(|source| EngineError::Config { number, source })?;
        let md = block_metadata(block)?;
        // Raft IDs are never reused: a consenter with this chain's ID is this node, its
        // certificate perhaps rotated (and not reloaded here yet).
        if md.consenter_ids.contains(&self.id) {
            return Ok(Standing::Member);
        }
        let pos = self_key.and_then(|k| cfg.position_of(k));
        match pos.map(|p| md.consenter_ids.get(p)) {
            None => Ok(Standing::Removed),
            Some(Some(&id)) => Ok(Standing::ReAdded(id)),
            Some(None) => Err(EngineError::ConsenterMetadata {
                number,
                reason: "the consenter IDs do not match the consenters".into(),
            }),
        }
    }

    /// Runs `f` on the core; a panic in it (raft-rs's assertions) becomes an error that halts
    /// the channel, reported, instead of ending the runtime's task unseen.
    fn guarded<T>(&mut self, f: impl FnOnce(&mut ChainCore) -> T) -> Result<T, EngineError> {
        let core = &mut self.core;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(core))).map_err(|p| {
            EngineError::Panicked(
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".to_string()),
            )
        })
    }

    /// Carries out the core's actions, in order, until it has none left; then tells the
    /// transport if the Raft group changed.
    fn settle<I: Io<Config = C>>(&mut self, io: &mut I) -> Result<(), EngineError> {
        loop {
            let actions = self.core.take_actions();
            if actions.is_empty() {
                break;
            }
            for a in actions {
                self.perform(io, a)?;
            }
        }
        if self.core.members() != self.group {
            self.refresh_members(io);
        }
        Ok(())
    }

    fn perform<I: Io<Config = C>>(
        &mut self,
        io: &mut I,
        action: Action,
    ) -> Result<(), EngineError> {
        match action {
            Action::Persist(p) => {
                if p.snapshot.is_some() {
                    // The WAL is about to drop entries up to the leader's snapshot: the blocks
                    // appended unsynced from them must be on stable storage first.
                    self.sync_before_compaction(io)?;
                }
                io.persist(&p).map_err(EngineError::Wal)?;
            }
            Action::Send(msgs) => self.send(io, msgs),
            Action::WriteBlock {
                block,
                metadata,
                config,
            } => self.write_block(io, block, metadata, config, Durability::Wal)?,
            Action::Snapshot {
                snapshot,
                compact_to,
            } => {
                // The entries the snapshot lets go of are the only other copy of the blocks
                // appended unsynced since the last sync.
                self.sync_before_compaction(io)?;
                io.save_snapshot(&snapshot, compact_to)
                    .map_err(EngineError::Wal)?;
                if let Ok(b) = Block::decode(snapshot.get_data())
                    && let Some(h) = b.header
                {
                    io.event(Event::Snapshot { block: h.number });
                }
            }
            Action::BatchCut { fill_ns } => io.event(Event::BatchCut { fill_ns }),
            Action::CatchUp { block } => self.start_catch_up(io, &block)?,
            Action::Evicted => {
                tracing::info!(channel = %self.name, "this node was removed from the channel's consenters: it will follow the channel instead");
                if self.evicted.is_none() {
                    self.evicted = Some(None);
                }
            }
        }
        Ok(())
    }

    fn sync_before_compaction<I: Io<Config = C>>(&self, io: &mut I) -> Result<(), EngineError> {
        if self.bug == Some(InjectedBug::CompactBeforeLedgerSync) {
            return Ok(());
        }
        io.sync_ledger().map_err(EngineError::Ledger)
    }

    /// Raft messages to the other consenters. As Fabric's disseminator, the leader's
    /// ActiveNodes ride on the next message to each follower after they change.
    fn send<I: Io<Config = C>>(&mut self, io: &mut I, msgs: Vec<RaftMessage>) {
        let leading = self.core.status().is_leader;
        for m in msgs {
            let to = m.to;
            let active = self.core.active_nodes();
            let changed = leading && self.active_sent.get(&to).map(Vec::as_slice) != Some(active);
            if changed {
                let active = active.to_vec();
                io.send(m, Some(&active));
                self.active_sent.insert(to, active);
            } else {
                io.send(m, None);
            }
        }
    }

    /// Starts pulling the blocks up to the snapshot's `block`, or raises the target of the pull
    /// under way.
    fn start_catch_up<I: Io<Config = C>>(
        &mut self,
        io: &mut I,
        block: &Block,
    ) -> Result<(), EngineError> {
        let header = block.header.as_ref().ok_or(EngineError::NoHeader(0))?;
        let (target, target_hash) = (header.number, header_hash(header));
        io.event(Event::CatchUpTarget { target });
        if let Some(c) = &mut self.catch_up {
            if target > c.target {
                tracing::info!(channel = %self.name, target, "a newer snapshot: catching up further");
                c.target = target;
                c.target_hash = target_hash;
                io.raise_pull(target);
            }
            return Ok(());
        }
        let height = io.ledger_height();
        let last = height.saturating_sub(1);
        let prev = io
            .ledger_block(last)
            .map_err(EngineError::Ledger)?
            .header
            .ok_or(EngineError::NoHeader(last))?;
        tracing::info!(channel = %self.name, from = height, to = target, "the leader's snapshot is ahead of this ledger: pulling the missing blocks from the channel's orderers");
        io.start_pull(&prev, target, &self.config)
            .map_err(EngineError::Pull)?;
        self.catch_up = Some(CatchUp {
            target,
            target_hash,
            pulled: 0,
        });
        Ok(())
    }

    /// Fabric's `BlockWriter`: LAST_CONFIG, consenter metadata and the node's signature, then
    /// the ledger; a config block is checked and becomes the channel config.
    fn write_block<I: Io<Config = C>>(
        &mut self,
        io: &mut I,
        mut block: Block,
        metadata: BlockMetadata,
        config: bool,
        durability: Durability,
    ) -> Result<(), EngineError> {
        let number = block.header.as_ref().map_or(0, |h| h.number);
        debug_assert_eq!(
            number,
            io.ledger_height(),
            "blocks reach the ledger in order, without gaps"
        );
        let mut new_config = None;
        if config {
            let next =
                C::from_block(&block).map_err(|source| EngineError::Config { number, source })?;
            if next.sequence() <= self.config.sequence() {
                return Err(EngineError::StaleConfig {
                    number,
                    next: next.sequence(),
                    current: self.config.sequence(),
                });
            }
            self.last_config = number;
            new_config = Some(next);
        }
        io.sign(&mut block, self.last_config, &metadata.encode_to_vec())
            .map_err(|source| EngineError::Sign { number, source })?;
        // Config blocks are synced even when the WAL holds them: a restart decides from the
        // ledger's last config whether this node is a consenter at all.
        let synced = durability == Durability::Ledger || config;
        io.append(&block, synced).map_err(EngineError::Ledger)?;
        io.event(Event::BlockWritten {
            block: &block,
            pulled: durability == Durability::Ledger,
        });
        if let Some(next) = new_config {
            let settings = next
                .raft_settings()
                .map_err(|source| EngineError::Config { number, source })?;
            let later = self.config.restart_only_changes(&next);
            if !later.is_empty() {
                tracing::warn!(channel = %self.name, block = number, changes = %later.join(", "), "Raft options changed: they take effect when this node restarts (only SnapshotIntervalSize applies at once, as in Fabric)");
            }
            self.core
                .config_applied(settings.limits, settings.options.snapshot_interval_size);
            self.config_members = members(&next, &metadata);
            self.prefer();
            self.config = next;
            if self.ahead.as_ref().is_some_and(|(n, _)| *n <= number) {
                self.ahead = None;
            }
            self.refresh_members(io);
            tracing::info!(channel = %self.name, block = number, "applied a new channel config");
            io.event(Event::ConfigApplied {
                number,
                config: &self.config,
            });
        }
        Ok(())
    }

    /// The consenters the transport talks to and accepts: those of the config, plus a removed
    /// one until the Raft group has removed it too (its acknowledgements may be what commits
    /// its removal; Fabric likewise reconfigures the transport only once the conf change is
    /// applied).
    fn refresh_members<I: Io<Config = C>>(&mut self, io: &mut I) {
        let group = self.core.members();
        if self.config_members.is_empty() {
            return;
        }
        let mut now = self.config_members.clone();
        for m in &self.members {
            if group.contains(&m.id) && !now.iter().any(|n| n.id == m.id) {
                now.push(m.clone());
            }
        }
        for m in self.ahead.iter().flat_map(|(_, a)| a) {
            if !now.iter().any(|n| n.id == m.id) {
                now.push(m.clone());
            }
        }
        self.group = group;
        debug_assert!(
            now.iter()
                .enumerate()
                .all(|(i, m)| now[..i].iter().all(|n| n.id != m.id)),
            "a Raft ID among the members twice"
        );
        if self.members != now {
            self.members = now;
            io.set_members(&self.members);
        }
    }
}
