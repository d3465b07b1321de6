//! The crate's error type, and [`Path`], which says where in the message tree something went wrong.

use std::fmt;

/// Everything that can go wrong while translating. Each variant names the place in the message
/// tree (`path`, e.g. `payload.data.actions[0].payload`) where the problem was found, and the
/// reason. Where Fabric's configtxlator has a specific message for the same problem (an unknown
/// config value name, an unknown policy type, …) the reason uses Fabric's wording, so errors can be
/// compared with what Fabric says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The named message type is not one Ordo knows (e.g. a typo in `--type`).
    #[error("unknown message type {type_name:?} (at {path})")]
    UnknownType { type_name: String, path: String },

    /// Bytes that should hold a message of `type_name` are not a valid protobuf encoding of it.
    #[error("{path}: bytes are not a valid {type_name}: {reason}")]
    Wire {
        path: String,
        type_name: String,
        reason: WireError,
    },

    /// The bytes are valid, but configtxlator has no rule to show them, so it refuses the whole
    /// message (an unknown config group or value name, a policy or MSP type it cannot decode, a
    /// payload type it does not implement, …).
    #[error("{path}: {reason}")]
    NoRule { path: String, reason: String },

    /// The JSON does not have the shape the message type needs (unknown key, wrong JSON type,
    /// bad base64, a number out of range, an unknown enum name, …).
    #[error("{path}: {reason}")]
    Json { path: String, reason: String },

    /// The top-level message does not print as a JSON object (only `google.protobuf.Timestamp`
    /// does that); configtxlator refuses such types too.
    #[error("{type_name} does not translate to a JSON object")]
    NotAnObject { type_name: String },

    /// Messages nested deeper than [`MAX_DEPTH`], refused so that hostile input cannot exhaust
    /// the stack.
    #[error("{path}: messages nested deeper than {MAX_DEPTH} levels")]
    TooDeep { path: String },

    /// `compute_update`: a config without a channel group (`which` is "original" or "updated").
    #[error("no channel group included for {which} config")]
    NoChannelGroup { which: &'static str },

    /// `compute_update`: the two configs are the same as far as a config update can tell.
    #[error("no differences detected between original and updated config")]
    NoDifferences,
}

/// How bytes failed to parse as protobuf. The wording follows golang/protobuf where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A varint, a length or a fixed-width value runs past the end of the bytes, or a varint is
    /// longer than ten bytes.
    #[error("unexpected EOF")]
    UnexpectedEof,
    /// Field number 0 never occurs in a valid message (it also catches runs of zero bytes).
    #[error("illegal tag 0 (wire type {wire_type})")]
    IllegalTag0 { wire_type: u8 },
    /// Wire types 4 (end group), 6 and 7 cannot be skipped.
    #[error("can't skip unknown wire type {wire_type}")]
    BadWireType { wire_type: u8 },
    /// A map field whose entry is not length-delimited.
    #[error("bad wiretype for map field {field}: got {wire_type} want 2")]
    BadMapWireType { field: String, wire_type: u8 },
    /// A proto3 `string` that is not UTF-8.
    #[error("field {field:?} contains invalid UTF-8")]
    InvalidUtf8 { field: String },
    /// Bytes prost wrote for [`crate::marshal`] do not read back as the named type, which means
    /// the type name does not match the message.
    #[error("{reason}")]
    Prost { reason: String },
    /// A map whose key type is not `string` (no Fabric message has one).
    #[error("map field {field} has a non-string key type, which is not supported")]
    UnsupportedMapKey { field: String },
}

/// The deepest nesting of messages accepted, counting every message level (opaque bytes included).
/// Fabric's deepest real messages (a config block) are about twenty levels deep.
pub const MAX_DEPTH: usize = 100;

/// A position in the message tree, built on the stack while walking it and only turned into text
/// when an error is reported. `Root` prints as `<top>`; fields join with `.`, list indices print
/// as `[3]` and map keys as `["Orderer"]`.
#[derive(Clone, Copy)]
pub(crate) enum Path<'a> {
    Root,
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
    Key(&'a Path<'a>, &'a str),
}

impl<'a> Path<'a> {
    pub(crate) fn field(&'a self, name: &'a str) -> Path<'a> {
        Path::Field(self, name)
    }
    pub(crate) fn index(&'a self, i: usize) -> Path<'a> {
        Path::Index(self, i)
    }
    pub(crate) fn key(&'a self, key: &'a str) -> Path<'a> {
        Path::Key(self, key)
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Field(parent, name) => {
                parent.write(f)?;
                if !matches!(parent, Path::Root) {
                    f.write_str(".")?;
                }
                f.write_str(name)
            }
            Path::Index(parent, i) => {
                parent.write(f)?;
                write!(f, "[{i}]")
            }
            Path::Key(parent, key) => {
                parent.write(f)?;
                write!(f, "[{key:?}]")
            }
        }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if matches!(self, Path::Root) {
            return f.write_str("<top>");
        }
        self.write(f)
    }
}

impl Error {
    pub(crate) fn no_rule(path: &Path<'_>, reason: impl Into<String>) -> Error {
        Error::NoRule {
            path: path.to_string(),
            reason: reason.into(),
        }
    }
    pub(crate) fn json(path: &Path<'_>, reason: impl Into<String>) -> Error {
        Error::Json {
            path: path.to_string(),
            reason: reason.into(),
        }
    }
    pub(crate) fn unknown_type(path: &Path<'_>, type_name: &str) -> Error {
        Error::UnknownType {
            type_name: type_name.to_string(),
            path: path.to_string(),
        }
    }
    pub(crate) fn wire(path: &Path<'_>, type_name: &str, reason: WireError) -> Error {
        Error::Wire {
            path: path.to_string(),
            type_name: type_name.to_string(),
            reason,
        }
    }
    pub(crate) fn too_deep(path: &Path<'_>) -> Error {
        Error::TooDeep {
            path: path.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_print_like_a_field_access_chain() {
        let root = Path::Root;
        assert_eq!(root.to_string(), "<top>");
        let a = root.field("channel_group");
        let b = a.field("groups");
        let c = b.key("Orderer");
        let d = c.field("values");
        let e = d.index(2);
        assert_eq!(
            e.to_string(),
            r#"channel_group.groups["Orderer"].values[2]"#
        );
    }
}
