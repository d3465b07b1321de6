//! How configtxlator shows (and reads back) the corners of Fabric's messages: which opaque bytes
//! are expanded and which stay base64, how absent, empty and default values print, and what the
//! config tree allows. Inputs are built here with prost or by hand.

use bytes::Bytes;
use ordo_proto::Message;
use ordo_proto::common::{
    self, Capabilities, Capability, ChannelHeader, Config, ConfigGroup, ConfigValue, Envelope,
    Header, ImplicitMetaPolicy, MspPrincipal, Payload, Policy, SignaturePolicy,
    SignaturePolicyEnvelope,
};
use ordo_proto::{orderer, protos, rwset};
use ordo_protolator::{Error, decode, encode, marshal, to_json_string};
use serde_json::{Value, json};

/// One length-delimited field, written by hand (prost cannot write a present-but-empty field).
fn ld(field: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![(field << 3) | 2, content.len() as u8];
    out.extend_from_slice(content);
    out
}

fn envelope_with(header_type: i32, data: &[u8]) -> Vec<u8> {
    let channel_header = ChannelHeader {
        r#type: header_type,
        channel_id: "ch".into(),
        ..Default::default()
    };
    let payload = Payload {
        header: Some(Header {
            channel_header: channel_header.encode_to_vec().into(),
            signature_header: Bytes::new(),
        }),
        data: Bytes::copy_from_slice(data),
    };
    Envelope {
        payload: payload.encode_to_vec().into(),
        signature: Bytes::from_static(b"sig"),
    }
    .encode_to_vec()
}

/// A config encoded as Fabric would encode it. (prost would leave out an empty group, which
/// Fabric then reads as no group at all: see `map_entries_without_a_value_vanish…`.)
fn config_bytes(config: &Config) -> Vec<u8> {
    marshal("common.Config", config).expect("marshal")
}

fn config_with_group(name: &str, group: ConfigGroup) -> Config {
    Config {
        sequence: 0,
        channel_group: Some(ConfigGroup {
            groups: [(name.to_string(), group)].into(),
            ..Default::default()
        }),
    }
}

#[test]
fn absent_bytes_print_null_and_empty_bytes_print_empty_string() {
    // signature present with zero length, payload absent
    let bytes = ld(2, b"");
    assert_eq!(
        decode("common.Envelope", &bytes).unwrap(),
        json!({"payload": null, "signature": ""})
    );
    // An opaque field present with zero length is decoded: all its fields at their defaults.
    let bytes = ld(1, b"");
    assert_eq!(
        decode("common.Envelope", &bytes).unwrap(),
        json!({"payload": {"data": null, "header": null}, "signature": null})
    );
}

#[test]
fn channel_header_prints_defaults_numbers_and_timestamps() {
    let header = ChannelHeader {
        r#type: 3,
        version: -2,
        timestamp: Some(prost_types::Timestamp {
            seconds: 1_600_000_000,
            nanos: 120_000_000,
        }),
        channel_id: "<ch&>".into(),
        tx_id: String::new(),
        epoch: u64::MAX,
        extension: Bytes::new(),
        tls_cert_hash: Bytes::from_static(&[0xfb, 0xff]),
    };
    let value = decode("common.ChannelHeader", &header.encode_to_vec()).unwrap();
    assert_eq!(
        value,
        json!({
            "channel_id": "<ch&>",
            "epoch": "18446744073709551615",
            "extension": null,
            "timestamp": "2020-09-13T12:26:40.120Z",
            "tls_cert_hash": "+/8=",
            "tx_id": "",
            "type": 3,
            "version": -2
        })
    );
    assert_eq!(
        to_json_string(&value),
        "{\n\t\"channel_id\": \"\\u003cch\\u0026\\u003e\",\n\t\"epoch\": \"18446744073709551615\",\n\t\"extension\": null,\n\t\"timestamp\": \"2020-09-13T12:26:40.120Z\",\n\t\"tls_cert_hash\": \"+/8=\",\n\t\"tx_id\": \"\",\n\t\"type\": 3,\n\t\"version\": -2\n}\n"
    );
    assert_eq!(
        encode("common.ChannelHeader", &value).unwrap(),
        header.encode_to_vec()
    );
}

