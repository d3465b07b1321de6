//! `common.ConfigGroup`, with its encoding written out instead of generated: prost leaves out a
//! map entry's value when it equals the default (an empty `ConfigValue`, `ConfigPolicy` or
//! `ConfigGroup`, as in the read set of a config update: `"Orderer": {}` at version 0), and Go's
//! protobuf decodes such an entry as a nil pointer, on which Fabric's orderer panics while it
//! maps the update ("Broadcast client triggered panic: ... nil pointer dereference" in
//! `configtx.recurseConfig`). Go writes every map entry with both its key and its value; so does
//! this, which also makes Ordo's bytes Fabric's. Decoding is prost's.

use std::collections::BTreeMap;

use prost::bytes::{Buf, BufMut};
use prost::encoding::{
    DecodeContext, WireType, btree_map, check_wire_type, encode_key, encode_varint,
    encoded_len_varint, key_len, message, skip_field, string, uint64,
};
use prost::{DecodeError, Message};

use crate::common::{ConfigPolicy, ConfigValue};

/// A node of the channel configuration tree (fields as in fabric-protos `common/configtx.proto`).
#[derive(Clone, PartialEq, Default, Debug)]
pub struct ConfigGroup {
    pub version: u64,
    pub groups: BTreeMap<String, ConfigGroup>,
    pub values: BTreeMap<String, ConfigValue>,
    pub policies: BTreeMap<String, ConfigPolicy>,
    pub mod_policy: String,
}

/// Length of a map entry's body: key (field 1) and value (field 2), both always written.
fn entry_len<V: Message>(key: &String, value: &V) -> usize {
    string::encoded_len(1, key) + message::encoded_len(2, value)
}

fn encode_map<V: Message>(tag: u32, map: &BTreeMap<String, V>, buf: &mut impl BufMut) {
    for (key, value) in map {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(entry_len(key, value) as u64, buf);
        string::encode(1, key, buf);
        message::encode(2, value, buf);
    }
}

fn map_len<V: Message>(tag: u32, map: &BTreeMap<String, V>) -> usize {
    map.iter()
        .map(|(key, value)| {
            let len = entry_len(key, value);
            key_len(tag) + encoded_len_varint(len as u64) + len
        })
        .sum()
}

fn merge_map<V: Message + Default>(
    wire_type: WireType,
    map: &mut BTreeMap<String, V>,
    buf: &mut impl Buf,
    ctx: DecodeContext,
) -> Result<(), DecodeError> {
    check_wire_type(WireType::LengthDelimited, wire_type)?;
    btree_map::merge(string::merge, message::merge, map, buf, ctx)
}

impl Message for ConfigGroup {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if self.version != 0 {
            uint64::encode(1, &self.version, buf);
        }
        encode_map(2, &self.groups, buf);
        encode_map(3, &self.values, buf);
        encode_map(4, &self.policies, buf);
        if !self.mod_policy.is_empty() {
            string::encode(5, &self.mod_policy, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => uint64::merge(wire_type, &mut self.version, buf, ctx),
            2 => merge_map(wire_type, &mut self.groups, buf, ctx),
            3 => merge_map(wire_type, &mut self.values, buf, ctx),
            4 => merge_map(wire_type, &mut self.policies, buf, ctx),
            5 => string::merge(wire_type, &mut self.mod_policy, buf, ctx),
            _ => skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        (if self.version != 0 {
            uint64::encoded_len(1, &self.version)
        } else {
            0
        }) + map_len(2, &self.groups)
            + map_len(3, &self.values)
            + map_len(4, &self.policies)
            + if self.mod_policy.is_empty() {
                0
            } else {
                string::encoded_len(5, &self.mod_policy)
            }
    }

    fn clear(&mut self) {
        *self = ConfigGroup::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty value and an empty group in the maps are written as Go writes them: the entry
    /// holds the key and an empty value field (`12 00`), never the key alone.
    #[test]
    fn empty_map_values_are_written_with_their_value_field() {
        let mut g = ConfigGroup::default();
        g.groups.insert("Orderer".into(), ConfigGroup::default());
        g.values.insert("BatchSize".into(), ConfigValue::default());
        let bytes = g.encode_to_vec();
        // groups entry: tag 2, len 11, key "Orderer" (0a 07 ...), value 12 00.
        let mut groups = vec![0x12, 11, 0x0a, 7];
        groups.extend_from_slice(b"Orderer");
        groups.extend_from_slice(&[0x12, 0x00]);
        assert!(bytes.starts_with(&groups), "{bytes:02x?}");
        let mut values = vec![0x1a, 13, 0x0a, 9];
        values.extend_from_slice(b"BatchSize");
        values.extend_from_slice(&[0x12, 0x00]);
        assert_eq!(&bytes[groups.len()..], &values[..]);
        assert_eq!(bytes.len(), g.encoded_len());
        assert_eq!(ConfigGroup::decode(&bytes[..]).unwrap(), g);
    }

    #[test]
    fn a_full_group_round_trips() {
        let mut inner = ConfigGroup {
            version: 3,
            mod_policy: "Admins".into(),
            ..Default::default()
        };
        inner.values.insert(
            "ConsensusType".into(),
            ConfigValue {
                version: 2,
                value: prost::bytes::Bytes::from_static(b"\x0a\x08etcdraft"),
                mod_policy: "Admins".into(),
            },
        );
        inner
            .policies
            .insert("Readers".into(), ConfigPolicy::default());
        let mut g = ConfigGroup {
            version: 1,
            ..Default::default()
        };
        g.groups.insert("Orderer".into(), inner);
        let bytes = g.encode_to_vec();
        assert_eq!(bytes.len(), g.encoded_len());
        assert_eq!(ConfigGroup::decode(&bytes[..]).unwrap(), g);
        // Unknown fields are skipped.
        let mut with_unknown = bytes.clone();
        with_unknown.extend_from_slice(&[0x30, 0x01]);
        assert_eq!(ConfigGroup::decode(&with_unknown[..]).unwrap(), g);
    }
}
