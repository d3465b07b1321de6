//! The config-update path of Broadcast against Fabric's own update and answers: adding orderer4
//! (accepted by Fabric; its CONFIG envelope is block 13 of the fixture ledger) and removing two
//! consenters at once (refused with Fabric's text); the quorum-loss check on consenter changes.

use bytes::Bytes;
use ordo_config::ChannelConfig;
use ordo_config::envelope::{add_config_signature, config_envelope, create_signed_envelope};
use ordo_orderer::configupdate::{Membership, process_config_update, revalidate_config};
use ordo_orderer::msgprocessor::FilterSettings;
use ordo_proto::common::{Block, ConfigUpdateEnvelope, Envelope, HeaderType, Payload, Status};
use ordo_testkit::{fixture, read};
use prost::Message;

const ORDERER1_MSP: &str =
    "crypto-config/ordererOrganizations/example.com/orderers/orderer1.example.com/msp";
const ADMIN_MSP: &str =
    "crypto-config/ordererOrganizations/example.com/users/Admin@example.com/msp";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn genesis_config(channel: &str) -> ChannelConfig {
    let block =
        Block::decode(read(&format!("channel-genesis/{channel}.block")).as_slice()).unwrap();
    let env = Envelope::decode(block.data.unwrap().data[0].clone()).unwrap();
    ChannelConfig::new(config_envelope(&env).unwrap().config.as_ref().unwrap()).unwrap()
}

fn signer(dir: &str) -> ordo_msp::SigningIdentity {
    ordo_msp::local::load_signing_identity(&fixture(dir), "OrdererMSP")
        .unwrap()
        .signer
}

