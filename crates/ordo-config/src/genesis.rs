//! Application-channel genesis blocks from Fabric's `configtx.yaml`, as `configtxgen -profile P
//! -channelID C -outputBlock F` makes them (`internal/configtxgen/genesisconfig`, `encoder`,
//! `common/genesis`): the same config tree, key for key and byte for byte, with its own nonce,
//! timestamp and tx id.
//!
//! The YAML is read as configtxgen reads it: anchors and merge keys resolved, keys matched without
//! regard to case, unknown keys refused, sizes like `4 MB`, durations like `1s`; relative paths
//! (MSP folders, consenter certificates) are taken from the folder holding configtx.yaml.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use ordo_proto::common::{
    Block, BlockDataHashingStructure, Capabilities, Capability, ChannelHeader, Config,
    ConfigEnvelope, ConfigGroup, ConfigPolicy, ConfigValue, Envelope, HashingAlgorithm, Header,
    HeaderType, LastConfig, Metadata, OrdererAddresses, OrdererBlockMetadata, Payload, Policy,
    SignatureHeader, policy::PolicyType,
};
use ordo_proto::etcdraft::{ConfigMetadata, Consenter, Options};
use ordo_proto::orderer::{
    BatchSize, BatchTimeout, ChannelRestrictions, ConsensusType, KafkaBrokers,
};
use ordo_proto::protos::{AcLs, AnchorPeer, AnchorPeers, ApiResource};
use prost::Message;
use serde_json::Value;

use crate::duration::{format_go_duration, parse_go_duration};
use crate::policydsl::{implicit_meta_from_str, signature_policy_from_str};
use crate::yaml::Obj;

/// Why a genesis block could not be built, in configtxgen's words where it has them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GenesisError(pub String);

impl From<crate::yaml::YamlError> for GenesisError {
    fn from(e: crate::yaml::YamlError) -> Self {
        GenesisError(e.0)
    }
}

fn err(m: impl Into<String>) -> GenesisError {
    GenesisError(m.into())
}

const ADMINS: &str = "Admins";

// ---------------------------------------------------------------------------------------------
// Reading configtx.yaml

#[derive(Debug, Clone)]
struct PolicyDef {
    kind: String,
    rule: String,
}

#[derive(Debug, Clone)]
struct Org {
    name: String,
    id: String,
    msp_dir: PathBuf,
    msp_type: String,
    policies: BTreeMap<String, PolicyDef>,
    anchor_peers: Vec<(String, i32)>,
    orderer_endpoints: Vec<String>,
    skip_as_foreign: bool,
}

#[derive(Debug, Clone)]
struct OrdererSection {
    orderer_type: String,
    addresses: Vec<String>,
    batch_timeout_ns: i64,
    batch_size: BatchSize,
    kafka_brokers: Vec<String>,
    etcdraft: Option<ConfigMetadata>,
    /// Consenter certificate files, in consenter order: (client, server).
    consenter_files: Vec<(PathBuf, PathBuf)>,
    orgs: Vec<Org>,
    max_channels: u64,
    capabilities: BTreeMap<String, bool>,
    policies: BTreeMap<String, PolicyDef>,
}

