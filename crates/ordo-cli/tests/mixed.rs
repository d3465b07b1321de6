//! Ordo and Fabric v2.4.9's own orderer as consenters of one etcdraft Raft group (issue 20):
//! three Fabric orderers run the fixture's channel-3; `ordo channel add-consenter` adds an Ordo
//! node to it through the Fabric leader (Fabric's AddNode), the Ordo node joins with the config
//! block and catches up (from a Fabric leader's snapshot whose membership predates it); load is
//! ordered through both kinds (each forwarding to the other kind's leader); Fabric leaders are
//! killed and restarted until the Ordo node leads, and load is ordered again through the Fabric
//! followers. Every node then holds the same blocks, and Fabric's logs hold no panic, no "too
//! many pings" and no unmarshal error.
//!
//! Needs Fabric's binaries (`ORDO_FABRIC_BIN`, default `../shared/fabric-2.4.9/bin` beside the
//! repository): `.ci/run` runs it with `--features fabric-interop`.

mod common;

use common::*;

const CHANNEL: &str = "channel-3";

fn fabric_bin() -> PathBuf {
    std::env::var_os("ORDO_FABRIC_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fabric-2.4.9/bin"),
        PathBuf::from,
    )
}

/// The fixture's orderer1.yaml (Fabric's format, which Ordo reads too) for orderer `n`: its
/// ports 3705n general, 3715n cluster, 3725n admin, 3735n operations, its data in `dir/o<n>`.
fn node_dir(dir: &Path, n: u32, ordo: bool) -> PathBuf {
    let home = dir.join(format!("o{n}"));
    std::fs::create_dir_all(&home).unwrap();
    let crypto = home.join("crypto-config");
    if !crypto.exists() {
        std::os::unix::fs::symlink(fixture("crypto-config"), &crypto).unwrap();
    }
    let yaml = std::fs::read_to_string(fixture("config/orderer1.yaml"))
        .unwrap()
        .replace("orderer1", &format!("orderer{n}"))
        .replace("37051", &format!("3705{n}"))
        .replace("37151", &format!("3715{n}"))
        .replace("37251", &format!("3725{n}"))
        .replace("37351", &format!("3735{n}"))
        // Ledger and Raft folders absolute: Fabric takes them from its working directory,
        // Ordo from its own.
        .replace("production/", &format!("{}/production/", home.display()));
    let yaml = if ordo {
        // Fabric's etcdraft understands only AddNode/RemoveNode conf changes.
        yaml.replace(
            "/etcdraft/snapshot}",
            "/etcdraft/snapshot, FabricMembershipChanges: true}",
        )
    } else {
        yaml
    };
    std::fs::write(home.join("orderer.yaml"), yaml).unwrap();
    home
}

struct Fabric {
    child: Child,
}

