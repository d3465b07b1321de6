//! Registrar rules of Fabric CA: reserved `hf.*` attributes (`lib/attr/attribute.go`), roles
//! and affiliation subtrees (`CanActOnType`, `ContainsAffiliation`), max enrollments
//! (`getMaxEnrollments`), the attribute extension's contents, and secret hashing.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use ring::pbkdf2;
use ring::rand::SecureRandom;

use crate::error::{CaError, ErrorCode};
use crate::registry::{Attribute, IdentityRecord};

pub const ROLES: &str = "hf.Registrar.Roles";
pub const DELEGATE_ROLES: &str = "hf.Registrar.DelegateRoles";
pub const REVOKER: &str = "hf.Revoker";
pub const INTERMEDIATE_CA: &str = "hf.IntermediateCA";
pub const GEN_CRL: &str = "hf.GenCRL";
pub const REGISTRAR_ATTR: &str = "hf.Registrar.Attributes";
pub const AFFILIATION_MGR: &str = "hf.AffiliationMgr";
pub const ENROLLMENT_ID: &str = "hf.EnrollmentID";
pub const TYPE: &str = "hf.Type";
pub const AFFILIATION: &str = "hf.Affiliation";

const BOOLEAN_ATTRS: [&str; 4] = [REVOKER, INTERMEDIATE_CA, GEN_CRL, AFFILIATION_MGR];
const LIST_ATTRS: [&str; 3] = [ROLES, DELEGATE_ROLES, REGISTRAR_ATTR];
const FIXED_ATTRS: [&str; 3] = [ENROLLMENT_ID, TYPE, AFFILIATION];

/// Go's `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// True when the identity has attribute `name` with a true value (`attributeIsTrue`).
pub fn attribute_is_true(id: &IdentityRecord, name: &str) -> bool {
    id.attr(name).and_then(parse_bool).unwrap_or(false)
}

/// Comma-separated list, whitespace trimmed, empty items dropped (`util.GetSliceFromList`).
fn list(s: &str) -> Vec<&str> {
    s.split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

fn list_contains(list_value: &str, item: &str) -> bool {
    list(list_value).contains(&item)
}

/// `CanActOnType`: the caller's `hf.Registrar.Roles` contains the type or `*`; an empty type
/// is `client`.
pub fn can_act_on_type(caller: &IdentityRecord, id_type: &str) -> Result<(), String> {
    let t = if id_type.is_empty() {
        "client"
    } else {
        id_type
    };
    let roles = caller.attr(ROLES).unwrap_or("");
    if list_contains(roles, "*") || list(roles).iter().any(|r| r.eq_ignore_ascii_case(t)) {
        Ok(())
    } else {
        Err(format!(
            "identity '{}' may not act on type '{t}'",
            caller.id
        ))
    }
}

/// `ContainsAffiliation`: `aff` is the caller's affiliation or below it; the root affiliation
/// (empty) contains everything.
pub fn contains_affiliation(caller: &IdentityRecord, aff: &str) -> Result<(), String> {
    let mine = caller.affiliation.as_str();
    if mine.is_empty() || aff == mine || aff.starts_with(&format!("{mine}.")) {
        Ok(())
    } else {
        Err(format!(
            "caller's affiliation '{mine}' does not contain '{aff}'"
        ))
    }
}

/// `CanManageUser`: type and affiliation.
pub fn can_manage(caller: &IdentityRecord, target: &IdentityRecord) -> Result<(), CaError> {
    can_act_on_type(caller, &target.id_type)
        .and_then(|_| contains_affiliation(caller, &target.affiliation))
        .map_err(CaError::Authorization)
}

/// `getMaxEnrollments`.
pub fn max_enrollments(requested: i64, ca_max: i64) -> Result<i64, CaError> {
    let bad = |m: String| CaError::bad_request(ErrorCode::InvalidMaxEnroll, m);
    if requested < -1 {
        return Err(bad(format!(
            "Max enrollment in registration request may not be less than -1, but was {requested}"
        )));
    }
    match ca_max {
        -1 => Ok(if requested == 0 { -1 } else { requested }),
        0 => Err(bad("Registration is disabled".into())),
        m => match requested {
            -1 => Err(bad(
                "Registration for infinite enrollments is not allowed".into()
            )),
            0 => Ok(m),
            n if n > m => Err(bad(format!(
                "Requested enrollments ({n}) exceeds maximum allowable enrollments ({m})"
            ))),
            n => Ok(n),
        },
    }
}

/// The effective limit of an identity at login: its own, capped by the CA's (`Login`).
pub fn effective_max(identity_max: i64, ca_max: i64) -> i64 {
    if ca_max != -1 && (identity_max > ca_max || identity_max == -1) {
        ca_max
    } else {
        identity_max
    }
}

fn can_register_attr_name(name: &str, registrar_list: &[&str]) -> Result<(), String> {
    for r in registrar_list {
        if let Some(prefix) = r.strip_suffix('*') {
            if name.starts_with(prefix.trim_end_matches('*')) {
                return Ok(());
            }
        } else if name == *r {
            return Ok(());
        }
    }
    Err(format!(
        "Attribute '{name}' is not part of caller's '{REGISTRAR_ATTR}' attribute list"
    ))
}

fn is_subset_of(small: &str, big: &str) -> Result<(), String> {
    let bigset: Vec<&str> = big.split(',').collect();
    for s in small.split(',').filter(|s| !s.is_empty()) {
        if !bigset.iter().any(|b| b.to_lowercase() == s.to_lowercase()) {
            return Err(format!("'{s}' is not a member of '{big}'"));
        }
    }
    Ok(())
}

fn value_of<'a>(attrs: &'a [Attribute], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.value.as_str())
}

