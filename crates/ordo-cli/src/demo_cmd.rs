//! `ordo demo`: a local Raft cluster (three orderers by default) on a freshly generated channel,
//! fed by a small client through one orderer, with every block printed as another orderer's
//! Deliver hands it out, and a final check that every orderer holds the same blocks — what Ordo
//! does, in one command, with nothing installed but Ordo.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use ordo_config::envelope::create_signed_envelope;
use ordo_orderer::client::{ClientTls, HttpClient, grpc_channel};
use ordo_orderer::localconfig::LocalConfig;
use ordo_orderer::node::Node;
use ordo_proto::common::{Envelope, HeaderType, Status};
use ordo_proto::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use ordo_proto::orderer::seek_info::{SeekBehavior, SeekErrorResponse};
use ordo_proto::orderer::{SeekInfo, deliver_response};
use prost::Message;

use crate::demo_net::generate;

#[derive(Args)]
pub struct DemoArgs {
    /// Where to put the generated crypto material, config and ledger (default: a temporary
    /// folder, deleted at the end).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Stop after this many blocks (0: run until Ctrl-C).
    #[arg(long, default_value_t = 10)]
    blocks: u64,
    /// Envelopes the client sends per second.
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// Orderers in the cluster (all consenters of the channel).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    nodes: u32,
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let spec = std::env::var("FABRIC_LOGGING_SPEC").unwrap_or_else(|_| "warn".to_string());
    ordo_orderer::logging::init(&spec, "").context("logging")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(demo(args))
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let tmp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let material = generate(&dir, "demo", args.nodes).context("generating the demo network")?;
    println!(
        "Generated an orderer org with {} orderers, an application org and channel '{}' in {}",
        args.nodes,
        material.channel,
        dir.display()
    );

    let mut nodes = Vec::new();
    for (i, yaml) in material.orderer_yamls.iter().enumerate() {
        let cfg = LocalConfig::load(yaml)?;
        let node = Node::start(cfg).await?;
        let a = &node.addresses;
        println!(
            "orderer{} started: gRPC {} (also Raft) · admin {} · operations http://{}",
            i + 1,
            a.general,
            a.admin,
            a.operations
        );
        nodes.push(node);
    }

    let ca = std::fs::read(&material.tls_ca_cert)?;
    let admin_cert = std::fs::read(&material.admin_tls_cert)?;
    let admin_key = std::fs::read(&material.admin_tls_key)?;
    for (i, node) in nodes.iter().enumerate() {
        let admin = HttpClient {
            addr: node.addresses.admin,
            tls: Some(ClientTls::new(
                std::slice::from_ref(&ca),
                Some((&admin_cert, &admin_key)),
                "127.0.0.1",
                &[b"http/1.1"],
            )?),
        };
        let joined = admin.join(&material.genesis_block).await?;
        if joined.status != 201 {
            bail!(
                "orderer{} joining the channel: HTTP {}: {}",
                i + 1,
                joined.status,
                String::from_utf8_lossy(&joined.body)
            );
        }
    }
    println!(
        "Every orderer joined channel '{}' through the channel participation API (HTTP 201)",
        material.channel
    );
    let channel_handle = nodes[0]
        .registrar
        .get(&material.channel)
        .context("the joined channel is not running")?;
    let mut state = channel_handle.watch_state();
    tokio::time::timeout(
        Duration::from_secs(30),
        state.wait_for(|s| s.status.leader != 0 || s.halted.is_some()),
    )
    .await
    .context("no Raft leader after 30 s")??;
    println!(
        "Raft leader elected (orderer{} of {})",
        channel_handle.state().status.leader,
        args.nodes
    );

    // The client talks to the last orderer (a follower forwards to the leader); blocks are read
    // from the first.
    let a = nodes[0].addresses;
    let through = nodes[nodes.len() - 1].addresses.general;
    let tls = ClientTls::new(std::slice::from_ref(&ca), None, "127.0.0.1", &[b"h2"])?;
    let client = AtomicBroadcastClient::new(grpc_channel(a.general, Some(tls.clone())).await?);
    let sender = AtomicBroadcastClient::new(grpc_channel(through, Some(tls)).await?);
    let signer = std::sync::Arc::new(
        ordo_msp::local::load_signing_identity(&material.client_msp_dir, &material.client_msp_id)?
            .signer,
    );

