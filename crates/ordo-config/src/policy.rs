//! Fabric's policies: signature policies (`cauthdsl`, NOutOf trees over MSP principals) and
//! ImplicitMeta policies (ANY/ALL/MAJORITY of a sub-policy over the child groups), the policy
//! manager that finds them by path, and their evaluation over a set of signatures.
//!
//! Evaluation gives exactly Fabric's outcome, but does less work: Fabric's
//! `SignatureSetToValidIdentities` deserializes and verifies every signature for every leaf policy
//! an ImplicitMeta visits (the Writers check verifies each application signature against the
//! orderer org too). Here a [`SignatureSet`] remembers each item's identity and verification, and
//! a signature is verified only when its identity could satisfy the principal being matched. Since
//! the valid-identity list is a pure function of the items, and the greedy matcher only ever picks
//! the first unused valid identity that satisfies a principal, checking the principal first and
//! validity second selects the same identity.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use ordo_msp::{Identity, MspManager};
use ordo_proto::common::policy::PolicyType;
use ordo_proto::common::signature_policy::Type as RuleType;
use ordo_proto::common::{
    ConfigGroup, ImplicitMetaPolicy, MspPrincipal, Policy as PolicyProto, SignaturePolicy,
    SignaturePolicyEnvelope, implicit_meta_policy,
};
use prost::Message;

use crate::ConfigError;

/// One signature to evaluate: `signature` by `identity` (a marshalled `SerializedIdentity`) over
/// `data` (Fabric's `protoutil.SignedData`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedData {
    pub data: Bytes,
    pub identity: Bytes,
    pub signature: Bytes,
}

/// Why a policy was not satisfied, in Fabric's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// A compiled signature-policy rule.
#[derive(Debug, Clone)]
pub enum Rule {
    SignedBy(usize),
    NOutOf(i32, Vec<Rule>),
}

/// A compiled policy.
#[derive(Debug)]
pub enum Policy {
    Signature {
        rule: Rule,
        principals: Vec<MspPrincipal>,
    },
    ImplicitMeta {
        sub_policy: String,
        threshold: usize,
        children: Vec<Arc<Policy>>,
    },
    /// A policy that never passes: a missing sub-policy, or a lookup of an unknown name.
    Reject(String),
}

#[derive(Debug, Default, Clone)]
struct ItemState {
    identity: Option<Option<Identity>>,
    verified: Option<bool>,
}

/// The signatures one decision is made on, with what has been learned about each so far.
pub struct SignatureSet<'a> {
    items: &'a [SignedData],
    msps: &'a MspManager,
    state: RefCell<Vec<ItemState>>,
}

impl<'a> SignatureSet<'a> {
    pub fn new(items: &'a [SignedData], msps: &'a MspManager) -> Self {
        SignatureSet {
            items,
            msps,
            state: RefCell::new(vec![ItemState::default(); items.len()]),
        }
    }

    fn identity(&self, k: usize) -> Option<Identity> {
        if let Some(id) = &self.state.borrow()[k].identity {
            return id.clone();
        }
        // An identity that does not deserialize is skipped, as Fabric logs and skips it.
        let id = self.msps.deserialize_identity(&self.items[k].identity).ok();
        self.state.borrow_mut()[k].identity = Some(id.clone());
        id
    }

    fn verified(&self, k: usize, id: &Identity) -> bool {
        if let Some(v) = self.state.borrow()[k].verified {
            return v;
        }
        let item = &self.items[k];
        let ok = id.verify(&item.data, &item.signature).is_ok();
        self.state.borrow_mut()[k].verified = Some(ok);
        ok
    }

    /// Whether item `k` is in Fabric's valid-identity list: it deserializes, no earlier item with
    /// the same `(MSP ID, id)` is in the list, and its signature verifies.
    fn is_valid(&self, k: usize) -> bool {
        let Some(id) = self.identity(k) else {
            return false;
        };
        for j in 0..k {
            if let Some(other) = self.identity(j)
                && other.msp_id() == id.msp_id()
                && other.id() == id.id()
                && self.is_valid(j)
            {
                return false;
            }
        }
        self.verified(k, &id)
    }

    /// Whether item `k` is a valid identity that satisfies `principal`.
    fn satisfies(&self, k: usize, principal: &MspPrincipal) -> bool {
        let Some(id) = self.identity(k) else {
            return false;
        };
        let Ok(msp) = self.msps.msp_of(&id) else {
            return false;
        };
        msp.satisfies_principal(&id, principal).is_ok() && self.is_valid(k)
    }

