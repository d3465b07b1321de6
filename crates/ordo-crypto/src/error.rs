use thiserror::Error;

/// Why a cryptographic operation failed. Messages follow Fabric's wording where operators may
/// grep for it (e.g. the high-S rejection).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CryptoError {
    #[error("failed unmarshalling signature: {0}")]
    MalformedSignature(&'static str),
    #[error("invalid S: must be smaller than half the order [{0}]")]
    HighS(String),
    #[error("signature verification failed")]
    BadSignature,
    #[error("unsupported public key: {0}")]
    UnsupportedKey(String),
    #[error("invalid private key: {0}")]
    InvalidPrivateKey(String),
    #[error("invalid PEM: {0}")]
    Pem(String),
    #[error("invalid certificate: {0}")]
    Certificate(String),
    #[error("signing failed")]
    SigningFailed,
}
