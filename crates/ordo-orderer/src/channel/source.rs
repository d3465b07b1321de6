//! What a channel tells the block puller (`ordo_cluster::puller`) when it catches up with a Raft
//! snapshot (Fabric's etcdraft `catchUp`): the orderers of the channel's config to pull from,
//! requests signed by the node's identity, and how a pulled block is judged — well-formed
//! envelopes (Fabric's `VerifyTransactionsAreWellFormed`) and signatures satisfying
//! `/Channel/Orderer/BlockValidation` of the newest config seen, which a pulled config block
//! replaces for the blocks after it. A follower that starts from an empty ledger has no config
//! to check block 0 with: block 0 bootstraps the checks (as in Fabric's follower), and the hash
//! chain up to the join block the operator gave vouches for it.

use std::sync::Arc;

use bytes::Bytes;
use ordo_cluster::puller::{Source, SourceError};
use ordo_config::ChannelConfig;
use ordo_config::envelope::create_signed_envelope_with_tls_binding;
use ordo_ledger::block::{is_config_block, verify_signatures};
use ordo_msp::SigningIdentity;
use ordo_proto::common::{Block, Envelope, HeaderType};
use ordo_proto::orderer::SeekInfo;
use prost::Message;

use super::config_of_block;

/// The puller's view of one channel.
pub struct ChannelSource {
    channel: String,
    /// The config blocks are checked against; `None` until block 0 is pulled.
    config: Option<ChannelConfig>,
    /// The newest config known, whose orderers are pulled from.
    newest: ChannelConfig,
    signer: Arc<SigningIdentity>,
}

impl ChannelSource {
    pub fn new(channel: &str, config: ChannelConfig, signer: Arc<SigningIdentity>) -> Self {
        ChannelSource {
            channel: channel.to_string(),
            newest: config.clone(),
            config: Some(config),
            signer,
        }
    }

    /// A source for a ledger that is still empty: block 0 is taken as it comes (its hash chain
    /// to a later trusted block is the caller's to check), and `newest` (the join block's
    /// config) names the orderers.
    pub fn from_genesis(
        channel: &str,
        newest: ChannelConfig,
        signer: Arc<SigningIdentity>,
    ) -> Self {
        ChannelSource {
            channel: channel.to_string(),
            config: None,
            newest,
            signer,
        }
    }
}

/// The orderer endpoints of a config: every orderer organization's `Endpoints`, or the global
/// `OrdererAddresses` when no organization names any (Fabric's `EndpointconfigFromConfigBlock`).
pub fn orderer_endpoints(config: &ChannelConfig) -> Vec<String> {
    let per_org: Vec<String> = config
        .orderer
        .iter()
        .flat_map(|o| o.orgs.values())
        .flat_map(|org| org.endpoints.iter().cloned())
        .collect();
    if per_org.is_empty() {
        config.orderer_addresses.clone()
    } else {
        per_org
    }
}

/// Why a pulled block's envelopes are not well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("block {0} has no transactions")]
    Empty(u64),
    #[error("block {block} transaction {tx}: {reason}")]
    Undecodable {
        block: u64,
        tx: usize,
        reason: String,
    },
    #[error("block {block} transaction {tx} has trailing or non-canonical bytes")]
    NonCanonical { block: u64, tx: usize },
    #[error("block {block} transaction {tx} has an empty payload or signature")]
    Unsigned { block: u64, tx: usize },
}

/// Fabric's `VerifyTransactionsAreWellFormed`: each envelope re-encodes to its own bytes (no
/// trailing or unknown data) and has a payload and a signature.
pub fn well_formed(block: &Block) -> Result<(), Malformed> {
    let number = block.header.as_ref().map_or(0, |h| h.number);
    let data = block.data.as_ref().map(|d| &d.data[..]).unwrap_or_default();
    if data.is_empty() {
        return Err(Malformed::Empty(number));
    }
    for (tx, raw) in data.iter().enumerate() {
        let env = Envelope::decode(raw.clone()).map_err(|e| Malformed::Undecodable {
            block: number,
            tx,
            reason: e.to_string(),
        })?;
        if env.encode_to_vec()[..] != raw[..] {
            return Err(Malformed::NonCanonical { block: number, tx });
        }
        if env.payload.is_empty() || env.signature.is_empty() {
            return Err(Malformed::Unsigned { block: number, tx });
        }
    }
    Ok(())
}

impl Source for ChannelSource {
    fn endpoints(&self) -> Vec<String> {
        orderer_endpoints(&self.newest)
    }

    fn tls_roots(&self) -> Vec<Bytes> {
        self.newest.orderer_tls_cas()
    }

    fn seek_envelope(&self, seek: SeekInfo, tls_cert_hash: Bytes) -> Result<Envelope, SourceError> {
        Ok(create_signed_envelope_with_tls_binding(
            HeaderType::DeliverSeekInfo,
            &self.channel,
            &self.signer,
            seek.encode_to_vec().into(),
            tls_cert_hash,
        )?)
    }

    fn verify(&mut self, block: &Block) -> Result<(), SourceError> {
        let Some(config) = &self.config else {
            // Block 0 (the puller checked its number): it carries the first config.
            let genesis = config_of_block(block)?;
            self.config = Some(genesis);
            return Ok(());
        };
        well_formed(block)?;
        let policy = config
            .policies()
            .get_policy("/Channel/Orderer/BlockValidation")
            .ok_or("the channel config has no /Channel/Orderer/BlockValidation policy")?;
        verify_signatures(block, &policy, config.msp_manager())?;
        if is_config_block(block) {
            let next = config_of_block(block)?;
            if next.sequence() > self.newest.sequence() {
                self.newest = next.clone();
            }
            self.config = Some(next);
        }
        Ok(())
    }
}
