//! The registrar: which channels this node runs, and joining and removing them safely (Fabric's
//! `multichannel.Registrar` in channel-participation mode, without a system channel).
//!
//! On disk, per channel: the ledger under `<FileLedger.Location>/chains/<channel>`, the Raft WAL
//! under `<Consensus.WALDir>/<channel>`, snapshots under `<Consensus.SnapDir>/<channel>`; and
//! crash-safety markers under `<FileLedger.Location>/pendingops/` (Fabric's names):
//!
//! - **join**: `<channel>.join` (the join block) is written and fsynced first; then the ledger
//!   gets the genesis block and the WAL its bootstrap state; the marker is removed **before** the
//!   chain starts, so nothing can have been ordered while a marker exists. A restart that finds a
//!   marker wipes whatever the half-done join left and joins again from the marker's block.
//!   That is for a consenter joining with the genesis block. Every other join (a later config
//!   block, or a block whose consenters do not include this node) makes the node a **follower**
//!   (`crate::channel`'s follower) and the marker stays until the node becomes a consenter: a restart
//!   that finds it keeps what was pulled and goes on following towards the join block.
//! - **remove**: `<channel>.remove` is written, the chain is stopped, the ledger, WAL and
//!   snapshots are deleted (Fabric leaves the WAL behind, hyperledger/fabric#4016, so re-joining
//!   breaks there), then the marker goes. A restart that finds a marker finishes the removal.
//!
//! A channel changes relation while running: a follower whose ledger reaches a config block
//! listing this node becomes a consenter, and a consenter removed from the channel becomes a
//! follower ([`Switch`]). The Raft WAL and snapshots record the Raft ID they belong to, and a
//! consenter starts on them only under that ID: a node re-added after its eviction has a new ID
//! and starts from an empty WAL (reusing the old state under the new ID is what makes Fabric
//! loop forever, hyperledger/fabric#3992), while a node that followed for a while under an ID
//! it still holds — its certificate was rotated while it was down, so it did not find itself in
//! its last config at restart — keeps its state: the leader remembers how far that node's log
//! went, and a node back under the same ID with an empty log would be told to commit entries
//! it does not have.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use ordo_config::ChannelConfig;
use ordo_ledger::store::BlockStore;
use ordo_proto::common::Block;
use ordo_raft::wal::RaftWal;
use prost::Message;

use crate::channel::JoinBlock;
use crate::channel::{
    Channel, ChannelError, Ledger, NodeServices, Relation, SelfKey, Switch, config_of_block,
    is_consenter,
};
use ordo_channel::start::{StartPlan, WalFacts, plan};

/// Why a join or removal was refused or failed. The participation API answers the first ones
/// (the request's fault) with 400 and the others with 500.
/// The first pause before a channel halted on a storage error checks its storage again; it
/// doubles up to [`RESUME_MAX_PAUSE`].
const RESUME_FIRST_PAUSE: Duration = Duration::from_millis(500);
const RESUME_MAX_PAUSE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum RegistrarError {
    #[error("channel already exists")]
    AlreadyExists,
    #[error("channel does not exist")]
    NotFound,
    #[error(
        "this node has no server TLS certificate to find itself among the consenters (etcdraft requires TLS)"
    )]
    NoTlsCertificate,
    #[error("the channel's consensus type is not etcdraft")]
    NotEtcdraft,
    #[error("this node is not a consenter of the channel")]
    NotConsenter,
    #[error(
        "following a channel (joining with a config block other than the genesis block, or without being a consenter) needs TLS and the cluster transport"
    )]
    CannotFollow,
    /// The join block is not a usable config block.
    #[error("{0}")]
    BadBlock(#[source] ChannelError),
    #[error("the consenter IDs do not match the consenters")]
    IdsMismatch,
    #[error("channel {0}: the ledger is empty and no join is pending")]
    EmptyLedger(String),
    #[error("join marker {path}: {reason}")]
    BadMarker { path: PathBuf, reason: String },
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{}: {free} bytes free, {needed} needed (two of the channel's largest blocks)",
        path.display()
    )]
    LowOnSpace {
        path: PathBuf,
        free: u64,
        needed: u64,
    },
    #[error(transparent)]
    Channel(#[from] ChannelError),
}

impl RegistrarError {
    /// Whether the request was at fault (HTTP 400) rather than the node (500).
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            RegistrarError::NoTlsCertificate
                | RegistrarError::NotEtcdraft
                | RegistrarError::NotConsenter
                | RegistrarError::CannotFollow
                | RegistrarError::BadBlock(_)
        )
    }
}

