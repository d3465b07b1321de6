//! Serving the node's HTTP APIs (operations, channel participation) over plain TCP or TLS, with
//! HTTP/1.1 and HTTP/2, and the client certificate made visible to handlers.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::tls::{TlsServer, incoming};

/// The client's certificate chain (DER, leaf first), present as a request extension only when
/// the client presented a certificate that the listener's TLS configuration verified.
/// Handlers that Fabric marks "secure" answer 401 without it when TLS is on.
#[derive(Debug, Clone)]
pub struct PeerCertificates(pub Arc<Vec<Vec<u8>>>);

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsServer>,
    router: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // As behind Go's ServeMux, which Fabric's HTTP APIs sit behind: unclean paths redirected,
    // unknown ones answered with Go's 404.
    let router = router
        .fallback(crate::go_mux::not_found)
        .layer(axum::middleware::from_fn(redirect_unclean));
    let mut conns = incoming(listener, tls, None);
    tokio::pin!(shutdown);
    loop {
        let conn = tokio::select! {
            c = conns.next() => match c {
                Some(Ok(c)) => c,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "connection failed");
                    continue;
                }
                None => return Ok(()),
            },
            _ = &mut shutdown => return Ok(()),
        };
        let certs = conn.info().peer_certs.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
                    if let Some(c) = &certs {
                        req.extensions_mut().insert(PeerCertificates(c.clone()));
                    }
                    router.clone().oneshot(req.map(axum::body::Body::new))
                });
            let mut builder = Builder::new(TokioExecutor::new());
            // A connection that sends no complete request header in time (30 s) is closed.
            builder.http1().timer(TokioTimer::new());
            if let Err(e) = builder.serve_connection(TokioIo::new(conn), service).await {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
}

async fn redirect_unclean(req: Request, next: Next) -> Response {
    match crate::go_mux::redirect_unclean(&req) {
        Some(r) => r,
        None => next.run(req).await,
    }
}

/// Fabric's `require_cert` middleware for "secure" handlers on a TLS listener: no verified
/// client certificate, 401 with an empty body.
pub async fn require_client_cert(req: Request, next: Next) -> Response {
    if req.extensions().get::<PeerCertificates>().is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    next.run(req).await
}
