//! One X.509 MSP, set up and used as Fabric's `bccspmsp` at MSP version 1.4.3.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use ordo_crypto::{sha256, sha256_concat, x509 as cx};
use ordo_proto::msp::{FabricMspConfig, FabricOuIdentifier, MspConfig, SerializedIdentity};
use prost::Message;

use crate::cert::strip_zeros;
use crate::chain::{KeyUsage, Pool, verify_chains};
use crate::{Cert, Identity, MspError};

/// Fabric's MSP type for X.509 MSPs (`MSPConfig.type`); 1 is Idemix, which Ordo does not support.
const MSP_TYPE_FABRIC: i32 = 0;

/// How many deserialized identities an MSP remembers. Deserializing costs a chain check (an
/// ECDSA verification); a channel sees the same few creators over and over.
const IDENTITY_CACHE_SIZE: usize = 4096;

/// The node roles NodeOUs classify identities into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeRole {
    Client,
    Peer,
    Admin,
    Orderer,
}

impl NodeRole {
    /// The `MSPRoleType` name Fabric prints in messages.
    pub fn fabric_name(self) -> &'static str {
        match self {
            NodeRole::Client => "CLIENT",
            NodeRole::Peer => "PEER",
            NodeRole::Admin => "ADMIN",
            NodeRole::Orderer => "ORDERER",
        }
    }
}

/// An organizational unit with the hash of the certification chain that must have issued it
/// (empty: any chain of this MSP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OuId {
    pub name: String,
    pub certifiers: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct NodeOus {
    pub enforced: bool,
    pub client: Option<OuId>,
    pub peer: Option<OuId>,
    pub admin: Option<OuId>,
    pub orderer: Option<OuId>,
}

impl NodeOus {
    pub(crate) fn for_role(&self, role: NodeRole) -> Option<&OuId> {
        match role {
            NodeRole::Client => self.client.as_ref(),
            NodeRole::Peer => self.peer.as_ref(),
            NodeRole::Admin => self.admin.as_ref(),
            NodeRole::Orderer => self.orderer.as_ref(),
        }
    }
}

#[derive(Debug)]
struct Crl {
    aki: Option<Vec<u8>>,
    revoked: Vec<Vec<u8>>,
    sig_alg: String,
    der: Vec<u8>,
}

/// An X.509 membership service provider. See the crate documentation for what it decides.
pub struct Msp {
    name: Arc<str>,
    roots: Vec<Arc<Cert>>,
    intermediates: Vec<Arc<Cert>>,
    /// DER of CAs that issued an intermediate: identities must come from a leaf CA.
    internal_nodes: HashSet<Vec<u8>>,
    admins: Vec<Arc<Cert>>,
    crls: Vec<Crl>,
    ou_identifiers: Vec<OuId>,
    pub(crate) node_ous: NodeOus,
    tls_root_certs: Vec<Bytes>,
    tls_intermediate_certs: Vec<Bytes>,
    config: FabricMspConfig,
    identities: Mutex<HashMap<Bytes, Identity>>,
}

impl std::fmt::Debug for Msp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Msp")
            .field("name", &self.name)
            .field("roots", &self.roots.len())
            .field("intermediates", &self.intermediates.len())
            .field("admins", &self.admins.len())
            .field("node_ous", &self.node_ous.enforced)
            .finish()
    }
}

fn setup_err(msg: impl Into<String>) -> MspError {
    MspError::Setup(msg.into())
}

fn cert_from_pem(pem: &[u8]) -> Result<Cert, MspError> {
    if pem.is_empty() {
        return Err(setup_err("getCertFromPem error: nil idBytes"));
    }
    Cert::from_pem(pem).map_err(|e| setup_err(format!("getCertFromPem error: {e}")))
}

/// Time at which Fabric validates a certificate's chain: one second after it became valid, so
/// that expiry never matters to the MSP.
fn validation_time(cert: &Cert) -> i64 {
    cert.not_before.saturating_add(1)
}

/// Fabric's `getUniqueValidationChain`: exactly one chain, or an error.
fn unique_chain(cert: &Cert, pool: &Pool<'_>) -> Result<Vec<Arc<Cert>>, String> {
    let mut chains = verify_chains(cert, pool, validation_time(cert), KeyUsage::ServerAuth)
        .map_err(|e| format!("the supplied identity is not valid: {e}"))?;
    if chains.len() != 1 {
        return Err(format!(
            "this MSP only supports a single validation chain, got {}",
            chains.len()
        ));
    }
    Ok(chains.remove(0))
}

