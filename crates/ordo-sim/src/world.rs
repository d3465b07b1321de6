//! The simulated world: nodes, network, clients and the chaos that strikes them, as one
//! event queue ordered by (simulated time, sequence number) — so a run depends on nothing but its
//! seed.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::panic::{AssertUnwindSafe, catch_unwind};

use bytes::Bytes;
use ordo_ledger::block::{header_hash, is_config_block, new_block, verify_data_hash, verify_link};
use ordo_proto::common::{Block, ChannelHeader, Envelope, Header, HeaderType, Payload};
use ordo_proto::etcdraft::BlockMetadata;
use ordo_raft::blockcutter::{BatchLimits, Pending};
use ordo_raft::chain::{
    Action, ChainCore, ChainParams, CoreError, LastBlock, Options, Proposal, Start,
    needed_for_quorum,
};
use prost::Message as _;
use raft::eraftpb::Message;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::disk::Disk;

const MS: u64 = 1_000_000;
const CHANNEL: &str = "simchannel";
/// The Raft tick (Fabric's default TickInterval is 500 ms; the fixtures use 250 ms).
const TICK: u64 = 100 * MS;
const ELECTION_TICK: usize = 10;
/// Clients stop this long before the end, so that the last blocks reach every node.
const QUIET: u64 = 4_000 * MS;
/// Ticks without a leader after which a node asks the others whether it was removed (the real
/// driver's `EvictionSuspicion`, 10 minutes by default; short here so that it happens).
const SUSPICION_TICKS: usize = 5 * ELECTION_TICK;

/// A deliberately broken driver, to prove the simulator catches what it must.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// Raft state is fsynced only once per tick (a "group commit on a timer") while messages
    /// leave at once: votes and acknowledgements can be lost in a crash.
    SyncOnTickOnly,
    /// The WAL drops entries at a snapshot while blocks made from them are still unsynced in
    /// the ledger: a crash can then lose committed blocks on every node.
    CompactBeforeLedgerSync,
}

/// What a run looks like; [`SimOptions::default`] is what `cargo test` runs per seed.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Cluster size; `None`: 3 or 5, from the seed.
    pub nodes: Option<usize>,
    /// Broadcast acknowledges an envelope only once it is in a committed block; `None`: from
    /// the seed (half the seeds each way).
    pub ack_after_commit: Option<bool>,
    pub bug: Option<Bug>,
    /// Start the channel with one consenter and add the others one at a time, each node
    /// starting up to a few seconds after the config block that adds it, before any fault
    /// (a growth phase); `None`: from the seed (a third of the seeds).
    pub growth: Option<bool>,
    /// Added consenters enter as Raft learners (`ordo_raft::chain::Options::learner_first`);
    /// `false` is Fabric's plain AddNode. `None`: from the seed (one seed in five is Fabric's).
    pub learners: Option<bool>,
    /// Simulated time with faults, then without (the cluster must make progress after it).
    pub chaos_ms: u64,
    pub heal_ms: u64,
    /// Print every notable event.
    pub trace: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            nodes: None,
            ack_after_commit: None,
            growth: None,
            learners: None,
            bug: None,
            chaos_ms: 15_000,
            heal_ms: 12_000,
            trace: false,
        }
    }
}

/// What a successful run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub seed: u64,
    pub nodes: usize,
    pub ack_after_commit: bool,
    pub blocks: u64,
    pub envelopes_ordered: u64,
    pub acknowledged: u64,
    pub crashes: u64,
    pub lost_writes: u64,
    /// Unsynced ledger blocks lost in crashes (made again from the WAL).
    pub lost_blocks: u64,
    pub partitions: u64,
    pub catch_ups: u64,
    pub snapshots_taken: u64,
    pub leader_changes: u64,
    /// Config blocks that changed the consenter set (an add, a removal or a rotation).
    pub membership_changes: u64,
    /// Nodes that reported their own removal and stopped.
    pub evictions: u64,
    /// Nodes that joined under a new Raft ID (added back after a removal, or added by growth).
    pub rejoins: u64,
    pub learners: bool,
    /// The run began with a growth phase: one consenter grown to all, one at a time.
    pub growth: bool,
    /// Simulated time without any leader during the growth phase, from the first election
    /// until every node was a voter. With learners it must be zero (nothing fails meanwhile);
    /// Fabric's AddNode loses the quorum whenever an added node starts late.
    pub growth_leaderless_ms: u64,
    /// The longest time between two blocks written during the growth phase.
    pub growth_max_block_gap_ms: u64,
    /// How long the growth phase took.
    pub growth_ms: u64,
    /// Entries whose data a node's in-memory log had let go of and read back from its disk.
    pub cold_reads: u64,
    pub messages: u64,
    pub events: u64,
}

/// An invariant broken, with what is needed to replay it.
#[derive(Debug, Clone)]
pub struct Violation {
    pub seed: u64,
    pub at_ms: u64,
    pub what: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} failed at {} ms: {}\n  replay: cargo run -p ordo-sim --release -- --seed {} --trace",
            self.seed, self.at_ms, self.what, self.seed
        )
    }
}

impl std::error::Error for Violation {}

enum Net {
    Raft(Message),
    /// An envelope forwarded by a follower to the leader (Cluster/Step SubmitRequest).
    Submit {
        env: Bytes,
        config: bool,
    },
}

enum Ev {
    Tick {
        node: usize,
        inc: u64,
    },
    Timer {
        node: usize,
        inc: u64,
    },
    CatchUp {
        node: usize,
        inc: u64,
    },
    /// A node the config adds (back) pulls blocks up to the block that adds it, then starts.
    Join {
        node: usize,
        inc: u64,
    },
    Deliver {
        from: usize,
        to: usize,
        msg: Net,
    },
    Client,
    /// The operator of the growth phase adds the next consenter.
    Grow,
    Chaos,
    Restart {
        node: usize,
    },
    Heal,
    EndChaos,
}

struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    // Reversed: BinaryHeap is a max-heap and the earliest event must come out first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

struct Node {
    /// The Raft ID of the node's current membership (a node added back gets a new one).
    id: u64,
    core: Option<ChainCore>,
    /// Removed from the consenters: it keeps its ledger and takes no part any more (the real
    /// node becomes a follower).
    evicted: bool,
    /// Added under a new ID: the config block (number) its ledger must reach before it starts.
    joining: Option<u64>,
    /// Ticks in a row without a known leader (the eviction-suspicion emulation).
    leaderless: usize,
    /// Bumped at each crash, so that timers of an earlier life are ignored.
    inc: u64,
    disk: Disk,
    /// The ledger. As in the real block store, blocks made from committed entries are appended
    /// unsynced; config blocks and pulled blocks sync, and so does everything before the WAL
    /// lets entries go (a snapshot, a wiped WAL).
    ledger: Vec<(Block, BlockMetadata)>,
    /// How many blocks of `ledger` are synced: a crash keeps these and a random part of the rest.
    ledger_synced: usize,
    election: usize,
    /// Envelopes whose client waits for them to be committed (ack-after-commit mode).
    waiting: BTreeSet<Bytes>,
    timer_at: Option<u64>,
    catch_up: Option<u64>,
}

