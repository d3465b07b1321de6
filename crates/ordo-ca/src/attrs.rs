//! Identity attributes of Fabric CA: the reserved `hf.*` names (`lib/attr/attribute.go`) and
//! how their values read, max enrollments (`getMaxEnrollments`), the attribute extension's
//! contents, and secret hashing. Who may give which attribute is in [`crate::authz`].

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use ring::pbkdf2;
use ring::rand::SecureRandom;

use crate::error::{CaError, ErrorCode};
use crate::registry::IdentityRecord;

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
    fn secrets() {
        let h = hash_secret("adminpw").unwrap();
        assert!(verify_secret("adminpw", &h));
        assert!(!verify_secret("adminpW", &h));
        assert!(!verify_secret("adminpw", "garbage"));
        assert_eq!(random_secret().unwrap().len(), 12);
    }
}
