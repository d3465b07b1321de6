use bytes::Bytes;
use ordo_crypto::SigningKey;
use ordo_proto::msp::SerializedIdentity;
use prost::Message;

use crate::MspError;

/// An identity that can sign: an MSP ID, its certificate (PEM, exactly as read from `signcerts`)
/// and the matching private key. What an orderer signs blocks with and an admin signs config
/// updates with.
#[derive(Debug)]
pub struct SigningIdentity {
    msp_id: String,
    cert_pem: Bytes,
    key: SigningKey,
    serialized: Bytes,
}

impl SigningIdentity {
    /// Pairs a certificate with its key, refusing a key that is not the certificate's.
    pub fn new(
        msp_id: impl Into<String>,
        cert_pem: Bytes,
        key: SigningKey,
    ) -> Result<Self, MspError> {
        let cert = crate::Cert::from_pem(&cert_pem)?;
        if cert.public_key() != key.public_key() {
            return Err(MspError::Setup(
                "the private key does not match the signing certificate".to_string(),
            ));
        }
        let msp_id = msp_id.into();
        let serialized = SerializedIdentity {
            mspid: msp_id.clone(),
            id_bytes: cert_pem.clone(),
        }
        .encode_to_vec()
        .into();
        Ok(SigningIdentity {
            msp_id,
            cert_pem,
            key,
            serialized,
        })
    }

    pub fn msp_id(&self) -> &str {
        &self.msp_id
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> &Bytes {
        &self.cert_pem
    }

    /// The marshalled `SerializedIdentity{mspid, id_bytes}` that goes into signature headers as
    /// `creator`.
    pub fn serialized(&self) -> &Bytes {
        &self.serialized
    }

    pub fn public_key(&self) -> &ordo_crypto::PublicKey {
        self.key.public_key()
    }

    /// Signs SHA-256(`msg`), low-S DER.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, MspError> {
        Ok(self.key.sign(msg)?)
    }
}
