#include "api/router.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "api/domain_routes.h"
#include "api/http_util.h"
#include "codec/cbor_json.h"
#include "core/file.h"
#include "ledger/policy.h"

namespace custos::api {

using nlohmann::json;

namespace {

// The element count declared by a CBOR array head at the start of `body`
// (major type 4, RFC 8949 section 3), or nullopt if it does not start with one.
std::optional<uint64_t> declared_array_length(std::string_view body) {
  if (body.empty() || (static_cast<uint8_t>(body[0]) >> 5) != 4) return std::nullopt;
  const uint8_t info = static_cast<uint8_t>(body[0]) & 0x1f;
  if (info < 24) return info;
  if (info > 27) return std::nullopt;  // indefinite length or reserved
  const size_t width = size_t{1} << (info - 24);
  if (body.size() < 1 + width) return std::nullopt;
  uint64_t n = 0;
  for (size_t i = 1; i <= width; ++i) n = (n << 8) | static_cast<uint8_t>(body[i]);
  return n;
}

}  // namespace

int http_status_for(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
      return 200;
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kMalformed:
      return 400;
    case ErrorCode::kBadSignature:
    case ErrorCode::kUnknownKey:
    case ErrorCode::kRevokedKey:
    case ErrorCode::kPolicy:
      return 422;
    case ErrorCode::kReplay:
    case ErrorCode::kConflict:
      return 409;
    case ErrorCode::kTooLarge:
      return 413;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kUnavailable:
      return 503;
    case ErrorCode::kIo:
    case ErrorCode::kCorruption:
    case ErrorCode::kInternal:
      return 500;
  }
  return 500;
}

Response problem(int http_status, const std::string& type, const std::string& detail) {
  static const std::map<int, const char*> kTitles = {
      {400, "Bad Request"},           {404, "Not Found"},
      {405, "Method Not Allowed"},    {409, "Conflict"},
      {413, "Content Too Large"},     {415, "Unsupported Media Type"},
      {422, "Unprocessable Content"}, {500, "Internal Server Error"},
      {503, "Service Unavailable"}};
  auto it = kTitles.find(http_status);
  json body = {{"type", kProblemTypePrefix + type},
               {"title", it == kTitles.end() ? "Error" : it->second},
               {"status", http_status},
               {"detail", detail}};
  Response r = json_response(body, http_status);
  r.content_type = kContentTypeProblem;
  if (http_status == 503) r.headers["Retry-After"] = "1";
  return r;
}

Response problem(const Status& status) {
  return problem(http_status_for(status.code()), error_code_name(status.code()), status.message());
}

Response Router::handle(const Request& request) {
  Response response;
  try {
    response = route(request);
  } catch (const std::exception& e) {
    // Reaching here is a bug (we do not throw on bad input); answer and log.
    spdlog::error("{} {}: unexpected exception: {}", request.method, request.path, e.what());
    response = problem(500, "internal", "internal error");
  }
  node_.metrics().http_requests.fetch_add(1, std::memory_order_relaxed);
  int cls = response.status / 100;
  if (cls >= 1 && cls <= 5)
    node_.metrics().http_responses_by_class[cls].fetch_add(1, std::memory_order_relaxed);
  return response;
}

Response Router::route(const Request& r) {
  const auto parts = split_path(r.path);
  const bool get = r.method == "GET" || r.method == "HEAD";
  const bool post = r.method == "POST";
  auto not_allowed = [&] {
    return problem(405, "method-not-allowed", r.method + " is not allowed on " + r.path);
  };

  if (parts.size() == 1 && parts[0] == "healthz") return get ? get_health() : not_allowed();
  if (parts.size() == 1 && parts[0] == "metrics") return get ? get_metrics() : not_allowed();
  if (!parts.empty() && parts[0] == "fhir") {
    if (auto fhir = route_fhir(node_, r, parts)) return std::move(*fhir);
  }
  if (parts.empty() || parts[0] != "v1") return problem(404, "not-found", "no route for " + r.path);
  if (parts.size() == 2 && parts[1] == "entries") {
    if (post) return post_entry(r);
    return get ? get_entries(r) : not_allowed();
  }
  if (parts.size() == 3 && parts[1] == "entries" && parts[2] == "batch")
    return post ? post_batch(r) : not_allowed();
  if (parts.size() == 3 && parts[1] == "entries")
    return get ? get_entry(r, parts[2]) : not_allowed();
  if (parts.size() == 4 && parts[1] == "entries" && parts[3] == "receipt") {
    return get ? get_receipt(parts[2]) : not_allowed();
  }
  if (parts.size() == 2 && parts[1] == "checkpoint") return get ? get_checkpoint(r) : not_allowed();
  if (parts.size() == 3 && parts[1] == "proofs" && parts[2] == "consistency") {
    return get ? get_consistency(r) : not_allowed();
  }
  if (parts.size() == 3 && parts[1] == "blocks") return get ? get_block(parts[2]) : not_allowed();
  if (parts.size() == 3 && parts[1] == "keys") return get ? get_key(parts[2]) : not_allowed();
  if (parts.size() == 2 && parts[1] == "node") return get ? get_node() : not_allowed();
  if (parts.size() == 2 && parts[1] == "genesis") return get ? get_genesis() : not_allowed();
  if (auto domain = route_domain(node_, r, parts)) return std::move(*domain);
  return problem(404, "not-found", "no route for " + r.path);
}

