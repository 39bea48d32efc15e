#include "cose/receipt.h"

#include <algorithm>
#include <cassert>

#include "cose/internal.h"
#include "cose/sign1.h"
#include "merkle/merkle.h"

namespace custos::cose {

namespace {

using internal::describe;
using internal::Field;

constexpr std::string_view kProtected = "receipt protected header";
constexpr std::string_view kClaims = "receipt protected header: label 15 (CWT claims)";

constexpr Field kAlgField{kProtected, "label", kHeaderAlg, "alg"};
constexpr Field kKidField{kProtected, "label", kHeaderKid, "kid"};
constexpr Field kClaimsField{kProtected, "label", kHeaderCwtClaims, "CWT claims"};
constexpr Field kVdsField{kProtected, "label", kHeaderVds, "vds"};
constexpr Field kTreeSizeField{kProtected, "label", kHeaderTreeSize, "tree size"};
constexpr Field kIssField{kClaims, "claim", kClaimIss, "iss"};
constexpr Field kIatField{kClaims, "claim", kClaimIat, "iat"};

Status malformed(std::string message) {
  return error(ErrorCode::kMalformed, std::move(message));
}

std::string kid_hex(const Hash256& kid) {
  return to_hex(ByteView(kid.data(), kid.size()));
}

cbor::Value hashes_value(const std::vector<Hash256>& path) {
  cbor::Array hashes;
  hashes.reserve(path.size());
  for (const Hash256& h : path) hashes.push_back(cbor::Value::bytes(ByteView(h)));
  return cbor::Value::array(std::move(hashes));
}

// [a, b, [+ hash]]: the shape shared by inclusion and consistency proofs.
Bytes encode_proof(uint64_t a, uint64_t b, const std::vector<Hash256>& path) {
  cbor::Array parts;
  parts.push_back(cbor::Value::uint(a));
  parts.push_back(cbor::Value::uint(b));
  parts.push_back(hashes_value(path));
  return cbor::encode(cbor::Value::array(std::move(parts)));
}

struct RawProof {
  uint64_t a = 0;
  uint64_t b = 0;
  std::vector<Hash256> path;
};

// Decodes [uint, uint, [* bstr32]] (deterministic: proofs are hashed into
// nothing, but one encoding per proof keeps receipts canonical). An empty
// path is allowed: it is the correct proof for a one-leaf tree and for
// equal sizes.
Result<RawProof> decode_proof(ByteView bytes, std::string_view what, std::string_view a_name,
                              std::string_view b_name) {
  const std::string where(what);
  auto decoded = cbor::decode(bytes);
  if (!decoded.ok())
    return malformed(where + " is not deterministic CBOR: " + decoded.status().message());
  const cbor::Value& v = *decoded;
  if (!v.is(cbor::Type::kArray) || v.as_array().size() != 3) {
    return malformed(where + " must be an array of 3 (" + std::string(a_name) + ", " +
                     std::string(b_name) + ", path), got " + describe(v));
  }
  const cbor::Array& parts = v.as_array();
  if (!parts[0].is(cbor::Type::kUnsigned)) {
    return malformed(where + ": " + std::string(a_name) + " must be an unsigned integer, got " +
                     describe(parts[0]));
  }
  if (!parts[1].is(cbor::Type::kUnsigned)) {
    return malformed(where + ": " + std::string(b_name) + " must be an unsigned integer, got " +
                     describe(parts[1]));
  }
  if (!parts[2].is(cbor::Type::kArray)) {
    return malformed(where + ": path must be an array of hashes, got " + describe(parts[2]));
  }
  const cbor::Array& hashes = parts[2].as_array();
  if (hashes.size() > limits::kProofHashesMax) {
    return error(ErrorCode::kTooLarge, where + ": path has " + std::to_string(hashes.size()) +
                                           " hashes; the limit is " +
                                           std::to_string(limits::kProofHashesMax));
  }
  RawProof proof{parts[0].as_uint(), parts[1].as_uint(), {}};
  proof.path.reserve(hashes.size());
  for (size_t i = 0; i < hashes.size(); ++i) {
    if (!hashes[i].is(cbor::Type::kBytes) || hashes[i].as_bytes().size() != 32) {
      return malformed(where + ": path hash " + std::to_string(i) +
                       " must be a 32-byte bstr, got " + describe(hashes[i]));
    }
    proof.path.push_back(internal::to_hash(hashes[i].as_bytes()));
  }
  return proof;
}

Result<ReceiptHeader> parse_receipt_header(const cbor::Value& map) {
  CUSTOS_RETURN_IF_ERROR(
      internal::only_keys(map, kProtected, "label",
                          {kHeaderAlg, kHeaderKid, kHeaderCwtClaims, kHeaderVds, kHeaderTreeSize},
                          "1 alg, 4 kid, 15 CWT claims, 395 vds, -65538 tree size"));
  ReceiptHeader header;
  CUSTOS_ASSIGN_OR_RETURN(int64_t cose_alg, internal::require_int(map, kAlgField));
  auto alg = crypto::algorithm_from_cose(cose_alg);
  if (!alg.ok()) {
    return internal::field_error(kAlgField, std::to_string(cose_alg) + " is not supported");
  }
  header.alg = *alg;
  CUSTOS_ASSIGN_OR_RETURN(header.kid, internal::require_hash(map, kKidField));
  CUSTOS_ASSIGN_OR_RETURN(const cbor::Value* claims, internal::require_map(map, kClaimsField));
  CUSTOS_RETURN_IF_ERROR(
      internal::only_keys(*claims, kClaims, "claim", {kClaimIss, kClaimIat}, "1 iss, 6 iat"));
  CUSTOS_ASSIGN_OR_RETURN(header.issuer,
                          internal::require_text(*claims, kIssField, limits::kTextFieldBytesMax));
  CUSTOS_ASSIGN_OR_RETURN(header.issued_at_s, internal::require_uint(*claims, kIatField));
  CUSTOS_ASSIGN_OR_RETURN(int64_t vds, internal::require_int(map, kVdsField));
  if (vds != kVdsRfc9162Sha256) {
    return internal::field_error(kVdsField,
                                 "must be 1 (RFC9162_SHA256), got " + std::to_string(vds));
  }
  if (map.find(kHeaderTreeSize)) {
    CUSTOS_ASSIGN_OR_RETURN(uint64_t tree_size, internal::require_uint(map, kTreeSizeField));
    header.tree_size = tree_size;
  }
  return header;
}

// {396: {-1: [bstr .cbor inclusion-proof]}} with exactly one proof.
Result<InclusionProof> parse_vdp(const cbor::Value& unprotected) {
  CUSTOS_RETURN_IF_ERROR(internal::only_keys(unprotected, "receipt unprotected header", "label",
                                             {kHeaderVdp}, "396 vdp"));
  const Field vdp_field{"receipt unprotected header", "label", kHeaderVdp, "vdp"};
  CUSTOS_ASSIGN_OR_RETURN(const cbor::Value* vdp, internal::require_map(unprotected, vdp_field));
  constexpr std::string_view kVdpWhere = "receipt unprotected header: label 396 (vdp)";
  CUSTOS_RETURN_IF_ERROR(
      internal::only_keys(*vdp, kVdpWhere, "proof type", {kVdpInclusion}, "-1 inclusion"));
  const Field inclusion_field{kVdpWhere, "proof type", kVdpInclusion, "inclusion"};
  CUSTOS_ASSIGN_OR_RETURN(const cbor::Value* proofs, internal::require(*vdp, inclusion_field));
  if (!proofs->is(cbor::Type::kArray) || proofs->as_array().size() != 1 ||
      !proofs->as_array()[0].is(cbor::Type::kBytes)) {
    return internal::field_error(inclusion_field,
                                 "must be an array of exactly one bstr, got " + describe(*proofs));
  }
  CUSTOS_ASSIGN_OR_RETURN(RawProof raw,
                          decode_proof(proofs->as_array()[0].as_bytes(), "receipt inclusion proof",
                                       "tree_size", "leaf_index"));
  if (raw.b >= raw.a) {
    return malformed("receipt inclusion proof: leaf_index " + std::to_string(raw.b) +
                     " is not below tree_size " + std::to_string(raw.a));
  }
  return InclusionProof{raw.a, raw.b, std::move(raw.path)};
}

// verify_receipt, returning the root the receipt proves (bundles group
// their elements by it).
Result<Hash256> verified_root(const Receipt& receipt, ByteView statement_bytes,
                              const crypto::PublicKey& node_key) {
  if (receipt.header.kid != node_key.kid()) {
    return error(ErrorCode::kBadSignature, "receipt signed by kid " + kid_hex(receipt.header.kid) +
                                               ", expected " + kid_hex(node_key.kid()));
  }
  if (receipt.header.alg != node_key.algorithm()) {
    return error(ErrorCode::kBadSignature,
                 std::string("receipt alg is ") + crypto::algorithm_name(receipt.header.alg) +
                     " but the node key is " + crypto::algorithm_name(node_key.algorithm()));
  }
  const InclusionProof& proof = receipt.proof;
  if (receipt.header.tree_size && *receipt.header.tree_size != proof.tree_size) {
    return error(ErrorCode::kBadSignature,
                 "receipt signs tree size " + std::to_string(*receipt.header.tree_size) +
                     " but its proof claims " + std::to_string(proof.tree_size));
  }
  auto root = merkle::root_from_inclusion_proof(merkle::leaf_hash(statement_bytes),
                                                proof.leaf_index, proof.tree_size, proof.path);
  if (!root.ok()) {
    return error(ErrorCode::kMalformed, "receipt inclusion proof (leaf_index " +
                                            std::to_string(proof.leaf_index) + ", tree_size " +
                                            std::to_string(proof.tree_size) +
                                            "): " + root.status().message());
  }
  Status s = node_key.verify(sig_structure(receipt.protected_bytes, {}, ByteView(*root)),
                             receipt.signature);
  if (!s.ok()) {
    return error(ErrorCode::kBadSignature,
                 "receipt signature does not verify over the root " + to_hex(ByteView(*root)) +
                     " implied by the statement and inclusion proof (wrong statement, proof or "
                     "node key): " +
                     s.message());
  }
  return *root;
}

}  // namespace

Bytes receipt_protected_bytes(const ReceiptHeader& header) {
  cbor::Map claims;
  claims.emplace_back(cbor::integer(kClaimIss), cbor::text(header.issuer));
  claims.emplace_back(cbor::integer(kClaimIat), cbor::Value::uint(header.issued_at_s));
  cbor::Map map;
  map.emplace_back(cbor::integer(kHeaderAlg), cbor::integer(crypto::cose_algorithm(header.alg)));
  map.emplace_back(cbor::integer(kHeaderKid), cbor::Value::bytes(ByteView(header.kid)));
  map.emplace_back(cbor::integer(kHeaderCwtClaims), cbor::Value::map(std::move(claims)));
  map.emplace_back(cbor::integer(kHeaderVds), cbor::integer(kVdsRfc9162Sha256));
  if (header.tree_size) {
    map.emplace_back(cbor::integer(kHeaderTreeSize), cbor::Value::uint(*header.tree_size));
  }
  return cbor::encode(cbor::Value::map(std::move(map)));
}

Bytes sign_root(const crypto::PrivateKey& key, ByteView protected_bytes, const Hash256& root) {
  return key.sign(sig_structure(protected_bytes, {}, ByteView(root)));
}

Bytes encode_receipt(ByteView protected_bytes, const InclusionProof& proof, ByteView signature) {
  Bytes proof_bytes = encode_proof(proof.tree_size, proof.leaf_index, proof.path);
  cbor::Map vdp;
  vdp.emplace_back(cbor::integer(kVdpInclusion),
                   cbor::Value::array({cbor::Value::bytes(std::move(proof_bytes))}));
  cbor::Map unprotected;
  unprotected.emplace_back(cbor::integer(kHeaderVdp), cbor::Value::map(std::move(vdp)));

  Sign1 sign1;
  sign1.protected_bytes.assign(protected_bytes.begin(), protected_bytes.end());
  sign1.unprotected = cbor::Value::map(std::move(unprotected));
  sign1.payload = std::nullopt;  // detached: the verifier recomputes the root
  sign1.signature.assign(signature.begin(), signature.end());
  return encode_sign1(sign1);
}

Bytes encode_consistency_proof(const ConsistencyProof& proof) {
  return encode_proof(proof.size1, proof.size2, proof.path);
}

Result<ConsistencyProof> decode_consistency_proof(ByteView bytes) {
  CUSTOS_ASSIGN_OR_RETURN(RawProof raw, decode_proof(bytes, "consistency proof", "size1", "size2"));
  if (raw.a == 0 || raw.a > raw.b) {
    return malformed("consistency proof: sizes must satisfy 0 < size1 <= size2, got " +
                     std::to_string(raw.a) + " and " + std::to_string(raw.b));
  }
  return ConsistencyProof{raw.a, raw.b, std::move(raw.path)};
}

Result<Receipt> parse_receipt(ByteView bytes) {
  CUSTOS_ASSIGN_OR_RETURN(Sign1 sign1, parse_sign1(bytes, limits::kReceiptBytesMax));
  Receipt receipt;
  CUSTOS_ASSIGN_OR_RETURN(receipt.header, parse_receipt_header(sign1.protected_map));
  CUSTOS_ASSIGN_OR_RETURN(receipt.proof, parse_vdp(sign1.unprotected));
  if (sign1.payload) {
    return malformed("receipt payload must be nil (detached), got a " +
                     std::to_string(sign1.payload->size()) + "-byte bstr");
  }
  if (sign1.signature.size() != crypto::kSignatureBytes) {
    return malformed("receipt signature must be 64 bytes, got " +
                     std::to_string(sign1.signature.size()));
  }
  receipt.protected_bytes = std::move(sign1.protected_bytes);
  receipt.signature = std::move(sign1.signature);
  return receipt;
}

Status verify_receipt(const Receipt& receipt, ByteView statement_bytes,
                      const crypto::PublicKey& node_key) {
  return verified_root(receipt, statement_bytes, node_key).status();
}

// ---------------------------------------------------------------------------
// Receipt bundles

namespace {

constexpr uint8_t kMajorBytes = 2;
constexpr uint8_t kMajorArray = 4;
constexpr uint8_t kMajorTag = 6;
constexpr uint8_t kTagSign1Head = 0xd2;  // major type 6, tag 18, one byte

std::string n_of(size_t n, std::string_view noun) {
  return std::to_string(n) + " " + std::string(noun) + (n == 1 ? "" : "s");
}

// What an item is, from its first byte alone (the bundle's outer layer is
// read head by head, so there is no decoded value to describe).
std::string item_kind(uint8_t initial_byte) {
  static constexpr const char* kMajorNames[] = {"an unsigned integer",
                                                "a negative integer",
                                                "a bstr",
                                                "a text string",
                                                "an array",
                                                "a map",
                                                "a tag",
                                                "a simple value or float"};
  if (initial_byte == kTagSign1Head) return "tag 18";
  return kMajorNames[initial_byte >> 5];
}

Status in_element(const Status& s, size_t element) {
  return error(s.code(), "receipt bundle element " + std::to_string(element) + ": " + s.message());
}

struct ArrayHead {
  uint64_t count = 0;
  size_t head_bytes = 0;
};

// A definite-length array head in its shortest form (RFC 8949 4.2.1), so a
// bundle has exactly one encoding. bytes[0] is known to be major type 4.
Result<ArrayHead> read_array_head(ByteView bytes) {
  const uint8_t info = bytes[0] & 0x1f;
  if (info < 24) return ArrayHead{info, 1};
  if (info == 31) return malformed("receipt bundle: indefinite-length arrays are not allowed");
  if (info > 27) {
    return malformed("receipt bundle: reserved additional information " + std::to_string(info) +
                     " in the array head");
  }
  const size_t width = size_t{1} << (info - 24);
  if (bytes.size() < 1 + width) return malformed("receipt bundle: array head is truncated");
  uint64_t count = 0;
  for (size_t i = 0; i < width; ++i) count = (count << 8) | bytes[1 + i];
  const uint64_t shortest_min = info == 24 ? 24 : uint64_t{1} << (4 * width);
  if (count < shortest_min) {
    return malformed("receipt bundle: array length " + std::to_string(count) +
                     " is not in its shortest form");
  }
  return ArrayHead{count, 1 + width};
}

// The byte length of the element starting at rest[0]. Only its extent is
// found here; parse_receipt checks its content and size limit next.
Result<size_t> element_size(ByteView rest, size_t element, uint64_t count) {
  if (rest.empty()) {
    return malformed("receipt bundle: the array announces " + n_of(count, "element") +
                     " but the input ends after " + std::to_string(element));
  }
  if (rest[0] != kTagSign1Head) {
    return in_element(
        malformed("must be a tagged (18) COSE_Sign1 receipt, got " + item_kind(rest[0])), element);
  }
  cbor::DecodeOptions extent_only;
  extent_only.require_deterministic = false;
  size_t consumed = 0;
  auto item = cbor::decode_prefix(rest, &consumed, extent_only);
  if (!item.ok()) return in_element(item.status(), element);
  return consumed;
}

Result<std::vector<Receipt>> bundle_of_one(ByteView bytes) {
  CUSTOS_ASSIGN_OR_RETURN(Receipt receipt, parse_receipt(bytes));
  std::vector<Receipt> receipts;
  receipts.push_back(std::move(receipt));
  return receipts;
}

// An element that verified on its own, waiting to be grouped.
struct Candidate {
  size_t element = 0;
  size_t node = 0;
  uint64_t tree_size = 0;
  uint64_t leaf_index = 0;
  Hash256 root{};

