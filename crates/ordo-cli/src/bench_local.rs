//! The local clusters `ordo bench local` and `ordo bench compare` measure: the demo's network
//! material (the orderer organization enrolled from an in-process `ordo ca`, the application
//! organization generated), a channel with the benchmark's BatchSize on the ports the nodes
//! listen on, joined on every node through the participation API, and a leader waited for —
//! for `ordo node` processes here, for Fabric's orderer in [`crate::fabric_net`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use ordo_client::ClientTls;

use crate::bench_cmd::TargetArgs;
use crate::demo_net::{DemoNet, OrdererOrg};

/// The benchmark channel's name.
pub const CHANNEL: &str = "bench";

/// A local cluster's node process (killed when dropped).
pub struct LocalNode {
    pub child: std::process::Child,
    pub general: SocketAddr,
    pub admin: SocketAddr,
    pub operations: SocketAddr,
}

impl Drop for LocalNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The benchmark channel's settings.
#[derive(Clone)]
pub struct ChannelSettings {
    pub max_message_count: u32,
    pub batch_timeout: String,
    /// `/Channel/Writers` a signature policy (Org1MSP's admins and clients) instead of Fabric's
    /// sample ImplicitMeta `ANY Writers`: any orderer then checks an envelope's signature once
    /// (Fabric's orderer checks it once or twice under the ImplicitMeta policy, by a per-process
    /// map order), the setting of the comparison against Fabric.
    pub one_verify: bool,
}

/// A cluster whose nodes have joined the benchmark channel and elected a leader.
pub struct Cluster {
    pub nodes: Vec<LocalNode>,
    /// Index of the leader in `nodes`.
    pub leader: usize,
    pub net: DemoNet,
}

impl Cluster {
    /// The benchmark's target: Broadcast to the leader only (`to_leader`) or spread over every
    /// node, Deliver from the first node, as the generated client.
    pub fn target(&self, to_leader: bool) -> TargetArgs {
        let orderers = if to_leader {
            vec![self.nodes[self.leader].general]
        } else {
            self.nodes.iter().map(|n| n.general).collect()
        };
        TargetArgs {
            orderers,
            deliver: Some(self.nodes[0].general),
            channel: Some(CHANNEL.to_string()),
            msp_dir: Some(self.net.client_msp_dir.clone()),
            msp_id: Some(self.net.client_msp_id.clone()),
            tls_ca: Some(self.net.tls_ca_cert.clone()),
            tls_cert: None,
            tls_key: None,
            server_name: "127.0.0.1".into(),
        }
    }

    /// The nodes' processes labelled by role ("leader", "follower"), for CPU accounting.
    pub fn watch(&self) -> Vec<ordo_bench::Watched> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| ordo_bench::Watched {
                label: if i == self.leader {
                    format!("leader (orderer{})", i + 1)
                } else {
                    format!("follower (orderer{})", i + 1)
                },
                pid: n.child.id(),
            })
            .collect()
    }

    /// Each node's peak RSS in MiB (`None` where unknown), orderer1 first.
    pub fn peak_rss(&self) -> Vec<Option<f64>> {
        self.nodes
            .iter()
            .map(|n| peak_rss_mib(n.child.id()))
            .collect()
    }
}

/// Generates the orderer organization (`nodes` orderers) in `dir` from an in-process CA that
/// is stopped once its work is done.
pub async fn orderer_org(dir: &Path, nodes: u32) -> anyhow::Result<OrdererOrg> {
    let ca = crate::demo_net::DemoCa::start(&dir.join("ca")).await?;
    let org = crate::demo_net::enroll_orderer_org(&ca, dir, nodes, |_| {}).await;
    ca.stop().await;
    org
}

