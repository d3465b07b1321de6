//! The simulated world: nodes, network, clients and the chaos that strikes them, as one
//! event queue ordered by (simulated time, sequence number) — so a run depends on nothing but its
//! seed.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::panic::{AssertUnwindSafe, catch_unwind};

use bytes::Bytes;
use ordo_channel::consenter::last_block_of;
use ordo_channel::follower::{FollowerEngine, JoinBlock, Next};
use ordo_channel::start::{StartPlan, WalFacts, plan, start_kind};
use ordo_channel::{
    ConfigView, ConsenterEngine, EngineError, EngineParams, InjectedBug, Submission, Suspicion,
};
use ordo_ledger::block::{header_hash, is_config_block, new_block};
use ordo_proto::common::{Block, HeaderType};
use ordo_proto::etcdraft::BlockMetadata;
use ordo_raft::blockcutter::BatchLimits;
use prost::Message as _;
use raft::eraftpb::Message;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{ELECTION_TICK, SimConfig, TICK_NS, cert, envelope_with, slot_of};
use crate::disk::Disk;
use crate::io::{Effects, PullRequest, SimFollowerIo, SimIo, envelopes};

const MS: u64 = 1_000_000;
const TICK: u64 = TICK_NS;
/// Clients stop this long before the end, so that the last blocks reach every node.
const QUIET: u64 = 4_000 * MS;
/// Ticks without a leader after which a node asks the others whether it was removed (the real
/// driver's `EvictionSuspicion`, 10 minutes by default; short here so that it happens), and the
/// fewest ticks between two such checks.
const SUSPICION_TICKS: u64 = 5 * ELECTION_TICK as u64;

/// A deliberately broken driver, to prove the simulator catches what it must.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// Raft state is fsynced only once per tick (a "group commit on a timer") while messages
    /// leave at once: votes and acknowledgements can be lost in a crash.
    SyncOnTickOnly,
    /// The engine lets the WAL drop entries at a snapshot while blocks made from them are
    /// still unsynced in the ledger (`ordo_channel::InjectedBug`): a crash can then lose
    /// committed blocks on every node.
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
    /// Stops that began with a hand-off (an operator's restart): the node stopped taking
    /// envelopes and, if it led, handed leadership over, before it went down.
    pub graceful_stops: u64,
    /// Of those, stops of a leader that had handed leadership to another node by then.
    pub handed_over: u64,
    /// The run gave one node as preferred leader (`Consensus.PreferredLeaders`)...
    pub preferred_leader: bool,
    /// ...and it led when the run ended.
    pub ended_preferred: bool,
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
            "seed {} failed at {} ms: {}\n  replay: cargo run -p ordo-sim --profile sim -- --seed {} --trace",
            self.seed, self.at_ms, self.what, self.seed
        )
    }
}

impl std::error::Error for Violation {}

