//! # ordo-protolator
//!
//! configtxlator-compatible JSON for Fabric messages. This crate owns the translation that Fabric
//! v2.4's `configtxlator` performs — `proto_decode` ([`decode`] + [`to_json_string`]),
//! `proto_encode` ([`encode`]) and `compute_update` ([`compute_update`]) — with Fabric's exact
//! output: the same JSON text byte for byte, the same bytes back, the same config update. It also
//! encodes prost messages the way Fabric's Go code does ([`marshal`]), which prost itself does not
//! quite do for maps.
//!
//! It must not interpret what it translates: no signature checks, no policy evaluation, no config
//! validation beyond what configtxlator itself refuses. It does no I/O.
//!
//! The rules (which opaque bytes are shown as messages, how each value prints, what is accepted
//! back) are those of Fabric v2.4.9's vendored fabric-config v0.1.0 protolator over
//! golang/protobuf v1.3.3 jsonpb; `rules.rs` holds the table of opaque fields and `text.rs` the
//! printing rules, each with the Fabric source it mirrors.
//!
//! ```
//! let block = ordo_proto::common::Block::default();
//! let bytes = ordo_protolator::marshal("common.Block", &block).unwrap();
//! let json = ordo_protolator::decode("common.Block", &bytes).unwrap();
//! assert_eq!(ordo_protolator::to_json_string(&json), "{\n\t\"data\": null,\n\t\"header\": null,\n\t\"metadata\": null\n}\n");
//! assert_eq!(ordo_protolator::encode("common.Block", &json).unwrap(), bytes);
//! ```

mod decode;
mod encode;
mod error;
mod rules;
mod text;
mod timestamp;
mod update;
mod wire;

use bytes::Bytes;
use prost_reflect::DynamicMessage;
use serde_json::Value;

pub use error::{Error, MAX_DEPTH, WireError};
pub use text::to_json_string;
pub use update::compute_update;

use error::Path;
use rules::Wrap;

/// Translates `bytes`, an encoded message of type `type_name` (a full proto name such as
/// `common.Block`, `common.Envelope`, `common.Config`, `protos.Transaction` — the names
/// `configtxlator --type` takes), into the JSON value `configtxlator proto_decode` prints.
///
/// Opaque bytes that Fabric knows how to read (envelope payloads, headers, transactions, config
/// values, policies, MSP configs, read-write sets, …) are shown as the messages they hold; all
/// other bytes are base64. Use [`to_json_string`] for Fabric's exact text.
///
/// Fails if the type is unknown, the bytes are not a valid message, or the content is something
/// configtxlator refuses to show (for example an unknown config group name): configtxlator then
/// prints nothing at all, and neither does this.
pub fn decode(type_name: &str, bytes: &[u8]) -> Result<Value, Error> {
    let data = Bytes::copy_from_slice(bytes);
    let value = decode::decode_bytes(type_name, &data, Wrap::Auto, &Path::Root, 0)?;
    if !value.is_object() {
        return Err(Error::NotAnObject {
            type_name: type_name.to_string(),
        });
    }
    Ok(value)
}

/// Translates JSON in the form [`decode`] produces back into an encoded message of type
/// `type_name`, as `configtxlator proto_encode` does. Nested messages are re-encoded into their
/// opaque bytes.
///
/// Maps are written with sorted keys everywhere. For canonical input — bytes whose maps were
/// sorted, with no unknown fields, as Ordo itself and Fabric's deterministic marshalling write
/// them — `encode(decode(x)) == x`. Fabric's own config blocks have maps in random order, so for
/// them only `decode(encode(decode(x))) == decode(x)` holds.
///
/// Input is read as configtxlator reads it: field names as declared (jsonpb also accepts
/// lowerCamel names for plain fields), 64-bit integers as strings or numbers, bytes as padded
/// standard base64. Fails on unknown keys, values of the wrong JSON type, and anything
/// configtxlator refuses.
pub fn encode(type_name: &str, json: &Value) -> Result<Vec<u8>, Error> {
    if !json.is_object() {
        return Err(Error::Json {
            path: Path::Root.to_string(),
            reason: "the top level must be a JSON object".into(),
        });
    }
    let msg = encode::encode_message(type_name, json, Wrap::Auto, &Path::Root, 0)?;
    Ok(wire::marshal(&msg))
}

/// The descriptor of a Fabric message type, or the error naming the unknown type.
pub(crate) fn descriptor(
    type_name: &str,
    path: &Path<'_>,
) -> Result<prost_reflect::MessageDescriptor, Error> {
    ordo_proto::descriptor_pool()
        .get_message_by_name(type_name)
        .ok_or_else(|| Error::unknown_type(path, type_name))
}

/// Encodes a prost message of type `type_name` the way Fabric's Go code encodes the same
/// message (golang/protobuf, deterministic): fields in number order, map entries sorted by key.
///
/// This differs from `prost::Message::encode` in one way that matters: prost leaves out a map
/// value equal to its default, so an entry like `"V2_0": {}` in `Capabilities`, or a version-0
/// group in a config update's read set, is written with its key only. Go then reads the value as
/// nil, and configtxlator drops such entries from its JSON. Here the value is always written.
///
/// `type_name` must name the message `message` is an instance of.
pub fn marshal<M: prost::Message>(type_name: &str, message: &M) -> Result<Vec<u8>, Error> {
    let root = Path::Root;
    let desc = descriptor(type_name, &root)?;
    let prost_bytes = message.encode_to_vec();
    // Reading prost's bytes back as a dynamic message restores the default map values prost
    // left out, as present values.
    let dynamic = DynamicMessage::decode(desc, prost_bytes.as_slice()).map_err(|e| {
        Error::wire(
            &root,
            type_name,
            WireError::Prost {
                reason: e.to_string(),
            },
        )
    })?;
    let msg = wire::from_dynamic(&dynamic, &root)?;
    Ok(wire::marshal(&msg))
}
