//! Why a channel stops.

use ordo_raft::chain::CoreError;

use crate::config::ConfigReadError;
use crate::io::IoError;

/// A failure that stops the channel (Fabric panics in most of these cases).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("raft WAL: {0}")]
    Wal(#[source] IoError),
    #[error("ledger: {0}")]
    Ledger(#[source] IoError),
    #[error("signing block {number}: {source}")]
    Sign {
        number: u64,
        #[source]
        source: IoError,
    },
    #[error("raft: {0}")]
    Core(#[from] CoreError),
    /// raft-rs asserts on states it holds impossible (a commit index past the end of the log,
    /// say); a message from another node must not kill the node's task silently.
    #[error("raft core panicked: {0}")]
    Panicked(String),
    #[error("config block {number}: {source}")]
    Config {
        number: u64,
        #[source]
        source: ConfigReadError,
    },
    #[error("config block {number} has sequence {next} but the channel is at {current}")]
    StaleConfig {
        number: u64,
        next: u64,
        current: u64,
    },
    #[error("block {0} has no header")]
    NoHeader(u64),
    #[error("block {number}: consenter metadata: {reason}")]
    ConsenterMetadata { number: u64, reason: String },
    #[error("cannot pull blocks: {0}")]
    Pull(#[source] IoError),
    #[error("pulled block {0} differs from the block in the leader's snapshot")]
    CatchUpMismatch(u64),
}