#[test]
fn payload_data_is_chosen_by_the_channel_header_type() {
    // MESSAGE: a ConfigValue outside any config, so its value stays base64.
    let config_value = ConfigValue {
        version: 3,
        value: Bytes::from_static(&[1, 2]),
        mod_policy: "mp".into(),
    };
    let bytes = envelope_with(0, &config_value.encode_to_vec());
    let value = decode("common.Envelope", &bytes).unwrap();
    assert_eq!(
        value["payload"]["data"],
        json!({"mod_policy": "mp", "value": "AQI=", "version": "3"})
    );
    assert_eq!(encode("common.Envelope", &value).unwrap(), bytes);

    // ORDERER_TRANSACTION: another envelope, decoded all the way down.
    let inner = envelope_with(1, b"");
    let bytes = envelope_with(4, &inner);
    let value = decode("common.Envelope", &bytes).unwrap();
    assert_eq!(
        value["payload"]["data"]["payload"]["header"]["channel_header"]["type"],
        json!(1)
    );
    assert_eq!(encode("common.Envelope", &value).unwrap(), bytes);

    // DELIVER_SEEK_INFO and CHAINCODE_PACKAGE data cannot be shown; without data there is
    // nothing to show and no error.
    for header_type in [5, 6, 42] {
        let err = decode(
            "common.Envelope",
            &envelope_with(header_type, &[0x0a, 0x00]),
        )
        .unwrap_err();
        assert_eq!(
            err,
            Error::NoRule {
                path: "payload.data".into(),
                reason: format!("decoding type {header_type} is unimplemented"),
            }
        );
        let value = decode("common.Envelope", &envelope_with(header_type, b"")).unwrap();
        assert_eq!(value["payload"]["data"], Value::Null);
    }

    // Data without a header cannot be typed.
    let payload = Payload {
        header: None,
        data: Bytes::from_static(b"xx"),
    };
    let bytes = ld(1, &payload.encode_to_vec());
    assert!(matches!(
        decode("common.Envelope", &bytes),
        Err(Error::NoRule { reason, .. }) if reason == "cannot determine payload type when header is missing"
    ));
}

#[test]
fn channel_header_extension_only_for_endorser_transactions() {
    let mut header = ChannelHeader {
        r#type: 3,
        extension: protos::ChaincodeHeaderExtension {
            chaincode_id: Some(protos::ChaincodeId {
                name: "cc".into(),
                ..Default::default()
            }),
        }
        .encode_to_vec()
        .into(),
        ..Default::default()
    };
    let value = decode("common.ChannelHeader", &header.encode_to_vec()).unwrap();
    assert_eq!(
        value["extension"],
        json!({"chaincode_id": {"name": "cc", "path": "", "version": ""}})
    );
    header.r#type = 1;
    assert!(matches!(
        decode("common.ChannelHeader", &header.encode_to_vec()),
        Err(Error::NoRule { path, .. }) if path == "extension"
    ));
}

#[test]
fn policies_decode_by_type_and_keep_unknown_enum_numbers() {
    let implicit = Policy {
        r#type: 3,
        value: ImplicitMetaPolicy {
            sub_policy: "Admins".into(),
            rule: 7, // no such rule
        }
        .encode_to_vec()
        .into(),
    };
    let value = decode("common.Policy", &implicit.encode_to_vec()).unwrap();
    assert_eq!(
        value,
        json!({"type": 3, "value": {"rule": 7, "sub_policy": "Admins"}})
    );
    assert_eq!(
        encode("common.Policy", &value).unwrap(),
        implicit.encode_to_vec()
    );

    let signature = Policy {
        r#type: 1,
        value: SignaturePolicyEnvelope {
            version: 0,
            rule: Some(SignaturePolicy {
                r#type: Some(common::signature_policy::Type::SignedBy(0)),
            }),
            identities: vec![MspPrincipal {
                principal_classification: 0,
                principal: common::MspRole {
                    msp_identifier: "Org1MSP".into(),
                    role: 1,
                }
                .encode_to_vec()
                .into(),
            }],
        }
        .encode_to_vec()
        .into(),
    };
    let value = decode("common.Policy", &signature.encode_to_vec()).unwrap();
    assert_eq!(
        value,
        json!({"type": 1, "value": {
            "identities": [{"principal": {"msp_identifier": "Org1MSP", "role": "ADMIN"},
                            "principal_classification": "ROLE"}],
            // A set oneof member prints under its own name, even when zero.
            "rule": {"signed_by": 0},
            "version": 0
        }})
    );
    assert_eq!(
        encode("common.Policy", &value).unwrap(),
        signature.encode_to_vec()
    );

    for policy_type in [0, 2] {
        let policy = Policy {
            r#type: policy_type,
            value: Bytes::from_static(&[0x0a, 0x01, b'a']),
        };
        assert!(matches!(
            decode("common.Policy", &policy.encode_to_vec()),
            Err(Error::NoRule { reason, .. }) if reason == format!("unable to decode policy type: {policy_type}")
        ));
    }
}

