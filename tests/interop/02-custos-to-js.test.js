'use strict';
// custos -> JS: keys made by `custos keygen` and statements made by
// `custos sign` parse and verify with the npm cbor package and Node crypto;
// header labels and types are as documented; kid is SHA-256 of the SPKI DER
// computed in JS; receipts fetched with `custos receipt` verify in JS.

const {test, before, after} = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const {CustosNode} = require('./lib/custos');
const cose = require('./lib/cose');

const node = new CustosNode();
const hex = (b) => Buffer.from(b).toString('hex');
const keys = {};

// JSON with nested maps whose deterministic key order differs from the
// insertion order ("b" sorts before "aa"), floats that have a shorter exact
// form (1.5 fits float16) and ones that do not (98.6), and uint64 max.
const PAYLOAD_JSON = '{"device":"infusion-pump-7","b":1,"aa":[1.5,98.6,-3,true,null,"x"],' +
  '"nested":{"zz":{"k":[]},"a":"é"},"big":18446744073709551615}';

before(async () => {
  await node.start();
  for (const alg of ['ed25519', 'es256']) {
    const keyPath = node.file(`${alg}.key`);
    const out = JSON.parse(node.cliOk('keygen', '--alg', alg, '--out', keyPath, '--json').stdout);
    keys[alg] = {keyPath, pubPath: path.resolve(node.dir, out.public_key), out};
  }
  fs.writeFileSync(node.file('payload.json'), PAYLOAD_JSON);
});

after(() => node.stop());

test('custos keygen: PKCS#8 / SPKI PEM that Node reads, kid = SHA-256(SPKI DER) computed in JS', () => {
  for (const [alg, k] of Object.entries(keys)) {
    const priv = crypto.createPrivateKey(fs.readFileSync(k.keyPath));
    const pub = crypto.createPublicKey(fs.readFileSync(k.pubPath));
    assert.equal(priv.asymmetricKeyType, alg === 'ed25519' ? 'ed25519' : 'ec');
    if (alg === 'es256') assert.equal(pub.asymmetricKeyDetails.namedCurve, 'prime256v1');
    // The .pub file is the public half of the private key.
    assert.ok(cose.spkiDer(priv).equals(cose.spkiDer(pub)));
    assert.equal(k.out.kid, hex(cose.kidOf(pub)));
    assert.equal(k.out.alg, alg === 'ed25519' ? 'Ed25519' : 'ES256');
    k.pub = pub;
    k.priv = priv;
  }
});

for (const alg of ['ed25519', 'es256']) {
  test(`custos sign (${alg}) -> statement parses and verifies in JS with the documented header`, async () => {
    const k = keys[alg];
    node.registerKey(k.pubPath, `cli-${alg}`);
    const iat = 1700000000 + (alg === 'es256' ? 1 : 0);
    const files = [];
    // Two with the defaults (sequence 1, 2 from KEY.seq, iat = now), then
    // one with an explicit --seq and --iat.
    const runs = [[], [], ['--seq', '7', '--iat', String(iat)]];
    for (const [i, extra] of runs.entries()) {
      const out = node.file(`${alg}-${i}.cose`);
      node.cliOk('sign', '--key', k.keyPath, '--iss', `cli-device-${alg}`, '--sub', 'patient/42',
        '--json', node.file('payload.json'), '--out', out, ...extra);
      files.push(out);
    }
    const before = Math.floor(Date.now() / 1000) - 5;
    for (const [i, file] of files.entries()) {
      const bytes = fs.readFileSync(file);
      // Our parser: every label and type checked, signature checked with
      // Node crypto (Ed25519 or ES256 raw r||s), kid = SHA-256(SPKI DER).
      const st = cose.verifyStatement(bytes, k.pub);
      assert.equal(st.header.alg, alg === 'ed25519' ? cose.ALG_ED25519 : cose.ALG_ES256);
      assert.equal(st.header.contentType, 'application/cbor');
      assert.ok(st.header.kid.equals(cose.kidOf(k.pub)));
      assert.equal(st.header.iss, `cli-device-${alg}`);
      assert.equal(st.header.sub, 'patient/42');
      assert.equal(st.header.seq, [1, 2, 7][i]);
      if (i === 2) assert.equal(st.header.iat, iat);
      else assert.ok(st.header.iat >= before && st.header.iat <= Math.floor(Date.now() / 1000) + 5);

      // Byte-level: the statement, its protected header and its payload are
      // exactly what an independent RFC 8949 deterministic encoder writes.
      assert.equal(hex(st.protectedBytes), hex(cose.encode(cose.statementProtectedMap(st.header))));
      assert.ok(cose.isDeterministic(bytes), 'whole COSE_Sign1 is deterministic CBOR');
      assert.ok(cose.isDeterministic(st.payload), 'payload is deterministic CBOR');
      assert.equal(bytes[0], 0xd2, 'tag 18 in one byte');

      // Payload: the JSON as CBOR.
      const p = cose.decodeOne(st.payload);
      assert.equal(p.get('device'), 'infusion-pump-7');
      assert.equal(p.get('b'), 1);
      assert.deepEqual(p.get('aa'), [1.5, 98.6, -3, true, null, 'x']);
      assert.equal(p.get('nested').get('a'), 'é');
      assert.deepEqual(p.get('nested').get('zz').get('k'), []);
      assert.equal(p.get('big'), 18446744073709551615n);
      assert.deepEqual([...p.keys()], ['b', 'aa', 'big', 'device', 'nested'], 'keys in deterministic order');

      // A flipped payload byte or signature byte no longer verifies in JS.
      const sig = Buffer.from(st.signature);
      sig[10] ^= 1;
      assert.ok(!cose.verifyRaw(st.header.alg, k.pub, cose.sigStructure(st.protectedBytes, st.payload), sig));
      const payload = Buffer.from(st.payload);
      payload[payload.length - 1] ^= 1;
      assert.ok(!cose.verifyRaw(st.header.alg, k.pub, cose.sigStructure(st.protectedBytes, payload),
        st.signature));
    }

    // Submitted with the CLI; receipts fetched with the CLI verify in JS.
    const submitted = JSON.parse(node.cliOk('submit', '--node', node.url, '--json', files[0]).stdout);
    const results = Array.isArray(submitted) ? submitted : [submitted];
    const bytes = fs.readFileSync(files[0]);
    assert.equal(results[0].id, hex(cose.sha256(bytes)));
    const receiptPath = node.file(`${alg}.receipt`);
    node.cliOk('receipt', '--node', node.url, results[0].id, '--out', receiptPath);
    const nodeKey = crypto.createPublicKey(node.nodePubPem);
    const r = cose.verifyReceipt(cose.nodeReceipt(fs.readFileSync(receiptPath), nodeKey), bytes, nodeKey);
    const block = await node.block(results[0].height);
    assert.equal(hex(r.root), block.root);
    assert.equal(r.treeSize, block.log_size);
  });
}
