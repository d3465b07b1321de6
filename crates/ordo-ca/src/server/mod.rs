//! The HTTPS server: several CAs in one process, Fabric CA's endpoints under `/` and
//! `/api/v1/`, the `{result, errors, messages, success}` envelope.
//!
//! This module owns the shared state ([`CaServer`]: the CAs, token authentication, choosing
//! the CA of a request), routing, and the envelope every answer is wrapped in. Each endpoint
//! family has its own file; who may do what is in [`crate::authz`].
//!
//! Routing is done here rather than by axum's router so that every failure (unknown path, wrong
//! method, oversized body) gets Fabric CA's envelope and error codes.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::attrs;
use crate::ca::Ca;
use crate::config::{BootstrapIdentity, ServerConfig};
use crate::error::{CaError, ErrorCode};
use crate::registry::{Attribute, IdentityRecord, SqliteDb};

mod affiliations;
mod certificates;
mod enroll;
mod identities;
mod listener;
mod request;
mod revoke;

use enroll::{cainfo, handle_enroll};
pub use listener::{RunningServer, start};
use request::{parse_query, percent_decode};

/// The CAs of one server and what their handlers share.
pub struct CaServer {
    cas: Vec<Arc<Ca>>,
    compat_v1_3: bool,
    max_body: usize,
}

impl std::fmt::Debug for CaServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaServer").field("cas", &self.cas).finish()
    }
}

/// The `caname` every Fabric CA request body may carry.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CaSelector {
    caname: String,
}

/// Response of a handler: success status, result object, extra headers.
struct Ok200 {
    status: u16,
    result: Value,
    location: Option<String>,
}

fn ok(status: u16, result: Value) -> Result<Ok200, CaError> {
    Ok(Ok200 {
        status,
        result,
        location: None,
    })
}

/// Fabric CA's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    CaInfo,
    Enroll,
    Reenroll,
    Register,
    Revoke,
    GenCrl,
    Identities,
    Identity,
    Affiliations,
    Affiliation,
    Certificates,
}

impl Endpoint {
    fn methods(self) -> &'static [&'static str] {
        match self {
            Endpoint::CaInfo => &["GET", "POST", "HEAD"],
            Endpoint::Enroll
            | Endpoint::Reenroll
            | Endpoint::Register
            | Endpoint::Revoke
            | Endpoint::GenCrl => &["POST"],
            Endpoint::Identities | Endpoint::Affiliations => &["GET", "POST"],
            Endpoint::Identity | Endpoint::Affiliation => &["GET", "PUT", "DELETE"],
            Endpoint::Certificates => &["GET", "DELETE"],
        }
    }
}

fn route(path: &str) -> Option<(Endpoint, Option<String>)> {
    let p = path
        .strip_prefix("/api/v1/")
        .or_else(|| path.strip_prefix('/'))?;
    let p = p.trim_end_matches('/');
    let (head, tail) = match p.split_once('/') {
        Some((h, t)) => (h, Some(t)),
        None => (p, None),
    };
    let ep = match (head, tail) {
        ("cainfo", None) => Endpoint::CaInfo,
        ("enroll", None) => Endpoint::Enroll,
        ("reenroll", None) => Endpoint::Reenroll,
        ("register", None) => Endpoint::Register,
        ("revoke", None) => Endpoint::Revoke,
        ("gencrl", None) => Endpoint::GenCrl,
        ("identities", None) => Endpoint::Identities,
        ("identities", Some(_)) => Endpoint::Identity,
        ("affiliations", None) => Endpoint::Affiliations,
        ("affiliations", Some(_)) => Endpoint::Affiliation,
        ("certificates", None) => Endpoint::Certificates,
        _ => return None,
    };
    let var = tail.map(percent_decode);
    if var.as_deref().is_some_and(|v| v.contains('/')) {
        return None;
    }
    Some((ep, var))
}

/// One request, with the raw body (tokens sign the bytes as sent).
struct Ctx {
    method: Method,
    /// Path and query exactly as sent (Go's `RequestURI`).
    uri: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
    /// The body as decoded by [`request::normalize_body`]: an object with lower-case keys and
    /// no `null` members, or `null`.
    json: Value,
    var: Option<String>,
}

impl Ctx {
    /// The body as an endpoint's request type (see [`request::decode`]).
    fn body<T: DeserializeOwned + Default>(&self) -> Result<T, CaError> {
        request::decode(&self.json)
    }

    fn bool_query(&self, name: &str) -> Result<bool, CaError> {
        match self.query.get(name) {
            None => Ok(false),
            Some(v) if v.is_empty() => Ok(false),
            Some(v) => attrs::parse_bool(v).ok_or_else(|| {
                CaError::bad_request(
                    ErrorCode::BadReqBody,
                    format!("The '{name}' query parameter value must be a boolean"),
                )
            }),
        }
    }

