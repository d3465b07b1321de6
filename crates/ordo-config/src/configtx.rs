//! Config updates, as Fabric's configtx validator applies them (`common/configtx/validator.go`,
//! `update.go`, `configmap.go`, `compare.go`).
//!
//! A config is flattened into a map keyed `[Group]  /Channel/Orderer`, `[Value]  /Channel/...`,
//! `[Policy] /Channel/...`. An update's read set must match the current versions exactly; its
//! write set minus the read set (same versions) is the *delta*; every delta element needs a valid
//! mod_policy, version 0 if new or current + 1 if existing, and existing elements need their
//! current mod_policy satisfied by the update's signatures. The new config is the current map
//! overlaid with the delta, rebuilt from the root, where each group keeps exactly the children its
//! (possibly new) proto lists — that is how elements are deleted.

use std::collections::BTreeMap;

use bytes::Bytes;
use ordo_proto::common::{
    Config, ConfigEnvelope, ConfigGroup, ConfigPolicy, ConfigUpdate, ConfigUpdateEnvelope,
    ConfigValue, Envelope, HeaderType, Payload, SignatureHeader,
};
use prost::Message;

use crate::policy::{PolicyManager, SignedData};
use crate::{ChannelConfig, ConfigError};

const GROUP_PREFIX: &str = "[Group]  ";
const VALUE_PREFIX: &str = "[Value]  ";
const POLICY_PREFIX: &str = "[Policy] ";
/// Where the "hackyFix" looks: with orderer capabilities present, empty mod_policies become
/// `Admins` when a config is rebuilt (channels made by Fabric v1.0 had empty ones).
const HACKY_FIX_KEY: &str = "[Value]  /Channel/Orderer/Capabilities";
const HACKY_FIX_MOD_POLICY: &str = "Admins";
const MAX_NAME_LEN: usize = 249;

fn update_err(m: impl Into<String>) -> ConfigError {
    ConfigError::Update(m.into())
}

/// Why a channel ID is not legal (Fabric's words).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadChannelId {
    #[error("channel ID illegal, cannot be empty")]
    Empty,
    #[error("channel ID illegal, cannot be longer than {MAX_NAME_LEN}")]
    TooLong,
    #[error("'{0}' contains illegal characters")]
    IllegalCharacters(String),
}

/// Fabric's `ValidateChannelID`: `[a-z][a-z0-9.-]*`, at most 249 bytes.
pub fn validate_channel_id(id: &str) -> Result<(), BadChannelId> {
    if id.is_empty() {
        return Err(BadChannelId::Empty);
    }
    if id.len() > MAX_NAME_LEN {
        return Err(BadChannelId::TooLong);
    }
    let mut bytes = id.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
    if !first_ok
        || !bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return Err(BadChannelId::IllegalCharacters(id.to_string()));
    }
    Ok(())
}

