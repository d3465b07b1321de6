//! Errors and their mapping to Fabric CA's HTTP status codes and error codes
//! (`lib/caerrors/servererror.go`).

use thiserror::Error;

/// Fabric CA's numeric error codes that this server sends (a subset of `caerrors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ErrorCode {
    Unknown = 0,
    MethodNotAllowed = 1,
    NoAuthHdr = 2,
    ReadingReqBody = 3,
    EmptyReqBody = 4,
    BadReqBody = 5,
    RevCertNotFound = 8,
    CertWrongOwner = 9,
    RevokeIdNotFound = 10,
    MissingRevokeArgs = 15,
    GettingAffiliation = 16,
    CaNotFound = 19,
    AuthenticationFailure = 20,
    BadCsr = 31,
    InvalidRevokedAfter = 36,
    GenCrl = 41,
    GettingUser = 49,
    RemoveIdentity = 56,
    ModifyingIdentity = 58,
    UpdateConfigAddAff = 60,
    UpdateConfigRemoveAff = 61,
    UpdateConfigModifyAff = 64,
    CertAlreadyRevoked = 66,
    AuthorizationFailure = 71,
    PasswordAttempts = 73,
    DupIdentityReg = 74,
    CnInvalidEnroll = 77,
    InputValidCsr = 80,
    AttrExt = 81,
    InvalidMaxEnroll = 82,
}

/// A request failure as Fabric CA reports it.
///
/// Authentication and authorization failures carry a detailed reason that is only logged: the
/// client sees the generic code 20 ("Authentication failure", 401) or 71 ("Authorization failure",
/// 403), as Fabric CA's `NewAuthenticationErr`/`NewAuthorizationErr` do, so that a caller cannot
/// tell a wrong secret from an unknown identity.
#[derive(Debug, Error)]
pub enum CaError {
    #[error("authentication failure: {0}")]
    Authentication(String),
    #[error("authorization failure: {0}")]
    Authorization(#[from] crate::authz::AuthzError),
    #[error("{message}")]
    Http {
        status: u16,
        code: ErrorCode,
        message: String,
    },
    #[error("registry: {0}")]
    Registry(#[from] crate::registry::RegistryError),
    #[error("internal: {0}")]
    Internal(String),
}

impl CaError {
    pub fn http(status: u16, code: ErrorCode, message: impl Into<String>) -> Self {
        CaError::Http {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::http(400, code, message)
    }

    /// The HTTP status, code and message sent to the client.
    pub fn remote(&self) -> (u16, ErrorCode, String) {
        match self {
            CaError::Authentication(_) => (
                401,
                ErrorCode::AuthenticationFailure,
                "Authentication failure".into(),
            ),
            CaError::Authorization(_) => (
                403,
                ErrorCode::AuthorizationFailure,
                "Authorization failure".into(),
            ),
            CaError::Http {
                status,
                code,
                message,
            } => (*status, *code, message.clone()),
            // Storage and internal details stay in the log.
            CaError::Registry(_) | CaError::Internal(_) => {
                (500, ErrorCode::Unknown, "Internal server error".into())
            }
        }
    }
}
