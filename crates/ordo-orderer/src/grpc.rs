//! The `orderer.AtomicBroadcast` gRPC service: Broadcast and Deliver (Fabric's
//! `orderer/common/broadcast/broadcast.go` and `common/deliver/deliver.go`).
//!
//! **Broadcast** answers every envelope with one `BroadcastResponse`, in order, and ends the
//! stream right after the first refusal, as Fabric does. SUCCESS means "handed to the leader's
//! block cutter", not "committed". Each stream checks several envelopes at once on the runtime's
//! workers, so even one client's signature checks run on every core; the chain still receives
//! them, and the client its answers, in the stream's order.
//!
//! **Deliver** serves each `SeekInfo` of a stream in turn, ending each with a status; a stream
//! goes on to the next request only after a SUCCESS. Access (`/Channel/Readers`) is checked
//! before the first block and again whenever the channel config changes, and the requester's
//! certificate expiry before every block.

use std::pin::Pin;
use std::sync::Arc;

use futures::stream::FuturesOrdered;
use futures::{Stream, StreamExt};
use ordo_cluster::recv_status::go_grpc_recv_status;
use ordo_config::ChannelConfig;
use ordo_config::envelope::signed_data;
use ordo_proto::common::{Envelope, Status};
use ordo_proto::orderer::atomic_broadcast_server::AtomicBroadcast;
use ordo_proto::orderer::{BroadcastResponse, DeliverResponse, deliver_response};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Streaming};

use crate::channel::{Channel, CommitWait, Submission, submit_request, unix_now};
use crate::configupdate::{Membership, process_config_update};
use crate::deliver::{
    DeliverRefusal, SeekPlan, Step, decode_seek_info, fails_on_consenter_error, parse_seek_envelope,
};
use crate::metrics::Metrics;
use crate::msgprocessor::{FilterSettings, MsgClass, Rejection, process_normal, route};
use crate::registrar::Registrar;

/// Broadcast answers buffered per stream before the handler waits for the client to read.
const STREAM_BUFFER: usize = 16;
/// Deliver responses (blocks, up to `AbsoluteMaxBytes` each) buffered per stream: one, so that a
/// client that asks for every block and never reads costs the node a few blocks (this one, the
/// one being read, what HTTP/2 flow control lets through), not a queue of them.
const DELIVER_BUFFER: usize = 1;

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, tonic::Status>> + Send>>;

/// The AtomicBroadcast service of a node.
#[derive(Clone)]
pub struct AtomicBroadcastService {
    pub registrar: Arc<Registrar>,
    pub signer: Arc<ordo_msp::SigningIdentity>,
    pub filters: FilterSettings,
    pub time_window_ns: i64,
    /// Whether the listener requires client certificates (Deliver then checks TLS binding).
    pub mutual_tls: bool,
    pub metrics: Metrics,
    /// The cluster transport, to forward envelopes to the leader.
    pub comm: Option<ordo_cluster::comm::Comm>,
    /// Ack-after-commit mode (`Consensus.AckAfterCommit`): SUCCESS only once the envelope is in
    /// a committed block, waiting at most this long. `None`: Fabric's answer on hand-over.
    pub ack_after_commit: Option<std::time::Duration>,
}

/// The client's TLS certificate (DER) on this connection, if it presented one.
fn client_cert<T>(req: &Request<T>) -> Option<Vec<u8>> {
    req.extensions()
        .get::<crate::tls::ConnInfo>()
        .and_then(|c| c.peer_certs.as_ref())
        .and_then(|certs| certs.first().cloned())
}

/// An envelope that passed Broadcast's checks, ready for its channel's chain.
struct Validated {
    channel: Arc<Channel>,
    name: String,
    submission: Submission,
}

/// One envelope's way through a Broadcast stream: its labels for metrics and what the
/// (parallel) checks made of it.
struct Checked {
    channel: String,
    kind: &'static str,
    result: Result<Validated, Rejection>,
}

/// Most answers a Broadcast stream keeps pending (in ack-after-commit mode they wait for
/// blocks); beyond this the stream stops reading.
const MAX_UNANSWERED: usize = 4096;

/// How long an envelope waits for its channel to have a leader before it is refused with
/// "no Raft leader". Fabric refuses at once; but most leaderless moments are a leadership
/// transfer (a leader stopping, a rotation) or an election after a leader's loss, over within a
/// round trip or an election timeout, and a client re-sending after a refusal waits longer.
const LEADERLESS_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The channel's state once it has a leader (or halted), or after `limit`, whichever is first.
async fn leader_within(
    channel: &Arc<crate::channel::Channel>,
    limit: std::time::Duration,
) -> crate::channel::ChainState {
    let mut w = channel.watch_state();
    let _ = tokio::time::timeout(
        limit,
        w.wait_for(|s| s.status.leader != 0 || s.halted.is_some()),
    )
    .await;
    w.borrow().clone()
}

