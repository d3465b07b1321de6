//! Affiliations: the tree below the caller's affiliation or a named one, adding, removing
//! (with their identities, given `force`) and renaming (moving their identities).

use axum::http::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::identities::identity_info;
use super::{CaServer, Ctx, Endpoint, Ok200, method_not_allowed, ok};
use crate::authz::{self, AuthzError};
use crate::ca::Ca;
use crate::error::{CaError, ErrorCode};
use crate::registry::IdentityRecord;
use crate::x509 as x;

/// The body of `POST affiliations` and `PUT affiliations/{name}` (Fabric CA's
/// `api.AddAffiliationRequest` and `api.ModifyAffiliationRequest`): the affiliation to add, or
/// the new name. `force` may also come as a query parameter.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AffiliationRequest {
    name: String,
    /// Add missing parents; rename even though identities belong to the affiliation.
    force: bool,
}

impl CaServer {
    pub(super) fn affiliations(&self, ep: Endpoint, ctx: &Ctx, ca: &Ca) -> Result<Ok200, CaError> {
        let (caller, _, _) = self.token_auth(ctx, ca)?;
        let all = ca.registry.affiliations()?;
        match (ep, ctx.method.clone()) {
            (Endpoint::Affiliations, Method::GET) => get(ca, &caller, &all, None),
            (Endpoint::Affiliation, Method::GET) => {
                get(ca, &caller, &all, Some(ctx.var.clone().unwrap_or_default()))
            }
            (Endpoint::Affiliations, Method::POST) => add(ctx, ca, &caller, &all),
            (Endpoint::Affiliation, Method::DELETE) => remove(ctx, ca, &caller, &all),
            (Endpoint::Affiliation, Method::PUT) => rename(ctx, ca, &caller, &all),
            _ => Err(method_not_allowed(&ctx.method)),
        }
    }
}

/// `GET affiliations` (below the caller's own) and `GET affiliations/{name}`.
fn get(
    ca: &Ca,
    caller: &IdentityRecord,
    all: &[String],
    name: Option<String>,
) -> Result<Ok200, CaError> {
    let root = if let Some(name) = name {
        authz::contains_affiliation(caller, &name)?;
        if !all.contains(&name) {
            return Err(CaError::http(
                404,
                ErrorCode::GettingAffiliation,
                format!("Failed getting affiliation '{name}'"),
            ));
        }
        name
    } else {
        caller.affiliation.clone()
    };
    let mut tree = affiliation_tree(&root, all);
    tree["caname"] = json!(ca.name());
    ok(200, tree)
}

/// `POST affiliations`: adds one, and its missing parents given `force`.
fn add(ctx: &Ctx, ca: &Ca, caller: &IdentityRecord, all: &[String]) -> Result<Ok200, CaError> {
    authz::can_manage_affiliations(caller)?;
    let req: AffiliationRequest = ctx.body()?;
    let name = req.name;
    if name.is_empty() || name.split('.').any(str::is_empty) {
        return Err(CaError::bad_request(
            ErrorCode::UpdateConfigAddAff,
            format!("invalid affiliation name '{name}'"),
        ));
    }
    authz::contains_affiliation(caller, &name)?;
    if all.contains(&name) {
        return Err(CaError::http(
            409,
            ErrorCode::UpdateConfigAddAff,
            "Affiliation already exists",
        ));
    }
    let force = ctx.bool_query("force")? || req.force;
    let parts: Vec<&str> = name.split('.').collect();
    let parents: Vec<String> = (1..parts.len()).map(|i| parts[..i].join(".")).collect();
    let missing: Vec<&String> = parents.iter().filter(|p| !all.contains(p)).collect();
    if !missing.is_empty() && !force {
        return Err(CaError::bad_request(
            ErrorCode::UpdateConfigAddAff,
            "Parent affiliation does not exist, 'force' option required on request to add affiliation",
        ));
    }
    for p in missing {
        ca.registry.add_affiliation(p)?;
    }
    ca.registry.add_affiliation(&name)?;
    ok(201, json!({"name": name, "caname": ca.name()}))
}

