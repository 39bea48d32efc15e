// libFuzzer harness for the CBOR decoder. Besides memory safety (ASan/UBSan)
// it checks the properties the ledger relies on:
//  - a deterministic decode succeeds only on the one encoding of its value,
//    so re-encoding reproduces the input exactly;
//  - the lax mode accepts everything the strict mode does, with the same
//    value, and its results re-encode to bytes the strict mode accepts;
//  - printing a decoded value (diagnostic, JSON) never fails.
// Violations abort, which libFuzzer reports as a crash with the input.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "codec/cbor.h"
#include "codec/cbor_json.h"

namespace {

using custos::Bytes;
using custos::ByteView;
namespace cbor = custos::cbor;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "cbor_decode_fuzz: %s\n", what);
  std::abort();
}

void check_printable(const cbor::Value& value) {
  (void)cbor::diagnostic(value);
  // dump() throws on invalid UTF-8, which decoded text must never contain.
  (void)cbor::to_json(value).dump();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const ByteView input(data, size);

  const auto strict = cbor::decode(input);
  if (strict.ok()) {
    if (cbor::encode(*strict) != Bytes(input.begin(), input.end())) {
      fail("deterministic decode did not re-encode to the input");
    }
    check_printable(*strict);
  }

  cbor::DecodeOptions lax_options;
  lax_options.require_deterministic = false;
  const auto lax = cbor::decode(input, lax_options);
  if (strict.ok() && !(lax.ok() && *lax == *strict)) {
    fail("lax decode disagrees with deterministic decode");
  }
  if (lax.ok()) {
    const Bytes canonical = cbor::encode(*lax);
    const auto again = cbor::decode(canonical);
    if (!again.ok() || !(*again == *lax)) fail("canonical re-encoding of a lax decode is refused");
    check_printable(*lax);
  }

  // A prefix decode must agree with the full decode on its own bytes.
  size_t consumed = 0;
  const auto prefix = cbor::decode_prefix(input, &consumed);
  if (prefix.ok()) {
    if (consumed == 0 || consumed > size) fail("decode_prefix reported an impossible length");
    if (strict.ok() != (consumed == size)) fail("decode_prefix and decode disagree");
  } else if (strict.ok()) {
    fail("decode_prefix refused what decode accepted");
  }
  return 0;
}
