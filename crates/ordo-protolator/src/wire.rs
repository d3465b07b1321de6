//! The protobuf wire format, read and written the way golang/protobuf v1.3.3 (the library inside
//! Fabric v2.4's configtxlator) does it.
//!
//! We do not use `prost_reflect::DynamicMessage` here because it cannot tell apart things that
//! configtxlator prints differently: a `bytes` field that is absent (`null`) from one that is
//! present but empty (`""`), or a map entry that has a key but no value (dropped, or `null`) from
//! one whose value is an empty message. [`Msg`] keeps exactly what was on the wire.

use bytes::Bytes;
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor, Syntax};
use std::collections::BTreeMap;

use crate::error::{Error, MAX_DEPTH, Path, WireError};

/// A message as a set of present fields, keyed by field number.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub(crate) desc: MessageDescriptor,
    pub(crate) fields: BTreeMap<u32, Field>,
}

/// The value of one present field.
#[derive(Debug, Clone)]
pub(crate) enum Field {
    /// A singular field (for proto3 scalars "present" may still be the zero value).
    One(Val),
    /// A repeated field.
    List(Vec<Val>),
    /// A map field. `None` is an entry that had a key but no value on the wire (Go then holds a
    /// nil value). Keys are strings: every map in Fabric's messages has string keys.
    Map(BTreeMap<String, Option<Val>>),
}

/// One scalar or message value.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Bool(bool),
    I32(i32),
    I64(i64),
    U32(u32),
    U64(u64),
    F32(f32),
    F64(f64),
    Enum(i32),
    Str(String),
    Bytes(Bytes),
    Msg(Msg),
}

impl Msg {
    pub(crate) fn new(desc: MessageDescriptor) -> Msg {
        Msg {
            desc,
            fields: BTreeMap::new(),
        }
    }

    /// The field called `name`, if it is present.
    pub(crate) fn get(&self, name: &str) -> Option<&Field> {
        let fd = self.desc.get_field_by_name(name)?;
        self.fields.get(&fd.number())
    }

    /// A singular field's value, if present.
    pub(crate) fn get_one(&self, name: &str) -> Option<&Val> {
        match self.get(name)? {
            Field::One(v) => Some(v),
            _ => None,
        }
    }

    /// An `int32` field, with proto3's zero default.
    pub(crate) fn int32(&self, name: &str) -> i32 {
        match self.get_one(name) {
            Some(Val::I32(v) | Val::Enum(v)) => *v,
            _ => 0,
        }
    }

    /// A `string` field, with proto3's empty default.
    pub(crate) fn string(&self, name: &str) -> &str {
        match self.get_one(name) {
            Some(Val::Str(s)) => s,
            _ => "",
        }
    }

    /// A `bytes` field, `None` when absent.
    pub(crate) fn bytes(&self, name: &str) -> Option<&Bytes> {
        match self.get_one(name) {
            Some(Val::Bytes(b)) => Some(b),
            _ => None,
        }
    }

    /// A singular message field, `None` when absent.
    pub(crate) fn message(&self, name: &str) -> Option<&Msg> {
        match self.get_one(name) {
            Some(Val::Msg(m)) => Some(m),
            _ => None,
        }
    }

    /// Sets a singular field. Setting a member of a oneof clears the other members, as assigning
    /// the Go oneof interface does.
    pub(crate) fn set(&mut self, field: &FieldDescriptor, value: Val) {
        self.clear_oneof_siblings(field);
        self.fields.insert(field.number(), Field::One(value));
    }

    fn clear_oneof_siblings(&mut self, field: &FieldDescriptor) {
        if let Some(oneof) = real_oneof(field) {
            for sibling in oneof.fields() {
                if sibling.number() != field.number() {
                    self.fields.remove(&sibling.number());
                }
            }
        }
    }
}