  bool same_tree(const Candidate& other) const {
    return tree_size == other.tree_size && root == other.root;
  }
};

std::optional<size_t> node_of(const Hash256& kid, const std::vector<crypto::PublicKey>& keys) {
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].kid() == kid) return i;
  }
  return std::nullopt;
}

size_t distinct_nodes_agreeing(const std::vector<Candidate>& candidates, const Candidate& with,
                               size_t node_count) {
  std::vector<bool> seen(node_count, false);
  size_t distinct = 0;
  for (const Candidate& c : candidates) {
    if (!c.same_tree(with) || seen[c.node]) continue;
    seen[c.node] = true;
    ++distinct;
  }
  return distinct;
}

// The (tree_size, root) the most distinct nodes agree on; a tie goes to the
// tree seen first. Two honest trees can both be signed (one node signs every
// block), so a disagreeing element is not by itself a fault.
const Candidate& agreed_tree(const std::vector<Candidate>& candidates, size_t node_count) {
  assert(!candidates.empty());
  size_t best = 0;
  size_t best_nodes = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const size_t nodes = distinct_nodes_agreeing(candidates, candidates[i], node_count);
    if (nodes > best_nodes) {
      best = i;
      best_nodes = nodes;
    }
  }
  return candidates[best];
}

std::string tree_text(uint64_t tree_size, const Hash256& root) {
  return "tree size " + std::to_string(tree_size) + " (root " + to_hex(ByteView(root.data(), 8)) +
         "...)";
}

