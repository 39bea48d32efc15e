'use strict';
// Checkpoints, blocks and consistency proofs checked in JS: the checkpoint
// COSE_Sign1 verifies against node.pub, its block header matches
// GET /v1/blocks, every block root equals the RFC 9162 MTH that JS computes
// over the statements, the block hash chain and both block signatures
// verify over headers JS re-encodes, every receipt's path is the RFC 9162
// PATH, and consistency proofs between checkpoints verify (RFC 9162
// 2.1.4.2) and equal the RFC 9162 PROOF that JS computes.

const {test, before, after} = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const {CustosNode, request} = require('./lib/custos');
const cose = require('./lib/cose');
const rfc9162 = require('./lib/rfc9162');

const node = new CustosNode();
const hex = (b) => Buffer.from(b).toString('hex');
const unhex = (h) => Buffer.from(h, 'hex');
let nodeKey;
let issuer;
let seq = 0;

function statement(note) {
  seq += 1;
  return cose.buildStatement({privateKey: issuer.privateKey, iss: 'cp-device', sub: `patient/${seq % 3}`,
    iat: Math.floor(Date.now() / 1000), seq, payload: cose.encode({seq, note})}).bytes;
}

async function postOne(note) {
  const r = await node.postStatement(statement(note));
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}

async function postBatch(count) {
  const body = cose.encode(Array.from({length: count}, (_, i) => statement(`batch ${i}`)));
  const r = await request(`${node.url}/v1/entries/batch`,
    {method: 'POST', headers: {'Content-Type': 'application/cbor'}, body});
  assert.equal(r.status, 200, r.body.toString());
  const results = JSON.parse(r.body).results;
  assert.equal(results.length, count);
  for (const x of results) assert.equal(x.status, 'registered', JSON.stringify(x));
}

// Checkpoint fetched and verified in JS, cross-checked against its block.
async function checkpoint() {
  const bytes = await node.checkpoint();
  const cp = cose.verifyCheckpoint(bytes, nodeKey);
  assert.equal(cp.protectedMap.get(cose.H_ALG), cose.ALG_ED25519);
  assert.equal(cp.unprotected.size, 0);
  assert.ok(cose.isDeterministic(cp.headerBytes), 'block header is deterministic CBOR');
  assert.ok(cose.isDeterministic(bytes), 'checkpoint is deterministic CBOR');
  const h = cp.header;
  const block = await node.block(h.height);
  assert.equal(hex(h.root), block.root);
  assert.equal(h.log_size, block.log_size);
  assert.equal(h.height, block.height);
  assert.equal(hex(h.prev), block.prev_hash);
  assert.equal(h.time_ms, block.time_ms);
  assert.equal(hex(h.proposer), block.proposer);
  assert.equal(h.entries, block.entries);
  assert.equal(hex(cose.sha256(cp.headerBytes)), block.header_hash, 'header_hash = SHA-256(header bytes)');
  assert.equal(hex(cp.signature), block.checkpoint_signature);
  return {bytes, header: h, block};
}

before(async () => {
  await node.start();
  nodeKey = crypto.createPublicKey(node.nodePubPem);
  const {privateKey, publicKey} = crypto.generateKeyPairSync('ed25519');
  issuer = {privateKey, publicKey};
  fs.writeFileSync(node.file('issuer.pub'), publicKey.export({type: 'spki', format: 'pem'}));
  node.registerKey(node.file('issuer.pub'), 'cp-issuer');
});

after(() => node.stop());

const checkpoints = [];

