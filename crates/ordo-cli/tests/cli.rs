//! The `ordo config` commands, run as a user runs them, against Fabric-made files: decode prints
//! configtxlator's exact JSON, encode inverts it, compute-update equals configtxlator's, genesis
//! equals configtxgen's config, and wrap-update + sign-update give an update the channel accepts.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ordo_proto::Message;

fn ordo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ordo"))
        .args(args)
        .output()
        .expect("run ordo")
}

fn ok(args: &[&str]) -> Output {
    let out = ordo(args);
    assert!(
        out.status.success(),
        "ordo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn fx(rel: &str) -> String {
    ordo_testkit::fixture(rel).display().to_string()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ordo-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn decode_prints_configtxlator_json_and_encode_inverts_it() {
    for (ty, rel) in [
        ("common.Block", "ledger/from-orderer1/block_13.pb"),
        ("common.Block", "channel-genesis/channel-5.block"),
        ("common.Envelope", "envelopes/tx_valid_org1_user1.pb"),
        ("common.Config", "config-update/add_orderer4.orig.pb"),
        ("common.ConfigUpdate", "config-update/remove_two.upd.pb"),
    ] {
        let out = ok(&["config", "decode", "--type", ty, &fx(rel)]);
        let json_rel = rel.rsplit_once('.').unwrap().0.to_string() + ".json";
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            ordo_testkit::read_string(&json_rel),
            "{rel}"
        );
    }
    let pb = tmp("tx.pb");
    ok(&[
        "config",
        "encode",
        "--type",
        "common.Envelope",
        &fx("envelopes/tx_valid_org1_user1.json"),
        "-o",
        s(&pb),
    ]);
    assert_eq!(
        std::fs::read(&pb).unwrap(),
        ordo_testkit::read("envelopes/tx_valid_org1_user1.pb")
    );
}

#[test]
fn compute_update_equals_configtxlator() {
    let out = tmp("upd.pb");
    ok(&[
        "config",
        "compute-update",
        "--channel",
        "channel-3",
        "--original",
        &fx("config-update/add_orderer4.orig.pb"),
        "--updated",
        &fx("config-update/add_orderer4.new.pb"),
        "-o",
        s(&out),
    ]);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        ordo_testkit::read("config-update/add_orderer4.upd.pb")
    );
    let same = ordo(&[
        "config",
        "compute-update",
        "--channel",
        "channel-3",
        "--original",
        &fx("config-update/add_orderer4.orig.pb"),
        "--updated",
        &fx("config-update/add_orderer4.orig.pb"),
        "-o",
        s(&tmp("none.pb")),
    ]);
    assert!(!same.status.success());
}

#[test]
fn genesis_builds_the_channel_configtxgen_would() {
    let out = tmp("genesis.block");
    ok(&[
        "config",
        "genesis",
        "--config",
        &fx("config/configtx.yaml"),
        "--profile",
        "H3",
        "--channel",
        "channel-3",
        "-o",
        s(&out),
    ]);
    let ours = ordo_proto::common::Block::decode(std::fs::read(&out).unwrap().as_slice()).unwrap();
    let theirs = ordo_proto::common::Block::decode(
        ordo_testkit::read("channel-genesis/channel-3.block").as_slice(),
    )
    .unwrap();
    let cfg = |b: &ordo_proto::common::Block| {
        let env =
            ordo_proto::common::Envelope::decode(b.data.as_ref().unwrap().data[0].clone()).unwrap();
        ordo_config::envelope::config_envelope(&env).unwrap()
    };
    assert_eq!(cfg(&ours), cfg(&theirs));
    let bad = ordo(&[
        "config",
        "genesis",
        "--config",
        &fx("config/configtx.yaml"),
        "--profile",
        "H3",
        "--channel",
        "Bad_Name",
        "-o",
        s(&tmp("x")),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("illegal characters"));
}

#[test]
fn wrapped_and_signed_update_is_accepted_by_the_channel() {
    let env = tmp("update.env");
    ok(&[
        "config",
        "wrap-update",
        "--channel",
        "channel-3",
        &fx("config-update/add_orderer4.upd.pb"),
        "-o",
        s(&env),
    ]);
    let admin = fx("crypto-config/ordererOrganizations/example.com/users/Admin@example.com/msp");
    ok(&[
        "config",
        "sign-update",
        s(&env),
        "--msp-dir",
        &admin,
        "--msp-id",
        "OrdererMSP",
    ]);
    let signed =
        ordo_proto::common::Envelope::decode(std::fs::read(&env).unwrap().as_slice()).unwrap();
    let genesis = ordo_proto::common::Block::decode(
        ordo_testkit::read("channel-genesis/channel-3.block").as_slice(),
    )
    .unwrap();
    let genv = ordo_proto::common::Envelope::decode(genesis.data.unwrap().data[0].clone()).unwrap();
    let cc = ordo_config::ChannelConfig::new(
        &ordo_config::envelope::config_envelope(&genv)
            .unwrap()
            .config
            .unwrap(),
    )
    .unwrap();
    let next = ordo_config::configtx::propose_config_update(&cc, "channel-3", &signed).unwrap();
    let fabric_13 = ordo_proto::common::Block::decode(
        ordo_testkit::read("ledger/from-orderer1/block_13.pb").as_slice(),
    )
    .unwrap();
    let f13 =
        ordo_proto::common::Envelope::decode(fabric_13.data.unwrap().data[0].clone()).unwrap();
    assert_eq!(
        next.config,
        ordo_config::envelope::config_envelope(&f13).unwrap().config
    );
    // Signed by a client instead, the channel refuses it.
    let env2 = tmp("update2.env");
    let user =
        fx("crypto-config/peerOrganizations/org1.example.com/users/User1@org1.example.com/msp");
    ok(&[
        "config",
        "wrap-update",
        "--channel",
        "channel-3",
        &fx("config-update/add_orderer4.upd.pb"),
        "--msp-dir",
        &user,
        "--msp-id",
        "Org1MSP",
        "-o",
        s(&env2),
    ]);
    let signed2 =
        ordo_proto::common::Envelope::decode(std::fs::read(&env2).unwrap().as_slice()).unwrap();
    assert!(ordo_config::configtx::propose_config_update(&cc, "channel-3", &signed2).is_err());
}

#[test]
fn bad_input_gives_errors_not_panics() {
    let junk = tmp("junk");
    std::fs::write(&junk, b"\xff\xff\xff\x00garbage").unwrap();
    for args in [
        vec!["config", "decode", "--type", "common.Block", s(&junk)],
        vec!["config", "decode", "--type", "no.Such", s(&junk)],
        vec![
            "config",
            "encode",
            "--type",
            "common.Block",
            s(&junk),
            "-o",
            s(&tmp("o")),
        ],
        vec![
            "config",
            "sign-update",
            s(&junk),
            "--msp-dir",
            "/nonexistent",
            "--msp-id",
            "X",
        ],
        vec![
            "config",
            "decode",
            "--type",
            "common.Block",
            "/nonexistent/file",
        ],
    ] {
        let out = ordo(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("Error: "),
            "{args:?}"
        );
    }
}
