// libFuzzer harness for what the gateway reads from devices: the precheck
// (topic + payload), the checks with a registered key, and the spool's
// record decoder. None may crash, hang or leak on any input; whatever the
// precheck accepts must be a statement whose entry id and sequence the
// checks can use.
//
// Input: the first byte picks a topic (or, with its top bit set, the rest
// of the line up to '\n' is the topic); the rest is the payload.
//
//   gateway_check_fuzz tests/fuzz/corpus/gateway_check
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "crypto/keys.h"
#include "gateway/check.h"
#include "gateway/spool.h"

namespace {

using namespace custos;
using namespace custos::gateway;

void check(bool ok) {
  if (!ok) std::abort();
}

const crypto::PrivateKey& fuzz_key() {
  static const crypto::PrivateKey kKey = *crypto::PrivateKey::generate(crypto::Algorithm::kES256);
  return kKey;
}

const char* const kTopics[] = {
    "iomt/v1/st-mary/icu/infusion-pump/pump-17/event",
    "iomt/v1/st-mary/icu/infusion-pump/pump-17/alarm",
    "iomt/v1/st-mary/icu/infusion-pump/pump-17/status",
    "iomt/v1/st-mary/icu/infusion-pump/pump-17/ack",
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string topic;
  ByteView payload(data + 1, size - 1);
  if (data[0] & 0x80) {
    size_t i = 1;
    while (i < size && data[i] != '\n') ++i;
    topic.assign(reinterpret_cast<const char*>(data + 1), i - 1);
    payload = i < size ? ByteView(data + i + 1, size - i - 1) : ByteView();
  } else {
    topic = kTopics[data[0] % 4];
  }
  PrecheckResult r = precheck(topic, payload);
  if (auto* ok = std::get_if<Prechecked>(&r)) {
    check(ok->statement.header.sequence >= 1);
    check(ok->statement.bytes.size() == payload.size());
    KeyInfo key{fuzz_key().public_key(), ok->topic.device_id, false, 0};
    auto refusal = check_with_key(*ok, key, data[0]);
    // A random statement cannot carry this process's key's signature.
    check(refusal.has_value());
  } else if (auto* no = std::get_if<Refusal>(&r)) {
    check(!no->detail.empty());
    check(static_cast<int>(no->reason) < kReasonCount);
  }
  auto record = SpoolRecord::decode(1, payload);
  if (record.ok()) check(record->encode() == Bytes(payload.begin(), payload.end()));
  return 0;
}
