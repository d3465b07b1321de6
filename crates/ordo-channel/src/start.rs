//! How a channel starts on a node that already holds it (a restart, or a follower whose ledger
//! reached a config block listing it): as a consenter under which Raft ID, on which WAL, or as a
//! follower — one function for the node's registrar and for the simulator.

use ordo_raft::chain::{Start, needed_for_quorum};

use crate::config::ConfigView;

/// What a node knows of a channel's Raft WAL before opening it for a chain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalFacts {
    /// Nothing was ever persisted.
    pub fresh: bool,
    /// The Raft ID the state was recorded under (`None`: fresh, or written before IDs were
    /// recorded).
    pub owner: Option<u64>,
    /// The voters of the membership it last persisted.
    pub voters: Vec<u64>,
}

/// How to start a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPlan {
    /// Not a consenter: follow the channel.
    Follow,
    /// Run the Raft chain as node `id`; with `wipe_wal`, from an empty WAL (the one on disk
    /// belongs to another Raft ID of this node: it was removed and added back).
    Consent { id: u64, wipe_wal: bool },
}

/// The start of a channel whose ledger's last config is `config`, whose last block's consenter
/// IDs are `ids` (in config order), on a node whose server TLS key is `self_key`:
///
/// - listed under ID `id`: a consenter under `id`, on the WAL on disk when it was recorded
///   under `id` (or, with `keep_unowned`, under no ID), otherwise on an empty one — a node
///   re-added after its eviction has a new ID, and reusing the old state under it is what makes
///   Fabric loop forever (hyperledger/fabric#3992), while a node under an ID it still holds
///   keeps its state: the leader remembers how far that node's log went;
/// - not listed, but its WAL still has it as a voter the other voter needs for a quorum (the
///   config removed it, the Raft group has not yet): a consenter under its old ID until the
///   removal is applied (see [`needed_for_quorum`]);
/// - otherwise a follower.
pub fn plan<C: ConfigView>(
    config: &C,
    ids: &[u64],
    self_key: Option<&[u8]>,
    wal: &WalFacts,
    keep_unowned: bool,
) -> StartPlan {
    let listed = self_key
        .and_then(|k| config.position_of(k))
        .and_then(|pos| ids.get(pos).copied());
    match listed {
        Some(id) => {
            let keep = wal.fresh || wal.owner == Some(id) || (wal.owner.is_none() && keep_unowned);
            StartPlan::Consent {
                id,
                wipe_wal: !keep,
            }
        }
        None => match wal.owner {
            Some(id) if needed_for_quorum(&wal.voters, id) => StartPlan::Consent {
                id,
                wipe_wal: false,
            },
            _ => StartPlan::Follow,
        },
    }
}

/// Which start the Raft core makes: from its WAL when it has one, fresh from a genesis block,
/// or joining a running group (its ledger was pulled from the others). `recover` reads the WAL.
pub fn start_kind<E>(
    wal_fresh: bool,
    ledger_height: u64,
    recover: impl FnOnce() -> Result<ordo_raft::storage::Recovered, E>,
) -> Result<Start, E> {
    Ok(if !wal_fresh {
        Start::Restart(Box::new(recover()?))
    } else if ledger_height == 1 {
        Start::Fresh
    } else {
        Start::Join
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigReadError, ConsenterEntry, RaftSettings};
    use bytes::Bytes;
    use ordo_proto::common::Block;

    /// Consenters whose server keys are their one-byte names.
    #[derive(Clone)]
    struct Keys(Vec<u8>);

    impl ConfigView for Keys {
        fn from_block(_: &Block) -> Result<Self, ConfigReadError> {
            Err(ConfigReadError::NoEnvelope)
        }
        fn sequence(&self) -> u64 {
            0
        }
        fn consenters(&self) -> Vec<ConsenterEntry> {
            self.0
                .iter()
                .map(|k| ConsenterEntry {
                    host: String::new(),
                    port: 0,
                    client_tls_cert: Bytes::from(vec![*k]),
                    server_tls_cert: Bytes::from(vec![*k]),
                })
                .collect()
        }
        fn position_of(&self, key: &[u8]) -> Option<usize> {
            self.0.iter().position(|k| [*k] == key)
        }
        fn raft_settings(&self) -> Result<RaftSettings, ConfigReadError> {
            Err(ConfigReadError::NoEnvelope)
        }
        fn restart_only_changes(&self, _: &Self) -> Vec<String> {
            Vec::new()
        }
    }

    fn wal(owner: Option<u64>, voters: &[u64]) -> WalFacts {
        WalFacts {
            fresh: owner.is_none() && voters.is_empty(),
            owner,
            voters: voters.to_vec(),
        }
    }

    #[test]
    fn a_listed_node_keeps_the_wal_of_its_id_and_gets_an_empty_one_under_a_new_id() {
        let cfg = Keys(vec![b'a', b'b', b'c']);
        let ids = [1, 4, 3];
        let plan_for = |key: u8, w: &WalFacts| plan(&cfg, &ids, Some(&[key]), w, false);
        assert_eq!(
            plan_for(b'b', &wal(Some(4), &[1, 3, 4])),
            StartPlan::Consent {
                id: 4,
                wipe_wal: false
            }
        );
        // Re-added under 4 after holding 2: the old state goes.
        assert_eq!(
            plan_for(b'b', &wal(Some(2), &[1, 2, 3])),
            StartPlan::Consent {
                id: 4,
                wipe_wal: true
            }
        );
        assert_eq!(
            plan_for(b'b', &wal(None, &[])),
            StartPlan::Consent {
                id: 4,
                wipe_wal: false
            }
        );
        // An unowned WAL is kept only when asked (a restart: nothing else could have written
        // it).
        let unowned = WalFacts {
            fresh: false,
            owner: None,
            voters: vec![1, 3, 4],
        };
        assert_eq!(
            plan(&cfg, &ids, Some(b"b"), &unowned, true),
            StartPlan::Consent {
                id: 4,
                wipe_wal: false
            }
        );
        assert_eq!(
            plan_for(b'b', &unowned),
            StartPlan::Consent {
                id: 4,
                wipe_wal: true
            }
        );
    }

    #[test]
    fn an_unlisted_node_follows_unless_the_other_voter_still_needs_it() {
        let cfg = Keys(vec![b'a']);
        // Removed from {1, 2} but the removal not applied: 1 needs 2.
        assert_eq!(
            plan(&cfg, &[1], Some(b"b"), &wal(Some(2), &[1, 2]), false),
            StartPlan::Consent {
                id: 2,
                wipe_wal: false
            }
        );
        // Removed from {1, 2, 3}: the other two are a quorum without it.
        assert_eq!(
            plan(&cfg, &[1], Some(b"b"), &wal(Some(2), &[1, 2, 3]), false),
            StartPlan::Follow
        );
        // Its removal applied: not a voter any more.
        assert_eq!(
            plan(&cfg, &[1], Some(b"b"), &wal(Some(2), &[1]), false),
            StartPlan::Follow
        );
        assert_eq!(
            plan(&cfg, &[1], None, &wal(None, &[]), false),
            StartPlan::Follow
        );
    }
}
