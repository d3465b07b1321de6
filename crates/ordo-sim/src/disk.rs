//! A simulated disk holding one node's Raft WAL, with the semantics of `ordo_raft::wal::RaftWal`
//! (raft-engine log + snapshot files) and a crash model: writes are buffered until a sync; a
//! crash keeps every synced write, a random prefix of the buffered ones (the disk may have
//! written some of them), and loses the rest — the first lost one may be torn, which recovery
//! discards as raft-engine and the snapshot reader do.

use std::collections::BTreeMap;

use ordo_raft::chain::Persist;
use ordo_raft::storage::Recovered;
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
#[derive(Debug, Clone, Default)]
pub struct Disk {
    durable: Durable,
    buffered: Vec<Write>,
    /// Syncs performed (for the report).
    pub syncs: u64,
}

impl Disk {
    /// Queues the writes of one `Persist`, in the real WAL's order.
    pub fn persist(&mut self, p: Persist) {
        if let Some(s) = p.snapshot {
            let index = s.get_metadata().index;
            self.buffered.push(Write::SnapshotFile(s));
            self.buffered.push(Write::Compact(index));
        }
        if !p.entries.is_empty() || p.hard_state.is_some() || p.conf_state.is_some() {
            self.buffered.push(Write::Batch {
                entries: p.entries,
                hard_state: p.hard_state,
                conf_state: p.conf_state,
            });
        }
    }

    /// Queues a snapshot the node took and the compaction after it.
    pub fn save_snapshot(&mut self, s: Snapshot, compact_to: u64) {
        self.buffered.push(Write::SnapshotFile(s));
        self.buffered.push(Write::Compact(compact_to));
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
