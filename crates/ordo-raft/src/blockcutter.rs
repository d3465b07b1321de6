//! Fabric's block cutter (`orderer/common/blockcutter/blockcutter.go`) with the batch timer of
//! its etcdraft chain (`chain.go` `run()`):
//!
//! - an envelope larger than `PreferredMaxBytes` goes **alone** in its own batch, after the
//!   pending batch (if any) is cut — so one call can yield two batches;
//! - if the pending batch plus the envelope would exceed `PreferredMaxBytes`, the pending batch is
//!   cut **before** the envelope is added;
//! - the count is checked **after** adding: `MaxMessageCount` envelopes make a batch;
//! - an envelope's size is `len(payload) + len(signature)`; `AbsoluteMaxBytes` is enforced earlier,
//!   by the Broadcast filters, not here;
//! - the batch timer starts with the first pending envelope and is **not** reset by later ones; it
//!   stops only when a call leaves nothing pending (a cut by count, an isolated envelope, the
//!   timer itself) — after a cut by size the next batch inherits the running timer.
//!
//! Times are nanoseconds from any origin the caller chooses (the core has no clock).

use bytes::Bytes;

/// The `BatchSize` and `BatchTimeout` of a channel, as the cutter uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_message_count: u32,
    pub preferred_max_bytes: u32,
    pub timeout_ns: u64,
}

/// An envelope waiting to be ordered: its marshalled bytes and its size as Fabric counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub envelope: Bytes,
    pub size: u32,
}

/// A batch of envelopes, in order, ready to become a block.
pub type Batch = Vec<Bytes>;

/// The cutter of one channel. Only the Raft leader feeds it; a node that loses leadership calls
/// [`BlockCutter::cut`] and drops the result, as Fabric does.
#[derive(Debug)]
pub struct BlockCutter {
    limits: BatchLimits,
    pending: Vec<Bytes>,
    pending_bytes: u64,
    /// When the first pending envelope arrived (the batch timer's start).
    pending_since: Option<u64>,
    /// When the first envelope of the batch now pending arrived. Differs from `pending_since`
    /// after a cut by size, where the timer keeps running but a new batch starts filling.
    filling_since: Option<u64>,
    /// How long each batch cut since the last [`BlockCutter::take_fill_durations`] took to
    /// fill, in nanoseconds (Fabric's `blockcutter_block_fill_duration`).
    fills: Vec<u64>,
}

impl BlockCutter {
    pub fn new(limits: BatchLimits) -> Self {
        BlockCutter {
            limits,
            pending: Vec::new(),
            pending_bytes: 0,
            pending_since: None,
            filling_since: None,
            fills: Vec::new(),
        }
    }

    /// New limits after a config change; they apply from the next envelope on.
    pub fn set_limits(&mut self, limits: BatchLimits) {
        self.limits = limits;
    }

    /// Fabric's `Ordered`: adds an envelope at time `now`, returning the batches it completes
    /// (zero, one or two).
    pub fn ordered(&mut self, msg: Pending, now: u64) -> Vec<Batch> {
        let mut batches = Vec::new();
        if self.pending.is_empty() {
            self.pending_since = Some(now);
        }
        let preferred = u64::from(self.limits.preferred_max_bytes);
        let size = u64::from(msg.size);
        if size > preferred {
            if !self.pending.is_empty() {
                batches.push(self.cut_at(now));
            }
            batches.push(vec![msg.envelope]);
            // A lone envelope leaves nothing pending, so no timer runs.
            self.pending_since = None;
            return batches;
        }
        if self.pending_bytes + size > preferred {
            // Fabric's chain stops its timer only when nothing is left pending; here something
            // is (this envelope), so the running timer keeps its original start.
            let since = self.pending_since;
            batches.push(self.cut_at(now));
            self.pending_since = since;
        }
        if self.pending.is_empty() {
            self.filling_since = Some(now);
        }
        self.pending.push(msg.envelope);
        self.pending_bytes += size;
        if self.pending.len() as u64 >= u64::from(self.limits.max_message_count) {
            batches.push(self.cut_at(now));
        }
        batches
    }

    /// Cuts whatever is pending (possibly nothing) and stops the timer, without counting it
    /// as a filled batch (a leader that lost leadership drops what it had).
    pub fn cut(&mut self) -> Batch {
        self.pending_bytes = 0;
        self.pending_since = None;
        self.filling_since = None;
        std::mem::take(&mut self.pending)
    }

    /// Cuts whatever is pending at `now`, recording how long a non-empty batch took to fill.
    pub fn cut_at(&mut self, now: u64) -> Batch {
        if let Some(since) = self.filling_since
            && !self.pending.is_empty()
        {
            self.fills.push(now.saturating_sub(since));
        }
        self.cut()
    }

