//! The CA's listener under hostile clients: connections that never speak are closed in the
//! handshake time, one address gets only its share of `max_connections`, and the others are
//! served meanwhile.

mod common;

use common::{Harness, config};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_dropped_and_holds_no_slot() {
    use tokio::io::AsyncReadExt;
    let home = tempfile::tempdir().unwrap();
    let mut cfg = config(home.path());
    cfg.tls_handshake_timeout = "1s".into();
    cfg.max_connections = 1;
    let h = Harness::start(&cfg).await;
    // A client that connects and never starts TLS holds the only slot until the handshake
    // timeout closes it; the real request waits for the slot, then succeeds.
    let mut silent = tokio::net::TcpStream::connect(h.server.addr).await.unwrap();
    let c = h.client("ca");
    let request = tokio::spawn(async move { c.cainfo().await });
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(30), silent.read(&mut buf))
        .await
        .expect("the server closes a silent connection")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without data");
    let (name, _) = tokio::time::timeout(Duration::from_secs(30), request)
        .await
        .expect("served once the slot is free")
        .unwrap()
        .unwrap();
    assert_eq!(name, "ca");
    h.server.stop().await;
}

/// Whether the server closed `c` (a read sees the end of the stream or an error).
fn closed(c: &tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 1];
    match c.try_read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_flood_from_one_address_gets_its_share_and_others_are_served() {
    let home = tempfile::tempdir().unwrap();
    let mut cfg = config(home.path());
    cfg.max_connections = 64; // an eighth, 16, per address
    cfg.tls_handshake_timeout = "5s".into();
    let h = Harness::start(&cfg).await;
    let (share, flood) = (16, 26);
    let mut conns = Vec::new();
    for _ in 0..flood {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        conns.push(s.connect(h.server.addr).await.unwrap());
    }
    // Beyond its share, the address's connections are closed at once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let n = conns.iter().filter(|c| closed(c)).count();
        if n >= flood - share {
            assert_eq!(n, flood - share, "only the excess is closed");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{n} closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A client from elsewhere (127.0.0.1) is served while the flood holds its share.
    let t = std::time::Instant::now();
    let (name, _) = h.client("ca").cainfo().await.unwrap();
    assert_eq!(name, "ca");
    assert!(
        conns.iter().filter(|c| !closed(c)).count() == share,
        "the flood's share was released before the honest request was served ({:?})",
        t.elapsed()
    );
    h.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_plain_connection_is_closed_in_handshake_time() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let home = tempfile::tempdir().unwrap();
    let mut cfg = config(home.path());
    cfg.tls.enabled = false;
    cfg.tls_handshake_timeout = "1s".into();
    let server = ordo_ca::server::start(&cfg, None).await.unwrap();
    let mut silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(30), silent.read(&mut buf))
        .await
        .expect("the server closes a connection that sends nothing")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without data");
    // One that speaks is served.
    let mut c = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    c.write_all(b"GET /api/v1/cainfo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.stop().await;
}
