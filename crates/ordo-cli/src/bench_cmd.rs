//! `ordo bench`: drives any Fabric-compatible orderer with signed envelopes and reports ordered
//! throughput and latency; `ordo bench calibrate`: this machine's signature rates (the ceiling);
//! `ordo bench local`: the same against a local cluster of `ordo node` processes it sets up
//! (generated crypto material, a channel with the given BatchSize), reporting each node's peak
//! RSS after the run — the reproducible set-up of docs/performance.md; `ordo bench compare`:
//! local clusters of Fabric's orderer and of Ordo's side by side, in alternation. Every run
//! reports the CPU each watched process spent per ordered envelope.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ordo_bench::{BenchConfig, BenchResult, Calibration, Watched, calibrate, run};
use ordo_client::ClientTls;
use ordo_msp::SigningIdentity;

use crate::bench_local::{self, ChannelSettings};

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
    /// Fabric's orderer and Ordo side by side: a local cluster of each on the same generated
    /// material and channel settings, the same load against each in alternation (fresh
    /// clusters every run, every Broadcast stream to the leader, /Channel/Writers a signature
    /// policy), and the medians with their ratios: throughput, latency, CPU per envelope per
    /// process, peak RSS.
    Compare(crate::bench_compare::CompareArgs),
}

/// A local cluster's size and its channel's batch settings (`bench local`, `bench compare`).
#[derive(Args)]
pub struct ClusterArgs {
    /// Orderer processes (all consenters of the channel).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub nodes: u32,
    /// The channel's BatchSize.MaxMessageCount.
    #[arg(long, default_value_t = 500)]
    pub max_message_count: u32,
    /// The channel's BatchTimeout.
    #[arg(long, default_value = "2s")]
    pub batch_timeout: String,
}

impl ClusterArgs {
    pub fn settings(&self, one_verify: bool) -> ChannelSettings {
        ChannelSettings {
            max_message_count: self.max_message_count,
            batch_timeout: self.batch_timeout.clone(),
            one_verify,
        }
    }
}

