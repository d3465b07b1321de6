//! How a catching-up node judges pulled blocks, against the blocks a real Fabric cluster made
//! (`fixtures/fabric-2.4/ledger`): all of them pass, config block 13 included (it adds
//! orderer4 and becomes the config the later blocks are checked against); a forged signature,
//! a block signed by no orderer, and an envelope with trailing bytes do not.

use bytes::Bytes;
use ordo_cluster::puller::Source;
use ordo_orderer::channel::config_of_block;
use ordo_orderer::channel::{ChannelSource, orderer_endpoints, well_formed};
use ordo_proto::common::{Block, Envelope};
use ordo_testkit::{fixture, ledger_blocks};
use prost::Message;

fn blocks() -> Vec<Block> {
    ledger_blocks("from-orderer1")
        .into_iter()
        .map(|(_, raw)| Block::decode(raw.as_slice()).unwrap())
        .collect()
}

fn source(genesis: &Block) -> ChannelSource {
    let signer = ordo_msp::local::load_signing_identity(
        &fixture(
            "crypto-config/ordererOrganizations/example.com/orderers/orderer1.example.com/msp",
        ),
        "OrdererMSP",
    )
    .unwrap()
    .signer;
    ChannelSource::new(
        "channel-3",
        config_of_block(genesis).unwrap(),
        std::sync::Arc::new(signer),
    )
}

#[test]
fn fabrics_blocks_pass_and_the_endpoints_are_the_orderer_orgs() {
    let blocks = blocks();
    assert_eq!(blocks.len(), 14);
    let mut src = source(&blocks[0]);
    assert_eq!(
        src.endpoints(),
        ["127.0.0.1:37051", "127.0.0.1:37052", "127.0.0.1:37053"]
    );
    assert_eq!(
        orderer_endpoints(&config_of_block(&blocks[0]).unwrap()),
        src.endpoints()
    );
    assert!(!src.tls_roots().is_empty());
    for b in &blocks[1..] {
        src.verify(b).unwrap();
    }
}

#[test]
fn a_forged_signature_fails() {
    let blocks = blocks();
    let mut src = source(&blocks[0]);
    let mut forged = blocks[1].clone();
    // Re-number the header: the orderer's signature covers it, so it no longer verifies.
    forged.header.as_mut().unwrap().number += 100;
    let err = src.verify(&forged).unwrap_err().to_string();
    assert!(err.contains("signature") || err.contains("policy"), "{err}");
}

#[test]
fn a_block_signed_by_a_client_fails() {
    let blocks = blocks();
    let mut src = source(&blocks[0]);
    let user = ordo_msp::local::load_signing_identity(
        &fixture(
            "crypto-config/peerOrganizations/org1.example.com/users/User1@org1.example.com/msp",
        ),
        "Org1MSP",
    )
    .unwrap()
    .signer;
    let mut b = blocks[1].clone();
    ordo_ledger::block::sign_block(&mut b, &user, 0, None).unwrap();
    assert!(src.verify(&b).is_err());
}

#[test]
fn an_envelope_with_trailing_bytes_is_not_well_formed() {
    let blocks = blocks();
    well_formed(&blocks[1]).unwrap();
    let mut b = blocks[1].clone();
    let data = b.data.as_mut().unwrap();
    let mut raw = data.data[0].to_vec();
    // An unknown field (number 15, varint) after the envelope's own fields.
    raw.extend_from_slice(&[0x78, 0x01]);
    assert!(Envelope::decode(raw.as_slice()).is_ok());
    data.data[0] = Bytes::from(raw);
    assert_eq!(
        well_formed(&b).unwrap_err(),
        ordo_orderer::channel::Malformed::NonCanonical { block: 1, tx: 0 }
    );
    let mut empty = blocks[1].clone();
    empty.data.as_mut().unwrap().data[0] = Envelope::default().encode_to_vec().into();
    assert_eq!(
        well_formed(&empty).unwrap_err(),
        ordo_orderer::channel::Malformed::Unsigned { block: 1, tx: 0 }
    );
}
