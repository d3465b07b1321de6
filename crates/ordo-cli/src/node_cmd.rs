//! `ordo node`: runs an orderer node.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use ordo_orderer::localconfig::LocalConfig;
use ordo_orderer::node::Node;

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Starts an orderer from Fabric's orderer.yaml (ORDERER_SECTION_KEY variables override it).
    Start {
        /// The orderer.yaml file.
        #[arg(long, default_value = "orderer.yaml")]
        config: PathBuf,
    },
}

pub fn run(cmd: NodeCommand) -> anyhow::Result<()> {
    match cmd {
        NodeCommand::Start { config } => start(config),
    }
}

fn start(path: PathBuf) -> anyhow::Result<()> {
    let spec = std::env::var("FABRIC_LOGGING_SPEC").unwrap_or_else(|_| "info".to_string());
    let format = std::env::var("FABRIC_LOGGING_FORMAT").unwrap_or_default();
    ordo_orderer::logging::init(&spec, &format).context("logging")?;
    let cfg = LocalConfig::load(&path)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let node = Node::start(cfg).await?;
        let a = node.addresses;
        // One line that scripts and tests wait for: every listener is bound when it appears.
        println!(
            "ordo node started: general={} admin={} operations={}",
            a.general, a.admin, a.operations
        );
        tracing::info!(general = %a.general, admin = %a.admin, operations = %a.operations, "ordo node started");
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