/// `CanRegisterRequestedAttributes`: may `registrar` give `requested` to `target` (the existing
/// identity when modifying, `None` when registering)?
pub fn can_register_attributes(
    requested: &[Attribute],
    target: Option<&IdentityRecord>,
    registrar: &IdentityRecord,
) -> Result<(), String> {
    if requested.is_empty() {
        return Ok(());
    }
    let registrar_attrs = registrar.attr(REGISTRAR_ATTR).unwrap_or("");
    if registrar_attrs.is_empty() {
        return Err(format!(
            "Registrar does not have any values for '{REGISTRAR_ATTR}' thus can't register any attributes"
        ));
    }
    let registrar_list = list(registrar_attrs);
    for req in requested {
        let name = req.name.as_str();
        can_register_attr_name(name, &registrar_list)?;
        if FIXED_ATTRS.contains(&name) {
            return Err(format!("Cannot register fixed value attribute '{name}'"));
        }
        let is_bool = BOOLEAN_ATTRS.contains(&name);
        let is_list = LIST_ATTRS.contains(&name);
        if !is_bool && !is_list {
            if name.starts_with("hf.") {
                return Err(format!(
                    "Registering attribute '{name}' using a reserved prefix 'hf.', however this not a supported reserved attribute"
                ));
            }
            continue;
        }
        // Reserved attributes require the registrar to own them.
        let callers = registrar.attr(name).ok_or_else(|| {
            format!(
                "Attribute '{name}' requires ownership but the caller does not own this attribute"
            )
        })?;
        if is_bool {
            if parse_bool(callers) != Some(true) {
                return Err(format!(
                    "Caller has a value of 'false' for boolean attribute '{name}', can't perform any actions on this attribute"
                ));
            }
            if !req.value.is_empty() && parse_bool(&req.value).is_none() {
                return Err(format!("Failed to get boolean value of '{}'", req.value));
            }
            continue;
        }
        if req.value.is_empty() {
            continue;
        }
        if name == REGISTRAR_ATTR {
            let caller_list = list(callers);
            for v in list(&req.value) {
                can_register_attr_name(v, &caller_list)?;
                if v.starts_with("hf.")
                    && value_of(requested, v).is_none()
                    && target.and_then(|t| t.attr(v)).is_none()
                {
                    return Err(format!(
                        "Requesting value of '{v}' for '{REGISTRAR_ATTR}', but the identity does not possess this attribute nor is it being registered with this attribute"
                    ));
                }
            }
            continue;
        }
        if !list_contains(callers, "*") {
            is_subset_of(&req.value, callers).map_err(|e| {
                format!("The requested values for attribute '{name}' is a superset of the caller's attribute value: {e}")
            })?;
        }
        if name == DELEGATE_ROLES {
            let roles = value_of(requested, ROLES)
                .filter(|r| !r.is_empty())
                .or_else(|| target.and_then(|t| t.attr(ROLES)))
                .unwrap_or("");
            if !list_contains(roles, "*") && is_subset_of(&req.value, roles).is_err() {
                return Err("The delegateRoles field is a superset of roles".into());
            }
        }
    }
    Ok(())
}

