//! `ordo demo`: the seed's ordering service, grown on this machine. It starts with a CA, as the
//! seed tutorial does: an in-process `ordo ca` server from which the orderer organization's admin
//! (`osadmin`), its orderers' identities (`os1`..) and their TLS certificates are enrolled and its
//! MSP is built (it is stopped at the end). Five orderers labelled with three regions (2/1/2)
//! start on that material; a freshly generated channel names only orderer1 as its consenter;
//! a small client starts broadcasting through it; then orderer2…orderer5 are added one at a time,
//! each by a config update signed by the orderer organization's admin and a join with the config
//! block that adds it (it follows, then becomes a consenter) — made and watched through the
//! nodes' own APIs with `ordo-admin`, as `ordo channel` does — while a live status line per node
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
use ordo_admin::consenters::{Change, Progress, change_consenters, wait_for_node};
use ordo_admin::endpoint::{Endpoint, TlsFiles};
use ordo_config::consenters::ConsenterEdit;
use ordo_config::envelope::create_signed_envelope;
use ordo_orderer::channel::Relation;
use ordo_orderer::localconfig::{ListenPorts, LocalConfig};
use ordo_orderer::node::Node;
use ordo_orderer::registrar::Registrar;
use ordo_proto::common::{Block, Envelope, HeaderType};
use prost::Message;

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

    // The endpoints an operator's tools would be given: orderer1's general endpoint for
    // Deliver and Broadcast, and each orderer's admin endpoint with the admin's TLS client
    // certificate.
    let files = TlsFiles {
        ca: Some(material.tls_ca_cert.clone()),
        client_cert: None,
        client_key: None,
    };
    let general = Endpoint::new(
        &format!("127.0.0.1:{}", nodes[0].addresses.general.port()),
        &files,
        &[b"h2"],
    )?;
    let admin_files = TlsFiles {
        ca: Some(material.tls_ca_cert.clone()),
        client_cert: Some(material.admin_tls_cert.clone()),
        client_key: Some(material.admin_tls_key.clone()),
    };
    let admins = nodes
        .iter()
        .map(|node| {
            Endpoint::new(
                &format!("127.0.0.1:{}", node.addresses.admin.port()),
                &admin_files,
                &[b"http/1.1"],
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
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

    let client = within(STEP, "connecting to orderer1", async {
        Ok(general.broadcast_client().await?)
    })
    .await?;
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

    let grown = grow(&material, &general, &admins, &screen).await;
    let mut outcome = grown
        .as_ref()
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{e:#}"));
    if let Ok(last_config) = grown {
        let target = if args.blocks == 0 {
            u64::MAX
        } else {
            last_config + args.blocks
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

async fn join(admin: &Endpoint, n: usize, block: &[u8]) -> anyhow::Result<()> {
    let joined = within(STEP, &format!("orderer{n} joining the channel"), async {
        Ok(ordo_admin::participation::join(admin, block).await?)
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

/// Adds orderer2…ordererN one at a time, as an operator does with `ordo channel
/// add-consenter` and `ordo channel join`: the consenter change by config update through
/// orderer1, signed by the orderer organization's admin (`ordo_admin::consenters`, which fetches
/// the newest config, checks the quorum, retries what is transient and waits for the config
/// block), then a join with that block through the new orderer's participation API, whose
/// answers are watched until it shows the node a consenter and active (it follows until its
/// ledger reaches that block, then runs Raft under the ID the block gives it, as a learner —
/// `onboarding` — until the leader promotes it: the channel orders throughout). The next one is
/// added once it is a voter. Returns the number of the last config block.
async fn grow(
    material: &DemoNet,
    general: &Endpoint,
    admins: &[Endpoint],
    screen: &SharedScreen,
) -> anyhow::Result<u64> {
    let total = admins.len() as u32;
    let ch = &material.channel;
    let mut last_config = 0;
    for (i, node_admin) in admins.iter().enumerate().skip(1) {
        let name = format!("orderer{}", i + 1);
        let reg = region(i as u32, total);
        event(
            screen,
            &format!(
                "Adding {name} [{reg}]: config update adding its consenter, signed by the {} admin",
                material.orderer_msp_id
            ),
        );
        // The admin's identity, read from its MSP folder as `ordo channel` would.
        let admin = ordo_msp::local::load_signing_identity(
            &material.admin_msp_dir,
            &material.orderer_msp_id,
        )?
        .signer;
        let change = Change {
            channel: ch.clone(),
            edit: ConsenterEdit::Add(material.consenters[i].clone()),
            signers: vec![admin],
            check_quorum: true,
            adds_learners: true,
            probe_timeout: Duration::from_secs(3),
            wait: true,
            timeout: STEP,
        };
        let mut raft_id = 0;
        let mut show = |p: Progress| match &p {
            Progress::Retrying(why) => event(screen, &format!("  {why}; trying again")),
            Progress::Applied { consenters, .. } => {
                raft_id = consenters.last().map_or(0, |(_, id)| *id);
            }
            _ => {}
        };
        let outcome = change_consenters(general, &change, &mut show)
            .await
            .with_context(|| format!("adding {name}"))?;
        let block = outcome
            .config_block
            .context("the change was made without waiting for its config block")?;
        let number = block.header.as_ref().map_or(0, |h| h.number);
        last_config = number;
        join(node_admin, i + 1, &block.encode_to_vec()).await?;
        event(
            screen,
            &format!(
                "  ordered in block {number}; {name} joined the channel with it and follows it"
            ),
        );
        let mut show = |p: Progress| {
            if let Progress::Node {
                state: Some((relation, status)),
                ..
            } = &p
                && relation == "consenter"
                && status == "onboarding"
            {
                event(
                    screen,
                    &format!(
                        "  {name} runs Raft as a learner (Raft ID {raft_id}): catching up, not yet in the quorum"
                    ),
                );
            }
        };
        wait_for_node(node_admin, ch, &outcome.change, STEP, &mut show)
            .await
            .with_context(|| format!("{name} becoming a voting consenter"))?;
        event(
            screen,
            &format!(
                "  {name} is a consenter (Raft ID {raft_id}, promoted to voter) — {} of {total} orderers",
                i + 1
            ),
        );
    }
    Ok(last_config)
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