/// Fabric v2.5's `sanitizeCert`: a self-signed CA is sanitized against itself (so roots whose
/// self-signature is high-S are accepted, unlike v2.4.9); anything else needs a chain of at least
/// one issuer in `pool` and is sanitized with the issuer's curve. Returns the sanitized
/// certificate and its chain above it.
fn sanitize(cert: Cert, pool: &Pool<'_>) -> Result<(Cert, Vec<Arc<Cert>>), MspError> {
    if !cx::is_ecdsa_signed(
        &cx::parse_certificate(cert.der()).map_err(|e| MspError::BadCertificate(e.to_string()))?,
    ) {
        let chain = unique_chain(&cert, pool).map_err(MspError::NoChain)?;
        return Ok((cert, chain));
    }
    if cert.is_ca() && cert.is_signed_by(&cert) {
        let curve = cert.public_key.curve();
        let root = Arc::new(cert.sanitized(curve)?);
        let own = [root.clone()];
        unique_chain(
            &root,
            &Pool {
                roots: &own,
                intermediates: &[],
            },
        )
        .map_err(|e| MspError::NoChain(format!("sanitizeCert failed {e}")))?;
        let root = Arc::try_unwrap(root).unwrap_or_else(|arc| (*arc).clone());
        return Ok((root, Vec::new()));
    }
    let chain = unique_chain(&cert, pool)
        .map_err(|e| MspError::NoChain(format!("sanitizeCert failed {e}")))?;
    let Some(issuer) = chain.first() else {
        return Err(MspError::NoChain(format!(
            "failed to traverse certificate verification chain for leaf or intermediate certificate, with subject CN={}",
            cert.common_name
        )));
    };
    let curve = issuer.public_key.curve();
    Ok((cert.sanitized(curve)?, chain))
}

fn parse_crl(raw: &[u8]) -> Result<Crl, MspError> {
    use x509_parser::prelude::FromDer;
    use x509_parser::revocation_list::CertificateRevocationList;
    let bad = |e: &dyn std::fmt::Display| setup_err(format!("could not parse RevocationList: {e}"));
    // Go's x509.ParseCRL takes PEM ("X509 CRL") or DER.
    let der = if raw.starts_with(b"-----BEGIN") {
        cx::first_pem_der(raw).map_err(|e| bad(&e))?
    } else {
        raw.to_vec()
    };
    let (aki, revoked, sig_alg) = {
        let (_, crl) = CertificateRevocationList::from_der(&der).map_err(|e| bad(&e))?;
        let mut aki = None;
        for ext in crl.extensions() {
            if let x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(a) =
                ext.parsed_extension()
            {
                aki = a.key_identifier.as_ref().map(|k| k.0.to_vec());
            }
        }
        let revoked: Vec<Vec<u8>> = crl
            .iter_revoked_certificates()
            .map(|r| strip_zeros(r.raw_serial()))
            .collect();
        (
            aki,
            revoked,
            crl.signature_algorithm.algorithm.to_id_string(),
        )
    };
    Ok(Crl {
        aki,
        revoked,
        sig_alg,
        der,
    })
}

