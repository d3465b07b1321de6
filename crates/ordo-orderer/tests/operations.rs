//! The operations API: Fabric's metric names, help texts and label names (from a real Fabric
//! orderer's /metrics page), healthz bodies, logspec, version, and the client-certificate rule
//! for /metrics and /logspec under TLS.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ordo_orderer::http::PeerCertificates;
use ordo_orderer::metrics::Metrics;
use ordo_orderer::operations::{FailedCheck, HealthChecker, Options, router};
use ordo_proto::common::Status;
use ordo_raft::chain::ChainStatus;
use tower::ServiceExt;

/// `name -> (help, type, label names)` of a Prometheus text page.
fn families(text: &str) -> BTreeMap<String, (String, String, Vec<String>)> {
    let mut out: BTreeMap<String, (String, String, Vec<String>)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.entry(name.into()).or_default().0 = help.into();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap();
            out.entry(name.into()).or_default().1 = ty.into();
        } else if !line.starts_with('#') && !line.is_empty() {
            let series = line.split(' ').next().unwrap();
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|b| out.contains_key(*b)))
                .unwrap_or(name);
            let mut names: Vec<String> = labels
                .trim_end_matches('}')
                .split(',')
                .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_string()))
                .filter(|k| k != "le")
                .collect();
            names.sort();
            if let Some(f) = out.get_mut(base) {
                f.2 = names;
            }
        }
    }
    out
}

#[test]
fn metric_names_help_and_labels_are_fabrics() {
    let m = Metrics::new("0.1.0").unwrap();
    let ch = "bench";
    let d = Duration::from_millis(3);
    m.broadcast_validated(ch, "ENDORSER_TRANSACTION", d);
    m.broadcast_enqueued(ch, "ENDORSER_TRANSACTION", d);
    m.broadcast_processed(ch, "ENDORSER_TRANSACTION", Status::Success);
    m.deliver_stream(true);
    m.deliver_stream(false);
    m.deliver_request(ch);
    m.deliver_completed(ch, false);
    m.deliver_block_sent(ch);
    m.grpc_stream_started("Broadcast");
    m.grpc_stream_finished("Broadcast", "OK", d);
    m.grpc_message("Broadcast", true);
    m.grpc_message("Broadcast", false);
    m.block_committed(ch, 3, d);
    m.block_fill(ch, d);
    m.raft_status(
        ch,
        &ChainStatus {
            id: 1,
            leader: 1,
            is_leader: true,
            term: 2,
            cluster_size: 3,
            last_block: 3,
            applied_index: 5,
            leader_changes: 1,
            proposal_failures: 0,
            active: vec![1, 2, 3],
            learners: vec![4],
        },
    );
    m.normal_proposal(ch);
    m.config_proposal(ch);
    m.data_persist(ch, d);
    m.snapshot_block(ch, 2);
    m.participation(ch, 1, 1);
    let ours = families(&m.render());
    let fabric = families(&ordo_testkit::read_string(
        "operations/metrics_leader_after_60k_tx_3_nodes.txt",
    ));
    let mut compared = 0;
    for (name, (help, ty, labels)) in &ours {
        if name.starts_with("ordo_") {
            // Ordo's own (learners, catch-up, certificate expiry), named apart from Fabric's.
            continue;
        }
        let Some((fhelp, fty, flabels)) = fabric.get(name) else {
            // Fabric registers these only after the first event, which its run did not have.
            assert!(
                [
                    "consensus_etcdraft_proposal_failures",
                    "consensus_etcdraft_config_proposals_received"
                ]
                .contains(&name.as_str()),
                "{name} is not a Fabric metric"
            );
            continue;
        };
        assert_eq!(help, fhelp, "{name} help");
        assert_eq!(ty, fty, "{name} type");
        if name != "fabric_version" {
            assert_eq!(labels, flabels, "{name} labels");
        }
        compared += 1;
    }
    assert!(compared >= 25, "only {compared} metrics compared");
    // A removed channel's series disappear.
    m.channel_removed(ch);
    assert!(
        !m.render()
            .contains("ledger_blockchain_height{channel=\"bench\"}")
    );
}

struct Checks(Mutex<Vec<FailedCheck>>);

impl HealthChecker for Checks {
    fn check(&self) -> Vec<FailedCheck> {
        self.0.lock().unwrap().clone()
    }
}

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn get(path: &str, cert: bool) -> Request<Body> {
    let mut r = Request::get(path).body(Body::empty()).unwrap();
    if cert {
        r.extensions_mut()
            .insert(PeerCertificates(Arc::new(vec![vec![1]])));
    }
    r
}

#[tokio::test]
async fn healthz_tells_the_truth_and_secure_routes_need_a_certificate_under_tls() {
    let checks = Arc::new(Checks(Mutex::new(Vec::new())));
    let metrics = Metrics::new("0.1.0").unwrap();
    let opts = Options {
        registry: Some(metrics.registry()),
        version: "0.1.0".into(),
        health: checks.clone(),
    };
    let app = router(opts, true);
    let (status, body) = call(&app, get("/healthz", false)).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "OK");
    assert!(v.get("failed_checks").is_none());
    checks.0.lock().unwrap().push(FailedCheck {
        component: "channel ch".into(),
        reason: "no Raft leader".into(),
    });
    let (status, body) = call(&app, get("/healthz", false)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body.starts_with(r#"{"status":"Service Unavailable","time":""#)
            && body.ends_with(
                r#""failed_checks":[{"component":"channel ch","reason":"no Raft leader"}]}"#
            ),
        "{body}"
    );
    let (status, body) = call(&app, get("/version", false)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.starts_with(r#"{"CommitSHA":"#) && body.ends_with(r#""Version":"0.1.0"}"#),
        "{body}"
    );
    assert_eq!(
        call(&app, get("/metrics", false)).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, get("/logspec", false)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = call(&app, get("/metrics", true)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("fabric_version{version=\"0.1.0\"} 1"));
    let (status, body) = call(&app, get("/logspec", true)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with(r#"{"spec":"#));
    let mut bad = Request::put("/logspec")
        .body(Body::from(r#"{"spec":"ordo.raft=loud"}"#))
        .unwrap();
    bad.extensions_mut()
        .insert(PeerCertificates(Arc::new(vec![vec![1]])));
    let (status, body) = call(&app, bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.starts_with(r#"{"error":"invalid logging specification"#),
        "{body}"
    );
    // Without TLS, no certificate is asked for.
    let plain = router(
        Options {
            registry: Some(metrics.registry()),
            version: "0.1.0".into(),
            health: checks,
        },
        false,
    );
    assert_eq!(call(&plain, get("/metrics", false)).await.0, StatusCode::OK);
}
