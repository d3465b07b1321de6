//! Block hashing, metadata and signatures (`protoutil/blockutils.go`,
//! `orderer/common/multichannel/blockwriter.go`, `orderer/common/cluster/util.go`).

use bytes::Bytes;
use ordo_config::SignedData;
use ordo_config::policy::{Policy, SignatureSet};
use ordo_crypto::der::{TAG_OCTET_STRING, TAG_SEQUENCE, write_tlv, write_unsigned_integer};
use ordo_msp::{MspManager, SigningIdentity};
use ordo_proto::common::{
    Block, BlockData, BlockHeader, BlockMetadata, BlockMetadataIndex, Envelope, LastConfig,
    Metadata, MetadataSignature, OrdererBlockMetadata, SignatureHeader,
};
use prost::Message;

/// Why a block or a chain of blocks is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("block has no header")]
    NoHeader,
    #[error("block has no data")]
    NoData,
    #[error("no metadata in block")]
    NoMetadata,
    #[error("failed unmarshaling metadata for {what}: {reason}")]
    BadMetadata { what: &'static str, reason: String },
    #[error("block [{number}]: computed data hash {computed} does not match header's {claimed}")]
    DataHash {
        number: u64,
        computed: String,
        claimed: String,
    },
    #[error("expected block number {expected} but got {got}")]
    Sequence { expected: u64, got: u64 },
    #[error(
        "block [{number}]: previous hash {claimed} does not match the hash of block [{prev}] {computed}"
    )]
    PrevHash {
        number: u64,
        prev: u64,
        claimed: String,
        computed: String,
    },
    #[error("block [{number}]: signature verification failed: {reason}")]
    Signature { number: u64, reason: String },
    #[error("signing block failed: {0}")]
    Signing(String),
}

/// The number of metadata slots every block carries (`protoutil.NewBlock`).
pub const METADATA_SLOTS: usize = 5;

/// The ASN.1 DER of a header: `SEQUENCE { INTEGER number, OCTET STRING previous_hash, OCTET STRING
/// data_hash }` (`BlockHeaderBytes`). This, not the protobuf, is what is hashed and signed.
pub fn header_bytes(h: &BlockHeader) -> Vec<u8> {
    let mut inner = Vec::with_capacity(80);
    write_unsigned_integer(&mut inner, &h.number.to_be_bytes());
    write_tlv(&mut inner, TAG_OCTET_STRING, &h.previous_hash);
    write_tlv(&mut inner, TAG_OCTET_STRING, &h.data_hash);
    let mut out = Vec::with_capacity(inner.len() + 2);
    write_tlv(&mut out, TAG_SEQUENCE, &inner);
    out
}

/// The hash a block is known by, and that the next block names as its previous hash.
pub fn header_hash(h: &BlockHeader) -> [u8; 32] {
    ordo_crypto::sha256(&header_bytes(h))
}

/// SHA-256 of the envelopes concatenated (`BlockDataHash`); always SHA-256, whatever the channel's
/// HashingAlgorithm says.
pub fn data_hash(data: &BlockData) -> [u8; 32] {
    let parts: Vec<&[u8]> = data.data.iter().map(|d| d.as_ref()).collect();
    ordo_crypto::sha256_concat(&parts)
}

/// A block holding `envelopes` after a block whose header hash is `previous_hash`, with its five
/// metadata slots empty (what the Raft leader proposes).
pub fn new_block(number: u64, previous_hash: &[u8], envelopes: Vec<Bytes>) -> Block {
    let data = BlockData { data: envelopes };
    Block {
        header: Some(BlockHeader {
            number,
            previous_hash: Bytes::copy_from_slice(previous_hash),
            data_hash: Bytes::copy_from_slice(&data_hash(&data)),
        }),
        data: Some(data),
        metadata: Some(BlockMetadata {
            metadata: vec![Bytes::new(); METADATA_SLOTS],
        }),
    }
}

fn header(block: &Block) -> Result<&BlockHeader, BlockError> {
    block.header.as_ref().ok_or(BlockError::NoHeader)
}

fn metadata_slot(block: &Block, idx: BlockMetadataIndex) -> Result<Metadata, BlockError> {
    let slots = block.metadata.as_ref().ok_or(BlockError::NoMetadata)?;
    let raw = slots
        .metadata
        .get(idx as usize)
        .ok_or(BlockError::NoMetadata)?;
    Metadata::decode(raw.clone()).map_err(|e| BlockError::BadMetadata {
        what: idx.as_str_name(),
        reason: e.to_string(),
    })
}

