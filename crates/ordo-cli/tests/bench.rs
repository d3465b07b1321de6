//! `ordo bench` as CI runs it: a short smoke run against a real node (not a measurement), checking
//! that every envelope was acknowledged and delivered exactly once, in hash-chained blocks;
//! and `ordo bench calibrate` reporting the machine's signature rates.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smoke_run_orders_every_envelope_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = OrdoProcess::start(&write_config(dir.path(), false));
    // The run needs a leader to be answered SUCCESS; one envelope through first.
    let (mut client, user1) = led_channel_1(&node).await;

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ordo"))
        .args(["bench", "--orderer"])
        .arg(node.addrs.general.to_string())
        .args(["--channel", "channel-1", "--msp-id", "Org1MSP", "--msp-dir"])
        .arg(fixture(USER1))
        .arg("--tls-ca")
        .arg(fixture(&format!("{ORDERER1}/tls/ca.crt")))
        .args(["--envelopes", "3000", "--streams", "4", "--window", "64"])
        .args(["--json", "--check"])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["delivered"], 3000, "{v}");
    assert_eq!(v["statuses"]["SUCCESS"], 3000, "{v}");
    assert_eq!(v["duplicates"], 0, "{v}");
    assert_eq!(v["chain_ok"], true, "{v}");
    assert!(
        v["blocks"].as_u64().unwrap() >= 30,
        "BatchSize is 100 messages: {v}"
    );
    assert!(v["latency_ms"]["p50"].as_f64().unwrap() > 0.0, "{v}");
    assert!(
        v["calibration"]["verify_per_core_per_sec"]
            .as_f64()
            .unwrap()
            > 0.0
    );

    // What the node holds agrees: the bench's envelopes are in its blocks.
    let texts = payload_texts(&deliver_envelopes(&mut client, &user1, "channel-1", 3001).await);
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.starts_with("ordo-bench "))
            .count(),
        3000
    );
}

#[test]
fn calibrate_reports_positive_rates() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ordo"))
        .args(["bench", "calibrate", "--seconds", "0.2", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for k in [
        "verify_per_core_per_sec",
        "sign_per_core_per_sec",
        "ceiling_tx_per_sec",
    ] {
        assert!(v[k].as_f64().unwrap() > 0.0, "{v}");
    }
}

/// `ordo bench local` (docs/performance.md's set-up): it starts its own three-node cluster of
/// `ordo node` processes, and the smoke run's envelopes are all ordered exactly once there, in
/// Fabric's cutting mode too (with every stream sent to the leader, and orderer1 restarted after
/// the run until it serves its newest block again, and /Channel/Writers a signature policy);
/// each node's peak RSS and each process's CPU per envelope by role are reported.
#[test]
fn a_local_cluster_is_set_up_and_measured() {
    for extra in [
        &[][..],
        &[
            "--fabric-cutting",
            "--max-message-count",
            "50",
            "--to-leader",
            "--restart",
            "--one-verify",
        ][..],
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ordo"))
            .args([
                "bench",
                "local",
                "--nodes",
                "3",
                "--envelopes",
                "2000",
                "--check",
            ])
            .args(extra)
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert_eq!(
            stderr.contains("(every Broadcast stream to it)"),
            extra.contains(&"--to-leader"),
            "{stderr}"
        );
        assert!(
            stdout.contains("ordered 2000 of 2000 envelopes"),
            "{stdout}"
        );
        assert!(stdout.contains("duplicates 0; hash chain ok"), "{stdout}");
        let rss = stdout
            .lines()
            .find(|l| l.starts_with("peak RSS: "))
            .unwrap_or_else(|| panic!("{stdout}"));
        assert_eq!(rss.matches(" MiB").count(), 3, "{rss}");
        // The CPU each process spent per ordered envelope, by role: one leader, two
        // followers, the load generator; each took some CPU to order 2,000 envelopes.
        let cpu = stdout
            .lines()
            .find_map(|l| l.strip_prefix("CPU per ordered envelope: "))
            .unwrap_or_else(|| panic!("{stdout}"));
        assert_eq!(cpu.matches("leader (orderer").count(), 1, "{cpu}");
        assert_eq!(cpu.matches("follower (orderer").count(), 2, "{cpu}");
        assert_eq!(cpu.matches("client ").count(), 1, "{cpu}");
        let together: f64 = cpu
            .split("orderers together ")
            .nth(1)
            .and_then(|t| t.strip_suffix(" µs"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{cpu}"));
        assert!(together > 0.0, "{cpu}");
        assert_eq!(
            stderr.contains("/Channel/Writers a signature policy"),
            extra.contains(&"--one-verify"),
            "{stderr}"
        );
        // With --restart: orderer1 comes back and serves the newest block it had (2000
        // envelopes in blocks of 50: at least 40 blocks after the genesis block).
        let restart = stdout.lines().find(|l| l.starts_with("restart: orderer1"));
        assert_eq!(restart.is_some(), extra.contains(&"--restart"), "{stdout}");
        if let Some(line) = restart {
            let block: u64 = line
                .split("served block ")
                .nth(1)
                .and_then(|t| t.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{line}"));
            assert!(block >= 40, "{line}");
        }
    }
}