struct NetParams {
    drop: f64,
    dup: f64,
    max_delay: u64,
    /// Chance that a message is held up for a long time (reordering across elections).
    slow: f64,
}

struct World {
    opts: SimOptions,
    rng: ChaCha8Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Queued>,
    nodes: Vec<Node>,
    net: NetParams,
    /// Partition group of each node, while a partition lasts.
    partition: Option<Vec<u8>>,
    chaos: bool,
    ack_after_commit: bool,
    limits: BatchLimits,
    options: Options,
    /// Header hash of every block ever written by any node, by height.
    written: Vec<[u8; 32]>,
    acked: BTreeSet<Bytes>,
    next_env: u64,
    /// Next certificate generation of each node (a rotation gives a node a new certificate).
    generations: Vec<u64>,
    /// The first envelope number submitted after the heal.
    heal_env: Option<u64>,
    /// While the growth phase lasts: when it started and when the last block was written, and
    /// the time of the last event (for the leaderless time).
    growing: Option<Growth>,
    /// Whether some running node was leader after the last event.
    leader_known: bool,
    end: u64,
    report: Report,
    cold_reads: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Runs one seed; `Ok` with what happened, or the first invariant broken.
pub fn run(seed: u64, opts: &SimOptions) -> Result<Report, Violation> {
    let mut w = World::new(seed, opts.clone());
    w.run().map_err(|what| Violation {
        seed,
        at_ms: w.now / MS,
        what,
    })?;
    w.report.cold_reads = w.cold_reads.load(std::sync::atomic::Ordering::Relaxed);
    Ok(w.report)
}

/// Client envelope number `n` (a normal transaction).
fn envelope(n: u64) -> Bytes {
    envelope_with(n, HeaderType::EndorserTransaction, vec![b'x'; 60].into())
}

/// Node `slot`'s made-up TLS certificate of generation `generation`: the slot says which
/// simulated node it is, the generation changes with each rotation.
fn cert(slot: usize, generation: u64) -> Bytes {
    let mut c = (slot as u64).to_be_bytes().to_vec();
    c.extend_from_slice(&generation.to_be_bytes());
    c.into()
}

fn slot_of(cert: &[u8]) -> Option<usize> {
    Some(u64::from_be_bytes(cert.get(..8)?.try_into().ok()?) as usize)
}

/// A config envelope: like a real one it carries the whole consenter set, and the number of the
/// config block it was made from (the config sequence the real driver validates it against).
fn config_envelope(n: u64, base: u64, certs: &[Bytes]) -> Bytes {
    let mut data = base.to_be_bytes().to_vec();
    for c in certs {
        data.extend_from_slice(c);
    }
    envelope_with(n, HeaderType::Config, data.into())
}

/// The base config block number and the consenter certificates of a config envelope.
fn parse_config(env: &[u8]) -> Option<(u64, Vec<Bytes>)> {
    let env = Envelope::decode(env).ok()?;
    let data = Payload::decode(env.payload).ok()?.data;
    let base = u64::from_be_bytes(data.get(..8)?.try_into().ok()?);
    let rest = data.slice(8..);
    if rest.len() % 16 != 0 {
        return None;
    }
    Some((base, rest.chunks(16).map(Bytes::copy_from_slice).collect()))
}

/// The consenter certificates of a config block (the real node reads them from the config's
/// etcdraft metadata).
fn certs_of_block(block: &Block) -> Result<Vec<Bytes>, String> {
    block
        .data
        .as_ref()
        .and_then(|d| d.data.first())
        .and_then(|e| parse_config(e))
        .map(|(_, certs)| certs)
        .ok_or_else(|| "not a simulated config block".to_string())
}

/// The number and consenter certificates of the last config block of a ledger.
fn last_config(ledger: &[(Block, BlockMetadata)]) -> (u64, Vec<Bytes>) {
    ledger
        .iter()
        .enumerate()
        .rev()
        .find(|(_, (b, _))| is_config_block(b))
        .and_then(|(n, (b, _))| Some((n as u64, certs_of_block(b).ok()?)))
        .unwrap_or_default()
}

/// The Raft voters a node's disk holds (as `RaftWal::conf_state` reads them).
fn persisted_voters(disk: &Disk) -> Vec<u64> {
    let r = disk.recover();
    if r.conf_state != Default::default() {
        return r.conf_state.voters;
    }
    r.snapshot
        .map(|s| s.get_metadata().get_conf_state().voters.clone())
        .unwrap_or_default()
}

fn block_number(block: &Block) -> u64 {
    block.header.as_ref().map_or(0, |h| h.number)
}

fn envelope_with(n: u64, ty: HeaderType, data: Bytes) -> Bytes {
    let ch = ChannelHeader {
        r#type: ty as i32,
        channel_id: CHANNEL.into(),
        tx_id: format!("tx{n:08}"),
        ..Default::default()
    };
    let payload = Payload {
        header: Some(Header {
            channel_header: ch.encode_to_vec().into(),
            signature_header: Bytes::new(),
        }),
        data,
    };
    Envelope {
        payload: payload.encode_to_vec().into(),
        signature: vec![b's'; 16].into(),
    }
    .encode_to_vec()
    .into()
}

/// The state of the growth phase (see [`SimOptions::growth`]).
#[derive(Debug, Clone, Copy)]
struct Growth {
    started: u64,
    /// When a leader was first known: the leaderless time counts from there.
    led_since: Option<u64>,
    last_block_at: u64,
    last_event_at: u64,
}

/// The longest a growth phase may take before the run fails (the last node starts up to four
/// seconds after the block adding it, and must then catch up and be promoted).
const GROWTH_LIMIT: u64 = 60_000 * MS;

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".into()
    }
}

