//! Region drills on the region lab (`common::lab`): the seed's five orderers 2/1/2 over three
//! network namespaces with 40/80/120 ms round trips between them, a client in the middle region
//! broadcasting all along (acknowledgement after commit). Each drill prints what it measured —
//! time without a leader, envelopes refused, the longest wait between two acknowledgements — and
//! ends with the same check: every orderer holds the same verified blocks, every acknowledged
//! envelope is in them once, and none is in them twice.
//!
//! A new leader must be elected within [`leader_bound`]. One election round: a follower
//! campaigns once it has heard no heartbeat for its randomized election timeout (Ordo draws
//! ElectionTick + 1 to 5/4 ElectionTick + 1 ticks: 2.75–3.25 s here), then a pre-vote and a vote
//! round trip across the farthest regions follow. A round can fail — two candidates split the
//! votes, or a pre-vote reaches a follower whose leader lease has not run out — and the next
//! round starts a timeout later; the bound allows three rounds.
//!
//! The drills need root (namespaces): `.ci/run` runs them with
//! `cargo test -p ordo-cli --features region-lab --test regions`.

mod common;

use std::collections::HashMap;

use common::lab::{CHANNEL, Lab, Spec};
use common::lab_client::{Book, LabLoad};
use common::*;
use tokio::time::Instant;

