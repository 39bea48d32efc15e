'use strict';
// COSE_Sign1 (RFC 9052), custos statements, RFC 9942 receipts and custos
// checkpoints built, parsed and verified with the npm `cbor` package and
// Node's crypto: an implementation independent of custos's C++ code.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const cbor = require('cbor');
const rfc9162 = require('./rfc9162');

// IANA COSE algorithms.
const ALG_ES256 = -7;
const ALG_EDDSA = -8;
const ALG_ED25519 = -19;

// IANA COSE header parameters and custos's private-use label.
const H_ALG = 1;
const H_CONTENT_TYPE = 3;
const H_KID = 4;
const H_CWT_CLAIMS = 15;
const H_VDS = 395;
const H_VDP = 396;
const H_SEQUENCE = -65537;
const H_TREE_SIZE = -65538; // custos: tree size bound in the receipt signature
// CWT claims (RFC 8392).
const C_ISS = 1;
const C_SUB = 2;
const C_IAT = 6;
const VDS_RFC9162_SHA256 = 1;
const VDP_INCLUSION = -1;
const TAG_SIGN1 = 18;

const CHECKPOINT_CONTENT_TYPE = 'application/vnd.custos.checkpoint+cbor';

// RFC 8949 section 4.2.1 core deterministic encoding: the npm cbor
// encoder's canonical mode sorts map keys by their encoded bytes and uses
// the shortest integer / length forms.
const encode = (value) => cbor.encodeCanonical(value);

// Exactly one well-formed CBOR data item, maps as Map.
function decodeOne(bytes) {
  const items = cbor.decodeAllSync(Buffer.from(bytes), {preferMap: true});
  assert.equal(items.length, 1, 'expected exactly one CBOR data item');
  return items[0];
}

const sha256 = (bytes) => crypto.createHash('sha256').update(bytes).digest();
// A public KeyObject from a public/private KeyObject or a PEM.
const toPublic = (key) => (key instanceof crypto.KeyObject && key.type === 'public' ? key : crypto.createPublicKey(key));
const spkiDer = (publicKey) => toPublic(publicKey).export({type: 'spki', format: 'der'});
const kidOf = (publicKey) => sha256(spkiDer(publicKey));

// COSE alg for a Node KeyObject (private or public).
function coseAlgOf(key) {
  const k = toPublic(key);
  if (k.asymmetricKeyType === 'ed25519') return ALG_ED25519;
  if (k.asymmetricKeyType === 'ec' && k.asymmetricKeyDetails.namedCurve === 'prime256v1') return ALG_ES256;
  throw new Error(`unsupported key type ${k.asymmetricKeyType}`);
}

// Raw COSE signatures: Ed25519 (RFC 8032, 64 bytes) or ES256 as r || s
// (RFC 9053 section 2.1, 64 bytes, not DER).
function signRaw(alg, privateKey, data) {
  if (alg === ALG_ED25519 || alg === ALG_EDDSA) return crypto.sign(null, data, privateKey);
  if (alg === ALG_ES256) return crypto.sign('sha256', data, {key: privateKey, dsaEncoding: 'ieee-p1363'});
  throw new Error(`unsupported alg ${alg}`);
}

function verifyRaw(alg, publicKey, data, signature) {
  const key = toPublic(publicKey);
  if (alg === ALG_ED25519 || alg === ALG_EDDSA) {
    if (key.asymmetricKeyType !== 'ed25519') return false;
    return crypto.verify(null, data, key, signature);
  }
  if (alg === ALG_ES256) {
    if (key.asymmetricKeyType !== 'ec') return false;
    return crypto.verify('sha256', data, {key, dsaEncoding: 'ieee-p1363'}, signature);
  }
  return false;
}

// Sig_structure for COSE_Sign1 (RFC 9052 section 4.4), empty external_aad.
const sigStructure = (protectedBytes, payload) =>
  encode(['Signature1', Buffer.from(protectedBytes), Buffer.alloc(0), Buffer.from(payload)]);