enum Net {
    /// A Raft message, with the ActiveNodes its leader piggybacked.
    Raft(Message, Option<Vec<u64>>),
    /// An envelope forwarded by a follower to the leader (Cluster/Step SubmitRequest), with
    /// the config sequence the follower validated it against.
    Submit { env: Bytes, config: bool, seq: u64 },
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
    /// The answer to a node's eviction check arrives.
    Probe {
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
        msg: Box<Net>,
    },
    Client,
    /// The operator of the growth phase adds the next consenter.
    Grow,
    Chaos,
    Restart {
        node: usize,
    },
    /// A node that began a graceful stop goes down (incarnation `inc`).
    Stop {
        node: usize,
        inc: u64,
        /// It led when the stop began.
        led: bool,
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
    /// The channel engine that ships in the node, while the node runs as a consenter.
    engine: Option<ConsenterEngine<SimConfig>>,
    /// Removed from the consenters: it keeps its ledger and takes no part any more (the real
    /// node becomes a follower).
    evicted: bool,
    /// Not running a chain but following the channel with the follower engine that ships in
    /// the node: added under a new ID (until the engine says it is a consenter), or removed
    /// (up to the block that removed it).
    following: Option<Following>,
    /// Bumped at each crash, so that timers of an earlier life are ignored.
    inc: u64,
    disk: Disk,
    /// The Raft ID the WAL on `disk` was recorded under (the real WAL records it, fsynced).
    wal_owner: Option<u64>,
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

/// A node following the channel, as the registrar has it follow: with the block it must reach
/// (kept, like the registrar's join marker, to follow again after a crash).
struct Following {
    engine: FollowerEngine<SimConfig>,
    until: Block,
    /// Removed from the consenters: once the ledger reaches `until`, the node is evicted.
    evicting: bool,
}

impl Following {
    fn new(
        ledger: &[(Block, BlockMetadata)],
        until: Block,
        evicting: bool,
    ) -> Result<Following, String> {
        let join = JoinBlock::<SimConfig>::of(&until).map_err(|e| e.to_string())?;
        let config = last_config(ledger).1.ok_or("a ledger without a config")?;
        Ok(Following {
            engine: FollowerEngine::new(ledger.len() as u64, config, Some(&join)),
            until,
            evicting,
        })
    }
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
    /// Draws whether a stop is graceful; a stream of its own, so that the main stream's draws
    /// (and the seeds' scenarios) stay what they were until the first graceful stop.
    stop_rng: ChaCha8Rng,
    /// The node (slot) every node prefers as leader, in half of the runs without a growth
    /// phase.
    preferred: Option<usize>,
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
    adaptive_cutting: bool,
    learners: bool,
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

/// The consenter certificates of a config block (the real node reads them from the config's
/// etcdraft metadata).
fn certs_of_block(block: &Block) -> Result<Vec<Bytes>, String> {
    SimConfig::from_block(block)
        .map(|c| c.certs)
        .map_err(|e| e.to_string())
}

/// The number and config of the last config block of a ledger.
fn last_config(ledger: &[(Block, BlockMetadata)]) -> (u64, Option<SimConfig>) {
    ledger
        .iter()
        .enumerate()
        .rev()
        .find(|(_, (b, _))| is_config_block(b))
        .map(|(n, (b, _))| (n as u64, SimConfig::from_block(b).ok()))
        .unwrap_or_default()
}

/// The consenter certificates of the last config of a ledger.
fn last_certs(ledger: &[(Block, BlockMetadata)]) -> Vec<Bytes> {
    last_config(ledger).1.map(|c| c.certs).unwrap_or_default()
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
        // Drawn from a stream of its own, so the main stream's draws stay as they were. Not
        // with a growth phase: its check counts any moment without a leader, and a transfer to
        // the preferred leader has one (a round trip) by design.
        let preferred = {
            let mut r = ChaCha8Rng::seed_from_u64(seed ^ 0x9ef0_9ef0);
            (!growth && r.gen_ratio(1, 2)).then(|| r.gen_range(0..n))
        };
        let learners = opts.learners.unwrap_or(!rng.gen_ratio(1, 5));
        let limits = BatchLimits {
            max_message_count: rng.gen_range(2..=20),
            preferred_max_bytes: rng.gen_range(1..=8) * 1024,
            timeout_ns: rng.gen_range(50..=500) * MS,
        };
        let max_inflight_blocks = rng.gen_range(1..=5);
        // Small, so that snapshots (and catch-up from them) happen often.
        let snapshot_interval_size = rng.gen_range(1..=16) * 1024;
        let adaptive_cutting = rng.gen_bool(0.5);
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
        let genesis_config = SimConfig {
            sequence: 0,
            limits,
            max_inflight_blocks,
            snapshot_interval_size,
            certs: (0..initial).map(|i| cert(i, 0)).collect(),
        };
        let genesis = new_block(0, &[], vec![genesis_config.envelope(u64::MAX)]);
        let genesis_md = BlockMetadata {
            consenter_ids: (1..=initial as u64).collect(),
            next_consenter_id: initial as u64 + 1,
            raft_index: 0,
        };
        let nodes = (0..n)
            .map(|i| Node {
                id: if i < initial { i as u64 + 1 } else { 0 },
                engine: None,
                evicted: i >= initial,
                following: None,
                inc: 0,
                disk: Disk::default(),
                wal_owner: None,
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
                preferred_leader: preferred.is_some(),
                ..Default::default()
            },
            cold_reads: Default::default(),
            opts,
            rng,
            stop_rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5709_5709),
            preferred,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            net,
            partition: None,
            chaos: true,
            ack_after_commit,
            limits,
            adaptive_cutting,
            learners,
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
                .engine
                .as_ref()
                .map(ConsenterEngine::core)
                .is_some_and(|c| c.status().is_leader)
        });
        let Some(l) = leader else {
            self.at(next, Ev::Grow);
            return Ok(());
        };
        let base = last_config(&self.nodes[l].ledger)
            .1
            .ok_or("the leader's ledger has no config")?;
        let mut certs = base.certs.clone();
        let (voters, learners, accepting) = {
            let c = self.nodes[l]
                .engine
                .as_ref()
                .map(ConsenterEngine::core)
                .ok_or("no core")?;
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
            let env = base.next(certs).envelope(self.next_env);
            self.next_env += 1;
            self.trace(|| format!("growth: adding node {} through the leader", s + 1));
            self.order(l, env, true, None)?;
        }
        self.at(next, Ev::Grow);
        Ok(())
    }

