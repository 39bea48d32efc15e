// Deterministic CBOR codec. See cbor.h for the contract.
//
// Canonical choices that RFC 8949 leaves open, fixed here so that every value
// has exactly one accepted encoding:
//  - NaN (any payload, any sign) is encoded as the half-precision quiet NaN
//    f97e00; in deterministic mode every other NaN encoding is refused.
//  - Floats use the shortest of half/single/double that keeps the value
//    exactly (RFC 8949 section 4.2.1); -0.0 stays -0.0 (f98000). Integral
//    floats are NOT turned into integers: 1.0 is f93c00, not 01.
//  - Simple values other than false/true/null/undefined have no Value type
//    and are refused (custos never emits them).
// Value equality (operator==) means "has the same deterministic encoding":
// map pair order does not matter, all NaNs are equal, 0.0 != -0.0.
#include "codec/cbor.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstring>

namespace custos::cbor {

namespace {

// Major types (RFC 8949 section 3.1).
constexpr uint8_t kMajorUnsigned = 0;
constexpr uint8_t kMajorNegative = 1;
constexpr uint8_t kMajorBytes = 2;
constexpr uint8_t kMajorText = 3;
constexpr uint8_t kMajorArray = 4;
constexpr uint8_t kMajorMap = 5;
constexpr uint8_t kMajorTag = 6;
constexpr uint8_t kMajorSimple = 7;

// Additional information values (low five bits of the initial byte).
constexpr uint8_t kAiDirectMax = 23;  // argument is the value itself
constexpr uint8_t kAiOneByte = 24;
constexpr uint8_t kAiTwoBytes = 25;
constexpr uint8_t kAiFourBytes = 26;
constexpr uint8_t kAiEightBytes = 27;
constexpr uint8_t kAiReservedLast = 30;  // 28..30 are reserved
constexpr uint8_t kAiIndefinite = 31;

// Simple values (major type 7).
constexpr uint8_t kSimpleFalse = 20;
constexpr uint8_t kSimpleTrue = 21;
constexpr uint8_t kSimpleNull = 22;
constexpr uint8_t kSimpleUndefined = 23;
// Simple values below this must use the one-byte form (RFC 8949 section 3.3).
constexpr uint64_t kSimpleTwoByteMin = 32;

constexpr uint8_t kInitialFalse = 0xf4;
constexpr uint8_t kInitialTrue = 0xf5;
constexpr uint8_t kInitialNull = 0xf6;
constexpr uint8_t kInitialUndefined = 0xf7;
constexpr uint8_t kInitialHalf = 0xf9;
constexpr uint8_t kInitialSingle = 0xfa;
constexpr uint8_t kInitialDouble = 0xfb;

constexpr uint16_t kHalfCanonicalNaN = 0x7e00;
constexpr uint16_t kHalfSignBit = 0x8000;
constexpr uint16_t kHalfInfinity = 0x7c00;
constexpr int kHalfExponentBias = 15;
constexpr int kHalfMantissaBits = 10;
constexpr int kHalfExponentMin = -14;  // smallest normal exponent
constexpr int kHalfExponentMax = 15;
constexpr int kHalfSubnormalShift = 24;  // subnormal value = mantissa * 2^-24

uint8_t initial_byte(uint8_t major, uint8_t ai) {
  return static_cast<uint8_t>(major << 5 | ai);
}

void append_be(Bytes& out, uint64_t value, int width) {
  for (int shift = (width - 1) * 8; shift >= 0; shift -= 8) {
    out.push_back(static_cast<uint8_t>(value >> shift));
  }
}

uint64_t read_be(const uint8_t* data, int width) {
  uint64_t value = 0;
  for (int i = 0; i < width; ++i) value = value << 8 | data[i];
  return value;
}

// Head (initial byte + argument) in the shortest form.
void append_head(Bytes& out, uint8_t major, uint64_t argument) {
  if (argument <= kAiDirectMax) {
    out.push_back(initial_byte(major, static_cast<uint8_t>(argument)));
  } else if (argument <= 0xff) {
    out.push_back(initial_byte(major, kAiOneByte));
    append_be(out, argument, 1);
  } else if (argument <= 0xffff) {
    out.push_back(initial_byte(major, kAiTwoBytes));
    append_be(out, argument, 2);
  } else if (argument <= 0xffffffff) {
    out.push_back(initial_byte(major, kAiFourBytes));
    append_be(out, argument, 4);
  } else {
    out.push_back(initial_byte(major, kAiEightBytes));
    append_be(out, argument, 8);
  }
}

// --- Floating point ---------------------------------------------------------

double half_to_double(uint16_t half) {
  const int exponent = (half >> kHalfMantissaBits) & 0x1f;
  const int mantissa = half & 0x3ff;
  double magnitude;
  if (exponent == 0) {
    magnitude = std::ldexp(mantissa, -kHalfSubnormalShift);
  } else if (exponent != 0x1f) {
    magnitude = std::ldexp(mantissa + 1024, exponent - kHalfExponentBias - kHalfMantissaBits);
  } else {
    magnitude = mantissa == 0 ? INFINITY : NAN;
  }
  return (half & kHalfSignBit) ? -magnitude : magnitude;
}

// The half-precision bits holding exactly `d`, if any. NaN is not handled.
std::optional<uint16_t> half_exact(double d) {
  const uint16_t sign = std::signbit(d) ? kHalfSignBit : 0;
  if (std::isinf(d)) return static_cast<uint16_t>(sign | kHalfInfinity);
  const double magnitude = std::fabs(d);
  if (magnitude == 0) return sign;
  const int exponent = std::ilogb(magnitude);
  if (exponent > kHalfExponentMax) return std::nullopt;
  // Scaling by a power of two is exact here, so "is the scaled value an
  // integer" is exactly "does the mantissa fit in half precision".
  if (exponent >= kHalfExponentMin) {
    const double mantissa = std::ldexp(magnitude, kHalfMantissaBits - exponent);  // [1024, 2048)
    if (mantissa != std::floor(mantissa)) return std::nullopt;
    return static_cast<uint16_t>(sign | (exponent + kHalfExponentBias) << kHalfMantissaBits |
                                 (static_cast<int>(mantissa) - 1024));
  }
  const double mantissa = std::ldexp(magnitude, kHalfSubnormalShift);  // < 1024
  if (mantissa != std::floor(mantissa)) return std::nullopt;
  return static_cast<uint16_t>(sign | static_cast<int>(mantissa));
}

// The single-precision bits holding exactly `d`, if any. NaN is not handled.
std::optional<uint32_t> single_exact(double d) {
  if (!std::isinf(d) && std::fabs(d) > FLT_MAX) return std::nullopt;
  const float f = static_cast<float>(d);
  if (static_cast<double>(f) != d) return std::nullopt;
  return std::bit_cast<uint32_t>(f);
}

void append_float(Bytes& out, double d) {
  if (std::isnan(d)) {
    out.push_back(kInitialHalf);
    append_be(out, kHalfCanonicalNaN, 2);
  } else if (auto half = half_exact(d)) {
    out.push_back(kInitialHalf);
    append_be(out, *half, 2);
  } else if (auto single = single_exact(d)) {
    out.push_back(kInitialSingle);
    append_be(out, *single, 4);
  } else {
    out.push_back(kInitialDouble);
    append_be(out, std::bit_cast<uint64_t>(d), 8);
  }
}

bool same_float(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::bit_cast<uint64_t>(a) == std::bit_cast<uint64_t>(b);
}

// --- Helpers shared by encoder and decoder ----------------------------------

// Bytewise lexicographic order, a shorter prefix first (RFC 8949 4.2.1).
int compare_bytes(ByteView a, ByteView b) {
  const size_t common = std::min(a.size(), b.size());
  if (common != 0) {
    const int c = std::memcmp(a.data(), b.data(), common);
    if (c != 0) return c;
  }
  if (a.size() == b.size()) return 0;
  return a.size() < b.size() ? -1 : 1;
}

// Index of the first byte that breaks UTF-8 (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or npos when `text` is valid.
size_t find_invalid_utf8(ByteView text) {
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t lead = text[i];
    if (lead < 0x80) {
      ++i;
      continue;
    }
    size_t length;
    uint8_t second_min = 0x80;
    uint8_t second_max = 0xbf;
    if (lead >= 0xc2 && lead <= 0xdf) {
      length = 2;
    } else if (lead >= 0xe0 && lead <= 0xef) {
      length = 3;
      if (lead == 0xe0) second_min = 0xa0;  // overlong
      if (lead == 0xed) second_max = 0x9f;  // surrogates
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      length = 4;
      if (lead == 0xf0) second_min = 0x90;  // overlong
      if (lead == 0xf4) second_max = 0x8f;  // above U+10FFFF
    } else {
      return i;
    }
    // A sequence cut short by the end of the string is reported at its lead.
    if (n - i < length) return i;
    if (text[i + 1] < second_min || text[i + 1] > second_max) return i + 1;
    for (size_t k = 2; k < length; ++k) {
      if ((text[i + k] & 0xc0) != 0x80) return i + k;
    }
    i += length;
  }
  return std::string_view::npos;
}

const char* major_name(uint8_t major) {
  switch (major) {
    case kMajorUnsigned:
      return "unsigned integer";
    case kMajorNegative:
      return "negative integer";
    case kMajorBytes:
      return "byte string length";
    case kMajorText:
      return "text string length";
    case kMajorArray:
      return "array length";
    case kMajorMap:
      return "map length";
    case kMajorTag:
      return "tag number";
    default:
      return "simple value";
  }
}

// --- Decoder ----------------------------------------------------------------

class Decoder {
 public:
  Decoder(ByteView input, const DecodeOptions& options) : in_(input), options_(options) {}

