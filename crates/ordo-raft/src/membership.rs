//! Consenter-set changes carried by config blocks (Fabric's `ComputeMembershipChanges`).
//!
//! A channel's consenters are listed in its config; their Raft IDs are in the consenter metadata
//! of every block (`etcdraft.BlockMetadata.consenter_ids`, the i-th ID being the i-th consenter's).
//! When a config block changes the list, every node computes the same new metadata from the old
//! metadata, the old list and the new one, matching consenters by the **exact bytes** of their
//! client TLS certificate (as Fabric does):
//!
//! - one consenter added: it gets `next_consenter_id`, which then grows (IDs are never reused),
//!   and the Raft group must add that node;
//! - one removed: its ID goes, and the Raft group must remove that node;
//! - one added and one removed in the same update: a certificate rotation; the new certificate
//!   keeps the old ID and the Raft group does not change;
//! - anything more is refused (config-update validation refuses it before ordering; a block that
//!   still carries it stops the chain, as Fabric panics).

use bytes::Bytes;
use ordo_proto::etcdraft::BlockMetadata;

/// What the Raft group must do after a config block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfChangeKind {
    /// Add voter `id`.
    Add(u64),
    /// Remove voter `id`.
    Remove(u64),
}

impl ConfChangeKind {
    pub fn node(self) -> u64 {
        match self {
            ConfChangeKind::Add(id) | ConfChangeKind::Remove(id) => id,
        }
    }
}

/// The result of comparing a config block's consenters with the current ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipChange {
    /// The consenter metadata to stamp on the config block and the blocks after it
    /// (`raft_index` unchanged: the caller sets it).
    pub metadata: BlockMetadata,
    pub conf_change: Option<ConfChangeKind>,
    /// The ID whose certificate was replaced, for a rotation.
    pub rotated: Option<u64>,
}

/// Why a config block's consenter list cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error(
        "update of more than one consenter at a time is not supported, requested changes: add {added} node(s), remove {removed} node(s)"
    )]
    TooManyChanges { added: usize, removed: usize },
    #[error("the consenter metadata lists {ids} IDs for {consenters} consenters")]
    Mismatch { ids: usize, consenters: usize },
}

/// Fabric's `ComputeMembershipChanges`: `old_certs` are the current consenters' client TLS
/// certificates in config order (paired with `old.consenter_ids`), `new_certs` the config block's.
pub fn compute(
    old: &BlockMetadata,
    old_certs: &[Bytes],
    new_certs: &[Bytes],
) -> Result<MembershipChange, MembershipError> {
    if old.consenter_ids.len() != old_certs.len() {
        return Err(MembershipError::Mismatch {
            ids: old.consenter_ids.len(),
            consenters: old_certs.len(),
        });
    }
    let id_of = |cert: &Bytes| {
        old_certs
            .iter()
            .position(|c| c == cert)
            .map(|i| old.consenter_ids[i])
    };
    let mut metadata = old.clone();
    metadata.consenter_ids = vec![0; new_certs.len()];
    let mut added = Vec::new();
    for (i, cert) in new_certs.iter().enumerate() {
        match id_of(cert) {
            Some(id) => metadata.consenter_ids[i] = id,
            None => added.push(i),
        }
    }
    let removed: Vec<u64> = old_certs
        .iter()
        .zip(&old.consenter_ids)
        .filter(|(cert, _)| !new_certs.contains(cert))
        .map(|(_, id)| *id)
        .collect();
    let (conf_change, rotated) = match (added.as_slice(), removed.as_slice()) {
        ([], []) => (None, None),
        ([slot], [gone]) => {
            metadata.consenter_ids[*slot] = *gone;
            (None, Some(*gone))
        }
        ([slot], []) => {
            let id = metadata.next_consenter_id;
            metadata.consenter_ids[*slot] = id;
            metadata.next_consenter_id += 1;
            (Some(ConfChangeKind::Add(id)), None)
        }
        ([], [gone]) => (Some(ConfChangeKind::Remove(*gone)), None),
        (a, r) => {
            return Err(MembershipError::TooManyChanges {
                added: a.len(),
                removed: r.len(),
            });
        }
    };
    Ok(MembershipChange {
        metadata,
        conf_change,
        rotated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certs(ns: &[u8]) -> Vec<Bytes> {
        ns.iter().map(|n| Bytes::from(vec![*n])).collect()
    }

    fn md(ids: &[u64], next: u64) -> BlockMetadata {
        BlockMetadata {
            consenter_ids: ids.to_vec(),
            next_consenter_id: next,
            raft_index: 7,
        }
    }

    #[test]
    fn an_added_consenter_gets_the_next_id_in_its_config_position() {
        let c = compute(
            &md(&[1, 2, 3], 4),
            &certs(&[10, 20, 30]),
            &certs(&[10, 40, 20, 30]),
        )
        .unwrap();
        assert_eq!(c.metadata, md(&[1, 4, 2, 3], 5));
        assert_eq!(c.conf_change, Some(ConfChangeKind::Add(4)));
        assert_eq!(c.rotated, None);
    }

    #[test]
    fn a_removed_consenter_loses_its_id_and_ids_are_not_reused() {
        let c = compute(&md(&[1, 2, 3], 4), &certs(&[10, 20, 30]), &certs(&[10, 30])).unwrap();
        assert_eq!(c.metadata, md(&[1, 3], 4));
        assert_eq!(c.conf_change, Some(ConfChangeKind::Remove(2)));
        let again = compute(&c.metadata, &certs(&[10, 30]), &certs(&[10, 30, 20])).unwrap();
        assert_eq!(again.metadata, md(&[1, 3, 4], 5));
    }

    #[test]
    fn one_add_and_one_remove_is_a_rotation_keeping_the_id() {
        let c = compute(
            &md(&[1, 2, 3], 4),
            &certs(&[10, 20, 30]),
            &certs(&[10, 21, 30]),
        )
        .unwrap();
        assert_eq!(c.metadata, md(&[1, 2, 3], 4));
        assert_eq!(c.conf_change, None);
        assert_eq!(c.rotated, Some(2));
    }

    #[test]
    fn two_changes_are_refused_with_fabrics_words() {
        let e = compute(&md(&[1], 2), &certs(&[10]), &certs(&[10, 20, 30])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "update of more than one consenter at a time is not supported, requested changes: add 2 node(s), remove 0 node(s)"
        );
        assert!(compute(&md(&[1, 2], 3), &certs(&[10]), &certs(&[10])).is_err());
    }

    #[test]
    fn no_change_keeps_the_metadata() {
        let c = compute(&md(&[1, 2], 3), &certs(&[10, 20]), &certs(&[20, 10])).unwrap();
        assert_eq!(c.metadata, md(&[2, 1], 3));
        assert_eq!(c.conf_change, None);
    }
}