test('checkpoint verifies in JS against node.pub and matches GET /v1/blocks', async () => {
  for (let i = 0; i < 3; i++) await postOne(`first ${i}`);
  const cp = await checkpoint();
  assert.equal(cp.header.log_size, 4, 'key registration + 3 statements');
  assert.deepEqual(Object.keys(cp.header).sort(),
    ['entries', 'height', 'log_size', 'prev', 'proposer', 'root', 'time_ms']);
  assert.ok(cp.header.proposer.equals(cose.kidOf(nodeKey)));
  // The JSON form carries the same COSE bytes.
  const json = await node.getJson('/v1/checkpoint');
  assert.equal(json.height, cp.header.height);
  assert.equal(Buffer.from(json.checkpoint_base64, 'base64').toString('hex'), hex(cp.bytes));
  // A changed header byte or signature byte breaks the JS verification.
  const parsed = cose.parseSign1(cp.bytes);
  const badPayload = Buffer.from(parsed.payload);
  badPayload[badPayload.length - 1] ^= 1;
  assert.throws(() => cose.verifyCheckpoint(cose.encodeSign1(parsed.protectedBytes, new Map(), badPayload,
    parsed.signature), nodeKey), /signature/);
  const badSig = Buffer.from(parsed.signature);
  badSig[0] ^= 1;
  assert.throws(() => cose.verifyCheckpoint(cose.encodeSign1(parsed.protectedBytes, new Map(), parsed.payload,
    badSig), nodeKey), /signature/);
  // ... and another key does not verify it.
  assert.throws(() => cose.verifyCheckpoint(cp.bytes, issuer.publicKey));
  checkpoints.push(cp);
});

test('consistency proof between two checkpoints verifies in JS (RFC 9162 2.1.4.2)', async () => {
  const first = checkpoints[0];
  for (let i = 0; i < 4; i++) await postOne(`second ${i}`);  // log size 8
  await postBatch(5);                                       // 13
  for (let i = 0; i < 3; i++) await postOne(`third ${i}`);   // 16
  await postBatch(4);                                       // 20
  const second = await checkpoint();
  assert.equal(second.header.log_size, 20);
  checkpoints.push(second);
  const m = first.header.log_size;
  const n = second.header.log_size;
  const proof = await node.consistency(m, n);
  assert.equal(proof.from, m);
  assert.equal(proof.to, n);
  const path = proof.proof.map(unhex);
  assert.ok(rfc9162.verifyConsistency(m, n, first.header.root, second.header.root, path));
  // Wrong roots, a changed hash, a missing hash: all refused.
  assert.ok(!rfc9162.verifyConsistency(m, n, second.header.root, second.header.root, path));
  assert.ok(!rfc9162.verifyConsistency(m, n, first.header.root, first.header.root, path));
  for (let i = 0; i < path.length; i++) {
    const bad = path.map((p) => Buffer.from(p));
    bad[i][5] ^= 0x10;
    assert.ok(!rfc9162.verifyConsistency(m, n, first.header.root, second.header.root, bad));
  }
  assert.ok(!rfc9162.verifyConsistency(m, n, first.header.root, second.header.root, path.slice(1)));
  // The CBOR form (RFC 9942 consistency-proof shape) carries the same proof.
  const r = await request(`${node.url}/v1/proofs/consistency?from=${m}&to=${n}`,
    {headers: {Accept: 'application/cbor'}});
  assert.equal(r.status, 200);
  const [size1, size2, hashes] = cose.decodeOne(r.body);
  assert.deepEqual([size1, size2, hashes.map(hex)], [m, n, proof.proof]);
  assert.ok(cose.isDeterministic(r.body));
});