impl Msp {
    /// Sets up an MSP from an `MSPConfig` (as found in a channel config's `MSP` value).
    pub fn from_msp_config(config: &MspConfig) -> Result<Self, MspError> {
        if config.r#type != MSP_TYPE_FABRIC {
            return Err(MspError::UnsupportedMspType(config.r#type));
        }
        let fabric = FabricMspConfig::decode(config.config.clone())
            .map_err(|e| setup_err(format!("failed unmarshalling fabric msp config: {e}")))?;
        Self::new(&fabric)
    }

    /// Sets up an MSP from a `FabricMSPConfig`, in Fabric's order (`setupV142`), failing with
    /// Fabric's reasons.
    pub fn new(conf: &FabricMspConfig) -> Result<Self, MspError> {
        let name: Arc<str> = Arc::from(conf.name.as_str());
        // 1. Crypto: only Fabric's defaults (SHA2 family, SHA256 identifiers) are supported.
        if let Some(cc) = &conf.crypto_config {
            if !matches!(cc.signature_hash_family.as_str(), "" | "SHA2") {
                return Err(setup_err(format!(
                    "unsupported signature hash family {:?} (Ordo supports SHA2)",
                    cc.signature_hash_family
                )));
            }
            if !matches!(cc.identity_identifier_hash_function.as_str(), "" | "SHA256") {
                return Err(setup_err(format!(
                    "unsupported identity identifier hash function {:?} (Ordo supports SHA256)",
                    cc.identity_identifier_hash_function
                )));
            }
        }

        // 2. CAs: parse, sanitize, and rebuild the pool from the sanitized certificates.
        if conf.root_certs.is_empty() {
            return Err(setup_err("expected at least one CA certificate"));
        }
        let raw_roots: Vec<Arc<Cert>> = dedup(
            conf.root_certs
                .iter()
                .map(|p| cert_from_pem(p).map(Arc::new))
                .collect::<Result<_, _>>()?,
        );
        let raw_inters: Vec<Arc<Cert>> = dedup(
            conf.intermediate_certs
                .iter()
                .map(|p| cert_from_pem(p).map(Arc::new))
                .collect::<Result<_, _>>()?,
        );
        let provisional = Pool {
            roots: &raw_roots,
            intermediates: &raw_inters,
        };
        let mut roots = Vec::new();
        for c in &raw_roots {
            roots.push(Arc::new(sanitize((**c).clone(), &provisional)?.0));
        }
        let mut intermediates = Vec::new();
        for c in &raw_inters {
            intermediates.push(Arc::new(sanitize((**c).clone(), &provisional)?.0));
        }
        let roots = dedup(roots);
        let intermediates = dedup(intermediates);

        // 3. CRLs.
        let crls = conf
            .revocation_list
            .iter()
            .map(|r| parse_crl(r))
            .collect::<Result<Vec<_>, _>>()?;

        let mut msp = Msp {
            name,
            roots,
            intermediates,
            internal_nodes: HashSet::new(),
            admins: Vec::new(),
            crls,
            ou_identifiers: Vec::new(),
            node_ous: NodeOus::default(),
            tls_root_certs: conf.tls_root_certs.clone(),
            tls_intermediate_certs: conf.tls_intermediate_certs.clone(),
            config: conf.clone(),
            identities: Mutex::new(HashMap::new()),
        };

        // 4. Every CA must be a CA, carry an SKI and validate (intermediates against the CRLs);
        // then mark the CAs that issued intermediates.
        for ca in msp.roots.iter().chain(&msp.intermediates) {
            check_ca_shape(ca)?;
            let chain = unique_chain(ca, &msp.pool()).map_err(|e| {
                setup_err(format!(
                    "CA Certificate is not valid, (SN: {}): could not obtain certification chain: {e}",
                    hex::encode(&ca.serial)
                ))
            })?;
            if let Some(issuer) = chain.first() {
                msp.check_crls(ca, issuer).map_err(|e| {
                    setup_err(format!(
                        "CA Certificate is not valid, (SN: {}): {e}",
                        hex::encode(&ca.serial)
                    ))
                })?;
            }
        }
        let mut internal = HashSet::new();
        for inter in &msp.intermediates {
            let chain = unique_chain(inter, &msp.pool()).map_err(|e| {
                setup_err(format!(
                    "failed getting validation chain, (SN: {}): {e}",
                    hex::encode(&inter.serial)
                ))
            })?;
            internal.extend(chain.iter().map(|c| c.der().to_vec()));
        }
        msp.internal_nodes = internal;

        // 6. TLS CAs: not sanitized; each a CA with an SKI, chaining within the TLS pool.
        msp.setup_tls_cas()?;

        // 7. Organizational-unit restrictions.
        for ou in &conf.organizational_unit_identifiers {
            let certifiers = msp.certifiers_identifier(&ou.certificate).map_err(|e| {
                setup_err(format!(
                    "failed getting certificate for [{}]: {e}",
                    ou.organizational_unit_identifier
                ))
            })?;
            let id = OuId {
                name: ou.organizational_unit_identifier.clone(),
                certifiers,
            };
            if !msp.ou_identifiers.contains(&id) {
                msp.ou_identifiers.push(id);
            }
        }

        // 8. NodeOUs.
        if let Some(n) = &conf.fabric_node_ous {
            let mut node = NodeOus {
                enforced: n.enable,
                ..NodeOus::default()
            };
            let mut count = 0;
            let mut setup_ou = |o: &Option<FabricOuIdentifier>| -> Result<Option<OuId>, MspError> {
                let Some(o) = o else { return Ok(None) };
                count += 1;
                let certifiers = if o.certificate.is_empty() {
                    Vec::new()
                } else {
                    msp.certifiers_identifier(&o.certificate)?
                };
                Ok(Some(OuId {
                    name: o.organizational_unit_identifier.clone(),
                    certifiers,
                }))
            };
            node.client = setup_ou(&n.client_ou_identifier)?;
            node.peer = setup_ou(&n.peer_ou_identifier)?;
            node.admin = setup_ou(&n.admin_ou_identifier)?;
            node.orderer = setup_ou(&n.orderer_ou_identifier)?;
            if count == 0 {
                node.enforced = false;
            }
            msp.node_ous = node;
        }

        // 9. Admins (sanitized, so each needs a chain).
        for pem in &conf.admins {
            let id = msp.identity_from_pem(pem)?;
            msp.admins.push(id.cert.clone());
        }
        if msp.admins.is_empty() && (!msp.node_ous.enforced || msp.node_ous.admin.is_none()) {
            return Err(setup_err(
                "administrators must be declared when no admin ou classification is set",
            ));
        }

        // 10. Admins must be valid members, or (with NodeOUs) clients or admins.
        for (i, pem) in conf.admins.iter().enumerate() {
            let id = msp.identity_from_pem(pem)?;
            if !msp.node_ous.enforced {
                msp.validate(&id)
                    .map_err(|e| setup_err(format!("admin {i} is invalid: {e}")))?;
            } else {
                let c = msp.has_ou_role(&id, NodeRole::Client);
                let a = msp.has_ou_role(&id, NodeRole::Admin);
                if let (Err(c), Err(a)) = (c, a) {
                    return Err(setup_err(format!("admin {i} is invalid [{c},{a}]")));
                }
            }
        }
        Ok(msp)
    }

    fn pool(&self) -> Pool<'_> {
        Pool {
            roots: &self.roots,
            intermediates: &self.intermediates,
        }
    }

