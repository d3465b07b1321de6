//! The real `ordo` binary on 127.0.0.1 with TLS on, driven as Fabric clients drive an orderer:
//! channel participation over mutual TLS, Broadcast of valid and invalid envelopes (Fabric's
//! answers from the fixtures), Deliver of every block with hash-chain and signature checks, a
//! kill -9 in the middle of a load, and removing and re-joining a channel.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_broadcast_deliver_kill_restart_remove_rejoin() {
    let _channel_3 = CHANNEL_3.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // Fabric's block cutting: the test checks that a new MaxMessageCount fills the next blocks.
    let config = write_config_consensus(dir.path(), false, ", FabricBlockCutting: true");
    let node = OrdoProcess::start(&config);
    let admin = node.admin();

    // Join channel-1 (orderer1 is its only consenter) and channel-3 (one of three: no quorum).
    let genesis1 = std::fs::read(fixture("channel-genesis/channel-1.block")).unwrap();
    let r = admin.join(&genesis1).await.unwrap();
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.headers.get("location").unwrap(),
        "/participation/v1/channels/channel-1"
    );
    let info = r.json().unwrap();
    assert_eq!(info["consensusRelation"], "consenter");
    assert_eq!(info["status"], "active");
    assert_eq!(info["height"], 1);
    let genesis3 = std::fs::read(fixture("channel-genesis/channel-3.block")).unwrap();
    assert_eq!(admin.join(&genesis3).await.unwrap().status, 201);
    assert_eq!(admin.join(&genesis1).await.unwrap().status, 405);
    let list = admin
        .get("/participation/v1/channels")
        .await
        .unwrap()
        .json()
        .unwrap();
    let names: Vec<&str> = list["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["channel-1", "channel-3"]);

    let mut client = node.grpc().await;
    let user1 = signer(USER1, "Org1MSP");

    // The fixture envelopes, verbatim, on channel-3: Fabric's answers. The valid one cannot be
    // ordered without a quorum, which Fabric also answers with SERVICE_UNAVAILABLE.
    for name in [
        "tx_bad_signature",
        "tx_high_s_signature",
        "tx_org2_cert_claiming_org1msp",
        "tx_org2_not_in_channel",
        "tx_unknown_channel",
    ] {
        let env = Envelope::decode(
            std::fs::read(fixture(&format!("envelopes/{name}.pb")))
                .unwrap()
                .as_slice(),
        )
        .unwrap();
        let answer: serde_json::Value = serde_json::from_slice(
            &std::fs::read(fixture(&format!("envelopes/{name}.answer.txt"))).unwrap(),
        )
        .unwrap();
        let got = broadcast(&mut client, vec![env]).await;
        assert_eq!(got.len(), 1, "{name}");
        assert_eq!(
            i64::from(got[0].0),
            answer["status_code"].as_i64().unwrap(),
            "{name}"
        );
        assert_eq!(got[0].1, answer["info"].as_str().unwrap(), "{name}");
    }

    // channel-1: valid envelopes are ordered; a refused one ends the stream (Fabric closes it
    // after the first failure, so the envelope after it gets no answer).
    let first = broadcast_when_led(&mut client, tx(&user1, "channel-1", 0)).await;
    assert_eq!(first.0, Status::Success as i32, "{}", first.1);
    let mut bad = tx(&user1, "channel-1", 1);
    let mut sig = bad.signature.to_vec();
    sig[10] ^= 1;
    bad.signature = sig.into();
    let org2 = signer(ORG2_USER1, "Org2MSP");
    // The stream's envelopes are checked in parallel but answered and ordered in sequence:
    // 40 successes, the refusal, and nothing of what followed it.
    let mut envs: Vec<Envelope> = (2..42).map(|i| tx(&user1, "channel-1", i)).collect();
    envs.push(bad);
    envs.extend((42..60).map(|i| tx(&user1, "channel-1", i)));
    let answers = broadcast(&mut client, envs).await;
    assert_eq!(answers.len(), 41);
    assert!(answers[..40].iter().all(|a| a.0 == Status::Success as i32));
    assert_eq!(answers[40].0, Status::Forbidden as i32);
    let answers = broadcast(&mut client, vec![tx(&org2, "channel-1", 4)]).await;
    assert_eq!(answers[0].0, Status::Forbidden as i32);

    // Deliver: the 41 envelopes, in order, in signed, hash-chained blocks.
    let blocks = deliver_envelopes(&mut client, &user1, "channel-1", 41).await;
    assert_eq!(envelope_count(&blocks), 41);
    let expected: Vec<String> = std::iter::once(0)
        .chain(2..42)
        .map(|i| format!("transaction {i}"))
        .collect();
    assert_eq!(payload_texts(&blocks), expected);
    verify_chain(&blocks);
    let (_, status) = deliver(&mut client, seek(&user1, "channel-1", 50, 60, true)).await;
    assert_eq!(status, Status::NotFound as i32);
    // Org2 is not a reader of channel-1.
    let (_, status) = deliver(&mut client, seek(&org2, "channel-1", 0, 0, false)).await;
    assert_eq!(status, Status::Forbidden as i32);

    // A config update through Broadcast: its own block, pointing at itself as last config, and
    // the new BatchSize (2 envelopes per block) applies to the envelopes after it.
    let genesis_block = Block::decode(genesis1.as_slice()).unwrap();
    let r = broadcast(&mut client, vec![batch_size_update(&genesis_block, 2)]).await;
    assert_eq!(r[0].0, Status::Success as i32, "{}", r[0].1);
    let height = blocks.len() as u64;
    let (cfg_blocks, status) = deliver(
        &mut client,
        seek(&user1, "channel-1", height, height, false),
    )
    .await;
    assert_eq!(status, Status::Success as i32);
    let config_block = &cfg_blocks[0];
    assert!(ordo_ledger::block::is_config_block(config_block));
    assert_eq!(
        ordo_ledger::block::last_config_index(config_block).unwrap(),
        height
    );
    let answers = broadcast(
        &mut client,
        (10..14).map(|i| tx(&user1, "channel-1", i)).collect(),
    )
    .await;
    assert!(answers.iter().all(|a| a.0 == Status::Success as i32));
    let (after_cfg, status) = deliver(
        &mut client,
        seek(&user1, "channel-1", height + 1, height + 2, false),
    )
    .await;
    assert_eq!(status, Status::Success as i32);
    for b in &after_cfg {
        assert_eq!(
            b.data.as_ref().unwrap().data.len(),
            2,
            "the new MaxMessageCount applies"
        );
        assert_eq!(ordo_ledger::block::last_config_index(b).unwrap(), height);
    }

    // A load, with kill -9 in the middle: every block delivered (committed) before the kill is
    // there after the restart, unchanged, and the chain goes on.
    let load_signer = signer(USER1, "Org1MSP");
    let load_client = client.clone();
    let load = tokio::spawn(async move {
        let mut c = load_client;
        for round in 0..1000u64 {
            let envs: Vec<Envelope> = (0..20)
                .map(|i| tx(&load_signer, "channel-1", 1000 + round * 20 + i))
                .collect();
            let Ok(Ok(resp)) =
                tokio::time::timeout(WAIT, c.broadcast(futures::stream::iter(envs))).await
            else {
                return;
            };
            let mut s = resp.into_inner();
            while let Ok(Some(_)) = s.message().await {}
        }
    });
    let (committed, _) = deliver(&mut client, seek(&user1, "channel-1", 0, 6, false)).await;
    node.kill9();
    let _ = load.await;
    let node = OrdoProcess::start(&config);
    let mut client = node.grpc().await;
    let (after, status) = deliver(&mut client, seek(&user1, "channel-1", 0, 6, true)).await;
    assert_eq!(status, Status::Success as i32);
    assert_eq!(after.len(), committed.len());
    for (a, b) in committed.iter().zip(&after) {
        assert_eq!(a.header, b.header);
        assert_eq!(a.data, b.data);
    }
    let r = broadcast_when_led(&mut client, tx(&user1, "channel-1", 99_999)).await;
    assert_eq!(r.0, Status::Success as i32, "{}", r.1);
    let height = admin_height(&node.admin(), "channel-1").await;
    let (all, status) = deliver(&mut client, seek(&user1, "channel-1", 0, height - 1, false)).await;
    assert_eq!(status, Status::Success as i32);
    verify_chain(&all);
    assert!(envelope_count(&all) >= 3);

    // Remove deletes the ledger, the WAL and the snapshots; re-joining starts afresh.
    let admin = node.admin();
    assert_eq!(admin.remove("channel-1").await.unwrap().status, 204);
    assert_eq!(
        admin
            .get("/participation/v1/channels/channel-1")
            .await
            .unwrap()
            .status,
        404
    );
    for sub in [
        "ledger/chains/channel-1",
        "etcdraft/wal/channel-1",
        "etcdraft/snapshot/channel-1",
    ] {
        assert!(!dir.path().join(sub).exists(), "{sub} left behind");
    }
    assert_eq!(admin.join(&genesis1).await.unwrap().status, 201);
    let r = broadcast_when_led(&mut client, tx(&user1, "channel-1", 5)).await;
    assert_eq!(r.0, Status::Success as i32, "{}", r.1);
    let blocks = deliver_envelopes(&mut client, &user1, "channel-1", 1).await;
    assert_eq!(envelope_count(&blocks), 1);
    verify_chain(&blocks);

    // Operations: health and metrics.
    let ops = HttpClient {
        addr: node.addrs.operations,
        tls: None,
    };
    let health = ops.get("/healthz").await.unwrap();
    assert_eq!(
        health.status,
        503,
        "channel-3 has no leader: {}",
        String::from_utf8_lossy(&health.body)
    );
    let metrics = String::from_utf8(ops.get("/metrics").await.unwrap().body.to_vec()).unwrap();
    assert!(metrics.contains("ledger_blockchain_height{channel=\"channel-1\"}"));
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in /metrics"))
    };
    assert!(value("grpc_comm_conn_opened") >= 1.0);
    assert!(value("blockcutter_block_fill_duration_count{channel=\"channel-1\"}") >= 1.0);
}

