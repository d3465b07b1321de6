//! The channel configuration layer against Fabric-made data: the genesis configs parse and
//! validate; every fixture envelope passes or fails `/Channel/Writers` exactly as Fabric's
//! Broadcast decided; the `add_orderer4` update yields, bit for bit, the config Fabric wrote in
//! block 13; `remove_two` is refused with Fabric's message; and each of configtx's rejection
//! reasons is reproduced on a mutated update.

use std::path::PathBuf;

use bytes::Bytes;
use ordo_config::configtx::{propose_config_update, validate_config_envelope};
use ordo_config::envelope::{
    add_config_signature, config_envelope, create_signed_envelope, signed_data,
};
use ordo_config::etcdraft::{ConsenterChange, consenter_change, verify_config_metadata};
use ordo_config::{ChannelConfig, ConfigError};
use ordo_msp::{SigningIdentity, local};
use ordo_proto::Message;
use ordo_proto::common::{Block, Config, ConfigUpdate, ConfigUpdateEnvelope, Envelope, HeaderType};

fn block(rel: &str) -> Block {
    Block::decode(ordo_testkit::read(rel).as_slice()).unwrap()
}

fn first_envelope(b: &Block) -> Envelope {
    Envelope::decode(b.data.as_ref().unwrap().data[0].clone()).unwrap()
}

fn config_of(b: &Block) -> Config {
    config_envelope(&first_envelope(b)).unwrap().config.unwrap()
}

fn genesis(n: u32) -> ChannelConfig {
    ChannelConfig::new(&config_of(&block(&format!(
        "channel-genesis/channel-{n}.block"
    ))))
    .unwrap()
}

fn signer(msp_dir: &str, msp_id: &str) -> SigningIdentity {
    let dir: PathBuf = ordo_testkit::fixture(&format!("crypto-config/{msp_dir}"));
    local::load_signing_identity(&dir, msp_id).unwrap().signer
}

fn orderer_admin() -> SigningIdentity {
    signer(
        "ordererOrganizations/example.com/users/Admin@example.com/msp",
        "OrdererMSP",
    )
}

fn org1_user() -> SigningIdentity {
    signer(
        "peerOrganizations/org1.example.com/users/User1@org1.example.com/msp",
        "Org1MSP",
    )
}

const NOW: i64 = 1_900_000_000; // 2030: inside the fixtures' certificates' validity.

#[test]
fn genesis_configs_parse_with_their_values() {
    for n in [1u32, 3, 5] {
        let cc = genesis(n);
        cc.check_orderer_support().unwrap();
        assert_eq!(cc.sequence(), 0);
        assert_eq!(cc.hashing_algorithm, "SHA256");
        let o = cc.orderer.as_ref().unwrap();
        assert_eq!(o.consensus_type, "etcdraft");
        assert_eq!(o.batch_size.max_message_count, 100);
        assert_eq!(o.batch_size.absolute_max_bytes, 4 * 1024 * 1024);
        assert_eq!(o.batch_size.preferred_max_bytes, 512 * 1024);
        assert_eq!(o.batch_timeout_ns, 1_000_000_000);
        assert_eq!(o.orgs["OrdererOrg"].msp_id, "OrdererMSP");
        assert_eq!(o.orgs["OrdererOrg"].endpoints[0], "127.0.0.1:37051");
        assert_eq!(o.orgs["OrdererOrg"].endpoints.len(), n as usize);
        assert!(o.expiration_check());
        let md = o.etcdraft().unwrap().unwrap().metadata();
        assert_eq!(md.consenters.len(), n as usize);
        let opts = md.options.as_ref().unwrap();
        assert_eq!(
            (
                opts.election_tick,
                opts.heartbeat_tick,
                opts.max_inflight_blocks
            ),
            (10, 1, 5)
        );
        assert_eq!(opts.tick_interval, "250ms");
        verify_config_metadata(md, &cc.orderer_tls_pools().unwrap(), NOW).unwrap();
        let app = cc.application.as_ref().unwrap();
        assert_eq!(app.orgs["Org1MSP"].msp_id, "Org1MSP");
        assert!(cc.msp_manager().get("OrdererMSP").is_some());
        assert!(
            cc.policies()
                .get_policy("/Channel/Orderer/BlockValidation")
                .is_some()
        );
        assert!(
            cc.policies()
                .get_policy("Application/Org1MSP/Endorsement")
                .is_some()
        );
        assert!(cc.policies().get_policy("/Channel/Nope").is_none());
    }
}