fn io_failed(what: &'static str, path: &Path, e: std::io::Error) -> RegistrarError {
    RegistrarError::Io {
        what,
        path: path.to_path_buf(),
        source: e,
    }
}

/// Where a node keeps its channels.
#[derive(Debug, Clone)]
pub struct Dirs {
    pub ledger: PathBuf,
    pub wal: PathBuf,
    pub snap: PathBuf,
}

impl Dirs {
    fn chains(&self) -> PathBuf {
        self.ledger.join("chains")
    }
    fn pending(&self) -> PathBuf {
        self.ledger.join("pendingops")
    }
    fn chain(&self, ch: &str) -> PathBuf {
        self.chains().join(ch)
    }
    fn wal(&self, ch: &str) -> PathBuf {
        self.wal.join(ch)
    }
    fn snap(&self, ch: &str) -> PathBuf {
        self.snap.join(ch)
    }
    fn marker(&self, ch: &str, op: &str) -> PathBuf {
        self.pending().join(format!("{ch}.{op}"))
    }
}

/// The channels of this node.
pub struct Registrar {
    dirs: Dirs,
    /// How this node finds itself among a channel's consenters.
    self_key: SelfKey,
    services: NodeServices,
    channels: RwLock<BTreeMap<String, Arc<Channel>>>,
    /// Serialises joins and removals (they touch the disk).
    ops: tokio::sync::Mutex<()>,
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn remove_dir(path: &Path) -> std::io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn remove_file(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Registrar {
    /// Opens the node's channels: finishes half-done removals and joins, then starts every
    /// channel found in the ledger folder.
    pub fn open(
        dirs: Dirs,
        server_cert_pem: Option<&[u8]>,
        mut services: NodeServices,
    ) -> Result<Arc<Registrar>, RegistrarError> {
        for d in [
            dirs.chains(),
            dirs.pending(),
            dirs.wal.clone(),
            dirs.snap.clone(),
        ] {
            fs::create_dir_all(&d).map_err(|e| io_failed("cannot create", &d, e))?;
        }
        let self_key = SelfKey::new(server_cert_pem.and_then(ordo_config::channel::cert_key));
        let (switch_tx, mut switches) = tokio::sync::mpsc::unbounded_channel();
        services.switch = Some(switch_tx);
        services.self_key = self_key.clone();
        let reg = Arc::new(Registrar {
            self_key,
            dirs,
            services,
            channels: RwLock::new(BTreeMap::new()),
            ops: tokio::sync::Mutex::new(()),
        });
        {
            let weak = Arc::downgrade(&reg);
            tokio::spawn(async move {
                while let Some(s) = switches.recv().await {
                    let Some(reg) = weak.upgrade() else { return };
                    reg.switch(s).await;
                }
            });
        }
        let pending = reg.dirs.pending();
        let mut markers: Vec<PathBuf> = fs::read_dir(&pending)
            .map_err(|e| io_failed("cannot read", &pending, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        markers.sort();
        for m in markers {
            let (Some(ch), Some(op)) = (
                m.file_stem().and_then(|s| s.to_str()).map(str::to_string),
                m.extension().and_then(|s| s.to_str()),
            ) else {
                continue;
            };
            match op {
                "remove" => {
                    tracing::info!(channel = %ch, "finishing an interrupted channel removal");
                    reg.delete_channel_files(&ch)?;
                    remove_file(&m).map_err(|e| io_failed("cannot delete", &m, e))?;
                }
                "join" => {
                    let bytes = fs::read(&m).map_err(|e| io_failed("cannot read", &m, e))?;
                    let block =
                        Block::decode(bytes.as_slice()).map_err(|e| RegistrarError::BadMarker {
                            path: m.clone(),
                            reason: e.to_string(),
                        })?;
                    let channel = if reg.joins_as_consenter(&block)? {
                        tracing::info!(channel = %ch, "redoing an interrupted channel join");
                        reg.delete_channel_files(&ch)?;
                        reg.create(&ch, &block, &m)?
                    } else {
                        tracing::info!(channel = %ch, "resuming to follow a joined channel");
                        let join = JoinBlock::of(&block).map_err(ChannelError::from)?;
                        let ledger = reg.open_ledger(&ch)?;
                        Channel::follow(&ch, ledger, Some(join), reg.services.clone())?
                    };
                    reg.insert(channel);
                }
                // Temporary files of an interrupted marker write.
                _ => remove_file(&m).map_err(|e| io_failed("cannot delete", &m, e))?,
            }
        }
        let chains = reg.dirs.chains();
        let mut names: Vec<String> = fs::read_dir(&chains)
            .map_err(|e| io_failed("cannot read", &chains, e))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        for name in names {
            if reg.get(&name).is_some() {
                continue;
            }
            let channel = reg.restart(&name)?;
            reg.insert(channel);
        }
        Ok(reg)
    }

    fn insert(&self, ch: Arc<Channel>) {
        self.channels
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ch.name.clone(), ch);
    }

    /// A running channel.
    /// The key by which this node finds itself among consenters; the node replaces it when its
    /// server certificate is reloaded.
    pub fn self_key(&self) -> &SelfKey {
        &self.self_key
    }

    pub fn get(&self, name: &str) -> Option<Arc<Channel>> {
        self.channels
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Every running channel, by name.
    pub fn channels(&self) -> Vec<Arc<Channel>> {
        self.channels
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// This node's Raft ID in a channel config: the position of the consenter whose server TLS
    /// certificate has this node's public key, mapped through the consenter IDs.
    fn self_id(&self, cfg: &ChannelConfig, ids: &[u64]) -> Result<u64, RegistrarError> {
        let key = self
            .self_key
            .get()
            .ok_or(RegistrarError::NoTlsCertificate)?;
        let md = cfg.raft().ok_or(RegistrarError::NotEtcdraft)?;
        let pos = md
            .position_of(key.as_slice())
            .ok_or(RegistrarError::NotConsenter)?;
        ids.get(pos).copied().ok_or(RegistrarError::IdsMismatch)
    }

    fn open_ledger(&self, ch: &str) -> Result<Arc<Ledger>, RegistrarError> {
        let store = BlockStore::open(&self.dirs.chain(ch)).map_err(ChannelError::from)?;
        Ok(Arc::new(Ledger::new(store)))
    }

    fn open_wal(&self, ch: &str) -> Result<RaftWal, RegistrarError> {
        Ok(RaftWal::open(&self.dirs.wal(ch), &self.dirs.snap(ch)).map_err(ChannelError::from)?)
    }

    fn open_parts(&self, ch: &str) -> Result<(Arc<Ledger>, RaftWal), RegistrarError> {
        Ok((self.open_ledger(ch)?, self.open_wal(ch)?))
    }

    /// Whether joining with `block` starts the Raft chain at once (the genesis block, listing
    /// this node as a consenter) rather than following first.
    fn joins_as_consenter(&self, block: &Block) -> Result<bool, RegistrarError> {
        let number = block.header.as_ref().map_or(0, |h| h.number);
        let cfg = config_of_block(block).map_err(RegistrarError::BadBlock)?;
        Ok(number == 0 && is_consenter(&cfg, &self.self_key))
    }

    fn restart(&self, ch: &str) -> Result<Arc<Channel>, RegistrarError> {
        let ledger = self.open_ledger(ch)?;
        if ledger.height() == 0 {
            return Err(RegistrarError::EmptyLedger(ch.to_string()));
        }
        // A WAL from before Raft IDs were recorded belongs to this node's current ID: nothing
        // else could have written it on a restart.
        self.start_planned(ch, ledger, true)
    }

    /// What the channel's Raft WAL holds, for the start plan.
    fn wal_facts(&self, ch: &str) -> Result<WalFacts, RegistrarError> {
        let wal = self.open_wal(ch)?;
        Ok(WalFacts {
            fresh: wal.is_fresh().map_err(ChannelError::from)?,
            owner: wal.node_id(),
            voters: wal.conf_state().map_err(ChannelError::from)?.voters,
        })
    }

    /// Starts a channel whose ledger holds blocks (a restart, or a follower whose ledger reached
    /// a config block listing this node) as `ordo_channel::start::plan` says: following it, or
    /// running its Raft chain under the ID the plan gives, on the WAL on disk or an empty one.
    fn start_planned(
        &self,
        ch: &str,
        ledger: Arc<Ledger>,
        keep_unowned: bool,
    ) -> Result<Arc<Channel>, RegistrarError> {
        let (cfg, _) = crate::channel::config_at_tip(&ledger)?;
        let height = ledger.height();
        let tip = ledger.block(height - 1).map_err(ChannelError::from)?;
        let last = ordo_channel::consenter::last_block_of(&tip, height, &cfg)
            .map_err(ChannelError::from)?;
        let facts = self.wal_facts(ch)?;
        let key = self.self_key.get();
        let ids = &last.metadata.consenter_ids;
        match plan(
            &cfg,
            ids,
            key.as_deref().map(Vec::as_slice),
            &facts,
            keep_unowned,
        ) {
            StartPlan::Follow => {
                tracing::info!(channel = %ch, "this node is not a consenter of the channel's last config: following it");
                Ok(Channel::follow(ch, ledger, None, self.services.clone())?)
            }
            StartPlan::Consent { id, wipe_wal } => {
                if !is_consenter(&cfg, &self.self_key) {
                    tracing::info!(channel = %ch, raft_id = id, "the channel's last config removed this node, but its Raft group has not yet, and the other voter needs it for a quorum: taking part until the removal is applied");
                }
                // A WAL wiped below must not take with it the only copy of unsynced blocks.
                ledger.sync().map_err(ChannelError::from)?;
                if wipe_wal {
                    tracing::info!(channel = %ch, raft_id = id, wal_raft_id = ?facts.owner, "the Raft WAL belongs to another Raft ID of this node: starting from an empty one");
                    for d in [self.dirs.wal(ch), self.dirs.snap(ch)] {
                        remove_dir(&d).map_err(|e| io_failed("cannot delete", &d, e))?;
                    }
                }
                let wal = self.open_wal(ch)?;
                Ok(Channel::start(ch, id, ledger, wal, self.services.clone())?)
            }
        }
    }

    /// Creates a channel from its genesis block (the join marker is at `marker` and is removed
    /// once the ledger and WAL are initialised) and starts it.
    fn create(
        &self,
        ch: &str,
        block: &Block,
        marker: &Path,
    ) -> Result<Arc<Channel>, RegistrarError> {
        let cfg = config_of_block(block)?;
        let n = cfg.raft().map_or(0, |r| r.consenters().len() as u64);
        let ids: Vec<u64> = (1..=n).collect();
        let id = self.self_id(&cfg, &ids)?;
        let (ledger, wal) = self.open_parts(ch)?;
        if ledger.height() == 0 {
            ledger.append(block).map_err(ChannelError::from)?;
        }
        let channel = Channel::start(ch, id, ledger, wal, self.services.clone())?;
        remove_file(marker).map_err(|e| io_failed("cannot delete", marker, e))?;
        Ok(channel)
    }

    fn delete_channel_files(&self, ch: &str) -> Result<(), RegistrarError> {
        for d in [self.dirs.chain(ch), self.dirs.wal(ch), self.dirs.snap(ch)] {
            remove_dir(&d).map_err(|e| io_failed("cannot delete", &d, e))?;
        }
        Ok(())
    }

    /// Joins a channel from a config block (already checked to be a config block of `ch`): as a
    /// consenter from the genesis block, otherwise as a follower.
    pub async fn join(
        &self,
        ch: &str,
        block: Block,
        bytes: Bytes,
    ) -> Result<Arc<Channel>, RegistrarError> {
        let _op = self.ops.lock().await;
        if self.get(ch).is_some() {
            return Err(RegistrarError::AlreadyExists);
        }
        if !self.joins_as_consenter(&block)? {
            return self.join_as_follower(ch, &block, &bytes);
        }
        // Refuse before touching the disk what would fail anyway.
        let cfg = config_of_block(&block).map_err(RegistrarError::BadBlock)?;
        let n = cfg.raft().map_or(0, |r| r.consenters().len() as u64);
        self.self_id(&cfg, &(1..=n).collect::<Vec<_>>())?;
        self.delete_channel_files(ch)?;
        let marker = self.dirs.marker(ch, "join");
        write_synced(&marker, &bytes).map_err(|e| io_failed("cannot write", &marker, e))?;
        match self.create(ch, &block, &marker) {
            Ok(channel) => {
                self.insert(channel.clone());
                // The node trusts the new channel's TLS CAs from now on.
                (self.services.on_config)();
                Ok(channel)
            }
            Err(e) => {
                // Roll back what the failed join left.
                let _ = self.delete_channel_files(ch);
                let _ = remove_file(&marker);
                Err(e)
            }
        }
    }

    fn join_as_follower(
        &self,
        ch: &str,
        block: &Block,
        bytes: &[u8],
    ) -> Result<Arc<Channel>, RegistrarError> {
        if self.services.comm.is_none() {
            return Err(RegistrarError::CannotFollow);
        }
        let join = JoinBlock::of(block).map_err(|e| RegistrarError::BadBlock(e.into()))?;
        self.delete_channel_files(ch)?;
        let marker = self.dirs.marker(ch, "join");
        write_synced(&marker, bytes).map_err(|e| io_failed("cannot write", &marker, e))?;
        let started = self.open_ledger(ch).and_then(|ledger| {
            Ok(Channel::follow(
                ch,
                ledger,
                Some(join),
                self.services.clone(),
            )?)
        });
        match started {
            Ok(channel) => {
                self.insert(channel.clone());
                (self.services.on_config)();
                Ok(channel)
            }
            Err(e) => {
                let _ = self.delete_channel_files(ch);
                let _ = remove_file(&marker);
                Err(e)
            }
        }
    }

    /// Carries out a channel's change of relation (see the module doc). A failure leaves the
    /// channel stopped and reported as failed.
    async fn switch(self: &Arc<Self>, s: Switch) {
        let (ch, to_consenter, until) = match s {
            Switch::ToConsenter(ch) => (ch, true, None),
            Switch::ToFollower { channel, until } => (channel, false, until),
            Switch::Resume(ch) => {
                tokio::spawn(resume_when_writable(Arc::downgrade(self), ch));
                return;
            }
        };
        let _op = self.ops.lock().await;
        let Some(old) = self.get(&ch) else {
            return;
        };
        let is_follower = matches!(old.state().relation, Relation::Follower { .. });
        if is_follower != to_consenter {
            return;
        }
        old.stop().await;
        let ledger = old.ledger().clone();
        // The WAL stays as it is: `start_planned` keeps it if it is this node's state under
        // the Raft ID it gets, and wipes it otherwise (see the module doc).
        let started: Result<Arc<Channel>, RegistrarError> = (|| {
            if to_consenter {
                let channel = self.start_planned(&ch, ledger, false)?;
                let marker = self.dirs.marker(&ch, "join");
                remove_file(&marker).map_err(|e| io_failed("cannot delete", &marker, e))?;
                Ok(channel)
            } else {
                let until = until
                    .map(|b| JoinBlock::of(&b))
                    .transpose()
                    .map_err(ChannelError::from)?;
                Ok(Channel::follow(&ch, ledger, until, self.services.clone())?)
            }
        })();
        match started {
            Ok(channel) => {
                tracing::info!(channel = %ch, relation = if to_consenter { "consenter" } else { "follower" }, raft_id = channel.raft_id(), "channel relation changed");
                self.insert(channel);
                (self.services.on_config)();
            }
            Err(e) => {
                tracing::error!(channel = %ch, error = %e, "channel relation change failed");
                self.services.metrics.participation(&ch, 3, 0);
            }
        }
    }

    /// Whether a channel's ledger and WAL folders take writes again: room for two of the
    /// channel's largest blocks on each file system (a disk that has only just stopped being
    /// full would halt the channel again at its next block), and a small file can be created,
    /// synced and removed in each.
    fn storage_writable(&self, ch: &str) -> Result<(), RegistrarError> {
        let needed = self.get(ch).map_or(0, |c| {
            c.config()
                .orderer
                .as_ref()
                .map_or(0, |o| 2 * u64::from(o.batch_size.absolute_max_bytes))
        });
        for dir in [self.dirs.chain(ch), self.dirs.wal(ch)] {
            let st = rustix::fs::statvfs(&dir)
                .map_err(|e| io_failed("cannot measure the free space of", &dir, e.into()))?;
            let free = st.f_bavail.saturating_mul(st.f_frsize);
            if free < needed {
                return Err(RegistrarError::LowOnSpace {
                    path: dir,
                    free,
                    needed,
                });
            }
            let probe = dir.join(".writable");
            write_synced(&probe, b"ok")
                .and_then(|()| fs::remove_file(&probe))
                .map_err(|e| io_failed("cannot write in", &dir, e))?;
        }
        Ok(())
    }

    /// Starts a channel that halted on a storage error again from what is on disk, as a node
    /// restart would (the block store repairs a torn last record; the start plan decides on the
    /// WAL); a follower still onboarding resumes with its join block. Returns whether the
    /// channel was (still) halted.
    async fn resume(&self, ch: &str) -> Result<bool, RegistrarError> {
        let _op = self.ops.lock().await;
        let Some(old) = self.get(ch) else {
            return Ok(false);
        };
        if old.state().halted.is_none() {
            return Ok(false);
        }
        old.stop().await;
        let marker = self.dirs.marker(ch, "join");
        let channel = match fs::read(&marker) {
            Ok(bytes) => {
                let block =
                    Block::decode(bytes.as_slice()).map_err(|e| RegistrarError::BadMarker {
                        path: marker.clone(),
                        reason: e.to_string(),
                    })?;
                let join = JoinBlock::of(&block).map_err(ChannelError::from)?;
                let ledger = self.open_ledger(ch)?;
                Channel::follow(ch, ledger, Some(join), self.services.clone())?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.restart(ch)?,
            Err(e) => return Err(io_failed("cannot read", &marker, e)),
        };
        tracing::info!(channel = %ch, height = channel.ledger().height(), "channel resumed: its storage takes writes again");
        self.insert(channel);
        (self.services.on_config)();
        Ok(true)
    }

    /// Removes a channel: stops it and deletes its ledger, WAL and snapshots.
    pub async fn remove(&self, ch: &str) -> Result<(), RegistrarError> {
        let _op = self.ops.lock().await;
        let Some(channel) = self.get(ch) else {
            return Err(RegistrarError::NotFound);
        };
        let marker = self.dirs.marker(ch, "remove");
        write_synced(&marker, b"").map_err(|e| io_failed("cannot write", &marker, e))?;
        channel.stop().await;
        self.channels
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(ch);
        self.services.metrics.channel_removed(ch);
        self.delete_channel_files(ch)?;
        let join = self.dirs.marker(ch, "join");
        remove_file(&join).map_err(|e| io_failed("cannot delete", &join, e))?;
        remove_file(&marker).map_err(|e| io_failed("cannot delete", &marker, e))?;
        (self.services.on_config)();
        tracing::info!(channel = %ch, "channel removed");
        Ok(())
    }

    /// Whether the ledger folder can be written (a small file is created, synced and removed).
    pub fn probe_ledger(&self) -> Result<(), RegistrarError> {
        let probe = self.dirs.pending().join(".healthz");
        write_synced(&probe, b"ok")
            .and_then(|()| fs::remove_file(&probe))
            .map_err(|e| io_failed("cannot write in", &self.dirs.ledger, e))
    }

    /// The node is stopping: every channel stops taking envelopes, and each one this node leads
    /// hands leadership to another consenter ([`Channel::hand_off`]). Waits until every such
    /// channel follows a new leader (or halted), at most `limit`.
    pub async fn hand_off_leadership(&self, limit: std::time::Duration) {
        let mut led = Vec::new();
        for ch in self.channels() {
            let status = ch.state().status;
            ch.hand_off();
            if status.is_leader && status.cluster_size > 1 {
                led.push(ch.watch_state());
            }
        }
        let handed = async {
            for w in &mut led {
                let _ = w
                    .wait_for(|s| {
                        s.halted.is_some() || (!s.status.is_leader && s.status.leader != 0)
                    })
                    .await;
            }
        };
        if tokio::time::timeout(limit, handed).await.is_err() {
            tracing::warn!(limit = ?limit, "stopping: leadership was not handed over in time");
        }
    }

    /// Stops every channel (node shutdown).
    pub async fn stop_all(&self) {
        for ch in self.channels() {
            ch.stop().await;
        }
    }
}

/// Waits until the storage of channel `ch`, halted on a storage error, takes writes again, then
/// resumes it; gives up when the channel is gone, running again, or the registrar dropped.
async fn resume_when_writable(registrar: Weak<Registrar>, ch: String) {
    let mut pause = RESUME_FIRST_PAUSE;
    let mut last_refusal = None;
    loop {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RESUME_MAX_PAUSE);
        let Some(reg) = registrar.upgrade() else {
            return;
        };
        match reg.get(&ch) {
            Some(c) if c.state().halted.is_some() => {}
            _ => return,
        }
        let tried = match reg.storage_writable(&ch) {
            Ok(()) => reg.resume(&ch).await.map(|_| ()),
            Err(e) => Err(e),
        };
        match tried {
            Ok(()) => return,
            Err(e) => {
                // Said once per distinct reason: a disk that stays full is not news every few
                // seconds.
                let text = e.to_string();
                if last_refusal.as_ref() != Some(&text) {
                    tracing::warn!(channel = %ch, error = %text, "the halted channel cannot resume yet; trying again");
                    last_refusal = Some(text);
                }
            }
        }
    }
}
