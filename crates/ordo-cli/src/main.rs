//! `ordo`: the command-line front of Ordo. It parses arguments and calls the library crates; the
//! behaviour lives there (ripgrep's shape: a thin binary over libraries).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench_cmd;
mod bench_compare;
mod bench_local;
mod ca_cmd;
mod channel_cmd;
mod config_cmd;
mod demo_client;
mod demo_cmd;
mod demo_net;
mod deploy_cmd;
mod deploy_k8s;
mod fabric_net;
mod node_cmd;

#[derive(Parser)]
#[command(
    name = "ordo",
    version,
    about = "Ordo: an ordering service for Hyperledger Fabric networks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Load generator for any Fabric-compatible orderer (`ordo bench calibrate`: the machine's
    /// signature rates).
    Bench(bench_cmd::BenchArgs),
    /// A Fabric-CA-compatible certificate authority (`start`) and its client.
    #[command(subcommand)]
    Ca(ca_cmd::CaCommand),
    /// Channel administration: osnadmin's join/list/remove against an orderer's admin
    /// endpoint, and consenter changes by config update (add, remove, rotate certificates).
    #[command(subcommand)]
    Channel(channel_cmd::ChannelCommand),
    /// Channel configuration tools: what configtxlator and configtxgen do, without Fabric.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Deployment manifests of an ordering service (`kubernetes`: zones, Secrets, probes).
    #[command(subcommand)]
    Deploy(deploy_cmd::DeployCommand),
    /// Runs a local Raft cluster on a generated channel, its orderer organization enrolled from an
    /// in-process CA, and shows the blocks it produces.
    Demo(demo_cmd::DemoArgs),
    /// Runs an orderer node.
    #[command(subcommand)]
    Node(node_cmd::NodeCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // As Go programs do (Fabric's orderer among them): the soft limit on open files rises to
    // the hard one, so that a default of 1024 is not the bound on a node's connections and
    // files. The listeners set their own bounds.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let result = match cli.command {
        Command::Bench(a) => bench_cmd::run_cmd(a),
        Command::Ca(c) => ca_cmd::run(c),
        Command::Channel(c) => channel_cmd::run(c),
        Command::Config(c) => config_cmd::run(c),
        Command::Node(c) => node_cmd::run(c),
        Command::Demo(a) => demo_cmd::run(a),
        Command::Deploy(c) => deploy_cmd::run(c),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
