//! The node's side of the channel participation API: the registrar's channels as Fabric's
//! `ChannelInfo`, and joins and removals through the registrar.

use std::sync::Arc;

use axum::body::Bytes;
use ordo_proto::common::Block;

use crate::channel::Relation;
use crate::participation::{
    BoxFuture, ChannelInfo, ChannelParticipation, ChannelStatus, ConsensusRelation,
    ParticipationError, URL_BASE,
};
use crate::registrar::{Registrar, RegistrarError};

pub struct Backend {
    registrar: Arc<Registrar>,
}

impl Backend {
    pub fn new(registrar: Arc<Registrar>) -> Backend {
        Backend { registrar }
    }
}

fn info_of(ch: &crate::channel::Channel) -> ChannelInfo {
    info_from(&ch.name, &ch.state(), ch.ledger().height())
}

/// Fabric's `ChannelInfo` for a channel in `state` with `height` blocks.
fn info_from(name: &str, state: &crate::channel::ChainState, height: u64) -> ChannelInfo {
    let (consensus_relation, onboarding) = match state.relation {
        // A learner is a consenter still catching up before it counts in the quorum.
        Relation::Consenter => (ConsensusRelation::Consenter, state.is_learner()),
        Relation::Follower { onboarding } => (ConsensusRelation::Follower, onboarding),
    };
    ChannelInfo {
        name: name.to_string(),
        url: format!("{URL_BASE}/channels/{name}"),
        consensus_relation,
        status: if state.halted.is_some() {
            ChannelStatus::Failed
        } else if onboarding {
            ChannelStatus::Onboarding
        } else {
            ChannelStatus::Active
        },
        height,
    }
}

fn map(e: RegistrarError) -> ParticipationError {
    match e {
        RegistrarError::AlreadyExists => ParticipationError::AlreadyExists,
        RegistrarError::NotFound => ParticipationError::NotFound,
        e if e.is_bad_request() => ParticipationError::BadRequest(e.to_string()),
        e => ParticipationError::Internal(e.to_string()),
    }
}

impl ChannelParticipation for Backend {
    fn list(&self) -> Vec<String> {
        self.registrar
            .channels()
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    fn info(&self, channel: &str) -> Result<ChannelInfo, ParticipationError> {
        self.registrar
            .get(channel)
            .map(|c| info_of(&c))
            .ok_or(ParticipationError::NotFound)
    }

    fn join(
        &self,
        channel: String,
        block: Block,
        bytes: Bytes,
    ) -> BoxFuture<'_, Result<ChannelInfo, ParticipationError>> {
        Box::pin(async move {
            let ch = self
                .registrar
                .join(&channel, block, bytes)
                .await
                .map_err(map)?;
            Ok(info_of(&ch))
        })
    }

    fn remove(&self, channel: String) -> BoxFuture<'_, Result<(), ParticipationError>> {
        Box::pin(async move { self.registrar.remove(&channel).await.map_err(map) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::ChainState;
    use ordo_raft::chain::ChainStatus;

    fn consenter(id: u64, learners: Vec<u64>) -> ChainState {
        ChainState {
            status: ChainStatus {
                id,
                learners,
                ..ChainStatus::default()
            },
            halted: None,
            relation: Relation::Consenter,
        }
    }

    /// A learner is a consenter still catching up: Fabric's "onboarding" status, which its
    /// followers show while they catch up too; promoted, it is active.
    #[test]
    fn a_learner_is_an_onboarding_consenter() {
        let learner = info_from("ch", &consenter(4, vec![4]), 7);
        assert_eq!(learner.consensus_relation, ConsensusRelation::Consenter);
        assert_eq!(learner.status, ChannelStatus::Onboarding);
        // Another node's learner says nothing about this one.
        let voter = info_from("ch", &consenter(1, vec![4]), 7);
        assert_eq!(voter.status, ChannelStatus::Active);
        let mut failed = consenter(4, vec![4]);
        failed.halted = Some("halted".into());
        assert_eq!(info_from("ch", &failed, 7).status, ChannelStatus::Failed);
    }
}