  Result<Value> item(size_t depth);
  size_t position() const { return pos_; }

 private:
  struct Head {
    size_t offset;  // of the initial byte
    uint8_t major;
    uint8_t ai;  // additional information: the low five bits
    uint64_t argument;
  };

  size_t remaining() const { return in_.size() - pos_; }
  bool deterministic() const { return options_.require_deterministic; }

  Result<Head> read_head();
  Status count_item(size_t offset);
  Status enter_container(const Head& head, size_t depth);
  Status refuse_indefinite(const Head& head);
  Result<Value> string_item(const Head& head);
  Result<Value> array_item(const Head& head, size_t depth);
  Result<Value> map_item(const Head& head, size_t depth);
  Result<Value> simple_item(const Head& head);
  Result<Value> float_item(const Head& head);
  Status check_unique_keys(const Map& map, const std::vector<size_t>& key_offsets);

  ByteView in_;
  const DecodeOptions& options_;
  size_t pos_ = 0;
  size_t items_ = 0;
};

Status malformed(size_t offset, const std::string& rule) {
  return error(ErrorCode::kMalformed, "offset " + std::to_string(offset) + ": " + rule);
}

Result<Decoder::Head> Decoder::read_head() {
  Head head{pos_, 0, 0, 0};
  if (remaining() == 0) return malformed(pos_, "unexpected end of input, expected a data item");
  const uint8_t initial = in_[pos_++];
  head.major = initial >> 5;
  head.ai = initial & 0x1f;
  if (head.ai <= kAiDirectMax) {
    head.argument = head.ai;
    return head;
  }
  if (head.ai > kAiReservedLast) return head;  // indefinite / break: caller decides
  if (head.ai > kAiEightBytes) {
    return malformed(head.offset,
                     "reserved additional information value " + std::to_string(head.ai));
  }
  const int width = 1 << (head.ai - kAiOneByte);
  if (remaining() < static_cast<size_t>(width)) {
    // Major type 7 heads with a 2-, 4- or 8-byte argument are floats.
    const char* what =
        head.major == kMajorSimple && head.ai != kAiOneByte ? "float" : major_name(head.major);
    return malformed(head.offset, "truncated: " + std::string(what) + " needs " +
                                      std::to_string(width) + " argument bytes, " +
                                      std::to_string(remaining()) + " remain");
  }
  head.argument = read_be(in_.data() + pos_, width);
  pos_ += width;
  // Major type 7 arguments are floats or simple values, checked separately.
  if (deterministic() && head.major != kMajorSimple) {
    static constexpr uint64_t kMinForWidth[] = {kAiDirectMax + 1, 0x100, 0x10000, 0x100000000};
    if (head.argument < kMinForWidth[head.ai - kAiOneByte]) {
      return malformed(head.offset, std::string(major_name(head.major)) + " " +
                                        std::to_string(head.argument) + " not in shortest form (" +
                                        std::to_string(width) + "-byte argument)");
    }
  }
  return head;
}

Status Decoder::count_item(size_t offset) {
  if (++items_ > options_.max_items) {
    return malformed(
        offset, "more than " + std::to_string(options_.max_items) + " data items (item limit)");
  }
  return Status::ok_status();
}

Status Decoder::enter_container(const Head& head, size_t depth) {
  if (depth + 1 > options_.max_depth) {
    return malformed(head.offset, "nesting deeper than " + std::to_string(options_.max_depth) +
                                      " levels (depth limit)");
  }
  return Status::ok_status();
}

// Additional information 31. Indefinite lengths are refused in both modes:
// they give one value many encodings and custos never streams CBOR. Without
// them no break byte can be legitimate either.
Status Decoder::refuse_indefinite(const Head& head) {
  switch (head.major) {
    case kMajorBytes:
      return malformed(head.offset, "indefinite-length byte string not allowed");
    case kMajorText:
      return malformed(head.offset, "indefinite-length text string not allowed");
    case kMajorArray:
      return malformed(head.offset, "indefinite-length array not allowed");
    case kMajorMap:
      return malformed(head.offset, "indefinite-length map not allowed");
    case kMajorSimple:
      return malformed(head.offset, "break byte (0xff) outside an indefinite-length item");
    default:
      return malformed(head.offset, "additional information 31 is not valid for major type " +
                                        std::to_string(head.major));
  }
}

Result<Value> Decoder::item(size_t depth) {
  CUSTOS_RETURN_IF_ERROR(count_item(pos_));
  CUSTOS_ASSIGN_OR_RETURN(const Head head, read_head());
  if (head.ai == kAiIndefinite) return refuse_indefinite(head);
  switch (head.major) {
    case kMajorUnsigned:
      return Value::uint(head.argument);
    case kMajorNegative:
      return Value::negative(head.argument);
    case kMajorBytes:
    case kMajorText:
      return string_item(head);
    case kMajorArray:
      return array_item(head, depth);
    case kMajorMap:
      return map_item(head, depth);
    case kMajorTag: {
      CUSTOS_RETURN_IF_ERROR(enter_container(head, depth));
      CUSTOS_ASSIGN_OR_RETURN(Value content, item(depth + 1));
      return Value::tag(head.argument, std::move(content));
    }
    default:
      return simple_item(head);
  }
}

Result<Value> Decoder::string_item(const Head& head) {
  const bool is_text = head.major == kMajorText;
  // Checked before anything is allocated: a hostile length costs nothing.
  if (head.argument > remaining()) {
    return malformed(head.offset, std::string(is_text ? "text" : "byte") + " string length " +
                                      std::to_string(head.argument) + " exceeds the " +
                                      std::to_string(remaining()) + " bytes remaining");
  }
  const ByteView content = in_.subspan(pos_, head.argument);
  const size_t content_offset = pos_;
  pos_ += head.argument;
  if (!is_text) return Value::bytes(content);
  const size_t bad = find_invalid_utf8(content);
  if (bad != std::string_view::npos) {
    return malformed(content_offset + bad, "invalid UTF-8 in text string starting at offset " +
                                               std::to_string(head.offset));
  }
  return Value::text(std::string(as_string_view(content)));
}

Result<Value> Decoder::array_item(const Head& head, size_t depth) {
  CUSTOS_RETURN_IF_ERROR(enter_container(head, depth));
  // Every element takes at least one byte and counts as one item, so these
  // bound the reservation below by what the input and the limit allow.
  if (head.argument > remaining()) {
    return malformed(head.offset, "array declares " + std::to_string(head.argument) +
                                      " elements but only " + std::to_string(remaining()) +
                                      " bytes remain");
  }
  if (head.argument > options_.max_items - std::min(items_, options_.max_items)) {
    return malformed(head.offset, "array declares " + std::to_string(head.argument) +
                                      " elements, more than the limit of " +
                                      std::to_string(options_.max_items) + " data items");
  }
  Array array;
  array.reserve(head.argument);
  for (uint64_t i = 0; i < head.argument; ++i) {
    CUSTOS_ASSIGN_OR_RETURN(Value element, item(depth + 1));
    array.push_back(std::move(element));
  }
  return Value::array(std::move(array));
}

Result<Value> Decoder::map_item(const Head& head, size_t depth) {
  CUSTOS_RETURN_IF_ERROR(enter_container(head, depth));
  // Each pair is two items of at least one byte each.
  if (head.argument > remaining() / 2) {
    return malformed(head.offset, "map declares " + std::to_string(head.argument) +
                                      " pairs but only " + std::to_string(remaining()) +
                                      " bytes remain");
  }
  if (head.argument > (options_.max_items - std::min(items_, options_.max_items)) / 2) {
    return malformed(head.offset, "map declares " + std::to_string(head.argument) +
                                      " pairs, more than the limit of " +
                                      std::to_string(options_.max_items) + " data items");
  }
  Map map;
  map.reserve(head.argument);
  std::vector<size_t> key_offsets;  // only needed for the non-deterministic check
  ByteView previous_key;
  for (uint64_t i = 0; i < head.argument; ++i) {
    const size_t key_offset = pos_;
    CUSTOS_ASSIGN_OR_RETURN(Value key, item(depth + 1));
    if (deterministic()) {
      // In deterministic mode the key bytes are its deterministic encoding, so
      // comparing them with the previous key checks order and uniqueness at
      // once, without re-encoding.
      const ByteView key_bytes = in_.subspan(key_offset, pos_ - key_offset);
      if (i > 0) {
        const int order = compare_bytes(previous_key, key_bytes);
        if (order == 0) return malformed(key_offset, "duplicate map key");
        if (order > 0) return malformed(key_offset, "map keys not in deterministic order");
      }
      previous_key = key_bytes;
    } else {
      key_offsets.push_back(key_offset);
    }
    CUSTOS_ASSIGN_OR_RETURN(Value value, item(depth + 1));
    map.emplace_back(std::move(key), std::move(value));
  }
  if (!deterministic()) CUSTOS_RETURN_IF_ERROR(check_unique_keys(map, key_offsets));
  return Value::map(std::move(map));
}

// Keys may be written in non-shortest forms here, so compare their
// deterministic re-encodings; sorting makes this O(n log n).
Status Decoder::check_unique_keys(const Map& map, const std::vector<size_t>& key_offsets) {
  if (map.size() < 2) return Status::ok_status();
  struct Key {
    Bytes encoded;
    size_t offset;
  };
  std::vector<Key> keys;
  keys.reserve(map.size());
  for (size_t i = 0; i < map.size(); ++i) keys.push_back({encode(map[i].first), key_offsets[i]});
  std::sort(keys.begin(), keys.end(), [](const Key& a, const Key& b) {
    const int order = compare_bytes(a.encoded, b.encoded);
    return order != 0 ? order < 0 : a.offset < b.offset;
  });
  for (size_t i = 1; i < keys.size(); ++i) {
    if (keys[i - 1].encoded == keys[i].encoded)
      return malformed(keys[i].offset, "duplicate map key");
  }
  return Status::ok_status();
}

Result<Value> Decoder::simple_item(const Head& head) {
  switch (head.ai) {
    case kSimpleFalse:
      return Value::boolean(false);
    case kSimpleTrue:
      return Value::boolean(true);
    case kSimpleNull:
      return Value::null();
    case kSimpleUndefined:
      return Value::undefined();
    case kAiTwoBytes:
    case kAiFourBytes:
    case kAiEightBytes:
      return float_item(head);
    case kAiOneByte:
      if (head.argument < kSimpleTwoByteMin) {
        return malformed(head.offset, "simple value " + std::to_string(head.argument) +
                                          " must be encoded in one byte");
      }
      [[fallthrough]];
    default:
      return malformed(head.offset, "unsupported simple value " + std::to_string(head.argument));
  }
}

Result<Value> Decoder::float_item(const Head& head) {
  double d;
  if (head.ai == kAiTwoBytes) {
    d = half_to_double(static_cast<uint16_t>(head.argument));
  } else if (head.ai == kAiFourBytes) {
    d = static_cast<double>(std::bit_cast<float>(static_cast<uint32_t>(head.argument)));
  } else {
    d = std::bit_cast<double>(head.argument);
  }
  if (!deterministic()) return Value::float64(d);
  if (std::isnan(d)) {
    if (head.ai != kAiTwoBytes || head.argument != kHalfCanonicalNaN) {
      return malformed(head.offset, "NaN not in its deterministic form f97e00");
    }
  } else if (head.ai != kAiTwoBytes && half_exact(d)) {
    return malformed(head.offset, "float not in shortest form (fits half precision)");
  } else if (head.ai == kAiEightBytes && single_exact(d)) {
    return malformed(head.offset, "float not in shortest form (fits single precision)");
  }
  return Value::float64(d);
}

// --- Encoder ----------------------------------------------------------------

void encode_map(const Map& map, Bytes& out) {
  append_head(out, kMajorMap, map.size());
  // Encode pairs in insertion order straight into `out`; only when the keys
  // turn out unsorted are the pairs copied out and written back in order.
  struct Span {
    size_t key_begin;
    size_t key_end;
    size_t end;
  };
  const size_t base = out.size();
  std::vector<Span> spans;
  spans.reserve(map.size());
  bool sorted = true;
  for (const auto& [key, value] : map) {
    Span span{out.size(), 0, 0};
    encode_to(key, out);
    span.key_end = out.size();
    encode_to(value, out);
    span.end = out.size();
    if (!spans.empty()) {
      const Span& prev = spans.back();
      const int order =
          compare_bytes(ByteView(out).subspan(prev.key_begin, prev.key_end - prev.key_begin),
                        ByteView(out).subspan(span.key_begin, span.key_end - span.key_begin));
      assert(order != 0 && "duplicate map key");
      if (order > 0) sorted = false;
    }
    spans.push_back(span);
  }
  if (sorted) return;
  const Bytes pairs(out.begin() + static_cast<ptrdiff_t>(base), out.end());
  auto key_of = [&](const Span& s) {
    return ByteView(pairs).subspan(s.key_begin - base, s.key_end - s.key_begin);
  };
  std::sort(spans.begin(), spans.end(),
            [&](const Span& a, const Span& b) { return compare_bytes(key_of(a), key_of(b)) < 0; });
  out.resize(base);
  for (size_t i = 0; i < spans.size(); ++i) {
    assert((i == 0 || compare_bytes(key_of(spans[i - 1]), key_of(spans[i])) != 0) &&
           "duplicate map key");
    out.insert(out.end(), pairs.begin() + static_cast<ptrdiff_t>(spans[i].key_begin - base),
               pairs.begin() + static_cast<ptrdiff_t>(spans[i].end - base));
  }
}

// --- Equality ---------------------------------------------------------------

bool maps_equal(const Map& a, const Map& b) {
  if (a.size() != b.size()) return false;
  if (std::equal(a.begin(), a.end(), b.begin())) return true;
  // Pair order is not part of the value: compare in deterministic key order.
  auto sorted_keys = [](const Map& m) {
    std::vector<std::pair<Bytes, size_t>> keys;
    keys.reserve(m.size());
    for (size_t i = 0; i < m.size(); ++i) keys.emplace_back(encode(m[i].first), i);
    std::sort(keys.begin(), keys.end());
    return keys;
  };
  const auto keys_a = sorted_keys(a);
  const auto keys_b = sorted_keys(b);
  for (size_t i = 0; i < keys_a.size(); ++i) {
    if (keys_a[i].first != keys_b[i].first) return false;
    if (a[keys_a[i].second].second != b[keys_b[i].second].second) return false;
  }
  return true;
}

// --- Diagnostic notation ----------------------------------------------------

void append_diagnostic_float(double d, std::string& out) {
  if (std::isnan(d)) {
    out += "NaN";
    return;
  }
  if (std::isinf(d)) {
    out += d < 0 ? "-Infinity" : "Infinity";
    return;
  }
  // Like JavaScript's Number#toString: plain digits for "ordinary" magnitudes,
  // exponent form otherwise; always with a fraction so it reads as a float.
  static constexpr double kFixedMin = 1e-6;
  static constexpr double kFixedMax = 1e21;
  const double magnitude = std::fabs(d);
  const bool fixed = magnitude == 0 || (magnitude >= kFixedMin && magnitude < kFixedMax);
  char buffer[64];
  const auto result =
      std::to_chars(buffer, buffer + sizeof(buffer), d,
                    fixed ? std::chars_format::fixed : std::chars_format::scientific);
  assert(result.ec == std::errc());
  std::string number(buffer, result.ptr);
  const size_t e = number.find('e');
  std::string mantissa = number.substr(0, e);
  if (mantissa.find('.') == std::string::npos) mantissa += ".0";
  out += mantissa;
  if (e == std::string::npos) return;
  // "e-08" -> "e-8", as RFC 8949 writes exponents.
  out += number.substr(e, 2);
  const size_t digits = number.find_first_not_of('0', e + 2);
  out += digits == std::string::npos ? "0" : number.substr(digits);
}

void append_diagnostic_text(const std::string& text, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xf]);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

