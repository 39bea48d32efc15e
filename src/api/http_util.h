// Helpers shared by the HTTP routes (router.cc and the domain routes):
// JSON and byte responses, query parameters, times, and the JSON shapes of
// ledger objects (docs/api.md).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "api/router.h"
#include "ledger/ledger.h"

namespace custos::api {

Response json_response(const nlohmann::json& body, int status = 200);
Response bytes_response(Bytes bytes, const char* content_type);
bool accepts(const Request& r, std::string_view type);
// RFC 3339 UTC with milliseconds: 2026-11-23T10:00:00.000Z
std::string rfc3339(uint64_t ms);
Result<uint64_t> parse_uint(const std::string& text, const char* what);
// Milliseconds since the epoch, or an RFC 3339 UTC time such as 2026-11-23T10:00:00Z.
Result<uint64_t> parse_time_ms(const std::string& text, const char* what);
const std::string* query_param(const Request& r, const char* name);
nlohmann::json gap_json(const ledger::SequenceOutcome& gap);
nlohmann::json registered_json(const node::Submission& s);
// Typical size of one registered result, to size a batch answer once.
inline constexpr size_t kRegisteredJsonBytes = 128;
// registered_json(s).dump(), byte for byte, appended without a JSON tree.
void append_registered_json(std::string& out, const node::Submission& s);
// An entry's metadata; with_statement adds the payload (as JSON) and the
// statement bytes (base64).
nlohmann::json entry_json(const ledger::EntryInfo& e, bool with_statement);
nlohmann::json block_json(const ledger::BlockRecord& b);
// Route parts: "/v1/entries/abc/receipt" -> {"v1", "entries", "abc", "receipt"}.
std::vector<std::string> split_path(const std::string& path);

}  // namespace custos::api
