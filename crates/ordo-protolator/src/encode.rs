//! JSON → protobuf (`configtxlator proto_encode`).
//!
//! Like Fabric, each object is read in two steps: the keys protolator handles itself (opaque,
//! dynamic and message-typed fields, matched by their exact `.proto` name) are set aside, the rest
//! is read with jsonpb's rules (which also accept lowerCamel names), and then the set-aside fields
//! are built, the variably-opaque ones last because their type depends on fields read before them.
//! Opaque fields are encoded with sorted map keys, as Fabric's deterministic marshalling does.

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

use crate::error::{Error, MAX_DEPTH, Path};
use crate::rules::{self, Chosen, Special, Target, Wrap};
use crate::timestamp;
use crate::wire::{self, Field, Msg, Val, real_oneof};

/// Go's `base64.StdEncoding`: padding required, but stray bits in the last character tolerated.
const GO_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Builds a message of type `type_name` from a JSON object.
pub(crate) fn encode_message(
    type_name: &str,
    json: &Value,
    wrap: Wrap<'_>,
    path: &Path<'_>,
    depth: usize,
) -> Result<Msg, Error> {
    let desc = crate::descriptor(type_name, path)?;
    message(&desc, json, wrap, path, depth)
}

fn message(
    desc: &MessageDescriptor,
    json: &Value,
    wrap: Wrap<'_>,
    path: &Path<'_>,
    depth: usize,
) -> Result<Msg, Error> {
    if depth > MAX_DEPTH {
        return Err(Error::too_deep(path));
    }
    let obj = expect_object(json, desc, path)?;
    if desc.full_name() == "google.protobuf.Timestamp" {
        // jsonpb only reads a Timestamp from its RFC 3339 string, never from an object.
        return Err(Error::json(
            path,
            "bad Timestamp: expected a string, got an object",
        ));
    }

    // Step 1: which keys protolator handles itself. Fabric decides this before reading anything,
    // so a TxReadWriteSet is taken to be KV here whatever its `data_model` says.
    let mut handled: Vec<(FieldDescriptor, Special, &Value)> = Vec::new();
    let mut plain: BTreeMap<&str, &Value> = BTreeMap::new();
    for (key, value) in obj {
        let field = desc
            .get_field_by_name(key)
            .filter(|fd| real_oneof(fd).is_none());
        match field {
            Some(fd) if is_protolator_field(desc, wrap, &fd) => {
                let rule = rules::special(desc, wrap, fd.name(), true);
                handled.push((fd, rule, value));
            }
            _ => {
                plain.insert(key, value);
            }
        }
    }

    // Step 2: everything else, as jsonpb reads it.
    let mut msg = jsonpb_object(desc, &plain, path, depth)?;

    // Step 3: the handled fields; those whose type depends on a sibling go last.
    let (later, now): (Vec<_>, Vec<_>) = handled.into_iter().partition(
        |(_, rule, _)| matches!(rule, Special::Opaque(t) if !matches!(t, Target::Fixed(_))),
    );
    for (fd, rule, value) in now.into_iter().chain(later) {
        let fpath = path.field(fd.name());
        special_field(&mut msg, &fd, rule, value, wrap, &fpath, depth)?;
    }
    Ok(msg)
}

/// Whether protolator (rather than jsonpb) reads field `fd`: its special fields, and every
/// message-typed field that is not in a oneof and not a Timestamp.
fn is_protolator_field(desc: &MessageDescriptor, wrap: Wrap<'_>, fd: &FieldDescriptor) -> bool {
    if matches!(wrap, Wrap::Plain) {
        return false;
    }
    if !matches!(rules::special(desc, wrap, fd.name(), true), Special::None) {
        return true;
    }
    match fd.kind() {
        Kind::Message(m) if fd.is_map() => {
            matches!(m.map_entry_value_field().kind(), Kind::Message(_))
        }
        Kind::Message(m) => m.full_name() != "google.protobuf.Timestamp",
        _ => false,
    }
}

