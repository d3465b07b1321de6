//! # ordo-proto
//!
//! Fabric's wire types and gRPC services, generated at build time from the `.proto` files in the
//! workspace's `proto/` directory (written for Ordo from Fabric's wire format: same packages,
//! message names, field names and numbers as fabric-protos, so bytes and JSON names agree).
//!
//! Modules are named after the proto packages (`common`, `msp`, `orderer`, `etcdraft`, `protos`
//! for the peer messages, `rwset`, `kvrwset`) because generated code refers to its neighbours as
//! `super::<package>`. [`descriptor_pool`] gives the same schema at run time, for the
//! configtxlator-compatible JSON in `ordo-protolator`.
//!
//! This crate holds no logic beyond the generated code, a few constants, and the encoding of
//! `common.ConfigGroup` (written out so that empty map values reach Fabric as Go writes them).

#![allow(clippy::all, clippy::pedantic)]

pub mod common {
    include!(concat!(env!("OUT_DIR"), "/common.rs"));
    pub use crate::config_group::ConfigGroup;
}
mod config_group;
pub mod msp {
    include!(concat!(env!("OUT_DIR"), "/msp.rs"));
}
pub mod orderer {
    include!(concat!(env!("OUT_DIR"), "/orderer.rs"));
}
pub mod etcdraft {
    include!(concat!(env!("OUT_DIR"), "/etcdraft.rs"));
}
/// The peer messages (Fabric's peer proto package is called `protos`).
pub mod protos {
    include!(concat!(env!("OUT_DIR"), "/protos.rs"));
}
pub mod rwset {
    include!(concat!(env!("OUT_DIR"), "/rwset.rs"));
}
pub mod kvrwset {
    include!(concat!(env!("OUT_DIR"), "/kvrwset.rs"));
}

/// The encoded `FileDescriptorSet` of every Fabric message Ordo knows.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/fabric_descriptor_set.bin"));

/// The descriptor pool built from [`FILE_DESCRIPTOR_SET`] (built once, shared).
pub fn descriptor_pool() -> &'static prost_reflect::DescriptorPool {
    static POOL: std::sync::OnceLock<prost_reflect::DescriptorPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        // The set was produced by protox from our own files at build time; failing to decode it
        // would be a build defect, not bad input.
        prost_reflect::DescriptorPool::decode(FILE_DESCRIPTOR_SET)
            .expect("descriptor set generated at build time is valid")
    })
}

pub use prost::Message;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_pool_knows_the_fabric_messages() {
        let pool = descriptor_pool();
        for name in [
            "common.Block",
            "common.Envelope",
            "common.ConfigUpdateEnvelope",
            "msp.FabricMSPConfig",
            "orderer.SeekInfo",
            "etcdraft.ConfigMetadata",
            "etcdraft.BlockMetadata",
            "protos.Transaction",
            "rwset.TxReadWriteSet",
            "kvrwset.KVRWSet",
        ] {
            assert!(pool.get_message_by_name(name).is_some(), "{name} missing");
        }
    }

    #[test]
    fn field_numbers_match_fabric() {
        // Spot checks of numbers that are easy to get wrong; the fixtures test the rest.
        let pool = descriptor_pool();
        let num = |m: &str, f: &str| {
            pool.get_message_by_name(m)
                .and_then(|d| d.get_field_by_name(f))
                .map(|f| f.number())
        };
        assert_eq!(num("common.ChannelHeader", "tls_cert_hash"), Some(8));
        assert_eq!(num("common.ChannelHeader", "extension"), Some(7));
        assert_eq!(
            num("common.OrdererBlockMetadata", "consenter_metadata"),
            Some(2)
        );
        assert_eq!(num("etcdraft.Consenter", "server_tls_cert"), Some(4));
        assert_eq!(num("orderer.SubmitRequest", "payload"), Some(3));
        assert_eq!(num("msp.FabricMSPConfig", "fabric_node_ous"), Some(11));
    }
}
