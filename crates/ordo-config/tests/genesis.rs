//! `genesis` from the fixture configtx.yaml yields the config tree configtxgen made for each
//! profile: equal as messages (every value's bytes identical), and the whole block's
//! configtxlator JSON identical apart from the nonce, timestamp, tx id and data hash.

use ordo_config::ChannelConfig;
use ordo_config::envelope::config_envelope;
use ordo_config::genesis::{config_from_profile, genesis_block};
use ordo_proto::Message;
use ordo_proto::common::{Block, Envelope};
use serde_json::Value;

fn configtx() -> std::path::PathBuf {
    ordo_testkit::fixture("config/configtx.yaml")
}

fn fabric_block(n: u32) -> (Vec<u8>, Block) {
    let bytes = ordo_testkit::read(&format!("channel-genesis/channel-{n}.block"));
    let block = Block::decode(bytes.as_slice()).unwrap();
    (bytes, block)
}

/// Blanks what differs between two runs of configtxgen.
fn mask(mut v: Value) -> Value {
    v["header"]["data_hash"] = Value::Null;
    let p = &mut v["data"]["data"][0]["payload"]["header"];
    p["channel_header"]["timestamp"] = Value::Null;
    p["channel_header"]["tx_id"] = Value::Null;
    p["signature_header"]["nonce"] = Value::Null;
    v
}

#[test]
fn genesis_equals_configtxgen_for_every_profile() {
    for n in [1u32, 3, 5] {
        let (fabric_bytes, fabric) = fabric_block(n);
        let ours = genesis_block(&configtx(), &format!("H{n}"), &format!("channel-{n}")).unwrap();
        let their_env = Envelope::decode(fabric.data.as_ref().unwrap().data[0].clone()).unwrap();
        let our_env = Envelope::decode(ours.data.as_ref().unwrap().data[0].clone()).unwrap();
        assert_eq!(
            config_envelope(&our_env).unwrap(),
            config_envelope(&their_env).unwrap(),
            "H{n}"
        );
        let ours_json = ordo_protolator::decode("common.Block", &ours.encode_to_vec()).unwrap();
        let theirs_json = ordo_protolator::decode("common.Block", &fabric_bytes).unwrap();
        assert_eq!(mask(ours_json), mask(theirs_json), "H{n}");
        // The tx id is the hash of the nonce, and the block is a valid channel config.
        let ch = ordo_config::envelope::parse(&our_env).unwrap();
        assert_eq!(
            ch.channel_header.tx_id,
            hex::encode(ordo_crypto::sha256(&ch.signature_header.nonce))
        );
        ChannelConfig::new(&config_envelope(&our_env).unwrap().config.unwrap()).unwrap();
    }
}

#[test]
fn profile_errors_are_reported() {
    let dir = std::env::temp_dir().join(format!("ordo-genesis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = std::fs::read_to_string(configtx()).unwrap();
    // Paths in the fixture are relative to its folder: rewrite them absolute for the copies.
    let base = configtx().parent().unwrap().to_path_buf();
    let src = src.replace(
        "../crypto-config",
        &format!("{}/../crypto-config", base.display()),
    );
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let ok = write("ok.yaml", &src);
    config_from_profile(&ok, "H1").unwrap();
    assert!(
        config_from_profile(&ok, "Nope")
            .unwrap_err()
            .0
            .contains("could not find profile")
    );
    let typo = write(
        "typo.yaml",
        &src.replace("BatchTimeout: 1s", "BatchTimeout: 1s\n    BatchTimout: 2s"),
    );
    assert!(
        config_from_profile(&typo, "H1")
            .unwrap_err()
            .0
            .contains("invalid keys: BatchTimout")
    );
    let bad_rule = write(
        "rule.yaml",
        &src.replace("OR('OrdererMSP.admin')", "OR('OrdererMSP.boss')"),
    );
    assert!(
        config_from_profile(&bad_rule, "H1")
            .unwrap_err()
            .0
            .contains("invalid signature policy rule")
    );
    let ticks = write(
        "ticks.yaml",
        &src.replace("ElectionTick: 10", "ElectionTick: 1"),
    );
    assert!(
        config_from_profile(&ticks, "H1")
            .unwrap_err()
            .0
            .contains("election tick must be greater than heartbeat tick")
    );
    let no_admins = write(
        "admins.yaml",
        &src.replace(
            "Admins: {Type: ImplicitMeta, Rule: \"MAJORITY Admins\"}",
            "Other: {Type: ImplicitMeta, Rule: \"MAJORITY Admins\"}",
        ),
    );
    assert!(
        config_from_profile(&no_admins, "H1")
            .unwrap_err()
            .0
            .contains("no Admins policy defined")
    );
    let missing_msp = write(
        "msp.yaml",
        &src.replace("org1.example.com/msp", "org9.example.com/msp"),
    );
    assert!(
        config_from_profile(&missing_msp, "H1")
            .unwrap_err()
            .0
            .contains("Error loading MSP configuration")
    );
    std::fs::remove_dir_all(&dir).ok();
}