fn special_field(
    msg: &mut Msg,
    fd: &FieldDescriptor,
    rule: Special,
    json: &Value,
    wrap: Wrap<'_>,
    path: &Path<'_>,
    depth: usize,
) -> Result<(), Error> {
    match rule {
        Special::None => nested_field(msg, fd, json, path, depth),
        Special::Opaque(target) => {
            let Some(obj) = object_or_null(json, fd, path)? else {
                return Ok(()); // null: left unset, and no type is looked up
            };
            let key = match wrap {
                Wrap::Value(_, key) => key,
                _ => "",
            };
            let chosen = rules::choose(target, msg, key).map_err(|r| Error::no_rule(path, r))?;
            let bytes = opaque_bytes(chosen, obj, path, depth)?;
            msg.set(fd, Val::Bytes(bytes));
            Ok(())
        }
        Special::OpaqueList(type_name) => {
            let items = array(json, fd, path)?;
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let ipath = path.index(i);
                let obj = object(item, fd, &ipath)?;
                let m = encode_message(type_name, obj, Wrap::Auto, &ipath, depth + 1)?;
                out.push(Val::Bytes(Bytes::from(wire::marshal(&m))));
            }
            msg.fields.insert(fd.number(), Field::List(out));
            Ok(())
        }
        Special::IsolatedData => {
            let map = map_object(json, fd, path)?;
            if let Some(key) = map.keys().next() {
                return Err(Error::no_rule(
                    &path.key(key),
                    format!("Unknown map key: {key}"),
                ));
            }
            Ok(())
        }
        Special::ChannelGroup => {
            if let Some(obj) = object_or_null(json, fd, path)? {
                let group = rules::Level::Channel;
                let m = encode_message(
                    "common.ConfigGroup",
                    obj,
                    Wrap::Group(group),
                    path,
                    depth + 1,
                )?;
                msg.set(fd, Val::Msg(m));
            }
            Ok(())
        }
        Special::KvNamespaces => {
            let items = array(json, fd, path)?;
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let ipath = path.index(i);
                let obj = object(item, fd, &ipath)?;
                let m = encode_message(
                    "rwset.NsReadWriteSet",
                    obj,
                    Wrap::KvNamespace,
                    &ipath,
                    depth + 1,
                )?;
                out.push(Val::Msg(m));
            }
            msg.fields.insert(fd.number(), Field::List(out));
            Ok(())
        }
        Special::Groups(level) => {
            let map = map_object(json, fd, path)?;
            let mut out = BTreeMap::new();
            for (key, value) in map {
                let kpath = path.key(key);
                let sub = rules::subgroup(level, key).map_err(|r| Error::no_rule(&kpath, r))?;
                let obj = object(value, fd, &kpath)?;
                let m = encode_message(
                    "common.ConfigGroup",
                    obj,
                    Wrap::Group(sub),
                    &kpath,
                    depth + 1,
                )?;
                out.insert(key.clone(), Some(Val::Msg(m)));
            }
            msg.fields.insert(fd.number(), Field::Map(out));
            Ok(())
        }
        Special::Values(level) => {
            let map = map_object(json, fd, path)?;
            let mut out = BTreeMap::new();
            for (key, value) in map {
                let kpath = path.key(key);
                rules::values_allowed(level).map_err(|r| Error::no_rule(&kpath, r))?;
                let obj = object(value, fd, &kpath)?;
                let m = encode_message(
                    "common.ConfigValue",
                    obj,
                    Wrap::Value(level, key),
                    &kpath,
                    depth + 1,
                )?;
                out.insert(key.clone(), Some(Val::Msg(m)));
            }
            msg.fields.insert(fd.number(), Field::Map(out));
            Ok(())
        }
    }
}

/// A message-typed field that protolator reads: recursed into with `Auto` wrapping. Unlike
/// jsonpb, protolator wants objects here: `null` is only allowed for a singular message.
fn nested_field(
    msg: &mut Msg,
    fd: &FieldDescriptor,
    json: &Value,
    path: &Path<'_>,
    depth: usize,
) -> Result<(), Error> {
    let Kind::Message(sub) = fd.kind() else {
        return Ok(());
    };
    if fd.is_map() {
        let value_desc = match sub.map_entry_value_field().kind() {
            Kind::Message(v) => v,
            _ => return Ok(()),
        };
        let map = map_object(json, fd, path)?;
        let mut out = BTreeMap::new();
        for (key, value) in map {
            let kpath = path.key(key);
            let obj = object(value, fd, &kpath)?;
            let m = message(&value_desc, obj, Wrap::Auto, &kpath, depth + 1)?;
            out.insert(key.clone(), Some(Val::Msg(m)));
        }
        msg.fields.insert(fd.number(), Field::Map(out));
    } else if fd.is_list() {
        let items = array(json, fd, path)?;
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let ipath = path.index(i);
            let obj = object(item, fd, &ipath)?;
            out.push(Val::Msg(message(&sub, obj, Wrap::Auto, &ipath, depth + 1)?));
        }
        msg.fields.insert(fd.number(), Field::List(out));
    } else if let Some(obj) = object_or_null(json, fd, path)? {
        let m = message(&sub, obj, Wrap::Auto, path, depth + 1)?;
        msg.set(fd, Val::Msg(m));
    }
    Ok(())
}

