//! A fault campaign on real `ordo node` processes: the fixture's three orderers on channel-3 in
//! ack-after-commit mode, a checker client broadcasting uniquely tagged envelopes through every
//! node, and a nemesis drawn from a seed that kills nodes (`kill -9`, restarted after a while),
//! pauses them (SIGSTOP, then SIGCONT: a stalled leader), and through a relay in front of every
//! cluster listener (`common::relay`) cuts a node off from the others, cuts one node's link to
//! another one way, or slows a node's links; or it removes a node from the channel's consenters
//! by a config update and adds it back (the node follows the channel meanwhile, and rejoins Raft
//! under a new ID); or it restarts a node with its clock off by up to five minutes either way
//! (libfaketime, where installed: a clock that jumped while the node was down), then restarts it
//! with the true time again; or, run as root, it fills a node's disk (each node's data on a tmpfs
//! of its own) and frees it again: the node's channel halts and resumes by itself. Partitions
//! cut the Raft links; a node catching up still pulls blocks over
//! Deliver, as it would from any orderer it can reach. After the faults stop, the checker
//! asserts:
//!
//! - the cluster recovers: a last envelope is acknowledged and every node reaches the same
//!   height;
//! - no two nodes hold different blocks at a height, and every block verifies (hash chain, data
//!   hash, signatures against BlockValidation);
//! - every acknowledged envelope is in the ledger exactly once, and no envelope is in it twice
//!   (each attempt carries its own tag, so a re-send is a new envelope).
//!
//! The checker is not vacuous: the same campaign in Fabric's acknowledgement mode (SUCCESS once
//! handed to the leader) fails on "acknowledged but not ordered" within 30 s.
//!
//! `cargo test` runs a short campaign (`ORDO_CHAOS_SECS`, default 30). A long one:
//! `ORDO_CHAOS_SECS=3600 cargo test -p ordo-cli --test chaos -- --nocapture`; a failing
//! run prints its seed, and `ORDO_CHAOS_SEED=<seed>` draws the same faults again (their timing
//! on real processes differs from run to run).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::relay::Relay;
use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const N: u32 = 3;
const CHANNEL: &str = "channel-3";
const ACK_AFTER_COMMIT: &str = ", AckAfterCommit: true, AckAfterCommitTimeout: 3s";

fn env_u64(key: &str) -> Option<u64> {
    std::env::var(key).ok().and_then(|v| v.parse().ok())
}

/// What the checker's clients did.
#[derive(Default)]
struct Ledgerless {
    sent: AtomicU64,
    acked: Mutex<Vec<String>>,
}

