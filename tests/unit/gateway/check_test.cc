// The gateway's message checks: topics, the precheck's reasons, and the
// checks that need the registered key.
#include "gateway/check.h"

#include <gtest/gtest.h>

#include "codec/cbor.h"
#include "gateway/limits.h"

namespace custos::gateway {
namespace {

const std::string kTopic = "iomt/v1/st-mary/icu/infusion-pump/pump-17/event";

Bytes payload(std::initializer_list<std::pair<const char*, cbor::Value>> fields) {
  cbor::Map m;
  for (const auto& [k, v] : fields) m.emplace_back(cbor::text(k), v);
  return cbor::encode(cbor::Value::map(std::move(m)));
}

struct Fixture {
  crypto::PrivateKey key = crypto::PrivateKey::generate(crypto::Algorithm::kES256).value();
  Bytes sign(const Bytes& body, uint64_t seq = 5, std::string iss = "pump-17",
             std::string type = std::string(kTypeDeviceEvent)) {
    cose::StatementHeader h;
    h.content_type = type;
    h.issuer = iss;
    h.subject = "infusion-1";
    h.issued_at_s = 1795000000;
    h.sequence = seq;
    return cose::sign_statement(key, h, body);
  }
  Bytes event(const char* kind, uint64_t seq = 5) {
    return sign(payload({{"event", cbor::text(kind)}}), seq);
  }
  KeyInfo info(std::string name = "pump-17") {
    return KeyInfo{key.public_key(), std::move(name), false, 0};
  }
};

Reason reason_of(const PrecheckResult& r) {
  const auto* refusal = std::get_if<Refusal>(&r);
  return refusal ? refusal->reason : static_cast<Reason>(-1);
}

TEST(Topic, ParsesTheSchemeAndRefusesOtherShapes) {
  auto t = parse_device_topic(kTopic);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->site, "st-mary");
  EXPECT_EQ(t->device_id, "pump-17");
  EXPECT_EQ(t->kind, TopicKind::kEvent);
  EXPECT_EQ(t->str(), kTopic);
  EXPECT_EQ(t->with_kind(TopicKind::kAck), "iomt/v1/st-mary/icu/infusion-pump/pump-17/ack");
  for (const char* bad : {"iomt/v1/a/b/c/d", "iomt/v1/a/b/c/d/e/event", "iomt/v2/a/b/c/d/event",
                          "iomt/v1/a/b/c/d/other", "iomt/v1/a/b//d/event", "iomt/v1/a/b/c/+/event",
                          "iomt/v1/a/b/c/#/event", "iomt/v1/a/b/c/d e/event", ""}) {
    EXPECT_FALSE(parse_device_topic(bad).ok()) << bad;
  }
  EXPECT_FALSE(parse_device_topic("iomt/v1/" + std::string(65, 'a') + "/b/c/d/event").ok());
}

TEST(Precheck, AcceptsADeviceEvent) {
  Fixture f;
  auto r = precheck(kTopic, f.event("start"));
  ASSERT_TRUE(std::holds_alternative<Prechecked>(r));
  EXPECT_EQ(std::get<Prechecked>(r).statement.header.sequence, 5u);
}

TEST(Precheck, RefusesEachKindWithItsReason) {
  Fixture f;
  EXPECT_EQ(reason_of(precheck("not/a/topic", f.event("start"))), Reason::kBadTopic);
  EXPECT_EQ(reason_of(precheck("iomt/v1/a/b/c/d/ack", f.event("start"))), Reason::kBadTopic);
  EXPECT_EQ(reason_of(precheck(kTopic, Bytes(limits::kMessageBytesMax + 1, 0))), Reason::kTooLarge);
  EXPECT_EQ(reason_of(precheck(kTopic, to_bytes("\xff\xfe"))), Reason::kMalformed);
  EXPECT_EQ(reason_of(precheck(kTopic, {})), Reason::kMalformed);
  EXPECT_EQ(reason_of(precheck(kTopic, payload({{"event", cbor::text("start")}}))),
            Reason::kUnsigned);
  EXPECT_EQ(reason_of(precheck(kTopic, to_bytes(R"({"event":"start"})"))), Reason::kUnsigned);
  Bytes st = f.event("start");
  st.resize(st.size() - 66);
  st.push_back(0x40);
  EXPECT_EQ(reason_of(precheck(kTopic, st)), Reason::kUnsigned);
  EXPECT_EQ(reason_of(precheck(kTopic, f.sign(payload({}), 5, "pump-17", "application/cbor"))),
            Reason::kContentType);
  const std::string alarm = "iomt/v1/st-mary/icu/infusion-pump/pump-17/alarm";
  const std::string status = "iomt/v1/st-mary/icu/infusion-pump/pump-17/status";
  EXPECT_EQ(reason_of(precheck(alarm, f.event("start"))), Reason::kTopicMismatch);
  EXPECT_TRUE(std::holds_alternative<Prechecked>(precheck(alarm, f.event("alarm"))));
  EXPECT_EQ(reason_of(precheck(status, f.event("alarm"))), Reason::kTopicMismatch);
  EXPECT_EQ(reason_of(precheck(kTopic, f.sign(payload({{"x", cbor::integer(1)}})))),
            Reason::kMalformed);
}

TEST(Precheck, RecognisesTheOfflineWillOnStatusOnly) {
  const std::string status = "iomt/v1/st-mary/icu/infusion-pump/pump-17/status";
  EXPECT_TRUE(
      std::holds_alternative<DeviceOffline>(precheck(status, as_view(kOfflineWillPayload))));
  EXPECT_EQ(reason_of(precheck(kTopic, as_view(kOfflineWillPayload))), Reason::kUnsigned);
}

TEST(CheckWithKey, TopicKeyNameSignatureAndSequence) {
  Fixture f;
  auto pre = std::get<Prechecked>(precheck(kTopic, f.event("start", 5)));
  EXPECT_FALSE(check_with_key(pre, f.info(), 0));
  EXPECT_FALSE(check_with_key(pre, f.info(), 5)) << "equal may be the same entry again";
  EXPECT_EQ(check_with_key(pre, f.info(), 6)->reason, Reason::kReplay);
  KeyInfo ledger_ahead = f.info();
  ledger_ahead.last_sequence = 9;
  EXPECT_EQ(check_with_key(pre, ledger_ahead, 0)->reason, Reason::kReplay);
  KeyInfo revoked = f.info();
  revoked.revoked = true;
  EXPECT_EQ(check_with_key(pre, revoked, 0)->reason, Reason::kRevokedKey);
  // The key's name may differ from the issuer when the topic names either.
  EXPECT_FALSE(check_with_key(pre, f.info("other-name"), 0));
  auto foreign = std::get<Prechecked>(
      precheck(kTopic, f.sign(payload({{"event", cbor::text("start")}}), 5, "pump-99")));
  EXPECT_EQ(check_with_key(foreign, f.info("pump-99"), 0)->reason, Reason::kTopicMismatch);
  EXPECT_FALSE(check_with_key(foreign, f.info("pump-17"), 0));
  Fixture other;
  EXPECT_EQ(check_with_key(pre, KeyInfo{other.key.public_key(), "pump-17", false, 0}, 0)->reason,
            Reason::kBadSignature);
}

TEST(Reasons, NamesRoundTripAndNodeProblemsMap) {
  for (int i = 0; i < kReasonCount; ++i) {
    const auto r = static_cast<Reason>(i);
    EXPECT_EQ(reason_from_problem_type(std::string("urn:custos:problem:") + reason_name(r)), r);
  }
  EXPECT_EQ(reason_from_problem_type("urn:custos:problem:unheard-of"), Reason::kOther);
}

}  // namespace
}  // namespace custos::gateway