/// The bytes of an opaque field: the object encoded as the chosen type.
fn opaque_bytes(
    chosen: Chosen,
    obj: &Value,
    path: &Path<'_>,
    depth: usize,
) -> Result<Bytes, Error> {
    match chosen {
        Chosen::Message(type_name) => {
            let m = encode_message(type_name, obj, Wrap::Auto, path, depth + 1)?;
            Ok(Bytes::from(wire::marshal(&m)))
        }
        Chosen::Empty => {
            if let Some(key) = obj.as_object().and_then(|o| o.keys().next()) {
                return Err(Error::json(
                    path,
                    format!("unknown field {key:?} in google.protobuf.Empty"),
                ));
            }
            Ok(Bytes::new())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// jsonpb
// ---------------------------------------------------------------------------------------------

/// Reads an object with jsonpb's rules: each field by its lowerCamel JSON name or its `.proto`
/// name (the camel one wins if both are there), unknown keys refused. Everything below is plain.
fn jsonpb_object(
    desc: &MessageDescriptor,
    obj: &BTreeMap<&str, &Value>,
    path: &Path<'_>,
    depth: usize,
) -> Result<Msg, Error> {
    let mut msg = Msg::new(desc.clone());
    let mut used = 0usize;
    for fd in desc.fields() {
        let by_camel = obj.get(fd.json_name()).copied();
        let by_name = if fd.json_name() == fd.name() {
            None
        } else {
            obj.get(fd.name()).copied()
        };
        used += usize::from(by_camel.is_some()) + usize::from(by_name.is_some());
        let Some(value) = by_camel.or(by_name) else {
            continue;
        };
        let fpath = path.field(fd.name());
        jsonpb_field(&mut msg, &fd, value, &fpath, depth)?;
    }
    if used < obj.len() {
        let unknown = obj.keys().find(|k| {
            !desc
                .fields()
                .any(|fd| fd.name() == **k || fd.json_name() == **k)
        });
        if let Some(key) = unknown {
            return Err(Error::json(
                path,
                format!("unknown field {key:?} in {}", desc.full_name()),
            ));
        }
    }
    Ok(msg)
}

fn jsonpb_field(
    msg: &mut Msg,
    fd: &FieldDescriptor,
    json: &Value,
    path: &Path<'_>,
    depth: usize,
) -> Result<(), Error> {
    let kind = fd.kind();
    if fd.is_map() {
        let Kind::Message(entry) = &kind else {
            return Ok(());
        };
        let value_kind = entry.map_entry_value_field().kind();
        let mut out = BTreeMap::new();
        match json {
            Value::Null => {}
            Value::Object(map) => {
                for (key, value) in map {
                    let kpath = path.key(key);
                    // A `null` value leaves the Go map value at its zero (nil) state.
                    let v = match value {
                        Value::Null => None,
                        v => jsonpb_value(&value_kind, v, &kpath, depth)?,
                    };
                    out.insert(key.clone(), v);
                }
            }
            other => return Err(wrong_json(path, fd, "an object", other)),
        }
        msg.fields.insert(fd.number(), Field::Map(out));
        return Ok(());
    }
    if fd.is_list() {
        let mut out = Vec::new();
        match json {
            Value::Null => {}
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let ipath = path.index(i);
                    match jsonpb_value(&kind, item, &ipath, depth)? {
                        Some(v) => out.push(v),
                        // Go would hold a nil message in the list and refuse to marshal it.
                        None if matches!(kind, Kind::Message(_)) => {
                            return Err(Error::json(
                                &ipath,
                                "null element in a repeated message field",
                            ));
                        }
                        None => out.push(zero_value(&kind)),
                    }
                }
            }
            other => return Err(wrong_json(path, fd, "an array", other)),
        }
        msg.fields.insert(fd.number(), Field::List(out));
        return Ok(());
    }
    let in_oneof = real_oneof(fd).is_some();
    match jsonpb_value(&kind, json, path, depth)? {
        Some(v) => msg.set(fd, v),
        // `null` leaves a field unset; a oneof scalar given `null` is still set (to zero).
        None if in_oneof && !matches!(kind, Kind::Message(_)) => msg.set(fd, zero_value(&kind)),
        None => {}
    }
    Ok(())
}

/// One jsonpb value; `Ok(None)` for `null`.
fn jsonpb_value(
    kind: &Kind,
    json: &Value,
    path: &Path<'_>,
    depth: usize,
) -> Result<Option<Val>, Error> {
    if json.is_null() {
        return Ok(None);
    }
    let v = match kind {
        Kind::Message(desc) if desc.full_name() == "google.protobuf.Timestamp" => {
            let Value::String(text) = json else {
                return Err(Error::json(
                    path,
                    format!("bad Timestamp: expected a string, got {}", kind_of(json)),
                ));
            };
            let (seconds, nanos) = timestamp::parse(text).map_err(|r| Error::json(path, r))?;
            let mut m = Msg::new(desc.clone());
            if let Some(fd) = desc.get_field_by_name("seconds") {
                m.set(&fd, Val::I64(seconds));
            }
            if let Some(fd) = desc.get_field_by_name("nanos") {
                m.set(&fd, Val::I32(nanos));
            }
            Val::Msg(m)
        }
        Kind::Message(desc) => {
            if depth + 1 > MAX_DEPTH {
                return Err(Error::too_deep(path));
            }
            let obj = expect_object(json, desc, path)?;
            let fields = obj.iter().map(|(k, v)| (k.as_str(), v)).collect();
            Val::Msg(jsonpb_object(desc, &fields, path, depth + 1)?)
        }
        Kind::Bool => match json {
            Value::Bool(b) => Val::Bool(*b),
            other => {
                return Err(Error::json(
                    path,
                    format!("expected true or false, got {}", kind_of(other)),
                ));
            }
        },
        Kind::String => match json {
            Value::String(s) => Val::Str(s.clone()),
            other => {
                return Err(Error::json(
                    path,
                    format!("expected a string, got {}", kind_of(other)),
                ));
            }
        },
        Kind::Bytes => match json {
            Value::String(s) => Val::Bytes(base64_decode(s).map_err(|r| Error::json(path, r))?),
            other => {
                return Err(Error::json(
                    path,
                    format!("expected a base64 string, got {}", kind_of(other)),
                ));
            }
        },
        Kind::Enum(e) => match json {
            // Names are exact and case-sensitive; numbers may be ones the enum does not name.
            Value::String(name) => match e.get_value_by_name(name) {
                Some(v) => Val::Enum(v.number()),
                None => {
                    return Err(Error::json(
                        path,
                        format!("unknown value {name:?} for enum {}", e.full_name()),
                    ));
                }
            },
            other => match integer(other, path)? {
                Some(n) => Val::Enum(fit(n, path, "int32")?),
                None => return Ok(None),
            },
        },
        Kind::Float | Kind::Double => {
            let x = float(json)
                .ok_or_else(|| Error::json(path, format!("expected a number, got {json}")))?;
            if matches!(kind, Kind::Float) {
                Val::F32(x as f32)
            } else {
                Val::F64(x)
            }
        }
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => match integer(json, path)? {
            Some(n) => Val::I32(fit(n, path, "int32")?),
            None => return Ok(None),
        },
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => match integer(json, path)? {
            Some(n) => Val::I64(fit(n, path, "int64")?),
            None => return Ok(None),
        },
        Kind::Uint32 | Kind::Fixed32 => match integer(json, path)? {
            Some(n) => Val::U32(fit(n, path, "uint32")?),
            None => return Ok(None),
        },
        Kind::Uint64 | Kind::Fixed64 => match integer(json, path)? {
            Some(n) => Val::U64(fit(n, path, "uint64")?),
            None => return Ok(None),
        },
    };
    Ok(Some(v))
}

/// An integer given as a JSON number or, as jsonpb allows for every integer type, as a string
/// holding one. Fractions and exponents are refused, like Go's `encoding/json` does for integer
/// targets. `Ok(None)` for the string "null", which Go reads as "leave it alone".
fn integer(json: &Value, path: &Path<'_>) -> Result<Option<i128>, Error> {
    match json {
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                Ok(Some(i128::from(u)))
            } else if let Some(i) = n.as_i64() {
                Ok(Some(i128::from(i)))
            } else {
                Err(Error::json(
                    path,
                    format!("cannot unmarshal number {n} into an integer field"),
                ))
            }
        }
        Value::String(s) => {
            let literal = s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r'));
            if literal == "null" {
                return Ok(None);
            }
            parse_integer_literal(literal)
                .map(Some)
                .ok_or_else(|| Error::json(path, format!("invalid integer {s:?}")))
        }
        other => Err(Error::json(
            path,
            format!("expected an integer, got {}", kind_of(other)),
        )),
    }
}