/// `DELETE affiliations/{name}`: removes it with its sub-affiliations, and given `force` the
/// identities in them (revoking their certificates).
fn remove(ctx: &Ctx, ca: &Ca, caller: &IdentityRecord, all: &[String]) -> Result<Ok200, CaError> {
    authz::can_manage_affiliations(caller)?;
    if !ca.settings.allow_remove_affiliations {
        return Err(AuthzError::AffiliationRemovalDisabled.into());
    }
    let name = ctx.var.clone().unwrap_or_default();
    authz::can_remove_affiliation(caller, &name)?;
    if !all.contains(&name) {
        return Err(CaError::http(
            404,
            ErrorCode::GettingAffiliation,
            format!("Failed getting affiliation '{name}'"),
        ));
    }
    let force = ctx.bool_query("force")?;
    let subs = all
        .iter()
        .filter(|a| authz::in_subtree(&name, a) && **a != name)
        .count();
    let ids: Vec<IdentityRecord> = ca
        .registry
        .list_identities()?
        .into_iter()
        .filter(|i| !i.affiliation.is_empty() && authz::in_subtree(&name, &i.affiliation))
        .collect();
    if (subs > 0 || !ids.is_empty()) && !force {
        return Err(CaError::bad_request(
            ErrorCode::UpdateConfigRemoveAff,
            format!(
                "Can't remove affiliation '{name}': it has sub-affiliations or identities; use 'force'"
            ),
        ));
    }
    let now = x::now_secs() as i64;
    for i in &ids {
        authz::can_manage(caller, i)?;
    }
    for i in &ids {
        ca.registry.revoke_identity(&i.id, 0, now)?;
        ca.registry.delete_identity(&i.id)?;
    }
    let removed = ca.registry.remove_affiliation(&name)?;
    let mut tree = affiliation_tree(&name, &removed);
    tree["identities"] = Value::Array(ids.iter().map(identity_info).collect());
    tree["caname"] = json!(ca.name());
    ok(200, tree)
}

/// `PUT affiliations/{name}`: renames it with its sub-affiliations, moving their identities
/// (given `force` when there are any).
fn rename(ctx: &Ctx, ca: &Ca, caller: &IdentityRecord, all: &[String]) -> Result<Ok200, CaError> {
    authz::can_manage_affiliations(caller)?;
    let req: AffiliationRequest = ctx.body()?;
    let old = ctx.var.clone().unwrap_or_default();
    let new = req.name;
    if new.is_empty() || new.split('.').any(str::is_empty) {
        return Err(CaError::bad_request(
            ErrorCode::UpdateConfigModifyAff,
            format!("invalid affiliation name '{new}'"),
        ));
    }
    authz::contains_affiliation(caller, &old)?;
    authz::contains_affiliation(caller, &new)?;
    if !all.contains(&old) {
        return Err(CaError::http(
            404,
            ErrorCode::GettingAffiliation,
            format!("Failed getting affiliation '{old}'"),
        ));
    }
    if all.contains(&new) {
        return Err(CaError::http(
            409,
            ErrorCode::UpdateConfigModifyAff,
            format!("Affiliation '{new}' already exists"),
        ));
    }
    let affected: Vec<String> = ca
        .registry
        .list_identities()?
        .into_iter()
        .filter(|i| !i.affiliation.is_empty() && authz::in_subtree(&old, &i.affiliation))
        .map(|i| i.id)
        .collect();
    if !affected.is_empty() {
        authz::can_rename_with_identities(caller)?;
        if !(ctx.bool_query("force")? || req.force) {
            return Err(CaError::bad_request(
                ErrorCode::UpdateConfigModifyAff,
                format!(
                    "The request to modify affiliation '{old}' has the following identities associated: {}. Need to use 'force' to modify identities and affiliation",
                    affected.join(", ")
                ),
            ));
        }
    }
    let (renamed, moved) = ca.registry.rename_affiliation(&old, &new)?;
    let mut tree = affiliation_tree(&new, &renamed);
    if !moved.is_empty() {
        tree["identities"] = Value::Array(moved.iter().map(identity_info).collect());
    }
    tree["caname"] = json!(ca.name());
    ok(200, tree)
}

/// `{name, affiliations: [{name, affiliations: [...]}]}` rooted at `root` (full names).
fn affiliation_tree(root: &str, all: &[String]) -> Value {
    fn children(parent: &str, all: &[String]) -> Vec<Value> {
        all.iter()
            .filter(|a| match a.rsplit_once('.') {
                Some((p, _)) => p == parent,
                None => parent.is_empty(),
            })
            .map(|a| {
                let kids = children(a, all);
                if kids.is_empty() {
                    json!({"name": a})
                } else {
                    json!({"name": a, "affiliations": kids})
                }
            })
            .collect()
    }
    let kids = children(root, all);
    if kids.is_empty() {
        json!({"name": root})
    } else {
        json!({"name": root, "affiliations": kids})
    }
}
