//! The typed configuration of a channel, parsed and validated as Fabric's
//! `channelconfig.NewBundle` does (`common/channelconfig/*.go`), plus the orderer's own checks
//! (`checkResources`, `ValidateNew`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ordo_msp::{Msp, MspManager};
use ordo_proto::common::{
    BlockDataHashingStructure, Capabilities as CapabilitiesProto, Config, ConfigGroup,
    HashingAlgorithm, OrdererAddresses,
};
use ordo_proto::etcdraft::ConfigMetadata;
use ordo_proto::msp::MspConfig;
use ordo_proto::orderer::{
    BatchSize, BatchTimeout, ChannelRestrictions, ConsensusType, KafkaBrokers,
};
use ordo_proto::protos::{AcLs, AnchorPeers};
use prost::Message;

use crate::ConfigError;
use crate::duration::{format_go_duration, parse_go_duration};
use crate::etcdraft::TlsPools;
use crate::policy::PolicyManager;

/// Capabilities Fabric v2.4/v2.5 orderers support, per level.
const CHANNEL_CAPABILITIES: &[&str] = &["V1_1", "V1_3", "V1_4_2", "V1_4_3", "V2_0"];
const ORDERER_CAPABILITIES: &[&str] = &["V1_1", "V1_4_2", "V2_0"];

pub const GROUP_ORDERER: &str = "Orderer";
pub const GROUP_APPLICATION: &str = "Application";
pub const GROUP_CONSORTIUMS: &str = "Consortiums";

/// The capabilities enabled at one level of the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities(BTreeSet<String>);

impl Capabilities {
    fn from_proto(p: &CapabilitiesProto) -> Self {
        Capabilities(p.capabilities.keys().cloned().collect())
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.contains(name)
    }

    pub fn any(&self, names: &[&str]) -> bool {
        names.iter().any(|n| self.has(n))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Fabric's `Supported()`: the first unknown capability is an error.
    fn check_supported(&self, level: &str, supported: &[&str]) -> Result<(), String> {
        match self.0.iter().find(|c| !supported.contains(&c.as_str())) {
            Some(c) => Err(format!(
                "{level} capability {c} is required but not supported"
            )),
            None => Ok(()),
        }
    }
}

/// An orderer organization.
#[derive(Debug, Clone)]
pub struct OrdererOrg {
    pub name: String,
    pub msp_id: String,
    pub endpoints: Vec<String>,
}

/// An application organization.
#[derive(Debug, Clone)]
pub struct ApplicationOrg {
    pub name: String,
    pub msp_id: String,
    pub anchor_peers: Vec<(String, i32)>,
}

/// `/Channel/Orderer`.
#[derive(Debug, Clone)]
pub struct OrdererConfig {
    pub consensus_type: String,
    pub consensus_metadata: bytes::Bytes,
    /// `ConsensusType.State`: 0 NORMAL, 1 MAINTENANCE.
    pub consensus_state: i32,
    pub batch_size: BatchSize,
    /// BatchTimeout in nanoseconds.
    pub batch_timeout_ns: i64,
    pub max_channels: u64,
    pub capabilities: Capabilities,
    pub orgs: BTreeMap<String, OrdererOrg>,
    /// The etcdraft metadata, decoded once with the config (`None`: another consensus type).
    /// Fabric's bundle does not decode it, so a config whose metadata does not decode is still
    /// a config; the error is kept for whoever asks.
    raft: Option<Result<Arc<RaftConfig>, ConfigError>>,
}

/// A channel's etcdraft consenters and options (`etcdraft.ConfigMetadata`), with what Ordo
/// derives from them once: each consenter's server TLS key, by which a node finds itself.
#[derive(Debug, Clone, PartialEq)]
pub struct RaftConfig {
    metadata: ConfigMetadata,
    /// The public key point of each consenter's server TLS certificate, in config order
    /// (`None` where the certificate does not parse).
    server_keys: Vec<Option<Vec<u8>>>,
}

impl RaftConfig {
    /// Decodes `etcdraft.ConfigMetadata`.
    pub fn decode(raw: &[u8]) -> Result<RaftConfig, ConfigError> {
        let metadata = ConfigMetadata::decode(raw).map_err(|e| {
            ConfigError::Invalid(format!(
                "failed to unmarshal etcdraft metadata configuration: {e}"
            ))
        })?;
        let server_keys = metadata
            .consenters
            .iter()
            .map(|c| cert_key(&c.server_tls_cert))
            .collect();
        Ok(RaftConfig {
            metadata,
            server_keys,
        })
    }