    fn setup_tls_cas(&self) -> Result<(), MspError> {
        let parse = |v: &[Bytes]| -> Result<Vec<Arc<Cert>>, MspError> {
            v.iter().map(|p| cert_from_pem(p).map(Arc::new)).collect()
        };
        let roots = parse(&self.tls_root_certs)?;
        let inters = parse(&self.tls_intermediate_certs)?;
        let pool = Pool {
            roots: &roots,
            intermediates: &inters,
        };
        for ca in roots.iter().chain(&inters) {
            check_ca_shape(ca)?;
            let chain = unique_chain(ca, &pool).map_err(|e| {
                setup_err(format!(
                    "CA Certificate is not valid, (SN: {}): {e}",
                    hex::encode(&ca.serial)
                ))
            })?;
            if let Some(issuer) = chain.first() {
                self.check_crls(ca, issuer).map_err(|e| {
                    setup_err(format!(
                        "CA Certificate is not valid, (SN: {}): {e}",
                        hex::encode(&ca.serial)
                    ))
                })?;
            }
        }
        Ok(())
    }

    /// Fabric's `getCertifiersIdentifier`: the configured certificate must be one of this MSP's
    /// CAs; the identifier is the hash of its chain, itself included.
    fn certifiers_identifier(&self, pem: &[u8]) -> Result<Vec<u8>, MspError> {
        let cert = cert_from_pem(pem)?;
        let (cert, chain) = sanitize(cert, &self.pool())?;
        let is_root = self.roots.iter().any(|r| **r == cert);
        if !is_root && !self.intermediates.iter().any(|r| **r == cert) {
            return Err(setup_err(format!(
                "Failed adding OU. Certificate [CN={}] not in root or intermediate certs.",
                cert.common_name
            )));
        }
        if is_root {
            return Ok(sha256(cert.der()).to_vec());
        }
        if self.internal_nodes.contains(cert.der()) {
            return Err(setup_err(format!(
                "Failed computing validation chain for [CN={}]. [invalid validation chain. Parent certificate should be a leaf of the certification tree]",
                cert.common_name
            )));
        }
        let mut parts: Vec<&[u8]> = vec![cert.der()];
        parts.extend(chain.iter().map(|c| c.der()));
        Ok(sha256_concat(&parts).to_vec())
    }

    /// The MSP's identifier (`FabricMSPConfig.name`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration this MSP was built from.
    pub fn config(&self) -> &FabricMspConfig {
        &self.config
    }

    /// The TLS root certificates (PEM, as configured).
    pub fn tls_root_certs(&self) -> &[Bytes] {
        &self.tls_root_certs
    }

    /// The TLS intermediate certificates (PEM, as configured).
    pub fn tls_intermediate_certs(&self) -> &[Bytes] {
        &self.tls_intermediate_certs
    }

