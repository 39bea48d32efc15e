// Wire format of consensus messages: round trips and strict refusals.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include "codec/cbor.h"
#include "consensus/safety_rules.h"
#include "consensus/types.h"
#include "test_keys.h"

namespace custos::consensus {
namespace {

using cbor::Value;
using testing::Committee;

const Committee& committee() {
  static const Committee c(4);
  return c;
}

Block sample_block() {
  const Committee& c = committee();
  QuorumCert q1 = c.qc(c.genesis_id, 1, {0, 1, 2});
  TimeoutCert tc = c.tc(2, {{0, q1}, {1, q1}, {3, q1}});
  return c.block(3, q1, tc, {to_bytes("item-a"), to_bytes("item-b")}, 1234);
}

void expect_round_trip(const Message& m) {
  Bytes bytes = encode_message(m);
  auto back = decode_message(bytes);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_TRUE(*back == m) << message_name(m);
  EXPECT_EQ(encode_message(*back), bytes) << "re-encoding changed the bytes";
}

TEST(ConsensusCodec, GenesisIsDeterministicAndBindsTheLedger) {
  Hash256 other{};
  EXPECT_EQ(genesis_block(testing::ledger_hash()).id(), genesis_block(testing::ledger_hash()).id());
  EXPECT_NE(genesis_block(testing::ledger_hash()).id(), genesis_block(other).id());
  EXPECT_EQ(genesis_block(other).round, 0u);
  EXPECT_TRUE(genesis_block(other).signature.empty());
}

TEST(ConsensusCodec, EveryMessageKindRoundTrips) {
  const Committee& c = committee();
  Block b = sample_block();
  expect_round_trip(Proposal{b});
  expect_round_trip(make_vote(b.id(), 3, 2, c.keys[2]));
  expect_round_trip(make_timeout(3, b.qc, b.tc, 1, c.keys[1]));
  expect_round_trip(make_timeout(3, b.qc, std::nullopt, 1, c.keys[1]));
  expect_round_trip(BlockRequest{b.id(), 64});
  expect_round_trip(BlockResponse{{b, c.genesis}});
  expect_round_trip(BlockResponse{});
}

TEST(ConsensusCodec, BlockRoundTripsAndIdIgnoresOnlyTheSignature) {
  Block b = sample_block();
  auto back = decode_block(encode_block(b));
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, b);
  EXPECT_EQ(back->id(), b.id());

  Block unsigned_copy = b;
  unsigned_copy.signature.clear();
  EXPECT_EQ(unsigned_copy.id(), b.id());

  // Every other field changes the id.
  std::vector<std::function<void(Block&)>> edits = {
      [](Block& x) { x.round++; },
      [](Block& x) { x.parent_id[0] ^= 1; },
      [](Block& x) { x.qc.round++; },
      [](Block& x) { x.qc.signatures.pop_back(); },
      [](Block& x) { x.tc.reset(); },
      [](Block& x) { x.tc->signatures[0].high_qc_round = 0; },
      [](Block& x) { x.author++; },
      [](Block& x) { x.time_ms++; },
      [](Block& x) { x.payload[1].push_back('!'); },
      [](Block& x) { std::swap(x.payload[0], x.payload[1]); },
  };
  for (size_t i = 0; i < edits.size(); ++i) {
    Block e = b;
    edits[i](e);
    EXPECT_NE(e.id(), b.id()) << "edit " << i;
  }
}

TEST(ConsensusCodec, TruncatedInputIsRefusedAtEveryLength) {
  Bytes bytes = encode_message(Proposal{sample_block()});
  for (size_t len = 0; len < bytes.size(); ++len) {
    auto r = decode_message(ByteView(bytes.data(), len));
    EXPECT_FALSE(r.ok()) << "prefix of " << len << " bytes accepted";
  }
}

TEST(ConsensusCodec, TrailingBytesAreRefused) {
  Bytes bytes = encode_message(BlockRequest{Hash256{}, 1});
  bytes.push_back(0x00);
  auto r = decode_message(bytes);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kMalformed);
}

Result<Message> decode_value(const Value& v) {
  return decode_message(cbor::encode(v));
}

Value hash_value() {
  return Value::bytes(Bytes(32, 7));
}
Value sig_value() {
  return Value::bytes(Bytes(64, 9));
}

TEST(ConsensusCodec, ExtraOrMissingFieldsAreRefused) {
  Value vote =
      Value::array({Value::uint(1), hash_value(), Value::uint(3), Value::uint(1), sig_value()});
  EXPECT_TRUE(decode_value(vote).ok());
  Value extra = vote;
  extra.as_array().push_back(Value::uint(0));
  EXPECT_EQ(decode_value(extra).status().code(), ErrorCode::kMalformed);
  Value missing = vote;
  missing.as_array().pop_back();
  EXPECT_EQ(decode_value(missing).status().code(), ErrorCode::kMalformed);
}

TEST(ConsensusCodec, WrongTypesAreRefused) {
  auto vote = [](Value id, Value round, Value voter, Value sig) {
    return Value::array(
        {Value::uint(1), std::move(id), std::move(round), std::move(voter), std::move(sig)});
  };
  EXPECT_FALSE(
      decode_value(vote(Value::bytes(Bytes(31, 0)), Value::uint(1), Value::uint(0), sig_value()))
          .ok());
  EXPECT_FALSE(decode_value(vote(hash_value(), cbor::text("1"), Value::uint(0), sig_value())).ok());
  EXPECT_FALSE(
      decode_value(vote(hash_value(), Value::integer(-1), Value::uint(0), sig_value())).ok());
  EXPECT_FALSE(
      decode_value(vote(hash_value(), Value::uint(1), Value::uint(kValidatorsMax), sig_value()))
          .ok());
  EXPECT_FALSE(
      decode_value(vote(hash_value(), Value::uint(1), Value::uint(0), Value::bytes(Bytes(63, 0))))
          .ok());
  EXPECT_FALSE(decode_value(Value::map({})).ok());
  EXPECT_FALSE(decode_value(Value::array({})).ok());
  EXPECT_FALSE(decode_value(Value::array({Value::uint(9), Value::uint(0)})).ok()) << "unknown kind";
  EXPECT_FALSE(decode_value(Value::array({cbor::text("vote")})).ok());
}