    fn auth_header(&self) -> Result<&str, CaError> {
        let h = self
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if h.is_empty() {
            return Err(CaError::http(
                401,
                ErrorCode::NoAuthHdr,
                "No authorization header",
            ));
        }
        Ok(h)
    }
}

impl CaServer {
    /// Opens the database and every configured CA, registering the bootstrap identities and
    /// the configured affiliations the first time.
    pub fn open(cfg: &ServerConfig, bootstrap: Option<BootstrapIdentity>) -> Result<Self, CaError> {
        cfg.validate()?;
        let db = SqliteDb::open(&cfg.resolve(&cfg.db.datasource))?;
        let mut identities = cfg.registry.identities.clone();
        if let Some(b) = bootstrap {
            identities.retain(|i| i.name != b.name);
            identities.push(b);
        }
        let mut cas = Vec::new();
        for entry in &cfg.cas {
            let registry = Arc::new(db.registry(&entry.name));
            let ca = Ca::open(cfg, entry, registry.clone())?;
            let fresh =
                ca.registry.list_identities()?.is_empty() && ca.registry.affiliations()?.is_empty();
            if fresh {
                for a in cfg.affiliation_paths() {
                    ca.registry.add_affiliation(&a)?;
                }
            }
            for b in &identities {
                if ca.registry.get_identity(&b.name)?.is_some() {
                    continue;
                }
                let mut attrs: Vec<Attribute> = b
                    .attributes()
                    .into_iter()
                    .map(|(name, value)| Attribute {
                        name,
                        value,
                        ecert: false,
                    })
                    .collect();
                for (n, v) in [
                    (attrs::ENROLLMENT_ID, b.name.as_str()),
                    (attrs::TYPE, b.r#type.as_str()),
                    (attrs::AFFILIATION, b.affiliation.as_str()),
                ] {
                    attrs.push(Attribute {
                        name: n.into(),
                        value: v.into(),
                        ecert: true,
                    });
                }
                ca.registry.insert_identity(&IdentityRecord {
                    id: b.name.clone(),
                    secret_hash: attrs::hash_secret(&b.pass)?,
                    id_type: b.r#type.clone(),
                    affiliation: b.affiliation.clone(),
                    attrs,
                    max_enrollments: b.maxenrollments,
                    state: 0,
                })?;
            }
            cas.push(Arc::new(ca));
        }
        Ok(CaServer {
            cas,
            compat_v1_3: cfg.compatibility_mode_v1_3,
            max_body: cfg.max_body_bytes,
        })
    }

    pub fn ca(&self, name: &str) -> Option<&Arc<Ca>> {
        self.cas.iter().find(|c| c.name() == name)
    }

    pub fn default_ca(&self) -> &Arc<Ca> {
        &self.cas[0]
    }

    /// The axum router serving every endpoint.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new().fallback(handle).with_state(self)
    }

    /// Chooses the CA: `?ca=`, then body `caname`/`CAName`, then the default. Every request
    /// body may name its CA, so this runs before the endpoint's own decoding.
    fn select_ca(&self, ctx: &Ctx) -> Result<Arc<Ca>, CaError> {
        let name = match ctx.query.get("ca") {
            Some(n) if !n.is_empty() => n.clone(),
            _ => ctx.body::<CaSelector>()?.caname,
        };
        if name.is_empty() {
            return Ok(self.default_ca().clone());
        }
        self.ca(&name).cloned().ok_or_else(|| {
            CaError::http(
                404,
                ErrorCode::CaNotFound,
                format!("CA '{name}' does not exist"),
            )
        })
    }

    /// Token authentication (`TokenAuthentication` + `verifyX509Token`): returns the caller and
    /// the serial/AKI of the certificate it signed with.
    fn token_auth(&self, ctx: &Ctx, ca: &Ca) -> Result<(IdentityRecord, String, String), CaError> {
        let h = ctx.auth_header()?;
        let der = crate::auth::verify_token(
            h,
            ctx.method.as_str(),
            &ctx.uri,
            &ctx.body,
            self.compat_v1_3,
        )
        .map_err(|e| {
            CaError::Authentication(format!("Invalid token in authorization header: {e}"))
        })?;
        let facts = ca
            .verify_issued(&der, false)
            .map_err(|e| CaError::Authentication(format!("Untrusted certificate: {e}")))?;
        let rec = ca
            .registry
            .get_certificate(&facts.serial, &facts.aki)?
            .ok_or_else(|| CaError::Authentication("certificate is not in the registry".into()))?;
        if rec.status == "revoked" {
            return Err(CaError::Authentication(
                "The certificate in the authorization header is a revoked certificate".into(),
            ));
        }
        let caller = ca
            .registry
            .get_identity(&facts.enrollment_id)?
            .ok_or_else(|| {
                CaError::Authentication(format!(
                    "caller '{}' is not registered",
                    facts.enrollment_id
                ))
            })?;
        Ok((caller, facts.serial, facts.aki))
    }

