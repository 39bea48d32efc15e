#include "consensus/types.h"

#include <algorithm>
#include <string>

#include "codec/cbor.h"
#include "consensus/safety_rules.h"
#include "crypto/hash.h"

namespace custos::consensus {

namespace {
using cbor::Type;
using cbor::Value;

// Message kinds: the first element of every encoded message.
enum Kind : uint64_t {
  kKindProposal = 0,
  kKindVote = 1,
  kKindTimeout = 2,
  kKindBlockRequest = 3,
  kKindBlockResponse = 4,
};

constexpr const char* kBlockDomain = "custos-block-v1";
constexpr const char* kVoteDomain = "custos-vote-v1";
constexpr const char* kTimeoutDomain = "custos-timeout-v1";
constexpr const char* kProposalDomain = "custos-proposal-v1";
constexpr const char* kSafetyDomain = "custos-safety-v1";

// CBOR data items in the largest message: a full response of blocks with
// full payloads and full certificates, plus slack for the framing.
constexpr size_t kItemsPerCertMax = 8 + kValidatorsMax * 8;
constexpr size_t kItemsPerBlockMax = 16 + kBlockItemsMax + 2 * kItemsPerCertMax;
constexpr size_t kMessageItemsMax = 8 + kBlocksPerResponseMax * kItemsPerBlockMax;

Status malformed(const std::string& what) {
  return error(ErrorCode::kMalformed, "consensus: " + what);
}

Value hash_value(const Hash256& h) {
  return Value::bytes(ByteView(h));
}

// --- Encoding ---

Value qc_value(const QuorumCert& qc) {
  cbor::Array sigs;
  sigs.reserve(qc.signatures.size());
  for (const auto& [index, sig] : qc.signatures) {
    sigs.push_back(Value::array({Value::uint(index), Value::bytes(sig)}));
  }
  return Value::array({hash_value(qc.block_id), Value::uint(qc.round), Value::array(sigs)});
}

Value tc_value(const TimeoutCert& tc) {
  cbor::Array sigs;
  sigs.reserve(tc.signatures.size());
  for (const auto& s : tc.signatures) {
    sigs.push_back(Value::array(
        {Value::uint(s.node), Value::uint(s.high_qc_round), Value::bytes(s.signature)}));
  }
  return Value::array({Value::uint(tc.round), Value::array(sigs), qc_value(tc.high_qc)});
}

Value optional_tc_value(const std::optional<TimeoutCert>& tc) {
  return tc ? tc_value(*tc) : Value::null();
}

Value block_value(const Block& b) {
  cbor::Array items;
  items.reserve(b.payload.size());
  for (const Bytes& item : b.payload) items.push_back(Value::bytes(item));
  return Value::array({Value::uint(b.round), hash_value(b.parent_id), qc_value(b.qc),
                       optional_tc_value(b.tc), Value::uint(b.author), Value::uint(b.time_ms),
                       Value::array(std::move(items)), Value::bytes(b.signature)});
}

// --- Decoding helpers: each names the field it refuses ---

Result<const cbor::Array*> get_array(const Value& v, size_t length, const char* what) {
  if (!v.is(Type::kArray)) return malformed(std::string(what) + " must be an array");
  if (v.as_array().size() != length) {
    return malformed(std::string(what) + " must have " + std::to_string(length) +
                     " elements, has " + std::to_string(v.as_array().size()));
  }
  return &v.as_array();
}

Result<uint64_t> get_uint(const Value& v, const char* what) {
  if (!v.is(Type::kUnsigned)) return malformed(std::string(what) + " must be an unsigned integer");
  return v.as_uint();
}

Result<NodeIndex> get_index(const Value& v, const char* what) {
  CUSTOS_ASSIGN_OR_RETURN(uint64_t x, get_uint(v, what));
  if (x >= kValidatorsMax) {
    return malformed(std::string(what) + " " + std::to_string(x) + " is not below kValidatorsMax");
  }
  return static_cast<NodeIndex>(x);
}

Result<Hash256> get_hash(const Value& v, const char* what) {
  if (!v.is(Type::kBytes) || v.as_bytes().size() != 32) {
    return malformed(std::string(what) + " must be a 32-byte bstr");
  }
  Hash256 h;
  std::copy(v.as_bytes().begin(), v.as_bytes().end(), h.begin());
  return h;
}

Result<Bytes> get_signature(const Value& v, const char* what) {
  if (!v.is(Type::kBytes) || v.as_bytes().size() != crypto::kSignatureBytes) {
    return malformed(std::string(what) + " must be a 64-byte bstr");
  }
  return v.as_bytes();
}

// The genesis QC has no signatures and block signatures may be absent only on
// the genesis block, so empty bstrs are allowed where noted.
Result<Bytes> get_block_signature(const Value& v) {
  if (v.is(Type::kBytes) && v.as_bytes().empty()) return Bytes{};
  return get_signature(v, "block signature");
}

Result<const cbor::Array*> get_list(const Value& v, size_t max, const char* what) {
  if (!v.is(Type::kArray)) return malformed(std::string(what) + " must be an array");
  if (v.as_array().size() > max) {
    return error(ErrorCode::kTooLarge, "consensus: " + std::string(what) + " has " +
                                           std::to_string(v.as_array().size()) +
                                           " elements, limit " + std::to_string(max));
  }
  return &v.as_array();
}

Result<QuorumCert> qc_from(const Value& v) {
  CUSTOS_ASSIGN_OR_RETURN(const cbor::Array* a, get_array(v, 3, "qc"));
  QuorumCert qc;
  CUSTOS_ASSIGN_OR_RETURN(qc.block_id, get_hash((*a)[0], "qc block_id"));
  CUSTOS_ASSIGN_OR_RETURN(qc.round, get_uint((*a)[1], "qc round"));
  CUSTOS_ASSIGN_OR_RETURN(const cbor::Array* sigs,
                          get_list((*a)[2], kValidatorsMax, "qc signatures"));
  for (const Value& s : *sigs) {
    CUSTOS_ASSIGN_OR_RETURN(const cbor::Array* pair, get_array(s, 2, "qc signature"));
    CUSTOS_ASSIGN_OR_RETURN(NodeIndex index, get_index((*pair)[0], "qc signer"));
    CUSTOS_ASSIGN_OR_RETURN(Bytes sig, get_signature((*pair)[1], "qc signature"));
    qc.signatures.emplace_back(index, std::move(sig));
  }
  return qc;
}

Result<TimeoutCert> tc_from(const Value& v) {
  CUSTOS_ASSIGN_OR_RETURN(const cbor::Array* a, get_array(v, 3, "tc"));
  TimeoutCert tc;
  CUSTOS_ASSIGN_OR_RETURN(tc.round, get_uint((*a)[0], "tc round"));
  CUSTOS_ASSIGN_OR_RETURN(const cbor::Array* sigs,
                          get_list((*a)[1], kValidatorsMax, "tc signatures"));
  for (const Value& s : *sigs) {
    CUSTOS_ASSIGN_OR_RETURN(const cbor::Array* t, get_array(s, 3, "tc signature"));
    TimeoutSignature ts;
    CUSTOS_ASSIGN_OR_RETURN(ts.node, get_index((*t)[0], "tc signer"));
    CUSTOS_ASSIGN_OR_RETURN(ts.high_qc_round, get_uint((*t)[1], "tc high_qc_round"));
    CUSTOS_ASSIGN_OR_RETURN(ts.signature, get_signature((*t)[2], "tc signature"));
    tc.signatures.push_back(std::move(ts));
  }
  CUSTOS_ASSIGN_OR_RETURN(tc.high_qc, qc_from((*a)[2]));
  return tc;
}

Result<std::optional<TimeoutCert>> optional_tc_from(const Value& v) {
  if (v.is(Type::kNull)) return std::optional<TimeoutCert>();
  CUSTOS_ASSIGN_OR_RETURN(TimeoutCert tc, tc_from(v));
  return std::optional<TimeoutCert>(std::move(tc));
}

Result<Block> block_from(const Value& v) {
  CUSTOS_ASSIGN_OR_RETURN(const cbor::Array* a, get_array(v, 8, "block"));
  Block b;
  CUSTOS_ASSIGN_OR_RETURN(b.round, get_uint((*a)[0], "block round"));
  CUSTOS_ASSIGN_OR_RETURN(b.parent_id, get_hash((*a)[1], "block parent_id"));
  CUSTOS_ASSIGN_OR_RETURN(b.qc, qc_from((*a)[2]));
  CUSTOS_ASSIGN_OR_RETURN(b.tc, optional_tc_from((*a)[3]));
  CUSTOS_ASSIGN_OR_RETURN(b.author, get_index((*a)[4], "block author"));
  CUSTOS_ASSIGN_OR_RETURN(b.time_ms, get_uint((*a)[5], "block time_ms"));
  CUSTOS_ASSIGN_OR_RETURN(const cbor::Array* items, get_list((*a)[6], kBlockItemsMax, "payload"));
  size_t bytes = 0;
  b.payload.reserve(items->size());
  for (const Value& item : *items) {
    if (!item.is(Type::kBytes) || item.as_bytes().empty()) {
      return malformed("payload item must be a non-empty bstr");
    }
    bytes += item.as_bytes().size();
    if (bytes > kBlockBytesMax) {
      return error(ErrorCode::kTooLarge, "consensus: block payload exceeds kBlockBytesMax");
    }
    b.payload.push_back(item.as_bytes());
  }
  CUSTOS_ASSIGN_OR_RETURN(b.signature, get_block_signature((*a)[7]));
  return b;
}

Result<Value> decode_value(ByteView bytes) {
  if (bytes.size() > kMessageBytesMax) {
    return error(ErrorCode::kTooLarge, "consensus: message of " + std::to_string(bytes.size()) +
                                           " bytes exceeds kMessageBytesMax");
  }
  cbor::DecodeOptions options;
  options.max_items = kMessageItemsMax;
  options.max_depth = 8;
  return cbor::decode(bytes, options);
}

Result<Message> message_from(const Value& v) {
  if (!v.is(Type::kArray) || v.as_array().empty()) {
    return malformed("message must be a non-empty array");
  }
  const cbor::Array& a = v.as_array();
  CUSTOS_ASSIGN_OR_RETURN(uint64_t kind, get_uint(a[0], "message kind"));
  switch (kind) {
    case kKindProposal: {
      CUSTOS_RETURN_IF_ERROR(get_array(v, 2, "proposal").status());
      CUSTOS_ASSIGN_OR_RETURN(Block b, block_from(a[1]));
      return Message(Proposal{std::move(b)});
    }
    case kKindVote: {
      CUSTOS_RETURN_IF_ERROR(get_array(v, 5, "vote").status());
      Vote vote;
      CUSTOS_ASSIGN_OR_RETURN(vote.block_id, get_hash(a[1], "vote block_id"));
      CUSTOS_ASSIGN_OR_RETURN(vote.round, get_uint(a[2], "vote round"));
      CUSTOS_ASSIGN_OR_RETURN(vote.voter, get_index(a[3], "vote voter"));
      CUSTOS_ASSIGN_OR_RETURN(vote.signature, get_signature(a[4], "vote signature"));
      return Message(std::move(vote));
    }
    case kKindTimeout: {
      CUSTOS_RETURN_IF_ERROR(get_array(v, 6, "timeout").status());
      Timeout t;
      CUSTOS_ASSIGN_OR_RETURN(t.round, get_uint(a[1], "timeout round"));
      CUSTOS_ASSIGN_OR_RETURN(t.high_qc, qc_from(a[2]));
      CUSTOS_ASSIGN_OR_RETURN(t.last_tc, optional_tc_from(a[3]));
      CUSTOS_ASSIGN_OR_RETURN(t.voter, get_index(a[4], "timeout voter"));
      CUSTOS_ASSIGN_OR_RETURN(t.signature, get_signature(a[5], "timeout signature"));
      return Message(std::move(t));
    }
    case kKindBlockRequest: {
      CUSTOS_RETURN_IF_ERROR(get_array(v, 3, "block request").status());
      BlockRequest r;
      CUSTOS_ASSIGN_OR_RETURN(r.block_id, get_hash(a[1], "request block_id"));
      CUSTOS_ASSIGN_OR_RETURN(uint64_t count, get_uint(a[2], "request count"));
      if (count == 0 || count > kBlocksPerResponseMax) {
        return malformed("request count must be 1..kBlocksPerResponseMax");
      }
      r.count = static_cast<uint32_t>(count);
      return Message(r);
    }
    case kKindBlockResponse: {
      CUSTOS_RETURN_IF_ERROR(get_array(v, 2, "block response").status());
      CUSTOS_ASSIGN_OR_RETURN(const cbor::Array* blocks,
                              get_list(a[1], kBlocksPerResponseMax, "response blocks"));
      BlockResponse r;
      r.blocks.reserve(blocks->size());
      for (const Value& bv : *blocks) {
        CUSTOS_ASSIGN_OR_RETURN(Block b, block_from(bv));
        r.blocks.push_back(std::move(b));
      }
      return Message(std::move(r));
    }
    default:
      return malformed("unknown message kind " + std::to_string(kind));
  }
}

Bytes domain_bytes(const char* domain) {
  return to_bytes(domain);
}
}  // namespace

uint64_t TimeoutCert::max_high_qc_round() const {
  uint64_t m = 0;
  for (const auto& s : signatures) m = std::max(m, s.high_qc_round);
  return m;
}

Hash256 Block::id() const {
  crypto::Sha256 items;
  for (const Bytes& item : payload) {
    Hash256 item_id = crypto::sha256(item);
    items.update(item_id);
  }
  Hash256 payload_digest = items.finish();
  Value v = Value::array({cbor::text(kBlockDomain), Value::uint(round), hash_value(parent_id),
                          qc_value(qc), optional_tc_value(tc), Value::uint(author),
                          Value::uint(time_ms), hash_value(payload_digest)});
  return crypto::sha256(cbor::encode(v));
}

size_t Block::payload_bytes() const {
  size_t n = 0;
  for (const Bytes& item : payload) n += item.size();
  return n;
}

Block genesis_block(const Hash256& ledger_genesis_hash) {
  Block b;
  b.parent_id = ledger_genesis_hash;
  return b;
}

QuorumCert genesis_qc(const Hash256& genesis_id) {
  QuorumCert qc;
  qc.block_id = genesis_id;
  return qc;
}

Bytes encode_block(const Block& block) {
  return cbor::encode(block_value(block));
}

Result<Block> decode_block(ByteView bytes) {
  CUSTOS_ASSIGN_OR_RETURN(Value v, decode_value(bytes));
  return block_from(v);
}

Bytes encode_message(const Message& message) {
  struct Visitor {
    Value operator()(const Proposal& p) const {
      return Value::array({Value::uint(kKindProposal), block_value(p.block)});
    }
    Value operator()(const Vote& v) const {
      return Value::array({Value::uint(kKindVote), hash_value(v.block_id), Value::uint(v.round),
                           Value::uint(v.voter), Value::bytes(v.signature)});
    }
    Value operator()(const Timeout& t) const {
      return Value::array({Value::uint(kKindTimeout), Value::uint(t.round), qc_value(t.high_qc),
                           optional_tc_value(t.last_tc), Value::uint(t.voter),
                           Value::bytes(t.signature)});
    }
    Value operator()(const BlockRequest& r) const {
      return Value::array(
          {Value::uint(kKindBlockRequest), hash_value(r.block_id), Value::uint(r.count)});
    }
    Value operator()(const BlockResponse& r) const {
      cbor::Array blocks;
      for (const Block& b : r.blocks) blocks.push_back(block_value(b));
      return Value::array({Value::uint(kKindBlockResponse), Value::array(std::move(blocks))});
    }
  };
  return cbor::encode(std::visit(Visitor{}, message));
}

Result<Message> decode_message(ByteView bytes) {
  CUSTOS_ASSIGN_OR_RETURN(Value v, decode_value(bytes));
  return message_from(v);
}

const char* message_name(const Message& message) {
  static constexpr const char* kNames[] = {"proposal", "vote", "timeout", "block-request",
                                           "block-response"};
  return kNames[message.index()];
}

Bytes vote_signing_bytes(const Hash256& block_id, uint64_t round) {
  Bytes out = domain_bytes(kVoteDomain);
  out.insert(out.end(), block_id.begin(), block_id.end());
  append_be64(out, round);
  return out;
}

Bytes timeout_signing_bytes(uint64_t round, uint64_t high_qc_round) {
  Bytes out = domain_bytes(kTimeoutDomain);
  append_be64(out, round);
  append_be64(out, high_qc_round);
  return out;
}

Bytes block_signing_bytes(const Hash256& block_id) {
  Bytes out = domain_bytes(kProposalDomain);
  out.insert(out.end(), block_id.begin(), block_id.end());
  return out;
}

void sign_block(Block& block, const crypto::PrivateKey& key) {
  block.signature = key.sign(block_signing_bytes(block.id()));
}

Vote make_vote(const Hash256& block_id, uint64_t round, NodeIndex voter,
               const crypto::PrivateKey& key) {
  return Vote{block_id, round, voter, key.sign(vote_signing_bytes(block_id, round))};
}

Timeout make_timeout(uint64_t round, QuorumCert high_qc, std::optional<TimeoutCert> last_tc,
                     NodeIndex voter, const crypto::PrivateKey& key) {
  Timeout t;
  t.round = round;
  t.signature = key.sign(timeout_signing_bytes(round, high_qc.round));
  t.high_qc = std::move(high_qc);
  t.last_tc = std::move(last_tc);
  t.voter = voter;
  return t;
}

// SafetyState lives in safety_rules.h but shares this file's CBOR helpers.
Bytes SafetyState::encode() const {
  return cbor::encode(Value::array({cbor::text(kSafetyDomain), Value::uint(last_voted_round),
                                    Value::uint(highest_timeout_round), qc_value(high_qc),
                                    optional_tc_value(high_tc)}));
}

Result<SafetyState> SafetyState::decode(ByteView bytes) {
  CUSTOS_ASSIGN_OR_RETURN(Value v, decode_value(bytes));
  CUSTOS_ASSIGN_OR_RETURN(const cbor::Array* a, get_array(v, 5, "safety state"));
  if (!(*a)[0].is(Type::kText) || (*a)[0].as_text() != kSafetyDomain) {
    return malformed("safety state must start with \"custos-safety-v1\"");
  }
  SafetyState s;
  CUSTOS_ASSIGN_OR_RETURN(s.last_voted_round, get_uint((*a)[1], "last_voted_round"));
  CUSTOS_ASSIGN_OR_RETURN(s.highest_timeout_round, get_uint((*a)[2], "highest_timeout_round"));
  CUSTOS_ASSIGN_OR_RETURN(s.high_qc, qc_from((*a)[3]));
  CUSTOS_ASSIGN_OR_RETURN(s.high_tc, optional_tc_from((*a)[4]));
  return s;
}

}  // namespace custos::consensus
