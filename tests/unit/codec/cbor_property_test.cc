// Property tests for the deterministic CBOR codec.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <limits>
#include <ostream>
#include <random>

#include "codec/cbor.h"

namespace custos::cbor {

// Counterexamples are printed in diagnostic notation (found by ADL).
void showValue(const Value& value, std::ostream& os) {
  os << diagnostic(value);
}

namespace {

// Bounds for generated values: with at most kMaxChildren elements or pairs per
// container and depth <= kMaxDepth, a value stays far below the item limit.
constexpr int kMaxDepth = 4;
constexpr size_t kMaxChildren = 4;
constexpr size_t kLongStringMax = 300;  // reaches the 2-byte length form

// Independent of the codec's own conversion, so the two check each other.
double half_bits_to_double(uint16_t half) {
  const int exponent = (half >> 10) & 0x1f;
  const int mantissa = half & 0x3ff;
  double magnitude;
  if (exponent == 0) {
    magnitude = mantissa * std::pow(2.0, -24);
  } else if (exponent == 31) {
    magnitude = mantissa == 0 ? INFINITY : NAN;
  } else {
    magnitude = (1.0 + mantissa / 1024.0) * std::pow(2.0, exponent - 15);
  }
  return (half & 0x8000) ? -magnitude : magnitude;
}

rc::Gen<double> gen_double() {
  return rc::gen::oneOf(
      rc::gen::arbitrary<double>(),
      rc::gen::map(rc::gen::arbitrary<float>(), [](float f) { return static_cast<double>(f); }),
      rc::gen::map(rc::gen::arbitrary<uint16_t>(), half_bits_to_double),
      rc::gen::map(rc::gen::arbitrary<uint32_t>(),
                   [](uint32_t bits) { return static_cast<double>(std::bit_cast<float>(bits)); }),
      rc::gen::map(rc::gen::arbitrary<uint64_t>(),
                   [](uint64_t bits) { return std::bit_cast<double>(bits); }),
      rc::gen::element(0.0, -0.0, 1.5, 65504.0, 65505.0, 100000.0, 1.0e300, 5.960464477539063e-8,
                       static_cast<double>(FLT_MAX), std::numeric_limits<double>::denorm_min(),
                       std::numeric_limits<double>::max(), INFINITY, -INFINITY,
                       std::numeric_limits<double>::quiet_NaN()));
}

// A Unicode scalar value (no surrogates), mostly printable ASCII.
rc::Gen<uint32_t> gen_code_point() {
  return rc::gen::weightedOneOf<uint32_t>({
      {6, rc::gen::inRange<uint32_t>(0x20, 0x7f)},
      {1, rc::gen::inRange<uint32_t>(0, 0x80)},
      {1, rc::gen::inRange<uint32_t>(0x80, 0x800)},
      {1, rc::gen::inRange<uint32_t>(0x800, 0xd800)},
      {1, rc::gen::inRange<uint32_t>(0xe000, 0x10000)},
      {1, rc::gen::inRange<uint32_t>(0x10000, 0x110000)},
  });
}

std::string utf8(const std::vector<uint32_t>& code_points) {
  std::string out;
  for (uint32_t cp : code_points) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xc0 | cp >> 6));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xe0 | cp >> 12));
      out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out.push_back(static_cast<char>(0xf0 | cp >> 18));
      out.push_back(static_cast<char>(0x80 | (cp >> 12 & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3f)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }
  return out;
}

template <typename T>
rc::Gen<std::vector<T>> gen_vector(size_t max_size, rc::Gen<T> element) {
  return rc::gen::mapcat(rc::gen::inRange<size_t>(0, max_size + 1), [element](size_t n) {
    return rc::gen::container<std::vector<T>>(n, element);
  });
}

rc::Gen<Value> gen_integer() {
  return rc::gen::oneOf(
      rc::gen::map(rc::gen::arbitrary<uint64_t>(), &Value::uint),
      rc::gen::map(rc::gen::arbitrary<uint64_t>(), &Value::negative),
      rc::gen::map(rc::gen::arbitrary<int64_t>(), &Value::integer),
      // Small numbers, around the head-size boundaries (23/24, 255/256, ...).
      rc::gen::map(rc::gen::inRange<int64_t>(-300, 300), &Value::integer),
      rc::gen::map(rc::gen::element<uint64_t>(23, 24, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff,
                                              0x100000000, std::numeric_limits<uint64_t>::max()),
                   &Value::uint));
}

rc::Gen<Value> gen_scalar() {
  return rc::gen::oneOf(
      gen_integer(),
      rc::gen::map(gen_vector<uint8_t>(kLongStringMax, rc::gen::arbitrary<uint8_t>()),
                   [](Bytes b) { return Value::bytes(std::move(b)); }),
      rc::gen::map(gen_vector<uint32_t>(kLongStringMax, gen_code_point()),
                   [](const std::vector<uint32_t>& cps) { return Value::text(utf8(cps)); }),
      rc::gen::map(rc::gen::arbitrary<bool>(), &Value::boolean),
      rc::gen::element(Value::null(), Value::undefined()),
      rc::gen::map(gen_double(), &Value::float64));
}

// Keeps the first pair for each key: duplicate keys cannot be encoded.
Value unique_map(Map pairs) {
  Map map;
  std::vector<Bytes> seen;
  for (auto& pair : pairs) {
    Bytes key = encode(pair.first);
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) continue;
    seen.push_back(std::move(key));
    map.push_back(std::move(pair));
  }
  return Value::map(std::move(map));
}

