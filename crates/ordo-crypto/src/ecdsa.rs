//! ECDSA as Fabric's `bccsp/sw` does it: SHA-256 of the message, DER `(r, s)`, low-S on sign,
//! high-S rejected on verify.

use std::fmt;

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, UnparsedPublicKey};

use crate::CryptoError;
use crate::der::{encode_ecdsa_signature, parse_ecdsa_signature};

/// The curves Fabric's MSP accepts for ECDSA keys. Signing is only ever done with P-256 (every key
/// Fabric's tools make is P-256); P-384 keys can still appear in certificates we must verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    P256,
    P384,
}

const P256_ORDER: [u8; 32] =
    hex32("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
const P384_ORDER: [u8; 48] = hex48(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
);

const fn hex_nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => panic!("bad hex digit in constant"),
    }
}

const fn hex32(s: &str) -> [u8; 32] {
    let b = s.as_bytes();
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = hex_nibble(b[2 * i]) << 4 | hex_nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

const fn hex48(s: &str) -> [u8; 48] {
    let b = s.as_bytes();
    let mut out = [0u8; 48];
    let mut i = 0;
    while i < 48 {
        out[i] = hex_nibble(b[2 * i]) << 4 | hex_nibble(b[2 * i + 1]);
        i += 1;
    }
    out
}

impl Curve {
    fn order(self) -> &'static [u8] {
        match self {
            Curve::P256 => &P256_ORDER,
            Curve::P384 => &P384_ORDER,
        }
    }

    /// Size in bytes of a scalar (and of each coordinate).
    pub fn scalar_len(self) -> usize {
        self.order().len()
    }
}

/// Compares two big-endian unsigned integers of any length.
fn cmp_be(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let a = &a[a.iter().position(|&x| x != 0).unwrap_or(a.len())..];
    let b = &b[b.iter().position(|&x| x != 0).unwrap_or(b.len())..];
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// `n >> 1` for the curve order `n`, the largest S Fabric accepts.
fn half_order(curve: Curve) -> Vec<u8> {
    let n = curve.order();
    let mut out = vec![0u8; n.len()];
    let mut carry = 0u8;
    for (o, &b) in out.iter_mut().zip(n) {
        *o = (b >> 1) | (carry << 7);
        carry = b & 1;
    }
    out
}

/// True when `s <= n/2` (Fabric's `IsLowS`).
pub fn is_low_s(curve: Curve, s: &[u8]) -> bool {
    cmp_be(s, &half_order(curve)) != std::cmp::Ordering::Greater
}

/// Rewrites a DER ECDSA signature so that `s <= n/2` (replacing `s` by `n - s`), which is the same
/// signature mathematically. Signatures already low-S come back re-encoded canonically.
pub fn to_low_s(curve: Curve, der: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let (r, s) = parse_ecdsa_signature(der)?;
    if is_low_s(curve, s) {
        return Ok(encode_ecdsa_signature(r, s));
    }
    let n = curve.order();
    if cmp_be(s, n) != std::cmp::Ordering::Less {
        return Err(CryptoError::MalformedSignature(
            "S is not below the curve order",
        ));
    }
    // n - s, big-endian, with s right-aligned to n's width.
    let mut s_padded = vec![0u8; n.len()];
    s_padded[n.len() - s.len()..].copy_from_slice(s);
    let mut out = vec![0u8; n.len()];
    let mut borrow = 0i16;
    for i in (0..n.len()).rev() {
        let mut d = n[i] as i16 - s_padded[i] as i16 - borrow;
        borrow = if d < 0 {
            d += 256;
            1
        } else {
            0
        };
        out[i] = d as u8;
    }
    Ok(encode_ecdsa_signature(r, &out))
}

/// An ECDSA public key (uncompressed SEC1 point) on a curve Fabric accepts.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey {
    curve: Curve,
    point: Vec<u8>,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PublicKey({:?}, {})",
            self.curve,
            hex::encode(&self.point)
        )
    }
}

impl PublicKey {
    /// A key from an uncompressed SEC1 point (`04 ‖ x ‖ y`).
    pub fn from_point(curve: Curve, point: &[u8]) -> Result<Self, CryptoError> {
        if point.len() != 1 + 2 * curve.scalar_len() || point[0] != 0x04 {
            return Err(CryptoError::UnsupportedKey(
                "expected an uncompressed EC point".to_string(),
            ));
        }
        Ok(PublicKey {
            curve,
            point: point.to_vec(),
        })
    }

    pub fn curve(&self) -> Curve {
        self.curve
    }

    /// The uncompressed point; two certificates carry "the same key" when these are equal.
    pub fn point(&self) -> &[u8] {
        &self.point
    }

    /// Verifies a DER signature over SHA-256(`msg`) as Fabric's `verifyECDSA`: a malformed
    /// signature and a high-S signature are errors, a wrong signature is
    /// [`CryptoError::BadSignature`].
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        let (r, s) = parse_ecdsa_signature(sig)?;
        if !is_low_s(self.curve, s) {
            return Err(CryptoError::HighS(hex::encode(s)));
        }
        let len = self.curve.scalar_len();
        if r.len() > len || s.len() > len {
            return Err(CryptoError::BadSignature);
        }
        let ok = match self.curve {
            Curve::P256 => {
                // Fixed-width r ‖ s on the stack: no allocation on the hot path.
                let mut fixed = [0u8; 64];
                fixed[32 - r.len()..32].copy_from_slice(r);
                fixed[64 - s.len()..].copy_from_slice(s);
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &self.point)
                    .verify(msg, &fixed)
                    .is_ok()
            }
            Curve::P384 => {
                // Fabric hashes with the MSP's hash family (SHA-256) whatever the curve.
                let der = encode_ecdsa_signature(r, s);
                UnparsedPublicKey::new(&signature::ECDSA_P384_SHA256_ASN1, &self.point)
                    .verify(msg, &der)
                    .is_ok()
            }
        };
        if ok {
            Ok(())
        } else {
            Err(CryptoError::BadSignature)
        }
    }
}

