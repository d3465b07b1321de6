//! Durable Raft state of one channel: the log, hard state and membership in a raft-engine
//! instance under `<WALDir>/<channel>`, and snapshots as files under `<SnapDir>/<channel>` (the
//! layout Fabric uses for its etcd WAL and snapshots, so an operator finds them where expected).
//!
//! The newest snapshot is also kept in the engine: snapshot files are where Fabric's operators
//! expect them, but a node whose snapshot folder is lost or damaged still restarts (its log
//! before the snapshot is gone, so without the snapshot it could not).
//!
//! This is the I/O half that the pure core ([`crate::chain`]) never touches: the driver hands
//! each [`crate::chain::Persist`] to [`RaftWal::persist`], which returns only after the write is
//! fsynced — Raft must not send a vote or an append acknowledgement for state that a crash could
//! lose. One engine per channel (rather than one shared multi-group engine) keeps removal simple
//! and complete: removing a channel deletes both folders, which Fabric forgets to do for the WAL
//! (hyperledger/fabric#4016).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft_engine::{Config, Engine, LogBatch, MessageExt, ReadableSize};

use crate::chain::Persist;
use crate::storage::Recovered;

/// A failure of the Raft storage. The chain cannot go on after one: it stops, as Fabric's
/// chain panics, and the node reports the channel as failed.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("raft WAL {dir}: {source}")]
    Engine {
        dir: PathBuf,
        #[source]
        source: raft_engine::Error,
    },
    #[error("raft snapshot {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("raft snapshot {path}: not a snapshot: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// The engine's only Raft group: one engine per channel.
const GROUP: u64 = 1;
const KEY_HARD_STATE: &[u8] = b"hard_state";
const KEY_CONF_STATE: &[u8] = b"conf_state";
/// The newest snapshot (metadata and data), besides its file.
const KEY_SNAPSHOT: &[u8] = b"snapshot";
/// The Raft ID the state belongs to (8 bytes, big-endian).
const KEY_NODE_ID: &[u8] = b"node_id";
/// Snapshot files kept besides the newest, in case the newest cannot be read.
const SNAPSHOTS_KEPT: usize = 2;

struct EntryExt;

impl MessageExt for EntryExt {
    type Entry = Entry;

    fn index(e: &Entry) -> u64 {
        e.index
    }
}

/// The durable Raft state of one channel; see the module doc.
pub struct RaftWal {
    /// Shared with the [`WalEntries`] reader the in-memory log reads released entries from.
    engine: std::sync::Arc<Engine>,
    wal_dir: PathBuf,
    snap_dir: PathBuf,
}

impl std::fmt::Debug for RaftWal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftWal")
            .field("wal_dir", &self.wal_dir)
            .field("snap_dir", &self.snap_dir)
            .finish()
    }
}

/// Reads persisted entries back for the in-memory log (see [`crate::storage::ColdEntries`]).
pub struct WalEntries {
    engine: std::sync::Arc<Engine>,
}

impl std::fmt::Debug for WalEntries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WalEntries")
    }
}

impl crate::storage::ColdEntries for WalEntries {
    fn fetch(
        &self,
        low: u64,
        high: u64,
        max_size: Option<u64>,
        out: &mut Vec<Entry>,
    ) -> Result<(), crate::storage::ColdError> {
        self.engine
            .fetch_entries_to::<EntryExt>(GROUP, low, high, max_size.map(|m| m as usize), out)
            .map(|_| ())
            .map_err(|e| e.into())
    }
}

impl RaftWal {
    /// A reader of this WAL's entries for the in-memory log.
    pub fn entries_reader(&self) -> std::sync::Arc<WalEntries> {
        std::sync::Arc::new(WalEntries {
            engine: self.engine.clone(),
        })
    }

    /// Opens (creating if needed) the WAL and snapshot folders of one channel. A torn tail left
    /// by a crash is discarded by raft-engine's recovery; everything before it was fsynced.
    pub fn open(wal_dir: &Path, snap_dir: &Path) -> Result<RaftWal, WalError> {
        for d in [wal_dir, snap_dir] {
            fs::create_dir_all(d).map_err(|source| WalError::Io {
                path: d.to_path_buf(),
                source,
            })?;
        }
        let cfg = Config {
            dir: wal_dir.to_string_lossy().into_owned(),
            // Small files so that compaction after a snapshot frees space soon; a channel's
            // log between snapshots is SnapshotIntervalSize (16 MB by default).
            target_file_size: ReadableSize::mb(8),
            purge_threshold: ReadableSize::mb(32),
            ..Config::default()
        };
        let engine = Engine::open(cfg).map_err(|source| WalError::Engine {
            dir: wal_dir.to_path_buf(),
            source,
        })?;
        Ok(RaftWal {
            engine: std::sync::Arc::new(engine),
            wal_dir: wal_dir.to_path_buf(),
            snap_dir: snap_dir.to_path_buf(),
        })
    }

