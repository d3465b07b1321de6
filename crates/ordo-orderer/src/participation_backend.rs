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
    let state = ch.state();
    let (consensus_relation, onboarding) = match state.relation {
        // A learner is a consenter still catching up before it counts in the quorum.
        Relation::Consenter => (ConsensusRelation::Consenter, state.is_learner()),
        Relation::Follower { onboarding } => (ConsensusRelation::Follower, onboarding),
    };
    ChannelInfo {
        name: ch.name.clone(),
        url: format!("{URL_BASE}/channels/{}", ch.name),
        consensus_relation,
        status: if state.halted.is_some() {
            ChannelStatus::Failed
        } else if onboarding {
            ChannelStatus::Onboarding
        } else {
            ChannelStatus::Active
        },
        height: ch.ledger().height(),
    }
}

fn map(e: RegistrarError) -> ParticipationError {
    match e {
        RegistrarError::AlreadyExists => ParticipationError::AlreadyExists,
        RegistrarError::NotFound => ParticipationError::NotFound,
        RegistrarError::BadRequest(m) => ParticipationError::BadRequest(m),
        RegistrarError::Failed(m) => ParticipationError::Internal(m),
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
