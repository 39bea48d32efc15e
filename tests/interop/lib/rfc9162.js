'use strict';
// RFC 9162 (Certificate Transparency 2.0) Merkle tree hashing with SHA-256,
// written in JS straight from the RFC text, independent of custos's C++:
//   2.1.1   MTH, leaf hash HASH(0x00 || d), node hash HASH(0x01 || l || r)
//   2.1.3.1 PATH (inclusion proof generation)
//   2.1.3.2 inclusion proof verification (root recomputation)
//   2.1.4.1 PROOF / SUBPROOF (consistency proof generation)
//   2.1.4.2 consistency proof verification
// Sizes are JS numbers: fine up to 2^53, far beyond what the tests make.

const crypto = require('node:crypto');

const HASH = (...parts) => crypto.createHash('sha256').update(Buffer.concat(parts)).digest();
const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

const leafHash = (entry) => HASH(LEAF_PREFIX, Buffer.from(entry));
const nodeHash = (left, right) => HASH(NODE_PREFIX, left, right);

// Largest power of two smaller than n (n > 1): the RFC's k.
function splitPoint(n) {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOf2(x) {
  let p = 1;
  while (p < x) p *= 2;
  return p === x;
}

const lsb = (x) => x % 2 === 1;
const shr = (x) => Math.floor(x / 2);

// MTH over already-hashed leaves (leaf hashes), 2.1.1.
function mthFromLeafHashes(leaves) {
  const n = leaves.length;
  if (n === 0) return HASH(Buffer.alloc(0));
  if (n === 1) return leaves[0];
  const k = splitPoint(n);
  return nodeHash(mthFromLeafHashes(leaves.slice(0, k)), mthFromLeafHashes(leaves.slice(k)));
}

const mth = (entries) => mthFromLeafHashes(entries.map(leafHash));

// PATH(m, D[n]) over leaf hashes, 2.1.3.1.
function inclusionPath(m, leaves) {
  const n = leaves.length;
  if (n === 1 && m === 0) return [];
  const k = splitPoint(n);
  if (m < k) return [...inclusionPath(m, leaves.slice(0, k)), mthFromLeafHashes(leaves.slice(k))];
  return [...inclusionPath(m - k, leaves.slice(k)), mthFromLeafHashes(leaves.slice(0, k))];
}

// PROOF(m, D[n]) over leaf hashes, 2.1.4.1.
function consistencyPath(m, leaves) {
  const sub = (m2, d, b) => {
    const n = d.length;
    if (m2 === n) return b ? [] : [mthFromLeafHashes(d)];
    const k = splitPoint(n);
    if (m2 <= k) return [...sub(m2, d.slice(0, k), b), mthFromLeafHashes(d.slice(k))];
    return [...sub(m2 - k, d.slice(k), false), mthFromLeafHashes(d.slice(0, k))];
  };
  return sub(m, leaves, true);
}

// 2.1.3.2, steps 1-5, returning the recomputed root (a detached COSE receipt
// payload is exactly that root). Throws when the proof is malformed.
function rootFromInclusionProof(leafIndex, treeSize, hash, inclusionPathHashes) {
  // 1. Compare leaf_index against tree_size. If leaf_index is greater than or
  //    equal to tree_size, then fail the proof verification.
  if (!(Number.isInteger(leafIndex) && Number.isInteger(treeSize)) || leafIndex >= treeSize) {
    throw new Error(`inclusion proof: leaf_index ${leafIndex} is not below tree_size ${treeSize}`);
  }
  // 2. Set fn to leaf_index and sn to tree_size - 1.
  let fn = leafIndex;
  let sn = treeSize - 1;
  // 3. Set r to hash.
  let r = Buffer.from(hash);
  // 4. For each value p in the inclusion_path array:
  for (const pRaw of inclusionPathHashes) {
    const p = Buffer.from(pRaw);
    // a. If sn is 0, then stop the iteration and fail the proof verification.
    if (sn === 0) throw new Error('inclusion proof: path longer than the tree is deep');
    // b. If LSB(fn) is set, or if fn is equal to sn, then:
    if (lsb(fn) || fn === sn) {
      // i. Set r to HASH(0x01 || p || r).
      r = nodeHash(p, r);
      // ii. If LSB(fn) is not set, then right-shift both fn and sn equally
      //     until either LSB(fn) is set or fn is 0.
      if (!lsb(fn)) {
        while (!lsb(fn) && fn !== 0) { fn = shr(fn); sn = shr(sn); }
      }
    } else {
      // Otherwise: i. Set r to HASH(0x01 || r || p).
      r = nodeHash(r, p);
    }
    // c. Finally, right-shift both fn and sn one time.
    fn = shr(fn);
    sn = shr(sn);
  }
  // 5. Compare sn to 0. (The caller compares r to the root / signature.)
  if (sn !== 0) throw new Error('inclusion proof: path shorter than the tree is deep');
  return r;
}

// 2.1.4.2: true when the proof shows the tree of size `first` with root
// `firstHash` is a prefix of the tree of size `second` with root `secondHash`.
function verifyConsistency(first, second, firstHash, secondHash, consistencyPathHashes) {
  if (!(Number.isInteger(first) && Number.isInteger(second)) || first < 1 || first >= second) return false;
  let path = consistencyPathHashes.map((h) => Buffer.from(h));
  // 1. If consistency_path is an empty array, stop and fail the proof verification.
  if (path.length === 0) return false;
  // 2. If first is an exact power of 2, then prepend first_hash to the consistency_path array.
  if (isPowerOf2(first)) path = [Buffer.from(firstHash), ...path];
  // 3. Set fn to first - 1 and sn to second - 1.
  let fn = first - 1;
  let sn = second - 1;
  // 4. If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not set.
  while (lsb(fn)) { fn = shr(fn); sn = shr(sn); }
  // 5. Set both fr and sr to the first value in the consistency_path array.
  let fr = path[0];
  let sr = path[0];
  // 6. For each subsequent value c in the consistency_path array:
  for (const c of path.slice(1)) {
    // a. If sn is 0, then stop the iteration and fail the proof verification.
    if (sn === 0) return false;
    // b. If LSB(fn) is set, or if fn is equal to sn, then:
    if (lsb(fn) || fn === sn) {
      // i. Set fr to HASH(0x01 || c || fr).  ii. Set sr to HASH(0x01 || c || sr).
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      // iii. If LSB(fn) is not set, then right-shift both fn and sn equally
      //      until either LSB(fn) is set or fn is 0.
      if (!lsb(fn)) {
        while (!lsb(fn) && fn !== 0) { fn = shr(fn); sn = shr(sn); }
      }
    } else {
      // Otherwise: i. Set sr to HASH(0x01 || sr || c).
      sr = nodeHash(sr, c);
    }
    // c. Finally, right-shift both fn and sn one time.
    fn = shr(fn);
    sn = shr(sn);
  }
  // 7. After completing iterating through the consistency_path array as
  //    described above, verify that the fr calculated is equal to the
  //    first_hash supplied, that the sr calculated is equal to the
  //    second_hash supplied, and that sn is 0.
  return fr.equals(Buffer.from(firstHash)) && sr.equals(Buffer.from(secondHash)) && sn === 0;
}

module.exports = {
  HASH, leafHash, nodeHash, mth, mthFromLeafHashes, inclusionPath, consistencyPath,
  rootFromInclusionProof, verifyConsistency, isPowerOf2,
};
