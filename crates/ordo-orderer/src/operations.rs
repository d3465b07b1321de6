//! The operations server (Fabric's `core/operations`): `/healthz`, `/metrics`, `/logspec` and
//! `/version`, with Fabric's JSON shapes and status codes. Under TLS, `/metrics` and `/logspec`
//! need a verified client certificate (401 otherwise); `/healthz` and `/version` never do.
//!
//! Unlike Fabric's Raft orderer, whose health check always passes, `/healthz` here reports what
//! the node's [`HealthChecker`] finds (a channel without a Raft leader, a ledger that cannot be
//! written).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::localconfig::HttpListener;
use crate::tls::Alpn;

/// A failed health check, as Fabric's healthz reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedCheck {
    pub component: String,
    pub reason: String,
}

/// What `/healthz` asks.
pub trait HealthChecker: Send + Sync + 'static {
    fn check(&self) -> Vec<FailedCheck>;
}

/// What the operations server serves.
#[derive(Clone)]
pub struct Options {
    /// The metrics registry, when `Metrics.Provider` is `prometheus`.
    pub registry: Option<prometheus::Registry>,
    pub version: String,
    pub health: Arc<dyn HealthChecker>,
}

/// Why the operations server could not start.
#[derive(Debug, thiserror::Error)]
pub enum OperationsError {
    #[error("operations TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("operations listener {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// A running operations server.
pub struct Operations {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_string());
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

#[derive(Serialize)]
struct ErrorBody {
    error: String,
}

/// RFC 3339 with nanoseconds in UTC, as Go's `time.RFC3339Nano` prints `time.Now().UTC()`
/// (trailing zeros of the fraction dropped).
pub fn rfc3339_nano(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut frac = format!("{:09}", d.subsec_nanos());
    while frac.ends_with('0') {
        frac.pop();
    }
    let frac = if frac.is_empty() {
        String::new()
    } else {
        format!(".{frac}")
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{frac}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The operations routes; `secure` = the listener has TLS on.
pub fn router(opts: Options, secure: bool) -> Router {
    #[derive(Serialize)]
    struct Health {
        status: &'static str,
        time: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        failed_checks: Vec<FailedCheck>,
    }
    let health = opts.health.clone();
    let healthz = get(move || {
        let health = health.clone();
        async move {
            let failed = health.check();
            let ok = failed.is_empty();
            let body = Health {
                status: if ok { "OK" } else { "Service Unavailable" },
                time: rfc3339_nano(std::time::SystemTime::now()),
                failed_checks: failed,
            };
            json(
                if ok {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                },
                &body,
            )
        }
    });
    let version = opts.version.clone();
    let version_route = get(move || {
        let v = version.clone();
        async move {
            #[derive(Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct Version {
                #[serde(rename = "CommitSHA")]
                commit_sha: String,
                version: String,
            }
            json(
                StatusCode::OK,
                &Version {
                    commit_sha: option_env!("ORDO_COMMIT")
                        .unwrap_or("development build")
                        .to_string(),
                    version: v,
                },
            )
        }
    });
    let logspec = get(|| async {
        #[derive(Serialize)]
        struct Spec {
            spec: String,
        }
        json(
            StatusCode::OK,
            &Spec {
                spec: crate::logging::spec(),
            },
        )
    })
    .put(|body: axum::body::Bytes| async move {
        #[derive(serde::Deserialize)]
        struct Spec {
            spec: String,
        }
        let parsed: Result<Spec, _> = serde_json::from_slice(&body);
        match parsed {
            Err(e) => json(
                StatusCode::BAD_REQUEST,
                &ErrorBody {
                    error: e.to_string(),
                },
            ),
            Ok(s) => match crate::logging::set_spec(&s.spec) {
                Ok(()) => StatusCode::NO_CONTENT.into_response(),
                Err(e) => json(StatusCode::BAD_REQUEST, &ErrorBody { error: e.0 }),
            },
        }
    });
    let mut secured = Router::new().route("/logspec", logspec);
    if let Some(registry) = opts.registry.clone() {
        secured = secured.route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    let text = prometheus::TextEncoder::new()
                        .encode_to_string(&registry.gather())
                        .unwrap_or_default();
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    )
                        .into_response()
                }
            }),
        );
    }
    if secure {
        secured = secured.layer(axum::middleware::from_fn(crate::http::require_client_cert));
    }
    Router::new()
        .route("/healthz", healthz)
        .route("/version", version_route)
        .merge(secured)
}

impl Operations {
    /// Binds the listener and starts serving until `shutdown` completes.
    pub async fn start(
        cfg: &HttpListener,
        opts: Options,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Operations, OperationsError> {
        let listener = TcpListener::bind(&cfg.listen_address)
            .await
            .map_err(|source| OperationsError::Listen {
                addr: cfg.listen_address.clone(),
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| OperationsError::Listen {
                addr: cfg.listen_address.clone(),
                source,
            })?;
        let tls = if cfg.tls.enabled {
            Some(crate::tls::from_local(&cfg.tls, Alpn::Http)?)
        } else {
            None
        };
        let app = router(opts, cfg.tls.enabled);
        let task = tokio::spawn(async move {
            if let Err(e) = crate::http::serve(listener, tls, app, shutdown).await {
                tracing::error!(error = %e, "operations server stopped");
            }
        });
        Ok(Operations { addr, task })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn into_task(self) -> tokio::task::JoinHandle<()> {
        self.task
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_like_gos_rfc3339nano() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::new(1_763_812_345, 120_000_000);
        assert_eq!(rfc3339_nano(t), "2025-11-22T11:52:25.12Z");
        assert_eq!(rfc3339_nano(std::time::UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
