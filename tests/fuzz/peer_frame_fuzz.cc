// libFuzzer harness for everything a peer node can send: the node's frame
// envelope (node/wire.h), the consensus messages inside it
// (consensus/types.h) and receipt bundles. Nothing may crash, hang or leak,
// and what decodes must re-encode to bytes that decode to the same value.
//
//   peer_frame_fuzz tests/fuzz/corpus/peer_frame
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "consensus/types.h"
#include "cose/receipt.h"
#include "node/wire.h"

namespace {

using custos::Bytes;
using custos::ByteView;

void check(bool ok) {
  if (!ok) std::abort();
}

void fuzz_consensus(ByteView input) {
  auto m = custos::consensus::decode_message(input);
  if (!m.ok()) return;
  Bytes again = custos::consensus::encode_message(*m);
  auto m2 = custos::consensus::decode_message(again);
  check(m2.ok());
  check(*m2 == *m);
  // Block ids are computed from hostile fields too.
  if (auto* p = std::get_if<custos::consensus::Proposal>(&*m)) {
    check(p->block.id() == std::get<custos::consensus::Proposal>(*m2).block.id());
  }
}

void fuzz_frame(ByteView input) {
  auto f = custos::node::decode_frame(input);
  if (!f.ok()) return;
  auto again = custos::node::decode_frame(custos::node::encode_frame(*f));
  check(again.ok());
  check(again->index() == f->index());
}

void fuzz_bundle(ByteView input) {
  auto bundle = custos::cose::parse_receipt_bundle(input);
  if (!bundle.ok()) return;
  check(!bundle->empty() && bundle->size() <= custos::cose::kReceiptBundleEntriesMax);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteView input(data, size);
  fuzz_frame(input);
  fuzz_consensus(input);
  fuzz_bundle(input);
  return 0;
}
