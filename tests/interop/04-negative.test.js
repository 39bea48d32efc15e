'use strict';
// Negative interop: what custos must refuse, and with which HTTP status and
// RFC 9457 problem type, for statements made in JS; tampered receipts must
// fail both the JS verification and `custos verify`.

const {test, before, after} = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const {CustosNode} = require('./lib/custos');
const cose = require('./lib/cose');

const node = new CustosNode();
const hex = (b) => Buffer.from(b).toString('hex');
const now = () => Math.floor(Date.now() / 1000);
let ed;
let es;

function keyPair(type) {
  const opts = type === 'ec' ? {namedCurve: 'P-256'} : {};
  const {privateKey, publicKey} = crypto.generateKeyPairSync(type, opts);
  return {privateKey, publicKey};
}

function register(k, name) {
  const p = node.file(`${name}.pub`);
  fs.writeFileSync(p, k.publicKey.export({type: 'spki', format: 'pem'}));
  node.registerKey(p, name);
}

const make = (k, seq, extra = {}) => cose.buildStatement({privateKey: k.privateKey, iss: 'neg-device',
  sub: 'patient/9', iat: now(), seq, payload: cose.encode({seq, v: extra.v ?? 'a'}), ...extra});

async function expectProblem(bytes, status, type, detail) {
  const r = await node.postStatement(bytes);
  assert.equal(r.status, status, `HTTP status (body: ${JSON.stringify(r.body)})`);
  assert.match(r.contentType, /^application\/problem\+json/);
  assert.equal(r.body.type, `urn:custos:problem:${type}`);
  assert.equal(r.body.status, status);
  assert.equal(typeof r.body.title, 'string');
  if (detail) assert.match(r.body.detail, detail);
  return r.body;
}

before(async () => {
  await node.start();
  ed = keyPair('ed25519');
  es = keyPair('ec');
  register(ed, 'neg-ed');
  register(es, 'neg-es');
});

after(() => node.stop());

test('flipped signature byte -> 422 bad-signature (Ed25519 and ES256)', async () => {
  for (const k of [ed, es]) {
    const st = make(k, 1);
    const bad = Buffer.from(st.bytes);
    bad[bad.length - 7] ^= 0x01;  // inside the 64-byte signature at the end
    await expectProblem(bad, 422, 'bad-signature');
    // A flipped payload byte under the original signature is refused too.
    const parsed = cose.parseSign1(st.bytes);
    const payload = Buffer.from(parsed.payload);
    payload[payload.length - 1] ^= 0x01;  // last char of the text value: still valid CBOR
    await expectProblem(cose.encodeSign1(parsed.protectedBytes, new Map(), payload, parsed.signature), 422,
      'bad-signature');
  }
});

test('Ed25519 signature with S + L (non-canonical, RFC 8032 5.1.7) -> 422 bad-signature', async () => {
  const st = make(ed, 1);
  const parsed = cose.parseSign1(st.bytes);
  const L = (1n << 252n) + 27742317777372353535851937790883648493n;
  const leToBig = (b) => BigInt(`0x${Buffer.from(b).reverse().toString('hex')}`);
  const bigToLe = (x) => Buffer.from(x.toString(16).padStart(64, '0'), 'hex').reverse();
  const sig = Buffer.concat([parsed.signature.subarray(0, 32), bigToLe(leToBig(parsed.signature.subarray(32)) + L)]);
  assert.equal(sig.length, 64);
  assert.ok(!cose.verifyRaw(cose.ALG_ED25519, ed.publicKey, cose.sigStructure(parsed.protectedBytes, parsed.payload),
    sig), 'Node crypto rejects S >= L');
  await expectProblem(cose.encodeSign1(parsed.protectedBytes, new Map(), parsed.payload, sig), 422, 'bad-signature');
});

test('header alg that does not match the key, or the kid of another key -> 422 bad-signature', async () => {
  // Ed25519 key, header says ES256 (signed with Ed25519 all the same).
  const kid = cose.kidOf(ed.publicKey);
  const prot = cose.encode(cose.statementProtectedMap({alg: cose.ALG_ES256, contentType: 'application/cbor', kid,
    iss: 'neg-device', sub: 'patient/9', iat: now(), seq: 1}));
  await expectProblem(make(ed, 1, {protectedBytes: prot, alg: cose.ALG_ED25519}).bytes, 422, 'bad-signature');
  // Signed by the Ed25519 key, but names the (registered) ES256 key's kid.
  const prot2 = cose.encode(cose.statementProtectedMap({alg: cose.ALG_ED25519, contentType: 'application/cbor',
    kid: cose.kidOf(es.publicKey), iss: 'neg-device', sub: 'patient/9', iat: now(), seq: 1}));
  await expectProblem(make(ed, 1, {protectedBytes: prot2, alg: cose.ALG_ED25519}).bytes, 422, 'bad-signature');
});