impl World {
    fn new(seed: u64, opts: SimOptions) -> World {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = opts.nodes.unwrap_or(if rng.gen_bool(0.5) { 3 } else { 5 });
        let ack_after_commit = opts.ack_after_commit.unwrap_or(rng.gen_bool(0.5));
        let growth = opts.growth.unwrap_or(rng.gen_ratio(1, 3));
        let learners = opts.learners.unwrap_or(!rng.gen_ratio(1, 5));
        let limits = BatchLimits {
            max_message_count: rng.gen_range(2..=20),
            preferred_max_bytes: rng.gen_range(1..=8) * 1024,
            timeout_ns: rng.gen_range(50..=500) * MS,
        };
        let options = Options {
            election_tick: ELECTION_TICK,
            heartbeat_tick: 1,
            max_inflight_blocks: rng.gen_range(1..=5),
            // Small, so that snapshots (and catch-up from them) happen often.
            snapshot_interval_size: rng.gen_range(1..=16) * 1024,
            max_size_per_msg: u64::from(limits.preferred_max_bytes),
            election_timeout: None,
            adaptive_cutting: rng.gen_bool(0.5),
            learner_first: learners,
        };
        let net = NetParams {
            drop: rng.gen_range(0.0..0.08),
            dup: rng.gen_range(0.0..0.03),
            max_delay: rng.gen_range(1..=40) * MS,
            slow: rng.gen_range(0.0..0.01),
        };
        // Distinct fixed election timeouts keep raft-rs's own randomness out of the run.
        let mut offsets: Vec<usize> = (0..n).map(|i| 3 * i).collect();
        offsets.shuffle(&mut rng);
        // A growth phase starts from one consenter; the other nodes are not members yet (they
        // start once a config block adds them, as a removed node added back does).
        let initial = if growth { 1 } else { n };
        let certs: Vec<Bytes> = (0..initial).map(|i| cert(i, 0)).collect();
        let genesis = new_block(0, &[], vec![config_envelope(u64::MAX, 0, &certs)]);
        let genesis_md = BlockMetadata {
            consenter_ids: (1..=initial as u64).collect(),
            next_consenter_id: initial as u64 + 1,
            raft_index: 0,
        };
        let nodes = (0..n)
            .map(|i| Node {
                id: if i < initial { i as u64 + 1 } else { 0 },
                core: None,
                evicted: i >= initial,
                joining: None,
                leaderless: 0,
                inc: 0,
                disk: Disk::default(),
                ledger: vec![(genesis.clone(), genesis_md.clone())],
                ledger_synced: 1,
                election: ELECTION_TICK + offsets[i],
                waiting: BTreeSet::new(),
                timer_at: None,
                catch_up: None,
            })
            .collect();
        let written = vec![genesis.header.as_ref().map(header_hash).unwrap_or_default()];
        // With a growth phase the faults start when it ends, and the run's end moves with them.
        let end = if growth {
            u64::MAX
        } else {
            (opts.chaos_ms + opts.heal_ms) * MS
        };
        World {
            report: Report {
                seed,
                nodes: n,
                ack_after_commit,
                learners,
                growth,
                ..Default::default()
            },
            cold_reads: Default::default(),
            opts,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            net,
            partition: None,
            chaos: true,
            ack_after_commit,
            limits,
            options,
            written,
            acked: BTreeSet::new(),
            next_env: 0,
            generations: vec![1; n],
            heal_env: None,
            growing: growth.then_some(Growth {
                started: 0,
                led_since: None,
                last_block_at: 0,
                last_event_at: 0,
            }),
            leader_known: false,
            end,
        }
    }

    fn trace(&self, what: impl FnOnce() -> String) {
        if self.opts.trace {
            eprintln!("[{:>6} ms] {}", self.now / MS, what());
        }
    }