/// Fabric's `validateConfigID`: `[a-zA-Z0-9.-]+`, at most 249 bytes, not `.` or `..`.
pub(crate) fn validate_config_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("config ID illegal, cannot be empty".to_string());
    }
    if id.len() > MAX_NAME_LEN {
        return Err(format!(
            "config ID illegal, cannot be longer than {MAX_NAME_LEN}"
        ));
    }
    if id == "." || id == ".." {
        return Err(format!("name '{id}' for config ID is not allowed"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return Err(format!("config ID '{id}' contains illegal characters"));
    }
    Ok(())
}

/// One element of a flattened config.
#[derive(Debug, Clone, PartialEq)]
enum Element {
    Group(ConfigGroup),
    Value(ConfigValue),
    Policy(ConfigPolicy),
}

#[derive(Debug, Clone, PartialEq)]
struct Item {
    /// The element's own name (the last path component).
    key: String,
    /// The path of its parent (`["Channel", "Orderer"]`); empty for the root group.
    path: Vec<String>,
    element: Element,
}

impl Item {
    fn version(&self) -> u64 {
        match &self.element {
            Element::Group(g) => g.version,
            Element::Value(v) => v.version,
            Element::Policy(p) => p.version,
        }
    }

    fn mod_policy(&self) -> &str {
        match &self.element {
            Element::Group(g) => &g.mod_policy,
            Element::Value(v) => &v.mod_policy,
            Element::Policy(p) => &p.mod_policy,
        }
    }
}

/// A config group flattened into `[Kind] /path` → element.
#[derive(Debug, Clone, Default)]
pub struct ConfigMap(BTreeMap<String, Item>);

impl ConfigMap {
    /// Flattens the tree under `root` (named `Channel`), checking every name.
    pub fn new(root: &ConfigGroup) -> Result<Self, ConfigError> {
        let mut map = ConfigMap::default();
        map.add_group(Vec::new(), "Channel", root)?;
        Ok(map)
    }

    fn insert(
        &mut self,
        prefix: &str,
        path: &[String],
        key: &str,
        element: Element,
    ) -> Result<(), ConfigError> {
        // Fabric's message names only the prefix here (a formatting slip we keep, since tools and
        // operators see exactly this text).
        validate_config_id(key).map_err(|e| {
            ConfigError::Invalid(format!("illegal characters in key: {prefix}: {e}"))
        })?;
        let mut full = String::from(prefix);
        for p in path {
            full.push('/');
            full.push_str(p);
        }
        full.push('/');
        full.push_str(key);
        self.0.insert(
            full,
            Item {
                key: key.to_string(),
                path: path.to_vec(),
                element,
            },
        );
        Ok(())
    }

    fn add_group(
        &mut self,
        path: Vec<String>,
        key: &str,
        group: &ConfigGroup,
    ) -> Result<(), ConfigError> {
        self.insert(GROUP_PREFIX, &path, key, Element::Group(group.clone()))?;
        let mut child_path = path;
        child_path.push(key.to_string());
        for (k, g) in &group.groups {
            self.add_group(child_path.clone(), k, g)?;
        }
        for (k, v) in &group.values {
            self.insert(VALUE_PREFIX, &child_path, k, Element::Value(v.clone()))?;
        }
        for (k, p) in &group.policies {
            self.insert(POLICY_PREFIX, &child_path, k, Element::Policy(p.clone()))?;
        }
        Ok(())
    }

    /// Rebuilds the tree from `[Group]  /Channel` (`configMapToConfig`).
    fn to_group(&self) -> Result<ConfigGroup, ConfigError> {
        self.rebuild("/Channel").map_err(|e| {
            update_err(format!(
                "could not turn configMap back to channelGroup: {e}"
            ))
        })
    }

    fn rebuild(&self, path: &str) -> Result<ConfigGroup, String> {
        let group_path = format!("{GROUP_PREFIX}{path}");
        let Some(item) = self.0.get(&group_path) else {
            return Err(format!("missing group at path: {group_path}"));
        };
        let Element::Group(g) = &item.element else {
            return Err(format!("ConfigGroup not found at group path: {group_path}"));
        };
        let mut out = g.clone();
        for key in g.groups.keys() {
            out.groups
                .insert(key.clone(), self.rebuild(&format!("{path}/{key}"))?);
        }
        for key in g.values.keys() {
            let p = format!("{VALUE_PREFIX}{path}/{key}");
            match self.0.get(&p).map(|i| &i.element) {
                None => return Err(format!("missing value at path: {p}")),
                Some(Element::Value(v)) => {
                    out.values.insert(key.clone(), v.clone());
                }
                Some(_) => return Err(format!("ConfigValue not found at value path: {p}")),
            }
        }
        for key in g.policies.keys() {
            let p = format!("{POLICY_PREFIX}{path}/{key}");
            match self.0.get(&p).map(|i| &i.element) {
                None => return Err(format!("missing policy at path: {p}")),
                Some(Element::Policy(v)) => {
                    out.policies.insert(key.clone(), v.clone());
                }
                Some(_) => return Err(format!("ConfigPolicy not found at policy path: {p}")),
            }
        }
        if self.0.contains_key(HACKY_FIX_KEY) {
            let fix = |m: &mut String| {
                if m.is_empty() {
                    *m = HACKY_FIX_MOD_POLICY.to_string();
                }
            };
            fix(&mut out.mod_policy);
            out.values.values_mut().for_each(|v| fix(&mut v.mod_policy));
            out.policies
                .values_mut()
                .for_each(|p| fix(&mut p.mod_policy));
        }
        Ok(out)
    }
}

/// Fabric's `validateModPolicy`.
fn validate_mod_policy(mod_policy: &str) -> Result<(), String> {
    if mod_policy.is_empty() {
        return Err("mod_policy not set".to_string());
    }
    let trimmed = mod_policy.strip_prefix('/').unwrap_or(mod_policy);
    for (i, elem) in trimmed.split('/').enumerate() {
        validate_config_id(elem).map_err(|e| format!("path element at {i} is invalid: {e}"))?;
    }
    Ok(())
}

/// The `ConfigUpdateEnvelope` carried by a CONFIG_UPDATE envelope (`UnmarshalEnvelopeOfType`).
pub fn config_update_envelope(env: &Envelope) -> Result<ConfigUpdateEnvelope, ConfigError> {
    let wrap = |m: String| update_err(format!("error converting envelope to config update: {m}"));
    let payload = Payload::decode(env.payload.clone()).map_err(|e| wrap(e.to_string()))?;
    let header = payload
        .header
        .ok_or_else(|| wrap("envelope must have a Header".to_string()))?;
    let chdr = ordo_proto::common::ChannelHeader::decode(header.channel_header)
        .map_err(|e| wrap(e.to_string()))?;
    if chdr.r#type != HeaderType::ConfigUpdate as i32 {
        let name = HeaderType::try_from(chdr.r#type)
            .map(|t| t.as_str_name().to_string())
            .unwrap_or_else(|_| chdr.r#type.to_string());
        return Err(wrap(format!("invalid type {name}, expected CONFIG_UPDATE")));
    }
    SignatureHeader::decode(header.signature_header).map_err(|e| wrap(e.to_string()))?;
    ConfigUpdateEnvelope::decode(payload.data).map_err(|e| {
        wrap(format!(
            "error unmarshalling message for type CONFIG_UPDATE: {e}"
        ))
    })
}

/// The signatures of a `ConfigUpdateEnvelope` as policy input: each over
/// `signature_header ‖ config_update`, by the header's creator.
pub fn config_update_signed_data(
    cue: &ConfigUpdateEnvelope,
) -> Result<Vec<SignedData>, ConfigError> {
    cue.signatures
        .iter()
        .map(|s| {
            let sh = SignatureHeader::decode(s.signature_header.clone())
                .map_err(|e| update_err(format!("error authorizing update: {e}")))?;
            let mut data = Vec::with_capacity(s.signature_header.len() + cue.config_update.len());
            data.extend_from_slice(&s.signature_header);
            data.extend_from_slice(&cue.config_update);
            Ok(SignedData {
                data: Bytes::from(data),
                identity: sh.creator,
                signature: s.signature.clone(),
            })
        })
        .collect()
}

/// The policy that guards changes to an existing element (`policyForItem`): its mod_policy,
/// relative to its parent group (to itself, for a group), or absolute.
fn policy_for_item(
    pm: &PolicyManager,
    item: &Item,
) -> Option<std::sync::Arc<crate::policy::Policy>> {
    let mod_policy = item.mod_policy();
    let mut manager = pm;
    if !mod_policy.is_empty() && !mod_policy.starts_with('/') && !item.path.is_empty() {
        let rel: Vec<&str> = item.path[1..].iter().map(String::as_str).collect();
        manager = manager.manager(&rel)?;
        if matches!(item.element, Element::Group(_)) {
            manager = manager.child(&item.key)?;
        }
    }
    manager.get_policy(mod_policy)
}

/// Applies a CONFIG_UPDATE envelope to the channel's current config as Fabric's
/// `ProposeConfigUpdate` does, returning the `ConfigEnvelope` of the next config (sequence + 1,
/// `last_update` = the envelope). Errors carry Fabric's text.
pub fn propose_config_update(
    current: &ChannelConfig,
    channel_id: &str,
    env: &Envelope,
) -> Result<ConfigEnvelope, ConfigError> {
    let cue = config_update_envelope(env)?;
    let group = authorize_update(current, channel_id, &cue)
        .map_err(|e| e.wrap("error authorizing update"))?;
    Ok(ConfigEnvelope {
        config: Some(Config {
            sequence: current.sequence() + 1,
            channel_group: Some(group),
        }),
        last_update: Some(env.clone()),
    })
}

fn authorize_update(
    current: &ChannelConfig,
    channel_id: &str,
    cue: &ConfigUpdateEnvelope,
) -> Result<ConfigGroup, ConfigError> {
    let update = ConfigUpdate::decode(cue.config_update.clone())
        .map_err(|e| ConfigError::Decode(e.to_string()))?;
    if update.channel_id != channel_id {
        return Err(update_err(format!(
            "ConfigUpdate for channel '{}' but envelope for channel '{channel_id}'",
            update.channel_id
        )));
    }
    let current_group = current.config().channel_group.clone().unwrap_or_default();
    let current_map = ConfigMap::new(&current_group)?;

    let read_set = match &update.read_set {
        Some(g) => ConfigMap::new(g).map_err(|e| e.wrap("error mapping ReadSet"))?,
        None => ConfigMap::default(),
    };
    for (key, item) in &read_set.0 {
        let Some(existing) = current_map.0.get(key) else {
            return Err(update_err(format!(
                "error validating ReadSet: existing config does not contain element for {key} but was in the read set"
            )));
        };
        if existing.version() != item.version() {
            return Err(update_err(format!(
                "error validating ReadSet: proposed update requires that key {key} be at version {}, but it is currently at version {}",
                item.version(),
                existing.version()
            )));
        }
    }
    let write_set = match &update.write_set {
        Some(g) => ConfigMap::new(g).map_err(|e| e.wrap("error mapping WriteSet"))?,
        None => ConfigMap::default(),
    };
    let delta: BTreeMap<&String, &Item> = write_set
        .0
        .iter()
        .filter(|(k, item)| {
            read_set
                .0
                .get(*k)
                .is_none_or(|r| r.version() != item.version())
        })
        .collect();
    let signed = config_update_signed_data(cue)?;
    verify_delta(current, &current_map, &delta, &signed)
        .map_err(|e| e.wrap("error validating DeltaSet"))?;

    let mut proposed = current_map;
    for (k, item) in &delta {
        proposed.0.insert((*k).clone(), (*item).clone());
    }
    if let Some(k) = write_set.0.keys().find(|k| !proposed.0.contains_key(*k)) {
        return Err(update_err(format!(
            "full config did not verify: writeset contained key {k} which did not appear in proposed config"
        )));
    }
    proposed.to_group()
}

fn verify_delta(
    current: &ChannelConfig,
    current_map: &ConfigMap,
    delta: &BTreeMap<&String, &Item>,
    signed: &[SignedData],
) -> Result<(), ConfigError> {
    if delta.is_empty() {
        return Err(update_err(
            "delta set was empty -- update would have no effect",
        ));
    }
    let set = crate::SignatureSet::new(signed, current.msp_manager());
    for (key, item) in delta {
        validate_mod_policy(item.mod_policy())
            .map_err(|e| update_err(format!("invalid mod_policy for element {key}: {e}")))?;
        let Some(existing) = current_map.0.get(*key) else {
            if item.version() != 0 {
                return Err(update_err(format!(
                    "attempted to set key {key} to version {}, but key does not exist",
                    item.version()
                )));
            }
            // A new element is authorized through its parent group's version bump.
            continue;
        };
        if item.version() != existing.version() + 1 {
            return Err(update_err(format!(
                "attempt to set key {key} to version {}, but key is at version {}",
                item.version(),
                existing.version()
            )));
        }
        let Some(policy) = policy_for_item(current.policies(), existing) else {
            return Err(update_err(format!(
                "unexpected missing policy {} for item {key}",
                existing.mod_policy()
            )));
        };
        policy
            .evaluate(&set)
            .map_err(|e| ConfigError::Forbidden(format!("policy for {key} not satisfied: {e}")))?;
    }
    Ok(())
}

/// Fabric's `Validate(configEnv)`: a CONFIG envelope about to be written must be exactly what its
/// `last_update` produces from the current config, at sequence + 1.
pub fn validate_config_envelope(
    current: &ChannelConfig,
    channel_id: &str,
    ce: &ConfigEnvelope,
) -> Result<(), ConfigError> {
    let Some(config) = &ce.config else {
        return Err(update_err("config envelope has nil config"));
    };
    if config.sequence != current.sequence() + 1 {
        return Err(update_err(format!(
            "config currently at sequence {}, cannot validate config at sequence {}",
            current.sequence(),
            config.sequence
        )));
    }
    let Some(last_update) = &ce.last_update else {
        return Err(update_err(
            "updated config does not include a config update",
        ));
    };
    let cue = config_update_envelope(last_update)?;
    let group = authorize_update(current, channel_id, &cue)?;
    if Some(&group) != config.channel_group.as_ref() {
        return Err(update_err(
            "ConfigEnvelope LastUpdate did not produce the supplied config result",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_and_config_ids() {
        for ok in ["a", "channel-3", "my.chan-1", &"a".repeat(249)] {
            validate_channel_id(ok).unwrap();
        }
        assert_eq!(
            validate_channel_id("").unwrap_err().to_string(),
            "channel ID illegal, cannot be empty"
        );
        assert_eq!(
            validate_channel_id(&"a".repeat(250))
                .unwrap_err()
                .to_string(),
            "channel ID illegal, cannot be longer than 249"
        );
        for bad in ["1abc", "Abc", "a_b", "a b", "-a", "é"] {
            assert_eq!(
                validate_channel_id(bad).unwrap_err().to_string(),
                format!("'{bad}' contains illegal characters")
            );
        }
        for ok in ["Org1MSP", "a.b-c", "A"] {
            validate_config_id(ok).unwrap();
        }
        assert!(validate_config_id(".").unwrap_err().contains("not allowed"));
        assert!(
            validate_config_id("..")
                .unwrap_err()
                .contains("not allowed")
        );
        assert!(
            validate_config_id("a/b")
                .unwrap_err()
                .contains("illegal characters")
        );
        assert!(
            validate_config_id("")
                .unwrap_err()
                .contains("cannot be empty")
        );
    }

    #[test]
    fn mod_policy_paths() {
        validate_mod_policy("Admins").unwrap();
        validate_mod_policy("/Channel/Orderer/Admins").unwrap();
        assert_eq!(validate_mod_policy("").unwrap_err(), "mod_policy not set");
        assert!(
            validate_mod_policy("/Channel//Admins")
                .unwrap_err()
                .starts_with("path element at 1")
        );
    }
}
