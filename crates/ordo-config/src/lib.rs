//! # ordo-config
//!
//! A Fabric channel's configuration, as the orderer must understand it:
//!
//! - [`policy`]: signature and ImplicitMeta policies, the policy manager, and their evaluation
//!   with Fabric's exact semantics (signers de-duplicated, bad signatures dropped, greedy
//!   matching, ImplicitMeta over zero groups passes);
//! - [`channel`]: the typed channel configuration parsed from a `common.Config` and validated as
//!   Fabric's `channelconfig.NewBundle` does (hashing, batch sizes and timeout, capabilities, org
//!   MSPs and endpoints, consensus type and etcdraft metadata);
//! - [`configtx`]: applying a `CONFIG_UPDATE` as Fabric's configtx validator does (read set,
//!   delta, versions, mod_policy authorization, deleted children, sequence + 1), and re-checking
//!   a CONFIG envelope before it is written;
//! - [`etcdraft`]: Raft options and consenter validation, and the consenter-set changes an
//!   update makes;
//! - [`consenters`]: one consenter edit (add, remove, rotate) of a config, the quorum rule
//!   checked before submitting it, and the admin-signed CONFIG_UPDATE carrying it;
//! - [`duration`]: Go's `time.ParseDuration`, which Fabric uses for every duration it stores.
//!
//! This crate never touches the network or a ledger; the only files it reads are the ones
//! configtx.yaml names when a genesis block is built.

pub mod channel;
pub mod configtx;
pub mod consenters;
pub mod duration;
pub mod envelope;
mod error;
pub mod etcdraft;
pub mod genesis;
pub mod policy;
pub mod policydsl;
pub mod yaml;

pub use channel::ChannelConfig;
pub use error::ConfigError;
pub use policy::{Policy, PolicyManager, SignatureSet, SignedData};