    /// The whole metadata, as the config carries it.
    pub fn metadata(&self) -> &ConfigMetadata {
        &self.metadata
    }

    /// The consenters, in config order (paired with the consenter IDs of a block's metadata).
    pub fn consenters(&self) -> &[ordo_proto::etcdraft::Consenter] {
        &self.metadata.consenters
    }

    /// The Raft options (zero values where the config has none).
    pub fn options(&self) -> ordo_proto::etcdraft::Options {
        self.metadata.options.clone().unwrap_or_default()
    }

    /// The consenters' client TLS certificates, in config order: what the Raft core pairs with
    /// the consenter IDs.
    pub fn client_certs(&self) -> Vec<bytes::Bytes> {
        self.consenters()
            .iter()
            .map(|c| c.client_tls_cert.clone())
            .collect()
    }

    /// Where the consenter whose server TLS certificate has public key `key` stands in the
    /// config (Fabric's `detectSelfID`, which compares keys so that a renewed certificate with
    /// the same key is the same node).
    pub fn position_of(&self, key: &[u8]) -> Option<usize> {
        self.server_keys
            .iter()
            .position(|k| k.as_deref() == Some(key))
    }
}

/// The public key point of a PEM certificate.
pub fn cert_key(pem: &[u8]) -> Option<Vec<u8>> {
    ordo_msp::Cert::from_pem(pem)
        .ok()
        .map(|c| c.public_key().point().to_vec())
}

impl OrdererConfig {
    /// The etcdraft metadata, when the consensus type is etcdraft.
    pub fn etcdraft(&self) -> Result<Option<&RaftConfig>, ConfigError> {
        match &self.raft {
            None => Ok(None),
            Some(Ok(r)) => Ok(Some(r)),
            Some(Err(e)) => Err(e.clone()),
        }
    }

    /// Whether envelopes' creators are checked for expiry (orderer capability V1_1 or later).
    pub fn expiration_check(&self) -> bool {
        self.capabilities.any(&["V1_1", "V1_4_2", "V2_0"])
    }
}

/// `/Channel/Application`.
#[derive(Debug, Clone)]
pub struct ApplicationConfig {
    pub capabilities: Capabilities,
    pub acls: BTreeMap<String, String>,
    pub orgs: BTreeMap<String, ApplicationOrg>,
}

/// A channel's configuration, checked as Fabric checks it, with its MSPs and policies ready.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    config: Config,
    pub hashing_algorithm: String,
    pub orderer_addresses: Vec<String>,
    pub capabilities: Capabilities,
    pub orderer: Option<OrdererConfig>,
    pub application: Option<ApplicationConfig>,
    /// Orgs of the `Consortiums` group (system channels only), by consortium.
    pub consortiums: BTreeMap<String, Vec<String>>,
    msps: Arc<MspManager>,
    policies: Arc<PolicyManager>,
}

fn invalid(m: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(m.into())
}

/// Checks a group's value keys against the ones its level allows (`DeserializeProtoValuesFromGroup`).
fn check_value_keys(group: &ConfigGroup, allowed: &[&str]) -> Result<(), ConfigError> {
    match group.values.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(invalid(format!(
            "failed to deserialize values: Unexpected key {k}"
        ))),
        None => Ok(()),
    }
}

/// A value of the group decoded as `T`; an absent value is `T`'s zero value, as in Fabric.
fn value<T: Message + Default>(group: &ConfigGroup, key: &str) -> Result<T, ConfigError> {
    match group.values.get(key) {
        None => Ok(T::default()),
        Some(v) => T::decode(v.value.clone())
            .map_err(|e| invalid(format!("failed to deserialize values: {key}: {e}"))),
    }
}

