#include "net/frame.h"

#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

namespace custos::net {
namespace {

TEST(Frame, HeaderIsBigEndian) {
  FrameHeader header = encode_frame_header(0x01020304);
  EXPECT_EQ(header, (FrameHeader{0x01, 0x02, 0x03, 0x04}));
}

TEST(Frame, LengthUpToTheLimitIsAccepted) {
  Result<uint32_t> length = decode_frame_header(encode_frame_header(1000), 1000);
  ASSERT_TRUE(length.ok()) << length.status().to_string();
  EXPECT_EQ(*length, 1000u);
}

TEST(Frame, ZeroLengthIsMalformed) {
  Result<uint32_t> length = decode_frame_header(encode_frame_header(0), 1000);
  ASSERT_FALSE(length.ok());
  EXPECT_EQ(length.status().code(), ErrorCode::kMalformed);
}

TEST(Frame, LengthOverTheLimitIsTooLarge) {
  Result<uint32_t> length = decode_frame_header(encode_frame_header(1001), 1000);
  ASSERT_FALSE(length.ok());
  EXPECT_EQ(length.status().code(), ErrorCode::kTooLarge);
  Result<uint32_t> huge = decode_frame_header(FrameHeader{0xff, 0xff, 0xff, 0xff}, kFrameBytesMax);
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().code(), ErrorCode::kTooLarge);
}

TEST(Frame, HelloRoundTrip) {
  Bytes body = encode_hello(false, Hello{3, 7});
  ASSERT_EQ(body.size(), kHelloBytes);
  Result<Hello> hello = decode_hello(false, body);
  ASSERT_TRUE(hello.ok()) << hello.status().to_string();
  EXPECT_EQ(hello->from_index, 3u);
  EXPECT_EQ(hello->to_index, 7u);
}

TEST(Frame, HelloAndAckAreNotInterchangeable) {
  Bytes ack = encode_hello(true, Hello{1, 2});
  EXPECT_TRUE(decode_hello(true, ack).ok());
  Result<Hello> as_hello = decode_hello(false, ack);
  ASSERT_FALSE(as_hello.ok());
  EXPECT_EQ(as_hello.status().code(), ErrorCode::kMalformed);
}

TEST(Frame, HelloOfWrongLengthIsMalformed) {
  Bytes body = encode_hello(false, Hello{1, 2});
  Bytes longer = body;
  longer.push_back(0);
  Bytes shorter(body.begin(), body.end() - 1);
  EXPECT_EQ(decode_hello(false, longer).status().code(), ErrorCode::kMalformed);
  EXPECT_EQ(decode_hello(false, shorter).status().code(), ErrorCode::kMalformed);
  EXPECT_EQ(decode_hello(false, Bytes()).status().code(), ErrorCode::kMalformed);
}

RC_GTEST_PROP(FrameProperty, HeaderRoundTripsWithinTheLimit, (uint32_t length)) {
  RC_PRE(length > 0u);
  Result<uint32_t> decoded = decode_frame_header(encode_frame_header(length), kFrameBytesLimit);
  RC_ASSERT(decoded.ok());
  RC_ASSERT(*decoded == length);
}

RC_GTEST_PROP(FrameProperty, HelloRoundTrips, (uint32_t from, uint32_t to, bool is_ack)) {
  Result<Hello> hello = decode_hello(is_ack, encode_hello(is_ack, Hello{from, to}));
  RC_ASSERT(hello.ok());
  RC_ASSERT(hello->from_index == from);
  RC_ASSERT(hello->to_index == to);
}

}  // namespace
}  // namespace custos::net
