//! Conformance against files made by Fabric v2.4.9 itself: every JSON file that configtxlator
//! wrote beside a binary fixture, the round trips configtxlator's own encoder allows, and the
//! config updates its `compute_update` produced.

use ordo_proto::Message;
use ordo_proto::common::{Config, ConfigUpdate};
use ordo_protolator::{Error, compute_update, decode, encode, marshal, to_json_string};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A binary fixture, the `--type` it was decoded with, and configtxlator's JSON for it.
struct Case {
    binary: PathBuf,
    type_name: &'static str,
    json: PathBuf,
}

fn with_json(binary: PathBuf, type_name: &'static str) -> Case {
    let json = binary.with_extension("json");
    Case {
        binary,
        type_name,
        json,
    }
}

/// Every fixture that has configtxlator's JSON beside it. (`*.pb.response.json` files hold
/// Broadcast answers, not configtxlator output, so cases are found from the binaries.)
fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for f in ordo_testkit::files_with_suffix("channel-genesis", ".block") {
        out.push(with_json(f, "common.Block"));
    }
    for f in ordo_testkit::files_with_suffix("ledger/from-orderer1", ".pb") {
        out.push(with_json(f, "common.Block"));
    }
    for f in ordo_testkit::files_with_suffix("envelopes", ".pb") {
        out.push(with_json(f, "common.Envelope"));
    }
    for (suffix, type_name) in [
        (".orig.pb", "common.Config"),
        (".new.pb", "common.Config"),
        (".upd.pb", "common.ConfigUpdate"),
        (".env.pb", "common.Envelope"),
    ] {
        for f in ordo_testkit::files_with_suffix("config-update", suffix) {
            out.push(with_json(f, type_name));
        }
    }
    out
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn decode_reproduces_every_configtxlator_json_byte_for_byte() {
    let cases = cases();
    // 3 genesis blocks, 14 ledger blocks, 6 envelopes, 2 × 4 config-update files.
    assert_eq!(cases.len(), 31);
    for case in cases {
        let label = name(&case.binary);
        let text = String::from_utf8(read(&case.json)).expect("fixture JSON is UTF-8");
        let expected: Value = serde_json::from_str(&text).expect("fixture JSON parses");
        let got =
            decode(case.type_name, &read(&case.binary)).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(got, expected, "{label}: decoded value differs");
        assert_eq!(to_json_string(&got), text, "{label}: text differs");
    }
}

/// Files whose bytes are canonical (maps sorted wherever they have more than one entry, fields in
/// order, nothing unknown): transaction envelopes and blocks, and the config updates.
fn canonical_files() -> Vec<(PathBuf, &'static str)> {
    let mut out = Vec::new();
    for f in ordo_testkit::files_with_suffix("envelopes", ".pb") {
        out.push((f, "common.Envelope"));
    }
    for dir in ["ledger/from-orderer1", "ledger/from-orderer2"] {
        for f in ordo_testkit::files_with_suffix(dir, ".pb") {
            let n = name(&f);
            // Blocks 0 and 13 are config blocks, written by Fabric with maps in random order.
            if n != "block_0.pb" && n != "block_13.pb" {
                out.push((f, "common.Block"));
            }
        }
    }
    for f in ordo_testkit::files_with_suffix("config-update", ".upd.pb") {
        out.push((f, "common.ConfigUpdate"));
    }
    for f in ordo_testkit::files_with_suffix("config-update", ".env.pb") {
        out.push((f, "common.Envelope"));
    }
    out
}

#[test]
fn canonical_fixtures_round_trip_byte_for_byte() {
    let files = canonical_files();
    assert_eq!(files.len(), 6 + 2 * 12 + 2 + 2);
    for (file, type_name) in files {
        let label = file.display().to_string();
        let bytes = read(&file);
        let json = decode(type_name, &bytes).unwrap_or_else(|e| panic!("{label}: {e}"));
        let again = encode(type_name, &json).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert!(again == bytes, "{label}: re-encoded bytes differ");
    }
}

