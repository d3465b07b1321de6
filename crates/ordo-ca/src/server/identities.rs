//! Identities: `register` and `POST identities` (creating one), listing, reading, modifying
//! and removing (`identities/{id}`), and the identity info object they answer with.

use axum::http::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{CaServer, Ctx, Ok200, method_not_allowed, ok};
use crate::attrs;
use crate::authz::{self, AuthzError};
use crate::ca::Ca;
use crate::error::{CaError, ErrorCode};
use crate::registry::{Attribute, IdentityRecord, RegistryError};
use crate::x509 as x;

/// The body of `register` and `POST identities` (Fabric CA's `api.RegistrationRequest`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RegistrationRequest {
    id: String,
    /// Empty: the registrar's own type.
    #[serde(rename = "type")]
    id_type: String,
    /// Empty: a random one, returned in the answer.
    secret: String,
    /// 0: the CA's limit.
    max_enrollments: i64,
    /// Empty: the registrar's own; `.`: the root.
    affiliation: String,
    attrs: Vec<Attribute>,
}

/// The body of `PUT identities/{id}` (Fabric CA's `api.ModifyIdentityRequest`). Empty or zero
/// fields leave the identity as it is.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ModifyIdentityRequest {
    #[serde(rename = "type")]
    id_type: String,
    /// `.`: the root.
    affiliation: String,
    /// Each replaces the attribute of its name; an empty value removes it.
    attrs: Vec<Attribute>,
    /// 0: unchanged; -2: zero (no more enrollments).
    max_enrollments: i64,
    secret: String,
}