/// A node (TLS, no mutual TLS) in `dir` that joined channel-1, whose only consenter it is; its
/// config (to restart it with), a Broadcast/Deliver client and Org1's User1 to send as.
async fn node_with_channel_1(
    dir: &Path,
) -> (
    OrdoProcess,
    PathBuf,
    AtomicBroadcastClient<tonic::transport::Channel>,
    SigningIdentity,
) {
    let config = write_config(dir, false);
    let node = OrdoProcess::start(&config);
    let genesis = std::fs::read(fixture("channel-genesis/channel-1.block")).unwrap();
    assert_eq!(node.admin().join(&genesis).await.unwrap().status, 201);
    let client = node.grpc().await;
    (node, config, client, signer(USER1, "Org1MSP"))
}

/// Blocks made from committed Raft entries go to the ledger without an fsync of their own (the
/// WAL holds the entries until the ledger is synced). A machine crash can then lose them, or
/// leave holes among them: here the node is killed, the ledger's unsynced part is damaged as such
/// a crash would leave it (a record in the middle zeroed, zeros after the end), and the
/// restarted node — the channel's only consenter, with nobody to pull from — makes the same
/// blocks again from its WAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_lost_from_the_ledger_in_a_machine_crash_are_made_again_from_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let (node, config, mut client, user1) = node_with_channel_1(dir.path()).await;
    let r = broadcast_when_led(&mut client, tx(&user1, "channel-1", 0)).await;
    assert_eq!(r.0, Status::Success as i32, "{}", r.1);
    // One envelope at a time, each waited for: one block each (adaptive cutting), 8 blocks.
    for i in 1..8 {
        let r = broadcast(&mut client, vec![tx(&user1, "channel-1", i)]).await;
        assert_eq!(r[0].0, Status::Success as i32, "{}", r[0].1);
        deliver_envelopes(&mut client, &user1, "channel-1", i as usize + 1).await;
    }
    let height = admin_height(&node.admin(), "channel-1").await;
    let (before, status) =
        deliver(&mut client, seek(&user1, "channel-1", 0, height - 1, false)).await;
    assert_eq!(status, Status::Success as i32);
    node.kill9();

    let chain = dir.path().join("ledger/chains/channel-1");
    let mark = std::fs::read(chain.join("blocks.sync")).unwrap();
    let synced = u64::from_le_bytes(mark[..8].try_into().unwrap());
    let offsets: Vec<u64> = std::fs::read(chain.join("index.dat"))
        .unwrap()
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(offsets.len() as u64, height);
    // Only the genesis block (written by the join) was synced.
    assert_eq!(
        synced, offsets[1],
        "the ordered blocks were fsynced one by one"
    );
    let mut data = std::fs::read(chain.join("blocks.dat")).unwrap();
    let (from, to) = (offsets[3] as usize, offsets[4] as usize);
    data[from..to].fill(0);
    data.extend_from_slice(&[0; 4096]);
    std::fs::write(chain.join("blocks.dat"), &data).unwrap();

    let node = OrdoProcess::start(&config);
    let mut client = node.grpc().await;
    // Deliver waits for the blocks the restarted node writes again.
    let (after, status) =
        deliver(&mut client, seek(&user1, "channel-1", 0, height - 1, false)).await;
    assert_eq!(status, Status::Success as i32);
    assert_eq!(after.len(), before.len());
    for (a, b) in before.iter().zip(&after) {
        assert_eq!(a.header, b.header);
        assert_eq!(a.data, b.data);
    }
    verify_chain(&after);
    // Committed entries are applied before the node has campaigned: wait for its leadership.
    let r = broadcast_when_led(&mut client, tx(&user1, "channel-1", 100)).await;
    assert_eq!(r.0, Status::Success as i32, "{}", r.1);
    let blocks = deliver_envelopes(&mut client, &user1, "channel-1", 9).await;
    verify_chain(&blocks);
}

