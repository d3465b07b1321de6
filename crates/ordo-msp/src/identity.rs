use std::sync::Arc;

use ordo_crypto::sha256_concat;

use crate::{Cert, MspError};

/// An identity deserialized by an MSP: its sanitized certificate and the validation chain found
/// for it (issuer first, root last). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Identity {
    pub(crate) msp_id: Arc<str>,
    /// hex(SHA-256(sanitized DER)), Fabric's `IdentityIdentifier.Id`.
    pub(crate) id: Arc<str>,
    pub(crate) cert: Arc<Cert>,
    /// The certificates above this one, issuer first. Empty for a self-signed root.
    pub(crate) parents: Arc<[Arc<Cert>]>,
}

impl Identity {
    /// The MSP this identity belongs to.
    pub fn msp_id(&self) -> &str {
        &self.msp_id
    }

    /// Fabric's identity id: hex SHA-256 of the sanitized certificate. `(msp_id, id)` is the key
    /// policies use to count each signer once.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn cert(&self) -> &Cert {
        &self.cert
    }

    /// When the certificate expires (seconds since the Unix epoch). The MSP never checks this;
    /// Broadcast and Deliver do.
    pub fn expires_at(&self) -> i64 {
        self.cert.not_after
    }

    /// Fabric's expiration check (Broadcast filter, Deliver): refuses an identity whose
    /// certificate's NotAfter is before `now` (seconds since the Unix epoch).
    pub fn check_not_expired(&self, now: i64) -> Result<(), MspError> {
        if self.cert.not_after < now {
            return Err(MspError::Expired {
                not_after: self.cert.not_after,
            });
        }
        Ok(())
    }

    /// Verifies a signature made by this identity over `msg` (SHA-256, DER, low-S required).
    pub fn verify(&self, msg: &[u8], signature: &[u8]) -> Result<(), MspError> {
        if signature.is_empty() {
            return Err(MspError::Signature(
                ordo_crypto::CryptoError::MalformedSignature("Invalid signature. Cannot be empty."),
            ));
        }
        Ok(self.cert.public_key.verify(msg, signature)?)
    }

    /// Hash of the chain above the certificate (issuer first): Fabric's certifiers identifier
    /// for this identity's organizational units.
    pub(crate) fn chain_identifier(&self) -> [u8; 32] {
        let parts: Vec<&[u8]> = self.parents.iter().map(|c| c.der()).collect();
        sha256_concat(&parts)
    }

    /// `(OU, certifiers identifier)` for each OU of the subject, in certificate order
    /// (`GetOrganizationalUnits`). A CA certificate or one without a chain has none.
    pub fn organizational_units(&self) -> Vec<(String, [u8; 32])> {
        if self.cert.is_ca() || self.parents.is_empty() {
            return Vec::new();
        }
        let cid = self.chain_identifier();
        self.cert.ous.iter().map(|ou| (ou.clone(), cid)).collect()
    }
}
