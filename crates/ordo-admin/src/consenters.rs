//! One consenter change, made the way an operator would by hand with Fabric's tools, in one
//! step: fetch the channel's newest config block over Deliver, edit its etcdraft consenters
//! (add one, remove one, or rotate one's certificates), check locally that exactly one
//! consenter changes and that the consenters it can reach would still be a quorum of the new
//! set, sign the config update with every admin identity given, Broadcast it, and wait until
//! Deliver shows a config block that carries it; then, if asked, [`wait_for_node`] waits until
//! the affected node's participation API shows the outcome. Each step is reported as a
//! [`Progress`].
//!
//! Transient answers (no Raft leader yet) and Broadcast streams that fail or end without an
//! answer are retried until the deadline, as Fabric's SDKs do; a refusal is an error carrying the
//! orderer's words — unless an earlier attempt's answer was lost and the newest config already
//! carries the change (the update was ordered; sending it again is refused as stale).

use std::time::Duration;

use ordo_config::consenters::{
    ConsenterEdit, QuorumCheck, check_quorum, consenters, endpoint, signed_config_update,
};
use ordo_config::envelope::create_signed_envelope_with_tls_binding;
use ordo_config::etcdraft::ConsenterChange;
use ordo_msp::SigningIdentity;
use ordo_proto::common::{Block, Envelope, HeaderType, Status};
use ordo_proto::etcdraft::{BlockMetadata, Consenter};
use ordo_proto::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use ordo_proto::orderer::seek_info::{SeekBehavior, SeekErrorResponse};
use ordo_proto::orderer::seek_position::Type as Position;
use ordo_proto::orderer::{SeekInfo, SeekNewest, SeekPosition, SeekSpecified, deliver_response};
use prost::Message;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::AdminError;
use crate::endpoint::Endpoint;
use crate::participation::relation;

/// Pause before asking again after a transient answer (no leader yet): an election takes a few
/// ticks.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
/// Pause between two looks at a node's participation API.
const POLL_PAUSE: Duration = Duration::from_millis(200);

/// A consenter change to make.
pub struct Change {
    pub channel: String,
    pub edit: ConsenterEdit,
    /// The admins signing the config update; the first also signs the envelope and the Deliver
    /// requests. At least one.
    pub signers: Vec<SigningIdentity>,
    /// Refuse the change locally when it would leave too few reachable consenters.
    pub check_quorum: bool,
    /// The orderers add consenters as Raft learners (Ordo's default): an addition changes no
    /// quorum. `false` when they run with `Consensus.FabricMembershipChanges` (or are Fabric's).
    pub adds_learners: bool,
    /// How long a TCP connect to a consenter may take before it counts as unreachable.
    pub probe_timeout: Duration,
    /// Wait until a config block carries the change.
    pub wait: bool,
    /// The whole operation's time limit.
    pub timeout: Duration,
}