/// An envelope handed over (or refused), its answer pending.
struct Answer {
    channel: String,
    kind: &'static str,
    outcome: Result<Option<CommitWait>, Rejection>,
    timeout: std::time::Duration,
}

impl Answer {
    fn is_err_now(&self) -> bool {
        self.outcome.is_err()
    }

    /// The answer: at once, or when the envelope's block is committed (SERVICE_UNAVAILABLE if
    /// that takes longer than the timeout: the envelope may still be ordered, so a client
    /// that retries may see it twice, which peers' duplicate-txid check absorbs).
    async fn wait(self) -> (String, &'static str, Result<(), Rejection>) {
        let result = match self.outcome {
            Ok(None) => Ok(()),
            Ok(Some(wait)) => match wait.committed(self.timeout).await {
                Some(_) => Ok(()),
                None => Err(Rejection {
                    status: Status::ServiceUnavailable,
                    info: format!(
                        "the envelope was not committed within {:?} (ack-after-commit); it may still be ordered",
                        self.timeout
                    ),
                }),
            },
            Err(r) => Err(r),
        };
        (self.channel, self.kind, result)
    }
}

impl AtomicBroadcastService {
    /// Broadcast's checks of one envelope (routing, filters, signature, config update
    /// processing). Synchronous and CPU-bound: the stream runs it on the runtime's workers,
    /// several envelopes at a time.
    fn validate(&self, env: Envelope, kind: &str) -> Result<Validated, Rejection> {
        let started = std::time::Instant::now();
        let now = unix_now();
        // The channel header is read twice (to find the channel, then by `route`): cheap, and
        // it keeps `route` the single place where Fabric's routing rules live.
        let channel = crate::msgprocessor::channel_header(&env)
            .ok()
            .and_then(|h| self.registrar.get(&h.channel_id));
        let config = channel.as_ref().map(|c| c.config());
        let (chdr, class, _) = route(&env, |_| config.as_deref())?;
        let (Some(channel), Some(config)) = (channel, config) else {
            return Err(Rejection {
                status: Status::BadRequest,
                info: "channel not found".into(),
            });
        };
        let name = chdr.channel_id.clone();
        let submission = match class {
            MsgClass::Normal => {
                let seq = process_normal(&env, &config, self.filters, now)?;
                Submission {
                    size: (env.payload.len() + env.signature.len()) as u32,
                    envelope: env.encode_to_vec().into(),
                    config: false,
                    config_seq: seq,
                }
            }
            MsgClass::ConfigUpdate => {
                // The leader's ActiveNodes (a follower has them from the leader), mapped to
                // the consenters' certificates; none yet (a leader elected moments ago) means
                // every voter counts, rather than refusing every membership change.
                let status = channel.state().status;
                let members = channel.members();
                let certs = |ids: &[u64]| -> Vec<bytes::Bytes> {
                    members
                        .iter()
                        .filter(|m| ids.contains(&m.id))
                        .map(|m| m.client_tls_cert.clone())
                        .collect()
                };
                let membership = Membership {
                    active: (!status.active.is_empty()).then(|| certs(&status.active)),
                    learners: certs(&status.learners),
                    adds_learners: channel.adds_learners(),
                };
                let (config_env, seq) = process_config_update(
                    &env,
                    &name,
                    &config,
                    &self.signer,
                    self.filters,
                    now,
                    &membership,
                )?;
                Submission {
                    size: (config_env.payload.len() + config_env.signature.len()) as u32,
                    envelope: config_env.encode_to_vec().into(),
                    config: true,
                    config_seq: seq,
                }
            }
        };
        self.metrics
            .broadcast_validated(&name, kind, started.elapsed());
        Ok(Validated {
            channel,
            name,
            submission,
        })
    }

    /// Hands a checked envelope to its channel's chain, in the stream's order; in
    /// ack-after-commit mode, returns the wait for its block.
    async fn enqueue(&self, v: Validated, kind: &str) -> Result<Option<CommitWait>, Rejection> {
        // Registered before the hand-over, so that the block cannot be written unseen.
        let wait = self
            .ack_after_commit
            .and_then(|_| v.channel.wait_commit(&v.submission.envelope));
        self.hand_over(v, kind).await?;
        Ok(wait)
    }

