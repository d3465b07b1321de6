//! `ordo bench compare`: Fabric's orderer and Ordo measured side by side on this machine, the
//! way docs/performance.md compares them — one generated network (the orderer organization's
//! identities and TLS certificates), a fresh cluster of each for every run with the same
//! channel settings, the same closed-loop load with every Broadcast stream to the leader, the
//! two systems alternated (their order swapped every round, so that a drift of the machine's
//! speed does not favour one), and the medians with Ordo/Fabric ratios. It measures, never
//! judges: `--check` only asks that every envelope was ordered exactly once in every run.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use ordo_bench::BenchResult;
use serde::Serialize;

use crate::bench_cmd::{ClusterArgs, LoadArgs, cpu_line, measure};
use crate::bench_local::{self, Cluster};

#[derive(Args)]
pub struct CompareArgs {
    /// Fabric's orderer binary (v2.4 or v2.5), e.g. Fabric's release `bin/orderer`.
    #[arg(long)]
    fabric_orderer: PathBuf,
    /// Rounds; each runs both systems once, on fresh clusters.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    rounds: u32,
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Keep the network and every run's ledgers and logs in this folder (new or empty)
    /// instead of a temporary one.
    #[arg(long)]
    dir: Option<PathBuf>,
    #[command(flatten)]
    load: LoadArgs,
}

#[derive(Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
enum System {
    Fabric,
    Ordo,
}

/// One run of one system.
#[derive(Serialize)]
struct RunFigures {
    system: System,
    round: u32,
    result: BenchResult,
    /// Each orderer's peak RSS after the run (MiB), orderer1 first.
    peak_rss_mib: Vec<Option<f64>>,
}

impl RunFigures {
    fn orderers_cpu_us(&self) -> f64 {
        self.result
            .cpu
            .iter()
            .filter(|c| c.label != "client")
            .map(|c| c.us_per_envelope)
            .sum()
    }

    fn role_cpu_us(&self, prefix: &str) -> Option<f64> {
        let v: Vec<f64> = self
            .result
            .cpu
            .iter()
            .filter(|c| c.label.starts_with(prefix))
            .map(|c| c.us_per_envelope)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }

    fn max_rss(&self) -> Option<f64> {
        self.peak_rss_mib.iter().flatten().copied().reduce(f64::max)
    }
}

/// The medians of one system's runs.
#[derive(Serialize, Default)]
struct Medians {
    ordered_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// µs of CPU per ordered envelope, all orderers together.
    orderers_cpu_us: f64,
    leader_cpu_us: f64,
    /// The followers' mean.
    follower_cpu_us: Option<f64>,
    client_cpu_us: f64,
    /// The largest orderer's peak RSS.
    max_rss_mib: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn medians(runs: &[&RunFigures]) -> Medians {
    let m = |f: &dyn Fn(&RunFigures) -> f64| median(runs.iter().map(|r| f(r)).collect());
    let followers: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.role_cpu_us("follower"))
        .collect();
    Medians {
        ordered_per_sec: m(&|r| r.result.ordered_per_sec),
        p50_ms: m(&|r| r.result.latency_ms.p50),
        p99_ms: m(&|r| r.result.latency_ms.p99),
        orderers_cpu_us: m(&|r| r.orderers_cpu_us()),
        leader_cpu_us: m(&|r| r.role_cpu_us("leader").unwrap_or(0.0)),
        follower_cpu_us: (!followers.is_empty()).then(|| median(followers)),
        client_cpu_us: m(&|r| r.role_cpu_us("client").unwrap_or(0.0)),
        max_rss_mib: m(&|r| r.max_rss().unwrap_or(0.0)),
    }
}

