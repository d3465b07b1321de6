//! X.509 encoding shared by the CA and the client: names as Go's `pkix.Name` encodes them,
//! the extensions Fabric CA puts in certificates, CSR parsing/verification and generation,
//! and DER signing with an ordo-crypto key (ECDSA-SHA256, low-S).

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use const_oid::ObjectIdentifier;
use const_oid::db::rfc4519;
use const_oid::db::rfc5280;
use const_oid::db::rfc5912;
use der::asn1::{Any, BitString, GeneralizedTime, Ia5String, OctetString, SetOfVec, UtcTime};
use der::{Decode, Encode, Tag, Tagged};
use ordo_crypto::{Curve, PublicKey, SigningKey};
use ring::signature;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::request::CertReq;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::Time;

/// `1.2.3.4.5.6.7.8.1`, Fabric CA's attribute extension (`lib/attrmgr`).
pub const ATTR_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.3.4.5.6.7.8.1");
const EXTENSION_REQUEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.14");

#[derive(Debug, thiserror::Error)]
pub enum X509Error {
    #[error("{0}")]
    Malformed(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("bad signature")]
    BadSignature,
}

fn malformed(e: impl std::fmt::Display) -> X509Error {
    X509Error::Malformed(e.to_string())
}

pub fn ecdsa_sha256() -> AlgorithmIdentifierOwned {
    AlgorithmIdentifierOwned {
        oid: rfc5912::ECDSA_WITH_SHA_256,
        parameters: None,
    }
}

/// A directory string as Go writes it: PrintableString when every character allows it,
/// UTF8String otherwise.
fn dir_string(s: &str) -> Result<Any, X509Error> {
    let printable = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " '()+,-./:=?".contains(c));
    let tag = if printable {
        Tag::PrintableString
    } else {
        Tag::Utf8String
    };
    Any::new(tag, s.as_bytes()).map_err(malformed)
}

/// The parts of a subject Fabric CA controls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    pub c: Vec<String>,
    pub st: Vec<String>,
    pub l: Vec<String>,
    pub o: Vec<String>,
    pub ou: Vec<String>,
    pub cn: String,
    pub serial_number: String,
}

impl Subject {
    /// Encodes as Go's `pkix.Name.ToRDNSequence`: C, ST, L, O, OU, CN, serialNumber, each
    /// attribute type with several values in one multi-valued RDN (so a Fabric CA certificate
    /// for an `orderer` affiliated to `org1` has the RDN `OU=orderer+OU=org1`).
    pub fn to_name(&self) -> Result<Name, X509Error> {
        let mut rdns = Vec::new();
        let groups: [(&[String], ObjectIdentifier); 5] = [
            (&self.c, rfc4519::C),
            (&self.st, rfc4519::ST),
            (&self.l, rfc4519::L),
            (&self.o, rfc4519::O),
            (&self.ou, rfc4519::OU),
        ];
        for (values, oid) in groups {
            if values.is_empty() {
                continue;
            }
            let mut set = Vec::new();
            for v in values {
                set.push(AttributeTypeAndValue {
                    oid,
                    value: dir_string(v)?,
                });
            }
            rdns.push(RelativeDistinguishedName(
                SetOfVec::try_from(set).map_err(malformed)?,
            ));
        }
        for (value, oid) in [
            (&self.cn, rfc4519::CN),
            (&self.serial_number, rfc4519::SERIAL_NUMBER),
        ] {
            if value.is_empty() {
                continue;
            }
            let atv = AttributeTypeAndValue {
                oid,
                value: dir_string(value)?,
            };
            rdns.push(RelativeDistinguishedName(
                SetOfVec::try_from(vec![atv]).map_err(malformed)?,
            ));
        }
        Ok(RdnSequence(rdns))
    }

    /// Reads the attributes Fabric CA looks at from a name.
    pub fn from_name(name: &Name) -> Result<Subject, X509Error> {
        let mut s = Subject::default();
        for rdn in name.0.iter() {
            for atv in rdn.0.iter() {
                let v = any_string(&atv.value)?;
                match atv.oid {
                    o if o == rfc4519::C => s.c.push(v),
                    o if o == rfc4519::ST => s.st.push(v),
                    o if o == rfc4519::L => s.l.push(v),
                    o if o == rfc4519::O => s.o.push(v),
                    o if o == rfc4519::OU => s.ou.push(v),
                    o if o == rfc4519::CN => s.cn = v,
                    o if o == rfc4519::SERIAL_NUMBER => s.serial_number = v,
                    _ => {}
                }
            }
        }
        Ok(s)
    }
}

fn any_string(a: &Any) -> Result<String, X509Error> {
    match a.tag() {
        Tag::PrintableString | Tag::Utf8String | Tag::Ia5String | Tag::TeletexString => {
            String::from_utf8(a.value().to_vec()).map_err(malformed)
        }
        t => Err(X509Error::Unsupported(format!(
            "name attribute of type {t}"
        ))),
    }
}

