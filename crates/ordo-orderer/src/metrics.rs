//! The node's Prometheus metrics, with Fabric's names, help texts, labels and buckets (taken from
//! a real Fabric orderer's `/metrics` page, `fixtures/fabric-2.4/operations/`), so that existing
//! dashboards and alerts work unchanged. They live in the node's own registry, served by the
//! operations API when `Metrics.Provider` is `prometheus`.
//!
//! The methods are named after the events the node reports (a block committed, an envelope
//! processed); each updates the metrics Fabric updates for that event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ordo_proto::common::Status;
use ordo_raft::chain::ChainStatus;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// Fabric's `ledger_blockstorage_commit_time` buckets.
const COMMIT_TIME_BUCKETS: &[f64] = &[0.005, 0.01, 0.015, 0.05, 0.1, 1.0, 10.0];

struct Inner {
    registry: Registry,
    broadcast_validate_duration: HistogramVec,
    broadcast_enqueue_duration: HistogramVec,
    broadcast_processed_count: IntCounterVec,
    deliver_streams_opened: IntCounter,
    deliver_streams_closed: IntCounter,
    grpc_comm_conn_opened: IntCounter,
    cluster_egress_queue_length: IntGaugeVec,
    cluster_egress_queue_capacity: IntGaugeVec,
    cluster_egress_stream_count: IntGaugeVec,
    cluster_msg_send_time: HistogramVec,
    cluster_msg_dropped_count: IntCounterVec,
    grpc_comm_conn_closed: IntCounter,
    deliver_requests_received: IntCounterVec,
    deliver_requests_completed: IntCounterVec,
    deliver_blocks_sent: IntCounterVec,
    ledger_blockchain_height: IntGaugeVec,
    ledger_blockstorage_commit_time: HistogramVec,
    blockcutter_block_fill_duration: HistogramVec,
    cluster_size: IntGaugeVec,
    is_leader: IntGaugeVec,
    active_nodes: IntGaugeVec,
    learners: IntGaugeVec,
    is_learner: IntGaugeVec,
    cert_expiry: IntGaugeVec,
    committed_block_number: IntGaugeVec,
    snapshot_block_number: IntGaugeVec,
    catch_up_target: IntGaugeVec,
    blocks_pulled: IntCounterVec,
    leader_changes: IntCounterVec,
    proposal_failures: IntCounterVec,
    normal_proposals_received: IntCounterVec,
    config_proposals_received: IntCounterVec,
    data_persist_duration: HistogramVec,
    participation_status: IntGaugeVec,
    participation_consensus_relation: IntGaugeVec,
    grpc_stream_requests_received: IntCounterVec,
    grpc_stream_requests_completed: IntCounterVec,
    grpc_stream_request_duration: HistogramVec,
    grpc_stream_messages_received: IntCounterVec,
    grpc_stream_messages_sent: IntCounterVec,
    /// Last counter values seen in a chain status, per channel (status counters are totals).
    seen: Mutex<HashMap<String, (u64, u64)>>,
}

/// The node's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let m = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(m.clone()))?;
    Ok(m)
}

fn gauge_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    let m = IntGaugeVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(m.clone()))?;
    Ok(m)
}

fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> prometheus::Result<HistogramVec> {
    let m = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )?;
    r.register(Box::new(m.clone()))?;
    Ok(m)
}

fn status_name(s: Status) -> &'static str {
    s.as_str_name()
}