pub async fn compare(a: CompareArgs) -> anyhow::Result<()> {
    let fabric_version = crate::fabric_net::version(&a.fabric_orderer)?;
    // Held to the end: a temporary folder is deleted when it drops.
    let (dir, _tmp) = crate::demo_net::work_dir(a.dir.as_deref())?;
    // The machine's signature rate, before any cluster runs, beside every figure.
    let calibration = ordo_bench::calibrate(Duration::from_secs(1))?;
    let org = bench_local::orderer_org(&dir, a.cluster.nodes).await?;
    let settings = a.cluster.settings(true);
    let json = a.load.json;
    // Progress lines go to stderr with --json, so that stdout is the one JSON line.
    let say = |line: String| {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    say(format!(
        "Fabric {fabric_version} against Ordo {}: {} orderers each on 127.0.0.1 (TLS), {} rounds; {} envelopes of {} payload bytes, {} streams × window {} to the leader; MaxMessageCount {}, BatchTimeout {}, /Channel/Writers a signature policy; data in {}",
        env!("CARGO_PKG_VERSION"),
        a.cluster.nodes,
        a.rounds,
        a.load.envelopes,
        a.load.payload,
        a.load.streams,
        a.load.window,
        a.cluster.max_message_count,
        a.cluster.batch_timeout,
        dir.display()
    ));
    let mut runs = Vec::new();
    for round in 1..=a.rounds {
        let order = if round % 2 == 1 {
            [System::Fabric, System::Ordo]
        } else {
            [System::Ordo, System::Fabric]
        };
        for system in order {
            let cluster: Cluster = match system {
                System::Fabric => {
                    crate::fabric_net::start_fabric(&a.fabric_orderer, &dir, &org, &settings)
                        .await
                        .context("starting Fabric's cluster")?
                }
                System::Ordo => bench_local::start_ordo(&dir, &org, &settings, false)
                    .await
                    .context("starting Ordo's cluster")?,
            };
            let result = measure(&cluster.target(true), &a.load, cluster.watch()).await?;
            let figures = RunFigures {
                system,
                round,
                peak_rss_mib: cluster.peak_rss(),
                result,
            };
            drop(cluster);
            say(run_line(&figures));
            runs.push(figures);
        }
    }
    let of = |s: System| -> Vec<&RunFigures> { runs.iter().filter(|r| r.system == s).collect() };
    let (fabric, ordo) = (medians(&of(System::Fabric)), medians(&of(System::Ordo)));
    if json {
        let v = serde_json::json!({
            "fabric_version": fabric_version,
            "nodes": a.cluster.nodes,
            "calibration": calibration,
            "runs": runs,
            "median": {"fabric": fabric, "ordo": ordo},
            "ratio": {
                "throughput": ordo.ordered_per_sec / fabric.ordered_per_sec,
                "cpu_per_envelope": ordo.orderers_cpu_us / fabric.orderers_cpu_us,
            },
        });
        println!("{v}");
    } else {
        print_table(&fabric_version, &fabric, &ordo, a.rounds);
        println!(
            "ECDSA P-256 per core on this machine: {:.0} verify/s, {:.0} sign/s ({} cores)",
            calibration.verify_per_core_per_sec,
            calibration.sign_per_core_per_sec,
            calibration.cores
        );
    }
    if a.load.check
        && let Some(bad) = runs.iter().find(|r| !r.result.all_ordered_once())
    {
        bail!(
            "round {} ({}): not every envelope was acknowledged and delivered exactly once",
            bad.round,
            name(bad.system)
        );
    }
    Ok(())
}

fn name(s: System) -> &'static str {
    match s {
        System::Fabric => "Fabric",
        System::Ordo => "Ordo",
    }
}

fn run_line(r: &RunFigures) -> String {
    let res = &r.result;
    format!(
        "round {} {:<6} {:>7.0} tx/s, p50 {:.1} ms, p99 {:.1} ms, {}/{} ordered, {} blocks; {}; peak RSS of the largest orderer {:.1} MiB",
        r.round,
        name(r.system),
        res.ordered_per_sec,
        res.latency_ms.p50,
        res.latency_ms.p99,
        res.delivered,
        res.envelopes,
        res.blocks,
        cpu_line(res).unwrap_or_else(|| "CPU not measured".into()),
        r.max_rss().unwrap_or(0.0)
    )
}

fn print_table(version: &str, f: &Medians, o: &Medians, rounds: u32) {
    let fabric = format!("Fabric {version}");
    println!();
    println!(
        "median of {rounds} run(s) {:>26} {:>12} {:>12}",
        fabric, "Ordo", "Ordo/Fabric"
    );
    let row = |what: &str, f: f64, o: f64, digits: usize| {
        println!(
            "{what:<40} {f:>14.digits$} {o:>12.digits$} {:>12.2}",
            if f > 0.0 { o / f } else { f64::NAN }
        );
    };
    row("ordered tx/s", f.ordered_per_sec, o.ordered_per_sec, 0);
    row("latency p50 (ms)", f.p50_ms, o.p50_ms, 1);
    row("latency p99 (ms)", f.p99_ms, o.p99_ms, 1);
    row(
        "CPU µs per envelope, all orderers",
        f.orderers_cpu_us,
        o.orderers_cpu_us,
        1,
    );
    row("  the leader", f.leader_cpu_us, o.leader_cpu_us, 1);
    if let (Some(ff), Some(of)) = (f.follower_cpu_us, o.follower_cpu_us) {
        row("  a follower (mean)", ff, of, 1);
    }
    row("  the load generator", f.client_cpu_us, o.client_cpu_us, 1);
    row(
        "peak RSS of the largest orderer (MiB)",
        f.max_rss_mib,
        o.max_rss_mib,
        1,
    );
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![]), 0.0);
    }
}
