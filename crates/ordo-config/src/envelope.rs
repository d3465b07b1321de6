//! Envelopes as Fabric's `protoutil` builds and reads them: the signed data of an envelope, a
//! signed envelope of a given header type, and the signatures on a config update.

use bytes::Bytes;
use ordo_msp::SigningIdentity;
use ordo_proto::common::{
    ChannelHeader, ConfigSignature, ConfigUpdateEnvelope, Envelope, Header, HeaderType, Payload,
    SignatureHeader,
};
use prost::Message;

use crate::ConfigError;
use crate::policy::SignedData;

fn decode_err(what: &str, e: impl std::fmt::Display) -> ConfigError {
    ConfigError::Decode(format!("error unmarshalling {what}: {e}"))
}

/// An envelope's payload, channel header and signature header, decoded.
#[derive(Debug, Clone)]
pub struct ParsedEnvelope {
    pub payload: Payload,
    pub channel_header: ChannelHeader,
    pub signature_header: SignatureHeader,
}

/// Decodes the headers of an envelope, refusing a payload without a header.
pub fn parse(env: &Envelope) -> Result<ParsedEnvelope, ConfigError> {
    let payload = Payload::decode(env.payload.clone()).map_err(|e| decode_err("Payload", e))?;
    let header = payload
        .header
        .as_ref()
        .ok_or_else(|| ConfigError::Decode("envelope must have a Header".to_string()))?;
    let channel_header = ChannelHeader::decode(header.channel_header.clone())
        .map_err(|e| decode_err("ChannelHeader", e))?;
    let signature_header = SignatureHeader::decode(header.signature_header.clone())
        .map_err(|e| decode_err("SignatureHeader", e))?;
    Ok(ParsedEnvelope {
        payload,
        channel_header,
        signature_header,
    })
}

/// `EnvelopeAsSignedData`: the payload bytes, signed by the signature header's creator.
pub fn signed_data(env: &Envelope) -> Result<SignedData, ConfigError> {
    let parsed = parse(env)?;
    Ok(SignedData {
        data: env.payload.clone(),
        identity: parsed.signature_header.creator,
        signature: env.signature.clone(),
    })
}

fn now_timestamp() -> prost_types::Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    // Fabric's MakeChannelHeader keeps whole seconds.
    prost_types::Timestamp {
        seconds: secs,
        nanos: 0,
    }
}

/// A signature header for `signer` with a fresh nonce.
pub fn signature_header(signer: &SigningIdentity) -> SignatureHeader {
    SignatureHeader {
        creator: signer.serialized().clone(),
        nonce: Bytes::copy_from_slice(&ordo_crypto::random_nonce()),
    }
}

/// Fabric's `CreateSignedEnvelope`: a payload of `data` on `channel_id` with the given type,
/// version 0, epoch 0, no tx id, signed by `signer`.
pub fn create_signed_envelope(
    header_type: HeaderType,
    channel_id: &str,
    signer: &SigningIdentity,
    data: Bytes,
) -> Result<Envelope, ConfigError> {
    create_signed_envelope_with_tls_binding(header_type, channel_id, signer, data, Bytes::new())
}

/// Fabric's `CreateSignedEnvelopeWithTLSBinding`: as [`create_signed_envelope`], with the
/// SHA-256 of the client's TLS certificate in the channel header (what an orderer under mutual
/// TLS requires of a Deliver request).
pub fn create_signed_envelope_with_tls_binding(
    header_type: HeaderType,
    channel_id: &str,
    signer: &SigningIdentity,
    data: Bytes,
    tls_cert_hash: Bytes,
) -> Result<Envelope, ConfigError> {
    let ch = ChannelHeader {
        r#type: header_type as i32,
        channel_id: channel_id.to_string(),
        timestamp: Some(now_timestamp()),
        tls_cert_hash,
        ..Default::default()
    };
    let payload = Payload {
        header: Some(Header {
            channel_header: ch.encode_to_vec().into(),
            signature_header: signature_header(signer).encode_to_vec().into(),
        }),
        data,
    };
    let payload = Bytes::from(payload.encode_to_vec());
    let signature = signer
        .sign(&payload)
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    Ok(Envelope {
        payload,
        signature: signature.into(),
    })
}

/// A `ConfigSignature` by `signer` over `signature_header ‖ config_update`.
pub fn sign_config_update(
    signer: &SigningIdentity,
    config_update: &[u8],
) -> Result<ConfigSignature, ConfigError> {
    let header = Bytes::from(signature_header(signer).encode_to_vec());
    let mut msg = Vec::with_capacity(header.len() + config_update.len());
    msg.extend_from_slice(&header);
    msg.extend_from_slice(config_update);
    let signature = signer
        .sign(&msg)
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    Ok(ConfigSignature {
        signature_header: header,
        signature: signature.into(),
    })
}

/// Adds `signer`'s signature to a `ConfigUpdateEnvelope` (what `peer channel signconfigtx` does).
pub fn add_config_signature(
    cue: &mut ConfigUpdateEnvelope,
    signer: &SigningIdentity,
) -> Result<(), ConfigError> {
    let sig = sign_config_update(signer, &cue.config_update)?;
    cue.signatures.push(sig);
    Ok(())
}

/// The `ConfigEnvelope` of a CONFIG envelope (a config block's only transaction).
pub fn config_envelope(env: &Envelope) -> Result<ordo_proto::common::ConfigEnvelope, ConfigError> {
    let parsed = parse(env)?;
    if parsed.channel_header.r#type != HeaderType::Config as i32 {
        return Err(ConfigError::Decode(format!(
            "invalid type {}, expected CONFIG",
            parsed.channel_header.r#type
        )));
    }
    ordo_proto::common::ConfigEnvelope::decode(parsed.payload.data)
        .map_err(|e| decode_err("ConfigEnvelope", e))
}
