//! One certificate authority: its signing key and root certificate, certificate issuance from
//! a CSR with Fabric CA's rules, certificate verification for token authentication, and CRLs.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use const_oid::ObjectIdentifier;
use const_oid::db::rfc5280;
use der::{Decode, Encode};
use ordo_crypto::{PublicKey, SigningKey};
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use x509_cert::Certificate;
use x509_cert::certificate::{TbsCertificate, Version};
use x509_cert::crl::{CertificateList, RevokedCert, TbsCertList};
use x509_cert::ext::pkix::{
    AuthorityKeyIdentifier, BasicConstraints, ExtendedKeyUsage, KeyUsage, KeyUsages,
    SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::Validity;

use crate::config::{CaEntry, ProfileConfig, ServerConfig, parse_duration};
use crate::error::{CaError, ErrorCode};
use crate::registry::{CertRecord, Registry};
use crate::x509::{self as x, Csr, Subject, X509Error};

fn internal(e: impl std::fmt::Display) -> CaError {
    CaError::Internal(e.to_string())
}

impl From<X509Error> for CaError {
    fn from(e: X509Error) -> Self {
        CaError::Internal(e.to_string())
    }
}

/// cfssl back-dates certificates by five minutes against clock skew.
const BACKDATE_SECS: u64 = 300;

/// A signing profile (`signing.default`, `signing.profiles.<name>`).
#[derive(Debug, Clone)]
pub struct Profile {
    key_usage: Vec<KeyUsages>,
    ext_key_usage: Vec<ObjectIdentifier>,
    expiry: Duration,
    is_ca: bool,
    max_path_len: u8,
}

impl Profile {
    fn from_config(p: &ProfileConfig) -> Result<Self, CaError> {
        let mut key_usage = Vec::new();
        let mut ext_key_usage = Vec::new();
        // cfssl's usage names (`config.KeyUsage` / `ExtKeyUsage`).
        for u in &p.usage {
            match u.as_str() {
                "signing" | "digital signature" => key_usage.push(KeyUsages::DigitalSignature),
                "content commitment" => key_usage.push(KeyUsages::NonRepudiation),
                "key encipherment" => key_usage.push(KeyUsages::KeyEncipherment),
                "key agreement" => key_usage.push(KeyUsages::KeyAgreement),
                "data encipherment" => key_usage.push(KeyUsages::DataEncipherment),
                "cert sign" => key_usage.push(KeyUsages::KeyCertSign),
                "crl sign" => key_usage.push(KeyUsages::CRLSign),
                "encipher only" => key_usage.push(KeyUsages::EncipherOnly),
                "decipher only" => key_usage.push(KeyUsages::DecipherOnly),
                "server auth" => ext_key_usage.push(rfc5280::ID_KP_SERVER_AUTH),
                "client auth" => ext_key_usage.push(rfc5280::ID_KP_CLIENT_AUTH),
                "code signing" => ext_key_usage.push(rfc5280::ID_KP_CODE_SIGNING),
                "email protection" => ext_key_usage.push(rfc5280::ID_KP_EMAIL_PROTECTION),
                "timestamping" => ext_key_usage.push(rfc5280::ID_KP_TIME_STAMPING),
                "ocsp signing" => ext_key_usage.push(rfc5280::ID_KP_OCSP_SIGNING),
                "any" => ext_key_usage.push(ObjectIdentifier::new_unwrap("2.5.29.37.0")),
                other => {
                    return Err(CaError::Internal(format!("unknown key usage {other:?}")));
                }
            }
        }
        Ok(Profile {
            key_usage,
            ext_key_usage,
            expiry: parse_duration(&p.expiry)?,
            is_ca: p.caconstraint.isca,
            max_path_len: p.caconstraint.maxpathlen,
        })
    }

    pub fn is_ca(&self) -> bool {
        self.is_ca
    }
}

/// CA-wide settings taken from the server configuration.
#[derive(Debug, Clone)]
pub struct CaSettings {
    pub max_enrollments: i64,
    pub crl_expiry: Duration,
    pub allow_remove_identities: bool,
    pub allow_remove_affiliations: bool,
    /// 0: wrong secrets are not counted.
    pub password_attempts: i64,
}

/// What to issue: the caller-side facts Fabric CA fills the certificate with.
pub struct IssueRequest<'a> {
    pub csr: &'a Csr,
    pub enrollment_id: &'a str,
    pub id_type: &'a str,
    pub affiliation: &'a str,
    /// `None` keeps the CSR's SANs; `Some` (even empty) replaces them, as cfssl's
    /// `OverrideHosts` does when the request has a `hosts` key.
    pub hosts: Option<&'a [String]>,
    /// The JSON value of the attribute extension, if any.
    pub attrs: Option<Vec<u8>>,
    pub profile: &'a Profile,
}

