//! Crash safety of joins and removals: what a restart does with the markers a crash left in
//! `pendingops/`, and that removal leaves nothing of the channel behind.

use std::path::Path;
use std::sync::Arc;

use ordo_orderer::channel::NodeServices;
use ordo_orderer::metrics::Metrics;
use ordo_orderer::msgprocessor::FilterSettings;
use ordo_orderer::registrar::{Dirs, Registrar};
use ordo_testkit::{fixture, read};

const ORDERER1: &str =
    "crypto-config/ordererOrganizations/example.com/orderers/orderer1.example.com";

fn dirs(root: &Path) -> Dirs {
    Dirs {
        ledger: root.join("ledger"),
        wal: root.join("wal"),
        snap: root.join("snap"),
    }
}

fn open(root: &Path) -> Arc<Registrar> {
    let signer =
        ordo_msp::local::load_signing_identity(&fixture(&format!("{ORDERER1}/msp")), "OrdererMSP")
            .unwrap()
            .signer;
    let services = NodeServices {
        signer: Arc::new(signer),
        filters: FilterSettings::default(),
        metrics: Metrics::new("test").unwrap(),
        on_config: Arc::new(|| {}),
        comm: None,
        replication: Default::default(),
        switch: None,
        self_key: Default::default(),
        eviction_suspicion: std::time::Duration::from_secs(600),
        fabric_block_cutting: false,
        fabric_membership_changes: false,
        preferred_leaders: Vec::new(),
    };
    let cert = read(&format!("{ORDERER1}/tls/server.crt"));
    Registrar::open(dirs(root), Some(&cert), services).unwrap()
}

#[tokio::test]
async fn a_restart_redoes_an_interrupted_join_from_its_marker() {
    let tmp = tempfile::tempdir().unwrap();
    let d = dirs(tmp.path());
    // The crash came after the marker and a partial ledger were written.
    std::fs::create_dir_all(d.ledger.join("pendingops")).unwrap();
    std::fs::create_dir_all(d.ledger.join("chains/channel-1")).unwrap();
    std::fs::write(d.ledger.join("chains/channel-1/blocks.dat"), b"torn").unwrap();
    std::fs::write(
        d.ledger.join("pendingops/channel-1.join"),
        read("channel-genesis/channel-1.block"),
    )
    .unwrap();
    let reg = open(tmp.path());
    let ch = reg.get("channel-1").expect("the join was completed");
    assert_eq!(ch.ledger().height(), 1);
    assert!(!d.ledger.join("pendingops/channel-1.join").exists());
    reg.stop_all().await;
    // And it is an ordinary channel on the next start.
    let reg = open(tmp.path());
    assert!(reg.get("channel-1").is_some());
    reg.stop_all().await;
}

#[tokio::test]
async fn a_restart_finishes_an_interrupted_removal_and_a_removed_channel_can_be_joined_again() {
    let tmp = tempfile::tempdir().unwrap();
    let d = dirs(tmp.path());
    let block = read("channel-genesis/channel-1.block");
    let reg = open(tmp.path());
    let parsed = <ordo_proto::common::Block as prost::Message>::decode(block.as_slice()).unwrap();
    reg.join("channel-1", parsed.clone(), block.clone().into())
        .await
        .unwrap();
    assert!(d.wal.join("channel-1").exists());
    reg.stop_all().await;
    drop(reg);
    // The crash came right after the removal marker was written.
    std::fs::write(d.ledger.join("pendingops/channel-1.remove"), b"").unwrap();
    let reg = open(tmp.path());
    assert!(reg.get("channel-1").is_none());
    for p in [
        d.ledger.join("chains/channel-1"),
        d.wal.join("channel-1"),
        d.snap.join("channel-1"),
        d.ledger.join("pendingops/channel-1.remove"),
    ] {
        assert!(!p.exists(), "{} left behind", p.display());
    }
    // Re-joining works (Fabric's leftover WAL breaks this: hyperledger/fabric#4016).
    let ch = reg.join("channel-1", parsed, block.into()).await.unwrap();
    assert_eq!(ch.ledger().height(), 1);
    reg.remove("channel-1").await.unwrap();
    assert!(!d.wal.join("channel-1").exists());
    reg.stop_all().await;
}

/// A node that is not a consenter follows the channel instead, which needs the cluster
/// transport (TLS): without it the join is refused before anything is written.
#[tokio::test]
async fn a_node_that_is_not_a_consenter_and_cannot_follow_is_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = open(tmp.path());
    // orderer1 is a consenter of channel-1; build a registrar whose certificate is orderer2's.
    let signer =
        ordo_msp::local::load_signing_identity(&fixture(&format!("{ORDERER1}/msp")), "OrdererMSP")
            .unwrap()
            .signer;
    let services = NodeServices {
        signer: Arc::new(signer),
        filters: FilterSettings::default(),
        metrics: Metrics::new("test").unwrap(),
        on_config: Arc::new(|| {}),
        comm: None,
        replication: Default::default(),
        switch: None,
        self_key: Default::default(),
        eviction_suspicion: std::time::Duration::from_secs(600),
        fabric_block_cutting: false,
        fabric_membership_changes: false,
        preferred_leaders: Vec::new(),
    };
    let other = tempfile::tempdir().unwrap();
    let cert2 = read(
        "crypto-config/ordererOrganizations/example.com/orderers/orderer2.example.com/tls/server.crt",
    );
    let reg2 = Registrar::open(dirs(other.path()), Some(&cert2), services).unwrap();
    let block = read("channel-genesis/channel-1.block");
    let parsed = <ordo_proto::common::Block as prost::Message>::decode(block.as_slice()).unwrap();
    let err = reg2
        .join("channel-1", parsed, block.into())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("needs TLS and the cluster transport"),
        "{err}"
    );
    assert!(!other.path().join("ledger/chains/channel-1").exists());
    assert!(
        !other
            .path()
            .join("ledger/pendingops/channel-1.join")
            .exists()
    );
    reg.stop_all().await;
}

/// A Raft message that makes raft-rs panic — a heartbeat telling a fresh node to commit far past
/// the end of its log, what a leader sends a node it believes further along — halts the channel,
/// which then reports why, instead of killing its task unseen (the channel stayed "active").
#[tokio::test]
async fn a_raft_message_that_panics_raft_rs_halts_the_channel_visibly() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = open(tmp.path());
    let block = read("channel-genesis/channel-3.block");
    let parsed = <ordo_proto::common::Block as prost::Message>::decode(block.as_slice()).unwrap();
    let ch = reg.join("channel-3", parsed, block.into()).await.unwrap();
    assert_eq!(ch.raft_id(), Some(1));
    let mut msg = raft::eraftpb::Message::default();
    msg.set_msg_type(raft::eraftpb::MessageType::MsgHeartbeat);
    msg.from = 2;
    msg.to = 1;
    msg.term = 5;
    msg.commit = 100;
    ch.step(ordo_orderer::channel::Inbound {
        msg,
        active_nodes: None,
    })
    .unwrap();
    let mut state = ch.watch_state();
    let halted = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        state.wait_for(|s| s.halted.is_some()),
    )
    .await
    .expect("the channel never reported the failure")
    .unwrap()
    .halted
    .clone()
    .unwrap();
    assert!(halted.contains("raft core panicked"), "{halted}");
    assert!(halted.contains("out of range"), "{halted}");
    reg.stop_all().await;
}
