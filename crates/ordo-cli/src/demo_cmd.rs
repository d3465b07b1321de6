//! `ordo demo`: the seed's ordering service, grown on this machine. It starts with a CA, as the
//! seed tutorial does: an in-process `ordo ca` server from which the orderer organization's admin
//! (`osadmin`), its orderers' identities (`os1`..) and their TLS certificates are enrolled and its
//! MSP is built (it is stopped at the end). Five orderers labelled with three regions (2/1/2)
//! start on that material; a freshly generated channel names only orderer1 as its consenter;
//! a small client starts broadcasting through it; then orderer2…orderer5 are added one at a time,
//! each by a config update signed by the orderer organization's admin and a join with the config
//! block that adds it (it follows, then becomes a consenter), while a live status line per node
//! shows its role, height and the leader it knows. Every block is printed as orderer1's Deliver
//! hands it out, and at the end every orderer must hold the same blocks — what Ordo does, in one
//! command, with nothing installed but Ordo. The nodes listen on ports the kernel chooses and the
//! channel is generated with the ports they got. The client behaves as Fabric's SDKs do (see
//! `demo_client`): what is refused or cut off is sent again on a new stream, and the summary
//! says how many envelopes were sent, acknowledged, re-sent and delivered. Every wait is bounded:
//! the demo ends by itself, with an error naming the step that did not finish.

use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use ordo_client::{ClientTls, HttpClient, grpc_channel};
use ordo_config::consenters::{ConsenterEdit, consenters, edit_consenters, signed_config_update};
use ordo_config::envelope::create_signed_envelope;
use ordo_orderer::channel::{Relation, config_at_tip};
use ordo_orderer::localconfig::{ListenPorts, LocalConfig};
use ordo_orderer::node::Node;
use ordo_orderer::registrar::Registrar;
use ordo_proto::common::{Block, Envelope, HeaderType, Status};
use ordo_proto::orderer::atomic_broadcast_client::AtomicBroadcastClient;
use prost::Message;
use tonic::transport::Channel as GrpcChannel;

use crate::demo_client::{Counts, Report};
use crate::demo_net::{DemoCa, DemoNet, enroll_orderer_org, generate, write_orderer_yamls};

/// The longest any one step of the demo may take (an enrollment, a join, an election, a block
/// after the previous one) before the demo stops with an error saying which.
const STEP: Duration = Duration::from_secs(60);

/// Runs `f`, failing with `what` if it takes longer than `limit`.
async fn within<T>(
    limit: Duration,
    what: &str,
    f: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::time::timeout(limit, f)
        .await
        .with_context(|| format!("{what}: no result within {} s", limit.as_secs()))?
}

#[derive(Args)]
pub struct DemoArgs {
    /// Where to put the CA's data, the enrolled and generated crypto material, config and ledger
    /// (default: a temporary folder, deleted at the end). It must be new or empty: the
    /// network, its CA and its identities are generated there.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Stop this many blocks after the last orderer became a consenter (0: run until Ctrl-C).
    #[arg(long, default_value_t = 10)]
    blocks: u64,
    /// Envelopes the client sends per second.
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// Orderers: the channel starts with orderer1 as its only consenter and the others are added
    /// one at a time (5: the seed's 2/1/2 over three regions).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=9))]
    nodes: u32,
}

const REGIONS: [&str; 3] = ["us-east", "eu-central", "ap-south"];

/// The region label of orderer `i` (0-based) of `n`: spread over three regions with the middle
/// one smallest (5 → 2/1/2, so that losing any one region leaves a quorum).
fn region(i: u32, n: u32) -> &'static str {
    if n < 3 {
        return REGIONS[i as usize];
    }
    let middle = (n / 3).max(1);
    let first = (n - middle).div_ceil(2);
    if i < first {
        REGIONS[0]
    } else if i < first + middle {
        REGIONS[1]
    } else {
        REGIONS[2]
    }
}

pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    // Errors only: growing the cluster makes the nodes warn about what is expected then (a
    // follower refusing Raft traffic until it becomes a consenter, a leader without a quorum
    // for that moment).
    let spec = std::env::var("FABRIC_LOGGING_SPEC").unwrap_or_else(|_| "error".to_string());
    ordo_orderer::logging::init(&spec, "").context("logging")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let outcome = rt.block_on(demo(args));
    // Whatever is still running then (a connection closing, a node's file work) is not waited
    // for long: the demo ends by itself.
    rt.shutdown_timeout(Duration::from_secs(5));
    outcome
}

