#!/usr/bin/env node
'use strict';
// Checks the interop client's own block/envelope code against blocks and envelopes made by
// Fabric v2.4.9 (../shared/fixtures/fabric-2.4), so client.js judges Ordo with code that is known
// to accept what Fabric itself produces.
//   node interop/verify-fixtures.js [FIXTURES_DIR]

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const F = require('./lib/fabric');

const FIX = path.resolve(process.argv[2] || path.join(__dirname, '..', '..', 'shared', 'fixtures', 'fabric-2.4'));

let passed = 0;
let failed = 0;
function check(name, fn) {
  try {
    const detail = fn();
    passed++;
    console.log(`ok   ${name}${detail ? ` — ${detail}` : ''}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e.message}`);
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

function loadBlocks(dir) {
  const files = fs.readdirSync(dir).filter((f) => /^block_\d+\.pb$/.test(f));
  files.sort((a, b) => Number(a.match(/\d+/)[0]) - Number(b.match(/\d+/)[0]));
  return files.map((f) => F.common.Block.decode(fs.readFileSync(path.join(dir, f))));
}

check('DER INTEGER is minimal positive two\'s complement', () => {
  const cases = [[0n, '020100'], [1n, '020101'], [127n, '02017f'], [128n, '02020080'], [255n, '020200ff'],
    [256n, '02020100'], [32767n, '02027fff'], [32768n, '0203008000'], [(1n << 64n) - 1n, '020900ffffffffffffffff']];
  for (const [v, hex] of cases) {
    const got = F.derIntegerFromBigInt(v).toString('hex');
    assert(got === hex, `${v}: got ${got}, want ${hex}`);
  }
  const long = F.derOctetString(Buffer.alloc(200)).subarray(0, 3).toString('hex');
  assert(long === '0481c8', `long-form length: ${long}`);
});

check('low-S normalisation: signatures verify before and after, S <= n/2 after', () => {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  let sawHigh = false;
  for (let i = 0; i < 64; i++) {
    const msg = crypto.randomBytes(40);
    const raw = crypto.sign('sha256', msg, privateKey);
    if (!F.isLowS(raw)) sawHigh = true;
    const low = F.toLowS(raw);
    assert(F.isLowS(low), 'still high-S');
    assert(crypto.verify('sha256', msg, publicKey, low), 'low-S signature does not verify');
    assert(crypto.verify('sha256', msg, publicKey, F.toHighS(low)), 'high-S twin does not verify');
    assert(!F.isLowS(F.toHighS(low)), 'toHighS gave low-S');
  }
  assert(sawHigh, 'node never produced a high-S signature in 64 tries (normalisation untested)');
});

check('Fabric envelopes: tx_id = hex(sha256(nonce‖creator)), signature over payload, low/high-S as Fabric judged', () => {
  const env = (name) => F.decodeEnvelope(fs.readFileSync(path.join(FIX, 'envelopes', name)));
  const answer = (name) => JSON.parse(fs.readFileSync(path.join(FIX, 'envelopes', name.replace(/\.pb$/, '.answer.txt'))));
  const valid = env('tx_valid_org1_user1.pb');
  const sh = valid.signatureHeader;
  assert(F.computeTxId(sh.nonce, sh.creator) === valid.channelHeader.tx_id, 'tx_id mismatch');
  assert(valid.channelHeader.tx_id === answer('tx_valid_org1_user1.pb').tx_id, 'tx_id differs from answer');
  const { mspid, certPem } = F.certOfCreator(sh.creator);
  assert(mspid === 'Org1MSP', `mspid ${mspid}`);
  const sig = Buffer.from(valid.envelope.signature);
  assert(F.isLowS(sig), 'Fabric-accepted envelope is high-S?');
  assert(crypto.verify('sha256', valid.envelope.payload, crypto.createPublicKey(certPem), sig), 'valid envelope signature fails');
  const high = env('tx_high_s_signature.pb');
  assert(!F.isLowS(Buffer.from(high.envelope.signature)), 'high-S fixture is low-S');
  assert(answer('tx_high_s_signature.pb').status_code === 403, 'high-S answer not 403');
  const bad = env('tx_bad_signature.pb');
  const badCert = F.certOfCreator(bad.signatureHeader.creator).certPem;
  assert(!crypto.verify('sha256', bad.envelope.payload, crypto.createPublicKey(badCert), Buffer.from(bad.envelope.signature)), 'bad-signature fixture verifies');
  return `tx ${valid.channelHeader.tx_id.slice(0, 16)}…`;
});

check('own envelopes (User1@org1): decode with fabric-protos, tx_id and low-S signature verify', () => {
  const mspDir = path.join(FIX, 'crypto-config/peerOrganizations/org1.example.com/users/User1@org1.example.com/msp');
  const signer = F.loadSigner(mspDir, 'Org1MSP');
  for (let i = 0; i < 32; i++) {
    const e = F.buildEndorserTx(signer, 'channel-1', Buffer.from(`tx ${i}`));
    const d = F.decodeEnvelope(e.bytes);
    assert(d.channelHeader.type === 3 && d.channelHeader.channel_id === 'channel-1', 'channel header');
    assert(d.channelHeader.tx_id === e.txId && F.computeTxId(d.signatureHeader.nonce, d.signatureHeader.creator) === e.txId, 'tx_id');
    assert(d.signatureHeader.nonce.length === 24, 'nonce length');
    assert(F.isLowS(Buffer.from(d.envelope.signature)), 'high-S');
    assert(crypto.verify('sha256', d.envelope.payload, crypto.createPublicKey(signer.certPem), Buffer.from(d.envelope.signature)), 'signature');
    assert(Buffer.from(d.payload.data).toString() === `tx ${i}`, 'data');
  }
  const seek = F.decodeEnvelope(F.buildSeekEnvelope(signer, 'channel-1', 0, 5).bytes);
  const si = F.orderer.SeekInfo.decode(seek.payload.data);
  assert(seek.channelHeader.type === 5 && Number(si.stop.specified.number) === 5 && si.start.Type === 'specified', 'seek info');
});

for (const who of ['from-orderer1', 'from-orderer2']) {
  check(`Fabric ledger ${who}: hash chain, data hashes, well-formed txs, OrdererMSP block signatures`, () => {
    const blocks = loadBlocks(path.join(FIX, 'ledger', who));
    assert(blocks.length > 1, 'no blocks');
    const info = F.verifyChain(blocks, { requireSignaturesFrom: 'OrdererMSP' });
    const last = info[info.length - 1];
    const want = fs.readFileSync(path.join(FIX, 'ledger', 'blockverify.txt'), 'utf8').trim().split(/\s+/);
    assert(want[0] === 'ok' && Number(want[1]) === info.length, `blockverify.txt says ${want.join(' ')}, we have ${info.length} blocks`);
    assert(last.hash === want[3], `last header hash ${last.hash} != blockverify.txt ${want[3]}`);
    const ntx = info.reduce((a, b) => a + b.txs.length, 0);
    const txids = new Set(info.flatMap((b) => b.txs.filter((t) => t.type === 3).map((t) => t.txId)));
    assert(txids.size === info.flatMap((b) => b.txs.filter((t) => t.type === 3)).length, 'duplicate tx_id in Fabric ledger');
    return `${info.length} blocks, ${ntx} txs, signer ${last.signers[0].subject.split(',').find((s) => s.startsWith('CN='))}, last ${last.hash.slice(0, 16)}…`;
  });
}

check('verifier rejects tampering (data, previous hash, signature value)', () => {
  const blocks = loadBlocks(path.join(FIX, 'ledger', 'from-orderer1')).slice(0, 4);
  const tamper = (mutate) => {
    const copy = blocks.map((b) => F.common.Block.decode(F.common.Block.encode(b).finish()));
    mutate(copy);
    try { F.verifyChain(copy); } catch (e) { return e.message; }
    throw new Error('tampered chain accepted');
  };
  tamper((c) => { c[2].data.data[0] = Buffer.concat([Buffer.from(c[2].data.data[0]), Buffer.from([0])]); });
  tamper((c) => { c[3].header.previous_hash = Buffer.alloc(32); });
  tamper((c) => {
    const md = F.common.Metadata.decode(c[1].metadata.metadata[0]);
    md.value = Buffer.concat([Buffer.from(md.value), Buffer.from([0])]);
    c[1].metadata.metadata[0] = F.common.Metadata.encode(md).finish();
  });
});

console.log(`verify-fixtures: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