    fn handle(&mut self, ev: Ev) -> Result<(), String> {
        match ev {
            Ev::Tick { node, inc } => {
                if self.nodes[node].inc != inc || self.nodes[node].engine.is_none() {
                    return Ok(());
                }
                if self.opts.bug == Some(Bug::SyncOnTickOnly) {
                    self.nodes[node].disk.sync().map_err(|e| e.to_string())?;
                }
                self.at(self.now + TICK, Ev::Tick { node, inc });
                self.with_engine(node, |e, io, _| e.tick(io))?;
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
                self.with_engine(node, |e, io, now| e.on_time(io, now))?;
            }
            Ev::CatchUp { node, inc } => {
                if self.nodes[node].inc == inc {
                    self.catch_up(node)?;
                }
            }
            Ev::Probe { node, inc } => {
                if self.nodes[node].inc == inc {
                    self.answer_probe(node)?;
                }
            }
            Ev::Deliver { from, to, msg } => {
                if !self.reachable(from, to) || self.nodes[to].engine.is_none() {
                    return Ok(());
                }
                self.report.messages += 1;
                match *msg {
                    // Addressed to the Raft ID the node had before it was removed and added
                    // back: the real cluster service drops it and the node suspects an eviction.
                    Net::Raft(m, _) if m.to != self.nodes[to].id => {
                        self.with_engine(to, |e, io, _| {
                            e.suspect(io, Suspicion::AddressedUnderAnotherId);
                            Ok(())
                        })?;
                    }
                    // From a node that is not (or no longer) among its members: the real
                    // cluster service refuses it as unauthorized; the sender suspects its own
                    // removal, and the receiver that its config is behind.
                    Net::Raft(m, _) if !self.accepts(to, m.from) => {
                        self.with_engine(to, |e, io, _| {
                            e.suspect(io, Suspicion::UnknownSender);
                            Ok(())
                        })?;
                        if self.nodes[from].id == m.from {
                            self.with_engine(from, |e, io, _| {
                                e.suspect(io, Suspicion::Refused);
                                Ok(())
                            })?;
                        }
                    }
                    Net::Raft(m, active) => {
                        self.with_engine(to, |e, io, _| e.step(io, m, active))?
                    }
                    Net::Submit { env, config, seq } => self.order(to, env, config, Some(seq))?,
                }
            }
            Ev::Client => self.client()?,
            Ev::Grow => self.grow()?,
            Ev::Chaos => self.chaos()?,
            Ev::Restart { node } => {
                if self.nodes[node].engine.is_none() {
                    self.start(node)?;
                }
            }
            Ev::Stop { node, inc, led } => {
                if self.nodes[node].inc == inc && self.nodes[node].engine.is_some() {
                    let status = self.nodes[node]
                        .engine
                        .as_ref()
                        .map(ConsenterEngine::status);
                    if led && status.is_some_and(|s| !s.is_leader && s.leader != 0) {
                        self.report.handed_over += 1;
                    }
                    // Down as a crash is (the worst a stop can be); after the chaos the node
                    // comes back at once, so the run can converge.
                    self.crash(node)?;
                    if !self.chaos {
                        self.start(node)?;
                    }
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
                    if self.nodes[i].engine.is_none() {
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

    /// Whether node `to` accepts Raft messages from Raft node `from` (the real cluster service
    /// accepts the members its engine gives the transport).
    fn accepts(&self, to: usize, from: u64) -> bool {
        self.nodes[to]
            .engine
            .as_ref()
            .is_some_and(|e| e.members().iter().any(|m| m.id == from))
    }

    /// Starts (or restarts) a node from its disk and ledger as the registrar does, with the
    /// same start plan (`ordo_channel::start`): a consenter under the Raft ID its last config
    /// gives it (or its old ID while the other voter still needs it), on its WAL or an empty
    /// one; otherwise it stays out (the real node follows the channel).
    fn start(&mut self, i: usize) -> Result<(), String> {
        if self.nodes[i].evicted {
            return Ok(());
        }
        if self.nodes[i].following.is_some() {
            let inc = self.nodes[i].inc;
            self.at(self.now + MS, Ev::Join { node: i, inc });
            return Ok(());
        }
        let node = &mut self.nodes[i];
        let height = node.ledger.len() as u64;
        let (tip, _) = node.ledger.last().cloned().ok_or("empty ledger")?;
        let (last_config_number, config) = last_config(&node.ledger);
        let config = config.ok_or("no config in the ledger")?;
        let last_block = last_block_of(&tip, height, &config).map_err(|e| e.to_string())?;
        let facts = WalFacts {
            fresh: node.disk.is_fresh(),
            owner: node.wal_owner,
            voters: persisted_voters(&node.disk),
        };
        let key = crate::config::self_key(i);
        let plan = plan(
            &config,
            &last_block.metadata.consenter_ids,
            Some(&key),
            &facts,
            true,
        );
        let StartPlan::Consent { id, wipe_wal } = plan else {
            node.evicted = true;
            self.trace(|| format!("node {} is not in its last config: it stays out", i + 1));
            return Ok(());
        };
        if wipe_wal {
            // The ledger is synced before a WAL is wiped.
            node.ledger_synced = node.ledger.len();
            node.disk = Disk::default();
            node.wal_owner = None;
        }
        node.id = id;
        let disk = &node.disk;
        let start = start_kind(disk.is_fresh(), height, || {
            Ok::<_, std::convert::Infallible>(disk.recover())
        })
        .map_err(|e| e.to_string())?;
        let params = EngineParams {
            channel: crate::config::CHANNEL.into(),
            id,
            config,
            last_config: last_config_number,
            last_block,
            start,
            cold_entries: Some(node.disk.entries_reader(self.cold_reads.clone())),
            adaptive_cutting: self.adaptive_cutting,
            learner_first: self.learners,
            preferred_leaders: self
                .preferred
                .map(|slot| vec![format!("sim:{slot}")])
                .unwrap_or_default(),
            election_timeout: Some((node.election, node.election + 1)),
            eviction_suspicion_ticks: SUSPICION_TICKS,
            eviction_check_interval_ticks: SUSPICION_TICKS,
            bug: (self.opts.bug == Some(Bug::CompactBeforeLedgerSync))
                .then_some(InjectedBug::CompactBeforeLedgerSync),
        };
        let mut fx = Effects::default();
        let bug = self.opts.bug;
        let node = &mut self.nodes[i];
        let mut io = SimIo {
            slot: i,
            disk: &mut node.disk,
            ledger: &mut node.ledger,
            ledger_synced: &mut node.ledger_synced,
            bug,
            fx: &mut fx,
        };
        let engine = catch_unwind(AssertUnwindSafe(|| ConsenterEngine::start(params, &mut io)))
            .map_err(|p| format!("node {} panicked starting: {}", i + 1, panic_text(p)))?
            .map_err(|e| format!("node {} failed to start: {e}", i + 1))?;
        // As the registrar: the WAL records whose it is.
        node.wal_owner = Some(id);
        node.engine = Some(engine);
        let inc = node.inc;
        self.trace(|| format!("node {} started as Raft node {id}", i + 1));
        let first = self.rng.gen_range(0..TICK);
        self.at(self.now + first, Ev::Tick { node: i, inc });
        self.apply(i, fx)
    }

    /// Runs `f` on node `i`'s engine (if it is up) with its world, then carries out what the
    /// engine asked of the network, the puller and the eviction check.
    fn with_engine(
        &mut self,
        i: usize,
        f: impl FnOnce(&mut ConsenterEngine<SimConfig>, &mut SimIo<'_>, u64) -> Result<(), EngineError>,
    ) -> Result<(), String> {
        let now = self.now;
        let bug = self.opts.bug;
        let mut fx = Effects::default();
        let node = &mut self.nodes[i];
        let Some(engine) = node.engine.as_mut() else {
            return Ok(());
        };
        let mut io = SimIo {
            slot: i,
            disk: &mut node.disk,
            ledger: &mut node.ledger,
            ledger_synced: &mut node.ledger_synced,
            bug,
            fx: &mut fx,
        };
        match catch_unwind(AssertUnwindSafe(|| f(engine, &mut io, now))) {
            Err(p) => return Err(format!("node {} panicked: {}", i + 1, panic_text(p))),
            Ok(Err(e)) => return Err(format!("node {} halted: {e}", i + 1)),
            Ok(Ok(())) => {}
        }
        self.apply(i, fx)
    }

    /// Carries out an engine call's effects: the global checks on the blocks it wrote, the
    /// messages it sent, the pull and eviction check it asked for; then acts on an eviction.
    fn apply(&mut self, i: usize, fx: Effects) -> Result<(), String> {
        self.report.snapshots_taken += fx.snapshots_taken;
        for (block, pulled) in fx.appended {
            self.written_by(i, &block, if pulled { "pulled" } else { "committed" })?;
            if is_config_block(&block) && self.written.len() as u64 == block_number(&block) + 1 {
                // Only the newest block counts (a lagging node applying an old config block
                // changes nobody's membership).
                let md = self.nodes[i]
                    .ledger
                    .last()
                    .map(|(_, md)| md.clone())
                    .unwrap_or_default();
                self.added_back(&block, &md)?;
            }
        }
        for (m, active) in fx.sends {
            if let Some(to) = self.slot_of_id(m.to) {
                self.send(i, to, Net::Raft(m, active));
            }
        }
        let inc = self.nodes[i].inc;
        match fx.pull {
            Some(PullRequest::To(target)) => {
                self.trace(|| format!("node {} must catch up to block {target}", i + 1));
                let first = self.nodes[i].catch_up.is_none();
                self.nodes[i].catch_up = Some(target);
                if first {
                    let at = self.now + self.rng.gen_range(1..50) * MS;
                    self.at(at, Ev::CatchUp { node: i, inc });
                }
            }
            Some(PullRequest::Stop) => {
                self.nodes[i].catch_up = None;
                self.report.catch_ups += 1;
            }
            None => {}
        }
        if fx.probe {
            let at = self.now + self.rng.gen_range(1..50) * MS;
            self.at(at, Ev::Probe { node: i, inc });
        }
        let evicted = self.nodes[i]
            .engine
            .as_ref()
            .and_then(|e| e.evicted().map(|until| until.cloned()));
        match evicted {
            Some(None) => self.evict(i, "it reported its removal"),
            Some(Some(block)) => self.evicted_by(i, block),
            None => {
                self.arm_timer(i);
                Ok(())
            }
        }
    }

    /// The node running (or down) under Raft ID `id`.
    fn slot_of_id(&self, id: u64) -> Option<usize> {
        self.nodes
            .iter()
            .position(|n| n.id == id && !n.evicted && n.following.is_none())
    }

    /// Node `i` stops being a consenter: its chain stops, its ledger stays (the real node
    /// follows the channel from then on). Checked against the truth: the config its ledger ends
    /// with must not list it under its ID.
    fn evict(&mut self, i: usize, why: &str) -> Result<(), String> {
        let node = &mut self.nodes[i];
        let number = last_config(&node.ledger).0;
        let certs = last_certs(&node.ledger);
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
        node.engine = None;
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
    /// was added back (the operator joined it with that block). Like the real node, it stops
    /// whatever it was and follows the channel with the follower engine until the engine says
    /// it is a consenter; then it starts as the start plan says (under the new ID, the old ID's
    /// WAL wiped).
    fn added_back(&mut self, block: &Block, md: &BlockMetadata) -> Result<(), String> {
        let number = block.header.as_ref().map_or(0, |h| h.number);
        let certs = certs_of_block(block)?;
        for (c, &id) in certs.iter().zip(&md.consenter_ids) {
            let Some(s) = slot_of(c).filter(|&s| s < self.nodes.len()) else {
                return Err(format!("config block {number} lists an unknown node"));
            };
            let node = &mut self.nodes[s];
            // IDs only grow: a smaller one is from an older config block.
            if node.id >= id {
                continue;
            }
            let old = node.id;
            node.engine = None;
            node.inc += 1;
            node.waiting.clear();
            node.timer_at = None;
            node.catch_up = None;
            node.evicted = false;
            node.id = id;
            node.following = Some(Following::new(&node.ledger, block.clone(), false)?);
            // The chain stopped and its ledger is synced; the WAL of the old Raft ID stays on
            // disk: the start plan decides, as in the node, whether to wipe it.
            node.ledger_synced = node.ledger.len();
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

    /// A node added back follows the channel with the node's follower engine: it pulls the
    /// blocks it lacks (checked as the real puller does), the engine checks the join block and
    /// appends them, and once it says the config makes the node a consenter, the node starts as
    /// one; else it tries again later.
    fn join(&mut self, i: usize) -> Result<(), String> {
        let Some(mut f) = self.nodes[i].following.take() else {
            return Ok(());
        };
        let mut consenter = {
            let node = &mut self.nodes[i];
            f.engine.consenter_now(&SimFollowerIo {
                slot: i,
                ledger: &mut node.ledger,
                ledger_synced: &mut node.ledger_synced,
            })
        };
        if !consenter {
            // A follower pulls all there is (Fabric's follower has no target).
            for (block, _) in self.pulled_blocks(i, u64::MAX) {
                self.check_pulled(i, &block)?;
                let node = &mut self.nodes[i];
                let mut io = SimFollowerIo {
                    slot: i,
                    ledger: &mut node.ledger,
                    ledger_synced: &mut node.ledger_synced,
                };
                let next = f
                    .engine
                    .on_pulled(&mut io, &block)
                    .map_err(|e| format!("node {} following the channel: {e}", i + 1))?;
                self.written_by(i, &block, "pulled")?;
                if next == Next::BecomeConsenter {
                    consenter = true;
                    break;
                }
                if f.evicting && !f.engine.onboarding() {
                    // The ledger reached the block that removed it (the simulation stops
                    // following there; an operator adding it back joins it anew).
                    return self.evict(i, "the others' last config does not list it");
                }
            }
        }
        if consenter {
            return self.start(i);
        }
        self.nodes[i].following = Some(f);
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
                && (self.nodes[p].engine.is_some()
                    || self.nodes[p].evicted
                    || self.nodes[p].following.is_some())
                && self.reachable(i, p)
        })
    }

    /// The blocks after node `i`'s ledger up to block `target`, from one reachable peer after
    /// another (as the real puller does when a source has no more).
    fn pulled_blocks(&mut self, i: usize, target: u64) -> Vec<(Block, BlockMetadata)> {
        let mut peers: Vec<usize> = self.live_peers(i).collect();
        peers.shuffle(&mut self.rng);
        let mut next = self.nodes[i].ledger.len();
        let mut out = Vec::new();
        for p in peers {
            while next as u64 <= target
                && let Some(b) = self.nodes[p].ledger.get(next).cloned()
            {
                out.push(b);
                next += 1;
            }
        }
        out
    }

    /// The real puller's checks of a block pulled by node `i`: it follows the ledger's tip and
    /// its data hash holds.
    fn check_pulled(&self, i: usize, block: &Block) -> Result<(), String> {
        let prev = self.nodes[i]
            .ledger
            .last()
            .and_then(|(b, _)| b.header.clone())
            .ok_or("empty ledger")?;
        ordo_ledger::block::verify_link(&prev, block)
            .and_then(|()| ordo_ledger::block::verify_data_hash(block))
            .map_err(|e| {
                format!(
                    "node {} would pull a block that breaks its chain: {e}",
                    i + 1
                )
            })
    }

    /// The answer to node `i`'s eviction check, as the real puller gives it: the last config
    /// block of the reachable orderer with the longest ledger, and that orderer's height.
    fn answer_probe(&mut self, i: usize) -> Result<(), String> {
        let answer = self
            .live_peers(i)
            .max_by_key(|&p| self.nodes[p].ledger.len())
            .map(|p| {
                let ledger = &self.nodes[p].ledger;
                let (number, _) = last_config(ledger);
                (ledger[number as usize].0.clone(), ledger.len() as u64)
            })
            .ok_or_else(|| "no orderer of the channel answered".into());
        self.with_engine(i, |e, io, _| {
            e.on_probe(io, answer);
            Ok(())
        })
    }

    /// Node `i`'s engine found, with the other orderers, that config block `block` no longer
    /// has it under its Raft ID: like the real node it follows the channel (the follower engine,
    /// with that block as the one to reach) up to that block, then stops — or, listed under a
    /// new ID, joins under it.
    fn evicted_by(&mut self, i: usize, block: Block) -> Result<(), String> {
        let number = block_number(&block);
        let md = BlockMetadata::decode(
            ordo_ledger::block::consenter_metadata(&block).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let readded = certs_of_block(&block)?
            .iter()
            .zip(&md.consenter_ids)
            .any(|(c, id)| slot_of(c) == Some(i) && *id != self.nodes[i].id);
        if readded {
            return self.added_back(&block, &md);
        }
        self.trace(|| {
            format!(
                "node {} learnt its eviction: block {number} does not list it",
                i + 1
            )
        });
        let node = &mut self.nodes[i];
        node.engine = None;
        node.inc += 1;
        node.timer_at = None;
        node.catch_up = None;
        if node.ledger.len() as u64 > number {
            return self.evict(i, "the others' last config does not list it");
        }
        // As the registrar: follow the channel up to the block that removed it.
        node.following = Some(Following::new(&node.ledger, block, true)?);
        let inc = node.inc;
        self.at(self.now + MS, Ev::Join { node: i, inc });
        Ok(())
    }

    /// Schedules the batch timer if the core's deadline moved.
    fn arm_timer(&mut self, i: usize) {
        let node = &self.nodes[i];
        let Some(deadline) = node.engine.as_ref().and_then(|e| e.deadline()) else {
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
        let dup = matches!(msg, Net::Raft(..)) && self.rng.gen_bool(self.net.dup);
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
        if dup && let Net::Raft(m, active) = &msg {
            let copy = Net::Raft(m.clone(), active.clone());
            self.at(
                self.now + second,
                Ev::Deliver {
                    from,
                    to,
                    msg: Box::new(copy),
                },
            );
        }
        self.at(
            self.now + first,
            Ev::Deliver {
                from,
                to,
                msg: Box::new(msg),
            },
        );
    }

    /// The checks the world makes on a block node `i` just wrote (by its engine, or pulled
    /// while not running one) — the global no-fork check — and what follows from it: envelopes
    /// waiting for their block are acknowledged.
    fn written_by(&mut self, i: usize, block: &Block, how: &str) -> Result<(), String> {
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
        let node = &mut self.nodes[i];
        let mut count = 0;
        for env in envelopes(block) {
            count += 1;
            if node.waiting.remove(env) {
                self.acked.insert(env.clone());
            }
        }
        if self.opts.trace {
            if is_config_block(block) {
                let md = node
                    .ledger
                    .last()
                    .map(|(_, md)| md.clone())
                    .unwrap_or_default();
                let certs: Vec<String> = certs_of_block(block)
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
            eprintln!(
                "[{:>6} ms] node {} {how} block {number} ({count} envelopes)",
                self.now / MS,
                i + 1,
            );
        }
        Ok(())
    }

    /// The block puller of a catch-up: node `i`'s engine gets the blocks it lacks, one by one,
    /// from reachable peers until it reaches its target (it then stops the pull); else the
    /// puller tries again later.
    fn catch_up(&mut self, i: usize) -> Result<(), String> {
        let Some(target) = self.nodes[i].catch_up else {
            return Ok(());
        };
        if self.nodes[i].engine.is_none() {
            return Ok(());
        }
        for (block, _) in self.pulled_blocks(i, target) {
            self.with_engine(i, |e, io, _| e.on_pulled(io, block))?;
            if self.nodes[i].catch_up.is_none() || self.nodes[i].engine.is_none() {
                return Ok(());
            }
        }
        let inc = self.nodes[i].inc;
        self.at(self.now + 200 * MS, Ev::CatchUp { node: i, inc });
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
        let Some(engine) = self.nodes[i].engine.as_ref() else {
            return Ok(());
        };
        let status = engine.status();
        let seq = engine.config().0.sequence;
        if status.is_leader {
            if !engine.accepting() {
                // The real node makes the client wait; here it simply gives up.
                return Ok(());
            }
            if self.ack_after_commit {
                self.nodes[i].waiting.insert(env.clone());
            }
            self.order(i, env, config, None)
        } else if status.leader != 0 {
            if self.ack_after_commit {
                self.nodes[i].waiting.insert(env.clone());
            }
            if let Some(leader) = self.slot_of_id(status.leader) {
                self.send(i, leader, Net::Submit { env, config, seq });
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
        let Some(base) = last_config(&self.nodes[i].ledger).1 else {
            return envelope(n);
        };
        let mut certs = base.certs.clone();
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
        base.next(certs).envelope(n)
    }

    /// The leader hands an envelope to its engine, as Broadcast does: validated here against
    /// the config in force (`seq` None), or forwarded by a follower that validated it against
    /// config sequence `seq` (the engine checks it again if the config moved on since).
    fn order(
        &mut self,
        i: usize,
        env: Bytes,
        config: bool,
        seq: Option<u64>,
    ) -> Result<(), String> {
        let Some(engine) = self.nodes[i].engine.as_ref() else {
            return Ok(());
        };
        if !engine.accepting() {
            // A forward that reached a node that is not (or no longer) an accepting leader is
            // dropped, as in Fabric.
            return Ok(());
        }
        let current = engine.config().0.sequence;
        // The real leader validates a config update against the config in force; one made from
        // an older config is refused (re-applied, it could change two consenters at once).
        if config
            && seq.is_none()
            && SimConfig::of_envelope(&env).map(|c| c.sequence) != Some(current + 1)
        {
            return Ok(());
        }
        let submission = Submission {
            size: env.len() as u32,
            envelope: env,
            config,
            config_seq: seq.unwrap_or(current),
        };
        self.with_engine(i, |e, io, now| e.submit(io, submission, now))
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
                .filter(|&i| self.nodes[i].engine.is_some())
                .collect();
            // Prefer the leader now and then: its death is the interesting case.
            let leader = up.iter().copied().find(|&i| {
                self.nodes[i]
                    .engine
                    .as_ref()
                    .map(ConsenterEngine::core)
                    .is_some_and(|c| c.status().is_leader)
            });
            let victim = match leader {
                Some(l) if self.rng.gen_bool(0.5) => Some(l),
                _ => up.choose(&mut self.rng).copied(),
            };
            if let Some(v) = victim {
                if self.stop_rng.gen_bool(0.3) {
                    self.graceful_stop(v)?;
                } else {
                    self.crash(v)?;
                }
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

    /// An operator's restart: the node hands over (`ConsenterEngine::hand_off`: no more
    /// envelopes, leadership to another voter once its blocks are committed) and goes down a
    /// while later, whether or not the hand-off finished by then.
    fn graceful_stop(&mut self, i: usize) -> Result<(), String> {
        let led = self.nodes[i]
            .engine
            .as_ref()
            .is_some_and(|e| e.status().is_leader);
        self.with_engine(i, |e, io, _| e.hand_off(io))?;
        self.report.graceful_stops += 1;
        self.trace(|| {
            format!(
                "node {} stopping{}",
                i + 1,
                if led { " (the leader)" } else { "" }
            )
        });
        let inc = self.nodes[i].inc;
        let down = self.now + self.stop_rng.gen_range(50..2000) * MS;
        self.at(down, Ev::Stop { node: i, inc, led });
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
        // A follower restarts from what its ledger kept, as the registrar does.
        if let Some(f) = node.following.take() {
            node.following = Some(Following::new(&node.ledger, f.until, f.evicting)?);
        }
        node.engine = None;
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
        self.leader_known = self.nodes.iter().any(|n| {
            n.engine
                .as_ref()
                .map(ConsenterEngine::core)
                .is_some_and(|c| c.status().is_leader)
        });
        if self.leader_known
            && let Some(g) = self.growing.as_mut()
            && g.led_since.is_none()
        {
            g.led_since = Some(self.now);
            g.last_block_at = self.now;
        }
        for n in &self.nodes {
            let Some(c) = n.engine.as_ref().map(ConsenterEngine::core) else {
                continue;
            };
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
            .map(
                |(i, n)| match n.engine.as_ref().map(ConsenterEngine::core) {
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
                    None => format!(
                        "node {} down (id {}, joining {:?})",
                        i + 1,
                        n.id,
                        n.following.as_ref().map(|f| f.engine.join_number())
                    ),
                },
            )
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
        let number = last_config(&self.nodes[longest].ledger).0;
        let certs = last_certs(&self.nodes[longest].ledger);
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
            let running = n
                .engine
                .as_ref()
                .map(ConsenterEngine::core)
                .map(|c| c.status().id);
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
            .filter_map(|n| n.engine.as_ref().map(ConsenterEngine::core))
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
        if let Some(p) = self.preferred {
            let leading = (0..self.nodes.len())
                .filter_map(|i| {
                    let core = self.nodes[i].engine.as_ref().map(ConsenterEngine::core)?;
                    core.status().is_leader.then(|| (core.status().term, i))
                })
                .max()
                .map(|(_, i)| i);
            self.report.ended_preferred = leading == Some(p);
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
            .filter_map(|n| n.engine.as_ref().map(ConsenterEngine::core))
            .map(|c| c.status().leader_changes)
            .sum();
        Ok(())
    }
}

fn hex(h: &[u8; 32]) -> String {
    h[..6].iter().map(|b| format!("{b:02x}")).collect()
}