#[test]
fn anonymity_principals_cannot_be_shown_unless_empty() {
    let envelope = |principal: &[u8]| {
        SignaturePolicyEnvelope {
            identities: vec![MspPrincipal {
                principal_classification: 3,
                principal: Bytes::copy_from_slice(principal),
            }],
            ..Default::default()
        }
        .encode_to_vec()
    };
    let value = decode("common.SignaturePolicyEnvelope", &envelope(b"")).unwrap();
    assert_eq!(
        value["identities"][0],
        json!({"principal": null, "principal_classification": "ANONYMITY"})
    );
    let err = decode("common.SignaturePolicyEnvelope", &envelope(&[0x08, 0x01])).unwrap_err();
    assert_eq!(
        err,
        Error::NoRule {
            path: "identities[0].principal".into(),
            reason: "unable to decode MSP type: ANONYMITY".into()
        }
    );
}

#[test]
fn messages_inside_a_oneof_are_not_expanded() {
    // A DeliverResponse carries its block in a oneof, so the block's envelopes stay base64.
    let envelope = envelope_with(3, b"");
    let response = orderer::DeliverResponse {
        r#type: Some(orderer::deliver_response::Type::Block(common::Block {
            header: None,
            data: Some(common::BlockData {
                data: vec![envelope.clone().into()],
            }),
            metadata: None,
        })),
    };
    let value = decode("orderer.DeliverResponse", &response.encode_to_vec()).unwrap();
    let b64 = base64_of(&envelope);
    assert_eq!(
        value,
        json!({"block": {"data": {"data": [b64]}, "header": null, "metadata": null}})
    );
    // Reading it back, the oneof is again plain jsonpb: base64 is what it wants.
    assert_eq!(
        encode("orderer.DeliverResponse", &value).unwrap(),
        response.encode_to_vec()
    );
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn block_metadata_stays_base64() {
    let block = common::Block {
        header: Some(common::BlockHeader {
            number: 5,
            previous_hash: Bytes::from_static(b"prev"),
            data_hash: Bytes::new(),
        }),
        data: Some(common::BlockData { data: vec![] }),
        metadata: Some(common::BlockMetadata {
            metadata: vec![
                common::Metadata {
                    value: Bytes::from_static(&[0x08, 0x01]),
                    signatures: vec![],
                }
                .encode_to_vec()
                .into(),
                Bytes::new(),
            ],
        }),
    };
    let value = decode("common.Block", &block.encode_to_vec()).unwrap();
    assert_eq!(
        value,
        json!({
            "data": {"data": []},
            "header": {"data_hash": null, "number": "5", "previous_hash": "cHJldg=="},
            "metadata": {"metadata": ["CgIIAQ==", ""]}
        })
    );
    assert_eq!(
        encode("common.Block", &value).unwrap(),
        block.encode_to_vec()
    );
}

