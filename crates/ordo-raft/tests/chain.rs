//! The pure chain core driven in one thread: a single node, a three-node group over an in-memory
//! network, restarts from persisted state, snapshots, and the raft-engine WAL round trip.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use ordo_ledger::block::header_hash;
use ordo_proto::common::Block;
use ordo_proto::etcdraft::BlockMetadata;
use ordo_raft::blockcutter::{BatchLimits, Pending};
use ordo_raft::chain::{
    Action, ChainCore, ChainParams, LastBlock, Options, Persist, Proposal, Start, SubmitError,
    election_range, initial_campaigner,
};
use ordo_raft::storage::{ColdEntries, Recovered};
use ordo_raft::wal::RaftWal;
use raft::eraftpb::Message;

const LIMITS: BatchLimits = BatchLimits {
    max_message_count: 3,
    preferred_max_bytes: 1 << 20,
    timeout_ns: 1_000_000_000,
};

fn options(id: u64) -> Options {
    Options {
        election_tick: 10,
        heartbeat_tick: 1,
        max_inflight_blocks: 2,
        snapshot_interval_size: 1 << 20,
        max_size_per_msg: 1 << 20,
        // Distinct fixed timeouts keep the runs deterministic.
        election_timeout: Some((10 + 3 * id as usize, 11 + 3 * id as usize)),
        // Fabric's cutting: these tests count blocks by MaxMessageCount and the timer.
        adaptive_cutting: false,
        learner_first: true,
    }
}

fn genesis(n: u64) -> LastBlock {
    LastBlock {
        number: 0,
        header_hash: [7; 32],
        metadata: BlockMetadata {
            consenter_ids: (1..=n).collect(),
            next_consenter_id: n + 1,
            raft_index: 0,
        },
    }
}

fn env(i: u32) -> Proposal {
    let bytes = Bytes::from(format!("envelope-{i}").into_bytes());
    Proposal::Normal(Pending {
        size: bytes.len() as u32,
        envelope: bytes,
    })
}

/// The consenters as the core sees them: one made-up certificate per ID of the last block, and
/// config blocks that never change them.
fn with_consenters(mut p: ChainParams) -> ChainParams {
    let certs: Vec<Bytes> = p
        .last_block
        .metadata
        .consenter_ids
        .iter()
        .map(|id| Bytes::from(id.to_be_bytes().to_vec()))
        .collect();
    p.consenters = certs.clone();
    p.consenters_of = Arc::new(move |_| Ok(certs.clone()));
    p
}

/// One simulated node: its core, what it persisted, the blocks it wrote.
struct Node {
    core: ChainCore,
    disk: Recovered,
    blocks: Vec<(Block, BlockMetadata)>,
    outbox: Vec<Message>,
}

impl Node {
    fn new(id: u64, n: u64, channel: &str) -> Node {
        Node::with_options(id, n, channel, options(id))
    }

    fn with_options(id: u64, n: u64, channel: &str, options: Options) -> Node {
        let core = ChainCore::new(with_consenters(ChainParams {
            channel: channel.into(),
            id,
            options,
            limits: LIMITS,
            last_block: genesis(n),
            consenters: Vec::new(),
            consenters_of: Arc::new(|_| Ok(Vec::new())),
            start: Start::Fresh,
        }))
        .unwrap();
        Node::around(core)
    }

    /// A node running `core`, its first actions carried out.
    fn around(core: ChainCore) -> Node {
        let mut node = Node {
            core,
            disk: Recovered::default(),
            blocks: Vec::new(),
            outbox: Vec::new(),
        };
        node.drain();
        node
    }

    /// Carries out the core's actions as a driver would (persisting to `disk`).
    fn drain(&mut self) {
        for a in self.core.take_actions() {
            match a {
                Action::Send(msgs) => self.outbox.extend(msgs),
                Action::Persist(p) => persist(&mut self.disk, p),
                Action::WriteBlock {
                    block, metadata, ..
                } => self.blocks.push((block, metadata)),
                Action::Snapshot {
                    snapshot,
                    compact_to,
                } => {
                    self.disk.snapshot = Some(snapshot);
                    self.disk.entries.retain(|e| e.index > compact_to);
                }
                Action::CatchUp { .. } => panic!("no catch-up expected"),
                Action::Evicted => panic!("no eviction expected"),
                Action::BatchCut { .. } => {}
            }
        }
    }

    fn last_block(&self) -> LastBlock {
        last_block_of(&self.blocks)
    }
}

fn last_block_of(blocks: &[(Block, BlockMetadata)]) -> LastBlock {
    match blocks.last() {
        None => genesis(1),
        Some((b, md)) => LastBlock {
            number: b.header.as_ref().unwrap().number,
            header_hash: header_hash(b.header.as_ref().unwrap()),
            metadata: md.clone(),
        },
    }
}