const encodeSign1 = (protectedBytes, unprotected, payload, signature) =>
  encode(new cbor.Tagged(TAG_SIGN1, [Buffer.from(protectedBytes), unprotected,
    payload === null ? null : Buffer.from(payload), Buffer.from(signature)]));

function statementProtectedMap({alg, contentType, kid, iss, sub, iat, seq}) {
  return new Map([
    [H_ALG, alg],
    [H_CONTENT_TYPE, contentType],
    [H_KID, Buffer.from(kid)],
    [H_CWT_CLAIMS, new Map([[C_ISS, iss], [C_SUB, sub], [C_IAT, iat]])],
    [H_SEQUENCE, seq],
  ]);
}

// A custos statement built entirely here. `protectedBytes` overrides the
// header encoding (for the negative tests).
function buildStatement({privateKey, alg, contentType = 'application/cbor', iss, sub, iat, seq, payload,
  protectedBytes}) {
  const cose = alg ?? coseAlgOf(privateKey);
  const kid = kidOf(privateKey);
  const prot = protectedBytes ??
    encode(statementProtectedMap({alg: cose, contentType, kid, iss, sub, iat, seq}));
  const signature = signRaw(cose, privateKey, sigStructure(prot, payload));
  return {bytes: encodeSign1(prot, new Map(), payload, signature), protectedBytes: prot, signature};
}

// Parses a tagged COSE_Sign1 (structure only).
function parseSign1(bytes) {
  const item = decodeOne(bytes);
  assert.ok(item instanceof cbor.Tagged, 'COSE_Sign1 must be tagged');
  assert.equal(item.tag, TAG_SIGN1, 'COSE_Sign1 tag must be 18');
  assert.equal(item.err, undefined);
  const v = item.value;
  assert.ok(Array.isArray(v) && v.length === 4, 'COSE_Sign1 must be an array of 4');
  const [protectedBytes, unprotected, payload, signature] = v;
  assert.ok(Buffer.isBuffer(protectedBytes), 'protected header must be a bstr');
  assert.ok(unprotected instanceof Map, 'unprotected header must be a map');
  assert.ok(payload === null || Buffer.isBuffer(payload), 'payload must be a bstr or nil');
  assert.ok(Buffer.isBuffer(signature), 'signature must be a bstr');
  const protectedMap = protectedBytes.length === 0 ? new Map() : decodeOne(protectedBytes);
  assert.ok(protectedMap instanceof Map, 'protected header must be a map');
  return {protectedBytes, protectedMap, unprotected, payload, signature};
}

// True when `bytes` is the deterministic encoding of what it decodes to.
const isDeterministic = (bytes) => encode(decodeOne(bytes)).equals(Buffer.from(bytes));

const isUint = (v) => Number.isInteger(v) && v >= 0;
const isText = (v) => typeof v === 'string' && v.length > 0;

// Parses and checks a custos statement header as docs/formats.md and the
// brief define it; verifies the signature with `publicKey`.
function verifyStatement(bytes, publicKey) {
  const s = parseSign1(bytes);
  const h = s.protectedMap;
  assert.ok(isDeterministic(s.protectedBytes), 'statement protected header is not deterministic CBOR');
  const keys = [...h.keys()].sort((a, b) => a - b);
  assert.deepEqual(keys, [H_SEQUENCE, H_ALG, H_CONTENT_TYPE, H_KID, H_CWT_CLAIMS]);
  const alg = h.get(H_ALG);
  assert.ok([ALG_ES256, ALG_EDDSA, ALG_ED25519].includes(alg), `alg ${alg}`);
  assert.ok(isText(h.get(H_CONTENT_TYPE)), 'content type must be text');
  const kid = h.get(H_KID);
  assert.ok(Buffer.isBuffer(kid) && kid.length === 32, 'kid must be a 32-byte bstr');
  const claims = h.get(H_CWT_CLAIMS);
  assert.ok(claims instanceof Map, 'CWT claims must be a map');
  assert.deepEqual([...claims.keys()].sort((a, b) => a - b), [C_ISS, C_SUB, C_IAT]);
  assert.ok(isText(claims.get(C_ISS)) && isText(claims.get(C_SUB)), 'iss and sub must be text');
  assert.ok(isUint(claims.get(C_IAT)), 'iat must be an unsigned integer');
  const seq = h.get(H_SEQUENCE);
  assert.ok(isUint(seq) && seq >= 1, 'sequence must be an unsigned integer >= 1');
  assert.equal(s.unprotected.size, 0, 'unprotected header is empty');
  assert.ok(Buffer.isBuffer(s.payload), 'payload is attached');
  assert.equal(s.signature.length, 64, 'signature is 64 bytes');
  assert.ok(kid.equals(kidOf(publicKey)), 'kid is SHA-256 of the SPKI DER');
  assert.equal(alg === ALG_ES256 ? ALG_ES256 : ALG_ED25519, coseAlgOf(publicKey));
  assert.ok(verifyRaw(alg, publicKey, sigStructure(s.protectedBytes, s.payload), s.signature),
    'statement signature does not verify');
  return {
    ...s,
    header: {alg, contentType: h.get(H_CONTENT_TYPE), kid, iss: claims.get(C_ISS), sub: claims.get(C_SUB),
      iat: claims.get(C_IAT), seq},
  };
}

