//! A CONFIG_UPDATE sent through Broadcast becomes a CONFIG envelope signed by this node (Fabric's
//! `StandardChannel.ProcessConfigUpdateMsg` and `ChainSupport.ProposeConfigUpdate`):
//!
//! 1. the client envelope passes the standard filters ("did not pass initial checks");
//! 2. configtx applies it to the current config (read set, versions, mod_policies), the result is
//!    parsed as a whole channel config, checked for orderer support, for what may not change
//!    (`ValidateNew`), and for etcdraft consensus metadata (options, certificates, one consenter
//!    change at a time, no quorum loss);
//! 3. the next config is wrapped in a CONFIG envelope signed by the node's local MSP identity;
//! 4. that envelope passes the filters again ("did not pass final checks": it must fit
//!    AbsoluteMaxBytes and the node's identity must satisfy `/Channel/Writers`), then the
//!    maintenance rules.
//!
//! Texts follow Fabric's wrapping so that clients and operators see the same messages; every
//! refusal here is BAD_REQUEST except what the filters classify otherwise (permission denied →
//! FORBIDDEN).

use ordo_config::ChannelConfig;
use ordo_config::configtx::{propose_config_update, validate_config_envelope};
use ordo_config::envelope::create_signed_envelope;
use ordo_config::etcdraft::{
    ConsenterChange, consenter_change, validate_consenter_certs, verify_config_metadata,
};
use ordo_msp::SigningIdentity;
use ordo_proto::common::{ConfigEnvelope, Envelope, HeaderType, Status};

use crate::msgprocessor::{FilterSettings, Rejection, apply_filters};

/// `ConsensusType.State` NORMAL.
const STATE_NORMAL: i32 = 0;

/// What the node knows of the Raft group, for the quorum-loss check.
#[derive(Debug, Clone, Default)]
pub struct Membership {
    /// The client TLS certificates of the voters the leader counts as active (Fabric's
    /// ActiveNodes); `None` when nothing is known yet, and then every voter counts.
    pub active: Option<Vec<bytes::Bytes>>,
    /// The client TLS certificates of the consenters that are Raft learners: added, still
    /// catching up, not counted in any quorum.
    pub learners: Vec<bytes::Bytes>,
    /// Whether an added consenter enters as a learner (`Consensus.FabricMembershipChanges`
    /// off): adding one then leaves the voters, and so the quorum, as they are.
    pub adds_learners: bool,
}

impl Membership {
    fn is_learner(&self, cert: &[u8]) -> bool {
        self.learners.iter().any(|c| c.as_ref() == cert)
    }

    /// A voter the leader counts as active.
    fn is_active(&self, cert: &[u8]) -> bool {
        !self.is_learner(cert)
            && self
                .active
                .as_ref()
                .is_none_or(|a| a.iter().any(|c| c.as_ref() == cert))
    }
}

fn bad(info: String) -> Rejection {
    Rejection {
        status: Status::BadRequest,
        info,
    }
}

/// Fabric's `ProcessConfigUpdateMsg`: the signed CONFIG envelope for `env`, and the config
/// sequence it was validated against.
pub fn process_config_update(
    env: &Envelope,
    channel: &str,
    current: &ChannelConfig,
    signer: &SigningIdentity,
    settings: FilterSettings,
    now: i64,
    membership: &Membership,
) -> Result<(Envelope, u64), Rejection> {
    apply_filters(env, current, settings, now).map_err(|r| Rejection {
        status: r.status,
        info: format!(
            "config update for existing channel did not pass initial checks: {}",
            r.info
        ),
    })?;
    let applying = |m: String| {
        bad(format!(
            "error applying config update to existing channel '{channel}': {m}"
        ))
    };
    let next = propose_config_update(current, channel, env).map_err(|e| applying(e.to_string()))?;
    let config = next
        .config
        .as_ref()
        .ok_or_else(|| applying("config envelope has nil config".into()))?;
    let bundle = ChannelConfig::new(config).map_err(|e| applying(e.to_string()))?;
    bundle
        .check_orderer_support()
        .map_err(|e| applying(format!("config update is not compatible: {e}")))?;
    current
        .validate_new(&bundle)
        .map_err(|e| applying(e.to_string()))?;
    check_consensus_metadata(current, &bundle, now, membership).map_err(|e| {
        applying(format!(
            "consensus metadata update for channel config update is invalid: {e}"
        ))
    })?;

    let data = ordo_protolator::marshal("common.ConfigEnvelope", &next)
        .map_err(|e| bad(format!("could not marshal the config envelope: {e}")))?;
    let config_env = create_signed_envelope(HeaderType::Config, channel, signer, data.into())
        .map_err(|e| bad(format!("could not sign the config envelope: {e}")))?;

    apply_filters(&config_env, current, settings, now).map_err(|r| Rejection {
        status: r.status,
        info: format!(
            "config update for existing channel did not pass final checks: {}",
            r.info
        ),
    })?;
    check_maintenance(current, &bundle).map_err(|m| {
        bad(format!(
            "config update for existing channel did not pass maintenance checks: config transaction inspection failed: {m}"
        ))
    })?;
    Ok((config_env, current.sequence()))
}

