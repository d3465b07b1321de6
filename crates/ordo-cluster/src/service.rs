//! The inbound side of `orderer.Cluster/Step` (Fabric's `cluster.Service`).
//!
//! Every request on a stream is handed, with the TLS client certificate the connection was made
//! with (parsed once per stream), to a [`StepHandler`], which identifies the sending consenter
//! (Fabric compares the certificate's public key with the channel's `client_tls_cert`s) and
//! routes the request to the channel. As in Fabric the server never sends a `StepResponse`: a request the
//! handler refuses ends the stream with an error status, and the sender opens a new one.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use ordo_proto::orderer::cluster_server::Cluster;
use ordo_proto::orderer::{
    ConsensusRequest, StepRequest, StepResponse, SubmitRequest, step_request,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::tls::ConnInfo;

/// Who sent a stream's requests: its TLS client certificate and that certificate's key.
#[derive(Debug, Clone)]
pub struct Sender {
    /// DER.
    pub cert: Vec<u8>,
    pub key: ordo_crypto::PublicKey,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The sender is not a consenter of the channel as this node knows it, or claims another
    /// consenter's Raft ID. Answered `PERMISSION_DENIED`, which tells the sender it may have been
    /// removed from the channel (see [`crate::comm::Comm::refusals`]).
    #[error("{0}")]
    Unauthorized(String),
    /// Anything else (unknown channel, malformed message, full queue): `INVALID_ARGUMENT`.
    #[error("{0}")]
    Invalid(String),
}

impl From<String> for StepError {
    fn from(e: String) -> Self {
        StepError::Invalid(e)
    }
}

/// Where inbound cluster requests go (the orderer's registrar of channels).
#[tonic::async_trait]
pub trait StepHandler: Send + Sync + 'static {
    /// A Raft message from `sender`. Must not wait.
    fn consensus(&self, sender: &Sender, req: ConsensusRequest) -> Result<(), StepError>;
    /// An envelope forwarded by a follower; may wait for room in the channel's queue.
    async fn submit(&self, sender: &Sender, req: SubmitRequest) -> Result<(), StepError>;
}

/// The `orderer.Cluster` gRPC service.
pub struct ClusterService<H> {
    handler: Arc<H>,
}

impl<H> ClusterService<H> {
    pub fn new(handler: Arc<H>) -> Self {
        ClusterService { handler }
    }
}

type StepStream = Pin<Box<dyn Stream<Item = Result<StepResponse, Status>> + Send>>;

#[tonic::async_trait]
impl<H: StepHandler> Cluster for ClusterService<H> {
    type StepStream = StepStream;

    async fn step(
        &self,
        request: Request<Streaming<StepRequest>>,
    ) -> Result<Response<StepStream>, Status> {
        let cert = request
            .extensions()
            .get::<ConnInfo>()
            .and_then(|c| c.peer_certs.as_ref())
            .and_then(|c| c.first().cloned())
            .ok_or_else(|| Status::unauthenticated("no TLS certificate sent"))?;
        let key = ordo_msp::Cert::from_der(&cert)
            .map_err(|e| Status::unauthenticated(format!("TLS client certificate: {e}")))?
            .public_key()
            .clone();
        let sender = Sender { cert, key };
        let remote = request
            .extensions()
            .get::<ConnInfo>()
            .and_then(|c| c.remote);
        let mut input = request.into_inner();
        let (tx, rx) = mpsc::channel(1);
        let handler = self.handler.clone();
        tokio::spawn(async move {
            loop {
                let msg = match input.message().await {
                    Ok(Some(m)) => m,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::debug!(?remote, error = %e, "inbound cluster stream ended");
                        let _ = tx
                            .send(Err(crate::recv_status::go_grpc_recv_status(e)))
                            .await;
                        return;
                    }
                };
                let result = match msg.payload {
                    Some(step_request::Payload::ConsensusRequest(c)) => {
                        handler.consensus(&sender, c)
                    }
                    Some(step_request::Payload::SubmitRequest(s)) => {
                        handler.submit(&sender, s).await
                    }
                    None => Err(StepError::Invalid("empty StepRequest".to_string())),
                };
                if let Err(e) = result {
                    tracing::warn!(?remote, error = %e, "inbound cluster request refused");
                    let status = match e {
                        StepError::Unauthorized(e) => Status::permission_denied(e),
                        StepError::Invalid(e) => Status::invalid_argument(e),
                    };
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
