//! The Raft log as the pure core sees it: entries since the last snapshot, the hard state, the
//! membership and the last snapshot, all in memory — etcd/raft's `MemoryStorage`, which Fabric's
//! chain also puts in front of its WAL. Durability is not here: every change made here is also
//! handed to the driver as a [`crate::chain::Action::Persist`], and on restart the driver rebuilds
//! this storage from what it persisted ([`MemLog::restore`]).
//!
//! Unlike raft-rs's own `MemStorage`, the snapshot kept here carries its data (Fabric's snapshot
//! data is the last block), so a lagging follower gets a useful snapshot.
//!
//! Unlike etcd's `MemoryStorage`, it need not hold every entry's data until the next snapshot:
//! given a [`ColdEntries`] source (the WAL), it lets go of the data of applied entries
//! ([`MemLog::release_applied`]) and reads it back in the rare case it is asked for again (a
//! follower that fell behind, a snapshot for a new voter). Entries are whole blocks and a
//! snapshot comes every SnapshotIntervalSize (16 MB by default) of them, so this is most of what
//! a busy node would otherwise keep resident.

use std::sync::Arc;

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

/// What a restart reads back from disk.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    pub hard_state: HardState,
    pub conf_state: ConfState,
    /// The last snapshot, if one was taken or received (its data is a block).
    pub snapshot: Option<Snapshot>,
    /// Entries after the snapshot, in index order, without gaps.
    pub entries: Vec<Entry>,
}

/// Why the in-memory log refused an operation (each a broken invariant of the Raft state: the
/// chain stops on it).
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("the Raft log starts at index {first} but the snapshot ends at {snapshot}")]
    StartsAfterSnapshot { first: u64, snapshot: u64 },
    #[error("the Raft log has a gap between {0} and {1}")]
    Gap(u64, u64),
    #[error("released entries without a cold source")]
    NoColdSource,
    #[error("reading released entries back: {0}")]
    Cold(#[source] ColdError),
    #[error("the WAL gave back entries {got:?} for [{low}, {high})")]
    ColdMismatch { got: Vec<u64>, low: u64, high: u64 },
    #[error("append at {at} overwrites the compacted log (first index {first})")]
    OverwritesCompacted { at: u64, first: u64 },
    #[error("append at {at} leaves a gap after {last}")]
    AppendGap { at: u64, last: u64 },
    #[error("snapshot at {at} is older than the log start {start}")]
    OlderSnapshot { at: u64, start: u64 },
    #[error("no entry at {0} to snapshot")]
    NoEntry(u64),
}

/// A failure of the persisted log, as its implementation reports it.
pub type ColdError = Box<dyn std::error::Error + Send + Sync>;

/// Where entries whose data [`MemLog`] let go of are read back from: the persisted log.
pub trait ColdEntries: Send + Sync + std::fmt::Debug {
    /// Appends the persisted entries `[low, high)` to `out`, stopping once `max_size` bytes are
    /// reached (at least one entry).
    fn fetch(
        &self,
        low: u64,
        high: u64,
        max_size: Option<u64>,
        out: &mut Vec<Entry>,
    ) -> Result<(), ColdError>;
}

/// In-memory Raft log; see the module doc.
#[derive(Debug, Clone, Default)]
pub struct MemLog {
    hard_state: HardState,
    conf_state: ConfState,
    /// Index and term of the entry just before `entries[0]` (the compaction point).
    offset: (u64, u64),
    /// The newest snapshot (index ≥ `offset.0`), what a follower that fell behind is sent.
    snapshot: Snapshot,
    entries: Vec<Entry>,
    /// Entries below this index keep their index and term here but not their data, which is
    /// read from `cold` when asked for.
    warm_from: u64,
    cold: Option<Arc<dyn ColdEntries>>,
}

impl MemLog {
    /// A brand-new log whose membership is `voters` and `learners` (a channel started from its
    /// genesis block, or a node joining a running channel).
    pub fn bootstrap(voters: Vec<u64>, learners: Vec<u64>) -> MemLog {
        let mut log = MemLog::default();
        log.conf_state.voters = voters;
        log.conf_state.learners = learners;
        log.snapshot
            .mut_metadata()
            .set_conf_state(log.conf_state.clone());
        log
    }