/// A step of the change, as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The config block the update is built on, and its consenters.
    Fetched { block: u64, consenters: Vec<String> },
    /// What the update does.
    Planned(String),
    /// The quorum rule held (`None`: skipped on request).
    Quorum {
        check: Option<QuorumCheck>,
        unreachable: Vec<String>,
    },
    /// The orderer answered something transient; asking again.
    Retrying(String),
    /// Broadcast accepted the update.
    Submitted,
    /// The config block carrying the change.
    Ordered { block: u64 },
    /// The consenters and their Raft IDs in that block's metadata.
    Applied {
        consenters: Vec<(String, u64)>,
        next_id: u64,
    },
    /// What the affected node reports (`None`: it does not have the channel).
    Node {
        addr: String,
        state: Option<(String, String)>,
    },
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Progress::Fetched { block, consenters } => write!(
                f,
                "fetched config block {block} (consenters: {})",
                consenters.join(", ")
            ),
            Progress::Planned(what) => write!(f, "update: {what}"),
            Progress::Quorum { check: None, .. } => write!(f, "quorum check skipped"),
            Progress::Quorum {
                check: Some(q),
                unreachable,
            } => {
                let down = if unreachable.is_empty() {
                    "all consenters reachable".to_string()
                } else {
                    format!("unreachable: {}", unreachable.join(", "))
                };
                if q.adds_learner {
                    write!(
                        f,
                        "quorum check: not needed, the new consenter joins as a learner and counts in the quorum only once it has caught up ({down})"
                    )
                } else if q.applies {
                    write!(
                        f,
                        "quorum check: {} of {} consenters alive after the change, quorum {} ({down})",
                        q.alive, q.size, q.quorum
                    )
                } else {
                    write!(
                        f,
                        "quorum check: not needed for {} consenters ({down})",
                        q.size
                    )
                }
            }
            Progress::Retrying(why) => write!(f, "retrying: {why}"),
            Progress::Submitted => write!(f, "submitted"),
            Progress::Ordered { block } => write!(f, "ordered in block {block}"),
            Progress::Applied {
                consenters,
                next_id,
            } => {
                let list: Vec<String> = consenters
                    .iter()
                    .map(|(e, id)| format!("{e} (ID {id})"))
                    .collect();
                write!(
                    f,
                    "applied: consenters {}; next ID {next_id}",
                    list.join(", ")
                )
            }
            Progress::Node {
                addr,
                state: Some((relation, status)),
            } => write!(f, "node {addr}: {relation}, {status}"),
            Progress::Node { addr, state: None } => {
                write!(f, "node {addr}: does not have the channel")
            }
        }
    }
}

/// What the change came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The number of the config block the update was built on.
    pub based_on: u64,
    /// The consenter change the update makes.
    pub change: ConsenterChange,
    /// The config block that carries the change (when waited for).
    pub config_block: Option<Block>,
}

/// How Broadcasting the update ended, when it was not an error.
enum Submitted {
    /// SUCCESS: the update reached the leader.
    Accepted,
    /// Refused after an attempt whose answer was lost: that attempt may have been ordered, which
    /// makes this one stale.
    RefusedAfterLostAnswer { status: String, info: String },
}

/// A Deliver/Broadcast session with one orderer on behalf of one admin.
struct Session<'a> {
    orderer: &'a Endpoint,
    client: AtomicBroadcastClient<Channel>,
    signer: &'a SigningIdentity,
    channel: &'a str,
    deadline: Instant,
    timeout: Duration,
    /// The last transient answer reported: a wait for a leader repeats it every
    /// [`RETRY_PAUSE`], and once is enough to show.
    last_retry: Option<String>,
}

fn specified(number: u64) -> SeekPosition {
    SeekPosition {
        r#type: Some(Position::Specified(SeekSpecified { number })),
    }
}

fn status_name(status: i32) -> String {
    Status::try_from(status).map_or_else(|_| status.to_string(), |s| s.as_str_name().to_string())
}

fn number(block: &Block) -> u64 {
    block.header.as_ref().map_or(0, |h| h.number)
}

