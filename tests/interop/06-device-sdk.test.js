'use strict';
// Statements made by the C device SDK (sdk/c, through the custos-pump
// example's --sign-only mode), verified with this directory's independent
// COSE code (lib/cose.js: npm cbor + Node crypto): deterministic CBOR, the
// documented protected header, and the signature, for ES256 and Ed25519.
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {spawnSync} = require('node:child_process');
const {test} = require('node:test');
const cose = require('./lib/cose');

// CUSTOS_PUMP_BIN: the SDK's example program; default next to build/custos.
const PUMP_BIN = process.env.CUSTOS_PUMP_BIN
  ? path.resolve(process.env.CUSTOS_PUMP_BIN)
  : path.resolve(__dirname, '../../build/sdk/c/custos-pump');

for (const [name, gen] of [
  ['ES256', () => crypto.generateKeyPairSync('ec', {namedCurve: 'P-256'})],
  ['Ed25519', () => crypto.generateKeyPairSync('ed25519')],
]) {
  test(`device SDK ${name} statements verify with independent COSE code`, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'custos-sdk-'));
    try {
      const {privateKey, publicKey} = gen();
      const keyPath = path.join(dir, 'device.key');
      fs.writeFileSync(keyPath, privateKey.export({type: 'pkcs8', format: 'pem'}), {mode: 0o600});
      const out = spawnSync(PUMP_BIN, ['--sign-only', dir, '--key', keyPath, '--id', 'pump-17', '--count', '6'],
                            {encoding: 'utf8'});
      assert.equal(out.status, 0, out.stderr);
      const files = fs.readdirSync(dir).filter((f) => f.endsWith('.cose')).sort();
      assert.equal(files.length, 6);
      files.forEach((f, i) => {
        const bytes = fs.readFileSync(path.join(dir, f));
        cose.verifyStatement(bytes, publicKey);
        const s = cose.parseSign1(bytes);
        const h = s.protectedMap;
        assert.equal(h.get(cose.H_CONTENT_TYPE), 'application/vnd.custos.device-event+cbor');
        assert.deepEqual(h.get(cose.H_KID), cose.kidOf(publicKey));
        assert.equal(Number(h.get(cose.H_SEQUENCE)), i + 1);
        assert.equal(h.get(cose.H_CWT_CLAIMS).get(cose.C_ISS), 'pump-17');
        const payload = cose.decodeOne(s.payload);
        assert.ok(payload.get('event'), 'a device event names its kind');
      });
    } finally {
      fs.rmSync(dir, {recursive: true, force: true});
    }
  });
}
