//! Revocation: `revoke` (a certificate by serial and AKI, or every certificate of an identity)
//! and `gencrl`, with the CRL both can return.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::json;

use super::request::parse_rfc3339;
use super::{CaServer, Ctx, Ok200, ok};
use crate::authz;
use crate::ca::Ca;
use crate::error::{CaError, ErrorCode};
use crate::registry::CertFilter;
use crate::x509 as x;

const REVOCATION_REASONS: [&str; 11] = [
    "unspecified",
    "keycompromise",
    "cacompromise",
    "affiliationchanged",
    "superseded",
    "cessationofoperation",
    "certificatehold",
    "",
    "removefromcrl",
    "privilegewithdrawn",
    "aacompromise",
];

/// The body of `revoke` (Fabric CA's `api.RevocationRequest`): an identity (`id`), or one
/// certificate (`serial` and `aki`, which win when both are given).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RevocationRequest {
    id: String,
    serial: String,
    aki: String,
    /// One of RFC 5280's reason names; anything else is `unspecified`.
    reason: String,
    /// Return a CRL of what this request revoked.
    gencrl: bool,
}

/// The body of `gencrl` (Fabric CA's `api.GenCRLRequest`): RFC 3339 bounds, empty or Go's zero
/// time (`0001-01-01...`) meaning none.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GenCrlRequest {
    #[serde(rename = "revokedafter")]
    revoked_after: String,
    #[serde(rename = "revokedbefore")]
    revoked_before: String,
    #[serde(rename = "expireafter")]
    expire_after: String,
    #[serde(rename = "expirebefore")]
    expire_before: String,
}

impl CaServer {
    pub(super) fn revoke(&self, ctx: &Ctx, ca: &Ca) -> Result<Ok200, CaError> {
        let (caller, caller_serial, caller_aki) = self.token_auth(ctx, ca)?;
        let req: RevocationRequest = ctx.body()?;
        let name = req.id;
        let serial = x::normalize_hex(&req.serial);
        let aki = x::normalize_hex(&req.aki);
        let reason_name = req.reason.to_lowercase();
        let reason = REVOCATION_REASONS
            .iter()
            .position(|r| !r.is_empty() && *r == reason_name)
            .unwrap_or(0) as i64;
        let gencrl = req.gencrl;
        let now = x::now_secs() as i64;
        let mut revoked = Vec::new();
        if !serial.is_empty() && !aki.is_empty() {
            let cert = ca.registry.get_certificate(&serial, &aki)?.ok_or_else(|| {
                CaError::http(
                    404,
                    ErrorCode::RevCertNotFound,
                    format!("Certificate with serial {serial} and AKI {aki} was not found"),
                )
            })?;
            authz::can_revoke(&caller, &cert.id)?;
            if cert.status == "revoked" {
                return Err(CaError::http(
                    404,
                    ErrorCode::CertAlreadyRevoked,
                    format!("Certificate with serial {serial} and AKI {aki} was already revoked"),
                ));
            }
            if !name.is_empty() && name != cert.id {
                return Err(CaError::bad_request(
                    ErrorCode::CertWrongOwner,
                    format!(
                        "Certificate with serial {serial} and AKI {aki} is not owned by {name}"
                    ),
                ));
            }
            let owner = ca.registry.get_identity(&cert.id)?.ok_or_else(|| {
                CaError::http(
                    404,
                    ErrorCode::RevokeIdNotFound,
                    format!("Identity {} was not found", cert.id),
                )
            })?;
            if !(serial == caller_serial && aki == caller_aki) {
                authz::can_manage(&caller, &owner)?;
            }
            if !ca.registry.revoke_certificate(&serial, &aki, reason, now)? {
                return Err(CaError::http(
                    404,
                    ErrorCode::CertAlreadyRevoked,
                    format!("Certificate with serial {serial} and AKI {aki} was already revoked"),
                ));
            }
            revoked.push(json!({"Serial": serial, "AKI": aki}));
        } else if !name.is_empty() {
            authz::can_revoke(&caller, &name)?;
            let target = ca.registry.get_identity(&name)?.ok_or_else(|| {
                CaError::http(
                    404,
                    ErrorCode::RevokeIdNotFound,
                    format!("Identity {name} was not found"),
                )
            })?;
            if caller.id != target.id {
                authz::can_manage(&caller, &target)?;
            }
            for r in ca.registry.revoke_identity(&name, reason, now)? {
                revoked.push(json!({"Serial": r.serial, "AKI": r.aki}));
            }
        } else {
            return Err(CaError::bad_request(
                ErrorCode::MissingRevokeArgs,
                "Either Name or Serial and AKI are required for a revoke request",
            ));
        }
        tracing::info!(ca = ca.name(), caller = %caller.id, count = revoked.len(), "revoked");
        let mut crl = String::new();
        if gencrl && !revoked.is_empty() {
            crl = B64.encode(self.crl_pem(ca, None, Some(now), Some(now), None)?);
        }
        ok(200, json!({"RevokedCerts": revoked, "CRL": crl}))
    }

    fn crl_pem(
        &self,
        ca: &Ca,
        revoked_after: Option<i64>,
        revoked_before: Option<i64>,
        expire_after: Option<i64>,
        expire_before: Option<i64>,
    ) -> Result<String, CaError> {
        let revoked = ca.registry.list_certificates(&CertFilter {
            revoked_after: Some(revoked_after.unwrap_or(0)),
            revoked_before,
            expired_after: expire_after,
            expired_before: expire_before,
            ..CertFilter::default()
        })?;
        ca.crl(&revoked)
    }

    pub(super) fn gencrl(&self, ctx: &Ctx, ca: &Ca) -> Result<Ok200, CaError> {
        let (caller, _, _) = self.token_auth(ctx, ca)?;
        authz::can_gencrl(&caller)?;
        let req: GenCrlRequest = ctx.body()?;
        let time = |name: &str, s: &str| -> Result<Option<i64>, CaError> {
            if s.is_empty() || s.starts_with("0001-01-01") {
                return Ok(None);
            }
            parse_rfc3339(s).map(Some).ok_or_else(|| {
                CaError::bad_request(
                    ErrorCode::InvalidRevokedAfter,
                    format!("invalid time '{s}' in {name}"),
                )
            })
        };
        let now = x::now_secs() as i64;
        let revoked_after = time("revokedafter", &req.revoked_after)?;
        let revoked_before = time("revokedbefore", &req.revoked_before)?.unwrap_or(now);
        if revoked_after.is_some_and(|a| a > revoked_before) {
            return Err(CaError::bad_request(
                ErrorCode::InvalidRevokedAfter,
                "Revoked after timestamp is greater than revoked before timestamp",
            ));
        }
        // By default only unexpired certificates are listed, as Fabric CA does.
        let expire_after = time("expireafter", &req.expire_after)?.unwrap_or(now);
        let expire_before = time("expirebefore", &req.expire_before)?;
        let crl = self.crl_pem(
            ca,
            revoked_after,
            Some(revoked_before),
            Some(expire_after),
            expire_before,
        )?;
        ok(200, json!({"CRL": B64.encode(crl)}))
    }
}