/// Config blocks and configs as Fabric wrote them: their maps are in Go's random order, so
/// re-encoding (which sorts) gives other bytes of the same size, the same JSON, and a fixed point.
#[test]
fn config_fixtures_re_encode_to_the_same_json_and_a_fixed_point() {
    let mut files: Vec<(PathBuf, &str)> = Vec::new();
    for f in ordo_testkit::files_with_suffix("channel-genesis", ".block") {
        files.push((f, "common.Block"));
    }
    for dir in ["ledger/from-orderer1", "ledger/from-orderer2"] {
        for n in ["block_0.pb", "block_13.pb"] {
            files.push((ordo_testkit::fixture(&format!("{dir}/{n}")), "common.Block"));
        }
    }
    for suffix in [".orig.pb", ".new.pb"] {
        for f in ordo_testkit::files_with_suffix("config-update", suffix) {
            files.push((f, "common.Config"));
        }
    }
    assert_eq!(files.len(), 3 + 4 + 4);
    for (file, type_name) in files {
        let label = file.display().to_string();
        let original = read(&file);
        let json = decode(type_name, &original).unwrap_or_else(|e| panic!("{label}: {e}"));
        let encoded = encode(type_name, &json).unwrap_or_else(|e| panic!("{label}: {e}"));
        // Only the order of map entries changed, so nothing was lost or added.
        assert_eq!(encoded.len(), original.len(), "{label}: size changed");
        let json_again = decode(type_name, &encoded).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(json_again, json, "{label}: JSON changed");
        let encoded_again =
            encode(type_name, &json_again).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert!(encoded_again == encoded, "{label}: not a fixed point");
    }
}

/// The three genesis blocks are not canonical: Fabric's random map order is visible in them.
/// (If this ever fails, the fixtures were regenerated with sorted maps and the round trip above
/// can move them to the byte-for-byte list.)
#[test]
fn fabric_genesis_blocks_are_not_canonical() {
    let differing = ordo_testkit::files_with_suffix("channel-genesis", ".block")
        .into_iter()
        .filter(|f| {
            let bytes = read(f);
            let json = decode("common.Block", &bytes).expect("decodes");
            encode("common.Block", &json).expect("encodes") != bytes
        })
        .count();
    assert!(differing > 0);
}

fn config(rel: &str) -> Config {
    Config::decode(ordo_testkit::read(rel).as_slice()).expect("fixture is a common.Config")
}

#[test]
fn compute_update_reproduces_fabric_byte_for_byte() {
    for name in ["add_orderer4", "remove_two"] {
        let expected_bytes = ordo_testkit::read(&format!("config-update/{name}.upd.pb"));
        let expected = ConfigUpdate::decode(expected_bytes.as_slice()).expect("upd decodes");
        let original = config(&format!("config-update/{name}.orig.pb"));
        let updated = config(&format!("config-update/{name}.new.pb"));

        let update = compute_update(&expected.channel_id, &original, &updated)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(update, expected, "{name}");
        let bytes = marshal("common.ConfigUpdate", &update).expect("marshal");
        assert!(
            bytes == expected_bytes,
            "{name}: bytes differ from Fabric's"
        );
        assert_eq!(
            to_json_string(&decode("common.ConfigUpdate", &bytes).expect("decode")),
            String::from_utf8(ordo_testkit::read(&format!(
                "config-update/{name}.upd.json"
            )))
            .expect("utf-8"),
            "{name}"
        );
    }
}

#[test]
fn compute_update_changes_only_the_consensus_type_when_adding_a_consenter() {
    let original = config("config-update/add_orderer4.orig.pb");
    let updated = config("config-update/add_orderer4.new.pb");
    let update = compute_update("channel-3", &original, &updated).expect("update");
    let read = update.read_set.expect("read set");
    let write = update.write_set.expect("write set");
    assert_eq!(read.groups.keys().collect::<Vec<_>>(), ["Orderer"]);
    assert!(read.groups["Orderer"].values.is_empty());
    let orderer = &write.groups["Orderer"];
    assert_eq!(orderer.values.keys().collect::<Vec<_>>(), ["ConsensusType"]);
    let consensus = &orderer.values["ConsensusType"];
    assert_eq!(
        consensus.version,
        original.channel_group.as_ref().unwrap().groups["Orderer"].values["ConsensusType"].version
            + 1
    );
    assert_eq!(consensus.mod_policy, "Admins");
    assert_eq!(
        consensus.value,
        updated.channel_group.as_ref().unwrap().groups["Orderer"].values["ConsensusType"].value
    );
}

#[test]
fn compute_update_refuses_identical_configs_and_missing_groups() {
    let original = config("config-update/add_orderer4.orig.pb");
    assert_eq!(
        compute_update("channel-3", &original, &original),
        Err(Error::NoDifferences)
    );
    // A new sequence number alone is no difference.
    let mut bumped = original.clone();
    bumped.sequence += 1;
    assert_eq!(
        compute_update("channel-3", &original, &bumped),
        Err(Error::NoDifferences)
    );
    let empty = Config::default();
    assert_eq!(
        compute_update("channel-3", &empty, &original),
        Err(Error::NoChannelGroup { which: "original" })
    );
    assert_eq!(
        compute_update("channel-3", &original, &empty),
        Err(Error::NoChannelGroup { which: "updated" })
    );
}
