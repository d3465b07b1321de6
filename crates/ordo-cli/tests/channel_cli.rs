//! `ordo channel` against real `ordo node` processes on 127.0.0.1: osnadmin's join, list and
//! remove, and the consenter changes (add, rotate, remove) that fetch the config, check the
//! quorum rule, sign, submit and wait. The channel is one of this test's own (a copy of the
//! fixture's one-node channel on other ports: general 2745n, cluster 2755n, below the kernel's
//! ephemeral range and used by no other test), so it runs beside the fixture-port tests.

mod common;

use std::process::Output;

use common::*;

const CH: &str = "cli-channel";

fn general_port(n: u32) -> u16 {
    27450 + n as u16
}

fn cluster_port(n: u32) -> u16 {
    27550 + n as u16
}

/// Starts `ordo` with `args`, its output captured.
fn spawn_ordo(args: &[&str]) -> (String, tokio::process::Child) {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ordo"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("running ordo");
    (args.join(" "), child)
}

/// Waits for a started `ordo` (bounded by [`WAIT`] plus the commands' own 60 s limit).
async fn finish(started: (String, tokio::process::Child)) -> Output {
    let (line, child) = started;
    let out = tokio::time::timeout(WAIT * 2, child.wait_with_output())
        .await
        .expect("ordo did not finish in time")
        .expect("running ordo");
    // Captured by the test harness: shown with a failure, as the commands' transcript.
    println!(
        "$ ordo {line}\n{}{}[{}]",
        stdout(&out),
        stderr(&out),
        out.status
    );
    out
}

