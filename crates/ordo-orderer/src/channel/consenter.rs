//! The runtime of a consenter's engine ([`ordo_channel::ConsenterEngine`]): a tokio task feeding
//! it ticks, Raft messages, submissions (read only while the engine accepts them), the batch
//! timer, pulled blocks, suspicions and the answers to eviction checks, and publishing its state
//! after each; and [`NodeIo`], the engine's world on a node — the raft-engine WAL (fsync), the
//! block store, the node's signing identity (each block gets LAST_CONFIG and a SIGNATURES entry,
//! Fabric's `BlockWriter`), the cluster transport, block pullers and eviction checks on tasks of
//! their own, commit waiters and metrics.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use ordo_channel::{
    ConfigView, ConsenterEngine, EngineError, EngineParams, Event, Io, IoError, Suspicion,
};
use ordo_cluster::comm::RemoteNode;
use ordo_cluster::puller::{Pulled, Puller, last_config_block_and_height};
use ordo_config::ChannelConfig;
use ordo_ledger::block::sign_block;
use ordo_proto::common::{Block, BlockHeader, Envelope};
use ordo_raft::chain::{Persist, RaftMessage, encode_message};
use ordo_raft::wal::RaftWal;
use prost::Message;
use raft::eraftpb::Snapshot;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::time::Instant;

use super::source::ChannelSource;
use super::support::{CommitWaiters, Inbound, Ledger, Member, NodeServices, Submission};
use super::{
    ChainState, Channel, ChannelError, ConsenterLink, INBOUND_QUEUE_CAPACITY, Relation, Role,
    SUBMIT_QUEUE_CAPACITY, Switch, config_at_tip, unix_now,
};
use crate::configupdate::revalidate_config;
use crate::msgprocessor::process_normal;

/// Ticks (rounded up, at least one) in `d`.
fn ticks_in(d: Duration, tick: Duration) -> u64 {
    (d.as_nanos().div_ceil(tick.as_nanos().max(1)) as u64).max(1)
}