fn persist(disk: &mut Recovered, p: Persist) {
    if let Some(s) = p.snapshot {
        disk.entries.retain(|e| e.index > s.get_metadata().index);
        disk.snapshot = Some(s);
    }
    if let Some(first) = p.entries.first() {
        disk.entries.retain(|e| e.index < first.index);
        disk.entries.extend(p.entries);
    }
    if let Some(hs) = p.hard_state {
        disk.hard_state = hs;
    }
    if let Some(cs) = p.conf_state {
        disk.conf_state = cs;
    }
}

/// Ticks a lone node until it leads.
fn elect_single(node: &mut Node) {
    for _ in 0..100 {
        if node.core.status().is_leader {
            return;
        }
        node.core.tick().unwrap();
        node.drain();
    }
    panic!("no leader after 100 ticks");
}

fn check_chain(blocks: &[(Block, BlockMetadata)], first_prev: [u8; 32]) {
    let mut prev = first_prev;
    let mut last_index = 0;
    for (i, (b, md)) in blocks.iter().enumerate() {
        let h = b.header.as_ref().unwrap();
        assert_eq!(h.number, i as u64 + 1);
        assert_eq!(h.previous_hash.as_ref(), prev.as_slice());
        assert!(md.raft_index > last_index, "raft_index must grow");
        last_index = md.raft_index;
        prev = header_hash(h);
    }
}

#[test]
fn single_node_elects_itself_and_cuts_blocks_by_count_and_timer() {
    let mut node = Node::new(1, 1, "mychannel");
    // A fresh single-node channel's designated campaigner is node 1.
    assert_eq!(initial_campaigner("mychannel", 1), 1);
    elect_single(&mut node);
    assert!(node.core.accepting());
    for i in 0..7 {
        node.core.submit(env(i), 0).unwrap();
        node.drain();
    }
    // 3 + 3 by count, one envelope pending until the timer.
    assert_eq!(node.blocks.len(), 2);
    assert_eq!(node.core.deadline(), Some(LIMITS.timeout_ns));
    node.core.on_time(LIMITS.timeout_ns - 1).unwrap();
    node.drain();
    assert_eq!(node.blocks.len(), 2);
    node.core.on_time(LIMITS.timeout_ns).unwrap();
    node.drain();
    assert_eq!(node.blocks.len(), 3);
    check_chain(&node.blocks, [7; 32]);
    let sizes: Vec<usize> = node
        .blocks
        .iter()
        .map(|(b, _)| b.data.as_ref().unwrap().data.len())
        .collect();
    assert_eq!(sizes, vec![3, 3, 1]);
    assert_eq!(node.blocks[2].1.consenter_ids, vec![1]);
    assert_eq!(node.blocks[2].1.next_consenter_id, 2);
}

#[test]
fn a_config_envelope_goes_alone_after_the_pending_batch() {
    let mut node = Node::new(1, 1, "mychannel");
    elect_single(&mut node);
    node.core.submit(env(0), 0).unwrap();
    node.core
        .submit(Proposal::Config(Bytes::from_static(b"config")), 0)
        .unwrap();
    node.drain();
    assert_eq!(node.blocks.len(), 2);
    assert_eq!(node.blocks[0].0.data.as_ref().unwrap().data.len(), 1);
    assert_eq!(
        node.blocks[1].0.data.as_ref().unwrap().data[0].as_ref(),
        b"config"
    );
    check_chain(&node.blocks, [7; 32]);
}

#[test]
fn a_follower_refuses_submissions_naming_the_leader() {
    let mut nodes = cluster(3, "c3");
    let leader = run_until_leader(&mut nodes);
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    match nodes[follower as usize - 1].core.submit(env(0), 0) {
        Err(SubmitError::NotLeader { leader: l }) => assert_eq!(l, leader),
        other => panic!("unexpected {other:?}"),
    }
    // Before any election there is no leader at all.
    let mut lone = Node::new(2, 3, "c3");
    let err = lone.core.submit(env(0), 0).unwrap_err();
    assert_eq!(err.to_string(), "no Raft leader");
    lone.drain();
}

fn cluster(n: u64, channel: &str) -> Vec<Node> {
    (1..=n).map(|id| Node::new(id, n, channel)).collect()
}

/// Delivers every queued message until the network is quiet (messages are FIFO, no loss;
/// those for a node that is not running are lost).
fn settle(nodes: &mut [Node]) {
    let mut queue: VecDeque<Message> = VecDeque::new();
    loop {
        for n in nodes.iter_mut() {
            n.drain();
            queue.extend(n.outbox.drain(..));
        }
        let Some(m) = queue.pop_front() else {
            return;
        };
        let Some(to) = nodes.iter().position(|n| n.core.status().id == m.to) else {
            continue;
        };
        nodes[to].core.step(m).unwrap();
        nodes[to].drain();
        queue.extend(nodes[to].outbox.drain(..));
    }
}

