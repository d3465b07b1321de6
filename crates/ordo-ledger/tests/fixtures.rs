//! Blocks against Fabric's ledger: the chain Fabric's orderers delivered verifies link by link,
//! data hash by data hash and signature by signature (the last header hash equals Fabric's own
//! `blockverify.txt`), and blocks Ordo signs verify the same way.

use ordo_config::ChannelConfig;
use ordo_config::envelope::config_envelope;
use ordo_ledger::block::*;
use ordo_msp::local;
use ordo_proto::Message;
use ordo_proto::common::{Block, Envelope};
use ordo_proto::etcdraft::BlockMetadata as RaftMetadata;

fn blocks(dir: &str) -> Vec<Block> {
    ordo_testkit::ledger_blocks(dir)
        .into_iter()
        .map(|(_, b)| Block::decode(b.as_slice()).unwrap())
        .collect()
}

fn channel_config(b: &Block) -> ChannelConfig {
    let env = Envelope::decode(b.data.as_ref().unwrap().data[0].clone()).unwrap();
    ChannelConfig::new(&config_envelope(&env).unwrap().config.unwrap()).unwrap()
}

#[test]
fn fabric_chain_verifies_like_fabrics_blockverify() {
    let expected = ordo_testkit::read_string("ledger/blockverify.txt");
    for dir in ["from-orderer1", "from-orderer2"] {
        let chain = blocks(dir);
        let mut config = channel_config(&chain[0]);
        for (i, b) in chain.iter().enumerate() {
            verify_data_hash(b).unwrap();
            if i > 0 {
                verify_link(chain[i - 1].header.as_ref().unwrap(), b).unwrap();
                let policy = config
                    .policies()
                    .get_policy("/Channel/Orderer/BlockValidation")
                    .unwrap();
                verify_signatures(b, &policy, config.msp_manager()).unwrap();
            }
            if is_config_block(b) {
                config = channel_config(b);
                assert_eq!(last_config_index(b).unwrap(), i as u64);
            } else {
                assert_eq!(last_config_index(b).unwrap(), 0);
            }
        }
        let last = chain.last().unwrap().header.as_ref().unwrap();
        let line = format!(
            "ok {} blocks {}",
            chain.len(),
            hex::encode(header_hash(last))
        );
        assert_eq!(line, expected.trim(), "{dir}");
    }
}

#[test]
fn both_orderers_delivered_identical_headers_and_raft_metadata_grows() {
    let (a, b) = (blocks("from-orderer1"), blocks("from-orderer2"));
    let mut last_index = 0;
    for (x, y) in a.iter().zip(&b).skip(1) {
        assert_eq!(x.header, y.header);
        assert_eq!(x.data, y.data);
        let md = RaftMetadata::decode(consenter_metadata(x).unwrap()).unwrap();
        // Fabric's config block 13 repeats block 12's raft_index (16): it never decreases.
        assert!(md.raft_index >= last_index, "raft index never decreases");
        last_index = md.raft_index;
        let n = x.header.as_ref().unwrap().number;
        let expected: &[u64] = if n == 13 { &[1, 2, 3, 4] } else { &[1, 2, 3] };
        assert_eq!(md.consenter_ids, expected, "block {n}");
    }
    assert!(is_config_block(&a[13]) && is_config_block(&a[0]) && !is_config_block(&a[1]));
}