/// The oneof a field belongs to, ignoring the synthetic oneofs of proto3 `optional` fields.
pub(crate) fn real_oneof(field: &FieldDescriptor) -> Option<prost_reflect::OneofDescriptor> {
    field.containing_oneof().filter(|o| !o.is_synthetic())
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const FIXED32: u8 = 5;

/// Parses `data` as a message of type `desc`. `path` is where these bytes sit in the tree and
/// `depth` how many messages enclose them; both only serve error reports and the depth limit.
pub(crate) fn parse(
    desc: &MessageDescriptor,
    data: &Bytes,
    path: &Path<'_>,
    depth: usize,
) -> Result<Msg, Error> {
    let mut msg = Msg::new(desc.clone());
    merge(&mut msg, data, path, depth)?;
    Ok(msg)
}

/// Parses `data` into `msg`, on top of what it already holds: later scalars replace earlier ones,
/// a singular message seen twice is merged, repeated fields append (golang/protobuf's rules).
fn merge(msg: &mut Msg, data: &Bytes, path: &Path<'_>, depth: usize) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::too_deep(path));
    }
    let desc = msg.desc.clone();
    let fail = |reason: WireError| Error::wire(path, desc.full_name(), reason);
    let mut r = Reader::new(data);
    while !r.at_end() {
        let key = r.varint().map_err(fail)?;
        let wire = (key & 7) as u8;
        let number = key >> 3;
        if number == 0 {
            return Err(fail(WireError::IllegalTag0 { wire_type: wire }));
        }
        let field = u32::try_from(number).ok().and_then(|n| desc.get_field(n));
        let handled = match &field {
            Some(f) => read_field(msg, f, wire, &mut r, path, depth)?,
            None => false,
        };
        // Unknown fields, and known fields that arrive with the wrong wire type, are skipped:
        // golang/protobuf keeps them aside and never shows them in JSON.
        if !handled {
            r.skip(wire).map_err(fail)?;
        }
    }
    Ok(())
}

/// Reads one occurrence of `field`. Returns `Ok(false)` when the wire type does not suit the
/// field, so the caller skips it as an unknown field.
fn read_field(
    msg: &mut Msg,
    field: &FieldDescriptor,
    wire: u8,
    r: &mut Reader<'_>,
    path: &Path<'_>,
    depth: usize,
) -> Result<bool, Error> {
    let fpath = path.field(field.name());
    let parent = msg.desc.clone();
    let fail = |reason: WireError| Error::wire(path, parent.full_name(), reason);
    if field.is_map() {
        if wire != LEN {
            return Err(fail(WireError::BadMapWireType {
                field: field.full_name().to_string(),
                wire_type: wire,
            }));
        }
        let entry = r.length_delimited().map_err(fail)?;
        let (key, value) = read_map_entry(field, &entry, &fpath, depth)?;
        match msg
            .fields
            .entry(field.number())
            .or_insert_with(|| Field::Map(BTreeMap::new()))
        {
            Field::Map(m) => {
                m.insert(key, value);
            }
            other => *other = Field::Map(BTreeMap::from([(key, value)])),
        }
        return Ok(true);
    }

    let kind = field.kind();
    if field.is_list() {
        // Repeated scalars may come packed (one length-delimited run) or one by one.
        if wire == LEN && is_packable(&kind) {
            let run = r.length_delimited().map_err(fail)?;
            let mut inner = Reader::new(&run);
            let mut values = Vec::new();
            while !inner.at_end() {
                values.push(read_scalar(&kind, scalar_wire(&kind), &mut inner).map_err(fail)?);
            }
            push_list(msg, field, values);
            return Ok(true);
        }
        let Some(value) = read_value(field, &kind, wire, r, None, &fpath, depth)? else {
            return Ok(false);
        };
        push_list(msg, field, vec![value]);
        return Ok(true);
    }

    if matches!(kind, Kind::Message(_)) && wire != LEN {
        return Ok(false);
    }
    // A singular message is merged with an earlier occurrence, except inside a oneof, where Go
    // allocates a fresh holder each time.
    let earlier = if real_oneof(field).is_none() {
        match msg.fields.remove(&field.number()) {
            Some(Field::One(Val::Msg(m))) => Some(m),
            Some(other) => {
                msg.fields.insert(field.number(), other);
                None
            }
            None => None,
        }
    } else {
        None
    };
    match read_value(field, &kind, wire, r, earlier, &fpath, depth)? {
        Some(value) => {
            msg.set(field, value);
            Ok(true)
        }
        None => Ok(false),
    }
}

fn push_list(msg: &mut Msg, field: &FieldDescriptor, values: Vec<Val>) {
    match msg
        .fields
        .entry(field.number())
        .or_insert_with(|| Field::List(Vec::new()))
    {
        Field::List(list) => list.extend(values),
        other => *other = Field::List(values),
    }
}

