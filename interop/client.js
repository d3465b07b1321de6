#!/usr/bin/env node
'use strict';
// An independent Fabric client for Ordo: @grpc/grpc-js + Fabric's generated JS protobuf classes
// (npm fabric-protos). It broadcasts signed ENDORSER_TRANSACTION envelopes, checks that bad ones are
// refused as Fabric refuses them, delivers the blocks back and verifies them (hash chain, data hash,
// every tx exactly once, the orderer's block signatures).
//
//   node interop/client.js --orderer 127.0.0.1:PORT [--channel channel-1] [--count 250]
//        [--tls-ca FILE] [--msp-dir DIR] [--msp-id Org1MSP] [--genesis FILE] [--timeout 60]
//        [--leader-wait 30]
// Defaults point at ../shared/fixtures/fabric-2.4. Exit 0 = every check passed.

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const F = require('./lib/fabric');

const { common, orderer } = F;
const FIX = path.resolve(__dirname, '..', '..', 'shared', 'fixtures', 'fabric-2.4');
const MAX_UINT64 = '18446744073709551615';

function parseArgs(argv) {
  const opts = {
    orderer: null,
    channel: 'channel-1',
    count: 250,
    tlsCa: path.join(FIX, 'crypto-config/ordererOrganizations/example.com/orderers/orderer1.example.com/tls/ca.crt'),
    mspDir: path.join(FIX, 'crypto-config/peerOrganizations/org1.example.com/users/User1@org1.example.com/msp'),
    mspId: 'Org1MSP',
    ordererMspId: 'OrdererMSP',
    genesis: null,
    timeout: 60,
    leaderWait: 30,
  };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in opts) || i + 1 >= argv.length) throw new Error(`unknown or incomplete option ${argv[i]}`);
    opts[key] = argv[++i];
  }
  if (!opts.orderer) throw new Error('--orderer HOST:PORT is required');
  for (const k of ['count', 'timeout', 'leaderWait']) opts[k] = Number(opts[k]);
  if (!(opts.count >= 1)) throw new Error('--count must be >= 1');
  return opts;
}

function fail(msg) {
  const err = new Error(msg);
  err.check = true;
  throw err;
}

// ---------------------------------------------------------------- gRPC plumbing

// orderer.AtomicBroadcast with the paths and stream kinds of fabric-protos' own service
// definition, and the static fabric-protos classes as (de)serialisers.
function makeClient(address, caPem) {
  const svc = F.fabprotos.services.orderer.AtomicBroadcast.service;
  const def = {
    Broadcast: {
      path: svc.Broadcast.path,
      requestStream: svc.Broadcast.requestStream,
      responseStream: svc.Broadcast.responseStream,
      requestSerialize: (env) => Buffer.from(common.Envelope.encode(env).finish()),
      requestDeserialize: (b) => common.Envelope.decode(b),
      responseSerialize: (r) => Buffer.from(orderer.BroadcastResponse.encode(r).finish()),
      responseDeserialize: (b) => orderer.BroadcastResponse.decode(b),
    },
    Deliver: {
      path: svc.Deliver.path,
      requestStream: svc.Deliver.requestStream,
      responseStream: svc.Deliver.responseStream,
      requestSerialize: (env) => Buffer.from(common.Envelope.encode(env).finish()),
      requestDeserialize: (b) => common.Envelope.decode(b),
      responseSerialize: (r) => Buffer.from(orderer.DeliverResponse.encode(r).finish()),
      responseDeserialize: (b) => orderer.DeliverResponse.decode(b),
    },
  };
  const Ctor = grpc.makeGenericClientConstructor(def, 'AtomicBroadcast');
  return new Ctor(address, grpc.credentials.createSsl(caPem), {
    'grpc.max_receive_message_length': 100 * 1024 * 1024,
    'grpc.max_send_message_length': 100 * 1024 * 1024,
  });
}