/// A certificate this CA issued.
#[derive(Debug, Clone)]
pub struct Issued {
    pub der: Vec<u8>,
    pub pem: String,
    pub record: CertRecord,
}

pub struct Ca {
    name: String,
    key: SigningKey,
    cert_der: Vec<u8>,
    cert_pem: String,
    subject: Name,
    ski: Vec<u8>,
    not_before: u64,
    not_after: u64,
    default_profile: Profile,
    profiles: BTreeMap<String, Profile>,
    pub settings: CaSettings,
    pub registry: Arc<dyn Registry>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ca({})", self.name)
    }
}

/// A fresh P-256 key and its PKCS#8 PEM.
pub fn generate_key() -> Result<(SigningKey, String), CaError> {
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        &ring::rand::SystemRandom::new(),
    )
    .map_err(|_| internal("key generation failed"))?;
    let key = SigningKey::from_pkcs8_der(pkcs8.as_ref()).map_err(internal)?;
    Ok((
        key,
        ordo_crypto::x509::to_pem("PRIVATE KEY", pkcs8.as_ref()),
    ))
}

fn write_private(path: &Path, contents: &str) -> Result<(), CaError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| internal(format!("{}: {e}", dir.display())))?;
    }
    std::fs::write(path, contents).map_err(|e| internal(format!("{}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| internal(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

fn write_public(path: &Path, contents: &str) -> Result<(), CaError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| internal(format!("{}: {e}", dir.display())))?;
    }
    std::fs::write(path, contents).map_err(|e| internal(format!("{}: {e}", path.display())))
}

impl Ca {
    /// Loads the CA's key and root from files, or generates and writes them on first start.
    pub fn open(
        cfg: &ServerConfig,
        entry: &CaEntry,
        registry: Arc<dyn Registry>,
    ) -> Result<Ca, CaError> {
        let dir = cfg.home.join(&entry.name);
        let cert_path = if entry.certfile.is_empty() {
            dir.join("ca-cert.pem")
        } else {
            cfg.resolve(&entry.certfile)
        };
        let key_path = if entry.keyfile.is_empty() {
            dir.join("ca-key.pem")
        } else {
            cfg.resolve(&entry.keyfile)
        };
        let (key, cert_der) = if cert_path.exists() || key_path.exists() {
            let key_pem = std::fs::read(&key_path)
                .map_err(|e| internal(format!("{}: {e}", key_path.display())))?;
            let key = SigningKey::from_pem(&key_pem).map_err(internal)?;
            let cert_pem = std::fs::read(&cert_path)
                .map_err(|e| internal(format!("{}: {e}", cert_path.display())))?;
            let der = ordo_crypto::x509::first_pem_der(&cert_pem).map_err(internal)?;
            let cert_key = ordo_crypto::x509::certificate_public_key(&der).map_err(internal)?;
            if &cert_key != key.public_key() {
                return Err(internal(format!(
                    "{} does not hold the key of {}",
                    key_path.display(),
                    cert_path.display()
                )));
            }
            (key, der)
        } else {
            let (key, key_pem) = generate_key()?;
            let der = self_signed_root(cfg, entry, &key)?;
            write_private(&key_path, &key_pem)?;
            write_public(&cert_path, &ordo_crypto::x509::to_pem("CERTIFICATE", &der))?;
            tracing::info!(ca = %entry.name, cert = %cert_path.display(), "generated CA key and root certificate");
            (key, der)
        };
        Self::from_parts(cfg, &entry.name, key, cert_der, registry)
    }

