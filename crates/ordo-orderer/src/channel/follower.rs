//! Following a channel this node is not a consenter of (Fabric's `follower.Chain`): its blocks
//! are pulled from the orderers of the channel's config with `ordo_cluster::puller`, checked
//! (hash chain, data hashes, well-formed envelopes, BlockValidation signatures of the config in
//! force) and appended as they are, signatures and consenter metadata untouched.
//!
//! A node follows when it joins with a config block numbered above 0, when it joins but is not
//! among the consenters, and after it is removed from the consenters. Until its ledger reaches the
//! join block it is `onboarding`; the block pulled at the join block's number must be the join
//! block itself (the operator's trusted block vouches, through the hash chain, for everything
//! before it). When a config block at or after the join block lists this node as a consenter,
//! the follower stops and asks the registrar to start the channel's Raft chain — at once, where
//! Fabric's follower notices only on its next poll.

use std::sync::Arc;

use arc_swap::ArcSwap;
use ordo_cluster::puller::{FOLLOW, Pulled, Puller};
use ordo_config::ChannelConfig;
use ordo_ledger::block::{header_hash, is_config_block};
use ordo_proto::common::Block;
use ordo_raft::chain::ChainStatus;
use tokio::sync::watch;

use super::source::ChannelSource;
use super::{
    ChainState, Channel, ChannelError, Ledger, NodeServices, Relation, Role, Switch, config_at_tip,
    config_of_block, is_consenter,
};

/// The block a follower joined with: it must reach it, and what it pulls at that number must
/// be this very block.
#[derive(Debug, Clone)]
pub struct JoinBlock {
    pub number: u64,
    pub hash: [u8; 32],
    pub config: ChannelConfig,
}

impl JoinBlock {
    pub fn of(block: &Block) -> Result<JoinBlock, ChannelError> {
        let header = block.header.as_ref().ok_or(ChannelError::NoHeader(0))?;
        Ok(JoinBlock {
            number: header.number,
            hash: header_hash(header),
            config: config_of_block(block)?,
        })
    }
}

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
        let onboarding = join.is_some();
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
            name: name.to_string(),
            ledger: ledger.clone(),
            config: config.clone(),
            join,
            services,
            state: state_tx,
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
    name: String,
    ledger: Arc<Ledger>,
    config: Arc<ArcSwap<ChannelConfig>>,
    join: Option<JoinBlock>,
    services: NodeServices,
    state: watch::Sender<ChainState>,
}

impl Follower {
    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        if self.consenter_now() {
            self.switch();
            return;
        }
        let Some(comm) = self.services.comm.clone() else {
            self.fail("following a channel needs the cluster transport (TLS)".into());
            return;
        };
        let height = self.ledger.height();
        let (source, prev) = if height == 0 {
            let newest = self.config.load_full();
            let source = ChannelSource::from_genesis(
                &self.name,
                (*newest).clone(),
                self.services.signer.clone(),
            );
            (source, None)
        } else {
            let prev = match self.ledger.block(height - 1) {
                Ok(b) => b.header,
                Err(e) => {
                    self.fail(format!("cannot read the ledger's last block: {e}"));
                    return;
                }
            };
            let source = ChannelSource::new(
                &self.name,
                (**self.config.load()).clone(),
                self.services.signer.clone(),
            );
            (source, prev)
        };
        tracing::info!(channel = %self.name, height, join = ?self.join.as_ref().map(|j| j.number), "following the channel: pulling its blocks from the channel's orderers");
        let (_puller, mut blocks) = Puller::start(
            &self.name,
            self.services.replication,
            comm,
            source,
            prev,
            FOLLOW,
        );
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                pulled = blocks.recv() => {
                    let Some(pulled) = pulled else { return };
                    match self.write(pulled) {
                        Ok(true) => {
                            self.switch();
                            return;
                        }
                        Ok(false) => {}
                        Err(e) => {
                            self.fail(e);
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Appends a pulled block; returns whether the node is now a consenter.
    fn write(&mut self, p: Pulled) -> Result<bool, String> {
        let Pulled { block, .. } = p;
        let header = block.header.clone().unwrap_or_default();
        if let Some(j) = &self.join
            && header.number == j.number
            && header_hash(&header) != j.hash
        {
            return Err(format!(
                "block {} pulled from the channel's orderers is not the block this node joined with",
                j.number
            ));
        }
        let config = is_config_block(&block);
        let next = if config {
            Some(config_of_block(&block).map_err(|e| e.to_string())?)
        } else {
            None
        };
        self.ledger
            .append(&block)
            .map_err(|e| format!("cannot append block {}: {e}", header.number))?;
        let m = &self.services.metrics;
        m.ledger_height(&self.name, header.number + 1);
        if let Some(next) = next {
            self.config.store(Arc::new(next));
            (self.services.on_config)();
        }
        if self
            .join
            .as_ref()
            .is_some_and(|j| header.number >= j.number)
        {
            tracing::info!(channel = %self.name, block = header.number, "onboarding done: the ledger reached the join block");
            self.join = None;
            m.participation(&self.name, 1, 2);
        }
        self.state.send_modify(|s| {
            s.status.last_block = header.number;
            s.relation = Relation::Follower {
                onboarding: self.join.is_some(),
            };
        });
        Ok(config && self.consenter_now())
    }

    /// Whether the ledger is past onboarding and its config lists this node as a consenter.
    fn consenter_now(&self) -> bool {
        self.join.is_none()
            && self.ledger.height() > 0
            && is_consenter(&self.config.load(), &self.services.self_key)
    }

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