    /// The log as it was persisted. Entries at or below the snapshot (a compaction that did not
    /// reach the disk before a crash) are dropped; a gap after the snapshot is refused.
    pub fn restore(r: Recovered) -> Result<MemLog, LogError> {
        let snapshot = r.snapshot.unwrap_or_default();
        let meta = snapshot.get_metadata();
        let offset = (meta.index, meta.term);
        let entries: Vec<Entry> = r
            .entries
            .into_iter()
            .filter(|e| e.index > offset.0)
            .collect();
        if let Some(first) = entries.first()
            && first.index != offset.0 + 1
        {
            return Err(LogError::StartsAfterSnapshot {
                first: first.index,
                snapshot: offset.0,
            });
        }
        for w in entries.windows(2) {
            if w[1].index != w[0].index + 1 {
                return Err(LogError::Gap(w[0].index, w[1].index));
            }
        }
        let conf_state = if r.conf_state == ConfState::default() {
            meta.get_conf_state().clone()
        } else {
            r.conf_state
        };
        // A received snapshot is written before the hard state of the same batch: after a crash
        // between the two, the hard state lags the snapshot, which raft would refuse ("commit
        // out of range"). The snapshot is committed state, so the hard state is raised to it.
        let mut hard_state = r.hard_state;
        hard_state.commit = hard_state.commit.max(offset.0);
        hard_state.term = hard_state.term.max(offset.1);
        Ok(MemLog {
            hard_state,
            conf_state,
            offset,
            snapshot,
            entries,
            warm_from: 0,
            cold: None,
        })
    }

    /// Lets [`MemLog::release_applied`] drop entry data that `cold` can give back.
    pub fn set_cold(&mut self, cold: Arc<dyn ColdEntries>) {
        self.cold = Some(cold);
    }

    /// Drops the data of the entries up to `applied` (they are persisted, and applied entries
    /// are only read again for a lagging follower or a snapshot). Without a cold source,
    /// nothing is dropped.
    pub fn release_applied(&mut self, applied: u64) {
        if self.cold.is_none() {
            return;
        }
        let first = self.first();
        let from = self.warm_from.max(first);
        let upto = applied.min(self.last());
        if upto < from {
            return;
        }
        let (a, b) = ((from - first) as usize, (upto - first) as usize);
        for e in &mut self.entries[a..=b] {
            e.data = Default::default();
        }
        self.warm_from = upto + 1;
    }

