//! `ordo bench`: drives any Fabric-compatible orderer with signed envelopes and reports ordered
//! throughput and latency; `ordo bench calibrate`: this machine's signature rates (the ceiling);
//! `ordo bench local`: the same against a local cluster of `ordo node` processes it sets up
//! (generated crypto material, a channel with the given BatchSize), reporting each node's peak
//! RSS after the run — the reproducible set-up of docs/performance.md.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ordo_bench::{BenchConfig, BenchResult, Calibration, calibrate, run};
use ordo_client::ClientTls;
use ordo_msp::SigningIdentity;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: Option<BenchCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// This machine's ECDSA P-256 verify and sign rates per core (with Ordo's crypto library),
    /// and the ordering ceiling they imply.
    Calibrate {
        /// Seconds to measure each operation.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Print one JSON line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Sets up a local cluster of `ordo node` processes on 127.0.0.1 (generated crypto material,
    /// TLS on, a channel whose consenters they all are), runs the benchmark against it and
    /// reports each node's peak RSS.
    Local(LocalArgs),
}

#[derive(Args)]
struct LocalArgs {
    /// Orderer processes (all consenters of the channel).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    nodes: u32,
    /// The channel's BatchSize.MaxMessageCount.
    #[arg(long, default_value_t = 500)]
    max_message_count: u32,
    /// The channel's BatchTimeout.
    #[arg(long, default_value = "2s")]
    batch_timeout: String,
    /// Cut blocks exactly as Fabric does (`Consensus.FabricBlockCutting`) instead of adaptively.
    #[arg(long)]
    fabric_cutting: bool,
    /// Keep the network (crypto, configs, ledgers) in this folder instead of a temporary one
    /// (new or empty: the network is generated there).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Open every Broadcast stream to the leader instead of spreading them over all orderers
    /// (no forwarding between orderers; Deliver still reads from orderer1).
    #[arg(long)]
    to_leader: bool,
    /// After the run, kill -9 orderer1, start it again and time how long until it serves its
    /// newest block over Deliver (give a small --max-message-count for a long chain).
    #[arg(long)]
    restart: bool,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    load: LoadArgs,
}

/// Which orderers and channel, as whom.
#[derive(Args, Clone)]
struct TargetArgs {
    /// An orderer's general endpoint (repeat for several; Broadcast streams are spread over them).
    #[arg(long = "orderer")]
    orderers: Vec<SocketAddr>,
    /// The orderer whose Deliver counts the envelopes (default: the first --orderer).
    #[arg(long)]
    deliver: Option<SocketAddr>,
    #[arg(long)]
    channel: Option<String>,
    /// The MSP folder of the identity that signs the envelopes (signcerts, keystore).
    #[arg(long)]
    msp_dir: Option<PathBuf>,
    #[arg(long)]
    msp_id: Option<String>,
    /// The CA of the orderers' TLS certificates (PEM); without it the connections are plain.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Client certificate and key for mutual TLS (PEM).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The name the orderers' TLS certificates must carry.
    #[arg(long, default_value = "127.0.0.1")]
    server_name: String,
}

impl TargetArgs {
    /// The channel, the signing identity and the TLS settings these arguments name.
    fn client(&self) -> anyhow::Result<(String, SigningIdentity, Option<ClientTls>)> {
        let channel = self.channel.clone().context("--channel is required")?;
        let msp_dir = self.msp_dir.as_ref().context("--msp-dir is required")?;
        let msp_id = self.msp_id.as_ref().context("--msp-id is required")?;
        let signer = ordo_msp::local::load_signing_identity(msp_dir, msp_id)
            .with_context(|| format!("loading the identity in {}", msp_dir.display()))?
            .signer;
        let tls = match &self.tls_ca {
            None => None,
            Some(ca) => {
                let ca = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
                let pair = match (&self.tls_cert, &self.tls_key) {
                    (Some(c), Some(k)) => Some((std::fs::read(c)?, std::fs::read(k)?)),
                    _ => None,
                };
                Some(ClientTls::new(
                    &[ca],
                    pair.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
                    &self.server_name,
                    &[b"h2"],
                )?)
            }
        };
        Ok((channel, signer, tls))
    }
}

/// The load itself.
#[derive(Args)]
struct LoadArgs {
    #[arg(long, default_value_t = 10_000)]
    envelopes: u64,
    /// Payload bytes per envelope.
    #[arg(long, default_value_t = 256)]
    payload: usize,
    #[arg(long, default_value_t = 4)]
    streams: usize,
    /// Unanswered envelopes per stream.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Sign each envelope when it is sent instead of before the clock starts.
    #[arg(long)]
    sign_on_the_fly: bool,
    /// Offered load in envelopes per second (open loop); default: saturation (closed loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds to wait for the last blocks once every answer is in.
    #[arg(long, default_value_t = 30.0)]
    drain_timeout: f64,
    /// Print one JSON line instead of the summary (and no progress line).
    #[arg(long)]
    json: bool,
    /// Exit non-zero unless every envelope was acknowledged and delivered exactly once (for
    /// smoke runs).
    #[arg(long)]
    check: bool,
}