#[test]
fn config_values_are_typed_by_name_and_place() {
    let consensus = orderer::ConsensusType {
        r#type: "etcdraft".into(),
        metadata: ordo_proto::etcdraft::ConfigMetadata {
            consenters: vec![ordo_proto::etcdraft::Consenter {
                host: "o1".into(),
                port: 7050,
                ..Default::default()
            }],
            options: None,
        }
        .encode_to_vec()
        .into(),
        state: 0,
    };
    let orderer_group = ConfigGroup {
        values: [(
            "ConsensusType".to_string(),
            ConfigValue {
                version: 1,
                value: consensus.encode_to_vec().into(),
                mod_policy: "Admins".into(),
            },
        )]
        .into(),
        ..Default::default()
    };
    let config = config_with_group("Orderer", orderer_group);
    let bytes = config.encode_to_vec();
    let value = decode("common.Config", &bytes).unwrap();
    assert_eq!(
        value["channel_group"]["groups"]["Orderer"]["values"]["ConsensusType"],
        json!({
            "mod_policy": "Admins",
            "value": {
                "metadata": {
                    "consenters": [{"client_tls_cert": null, "host": "o1", "port": 7050, "server_tls_cert": null}],
                    "options": null
                },
                "state": "STATE_NORMAL",
                "type": "etcdraft"
            },
            "version": "1"
        })
    );
    assert_eq!(encode("common.Config", &value).unwrap(), bytes);

    // Outside a config (a bare ConfigGroup) nothing says what the value is: it stays base64.
    let group = config.channel_group.clone().unwrap();
    let bare = decode("common.ConfigGroup", &group.encode_to_vec()).unwrap();
    assert!(bare["groups"]["Orderer"]["values"]["ConsensusType"]["value"].is_string());
}

#[test]
fn other_consensus_types_lose_their_metadata() {
    let consensus = orderer::ConsensusType {
        r#type: "kafka".into(),
        metadata: Bytes::from_static(&[0x08, 0x01]),
        state: 1,
    };
    let value = decode("orderer.ConsensusType", &consensus.encode_to_vec()).unwrap();
    assert_eq!(
        value,
        json!({"metadata": {}, "state": "STATE_MAINTENANCE", "type": "kafka"})
    );
    let reencoded = encode("orderer.ConsensusType", &value).unwrap();
    let back = orderer::ConsensusType::decode(reencoded.as_slice()).unwrap();
    assert!(back.metadata.is_empty());
    assert_eq!(back.state, 1);
}

#[test]
fn the_config_tree_refuses_unknown_groups_and_values() {
    // Unknown group names fail even when the group is empty.
    let config = config_with_group("Foo", ConfigGroup::default());
    assert_eq!(
        decode("common.Config", &config_bytes(&config)),
        Err(Error::NoRule {
            path: r#"channel_group.groups["Foo"]"#.into(),
            reason: "unknown channel group sub-group 'Foo'".into()
        })
    );
    // Orgs have no sub-groups.
    let app = ConfigGroup {
        groups: [(
            "Org1".to_string(),
            ConfigGroup {
                groups: [("Sub".to_string(), ConfigGroup::default())].into(),
                ..Default::default()
            },
        )]
        .into(),
        ..Default::default()
    };
    let err = decode(
        "common.Config",
        &config_bytes(&config_with_group("Application", app)),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::NoRule { reason, .. } if reason == "The application orgs do not support sub-groups")
    );

    // An unknown value name is only a problem when the value has bytes.
    let with_value = |value: &[u8]| Config {
        sequence: 0,
        channel_group: Some(ConfigGroup {
            values: [(
                "Foo".to_string(),
                ConfigValue {
                    version: 0,
                    value: Bytes::copy_from_slice(value),
                    mod_policy: "Admins".into(),
                },
            )]
            .into(),
            ..Default::default()
        }),
    };
    let value = decode("common.Config", &config_bytes(&with_value(b""))).unwrap();
    assert_eq!(
        value["channel_group"]["values"]["Foo"],
        json!({"mod_policy": "Admins", "value": null, "version": "0"})
    );
    assert!(matches!(
        decode("common.Config", &config_bytes(&with_value(&[0x0a, 0x01, b'x']))),
        Err(Error::NoRule { reason, .. }) if reason == "unknown Channel ConfigValue name: Foo"
    ));
    // Encoding follows the same rules.
    assert!(
        encode(
            "common.Config",
            &json!({"channel_group": {"values": {"Foo": {"value": null}}}})
        )
        .is_ok()
    );
    assert!(
        encode(
            "common.Config",
            &json!({"channel_group": {"values": {"Foo": {"value": {}}}}})
        )
        .is_err()
    );
    assert!(
        encode(
            "common.Config",
            &json!({"channel_group": {"groups": {"Foo": {}}}})
        )
        .is_err()
    );
}

