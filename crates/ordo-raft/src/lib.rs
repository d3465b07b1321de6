//! # ordo-raft
//!
//! Per-channel consensus, as a **pure core**: inputs (ticks, messages, proposals, storage results)
//! in, actions (messages to send, entries to persist, blocks to commit) out, with no sockets,
//! clocks or threads inside, so that a test can run many nodes in one thread from a seed.
//!
//! So far it holds the first piece of the leader's block creation: [`blockcutter`], Fabric's rules
//! for cutting pending envelopes into batches. The Raft driver (raft-rs `RawNode`, in-flight
//! control, apply, snapshots, membership changes) comes with the ordering node.
//!
//! It never reads a clock: times are given to it by the caller.

pub mod blockcutter;
