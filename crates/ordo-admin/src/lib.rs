//! # ordo-admin
//!
//! Administering a channel on running orderers, as an operator does from outside the nodes
//! (what `ordo channel` is made of):
//!
//! - [`endpoint`]: where an orderer is and how to reach it (address, TLS files, mutual TLS);
//! - [`participation`]: osnadmin's channel participation calls (join, list, remove) and its
//!   output format;
//! - [`consenters`]: one consenter change by config update — fetch the newest config block over
//!   Deliver, build the update, check the quorum rule against the consenters it can reach, sign
//!   it with the admins' identities, Broadcast it, and wait until a config block carries it.
//!
//! It is a client only: it decides nothing the orderer does not check again, and it never
//! touches a node's files.

pub mod consenters;
pub mod endpoint;
pub mod participation;

mod error;

pub use error::AdminError;
