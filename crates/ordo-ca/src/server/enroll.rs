//! Enrollment: `cainfo`, `enroll` (Basic authentication, enrollment limits, failed-login
//! lockout) and `reenroll` (token authentication), and what both share: CSR checks and
//! certificate issuance with the attribute extension.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{CaServer, Ctx, Ok200, ok};
use crate::attrs::{self, AttrReq};
use crate::authz;
use crate::ca::{Ca, IssueRequest, csr_error};
use crate::error::{CaError, ErrorCode};
use crate::registry::{IdentityRecord, RegistryError};
use crate::x509 as x;

impl CaServer {
    pub(super) fn enroll(&self, ctx: &Ctx, ca: &Ca) -> Result<Ok200, CaError> {
        let h = ctx.auth_header()?;
        let (id, secret) = crate::auth::parse_basic(h).ok_or_else(|| {
            CaError::Authentication("No user/pass in authorization header".into())
        })?;
        let ca_max = ca.settings.max_enrollments;
        if ca_max == 0 {
            return Err(CaError::Authentication("Enroll is disabled".into()));
        }
        let user = ca
            .registry
            .get_identity(&id)?
            .ok_or_else(|| CaError::Authentication(format!("Failed to get user: {id}")))?;
        let allowed = ca.settings.password_attempts;
        if allowed > 0 {
            let attempts = ca.registry.failed_logins(&id)?;
            if attempts >= allowed {
                // Fabric CA sends this one with its own code, not the generic 20.
                return Err(CaError::http(
                    401,
                    ErrorCode::PasswordAttempts,
                    format!(
                        "Incorrect password entered {attempts} times, max incorrect password limit of {allowed} reached"
                    ),
                ));
            }
        }
        if !attrs::verify_secret(&secret, &user.secret_hash) {
            if allowed > 0 {
                ca.registry.record_login(&id, false)?;
            }
            return Err(CaError::Authentication(format!(
                "Login failure: password mismatch for {id}"
            )));
        }
        if allowed > 0 {
            ca.registry.record_login(&id, true)?;
        }
        if user.max_enrollments == 0 {
            return Err(CaError::Authentication(format!(
                "Zero is an invalid value for maximum enrollments on identity '{id}'"
            )));
        }
        if user.is_revoked() {
            return Err(CaError::Authentication(format!(
                "User {id} is revoked; access denied"
            )));
        }
        let max = attrs::effective_max(user.max_enrollments, ca_max);
        if max != -1 && user.state >= max {
            return Err(CaError::Authentication(format!(
                "The identity {id} has already enrolled {max} times, it has reached its maximum enrollment allowance"
            )));
        }
        handle_enroll(ctx, ca, &user, Some(max))
    }
}

pub(super) fn cainfo(ca: &Ca) -> Value {
    json!({
        "CAName": ca.name(),
        "CAChain": B64.encode(ca.chain_pem()),
        "IssuerPublicKey": "",
        "IssuerRevocationPublicKey": "",
        "Version": env!("CARGO_PKG_VERSION"),
    })
}

/// A CSR subject field longer than RFC 3280 allows.
#[derive(Debug, thiserror::Error)]
#[error("The {what} '{value}' exceeds the maximum character limit of {max}")]
struct FieldTooLong {
    what: &'static str,
    value: String,
    max: usize,
}

/// Maximum lengths of CSR subject fields (RFC 3280 upper bounds, `csrInputLengthCheck`).
fn csr_length_check(s: &x::Subject) -> Result<(), FieldTooLong> {
    let check = |what: &'static str, values: &[String], max: usize| -> Result<(), FieldTooLong> {
        match values.iter().find(|v| v.chars().count() > max) {
            Some(v) => Err(FieldTooLong {
                what,
                value: v.clone(),
                max,
            }),
            None => Ok(()),
        }
    };
    check("CN", std::slice::from_ref(&s.cn), 64)?;
    check("serial number", std::slice::from_ref(&s.serial_number), 64)?;
    check("organizational unit name", &s.ou, 64)?;
    check("organization name", &s.o, 64)?;
    check("country name", &s.c, 2)?;
    check("locality name", &s.l, 128)?;
    check("state name", &s.st, 128)?;
    Ok(())
}

/// The body of enroll and reenroll (Fabric CA's `api.EnrollmentRequestNet`; the fields this
/// server does not act on, such as `label` or `subject`, are ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EnrollmentRequest {
    /// The signing profile: empty (`default`), `tls` or `ca`.
    profile: String,
    /// The PEM CSR.
    certificate_request: String,
    /// SANs replacing the CSR's; absent keeps the CSR's.
    hosts: Option<Vec<String>>,
    /// Attributes to put in the certificate; absent means every `ecert` attribute.
    attr_reqs: Option<Vec<AttrReq>>,
}

/// The common part of enroll and reenroll (`handleEnroll`). `count` is the enrollment limit to
/// enforce (Basic-auth enroll), `None` for reenroll. Nothing is written unless a certificate is
/// issued.
pub(super) fn handle_enroll(
    ctx: &Ctx,
    ca: &Ca,
    user: &IdentityRecord,
    count: Option<i64>,
) -> Result<Ok200, CaError> {
    if ctx.body.is_empty() {
        return Err(CaError::bad_request(
            ErrorCode::EmptyReqBody,
            "Empty request body",
        ));
    }
    let req: EnrollmentRequest = ctx.body()?;
    let profile = ca.profile(&req.profile).ok_or_else(|| {
        CaError::bad_request(
            ErrorCode::BadReqBody,
            format!("Invalid profile: '{}'", req.profile),
        )
    })?;
    if req.certificate_request.is_empty() {
        return Err(CaError::bad_request(ErrorCode::BadCsr, "CSR Decode failed"));
    }
    let csr = x::parse_csr(&req.certificate_request).map_err(csr_error)?;
    if csr.subject.cn != user.id {
        return Err(CaError::http(
            403,
            ErrorCode::CnInvalidEnroll,
            "The CSR subject common name must equal the enrollment ID",
        ));
    }
    authz::can_enroll(user, profile.is_ca() || csr.is_ca)?;
    csr_length_check(&csr.subject).map_err(|e| {
        CaError::bad_request(
            ErrorCode::InputValidCsr,
            format!("CSR input validation failed: {e}"),
        )
    })?;
    let attrs_ext = attrs::attribute_extension(user, req.attr_reqs.as_deref())?;
    let issued = ca
        .issue(&IssueRequest {
            csr: &csr,
            enrollment_id: &user.id,
            id_type: &user.id_type,
            affiliation: &user.affiliation,
            hosts: req.hosts.as_deref(),
            attrs: attrs_ext,
            profile,
        })
        // What can fail here is encoding what the request supplied (a host that is not IA5,
        // a subject value DER refuses): the request's fault, not the server's.
        .map_err(|e| match e {
            CaError::Internal(m) => CaError::bad_request(ErrorCode::BadCsr, m),
            other => other,
        })?;
    match ca
        .registry
        .record_enrollment(&user.id, count, &issued.record)
    {
        Ok(()) => {}
        Err(e @ RegistryError::Exhausted { .. }) => {
            return Err(CaError::Authentication(e.to_string()));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(ca = ca.name(), id = %user.id, serial = %issued.record.serial, profile = %req.profile, "issued certificate");
    ok(
        201,
        json!({
            "Cert": B64.encode(&issued.pem),
            "ServerInfo": cainfo(ca),
        }),
    )
}
