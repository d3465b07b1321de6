//! Consenter IDs as a real Fabric cluster assigned them (`fixtures/fabric-2.4`): channel-3's
//! block 13 is the config block that added orderer4; the consenter metadata Fabric stamped on it
//! must be what `ordo_raft::membership::compute` derives from block 12's metadata and the two
//! configs. The fixture's rejected update (removing two consenters at once) must be refused with
//! the error text Fabric answered.

use bytes::Bytes;
use ordo_config::channel::ChannelConfig;
use ordo_ledger::block::consenter_metadata;
use ordo_orderer::channel::{config_of_block, consenter_certs};
use ordo_proto::common::{Block, Config};
use ordo_proto::etcdraft::BlockMetadata;
use ordo_raft::membership::{ConfChangeKind, MembershipError, compute};
use ordo_testkit::{ledger_blocks, read, read_string};
use prost::Message;

fn blocks() -> Vec<Block> {
    ledger_blocks("from-orderer1")
        .into_iter()
        .map(|(_, raw)| Block::decode(raw.as_slice()).unwrap())
        .collect()
}

fn raft_metadata(block: &Block) -> BlockMetadata {
    BlockMetadata::decode(consenter_metadata(block).unwrap()).unwrap()
}

fn certs_of(config: &str) -> Vec<Bytes> {
    let config = Config::decode(read(config).as_slice()).unwrap();
    consenter_certs(&ChannelConfig::new(&config).unwrap())
}

#[test]
fn adding_orderer4_gives_the_consenter_ids_fabric_stamped_on_block_13() {
    let blocks = blocks();
    let before = raft_metadata(&blocks[12]);
    let fabric = raft_metadata(&blocks[13]);
    assert_eq!(before.consenter_ids, [1, 2, 3]);

    let old = consenter_certs(&config_of_block(&blocks[0]).unwrap());
    let new = consenter_certs(&config_of_block(&blocks[13]).unwrap());
    let change = compute(&before, &old, &new).unwrap();

    assert_eq!(change.metadata.consenter_ids, fabric.consenter_ids);
    assert_eq!(change.metadata.next_consenter_id, fabric.next_consenter_id);
    assert_eq!(change.conf_change, Some(ConfChangeKind::Add(4)));
    assert_eq!(change.rotated, None);
}

#[test]
fn removing_two_consenters_at_once_is_refused_with_fabrics_error() {
    let old = certs_of("config-update/remove_two.orig.pb");
    let new = certs_of("config-update/remove_two.new.pb");
    let metadata = BlockMetadata {
        consenter_ids: (1..=old.len() as u64).collect(),
        next_consenter_id: old.len() as u64 + 1,
        raft_index: 0,
    };
    let err = compute(&metadata, &old, &new).unwrap_err();
    assert!(matches!(
        err,
        MembershipError::TooManyChanges {
            added: 0,
            removed: 2
        }
    ));
    // Fabric's answer ends with exactly the validation error.
    let answer = read_string("config-update/remove_two.answer.txt");
    assert!(answer.trim_end().ends_with(&err.to_string()), "{answer}");
}
