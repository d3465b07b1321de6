//! What the engine asks of the world ([`Io`]): the durable Raft state, the ledger, signing, the
//! transport to the other consenters, the block puller, and the runtime's observers. The node
//! implements it over files, sockets and tokio tasks; the simulator over its simulated disks
//! and network. Calls are synchronous and in the engine's order; what takes long (a pull, the
//! eviction check) is only started here, and its result comes back as an engine input.

use bytes::Bytes;
use ordo_proto::common::{Block, BlockHeader};
use ordo_raft::chain::{Persist, RaftMessage};
use raft::eraftpb::Snapshot;

use crate::config::ConfigView;
use crate::consenter::Member;

/// An I/O failure, as the implementation reports it (a WAL, ledger or signing error).
pub type IoError = Box<dyn std::error::Error + Send + Sync>;

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

/// What happened, for the runtime's observers (metrics, waiters, the channel's published
/// config); nothing here may fail or change what the engine does.
#[derive(Debug)]
pub enum Event<'a, C> {
    /// A block was appended to the ledger (committed here, or pulled while catching up).
    BlockWritten { block: &'a Block, pulled: bool },
    /// A config block was written and is now the channel's config.
    ConfigApplied { number: u64, config: &'a C },
    /// A snapshot was taken or received, whose block is `block`.
    Snapshot { block: u64 },
    /// The ledger must be brought up to block `target` from the other orderers.
    CatchUpTarget { target: u64 },
    /// The leader cut a batch that took `fill_ns` to fill.
    BatchCut { fill_ns: u64 },
    /// The engine dropped an envelope after accepting it (no longer valid, leadership moved).
    Dropped,
    /// A normal or config envelope was proposed.
    Proposed { config: bool },
}

/// The world, as the engine sees it.
pub trait Io {
    type Config: ConfigView;

    /// Makes Raft state durable (fsync) before returning.
    fn persist(&mut self, p: &Persist) -> Result<(), IoError>;
    /// Stores a snapshot taken here and drops the log up to `compact_to`.
    fn save_snapshot(&mut self, snapshot: &Snapshot, compact_to: u64) -> Result<(), IoError>;

    /// The number of blocks in the ledger.
    fn ledger_height(&self) -> u64;
    fn ledger_block(&self, number: u64) -> Result<Block, IoError>;
    /// Appends a block; with `synced`, it is on stable storage when this returns.
    fn append(&mut self, block: &Block, synced: bool) -> Result<(), IoError>;
    /// Puts every appended block on stable storage.
    fn sync_ledger(&mut self) -> Result<(), IoError>;

    /// Adds LAST_CONFIG, the consenter metadata and this node's signature to a block.
    fn sign(
        &self,
        block: &mut Block,
        last_config: u64,
        consenter_metadata: &[u8],
    ) -> Result<(), IoError>;
    /// Checks again, against a config that changed since, an envelope validated against an
    /// older one (Fabric's leader does); an error drops it.
    fn revalidate(&self, s: &Submission, config: &Self::Config) -> Result<(), IoError>;
    /// The public key of this node's server TLS certificate (how it finds itself in a config),
    /// if it has one.
    fn self_key(&self) -> Option<Vec<u8>>;

    /// Sends a Raft message to another consenter, with the leader's ActiveNodes when they
    /// changed for that consenter. Losses are Raft's to repair.
    fn send(&mut self, msg: RaftMessage, active_nodes: Option<&[u64]>);
    /// The consenters the transport must reach and accept.
    fn set_members(&mut self, members: &[Member]);

    /// Starts pulling the blocks after `prev` up to `target` from the orderers of `config`; each
    /// comes back through `ConsenterEngine::on_pulled`.
    fn start_pull(
        &mut self,
        prev: &BlockHeader,
        target: u64,
        config: &Self::Config,
    ) -> Result<(), IoError>;
    /// Raises the target of the pull under way.
    fn raise_pull(&mut self, target: u64);
    /// Stops the pull under way (it reached its target).
    fn stop_pull(&mut self);
    /// Starts fetching the channel's last config block, and the height of the orderer it comes
    /// from, from the orderers of `config`; the answer comes back through
    /// `ConsenterEngine::on_probe`.
    fn start_probe(&mut self, config: &Self::Config);

    /// Tells the runtime what happened.
    fn event(&mut self, e: Event<'_, Self::Config>);
}