TEST(ConsensusCodec, RequestCountIsBounded) {
  auto req = [](uint64_t count) {
    return Value::array({Value::uint(3), hash_value(), Value::uint(count)});
  };
  EXPECT_TRUE(decode_value(req(1)).ok());
  EXPECT_TRUE(decode_value(req(kBlocksPerResponseMax)).ok());
  EXPECT_FALSE(decode_value(req(0)).ok());
  EXPECT_FALSE(decode_value(req(kBlocksPerResponseMax + 1)).ok());
}

Value block_with_items(cbor::Array items) {
  Value qc = Value::array({hash_value(), Value::uint(0), Value::array({})});
  return Value::array({Value::uint(1), hash_value(), qc, Value::null(), Value::uint(1),
                       Value::uint(0), Value::array(std::move(items)), sig_value()});
}

TEST(ConsensusCodec, BlockLimitsAreEnforced) {
  cbor::Array ok_items = {Value::bytes(to_bytes("x"))};
  EXPECT_TRUE(decode_value(Value::array({Value::uint(0), block_with_items(ok_items)})).ok());

  cbor::Array too_many(kBlockItemsMax + 1, Value::bytes(to_bytes("x")));
  auto r = decode_value(Value::array({Value::uint(0), block_with_items(too_many)}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kTooLarge);

  cbor::Array too_big = {Value::bytes(Bytes(kBlockBytesMax / 2 + 1, 1)),
                         Value::bytes(Bytes(kBlockBytesMax / 2 + 1, 2))};
  r = decode_value(Value::array({Value::uint(0), block_with_items(too_big)}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kTooLarge);

  cbor::Array empty_item = {Value::bytes(Bytes{})};
  EXPECT_FALSE(decode_value(Value::array({Value::uint(0), block_with_items(empty_item)})).ok());
}

TEST(ConsensusCodec, CertificateAndResponseSizesAreBounded) {
  cbor::Array sigs(kValidatorsMax + 1, Value::array({Value::uint(0), sig_value()}));
  Value qc = Value::array({hash_value(), Value::uint(1), Value::array(sigs)});
  Value timeout = Value::array(
      {Value::uint(2), Value::uint(2), qc, Value::null(), Value::uint(0), sig_value()});
  auto r = decode_value(timeout);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kTooLarge);

  cbor::Array blocks(kBlocksPerResponseMax + 1, block_with_items({}));
  r = decode_value(Value::array({Value::uint(4), Value::array(blocks)}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kTooLarge);
}

TEST(ConsensusCodec, OversizeMessageIsRefusedBeforeParsing) {
  Bytes huge(kMessageBytesMax + 1, 0);
  auto r = decode_message(huge);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kTooLarge);
}

TEST(ConsensusCodec, NonDeterministicCborIsRefused) {
  // BlockRequest with count 1 written as a two-byte integer (0x18 0x01).
  Bytes bytes = encode_message(BlockRequest{Hash256{}, 1});
  ASSERT_EQ(bytes.back(), 0x01);
  bytes.back() = 0x18;
  bytes.push_back(0x01);
  EXPECT_FALSE(decode_message(bytes).ok());
}

TEST(ConsensusCodec, SafetyStateRoundTripsAndRefusesGarbage) {
  const Committee& c = committee();
  Block b = sample_block();
  SafetyState s;
  s.last_voted_round = 7;
  s.highest_timeout_round = 8;
  s.high_qc = b.qc;
  s.high_tc = b.tc;
  auto back = SafetyState::decode(s.encode());
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, s);

  SafetyState fresh;
  fresh.high_qc = genesis_qc(c.genesis_id);
  ASSERT_TRUE(SafetyState::decode(fresh.encode()).ok());
  EXPECT_EQ(*SafetyState::decode(fresh.encode()), fresh);

  Bytes bytes = s.encode();
  bytes.pop_back();
  EXPECT_FALSE(SafetyState::decode(bytes).ok());
  EXPECT_FALSE(SafetyState::decode(encode_message(BlockRequest{})).ok());
}

RC_GTEST_PROP(ConsensusCodecProperty, ArbitraryBytesNeverCrashTheDecoder,
              (std::vector<uint8_t> bytes)) {
  auto r = decode_message(bytes);
  if (r.ok()) RC_ASSERT(decode_message(encode_message(*r)).ok());
}

RC_GTEST_PROP(ConsensusCodecProperty, VotesAndRequestsRoundTrip,
              (uint64_t round, uint32_t voter, uint8_t count)) {
  Vote v;
  v.block_id.fill(static_cast<uint8_t>(round));
  v.round = round;
  v.voter = voter % kValidatorsMax;
  v.signature = Bytes(64, static_cast<uint8_t>(voter));
  auto back = decode_message(encode_message(v));
  RC_ASSERT(back.ok());
  RC_ASSERT(std::get<Vote>(*back) == v);
  BlockRequest req{v.block_id, static_cast<uint32_t>(count % kBlocksPerResponseMax) + 1};
  auto back_req = decode_message(encode_message(req));
  RC_ASSERT(back_req.ok());
  RC_ASSERT(std::get<BlockRequest>(*back_req) == req);
}

}  // namespace
}  // namespace custos::consensus