impl Metrics {
    pub fn new(version: &str) -> prometheus::Result<Metrics> {
        let r = Registry::new();
        let d = prometheus::DEFAULT_BUCKETS;
        let ch = &["channel"];
        let bcast = &["channel", "type", "status"];
        let deliver = &["channel", "filtered", "data_type"];
        let grpc = &["service", "method"];
        let grpc_code = &["service", "method", "code"];
        let version_gauge = IntGaugeVec::new(
            Opts::new("fabric_version", "The active version of Fabric."),
            &["version"],
        )?;
        r.register(Box::new(version_gauge.clone()))?;
        version_gauge.with_label_values(&[version]).set(1);
        let deliver_streams_opened = IntCounter::new(
            "deliver_streams_opened",
            "The number of GRPC streams that have been opened for the deliver service.",
        )?;
        r.register(Box::new(deliver_streams_opened.clone()))?;
        let deliver_streams_closed = IntCounter::new(
            "deliver_streams_closed",
            "The number of GRPC streams that have been closed for the deliver service.",
        )?;
        r.register(Box::new(deliver_streams_closed.clone()))?;
        let grpc_comm_conn_opened = IntCounter::new(
            "grpc_comm_conn_opened",
            "gRPC connections opened. Open minus closed is the active number of connections.",
        )?;
        r.register(Box::new(grpc_comm_conn_opened.clone()))?;
        let grpc_comm_conn_closed = IntCounter::new(
            "grpc_comm_conn_closed",
            "gRPC connections closed. Open minus closed is the active number of connections.",
        )?;
        r.register(Box::new(grpc_comm_conn_closed.clone()))?;
        let inner = Inner {
            broadcast_validate_duration: histogram_vec(
                &r,
                "broadcast_validate_duration",
                "The time to validate a transaction in seconds.",
                bcast,
                d,
            )?,
            broadcast_enqueue_duration: histogram_vec(
                &r,
                "broadcast_enqueue_duration",
                "The time to enqueue a transaction in seconds.",
                bcast,
                d,
            )?,
            broadcast_processed_count: counter_vec(
                &r,
                "broadcast_processed_count",
                "The number of transactions processed.",
                bcast,
            )?,
            deliver_streams_opened,
            deliver_streams_closed,
            grpc_comm_conn_opened,
            grpc_comm_conn_closed,
            deliver_requests_received: counter_vec(
                &r,
                "deliver_requests_received",
                "The number of deliver requests that have been received.",
                deliver,
            )?,
            deliver_requests_completed: counter_vec(
                &r,
                "deliver_requests_completed",
                "The number of deliver requests that have been completed.",
                &["channel", "filtered", "data_type", "success"],
            )?,
            deliver_blocks_sent: counter_vec(
                &r,
                "deliver_blocks_sent",
                "The number of blocks sent by the deliver service.",
                deliver,
            )?,
            ledger_blockchain_height: gauge_vec(
                &r,
                "ledger_blockchain_height",
                "Height of the chain in blocks.",
                ch,
            )?,
            ledger_blockstorage_commit_time: histogram_vec(
                &r,
                "ledger_blockstorage_commit_time",
                "Time taken in seconds for committing the block to storage.",
                ch,
                COMMIT_TIME_BUCKETS,
            )?,
            blockcutter_block_fill_duration: histogram_vec(
                &r,
                "blockcutter_block_fill_duration",
                "The time from first transaction enqueing to the block being cut in seconds.",
                ch,
                d,
            )?,
            cluster_size: gauge_vec(
                &r,
                "consensus_etcdraft_cluster_size",
                "Number of nodes in this channel.",
                ch,
            )?,
            is_leader: gauge_vec(
                &r,
                "consensus_etcdraft_is_leader",
                "The leadership status of the current node: 1 if it is the leader else 0.",
                ch,
            )?,
            active_nodes: gauge_vec(
                &r,
                "consensus_etcdraft_active_nodes",
                "Number of active nodes in this channel.",
                ch,
            )?,
            // Not Fabric's (etcdraft has no learners): consenters that are catching up before
            // they count in the quorum.
            learners: gauge_vec(
                &r,
                "ordo_raft_learners",
                "The number of consenters in the Raft group as learners: added by a config update, catching up, not yet counted in the quorum.",
                ch,
            )?,
            is_learner: gauge_vec(
                &r,
                "ordo_raft_is_learner",
                "1 while this node is a learner of the channel's Raft group (a consenter still catching up, not yet counted in the quorum), 0 otherwise.",
                ch,
            )?,
            cert_expiry: gauge_vec(
                &r,
                "ordo_cert_expiry_seconds",
                "Seconds until a certificate this node uses (cert: general_tls, cluster_server, cluster_client, admin_tls, enrollment) or pins (cert: consenter, with its channel and endpoint) expires; negative once expired.",
                &["cert", "channel", "endpoint"],
            )?,
            committed_block_number: gauge_vec(
                &r,
                "consensus_etcdraft_committed_block_number",
                "The block number of the latest block committed.",
                ch,
            )?,
            snapshot_block_number: gauge_vec(
                &r,
                "consensus_etcdraft_snapshot_block_number",
                "The block number of the latest snapshot.",
                ch,
            )?,
            // Not Fabric's (it reports catch-up only in its log): how far a snapshot catch-up
            // has to go and how far it got.
            catch_up_target: gauge_vec(
                &r,
                "ordo_catchup_target_block_number",
                "The block number of the latest snapshot this node had to catch up to by pulling blocks.",
                ch,
            )?,
            blocks_pulled: counter_vec(
                &r,
                "ordo_catchup_blocks_pulled",
                "The number of blocks pulled from other orderers and written while catching up.",
                ch,
            )?,
            leader_changes: counter_vec(
                &r,
                "consensus_etcdraft_leader_changes",
                "The number of leader changes since process start.",
                ch,
            )?,
            proposal_failures: counter_vec(
                &r,
                "consensus_etcdraft_proposal_failures",
                "The number of proposal failures.",
                ch,
            )?,
            normal_proposals_received: counter_vec(
                &r,
                "consensus_etcdraft_normal_proposals_received",
                "The total number of proposals received for normal type transactions.",
                ch,
            )?,
            config_proposals_received: counter_vec(
                &r,
                "consensus_etcdraft_config_proposals_received",
                "The total number of proposals received for config type transactions.",
                ch,
            )?,
            cluster_egress_queue_length: gauge_vec(
                &r,
                "cluster_comm_egress_queue_length",
                "Length of the egress queue.",
                &["host", "msg_type", "channel"],
            )?,
            cluster_egress_queue_capacity: gauge_vec(
                &r,
                "cluster_comm_egress_queue_capacity",
                "Capacity of the egress queue.",
                &["host", "msg_type", "channel"],
            )?,
            cluster_egress_stream_count: gauge_vec(
                &r,
                "cluster_comm_egress_stream_count",
                "Count of streams to other nodes.",
                ch,
            )?,
            cluster_msg_send_time: histogram_vec(
                &r,
                "cluster_comm_msg_send_time",
                "The time it takes to send a message in seconds.",
                &["host", "channel"],
                d,
            )?,
            cluster_msg_dropped_count: counter_vec(
                &r,
                "cluster_comm_msg_dropped_count",
                "Count of messages dropped.",
                &["host", "channel"],
            )?,
            data_persist_duration: histogram_vec(
                &r,
                "consensus_etcdraft_data_persist_duration",
                "The time taken for etcd/raft data to be persisted in storage (in seconds).",
                ch,
                d,
            )?,
            participation_status: gauge_vec(
                &r,
                "participation_status",
                "The channel participation status of the node: 0 if inactive, 1 if active, 2 if onboarding, 3 if failed.",
                ch,
            )?,
            participation_consensus_relation: gauge_vec(
                &r,
                "participation_consensus_relation",
                "The channel participation consensus relation of the node: 0 if other, 1 if consenter, 2 if follower, 3 if config-tracker.",
                ch,
            )?,
            grpc_stream_requests_received: counter_vec(
                &r,
                "grpc_server_stream_requests_received",
                "The number of stream requests received.",
                grpc,
            )?,
            grpc_stream_requests_completed: counter_vec(
                &r,
                "grpc_server_stream_requests_completed",
                "The number of stream requests completed.",
                grpc_code,
            )?,
            grpc_stream_request_duration: histogram_vec(
                &r,
                "grpc_server_stream_request_duration",
                "The time to complete a stream request.",
                grpc_code,
                d,
            )?,
            grpc_stream_messages_received: counter_vec(
                &r,
                "grpc_server_stream_messages_received",
                "The number of stream messages received.",
                grpc,
            )?,
            grpc_stream_messages_sent: counter_vec(
                &r,
                "grpc_server_stream_messages_sent",
                "The number of stream messages sent.",
                grpc,
            )?,
            seen: Mutex::new(HashMap::new()),
            registry: r,
        };
        Ok(Metrics(Arc::new(inner)))
    }

