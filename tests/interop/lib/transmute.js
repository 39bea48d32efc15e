'use strict';
// A second, third-party receipt verifier: @transmute/cose parses the RFC 9942
// receipt (tag 18, vds 395 = 1, vdp 396 / -1 inclusion proof, nil payload)
// and recomputes the root with @transmute/rfc9162. @transmute/cose verifies
// signatures only with ECDSA keys, so the Ed25519 node signature over the
// root it hands us is checked here with Node's crypto.

const transmute = require('@transmute/cose');
const {cbor, sigStructure, verifyRaw, leafHashOf} = (() => {
  const cose = require('./cose');
  const rfc9162 = require('./rfc9162');
  return {...cose, leafHashOf: rfc9162.leafHash};
})();

async function verifyReceiptWithTransmute(receiptBytes, statementBytes, nodePublicKey) {
  const verifier = {
    verify: async ({coseSign1, payload}) => {
      const {value} = cbor.decodeFirstSync(Buffer.from(coseSign1), {preferMap: true});
      const [protectedBytes, , , signature] = value;
      const alg = cbor.decodeFirstSync(protectedBytes, {preferMap: true}).get(1);
      if (!verifyRaw(alg, nodePublicKey, sigStructure(protectedBytes, Buffer.from(payload)), signature)) {
        throw new Error('receipt signature does not verify over the root @transmute/cose computed');
      }
      return payload;
    },
  };
  const root = await transmute.receipt.inclusion.verify({
    entry: leafHashOf(statementBytes),
    receipt: Buffer.from(receiptBytes),
    verifier,
  });
  return Buffer.from(root);
}

module.exports = {verifyReceiptWithTransmute};
