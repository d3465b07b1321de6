//! The channel participation API over a fake backend: routes, status codes, headers and JSON
//! shapes as osnadmin sees them from Fabric (`fixtures/fabric-2.4/participation-api/`).

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{Request, StatusCode};
use ordo_orderer::http::PeerCertificates;
use ordo_orderer::participation::{
    BoxFuture, ChannelInfo, ChannelParticipation, ChannelStatus, ConsensusRelation,
    ParticipationError, Settings, router,
};
use ordo_proto::common::Block;
use tower::ServiceExt;

#[derive(Default)]
struct Fake {
    channels: Mutex<Vec<String>>,
}

fn info(name: &str) -> ChannelInfo {
    ChannelInfo {
        name: name.to_string(),
        url: format!("/participation/v1/channels/{name}"),
        consensus_relation: ConsensusRelation::Consenter,
        status: ChannelStatus::Active,
        height: 1,
    }
}

impl ChannelParticipation for Fake {
    fn list(&self) -> Vec<String> {
        self.channels.lock().unwrap().clone()
    }
    fn info(&self, channel: &str) -> Result<ChannelInfo, ParticipationError> {
        if self.channels.lock().unwrap().iter().any(|c| c == channel) {
            Ok(info(channel))
        } else {
            Err(ParticipationError::NotFound)
        }
    }
    fn join(
        &self,
        channel: String,
        _block: Block,
        _bytes: Bytes,
    ) -> BoxFuture<'_, Result<ChannelInfo, ParticipationError>> {
        Box::pin(async move {
            let mut chs = self.channels.lock().unwrap();
            if chs.contains(&channel) {
                return Err(ParticipationError::AlreadyExists);
            }
            chs.push(channel.clone());
            Ok(info(&channel))
        })
    }
    fn remove(&self, channel: String) -> BoxFuture<'_, Result<(), ParticipationError>> {
        Box::pin(async move {
            let mut chs = self.channels.lock().unwrap();
            let before = chs.len();
            chs.retain(|c| *c != channel);
            if chs.len() == before {
                Err(ParticipationError::NotFound)
            } else {
                Ok(())
            }
        })
    }
}

const SETTINGS: Settings = Settings {
    enabled: true,
    max_request_body_size: 1024 * 1024,
    secure: true,
};

fn app(settings: Settings) -> (axum::Router, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    (router(fake.clone(), settings), fake)
}

fn with_cert(mut req: Request<Body>) -> Request<Body> {
    req.extensions_mut()
        .insert(PeerCertificates(Arc::new(vec![vec![1]])));
    req
}

async fn call(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn get(path: &str) -> Request<Body> {
    with_cert(Request::get(path).body(Body::empty()).unwrap())
}

/// A join request as osnadmin builds it.
fn join_req(block: &[u8], field: &str) -> Request<Body> {
    let boundary = "X-OSNADMIN-BOUNDARY";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"config.block\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(block);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    with_cert(
        Request::post("/participation/v1/channels")
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(body))
            .unwrap(),
    )
}

/// The JSON of a fixture file (osnadmin prints "Status: N" then the body).
fn fixture_json(name: &str) -> (u16, serde_json::Value) {
    let text = ordo_testkit::read_string(&format!("participation-api/{name}"));
    let (status, body) = text.split_once('\n').unwrap();
    let status = status
        .trim()
        .strip_prefix("Status: ")
        .unwrap()
        .parse()
        .unwrap();
    (status, serde_json::from_str(body.trim()).unwrap())
}