/// The terminal: event lines scroll, and on a terminal the status lines stay under them,
/// redrawn in place. Elsewhere (a pipe, a test) the status is printed at each step instead.
struct Screen {
    tty: bool,
    status: Vec<String>,
    drawn: usize,
}

impl Screen {
    fn erase(&mut self) {
        if self.drawn > 0 {
            print!("\x1b[{}A\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }

    fn draw(&mut self) {
        for l in &self.status {
            println!("{l}");
        }
        self.drawn = self.status.len();
        let _ = std::io::stdout().flush();
    }

    fn event(&mut self, line: &str) {
        if self.tty {
            self.erase();
            println!("{line}");
            self.draw();
        } else {
            println!("{line}");
        }
    }

    fn set_status(&mut self, lines: Vec<String>) {
        self.status = lines;
        if self.tty {
            self.erase();
            self.draw();
        }
    }

    /// Prints the status as ordinary lines (off a terminal, where it is not kept on screen).
    fn print_status(&mut self) {
        if !self.tty {
            for l in &self.status {
                println!("{l}");
            }
        }
    }
}

type SharedScreen = Arc<Mutex<Screen>>;

fn event(screen: &SharedScreen, line: &str) {
    screen.lock().unwrap_or_else(|p| p.into_inner()).event(line);
}

/// One status line per orderer: region, role in the channel, height, and the leader it knows.
fn status_lines(registrars: &[Arc<Registrar>], n: u32, channel: &str) -> Vec<String> {
    registrars
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let name = format!("orderer{}", i + 1);
            let reg = region(i as u32, n);
            let Some(ch) = r.get(channel) else {
                return format!("  {name}  {reg:<10}  not joined");
            };
            let state = ch.state();
            let role = match state.relation {
                Relation::Follower { onboarding: true } => "onboarding",
                Relation::Follower { onboarding: false } => "follower",
                Relation::Consenter if state.status.is_leader => "LEADER",
                Relation::Consenter if state.is_learner() => "learner",
                Relation::Consenter => "consenter",
            };
            let leader = match state.status.leader {
                0 => "—".to_string(),
                // Orderers join in order and nobody leaves, so Raft ID k is orderer k.
                id => format!("orderer{id}"),
            };
            let height = ch.ledger().height();
            format!("  {name}  {reg:<10}  {role:<10}  height {height:>5}  leader {leader}")
        })
        .collect()
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    // Held to the end: a temporary folder is deleted when it drops.
    let (dir, _tmp) = crate::demo_net::work_dir(args.dir.as_deref())?;
    // The orderer organization's CA, as in the seed tutorial: it serves while the demo runs
    // and is stopped at the end whatever the outcome.
    let ca = DemoCa::start(&dir.join("ca")).await?;
    println!(
        "CA started: {} (ca, tlsca), its data in {}",
        ca.url,
        dir.join("ca").display()
    );
    let outcome = run_network(&args, &dir, &ca).await;
    if tokio::time::timeout(STEP, ca.stop()).await.is_err() {
        eprintln!("The CA server did not stop within {} s", STEP.as_secs());
    }
    if args.dir.is_some() {
        println!("Data kept in {}", dir.display());
    }
    outcome
}

/// Everything after the CA started: the orderer organization enrolled from it, the network
/// generated around it, the nodes run and the channel grown.
async fn run_network(args: &DemoArgs, dir: &std::path::Path, ca: &DemoCa) -> anyhow::Result<()> {
    let n = args.nodes;
    let org = within(
        STEP,
        "enrolling the orderer organization",
        enroll_orderer_org(ca, dir, n, |line| println!("{line}")),
    )
    .await
    .context("enrolling the orderer organization")?;

    // The nodes start first, on ports the kernel chooses, and the channel is generated with
    // the ports they got: a port found free beforehand could be taken by then.
    let yamls = write_orderer_yamls(dir, &org, "")?;
    let mut nodes = Vec::new();
    for (i, yaml) in yamls.iter().enumerate() {
        let cfg =
            LocalConfig::load_with_ports(yaml, &|k| std::env::var(k).ok(), ListenPorts::Kernel)?;
        let node = Node::start(cfg).await?;
        let a = &node.addresses;
        println!(
            "orderer{} [{}] started: gRPC {} (also Raft) · admin {} · operations http://{}",
            i + 1,
            region(i as u32, n),
            a.general,
            a.admin,
            a.operations
        );
        nodes.push(node);
    }
    let ports: Vec<u16> = nodes.iter().map(|n| n.addresses.general.port()).collect();
    let material =
        generate(dir, "demo", &org, 1, &yamls, &ports).context("generating the demo network")?;
    let runs_as = if n == 1 {
        "orderer1 runs as os1".to_string()
    } else {
        format!("orderer1..orderer{n} run as os1..os{n}")
    };
    println!(
        "Generated channel '{}' for OrdererMSP ({runs_as}) and Org1MSP (cryptogen-style, its client broadcasts); its genesis block names orderer1 as the only consenter",
        material.channel
    );

    let ca = std::fs::read(&material.tls_ca_cert)?;
    let admin_cert = std::fs::read(&material.admin_tls_cert)?;
    let admin_key = std::fs::read(&material.admin_tls_key)?;
    let mut admins = Vec::new();
    for node in &nodes {
        admins.push(HttpClient {
            addr: node.addresses.admin,
            tls: Some(ClientTls::new(
                std::slice::from_ref(&ca),
                Some((&admin_cert, &admin_key)),
                "127.0.0.1",
                &[b"http/1.1"],
            )?),
        });
    }
    join(&admins[0], 1, &material.genesis_block).await?;
    println!(
        "orderer1 joined channel '{}' through the channel participation API (HTTP 201)",
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
    println!("Raft leader elected (orderer1 of 1)");

    let a = nodes[0].addresses;
    let tls = ClientTls::new(std::slice::from_ref(&ca), None, "127.0.0.1", &[b"h2"])?;
    let client = AtomicBroadcastClient::new(
        within(STEP, "connecting to orderer1", async {
            Ok(grpc_channel(a.general, Some(tls)).await?)
        })
        .await?,
    );
    let signer = Arc::new(
        ordo_msp::local::load_signing_identity(&material.client_msp_dir, &material.client_msp_id)?
            .signer,
    );

    // The client: signed transactions at a steady rate, broadcast as an SDK does (re-sent on a
    // new stream when refused or cut off).
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
    let screen: SharedScreen = Arc::new(Mutex::new(Screen {
        tty: std::io::stdout().is_terminal(),
        status: Vec::new(),
        drawn: 0,
    }));
    let counts = Arc::new(Counts::default());
    let report: Report = {
        let s = screen.clone();
        Arc::new(move |line: &str| event(&s, line))
    };
    let broadcaster = tokio::spawn(crate::demo_client::broadcast(
        client.clone(),
        rx,
        counts.clone(),
        report.clone(),
    ));

    // Deliver: every block from the genesis block on, as a peer would receive them.
    let (printed_tx, mut printed) = tokio::sync::watch::channel(None::<u64>);
    let printer = tokio::spawn(crate::demo_client::deliver(
        client.clone(),
        material.channel.clone(),
        signer.clone(),
        counts.clone(),
        report.clone(),
        block_printer(screen.clone(), printed_tx),
    ));
    // The live status, redrawn on a terminal.
    let registrars: Vec<Arc<Registrar>> = nodes.iter().map(|n| n.registrar.clone()).collect();
    let (s, r, ch) = (screen.clone(), registrars.clone(), material.channel.clone());
    let status = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_millis(250));
        loop {
            every.tick().await;
            let lines = status_lines(&r, n, &ch);
            s.lock()
                .unwrap_or_else(|p| p.into_inner())
                .set_status(lines);
        }
    });

    let mut outcome = grow(&nodes, &admins, &material, client.clone(), &screen).await;
    if outcome.is_ok() {
        let last = channel_handle.ledger().height() - 1;
        let target = if args.blocks == 0 {
            u64::MAX
        } else {
            last + args.blocks
        };
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        tokio::select! {
            r = blocks_until(&mut printed, target) => outcome = r,
            _ = &mut ctrl_c => {}
        }
    }
    producer.abort();
    broadcaster.abort();
    printer.abort();
    status.abort();
    let _ = broadcaster.await;
    let _ = printer.await;
    let _ = status.await;
    let last_printed = *printed.borrow();
    {
        let mut s = screen.lock().unwrap_or_else(|p| p.into_inner());
        s.set_status(status_lines(&registrars, n, &material.channel));
        s.erase();
        s.tty = false;
        s.print_status();
    }
    println!("{}", counts.summary());
    // Close the client's connections first so that the nodes' graceful stop has nothing to wait
    // for.
    drop(client);
    if outcome.is_ok()
        && let Some(last) = last_printed
    {
        outcome = same_blocks_everywhere(&nodes, &material.channel, last).await;
    }
    for (i, node) in nodes.into_iter().enumerate() {
        if tokio::time::timeout(STEP, node.stop()).await.is_err() {
            eprintln!("orderer{} did not stop within {} s", i + 1, STEP.as_secs());
        }
    }
    outcome
}

