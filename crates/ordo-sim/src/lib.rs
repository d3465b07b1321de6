//! # ordo-sim
//!
//! Deterministic simulation of an Ordo Raft cluster (TigerBeetle's VOPR and FoundationDB's
//! simulator are the models): 3 or 5 nodes in one thread, driven from one seed, with simulated
//! time, a network that drops, delays, duplicates, reorders and partitions, and disks that lose
//! unsynced writes when a node crashes. Each node runs the channel engine that ships in the
//! node ([`ordo_channel::ConsenterEngine`], and with it the Raft core and the block logic): the
//! durability order of WAL writes, ledger syncs and snapshots, block writing, config
//! application, catch-up, the eviction check and the start plan (`ordo_channel::start`) are the
//! node's own code. Only what the engine's `Io` trait stands for is simulated ([`io`]): the
//! disks, the network with its transport's refusals, the block puller and the clock. Its config
//! format ([`config`]) is a compact stand-in for Fabric's protobuf config (sequence, consenters,
//! Raft settings: what the engine reads).
//!
//! The consenter set changes as the run goes: clients submit config updates that add a removed
//! node back, remove one, or rotate one's certificate (one change per update, validated against
//! the config in force as the real leader does). A removed node stops when its engine reports
//! the removal — applied, or learnt from the others' last config after a refusal or a long time
//! without a leader; a node added back pulls blocks up to the config block that adds it and
//! starts under its new Raft ID with an empty WAL, as the registrar does (this follower side is
//! still the simulator's own: the node's follower is not an engine yet).
//! A third of the seeds begin with a growth phase, before any fault: the channel starts with one
//! consenter and an operator adds the others one at a time (sometimes before the previous one
//! was promoted), each node starting up to four seconds after the block that adds it. With
//! learners (four seeds in five; the rest use Fabric's plain AddNode) the run fails if the
//! channel is ever without a leader during that phase, or stops ordering for longer than
//! 2 × BatchTimeout + 1 s.
//!
//! Invariants, checked as the run goes and at its end:
//! - no fork: no two nodes ever hold different blocks at the same height;
//! - a node stops as evicted only when its last config no longer lists it under its Raft ID;
//! - every ledger is a valid hash chain (each block linked to the previous one, data hash right);
//! - at most one Raft leader per term;
//! - a block once written by any node is never lost: at the end every node holds it;
//! - in ack-after-commit mode, no acknowledged envelope is lost;
//! - after the network heals and crashed nodes return, the cluster orders new envelopes, every
//!   consenter of the last config runs under the Raft ID it gives and holds every block written,
//!   and removed nodes hold a prefix of them;
//! - no node's core fails or panics;
//! - after the heal the leader has no learner left (every added consenter caught up and was
//!   promoted).
//!
//! A run is a pure function of its seed and [`SimOptions`]: a failing seed prints itself and
//! replays exactly (`cargo run -p ordo-sim --profile sim -- --seed N --trace`).
//!
//! This crate owns the simulation only; it never touches sockets, files or the wall clock.

pub mod config;
mod disk;
pub mod io;
mod world;

pub use disk::{Disk, DiskError};
pub use world::{Bug, Report, SimOptions, Violation, run};