void append_diagnostic(const Value& value, std::string& out) {
  switch (value.type()) {
    case Type::kUnsigned:
      out += std::to_string(value.as_uint());
      break;
    case Type::kNegative: {
      const uint64_t n = value.negative_argument();
      // -1 - n; for n = 2^64-1 the magnitude does not fit in uint64_t.
      out += n == UINT64_MAX ? "-18446744073709551616" : "-" + std::to_string(n + 1);
      break;
    }
    case Type::kBytes:
      out += "h'" + to_hex(value.as_bytes()) + "'";
      break;
    case Type::kText:
      append_diagnostic_text(value.as_text(), out);
      break;
    case Type::kArray: {
      out.push_back('[');
      const char* separator = "";
      for (const Value& element : value.as_array()) {
        out += separator;
        append_diagnostic(element, out);
        separator = ", ";
      }
      out.push_back(']');
      break;
    }
    case Type::kMap: {
      out.push_back('{');
      const char* separator = "";
      for (const auto& [key, element] : value.as_map()) {
        out += separator;
        append_diagnostic(key, out);
        out += ": ";
        append_diagnostic(element, out);
        separator = ", ";
      }
      out.push_back('}');
      break;
    }
    case Type::kTag:
      out += std::to_string(value.tag_number()) + "(";
      append_diagnostic(value.tag_content(), out);
      out.push_back(')');
      break;
    case Type::kBool:
      out += value.as_bool() ? "true" : "false";
      break;
    case Type::kNull:
      out += "null";
      break;
    case Type::kUndefined:
      out += "undefined";
      break;
    case Type::kFloat:
      append_diagnostic_float(value.as_float(), out);
      break;
  }
}

}  // namespace