#[derive(Debug, Clone)]
struct ApplicationSection {
    orgs: Vec<Org>,
    capabilities: BTreeMap<String, bool>,
    policies: BTreeMap<String, PolicyDef>,
    acls: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct Profile {
    consortium: String,
    application: Option<ApplicationSection>,
    orderer: Option<OrdererSection>,
    capabilities: BTreeMap<String, bool>,
    policies: BTreeMap<String, PolicyDef>,
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

fn read_policies(
    v: Option<&Value>,
    path: &str,
) -> Result<BTreeMap<String, PolicyDef>, GenesisError> {
    let Some(v) = v else {
        return Ok(BTreeMap::new());
    };
    let Value::Object(map) = v else {
        return Err(err(format!("{path}: expected a mapping")));
    };
    let mut out = BTreeMap::new();
    for (name, def) in map {
        let mut o = Obj::new(def, &format!("{path}.{name}"))?;
        let kind = o.string("Type")?;
        let rule = o.string("Rule")?;
        o.finish()?;
        out.insert(name.clone(), PolicyDef { kind, rule });
    }
    Ok(out)
}

fn read_capabilities(
    v: Option<&Value>,
    path: &str,
) -> Result<BTreeMap<String, bool>, GenesisError> {
    let Some(v) = v else {
        return Ok(BTreeMap::new());
    };
    let Value::Object(map) = v else {
        return Err(err(format!("{path}: expected a mapping")));
    };
    map.iter()
        .map(|(k, v)| match v {
            Value::Bool(b) => Ok((k.clone(), *b)),
            _ => Err(err(format!("{path}.{k}: expected true or false"))),
        })
        .collect()
}

fn read_org(v: &Value, path: &str, base: &Path) -> Result<Org, GenesisError> {
    let mut o = Obj::new(v, path)?;
    let name = o.string("Name")?;
    let id = o.string("ID")?;
    let msp_dir = resolve(base, &o.string("MSPDir")?);
    let mut msp_type = o.string("MSPType")?;
    if msp_type.is_empty() {
        msp_type = "bccsp".to_string();
    }
    let policies = read_policies(o.get("Policies"), &o.sub("Policies"))?;
    let mut anchor_peers = Vec::new();
    for (i, a) in o.array("AnchorPeers")?.iter().enumerate() {
        let mut ap = Obj::new(a, &format!("{path}.AnchorPeers[{i}]"))?;
        let host = ap.string("Host")?;
        let port =
            i32::try_from(ap.uint("Port")?).map_err(|_| err("anchor peer port out of range"))?;
        ap.finish()?;
        anchor_peers.push((host, port));
    }
    let orderer_endpoints = o.strings("OrdererEndpoints")?;
    let _ = o.string("AdminPrincipal")?; // deprecated; the encoder ignores it
    let skip_as_foreign = o.boolean("SkipAsForeign")?;
    o.finish()?;
    Ok(Org {
        name,
        id,
        msp_dir,
        msp_type,
        policies,
        anchor_peers,
        orderer_endpoints,
        skip_as_foreign,
    })
}

fn read_orgs(o: &mut Obj<'_>, base: &Path) -> Result<Vec<Org>, GenesisError> {
    let path = o.sub("Organizations");
    o.array("Organizations")?
        .iter()
        .enumerate()
        .map(|(i, v)| read_org(v, &format!("{path}[{i}]"), base))
        .collect()
}

fn read_orderer(v: &Value, path: &str, base: &Path) -> Result<OrdererSection, GenesisError> {
    let mut o = Obj::new(v, path)?;
    let mut orderer_type = o.string("OrdererType")?;
    let addresses = o.strings("Addresses")?;
    let batch_timeout = o.string("BatchTimeout")?;
    let mut batch_timeout_ns = if batch_timeout.is_empty() {
        0
    } else {
        parse_go_duration(&batch_timeout).map_err(|e| err(format!("{path}.BatchTimeout: {e}")))?
    };
    let mut batch_size = match o.get("BatchSize") {
        None => BatchSize::default(),
        Some(bs) => {
            let mut b = Obj::new(bs, &format!("{path}.BatchSize"))?;
            let size = BatchSize {
                max_message_count: b.u32("MaxMessageCount")?,
                absolute_max_bytes: b.byte_size("AbsoluteMaxBytes")?,
                preferred_max_bytes: b.byte_size("PreferredMaxBytes")?,
            };
            b.finish()?;
            size
        }
    };
    let mut kafka_brokers = match o.get("Kafka") {
        None => Vec::new(),
        Some(k) => {
            let mut k = Obj::new(k, &format!("{path}.Kafka"))?;
            let b = k.strings("Brokers")?;
            k.finish()?;
            b
        }
    };
    let mut consenter_files = Vec::new();
    let etcdraft = match o.get("EtcdRaft") {
        None => None,
        Some(e) => {
            let mut e = Obj::new(e, &format!("{path}.EtcdRaft"))?;
            let mut consenters = Vec::new();
            for (i, c) in e.array("Consenters")?.iter().enumerate() {
                let cpath = format!("{path}.EtcdRaft.Consenters[{i}]");
                let mut c = Obj::new(c, &cpath)?;
                let host = c.string("Host")?;
                let port = c.u32("Port")?;
                let client = c.string("ClientTLSCert")?;
                let server = c.string("ServerTLSCert")?;
                c.finish()?;
                for (what, v) in [
                    ("host", host.is_empty()),
                    ("port", port == 0),
                    ("client TLS cert", client.is_empty()),
                    ("server TLS cert", server.is_empty()),
                ] {
                    if v {
                        return Err(err(format!(
                            "consenter info in etcdraft configuration did not specify {what}"
                        )));
                    }
                }
                consenter_files.push((resolve(base, &client), resolve(base, &server)));
                consenters.push(Consenter {
                    host,
                    port,
                    ..Default::default()
                });
            }
            let options = match e.get("Options") {
                None => None,
                Some(op) => {
                    let mut op = Obj::new(op, &format!("{path}.EtcdRaft.Options"))?;
                    let opts = Options {
                        tick_interval: op.string("TickInterval")?,
                        election_tick: op.u32("ElectionTick")?,
                        heartbeat_tick: op.u32("HeartbeatTick")?,
                        max_inflight_blocks: op.u32("MaxInflightBlocks")?,
                        snapshot_interval_size: op.byte_size("SnapshotIntervalSize")?,
                    };
                    op.finish()?;
                    Some(opts)
                }
            };
            e.finish()?;
            Some(ConfigMetadata {
                consenters,
                options,
            })
        }
    };
    let orgs = read_orgs(&mut o, base)?;
    let max_channels = o.uint("MaxChannels")?;
    let capabilities = read_capabilities(o.get("Capabilities"), &o.sub("Capabilities"))?;
    let policies = read_policies(o.get("Policies"), &o.sub("Policies"))?;
    o.finish()?;

    // configtxgen's defaults (genesisDefaults), each filling only a zero field.
    if orderer_type.is_empty() {
        orderer_type = "solo".to_string();
    }
    if batch_timeout_ns == 0 {
        batch_timeout_ns = 2_000_000_000;
    }
    if batch_size.max_message_count == 0 {
        batch_size.max_message_count = 500;
    }
    if batch_size.absolute_max_bytes == 0 {
        batch_size.absolute_max_bytes = 10 * 1024 * 1024;
    }
    if batch_size.preferred_max_bytes == 0 {
        batch_size.preferred_max_bytes = 2 * 1024 * 1024;
    }
    let etcdraft = match orderer_type.as_str() {
        "solo" => etcdraft,
        "kafka" => {
            if kafka_brokers.is_empty() {
                kafka_brokers = vec!["127.0.0.1:9092".to_string()];
            }
            etcdraft
        }
        "etcdraft" => {
            let mut md = etcdraft.ok_or_else(|| err("etcdraft configuration missing"))?;
            if md.consenters.is_empty() {
                return Err(err("etcdraft configuration did not specify any consenter"));
            }
            let o = md.options.get_or_insert_with(Options::default);
            if o.tick_interval.is_empty() {
                o.tick_interval = "500ms".to_string();
            }
            if o.election_tick == 0 {
                o.election_tick = 10;
            }
            if o.heartbeat_tick == 0 {
                o.heartbeat_tick = 1;
            }
            if o.max_inflight_blocks == 0 {
                o.max_inflight_blocks = 5;
            }
            if o.snapshot_interval_size == 0 {
                o.snapshot_interval_size = 16 * 1024 * 1024;
            }
            if parse_go_duration(&o.tick_interval).is_err() {
                return Err(err(format!(
                    "Etcdraft TickInterval ({}) must be in time duration format",
                    o.tick_interval
                )));
            }
            if o.election_tick <= o.heartbeat_tick {
                return Err(err("election tick must be greater than heartbeat tick"));
            }
            Some(md)
        }
        other => return Err(err(format!("unknown orderer type: {other}"))),
    };
    Ok(OrdererSection {
        orderer_type,
        addresses,
        batch_timeout_ns,
        batch_size,
        kafka_brokers,
        etcdraft,
        consenter_files,
        orgs,
        max_channels,
        capabilities,
        policies,
    })
}

fn read_application(
    v: &Value,
    path: &str,
    base: &Path,
) -> Result<ApplicationSection, GenesisError> {
    let mut o = Obj::new(v, path)?;
    let orgs = read_orgs(&mut o, base)?;
    let capabilities = read_capabilities(o.get("Capabilities"), &o.sub("Capabilities"))?;
    let policies = read_policies(o.get("Policies"), &o.sub("Policies"))?;
    let acls = match o.get("ACLs") {
        None => BTreeMap::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                _ => Err(err(format!("{path}.ACLs.{k}: expected a policy reference"))),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(err(format!("{path}.ACLs: expected a mapping"))),
    };
    o.finish()?;
    Ok(ApplicationSection {
        orgs,
        capabilities,
        policies,
        acls,
    })
}

fn read_profile(yaml: &str, profile: &str, base: &Path) -> Result<Profile, GenesisError> {
    let doc: Value = serde_saphyr::from_str(yaml)
        .map_err(|e| err(format!("could not parse configtx.yaml: {e}")))?;
    let profiles = doc
        .get("Profiles")
        .and_then(Value::as_object)
        .ok_or_else(|| err("configtx.yaml has no Profiles"))?;
    let pv = profiles
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(profile))
        .map(|(_, v)| v)
        .ok_or_else(|| err(format!("could not find profile: {profile}")))?;
    let path = format!("Profiles.{profile}");
    let mut o = Obj::new(pv, &path)?;
    let consortium = o.string("Consortium")?;
    let application = match o.get("Application") {
        Some(a) => Some(read_application(a, &format!("{path}.Application"), base)?),
        None => None,
    };
    let orderer = match o.get("Orderer") {
        Some(a) => Some(read_orderer(a, &format!("{path}.Orderer"), base)?),
        None => None,
    };
    if o.get("Consortiums").is_some() {
        return Err(err(
            "system-channel profiles (Consortiums) are not supported: Ordo runs without a system channel",
        ));
    }
    let capabilities = read_capabilities(o.get("Capabilities"), &o.sub("Capabilities"))?;
    let policies = read_policies(o.get("Policies"), &o.sub("Policies"))?;
    o.finish()?;
    Ok(Profile {
        consortium,
        application,
        orderer,
        capabilities,
        policies,
    })
}

// ---------------------------------------------------------------------------------------------
// Encoding the config tree

/// Encodes as Fabric's Go code does (prost leaves out empty message values in maps).
fn go_marshal<M: Message>(type_name: &str, m: &M) -> Result<Bytes, GenesisError> {
    ordo_protolator::marshal(type_name, m)
        .map(Bytes::from)
        .map_err(|e| err(e.to_string()))
}

fn value<M: Message>(
    type_name: &str,
    m: &M,
    mod_policy: &str,
) -> Result<ConfigValue, GenesisError> {
    Ok(ConfigValue {
        version: 0,
        value: go_marshal(type_name, m)?,
        mod_policy: mod_policy.to_string(),
    })
}

fn capabilities_value(caps: &BTreeMap<String, bool>) -> Result<ConfigValue, GenesisError> {
    let c = Capabilities {
        capabilities: caps
            .iter()
            .filter(|(_, on)| **on)
            .map(|(k, _)| (k.clone(), Capability {}))
            .collect(),
    };
    value("common.Capabilities", &c, ADMINS)
}

fn add_policies(
    group: &mut ConfigGroup,
    policies: &BTreeMap<String, PolicyDef>,
    block_validation: bool,
) -> Result<(), GenesisError> {
    if policies.is_empty() {
        return Err(err("no policies defined"));
    }
    let required: &[&str] = if block_validation {
        &["BlockValidation", "Admins", "Readers", "Writers"]
    } else {
        &["Admins", "Readers", "Writers"]
    };
    for r in required {
        if !policies.contains_key(*r) {
            return Err(err(format!("no {r} policy defined")));
        }
    }
    for (name, def) in policies {
        let policy = match def.kind.as_str() {
            "ImplicitMeta" => {
                let imp = implicit_meta_from_str(&def.rule).map_err(|e| {
                    err(format!(
                        "invalid implicit meta policy rule '{}': {e}",
                        def.rule
                    ))
                })?;
                Policy {
                    r#type: PolicyType::ImplicitMeta as i32,
                    value: imp.encode_to_vec().into(),
                }
            }
            "Signature" => {
                let sp = signature_policy_from_str(&def.rule).map_err(|e| {
                    err(format!("invalid signature policy rule '{}': {e}", def.rule))
                })?;
                Policy {
                    r#type: PolicyType::Signature as i32,
                    value: sp.encode_to_vec().into(),
                }
            }
            other => return Err(err(format!("unknown policy type: {other}"))),
        };
        group.policies.insert(
            name.clone(),
            ConfigPolicy {
                version: 0,
                policy: Some(policy),
                mod_policy: ADMINS.to_string(),
            },
        );
    }
    Ok(())
}

fn msp_value(org: &Org) -> Result<ConfigValue, GenesisError> {
    if org.msp_type != "bccsp" {
        return Err(err(format!(
            "org {}: MSP type {} is not supported (Ordo supports bccsp)",
            org.name, org.msp_type
        )));
    }
    let conf = ordo_msp::local::verifying_config(&org.msp_dir, &org.id).map_err(|e| {
        err(format!(
            "1 - Error loading MSP configuration for org: {}: {e}",
            org.name
        ))
    })?;
    value("msp.MSPConfig", &conf, ADMINS)
}

fn org_group(org: &Org, orderer: bool) -> Result<ConfigGroup, GenesisError> {
    let mut g = ConfigGroup {
        mod_policy: ADMINS.to_string(),
        ..Default::default()
    };
    add_policies(&mut g, &org.policies, false).map_err(|e| {
        let kind = if orderer { "orderer" } else { "application" };
        err(format!(
            "error adding policies to {kind} org group '{}': {e}",
            org.name
        ))
    })?;
    g.values.insert("MSP".into(), msp_value(org)?);
    if orderer && !org.orderer_endpoints.is_empty() {
        let ep = OrdererAddresses {
            addresses: org.orderer_endpoints.clone(),
        };
        g.values.insert(
            "Endpoints".into(),
            value("common.OrdererAddresses", &ep, ADMINS)?,
        );
    }
    if !orderer && !org.anchor_peers.is_empty() {
        let ap = AnchorPeers {
            anchor_peers: org
                .anchor_peers
                .iter()
                .map(|(h, p)| AnchorPeer {
                    host: h.clone(),
                    port: *p,
                })
                .collect(),
        };
        g.values.insert(
            "AnchorPeers".into(),
            value("protos.AnchorPeers", &ap, ADMINS)?,
        );
    }
    Ok(g)
}

fn orderer_group(o: &OrdererSection) -> Result<ConfigGroup, GenesisError> {
    let mut g = ConfigGroup {
        mod_policy: ADMINS.to_string(),
        ..Default::default()
    };
    add_policies(&mut g, &o.policies, true)
        .map_err(|e| err(format!("error adding policies to orderer group: {e}")))?;
    g.values.insert(
        "BatchSize".into(),
        value("orderer.BatchSize", &o.batch_size, ADMINS)?,
    );
    let timeout = BatchTimeout {
        timeout: format_go_duration(o.batch_timeout_ns),
    };
    g.values.insert(
        "BatchTimeout".into(),
        value("orderer.BatchTimeout", &timeout, ADMINS)?,
    );
    let restrictions = ChannelRestrictions {
        max_count: o.max_channels,
    };
    g.values.insert(
        "ChannelRestrictions".into(),
        value("orderer.ChannelRestrictions", &restrictions, ADMINS)?,
    );
    if !o.capabilities.is_empty() {
        g.values
            .insert("Capabilities".into(), capabilities_value(&o.capabilities)?);
    }
    if o.orderer_type == "kafka" {
        let kb = KafkaBrokers {
            brokers: o.kafka_brokers.clone(),
        };
        g.values.insert(
            "KafkaBrokers".into(),
            value("orderer.KafkaBrokers", &kb, ADMINS)?,
        );
    }
    let metadata = match &o.etcdraft {
        Some(md) if o.orderer_type == "etcdraft" => {
            let mut md = md.clone();
            for (c, (client, server)) in md.consenters.iter_mut().zip(&o.consenter_files) {
                let read = |p: &PathBuf, what: &str| {
                    std::fs::read(p).map(Bytes::from).map_err(|e| {
                        err(format!(
                            "cannot marshal metadata for orderer type etcdraft: cannot load {what} cert for consenter {}:{}: {e}",
                            c.host, c.port
                        ))
                    })
                };
                c.client_tls_cert = read(client, "client")?;
                c.server_tls_cert = read(server, "server")?;
            }
            go_marshal("etcdraft.ConfigMetadata", &md)?
        }
        _ => Bytes::new(),
    };
    let ct = ConsensusType {
        r#type: o.orderer_type.clone(),
        metadata,
        state: 0,
    };
    g.values.insert(
        "ConsensusType".into(),
        value("orderer.ConsensusType", &ct, ADMINS)?,
    );
    for org in &o.orgs {
        let og =
            org_group(org, true).map_err(|e| err(format!("failed to create orderer org: {e}")))?;
        g.groups.insert(org.name.clone(), og);
    }
    Ok(g)
}

fn application_group(a: &ApplicationSection) -> Result<ConfigGroup, GenesisError> {
    let mut g = ConfigGroup {
        mod_policy: ADMINS.to_string(),
        ..Default::default()
    };
    add_policies(&mut g, &a.policies, false)
        .map_err(|e| err(format!("error adding policies to application group: {e}")))?;
    if !a.acls.is_empty() {
        let acls = AcLs {
            acls: a
                .acls
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        ApiResource {
                            policy_ref: v.clone(),
                        },
                    )
                })
                .collect(),
        };
        g.values
            .insert("ACLs".into(), value("protos.ACLs", &acls, ADMINS)?);
    }
    if !a.capabilities.is_empty() {
        g.values
            .insert("Capabilities".into(), capabilities_value(&a.capabilities)?);
    }
    for org in &a.orgs {
        let og = org_group(org, false)
            .map_err(|e| err(format!("failed to create application org: {e}")))?;
        g.groups.insert(org.name.clone(), og);
    }
    Ok(g)
}

