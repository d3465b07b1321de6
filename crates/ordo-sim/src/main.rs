//! `ordo-sim`: runs the deterministic cluster simulation over a range of seeds (a campaign), or
//! replays one seed with a trace.
//!
//! ```text
//! cargo run -p ordo-sim --profile sim -- --seeds 10000          # campaign over seeds 0..10000
//! cargo run -p ordo-sim --profile sim -- --seed 1234 --trace    # replay one seed, printing events
//! ```

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Parser;
use ordo_sim::{Bug, SimOptions, run};

#[derive(Parser)]
#[command(about = "Deterministic simulation of an Ordo Raft cluster")]
struct Args {
    /// Replay this one seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Run seeds `first..first+seeds`.
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Print every notable event (with --seed).
    #[arg(long)]
    trace: bool,
    /// Worker threads (default: the machine's cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Run with a deliberately broken driver (expect failures): `sync-on-tick` fsyncs the WAL
    /// only once per tick, `compact-before-sync` lets the WAL go before the ledger is synced.
    #[arg(long, value_parser = ["sync-on-tick", "compact-before-sync"])]
    bug: Option<String>,
    /// Simulated milliseconds of faults per seed, then of healed network.
    #[arg(long, default_value_t = SimOptions::default().chaos_ms)]
    chaos_ms: u64,
    #[arg(long, default_value_t = SimOptions::default().heal_ms)]
    heal_ms: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let opts = SimOptions {
        trace: args.trace,
        bug: args.bug.as_deref().map(|b| match b {
            "compact-before-sync" => Bug::CompactBeforeLedgerSync,
            _ => Bug::SyncOnTickOnly,
        }),
        chaos_ms: args.chaos_ms,
        heal_ms: args.heal_ms,
        ..SimOptions::default()
    };
    if let Some(seed) = args.seed {
        return match run(seed, &opts) {
            Ok(r) => {
                println!("{r:?}");
                ExitCode::SUCCESS
            }
            Err(v) => {
                eprintln!("{v}");
                ExitCode::FAILURE
            }
        };
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let next = AtomicU64::new(args.first);
    let end = args.first + args.seeds;
    let failures = AtomicU64::new(0);
    let blocks = AtomicU64::new(0);
    let changes = AtomicU64::new(0);
    let cold_reads = AtomicU64::new(0);
    let lost_blocks = AtomicU64::new(0);
    let stops = AtomicU64::new(0);
    let handed_over = AtomicU64::new(0);
    let preferred = AtomicU64::new(0);
    let ended_preferred = AtomicU64::new(0);
    // Growth phases with learners and with Fabric's AddNode: how many, leaderless time, the
    // longest gap between blocks.
    let growth = std::sync::Mutex::new([(0u64, 0u64, 0u64); 2]);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end {
                        break;
                    }
                    match run(seed, &opts) {
                        Ok(r) => {
                            blocks.fetch_add(r.blocks, Ordering::Relaxed);
                            changes.fetch_add(r.membership_changes, Ordering::Relaxed);
                            cold_reads.fetch_add(r.cold_reads, Ordering::Relaxed);
                            lost_blocks.fetch_add(r.lost_blocks, Ordering::Relaxed);
                            stops.fetch_add(r.graceful_stops, Ordering::Relaxed);
                            handed_over.fetch_add(r.handed_over, Ordering::Relaxed);
                            preferred.fetch_add(u64::from(r.preferred_leader), Ordering::Relaxed);
                            ended_preferred
                                .fetch_add(u64::from(r.ended_preferred), Ordering::Relaxed);
                            if r.growth {
                                let mut g = growth.lock().unwrap_or_else(|p| p.into_inner());
                                let g = &mut g[usize::from(!r.learners)];
                                g.0 += 1;
                                g.1 += r.growth_leaderless_ms;
                                g.2 = g.2.max(r.growth_max_block_gap_ms);
                            }
                        }
                        Err(v) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                            eprintln!("{v}");
                        }
                    }
                }
            });
        }
    });
    let failed = failures.load(Ordering::Relaxed);
    println!(
        "{} seeds ({}..{end}) on {threads} threads in {:.1} s: {failed} failed, {} blocks ordered, {} consenter changes, {} released entries read back from disk and {} unsynced ledger blocks lost in crashes (made again from the WAL) in all",
        args.seeds,
        args.first,
        started.elapsed().as_secs_f64(),
        blocks.load(Ordering::Relaxed),
        changes.load(Ordering::Relaxed),
        cold_reads.load(Ordering::Relaxed),
        lost_blocks.load(Ordering::Relaxed)
    );
    println!(
        "graceful stops: {}, of which {} by a leader that had handed leadership over when it went down",
        stops.load(Ordering::Relaxed),
        handed_over.load(Ordering::Relaxed)
    );
    println!(
        "runs with a preferred leader: {}, of which {} ended with it leading",
        preferred.load(Ordering::Relaxed),
        ended_preferred.load(Ordering::Relaxed)
    );
    let g = growth.into_inner().unwrap_or_else(|p| p.into_inner());
    for (name, (runs, leaderless, gap)) in [("learners", g[0]), ("Fabric's AddNode", g[1])] {
        println!(
            "growth phases with {name}: {runs}, {leaderless} ms without a leader in all, longest gap between blocks {gap} ms"
        );
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