    async fn hand_over(&self, v: Validated, kind: &str) -> Result<(), Rejection> {
        let state = v.channel.state();
        if let crate::channel::Relation::Follower { .. } = state.relation {
            // Fabric's registrar has no chain for a followed channel and answers as for an
            // unknown one.
            return Err(Rejection {
                status: Status::BadRequest,
                info: format!(
                    "channel {} is followed, not ordered, by this node: it is not one of its consenters",
                    v.name
                ),
            });
        }
        if let Some(e) = state.halted {
            return Err(Rejection {
                status: Status::ServiceUnavailable,
                info: format!("chain is halted: {e}"),
            });
        }
        let state = if state.status.leader == 0 {
            leader_within(&v.channel, LEADERLESS_WAIT).await
        } else {
            state
        };
        if state.status.leader == 0 {
            return Err(Rejection {
                status: Status::ServiceUnavailable,
                info: "no Raft leader".into(),
            });
        }
        if !state.status.is_leader {
            return self.forward(v, state.status.leader).await;
        }
        let enqueued = std::time::Instant::now();
        v.channel
            .submit(v.submission)
            .await
            .map_err(|e| Rejection {
                status: Status::ServiceUnavailable,
                info: e.to_string(),
            })?;
        self.metrics
            .broadcast_enqueued(&v.name, kind, enqueued.elapsed());
        Ok(())
    }

    /// Fabric's `forwardToLeader`: a follower hands the envelope, with the config sequence it
    /// was validated against, to the leader's submit stream. SUCCESS then means the leader's
    /// stream took it within `RPCTimeout`, as in Fabric, not that it was ordered.
    async fn forward(&self, v: Validated, leader: u64) -> Result<(), Rejection> {
        let unavailable = |info: String| Rejection {
            status: Status::ServiceUnavailable,
            info,
        };
        let Some(comm) = &self.comm else {
            return Err(unavailable(format!(
                "not the Raft leader (leader is {leader}) and no cluster transport to forward with"
            )));
        };
        let req = submit_request(&v.name, &v.submission)
            .map_err(|e| unavailable(format!("re-reading the envelope: {e}")))?;
        comm.send_submit(&v.name, leader, req)
            .await
            .map_err(|e| unavailable(e.to_string()))
    }