    /// The fill durations (ns) of the batches cut since the last call.
    pub fn take_fill_durations(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.fills)
    }

    /// When the batch timer fires, if it is running.
    pub fn deadline(&self) -> Option<u64> {
        self.pending_since
            .map(|t| t.saturating_add(self.limits.timeout_ns))
    }

    /// Cuts the pending batch if its timer has expired at `now`.
    pub fn tick(&mut self, now: u64) -> Option<Batch> {
        match self.deadline() {
            Some(d) if now >= d => Some(self.cut_at(now)),
            _ => None,
        }
    }

    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BatchLimits = BatchLimits {
        max_message_count: 3,
        preferred_max_bytes: 100,
        timeout_ns: 1_000,
    };

    fn msg(tag: u8, size: u32) -> Pending {
        Pending {
            envelope: Bytes::from(vec![tag]),
            size,
        }
    }

    fn tags(b: &Batch) -> Vec<u8> {
        b.iter().map(|e| e[0]).collect()
    }

    #[test]
    fn count_cuts_after_adding() {
        let mut c = BlockCutter::new(LIMITS);
        assert!(c.ordered(msg(1, 10), 0).is_empty());
        assert!(c.ordered(msg(2, 10), 0).is_empty());
        let out = c.ordered(msg(3, 10), 0);
        assert_eq!(
            out.iter().map(tags).collect::<Vec<_>>(),
            vec![vec![1, 2, 3]]
        );
        assert_eq!(c.pending_len(), 0);
        assert_eq!(c.deadline(), None);
    }

    #[test]
    fn a_large_envelope_is_isolated_after_cutting_the_pending_batch() {
        let mut c = BlockCutter::new(LIMITS);
        c.ordered(msg(1, 10), 0);
        let out = c.ordered(msg(2, 101), 5);
        assert_eq!(
            out.iter().map(tags).collect::<Vec<_>>(),
            vec![vec![1], vec![2]]
        );
        assert_eq!(c.pending_len(), 0);
        assert_eq!(c.deadline(), None);
        // Alone, with nothing pending, it is a single batch.
        let out = c.ordered(msg(3, 500), 6);
        assert_eq!(out.iter().map(tags).collect::<Vec<_>>(), vec![vec![3]]);
    }

    #[test]
    fn overflowing_preferred_bytes_cuts_before_adding() {
        let mut c = BlockCutter::new(LIMITS);
        c.ordered(msg(1, 60), 0);
        let out = c.ordered(msg(2, 50), 7);
        assert_eq!(out.iter().map(tags).collect::<Vec<_>>(), vec![vec![1]]);
        assert_eq!(c.pending_len(), 1);
        // The new pending batch inherits the running timer (Fabric's chain does not restart it).
        assert_eq!(c.deadline(), Some(1_000));
        // Exactly the preferred size is not an overflow.
        let mut c = BlockCutter::new(LIMITS);
        c.ordered(msg(1, 60), 0);
        assert!(c.ordered(msg(2, 40), 0).is_empty());
    }

    #[test]
    fn the_timer_starts_with_the_first_envelope_and_is_not_reset() {
        let mut c = BlockCutter::new(LIMITS);
        assert_eq!(c.tick(10_000), None);
        c.ordered(msg(1, 1), 100);
        c.ordered(msg(2, 1), 900);
        assert_eq!(c.deadline(), Some(1_100));
        assert_eq!(c.tick(1_099), None);
        assert_eq!(c.tick(1_100).map(|b| tags(&b)), Some(vec![1, 2]));
        assert_eq!(c.deadline(), None);
        assert_eq!(c.tick(5_000), None);
    }

    #[test]
    fn cut_discards_what_a_deposed_leader_held() {
        let mut c = BlockCutter::new(LIMITS);
        c.ordered(msg(1, 1), 0);
        assert_eq!(tags(&c.cut()), vec![1]);
        assert!(c.cut().is_empty());
    }

    #[test]
    fn fill_durations_count_from_each_batchs_first_envelope() {
        let mut c = BlockCutter::new(BatchLimits {
            max_message_count: 2,
            preferred_max_bytes: 100,
            timeout_ns: 1_000,
        });
        let m = |n: u8, size| Pending {
            envelope: Bytes::from(vec![n]),
            size,
        };
        assert!(c.ordered(m(1, 10), 100).is_empty());
        assert_eq!(c.ordered(m(2, 10), 130).len(), 1);
        // Overflow: the pending envelope (from 200) is cut at 250, the new one fills from 250.
        assert!(c.ordered(m(3, 60), 200).is_empty());
        assert_eq!(c.ordered(m(4, 60), 250).len(), 1);
        // The timer keeps the first start (200) and cuts at 1200, after 950 of filling.
        assert_eq!(c.tick(1_200).map(|b| b.len()), Some(1));
        // A lone large envelope is not a filled batch; dropping a batch is not either.
        assert_eq!(c.ordered(m(5, 150), 1_300).len(), 1);
        assert!(c.ordered(m(6, 10), 1_400).is_empty());
        assert_eq!(c.cut().len(), 1);
        assert_eq!(c.take_fill_durations(), vec![30, 50, 950]);
        assert!(c.take_fill_durations().is_empty());
    }
}
