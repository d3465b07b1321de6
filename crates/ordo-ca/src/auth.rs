//! Fabric CA's two authentication schemes.
//!
//! - **Basic** (enroll): `Authorization: Basic b64(id:secret)`.
//! - **Token** (everything else): `Authorization: b64(certPEM) "." b64(sig)`, where `sig` is a
//!   DER ECDSA signature over SHA-256 of `METHOD "." b64(RequestURI) "." b64(body) "."
//!   b64(certPEM)` (`util.CreateToken` / `util.VerifyToken`). High-S signatures are rejected, as
//!   Fabric's BCCSP does. In v1.3 compatibility mode a signature over `b64(body) "."
//!   b64(certPEM)` is also accepted.
//!
//! The checks that need the CA (issuer, expiry, revocation) are in the server.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ordo_crypto::{CryptoError, SigningKey};
use thiserror::Error;

/// Why a token is refused. The server answers every one with the generic authentication
/// failure and only logs this.
#[derive(Debug, Error)]
pub enum TokenError {
    #[error("invalid token format: expected 2 parts, found {0}")]
    Format(usize),
    #[error("token certificate is not base64: {0}")]
    CertBase64(base64::DecodeError),
    #[error("token signature is not base64: {0}")]
    SigBase64(base64::DecodeError),
    #[error("token certificate: {0}")]
    Cert(CryptoError),
    #[error("token certificate key: {0}")]
    Key(CryptoError),
    #[error("token signature: {0}")]
    Signature(CryptoError),
}

/// The (id, secret) of a Basic authorization header.
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = B64.decode(rest.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

pub fn basic_header(id: &str, secret: &str) -> String {
    format!("Basic {}", B64.encode(format!("{id}:{secret}")))
}

/// The message a token signs.
fn token_message(method: &str, uri: &str, body: &[u8], b64_cert: &str) -> String {
    format!(
        "{method}.{}.{}.{b64_cert}",
        B64.encode(uri.as_bytes()),
        B64.encode(body)
    )
}

/// Builds a token as Fabric CA clients do (`CreateToken`).
pub fn create_token(
    cert_pem: &str,
    key: &SigningKey,
    method: &str,
    uri: &str,
    body: &[u8],
) -> Result<String, ordo_crypto::CryptoError> {
    let b64_cert = B64.encode(cert_pem.as_bytes());
    let sig = key.sign(token_message(method, uri, body, &b64_cert).as_bytes())?;
    Ok(format!("{b64_cert}.{}", B64.encode(sig)))
}

/// Verifies a token's signature and returns the DER certificate it carries. The caller then
/// checks that this CA issued it, that it is valid now and not revoked.
pub fn verify_token(
    token: &str,
    method: &str,
    uri: &str,
    body: &[u8],
    compat_v1_3: bool,
) -> Result<Vec<u8>, TokenError> {
    let parts: Vec<&str> = token.trim().split('.').collect();
    let [b64_cert, b64_sig] = parts.as_slice() else {
        return Err(TokenError::Format(parts.len()));
    };
    let cert_pem = B64.decode(b64_cert).map_err(TokenError::CertBase64)?;
    let sig = B64.decode(b64_sig).map_err(TokenError::SigBase64)?;
    let der = ordo_crypto::x509::first_pem_der(&cert_pem).map_err(TokenError::Cert)?;
    let key = ordo_crypto::x509::certificate_public_key(&der).map_err(TokenError::Key)?;
    let full = token_message(method, uri, body, b64_cert);
    match key.verify(full.as_bytes(), &sig) {
        Ok(()) => Ok(der),
        Err(e) => {
            if compat_v1_3 {
                let legacy = format!("{}.{b64_cert}", B64.encode(body));
                if key.verify(legacy.as_bytes(), &sig).is_ok() {
                    return Ok(der);
                }
            }
            Err(TokenError::Signature(e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_round_trip() {
        let h = basic_header("admin", "a:b");
        assert_eq!(
            parse_basic(&h),
            Some(("admin".to_string(), "a:b".to_string()))
        );
        assert_eq!(parse_basic("Bearer x"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
    }
}