    fn from_parts(
        cfg: &ServerConfig,
        name: &str,
        key: SigningKey,
        cert_der: Vec<u8>,
        registry: Arc<dyn Registry>,
    ) -> Result<Ca, CaError> {
        let cert = Certificate::from_der(&cert_der).map_err(internal)?;
        let tbs = &cert.tbs_certificate;
        let ski = tbs
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER)
            .map(|e| SubjectKeyIdentifier::from_der(e.extn_value.as_bytes()))
            .transpose()
            .map_err(internal)?
            .map(|s| s.0.as_bytes().to_vec())
            .unwrap_or_else(|| x::key_identifier(&tbs.subject_public_key_info));
        let mut profiles = BTreeMap::new();
        for (n, p) in &cfg.signing.profiles {
            profiles.insert(n.clone(), Profile::from_config(p)?);
        }
        Ok(Ca {
            name: name.to_string(),
            key,
            cert_pem: ordo_crypto::x509::to_pem("CERTIFICATE", &cert_der),
            subject: tbs.subject.clone(),
            ski,
            not_before: tbs.validity.not_before.to_unix_duration().as_secs(),
            not_after: tbs.validity.not_after.to_unix_duration().as_secs(),
            cert_der,
            default_profile: Profile::from_config(&cfg.signing.default)?,
            profiles,
            settings: CaSettings {
                max_enrollments: cfg.registry.maxenrollments,
                crl_expiry: parse_duration(&cfg.crl.expiry)?,
                allow_remove_identities: cfg.cfg.identities.allowremove,
                allow_remove_affiliations: cfg.cfg.affiliations.allowremove,
                password_attempts: cfg.cfg.identities.passwordattempts,
            },
            registry,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The PEM chain returned as `CAChain` (a root CA: its own certificate).
    pub fn chain_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }

    /// The profile for a request's `profile` field; `None` for an unknown name.
    pub fn profile(&self, name: &str) -> Option<&Profile> {
        if name.is_empty() {
            Some(&self.default_profile)
        } else {
            self.profiles.get(name)
        }
    }

    /// Issues a certificate as Fabric CA's `handleEnroll` + cfssl's local signer do.
    pub fn issue(&self, req: &IssueRequest<'_>) -> Result<Issued, CaError> {
        let now = x::now_secs();
        // NotAfter: now (rounded to the minute, as Fabric CA does) plus the profile's expiry,
        // never beyond the CA certificate; NotBefore never before it.
        let rounded = (now + 30) / 60 * 60;
        let not_after = rounded
            .saturating_add(req.profile.expiry.as_secs())
            .min(self.not_after);
        let not_before = now.saturating_sub(BACKDATE_SECS).max(self.not_before);

        // Subject: the CSR's non-OU attributes, OUs replaced by type and affiliation path,
        // CN = enrollment ID (checked by the caller).
        let mut subject = req.csr.subject.clone();
        subject.cn = req.enrollment_id.to_string();
        subject.ou = std::iter::once(req.id_type.to_string())
            .chain(
                req.affiliation
                    .split('.')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            )
            .collect();

        let sans = match req.hosts {
            Some(h) => h
                .iter()
                .filter(|h| !h.is_empty())
                .map(|h| x::general_name(h))
                .collect::<Result<Vec<_>, _>>()?,
            None => req.csr.sans.clone(),
        };
        let mut exts = Vec::new();
        let mut usage = req.profile.key_usage.clone();
        if req.profile.is_ca && !usage.contains(&KeyUsages::KeyCertSign) {
            usage.push(KeyUsages::KeyCertSign);
        }
        if let Some((first, rest)) = usage.split_first() {
            let flags = rest
                .iter()
                .fold(flagset_of(*first), |acc, u| acc | flagset_of(*u));
            exts.push(x::extension(
                rfc5280::ID_CE_KEY_USAGE,
                true,
                &KeyUsage(flags),
            )?);
        }
        if !req.profile.ext_key_usage.is_empty() {
            exts.push(x::extension(
                rfc5280::ID_CE_EXT_KEY_USAGE,
                false,
                &ExtendedKeyUsage(req.profile.ext_key_usage.clone()),
            )?);
        }
        exts.push(x::extension(
            rfc5280::ID_CE_BASIC_CONSTRAINTS,
            true,
            &BasicConstraints {
                ca: req.profile.is_ca,
                path_len_constraint: req.profile.is_ca.then_some(req.profile.max_path_len),
            },
        )?);
        exts.push(x::extension(
            rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
            false,
            &SubjectKeyIdentifier(
                der::asn1::OctetString::new(x::key_identifier(&req.csr.spki)).map_err(internal)?,
            ),
        )?);
        exts.push(self.aki_extension()?);
        if !sans.is_empty() {
            exts.push(x::extension(
                rfc5280::ID_CE_SUBJECT_ALT_NAME,
                false,
                &SubjectAltName(sans),
            )?);
        }
        if let Some(a) = &req.attrs {
            exts.push(x::raw_extension(x::ATTR_OID, false, a.clone())?);
        }
        let serial = x::random_serial()?;
        let der = self.sign_certificate(
            &serial,
            subject.to_name()?,
            req.csr.spki.clone(),
            not_before,
            not_after,
            exts,
        )?;
        let pem = ordo_crypto::x509::to_pem("CERTIFICATE", &der);
        Ok(Issued {
            record: CertRecord {
                serial: x::fabric_hex(&serial),
                aki: x::fabric_hex(&self.ski),
                id: req.enrollment_id.to_string(),
                status: "good".into(),
                reason: 0,
                expiry: not_after as i64,
                revoked_at: 0,
                pem: pem.clone(),
            },
            der,
            pem,
        })
    }

    fn aki_extension(&self) -> Result<x509_cert::ext::Extension, CaError> {
        Ok(x::extension(
            rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
            false,
            &AuthorityKeyIdentifier {
                key_identifier: Some(
                    der::asn1::OctetString::new(self.ski.clone()).map_err(internal)?,
                ),
                authority_cert_issuer: None,
                authority_cert_serial_number: None,
            },
        )?)
    }

    fn sign_certificate(
        &self,
        serial: &[u8],
        subject: Name,
        spki: SubjectPublicKeyInfoOwned,
        not_before: u64,
        not_after: u64,
        exts: Vec<x509_cert::ext::Extension>,
    ) -> Result<Vec<u8>, CaError> {
        let tbs = TbsCertificate {
            version: Version::V3,
            serial_number: SerialNumber::new(serial).map_err(internal)?,
            signature: x::ecdsa_sha256(),
            issuer: self.subject.clone(),
            validity: Validity {
                not_before: x::x509_time(not_before)?,
                not_after: x::x509_time(not_after)?,
            },
            subject,
            subject_public_key_info: spki,
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: Some(exts),
        };
        let signature = x::sign(&self.key, &tbs.to_der().map_err(internal)?)?;
        Certificate {
            tbs_certificate: tbs,
            signature_algorithm: x::ecdsa_sha256(),
            signature,
        }
        .to_der()
        .map_err(internal)
    }

    /// Checks that `cert_der` was issued by this CA and is within its validity period
    /// (`ca.VerifyCertificate`), and returns what token authentication needs.
    pub fn verify_issued(
        &self,
        cert_der: &[u8],
        ignore_expiry: bool,
    ) -> Result<CertFacts, VerifyError> {
        let cert = Certificate::from_der(cert_der).map_err(VerifyError::Der)?;
        let tbs = &cert.tbs_certificate;
        if tbs.issuer != self.subject {
            return Err(VerifyError::OtherIssuer);
        }
        let tbs_der = tbs.to_der().map_err(VerifyError::Der)?;
        let sig = cert
            .signature
            .as_bytes()
            .ok_or(VerifyError::MalformedSignature)?;
        self.key
            .public_key()
            .verify(&tbs_der, sig)
            .map_err(VerifyError::Signature)?;
        let now = x::now_secs();
        let nb = tbs.validity.not_before.to_unix_duration().as_secs();
        let na = tbs.validity.not_after.to_unix_duration().as_secs();
        if !ignore_expiry && (now < nb || now > na) {
            return Err(VerifyError::OutsideValidity);
        }
        let subject = Subject::from_name(&tbs.subject).map_err(VerifyError::Subject)?;
        let aki = tbs
            .extensions
            .iter()
            .flatten()
            .find(|e| e.extn_id == rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER)
            .and_then(|e| AuthorityKeyIdentifier::from_der(e.extn_value.as_bytes()).ok())
            .and_then(|a| a.key_identifier)
            .map(|k| x::fabric_hex(k.as_bytes()))
            .unwrap_or_default();
        Ok(CertFacts {
            enrollment_id: subject.cn,
            serial: x::fabric_hex(tbs.serial_number.as_bytes()),
            aki,
        })
    }

    /// A PEM CRL of `revoked` (Fabric CA's `genCRL`), valid for `crl.expiry`.
    pub fn crl(&self, revoked: &[CertRecord]) -> Result<String, CaError> {
        let now = x::now_secs();
        let mut entries = Vec::new();
        for r in revoked {
            let serial = hex::decode(if r.serial.len() % 2 == 1 {
                format!("0{}", r.serial)
            } else {
                r.serial.clone()
            })
            .map_err(internal)?;
            entries.push(RevokedCert {
                serial_number: SerialNumber::new(&serial).map_err(internal)?,
                revocation_date: x::x509_time(r.revoked_at.max(0) as u64)?,
                crl_entry_extensions: None,
            });
        }
        let tbs = TbsCertList {
            version: Version::V2,
            signature: x::ecdsa_sha256(),
            issuer: self.subject.clone(),
            this_update: x::x509_time(now)?,
            next_update: Some(x::x509_time(now + self.settings.crl_expiry.as_secs())?),
            revoked_certificates: (!entries.is_empty()).then_some(entries),
            crl_extensions: Some(vec![self.aki_extension()?]),
        };
        let signature = x::sign(&self.key, &tbs.to_der().map_err(internal)?)?;
        let der = CertificateList {
            tbs_cert_list: tbs,
            signature_algorithm: x::ecdsa_sha256(),
            signature,
        }
        .to_der()
        .map_err(internal)?;
        Ok(ordo_crypto::x509::to_pem("X509 CRL", &der))
    }

    /// Issues the server's own TLS certificate for `hosts` (not recorded in the registry).
    pub fn issue_server_tls(&self, hosts: &[String]) -> Result<(String, String), CaError> {
        let (key, key_pem) = generate_key()?;
        let cn = hosts.first().cloned().unwrap_or_else(|| "localhost".into());
        let subject = Subject {
            cn: cn.clone(),
            ..Subject::default()
        };
        let csr_pem = x::build_csr(&key, &subject, &[])?;
        let csr = x::parse_csr(&csr_pem)?;
        let profile = self
            .profiles
            .get("tls")
            .cloned()
            .unwrap_or_else(|| self.default_profile.clone());
        let issued = self.issue(&IssueRequest {
            csr: &csr,
            enrollment_id: &cn,
            id_type: "server",
            affiliation: "",
            hosts: Some(hosts),
            attrs: None,
            profile: &profile,
        })?;
        Ok((issued.pem, key_pem))
    }
}

fn flagset_of(u: KeyUsages) -> der::flagset::FlagSet<KeyUsages> {
    u.into()
}

/// Why a certificate is not one this CA vouches for now.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Der(der::Error),
    #[error("certificate was not issued by this CA")]
    OtherIssuer,
    #[error("malformed certificate signature")]
    MalformedSignature,
    #[error("certificate signature: {0}")]
    Signature(ordo_crypto::CryptoError),
    #[error("certificate is expired or not yet valid")]
    OutsideValidity,
    #[error("{0}")]
    Subject(X509Error),
}

