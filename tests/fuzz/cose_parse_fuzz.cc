// libFuzzer harness for the COSE parsers: parse_statement, parse_receipt and
// decode_consistency_proof must never crash, hang or leak on any input, and
// what they accept must survive re-encoding. Accepted inputs are also run
// through verification so the signature and Merkle paths see hostile data.
//
//   cose_parse_fuzz tests/fuzz/corpus/cose_parse
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "cose/receipt.h"
#include "cose/sign1.h"
#include "cose/statement.h"
#include "crypto/keys.h"

namespace {

using custos::Bytes;
using custos::ByteView;
using namespace custos::cose;

// A failed invariant is a bug in the parser: make libFuzzer report it.
void check(bool ok) {
  if (!ok) std::abort();
}

const custos::crypto::PrivateKey& fuzz_key() {
  static const custos::crypto::PrivateKey kKey =
      *custos::crypto::PrivateKey::generate(custos::crypto::Algorithm::kEd25519);
  return kKey;
}

void fuzz_statement(ByteView input) {
  auto st = parse_statement(input);
  if (!st.ok()) return;
  check(st->sign1.signature.size() == 64);
  check(st->header.sequence >= 1);
  check(st->bytes.size() == input.size());
  // A re-encoded statement parses to the same header and payload. (The
  // re-encoding adds tag 18 when it was absent, which may cross the limit.)
  Bytes again = encode_sign1(st->sign1);
  if (again.size() > custos::limits::kStatementBytesMax) return;
  auto st2 = parse_statement(again);
  check(st2.ok());
  check(st2->header.kid == st->header.kid);
  check(st2->header.sequence == st->header.sequence);
  check(st2->header.content_type == st->header.content_type);
  check(st2->sign1.protected_bytes == st->sign1.protected_bytes);
  check(st2->sign1.payload == st->sign1.payload);
  // Random bytes cannot carry a valid signature by a key made at startup.
  check(!verify_statement(*st, fuzz_key().public_key()).ok());
}

void fuzz_receipt(ByteView input) {
  auto receipt = parse_receipt(input);
  if (!receipt.ok()) return;
  check(receipt->proof.leaf_index < receipt->proof.tree_size);
  check(receipt->proof.path.size() <= custos::limits::kProofHashesMax);
  Bytes again = encode_receipt(receipt->protected_bytes, receipt->proof, receipt->signature);
  if (again.size() > custos::limits::kReceiptBytesMax) return;
  auto receipt2 = parse_receipt(again);
  check(receipt2.ok());
  check(receipt2->proof.path == receipt->proof.path);
  check(receipt2->header.kid == receipt->header.kid);
  // Exercises the Merkle path walk on hostile (size, index, path) triples.
  check(!verify_receipt(*receipt, input, fuzz_key().public_key()).ok());
  Receipt same_kid = *receipt;
  same_kid.header.kid = fuzz_key().public_key().kid();
  same_kid.header.alg = fuzz_key().algorithm();
  check(!verify_receipt(same_kid, input, fuzz_key().public_key()).ok());
}

void fuzz_consistency(ByteView input) {
  auto proof = decode_consistency_proof(input);
  if (!proof.ok()) return;
  check(proof->size1 >= 1 && proof->size1 <= proof->size2);
  auto again = decode_consistency_proof(encode_consistency_proof(*proof));
  check(again.ok() && again->path == proof->path);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ByteView input(data, size);
  fuzz_statement(input);
  fuzz_receipt(input);
  fuzz_consistency(input);
  return 0;
}
