#include "gateway/check.h"

#include <array>

#include "codec/cbor.h"
#include "core/bytes.h"
#include "gateway/limits.h"

namespace custos::gateway {

namespace {

constexpr std::array<const char*, kReasonCount> kReasonNames = {
    "bad-topic",      "too-large",   "malformed",   "unsigned",      "content-type",
    "topic-mismatch", "unknown-key", "revoked-key", "bad-signature", "replay",
    "policy",         "conflict",    "other"};

Refusal refuse(Reason reason, std::string detail) {
  return Refusal{reason, std::move(detail)};
}

// A message that is not a statement: unsigned when it is a document a device
// could have meant to send (a CBOR map, JSON, a COSE_Sign1 with an empty
// signature), malformed otherwise.
Refusal classify_unparsed(ByteView payload, const Status& parse_error) {
  cbor::DecodeOptions loose;
  loose.require_deterministic = false;
  auto value = cbor::decode(payload, loose);
  if (value.ok()) {
    const cbor::Value* v = &*value;
    if (v->is(cbor::Type::kTag) && v->tag_number() == cose::kTagSign1) v = &v->tag_content();
    if (v->is(cbor::Type::kMap)) {
      return refuse(Reason::kUnsigned, "payload is a CBOR map, not a signed COSE_Sign1 statement");
    }
    if (v->is(cbor::Type::kArray) && v->as_array().size() == 4) {
      const cbor::Value& sig = v->as_array()[3];
      if (sig.is(cbor::Type::kBytes) && sig.as_bytes().empty()) {
        return refuse(Reason::kUnsigned, "COSE_Sign1 statement has an empty signature");
      }
    }
  }
  if (!payload.empty() && (payload[0] == '{' || payload[0] == '[')) {
    return refuse(Reason::kUnsigned, "payload looks like JSON, not a signed COSE_Sign1 statement");
  }
  std::string detail = parse_error.message();
  if (detail.size() > limits::kProblemDetailBytesMax) detail.resize(limits::kProblemDetailBytesMax);
  return refuse(Reason::kMalformed, detail);
}

// The "event" field of a device-event payload, if the payload is a map with
// one (the node checks the rest of the shape).
std::optional<std::string> event_kind(const cose::Statement& st) {
  auto payload = cbor::decode(st.payload());
  if (!payload.ok()) return std::nullopt;
  const cbor::Value* e = payload->find("event");
  if (!e || !e->is(cbor::Type::kText)) return std::nullopt;
  return e->as_text();
}

std::optional<Refusal> check_kind(const DeviceTopic& topic, const cose::Statement& st) {
  const std::string& type = st.header.content_type;
  if (type == kTypeFirmwareInstall) {
    if (topic.kind == TopicKind::kEvent) return std::nullopt;
    return refuse(Reason::kTopicMismatch, "a firmware installation belongs on the event topic");
  }
  if (type != kTypeDeviceEvent) {
    return refuse(Reason::kContentType, "content type '" + type.substr(0, 64) +
                                            "' is not one a device signs (device-event, "
                                            "firmware-install)");
  }
  auto kind = event_kind(st);
  if (!kind) return refuse(Reason::kMalformed, "device event payload has no text field 'event'");
  const bool alarm = *kind == "alarm" || *kind == "alarm-cleared";
  const bool status = *kind == "status";
  if (topic.kind == TopicKind::kAlarm && !alarm) {
    return refuse(Reason::kTopicMismatch, "the alarm topic carries alarm events only");
  }
  if (topic.kind == TopicKind::kStatus && !status) {
    return refuse(Reason::kTopicMismatch, "the status topic carries status events only");
  }
  return std::nullopt;
}

}  // namespace

const char* reason_name(Reason reason) {
  return kReasonNames[static_cast<size_t>(reason)];
}

Reason reason_from_problem_type(std::string_view type) {
  constexpr std::string_view kPrefix = "urn:custos:problem:";
  if (type.substr(0, kPrefix.size()) == kPrefix) type.remove_prefix(kPrefix.size());
  for (int i = 0; i < kReasonCount; ++i) {
    if (type == kReasonNames[i]) return static_cast<Reason>(i);
  }
  return Reason::kOther;
}

PrecheckResult precheck(std::string_view topic_text, ByteView payload) {
  auto topic = parse_device_topic(topic_text);
  if (!topic.ok()) return refuse(Reason::kBadTopic, topic.status().message());
  if (topic->kind == TopicKind::kAck || topic->kind == TopicKind::kError) {
    return refuse(Reason::kBadTopic, "devices publish on event, alarm and status topics");
  }
  if (payload.size() > limits::kMessageBytesMax) {
    return refuse(Reason::kTooLarge, "message of " + std::to_string(payload.size()) +
                                         " bytes; a statement is at most " +
                                         std::to_string(limits::kMessageBytesMax));
  }
  if (topic->kind == TopicKind::kStatus && as_string_view(payload) == kOfflineWillPayload) {
    return DeviceOffline{std::move(*topic)};
  }
  auto statement = cose::parse_statement(payload);
  if (!statement.ok()) return classify_unparsed(payload, statement.status());
  if (auto r = check_kind(*topic, *statement)) return *r;
  return Prechecked{std::move(*topic), std::move(*statement)};
}

std::optional<Refusal> check_with_key(const Prechecked& m, const KeyInfo& key, uint64_t last_seen) {
  const cose::StatementHeader& h = m.statement.header;
  if (key.revoked) return refuse(Reason::kRevokedKey, "key " + to_hex(h.kid) + " is revoked");
  if (m.topic.device_id != key.name && m.topic.device_id != h.issuer) {
    return refuse(Reason::kTopicMismatch, "topic device '" + m.topic.device_id +
                                              "' is neither the issuer nor the key's name '" +
                                              key.name.substr(0, 64) + "'");
  }
  if (Status s = cose::verify_statement(m.statement, key.key); !s.ok()) {
    return refuse(Reason::kBadSignature, s.message());
  }
  const uint64_t floor = std::max(last_seen, key.last_sequence);
  // Equal to what the ledger accepted may still be the very same entry.
  if (h.sequence < floor) {
    return refuse(Reason::kReplay, "sequence " + std::to_string(h.sequence) +
                                       " is below the last seen " + std::to_string(floor));
  }
  return std::nullopt;
}

}  // namespace custos::gateway
