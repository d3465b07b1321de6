use thiserror::Error;

/// Why an MSP could not be set up, an identity could not be deserialized or validated, or a
/// principal was not satisfied. Messages follow Fabric's wording where operators know it.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MspError {
    #[error("could not deserialize a SerializedIdentity: {0}")]
    BadSerializedIdentity(String),
    #[error("MSP {0} is unknown")]
    UnknownMsp(String),
    #[error("expected MSP ID {expected}, received {received}")]
    WrongMsp { expected: String, received: String },
    #[error("could not decode the PEM structure")]
    BadPem,
    #[error("parseCertificate failed: {0}")]
    BadCertificate(String),
    #[error("unsupported MSP type {0} (only FABRIC X.509 MSPs are supported)")]
    UnsupportedMspType(i32),
    #[error("invalid MSP configuration: {0}")]
    Setup(String),
    #[error("could not obtain certification chain: {0}")]
    NoChain(String),
    #[error("could not validate identity against certification chain: {0}")]
    Revoked(String),
    #[error("could not validate identity's OUs: {0}")]
    BadOus(String),
    #[error(
        "An X509 certificate with Basic Constraint: Certificate Authority equals true cannot be used as an identity"
    )]
    CaAsIdentity,
    #[error("identity expired (not after {not_after})")]
    Expired { not_after: i64 },
    #[error("principal not satisfied: {0}")]
    PrincipalNotSatisfied(String),
    #[error("invalid principal: {0}")]
    BadPrincipal(String),
    #[error("signature: {0}")]
    Signature(#[from] ordo_crypto::CryptoError),
    #[error("MSP folder {path}: {reason}")]
    Folder { path: String, reason: String },
}
