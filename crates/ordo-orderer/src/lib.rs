//! # ordo-orderer
//!
//! The ordering node: the registrar of channels, the Broadcast and Deliver services, the message
//! filters, the block writer, and the channel participation and operations APIs. It owns what a
//! client sees of an orderer; consensus itself is `ordo-raft`'s.
//!
//! So far it holds [`msgprocessor`]: how an incoming envelope is routed, classified and filtered
//! before ordering, with the status and text Fabric answers for each refusal.

pub mod client;
pub mod configupdate;
pub mod deliver;
pub mod localconfig;
pub mod msgprocessor;