/// A client of node `n`: one envelope at a time, each attempt with its own tag, reconnecting
/// whenever the node is unreachable.
async fn client(n: u32, stop: Arc<AtomicBool>, book: Arc<Ledgerless>) {
    let tls = client_tls(None, b"h2");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{}", 37050 + n).parse().unwrap();
    let user1 = signer(USER1, "Org1MSP");
    let mut conn: Option<AtomicBroadcastClient<tonic::transport::Channel>> = None;
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = conn.as_mut() else {
            match tokio::time::timeout(
                Duration::from_secs(2),
                grpc_channel(addr, Some(tls.clone())),
            )
            .await
            {
                Ok(Ok(ch)) => conn = Some(AtomicBroadcastClient::new(ch)),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
            continue;
        };
        let tag = format!("chaos {n} {seq}");
        seq += 1;
        let env = create_signed_envelope(
            HeaderType::EndorserTransaction,
            CHANNEL,
            &user1,
            Bytes::from(tag.clone().into_bytes()),
        )
        .unwrap();
        book.sent.fetch_add(1, Ordering::Relaxed);
        let answer = tokio::time::timeout(Duration::from_secs(5), async {
            let mut stream = c
                .broadcast(futures::stream::iter(vec![env]))
                .await?
                .into_inner();
            stream.message().await
        })
        .await;
        match answer {
            Ok(Ok(Some(r))) if r.status == Status::Success as i32 => {
                book.acked.lock().unwrap().push(tag);
            }
            Ok(Ok(Some(_))) => tokio::time::sleep(Duration::from_millis(50)).await,
            // Unreachable, stopped or paused: connect again.
            _ => conn = None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum NodeState {
    Up,
    Paused,
    Down,
    Skewed,
}

/// The faults the nemesis draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Fault {
    Kill,
    Pause,
    Isolate,
    OneWay,
    Slow,
    Reconfigure,
    Skew,
    FillDisk,
}

const FAULTS: [Fault; 8] = [
    Fault::Kill,
    Fault::Pause,
    Fault::Isolate,
    Fault::OneWay,
    Fault::Slow,
    Fault::Reconfigure,
    Fault::Skew,
    Fault::FillDisk,
];

/// Each node's data folder on a tmpfs of its own, so that the nemesis can fill it: mounted by
/// root (the campaign leaves disk faults out otherwise), unmounted when dropped.
struct Disks(Vec<PathBuf>);

impl Disks {
    fn mount(folders: &[PathBuf]) -> Option<Disks> {
        let mut mounted = Vec::new();
        for f in folders {
            let ok = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=4g", "tmpfs"])
                .arg(f)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                drop(Disks(mounted));
                return None;
            }
            mounted.push(f.clone());
        }
        Some(Disks(mounted))
    }

    /// Takes every free byte of node `i`'s disk: most of it at once (fallocate), then the rest
    /// written in ever smaller pieces until the file system refuses. The node may write
    /// meanwhile, so the bulk leaves it a margin, and a refused bulk is no failure: the writes
    /// fill the disk all the same.
    fn fill(&self, i: usize) -> PathBuf {
        use std::io::Write;
        let filler = self.0[i].join("filler");
        let bulk = free_bytes(&self.0[i]).saturating_sub(64 << 20);
        let _ = std::process::Command::new("fallocate")
            .args(["-l", &bulk.to_string()])
            .arg(&filler)
            .stderr(Stdio::null())
            .status();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&filler)
            .unwrap();
        let chunk = vec![0u8; 1 << 20];
        for size in [1 << 20, 4096, 1] {
            while f.write_all(&chunk[..size]).is_ok() {}
        }
        let _ = f.sync_all();
        filler
    }
}

impl Drop for Disks {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(f)
                .status();
        }
    }
}

