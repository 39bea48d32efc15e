#include "cose/receipt.h"

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
  return Status();
}

}  // namespace custos::cose