/// Runs `ordo` with `args`.
async fn ordo(args: &[&str]) -> Output {
    finish(spawn_ordo(args)).await
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the command succeeded; returns its output.
fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "ordo failed\nstdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Asserts the command failed with `message` on stderr; returns its stdout.
fn fails(o: Output, message: &str) -> String {
    assert!(
        !o.status.success(),
        "ordo succeeded\nstdout:\n{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains(message),
        "expected {message:?} on stderr\nstdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// The fixture's channel-1 genesis block as channel [`CH`], its consenter (orderer1) and the
/// orderer organization's endpoint moved to this test's ports.
fn genesis() -> Block {
    let block = Block::decode(
        std::fs::read(fixture("channel-genesis/channel-1.block"))
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    let mut config = ordo_orderer::channel::config_of_block(&block)
        .unwrap()
        .config()
        .clone();
    edit_consenters(&mut config, |cs| cs[0].port = u32::from(cluster_port(1)));
    let org = config
        .channel_group
        .as_mut()
        .unwrap()
        .groups
        .get_mut("Orderer")
        .unwrap()
        .groups
        .get_mut("OrdererOrg")
        .unwrap();
    let endpoints = ordo_proto::common::OrdererAddresses {
        addresses: vec![format!("127.0.0.1:{}", general_port(1))],
    };
    org.values.get_mut("Endpoints").unwrap().value = endpoints.encode_to_vec().into();
    ordo_config::genesis::genesis_block_for_config(config, CH).unwrap()
}

/// The osnadmin flags for `node`'s admin endpoint.
fn admin_flags(node: &OrdoProcess) -> Vec<String> {
    vec![
        "-o".into(),
        node.addrs.admin.to_string(),
        "--ca-file".into(),
        p(TLSCA),
        "--client-cert".into(),
        p(&format!("{ADMIN_TLS}/client.crt")),
        "--client-key".into(),
        p(&format!("{ADMIN_TLS}/client.key")),
    ]
}

/// `ordo channel <cmd>` against `node`'s admin endpoint, with `extra` flags.
async fn osnadmin(cmd: &str, node: &OrdoProcess, extra: &[&str]) -> Output {
    let flags = admin_flags(node);
    let mut args: Vec<&str> = vec!["channel", cmd];
    args.extend(flags.iter().map(String::as_str));
    args.extend(extra);
    ordo(&args).await
}

/// The arguments of `ordo channel <cmd>` through the general endpoint of orderer`n`, signed by
/// the orderer admin, with `extra` flags.
fn update_args(n: u32, cmd: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "channel",
        cmd,
        "-o",
        &format!("127.0.0.1:{}", general_port(n)),
        "-c",
        CH,
        "--tls-ca-file",
        &p(TLSCA),
        "--admin-msp",
        &format!("{}:OrdererMSP", p(ADMIN_MSP)),
        "--timeout",
        "60s",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// `ordo channel <cmd>` through orderer1 (see [`update_args`]).
async fn update(cmd: &str, extra: &[&str]) -> Output {
    let args = update_args(1, cmd, extra);
    ordo(&args.iter().map(String::as_str).collect::<Vec<_>>()).await
}

fn fixture_tls_cert(n: u32) -> String {
    p(&format!(
        "crypto-config/ordererOrganizations/example.com/orderers/orderer{n}.example.com/tls/server.crt"
    ))
}

/// The number of the newest config block `node` has.
async fn last_config_number(node: &OrdoProcess) -> u64 {
    last_config_block(node, CH).await.header.unwrap().number
}

/// The leader's view of the cluster: (size, active nodes).
/// The leader's voters, active voters and learners.
async fn cluster_view(nodes: &[Option<OrdoProcess>]) -> (Option<f64>, Option<f64>, Option<f64>) {
    let leader = leader_of(nodes, CH).await;
    let l = nodes[leader].as_ref().unwrap();
    (
        metric(
            l,
            &format!("consensus_etcdraft_cluster_size{{channel=\"{CH}\"}}"),
        )
        .await,
        metric(
            l,
            &format!("consensus_etcdraft_active_nodes{{channel=\"{CH}\"}}"),
        )
        .await,
        metric(l, &format!("ordo_raft_learners{{channel=\"{CH}\"}}")).await,
    )
}

/// osnadmin's join, list and remove, and every consenter change, on a channel that grows from
/// one consenter to two (add-consenter writes the block, the second node joins with it, the
/// command waits until it is a consenter), gets a third that joins as a learner, is promoted
/// and dies (so a quorum-losing change is refused, by `ordo` itself and, with
/// `--skip-quorum-check`, by the orderer), has
/// that down node's certificate rotated and then the node removed (through the second node,
/// which requires client certificates), has the live second node's certificate rotated (the
/// node reloads its files, no restart), loses the second node, and is removed. Bad inputs fail
/// with a message and nothing submitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_is_joined_grown_shrunk_and_removed_with_ordo_channel() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = Vec::new();
    for n in 1..=2u32 {
        let d = dir.path().join(format!("orderer{n}"));
        std::fs::create_dir_all(&d).unwrap();
        // orderer2 requires client certificates from its Broadcast/Deliver clients.
        let mutual_tls = n == 2;
        let config =
            write_node_config_own_tls_at(&d, n, mutual_tls, general_port(n), cluster_port(n), "");
        let ports = [general_port(n), cluster_port(n)];
        nodes.push(Some(OrdoProcess::start_on_ports(&config, ports).await));
    }
    let node = |i: usize| nodes[i].as_ref().unwrap();
    let genesis_file = dir.path().join("genesis.block");
    std::fs::write(&genesis_file, genesis().encode_to_vec()).unwrap();
    let genesis_path = genesis_file.display().to_string();

    // Join, as osnadmin prints it.
    let out = ok(osnadmin("join", node(0), &["-c", CH, "-b", &genesis_path]).await);
    assert!(
        out.starts_with("Status: 201\n{\n\t\"name\": \"cli-channel\",\n"),
        "{out}"
    );
    assert!(
        out.contains("\t\"consensusRelation\": \"consenter\",\n"),
        "{out}"
    );
    let again = fails(
        osnadmin("join", node(0), &["-c", CH, "-b", &genesis_path]).await,
        "the orderer answered HTTP 405",
    );
    assert!(
        again.starts_with("Status: 405\n{\n\t\"error\": "),
        "{again}"
    );
    fails(
        osnadmin("join", node(1), &["-c", "other", "-b", &genesis_path]).await,
        "specified --channelID other does not match channel ID cli-channel in config block",
    );
    let list = ok(osnadmin("list", node(0), &[]).await);
    assert!(list.starts_with("Status: 200\n{\n"), "{list}");
    assert!(list.contains("\"name\": \"cli-channel\""), "{list}");
    let one = ok(osnadmin("list", node(0), &["-c", CH, "--no-status"]).await);
    assert!(one.starts_with("{\n\t\"name\": \"cli-channel\""), "{one}");
    assert!(one.contains("\"status\": \"active\""), "{one}");

    // A second consenter: added; the command writes the block that adds it and waits until
    // orderer2, joined with that block, reports itself a consenter.
    let add_block = dir.path().join("add2.block");
    let add_block_path = add_block.display().to_string();
    let c2 = format!("127.0.0.1:{}", cluster_port(2));
    let (cert1, cert2, cert3) = (
        fixture_tls_cert(1),
        fixture_tls_cert(2),
        fixture_tls_cert(3),
    );
    let admin2 = node(1).addrs.admin.to_string();
    let (ca, cc, ck) = (
        p(TLSCA),
        p(&format!("{ADMIN_TLS}/client.crt")),
        p(&format!("{ADMIN_TLS}/client.key")),
    );
    let wait_for_node2 = [
        "--wait-node-admin",
        admin2.as_str(),
        "--admin-ca-file",
        &ca,
        "--admin-client-cert",
        &cc,
        "--admin-client-key",
        &ck,
    ];
    let mut add_flags = vec![
        "--consenter",
        c2.as_str(),
        "--client-tls-cert",
        &cert2,
        "--server-tls-cert",
        &cert2,
        "--output-block",
        &add_block_path,
    ];
    add_flags.extend(wait_for_node2);
    let args = update_args(1, "add-consenter", &add_flags);
    let adding = spawn_ordo(&args.iter().map(String::as_str).collect::<Vec<_>>());
    wait_for("add-consenter to write the config block", || async {
        add_block.exists()
    })
    .await;
    let joined = ok(osnadmin("join", node(1), &["-c", CH, "-b", &add_block_path]).await);
    assert!(
        joined.contains("\"consensusRelation\": \"follower\""),
        "{joined}"
    );
    let out = ok(finish(adding).await);
    let c1 = format!("127.0.0.1:{}", cluster_port(1));
    for line in [
        format!("fetched config block 0 (consenters: {c1})"),
        format!("update: add consenter {c2}"),
        "quorum check: not needed, the new consenter joins as a learner and counts in the quorum only once it has caught up (all consenters reachable)".to_string(),
        "submitted".to_string(),
        format!("applied: consenters {c1} (ID 1), {c2} (ID 2); next ID 3"),
        format!("config block written to {add_block_path}"),
        format!("node {admin2}: consenter, active"),
        "done".to_string(),
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "no line {line:?} in:\n{out}"
        );
    }
    let added_in = last_config_number(node(0)).await;
    assert!(
        out.contains(&format!("ordered in block {added_in}\n")),
        "{out}"
    );
    assert_eq!(
        relation(node(1), CH).await,
        ("consenter".to_string(), "active".to_string())
    );
    wait_active(&nodes, CH, 2).await;

    // Bad inputs: refused before anything is submitted, with what is wrong.
    let c9 = "127.0.0.1:27559";
    fails(
        update(
            "add-consenter",
            &[
                "--consenter",
                c9,
                "--client-tls-cert",
                &cert1,
                "--server-tls-cert",
                &cert1,
            ],
        )
        .await,
        &format!("that certificate is already the client certificate of consenter {c1}"),
    );
    fails(
        update("remove-consenter", &["--consenter", c9]).await,
        &format!("no consenter is at {c9} (the consenters are: {c1}, {c2})"),
    );
    // One change per command: a second consenter cannot even be named.
    fails(
        update(
            "remove-consenter",
            &["--consenter", &c1, "--consenter", &c2],
        )
        .await,
        "--consenter",
    );
    fails(
        update(
            "remove-consenter",
            &["--consenter", &c2, "--admin-msp", "nocolon"],
        )
        .await,
        "--admin-msp \"nocolon\" is not DIR:MSPID",
    );
    assert_eq!(last_config_number(node(0)).await, added_in);

    // A third consenter: it enters as a learner (no quorum check needed), its node joins with
    // the block the command writes, catches up and is promoted (the command waits until its
    // participation API says active); then the node dies: two of three voters are left.
    let c3 = format!("127.0.0.1:{}", cluster_port(3));
    let d3 = dir.path().join("orderer3");
    std::fs::create_dir_all(&d3).unwrap();
    let config3 = write_node_config_own_tls_at(&d3, 3, false, general_port(3), cluster_port(3), "");
    let third = OrdoProcess::start_on_ports(&config3, [general_port(3), cluster_port(3)]).await;
    let admin3 = third.addrs.admin.to_string();
    let add3_block = dir.path().join("add3.block");
    let add3_path = add3_block.display().to_string();
    let adding = spawn_ordo(
        &update_args(
            1,
            "add-consenter",
            &[
                "--consenter",
                &c3,
                "--client-tls-cert",
                &cert3,
                "--server-tls-cert",
                &cert3,
                "--output-block",
                &add3_path,
                "--wait-node-admin",
                &admin3,
                "--admin-ca-file",
                &ca,
                "--admin-client-cert",
                &cc,
                "--admin-client-key",
                &ck,
            ],
        )
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>(),
    );
    wait_for("add-consenter to write the config block", || async {
        add3_block.exists()
    })
    .await;
    ok(osnadmin("join", &third, &["-c", CH, "-b", &add3_path]).await);
    let out = ok(finish(adding).await);
    assert!(
        out.contains(
            "quorum check: not needed, the new consenter joins as a learner and counts in the quorum only once it has caught up (all consenters reachable)\n"
        ),
        "{out}"
    );
    assert!(
        out.contains(&format!("node {admin3}: consenter, active\n")),
        "{out}"
    );
    wait_active(&nodes, CH, 3).await;
    third.kill9();
    wait_for("the leader to count orderer3 down", || async {
        cluster_view(&nodes).await == (Some(3.0), Some(2.0), Some(0.0))
    })
    .await;
    let with_three = last_config_number(node(0)).await;

    // Rotating the live orderer2's certificate now would leave one of three: refused by ordo,
    // and with --skip-quorum-check by the orderer.
    let day = 24 * 3600;
    let (new2, key2) = mint_orderer_tls(2, -3600, 30 * day);
    let new2_file = dir.path().join("orderer2-new.crt");
    std::fs::write(&new2_file, &new2).unwrap();
    let new2_path = new2_file.display().to_string();
    let rotate2 = [
        "--consenter",
        c2.as_str(),
        "--client-tls-cert",
        &new2_path,
        "--server-tls-cert",
        &new2_path,
    ];
    let out = fails(
        update("rotate-cert", &rotate2).await,
        &format!(
            "1 out of 3 nodes would be alive after this change, configuration will result in quorum loss (a quorum is 2; unreachable: {c3})"
        ),
    );
    assert!(!out.contains("submitted"), "{out}");
    let mut skip = rotate2.to_vec();
    skip.push("--skip-quorum-check");
    let out = fails(
        update("rotate-cert", &skip).await,
        "the orderer refused the config update: BAD_REQUEST: error applying config update to existing channel 'cli-channel': consensus metadata update for channel config update is invalid: 1 out of 3 nodes are alive, configuration will result in quorum loss",
    );
    assert!(out.contains("quorum check skipped\n"), "{out}");
    assert_eq!(last_config_number(node(0)).await, with_three);

    // Rotating the certificate of the node that is down is fine: the others hold a quorum.
    let (new3, _) = mint_orderer_tls(3, -3600, 30 * day);
    let new3_file = dir.path().join("orderer3-new.crt");
    std::fs::write(&new3_file, &new3).unwrap();
    let new3_path = new3_file.display().to_string();
    let out = ok(update(
        "rotate-cert",
        &[
            "--consenter",
            &c3,
            "--client-tls-cert",
            &new3_path,
            "--server-tls-cert",
            &new3_path,
        ],
    )
    .await);
    assert!(
        out.contains(&format!(
            "quorum check: 2 of 3 consenters alive after the change, quorum 2 (unreachable: {c3})\n"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "applied: consenters {c1} (ID 1), {c2} (ID 2), {c3} (ID 3); next ID 4\n"
        )),
        "{out}"
    );
    let cfg =
        ordo_orderer::channel::config_of_block(&last_config_block(node(0), CH).await).unwrap();
    assert!(
        ordo_orderer::channel::consenter_certs(&cfg)
            .contains(&Bytes::from(new3.clone().into_bytes()))
    );

    // The down node is removed, through orderer2, which requires a client certificate (Deliver
    // requests then carry its hash): refused without one.
    let remove3 = update_args(2, "remove-consenter", &["--consenter", &c3]);
    let remove3: Vec<&str> = remove3.iter().map(String::as_str).collect();
    fails(
        ordo(&remove3).await,
        "(does the orderer require a TLS client certificate?)",
    );
    let mut with_cert = remove3.clone();
    with_cert.extend(["--tls-client-cert", &cc, "--tls-client-key", &ck]);
    let out = ok(ordo(&with_cert).await);
    assert!(
        out.contains("quorum check: 2 of 2 consenters alive after the change, quorum 2"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "applied: consenters {c1} (ID 1), {c2} (ID 2); next ID 4\n"
        )),
        "{out}"
    );
    wait_active(&nodes, CH, 2).await;

    // orderer2's certificate rotated while it runs; it reloads the new files and takes part
    // again (never restarted).
    let out = ok(update("rotate-cert", &rotate2).await);
    assert!(
        out.contains("quorum check: not needed for 2 consenters"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "update: rotate the TLS certificates of consenter {c2}\n"
        )),
        "{out}"
    );
    install_tls(&dir.path().join("orderer2/tls"), &new2, &key2);
    let month = (30 * day) as f64;
    wait_for("orderer2 to reload its certificate", || async {
        tls_expiry(node(1), "general_tls")
            .await
            .is_some_and(|s| s > 0.0 && s <= month)
    })
    .await;
    // An envelope ordered now needs both consenters (a quorum of two): orderer2 is back.
    let user1 = signer(USER1, "Org1MSP");
    let mut client = node(0).grpc().await;
    let before = height_of(node(0), CH).await;
    let (status, info) = broadcast_when_led(&mut client, tx(&user1, CH, 1)).await;
    assert_eq!(status, Status::Success as i32, "{info}");
    wait_for("the envelope to be ordered", || async {
        height_of(node(0), CH).await > before
    })
    .await;
    let h = height_of(node(0), CH).await;
    wait_for("orderer2 to hold the new block", || async {
        height_of(node(1), CH).await >= h
    })
    .await;

    // orderer2 removed: it follows the channel; the command waits for its admin API to say so.
    let out = ok(update(
        "remove-consenter",
        &[
            "--consenter",
            &c2,
            "--wait-node-admin",
            &admin2,
            "--admin-ca-file",
            &ca,
            "--admin-client-cert",
            &cc,
            "--admin-client-key",
            &ck,
        ],
    )
    .await);
    assert!(
        out.contains(&format!("applied: consenters {c1} (ID 1); next ID 4\n")),
        "{out}"
    );
    assert!(out.contains(&format!("node {admin2}: follower, ")), "{out}");
    assert_eq!(relation(node(1), CH).await.0, "follower");

    // Both leave the channel.
    for i in [1, 0] {
        let out = ok(osnadmin("remove", node(i), &["-c", CH]).await);
        assert_eq!(out, "Status: 204\n");
        wait_for("the channel to be gone", || async {
            channel_info(node(i), CH).await.is_none()
        })
        .await;
    }
    let list = ok(osnadmin("list", node(0), &["--no-status"]).await);
    assert!(list.contains("\"channels\": null"), "{list}");
    let gone = fails(
        osnadmin("remove", node(0), &["-c", CH]).await,
        "the orderer answered HTTP 404",
    );
    assert!(gone.starts_with("Status: 404\n"), "{gone}");
    nodes.clear();
}
