//! An orderer node, assembled from its local configuration (Fabric's `orderer/common/server`
//! `Main`): the local MSP signing identity, the channels of the registrar, the gRPC listener
//! (AtomicBroadcast, TLS optional), the admin listener (channel participation) and the operations
//! listener (health, metrics, log spec, version).
//!
//! [`Node::start`] binds every listener before returning, so the addresses it reports (port 0
//! picks a free one) are ready to be used.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use ordo_proto::orderer::atomic_broadcast_server::AtomicBroadcastServer;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::channel::NodeServices;
use crate::grpc::AtomicBroadcastService;
use crate::localconfig::LocalConfig;
use crate::metrics::Metrics;
use crate::msgprocessor::FilterSettings;
use crate::registrar::{Dirs, Registrar};

/// Ordo's version, reported by `/version` and the `fabric_version` metric.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How long open connections may take to finish when the node stops.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("local MSP: {0}")]
    Msp(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("channels: {0}")]
    Registrar(String),
    #[error("{0}")]
    Other(String),
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

async fn bind(addr: &str) -> Result<TcpListener, NodeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Listen {
            addr: addr.to_string(),
            source,
        })
}

fn read(path: &Path) -> Result<Vec<u8>, NodeError> {
    std::fs::read(path).map_err(|e| NodeError::Tls(format!("{}: {e}", path.display())))
}

