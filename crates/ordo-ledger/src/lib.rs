//! # ordo-ledger
//!
//! Blocks as Fabric builds and checks them ([`block`]): the header hash (SHA-256 of the ASN.1 DER
//! of number, previous hash and data hash), the data hash, the orderer's metadata (SIGNATURES with
//! `OrdererBlockMetadata{last_config, consenter_metadata}` and the signature over
//! `value ‖ signature_header ‖ DER header`, and the deprecated LAST_CONFIG slot), and the
//! verification of a block's signatures against `/Channel/Orderer/BlockValidation` and of a chain
//! of blocks; and [`store`], the per-channel block store (append-only checksummed records, an
//! offset index, crash repair on open, height notifications for Deliver).
//!
//! This crate makes no consensus decision: it builds, signs, checks and (later) stores what it is
//! given.

pub mod block;
pub mod store;

pub use block::BlockError;
pub use store::{BlockStore, StoreError};
