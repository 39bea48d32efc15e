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

// A bundle checked element by element with @transmute/cose: the kid picks
// the node key (genesis order), each node counts once, and the counted
// elements must all yield the same root. Throws below `quorum`; returns the
// signing node indexes and the root.
async function verifyReceiptBundleWithTransmute(bundleBytes, statementBytes, nodeKeys, quorum) {
  const {splitReceiptBundle, kidOf} = require('./cose');
  const kids = nodeKeys.map((k) => kidOf(k).toString('hex'));
  const byRoot = new Map();
  for (const element of splitReceiptBundle(bundleBytes)) {
    const {value} = cbor.decodeFirstSync(element, {preferMap: true});
    const kid = cbor.decodeFirstSync(value[0], {preferMap: true}).get(4);
    const node = Buffer.isBuffer(kid) ? kids.indexOf(kid.toString('hex')) : -1;
    if (node < 0) continue;
    let root;
    try {
      root = (await verifyReceiptWithTransmute(element, statementBytes, nodeKeys[node])).toString('hex');
    } catch (_) {
      continue;
    }
    if (!byRoot.has(root)) byRoot.set(root, new Set());
    byRoot.get(root).add(node);
  }
  let best = {root: null, nodes: new Set()};
  for (const [root, nodes] of byRoot) if (nodes.size > best.nodes.size) best = {root, nodes};
  if (best.nodes.size < quorum) {
    throw new Error(`@transmute/cose: ${best.nodes.size} of ${quorum} required node signatures`);
  }
  return {signers: [...best.nodes], root: Buffer.from(best.root, 'hex')};
}

module.exports = {verifyReceiptWithTransmute, verifyReceiptBundleWithTransmute};
