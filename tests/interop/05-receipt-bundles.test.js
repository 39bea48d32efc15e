'use strict';
// Consortium receipts: a bundle [+ COSE_Sign1] of RFC 9942 receipts, one per
// node, accepted with quorum_size(n) = n - floor((n - 1) / 3) distinct node
// signatures over one root. A 4-node consortium (2 Ed25519, 2 ES256 node
// keys) is built entirely in JS: genesis file, statements, RFC 9162 tree,
// per-node root signatures and the bundles. Each bundle is judged by the JS
// verifier (lib/cose.js + lib/rfc9162.js), by @transmute/cose and by
// `custos verify --genesis` / `--node-key`, which must agree. No custos node
// runs here: only the CLI.

const {test, before, after} = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const {CustosNode} = require('./lib/custos');
const cose = require('./lib/cose');
const rfc9162 = require('./lib/rfc9162');
const {verifyReceiptBundleWithTransmute} = require('./lib/transmute');

const cli = new CustosNode(); // never started: its temp dir and CLI runner only
const hex = (b) => Buffer.from(b).toString('hex');
const IAT = 1795000000;
const LEAVES = 6;
const LEAF = 4; // the entry whose receipts are bundled

const keyPair = (i) => (i % 2 === 0
  ? crypto.generateKeyPairSync('ed25519')
  : crypto.generateKeyPairSync('ec', {namedCurve: 'P-256'}));
const pem = (publicKey) => publicKey.export({type: 'spki', format: 'pem'});

const nodes = [];
let outsider;
let statements;
let leaves;

before(() => {
  for (let i = 0; i < 4; i++) {
    const {privateKey, publicKey} = keyPair(i);
    nodes.push({name: `node-${i}`, privateKey, publicKey, pubPath: cli.file(`node-${i}.pub`)});
    fs.writeFileSync(nodes[i].pubPath, pem(publicKey));
  }
  outsider = crypto.generateKeyPairSync('ed25519');
  const admin = crypto.generateKeyPairSync('ed25519');
  const named = (name, publicKey) => ({name, kid: hex(cose.kidOf(publicKey)),
    alg: publicKey.asymmetricKeyType === 'ed25519' ? 'Ed25519' : 'ES256', public_key_pem: pem(publicKey)});
  fs.writeFileSync(cli.file('genesis.json'), JSON.stringify({
    version: 1, consortium: 'interop-4', created_ms: IAT * 1000,
    admins: [named('admin', admin.publicKey)],
    nodes: nodes.map((n) => named(n.name, n.publicKey)),
  }, null, 2));
  const device = crypto.generateKeyPairSync('ed25519');
  statements = Array.from({length: LEAVES + 1}, (_, i) => cose.buildStatement({
    privateKey: device.privateKey, iss: 'js-pump', sub: 'infusion', iat: IAT, seq: i + 1,
    payload: cose.encode({reading: i}),
  }).bytes);
  leaves = statements.map(rfc9162.leafHash);
  fs.writeFileSync(cli.file('s.cose'), statements[LEAF]);
});

after(() => cli.stop());

// The receipt a node makes for leaf LEAF of D[0:treeSize], as
// docs/formats.md section 6 describes it; `root` overrides the signed root
// (a node signing a forked log).
function receiptBy(key, name, {treeSize = LEAVES, root} = {}) {
  const alg = cose.coseAlgOf(key.publicKey);
  const prot = cose.encode(new Map([[cose.H_ALG, alg], [cose.H_KID, cose.kidOf(key.publicKey)],
    [cose.H_CWT_CLAIMS, new Map([[cose.C_ISS, name], [cose.C_IAT, IAT]])], [cose.H_VDS, 1],
    [cose.H_TREE_SIZE, treeSize]]));
  const signedRoot = root ?? rfc9162.mthFromLeafHashes(leaves.slice(0, treeSize));
  const signature = cose.signRaw(alg, key.privateKey, cose.sigStructure(prot, signedRoot));
  const proof = cose.encode([treeSize, LEAF, rfc9162.inclusionPath(LEAF, leaves.slice(0, treeSize))]);
  return cose.encodeSign1(prot, new Map([[cose.H_VDP, new Map([[cose.VDP_INCLUSION, [proof]]])]]), null,
    signature);
}
const receiptOf = (i, opts) => receiptBy(nodes[i], nodes[i].name, opts);

// [+ COSE_Sign1] with a hand-written CBOR array head (RFC 8949 section 3).
function bundle(receipts) {
  assert.ok(receipts.length < 24);
  const bytes = Buffer.concat([Buffer.from([0x80 | receipts.length]), ...receipts]);
  // The npm cbor encoder agrees: the bundle is the deterministic encoding.
  assert.equal(hex(cose.encode(receipts.map(cose.decodeOne))), hex(bytes));
  return bytes;
}