// Counts the candidates that agree with the chosen tree, once per node.
void count_signers(const std::vector<Candidate>& candidates, ReceiptQuorum& out) {
  const Candidate& agreed = agreed_tree(candidates, out.node_count);
  out.tree_size = agreed.tree_size;
  out.leaf_index = agreed.leaf_index;
  out.root = agreed.root;
  std::vector<std::optional<size_t>> counted_from(out.node_count);
  for (const Candidate& c : candidates) {
    if (!c.same_tree(agreed)) {
      out.rejected.push_back({c.element, c.node,
                              "different tree size/root: signs " + tree_text(c.tree_size, c.root) +
                                  ", the counted signatures " +
                                  tree_text(agreed.tree_size, agreed.root)});
    } else if (counted_from[c.node]) {
      out.rejected.push_back({c.element, c.node,
                              "duplicate node: already counted from element " +
                                  std::to_string(*counted_from[c.node])});
    } else {
      counted_from[c.node] = c.element;
      out.signers.push_back({c.node, c.element});
    }
  }
}

}  // namespace

Bytes encode_receipt_bundle(const std::vector<Bytes>& receipts) {
  assert(!receipts.empty() && receipts.size() <= kReceiptBundleEntriesMax);
  // Reuse the codec for the head: encode an array of N nulls, keep the head.
  Bytes out = cbor::encode(cbor::Value::array(cbor::Array(receipts.size())));
  out.resize(out.size() - receipts.size());
  for (const Bytes& r : receipts) out.insert(out.end(), r.begin(), r.end());
  return out;
}