    pub fn registry(&self) -> Registry {
        self.0.registry.clone()
    }

    /// A Broadcast envelope was validated (`kind` is its header type name).
    pub fn broadcast_validated(&self, channel: &str, kind: &str, d: Duration) {
        self.0
            .broadcast_validate_duration
            .with_label_values(&[channel, kind, "SUCCESS"])
            .observe(d.as_secs_f64());
    }

    pub fn broadcast_enqueued(&self, channel: &str, kind: &str, d: Duration) {
        self.0
            .broadcast_enqueue_duration
            .with_label_values(&[channel, kind, "SUCCESS"])
            .observe(d.as_secs_f64());
    }

    pub fn broadcast_processed(&self, channel: &str, kind: &str, status: Status) {
        self.0
            .broadcast_processed_count
            .with_label_values(&[channel, kind, status_name(status)])
            .inc();
    }

    pub fn deliver_stream(&self, opened: bool) {
        if opened {
            self.0.deliver_streams_opened.inc();
        } else {
            self.0.deliver_streams_closed.inc();
        }
    }

    pub fn deliver_request(&self, channel: &str) {
        self.0
            .deliver_requests_received
            .with_label_values(&[channel, "false", "block"])
            .inc();
    }

    pub fn deliver_completed(&self, channel: &str, success: bool) {
        let s = if success { "true" } else { "false" };
        self.0
            .deliver_requests_completed
            .with_label_values(&[channel, "false", "block", s])
            .inc();
    }

