//! Hostile clients of the admin (channel participation) and operations listeners, against a real
//! node: path tricks, clients without or with an untrusted certificate, an oversized body, a
//! plain connection that never speaks. Each
//! gets the refusal a Fabric orderer gives (Go's ServeMux redirects unclean paths before any
//! handler, 404s unknown ones; the participation API checks names and body size), nothing is
//! removed or created by them, and the honest administrator is served throughout.

mod common;

use std::time::Instant;

use common::*;
use ordo_cluster::tls::HANDSHAKE_TIMEOUT;
use tokio::io::AsyncReadExt;

const ORG1_USER_TLS: &str =
    "crypto-config/peerOrganizations/org1.example.com/users/User1@org1.example.com/tls";

fn admin_with(node: &OrdoProcess, cert_dir: Option<&str>) -> HttpClient {
    HttpClient {
        addr: node.addrs.admin,
        tls: Some(client_tls(cert_dir, b"http/1.1")),
    }
}

/// Whether `channel-1` is still joined, active, and alone.
async fn channel_1_intact(admin: &HttpClient) {
    let list = admin.get("/participation/v1/channels").await.unwrap();
    assert_eq!(list.status, 200);
    let names: Vec<String> = list.json().unwrap()["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["channel-1"]);
    let info = admin
        .get("/participation/v1/channels/channel-1")
        .await
        .unwrap();
    assert_eq!(info.json().unwrap()["status"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_tricks_and_strangers_are_refused_as_by_fabric_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), false);
    let node = OrdoProcess::start(&config);
    let genesis = std::fs::read(fixture("channel-genesis/channel-1.block")).unwrap();
    let admin = node.admin();
    assert_eq!(admin.join(&genesis).await.unwrap().status, 201);
    let ledger_before: Vec<_> = std::fs::read_dir(dir.path().join("ledger/chains"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();

    // Unclean paths, however encoded, are redirected to their clean form and never served.
    for (method, path, location) in [
        (
            "GET",
            "/participation/v1/channels/../channels",
            "/participation/v1/channels",
        ),
        (
            "GET",
            "//participation/v1/channels",
            "/participation/v1/channels",
        ),
        (
            "DELETE",
            "/participation/v1/channels/..%2Fchannel-1",
            "/participation/v1/channel-1",
        ),
        (
            "DELETE",
            "/participation/v1/channels/channel-1/%2e%2e/channel-1",
            "/participation/v1/channels/channel-1",
        ),
        (
            "GET",
            "/participation/v1/channels/..%2F..%2F..%2Fetc%2Fpasswd",
            "/etc/passwd",
        ),
        ("GET", "/participation/v1", "/participation/v1/"),
    ] {
        let r = admin
            .request(method, path, None, Bytes::new())
            .await
            .unwrap();
        assert_eq!(r.status, 301, "{method} {path}");
        assert_eq!(r.headers["location"], location, "{method} {path}");
    }
    // Names that are not channel IDs: the participation API's refusal.
    for (method, path) in [
        ("DELETE", "/participation/v1/channels/channel-1%2F"),
        ("GET", "/participation/v1/channels/channel-1%00"),
        ("DELETE", "/participation/v1/channels/CHANNEL-1"),
        (
            "GET",
            &format!("/participation/v1/channels/{}", "a".repeat(250)),
        ),
    ] {
        let r = admin
            .request(method, path, None, Bytes::new())
            .await
            .unwrap();
        assert_eq!(r.status, 400, "{method} {path}");
        let msg = r.json().unwrap()["error"].as_str().unwrap().to_string();
        assert!(
            msg.starts_with("invalid channel ID"),
            "{method} {path}: {msg}"
        );
    }
    // Paths no route serves: Go's 404.
    for path in [
        "/participation/v2/channels",
        "/participation/v1/channels/channel-1/",
        "/metrics",
    ] {
        let r = admin.get(path).await.unwrap();
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(&r.body[..], b"404 page not found\n", "{path}");
    }
    // A body over MaxRequestBodySize (1 MB here) is refused.
    let big = vec![b'x'; 2 * 1024 * 1024];
    let r = admin
        .request(
            "POST",
            "/participation/v1/channels",
            Some("multipart/form-data; boundary=x"),
            big.into(),
        )
        .await;
    let r = r.unwrap();
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));

    // Without a client certificate, or with one from a CA the admin listener does not trust,
    // the TLS handshake fails: no request is read.
    for (who, client) in [
        ("no certificate", admin_with(&node, None)),
        (
            "Org1's TLS certificate",
            admin_with(&node, Some(ORG1_USER_TLS)),
        ),
    ] {
        let r = client.get("/participation/v1/channels").await;
        assert!(r.is_err(), "{who}: {:?}", r.map(|r| r.status));
    }

    // Nothing was removed or created; the administrator is served.
    let t = Instant::now();
    channel_1_intact(&admin).await;
    let served_in = t.elapsed();
    let ledger_after: Vec<_> = std::fs::read_dir(dir.path().join("ledger/chains"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(ledger_before, ledger_after);

    // The operations listener sits behind the same rules.
    let ops = HttpClient {
        addr: node.addrs.operations,
        tls: None,
    };
    let r = ops.get("/healthz/../metrics").await.unwrap();
    assert_eq!(r.status, 301);
    assert_eq!(r.headers["location"], "/metrics");
    let r = ops.get("/nothing-here").await.unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(&r.body[..], b"404 page not found\n");
    assert_eq!(ops.get("/version").await.unwrap().status, 200);
    eprintln!("after the tricks, the administrator's list and info took {served_in:?}");

    // A plain (non-TLS) connection that sends nothing is closed when a TLS handshake would
    // have timed out, instead of holding its slot for good.
    let started = Instant::now();
    let mut silent = tokio::net::TcpStream::connect(node.addrs.operations)
        .await
        .unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(HANDSHAKE_TIMEOUT + WAIT, silent.read(&mut buf))
        .await
        .expect("the node closes a silent connection")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(started.elapsed() >= HANDSHAKE_TIMEOUT - Duration::from_millis(500));
}