Result<std::vector<Receipt>> parse_receipt_bundle(ByteView bytes) {
  if (bytes.size() > kReceiptBundleBytesMax) {
    return error(ErrorCode::kTooLarge, "receipt bundle is " + std::to_string(bytes.size()) +
                                           " bytes; the limit is " +
                                           std::to_string(kReceiptBundleBytesMax));
  }
  if (bytes.empty()) return malformed("receipt bundle is empty (0 bytes)");
  const uint8_t major = bytes[0] >> 5;
  if (major == kMajorTag) return bundle_of_one(bytes);  // one tagged COSE_Sign1
  if (major != kMajorArray) {
    return malformed(
        "receipt bundle must be a CBOR array of COSE_Sign1 receipts or one "
        "COSE_Sign1, got " +
        item_kind(bytes[0]));
  }
  CUSTOS_ASSIGN_OR_RETURN(ArrayHead head, read_array_head(bytes));
  // An untagged COSE_Sign1 is an array of 4 starting with the protected bstr;
  // bundle elements are tagged, so the two cannot be confused.
  if (head.count == 4 && bytes.size() > head.head_bytes &&
      (bytes[head.head_bytes] >> 5) == kMajorBytes) {
    return bundle_of_one(bytes);
  }
  if (head.count == 0) return malformed("receipt bundle has no receipts (empty array)");
  if (head.count > kReceiptBundleEntriesMax) {
    return error(ErrorCode::kTooLarge, "receipt bundle has " + std::to_string(head.count) +
                                           " elements; the limit is " +
                                           std::to_string(kReceiptBundleEntriesMax));
  }
  std::vector<Receipt> receipts;
  receipts.reserve(head.count);
  size_t offset = head.head_bytes;
  for (size_t i = 0; i < head.count; ++i) {
    CUSTOS_ASSIGN_OR_RETURN(size_t size, element_size(bytes.subspan(offset), i, head.count));
    auto receipt = parse_receipt(bytes.subspan(offset, size));
    if (!receipt.ok()) return in_element(receipt.status(), i);
    receipts.push_back(std::move(receipt).value());
    offset += size;
  }
  if (offset != bytes.size()) {
    return malformed("receipt bundle: " + n_of(bytes.size() - offset, "trailing byte") +
                     " after its " + n_of(head.count, "element"));
  }
  return receipts;
}

