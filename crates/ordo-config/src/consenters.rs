//! Consenter changes as an operator makes them: the etcdraft consenter list of a channel config,
//! one edit of it (add a consenter, remove one, rotate one's certificates), the quorum rule
//! checked before anything is submitted, and the admin-signed CONFIG_UPDATE that carries the
//! edit.
//!
//! The orderer checks all of this again when the update arrives (`configupdate` in the node,
//! against the leader's view of which consenters are active); checking here first lets a tool
//! refuse with a clear message, and lets it judge "alive" by what it can reach itself.

use bytes::Bytes;
use ordo_msp::SigningIdentity;
use ordo_proto::common::{Config, ConfigUpdateEnvelope, Envelope, HeaderType};
use ordo_proto::etcdraft::{ConfigMetadata, Consenter};
use ordo_proto::orderer::ConsensusType;
use prost::Message;

use crate::envelope::{add_config_signature, create_signed_envelope};
use crate::etcdraft::{ConsenterChange, consenter_change};

/// Why a consenter edit cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConsentersError {
    #[error("the config has no Orderer group")]
    NoOrdererGroup,
    #[error("the Orderer group has no ConsensusType value")]
    NoConsensusType,
    #[error("the consensus type is {0:?}, not etcdraft: it has no consenters to edit")]
    NotEtcdraft(String),
    #[error("malformed {what}: {reason}")]
    Decode { what: &'static str, reason: String },
    #[error("{endpoint} is already a consenter")]
    EndpointTaken { endpoint: String },
    #[error("that certificate is already the {which} certificate of consenter {endpoint}")]
    CertificateTaken {
        which: &'static str,
        endpoint: String,
    },
    #[error("no consenter is at {endpoint} (the consenters are: {})", .known.join(", "))]
    UnknownConsenter {
        endpoint: String,
        known: Vec<String>,
    },
    #[error("consenter {endpoint} already has these certificates: nothing to rotate")]
    NothingToRotate { endpoint: String },
    #[error("removing {endpoint} would leave the channel without consenters")]
    LastConsenter { endpoint: String },
    /// More than one consenter would change (Fabric refuses such an update).
    #[error(transparent)]
    TooManyChanges(#[from] crate::etcdraft::TooManyChanges),
    #[error(
        "{alive} out of {size} nodes would be alive after this change, configuration will result in quorum loss (a quorum is {quorum}; unreachable: {})",
        list_or_none(.unreachable)
    )]
    QuorumLoss {
        alive: usize,
        size: usize,
        quorum: usize,
        unreachable: Vec<String>,
    },
    #[error("computing the config update: {0}")]
    Update(String),
    #[error("signing the config update: {0}")]
    Sign(String),
    #[error("no admin identity to sign the config update")]
    NoSigner,
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

/// `host:port` of a consenter, as operators name them.
pub fn endpoint(c: &Consenter) -> String {
    format!("{}:{}", c.host, c.port)
}