// --- Value ------------------------------------------------------------------

Value::Value() : type_(Type::kNull) {}

Value Value::uint(uint64_t v) {
  Value value;
  value.type_ = Type::kUnsigned;
  value.u_ = v;
  return value;
}

Value Value::integer(int64_t v) {
  // -1 - v cannot overflow for negative v, and equals the major type 1 argument.
  return v >= 0 ? uint(static_cast<uint64_t>(v)) : negative(static_cast<uint64_t>(-1 - v));
}

Value Value::negative(uint64_t n) {
  Value value;
  value.type_ = Type::kNegative;
  value.u_ = n;
  return value;
}

Value Value::bytes(Bytes v) {
  Value value;
  value.type_ = Type::kBytes;
  value.bytes_ = std::move(v);
  return value;
}

Value Value::bytes(ByteView v) {
  return bytes(Bytes(v.begin(), v.end()));
}

Value Value::text(std::string v) {
  Value value;
  value.type_ = Type::kText;
  value.text_ = std::move(v);
  return value;
}

Value Value::array(Array v) {
  Value value;
  value.type_ = Type::kArray;
  value.array_ = std::move(v);
  return value;
}

Value Value::map(Map v) {
  Value value;
  value.type_ = Type::kMap;
  value.map_ = std::move(v);
  return value;
}