    /// Bytes of entry data held in memory.
    #[cfg(test)]
    fn resident_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.data.len() as u64).sum()
    }

    /// Entries `[low, high)`, all in the log: the released ones read back from the cold source.
    fn collect(&self, low: u64, high: u64, max_size: Option<u64>) -> Result<Vec<Entry>, LogError> {
        let first = self.first();
        let mut out = Vec::new();
        let warm = self.warm_from.max(first);
        if low < warm {
            let cold_high = high.min(warm);
            let cold = self.cold.as_ref().ok_or(LogError::NoColdSource)?;
            cold.fetch(low, cold_high, max_size, &mut out)
                .map_err(LogError::Cold)?;
            let expected = low..low + out.len() as u64;
            if out.iter().map(|e| e.index).ne(expected) || out.is_empty() {
                return Err(LogError::ColdMismatch {
                    got: out.iter().map(|e| e.index).collect(),
                    low,
                    high: cold_high,
                });
            }
            if (out.len() as u64) < cold_high - low {
                // Size limit reached among the cold entries.
                return Ok(out);
            }
        }
        let start = (low.max(warm) - first) as usize;
        let end = (high - first) as usize;
        if start < end {
            out.extend_from_slice(&self.entries[start..end]);
        }
        raft::util::limit_size(&mut out, max_size);
        Ok(out)
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    pub fn set_commit(&mut self, commit: u64) {
        self.hard_state.commit = commit;
    }

    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    fn first(&self) -> u64 {
        self.offset.0 + 1
    }

    fn last(&self) -> u64 {
        self.entries.last().map_or(self.offset.0, |e| e.index)
    }

    /// The entry at `index`, if it is still in memory.
    pub fn entry(&self, index: u64) -> Option<&Entry> {
        let i = index.checked_sub(self.first())?;
        self.entries.get(usize::try_from(i).ok()?)
    }

    /// The newest block at or before `index` (a block entry still in the log, else the
    /// snapshot's block): what a snapshot taken at `index` carries.
    pub fn newest_block_at(&self, index: u64) -> Result<Option<Vec<u8>>, LogError> {
        let warm = self.warm_from.max(self.first());
        for e in self.entries.iter().rev().filter(|e| e.index <= index) {
            if e.get_entry_type() != raft::eraftpb::EntryType::EntryNormal {
                continue;
            }
            let data = if e.index >= warm {
                e.data.clone()
            } else {
                self.collect(e.index, e.index + 1, None)?
                    .pop()
                    .map(|back| back.data)
                    .unwrap_or_default()
            };
            // An empty normal entry is a new leader's no-op, not a block.
            if !data.is_empty() {
                return Ok(Some(data.to_vec()));
            }
        }
        let data = self.snapshot.get_data();
        Ok((!data.is_empty()).then(|| data.to_vec()))
    }

    /// Whether the newest snapshot's membership includes `id` (raft-rs refuses to install a
    /// snapshot whose ConfState does not list the receiving node).
    pub fn snapshot_lists(&self, id: u64) -> bool {
        let cs = self.snapshot.get_metadata().get_conf_state();
        cs.voters.contains(&id) || cs.learners.contains(&id)
    }

    /// The index of the newest snapshot.
    pub fn snapshot_index(&self) -> u64 {
        self.snapshot.get_metadata().index
    }

    fn term_of(&self, index: u64) -> Option<u64> {
        if index == self.offset.0 {
            return Some(self.offset.1);
        }
        self.entry(index).map(|e| e.term)
    }

    /// Appends entries, dropping any existing entries they overwrite (Raft truncation).
    pub fn append(&mut self, ents: &[Entry]) -> Result<(), LogError> {
        let Some(head) = ents.first() else {
            return Ok(());
        };
        if head.index < self.first() {
            return Err(LogError::OverwritesCompacted {
                at: head.index,
                first: self.first(),
            });
        }
        if head.index > self.last() + 1 {
            return Err(LogError::AppendGap {
                at: head.index,
                last: self.last(),
            });
        }
        let keep = (head.index - self.first()) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(ents);
        // Only unapplied (never released) entries are overwritten, but stay exact regardless.
        self.warm_from = self.warm_from.min(head.index);
        Ok(())
    }

    /// Installs a snapshot received from the leader: the log restarts after it.
    pub fn apply_snapshot(&mut self, snap: Snapshot) -> Result<(), LogError> {
        let meta = snap.get_metadata();
        if meta.index < self.offset.0 {
            return Err(LogError::OlderSnapshot {
                at: meta.index,
                start: self.offset.0,
            });
        }
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = self.hard_state.commit.max(meta.index);
        self.conf_state = meta.get_conf_state().clone();
        self.offset = (meta.index, meta.term);
        self.entries.clear();
        self.warm_from = 0;
        self.snapshot = snap;
        Ok(())
    }

    /// Records a snapshot taken locally at `index` (which must be in the log) with `data`, and
    /// drops the entries up to `compact_to` (at most `index`; kept lower so that slightly lagging
    /// followers still get entries rather than a snapshot, as Fabric's SnapshotCatchUpEntries).
    pub fn take_snapshot(
        &mut self,
        index: u64,
        conf_state: ConfState,
        data: Vec<u8>,
        compact_to: u64,
    ) -> Result<Snapshot, LogError> {
        let term = self.term_of(index).ok_or(LogError::NoEntry(index))?;
        let mut snap = Snapshot::default();
        snap.set_data(data.into());
        let meta = snap.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(conf_state);
        let compact_to = compact_to.min(index);
        if compact_to > self.offset.0
            && let Some(t) = self.term_of(compact_to)
        {
            let drop = (compact_to - self.offset.0) as usize;
            self.entries.drain(..drop.min(self.entries.len()));
            self.offset = (compact_to, t);
        }
        self.snapshot = snap.clone();
        Ok(snap)
    }
}

