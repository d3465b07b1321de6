//! Hostile clients against a real node: a flood of idle connections from one address that never
//! start their TLS handshake. The node holds at most that address's share of the listener's
//! connections (the rest are closed at once), closes the held ones when their handshake time
//! runs out, keeps its file descriptors bounded, and serves an honest client from another
//! address throughout.

mod common;

use std::net::SocketAddr;
use std::time::Instant;

use common::*;
use ordo_cluster::slots::Limits;
use ordo_cluster::tls::HANDSHAKE_TIMEOUT;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

/// The soft limit on open files of process `pid`.
fn open_file_limit(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// A TCP connection to `to` from 127.0.0.2 (loopback answers every 127/8 address).
async fn connect_from_elsewhere(to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    s.connect(to).await.unwrap()
}

/// Whether the node closed `c` (a read sees the end of the stream or an error).
fn closed(c: &TcpStream) -> bool {
    let mut buf = [0u8; 1];
    match c.try_read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_flood_from_one_address_gets_its_share_and_honest_clients_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), false);
    let node = OrdoProcess::start(&config);
    let pid = node.child.id();
    let genesis = std::fs::read(fixture("channel-genesis/channel-1.block")).unwrap();
    assert_eq!(node.admin().join(&genesis).await.unwrap().status, 201);
    let mut client = node.grpc().await;
    let user1 = signer(USER1, "Org1MSP");
    let r = broadcast_when_led(&mut client, tx(&user1, "channel-1", 0)).await;
    assert_eq!(r.0, Status::Success as i32, "{}", r.1);

    let share = Limits::from_open_files(open_file_limit(pid)).per_ip;
    let flood = share + 100;
    // This process holds the flood's sockets too.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let fds_before = open_fds(pid);
    let started = Instant::now();
    let mut conns = Vec::with_capacity(flood);
    for _ in 0..flood {
        conns.push(connect_from_elsewhere(node.addrs.general).await);
    }

    // Beyond its share, the address's connections are closed at once.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let n = conns.iter().filter(|c| closed(c)).count();
        if n >= flood - share {
            assert_eq!(n, flood - share, "only the excess is closed");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} of {flood} closed, {} expected",
            flood - share
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held = open_fds(pid).saturating_sub(fds_before);
    assert!(
        held <= share + 16,
        "the node holds {held} more descriptors for a flood of {flood} (share {share})"
    );

    // An honest client (127.0.0.1) is served meanwhile, and quickly.
    let t = Instant::now();
    for i in 1..=5 {
        let r = broadcast(&mut client, vec![tx(&user1, "channel-1", i)]).await;
        assert_eq!(r[0].0, Status::Success as i32, "{}", r[0].1);
    }
    deliver_envelopes(&mut client, &user1, "channel-1", 6).await;
    let fresh = node.grpc().await;
    drop(fresh);
    let served_in = t.elapsed();
    assert!(
        started.elapsed() < HANDSHAKE_TIMEOUT,
        "the checks took longer than the handshake timeout: the flood's connections may have closed by themselves"
    );

    // The held ones never started a handshake: they are closed when its time runs out.
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT + WAIT;
    loop {
        let n = conns.iter().filter(|c| closed(c)).count();
        if n == flood {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} of {flood} closed after the handshake timeout"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "flood of {flood} idle connections from one address: {share} held (its share), {} closed at once; the node held {held} more descriptors; an honest client's 5 broadcasts and deliver took {served_in:?}",
        flood - share
    );
    // A reading of every connection: so that a connection the node has not closed is not
    // mistaken for one whose close was not yet seen.
    for mut c in conns {
        let mut buf = [0u8; 1];
        assert_eq!(c.read(&mut buf).await.unwrap_or(0), 0);
    }
}
