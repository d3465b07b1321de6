//! # ordo-raft
//!
//! Per-channel consensus, as a **pure core**: inputs (ticks, messages, proposals, storage results)
//! in, actions (messages to send, entries to persist, blocks to commit) out, with no sockets,
//! clocks or threads inside, so that a test can run many nodes in one thread from a seed.
//!
//! - [`chain`]: the core of one channel — raft-rs `RawNode`, the leader's block cutting
//!   ([`blockcutter`]) and block creation, in-flight control, applying committed blocks once,
//!   snapshots, membership changes and eviction;
//! - [`membership`]: how a config block's consenter list changes the consenter IDs (Fabric's
//!   `ComputeMembershipChanges`);
//! - [`storage`]: the in-memory Raft log the core reads; it keeps the data of applied entries
//!   only until it is persisted, then reads it back, rarely, through the
//!   [`storage::ColdEntries`] its driver hands it (the WAL's reader, or a simulated disk);
//! - [`wal`]: the one piece with I/O, kept apart from the core — the durable Raft state of a
//!   channel (raft-engine log under WALDir, snapshot files under SnapDir), which the driver
//!   writes when the core asks it to persist.
//!
//! The core never reads a clock or touches a socket: times and messages are given to it by the
//! caller (the node's driver in `ordo-orderer`, or a simulation).

pub mod blockcutter;
pub mod chain;
mod logger;
pub mod membership;
pub mod storage;
pub mod wal;