// RFC 9942 receipt over an RFC 9162 log: parse it (structure only).
function parseReceipt(bytes) {
  const s = parseSign1(bytes);
  const h = s.protectedMap;
  assert.ok(isDeterministic(s.protectedBytes), 'receipt protected header is not deterministic CBOR');
  assert.deepEqual([...h.keys()].sort((a, b) => a - b), [H_TREE_SIZE, H_ALG, H_KID, H_CWT_CLAIMS, H_VDS]);
  assert.equal(h.get(H_VDS), VDS_RFC9162_SHA256, 'vds must be 1 (RFC9162_SHA256)');
  const kid = h.get(H_KID);
  assert.ok(Buffer.isBuffer(kid) && kid.length === 32, 'receipt kid must be a 32-byte bstr');
  const claims = h.get(H_CWT_CLAIMS);
  assert.ok(claims instanceof Map);
  assert.deepEqual([...claims.keys()].sort((a, b) => a - b), [C_ISS, C_IAT]);
  assert.ok(isText(claims.get(C_ISS)));
  assert.ok(isUint(claims.get(C_IAT)));
  assert.equal(s.payload, null, 'receipt payload must be detached (nil)');
  assert.deepEqual([...s.unprotected.keys()], [H_VDP]);
  const vdp = s.unprotected.get(H_VDP);
  assert.ok(vdp instanceof Map);
  assert.deepEqual([...vdp.keys()], [VDP_INCLUSION]);
  const proofs = vdp.get(VDP_INCLUSION);
  assert.ok(Array.isArray(proofs) && proofs.length === 1 && Buffer.isBuffer(proofs[0]),
    'inclusion proofs must be an array of one bstr');
  const proof = decodeOne(proofs[0]);
  assert.ok(Array.isArray(proof) && proof.length === 3, 'inclusion proof must be [tree_size, leaf_index, path]');
  const [treeSize, leafIndex, path] = proof;
  assert.ok(isUint(treeSize) && isUint(leafIndex), 'tree_size and leaf_index must be unsigned');
  assert.ok(Array.isArray(path) && path.every((p) => Buffer.isBuffer(p) && p.length === 32),
    'path must be an array of 32-byte bstr');
  assert.equal(s.signature.length, 64);
  // custos signs the tree size too (docs/formats.md section 6): it must be the proof's.
  assert.equal(h.get(H_TREE_SIZE), treeSize, 'signed tree size (label -65538) differs from the proof');
  return {
    ...s, alg: h.get(H_ALG), kid, iss: claims.get(C_ISS), iat: claims.get(C_IAT), treeSize, leafIndex, path,
  };
}