Response Router::post_entry(const Request& r) {
  if (r.content_type.rfind(kContentTypeCose, 0) != 0) {
    return problem(415, "unsupported-media-type",
                   "POST /v1/entries takes Content-Type: application/cose");
  }
  if (r.body.size() > limits::kStatementBytesMax) {
    return problem(
        error(ErrorCode::kTooLarge,
              "statement larger than " + std::to_string(limits::kStatementBytesMax) + " bytes"));
  }
  auto s = node_.submit(as_view(r.body));
  if (!s.ok()) return problem(s.status());
  return json_response(registered_json(*s), s->already_registered ? 200 : 201);
}

// Body: a CBOR array of byte strings, each one COSE_Sign1 statement. Answers
// one result per statement, in order; each either registered or a problem.
Response Router::post_batch(const Request& r) {
  if (r.content_type.rfind(kContentTypeCbor, 0) != 0) {
    return problem(415, "unsupported-media-type",
                   "POST /v1/entries/batch takes Content-Type: application/cbor (an array of bstr "
                   "statements)");
  }
  // Decided on the array head: the decoder's item limit below would refuse
  // a longer batch as malformed before the count could be checked.
  if (auto n = declared_array_length(r.body); n && *n > limits::kBatchStatementsMax) {
    return problem(error(ErrorCode::kTooLarge, "batch of " + std::to_string(*n) + " exceeds " +
                                                   std::to_string(limits::kBatchStatementsMax) +
                                                   " statements"));
  }
  cbor::DecodeOptions options;
  options.max_depth = 2;
  options.max_items = limits::kBatchStatementsMax + 1;
  auto decoded = cbor::decode(as_view(r.body), options);
  if (!decoded.ok())
    return problem(error(ErrorCode::kMalformed, "batch body: " + decoded.status().message()));
  if (!decoded->is(cbor::Type::kArray))
    return problem(error(ErrorCode::kMalformed, "batch body must be an array"));
  const cbor::Array& items = decoded->as_array();
  if (items.size() > limits::kBatchStatementsMax) {
    return problem(error(ErrorCode::kTooLarge,
                         "batch of " + std::to_string(items.size()) + " exceeds " +
                             std::to_string(limits::kBatchStatementsMax) + " statements"));
  }
  std::vector<ByteView> statements;
  for (const auto& item : items) {
    if (!item.is(cbor::Type::kBytes)) {
      return problem(error(ErrorCode::kMalformed,
                           "batch body: every item must be a bstr holding a statement"));
    }
    statements.emplace_back(item.as_bytes());
  }
  auto results = node_.submit_batch(statements);
  // {"results":[...]} with one object per statement, in order.
  Response response;
  std::string& out = response.body;
  out.reserve(results.size() * kRegisteredJsonBytes);
  out += "{\"results\":[";
  for (size_t i = 0; i < results.size(); ++i) {
    if (i > 0) out += ',';
    const auto& res = results[i];
    if (res.ok()) {
      append_registered_json(out, *res);
    } else {
      json refused = {{"status", "refused"}, {"problem", json::parse(problem(res.status()).body)}};
      out += refused.dump(-1, ' ', false, json::error_handler_t::replace);
    }
  }
  out += "]}";
  return response;
}

Response Router::get_entry(const Request& r, const std::string& id_hex) {
  auto id = hash_from_hex(id_hex);
  if (!id.ok())
    return problem(error(ErrorCode::kInvalidArgument, "entry id must be 64 hex characters"));
  auto e = node_.ledger().entry(*id);
  if (!e.ok()) return problem(e.status());
  if (accepts(r, kContentTypeCose)) return bytes_response(e->statement, kContentTypeCose);
  return json_response(entry_json(*e, true));
}

