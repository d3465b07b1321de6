//! An orderer node, assembled from its local configuration (Fabric's `orderer/common/server`
//! `Main`): the local MSP signing identity, the channels of the registrar, the gRPC listener
//! (AtomicBroadcast, TLS optional), the admin listener (channel participation) and the operations
//! listener (health, metrics, log spec, version).
//!
//! [`Node::start`] reads as its steps: the identity, `tls` (what the listeners and the cluster
//! transport present and trust), the registrar and its channels, `roots` (trust kept in step
//! with the channels' CAs), `listeners` (each bound before `start` returns, so the addresses it
//! reports — port 0 picks a free one — are ready to be used) and `reload` (certificates
//! reloaded when their files change).

mod listeners;
mod reload;
mod roots;
mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use ordo_msp::SigningIdentity;
use tokio::sync::watch;

use crate::channel::NodeServices;
use crate::localconfig::LocalConfig;
use crate::metrics::Metrics;
use crate::msgprocessor::FilterSettings;
use crate::registrar::{Dirs, Registrar};
use tls::{NodeTls, ns};

/// Ordo's version, reported by `/version` and the `fabric_version` metric.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long open connections may take to finish when the node stops.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
/// The longest a stopping node waits for the channels it leads to have a new leader.
pub const HAND_OFF_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("local MSP: {0}")]
    Msp(#[from] ordo_msp::MspError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("reading {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(#[from] ordo_cluster::tls::TlsError),
    #[error("the cluster transport: {0}")]
    Cluster(#[from] ordo_cluster::comm::SendError),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("channels: {0}")]
    Registrar(#[from] crate::registrar::RegistrarError),
    #[error("operations: {0}")]
    Operations(#[from] crate::operations::OperationsError),
}

/// Where the node listens.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub general: SocketAddr,
    /// The separate cluster listener, when there is one.
    pub cluster: Option<SocketAddr>,
    pub admin: SocketAddr,
    pub operations: SocketAddr,
}

/// A running node.
pub struct Node {
    pub addresses: Addresses,
    pub registrar: Arc<Registrar>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The node's background tasks (listeners, watchers) and the signal that stops them.
struct Tasks {
    stop: watch::Receiver<bool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

impl Tasks {
    /// Completes once the node is told to stop.
    fn stop_signal(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.clone();
        async move {
            while !*rx.borrow_and_update() {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        }
    }

    fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.handles.push(tokio::spawn(task));
    }
}

impl Node {
    /// Starts a node from its configuration, in Fabric's order: the local identity, TLS, the
    /// channels, then the listeners (each bound before this returns).
    pub async fn start(cfg: LocalConfig) -> Result<Node, NodeError> {
        let g = &cfg.general;
        let local = ordo_msp::local::load_signing_identity(&g.local_msp_dir, &g.local_msp_id)?;
        let signer = Arc::new(local.signer);
        let metrics = Metrics::new(VERSION)?;
        let tls = NodeTls::load(&cfg, &metrics)?;

        // A channel's config change only wakes the task that recomputes the trusted roots.
        let roots_changed = Arc::new(tokio::sync::Notify::new());
        let services = node_services(&cfg, &signer, &metrics, &tls, roots_changed.clone());
        let dirs = Dirs {
            ledger: cfg.ledger_location.clone(),
            wal: cfg.wal_dir.clone(),
            snap: cfg.snap_dir.clone(),
        };
        let registrar = Registrar::open(dirs, tls.server_cert.as_deref(), services)?;

        let (shutdown, stop) = watch::channel(false);
        let mut tasks = Tasks {
            stop,
            handles: Vec::new(),
        };
        tasks.spawn(roots::track(
            registrar.clone(),
            &tls,
            roots_changed,
            tasks.stop.clone(),
        ));
        let general =
            listeners::serve_general(&cfg, &registrar, &signer, &metrics, &tls, &mut tasks).await?;
        let cluster = listeners::serve_cluster(&cfg, &registrar, &tls, &mut tasks).await?;
        let admin = listeners::serve_admin(&cfg, &registrar, &tls, &mut tasks).await?;
        let watch = crate::certs::CertWatch::new(
            reload::reloadables(&cfg, &tls, registrar.self_key()),
            Some(signer.cert_pem().to_vec()),
            registrar.clone(),
            metrics.clone(),
        );
        tasks.spawn(watch.run(tasks.stop.clone()));
        let operations =
            listeners::serve_operations(&cfg, &registrar, &metrics, &mut tasks).await?;

        Ok(Node {
            addresses: Addresses {
                general,
                cluster,
                admin,
                operations,
            },
            registrar,
            shutdown,
            tasks: tasks.handles,
        })
    }

    /// Runs until `signal` completes, then stops the listeners and every channel.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        self.stop().await;
    }

    /// Hands the leadership of the channels this node leads over (at most [`HAND_OFF_LIMIT`]),
    /// while the listeners still serve: Broadcast streams go on, forwarding to the new leaders.
    /// Then stops the listeners (open streams get [`SHUTDOWN_GRACE`] to finish), then every
    /// channel.
    pub async fn stop(self) {
        self.registrar.hand_off_leadership(HAND_OFF_LIMIT).await;
        let _ = self.shutdown.send(true);
        for mut t in self.tasks {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut t).await.is_err() {
                t.abort();
            }
        }
        self.registrar.stop_all().await;
    }
}

/// What every channel of the node shares: its identity, filters, metrics, the cluster
/// transport and the settings of catch-up, eviction and membership changes.
fn node_services(
    cfg: &LocalConfig,
    signer: &Arc<SigningIdentity>,
    metrics: &Metrics,
    tls: &NodeTls,
    roots_changed: Arc<tokio::sync::Notify>,
) -> NodeServices {
    let g = &cfg.general;
    NodeServices {
        signer: signer.clone(),
        filters: FilterSettings {
            no_expiration_checks: g.no_expiration_checks,
        },
        metrics: metrics.clone(),
        on_config: Arc::new(move || roots_changed.notify_one()),
        comm: tls.comm.clone(),
        replication: ordo_cluster::puller::Replication {
            buffer_bytes: usize::try_from(g.cluster.replication_buffer_size).unwrap_or(usize::MAX),
            pull_timeout: ns(g.cluster.replication_pull_timeout_ns),
            retry_timeout: ns(g.cluster.replication_retry_timeout_ns),
        },
        switch: None,
        self_key: Default::default(),
        eviction_suspicion: ns(cfg.eviction_suspicion_ns),
        fabric_block_cutting: cfg.fabric_block_cutting,
        fabric_membership_changes: cfg.fabric_membership_changes,
        preferred_leaders: cfg.preferred_leaders.clone(),
    }
}