const ORG1_USER1_TLS: &str =
    "crypto-config/peerOrganizations/org1.example.com/users/User1@org1.example.com/tls";
const ORG2_USER1_TLS: &str =
    "crypto-config/peerOrganizations/org2.example.com/users/User1@org2.example.com/tls";

/// A gRPC client TLS setting presenting the TLS certificate in `dir`.
fn tls_client(dir: &str) -> ClientTls {
    let root = std::fs::read(fixture(&format!("{ORDERER1}/tls/ca.crt"))).unwrap();
    let cert = std::fs::read(fixture(&format!("{dir}/client.crt"))).unwrap();
    let key = std::fs::read(fixture(&format!("{dir}/client.key"))).unwrap();
    ClientTls::new(&[root], Some((&cert, &key)), "127.0.0.1", &[b"h2"]).unwrap()
}

/// The SHA-256 of the (DER) TLS certificate in `dir`: what Deliver's TLS binding expects.
fn tls_cert_hash(dir: &str) -> Bytes {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let pem = std::fs::read(fixture(&format!("{dir}/client.crt"))).unwrap();
    let der = CertificateDer::from_pem_slice(&pem).unwrap();
    Bytes::copy_from_slice(&ordo_crypto::sha256(&der))
}

/// One Deliver request on a fresh connection: the blocks and the status, or the transport
/// error when the node refuses the connection (an untrusted client certificate).
async fn try_deliver(
    addr: SocketAddr,
    tls: ClientTls,
    env: Envelope,
) -> Result<(Vec<Block>, i32), String> {
    let attempt = async {
        let channel = grpc_channel(addr, Some(tls))
            .await
            .map_err(|e| e.to_string())?;
        let mut client = AtomicBroadcastClient::new(channel);
        let mut stream = client
            .deliver(futures::stream::iter(vec![env]))
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        let mut blocks = Vec::new();
        loop {
            match stream.message().await.map_err(|e| e.to_string())? {
                Some(m) => match m.r#type {
                    Some(deliver_response::Type::Block(b)) => blocks.push(b),
                    Some(deliver_response::Type::Status(s)) => return Ok((blocks, s)),
                    None => return Err("empty deliver response".to_string()),
                },
                None => return Err("stream ended without a status".to_string()),
            }
        }
    };
    tokio::time::timeout(WAIT, attempt)
        .await
        .expect("deliver neither succeeded nor failed")
}