const genesisKeys = () => nodes.map((n) => n.publicKey);

function custosVerify(receiptBytes, ...how) {
  const rPath = cli.file('r.cbor');
  fs.writeFileSync(rPath, receiptBytes);
  const args = how.length ? how : ['--genesis', cli.file('genesis.json')];
  return cli.cli('verify', '--statement', cli.file('s.cose'), '--receipt', rPath, ...args);
}

// Every verifier must refuse, and custos must name the reason.
async function allRefuse(bytes, jsPattern, custosPattern) {
  assert.throws(() => cose.verifyReceiptBundle(bytes, statements[LEAF], genesisKeys()), jsPattern);
  await assert.rejects(verifyReceiptBundleWithTransmute(bytes, statements[LEAF], genesisKeys(), 3));
  const v = custosVerify(bytes);
  assert.equal(v.status, 1, `custos verify: exit ${v.status} ${v.stdout}${v.stderr}`);
  assert.match(v.stderr, /^invalid: /);
  assert.match(v.stderr, custosPattern);
  return v;
}

test('quorum of 4 nodes is 3', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 10].map(cose.quorumSize), [1, 2, 3, 3, 4, 5, 5, 7]);
});

test('3-of-4 bundle verifies in JS, with @transmute/cose and with custos verify --genesis', async () => {
  const bytes = bundle([receiptOf(0), receiptOf(1), receiptOf(3)]);
  const js = cose.verifyReceiptBundle(bytes, statements[LEAF], genesisKeys());
  assert.deepEqual(js.signers, [0, 1, 3]);
  assert.equal(js.treeSize, LEAVES);
  assert.equal(js.leafIndex, LEAF);
  assert.equal(hex(js.root), hex(rfc9162.mthFromLeafHashes(leaves.slice(0, LEAVES))));
  const tm = await verifyReceiptBundleWithTransmute(bytes, statements[LEAF], genesisKeys(), 3);
  assert.deepEqual(tm.signers, [0, 1, 3]);
  assert.equal(hex(tm.root), hex(js.root));

  const v = custosVerify(bytes);
  assert.equal(v.status, 0, `${v.stdout}${v.stderr}`);
  assert.match(v.stdout, /^valid: entry [0-9a-f]{64} is leaf 4 of a log of 6 entries/);
  assert.match(v.stdout, /signed by 3 of 4 consortium nodes \(quorum 3\): node-0, node-1, node-3/);
  const j = custosVerify(bytes, '--genesis', cli.file('genesis.json'), '--json');
  assert.equal(j.status, 0, j.stderr);
  const out = JSON.parse(j.stdout);
  assert.equal(out.valid, true);
  assert.equal(out.entry_id, hex(cose.sha256(statements[LEAF])));
  assert.equal(out.tree_size, LEAVES);
  assert.equal(out.leaf_index, LEAF);
  assert.equal(out.quorum, 3);
  assert.equal(out.nodes, 4);
  assert.deepEqual(out.signers.map((s) => s.name), ['node-0', 'node-1', 'node-3']);
  assert.deepEqual(out.signers.map((s) => s.kid), [0, 1, 3].map((i) => hex(cose.kidOf(nodes[i].publicKey))));
  assert.deepEqual(out.rejected, []);
});

test('4-of-4 bundle in any order verifies everywhere', async () => {
  const bytes = bundle([receiptOf(3), receiptOf(2), receiptOf(1), receiptOf(0)]);
  assert.equal(cose.verifyReceiptBundle(bytes, statements[LEAF], genesisKeys()).signers.length, 4);
  assert.equal((await verifyReceiptBundleWithTransmute(bytes, statements[LEAF], genesisKeys(), 3)).signers.length, 4);
  assert.equal(custosVerify(bytes).status, 0);
});

test('every element is an ordinary RFC 9942 receipt', async () => {
  const receipts = [receiptOf(0), receiptOf(1), receiptOf(2)]; // ES256 signatures are randomized
  const elements = cose.splitReceiptBundle(bundle(receipts));
  assert.equal(elements.length, 3);
  elements.forEach((e, i) => {
    assert.equal(hex(e), hex(receipts[i]));
    cose.verifyReceipt(e, statements[LEAF], nodes[i].publicKey);
  });
});

test('2-of-4 bundle is refused with the count', async () => {
  const v = await allRefuse(bundle([receiptOf(0), receiptOf(2)]), /2 of 3 required/, /2 of 3 required/);
  assert.match(v.stderr, /counted for tree size 6: node-0 node-2/);
});

test('a duplicate node element counts once', async () => {
  const v = await allRefuse(bundle([receiptOf(0), receiptOf(1), receiptOf(1)]),
    /2 of 3 required.*element 2: duplicate node/, /2 of 3 required/);
  assert.match(v.stderr, /element 2 \(node-1\): duplicate node: already counted from element 1/);
  // With a quorum besides, the duplicate does no harm.
  assert.equal(custosVerify(bundle([receiptOf(0), receiptOf(1), receiptOf(1), receiptOf(2)])).status, 0);
});

