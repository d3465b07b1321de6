//! Which fields configtxlator expands, and into what (fabric-config v0.1.0's `protoext` package,
//! vendored by Fabric v2.4.9).
//!
//! Most Fabric messages carry other messages as opaque `bytes` (an `Envelope`'s payload, a config
//! value). configtxlator shows such bytes as the message they hold, but only for the fields listed
//! here. Some types are fixed ("statically opaque"), some depend on a sibling field ("variably
//! opaque", e.g. a policy's `value` by its `type`), and inside a channel config they depend on
//! where the group or value sits in the tree ("dynamic"). Everything else prints as plain jsonpb
//! output: bytes stay base64.
//!
//! The same table serves both directions: decoding expands the bytes, encoding rebuilds them.

use prost_reflect::MessageDescriptor;

use crate::wire::{self, Msg};

/// How one message is treated: as plain jsonpb would print it, or wrapped the way Fabric's
/// protolator wraps it. A wrap applies to one message; its children get their own.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wrap<'a> {
    /// jsonpb alone, for this message and everything below it. Protolator never looks inside
    /// oneof members, and a camelCase key is not recognised as a special field, so both fall
    /// back to plain jsonpb (bytes stay base64 there).
    Plain,
    /// The wrapping Fabric picks from the message's type alone (`protoext.Decorate`).
    Auto,
    /// A `ConfigGroup` at a known place in a channel config.
    Group(Level),
    /// A `ConfigValue` in a channel config, under the name `key`, at level `Level`.
    Value(Level, &'a str),
    /// A `NsReadWriteSet` inside a `TxReadWriteSet` whose data model is KV.
    KvNamespace,
}

/// Where a `ConfigGroup` sits in a channel config; it decides which sub-groups and values exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    Channel,
    Orderer,
    OrdererOrg,
    Application,
    ApplicationOrg,
    Consortiums,
    Consortium,
    ConsortiumOrg,
}

/// What to do with one field of a wrapped message.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Special {
    /// Nothing special: scalars as jsonpb prints them, message fields recursed into (`Auto`).
    None,
    /// `bytes` holding a message; the type comes from [`Target`].
    Opaque(Target),
    /// `repeated bytes`, each element a message of this type (`BlockData.data`).
    OpaqueList(&'static str),
    /// `ConfigUpdate.isolated_data`: a `map<string, bytes>` whose key-to-type registry is empty in
    /// Fabric v2.4, so any value at all is refused.
    IsolatedData,
    /// A singular message field wrapped as a channel group: `Config.channel_group`, and the read
    /// and write sets of a `ConfigUpdate`.
    ChannelGroup,
    /// `TxReadWriteSet.ns_rwset`: each element wrapped as [`Wrap::KvNamespace`].
    KvNamespaces,
    /// `ConfigGroup.groups` at a level of the config tree.
    Groups(Level),
    /// `ConfigGroup.values` at a level of the config tree.
    Values(Level),
}

/// How the message type inside an opaque field is chosen.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    Fixed(&'static str),
    /// `Payload.data`, by the channel header's type.
    PayloadData,
    /// `ChannelHeader.extension`, only for endorser transactions.
    HeaderExtension,
    /// `Policy.value`, by the policy type.
    PolicyValue,
    /// `MSPConfig.config`, by the MSP type.
    MspConfig,
    /// `MSPPrincipal.principal`, by the principal classification.
    Principal,
    /// `ConsensusType.metadata`, by the consensus type.
    ConsensusMetadata,
    /// `ConfigValue.value`, by the value's name and level.
    ConfigValue(Level),
}

/// The type chosen for an opaque field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Chosen {
    Message(&'static str),
    /// `google.protobuf.Empty`: no fields, prints `{}` (non-etcdraft consensus metadata).
    Empty,
}

