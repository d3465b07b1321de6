//! A simulated disk holding one node's Raft WAL, with the semantics of `ordo_raft::wal::RaftWal`
//! (raft-engine log + snapshot files) and a crash model: writes are buffered until a sync; a
//! crash keeps every synced write, a random prefix of the buffered ones (the disk may have
//! written some of them), and loses the rest — the first lost one may be torn, which recovery
//! discards as raft-engine and the snapshot reader do.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ordo_raft::chain::Persist;
use ordo_raft::storage::{ColdEntries, Recovered};
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use rand::Rng;

/// One write, as the real WAL performs them (a received snapshot file is a write of its own,
/// before the batch of the same `Persist`).
#[derive(Debug, Clone)]
enum Write {
    SnapshotFile(Snapshot),
    /// Compaction of the log up to an index (inclusive).
    Compact(u64),
    Batch {
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
        conf_state: Option<ConfState>,
    },
}

/// What is on the platter.
#[derive(Debug, Clone, Default)]
struct Durable {
    hard_state: Option<HardState>,
    conf_state: Option<ConfState>,
    /// Snapshot files by (term, index), as their names sort.
    snapshots: BTreeMap<(u64, u64), Snapshot>,
    entries: BTreeMap<u64, Entry>,
}

/// A WAL write the real engine would refuse (it panics on a hole in the log).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct DiskError(pub String);

impl Durable {
    fn apply(&mut self, w: Write) -> Result<(), DiskError> {
        match w {
            Write::SnapshotFile(s) => {
                let m = s.get_metadata();
                self.snapshots.insert((m.term, m.index), s);
                // The real WAL keeps the newest few files.
                while self.snapshots.len() > 3 {
                    self.snapshots.pop_first();
                }
            }
            Write::Compact(upto) => {
                self.entries = self.entries.split_off(&(upto + 1));
            }
            Write::Batch {
                entries,
                hard_state,
                conf_state,
            } => {
                if let Some(first) = entries.first() {
                    if let Some((&last, _)) = self.entries.last_key_value()
                        && first.index > last + 1
                    {
                        return Err(DiskError(format!(
                            "raft-engine would panic: append at {} leaves a hole after {last}",
                            first.index
                        )));
                    }
                    if let Some((&low, _)) = self.entries.first_key_value()
                        && first.index < low
                    {
                        return Err(DiskError(format!(
                            "raft-engine would panic: append at {} overwrites compacted entries (first {low})",
                            first.index
                        )));
                    }
                    self.entries.split_off(&first.index);
                    for e in entries {
                        self.entries.insert(e.index, e);
                    }
                }
                if hard_state.is_some() {
                    self.hard_state = hard_state;
                }
                if conf_state.is_some() {
                    self.conf_state = conf_state;
                }
            }
        }
        Ok(())
    }
}

/// The simulated disk of one node; see the module doc.
#[derive(Debug, Default)]
pub struct Disk {
    durable: Durable,
    buffered: Vec<Write>,
    /// What reads see: the durable state with the buffered writes applied (the real engine
    /// reads its own writes before they are synced). Shared with the node's [`DiskEntries`].
    readable: Arc<Mutex<Durable>>,
    /// Syncs performed (for the report).
    pub syncs: u64,
}

/// The entries of a [`Disk`] as the node's in-memory log reads back the ones it released (the
/// real driver's `WalEntries`).
#[derive(Debug)]
pub struct DiskEntries {
    disk: Arc<Mutex<Durable>>,
    /// Entries read back, counted for the report.
    reads: Arc<std::sync::atomic::AtomicU64>,
}

impl ColdEntries for DiskEntries {
    fn fetch(
        &self,
        low: u64,
        high: u64,
        max_size: Option<u64>,
        out: &mut Vec<Entry>,
    ) -> Result<(), ordo_raft::storage::ColdError> {
        let disk = self.disk.lock().unwrap_or_else(|p| p.into_inner());
        let mut got = Vec::new();
        for i in low..high {
            got.push(
                disk.entries
                    .get(&i)
                    .cloned()
                    .ok_or_else(|| format!("entry {i} is not on the disk"))?,
            );
        }
        raft::util::limit_size(&mut got, max_size);
        self.reads
            .fetch_add(got.len() as u64, std::sync::atomic::Ordering::Relaxed);
        out.extend(got);
        Ok(())
    }
}

impl Disk {
    /// A reader of the entries on this disk, for the node's in-memory log, counting what it
    /// reads in `reads`.
    pub fn entries_reader(&self, reads: Arc<std::sync::atomic::AtomicU64>) -> Arc<DiskEntries> {
        Arc::new(DiskEntries {
            disk: self.readable.clone(),
            reads,
        })
    }

    fn buffer(&mut self, w: Write) {
        // A write the engine would refuse fails at the sync, against the durable state.
        let _ = self
            .readable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .apply(w.clone());
        self.buffered.push(w);
    }

    /// Queues the writes of one `Persist`, in the real WAL's order.
    pub fn persist(&mut self, p: Persist) {
        if let Some(s) = p.snapshot {
            let index = s.get_metadata().index;
            self.buffer(Write::SnapshotFile(s));
            self.buffer(Write::Compact(index));
        }
        if !p.entries.is_empty() || p.hard_state.is_some() || p.conf_state.is_some() {
            self.buffer(Write::Batch {
                entries: p.entries,
                hard_state: p.hard_state,
                conf_state: p.conf_state,
            });
        }
    }

    /// Queues a snapshot the node took and the compaction after it.
    pub fn save_snapshot(&mut self, s: Snapshot, compact_to: u64) {
        self.buffer(Write::SnapshotFile(s));
        self.buffer(Write::Compact(compact_to));
    }

    /// Whether anything is waiting for a sync.
    pub fn dirty(&self) -> bool {
        !self.buffered.is_empty()
    }

    /// fsync: everything buffered becomes durable.
    pub fn sync(&mut self) -> Result<(), DiskError> {
        if self.buffered.is_empty() {
            return Ok(());
        }
        self.syncs += 1;
        for w in std::mem::take(&mut self.buffered) {
            self.durable.apply(w)?;
        }
        Ok(())
    }

    /// A crash: a random prefix of the buffered writes reached the disk, the rest is lost (the
    /// first lost one possibly torn, which recovery discards just the same).
    pub fn crash(&mut self, rng: &mut impl Rng) -> Result<usize, DiskError> {
        let buffered = std::mem::take(&mut self.buffered);
        let kept = rng.gen_range(0..=buffered.len());
        let lost = buffered.len() - kept;
        for w in buffered.into_iter().take(kept) {
            self.durable.apply(w)?;
        }
        *self.readable.lock().unwrap_or_else(|p| p.into_inner()) = self.durable.clone();
        Ok(lost)
    }

    /// Whether nothing that makes a restart was ever persisted (`RaftWal::is_fresh`).
    pub fn is_fresh(&self) -> bool {
        self.durable.hard_state.is_none()
            && self.durable.entries.is_empty()
            && self.durable.snapshots.is_empty()
    }

    /// What `RaftWal::recover` reads back.
    pub fn recover(&self) -> Recovered {
        Recovered {
            hard_state: self.durable.hard_state.clone().unwrap_or_default(),
            conf_state: self.durable.conf_state.clone().unwrap_or_default(),
            snapshot: self
                .durable
                .snapshots
                .last_key_value()
                .map(|(_, s)| s.clone()),
            entries: self.durable.entries.values().cloned().collect(),
        }
    }
}
