//! A node whose disk fills up and frees again, on a real process with its ledger or its WAL on a
//! small tmpfs: the channel halts cleanly on the full disk (the process stays up, `/healthz`
//! names the channel, the blocks it holds can still be fetched and a client waiting for more is
//! sent elsewhere, nothing in the ledger is torn), and once space returns it resumes by itself —
//! without a restart — and orders again on the same hash chain. The soft open-file limit test is
//! in `node_process.rs`.
//!
//! The node runs in a mount namespace of its own (`unshare --map-root-user --mount`, which needs
//! no root where user namespaces are allowed, as on Debian), where the tmpfs is mounted; the
//! test reaches that file system through `/proc/<pid>/root`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Starts a node on `config` with `small` (a folder of its data) on a tmpfs of `size` mounted
/// in its own mount namespace; returns it and where this process sees that folder.
fn start_with_small_disk(config: &Path, small: &Path, size: &str) -> (OrdoProcess, PathBuf) {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        "mkdir -p \"$1\" && mount -t tmpfs -o size=\"$2\" tmpfs \"$1\" && exec \"$0\" node start --kernel-ports --config \"$3\"",
        env!("CARGO_BIN_EXE_ordo"),
    ])
    .arg(small)
    .arg(size)
    .arg(config);
    let node = OrdoProcess::try_spawn(cmd).expect(
        "the node did not start in a mount namespace of its own with a tmpfs (unshare --map-root-user --mount: are user namespaces allowed?)",
    );
    let seen = PathBuf::from(format!("/proc/{}/root", node.child.id()))
        .join(small.strip_prefix("/").unwrap_or(small));
    (node, seen)
}

async fn healthz(node: &OrdoProcess) -> (u16, String) {
    let ops = HttpClient {
        addr: node.addrs.operations,
        tls: None,
    };
    let r = ops.get("/healthz").await.unwrap();
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_ledger_disk_halts_the_channel_cleanly_and_it_resumes_when_space_returns() {
    fill_and_free("ledger").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_wal_disk_halts_the_channel_cleanly_and_it_resumes_when_space_returns() {
    fill_and_free("etcdraft").await;
}

/// Runs the node with its `folder` (under its data folder: `ledger`, or `etcdraft` for the
/// WAL and snapshots) on a small tmpfs, fills it under load, checks the halt, frees it and
/// checks the resume.
async fn fill_and_free(folder: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), false);
    let (node, small) = start_with_small_disk(&config, &dir.path().join(folder), "24m");
    let pid = node.child.id();
    let genesis = std::fs::read(fixture("channel-genesis/channel-1.block")).unwrap();
    assert_eq!(node.admin().join(&genesis).await.unwrap().status, 201);
    let mut client = node.grpc().await;
    let user1 = signer(USER1, "Org1MSP");
    let r = broadcast_when_led(&mut client, tx(&user1, "channel-1", 0)).await;
    assert_eq!(r.0, Status::Success as i32, "{}", r.1);

    // What is left of the tmpfs goes to a ballast file, but for a little: the channel's writes
    // fill the rest.
    let ballast = small.join("ballast");
    let free = free_bytes(&small).saturating_sub(2 << 20);
    assert!(
        free < 24 << 20,
        "{} is not on the node's 24 MiB tmpfs",
        small.display()
    );
    std::fs::write(&ballast, vec![1u8; free as usize]).unwrap();

    // Envelopes of 200 KB until one is refused or not ordered: the disk is full.
    let mut sent = 1u64;
    let halted = loop {
        let answers = broadcast(
            &mut client,
            vec![big_tx(&user1, "channel-1", sent, 200_000)],
        )
        .await;
        sent += 1;
        if answers[0].0 != Status::Success as i32 {
            break answers[0].1.clone();
        }
        let (status, body) = healthz(&node).await;
        if status != 200 {
            break body;
        }
        assert!(sent < 200, "2 MiB of room took 200 envelopes of 200 KB");
    };
    // The channel halted: the process is up, and /healthz names the channel.
    let deadline = tokio::time::Instant::now() + WAIT;
    let health = loop {
        let (status, body) = healthz(&node).await;
        if status == 503 && body.contains("channel-1") {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/healthz does not name the halted channel: {status} {body} ({halted})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        node_alive(pid),
        "the node process is up ({halted}; {health})"
    );

    // The blocks it holds can still be fetched (STRICT, as a peer asks).
    let height = height_of(&node, "channel-1").await;
    assert!(height >= 2, "blocks were ordered before the disk filled");
    let (held, status) =
        deliver(&mut client, seek(&user1, "channel-1", 0, height - 1, false)).await;
    assert_eq!(status, Status::Success as i32);
    assert_eq!(held.len() as u64, height);
    verify_chain(&held);

    // A client waiting for the next block is told to go elsewhere rather than left waiting.
    let (none, status) = deliver(
        &mut client,
        seek(&user1, "channel-1", height, height, false),
    )
    .await;
    assert!(none.is_empty());
    assert_eq!(status, Status::ServiceUnavailable as i32);

    // While the disk stays full the channel stays halted (it resumes only with room for two
    // of its largest blocks).
    assert_eq!(healthz(&node).await.0, 503);

    // Space returns: the channel resumes by itself, in the same process.
    std::fs::remove_file(&ballast).unwrap();
    wait_for("/healthz to be OK again", || {
        let node = &node;
        async move { healthz(node).await.0 == 200 }
    })
    .await;
    let r = broadcast_when_led(&mut client, tx(&user1, "channel-1", 1000)).await;
    assert_eq!(r.0, Status::Success as i32, "{}", r.1);
    let after = deliver_envelopes_containing(&mut client, &user1, "transaction 1000").await;
    verify_chain(&after);
    // The chain goes on from the blocks it held before the disk filled.
    for (a, b) in held.iter().zip(&after) {
        assert_eq!(a.header, b.header);
    }
    assert_eq!(node.child.id(), pid);
    assert!(node_alive(pid));
}

/// Whether process `pid` runs (and is not a zombie).
fn node_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

/// Every block of channel-1 from the genesis block up to the first block holding an envelope
/// whose payload contains `text` (waiting for it).
async fn deliver_envelopes_containing(
    client: &mut AtomicBroadcastClient<tonic::transport::Channel>,
    user: &SigningIdentity,
    text: &str,
) -> Vec<Block> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (blocks, _) = deliver(client, seek(user, "channel-1", 0, u64::MAX, true)).await;
        if payload_texts(&blocks).iter().any(|t| t.contains(text)) {
            return blocks;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no block holds {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
