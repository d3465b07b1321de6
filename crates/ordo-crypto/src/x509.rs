//! X.509 helpers shared by the MSP, the TLS layer and the CA: PEM blocks, public keys, and
//! Fabric's certificate sanitizing.

use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::CryptoError;
use crate::der::{TAG_BIT_STRING, TAG_SEQUENCE, read_tlv, write_tlv};
use crate::ecdsa::{Curve, PublicKey, is_low_s, to_low_s};

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const OID_ECDSA_SHA512: &str = "1.2.840.10045.4.3.4";

/// The DER of the first PEM block in `bytes`, whatever its label — what Fabric's `getCertFromPem`
/// does with a PEM blob (later blocks are ignored).
pub fn first_pem_der(bytes: &[u8]) -> Result<Vec<u8>, CryptoError> {
    pem::parse(bytes)
        .map(|p| p.into_contents())
        .map_err(|e| CryptoError::Pem(format!("could not decode pem bytes: {e}")))
}

/// Every PEM block in `bytes` as `(label, der)`.
pub fn pem_blocks(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, CryptoError> {
    pem::parse_many(bytes)
        .map(|v| {
            v.into_iter()
                .map(|p| (p.tag().to_string(), p.into_contents()))
                .collect()
        })
        .map_err(|e| CryptoError::Pem(e.to_string()))
}

/// Encodes DER as a PEM block with the given label (64-column lines, `\n` endings: what Go's
/// `pem.EncodeToMemory` writes, so that bytes we produce match Fabric's).
pub fn to_pem(label: &str, der: &[u8]) -> String {
    let p = pem::Pem::new(label, der.to_vec());
    pem::encode_config(
        &p,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// Parses a DER certificate, mapping the parser's error into ours.
pub fn parse_certificate(der: &[u8]) -> Result<X509Certificate<'_>, CryptoError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(CryptoError::Certificate(
            "trailing data after certificate".to_string(),
        )),
        Err(e) => Err(CryptoError::Certificate(e.to_string())),
    }
}

/// The ECDSA public key in a SubjectPublicKeyInfo.
pub fn public_key_from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<PublicKey, CryptoError> {
    if spki.algorithm.algorithm.to_id_string() != OID_EC_PUBLIC_KEY {
        return Err(CryptoError::UnsupportedKey(format!(
            "key algorithm {} is not ECDSA",
            spki.algorithm.algorithm.to_id_string()
        )));
    }
    let curve_oid = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string())
        .unwrap_or_default();
    let curve = match curve_oid.as_str() {
        OID_P256 => Curve::P256,
        OID_P384 => Curve::P384,
        other => return Err(CryptoError::UnsupportedKey(format!("curve {other:?}"))),
    };
    PublicKey::from_point(curve, &spki.subject_public_key.data)
}

/// The ECDSA public key of a DER certificate.
pub fn certificate_public_key(cert_der: &[u8]) -> Result<PublicKey, CryptoError> {
    let cert = parse_certificate(cert_der)?;
    public_key_from_spki(cert.public_key())
}

/// True when the certificate is signed with ECDSA (the only case Fabric sanitizes).
pub fn is_ecdsa_signed(cert: &X509Certificate<'_>) -> bool {
    matches!(
        cert.signature_algorithm.algorithm.to_id_string().as_str(),
        OID_ECDSA_SHA256 | OID_ECDSA_SHA384 | OID_ECDSA_SHA512
    )
}