#[test]
fn fabrics_accepted_update_gives_the_config_of_block_13() {
    let block13 = Block::decode(read("ledger/from-orderer1/block_13.pb").as_slice()).unwrap();
    let fabric_env = Envelope::decode(block13.data.unwrap().data[0].clone()).unwrap();
    let fabric_ce = config_envelope(&fabric_env).unwrap();
    let update = fabric_ce.last_update.clone().unwrap();
    let current = genesis_config("channel-3");
    let me = signer(ORDERER1_MSP);
    let membership = Membership::default();
    let (env, seq) = process_config_update(
        &update,
        "channel-3",
        &current,
        &me,
        FilterSettings::default(),
        now(),
        &membership,
    )
    .unwrap();
    assert_eq!(seq, 0);
    let ours = config_envelope(&env).unwrap();
    assert_eq!(ours.config, fabric_ce.config);
    assert_eq!(ours.last_update, fabric_ce.last_update);
    // Signed by this node, as a CONFIG envelope without tx id.
    let parsed = ordo_config::envelope::parse(&env).unwrap();
    assert_eq!(parsed.channel_header.r#type, HeaderType::Config as i32);
    assert!(parsed.channel_header.tx_id.is_empty());
    assert_eq!(parsed.signature_header.creator, *me.serialized());
    // The leader's re-validation accepts it against the same config.
    revalidate_config(&env, "channel-3", &current).unwrap();
    // And Fabric's own CONFIG envelope passes the same check.
    revalidate_config(&fabric_env, "channel-3", &current).unwrap();
}

#[test]
fn removing_two_consenters_gets_fabrics_refusal() {
    let unsigned = Envelope::decode(read("config-update/remove_two.env.pb").as_slice()).unwrap();
    let payload = Payload::decode(unsigned.payload.clone()).unwrap();
    let mut cue = ConfigUpdateEnvelope::decode(payload.data.clone()).unwrap();
    let admin = signer(ADMIN_MSP);
    add_config_signature(&mut cue, &admin).unwrap();
    let env = create_signed_envelope(
        HeaderType::ConfigUpdate,
        "channel-3",
        &admin,
        Bytes::from(cue.encode_to_vec()),
    )
    .unwrap();
    // Fabric answered after block 13 (orderer4 added): that config is the current one.
    let block13 = Block::decode(read("ledger/from-orderer1/block_13.pb").as_slice()).unwrap();
    let env13 = Envelope::decode(block13.data.unwrap().data[0].clone()).unwrap();
    let current =
        ChannelConfig::new(config_envelope(&env13).unwrap().config.as_ref().unwrap()).unwrap();
    let err = process_config_update(
        &env,
        "channel-3",
        &current,
        &signer(ORDERER1_MSP),
        FilterSettings::default(),
        now(),
        &Membership::default(),
    )
    .unwrap_err();
    let answer = String::from_utf8(read("config-update/remove_two.answer.txt")).unwrap();
    let fabric = answer
        .trim()
        .strip_prefix("Error: got unexpected status: BAD_REQUEST -- ")
        .unwrap();
    assert_eq!(err.status, Status::BadRequest);
    assert_eq!(err.info, fabric);
}

#[test]
fn an_update_signed_by_a_non_admin_is_refused_by_the_mod_policy() {
    let unsigned = Envelope::decode(read("config-update/add_orderer4.env.pb").as_slice()).unwrap();
    let payload = Payload::decode(unsigned.payload.clone()).unwrap();
    let mut cue = ConfigUpdateEnvelope::decode(payload.data.clone()).unwrap();
    // The orderer node itself is a member, not an admin, of OrdererMSP.
    let node = signer(ORDERER1_MSP);
    add_config_signature(&mut cue, &node).unwrap();
    let env = create_signed_envelope(
        HeaderType::ConfigUpdate,
        "channel-3",
        &node,
        Bytes::from(cue.encode_to_vec()),
    )
    .unwrap();
    let err = process_config_update(
        &env,
        "channel-3",
        &genesis_config("channel-3"),
        &node,
        FilterSettings::default(),
        now(),
        &Membership::default(),
    )
    .unwrap_err();
    assert_eq!(err.status, Status::BadRequest);
    assert!(
        err.info
            .starts_with("error applying config update to existing channel 'channel-3': error authorizing update: "),
        "{}",
        err.info
    );
}

/// A CONFIG_UPDATE of channel-3's genesis config editing its consenters, signed by the orderer
/// admin.
fn consenters_update(
    current: &ChannelConfig,
    edit: impl FnOnce(&mut Vec<ordo_proto::etcdraft::Consenter>),
) -> Envelope {
    let original = current.config().clone();
    let mut updated = original.clone();
    let orderer = updated
        .channel_group
        .as_mut()
        .unwrap()
        .groups
        .get_mut("Orderer")
        .unwrap();
    let value = orderer.values.get_mut("ConsensusType").unwrap();
    let mut ct = ordo_proto::orderer::ConsensusType::decode(value.value.clone()).unwrap();
    let mut md = ordo_proto::etcdraft::ConfigMetadata::decode(ct.metadata.clone()).unwrap();
    edit(&mut md.consenters);
    ct.metadata = md.encode_to_vec().into();
    value.value = ct.encode_to_vec().into();
    let update = ordo_protolator::compute_update("channel-3", &original, &updated).unwrap();
    let admin = signer(ADMIN_MSP);
    let mut cue = ConfigUpdateEnvelope {
        config_update: update.encode_to_vec().into(),
        signatures: vec![],
    };
    add_config_signature(&mut cue, &admin).unwrap();
    create_signed_envelope(
        HeaderType::ConfigUpdate,
        "channel-3",
        &admin,
        Bytes::from(cue.encode_to_vec()),
    )
    .unwrap()
}

/// orderer`n`'s TLS certificate, as the fixture's consenters carry it.
fn tls_cert(n: u32) -> Bytes {
    Bytes::from(read(&format!(
        "crypto-config/ordererOrganizations/example.com/orderers/orderer{n}.example.com/tls/server.crt"
    )))
}

/// `env` processed against channel-3's `current` config with `membership`: accepted, or the
/// refusal's status and text.
fn quorum_check(
    current: &ChannelConfig,
    env: &Envelope,
    membership: &Membership,
) -> Result<(), (Status, String)> {
    process_config_update(
        env,
        "channel-3",
        current,
        &signer(ORDERER1_MSP),
        FilterSettings::default(),
        now(),
        membership,
    )
    .map(|_| ())
    .map_err(|r| (r.status, r.info))
}

/// config_test.go "refuses to reconfig if it results in quorum loss", with the ActiveNodes the
/// leader reports: channel-3 has consenters 1-3, and only 1 and 2 are active.
#[test]
fn the_quorum_loss_check_counts_active_consenters_and_lets_a_down_nodes_certificate_be_rotated() {
    let current = genesis_config("channel-3");
    // Fabric's membership changes (an added consenter is a voter at once).
    let two_up = Membership {
        active: Some(vec![tls_cert(1), tls_cert(2)]),
        ..Membership::default()
    };
    let all_up = Membership::default();
    let check = |env: &Envelope, membership: &Membership| quorum_check(&current, env, membership);
    let consenter4 = |cs: &[ordo_proto::etcdraft::Consenter]| {
        let mut c = cs[0].clone();
        c.port = 37154;
        c.client_tls_cert = tls_cert(4);
        c.server_tls_cert = tls_cert(4);
        c
    };

    // Adding a fourth needs 3 of 4 alive.
    let add = consenters_update(&current, |cs| {
        let c = consenter4(cs);
        cs.push(c)
    });
    check(&add, &all_up).unwrap();
    assert_eq!(
        check(&add, &two_up).unwrap_err(),
        (
            Status::BadRequest,
            "error applying config update to existing channel 'channel-3': consensus metadata update for channel config update is invalid: 2 out of 4 nodes are alive, configuration will result in quorum loss".to_string()
        )
    );

    // Removing the node that is down leaves 2 of 2; removing a live one leaves 1 alive.
    let remove = |n: u32| {
        consenters_update(&current, |cs| {
            cs.retain(|c| c.client_tls_cert != tls_cert(n))
        })
    };
    check(&remove(3), &two_up).unwrap();
    let (status, info) = check(&remove(1), &two_up).unwrap_err();
    assert_eq!(status, Status::BadRequest);
    assert!(info.ends_with("quorum loss"), "{info}");

    // Rotating the certificate of the node that is down: the other two still hold a quorum
    // (hyperledger/fabric#3562 refuses this); rotating a live node's would leave one.
    let rotate = |n: u32| {
        consenters_update(&current, |cs| {
            let new = consenter4(cs);
            for c in cs.iter_mut().filter(|c| c.client_tls_cert == tls_cert(n)) {
                c.client_tls_cert = new.client_tls_cert.clone();
                c.server_tls_cert = new.server_tls_cert.clone();
            }
        })
    };
    check(&rotate(3), &two_up).unwrap();
    let (status, info) = check(&rotate(1), &two_up).unwrap_err();
    assert_eq!(status, Status::BadRequest);
    assert!(info.ends_with("quorum loss"), "{info}");
}

/// With learners, the check counts voters only: adding a consenter (it enters as a learner) never
/// risks the quorum, a learner can be removed or rotated whatever is down, and removing a voter
/// is judged against the voters that remain.
#[test]
fn the_quorum_loss_check_leaves_learners_out_of_the_quorum() {
    let current = genesis_config("channel-3");
    let check = |env: &Envelope, membership: &Membership| quorum_check(&current, env, membership);
    let add4 = consenters_update(&current, |cs| {
        let mut c = cs[0].clone();
        c.port = 37154;
        c.client_tls_cert = tls_cert(4);
        c.server_tls_cert = tls_cert(4);
        cs.push(c)
    });
    let remove = |n: u32| {
        consenters_update(&current, |cs| {
            cs.retain(|c| c.client_tls_cert != tls_cert(n))
        })
    };
    // Consenters 1-3, only node 1 active: Fabric's AddNode refuses a fourth (1 of 4 alive), a
    // learner changes no quorum.
    let one_up = |learners: Vec<Bytes>| Membership {
        active: Some(vec![tls_cert(1)]),
        learners,
        adds_learners: true,
    };
    check(&add4, &one_up(vec![])).unwrap();
    let fabric = Membership {
        adds_learners: false,
        ..one_up(vec![])
    };
    assert!(
        check(&add4, &fabric)
            .unwrap_err()
            .1
            .ends_with("1 out of 4 nodes are alive, configuration will result in quorum loss")
    );

    // Node 3 is a learner (voters 1 and 2, node 2 down): it can be removed; removing voter 2
    // leaves voter 1 alone and active; removing voter 1 leaves voter 2, which is down.
    let learner3 = one_up(vec![tls_cert(3)]);
    check(&remove(3), &learner3).unwrap();
    check(&remove(2), &learner3).unwrap();
    let (status, info) = check(&remove(1), &learner3).unwrap_err();
    assert_eq!(status, Status::BadRequest);
    assert!(
        info.ends_with("0 out of 1 nodes are alive, configuration will result in quorum loss"),
        "{info}"
    );
    // The same removal with node 3 a voter: 1 of 2 alive, refused as in Fabric.
    let (_, info) = check(&remove(2), &one_up(vec![])).unwrap_err();
    assert!(
        info.ends_with("1 out of 2 nodes are alive, configuration will result in quorum loss"),
        "{info}"
    );
}
