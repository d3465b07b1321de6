//! Who may do what: Fabric CA's authorization rules as pure functions over identities.
//!
//! Registration and management of identities (`CanActOnType`, `ContainsAffiliation`,
//! `CanManageUser`, `canRegister`), the attributes a registrar may give
//! (`CanRegisterRequestedAttributes`), and the `hf.*` gates of revoke, gencrl, certificate
//! listing, affiliation management and CA enrollment. Nothing here reads the registry or the
//! request: handlers look facts up and ask these functions, so every rule can be tested on its
//! own. A refusal is an [`AuthzError`]; the server sends it as Fabric CA's generic
//! "Authorization failure" (403, code 71) and only logs the reason.

use thiserror::Error;

use crate::attrs::{
    AFFILIATION, AFFILIATION_MGR, DELEGATE_ROLES, ENROLLMENT_ID, GEN_CRL, INTERMEDIATE_CA,
    REGISTRAR_ATTR, REVOKER, ROLES, TYPE, attribute_is_true, parse_bool,
};
use crate::registry::{Attribute, IdentityRecord};

const BOOLEAN_ATTRS: [&str; 4] = [REVOKER, INTERMEDIATE_CA, GEN_CRL, AFFILIATION_MGR];
const LIST_ATTRS: [&str; 3] = [ROLES, DELEGATE_ROLES, REGISTRAR_ATTR];
const FIXED_ATTRS: [&str; 3] = [ENROLLMENT_ID, TYPE, AFFILIATION];

/// Why a caller is refused. The texts follow Fabric CA's log messages.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthzError {
    #[error("identity '{caller}' may not act on type '{id_type}'")]
    TypeNotAllowed { caller: String, id_type: String },
    #[error("caller's affiliation '{caller_affiliation}' does not contain '{affiliation}'")]
    AffiliationOutside {
        caller_affiliation: String,
        affiliation: String,
    },
    #[error("affiliation '{0}' does not exist")]
    UnknownAffiliation(String),
    #[error("Registration of '{id}' failed: {reason}")]
    Registration { id: String, reason: Box<AuthzError> },
    #[error(
        "Registrar does not have any values for '{REGISTRAR_ATTR}' thus can't register any attributes"
    )]
    NoRegistrarAttributes,
    #[error("Attribute '{0}' is not part of caller's '{REGISTRAR_ATTR}' attribute list")]
    AttributeNotListed(String),
    #[error("Cannot register fixed value attribute '{0}'")]
    FixedAttribute(String),
    #[error(
        "Registering attribute '{0}' using a reserved prefix 'hf.', however this not a supported reserved attribute"
    )]
    UnsupportedReserved(String),
    #[error("Attribute '{0}' requires ownership but the caller does not own this attribute")]
    NotOwned(String),
    #[error(
        "Caller has a value of 'false' for boolean attribute '{0}', can't perform any actions on this attribute"
    )]
    OwnedAsFalse(String),
    #[error("Failed to get boolean value of '{0}'")]
    NotABoolean(String),
    #[error(
        "Requesting value of '{0}' for '{REGISTRAR_ATTR}', but the identity does not possess this attribute nor is it being registered with this attribute"
    )]
    RegistrarAttrNotPossessed(String),
    #[error(
        "The requested values for attribute '{name}' is a superset of the caller's attribute value: '{member}' is not a member of '{allowed}'"
    )]
    Superset {
        name: String,
        member: String,
        allowed: String,
    },
    #[error("The delegateRoles field is a superset of roles")]
    DelegateRolesSuperset,
    #[error("Caller is not a registrar")]
    NotRegistrar,
    #[error("Caller does not have authority to revoke")]
    NotRevoker,
    #[error("Caller needs hf.Registrar.Roles or hf.Revoker")]
    NoCertificateAccess,
    #[error("'{id}' does not have the '{attr}' attribute")]
    MissingAttribute { id: String, attr: &'static str },
    #[error("Enrolled failed: '{0}' lacks hf.IntermediateCA")]
    NotIntermediateCa(String),
    #[error("Affiliation removal is disabled")]
    AffiliationRemovalDisabled,
    #[error(
        "Can't remove affiliation '{0}' because the caller is associated with this affiliation"
    )]
    OwnAffiliation(String),
    #[error("Modifying affiliation affects identities, but caller is not a registrar")]
    RenameNeedsRegistrar,
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