impl Channel {
    /// Starts the chain of a channel whose ledger holds at least the genesis block, as Raft
    /// node `id`. `wal` decides between a fresh start and a restart.
    pub fn start(
        name: &str,
        id: u64,
        ledger: Arc<Ledger>,
        wal: RaftWal,
        services: NodeServices,
    ) -> Result<Arc<Channel>, ChannelError> {
        let (config, last_config) = config_at_tip(&ledger)?;
        let settings = config.raft_settings()?;
        let tick = Duration::from_nanos(settings.tick_ns);
        let election_tick = u32::try_from(settings.options.election_tick).unwrap_or(u32::MAX);
        let height = ledger.height();
        let tip = ledger.block(height - 1)?;
        let last_block = ordo_channel::consenter::last_block_of(&tip, height, &config)?;
        let start = ordo_channel::start::start_kind(wal.is_fresh()?, height, || wal.recover())?;
        let cold = wal.entries_reader();
        let members_handle = Arc::new(ArcSwap::from_pointee(Vec::new()));
        let config_handle = Arc::new(ArcSwap::from_pointee(config.clone()));
        let waiters = Arc::new(CommitWaiters::default());
        let mut io = NodeIo {
            name: name.to_string(),
            id,
            wal,
            ledger: ledger.clone(),
            services: services.clone(),
            waiters: waiters.clone(),
            config: config_handle.clone(),
            members: members_handle.clone(),
            election_timeout: tick * election_tick,
            pull: None,
            probe: None,
        };
        let engine = ConsenterEngine::start(
            EngineParams {
                channel: name.to_string(),
                id,
                config,
                last_config,
                last_block,
                start,
                cold_entries: Some(cold),
                adaptive_cutting: !services.fabric_block_cutting,
                learner_first: !services.fabric_membership_changes,
                election_timeout: None,
                eviction_suspicion_ticks: ticks_in(services.eviction_suspicion, tick),
                eviction_check_interval_ticks: ticks_in(EVICTION_CHECK_INTERVAL, tick),
                bug: None,
                preferred_leaders: services.preferred_leaders.clone(),
            },
            &mut io,
        )?;
        // Whose state this is decides whether a later start may reuse it (see the registrar).
        io.wal.set_node_id(id)?;
        let adds_learners = !services.fabric_membership_changes;
        let (submit, queue) = mpsc::channel(SUBMIT_QUEUE_CAPACITY);
        let (inbound, inbound_rx) = mpsc::channel(INBOUND_QUEUE_CAPACITY);
        let initial = ChainState {
            status: engine.status(),
            halted: None,
            relation: Relation::Consenter,
        };
        let learner = initial.is_learner();
        let (state_tx, state) = watch::channel(initial);
        let (stop, stop_rx) = watch::channel(false);
        let suspicion = Arc::new(Notify::new());
        let unknown_sender = Arc::new(Notify::new());
        let hand_off = Arc::new(Notify::new());
        let refusals = services.comm.as_ref().map(|c| c.refusals(name));
        services.metrics.ledger_height(name, ledger.height());
        // A consenter (Fabric's participation gauges): active, or onboarding while a learner.
        services
            .metrics
            .participation(name, if learner { 2 } else { 1 }, 1);
        let driver = Driver {
            name: name.to_string(),
            engine,
            io,
            state: state_tx,
            origin: Instant::now(),
            suspicion: suspicion.clone(),
            unknown_sender: unknown_sender.clone(),
            hand_off: hand_off.clone(),
            refusals,
        };
        let task = tokio::spawn(driver.run(queue, inbound_rx, stop_rx, tick));
        Ok(Arc::new(Channel {
            name: name.to_string(),
            config: config_handle,
            ledger,
            state,
            stop,
            task: std::sync::Mutex::new(Some(task)),
            role: Role::Consenter(ConsenterLink {
                id,
                members: members_handle,
                inbound,
                submit,
                waiters,
                suspicion,
                unknown_sender,
                hand_off,
                adds_learners,
            }),
        }))
    }
}

/// The least time between two eviction checks (Fabric's `DefaultLeaderlessCheckInterval`).
const EVICTION_CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// The consenter runtime: a tokio task feeding the engine its inputs (ticks, Raft messages,
/// submissions while it accepts them, the batch timer, pulled blocks, suspicions and the answers
/// to eviction checks) and publishing its state after each.
struct Driver {
    name: String,
    engine: ConsenterEngine<ChannelConfig>,
    io: NodeIo,
    state: watch::Sender<ChainState>,
    origin: Instant,
    /// See [`Channel::suspect_eviction`].
    suspicion: Arc<Notify>,
    /// See [`Channel::unknown_sender`].
    unknown_sender: Arc<Notify>,
    /// See [`Channel::hand_off`].
    hand_off: Arc<Notify>,
    /// See [`Comm::refusals`].
    refusals: Option<watch::Receiver<u64>>,
}

