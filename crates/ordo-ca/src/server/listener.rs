//! The listener: TCP (and TLS) accept loop with a bound on connections served at once
//! (`max_connections`, an eighth of them per remote address: `ordo_cluster::slots`, as the
//! orderer's listeners), a TLS handshake and a request header each to be finished in time, the
//! TLS certificate of the server, and the handle of a running server.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use ordo_cluster::slots::{Limits, Slots};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower::ServiceExt;

use super::CaServer;
use crate::config::{BootstrapIdentity, ServerConfig};
use crate::error::CaError;

/// A server started by [`start`]: its address, the PEM of the CA its generated TLS certificate
/// chains to (`None` without TLS or with a configured certificate), and a handle to stop it.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub tls_ca_pem: Option<String>,
    pub server: Arc<CaServer>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("addr", &self.addr)
            .field("server", &self.server)
            .finish()
    }
}

impl RunningServer {
    /// Stops accepting connections and waits for the accept loop to end.
    pub async fn stop(mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Waits until the server stops.
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// The TLS configuration of the listener: the configured certificate and key, or one issued by
/// the default CA for `csr.hosts` (written to `<home>/tls-cert.pem` and kept across restarts).
fn tls_config(
    cfg: &ServerConfig,
    srv: &CaServer,
) -> Result<(rustls::ServerConfig, Option<String>), CaError> {
    let (cert_pem, key_pem, ca_pem) = if !cfg.tls.certfile.is_empty() {
        let read = |p: &str| {
            std::fs::read_to_string(cfg.resolve(p))
                .map_err(|e| CaError::Internal(format!("{p}: {e}")))
        };
        // The issuer of a configured certificate is not known here.
        (read(&cfg.tls.certfile)?, read(&cfg.tls.keyfile)?, None)
    } else {
        let cert_path = cfg.home.join("tls-cert.pem");
        let key_path = cfg.home.join("tls-key.pem");
        let ca = srv.default_ca();
        let existing = std::fs::read_to_string(&cert_path)
            .ok()
            .zip(std::fs::read_to_string(&key_path).ok())
            .filter(|(c, _)| {
                ordo_crypto::x509::first_pem_der(c.as_bytes())
                    .ok()
                    .is_some_and(|der| ca.verify_issued(&der, false).is_ok())
            });
        let (c, k) = match existing {
            Some(ck) => ck,
            None => {
                let (c, k) = ca.issue_server_tls(&cfg.csr.hosts)?;
                std::fs::create_dir_all(&cfg.home).map_err(|e| CaError::Internal(e.to_string()))?;
                std::fs::write(&cert_path, &c).map_err(|e| CaError::Internal(e.to_string()))?;
                std::fs::write(&key_path, &k).map_err(|e| CaError::Internal(e.to_string()))?;
                (c, k)
            }
        };
        (c, k, Some(ca.cert_pem().to_string()))
    };
    let certs = ordo_crypto::x509::pem_blocks(cert_pem.as_bytes())
        .map_err(|e| CaError::Internal(e.to_string()))?
        .into_iter()
        .filter(|(t, _)| t == "CERTIFICATE")
        .map(|(_, d)| rustls_pki_types::CertificateDer::from(d))
        .collect::<Vec<_>>();
    let key_der = ordo_crypto::x509::first_pem_der(key_pem.as_bytes())
        .map_err(|e| CaError::Internal(e.to_string()))?;
    let key = rustls_pki_types::PrivateKeyDer::Pkcs8(key_der.into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CaError::Internal(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| CaError::Internal(format!("TLS certificate: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((config, ca_pem))
}

/// Opens the CAs and serves them on `cfg.address:cfg.port` (port 0: any free port).
pub async fn start(
    cfg: &ServerConfig,
    bootstrap: Option<BootstrapIdentity>,
) -> Result<RunningServer, CaError> {
    let cfg2 = cfg.clone();
    let srv = tokio::task::spawn_blocking(move || CaServer::open(&cfg2, bootstrap))
        .await
        .map_err(|e| CaError::Internal(e.to_string()))??;
    let srv = Arc::new(srv);
    let (tls, tls_ca_pem) = if cfg.tls.enabled {
        let (c, ca) = tls_config(cfg, &srv)?;
        (Some(tokio_rustls::TlsAcceptor::from(Arc::new(c))), ca)
    } else {
        (None, None)
    };
    let listener = TcpListener::bind((cfg.address.as_str(), cfg.port))
        .await
        .map_err(|e| CaError::Internal(format!("bind {}:{}: {e}", cfg.address, cfg.port)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| CaError::Internal(e.to_string()))?;
    let router = srv.clone().router();
    let (tx, mut rx) = oneshot::channel::<()>();
    let handshake_timeout = crate::config::parse_duration(&cfg.tls_handshake_timeout)?;
    let slots = Slots::new(Limits::with_total(cfg.max_connections));
    let task = tokio::spawn(async move {
        loop {
            // A slot first: at the limit, connections wait in the kernel's backlog.
            let permit = tokio::select! {
                p = slots.reserve() => match p {
                    Some(p) => p,
                    None => return,
                },
                _ = &mut rx => return,
            };
            let (tcp, peer) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        continue;
                    }
                },
                _ = &mut rx => return,
            };
            // One address may hold only its share, so that it cannot crowd out the others.
            let Some(slot) = slots.admit(permit, peer.ip()) else {
                tracing::debug!(%peer, "connection refused: its address holds its share");
                continue;
            };
            let router = router.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        router.clone().oneshot(req.map(Body::new))
                    });
                let mut builder = Builder::new(TokioExecutor::new());
                // A connection that sends no complete request header in time is closed.
                builder.http1().timer(TokioTimer::new());
                let res = match tls {
                    Some(acceptor) => {
                        match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                            Ok(Ok(stream)) => {
                                builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        }
                    }
                    None => {
                        // The client speaks first: a connection silent for as long as a TLS
                        // handshake may take is closed, as a TLS one would be.
                        // `peek`, not `readable`: a fresh socket may report readiness before
                        // any data (a false positive tokio allows).
                        if tokio::time::timeout(handshake_timeout, tcp.peek(&mut [0u8; 1]))
                            .await
                            .is_err()
                        {
                            tracing::debug!(%peer, "connection closed: nothing sent in time");
                            return;
                        }
                        builder.serve_connection(TokioIo::new(tcp), service).await
                    }
                };
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            });
        }
    });
    tracing::info!(%addr, cas = ?srv.cas.iter().map(|c| c.name().to_string()).collect::<Vec<_>>(), "CA server listening");
    Ok(RunningServer {
        addr,
        tls_ca_pem,
        server: srv,
        shutdown: Some(tx),
        task,
    })
}