/// `aff` is `root` or below it; the root affiliation (empty) holds everything.
pub fn in_subtree(root: &str, aff: &str) -> bool {
    root.is_empty()
        || aff == root
        || aff
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// True when the caller has `hf.Registrar.Roles` (any value): Fabric CA's test for "is a
/// registrar".
fn has_roles(caller: &IdentityRecord) -> bool {
    !caller.attr(ROLES).unwrap_or("").is_empty()
}

/// `CanActOnType`: the caller's `hf.Registrar.Roles` contains the type or `*`; an empty type
/// is `client`.
pub fn can_act_on_type(caller: &IdentityRecord, id_type: &str) -> Result<(), AuthzError> {
    let t = if id_type.is_empty() {
        "client"
    } else {
        id_type
    };
    let roles = caller.attr(ROLES).unwrap_or("");
    if list_contains(roles, "*") || list(roles).iter().any(|r| r.eq_ignore_ascii_case(t)) {
        Ok(())
    } else {
        Err(AuthzError::TypeNotAllowed {
            caller: caller.id.clone(),
            id_type: t.to_string(),
        })
    }
}

/// `ContainsAffiliation`: `aff` is the caller's affiliation or below it.
pub fn contains_affiliation(caller: &IdentityRecord, aff: &str) -> Result<(), AuthzError> {
    if in_subtree(&caller.affiliation, aff) {
        Ok(())
    } else {
        Err(AuthzError::AffiliationOutside {
            caller_affiliation: caller.affiliation.clone(),
            affiliation: aff.to_string(),
        })
    }
}

/// `CanManageUser`: the caller may act on the target's type, within the caller's affiliation.
/// This decides reading, modifying, removing and revoking other identities, and which ones a
/// listing shows.
pub fn can_manage(caller: &IdentityRecord, target: &IdentityRecord) -> Result<(), AuthzError> {
    can_act_on_type(caller, &target.id_type)?;
    contains_affiliation(caller, &target.affiliation)
}

/// `canRegister`: the registrar may create an identity of `id_type` in `affiliation`
/// (`exists`: whether that affiliation is known; the root affiliation always is).
pub fn can_register(
    registrar: &IdentityRecord,
    id: &str,
    id_type: &str,
    affiliation: &str,
    exists: bool,
) -> Result<(), AuthzError> {
    can_act_on_type(registrar, id_type)
        .and_then(|()| contains_affiliation(registrar, affiliation))
        .and_then(|()| {
            if affiliation.is_empty() || exists {
                Ok(())
            } else {
                Err(AuthzError::UnknownAffiliation(affiliation.to_string()))
            }
        })
        .map_err(|reason| AuthzError::Registration {
            id: id.to_string(),
            reason: Box::new(reason),
        })
}

fn can_register_attr_name(name: &str, registrar_list: &[&str]) -> Result<(), AuthzError> {
    for r in registrar_list {
        if let Some(prefix) = r.strip_suffix('*') {
            if name.starts_with(prefix.trim_end_matches('*')) {
                return Ok(());
            }
        } else if name == *r {
            return Ok(());
        }
    }
    Err(AuthzError::AttributeNotListed(name.to_string()))
}

/// The first member of the comma list `small` that is not in `big`, compared in lower case
/// and untrimmed (`util.IsSubsetOf`).
fn first_outside<'a>(small: &'a str, big: &str) -> Option<&'a str> {
    let bigset: Vec<String> = big.split(',').map(str::to_lowercase).collect();
    small
        .split(',')
        .filter(|s| !s.is_empty())
        .find(|s| !bigset.contains(&s.to_lowercase()))
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
) -> Result<(), AuthzError> {
    if requested.is_empty() {
        return Ok(());
    }
    let registrar_attrs = registrar.attr(REGISTRAR_ATTR).unwrap_or("");
    if registrar_attrs.is_empty() {
        return Err(AuthzError::NoRegistrarAttributes);
    }
    let registrar_list = list(registrar_attrs);
    for req in requested {
        let name = req.name.as_str();
        can_register_attr_name(name, &registrar_list)?;
        if FIXED_ATTRS.contains(&name) {
            return Err(AuthzError::FixedAttribute(name.to_string()));
        }
        let is_bool = BOOLEAN_ATTRS.contains(&name);
        let is_list = LIST_ATTRS.contains(&name);
        if !is_bool && !is_list {
            if name.starts_with("hf.") {
                return Err(AuthzError::UnsupportedReserved(name.to_string()));
            }
            continue;
        }
        // Reserved attributes require the registrar to own them: nobody hands out more
        // power than they hold.
        let callers = registrar
            .attr(name)
            .ok_or_else(|| AuthzError::NotOwned(name.to_string()))?;
        if is_bool {
            if parse_bool(callers) != Some(true) {
                return Err(AuthzError::OwnedAsFalse(name.to_string()));
            }
            if !req.value.is_empty() && parse_bool(&req.value).is_none() {
                return Err(AuthzError::NotABoolean(req.value.clone()));
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
                    return Err(AuthzError::RegistrarAttrNotPossessed(v.to_string()));
                }
            }
            continue;
        }
        if !list_contains(callers, "*")
            && let Some(member) = first_outside(&req.value, callers)
        {
            return Err(AuthzError::Superset {
                name: name.to_string(),
                member: member.to_string(),
                allowed: callers.to_string(),
            });
        }
        if name == DELEGATE_ROLES {
            // The roles the identity will have: requested now, or kept from before.
            let roles = value_of(requested, ROLES)
                .filter(|r| !r.is_empty())
                .or_else(|| target.and_then(|t| t.attr(ROLES)))
                .unwrap_or("");
            if !list_contains(roles, "*") && first_outside(&req.value, roles).is_some() {
                return Err(AuthzError::DelegateRolesSuperset);
            }
        }
    }
    Ok(())
}