Response Router::get_receipt(const std::string& id_hex) {
  auto id = hash_from_hex(id_hex);
  if (!id.ok())
    return problem(error(ErrorCode::kInvalidArgument, "entry id must be 64 hex characters"));
  auto receipt = node_.ledger().receipt(*id);
  if (!receipt.ok()) return problem(receipt.status());
  // A bundle: a CBOR array of RFC 9942 receipts, one per signing node.
  return bytes_response(std::move(receipt).value(), "application/cbor");
}

Response Router::get_entries(const Request& r) {
  ledger::Query q;
  if (auto* v = query_param(r, "issuer")) q.issuer = *v;
  if (auto* v = query_param(r, "subject")) q.subject = *v;
  if (auto* v = query_param(r, "type")) q.content_type = *v;
  if (auto* v = query_param(r, "ref")) q.ref = *v;
  if (auto* v = query_param(r, "flag")) q.flag = *v;
  if (auto* v = query_param(r, "from")) {
    auto t = parse_time_ms(*v, "from");
    if (!t.ok()) return problem(t.status());
    q.from_ms = *t;
  }
  if (auto* v = query_param(r, "to")) {
    auto t = parse_time_ms(*v, "to");
    if (!t.ok()) return problem(t.status());
    q.to_ms = *t;
  }
  if (auto* v = query_param(r, "cursor")) {
    auto c = parse_uint(*v, "cursor");
    if (!c.ok()) return problem(c.status());
    q.cursor = *c;
  }
  q.limit = limits::kQueryPageEntriesDefault;
  if (auto* v = query_param(r, "limit")) {
    auto l = parse_uint(*v, "limit");
    if (!l.ok()) return problem(l.status());
    if (*l == 0 || *l > limits::kQueryPageEntriesMax) {
      return problem(
          error(ErrorCode::kInvalidArgument,
                "'limit' must be between 1 and " + std::to_string(limits::kQueryPageEntriesMax)));
    }
    q.limit = *l;
  }
  auto page = node_.ledger().query(q);
  if (!page.ok()) return problem(page.status());
  json entries = json::array();
  for (const auto& e : page->entries) entries.push_back(entry_json(e, false));
  json out = {{"entries", entries}};
  out["next_cursor"] = page->next_cursor ? json(std::to_string(*page->next_cursor)) : json(nullptr);
  return json_response(out);
}

Response Router::get_checkpoint(const Request& r) {
  auto cp = node_.ledger().checkpoint();
  if (!cp.ok()) return problem(cp.status());
  if (accepts(r, kContentTypeCose)) return bytes_response(std::move(cp).value(), kContentTypeCose);
  auto b = node_.ledger().block(node_.ledger().head().height);
  if (!b.ok()) return problem(b.status());
  json j = block_json(*b);
  j["checkpoint_base64"] = base64_encode(*cp);
  return json_response(j);
}

Response Router::get_consistency(const Request& r) {
  const std::string* from = query_param(r, "from");
  const std::string* to = query_param(r, "to");
  if (!from || !to)
    return problem(error(ErrorCode::kInvalidArgument, "need query parameters 'from' and 'to'"));
  auto a = parse_uint(*from, "from");
  auto b = parse_uint(*to, "to");
  if (!a.ok()) return problem(a.status());
  if (!b.ok()) return problem(b.status());
  auto proof = node_.ledger().consistency(*a, *b);
  if (!proof.ok()) return problem(proof.status());
  if (accepts(r, kContentTypeCbor))
    return bytes_response(cose::encode_consistency_proof(*proof), kContentTypeCbor);
  json path = json::array();
  for (const auto& h : proof->path) path.push_back(to_hex(h));
  return json_response({{"from", proof->size1}, {"to", proof->size2}, {"proof", path}});
}

Response Router::get_block(const std::string& height_text) {
  auto height = parse_uint(height_text, "height");
  if (!height.ok()) return problem(height.status());
  auto b = node_.ledger().block(*height);
  if (!b.ok()) return problem(b.status());
  return json_response(block_json(*b));
}

Response Router::get_key(const std::string& kid_hex) {
  auto kid = hash_from_hex(kid_hex);
  if (!kid.ok())
    return problem(error(ErrorCode::kInvalidArgument, "kid must be 64 hex characters"));
  auto k = node_.ledger().key(*kid);
  if (!k.ok()) return problem(k.status());
  json j = {{"kid", kid_hex},
            {"name", k->name},
            {"alg", crypto::algorithm_name(k->key.algorithm())},
            {"roles", ledger::role_names(k->roles)},
            {"status", k->revoked() ? "revoked" : "active"},
            {"last_sequence", k->last_sequence},
            {"public_key_pem", k->key.to_pem()}};
  j["registered_index"] =
      k->registered_index == ledger::kNoIndex ? json(nullptr) : json(k->registered_index);
  if (k->revoked()) j["revoked_index"] = k->revoked_index;
  if (!k->org.empty()) j["org"] = k->org;
  if (k->successor != Hash256{}) j["successor"] = to_hex(k->successor);
  return json_response(j);
}

