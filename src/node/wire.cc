#include "node/wire.h"

#include "codec/cbor.h"

namespace custos::node {

namespace {
using cbor::Value;

enum Kind : uint64_t { kConsensus = 1, kForward = 2, kReceiptSignature = 3 };

Status malformed(const std::string& what) {
  return error(ErrorCode::kMalformed, "peer frame: " + what);
}

struct Encoder {
  Bytes operator()(const ConsensusFrame& f) const {
    cbor::Array a{Value::uint(kConsensus), Value::bytes(consensus::encode_message(f.message))};
    return cbor::encode(Value::array(std::move(a)));
  }
  Bytes operator()(const ForwardFrame& f) const {
    cbor::Array items;
    items.reserve(f.statements.size());
    for (const Bytes& s : f.statements) items.push_back(Value::bytes(ByteView(s)));
    cbor::Array a{Value::uint(kForward), Value::array(std::move(items))};
    return cbor::encode(Value::array(std::move(a)));
  }
  Bytes operator()(const ReceiptSignatureFrame& f) const {
    cbor::Array a{Value::uint(kReceiptSignature),
                  Value::uint(f.height),
                  Value::uint(f.signature.node),
                  Value::bytes(ByteView(f.signature.protected_bytes)),
                  Value::bytes(ByteView(f.signature.signature)),
                  Value::boolean(f.want_reply)};
    return cbor::encode(Value::array(std::move(a)));
  }
};

Result<Frame> decode_forward(const cbor::Array& a) {
  if (a.size() != 2 || !a[1].is(cbor::Type::kArray)) return malformed("forward shape");
  const cbor::Array& items = a[1].as_array();
  if (items.size() > kForwardStatementsMax) {
    return error(ErrorCode::kTooLarge,
                 "peer frame: more than " + std::to_string(kForwardStatementsMax) + " statements");
  }
  ForwardFrame f;
  f.statements.reserve(items.size());
  for (const Value& item : items) {
    if (!item.is(cbor::Type::kBytes)) return malformed("forwarded statement is not a bstr");
    f.statements.push_back(item.as_bytes());
  }
  return Frame(std::move(f));
}

Result<Frame> decode_receipt_signature(const cbor::Array& a) {
  if (a.size() != 6 || !a[1].is(cbor::Type::kUnsigned) || !a[2].is(cbor::Type::kUnsigned) ||
      !a[3].is(cbor::Type::kBytes) || !a[4].is(cbor::Type::kBytes) || !a[5].is(cbor::Type::kBool)) {
    return malformed("receipt signature shape");
  }
  if (a[2].as_uint() > consensus::kValidatorsMax) return malformed("node index out of range");
  ReceiptSignatureFrame f;
  f.height = a[1].as_uint();
  f.signature.node = static_cast<uint32_t>(a[2].as_uint());
  f.signature.protected_bytes = a[3].as_bytes();
  f.signature.signature = a[4].as_bytes();
  f.want_reply = a[5].as_bool();
  return Frame(std::move(f));
}
}  // namespace

Bytes encode_frame(const Frame& frame) {
  return std::visit(Encoder{}, frame);
}

Result<Frame> decode_frame(ByteView bytes) {
  // Statements and headers inside are checked where they are used; the
  // envelope itself only needs to be well formed and bounded.
  cbor::DecodeOptions options;
  options.max_items = kForwardStatementsMax + 16;
  CUSTOS_ASSIGN_OR_RETURN(Value v, cbor::decode(bytes, options));
  if (!v.is(cbor::Type::kArray) || v.as_array().empty() ||
      !v.as_array()[0].is(cbor::Type::kUnsigned)) {
    return malformed("not [kind, ...]");
  }
  const cbor::Array& a = v.as_array();
  switch (a[0].as_uint()) {
    case kConsensus: {
      if (a.size() != 2 || !a[1].is(cbor::Type::kBytes)) return malformed("consensus shape");
      CUSTOS_ASSIGN_OR_RETURN(consensus::Message m, consensus::decode_message(a[1].as_bytes()));
      return Frame(ConsensusFrame{std::move(m)});
    }
    case kForward:
      return decode_forward(a);
    case kReceiptSignature:
      return decode_receipt_signature(a);
    default:
      return malformed("unknown kind " + std::to_string(a[0].as_uint()));
  }
}

}  // namespace custos::node
