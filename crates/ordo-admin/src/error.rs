//! The errors of this crate: each says what was being done and what went wrong, in words an
//! operator can act on (they end up printed by `ordo channel`).

use std::time::Duration;

use ordo_client::ClientError;
use ordo_config::consenters::ConsentersError;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("reading {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{0:?} is not HOST:PORT")]
    Address(String),
    #[error("resolving {addr}: {reason}")]
    Resolve { addr: String, reason: String },
    #[error("TLS settings: {0}")]
    TlsSettings(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Consenters(#[from] ConsentersError),
    #[error("Deliver from {addr}: {reason}")]
    Deliver { addr: String, reason: String },
    #[error("Broadcast to {addr}: {reason}")]
    Broadcast { addr: String, reason: String },
    #[error("the orderer refused the config update: {status}: {info}")]
    Refused { status: String, info: String },
    #[error("block {number}: {reason}")]
    Block { number: u64, reason: String },
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    #[error("the participation API of {addr} answered {status}: {body}")]
    Participation {
        addr: String,
        status: u16,
        body: String,
    },
}