#[derive(Args)]
struct LocalArgs {
    #[command(flatten)]
    cluster: ClusterArgs,
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
    /// Make the channel's /Channel/Writers a signature policy (Org1MSP admins and clients), so
    /// that an orderer checks each envelope's signature once (the comparison's setting).
    #[arg(long)]
    one_verify: bool,
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
pub struct TargetArgs {
    /// An orderer's general endpoint (repeat for several; Broadcast streams are spread over them).
    #[arg(long = "orderer")]
    pub orderers: Vec<SocketAddr>,
    /// The orderer whose Deliver counts the envelopes (default: the first --orderer).
    #[arg(long)]
    pub deliver: Option<SocketAddr>,
    #[arg(long)]
    pub channel: Option<String>,
    /// The MSP folder of the identity that signs the envelopes (signcerts, keystore).
    #[arg(long)]
    pub msp_dir: Option<PathBuf>,
    #[arg(long)]
    pub msp_id: Option<String>,
    /// The CA of the orderers' TLS certificates (PEM); without it the connections are plain.
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate and key for mutual TLS (PEM).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The name the orderers' TLS certificates must carry.
    #[arg(long, default_value = "127.0.0.1")]
    pub server_name: String,
}

impl TargetArgs {
    /// The channel, the signing identity and the TLS settings these arguments name.
    pub fn client(&self) -> anyhow::Result<(String, SigningIdentity, Option<ClientTls>)> {
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
#[derive(Args, Clone)]
pub struct LoadArgs {
    #[arg(long, default_value_t = 10_000)]
    pub envelopes: u64,
    /// Payload bytes per envelope.
    #[arg(long, default_value_t = 256)]
    pub payload: usize,
    #[arg(long, default_value_t = 4)]
    pub streams: usize,
    /// Unanswered envelopes per stream.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Sign each envelope when it is sent instead of before the clock starts.
    #[arg(long)]
    pub sign_on_the_fly: bool,
    /// Offered load in envelopes per second (open loop); default: saturation (closed loop).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds to wait for the last blocks once every answer is in.
    #[arg(long, default_value_t = 30.0)]
    pub drain_timeout: f64,
    /// Print one JSON line instead of the summary (and no progress line).
    #[arg(long)]
    pub json: bool,
    /// Exit non-zero unless every envelope was acknowledged and delivered exactly once (for
    /// smoke runs).
    #[arg(long)]
    pub check: bool,
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
        Some(BenchCommand::Local(l)) => runtime()?.block_on(local(l)),
        Some(BenchCommand::Compare(c)) => runtime()?.block_on(crate::bench_compare::compare(c)),
        None => runtime()?.block_on(bench(args.run.target, args.run.load, Vec::new())),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn print_calibration(c: &Calibration) {
    println!(
        "ECDSA P-256 per core: {:.0} verify/s, {:.0} sign/s; {} cores: ceiling {:.0} ordered tx/s",
        c.verify_per_core_per_sec, c.sign_per_core_per_sec, c.cores, c.ceiling_tx_per_sec
    );
}

/// One run against `a` with the load `l`, measuring the CPU of `watch` besides the client's.
pub async fn measure(
    a: &TargetArgs,
    l: &LoadArgs,
    watch: Vec<Watched>,
) -> anyhow::Result<BenchResult> {
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
        watch,
    };
    if !l.json {
        eprintln!(
            "{} envelopes of {} payload bytes, {} streams × window {}, {}, {}",
            l.envelopes,
            l.payload,
            cfg.streams,
            cfg.window,
            if cfg.presign {
                "pre-signed"
            } else {
                "signed on the fly"
            },
            l.rate
                .map_or("closed loop".to_string(), |r| format!("offered {r} tx/s"))
        );
    }
    Ok(run(cfg).await?)
}

async fn bench(a: TargetArgs, l: LoadArgs, watch: Vec<Watched>) -> anyhow::Result<()> {
    let r = measure(&a, &l, watch).await?;
    // The ceiling, measured after the run so that it does not compete with it.
    let c = calibrate(Duration::from_millis(300))?;
    if l.json {
        let mut v = serde_json::to_value(&r)?;
        v["calibration"] = serde_json::to_value(&c)?;
        v["fraction_of_ceiling"] = (r.ordered_per_sec / c.ceiling_tx_per_sec).into();
        println!("{v}");
    } else {
        print_summary(&r, &c);
    }
    if l.check && !r.all_ordered_once() {
        bail!("not every envelope was acknowledged and delivered exactly once");
    }
    Ok(())
}

async fn local(l: LocalArgs) -> anyhow::Result<()> {
    // Held to the end: a temporary folder is deleted when it drops.
    let (dir, _tmp) = crate::demo_net::work_dir(l.dir.as_deref())?;
    let org = bench_local::orderer_org(&dir, l.cluster.nodes).await?;
    let settings = l.cluster.settings(l.one_verify);
    let mut cluster = bench_local::start_ordo(&dir, &org, &settings, l.fabric_cutting).await?;
    eprintln!(
        "{} orderers on 127.0.0.1 (TLS), channel '{}': MaxMessageCount {}, BatchTimeout {}, {} cutting{}; leader orderer{}{}; data in {}",
        l.cluster.nodes,
        bench_local::CHANNEL,
        l.cluster.max_message_count,
        l.cluster.batch_timeout,
        if l.fabric_cutting {
            "Fabric's"
        } else {
            "adaptive"
        },
        if l.one_verify {
            ", /Channel/Writers a signature policy"
        } else {
            ""
        },
        cluster.leader + 1,
        if l.to_leader {
            " (every Broadcast stream to it)"
        } else {
            ""
        },
        dir.display()
    );
    let target = cluster.target(l.to_leader);
    let json = l.load.json;
    let restart_target = l.restart.then(|| target.clone());
    let outcome = bench(target, l.load, cluster.watch()).await;
    let rss: Vec<String> = cluster
        .peak_rss()
        .iter()
        .enumerate()
        .map(|(i, m)| {
            m.map_or(format!("orderer{} ?", i + 1), |m| {
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
        let yaml = cluster.net.orderer_yamls[0].clone();
        let first = cluster.nodes.first_mut().context("no node")?;
        let line = bench_local::restart_first(first, &yaml, &target).await?;
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    drop(cluster);
    outcome
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
    if let Some(line) = cpu_line(r) {
        println!("{line}");
    }
    print_calibration(c);
}

/// "CPU per ordered envelope: leader (orderer2) 41 µs, …; orderers 104 µs" — `None` when
/// nothing was measured (no /proc).
pub fn cpu_line(r: &BenchResult) -> Option<String> {
    if r.cpu.is_empty() {
        return None;
    }
    let each: Vec<String> = r
        .cpu
        .iter()
        .map(|c| format!("{} {:.0} µs", c.label, c.us_per_envelope))
        .collect();
    let orderers: f64 = r
        .cpu
        .iter()
        .filter(|c| c.label != "client")
        .map(|c| c.us_per_envelope)
        .sum();
    Some(format!(
        "CPU per ordered envelope: {}{}",
        each.join(", "),
        if r.cpu.len() > 1 {
            format!("; orderers together {orderers:.0} µs")
        } else {
            String::new()
        }
    ))
}