/// A JSON integer literal (`-?(0|[1-9][0-9]*)`); anything longer than an i128 holds is refused.
fn parse_integer_literal(s: &str) -> Option<i128> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let well_formed = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if !well_formed {
        return None;
    }
    s.parse::<i128>().ok()
}

fn fit<T: TryFrom<i128>>(n: i128, path: &Path<'_>, type_name: &str) -> Result<T, Error> {
    T::try_from(n).map_err(|_| Error::json(path, format!("number {n} does not fit in {type_name}")))
}

fn float(json: &Value) -> Option<f64> {
    match json {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            other => other.parse().ok(),
        },
        _ => None,
    }
}

/// Standard base64 with padding, ignoring CR and LF anywhere (Go's decoder skips them).
fn base64_decode(s: &str) -> Result<Bytes, String> {
    let cleaned: String = s.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    GO_BASE64
        .decode(cleaned.as_bytes())
        .map(Bytes::from)
        .map_err(|e| format!("illegal base64 data: {e}"))
}

/// The value Go leaves in place for `null` inside a list: the zero of the element type.
fn zero_value(kind: &Kind) -> Val {
    match kind {
        Kind::Bool => Val::Bool(false),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Val::I32(0),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Val::I64(0),
        Kind::Uint32 | Kind::Fixed32 => Val::U32(0),
        Kind::Uint64 | Kind::Fixed64 => Val::U64(0),
        Kind::Float => Val::F32(0.0),
        Kind::Double => Val::F64(0.0),
        Kind::Enum(_) => Val::Enum(0),
        Kind::String => Val::Str(String::new()),
        Kind::Bytes => Val::Bytes(Bytes::new()),
        Kind::Message(desc) => Val::Msg(Msg::new(desc.clone())),
    }
}