#[test]
fn tampering_is_detected() {
    let chain = blocks("from-orderer1");
    let config = channel_config(&chain[0]);
    let policy = config
        .policies()
        .get_policy("/Channel/Orderer/BlockValidation")
        .unwrap();
    let mut b = chain[5].clone();
    b.header.as_mut().unwrap().number = 99;
    assert!(verify_signatures(&b, &policy, config.msp_manager()).is_err());
    assert!(matches!(
        verify_link(chain[4].header.as_ref().unwrap(), &b),
        Err(BlockError::Sequence { .. })
    ));
    let mut b = chain[5].clone();
    b.data.as_mut().unwrap().data.pop();
    assert!(matches!(
        verify_data_hash(&b),
        Err(BlockError::DataHash { .. })
    ));
    assert!(matches!(
        verify_link(chain[3].header.as_ref().unwrap(), &chain[5]),
        Err(BlockError::Sequence { .. })
    ));
    let mut b = chain[5].clone();
    b.header.as_mut().unwrap().previous_hash = vec![0u8; 32].into();
    assert!(matches!(
        verify_link(chain[4].header.as_ref().unwrap(), &b),
        Err(BlockError::PrevHash { .. })
    ));
    // The genesis block carries no signature: it never satisfies BlockValidation by itself.
    assert!(verify_signatures(&chain[0], &policy, config.msp_manager()).is_err());
    // Garbage metadata is an error, not a panic.
    let mut b = chain[5].clone();
    b.metadata.as_mut().unwrap().metadata[0] = vec![0xff, 0xff].into();
    assert!(verify_signatures(&b, &policy, config.msp_manager()).is_err());
    b.metadata = None;
    assert!(matches!(last_config_index(&b), Err(BlockError::NoMetadata)));
}

#[test]
fn blocks_ordo_signs_verify_and_only_orderers_satisfy_block_validation() {
    let chain = blocks("from-orderer1");
    let config = channel_config(&chain[0]);
    let policy = config
        .policies()
        .get_policy("/Channel/Orderer/BlockValidation")
        .unwrap();
    let prev = chain[12].header.as_ref().unwrap();
    let envs: Vec<bytes::Bytes> = chain[12].data.as_ref().unwrap().data.clone();
    let mut b = new_block(13, &header_hash(prev), envs.clone());
    assert_eq!(
        b.header.as_ref().unwrap().data_hash,
        chain[12].header.as_ref().unwrap().data_hash
    );
    let dir = ordo_testkit::fixture(
        "crypto-config/ordererOrganizations/example.com/orderers/orderer3.example.com/msp",
    );
    let orderer3 = local::load_signing_identity(&dir, "OrdererMSP")
        .unwrap()
        .signer;
    let raft = RaftMetadata {
        consenter_ids: vec![1, 2, 3],
        next_consenter_id: 4,
        raft_index: 42,
    }
    .encode_to_vec();
    sign_block(&mut b, &orderer3, 0, Some(&raft)).unwrap();
    verify_link(prev, &b).unwrap();
    verify_signatures(&b, &policy, config.msp_manager()).unwrap();
    assert_eq!(last_config_index(&b).unwrap(), 0);
    assert_eq!(
        RaftMetadata::decode(consenter_metadata(&b).unwrap())
            .unwrap()
            .raft_index,
        42
    );
    // A block signed by an application client does not pass BlockValidation.
    let dir = ordo_testkit::fixture(
        "crypto-config/peerOrganizations/org1.example.com/users/User1@org1.example.com/msp",
    );
    let user = local::load_signing_identity(&dir, "Org1MSP")
        .unwrap()
        .signer;
    let mut c = new_block(13, &header_hash(prev), envs);
    sign_block(&mut c, &user, 0, None).unwrap();
    assert!(verify_signatures(&c, &policy, config.msp_manager()).is_err());
}

#[test]
fn header_der_matches_go_asn1() {
    let h = |n: u64| ordo_proto::common::BlockHeader {
        number: n,
        previous_hash: Default::default(),
        data_hash: vec![0xab].into(),
    };
    assert_eq!(
        hex::encode(header_bytes(&h(0))),
        "3008020100040004 01ab".replace(' ', "")
    );
    // The high bit set needs a leading zero byte to stay positive.
    assert_eq!(
        hex::encode(header_bytes(&h(128))),
        "300902020080040004 01ab".replace(' ', "")
    );
    assert_eq!(
        hex::encode(header_bytes(&h(u64::MAX))),
        "301002090 0ffffffffffffffff040004 01ab".replace(' ', "")
    );
}