async fn wait_for(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

impl Node {
    /// Starts a node from its configuration.
    pub async fn start(cfg: LocalConfig) -> Result<Node, NodeError> {
        let g = &cfg.general;
        let local = ordo_msp::local::load_signing_identity(&g.local_msp_dir, &g.local_msp_id)
            .map_err(|e| NodeError::Msp(e.to_string()))?;
        let signer = Arc::new(local.signer);
        let metrics = Metrics::new(VERSION).map_err(|e| NodeError::Other(e.to_string()))?;

        // The certificate that identifies this node among consenters: the cluster server
        // certificate if the cluster has its own, else the general TLS certificate.
        let server_cert_path = if !g.cluster.server_certificate.as_os_str().is_empty() {
            Some(g.cluster.server_certificate.clone())
        } else if g.tls.enabled {
            Some(g.tls.certificate.clone())
        } else {
            None
        };
        let server_cert = server_cert_path.as_deref().map(read).transpose()?;

        let tls_err = |e: &dyn std::fmt::Display| NodeError::Tls(e.to_string());
        let shared_cluster = g.tls.enabled && !g.cluster.separate_listener();
        let cluster_roots = crate::tls::read_certs(&g.cluster.root_cas).map_err(|e| tls_err(&e))?;
        let general_tls = if !g.tls.enabled {
            None
        } else if shared_cluster && !g.tls.client_auth_required {
            // Consenters sharing this listener authenticate with their client certificate, so
            // one is verified when given (against ClientRootCAs, Cluster.RootCAs and the
            // channels' CAs) though clients need not send one.
            let mut roots =
                crate::tls::read_certs(&g.tls.client_root_cas).map_err(|e| tls_err(&e))?;
            roots.extend(cluster_roots.iter().cloned());
            Some(
                crate::tls::TlsServer::new(
                    &read(&g.tls.certificate)?,
                    &read(&g.tls.private_key)?,
                    roots,
                    crate::tls::ClientAuth::Optional,
                    std::time::Duration::from_nanos(g.tls.handshake_time_shift_ns.max(0) as u64),
                    crate::tls::Alpn::Grpc,
                )
                .map_err(|e| tls_err(&e))?,
            )
        } else {
            Some(crate::tls::from_local(&g.tls, crate::tls::Alpn::Grpc).map_err(|e| tls_err(&e))?)
        };
        // The separate cluster listener always requires client certificates (Fabric's
        // configureClusterListener); until a channel brings its orderer CAs it may have none
        // to check them against, and then it lets no consenter in.
        let cluster_tls = if g.tls.enabled && g.cluster.separate_listener() {
            let auth = if cluster_roots.is_empty() {
                crate::tls::ClientAuth::Optional
            } else {
                crate::tls::ClientAuth::Required
            };
            Some(
                crate::tls::TlsServer::new(
                    &read(&g.cluster.server_certificate)?,
                    &read(&g.cluster.server_private_key)?,
                    cluster_roots.clone(),
                    auth,
                    std::time::Duration::from_nanos(
                        g.cluster.handshake_time_shift_ns.max(0) as u64,
                    ),
                    crate::tls::Alpn::Grpc,
                )
                .map_err(|e| tls_err(&e))?,
            )
        } else {
            None
        };
        // The outbound cluster transport presents Cluster.ClientCertificate (default: the
        // general TLS certificate).
        let ns = |v: i64| std::time::Duration::from_nanos(v.max(0) as u64);
        let or_general = |p: &std::path::Path, general: &std::path::Path| {
            if p.as_os_str().is_empty() {
                general.to_path_buf()
            } else {
                p.to_path_buf()
            }
        };
        let comm = if g.tls.enabled {
            let cert = or_general(&g.cluster.client_certificate, &g.tls.certificate);
            let key = or_general(&g.cluster.client_private_key, &g.tls.private_key);
            Some(
                ordo_cluster::comm::Comm::new(
                    ordo_cluster::comm::CommConfig {
                        client_cert_pem: read(&cert)?,
                        client_key_pem: read(&key)?,
                        send_buffer_size: g.cluster.send_buffer_size as usize,
                        dial_timeout: ns(g.cluster.dial_timeout_ns),
                        rpc_timeout: ns(g.cluster.rpc_timeout_ns),
                        // Fabric: Cluster.TLSHandshakeTimeShift with a separate cluster
                        // listener, General.TLS.TLSHandshakeTimeShift on the shared one.
                        handshake_time_shift: ns(if g.cluster.separate_listener() {
                            g.cluster.handshake_time_shift_ns
                        } else {
                            g.tls.handshake_time_shift_ns
                        }),
                    },
                    Some(Arc::new(metrics.clone())),
                )
                .map_err(|e| tls_err(&e))?,
            )
        } else {
            None
        };

        let filters = FilterSettings {
            no_expiration_checks: g.no_expiration_checks,
        };
        // Config changes only wake the task that recomputes the trusted client roots: the
        // channel's driver must not wait on the TLS layer.
        let roots_changed = Arc::new(tokio::sync::Notify::new());
        let on_config: Arc<dyn Fn() + Send + Sync> = {
            let n = roots_changed.clone();
            Arc::new(move || n.notify_one())
        };
        let services = NodeServices {
            signer: signer.clone(),
            filters,
            metrics: metrics.clone(),
            on_config,
            comm: comm.clone(),
            replication: ordo_cluster::puller::Replication {
                buffer_bytes: usize::try_from(g.cluster.replication_buffer_size)
                    .unwrap_or(usize::MAX),
                pull_timeout: ns(g.cluster.replication_pull_timeout_ns),
                retry_timeout: ns(g.cluster.replication_retry_timeout_ns),
            },
            switch: None,
            self_key: Default::default(),
            eviction_suspicion: ns(cfg.eviction_suspicion_ns),
            fabric_block_cutting: cfg.fabric_block_cutting,
            fabric_membership_changes: cfg.fabric_membership_changes,
        };
        let dirs = Dirs {
            ledger: cfg.ledger_location.clone(),
            wal: cfg.wal_dir.clone(),
            snap: cfg.snap_dir.clone(),
        };
        let registrar = Registrar::open(dirs, server_cert.as_deref(), services)
            .map_err(|e| NodeError::Registrar(e.to_string()))?;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();

        // Fabric's updateTrustedRoots and updateClusterDialer: the listeners trust their
        // configured client roots plus the channels' TLS CAs (every organization's on the
        // general listener, the orderer organizations' on the cluster listener), and the
        // cluster transport trusts Cluster.RootCAs plus the orderer organizations' CAs.
        {
            let registrar = registrar.clone();
            let general_tls = general_tls.clone();
            let cluster_tls = cluster_tls.clone();
            let comm = comm.clone();
            let static_cluster: Vec<Vec<u8>> = cluster_roots.iter().map(|c| c.to_vec()).collect();
            let mut stop = shutdown_rx.clone();
            roots_changed.notify_one();
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = roots_changed.notified() => {}
                        _ = stop.changed() => return,
                    }
                    let configs: Vec<_> = registrar.channels().iter().map(|c| c.config()).collect();
                    let all: Vec<_> = configs.iter().flat_map(|c| c.tls_client_cas()).collect();
                    let orderer: Vec<_> =
                        configs.iter().flat_map(|c| c.orderer_tls_cas()).collect();
                    let orderer = crate::tls::pem_to_der(&orderer);
                    let report = |r: Result<(), String>| {
                        if let Err(e) = r {
                            tracing::error!(error = %e, "cannot update the trusted TLS roots");
                        }
                    };
                    if let Some(t) = &general_tls {
                        report(
                            t.set_client_roots(crate::tls::pem_to_der(&all))
                                .map_err(|e| e.0),
                        );
                    }
                    if let Some(t) = &cluster_tls {
                        report(t.set_client_roots(orderer.clone()).map_err(|e| e.0));
                    }
                    if let Some(c) = &comm {
                        let mut roots = static_cluster.clone();
                        roots.extend(orderer);
                        report(c.set_roots(roots).map_err(|e| e.to_string()));
                    }
                }
            }));
        }

        // gRPC.
        let general = bind(&format!("{}:{}", g.listen_address, g.listen_port)).await?;
        let general_addr = general
            .local_addr()
            .map_err(|e| NodeError::Other(e.to_string()))?;
        let svc = AtomicBroadcastService {
            registrar: registrar.clone(),
            signer: signer.clone(),
            filters,
            time_window_ns: g.time_window_ns,
            mutual_tls: g.tls.enabled && g.tls.client_auth_required,
            metrics: metrics.clone(),
            comm: comm.clone(),
            ack_after_commit: cfg.ack_after_commit_timeout_ns.map(ns),
        };
        let server = AtomicBroadcastServer::new(svc)
            .max_decoding_message_size(g.max_recv_msg_size as usize)
            .max_encoding_message_size(g.max_send_msg_size as usize);
        let cluster_service = ordo_proto::orderer::cluster_server::ClusterServer::new(
            ordo_cluster::service::ClusterService::new(Arc::new(crate::cluster::ClusterHandler {
                registrar: registrar.clone(),
            })),
        )
        .max_decoding_message_size(g.max_recv_msg_size as usize)
        .max_encoding_message_size(g.max_send_msg_size as usize);
        let router = tonic::transport::Server::builder()
            .add_service(server)
            .add_optional_service(shared_cluster.then(|| cluster_service.clone()));
        let stop = wait_for(shutdown_rx.clone());
        let conn_metrics = metrics.clone();
        let hook: crate::tls::ConnHook = Arc::new(move |opened| conn_metrics.grpc_conn(opened));
        let incoming = crate::tls::incoming(general, general_tls.clone(), Some(hook));
        tasks.push(tokio::spawn(async move {
            if let Err(e) = router.serve_with_incoming_shutdown(incoming, stop).await {
                tracing::error!(error = %e, "gRPC server stopped");
            }
        }));

        // The separate cluster listener.
        let cluster_addr = if let Some(tls) = cluster_tls.clone() {
            let addr = format!("{}:{}", g.cluster.listen_address, g.cluster.listen_port);
            let listener = bind(&addr).await?;
            let local = listener
                .local_addr()
                .map_err(|e| NodeError::Other(e.to_string()))?;
            let router = tonic::transport::Server::builder().add_service(cluster_service);
            let stop = wait_for(shutdown_rx.clone());
            let incoming = crate::tls::incoming(listener, Some(tls), None);
            tasks.push(tokio::spawn(async move {
                if let Err(e) = router.serve_with_incoming_shutdown(incoming, stop).await {
                    tracing::error!(error = %e, "cluster server stopped");
                }
            }));
            Some(local)
        } else {
            None
        };

        // Admin: channel participation.
        let admin = bind(&cfg.admin.listen_address).await?;
        let admin_addr = admin
            .local_addr()
            .map_err(|e| NodeError::Other(e.to_string()))?;
        let admin_tls = if cfg.admin.tls.enabled {
            Some(
                crate::tls::from_local(&cfg.admin.tls, crate::tls::Alpn::Http)
                    .map_err(|e| NodeError::Tls(e.to_string()))?,
            )
        } else {
            None
        };
        let participation = crate::participation::router(
            Arc::new(crate::participation_backend::Backend::new(
                registrar.clone(),
            )),
            crate::participation::Settings {
                enabled: cfg.participation_enabled,
                max_request_body_size: u64::from(cfg.participation_max_request_body_size),
                secure: cfg.admin.tls.enabled,
            },
        );
        // Certificates: reloaded when their files change, watched for expiry.
        {
            let mut reloadables = Vec::new();
            let self_key = registrar.self_key().clone();
            // The server certificate by which the node finds itself among consenters (see
            // `server_cert_path` above) moves the self key along with it.
            let server = |what: &'static str,
                          tls: &crate::tls::TlsServer,
                          cert: &std::path::Path,
                          key: &std::path::Path,
                          is_self: bool| {
                let (tls, self_key) = (tls.clone(), self_key.clone());
                crate::certs::Reloadable {
                    what,
                    cert: cert.to_path_buf(),
                    key: key.to_path_buf(),
                    apply: Box::new(move |c, k| {
                        tls.set_certificate(c, k).map_err(|e| e.0)?;
                        if is_self && let Some(point) = ordo_config::channel::cert_key(c) {
                            self_key.set(point);
                        }
                        Ok(())
                    }),
                }
            };
            if let Some(t) = &general_tls {
                let is_self = g.cluster.server_certificate.as_os_str().is_empty();
                reloadables.push(server(
                    "general_tls",
                    t,
                    &g.tls.certificate,
                    &g.tls.private_key,
                    is_self,
                ));
            }
            if let Some(t) = &cluster_tls {
                reloadables.push(server(
                    "cluster_server",
                    t,
                    &g.cluster.server_certificate,
                    &g.cluster.server_private_key,
                    true,
                ));
            }
            if let Some(t) = &admin_tls {
                reloadables.push(server(
                    "admin_tls",
                    t,
                    &cfg.admin.tls.certificate,
                    &cfg.admin.tls.private_key,
                    false,
                ));
            }
            if let Some(c) = &comm {
                let c = c.clone();
                reloadables.push(crate::certs::Reloadable {
                    what: "cluster_client",
                    cert: or_general(&g.cluster.client_certificate, &g.tls.certificate),
                    key: or_general(&g.cluster.client_private_key, &g.tls.private_key),
                    apply: Box::new(move |cert, key| {
                        c.set_client_certificate(cert, key)
                            .map_err(|e| e.to_string())
                    }),
                });
            }
            let watch = crate::certs::CertWatch::new(
                reloadables,
                Some(signer.cert_pem().to_vec()),
                registrar.clone(),
                metrics.clone(),
            );
            tasks.push(tokio::spawn(watch.run(shutdown_rx.clone())));
        }

        let stop = wait_for(shutdown_rx.clone());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = crate::http::serve(admin, admin_tls, participation, stop).await {
                tracing::error!(error = %e, "admin server stopped");
            }
        }));

        // Operations.
        let ops = crate::operations::Operations::start(
            &cfg.operations,
            crate::operations::Options {
                registry: (cfg.metrics_provider == "prometheus").then(|| metrics.registry()),
                version: VERSION.to_string(),
                health: Arc::new(crate::health::NodeHealth::new(registrar.clone())),
            },
            wait_for(shutdown_rx.clone()),
        )
        .await
        .map_err(|e| NodeError::Other(e.to_string()))?;
        let operations_addr = ops.local_addr();
        tasks.push(ops.into_task());

        Ok(Node {
            addresses: Addresses {
                general: general_addr,
                cluster: cluster_addr,
                admin: admin_addr,
                operations: operations_addr,
            },
            registrar,
            shutdown,
            tasks,
        })
    }

    /// Runs until `signal` completes, then stops the listeners and every channel.
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        self.stop().await;
    }

    /// Stops the listeners (open streams get [`SHUTDOWN_GRACE`] to finish), then every channel.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for mut t in self.tasks {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut t).await.is_err() {
                t.abort();
            }
        }
        self.registrar.stop_all().await;
    }
}
