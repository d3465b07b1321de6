//! Protobuf → JSON (`configtxlator proto_decode`).
//!
//! A parsed [`Msg`] is turned into a `serde_json::Value` with jsonpb's value rules (field names as
//! declared, defaults always present, 64-bit integers as strings, enums by name, bytes in base64,
//! absent bytes and messages as `null`), and with the opaque fields of [`crate::rules`] replaced
//! by the message they hold.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use prost_reflect::{FieldDescriptor, Kind};
use serde_json::{Map, Number, Value};

use crate::error::{Error, MAX_DEPTH, Path};
use crate::rules::{self, Chosen, Special, Wrap};
use crate::timestamp;
use crate::wire::{self, Field, Msg, Val, real_oneof};

const TIMESTAMP: &str = "google.protobuf.Timestamp";

/// Parses `data` as `type_name` and translates it.
pub(crate) fn decode_bytes(
    type_name: &str,
    data: &Bytes,
    wrap: Wrap<'_>,
    path: &Path<'_>,
    depth: usize,
) -> Result<Value, Error> {
    let desc = crate::descriptor(type_name, path)?;
    let msg = wire::parse(&desc, data, path, depth)?;
    message(&msg, wrap, path, depth)
}

/// The JSON for one message.
fn message(msg: &Msg, wrap: Wrap<'_>, path: &Path<'_>, depth: usize) -> Result<Value, Error> {
    if depth > MAX_DEPTH {
        return Err(Error::too_deep(path));
    }
    if msg.desc.full_name() == TIMESTAMP {
        return timestamp_value(msg, path);
    }
    // A TxReadWriteSet expands its namespaces only for the KV data model (0).
    let kv = msg.int32("data_model") == 0;
    let mut entries: Vec<(String, Value)> = Vec::new();
    for fd in msg.desc.fields() {
        let fpath = path.field(fd.name());
        let present = msg.fields.get(&fd.number());
        if real_oneof(&fd).is_some() {
            // A oneof prints only its set member, under the member's name, and always through
            // plain jsonpb: protolator does not look inside oneofs.
            if let Some(field) = present {
                entries.push((
                    fd.name().to_string(),
                    plain_field(&fd, field, &fpath, depth)?,
                ));
            }
            continue;
        }
        let rule = rules::special(&msg.desc, wrap, fd.name(), kv);
        let value = match (rule, present) {
            (Special::Opaque(target), Some(Field::One(Val::Bytes(b)))) => {
                let key = match wrap {
                    Wrap::Value(_, key) => key,
                    _ => "",
                };
                let chosen =
                    rules::choose(target, msg, key).map_err(|r| Error::no_rule(&fpath, r))?;
                opaque(chosen, b, &fpath, depth)?
            }
            (Special::OpaqueList(type_name), Some(Field::List(items))) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let ipath = fpath.index(i);
                    let Val::Bytes(b) = item else { continue };
                    out.push(decode_bytes(type_name, b, Wrap::Auto, &ipath, depth + 1)?);
                }
                Value::Array(out)
            }
            (Special::IsolatedData, Some(Field::Map(map))) => {
                // Fabric's registry of isolated-data types is empty: any value is refused,
                // entries without a value are dropped.
                if let Some((key, _)) = map.iter().find(|(_, v)| v.is_some()) {
                    return Err(Error::no_rule(
                        &fpath.key(key),
                        format!("Unknown map key: {key}"),
                    ));
                }
                Value::Object(Map::new())
            }
            (Special::ChannelGroup, Some(Field::One(Val::Msg(m)))) => {
                message(m, Wrap::Group(rules::Level::Channel), &fpath, depth + 1)?
            }
            (Special::KvNamespaces, Some(Field::List(items))) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    if let Val::Msg(m) = item {
                        out.push(message(m, Wrap::KvNamespace, &fpath.index(i), depth + 1)?);
                    }
                }
                Value::Array(out)
            }
            (Special::Groups(level), Some(Field::Map(map))) => {
                let mut out = Map::new();
                for (key, value) in map {
                    // Entries without a value are dropped; every other entry is checked, even an
                    // empty group.
                    let Some(Val::Msg(m)) = value else { continue };
                    let kpath = fpath.key(key);
                    let sub = rules::subgroup(level, key).map_err(|r| Error::no_rule(&kpath, r))?;
                    out.insert(
                        key.clone(),
                        message(m, Wrap::Group(sub), &kpath, depth + 1)?,
                    );
                }
                Value::Object(out)
            }
            (Special::Values(level), Some(Field::Map(map))) => {
                let mut out = Map::new();
                for (key, value) in map {
                    let Some(Val::Msg(m)) = value else { continue };
                    let kpath = fpath.key(key);
                    rules::values_allowed(level).map_err(|r| Error::no_rule(&kpath, r))?;
                    out.insert(
                        key.clone(),
                        message(m, Wrap::Value(level, key), &kpath, depth + 1)?,
                    );
                }
                Value::Object(out)
            }
            // Nothing special, or a special field that is absent: an absent field prints `null`
            // for bytes and messages, `{}` / `[]` for maps and lists. No type is looked up, so
            // an unknown context is no error.
            (_, _) => default_field(&fd, present, wrap, &fpath, depth)?,
        };
        entries.push((fd.name().to_string(), value));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Value::Object(entries.into_iter().collect()))
}

