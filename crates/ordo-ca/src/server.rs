//! The HTTPS server: several CAs in one process, Fabric CA's endpoints under `/` and
//! `/api/v1/`, the `{result, errors, messages, success}` envelope.
//!
//! Routing is done here rather than by axum's router so that every failure (unknown path, wrong
//! method, oversized body) gets Fabric CA's envelope and error codes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower::ServiceExt;

use crate::attrs::{self, AttrReq};
use crate::authz::{self, AuthzError};
use crate::ca::{Ca, IssueRequest, csr_error};
use crate::config::{BootstrapIdentity, ServerConfig};
use crate::error::{CaError, ErrorCode};
use crate::registry::{Attribute, CertFilter, IdentityRecord, RegistryError, SqliteDb};
use crate::x509 as x;

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

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

/// One request, with the raw body (tokens sign the bytes as sent).
struct Ctx {
    method: Method,
    /// Path and query exactly as sent (Go's `RequestURI`).
    uri: String,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
    json: Value,
    var: Option<String>,
}

impl Ctx {
    /// A body field, matching the key case-insensitively as Go's JSON decoding does.
    fn field(&self, name: &str) -> Option<&Value> {
        field(&self.json, name)
    }

    /// A string field; absent or null is empty. Any other type is a bad request, as Go's JSON
    /// decoding into Fabric CA's typed request structs refuses it.
    fn str_field(&self, name: &str) -> Result<String, CaError> {
        match self.field(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            None | Some(Value::Null) => Ok(String::new()),
            Some(_) => Err(CaError::bad_request(
                ErrorCode::BadReqBody,
                format!("'{name}' must be a string"),
            )),
        }
    }

    fn bool_field(&self, name: &str) -> Result<bool, CaError> {
        match self.field(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(CaError::bad_request(
                ErrorCode::BadReqBody,
                format!("'{name}' must be a boolean"),
            )),
        }
    }

    fn int_field(&self, name: &str) -> Result<i64, CaError> {
        match self.field(name) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => v.as_i64().ok_or_else(|| {
                CaError::bad_request(
                    ErrorCode::BadReqBody,
                    format!("'{name}' must be an integer"),
                )
            }),
        }
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

fn field<'a>(json: &'a Value, name: &str) -> Option<&'a Value> {
    json.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

fn registry_err(e: RegistryError) -> CaError {
    CaError::Registry(e)
}

fn identity_info(r: &IdentityRecord) -> Value {
    json!({
        "id": r.id,
        "type": r.id_type,
        "affiliation": r.affiliation,
        "attrs": r.attrs,
        "max_enrollments": r.max_enrollments,
    })
}

fn parse_attrs(v: Option<&Value>) -> Result<Vec<Attribute>, CaError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) => serde_json::from_value::<Vec<Attribute>>(v.clone()).map_err(|e| {
            CaError::bad_request(ErrorCode::BadReqBody, format!("invalid attrs: {e}"))
        }),
    }
}

const REVOCATION_REASONS: [&str; 11] = [
    "unspecified",
    "keycompromise",
    "cacompromise",
    "affiliationchanged",
    "superseded",
    "cessationofoperation",
    "certificatehold",
    "",
    "removefromcrl",
    "privilegewithdrawn",
    "aacompromise",
];

/// RFC 3339 (`2006-01-02T15:04:05Z07:00`, optional fraction) to Unix seconds. Every slice is
/// taken with `get`: the text comes from clients and may hold multi-byte characters anywhere.
fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = s.get(19..)?;
    if let Some(r) = rest.strip_prefix('.') {
        let n = r.bytes().take_while(u8::is_ascii_digit).count();
        rest = r.get(n..)?;
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.get(3..4) == Some(":") => {
            let sign = match rest.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let (yy, mm) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se - offset)
}