Value Value::tag(uint64_t tag, Value content) {
  Value value;
  value.type_ = Type::kTag;
  value.u_ = tag;
  value.tagged_ = std::make_shared<Value>(std::move(content));
  return value;
}

Value Value::boolean(bool v) {
  Value value;
  value.type_ = Type::kBool;
  value.u_ = v ? 1 : 0;
  return value;
}

Value Value::null() {
  return Value();
}

Value Value::undefined() {
  Value value;
  value.type_ = Type::kUndefined;
  return value;
}

Value Value::float64(double v) {
  Value value;
  value.type_ = Type::kFloat;
  value.f_ = v;
  return value;
}

uint64_t Value::as_uint() const {
  assert(type_ == Type::kUnsigned);
  return u_;
}

uint64_t Value::negative_argument() const {
  assert(type_ == Type::kNegative);
  return u_;
}

std::optional<int64_t> Value::as_int64() const {
  constexpr uint64_t kInt64Max = static_cast<uint64_t>(INT64_MAX);
  if (type_ == Type::kUnsigned && u_ <= kInt64Max) return static_cast<int64_t>(u_);
  if (type_ == Type::kNegative && u_ <= kInt64Max) return -1 - static_cast<int64_t>(u_);
  return std::nullopt;
}

const Bytes& Value::as_bytes() const {
  assert(type_ == Type::kBytes);
  return bytes_;
}