    /// Serves one Broadcast stream. Envelopes are checked in parallel (up to `window` at a
    /// time, so one busy client uses every core, as Fabric's one-goroutine-per-stream does
    /// not), but handed to the chain and answered strictly in arrival order; after the first
    /// refusal nothing more is enqueued and the stream ends, as in Fabric.
    async fn serve_broadcast(
        self,
        mut input: Streaming<Envelope>,
        out: mpsc::Sender<Result<BroadcastResponse, tonic::Status>>,
    ) {
        let window = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
        let svc = Arc::new(self);
        let mut checking = FuturesOrdered::new();
        let mut answering = FuturesOrdered::new();
        let mut input_open = true;
        // After the first refusal nothing more is handed over; the answers before it still go.
        let mut refused = false;
        // A message that could not be read (too large, not an Envelope) ends the stream with
        // its status, after the answers to the envelopes before it, as in Fabric.
        let mut unreadable = None;
        loop {
            tokio::select! {
                biased;
                Some(answer) = answering.next(), if !answering.is_empty() => {
                    if !svc.respond(answer, &out).await {
                        return;
                    }
                }
                Some(checked) = checking.next(), if !checking.is_empty() && !refused => {
                    let answer = svc.enqueue_checked(checked).await;
                    refused = answer.is_err_now();
                    answering.push_back(answer.wait());
                }
                msg = input.message(), if input_open && !refused
                    && checking.len() < window && answering.len() < MAX_UNANSWERED => {
                    let env = match msg {
                        Ok(Some(env)) => env,
                        Ok(None) => { input_open = false; continue; }
                        Err(e) => {
                            tracing::debug!(error = %e, "broadcast stream ended");
                            unreadable = Some(go_grpc_recv_status(e));
                            input_open = false;
                            continue;
                        }
                    };
                    svc.metrics.grpc_message("Broadcast", true);
                    // Fabric labels metrics with the header type's name.
                    let (channel, kind) = match crate::msgprocessor::channel_header(&env) {
                        Ok(h) => (
                            h.channel_id,
                            ordo_proto::common::HeaderType::try_from(h.r#type)
                                .map_or("UNKNOWN", |t| t.as_str_name()),
                        ),
                        Err(_) => (String::new(), "UNKNOWN"),
                    };
                    let task_svc = svc.clone();
                    let task = tokio::spawn(async move { task_svc.validate(env, kind) });
                    checking.push_back(async move {
                        let result = task.await.unwrap_or_else(|e| {
                            Err(Rejection {
                                status: Status::InternalServerError,
                                info: format!("envelope check failed: {e}"),
                            })
                        });
                        Checked { channel, kind, result }
                    });
                }
                else => {
                    if let Some(status) = unreadable {
                        let _ = out.send(Err(status)).await;
                    }
                    return;
                }
            }
        }
    }

    /// Hands one checked envelope over; its answer may still have to wait for the commit.
    async fn enqueue_checked(&self, checked: Checked) -> Answer {
        let Checked {
            channel,
            kind,
            result,
        } = checked;
        let outcome = match result {
            Ok(v) => self.enqueue(v, kind).await,
            Err(r) => Err(r),
        };
        Answer {
            channel,
            kind,
            outcome,
            timeout: self.ack_after_commit.unwrap_or_default(),
        }
    }

    /// Sends one answer. Returns whether the stream goes on.
    async fn respond(
        &self,
        (channel, kind, result): (String, &'static str, Result<(), Rejection>),
        out: &mpsc::Sender<Result<BroadcastResponse, tonic::Status>>,
    ) -> bool {
        let (status, info) = match &result {
            Ok(()) => (Status::Success, String::new()),
            Err(r) => (r.status, r.info.clone()),
        };
        self.metrics.broadcast_processed(&channel, kind, status);
        if let Err(r) = &result {
            tracing::warn!(channel = %channel, status = ?r.status, info = %r.info, "broadcast refused");
        }
        let resp = BroadcastResponse {
            status: status as i32,
            info,
        };
        self.metrics.grpc_message("Broadcast", false);
        // Fabric's handler returns after the first failure, closing the stream.
        out.send(Ok(resp)).await.is_ok() && result.is_ok()
    }

    /// Serves one SeekInfo. Returns whether the stream may take another request.
    async fn deliver_one(
        &self,
        env: Envelope,
        cert: Option<&[u8]>,
        out: &mpsc::Sender<Result<DeliverResponse, tonic::Status>>,
    ) -> bool {
        let status = match self.deliver_blocks(env, cert, out).await {
            Ok(s) => s,
            Err(r) => {
                tracing::warn!(status = ?r.status, reason = %r.reason, "deliver request refused");
                r.status
            }
        };
        let resp = DeliverResponse {
            r#type: Some(deliver_response::Type::Status(status as i32)),
        };
        out.send(Ok(resp)).await.is_ok() && status == Status::Success
    }

    async fn deliver_blocks(
        &self,
        env: Envelope,
        cert: Option<&[u8]>,
        out: &mpsc::Sender<Result<DeliverResponse, tonic::Status>>,
    ) -> Result<Status, DeliverRefusal> {
        let refuse = |status, reason: String| DeliverRefusal { status, reason };
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let hash = match (self.mutual_tls, cert) {
            (true, Some(c)) => Some(ordo_crypto::sha256(c).to_vec()),
            _ => None,
        };
        let seek_env = parse_seek_envelope(&env, now_ns, self.time_window_ns, hash.as_deref())?;
        let name = seek_env.channel_header.channel_id.clone();
        let Some(channel) = self.registrar.get(&name) else {
            return Err(refuse(
                Status::NotFound,
                format!("channel {name} not found"),
            ));
        };
        self.metrics.deliver_request(&name);
        let signed = signed_data(&env).map_err(|e| {
            refuse(
                Status::BadRequest,
                format!("could not convert envelope to signed data: {e}"),
            )
        })?;
        let creator_expiry = ordo_proto::msp::SerializedIdentity::decode(signed.identity.clone())
            .ok()
            .and_then(|sid| ordo_msp::Cert::from_pem(&sid.id_bytes).ok())
            .map(|c| c.not_after());
        let mut checked_seq = None;
        let mut check_access = |cfg: &ChannelConfig| -> Result<(), DeliverRefusal> {
            if checked_seq == Some(cfg.sequence()) {
                return Ok(());
            }
            let maintenance = cfg.orderer.as_ref().is_some_and(|o| o.consensus_state == 1);
            let policy_name = if maintenance {
                "/Channel/Orderer/Readers"
            } else {
                "/Channel/Readers"
            };
            let policy = cfg.policies().get_policy(policy_name).ok_or_else(|| {
                refuse(
                    Status::Forbidden,
                    format!("could not find policy {policy_name}"),
                )
            })?;
            policy
                .evaluate_signed_data(std::slice::from_ref(&signed), cfg.msp_manager())
                .map_err(|e| refuse(Status::Forbidden, format!("access denied: {e}")))?;
            checked_seq = Some(cfg.sequence());
            Ok(())
        };
        check_access(&channel.config())?;
        let seek = decode_seek_info(&seek_env.data)?;
        let ledger = channel.ledger().clone();
        let mut height = ledger.subscribe();
        let mut plan = SeekPlan::new(&seek, ledger.height())?;
        let fail_on_error = fails_on_consenter_error(&seek);
        let mut state = channel.watch_state();
        let leaderless = {
            let s = state.borrow_and_update();
            s.status.leader == 0 && s.status.cluster_size > 2
        };
        if fail_on_error && leaderless {
            return Ok(Status::ServiceUnavailable);
        }
        // The state's sender goes with the channel's task: a follower that becomes a consenter
        // hands its ledger to a new one, and streams go on following the ledger.
        let mut watch_state = fail_on_error;
        loop {
            let h = *height.borrow_and_update();
            match plan.step(h) {
                Step::Finish(s) => {
                    self.metrics.deliver_completed(&name, s == Status::Success);
                    return Ok(s);
                }
                // A halted channel (a full disk, say) still serves the blocks it holds, where
                // Fabric refuses at once; a client that would wait for more is told to go
                // elsewhere instead, unless it asked for BEST_EFFORT.
                Step::Wait if watch_state && state.borrow_and_update().halted.is_some() => {
                    return Ok(Status::ServiceUnavailable);
                }
                Step::Wait => {
                    tokio::select! {
                        r = height.changed() => if r.is_err() {
                            // The ledger is gone (channel removed).
                            return Ok(Status::ServiceUnavailable);
                        },
                        // Looked at again above: halted while waiting.
                        r = state.changed(), if watch_state => if r.is_err() {
                            watch_state = false;
                        },
                        _ = out.closed() => return Ok(Status::ServiceUnavailable),
                    }
                }
                Step::Send(n) => {
                    check_access(&channel.config())?;
                    if creator_expiry.is_some_and(|t| t <= unix_now()) {
                        return Err(refuse(
                            Status::Forbidden,
                            "deliver client identity expired".into(),
                        ));
                    }
                    let block = ledger.block(n).map_err(|e| {
                        refuse(
                            Status::ServiceUnavailable,
                            format!("reading block {n}: {e}"),
                        )
                    })?;
                    let resp = DeliverResponse {
                        r#type: Some(deliver_response::Type::Block(block)),
                    };
                    if out.send(Ok(resp)).await.is_err() {
                        return Ok(Status::ServiceUnavailable);
                    }
                    self.metrics.deliver_block_sent(&name);
                    self.metrics.grpc_message("Deliver", false);
                    plan.sent(n);
                }
            }
        }
    }

    async fn serve_deliver(
        self,
        mut input: Streaming<Envelope>,
        cert: Option<Vec<u8>>,
        out: mpsc::Sender<Result<DeliverResponse, tonic::Status>>,
    ) {
        self.metrics.deliver_stream(true);
        loop {
            match input.message().await {
                Ok(Some(env)) => {
                    self.metrics.grpc_message("Deliver", true);
                    if !self.deliver_one(env, cert.as_deref(), &out).await {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "deliver stream ended");
                    let _ = out.send(Err(go_grpc_recv_status(e))).await;
                    break;
                }
            }
        }
        self.metrics.deliver_stream(false);
    }
}

#[tonic::async_trait]
impl AtomicBroadcast for AtomicBroadcastService {
    type BroadcastStream = ResponseStream<BroadcastResponse>;
    type DeliverStream = ResponseStream<DeliverResponse>;

    async fn broadcast(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<Self::BroadcastStream>, tonic::Status> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let input = request.into_inner();
        let svc = self.clone();
        svc.metrics.grpc_stream_started("Broadcast");
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let metrics = svc.metrics.clone();
            svc.serve_broadcast(input, tx).await;
            metrics.grpc_stream_finished("Broadcast", "OK", started.elapsed());
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn deliver(
        &self,
        request: Request<Streaming<Envelope>>,
    ) -> Result<Response<Self::DeliverStream>, tonic::Status> {
        let cert = client_cert(&request);
        let (tx, rx) = mpsc::channel(DELIVER_BUFFER);
        let input = request.into_inner();
        let svc = self.clone();
        svc.metrics.grpc_stream_started("Deliver");
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let metrics = svc.metrics.clone();
            svc.serve_deliver(input, cert, tx).await;
            metrics.grpc_stream_finished("Deliver", "OK", started.elapsed());
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