test('every block: root = JS MTH over the statements, hash chain, both signatures, all consistency proofs',
  async () => {
    const {entries, statements} = await node.allStatements();
    const head = checkpoints[checkpoints.length - 1].header;
    assert.equal(statements.length, head.log_size);
    entries.forEach((e, i) => {
      assert.equal(e.index, i);
      assert.equal(e.id, hex(cose.sha256(statements[i])), 'entry id = SHA-256(statement)');
    });
    const leaves = statements.map(rfc9162.leafHash);
    const nodeKid = cose.kidOf(nodeKey);
    const blocks = [];
    for (let h = 0; h <= head.height; h++) blocks.push(await node.block(h));
    const cpProtected = cose.encode(new Map([[cose.H_ALG, cose.ALG_ED25519],
      [cose.H_CONTENT_TYPE, cose.CHECKPOINT_CONTENT_TYPE], [cose.H_KID, nodeKid]]));
    for (const b of blocks) {
      // Root from the leaves, computed in JS.
      assert.equal(b.root, hex(rfc9162.mthFromLeafHashes(leaves.slice(0, b.log_size))), `root of block ${b.height}`);
      // The header re-encoded by JS hashes to header_hash: custos's header
      // encoding is the RFC 8949 deterministic one.
      const header = {height: b.height, prev: unhex(b.prev_hash), log_size: b.log_size, root: unhex(b.root),
        time_ms: b.time_ms, proposer: unhex(b.proposer), entries: b.entries};
      if (b.height === 0) header.genesis = unhex(b.genesis_hash);
      const headerBytes = cose.encode(header);
      assert.equal(hex(cose.sha256(headerBytes)), b.header_hash, `header hash of block ${b.height}`);
      if (b.height > 0) {
        const prev = blocks[b.height - 1];
        assert.equal(b.prev_hash, prev.header_hash, 'hash chain');
        assert.equal(b.log_size, prev.log_size + b.entries);
        assert.ok(b.time_ms >= prev.time_ms, 'block times never go back');
      } else {
        assert.equal(b.prev_hash, '00'.repeat(32));
        assert.equal(b.log_size, 0);
      }
      // Block 0 is the same on every node and has no proposer; later blocks
      // name the consensus leader (the only node here). This node signs.
      assert.equal(b.proposer, b.height === 0 ? '00'.repeat(32) : hex(nodeKid));
      assert.equal(b.signer, hex(nodeKid));
      // Checkpoint signature over the JS-built checkpoint Sig_structure.
      assert.ok(cose.verifyRaw(cose.ALG_ED25519, nodeKey, cose.sigStructure(cpProtected, headerBytes),
        unhex(b.checkpoint_signature)), `checkpoint signature of block ${b.height}`);
      // Root signature over the JS-built receipt protected header.
      const receiptProtected = cose.encode(new Map([[cose.H_ALG, cose.ALG_ED25519], [cose.H_KID, nodeKid],
        [cose.H_CWT_CLAIMS, new Map([[1, 'node-0'], [6, Math.floor(b.time_ms / 1000)]])], [cose.H_VDS, 1],
        [cose.H_TREE_SIZE, b.log_size]]));
      assert.ok(cose.verifyRaw(cose.ALG_ED25519, nodeKey, cose.sigStructure(receiptProtected, unhex(b.root)),
        unhex(b.root_signature)), `root signature of block ${b.height}`);
    }

    // Every receipt: verifies, and its path is RFC 9162 PATH(m, D[n]) for
    // the block that registered it — except a lone first entry (block size
    // 1, whose RFC 9162 path is empty), which is proven against the newest
    // block so the path is never empty (RFC 9942 [+ bstr]).
    const newest = blocks[blocks.length - 1];
    for (const e of entries) {
      const receipt = cose.nodeReceipt(await node.receipt(e.id), nodeKey);
      const r = cose.verifyReceipt(receipt, statements[e.index], nodeKey);
      const b = blocks[e.height].log_size === 1 ? newest : blocks[e.height];
      assert.equal(r.treeSize, b.log_size);
      assert.ok(r.path.length > 0, 'inclusion path is never empty');
      assert.equal(r.leafIndex, e.index);
      assert.deepEqual(r.path.map(hex), rfc9162.inclusionPath(e.index, leaves.slice(0, b.log_size)).map(hex));
    }

    // Consistency proofs between every pair of block sizes (power-of-two and
    // other first sizes), verified in JS and equal to RFC 9162 PROOF(m, D[n]).
    const sizes = [...new Set(blocks.map((b) => b.log_size).filter((s) => s > 0))];
    const rootAt = new Map(blocks.map((b) => [b.log_size, unhex(b.root)]));
    assert.ok(sizes.includes(1) && sizes.includes(8) && sizes.includes(16) && sizes.includes(13));
    let checked = 0;
    for (const m of sizes) {
      for (const n of sizes) {
        if (m >= n) continue;
        const proof = await node.consistency(m, n);
        const path = proof.proof.map(unhex);
        assert.ok(rfc9162.verifyConsistency(m, n, rootAt.get(m), rootAt.get(n), path), `consistency ${m} -> ${n}`);
        assert.deepEqual(proof.proof, rfc9162.consistencyPath(m, leaves.slice(0, n)).map(hex), `PROOF(${m}, D[${n}])`);
        checked++;
      }
    }
    assert.ok(checked >= 20, `checked ${checked} consistency proofs`);
    // Equal sizes: RFC 9162 2.1.4.1 gives the empty proof.
    const same = await node.consistency(head.log_size, head.log_size);
    assert.deepEqual(same.proof, []);
  });