    fn engine_err(&self, source: raft_engine::Error) -> WalError {
        WalError::Engine {
            dir: self.wal_dir.clone(),
            source,
        }
    }

    /// Whether nothing was ever persisted here (a channel starting for the first time).
    pub fn is_fresh(&self) -> Result<bool, WalError> {
        let hs = self.engine.get(GROUP, KEY_HARD_STATE);
        Ok(hs.is_none() && self.engine.last_index(GROUP).is_none() && self.snapshots()?.is_empty())
    }

    /// The Raft ID this state was recorded under ([`RaftWal::set_node_id`]); `None` for a
    /// fresh WAL or one written before the ID was recorded.
    pub fn node_id(&self) -> Option<u64> {
        let raw = self.engine.get(GROUP, KEY_NODE_ID)?;
        Some(u64::from_be_bytes(raw.as_slice().try_into().ok()?))
    }

    /// The Raft membership as last persisted (the conf state, or the newest snapshot's when
    /// none was written after it); empty for a fresh WAL.
    pub fn conf_state(&self) -> Result<ConfState, WalError> {
        let cs = self
            .engine
            .get_message::<ConfState>(GROUP, KEY_CONF_STATE)
            .map_err(|e| self.engine_err(e))?
            .unwrap_or_default();
        if cs != ConfState::default() {
            return Ok(cs);
        }
        Ok(self
            .newest_snapshot()?
            .map(|s| s.get_metadata().get_conf_state().clone())
            .unwrap_or_default())
    }

    /// Records (fsynced) the Raft ID the state belongs to. A node's state is only good under
    /// the ID it was made with: who owns a WAL decides whether it may be reused when the node
    /// becomes a consenter again (same ID: a certificate rotation) or must go (new ID: the node
    /// was removed and added back).
    pub fn set_node_id(&mut self, id: u64) -> Result<(), WalError> {
        if self.node_id() == Some(id) {
            return Ok(());
        }
        let mut batch = LogBatch::default();
        batch
            .put(GROUP, KEY_NODE_ID.to_vec(), id.to_be_bytes().to_vec())
            .map_err(|e| self.engine_err(e))?;
        self.engine
            .write(&mut batch, true)
            .map_err(|e| self.engine_err(e))?;
        Ok(())
    }

    /// Reads back everything persisted, for a restart.
    pub fn recover(&self) -> Result<Recovered, WalError> {
        let hard_state = self
            .engine
            .get_message::<HardState>(GROUP, KEY_HARD_STATE)
            .map_err(|e| self.engine_err(e))?
            .unwrap_or_default();
        let conf_state = self
            .engine
            .get_message::<ConfState>(GROUP, KEY_CONF_STATE)
            .map_err(|e| self.engine_err(e))?
            .unwrap_or_default();
        let snapshot = self.newest_snapshot()?;
        let mut entries = Vec::new();
        if let (Some(first), Some(last)) = (
            self.engine.first_index(GROUP),
            self.engine.last_index(GROUP),
        ) {
            self.engine
                .fetch_entries_to::<EntryExt>(GROUP, first, last + 1, None, &mut entries)
                .map_err(|e| self.engine_err(e))?;
        }
        Ok(Recovered {
            hard_state,
            conf_state,
            snapshot,
            entries,
        })
    }

    /// Makes one batch of Raft state durable (fsync before returning). A received snapshot is
    /// written first, so a crash leaves either the old state or the snapshot, never entries that
    /// refer to a snapshot that is not there; then the log up to it is dropped, before entries
    /// after it are appended (raft-engine refuses — panics on — an append that leaves a hole
    /// after the entries it still holds).
    pub fn persist(&mut self, p: &Persist) -> Result<(), WalError> {
        if let Some(snap) = &p.snapshot {
            self.store_snapshot(snap)?;
            self.compact(snap.get_metadata().index)?;
        }
        let mut batch = LogBatch::default();
        if !p.entries.is_empty() {
            batch
                .add_entries::<EntryExt>(GROUP, &p.entries)
                .map_err(|e| self.engine_err(e))?;
        }
        if let Some(hs) = &p.hard_state {
            batch
                .put_message(GROUP, KEY_HARD_STATE.to_vec(), hs)
                .map_err(|e| self.engine_err(e))?;
        }
        if let Some(cs) = &p.conf_state {
            batch
                .put_message(GROUP, KEY_CONF_STATE.to_vec(), cs)
                .map_err(|e| self.engine_err(e))?;
        }
        if !batch.is_empty() {
            self.engine
                .write(&mut batch, true)
                .map_err(|e| self.engine_err(e))?;
        }
        Ok(())
    }