pub fn run_cmd(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        Some(BenchCommand::Calibrate { seconds, json }) => {
            let c = calibrate(Duration::from_secs_f64(seconds.max(0.1)))?;
            if json {
                println!("{}", serde_json::to_string(&c)?);
            } else {
                print_calibration(&c);
            }
            Ok(())
        }
        Some(BenchCommand::Local(l)) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(local(l))
        }
        None => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(bench(args.run.target, args.run.load))
        }
    }
}

fn print_calibration(c: &Calibration) {
    println!(
        "ECDSA P-256 per core: {:.0} verify/s, {:.0} sign/s; {} cores: ceiling {:.0} ordered tx/s",
        c.verify_per_core_per_sec, c.sign_per_core_per_sec, c.cores, c.ceiling_tx_per_sec
    );
}

async fn bench(a: TargetArgs, l: LoadArgs) -> anyhow::Result<()> {
    let Some(&first) = a.orderers.first() else {
        bail!("give at least one --orderer");
    };
    let (channel, signer, tls) = a.client()?;
    let cfg = BenchConfig {
        orderers: a.orderers.clone(),
        deliver_from: a.deliver.unwrap_or(first),
        tls,
        channel,
        signer: Arc::new(signer),
        envelopes: l.envelopes,
        payload_size: l.payload,
        streams: l.streams.max(1),
        window: l.window.max(1),
        presign: !l.sign_on_the_fly,
        rate: l.rate,
        drain_timeout: Duration::from_secs_f64(l.drain_timeout.max(0.0)),
        progress: !l.json,
    };
    let a = l;
    if !a.json {
        eprintln!(
            "{} envelopes of {} payload bytes, {} streams × window {}, {}, {}",
            a.envelopes,
            a.payload,
            cfg.streams,
            cfg.window,
            if cfg.presign {
                "pre-signed"
            } else {
                "signed on the fly"
            },
            a.rate
                .map_or("closed loop".to_string(), |r| format!("offered {r} tx/s"))
        );
    }
    let r = run(cfg).await?;
    // The ceiling, measured after the run so that it does not compete with it.
    let c = calibrate(Duration::from_millis(300))?;
    if a.json {
        let mut v = serde_json::to_value(&r)?;
        v["calibration"] = serde_json::to_value(&c)?;
        v["fraction_of_ceiling"] = (r.ordered_per_sec / c.ceiling_tx_per_sec).into();
        println!("{v}");
    } else {
        print_summary(&r, &c);
    }
    if a.check && !r.all_ordered_once() {
        bail!("not every envelope was acknowledged and delivered exactly once");
    }
    Ok(())
}

/// A local cluster's node process.
struct LocalNode {
    child: std::process::Child,
    general: SocketAddr,
    admin: SocketAddr,
    operations: SocketAddr,
}