fn run_until_leader(nodes: &mut [Node]) -> u64 {
    for _ in 0..200 {
        if let Some(l) = nodes.iter().find(|n| n.core.status().is_leader) {
            return l.core.status().id;
        }
        for n in nodes.iter_mut() {
            n.core.tick().unwrap();
        }
        settle(nodes);
    }
    panic!("no leader");
}

#[test]
fn three_nodes_replicate_identical_blocks_and_bound_inflight_blocks() {
    let mut nodes = cluster(3, "channel-3");
    let leader = run_until_leader(&mut nodes);
    // The first leader of a fresh channel is the designated campaigner.
    assert_eq!(leader, initial_campaigner("channel-3", 3));
    let li = leader as usize - 1;
    // Without delivering messages, blocks stay in flight: two (MaxInflightBlocks) at most.
    for i in 0..6 {
        nodes[li].core.submit(env(i), 0).unwrap();
    }
    assert!(!nodes[li].core.accepting());
    assert!(matches!(
        nodes[li].core.submit(env(99), 0),
        Err(SubmitError::Busy)
    ));
    settle(&mut nodes);
    assert!(nodes[li].core.accepting());
    for i in 6..9 {
        nodes[li].core.submit(env(i), 0).unwrap();
    }
    settle(&mut nodes);
    // Followers learn the commit index on the next heartbeat.
    for n in nodes.iter_mut() {
        n.core.tick().unwrap();
    }
    settle(&mut nodes);
    for n in &nodes {
        assert_eq!(n.blocks.len(), 3, "node {}", n.core.status().id);
        check_chain(&n.blocks, [7; 32]);
    }
    let headers: Vec<_> = nodes
        .iter()
        .map(|n| {
            n.blocks
                .iter()
                .map(|(b, _)| b.header.clone())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(headers[0], headers[1]);
    assert_eq!(headers[1], headers[2]);
}

/// With a preferred leader set, a leader that is not preferred hands leadership to it after two
/// election timeouts of leading (once it is caught up), and the preferred leader keeps it; a
/// stopping preferred leader still hands over, and leadership comes back once it returns.
#[test]
fn leadership_moves_to_a_preferred_leader_and_stays() {
    let mut nodes = cluster(3, "channel-3");
    let first = run_until_leader(&mut nodes);
    let preferred = if first == 3 { 2 } else { 3 };
    for n in nodes.iter_mut() {
        n.core.set_preferred_leaders(vec![preferred]);
    }
    let leader_after = |nodes: &mut Vec<Node>, rounds: usize| -> Vec<u64> {
        let mut seen = Vec::new();
        for _ in 0..rounds {
            for n in nodes.iter_mut() {
                n.core.tick().unwrap();
            }
            settle(nodes);
            if let Some(l) = nodes.iter().find(|n| n.core.status().is_leader) {
                let id = l.core.status().id;
                if seen.last() != Some(&id) {
                    seen.push(id);
                }
            }
        }
        seen
    };
    // Two election timeouts of leading, then one transfer: within 40 ticks.
    let seen = leader_after(&mut nodes, 40);
    assert_eq!(seen, vec![first, preferred], "leaders seen");
    // It stays: no transfer back, no flapping.
    assert_eq!(leader_after(&mut nodes, 100), vec![preferred]);
    // A leader that is not preferred never transfers to a node that is not.
    for n in nodes.iter_mut() {
        n.core.set_preferred_leaders(vec![]);
    }
    assert_eq!(leader_after(&mut nodes, 60), vec![preferred]);
}

/// A stopping leader hands leadership over once what it accepted is committed, and takes no
/// envelope meanwhile.
#[test]
fn a_stopping_leader_hands_over_and_takes_no_more_envelopes() {
    let mut nodes = cluster(3, "channel-3");
    let leader = run_until_leader(&mut nodes);
    let li = leader as usize - 1;
    nodes[li].core.submit(env(0), 0).unwrap();
    nodes[li].core.hand_off().unwrap();
    assert!(!nodes[li].core.accepting());
    assert!(nodes[li].core.submit(env(1), 0).is_err());
    let mut next = None;
    for _ in 0..20 {
        settle(&mut nodes);
        if let Some(l) = nodes.iter().find(|n| n.core.status().is_leader)
            && l.core.status().id != leader
        {
            next = Some(l.core.status().id);
            break;
        }
        for n in nodes.iter_mut() {
            n.core.tick().unwrap();
        }
    }
    let next = next.expect("leadership handed over");
    assert_ne!(next, leader);
    settle(&mut nodes);
    for n in nodes.iter_mut() {
        n.core.tick().unwrap();
    }
    settle(&mut nodes);
    // The envelope accepted before the hand-off is in a block on every node.
    for n in &nodes {
        assert_eq!(n.blocks.len(), 1, "node {}", n.core.status().id);
    }
}

/// A dead leader is replaced by the first follower that campaigns, even when the other follower
/// ticks just behind it: with CheckQuorum a follower ignores pre-votes while its leader lease
/// (ElectionTick of its own ticks since the last heartbeat) runs, so a campaign after exactly
/// ElectionTick ticks was ignored and the group waited a whole second timeout. `election_range`
/// starts one tick later; here the earliest draw wins at once.
#[test]
fn a_dead_leader_is_replaced_at_the_first_campaign_when_followers_tick_out_of_phase() {
    let (min, max) = election_range(10);
    let leader = initial_campaigner("channel-3", 3);
    let others: Vec<u64> = (1..=3).filter(|&id| id != leader).collect();
    let (early, late) = (others[0], others[1]);
    let mut nodes: Vec<Node> = (1..=3)
        .map(|id| {
            let mut o = options(id);
            o.election_timeout = if id == early {
                Some((min, min + 1))
            } else if id == late {
                Some((max - 1, max))
            } else {
                o.election_timeout
            };
            Node::with_options(id, 3, "channel-3", o)
        })
        .collect();
    assert_eq!(run_until_leader(&mut nodes), leader);
    // A last heartbeat reaches both followers; then the leader is gone.
    nodes[leader as usize - 1].core.tick().unwrap();
    settle(&mut nodes);
    let alive = [early as usize - 1, late as usize - 1];
    let settle_alive = |nodes: &mut [Node]| {
        let mut queue: VecDeque<Message> = VecDeque::new();
        loop {
            for &i in &alive {
                nodes[i].drain();
                queue.extend(nodes[i].outbox.drain(..));
            }
            let Some(m) = queue.pop_front() else { return };
            let to = m.to as usize - 1;
            if alive.contains(&to) {
                nodes[to].core.step(m).unwrap();
            }
        }
    };
    // Each round the early follower ticks first, the late one a phase behind it.
    for round in 1..=2 * max {
        for &i in &alive {
            nodes[i].core.tick().unwrap();
            settle_alive(&mut nodes);
        }
        if let Some(n) = alive.iter().find(|&&i| nodes[i].core.status().is_leader) {
            assert_eq!(
                nodes[*n].core.status().id,
                early,
                "the early follower's campaign was ignored"
            );
            assert_eq!(round, min, "elected at its first campaign");
            return;
        }
    }
    panic!("no new leader within {} rounds", 2 * max);
}

/// Adaptive cutting: an envelope that finds no block in flight goes out at once in its own
/// block (no waiting for the batch to fill or the timer); envelopes arriving while one is in
/// flight gather and go out together as soon as it commits.
#[test]
fn adaptive_cutting_sends_at_once_at_low_load_and_gathers_while_the_pipeline_is_full() {
    assert_eq!(ordo_raft::chain::ADAPTIVE_PIPELINE, 1);
    let mut nodes: Vec<Node> = (1..=3)
        .map(|id| {
            let mut o = options(id);
            o.adaptive_cutting = true;
            o.max_inflight_blocks = 5;
            Node::with_options(id, 3, "channel-3", o)
        })
        .collect();
    let li = run_until_leader(&mut nodes) as usize - 1;
    let leader = &mut nodes[li];
    leader.core.submit(env(0), 0).unwrap();
    assert_eq!(leader.core.deadline(), None, "cut at once: nothing pending");
    // A block in flight: these wait (the timer runs for them), though the leader accepts.
    // (Two of them: a third would fill the batch of three and be cut by count.)
    leader.core.submit(env(1), 0).unwrap();
    leader.core.submit(env(2), 0).unwrap();
    assert!(leader.core.accepting());
    assert_eq!(leader.core.deadline(), Some(LIMITS.timeout_ns));
    settle(&mut nodes);
    for n in nodes.iter_mut() {
        n.core.tick().unwrap();
    }
    settle(&mut nodes);
    let sizes: Vec<usize> = nodes[li]
        .blocks
        .iter()
        .map(|(b, _)| b.data.as_ref().unwrap().data.len())
        .collect();
    assert_eq!(
        sizes,
        vec![1, 2],
        "the gathered envelopes left with the first commit"
    );
    assert_eq!(nodes[li].core.deadline(), None);
    for n in &nodes {
        check_chain(&n.blocks, [7; 32]);
    }

    // Fabric's cutting (the option off): the same envelopes wait for the count or the timer.
    let mut nodes: Vec<Node> = (1..=3)
        .map(|id| {
            let mut o = options(id);
            o.max_inflight_blocks = 5;
            Node::with_options(id, 3, "channel-3", o)
        })
        .collect();
    let li = run_until_leader(&mut nodes) as usize - 1;
    nodes[li].core.submit(env(0), 0).unwrap();
    assert_eq!(nodes[li].core.deadline(), Some(LIMITS.timeout_ns));
}

/// Single node 1 of "mychannel", elected, with three blocks of three envelopes written.
fn single_with_three_blocks() -> Node {
    let mut node = Node::new(1, 1, "mychannel");
    elect_single(&mut node);
    for i in 0..9 {
        node.core.submit(env(i), 0).unwrap();
    }
    node.drain();
    assert_eq!(node.blocks.len(), 3);
    node
}

/// Single node 1 of "mychannel" started again on what `node` persisted, its ledger holding
/// `kept`.
fn restarted_single(node: &Node, kept: Vec<(Block, BlockMetadata)>) -> Node {
    Node {
        core: ChainCore::new(with_consenters(ChainParams {
            channel: "mychannel".into(),
            id: 1,
            options: options(1),
            limits: LIMITS,
            last_block: last_block_of(&kept),
            consenters: Vec::new(),
            consenters_of: Arc::new(|_| Ok(Vec::new())),
            start: Start::Restart(Box::new(node.disk.clone())),
        }))
        .unwrap(),
        disk: node.disk.clone(),
        blocks: kept,
        outbox: vec![],
    }
}

#[test]
fn restart_does_not_apply_an_entry_twice_and_reapplies_what_the_ledger_missed() {
    let node = single_with_three_blocks();
    // The "ledger" lost its last block (written, not yet durable when the node died).
    let kept: Vec<_> = node.blocks[..2].to_vec();
    let mut restarted = restarted_single(&node, kept);
    elect_single(&mut restarted);
    // Block 3 came back from the Raft log exactly once; blocks 1 and 2 were not re-applied.
    assert_eq!(restarted.blocks.len(), 3);
    assert_eq!(restarted.blocks[2].0.header, node.blocks[2].0.header);
    restarted.core.submit(env(100), 0).unwrap();
    restarted.core.on_time(u64::MAX).unwrap();
    restarted.drain();
    assert_eq!(restarted.blocks.len(), 4);
    check_chain(&restarted.blocks, [7; 32]);
}

/// Fabric stamps a consenter-changing config block with the raft index of the block before it
/// (`writeConfigBlock` leaves `RaftIndex` alone: the shared fixture's block 13 repeats block
/// 12's index). A node whose newest block came so from Fabric (pulled while catching up) replays
/// that block's entry after a restart: it is the block the ledger holds, so it is skipped, as
/// Fabric does, instead of halting the chain as a fork.
#[test]
fn a_restart_on_a_block_stamped_with_the_previous_raft_index_skips_its_entry() {
    let node = single_with_three_blocks();
    let mut kept = node.blocks.clone();
    kept[2].1.raft_index = kept[1].1.raft_index;
    let mut restarted = restarted_single(&node, kept);
    elect_single(&mut restarted);
    assert_eq!(
        restarted.blocks.len(),
        3,
        "the held block is not written again"
    );
    restarted.core.submit(env(100), 0).unwrap();
    restarted.core.on_time(u64::MAX).unwrap();
    restarted.drain();
    assert_eq!(restarted.blocks.len(), 4);
    // The chain checker wants every block's raft index to grow, as Ordo stamps them.
    restarted.blocks[2].1.raft_index = node.blocks[2].1.raft_index;
    check_chain(&restarted.blocks, [7; 32]);
}

#[test]
fn snapshots_are_taken_by_size_and_a_restart_starts_from_them() {
    let mut node = Node::new(1, 1, "mychannel");
    let mut opts = options(1);
    opts.snapshot_interval_size = 200;
    node.core = ChainCore::new(with_consenters(ChainParams {
        channel: "mychannel".into(),
        id: 1,
        options: opts.clone(),
        limits: LIMITS,
        last_block: genesis(1),
        consenters: Vec::new(),
        consenters_of: Arc::new(|_| Ok(Vec::new())),
        start: Start::Fresh,
    }))
    .unwrap();
    node.drain();
    elect_single(&mut node);
    for i in 0..30 {
        node.core.submit(env(i), 0).unwrap();
    }
    node.drain();
    assert_eq!(node.blocks.len(), 10);
    let snap = node.disk.snapshot.clone().expect("a snapshot was taken");
    let block = <Block as prost::Message>::decode(snap.get_data()).unwrap();
    assert!(block.header.unwrap().number >= 2);
    assert!(
        node.disk.entries.first().unwrap().index > 1,
        "log compacted"
    );
    let mut restarted = Node {
        core: ChainCore::new(with_consenters(ChainParams {
            channel: "mychannel".into(),
            id: 1,
            options: opts,
            limits: LIMITS,
            last_block: node.last_block(),
            consenters: Vec::new(),
            consenters_of: Arc::new(|_| Ok(Vec::new())),
            start: Start::Restart(Box::new(node.disk.clone())),
        }))
        .unwrap(),
        disk: node.disk.clone(),
        blocks: node.blocks.clone(),
        outbox: vec![],
    };
    elect_single(&mut restarted);
    restarted.core.submit(env(1000), 0).unwrap();
    restarted.core.on_time(u64::MAX).unwrap();
    restarted.drain();
    assert_eq!(restarted.blocks.len(), 11);
    check_chain(&restarted.blocks, [7; 32]);
}

#[test]
fn the_raft_engine_wal_gives_back_what_was_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let (wal_dir, snap_dir) = (dir.path().join("wal/ch"), dir.path().join("snap/ch"));
    let mut node = Node::new(1, 1, "mychannel");
    let mut opts = options(1);
    opts.snapshot_interval_size = 300;
    node.core = ChainCore::new(with_consenters(ChainParams {
        channel: "mychannel".into(),
        id: 1,
        options: opts,
        limits: LIMITS,
        last_block: genesis(1),
        consenters: Vec::new(),
        consenters_of: Arc::new(|_| Ok(Vec::new())),
        start: Start::Fresh,
    }))
    .unwrap();
    let mut wal = RaftWal::open(&wal_dir, &snap_dir).unwrap();
    assert!(wal.is_fresh().unwrap());
    assert_eq!(wal.node_id(), None);
    wal.set_node_id(1).unwrap();
    assert!(wal.is_fresh().unwrap(), "an owner alone is no Raft state");
    let mut expected = Recovered::default();
    let run = |node: &mut Node, wal: &mut RaftWal, expected: &mut Recovered| {
        for a in node.core.take_actions() {
            match a {
                Action::Persist(p) => {
                    wal.persist(&p).unwrap();
                    persist(expected, p);
                }
                Action::Snapshot {
                    snapshot,
                    compact_to,
                } => {
                    wal.save_snapshot(&snapshot, compact_to).unwrap();
                    expected.snapshot = Some(snapshot);
                    expected.entries.retain(|e| e.index > compact_to);
                }
                Action::WriteBlock {
                    block, metadata, ..
                } => node.blocks.push((block, metadata)),
                Action::Send(_)
                | Action::CatchUp { .. }
                | Action::BatchCut { .. }
                | Action::Evicted => {}
            }
        }
    };
    run(&mut node, &mut wal, &mut expected);
    while !node.core.status().is_leader {
        node.core.tick().unwrap();
        run(&mut node, &mut wal, &mut expected);
    }
    for i in 0..20 {
        node.core.submit(env(i), 0).unwrap();
        run(&mut node, &mut wal, &mut expected);
    }
    drop(wal);
    let wal = RaftWal::open(&wal_dir, &snap_dir).unwrap();
    assert!(!wal.is_fresh().unwrap());
    assert_eq!(wal.node_id(), Some(1), "the owner survives a restart");
    let got = wal.recover().unwrap();
    assert_eq!(got.hard_state, expected.hard_state);
    assert_eq!(got.conf_state, expected.conf_state);
    assert_eq!(got.snapshot, expected.snapshot);
    let snap_index = got.snapshot.as_ref().unwrap().get_metadata().index;
    let want: Vec<_> = expected
        .entries
        .iter()
        .filter(|e| e.index > snap_index)
        .cloned()
        .collect();
    let have: Vec<_> = got
        .entries
        .iter()
        .filter(|e| e.index > snap_index)
        .cloned()
        .collect();
    assert_eq!(have, want);
    // What the in-memory log reads released entries back with gives the same entries.
    let first = got.entries.first().unwrap().index;
    let last = got.entries.last().unwrap().index;
    let mut read_back = Vec::new();
    wal.entries_reader()
        .fetch(first, last + 1, None, &mut read_back)
        .unwrap();
    assert_eq!(read_back, got.entries);
    let mut limited = Vec::new();
    wal.entries_reader()
        .fetch(first, last + 1, Some(0), &mut limited)
        .unwrap();
    assert_eq!(limited, got.entries[..1].to_vec());

    // The snapshot files lost (an operator wiped the folder, or a damaged disk): the WAL's own
    // copy of the newest snapshot still gives the same state back; so it does when the file is
    // garbage.
    drop(wal);
    std::fs::remove_dir_all(&snap_dir).unwrap();
    let wal = RaftWal::open(&wal_dir, &snap_dir).unwrap();
    let without_files = wal.recover().unwrap();
    assert_eq!(without_files.snapshot, expected.snapshot);
    assert_eq!(without_files.entries, got.entries);
    drop(wal);
    let snap = expected.snapshot.as_ref().unwrap().get_metadata();
    std::fs::write(
        snap_dir.join(format!("{:016x}-{:016x}.snap", snap.term, snap.index)),
        b"garbage",
    )
    .unwrap();
    let wal = RaftWal::open(&wal_dir, &snap_dir).unwrap();
    assert_eq!(wal.recover().unwrap().snapshot, expected.snapshot);

    drop(wal);
    ordo_raft::wal::remove(&wal_dir, &snap_dir).unwrap();
    assert!(!wal_dir.exists() && !snap_dir.exists());
    let wal = RaftWal::open(&wal_dir, &snap_dir).unwrap();
    assert!(wal.is_fresh().unwrap(), "a removed channel starts fresh");
    assert_eq!(wal.node_id(), None);
}

/// A CONFIG envelope whose consenters are the made-up certificates of `ids` (see
/// [`with_consenters`]); [`consenters_in`] reads them back.
fn config_env(ids: &[u64]) -> Bytes {
    use ordo_proto::common::{ChannelHeader, Envelope, Header, HeaderType, Payload};
    use prost::Message as _;
    let ch = ChannelHeader {
        r#type: HeaderType::Config as i32,
        channel_id: "growing".into(),
        ..Default::default()
    };
    let payload = Payload {
        header: Some(Header {
            channel_header: ch.encode_to_vec().into(),
            signature_header: Bytes::new(),
        }),
        data: ids.iter().flat_map(|id| id.to_be_bytes()).collect(),
    };
    Envelope {
        payload: payload.encode_to_vec().into(),
        signature: Bytes::new(),
    }
    .encode_to_vec()
    .into()
}

fn consenters_in(block: &Block) -> Result<Vec<Bytes>, Box<dyn std::error::Error + Send + Sync>> {
    use ordo_proto::common::{Envelope, Payload};
    use prost::Message as _;
    let env = block
        .data
        .as_ref()
        .and_then(|d| d.data.first())
        .ok_or("no envelope")?;
    let env = Envelope::decode(env.clone())?;
    let data = Payload::decode(env.payload)?.data;
    Ok(data.chunks(8).map(Bytes::copy_from_slice).collect())
}

/// A node of the channel "growing": node 1 from the genesis block that lists it alone, or a
/// node that joins once its (pulled) ledger ends with the config block `joined_at`.
fn growing_node(id: u64, learner_first: bool, joined_at: Option<LastBlock>) -> Node {
    let mut o = options(id);
    o.learner_first = learner_first;
    let last_block = joined_at.clone().unwrap_or_else(|| genesis(1));
    let consenters = last_block
        .metadata
        .consenter_ids
        .iter()
        .map(|id| Bytes::from(id.to_be_bytes().to_vec()))
        .collect();
    let core = ChainCore::new(ChainParams {
        channel: "growing".into(),
        id,
        options: o,
        limits: LIMITS,
        last_block,
        consenters,
        consenters_of: Arc::new(consenters_in),
        start: if joined_at.is_some() {
            Start::Join
        } else {
            Start::Fresh
        },
    })
    .unwrap();
    Node::around(core)
}

fn tick_all(nodes: &mut [Node], ticks: usize) {
    for _ in 0..ticks {
        for n in nodes.iter_mut() {
            n.core.tick().unwrap();
        }
        settle(nodes);
    }
}

/// Orders one envelope through the leader `nodes[0]` and checks that it is written there at once:
/// the channel is available.
fn orders_at_once(nodes: &mut [Node], i: u32) {
    let before = nodes[0].blocks.len();
    assert!(
        nodes[0].core.accepting(),
        "the leader must accept envelope {i}"
    );
    nodes[0].core.submit(env(i), 0).unwrap();
    nodes[0].core.on_time(u64::MAX).unwrap();
    settle(nodes);
    assert_eq!(nodes[0].blocks.len(), before + 1, "envelope {i} ordered");
}

/// Growing a one-node channel: the added consenter enters as a learner, so the channel keeps
/// ordering while the new node is not even running (Fabric's AddNode would need it for every
/// commit from then on); once the node runs and holds the log, the leader promotes it, and both
/// nodes hold the same blocks.
#[test]
fn an_added_consenter_is_a_learner_until_it_holds_the_log_and_ordering_never_stops() {
    let mut nodes = vec![growing_node(1, true, None)];
    elect_single(&mut nodes[0]);
    orders_at_once(&mut nodes, 0);
    nodes[0]
        .core
        .submit(Proposal::Config(config_env(&[1, 2])), 0)
        .unwrap();
    settle(&mut nodes);
    tick_all(&mut nodes, 1);
    let s = nodes[0].core.status();
    assert_eq!((s.cluster_size, s.learners.clone()), (1, vec![2]));
    assert_eq!(nodes[0].core.voters(), vec![1]);
    // Node 2 is not running: ordering goes on, for longer than an election timeout.
    for i in 1..=5 {
        orders_at_once(&mut nodes, i);
        tick_all(&mut nodes, 5);
    }
    assert_eq!(nodes[0].core.voters(), vec![1], "not promoted while away");

    // Node 2 starts from its pulled ledger, which ends with the config block that adds it.
    let config_block = nodes[0]
        .blocks
        .iter()
        .position(|(b, _)| ordo_ledger::block::is_config_block(b))
        .unwrap();
    let joined_at = last_block_of(&nodes[0].blocks[..=config_block]);
    assert_eq!(joined_at.metadata.consenter_ids, vec![1, 2]);
    let mut second = growing_node(2, true, Some(joined_at));
    assert_eq!(
        second.core.status().learners,
        vec![2],
        "a joining node is a learner in its own eyes"
    );
    second.blocks = nodes[0].blocks[..=config_block].to_vec();
    nodes.push(second);
    let mut promoted_after = None;
    for t in 0..50 {
        orders_at_once(&mut nodes, 100 + t);
        tick_all(&mut nodes, 1);
        if nodes[0].core.voters() == vec![1, 2] {
            promoted_after = Some(t);
            break;
        }
    }
    assert!(promoted_after.is_some(), "the learner was never promoted");
    tick_all(&mut nodes, 2);
    for n in &nodes {
        let s = n.core.status();
        assert_eq!((s.cluster_size, s.learners.clone()), (2, vec![]));
    }
    // Two voters now: both must acknowledge, and both hold the same blocks.
    orders_at_once(&mut nodes, 1000);
    tick_all(&mut nodes, 2);
    let headers = |n: &Node| {
        n.blocks
            .iter()
            .map(|(b, _)| b.header.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(headers(&nodes[0]), headers(&nodes[1]));
    check_chain(&nodes[1].blocks, [7; 32]);
}

/// A consenter that never comes up stays a learner, and the next config update removes it
/// without the channel ever stopping.
#[test]
fn a_learner_that_never_starts_is_removed_by_the_next_config_update() {
    let mut nodes = vec![growing_node(1, true, None)];
    elect_single(&mut nodes[0]);
    nodes[0]
        .core
        .submit(Proposal::Config(config_env(&[1, 2])), 0)
        .unwrap();
    tick_all(&mut nodes, 3);
    assert_eq!(nodes[0].core.status().learners, vec![2]);
    orders_at_once(&mut nodes, 0);
    nodes[0]
        .core
        .submit(Proposal::Config(config_env(&[1])), 0)
        .unwrap();
    tick_all(&mut nodes, 3);
    let s = nodes[0].core.status();
    assert_eq!((s.cluster_size, s.learners), (1, vec![]));
    assert_eq!(nodes[0].core.pending_conf_change(), None);
    orders_at_once(&mut nodes, 1);
}

/// With Fabric's membership changes the added consenter is a voter at once: a one-node channel
/// grown to two cannot commit until the second node runs (what the learners avoid).
#[test]
fn fabric_membership_changes_add_a_voter_at_once() {
    let mut nodes = vec![growing_node(1, false, None)];
    elect_single(&mut nodes[0]);
    nodes[0]
        .core
        .submit(Proposal::Config(config_env(&[1, 2])), 0)
        .unwrap();
    tick_all(&mut nodes, 3);
    assert_eq!(nodes[0].core.voters(), vec![1, 2]);
    assert!(nodes[0].core.status().learners.is_empty());
    let before = nodes[0].blocks.len();
    nodes[0].core.submit(env(0), 0).unwrap();
    nodes[0].core.on_time(u64::MAX).unwrap();
    tick_all(&mut nodes, 3);
    assert_eq!(nodes[0].blocks.len(), before, "no quorum without node 2");
}

/// Fabric v2.4's leader sends a newly added consenter the snapshot it stored at the config
/// block that added it, whose ConfState (voters 1, 2, 3) predates the AddNode of node 4 in the
/// log after it. raft-rs alone refuses it ("not in the ConfState") and node 4 never catches up;
/// the core admits itself into it as a learner, restores it and catches up to its block.
#[test]
fn a_snapshot_whose_membership_predates_this_node_is_taken() {
    let core = ChainCore::new(with_consenters(ChainParams {
        channel: "channel-3".into(),
        id: 4,
        options: options(4),
        limits: LIMITS,
        last_block: genesis(4),
        consenters: Vec::new(),
        consenters_of: Arc::new(|_| Ok(Vec::new())),
        start: Start::Fresh,
    }))
    .unwrap();
    let mut node = Node {
        core,
        disk: Recovered::default(),
        blocks: Vec::new(),
        outbox: Vec::new(),
    };
    let _ = node.core.take_actions();
    let block = ordo_ledger::block::new_block(31, &[9; 32], vec![Bytes::from_static(b"tx")]);
    let mut snap = raft::eraftpb::Snapshot::default();
    snap.set_data(prost::Message::encode_to_vec(&block).into());
    let meta = snap.mut_metadata();
    meta.index = 31;
    meta.term = 2;
    meta.mut_conf_state().voters = vec![1, 2, 3];
    let mut msg = Message::default();
    msg.set_msg_type(raft::eraftpb::MessageType::MsgSnapshot);
    msg.from = 2;
    msg.to = 4;
    msg.term = 2;
    msg.set_snapshot(snap);
    node.core.step(msg).unwrap();
    let caught_up: Vec<u64> = node
        .core
        .take_actions()
        .into_iter()
        .filter_map(|a| match a {
            Action::CatchUp { block } => block.header.map(|h| h.number),
            _ => None,
        })
        .collect();
    assert_eq!(
        caught_up,
        vec![31],
        "the snapshot was restored and its block is the catch-up target"
    );
}
