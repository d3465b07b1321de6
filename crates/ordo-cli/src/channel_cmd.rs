//! `ordo channel ...`: osnadmin's `join`, `list` and `remove` against an orderer's admin
//! endpoint (same flags, same output), and the consenter changes operators otherwise script by
//! hand (`add-consenter`, `remove-consenter`, `rotate-cert`), made through ordo-admin.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use ordo_admin::consenters::{Change, Progress, change_consenters, wait_for_node};
use ordo_admin::endpoint::{Endpoint, TlsFiles, split_host_port};
use ordo_admin::participation;
use ordo_config::consenters::ConsenterEdit;
use ordo_proto::Message;

#[derive(Subcommand)]
pub enum ChannelCommand {
    /// Join an orderer to a channel with a config block (osnadmin channel join).
    Join {
        #[command(flatten)]
        admin: AdminArgs,
        /// Channel ID (checked against the block's).
        #[arg(short = 'c', long = "channelID")]
        channel: String,
        /// The config block to join with (a genesis block, or a later config block to follow
        /// the channel first).
        #[arg(short = 'b', long = "config-block")]
        config_block: PathBuf,
    },
    /// List an orderer's channels, or show one (osnadmin channel list).
    List {
        #[command(flatten)]
        admin: AdminArgs,
        /// Show only this channel.
        #[arg(short = 'c', long = "channelID")]
        channel: Option<String>,
    },
    /// Remove an orderer from a channel (osnadmin channel remove).
    Remove {
        #[command(flatten)]
        admin: AdminArgs,
        /// Channel ID.
        #[arg(short = 'c', long = "channelID")]
        channel: String,
    },
    /// Add a consenter to a channel by config update, and wait until a config block carries it.
    AddConsenter {
        #[command(flatten)]
        update: UpdateArgs,
        /// The new consenter's cluster endpoint.
        #[arg(long, value_name = "HOST:PORT")]
        consenter: String,
        /// Its TLS client certificate (PEM).
        #[arg(long)]
        client_tls_cert: PathBuf,
        /// Its TLS server certificate (PEM).
        #[arg(long)]
        server_tls_cert: PathBuf,
        /// Write the config block that adds it here: the new node joins the channel with it
        /// (`ordo channel join -b`).
        #[arg(long, value_name = "FILE", conflicts_with = "no_wait")]
        output_block: Option<PathBuf>,
    },
    /// Remove a consenter from a channel by config update (it then follows the channel).
    RemoveConsenter {
        #[command(flatten)]
        update: UpdateArgs,
        /// The consenter's cluster endpoint, as the channel config names it.
        #[arg(long, value_name = "HOST:PORT")]
        consenter: String,
    },
    /// Replace a consenter's TLS certificates in the channel config (it keeps its Raft ID);
    /// the node must then present the new certificate.
    RotateCert {
        #[command(flatten)]
        update: UpdateArgs,
        /// The consenter's cluster endpoint, as the channel config names it.
        #[arg(long, value_name = "HOST:PORT")]
        consenter: String,
        /// The new TLS client certificate (PEM).
        #[arg(long)]
        client_tls_cert: PathBuf,
        /// The new TLS server certificate (PEM).
        #[arg(long)]
        server_tls_cert: PathBuf,
    },
}

/// osnadmin's connection flags for an orderer's admin endpoint.
#[derive(Args)]
pub struct AdminArgs {
    /// Admin endpoint of the orderer.
    #[arg(short = 'o', long = "orderer-address", value_name = "HOST:PORT")]
    orderer: String,
    /// CA of the admin endpoint's TLS certificate (PEM); without it, plain HTTP.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Client certificate for mutual TLS (PEM).
    #[arg(long, requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// Client key for mutual TLS (PEM).
    #[arg(long, requires = "client_cert")]
    client_key: Option<PathBuf>,
    /// Do not print the status line.
    #[arg(long)]
    no_status: bool,
}

