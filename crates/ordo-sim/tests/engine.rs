//! The channel engine on the simulator's world, scenario by scenario: two liveness rules the
//! seeds found (a node whose config is behind must accept the consenters of the channel's newer
//! config; a restarted node must still reach a removed consenter the Raft group needs), set up
//! directly rather than waited for in a random run.

use ordo_channel::consenter::last_block_of;
use ordo_channel::{ConsenterEngine, EngineParams, Suspicion};
use ordo_ledger::block::{header_hash, new_block, put_unsigned_metadata};
use ordo_proto::common::Block;
use ordo_proto::etcdraft::BlockMetadata;
use ordo_raft::blockcutter::BatchLimits;
use ordo_raft::chain::{Persist, Start};
use ordo_sim::Disk;
use ordo_sim::config::{SimConfig, cert};
use ordo_sim::io::{Effects, SimIo};
use prost::Message as _;
use raft::eraftpb::ConfState;

fn config(sequence: u64, slots: &[usize]) -> SimConfig {
    SimConfig {
        sequence,
        limits: BatchLimits {
            max_message_count: 10,
            preferred_max_bytes: 1 << 20,
            timeout_ns: 100_000_000,
        },
        max_inflight_blocks: 5,
        snapshot_interval_size: 1 << 20,
        certs: slots.iter().map(|s| cert(*s, 0)).collect(),
    }
}

/// A config block after `prev` carrying `cfg`, with the consenter IDs `ids` and LAST_CONFIG at
/// its own number.
fn config_block(
    prev: &Block,
    cfg: &SimConfig,
    ids: &[u64],
    next_id: u64,
) -> (Block, BlockMetadata) {
    let h = prev.header.as_ref().unwrap();
    let mut block = new_block(
        h.number + 1,
        &header_hash(h),
        vec![cfg.envelope(h.number + 1)],
    );
    let md = BlockMetadata {
        consenter_ids: ids.to_vec(),
        next_consenter_id: next_id,
        raft_index: h.number + 1,
    };
    put_unsigned_metadata(&mut block, h.number + 1, &md.encode_to_vec());
    (block, md)
}

struct Node {
    disk: Disk,
    ledger: Vec<(Block, BlockMetadata)>,
    synced: usize,
    fx: Effects,
}

impl Node {
    fn io(&mut self, slot: usize) -> SimIo<'_> {
        SimIo {
            slot,
            disk: &mut self.disk,
            ledger: &mut self.ledger,
            ledger_synced: &mut self.synced,
            bug: None,
            fx: &mut self.fx,
        }
    }
}

fn params(
    id: u64,
    node: &Node,
    config: SimConfig,
    last_config: u64,
    start: Start,
) -> EngineParams<SimConfig> {
    let (tip, _) = node.ledger.last().unwrap();
    EngineParams {
        channel: "simchannel".into(),
        id,
        last_block: last_block_of(tip, node.ledger.len() as u64, &config).unwrap(),
        config,
        last_config,
        start,
        cold_entries: None,
        adaptive_cutting: true,
        learner_first: true,
        election_timeout: Some((11, 12)),
        eviction_suspicion_ticks: 50,
        eviction_check_interval_ticks: 50,
        bug: None,
        preferred_leaders: Vec::new(),
    }
}

fn ids(engine: &ConsenterEngine<SimConfig>) -> Vec<u64> {
    let mut v: Vec<u64> = engine.members().iter().map(|m| m.id).collect();
    v.sort_unstable();
    v
}

/// Node 1 knows consenters 1, 2, 3; the channel has since replaced 3 by a node 4 that may
/// lead. When 4's messages are refused as unknown, node 1 checks the channel's last config: it
/// still lists node 1, so 4 is accepted — and reached — until node 1's own config catches up.
#[test]
fn a_node_whose_config_is_behind_accepts_the_consenters_of_the_newer_config() {
    let genesis_cfg = config(0, &[0, 1, 2]);
    let genesis = new_block(0, &[], vec![genesis_cfg.envelope(0)]);
    let mut node = Node {
        disk: Disk::default(),
        ledger: vec![(genesis.clone(), BlockMetadata::default())],
        synced: 1,
        fx: Effects::default(),
    };
    let p = params(1, &node, genesis_cfg.clone(), 0, Start::Fresh);
    let mut engine = ConsenterEngine::start(p, &mut node.io(0)).unwrap();
    assert_eq!(ids(&engine), [1, 2, 3]);

    engine.suspect(&mut node.io(0), Suspicion::UnknownSender);
    assert!(node.fx.probe, "the check was asked for");
    let mut slots = genesis_cfg.certs.clone();
    slots[2] = cert(3, 1);
    let (newer, _) = config_block(&genesis, &genesis_cfg.next(slots), &[1, 2, 4], 5);
    engine.on_probe(&mut node.io(0), Ok((newer.clone(), 2)));
    assert!(engine.evicted().is_none(), "still a consenter");
    assert_eq!(ids(&engine), [1, 2, 3, 4]);

    // A config the others are behind on says nothing; one that removed this node (and has a
    // block after it) ends the engine.
    let (removing, _) = config_block(&newer, &config(2, &[1, 3]), &[2, 4], 5);
    engine.suspect(&mut node.io(0), Suspicion::Leaderless);
    engine.on_probe(&mut node.io(0), Ok((removing.clone(), 3)));
    assert!(
        engine.evicted().is_none(),
        "nothing ordered after the removal: it may not be applied yet"
    );
}

/// Node 2 of a two-voter group restarts after the config removed node 1 but before the Raft
/// group did: it must still reach node 1, whose vote and acknowledgement the group needs to
/// apply that removal. Its address is in the genesis config.
#[test]
fn a_restarted_node_reaches_a_removed_consenter_still_in_the_raft_group() {
    let genesis_cfg = config(0, &[0, 1]);
    let genesis = new_block(0, &[], vec![genesis_cfg.envelope(0)]);
    let removal_cfg = genesis_cfg.next(vec![cert(1, 0)]);
    let (removal, md) = config_block(&genesis, &removal_cfg, &[2], 3);
    let mut disk = Disk::default();
    disk.persist(Persist {
        conf_state: Some(ConfState {
            voters: vec![1, 2],
            ..Default::default()
        }),
        ..Default::default()
    });
    disk.sync().unwrap();
    let mut node = Node {
        disk,
        ledger: vec![(genesis, BlockMetadata::default()), (removal, md)],
        synced: 2,
        fx: Effects::default(),
    };
    let recovered = node.disk.recover();
    let p = params(
        2,
        &node,
        removal_cfg,
        1,
        Start::Restart(Box::new(recovered)),
    );
    let engine = ConsenterEngine::start(p, &mut node.io(1)).unwrap();
    assert_eq!(ids(&engine), [1, 2]);
    let one = engine.members().iter().find(|m| m.id == 1).unwrap();
    assert_eq!(one.client_tls_cert, cert(0, 0));
}
