//! Keeping what the node trusts in step with its channels (Fabric's `updateTrustedRoots` and
//! `updateClusterDialer`): the listeners trust their configured client roots plus the channels'
//! TLS CAs (every organization's on the general listener, the orderer organizations' on the
//! cluster listener), and the cluster transport trusts Cluster.RootCAs plus the orderer
//! organizations' CAs. A channel's config change only wakes this task: the channel's driver must
//! not wait on the TLS layer.

use std::future::Future;
use std::sync::Arc;

use ordo_cluster::comm::Comm;

use tokio::sync::{Notify, watch};

use super::tls::NodeTls;
use crate::registrar::Registrar;
use crate::tls::TlsServer;

/// Recomputes the trusted roots now and each time `changed` is notified, until `stop` turns
/// true.
pub(super) fn track(
    registrar: Arc<Registrar>,
    tls: &NodeTls,
    changed: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let general = tls.general.clone();
    let cluster = tls.cluster.clone();
    let comm = tls.comm.clone();
    let static_cluster: Vec<Vec<u8>> = tls.cluster_roots.iter().map(|c| c.to_vec()).collect();
    changed.notify_one();
    async move {
        loop {
            tokio::select! {
                _ = changed.notified() => {}
                _ = stop.changed() => return,
            }
            update(
                &registrar,
                general.as_ref(),
                cluster.as_ref(),
                comm.as_ref(),
                &static_cluster,
            );
        }
    }
}

fn update(
    registrar: &Registrar,
    general: Option<&TlsServer>,
    cluster: Option<&TlsServer>,
    comm: Option<&Comm>,
    static_cluster: &[Vec<u8>],
) {
    let configs: Vec<_> = registrar.channels().iter().map(|c| c.config()).collect();
    let all: Vec<_> = configs.iter().flat_map(|c| c.tls_client_cas()).collect();
    let orderer: Vec<_> = configs.iter().flat_map(|c| c.orderer_tls_cas()).collect();
    let orderer = crate::tls::pem_to_der(&orderer);
    if let Some(t) = general {
        report(t.set_client_roots(crate::tls::pem_to_der(&all)));
    }
    if let Some(t) = cluster {
        report(t.set_client_roots(orderer.clone()));
    }
    if let Some(c) = comm {
        let mut roots = static_cluster.to_vec();
        roots.extend(orderer);
        report(c.set_roots(roots));
    }
}

fn report<E: std::fmt::Display>(r: Result<(), E>) {
    if let Err(e) = r {
        tracing::error!(error = %e, "cannot update the trusted TLS roots");
    }
}
