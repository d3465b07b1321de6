'use strict';
// Fabric wire helpers for the interop client, written independently of Ordo's Rust code.
// Messages are built, serialised and decoded only with Fabric's own generated JS classes
// (npm `fabric-protos`, the static protobufjs bundle). What is hashed and signed follows Fabric:
//   - block header hash  = SHA-256(ASN.1 DER SEQUENCE{INTEGER number, OCTET STRING previous_hash,
//                          OCTET STRING data_hash})           (protoutil.BlockHeaderBytes)
//   - block data hash    = SHA-256(data[0] ‖ data[1] ‖ …)    (protoutil.BlockDataHash)
//   - block signature    = ECDSA over SIGNATURES.value ‖ signature_header ‖ DER header bytes
//                                                             (multichannel/blockwriter.go)
//   - envelope signature = ECDSA P-256 / SHA-256 over the payload bytes, DER, low-S (bccsp/sw)

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const fabprotos = require('fabric-protos');

const { common, orderer, msp } = fabprotos;
const Timestamp = fabprotos.google.protobuf.Timestamp;

// Order n of the P-256 group.
const P256_N = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');
const P256_HALF_N = P256_N >> 1n;

function sha256(...parts) {
  const h = crypto.createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

// ---------------------------------------------------------------- tiny DER encoder / decoder

function derLength(len) {
  if (len < 0x80) return Buffer.from([len]);
  const bytes = [];
  for (let l = len; l > 0; l >>= 8) bytes.unshift(l & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

function derTLV(tag, content) {
  return Buffer.concat([Buffer.from([tag]), derLength(content.length), content]);
}

// Minimal two's-complement encoding of a non-negative BigInt.
function derIntegerFromBigInt(v) {
  if (typeof v !== 'bigint' || v < 0n) throw new Error(`DER INTEGER: need a non-negative BigInt, got ${v}`);
  let hex = v.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  let bytes = Buffer.from(hex, 'hex');
  if (bytes[0] & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  return derTLV(0x02, bytes);
}

function derOctetString(buf) {
  return derTLV(0x04, Buffer.from(buf || []));
}

function derSequence(...items) {
  return derTLV(0x30, Buffer.concat(items));
}

// Reads one TLV at offset; returns {tag, content, end}. Only definite short/long lengths.
function derRead(buf, offset) {
  if (offset + 2 > buf.length) throw new Error('DER: truncated');
  const tag = buf[offset];
  let len = buf[offset + 1];
  let p = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || p + n > buf.length) throw new Error('DER: bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i];
    p += n;
  }
  if (p + len > buf.length) throw new Error('DER: truncated content');
  return { tag, content: buf.subarray(p, p + len), end: p + len };
}

// ---------------------------------------------------------------- ECDSA signatures (low-S)

function parseDerSignature(sig) {
  const seq = derRead(sig, 0);
  if (seq.tag !== 0x30 || seq.end !== sig.length) throw new Error('ECDSA signature: not a single DER SEQUENCE');
  const r = derRead(seq.content, 0);
  const s = derRead(seq.content, r.end);
  if (r.tag !== 0x02 || s.tag !== 0x02 || s.end !== seq.content.length) throw new Error('ECDSA signature: expected SEQUENCE{INTEGER r, INTEGER s}');
  return { r: BigInt('0x' + (r.content.toString('hex') || '0')), s: BigInt('0x' + (s.content.toString('hex') || '0')) };
}

function encodeDerSignature(r, s) {
  return derSequence(derIntegerFromBigInt(r), derIntegerFromBigInt(s));
}

function isLowS(sig) {
  const { s } = parseDerSignature(sig);
  return s <= P256_HALF_N;
}

function toLowS(sig) {
  const { r, s } = parseDerSignature(sig);
  return encodeDerSignature(r, s > P256_HALF_N ? P256_N - s : s);
}

// Fabric's signer: ECDSA P-256 over SHA-256(msg), DER, S normalised to the lower half.
function signLowS(privateKey, msg) {
  return toLowS(crypto.sign('sha256', msg, privateKey));
}

// The same signature with S replaced by n − S (valid ECDSA, but high-S: Fabric rejects it).
function toHighS(sig) {
  const { r, s } = parseDerSignature(sig);
  return encodeDerSignature(r, s <= P256_HALF_N ? P256_N - s : s);
}

// ---------------------------------------------------------------- identities

function loadSigner(mspDir, mspId) {
  const certDir = path.join(mspDir, 'signcerts');
  const keyDir = path.join(mspDir, 'keystore');
  const certFile = fs.readdirSync(certDir).filter((f) => f.endsWith('.pem'))[0];
  const keyFile = fs.readdirSync(keyDir)[0];
  if (!certFile || !keyFile) throw new Error(`no signcert/keystore in ${mspDir}`);
  const certPem = fs.readFileSync(path.join(certDir, certFile));
  const privateKey = crypto.createPrivateKey(fs.readFileSync(path.join(keyDir, keyFile)));
  const creator = Buffer.from(msp.SerializedIdentity.encode({ mspid: mspId, id_bytes: certPem }).finish());
  return { mspId, certPem, privateKey, creator, sign: (msg) => signLowS(privateKey, msg) };
}

// ---------------------------------------------------------------- envelopes

function nowTimestamp() {
  const ms = Date.now();
  return Timestamp.create({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 });
}

function computeTxId(nonce, creator) {
  return sha256(nonce, creator).toString('hex');
}

// Envelope{payload: Payload{header{ChannelHeader, SignatureHeader}, data}, signature}
function buildSignedEnvelope(signer, { type, channelId, data, withTxId = true }) {
  const nonce = crypto.randomBytes(24);
  const txId = withTxId ? computeTxId(nonce, signer.creator) : '';
  const channelHeader = common.ChannelHeader.encode({
    type,
    version: 0,
    timestamp: nowTimestamp(),
    channel_id: channelId,
    tx_id: txId,
    epoch: 0,
  }).finish();
  const signatureHeader = common.SignatureHeader.encode({ creator: signer.creator, nonce }).finish();
  const payload = Buffer.from(common.Payload.encode({
    header: { channel_header: channelHeader, signature_header: signatureHeader },
    data,
  }).finish());
  const signature = signer.sign(payload);
  const bytes = Buffer.from(common.Envelope.encode({ payload, signature }).finish());
  return { txId, payload, signature, bytes };
}

function buildEndorserTx(signer, channelId, data) {
  return buildSignedEnvelope(signer, { type: common.HeaderType.ENDORSER_TRANSACTION, channelId, data });
}

function seekPosition(p) {
  if (p === 'oldest') return { oldest: {} };
  if (p === 'newest') return { newest: {} };
  return { specified: { number: p } };
}

function buildSeekEnvelope(signer, channelId, start, stop, behavior = orderer.SeekInfo.SeekBehavior.BLOCK_UNTIL_READY) {
  const seekInfo = orderer.SeekInfo.encode({
    start: seekPosition(start),
    stop: seekPosition(stop),
    behavior,
  }).finish();
  return buildSignedEnvelope(signer, { type: common.HeaderType.DELIVER_SEEK_INFO, channelId, data: seekInfo });
}

// ---------------------------------------------------------------- blocks

function toBigInt(v) {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') return BigInt(v);
  if (v && typeof v.toString === 'function') return BigInt(v.toString());
  throw new Error(`not an integer: ${v}`);
}

function blockNumber(header) {
  return Number(toBigInt(header.number || 0));
}

function blockHeaderBytes(header) {
  return derSequence(
    derIntegerFromBigInt(toBigInt(header.number || 0)),
    derOctetString(header.previous_hash),
    derOctetString(header.data_hash),
  );
}

function blockHeaderHash(header) {
  return sha256(blockHeaderBytes(header));
}

function blockDataHash(data) {
  return sha256(...(data.data || []).map((d) => Buffer.from(d)));
}

// Decodes an envelope from block data; returns {channelHeader, signatureHeader, payload, envelope}.
function decodeEnvelope(bytes) {
  const envelope = common.Envelope.decode(bytes);
  const payload = common.Payload.decode(envelope.payload);
  const channelHeader = common.ChannelHeader.decode(payload.header.channel_header);
  const signatureHeader = common.SignatureHeader.decode(payload.header.signature_header);
  return { envelope, payload, channelHeader, signatureHeader };
}

function certOfCreator(creatorBytes) {
  const id = msp.SerializedIdentity.decode(creatorBytes);
  return { mspid: id.mspid, certPem: Buffer.from(id.id_bytes).toString() };
}

// Checks SIGNATURES (metadata[0]) of a block: every signature verifies (low-S, ECDSA/SHA-256) over
// value ‖ signature_header ‖ DER header with the creator's certificate key. Returns the signers.
function verifyBlockSignatures(block) {
  const md = block.metadata && block.metadata.metadata;
  if (!md || md.length < 1) throw new Error('block has no metadata slots');
  const sigs = common.Metadata.decode(md[common.BlockMetadataIndex.SIGNATURES]);
  const headerBytes = blockHeaderBytes(block.header);
  const signers = [];
  for (const ms of sigs.signatures) {
    const sh = common.SignatureHeader.decode(ms.signature_header);
    const { mspid, certPem } = certOfCreator(sh.creator);
    const sig = Buffer.from(ms.signature);
    if (!isLowS(sig)) throw new Error(`block ${blockNumber(block.header)}: ${mspid} signature is high-S (Fabric rejects it)`);
    const signed = Buffer.concat([Buffer.from(sigs.value), Buffer.from(ms.signature_header), headerBytes]);
    const key = crypto.createPublicKey(certPem);
    if (!crypto.verify('sha256', signed, key, sig)) {
      throw new Error(`block ${blockNumber(block.header)}: ${mspid} signature does not verify`);
    }
    signers.push({ mspid, subject: new crypto.X509Certificate(certPem).subject.replace(/\n/g, ',') });
  }
  const value = sigs.value && sigs.value.length ? common.OrdererBlockMetadata.decode(sigs.value) : null;
  return { signers, lastConfig: value && value.last_config ? Number(toBigInt(value.last_config.index || 0)) : 0 };
}

// Verifies a chain of decoded blocks (consecutive numbers starting anywhere). `prev` is the
// header of the block before the first one, if known. Returns per-block info.
function verifyChain(blocks, { prevHeader = null, requireSignaturesFrom = null } = {}) {
  const out = [];
  let prev = prevHeader;
  for (const block of blocks) {
    const n = blockNumber(block.header);
    if (prev) {
      const pn = blockNumber(prev);
      if (n !== pn + 1) throw new Error(`block ${n} follows block ${pn}`);
      const want = blockHeaderHash(prev);
      if (!want.equals(Buffer.from(block.header.previous_hash || []))) {
        throw new Error(`block ${n}: previous_hash ${Buffer.from(block.header.previous_hash || []).toString('hex')} != hash of block ${pn} header ${want.toString('hex')}`);
      }
    } else if (n === 0 && (block.header.previous_hash || []).length !== 0) {
      throw new Error('block 0 has a previous_hash');
    }
    const dh = blockDataHash(block.data);
    if (!dh.equals(Buffer.from(block.header.data_hash || []))) {
      throw new Error(`block ${n}: data_hash ${Buffer.from(block.header.data_hash || []).toString('hex')} != SHA-256(data) ${dh.toString('hex')}`);
    }
    const txs = (block.data.data || []).map((d, i) => {
      const e = decodeEnvelope(d);
      const type = e.channelHeader.type;
      if (n > 0 && type !== common.HeaderType.CONFIG) {
        // v2.5 VerifyTransactionsAreWellFormed: payload+signature present, re-marshal identical.
        if (!e.envelope.payload.length || !e.envelope.signature.length) throw new Error(`block ${n} tx ${i}: empty payload or signature`);
        const re = Buffer.from(common.Envelope.encode(e.envelope).finish());
        if (!re.equals(Buffer.from(d))) throw new Error(`block ${n} tx ${i}: envelope does not re-marshal to the same bytes`);
      }
      return { txId: e.channelHeader.tx_id, type, channelId: e.channelHeader.channel_id };
    });
    let sig = { signers: [], lastConfig: null };
    if (n > 0) {
      sig = verifyBlockSignatures(block);
      if (requireSignaturesFrom) {
        if (sig.signers.length !== 1 || sig.signers[0].mspid !== requireSignaturesFrom) {
          throw new Error(`block ${n}: expected exactly one SIGNATURES entry by ${requireSignaturesFrom}, got ${JSON.stringify(sig.signers)}`);
        }
      }
    }
    out.push({ number: n, hash: blockHeaderHash(block.header).toString('hex'), txs, signers: sig.signers, lastConfig: sig.lastConfig });
    prev = block.header;
  }
  return out;
}

module.exports = {
  fabprotos, common, orderer, msp,
  sha256, derIntegerFromBigInt, derOctetString, derSequence, derRead,
  parseDerSignature, encodeDerSignature, isLowS, toLowS, toHighS, signLowS, P256_N, P256_HALF_N,
  loadSigner, computeTxId, buildSignedEnvelope, buildEndorserTx, buildSeekEnvelope,
  blockNumber, blockHeaderBytes, blockHeaderHash, blockDataHash, decodeEnvelope, certOfCreator,
  verifyBlockSignatures, verifyChain,
};
