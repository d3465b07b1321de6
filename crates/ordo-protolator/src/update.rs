//! `configtxlator compute_update`: the smallest `ConfigUpdate` that turns one config into another
//! (Fabric's `internal/configtxlator/update`).
//!
//! The read set lists, by version, what the update depends on; the write set what it changes,
//! each changed element at its version + 1. `Config.sequence` and the versions in the updated
//! config are ignored: only membership, `mod_policy` and content count.

use std::collections::BTreeMap;

use ordo_proto::common::{Config, ConfigGroup, ConfigPolicy, ConfigUpdate, ConfigValue};

use crate::error::Error;

/// Computes the config update from `original` to `updated` for channel `channel_id`.
///
/// Fails with [`Error::NoChannelGroup`] if either config has no channel group, and with
/// [`Error::NoDifferences`] if nothing changed.
pub fn compute_update(
    channel_id: &str,
    original: &Config,
    updated: &Config,
) -> Result<ConfigUpdate, Error> {
    let original = original
        .channel_group
        .as_ref()
        .ok_or(Error::NoChannelGroup { which: "original" })?;
    let updated = updated
        .channel_group
        .as_ref()
        .ok_or(Error::NoChannelGroup { which: "updated" })?;
    let diff = group(original, updated);
    if !diff.changed {
        return Err(Error::NoDifferences);
    }
    Ok(ConfigUpdate {
        channel_id: channel_id.to_string(),
        read_set: Some(diff.read),
        write_set: Some(diff.write),
        isolated_data: BTreeMap::new(),
    })
}

/// The read and write sets for one group, and whether anything in it changed.
struct GroupDiff {
    read: ConfigGroup,
    write: ConfigGroup,
    changed: bool,
}

/// The result of comparing one of a group's three maps.
struct MapDiff<T> {
    read: BTreeMap<String, T>,
    write: BTreeMap<String, T>,
    /// Entries present and unchanged on both sides, reduced to their version.
    same: BTreeMap<String, T>,
    /// An entry was added or removed.
    membership_changed: bool,
}

impl<T> MapDiff<T> {
    fn new() -> Self {
        MapDiff {
            read: BTreeMap::new(),
            write: BTreeMap::new(),
            same: BTreeMap::new(),
            membership_changed: false,
        }
    }
}

/// What `compute_update` needs of a value or a policy: its version, whether two of them hold the
/// same thing (compared as stored, bytes for values, never decoded), and copies with a new version
/// or with nothing but a version (for read sets).
trait Leaf: Default + Clone {
    fn version(&self) -> u64;
    fn same_as(&self, other: &Self) -> bool;
    fn at_version(&self, version: u64) -> Self;
    fn version_only(version: u64) -> Self;
}

impl Leaf for ConfigValue {
    fn version(&self) -> u64 {
        self.version
    }
    fn same_as(&self, other: &Self) -> bool {
        // The same content with map entries in another order counts as a change (see the note
        // on encoding both configs alike).
        self.mod_policy == other.mod_policy && self.value == other.value
    }
    fn at_version(&self, version: u64) -> Self {
        ConfigValue {
            version,
            ..self.clone()
        }
    }
    fn version_only(version: u64) -> Self {
        ConfigValue {
            version,
            ..ConfigValue::default()
        }
    }
}

impl Leaf for ConfigPolicy {
    fn version(&self) -> u64 {
        self.version
    }
    fn same_as(&self, other: &Self) -> bool {
        self.mod_policy == other.mod_policy && self.policy == other.policy
    }
    fn at_version(&self, version: u64) -> Self {
        ConfigPolicy {
            version,
            ..self.clone()
        }
    }
    fn version_only(version: u64) -> Self {
        ConfigPolicy {
            version,
            ..ConfigPolicy::default()
        }
    }
}

/// Diffs the values (or the policies) of a group. A leaf is never put into the read set directly:
/// a changed leaf is guarded by the version of its group instead.
fn leaves<T: Leaf>(original: &BTreeMap<String, T>, updated: &BTreeMap<String, T>) -> MapDiff<T> {
    let mut diff = MapDiff::new();
    for (name, orig) in original {
        let Some(upd) = updated.get(name) else {
            diff.membership_changed = true;
            continue;
        };
        if orig.same_as(upd) {
            diff.same
                .insert(name.clone(), T::version_only(orig.version()));
        } else {
            diff.write
                .insert(name.clone(), upd.at_version(orig.version().wrapping_add(1)));
        }
    }
    for (name, upd) in updated {
        if !original.contains_key(name) {
            diff.membership_changed = true;
            diff.write.insert(name.clone(), upd.at_version(0));
        }
    }
    diff
}

