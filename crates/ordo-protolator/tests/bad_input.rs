//! Bad input of every kind gives a typed error, never a panic: cut or random bytes, JSON of the
//! wrong shape, unknown type names, and nesting deep enough to threaten the stack.

use ordo_proto::Message;
use ordo_proto::common::{SignaturePolicy, signature_policy};
use ordo_protolator::{Error, MAX_DEPTH, WireError, decode, encode, marshal};
use serde_json::{Value, json};

const TYPES: [&str; 7] = [
    "common.Block",
    "common.Envelope",
    "common.Config",
    "common.ConfigUpdate",
    "common.ConfigEnvelope",
    "protos.Transaction",
    "common.Policy",
];

#[test]
fn every_truncation_of_a_transaction_block_is_an_error_or_a_different_message() {
    let block = ordo_testkit::read("ledger/from-orderer1/block_1.pb");
    let full = decode("common.Block", &block).expect("full block decodes");
    let mut errors = 0;
    for len in 0..block.len() {
        match decode("common.Block", &block[..len]) {
            Err(Error::Wire { .. }) => errors += 1,
            Err(other) => panic!("cut at {len}: unexpected error kind {other}"),
            // Cutting exactly between two fields leaves a valid, smaller block.
            Ok(value) => assert_ne!(value, full, "cut at {len} decoded to the whole block"),
        }
    }
    assert!(errors > block.len() * 9 / 10, "only {errors} errors");
}

#[test]
fn truncations_of_a_config_block_never_panic() {
    let block = ordo_testkit::read("channel-genesis/channel-3.block");
    let full = decode("common.Block", &block).expect("full block decodes");
    // Every length would take long unoptimised; a stride still cuts inside every kind of field.
    let lengths = (0..block.len())
        .step_by(37)
        .chain(block.len() - 64..block.len());
    for len in lengths {
        if let Ok(value) = decode("common.Block", &block[..len]) {
            assert_ne!(value, full, "cut at {len}");
            let _ = encode("common.Block", &value);
        }
    }
}

/// A small deterministic generator, so failures can be replayed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let len = (rng.next() % 64) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        for type_name in TYPES {
            if let Ok(value) = decode(type_name, &bytes) {
                // Whatever decodes must at least be translatable back without a panic.
                let _ = encode(type_name, &value);
            }
        }
    }
}

#[test]
fn flipped_bytes_in_a_real_envelope_never_panic() {
    let envelope = ordo_testkit::read("envelopes/tx_valid_org1_user1.pb");
    let mut rng = XorShift(42);
    for i in 0..envelope.len() {
        let mut bytes = envelope.clone();
        bytes[i] ^= (rng.next() as u8) | 1;
        if let Ok(value) = decode("common.Envelope", &bytes) {
            let _ = encode("common.Envelope", &value);
        }
    }
}

#[test]
fn garbage_is_reported_as_wire_errors() {
    // Field 0.
    assert!(matches!(
        decode("common.Block", &[0x00, 0x00]),
        Err(Error::Wire {
            reason: WireError::IllegalTag0 { .. },
            ..
        })
    ));
    // A length running past the end.
    assert!(matches!(
        decode("common.Envelope", &[0x0a, 0x05, 0x01]),
        Err(Error::Wire {
            reason: WireError::UnexpectedEof,
            ..
        })
    ));
    // Bad bytes deep inside: the path says where.
    let mut envelope = ordo_proto::common::Envelope {
        payload: ordo_proto::common::Payload {
            header: Some(ordo_proto::common::Header {
                channel_header: vec![0x22, 0x02, 0xff, 0xfe].into(), // channel_id, not UTF-8
                signature_header: Default::default(),
            }),
            data: Default::default(),
        }
        .encode_to_vec()
        .into(),
        signature: Default::default(),
    };
    match decode("common.Envelope", &envelope.encode_to_vec()) {
        Err(Error::Wire {
            path,
            type_name,
            reason: WireError::InvalidUtf8 { field },
        }) => {
            assert_eq!(path, "payload.header.channel_header.channel_id");
            assert_eq!(type_name, "common.ChannelHeader");
            assert_eq!(field, "common.ChannelHeader.channel_id");
        }
        other => panic!("unexpected {other:?}"),
    }
    // The payload holds only the start of its `header` field.
    envelope.payload = vec![0x0a].into();
    assert!(matches!(
        decode("common.Envelope", &envelope.encode_to_vec()),
        Err(Error::Wire { path, reason: WireError::UnexpectedEof, .. }) if path == "payload.header"
    ));
}