/// Repeats `try_deliver` until its outcome is accepted (`want_ok`) or refused, as the trusted
/// roots follow a join or removal asynchronously; each attempt is the event waited for.
async fn deliver_until(
    addr: SocketAddr,
    tls: &ClientTls,
    env: &Envelope,
    want_ok: bool,
) -> Result<(Vec<Block>, i32), String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = try_deliver(addr, tls.clone(), env.clone()).await;
        if r.is_ok() == want_ok || tokio::time::Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_trusts_the_channels_tls_cas_and_binds_deliver_requests() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), true);
    let node = OrdoProcess::start(&config);
    let addr = node.addrs.general;
    let user1 = signer(USER1, "Org1MSP");
    let org1 = tls_client(ORG1_USER1_TLS);
    let bound = seek_bound(
        &user1,
        "channel-1",
        0,
        0,
        false,
        tls_cert_hash(ORG1_USER1_TLS),
    );

    // No channel yet: only the configured ClientRootCAs (the orderer TLS CA) are trusted.
    let refused = try_deliver(addr, org1.clone(), bound.clone()).await;
    assert!(
        refused.is_err(),
        "Org1's TLS certificate was let in: {refused:?}"
    );
    // The orderer admin's TLS certificate chains to the configured root.
    let admin_seek = seek_bound(&user1, "channel-1", 0, 0, false, tls_cert_hash(ADMIN_TLS));
    let (_, status) = try_deliver(addr, tls_client(ADMIN_TLS), admin_seek.clone())
        .await
        .unwrap();
    assert_eq!(status, Status::NotFound as i32, "no channel-1 yet");

    // Joining channel-1 adds its organizations' TLS CAs (Org1's among them).
    let genesis1 = std::fs::read(fixture("channel-genesis/channel-1.block")).unwrap();
    assert_eq!(node.admin().join(&genesis1).await.unwrap().status, 201);
    let (blocks, status) = deliver_until(addr, &org1, &bound, true).await.unwrap();
    assert_eq!(status, Status::Success as i32);
    assert_eq!(blocks.len(), 1);

    // TLS binding: a request without the hash, or with another certificate's, is refused.
    let unbound = seek(&user1, "channel-1", 0, 0, false);
    let (_, status) = try_deliver(addr, org1.clone(), unbound).await.unwrap();
    assert_eq!(status, Status::BadRequest as i32);
    let (_, status) = try_deliver(addr, org1.clone(), admin_seek).await.unwrap();
    assert_eq!(status, Status::BadRequest as i32);

    // Broadcast works over mutual TLS, and the block is delivered to the bound request.
    let mut client =
        AtomicBroadcastClient::new(grpc_channel(addr, Some(org1.clone())).await.unwrap());
    let r = broadcast_when_led(&mut client, tx(&user1, "channel-1", 1)).await;
    assert_eq!(r.0, Status::Success as i32, "{}", r.1);
    let both = seek_bound(
        &user1,
        "channel-1",
        0,
        1,
        false,
        tls_cert_hash(ORG1_USER1_TLS),
    );
    let (blocks, status) = try_deliver(addr, org1.clone(), both).await.unwrap();
    assert_eq!(status, Status::Success as i32);
    assert_eq!(envelope_count(&blocks), 1);
    verify_chain(&blocks);

    // Org2 is in no joined channel: still refused.
    let org2_seek = seek_bound(
        &user1,
        "channel-1",
        0,
        0,
        false,
        tls_cert_hash(ORG2_USER1_TLS),
    );
    let refused = try_deliver(addr, tls_client(ORG2_USER1_TLS), org2_seek).await;
    assert!(
        refused.is_err(),
        "Org2's TLS certificate was let in: {refused:?}"
    );

    // Removing the channel takes its CAs away again.
    assert_eq!(node.admin().remove("channel-1").await.unwrap().status, 204);
    let refused = deliver_until(addr, &org1, &bound, false).await;
    assert!(
        refused.is_err(),
        "Org1 still trusted after the removal: {refused:?}"
    );
}

