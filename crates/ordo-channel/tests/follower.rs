//! The follower engine over the blocks a real Fabric cluster made
//! (`fixtures/fabric-2.4/ledger/from-orderer1`: channel-3, blocks 0..12 with consenters
//! orderer1..3, then block 13, the config block adding orderer4): onboarding to the join block,
//! the join block checked, and the switch to consenter decided by the config.

use ordo_channel::follower::{
    FollowError, FollowerEngine, FollowerEvent, FollowerIo, JoinBlock, Next,
};
use ordo_channel::io::IoError;
use ordo_config::ChannelConfig;
use ordo_proto::common::Block;
use ordo_testkit::{ledger_blocks, read};
use prost::Message;

fn blocks() -> Vec<Block> {
    ledger_blocks("from-orderer1")
        .into_iter()
        .map(|(_, raw)| Block::decode(raw.as_slice()).unwrap())
        .collect()
}

/// The public key by which orderer `n` finds itself among the consenters.
fn key_of(n: u32) -> Vec<u8> {
    let pem = read(&format!(
        "crypto-config/ordererOrganizations/example.com/orderers/orderer{n}.example.com/tls/server.crt"
    ));
    ordo_config::channel::cert_key(&pem).unwrap()
}

/// A ledger in memory, recording what the engine told it.
struct TestIo {
    key: Vec<u8>,
    ledger: Vec<Block>,
    configs: Vec<u64>,
    onboarded: Option<u64>,
}

impl FollowerIo for TestIo {
    type Config = ChannelConfig;

    fn append(&mut self, block: &Block) -> Result<(), IoError> {
        self.ledger.push(block.clone());
        Ok(())
    }

    fn self_key(&self) -> Option<Vec<u8>> {
        Some(self.key.clone())
    }

    fn event(&mut self, e: FollowerEvent<'_, ChannelConfig>) {
        match e {
            FollowerEvent::BlockWritten { .. } => {}
            FollowerEvent::ConfigApplied { number, .. } => self.configs.push(number),
            FollowerEvent::Onboarded { number } => self.onboarded = Some(number),
        }
    }
}

/// A node holding the genesis block, joined with block 13, as orderer `me`.
fn joined_with_block_13(me: u32) -> (FollowerEngine<ChannelConfig>, TestIo, Vec<Block>) {
    let all = blocks();
    let genesis = ordo_channel::config::config_of_block(&all[0]).unwrap();
    let join = JoinBlock::<ChannelConfig>::of(&all[13]).unwrap();
    let engine = FollowerEngine::new(1, genesis, Some(&join));
    let io = TestIo {
        key: key_of(me),
        ledger: vec![all[0].clone()],
        configs: vec![],
        onboarded: None,
    };
    (engine, io, all)
}

#[test]
fn the_node_the_join_block_adds_becomes_a_consenter_on_reaching_it() {
    let (mut engine, mut io, all) = joined_with_block_13(4);
    assert!(engine.onboarding());
    assert!(!engine.consenter_now(&io), "onboarding first");
    for b in &all[1..13] {
        assert_eq!(engine.on_pulled(&mut io, b).unwrap(), Next::Follow);
        assert!(engine.onboarding());
    }
    assert_eq!(
        engine.on_pulled(&mut io, &all[13]).unwrap(),
        Next::BecomeConsenter
    );
    assert!(!engine.onboarding());
    assert_eq!(io.onboarded, Some(13));
    assert_eq!(io.configs, vec![13]);
    assert_eq!(io.ledger.len(), 14);
}

#[test]
fn a_node_the_config_does_not_list_goes_on_following() {
    let (mut engine, mut io, all) = joined_with_block_13(5);
    for b in &all[1..=13] {
        assert_eq!(engine.on_pulled(&mut io, b).unwrap(), Next::Follow);
    }
    assert_eq!(io.onboarded, Some(13), "onboarding ends all the same");
    assert!(!engine.consenter_now(&io));
}

#[test]
fn a_block_other_than_the_join_block_at_its_number_is_refused_and_not_appended() {
    let (mut engine, mut io, all) = joined_with_block_13(4);
    for b in &all[1..13] {
        engine.on_pulled(&mut io, b).unwrap();
    }
    let mut forged = all[13].clone();
    forged.header.as_mut().unwrap().data_hash = vec![7; 32].into();
    let err = engine.on_pulled(&mut io, &forged).unwrap_err();
    assert!(matches!(err, FollowError::NotTheJoinBlock(13)), "{err}");
    assert_eq!(io.ledger.len(), 13);
    assert!(engine.onboarding());
}

#[test]
fn a_node_listed_by_the_config_at_its_ledgers_tip_is_a_consenter_at_once() {
    let all = blocks();
    let config = ordo_channel::config::config_of_block(&all[13]).unwrap();
    let listed = |me| {
        let engine = FollowerEngine::new(14, config.clone(), None);
        let io = TestIo {
            key: key_of(me),
            ledger: all.clone(),
            configs: vec![],
            onboarded: None,
        };
        engine.consenter_now(&io)
    };
    assert!(listed(4));
    assert!(listed(1));
    assert!(!listed(5));
    // A join block the ledger already holds is not waited for.
    let join = JoinBlock::<ChannelConfig>::of(&all[13]).unwrap();
    assert!(!FollowerEngine::new(14, config, Some(&join)).onboarding());
}
