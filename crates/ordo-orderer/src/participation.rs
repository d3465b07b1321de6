//! The channel participation REST API (Fabric's `orderer/common/channelparticipation/restapi.go`),
//! as osnadmin uses it: list, list one, join (multipart `config-block`), remove, under
//! `/participation/v1/`, with Fabric's status codes, JSON shapes and headers. Ordo runs without
//! a system channel, so the system-channel cases of Fabric's API (405 while one exists, joining
//! one) never arise and `systemChannel` is always `null`.
//!
//! The node implements [`ChannelParticipation`]; this module only speaks HTTP.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Request};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ordo_proto::common::Block;
use prost::Message;
use serde::Serialize;

use crate::http::PeerCertificates;

/// The URL prefix of the API.
pub const URL_BASE: &str = "/participation/v1";
/// The multipart field that carries the join block.
pub const CONFIG_BLOCK_FIELD: &str = "config-block";

/// `consensusRelation` of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsensusRelation {
    Consenter,
    Follower,
    ConfigTracker,
    Other,
}

/// `status` of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelStatus {
    Active,
    Onboarding,
    Inactive,
    Failed,
}

/// Fabric's `types.ChannelInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelInfo {
    pub name: String,
    pub url: String,
    pub consensus_relation: ConsensusRelation,
    pub status: ChannelStatus,
    pub height: u64,
}

/// Fabric's `types.ChannelInfoShort`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelInfoShort {
    pub name: String,
    pub url: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChannelList {
    system_channel: Option<ChannelInfoShort>,
    channels: Option<Vec<ChannelInfoShort>>,
}

/// What a backend refuses, mapped to Fabric's HTTP answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParticipationError {
    #[error("channel does not exist")]
    NotFound,
    #[error("channel already exists")]
    AlreadyExists,
    #[error("channel pending removal")]
    PendingRemoval,
    #[error("{0}")]
    RemovalFailed(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Internal(String),
}

/// A boxed future, for the async methods of the backend.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the node provides to the API.
pub trait ChannelParticipation: Send + Sync + 'static {
    /// Channel names, sorted.
    fn list(&self) -> Vec<String>;
    fn info(&self, channel: &str) -> Result<ChannelInfo, ParticipationError>;
    fn join(
        &self,
        channel: String,
        block: Block,
        bytes: Bytes,
    ) -> BoxFuture<'_, Result<ChannelInfo, ParticipationError>>;
    fn remove(&self, channel: String) -> BoxFuture<'_, Result<(), ParticipationError>>;
}

/// Settings from orderer.yaml.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub enabled: bool,
    pub max_request_body_size: u64,
    /// The admin listener has TLS on: a verified client certificate is required.
    pub secure: bool,
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    #[derive(Serialize)]
    struct E {
        error: String,
    }
    let body = serde_json::to_string(&E { error: msg.into() }).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn json_ok<T: Serialize>(
    status: StatusCode,
    body: &T,
    extra: &[(header::HeaderName, String)],
) -> Response {
    let text = serde_json::to_string(body).unwrap_or_default();
    let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], text).into_response();
    for (k, v) in extra {
        if let Ok(v) = v.parse() {
            resp.headers_mut().insert(k.clone(), v);
        }
    }
    resp
}

fn not_allowed(allow: &'static str) -> Response {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "invalid request method");
    r.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    r
}

/// Fabric's `configtx.ValidateChannelID` wrapped as the API words it: the error response, if
/// the name is not valid.
fn bad_name(name: &str) -> Option<Response> {
    ordo_config::configtx::validate_channel_id(name)
        .err()
        .map(|e| {
            error(
                StatusCode::BAD_REQUEST,
                format!("invalid channel ID '{name}': {e}"),
            )
        })
}

fn accepts_json(headers: &HeaderMap) -> bool {
    match headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(a) => a.split(',').any(|t| {
            let t = t.split(';').next().unwrap_or("").trim();
            t.is_empty() || t == "*/*" || t == "application/*" || t == "application/json"
        }),
    }
}