/// A copy of User1@org1's MSP under `dir` whose signing certificate (issued by Org1's CA, OU
/// client) expires `secs` seconds from now; returns its signer and the expiry.
fn expiring_user(dir: &Path, secs: i64) -> (SigningIdentity, std::time::SystemTime) {
    let org1 = "crypto-config/peerOrganizations/org1.example.com";
    let msp = dir.join("expiring-msp");
    for sub in ["cacerts", "tlscacerts", "signcerts", "keystore"] {
        std::fs::create_dir_all(msp.join(sub)).unwrap();
    }
    for f in [
        "cacerts/ca.org1.example.com-cert.pem",
        "tlscacerts/tlsca.org1.example.com-cert.pem",
        "config.yaml",
    ] {
        std::fs::copy(
            fixture(&format!("{org1}/users/User1@org1.example.com/msp/{f}")),
            msp.join(f),
        )
        .unwrap();
    }
    let ca_key = rcgen::KeyPair::from_pem(
        &std::fs::read_to_string(fixture(&format!("{org1}/ca/priv_sk"))).unwrap(),
    )
    .unwrap();
    let ca_pem =
        std::fs::read_to_string(fixture(&format!("{org1}/ca/ca.org1.example.com-cert.pem")))
            .unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationalUnitName, "client");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Expiring@org1.example.com");
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::seconds(secs);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(msp.join("signcerts/cert.pem"), cert.pem()).unwrap();
    std::fs::write(msp.join("keystore/priv_sk"), key.serialize_pem()).unwrap();
    let signer = ordo_msp::local::load_signing_identity(&msp, "Org1MSP")
        .unwrap()
        .signer;
    // The certificate keeps whole seconds.
    let expiry =
        std::time::UNIX_EPOCH + Duration::from_secs(params.not_after.unix_timestamp() as u64);
    (signer, expiry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_stops_at_the_first_block_after_the_requesters_certificate_expires() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, _, mut client, user1) = node_with_channel_1(dir.path()).await;
    let r = broadcast_when_led(&mut client, tx(&user1, "channel-1", 1)).await;
    assert_eq!(r.0, Status::Success as i32, "{}", r.1);

    let (expiring, expiry) = expiring_user(dir.path(), 4);
    let env = seek(&expiring, "channel-1", 0, u64::MAX, false);
    let mut stream = open_deliver(&mut client, env).await;
    for n in 0..2 {
        match next_response(&mut stream).await {
            Some(deliver_response::Type::Block(b)) => assert_eq!(b.header.unwrap().number, n),
            other => panic!("block {n} expected, got {other:?}"),
        }
    }
    // Wait for the clock to pass the expiry (the event this test is about), then make block 2.
    if let Ok(left) = expiry.duration_since(std::time::SystemTime::now()) {
        tokio::time::sleep(left + Duration::from_secs(1)).await;
    }
    let r = broadcast(&mut client, vec![tx(&user1, "channel-1", 2)]).await;
    assert_eq!(r[0].0, Status::Success as i32, "{}", r[0].1);
    assert_eq!(
        next_response(&mut stream).await,
        Some(deliver_response::Type::Status(Status::Forbidden as i32))
    );
}

async fn admin_height(admin: &HttpClient, channel: &str) -> u64 {
    let r = admin
        .get(&format!("/participation/v1/channels/{channel}"))
        .await
        .unwrap();
    r.json().unwrap()["height"].as_u64().unwrap()
}

/// The soft limit on open files rises to the hard one at start (as Go programs, Fabric's orderer
/// among them, do): a default soft limit of 1024 must not become the node's connection bound.
#[test]
fn the_node_raises_its_open_file_limit_to_the_hard_one() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), false);
    let mut child = std::process::Command::new("sh")
        .args([
            "-c",
            "ulimit -Sn 256 && exec \"$0\" node start --kernel-ports --config \"$1\"",
            env!("CARGO_BIN_EXE_ordo"),
        ])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let started = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.starts_with("ordo node started: "));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(started, "the node did not start");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    // "Max open files  <soft>  <hard>  files"
    let (soft, hard) = (fields[3], fields[4]);
    assert_ne!(soft, "256", "{line}");
    assert_eq!(soft, hard, "{line}");
}