#[test]
fn map_entries_without_a_value_vanish_and_prost_would_produce_them() {
    let capabilities = Capabilities {
        capabilities: [("V2_0".to_string(), Capability {})].into(),
    };
    // prost leaves the empty value out, so Fabric would read the entry as nil and drop it.
    let prost_bytes = capabilities.encode_to_vec();
    assert_eq!(
        decode("common.Capabilities", &prost_bytes).unwrap(),
        json!({"capabilities": {}})
    );
    // `marshal` writes the value like Fabric does, and the capability survives.
    let fabric_bytes = marshal("common.Capabilities", &capabilities).unwrap();
    assert_eq!(
        fabric_bytes,
        [&ld(1, &[ld(1, b"V2_0"), ld(2, b"")].concat())[..]].concat()
    );
    let value = decode("common.Capabilities", &fabric_bytes).unwrap();
    assert_eq!(value, json!({"capabilities": {"V2_0": {}}}));
    assert_eq!(encode("common.Capabilities", &value).unwrap(), fabric_bytes);

    // A bytes map that jsonpb prints by itself shows such an entry as null.
    let transient = ld(2, &ld(1, b"k"));
    assert_eq!(
        decode("protos.ChaincodeProposalPayload", &transient).unwrap(),
        json!({"TransientMap": {"k": null}, "input": null})
    );
    assert_eq!(
        encode(
            "protos.ChaincodeProposalPayload",
            &json!({"TransientMap": {"k": null}})
        )
        .unwrap(),
        transient
    );
}

#[test]
fn maps_are_written_sorted_and_read_in_any_order() {
    let unsorted = [
        ld(2, &[ld(1, b"b"), ld(2, &[1])].concat()),
        ld(2, &[ld(1, b"a"), ld(2, &[2])].concat()),
    ]
    .concat();
    let value = decode("protos.ChaincodeProposalPayload", &unsorted).unwrap();
    assert_eq!(value["TransientMap"], json!({"a": "Ag==", "b": "AQ=="}));
    let sorted = [
        ld(2, &[ld(1, b"a"), ld(2, &[2])].concat()),
        ld(2, &[ld(1, b"b"), ld(2, &[1])].concat()),
    ]
    .concat();
    assert_eq!(
        encode("protos.ChaincodeProposalPayload", &value).unwrap(),
        sorted
    );
}

#[test]
fn read_write_sets_expand_only_for_the_kv_model() {
    let kv = ordo_proto::kvrwset::KvrwSet {
        reads: vec![ordo_proto::kvrwset::KvRead {
            key: "k".into(),
            version: Some(ordo_proto::kvrwset::Version {
                block_num: 5,
                tx_num: 1,
            }),
        }],
        ..Default::default()
    };
    let mut set = rwset::TxReadWriteSet {
        data_model: 0,
        ns_rwset: vec![rwset::NsReadWriteSet {
            namespace: "cc".into(),
            rwset: kv.encode_to_vec().into(),
            collection_hashed_rwset: vec![rwset::CollectionHashedReadWriteSet {
                collection_name: "coll".into(),
                hashed_rwset: Bytes::from_static(&[0x12, 0x00]),
                pvt_rwset_hash: Bytes::from_static(b"h"),
            }],
        }],
    };
    let value = decode("rwset.TxReadWriteSet", &set.encode_to_vec()).unwrap();
    let ns = &value["ns_rwset"][0];
    assert_eq!(
        ns["rwset"]["reads"],
        json!([{"key": "k", "version": {"block_num": "5", "tx_num": "1"}}])
    );
    // Fabric's rule for collections names the wrong field, so hashed sets stay base64.
    assert_eq!(
        ns["collection_hashed_rwset"][0]["hashed_rwset"],
        json!("EgA=")
    );
    assert_eq!(
        encode("rwset.TxReadWriteSet", &value).unwrap(),
        set.encode_to_vec()
    );

    set.data_model = 1;
    let value = decode("rwset.TxReadWriteSet", &set.encode_to_vec()).unwrap();
    assert_eq!(value["data_model"], json!(1));
    assert!(value["ns_rwset"][0]["rwset"].is_string());
}