/// The MSPs proposed by the orgs: one per MSP ID, and two orgs with one MSP ID must agree.
#[derive(Default)]
struct MspCollector {
    configs: BTreeMap<String, MspConfig>,
    msps: Vec<Arc<Msp>>,
}

impl MspCollector {
    /// Sets up the MSP of an org group, returning its MSP ID.
    fn propose(&mut self, org: &str, group: &ConfigGroup) -> Result<String, ConfigError> {
        let conf: MspConfig = value(group, "MSP")?;
        let msp = Msp::from_msp_config(&conf).map_err(|e| ConfigError::Msp(e.to_string()))?;
        let id = msp.name().to_string();
        if id.is_empty() {
            return Err(invalid(format!("MSP for org {org} has empty MSP ID")));
        }
        match self.configs.get(&id) {
            Some(existing) if *existing != conf => {
                return Err(invalid(format!(
                    "Attempted to define two different versions of MSP: {id}"
                )));
            }
            Some(_) => {}
            None => {
                self.configs.insert(id.clone(), conf);
                self.msps.push(Arc::new(msp));
            }
        }
        Ok(id)
    }
}

impl ChannelConfig {
    /// Parses and validates a channel configuration (Fabric's `NewBundle`), building its MSPs and
    /// policies.
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        let root = config
            .channel_group
            .as_ref()
            .ok_or_else(|| invalid("config must contain a channel group"))?;
        // preValidate: capabilities may not be enabled before the orderer supports them.
        if let Some(o) = root.groups.get(GROUP_ORDERER)
            && !o.values.contains_key("Capabilities")
        {
            if root.values.contains_key("Capabilities") {
                return Err(invalid(
                    "cannot enable channel capabilities without orderer support first",
                ));
            }
            if root
                .groups
                .get(GROUP_APPLICATION)
                .is_some_and(|a| a.values.contains_key("Capabilities"))
            {
                return Err(invalid(
                    "cannot enable application capabilities without orderer support first",
                ));
            }
        }
        let mut msps = MspCollector::default();
        let sections = parse_channel(root, &mut msps)
            .map_err(|e| e.wrap("initializing channelconfig failed"))?;
        let policies = PolicyManager::new("Channel", root)
            .map_err(|e| e.wrap("initializing policymanager failed"))?;
        crate::configtx::ConfigMap::new(root).map_err(|e| {
            e.wrap("initializing configtx manager failed: error converting config to map")
        })?;
        Ok(ChannelConfig {
            config: config.clone(),
            hashing_algorithm: sections.hashing_algorithm,
            orderer_addresses: sections.orderer_addresses,
            capabilities: sections.capabilities,
            orderer: sections.orderer,
            application: sections.application,
            consortiums: sections.consortiums,
            msps: Arc::new(MspManager::new(msps.msps)),
            policies: Arc::new(policies),
        })
    }

    /// The configuration this was parsed from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// `Config.sequence`: how many config updates the channel has taken.
    pub fn sequence(&self) -> u64 {
        self.config.sequence
    }

    pub fn msp_manager(&self) -> &Arc<MspManager> {
        &self.msps
    }

    pub fn policies(&self) -> &Arc<PolicyManager> {
        &self.policies
    }

    /// The etcdraft consenters and options, when the channel orders with etcdraft and its
    /// metadata decodes (`OrdererConfig::etcdraft` gives the error otherwise).
    pub fn raft(&self) -> Option<&RaftConfig> {
        self.orderer.as_ref()?.etcdraft().ok().flatten()
    }

    /// Fabric's `checkResources` for an orderer: an orderer section, and orderer and channel
    /// capabilities this orderer supports (application capabilities are the peers' business).
    pub fn check_orderer_support(&self) -> Result<(), ConfigError> {
        let Some(o) = &self.orderer else {
            return Err(invalid("config does not contain orderer config"));
        };
        o.capabilities
            .check_supported("Orderer", ORDERER_CAPABILITIES)
            .map_err(|e| {
                invalid(format!(
                    "config requires unsupported orderer capabilities: {e}: {e}"
                ))
            })?;
        self.capabilities
            .check_supported("Channel", CHANNEL_CAPABILITIES)
            .map_err(|e| {
                invalid(format!(
                    "config requires unsupported channel capabilities: {e}: {e}"
                ))
            })
    }

    /// The TLS CAs of the orderer organizations (what consenter certificates must chain to).
    pub fn orderer_tls_pools(&self) -> Result<TlsPools, ConfigError> {
        let Some(o) = &self.orderer else {
            return Ok(TlsPools::default());
        };
        let mut roots = Vec::new();
        let mut inters = Vec::new();
        for org in o.orgs.values() {
            if let Some(msp) = self.msps.get(&org.msp_id) {
                roots.extend(msp.tls_root_certs().iter().map(|b| b.as_ref()));
                inters.extend(msp.tls_intermediate_certs().iter().map(|b| b.as_ref()));
            }
        }
        TlsPools::from_pem(roots, inters)
    }

    /// The TLS root and intermediate CAs (PEM) of every application and orderer organization:
    /// what Fabric adds to a mutual-TLS listener's trusted client roots for each channel
    /// (`updateTrustedRoots` in `orderer/common/server/main.go`).
    pub fn tls_client_cas(&self) -> Vec<bytes::Bytes> {
        let app = self
            .application
            .iter()
            .flat_map(|a| a.orgs.values().map(|o| &o.msp_id));
        let ord = self
            .orderer
            .iter()
            .flat_map(|o| o.orgs.values().map(|o| &o.msp_id));
        self.tls_cas_of(app.chain(ord))
    }

    /// The TLS root and intermediate CAs (PEM) of the orderer organizations: what a consenter's
    /// TLS certificate must chain to (Fabric's cluster dialer and listener pools).
    pub fn orderer_tls_cas(&self) -> Vec<bytes::Bytes> {
        self.tls_cas_of(
            self.orderer
                .iter()
                .flat_map(|o| o.orgs.values().map(|o| &o.msp_id)),
        )
    }

    fn tls_cas_of<'a>(&self, msp_ids: impl Iterator<Item = &'a String>) -> Vec<bytes::Bytes> {
        let mut out = Vec::new();
        for id in msp_ids {
            if let Some(msp) = self.msps.get(id) {
                out.extend(msp.tls_root_certs().iter().cloned());
                out.extend(msp.tls_intermediate_certs().iter().cloned());
            }
        }
        out
    }

    /// Fabric's `ValidateNew`: what may not change from this config to `new`.
    pub fn validate_new(&self, new: &ChannelConfig) -> Result<(), ConfigError> {
        if let Some(old_o) = &self.orderer {
            let Some(new_o) = &new.orderer else {
                return Err(invalid(
                    "current config has orderer section, but new config does not",
                ));
            };
            let migration = self.capabilities.any(&["V1_4_2", "V1_4_3", "V2_0"]);
            if !migration && old_o.consensus_type != new_o.consensus_type {
                return Err(invalid(format!(
                    "attempted to change consensus type from {} to {}",
                    old_o.consensus_type, new_o.consensus_type
                )));
            }
            for (name, org) in &old_o.orgs {
                if let Some(n) = new_o.orgs.get(name)
                    && n.msp_id != org.msp_id
                {
                    return Err(invalid(format!(
                        "orderer org {name} attempted to change MSP ID from {} to {}",
                        org.msp_id, n.msp_id
                    )));
                }
            }
        }
        if let Some(old_a) = &self.application {
            let Some(new_a) = &new.application else {
                return Err(invalid(
                    "current config has application section, but new config does not",
                ));
            };
            for (name, org) in &old_a.orgs {
                if let Some(n) = new_a.orgs.get(name)
                    && n.msp_id != org.msp_id
                {
                    return Err(invalid(format!(
                        "application org {name} attempted to change MSP ID from {} to {}",
                        org.msp_id, n.msp_id
                    )));
                }
            }
        }
        if !self.consortiums.is_empty() && new.consortiums.is_empty() {
            return Err(invalid(
                "current config has consortiums section, but new config does not",
            ));
        }
        Ok(())
    }
}

