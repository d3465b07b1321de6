//! Inbound cluster requests, routed to channels (Fabric's `etcdraft.Consenter` as a
//! `cluster.Handler`).
//!
//! The sender of a request is the channel's consenter whose `client_tls_cert` has the public
//! key of the connection's TLS client certificate; a Raft message must also claim to come from
//! that consenter, so one consenter cannot speak for another. A forwarded envelope joins the
//! channel's queue with the config sequence the follower validated it against: the leader checks
//! it again if the config has moved on since.

use std::sync::Arc;

use ordo_cluster::service::{Sender, StepError, StepHandler};
use ordo_proto::common::{Envelope, HeaderType};
use ordo_proto::orderer::{ConsensusRequest, SubmitRequest};
use ordo_raft::chain::decode_message;
use prost::Message;

use crate::channel::{Channel, Inbound, Submission};
use crate::registrar::Registrar;

/// Routes `orderer.Cluster/Step` requests to the registrar's channels.
pub struct ClusterHandler {
    pub registrar: Arc<Registrar>,
}

impl ClusterHandler {
    /// The channel and the sender's Raft ID in it.
    fn sender(&self, channel: &str, sender: &Sender) -> Result<(Arc<Channel>, u64), StepError> {
        let ch = self
            .registrar
            .get(channel)
            .ok_or_else(|| StepError::Invalid(format!("channel {channel} doesn't exist")))?;
        let Some(id) = ch.member_by_client_key(&sender.key) else {
            // This node's config may be the stale one (the sender was added since): the
            // channel checks with the other orderers.
            ch.unknown_sender();
            return Err(StepError::Unauthorized(format!(
                "certificate extracted from TLS connection isn't authorized for channel {channel}"
            )));
        };
        Ok((ch, id))
    }
}

#[tonic::async_trait]
impl StepHandler for ClusterHandler {
    fn consensus(&self, from: &Sender, req: ConsensusRequest) -> Result<(), StepError> {
        let (ch, sender) = self.sender(&req.channel, from)?;
        let msg = decode_message(&req.payload).map_err(|e| StepError::Invalid(e.to_string()))?;
        if msg.from != sender {
            // The sender knows itself under another ID than this node's config: it may be the
            // one that was removed (and added back), and the refusal makes it check.
            return Err(StepError::Unauthorized(format!(
                "raft message claims to come from node {} but was sent by node {sender}",
                msg.from
            )));
        }
        let id = ch.raft_id();
        if Some(msg.to) != id {
            // The sender's config has this node under another ID: this node is the stale one.
            // Fabric halts here ("cowardly"); Ordo checks the channel's last config instead.
            ch.suspect_eviction();
            return Err(StepError::Invalid(format!(
                "raft message for node {} reached node {} of channel {}",
                msg.to,
                id.unwrap_or_default(),
                req.channel
            )));
        }
        // ActiveNodes from the leader (the core keeps them only if `from` leads).
        let active_nodes = if req.metadata.is_empty() {
            None
        } else {
            ordo_proto::etcdraft::ClusterMetadata::decode(req.metadata)
                .map(|m| Some(m.active_nodes))
                .map_err(|e| format!("bad cluster metadata from node {sender}: {e}"))?
        };
        ch.step(Inbound { msg, active_nodes })
            .map_err(|e| StepError::Invalid(e.to_string()))
    }

    async fn submit(&self, from: &Sender, req: SubmitRequest) -> Result<(), StepError> {
        let (ch, sender) = self.sender(&req.channel, from)?;
        let env = req
            .payload
            .ok_or_else(|| format!("empty forwarded envelope from node {sender}"))?;
        let config = crate::msgprocessor::channel_header(&env)
            .is_ok_and(|h| h.r#type == HeaderType::Config as i32);
        let submission = Submission {
            size: (env.payload.len() + env.signature.len()) as u32,
            envelope: Envelope::encode_to_vec(&env).into(),
            config,
            config_seq: req.last_validation_seq,
        };
        ch.submit(submission)
            .await
            .map_err(|e| StepError::Invalid(e.to_string()))
    }
}