    pub fn deliver_block_sent(&self, channel: &str) {
        self.0
            .deliver_blocks_sent
            .with_label_values(&[channel, "false", "block"])
            .inc();
    }

    /// A connection to a gRPC listener was accepted (and its TLS handshake done), or closed.
    pub fn grpc_conn(&self, opened: bool) {
        if opened {
            self.0.grpc_comm_conn_opened.inc();
        } else {
            self.0.grpc_comm_conn_closed.inc();
        }
    }

    /// A gRPC stream of `orderer.AtomicBroadcast/<method>` started.
    pub fn grpc_stream_started(&self, method: &str) {
        self.0
            .grpc_stream_requests_received
            .with_label_values(&["orderer_AtomicBroadcast", method])
            .inc();
    }

    pub fn grpc_stream_finished(&self, method: &str, code: &str, d: Duration) {
        let labels = ["orderer_AtomicBroadcast", method, code];
        self.0
            .grpc_stream_requests_completed
            .with_label_values(&labels)
            .inc();
        self.0
            .grpc_stream_request_duration
            .with_label_values(&labels)
            .observe(d.as_secs_f64());
    }

    pub fn grpc_message(&self, method: &str, received: bool) {
        let m = if received {
            &self.0.grpc_stream_messages_received
        } else {
            &self.0.grpc_stream_messages_sent
        };
        m.with_label_values(&["orderer_AtomicBroadcast", method])
            .inc();
    }

    /// See `ordo_cert_expiry_seconds`.
    pub fn cert_expiry(&self, labels: &[&str; 3], seconds: i64) {
        self.0.cert_expiry.with_label_values(labels).set(seconds);
    }

    /// Drops a certificate no longer used or pinned.
    pub fn forget_cert_expiry(&self, labels: &[&str; 3]) {
        let _ = self.0.cert_expiry.remove_label_values(labels);
    }

    pub fn ledger_height(&self, channel: &str, height: u64) {
        self.0
            .ledger_blockchain_height
            .with_label_values(&[channel])
            .set(height as i64);
    }

    /// A block was appended to the ledger.
    pub fn block_committed(&self, channel: &str, number: u64, d: Duration) {
        self.0
            .ledger_blockstorage_commit_time
            .with_label_values(&[channel])
            .observe(d.as_secs_f64());
        self.ledger_height(channel, number + 1);
        self.0
            .committed_block_number
            .with_label_values(&[channel])
            .set(number as i64);
    }

    pub fn block_fill(&self, channel: &str, d: Duration) {
        self.0
            .blockcutter_block_fill_duration
            .with_label_values(&[channel])
            .observe(d.as_secs_f64());
    }

    /// The chain's current Raft state.
    pub fn raft_status(&self, channel: &str, s: &ChainStatus) {
        let i = &self.0;
        i.cluster_size
            .with_label_values(&[channel])
            .set(s.cluster_size as i64);
        i.is_leader
            .with_label_values(&[channel])
            .set(i64::from(s.is_leader));
        i.active_nodes
            .with_label_values(&[channel])
            .set(s.active.len() as i64);
        i.learners
            .with_label_values(&[channel])
            .set(s.learners.len() as i64);
        i.is_learner
            .with_label_values(&[channel])
            .set(i64::from(s.learners.contains(&s.id)));
        let mut seen = i.seen.lock().unwrap_or_else(|p| p.into_inner());
        let last = seen.entry(channel.to_string()).or_insert((0, 0));
        if s.leader_changes > last.0 {
            i.leader_changes
                .with_label_values(&[channel])
                .inc_by(s.leader_changes - last.0);
        }
        if s.proposal_failures > last.1 {
            i.proposal_failures
                .with_label_values(&[channel])
                .inc_by(s.proposal_failures - last.1);
        }
        *last = (s.leader_changes, s.proposal_failures);
    }