test('ES256 signature in DER (not COSE raw r||s) -> 400 malformed', async () => {
  const st = make(es, 1);
  const parsed = cose.parseSign1(st.bytes);
  const der = crypto.sign('sha256', cose.sigStructure(parsed.protectedBytes, parsed.payload),
    {key: es.privateKey, dsaEncoding: 'der'});
  assert.notEqual(der.length, 64);
  // RFC 9053 section 2.1: the COSE ECDSA signature is r || s, 64 bytes for ES256.
  await expectProblem(cose.encodeSign1(parsed.protectedBytes, new Map(), parsed.payload, der), 400, 'malformed',
    /64 bytes/);
});

test('unregistered key -> 422 unknown-key', async () => {
  for (const type of ['ed25519', 'ec']) {
    const k = keyPair(type);
    await expectProblem(make(k, 1).bytes, 422, 'unknown-key', new RegExp(hex(cose.kidOf(k.publicKey))));
  }
});

test('same statement twice -> 201 registered, then 200 already-registered with the same entry', async () => {
  for (const [k, seq] of [[ed, 1], [es, 1]]) {
    const st = make(k, seq);
    const first = await node.postStatement(st.bytes);
    assert.equal(first.status, 201, JSON.stringify(first.body));
    assert.equal(first.body.status, 'registered');
    const second = await node.postStatement(st.bytes);
    assert.equal(second.status, 200, JSON.stringify(second.body));
    assert.equal(second.body.status, 'already-registered');
    assert.equal(second.body.id, first.body.id);
    assert.equal(second.body.index, first.body.index);
    assert.equal(second.body.height, first.body.height);
  }
});

test('lower or equal sequence number with new content -> 409 replay', async () => {
  const st2 = make(ed, 2, {v: 'second'});
  const ok = await node.postStatement(st2.bytes);
  assert.equal(ok.status, 201, JSON.stringify(ok.body));
  await expectProblem(make(ed, 1, {v: 'replayed with new content'}).bytes, 409, 'replay');
  await expectProblem(make(ed, 2, {v: 'same sequence, new content'}).bytes, 409, 'replay');
  // The next sequence number is still accepted.
  assert.equal((await node.postStatement(make(ed, 3).bytes)).status, 201);
});

test('non-deterministic protected header -> 400 malformed (validly signed)', async () => {
  const fields = {alg: cose.ALG_ED25519, contentType: 'application/cbor', kid: cose.kidOf(ed.publicKey),
    iss: 'neg-device', sub: 'patient/9', iat: now(), seq: 10};
  const canonical = cose.encode(cose.statementProtectedMap(fields));
  assert.equal(canonical.subarray(0, 3).toString('hex'), 'a50132');
  const variants = {
    // Keys out of order: -65537 first, 3 before 1 (npm cbor's non-canonical
    // encoder keeps Map insertion order).
    'keys out of order': cose.cbor.encode(new Map([...cose.statementProtectedMap(fields)].reverse())),
    'claims keys out of order': cose.cbor.encode(new Map([...cose.statementProtectedMap(fields)].map(([k, v]) =>
      [k, v instanceof Map ? new Map([...v].reverse()) : v]))),
    // alg -19 as a two-byte integer (0x38 0x12) instead of 0x32.
    'non-shortest integer': Buffer.concat([Buffer.from('a5013812', 'hex'), canonical.subarray(3)]),
    // Indefinite-length map.
    'indefinite-length map': Buffer.concat([Buffer.from('bf', 'hex'), canonical.subarray(1), Buffer.from('ff', 'hex')]),
    // Duplicate key 1 (six pairs).
    'duplicate key': Buffer.concat([Buffer.from('a60132', 'hex'), canonical.subarray(1)]),
  };
  for (const [name, prot] of Object.entries(variants)) {
    assert.ok(!prot.equals(canonical), name);
    assert.ok(!cose.isDeterministic(prot), `${name} really is non-deterministic`);
    const st = make(ed, 10, {protectedBytes: prot, alg: cose.ALG_ED25519});
    const r = await node.postStatement(st.bytes);
    assert.equal(r.status, 400, `${name}: ${JSON.stringify(r.body)}`);
    assert.equal(r.body.type, 'urn:custos:problem:malformed', name);
    assert.match(r.body.detail, /protected header/, name);
  }
  // The canonical form with the same sequence number is then accepted.
  assert.equal((await node.postStatement(make(ed, 10).bytes)).status, 201);
});

