//! What happens to an envelope between `Broadcast` and ordering (Fabric's
//! `orderer/common/broadcast/broadcast.go`, `multichannel/registrar.go`
//! `BroadcastChannelSupport`, `msgprocessor/standardchannel.go` and its filters):
//!
//! 1. the channel header names the channel; an unknown channel is refused (there is no system
//!    channel to create it);
//! 2. CONFIG_UPDATE goes the config path, CONFIG and ORDERER_TRANSACTION are refused, everything
//!    else — unknown types included — is a normal transaction;
//! 3. normal transactions are refused in maintenance mode, then pass the filters in Fabric's order:
//!    not empty, `len(payload) + len(signature) <= AbsoluteMaxBytes`, creator not expired (unless
//!    disabled, and only with the orderer's ExpirationCheck capability), signature satisfying
//!    `/Channel/Writers` (`/Channel/Orderer/Writers` in maintenance).
//!
//! Each refusal carries Fabric's status (`ClassifyError`: permission denied → FORBIDDEN,
//! maintenance → SERVICE_UNAVAILABLE, unknown channel for an existing-channel lookup →
//! NOT_FOUND, anything else → BAD_REQUEST) and its text, because clients match on both.

use ordo_config::ChannelConfig;
use ordo_config::envelope::signed_data;
use ordo_proto::common::{ChannelHeader, Envelope, HeaderType, Payload, Status};
use prost::Message;

/// `ConsensusType.State` MAINTENANCE.
const STATE_MAINTENANCE: i32 = 1;

/// A refused envelope: the `BroadcastResponse` status and info Fabric would send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status:?}: {info}")]
pub struct Rejection {
    pub status: Status,
    pub info: String,
}

impl Rejection {
    fn bad_request(info: impl Into<String>) -> Self {
        Rejection {
            status: Status::BadRequest,
            info: info.into(),
        }
    }
}

/// How an envelope is processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgClass {
    Normal,
    ConfigUpdate,
}

/// Local settings that change filtering (`General.Authentication.NoExpirationChecks`).
#[derive(Debug, Clone, Copy, Default)]
pub struct FilterSettings {
    pub no_expiration_checks: bool,
}

/// The channel header of an envelope (`protoutil.ChannelHeader`).
pub fn channel_header(env: &Envelope) -> Result<ChannelHeader, Rejection> {
    let wrap = |m: String| Rejection::bad_request(format!("could not determine channel ID: {m}"));
    let payload = Payload::decode(env.payload.clone())
        .map_err(|e| wrap(format!("error unmarshalling Payload: {e}")))?;
    let header = payload
        .header
        .ok_or_else(|| wrap("no header was set".to_string()))?;
    ChannelHeader::decode(header.channel_header)
        .map_err(|e| wrap(format!("error unmarshalling ChannelHeader: {e}")))
}

/// Routes an envelope to its channel and classifies it (`BroadcastChannelSupport`). `channel`
/// looks a channel up among those this node is a consenter of.
pub fn route<'a>(
    env: &Envelope,
    channel: impl FnOnce(&str) -> Option<&'a ChannelConfig>,
) -> Result<(ChannelHeader, MsgClass, &'a ChannelConfig), Rejection> {
    let chdr = channel_header(env)?;
    let Some(config) = channel(&chdr.channel_id) else {
        return Err(Rejection::bad_request(
            "channel creation request not allowed because the orderer system channel is not defined",
        ));
    };
    let class = match HeaderType::try_from(chdr.r#type) {
        Ok(HeaderType::ConfigUpdate) => MsgClass::ConfigUpdate,
        Ok(HeaderType::Config | HeaderType::OrdererTransaction) => {
            return Err(Rejection::bad_request(
                "message is of type that cannot be processed directly",
            ));
        }
        _ => MsgClass::Normal,
    };
    Ok((chdr, class, config))
}

/// When the certificate in a serialized identity expires (Fabric's `crypto.ExpiresAt`): `None`
/// when it cannot be read, which Fabric treats as "never". A creator of a known MSP comes from
/// that MSP's identity cache: parsing its PEM certificate for every envelope was a measurable
/// share of the Broadcast path (profile in docs/performance.md).
fn expires_at(serialized: &[u8], msps: &ordo_msp::MspManager) -> Option<i64> {
    if let Ok(id) = msps.deserialize_identity(serialized) {
        return Some(id.cert().not_after());
    }
    let sid = ordo_proto::msp::SerializedIdentity::decode(serialized).ok()?;
    ordo_msp::Cert::from_pem(&sid.id_bytes)
        .ok()
        .map(|c| c.not_after())
}

fn in_maintenance(config: &ChannelConfig) -> bool {
    config
        .orderer
        .as_ref()
        .is_some_and(|o| o.consensus_state == STATE_MAINTENANCE)
}

/// Fabric's standard channel filters, in order. `now` is seconds since the Unix epoch.
pub fn apply_filters(
    env: &Envelope,
    config: &ChannelConfig,
    settings: FilterSettings,
    now: i64,
) -> Result<(), Rejection> {
    let Some(orderer) = config.orderer.as_ref() else {
        return Err(Rejection::bad_request(
            "channel has no orderer configuration",
        ));
    };
    // EmptyRejectRule: a nil payload (what an absent or empty payload field decodes to).
    if env.payload.is_empty() {
        return Err(Rejection::bad_request("Message was empty"));
    }
    let size = env.payload.len() + env.signature.len();
    let max = orderer.batch_size.absolute_max_bytes as usize;
    if size > max {
        return Err(Rejection::bad_request(format!(
            "message payload is {size} bytes and exceeds maximum allowed {max} bytes"
        )));
    }
    let signed = signed_data(env).map_err(|e| {
        Rejection::bad_request(format!("could not convert message to signedData: {e}"))
    })?;
    if !settings.no_expiration_checks
        && orderer.expiration_check()
        && expires_at(&signed.identity, config.msp_manager()).is_some_and(|t| t <= now)
    {
        return Err(Rejection::bad_request("broadcast client identity expired"));
    }
    let policy_name = if in_maintenance(config) {
        "/Channel/Orderer/Writers"
    } else {
        "/Channel/Writers"
    };
    let policy = config
        .policies()
        .get_policy(policy_name)
        .ok_or_else(|| Rejection::bad_request(format!("could not find policy {policy_name}")))?;
    policy
        .evaluate_signed_data(std::slice::from_ref(&signed), config.msp_manager())
        .map_err(|e| Rejection {
            status: Status::Forbidden,
            info: format!("{e}: permission denied"),
        })
}

/// Fabric's `ProcessNormalMsg`: refuses normal transactions in maintenance mode, then filters.
/// Returns the config sequence the envelope was validated against (carried with it to the leader,
/// which re-validates if the config moved on).
pub fn process_normal(
    env: &Envelope,
    config: &ChannelConfig,
    settings: FilterSettings,
    now: i64,
) -> Result<u64, Rejection> {
    let migration = config
        .orderer
        .as_ref()
        .is_some_and(|o| o.capabilities.has("V1_4_2") || o.capabilities.has("V2_0"));
    if migration && in_maintenance(config) {
        return Err(Rejection {
            status: Status::ServiceUnavailable,
            info: "normal transactions are rejected: maintenance mode".to_string(),
        });
    }
    apply_filters(env, config, settings, now)?;
    Ok(config.sequence())
}