    // The client: signed transactions at a steady rate on one Broadcast stream.
    let (tx, rx) = tokio::sync::mpsc::channel::<Envelope>(64);
    let channel = material.channel.clone();
    let producer_signer = signer.clone();
    let rate = args.rate.max(1);
    let producer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
        for i in 0u64.. {
            tick.tick().await;
            let data = Bytes::from(format!("demo transaction {i}").into_bytes());
            let Ok(env) = create_signed_envelope(
                HeaderType::EndorserTransaction,
                &channel,
                &producer_signer,
                data,
            ) else {
                return;
            };
            if tx.send(env).await.is_err() {
                return;
            }
        }
    });
    let mut bc = sender.clone();
    let broadcaster = tokio::spawn(async move {
        let stream = tokio_stream_from(rx);
        match bc.broadcast(stream).await {
            Ok(resp) => {
                let mut answers = resp.into_inner();
                while let Ok(Some(r)) = answers.message().await {
                    if r.status != Status::Success as i32 {
                        eprintln!("broadcast answered {}: {}", r.status, r.info);
                    }
                }
            }
            Err(e) => eprintln!("broadcast failed: {e}"),
        }
    });

    // Deliver: every block from the genesis block on, as a peer would receive them.
    let seek = SeekInfo {
        start: Some(ordo_orderer::deliver::specified(0)),
        stop: Some(ordo_orderer::deliver::specified(u64::MAX)),
        behavior: SeekBehavior::BlockUntilReady as i32,
        error_response: SeekErrorResponse::Strict as i32,
    };
    let seek_env = create_signed_envelope(
        HeaderType::DeliverSeekInfo,
        &material.channel,
        &signer,
        seek.encode_to_vec().into(),
    )?;
    let mut dc = client.clone();
    let mut blocks = dc
        .deliver(futures::stream::iter(vec![seek_env]))
        .await?
        .into_inner();
    let mut prev: Option<[u8; 32]> = None;
    let mut last_printed = None;
    let stop_after = if args.blocks == 0 {
        u64::MAX
    } else {
        args.blocks
    };
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let msg = tokio::select! {
            m = blocks.message() => m?,
            _ = &mut ctrl_c => break,
        };
        let Some(msg) = msg else { break };
        match msg.r#type {
            Some(deliver_response::Type::Block(b)) => {
                let Some(h) = b.header.as_ref() else { continue };
                let hash = ordo_ledger::block::header_hash(h);
                let linked = prev.is_none_or(|p| h.previous_hash.as_ref() == p.as_slice());
                let n = b.data.as_ref().map_or(0, |d| d.data.len());
                let kind = if ordo_ledger::block::is_config_block(&b) {
                    "config"
                } else {
                    "transactions"
                };
                println!(
                    "block {:>4}  {:>3} envelope(s)  {:<12}  hash {}…  previous hash {}",
                    h.number,
                    n,
                    kind,
                    hex(&hash[..8]),
                    if h.number == 0 {
                        "—"
                    } else if linked {
                        "linked ✓"
                    } else {
                        "BROKEN ✗"
                    }
                );
                prev = Some(hash);
                last_printed = Some(h.number);
                if h.number + 1 >= stop_after.saturating_add(1) {
                    break;
                }
            }
            Some(deliver_response::Type::Status(s)) => {
                println!("deliver ended with status {s}");
                break;
            }
            None => {}
        }
    }
    producer.abort();
    broadcaster.abort();
    // Close the client's connections first so that the nodes' graceful stop has nothing to wait
    // for.
    drop(blocks);
    drop(dc);
    drop(client);
    drop(sender);
    let _ = broadcaster.await;
    if let Some(last) = last_printed {
        same_blocks_everywhere(&nodes, &material.channel, last).await?;
    }
    for node in nodes {
        node.stop().await;
    }
    if args.dir.is_some() {
        println!("Data kept in {}", dir.display());
    }
    Ok(())
}

/// Checks that every orderer holds blocks 0..=last with the same headers (the metadata differs:
/// each orderer signs the blocks it writes).
async fn same_blocks_everywhere(nodes: &[Node], channel: &str, last: u64) -> anyhow::Result<()> {
    let mut reference = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let ch = node
            .registrar
            .get(channel)
            .with_context(|| format!("orderer{} lost the channel", i + 1))?;
        let ledger = ch.ledger();
        let mut height = ledger.subscribe();
        tokio::time::timeout(Duration::from_secs(30), height.wait_for(|h| *h > last))
            .await
            .with_context(|| format!("orderer{} did not reach block {last}", i + 1))??;
        let headers: Vec<_> = (0..=last)
            .map(|n| ledger.block(n).map(|b| b.header))
            .collect::<Result<_, _>>()?;
        if i == 0 {
            reference = headers;
        } else if headers != reference {
            bail!("orderer{} holds different blocks than orderer1", i + 1);
        }
    }
    println!(
        "All {} orderers hold the same {} blocks ✓",
        nodes.len(),
        last + 1
    );
    Ok(())
}

fn tokio_stream_from(
    rx: tokio::sync::mpsc::Receiver<Envelope>,
) -> impl futures::Stream<Item = Envelope> {
    futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
