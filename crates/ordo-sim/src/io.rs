//! The engine's world in the simulation ([`SimIo`]): a node's simulated disk and ledger, and what
//! the engine asks of the network, the puller and the eviction check, recorded as [`Effects`]
//! that the world carries out once the engine's call returns (the network is a queue of timed
//! events, so nothing is lost by delaying a send until then).

use bytes::Bytes;
use ordo_channel::{Event, Io, IoError, Member, Submission};
use ordo_ledger::block::{
    consenter_metadata, put_unsigned_metadata, verify_data_hash, verify_link,
};
use ordo_proto::common::{Block, BlockHeader};
use ordo_proto::etcdraft::BlockMetadata;
use ordo_raft::chain::{Persist, RaftMessage};
use prost::Message as _;
use raft::eraftpb::Snapshot;

use crate::config::SimConfig;
use crate::disk::Disk;
use crate::world::Bug;

/// What an engine call asked of the world beyond the node's disk and ledger.
#[derive(Debug, Default)]
pub struct Effects {
    /// Raft messages to send, with the ActiveNodes riding on them.
    pub sends: Vec<(RaftMessage, Option<Vec<u64>>)>,
    /// Blocks appended to the ledger, in order, and whether they came from the puller.
    pub appended: Vec<(Block, bool)>,
    /// The pull the engine wants: a new target (started or raised), or stopped.
    pub pull: Option<PullRequest>,
    /// The engine asked for the channel's last config block from the others.
    pub probe: bool,
    pub snapshots_taken: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullRequest {
    To(u64),
    Stop,
}

/// One node's view of the world during an engine call.
pub struct SimIo<'a> {
    pub slot: usize,
    pub disk: &'a mut Disk,
    /// The ledger: each block with the consenter metadata it carries.
    pub ledger: &'a mut Vec<(Block, BlockMetadata)>,
    /// How many blocks of `ledger` are synced (a crash keeps these and a random part of the
    /// rest).
    pub ledger_synced: &'a mut usize,
    pub bug: Option<Bug>,
    pub fx: &'a mut Effects,
}

impl SimIo<'_> {
    /// The disk's fsync, unless the injected bug keeps it for the tick.
    fn sync_wal(&mut self) -> Result<(), IoError> {
        if self.bug == Some(Bug::SyncOnTickOnly) {
            return Ok(());
        }
        Ok(self.disk.sync()?)
    }
}

impl Io for SimIo<'_> {
    type Config = SimConfig;

    fn persist(&mut self, p: &Persist) -> Result<(), IoError> {
        self.disk.persist(p.clone());
        self.sync_wal()
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot, compact_to: u64) -> Result<(), IoError> {
        self.fx.snapshots_taken += 1;
        self.disk.save_snapshot(snapshot.clone(), compact_to);
        self.sync_wal()
    }

    fn ledger_height(&self) -> u64 {
        self.ledger.len() as u64
    }

    fn ledger_block(&self, number: u64) -> Result<Block, IoError> {
        self.ledger
            .get(number as usize)
            .map(|(b, _)| b.clone())
            .ok_or_else(|| format!("no block {number} in a ledger of {}", self.ledger.len()).into())
    }

    /// Checks what the real block store and puller check (the hash chain, the data hash),
    /// then appends.
    fn append(&mut self, block: &Block, synced: bool) -> Result<(), IoError> {
        let prev = self
            .ledger
            .last()
            .and_then(|(b, _)| b.header.clone())
            .ok_or("empty ledger")?;
        verify_link(&prev, block)?;
        verify_data_hash(block)?;
        let md = BlockMetadata::decode(consenter_metadata(block)?)?;
        self.ledger.push((block.clone(), md));
        if synced {
            *self.ledger_synced = self.ledger.len();
        }
        Ok(())
    }

    fn sync_ledger(&mut self) -> Result<(), IoError> {
        *self.ledger_synced = self.ledger.len();
        Ok(())
    }

    /// No signature (the checker verifies none): the metadata only, where the real writer puts
    /// it.
    fn sign(
        &self,
        block: &mut Block,
        last_config: u64,
        consenter_md: &[u8],
    ) -> Result<(), IoError> {
        put_unsigned_metadata(block, last_config, consenter_md);
        Ok(())
    }

    /// A config update validated against an older config is refused (applied again to the
    /// new one, it could change two consenters at once); a normal envelope stays valid.
    fn revalidate(&self, s: &Submission, config: &SimConfig) -> Result<(), IoError> {
        if !s.config {
            return Ok(());
        }
        match SimConfig::of_envelope(&s.envelope) {
            Some(next) if next.sequence == config.sequence + 1 => Ok(()),
            _ => Err("the config update was made from an older config".into()),
        }
    }

    fn self_key(&self) -> Option<Vec<u8>> {
        Some(crate::config::self_key(self.slot))
    }

    fn send(&mut self, msg: RaftMessage, active_nodes: Option<&[u64]>) {
        self.fx.sends.push((msg, active_nodes.map(<[u64]>::to_vec)));
    }

    /// The simulated transport reads the members from the engine when it delivers.
    fn set_members(&mut self, _members: &[Member]) {}

    fn start_pull(
        &mut self,
        _prev: &BlockHeader,
        target: u64,
        _config: &SimConfig,
    ) -> Result<(), IoError> {
        self.fx.pull = Some(PullRequest::To(target));
        Ok(())
    }

    fn raise_pull(&mut self, target: u64) {
        self.fx.pull = Some(PullRequest::To(target));
    }

    fn stop_pull(&mut self) {
        self.fx.pull = Some(PullRequest::Stop);
    }

    fn start_probe(&mut self, _config: &SimConfig) {
        self.fx.probe = true;
    }

    fn event(&mut self, e: Event<'_, SimConfig>) {
        if let Event::BlockWritten { block, pulled } = e {
            self.fx.appended.push((block.clone(), pulled));
        }
    }
}

/// The envelopes of a block.
pub fn envelopes(block: &Block) -> impl Iterator<Item = &Bytes> {
    block.data.iter().flat_map(|d| d.data.iter())
}

/// A follower's world in the simulation: the node's ledger (pulled blocks are synced at once, as
/// the real follower's are).
pub struct SimFollowerIo<'a> {
    pub slot: usize,
    pub ledger: &'a mut Vec<(Block, BlockMetadata)>,
    pub ledger_synced: &'a mut usize,
}

impl ordo_channel::FollowerIo for SimFollowerIo<'_> {
    type Config = SimConfig;

    fn append(&mut self, block: &Block) -> Result<(), IoError> {
        let md = BlockMetadata::decode(consenter_metadata(block)?)?;
        self.ledger.push((block.clone(), md));
        *self.ledger_synced = self.ledger.len();
        Ok(())
    }

    fn self_key(&self) -> Option<Vec<u8>> {
        Some(crate::config::self_key(self.slot))
    }

    fn event(&mut self, _: ordo_channel::FollowerEvent<'_, SimConfig>) {}
}