/// Listing identities, and renaming an affiliation that identities belong to, are for
/// registrars (`hf.Registrar.Roles` set).
pub fn is_registrar(caller: &IdentityRecord) -> Result<(), AuthzError> {
    if has_roles(caller) {
        Ok(())
    } else {
        Err(AuthzError::NotRegistrar)
    }
}

/// Revoking `owner`'s certificates: one's own, or anyone's with `hf.Revoker`. (Whether the
/// caller may manage the owner is checked separately, with [`can_manage`].)
pub fn can_revoke(caller: &IdentityRecord, owner: &str) -> Result<(), AuthzError> {
    if caller.id == owner || attribute_is_true(caller, REVOKER) {
        Ok(())
    } else {
        Err(AuthzError::NotRevoker)
    }
}

fn require_true(caller: &IdentityRecord, attr: &'static str) -> Result<(), AuthzError> {
    if attribute_is_true(caller, attr) {
        Ok(())
    } else {
        Err(AuthzError::MissingAttribute {
            id: caller.id.clone(),
            attr,
        })
    }
}

/// Generating a CRL needs `hf.GenCRL`.
pub fn can_gencrl(caller: &IdentityRecord) -> Result<(), AuthzError> {
    require_true(caller, GEN_CRL)
}

/// Adding, removing and renaming affiliations needs `hf.AffiliationMgr`.
pub fn can_manage_affiliations(caller: &IdentityRecord) -> Result<(), AuthzError> {
    require_true(caller, AFFILIATION_MGR)
}

/// An enrollment for a CA certificate (the `ca` profile, or a CSR asking for `CA:TRUE`) needs
/// `hf.IntermediateCA`; any other enrollment is the identity's own business.
pub fn can_enroll(user: &IdentityRecord, wants_ca: bool) -> Result<(), AuthzError> {
    if wants_ca && !attribute_is_true(user, INTERMEDIATE_CA) {
        return Err(AuthzError::NotIntermediateCa(user.id.clone()));
    }
    Ok(())
}

