//! Broadcast's message processing against Fabric's recorded answers: each fixture envelope gets the
//! status and info Fabric's orderer gave it, and each filter refuses with Fabric's status and text.

use bytes::Bytes;
use ordo_config::ChannelConfig;
use ordo_config::envelope::config_envelope;
use ordo_orderer::msgprocessor::{FilterSettings, MsgClass, Rejection, process_normal, route};
use ordo_proto::Message;
use ordo_proto::common::{Block, Config, Envelope, Status};

fn genesis_config() -> Config {
    let b =
        Block::decode(ordo_testkit::read("channel-genesis/channel-3.block").as_slice()).unwrap();
    let env = Envelope::decode(b.data.unwrap().data[0].clone()).unwrap();
    config_envelope(&env).unwrap().config.unwrap()
}

fn envelope(name: &str) -> Envelope {
    Envelope::decode(ordo_testkit::read(&format!("envelopes/{name}.pb")).as_slice()).unwrap()
}

const NOW: i64 = 1_900_000_000; // 2030, inside the fixture certificates' validity

/// Routes and processes like Fabric's `ProcessMessage` for a normal transaction.
fn broadcast(
    cc: &ChannelConfig,
    env: &Envelope,
    settings: FilterSettings,
    now: i64,
) -> (Status, String) {
    let lookup = |id: &str| (id == "channel-3").then_some(cc);
    let result = route(env, lookup).and_then(|(_, class, config)| {
        assert_eq!(class, MsgClass::Normal);
        process_normal(env, config, settings, now)
    });
    match result {
        Ok(_) => (Status::Success, String::new()),
        Err(Rejection { status, info }) => (status, info),
    }
}

#[test]
fn every_fixture_envelope_gets_fabrics_answer() {
    let cc = ChannelConfig::new(&genesis_config()).unwrap();
    let names = [
        "tx_valid_org1_user1",
        "tx_bad_signature",
        "tx_high_s_signature",
        "tx_org2_not_in_channel",
        "tx_org2_cert_claiming_org1msp",
        "tx_unknown_channel",
    ];
    for name in names {
        let answer: serde_json::Value = serde_json::from_str(&ordo_testkit::read_string(&format!(
            "envelopes/{name}.answer.txt"
        )))
        .unwrap();
        let (status, info) = broadcast(&cc, &envelope(name), FilterSettings::default(), NOW);
        assert_eq!(
            status as i64,
            answer["status_code"].as_i64().unwrap(),
            "{name}"
        );
        assert_eq!(info, answer["info"].as_str().unwrap(), "{name}");
    }
}

#[test]
fn expired_creators_are_refused_unless_checks_are_off() {
    let cc = ChannelConfig::new(&genesis_config()).unwrap();
    let env = envelope("tx_valid_org1_user1");
    let later = 2_500_000_000; // 2049: the creator's certificate has expired
    assert_eq!(
        broadcast(&cc, &env, FilterSettings::default(), later),
        (
            Status::BadRequest,
            "broadcast client identity expired".to_string()
        )
    );
    assert_eq!(
        broadcast(
            &cc,
            &env,
            FilterSettings {
                no_expiration_checks: true
            },
            later
        )
        .0,
        Status::Success
    );
}

#[test]
fn size_counts_payload_and_signature() {
    let mut config = genesis_config();
    let env = envelope("tx_valid_org1_user1");
    let size = (env.payload.len() + env.signature.len()) as u32;
    let set_max = |config: &mut Config, max: u32| {
        let o = config
            .channel_group
            .as_mut()
            .unwrap()
            .groups
            .get_mut("Orderer")
            .unwrap();
        let v = o.values.get_mut("BatchSize").unwrap();
        let bs = ordo_proto::orderer::BatchSize {
            max_message_count: 10,
            absolute_max_bytes: max,
            preferred_max_bytes: max,
        };
        v.value = bs.encode_to_vec().into();
    };
    set_max(&mut config, size);
    let cc = ChannelConfig::new(&config).unwrap();
    assert_eq!(
        broadcast(&cc, &env, FilterSettings::default(), NOW).0,
        Status::Success
    );
    set_max(&mut config, size - 1);
    let cc = ChannelConfig::new(&config).unwrap();
    assert_eq!(
        broadcast(&cc, &env, FilterSettings::default(), NOW),
        (
            Status::BadRequest,
            format!(
                "message payload is {size} bytes and exceeds maximum allowed {} bytes",
                size - 1
            )
        )
    );
}

#[test]
fn maintenance_mode_refuses_normal_transactions() {
    let mut config = genesis_config();
    let o = config
        .channel_group
        .as_mut()
        .unwrap()
        .groups
        .get_mut("Orderer")
        .unwrap();
    let v = o.values.get_mut("ConsensusType").unwrap();
    let mut ct = ordo_proto::orderer::ConsensusType::decode(v.value.clone()).unwrap();
    ct.state = 1;
    v.value = ct.encode_to_vec().into();
    let cc = ChannelConfig::new(&config).unwrap();
    assert_eq!(
        broadcast(
            &cc,
            &envelope("tx_valid_org1_user1"),
            FilterSettings::default(),
            NOW
        ),
        (
            Status::ServiceUnavailable,
            "normal transactions are rejected: maintenance mode".to_string()
        )
    );
}

#[test]
fn routing_and_classification() {
    let cc = ChannelConfig::new(&genesis_config()).unwrap();
    let lookup = |id: &str| (id == "channel-3").then_some(&cc);
    // A config update goes the config path.
    let b =
        Block::decode(ordo_testkit::read("ledger/from-orderer1/block_13.pb").as_slice()).unwrap();
    let cfg_env = Envelope::decode(b.data.unwrap().data[0].clone()).unwrap();
    let update = config_envelope(&cfg_env).unwrap().last_update.unwrap();
    assert_eq!(route(&update, lookup).unwrap().1, MsgClass::ConfigUpdate);
    // A CONFIG envelope sent by a client is refused.
    assert_eq!(
        route(&cfg_env, lookup).unwrap_err(),
        Rejection {
            status: Status::BadRequest,
            info: "message is of type that cannot be processed directly".into()
        }
    );
    // Garbage is a BAD_REQUEST naming the problem, not a panic.
    let junk = Envelope {
        payload: Bytes::from_static(b"\xff\xff\xff"),
        signature: Bytes::new(),
    };
    let err = route(&junk, lookup).unwrap_err();
    assert_eq!(err.status, Status::BadRequest);
    assert!(
        err.info.starts_with("could not determine channel ID"),
        "{}",
        err.info
    );
    let empty = Envelope::default();
    assert_eq!(
        route(&empty, lookup).unwrap_err().status,
        Status::BadRequest
    );
}
