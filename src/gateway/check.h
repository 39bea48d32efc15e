// What the gateway checks in a device's message, in two steps:
//   1. precheck(): everything the bytes and the topic alone decide (size,
//      topic, COSE structure, signed at all, content type, issuer vs topic,
//      the payload's event kind vs the topic kind). Runs before the message
//      is spooled, so garbage never reaches the disk.
//   2. check_with_key(): what needs the device's registered key (fetched
//      from a node): key known and not revoked, key name or issuer matches
//      the topic, signature, sequence not below the last seen.
// Both are pure functions of their inputs (fuzzed in
// tests/fuzz/gateway_check_fuzz.cc); every refusal carries a Reason.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "cose/statement.h"
#include "crypto/keys.h"
#include "gateway/topic.h"

namespace custos::gateway {

// The content types a device's own key signs (docs/domain.md, "Devices").
inline constexpr std::string_view kTypeDeviceEvent = "application/vnd.custos.device-event+cbor";
inline constexpr std::string_view kTypeFirmwareInstall =
    "application/vnd.custos.firmware-install+cbor";

// Why a message was refused. The names are metric labels
// (custos_gateway_refused_total{reason=...}) and the last segment of the
// problem type sent to the device (urn:custos:problem:<name>). Append only.
enum class Reason {
  kBadTopic,       // not a device topic of the scheme (no answer possible)
  kTooLarge,       // payload over limits::kMessageBytesMax
  kMalformed,      // not CBOR / not a well-formed COSE_Sign1 statement
  kUnsigned,       // a plain document or a COSE_Sign1 without signature
  kContentType,    // not a content type devices sign
  kTopicMismatch,  // topic's device id is neither the issuer nor the key's name,
                   // or the event kind does not belong on that topic
  kUnknownKey,     // kid not registered on the ledger
  kRevokedKey,     // key revoked
  kBadSignature,   // signature does not verify under the registered key
  kReplay,         // sequence below the last seen / accepted
  kPolicy,         // the node's registration policy refused it
  kConflict,       // the node: state does not allow it (e.g. decommissioned)
  kOther,          // any other refusal by the node
};
inline constexpr int kReasonCount = static_cast<int>(Reason::kOther) + 1;

const char* reason_name(Reason reason);
// Maps a node problem type ("urn:custos:problem:replay" or "replay").
Reason reason_from_problem_type(std::string_view type);

struct Refusal {
  Reason reason = Reason::kMalformed;
  std::string detail;
};

// The will a device leaves with the broker (docs/gateway.md): unsigned,
// published by the broker when the device vanishes. Recorded as a metric and
// a log line, never as a ledger entry.
inline constexpr std::string_view kOfflineWillPayload = R"({"state":"offline"})";

struct DeviceOffline {
  DeviceTopic topic;
};

struct Prechecked {
  DeviceTopic topic;
  cose::Statement statement;
};

using PrecheckResult = std::variant<Prechecked, Refusal, DeviceOffline>;

PrecheckResult precheck(std::string_view topic, ByteView payload);

// The registered key as a node reports it (GET /v1/keys/{kid}).
struct KeyInfo {
  crypto::PublicKey key;
  std::string name;  // a device key's name is its device id
  bool revoked = false;
  uint64_t last_sequence = 0;  // last accepted by the ledger when fetched
};

// `last_seen` is the highest sequence the gateway saw pass for this key (0
// when none). Equal is allowed: a redelivered duplicate is the same entry,
// which the node answers with "already-registered".
std::optional<Refusal> check_with_key(const Prechecked& message, const KeyInfo& key,
                                      uint64_t last_seen);

}  // namespace custos::gateway