// Turns a bidi call into "await the next event": {kind:'msg', msg} | {kind:'status', status}.
class Stream {
  constructor(call, name) {
    this.call = call;
    this.name = name;
    this.queue = [];
    this.waiters = [];
    this.status = null;
    call.on('data', (msg) => this.push({ kind: 'msg', msg }));
    call.on('error', () => {}); // the 'status' event carries the same information
    call.on('status', (status) => { this.status = status; this.push({ kind: 'status', status }); });
  }

  push(ev) {
    const w = this.waiters.shift();
    if (w) w(ev); else this.queue.push(ev);
  }

  next(ms, what) {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        const i = this.waiters.indexOf(done);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(Object.assign(new Error(`${this.name}: no ${what} within ${ms} ms`), { check: true }));
      }, ms);
      const done = (ev) => { clearTimeout(t); resolve(ev); };
      this.waiters.push(done);
    });
  }

  // The next message; a stream end is an error here.
  async msg(ms, what) {
    const ev = await this.next(ms, what);
    if (ev.kind === 'status') fail(`${this.name}: stream ended (gRPC ${grpcStatusName(ev.status.code)} "${ev.status.details}") while waiting for ${what}`);
    return ev.msg;
  }

  // The end of the stream (after which nothing more may arrive).
  async end(ms, what) {
    const ev = await this.next(ms, what);
    if (ev.kind !== 'status') fail(`${this.name}: unexpected message ${JSON.stringify(ev.msg)} while waiting for ${what}`);
    return ev.status;
  }

  write(env) { this.call.write(env); }
  closeSend() { this.call.end(); }
  cancel() { this.call.cancel(); }
}

function grpcStatusName(code) {
  return Object.keys(grpc.status).find((k) => grpc.status[k] === code) || String(code);
}

function statusName(code) {
  return Object.keys(common.Status).find((k) => common.Status[k] === code) || String(code);
}

function envelopeMsg(e) {
  return { payload: e.payload, signature: e.signature };
}

// ---------------------------------------------------------------- the checks

const STEP_MS = 15000;

// Broadcast all envelopes on one stream. Until the channel has a Raft leader the orderer answers
// SERVICE_UNAVAILABLE and closes the stream: the first envelope is retried on a new stream then.
async function broadcastAll(client, envs, leaderWaitS) {
  const deadline = Date.now() + leaderWaitS * 1000;
  let attempts = 0;
  let stream;
  for (;;) {
    attempts++;
    stream = new Stream(client.Broadcast(), 'Broadcast');
    stream.write(envelopeMsg(envs[0]));
    const r = await stream.msg(STEP_MS, 'the response to the first envelope');
    if (r.status === common.Status.SUCCESS) break;
    if (r.status === common.Status.SERVICE_UNAVAILABLE && Date.now() < deadline) {
      await stream.end(STEP_MS, 'the stream end after SERVICE_UNAVAILABLE');
      await new Promise((res) => setTimeout(res, Math.min(100 * attempts, 1000)));
      continue;
    }
    fail(`Broadcast of a valid envelope: expected SUCCESS (200), got ${statusName(r.status)} (${r.status}) "${r.info}" after ${attempts} attempt(s)`);
  }
  for (let i = 1; i < envs.length; i++) stream.write(envelopeMsg(envs[i]));
  for (let i = 1; i < envs.length; i++) {
    const r = await stream.msg(STEP_MS, `the response to envelope ${i}`);
    if (r.status !== common.Status.SUCCESS) {
      fail(`Broadcast envelope ${i} (tx ${envs[i].txId}): expected SUCCESS (200), got ${statusName(r.status)} (${r.status}) "${r.info}"`);
    }
  }
  stream.closeSend();
  const st = await stream.end(STEP_MS, 'the end of the Broadcast stream after the client closed its side');
  if (st.code !== grpc.status.OK) fail(`Broadcast stream ended with gRPC ${grpcStatusName(st.code)} "${st.details}", expected OK`);
  return attempts;
}

