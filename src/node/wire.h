// What nodes send each other, inside the transport's frames: one envelope
// per frame, deterministic CBOR [kind, ...]:
//   [1, bstr]                            a consensus message (consensus/types.h)
//   [2, [+ bstr]]                        statements for the peers' mempools
//   [3, height, node, bstr, bstr, bool]  a receipt signature: protected header,
//                                        signature, and whether the sender asks
//                                        for the receiver's own in return
// Decoding is strict and bounded; anything else is refused (the peer's frame
// is dropped, the node keeps running).
#pragma once

#include <variant>
#include <vector>

#include "consensus/types.h"
#include "core/bytes.h"
#include "core/status.h"
#include "ledger/ledger.h"

namespace custos::node {

// Statements in one mempool forward, and their bytes (a frame must stay well
// under the transport's frame limit).
inline constexpr size_t kForwardStatementsMax = 1024;
inline constexpr size_t kForwardBytesMax = 8 * 1024 * 1024;

struct ConsensusFrame {
  consensus::Message message;
};
struct ForwardFrame {
  std::vector<Bytes> statements;
};
struct ReceiptSignatureFrame {
  uint64_t height = 0;
  ledger::NodeSignature signature;
  bool want_reply = false;
};
using Frame = std::variant<ConsensusFrame, ForwardFrame, ReceiptSignatureFrame>;

Bytes encode_frame(const Frame& frame);
Result<Frame> decode_frame(ByteView bytes);

}  // namespace custos::node
