// Node-to-node frames (node/wire.h): every kind round-trips, and anything a
// hostile peer could send instead is refused with a reason, never accepted.
#include "node/wire.h"

#include <gtest/gtest.h>

#include "codec/cbor.h"
#include "consensus/types.h"
#include "unit/ledger/ledger_fixture.h"

namespace custos::node {
namespace {

using cbor::Value;

Bytes encoded(Value v) {
  return cbor::encode(v);
}

TEST(WireTest, ForwardFrameRoundTrips) {
  ForwardFrame f{{testutil::sign(testutil::test_keys().admin, 1), to_bytes("opaque")}};
  auto back = decode_frame(encode_frame(f));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  ASSERT_TRUE(std::holds_alternative<ForwardFrame>(*back));
  EXPECT_EQ(std::get<ForwardFrame>(*back).statements, f.statements);
}

TEST(WireTest, ReceiptSignatureFrameRoundTrips) {
  ReceiptSignatureFrame f{42, {3, to_bytes("protected"), Bytes(64, 7)}, true};
  auto back = decode_frame(encode_frame(f));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  const auto& r = std::get<ReceiptSignatureFrame>(*back);
  EXPECT_EQ(r.height, 42u);
  EXPECT_EQ(r.signature.node, 3u);
  EXPECT_EQ(r.signature.protected_bytes, to_bytes("protected"));
  EXPECT_EQ(r.signature.signature, Bytes(64, 7));
  EXPECT_TRUE(r.want_reply);
}

TEST(WireTest, ConsensusFrameRoundTrips) {
  consensus::BlockRequest request{Hash256{1, 2, 3}, 5};
  auto back = decode_frame(encode_frame(ConsensusFrame{request}));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  const auto& c = std::get<ConsensusFrame>(*back);
  ASSERT_TRUE(std::holds_alternative<consensus::BlockRequest>(c.message));
  EXPECT_EQ(std::get<consensus::BlockRequest>(c.message), request);
}

TEST(WireTest, HostileFramesAreRefused) {
  const std::vector<std::pair<std::string, Bytes>> cases = {
      {"empty", {}},
      {"not CBOR", to_bytes("\xff\xff")},
      {"not an array", encoded(Value::uint(1))},
      {"empty array", encoded(Value::array({}))},
      {"kind is text", encoded(Value::array({cbor::text("x")}))},
      {"unknown kind", encoded(Value::array({Value::uint(9), Value::null()}))},
      {"consensus without bytes", encoded(Value::array({Value::uint(1), Value::uint(2)}))},
      {"consensus garbage", encoded(Value::array({Value::uint(1), Value::bytes(to_bytes("x"))}))},
      {"forward not a list", encoded(Value::array({Value::uint(2), Value::uint(2)}))},
      {"forward item not bytes",
       encoded(Value::array({Value::uint(2), Value::array({Value::uint(1)})}))},
      {"signature short", encoded(Value::array({Value::uint(3), Value::uint(1), Value::uint(0)}))},
      {"signature node out of range",
       encoded(
           Value::array({Value::uint(3), Value::uint(1), Value::uint(1u << 20),
                         Value::bytes(Bytes{}), Value::bytes(Bytes{}), Value::boolean(false)}))},
      {"signature flag not bool",
       encoded(Value::array({Value::uint(3), Value::uint(1), Value::uint(0), Value::bytes(Bytes{}),
                             Value::bytes(Bytes{}), Value::uint(1)}))},
  };
  for (const auto& [name, bytes] : cases) {
    auto f = decode_frame(bytes);
    EXPECT_FALSE(f.ok()) << name;
    if (!f.ok()) {
      EXPECT_TRUE(f.status().code() == ErrorCode::kMalformed ||
                  f.status().code() == ErrorCode::kTooLarge)
          << name << ": " << f.status().to_string();
    }
  }
}

TEST(WireTest, TooManyForwardedStatementsAreRefused) {
  cbor::Array items(kForwardStatementsMax + 1, Value::bytes(to_bytes("s")));
  Bytes frame = encoded(Value::array({Value::uint(2), Value::array(std::move(items))}));
  auto f = decode_frame(frame);
  ASSERT_FALSE(f.ok());
}

}  // namespace
}  // namespace custos::node