/// An X.509 time as Go writes it: UTCTime before 2050, GeneralizedTime from then on.
pub fn x509_time(unix_secs: u64) -> Result<Time, X509Error> {
    let d = Duration::from_secs(unix_secs);
    match UtcTime::from_unix_duration(d) {
        Ok(t) => Ok(Time::UtcTime(t)),
        Err(_) => Ok(Time::GeneralTime(
            GeneralizedTime::from_unix_duration(d).map_err(malformed)?,
        )),
    }
}

pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A subject alternative name from a `hosts` entry, parsed as cfssl does: IP, e-mail, URI, else
/// DNS name.
pub fn general_name(host: &str) -> Result<GeneralName, X509Error> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        let bytes = match ip {
            IpAddr::V4(v) => v.octets().to_vec(),
            IpAddr::V6(v) => v.octets().to_vec(),
        };
        return Ok(GeneralName::IpAddress(
            OctetString::new(bytes).map_err(malformed)?,
        ));
    }
    let ia5 = |s: &str| Ia5String::new(s).map_err(malformed);
    if host.contains('@') && !host.contains("://") {
        return Ok(GeneralName::Rfc822Name(ia5(host)?));
    }
    if host.contains("://") {
        return Ok(GeneralName::UniformResourceIdentifier(ia5(host)?));
    }
    Ok(GeneralName::DnsName(ia5(host)?))
}

pub fn extension(
    oid: ObjectIdentifier,
    critical: bool,
    value: &impl Encode,
) -> Result<Extension, X509Error> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value.to_der().map_err(malformed)?).map_err(malformed)?,
    })
}

pub fn raw_extension(
    oid: ObjectIdentifier,
    critical: bool,
    value: Vec<u8>,
) -> Result<Extension, X509Error> {
    Ok(Extension {
        extn_id: oid,
        critical,
        extn_value: OctetString::new(value).map_err(malformed)?,
    })
}

/// cfssl's subject key identifier: SHA-1 of the public key bits.
pub fn key_identifier(spki: &SubjectPublicKeyInfoOwned) -> Vec<u8> {
    ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        spki.subject_public_key.raw_bytes(),
    )
    .as_ref()
    .to_vec()
}

/// The SPKI of a P-256 public key.
pub fn spki_of(key: &PublicKey) -> Result<SubjectPublicKeyInfoOwned, X509Error> {
    let curve = match key.curve() {
        Curve::P256 => rfc5912::SECP_256_R_1,
        Curve::P384 => rfc5912::SECP_384_R_1,
    };
    Ok(SubjectPublicKeyInfoOwned {
        algorithm: AlgorithmIdentifierOwned {
            oid: rfc5912::ID_EC_PUBLIC_KEY,
            parameters: Some(Any::from(&curve)),
        },
        subject_public_key: BitString::from_bytes(key.point()).map_err(malformed)?,
    })
}

/// The ordo-crypto key of an EC SPKI (P-256 or P-384).
pub fn public_key_of(spki: &SubjectPublicKeyInfoOwned) -> Result<PublicKey, X509Error> {
    if spki.algorithm.oid != rfc5912::ID_EC_PUBLIC_KEY {
        return Err(X509Error::Unsupported(format!(
            "public key algorithm {}",
            spki.algorithm.oid
        )));
    }
    let curve_oid: ObjectIdentifier = spki
        .algorithm
        .parameters
        .as_ref()
        .ok_or_else(|| X509Error::Malformed("EC key without curve".into()))?
        .decode_as()
        .map_err(malformed)?;
    let curve = if curve_oid == rfc5912::SECP_256_R_1 {
        Curve::P256
    } else if curve_oid == rfc5912::SECP_384_R_1 {
        Curve::P384
    } else {
        return Err(X509Error::Unsupported(format!("curve {curve_oid}")));
    };
    let point = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| X509Error::Malformed("public key bits".into()))?;
    PublicKey::from_point(curve, point).map_err(malformed)
}

/// Signs `tbs` (DER) with `key`: ECDSA over SHA-256, DER, low-S.
pub fn sign(key: &SigningKey, tbs: &[u8]) -> Result<BitString, X509Error> {
    let sig = key.sign(tbs).map_err(malformed)?;
    BitString::from_bytes(&sig).map_err(malformed)
}

/// A parsed and signature-checked CSR.
pub struct Csr {
    pub subject: Subject,
    pub spki: SubjectPublicKeyInfoOwned,
    /// SANs from the CSR's extension request.
    pub sans: Vec<GeneralName>,
    /// basicConstraints CA:true requested.
    pub is_ca: bool,
}

