//! Untrusted bytes as a `common.Envelope` (what Broadcast receives) and as a `common.Block` (what
//! Deliver, replication and onboarding receive). Every header and metadata decoder, the data hash
//! check and the signature checks run against channel-3's real policies and MSPs: errors are
//! fine, panics are not.

#![no_main]

use libfuzzer_sys::fuzz_target;
use ordo_config::{configtx, envelope};
use ordo_ledger::block;
use ordo_proto::Message;
use ordo_proto::common::{Block, Envelope};

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::decode(data) {
        check_envelope(&env);
    }
    if let Ok(b) = Block::decode(data) {
        check_block(&b);
    }
});

fn check_envelope(env: &Envelope) {
    let _ = envelope::parse(env);
    if let Ok(signed) = envelope::signed_data(env) {
        // Deserializes the creator with channel-3's MSPs and verifies the signature.
        let msps = ordo_fuzz::channel_config().msp_manager();
        let _ = ordo_fuzz::channel_writers().evaluate_signed_data(&[signed], msps);
    }
    let _ = envelope::config_envelope(env);
    if let Ok(cue) = configtx::config_update_envelope(env) {
        let _ = configtx::config_update_signed_data(&cue);
    }
}

fn check_block(b: &Block) {
    let _ = block::verify_data_hash(b);
    let _ = block::last_config_index(b);
    let _ = block::consenter_metadata(b);
    let _ = block::signature_set(b);
    let msps = ordo_fuzz::channel_config().msp_manager();
    let _ = block::verify_signatures(b, ordo_fuzz::block_validation(), msps);
    let _ = block::is_config_block(b);
    if let Some(h) = &b.header {
        let _ = block::header_hash(h);
    }
    let genesis = ordo_fuzz::genesis_block().header.as_ref();
    if let Some(g) = genesis {
        let _ = block::verify_link(g, b);
    }
}