// Any Value with at most `depth` levels of nested arrays, maps and tags.
rc::Gen<Value> gen_value(int depth) {
  if (depth == 0) return gen_scalar();
  const rc::Gen<Value> child = gen_value(depth - 1);
  return rc::gen::weightedOneOf<Value>({
      {4, gen_scalar()},
      {2, rc::gen::map(gen_vector<Value>(kMaxChildren, child), &Value::array)},
      {2,
       rc::gen::map(gen_vector<std::pair<Value, Value>>(kMaxChildren, rc::gen::pair(child, child)),
                    unique_map)},
      {1, rc::gen::apply(&Value::tag, rc::gen::arbitrary<uint64_t>(), child)},
  });
}

bool contains_nan(const Value& value) {
  switch (value.type()) {
    case Type::kFloat:
      return std::isnan(value.as_float());
    case Type::kArray:
      return std::any_of(value.as_array().begin(), value.as_array().end(), contains_nan);
    case Type::kMap:
      return std::any_of(value.as_map().begin(), value.as_map().end(), [](const auto& pair) {
        return contains_nan(pair.first) || contains_nan(pair.second);
      });
    case Type::kTag:
      return contains_nan(value.tag_content());
    default:
      return false;
  }
}

// The same value with every map's pairs in a random order.
Value shuffled(const Value& value, std::mt19937_64& random) {
  switch (value.type()) {
    case Type::kArray: {
      Array array;
      for (const Value& element : value.as_array()) array.push_back(shuffled(element, random));
      return Value::array(std::move(array));
    }
    case Type::kMap: {
      Map map;
      for (const auto& [key, element] : value.as_map()) {
        map.emplace_back(shuffled(key, random), shuffled(element, random));
      }
      std::shuffle(map.begin(), map.end(), random);
      return Value::map(std::move(map));
    }
    case Type::kTag:
      return Value::tag(value.tag_number(), shuffled(value.tag_content(), random));
    default:
      return value;
  }
}

DecodeOptions lax() {
  DecodeOptions options;
  options.require_deterministic = false;
  return options;
}

// The determinism property for one input: a strict decode succeeds only on
// the unique encoding of its value; a lax decode yields a value whose
// deterministic encoding decodes strictly to the same value.
void check_bytes(const Bytes& input) {
  const auto strict = decode(input);
  if (strict.ok()) RC_ASSERT(encode(*strict) == input);
  const auto loose = decode(input, lax());
  if (strict.ok()) {
    RC_ASSERT(loose.ok());
    RC_ASSERT(*loose == *strict);
  }
  if (loose.ok()) {
    const Bytes canonical = encode(*loose);
    const auto again = decode(canonical);
    RC_ASSERT(again.ok());
    RC_ASSERT(*again == *loose);
  }
}

RC_GTEST_PROP(CborProperty, EncodingIsAFixedPointOfDecodeEncode, ()) {
  const Value value = *gen_value(kMaxDepth);
  const Bytes encoded = encode(value);
  const auto decoded = decode(encoded);
  RC_ASSERT(decoded.ok());
  RC_ASSERT(encode(*decoded) == encoded);
}

RC_GTEST_PROP(CborProperty, DecodeInvertsEncodeWithoutNaN, ()) {
  const Value value = *gen_value(kMaxDepth);
  RC_PRE(!contains_nan(value));
  const auto decoded = decode(encode(value));
  RC_ASSERT(decoded.ok());
  RC_ASSERT(*decoded == value);
}

// With NaN too, since equality treats all NaNs as one value (as the encoding
// does).
RC_GTEST_PROP(CborProperty, DecodeInvertsEncodeUpToNaNPayloads, ()) {
  const Value value = *gen_value(kMaxDepth);
  const auto decoded = decode(encode(value));
  RC_ASSERT(decoded.ok());
  RC_ASSERT(*decoded == value);
}

RC_GTEST_PROP(CborProperty, MapEncodingIgnoresInsertionOrder, (uint64_t seed)) {
  const Value value = *gen_value(kMaxDepth);
  std::mt19937_64 random(seed);
  const Value reordered = shuffled(value, random);
  RC_ASSERT(encode(reordered) == encode(value));
  RC_ASSERT(reordered == value);
}

RC_GTEST_PROP(CborProperty, RandomBytesDecodeOnlyIfCanonical, (const std::vector<uint8_t>& input)) {
  check_bytes(input);
}

// Random bytes rarely decode; mutating valid encodings explores the
// near-misses (a changed length, key, float width...) much better.
RC_GTEST_PROP(CborProperty, MutatedEncodingsDecodeOnlyIfCanonical, ()) {
  Bytes input = encode(*gen_value(kMaxDepth));
  const auto edits = *gen_vector<std::pair<size_t, uint8_t>>(
      3, rc::gen::pair(rc::gen::arbitrary<size_t>(), rc::gen::arbitrary<uint8_t>()));
  for (const auto& [position, byte] : edits) {
    switch (byte % 3) {
      case 0:
        input[position % input.size()] = byte;
        break;
      case 1:
        input.insert(input.begin() + static_cast<ptrdiff_t>(position % (input.size() + 1)), byte);
        break;
      default:
        if (input.size() > 1)
          input.erase(input.begin() + static_cast<ptrdiff_t>(position % input.size()));
    }
  }
  check_bytes(input);
}

}  // namespace
}  // namespace custos::cbor