    pub fn normal_proposal(&self, channel: &str) {
        self.0
            .normal_proposals_received
            .with_label_values(&[channel])
            .inc();
    }

    pub fn config_proposal(&self, channel: &str) {
        self.0
            .config_proposals_received
            .with_label_values(&[channel])
            .inc();
    }

    pub fn data_persist(&self, channel: &str, d: Duration) {
        self.0
            .data_persist_duration
            .with_label_values(&[channel])
            .observe(d.as_secs_f64());
    }

    pub fn snapshot_block(&self, channel: &str, number: u64) {
        self.0
            .snapshot_block_number
            .with_label_values(&[channel])
            .set(number as i64);
    }

    /// A catch-up to block `target` started (or was extended).
    pub fn catch_up_target(&self, channel: &str, target: u64) {
        self.0
            .catch_up_target
            .with_label_values(&[channel])
            .set(target as i64);
    }

    /// A pulled block was written.
    pub fn block_pulled(&self, channel: &str) {
        self.0.blocks_pulled.with_label_values(&[channel]).inc();
    }

    /// Participation gauges: status (0 inactive, 1 active, 2 onboarding, 3 failed) and relation
    /// (0 other, 1 consenter, 2 follower, 3 config-tracker).
    pub fn participation(&self, channel: &str, status: i64, relation: i64) {
        self.0
            .participation_status
            .with_label_values(&[channel])
            .set(status);
        self.0
            .participation_consensus_relation
            .with_label_values(&[channel])
            .set(relation);
    }

    /// Forgets a removed channel: its series disappear from `/metrics`.
    pub fn channel_removed(&self, channel: &str) {
        let i = &self.0;
        for g in [
            &i.ledger_blockchain_height,
            &i.cluster_size,
            &i.is_leader,
            &i.active_nodes,
            &i.learners,
            &i.is_learner,
            &i.committed_block_number,
            &i.snapshot_block_number,
            &i.catch_up_target,
            &i.participation_status,
            &i.participation_consensus_relation,
        ] {
            let _ = g.remove_label_values(&[channel]);
        }
        for c in [
            &i.leader_changes,
            &i.proposal_failures,
            &i.blocks_pulled,
            &i.normal_proposals_received,
            &i.config_proposals_received,
        ] {
            let _ = c.remove_label_values(&[channel]);
        }
        for h in [
            &i.ledger_blockstorage_commit_time,
            &i.blockcutter_block_fill_duration,
            &i.data_persist_duration,
        ] {
            let _ = h.remove_label_values(&[channel]);
        }
        i.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(channel);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let encoder = prometheus::TextEncoder::new();
        encoder
            .encode_to_string(&self.0.registry.gather())
            .unwrap_or_default()
    }
}

/// The cluster transport's reports, as Fabric's `cluster_comm_*` metrics.
impl ordo_cluster::comm::CommEvents for Metrics {
    fn queued(&self, channel: &str, endpoint: &str, kind: &'static str, len: usize, cap: usize) {
        let labels = [endpoint, kind, channel];
        self.0
            .cluster_egress_queue_length
            .with_label_values(&labels)
            .set(len as i64);
        self.0
            .cluster_egress_queue_capacity
            .with_label_values(&labels)
            .set(cap as i64);
    }

    fn dropped(&self, channel: &str, endpoint: &str) {
        self.0
            .cluster_msg_dropped_count
            .with_label_values(&[endpoint, channel])
            .inc();
    }

    fn sent(&self, channel: &str, endpoint: &str, d: Duration) {
        self.0
            .cluster_msg_send_time
            .with_label_values(&[endpoint, channel])
            .observe(d.as_secs_f64());
    }

    fn streams(&self, channel: &str, delta: i64) {
        self.0
            .cluster_egress_stream_count
            .with_label_values(&[channel])
            .add(delta);
    }
}