impl Storage for MemLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        self.collect(low, high, max_size.into()).map_err(|e| {
            raft::Error::Store(StorageError::Other(
                format!("reading back entries [{low}, {high}): {e}").into(),
            ))
        })
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx < self.offset.0 {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.term_of(idx)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot.get_metadata().index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    #[test]
    fn append_truncates_conflicting_tail_and_refuses_gaps() {
        let mut log = MemLog::bootstrap(vec![1], Vec::new());
        log.append(&[ent(1, 1), ent(2, 1), ent(3, 1)]).unwrap();
        log.append(&[ent(2, 2)]).unwrap();
        assert_eq!(log.last_index().unwrap(), 2);
        assert_eq!(log.term(2).unwrap(), 2);
        assert!(log.append(&[ent(5, 2)]).is_err());
    }

    #[test]
    fn snapshot_compacts_and_keeps_catch_up_entries() {
        let mut log = MemLog::bootstrap(vec![1], Vec::new());
        log.append(&(1..=10).map(|i| ent(i, 1)).collect::<Vec<_>>())
            .unwrap();
        let snap = log
            .take_snapshot(8, log.conf_state().clone(), b"block".to_vec(), 4)
            .unwrap();
        assert_eq!(snap.get_metadata().index, 8);
        assert_eq!(log.first_index().unwrap(), 5);
        assert_eq!(log.term(4).unwrap(), 1);
        assert!(log.term(3).is_err());
        assert_eq!(log.snapshot(6, 2).unwrap().get_data(), b"block");
        assert!(log.snapshot(9, 2).is_err());
        let got = log
            .entries(5, 11, None, GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(got.len(), 6);
    }

    /// A persisted log the in-memory one reads released entries back from.
    #[derive(Debug, Default)]
    struct Disk(std::sync::Mutex<Vec<Entry>>);

    impl ColdEntries for Disk {
        fn fetch(
            &self,
            low: u64,
            high: u64,
            max_size: Option<u64>,
            out: &mut Vec<Entry>,
        ) -> Result<(), ColdError> {
            let disk = self.0.lock().unwrap();
            let mut got: Vec<Entry> = disk
                .iter()
                .filter(|e| (low..high).contains(&e.index))
                .cloned()
                .collect();
            raft::util::limit_size(&mut got, max_size);
            out.extend(got);
            Ok(())
        }
    }

    fn block_ent(index: u64, len: usize) -> Entry {
        let mut e = ent(index, 1);
        e.data = vec![index as u8; len].into();
        e
    }

    #[test]
    fn applied_entries_leave_memory_and_are_read_back_when_asked_for() {
        let all: Vec<Entry> = (1..=10).map(|i| block_ent(i, 100)).collect();
        let disk = Arc::new(Disk(std::sync::Mutex::new(all.clone())));
        let mut log = MemLog::bootstrap(vec![1], Vec::new());
        log.append(&all).unwrap();
        // Without a cold source nothing is released.
        log.release_applied(6);
        assert_eq!(log.resident_bytes(), 1000);
        log.set_cold(disk.clone());
        log.release_applied(6);
        assert_eq!(log.resident_bytes(), 400);
        let ctx = || GetEntriesContext::empty(false);
        // Across the cold/warm boundary, byte for byte.
        assert_eq!(log.entries(2, 11, None, ctx()).unwrap(), all[1..].to_vec());
        // A size limit stops among the cold entries (at least one is returned)...
        assert_eq!(log.entries(2, 11, 250, ctx()).unwrap(), all[1..3].to_vec());
        assert_eq!(log.entries(2, 11, 0, ctx()).unwrap(), all[1..2].to_vec());
        // ...or among the warm ones.
        assert_eq!(log.entries(5, 11, 450, ctx()).unwrap(), all[4..8].to_vec());
        // The block a snapshot at a released index carries comes from the disk.
        assert_eq!(log.newest_block_at(4).unwrap(), Some(vec![4; 100]));
        // Releasing is idempotent and never goes past the log.
        log.release_applied(100);
        assert_eq!(log.resident_bytes(), 0);
        assert_eq!(log.entries(9, 11, None, ctx()).unwrap(), all[8..].to_vec());
        // New entries are warm; a snapshot's compaction keeps the rest readable.
        log.append(&[block_ent(11, 100)]).unwrap();
        disk.0.lock().unwrap().push(block_ent(11, 100));
        assert_eq!(log.resident_bytes(), 100);
        log.take_snapshot(10, log.conf_state().clone(), b"b".to_vec(), 8)
            .unwrap();
        assert!(log.entries(8, 12, None, ctx()).is_err());
        assert_eq!(log.entries(9, 12, None, ctx()).unwrap().len(), 3);
        // A disk that lost an entry is an error, not a silent gap.
        disk.0.lock().unwrap().retain(|e| e.index != 9);
        assert!(log.entries(9, 12, None, ctx()).is_err());
    }

    #[test]
    fn restore_drops_entries_covered_by_the_snapshot_and_refuses_gaps() {
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = 5;
        snap.mut_metadata().term = 2;
        snap.mut_metadata().mut_conf_state().voters = vec![1];
        let r = Recovered {
            snapshot: Some(snap.clone()),
            entries: (3..=8).map(|i| ent(i, 2)).collect(),
            ..Default::default()
        };
        let log = MemLog::restore(r).unwrap();
        assert_eq!(log.first_index().unwrap(), 6);
        assert_eq!(log.last_index().unwrap(), 8);
        assert_eq!(log.conf_state().voters, vec![1]);
        let gap = Recovered {
            snapshot: Some(snap),
            entries: vec![ent(7, 2)],
            ..Default::default()
        };
        assert!(MemLog::restore(gap).is_err());
    }
}