/// The special handling of field `field` of a message of type `desc` under `wrap`.
///
/// `kv_data_model` says whether a `TxReadWriteSet` uses the KV data model; when encoding,
/// Fabric decides this before it has read the JSON, so it always passes `true`.
pub(crate) fn special(
    desc: &MessageDescriptor,
    wrap: Wrap<'_>,
    field: &str,
    kv_data_model: bool,
) -> Special {
    use Special::*;
    use Target::Fixed;
    match wrap {
        Wrap::Plain => None,
        Wrap::Group(level) => match field {
            "groups" => Groups(level),
            "values" => Values(level),
            _ => None,
        },
        Wrap::Value(level, _) => match field {
            "value" => Opaque(Target::ConfigValue(level)),
            _ => None,
        },
        Wrap::KvNamespace => match field {
            "rwset" => Opaque(Fixed("kvrwset.KVRWSet")),
            // Fabric also wraps `collection_hashed_rwset`, but its rule names a field `rwset`
            // that the message does not have (the field is `hashed_rwset`), so nothing changes:
            // `hashed_rwset` stays base64.
            _ => None,
        },
        Wrap::Auto => match (desc.full_name(), field) {
            ("common.Envelope", "payload") => Opaque(Fixed("common.Payload")),
            ("common.Payload", "data") => Opaque(Target::PayloadData),
            ("common.Header", "channel_header") => Opaque(Fixed("common.ChannelHeader")),
            ("common.Header", "signature_header") => Opaque(Fixed("common.SignatureHeader")),
            ("common.ChannelHeader", "extension") => Opaque(Target::HeaderExtension),
            // Always a SerializedIdentity, even for idemix identities.
            ("common.SignatureHeader", "creator") => Opaque(Fixed("msp.SerializedIdentity")),
            ("common.BlockData", "data") => OpaqueList("common.Envelope"),
            ("common.Config", "channel_group") => ChannelGroup,
            ("common.ConfigUpdateEnvelope", "config_update") => {
                Opaque(Fixed("common.ConfigUpdate"))
            }
            ("common.ConfigSignature", "signature_header") => {
                Opaque(Fixed("common.SignatureHeader"))
            }
            ("common.ConfigUpdate", "read_set" | "write_set") => ChannelGroup,
            ("common.ConfigUpdate", "isolated_data") => IsolatedData,
            ("common.Policy", "value") => Opaque(Target::PolicyValue),
            ("common.MSPPrincipal", "principal") => Opaque(Target::Principal),
            ("msp.MSPConfig", "config") => Opaque(Target::MspConfig),
            ("orderer.ConsensusType", "metadata") => Opaque(Target::ConsensusMetadata),
            ("protos.TransactionAction", "header") => Opaque(Fixed("common.SignatureHeader")),
            ("protos.TransactionAction", "payload") => {
                Opaque(Fixed("protos.ChaincodeActionPayload"))
            }
            ("protos.ChaincodeActionPayload", "chaincode_proposal_payload") => {
                Opaque(Fixed("protos.ChaincodeProposalPayload"))
            }
            ("protos.ChaincodeProposalPayload", "input") => {
                Opaque(Fixed("protos.ChaincodeInvocationSpec"))
            }
            ("protos.ChaincodeEndorsedAction", "proposal_response_payload") => {
                Opaque(Fixed("protos.ProposalResponsePayload"))
            }
            ("protos.ProposalResponsePayload", "extension") => {
                Opaque(Fixed("protos.ChaincodeAction"))
            }
            ("protos.ChaincodeAction", "results") => Opaque(Fixed("rwset.TxReadWriteSet")),
            ("protos.ChaincodeAction", "events") => Opaque(Fixed("protos.ChaincodeEvent")),
            // Only the KV data model is understood; any other leaves `rwset` in base64.
            ("rwset.TxReadWriteSet", "ns_rwset") if kv_data_model => KvNamespaces,
            _ => None,
        },
    }
}

/// The level of sub-group `key` of a group at `level`, or Fabric's refusal.
pub(crate) fn subgroup(level: Level, key: &str) -> Result<Level, String> {
    match level {
        Level::Channel => match key {
            "Orderer" => Ok(Level::Orderer),
            "Application" => Ok(Level::Application),
            "Consortiums" => Ok(Level::Consortiums),
            _ => Err(format!("unknown channel group sub-group '{key}'")),
        },
        Level::Orderer => Ok(Level::OrdererOrg),
        Level::Application => Ok(Level::ApplicationOrg),
        Level::Consortiums => Ok(Level::Consortium),
        Level::Consortium => Ok(Level::ConsortiumOrg),
        Level::OrdererOrg => Err("the orderer orgs do not support sub-groups".into()),
        Level::ApplicationOrg => Err("The application orgs do not support sub-groups".into()),
        Level::ConsortiumOrg => Err("ConsortiumOrg groups do not support sub groups".into()),
    }
}

/// Whether a group at `level` may hold values at all. The Consortiums group refuses every value,
/// even one without bytes, as soon as it is seen.
pub(crate) fn values_allowed(level: Level) -> Result<(), String> {
    match level {
        Level::Consortiums => Err("Consortiums currently support no config values".into()),
        _ => Ok(()),
    }
}

