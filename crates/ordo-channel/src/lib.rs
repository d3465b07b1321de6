//! # ordo-channel
//!
//! A channel's **engine**: every decision a consenter's runtime makes around the pure Raft core
//! ([`ordo_raft::chain::ChainCore`]), as a synchronous state machine — in the manner of
//! openraft's engine/runtime split. It owns:
//!
//! - carrying out the core's actions in their required order, with the durability rules that
//!   go with them: Raft state persisted before anything that depends on it; the ledger synced
//!   before the WAL lets entries go (a snapshot taken or received); blocks made from committed
//!   entries appended unsynced (the WAL is their durable copy), config blocks and pulled blocks
//!   synced;
//! - writing blocks as Fabric's `BlockWriter` does (LAST_CONFIG, consenter metadata, the node's
//!   signature) and applying a config block (sequence must grow; new batch limits; new members);
//! - catching up with a snapshot ahead of the ledger (the target and its hash checked);
//! - whether this node was evicted: the leaderless count, the check of the channel's last config
//!   with the other orderers, and what proves a removal;
//! - who the transport must reach (the config's consenters, plus removed ones still voting);
//! - a follower's decisions ([`follower`]): the join block checked, onboarding, and when the
//!   config makes the node a consenter.
//!
//! It never does I/O itself, never reads a clock and never spawns: it acts through the narrow
//! [`io::Io`] and [`follower::FollowerIo`] traits and learns of time only through ticks and the
//! times it is given. The node (`ordo-orderer`, on tokio, files and sockets) and the simulator
//! (`ordo-sim`, one thread from a seed) are two implementations of those traits, so the
//! simulator's seeds test the code that ships.

pub mod config;
pub mod consenter;
pub mod error;
pub mod follower;
pub mod io;
pub mod start;

pub use config::{ConfigView, ConsenterEntry, RaftSettings};
pub use consenter::{ConsenterEngine, EngineParams, InjectedBug, Member, Standing, Suspicion};
pub use error::EngineError;
pub use follower::{FollowError, FollowerEngine, FollowerEvent, FollowerIo, JoinBlock, Next};
pub use io::{Event, Io, IoError, Submission};