fn channel_group(p: &Profile) -> Result<ConfigGroup, GenesisError> {
    let mut g = ConfigGroup {
        mod_policy: ADMINS.to_string(),
        ..Default::default()
    };
    add_policies(&mut g, &p.policies, false)
        .map_err(|e| err(format!("error adding policies to channel group: {e}")))?;
    g.values.insert(
        "HashingAlgorithm".into(),
        value(
            "common.HashingAlgorithm",
            &HashingAlgorithm {
                name: "SHA256".into(),
            },
            ADMINS,
        )?,
    );
    g.values.insert(
        "BlockDataHashingStructure".into(),
        value(
            "common.BlockDataHashingStructure",
            &BlockDataHashingStructure { width: u32::MAX },
            ADMINS,
        )?,
    );
    if let Some(o) = &p.orderer
        && !o.addresses.is_empty()
    {
        let a = OrdererAddresses {
            addresses: o.addresses.clone(),
        };
        g.values.insert(
            "OrdererAddresses".into(),
            value("common.OrdererAddresses", &a, "/Channel/Orderer/Admins")?,
        );
    }
    if !p.consortium.is_empty() {
        let c = ordo_proto::common::Consortium {
            name: p.consortium.clone(),
        };
        g.values
            .insert("Consortium".into(), value("common.Consortium", &c, ADMINS)?);
    }
    if !p.capabilities.is_empty() {
        g.values
            .insert("Capabilities".into(), capabilities_value(&p.capabilities)?);
    }
    if let Some(o) = &p.orderer {
        g.groups.insert(
            "Orderer".into(),
            orderer_group(o).map_err(|e| err(format!("could not create orderer group: {e}")))?,
        );
    }
    if let Some(a) = &p.application {
        g.groups.insert(
            "Application".into(),
            application_group(a)
                .map_err(|e| err(format!("could not create application group: {e}")))?,
        );
    }
    Ok(g)
}