/// What every consenter change needs.
#[derive(Args)]
pub struct UpdateArgs {
    /// The orderer's general (gRPC) endpoint: Deliver and Broadcast go there.
    #[arg(short = 'o', long = "orderer-address", value_name = "HOST:PORT")]
    orderer: String,
    /// Channel ID.
    #[arg(short = 'c', long = "channelID")]
    channel: String,
    /// CA of the orderer's TLS certificate (PEM); without it, plain TCP.
    #[arg(long)]
    tls_ca_file: Option<PathBuf>,
    /// Client certificate, when the orderer requires mutual TLS (PEM).
    #[arg(long, requires = "tls_client_key")]
    tls_client_cert: Option<PathBuf>,
    /// Key of that client certificate (PEM).
    #[arg(long, requires = "tls_client_cert")]
    tls_client_key: Option<PathBuf>,
    /// An admin's MSP folder and MSP ID; repeat for each admin whose signature the update
    /// needs. The first also signs the envelope and the Deliver requests.
    #[arg(long, value_name = "DIR:MSPID", required = true)]
    admin_msp: Vec<String>,
    /// Submit even if the consenters this machine can reach would not be a quorum after the
    /// change (the orderer still applies its own check).
    #[arg(long)]
    skip_quorum_check: bool,
    /// The orderers run with `Consensus.FabricMembershipChanges: true` (or are Fabric's): an
    /// added consenter is a Raft voter at once, so an addition is checked for quorum loss as
    /// Fabric does. By default Ordo adds it as a learner, which changes no quorum.
    #[arg(long)]
    fabric_membership_changes: bool,
    /// Return once the update is accepted, without waiting for the config block.
    #[arg(long)]
    no_wait: bool,
    /// Time limit for the whole operation (Go duration: 60s, 2m, ...).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
    /// Also wait until this node's participation API shows the change (the affected node's
    /// admin endpoint: consenter and active after add/rotate — an added node once it has
    /// joined with the config block — and no longer a consenter after remove).
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "no_wait")]
    wait_node_admin: Option<String>,
    /// CA of that admin endpoint's TLS certificate (PEM).
    #[arg(long, requires = "wait_node_admin")]
    admin_ca_file: Option<PathBuf>,
    /// Client certificate for that admin endpoint (PEM).
    #[arg(long, requires = "admin_client_key")]
    admin_client_cert: Option<PathBuf>,
    /// Key of that client certificate (PEM).
    #[arg(long, requires = "admin_client_cert")]
    admin_client_key: Option<PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let ns = ordo_config::duration::parse_go_duration(s).map_err(|e| e.to_string())?;
    if ns <= 0 {
        return Err(format!("{s:?} is not a positive duration"));
    }
    Ok(Duration::from_nanos(ns as u64))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn run(cmd: ChannelCommand) -> Result<()> {
    match cmd {
        ChannelCommand::Join {
            admin,
            channel,
            config_block,
        } => {
            let block = read(&config_block)?;
            // osnadmin checks that the block is for the channel named before sending it.
            let decoded = ordo_proto::common::Block::decode(block.as_slice())
                .with_context(|| format!("{} is not a block", config_block.display()))?;
            let named = channel_of(&decoded)
                .with_context(|| format!("{} carries no channel header", config_block.display()))?;
            if named != channel {
                bail!(
                    "specified --channelID {channel} does not match channel ID {named} in config block"
                );
            }
            participation_call(
                &admin,
                |e| async move { participation::join(&e, &block).await },
            )
        }
        ChannelCommand::List { admin, channel } => participation_call(&admin, |e| async move {
            participation::list(&e, channel.as_deref()).await
        }),
        ChannelCommand::Remove { admin, channel } => participation_call(&admin, |e| async move {
            participation::remove(&e, &channel).await
        }),
        ChannelCommand::AddConsenter {
            update,
            consenter,
            client_tls_cert,
            server_tls_cert,
            output_block,
        } => {
            let (host, port) = split_host_port(&consenter)?;
            let edit = ConsenterEdit::Add(ordo_proto::etcdraft::Consenter {
                host,
                port: u32::from(port),
                client_tls_cert: read(&client_tls_cert)?.into(),
                server_tls_cert: read(&server_tls_cert)?.into(),
            });
            consenter_change(update, edit, output_block)
        }
        ChannelCommand::RemoveConsenter { update, consenter } => {
            let (host, port) = split_host_port(&consenter)?;
            let edit = ConsenterEdit::Remove {
                host,
                port: u32::from(port),
            };
            consenter_change(update, edit, None)
        }
        ChannelCommand::RotateCert {
            update,
            consenter,
            client_tls_cert,
            server_tls_cert,
        } => {
            let (host, port) = split_host_port(&consenter)?;
            let edit = ConsenterEdit::Rotate {
                host,
                port: u32::from(port),
                client_tls_cert: read(&client_tls_cert)?.into(),
                server_tls_cert: read(&server_tls_cert)?.into(),
            };
            consenter_change(update, edit, None)
        }
    }
}