    /// The valid identities, in order (Fabric's `SignatureSetToValidIdentities`).
    pub fn valid_identities(&self) -> Vec<Identity> {
        (0..self.items.len())
            .filter(|&k| self.is_valid(k))
            .filter_map(|k| self.identity(k))
            .collect()
    }
}

impl Rule {
    /// The greedy evaluator of `cauthdsl.compile`: `SignedBy` takes the first unused identity that
    /// satisfies its principal; `NOutOf` evaluates every sub-rule (no short-circuit, because the
    /// identities a later sub-rule consumes matter to the enclosing rule) on a scratch copy of
    /// `used`, keeping the copy when the sub-rule passes.
    fn eval(&self, set: &SignatureSet<'_>, principals: &[MspPrincipal], used: &mut [bool]) -> bool {
        match self {
            Rule::SignedBy(i) => {
                let principal = &principals[*i];
                for (k, taken) in used.iter_mut().enumerate() {
                    if !*taken && set.satisfies(k, principal) {
                        *taken = true;
                        return true;
                    }
                }
                false
            }
            Rule::NOutOf(n, rules) => {
                let mut verified = 0i64;
                for r in rules {
                    let mut scratch = used.to_vec();
                    if r.eval(set, principals, &mut scratch) {
                        verified += 1;
                        used.copy_from_slice(&scratch);
                    }
                }
                verified >= i64::from(*n)
            }
        }
    }
}

fn compile_rule(rule: Option<&SignaturePolicy>, n_identities: usize) -> Result<Rule, String> {
    let Some(rule) = rule else {
        return Err("Empty policy element".to_string());
    };
    match &rule.r#type {
        Some(RuleType::SignedBy(i)) => {
            if *i < 0 || *i as usize >= n_identities {
                return Err(format!(
                    "identity index out of range, requested {i}, but identities length is {n_identities}"
                ));
            }
            Ok(Rule::SignedBy(*i as usize))
        }
        Some(RuleType::NOutOf(n)) => {
            let rules = n
                .rules
                .iter()
                .map(|r| compile_rule(Some(r), n_identities))
                .collect::<Result<_, _>>()?;
            Ok(Rule::NOutOf(n.n, rules))
        }
        None => Err("Empty policy element".to_string()),
    }
}

impl Policy {
    /// Compiles a `SignaturePolicyEnvelope` (Fabric's `cauthdsl.NewPolicy`).
    pub fn signature(env: &SignaturePolicyEnvelope) -> Result<Policy, PolicyError> {
        if env.version != 0 {
            return Err(PolicyError(format!(
                "This evaluator only understands messages of version 0, but version was {}",
                env.version
            )));
        }
        let rule = compile_rule(env.rule.as_ref(), env.identities.len()).map_err(PolicyError)?;
        Ok(Policy::Signature {
            rule,
            principals: env.identities.clone(),
        })
    }

    /// Evaluates the policy against a signature set, with Fabric's outcome and messages.
    pub fn evaluate(&self, set: &SignatureSet<'_>) -> Result<(), PolicyError> {
        match self {
            Policy::Reject(reason) => Err(PolicyError(reason.clone())),
            Policy::Signature { rule, principals } => {
                let mut used = vec![false; set.items.len()];
                if rule.eval(set, principals, &mut used) {
                    Ok(())
                } else {
                    Err(PolicyError(
                        "signature set did not satisfy policy".to_string(),
                    ))
                }
            }
            Policy::ImplicitMeta {
                sub_policy,
                threshold,
                children,
            } => {
                if *threshold == 0 {
                    return Ok(());
                }
                let mut satisfied = 0;
                for child in children {
                    if child.evaluate(set).is_ok() {
                        satisfied += 1;
                        if satisfied >= *threshold {
                            return Ok(());
                        }
                    }
                }
                Err(PolicyError(format!(
                    "implicit policy evaluation failed - {satisfied} sub-policies were satisfied, but this policy requires {threshold} of the '{sub_policy}' sub-policies to be satisfied"
                )))
            }
        }
    }

    /// Convenience: evaluates over `items` with a fresh signature set.
    pub fn evaluate_signed_data(
        &self,
        items: &[SignedData],
        msps: &MspManager,
    ) -> Result<(), PolicyError> {
        self.evaluate(&SignatureSet::new(items, msps))
    }
}

/// The policies of one config group and, recursively, of its children (Fabric's
/// `policies.ManagerImpl`). `path` has no leading slash (`Channel`, `Channel/Orderer`).
#[derive(Debug)]
pub struct PolicyManager {
    path: String,
    policies: BTreeMap<String, Arc<Policy>>,
    children: BTreeMap<String, PolicyManager>,
}