fn groups(
    original: &BTreeMap<String, ConfigGroup>,
    updated: &BTreeMap<String, ConfigGroup>,
) -> MapDiff<ConfigGroup> {
    let mut diff = MapDiff::new();
    for (name, orig) in original {
        let Some(upd) = updated.get(name) else {
            diff.membership_changed = true;
            continue;
        };
        let sub = group(orig, upd);
        if sub.changed {
            diff.read.insert(name.clone(), sub.read);
            diff.write.insert(name.clone(), sub.write);
        } else {
            diff.same.insert(name.clone(), sub.read);
        }
    }
    for (name, upd) in updated {
        if !original.contains_key(name) {
            diff.membership_changed = true;
            // A new group: everything inside it is new too, at version 0.
            let sub = group(&ConfigGroup::default(), upd);
            diff.write.insert(
                name.clone(),
                ConfigGroup {
                    version: 0,
                    groups: sub.write.groups,
                    values: sub.write.values,
                    policies: sub.write.policies,
                    mod_policy: upd.mod_policy.clone(),
                },
            );
        }
    }
    diff
}

fn group(original: &ConfigGroup, updated: &ConfigGroup) -> GroupDiff {
    let mut p = leaves(&original.policies, &updated.policies);
    let mut v = leaves(&original.values, &updated.values);
    let mut g = groups(&original.groups, &updated.groups);

    let membership_or_mod_policy_changed = p.membership_changed
        || v.membership_changed
        || g.membership_changed
        || original.mod_policy != updated.mod_policy;

    if !membership_or_mod_policy_changed {
        let nothing_inside = p.read.is_empty()
            && p.write.is_empty()
            && v.read.is_empty()
            && v.write.is_empty()
            && g.read.is_empty()
            && g.write.is_empty();
        if nothing_inside {
            return GroupDiff {
                read: version_only_group(original.version),
                write: version_only_group(original.version),
                changed: false,
            };
        }
        // Only children changed: this group keeps its version, and lists only what changed
        // below it (the unchanged entries are left out of both sets).
        return GroupDiff {
            read: ConfigGroup {
                version: original.version,
                groups: g.read,
                values: v.read,
                policies: p.read,
                mod_policy: String::new(),
            },
            write: ConfigGroup {
                version: original.version,
                groups: g.write,
                values: v.write,
                policies: p.write,
                mod_policy: String::new(),
            },
            changed: true,
        };
    }

    // This group itself changes: its write set replaces the whole group, so it must name every
    // element it keeps (at their current versions), in both sets.
    for (name, same) in std::mem::take(&mut p.same) {
        p.read.insert(name.clone(), same.clone());
        p.write.insert(name, same);
    }
    for (name, same) in std::mem::take(&mut v.same) {
        v.read.insert(name.clone(), same.clone());
        v.write.insert(name, same);
    }
    for (name, same) in std::mem::take(&mut g.same) {
        g.read.insert(name.clone(), same.clone());
        g.write.insert(name, same);
    }
    GroupDiff {
        read: ConfigGroup {
            version: original.version,
            groups: g.read,
            values: v.read,
            policies: p.read,
            mod_policy: String::new(),
        },
        write: ConfigGroup {
            version: original.version.wrapping_add(1),
            groups: g.write,
            values: v.write,
            policies: p.write,
            mod_policy: updated.mod_policy.clone(),
        },
        changed: true,
    }
}