/// The etcdraft metadata of `config`'s `/Channel/Orderer/ConsensusType`, with the value's
/// other fields.
fn consensus(config: &Config) -> Result<(ConsensusType, ConfigMetadata), ConsentersError> {
    let value = config
        .channel_group
        .as_ref()
        .and_then(|g| g.groups.get("Orderer"))
        .ok_or(ConsentersError::NoOrdererGroup)?
        .values
        .get("ConsensusType")
        .ok_or(ConsentersError::NoConsensusType)?;
    let ct = ConsensusType::decode(value.value.clone()).map_err(|e| ConsentersError::Decode {
        what: "ConsensusType",
        reason: e.to_string(),
    })?;
    if ct.r#type != "etcdraft" {
        return Err(ConsentersError::NotEtcdraft(ct.r#type));
    }
    let md = ConfigMetadata::decode(ct.metadata.clone()).map_err(|e| ConsentersError::Decode {
        what: "etcdraft ConfigMetadata",
        reason: e.to_string(),
    })?;
    Ok((ct, md))
}

/// The consenters of `config`, in config order.
pub fn consenters(config: &Config) -> Result<Vec<Consenter>, ConsentersError> {
    Ok(consensus(config)?.1.consenters)
}

/// Edits the etcdraft consenters of `config` in place (every other field of the ConsensusType
/// value and of its metadata is kept as it was).
pub fn edit_consenters(
    config: &mut Config,
    edit: impl FnOnce(&mut Vec<Consenter>),
) -> Result<(), ConsentersError> {
    let (mut ct, mut md) = consensus(config)?;
    edit(&mut md.consenters);
    ct.metadata = md.encode_to_vec().into();
    let value = config
        .channel_group
        .as_mut()
        .and_then(|g| g.groups.get_mut("Orderer"))
        .and_then(|o| o.values.get_mut("ConsensusType"))
        .ok_or(ConsentersError::NoConsensusType)?;
    value.value = ct.encode_to_vec().into();
    Ok(())
}

/// One change of the consenter set, as an operator asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsenterEdit {
    /// A new consenter (host, port and its TLS certificates, PEM).
    Add(Consenter),
    /// The consenter at `host:port` leaves.
    Remove { host: String, port: u32 },
    /// The consenter at `host:port` gets new TLS certificates (PEM); it keeps its Raft ID.
    Rotate {
        host: String,
        port: u32,
        client_tls_cert: Bytes,
        server_tls_cert: Bytes,
    },
}

impl ConsenterEdit {
    /// `host:port` of the consenter the edit is about.
    pub fn endpoint(&self) -> String {
        match self {
            ConsenterEdit::Add(c) => endpoint(c),
            ConsenterEdit::Remove { host, port } | ConsenterEdit::Rotate { host, port, .. } => {
                format!("{host}:{port}")
            }
        }
    }

    /// The consenter list after the edit, and the change it makes (exactly one consenter, by
    /// Fabric's rule of matching client certificates).
    pub fn apply(
        &self,
        current: &[Consenter],
    ) -> Result<(Vec<Consenter>, ConsenterChange), ConsentersError> {
        let at = |host: &str, port: u32| {
            current
                .iter()
                .position(|c| c.host == host && c.port == port)
                .ok_or_else(|| ConsentersError::UnknownConsenter {
                    endpoint: format!("{host}:{port}"),
                    known: current.iter().map(endpoint).collect(),
                })
        };
        let mut next = current.to_vec();
        match self {
            ConsenterEdit::Add(c) => {
                if current.iter().any(|x| x.host == c.host && x.port == c.port) {
                    return Err(ConsentersError::EndpointTaken {
                        endpoint: endpoint(c),
                    });
                }
                check_unused(current, None, &[&c.client_tls_cert, &c.server_tls_cert])?;
                next.push(c.clone());
            }
            ConsenterEdit::Remove { host, port } => {
                let i = at(host, *port)?;
                if current.len() == 1 {
                    return Err(ConsentersError::LastConsenter {
                        endpoint: self.endpoint(),
                    });
                }
                next.remove(i);
            }
            ConsenterEdit::Rotate {
                host,
                port,
                client_tls_cert,
                server_tls_cert,
            } => {
                let i = at(host, *port)?;
                // Consenters are matched by their client certificate: the same client
                // certificate would make no change at all.
                if current[i].client_tls_cert == *client_tls_cert {
                    return Err(ConsentersError::NothingToRotate {
                        endpoint: self.endpoint(),
                    });
                }
                check_unused(current, Some(i), &[client_tls_cert, server_tls_cert])?;
                next[i].client_tls_cert = client_tls_cert.clone();
                next[i].server_tls_cert = server_tls_cert.clone();
            }
        }
        let change = consenter_change(current, &next).map_err(ConsentersError::TooManyChanges)?;
        Ok((next, change))
    }
}