/// Reads one value of `field` (whose kind is `kind`); `Ok(None)` when the wire type does not
/// fit. A message value is parsed on top of `merge_into` when given.
fn read_value(
    field: &FieldDescriptor,
    kind: &Kind,
    wire: u8,
    r: &mut Reader<'_>,
    merge_into: Option<Msg>,
    path: &Path<'_>,
    depth: usize,
) -> Result<Option<Val>, Error> {
    let parent = field.parent_message();
    let fail = |reason: WireError| Error::wire(path, parent.full_name(), reason);
    match kind {
        Kind::Message(sub) => {
            if wire != LEN {
                return Ok(None);
            }
            let data = r.length_delimited().map_err(fail)?;
            let mut m = merge_into.unwrap_or_else(|| Msg::new(sub.clone()));
            merge(&mut m, &data, path, depth + 1)?;
            Ok(Some(Val::Msg(m)))
        }
        Kind::String => {
            if wire != LEN {
                return Ok(None);
            }
            let data = r.length_delimited().map_err(fail)?;
            match String::from_utf8(data.to_vec()) {
                Ok(s) => Ok(Some(Val::Str(s))),
                // golang/protobuf checks UTF-8 only for proto3 strings.
                Err(_) if field.parent_file().syntax() == Syntax::Proto3 => {
                    Err(fail(WireError::InvalidUtf8 {
                        field: field.full_name().to_string(),
                    }))
                }
                Err(e) => Ok(Some(Val::Str(
                    String::from_utf8_lossy(e.as_bytes()).into_owned(),
                ))),
            }
        }
        Kind::Bytes => {
            if wire != LEN {
                return Ok(None);
            }
            Ok(Some(Val::Bytes(r.length_delimited().map_err(fail)?)))
        }
        _ => {
            if wire != scalar_wire(kind) {
                return Ok(None);
            }
            Ok(Some(read_scalar(kind, wire, r).map_err(fail)?))
        }
    }
}

/// Reads one map entry (a small message with the key as field 1 and the value as field 2).
fn read_map_entry(
    field: &FieldDescriptor,
    entry: &Bytes,
    path: &Path<'_>,
    depth: usize,
) -> Result<(String, Option<Val>), Error> {
    let Kind::Message(entry_desc) = field.kind() else {
        // A map field always has a synthesized entry message; anything else is a broken pool.
        return Err(Error::wire(
            path,
            field.full_name(),
            WireError::UnsupportedMapKey {
                field: field.full_name().to_string(),
            },
        ));
    };
    let key_field = entry_desc.map_entry_key_field();
    let value_field = entry_desc.map_entry_value_field();
    if key_field.kind() != Kind::String {
        return Err(Error::wire(
            path,
            entry_desc.full_name(),
            WireError::UnsupportedMapKey {
                field: field.full_name().to_string(),
            },
        ));
    }
    let fail = |reason: WireError| Error::wire(path, entry_desc.full_name(), reason);
    let mut key = String::new();
    let mut value: Option<Val> = None;
    let mut r = Reader::new(entry);
    while !r.at_end() {
        let tag = r.varint().map_err(fail)?;
        let wire = (tag & 7) as u8;
        // Inside an entry golang/protobuf skips anything that is not a well-typed key or value,
        // even field number 0.
        let read = match tag >> 3 {
            1 => match read_value(&key_field, &Kind::String, wire, &mut r, None, path, depth)? {
                Some(Val::Str(s)) => {
                    key = s;
                    true
                }
                _ => false,
            },
            2 => {
                let kind = value_field.kind();
                if matches!(kind, Kind::Message(_)) && wire != LEN {
                    false
                } else {
                    // A message value seen twice in one entry is merged, like any message field.
                    let earlier = match value.take() {
                        Some(Val::Msg(m)) => Some(m),
                        other => {
                            value = other;
                            None
                        }
                    };
                    match read_value(&value_field, &kind, wire, &mut r, earlier, path, depth)? {
                        Some(v) => {
                            value = Some(v);
                            true
                        }
                        None => false,
                    }
                }
            }
            _ => false,
        };
        if !read {
            r.skip(wire).map_err(fail)?;
        }
    }
    Ok((key, value))
}

fn is_packable(kind: &Kind) -> bool {
    !matches!(kind, Kind::String | Kind::Bytes | Kind::Message(_))
}

