//! # ordo-ca
//!
//! A certificate authority that speaks Fabric CA's REST API, and its client.
//!
//! This crate owns:
//!
//! - the CAs themselves ([`ca`]): a P-256 signing key and self-signed root per CA, generated on
//!   first start or loaded from files, and certificate issuance from a CSR with Fabric CA's
//!   subject rules (CN = enrollment ID, OUs from type and affiliation, SANs, the attribute
//!   extension `1.2.3.4.5.6.7.8.1`, the `default`/`tls`/`ca` signing profiles, expiry clamped to
//!   the CA certificate), and CRL generation;
//! - the registry ([`registry`]): identities, certificates and affiliations behind a storage trait,
//!   with an embedded SQLite implementation;
//! - identity attributes ([`attrs`]): the reserved `hf.*` names and how their values read, max
//!   enrollments, the attribute extension's contents, secret hashing;
//! - authorization ([`authz`]): Fabric CA's rules of who may register, manage, revoke, generate
//!   CRLs, list certificates, manage affiliations and enroll for a CA certificate, as pure
//!   functions over identities with typed refusals;
//! - authentication ([`auth`]): Basic for enroll, Fabric CA's `b64(cert).b64(sig)` token for
//!   everything else (low-S enforced, optional v1.3 compatibility);
//! - the HTTPS server ([`server`]) hosting several CAs in one process (`ca` and `tlsca` by
//!   default), with Fabric CA's endpoints under `/` and `/api/v1/`, its
//!   `{result, errors, messages, success}` envelope and status codes; one file per endpoint
//!   family, request bodies decoded into typed request structs;
//! - the client ([`client`]): enroll, reenroll, register, revoke, gencrl, and writing Fabric's
//!   MSP folder layout, including an organization's MSP definition built from the two CAs.
//!
//! It must not reach into orderer internals: it knows nothing of channels or ordering, and the
//! only contract with the rest of Ordo is the MSP folder layout it writes (read by `ordo-msp`).
//! Handlers must not decide who may do what themselves (that is [`authz`]'s), nor answer
//! outside Fabric CA's envelope and error codes.
//!
//! Bounds (named configuration values): request bodies (`max_body_bytes`, 1 MiB), connections
//! served at once (`max_connections`, 1024), the TLS handshake (`tls_handshake_timeout`, 10s).
//! Registry writes are serialised by one SQLite connection, so an enrollment limit holds under
//! concurrent requests.

pub mod attrs;
pub mod auth;
pub mod authz;
pub mod ca;
pub mod client;
pub mod config;
pub mod error;
pub mod registry;
pub mod server;
mod x509;

pub use ca::Ca;
pub use client::{CaClient, Enrollment};
pub use config::ServerConfig;
pub use error::{CaError, ErrorCode};
pub use server::{CaServer, RunningServer, start};