// LAST_CONFIG and ORDERER are deprecated in fabric-protos, but Fabric v2.x still writes LAST_CONFIG
// and reads both as fallbacks; peers and SDKs do too.
#[allow(deprecated)]
/// Fabric's `addLastConfig` + `addBlockSignature`: writes LAST_CONFIG and a SIGNATURES entry made
/// by `signer` over `value ‖ signature_header ‖ DER header`, where `value` is
/// `OrdererBlockMetadata{last_config, consenter_metadata}` and `consenter_metadata` is wrapped
/// once more in a `Metadata` as Fabric does.
pub fn sign_block(
    block: &mut Block,
    signer: &SigningIdentity,
    last_config: u64,
    consenter_metadata: Option<&[u8]>,
) -> Result<(), BlockError> {
    let header_der = header_bytes(header(block)?);
    let value = orderer_block_metadata(last_config, consenter_metadata);
    let sig_header = SignatureHeader {
        creator: signer.serialized().clone(),
        nonce: Bytes::copy_from_slice(&ordo_crypto::random_nonce()),
    }
    .encode_to_vec();
    let mut msg = Vec::with_capacity(value.len() + sig_header.len() + header_der.len());
    msg.extend_from_slice(&value);
    msg.extend_from_slice(&sig_header);
    msg.extend_from_slice(&header_der);
    let signature = signer
        .sign(&msg)
        .map_err(|e| BlockError::Signing(e.to_string()))?;
    let signatures = vec![MetadataSignature {
        signature_header: sig_header.into(),
        signature: signature.into(),
    }];
    put_orderer_metadata(block, value, signatures, last_config);
    Ok(())
}

/// What `sign_block` writes, without a signature: LAST_CONFIG and the SIGNATURES entry's value
/// (last config and consenter metadata) with an empty signature list. For the simulator, whose
/// blocks carry the metadata the Raft core and the engine read back, and whose checker verifies
/// no signature.
pub fn put_unsigned_metadata(block: &mut Block, last_config: u64, consenter_metadata: &[u8]) {
    let value = orderer_block_metadata(last_config, Some(consenter_metadata));
    put_orderer_metadata(block, value, Vec::new(), last_config);
}

/// `OrdererBlockMetadata{last_config, consenter_metadata}`, the consenter metadata wrapped once
/// more in a `Metadata` as Fabric does.
fn orderer_block_metadata(last_config: u64, consenter_metadata: Option<&[u8]>) -> Vec<u8> {
    OrdererBlockMetadata {
        last_config: Some(LastConfig { index: last_config }),
        consenter_metadata: match consenter_metadata {
            Some(m) => Metadata {
                value: Bytes::copy_from_slice(m),
                signatures: vec![],
            }
            .encode_to_vec()
            .into(),
            None => Bytes::new(),
        },
    }
    .encode_to_vec()
}

#[allow(deprecated)]
fn put_orderer_metadata(
    block: &mut Block,
    value: Vec<u8>,
    signatures: Vec<MetadataSignature>,
    last_config: u64,
) {
    let signatures = Metadata {
        value: value.into(),
        signatures,
    };
    let last = Metadata {
        value: LastConfig { index: last_config }.encode_to_vec().into(),
        signatures: vec![],
    };
    let slots = &mut block.metadata.get_or_insert_with(Default::default).metadata;
    slots.resize(slots.len().max(METADATA_SLOTS), Bytes::new());
    slots[BlockMetadataIndex::Signatures as usize] = signatures.encode_to_vec().into();
    slots[BlockMetadataIndex::LastConfig as usize] = last.encode_to_vec().into();
}

#[allow(deprecated)]
/// The index of the last config block (`GetLastConfigIndexFromBlock`): from SIGNATURES, falling
/// back to the deprecated LAST_CONFIG slot when SIGNATURES carries no value.
pub fn last_config_index(block: &Block) -> Result<u64, BlockError> {
    let sigs = metadata_slot(block, BlockMetadataIndex::Signatures)?;
    if !sigs.value.is_empty() {
        let obm =
            OrdererBlockMetadata::decode(sigs.value).map_err(|e| BlockError::BadMetadata {
                what: "OrdererBlockMetadata",
                reason: e.to_string(),
            })?;
        return Ok(obm.last_config.map(|l| l.index).unwrap_or_default());
    }
    let lc = metadata_slot(block, BlockMetadataIndex::LastConfig)?;
    LastConfig::decode(lc.value)
        .map(|l| l.index)
        .map_err(|e| BlockError::BadMetadata {
            what: "LastConfig",
            reason: e.to_string(),
        })
}

