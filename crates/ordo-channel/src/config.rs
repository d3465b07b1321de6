//! What the engine reads from a channel config ([`ConfigView`]), and its implementation for the
//! real one ([`ordo_config::ChannelConfig`]). The simulator implements it for its own, smaller
//! config format: the engine needs the sequence, the consenters and the Raft settings, nothing of
//! policies or MSPs.

use bytes::Bytes;
use ordo_config::ChannelConfig;
use ordo_config::duration::parse_go_duration;
use ordo_proto::common::{Block, Envelope};
use ordo_raft::blockcutter::BatchLimits;
use ordo_raft::chain::Options;
use prost::Message;

/// Why a block's config could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigReadError {
    #[error("config block without envelope")]
    NoEnvelope,
    #[error("config envelope: {0}")]
    Envelope(String),
    #[error("config envelope without config")]
    NoConfig,
    #[error("{0}")]
    Invalid(#[from] ordo_config::ConfigError),
    #[error("the channel has no orderer config")]
    NoOrderer,
    #[error("consensus type {0:?} is not supported (Ordo orders with etcdraft)")]
    NotEtcdraft(String),
    #[error("bad TickInterval {0:?}")]
    TickInterval(String),
}

/// A consenter of a config, in config order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsenterEntry {
    pub host: String,
    pub port: u32,
    pub client_tls_cert: Bytes,
    pub server_tls_cert: Bytes,
}

/// The Raft numbers of a config: the core's options (local choices left at their defaults), the
/// batch limits and the tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftSettings {
    pub options: Options,
    pub limits: BatchLimits,
    pub tick_ns: u64,
}

/// What the engine reads from a channel config.
pub trait ConfigView: Clone + Send + Sync + 'static {
    /// The config carried by a config block.
    fn from_block(block: &Block) -> Result<Self, ConfigReadError>;
    /// How many config updates the channel has taken.
    fn sequence(&self) -> u64;
    /// The consenters, in config order (paired with the consenter IDs of a block's metadata).
    fn consenters(&self) -> Vec<ConsenterEntry>;
    /// Where the consenter whose server TLS key is `self_key` stands among the consenters.
    fn position_of(&self, self_key: &[u8]) -> Option<usize>;
    /// The Raft options, batch limits and tick.
    fn raft_settings(&self) -> Result<RaftSettings, ConfigReadError>;
    /// The Raft options that differ from `next`'s and, as in Fabric, only take effect when the
    /// node restarts, as "Name: old -> new".
    fn restart_only_changes(&self, next: &Self) -> Vec<String>;

    /// The consenters' client TLS certificates, in config order: what the Raft core pairs with
    /// the consenter IDs.
    fn consenter_certs(&self) -> Vec<Bytes> {
        self.consenters()
            .into_iter()
            .map(|c| c.client_tls_cert)
            .collect()
    }
}

/// The channel config carried by a config block.
pub fn config_of_block(block: &Block) -> Result<ChannelConfig, ConfigReadError> {
    let env = block
        .data
        .as_ref()
        .and_then(|d| d.data.first())
        .ok_or(ConfigReadError::NoEnvelope)?;
    let env =
        Envelope::decode(env.clone()).map_err(|e| ConfigReadError::Envelope(e.to_string()))?;
    let ce = ordo_config::envelope::config_envelope(&env)?;
    let config = ce.config.ok_or(ConfigReadError::NoConfig)?;
    Ok(ChannelConfig::new(&config)?)
}

impl ConfigView for ChannelConfig {
    fn from_block(block: &Block) -> Result<Self, ConfigReadError> {
        config_of_block(block)
    }

    fn sequence(&self) -> u64 {
        ChannelConfig::sequence(self)
    }

    fn consenters(&self) -> Vec<ConsenterEntry> {
        self.raft()
            .map(|r| r.consenters())
            .unwrap_or_default()
            .iter()
            .map(|c| ConsenterEntry {
                host: c.host.clone(),
                port: c.port,
                client_tls_cert: c.client_tls_cert.clone(),
                server_tls_cert: c.server_tls_cert.clone(),
            })
            .collect()
    }

    fn consenter_certs(&self) -> Vec<Bytes> {
        self.raft().map(|r| r.client_certs()).unwrap_or_default()
    }

    fn position_of(&self, self_key: &[u8]) -> Option<usize> {
        self.raft()?.position_of(self_key)
    }