/// The channel configuration (sequence 0) a configtx.yaml profile describes.
pub fn config_from_profile(configtx_yaml: &Path, profile: &str) -> Result<Config, GenesisError> {
    let yaml = std::fs::read_to_string(configtx_yaml)
        .map_err(|e| err(format!("reading {}: {e}", configtx_yaml.display())))?;
    let base = configtx_yaml.parent().unwrap_or(Path::new("."));
    let p = read_profile(&yaml, profile, base)?;
    if p.orderer.is_none() {
        return Err(err(
            "refusing to generate block which is missing orderer section",
        ));
    }
    if p.application.is_none() {
        return Err(err(
            "refusing to generate application channel block which is missing application section",
        ));
    }
    let foreign = p
        .orderer
        .iter()
        .flat_map(|o| o.orgs.iter())
        .chain(p.application.iter().flat_map(|a| a.orgs.iter()))
        .find(|o| o.skip_as_foreign);
    if let Some(o) = foreign {
        return Err(err(format!(
            "all org definitions must be local during bootstrapping: organization '{}' is marked to be skipped as foreign",
            o.name
        )));
    }
    Ok(Config {
        sequence: 0,
        channel_group: Some(channel_group(&p)?),
    })
}

/// The genesis block of `channel_id` for a configtx.yaml profile (configtxgen's `-outputBlock`).
pub fn genesis_block(
    configtx_yaml: &Path,
    profile: &str,
    channel_id: &str,
) -> Result<Block, GenesisError> {
    if channel_id.is_empty() {
        return Err(err(
            "Missing channelID, please specify it with '-channelID'",
        ));
    }
    let config = config_from_profile(configtx_yaml, profile)?;
    genesis_block_for_config(config, channel_id)
}

