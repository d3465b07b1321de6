//! The node's TLS, read once from orderer.yaml: the general listener's server side, the separate
//! cluster listener's, the admin listener's, and the outbound cluster transport (Fabric's
//! `orderer/common/server` `initializeServerConfig`, `configureClusterListener` and
//! `initializeClusterClientConfig`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ordo_cluster::comm::{Comm, CommConfig};
use rustls_pki_types::CertificateDer;

use super::NodeError;
use crate::localconfig::LocalConfig;
use crate::metrics::Metrics;
use crate::tls::{Alpn, ClientAuth, TlsServer};

/// What the node's listeners and cluster client present and trust.
pub(super) struct NodeTls {
    /// The general (gRPC) listener's, when TLS is on.
    pub general: Option<TlsServer>,
    /// The separate cluster listener's, when there is one.
    pub cluster: Option<TlsServer>,
    /// The admin (participation) listener's, when its TLS is on.
    pub admin: Option<TlsServer>,
    /// The outbound cluster transport (TLS only: Fabric's cluster requires it).
    pub comm: Option<Comm>,
    /// Cluster.RootCAs, the static part of what the cluster trusts.
    pub cluster_roots: Vec<CertificateDer<'static>>,
    /// Consenters reach this node on the general listener.
    pub shared_cluster: bool,
    /// The certificate that identifies this node among consenters (PEM).
    pub server_cert: Option<Vec<u8>>,
}

/// A file the node needs at start.
pub(super) fn read(path: &Path) -> Result<Vec<u8>, NodeError> {
    std::fs::read(path).map_err(|source| NodeError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// A nanosecond count from orderer.yaml as a duration (negative: zero).
pub(super) fn ns(v: i64) -> Duration {
    Duration::from_nanos(v.max(0) as u64)
}

/// `p`, or the general TLS file when `p` is not set (Fabric's defaults for the cluster's client
/// certificate and key).
pub(super) fn or_general(p: &Path, general: &Path) -> PathBuf {
    if p.as_os_str().is_empty() {
        general.to_path_buf()
    } else {
        p.to_path_buf()
    }
}

impl NodeTls {
    pub(super) fn load(cfg: &LocalConfig, metrics: &Metrics) -> Result<NodeTls, NodeError> {
        let g = &cfg.general;
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

        let shared_cluster = g.tls.enabled && !g.cluster.separate_listener();
        let cluster_roots = crate::tls::read_certs(&g.cluster.root_cas)?;
        let general = if !g.tls.enabled {
            None
        } else if shared_cluster && !g.tls.client_auth_required {
            // Consenters sharing this listener authenticate with their client certificate, so
            // one is verified when given (against ClientRootCAs, Cluster.RootCAs and the
            // channels' CAs) though clients need not send one.
            let mut roots = crate::tls::read_certs(&g.tls.client_root_cas)?;
            roots.extend(cluster_roots.iter().cloned());
            Some(TlsServer::new(
                &read(&g.tls.certificate)?,
                &read(&g.tls.private_key)?,
                roots,
                ClientAuth::Optional,
                ns(g.tls.handshake_time_shift_ns),
                Alpn::Grpc,
            )?)
        } else {
            Some(crate::tls::from_local(&g.tls, Alpn::Grpc)?)
        };
        // The separate cluster listener always requires client certificates (Fabric's
        // configureClusterListener); until a channel brings its orderer CAs it may have none
        // to check them against, and then it lets no consenter in.
        let cluster = if g.tls.enabled && g.cluster.separate_listener() {
            let auth = if cluster_roots.is_empty() {
                ClientAuth::Optional
            } else {
                ClientAuth::Required
            };
            Some(TlsServer::new(
                &read(&g.cluster.server_certificate)?,
                &read(&g.cluster.server_private_key)?,
                cluster_roots.clone(),
                auth,
                ns(g.cluster.handshake_time_shift_ns),
                Alpn::Grpc,
            )?)
        } else {
            None
        };
        let admin = if cfg.admin.tls.enabled {
            Some(crate::tls::from_local(&cfg.admin.tls, Alpn::Http)?)
        } else {
            None
        };
        // The outbound cluster transport presents Cluster.ClientCertificate (default: the
        // general TLS certificate).
        let comm = if g.tls.enabled {
            let cert = or_general(&g.cluster.client_certificate, &g.tls.certificate);
            let key = or_general(&g.cluster.client_private_key, &g.tls.private_key);
            Some(Comm::new(
                CommConfig {
                    client_cert_pem: read(&cert)?,
                    client_key_pem: read(&key)?,
                    send_buffer_size: g.cluster.send_buffer_size as usize,
                    dial_timeout: ns(g.cluster.dial_timeout_ns),
                    rpc_timeout: ns(g.cluster.rpc_timeout_ns),
                    // Fabric: Cluster.TLSHandshakeTimeShift with a separate cluster listener,
                    // General.TLS.TLSHandshakeTimeShift on the shared one.
                    handshake_time_shift: ns(if g.cluster.separate_listener() {
                        g.cluster.handshake_time_shift_ns
                    } else {
                        g.tls.handshake_time_shift_ns
                    }),
                },
                Some(Arc::new(metrics.clone())),
            )?)
        } else {
            None
        };
        Ok(NodeTls {
            general,
            cluster,
            admin,
            comm,
            cluster_roots,
            shared_cluster,
            server_cert,
        })
    }
}
