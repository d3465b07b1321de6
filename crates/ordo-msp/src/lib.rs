//! # ordo-msp
//!
//! Fabric's membership service providers, as `msp/mspimpl.go` (`bccspmsp`, MSP version 1.4.3, the
//! one every v2.x channel uses) defines them:
//!
//! - [`Msp`]: built from a `FabricMSPConfig` — root and intermediate CAs (sanitized to low-S),
//!   admins (listed certificates or the admin OU), CRLs, organizational-unit restrictions, NodeOUs
//!   (client/peer/admin/orderer with optional certifiers), TLS roots. It deserializes identities,
//!   validates them (a single validation chain to a leaf CA of the tree, not revoked, the right OUs)
//!   and decides whether an identity satisfies an `MSPPrincipal` (ROLE, IDENTITY,
//!   ORGANIZATION_UNIT, COMBINED, ANONYMITY);
//! - [`MspManager`]: the MSPs of one channel, routing a `SerializedIdentity` to its MSP;
//! - [`local`]: reading an MSP folder in Fabric's layout (cacerts, intermediatecerts, admincerts,
//!   tlscacerts, tlsintermediatecerts, crls, config.yaml, signcerts, keystore) into an MSP config,
//!   and into a [`SigningIdentity`] for a node or an admin.
//!
//! Certificate expiry is not an MSP concern (Fabric validates chains at `NotBefore + 1s`); callers
//! that must refuse expired identities use [`Identity::expires_at`].
//!
//! This crate touches the disk only to read MSP folders, and never the network.

mod cert;
pub mod chain;
mod error;
mod identity;
pub mod local;
mod manager;
mod msp;
mod principal;
mod signer;

pub use cert::Cert;
pub use error::MspError;
pub use identity::Identity;
pub use manager::MspManager;
pub use msp::{Msp, NodeRole};
pub use signer::SigningIdentity;