    fn raft_settings(&self) -> Result<RaftSettings, ConfigReadError> {
        let o = self.orderer.as_ref().ok_or(ConfigReadError::NoOrderer)?;
        let md = o
            .etcdraft()?
            .ok_or_else(|| ConfigReadError::NotEtcdraft(o.consensus_type.clone()))?;
        let opts = md.options();
        let tick = parse_go_duration(&opts.tick_interval)
            .ok()
            .filter(|ns| *ns > 0)
            .ok_or_else(|| ConfigReadError::TickInterval(opts.tick_interval.clone()))?;
        let limits = BatchLimits {
            max_message_count: o.batch_size.max_message_count,
            preferred_max_bytes: o.batch_size.preferred_max_bytes,
            timeout_ns: u64::try_from(o.batch_timeout_ns).unwrap_or(0),
        };
        let options = Options {
            election_tick: opts.election_tick as usize,
            heartbeat_tick: opts.heartbeat_tick as usize,
            max_inflight_blocks: u64::from(opts.max_inflight_blocks),
            snapshot_interval_size: u64::from(opts.snapshot_interval_size),
            max_size_per_msg: u64::from(o.batch_size.preferred_max_bytes),
            election_timeout: None,
            // Local choices, not the channel's: the runtime sets them.
            adaptive_cutting: true,
            learner_first: true,
        };
        Ok(RaftSettings {
            options,
            limits,
            tick_ns: tick as u64,
        })
    }

    fn restart_only_changes(&self, next: &Self) -> Vec<String> {
        let options = |c: &ChannelConfig| c.raft().map(|r| r.options()).unwrap_or_default();
        let (a, b) = (options(self), options(next));
        let mut changes = Vec::new();
        let mut note = |name: &str, x: String, y: String| {
            if x != y {
                changes.push(format!("{name}: {x} -> {y}"));
            }
        };
        note("TickInterval", a.tick_interval, b.tick_interval);
        note(
            "ElectionTick",
            a.election_tick.to_string(),
            b.election_tick.to_string(),
        );
        note(
            "HeartbeatTick",
            a.heartbeat_tick.to_string(),
            b.heartbeat_tick.to_string(),
        );
        note(
            "MaxInflightBlocks",
            a.max_inflight_blocks.to_string(),
            b.max_inflight_blocks.to_string(),
        );
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config with its etcdraft options edited.
    fn with_options(
        base: &ChannelConfig,
        edit: impl FnOnce(&mut ordo_proto::etcdraft::Options),
    ) -> ChannelConfig {
        let mut config = base.config().clone();
        let orderer = config
            .channel_group
            .as_mut()
            .and_then(|g| g.groups.get_mut("Orderer"))
            .expect("an orderer group");
        let value = orderer
            .values
            .get_mut("ConsensusType")
            .expect("a consensus type");
        let mut ct = ordo_proto::orderer::ConsensusType::decode(value.value.clone())
            .expect("a consensus type");
        let mut md = ordo_proto::etcdraft::ConfigMetadata::decode(ct.metadata.clone())
            .expect("etcdraft metadata");
        edit(md.options.get_or_insert_default());
        ct.metadata = md.encode_to_vec().into();
        value.value = ct.encode_to_vec().into();
        ChannelConfig::new(&config).expect("a valid config")
    }

    /// channel-3 of the Fabric fixtures (TickInterval 250ms, ElectionTick 10).
    fn fixture_config() -> ChannelConfig {
        let raw = ordo_testkit::read("channel-genesis/channel-3.block");
        config_of_block(&Block::decode(raw.as_slice()).expect("a block")).expect("its config")
    }

    #[test]
    fn only_options_other_than_the_snapshot_interval_wait_for_a_restart() {
        let old = fixture_config();
        let snapshot = with_options(&old, |o| o.snapshot_interval_size *= 2);
        assert!(old.restart_only_changes(&snapshot).is_empty());
        let slower = with_options(&old, |o| {
            o.tick_interval = "500ms".into();
            o.election_tick = 20;
        });
        assert_eq!(
            old.restart_only_changes(&slower),
            ["TickInterval: 250ms -> 500ms", "ElectionTick: 10 -> 20"]
        );
        let settings = old.raft_settings().unwrap();
        assert_eq!(settings.tick_ns, 250_000_000);
        assert_eq!(settings.options.election_tick, 10);
    }
}