/// Listing certificates is for registrars and revokers.
pub fn can_list_certificates(caller: &IdentityRecord) -> Result<(), AuthzError> {
    if has_roles(caller) || attribute_is_true(caller, REVOKER) {
        Ok(())
    } else {
        Err(AuthzError::NoCertificateAccess)
    }
}

/// Removing affiliation `name`: it must be within the caller's affiliation, and must not hold
/// the caller's own (a caller does not saw off the branch it sits on). Whether the server
/// allows removal at all and `hf.AffiliationMgr` are checked before.
pub fn can_remove_affiliation(caller: &IdentityRecord, name: &str) -> Result<(), AuthzError> {
    contains_affiliation(caller, name)?;
    if !caller.affiliation.is_empty() && in_subtree(name, &caller.affiliation) {
        return Err(AuthzError::OwnAffiliation(name.to_string()));
    }
    Ok(())
}

/// Renaming an affiliation that identities belong to changes those identities, so only a
/// registrar may.
pub fn can_rename_with_identities(caller: &IdentityRecord) -> Result<(), AuthzError> {
    if has_roles(caller) {
        Ok(())
    } else {
        Err(AuthzError::RenameNeedsRegistrar)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(id: &str, id_type: &str, aff: &str, attrs: &[(&str, &str)]) -> IdentityRecord {
        IdentityRecord {
            id: id.into(),
            secret_hash: String::new(),
            id_type: id_type.into(),
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

    fn registrar(attrs: &[(&str, &str)], aff: &str) -> IdentityRecord {
        ident("r", "client", aff, attrs)
    }

    fn attr(n: &str, v: &str) -> Attribute {
        Attribute {
            name: n.into(),
            value: v.into(),
            ecert: false,
        }
    }

    #[test]
    fn subtree_is_by_whole_components() {
        assert!(in_subtree("", "anything.at.all"));
        assert!(in_subtree("org1", "org1"));
        assert!(in_subtree("org1", "org1.department1"));
        assert!(!in_subtree("org1", "org10"));
        assert!(!in_subtree("org1", "org"));
        assert!(!in_subtree("org1", ""));
    }

    #[test]
    fn act_on_type_follows_registrar_roles() {
        let r = registrar(&[(ROLES, "peer, Orderer")], "");
        assert!(can_act_on_type(&r, "peer").is_ok());
        // Roles compare case-insensitively, items trimmed.
        assert!(can_act_on_type(&r, "orderer").is_ok());
        assert_eq!(
            can_act_on_type(&r, "admin"),
            Err(AuthzError::TypeNotAllowed {
                caller: "r".into(),
                id_type: "admin".into()
            })
        );
        // An empty type is `client`, which these roles lack.
        assert_eq!(
            can_act_on_type(&r, ""),
            Err(AuthzError::TypeNotAllowed {
                caller: "r".into(),
                id_type: "client".into()
            })
        );
        let star = registrar(&[(ROLES, "*")], "");
        assert!(can_act_on_type(&star, "anything").is_ok());
        let none = registrar(&[], "");
        assert!(can_act_on_type(&none, "client").is_err());
    }

    #[test]
    fn affiliation_scoping() {
        let r = registrar(&[(ROLES, "*")], "org1");
        assert!(contains_affiliation(&r, "org1").is_ok());
        assert!(contains_affiliation(&r, "org1.department1").is_ok());
        assert!(contains_affiliation(&r, "org10").is_err());
        assert!(contains_affiliation(&r, "org2").is_err());
        // A scoped registrar cannot reach the root.
        assert!(contains_affiliation(&r, "").is_err());
        let root = registrar(&[(ROLES, "*")], "");
        assert!(contains_affiliation(&root, "").is_ok());
        assert!(contains_affiliation(&root, "org2.x").is_ok());
    }

    #[test]
    fn manage_needs_type_and_affiliation() {
        let r = registrar(&[(ROLES, "peer")], "org1");
        assert!(can_manage(&r, &ident("p", "peer", "org1.department1", &[])).is_ok());
        assert!(matches!(
            can_manage(&r, &ident("c", "client", "org1", &[])),
            Err(AuthzError::TypeNotAllowed { .. })
        ));
        assert!(matches!(
            can_manage(&r, &ident("p", "peer", "org2", &[])),
            Err(AuthzError::AffiliationOutside { .. })
        ));
    }

    #[test]
    fn registration_checks_type_affiliation_and_existence() {
        let r = registrar(&[(ROLES, "peer,client")], "org1");
        assert!(can_register(&r, "p1", "peer", "org1.department1", true).is_ok());
        let e = can_register(&r, "o1", "orderer", "org1", true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Registration of 'o1' failed: identity 'r' may not act on type 'orderer'"
        );
        assert!(matches!(
            can_register(&r, "p2", "peer", "org2", true),
            Err(AuthzError::Registration { reason, .. })
                if matches!(*reason, AuthzError::AffiliationOutside { .. })
        ));
        assert!(matches!(
            can_register(&r, "p3", "peer", "org1.nosuch", false),
            Err(AuthzError::Registration { reason, .. })
                if *reason == AuthzError::UnknownAffiliation("org1.nosuch".into())
        ));
        // The root affiliation always exists, for a root registrar.
        let root = registrar(&[(ROLES, "*")], "");
        assert!(can_register(&root, "x", "client", "", false).is_ok());
    }

    #[test]
    fn attribute_rules() {
        let admin = registrar(
            &[
                (ROLES, "*"),
                (REGISTRAR_ATTR, "*"),
                (REVOKER, "true"),
                (GEN_CRL, "false"),
            ],
            "",
        );
        assert!(can_register_attributes(&[], None, &admin).is_ok());
        assert!(can_register_attributes(&[attr("custom", "x")], None, &admin).is_ok());
        assert!(can_register_attributes(&[attr(REVOKER, "true")], None, &admin).is_ok());
        assert_eq!(
            can_register_attributes(&[attr(REVOKER, "maybe")], None, &admin),
            Err(AuthzError::NotABoolean("maybe".into()))
        );
        // Boolean the registrar holds as false, one it lacks, fixed and unknown hf.*.
        assert_eq!(
            can_register_attributes(&[attr(GEN_CRL, "true")], None, &admin),
            Err(AuthzError::OwnedAsFalse(GEN_CRL.into()))
        );
        assert_eq!(
            can_register_attributes(&[attr(INTERMEDIATE_CA, "true")], None, &admin),
            Err(AuthzError::NotOwned(INTERMEDIATE_CA.into()))
        );
        assert_eq!(
            can_register_attributes(&[attr(TYPE, "peer")], None, &admin),
            Err(AuthzError::FixedAttribute(TYPE.into()))
        );
        assert_eq!(
            can_register_attributes(&[attr("hf.Unknown", "1")], None, &admin),
            Err(AuthzError::UnsupportedReserved("hf.Unknown".into()))
        );
        let none = registrar(&[(ROLES, "*")], "");
        assert_eq!(
            can_register_attributes(&[attr("x", "1")], None, &none),
            Err(AuthzError::NoRegistrarAttributes)
        );
    }

    #[test]
    fn registrar_attribute_list_and_prefixes() {
        let limited = registrar(
            &[(ROLES, "peer"), (REGISTRAR_ATTR, "a.*, hf.Registrar.Roles")],
            "",
        );
        assert!(can_register_attributes(&[attr("a.b", "1")], None, &limited).is_ok());
        assert_eq!(
            can_register_attributes(&[attr("b", "1")], None, &limited),
            Err(AuthzError::AttributeNotListed("b".into()))
        );
        // A list attribute only within the registrar's own values.
        assert!(can_register_attributes(&[attr(ROLES, "peer")], None, &limited).is_ok());
        assert_eq!(
            can_register_attributes(&[attr(ROLES, "peer,client")], None, &limited),
            Err(AuthzError::Superset {
                name: ROLES.into(),
                member: "client".into(),
                allowed: "peer".into()
            })
        );
        // An empty value of a list attribute asks for nothing.
        assert!(can_register_attributes(&[attr(ROLES, "")], None, &limited).is_ok());
    }

    #[test]
    fn registrar_attributes_naming_hf_attributes() {
        let admin = registrar(
            &[(ROLES, "*"), (REGISTRAR_ATTR, "*"), (REVOKER, "true")],
            "",
        );
        // hf.Registrar.Attributes naming an hf.* attribute the new identity lacks.
        assert_eq!(
            can_register_attributes(&[attr(REGISTRAR_ATTR, "hf.Revoker")], None, &admin),
            Err(AuthzError::RegistrarAttrNotPossessed(REVOKER.into()))
        );
        assert!(
            can_register_attributes(
                &[attr(REGISTRAR_ATTR, "hf.Revoker"), attr(REVOKER, "true")],
                None,
                &admin
            )
            .is_ok()
        );
        // When modifying, an attribute the identity already has counts.
        let target = ident("t", "client", "", &[(REVOKER, "true")]);
        assert!(
            can_register_attributes(&[attr(REGISTRAR_ATTR, "hf.Revoker")], Some(&target), &admin)
                .is_ok()
        );
        // Names outside the caller's own hf.Registrar.Attributes are refused.
        let narrow = registrar(
            &[(ROLES, "*"), (REGISTRAR_ATTR, "hf.Registrar.Attributes,x")],
            "",
        );
        assert_eq!(
            can_register_attributes(&[attr(REGISTRAR_ATTR, "y")], None, &narrow),
            Err(AuthzError::AttributeNotListed("y".into()))
        );
    }

    #[test]
    fn delegate_roles_within_roles() {
        let admin = registrar(
            &[(ROLES, "*"), (DELEGATE_ROLES, "*"), (REGISTRAR_ATTR, "*")],
            "",
        );
        assert_eq!(
            can_register_attributes(
                &[attr(ROLES, "peer"), attr(DELEGATE_ROLES, "client")],
                None,
                &admin
            ),
            Err(AuthzError::DelegateRolesSuperset)
        );
        assert!(
            can_register_attributes(
                &[attr(ROLES, "peer,client"), attr(DELEGATE_ROLES, "client")],
                None,
                &admin
            )
            .is_ok()
        );
        // Modifying: the target's existing roles bound the delegated ones.
        let target = ident("t", "client", "", &[(ROLES, "client")]);
        assert!(
            can_register_attributes(&[attr(DELEGATE_ROLES, "client")], Some(&target), &admin)
                .is_ok()
        );
        assert_eq!(
            can_register_attributes(&[attr(DELEGATE_ROLES, "peer")], Some(&target), &admin),
            Err(AuthzError::DelegateRolesSuperset)
        );
        // A registrar whose delegate roles are limited cannot delegate beyond them.
        let limited = registrar(
            &[
                (ROLES, "*"),
                (DELEGATE_ROLES, "client"),
                (REGISTRAR_ATTR, "*"),
            ],
            "",
        );
        assert!(matches!(
            can_register_attributes(
                &[attr(ROLES, "*"), attr(DELEGATE_ROLES, "peer")],
                None,
                &limited
            ),
            Err(AuthzError::Superset { .. })
        ));
    }

    #[test]
    fn registrar_gate() {
        assert!(is_registrar(&registrar(&[(ROLES, "client")], "")).is_ok());
        assert_eq!(
            is_registrar(&registrar(&[(ROLES, "")], "")),
            Err(AuthzError::NotRegistrar)
        );
        assert_eq!(
            is_registrar(&registrar(&[], "")),
            Err(AuthzError::NotRegistrar)
        );
    }

    #[test]
    fn revoke_own_or_with_revoker() {
        let plain = ident("me", "client", "", &[]);
        assert!(can_revoke(&plain, "me").is_ok());
        assert_eq!(can_revoke(&plain, "you"), Err(AuthzError::NotRevoker));
        let revoker = ident("rv", "client", "", &[(REVOKER, "true")]);
        assert!(can_revoke(&revoker, "you").is_ok());
        let not = ident("rv", "client", "", &[(REVOKER, "false")]);
        assert_eq!(can_revoke(&not, "you"), Err(AuthzError::NotRevoker));
    }

    #[test]
    fn gencrl_needs_hf_gencrl() {
        assert!(can_gencrl(&ident("a", "client", "", &[(GEN_CRL, "1")])).is_ok());
        for attrs in [&[][..], &[(GEN_CRL, "false")][..], &[(GEN_CRL, "yes")][..]] {
            assert_eq!(
                can_gencrl(&ident("a", "client", "", attrs)),
                Err(AuthzError::MissingAttribute {
                    id: "a".into(),
                    attr: GEN_CRL
                })
            );
        }
    }

    #[test]
    fn affiliation_management_needs_affiliation_mgr() {
        assert!(can_manage_affiliations(&registrar(&[(AFFILIATION_MGR, "true")], "")).is_ok());
        assert_eq!(
            can_manage_affiliations(&registrar(&[(ROLES, "*")], "")),
            Err(AuthzError::MissingAttribute {
                id: "r".into(),
                attr: AFFILIATION_MGR
            })
        );
    }

    #[test]
    fn ca_enrollment_needs_intermediate_ca() {
        let plain = ident("u", "client", "", &[]);
        assert!(can_enroll(&plain, false).is_ok());
        assert_eq!(
            can_enroll(&plain, true),
            Err(AuthzError::NotIntermediateCa("u".into()))
        );
        let ica = ident("u", "client", "", &[(INTERMEDIATE_CA, "true")]);
        assert!(can_enroll(&ica, true).is_ok());
    }

    #[test]
    fn certificates_for_registrars_and_revokers() {
        assert!(can_list_certificates(&registrar(&[(ROLES, "peer")], "")).is_ok());
        assert!(can_list_certificates(&registrar(&[(REVOKER, "true")], "")).is_ok());
        assert_eq!(
            can_list_certificates(&registrar(&[(GEN_CRL, "true")], "")),
            Err(AuthzError::NoCertificateAccess)
        );
    }

    #[test]
    fn removing_an_affiliation() {
        let scoped = registrar(&[(AFFILIATION_MGR, "true")], "org1.department1");
        // Its own affiliation and any above it are refused.
        assert_eq!(
            can_remove_affiliation(&scoped, "org1.department1"),
            Err(AuthzError::OwnAffiliation("org1.department1".into()))
        );
        assert!(matches!(
            can_remove_affiliation(&scoped, "org1"),
            Err(AuthzError::AffiliationOutside { .. })
        ));
        assert!(can_remove_affiliation(&scoped, "org1.department1.team").is_ok());
        // A root caller may remove anything but has no affiliation of its own to protect.
        let root = registrar(&[(AFFILIATION_MGR, "true")], "");
        assert!(can_remove_affiliation(&root, "org1").is_ok());
    }

    #[test]
    fn renaming_with_identities_needs_registrar() {
        assert!(can_rename_with_identities(&registrar(&[(ROLES, "*")], "")).is_ok());
        assert_eq!(
            can_rename_with_identities(&registrar(&[(AFFILIATION_MGR, "true")], "")),
            Err(AuthzError::RenameNeedsRegistrar)
        );
    }

    #[test]
    fn reasons_read_as_fabric_ca_logs_them() {
        assert_eq!(
            AuthzError::MissingAttribute {
                id: "a".into(),
                attr: GEN_CRL
            }
            .to_string(),
            "'a' does not have the 'hf.GenCRL' attribute"
        );
        assert_eq!(
            AuthzError::NoRegistrarAttributes.to_string(),
            "Registrar does not have any values for 'hf.Registrar.Attributes' thus can't register any attributes"
        );
    }
}