// Full offline verification: recompute the RFC 9162 root from
// SHA-256(0x00 || statement) and the inclusion proof, then check the node's
// signature over Sig_structure with that root as the detached payload.
// Throws (AssertionError / Error) when anything does not verify; returns
// the parsed receipt and the root.
function verifyReceipt(receiptBytes, statementBytes, nodePublicKey) {
  const r = parseReceipt(receiptBytes);
  assert.ok(r.kid.equals(kidOf(nodePublicKey)), 'receipt kid is not the node key');
  assert.equal(r.alg === ALG_EDDSA ? ALG_ED25519 : r.alg, coseAlgOf(nodePublicKey),
    'receipt alg does not match the node key');
  const root = rfc9162.rootFromInclusionProof(r.leafIndex, r.treeSize, rfc9162.leafHash(statementBytes), r.path);
  assert.ok(verifyRaw(r.alg, nodePublicKey, sigStructure(r.protectedBytes, root), r.signature),
    'receipt signature does not verify over the recomputed root');
  return {...r, root};
}

// ---------------------------------------------------------------------------
// Consortium receipts (docs/formats.md section 6): a receipt bundle is the
// CBOR array [+ COSE_Sign1] of RFC 9942 receipts, one per signing node, all
// for one tree size. A single COSE_Sign1 receipt is a bundle of one.

const RECEIPT_BUNDLE_ENTRIES_MAX = 256;
const RECEIPT_BUNDLE_BYTES_MAX = 1024 * 1024;

// Signatures that make a quorum of n nodes: n - floor((n - 1) / 3), i.e.
// 2f + 1 for n = 3f + 1 (written from the formula in docs/formats.md).
const quorumSize = (n) => n - Math.floor((n - 1) / 3);

// The receipts of a bundle (or the one receipt), each as its own bytes. The
// npm cbor decoder splits the array; re-encoding it in canonical mode must
// give back the input, so the bundle is deterministic CBOR too.
function splitReceiptBundle(bytes) {
  const buf = Buffer.from(bytes);
  assert.ok(buf.length <= RECEIPT_BUNDLE_BYTES_MAX, `receipt bundle is ${buf.length} bytes`);
  const item = decodeOne(buf);
  if (item instanceof cbor.Tagged) return [buf];
  assert.ok(Array.isArray(item), 'receipt bundle must be a CBOR array of COSE_Sign1 (or one COSE_Sign1)');
  if (item.length === 4 && Buffer.isBuffer(item[0])) return [buf]; // one untagged COSE_Sign1
  assert.ok(item.length >= 1 && item.length <= RECEIPT_BUNDLE_ENTRIES_MAX,
    `receipt bundle has ${item.length} elements`);
  item.forEach((e, i) => assert.ok(e instanceof cbor.Tagged && e.tag === TAG_SIGN1,
    `receipt bundle element ${i} must be a tagged (18) COSE_Sign1`));
  assert.ok(encode(item).equals(buf), 'receipt bundle is not deterministic CBOR');
  return item.map((e) => encode(e));
}

// The element of a served receipt (bundle or single) signed by `nodePublicKey`.
function nodeReceipt(bytes, nodePublicKey) {
  const kid = kidOf(nodePublicKey);
  const mine = splitReceiptBundle(bytes).filter((e) => parseSign1(e).protectedMap.get(H_KID)?.equals(kid));
  assert.equal(mine.length, 1, `expected exactly one receipt by kid ${kid.toString('hex')}`);
  return mine[0];
}

// Distinct nodes per (tree size, root); the group with the most nodes wins,
// the first one seen on a tie.
function largestAgreeingGroup(valid) {
  const groups = new Map();
  for (const v of valid) {
    const key = `${v.treeSize}:${v.root.toString('hex')}`;
    if (!groups.has(key)) groups.set(key, []);
    const g = groups.get(key);
    if (!g.some((o) => o.node === v.node)) g.push(v);
  }
  let best = [];
  for (const g of groups.values()) if (g.length > best.length) best = g;
  return best;
}