#[allow(deprecated)]
/// The consensus metadata of a block (`GetConsenterMetadataFromBlock`): for etcdraft, the
/// marshalled `etcdraft.BlockMetadata`. Falls back to the deprecated ORDERER slot.
pub fn consenter_metadata(block: &Block) -> Result<Bytes, BlockError> {
    let sigs = metadata_slot(block, BlockMetadataIndex::Signatures)?;
    if sigs.value.is_empty() {
        return Ok(metadata_slot(block, BlockMetadataIndex::Orderer)?.value);
    }
    let obm = OrdererBlockMetadata::decode(sigs.value).map_err(|e| BlockError::BadMetadata {
        what: "OrdererBlockMetadata",
        reason: e.to_string(),
    })?;
    let inner = Metadata::decode(obm.consenter_metadata).map_err(|e| BlockError::BadMetadata {
        what: "consenter metadata",
        reason: e.to_string(),
    })?;
    Ok(inner.value)
}

/// The block's signatures as policy input (`SignatureSetFromBlock`).
pub fn signature_set(block: &Block) -> Result<Vec<SignedData>, BlockError> {
    let h = header_bytes(header(block)?);
    let md = metadata_slot(block, BlockMetadataIndex::Signatures)?;
    md.signatures
        .iter()
        .map(|s| {
            let sh = SignatureHeader::decode(s.signature_header.clone()).map_err(|e| {
                BlockError::BadMetadata {
                    what: "signature header",
                    reason: e.to_string(),
                }
            })?;
            let mut data = Vec::with_capacity(md.value.len() + s.signature_header.len() + h.len());
            data.extend_from_slice(&md.value);
            data.extend_from_slice(&s.signature_header);
            data.extend_from_slice(&h);
            Ok(SignedData {
                data: data.into(),
                identity: sh.creator,
                signature: s.signature.clone(),
            })
        })
        .collect()
}

/// Checks a block's signatures against a policy (normally `/Channel/Orderer/BlockValidation`).
pub fn verify_signatures(
    block: &Block,
    policy: &Policy,
    msps: &MspManager,
) -> Result<(), BlockError> {
    let number = header(block)?.number;
    let set = signature_set(block)?;
    policy
        .evaluate(&SignatureSet::new(&set, msps))
        .map_err(|e| BlockError::Signature {
            number,
            reason: e.0,
        })
}

/// Checks that the header's data hash is the hash of the block's data.
pub fn verify_data_hash(block: &Block) -> Result<(), BlockError> {
    let h = header(block)?;
    let data = block.data.as_ref().ok_or(BlockError::NoData)?;
    let computed = data_hash(data);
    if computed[..] != h.data_hash[..] {
        return Err(BlockError::DataHash {
            number: h.number,
            computed: hex::encode(computed),
            claimed: hex::encode(&h.data_hash),
        });
    }
    Ok(())
}

/// Checks that `next` follows `prev`: number + 1 and previous hash = hash of `prev`'s header.
pub fn verify_link(prev: &BlockHeader, next: &Block) -> Result<(), BlockError> {
    let h = header(next)?;
    if h.number != prev.number + 1 {
        return Err(BlockError::Sequence {
            expected: prev.number + 1,
            got: h.number,
        });
    }
    let computed = header_hash(prev);
    if computed[..] != h.previous_hash[..] {
        return Err(BlockError::PrevHash {
            number: h.number,
            prev: prev.number,
            claimed: hex::encode(&h.previous_hash),
            computed: hex::encode(computed),
        });
    }
    Ok(())
}

/// Whether the block is a config block: exactly one envelope, of type CONFIG (v2.5's
/// `IsConfigBlock`).
pub fn is_config_block(block: &Block) -> bool {
    let Some(data) = &block.data else {
        return false;
    };
    let [env] = data.data.as_slice() else {
        return false;
    };
    Envelope::decode(env.clone())
        .ok()
        .and_then(|e| ordo_config::envelope::parse(&e).ok())
        .is_some_and(|p| p.channel_header.r#type == ordo_proto::common::HeaderType::Config as i32)
}