impl PolicyManager {
    /// Builds the managers for `group` at `path`, children first (ImplicitMeta policies refer to
    /// their children's policies).
    pub fn new(path: &str, group: &ConfigGroup) -> Result<PolicyManager, ConfigError> {
        let mut children = BTreeMap::new();
        for (name, child) in &group.groups {
            children.insert(
                name.clone(),
                PolicyManager::new(&format!("{path}/{name}"), child)?,
            );
        }
        let mut policies = BTreeMap::new();
        for (name, cp) in &group.policies {
            let Some(p) = &cp.policy else {
                return Err(ConfigError::Policy(format!(
                    "policy {name} at path {path} was nil"
                )));
            };
            let compiled = compile_policy(name, path, p, &children)?;
            policies.insert(name.clone(), Arc::new(compiled));
        }
        Ok(PolicyManager {
            path: path.to_string(),
            policies,
            children,
        })
    }

    /// The manager of a direct child group.
    pub fn child(&self, name: &str) -> Option<&PolicyManager> {
        self.children.get(name)
    }

    /// The manager at a relative group path (`["Orderer", "OrdererOrg"]`).
    pub fn manager(&self, path: &[&str]) -> Option<&PolicyManager> {
        match path.split_first() {
            None => Some(self),
            Some((first, rest)) => self.children.get(*first)?.manager(rest),
        }
    }

    /// Fabric's `GetPolicy`: an absolute id (`/Channel/Orderer/Writers`) from the root, or a
    /// relative one (`Writers`, `Orderer/OrdererOrg/Admins`). Unknown ids give `None`.
    pub fn get_policy(&self, id: &str) -> Option<Arc<Policy>> {
        if id.is_empty() {
            return None;
        }
        let rel = if let Some(abs) = id.strip_prefix('/') {
            abs.strip_prefix(self.path.as_str())?.strip_prefix('/')?
        } else {
            id
        };
        let mut parts: Vec<&str> = rel.split('/').collect();
        let name = parts.pop()?;
        self.manager(&parts)?.policies.get(name).cloned()
    }

    /// Like [`get_policy`](Self::get_policy), but an unknown id gives Fabric's reject policy.
    pub fn policy_or_reject(&self, id: &str) -> Arc<Policy> {
        self.get_policy(id)
            .unwrap_or_else(|| Arc::new(Policy::Reject(format!("no such policy: '{id}'"))))
    }

    /// The names of this group's own policies.
    pub fn policy_names(&self) -> impl Iterator<Item = &str> {
        self.policies.keys().map(String::as_str)
    }
}

fn compile_policy(
    name: &str,
    path: &str,
    p: &PolicyProto,
    children: &BTreeMap<String, PolicyManager>,
) -> Result<Policy, ConfigError> {
    match PolicyType::try_from(p.r#type) {
        Ok(PolicyType::ImplicitMeta) => {
            let imp = ImplicitMetaPolicy::decode(p.value.clone()).map_err(|e| {
                ConfigError::Policy(format!(
                    "implicit policy {name} at path {path} did not compile: Error unmarshalling to ImplicitMetaPolicy: {e}"
                ))
            })?;
            let subs: Vec<Arc<Policy>> = children
                .values()
                .map(|c| c.policy_or_reject(&imp.sub_policy))
                .collect();
            let n = subs.len();
            let threshold = match implicit_meta_policy::Rule::try_from(imp.rule) {
                Ok(implicit_meta_policy::Rule::Any) => 1.min(n),
                Ok(implicit_meta_policy::Rule::All) => n,
                Ok(implicit_meta_policy::Rule::Majority) => n / 2 + 1,
                Err(_) => {
                    return Err(ConfigError::Policy(format!(
                        "implicit policy {name} at path {path} did not compile: unknown rule type {}",
                        imp.rule
                    )));
                }
            };
            // Zero child groups: Fabric's threshold is 0 and the policy always passes.
            let threshold = if n == 0 { 0 } else { threshold };
            Ok(Policy::ImplicitMeta {
                sub_policy: imp.sub_policy,
                threshold,
                children: subs,
            })
        }
        Ok(PolicyType::Signature) => {
            let env = SignaturePolicyEnvelope::decode(p.value.clone()).map_err(|e| {
                ConfigError::Policy(format!(
                    "policy {name} at path {path} did not compile: Error unmarshalling to SignaturePolicy: {e}"
                ))
            })?;
            Policy::signature(&env).map_err(|e| {
                ConfigError::Policy(format!("policy {name} at path {path} did not compile: {e}"))
            })
        }
        _ => Err(ConfigError::Policy(format!(
            "policy {name} at path {path} has unknown policy type: {}",
            p.r#type
        ))),
    }
}