Result<ReceiptQuorum> check_receipt_bundle(const std::vector<Receipt>& receipts,
                                           ByteView statement_bytes,
                                           const std::vector<crypto::PublicKey>& node_keys,
                                           size_t quorum) {
  if (quorum == 0 || quorum > node_keys.size()) {
    return error(ErrorCode::kInvalidArgument, "quorum " + std::to_string(quorum) +
                                                  " must be between 1 and the " +
                                                  n_of(node_keys.size(), "node key"));
  }
  if (receipts.empty()) return malformed("receipt bundle has no receipts");
  if (receipts.size() > kReceiptBundleEntriesMax) {
    return error(ErrorCode::kTooLarge, "receipt bundle has " + std::to_string(receipts.size()) +
                                           " elements; the limit is " +
                                           std::to_string(kReceiptBundleEntriesMax));
  }
  ReceiptQuorum out;
  out.quorum = quorum;
  out.node_count = node_keys.size();
  std::vector<Candidate> candidates;
  for (size_t i = 0; i < receipts.size(); ++i) {
    const Receipt& r = receipts[i];
    std::optional<size_t> node = node_of(r.header.kid, node_keys);
    if (!node) {
      out.rejected.push_back(
          {i, std::nullopt, "unknown kid " + kid_hex(r.header.kid) + " (not a node key)"});
      continue;
    }
    auto root = verified_root(r, statement_bytes, node_keys[*node]);
    if (!root.ok()) {
      const bool proof = root.status().code() == ErrorCode::kMalformed;
      out.rejected.push_back(
          {i, node, (proof ? "proof mismatch: " : "bad signature: ") + root.status().message()});
      continue;
    }
    candidates.push_back({i, *node, r.proof.tree_size, r.proof.leaf_index, *root});
  }
  if (!candidates.empty()) count_signers(candidates, out);
  std::stable_sort(out.rejected.begin(), out.rejected.end(),
                   [](const auto& a, const auto& b) { return a.element < b.element; });
  return out;
}