/// Starts a fresh cluster of `ordo node` processes for `org` in `dir` (its ledgers in
/// `dir/data`, removed first) and brings the benchmark channel up on it.
pub async fn start_ordo(
    dir: &Path,
    org: &OrdererOrg,
    settings: &ChannelSettings,
    fabric_cutting: bool,
) -> anyhow::Result<Cluster> {
    remove_dir(&dir.join("data"))?;
    // The nodes start first, on ports the kernel chooses; the channel is generated with the
    // ports they got (a port found free beforehand could be taken by then).
    let consensus = if fabric_cutting {
        ", FabricBlockCutting: true"
    } else {
        ""
    };
    let yamls = crate::demo_net::write_orderer_yamls(dir, org, consensus)?;
    let mut nodes = Vec::new();
    for yaml in &yamls {
        nodes.push(start_node(yaml, true)?);
    }
    let ports: Vec<u16> = nodes.iter().map(|n| n.general.port()).collect();
    let (net, genesis) = channel(dir, org, &yamls, &ports, settings)?;
    let leader = join_and_elect(&nodes, &net, &genesis).await?;
    Ok(Cluster { nodes, leader, net })
}

/// Removes `dir` and what it holds, if it is there.
pub fn remove_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Generates the network around `org` for orderers on `ports` (writing each port into its
/// yaml) and the benchmark channel's genesis block with `settings`.
pub fn channel(
    dir: &Path,
    org: &OrdererOrg,
    yamls: &[PathBuf],
    ports: &[u16],
    settings: &ChannelSettings,
) -> anyhow::Result<(DemoNet, Vec<u8>)> {
    let n = u32::try_from(yamls.len()).context("too many orderers")?;
    let net = crate::demo_net::generate(dir, CHANNEL, org, n, yamls, ports)
        .context("generating the local network")?;
    // The channel's BatchSize and BatchTimeout are the benchmark's: rewrite them in the
    // generated configtx.yaml and build the genesis block again.
    let configtx = dir.join("configtx.yaml");
    let text = std::fs::read_to_string(&configtx)?;
    let mut edited = set_value(
        &text,
        "MaxMessageCount: ",
        &settings.max_message_count.to_string(),
    )
    .and_then(|t| set_value(&t, "BatchTimeout: ", &settings.batch_timeout))
    .context("the generated configtx.yaml has no BatchSize/BatchTimeout to set")?;
    if settings.one_verify {
        if !edited.contains(CHANNEL_WRITERS) {
            bail!("the generated configtx.yaml has no channel-level Writers policy to set");
        }
        edited = edited.replacen(CHANNEL_WRITERS, ONE_VERIFY_WRITERS, 1);
    }
    std::fs::write(&configtx, edited)?;
    let genesis = ordo_config::genesis::genesis_block(&configtx, "Demo", CHANNEL)
        .context("building the benchmark channel's genesis block")?;
    Ok((net, prost::Message::encode_to_vec(&genesis)))
}

/// The channel-level Writers policy of the demo's configtx.yaml profile (the only one followed
/// by the channel's Admins and Capabilities at that indentation).
const CHANNEL_WRITERS: &str = "\n            Writers: {Type: ImplicitMeta, Rule: \"ANY Writers\"}\n            Admins: {Type: ImplicitMeta, Rule: \"MAJORITY Admins\"}\n        Capabilities:";
/// The same with Writers a signature policy over the application organization's writers.
const ONE_VERIFY_WRITERS: &str = "\n            Writers: {Type: Signature, Rule: \"OR('Org1MSP.admin', 'Org1MSP.client')\"}\n            Admins: {Type: ImplicitMeta, Rule: \"MAJORITY Admins\"}\n        Capabilities:";

/// Joins every node to the channel through its participation API (as osadmin's TLS client)
/// and waits until one of them reports itself leader in its metrics (Fabric's series name,
/// which Ordo's nodes serve too): a run started before the election would measure
/// SERVICE_UNAVAILABLE answers. Returns the leader's index.
pub async fn join_and_elect(
    nodes: &[LocalNode],
    net: &DemoNet,
    genesis: &[u8],
) -> anyhow::Result<usize> {
    let ca = std::fs::read(&net.tls_ca_cert)?;
    let (cert, key) = (
        std::fs::read(&net.admin_tls_cert)?,
        std::fs::read(&net.admin_tls_key)?,
    );
    for (i, n) in nodes.iter().enumerate() {
        let admin = ordo_client::HttpClient {
            addr: n.admin,
            tls: Some(ClientTls::new(
                std::slice::from_ref(&ca),
                Some((&cert, &key)),
                "127.0.0.1",
                &[b"http/1.1"],
            )?),
        };
        let r = admin.join(genesis).await?;
        if r.status != 201 {
            bail!(
                "orderer{} joining {CHANNEL}: HTTP {}: {}",
                i + 1,
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let series = format!("consensus_etcdraft_is_leader{{channel=\"{CHANNEL}\"}} 1");
    loop {
        for (i, n) in nodes.iter().enumerate() {
            let ops = ordo_client::HttpClient {
                addr: n.operations,
                tls: None,
            };
            if let Ok(r) = ops.get("/metrics").await
                && String::from_utf8_lossy(&r.body).contains(&series)
            {
                return Ok(i);
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("no Raft leader in the local cluster after 30 s");
        }
        // Polling another process's metrics: there is no event to wait on.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts `ordo node start --config yaml` (with `--kernel-ports` if `kernel_ports`) and waits
/// for the line where it reports its listeners.
pub fn start_node(yaml: &Path, kernel_ports: bool) -> anyhow::Result<LocalNode> {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args(["node", "start", "--config"])
        .arg(yaml)
        .args(kernel_ports.then_some("--kernel-ports"))
        .env("FABRIC_LOGGING_SPEC", "error")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting an ordo node")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let line = loop {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(rest) = l.strip_prefix("ordo node started: ") {
                    break rest.to_string();
                }
            }
            _ => bail!("the node for {} exited before it started", yaml.display()),
        }
    };
    // Keep reading so the node never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let addr = |key: &str| -> anyhow::Result<SocketAddr> {
        line.split(' ')
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .context("a listener missing from the start line")?
            .parse()
            .context("a listener address")
    };
    Ok(LocalNode {
        general: addr("general")?,
        admin: addr("admin")?,
        operations: addr("operations")?,
        child,
    })
}

/// Peak resident set size of a process, from /proc (Linux), in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Replaces the value after `key` (up to the end of the line, a comma or a closing brace) with
/// `value`; `None` if `key` is not in `text`.
fn set_value(text: &str, key: &str, value: &str) -> Option<String> {
    let start = text.find(key)? + key.len();
    let len = text[start..]
        .find([',', '}', '\n'])
        .unwrap_or(text.len() - start);
    Some(format!("{}{value}{}", &text[..start], &text[start + len..]))
}
/// Kills orderer1 (-9), starts it again, and times it from the start of the process until a
/// Deliver request on a new connection gets the newest block it had before: the restart figure.
pub async fn restart_first(
    first: &mut LocalNode,
    yaml: &std::path::Path,
    target: &TargetArgs,
) -> anyhow::Result<String> {
    let (channel, signer, tls) = target.client()?;
    let newest = ordo_bench::newest_block(first.general, &tls, &channel, &signer).await?;
    let _ = first.child.kill();
    let _ = first.child.wait();
    // The node binds the port the channel knows it by, as its orderer.yaml now says. Until the
    // node has it again, any outgoing connection on this machine may be given that port: the
    // node then exits at once, and is started again.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (started, node) = loop {
        let started = std::time::Instant::now();
        match start_node(yaml, false) {
            Ok(node) => break (started, node),
            Err(e) if std::time::Instant::now() > deadline => {
                return Err(e.context("restarting orderer1 on its port"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    *first = node;
    let deadline = started + Duration::from_secs(60);
    loop {
        if let Ok(n) = ordo_bench::newest_block(first.general, &tls, &channel, &signer).await
            && n >= newest
        {
            break;
        }
        if std::time::Instant::now() > deadline {
            bail!("orderer1 did not serve block {newest} within 60 s of its restart");
        }
        // Client-side polling while the node opens its channel.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(format!(
        "restart: orderer1 (kill -9, {} blocks) served block {newest} over Deliver {:.3} s after its process started",
        newest + 1,
        started.elapsed().as_secs_f64()
    ))
}
