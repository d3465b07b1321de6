//! Following a channel this node is not a consenter of (Fabric's `follower.Chain`): the runtime
//! of `ordo_channel::follower`'s engine. Blocks are pulled from the orderers of the channel's
//! config with `ordo_cluster::puller`, checked (hash chain, data hashes, well-formed envelopes,
//! BlockValidation signatures of the config in force) and handed to the engine, which appends
//! them as they are (signatures and consenter metadata untouched), checks the join block and
//! decides when onboarding is done and when the config makes this node a consenter.
//!
//! A node follows when it joins with a config block numbered above 0, when it joins but is not
//! among the consenters, and after it is removed from the consenters. When the engine says the
//! node is a consenter, the follower stops and asks the registrar to start the channel's Raft
//! chain — at once, where Fabric's follower notices only on its next poll.

use std::sync::Arc;

use arc_swap::ArcSwap;
use ordo_channel::follower::{FollowError, FollowerEngine, FollowerEvent, FollowerIo, Next};
use ordo_channel::io::IoError;
use ordo_cluster::puller::{FOLLOW, Pulled, Puller};
use ordo_config::ChannelConfig;
use ordo_proto::common::Block;
use ordo_raft::chain::ChainStatus;
use tokio::sync::watch;

use super::source::ChannelSource;
use super::{
    ChainState, Channel, ChannelError, Ledger, NodeServices, Relation, Role, Switch, config_at_tip,
};

/// The block a follower joined with.
pub type JoinBlock = ordo_channel::JoinBlock<ChannelConfig>;

impl Channel {
    /// Starts following `name`: `ledger` holds what was pulled so far (possibly nothing), and
    /// `join` is the block the node joined with, until its ledger has reached it.
    pub fn follow(
        name: &str,
        ledger: Arc<Ledger>,
        join: Option<JoinBlock>,
        services: NodeServices,
    ) -> Result<Arc<Channel>, ChannelError> {
        let join = join.filter(|j| ledger.height() <= j.number);
        let config = if ledger.height() > 0 {
            config_at_tip(&ledger)?.0
        } else {
            join.as_ref()
                .map(|j| j.config.clone())
                .ok_or(ChannelError::NothingToFollow)?
        };
        let engine = FollowerEngine::new(ledger.height(), config.clone(), join.as_ref());
        let onboarding = engine.onboarding();
        let (state_tx, state) = watch::channel(ChainState {
            status: ChainStatus {
                last_block: ledger.height().saturating_sub(1),
                ..ChainStatus::default()
            },
            halted: None,
            relation: Relation::Follower { onboarding },
        });
        services.metrics.ledger_height(name, ledger.height());
        // Follower (2), onboarding (2) or active (1).
        services
            .metrics
            .participation(name, if onboarding { 2 } else { 1 }, 2);
        let config = Arc::new(ArcSwap::from_pointee(config));
        let (stop, stop_rx) = watch::channel(false);
        let follower = Follower {
            engine,
            io: NodeFollowerIo {
                name: name.to_string(),
                ledger: ledger.clone(),
                config: config.clone(),
                services,
                state: state_tx,
            },
        };
        let task = tokio::spawn(follower.run(stop_rx));
        Ok(Arc::new(Channel {
            name: name.to_string(),
            config,
            ledger,
            state,
            stop,
            task: std::sync::Mutex::new(Some(task)),
            role: Role::Follower,
        }))
    }
}

struct Follower {
    engine: FollowerEngine<ChannelConfig>,
    io: NodeFollowerIo,
}

/// The follower's world: the ledger, the channel's published config and state, metrics.
struct NodeFollowerIo {
    name: String,
    ledger: Arc<Ledger>,
    config: Arc<ArcSwap<ChannelConfig>>,
    services: NodeServices,
    state: watch::Sender<ChainState>,
}

impl FollowerIo for NodeFollowerIo {
    type Config = ChannelConfig;

    fn append(&mut self, block: &Block) -> Result<(), IoError> {
        Ok(self.ledger.append(block)?)
    }

    fn self_key(&self) -> Option<Vec<u8>> {
        self.services.self_key.get().map(|k| k.to_vec())
    }

    fn event(&mut self, e: FollowerEvent<'_, ChannelConfig>) {
        let m = &self.services.metrics;
        match e {
            FollowerEvent::BlockWritten { number } => {
                m.ledger_height(&self.name, number + 1);
                self.state.send_modify(|s| s.status.last_block = number);
            }
            FollowerEvent::ConfigApplied { config, .. } => {
                self.config.store(Arc::new(config.clone()));
                (self.services.on_config)();
            }
            FollowerEvent::Onboarded { number } => {
                tracing::info!(channel = %self.name, block = number, "onboarding done: the ledger reached the join block");
                m.participation(&self.name, 1, 2);
                self.state.send_modify(|s| {
                    s.relation = Relation::Follower { onboarding: false };
                });
            }
        }
    }
}

impl Follower {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        if self.engine.consenter_now(&self.io) {
            self.io.switch();
            return;
        }
        let Some(comm) = self.io.services.comm.clone() else {
            self.io
                .fail("following a channel needs the cluster transport (TLS)".into());
            return;
        };
        let io = &self.io;
        let height = io.ledger.height();
        let (source, prev) = if height == 0 {
            let source = ChannelSource::from_genesis(
                &io.name,
                self.engine.config().clone(),
                io.services.signer.clone(),
            );
            (source, None)
        } else {
            let prev = match io.ledger.block(height - 1) {
                Ok(b) => b.header,
                Err(e) => {
                    self.io
                        .fail(format!("cannot read the ledger's last block: {e}"));
                    return;
                }
            };
            let source = ChannelSource::new(
                &io.name,
                self.engine.config().clone(),
                io.services.signer.clone(),
            );
            (source, prev)
        };
        tracing::info!(channel = %io.name, height, join = ?self.engine.join_number(), "following the channel: pulling its blocks from the channel's orderers");
        let (_puller, mut blocks) = Puller::start(
            &io.name,
            io.services.replication,
            comm,
            source,
            prev,
            FOLLOW,
        );
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                pulled = blocks.recv() => {
                    let Some(Pulled { block, .. }) = pulled else { return };
                    match self.engine.on_pulled(&mut self.io, &block) {
                        Ok(Next::BecomeConsenter) => {
                            self.io.switch();
                            return;
                        }
                        Ok(Next::Follow) => {}
                        Err(e) => {
                            let storage = matches!(e, FollowError::Ledger { .. });
                            self.io.fail(e.to_string());
                            if storage
                                && let Some(s) = &self.io.services.switch
                            {
                                let _ = s.send(Switch::Resume(self.io.name.clone()));
                            }
                            return;
                        }
                    }
                }
            }
        }
    }
}

impl NodeFollowerIo {
    fn switch(&self) {
        tracing::info!(channel = %self.name, height = self.ledger.height(), "the channel config makes this node a consenter: starting its raft chain");
        if let Some(s) = &self.services.switch {
            let _ = s.send(Switch::ToConsenter(self.name.clone()));
        }
    }

    fn fail(&self, e: String) {
        tracing::error!(channel = %self.name, error = %e, "following the channel failed");
        self.services.metrics.participation(&self.name, 3, 2);
        self.state.send_modify(|s| s.halted = Some(e));
    }
}