/// The type of config value `key` at `level`. Fabric only asks (and so only fails) when the
/// value actually has bytes.
pub(crate) fn config_value_type(level: Level, key: &str) -> Result<&'static str, String> {
    let found = match (level, key) {
        (Level::Channel, "HashingAlgorithm") => Some("common.HashingAlgorithm"),
        (Level::Channel, "BlockDataHashingStructure") => Some("common.BlockDataHashingStructure"),
        (Level::Channel, "OrdererAddresses") => Some("common.OrdererAddresses"),
        (Level::Channel, "Consortium") => Some("common.Consortium"),
        (Level::Channel, "Capabilities") => Some("common.Capabilities"),
        (Level::Orderer, "ConsensusType") => Some("orderer.ConsensusType"),
        (Level::Orderer, "BatchSize") => Some("orderer.BatchSize"),
        (Level::Orderer, "BatchTimeout") => Some("orderer.BatchTimeout"),
        (Level::Orderer, "KafkaBrokers") => Some("orderer.KafkaBrokers"),
        (Level::Orderer, "ChannelRestrictions") => Some("orderer.ChannelRestrictions"),
        (Level::Orderer, "Capabilities") => Some("common.Capabilities"),
        (Level::OrdererOrg, "MSP") => Some("msp.MSPConfig"),
        (Level::OrdererOrg, "Endpoints") => Some("common.OrdererAddresses"),
        (Level::Application, "Capabilities") => Some("common.Capabilities"),
        (Level::Application, "ACLs") => Some("protos.ACLs"),
        (Level::ApplicationOrg, "MSP") => Some("msp.MSPConfig"),
        (Level::ApplicationOrg, "AnchorPeers") => Some("protos.AnchorPeers"),
        (Level::Consortium, "ChannelCreationPolicy") => Some("common.Policy"),
        (Level::ConsortiumOrg, "MSP") => Some("msp.MSPConfig"),
        _ => None,
    };
    found.ok_or_else(|| {
        // Fabric's wording differs per level, capital letters included.
        let what = match level {
            Level::Channel => "unknown Channel",
            Level::Orderer => "unknown Orderer",
            Level::OrdererOrg => "unknown Orderer Org",
            Level::Application => "Unknown Application",
            Level::ApplicationOrg => "Unknown Application Org",
            Level::Consortiums => "unknown Consortiums",
            Level::Consortium => "unknown Consortium",
            Level::ConsortiumOrg => "unknown Consortium Org",
        };
        format!("{what} ConfigValue name: {key}")
    })
}

/// Chooses the type inside an opaque field of `msg` (whose other fields are already filled in:
/// when encoding, Fabric fills the plain fields first and reads its selectors from them).
/// `value_key` is the name of the config value when `target` is [`Target::ConfigValue`].
pub(crate) fn choose(target: Target, msg: &Msg, value_key: &str) -> Result<Chosen, String> {
    use Chosen::Message;
    match target {
        Target::Fixed(name) => Ok(Message(name)),
        Target::ConfigValue(level) => config_value_type(level, value_key).map(Message),
        Target::PayloadData => {
            let Some(header) = msg.message("header") else {
                return Err("cannot determine payload type when header is missing".into());
            };
            let channel_header = header.bytes("channel_header").cloned().unwrap_or_default();
            let desc = ordo_proto::descriptor_pool()
                .get_message_by_name("common.ChannelHeader")
                .ok_or("common.ChannelHeader is missing from the descriptor pool")?;
            let parsed = wire::parse(&desc, &channel_header, &crate::error::Path::Root, 0)
                .map_err(|e| format!("corrupt channel header: {e}"))?;
            match parsed.int32("type") {
                0 => Ok(Message("common.ConfigValue")),          // MESSAGE
                1 => Ok(Message("common.ConfigEnvelope")),       // CONFIG
                2 => Ok(Message("common.ConfigUpdateEnvelope")), // CONFIG_UPDATE
                3 => Ok(Message("protos.Transaction")),          // ENDORSER_TRANSACTION
                4 => Ok(Message("common.Envelope")),             // ORDERER_TRANSACTION
                other => Err(format!("decoding type {other} is unimplemented")),
            }
        }
        Target::HeaderExtension => match msg.int32("type") {
            3 => Ok(Message("protos.ChaincodeHeaderExtension")),
            _ => Err("channel header extension only valid for endorser transactions".into()),
        },
        Target::PolicyValue => match msg.int32("type") {
            1 => Ok(Message("common.SignaturePolicyEnvelope")),
            3 => Ok(Message("common.ImplicitMetaPolicy")),
            other => Err(format!("unable to decode policy type: {other}")),
        },
        Target::MspConfig => match msg.int32("type") {
            0 => Ok(Message("msp.FabricMSPConfig")),
            1 => Ok(Message("msp.IdemixMSPConfig")),
            other => Err(format!("unable to decode MSP type: {other}")),
        },
        Target::Principal => match msg.int32("principal_classification") {
            0 => Ok(Message("common.MSPRole")),
            1 => Ok(Message("common.OrganizationUnit")),
            2 => Ok(Message("msp.SerializedIdentity")),
            // Fabric names the classification here (ANONYMITY, COMBINED), or its number if it
            // has no name.
            other => {
                let name = msg
                    .desc
                    .get_field_by_name("principal_classification")
                    .and_then(|f| f.kind().as_enum().and_then(|e| e.get_value(other)))
                    .map(|v| v.name().to_string())
                    .unwrap_or_else(|| other.to_string());
                Err(format!("unable to decode MSP type: {name}"))
            }
        },
        Target::ConsensusMetadata => match msg.string("type") {
            "etcdraft" => Ok(Message("etcdraft.ConfigMetadata")),
            // Any other consensus type's metadata is read as Empty: its content is dropped.
            _ => Ok(Chosen::Empty),
        },
    }
}
