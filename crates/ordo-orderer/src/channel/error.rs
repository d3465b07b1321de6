//! Why a channel could not be started, or stopped working; and why the handle refused a
//! hand-off.

use ordo_channel::EngineError;
use ordo_channel::config::ConfigReadError;
use ordo_ledger::block::BlockError;
use ordo_ledger::store::StoreError;
use ordo_raft::chain::CoreError;
use ordo_raft::wal::WalError;

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
    Config(#[from] ConfigReadError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Follow(#[from] ordo_channel::FollowError),
    #[error("the ledger is empty")]
    EmptyLedger,
    #[error("block {0} has no header")]
    NoHeader(u64),
    #[error("nothing to follow from: the ledger is empty and there is no join block")]
    NothingToFollow,
}

impl ChannelError {
    /// Whether the error is the disk's (the ledger's or the WAL's I/O), which may pass.
    pub fn is_storage(&self) -> bool {
        match self {
            ChannelError::Ledger(e) => matches!(e, StoreError::Io { .. }),
            ChannelError::Wal(_) => true,
            ChannelError::Engine(e) => {
                matches!(e, EngineError::Ledger(_) | EngineError::Wal(_))
            }
            ChannelError::Follow(e) => matches!(e, ordo_channel::FollowError::Ledger { .. }),
            _ => false,
        }
    }
}

/// Why the channel did not take a submission or a Raft message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandOffError {
    #[error("the chain is halted")]
    Halted,
    #[error("this node follows the channel: it is not one of its consenters")]
    NotConsenter,
    #[error("the chain's inbound queue is full")]
    Full,
}