/// Debian's libfaketime, which `.ci/run` installs: a process started with it in `LD_PRELOAD`
/// reads the wall-clock time `FAKETIME` says (an offset such as `-90s`).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// Makes orderer`i + 1` a consenter of the channel or not (`member`), by a config update signed
/// by the orderer organization's admin, read from and checked on node `via`. An update whose
/// answer is lost may have been ordered: the config is read again before each attempt.
async fn set_consenter(nodes: &[Option<OrdoProcess>], via: usize, i: usize, member: bool) {
    let consenter = fixture_consenter(i as u32 + 1);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let via = nodes[via].as_ref().unwrap();
        let current = last_config_block(via, CHANNEL).await;
        let cfg = ordo_orderer::channel::config_of_block(&current).unwrap();
        let listed = cfg
            .raft()
            .unwrap()
            .consenters()
            .iter()
            .any(|c| c.client_tls_cert == consenter.client_tls_cert);
        if listed == member {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "orderer{} is still {}a consenter",
            i + 1,
            if member { "not " } else { "" }
        );
        let update = consenters_update(&current, CHANNEL, |cs| {
            if member {
                cs.push(consenter.clone());
            } else {
                cs.retain(|c| c.client_tls_cert != consenter.client_tls_cert);
            }
        });
        let leader = leader_of(nodes, CHANNEL).await;
        let mut client = nodes[leader].as_ref().unwrap().grpc().await;
        let (status, info) = broadcast_when_led(&mut client, update).await;
        if status != Status::Success as i32 {
            eprintln!("config update answered {status}: {info}; reading the config again");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Starts orderer`i + 1` and tells the relay its process.
async fn start(configs: &[PathBuf], i: usize, relay: &Relay) -> OrdoProcess {
    start_with_env(configs, i, relay, &[]).await
}

async fn start_with_env(
    configs: &[PathBuf],
    i: usize,
    relay: &Relay,
    env: &[(&str, &str)],
) -> OrdoProcess {
    let n = i as u32 + 1;
    let ports = [37050 + n as u16, relayed_cluster_port(n)];
    let node = OrdoProcess::start_on_ports_with_env(&configs[i], ports, env).await;
    relay.set_pid(i, Some(node.child.id()));
    node
}

fn signal(node: &OrdoProcess, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &node.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_campaign_on_real_processes_keeps_every_promise() {
    let secs = env_u64("ORDO_CHAOS_SECS").unwrap_or(30);
    let seed = env_u64("ORDO_CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    eprintln!("chaos campaign: seed {seed}, {secs} s (replay the faults: ORDO_CHAOS_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);

    let dir = tempfile::tempdir().unwrap();
    let folders: Vec<PathBuf> = (1..=N)
        .map(|i| dir.path().join(format!("orderer{i}")))
        .collect();
    for f in &folders {
        std::fs::create_dir_all(f).unwrap();
    }
    let disks = Disks::mount(&folders);
    let configs: Vec<PathBuf> = (1..=N)
        .zip(&folders)
        .map(|(i, d)| write_cluster_node_config_behind_relay(d, i, ACK_AFTER_COMMIT))
        .collect();
    let relay = Relay::start(
        &(1..=N).map(|n| 37150 + n as u16).collect::<Vec<_>>(),
        &(1..=N).map(relayed_cluster_port).collect::<Vec<_>>(),
    )
    .await;
    let mut nodes: Vec<Option<OrdoProcess>> = Vec::new();
    for i in 0..N as usize {
        nodes.push(Some(start(&configs, i, &relay).await));
    }
    let genesis = std::fs::read(fixture(&format!("channel-genesis/{CHANNEL}.block"))).unwrap();
    for node in nodes.iter().flatten() {
        assert_eq!(node.admin().join(&genesis).await.unwrap().status, 201);
    }
    let leader = leader_of(&nodes, CHANNEL).await;
    let user1 = signer(USER1, "Org1MSP");
    let mut first = nodes[leader].as_ref().unwrap().grpc().await;
    let r = broadcast_when_led(&mut first, tx(&user1, CHANNEL, 0)).await;
    assert_eq!(r.0, Status::Success as i32, "{}", r.1);

    let stop = Arc::new(AtomicBool::new(false));
    let book = Arc::new(Ledgerless::default());
    let clients: Vec<_> = (1..=N)
        .map(|n| tokio::spawn(client(n, stop.clone(), book.clone())))
        .collect();

    // The nemesis: one fault at a time, each lasting 0.5–4 s, 0.5–3 s apart.
    let mut state = vec![NodeState::Up; N as usize];
    let mut injected: HashMap<Fault, u32> = HashMap::new();
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(500..3000))).await;
        let i = rng.gen_range(0..N as usize);
        let hold = Duration::from_millis(rng.gen_range(500..4000));
        let mut fault = FAULTS[rng.gen_range(0..FAULTS.len())];
        if fault == Fault::Skew && !Path::new(LIBFAKETIME).exists()
            || fault == Fault::FillDisk && disks.is_none()
        {
            fault = Fault::Kill;
        }
        *injected.entry(fault).or_default() += 1;
        match fault {
            Fault::Kill => {
                nodes[i].take().unwrap().kill9();
                relay.set_pid(i, None);
                state[i] = NodeState::Down;
                tokio::time::sleep(hold).await;
                nodes[i] = Some(start(&configs, i, &relay).await);
            }
            Fault::Pause => {
                signal(nodes[i].as_ref().unwrap(), "-STOP");
                state[i] = NodeState::Paused;
                tokio::time::sleep(hold).await;
                signal(nodes[i].as_ref().unwrap(), "-CONT");
            }
            Fault::Isolate => {
                relay.isolate(i);
                tokio::time::sleep(hold).await;
            }
            Fault::OneWay => {
                let j = (i + rng.gen_range(1..N as usize)) % N as usize;
                relay.cut(i, j);
                tokio::time::sleep(hold).await;
            }
            Fault::Slow => {
                relay.slow(i, Duration::from_millis(rng.gen_range(50..400)));
                tokio::time::sleep(hold).await;
            }
            Fault::Skew => {
                let offset = format!(
                    "{}{}s",
                    if rng.gen_bool(0.5) { "+" } else { "-" },
                    rng.gen_range(30..300)
                );
                nodes[i].take().unwrap().kill9();
                relay.set_pid(i, None);
                state[i] = NodeState::Down;
                // Only the wall clock is off, as after an NTP step: the monotonic clock, which
                // Raft's timers and tokio run on, stays true.
                let env = [
                    ("LD_PRELOAD", LIBFAKETIME),
                    ("FAKETIME", offset.as_str()),
                    ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
                ];
                nodes[i] = Some(start_with_env(&configs, i, &relay, &env).await);
                state[i] = NodeState::Skewed;
                tokio::time::sleep(hold).await;
                nodes[i].take().unwrap().kill9();
                relay.set_pid(i, None);
                nodes[i] = Some(start(&configs, i, &relay).await);
            }
            Fault::FillDisk => {
                let filler = disks.as_ref().unwrap().fill(i);
                tokio::time::sleep(hold).await;
                std::fs::remove_file(filler).unwrap();
            }
            Fault::Reconfigure => {
                let via = (i + 1) % N as usize;
                set_consenter(&nodes, via, i, false).await;
                wait_for("the removed orderer to follow the channel", || async {
                    relation(nodes[i].as_ref().unwrap(), CHANNEL).await.0 == "follower"
                })
                .await;
                tokio::time::sleep(hold).await;
                set_consenter(&nodes, via, i, true).await;
                wait_for(
                    "the orderer added back to be an active consenter",
                    || async {
                        relation(nodes[i].as_ref().unwrap(), CHANNEL).await
                            == ("consenter".to_string(), "active".to_string())
                    },
                )
                .await;
            }
        }
        relay.heal();
        state[i] = NodeState::Up;
    }
    assert!(state.iter().all(|s| *s == NodeState::Up));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }

    // Recovery: a last envelope is acknowledged once the faults stop.
    let leader = leader_of(&nodes, CHANNEL).await;
    let mut last = nodes[leader].as_ref().unwrap().grpc().await;
    let r = broadcast_when_led(&mut last, tx(&user1, CHANNEL, 1)).await;
    assert_eq!(r.0, Status::Success as i32, "{}", r.1);
    let deadline = tokio::time::Instant::now() + WAIT;
    let height = loop {
        let mut hs = Vec::new();
        for n in nodes.iter().flatten() {
            hs.push(height_of(n, CHANNEL).await);
        }
        if hs.iter().all(|h| *h == hs[0] && *h > 1) {
            break hs[0];
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the nodes stay at different heights {hs:?} (seed {seed})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Every node's blocks: the same, and each verifies.
    let mut reference: Option<Vec<Block>> = None;
    for node in nodes.iter().flatten() {
        let mut c = node.grpc().await;
        let (blocks, status) = deliver(&mut c, seek(&user1, CHANNEL, 0, height - 1, false)).await;
        assert_eq!(status, Status::Success as i32);
        assert_eq!(blocks.len() as u64, height);
        verify_chain(&blocks);
        match &reference {
            None => reference = Some(blocks),
            Some(r) => {
                for (a, b) in r.iter().zip(&blocks) {
                    assert_eq!(a.header, b.header, "two nodes hold different blocks");
                    assert_eq!(a.data, b.data, "two nodes hold different blocks");
                }
            }
        }
    }
    let blocks = reference.unwrap();
    let mut count: HashMap<String, u32> = HashMap::new();
    for t in payload_texts(&blocks) {
        if t.starts_with("chaos ") {
            *count.entry(t).or_default() += 1;
        }
    }
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "envelopes ordered twice: {twice:?}");
    let acked = book.acked.lock().unwrap().clone();
    let lost: Vec<_> = acked.iter().filter(|t| !count.contains_key(*t)).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but not ordered (seed {seed}): {lost:?}"
    );
    let (relayed, refused, unknown) = relay.counts();
    let n = |f| injected.get(&f).copied().unwrap_or(0);
    eprintln!(
        "chaos campaign: seed {seed}, {secs} s, {} kill -9, {} pauses, {} isolations, {} one-way cuts, {} slow links, {} consenters removed and added back, {} restarts with a skewed clock{}, {} full disks{} ({relayed} cluster connections relayed, {refused} refused on cut links, {unknown} from no node); {} envelopes sent, {} acknowledged, {} ordered; {height} blocks on each of {N} nodes, identical and verified; violations: 0",
        n(Fault::Kill),
        n(Fault::Pause),
        n(Fault::Isolate),
        n(Fault::OneWay),
        n(Fault::Slow),
        n(Fault::Reconfigure),
        n(Fault::Skew),
        if Path::new(LIBFAKETIME).exists() {
            ""
        } else {
            " (libfaketime not installed)"
        },
        n(Fault::FillDisk),
        if disks.is_some() {
            ""
        } else {
            " (not root: no tmpfs)"
        },
        book.sent.load(Ordering::Relaxed),
        acked.len(),
        count.len()
    );
}