/// The channel ID in a block's first envelope's header.
fn channel_of(block: &ordo_proto::common::Block) -> Option<String> {
    let raw = block.data.as_ref()?.data.first()?;
    let env = ordo_proto::common::Envelope::decode(raw.clone()).ok()?;
    let parsed = ordo_config::envelope::parse(&env).ok()?;
    Some(parsed.channel_header.channel_id)
}

/// One participation API call, printed as osnadmin prints it; an HTTP error status fails the
/// command (osnadmin itself exits 0 there, which scripts cannot tell from success).
fn participation_call<F, Fut>(args: &AdminArgs, call: F) -> Result<()>
where
    F: FnOnce(Endpoint) -> Fut,
    Fut: std::future::Future<Output = Result<ordo_client::HttpResponse, ordo_admin::AdminError>>,
{
    let files = TlsFiles {
        ca: args.ca_file.clone(),
        client_cert: args.client_cert.clone(),
        client_key: args.client_key.clone(),
    };
    let endpoint = Endpoint::new(&args.orderer, &files, &[b"http/1.1"])?;
    let response = runtime()?
        .block_on(call(endpoint))
        .with_context(|| format!("calling the participation API of {}", args.orderer))?;
    print!(
        "{}",
        participation::osnadmin_output(response.status, &response.body, !args.no_status)
    );
    if !(200..300).contains(&response.status) {
        bail!("the orderer answered HTTP {}", response.status);
    }
    Ok(())
}

/// Writes `bytes` to `path` through a file beside it renamed into place, so that whoever waits
/// for the file (a script joining the new node) never reads half of it.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".part");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Makes one consenter change; writes the config block that carries it to `output_block`, then
/// waits for the affected node when asked.
fn consenter_change(
    args: UpdateArgs,
    edit: ConsenterEdit,
    output_block: Option<PathBuf>,
) -> Result<()> {
    let start = std::time::Instant::now();
    let mut signers = Vec::new();
    for spec in &args.admin_msp {
        let (dir, id) = spec
            .rsplit_once(':')
            .filter(|(d, i)| !d.is_empty() && !i.is_empty())
            .with_context(|| format!("--admin-msp {spec:?} is not DIR:MSPID"))?;
        let local = ordo_msp::local::load_signing_identity(Path::new(dir), id)
            .with_context(|| format!("loading the admin MSP folder {dir}"))?;
        signers.push(local.signer);
    }
    let orderer = Endpoint::new(
        &args.orderer,
        &TlsFiles {
            ca: args.tls_ca_file.clone(),
            client_cert: args.tls_client_cert.clone(),
            client_key: args.tls_client_key.clone(),
        },
        &[b"h2"],
    )?;
    let node_admin = match &args.wait_node_admin {
        Some(addr) => Some(Endpoint::new(
            addr,
            &TlsFiles {
                ca: args.admin_ca_file.clone(),
                client_cert: args.admin_client_cert.clone(),
                client_key: args.admin_client_key.clone(),
            },
            &[b"http/1.1"],
        )?),
        None => None,
    };
    let change = Change {
        channel: args.channel.clone(),
        edit,
        signers,
        check_quorum: !args.skip_quorum_check,
        adds_learners: !args.fabric_membership_changes,
        probe_timeout: Duration::from_secs(3),
        wait: !args.no_wait,
        timeout: args.timeout,
    };
    println!(
        "channel {}: {} via {}",
        args.channel,
        match &change.edit {
            ConsenterEdit::Add(_) => "add-consenter",
            ConsenterEdit::Remove { .. } => "remove-consenter",
            ConsenterEdit::Rotate { .. } => "rotate-cert",
        },
        args.orderer
    );
    let rt = runtime()?;
    let mut show = |p: Progress| println!("{p}");
    let outcome = rt.block_on(change_consenters(&orderer, &change, &mut show))?;
    if !change.wait {
        println!("not waiting for the config block (--no-wait)");
        return Ok(());
    }
    if let (Some(path), Some(block)) = (output_block, &outcome.config_block) {
        write_atomically(&path, &block.encode_to_vec())?;
        println!("config block written to {}", path.display());
    }
    if let Some(admin) = &node_admin {
        // What is left of --timeout.
        let left = args.timeout.saturating_sub(start.elapsed());
        rt.block_on(wait_for_node(
            admin,
            &args.channel,
            &outcome.change,
            left,
            &mut show,
        ))?;
    }
    println!("done");
    Ok(())
}