#[test]
fn config_update_isolated_data_must_be_empty() {
    let update = common::ConfigUpdate {
        channel_id: "c".into(),
        isolated_data: [("foo".to_string(), Bytes::from_static(&[1]))].into(),
        ..Default::default()
    };
    assert!(matches!(
        decode("common.ConfigUpdate", &update.encode_to_vec()),
        Err(Error::NoRule { reason, .. }) if reason == "Unknown map key: foo"
    ));
    assert!(
        encode(
            "common.ConfigUpdate",
            &json!({"isolated_data": {"foo": {}}})
        )
        .is_err()
    );
    assert_eq!(
        encode(
            "common.ConfigUpdate",
            &json!({"channel_id": "c", "isolated_data": {}})
        )
        .unwrap(),
        ld(1, b"c")
    );
}

#[test]
fn config_envelope_decodes_as_its_own_type() {
    // The CONFIG envelope of ledger block 13 (the config block), taken out of its block.
    let block = decode(
        "common.Block",
        &ordo_testkit::read("ledger/from-orderer1/block_13.pb"),
    )
    .unwrap();
    let config_envelope = &block["data"]["data"][0]["payload"]["data"];
    assert!(config_envelope["config"]["channel_group"]["groups"]["Orderer"].is_object());
    let bytes = encode("common.ConfigEnvelope", config_envelope).unwrap();
    assert_eq!(
        &decode("common.ConfigEnvelope", &bytes).unwrap(),
        config_envelope
    );
}

#[test]
fn jsonpb_reading_rules() {
    // lowerCamel names, quoted int32, numeric int64 and enum numbers are all accepted.
    let bytes = encode(
        "common.ChannelHeader",
        &json!({"channelId": "x", "type": "1", "epoch": 5, "txId": "t"}),
    )
    .unwrap();
    let header = ChannelHeader::decode(bytes.as_slice()).unwrap();
    assert_eq!(
        (
            header.r#type,
            header.epoch,
            header.channel_id.as_str(),
            header.tx_id.as_str()
        ),
        (1, 5, "x", "t")
    );
    assert_eq!(
        encode("common.MSPRole", &json!({"role": 3})).unwrap(),
        encode("common.MSPRole", &json!({"role": "PEER"})).unwrap()
    );
    // Base64 may be broken over lines; timestamps may carry any offset.
    assert_eq!(
        encode("common.Envelope", &json!({"signature": "AQ\nI="})).unwrap(),
        ld(2, &[1, 2])
    );
    let bytes = encode(
        "common.ChannelHeader",
        &json!({"timestamp": "2020-01-01T01:00:00.5+01:00"}),
    )
    .unwrap();
    let header = ChannelHeader::decode(bytes.as_slice()).unwrap();
    assert_eq!(
        header.timestamp,
        Some(prost_types::Timestamp {
            seconds: 1_577_836_800,
            nanos: 500_000_000
        })
    );
    // Empty opaque objects and nulls leave the bytes out; an empty element of a list stays.
    assert_eq!(
        encode("common.Envelope", &json!({"payload": {}})).unwrap(),
        Vec::<u8>::new()
    );
    assert_eq!(
        encode("common.Envelope", &json!({"payload": null})).unwrap(),
        Vec::<u8>::new()
    );
    assert_eq!(
        encode("common.BlockData", &json!({"data": [{}]})).unwrap(),
        ld(1, b"")
    );
    // A oneof member is written even when zero.
    assert_eq!(
        encode("common.SignaturePolicy", &json!({"signed_by": 0})).unwrap(),
        vec![0x08, 0x00]
    );
}
