// libFuzzer harness for the HTTP API: fuzzed requests go through
// api::Router::handle over a real Node (RocksDB in a temporary directory made
// once per process and removed at exit). Besides memory safety (ASan/UBSan)
// it checks what every client relies on:
//  - no request makes a 500 (that is a bug or an exception escaping);
//  - every status is one the API documents;
//  - every error is an RFC 9457 problem: application/problem+json, a JSON
//    object whose "type" is urn:custos:problem:<code> and whose "status"
//    equals the HTTP status, with a "detail";
//  - every application/json body parses.
// Violations abort, which libFuzzer reports as a crash with the input.
//
//   mkdir -p /tmp/http_router_corpus
//   http_router_fuzz -max_total_time=30 /tmp/http_router_corpus tests/fuzz/corpus/http_router
// (new inputs go to the first directory, so the seeds stay as written).
//
// Input layout (the seed corpus follows it):
//   byte 0        flags
//                   bits 0-2  method: GET POST HEAD PUT DELETE PATCH OPTIONS get
//                   bit 3     sign: the body is a payload; the harness wraps it
//                             in a statement signed by the genesis admin key
//                             (content type = the content-type field, or
//                             application/cbor if empty; subject = the accept
//                             field) and sends it as application/cose
//                   bit 4     with sign: reuse the previous sequence number
//                             (a replay) instead of the next one
//                   bit 5     with sign: send it as a one-statement batch
//                             (a CBOR array of one bstr, application/cbor)
//   then four '\n'-terminated fields: path, query, content type, accept
//   and the rest of the input is the body (it may contain '\n').
// Missing fields are empty. The query is "k=v&k2=v2" (no percent-decoding;
// that is the server's job). In path and query "{id}" becomes the hex id of
// the entry most recently registered and "{kid}" the admin key id, so the
// fuzzer reaches the lookups of entries that exist.
#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "api/router.h"
#include "codec/cbor.h"
#include "cose/statement.h"
#include "domain/rules.h"
#include "ledger/genesis.h"
#include "node/node.h"

namespace {

using custos::Bytes;
using custos::ByteView;
namespace api = custos::api;
namespace cbor = custos::cbor;
namespace crypto = custos::crypto;
namespace ledger = custos::ledger;
namespace node = custos::node;

[[noreturn]] void fail(const char* what, const api::Request& req, const api::Response& res) {
  std::fprintf(stderr, "http_router_fuzz: %s\n  %s %s -> %d %s\n  %.500s\n", what,
               req.method.c_str(), req.path.c_str(), res.status, res.content_type.c_str(),
               res.body.c_str());
  std::abort();
}

// Prefers tmpfs: every registration syncs a RocksDB write.
std::string temp_root() {
  if (const char* t = std::getenv("TMPDIR"); t && *t) return t;
  std::error_code ec;
  if (std::filesystem::is_directory("/dev/shm", ec)) return "/dev/shm";
  return std::filesystem::temp_directory_path().string();
}

// The node and its directory, made on first use and torn down at exit
// (node first, then the directory).
struct Harness {
  std::string dir;
  crypto::PrivateKey admin;
  std::unique_ptr<node::Node> node;
  std::unique_ptr<api::Router> router;
  uint64_t sequence = 0;
  std::string last_id = std::string(64, '0');
  std::string admin_kid;