impl Session<'_> {
    fn timed_out(&self, what: &str) -> AdminError {
        AdminError::Timeout {
            what: what.to_string(),
            after: self.timeout,
        }
    }

    fn seek(&self, start: SeekPosition, stop: SeekPosition) -> Result<Envelope, AdminError> {
        let info = SeekInfo {
            start: Some(start),
            stop: Some(stop),
            behavior: SeekBehavior::BlockUntilReady as i32,
            error_response: SeekErrorResponse::Strict as i32,
        };
        create_signed_envelope_with_tls_binding(
            HeaderType::DeliverSeekInfo,
            self.channel,
            self.signer,
            info.encode_to_vec().into(),
            self.orderer.tls_cert_hash.clone(),
        )
        .map_err(|e| self.deliver_err(format!("signing the seek request: {e}")))
    }

    /// A gRPC failure in words: the message, what caused it, and — when no client certificate
    /// was given and the connection itself failed — the likely reason (an orderer requiring
    /// client certificates ends the connection only after the TLS handshake seemed to work).
    fn describe(&self, e: &tonic::Status) -> String {
        let mut text = e.message().to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            text.push_str(&format!(": {c}"));
            cause = c.source();
        }
        let transport = matches!(
            e.code(),
            tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown
        );
        if transport && self.orderer.tls.is_some() && self.orderer.tls_cert_hash.is_empty() {
            text.push_str(" (does the orderer require a TLS client certificate?)");
        }
        text
    }

    /// Reports a transient answer unless it is the one reported last.
    fn retrying(&mut self, why: String, progress: &mut dyn FnMut(Progress)) {
        if self.last_retry.as_ref() != Some(&why) {
            progress(Progress::Retrying(why.clone()));
            self.last_retry = Some(why);
        }
    }

    fn deliver_err(&self, reason: String) -> AdminError {
        AdminError::Deliver {
            addr: self.orderer.addr.to_string(),
            reason,
        }
    }

    /// Blocks `start..=stop` (both given as positions), retrying while the channel has no
    /// leader. Every block is handed to `each`, which returns `true` to stop early.
    async fn deliver(
        &mut self,
        start: SeekPosition,
        stop: SeekPosition,
        progress: &mut dyn FnMut(Progress),
        mut each: impl FnMut(&Block) -> bool,
    ) -> Result<(), AdminError> {
        let mut start = start;
        loop {
            let env = self.seek(start, stop)?;
            let call = self.client.deliver(futures::stream::iter(vec![env]));
            let mut stream = tokio::time::timeout_at(self.deadline, call)
                .await
                .map_err(|_| self.timed_out("the Deliver stream"))?
                .map_err(|e| self.deliver_err(self.describe(&e)))?
                .into_inner();
            let status = loop {
                let msg = tokio::time::timeout_at(self.deadline, stream.message())
                    .await
                    .map_err(|_| self.timed_out("blocks on Deliver"))?
                    .map_err(|e| self.deliver_err(self.describe(&e)))?;
                match msg.and_then(|m| m.r#type) {
                    Some(deliver_response::Type::Block(b)) => {
                        if each(&b) {
                            return Ok(());
                        }
                        // Resume after it if the stream breaks.
                        start = specified(number(&b) + 1);
                    }
                    Some(deliver_response::Type::Status(s)) => break s,
                    None => break Status::Unknown as i32,
                }
            };
            if status == Status::Success as i32 {
                return Ok(());
            }
            if status != Status::ServiceUnavailable as i32 {
                return Err(self.deliver_err(match Status::try_from(status) {
                    Ok(Status::NotFound) => format!(
                        "NOT_FOUND: the orderer has no channel {:?} (or only follows it)",
                        self.channel
                    ),
                    Ok(Status::Forbidden) => format!(
                        "FORBIDDEN: {} may not read channel {:?}",
                        self.signer.msp_id(),
                        self.channel
                    ),
                    _ => status_name(status),
                }));
            }
            self.retrying(
                "Deliver: SERVICE_UNAVAILABLE (no Raft leader yet)".into(),
                progress,
            );
            if Instant::now() + RETRY_PAUSE > self.deadline {
                return Err(self.timed_out("the channel to have a leader"));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// The newest config block, and the number of the newest block.
    async fn newest_config(
        &mut self,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(Block, u64), AdminError> {
        let newest = SeekPosition {
            r#type: Some(Position::Newest(SeekNewest {})),
        };
        let mut tip = None;
        self.deliver(newest, newest, progress, |b| {
            tip = Some(b.clone());
            true
        })
        .await?;
        let tip = tip.ok_or_else(|| self.deliver_err("no block in the answer".into()))?;
        let tip_number = number(&tip);
        let last = ordo_ledger::block::last_config_index(&tip).map_err(|e| AdminError::Block {
            number: tip_number,
            reason: e.to_string(),
        })?;
        if last == tip_number {
            return Ok((tip, tip_number));
        }
        let mut config = None;
        self.deliver(specified(last), specified(last), progress, |b| {
            config = Some(b.clone());
            true
        })
        .await?;
        let config = config.ok_or_else(|| self.deliver_err("no block in the answer".into()))?;
        Ok((config, tip_number))
    }

    /// Broadcasts `env` until it is accepted or refused. A stream that fails or ends without
    /// an answer is opened again (the orderer was reachable a moment ago: Deliver answered), as
    /// is a SERVICE_UNAVAILABLE answer.
    async fn submit(
        &mut self,
        env: &Envelope,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Submitted, AdminError> {
        let mut answer_lost = false;
        loop {
            let call = self
                .client
                .broadcast(futures::stream::iter(vec![env.clone()]));
            let answer = tokio::time::timeout_at(self.deadline, async {
                let mut stream = call.await?.into_inner();
                stream.message().await
            })
            .await
            .map_err(|_| self.timed_out("the Broadcast answer"))?;
            let why = match answer {
                Ok(Some(a)) if a.status == Status::Success as i32 => {
                    return Ok(Submitted::Accepted);
                }
                Ok(Some(a)) if a.status != Status::ServiceUnavailable as i32 => {
                    let (status, info) = (status_name(a.status), a.info);
                    if answer_lost {
                        return Ok(Submitted::RefusedAfterLostAnswer { status, info });
                    }
                    return Err(AdminError::Refused { status, info });
                }
                Ok(Some(a)) => format!("Broadcast: SERVICE_UNAVAILABLE: {}", a.info),
                Ok(None) => {
                    answer_lost = true;
                    "Broadcast: the stream ended without an answer".to_string()
                }
                Err(e) => {
                    answer_lost = true;
                    format!("Broadcast: {}", self.describe(&e))
                }
            };
            self.retrying(why.clone(), progress);
            if Instant::now() + RETRY_PAUSE > self.deadline {
                return Err(AdminError::Timeout {
                    what: format!("the channel to take the update (last answer: {why})"),
                    after: self.timeout,
                });
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
}

/// The channel config in a config block.
fn config_of(block: &Block) -> Result<ordo_proto::common::Config, AdminError> {
    ordo_channel::config::config_of_block(block)
        .map(|c| c.config().clone())
        .map_err(|e| AdminError::Block {
            number: number(block),
            reason: e.to_string(),
        })
}

/// Whether `now` (a config's consenters) carries `change`.
fn carries(now: &[Consenter], change: &ConsenterChange) -> bool {
    let has = |c: &Consenter| now.iter().any(|x| x.client_tls_cert == c.client_tls_cert);
    match change {
        ConsenterChange::None => true,
        ConsenterChange::Add(c) => has(c),
        ConsenterChange::Remove(c) => !has(c),
        ConsenterChange::Rotate { old, new } => has(new) && !has(old),
    }
}

/// Which consenters answer a TCP connect within `timeout` (tried all at once).
async fn reachable(cs: &[Consenter], timeout: Duration) -> Vec<bool> {
    let tries = cs.iter().map(|c| async move {
        let port = u16::try_from(c.port).unwrap_or(0);
        let connect = tokio::net::TcpStream::connect((c.host.as_str(), port));
        matches!(tokio::time::timeout(timeout, connect).await, Ok(Ok(_)))
    });
    futures::future::join_all(tries).await
}

fn describe(change: &ConsenterChange) -> String {
    match change {
        ConsenterChange::None => "no change".into(),
        ConsenterChange::Add(c) => format!("add consenter {}", endpoint(c)),
        ConsenterChange::Remove(c) => format!("remove consenter {}", endpoint(c)),
        ConsenterChange::Rotate { old, .. } => {
            format!("rotate the TLS certificates of consenter {}", endpoint(old))
        }
    }
}

/// Makes `change` through `orderer` (its general endpoint: Deliver and Broadcast), reporting
/// each step to `progress`.
pub async fn change_consenters(
    orderer: &Endpoint,
    change: &Change,
    progress: &mut dyn FnMut(Progress),
) -> Result<Outcome, AdminError> {
    let signer = change
        .signers
        .first()
        .ok_or(ordo_config::consenters::ConsentersError::NoSigner)?;
    let deadline = Instant::now() + change.timeout;
    let client = tokio::time::timeout_at(deadline, orderer.broadcast_client())
        .await
        .map_err(|_| AdminError::Timeout {
            what: format!("a connection to {}", orderer.addr),
            after: change.timeout,
        })??;
    let mut session = Session {
        orderer,
        client,
        signer,
        channel: &change.channel,
        deadline,
        timeout: change.timeout,
        last_retry: None,
    };

    let (config_block, tip) = session.newest_config(progress).await?;
    let based_on = number(&config_block);
    let original = config_of(&config_block)?;
    let current = consenters(&original)?;
    progress(Progress::Fetched {
        block: based_on,
        consenters: current.iter().map(endpoint).collect(),
    });
    let (next, what) = change.edit.apply(&current)?;
    progress(Progress::Planned(describe(&what)));

    if change.check_quorum {
        let up = reachable(&current, change.probe_timeout).await;
        let alive = |c: &Consenter| {
            current
                .iter()
                .zip(&up)
                .any(|(x, up)| *up && x.client_tls_cert == c.client_tls_cert)
        };
        let check = check_quorum(&current, &what, alive, change.adds_learners)?;
        let unreachable = current
            .iter()
            .zip(&up)
            .filter(|(_, up)| !**up)
            .map(|(c, _)| endpoint(c))
            .collect();
        progress(Progress::Quorum {
            check: Some(check),
            unreachable,
        });
    } else {
        progress(Progress::Quorum {
            check: None,
            unreachable: vec![],
        });
    }

    let mut updated = original.clone();
    ordo_config::consenters::edit_consenters(&mut updated, |cs| *cs = next)?;
    let signers: Vec<&SigningIdentity> = change.signers.iter().collect();
    let env = signed_config_update(&change.channel, &original, &updated, &signers)?;
    if let Submitted::RefusedAfterLostAnswer { status, info } =
        session.submit(&env, progress).await?
    {
        // Ordered by the attempt whose answer was lost? Then the newest config carries it.
        let (newest, _) = session.newest_config(progress).await?;
        let ordered =
            number(&newest) > based_on && carries(&consenters(&config_of(&newest)?)?, &what);
        if !ordered {
            return Err(AdminError::Refused { status, info });
        }
    }
    progress(Progress::Submitted);
    if !change.wait {
        return Ok(Outcome {
            based_on,
            change: what,
            config_block: None,
        });
    }

    // The change is in the first config block after the tip that carries it (another admin's
    // update may be ordered first).
    let mut found = None;
    let mut bad = None;
    session
        .deliver(specified(tip + 1), specified(u64::MAX), progress, |b| {
            if !ordo_ledger::block::is_config_block(b) {
                return false;
            }
            match config_of(b).and_then(|c| Ok(consenters(&c)?)) {
                Ok(now) if carries(&now, &what) => {
                    found = Some((b.clone(), now));
                    true
                }
                Ok(_) => false,
                Err(e) => {
                    bad = Some(e);
                    true
                }
            }
        })
        .await
        .map_err(|e| match e {
            // Broadcast's SUCCESS means the update reached the leader, not that it was
            // ordered: say what never came.
            AdminError::Timeout { after, .. } => AdminError::Timeout {
                what: "a config block carrying the change (the update was submitted)".into(),
                after,
            },
            e => e,
        })?;
    if let Some(e) = bad {
        return Err(e);
    }
    let (block, now) = found.ok_or_else(|| session.timed_out("the config block"))?;
    let m = number(&block);
    progress(Progress::Ordered { block: m });
    let raw = ordo_ledger::block::consenter_metadata(&block).map_err(|e| AdminError::Block {
        number: m,
        reason: e.to_string(),
    })?;
    let md = BlockMetadata::decode(raw).map_err(|e| AdminError::Block {
        number: m,
        reason: format!("consenter metadata: {e}"),
    })?;
    progress(Progress::Applied {
        consenters: now
            .iter()
            .map(endpoint)
            .zip(md.consenter_ids.iter().copied())
            .collect(),
        next_id: md.next_consenter_id,
    });

    Ok(Outcome {
        based_on,
        change: what,
        config_block: Some(block),
    })
}

/// Polls the participation API of the node a change is about (`admin`) until it shows the
/// outcome: consenter and active after an addition or rotation (an added node gets there once
/// it has joined with the config block and, as a learner, caught up: it shows onboarding until
/// then), no longer a consenter after a removal. Gives up
/// after `timeout`.
pub async fn wait_for_node(
    admin: &Endpoint,
    channel: &str,
    what: &ConsenterChange,
    timeout: Duration,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), AdminError> {
    let deadline = Instant::now() + timeout;
    let done = |state: &Option<(String, String)>| match (what, state) {
        (ConsenterChange::Remove(_), None) => true,
        (ConsenterChange::Remove(_), Some((relation, _))) => relation != "consenter",
        (_, Some((relation, status))) => relation == "consenter" && status == "active",
        (_, None) => false,
    };
    let mut last = None;
    loop {
        let state = tokio::time::timeout_at(deadline, relation(admin, channel))
            .await
            .map_err(|_| AdminError::Timeout {
                what: format!("the participation API of {}", admin.addr),
                after: timeout,
            })??;
        if last.as_ref() != Some(&state) {
            progress(Progress::Node {
                addr: admin.addr.to_string(),
                state: state.clone(),
            });
        }
        if done(&state) {
            return Ok(());
        }
        last = Some(state);
        if Instant::now() + POLL_PAUSE > deadline {
            return Err(AdminError::Timeout {
                what: format!("node {} to show the change", admin.addr),
                after: timeout,
            });
        }
        tokio::time::sleep(POLL_PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn c(n: u8) -> Consenter {
        Consenter {
            host: "h".into(),
            port: u32::from(n),
            client_tls_cert: Bytes::from(vec![n]),
            server_tls_cert: Bytes::from(vec![n]),
        }
    }

    #[test]
    fn a_config_carries_a_change_by_client_certificate() {
        let now = [c(1), c(3)];
        assert!(carries(&now, &ConsenterChange::Add(c(3))));
        assert!(!carries(&now, &ConsenterChange::Add(c(2))));
        assert!(carries(&now, &ConsenterChange::Remove(c(2))));
        assert!(carries(
            &now,
            &ConsenterChange::Rotate {
                old: c(2),
                new: c(3)
            }
        ));
        assert!(!carries(
            &now,
            &ConsenterChange::Rotate {
                old: c(1),
                new: c(3)
            }
        ));
    }

    #[tokio::test]
    async fn a_consenter_is_reachable_when_it_accepts_a_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Bound but not listening, held to the end: a connection to it is refused, and the
        // port cannot be given to anything else meanwhile (a port bound and released could be).
        let dead = tokio::net::TcpSocket::new_v4().unwrap();
        dead.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let closed = dead.local_addr().unwrap().port();
        let at = |port: u16| Consenter {
            host: "127.0.0.1".into(),
            port: u32::from(port),
            ..Default::default()
        };
        let up = reachable(&[at(port), at(closed)], Duration::from_secs(5)).await;
        assert_eq!(up, vec![true, false]);
    }
}
