// Unit tests for the deterministic CBOR codec: RFC 8949 Appendix A examples
// that are deterministic, and every refusal with its error message.
#include "codec/cbor.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>

#include "codec/cbor_json.h"

namespace custos::cbor {

// Readable gtest failure output for Values.
void PrintTo(const Value& value, std::ostream* os) {
  *os << diagnostic(value);
}

namespace {

Bytes hex(std::string_view h) {
  auto bytes = from_hex(h);
  EXPECT_TRUE(bytes.ok()) << h;
  return bytes.ok() ? *bytes : Bytes{};
}

std::string encode_hex(const Value& value) {
  return to_hex(encode(value));
}

DecodeOptions lax() {
  DecodeOptions options;
  options.require_deterministic = false;
  return options;
}

// Expects decoding `h` to fail as kMalformed with a message containing `want`.
void expect_refused(std::string_view h, std::string_view want, const DecodeOptions& options = {}) {
  auto result = decode(hex(h), options);
  ASSERT_FALSE(result.ok()) << h << " decoded to " << diagnostic(*result);
  EXPECT_EQ(result.status().code(), ErrorCode::kMalformed) << h;
  EXPECT_NE(result.status().message().find(want), std::string::npos)
      << h << ": got \"" << result.status().message() << "\", want \"" << want << "\"";
}

// --- RFC 8949 Appendix A ----------------------------------------------------

struct Example {
  const char* hex;
  const char* diagnostic;
};

// Every Appendix A example whose encoding is deterministic (and whose simple
// values custos supports). Each must decode, print as shown in the RFC (modulo
// float formatting noted below) and re-encode to the same bytes.
constexpr Example kAppendixA[] = {
    {"00", "0"},
    {"01", "1"},
    {"0a", "10"},
    {"17", "23"},
    {"1818", "24"},
    {"1819", "25"},
    {"1864", "100"},
    {"1903e8", "1000"},
    {"1a000f4240", "1000000"},
    {"1b000000e8d4a51000", "1000000000000"},
    {"1bffffffffffffffff", "18446744073709551615"},
    {"c249010000000000000000", "2(h'010000000000000000')"},
    {"3bffffffffffffffff", "-18446744073709551616"},
    {"c349010000000000000000", "3(h'010000000000000000')"},
    {"20", "-1"},
    {"29", "-10"},
    {"3863", "-100"},
    {"3903e7", "-1000"},
    {"f90000", "0.0"},
    {"f98000", "-0.0"},
    {"f93c00", "1.0"},
    {"fb3ff199999999999a", "1.1"},
    {"f93e00", "1.5"},
    {"f97bff", "65504.0"},
    {"fa47c35000", "100000.0"},
    {"fa7f7fffff", "3.4028234663852886e+38"},
    {"fb7e37e43c8800759c", "1.0e+300"},
    {"f90001", "5.960464477539063e-8"},
    {"f90400", "0.00006103515625"},
    {"f9c400", "-4.0"},
    {"fbc010666666666666", "-4.1"},
    {"f97c00", "Infinity"},
    {"f97e00", "NaN"},
    {"f9fc00", "-Infinity"},
    {"f4", "false"},
    {"f5", "true"},
    {"f6", "null"},
    {"f7", "undefined"},
    {"c074323031332d30332d32315432303a30343a30305a", "0(\"2013-03-21T20:04:00Z\")"},
    {"c11a514b67b0", "1(1363896240)"},
    {"c1fb41d452d9ec200000", "1(1363896240.5)"},
    {"d74401020304", "23(h'01020304')"},
    {"d818456449455446", "24(h'6449455446')"},
    {"d82076687474703a2f2f7777772e6578616d706c652e636f6d", "32(\"http://www.example.com\")"},
    {"40", "h''"},
    {"4401020304", "h'01020304'"},
    {"60", "\"\""},
    {"6161", "\"a\""},
    {"6449455446", "\"IETF\""},
    {"62225c", "\"\\\"\\\\\""},
    {"62c3bc", "\"\xc3\xbc\""},
    {"63e6b0b4", "\"\xe6\xb0\xb4\""},
    {"64f0908591", "\"\xf0\x90\x85\x91\""},
    {"80", "[]"},
    {"83010203", "[1, 2, 3]"},
    {"8301820203820405", "[1, [2, 3], [4, 5]]"},
    {"98190102030405060708090a0b0c0d0e0f101112131415161718181819",
     "[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25]"},
    {"a0", "{}"},
    {"a201020304", "{1: 2, 3: 4}"},
    {"a26161016162820203", "{\"a\": 1, \"b\": [2, 3]}"},
    {"826161a161626163", "[\"a\", {\"b\": \"c\"}]"},
    {"a56161614161626142616361436164614461656145",
     "{\"a\": \"A\", \"b\": \"B\", \"c\": \"C\", \"d\": \"D\", \"e\": \"E\"}"},
};

TEST(CborAppendixA, DecodesPrintsAndReencodesIdentically) {
  for (const Example& example : kAppendixA) {
    SCOPED_TRACE(example.hex);
    const Bytes input = hex(example.hex);
    auto value = decode(input);
    ASSERT_TRUE(value.ok()) << value.status().to_string();
    EXPECT_EQ(diagnostic(*value), example.diagnostic);
    EXPECT_EQ(to_hex(encode(*value)), example.hex);
    // The lax mode accepts everything the strict mode accepts, identically.
    auto loose = decode(input, lax());
    ASSERT_TRUE(loose.ok()) << loose.status().to_string();
    EXPECT_EQ(*loose, *value);
  }
}

TEST(CborAppendixA, IntegersEncodeFromValues) {
  EXPECT_EQ(encode_hex(Value::uint(0)), "00");
  EXPECT_EQ(encode_hex(Value::uint(23)), "17");
  EXPECT_EQ(encode_hex(Value::uint(24)), "1818");
  EXPECT_EQ(encode_hex(Value::uint(255)), "18ff");
  EXPECT_EQ(encode_hex(Value::uint(256)), "190100");
  EXPECT_EQ(encode_hex(Value::uint(65535)), "19ffff");
  EXPECT_EQ(encode_hex(Value::uint(65536)), "1a00010000");
  EXPECT_EQ(encode_hex(Value::uint(0xffffffff)), "1affffffff");
  EXPECT_EQ(encode_hex(Value::uint(0x100000000)), "1b0000000100000000");
  EXPECT_EQ(encode_hex(Value::uint(1000000000000)), "1b000000e8d4a51000");
  EXPECT_EQ(encode_hex(Value::uint(std::numeric_limits<uint64_t>::max())), "1bffffffffffffffff");
  EXPECT_EQ(encode_hex(Value::negative(std::numeric_limits<uint64_t>::max())),
            "3bffffffffffffffff");  // -2^64
  EXPECT_EQ(encode_hex(Value::integer(-1)), "20");
  EXPECT_EQ(encode_hex(Value::integer(-10)), "29");
  EXPECT_EQ(encode_hex(Value::integer(-100)), "3863");
  EXPECT_EQ(encode_hex(Value::integer(-1000)), "3903e7");
  EXPECT_EQ(encode_hex(Value::integer(std::numeric_limits<int64_t>::min())), "3b7fffffffffffffff");
  EXPECT_EQ(encode_hex(Value::integer(std::numeric_limits<int64_t>::max())), "1b7fffffffffffffff");
}

TEST(CborAppendixA, FloatsTakeTheShortestExactWidth) {
  EXPECT_EQ(encode_hex(Value::float64(0.0)), "f90000");
  EXPECT_EQ(encode_hex(Value::float64(-0.0)), "f98000");
  EXPECT_EQ(encode_hex(Value::float64(1.0)), "f93c00");
  EXPECT_EQ(encode_hex(Value::float64(1.1)), "fb3ff199999999999a");
  EXPECT_EQ(encode_hex(Value::float64(1.5)), "f93e00");
  EXPECT_EQ(encode_hex(Value::float64(65504.0)), "f97bff");
  EXPECT_EQ(encode_hex(Value::float64(65505.0)), "fa477fe100");  // just past half range
  EXPECT_EQ(encode_hex(Value::float64(100000.0)), "fa47c35000");
  EXPECT_EQ(encode_hex(Value::float64(3.4028234663852886e+38)), "fa7f7fffff");
  EXPECT_EQ(encode_hex(Value::float64(1.0e+300)), "fb7e37e43c8800759c");
  EXPECT_EQ(encode_hex(Value::float64(5.960464477539063e-8)), "f90001");       // smallest subnormal
  EXPECT_EQ(encode_hex(Value::float64(0.00006103515625)), "f90400");           // smallest normal
  EXPECT_EQ(encode_hex(Value::float64(2.9802322387695312e-8)), "fa33000000");  // half of it
  EXPECT_EQ(encode_hex(Value::float64(-4.0)), "f9c400");
  EXPECT_EQ(encode_hex(Value::float64(-4.1)), "fbc010666666666666");
  EXPECT_EQ(encode_hex(Value::float64(INFINITY)), "f97c00");
  EXPECT_EQ(encode_hex(Value::float64(-INFINITY)), "f9fc00");
  EXPECT_EQ(encode_hex(Value::float64(std::numeric_limits<double>::denorm_min())),
            "fb0000000000000001");
}

// NaN has many encodings; custos accepts exactly one, the half-precision quiet
// NaN with no payload and no sign (f97e00), and encodes every NaN that way.
TEST(CborAppendixA, NaNIsCanonicallyF97e00) {
  EXPECT_EQ(encode_hex(Value::float64(std::nan(""))), "f97e00");
  EXPECT_EQ(encode_hex(Value::float64(-std::nan(""))), "f97e00");
  EXPECT_EQ(encode_hex(Value::float64(std::nan("0x1234"))), "f97e00");
  EXPECT_EQ(encode_hex(Value::float64(std::numeric_limits<double>::signaling_NaN())), "f97e00");
  expect_refused("fa7fc00000", "offset 0: NaN not in its deterministic form f97e00");
  expect_refused("fb7ff8000000000000", "offset 0: NaN not in its deterministic form f97e00");
  expect_refused("f97e01", "offset 0: NaN not in its deterministic form f97e00");
  expect_refused("f9fe00", "offset 0: NaN not in its deterministic form f97e00");
  expect_refused("f97c01", "offset 0: NaN not in its deterministic form f97e00");
  // The lax mode takes any NaN and re-encodes it canonically.
  auto value = decode(hex("fb7ff8000000000001"), lax());
  ASSERT_TRUE(value.ok());
  EXPECT_TRUE(std::isnan(value->as_float()));
  EXPECT_EQ(encode_hex(*value), "f97e00");
}

TEST(CborAppendixA, NonDeterministicFloatExamplesDecodeOnlyInLaxMode) {
  // Appendix A lists these non-preferred encodings of Infinity/NaN.
  for (const char* h : {"fa7f800000", "faff800000", "fb7ff0000000000000", "fbfff0000000000000"}) {
    SCOPED_TRACE(h);
    expect_refused(h, "offset 0: float not in shortest form (fits half precision)");
    auto value = decode(hex(h), lax());
    ASSERT_TRUE(value.ok());
    EXPECT_TRUE(std::isinf(value->as_float()));
  }
  EXPECT_EQ(encode_hex(*decode(hex("fa7f800000"), lax())), "f97c00");
}

TEST(CborAppendixA, UnsupportedSimpleValuesAreRefused) {
  // simple(16) and simple(255) are valid CBOR but have no Value type; custos
  // never writes them, so it refuses them rather than dropping information.
  expect_refused("f0", "offset 0: unsupported simple value 16");
  expect_refused("f8ff", "offset 0: unsupported simple value 255");
  expect_refused("f820", "offset 0: unsupported simple value 32");
  // Two-byte forms of simple values below 32 are not well-formed.
  expect_refused("f818", "offset 0: simple value 24 must be encoded in one byte");
  expect_refused("f814", "offset 0: simple value 20 must be encoded in one byte", lax());
}

// --- Refusals ---------------------------------------------------------------

TEST(CborRefusal, NonShortestIntegers) {
  expect_refused("1817", "offset 0: unsigned integer 23 not in shortest form (1-byte argument)");
  expect_refused("190017", "offset 0: unsigned integer 23 not in shortest form (2-byte argument)");
  expect_refused("1900ff", "offset 0: unsigned integer 255 not in shortest form");
  expect_refused("1a0000ffff", "offset 0: unsigned integer 65535 not in shortest form");
  expect_refused("1b00000000ffffffff", "offset 0: unsigned integer 4294967295 not in shortest");
  expect_refused("3800", "offset 0: negative integer 0 not in shortest form");
  expect_refused("8118ff18ff", "offset 3: trailing bytes");  // sanity: first item is fine
  expect_refused("821800", "offset 1: unsigned integer 0 not in shortest form");
  expect_refused("d80100", "offset 0: tag number 1 not in shortest form");
}

TEST(CborRefusal, NonShortestLengths) {
  expect_refused("5801ff", "offset 0: byte string length 1 not in shortest form");
  expect_refused("780161", "offset 0: text string length 1 not in shortest form");
  expect_refused("9800", "offset 0: array length 0 not in shortest form");
  expect_refused("b80101f6", "offset 0: map length 1 not in shortest form");
  expect_refused("b9000101f6", "offset 0: map length 1 not in shortest form (2-byte argument)");
}

TEST(CborRefusal, LaxModeAcceptsNonShortestIntegersAndLengths) {
  auto value = decode(hex("83181719001758016a"), lax());
  ASSERT_TRUE(value.ok()) << value.status().to_string();
  EXPECT_EQ(diagnostic(*value), "[23, 23, h'6a']");
  EXPECT_EQ(encode_hex(*value), "831717416a");
}

TEST(CborRefusal, IndefiniteLengthItemsInBothModes) {
  for (const DecodeOptions& options : {DecodeOptions{}, lax()}) {
    expect_refused("5f42010243030405ff", "offset 0: indefinite-length byte string not allowed",
                   options);
    expect_refused("7f657374726561646d696e67ff",
                   "offset 0: indefinite-length text string not allowed", options);
    expect_refused("9fff", "offset 0: indefinite-length array not allowed", options);
    expect_refused("bf61610161629f0203ffff", "offset 0: indefinite-length map not allowed",
                   options);
    expect_refused("8301829f0203ff", "offset 3: indefinite-length array not allowed", options);
  }
}

TEST(CborRefusal, AdditionalInfo31OnIntegersAndTags) {
  expect_refused("1f", "offset 0: additional information 31 is not valid for major type 0");
  expect_refused("3f", "offset 0: additional information 31 is not valid for major type 1");
  expect_refused("df01", "offset 0: additional information 31 is not valid for major type 6");
}

TEST(CborRefusal, ReservedAdditionalInfo) {
  for (const DecodeOptions& options : {DecodeOptions{}, lax()}) {
    expect_refused("1c", "offset 0: reserved additional information value 28", options);
    expect_refused("3d", "offset 0: reserved additional information value 29", options);
    expect_refused("5e", "offset 0: reserved additional information value 30", options);
    expect_refused("7c", "offset 0: reserved additional information value 28", options);
    expect_refused("9d", "offset 0: reserved additional information value 29", options);
    expect_refused("be", "offset 0: reserved additional information value 30", options);
    expect_refused("dc", "offset 0: reserved additional information value 28", options);
    expect_refused("fd", "offset 0: reserved additional information value 29", options);
    expect_refused("8201fe", "offset 2: reserved additional information value 30", options);
  }
}

TEST(CborRefusal, BreakOutsideIndefiniteItem) {
  expect_refused("ff", "offset 0: break byte (0xff) outside an indefinite-length item");
  expect_refused("8201ff", "offset 2: break byte (0xff) outside an indefinite-length item");
  expect_refused("a101ff", "offset 2: break byte (0xff) outside an indefinite-length item", lax());
}

TEST(CborRefusal, UnsortedMapKeys) {
  expect_refused("a202000100", "offset 3: map keys not in deterministic order");
  expect_refused("a2616200616100", "offset 4: map keys not in deterministic order");
  // RFC 8949 orders keys bytewise, not length-first as RFC 7049 did: 100
  // (1864) sorts before -1 (20) although its encoding is longer.
  expect_refused("a22000186400", "offset 3: map keys not in deterministic order");
  EXPECT_TRUE(decode(hex("a21864002000")).ok());
  // Nested maps are checked too, with offsets into the whole input.
  expect_refused("81a2616201616101", "offset 5: map keys not in deterministic order");
}

TEST(CborRefusal, DuplicateMapKeys) {
  expect_refused("a201000101", "offset 3: duplicate map key");
  expect_refused("a3010002000201", "offset 5: duplicate map key");
  for (const DecodeOptions& options : {DecodeOptions{}, lax()}) {
    expect_refused("a2616100616101", "offset 4: duplicate map key", options);
  }
  // Lax mode: duplicates are found however far apart and however written.
  expect_refused("a302000100020f", "offset 5: duplicate map key", lax());
  expect_refused("a20100180101", "offset 3: duplicate map key", lax());  // 1, then 1 as 1801
  expect_refused("a2f97e0000f97e0001", "offset 5: duplicate map key", lax());
  expect_refused("a2fa7fc0000000f97e0001", "offset 7: duplicate map key", lax());  // two NaNs
}

TEST(CborRefusal, LaxModeAcceptsUnsortedMapsButNotIndefiniteOnes) {
  auto value = decode(hex("a3026162016161616300"), lax());
  ASSERT_TRUE(value.ok()) << value.status().to_string();
  EXPECT_EQ(diagnostic(*value), "{2: \"b\", 1: \"a\", \"c\": 0}");
  EXPECT_EQ(encode_hex(*value),
            "a30161610261626163"
            "00");
  expect_refused("a3026162016161616300", "offset 4: map keys not in deterministic order");
  expect_refused("bf0201ff", "offset 0: indefinite-length map not allowed", lax());
  // 0.0 and -0.0 are different keys.
  EXPECT_TRUE(decode(hex("a2f98000f6f90000f6"), lax()).ok());
  EXPECT_TRUE(decode(hex("a2f90000f6f98000f6")).ok());
}

TEST(CborRefusal, NonShortestFloats) {
  expect_refused("fa3fc00000", "offset 0: float not in shortest form (fits half precision)");
  expect_refused("fb3ff8000000000000",
                 "offset 0: float not in shortest form (fits half precision)");
  expect_refused("fa00000000", "offset 0: float not in shortest form (fits half precision)");
  expect_refused("fb8000000000000000",
                 "offset 0: float not in shortest form (fits half precision)");
  expect_refused("fb40f86a0000000000",
                 "offset 0: float not in shortest form (fits single precision)");  // 100000.0
  expect_refused("fb47efffffe0000000",
                 "offset 0: float not in shortest form (fits single precision)");  // FLT_MAX
  EXPECT_TRUE(decode(hex("fa47c35000")).ok());  // 100000.0 needs single precision
  auto value = decode(hex("fb40f86a0000000000"), lax());
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(value->as_float(), 100000.0);
  EXPECT_EQ(encode_hex(*value), "fa47c35000");
}

TEST(CborRefusal, InvalidUtf8InText) {
  expect_refused("62c328", "offset 2: invalid UTF-8 in text string starting at offset 0");
  expect_refused("61ff", "offset 1: invalid UTF-8 in text string starting at offset 0");
  expect_refused("61c3", "offset 1: invalid UTF-8");        // cut short: reported at the lead
  expect_refused("62c080", "offset 1: invalid UTF-8");      // overlong NUL
  expect_refused("63e08080", "offset 2: invalid UTF-8");    // overlong 3-byte
  expect_refused("63eda080", "offset 2: invalid UTF-8");    // surrogate U+D800
  expect_refused("64f4908080", "offset 2: invalid UTF-8");  // above U+10FFFF
  expect_refused("64f0808080", "offset 2: invalid UTF-8");  // overlong 4-byte
  expect_refused("63e2827f", "offset 3: invalid UTF-8");    // bad continuation
  expect_refused("8261616280ff", "offset 4: invalid UTF-8 in text string starting at offset 3",
                 lax());
  EXPECT_TRUE(decode(hex("64f48fbfbf")).ok());  // U+10FFFF is fine
  EXPECT_TRUE(decode(hex("63ed9fbf")).ok());    // U+D7FF is fine
  // Byte strings may hold anything.
  EXPECT_TRUE(decode(hex("42c328")).ok());
}

TEST(CborRefusal, TruncatedInput) {
  expect_refused("", "offset 0: unexpected end of input");
  expect_refused("19", "offset 0: truncated: unsigned integer needs 2 argument bytes, 0 remain");
  expect_refused("1901", "offset 0: truncated: unsigned integer needs 2 argument bytes, 1 remain");
  expect_refused("1b01020304050607", "needs 8 argument bytes, 7 remain");
  expect_refused("f97e", "offset 0: truncated: float needs 2 argument bytes, 1 remain");
  expect_refused("f8", "offset 0: truncated: simple value needs 1 argument bytes, 0 remain");
  expect_refused("44010203", "offset 0: byte string length 4 exceeds the 3 bytes remaining");
  expect_refused("6461", "offset 0: text string length 4 exceeds the 1 bytes remaining");
  expect_refused("830102", "offset 0: array declares 3 elements but only 2 bytes remain");
  expect_refused("8301021901", "offset 3: truncated: unsigned integer needs 2 argument bytes");
  expect_refused("a20102", "offset 0: map declares 2 pairs but only 2 bytes remain");
  expect_refused("a20182020303", "offset 6: unexpected end of input, expected a data item");
  expect_refused("c1", "offset 1: unexpected end of input, expected a data item");
  expect_refused("d9ffff", "offset 3: unexpected end of input", lax());
}

TEST(CborRefusal, TrailingBytes) {
  expect_refused("0102", "offset 1: trailing bytes after the data item (1 unused)");
  expect_refused("8001020304", "offset 1: trailing bytes after the data item (4 unused)");
  expect_refused("f600", "offset 1: trailing bytes", lax());
}

TEST(CborRefusal, HugeDeclaredLengthsFailFast) {
  // Each claims far more than the input holds; must fail before allocating.
  expect_refused("5b8000000000000000",
                 "offset 0: byte string length 9223372036854775808 exceeds the 0 bytes remaining");
  expect_refused("7bffffffffffffffff61", "offset 0: text string length 18446744073709551615");
  expect_refused("9bffffffffffffffff01",
                 "offset 0: array declares 18446744073709551615 elements but only 1 bytes remain");
  expect_refused("bb7fffffffffffffff0101",
                 "offset 0: map declares 9223372036854775807 pairs but only 2 bytes remain");
  expect_refused("5a7fffffff", "offset 0: byte string length 2147483647 exceeds", lax());
  expect_refused("815bffffffffffffffff",
                 "offset 1: byte string length 18446744073709551615 exceeds the 0 bytes remaining");
}

// `depth` arrays, each holding the next, around a 0.
std::string nested_arrays_hex(size_t depth) {
  std::string h;
  for (size_t i = 0; i < depth; ++i) h += "81";
  return h + "00";
}

TEST(CborRefusal, DepthLimit) {
  // kCborDepthMax nested containers are allowed, one more is not.
  const size_t max = limits::kCborDepthMax;
  EXPECT_TRUE(decode(hex(nested_arrays_hex(max))).ok());
  expect_refused(nested_arrays_hex(max + 1),
                 "offset " + std::to_string(max) + ": nesting deeper than 16 levels (depth limit)");
  // Empty containers count too; so do maps and tags.
  std::string h;
  for (size_t i = 0; i < max; ++i) h += "c1";
  EXPECT_TRUE(decode(hex(h + "00")).ok());
  expect_refused(h + "80", "offset 16: nesting deeper than 16 levels");
  expect_refused(h + "a0", "offset 16: nesting deeper than 16 levels", lax());
  DecodeOptions shallow;
  shallow.max_depth = 1;
  EXPECT_TRUE(decode(hex("a10102"), shallow).ok());
  expect_refused("a1018102", "offset 2: nesting deeper than 1 levels (depth limit)", shallow);
  // Hostile depth stays cheap: a million nested arrays fail at the limit.
  const Bytes deep(1000000, 0x81);
  auto deep_result = decode(deep);
  ASSERT_FALSE(deep_result.ok());
  EXPECT_NE(deep_result.status().message().find("depth limit"), std::string::npos);
}

TEST(CborRefusal, ItemCountLimit) {
  DecodeOptions small;
  small.max_items = 4;
  EXPECT_TRUE(decode(hex("83010203"), small).ok());  // 4 items: the array and 3 elements
  expect_refused("8401020304", "offset 0: array declares 4 elements, more than the limit of 4",
                 small);
  expect_refused("a3010203040506", "offset 0: map declares 3 pairs, more than the limit of 4",
                 small);
  // Nested containers are counted item by item: [[1], [2]] is 5 items.
  expect_refused("8281018102", "offset 3: array declares 1 elements, more than the limit of 4",
                 small);
  // Tag contents are not declared up front, so they are counted one by one.
  EXPECT_TRUE(decode(hex("c1c1c101"), small).ok());
  expect_refused("c1c1c1c101", "offset 4: more than 4 data items (item limit)", small);
  // The default limit: kCborItemsMax - 1 elements fit in one array, one more does not.
  Bytes big = hex("9a00000000");
  auto put_count = [&](uint32_t n) {
    for (int i = 0; i < 4; ++i) big[1 + i] = static_cast<uint8_t>(n >> (24 - 8 * i));
  };
  put_count(limits::kCborItemsMax - 1);
  big.resize(5 + limits::kCborItemsMax - 1, 0x00);
  auto fits = decode(big, lax());
  ASSERT_TRUE(fits.ok()) << fits.status().to_string();
  EXPECT_EQ(fits->as_array().size(), limits::kCborItemsMax - 1);
  put_count(limits::kCborItemsMax);
  big.push_back(0x00);
  expect_refused(to_hex(big),
                 "offset 0: array declares 16384 elements, more than the limit of 16384", lax());
}

TEST(CborRefusal, RefusalsUseMalformedCode) {
  for (const char* h : {"1817", "ff", "a202000100", "61ff", "0102", "9f", "5b8000000000000000"}) {
    auto result = decode(hex(h));
    ASSERT_FALSE(result.ok()) << h;
    EXPECT_EQ(result.status().code(), ErrorCode::kMalformed) << h;
    EXPECT_EQ(result.status().to_string().rfind("malformed: offset ", 0), 0u) << h;
  }
}

// --- decode_prefix ----------------------------------------------------------

TEST(CborDecodePrefix, ReadsASequence) {
  const Bytes input = hex("0182020361616161");  // 1, [2, 3], "a", "a"
  std::vector<std::string> items;
  size_t offset = 0;
  while (offset < input.size()) {
    size_t consumed = 0;
    auto value = decode_prefix(ByteView(input).subspan(offset), &consumed);
    ASSERT_TRUE(value.ok()) << value.status().to_string();
    items.push_back(diagnostic(*value));
    offset += consumed;
  }
  EXPECT_EQ(items, (std::vector<std::string>{"1", "[2, 3]", "\"a\"", "\"a\""}));
  size_t consumed = 99;
  EXPECT_FALSE(decode_prefix(hex("1817"), &consumed).ok());
  EXPECT_TRUE(decode_prefix(hex("1817"), &consumed, lax()).ok());
  EXPECT_EQ(consumed, 2u);
}

// --- Encoding ---------------------------------------------------------------

TEST(CborEncode, MapKeysSortedBytewiseWhateverTheInsertionOrder) {
  Map map;
  map.emplace_back(text("a"), Value::uint(1));
  map.emplace_back(integer(-1), Value::uint(2));
  map.emplace_back(Value::uint(100), Value::uint(3));
  map.emplace_back(Value::uint(10), Value::uint(4));
  map.emplace_back(Value::bytes(Bytes{}), Value::uint(5));
  // 0a < 1864 < 20 < 40 < 6161
  EXPECT_EQ(encode_hex(Value::map(map)),
            "a50a04186403200240056161"
            "01");
  // Nested unsorted maps are sorted too, and an unsorted map nested after a
  // sorted prefix does not disturb the outer pairs.
  Map inner;
  inner.emplace_back(Value::uint(2), Value::null());
  inner.emplace_back(Value::uint(1), Value::null());
  Map outer;
  outer.emplace_back(Value::uint(1), Value::map(inner));
  outer.emplace_back(Value::uint(0), Value::array({Value::map(inner)}));
  EXPECT_EQ(encode_hex(Value::map(outer)), "a20081a201f602f601a201f602f6");
}

TEST(CborEncode, EncodeToAppends) {
  Bytes out = {0xaa};
  encode_to(Value::array({Value::uint(1), text("x")}), out);
  EXPECT_EQ(to_hex(out), "aa82016178");
}

TEST(CborEncode, HeadBoundaries) {
  EXPECT_EQ(encode_hex(Value::bytes(Bytes(23, 0))).substr(0, 2), "57");
  EXPECT_EQ(encode_hex(Value::bytes(Bytes(24, 0))).substr(0, 4), "5818");
  EXPECT_EQ(encode_hex(Value::text(std::string(256, 'x'))).substr(0, 6), "790100");
  EXPECT_EQ(encode_hex(Value::tag(0xffffffffffffffff, Value::null())), "dbfffffffffffffffff6");
}

#ifndef NDEBUG
TEST(CborEncodeDeathTest, DuplicateKeysAreAProgrammerError) {
  Map map;
  map.emplace_back(Value::uint(1), Value::null());
  map.emplace_back(Value::uint(1), Value::null());
  EXPECT_DEATH(encode(Value::map(map)), "duplicate map key");
}
#endif

// --- Value ------------------------------------------------------------------

TEST(CborValue, Accessors) {
  EXPECT_EQ(Value().type(), Type::kNull);
  EXPECT_EQ(Value::integer(5).type(), Type::kUnsigned);
  EXPECT_EQ(Value::integer(-5).negative_argument(), 4u);
  EXPECT_EQ(Value::uint(5).as_int64(), 5);
  EXPECT_EQ(Value::negative(0).as_int64(), -1);
  EXPECT_EQ(Value::integer(INT64_MIN).as_int64(), INT64_MIN);
  EXPECT_EQ(Value::uint(static_cast<uint64_t>(INT64_MAX) + 1).as_int64(), std::nullopt);
  EXPECT_EQ(Value::negative(static_cast<uint64_t>(INT64_MAX) + 1).as_int64(), std::nullopt);
  EXPECT_EQ(text("x").as_int64(), std::nullopt);
  EXPECT_TRUE(Value::negative(1).is_integer());
  EXPECT_FALSE(Value::float64(1).is_integer());
  EXPECT_EQ(Value::tag(1, Value::uint(2)).tag_content(), Value::uint(2));
  const uint8_t raw[] = {1, 2};
  EXPECT_EQ(Value::bytes(ByteView(raw)).as_bytes(), (Bytes{1, 2}));

  Value array = Value::array({});
  array.as_array().push_back(Value::uint(1));
  EXPECT_EQ(encode_hex(array), "8101");
  Value map = Value::map({});
  map.as_map().emplace_back(text("k"), Value::boolean(true));
  EXPECT_EQ(encode_hex(map), "a1616bf5");
}

TEST(CborValue, Find) {
  Value map = Value::map({{integer(1), integer(-7)},
                          {integer(-2), text("neg")},
                          {text("iss"), text("me")},
                          {Value::negative(UINT64_MAX), text("huge")}});
  ASSERT_NE(map.find(1), nullptr);
  EXPECT_EQ(*map.find(1), integer(-7));
  EXPECT_EQ(*map.find(-2), text("neg"));
  EXPECT_EQ(*map.find("iss"), text("me"));
  EXPECT_EQ(map.find(2), nullptr);
  EXPECT_EQ(map.find("sub"), nullptr);
  EXPECT_EQ(map.find(-1), nullptr);
  EXPECT_EQ(Value::uint(1).find(1), nullptr);
  EXPECT_EQ(Value::array({text("iss")}).find("iss"), nullptr);
}

TEST(CborValue, EqualityIsEqualityOfDeterministicEncodings) {
  EXPECT_EQ(Value::integer(3), Value::uint(3));
  EXPECT_NE(Value::uint(1), Value::negative(1));
  EXPECT_NE(Value::uint(1), Value::float64(1.0));
  EXPECT_NE(Value::null(), Value::undefined());
  EXPECT_EQ(Value::float64(NAN), Value::float64(-std::nan("7")));
  EXPECT_NE(Value::float64(0.0), Value::float64(-0.0));
  EXPECT_NE(Value::tag(1, Value::uint(1)), Value::tag(2, Value::uint(1)));
  EXPECT_NE(Value::tag(1, Value::uint(1)), Value::tag(1, Value::uint(2)));
  EXPECT_EQ(Value::bytes(Bytes{1}), Value::bytes(Bytes{1}));
  EXPECT_NE(Value::bytes(Bytes{1}), text("\x01"));
  // Pair order does not matter; keys and values do.
  const Value a = Value::map({{integer(1), text("x")}, {integer(2), text("y")}});
  const Value b = Value::map({{integer(2), text("y")}, {integer(1), text("x")}});
  const Value c = Value::map({{integer(2), text("x")}, {integer(1), text("y")}});
  const Value d = Value::map({{integer(3), text("y")}, {integer(1), text("x")}});
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(a, d);
  EXPECT_NE(a, Value::map({{integer(1), text("x")}}));
}

// --- Diagnostic notation ----------------------------------------------------

TEST(CborDiagnostic, Notation) {
  const Value header =
      Value::map({{integer(1), integer(-7)}, {integer(4), Value::bytes(Bytes{0x01, 0xab})}});
  EXPECT_EQ(diagnostic(header), "{1: -7, 4: h'01ab'}");
  EXPECT_EQ(diagnostic(Value::negative(UINT64_MAX)), "-18446744073709551616");
  EXPECT_EQ(diagnostic(Value::integer(INT64_MIN)), "-9223372036854775808");
  EXPECT_EQ(diagnostic(text("tab\tnl\nq\"b\\\x01")), "\"tab\\tnl\\nq\\\"b\\\\\\u0001\"");
  EXPECT_EQ(diagnostic(Value::tag(18, Value::array({Value::bytes(Bytes{}), Value::map({}),
                                                    Value::null(), Value::undefined()}))),
            "18([h'', {}, null, undefined])");
  EXPECT_EQ(diagnostic(Value::float64(-INFINITY)), "-Infinity");
  EXPECT_EQ(diagnostic(Value::float64(1e21)), "1.0e+21");
  EXPECT_EQ(diagnostic(Value::float64(1e20)), "100000000000000000000.0");
  EXPECT_EQ(diagnostic(Value::float64(1.5e-7)), "1.5e-7");
  EXPECT_EQ(diagnostic(Value::float64(-2.5e-300)), "-2.5e-300");
  EXPECT_EQ(diagnostic(Value::float64(0.25)), "0.25");
  EXPECT_EQ(diagnostic(Value::array({Value::boolean(true), Value::boolean(false)})),
            "[true, false]");
}

// --- JSON bridge ------------------------------------------------------------

TEST(CborJson, FromJsonMapsNumberKinds) {
  const auto json = nlohmann::json::parse(
      R"({"a": 1, "b": -2, "c": 1.5, "d": [true, null, "x"], "e": 18446744073709551615,
          "f": 2.0, "g": -9223372036854775808, "h": {}})");
  auto value = from_json(json);
  ASSERT_TRUE(value.ok()) << value.status().to_string();
  EXPECT_EQ(value->find("a")->type(), Type::kUnsigned);
  EXPECT_EQ(value->find("b")->type(), Type::kNegative);
  EXPECT_EQ(value->find("b")->as_int64(), -2);
  EXPECT_EQ(value->find("c")->type(), Type::kFloat);
  EXPECT_EQ(value->find("e")->as_uint(), UINT64_MAX);
  EXPECT_EQ(value->find("f")->type(), Type::kFloat);  // 2.0 stays a float
  EXPECT_EQ(value->find("g")->as_int64(), INT64_MIN);
  EXPECT_EQ(encode_hex(*value->find("f")), "f94000");
  EXPECT_EQ(diagnostic(*value->find("d")), "[true, null, \"x\"]");
  EXPECT_EQ(diagnostic(*value->find("h")), "{}");
  // Programmatic ints (number_integer even when positive) map to unsigned.
  EXPECT_EQ(from_json(nlohmann::json(7))->type(), Type::kUnsigned);
  EXPECT_EQ(from_json(nlohmann::json(-7))->type(), Type::kNegative);
  EXPECT_EQ(encode_hex(*from_json(nlohmann::json::binary({1, 2}))), "420102");
}

TEST(CborJson, FromJsonDepthLimit) {
  const size_t max = limits::kCborDepthMax;
  std::string ok_text = std::string(max, '[') + "1" + std::string(max, ']');
  std::string deep_text = "[" + ok_text + "]";
  EXPECT_TRUE(from_json(nlohmann::json::parse(ok_text)).ok());
  auto deep = from_json(nlohmann::json::parse(deep_text));
  ASSERT_FALSE(deep.ok());
  EXPECT_EQ(deep.status().code(), ErrorCode::kMalformed);
  EXPECT_NE(deep.status().message().find("JSON nested deeper than 16 levels"), std::string::npos);
  std::string objects;
  for (size_t i = 0; i <= max; ++i) objects += "{\"k\":";
  objects += "0" + std::string(max + 1, '}');
  EXPECT_FALSE(from_json(nlohmann::json::parse(objects)).ok());
}

TEST(CborJson, ToJsonForDisplay) {
  const Value value = Value::map({
      {text("n"), integer(-3)},
      {text("u"), Value::uint(UINT64_MAX)},
      {text("b"), Value::bytes(Bytes{0xde, 0xad})},
      {text("t"), Value::tag(1, Value::uint(1363896240))},
      {integer(1), Value::float64(1.5)},
      {Value::bytes(Bytes{0x01}), Value::boolean(true)},
      {text("nan"), Value::float64(NAN)},
      {text("inf"), Value::float64(-INFINITY)},
      {text("undef"), Value::undefined()},
      {text("huge"), Value::negative(UINT64_MAX)},
      {text("a"), Value::array({Value::null(), text("s")})},
  });
  const nlohmann::json json = to_json(value);
  EXPECT_EQ(json["n"], -3);
  EXPECT_EQ(json["u"].get<uint64_t>(), UINT64_MAX);
  EXPECT_EQ(json["b"], nlohmann::json({{"bstr", "dead"}}));
  EXPECT_EQ(json["t"], nlohmann::json({{"tag", 1}, {"value", 1363896240}}));
  EXPECT_EQ(json["1"], 1.5);
  EXPECT_EQ(json["h'01'"], true);
  EXPECT_EQ(json["nan"], "NaN");
  EXPECT_EQ(json["inf"], "-Infinity");
  EXPECT_TRUE(json["undef"].is_null());
  EXPECT_DOUBLE_EQ(json["huge"].get<double>(), -18446744073709551616.0);
  EXPECT_EQ(json["a"], nlohmann::json::parse(R"([null, "s"])"));
  EXPECT_EQ(json.size(), 11u);
  // Round trip for the JSON-shaped subset.
  const auto plain = nlohmann::json::parse(R"({"x": [1, -1, 0.5, "s", false, null]})");
  EXPECT_EQ(to_json(*from_json(plain)), plain);
}

}  // namespace
}  // namespace custos::cbor
