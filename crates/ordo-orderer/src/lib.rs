//! # ordo-orderer
//!
//! The ordering node: the registrar of channels, the Broadcast and Deliver services, the message
//! filters, the runtime of each channel (on tokio, files and sockets), and the channel
//! participation and operations APIs. It owns what a client sees of an orderer; consensus itself
//! is `ordo-raft`'s, and every decision around it the channel engine's (`ordo-channel`): this
//! crate carries them out. See docs/architecture.md.
//!
//! - [`node`] assembles a node from [`localconfig`] (orderer.yaml): [`registrar`] (which channels
//!   run, crash-safe join and removal), [`channel`] (a channel's handle, and the task behind it:
//!   the runtime of its consenter engine, or a follower), [`grpc`] (Broadcast and Deliver over
//!   [`msgprocessor`], [`configupdate`] and [`deliver`]), [`participation`] and [`operations`]
//!   (the admin and operations HTTP APIs over [`http`] and [`tls`], with [`go_mux`]'s path rules), [`certs`] (reloading the
//!   node's certificates, watching every certificate's expiry), [`metrics`], [`logging`].
//!
//! Clients of these APIs are `ordo-client`'s, so that tools need not depend on the node.

pub mod certs;
pub mod channel;
pub mod cluster;
pub mod configupdate;
pub mod deliver;
pub mod go_mux;
pub mod grpc;
pub mod health;
pub mod http;
pub mod localconfig;
pub mod logging;
pub mod metrics;
pub mod msgprocessor;
pub mod node;
pub mod operations;
pub mod participation;
mod participation_backend;
pub mod registrar;
pub mod tls;