/// Parses a PEM CSR (`CERTIFICATE REQUEST` or `NEW CERTIFICATE REQUEST`) and checks its
/// self-signature. The CSR signature may be high-S: Go's and jsrsasign's CSR signers do not
/// normalise it, and Fabric CA (Go's `CheckSignature`) accepts either.
pub fn parse_csr(pem_text: &str) -> Result<Csr, X509Error> {
    let block = pem::parse(pem_text.as_bytes()).map_err(|e| malformed(format!("CSR PEM: {e}")))?;
    if block.tag() != "CERTIFICATE REQUEST" && block.tag() != "NEW CERTIFICATE REQUEST" {
        return Err(X509Error::Malformed(format!(
            "PEM block {:?} is not a certificate request",
            block.tag()
        )));
    }
    let req = CertReq::from_der(block.contents()).map_err(malformed)?;
    let info_der = req.info.to_der().map_err(malformed)?;
    let sig = req
        .signature
        .as_bytes()
        .ok_or_else(|| X509Error::Malformed("signature bits".into()))?;
    let key = public_key_of(&req.info.public_key)?;
    let alg: &dyn signature::VerificationAlgorithm = match (key.curve(), req.algorithm.oid) {
        (Curve::P256, o) if o == rfc5912::ECDSA_WITH_SHA_256 => &signature::ECDSA_P256_SHA256_ASN1,
        (Curve::P384, o) if o == rfc5912::ECDSA_WITH_SHA_384 => &signature::ECDSA_P384_SHA384_ASN1,
        (Curve::P384, o) if o == rfc5912::ECDSA_WITH_SHA_256 => &signature::ECDSA_P384_SHA256_ASN1,
        (_, o) => {
            return Err(X509Error::Unsupported(format!(
                "CSR signature algorithm {o}"
            )));
        }
    };
    signature::UnparsedPublicKey::new(alg, key.point())
        .verify(&info_der, sig)
        .map_err(|_| X509Error::BadSignature)?;

    let mut sans = Vec::new();
    let mut is_ca = false;
    for attr in req.info.attributes.iter() {
        if attr.oid != EXTENSION_REQUEST {
            continue;
        }
        for value in attr.values.iter() {
            let exts: Vec<Extension> = value.decode_as().map_err(malformed)?;
            for ext in exts {
                if ext.extn_id == rfc5280::ID_CE_SUBJECT_ALT_NAME {
                    let names =
                        x509_cert::ext::pkix::SubjectAltName::from_der(ext.extn_value.as_bytes())
                            .map_err(malformed)?;
                    sans.extend(names.0);
                } else if ext.extn_id == rfc5280::ID_CE_BASIC_CONSTRAINTS {
                    let bc =
                        x509_cert::ext::pkix::BasicConstraints::from_der(ext.extn_value.as_bytes())
                            .map_err(|e| {
                                malformed(format!("Failed parsing CSR constraints: {e}"))
                            })?;
                    is_ca = bc.ca;
                }
            }
        }
    }
    Ok(Csr {
        subject: Subject::from_name(&req.info.subject)?,
        spki: req.info.public_key,
        sans,
        is_ca,
    })
}

/// Builds a PEM CSR for `key` with `subject` and SANs `hosts` (what `fabric-ca-client enroll`
/// sends).
pub fn build_csr(
    key: &SigningKey,
    subject: &Subject,
    hosts: &[String],
) -> Result<String, X509Error> {
    use x509_cert::attr::Attribute;
    use x509_cert::request::{CertReqInfo, ExtensionReq, Version};
    let mut attributes = SetOfVec::new();
    if !hosts.is_empty() {
        let names = hosts
            .iter()
            .map(|h| general_name(h))
            .collect::<Result<Vec<_>, _>>()?;
        let san = extension(
            rfc5280::ID_CE_SUBJECT_ALT_NAME,
            false,
            &x509_cert::ext::pkix::SubjectAltName(names),
        )?;
        let req = ExtensionReq(vec![san]);
        let value = Any::encode_from(&req).map_err(malformed)?;
        attributes
            .insert(Attribute {
                oid: EXTENSION_REQUEST,
                values: SetOfVec::try_from(vec![value]).map_err(malformed)?,
            })
            .map_err(malformed)?;
    }
    let info = CertReqInfo {
        version: Version::V1,
        subject: subject.to_name()?,
        public_key: spki_of(key.public_key())?,
        attributes,
    };
    let sig = sign(key, &info.to_der().map_err(malformed)?)?;
    let req = CertReq {
        info,
        algorithm: ecdsa_sha256(),
        signature: sig,
    };
    Ok(ordo_crypto::x509::to_pem(
        "CERTIFICATE REQUEST",
        &req.to_der().map_err(malformed)?,
    ))
}

/// A random positive serial of 20 bytes at most (cfssl draws 20 random bytes).
pub fn random_serial() -> Result<Vec<u8>, X509Error> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 20];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| X509Error::Malformed("no randomness".into()))?;
    // Positive and minimally encoded in 20 bytes: top bit clear, top byte non-zero.
    b[0] &= 0x7f;
    if b[0] == 0 {
        b[0] = 1;
    }
    Ok(b.to_vec())
}

/// Fabric CA's serial/AKI notation: lowercase hex, leading zeros trimmed.
pub fn fabric_hex(bytes: &[u8]) -> String {
    hex::encode(bytes).trim_start_matches('0').to_string()
}

/// Normalises a serial or AKI given by a client (`parseInput` in `serverrevoke.go`).
pub fn normalize_hex(s: &str) -> String {
    s.to_lowercase().trim_start_matches('0').replace(':', "")
}
