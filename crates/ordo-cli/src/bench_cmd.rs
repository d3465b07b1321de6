//! `ordo bench`: drives any Fabric-compatible orderer with signed envelopes and reports ordered
//! throughput and latency; `ordo bench calibrate`: this machine's signature rates (the ceiling).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use ordo_bench::{BenchConfig, BenchResult, Calibration, calibrate, run};
use ordo_orderer::client::ClientTls;

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
}

#[derive(Args)]
struct RunArgs {
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
        None => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            rt.block_on(bench(args.run))
        }
    }
}

fn print_calibration(c: &Calibration) {
    println!(
        "ECDSA P-256 per core: {:.0} verify/s, {:.0} sign/s; {} cores: ceiling {:.0} ordered tx/s",
        c.verify_per_core_per_sec, c.sign_per_core_per_sec, c.cores, c.ceiling_tx_per_sec
    );
}

async fn bench(a: RunArgs) -> anyhow::Result<()> {
    let Some(&first) = a.orderers.first() else {
        bail!("give at least one --orderer");
    };
    let channel = a.channel.context("--channel is required")?;
    let msp_dir = a.msp_dir.context("--msp-dir is required")?;
    let msp_id = a.msp_id.context("--msp-id is required")?;
    let signer = ordo_msp::local::load_signing_identity(&msp_dir, &msp_id)
        .with_context(|| format!("loading the identity in {}", msp_dir.display()))?
        .signer;
    let tls = match &a.tls_ca {
        None => None,
        Some(ca) => {
            let ca = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            let pair = match (&a.tls_cert, &a.tls_key) {
                (Some(c), Some(k)) => Some((std::fs::read(c)?, std::fs::read(k)?)),
                _ => None,
            };
            Some(ClientTls::new(
                &[ca],
                pair.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
                &a.server_name,
                &[b"h2"],
            )?)
        }
    };
    let cfg = BenchConfig {
        orderers: a.orderers.clone(),
        deliver_from: a.deliver.unwrap_or(first),
        tls,
        channel,
        signer: Arc::new(signer),
        envelopes: a.envelopes,
        payload_size: a.payload,
        streams: a.streams.max(1),
        window: a.window.max(1),
        presign: !a.sign_on_the_fly,
        rate: a.rate,
        drain_timeout: Duration::from_secs_f64(a.drain_timeout.max(0.0)),
        progress: !a.json,
    };
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