impl CaServer {
    /// Opens the database and every configured CA, registering the bootstrap identities and
    /// the configured affiliations the first time.
    pub fn open(cfg: &ServerConfig, bootstrap: Option<BootstrapIdentity>) -> Result<Self, CaError> {
        cfg.validate()?;
        let db = SqliteDb::open(&cfg.resolve(&cfg.db.datasource)).map_err(registry_err)?;
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

    /// Chooses the CA: `?ca=`, then body `caname`/`CAName`, then the default.
    fn select_ca(&self, ctx: &Ctx) -> Result<Arc<Ca>, CaError> {
        let name = match ctx.query.get("ca") {
            Some(n) if !n.is_empty() => n.clone(),
            _ => ctx.str_field("caname")?,
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

    fn enroll(&self, ctx: &Ctx, ca: &Ca) -> Result<Ok200, CaError> {
        let h = ctx.auth_header()?;
        let (id, secret) = crate::auth::parse_basic(h).ok_or_else(|| {
            CaError::Authentication("No user/pass in authorization header".into())
        })?;
        let ca_max = ca.settings.max_enrollments;
        if ca_max == 0 {
            return Err(CaError::Authentication("Enroll is disabled".into()));
        }
        let user = ca
            .registry
            .get_identity(&id)?
            .ok_or_else(|| CaError::Authentication(format!("Failed to get user: {id}")))?;
        let allowed = ca.settings.password_attempts;
        if allowed > 0 {
            let attempts = ca.registry.failed_logins(&id)?;
            if attempts >= allowed {
                // Fabric CA sends this one with its own code, not the generic 20.
                return Err(CaError::http(
                    401,
                    ErrorCode::PasswordAttempts,
                    format!(
                        "Incorrect password entered {attempts} times, max incorrect password limit of {allowed} reached"
                    ),
                ));
            }
        }
        if !attrs::verify_secret(&secret, &user.secret_hash) {
            if allowed > 0 {
                ca.registry.record_login(&id, false)?;
            }
            return Err(CaError::Authentication(format!(
                "Login failure: password mismatch for {id}"
            )));
        }
        if allowed > 0 {
            ca.registry.record_login(&id, true)?;
        }
        if user.max_enrollments == 0 {
            return Err(CaError::Authentication(format!(
                "Zero is an invalid value for maximum enrollments on identity '{id}'"
            )));
        }
        if user.is_revoked() {
            return Err(CaError::Authentication(format!(
                "User {id} is revoked; access denied"
            )));
        }
        let max = attrs::effective_max(user.max_enrollments, ca_max);
        if max != -1 && user.state >= max {
            return Err(CaError::Authentication(format!(
                "The identity {id} has already enrolled {max} times, it has reached its maximum enrollment allowance"
            )));
        }
        handle_enroll(ctx, ca, &user, Some(max))
    }

    /// `register`, and `POST identities` (`add = true`: 201 with the identity's info).
    fn register(&self, ctx: &Ctx, ca: &Ca, add: bool) -> Result<Ok200, CaError> {
        let (registrar, _, _) = self.token_auth(ctx, ca)?;
        let id = ctx.str_field("id")?;
        if id.is_empty() {
            return Err(CaError::bad_request(
                ErrorCode::BadReqBody,
                "Missing 'ID' in request to register a new identity",
            ));
        }
        let mut affiliation = ctx.str_field("affiliation")?;
        if affiliation.is_empty() {
            affiliation = registrar.affiliation.clone();
        } else if affiliation == "." {
            affiliation.clear();
        }
        let mut id_type = ctx.str_field("type")?;
        if id_type.is_empty() {
            id_type = registrar.id_type.clone();
        }
        let mut attrs = parse_attrs(ctx.field("attrs"))?;
        let exists = affiliation.is_empty() || ca.registry.affiliations()?.contains(&affiliation);
        authz::can_register(&registrar, &id, &id_type, &affiliation, exists)?;
        authz::can_register_attributes(&attrs, None, &registrar).map_err(|reason| {
            AuthzError::Registration {
                id: id.clone(),
                reason: Box::new(reason),
            }
        })?;
        let max = attrs::max_enrollments(
            ctx.int_field("max_enrollments")?,
            ca.settings.max_enrollments,
        )?;
        let mut secret = ctx.str_field("secret")?;
        if secret.is_empty() {
            secret = attrs::random_secret()?;
        }
        for (n, v) in [
            (attrs::ENROLLMENT_ID, id.as_str()),
            (attrs::TYPE, id_type.as_str()),
            (attrs::AFFILIATION, affiliation.as_str()),
        ] {
            attrs.push(Attribute {
                name: n.into(),
                value: v.into(),
                ecert: true,
            });
        }
        let rec = IdentityRecord {
            id: id.clone(),
            secret_hash: attrs::hash_secret(&secret)?,
            id_type,
            affiliation,
            attrs,
            max_enrollments: max,
            state: 0,
        };
        match ca.registry.insert_identity(&rec) {
            Ok(()) => {}
            Err(RegistryError::Duplicate(_)) => {
                return Err(CaError::http(
                    409,
                    ErrorCode::DupIdentityReg,
                    format!("Identity '{id}' is already registered"),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(ca = ca.name(), registrar = %registrar.id, %id, "registered identity");
        let location = format!("/api/v1/identities/{id}");
        if add {
            let mut info = identity_info(&rec);
            info["secret"] = json!(secret);
            info["caname"] = json!(ca.name());
            return Ok(Ok200 {
                status: 201,
                result: info,
                location: None,
            });
        }
        Ok(Ok200 {
            status: 201,
            result: json!({ "secret": secret }),
            location: Some(location),
        })
    }

    fn revoke(&self, ctx: &Ctx, ca: &Ca) -> Result<Ok200, CaError> {
        let (caller, caller_serial, caller_aki) = self.token_auth(ctx, ca)?;
        let name = ctx.str_field("id")?;
        let serial = x::normalize_hex(&ctx.str_field("serial")?);
        let aki = x::normalize_hex(&ctx.str_field("aki")?);
        let reason_name = ctx.str_field("reason")?.to_lowercase();
        let reason = REVOCATION_REASONS
            .iter()
            .position(|r| !r.is_empty() && *r == reason_name)
            .unwrap_or(0) as i64;
        let gencrl = ctx.bool_field("gencrl")?;
        let now = x::now_secs() as i64;
        let mut revoked = Vec::new();
        if !serial.is_empty() && !aki.is_empty() {
            let cert = ca.registry.get_certificate(&serial, &aki)?.ok_or_else(|| {
                CaError::http(
                    404,
                    ErrorCode::RevCertNotFound,
                    format!("Certificate with serial {serial} and AKI {aki} was not found"),
                )
            })?;
            authz::can_revoke(&caller, &cert.id)?;
            if cert.status == "revoked" {
                return Err(CaError::http(
                    404,
                    ErrorCode::CertAlreadyRevoked,
                    format!("Certificate with serial {serial} and AKI {aki} was already revoked"),
                ));
            }
            if !name.is_empty() && name != cert.id {
                return Err(CaError::bad_request(
                    ErrorCode::CertWrongOwner,
                    format!(
                        "Certificate with serial {serial} and AKI {aki} is not owned by {name}"
                    ),
                ));
            }
            let owner = ca.registry.get_identity(&cert.id)?.ok_or_else(|| {
                CaError::http(
                    404,
                    ErrorCode::RevokeIdNotFound,
                    format!("Identity {} was not found", cert.id),
                )
            })?;
            if !(serial == caller_serial && aki == caller_aki) {
                authz::can_manage(&caller, &owner)?;
            }
            if !ca.registry.revoke_certificate(&serial, &aki, reason, now)? {
                return Err(CaError::http(
                    404,
                    ErrorCode::CertAlreadyRevoked,
                    format!("Certificate with serial {serial} and AKI {aki} was already revoked"),
                ));
            }
            revoked.push(json!({"Serial": serial, "AKI": aki}));
        } else if !name.is_empty() {
            authz::can_revoke(&caller, &name)?;
            let target = ca.registry.get_identity(&name)?.ok_or_else(|| {
                CaError::http(
                    404,
                    ErrorCode::RevokeIdNotFound,
                    format!("Identity {name} was not found"),
                )
            })?;
            if caller.id != target.id {
                authz::can_manage(&caller, &target)?;
            }
            for r in ca.registry.revoke_identity(&name, reason, now)? {
                revoked.push(json!({"Serial": r.serial, "AKI": r.aki}));
            }
        } else {
            return Err(CaError::bad_request(
                ErrorCode::MissingRevokeArgs,
                "Either Name or Serial and AKI are required for a revoke request",
            ));
        }
        tracing::info!(ca = ca.name(), caller = %caller.id, count = revoked.len(), "revoked");
        let mut crl = String::new();
        if gencrl && !revoked.is_empty() {
            crl = B64.encode(self.crl_pem(ca, None, Some(now), Some(now), None)?);
        }
        ok(200, json!({"RevokedCerts": revoked, "CRL": crl}))
    }

    fn crl_pem(
        &self,
        ca: &Ca,
        revoked_after: Option<i64>,
        revoked_before: Option<i64>,
        expire_after: Option<i64>,
        expire_before: Option<i64>,
    ) -> Result<String, CaError> {
        let revoked = ca.registry.list_certificates(&CertFilter {
            revoked_after: Some(revoked_after.unwrap_or(0)),
            revoked_before,
            expired_after: expire_after,
            expired_before: expire_before,
            ..CertFilter::default()
        })?;
        ca.crl(&revoked)
    }

    fn gencrl(&self, ctx: &Ctx, ca: &Ca) -> Result<Ok200, CaError> {
        let (caller, _, _) = self.token_auth(ctx, ca)?;
        authz::can_gencrl(&caller)?;
        let time = |name: &str| -> Result<Option<i64>, CaError> {
            let s = ctx.str_field(name)?;
            if s.is_empty() || s.starts_with("0001-01-01") {
                return Ok(None);
            }
            parse_rfc3339(&s).map(Some).ok_or_else(|| {
                CaError::bad_request(
                    ErrorCode::InvalidRevokedAfter,
                    format!("invalid time '{s}' in {name}"),
                )
            })
        };
        let now = x::now_secs() as i64;
        let revoked_after = time("revokedafter")?;
        let revoked_before = time("revokedbefore")?.unwrap_or(now);
        if revoked_after.is_some_and(|a| a > revoked_before) {
            return Err(CaError::bad_request(
                ErrorCode::InvalidRevokedAfter,
                "Revoked after timestamp is greater than revoked before timestamp",
            ));
        }
        // By default only unexpired certificates are listed, as Fabric CA does.
        let expire_after = time("expireafter")?.unwrap_or(now);
        let expire_before = time("expirebefore")?;
        let crl = self.crl_pem(
            ca,
            revoked_after,
            Some(revoked_before),
            Some(expire_after),
            expire_before,
        )?;
        ok(200, json!({"CRL": B64.encode(crl)}))
    }

    fn list_identities(&self, ctx: &Ctx, ca: &Ca) -> Result<Ok200, CaError> {
        let (caller, _, _) = self.token_auth(ctx, ca)?;
        authz::is_registrar(&caller)?;
        let ids: Vec<Value> = ca
            .registry
            .list_identities()?
            .iter()
            .filter(|i| authz::can_manage(&caller, i).is_ok())
            .map(identity_info)
            .collect();
        ok(200, json!({"identities": ids, "caname": ca.name()}))
    }

    fn identity(&self, ctx: &Ctx, ca: &Ca) -> Result<Ok200, CaError> {
        let (caller, _, _) = self.token_auth(ctx, ca)?;
        let id = ctx.var.clone().unwrap_or_default();
        let not_found = || {
            CaError::http(
                404,
                ErrorCode::GettingUser,
                format!("Failed to get identity '{id}'"),
            )
        };
        match ctx.method {
            Method::GET => {
                let rec = ca.registry.get_identity(&id)?.ok_or_else(not_found)?;
                authz::can_manage(&caller, &rec)?;
                let mut info = identity_info(&rec);
                info["caname"] = json!(ca.name());
                ok(200, info)
            }
            Method::DELETE => {
                if !ca.settings.allow_remove_identities {
                    return Err(CaError::http(
                        403,
                        ErrorCode::RemoveIdentity,
                        "Identity removal is disabled",
                    ));
                }
                if id == caller.id && !ctx.bool_query("force")? {
                    return Err(CaError::http(
                        403,
                        ErrorCode::RemoveIdentity,
                        "Need to use 'force' option to delete your own identity",
                    ));
                }
                let rec = ca.registry.get_identity(&id)?.ok_or_else(not_found)?;
                authz::can_manage(&caller, &rec)?;
                // Fabric CA revokes the certificates of a removed identity.
                ca.registry.revoke_identity(&id, 0, x::now_secs() as i64)?;
                ca.registry.delete_identity(&id)?;
                let mut info = identity_info(&rec);
                info["caname"] = json!(ca.name());
                ok(200, info)
            }
            Method::PUT => self.modify_identity(ctx, ca, &caller, &id),
            _ => Err(method_not_allowed(&ctx.method)),
        }
    }

    fn modify_identity(
        &self,
        ctx: &Ctx,
        ca: &Ca,
        caller: &IdentityRecord,
        id: &str,
    ) -> Result<Ok200, CaError> {
        let mut rec = ca.registry.get_identity(id)?.ok_or_else(|| {
            CaError::http(
                404,
                ErrorCode::GettingUser,
                format!("Failed to get identity '{id}'"),
            )
        })?;
        authz::can_manage(caller, &rec)?;
        let new_type = ctx.str_field("type")?;
        if !new_type.is_empty() {
            authz::can_act_on_type(caller, &new_type)?;
            rec.id_type = new_type;
        }
        let new_aff = ctx.str_field("affiliation")?;
        if !new_aff.is_empty() {
            let aff = if new_aff == "." {
                String::new()
            } else {
                new_aff
            };
            authz::contains_affiliation(caller, &aff)?;
            if !aff.is_empty() && !ca.registry.affiliations()?.contains(&aff) {
                return Err(CaError::bad_request(
                    ErrorCode::ModifyingIdentity,
                    format!("Affiliation '{aff}' is not supported"),
                ));
            }
            rec.affiliation = aff;
        }
        let req_attrs = parse_attrs(ctx.field("attrs"))?;
        authz::can_register_attributes(&req_attrs, Some(&rec), caller)?;
        for a in req_attrs {
            rec.attrs.retain(|x| x.name != a.name);
            // An empty value deletes the attribute.
            if !a.value.is_empty() {
                rec.attrs.push(a);
            }
        }
        for (n, v) in [
            (attrs::TYPE, rec.id_type.clone()),
            (attrs::AFFILIATION, rec.affiliation.clone()),
        ] {
            if let Some(a) = rec.attrs.iter_mut().find(|a| a.name == n) {
                a.value = v;
            }
        }
        match ctx.int_field("max_enrollments")? {
            0 => {}
            -2 => rec.max_enrollments = 0,
            n => rec.max_enrollments = attrs::max_enrollments(n, ca.settings.max_enrollments)?,
        }
        let secret = ctx.str_field("secret")?;
        if !secret.is_empty() {
            rec.secret_hash = attrs::hash_secret(&secret)?;
        }
        ca.registry.update_identity(&rec)?;
        if !secret.is_empty() {
            // A new secret unlocks an identity locked by wrong secrets.
            ca.registry.record_login(id, true)?;
        }
        let mut info = identity_info(&rec);
        if !secret.is_empty() {
            info["secret"] = json!(secret);
        }
        info["caname"] = json!(ca.name());
        ok(200, info)
    }

    fn affiliations(&self, ep: Endpoint, ctx: &Ctx, ca: &Ca) -> Result<Ok200, CaError> {
        let (caller, _, _) = self.token_auth(ctx, ca)?;
        let all = ca.registry.affiliations()?;
        match (ep, ctx.method.clone()) {
            (Endpoint::Affiliations, Method::GET) | (Endpoint::Affiliation, Method::GET) => {
                let root = if ep == Endpoint::Affiliation {
                    let name = ctx.var.clone().unwrap_or_default();
                    authz::contains_affiliation(&caller, &name)?;
                    if !all.contains(&name) {
                        return Err(CaError::http(
                            404,
                            ErrorCode::GettingAffiliation,
                            format!("Failed getting affiliation '{name}'"),
                        ));
                    }
                    name
                } else {
                    caller.affiliation.clone()
                };
                let mut tree = affiliation_tree(&root, &all);
                tree["caname"] = json!(ca.name());
                ok(200, tree)
            }
            (Endpoint::Affiliations, Method::POST) => {
                authz::can_manage_affiliations(&caller)?;
                let name = ctx.str_field("name")?;
                if name.is_empty() || name.split('.').any(str::is_empty) {
                    return Err(CaError::bad_request(
                        ErrorCode::UpdateConfigAddAff,
                        format!("invalid affiliation name '{name}'"),
                    ));
                }
                authz::contains_affiliation(&caller, &name)?;
                if all.contains(&name) {
                    return Err(CaError::http(
                        409,
                        ErrorCode::UpdateConfigAddAff,
                        "Affiliation already exists",
                    ));
                }
                let force = ctx.bool_query("force")? || ctx.bool_field("force")?;
                let parts: Vec<&str> = name.split('.').collect();
                let parents: Vec<String> = (1..parts.len()).map(|i| parts[..i].join(".")).collect();
                let missing: Vec<&String> = parents.iter().filter(|p| !all.contains(p)).collect();
                if !missing.is_empty() && !force {
                    return Err(CaError::bad_request(
                        ErrorCode::UpdateConfigAddAff,
                        "Parent affiliation does not exist, 'force' option required on request to add affiliation",
                    ));
                }
                for p in missing {
                    ca.registry.add_affiliation(p)?;
                }
                ca.registry.add_affiliation(&name)?;
                ok(201, json!({"name": name, "caname": ca.name()}))
            }
            (Endpoint::Affiliation, Method::DELETE) => {
                authz::can_manage_affiliations(&caller)?;
                if !ca.settings.allow_remove_affiliations {
                    return Err(AuthzError::AffiliationRemovalDisabled.into());
                }
                let name = ctx.var.clone().unwrap_or_default();
                authz::can_remove_affiliation(&caller, &name)?;
                if !all.contains(&name) {
                    return Err(CaError::http(
                        404,
                        ErrorCode::GettingAffiliation,
                        format!("Failed getting affiliation '{name}'"),
                    ));
                }
                let force = ctx.bool_query("force")?;
                let subs = all
                    .iter()
                    .filter(|a| authz::in_subtree(&name, a) && **a != name)
                    .count();
                let ids: Vec<IdentityRecord> = ca
                    .registry
                    .list_identities()?
                    .into_iter()
                    .filter(|i| {
                        !i.affiliation.is_empty() && authz::in_subtree(&name, &i.affiliation)
                    })
                    .collect();
                if (subs > 0 || !ids.is_empty()) && !force {
                    return Err(CaError::bad_request(
                        ErrorCode::UpdateConfigRemoveAff,
                        format!(
                            "Can't remove affiliation '{name}': it has sub-affiliations or identities; use 'force'"
                        ),
                    ));
                }
                let now = x::now_secs() as i64;
                for i in &ids {
                    authz::can_manage(&caller, i)?;
                }
                for i in &ids {
                    ca.registry.revoke_identity(&i.id, 0, now)?;
                    ca.registry.delete_identity(&i.id)?;
                }
                let removed = ca.registry.remove_affiliation(&name)?;
                let mut tree = affiliation_tree(&name, &removed);
                tree["identities"] = Value::Array(ids.iter().map(identity_info).collect());
                tree["caname"] = json!(ca.name());
                ok(200, tree)
            }
            (Endpoint::Affiliation, Method::PUT) => {
                authz::can_manage_affiliations(&caller)?;
                let old = ctx.var.clone().unwrap_or_default();
                let new = ctx.str_field("name")?;
                if new.is_empty() || new.split('.').any(str::is_empty) {
                    return Err(CaError::bad_request(
                        ErrorCode::UpdateConfigModifyAff,
                        format!("invalid affiliation name '{new}'"),
                    ));
                }
                authz::contains_affiliation(&caller, &old)?;
                authz::contains_affiliation(&caller, &new)?;
                if !all.contains(&old) {
                    return Err(CaError::http(
                        404,
                        ErrorCode::GettingAffiliation,
                        format!("Failed getting affiliation '{old}'"),
                    ));
                }
                if all.contains(&new) {
                    return Err(CaError::http(
                        409,
                        ErrorCode::UpdateConfigModifyAff,
                        format!("Affiliation '{new}' already exists"),
                    ));
                }
                let affected: Vec<String> = ca
                    .registry
                    .list_identities()?
                    .into_iter()
                    .filter(|i| {
                        !i.affiliation.is_empty() && authz::in_subtree(&old, &i.affiliation)
                    })
                    .map(|i| i.id)
                    .collect();
                if !affected.is_empty() {
                    authz::can_rename_with_identities(&caller)?;
                    if !(ctx.bool_query("force")? || ctx.bool_field("force")?) {
                        return Err(CaError::bad_request(
                            ErrorCode::UpdateConfigModifyAff,
                            format!(
                                "The request to modify affiliation '{old}' has the following identities associated: {}. Need to use 'force' to modify identities and affiliation",
                                affected.join(", ")
                            ),
                        ));
                    }
                }
                let (renamed, moved) = ca.registry.rename_affiliation(&old, &new)?;
                let mut tree = affiliation_tree(&new, &renamed);
                if !moved.is_empty() {
                    tree["identities"] = Value::Array(moved.iter().map(identity_info).collect());
                }
                tree["caname"] = json!(ca.name());
                ok(200, tree)
            }
            _ => Err(method_not_allowed(&ctx.method)),
        }
    }

    fn certificates(&self, ctx: &Ctx, ca: &Ca) -> Result<Ok200, CaError> {
        if ctx.method == Method::DELETE {
            return Err(CaError::http(501, ErrorCode::Unknown, "Not Implemented"));
        }
        let (caller, _, _) = self.token_auth(ctx, ca)?;
        authz::can_list_certificates(&caller)?;
        let q = |k: &str| ctx.query.get(k).filter(|v| !v.is_empty()).cloned();
        let time = |k: &str| -> Result<Option<i64>, CaError> {
            match q(k) {
                None => Ok(None),
                Some(s) => parse_rfc3339(&s).map(Some).ok_or_else(|| {
                    CaError::bad_request(
                        ErrorCode::BadReqBody,
                        format!("invalid time '{s}' in {k}"),
                    )
                }),
            }
        };
        let manageable: Vec<String> = ca
            .registry
            .list_identities()?
            .iter()
            .filter(|i| authz::can_manage(&caller, i).is_ok())
            .map(|i| i.id.clone())
            .collect();
        let filter = CertFilter {
            id: q("id"),
            serial: q("serial").map(|s| x::normalize_hex(&s)),
            aki: q("aki").map(|s| x::normalize_hex(&s)),
            not_revoked: ctx.bool_query("notrevoked")?,
            not_expired: ctx.bool_query("notexpired")?,
            revoked_after: time("revoked_start")?,
            revoked_before: time("revoked_end")?,
            expired_after: time("expired_start")?,
            expired_before: time("expired_end")?,
            ids: Some(manageable),
        };
        let certs: Vec<Value> = ca
            .registry
            .list_certificates(&filter)?
            .into_iter()
            .map(|c| json!({"PEM": c.pem}))
            .collect();
        ok(200, json!({"certs": certs, "caname": ca.name()}))
    }
}

/// `{name, affiliations: [{name, affiliations: [...]}]}` rooted at `root` (full names).
fn affiliation_tree(root: &str, all: &[String]) -> Value {
    fn children(parent: &str, all: &[String]) -> Vec<Value> {
        all.iter()
            .filter(|a| match a.rsplit_once('.') {
                Some((p, _)) => p == parent,
                None => parent.is_empty(),
            })
            .map(|a| {
                let kids = children(a, all);
                if kids.is_empty() {
                    json!({"name": a})
                } else {
                    json!({"name": a, "affiliations": kids})
                }
            })
            .collect()
    }
    let kids = children(root, all);
    if kids.is_empty() {
        json!({"name": root})
    } else {
        json!({"name": root, "affiliations": kids})
    }
}

fn method_not_allowed(m: &Method) -> CaError {
    CaError::http(
        405,
        ErrorCode::MethodNotAllowed,
        format!("Method {m} is not allowed"),
    )
}

fn cainfo(ca: &Ca) -> Value {
    json!({
        "CAName": ca.name(),
        "CAChain": B64.encode(ca.chain_pem()),
        "IssuerPublicKey": "",
        "IssuerRevocationPublicKey": "",
        "Version": env!("CARGO_PKG_VERSION"),
    })
}

/// A CSR subject field longer than RFC 3280 allows.
#[derive(Debug, thiserror::Error)]
#[error("The {what} '{value}' exceeds the maximum character limit of {max}")]
struct FieldTooLong {
    what: &'static str,
    value: String,
    max: usize,
}

/// Maximum lengths of CSR subject fields (RFC 3280 upper bounds, `csrInputLengthCheck`).
fn csr_length_check(s: &x::Subject) -> Result<(), FieldTooLong> {
    let check = |what: &'static str, values: &[String], max: usize| -> Result<(), FieldTooLong> {
        match values.iter().find(|v| v.chars().count() > max) {
            Some(v) => Err(FieldTooLong {
                what,
                value: v.clone(),
                max,
            }),
            None => Ok(()),
        }
    };
    check("CN", std::slice::from_ref(&s.cn), 64)?;
    check("serial number", std::slice::from_ref(&s.serial_number), 64)?;
    check("organizational unit name", &s.ou, 64)?;
    check("organization name", &s.o, 64)?;
    check("country name", &s.c, 2)?;
    check("locality name", &s.l, 128)?;
    check("state name", &s.st, 128)?;
    Ok(())
}

/// The common part of enroll and reenroll (`handleEnroll`). `count` is the enrollment limit to
/// enforce (Basic-auth enroll), `None` for reenroll. Nothing is written unless a certificate is
/// issued.
fn handle_enroll(
    ctx: &Ctx,
    ca: &Ca,
    user: &IdentityRecord,
    count: Option<i64>,
) -> Result<Ok200, CaError> {
    if ctx.body.is_empty() {
        return Err(CaError::bad_request(
            ErrorCode::EmptyReqBody,
            "Empty request body",
        ));
    }
    let profile_name = ctx.str_field("profile")?;
    let profile = ca.profile(&profile_name).ok_or_else(|| {
        CaError::bad_request(
            ErrorCode::BadReqBody,
            format!("Invalid profile: '{profile_name}'"),
        )
    })?;
    let csr_pem = ctx.str_field("certificate_request")?;
    if csr_pem.is_empty() {
        return Err(CaError::bad_request(ErrorCode::BadCsr, "CSR Decode failed"));
    }
    let csr = x::parse_csr(&csr_pem).map_err(csr_error)?;
    if csr.subject.cn != user.id {
        return Err(CaError::http(
            403,
            ErrorCode::CnInvalidEnroll,
            "The CSR subject common name must equal the enrollment ID",
        ));
    }
    authz::can_enroll(user, profile.is_ca() || csr.is_ca)?;
    csr_length_check(&csr.subject).map_err(|e| {
        CaError::bad_request(
            ErrorCode::InputValidCsr,
            format!("CSR input validation failed: {e}"),
        )
    })?;
    let hosts: Option<Vec<String>> = match ctx.field("hosts") {
        None | Some(Value::Null) => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|h| {
                    h.as_str().map(str::to_string).ok_or_else(|| {
                        CaError::bad_request(ErrorCode::BadReqBody, "hosts must be strings")
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => {
            return Err(CaError::bad_request(
                ErrorCode::BadReqBody,
                "hosts must be a list",
            ));
        }
    };
    let attr_reqs: Option<Vec<AttrReq>> = match ctx.field("attr_reqs") {
        None | Some(Value::Null) => None,
        Some(v) => Some(serde_json::from_value(v.clone()).map_err(|e| {
            CaError::bad_request(ErrorCode::BadReqBody, format!("invalid attr_reqs: {e}"))
        })?),
    };
    let attrs_ext = attrs::attribute_extension(user, attr_reqs.as_deref())?;
    let issued = ca
        .issue(&IssueRequest {
            csr: &csr,
            enrollment_id: &user.id,
            id_type: &user.id_type,
            affiliation: &user.affiliation,
            hosts: hosts.as_deref(),
            attrs: attrs_ext,
            profile,
        })
        // What can fail here is encoding what the request supplied (a host that is not IA5,
        // a subject value DER refuses): the request's fault, not the server's.
        .map_err(|e| match e {
            CaError::Internal(m) => CaError::bad_request(ErrorCode::BadCsr, m),
            other => other,
        })?;
    match ca
        .registry
        .record_enrollment(&user.id, count, &issued.record)
    {
        Ok(()) => {}
        Err(e @ RegistryError::Exhausted { .. }) => {
            return Err(CaError::Authentication(e.to_string()));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(ca = ca.name(), id = %user.id, serial = %issued.record.serial, profile = %profile_name, "issued certificate");
    ok(
        201,
        json!({
            "Cert": B64.encode(&issued.pem),
            "ServerInfo": cainfo(ca),
        }),
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
    let json = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice::<Value>(&body) {
            // Every Fabric CA request body is a JSON object (or null).
            Ok(v @ (Value::Object(_) | Value::Null)) => v,
            Ok(_) => {
                return error_response(
                    &CaError::bad_request(
                        ErrorCode::BadReqBody,
                        "Invalid request body: not a JSON object",
                    ),
                    head,
                );
            }
            Err(e) => {
                return error_response(
                    &CaError::bad_request(
                        ErrorCode::BadReqBody,
                        format!("Invalid request body: {e}"),
                    ),
                    head,
                );
            }
        }
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
    let slots = Arc::new(tokio::sync::Semaphore::new(cfg.max_connections));
    let task = tokio::spawn(async move {
        loop {
            // A slot first: at the limit, connections wait in the kernel's backlog.
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
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
            let router = router.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        router.clone().oneshot(req.map(Body::new))
                    });
                let builder = Builder::new(TokioExecutor::new());
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
                    None => builder.serve_connection(TokioIo::new(tcp), service).await,
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

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00.5+01:00"),
            Some(1_709_204_400)
        );
        assert_eq!(parse_rfc3339("garbage"), None);
        // Multi-byte characters where ASCII is expected are refused, not a panic.
        assert_eq!(parse_rfc3339("2024-02-29T12:00:0é+01:00"), None);
        assert_eq!(parse_rfc3339("2024-02-29T12:00:00é1:00"), None);
        assert_eq!(parse_rfc3339("2024-02-29T12:00:00.9é"), None);
        assert_eq!(parse_rfc3339("2024-02-29T12:00:00+0é:0"), None);
    }
}