fn info_response(status: StatusCode, info: &ChannelInfo, location: bool) -> Response {
    let extra = if location {
        vec![(header::LOCATION, info.url.clone())]
    } else {
        vec![(header::CACHE_CONTROL, "no-store".to_string())]
    };
    json_ok(status, info, &extra)
}

fn backend_error(e: ParticipationError) -> Response {
    match e {
        ParticipationError::NotFound => error(StatusCode::NOT_FOUND, e.to_string()),
        ParticipationError::AlreadyExists => not_allowed_with(e.to_string(), "GET, DELETE"),
        ParticipationError::PendingRemoval => error(StatusCode::CONFLICT, e.to_string()),
        ParticipationError::RemovalFailed(m) | ParticipationError::Internal(m) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, m)
        }
        ParticipationError::BadRequest(m) => error(StatusCode::BAD_REQUEST, m),
    }
}

fn not_allowed_with(msg: String, allow: &'static str) -> Response {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, msg);
    r.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    r
}

/// The channel a join block is for (Fabric's `ValidateJoinBlock`).
pub(crate) fn validate_join_block(block: &Block) -> Result<String, String> {
    if !ordo_ledger::block::is_config_block(block) {
        return Err("block is not a config block".to_string());
    }
    let env = block
        .data
        .as_ref()
        .and_then(|d| d.data.first())
        .ok_or("block is not a config block")?;
    let env = ordo_proto::common::Envelope::decode(env.clone()).map_err(|e| e.to_string())?;
    let parsed = ordo_config::envelope::parse(&env).map_err(|e| e.to_string())?;
    let ce = ordo_config::envelope::config_envelope(&env).map_err(|e| e.to_string())?;
    let group = ce
        .config
        .and_then(|c| c.channel_group)
        .ok_or("invalid config: no channel group")?;
    if !group.groups.contains_key("Application") && !group.groups.contains_key("Consortiums") {
        return Err("invalid config: must contain application config".to_string());
    }
    Ok(parsed.channel_header.channel_id)
}

async fn join(
    backend: Arc<dyn ChannelParticipation>,
    settings: Settings,
    req: Request,
) -> Response {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if !ct.to_ascii_lowercase().starts_with("multipart/form-data") {
        return error(
            StatusCode::BAD_REQUEST,
            "cannot read form from request body: request Content-Type isn't multipart/form-data",
        );
    }
    let too_large = || {
        error(
            StatusCode::BAD_REQUEST,
            "cannot read form from request body: http: request body too large",
        )
    };
    let limit = usize::try_from(settings.max_request_body_size).unwrap_or(usize::MAX);
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return too_large(),
    };
    let req = Request::from_parts(parts, axum::body::Body::from(bytes));
    let mut form = match Multipart::from_request(req, &()).await {
        Ok(f) => f,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("cannot read form from request body: {e}"),
            );
        }
    };
    let mut files: Vec<(String, Bytes)> = Vec::new();
    loop {
        match form.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_string();
                match field.bytes().await {
                    Ok(b) => files.push((name, b)),
                    Err(e) => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            format!("cannot read form from request body: {e}"),
                        );
                    }
                }
            }
            Ok(None) => break,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read form from request body: {e}"),
                );
            }
        }
    }
    if files.len() != 1 {
        return error(StatusCode::BAD_REQUEST, "form must contain a single part");
    }
    let (name, bytes) = files.remove(0);
    if name != CONFIG_BLOCK_FIELD {
        return error(
            StatusCode::BAD_REQUEST,
            format!("form does not contains part key: {CONFIG_BLOCK_FIELD}"),
        );
    }
    let block = match Block::decode(bytes.clone()) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("cannot unmarshal file part {CONFIG_BLOCK_FIELD} into a block: {e}"),
            );
        }
    };
    let channel = match validate_join_block(&block) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid join block: {e}")),
    };
    if let Some(r) = bad_name(&channel) {
        return r;
    }
    match backend.join(channel, block, bytes).await {
        Ok(info) => info_response(StatusCode::CREATED, &info, true),
        Err(e) => backend_error(e),
    }
}