const std::string& Value::as_text() const {
  assert(type_ == Type::kText);
  return text_;
}

const Array& Value::as_array() const {
  assert(type_ == Type::kArray);
  return array_;
}

Array& Value::as_array() {
  assert(type_ == Type::kArray);
  return array_;
}

const Map& Value::as_map() const {
  assert(type_ == Type::kMap);
  return map_;
}

Map& Value::as_map() {
  assert(type_ == Type::kMap);
  return map_;
}

uint64_t Value::tag_number() const {
  assert(type_ == Type::kTag);
  return u_;
}

const Value& Value::tag_content() const {
  assert(type_ == Type::kTag && tagged_);
  return *tagged_;
}

bool Value::as_bool() const {
  assert(type_ == Type::kBool);
  return u_ != 0;
}

double Value::as_float() const {
  assert(type_ == Type::kFloat);
  return f_;
}

const Value* Value::find(int64_t key) const {
  if (type_ != Type::kMap) return nullptr;
  for (const auto& [k, v] : map_) {
    if (k.is_integer() && k.as_int64() == key) return &v;
  }
  return nullptr;
}

const Value* Value::find(std::string_view key) const {
  if (type_ != Type::kMap) return nullptr;
  for (const auto& [k, v] : map_) {
    if (k.type_ == Type::kText && k.text_ == key) return &v;
  }
  return nullptr;
}