fn version_only_group(version: u64) -> ConfigGroup {
    ConfigGroup {
        version,
        ..ConfigGroup::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ordo_proto::common::Policy;

    fn value(version: u64, content: &'static [u8]) -> ConfigValue {
        ConfigValue {
            version,
            value: Bytes::from_static(content),
            mod_policy: "Admins".into(),
        }
    }

    fn policy(version: u64, kind: i32) -> ConfigPolicy {
        ConfigPolicy {
            version,
            policy: Some(Policy {
                r#type: kind,
                value: Bytes::from_static(b"p"),
            }),
            mod_policy: "Admins".into(),
        }
    }

    /// Channel { Orderer (v2) { values A (v3), B (v1); policies P (v4) }, Application (v5) }
    fn base() -> Config {
        let orderer = ConfigGroup {
            version: 2,
            values: [("A".into(), value(3, b"a")), ("B".into(), value(1, b"b"))].into(),
            policies: [("P".into(), policy(4, 1))].into(),
            mod_policy: "Admins".into(),
            ..Default::default()
        };
        let application = ConfigGroup {
            version: 5,
            mod_policy: "Admins".into(),
            ..Default::default()
        };
        Config {
            sequence: 7,
            channel_group: Some(ConfigGroup {
                version: 1,
                groups: [
                    ("Orderer".into(), orderer),
                    ("Application".into(), application),
                ]
                .into(),
                mod_policy: "Admins".into(),
                ..Default::default()
            }),
        }
    }

    fn orderer(config: &mut Config) -> &mut ConfigGroup {
        config
            .channel_group
            .as_mut()
            .and_then(|g| g.groups.get_mut("Orderer"))
            .expect("orderer group")
    }

    fn version_only(version: u64) -> ConfigGroup {
        version_only_group(version)
    }

    #[test]
    fn a_changed_value_is_written_at_the_next_version_under_version_only_parents() {
        let original = base();
        let mut updated = base();
        orderer(&mut updated)
            .values
            .insert("A".into(), value(0, b"a2"));
        let update = compute_update("ch", &original, &updated).unwrap();

        let read = update.read_set.unwrap();
        assert_eq!(read.version, 1);
        assert_eq!(read.groups.len(), 1, "unchanged Application is not listed");
        assert_eq!(read.groups["Orderer"], version_only(2));

        let write = update.write_set.unwrap();
        assert_eq!(write.version, 1);
        assert_eq!(write.mod_policy, "");
        let orderer = &write.groups["Orderer"];
        assert_eq!(orderer.version, 2);
        assert_eq!(orderer.values.len(), 1);
        // The version in the updated config is ignored: it is always original + 1.
        assert_eq!(orderer.values["A"], value(4, b"a2"));
        assert!(orderer.policies.is_empty());
    }

    #[test]
    fn a_changed_policy_appears_only_in_the_write_set() {
        let original = base();
        let mut updated = base();
        orderer(&mut updated)
            .policies
            .insert("P".into(), policy(0, 3));
        let update = compute_update("ch", &original, &updated).unwrap();
        assert_eq!(update.read_set.unwrap().groups["Orderer"], version_only(2));
        let written = &update.write_set.unwrap().groups["Orderer"].policies["P"];
        assert_eq!(written, &policy(5, 3));
    }

    #[test]
    fn a_removed_value_rewrites_its_group_listing_everything_kept() {
        let original = base();
        let mut updated = base();
        orderer(&mut updated).values.remove("B");
        let update = compute_update("ch", &original, &updated).unwrap();

        let expected_kept = ConfigGroup {
            version: 2,
            values: [(
                "A".into(),
                ConfigValue {
                    version: 3,
                    ..Default::default()
                },
            )]
            .into(),
            policies: [(
                "P".into(),
                ConfigPolicy {
                    version: 4,
                    ..Default::default()
                },
            )]
            .into(),
            ..Default::default()
        };
        assert_eq!(update.read_set.unwrap().groups["Orderer"], expected_kept);
        let write = &update.write_set.unwrap().groups["Orderer"];
        assert_eq!(
            write,
            &ConfigGroup {
                version: 3,
                mod_policy: "Admins".into(),
                ..expected_kept
            }
        );
    }

    #[test]
    fn a_changed_mod_policy_counts_as_a_change_of_the_group() {
        let original = base();
        let mut updated = base();
        orderer(&mut updated).mod_policy = "Writers".into();
        let update = compute_update("ch", &original, &updated).unwrap();
        let write = &update.write_set.unwrap().groups["Orderer"];
        assert_eq!(write.version, 3);
        assert_eq!(write.mod_policy, "Writers");
        assert_eq!(write.values.keys().collect::<Vec<_>>(), ["A", "B"]);
        assert_eq!(
            write.values["B"],
            ConfigValue {
                version: 1,
                ..Default::default()
            }
        );
    }

    #[test]
    fn a_new_group_is_written_whole_at_version_zero() {
        let original = base();
        let mut updated = base();
        let org = ConfigGroup {
            version: 9,
            values: [("MSP".into(), value(6, b"msp"))].into(),
            policies: [("Readers".into(), policy(8, 3))].into(),
            mod_policy: "Admins".into(),
            ..Default::default()
        };
        updated
            .channel_group
            .as_mut()
            .unwrap()
            .groups
            .get_mut("Application")
            .unwrap()
            .groups
            .insert("Org1".into(), org);
        let update = compute_update("ch", &original, &updated).unwrap();

        let read = update.read_set.unwrap();
        assert_eq!(read.groups["Application"], version_only(5));
        let app = &update.write_set.unwrap().groups["Application"];
        assert_eq!(
            app.version, 6,
            "membership changed: the Application group moves on"
        );
        let org = &app.groups["Org1"];
        assert_eq!(org.version, 0);
        assert_eq!(org.values["MSP"], value(0, b"msp"));
        assert_eq!(org.policies["Readers"], policy(0, 3));
    }

    #[test]
    fn versions_and_sequence_alone_are_no_change() {
        let original = base();
        let mut updated = base();
        updated.sequence = 100;
        orderer(&mut updated).version = 50;
        orderer(&mut updated).values.get_mut("A").unwrap().version = 60;
        assert_eq!(
            compute_update("ch", &original, &updated),
            Err(Error::NoDifferences)
        );
    }

    #[test]
    fn versions_wrap_instead_of_overflowing() {
        let mut original = base();
        orderer(&mut original).values.get_mut("A").unwrap().version = u64::MAX;
        let mut updated = original.clone();
        orderer(&mut updated).values.get_mut("A").unwrap().value = Bytes::from_static(b"z");
        let update = compute_update("ch", &original, &updated).unwrap();
        assert_eq!(
            update.write_set.unwrap().groups["Orderer"].values["A"].version,
            0
        );
    }
}