/// The API's routes; see the module doc.
pub fn router(backend: Arc<dyn ChannelParticipation>, settings: Settings) -> Router {
    let list_backend = backend.clone();
    let collection = move |method: Method, headers: HeaderMap, req: Request| {
        let backend = list_backend.clone();
        async move {
            if let Some(r) = gate(&settings, &req) {
                return r;
            }
            match method {
                Method::GET => {
                    if !accepts_json(&headers) {
                        return error(
                            StatusCode::NOT_ACCEPTABLE,
                            "response Content-Type is application/json only",
                        );
                    }
                    let names = backend.list();
                    let channels = (!names.is_empty()).then(|| {
                        names
                            .into_iter()
                            .map(|n| ChannelInfoShort {
                                url: format!("{URL_BASE}/channels/{n}"),
                                name: n,
                            })
                            .collect()
                    });
                    json_ok(
                        StatusCode::OK,
                        &ChannelList {
                            system_channel: None,
                            channels,
                        },
                        &[(header::CACHE_CONTROL, "no-store".to_string())],
                    )
                }
                Method::POST => join(backend, settings, req).await,
                _ => not_allowed("GET, POST"),
            }
        }
    };
    let item_backend = backend;
    let item = move |method: Method, headers: HeaderMap, Path(name): Path<String>, req: Request| {
        let backend = item_backend.clone();
        async move {
            if let Some(r) = gate(&settings, &req) {
                return r;
            }
            match method {
                Method::GET => {
                    if !accepts_json(&headers) {
                        return error(
                            StatusCode::NOT_ACCEPTABLE,
                            "response Content-Type is application/json only",
                        );
                    }
                    if let Some(r) = bad_name(&name) {
                        return r;
                    }
                    match backend.info(&name) {
                        Ok(info) => info_response(StatusCode::OK, &info, false),
                        Err(e) => backend_error(e),
                    }
                }
                Method::DELETE => {
                    if let Some(r) = bad_name(&name) {
                        return r;
                    }
                    match backend.remove(name).await {
                        Ok(()) => StatusCode::NO_CONTENT.into_response(),
                        Err(e) => backend_error(e),
                    }
                }
                _ => not_allowed("GET, DELETE"),
            }
        }
    };
    let root = move |req: Request| async move {
        if let Some(r) = gate(&settings, &req) {
            return r;
        }
        let mut r = StatusCode::FOUND.into_response();
        r.headers_mut().insert(
            header::LOCATION,
            header::HeaderValue::from_static("/participation/v1/channels"),
        );
        r
    };
    Router::new()
        .route(
            &format!("{URL_BASE}/channels"),
            axum::routing::any(collection),
        )
        .route(
            &format!("{URL_BASE}/channels/{{name}}"),
            axum::routing::any(item),
        )
        .route(&format!("{URL_BASE}/"), axum::routing::any(root))
        // Fabric registers the API as the subtree `/participation/v1/`; Go's ServeMux sends
        // the bare path there.
        .route(
            URL_BASE,
            axum::routing::any(|req: Request| async move {
                crate::go_mux::moved_permanently(req.method(), &format!("{URL_BASE}/"))
            }),
        )
}

/// The checks before any route: API disabled (503), client certificate (401).
fn gate(settings: &Settings, req: &Request) -> Option<Response> {
    if !settings.enabled {
        return Some(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "channel participation API is disabled",
        ));
    }
    if settings.secure && req.extensions().get::<PeerCertificates>().is_none() {
        return Some(StatusCode::UNAUTHORIZED.into_response());
    }
    None
}
