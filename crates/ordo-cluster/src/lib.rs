//! # ordo-cluster
//!
//! How orderers talk to each other, and the TLS every listener of the node uses (Fabric's
//! `orderer/common/cluster` and `internal/pkg/comm`):
//!
//! - [`tls`]: the listeners' TLS (rustls + ring), the accept loop shared by gRPC and HTTP, client
//!   roots that follow the channels' configs; [`slots`]: the bounds on a listener's connections
//!   and on the streams of each; [`recv_status`]: Go gRPC's status for a message that cannot be
//!   read (too large, not protobuf), as Fabric's handlers return it;
//! - [`comm`]: the outbound side of `orderer.Cluster/Step`: one stream per (channel, destination,
//!   kind), bounded queues of `SendBufferSize` (a full consensus queue drops the message, a
//!   submit waits up to `RPCTimeout`), connections shared across channels, dialled under mutual
//!   TLS and **pinned**: the server's leaf must chain to the trusted orderer TLS roots *and* carry
//!   the public key of the consenter's `server_tls_cert`;
//! - [`service`]: the inbound side: the `Cluster` gRPC service, which hands every request with the
//!   sender's TLS client certificate to a [`service::StepHandler`] (the orderer identifies the
//!   consenter by the certificate's public key).
//!
//! - [`puller`]: the block puller, a Deliver client over mutual TLS (with TLS binding) that
//!   fetches a channel's blocks from other orderers, checking the hash chain and handing each
//!   block to the caller's verifier.
//!
//! It knows nothing of Raft: it moves `ConsensusRequest`s and `SubmitRequest`s, and pulls blocks.

pub mod comm;
pub mod puller;
pub mod recv_status;
pub mod service;
pub mod slots;
pub mod tls;
