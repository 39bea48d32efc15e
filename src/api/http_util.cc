#include "api/http_util.h"

#include <charconv>
#include <cstdio>
#include <ctime>

#include "codec/cbor_json.h"
#include "core/time.h"

namespace custos::api {

using nlohmann::json;

Response json_response(const json& body, int status) {
  Response r;
  r.status = status;
  // Problem details echo the request path and method, which may be any
  // bytes: replace invalid UTF-8 (U+FFFD) rather than throw, which would turn
  // a 404 or 405 into a 500.
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

Response bytes_response(Bytes bytes, const char* content_type) {
  Response r;
  r.content_type = content_type;
  r.body.assign(bytes.begin(), bytes.end());
  return r;
}

bool accepts(const Request& r, std::string_view type) {
  return r.accept.find(type) != std::string::npos;
}

std::string rfc3339(uint64_t ms) {
  return rfc3339_ms(ms);
}

Result<uint64_t> parse_uint(const std::string& text, const char* what) {
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) {
    return error(ErrorCode::kInvalidArgument,
                 std::string("'") + what + "' must be an unsigned integer");
  }
  return v;
}

// Milliseconds since the epoch, or an RFC 3339 UTC time such as 2026-11-23T10:00:00Z.
Result<uint64_t> parse_time_ms(const std::string& text, const char* what) {
  if (!text.empty() && text.find('T') == std::string::npos) return parse_uint(text, what);
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  uint64_t ms = 0;
  if (end && *end == '.') {
    ++end;
    int digits = 0;
    while (*end >= '0' && *end <= '9') {
      if (digits < 3) ms = ms * 10 + static_cast<uint64_t>(*end - '0');
      ++digits;
      ++end;
    }
    for (; digits < 3; ++digits) ms *= 10;
  }
  if (!end || std::string_view(end) != "Z") {
    return error(ErrorCode::kInvalidArgument,
                 std::string("'") + what +
                     "' must be milliseconds since 1970 or a UTC time like 2026-11-23T10:00:00Z");
  }
  std::time_t secs = timegm(&tm);
  if (secs < 0)
    return error(ErrorCode::kInvalidArgument, std::string("'") + what + "' is before 1970");
  return static_cast<uint64_t>(secs) * 1000 + ms;
}

const std::string* query_param(const Request& r, const char* name) {
  auto it = r.query.find(name);
  return it == r.query.end() ? nullptr : &it->second;
}

json gap_json(const ledger::SequenceOutcome& gap) {
  return {{"expected", gap.expected}, {"got", gap.got}, {"missing", gap.got - gap.expected}};
}

json registered_json(const node::Submission& s) {
  json j = {{"id", to_hex(s.registered.id)},
            {"index", s.registered.index},
            {"height", s.registered.height},
            {"status", s.already_registered ? "already-registered" : "registered"}};
  if (s.registered.gap) j["sequence_gap"] = gap_json(*s.registered.gap);
  if (!s.registered.flags.empty()) j["flags"] = s.registered.flags;
  return j;
}

// The same object as registered_json(s).dump(), written directly: a batch
// answer holds up to kBatchStatementsMax of them, and building a JSON tree
// per statement cost more than the rest of the answer. Keys in the order
// nlohmann's std::map gives them (sorted), so both forms are byte-identical.
void append_registered_json(std::string& out, const node::Submission& s) {
  const auto number = [&](uint64_t v) { out += std::to_string(v); };
  out += '{';
  if (!s.registered.flags.empty()) {
    out += "\"flags\":";
    out += json(s.registered.flags).dump(-1, ' ', false, json::error_handler_t::replace);
    out += ',';
  }
  out += "\"height\":";
  number(s.registered.height);
  out += ",\"id\":\"";
  out += to_hex(s.registered.id);
  out += "\",\"index\":";
  number(s.registered.index);
  if (const auto& gap = s.registered.gap) {
    out += ",\"sequence_gap\":{\"expected\":";
    number(gap->expected);
    out += ",\"got\":";
    number(gap->got);
    out += ",\"missing\":";
    number(gap->got - gap->expected);
    out += '}';
  }
  out +=
      s.already_registered ? ",\"status\":\"already-registered\"}" : ",\"status\":\"registered\"}";
}

json entry_json(const ledger::EntryInfo& e, bool with_statement) {
  const auto& h = e.header;
  json j = {{"id", to_hex(e.id)},
            {"index", e.index},
            {"height", e.height},
            {"registered_ms", e.registered_ms},
            {"registered_at", rfc3339(e.registered_ms)},
            {"alg", crypto::algorithm_name(h.alg)},
            {"kid", to_hex(h.kid)},
            {"content_type", h.content_type},
            {"issuer", h.issuer},
            {"subject", h.subject},
            {"issued_at", h.issued_at_s},
            {"sequence", h.sequence}};
  if (e.gap) j["sequence_gap"] = gap_json(*e.gap);
  if (!e.refs.empty()) j["refs"] = e.refs;
  if (!e.flags.empty()) j["flags"] = e.flags;
  if (with_statement) {
    auto st = cose::parse_statement(e.statement);
    if (st.ok()) {
      auto payload = cbor::decode(st->payload());
      if (payload.ok())
        j["payload"] = cbor::to_json(*payload);
      else
        j["payload_base64"] = base64_encode(st->payload());
    }
    j["statement_base64"] = base64_encode(e.statement);
  }
  return j;
}

json block_json(const ledger::BlockRecord& b) {
  const auto& h = b.header;
  json j = {{"height", h.height},
            {"header_hash", to_hex(b.header_hash())},
            {"prev_hash", to_hex(h.prev_hash)},
            {"log_size", h.log_size},
            {"root", to_hex(h.root)},
            {"time_ms", h.time_ms},
            {"time", rfc3339(h.time_ms)},
            {"proposer", to_hex(h.proposer)},
            {"signer", to_hex(b.signer)},
            {"entries", h.entry_count},
            {"checkpoint_signature", to_hex(b.checkpoint_signature)},
            {"root_signature", to_hex(b.root_signature)}};
  if (h.genesis_hash) j["genesis_hash"] = to_hex(*h.genesis_hash);
  return j;
}

// Splits "/v1/entries/abc/receipt" into {"v1", "entries", "abc", "receipt"}.
std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) parts.push_back(path.substr(i, j - i));
    i = j;
  }
  return parts;
}

}  // namespace custos::api
