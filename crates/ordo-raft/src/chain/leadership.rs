//! Moving leadership on purpose, a part of [`ChainCore`]: a stopping node hands it over
//! ([`ChainCore::hand_off`]), a leader that is not one of the operator's preferred consenters
//! passes it to one that is ([`ChainCore::set_preferred_leaders`]), and a leader the config
//! removes abdicates (`push_conf_change`, through `transfer_target`). The first two let what
//! the leader accepted be committed before they ask raft-rs for the transfer, so it drops
//! nothing.

use raft::StateRole;

use super::{ChainCore, CoreError};

impl ChainCore {
    /// The node is stopping (an operator's restart, SIGTERM): it takes no more envelopes and,
    /// as leader, cuts what the block cutter holds and, once every block it created is
    /// committed, transfers leadership to the most up-to-date active voter — so the group has a
    /// leader again within a round trip, instead of an election timeout after this node falls
    /// silent, and nothing it accepted is dropped. Fabric's orderer just stops. A follower has
    /// nothing to hand over; the runtime forwards what is still queued to the new leader.
    pub fn hand_off(&mut self) -> Result<(), CoreError> {
        self.stopping = true;
        if self.role == StateRole::Leader {
            self.propose_pending(self.now_ns);
        }
        self.try_hand_off();
        self.advance()
    }

    /// Every block this leader created is applied, and it builds on the last one (no config
    /// block in flight, no entries of earlier terms left to apply): nothing it accepted is
    /// still on its way, so leadership can move without dropping any of it.
    fn all_created_applied(&self) -> bool {
        self.created.0 == self.last.number && !self.config_inflight && self.sync_index.is_none()
    }

    /// As a stopping leader with every created block committed: asks raft-rs to transfer
    /// leadership (again after an election timeout if this node still leads by then).
    pub(super) fn try_hand_off(&mut self) {
        if !self.stopping
            || self.role != StateRole::Leader
            || !self.all_created_applied()
            || self.catching_up.is_some()
            || self.evicted
        {
            return;
        }
        let retry_after = self.options.election_tick.max(1) as u64;
        if self
            .hand_off_tried
            .is_some_and(|t| self.ticks < t + retry_after)
        {
            return;
        }
        self.hand_off_tried = Some(self.ticks);
        match self.transfer_target() {
            Some(to) => {
                tracing::info!(channel = %self.channel, to, "stopping: transferring leadership");
                self.raw.transfer_leader(to);
            }
            None => {
                tracing::info!(channel = %self.channel, "stopping: no other voter to hand leadership to")
            }
        }
    }

    /// The consenters (Raft IDs) the operator prefers as leader — say the ones in the region
    /// closest to the others, where commits take one short round trip (`Consensus.
    /// PreferredLeaders`). A leader that is not one of them hands leadership to one that is a
    /// voter, recently active and fully caught up, once it has led for two election timeouts
    /// (so that a preferred node that just came back first catches up, and leadership never
    /// flaps); a preferred leader keeps it. Empty: no preference, as in Fabric.
    pub fn set_preferred_leaders(&mut self, ids: Vec<u64>) {
        if ids != self.preferred {
            tracing::info!(channel = %self.channel, preferred = ?ids, "preferred leaders");
            self.preferred = ids;
        }
    }

    /// As a leader that is not preferred: transfers leadership to a preferred voter that is
    /// caught up (see [`ChainCore::set_preferred_leaders`]).
    pub(super) fn move_to_preferred(&mut self) {
        let me = self.raw.raft.id;
        let election = self.options.election_tick.max(1) as u64;
        if self.preferred.is_empty()
            || self.preferred.contains(&me)
            || self.role != StateRole::Leader
            || self.stopping
            || self.ticks < self.led_since + 2 * election
            || self.prefer_tried.is_some_and(|t| self.ticks < t + election)
            || self.draining.is_some()
            || self.raw.raft.lead_transferee.is_some()
            || self.pending_conf_change().is_some()
            || self.config_inflight
            || self.sync_index.is_some()
            || self.catching_up.is_some()
            || self.evicted
        {
            return;
        }
        // Under load the leader always has entries on their way to a follower: "caught up" is
        // within what is in flight (as for a learner's promotion). Once the leader drains, the
        // target gets the rest, and raft-rs hands over only when it holds everything.
        let last = self.raw.raft.raft_log.last_index();
        let slack = self.options.max_inflight_blocks + 2;
        let voters = self.raw.raft.prs().conf().voters().ids();
        let target = self
            .raw
            .raft
            .prs()
            .iter()
            .filter(|(id, pr)| {
                self.preferred.contains(id)
                    && voters.contains(**id)
                    && pr.recent_active
                    && pr.matched + slack >= last
            })
            .map(|(id, _)| *id)
            .min();
        if let Some(to) = target {
            self.prefer_tried = Some(self.ticks);
            tracing::info!(channel = %self.channel, to, "handing leadership to a preferred leader once what this leader holds is committed");
            self.draining = Some((to, self.ticks, false));
            self.propose_pending(self.now_ns);
            self.transfer_drained();
        }
    }

    /// A transfer to a preferred leader under way: asks raft-rs for it once every created
    /// block is applied. Gives up — taking envelopes again — when raft-rs dropped the transfer
    /// or half an election timeout has passed: a transfer takes a round trip or two, and
    /// clients must not wait on one that failed (the next attempt comes an election timeout
    /// later).
    pub(super) fn transfer_drained(&mut self) {
        let Some((to, since, asked)) = self.draining else {
            return;
        };
        let patience = (self.options.election_tick as u64 / 2).max(2);
        if self.role != StateRole::Leader
            || self.ticks >= since + patience
            || (asked && self.raw.raft.lead_transferee.is_none())
        {
            if self.role == StateRole::Leader {
                tracing::info!(channel = %self.channel, to, "the transfer to a preferred leader did not happen: taking envelopes again");
            }
            self.draining = None;
            return;
        }
        if !asked && self.all_created_applied() {
            tracing::info!(channel = %self.channel, to, "transferring leadership to a preferred leader");
            self.draining = Some((to, since, true));
            self.raw.transfer_leader(to);
        }
    }

    /// The voter to hand leadership to: a consenter of the config in force, preferably recently
    /// active, then the most up to date.
    pub(super) fn transfer_target(&self) -> Option<u64> {
        let me = self.raw.raft.id;
        // Preferably a recently active voter, but not only: raft-rs clears `recent_active` at
        // every CheckQuorum round (each election timeout), and a retry falling on that tick —
        // they come every election timeout too — would find nobody, every time.
        self.raw
            .raft
            .prs()
            .iter()
            .filter(|(id, _)| **id != me)
            .filter(|(id, _)| self.last.metadata.consenter_ids.contains(id))
            // raft-rs ignores a transfer to a learner.
            .filter(|(id, _)| self.raw.raft.prs().conf().voters().contains(**id))
            .max_by_key(|(id, pr)| (pr.recent_active, pr.matched, std::cmp::Reverse(**id)))
            .map(|(id, _)| *id)
    }
}
