//! Fabric's crash-fault-tolerance scenarios (`integration/raft/cft_test.go`, test names after
//! its `When`/`It`) with real `ordo` processes on 127.0.0.1: the fixture's orderers 1..N on the
//! ports the fixture channels name (general 3705n, cluster 3715n), so one test at a time.

mod common;

use common::*;

/// Held by each test: they all listen on the fixture channels' fixed ports.
static CHANNELS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Ack-after-commit mode, so that SUCCESS means committed: in Fabric's mode a follower's
/// SUCCESS only means handed to the leader's stream, and an envelope forwarded just as a node
/// dies or returns may be lost (Fabric documents it), which would make these tests flaky. The
/// timeout keeps a refused client's retry loop short.
const ACK_AFTER_COMMIT: &str = ", AckAfterCommit: true, AckAfterCommitTimeout: 3s";

/// Starts orderers 1..=n under `dir` and joins them to channel-n (the fixture's genesis block).
async fn start_cluster(
    dir: &Path,
    n: u32,
    consensus: &str,
) -> (Vec<PathBuf>, Vec<Option<OrdoProcess>>) {
    let configs: Vec<PathBuf> = (1..=n)
        .map(|i| {
            let d = dir.join(format!("orderer{i}"));
            std::fs::create_dir_all(&d).unwrap();
            write_cluster_node_config(&d, i, consensus)
        })
        .collect();
    let mut nodes = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        nodes.push(Some(OrdoProcess::start_cluster_node(c, i as u32 + 1).await));
    }
    let genesis = std::fs::read(fixture(&format!("channel-genesis/channel-{n}.block"))).unwrap();
    for node in nodes.iter().flatten() {
        assert_eq!(node.admin().join(&genesis).await.unwrap().status, 201);
    }
    (configs, nodes)
}

/// cft_test.go "an orderer is behind the latest snapshot on leader / catches up using the block
/// stored in snapshot": a follower is down while the others take two snapshots (the fixture's
/// SnapshotIntervalSize is 1 MB) and compact their logs; restarted, it gets the leader's
/// snapshot, pulls the blocks it lacks from the channel's orderers (verifying them), and then
/// orders with the others, every node holding the same blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orderer_behind_the_latest_snapshot_catches_up_using_the_block_stored_in_snapshot() {
    let _channel = CHANNELS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (configs, mut nodes) = start_cluster(dir.path(), 3, "").await;
    let user1 = signer(USER1, "Org1MSP");
    let leader = leader_of(&nodes, "channel-3").await;
    let mut client = nodes[leader].as_ref().unwrap().grpc().await;
    let r = broadcast_when_led(&mut client, tx(&user1, "channel-3", 0)).await;
    assert_eq!(r.0, Status::Success as i32, "{}", r.1);

    // A follower goes down.
    let lagging = (leader + 1) % 3;
    nodes[lagging].take().unwrap().kill9();

    // 100 KB envelopes: each batch of 15 is 1.5 MB, past the 1 MB snapshot interval.
    let mut sent = 1u64;
    let mut snapshots = Vec::new();
    for _ in 0..2 {
        let envs: Vec<Envelope> = (sent..sent + 15)
            .map(|i| big_tx(&user1, "channel-3", i, 100_000))
            .collect();
        sent += 15;
        for (status, info) in broadcast(&mut client, envs).await {
            assert_eq!(status, Status::Success as i32, "{info}");
        }
        let leader_node = nodes[leader].as_ref().unwrap();
        let before = snapshots.last().copied().unwrap_or(0);
        wait_for("a new snapshot on the leader", || async {
            snapshot_block(leader_node, "channel-3").await > before
        })
        .await;
        snapshots.push(snapshot_block(leader_node, "channel-3").await);
    }
    let reference = deliver_envelopes(&mut client, &user1, "channel-3", sent as usize).await;
    verify_chain(&reference);

    // Back, it catches up by pulling blocks (not from the leader's log, which is compacted).
    nodes[lagging] =
        Some(OrdoProcess::start_cluster_node(&configs[lagging], lagging as u32 + 1).await);
    let back = nodes[lagging].as_ref().unwrap();
    let caught_up = blocks_of(back, &user1, "channel-3", reference.len() as u64).await;
    assert!(
        agreed(&caught_up) == agreed(&reference),
        "the lagging node disagrees"
    );
    verify_chain(&caught_up);
    let pulled = metric(back, "ordo_catchup_blocks_pulled{channel=\"channel-3\"}")
        .await
        .unwrap_or(0.0);
    assert!(
        pulled >= 1.0,
        "the lagging node did not pull blocks (pulled {pulled})"
    );
    let target = metric(
        back,
        "ordo_catchup_target_block_number{channel=\"channel-3\"}",
    )
    .await
    .unwrap_or(0.0) as u64;
    assert!(
        target >= snapshots[1],
        "caught up to {target}, snapshots {snapshots:?}"
    );

    // And it orders with the others: an envelope through it reaches every node.
    let mut back_client = back.grpc().await;
    let r = broadcast_when_led(&mut back_client, tx(&user1, "channel-3", sent)).await;
    assert_eq!(r.0, Status::Success as i32, "{}", r.1);
    let after = deliver_envelopes(&mut client, &user1, "channel-3", sent as usize + 1).await;
    for node in nodes.iter().flatten() {
        let blocks = blocks_of(node, &user1, "channel-3", after.len() as u64).await;
        assert!(agreed(&blocks) == agreed(&after), "the nodes disagree");
    }
}