    /// Stores a snapshot the core took, then drops the log up to `compact_to` (inclusive).
    pub fn save_snapshot(&mut self, snap: &Snapshot, compact_to: u64) -> Result<(), WalError> {
        self.store_snapshot(snap)?;
        self.compact(compact_to)
    }

    /// Writes `snap` as a file and into the engine (fsynced): after this the log up to it may
    /// go.
    fn store_snapshot(&mut self, snap: &Snapshot) -> Result<(), WalError> {
        self.write_snapshot_file(snap)?;
        let mut batch = LogBatch::default();
        batch
            .put_message(GROUP, KEY_SNAPSHOT.to_vec(), snap)
            .map_err(|e| self.engine_err(e))?;
        self.engine
            .write(&mut batch, true)
            .map_err(|e| self.engine_err(e))?;
        Ok(())
    }

    fn compact(&mut self, upto: u64) -> Result<(), WalError> {
        self.engine.compact_to(GROUP, upto + 1);
        self.engine
            .purge_expired_files()
            .map_err(|e| self.engine_err(e))?;
        Ok(())
    }

    fn snapshot_name(snap: &Snapshot) -> String {
        let m = snap.get_metadata();
        format!("{:016x}-{:016x}.snap", m.term, m.index)
    }

    /// Snapshot file names, oldest first (the names sort by term, then index).
    fn snapshots(&self) -> Result<Vec<PathBuf>, WalError> {
        let rd = fs::read_dir(&self.snap_dir).map_err(|source| WalError::Io {
            path: self.snap_dir.clone(),
            source,
        })?;
        let mut out: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "snap"))
            .collect();
        out.sort();
        Ok(out)
    }

    /// The newest snapshot of the files and the engine's copy.
    fn newest_snapshot(&self) -> Result<Option<Snapshot>, WalError> {
        let kept = self
            .engine
            .get_message::<Snapshot>(GROUP, KEY_SNAPSHOT)
            .map_err(|e| self.engine_err(e))?;
        let from_files = match self.newest_snapshot_file() {
            Ok(s) => s,
            // Unreadable files: the engine's copy will do if there is one.
            Err(e) if kept.is_some() => {
                tracing::warn!(error = %e, "snapshot files unreadable: using the copy in the WAL");
                None
            }
            Err(e) => return Err(e),
        };
        let index = |s: &Option<Snapshot>| s.as_ref().map(|s| s.get_metadata().index);
        if kept.is_some() && index(&kept) >= index(&from_files) {
            if from_files.is_none() {
                tracing::warn!(dir = %self.snap_dir.display(), "no snapshot file: using the copy in the WAL");
            }
            return Ok(kept);
        }
        Ok(from_files)
    }

    fn newest_snapshot_file(&self) -> Result<Option<Snapshot>, WalError> {
        let mut last_err = None;
        for path in self.snapshots()?.into_iter().rev() {
            match fs::read(&path) {
                Ok(bytes) => match Snapshot::parse_from_bytes(&bytes) {
                    Ok(s) => return Ok(Some(s)),
                    Err(e) => {
                        last_err = Some(WalError::Corrupt {
                            path,
                            reason: e.to_string(),
                        })
                    }
                },
                Err(source) => last_err = Some(WalError::Io { path, source }),
            }
        }
        match last_err {
            // Files exist but none is readable: refusing to start beats silently starting from
            // an older state than the one that was acknowledged.
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    fn write_snapshot_file(&self, snap: &Snapshot) -> Result<(), WalError> {
        let path = self.snap_dir.join(Self::snapshot_name(snap));
        let io = |source, path: &Path| WalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let bytes = snap.write_to_bytes().map_err(|e| WalError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        // Write aside, fsync, rename, fsync the folder: a crash leaves the old or the new file.
        let tmp = path.with_extension("snap.tmp");
        let mut f = fs::File::create(&tmp).map_err(|e| io(e, &tmp))?;
        f.write_all(&bytes).map_err(|e| io(e, &tmp))?;
        f.sync_all().map_err(|e| io(e, &tmp))?;
        fs::rename(&tmp, &path).map_err(|e| io(e, &path))?;
        fs::File::open(&self.snap_dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(e, &self.snap_dir))?;
        let all = self.snapshots()?;
        if all.len() > SNAPSHOTS_KEPT {
            for old in &all[..all.len() - SNAPSHOTS_KEPT] {
                // A leftover old snapshot is harmless; failing to delete it is not an error.
                let _ = fs::remove_file(old);
            }
        }
        Ok(())
    }
}

/// Deletes a channel's WAL and snapshot folders (channel removal). Missing folders are fine.
pub fn remove(wal_dir: &Path, snap_dir: &Path) -> std::io::Result<()> {
    for d in [wal_dir, snap_dir] {
        match fs::remove_dir_all(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