bool Value::operator==(const Value& other) const {
  if (type_ != other.type_) return false;
  switch (type_) {
    case Type::kUnsigned:
    case Type::kNegative:
    case Type::kBool:
      return u_ == other.u_;
    case Type::kNull:
    case Type::kUndefined:
      return true;
    case Type::kBytes:
      return bytes_ == other.bytes_;
    case Type::kText:
      return text_ == other.text_;
    case Type::kArray:
      return array_ == other.array_;
    case Type::kMap:
      return maps_equal(map_, other.map_);
    case Type::kTag:
      return u_ == other.u_ && *tagged_ == *other.tagged_;
    case Type::kFloat:
      return same_float(f_, other.f_);
  }
  return false;
}

// --- Encoding / decoding entry points ---------------------------------------

Bytes encode(const Value& value) {
  Bytes out;
  encode_to(value, out);
  return out;
}

void encode_to(const Value& value, Bytes& out) {
  switch (value.type()) {
    case Type::kUnsigned:
      append_head(out, kMajorUnsigned, value.as_uint());
      break;
    case Type::kNegative:
      append_head(out, kMajorNegative, value.negative_argument());
      break;
    case Type::kBytes: {
      const Bytes& bytes = value.as_bytes();
      append_head(out, kMajorBytes, bytes.size());
      out.insert(out.end(), bytes.begin(), bytes.end());
      break;
    }
    case Type::kText: {
      const std::string& text = value.as_text();
      append_head(out, kMajorText, text.size());
      out.insert(out.end(), text.begin(), text.end());
      break;
    }
    case Type::kArray:
      append_head(out, kMajorArray, value.as_array().size());
      for (const Value& element : value.as_array()) encode_to(element, out);
      break;
    case Type::kMap:
      encode_map(value.as_map(), out);
      break;
    case Type::kTag:
      append_head(out, kMajorTag, value.tag_number());
      encode_to(value.tag_content(), out);
      break;
    case Type::kBool:
      out.push_back(value.as_bool() ? kInitialTrue : kInitialFalse);
      break;
    case Type::kNull:
      out.push_back(kInitialNull);
      break;
    case Type::kUndefined:
      out.push_back(kInitialUndefined);
      break;
    case Type::kFloat:
      append_float(out, value.as_float());
      break;
  }
}

Result<Value> decode_prefix(ByteView input, size_t* consumed, const DecodeOptions& options) {
  Decoder decoder(input, options);
  CUSTOS_ASSIGN_OR_RETURN(Value value, decoder.item(0));
  if (consumed != nullptr) *consumed = decoder.position();
  return value;
}

Result<Value> decode(ByteView input, const DecodeOptions& options) {
  size_t consumed = 0;
  CUSTOS_ASSIGN_OR_RETURN(Value value, decode_prefix(input, &consumed, options));
  if (consumed != input.size()) {
    return malformed(consumed, "trailing bytes after the data item (" +
                                   std::to_string(input.size() - consumed) + " unused)");
  }
  return value;
}

std::string diagnostic(const Value& value) {
  std::string out;
  append_diagnostic(value, out);
  return out;
}

}  // namespace custos::cbor