/// The sections of `/Channel`, parsed and checked (Fabric's `NewChannelConfig`).
struct Sections {
    hashing_algorithm: String,
    orderer_addresses: Vec<String>,
    capabilities: Capabilities,
    orderer: Option<OrdererConfig>,
    application: Option<ApplicationConfig>,
    consortiums: BTreeMap<String, Vec<String>>,
}

fn parse_channel(root: &ConfigGroup, msps: &mut MspCollector) -> Result<Sections, ConfigError> {
    check_value_keys(
        root,
        &[
            "HashingAlgorithm",
            "BlockDataHashingStructure",
            "OrdererAddresses",
            "Consortium",
            "Capabilities",
        ],
    )?;
    let capabilities = Capabilities::from_proto(&value(root, "Capabilities")?);
    let hashing: HashingAlgorithm = value(root, "HashingAlgorithm")?;
    if !matches!(hashing.name.as_str(), "SHA256" | "SHA3_256") {
        return Err(invalid(format!(
            "Unknown hashing algorithm type: {}",
            hashing.name
        )));
    }
    let width: BlockDataHashingStructure = value(root, "BlockDataHashingStructure")?;
    if width.width != u32::MAX {
        return Err(invalid(
            "BlockDataHashStructure width only supported at MaxUint32 in this version",
        ));
    }
    let addresses: OrdererAddresses = value(root, "OrdererAddresses")?;
    let org_specific_endpoints = capabilities.any(&["V1_4_2", "V1_4_3", "V2_0"]);
    if !org_specific_endpoints && addresses.addresses.is_empty() {
        return Err(invalid("Must set some OrdererAddresses"));
    }
    let mut cc = Sections {
        hashing_algorithm: hashing.name,
        orderer_addresses: addresses.addresses,
        capabilities,
        orderer: None,
        application: None,
        consortiums: BTreeMap::new(),
    };
    for (name, group) in &root.groups {
        let wrap =
            |e: ConfigError| e.wrap(&format!("could not create channel {name} sub-group config"));
        match name.as_str() {
            GROUP_ORDERER => {
                cc.orderer =
                    Some(parse_orderer(group, org_specific_endpoints, msps).map_err(wrap)?);
            }
            GROUP_APPLICATION => {
                cc.application = Some(parse_application(group, msps).map_err(wrap)?)
            }
            GROUP_CONSORTIUMS => cc.consortiums = parse_consortiums(group, msps).map_err(wrap)?,
            other => return Err(invalid(format!("Disallowed channel group: {other}"))),
        }
    }
    Ok(cc)
}