    fn at(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Queued {
            at,
            seq: self.seq,
            ev,
        });
    }

    fn run(&mut self) -> Result<(), String> {
        for i in 0..self.nodes.len() {
            self.start(i)?;
        }
        self.at(0, Ev::Client);
        if self.growing.is_some() {
            let first = self.rng.gen_range(300..1500) * MS;
            self.at(first, Ev::Grow);
        } else {
            self.schedule_chaos();
        }
        while let Some(q) = self.queue.pop() {
            if q.at > self.end {
                break;
            }
            self.now = q.at;
            self.report.events += 1;
            self.account_growth();
            self.handle(q.ev)?;
            self.check_leaders()?;
        }
        self.now = self.end;
        self.final_check()
    }

    /// The faults, from now on, and the end of the run after them.
    fn schedule_chaos(&mut self) {
        let first_chaos = self.now + self.rng.gen_range(200..2000) * MS;
        self.at(first_chaos, Ev::Chaos);
        self.at(self.now + self.opts.chaos_ms * MS, Ev::EndChaos);
        self.end = self.now + (self.opts.chaos_ms + self.opts.heal_ms) * MS;
    }

    /// Counts the time since the last event as leaderless if no node led after it.
    fn account_growth(&mut self) {
        let leader_known = self.leader_known;
        if let Some(g) = self.growing.as_mut() {
            if g.led_since.is_some() && !leader_known {
                self.report.growth_leaderless_ms += (self.now - g.last_event_at) / MS;
            }
            g.last_event_at = self.now;
        }
    }

    /// The growth phase's operator: adds the next node as a consenter through the leader
    /// (sometimes at once, sometimes once the previous one is a voter), until every node is a
    /// voter; then the faults begin.
    fn grow(&mut self) -> Result<(), String> {
        let Some(g) = self.growing else {
            return Ok(());
        };
        if self.now > g.started + GROWTH_LIMIT {
            return Err(format!(
                "the growth phase did not end within {} s ({})",
                GROWTH_LIMIT / 1000 / MS,
                self.statuses()
            ));
        }
        let next = self.now + self.rng.gen_range(200..1500) * MS;
        let leader = (0..self.nodes.len()).find(|&i| {
            self.nodes[i]
                .core
                .as_ref()
                .is_some_and(|c| c.status().is_leader)
        });
        let Some(l) = leader else {
            self.at(next, Ev::Grow);
            return Ok(());
        };
        let (base, mut certs) = last_config(&self.nodes[l].ledger);
        let (voters, learners, accepting) = {
            let c = self.nodes[l].core.as_ref().ok_or("no core")?;
            (c.voters(), c.learners(), c.accepting())
        };
        let n = self.nodes.len();
        if certs.len() == n && voters.len() == n && learners.is_empty() {
            self.report.growth_ms = (self.now - g.started) / MS;
            self.growing = None;
            // Nothing failed during the growth phase, so with learners the old voters' quorum
            // was always there: never a moment without a leader, and blocks kept coming.
            let gap_bound = 2 * self.limits.timeout_ns / MS + 1000;
            if self.report.learners && self.report.growth_leaderless_ms > 0 {
                return Err(format!(
                    "growing the channel with learners left it {} ms without a leader",
                    self.report.growth_leaderless_ms
                ));
            }
            if self.report.learners && self.report.growth_max_block_gap_ms > gap_bound {
                return Err(format!(
                    "growing the channel with learners stopped ordering for {} ms (bound {gap_bound} ms)",
                    self.report.growth_max_block_gap_ms
                ));
            }
            self.trace(|| "growth phase over: every node is a voter".into());
            self.schedule_chaos();
            return Ok(());
        }
        let wait_for_promotion = self.rng.gen_bool(0.5) && !learners.is_empty();
        if certs.len() < n && accepting && !wait_for_promotion {
            let s = (0..n)
                .find(|s| !certs.iter().any(|c| slot_of(c) == Some(*s)))
                .ok_or("no node left to add")?;
            certs.push(cert(s, self.generations[s]));
            self.generations[s] += 1;
            let env = config_envelope(self.next_env, base, &certs);
            self.next_env += 1;
            self.trace(|| format!("growth: adding node {} through the leader", s + 1));
            self.order(l, env, true)?;
        }
        self.at(next, Ev::Grow);
        Ok(())
    }

    fn handle(&mut self, ev: Ev) -> Result<(), String> {
        match ev {
            Ev::Tick { node, inc } => {
                if self.nodes[node].inc != inc || self.nodes[node].core.is_none() {
                    return Ok(());
                }
                if self.opts.bug == Some(Bug::SyncOnTickOnly) {
                    self.nodes[node].disk.sync().map_err(|e| e.to_string())?;
                }
                self.with_core(node, |c, _| c.tick())?;
                self.at(self.now + TICK, Ev::Tick { node, inc });
                let leaderless = self.nodes[node]
                    .core
                    .as_ref()
                    .is_some_and(|c| c.status().leader == 0);
                let n = &mut self.nodes[node];
                n.leaderless = if leaderless { n.leaderless + 1 } else { 0 };
                if n.leaderless >= SUSPICION_TICKS {
                    n.leaderless = 0;
                    self.suspect(node)?;
                }
            }
            Ev::Join { node, inc } => {
                if self.nodes[node].inc == inc {
                    self.join(node)?;
                }
            }
            Ev::Timer { node, inc } => {
                if self.nodes[node].inc != inc {
                    return Ok(());
                }
                self.nodes[node].timer_at = None;
                self.with_core(node, |c, now| c.on_time(now))?;
            }
            Ev::CatchUp { node, inc } => {
                if self.nodes[node].inc == inc {
                    self.catch_up(node)?;
                }
            }
            Ev::Deliver { from, to, msg } => {
                if !self.reachable(from, to) || self.nodes[to].core.is_none() {
                    return Ok(());
                }
                self.report.messages += 1;
                match msg {
                    // Addressed to the Raft ID the node had before it was removed and added
                    // back: the real cluster service drops it too (and suspects an eviction).
                    Net::Raft(m) if m.to != self.nodes[to].id => {}
                    Net::Raft(m) => self.with_core(to, |c, _| c.step(m))?,
                    Net::Submit { env, config } => self.order(to, env, config)?,
                }
            }
            Ev::Client => self.client()?,
            Ev::Grow => self.grow()?,
            Ev::Chaos => self.chaos()?,
            Ev::Restart { node } => {
                if self.nodes[node].core.is_none() {
                    self.start(node)?;
                }
            }
            Ev::Heal => {
                if self.partition.take().is_some() {
                    self.trace(|| "partition healed".into());
                }
            }
            Ev::EndChaos => {
                self.chaos = false;
                self.partition = None;
                self.net.drop = 0.0;
                self.net.dup = 0.0;
                self.net.slow = 0.0;
                self.heal_env = Some(self.next_env);
                self.trace(|| "end of chaos: network healed, every node restarted".into());
                for i in 0..self.nodes.len() {
                    if self.nodes[i].core.is_none() {
                        self.start(i)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        self.partition.as_ref().is_none_or(|p| p[a] == p[b])
    }

    /// Starts (or restarts) a node from its disk and ledger, as the registrar and
    /// `Channel::start` do: a node its last config does not list stays out (a follower); the
    /// Raft ID is the one the last block's metadata gives it, and a WAL made under another ID is
    /// wiped.
    fn start(&mut self, i: usize) -> Result<(), String> {
        if self.nodes[i].evicted {
            return Ok(());
        }
        if self.nodes[i].joining.is_some() {
            let inc = self.nodes[i].inc;
            self.at(self.now + MS, Ev::Join { node: i, inc });
            return Ok(());
        }
        let node = &mut self.nodes[i];
        let (tip, md) = node.ledger.last().cloned().ok_or("empty ledger")?;
        let header = tip.header.as_ref().ok_or("block without header")?;
        let (_, certs) = last_config(&node.ledger);
        let id = match certs.iter().position(|c| slot_of(c) == Some(i)) {
            Some(pos) => *md
                .consenter_ids
                .get(pos)
                .ok_or("the consenter IDs do not match the consenters")?,
            // As the registrar: a node its last config removed goes on under its Raft ID only
            // while the other voter needs it to apply the removal.
            None if needed_for_quorum(&persisted_voters(&node.disk), node.id) => node.id,
            None => {
                node.evicted = true;
                self.trace(|| format!("node {} is not in its last config: it stays out", i + 1));
                return Ok(());
            }
        };
        if id != node.id {
            node.id = id;
            node.ledger_synced = node.ledger.len();
            node.disk = Disk::default();
        }
        let start = if !node.disk.is_fresh() {
            Start::Restart(Box::new(node.disk.recover()))
        } else if node.ledger.len() == 1 {
            Start::Fresh
        } else {
            Start::Join
        };
        let mut options = self.options.clone();
        options.election_timeout = Some((node.election, node.election + 1));
        let params = ChainParams {
            channel: CHANNEL.into(),
            id: node.id,
            options,
            limits: self.limits,
            last_block: LastBlock {
                number: header.number,
                header_hash: header_hash(header),
                metadata: md,
            },
            consenters: certs,
            consenters_of: std::sync::Arc::new(certs_of_block),
            start,
        };
        let mut core = catch_unwind(AssertUnwindSafe(|| ChainCore::new(params)))
            .map_err(|p| format!("node {} panicked starting: {}", i + 1, panic_text(p)))?
            .map_err(|e| format!("node {} failed to start: {e}", i + 1))?;
        // As the real driver: applied entries' data leave memory and are read back from disk.
        core.set_cold_entries(node.disk.entries_reader(self.cold_reads.clone()));
        node.core = Some(core);
        node.leaderless = 0;
        let inc = node.inc;
        let id = node.id;
        self.trace(|| format!("node {} started as Raft node {id}", i + 1));
        let first = self.rng.gen_range(0..TICK);
        self.at(self.now + first, Ev::Tick { node: i, inc });
        self.drain(i)
    }

    /// Runs `f` on node `i`'s core (if it is up), then carries out what it asked for.
    fn with_core(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut ChainCore, u64) -> Result<(), CoreError>,
    ) -> Result<(), String> {
        let now = self.now;
        let Some(core) = self.nodes[i].core.as_mut() else {
            return Ok(());
        };
        match catch_unwind(AssertUnwindSafe(|| f(core, now))) {
            Err(p) => return Err(format!("node {} panicked: {}", i + 1, panic_text(p))),
            Ok(Err(e)) => return Err(format!("node {} halted: {e}", i + 1)),
            Ok(Ok(())) => {}
        }
        self.drain(i)
    }

    /// Carries out node `i`'s actions in order, as the real driver does.
    fn drain(&mut self, i: usize) -> Result<(), String> {
        let mut evicted = false;
        loop {
            let Some(core) = self.nodes[i].core.as_mut() else {
                return Ok(());
            };
            let actions = core.take_actions();
            if actions.is_empty() {
                break;
            }
            for a in actions {
                match a {
                    Action::Persist(p) => {
                        let node = &mut self.nodes[i];
                        if p.snapshot.is_some()
                            && self.opts.bug != Some(Bug::CompactBeforeLedgerSync)
                        {
                            node.ledger_synced = node.ledger.len();
                        }
                        node.disk.persist(p)
                    }
                    Action::Send(msgs) => {
                        self.sync(i)?;
                        for m in msgs {
                            if let Some(to) = self.slot_of_id(m.to) {
                                self.send(i, to, Net::Raft(m));
                            }
                        }
                    }
                    Action::WriteBlock {
                        block,
                        metadata,
                        config,
                    } => {
                        self.sync(i)?;
                        self.append(i, block.clone(), metadata.clone(), "committed", config)?;
                        if config && let Some(core) = self.nodes[i].core.as_mut() {
                            core.config_applied(self.limits, self.options.snapshot_interval_size);
                        }
                        // Only the newest block counts (a lagging node applying an old config
                        // block changes nobody's membership).
                        if config && self.written.len() as u64 == block_number(&block) + 1 {
                            self.added_back(&block, &metadata)?;
                        }
                    }
                    Action::Snapshot {
                        snapshot,
                        compact_to,
                    } => {
                        self.report.snapshots_taken += 1;
                        let node = &mut self.nodes[i];
                        if self.opts.bug != Some(Bug::CompactBeforeLedgerSync) {
                            node.ledger_synced = node.ledger.len();
                        }
                        node.disk.save_snapshot(snapshot, compact_to);
                    }
                    Action::CatchUp { block } => {
                        let target = block.header.map_or(0, |h| h.number);
                        self.trace(|| format!("node {} must catch up to block {target}", i + 1));
                        self.nodes[i].catch_up = Some(target);
                        let inc = self.nodes[i].inc;
                        let at = self.now + self.rng.gen_range(1..50) * MS;
                        self.at(at, Ev::CatchUp { node: i, inc });
                    }
                    Action::BatchCut { .. } => {}
                    Action::Evicted => evicted = true,
                }
            }
            if evicted {
                break;
            }
        }
        if evicted {
            self.evict(i, "it reported its removal")?;
            return Ok(());
        }
        self.arm_timer(i);
        Ok(())
    }

    /// The node running (or down) under Raft ID `id`.
    fn slot_of_id(&self, id: u64) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.id == id && !n.evicted && n.joining.is_none())
    }

    /// Node `i` stops being a consenter: its chain stops, its ledger stays (the real node
    /// follows the channel from then on). Checked against the truth: the config its ledger ends
    /// with must not list it under its ID.
    fn evict(&mut self, i: usize, why: &str) -> Result<(), String> {
        let node = &mut self.nodes[i];
        let (number, certs) = last_config(&node.ledger);
        let md = &node.ledger[number as usize].1;
        let listed = certs
            .iter()
            .zip(&md.consenter_ids)
            .any(|(c, id)| slot_of(c) == Some(i) && *id == node.id);
        if listed {
            return Err(format!(
                "node {} (Raft node {}) stopped as evicted, but its last config (block {number}) lists it",
                i + 1,
                node.id
            ));
        }
        node.core = None;
        node.evicted = true;
        node.inc += 1;
        node.waiting.clear();
        node.timer_at = None;
        node.catch_up = None;
        self.report.evictions += 1;
        self.trace(|| format!("node {} evicted: {why}", i + 1));
        Ok(())
    }

    /// A config block was written: a node it lists under a Raft ID other than the node's own
    /// was added back. Like the real node (a follower that finds itself in a config block), it
    /// stops whatever it was, pulls blocks up to that block and starts under the new ID with an
    /// empty WAL.
    fn added_back(&mut self, block: &Block, md: &BlockMetadata) -> Result<(), String> {
        let number = block.header.as_ref().map_or(0, |h| h.number);
        let certs = certs_of_block(block)?;
        for (c, &id) in certs.iter().zip(&md.consenter_ids) {
            let Some(s) = slot_of(c).filter(|&s| s < self.nodes.len()) else {
                return Err(format!("config block {number} lists an unknown node"));
            };
            let node = &mut self.nodes[s];
            // IDs only grow: a smaller one is from an older config block.
            if node.id >= id || node.joining.is_some() {
                continue;
            }
            let old = node.id;
            node.core = None;
            node.inc += 1;
            node.waiting.clear();
            node.timer_at = None;
            node.catch_up = None;
            node.evicted = false;
            node.id = id;
            node.joining = Some(number);
            node.ledger_synced = node.ledger.len();
            node.disk = Disk::default();
            self.report.rejoins += 1;
            self.trace(|| {
                format!(
                    "node {} (was Raft node {old}) added back as Raft node {id} by block {number}",
                    s + 1
                )
            });
            let inc = self.nodes[s].inc;
            // During growth a new node may start seconds after the block that adds it (a slow
            // host or pod): the quorum must not wait for it.
            let delay = if self.growing.is_some() {
                self.rng.gen_range(1..4000)
            } else {
                self.rng.gen_range(1..50)
            };
            self.at(self.now + delay * MS, Ev::Join { node: s, inc });
        }
        Ok(())
    }

    /// A node added back pulls the blocks it lacks up to the one that adds it (checked as the
    /// real puller does), then starts as a consenter; else it retries later.
    fn join(&mut self, i: usize) -> Result<(), String> {
        let Some(target) = self.nodes[i].joining else {
            return Ok(());
        };
        self.pull(i, target)?;
        if self.nodes[i].ledger.len() as u64 > target {
            self.nodes[i].joining = None;
            return self.start(i);
        }
        let inc = self.nodes[i].inc;
        self.at(self.now + 200 * MS, Ev::Join { node: i, inc });
        Ok(())
    }

    /// The other nodes that node `i` can reach and pull from: those that run a chain, and those
    /// evicted (the real node follows the channel and serves its ledger over Deliver; a leader
    /// that committed its own removal and crashed may be the only holder of that block).
    fn live_peers(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(move |&p| {
            p != i
                && (self.nodes[p].core.is_some() || self.nodes[p].evicted)
                && self.reachable(i, p)
        })
    }

    /// Pulls blocks into node `i`'s ledger up to block `target` from reachable running peers.
    fn pull(&mut self, i: usize, target: u64) -> Result<(), String> {
        let mut peers: Vec<usize> = self.live_peers(i).collect();
        peers.shuffle(&mut self.rng);
        for p in peers {
            loop {
                let have = self.nodes[i].ledger.len();
                if have as u64 > target {
                    break;
                }
                let Some((block, md)) = self.nodes[p].ledger.get(have).cloned() else {
                    break;
                };
                self.append(i, block, md, "pulled", true)?;
            }
        }
        Ok(())
    }

    /// A node long without a leader asks a peer for its last config block, as the real
    /// driver does after `EvictionSuspicion`: if it no longer lists the node under its ID, the
    /// node pulls the blocks up to it and stops (or is added back under its new ID).
    fn suspect(&mut self, i: usize) -> Result<(), String> {
        let me = self.nodes[i].id;
        let Some(p) = self
            .live_peers(i)
            .max_by_key(|&p| self.nodes[p].ledger.len())
        else {
            return Ok(());
        };
        let (number, certs) = last_config(&self.nodes[p].ledger);
        if number < last_config(&self.nodes[i].ledger).0 {
            // The peer is behind this node: its config says nothing about this node's.
            return Ok(());
        }
        let md = &self.nodes[p].ledger[number as usize].1;
        let standing = certs
            .iter()
            .zip(&md.consenter_ids)
            .find(|(c, _)| slot_of(c) == Some(i))
            .map(|(_, id)| *id);
        match standing {
            Some(id) if id == me => Ok(()),
            // Added back meanwhile: the block adding it starts the join.
            Some(_) => {
                let (block, md) = self.nodes[p].ledger[number as usize].clone();
                self.added_back(&block, &md)
            }
            None => {
                // A config block is not enough: its conf change may not be committed yet, and
                // the other voters may still need this node to elect the leader that commits
                // it. A block after it (ordering waits for the conf change), or a peer whose Raft
                // group no longer has this node (the real transport then refuses it), shows that
                // the removal is in force.
                let later_block = self.nodes[p].ledger.len() as u64 > number + 1;
                let refused = self.nodes[p]
                    .core
                    .as_ref()
                    .is_some_and(|c| !c.members().contains(&me));
                if !later_block && !refused {
                    return Ok(());
                }
                self.trace(|| {
                    format!(
                        "node {} suspects its eviction: block {number} does not list it",
                        i + 1
                    )
                });
                self.pull(i, number)?;
                if (self.nodes[i].ledger.len() as u64) > number {
                    self.evict(i, "the others' last config does not list it")?;
                }
                Ok(())
            }
        }
    }

    fn sync(&mut self, i: usize) -> Result<(), String> {
        if self.opts.bug == Some(Bug::SyncOnTickOnly) {
            return Ok(());
        }
        self.nodes[i]
            .disk
            .sync()
            .map_err(|e| format!("node {}: {e}", i + 1))
    }

    /// Schedules the batch timer if the core's deadline moved.
    fn arm_timer(&mut self, i: usize) {
        let node = &self.nodes[i];
        let Some(deadline) = node.core.as_ref().and_then(|c| c.deadline()) else {
            return;
        };
        if node.timer_at == Some(deadline) {
            return;
        }
        let inc = node.inc;
        self.nodes[i].timer_at = Some(deadline);
        self.at(deadline.max(self.now), Ev::Timer { node: i, inc });
    }

    fn send(&mut self, from: usize, to: usize, msg: Net) {
        if !self.reachable(from, to) || self.rng.gen_bool(self.net.drop) {
            return;
        }
        let dup = matches!(msg, Net::Raft(_)) && self.rng.gen_bool(self.net.dup);
        let mut delay = || {
            let d = self.rng.gen_range(MS / 10..=self.net.max_delay);
            if self.rng.gen_bool(self.net.slow) {
                d + self.rng.gen_range(100..=1500) * MS
            } else {
                d
            }
        };
        let first = delay();
        let second = delay();
        if dup && let Net::Raft(m) = &msg {
            let copy = Net::Raft(m.clone());
            self.at(
                self.now + second,
                Ev::Deliver {
                    from,
                    to,
                    msg: copy,
                },
            );
        }
        self.at(self.now + first, Ev::Deliver { from, to, msg });
    }

    /// Appends a block to node `i`'s ledger with the checks the real block writer and puller
    /// make, and the global no-fork check; `synced` as the real driver syncs it.
    fn append(
        &mut self,
        i: usize,
        block: Block,
        md: BlockMetadata,
        how: &str,
        synced: bool,
    ) -> Result<(), String> {
        let node = &mut self.nodes[i];
        let prev = node
            .ledger
            .last()
            .and_then(|(b, _)| b.header.clone())
            .ok_or("empty ledger")?;
        verify_link(&prev, &block)
            .and_then(|()| verify_data_hash(&block))
            .map_err(|e| {
                format!(
                    "node {} would write a block that breaks its chain: {e}",
                    i + 1
                )
            })?;
        let header = block.header.as_ref().ok_or("block without header")?;
        let number = header.number as usize;
        let hash = header_hash(header);
        match self.written.get(number) {
            Some(h) if *h != hash => {
                return Err(format!(
                    "fork: node {} wrote block {number} ({}) but another node holds a different block {number} ({})",
                    i + 1,
                    hex(&hash),
                    hex(h)
                ));
            }
            Some(_) => {}
            None => {
                self.written.push(hash);
                self.report.blocks = number as u64;
                if let Some(g) = self.growing.as_mut()
                    && g.led_since.is_some()
                {
                    let gap = (self.now - g.last_block_at) / MS;
                    self.report.growth_max_block_gap_ms =
                        self.report.growth_max_block_gap_ms.max(gap);
                    g.last_block_at = self.now;
                }
            }
        }
        let data = block
            .data
            .as_ref()
            .map(|d| d.data.clone())
            .unwrap_or_default();
        for env in &data {
            if node.waiting.remove(env) {
                self.acked.insert(env.clone());
            }
        }
        if self.opts.trace && is_config_block(&block) {
            let certs: Vec<String> = certs_of_block(&block)
                .unwrap_or_default()
                .iter()
                .map(|c| {
                    let generation = c.get(8..16).and_then(|g| g.try_into().ok());
                    format!(
                        "{}/{}",
                        slot_of(c).map_or(0, |s| s + 1),
                        generation.map_or(0, u64::from_be_bytes)
                    )
                })
                .collect();
            eprintln!(
                "[{:>6} ms] node {} config block {number}: nodes/generations {certs:?}, Raft IDs {:?}, next {}",
                self.now / MS,
                i + 1,
                md.consenter_ids,
                md.next_consenter_id
            );
        }
        node.ledger.push((block, md));
        if synced {
            node.ledger_synced = node.ledger.len();
        }
        if self.opts.trace {
            eprintln!(
                "[{:>6} ms] node {} {how} block {number} ({} envelopes)",
                self.now / MS,
                i + 1,
                data.len()
            );
        }
        Ok(())
    }

    /// The block puller: node `i` pulls the blocks it lacks from a reachable live peer,
    /// verifying each, until it reaches the snapshot's block; else it retries later.
    fn catch_up(&mut self, i: usize) -> Result<(), String> {
        let Some(target) = self.nodes[i].catch_up else {
            return Ok(());
        };
        if self.nodes[i].core.is_none() {
            return Ok(());
        }
        self.pull(i, target)?;
        let (tip, md) = self.nodes[i].ledger.last().cloned().ok_or("empty ledger")?;
        let header = tip.header.as_ref().ok_or("block without header")?;
        if header.number >= target {
            self.nodes[i].catch_up = None;
            self.report.catch_ups += 1;
            let (_, certs) = last_config(&self.nodes[i].ledger);
            let last = LastBlock {
                number: header.number,
                header_hash: header_hash(header),
                metadata: md,
            };
            self.with_core(i, |c, _| c.caught_up(last, certs))?;
        } else {
            let inc = self.nodes[i].inc;
            self.at(self.now + 200 * MS, Ev::CatchUp { node: i, inc });
        }
        Ok(())
    }

    /// A client sends an envelope to a random node (Broadcast).
    fn client(&mut self) -> Result<(), String> {
        if self.now + QUIET < self.end {
            let next = self.now + self.rng.gen_range(2..40) * MS;
            self.at(next, Ev::Client);
        }
        let i = self.rng.gen_range(0..self.nodes.len());
        let n = self.next_env;
        self.next_env += 1;
        let config = self.rng.gen_ratio(1, 50);
        let env = if config {
            self.config_update(n, i)
        } else {
            envelope(n)
        };
        let Some(core) = self.nodes[i].core.as_ref() else {
            return Ok(());
        };
        let status = core.status();
        if status.is_leader {
            if !core.accepting() {
                // The real node makes the client wait; here it simply gives up.
                return Ok(());
            }
            if self.ack_after_commit {
                self.nodes[i].waiting.insert(env.clone());
            }
            self.order(i, env, config)
        } else if status.leader != 0 {
            if self.ack_after_commit {
                self.nodes[i].waiting.insert(env.clone());
            }
            if let Some(leader) = self.slot_of_id(status.leader) {
                self.send(i, leader, Net::Submit { env, config });
            }
            Ok(())
        } else {
            // SERVICE_UNAVAILABLE: no Raft leader.
            Ok(())
        }
    }

    /// A config update made on node `i`'s last config, as an operator's tools make it: the
    /// same consenters (another setting changed), or one consenter added back, removed or given
    /// a new certificate (rotation) — one change at a time, as Fabric allows.
    fn config_update(&mut self, n: u64, i: usize) -> Bytes {
        let (base, mut certs) = last_config(&self.nodes[i].ledger);
        let roll = self.rng.gen_range(0..100);
        let missing: Vec<usize> = (0..self.nodes.len())
            .filter(|s| !certs.iter().any(|c| slot_of(c) == Some(*s)))
            .collect();
        let fewest = self.nodes.len().saturating_sub(2).max(2);
        if roll < 40 || certs.is_empty() || self.growing.is_some() {
            // Not a membership change.
        } else if !missing.is_empty() && roll < 75 {
            let s = missing[self.rng.gen_range(0..missing.len())];
            certs.push(cert(s, self.generations[s]));
            self.generations[s] += 1;
        } else if certs.len() > fewest && roll < 88 {
            let k = self.rng.gen_range(0..certs.len());
            certs.remove(k);
        } else {
            let k = self.rng.gen_range(0..certs.len());
            if let Some(s) = slot_of(&certs[k]).filter(|&s| s < self.nodes.len()) {
                certs[k] = cert(s, self.generations[s]);
                self.generations[s] += 1;
            }
        }
        config_envelope(n, base, &certs)
    }

    /// The leader orders an envelope, as the driver's `submit` does.
    fn order(&mut self, i: usize, env: Bytes, config: bool) -> Result<(), String> {
        let Some(core) = self.nodes[i].core.as_ref() else {
            return Ok(());
        };
        if !core.accepting() {
            // A forward that reached a node that is not (or no longer) an accepting leader is
            // dropped, as in Fabric.
            return Ok(());
        }
        // The real leader validates a config update against the config in force; one made from
        // an older config is refused (re-applied, it could change two consenters at once).
        if config
            && parse_config(&env).map(|(base, _)| base)
                != Some(last_config(&self.nodes[i].ledger).0)
        {
            return Ok(());
        }
        let proposal = if config {
            Proposal::Config(env)
        } else {
            let size = env.len() as u32;
            Proposal::Normal(Pending {
                envelope: env,
                size,
            })
        };
        self.with_core(i, |c, now| {
            c.submit(proposal, now).map_err(|e| match e {
                ordo_raft::chain::SubmitError::Halted(e) => e,
                other => CoreError::Log(format!("submit refused after accepting(): {other}")),
            })
        })
    }

    fn chaos(&mut self) -> Result<(), String> {
        if !self.chaos {
            return Ok(());
        }
        let next = self.now + self.rng.gen_range(100..1500) * MS;
        self.at(next, Ev::Chaos);
        let roll = self.rng.gen_range(0..100);
        if roll < 40 {
            let up: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| self.nodes[i].core.is_some())
                .collect();
            // Prefer the leader now and then: its death is the interesting case.
            let leader = up.iter().copied().find(|&i| {
                self.nodes[i]
                    .core
                    .as_ref()
                    .is_some_and(|c| c.status().is_leader)
            });
            let victim = match leader {
                Some(l) if self.rng.gen_bool(0.5) => Some(l),
                _ => up.choose(&mut self.rng).copied(),
            };
            if let Some(v) = victim {
                self.crash(v)?;
            }
        } else if roll < 65 && self.partition.is_none() {
            let groups: Vec<u8> = (0..self.nodes.len())
                .map(|_| self.rng.gen_range(0..2))
                .collect();
            self.trace(|| format!("partition {groups:?}"));
            self.partition = Some(groups);
            self.report.partitions += 1;
            let heal = self.now + self.rng.gen_range(300..5000) * MS;
            self.at(heal, Ev::Heal);
        } else if roll < 75 {
            self.net.max_delay = self.rng.gen_range(1..=60) * MS;
        }
        Ok(())
    }

    fn crash(&mut self, i: usize) -> Result<(), String> {
        let node = &mut self.nodes[i];
        let lost = node
            .disk
            .crash(&mut self.rng)
            .map_err(|e| format!("node {} after a crash: {e}", i + 1))?;
        // Unsynced blocks: a random prefix reached the disk (the real store cuts everything
        // after the first record a machine crash tore).
        let kept = self.rng.gen_range(node.ledger_synced..=node.ledger.len());
        self.report.lost_blocks += (node.ledger.len() - kept) as u64;
        node.ledger.truncate(kept);
        node.ledger_synced = kept;
        node.core = None;
        node.inc += 1;
        node.waiting.clear();
        node.timer_at = None;
        node.catch_up = None;
        self.report.crashes += 1;
        self.report.lost_writes += lost as u64;
        self.trace(|| format!("node {} crashed, {lost} unsynced writes lost", i + 1));
        let back = self.now + self.rng.gen_range(200..6000) * MS;
        self.at(back, Ev::Restart { node: i });
        Ok(())
    }

    /// At most one leader per term.
    fn check_leaders(&mut self) -> Result<(), String> {
        let mut leaders: BTreeMap<u64, u64> = BTreeMap::new();
        self.leader_known = self
            .nodes
            .iter()
            .any(|n| n.core.as_ref().is_some_and(|c| c.status().is_leader));
        if self.leader_known
            && let Some(g) = self.growing.as_mut()
            && g.led_since.is_none()
        {
            g.led_since = Some(self.now);
            g.last_block_at = self.now;
        }
        for n in &self.nodes {
            let Some(c) = n.core.as_ref() else { continue };
            let s = c.status();
            if s.is_leader
                && let Some(other) = leaders.insert(s.term, s.id)
            {
                return Err(format!(
                    "two leaders in term {}: nodes {other} and {}",
                    s.term, s.id
                ));
            }
        }
        Ok(())
    }

    /// Each node's Raft standing, for failure messages.
    fn statuses(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| match n.core.as_ref() {
                Some(c) => format!(
                    "node {} id {} term {} leader {} voters {:?} learners {:?}{}",
                    i + 1,
                    c.status().id,
                    c.status().term,
                    c.status().leader,
                    c.voters(),
                    c.learners(),
                    if n.catch_up.is_some() {
                        " catching up"
                    } else {
                        ""
                    }
                ),
                None if n.evicted => format!("node {} evicted", i + 1),
                None => format!("node {} down (id {}, joining {:?})", i + 1, n.id, n.joining),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn final_check(&mut self) -> Result<(), String> {
        let heights: Vec<usize> = self.nodes.iter().map(|n| n.ledger.len()).collect();
        let written = self.written.len();
        let longest = (0..self.nodes.len())
            .max_by_key(|&i| self.nodes[i].ledger.len())
            .ok_or("no node")?;
        // The consenters of the last config hold every block and run as consenters; the nodes
        // it removed hold a prefix (the no-fork check saw every block they wrote).
        let (number, certs) = last_config(&self.nodes[longest].ledger);
        let ids = &self.nodes[longest].ledger[number as usize].1.consenter_ids;
        for (c, id) in certs.iter().zip(ids) {
            let i = slot_of(c)
                .filter(|&s| s < self.nodes.len())
                .ok_or("unknown consenter")?;
            let n = &self.nodes[i];
            if n.ledger.len() < written {
                return Err(format!(
                    "after the heal node {} has {} blocks but {written} were written (heights {heights:?}; {}): not converged or a committed block was lost",
                    i + 1,
                    n.ledger.len(),
                    self.statuses()
                ));
            }
            let running = n.core.as_ref().map(|c| c.status().id);
            if running != Some(*id) {
                return Err(format!(
                    "after the heal node {} is not running as Raft node {id}, the ID the last config gives it (running: {running:?})",
                    i + 1
                ));
            }
        }
        // Every learner caught up after the heal and was promoted: the leader has none left.
        let leader = self
            .nodes
            .iter()
            .filter_map(|n| n.core.as_ref())
            .filter(|c| c.status().is_leader)
            .max_by_key(|c| c.status().term);
        if let Some(l) = leader
            && !l.learners().is_empty()
        {
            return Err(format!(
                "after the heal the leader (Raft node {}) still has learners {:?} ({})",
                l.status().id,
                l.learners(),
                self.statuses()
            ));
        }
        let ledger = &self.nodes[longest].ledger;
        self.report.membership_changes = ledger
            .iter()
            .filter(|(b, _)| is_config_block(b))
            .filter_map(|(b, _)| certs_of_block(b).ok())
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] != w[1])
            .count() as u64;
        let mut ordered = BTreeSet::new();
        for (b, _) in ledger.iter().skip(1) {
            for env in b.data.iter().flat_map(|d| d.data.iter()) {
                ordered.insert(env.clone());
            }
        }
        self.report.envelopes_ordered = ordered.len() as u64;
        self.report.acknowledged = self.acked.len() as u64;
        if let Some(lost) = self.acked.iter().find(|e| !ordered.contains(*e)) {
            return Err(format!(
                "an envelope acknowledged after commit is not in the ledger ({} bytes)",
                lost.len()
            ));
        }
        let heal_env = self.heal_env.unwrap_or(u64::MAX);
        let progressed = (heal_env..self.next_env).any(|n| ordered.contains(&envelope(n)));
        if !progressed {
            return Err(format!(
                "no envelope submitted after the heal was ordered (heights {heights:?})"
            ));
        }
        self.report.leader_changes = self
            .nodes
            .iter()
            .filter_map(|n| n.core.as_ref())
            .map(|c| c.status().leader_changes)
            .sum();
        Ok(())
    }
}

fn hex(h: &[u8; 32]) -> String {
    h[..6].iter().map(|b| format!("{b:02x}")).collect()
}
