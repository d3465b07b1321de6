//! `ordo node`: runs an orderer node.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use ordo_orderer::localconfig::{ListenPorts, LocalConfig};
use ordo_orderer::node::Node;

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Starts an orderer from Fabric's orderer.yaml (ORDERER_SECTION_KEY variables override it).
    Start {
        /// The orderer.yaml file.
        #[arg(long, default_value = "orderer.yaml")]
        config: PathBuf,
        /// Bind the general listener, and the cluster listener when General.Cluster.ListenAddress
        /// is set (its ListenPort may then be left out), on ports the kernel chooses, whatever
        /// ListenPort says (General.ListenPort 0 means Fabric's 7050). The start line reports
        /// them; for scripts that write the ports into a channel config once the node runs.
        #[arg(long)]
        kernel_ports: bool,
    },
}

pub fn run(cmd: NodeCommand) -> anyhow::Result<()> {
    match cmd {
        NodeCommand::Start {
            config,
            kernel_ports,
        } => start(config, kernel_ports),
    }
}

/// The line a started node prints once every listener is bound, for scripts and tests to read
/// its addresses from: `ordo node started: ` then `key=address` pairs separated by spaces,
/// `general`, `cluster` (only when the cluster has its own listener), `admin`, `operations`.
fn start_line(a: &ordo_orderer::node::Addresses) -> String {
    let cluster = a.cluster.map_or(String::new(), |c| format!(" cluster={c}"));
    format!(
        "ordo node started: general={}{cluster} admin={} operations={}",
        a.general, a.admin, a.operations
    )
}

fn start(path: PathBuf, kernel_ports: bool) -> anyhow::Result<()> {
    let spec = std::env::var("FABRIC_LOGGING_SPEC").unwrap_or_else(|_| "info".to_string());
    let format = std::env::var("FABRIC_LOGGING_FORMAT").unwrap_or_default();
    ordo_orderer::logging::init(&spec, &format).context("logging")?;
    let ports = if kernel_ports {
        ListenPorts::Kernel
    } else {
        ListenPorts::Configured
    };
    let cfg = LocalConfig::load_with_ports(&path, &|k| std::env::var(k).ok(), ports)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let node = Node::start(cfg).await?;
        let a = node.addresses;
        // One line that scripts and tests wait for: every listener is bound when it appears.
        println!("{}", start_line(&a));
        tracing::info!(general = %a.general, cluster = ?a.cluster, admin = %a.admin, operations = %a.operations, "ordo node started");
        node.run_until(shutdown_signal()).await;
        tracing::info!("ordo node stopped");
        Ok(())
    })
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
