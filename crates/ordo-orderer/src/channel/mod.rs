//! A channel this node holds: the handle the rest of the node uses ([`Channel`]), and the task
//! behind it, in the channel's role —
//!
//! - `consenter`: a member of the channel's Raft group. Every decision is the engine's
//!   ([`ordo_channel::ConsenterEngine`]: the durability order of WAL writes, ledger syncs and
//!   snapshots; block writing and config application; catch-up; the eviction check; whom the
//!   transport accepts); this is its runtime on tokio, files and sockets;
//! - `follower`: not a consenter, it pulls the channel's blocks from the orderers of its
//!   config (Fabric's `follower.Chain`) until a config block makes it one;
//!
//! with `source` (how pulled blocks are checked) and `support` (what the parts share with
//! the rest of the node: the ledger, commit waiters, node services, config queries).
//!
//! Broadcast hands envelopes to a consenter's driver through a bounded queue that the driver
//! reads only while the core can take them, so MaxInflightBlocks pushes back on clients as in
//! Fabric.

mod consenter;
mod error;
mod follower;
mod source;
mod support;

use std::sync::Arc;

use arc_swap::ArcSwap;
use ordo_config::ChannelConfig;
use ordo_proto::common::Block;
use ordo_raft::chain::ChainStatus;
use tokio::sync::{Notify, mpsc, oneshot, watch};

pub use error::{ChannelError, HandOffError};
pub use follower::JoinBlock;
pub use source::{ChannelSource, Malformed, orderer_endpoints, well_formed};
pub use support::{
    CommitWait, CommitWaiters, INBOUND_QUEUE_CAPACITY, Inbound, Ledger, Member, NodeServices,
    SUBMIT_QUEUE_CAPACITY, SelfKey, Submission, config_at_tip, config_of_block, consenter_certs,
    is_consenter, members, submit_request, unix_now,
};

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
    /// The channel halted on a storage error (a full disk, an I/O error on its ledger or WAL):
    /// start it again from what is on disk once its folders take writes again.
    Resume(String),
}

/// A channel this node holds; see the module doc.
pub struct Channel {
    pub name: String,
    config: Arc<ArcSwap<ChannelConfig>>,
    ledger: Arc<Ledger>,
    state: watch::Receiver<ChainState>,
    stop: watch::Sender<bool>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    role: Role,
}

/// What the channel's role takes from the rest of the node.
enum Role {
    Consenter(ConsenterLink),
    /// A follower takes nothing: it pulls blocks, and answers only Deliver.
    Follower,
}

/// The ways into a consenter's driver.
struct ConsenterLink {
    /// This node's Raft ID in the channel.
    id: u64,
    /// Whom inbound cluster messages are matched against (the engine's members).
    members: Arc<ArcSwap<Vec<Member>>>,
    inbound: mpsc::Sender<Inbound>,
    submit: mpsc::Sender<Submission>,
    waiters: Arc<CommitWaiters>,
    /// Wakes the driver to check whether this node was removed from the channel.
    suspicion: Arc<Notify>,
    /// Wakes the driver to check whether this node's config is behind the channel's.
    unknown_sender: Arc<Notify>,
    /// Tells the driver the node is stopping (see [`Channel::hand_off`]).
    hand_off: Arc<Notify>,
    /// Whether a consenter added by a config update enters this channel's Raft group as a
    /// learner (`Consensus.FabricMembershipChanges` off), for the quorum-loss check.
    adds_learners: bool,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("name", &self.name).finish()
    }
}

impl Channel {
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

    fn consenter(&self) -> Option<&ConsenterLink> {
        match &self.role {
            Role::Consenter(c) => Some(c),
            Role::Follower => None,
        }
    }

    /// This node's Raft ID in the channel, while it is a consenter.
    pub fn raft_id(&self) -> Option<u64> {
        self.consenter().map(|c| c.id)
    }

    /// Whether a consenter added by a config update enters the Raft group as a learner.
    pub fn adds_learners(&self) -> bool {
        self.consenter().is_none_or(|c| c.adds_learners)
    }

    /// Hands a validated envelope to the driver, waiting while its queue is full.
    pub async fn submit(&self, s: Submission) -> Result<(), HandOffError> {
        let c = self.consenter().ok_or(HandOffError::NotConsenter)?;
        c.submit.send(s).await.map_err(|_| HandOffError::Halted)
    }

    /// Starts waiting for `envelope` (its marshalled bytes) to be committed; call it before
    /// submitting or forwarding the envelope, so that the block cannot slip by. `None` on a
    /// follower, which orders nothing.
    pub fn wait_commit(&self, envelope: &[u8]) -> Option<CommitWait> {
        let c = self.consenter()?;
        let (tx, rx) = oneshot::channel();
        let hash = ordo_crypto::sha256(envelope);
        c.waiters.lock().entry(hash).or_default().push(tx);
        Some(CommitWait {
            rx,
            hash,
            waiters: c.waiters.clone(),
        })
    }

    /// The consenters the transport reaches and accepts (none on a follower).
    pub fn members(&self) -> Arc<Vec<Member>> {
        self.consenter()
            .map(|c| c.members.load_full())
            .unwrap_or_default()
    }

    /// The Raft ID of the consenter whose `client_tls_cert` has the public key `key`, as
    /// Fabric identifies a cluster connection's sender (validity periods ignored).
    pub fn member_by_client_key(&self, key: &ordo_crypto::PublicKey) -> Option<u64> {
        self.consenter()?
            .members
            .load()
            .iter()
            .find(|m| m.client_key.as_ref() == Some(key))
            .map(|m| m.id)
    }

    /// A Raft message from another consenter; dropped when the driver is this far behind.
    pub fn step(&self, msg: Inbound) -> Result<(), HandOffError> {
        let c = self.consenter().ok_or(HandOffError::NotConsenter)?;
        c.inbound.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => HandOffError::Full,
            mpsc::error::TrySendError::Closed(_) => HandOffError::Halted,
        })
    }

    /// Another consenter sent this node a Raft message for another Raft ID: it knows this node
    /// under an ID given after this node's own, so this node was removed and perhaps added
    /// back. The driver checks the channel's last config (Fabric halts "cowardly" instead and
    /// stays stuck, hyperledger/fabric#3992).
    pub fn suspect_eviction(&self) {
        if let Some(c) = self.consenter() {
            c.suspicion.notify_one();
        }
    }

    /// A node that is not among this channel's members sent it a Raft message (and was
    /// refused): this node's config may be behind the channel's, the sender added since — even
    /// its leader. The driver checks the channel's last config with the other orderers.
    pub fn unknown_sender(&self) {
        if let Some(c) = self.consenter() {
            c.unknown_sender.notify_one();
        }
    }

    /// The node is stopping: as leader, this channel hands leadership to another consenter
    /// once everything it accepted is committed (`ChainCore::hand_off`); what is still queued
    /// is forwarded to the new leader. Watch [`Channel::watch_state`] for the new leader.
    pub fn hand_off(&self) {
        if let Some(c) = self.consenter() {
            c.hand_off.notify_one();
        }
    }

    /// Stops the task and waits for it to finish its current step.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}