Status receipt_quorum_status(const ReceiptQuorum& check,
                             const std::vector<std::string>& node_names) {
  if (check.has_quorum()) return Status();
  auto name = [&](size_t node) {
    return node < node_names.size() ? node_names[node] : "node #" + std::to_string(node);
  };
  std::string message = "receipt bundle has " + std::to_string(check.signers.size()) + " of " +
                        std::to_string(check.quorum) +
                        " required valid signatures from distinct nodes (consortium of " +
                        n_of(check.node_count, "node") + ")";
  if (!check.signers.empty()) {
    message += "; counted for tree size " + std::to_string(check.tree_size) + ":";
    for (const auto& s : check.signers) message += " " + name(s.node);
  }
  for (const auto& r : check.rejected) {
    message += "; element " + std::to_string(r.element);
    if (r.node) message += " (" + name(*r.node) + ")";
    message += ": " + r.reason;
  }
  return error(ErrorCode::kBadSignature, std::move(message));
}

Status verify_receipt_bundle(const std::vector<Receipt>& receipts, ByteView statement_bytes,
                             const std::vector<crypto::PublicKey>& node_keys, size_t quorum) {
  CUSTOS_ASSIGN_OR_RETURN(ReceiptQuorum check,
                          check_receipt_bundle(receipts, statement_bytes, node_keys, quorum));
  return receipt_quorum_status(check);
}

}  // namespace custos::cose