/// The wire type a scalar kind uses.
fn scalar_wire(kind: &Kind) -> u8 {
    match kind {
        Kind::Fixed64 | Kind::Sfixed64 | Kind::Double => FIXED64,
        Kind::Fixed32 | Kind::Sfixed32 | Kind::Float => FIXED32,
        Kind::String | Kind::Bytes | Kind::Message(_) => LEN,
        _ => VARINT,
    }
}

/// Reads a number-like scalar. Varints are truncated to 32 bits where the type is 32 bits wide,
/// as Go's conversions do.
fn read_scalar(kind: &Kind, wire: u8, r: &mut Reader<'_>) -> Result<Val, WireError> {
    Ok(match wire {
        FIXED32 => {
            let v = r.fixed32()?;
            match kind {
                Kind::Sfixed32 => Val::I32(v as i32),
                Kind::Float => Val::F32(f32::from_bits(v)),
                _ => Val::U32(v),
            }
        }
        FIXED64 => {
            let v = r.fixed64()?;
            match kind {
                Kind::Sfixed64 => Val::I64(v as i64),
                Kind::Double => Val::F64(f64::from_bits(v)),
                _ => Val::U64(v),
            }
        }
        _ => {
            let v = r.varint()?;
            match kind {
                Kind::Bool => Val::Bool(v != 0),
                Kind::Int32 => Val::I32(v as i32),
                Kind::Uint32 => Val::U32(v as u32),
                Kind::Sint32 => Val::I32(zigzag_decode(v) as i32),
                Kind::Int64 => Val::I64(v as i64),
                Kind::Sint64 => Val::I64(zigzag_decode(v)),
                Kind::Enum(_) => Val::Enum(v as i32),
                _ => Val::U64(v),
            }
        }
    })
}

fn zigzag_decode(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// A cursor over wire bytes. Length-delimited values are returned as cheap slices of the input.
struct Reader<'a> {
    data: &'a Bytes,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a Bytes) -> Self {
        Reader { data, pos: 0 }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    fn rest(&self) -> &[u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }

    /// A varint of at most ten bytes; the tenth may only carry the top bit (Go's rule).
    fn varint(&mut self) -> Result<u64, WireError> {
        let mut value: u64 = 0;
        for (i, &b) in self.rest().iter().enumerate().take(10) {
            if i == 9 && b > 1 {
                break;
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.pos += i + 1;
                return Ok(value);
            }
        }
        Err(WireError::UnexpectedEof)
    }

    fn take(&mut self, n: usize) -> Result<std::ops::Range<usize>, WireError> {
        if self.rest().len() < n {
            return Err(WireError::UnexpectedEof);
        }
        let range = self.pos..self.pos + n;
        self.pos += n;
        Ok(range)
    }

    fn fixed32(&mut self) -> Result<u32, WireError> {
        let range = self.take(4)?;
        let mut buf = [0u8; 4];
        buf.copy_from_slice(&self.data[range]);
        Ok(u32::from_le_bytes(buf))
    }

    fn fixed64(&mut self) -> Result<u64, WireError> {
        let range = self.take(8)?;
        let mut buf = [0u8; 8];
        buf.copy_from_slice(&self.data[range]);
        Ok(u64::from_le_bytes(buf))
    }

    fn length_delimited(&mut self) -> Result<Bytes, WireError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| WireError::UnexpectedEof)?;
        let range = self.take(len)?;
        Ok(self.data.slice(range))
    }

    /// Skips one value of an unknown field.
    fn skip(&mut self, wire: u8) -> Result<(), WireError> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.length_delimited().map(drop),
            START_GROUP => self.skip_group(),
            FIXED32 => self.take(4).map(drop),
            other => Err(WireError::BadWireType { wire_type: other }),
        }
    }

    /// Skips to just past the end-group tag that closes a group (groups may nest).
    fn skip_group(&mut self) -> Result<(), WireError> {
        let mut depth = 1usize;
        loop {
            // Any failure to find the end is reported as a truncation, as Go does.
            let tag = self.varint()?;
            match (tag & 7) as u8 {
                START_GROUP => depth += 1,
                4 => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                w @ (VARINT | FIXED64 | LEN | FIXED32) => self.skip(w)?,
                _ => return Err(WireError::UnexpectedEof),
            }
        }
    }
}

