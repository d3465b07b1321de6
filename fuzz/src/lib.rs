//! What the fuzz targets share: the channel-3 genesis block made by Fabric's `configtxgen`
//! (embedded at build time) and the channel configuration, MSPs and policies built from it once
//! per process.
//!
//! Everything here is trusted input; a panic in this file is a harness defect, not a finding.

use std::sync::{Arc, OnceLock};

use ordo_config::{ChannelConfig, Policy};
use ordo_proto::Message;
use ordo_proto::common::{Block, Envelope};

/// `channel-genesis/channel-3.block` of the Fabric 2.4 fixtures (three etcdraft consenters,
/// `OrdererMSP` and `Org1MSP`), relative to this file: `/work/main/fuzz/src` → `/work/shared`.
pub const CHANNEL_3_GENESIS: &[u8] =
    include_bytes!("../../../shared/fixtures/fabric-2.4/channel-genesis/channel-3.block");

/// The channel the genesis block above creates.
pub const CHANNEL_ID: &str = "channel-3";

struct Channel3 {
    block: Block,
    config: ChannelConfig,
    /// The channel header timestamp of the genesis block: a fixed "now" inside every fixture
    /// certificate's validity, so runs are reproducible.
    created_at: i64,
}

fn channel3() -> &'static Channel3 {
    static CELL: OnceLock<Channel3> = OnceLock::new();
    CELL.get_or_init(|| {
        let block = Block::decode(CHANNEL_3_GENESIS).expect("channel-3 genesis block decodes");
        let env =
            Envelope::decode(block.data.as_ref().expect("genesis block has data").data[0].clone())
                .expect("genesis envelope decodes");
        let parsed = ordo_config::envelope::parse(&env).expect("genesis envelope parses");
        let created_at = parsed
            .channel_header
            .timestamp
            .as_ref()
            .map(|t| t.seconds)
            .expect("genesis channel header has a timestamp");
        let config = ordo_config::envelope::config_envelope(&env)
            .expect("genesis block holds a config envelope")
            .config
            .expect("config envelope has a config");
        let config = ChannelConfig::new(&config).expect("channel-3 config is valid");
        Channel3 {
            block,
            config,
            created_at,
        }
    })
}

/// The channel-3 genesis block.
pub fn genesis_block() -> &'static Block {
    &channel3().block
}

/// The channel-3 configuration at sequence 0, with its MSP manager and policy manager.
pub fn channel_config() -> &'static ChannelConfig {
    &channel3().config
}

/// A fixed time (seconds since the epoch) at which the fixture certificates are valid.
pub fn now() -> i64 {
    channel3().created_at
}

/// A policy of the channel-3 config by absolute id; panics (harness defect) when it is missing.
pub fn policy(id: &str) -> Arc<Policy> {
    channel_config()
        .policies()
        .get_policy(id)
        .unwrap_or_else(|| panic!("channel-3 has no policy {id}"))
}

/// `/Channel/Orderer/BlockValidation` of channel-3, compiled once.
pub fn block_validation() -> &'static Policy {
    static CELL: OnceLock<Arc<Policy>> = OnceLock::new();
    CELL.get_or_init(|| policy("/Channel/Orderer/BlockValidation"))
}

/// `/Channel/Writers` of channel-3 (what Broadcast checks a normal envelope against), compiled once.
pub fn channel_writers() -> &'static Policy {
    static CELL: OnceLock<Arc<Policy>> = OnceLock::new();
    CELL.get_or_init(|| policy("/Channel/Writers"))
}
