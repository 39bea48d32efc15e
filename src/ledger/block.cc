#include "ledger/block.h"

#include "codec/cbor.h"
#include "cose/sign1.h"
#include "crypto/hash.h"

namespace custos::ledger {

namespace {
using cbor::Value;

Result<uint64_t> get_uint(const Value& map, const char* key) {
  const Value* v = map.find(key);
  if (!v || !v->is(cbor::Type::kUnsigned)) {
    return error(ErrorCode::kMalformed,
                 std::string("block header: '") + key + "' must be an unsigned integer");
  }
  return v->as_uint();
}

Result<Hash256> get_hash(const Value& map, const char* key) {
  const Value* v = map.find(key);
  if (!v || !v->is(cbor::Type::kBytes) || v->as_bytes().size() != 32) {
    return error(ErrorCode::kMalformed, std::string("block: '") + key + "' must be a 32-byte bstr");
  }
  Hash256 h;
  std::copy(v->as_bytes().begin(), v->as_bytes().end(), h.begin());
  return h;
}

Result<Bytes> get_bytes(const Value& map, const char* key) {
  const Value* v = map.find(key);
  if (!v || !v->is(cbor::Type::kBytes)) {
    return error(ErrorCode::kMalformed, std::string("block record: '") + key + "' must be a bstr");
  }
  return v->as_bytes();
}

Value hash_value(const Hash256& h) {
  return Value::bytes(ByteView(h));
}
}  // namespace

Bytes BlockHeader::encode() const {
  cbor::Map m;
  m.emplace_back(cbor::text("height"), Value::uint(height));
  m.emplace_back(cbor::text("prev"), hash_value(prev_hash));
  m.emplace_back(cbor::text("log_size"), Value::uint(log_size));
  m.emplace_back(cbor::text("root"), hash_value(root));
  m.emplace_back(cbor::text("time_ms"), Value::uint(time_ms));
  m.emplace_back(cbor::text("proposer"), hash_value(proposer));
  m.emplace_back(cbor::text("entries"), Value::uint(entry_count));
  if (genesis_hash) m.emplace_back(cbor::text("genesis"), hash_value(*genesis_hash));
  return cbor::encode(Value::map(std::move(m)));
}

Result<BlockHeader> BlockHeader::decode(ByteView bytes) {
  CUSTOS_ASSIGN_OR_RETURN(Value v, cbor::decode(bytes));
  if (!v.is(cbor::Type::kMap)) return error(ErrorCode::kMalformed, "block header: not a map");
  BlockHeader h;
  CUSTOS_ASSIGN_OR_RETURN(h.height, get_uint(v, "height"));
  CUSTOS_ASSIGN_OR_RETURN(h.prev_hash, get_hash(v, "prev"));
  CUSTOS_ASSIGN_OR_RETURN(h.log_size, get_uint(v, "log_size"));
  CUSTOS_ASSIGN_OR_RETURN(h.root, get_hash(v, "root"));
  CUSTOS_ASSIGN_OR_RETURN(h.time_ms, get_uint(v, "time_ms"));
  CUSTOS_ASSIGN_OR_RETURN(h.proposer, get_hash(v, "proposer"));
  CUSTOS_ASSIGN_OR_RETURN(h.entry_count, get_uint(v, "entries"));
  if (v.find("genesis")) {
    CUSTOS_ASSIGN_OR_RETURN(Hash256 g, get_hash(v, "genesis"));
    h.genesis_hash = g;
  }
  return h;
}

Hash256 BlockRecord::header_hash() const {
  return crypto::sha256(header_bytes);
}

Bytes BlockRecord::encode() const {
  cbor::Map m;
  m.emplace_back(cbor::text("header"), Value::bytes(ByteView(header_bytes)));
  m.emplace_back(cbor::text("checkpoint_sig"), Value::bytes(ByteView(checkpoint_signature)));
  m.emplace_back(cbor::text("receipt_protected"), Value::bytes(ByteView(receipt_protected)));
  m.emplace_back(cbor::text("root_sig"), Value::bytes(ByteView(root_signature)));
  m.emplace_back(cbor::text("signer"), hash_value(signer));
  return cbor::encode(Value::map(std::move(m)));
}

Result<BlockRecord> BlockRecord::decode(ByteView bytes) {
  CUSTOS_ASSIGN_OR_RETURN(Value v, cbor::decode(bytes));
  if (!v.is(cbor::Type::kMap)) return error(ErrorCode::kCorruption, "block record: not a map");
  BlockRecord r;
  CUSTOS_ASSIGN_OR_RETURN(r.header_bytes, get_bytes(v, "header"));
  CUSTOS_ASSIGN_OR_RETURN(r.checkpoint_signature, get_bytes(v, "checkpoint_sig"));
  CUSTOS_ASSIGN_OR_RETURN(r.receipt_protected, get_bytes(v, "receipt_protected"));
  CUSTOS_ASSIGN_OR_RETURN(r.root_signature, get_bytes(v, "root_sig"));
  CUSTOS_ASSIGN_OR_RETURN(r.signer, get_hash(v, "signer"));
  CUSTOS_ASSIGN_OR_RETURN(r.header, BlockHeader::decode(r.header_bytes));
  return r;
}

Bytes checkpoint_protected_bytes(crypto::Algorithm alg, const Hash256& node_kid) {
  cbor::Map m;
  m.emplace_back(Value::integer(cose::kHeaderAlg), Value::integer(crypto::cose_algorithm(alg)));
  m.emplace_back(Value::integer(cose::kHeaderContentType), cbor::text(kCheckpointContentType));
  m.emplace_back(Value::integer(cose::kHeaderKid), hash_value(node_kid));
  return cbor::encode(Value::map(std::move(m)));
}

Bytes checkpoint_bytes(const BlockRecord& block, crypto::Algorithm alg) {
  cose::Sign1 s;
  s.protected_bytes = checkpoint_protected_bytes(alg, block.signer);
  s.unprotected = Value::map({});
  s.payload = block.header_bytes;
  s.signature = block.checkpoint_signature;
  return cose::encode_sign1(s);
}

Result<BlockHeader> verify_checkpoint(ByteView checkpoint, const crypto::PublicKey& node_key) {
  CUSTOS_ASSIGN_OR_RETURN(cose::Sign1 s, cose::parse_sign1(checkpoint));
  if (!s.payload) return error(ErrorCode::kMalformed, "checkpoint: payload is detached");
  Bytes expected = checkpoint_protected_bytes(node_key.algorithm(), node_key.kid());
  if (s.protected_bytes != expected) {
    return error(ErrorCode::kBadSignature,
                 "checkpoint: protected header does not name this node key");
  }
  Status st = node_key.verify(cose::sig_structure(s.protected_bytes, {}, *s.payload), s.signature);
  if (!st.ok()) return error(ErrorCode::kBadSignature, "checkpoint: signature does not verify");
  return BlockHeader::decode(*s.payload);
}

BlockRecord seal_block(const BlockHeader& header, const crypto::PrivateKey& node_key,
                       const std::string& issuer) {
  BlockRecord r;
  r.header = header;
  r.header_bytes = header.encode();
  r.signer = node_key.public_key().kid();
  Bytes cp = checkpoint_protected_bytes(node_key.algorithm(), node_key.public_key().kid());
  r.checkpoint_signature = node_key.sign(cose::sig_structure(cp, {}, r.header_bytes));
  cose::ReceiptHeader rh;
  rh.alg = node_key.algorithm();
  rh.kid = node_key.public_key().kid();
  rh.issuer = issuer;
  rh.issued_at_s = header.time_ms / 1000;
  rh.tree_size = header.log_size;
  r.receipt_protected = cose::receipt_protected_bytes(rh);
  r.root_signature = cose::sign_root(node_key, r.receipt_protected, header.root);
  return r;
}

Status verify_block_signatures(const BlockRecord& block, const crypto::PublicKey& node_key) {
  if (block.signer != node_key.kid()) {
    return error(ErrorCode::kBadSignature,
                 "block " + std::to_string(block.header.height) + ": signed by another node key");
  }
  Bytes cp = checkpoint_protected_bytes(node_key.algorithm(), node_key.kid());
  if (!node_key.verify(cose::sig_structure(cp, {}, block.header_bytes), block.checkpoint_signature)
           .ok()) {
    return error(ErrorCode::kBadSignature, "block " + std::to_string(block.header.height) +
                                               ": checkpoint signature does not verify");
  }
  if (!node_key
           .verify(cose::sig_structure(block.receipt_protected, {}, block.header.root),
                   block.root_signature)
           .ok()) {
    return error(ErrorCode::kBadSignature, "block " + std::to_string(block.header.height) +
                                               ": root signature does not verify");
  }
  return Status();
}

}  // namespace custos::ledger
