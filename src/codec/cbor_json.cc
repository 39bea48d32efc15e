// JSON <-> CBOR bridges. See cbor_json.h.
//
// to_json choices (display only, lossy):
//  - negative integers below INT64_MIN become JSON floats (nearest double);
//  - NaN and the infinities, which JSON cannot hold, become the strings
//    "NaN", "Infinity" and "-Infinity";
//  - undefined becomes null;
//  - when two CBOR keys render to the same JSON key, the later one wins.
#include "codec/cbor_json.h"

#include <cmath>
#include <nlohmann/json.hpp>

namespace custos::cbor {

namespace {

using nlohmann::json;

Result<Value> from_json_at(const json& node, size_t depth);

// Containers nest one level deeper than their parent; the top-level value is
// at depth 0, so kCborDepthMax nested arrays/objects are allowed, one more is
// not (the same rule decode() applies).
Status check_depth(size_t depth) {
  if (depth + 1 > limits::kCborDepthMax) {
    return error(ErrorCode::kMalformed, "JSON nested deeper than " +
                                            std::to_string(limits::kCborDepthMax) +
                                            " levels (depth limit)");
  }
  return Status::ok_status();
}

Result<Value> array_from_json(const json& node, size_t depth) {
  CUSTOS_RETURN_IF_ERROR(check_depth(depth));
  Array array;
  array.reserve(node.size());
  for (const json& element : node) {
    CUSTOS_ASSIGN_OR_RETURN(Value value, from_json_at(element, depth + 1));
    array.push_back(std::move(value));
  }
  return Value::array(std::move(array));
}

Result<Value> object_from_json(const json& node, size_t depth) {
  CUSTOS_RETURN_IF_ERROR(check_depth(depth));
  // {"bstr": "<hex>"} is a byte string: the form to_json writes, so digests
  // and keys can be typed in JSON and read back.
  if (node.size() == 1 && node.contains("bstr") && node["bstr"].is_string()) {
    auto bytes = from_hex(node["bstr"].get<std::string>());
    if (!bytes.ok())
      return error(ErrorCode::kMalformed, "{\"bstr\": ...} must hold an even number of hex digits");
    return Value::bytes(std::move(bytes).value());
  }
  Map map;
  map.reserve(node.size());
  for (const auto& [key, element] : node.items()) {
    CUSTOS_ASSIGN_OR_RETURN(Value value, from_json_at(element, depth + 1));
    map.emplace_back(Value::text(key), std::move(value));
  }
  return Value::map(std::move(map));
}

Result<Value> from_json_at(const json& node, size_t depth) {
  switch (node.type()) {
    case json::value_t::null:
      return Value::null();
    case json::value_t::boolean:
      return Value::boolean(node.get<bool>());
    case json::value_t::number_integer:
      return Value::integer(node.get<int64_t>());
    case json::value_t::number_unsigned:
      return Value::uint(node.get<uint64_t>());
    case json::value_t::number_float:
      return Value::float64(node.get<double>());
    case json::value_t::string:
      return Value::text(node.get<std::string>());
    case json::value_t::binary:
      return Value::bytes(Bytes(node.get_binary()));
    case json::value_t::array:
      return array_from_json(node, depth);
    case json::value_t::object:
      return object_from_json(node, depth);
    case json::value_t::discarded:
      break;
  }
  return error(ErrorCode::kMalformed, "JSON value is discarded (not a value)");
}

json float_to_json(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d < 0 ? "-Infinity" : "Infinity";
  return d;
}

}  // namespace

Result<Value> from_json(const nlohmann::json& json) {
  return from_json_at(json, 0);
}

nlohmann::json to_json(const Value& value) {
  switch (value.type()) {
    case Type::kUnsigned:
      return value.as_uint();
    case Type::kNegative: {
      if (auto v = value.as_int64()) return *v;
      return -1.0 - static_cast<double>(value.negative_argument());
    }
    case Type::kBytes:
      return json{{"bstr", to_hex(value.as_bytes())}};
    case Type::kText:
      return value.as_text();
    case Type::kArray: {
      json out = json::array();
      for (const Value& element : value.as_array()) out.push_back(to_json(element));
      return out;
    }
    case Type::kMap: {
      json out = json::object();
      for (const auto& [key, element] : value.as_map()) {
        out[key.is(Type::kText) ? key.as_text() : diagnostic(key)] = to_json(element);
      }
      return out;
    }
    case Type::kTag:
      return json{{"tag", value.tag_number()}, {"value", to_json(value.tag_content())}};
    case Type::kBool:
      return value.as_bool();
    case Type::kNull:
    case Type::kUndefined:
      return nullptr;
    case Type::kFloat:
      return float_to_json(value.as_float());
  }
  return nullptr;
}

}  // namespace custos::cbor