/// Refuses certificates that another consenter (other than `except`) already uses: Fabric
/// refuses duplicates, and matching by certificate would mistake one consenter for another.
fn check_unused(
    current: &[Consenter],
    except: Option<usize>,
    certs: &[&Bytes],
) -> Result<(), ConsentersError> {
    for (i, c) in current.iter().enumerate() {
        if Some(i) == except {
            continue;
        }
        for cert in certs {
            for (which, theirs) in [
                ("client", &c.client_tls_cert),
                ("server", &c.server_tls_cert),
            ] {
                if theirs == *cert {
                    return Err(ConsentersError::CertificateTaken {
                        which,
                        endpoint: endpoint(c),
                    });
                }
            }
        }
    }
    Ok(())
}

/// What the quorum rule found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumCheck {
    /// Consenters after the change.
    pub size: usize,
    pub quorum: usize,
    /// Consenters counted alive once the change is made (see [`check_quorum`]).
    pub alive: usize,
    /// Whether the rule applies: Fabric does not check additions or rotations that leave two
    /// consenters or fewer (such a cluster tolerates no failure anyway), and an addition does
    /// not change the quorum when the new consenter enters as a learner.
    pub applies: bool,
    /// The change adds a consenter that enters the Raft group as a learner.
    pub adds_learner: bool,
}

/// Fabric's `UnacceptableQuorumLoss`, judged with `is_alive` (the node asks the Raft leader
/// which consenters are active; a tool can only try to reach them). After the change, the
/// consenters alive must still be a quorum of the new set: for an addition the current ones
/// alive count (the new node is not running Raft yet); for a removal, those alive minus the
/// one removed; for a rotation, those alive minus the rotated one, which drops out until it
/// presents its new certificate — so rotating a node that is down is fine when the rest hold a
/// quorum. With `adds_learners` (Ordo's default; off with `Consensus.FabricMembershipChanges`)
/// an added consenter is a learner until it has caught up, so an addition needs no check. A
/// tool cannot tell which consenters are learners now, so they count here as voters: the
/// check errs on the side of refusing, and the orderer's own check is exact.
pub fn check_quorum(
    current: &[Consenter],
    change: &ConsenterChange,
    is_alive: impl Fn(&Consenter) -> bool,
    adds_learners: bool,
) -> Result<QuorumCheck, ConsentersError> {
    let alive_now: Vec<&Consenter> = current.iter().filter(|c| is_alive(c)).collect();
    let alive_except = |gone: &Consenter| {
        alive_now
            .iter()
            .filter(|c| c.client_tls_cert != gone.client_tls_cert)
            .count()
    };
    let (size, alive, applies) = match change {
        ConsenterChange::None => (current.len(), alive_now.len(), false),
        ConsenterChange::Add(_) => (
            current.len() + 1,
            alive_now.len(),
            !adds_learners && current.len() + 1 > 2,
        ),
        ConsenterChange::Rotate { old, .. } => {
            (current.len(), alive_except(old), current.len() > 2)
        }
        ConsenterChange::Remove(gone) => (current.len() - 1, alive_except(gone), true),
    };
    let quorum = size / 2 + 1;
    if applies && alive < quorum {
        let unreachable = current
            .iter()
            .filter(|c| !is_alive(c))
            .map(endpoint)
            .collect();
        return Err(ConsentersError::QuorumLoss {
            alive,
            size,
            quorum,
            unreachable,
        });
    }
    Ok(QuorumCheck {
        size,
        quorum,
        alive,
        applies,
        adds_learner: adds_learners && matches!(change, ConsenterChange::Add(_)),
    })
}

