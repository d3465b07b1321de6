//! # ordo-crypto
//!
//! The cryptographic primitives Fabric's default provider (`bccsp/sw`) uses, with its exact rules:
//!
//! - SHA-256 ([`sha256`]);
//! - ECDSA signatures as DER `SEQUENCE { r INTEGER, s INTEGER }` over the SHA-256 of the message.
//!   [`SigningKey::sign`] always produces a **low-S** signature and [`PublicKey::verify`] **rejects
//!   high-S** signatures, as Fabric does to close ECDSA's malleability;
//! - private keys from PEM (PKCS#8 as cryptogen and Fabric CA write them, or SEC1);
//! - X.509 helpers: PEM blocks, the public key of a certificate, and Fabric's certificate
//!   "sanitizing" (re-encoding an ECDSA certificate signature in low-S form) that makes two encodings
//!   of one certificate compare equal.
//!
//! This crate owns no policy: it knows nothing of MSPs, channels or the network, and it never
//! touches the disk. Every function that takes bytes from outside returns a typed [`CryptoError`].

pub mod der;
mod ecdsa;
mod error;
mod hash;
pub mod x509;

pub use ecdsa::{Curve, PublicKey, SigningKey, is_low_s, to_low_s};
pub use error::CryptoError;
pub use hash::{Sha256Digest, random_nonce, sha256, sha256_concat};
