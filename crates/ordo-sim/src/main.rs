//! `ordo-sim`: runs the deterministic cluster simulation over a range of seeds (a campaign), or
//! replays one seed with a trace.
//!
//! ```text
//! cargo run -p ordo-sim --release -- --seeds 10000          # campaign over seeds 0..10000
//! cargo run -p ordo-sim --release -- --seed 1234 --trace    # replay one seed, printing events
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
    /// Run with the driver bug that syncs the WAL only once per tick (expect failures).
    #[arg(long)]
    bug: bool,
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
        bug: args.bug.then_some(Bug::SyncOnTickOnly),
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
        "{} seeds ({}..{end}) on {threads} threads in {:.1} s: {failed} failed, {} blocks ordered, {} consenter changes and {} released entries read back from disk in all",
        args.seeds,
        args.first,
        started.elapsed().as_secs_f64(),
        blocks.load(Ordering::Relaxed),
        changes.load(Ordering::Relaxed),
        cold_reads.load(Ordering::Relaxed)
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