  Harness() {
    std::string tmpl = temp_root() + "/custos-fuzz-XXXXXX";
    if (!mkdtemp(tmpl.data())) std::abort();
    dir = tmpl;
    admin = *crypto::PrivateKey::generate(crypto::Algorithm::kEd25519);
    crypto::PrivateKey node_key = *crypto::PrivateKey::generate(crypto::Algorithm::kEd25519);
    const std::string json =
        ledger::genesis_json("fuzz consortium", 1767225600000, {{"admin", admin.public_key()}},
                             {{"node", node_key.public_key()}});
    auto genesis = ledger::parse_genesis(custos::as_view(json));
    if (!genesis.ok()) std::abort();
    node::NodeConfig config;
    config.ledger.data_dir = dir;
    config.ledger.node_name = "fuzz-node";
    config.ledger.node_key = node_key;
    config.ledger.genesis = std::move(genesis).value();
    config.ledger.storage.block_cache_bytes = 4 << 20;
    config.ledger.storage.write_buffer_bytes = 4 << 20;
    // As on every real node: the domain rules (and their routes) run too.
    config.ledger.rules = custos::domain::make_rules();
    config.block_interval_ms = 0;  // no waiting: one block per registration
    auto n = node::Node::start(std::move(config));
    if (!n.ok()) {
      std::fprintf(stderr, "http_router_fuzz: %s\n", n.status().to_string().c_str());
      std::abort();
    }
    node = std::move(n).value();
    router = std::make_unique<api::Router>(*node);
    admin_kid = custos::to_hex(admin.public_key().kid());
  }
  ~Harness() {
    router.reset();
    node.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

Harness& harness() {
  static Harness h;
  return h;
}

// Splits off the text up to the next '\n' (or the rest).
std::string_view take_field(std::string_view& rest) {
  size_t nl = rest.find('\n');
  std::string_view field = rest.substr(0, nl);
  rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  return field;
}

void replace_all(std::string& text, std::string_view from, const std::string& to) {
  for (size_t pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
}

std::string substitute(std::string text, const Harness& h) {
  replace_all(text, "{id}", h.last_id);
  replace_all(text, "{kid}", h.admin_kid);
  return text;
}

std::multimap<std::string, std::string> parse_query(std::string_view q) {
  std::multimap<std::string, std::string> out;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos) {
      out.emplace(std::string(pair), "");
    } else {
      out.emplace(std::string(pair.substr(0, eq)), std::string(pair.substr(eq + 1)));
    }
  }
  return out;
}

bool documented_status(int status) {
  switch (status) {
    case 200:
    case 201:
    case 400:
    case 404:
    case 405:
    case 409:
    case 413:
    case 415:
    case 422:
    case 503:
      return true;
    default:
      return false;
  }
}

void check_response(const api::Request& req, const api::Response& res) {
  if (res.status >= 500 && res.status != 503) fail("server error", req, res);
  if (!documented_status(res.status)) fail("undocumented status", req, res);
  if (res.content_type.empty()) fail("no content type", req, res);
  if (res.status >= 400) {
    if (res.content_type != api::kContentTypeProblem) fail("error is not a problem", req, res);
    auto j = nlohmann::json::parse(res.body, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) fail("problem body is not a JSON object", req, res);
    auto type = j.find("type");
    if (type == j.end() || !type->is_string() ||
        type->get<std::string>().rfind(api::kProblemTypePrefix, 0) != 0) {
      fail("problem type is not urn:custos:problem:*", req, res);
    }
    auto status = j.find("status");
    if (status == j.end() || !status->is_number_integer() || status->get<int>() != res.status) {
      fail("problem status differs from the HTTP status", req, res);
    }
    auto detail = j.find("detail");
    if (detail == j.end() || !detail->is_string()) fail("problem without detail", req, res);
  } else if (res.content_type == "application/json") {
    if (nlohmann::json::parse(res.body, nullptr, false).is_discarded())
      fail("invalid JSON body", req, res);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  Harness& h = harness();
  static const char* const kMethods[] = {"GET",    "POST",  "HEAD",    "PUT",
                                         "DELETE", "PATCH", "OPTIONS", "get"};
  const uint8_t flags = data[0];
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  api::Request req;
  req.method = kMethods[flags & 7];
  req.path = substitute(std::string(take_field(rest)), h);
  req.query = parse_query(substitute(std::string(take_field(rest)), h));
  req.content_type = std::string(take_field(rest));
  req.accept = std::string(take_field(rest));
  req.body = std::string(rest);
  req.remote = "fuzz";

  if (flags & 0x08) {
    custos::cose::StatementHeader header;
    header.content_type = req.content_type.empty() ? "application/cbor" : req.content_type;
    header.issuer = "urn:fuzz";
    header.subject = req.accept.empty() ? "fuzz" : req.accept;
    header.issued_at_s = 1767225600;
    if (!(flags & 0x10) || h.sequence == 0) ++h.sequence;
    header.sequence = h.sequence;
    // Text fields over the limit would only exercise the parser's refusal,
    // which cose_parse_fuzz covers; keep them signable.
    if (header.content_type.size() > custos::limits::kTextFieldBytesMax ||
        header.subject.size() > custos::limits::kTextFieldBytesMax) {
      return 0;
    }
    Bytes statement = custos::cose::sign_statement(h.admin, header, custos::as_view(req.body));
    if (flags & 0x20) {
      cbor::Array one{cbor::Value::bytes(statement)};
      Bytes batch = cbor::encode(cbor::Value::array(std::move(one)));
      req.body.assign(batch.begin(), batch.end());
      req.content_type = api::kContentTypeCbor;
    } else {
      req.body.assign(statement.begin(), statement.end());
      req.content_type = api::kContentTypeCose;
    }
  }

  api::Response res = h.router->handle(req);
  check_response(req, res);
  if (res.status == 201) {
    auto j = nlohmann::json::parse(res.body, nullptr, false);
    if (j.is_object() && j.contains("id") && j["id"].is_string())
      h.last_id = j["id"].get<std::string>();
  }
  return 0;
}