/// Checks that `data` is well-formed protobuf without looking at what the fields mean: how Go
/// parses bytes into `google.protobuf.Empty`, which has no fields.
pub(crate) fn check_skippable(data: &Bytes) -> Result<(), WireError> {
    let mut r = Reader::new(data);
    while !r.at_end() {
        let key = r.varint()?;
        let wire = (key & 7) as u8;
        if key >> 3 == 0 {
            return Err(WireError::IllegalTag0 { wire_type: wire });
        }
        r.skip(wire)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// Encodes `msg` as golang/protobuf v1.3.3 does in deterministic mode: fields by ascending
/// number (oneof members after all other fields), proto3 zero values left out, map entries
/// sorted by key. See `write_field` for the map-entry details that differ from prost.
pub(crate) fn marshal(msg: &Msg) -> Vec<u8> {
    let mut out = Vec::new();
    write_message(msg, &mut out);
    out
}

fn write_message(msg: &Msg, out: &mut Vec<u8>) {
    let mut oneof_members = Vec::new();
    for (&number, field) in &msg.fields {
        let Some(fd) = msg.desc.get_field(number) else {
            continue;
        };
        if real_oneof(&fd).is_some() {
            // Go gives oneof fields a huge sort key, so they come out after every other field.
            oneof_members.push((fd, field));
            continue;
        }
        write_field(&fd, field, false, out);
    }
    for (fd, field) in oneof_members {
        write_field(&fd, field, true, out);
    }
}

fn write_field(fd: &FieldDescriptor, field: &Field, in_oneof: bool, out: &mut Vec<u8>) {
    let number = fd.number();
    let kind = fd.kind();
    match field {
        Field::One(v) => {
            // A oneof member is written even when zero; a proto3 scalar is not. Messages are
            // written whenever set, even when empty.
            if in_oneof || !is_zero(v) {
                write_value(number, &kind, v, out);
            }
        }
        Field::List(values) => {
            if values.is_empty() {
                return;
            }
            if is_packable(&kind) {
                let mut run = Vec::new();
                for v in values {
                    write_bare_scalar(v, &kind, &mut run);
                }
                write_tag(number, LEN, out);
                write_len_prefixed(&run, out);
            } else {
                for v in values {
                    write_value(number, &kind, v, out);
                }
            }
        }
        Field::Map(entries) => {
            let Kind::Message(entry_desc) = kind else {
                return;
            };
            let value_kind = entry_desc.map_entry_value_field().kind();
            for (key, value) in entries {
                let mut entry = Vec::new();
                // golang/protobuf always writes the key, even "". The value is written when
                // present, an empty message included, except that empty bytes are left out
                // (the proto3 rule applies to the value field of the entry).
                write_value(1, &Kind::String, &Val::Str(key.clone()), &mut entry);
                match value {
                    Some(Val::Bytes(b)) if b.is_empty() => {}
                    Some(v) => write_value(2, &value_kind, v, &mut entry),
                    None => {}
                }
                write_tag(number, LEN, out);
                write_len_prefixed(&entry, out);
            }
        }
    }
}

fn is_zero(v: &Val) -> bool {
    match v {
        Val::Bool(b) => !*b,
        Val::I32(x) | Val::Enum(x) => *x == 0,
        Val::I64(x) => *x == 0,
        Val::U32(x) => *x == 0,
        Val::U64(x) => *x == 0,
        // proto3 leaves out +0.0 only; -0.0 has a sign bit and is written.
        Val::F32(x) => x.to_bits() == 0,
        Val::F64(x) => x.to_bits() == 0,
        Val::Str(s) => s.is_empty(),
        Val::Bytes(b) => b.is_empty(),
        Val::Msg(_) => false,
    }
}

fn write_value(number: u32, kind: &Kind, v: &Val, out: &mut Vec<u8>) {
    match v {
        Val::Str(s) => {
            write_tag(number, LEN, out);
            write_len_prefixed(s.as_bytes(), out);
        }
        Val::Bytes(b) => {
            write_tag(number, LEN, out);
            write_len_prefixed(b, out);
        }
        Val::Msg(m) => {
            let mut inner = Vec::new();
            write_message(m, &mut inner);
            write_tag(number, LEN, out);
            write_len_prefixed(&inner, out);
        }
        _ => {
            write_tag(number, scalar_wire(kind), out);
            write_bare_scalar(v, kind, out);
        }
    }
}

fn write_bare_scalar(v: &Val, kind: &Kind, out: &mut Vec<u8>) {
    match (v, kind) {
        (Val::Bool(b), _) => write_varint(u64::from(*b), out),
        (Val::I32(x), Kind::Sint32) => write_varint(u64::from(((x << 1) ^ (x >> 31)) as u32), out),
        (Val::I32(x), Kind::Sfixed32) => out.extend_from_slice(&x.to_le_bytes()),
        // Negative int32 and enum values are sign-extended to ten bytes, as in every protobuf.
        (Val::I32(x) | Val::Enum(x), _) => write_varint(i64::from(*x) as u64, out),
        (Val::I64(x), Kind::Sint64) => write_varint(((x << 1) ^ (x >> 63)) as u64, out),
        (Val::I64(x), Kind::Sfixed64) => out.extend_from_slice(&x.to_le_bytes()),
        (Val::I64(x), _) => write_varint(*x as u64, out),
        (Val::U32(x), Kind::Fixed32) => out.extend_from_slice(&x.to_le_bytes()),
        (Val::U32(x), _) => write_varint(u64::from(*x), out),
        (Val::U64(x), Kind::Fixed64) => out.extend_from_slice(&x.to_le_bytes()),
        (Val::U64(x), _) => write_varint(*x, out),
        (Val::F32(x), _) => out.extend_from_slice(&x.to_bits().to_le_bytes()),
        (Val::F64(x), _) => out.extend_from_slice(&x.to_bits().to_le_bytes()),
        // Strings, bytes and messages are never packed; `write_value` handles them.
        (Val::Str(_) | Val::Bytes(_) | Val::Msg(_), _) => {}
    }
}

fn write_tag(number: u32, wire: u8, out: &mut Vec<u8>) {
    write_varint((u64::from(number) << 3) | u64::from(wire), out);
}

fn write_len_prefixed(data: &[u8], out: &mut Vec<u8>) {
    write_varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

fn write_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

// ---------------------------------------------------------------------------------------------
// From prost-reflect
// ---------------------------------------------------------------------------------------------

/// Converts a dynamic message into a [`Msg`]. Every map value becomes present, which is what a Go
/// struct built in code (rather than parsed) holds.
pub(crate) fn from_dynamic(
    dm: &prost_reflect::DynamicMessage,
    path: &Path<'_>,
) -> Result<Msg, Error> {
    use prost_reflect::{MapKey, ReflectMessage, Value};
    let desc = dm.descriptor();
    let mut msg = Msg::new(desc.clone());
    for (fd, value) in dm.fields() {
        let fpath = path.field(fd.name());
        let field = match value {
            Value::List(items) => Field::List(
                items
                    .iter()
                    .map(|v| dynamic_value(v, &fpath))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Map(entries) => {
                let mut out = BTreeMap::new();
                for (key, v) in entries {
                    let MapKey::String(key) = key else {
                        return Err(Error::wire(
                            path,
                            desc.full_name(),
                            WireError::UnsupportedMapKey {
                                field: fd.full_name().to_string(),
                            },
                        ));
                    };
                    out.insert(key.clone(), Some(dynamic_value(v, &fpath.key(key))?));
                }
                Field::Map(out)
            }
            v => Field::One(dynamic_value(v, &fpath)?),
        };
        msg.fields.insert(fd.number(), field);
    }
    Ok(msg)
}

fn dynamic_value(value: &prost_reflect::Value, path: &Path<'_>) -> Result<Val, Error> {
    use prost_reflect::Value;
    Ok(match value {
        Value::Bool(b) => Val::Bool(*b),
        Value::I32(x) => Val::I32(*x),
        Value::I64(x) => Val::I64(*x),
        Value::U32(x) => Val::U32(*x),
        Value::U64(x) => Val::U64(*x),
        Value::F32(x) => Val::F32(*x),
        Value::F64(x) => Val::F64(*x),
        Value::String(s) => Val::Str(s.clone()),
        Value::Bytes(b) => Val::Bytes(b.clone()),
        Value::EnumNumber(n) => Val::Enum(*n),
        Value::Message(m) => Val::Msg(from_dynamic(m, path)?),
        // Lists and maps only occur as whole field values, handled by the caller.
        Value::List(_) | Value::Map(_) => {
            return Err(Error::wire(
                path,
                "",
                WireError::Prost {
                    reason: "a list or map nested directly in a list or map".into(),
                },
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> &'static prost_reflect::DescriptorPool {
        ordo_proto::descriptor_pool()
    }

    fn parse_as(name: &str, hex_bytes: &[u8]) -> Result<Msg, Error> {
        let desc = pool().get_message_by_name(name).expect("type in pool");
        parse(&desc, &Bytes::copy_from_slice(hex_bytes), &Path::Root, 0)
    }

    #[test]
    fn varints_follow_go_limits() {
        let ten = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(Reader::new(&ten).varint(), Ok(u64::MAX));
        // A tenth byte above 1 would overflow 64 bits: Go reports it like a truncation.
        let too_big =
            Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
        assert_eq!(
            Reader::new(&too_big).varint(),
            Err(WireError::UnexpectedEof)
        );
        let cut = Bytes::from_static(&[0x80]);
        assert_eq!(Reader::new(&cut).varint(), Err(WireError::UnexpectedEof));
    }

    #[test]
    fn absent_and_empty_bytes_stay_distinct() {
        let empty = parse_as("common.Envelope", &[0x0a, 0x00]).unwrap();
        assert_eq!(empty.bytes("payload").map(|b| b.len()), Some(0));
        assert!(empty.bytes("signature").is_none());
    }

    #[test]
    fn map_entry_without_value_is_kept_as_none() {
        // ConfigGroup.values = { "k": <no value> }
        let m = parse_as("common.ConfigGroup", &[0x1a, 0x03, 0x0a, 0x01, b'k']).unwrap();
        match m.get("values") {
            Some(Field::Map(entries)) => assert!(matches!(entries.get("k"), Some(None))),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn field_zero_and_unskippable_wire_types_are_errors() {
        assert!(matches!(
            parse_as("common.Envelope", &[0x00, 0x00]),
            Err(Error::Wire {
                reason: WireError::IllegalTag0 { .. },
                ..
            })
        ));
        // Field 9 with wire type 4 (end group) cannot be skipped.
        assert!(matches!(
            parse_as("common.Envelope", &[0x4c]),
            Err(Error::Wire {
                reason: WireError::BadWireType { wire_type: 4 },
                ..
            })
        ));
    }

    #[test]
    fn wrong_wire_type_for_a_known_field_is_skipped_like_an_unknown_field() {
        // Envelope.payload (field 1) sent as a varint: ignored, the signature still parses.
        let m = parse_as("common.Envelope", &[0x08, 0x05, 0x12, 0x01, 0xaa]).unwrap();
        assert!(m.bytes("payload").is_none());
        assert_eq!(m.bytes("signature").map(|b| b.to_vec()), Some(vec![0xaa]));
    }

    #[test]
    fn repeated_singular_messages_merge() {
        // Block.header twice: number from the first, previous_hash from the second.
        let m = parse_as(
            "common.Block",
            &[0x0a, 0x02, 0x08, 0x07, 0x0a, 0x03, 0x12, 0x01, 0xab],
        )
        .unwrap();
        let header = m.message("header").unwrap();
        assert!(matches!(header.get_one("number"), Some(Val::U64(7))));
        assert!(header.bytes("previous_hash").is_some());
    }

    #[test]
    fn marshal_writes_map_keys_and_empty_message_values() {
        // Capabilities { capabilities: { "": {} } } -> 0a 04 0a 00 12 00
        let m = parse_as("common.Capabilities", &[0x0a, 0x04, 0x0a, 0x00, 0x12, 0x00]).unwrap();
        assert_eq!(marshal(&m), vec![0x0a, 0x04, 0x0a, 0x00, 0x12, 0x00]);
    }

    #[test]
    fn marshal_packs_repeated_scalars_and_sign_extends_negatives() {
        // consenter_ids [1, 300], once unpacked and once packed: both read the same and are
        // written packed.
        let unpacked = [0x08, 0x01, 0x08, 0xac, 0x02];
        let packed = [0x0a, 0x03, 0x01, 0xac, 0x02];
        for input in [&unpacked[..], &packed[..]] {
            let m = parse_as("etcdraft.BlockMetadata", input).unwrap();
            assert_eq!(marshal(&m), packed);
        }

        let desc = pool().get_message_by_name("common.ChannelHeader").unwrap();
        let mut m = Msg::new(desc.clone());
        let ty = desc.get_field_by_name("type").unwrap();
        m.set(&ty, Val::I32(-1));
        assert_eq!(
            marshal(&m),
            vec![
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]
        );
    }
}
