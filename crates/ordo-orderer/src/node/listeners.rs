//! The node's listeners, each bound before it is served so that the address reported is ready:
//! general (gRPC: AtomicBroadcast, and the Cluster service when consenters share it), the
//! separate cluster listener, admin (channel participation over HTTP(S)) and operations
//! (health, metrics, log spec, version).

use std::net::SocketAddr;
use std::sync::Arc;

use ordo_cluster::service::ClusterService;
use ordo_cluster::slots::MAX_STREAMS_PER_CONNECTION;
use ordo_msp::SigningIdentity;
use ordo_proto::orderer::atomic_broadcast_server::AtomicBroadcastServer;
use ordo_proto::orderer::cluster_server::ClusterServer;
use tokio::net::TcpListener;

use super::tls::{NodeTls, ns};
use super::{NodeError, Tasks, VERSION};
use crate::grpc::AtomicBroadcastService;
use crate::localconfig::LocalConfig;
use crate::metrics::Metrics;
use crate::msgprocessor::FilterSettings;
use crate::registrar::Registrar;

async fn bind(addr: &str) -> Result<(TcpListener, SocketAddr), NodeError> {
    let listen = |source| NodeError::Listen {
        addr: addr.to_string(),
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(listen)?;
    let local = listener.local_addr().map_err(listen)?;
    Ok((listener, local))
}

/// The inbound side of `orderer.Cluster/Step`, on whichever listener carries it.
fn cluster_service(
    cfg: &LocalConfig,
    registrar: &Arc<Registrar>,
) -> ClusterServer<ClusterService<crate::cluster::ClusterHandler>> {
    let g = &cfg.general;
    ClusterServer::new(ClusterService::new(Arc::new(
        crate::cluster::ClusterHandler {
            registrar: registrar.clone(),
        },
    )))
    .max_decoding_message_size(g.max_recv_msg_size as usize)
    .max_encoding_message_size(g.max_send_msg_size as usize)
}

/// The general listener: Broadcast and Deliver, and the Cluster service when the cluster shares
/// this listener.
pub(super) async fn serve_general(
    cfg: &LocalConfig,
    registrar: &Arc<Registrar>,
    signer: &Arc<SigningIdentity>,
    metrics: &Metrics,
    tls: &NodeTls,
    tasks: &mut Tasks,
) -> Result<SocketAddr, NodeError> {
    let g = &cfg.general;
    let (listener, addr) = bind(&format!("{}:{}", g.listen_address, g.listen_port)).await?;
    let svc = AtomicBroadcastService {
        registrar: registrar.clone(),
        signer: signer.clone(),
        filters: FilterSettings {
            no_expiration_checks: g.no_expiration_checks,
        },
        time_window_ns: g.time_window_ns,
        mutual_tls: g.tls.enabled && g.tls.client_auth_required,
        metrics: metrics.clone(),
        comm: tls.comm.clone(),
        ack_after_commit: cfg.ack_after_commit_timeout_ns.map(ns),
    };
    let broadcast = AtomicBroadcastServer::new(svc)
        .max_decoding_message_size(g.max_recv_msg_size as usize)
        .max_encoding_message_size(g.max_send_msg_size as usize);
    let router = tonic::transport::Server::builder()
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .add_service(broadcast)
        .add_optional_service(tls.shared_cluster.then(|| cluster_service(cfg, registrar)));
    let conn_metrics = metrics.clone();
    let hook: crate::tls::ConnHook = Arc::new(move |opened| conn_metrics.grpc_conn(opened));
    let incoming = crate::tls::incoming(listener, tls.general.clone(), Some(hook));
    let stop = tasks.stop_signal();
    tasks.spawn(async move {
        if let Err(e) = router.serve_with_incoming_shutdown(incoming, stop).await {
            tracing::error!(error = %e, "gRPC server stopped");
        }
    });
    Ok(addr)
}

/// The separate cluster listener, when orderer.yaml gives one (TLS only).
pub(super) async fn serve_cluster(
    cfg: &LocalConfig,
    registrar: &Arc<Registrar>,
    tls: &NodeTls,
    tasks: &mut Tasks,
) -> Result<Option<SocketAddr>, NodeError> {
    let Some(server_tls) = tls.cluster.clone() else {
        return Ok(None);
    };
    let c = &cfg.general.cluster;
    let (listener, addr) = bind(&format!("{}:{}", c.listen_address, c.listen_port)).await?;
    let router = tonic::transport::Server::builder()
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .add_service(cluster_service(cfg, registrar));
    let incoming = crate::tls::incoming(listener, Some(server_tls), None);
    let stop = tasks.stop_signal();
    tasks.spawn(async move {
        if let Err(e) = router.serve_with_incoming_shutdown(incoming, stop).await {
            tracing::error!(error = %e, "cluster server stopped");
        }
    });
    Ok(Some(addr))
}

/// The admin listener: the channel participation API.
pub(super) async fn serve_admin(
    cfg: &LocalConfig,
    registrar: &Arc<Registrar>,
    tls: &NodeTls,
    tasks: &mut Tasks,
) -> Result<SocketAddr, NodeError> {
    let (listener, addr) = bind(&cfg.admin.listen_address).await?;
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
    let admin_tls = tls.admin.clone();
    let stop = tasks.stop_signal();
    tasks.spawn(async move {
        if let Err(e) = crate::http::serve(listener, admin_tls, participation, stop).await {
            tracing::error!(error = %e, "admin server stopped");
        }
    });
    Ok(addr)
}

/// The operations listener: health, metrics, log spec, version.
pub(super) async fn serve_operations(
    cfg: &LocalConfig,
    registrar: &Arc<Registrar>,
    metrics: &Metrics,
    tasks: &mut Tasks,
) -> Result<SocketAddr, NodeError> {
    let ops = crate::operations::Operations::start(
        &cfg.operations,
        crate::operations::Options {
            registry: (cfg.metrics_provider == "prometheus").then(|| metrics.registry()),
            version: VERSION.to_string(),
            health: Arc::new(crate::health::NodeHealth::new(registrar.clone())),
        },
        tasks.stop_signal(),
    )
    .await?;
    let addr = ops.local_addr();
    tasks.handles.push(ops.into_task());
    Ok(addr)
}