/// The next change of the refusal count, or never without a transport.
async fn refused(r: &mut Option<watch::Receiver<u64>>) {
    if let Some(r) = r
        && r.changed().await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

/// The answer to the eviction check under way, or never without one.
async fn probed(
    p: &mut Option<oneshot::Receiver<Result<(Block, u64), ordo_cluster::puller::ProbeError>>>,
) -> Result<(Block, u64), ordo_cluster::puller::ProbeError> {
    match p {
        Some(rx) => rx
            .await
            .unwrap_or(Err(ordo_cluster::puller::ProbeError::NoAnswer)),
        None => std::future::pending().await,
    }
}

/// The next pulled block, or never when no pull is under way.
async fn next_pulled(p: &mut Option<(Puller, mpsc::UnboundedReceiver<Pulled>)>) -> Option<Pulled> {
    match p {
        Some((_, rx)) => rx.recv().await,
        None => std::future::pending().await,
    }
}

impl Driver {
    fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    async fn run(
        mut self,
        mut queue: mpsc::Receiver<Submission>,
        mut inbound: mpsc::Receiver<Inbound>,
        mut stop: watch::Receiver<bool>,
        tick: Duration,
    ) {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let suspicion = self.suspicion.clone();
        let unknown_sender = self.unknown_sender.clone();
        let hand_off = self.hand_off.clone();
        loop {
            let deadline = self
                .engine
                .deadline()
                .map(|ns| self.origin + Duration::from_nanos(ns));
            let accepting = self.engine.accepting();
            // What was queued for this node as leader and never read (leadership moved, or
            // this node is stopping) goes to the leader it now follows, as a follower's
            // Broadcast would have sent it, instead of waiting here for a leadership that may
            // not come back.
            let status = self.engine.status();
            let forward_to = (!status.is_leader && status.leader != 0).then_some(status.leader);
            let step: Result<(), EngineError> = tokio::select! {
                _ = stop.changed() => break,
                _ = hand_off.notified() => self.engine.hand_off(&mut self.io),
                _ = ticker.tick() => self.engine.tick(&mut self.io),
                _ = suspicion.notified() => {
                    self.engine.suspect(&mut self.io, Suspicion::AddressedUnderAnotherId);
                    Ok(())
                }
                _ = unknown_sender.notified() => {
                    self.engine.suspect(&mut self.io, Suspicion::UnknownSender);
                    Ok(())
                }
                _ = refused(&mut self.refusals) => {
                    self.engine.suspect(&mut self.io, Suspicion::Refused);
                    Ok(())
                }
                r = probed(&mut self.io.probe) => {
                    self.io.probe = None;
                    self.engine.on_probe(&mut self.io, r.map_err(IoError::from));
                    Ok(())
                }
                Some(m) = inbound.recv() => self.engine.step(&mut self.io, m.msg, m.active_nodes),
                Some(s) = queue.recv(), if accepting || forward_to.is_some() => {
                    match forward_to {
                        Some(leader) if !accepting => {
                            self.forward(s, leader);
                            Ok(())
                        }
                        _ => {
                            let now = self.now_ns();
                            self.engine.submit(&mut self.io, s, now)
                        }
                    }
                }
                Some(p) = next_pulled(&mut self.io.pull) => self.engine.on_pulled(&mut self.io, p.block),
                _ = sleep_until(deadline), if deadline.is_some() => {
                    let now = self.now_ns();
                    self.engine.on_time(&mut self.io, now)
                }
            };
            if let Err(e) = step {
                self.halt(e.into());
                return;
            }
            self.publish(None);
            if let Some(until) = self.engine.evicted() {
                if let Some(switch) = &self.io.services.switch {
                    let _ = switch.send(Switch::ToFollower {
                        channel: self.name.clone(),
                        until: until.cloned().map(Box::new),
                    });
                }
                break;
            }
        }
        if let Some(comm) = &self.io.services.comm {
            comm.remove_channel(&self.name);
        }
    }

    /// Sends a queued envelope to `leader`'s submit stream, on a task of its own (the send
    /// waits for the stream; the driver must not).
    fn forward(&self, s: Submission, leader: u64) {
        let Some(comm) = self.io.services.comm.clone() else {
            return;
        };
        let req = match super::submit_request(&self.name, &s) {
            Ok(req) => req,
            Err(e) => {
                // Ordo marshalled it itself; this cannot happen.
                debug_assert!(false, "a queued envelope does not decode: {e}");
                return;
            }
        };
        let name = self.name.clone();
        tokio::spawn(async move {
            if let Err(e) = comm.send_submit(&name, leader, req).await {
                tracing::warn!(channel = %name, leader, error = %e, "a queued envelope could not be forwarded to the new leader");
            }
        });
    }

    fn halt(&self, e: ChannelError) {
        tracing::error!(channel = %self.name, error = %e, "chain halted");
        self.io.services.metrics.participation(&self.name, 3, 1);
        self.publish(Some(e.to_string()));
        // A full disk or an I/O error on the ledger or WAL need not last: the registrar starts
        // the channel again from disk once the disk takes writes.
        if e.is_storage()
            && let Some(switch) = &self.io.services.switch
        {
            let _ = switch.send(Switch::Resume(self.name.clone()));
        }
    }

    fn publish(&self, halted: Option<String>) {
        let status = self.engine.status();
        let m = &self.io.services.metrics;
        m.raft_status(&self.name, &status);
        let learner = status.learners.contains(&status.id);
        let (was_learner, failed) = {
            let s = self.state.borrow();
            (s.is_learner(), s.halted.is_some())
        };
        if learner != was_learner && !failed && halted.is_none() {
            m.participation(&self.name, if learner { 2 } else { 1 }, 1);
        }
        self.state.send_if_modified(|s| {
            let next = ChainState {
                status,
                halted: halted.or_else(|| s.halted.clone()),
                relation: s.relation,
            };
            let changed = *s != next;
            *s = next;
            changed
        });
    }
}

/// The engine's world on a real node: the raft-engine WAL, the block store, the node's signing
/// identity and filters, the cluster transport, pullers and probes on tokio tasks, and the
/// channel's published config, members, commit waiters and metrics.
struct NodeIo {
    name: String,
    id: u64,
    wal: RaftWal,
    ledger: Arc<Ledger>,
    services: NodeServices,
    waiters: Arc<CommitWaiters>,
    /// What Broadcast validates against and the participation API shows.
    config: Arc<ArcSwap<ChannelConfig>>,
    /// Whom inbound cluster messages are matched against.
    members: Arc<ArcSwap<Vec<Member>>>,
    /// ElectionTick × TickInterval.
    election_timeout: Duration,
    /// The pull under way while catching up.
    pull: Option<(Puller, mpsc::UnboundedReceiver<Pulled>)>,
    /// The eviction check under way.
    probe: Option<oneshot::Receiver<Result<(Block, u64), ordo_cluster::puller::ProbeError>>>,
}

impl Io for NodeIo {
    type Config = ChannelConfig;

    fn persist(&mut self, p: &Persist) -> Result<(), IoError> {
        let t = std::time::Instant::now();
        self.wal.persist(p)?;
        let took = t.elapsed();
        self.services.metrics.data_persist(&self.name, took);
        if took > self.election_timeout / 2 {
            // Fabric's warning: a sync this slow holds back heartbeats and votes.
            tracing::warn!(channel = %self.name, ?took, election_timeout = ?self.election_timeout, "WAL sync took more than half the election timeout: the disk is too slow and may cause loss of quorum and trigger leadership elections");
        }
        Ok(())
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot, compact_to: u64) -> Result<(), IoError> {
        Ok(self.wal.save_snapshot(snapshot, compact_to)?)
    }

    fn ledger_height(&self) -> u64 {
        self.ledger.height()
    }

    fn ledger_block(&self, number: u64) -> Result<Block, IoError> {
        Ok(self.ledger.block(number)?)
    }

    fn append(&mut self, block: &Block, synced: bool) -> Result<(), IoError> {
        let t = std::time::Instant::now();
        if synced {
            self.ledger.append(block)?;
        } else {
            self.ledger.append_unsynced(block)?;
        }
        let number = block.header.as_ref().map_or(0, |h| h.number);
        self.services
            .metrics
            .block_committed(&self.name, number, t.elapsed());
        Ok(())
    }

    fn sync_ledger(&mut self) -> Result<(), IoError> {
        Ok(self.ledger.sync()?)
    }

    fn sign(
        &self,
        block: &mut Block,
        last_config: u64,
        consenter_metadata: &[u8],
    ) -> Result<(), IoError> {
        Ok(sign_block(
            block,
            &self.services.signer,
            last_config,
            Some(consenter_metadata),
        )?)
    }

    fn revalidate(&self, s: &Submission, config: &ChannelConfig) -> Result<(), IoError> {
        let env = Envelope::decode(s.envelope.clone())?;
        if s.config {
            revalidate_config(&env, &self.name, config)?;
        } else {
            process_normal(&env, config, self.services.filters, unix_now()).map_err(|r| r.info)?;
        }
        Ok(())
    }

    fn self_key(&self) -> Option<Vec<u8>> {
        self.services.self_key.get().map(|k| k.to_vec())
    }

    fn send(&mut self, msg: RaftMessage, active_nodes: Option<&[u64]>) {
        let Some(comm) = &self.services.comm else {
            return;
        };
        let to = msg.to;
        let metadata = active_nodes.map_or_else(Bytes::new, |active| {
            ordo_proto::etcdraft::ClusterMetadata {
                active_nodes: active.to_vec(),
            }
            .encode_to_vec()
            .into()
        });
        let req = ordo_proto::orderer::ConsensusRequest {
            channel: self.name.clone(),
            payload: encode_message(&msg).into(),
            metadata,
        };
        if let Err(e) = comm.send_consensus(&self.name, to, req) {
            tracing::debug!(channel = %self.name, to, error = %e, "raft message not sent");
        }
    }

    fn set_members(&mut self, members: &[ordo_channel::Member]) {
        let now: Vec<Member> = members.iter().map(Member::from).collect();
        if let Some(comm) = &self.services.comm {
            let remotes = now
                .iter()
                .filter(|m| m.id != self.id)
                .map(|m| RemoteNode {
                    id: m.id,
                    endpoint: format!("{}:{}", m.host, m.port),
                    server_cert_pem: m.server_tls_cert.clone(),
                })
                .collect();
            comm.configure(&self.name, remotes);
        }
        self.members.store(Arc::new(now));
    }

    fn start_pull(
        &mut self,
        prev: &BlockHeader,
        target: u64,
        config: &ChannelConfig,
    ) -> Result<(), IoError> {
        let comm = self
            .services
            .comm
            .clone()
            .ok_or("catching up needs the cluster transport (TLS)")?;
        let source = ChannelSource::new(&self.name, config.clone(), self.services.signer.clone());
        self.pull = Some(Puller::start(
            &self.name,
            self.services.replication,
            comm,
            source,
            Some(prev.clone()),
            target,
        ));
        Ok(())
    }

    fn raise_pull(&mut self, target: u64) {
        if let Some((puller, _)) = &self.pull {
            puller.set_target(target);
        }
    }

    fn stop_pull(&mut self) {
        self.pull = None;
    }

    fn start_probe(&mut self, config: &ChannelConfig) {
        let Some(comm) = self.services.comm.clone() else {
            return;
        };
        let source = ChannelSource::new(&self.name, config.clone(), self.services.signer.clone());
        let (name, replication) = (self.name.clone(), self.services.replication);
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let r = last_config_block_and_height(&name, replication, comm, source).await;
            let _ = tx.send(r);
        });
        self.probe = Some(rx);
    }

    fn event(&mut self, e: Event<'_, ChannelConfig>) {
        let m = &self.services.metrics;
        match e {
            Event::BlockWritten { block, pulled } => {
                self.waiters.notify(block);
                if pulled {
                    m.block_pulled(&self.name);
                }
            }
            Event::ConfigApplied { config, .. } => {
                self.config.store(Arc::new(config.clone()));
                (self.services.on_config)();
            }
            Event::Snapshot { block } => m.snapshot_block(&self.name, block),
            Event::CatchUpTarget { target } => m.catch_up_target(&self.name, target),
            Event::BatchCut { fill_ns } => m.block_fill(&self.name, Duration::from_nanos(fill_ns)),
            Event::Proposed { config: true } => m.config_proposal(&self.name),
            Event::Proposed { config: false } => m.normal_proposal(&self.name),
            Event::Dropped => {}
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
