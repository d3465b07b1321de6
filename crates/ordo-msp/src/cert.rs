//! A certificate parsed once into the facts the MSP needs, so validation never re-parses DER.

use ordo_crypto::{Curve, PublicKey, x509 as cx};
use x509_parser::extensions::ParsedExtension;

use crate::MspError;

const OID_EKU_SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
const OID_EKU_ANY: &str = "2.5.29.37.0";
const OID_EKU_CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";
// Go treats the legacy server-gated-crypto usages as implying server authentication.
const OID_EKU_NETSCAPE_SGC: &str = "2.16.840.1.113730.4.1";
const OID_EKU_MICROSOFT_SGC: &str = "1.3.6.1.4.1.311.10.3.3";

/// An X.509 certificate as the MSP sees it. `der` is the certificate's bytes (after sanitizing, for
/// certificates that went through an MSP); two certificates are "the same" when their `der` is.
#[derive(Clone)]
pub struct Cert {
    der: Vec<u8>,
    pub(crate) subject_raw: Vec<u8>,
    pub(crate) issuer_raw: Vec<u8>,
    /// X.509 version as encoded (0 = v1, 2 = v3).
    pub(crate) version: u32,
    /// `Some(is_ca)` when the BasicConstraints extension is present.
    pub(crate) basic_constraints: Option<bool>,
    /// Path-length constraint, when BasicConstraints sets one.
    pub(crate) max_path_len: Option<u32>,
    /// `Some(can_sign_certs)` when the KeyUsage extension is present.
    pub(crate) key_cert_sign: Option<bool>,
    /// The extended key usages, `None` when the extension is absent.
    pub(crate) ext_key_usage: Option<Vec<String>>,
    pub(crate) ski: Option<Vec<u8>>,
    pub(crate) aki: Option<Vec<u8>>,
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
    pub(crate) ous: Vec<String>,
    pub(crate) common_name: String,
    /// Serial number as a big-endian magnitude without leading zeros.
    pub(crate) serial: Vec<u8>,
    pub(crate) public_key: PublicKey,
    pub(crate) sig_alg: String,
    pub(crate) tbs: Vec<u8>,
    pub(crate) signature: Vec<u8>,
}

impl std::fmt::Debug for Cert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Cert(CN={:?}, serial={})",
            self.common_name,
            hex::encode(&self.serial)
        )
    }
}

fn bad(e: impl std::fmt::Display) -> MspError {
    MspError::BadCertificate(e.to_string())
}

pub(crate) fn strip_zeros(b: &[u8]) -> Vec<u8> {
    b[b.iter().position(|&x| x != 0).unwrap_or(b.len())..].to_vec()
}