/// Fabric's `sanitizeECDSASignedCert`: if the certificate's ECDSA signature is high-S with respect
/// to the issuer's curve, re-encode the certificate with the low-S twin of that signature (same
/// TBS, same algorithm). A certificate that is already low-S, or not ECDSA-signed, comes back
/// unchanged. MSPs compare and hash certificates only after this, so the two encodings of one
/// certificate count as one identity.
pub fn sanitize_certificate(cert_der: &[u8], issuer_curve: Curve) -> Result<Vec<u8>, CryptoError> {
    let cert = parse_certificate(cert_der)?;
    if !is_ecdsa_signed(&cert) {
        return Ok(cert_der.to_vec());
    }
    let bad = |m: &str| CryptoError::Certificate(m.to_string());
    let outer = read_tlv(cert_der).map_err(|_| bad("malformed certificate"))?;
    if outer.tag != TAG_SEQUENCE {
        return Err(bad("certificate is not a SEQUENCE"));
    }
    let tbs = read_tlv(outer.contents).map_err(|_| bad("malformed TBSCertificate"))?;
    let alg = read_tlv(tbs.rest).map_err(|_| bad("malformed signature algorithm"))?;
    let sig = read_tlv(alg.rest).map_err(|_| bad("malformed signature value"))?;
    if sig.tag != TAG_BIT_STRING || sig.contents.first() != Some(&0) {
        return Err(bad("signature value is not a whole-byte BIT STRING"));
    }
    let sig_der = &sig.contents[1..];
    let (_, s) = crate::der::parse_ecdsa_signature(sig_der)?;
    if is_low_s(issuer_curve, s) {
        return Ok(cert_der.to_vec());
    }
    let low = to_low_s(issuer_curve, sig_der)?;
    let mut bit_string = Vec::with_capacity(low.len() + 1);
    bit_string.push(0);
    bit_string.extend_from_slice(&low);
    let mut inner = Vec::with_capacity(outer.contents.len());
    inner.extend_from_slice(tbs.whole);
    inner.extend_from_slice(alg.whole);
    write_tlv(&mut inner, TAG_BIT_STRING, &bit_string);
    let mut out = Vec::with_capacity(inner.len() + 4);
    write_tlv(&mut out, TAG_SEQUENCE, &inner);
    Ok(out)
}

/// Verifies the signature of an X.509 structure (certificate or CRL) made by `issuer`: `tbs` is
/// the raw to-be-signed DER, `sig_alg` the signature algorithm OID in dotted form. Unlike
/// [`PublicKey::verify`], high-S is accepted here, as Go's `CheckSignature` accepts it: certificate
/// malleability is handled by sanitizing, not by refusing.
pub fn verify_signed_data(
    issuer: &PublicKey,
    sig_alg: &str,
    tbs: &[u8],
    signature: &[u8],
) -> Result<(), CryptoError> {
    use ring::signature as rs;
    let alg: &'static dyn rs::VerificationAlgorithm = match (sig_alg, issuer.curve()) {
        (OID_ECDSA_SHA256, Curve::P256) => &rs::ECDSA_P256_SHA256_ASN1,
        (OID_ECDSA_SHA384, Curve::P256) => &rs::ECDSA_P256_SHA384_ASN1,
        (OID_ECDSA_SHA256, Curve::P384) => &rs::ECDSA_P384_SHA256_ASN1,
        (OID_ECDSA_SHA384, Curve::P384) => &rs::ECDSA_P384_SHA384_ASN1,
        (other, curve) => {
            return Err(CryptoError::UnsupportedKey(format!(
                "signature algorithm {other} with a {curve:?} issuer key"
            )));
        }
    };
    rs::UnparsedPublicKey::new(alg, issuer.point())
        .verify(tbs, signature)
        .map_err(|_| CryptoError::BadSignature)
}

/// Splits a signed X.509 structure (`SEQUENCE { tbs, algorithm, BIT STRING signature }`, the
/// shape of certificates and CRLs) into the raw TBS DER and the signature bytes.
pub fn split_signed(der: &[u8]) -> Result<(&[u8], &[u8]), CryptoError> {
    let bad = |m: &str| CryptoError::Certificate(m.to_string());
    let outer = read_tlv(der).map_err(|_| bad("malformed signed structure"))?;
    if outer.tag != TAG_SEQUENCE {
        return Err(bad("signed structure is not a SEQUENCE"));
    }
    let tbs = read_tlv(outer.contents).map_err(|_| bad("malformed to-be-signed part"))?;
    let alg = read_tlv(tbs.rest).map_err(|_| bad("malformed signature algorithm"))?;
    let sig = read_tlv(alg.rest).map_err(|_| bad("malformed signature value"))?;
    match sig.contents.split_first() {
        Some((0, bits)) if sig.tag == TAG_BIT_STRING => Ok((tbs.whole, bits)),
        _ => Err(bad("signature value is not a whole-byte BIT STRING")),
    }
}