impl Drop for LocalNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `ordo node start --config yaml` (with `--kernel-ports` if `kernel_ports`) and waits
/// for the line where it reports its listeners.
fn start_node(yaml: &std::path::Path, kernel_ports: bool) -> anyhow::Result<LocalNode> {
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
fn peak_rss_mib(pid: u32) -> Option<f64> {
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

async fn local(l: LocalArgs) -> anyhow::Result<()> {
    // Held to the end: a temporary folder is deleted when it drops.
    let (dir, _tmp) = crate::demo_net::work_dir(l.dir.as_deref())?;
    let channel = "bench";
    // The demo's network: the orderer organization enrolled from an in-process CA (stopped
    // once its work is done), the application organization generated.
    let ca = crate::demo_net::DemoCa::start(&dir.join("ca")).await?;
    let org = crate::demo_net::enroll_orderer_org(&ca, &dir, l.nodes, |_| {}).await;
    ca.stop().await;
    let org = org?;
    // The nodes start first, on ports the kernel chooses; the channel is generated with the
    // ports they got (a port found free beforehand could be taken by then).
    let consensus = if l.fabric_cutting {
        ", FabricBlockCutting: true"
    } else {
        ""
    };
    let yamls = crate::demo_net::write_orderer_yamls(&dir, &org, consensus)?;
    let mut nodes = Vec::new();
    for yaml in &yamls {
        nodes.push(start_node(yaml, true)?);
    }
    let ports: Vec<u16> = nodes.iter().map(|n| n.general.port()).collect();
    let net = crate::demo_net::generate(&dir, channel, &org, l.nodes, &yamls, &ports)
        .context("generating the local network")?;
    // The channel's BatchSize and BatchTimeout are the benchmark's: rewrite them in the
    // generated configtx.yaml and build the genesis block again.
    let configtx = dir.join("configtx.yaml");
    let text = std::fs::read_to_string(&configtx)?;
    let edited = set_value(&text, "MaxMessageCount: ", &l.max_message_count.to_string())
        .and_then(|t| set_value(&t, "BatchTimeout: ", &l.batch_timeout))
        .context("the generated configtx.yaml has no BatchSize/BatchTimeout to set")?;
    std::fs::write(&configtx, edited)?;
    let genesis = ordo_config::genesis::genesis_block(&configtx, "Demo", channel)
        .context("building the benchmark channel's genesis block")?;
    let ca = std::fs::read(&net.tls_ca_cert)?;
    let (cert, key) = (
        std::fs::read(&net.admin_tls_cert)?,
        std::fs::read(&net.admin_tls_key)?,
    );
    let block = prost::Message::encode_to_vec(&genesis);
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
        let r = admin.join(&block).await?;
        if r.status != 201 {
            bail!(
                "orderer{} joining {channel}: HTTP {}: {}",
                i + 1,
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        }
    }
    // A run started before the election would measure SERVICE_UNAVAILABLE answers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let series = format!("consensus_etcdraft_is_leader{{channel=\"{channel}\"}} 1");
    let leader = 'elected: loop {
        for (i, n) in nodes.iter().enumerate() {
            let ops = ordo_client::HttpClient {
                addr: n.operations,
                tls: None,
            };
            if let Ok(r) = ops.get("/metrics").await
                && String::from_utf8_lossy(&r.body).contains(&series)
            {
                break 'elected i;
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("no Raft leader in the local cluster after 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "{} orderers on 127.0.0.1 (TLS), channel '{channel}': MaxMessageCount {}, BatchTimeout {}, {} cutting; leader orderer{}{}; data in {}",
        l.nodes,
        l.max_message_count,
        l.batch_timeout,
        if l.fabric_cutting {
            "Fabric's"
        } else {
            "adaptive"
        },
        leader + 1,
        if l.to_leader {
            " (every Broadcast stream to it)"
        } else {
            ""
        },
        dir.display()
    );
    let orderers = if l.to_leader {
        vec![nodes[leader].general]
    } else {
        nodes.iter().map(|n| n.general).collect()
    };
    let target = TargetArgs {
        orderers,
        deliver: Some(nodes[0].general),
        channel: Some(channel.to_string()),
        msp_dir: Some(net.client_msp_dir.clone()),
        msp_id: Some(net.client_msp_id.clone()),
        tls_ca: Some(net.tls_ca_cert.clone()),
        tls_cert: None,
        tls_key: None,
        server_name: "127.0.0.1".into(),
    };
    let json = l.load.json;
    let restart_target = l.restart.then(|| target.clone());
    let outcome = bench(target, l.load).await;
    let rss: Vec<String> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            peak_rss_mib(n.child.id()).map_or(format!("orderer{} ?", i + 1), |m| {
                format!("orderer{} {m:.1} MiB", i + 1)
            })
        })
        .collect();
    if json {
        eprintln!("peak RSS: {}", rss.join(", "));
    } else {
        println!("peak RSS: {}", rss.join(", "));
    }
    if let Some(target) = restart_target.filter(|_| outcome.is_ok()) {
        let first = nodes.first_mut().context("no node")?;
        let line = restart_first(first, &net.orderer_yamls[0], &target).await?;
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    drop(nodes);
    outcome
}

/// Kills orderer1 (-9), starts it again, and times it from the start of the process until a
/// Deliver request on a new connection gets the newest block it had before: the restart figure.
async fn restart_first(
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

/// Replaces the value after `key` (up to the end of the line, a comma or a closing brace) with
/// `value`; `None` if `key` is not in `text`.
fn set_value(text: &str, key: &str, value: &str) -> Option<String> {
    let start = text.find(key)? + key.len();
    let len = text[start..]
        .find([',', '}', '\n'])
        .unwrap_or(text.len() - start);
    Some(format!("{}{value}{}", &text[..start], &text[start + len..]))
}

fn print_summary(r: &BenchResult, c: &Calibration) {
    println!(
        "ordered {} of {} envelopes in {:.2} s: {:.0} tx/s end to end ({:.0}% of the {:.0} tx/s verify ceiling)",
        r.delivered,
        r.envelopes,
        r.seconds,
        r.ordered_per_sec,
        100.0 * r.ordered_per_sec / c.ceiling_tx_per_sec,
        c.ceiling_tx_per_sec
    );
    println!(
        "latency send → delivered: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        r.latency_ms.p50, r.latency_ms.p90, r.latency_ms.p99, r.latency_ms.max
    );
    let statuses: Vec<String> = r.statuses.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!(
        "answers: {} (unanswered {}); {} blocks, {:.1} tx/block; duplicates {}; hash chain {}",
        statuses.join(", "),
        r.unanswered,
        r.blocks,
        r.txs_per_block,
        r.duplicates,
        if r.chain_ok { "ok" } else { "BROKEN" }
    );
    print_calibration(c);
}