#[test]
fn consenter_certificates_must_chain_to_orderer_tls_cas() {
    let cc = genesis(3);
    let md = cc
        .orderer
        .as_ref()
        .unwrap()
        .etcdraft()
        .unwrap()
        .unwrap()
        .metadata();
    // Org1's TLS CA is not an orderer org's: with only it as root, nothing chains.
    let org1_tls = std::fs::read(ordo_testkit::fixture(
        "crypto-config/peerOrganizations/org1.example.com/tlsca/tlsca.org1.example.com-cert.pem",
    ))
    .unwrap();
    let pools = ordo_config::etcdraft::TlsPools::from_pem([org1_tls.as_slice()], []).unwrap();
    let err = verify_config_metadata(md, &pools, NOW).unwrap_err();
    assert!(
        matches!(
            &err,
            ordo_config::etcdraft::MetadataError::InvalidCertificate { source, .. }
                if matches!(**source, ordo_config::etcdraft::ConsenterCertError::Verify { which: "client", .. })
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(
            "consenter 127.0.0.1:37151 has invalid certificate: verifying tls client cert"
        ),
        "{err}"
    );
    // Long after every certificate expired, the consenters' own expiry is forgiven (not the CA's,
    // which the fixtures give the same lifetime, so stay inside the CA's validity here).
    let pools = cc.orderer_tls_pools().unwrap();
    verify_config_metadata(md, &pools, NOW).unwrap();
}

#[test]
fn fixture_envelopes_pass_or_fail_writers_as_fabric_answered() {
    let cc = genesis(3);
    let writers = cc.policies().get_policy("/Channel/Writers").unwrap();
    let msgs = "implicit policy evaluation failed - 0 sub-policies were satisfied, but this policy requires 1 of the 'Writers' sub-policies to be satisfied";
    let cases = [
        ("tx_valid_org1_user1", None),
        ("tx_bad_signature", Some(msgs)),
        ("tx_high_s_signature", Some(msgs)),
        ("tx_org2_not_in_channel", Some(msgs)),
        ("tx_org2_cert_claiming_org1msp", Some(msgs)),
    ];
    for (name, expected) in cases {
        let env = Envelope::decode(ordo_testkit::read(&format!("envelopes/{name}.pb")).as_slice())
            .unwrap();
        let sd = signed_data(&env).unwrap();
        let res = writers.evaluate_signed_data(&[sd], cc.msp_manager());
        match expected {
            None => res.unwrap(),
            Some(m) => assert_eq!(res.unwrap_err().0, m, "{name}"),
        }
    }
}

/// The signed CONFIG_UPDATE that Fabric accepted, as recorded in block 13.
fn add_orderer4_update() -> Envelope {
    let ce = config_envelope(&first_envelope(&block("ledger/from-orderer1/block_13.pb"))).unwrap();
    ce.last_update.unwrap()
}

#[test]
fn add_orderer4_produces_the_config_fabric_wrote_in_block_13() {
    let cc = genesis(3);
    let env = add_orderer4_update();
    let next = propose_config_update(&cc, "channel-3", &env).unwrap();
    let fabric =
        config_envelope(&first_envelope(&block("ledger/from-orderer1/block_13.pb"))).unwrap();
    assert_eq!(next.config, fabric.config);
    assert_eq!(next.last_update.as_ref(), Some(&env));
    // What Fabric checks again before writing the block.
    validate_config_envelope(&cc, "channel-3", &fabric).unwrap();
    let mut wrong_seq = fabric.clone();
    wrong_seq.config.as_mut().unwrap().sequence = 5;
    assert_eq!(
        validate_config_envelope(&cc, "channel-3", &wrong_seq)
            .unwrap_err()
            .to_string(),
        "config currently at sequence 0, cannot validate config at sequence 5"
    );
    let mut tampered = fabric.clone();
    tampered
        .config
        .as_mut()
        .unwrap()
        .channel_group
        .as_mut()
        .unwrap()
        .mod_policy = "Other".into();
    assert_eq!(
        validate_config_envelope(&cc, "channel-3", &tampered)
            .unwrap_err()
            .to_string(),
        "ConfigEnvelope LastUpdate did not produce the supplied config result"
    );
    let new_cc = ChannelConfig::new(next.config.as_ref().unwrap()).unwrap();
    cc.validate_new(&new_cc).unwrap();
    let old_md = cc
        .orderer
        .as_ref()
        .unwrap()
        .etcdraft()
        .unwrap()
        .unwrap()
        .metadata();
    let new_md = new_cc
        .orderer
        .as_ref()
        .unwrap()
        .etcdraft()
        .unwrap()
        .unwrap()
        .metadata();
    verify_config_metadata(new_md, &new_cc.orderer_tls_pools().unwrap(), NOW).unwrap();
    match consenter_change(&old_md.consenters, &new_md.consenters).unwrap() {
        ConsenterChange::Add(c) => assert_eq!(c.port, 37154),
        other => panic!("expected an addition, got {other:?}"),
    }
    // The same update again is stale: its read set no longer matches.
    let err = propose_config_update(&new_cc, "channel-3", &env).unwrap_err();
    assert!(
        err.to_string().contains("error authorizing update"),
        "{err}"
    );
}

/// Wraps a config update, signed by `signers`, in an envelope signed by the first of them.
fn signed_update(update: &ConfigUpdate, signers: &[&SigningIdentity]) -> Envelope {
    let mut cue = ConfigUpdateEnvelope {
        config_update: update.encode_to_vec().into(),
        signatures: vec![],
    };
    for s in signers {
        add_config_signature(&mut cue, s).unwrap();
    }
    create_signed_envelope(
        HeaderType::ConfigUpdate,
        &update.channel_id,
        signers[0],
        cue.encode_to_vec().into(),
    )
    .unwrap()
}

fn unsigned_update(rel: &str) -> ConfigUpdate {
    let env = Envelope::decode(ordo_testkit::read(rel).as_slice()).unwrap();
    let cue = ordo_config::configtx::config_update_envelope(&env).unwrap();
    ConfigUpdate::decode(cue.config_update).unwrap()
}

#[test]
fn remove_two_is_refused_as_fabric_refused_it() {
    let current =
        ChannelConfig::new(&config_of(&block("ledger/from-orderer1/block_13.pb"))).unwrap();
    let update = unsigned_update("config-update/remove_two.env.pb");
    let env = signed_update(&update, &[&orderer_admin()]);
    // Authorized by /Channel/Orderer/Admins...
    let next = propose_config_update(&current, "channel-3", &env).unwrap();
    let new_cc = ChannelConfig::new(next.config.as_ref().unwrap()).unwrap();
    let old = current
        .orderer
        .as_ref()
        .unwrap()
        .etcdraft()
        .unwrap()
        .unwrap()
        .consenters()
        .to_vec();
    let new = new_cc
        .orderer
        .as_ref()
        .unwrap()
        .etcdraft()
        .unwrap()
        .unwrap()
        .consenters()
        .to_vec();
    // ...and refused by the membership rule, with the text Fabric's answer ends with.
    let answer = ordo_testkit::read_string("config-update/remove_two.answer.txt");
    let err = consenter_change(&old, &new).unwrap_err();
    assert!(answer.trim_end().ends_with(&err.to_string()), "{err}");
}

fn assert_update_error(cc: &ChannelConfig, env: &Envelope, expected: &str) {
    let err = propose_config_update(cc, "channel-3", env)
        .unwrap_err()
        .to_string();
    assert!(err.contains(expected), "expected {expected:?} in {err:?}");
}

fn value(u: &mut ConfigUpdate) -> &mut ordo_proto::common::ConfigValue {
    u.write_set
        .as_mut()
        .unwrap()
        .groups
        .get_mut("Orderer")
        .unwrap()
        .values
        .get_mut("ConsensusType")
        .unwrap()
}

#[test]
fn each_configtx_rejection_reason() {
    let cc = genesis(3);
    let admin = orderer_admin();
    let base = unsigned_update("config-update/add_orderer4.env.pb");
    // Sanity: the unsigned update, signed by the orderer admin, is accepted.
    propose_config_update(&cc, "channel-3", &signed_update(&base, &[&admin])).unwrap();

    let mut u = base.clone();
    u.channel_id = "other".into();
    assert_update_error(
        &cc,
        &signed_update(&u, &[&admin]),
        "ConfigUpdate for channel 'other' but envelope for channel 'channel-3'",
    );

    let mut u = base.clone();
    u.read_set
        .as_mut()
        .unwrap()
        .groups
        .get_mut("Orderer")
        .unwrap()
        .version = 7;
    assert_update_error(
        &cc,
        &signed_update(&u, &[&admin]),
        "be at version 7, but it is currently at version 0",
    );

    let mut u = base.clone();
    u.read_set
        .as_mut()
        .unwrap()
        .groups
        .insert("Nope".into(), Default::default());
    assert_update_error(
        &cc,
        &signed_update(&u, &[&admin]),
        "existing config does not contain element for [Group]  /Channel/Nope but was in the read set",
    );

    let mut u = base.clone();
    u.write_set = u.read_set.clone();
    assert_update_error(
        &cc,
        &signed_update(&u, &[&admin]),
        "delta set was empty -- update would have no effect",
    );

    let mut u = base.clone();
    value(&mut u).version = 5;
    assert_update_error(
        &cc,
        &signed_update(&u, &[&admin]),
        "attempt to set key [Value]  /Channel/Orderer/ConsensusType to version 5, but key is at version 0",
    );

    let mut u = base.clone();
    value(&mut u).mod_policy = String::new();
    assert_update_error(
        &cc,
        &signed_update(&u, &[&admin]),
        "invalid mod_policy for element [Value]  /Channel/Orderer/ConsensusType: mod_policy not set",
    );

    let mut u = base.clone();
    let mut v = value(&mut u).clone();
    v.version = 3;
    u.write_set
        .as_mut()
        .unwrap()
        .groups
        .get_mut("Orderer")
        .unwrap()
        .values
        .insert("Extra".into(), v);
    assert_update_error(
        &cc,
        &signed_update(&u, &[&admin]),
        "attempted to set key [Value]  /Channel/Orderer/Extra to version 3, but key does not exist",
    );

    // Signed by an application client: /Channel/Orderer/Admins is not satisfied.
    let err = propose_config_update(&cc, "channel-3", &signed_update(&base, &[&org1_user()]))
        .unwrap_err();
    assert!(matches!(err, ConfigError::Forbidden(_)));
    assert_eq!(
        err.to_string(),
        "error authorizing update: error validating DeltaSet: policy for [Value]  /Channel/Orderer/ConsensusType not satisfied: implicit policy evaluation failed - 0 sub-policies were satisfied, but this policy requires 1 of the 'Admins' sub-policies to be satisfied"
    );

    // A config update element whose mod_policy names no policy.
    let mut current = config_of(&block("channel-genesis/channel-3.block"));
    current
        .channel_group
        .as_mut()
        .unwrap()
        .groups
        .get_mut("Orderer")
        .unwrap()
        .values
        .get_mut("ConsensusType")
        .unwrap()
        .mod_policy = "Ghost".into();
    let cc2 = ChannelConfig::new(&current).unwrap();
    assert_update_error(
        &cc2,
        &signed_update(&base, &[&admin]),
        "unexpected missing policy Ghost for item [Value]  /Channel/Orderer/ConsensusType",
    );

    // Names must be config IDs.
    let mut u = base.clone();
    let g = u.write_set.as_ref().unwrap().groups["Orderer"].clone();
    u.write_set
        .as_mut()
        .unwrap()
        .groups
        .insert("bad key".into(), g);
    assert_update_error(
        &cc,
        &signed_update(&u, &[&admin]),
        "error mapping WriteSet: illegal characters in key: [Group]  : config ID 'bad key' contains illegal characters",
    );

    // Not a CONFIG_UPDATE at all.
    let tx = Envelope::decode(ordo_testkit::read("envelopes/tx_valid_org1_user1.pb").as_slice())
        .unwrap();
    assert_update_error(
        &cc,
        &tx,
        "invalid type ENDORSER_TRANSACTION, expected CONFIG_UPDATE",
    );
    assert_update_error(
        &cc,
        &Envelope {
            payload: Bytes::from_static(b"\xff\xff"),
            signature: Bytes::new(),
        },
        "error converting envelope to config update",
    );
}

#[test]
fn deleting_a_child_needs_the_parent_bumped() {
    // Remove Org1MSP from the application group by rewriting the group without it.
    let cc = genesis(3);
    let current = cc.config().channel_group.clone().unwrap();
    let mut app = current.groups["Application"].clone();
    app.groups.remove("Org1MSP");
    app.version += 1;
    // The read set names the unchanged children at their versions, so that only the group
    // itself is in the delta (what compute_update produces).
    let mut read_app = ordo_proto::common::ConfigGroup::default();
    for (k, v) in &app.values {
        read_app.values.insert(
            k.clone(),
            ordo_proto::common::ConfigValue {
                version: v.version,
                ..Default::default()
            },
        );
    }
    for (k, p) in &app.policies {
        read_app.policies.insert(
            k.clone(),
            ordo_proto::common::ConfigPolicy {
                version: p.version,
                ..Default::default()
            },
        );
    }
    let mut read = ordo_proto::common::ConfigGroup::default();
    read.groups.insert("Application".into(), read_app);
    let mut write = ordo_proto::common::ConfigGroup::default();
    write.groups.insert("Application".into(), app);
    let update = ConfigUpdate {
        channel_id: "channel-3".into(),
        read_set: Some(read),
        write_set: Some(write),
        ..Default::default()
    };
    // /Channel/Application/Admins is MAJORITY of the org admins: Org1's admin signs.
    let org1_admin = signer(
        "peerOrganizations/org1.example.com/users/Admin@org1.example.com/msp",
        "Org1MSP",
    );
    let next =
        propose_config_update(&cc, "channel-3", &signed_update(&update, &[&org1_admin])).unwrap();
    let group = next.config.unwrap().channel_group.unwrap();
    assert!(!group.groups["Application"].groups.contains_key("Org1MSP"));
    assert_eq!(group.groups["Application"].version, 1);
    assert!(group.groups["Orderer"].groups.contains_key("OrdererOrg"));
}

#[test]
fn bad_configs_are_refused_with_fabric_reasons() {
    let base = config_of(&block("channel-genesis/channel-3.block"));
    let edit = |f: &dyn Fn(&mut ordo_proto::common::ConfigGroup)| {
        let mut c = base.clone();
        f(c.channel_group.as_mut().unwrap());
        ChannelConfig::new(&c).unwrap_err().to_string()
    };
    let set_value =
        |g: &mut ordo_proto::common::ConfigGroup, path: &[&str], key: &str, bytes: Vec<u8>| {
            let mut g = g;
            for p in path {
                g = g.groups.get_mut(*p).unwrap();
            }
            g.values.get_mut(key).unwrap().value = bytes.into();
        };
    use ordo_proto::orderer::{BatchSize, BatchTimeout};
    let e = edit(&|g| {
        set_value(
            g,
            &["Orderer"],
            "BatchSize",
            BatchSize {
                max_message_count: 0,
                absolute_max_bytes: 10,
                preferred_max_bytes: 1,
            }
            .encode_to_vec(),
        )
    });
    assert!(
        e.ends_with("Attempted to set the batch size max message count to an invalid value: 0"),
        "{e}"
    );
    let e = edit(&|g| {
        set_value(
            g,
            &["Orderer"],
            "BatchSize",
            BatchSize {
                max_message_count: 1,
                absolute_max_bytes: 10,
                preferred_max_bytes: 11,
            }
            .encode_to_vec(),
        )
    });
    assert!(e.ends_with("Attempted to set the batch size preferred max bytes (11) greater than the absolute max bytes (10)."), "{e}");
    let e = edit(&|g| {
        set_value(
            g,
            &["Orderer"],
            "BatchTimeout",
            BatchTimeout {
                timeout: "abc".into(),
            }
            .encode_to_vec(),
        )
    });
    assert!(
        e.ends_with(
            "Attempted to set the batch timeout to a invalid value: time: invalid duration \"abc\""
        ),
        "{e}"
    );
    let e = edit(&|g| {
        set_value(
            g,
            &["Orderer"],
            "BatchTimeout",
            BatchTimeout {
                timeout: "-1s".into(),
            }
            .encode_to_vec(),
        )
    });
    assert!(
        e.ends_with("Attempted to set the batch timeout to a non-positive value: -1s"),
        "{e}"
    );
    let e = edit(&|g| {
        set_value(
            g,
            &[],
            "HashingAlgorithm",
            ordo_proto::common::HashingAlgorithm { name: "MD5".into() }.encode_to_vec(),
        )
    });
    assert!(e.ends_with("Unknown hashing algorithm type: MD5"), "{e}");
    let e = edit(&|g| {
        set_value(
            g,
            &[],
            "BlockDataHashingStructure",
            ordo_proto::common::BlockDataHashingStructure { width: 7 }.encode_to_vec(),
        )
    });
    assert!(
        e.ends_with("BlockDataHashStructure width only supported at MaxUint32 in this version"),
        "{e}"
    );
    let e = edit(&|g| {
        g.groups.insert("Weird".into(), Default::default());
    });
    assert!(e.contains("Disallowed channel group: Weird"), "{e}");
    let e = edit(&|g| {
        let v = g.values["HashingAlgorithm"].clone();
        g.groups
            .get_mut("Orderer")
            .unwrap()
            .values
            .insert("Bogus".into(), v);
    });
    assert!(e.contains("Unexpected key Bogus"), "{e}");
    let e = edit(&|g| set_value(g, &["Orderer", "OrdererOrg"], "MSP", vec![0xff, 0xff]));
    assert!(
        e.contains("could not create channel Orderer sub-group config"),
        "{e}"
    );
    // Capabilities this orderer does not know are refused by the orderer checks.
    let mut c = base.clone();
    let caps = ordo_proto::common::Capabilities {
        capabilities: [("V9_9".to_string(), Default::default())].into(),
    };
    c.channel_group
        .as_mut()
        .unwrap()
        .groups
        .get_mut("Orderer")
        .unwrap()
        .values
        .get_mut("Capabilities")
        .unwrap()
        .value = caps.encode_to_vec().into();
    let e = ChannelConfig::new(&c)
        .unwrap()
        .check_orderer_support()
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "config requires unsupported orderer capabilities: Orderer capability V9_9 is required but not supported: Orderer capability V9_9 is required but not supported"
    );
}