/// What token authentication learns from a certificate this CA issued.
#[derive(Debug, Clone)]
pub struct CertFacts {
    pub enrollment_id: String,
    pub serial: String,
    pub aki: String,
}

fn self_signed_root(
    cfg: &ServerConfig,
    entry: &CaEntry,
    key: &SigningKey,
) -> Result<Vec<u8>, CaError> {
    let now = x::now_secs();
    let expiry = parse_duration(&cfg.csr.ca.expiry)?;
    let cn = if !entry.cn.is_empty() {
        entry.cn.clone()
    } else if !cfg.csr.cn.is_empty() {
        cfg.csr.cn.clone()
    } else {
        entry.name.clone()
    };
    let mut subject = Subject {
        cn,
        ..Subject::default()
    };
    for n in &cfg.csr.names {
        for (dst, v) in [
            (&mut subject.c, &n.c),
            (&mut subject.st, &n.st),
            (&mut subject.l, &n.l),
            (&mut subject.o, &n.o),
            (&mut subject.ou, &n.ou),
        ] {
            if !v.is_empty() {
                dst.push(v.clone());
            }
        }
    }
    let name = subject.to_name()?;
    let spki = x::spki_of(key.public_key())?;
    let ski = x::key_identifier(&spki);
    let exts = vec![
        x::extension(
            rfc5280::ID_CE_KEY_USAGE,
            true,
            &KeyUsage(KeyUsages::KeyCertSign | KeyUsages::CRLSign),
        )?,
        x::extension(
            rfc5280::ID_CE_BASIC_CONSTRAINTS,
            true,
            &BasicConstraints {
                ca: true,
                path_len_constraint: Some(cfg.csr.ca.pathlength),
            },
        )?,
        x::extension(
            rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER,
            false,
            &SubjectKeyIdentifier(der::asn1::OctetString::new(ski).map_err(internal)?),
        )?,
    ];
    let serial = x::random_serial()?;
    let tbs = TbsCertificate {
        version: Version::V3,
        serial_number: SerialNumber::new(&serial).map_err(internal)?,
        signature: x::ecdsa_sha256(),
        issuer: name.clone(),
        validity: Validity {
            not_before: x::x509_time(now.saturating_sub(BACKDATE_SECS))?,
            not_after: x::x509_time(now + expiry.as_secs())?,
        },
        subject: name,
        subject_public_key_info: spki,
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: Some(exts),
    };
    let signature = x::sign(key, &tbs.to_der().map_err(internal)?)?;
    Certificate {
        tbs_certificate: tbs,
        signature_algorithm: x::ecdsa_sha256(),
        signature,
    }
    .to_der()
    .map_err(internal)
}

/// Maps a CSR problem to Fabric CA's answer (400, code 31 "bad CSR").
pub fn csr_error(e: X509Error) -> CaError {
    CaError::bad_request(ErrorCode::BadCsr, format!("invalid CSR: {e}"))
}