/// The CONFIG_UPDATE envelope turning `original` into `updated` on `channel`: every signer
/// signs the config update (as `peer channel signconfigtx` would, one after another), and the
/// first also signs the envelope (as `peer channel update` does).
pub fn signed_config_update(
    channel: &str,
    original: &Config,
    updated: &Config,
    signers: &[&SigningIdentity],
) -> Result<Envelope, ConsentersError> {
    let first = signers.first().ok_or(ConsentersError::NoSigner)?;
    let update = ordo_protolator::compute_update(channel, original, updated)
        .map_err(|e| ConsentersError::Update(e.to_string()))?;
    let mut cue = ConfigUpdateEnvelope {
        config_update: update.encode_to_vec().into(),
        signatures: vec![],
    };
    for s in signers {
        add_config_signature(&mut cue, s).map_err(|e| ConsentersError::Sign(e.to_string()))?;
    }
    create_signed_envelope(
        HeaderType::ConfigUpdate,
        channel,
        first,
        cue.encode_to_vec().into(),
    )
    .map_err(|e| ConsentersError::Sign(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(n: u8) -> Consenter {
        Consenter {
            host: "127.0.0.1".into(),
            port: 7000 + u32::from(n),
            client_tls_cert: vec![n].into(),
            server_tls_cert: vec![n, n].into(),
        }
    }

    #[test]
    fn an_edit_changes_exactly_one_consenter() {
        let cur = [c(1), c(2)];
        let (next, change) = ConsenterEdit::Add(c(3)).apply(&cur).unwrap();
        assert_eq!(next, vec![c(1), c(2), c(3)]);
        assert_eq!(change, ConsenterChange::Add(c(3)));
        let (next, change) = ConsenterEdit::Remove {
            host: "127.0.0.1".into(),
            port: 7001,
        }
        .apply(&cur)
        .unwrap();
        assert_eq!(next, vec![c(2)]);
        assert_eq!(change, ConsenterChange::Remove(c(1)));
        let rot = ConsenterEdit::Rotate {
            host: "127.0.0.1".into(),
            port: 7002,
            client_tls_cert: vec![9].into(),
            server_tls_cert: vec![9].into(),
        };
        let (next, change) = rot.apply(&cur).unwrap();
        assert_eq!(next[1].client_tls_cert, Bytes::from(vec![9]));
        assert_eq!(next[1].port, 7002);
        assert!(matches!(change, ConsenterChange::Rotate { old, .. } if old == c(2)));
    }

    #[test]
    fn bad_edits_are_refused_with_what_is_wrong() {
        let cur = [c(1), c(2)];
        let mut dup = c(3);
        dup.server_tls_cert = c(1).client_tls_cert;
        assert!(matches!(
            ConsenterEdit::Add(dup).apply(&cur),
            Err(ConsentersError::CertificateTaken {
                which: "client",
                ..
            })
        ));
        let mut same_port = c(3);
        same_port.port = 7001;
        assert!(matches!(
            ConsenterEdit::Add(same_port).apply(&cur),
            Err(ConsentersError::EndpointTaken { .. })
        ));
        let e = ConsenterEdit::Remove {
            host: "h".into(),
            port: 1,
        }
        .apply(&cur)
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "no consenter is at h:1 (the consenters are: 127.0.0.1:7001, 127.0.0.1:7002)"
        );
        assert!(matches!(
            ConsenterEdit::Remove {
                host: "127.0.0.1".into(),
                port: 7001
            }
            .apply(&cur[..1]),
            Err(ConsentersError::LastConsenter { .. })
        ));
        let same = ConsenterEdit::Rotate {
            host: "127.0.0.1".into(),
            port: 7001,
            client_tls_cert: c(1).client_tls_cert,
            server_tls_cert: vec![5].into(),
        };
        assert!(matches!(
            same.apply(&cur),
            Err(ConsentersError::NothingToRotate { .. })
        ));
    }

    #[test]
    fn the_quorum_rule_counts_consenters_alive_after_the_change() {
        let cur = [c(1), c(2), c(3)];
        let up = |down: &'static [u8]| {
            move |x: &Consenter| !down.iter().any(|d| x.client_tls_cert[..] == [*d])
        };
        // Adding a fourth voter (Fabric's AddNode) with one of three down: 2 alive < quorum 3.
        let (_, add) = ConsenterEdit::Add(c(4)).apply(&cur).unwrap();
        let e = check_quorum(&cur, &add, up(&[3]), false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "2 out of 4 nodes would be alive after this change, configuration will result in quorum loss (a quorum is 3; unreachable: 127.0.0.1:7003)"
        );
        assert!(check_quorum(&cur, &add, up(&[]), false).is_ok());
        // Removing a live node while another is down: 1 alive < 2.
        let (_, rm) = ConsenterEdit::Remove {
            host: "127.0.0.1".into(),
            port: 7001,
        }
        .apply(&cur)
        .unwrap();
        assert!(check_quorum(&cur, &rm, up(&[3]), true).is_err());
        // Removing the node that is down is fine.
        let (_, rm3) = ConsenterEdit::Remove {
            host: "127.0.0.1".into(),
            port: 7003,
        }
        .apply(&cur)
        .unwrap();
        assert_eq!(
            check_quorum(&cur, &rm3, up(&[3]), true).unwrap(),
            QuorumCheck {
                size: 2,
                quorum: 2,
                alive: 2,
                applies: true,
                adds_learner: false,
            }
        );
        // Rotating the node that is down is fine; rotating a live one while another is down
        // is not.
        let rot = |port| ConsenterEdit::Rotate {
            host: "127.0.0.1".into(),
            port,
            client_tls_cert: vec![9].into(),
            server_tls_cert: vec![9].into(),
        };
        let (_, r3) = rot(7003).apply(&cur).unwrap();
        assert!(check_quorum(&cur, &r3, up(&[3]), true).is_ok());
        let (_, r2) = rot(7002).apply(&cur).unwrap();
        assert!(check_quorum(&cur, &r2, up(&[3]), true).is_err());
        // Two consenters or fewer: additions and rotations are not checked (Fabric's rule).
        let (_, add2) = ConsenterEdit::Add(c(2)).apply(&cur[..1]).unwrap();
        assert!(
            !check_quorum(&cur[..1], &add2, up(&[1]), false)
                .unwrap()
                .applies
        );
        // An added learner changes no quorum: a fourth with two of three down is fine.
        let q = check_quorum(&cur, &add, up(&[2, 3]), true).unwrap();
        assert!(!q.applies && q.adds_learner);
        assert!(check_quorum(&cur, &add, up(&[2, 3]), false).is_err());
    }

    #[test]
    fn every_admin_signs_the_update_and_the_first_signs_the_envelope() {
        use ordo_proto::common::{Block, ConfigUpdate, SignatureHeader};
        let load = |dir: &str, id: &str| {
            ordo_msp::local::load_signing_identity(
                &ordo_testkit::fixture(&format!("crypto-config/{dir}/msp")),
                id,
            )
            .unwrap()
            .signer
        };
        let orderer_admin = load(
            "ordererOrganizations/example.com/users/Admin@example.com",
            "OrdererMSP",
        );
        let org1_admin = load(
            "peerOrganizations/org1.example.com/users/Admin@org1.example.com",
            "Org1MSP",
        );
        let block = Block::decode(ordo_testkit::read("channel-genesis/channel-1.block").as_slice())
            .unwrap();
        let env = Envelope::decode(block.data.unwrap().data[0].clone()).unwrap();
        let original = crate::envelope::config_envelope(&env)
            .unwrap()
            .config
            .unwrap();
        let mut updated = original.clone();
        edit_consenters(&mut updated, |cs| cs[0].port += 1).unwrap();
        assert_eq!(consenters(&updated).unwrap()[0].port, 37152);

        let env = signed_config_update(
            "channel-1",
            &original,
            &updated,
            &[&orderer_admin, &org1_admin],
        )
        .unwrap();
        let parsed = crate::envelope::parse(&env).unwrap();
        assert_eq!(parsed.signature_header.creator, *orderer_admin.serialized());
        let cue = ConfigUpdateEnvelope::decode(parsed.payload.data).unwrap();
        let creators: Vec<Bytes> = cue
            .signatures
            .iter()
            .map(|s| {
                SignatureHeader::decode(s.signature_header.clone())
                    .unwrap()
                    .creator
            })
            .collect();
        assert_eq!(
            creators,
            vec![
                orderer_admin.serialized().clone(),
                org1_admin.serialized().clone()
            ]
        );
        let update = ConfigUpdate::decode(cue.config_update).unwrap();
        assert_eq!(update.channel_id, "channel-1");
        assert!(matches!(
            signed_config_update("channel-1", &original, &updated, &[]),
            Err(ConsentersError::NoSigner)
        ));
    }
}
