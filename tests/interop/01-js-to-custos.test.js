'use strict';
// JS -> custos: statements built and signed entirely in JS (npm cbor in
// canonical mode, Node crypto) are accepted by a real custos node, and the
// receipts it answers verify in JS (RFC 9162 root recomputation + the node's
// Ed25519 signature) and with @transmute/cose, and `custos verify` accepts
// the JS statement with its receipt.

const {test, before, after} = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const {CustosNode} = require('./lib/custos');
const cose = require('./lib/cose');
const {verifyReceiptWithTransmute, verifyReceiptBundleWithTransmute} = require('./lib/transmute');

const node = new CustosNode();
const hex = (b) => Buffer.from(b).toString('hex');
const now = () => Math.floor(Date.now() / 1000);

// Hand-written CBOR heads (RFC 8949 section 3), to check the npm encoder's
// output byte for byte without trusting it.
function head(major, n) {
  if (n < 24) return Buffer.from([(major << 5) | n]);
  if (n < 0x100) return Buffer.from([(major << 5) | 24, n]);
  if (n < 0x10000) { const b = Buffer.alloc(3); b[0] = (major << 5) | 25; b.writeUInt16BE(n, 1); return b; }
  if (n < 0x100000000) { const b = Buffer.alloc(5); b[0] = (major << 5) | 26; b.writeUInt32BE(n, 1); return b; }
  throw new Error('too large for this test');
}
const uint = (n) => head(0, n);
const nint = (n) => head(1, -1 - n);
const text = (s) => Buffer.concat([head(3, Buffer.byteLength(s)), Buffer.from(s)]);
const bstr = (b) => Buffer.concat([head(2, b.length), b]);

// The RFC 8949 4.2.1 deterministic encoding of a statement header, keys in
// encoded-byte order: 1, 3, 4, 15 {1, 2, 6}, -65537.
const expectedProtected = ({alg, contentType, kid, iss, sub, iat, seq}) => Buffer.concat([
  Buffer.from([0xa5]), uint(1), nint(alg), uint(3), text(contentType), uint(4), bstr(kid),
  uint(15), Buffer.from([0xa3]), uint(1), text(iss), uint(2), text(sub), uint(6), uint(iat),
  nint(-65537), uint(seq),
]);

const keys = {};

before(async () => {
  await node.start();
  for (const [name, type, opts] of [['ed', 'ed25519', {}], ['es', 'ec', {namedCurve: 'P-256'}]]) {
    const {privateKey, publicKey} = crypto.generateKeyPairSync(type, opts);
    const pemPath = node.file(`${name}.pub.pem`);
    fs.writeFileSync(pemPath, publicKey.export({type: 'spki', format: 'pem'}));
    keys[name] = {privateKey, publicKey, kid: cose.kidOf(publicKey), pemPath};
  }
});

after(() => node.stop());

test('custos registers JS-generated SPKI keys under the kid JS computes', async () => {
  for (const [name, k] of Object.entries(keys)) {
    node.registerKey(k.pemPath, `js-${name}`);
    const shown = await node.getJson(`/v1/keys/${hex(k.kid)}`);
    assert.equal(shown.kid, hex(k.kid));
    assert.equal(shown.alg, name === 'ed' ? 'Ed25519' : 'ES256');
    assert.equal(shown.status, 'active');
    assert.deepEqual(shown.roles, ['issuer']);
    // The key custos stored is the same SPKI.
    assert.ok(cose.spkiDer(shown.public_key_pem).equals(cose.spkiDer(k.publicKey)));
  }
});

// Statements: Ed25519 with alg -19 and -8 (both accepted for Ed25519), ES256.
const cases = [
  {key: 'ed', alg: cose.ALG_ED25519, seq: 1},
  {key: 'ed', alg: cose.ALG_EDDSA, seq: 2},
  {key: 'es', alg: cose.ALG_ES256, seq: 1},
];