impl Drop for Fabric {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ops(n: u32) -> HttpClient {
    HttpClient {
        addr: format!("127.0.0.1:3735{n}").parse().unwrap(),
        tls: None,
    }
}

fn admin(n: u32) -> HttpClient {
    HttpClient {
        addr: format!("127.0.0.1:3725{n}").parse().unwrap(),
        tls: Some(client_tls(Some(ADMIN_TLS), b"http/1.1")),
    }
}

/// Starts Fabric's orderer `n` in `dir/o<n>` (its log appended to `orderer.log` there) and
/// waits until it answers /healthz.
async fn start_fabric(dir: &Path, n: u32) -> Fabric {
    let home = node_dir(dir, n, false);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.join("orderer.log"))
        .unwrap();
    let child = Command::new(fabric_bin().join("orderer"))
        .env("FABRIC_CFG_PATH", &home)
        .env("FABRIC_LOGGING_SPEC", "info")
        .current_dir(&home)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("Fabric's orderer (set ORDO_FABRIC_BIN to the folder of Fabric's binaries)");
    let mut f = Fabric { child };
    let deadline = tokio::time::Instant::now() + WAIT;
    while !matches!(ops(n).get("/healthz").await, Ok(r) if r.status == 200) {
        assert!(
            f.child.try_wait().unwrap().is_none(),
            "Fabric orderer{n} exited"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "Fabric orderer{n} never answered /healthz"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f
}

async fn is_leader(n: u32) -> bool {
    let series = format!("consensus_etcdraft_is_leader{{channel=\"{CHANNEL}\"}} 1");
    matches!(ops(n).get("/metrics").await, Ok(r) if String::from_utf8_lossy(&r.body).contains(&series))
}

async fn leader() -> u32 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        for n in 1..=4 {
            if is_leader(n).await {
                return n;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader of channel-3"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `ordo bench --check` through the given orderers' general ports, Deliver from `deliver`.
/// A follower that has not heard from a new leader yet answers SERVICE_UNAVAILABLE (Fabric's
/// and Ordo's alike) and the bench does not retry, so a run with such answers is run again, as
/// a client retries; any other answer than SUCCESS fails the test.
fn load(through: &[u32], deliver: u32, envelopes: u32) {
    for attempt in 1..=5 {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ordo"));
        cmd.arg("bench");
        for n in through {
            cmd.args(["--orderer", &format!("127.0.0.1:3705{n}")]);
        }
        let out = cmd
            .args(["--deliver", &format!("127.0.0.1:3705{deliver}")])
            .args(["--channel", CHANNEL, "--msp-id", "Org1MSP", "--msp-dir"])
            .arg(fixture(USER1))
            .arg("--tls-ca")
            .arg(fixture(TLSCA))
            .args(["--envelopes", &envelopes.to_string(), "--json"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "load through {through:?}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        let statuses = v["statuses"].as_object().unwrap();
        assert!(
            statuses
                .keys()
                .all(|k| k == "SUCCESS" || k == "SERVICE_UNAVAILABLE"),
            "load through {through:?}: {v}"
        );
        assert_eq!(v["duplicates"], 0, "{v}");
        assert_eq!(v["chain_ok"], true, "{v}");
        if v["statuses"]["SUCCESS"] == envelopes && v["delivered"] == envelopes {
            return;
        }
        eprintln!(
            "load through {through:?}, attempt {attempt}: {}",
            v["statuses"]
        );
    }
    panic!("load through {through:?}: refused as unavailable five times");
}

/// Blocks 0..height of channel-3 from orderer `n`'s Deliver.
async fn blocks(n: u32, height: u64) -> Vec<Block> {
    let addr: SocketAddr = format!("127.0.0.1:3705{n}").parse().unwrap();
    let mut client = AtomicBroadcastClient::new(
        grpc_channel(addr, Some(client_tls(None, b"h2")))
            .await
            .unwrap(),
    );
    let user = signer(USER1, "Org1MSP");
    let (blocks, status) = deliver(&mut client, seek(&user, CHANNEL, 0, height - 1, true)).await;
    assert_eq!(status, Status::Success as i32, "orderer{n}'s Deliver");
    blocks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordo_consenter_joins_a_fabric_channel_orders_and_leads_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut fabric: Vec<Option<Fabric>> = Vec::new();
    for n in 1..=3 {
        fabric.push(Some(start_fabric(dir.path(), n).await));
    }
    let genesis = std::fs::read(fixture("channel-genesis/channel-3.block")).unwrap();
    for n in 1..=3 {
        let r = admin(n).join(&genesis).await.unwrap();
        assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    }
    let first = leader().await;
    assert!((1..=3).contains(&first));
    load(&[1, 2, 3], 1, 1000);

    // Orderer4, an Ordo node, is added through a Fabric orderer by Ordo's tool.
    let home = node_dir(dir.path(), 4, true);
    let ordo = OrdoProcess::start_cluster_node(&home.join("orderer.yaml"), 4).await;
    let block = dir.path().join("add4.block");
    let o4 = fixture(
        "crypto-config/ordererOrganizations/example.com/orderers/orderer4.example.com/tls/server.crt",
    );
    // Sent to the leader: a Fabric v2.4 follower checks a consenter change against its own
    // view of the active nodes, which only a leader keeps ("0 out of 3 nodes are alive").
    let to = format!("127.0.0.1:3705{}", leader().await);
    let out = Command::new(env!("CARGO_BIN_EXE_ordo"))
        .args(["channel", "add-consenter", "-o", &to, "-c", CHANNEL])
        .arg("--tls-ca-file")
        .arg(fixture(TLSCA))
        .arg("--admin-msp")
        .arg(format!("{}:OrdererMSP", fixture(ADMIN_MSP).display()))
        .args([
            "--fabric-membership-changes",
            "--consenter",
            "127.0.0.1:37154",
        ])
        .arg("--client-tls-cert")
        .arg(&o4)
        .arg("--server-tls-cert")
        .arg(&o4)
        .arg("--output-block")
        .arg(&block)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let r = ordo
        .admin()
        .join(&std::fs::read(&block).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    wait_for("orderer4 an active consenter", || async {
        relation(&ordo, CHANNEL).await == ("consenter".to_string(), "active".to_string())
    })
    .await;

    // Both kinds take Broadcasts and forward them to the leader of the other kind.
    load(&[4, 1, 2, 3], 4, 2000);

    // Fabric leaders die (and come back) until the Ordo node leads.
    let mut led_by_ordo = false;
    for _ in 0..8 {
        let l = leader().await;
        if l == 4 {
            led_by_ordo = true;
            break;
        }
        let i = (l - 1) as usize;
        fabric[i] = None;
        // A new leader among the three others, then the old one back.
        wait_for("a new leader", || async {
            for n in 1..=4 {
                if n != l && is_leader(n).await {
                    return true;
                }
            }
            false
        })
        .await;
        fabric[i] = Some(start_fabric(dir.path(), l).await);
    }
    assert!(
        led_by_ordo,
        "the Ordo node never won an election in 8 leader changes"
    );
    // Through the Fabric followers only: they forward to the Ordo leader.
    load(&[1, 2, 3], 2, 2000);

    // Every node holds the same chain, block for block (headers and data; the signatures
    // in the metadata are each orderer's own).
    wait_for("every node at the same height", || async {
        let h4 = height_of(&ordo, CHANNEL).await;
        let mut same = true;
        for n in 1..=3 {
            let r = admin(n)
                .get(&format!("/participation/v1/channels/{CHANNEL}"))
                .await;
            let h = r
                .ok()
                .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
                .and_then(|v| v["height"].as_u64());
            same &= h == Some(h4);
        }
        same
    })
    .await;
    let height = height_of(&ordo, CHANNEL).await;
    let reference = blocks(4, height).await;
    assert_eq!(reference.len() as u64, height);
    verify_chain(&reference);
    assert!(envelope_count(&reference) >= 5000);
    for n in 1..=3 {
        let theirs = blocks(n, height).await;
        assert_eq!(theirs.len(), reference.len(), "orderer{n}");
        for (a, b) in theirs.iter().zip(&reference) {
            assert_eq!(a.header, b.header, "orderer{n}");
            assert_eq!(a.data, b.data, "orderer{n}");
        }
    }
    drop(fabric);
    for n in 1..=3 {
        let log = std::fs::read_to_string(dir.path().join(format!("o{n}/orderer.log"))).unwrap();
        for bad in ["panic", "too many pings", "unmarshal", "Unmarshal"] {
            let hit = log.lines().find(|l| l.contains(bad));
            assert!(hit.is_none(), "Fabric orderer{n} logged {bad:?}: {hit:?}");
        }
    }
}