/// A P-256 private key that signs as Fabric does (SHA-256, DER, low-S).
pub struct SigningKey {
    pair: EcdsaKeyPair,
    public: PublicKey,
    rng: SystemRandom,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({:?})", self.public)
    }
}

impl SigningKey {
    /// Reads a PEM private key: `PRIVATE KEY` (PKCS#8, what cryptogen and Fabric CA write) or
    /// `EC PRIVATE KEY` (SEC1).
    pub fn from_pem(pem_bytes: &[u8]) -> Result<Self, CryptoError> {
        let block = pem::parse(pem_bytes).map_err(|e| CryptoError::Pem(e.to_string()))?;
        let secret = match block.tag() {
            "PRIVATE KEY" => {
                use p256::pkcs8::DecodePrivateKey;
                p256::SecretKey::from_pkcs8_der(block.contents())
                    .map_err(|e| CryptoError::InvalidPrivateKey(e.to_string()))?
            }
            "EC PRIVATE KEY" => p256::SecretKey::from_sec1_der(block.contents())
                .map_err(|e| CryptoError::InvalidPrivateKey(e.to_string()))?,
            other => {
                return Err(CryptoError::InvalidPrivateKey(format!(
                    "unsupported PEM block {other:?} (want PRIVATE KEY or EC PRIVATE KEY)"
                )));
            }
        };
        Self::from_secret(&secret)
    }

    /// A fresh random key (tests, `ordo config` fixtures, the CA).
    pub fn generate() -> Result<Self, CryptoError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| CryptoError::SigningFailed)?;
        Self::from_pkcs8_der(pkcs8.as_ref())
    }

    /// From a PKCS#8 DER document.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, CryptoError> {
        use p256::pkcs8::DecodePrivateKey;
        let secret = p256::SecretKey::from_pkcs8_der(der)
            .map_err(|e| CryptoError::InvalidPrivateKey(e.to_string()))?;
        Self::from_secret(&secret)
    }

    fn from_secret(secret: &p256::SecretKey) -> Result<Self, CryptoError> {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let point = secret.public_key().to_encoded_point(false);
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_private_key_and_public_key(
            &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &secret.to_bytes()[..],
            point.as_bytes(),
            &rng,
        )
        .map_err(|e| CryptoError::InvalidPrivateKey(e.to_string()))?;
        let public = PublicKey::from_point(Curve::P256, point.as_bytes())?;
        Ok(SigningKey { pair, public, rng })
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs SHA-256(`msg`); the DER signature is always low-S.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let sig = self
            .pair
            .sign(&self.rng, msg)
            .map_err(|_| CryptoError::SigningFailed)?;
        to_low_s(Curve::P256, sig.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_order_is_n_shifted() {
        let h = half_order(Curve::P256);
        assert_eq!(
            hex::encode(h),
            "7fffffff800000007fffffffffffffffde737d56d38bcf4279dce5617e3192a8"
        );
    }

    #[test]
    fn signs_low_s_and_verifies() {
        let key = SigningKey::generate().unwrap();
        for i in 0..64u32 {
            let msg = i.to_be_bytes();
            let sig = key.sign(&msg).unwrap();
            let (_, s) = parse_ecdsa_signature(&sig).unwrap();
            assert!(is_low_s(Curve::P256, s));
            key.public_key().verify(&msg, &sig).unwrap();
            assert_eq!(
                key.public_key().verify(b"other", &sig),
                Err(CryptoError::BadSignature)
            );
        }
    }

    #[test]
    fn rejects_the_high_s_twin_of_a_valid_signature() {
        let key = SigningKey::generate().unwrap();
        let sig = key.sign(b"m").unwrap();
        let (r, s) = parse_ecdsa_signature(&sig).unwrap();
        // n - s is the high-S twin: valid ECDSA, refused by Fabric.
        let n = Curve::P256.order();
        let mut s_pad = [0u8; 32];
        s_pad[32 - s.len()..].copy_from_slice(s);
        let mut high = [0u8; 32];
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let mut d = n[i] as i16 - s_pad[i] as i16 - borrow;
            borrow = i16::from(d < 0);
            if d < 0 {
                d += 256;
            }
            high[i] = d as u8;
        }
        let high_sig = encode_ecdsa_signature(r, &high);
        assert!(matches!(
            key.public_key().verify(b"m", &high_sig),
            Err(CryptoError::HighS(_))
        ));
        // ...and normalising it gives back the original signature.
        assert_eq!(to_low_s(Curve::P256, &high_sig).unwrap(), sig);
    }

    #[test]
    fn garbage_signatures_are_errors_not_panics() {
        let key = SigningKey::generate().unwrap();
        for bad in [&b""[..], b"\x30", b"\x30\x02\x02\x00", &[0xff; 80]] {
            assert!(key.public_key().verify(b"m", bad).is_err());
        }
    }

    #[test]
    fn loads_pkcs8_and_sec1_pem() {
        use p256::pkcs8::{EncodePrivateKey, LineEnding};
        let secret = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let pkcs8 = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
        let a = SigningKey::from_pem(pkcs8.as_bytes()).unwrap();
        let sec1 = secret.to_sec1_pem(LineEnding::LF).unwrap();
        let b = SigningKey::from_pem(sec1.as_bytes()).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        assert!(SigningKey::from_pem(b"-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n").is_err());
        assert!(SigningKey::from_pem(b"not pem").is_err());
    }
}