/// An attribute request of enroll (`attr_reqs`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct AttrReq {
    pub name: String,
    #[serde(default)]
    pub optional: bool,
}

/// The JSON value of the attribute extension: with no `attr_reqs`, every attribute registered
/// with `ecert: true`; otherwise the requested ones, failing on a missing non-optional one.
/// `None` when there is nothing to put in the certificate.
pub fn attribute_extension(
    identity: &IdentityRecord,
    reqs: Option<&[AttrReq]>,
) -> Result<Option<Vec<u8>>, CaError> {
    let mut out = BTreeMap::new();
    match reqs {
        None => {
            for a in identity.attrs.iter().filter(|a| a.ecert) {
                out.insert(a.name.clone(), a.value.clone());
            }
        }
        Some(reqs) => {
            for r in reqs {
                match identity.attr(&r.name) {
                    Some(v) => {
                        out.insert(r.name.clone(), v.to_string());
                    }
                    None if r.optional => {}
                    None => {
                        return Err(CaError::bad_request(
                            ErrorCode::AttrExt,
                            format!(
                                "Failed to find requested attributes: attribute '{}' was requested but the identity '{}' does not have it",
                                r.name, identity.id
                            ),
                        ));
                    }
                }
            }
        }
    }
    if out.is_empty() {
        return Ok(None);
    }
    serde_json::to_vec(&serde_json::json!({ "attrs": out }))
        .map(Some)
        .map_err(|e| CaError::Internal(e.to_string()))
}

const PBKDF2_ITERATIONS: u32 = 10_000;

/// Hashes a secret for storage (salted PBKDF2-HMAC-SHA256; Fabric CA uses bcrypt).
pub fn hash_secret(secret: &str) -> Result<String, CaError> {
    let mut salt = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| CaError::Internal("no randomness".into()))?;
    let mut out = [0u8; 32];
    pbkdf2::derive(
        pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(PBKDF2_ITERATIONS).unwrap_or(NonZeroU32::MIN),
        &salt,
        secret.as_bytes(),
        &mut out,
    );
    Ok(format!(
        "pbkdf2-sha256${PBKDF2_ITERATIONS}${}${}",
        hex::encode(salt),
        hex::encode(out)
    ))
}

/// Constant-time check of a secret against [`hash_secret`]'s output.
pub fn verify_secret(secret: &str, stored: &str) -> bool {
    let parts: Vec<&str> = stored.split('$').collect();
    let [scheme, iters, salt, hash] = parts.as_slice() else {
        return false;
    };
    if *scheme != "pbkdf2-sha256" {
        return false;
    }
    let (Some(iters), Ok(salt), Ok(hash)) = (
        iters.parse::<u32>().ok().and_then(NonZeroU32::new),
        hex::decode(salt),
        hex::decode(hash),
    ) else {
        return false;
    };
    pbkdf2::verify(
        pbkdf2::PBKDF2_HMAC_SHA256,
        iters,
        &salt,
        secret.as_bytes(),
        &hash,
    )
    .is_ok()
}