#[tokio::test]
async fn list_and_info_have_fabrics_shapes() {
    let (app, fake) = app(SETTINGS);
    let (status, headers, body) = call(&app, get("/participation/v1/channels")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"systemChannel":null,"channels":null}"#);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["content-type"], "application/json");

    fake.channels.lock().unwrap().push("bench".into());
    let (_, _, body) = call(&app, get("/participation/v1/channels")).await;
    let (code, want) = fixture_json("channel_list_o1.txt");
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap(),
        want
    );
    // Field order as Fabric's encoder writes it.
    assert_eq!(body, serde_json::to_string(&want).unwrap());

    let (status, _, body) = call(&app, get("/participation/v1/channels/bench")).await;
    let (code, want) = fixture_json("channel_info_bench_o1.txt");
    assert_eq!(status.as_u16(), code);
    assert_eq!(body, serde_json::to_string(&want).unwrap());

    let (status, _, body) = call(&app, get("/participation/v1/channels/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, r#"{"error":"channel does not exist"}"#);
    let (status, _, body) = call(&app, get("/participation/v1/channels/Bad_Name")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.starts_with(r#"{"error":"invalid channel ID 'Bad_Name'"#),
        "{body}"
    );
}

#[tokio::test]
async fn join_with_osnadmins_multipart_and_its_refusals() {
    let (app, _) = app(SETTINGS);
    let genesis = ordo_testkit::read("channel-genesis/channel-1.block");
    let (status, headers, body) = call(&app, join_req(&genesis, "config-block")).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers["location"], "/participation/v1/channels/channel-1");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["name"], "channel-1");
    // Already there: 405 with the methods the item allows.
    let (status, headers, _) = call(&app, join_req(&genesis, "config-block")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET, DELETE");
    // Not a config block.
    let block1 = ordo_testkit::read("ledger/from-orderer1/block_1.pb");
    let (status, _, body) = call(&app, join_req(&block1, "config-block")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("invalid join block: block is not a config block"),
        "{body}"
    );
    // Wrong part name, garbage, wrong content type.
    let (status, _, _) = call(&app, join_req(&genesis, "block")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = call(&app, join_req(b"\xff\xff\xff", "config-block")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let req = with_cert(
        Request::post("/participation/v1/channels")
            .header("Content-Type", "application/json")
            .body(Body::from("{}"))
            .unwrap(),
    );
    assert_eq!(call(&app, req).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn body_limit_methods_certificates_and_disabled_api() {
    let small = Settings {
        max_request_body_size: 100,
        ..SETTINGS
    };
    let (app_small, _) = app(small);
    let genesis = ordo_testkit::read("channel-genesis/channel-1.block");
    let (status, _, body) = call(&app_small, join_req(&genesis, "config-block")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("http: request body too large"), "{body}");

    let (app, fake) = app(SETTINGS);
    let put = with_cert(
        Request::put("/participation/v1/channels")
            .body(Body::empty())
            .unwrap(),
    );
    let (status, headers, _) = call(&app, put).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET, POST");
    let post_item = with_cert(
        Request::post("/participation/v1/channels/x")
            .body(Body::empty())
            .unwrap(),
    );
    assert_eq!(call(&app, post_item).await.1["allow"], "GET, DELETE");

    fake.channels.lock().unwrap().push("ch".into());
    let del = with_cert(
        Request::delete("/participation/v1/channels/ch")
            .body(Body::empty())
            .unwrap(),
    );
    assert_eq!(call(&app, del).await.0, StatusCode::NO_CONTENT);
    let del = with_cert(
        Request::delete("/participation/v1/channels/ch")
            .body(Body::empty())
            .unwrap(),
    );
    assert_eq!(call(&app, del).await.0, StatusCode::NOT_FOUND);

    // No verified client certificate under TLS: 401.
    let bare = Request::get("/participation/v1/channels")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&app, bare).await.0, StatusCode::UNAUTHORIZED);
    // Not acceptable.
    let mut req = get("/participation/v1/channels");
    req.headers_mut()
        .insert("accept", "text/html".parse().unwrap());
    assert_eq!(call(&app, req).await.0, StatusCode::NOT_ACCEPTABLE);
    // Disabled: 503 for everything.
    let (off, _) = self::app(Settings {
        enabled: false,
        ..SETTINGS
    });
    assert_eq!(
        call(&off, get("/participation/v1/channels")).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // The API root redirects to the list.
    let (status, headers, _) = call(&app, get("/participation/v1/")).await;
    assert_eq!(status, StatusCode::FOUND);
    assert_eq!(headers["location"], "/participation/v1/channels");
}
