//! Certificates: `GET certificates`, the certificates of the identities the caller may manage,
//! filtered by the query; `DELETE` is not implemented, as in Fabric CA.

use axum::http::Method;
use serde_json::{Value, json};

use super::request::parse_rfc3339;
use super::{CaServer, Ctx, Ok200, ok};
use crate::authz;
use crate::ca::Ca;
use crate::error::{CaError, ErrorCode};
use crate::registry::CertFilter;
use crate::x509 as x;

impl CaServer {
    pub(super) fn certificates(&self, ctx: &Ctx, ca: &Ca) -> Result<Ok200, CaError> {
        if ctx.method == Method::DELETE {
            return Err(CaError::http(501, ErrorCode::Unknown, "Not Implemented"));
        }
        let (caller, _, _) = self.token_auth(ctx, ca)?;
        authz::can_list_certificates(&caller)?;
        let q = |k: &str| ctx.query.get(k).filter(|v| !v.is_empty()).cloned();
        let time = |k: &str| -> Result<Option<i64>, CaError> {
            match q(k) {
                None => Ok(None),
                Some(s) => parse_rfc3339(&s).map(Some).ok_or_else(|| {
                    CaError::bad_request(
                        ErrorCode::BadReqBody,
                        format!("invalid time '{s}' in {k}"),
                    )
                }),
            }
        };
        let manageable: Vec<String> = ca
            .registry
            .list_identities()?
            .iter()
            .filter(|i| authz::can_manage(&caller, i).is_ok())
            .map(|i| i.id.clone())
            .collect();
        let filter = CertFilter {
            id: q("id"),
            serial: q("serial").map(|s| x::normalize_hex(&s)),
            aki: q("aki").map(|s| x::normalize_hex(&s)),
            not_revoked: ctx.bool_query("notrevoked")?,
            not_expired: ctx.bool_query("notexpired")?,
            revoked_after: time("revoked_start")?,
            revoked_before: time("revoked_end")?,
            expired_after: time("expired_start")?,
            expired_before: time("expired_end")?,
            ids: Some(manageable),
        };
        let certs: Vec<Value> = ca
            .registry
            .list_certificates(&filter)?
            .into_iter()
            .map(|c| json!({"PEM": c.pem}))
            .collect();
        ok(200, json!({"certs": certs, "caname": ca.name()}))
    }
}
