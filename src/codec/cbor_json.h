// Bridges between JSON (what people type and read) and CBOR (what is signed).
// Kept apart from cbor.h so that nlohmann/json is included only where needed.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "codec/cbor.h"

namespace custos::cbor {

// JSON -> CBOR: objects become maps with text keys, integers become
// unsigned/negative integers, other numbers become floats, strings text,
// and an object {"bstr": "<hex>"} (what to_json writes) a byte string.
// Refuses input nested deeper than limits::kCborDepthMax.
Result<Value> from_json(const nlohmann::json& json);

// CBOR -> JSON for display: byte strings become {"bstr": "<hex>"}, tags
// {"tag": n, "value": ...}, non-text map keys are written as their
// diagnostic notation. Lossy by design; never used for anything signed.
nlohmann::json to_json(const Value& value);

}  // namespace custos::cbor