/// cft_test.go "orderer stops and restarts": three real processes ordering channel-3; every
/// node takes envelopes (followers forward them to the leader) and ends with the same blocks;
/// with the leader killed, the other two elect a new one and keep ordering; the killed node
/// comes back and catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orderer_stops_and_restarts_keeps_network_up_and_running() {
    let _channel = CHANNELS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (configs, mut nodes) = start_cluster(dir.path(), 3, "").await;
    let user1 = signer(USER1, "Org1MSP");

    // One envelope through each node: the leader orders its own, the followers forward.
    for (i, node) in nodes.iter().flatten().enumerate() {
        let mut client = node.grpc().await;
        let r = broadcast_when_led(&mut client, tx(&user1, "channel-3", i as u64)).await;
        assert_eq!(r.0, Status::Success as i32, "node {}: {}", i + 1, r.1);
    }
    // Every node ends with the same hash-chained blocks holding the three envelopes.
    let first = nodes[0].as_ref().unwrap();
    let mut client = first.grpc().await;
    let reference = deliver_envelopes(&mut client, &user1, "channel-3", 3).await;
    verify_chain(&reference);
    let height = reference.len() as u64;
    for node in nodes.iter().flatten() {
        let blocks = blocks_of(node, &user1, "channel-3", height).await;
        assert!(agreed(&blocks) == agreed(&reference), "the nodes disagree");
        verify_chain(&blocks);
    }

    // Kill the leader (waiting for the nodes to agree on one first).
    let deadline = tokio::time::Instant::now() + WAIT;
    let leader = loop {
        let mut found = None;
        for (i, n) in nodes.iter().enumerate() {
            if leads(n.as_ref().unwrap(), "channel-3").await {
                found = Some(i);
            }
        }
        if let Some(i) = found {
            break i;
        }
        assert!(tokio::time::Instant::now() < deadline, "no leader reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    nodes[leader].take().unwrap().kill9();
    // Wait for the survivors to elect a new leader (an envelope a follower forwards to the dead
    // one before that is lost, as in Fabric: SUCCESS means handed to the leader's stream).
    let deadline = tokio::time::Instant::now() + WAIT;
    'elected: loop {
        for n in nodes.iter().flatten() {
            if leads(n, "channel-3").await {
                break 'elected;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no new leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The two others elect a new leader and order through either of them.
    for (i, node) in nodes.iter().enumerate() {
        let Some(node) = node else { continue };
        let mut client = node.grpc().await;
        let r = broadcast_when_led(&mut client, tx(&user1, "channel-3", 100 + i as u64)).await;
        assert_eq!(r.0, Status::Success as i32, "node {}: {}", i + 1, r.1);
    }
    let survivor = nodes.iter().flatten().next().unwrap();
    let mut client = survivor.grpc().await;
    let after = deliver_envelopes(&mut client, &user1, "channel-3", 5).await;
    verify_chain(&after);
    assert!(agreed(&after[..reference.len()]) == agreed(&reference));

    // The killed node comes back and catches up with the same blocks.
    nodes[leader] =
        Some(OrdoProcess::start_cluster_node(&configs[leader], leader as u32 + 1).await);
    let back = nodes[leader].as_ref().unwrap();
    let caught_up = blocks_of(back, &user1, "channel-3", after.len() as u64).await;
    assert!(
        agreed(&caught_up) == agreed(&after),
        "the restarted node disagrees"
    );
    verify_chain(&caught_up);
}

/// cft_test.go "The leader dies / Elects a new leader", with a client keeping up a load under
/// ack-after-commit (`Consensus.AckAfterCommit`): the leader is killed (-9) mid-load, the
/// others elect a new one within the longest election timeout Ordo draws (`election_range`:
/// ElectionTick 10 + 10/4 + 1 = 13 ticks × TickInterval 250 ms) plus a second, the client's retries go through, and every envelope ever acknowledged is in
/// the ledger of every node, the killed one included once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_dies_elects_a_new_leader() {
    let _channel = CHANNELS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (configs, mut nodes) = start_cluster(dir.path(), 3, ACK_AFTER_COMMIT).await;
    let user1 = signer(USER1, "Org1MSP");
    let leader = leader_of(&nodes, "channel-3").await;
    let through = (leader + 1) % 3;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let load = start_load(
        nodes[through].as_ref().unwrap(),
        "channel-3",
        0,
        stop.clone(),
        acked.clone(),
    );
    wait_for("the load to get going", || async {
        acked.lock().unwrap().len() >= 50
    })
    .await;

    let killed_at = tokio::time::Instant::now();
    nodes[leader].take().unwrap().kill9();
    let new_leader = leader_of(&nodes, "channel-3").await;
    let took = killed_at.elapsed();
    assert_ne!(new_leader, leader);
    eprintln!("a new leader {took:?} after the leader's kill -9");
    assert!(
        took <= Duration::from_millis(13 * 250 + 1000),
        "a new leader took {took:?}"
    );
    let before = acked.lock().unwrap().len();
    wait_for("the load to go on under the new leader", || async {
        acked.lock().unwrap().len() >= before + 50
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.await.unwrap();

    // Every acknowledged envelope is in the ledger, on every node.
    let acked: Vec<u64> = acked.lock().unwrap().clone();
    let survivor = nodes[through].as_ref().unwrap();
    let mut client = survivor.grpc().await;
    let reference = deliver_until_all(&mut client, &user1, "channel-3", &acked).await;
    verify_chain(&reference);
    let texts: std::collections::HashSet<String> = payload_texts(&reference).into_iter().collect();
    for i in &acked {
        assert!(
            texts.contains(&format!("transaction {i}")),
            "acknowledged envelope {i} lost"
        );
    }
    nodes[leader] =
        Some(OrdoProcess::start_cluster_node(&configs[leader], leader as u32 + 1).await);
    for node in nodes.iter().flatten() {
        let blocks = blocks_of(node, &user1, "channel-3", reference.len() as u64).await;
        assert!(agreed(&blocks) == agreed(&reference), "the nodes disagree");
    }
}

/// Broadcasts one envelope through `node` and returns the status, failing the test if the
/// answer takes more than five seconds (without a quorum the answer must come promptly).
async fn status_of(node: &OrdoProcess, env: Envelope) -> i32 {
    let mut client = node.grpc().await;
    let answers = tokio::time::timeout(Duration::from_secs(5), broadcast(&mut client, vec![env]))
        .await
        .expect("Broadcast hung without a quorum");
    answers[0].0
}

/// Waits until Broadcast through `node` answers SERVICE_UNAVAILABLE (the cluster has noticed
/// it lost its quorum).
async fn wait_unavailable(node: &OrdoProcess, user: &SigningIdentity, first: u64) {
    let mut i = first;
    wait_for("SERVICE_UNAVAILABLE without a quorum", || {
        i += 1;
        let env = tx(user, "channel-3", i);
        async move { status_of(node, env).await == Status::ServiceUnavailable as i32 }
    })
    .await;
}

/// cft_test.go "Leader cannot reach quorum / Steps down": with both followers gone the leader
/// steps down (CheckQuorum) and Broadcast answers SERVICE_UNAVAILABLE at once instead of
/// hanging; when the followers return a leader is elected again and ordering resumes on every
/// node with the same blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_cannot_reach_quorum_steps_down() {
    let _channel = CHANNELS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (configs, mut nodes) = start_cluster(dir.path(), 3, ACK_AFTER_COMMIT).await;
    let user1 = signer(USER1, "Org1MSP");
    let leader = leader_of(&nodes, "channel-3").await;
    let mut client = nodes[leader].as_ref().unwrap().grpc().await;
    let r = broadcast_when_led(&mut client, tx(&user1, "channel-3", 0)).await;
    assert_eq!(r.0, Status::Success as i32, "{}", r.1);

    let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    for f in &followers {
        nodes[*f].take().unwrap().kill9();
    }
    let alone = nodes[leader].as_ref().unwrap();
    wait_for("the leader to step down", || async {
        !leads(alone, "channel-3").await
    })
    .await;
    wait_unavailable(alone, &user1, 1000).await;

    for f in &followers {
        nodes[*f] = Some(OrdoProcess::start_cluster_node(&configs[*f], *f as u32 + 1).await);
    }
    let r = broadcast_when_led(&mut client, tx(&user1, "channel-3", 1)).await;
    assert_eq!(r.0, Status::Success as i32, "{}", r.1);
    let reference = deliver_envelopes(&mut client, &user1, "channel-3", 2).await;
    verify_chain(&reference);
    for node in nodes.iter().flatten() {
        let blocks = blocks_of(node, &user1, "channel-3", reference.len() as u64).await;
        assert!(agreed(&blocks) == agreed(&reference), "the nodes disagree");
    }
}

/// Five processes on channel-5 (the 2/1/2-region shape's size): with two nodes down, the
/// leader among them, the other three elect a leader and keep ordering; with a third down,
/// Broadcast answers SERVICE_UNAVAILABLE; when all return they catch up, order again, and all
/// five hold the same blocks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_keep_ordering_with_a_minority_down_and_recover_from_quorum_loss() {
    let _channel = CHANNELS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (configs, mut nodes) = start_cluster(dir.path(), 5, ACK_AFTER_COMMIT).await;
    let user1 = signer(USER1, "Org1MSP");
    let channel = "channel-5";
    let send = async |node: &OrdoProcess, i: u64| {
        let mut client = node.grpc().await;
        broadcast_when_led(&mut client, tx(&user1, channel, i)).await
    };
    // Through every node.
    for (i, node) in nodes.iter().flatten().enumerate() {
        let r = send(node, i as u64).await;
        assert_eq!(r.0, Status::Success as i32, "node {}: {}", i + 1, r.1);
    }

    // Every node counts five active consenters (the leader's count, disseminated).
    let active = format!("consensus_etcdraft_active_nodes{{channel=\"{channel}\"}}");
    for node in nodes.iter().flatten() {
        wait_for("five active nodes", || async {
            metric(node, &active).await == Some(5.0)
        })
        .await;
    }

    // A minority down (the leader and one more): the other three go on.
    let leader = leader_of(&nodes, channel).await;
    let second = (leader + 1) % 5;
    let down = [leader, second];
    for d in down {
        nodes[d].take().unwrap().kill9();
    }
    leader_of(&nodes, channel).await;
    for node in nodes.iter().flatten() {
        wait_for("three active nodes", || async {
            metric(node, &active).await == Some(3.0)
        })
        .await;
    }
    let mut sent = 5;
    for node in nodes.iter().flatten() {
        let r = send(node, sent).await;
        assert_eq!(r.0, Status::Success as i32, "{}", r.1);
        sent += 1;
    }

    // A majority down: no ordering, and clients are told so.
    let third = (leader + 2) % 5;
    nodes[third].take().unwrap().kill9();
    let survivor = nodes.iter().flatten().next().unwrap();
    let mut i = 1000;
    wait_for("SERVICE_UNAVAILABLE without a quorum", || {
        i += 1;
        let env = tx(&user1, channel, i);
        async move { status_of(survivor, env).await == Status::ServiceUnavailable as i32 }
    })
    .await;

    // Everyone back: a leader again, ordering again, the same blocks everywhere.
    for d in [leader, second, third] {
        nodes[d] = Some(OrdoProcess::start_cluster_node(&configs[d], d as u32 + 1).await);
    }
    let r = send(nodes[leader].as_ref().unwrap(), sent).await;
    assert_eq!(r.0, Status::Success as i32, "{}", r.1);
    sent += 1;
    let mut client = nodes[leader].as_ref().unwrap().grpc().await;
    let reference = deliver_envelopes(&mut client, &user1, channel, sent as usize).await;
    verify_chain(&reference);
    for node in nodes.iter().flatten() {
        let blocks = blocks_of(node, &user1, channel, reference.len() as u64).await;
        assert!(agreed(&blocks) == agreed(&reference), "the nodes disagree");
    }
}