/// Drills use fixed addresses and namespace names: one at a time.
static LAB: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The longest election timeout a follower draws on the channel (fixture channel-5:
/// TickInterval 250 ms, ElectionTick 10; `ordo_raft::chain::election_range`: at most 13 ticks).
const LONGEST_ELECTION_TIMEOUT: Duration = Duration::from_millis(13 * 250);

/// Three election rounds, each with a pre-vote and a vote round trip across the farthest
/// regions, and a second of slack: 11.47 s with the seed's delays.
fn leader_bound(spec: &Spec) -> Duration {
    let longest_rtt = spec.rtt_ms.iter().flatten().copied().max().unwrap_or(0);
    3 * (LONGEST_ELECTION_TIMEOUT + Duration::from_millis(2 * longest_rtt)) + Duration::from_secs(1)
}

fn client_addrs(lab: &Lab) -> Vec<SocketAddr> {
    lab.nodes.iter().map(|n| n.client_addr).collect()
}

/// Waits until a running orderer outside `excluded` regions leads; how long that took from
/// `since`.
async fn new_leader(lab: &Lab, excluded: &[usize], since: Instant) -> (usize, Duration) {
    let deadline = since + WAIT;
    loop {
        if let Some(l) = lab.leader(excluded).await {
            return (l, since.elapsed());
        }
        assert!(Instant::now() < deadline, "no leader outside {excluded:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every running orderer at the same height, holding the same verified blocks, with every
/// acknowledged envelope once and no envelope twice. Returns the height.
async fn same_ledgers(lab: &Lab, book: &Book) -> u64 {
    let running: Vec<&OrdoProcess> = lab.processes().into_iter().flatten().collect();
    let deadline = Instant::now() + WAIT;
    let height = loop {
        let mut hs = Vec::new();
        for p in &running {
            hs.push(height_of(p, CHANNEL).await);
        }
        if hs.iter().all(|h| *h == hs[0] && *h > 1) {
            break hs[0];
        }
        assert!(Instant::now() < deadline, "heights stayed apart: {hs:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let user1 = signer(USER1, "Org1MSP");
    let first = blocks_of(running[0], &user1, CHANNEL, height).await;
    verify_chain(&first);
    for p in &running[1..] {
        let blocks = blocks_of(p, &user1, CHANNEL, height).await;
        assert!(
            agreed(&blocks) == agreed(&first),
            "two orderers hold different blocks"
        );
    }
    let mut count: HashMap<String, usize> = HashMap::new();
    for t in payload_texts(&first) {
        if t.starts_with("lab ") {
            *count.entry(t).or_default() += 1;
        }
    }
    let twice: Vec<_> = count.iter().filter(|(_, c)| **c > 1).take(5).collect();
    assert!(twice.is_empty(), "envelopes ordered twice: {twice:?}");
    let acked = book.acked.lock().unwrap();
    let lost: Vec<_> = acked
        .iter()
        .filter(|(_, t)| !count.contains_key(t))
        .take(5)
        .collect();
    assert!(lost.is_empty(), "acknowledged but not ordered: {lost:?}");
    height
}

fn report(drill: &str, lines: &[String]) {
    println!("drill {drill}:");
    for l in lines {
        println!("  {l}");
    }
}

fn refusals(book: &Book, since: Instant) -> Vec<(i32, String)> {
    book.refused
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _, _)| *t >= since)
        .map(|(_, s, i)| (*s, i.clone()))
        .collect()
}

async fn started() -> (Lab, LabLoad) {
    let lab = Lab::start(Spec::seed()).await;
    let load = LabLoad::start(client_addrs(&lab), CHANNEL, 4);
    load.wait_acked(100, "a first hundred envelopes ordered")
        .await;
    (lab, load)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_the_leaders_region_keeps_ordering_and_it_catches_up_when_back() {
    let _one = LAB.lock().await;
    let (mut lab, load) = started().await;
    let old = lab.leader(&[]).await.expect("a leader");
    let region = lab.nodes[old].region;
    let fault = Instant::now();
    lab.kill_region(region);
    let (leader, leaderless) = new_leader(&lab, &[region], fault).await;
    load.wait_acked(200, "ordering goes on without the region")
        .await;
    let during = load.book.acked_since(fault);
    let back = Instant::now();
    lab.start_region(region);
    load.wait_acked(100, "ordering goes on as the region returns")
        .await;
    let book = load.stop().await;
    let height = same_ledgers(&lab, &book).await;
    let bound = leader_bound(&lab.spec);
    report(
        "lose the leader's region",
        &[
            format!(
                "lost region {region} ({} orderers, the leader orderer{} among them)",
                lab.region_nodes(region).len(),
                old + 1
            ),
            format!(
                "new leader orderer{} (region {}) after {} ms (bound {} ms)",
                leader + 1,
                lab.nodes[leader].region,
                leaderless.as_millis(),
                bound.as_millis()
            ),
            format!(
                "longest wait between acknowledgements after the loss: {} ms; {during} acknowledged before the region returned",
                book.longest_gap_since(fault).as_millis()
            ),
            format!(
                "refused {} (all {:?}), interrupted streams {}",
                refusals(&book, fault).len(),
                statuses(&book, fault),
                book.interrupted.load(std::sync::atomic::Ordering::Relaxed)
            ),
            format!(
                "region back and caught up: {} blocks identical on all five orderers, {} envelopes acknowledged, {} since its return",
                height,
                book.acked_count(),
                book.acked_since(back)
            ),
        ],
    );
    assert!(
        leaderless <= bound,
        "no leader for {leaderless:?} (bound {bound:?})"
    );
}

fn statuses(book: &Book, since: Instant) -> Vec<i32> {
    let mut s: Vec<i32> = refusals(book, since).into_iter().map(|(s, _)| s).collect();
    s.sort();
    s.dedup();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_two_regions_refuses_envelopes_until_one_returns() {
    let _one = LAB.lock().await;
    let (mut lab, load) = started().await;
    let fault = Instant::now();
    lab.kill_region(0);
    lab.kill_region(2);
    // The middle region's lone orderer cannot order: it answers SERVICE_UNAVAILABLE.
    let survivor = lab.region_nodes(1)[0];
    let user1 = signer(USER1, "Org1MSP");
    let mut client = lab.nodes[survivor].process.as_ref().unwrap().grpc().await;
    let deadline = Instant::now() + WAIT;
    for probe in 0.. {
        let env = tx(&user1, CHANNEL, 1_000_000 + probe);
        let r = broadcast(&mut client, vec![env]).await;
        if r.first().map(|r| r.0) == Some(Status::ServiceUnavailable as i32) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the survivor did not refuse: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused_at = fault.elapsed();
    let acked_when_refusing = load.book.acked_count();
    let back = Instant::now();
    lab.start_region(2);
    let (leader, leaderless) = new_leader(&lab, &[0], back).await;
    load.wait_acked(100, "ordering resumes once a region returns")
        .await;
    let first_ack_after = {
        let acked = load.book.acked.lock().unwrap();
        acked[acked_when_refusing..]
            .iter()
            .find(|(t, _)| *t >= back)
            .map(|(t, _)| *t - back)
            .unwrap()
    };
    lab.start_region(0);
    load.wait_acked(100, "ordering goes on as the last region returns")
        .await;
    let book = load.stop().await;
    let height = same_ledgers(&lab, &book).await;
    report(
        "lose two regions",
        &[
            format!(
                "regions 0 and 2 lost (4 of 5 orderers): the survivor refused with SERVICE_UNAVAILABLE {} ms after the loss; the client saw {} refusals ({:?})",
                refused_at.as_millis(),
                refusals(&book, fault).len(),
                statuses(&book, fault)
            ),
            format!(
                "region 2 back: leader orderer{} after {} ms, first acknowledgement after {} ms",
                leader + 1,
                leaderless.as_millis(),
                first_ack_after.as_millis()
            ),
            format!(
                "region 0 back and caught up: {height} blocks identical on all five orderers, {} envelopes acknowledged",
                book.acked_count()
            ),
        ],
    );
    assert!(
        refusals(&book, fault)
            .iter()
            .all(|(s, _)| *s == Status::ServiceUnavailable as i32)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partition_isolating_the_leaders_region_moves_leadership_without_a_fork() {
    let _one = LAB.lock().await;
    let (lab, load) = started().await;
    let old = lab.leader(&[]).await.expect("a leader");
    let region = lab.nodes[old].region;
    let fault = Instant::now();
    lab.set_region_link(region, false);
    let (leader, leaderless) = new_leader(&lab, &[region], fault).await;
    load.wait_acked(200, "ordering goes on beyond the partition")
        .await;
    let healed = Instant::now();
    lab.set_region_link(region, true);
    load.wait_acked(100, "ordering goes on after the partition heals")
        .await;
    let book = load.stop().await;
    let height = same_ledgers(&lab, &book).await;
    let bound = leader_bound(&lab.spec);
    report(
        "isolate the leader's region",
        &[
            format!("region {region} cut off (leader orderer{} in it)", old + 1),
            format!(
                "new leader orderer{} after {} ms (bound {} ms)",
                leader + 1,
                leaderless.as_millis(),
                bound.as_millis()
            ),
            format!(
                "refused {} ({:?}), longest wait between acknowledgements {} ms",
                refusals(&book, fault).len(),
                statuses(&book, fault),
                book.longest_gap_since(fault).as_millis()
            ),
            format!(
                "healed: {height} blocks identical on all five orderers, {} acknowledged since",
                book.acked_since(healed)
            ),
        ],
    );
    assert!(
        leaderless <= bound,
        "no leader for {leaderless:?} (bound {bound:?})"
    );
}

/// Restarts (SIGTERM, then start) all five orderers one at a time in their order, the leader
/// wherever it falls, each caught up and active before the next goes: no envelope is refused.
/// A stopping leader hands leadership over first (`ChainCore::hand_off`), and a Broadcast that
/// meets the moment without a leader waits for the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_of_all_five_orderers_refuses_no_envelope() {
    let _one = LAB.lock().await;
    let (mut lab, load) = started().await;
    let start = Instant::now();
    let mut lines = Vec::new();
    for i in 0..lab.nodes.len() {
        let was_leader = lab.leader(&[]).await == Some(i);
        let t = Instant::now();
        lab.stop_node(i);
        let stopped = t.elapsed();
        lab.start_node(i);
        wait_caught_up_and_active(&lab, i).await;
        load.wait_acked(50, "ordering goes on between restarts")
            .await;
        lines.push(format!(
            "orderer{} (region {}){}: stopped in {} ms, back, caught up and active after {} ms; longest wait between acknowledgements since {} ms",
            i + 1,
            lab.nodes[i].region,
            if was_leader { ", the leader" } else { "" },
            stopped.as_millis(),
            t.elapsed().as_millis(),
            load.book.longest_gap_since(t).as_millis()
        ));
    }
    let book = load.stop().await;
    let height = same_ledgers(&lab, &book).await;
    lines.push(format!(
        "refused {}, interrupted streams {}, longest wait between acknowledgements {} ms",
        refusals(&book, start).len(),
        book.interrupted.load(std::sync::atomic::Ordering::Relaxed),
        book.longest_gap_since(start).as_millis()
    ));
    lines.push(format!(
        "{height} blocks identical on all five orderers, {} envelopes acknowledged",
        book.acked_count()
    ));
    report("rolling restart", &lines);
    assert_eq!(refusals(&book, start), vec![], "envelopes refused");
}

/// Grows the channel into the far region while the client broadcasts: orderers 1–4 are the
/// genesis block's consenters and orderer5 (region 2, 80–120 ms away) follows the channel until
/// a config update adds it. It enters the Raft group as a learner and is promoted once caught
/// up: no envelope is refused and ordering never waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adding_a_consenter_in_a_far_region_refuses_no_envelope() {
    let _one = LAB.lock().await;
    let mut spec = Spec::seed();
    spec.consenters = 4;
    let lab = Lab::start(spec).await;
    let load = LabLoad::start(client_addrs(&lab)[..4].to_vec(), CHANNEL, 4);
    load.wait_acked(100, "a first hundred envelopes ordered")
        .await;
    let far = 4;
    let start = Instant::now();
    let first = lab.nodes[0].process.as_ref().unwrap();
    let update = consenters_update(&last_config_block(first, CHANNEL).await, CHANNEL, |cs| {
        cs.push(common::lab::lab_consenter(&lab.nodes[far]))
    });
    let mut client = first.grpc().await;
    let r = broadcast(&mut client, vec![update]).await;
    assert_eq!(r[0].0, Status::Success as i32, "{}", r[0].1);
    let p = lab.nodes[far].process.as_ref().unwrap();
    wait_for("orderer5 a consenter", || async {
        relation(p, CHANNEL).await.0 == "consenter"
    })
    .await;
    let consenter = start.elapsed();
    wait_caught_up_and_active(&lab, far).await;
    let active = start.elapsed();
    load.wait_acked(100, "ordering goes on with orderer5").await;
    let book = load.stop().await;
    let height = same_ledgers(&lab, &book).await;
    report(
        "add a consenter in a far region",
        &[
            format!(
                "orderer5 (region 2) a consenter {} ms after the update was sent, caught up and counted active by the leader after {} ms",
                consenter.as_millis(),
                active.as_millis()
            ),
            format!(
                "refused {}, longest wait between acknowledgements {} ms, interrupted streams {}",
                refusals(&book, start).len(),
                book.longest_gap_since(start).as_millis(),
                book.interrupted.load(std::sync::atomic::Ordering::Relaxed)
            ),
            format!(
                "{height} blocks identical on all five orderers, {} envelopes acknowledged",
                book.acked_count()
            ),
        ],
    );
    assert_eq!(refusals(&book, start), vec![], "envelopes refused");
}

/// `Consensus.PreferredLeaders` names orderer3, the middle region's (40 ms from region 0, 80 ms
/// from region 2): whoever wins the first election hands leadership to it once it has led for
/// two election timeouts, and it keeps it; restarted, it hands leadership away (SIGTERM) and takes
/// it back once caught up. No envelope is refused throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_preferred_leader_in_the_middle_region_takes_leadership_and_gets_it_back() {
    let _one = LAB.lock().await;
    let mut spec = Spec::seed();
    spec.consensus
        .push_str(", PreferredLeaders: [\"orderer3.lab:7050\"]");
    let mut lab = Lab::start(spec).await;
    let load = LabLoad::start(client_addrs(&lab), CHANNEL, 4);
    let start = Instant::now();
    let middle = 2;
    let first = new_leader(&lab, &[], start).await.0;
    wait_for("orderer3 leads", || async {
        lab.leader(&[]).await == Some(middle)
    })
    .await;
    let took = start.elapsed();
    load.wait_acked(100, "ordering under orderer3").await;
    let restart = Instant::now();
    lab.stop_node(middle);
    lab.start_node(middle);
    wait_caught_up_and_active(&lab, middle).await;
    wait_for("orderer3 leads again", || async {
        lab.leader(&[]).await == Some(middle)
    })
    .await;
    let back = restart.elapsed();
    load.wait_acked(100, "ordering under orderer3 again").await;
    let book = load.stop().await;
    let height = same_ledgers(&lab, &book).await;
    report(
        "a preferred leader in the middle region",
        &[
            format!(
                "first leader orderer{}; orderer3 led {} ms after the start",
                first + 1,
                took.as_millis()
            ),
            format!(
                "orderer3 restarted: leading again {} ms after its stop began",
                back.as_millis()
            ),
            format!(
                "refused {}, longest wait between acknowledgements {} ms; {height} blocks identical on all five orderers, {} envelopes acknowledged",
                refusals(&book, start).len(),
                book.longest_gap_since(start).as_millis(),
                book.acked_count()
            ),
        ],
    );
    assert_eq!(refusals(&book, start), vec![], "envelopes refused");
}

/// Waits until orderer index `i` is within two blocks of the leader and the leader counts all
/// five consenters active.
async fn wait_caught_up_and_active(lab: &Lab, i: usize) {
    let p = lab.nodes[i].process.as_ref().unwrap();
    let active = format!("consensus_etcdraft_active_nodes{{channel=\"{CHANNEL}\"}}");
    wait_for("the restarted orderer caught up and active", || async {
        match lab.leader(&[]).await {
            Some(l) => {
                let leader = lab.nodes[l].process.as_ref().unwrap();
                metric(leader, &active).await == Some(5.0)
                    && height_of(p, CHANNEL).await + 2 >= height_of(leader, CHANNEL).await
            }
            None => false,
        }
    })
    .await;
}

/// The seed layout's throughput and latency at 40/80/120 ms, measured by `ordo bench` through
/// the client relays (the client in the middle region) with the leader in each region in turn —
/// a fresh lab for each, whose `Consensus.PreferredLeaders` names the region's first orderer:
/// 4 streams × 64 to the leader at saturation, then an open-loop 1,000 envelopes/s.
/// `ORDO_LAB_RTT_MS=a,b,c` sets the round trips (regions 0–1, 1–2, 0–2), `ORDO_LAB_ENVELOPES`
/// the saturation run's size. Asserts only that every envelope was acknowledged and delivered
/// once (`--check`); the figures are printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wan_timing_of_the_seed_layout_with_ordo_bench() {
    let _one = LAB.lock().await;
    let mut spec = Spec::seed();
    spec.consensus = String::new();
    spec.batch_timeout = "2s".into();
    if let Ok(v) = std::env::var("ORDO_LAB_RTT_MS") {
        let r: Vec<u64> = v.split(',').map(|x| x.trim().parse().unwrap()).collect();
        assert_eq!(r.len(), 3, "ORDO_LAB_RTT_MS=a,b,c");
        spec.rtt_ms = vec![
            vec![0, r[0], r[2]],
            vec![r[0], 0, r[1]],
            vec![r[2], r[1], 0],
        ];
    }
    let envelopes = std::env::var("ORDO_LAB_ENVELOPES").unwrap_or_else(|_| "20000".into());
    println!(
        "wan timing: round trips {:?} ms, client in region {}",
        spec.rtt_ms, spec.client_region
    );
    for region in 0..spec.placement.len() {
        let leader = (0..spec.nodes())
            .find(|i| spec.region_of(*i) == region)
            .unwrap();
        let mut placed = spec.clone();
        placed.consensus = format!(", PreferredLeaders: [\"orderer{}.lab:7050\"]", leader + 1);
        let lab = Lab::start(placed).await;
        wait_for("the preferred leader leads", || async {
            lab.leader(&[]).await == Some(leader)
        })
        .await;
        let addr = lab.nodes[leader].client_addr.to_string();
        for extra in [
            vec!["--envelopes", envelopes.as_str()],
            vec!["--envelopes", "10000", "--rate", "1000"],
        ] {
            let out = Command::new(env!("CARGO_BIN_EXE_ordo"))
                .args(["bench", "--orderer", &addr, "--channel", CHANNEL])
                .args(["--msp-id", "Org1MSP", "--msp-dir"])
                .arg(fixture(USER1))
                .arg("--tls-ca")
                .arg(fixture(TLSCA))
                .args(["--check", "--json"])
                .args(&extra)
                .output()
                .expect("running ordo bench");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "ordo bench failed: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
            println!(
                "wan timing: leader orderer{} in region {region}, {:?}: {:.0} tx/s ordered, latency p50 {:.0} ms, p99 {:.0} ms, {:.1} envelopes per block",
                leader + 1,
                extra,
                v["ordered_per_sec"].as_f64().unwrap_or(0.0),
                v["latency_ms"]["p50"].as_f64().unwrap_or(0.0),
                v["latency_ms"]["p99"].as_f64().unwrap_or(0.0),
                v["txs_per_block"].as_f64().unwrap_or(0.0),
            );
        }
        drop(lab);
    }
}