/// Waits until block `target` was printed, failing if no block comes for [`STEP`] (the
/// client re-sends what is refused, so blocks keep coming while the cluster can order).
async fn blocks_until(
    printed: &mut tokio::sync::watch::Receiver<Option<u64>>,
    target: u64,
) -> anyhow::Result<()> {
    loop {
        let last = *printed.borrow_and_update();
        if last.is_some_and(|p| p >= target) {
            return Ok(());
        }
        match tokio::time::timeout(STEP, printed.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => bail!("the Deliver client stopped"),
            Err(_) => bail!(
                "no new block for {} s (the last one printed: {}; waiting for block {target})",
                STEP.as_secs(),
                last.map_or("none".to_string(), |l| l.to_string())
            ),
        }
    }
}

async fn join(admin: &HttpClient, n: usize, block: &[u8]) -> anyhow::Result<()> {
    let joined = within(STEP, &format!("orderer{n} joining the channel"), async {
        Ok(admin.join(block).await?)
    })
    .await?;
    if joined.status != 201 {
        bail!(
            "orderer{n} joining the channel: HTTP {}: {}",
            joined.status,
            String::from_utf8_lossy(&joined.body)
        );
    }
    Ok(())
}

/// Adds orderer2…ordererN one at a time, as an operator does: a config update adding its
/// consenter, signed by the orderer organization's admin and broadcast; once the config block is
/// in orderer1's ledger, the new orderer joins with it (it follows until its ledger reaches that
/// block, then runs Raft under the ID the block gives it, as a learner until the leader promotes
/// it: the channel orders throughout); the next one is added once it is a voter.
async fn grow(
    nodes: &[Node],
    admins: &[HttpClient],
    material: &DemoNet,
    client: AtomicBroadcastClient<GrpcChannel>,
    screen: &SharedScreen,
) -> anyhow::Result<()> {
    let admin =
        ordo_msp::local::load_signing_identity(&material.admin_msp_dir, &material.orderer_msp_id)?
            .signer;
    let total = nodes.len() as u32;
    let ch = &material.channel;
    let first = nodes[0]
        .registrar
        .get(ch)
        .context("orderer1 lost the channel")?;
    for (i, node) in nodes.iter().enumerate().skip(1) {
        let name = format!("orderer{}", i + 1);
        let reg = region(i as u32, total);
        let ledger = first.ledger();
        let (cfg, before) = config_at_tip(ledger)?;
        let original = cfg.config().clone();
        let mut updated = original.clone();
        let add = ConsenterEdit::Add(material.consenters[i].clone());
        let (consenters, _) = add.apply(&consenters(&original)?)?;
        edit_consenters(&mut updated, |cs| *cs = consenters)?;
        let env = signed_config_update(ch, &original, &updated, &[&admin])?;
        event(
            screen,
            &format!(
                "Adding {name} [{reg}]: config update adding its consenter, signed by the {} admin",
                material.orderer_msp_id
            ),
        );
        submit_config_update(&client, env, &name, ledger, before, screen).await?;
        let mut height = ledger.subscribe();
        let block = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let (_, last) = config_at_tip(ledger)?;
                if last > before {
                    return anyhow::Ok(ledger.block(last)?);
                }
                height.changed().await?;
            }
        })
        .await
        .context("the config block did not come within 30 s")??;
        let number = block.header.as_ref().map_or(0, |h| h.number);
        join(&admins[i], i + 1, &block.encode_to_vec()).await?;
        event(
            screen,
            &format!(
                "  ordered in block {number}; {name} joined the channel with it and follows it"
            ),
        );
        // Polled rather than watched: the follower's channel is replaced by a new one when it
        // becomes a consenter.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut learner_seen = false;
        let id = loop {
            if let Some(s) = node.registrar.get(ch).map(|c| c.state()) {
                if let Some(why) = s.halted {
                    bail!("{name} stopped: {why}");
                }
                if s.is_learner() && !learner_seen {
                    learner_seen = true;
                    event(
                        screen,
                        &format!(
                            "  {name} runs Raft as a learner (Raft ID {}): catching up, not yet in the quorum",
                            s.status.id
                        ),
                    );
                }
                if s.relation == Relation::Consenter && !s.is_learner() && s.status.leader != 0 {
                    break s.status.id;
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!("{name} did not become a voting consenter within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        event(
            screen,
            &format!(
                "  {name} is a consenter (Raft ID {id}, promoted to voter) — {} of {total} orderers",
                i + 1
            ),
        );
        let registrars: Vec<Arc<Registrar>> = nodes.iter().map(|n| n.registrar.clone()).collect();
        let mut s = screen.lock().unwrap_or_else(|p| p.into_inner());
        s.set_status(status_lines(&registrars, total, ch));
        s.print_status();
    }
    Ok(())
}

/// Broadcasts the config update `env` (adding `name`) until the orderer accepts it, as the
/// demo's client does with transactions: a refusal for want of a leader, or a lost stream, is
/// tried again on a new stream after a back-off — unless the config block is in `ledger` by
/// then (config block `before` was the last one when the update was made).
async fn submit_config_update(
    client: &AtomicBroadcastClient<GrpcChannel>,
    env: Envelope,
    name: &str,
    ledger: &ordo_orderer::channel::Ledger,
    before: u64,
    screen: &SharedScreen,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + STEP;
    let mut wait = Duration::from_millis(100);
    loop {
        let mut bc = client.clone();
        let answer = tokio::time::timeout(Duration::from_secs(10), async {
            bc.broadcast(futures::stream::iter(vec![env.clone()]))
                .await?
                .into_inner()
                .message()
                .await
        })
        .await;
        let why = match answer {
            Ok(Ok(Some(a))) if a.status == Status::Success as i32 => return Ok(()),
            Ok(Ok(Some(a))) if a.status == Status::ServiceUnavailable as i32 => {
                format!("answered SERVICE_UNAVAILABLE: {}", a.info)
            }
            Ok(Ok(Some(a))) => bail!(
                "the config update adding {name} was refused: {} {}",
                a.status,
                a.info
            ),
            Ok(Ok(None)) => "the stream ended without an answer".to_string(),
            Ok(Err(e)) => format!("failed: {}", e.message()),
            Err(_) => "not answered within 10 s".to_string(),
        };
        // An update that was ordered though its answer was lost must not be sent again: it
        // would be refused as stale.
        if config_at_tip(ledger)?.1 > before {
            return Ok(());
        }
        if tokio::time::Instant::now() + wait > deadline {
            bail!(
                "the config update adding {name} was not accepted within {} s (last: {why})",
                STEP.as_secs()
            );
        }
        event(
            screen,
            &format!(
                "  the config update {why}; sent again in {} ms",
                wait.as_millis()
            ),
        );
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

/// What the Deliver client does with each block from orderer1: prints it, checking that it
/// links to the previous one, and reports its number.
fn block_printer(
    screen: SharedScreen,
    printed: tokio::sync::watch::Sender<Option<u64>>,
) -> impl FnMut(&Block) {
    let mut prev: Option<[u8; 32]> = None;
    move |b: &Block| {
        let Some(h) = b.header.as_ref() else { return };
        let hash = ordo_ledger::block::header_hash(h);
        let linked = prev.is_none_or(|p| h.previous_hash.as_ref() == p.as_slice());
        let count = b.data.as_ref().map_or(0, |d| d.data.len());
        let kind = if ordo_ledger::block::is_config_block(b) {
            "config"
        } else {
            "transactions"
        };
        event(
            &screen,
            &format!(
                "block {:>4}  {:>3} envelope(s)  {:<12}  hash {}…  previous hash {}",
                h.number,
                count,
                kind,
                hex(&hash[..8]),
                if h.number == 0 {
                    "—"
                } else if linked {
                    "linked ✓"
                } else {
                    "BROKEN ✗"
                }
            ),
        );
        prev = Some(hash);
        let _ = printed.send(Some(h.number));
    }
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

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::region;

    #[test]
    fn five_orderers_spread_two_one_two_over_three_regions() {
        let labels: Vec<&str> = (0..5).map(|i| region(i, 5)).collect();
        assert_eq!(
            labels,
            ["us-east", "us-east", "eu-central", "ap-south", "ap-south"]
        );
        let three: Vec<&str> = (0..3).map(|i| region(i, 3)).collect();
        assert_eq!(three, ["us-east", "eu-central", "ap-south"]);
    }
}