test('an element by a key outside the genesis is not counted', async () => {
  const stranger = receiptBy(outsider, 'node-x');
  const v = await allRefuse(bundle([receiptOf(0), receiptOf(1), stranger]), /element 2: unknown kid/,
    /2 of 3 required/);
  assert.match(v.stderr, new RegExp(`element 2: unknown kid ${hex(cose.kidOf(outsider.publicKey))}`));
});

test('a tampered signature is not counted', async () => {
  const bad = Buffer.from(receiptOf(2));
  bad[bad.length - 1] ^= 0x01;
  const v = await allRefuse(bundle([receiptOf(0), receiptOf(1), bad]), /2 of 3 required/, /2 of 3 required/);
  assert.match(v.stderr, /element 2 \(node-2\): bad signature: receipt signature does not verify/);
});

test('an element for a different tree size or a forked root is not counted', async () => {
  // Node 2 signs the next block (7 entries): valid alone, but not the same tree.
  const later = receiptOf(2, {treeSize: LEAVES + 1});
  cose.verifyReceipt(later, statements[LEAF], nodes[2].publicKey);
  const v = await allRefuse(bundle([receiptOf(0), receiptOf(1), later]),
    /element 2: different tree size\/root/, /2 of 3 required/);
  assert.match(v.stderr, /element 2 \(node-2\): different tree size\/root: signs tree size 7/);
  // Node 3 signs a root of the same size that its proof does not lead to.
  const forked = receiptOf(3, {root: crypto.randomBytes(32)});
  const f = await allRefuse(bundle([receiptOf(0), receiptOf(1), forked]), /2 of 3 required/,
    /element 2 \(node-3\): bad signature/);
  assert.ok(f);
});

test('a single receipt is a bundle of one: enough for its node key, not for the consortium', () => {
  const single = receiptOf(1);
  const js = cose.verifyReceiptBundle(single, statements[LEAF], genesisKeys(), 1);
  assert.deepEqual(js.signers, [1]);
  assert.throws(() => cose.verifyReceiptBundle(single, statements[LEAF], genesisKeys()), /1 of 3 required/);
  const g = custosVerify(single);
  assert.equal(g.status, 1);
  assert.match(g.stderr, /1 of 3 required/);
  const k = custosVerify(single, '--node-key', nodes[1].pubPath);
  assert.equal(k.status, 0, k.stderr);
  assert.match(k.stdout, /^valid: entry /);
});

test('--node-key checks that node\'s element of a bundle', () => {
  const bytes = bundle([receiptOf(0), receiptOf(1), receiptOf(3)]);
  const ok = custosVerify(bytes, '--node-key', nodes[3].pubPath, '--json');
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).node_kid, hex(cose.kidOf(nodes[3].publicKey)));
  const missing = custosVerify(bytes, '--node-key', nodes[2].pubPath);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /none of the 3 receipts in the bundle is signed by the node key/);
  const bad = Buffer.from(receiptOf(3));
  bad[bad.length - 2] ^= 0x01;
  const tampered = custosVerify(bundle([receiptOf(0), bad]), '--node-key', nodes[3].pubPath);
  assert.equal(tampered.status, 1);
  assert.match(tampered.stderr, /no element signed by the node key \(kid [0-9a-f]{64}\) verifies; element 1: bad signature/);
});

test('malformed bundles are refused with a reason, never accepted', () => {
  const r = receiptOf(0);
  const cases = {
    'empty array': [Buffer.from([0x80]), /no receipts/],
    'array of integers': [Buffer.from([0x82, 0x01, 0x02]), /element 0: must be a tagged \(18\) COSE_Sign1/],
    'a map': [Buffer.from([0xa0]), /got a map/],
    'trailing bytes': [Buffer.concat([Buffer.from([0x81]), r, Buffer.from([0x00])]), /trailing byte/],
    'announces more elements': [Buffer.concat([Buffer.from([0x82]), r]), /announces 2 elements/],
    'indefinite array': [Buffer.concat([Buffer.from([0x9f]), r, Buffer.from([0xff])]), /indefinite-length/],
    'too many elements': [Buffer.concat([Buffer.from([0x99, 0x01, 0x01]), r]), /the limit is 256/],
  };
  for (const [name, [bytes, pattern]] of Object.entries(cases)) {
    assert.throws(() => cose.verifyReceiptBundle(bytes, statements[LEAF], genesisKeys()), undefined, name);
    const v = custosVerify(bytes);
    assert.equal(v.status, 1, `${name}: exit ${v.status} ${v.stdout}${v.stderr}`);
    assert.match(v.stderr, pattern, name);
  }
});