    fn dispatch(&self, ep: Endpoint, ctx: &Ctx) -> Result<Ok200, CaError> {
        let ca = self.select_ca(ctx)?;
        match ep {
            Endpoint::CaInfo => ok(200, cainfo(&ca)),
            Endpoint::Enroll => self.enroll(ctx, &ca),
            Endpoint::Reenroll => {
                let (caller, _, _) = self.token_auth(ctx, &ca)?;
                handle_enroll(ctx, &ca, &caller, None)
            }
            Endpoint::Register => self.register(ctx, &ca, false),
            Endpoint::Revoke => self.revoke(ctx, &ca),
            Endpoint::GenCrl => self.gencrl(ctx, &ca),
            Endpoint::Identities if ctx.method == Method::POST => self.register(ctx, &ca, true),
            Endpoint::Identities => self.list_identities(ctx, &ca),
            Endpoint::Identity => self.identity(ctx, &ca),
            Endpoint::Affiliations | Endpoint::Affiliation => self.affiliations(ep, ctx, &ca),
            Endpoint::Certificates => self.certificates(ctx, &ca),
        }
    }
}

fn method_not_allowed(m: &Method) -> CaError {
    CaError::http(
        405,
        ErrorCode::MethodNotAllowed,
        format!("Method {m} is not allowed"),
    )
}

fn envelope(
    status: u16,
    result: Value,
    error: Option<(ErrorCode, String)>,
    head: bool,
) -> Response {
    let success = error.is_none();
    let body = json!({
        "result": result,
        "errors": error.map(|(c, m)| vec![json!({"code": c as u32, "message": m})]).unwrap_or_default(),
        "messages": [],
        "success": success,
    });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = if head {
        status.into_response()
    } else {
        (status, body.to_string()).into_response()
    };
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn error_response(e: &CaError, head: bool) -> Response {
    let (status, code, message) = e.remote();
    // The detailed reason of authentication/authorization failures is only logged.
    tracing::warn!(status, code = code as u32, error = %e, "request failed");
    envelope(status, json!(""), Some((code, message)), head)
}

async fn handle(State(srv): State<Arc<CaServer>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let head = parts.method == Method::HEAD;
    let Some((ep, var)) = route(parts.uri.path()) else {
        return error_response(&CaError::http(404, ErrorCode::Unknown, "Not found"), head);
    };
    if !ep.methods().contains(&parts.method.as_str()) {
        return error_response(&method_not_allowed(&parts.method), head);
    }
    let body = match axum::body::to_bytes(body, srv.max_body).await {
        Ok(b) => b,
        Err(e) => {
            return error_response(
                &CaError::http(
                    413,
                    ErrorCode::ReadingReqBody,
                    format!("Failed reading request body: {e}"),
                ),
                head,
            );
        }
    };
    let json = match request::normalize_body(&body) {
        Ok(v) => v,
        Err(e) => return error_response(&e, head),
    };
    let uri = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| parts.uri.path().to_string());
    let ctx = Ctx {
        method: parts.method.clone(),
        query: parse_query(parts.uri.query()),
        uri,
        headers: parts.headers,
        body,
        json,
        var,
    };
    // Registry access is blocking (SQLite); keep it off the async worker threads.
    let result = tokio::task::spawn_blocking(move || {
        let r = srv.dispatch(ep, &ctx);
        (r, ctx.method)
    })
    .await;
    match result {
        Ok((Ok(o), _)) => {
            let mut resp = envelope(o.status, o.result, None, head);
            if let Some(loc) = o.location
                && let Ok(v) = HeaderValue::from_str(&loc)
            {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            resp
        }
        Ok((Err(e), _)) => error_response(&e, head),
        Err(e) => error_response(&CaError::Internal(format!("handler failed: {e}")), head),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_both_prefixes() {
        assert_eq!(route("/cainfo"), Some((Endpoint::CaInfo, None)));
        assert_eq!(route("/api/v1/enroll"), Some((Endpoint::Enroll, None)));
        assert_eq!(
            route("/api/v1/identities/os1"),
            Some((Endpoint::Identity, Some("os1".into())))
        );
        assert_eq!(route("/api/v1/nope"), None);
        assert_eq!(route("/identities/a/b"), None);
    }
}