// ---------------------------------------------------------------------------------------------
// Shape checks for protolator's own fields
// ---------------------------------------------------------------------------------------------

fn object<'v>(json: &'v Value, fd: &FieldDescriptor, path: &Path<'_>) -> Result<&'v Value, Error> {
    match json {
        Value::Object(_) => Ok(json),
        other => Err(wrong_json(path, fd, "an object", other)),
    }
}

fn object_or_null<'v>(
    json: &'v Value,
    fd: &FieldDescriptor,
    path: &Path<'_>,
) -> Result<Option<&'v Value>, Error> {
    match json {
        Value::Null => Ok(None),
        Value::Object(_) => Ok(Some(json)),
        other => Err(wrong_json(path, fd, "an object or null", other)),
    }
}

fn array<'v>(
    json: &'v Value,
    fd: &FieldDescriptor,
    path: &Path<'_>,
) -> Result<&'v Vec<Value>, Error> {
    match json {
        Value::Array(items) => Ok(items),
        other => Err(wrong_json(path, fd, "an array", other)),
    }
}

fn map_object<'v>(
    json: &'v Value,
    fd: &FieldDescriptor,
    path: &Path<'_>,
) -> Result<&'v Map<String, Value>, Error> {
    match json {
        Value::Object(map) => Ok(map),
        other => Err(wrong_json(path, fd, "an object", other)),
    }
}

fn wrong_json(path: &Path<'_>, fd: &FieldDescriptor, wanted: &str, got: &Value) -> Error {
    Error::json(
        path,
        format!(
            "field {} must be {wanted}, got {}",
            fd.full_name(),
            kind_of(got)
        ),
    )
}

fn kind_of(json: &Value) -> &'static str {
    match json {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The JSON object a message is encoded from, or the error naming the message expected.
fn expect_object<'a>(
    json: &'a Value,
    desc: &MessageDescriptor,
    path: &Path<'_>,
) -> Result<&'a serde_json::Map<String, Value>, Error> {
    match json {
        Value::Object(obj) => Ok(obj),
        _ => Err(Error::json(
            path,
            format!(
                "expected a JSON object for {}, got {}",
                desc.full_name(),
                kind_of(json)
            ),
        )),
    }
}