#[test]
fn json_of_the_wrong_shape_is_refused() {
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "common.Block",
            json!([]),
            "the top level must be a JSON object",
        ),
        (
            "common.Block",
            json!("x"),
            "the top level must be a JSON object",
        ),
        (
            "common.Block",
            json!({"header": 5}),
            "must be an object or null",
        ),
        (
            "common.Block",
            json!({"data": {"data": "AAAA"}}),
            "must be an array",
        ),
        (
            "common.Block",
            json!({"data": {"data": [null]}}),
            "must be an object",
        ),
        (
            "common.Block",
            json!({"header": {"number": 1.5}}),
            "cannot unmarshal number 1.5",
        ),
        (
            "common.Block",
            json!({"header": {"number": -1}}),
            "does not fit in uint64",
        ),
        (
            "common.Block",
            json!({"header": {"number": "12x"}}),
            "invalid integer",
        ),
        (
            "common.Block",
            json!({"header": {"previous_hash": "AQI"}}),
            "illegal base64",
        ),
        (
            "common.Block",
            json!({"header": {"previous_hash": "-_8="}}),
            "illegal base64",
        ),
        (
            "common.Block",
            json!({"header": {"data_hash": 7}}),
            "expected a base64 string",
        ),
        (
            "common.Block",
            json!({"headr": {}}),
            "unknown field \"headr\" in common.Block",
        ),
        (
            "common.ChannelHeader",
            json!({"type": "CONFIG"}),
            "invalid integer",
        ),
        (
            "common.ChannelHeader",
            json!({"type": 4_294_967_296_u64}),
            "does not fit in int32",
        ),
        (
            "common.ChannelHeader",
            json!({"extension": "AAA="}),
            "must be an object or null",
        ),
        (
            "common.ChannelHeader",
            json!({"timestamp": "yesterday"}),
            "bad Timestamp",
        ),
        (
            "common.ChannelHeader",
            json!({"timestamp": 5}),
            "bad Timestamp",
        ),
        (
            "common.ChannelHeader",
            json!({"channel_id": 5}),
            "expected a string",
        ),
        (
            "common.MSPRole",
            json!({"role": "peer"}),
            "unknown value \"peer\"",
        ),
        (
            "common.MSPRole",
            json!({"role": "3"}),
            "unknown value \"3\"",
        ),
        (
            "common.Header",
            json!({"channelHeader": {"channel_id": "x"}}),
            "expected a base64 string",
        ),
        (
            "common.Policy",
            json!({"value": {"rule": "ANY"}}),
            "unable to decode policy type: 0",
        ),
        (
            "common.Config",
            json!({"channel_group": {"values": null}}),
            "must be an object, got null",
        ),
        (
            "common.Config",
            json!({"channel_group": {"values": {"Capabilities": null}}}),
            "must be an object, got null",
        ),
        (
            "common.Config",
            json!({"channel_group": {"groups": {"Application": {"groups": {"Org1": {"groups": {"X": {}}}}}}}}),
            "do not support sub-groups",
        ),
        (
            "common.Config",
            json!({"channel_group": {"groups": {"Consortiums": {"values": {"X": {}}}}}}),
            "Consortiums currently support no config values",
        ),
        (
            "protos.ChaincodeInput",
            json!({"args": [1]}),
            "expected a base64 string",
        ),
        (
            "protos.ChaincodeInput",
            json!({"is_init": "true"}),
            "expected true or false",
        ),
        (
            "orderer.ConsensusType",
            json!({"type": "solo", "metadata": {"x": 1}}),
            "unknown field \"x\" in google.protobuf.Empty",
        ),
        (
            "google.protobuf.Timestamp",
            json!({"seconds": "1"}),
            "bad Timestamp",
        ),
    ];
    for (type_name, json, expected) in cases {
        match encode(type_name, &json) {
            Err(e @ (Error::Json { .. } | Error::NoRule { .. })) => assert!(
                e.to_string().contains(expected),
                "{type_name} {json}: error {e:?} does not mention {expected:?}"
            ),
            other => panic!("{type_name} {json}: expected an error, got {other:?}"),
        }
    }
}

#[test]
fn unknown_type_names_are_refused_everywhere() {
    let unknown = |r: Result<_, Error>| matches!(r, Err(Error::UnknownType { type_name, .. }) if type_name == "common.Blok");
    assert!(unknown(decode("common.Blok", &[]).map(drop)));
    assert!(unknown(encode("common.Blok", &json!({})).map(drop)));
    assert!(unknown(
        marshal("common.Blok", &ordo_proto::common::Block::default()).map(drop)
    ));
    // Fabric's names, not Rust's or lower case ones.
    assert!(decode("common.MspRole", &[]).is_err());
    assert!(decode("common.MSPRole", &[]).is_ok());
    // A type that prints as a string cannot be the top level.
    assert!(matches!(
        decode("google.protobuf.Timestamp", &[]),
        Err(Error::NotAnObject { .. })
    ));
}

/// `SignaturePolicy` rules can nest without end; each level is two messages deep.
fn nested_policy(levels: usize) -> SignaturePolicy {
    let mut policy = SignaturePolicy {
        r#type: Some(signature_policy::Type::SignedBy(0)),
    };
    for _ in 0..levels {
        policy = SignaturePolicy {
            r#type: Some(signature_policy::Type::NOutOf(signature_policy::NOutOf {
                n: 1,
                rules: vec![policy],
            })),
        };
    }
    policy
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let shallow = nested_policy(10).encode_to_vec();
    let value = decode("common.SignaturePolicy", &shallow).expect("10 levels are fine");
    assert_eq!(encode("common.SignaturePolicy", &value).unwrap(), shallow);

    let deep = nested_policy(MAX_DEPTH).encode_to_vec();
    assert!(matches!(
        decode("common.SignaturePolicy", &deep),
        Err(Error::TooDeep { .. })
    ));

    let mut json = json!({"signed_by": 0});
    for _ in 0..MAX_DEPTH {
        json = json!({"n_out_of": {"n": 1, "rules": [json]}});
    }
    assert!(matches!(
        encode("common.SignaturePolicy", &json),
        Err(Error::TooDeep { .. })
    ));
}