/// The contents of an opaque field, parsed as the chosen type.
fn opaque(chosen: Chosen, data: &Bytes, path: &Path<'_>, depth: usize) -> Result<Value, Error> {
    match chosen {
        Chosen::Message(type_name) => decode_bytes(type_name, data, Wrap::Auto, path, depth + 1),
        Chosen::Empty => {
            wire::check_skippable(data)
                .map_err(|r| Error::wire(path, "google.protobuf.Empty", r))?;
            Ok(Value::Object(Map::new()))
        }
    }
}

/// A field without special handling. Message fields are still recursed into, with `Auto`
/// wrapping, unless we are inside plain jsonpb output, where everything stays plain.
fn default_field(
    fd: &FieldDescriptor,
    present: Option<&Field>,
    wrap: Wrap<'_>,
    path: &Path<'_>,
    depth: usize,
) -> Result<Value, Error> {
    let child = match wrap {
        Wrap::Plain => Wrap::Plain,
        _ => Wrap::Auto,
    };
    let kind = fd.kind();
    if fd.is_map() {
        let mut out = Map::new();
        if let Some(Field::Map(map)) = present {
            let value_kind = match &kind {
                Kind::Message(entry) => entry.map_entry_value_field().kind(),
                _ => Kind::String,
            };
            for (key, value) in map {
                let kpath = path.key(key);
                let v = match value {
                    Some(v) => value_json(&value_kind, v, child, &kpath, depth)?,
                    // Protolator drops a message entry that has no value; plain jsonpb (and any
                    // map of scalars or bytes, which protolator leaves to jsonpb) prints `null`.
                    None if matches!(value_kind, Kind::Message(_))
                        && !matches!(child, Wrap::Plain) =>
                    {
                        continue;
                    }
                    None => default_scalar(&value_kind),
                };
                out.insert(key.clone(), v);
            }
        }
        return Ok(Value::Object(out));
    }
    if fd.is_list() {
        let mut out = Vec::new();
        if let Some(Field::List(items)) = present {
            for (i, item) in items.iter().enumerate() {
                out.push(value_json(&kind, item, child, &path.index(i), depth)?);
            }
        }
        return Ok(Value::Array(out));
    }
    match present {
        Some(Field::One(v)) => value_json(&kind, v, child, path, depth),
        _ => Ok(default_scalar(&kind)),
    }
}

/// A oneof member, printed by plain jsonpb.
fn plain_field(
    fd: &FieldDescriptor,
    field: &Field,
    path: &Path<'_>,
    depth: usize,
) -> Result<Value, Error> {
    default_field(fd, Some(field), Wrap::Plain, path, depth)
}

/// One value of kind `kind`; messages get `wrap`.
fn value_json(
    kind: &Kind,
    v: &Val,
    wrap: Wrap<'_>,
    path: &Path<'_>,
    depth: usize,
) -> Result<Value, Error> {
    Ok(match v {
        Val::Msg(m) => message(m, wrap, path, depth + 1)?,
        Val::Bool(b) => Value::Bool(*b),
        Val::I32(x) => Value::from(*x),
        Val::U32(x) => Value::from(*x),
        // jsonpb quotes 64-bit integers, since JavaScript numbers cannot hold them exactly.
        Val::I64(x) => Value::String(x.to_string()),
        Val::U64(x) => Value::String(x.to_string()),
        Val::F32(x) => float(f64::from(*x)),
        Val::F64(x) => float(*x),
        Val::Enum(n) => enum_value(kind, *n),
        Val::Str(s) => Value::String(s.clone()),
        Val::Bytes(b) => Value::String(BASE64.encode(b)),
    })
}

/// An enum by its name, or as a bare number when the number has no name.
fn enum_value(kind: &Kind, n: i32) -> Value {
    match kind.as_enum().and_then(|e| e.get_value(n)) {
        Some(v) => Value::String(v.name().to_string()),
        None => Value::from(n),
    }
}

/// jsonpb's floats: numbers, or the strings "NaN", "Infinity", "-Infinity". (No Fabric message
/// that configtxlator shows has a float field.)
fn float(x: f64) -> Value {
    match Number::from_f64(x) {
        Some(n) => Value::Number(n),
        None if x.is_nan() => Value::String("NaN".into()),
        None if x > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

/// What an unset field prints: `null` for messages and bytes (and for a bytes or message map
/// value that is missing), the zero value otherwise.
fn default_scalar(kind: &Kind) -> Value {
    match kind {
        Kind::Message(_) | Kind::Bytes => Value::Null,
        Kind::Bool => Value::Bool(false),
        Kind::String => Value::String(String::new()),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
            Value::String("0".into())
        }
        Kind::Enum(_) => enum_value(kind, 0),
        _ => Value::from(0),
    }
}

fn timestamp_value(msg: &Msg, path: &Path<'_>) -> Result<Value, Error> {
    let seconds = match msg.get_one("seconds") {
        Some(Val::I64(s)) => *s,
        _ => 0,
    };
    let nanos = msg.int32("nanos");
    timestamp::format(seconds, nanos)
        .map(Value::String)
        .map_err(|r| Error::no_rule(path, r))
}