// Offline check of a bundle against the consortium's node keys (genesis
// order): each element must name a node key, recompute its root from the
// statement (lib/rfc9162.js) and carry a valid signature; distinct nodes
// agreeing on one (tree size, root) are counted. Throws unless at least
// `quorum` are; returns {signers: [node index...], treeSize, root, leafIndex,
// rejected: [{element, node, reason}]}.
function verifyReceiptBundle(bytes, statementBytes, nodeKeys, quorum = quorumSize(nodeKeys.length)) {
  const elements = splitReceiptBundle(bytes);
  const kids = nodeKeys.map((k) => kidOf(k).toString('hex'));
  const valid = [];
  const rejected = [];
  elements.forEach((e, element) => {
    const kid = parseSign1(e).protectedMap.get(H_KID);
    const node = Buffer.isBuffer(kid) ? kids.indexOf(kid.toString('hex')) : -1;
    if (node < 0) {
      rejected.push({element, node: null, reason: 'unknown kid'});
      return;
    }
    try {
      const r = verifyReceipt(e, statementBytes, nodeKeys[node]);
      valid.push({element, node, treeSize: r.treeSize, leafIndex: r.leafIndex, root: r.root});
    } catch (err) {
      rejected.push({element, node, reason: err.message});
    }
  });
  const agreed = largestAgreeingGroup(valid);
  for (const v of valid) {
    if (!agreed.includes(v)) {
      const same = agreed.length > 0 && v.treeSize === agreed[0].treeSize && v.root.equals(agreed[0].root);
      rejected.push({element: v.element, node: v.node, reason: same ? 'duplicate node' : 'different tree size/root'});
    }
  }
  rejected.sort((a, b) => a.element - b.element);
  const result = {
    signers: agreed.map((v) => v.node), treeSize: agreed[0]?.treeSize, leafIndex: agreed[0]?.leafIndex,
    root: agreed[0]?.root, rejected,
  };
  if (agreed.length < quorum) {
    const why = rejected.map((r) => `element ${r.element}: ${r.reason}`).join('; ');
    throw new Error(`receipt bundle: ${agreed.length} of ${quorum} required node signatures${why ? `; ${why}` : ''}`);
  }
  return result;
}

// A custos checkpoint: COSE_Sign1 over the block header CBOR.
function verifyCheckpoint(bytes, nodePublicKey) {
  const s = parseSign1(bytes);
  const h = s.protectedMap;
  assert.ok(isDeterministic(s.protectedBytes), 'checkpoint protected header is not deterministic CBOR');
  assert.deepEqual([...h.keys()].sort((a, b) => a - b), [H_ALG, H_CONTENT_TYPE, H_KID]);
  assert.equal(h.get(H_CONTENT_TYPE), CHECKPOINT_CONTENT_TYPE);
  assert.ok(Buffer.isBuffer(h.get(H_KID)) && h.get(H_KID).equals(kidOf(nodePublicKey)),
    'checkpoint kid is not the node key');
  assert.ok(Buffer.isBuffer(s.payload), 'checkpoint payload is attached');
  assert.ok(verifyRaw(h.get(H_ALG), nodePublicKey, sigStructure(s.protectedBytes, s.payload), s.signature),
    'checkpoint signature does not verify');
  const header = decodeOne(s.payload);
  assert.ok(header instanceof Map, 'block header must be a map');
  return {...s, header: Object.fromEntries(header), headerBytes: s.payload};
}

module.exports = {
  ALG_ES256, ALG_EDDSA, ALG_ED25519, H_ALG, H_CONTENT_TYPE, H_KID, H_CWT_CLAIMS, H_VDS, H_VDP, H_SEQUENCE, H_TREE_SIZE,
  C_ISS, C_SUB, C_IAT, VDP_INCLUSION, TAG_SIGN1, CHECKPOINT_CONTENT_TYPE,
  cbor, encode, decodeOne, sha256, toPublic, spkiDer, kidOf, coseAlgOf, signRaw, verifyRaw, sigStructure, encodeSign1,
  statementProtectedMap, buildStatement, parseSign1, isDeterministic, verifyStatement, parseReceipt,
  verifyReceipt, verifyCheckpoint,
  RECEIPT_BUNDLE_ENTRIES_MAX, RECEIPT_BUNDLE_BYTES_MAX, quorumSize, splitReceiptBundle, nodeReceipt,
  verifyReceiptBundle,
};
