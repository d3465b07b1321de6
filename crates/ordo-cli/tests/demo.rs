//! `ordo demo`, the first command of the README, as a newcomer runs it: it must end by itself
//! (exit 0) every time — with its defaults, run again and again, and beside another demo on the
//! same machine (its nodes listen on ports the kernel gives them, so two runs never race for a
//! port) — with linked blocks that every orderer holds, its client having re-sent whatever the
//! growing cluster refused.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

/// One demo at a time in this binary (each runs up to five nodes): the bounds below are for a
/// demo (or the pair of concurrent ones) alone on a 2-core machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `ordo demo <args>` and returns its output, failing the test (with the output so far)
/// unless it exits 0 within `limit`.
async fn demo(args: &[&str], limit: Duration) -> String {
    let started = Instant::now();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ordo"))
        .arg("demo")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let read_all = |mut pipe: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
        tokio::spawn(async move {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text).await;
            text
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    let status = tokio::time::timeout(limit, child.wait()).await;
    if status.is_err() {
        let _ = child.kill().await;
    }
    let (stdout, stderr) = (stdout.await.unwrap(), stderr.await.unwrap());
    let took = started.elapsed();
    let status = status
        .unwrap_or_else(|_| {
            panic!("ordo demo {args:?} did not end within {limit:?}:\n{stdout}\n{stderr}")
        })
        .unwrap();
    assert!(
        status.success(),
        "ordo demo {args:?} failed after {took:?}:\n{stdout}\n{stderr}"
    );
    // For the record of how long a demo takes on this machine (`--nocapture` shows it).
    eprintln!("ordo demo {args:?}: exit 0 in {:.1} s", took.as_secs_f64());
    stdout
}

/// The client's summary: envelopes sent, acknowledged, re-sent, delivered and duplicates.
fn client_summary(text: &str) -> [u64; 5] {
    let line = text
        .lines()
        .find(|l| l.starts_with("Client: "))
        .unwrap_or_else(|| panic!("no client summary in:\n{text}"));
    let number_before = |word: &str| -> u64 {
        let at = line
            .find(word)
            .unwrap_or_else(|| panic!("no '{word}' in {line}"));
        line[..at]
            .split(|c: char| !c.is_ascii_digit())
            .rfind(|t| !t.is_empty())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no number before '{word}' in {line}"))
    };
    [
        number_before(" envelopes sent"),
        number_before(" acknowledged"),
        number_before(" re-sent"),
        number_before(" delivered in blocks"),
        number_before(" duplicate(s)"),
    ]
}

/// What every completed demo shows: all its orderers hold the same blocks, and its client's
/// counts add up.
fn assert_completed(text: &str, nodes: u32) {
    assert!(
        text.contains(&format!("All {nodes} orderers hold the same")),
        "{text}"
    );
    let [sent, acknowledged, resent, delivered, duplicates] = client_summary(text);
    assert!(acknowledged <= sent, "{text}");
    assert!(delivered > 0 && delivered <= sent, "{text}");
    // Only a re-sent envelope can be ordered twice.
    assert!(duplicates <= resent, "{text}");
}

/// The README's first command, as it is: five orderers, ten blocks after the last one joined,
/// 20 envelopes a second. Each added orderer runs Raft as a learner until promoted, so the
/// channel orders throughout; the client would ride through refusals all the same (a leader can
/// be lost for other reasons), and the demo ends by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_demo_with_its_defaults_ends_by_itself() {
    let _one = ONE_AT_A_TIME.lock().await;
    let text = demo(&[], Duration::from_secs(240)).await;
    assert_completed(&text, 5);
    for n in 2..=5 {
        assert!(
            text.contains(&format!(
                "orderer{n} is a consenter (Raft ID {n}, promoted to voter) — {n} of 5"
            )),
            "{text}"
        );
    }
}

