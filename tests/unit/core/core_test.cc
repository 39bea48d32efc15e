// Tests of the core utilities: hex, base64, big-endian keys, Status/Result,
// and crash-safe file writes.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <filesystem>

#include "core/bytes.h"
#include "core/file.h"
#include "core/status.h"
#include "core/time.h"

namespace custos {
namespace {

TEST(Hex, RoundTripAndRefusals) {
  Bytes b{0x00, 0x01, 0xab, 0xff};
  EXPECT_EQ(to_hex(b), "0001abff");
  EXPECT_EQ(*from_hex("0001ABff"), b);
  EXPECT_EQ(from_hex("abc").status().code(), ErrorCode::kMalformed);  // odd length
  EXPECT_EQ(from_hex("zz").status().code(), ErrorCode::kMalformed);
  EXPECT_FALSE(hash_from_hex(std::string(62, 'a')).ok());
  EXPECT_FALSE(hash_from_hex(std::string(63, 'a') + "g").ok());
  EXPECT_TRUE(hash_from_hex(std::string(64, 'a')).ok());
}

TEST(PercentEncode, KeepsUnreservedAndEscapesTheRest) {
  EXPECT_EQ(percent_encode("pump-17_a.b~"), "pump-17_a.b~");
  EXPECT_EQ(percent_encode("application/vnd.custos+cbor"), "application%2Fvnd.custos%2Bcbor");
  EXPECT_EQ(percent_encode("a b&c=\xff"), "a%20b%26c%3D%FF");
}

TEST(Base64, KnownAnswers) {
  // RFC 4648 section 10 test vectors.
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    EXPECT_EQ(base64_encode(as_view(plain)), encoded);
    EXPECT_EQ(*base64_decode(encoded), to_bytes(plain));
  }
  EXPECT_FALSE(base64_decode("Zm9v!").ok());
  EXPECT_FALSE(base64_decode("Z").ok());
}

RC_GTEST_PROP(Base64, RoundTrips, (const std::vector<uint8_t>& data)) {
  RC_ASSERT(*base64_decode(base64_encode(data)) == data);
  RC_ASSERT(*from_hex(to_hex(data)) == data);
}

RC_GTEST_PROP(BigEndian, OrderMatchesNumbers, (uint64_t a, uint64_t b)) {
  Bytes ka, kb;
  append_be64(ka, a);
  append_be64(kb, b);
  RC_ASSERT(read_be64(ka.data()) == a);
  RC_ASSERT((ka < kb) == (a < b));
}

TEST(Rfc3339, KnownAnswersAndTheLastWritableInstant) {
  EXPECT_EQ(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(rfc3339_ms(1795428000123), "2026-11-23T10:00:00.123Z");
  EXPECT_EQ(rfc3339_ms(253402300799999), "9999-12-31T23:59:59.999Z");
  // Beyond year 9999 (or beyond what the C library converts): clamped.
  EXPECT_EQ(rfc3339_ms(253402300800000), "9999-12-31T23:59:59.999Z");
  EXPECT_EQ(rfc3339_ms(UINT64_MAX), "9999-12-31T23:59:59.999Z");
}

TEST(Status, CarriesCodeAndMessage) {
  Status s = error(ErrorCode::kReplay, "sequence 3 not above 5");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.to_string(), "replay: sequence 3 not above 5");
  EXPECT_TRUE(Status().ok());
  Result<int> r = 7;
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(*r, 7);
  Result<int> e = error(ErrorCode::kNotFound, "x");
  EXPECT_EQ(e.status().code(), ErrorCode::kNotFound);
  for (int c = 0; c <= static_cast<int>(ErrorCode::kInternal); ++c) {
    EXPECT_STRNE(error_code_name(static_cast<ErrorCode>(c)), "unknown");
  }
}

TEST(File, AtomicWriteReadAndLimits) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("custos-core-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "f").string();
  EXPECT_EQ(read_file(path).status().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(write_file_atomic(path, std::string_view("hello")).ok());
  EXPECT_EQ(*read_file(path), to_bytes("hello"));
  ASSERT_TRUE(write_file_atomic(path, std::string_view("replaced")).ok());
  EXPECT_EQ(*read_file(path), to_bytes("replaced"));
  EXPECT_EQ(read_file(path, 3).status().code(), ErrorCode::kTooLarge);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_FALSE(write_file_atomic((dir / "missing" / "f").string(), std::string_view("x")).ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace custos