    /// Whether NodeOU classification is in force.
    pub fn node_ous_enabled(&self) -> bool {
        self.node_ous.enforced
    }

    /// Deserializes a marshalled `SerializedIdentity` that must name this MSP.
    pub fn deserialize_identity(&self, serialized: &[u8]) -> Result<Identity, MspError> {
        let sid = SerializedIdentity::decode(serialized)
            .map_err(|e| MspError::BadSerializedIdentity(e.to_string()))?;
        if sid.mspid != *self.name {
            return Err(MspError::WrongMsp {
                expected: self.name.to_string(),
                received: sid.mspid,
            });
        }
        self.identity_from_pem(&sid.id_bytes)
    }

    /// An identity from a PEM certificate (`deserializeIdentityInternal`), cached by its bytes.
    pub fn identity_from_pem(&self, pem: &Bytes) -> Result<Identity, MspError> {
        if let Some(id) = self.cache().get(pem) {
            return Ok(id.clone());
        }
        let der = cx::first_pem_der(pem).map_err(|_| MspError::BadPem)?;
        let cert = Cert::from_der(&der)?;
        let (cert, parents) = sanitize(cert, &self.pool())?;
        let id = Identity {
            msp_id: self.name.clone(),
            id: Arc::from(hex::encode(sha256(cert.der()))),
            cert: Arc::new(cert),
            parents: Arc::from(parents),
        };
        let mut cache = self.cache();
        if cache.len() >= IDENTITY_CACHE_SIZE {
            // Bounded without bookkeeping: the working set of creators is small and refills fast.
            cache.clear();
        }
        cache.insert(pem.clone(), id.clone());
        Ok(id)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<Bytes, Identity>> {
        // A panic while holding this lock cannot leave the map inconsistent (inserts are atomic
        // from the map's point of view), so a poisoned lock is safe to reuse.
        self.identities.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fabric's `Validate`: the identity is not a CA, has a single chain whose issuer is a leaf CA,
    /// is not revoked, and carries the organizational units this MSP requires.
    pub fn validate(&self, id: &Identity) -> Result<(), MspError> {
        if *id.msp_id != *self.name {
            return Err(MspError::WrongMsp {
                expected: self.name.to_string(),
                received: id.msp_id.to_string(),
            });
        }
        if id.cert.is_ca() {
            return Err(MspError::CaAsIdentity);
        }
        let Some(issuer) = id.parents.first() else {
            return Err(MspError::NoChain(
                "failed getting validation chain: expected a chain of length at least 2, got 1"
                    .to_string(),
            ));
        };
        if self.internal_nodes.contains(issuer.der()) {
            return Err(MspError::NoChain(
                "failed getting validation chain: invalid validation chain. Parent certificate should be a leaf of the certification tree".to_string(),
            ));
        }
        self.check_crls(&id.cert, issuer)
            .map_err(MspError::Revoked)?;
        self.check_ous(id).map_err(MspError::BadOus)
    }

    /// Fabric's `validateCertAgainstChain`: refuse a certificate whose serial is listed in a CRL
    /// issued (same AKI, good signature) by its issuer.
    fn check_crls(&self, cert: &Cert, issuer: &Cert) -> Result<(), String> {
        if self.crls.is_empty() {
            return Ok(());
        }
        let Some(ski) = issuer.ski.as_ref() else {
            return Err("could not obtain Subject Key Identifier for signer cert: subjectKeyIdentifier not found in certificate".to_string());
        };
        for crl in &self.crls {
            let Some(aki) = crl.aki.as_ref() else {
                return Err("could not obtain Authority Key Identifier for crl: authorityKeyIdentifier not found in certificate".to_string());
            };
            if aki != ski || !crl.revoked.contains(&cert.serial) {
                continue;
            }
            let signed = cx::split_signed(&crl.der).and_then(|(tbs, sig)| {
                cx::verify_signed_data(&issuer.public_key, &crl.sig_alg, tbs, sig)
            });
            if signed.is_ok() {
                return Err("The certificate has been revoked".to_string());
            }
            // A CRL that names the serial but is not signed by the issuer proves nothing.
        }
        Ok(())
    }

    fn ous_display(id: &Identity) -> String {
        let items: Vec<String> = id
            .organizational_units()
            .iter()
            .map(|(ou, cid)| format!("{ou}({})", hex::encode_upper(&cid[..8])))
            .collect();
        format!("[{}]", items.join(" "))
    }

    /// Fabric's `validateIdentityOUsV142`.
    fn check_ous(&self, id: &Identity) -> Result<(), String> {
        let ous = id.organizational_units();
        if !self.ou_identifiers.is_empty() {
            if ous.is_empty() {
                return Err(
                    "the identity certificate does not contain an Organizational Unit (OU)"
                        .to_string(),
                );
            }
            let found = ous.iter().any(|(ou, cid)| {
                self.ou_identifiers
                    .iter()
                    .any(|o| o.name == *ou && o.certifiers == cid)
            });
            if !found {
                return Err(format!(
                    "none of the identity's organizational units {} are in MSP {}",
                    Self::ous_display(id),
                    self.name
                ));
            }
        }
        if !self.node_ous.enforced {
            return Ok(());
        }
        // Later node OUs with the same name replace earlier ones, as in Fabric's map.
        let mut special: HashMap<&str, &OuId> = HashMap::new();
        for o in [
            &self.node_ous.client,
            &self.node_ous.peer,
            &self.node_ous.admin,
            &self.node_ous.orderer,
        ]
        .into_iter()
        .flatten()
        {
            special.insert(o.name.as_str(), o);
        }
        let mut count = 0;
        for (ou, cid) in &ous {
            let Some(node_ou) = special.get(ou.as_str()) else {
                continue;
            };
            if !node_ou.certifiers.is_empty() && node_ou.certifiers != cid {
                return Err(format!(
                    "certifiersIdentifier does not match: {}, MSP: [{}]",
                    Self::ous_display(id),
                    self.name
                ));
            }
            count += 1;
            if count > 1 {
                break;
            }
        }
        match count {
            0 => Err(format!(
                "the identity does not have an OU that resolves to client, peer, orderer, or admin role. OUs: {}, MSP: [{}]",
                Self::ous_display(id),
                self.name
            )),
            1 => Ok(()),
            _ => Err(format!(
                "the identity must have a client, a peer, an orderer, or an admin OU role to be valid, not a combination of them. OUs: {}, MSP: [{}]",
                Self::ous_display(id),
                self.name
            )),
        }
    }

    /// Fabric's `hasOURole`: the identity carries the OU (by name) that NodeOUs assign to `role`.
    pub(crate) fn has_ou_role(&self, id: &Identity, role: NodeRole) -> Result<(), String> {
        if !self.node_ous.enforced {
            return Err("NodeOUs not activated. Cannot tell apart identities.".to_string());
        }
        let Some(node_ou) = self.node_ous.for_role(role) else {
            return Err(format!(
                "cannot test for classification, node ou for type [{}], not defined, msp: [{}]",
                role.fabric_name(),
                self.name
            ));
        };
        if id
            .organizational_units()
            .iter()
            .any(|(ou, _)| *ou == node_ou.name)
        {
            Ok(())
        } else {
            Err(format!(
                "The identity does not contain OU [{}], MSP: [{}]",
                role.fabric_name(),
                self.name
            ))
        }
    }

    /// Whether the identity's certificate is one of the listed admin certificates.
    pub(crate) fn is_in_admins(&self, id: &Identity) -> bool {
        self.admins.iter().any(|a| **a == *id.cert)
    }

    /// The node role the identity has under NodeOUs, if it is valid and classified.
    pub fn node_role(&self, id: &Identity) -> Option<NodeRole> {
        if self.validate(id).is_err() {
            return None;
        }
        [
            NodeRole::Admin,
            NodeRole::Orderer,
            NodeRole::Peer,
            NodeRole::Client,
        ]
        .into_iter()
        .find(|r| self.has_ou_role(id, *r).is_ok())
    }
}

fn check_ca_shape(ca: &Cert) -> Result<(), MspError> {
    if !ca.is_ca() {
        return Err(setup_err(format!(
            "CA Certificate did not have the CA attribute, (SN: {})",
            hex::encode(&ca.serial)
        )));
    }
    if ca.ski.is_none() {
        return Err(setup_err(format!(
            "CA Certificate problem with Subject Key Identifier extension, (SN: {}): subjectKeyIdentifier not found in certificate",
            hex::encode(&ca.serial)
        )));
    }
    Ok(())
}

/// Removes byte-identical duplicates, keeping the first (Go's `CertPool.AddCert` ignores them).
fn dedup(certs: Vec<Arc<Cert>>) -> Vec<Arc<Cert>> {
    let mut out: Vec<Arc<Cert>> = Vec::with_capacity(certs.len());
    for c in certs {
        if !out.iter().any(|o| o.der() == c.der()) {
            out.push(c);
        }
    }
    out
}