for (const c of cases) {
  test(`JS statement (alg ${c.alg}, seq ${c.seq}) registers; its receipt verifies in JS and with custos verify`,
    async () => {
      const k = keys[c.key];
      const iat = now();
      const fields = {alg: c.alg, contentType: 'application/cbor', kid: k.kid, iss: `js-device-${c.key}`,
        sub: 'patient/4711', iat, seq: c.seq};
      const payloadValue = {hr: 72, spo2: 98, alg: c.alg, note: 'interop ü'};
      const payload = cose.encode(payloadValue);

      // The protected header the npm encoder writes is the deterministic one.
      const protectedBytes = cose.encode(cose.statementProtectedMap(fields));
      assert.equal(hex(protectedBytes), hex(expectedProtected(fields)));
      // ... and does not depend on the order the Map was filled in.
      const shuffled = new Map([...cose.statementProtectedMap(fields)].reverse());
      assert.equal(hex(cose.encode(shuffled)), hex(protectedBytes));

      const st = cose.buildStatement({privateKey: k.privateKey, alg: c.alg, contentType: fields.contentType,
        iss: fields.iss, sub: fields.sub, iat, seq: c.seq, payload});
      assert.equal(hex(st.protectedBytes), hex(protectedBytes));
      // Our own parser accepts what we built (sanity of the JS side).
      cose.verifyStatement(st.bytes, k.publicKey);

      const res = await node.postStatement(st.bytes);
      assert.equal(res.status, 201, JSON.stringify(res.body));
      assert.equal(res.body.status, 'registered');
      assert.equal(res.body.id, hex(cose.sha256(st.bytes)), 'entry id is SHA-256 of the statement bytes');
      assert.ok(Number.isInteger(res.body.index) && Number.isInteger(res.body.height));

      // The node stores the exact bytes and reads the header as JS wrote it.
      const stored = await node.getBytes(`/v1/entries/${res.body.id}`, 'application/cose');
      assert.equal(hex(stored), hex(st.bytes));
      const info = await node.getJson(`/v1/entries/${res.body.id}`);
      assert.equal(info.kid, hex(k.kid));
      assert.equal(info.alg, c.key === 'ed' ? 'Ed25519' : 'ES256');
      assert.equal(info.issuer, fields.iss);
      assert.equal(info.subject, fields.sub);
      assert.equal(info.issued_at, iat);
      assert.equal(info.sequence, c.seq);
      assert.equal(info.content_type, 'application/cbor');
      assert.deepEqual(info.payload, payloadValue);

      // Receipt: verified in JS from the RFCs. The node serves a bundle of
      // consortium receipts (or one receipt): a quorum of the genesis nodes
      // must have signed, and this node's element verifies on its own.
      const served = await node.receipt(res.body.id);
      const nodeKey = crypto.createPublicKey(node.nodePubPem);
      const genesisKeys = node.genesisNodeKeys().map((pem) => crypto.createPublicKey(pem));
      const quorum = cose.quorumSize(genesisKeys.length);
      const bundle = cose.verifyReceiptBundle(served, st.bytes, genesisKeys, quorum);
      assert.ok(bundle.signers.length >= quorum);
      const viaTransmute = await verifyReceiptBundleWithTransmute(served, st.bytes, genesisKeys, quorum);
      assert.equal(hex(viaTransmute.root), hex(bundle.root));
      const receipt = cose.nodeReceipt(served, nodeKey);
      const r = cose.verifyReceipt(receipt, st.bytes, nodeKey);
      assert.equal(r.leafIndex, res.body.index);
      assert.equal(r.iss, 'node-0');
      const block = await node.block(res.body.height);
      assert.equal(r.treeSize, block.log_size, 'receipt tree size is the block log size');
      assert.equal(hex(r.root), block.root, 'recomputed root is the block root');
      assert.equal(r.iat, Math.floor(block.time_ms / 1000));

      // The same receipt through @transmute/cose (+ @transmute/rfc9162).
      const root2 = await verifyReceiptWithTransmute(receipt, st.bytes, nodeKey);
      assert.equal(hex(root2), hex(r.root));

      // The receipt does not verify for any other statement.
      const other = Buffer.from(st.bytes);
      other[other.length - 1] ^= 1;
      assert.throws(() => cose.verifyReceipt(receipt, other, nodeKey));
      await assert.rejects(verifyReceiptWithTransmute(receipt, other, nodeKey));

      // custos verify accepts the JS-made statement and receipt.
      const sPath = node.file(`js-${c.key}-${c.seq}.cose`);
      const rPath = node.file(`js-${c.key}-${c.seq}.receipt`);
      fs.writeFileSync(sPath, st.bytes);
      fs.writeFileSync(rPath, served);
      const v = node.cli('verify', '--statement', sPath, '--receipt', rPath, '--node-key', node.nodePubPath);
      assert.equal(v.status, 0, `custos verify: ${v.stdout}${v.stderr}`);
      const g = node.cli('verify', '--statement', sPath, '--receipt', rPath, '--genesis', node.genesisPath);
      assert.equal(g.status, 0, `custos verify --genesis: ${g.stdout}${g.stderr}`);
    });
}

// RFC 9942 section 5.2 (CDDL): inclusion-proof-content = [tree-size: uint,
// leaf-index: uint, inclusion-path: [ + bstr ]], i.e. at least one hash.
// RFC 9162 2.1.3.1 gives the entry alone in a tree of size 1 (the first entry
// of every log) the empty PATH; custos therefore proves that entry against
// the newest block once the log holds a second entry.
test('RFC 9942 5.2: every receipt inclusion-path has at least one hash (first entry included)',
  async () => {
    const first = (await node.getJson('/v1/entries?limit=1')).entries[0];
    assert.equal(first.index, 0);
    const nodeKey = crypto.createPublicKey(node.nodePubPem);
    const r = cose.parseReceipt(cose.nodeReceipt(await node.receipt(first.id), nodeKey));
    assert.ok(r.path.length >= 1, `tree_size ${r.treeSize}, inclusion-path has ${r.path.length} hashes`);
  });