/// Re-validation of a CONFIG envelope at ordering time when the config moved on since it was
/// made (Fabric's `ProcessConfigMsg` on the leader): it must still be exactly what its
/// `last_update` produces from the current config.
pub fn revalidate_config(
    config_env: &Envelope,
    channel: &str,
    current: &ChannelConfig,
) -> Result<(), String> {
    let ce: ConfigEnvelope =
        ordo_config::envelope::config_envelope(config_env).map_err(|e| e.to_string())?;
    validate_config_envelope(current, channel, &ce).map_err(|e| e.to_string())
}

/// Fabric's etcdraft `ValidateConsensusMetadata(old, new)` for a config update.
fn check_consensus_metadata(
    current: &ChannelConfig,
    next: &ChannelConfig,
    now: i64,
    membership: &Membership,
) -> Result<(), String> {
    let (Some(old_o), Some(new_o)) = (&current.orderer, &next.orderer) else {
        return Ok(());
    };
    if new_o.consensus_type != old_o.consensus_type {
        // Ordo orders with etcdraft only; Fabric would need the migration capability and
        // maintenance mode for this, which Ordo does not implement.
        return Err(format!(
            "attempted to change consensus type from {} to {}",
            old_o.consensus_type, new_o.consensus_type
        ));
    }
    let new_md = match new_o.etcdraft() {
        Ok(Some(md)) => md.metadata(),
        Ok(None) => return Ok(()),
        Err(e) => {
            return Err(format!(
                "failed to unmarshal new etcdraft metadata configuration: {e}"
            ));
        }
    };
    let pools = next.orderer_tls_pools().map_err(|e| {
        format!("failed to create x509 verify options from old and new orderer config: {e}")
    })?;
    verify_config_metadata(new_md, &pools, now)
        .map_err(|e| format!("invalid new config metadata: {e}"))?;
    let no_consenters = Default::default();
    let old_md = old_o
        .etcdraft()
        .map_err(|e| e.to_string())?
        .map_or(&no_consenters, |r| r.metadata());
    let change =
        consenter_change(&old_md.consenters, &new_md.consenters).map_err(|e| e.to_string())?;
    let added = match &change {
        ConsenterChange::Add(c) | ConsenterChange::Rotate { new: c, .. } => Some(c),
        _ => None,
    };
    if let Some(c) = added {
        validate_consenter_certs(c, &pools, now, false).map_err(|e| {
            format!(
                "consenter {}:{} has invalid certificates: {e}",
                c.host, c.port
            )
        })?;
    }
    // UnacceptableQuorumLoss, on the runtime set of active nodes. The node whose certificate
    // is rotated counts only if it is active: rotating a node that is down, while the others
    // hold a quorum, is accepted (Fabric counts it wrongly, hyperledger/fabric#3562). Learners
    // are in no quorum: adding a consenter as one, removing one or rotating one changes nothing
    // the quorum depends on, and the voters after the change are the consenters that are not
    // learners (the leader promotes a learner only when the quorum survives it).
    let size = new_md
        .consenters
        .iter()
        .filter(|c| !membership.is_learner(&c.client_tls_cert))
        .count();
    let quorum = size / 2 + 1;
    let active = old_md
        .consenters
        .iter()
        .filter(|c| membership.is_active(&c.client_tls_cert))
        .count();
    let alive = match &change {
        ConsenterChange::None => return Ok(()),
        ConsenterChange::Add(_) if membership.adds_learners => return Ok(()),
        ConsenterChange::Remove(c) | ConsenterChange::Rotate { old: c, .. }
            if membership.is_learner(&c.client_tls_cert) =>
        {
            return Ok(());
        }
        ConsenterChange::Add(_) => {
            if size <= 2 {
                return Ok(());
            }
            active
        }
        ConsenterChange::Rotate { old, .. } => {
            if size <= 2 {
                return Ok(());
            }
            active - usize::from(membership.is_active(&old.client_tls_cert))
        }
        ConsenterChange::Remove(gone) => {
            active - usize::from(membership.is_active(&gone.client_tls_cert))
        }
    };
    if alive < quorum {
        return Err(format!(
            "{alive} out of {size} nodes are alive, configuration will result in quorum loss"
        ));
    }
    Ok(())
}

/// Fabric's `MaintenanceFilter` for the rules that apply to an etcdraft-only orderer.
fn check_maintenance(current: &ChannelConfig, next: &ChannelConfig) -> Result<(), String> {
    let (Some(old_o), Some(new_o)) = (&current.orderer, &next.orderer) else {
        return Err("next config is missing orderer group".into());
    };
    let migration = old_o.capabilities.any(&["V1_4_2", "V2_0"]);
    if !migration {
        if new_o.consensus_state != STATE_NORMAL {
            return Err(format!(
                "next config attempted to change ConsensusType.State to {}, but capability is disabled",
                state_name(new_o.consensus_state)
            ));
        }
        if new_o.consensus_type != old_o.consensus_type {
            return Err(format!(
                "next config attempted to change ConsensusType.Type from {} to {}, but capability is disabled",
                old_o.consensus_type, new_o.consensus_type
            ));
        }
    }
    Ok(())
}

fn state_name(s: i32) -> &'static str {
    match s {
        0 => "STATE_NORMAL",
        1 => "STATE_MAINTENANCE",
        _ => "UNKNOWN",
    }
}