test('tampered receipt fails the JS verification and custos verify exits 1', async () => {
  const st = make(es, 5);
  const other = make(es, 6);
  const res = await node.postStatement(st.bytes);
  assert.equal(res.status, 201);
  assert.equal((await node.postStatement(other.bytes)).status, 201);
  const nodeKey = crypto.createPublicKey(node.nodePubPem);
  // This node's receipt (the node may serve a bundle of consortium receipts).
  const receipt = cose.nodeReceipt(await node.receipt(res.body.id), nodeKey);
  const good = cose.verifyReceipt(receipt, st.bytes, nodeKey);
  assert.ok(good.path.length >= 2, 'a proof with several hashes to tamper with');

  const sPath = node.file('t.cose');
  const oPath = node.file('o.cose');
  fs.writeFileSync(sPath, st.bytes);
  fs.writeFileSync(oPath, other.bytes);
  const custosVerify = (receiptBytes, statementPath = sPath) => {
    const rPath = node.file('t.receipt');
    fs.writeFileSync(rPath, receiptBytes);
    return node.cli('verify', '--statement', statementPath, '--receipt', rPath, '--node-key', node.nodePubPath);
  };
  assert.equal(custosVerify(receipt).status, 0, 'untampered receipt verifies');

  const parsed = cose.parseSign1(receipt);
  const withProof = (treeSize, leafIndex, path) => cose.encodeSign1(parsed.protectedBytes,
    new Map([[cose.H_VDP, new Map([[cose.VDP_INCLUSION, [cose.encode([treeSize, leafIndex, path])]]])]]),
    null, parsed.signature);
  // Re-encoding the untouched parts gives back the same receipt.
  assert.equal(hex(withProof(good.treeSize, good.leafIndex, good.path)), hex(receipt));

  const flip = (buf, i) => { const b = Buffer.from(buf); b[i] ^= 0x01; return b; };
  const tampered = {
    'signature byte': cose.encodeSign1(parsed.protectedBytes, parsed.unprotected, null,
      flip(parsed.signature, 20)),
    'first path hash': withProof(good.treeSize, good.leafIndex, [flip(good.path[0], 0), ...good.path.slice(1)]),
    'last path hash': withProof(good.treeSize, good.leafIndex, [...good.path.slice(0, -1), flip(good.path.at(-1), 31)]),
    'leaf_index': withProof(good.treeSize, good.leafIndex ^ 1, good.path),
    'tree_size': withProof(good.treeSize + 1, good.leafIndex, good.path),
    'path hash dropped': withProof(good.treeSize, good.leafIndex, good.path.slice(0, -1)),
    'path hash added': withProof(good.treeSize, good.leafIndex, [...good.path, good.path[0]]),
    'protected iat': (() => {
      const h = cose.decodeOne(parsed.protectedBytes);
      h.get(cose.H_CWT_CLAIMS).set(6, h.get(cose.H_CWT_CLAIMS).get(6) + 1);
      return cose.encodeSign1(cose.encode(h), parsed.unprotected, null, parsed.signature);
    })(),
  };
  for (const [name, bytes] of Object.entries(tampered)) {
    assert.throws(() => cose.verifyReceipt(bytes, st.bytes, nodeKey), undefined, `JS accepted: ${name}`);
    const v = custosVerify(bytes);
    assert.equal(v.status, 1, `custos verify with tampered ${name}: exit ${v.status} ${v.stdout}${v.stderr}`);
  }
  // The untampered receipt for another statement.
  assert.throws(() => cose.verifyReceipt(receipt, other.bytes, nodeKey));
  assert.equal(custosVerify(receipt, oPath).status, 1);
  // The right receipt under a key that is not the node's.
  const v = node.cli('verify', '--statement', sPath, '--receipt', node.file('t.receipt'), '--node-key',
    node.file('neg-ed.pub'));
  assert.equal(v.status, 1);
});