// One bad envelope on a fresh stream: Fabric answers FORBIDDEN and returns from its handler, which
// ends the stream with gRPC OK without waiting for the client to close its side.
async function broadcastExpectForbidden(client, env, what) {
  const stream = new Stream(client.Broadcast(), `Broadcast(${what})`);
  stream.write(envelopeMsg(env));
  const r = await stream.msg(STEP_MS, `the response to the ${what} envelope`);
  if (r.status !== common.Status.FORBIDDEN) {
    fail(`Broadcast of an envelope with a ${what}: expected FORBIDDEN (403), got ${statusName(r.status)} (${r.status}) "${r.info}"`);
  }
  const st = await stream.end(5000, `the server to close the stream after FORBIDDEN (${what})`);
  if (st.code !== grpc.status.OK) fail(`Broadcast(${what}) stream ended with gRPC ${grpcStatusName(st.code)} "${st.details}", expected OK`);
  return r.info;
}

// Deliver from `start` to `stop`; collect blocks until `enough(blocks)` (then cancel), or until the
// SUCCESS status (then close our side and expect gRPC OK).
async function deliver(client, signer, channel, start, stop, { enough = null } = {}) {
  const stream = new Stream(client.Deliver(), `Deliver(${start}..${stop === MAX_UINT64 ? 'max' : stop})`);
  stream.write(envelopeMsg(F.buildSeekEnvelope(signer, channel, start, stop)));
  const blocks = [];
  for (;;) {
    const r = await stream.msg(STEP_MS, blocks.length ? `block after ${blocks.length} blocks` : 'the first block');
    if (r.Type === 'block') {
      blocks.push(r.block);
      if (enough && enough(blocks)) {
        stream.cancel();
        return { blocks, status: null };
      }
      continue;
    }
    if (r.Type !== 'status') fail(`${stream.name}: DeliverResponse with neither block nor status`);
    if (r.status !== common.Status.SUCCESS) fail(`${stream.name}: expected blocks then SUCCESS, got status ${statusName(r.status)} (${r.status}) after ${blocks.length} blocks`);
    stream.closeSend();
    const st = await stream.end(STEP_MS, 'the end of the Deliver stream after SUCCESS');
    if (st.code !== grpc.status.OK) fail(`${stream.name} ended with gRPC ${grpcStatusName(st.code)} "${st.details}", expected OK`);
    return { blocks, status: r.status };
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  const signer = F.loadSigner(opts.mspDir, opts.mspId);
  const client = makeClient(opts.orderer, fs.readFileSync(opts.tlsCa));

  // 1. N valid envelopes on one Broadcast stream.
  const envs = [];
  for (let i = 0; i < opts.count; i++) {
    envs.push(F.buildEndorserTx(signer, opts.channel, Buffer.from(`ordo interop tx ${i} ${crypto.randomBytes(8).toString('hex')}`)));
  }
  const attempts = await broadcastAll(client, envs, opts.leaderWait);

  // 2. Refused envelopes: a corrupted signature, and the same signature made high-S.
  const bad = F.buildEndorserTx(signer, opts.channel, Buffer.from('corrupted signature'));
  const sig = Buffer.from(bad.signature);
  sig[sig.length - 3] ^= 0x5a;
  const badInfo = await broadcastExpectForbidden(client, { payload: bad.payload, signature: sig, txId: bad.txId }, 'corrupted signature');
  const high = F.buildEndorserTx(signer, opts.channel, Buffer.from('high-S signature'));
  await broadcastExpectForbidden(client, { payload: high.payload, signature: F.toHighS(high.signature), txId: high.txId }, 'high-S signature');

  // 3. Deliver from the oldest block until every envelope is in a block.
  const want = new Set(envs.map((e) => e.txId));
  const seen = new Set();
  const { blocks } = await deliver(client, signer, opts.channel, 'oldest', MAX_UINT64, {
    enough: (bs) => {
      for (const d of bs[bs.length - 1].data.data || []) {
        const id = F.decodeEnvelope(d).channelHeader.tx_id;
        if (want.has(id)) seen.add(id);
      }
      return seen.size === want.size;
    },
  });
  const last = F.blockNumber(blocks[blocks.length - 1].header);

  // 4. Deliver Specified(0)..Specified(last): the same blocks, then SUCCESS.
  const again = await deliver(client, signer, opts.channel, 0, last);
  if (again.blocks.length !== last + 1) fail(`Deliver 0..${last} returned ${again.blocks.length} blocks, expected ${last + 1}`);
  for (let i = 0; i < blocks.length; i++) {
    const a = Buffer.from(common.Block.encode(blocks[i]).finish());
    const b = Buffer.from(common.Block.encode(again.blocks[i]).finish());
    if (!a.equals(b)) fail(`block ${i} differs between the two Deliver streams`);
  }

  // 5. Verify: numbering from 0, hash chain, data hashes, well-formed txs, OrdererMSP signatures.
  if (F.blockNumber(blocks[0].header) !== 0) fail(`Deliver from oldest started at block ${F.blockNumber(blocks[0].header)}`);
  let info;
  try {
    info = F.verifyChain(blocks, { requireSignaturesFrom: opts.ordererMspId });
  } catch (e) {
    fail(`block verification: ${e.message}`);
  }
  if (opts.genesis) {
    const g = common.Block.decode(fs.readFileSync(opts.genesis));
    if (!F.blockHeaderHash(g.header).equals(F.blockHeaderHash(blocks[0].header))) fail('block 0 is not the genesis block the channel was joined with');
  }
  const counts = new Map();
  for (const b of info) {
    for (const t of b.txs) {
      if (b.number > 0 && t.channelId !== opts.channel) fail(`block ${b.number}: tx ${t.txId} for channel ${t.channelId}`);
      counts.set(t.txId, (counts.get(t.txId) || 0) + 1);
    }
    if (b.number > 0 && b.lastConfig !== 0) fail(`block ${b.number}: SIGNATURES last_config ${b.lastConfig}, expected 0 (no config update was sent)`);
  }
  for (const e of envs) {
    const c = counts.get(e.txId) || 0;
    if (c !== 1) fail(`tx ${e.txId} appears ${c} times in blocks 0..${last}, expected exactly once`);
  }
  for (const [name, e] of [['corrupted-signature', bad], ['high-S', high]]) {
    if (counts.has(e.txId)) fail(`the refused ${name} tx ${e.txId} was ordered into a block`);
  }
  const extra = info.filter((b) => b.number > 0).flatMap((b) => b.txs).filter((t) => !want.has(t.txId));
  const txBlocks = info.filter((b) => b.txs.some((t) => want.has(t.txId)));
  const signer0 = info[info.length - 1].signers[0];

  client.close();
  console.log(`interop OK: ${opts.count} envelopes broadcast to ${opts.orderer} (${attempts} attempt(s) for the leader), ` +
    `2 bad ones FORBIDDEN ("${badInfo.slice(0, 60)}"), blocks 0..${last} delivered twice, ${txBlocks.length} tx blocks ` +
    `(max ${Math.max(...txBlocks.map((b) => b.txs.length))} txs), ${extra.length} other txs, hash chain + data hashes OK, ` +
    `signed by ${signer0.mspid} ${signer0.subject.split(',').find((s) => s.startsWith('CN=')) || ''}, last hash ${info[info.length - 1].hash.slice(0, 16)}…, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

const opts0 = (() => { try { return parseArgs(process.argv.slice(2)); } catch (e) { return null; } })();
const timer = setTimeout(() => {
  console.error(`interop FAILED: global timeout of ${opts0 ? opts0.timeout : 60} s reached`);
  process.exit(3);
}, (opts0 ? opts0.timeout : 60) * 1000);

main().then(() => {
  clearTimeout(timer);
  process.exit(0);
}, (e) => {
  clearTimeout(timer);
  console.error(`interop FAILED: ${e.check ? e.message : e.stack}`);
  process.exit(1);
});