fn parse_orderer(
    group: &ConfigGroup,
    org_specific_endpoints: bool,
    msps: &mut MspCollector,
) -> Result<OrdererConfig, ConfigError> {
    check_value_keys(
        group,
        &[
            "ConsensusType",
            "BatchSize",
            "BatchTimeout",
            "KafkaBrokers",
            "ChannelRestrictions",
            "Capabilities",
        ],
    )?;
    let ct: ConsensusType = value(group, "ConsensusType")?;
    let batch_size: BatchSize = value(group, "BatchSize")?;
    if batch_size.max_message_count == 0 {
        return Err(invalid(
            "Attempted to set the batch size max message count to an invalid value: 0",
        ));
    }
    if batch_size.absolute_max_bytes == 0 {
        return Err(invalid(
            "Attempted to set the batch size absolute max bytes to an invalid value: 0",
        ));
    }
    if batch_size.preferred_max_bytes == 0 {
        return Err(invalid(
            "Attempted to set the batch size preferred max bytes to an invalid value: 0",
        ));
    }
    if batch_size.preferred_max_bytes > batch_size.absolute_max_bytes {
        return Err(invalid(format!(
            "Attempted to set the batch size preferred max bytes ({}) greater than the absolute max bytes ({}).",
            batch_size.preferred_max_bytes, batch_size.absolute_max_bytes
        )));
    }
    let timeout: BatchTimeout = value(group, "BatchTimeout")?;
    let batch_timeout_ns = parse_go_duration(&timeout.timeout).map_err(|e| {
        invalid(format!(
            "Attempted to set the batch timeout to a invalid value: {e}"
        ))
    })?;
    if batch_timeout_ns <= 0 {
        return Err(invalid(format!(
            "Attempted to set the batch timeout to a non-positive value: {}",
            format_go_duration(batch_timeout_ns)
        )));
    }
    let kafka: KafkaBrokers = value(group, "KafkaBrokers")?;
    for b in &kafka.brokers {
        if !valid_broker(b) {
            return Err(invalid(format!("Invalid broker entry: {b}")));
        }
    }
    let restrictions: ChannelRestrictions = value(group, "ChannelRestrictions")?;
    let capabilities = Capabilities::from_proto(&value(group, "Capabilities")?);
    let mut orgs = BTreeMap::new();
    for (name, org) in &group.groups {
        if !org.groups.is_empty() {
            return Err(invalid("OrdererOrg config does not allow sub-groups"));
        }
        if !org_specific_endpoints && org.values.contains_key("Endpoints") {
            return Err(invalid(format!(
                "Orderer Org {name} cannot contain endpoints value until V1_4_2+ capabilities have been enabled"
            )));
        }
        check_value_keys(org, &["Endpoints", "MSP"])?;
        let endpoints: OrdererAddresses = value(org, "Endpoints")?;
        let msp_id = msps.propose(name, org)?;
        orgs.insert(
            name.clone(),
            OrdererOrg {
                name: name.clone(),
                msp_id,
                endpoints: endpoints.addresses,
            },
        );
    }
    let raft = (ct.r#type == "etcdraft").then(|| RaftConfig::decode(&ct.metadata).map(Arc::new));
    Ok(OrdererConfig {
        raft,
        consensus_type: ct.r#type,
        consensus_metadata: ct.metadata,
        consensus_state: ct.state,
        batch_size,
        batch_timeout_ns,
        max_channels: restrictions.max_count,
        capabilities,
        orgs,
    })
}

/// Kafka broker entries must be `host:port` (legacy, but still validated by Fabric).
fn valid_broker(b: &str) -> bool {
    let mut parts = b.split(':');
    let (Some(host), Some(port), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-')
        && host
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && host
            .bytes()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    host_ok && port.parse::<u16>().is_ok()
}

fn parse_application(
    group: &ConfigGroup,
    msps: &mut MspCollector,
) -> Result<ApplicationConfig, ConfigError> {
    check_value_keys(group, &["ACLs", "Capabilities"])?;
    let capabilities = Capabilities::from_proto(&value(group, "Capabilities")?);
    let acls_enabled = capabilities.any(&["V1_2", "V1_3", "V1_4_2", "V2_0", "V2_5"]);
    if !acls_enabled && group.values.contains_key("ACLs") {
        return Err(invalid(
            "ACLs may not be specified without the required capability",
        ));
    }
    let acls: AcLs = value(group, "ACLs")?;
    let mut orgs = BTreeMap::new();
    for (name, org) in &group.groups {
        if !org.groups.is_empty() {
            return Err(invalid("ApplicationOrg config does not allow sub-groups"));
        }
        check_value_keys(org, &["AnchorPeers", "MSP"])?;
        let anchors: AnchorPeers = value(org, "AnchorPeers")?;
        let msp_id = msps.propose(name, org)?;
        orgs.insert(
            name.clone(),
            ApplicationOrg {
                name: name.clone(),
                msp_id,
                anchor_peers: anchors
                    .anchor_peers
                    .into_iter()
                    .map(|a| (a.host, a.port))
                    .collect(),
            },
        );
    }
    Ok(ApplicationConfig {
        capabilities,
        acls: acls
            .acls
            .into_iter()
            .map(|(k, v)| (k, v.policy_ref))
            .collect(),
        orgs,
    })
}

fn parse_consortiums(
    group: &ConfigGroup,
    msps: &mut MspCollector,
) -> Result<BTreeMap<String, Vec<String>>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, consortium) in &group.groups {
        check_value_keys(consortium, &["ChannelCreationPolicy"])?;
        let mut orgs = Vec::new();
        for (org_name, org) in &consortium.groups {
            if !org.groups.is_empty() {
                return Err(invalid("organizations do not support sub-groups"));
            }
            check_value_keys(org, &["MSP"])?;
            msps.propose(org_name, org)?;
            orgs.push(org_name.clone());
        }
        out.insert(name.clone(), orgs);
    }
    Ok(out)
}