impl CaServer {
    /// `register`, and `POST identities` (`add = true`: 201 with the identity's info).
    pub(super) fn register(&self, ctx: &Ctx, ca: &Ca, add: bool) -> Result<Ok200, CaError> {
        let (registrar, _, _) = self.token_auth(ctx, ca)?;
        let req: RegistrationRequest = ctx.body()?;
        let id = req.id;
        if id.is_empty() {
            return Err(CaError::bad_request(
                ErrorCode::BadReqBody,
                "Missing 'ID' in request to register a new identity",
            ));
        }
        let mut affiliation = req.affiliation;
        if affiliation.is_empty() {
            affiliation = registrar.affiliation.clone();
        } else if affiliation == "." {
            affiliation.clear();
        }
        let mut id_type = req.id_type;
        if id_type.is_empty() {
            id_type = registrar.id_type.clone();
        }
        let mut attrs = req.attrs;
        let exists = affiliation.is_empty() || ca.registry.affiliations()?.contains(&affiliation);
        authz::can_register(&registrar, &id, &id_type, &affiliation, exists)?;
        authz::can_register_attributes(&attrs, None, &registrar).map_err(|reason| {
            AuthzError::Registration {
                id: id.clone(),
                reason: Box::new(reason),
            }
        })?;
        let max = attrs::max_enrollments(req.max_enrollments, ca.settings.max_enrollments)?;
        let mut secret = req.secret;
        if secret.is_empty() {
            secret = attrs::random_secret()?;
        }
        for (n, v) in [
            (attrs::ENROLLMENT_ID, id.as_str()),
            (attrs::TYPE, id_type.as_str()),
            (attrs::AFFILIATION, affiliation.as_str()),
        ] {
            attrs.push(Attribute {
                name: n.into(),
                value: v.into(),
                ecert: true,
            });
        }
        let rec = IdentityRecord {
            id: id.clone(),
            secret_hash: attrs::hash_secret(&secret)?,
            id_type,
            affiliation,
            attrs,
            max_enrollments: max,
            state: 0,
        };
        match ca.registry.insert_identity(&rec) {
            Ok(()) => {}
            Err(RegistryError::Duplicate(_)) => {
                return Err(CaError::http(
                    409,
                    ErrorCode::DupIdentityReg,
                    format!("Identity '{id}' is already registered"),
                ));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(ca = ca.name(), registrar = %registrar.id, %id, "registered identity");
        let location = format!("/api/v1/identities/{id}");
        if add {
            let mut info = identity_info(&rec);
            info["secret"] = json!(secret);
            info["caname"] = json!(ca.name());
            return Ok(Ok200 {
                status: 201,
                result: info,
                location: None,
            });
        }
        Ok(Ok200 {
            status: 201,
            result: json!({ "secret": secret }),
            location: Some(location),
        })
    }

    pub(super) fn list_identities(&self, ctx: &Ctx, ca: &Ca) -> Result<Ok200, CaError> {
        let (caller, _, _) = self.token_auth(ctx, ca)?;
        authz::is_registrar(&caller)?;
        let ids: Vec<Value> = ca
            .registry
            .list_identities()?
            .iter()
            .filter(|i| authz::can_manage(&caller, i).is_ok())
            .map(identity_info)
            .collect();
        ok(200, json!({"identities": ids, "caname": ca.name()}))
    }

    pub(super) fn identity(&self, ctx: &Ctx, ca: &Ca) -> Result<Ok200, CaError> {
        let (caller, _, _) = self.token_auth(ctx, ca)?;
        let id = ctx.var.clone().unwrap_or_default();
        let not_found = || {
            CaError::http(
                404,
                ErrorCode::GettingUser,
                format!("Failed to get identity '{id}'"),
            )
        };
        match ctx.method {
            Method::GET => {
                let rec = ca.registry.get_identity(&id)?.ok_or_else(not_found)?;
                authz::can_manage(&caller, &rec)?;
                let mut info = identity_info(&rec);
                info["caname"] = json!(ca.name());
                ok(200, info)
            }
            Method::DELETE => {
                if !ca.settings.allow_remove_identities {
                    return Err(CaError::http(
                        403,
                        ErrorCode::RemoveIdentity,
                        "Identity removal is disabled",
                    ));
                }
                if id == caller.id && !ctx.bool_query("force")? {
                    return Err(CaError::http(
                        403,
                        ErrorCode::RemoveIdentity,
                        "Need to use 'force' option to delete your own identity",
                    ));
                }
                let rec = ca.registry.get_identity(&id)?.ok_or_else(not_found)?;
                authz::can_manage(&caller, &rec)?;
                // Fabric CA revokes the certificates of a removed identity.
                ca.registry.revoke_identity(&id, 0, x::now_secs() as i64)?;
                ca.registry.delete_identity(&id)?;
                let mut info = identity_info(&rec);
                info["caname"] = json!(ca.name());
                ok(200, info)
            }
            Method::PUT => self.modify_identity(ctx, ca, &caller, &id),
            _ => Err(method_not_allowed(&ctx.method)),
        }
    }

    fn modify_identity(
        &self,
        ctx: &Ctx,
        ca: &Ca,
        caller: &IdentityRecord,
        id: &str,
    ) -> Result<Ok200, CaError> {
        let mut rec = ca.registry.get_identity(id)?.ok_or_else(|| {
            CaError::http(
                404,
                ErrorCode::GettingUser,
                format!("Failed to get identity '{id}'"),
            )
        })?;
        authz::can_manage(caller, &rec)?;
        // Decoded only now: an unknown identity or one the caller may not manage is answered
        // as such whatever the body holds.
        let req: ModifyIdentityRequest = ctx.body()?;
        let new_type = req.id_type;
        if !new_type.is_empty() {
            authz::can_act_on_type(caller, &new_type)?;
            rec.id_type = new_type;
        }
        let new_aff = req.affiliation;
        if !new_aff.is_empty() {
            let aff = if new_aff == "." {
                String::new()
            } else {
                new_aff
            };
            authz::contains_affiliation(caller, &aff)?;
            if !aff.is_empty() && !ca.registry.affiliations()?.contains(&aff) {
                return Err(CaError::bad_request(
                    ErrorCode::ModifyingIdentity,
                    format!("Affiliation '{aff}' is not supported"),
                ));
            }
            rec.affiliation = aff;
        }
        authz::can_register_attributes(&req.attrs, Some(&rec), caller)?;
        for a in req.attrs {
            rec.attrs.retain(|x| x.name != a.name);
            // An empty value deletes the attribute.
            if !a.value.is_empty() {
                rec.attrs.push(a);
            }
        }
        for (n, v) in [
            (attrs::TYPE, rec.id_type.clone()),
            (attrs::AFFILIATION, rec.affiliation.clone()),
        ] {
            if let Some(a) = rec.attrs.iter_mut().find(|a| a.name == n) {
                a.value = v;
            }
        }
        match req.max_enrollments {
            0 => {}
            -2 => rec.max_enrollments = 0,
            n => rec.max_enrollments = attrs::max_enrollments(n, ca.settings.max_enrollments)?,
        }
        let secret = req.secret;
        if !secret.is_empty() {
            rec.secret_hash = attrs::hash_secret(&secret)?;
        }
        ca.registry.update_identity(&rec)?;
        if !secret.is_empty() {
            // A new secret unlocks an identity locked by wrong secrets.
            ca.registry.record_login(id, true)?;
        }
        let mut info = identity_info(&rec);
        if !secret.is_empty() {
            info["secret"] = json!(secret);
        }
        info["caname"] = json!(ca.name());
        ok(200, info)
    }
}

pub(super) fn identity_info(r: &IdentityRecord) -> Value {
    json!({
        "id": r.id,
        "type": r.id_type,
        "affiliation": r.affiliation,
        "attrs": r.attrs,
        "max_enrollments": r.max_enrollments,
    })
}