/// Wraps a configuration in a genesis block as Fabric's `genesis.Factory` does: one unsigned
/// CONFIG envelope (version 1, tx id = hex SHA-256 of the nonce), number 0, and a SIGNATURES slot
/// naming block 0 as last config with no signatures.
pub fn genesis_block_for_config(config: Config, channel_id: &str) -> Result<Block, GenesisError> {
    let nonce = ordo_crypto::random_nonce();
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let ch = ChannelHeader {
        r#type: HeaderType::Config as i32,
        version: 1,
        timestamp: Some(prost_types::Timestamp {
            seconds: secs,
            nanos: 0,
        }),
        channel_id: channel_id.to_string(),
        tx_id: hex::encode(ordo_crypto::sha256(&nonce)),
        ..Default::default()
    };
    let sh = SignatureHeader {
        creator: Bytes::new(),
        nonce: Bytes::copy_from_slice(&nonce),
    };
    let ce = ConfigEnvelope {
        config: Some(config),
        last_update: None,
    };
    let payload = Payload {
        header: Some(Header {
            channel_header: ch.encode_to_vec().into(),
            signature_header: sh.encode_to_vec().into(),
        }),
        data: go_marshal("common.ConfigEnvelope", &ce)?,
    };
    let env = Bytes::from(
        Envelope {
            payload: payload.encode_to_vec().into(),
            signature: Bytes::new(),
        }
        .encode_to_vec(),
    );
    // The data hash is SHA-256 over the (single) envelope; block 0 has no previous hash.
    let mut block = Block {
        header: Some(ordo_proto::common::BlockHeader {
            number: 0,
            previous_hash: Bytes::new(),
            data_hash: Bytes::copy_from_slice(&ordo_crypto::sha256(&env)),
        }),
        data: Some(ordo_proto::common::BlockData { data: vec![env] }),
        metadata: Some(ordo_proto::common::BlockMetadata {
            metadata: vec![Bytes::new(); 5],
        }),
    };
    let sigs = Metadata {
        value: OrdererBlockMetadata {
            last_config: Some(LastConfig { index: 0 }),
            consenter_metadata: Bytes::new(),
        }
        .encode_to_vec()
        .into(),
        signatures: vec![],
    };
    if let Some(md) = block.metadata.as_mut() {
        md.metadata[0] = sigs.encode_to_vec().into();
        md.metadata[1] = Metadata {
            value: LastConfig { index: 0 }.encode_to_vec().into(),
            signatures: vec![],
        }
        .encode_to_vec()
        .into();
    }
    Ok(block)
}
