//! Snapshots sent and received, a part of [`ChainCore`]: a snapshot taken for a node a conf
//! change adds (so that it is not sent an old one that does not list it), a received snapshot
//! whose membership predates this node (Fabric v2.4 sends such) admitted as a learner, and a
//! received snapshot turned into the block the ledger must catch up to. The periodic snapshot
//! by size stays with the applying of blocks in `chain.rs`.

use ordo_proto::common::Block;
use prost::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, Message, Snapshot};

use super::{Action, ChainCore, CoreError};

impl ChainCore {
    /// A snapshot whose membership does not list this node gets it as a learner. Fabric v2.4's
    /// leader sends a new consenter the snapshot it stored at the config block that added it,
    /// whose ConfState predates the AddNode that follows in the log (Fabric v2.5 fixed the
    /// sender); raft-rs refuses such a snapshot ("not in the ConfState") and the node would
    /// never catch up. A leader sends a snapshot only to a node it tracks, so the node is a
    /// member by the leader's own log: it joins as a learner (it cannot vote or campaign on the
    /// strength of this) until the conf change in the entries after the snapshot applies.
    pub(super) fn admit_into_snapshot(&self, msg: &mut Message) {
        let me = self.raw.raft.id;
        let cs = msg.mut_snapshot().mut_metadata().mut_conf_state();
        let listed = cs.voters.contains(&me)
            || cs.learners.contains(&me)
            || cs.voters_outgoing.contains(&me)
            || cs.learners_next.contains(&me);
        if !listed && !cs.voters.is_empty() {
            tracing::info!(channel = %self.channel, node = me, from = msg.from, voters = ?msg.get_snapshot().get_metadata().get_conf_state().voters, "a snapshot from the leader predates this node's membership (Fabric v2.4 sends such): taking it as a learner until the conf change that added it applies");
            msg.mut_snapshot()
                .mut_metadata()
                .mut_conf_state()
                .learners
                .push(me);
        }
    }
    /// After a conf change adding a node (voter or learner) the newest snapshot does not list,
    /// takes a snapshot
    /// here (data: the newest block, as always). The added node usually needs a snapshot (it
    /// joins with an empty log, and the log before the last snapshot is gone), and raft-rs
    /// refuses one whose membership does not include it ("not in the ConfState"): without this
    /// it would be sent the old snapshot again and again until SnapshotIntervalSize more bytes
    /// were ordered — forever when the group cannot commit without it (one node grown to two).
    pub(super) fn snapshot_for_new_voter(
        &mut self,
        index: u64,
        cc: &ConfChange,
    ) -> Result<(), CoreError> {
        let store = self.raw.store();
        let adds = matches!(
            cc.get_change_type(),
            ConfChangeType::AddNode | ConfChangeType::AddLearnerNode
        );
        if !adds || store.snapshot_lists(cc.node_id) || index <= store.snapshot_index() {
            return Ok(());
        }
        // No block yet means no snapshot was ever taken: the log still starts at index 1.
        let Some(data) = store.newest_block_at(index)? else {
            return Ok(());
        };
        let cs = store.conf_state().clone();
        let snapshot = self.raw.mut_store().take_snapshot(index, cs, data, 0)?;
        tracing::info!(channel = %self.channel, index, node = cc.node_id, "took a snapshot listing the added node");
        self.actions.push(Action::Snapshot {
            snapshot,
            compact_to: 0,
        });
        Ok(())
    }
    /// A snapshot from the leader replaced the log: returns its block if the ledger must catch
    /// up to it. Entries committed but not applied before it are covered by it: the snapshot's
    /// block is after them.
    pub(super) fn on_snapshot_received(
        &mut self,
        snap: &Snapshot,
    ) -> Result<Option<Block>, CoreError> {
        let index = snap.get_metadata().index;
        let block = Block::decode(snap.get_data()).map_err(|err| CoreError::BadEntry {
            index,
            reason: format!("snapshot data is not a block: {err}"),
        })?;
        let number = block.header.as_ref().map_or(0, |h| h.number);
        self.processed_index = self.processed_index.max(index);
        // Entries deferred by an earlier catch-up are all at or below this snapshot's index.
        self.deferred.retain(|e| e.index > index);
        let target = self
            .catching_up
            .unwrap_or(self.last.number)
            .max(self.last.number);
        if number > target {
            self.catching_up = Some(number);
            return Ok(Some(block));
        }
        Ok(None)
    }
}
