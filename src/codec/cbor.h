// Deterministic CBOR (RFC 8949 section 4.2.1 "core deterministic encoding").
//
// We write our own codec rather than use libcbor/tinycbor because custos must
// *refuse* anything that is not deterministically encoded (non-shortest
// integer or length forms, indefinite lengths, unsorted or duplicate map keys,
// non-shortest floats): statement bytes are hashed into the Merkle log and two
// encodings of one value must never both be accepted. The libraries in Debian
// decode such input without telling us. Bounded by depth and item limits so
// hostile input cannot exhaust the stack or memory.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/bytes.h"
#include "core/limits.h"
#include "core/status.h"

namespace custos::cbor {

enum class Type : uint8_t {
  kUnsigned,   // major type 0
  kNegative,   // major type 1: value is -1 - n
  kBytes,      // major type 2
  kText,       // major type 3 (must be valid UTF-8)
  kArray,      // major type 4
  kMap,        // major type 5
  kTag,        // major type 6
  kBool,       // simple 20/21
  kNull,       // simple 22
  kUndefined,  // simple 23
  kFloat,      // major type 7, half/single/double
};

class Value;
using Array = std::vector<Value>;
// Pairs in insertion order; encode() sorts them by encoded key bytes.
using Map = std::vector<std::pair<Value, Value>>;

class Value {
 public:
  Value();  // null
  static Value uint(uint64_t v);
  // Any int64: chooses major type 0 or 1.
  static Value integer(int64_t v);
  // Major type 1 with argument n, i.e. the value -1 - n (reaches -2^64).
  static Value negative(uint64_t n);
  static Value bytes(Bytes v);
  static Value bytes(ByteView v);
  static Value text(std::string v);
  static Value array(Array v);
  static Value map(Map v);
  static Value tag(uint64_t tag, Value content);
  static Value boolean(bool v);
  static Value null();
  static Value undefined();
  static Value float64(double v);

  Type type() const { return type_; }
  bool is(Type t) const { return type_ == t; }
  bool is_integer() const { return type_ == Type::kUnsigned || type_ == Type::kNegative; }

  // Accessors assert the type: check type() first.
  uint64_t as_uint() const;                 // kUnsigned
  uint64_t negative_argument() const;       // kNegative: n in -1 - n
  std::optional<int64_t> as_int64() const;  // kUnsigned/kNegative within int64 range
  const Bytes& as_bytes() const;
  const std::string& as_text() const;
  const Array& as_array() const;
  Array& as_array();
  const Map& as_map() const;
  Map& as_map();
  uint64_t tag_number() const;
  const Value& tag_content() const;
  bool as_bool() const;
  double as_float() const;

  // Map lookups (nullptr when absent or when this is not a map).
  const Value* find(int64_t key) const;
  const Value* find(std::string_view key) const;

  bool operator==(const Value& other) const;
  bool operator!=(const Value& other) const { return !(*this == other); }

 private:
  Type type_;
  uint64_t u_ = 0;  // unsigned value, negative argument, tag number, bool
  double f_ = 0;
  Bytes bytes_;
  std::string text_;
  Array array_;
  Map map_;
  std::shared_ptr<Value> tagged_;  // tag content
};

struct DecodeOptions {
  size_t max_depth = limits::kCborDepthMax;
  size_t max_items = limits::kCborItemsMax;
  // When false, accept any well-formed CBOR (still no indefinite lengths,
  // still bounded); used only for parts that are not hashed or signed.
  bool require_deterministic = true;
};

// Deterministic encoding. Map keys are sorted by their encoded bytes; floats
// take the shortest of half/single/double that keeps the value exactly.
// Duplicate map keys are a programmer error (asserted).
Bytes encode(const Value& value);
void encode_to(const Value& value, Bytes& out);

// Strict decoding of exactly one data item spanning all of `input`.
// Errors are kMalformed with a message naming the offset and the rule.
Result<Value> decode(ByteView input, const DecodeOptions& options = {});

// Like decode() but stops after the first item and reports how many bytes
// it used (for CBOR sequences).
Result<Value> decode_prefix(ByteView input, size_t* consumed, const DecodeOptions& options = {});

// RFC 8949 diagnostic notation, e.g. {1: -7, 4: h'01ab'} (for docs and the CLI).
std::string diagnostic(const Value& value);

// Small helpers for building headers and maps tersely.
inline Value text(std::string_view s) {
  return Value::text(std::string(s));
}
inline Value integer(int64_t v) {
  return Value::integer(v);
}

}  // namespace custos::cbor
