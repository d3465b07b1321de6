//! Where the orderers go: a placement such as `2/1/2` (orderers per zone, in zone order) over
//! named zones, and what it means for quorum when one zone is lost.

use super::names::is_label_value;

/// The most orderers one zone may hold: far more than a Raft group should have, low enough
/// that a typo such as `20/1/2` is caught rather than turned into twenty StatefulSets.
pub const MAX_PER_ZONE: u32 = 15;

/// Why a placement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("placement is empty: give the number of orderers per zone, e.g. 2/1/2")]
    Empty,
    #[error(
        "placement {placement:?}: {part:?} is not a number of orderers for a zone (a whole number from 1 to {MAX_PER_ZONE}, zones separated by '/', e.g. 2/1/2)"
    )]
    NotACount { placement: String, part: String },
    #[error(
        "placement {placement:?} names {zones} zone(s) but {names} zone name(s) were given ({given}); give one name per zone with --zones"
    )]
    ZoneCountMismatch {
        placement: String,
        zones: usize,
        names: usize,
        given: String,
    },
    #[error(
        "zone name {0:?} is not a Kubernetes label value (at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
    )]
    BadZoneName(String),
    #[error("zone {0:?} is named twice in --zones")]
    DuplicateZone(String),
}

/// One zone and how many orderers it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// The value of the nodes' `topology.kubernetes.io/zone` label.
    pub name: String,
    pub orderers: u32,
}

/// The orderers per zone, in the order the placement string gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    zones: Vec<Zone>,
}

impl Placement {
    /// Parses `counts` (`2/1/2`) against `zone_names` (one per count, in the same order).
    pub fn parse(counts: &str, zone_names: &[String]) -> Result<Placement, PlacementError> {
        let trimmed = counts.trim();
        if trimmed.is_empty() {
            return Err(PlacementError::Empty);
        }
        let mut per_zone = Vec::new();
        for part in trimmed.split('/') {
            let n = part
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_PER_ZONE).contains(n))
                .ok_or_else(|| PlacementError::NotACount {
                    placement: counts.to_string(),
                    part: part.to_string(),
                })?;
            per_zone.push(n);
        }
        if per_zone.len() != zone_names.len() {
            return Err(PlacementError::ZoneCountMismatch {
                placement: counts.to_string(),
                zones: per_zone.len(),
                names: zone_names.len(),
                given: zone_names.join(","),
            });
        }
        let mut zones: Vec<Zone> = Vec::with_capacity(per_zone.len());
        for (name, orderers) in zone_names.iter().zip(per_zone) {
            if !is_label_value(name) {
                return Err(PlacementError::BadZoneName(name.clone()));
            }
            if zones.iter().any(|z| &z.name == name) {
                return Err(PlacementError::DuplicateZone(name.clone()));
            }
            zones.push(Zone {
                name: name.clone(),
                orderers,
            });
        }
        Ok(Placement { zones })
    }

    /// All orderers of the placement.
    pub fn total(&self) -> u32 {
        self.zones.iter().map(|z| z.orderers).sum()
    }

    /// The zone of each orderer in turn: the first zone's orderers first (`2/1/2` over a, b, c
    /// gives a, a, b, c, c).
    pub fn zone_of_each(&self) -> Vec<&str> {
        self.zones
            .iter()
            .flat_map(|z| std::iter::repeat_n(z.name.as_str(), z.orderers as usize))
            .collect()
    }

    /// Raft's quorum for this many consenters.
    pub fn quorum(&self) -> u32 {
        self.total() / 2 + 1
    }

    /// The zones whose loss leaves fewer than a quorum of consenters (a channel on all the
    /// orderers then stops ordering until the zone is back). Empty for 2/1/2; `3/1/1` loses
    /// its quorum with its first zone.
    pub fn zones_holding_quorum(&self) -> Vec<&str> {
        let (total, quorum) = (self.total(), self.quorum());
        self.zones
            .iter()
            .filter(|z| total - z.orderers < quorum)
            .map(|z| z.name.as_str())
            .collect()
    }

    /// The largest difference between two zones' orderer counts: the least skew a zone spread
    /// constraint can allow for this placement to be schedulable at all.
    pub fn skew(&self) -> u32 {
        let max = self.zones.iter().map(|z| z.orderers).max().unwrap_or(0);
        let min = self.zones.iter().map(|z| z.orderers).min().unwrap_or(0);
        max - min
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn two_one_two_spreads_five_orderers_and_survives_any_zone() {
        let p = Placement::parse("2/1/2", &zones(&["zone-a", "zone-b", "zone-c"])).unwrap();
        assert_eq!(p.total(), 5);
        assert_eq!(p.quorum(), 3);
        assert_eq!(
            p.zone_of_each(),
            ["zone-a", "zone-a", "zone-b", "zone-c", "zone-c"]
        );
        assert!(p.zones_holding_quorum().is_empty());
        assert_eq!(p.skew(), 1);
    }

    #[test]
    fn three_one_one_is_accepted_but_its_first_zone_holds_the_quorum() {
        let p = Placement::parse("3/1/1", &zones(&["a", "b", "c"])).unwrap();
        assert_eq!(p.zone_of_each(), ["a", "a", "a", "b", "c"]);
        assert_eq!(p.zones_holding_quorum(), ["a"]);
        assert_eq!(p.skew(), 2);
    }

    #[test]
    fn bad_placements_are_refused_with_the_reason() {
        let abc = zones(&["a", "b", "c"]);
        assert_eq!(Placement::parse(" ", &abc), Err(PlacementError::Empty));
        for (bad, part) in [
            ("2/x/2", "x"),
            ("2//2", ""),
            ("2/0/2", "0"),
            ("2/-1/2", "-1"),
            ("2/16/2", "16"),
            ("2,1,2", "2,1,2"),
        ] {
            assert_eq!(
                Placement::parse(bad, &abc),
                Err(PlacementError::NotACount {
                    placement: bad.to_string(),
                    part: part.to_string()
                }),
                "{bad}"
            );
        }
        assert!(matches!(
            Placement::parse("2/1/1/1", &abc),
            Err(PlacementError::ZoneCountMismatch {
                zones: 4,
                names: 3,
                ..
            })
        ));
        assert_eq!(
            Placement::parse("1/1", &zones(&["a", "a"])),
            Err(PlacementError::DuplicateZone("a".into()))
        );
        assert_eq!(
            Placement::parse("1/1", &zones(&["a", "b c"])),
            Err(PlacementError::BadZoneName("b c".into()))
        );
        let msg = Placement::parse("2/x/2", &abc).unwrap_err().to_string();
        assert!(msg.contains("\"x\" is not a number of orderers"), "{msg}");
    }
}