impl Cert {
    /// Parses a DER certificate. Only ECDSA public keys are accepted (Fabric's tools make nothing
    /// else; RSA identities are refused as "public key type not recognized").
    pub fn from_der(der: &[u8]) -> Result<Self, MspError> {
        let cert = cx::parse_certificate(der).map_err(bad)?;
        let tbs = &cert.tbs_certificate;
        let mut c = Cert {
            der: der.to_vec(),
            subject_raw: tbs.subject.as_raw().to_vec(),
            issuer_raw: tbs.issuer.as_raw().to_vec(),
            version: tbs.version.0,
            basic_constraints: None,
            max_path_len: None,
            key_cert_sign: None,
            ext_key_usage: None,
            ski: None,
            aki: None,
            not_before: tbs.validity.not_before.timestamp(),
            not_after: tbs.validity.not_after.timestamp(),
            ous: tbs
                .subject
                .iter_organizational_unit()
                .map(|a| a.as_str().map(str::to_string).map_err(bad))
                .collect::<Result<_, _>>()?,
            common_name: tbs
                .subject
                .iter_common_name()
                .next()
                .and_then(|a| a.as_str().ok())
                .unwrap_or_default()
                .to_string(),
            serial: strip_zeros(tbs.raw_serial()),
            public_key: cx::public_key_from_spki(tbs.public_key()).map_err(|e| {
                MspError::BadCertificate(format!("failed to import certificate's public key: {e}"))
            })?,
            sig_alg: cert.signature_algorithm.algorithm.to_id_string(),
            tbs: tbs.as_ref().to_vec(),
            signature: cert.signature_value.data.to_vec(),
        };
        for ext in tbs.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::BasicConstraints(bc) => {
                    c.basic_constraints = Some(bc.ca);
                    c.max_path_len = bc.path_len_constraint;
                }
                ParsedExtension::KeyUsage(ku) => c.key_cert_sign = Some(ku.key_cert_sign()),
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    let mut oids = Vec::new();
                    if eku.any {
                        oids.push(OID_EKU_ANY.to_string());
                    }
                    if eku.server_auth {
                        oids.push(OID_EKU_SERVER_AUTH.to_string());
                    }
                    if eku.client_auth {
                        oids.push(OID_EKU_CLIENT_AUTH.to_string());
                    }
                    oids.extend(eku.other.iter().map(|o| o.to_id_string()));
                    c.ext_key_usage = Some(oids);
                }
                ParsedExtension::SubjectKeyIdentifier(ki) => c.ski = Some(ki.0.to_vec()),
                ParsedExtension::AuthorityKeyIdentifier(aki) => {
                    c.aki = aki.key_identifier.as_ref().map(|k| k.0.to_vec());
                }
                ParsedExtension::ParseError { error } => {
                    return Err(bad(format!("extension {}: {error}", ext.oid)));
                }
                _ => {}
            }
        }
        Ok(c)
    }

    /// Parses the first PEM block of `pem` (Fabric's `getCertFromPem`: label not checked, later
    /// blocks ignored).
    pub fn from_pem(pem: &[u8]) -> Result<Self, MspError> {
        let der = cx::first_pem_der(pem).map_err(|_| MspError::BadPem)?;
        Self::from_der(&der)
    }

    /// The certificate's DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The certificate as PEM.
    pub fn to_pem(&self) -> String {
        cx::to_pem("CERTIFICATE", &self.der)
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    pub fn is_ca(&self) -> bool {
        self.basic_constraints == Some(true)
    }

    /// Seconds since the Unix epoch.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }

    /// Seconds since the Unix epoch.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// The organizational units of the subject, in certificate order.
    pub fn organizational_units(&self) -> &[String] {
        &self.ous
    }

    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    pub fn subject_key_id(&self) -> Option<&[u8]> {
        self.ski.as_deref()
    }

    /// Serial number, big-endian, without leading zeros.
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// True when this certificate's signature was made by `issuer`'s key (any S accepted, as Go).
    pub(crate) fn is_signed_by(&self, issuer: &Cert) -> bool {
        cx::verify_signed_data(
            &issuer.public_key,
            &self.sig_alg,
            &self.tbs,
            &self.signature,
        )
        .is_ok()
    }

    /// Whether the certificate may act as an issuer in a chain (Go's `CheckSignatureFrom` rule:
    /// a v3 certificate needs BasicConstraints with CA set; KeyUsage, if present, needs certSign).
    pub(crate) fn may_issue(&self) -> bool {
        let bc_ok = match self.basic_constraints {
            Some(ca) => ca,
            None => self.version < 2,
        };
        bc_ok && self.key_cert_sign != Some(false)
    }

    /// Whether the EKU extension allows server authentication (Go's default for `Verify` when no
    /// key usage is asked for). No EKU extension means any usage.
    pub(crate) fn allows_server_auth(&self) -> bool {
        match &self.ext_key_usage {
            None => true,
            Some(oids) => oids.iter().any(|o| {
                matches!(
                    o.as_str(),
                    OID_EKU_ANY
                        | OID_EKU_SERVER_AUTH
                        | OID_EKU_NETSCAPE_SGC
                        | OID_EKU_MICROSOFT_SGC
                )
            }),
        }
    }

    /// Whether the EKU extension allows client authentication (absent: any usage).
    pub(crate) fn allows_client_auth(&self) -> bool {
        match &self.ext_key_usage {
            None => true,
            Some(oids) => oids
                .iter()
                .any(|o| matches!(o.as_str(), OID_EKU_ANY | OID_EKU_CLIENT_AUTH)),
        }
    }

    /// Whether the EKU extension lists anyExtendedKeyUsage.
    pub(crate) fn allows_any_usage(&self) -> bool {
        self.ext_key_usage
            .as_ref()
            .is_some_and(|o| o.iter().any(|o| o == OID_EKU_ANY))
    }

    pub(crate) fn valid_at(&self, t: i64) -> bool {
        self.not_before <= t && t <= self.not_after
    }

    /// Fabric's `sanitizeCert` given the issuer's curve: the certificate re-encoded with a low-S
    /// signature (unchanged when already low-S or not ECDSA-signed).
    pub(crate) fn sanitized(mut self, issuer_curve: Curve) -> Result<Self, MspError> {
        let der = cx::sanitize_certificate(&self.der, issuer_curve)
            .map_err(|e| MspError::BadCertificate(format!("sanitizeCert failed {e}")))?;
        if der != self.der {
            // Only the signature changed; re-read it from the new encoding.
            let parsed = cx::parse_certificate(&der).map_err(bad)?;
            self.signature = parsed.signature_value.data.to_vec();
            self.der = der;
        }
        Ok(self)
    }
}

impl PartialEq for Cert {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}
impl Eq for Cert {}