/// `ordo demo --nodes 3` three times in a row, while another sequence of them runs beside it:
/// every run ends by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demos_run_back_to_back_and_side_by_side() {
    let _one = ONE_AT_A_TIME.lock().await;
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sequence = |runs: Arc<std::sync::atomic::AtomicUsize>| async move {
        for _ in 0..3 {
            let text = demo(&["--nodes", "3", "--blocks", "3"], Duration::from_secs(180)).await;
            assert_completed(&text, 3);
            runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    };
    let (a, b) = tokio::join!(
        tokio::spawn(sequence(runs.clone())),
        tokio::spawn(sequence(runs.clone()))
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(runs.load(std::sync::atomic::Ordering::Relaxed), 6);
}

/// What the demo shows on the way: the CA's steps, the seed's topology grown one orderer at a
/// time, the final status and linked blocks; and what it leaves in `--dir`: identities from the
/// CA, and orderer.yaml files naming the ports the nodes listened on, as the channel does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_produces_linked_blocks() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let text = demo(
        &["--blocks", "3", "--rate", "200", "--dir", d],
        Duration::from_secs(240),
    )
    .await;
    // The orderer organization comes from an in-process CA, its steps the demo's first lines.
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.first().is_some_and(
            |l| l.starts_with("CA started: https://127.0.0.1:") && l.contains("(ca, tlsca)")
        ),
        "{text}"
    );
    assert!(
        lines
            .get(1)
            .is_some_and(|l| l.contains("registered osadmin (admin), os1..os5 (orderer)")),
        "{text}"
    );
    assert!(
        lines.get(2).is_some_and(|l| l.starts_with(
            "enrolled osadmin and os1..os5: MSPs from ca, TLS certificates from tlsca"
        )),
        "{text}"
    );
    assert!(
        lines
            .get(3)
            .is_some_and(|l| l.starts_with("organization MSP built from the CA (NodeOUs)")),
        "{text}"
    );
    // What the nodes run on is what the CA enrolled: os1's certificate is OU=orderer, CN=os1.
    let os1 = std::fs::read(
        dir.path()
            .join("crypto/ordererOrganizations/example.com/orderers/os1/msp/signcerts/cert.pem"),
    )
    .unwrap();
    let der = ordo_crypto::x509::first_pem_der(&os1).unwrap();
    let subject = ordo_crypto::x509::parse_certificate(&der)
        .unwrap()
        .subject()
        .to_string();
    assert!(
        subject.contains("OU=orderer") && subject.contains("CN=os1"),
        "{subject}"
    );
    assert!(text.contains("Raft leader elected"), "{text}");
    // The seed's topology: five orderers over three regions (2/1/2), added one at a time.
    for (n, region) in [
        (2, "us-east"),
        (3, "eu-central"),
        (4, "ap-south"),
        (5, "ap-south"),
    ] {
        assert!(
            text.contains(&format!("Adding orderer{n} [{region}]")),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "orderer{n} is a consenter (Raft ID {n}, promoted to voter) — {n} of 5"
            )),
            "{text}"
        );
    }
    // The status lines at the end: one leader, the others consenters that know it.
    let status: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("orderer"))
        .rev()
        .take(5)
        .collect();
    assert_eq!(
        status.iter().filter(|l| l.contains("LEADER")).count(),
        1,
        "{text}"
    );
    assert_eq!(
        status.iter().filter(|l| l.contains("consenter")).count(),
        4,
        "{text}"
    );
    assert_completed(&text, 5);
    for n in 1..=3 {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("block {n:>4}")))
            .unwrap_or_else(|| panic!("no block {n} in:\n{text}"));
        assert!(line.ends_with("linked ✓"), "{line}");
    }
    // Each orderer.yaml names the port its node got, which the channel names too: orderer1's
    // is the only consenter's in the genesis block, and each one's is in its start line.
    for n in 1..=5 {
        let yaml = std::fs::read_to_string(Path::new(d).join(format!("orderer{n}.yaml"))).unwrap();
        let port = yaml
            .lines()
            .find_map(|l| l.strip_prefix("    ListenPort: "))
            .unwrap_or_else(|| panic!("no ListenPort in {yaml}"));
        assert_ne!(port, "0", "{yaml}");
        assert!(
            text.contains(&format!(
                "orderer{n} [{}] started: gRPC 127.0.0.1:{port} ",
                ["us-east", "us-east", "eu-central", "ap-south", "ap-south"][n - 1]
            )),
            "orderer{n} on {port}:\n{text}"
        );
    }
    let configtx = std::fs::read_to_string(Path::new(d).join("configtx.yaml")).unwrap();
    let orderer1 = std::fs::read_to_string(Path::new(d).join("orderer1.yaml")).unwrap();
    let port1 = orderer1
        .lines()
        .find_map(|l| l.strip_prefix("    ListenPort: "))
        .unwrap();
    assert!(
        configtx.contains(&format!("{{Host: 127.0.0.1, Port: {port1}, ")),
        "{configtx}"
    );
}