/// A random secret of 12 characters (`util.RandomString(12)`).
pub fn random_secret() -> Result<String, CaError> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut b = [0u8; 12];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| CaError::Internal("no randomness".into()))?;
    Ok(b.iter()
        .map(|x| ALPHABET[*x as usize % ALPHABET.len()] as char)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(attrs: &[(&str, &str)], aff: &str) -> IdentityRecord {
        IdentityRecord {
            id: "r".into(),
            secret_hash: String::new(),
            id_type: "client".into(),
            affiliation: aff.into(),
            attrs: attrs
                .iter()
                .map(|(n, v)| Attribute {
                    name: n.to_string(),
                    value: v.to_string(),
                    ecert: false,
                })
                .collect(),
            max_enrollments: -1,
            state: 0,
        }
    }

    fn attr(n: &str, v: &str) -> Attribute {
        Attribute {
            name: n.into(),
            value: v.into(),
            ecert: false,
        }
    }

    #[test]
    fn max_enrollments_table() {
        assert_eq!(max_enrollments(0, -1).unwrap(), -1);
        assert_eq!(max_enrollments(3, -1).unwrap(), 3);
        assert!(max_enrollments(1, 0).is_err());
        assert!(max_enrollments(-1, 5).is_err());
        assert_eq!(max_enrollments(0, 5).unwrap(), 5);
        assert_eq!(max_enrollments(4, 5).unwrap(), 4);
        assert!(max_enrollments(6, 5).is_err());
        assert!(max_enrollments(-2, -1).is_err());
        assert_eq!(effective_max(-1, 2), 2);
        assert_eq!(effective_max(5, 2), 2);
        assert_eq!(effective_max(1, 2), 1);
        assert_eq!(effective_max(-1, -1), -1);
    }

    #[test]
    fn roles_and_affiliations() {
        let r = ident(&[(ROLES, "peer,orderer")], "org1");
        assert!(can_act_on_type(&r, "orderer").is_ok());
        assert!(can_act_on_type(&r, "admin").is_err());
        assert!(can_act_on_type(&r, "").is_err()); // empty type is client
        assert!(contains_affiliation(&r, "org1.department1").is_ok());
        assert!(contains_affiliation(&r, "org10").is_err());
        assert!(contains_affiliation(&r, "").is_err());
    }

    #[test]
    fn attribute_rules() {
        let admin = ident(
            &[
                (ROLES, "*"),
                (REGISTRAR_ATTR, "*"),
                (REVOKER, "true"),
                (GEN_CRL, "false"),
            ],
            "",
        );
        assert!(can_register_attributes(&[attr("custom", "x")], None, &admin).is_ok());
        assert!(can_register_attributes(&[attr(REVOKER, "true")], None, &admin).is_ok());
        // Boolean the registrar holds as false, one it lacks, fixed and unknown hf.*.
        assert!(can_register_attributes(&[attr(GEN_CRL, "true")], None, &admin).is_err());
        assert!(can_register_attributes(&[attr(INTERMEDIATE_CA, "true")], None, &admin).is_err());
        assert!(can_register_attributes(&[attr(TYPE, "peer")], None, &admin).is_err());
        assert!(can_register_attributes(&[attr("hf.Unknown", "1")], None, &admin).is_err());
        // hf.Registrar.Attributes naming an hf.* attribute the new identity lacks.
        assert!(
            can_register_attributes(&[attr(REGISTRAR_ATTR, "hf.Revoker")], None, &admin).is_err()
        );
        assert!(
            can_register_attributes(
                &[attr(REGISTRAR_ATTR, "hf.Revoker"), attr(REVOKER, "true")],
                None,
                &admin
            )
            .is_ok()
        );
        let limited = ident(
            &[(ROLES, "peer"), (REGISTRAR_ATTR, "a.*, hf.Registrar.Roles")],
            "",
        );
        assert!(can_register_attributes(&[attr("a.b", "1")], None, &limited).is_ok());
        assert!(can_register_attributes(&[attr("b", "1")], None, &limited).is_err());
        assert!(can_register_attributes(&[attr(ROLES, "peer")], None, &limited).is_ok());
        assert!(can_register_attributes(&[attr(ROLES, "peer,client")], None, &limited).is_err());
        let none = ident(&[(ROLES, "*")], "");
        assert!(can_register_attributes(&[attr("x", "1")], None, &none).is_err());
    }

    #[test]
    fn delegate_roles_within_roles() {
        let admin = ident(
            &[(ROLES, "*"), (DELEGATE_ROLES, "*"), (REGISTRAR_ATTR, "*")],
            "",
        );
        assert!(
            can_register_attributes(
                &[attr(ROLES, "peer"), attr(DELEGATE_ROLES, "client")],
                None,
                &admin
            )
            .is_err()
        );
        assert!(
            can_register_attributes(
                &[attr(ROLES, "peer,client"), attr(DELEGATE_ROLES, "client")],
                None,
                &admin
            )
            .is_ok()
        );
    }

    #[test]
    fn secrets() {
        let h = hash_secret("adminpw").unwrap();
        assert!(verify_secret("adminpw", &h));
        assert!(!verify_secret("adminpW", &h));
        assert!(!verify_secret("adminpw", "garbage"));
        assert_eq!(random_secret().unwrap().len(), 12);
    }
}