Response Router::get_node() {
  const auto& l = node_.ledger();
  ledger::Head h = l.head();
  return json_response({{"name", l.node_name()},
                        {"consortium", l.genesis().consortium},
                        {"kid", to_hex(l.node_public_key().kid())},
                        {"alg", crypto::algorithm_name(l.node_public_key().algorithm())},
                        {"public_key_pem", l.node_public_key().to_pem()},
                        {"genesis_hash", to_hex(l.genesis().hash)},
                        {"height", h.height},
                        {"log_size", h.log_size},
                        {"root", to_hex(h.root)}});
}

Response Router::get_genesis() {
  const Bytes& g = node_.ledger().genesis().json_bytes;
  Response r;
  r.body.assign(g.begin(), g.end());
  return r;
}

Response Router::get_health() {
  ledger::Head h = node_.ledger().head();
  const node::ConsensusStatus c = node_.consensus_status();
  json peers = json::array();
  for (bool connected : c.peer_connected) peers.push_back(connected);
  json j = {{"status", node_.healthy() ? "ok" : "failed"},
            {"height", h.height},
            {"log_size", h.log_size},
            {"consensus",
             {{"round", c.round},
              {"leader", c.leader},
              {"committed_round", c.committed_round},
              {"nodes", c.validators},
              {"connected", peers}}}};
  return json_response(j, node_.healthy() ? 200 : 503);
}

Response Router::get_metrics() {
  std::string out;
  node_.metrics().render(out);
  ledger::Head h = node_.ledger().head();
  node::render_gauge(out, "custos_log_size", "Entries in the log.",
                     static_cast<double>(h.log_size));
  const node::ConsensusStatus c = node_.consensus_status();
  node::render_gauge(out, "custos_consensus_round", "Current consensus round.",
                     static_cast<double>(c.round));
  node::render_gauge(out, "custos_consensus_committed_round",
                     "Round of the newest committed block.",
                     static_cast<double>(c.committed_round));
  node::render_gauge(
      out, "custos_peers_connected", "Peers this node has a connection to.",
      static_cast<double>(std::count(c.peer_connected.begin(), c.peer_connected.end(), true) - 1));
  node::render_gauge(out, "custos_block_height", "Height of the newest block.",
                     static_cast<double>(h.height));
  node::render_gauge(out, "custos_pending_statements", "Admitted statements waiting for a block.",
                     static_cast<double>(node_.pending()));
  node::render_gauge(out, "custos_keys", "Registered keys.",
                     static_cast<double>(node_.ledger().key_count()));
  node::render_gauge(out, "custos_storage_bytes", "Bytes of RocksDB files and memtables.",
                     static_cast<double>(node_.ledger().disk_bytes()));
  // Resident memory from the kernel's view of this process (Linux).
  if (auto status = read_file("/proc/self/status", 1 << 16); status.ok()) {
    std::string text(status->begin(), status->end());
    auto kb = [&](const char* field) -> double {
      auto pos = text.find(field);
      return pos == std::string::npos ? 0
                                      : std::atof(text.c_str() + pos + std::strlen(field)) * 1024;
    };
    node::render_gauge(out, "process_resident_memory_bytes", "Resident memory.", kb("VmRSS:"));
    node::render_gauge(out, "custos_peak_resident_memory_bytes", "Peak resident memory.",
                       kb("VmHWM:"));
  }
  // CPU time of the whole process (every thread), the Prometheus standard
  // name: with the node's statement count it gives CPU per statement, which
  // a shared, noisy machine distorts far less than throughput does.
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0) {
    const auto secs = [](const timeval& t) {
      return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    out += "# HELP process_cpu_seconds_total User and system CPU time of the node process.\n";
    out += "# TYPE process_cpu_seconds_total counter\n";
    out += "process_cpu_seconds_total " +
           std::to_string(secs(usage.ru_utime) + secs(usage.ru_stime)) + "\n";
  }
  Response r;
  r.content_type = "text/plain; version=0.0.4";
  r.body = std::move(out);
  return r;
}

}  // namespace custos::api
