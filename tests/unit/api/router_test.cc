// Router::handle over a real Node in a temporary directory, no sockets:
// every route's status code, content type and JSON shape, and the RFC 9457
// problem details for every refusal.
#include "api/router.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "codec/cbor.h"
#include "cose/receipt.h"
#include "crypto/hash.h"
#include "ledger/block.h"
#include "merkle/merkle.h"
#include "unit/ledger/ledger_fixture.h"

namespace custos::api {
namespace {

using nlohmann::json;
using testutil::Fields;
using testutil::registration;
using testutil::sign;
using testutil::TempDir;
using testutil::test_keys;

std::string str(const Bytes& b) {
  return std::string(b.begin(), b.end());
}

json parse_json(const Response& r) {
  json j = json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << "not JSON: " << r.body;
  return j;
}

// An RFC 9457 problem with our type URN, the HTTP status and a detail.
void expect_problem(const Response& r, int status, const std::string& code,
                    const std::string& detail_part = "") {
  SCOPED_TRACE(r.body);
  EXPECT_EQ(r.status, status);
  EXPECT_EQ(r.content_type, "application/problem+json");
  json j = parse_json(r);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j.value("type", ""), "urn:custos:problem:" + code);
  EXPECT_EQ(j.value("status", 0), status);
  ASSERT_TRUE(j.contains("title") && j["title"].is_string());
  EXPECT_FALSE(j["title"].get<std::string>().empty());
  ASSERT_TRUE(j.contains("detail") && j["detail"].is_string());
  EXPECT_FALSE(j["detail"].get<std::string>().empty());
  if (!detail_part.empty()) {
    EXPECT_NE(j["detail"].get<std::string>().find(detail_part), std::string::npos);
  }
}

const crypto::PrivateKey& issuer_key() {
  static const crypto::PrivateKey kKey = testutil::new_key();
  return kKey;
}

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node::NodeConfig c;
    c.ledger = testutil::ledger_config(dir_.path());
    c.block_interval_ms = 1;
    auto n = node::Node::start(std::move(c));
    ASSERT_TRUE(n.ok()) << n.status().to_string();
    node_ = std::move(n).value();
    router_ = std::make_unique<Router>(*node_);
  }
  void TearDown() override {
    router_.reset();
    node_.reset();
  }

  Response call(const std::string& method, const std::string& path,
                std::multimap<std::string, std::string> query = {},
                const std::string& content_type = "", const std::string& body = "",
                const std::string& accept = "") {
    Request r;
    r.method = method;
    r.path = path;
    r.query = std::move(query);
    r.content_type = content_type;
    r.body = body;
    r.accept = accept;
    r.remote = "127.0.0.1";
    return router_->handle(r);
  }
  Response get(const std::string& path, std::multimap<std::string, std::string> query = {},
               const std::string& accept = "") {
    return call("GET", path, std::move(query), "", "", accept);
  }
  Response post_statement(const Bytes& statement,
                          const std::string& content_type = "application/cose") {
    return call("POST", "/v1/entries", {}, content_type, str(statement));
  }
  // Registers a statement and returns its id in hex.
  std::string register_statement(const Bytes& statement) {
    Response r = post_statement(statement);
    EXPECT_EQ(r.status, 201) << r.body;
    return parse_json(r).value("id", "");
  }

  uint64_t next_admin_seq() { return ++admin_seq_; }

  TempDir dir_{"custos-api"};
  std::unique_ptr<node::Node> node_;
  std::unique_ptr<Router> router_;
  uint64_t admin_seq_ = 0;
};

// ---------------------------------------------------------------------------
// Status mapping

TEST(ProblemTest, EveryErrorCodeMapsToAStatus) {
  EXPECT_EQ(http_status_for(ErrorCode::kInvalidArgument), 400);
  EXPECT_EQ(http_status_for(ErrorCode::kMalformed), 400);
  EXPECT_EQ(http_status_for(ErrorCode::kBadSignature), 422);
  EXPECT_EQ(http_status_for(ErrorCode::kUnknownKey), 422);
  EXPECT_EQ(http_status_for(ErrorCode::kRevokedKey), 422);
  EXPECT_EQ(http_status_for(ErrorCode::kPolicy), 422);
  EXPECT_EQ(http_status_for(ErrorCode::kReplay), 409);
  EXPECT_EQ(http_status_for(ErrorCode::kConflict), 409);
  EXPECT_EQ(http_status_for(ErrorCode::kTooLarge), 413);
  EXPECT_EQ(http_status_for(ErrorCode::kNotFound), 404);
  EXPECT_EQ(http_status_for(ErrorCode::kUnavailable), 503);
  EXPECT_EQ(http_status_for(ErrorCode::kIo), 500);
  EXPECT_EQ(http_status_for(ErrorCode::kCorruption), 500);
  EXPECT_EQ(http_status_for(ErrorCode::kInternal), 500);
}

TEST(ProblemTest, ProblemFromStatus) {
  Response r = problem(error(ErrorCode::kUnavailable, "busy"));
  expect_problem(r, 503, "unavailable", "busy");
  EXPECT_EQ(r.headers.at("Retry-After"), "1");
  Response p = problem(error(ErrorCode::kReplay, "again"));
  expect_problem(p, 409, "replay", "again");
  EXPECT_EQ(parse_json(p).value("title", ""), "Conflict");
  EXPECT_EQ(p.headers.count("Retry-After"), 0u);
}

// ---------------------------------------------------------------------------
// POST /v1/entries

TEST_F(RouterTest, PostEntryRegistersAndRetryIsAlreadyRegistered) {
  Bytes st = sign(test_keys().admin, next_admin_seq());
  Response r = post_statement(st);
  EXPECT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.content_type, "application/json");
  json j = parse_json(r);
  EXPECT_EQ(j.value("id", ""), to_hex(crypto::sha256(st)));
  EXPECT_EQ(j.value("index", 99), 0);
  EXPECT_EQ(j.value("height", 99), 1);
  EXPECT_EQ(j.value("status", ""), "registered");
  EXPECT_FALSE(j.contains("sequence_gap"));

  Response again = post_statement(st);
  EXPECT_EQ(again.status, 200) << again.body;
  json a = parse_json(again);
  EXPECT_EQ(a.value("status", ""), "already-registered");
  EXPECT_EQ(a.value("id", ""), j.value("id", ""));
  EXPECT_EQ(a.value("index", 99), 0);

  // Content-Type parameters are fine.
  Response params =
      post_statement(sign(test_keys().admin, next_admin_seq()), "application/cose; charset=binary");
  EXPECT_EQ(params.status, 201) << params.body;
}

TEST_F(RouterTest, PostEntryReportsSequenceGaps) {
  Response r = post_statement(sign(test_keys().admin, 4));
  ASSERT_EQ(r.status, 201) << r.body;
  json j = parse_json(r);
  ASSERT_TRUE(j.contains("sequence_gap"));
  EXPECT_EQ(j["sequence_gap"], (json{{"expected", 1}, {"got", 4}, {"missing", 3}}));
}

TEST_F(RouterTest, PostEntryWrongContentTypeIs415) {
  Bytes st = sign(test_keys().admin, 1);
  expect_problem(post_statement(st, "application/json"), 415, "unsupported-media-type");
  expect_problem(post_statement(st, ""), 415, "unsupported-media-type");
  expect_problem(post_statement(st, "application/cbor"), 415, "unsupported-media-type");
  // Nothing was registered.
  EXPECT_EQ(node_->ledger().head().log_size, 0u);
}

TEST_F(RouterTest, PostEntryOversizeIs413) {
  expect_problem(call("POST", "/v1/entries", {}, "application/cose",
                      std::string(limits::kStatementBytesMax + 1, 'x')),
                 413, "too-large");
}

TEST_F(RouterTest, PostEntryMalformedIs400) {
  expect_problem(call("POST", "/v1/entries", {}, "application/cose", "definitely not COSE"), 400,
                 "malformed");
  expect_problem(call("POST", "/v1/entries", {}, "application/cose", ""), 400, "malformed");
}

TEST_F(RouterTest, PostEntryPolicyRefusalsAre422) {
  Bytes st = sign(test_keys().admin, 1);
  Bytes bad = st;
  bad.back() ^= 1;
  expect_problem(post_statement(bad), 422, "bad-signature");
  expect_problem(post_statement(sign(issuer_key(), 1)), 422, "unknown-key");
  Fields text;
  text.content_type = "text/plain";
  text.payload = to_bytes("hi");
  expect_problem(post_statement(sign(test_keys().admin, 1, text)), 422, "policy");
  // Revoked keys.
  register_statement(registration(test_keys().admin, next_admin_seq(), issuer_key().public_key(),
                                  ledger::kRoleIssuer, "issuer"));
  register_statement(
      testutil::revocation(test_keys().admin, next_admin_seq(), issuer_key().public_key().kid()));
  expect_problem(post_statement(sign(issuer_key(), 1)), 422, "revoked-key");
}

TEST_F(RouterTest, PostEntryReplayIs409) {
  register_statement(sign(test_keys().admin, 1));
  Fields other;
  other.subject = "other";
  expect_problem(post_statement(sign(test_keys().admin, 1, other)), 409, "replay");
}

// ---------------------------------------------------------------------------
// POST /v1/entries/batch

std::string batch_body(const std::vector<Bytes>& statements) {
  cbor::Array a;
  for (const auto& s : statements) a.push_back(cbor::Value::bytes(s));
  return str(cbor::encode(cbor::Value::array(std::move(a))));
}

TEST_F(RouterTest, PostBatchAnswersEachStatement) {
  const auto& admin = test_keys().admin;
  Bytes bad = sign(admin, 2);
  bad.back() ^= 1;
  Response r = call("POST", "/v1/entries/batch", {}, "application/cbor",
                    batch_body({sign(admin, 1), bad, sign(admin, 2), to_bytes("junk")}));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "application/json");
  json j = parse_json(r);
  ASSERT_TRUE(j["results"].is_array());
  ASSERT_EQ(j["results"].size(), 4u);
  EXPECT_EQ(j["results"][0].value("status", ""), "registered");
  EXPECT_EQ(j["results"][0].value("index", 99), 0);
  EXPECT_EQ(j["results"][1].value("status", ""), "refused");
  EXPECT_EQ(j["results"][1]["problem"].value("type", ""), "urn:custos:problem:bad-signature");
  EXPECT_EQ(j["results"][1]["problem"].value("status", 0), 422);
  EXPECT_EQ(j["results"][2].value("index", 99), 1);
  EXPECT_EQ(j["results"][3]["problem"].value("type", ""), "urn:custos:problem:malformed");
  EXPECT_EQ(j["results"][3]["problem"].value("status", 0), 400);

  Response empty = call("POST", "/v1/entries/batch", {}, "application/cbor", batch_body({}));
  ASSERT_EQ(empty.status, 200);
  EXPECT_EQ(parse_json(empty)["results"], json::array());
}

// The batch answer is written without a JSON tree per statement; it must be
// the very bytes the single-statement answer's JSON object would give.
TEST_F(RouterTest, PostBatchResultsAreTheSingleAnswerObjects) {
  const auto& admin = test_keys().admin;
  Bytes first = sign(admin, 1);
  Bytes gap = sign(admin, 5);  // 2..4 skipped: registered with a sequence gap
  Response r =
      call("POST", "/v1/entries/batch", {}, "application/cbor", batch_body({first, gap, first}));
  ASSERT_EQ(r.status, 200) << r.body;
  json j = parse_json(r);
  ASSERT_EQ(j["results"].size(), 3u);
  EXPECT_EQ(j["results"][1]["sequence_gap"], json({{"expected", 2}, {"got", 5}, {"missing", 3}}));
  // The same bytes again are answered as already registered.
  EXPECT_EQ(j["results"][2].value("status", ""), "already-registered");
  // Each object, re-serialized by the JSON library, is what the answer holds.
  std::string expected = "{\"results\":[";
  for (size_t i = 0; i < 3; ++i) expected += (i ? "," : "") + j["results"][i].dump();
  expected += "]}";
  EXPECT_EQ(r.body, expected);
  // And one of them is what POST /v1/entries answers for the same bytes.
  Response single = post_statement(first);
  EXPECT_EQ(single.body, j["results"][2].dump());
}

TEST_F(RouterTest, PostBatchRefusals) {
  expect_problem(call("POST", "/v1/entries/batch", {}, "application/cose", batch_body({})), 415,
                 "unsupported-media-type");
  expect_problem(call("POST", "/v1/entries/batch", {}, "application/cbor", "\xff"), 400,
                 "malformed");
  expect_problem(
      call("POST", "/v1/entries/batch", {}, "application/cbor", str(cbor::encode(cbor::text("x")))),
      400, "malformed");
  cbor::Array not_bytes{cbor::integer(1)};
  expect_problem(call("POST", "/v1/entries/batch", {}, "application/cbor",
                      str(cbor::encode(cbor::Value::array(std::move(not_bytes))))),
                 400, "malformed");
  // One statement over the batch limit is too large, not malformed.
  std::vector<Bytes> many(limits::kBatchStatementsMax + 1, Bytes{0x01});
  expect_problem(call("POST", "/v1/entries/batch", {}, "application/cbor", batch_body(many)), 413,
                 "too-large", "1025");
  // So is a head declaring 2^32 elements that are not there.
  expect_problem(call("POST", "/v1/entries/batch", {}, "application/cbor",
                      std::string("\x9a\x00\x01\x00\x00", 5)),
                 413, "too-large");
  // Exactly at the limit is decoded (and each junk statement refused).
  std::vector<Bytes> limit(limits::kBatchStatementsMax, Bytes{0x01});
  Response at = call("POST", "/v1/entries/batch", {}, "application/cbor", batch_body(limit));
  ASSERT_EQ(at.status, 200) << at.body.substr(0, 300);
  EXPECT_EQ(parse_json(at)["results"].size(), limits::kBatchStatementsMax);
  EXPECT_EQ(node_->ledger().head().log_size, 0u);
}

// ---------------------------------------------------------------------------
// GET /v1/entries/<id>, /receipt

TEST_F(RouterTest, GetEntryAsJsonAndCose) {
  Bytes st = sign(test_keys().admin, 1);
  const std::string id = register_statement(st);
  Response r = get("/v1/entries/" + id);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "application/json");
  json j = parse_json(r);
  EXPECT_EQ(j.value("id", ""), id);
  EXPECT_EQ(j.value("index", 99), 0);
  EXPECT_EQ(j.value("height", 99), 1);
  EXPECT_TRUE(j["registered_ms"].is_number_unsigned());
  EXPECT_TRUE(j["registered_at"].is_string());
  EXPECT_EQ(j["registered_at"].get<std::string>().back(), 'Z');
  EXPECT_EQ(j.value("alg", ""), "Ed25519");
  EXPECT_EQ(j.value("kid", ""), to_hex(test_keys().admin.public_key().kid()));
  EXPECT_EQ(j.value("content_type", ""), "application/cbor");
  EXPECT_EQ(j.value("issuer", ""), "urn:custos:test:device");
  EXPECT_EQ(j.value("subject", ""), "test/subject");
  EXPECT_EQ(j.value("issued_at", 0), 1767225600);
  EXPECT_EQ(j.value("sequence", 0), 1);
  EXPECT_EQ(j["payload"], (json{{"seq", 1}}));
  EXPECT_EQ(j.value("statement_base64", ""), base64_encode(st));
  EXPECT_FALSE(j.contains("sequence_gap"));

  Response cose = get("/v1/entries/" + id, {}, "application/cose");
  ASSERT_EQ(cose.status, 200);
  EXPECT_EQ(cose.content_type, "application/cose");
  EXPECT_EQ(cose.body, str(st));

  // Upper-case hex names the same entry.
  std::string upper = id;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(get("/v1/entries/" + upper).status, 200);
}

TEST_F(RouterTest, GetEntryOpaquePayloadIsBase64) {
  register_statement(registration(test_keys().admin, next_admin_seq(), issuer_key().public_key(),
                                  ledger::kRoleIssuer | ledger::kRoleOpaque, "opaque"));
  Fields f;
  f.content_type = "application/octet-stream";
  f.payload = Bytes{0xff, 0x00, 0xfe};  // not CBOR
  f.issuer = "urn:dev:x";
  const std::string id = register_statement(sign(issuer_key(), 2, f));
  json j = parse_json(get("/v1/entries/" + id));
  EXPECT_FALSE(j.contains("payload"));
  EXPECT_EQ(j.value("payload_base64", ""), base64_encode(f.payload));
  ASSERT_TRUE(j.contains("sequence_gap"));
  EXPECT_EQ(j["sequence_gap"].value("missing", 0), 1);
}

TEST_F(RouterTest, GetEntryErrors) {
  expect_problem(get("/v1/entries/" + std::string(64, '0')), 404, "not-found");
  expect_problem(get("/v1/entries/xyz"), 400, "invalid-argument");
  expect_problem(get("/v1/entries/" + std::string(63, 'a')), 400, "invalid-argument");
  expect_problem(get("/v1/entries/" + std::string(64, 'g')), 400, "invalid-argument");
  expect_problem(get("/v1/entries/" + std::string(64, '0') + "/receipt"), 404, "not-found");
  expect_problem(get("/v1/entries/nothex/receipt"), 400, "invalid-argument");
}

TEST_F(RouterTest, GetReceiptVerifies) {
  std::vector<std::pair<std::string, Bytes>> entries;
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    Bytes st = sign(test_keys().admin, seq);
    entries.emplace_back(register_statement(st), st);
  }
  for (const auto& [id, st] : entries) {
    Response r = get("/v1/entries/" + id + "/receipt");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.content_type, "application/cbor");
    auto bundle = cose::parse_receipt_bundle(as_view(r.body));
    ASSERT_TRUE(bundle.ok()) << bundle.status().to_string();
    ASSERT_EQ(bundle->size(), 1u);  // a one-node consortium: its own signature is the quorum
    Status v = cose::verify_receipt((*bundle)[0], st, test_keys().node.public_key());
    EXPECT_TRUE(v.ok()) << v.to_string();
    EXPECT_TRUE(cose::verify_receipt_bundle(*bundle, st, {test_keys().node.public_key()}, 1).ok());
  }
}

// ---------------------------------------------------------------------------
// GET /v1/entries (queries)

TEST_F(RouterTest, QueryEntriesWithFiltersAndPaging) {
  const auto& admin = test_keys().admin;
  std::vector<std::string> ids;
  for (uint64_t seq = 1; seq <= 5; ++seq) {
    Fields f;
    f.issuer = seq % 2 ? "urn:dev:odd" : "urn:dev:even";
    f.subject = "s" + std::to_string(seq);
    ids.push_back(register_statement(sign(admin, seq, f)));
  }
  Response all = get("/v1/entries");
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(all.content_type, "application/json");
  json j = parse_json(all);
  ASSERT_EQ(j["entries"].size(), 5u);
  EXPECT_TRUE(j["next_cursor"].is_null());
  // List entries omit the statement bytes and payload.
  EXPECT_FALSE(j["entries"][0].contains("statement_base64"));
  EXPECT_FALSE(j["entries"][0].contains("payload"));
  EXPECT_EQ(j["entries"][0].value("id", ""), ids[0]);

  // Paging by issuer, two at a time; cursors are strings.
  std::vector<std::string> got;
  std::multimap<std::string, std::string> q{{"issuer", "urn:dev:odd"}, {"limit", "2"}};
  for (int page = 0; page < 5; ++page) {
    Response r = get("/v1/entries", q);
    ASSERT_EQ(r.status, 200) << r.body;
    json p = parse_json(r);
    ASSERT_LE(p["entries"].size(), 2u);
    for (const auto& e : p["entries"]) got.push_back(e.value("id", ""));
    if (p["next_cursor"].is_null()) break;
    ASSERT_TRUE(p["next_cursor"].is_string());
    q.erase("cursor");
    q.emplace("cursor", p["next_cursor"].get<std::string>());
  }
  EXPECT_EQ(got, (std::vector<std::string>{ids[0], ids[2], ids[4]}));

  json by_subject = parse_json(get("/v1/entries", {{"subject", "s4"}}));
  ASSERT_EQ(by_subject["entries"].size(), 1u);
  EXPECT_EQ(by_subject["entries"][0].value("id", ""), ids[3]);
  json by_type =
      parse_json(get("/v1/entries", {{"type", "application/cbor"}, {"issuer", "urn:dev:even"}}));
  EXPECT_EQ(by_type["entries"].size(), 2u);
  json none = parse_json(get("/v1/entries", {{"type", "text/plain"}}));
  EXPECT_TRUE(none["entries"].empty());

  // Time ranges, in milliseconds or RFC 3339.
  const uint64_t first_ms =
      parse_json(get("/v1/entries/" + ids[0])).value("registered_ms", uint64_t{0});
  json after = parse_json(get("/v1/entries", {{"from", std::to_string(first_ms)}}));
  EXPECT_EQ(after["entries"].size(), 5u);
  json before = parse_json(get("/v1/entries", {{"to", std::to_string(first_ms)}}));
  EXPECT_TRUE(before["entries"].empty());
  json since_2020 = parse_json(
      get("/v1/entries", {{"from", "2020-01-01T00:00:00Z"}, {"to", "2999-01-01T00:00:00.5Z"}}));
  EXPECT_EQ(since_2020["entries"].size(), 5u);
  json before_2020 = parse_json(get("/v1/entries", {{"to", "2020-01-01T00:00:00.000Z"}}));
  EXPECT_TRUE(before_2020["entries"].empty());
}

TEST_F(RouterTest, QueryEntriesBadParametersAre400) {
  for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"limit", "0"},
           {"limit", "1001"},
           {"limit", "abc"},
           {"limit", "-1"},
           {"limit", ""},
           {"limit", "99999999999999999999999"},
           {"cursor", "x"},
           {"cursor", "-5"},
           {"from", "garbage"},
           {"from", ""},
           {"from", "2026-13-45T99:00:00Z"},
           {"from", "2026-11-23T10:00:00"},
           {"from", "2026-11-23T10:00:00+01:00"},
           {"from", "1969-12-31T23:59:59Z"},
           {"to", "yesterday"},
           {"to", "12ms"},
       }) {
    SCOPED_TRACE(name + "=" + value);
    expect_problem(get("/v1/entries", {{name, value}}), 400, "invalid-argument");
  }
  EXPECT_EQ(get("/v1/entries", {{"limit", "1000"}}).status, 200);
  EXPECT_EQ(get("/v1/entries", {{"limit", "1"}}).status, 200);
}

// ---------------------------------------------------------------------------
// Checkpoint, consistency, blocks, keys, node, genesis

TEST_F(RouterTest, CheckpointAsJsonAndCose) {
  register_statement(sign(test_keys().admin, 1));
  Response r = get("/v1/checkpoint");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "application/json");
  json j = parse_json(r);
  EXPECT_EQ(j.value("height", 0), 1);
  EXPECT_EQ(j.value("log_size", 0), 1);
  EXPECT_EQ(j.value("root", ""), to_hex(node_->ledger().head().root));
  EXPECT_EQ(j.value("header_hash", ""), to_hex(node_->ledger().head().header_hash));
  for (const char* field :
       {"prev_hash", "time", "proposer", "checkpoint_signature", "root_signature"}) {
    EXPECT_TRUE(j.contains(field) && j[field].is_string()) << field;
  }
  EXPECT_FALSE(j.contains("genesis_hash"));
  auto cp_bytes = base64_decode(j.value("checkpoint_base64", ""));
  ASSERT_TRUE(cp_bytes.ok());
  EXPECT_TRUE(ledger::verify_checkpoint(*cp_bytes, test_keys().node.public_key()).ok());

  Response cose = get("/v1/checkpoint", {}, "application/cose");
  ASSERT_EQ(cose.status, 200);
  EXPECT_EQ(cose.content_type, "application/cose");
  auto header = ledger::verify_checkpoint(as_view(cose.body), test_keys().node.public_key());
  ASSERT_TRUE(header.ok()) << header.status().to_string();
  EXPECT_EQ(header->height, 1u);
}

TEST_F(RouterTest, ConsistencyProofAsJsonAndCbor) {
  for (uint64_t seq = 1; seq <= 6; ++seq) register_statement(sign(test_keys().admin, seq));
  const auto& l = node_->ledger();
  auto root_at = [&](uint64_t size) {
    merkle::MemoryTree t;
    for (uint64_t i = 0; i < size; ++i) t.append(l.entry_at(i)->statement);
    return t.root();
  };
  Response r = get("/v1/proofs/consistency", {{"from", "2"}, {"to", "6"}});
  ASSERT_EQ(r.status, 200) << r.body;
  json j = parse_json(r);
  EXPECT_EQ(j.value("from", 0), 2);
  EXPECT_EQ(j.value("to", 0), 6);
  std::vector<Hash256> path;
  for (const auto& h : j["proof"]) path.push_back(*hash_from_hex(h.get<std::string>()));
  EXPECT_TRUE(merkle::verify_consistency(2, 6, root_at(2), root_at(6), path).ok());

  Response c = get("/v1/proofs/consistency", {{"from", "3"}, {"to", "5"}}, "application/cbor");
  ASSERT_EQ(c.status, 200);
  EXPECT_EQ(c.content_type, "application/cbor");
  auto proof = cose::decode_consistency_proof(as_view(c.body));
  ASSERT_TRUE(proof.ok()) << proof.status().to_string();
  EXPECT_TRUE(merkle::verify_consistency(3, 5, root_at(3), root_at(5), proof->path).ok());

  expect_problem(get("/v1/proofs/consistency", {{"from", "1"}}), 400, "invalid-argument");
  expect_problem(get("/v1/proofs/consistency", {{"to", "1"}}), 400, "invalid-argument");
  expect_problem(get("/v1/proofs/consistency", {{"from", "x"}, {"to", "2"}}), 400,
                 "invalid-argument");
  expect_problem(get("/v1/proofs/consistency", {{"from", "1"}, {"to", "y"}}), 400,
                 "invalid-argument");
  expect_problem(get("/v1/proofs/consistency", {{"from", "0"}, {"to", "2"}}), 400,
                 "invalid-argument");
  expect_problem(get("/v1/proofs/consistency", {{"from", "4"}, {"to", "2"}}), 400,
                 "invalid-argument");
  expect_problem(get("/v1/proofs/consistency", {{"from", "1"}, {"to", "7"}}), 400,
                 "invalid-argument");
}

TEST_F(RouterTest, BlocksByHeight) {
  register_statement(sign(test_keys().admin, 1));
  Response b0 = get("/v1/blocks/0");
  ASSERT_EQ(b0.status, 200) << b0.body;
  json j0 = parse_json(b0);
  EXPECT_EQ(j0.value("height", 99), 0);
  EXPECT_EQ(j0.value("log_size", 99), 0);
  EXPECT_EQ(j0.value("entries", 99), 0);
  EXPECT_EQ(j0.value("genesis_hash", ""), to_hex(test_keys().genesis.hash));
  EXPECT_EQ(j0.value("prev_hash", ""), std::string(64, '0'));
  EXPECT_EQ(j0.value("proposer", ""), std::string(64, '0'));  // block 0 has none
  EXPECT_EQ(j0.value("signer", ""), to_hex(test_keys().node.public_key().kid()));
  EXPECT_EQ(j0.value("time", ""), "2026-01-01T00:00:00.000Z");

  json j1 = parse_json(get("/v1/blocks/1"));
  EXPECT_EQ(j1.value("height", 99), 1);
  EXPECT_EQ(j1.value("entries", 99), 1);
  EXPECT_EQ(j1.value("prev_hash", ""), j0.value("header_hash", "x"));
  EXPECT_FALSE(j1.contains("genesis_hash"));

  expect_problem(get("/v1/blocks/2"), 404, "not-found");
  expect_problem(get("/v1/blocks/abc"), 400, "invalid-argument");
  expect_problem(get("/v1/blocks/-1"), 400, "invalid-argument");
  expect_problem(get("/v1/blocks/18446744073709551616"), 400, "invalid-argument");
}

TEST_F(RouterTest, KeysByKid) {
  const std::string admin_kid = to_hex(test_keys().admin.public_key().kid());
  Response r = get("/v1/keys/" + admin_kid);
  ASSERT_EQ(r.status, 200) << r.body;
  json j = parse_json(r);
  EXPECT_EQ(j.value("kid", ""), admin_kid);
  EXPECT_EQ(j.value("name", ""), "admin-1");
  EXPECT_EQ(j.value("alg", ""), "Ed25519");
  EXPECT_EQ(j["roles"], (json{"admin", "issuer"}));
  EXPECT_EQ(j.value("status", ""), "active");
  EXPECT_EQ(j.value("last_sequence", 99), 0);
  EXPECT_TRUE(j["registered_index"].is_null());
  EXPECT_FALSE(j.contains("revoked_index"));
  EXPECT_NE(j.value("public_key_pem", "").find("BEGIN PUBLIC KEY"), std::string::npos);

  register_statement(registration(test_keys().admin, next_admin_seq(), issuer_key().public_key(),
                                  ledger::kRoleIssuer | ledger::kRoleOpaque, "device-key"));
  register_statement(
      testutil::revocation(test_keys().admin, next_admin_seq(), issuer_key().public_key().kid()));
  json k = parse_json(get("/v1/keys/" + to_hex(issuer_key().public_key().kid())));
  EXPECT_EQ(k.value("name", ""), "device-key");
  EXPECT_EQ(k["roles"], (json{"issuer", "opaque"}));
  EXPECT_EQ(k.value("status", ""), "revoked");
  EXPECT_EQ(k.value("registered_index", 99), 0);
  EXPECT_EQ(k.value("revoked_index", 99), 1);
  EXPECT_EQ(parse_json(get("/v1/keys/" + admin_kid)).value("last_sequence", 0), 2);

  expect_problem(get("/v1/keys/" + std::string(64, '1')), 404, "not-found");
  expect_problem(get("/v1/keys/short"), 400, "invalid-argument");
}

TEST_F(RouterTest, NodeGenesisHealthz) {
  Response n = get("/v1/node");
  ASSERT_EQ(n.status, 200);
  json j = parse_json(n);
  EXPECT_EQ(j.value("name", ""), "node-1");
  EXPECT_EQ(j.value("consortium", ""), "custos test consortium");
  EXPECT_EQ(j.value("kid", ""), to_hex(test_keys().node.public_key().kid()));
  EXPECT_EQ(j.value("alg", ""), "Ed25519");  // consensus signs with Ed25519 node keys
  EXPECT_NE(j.value("public_key_pem", "").find("BEGIN PUBLIC KEY"), std::string::npos);
  EXPECT_EQ(j.value("genesis_hash", ""), to_hex(test_keys().genesis.hash));
  EXPECT_EQ(j.value("height", 99), 0);
  EXPECT_EQ(j.value("log_size", 99), 0);
  EXPECT_EQ(j.value("root", ""), to_hex(merkle::empty_root()));

  Response g = get("/v1/genesis");
  ASSERT_EQ(g.status, 200);
  EXPECT_EQ(g.content_type, "application/json");
  EXPECT_EQ(g.body, str(test_keys().genesis.json_bytes));  // byte for byte: it is hashed

  register_statement(sign(test_keys().admin, 1));
  Response h = get("/healthz");
  ASSERT_EQ(h.status, 200);
  json hj = parse_json(h);
  EXPECT_EQ(hj.value("status", ""), "ok");
  EXPECT_EQ(hj.value("height", 99), 1);
  EXPECT_EQ(hj.value("log_size", 99), 1);
  // A one-node consortium: always its own leader, always connected to itself.
  EXPECT_EQ(hj["consensus"].value("nodes", 0), 1);
  EXPECT_EQ(hj["consensus"].value("leader", 99), 0);
  EXPECT_EQ(hj["consensus"]["connected"], json::array({true}));
  EXPECT_GE(hj["consensus"].value("committed_round", 0), 1);
  EXPECT_EQ(call("HEAD", "/healthz").status, 200);
}

TEST_F(RouterTest, MetricsText) {
  register_statement(sign(test_keys().admin, 1));
  (void)post_statement(to_bytes("junk"));
  (void)get("/nowhere");
  Response m = get("/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.content_type, "text/plain; version=0.0.4");
  for (const char* line :
       {"custos_statements_registered_total 1\n",
        "custos_statements_refused_total{reason=\"malformed\"} 1\n",
        "custos_blocks_written_total 1\n", "# TYPE custos_http_requests_total counter\n",
        "custos_http_requests_total 3\n",  // counted after the response is made
        "custos_http_responses_total{class=\"2xx\"} 1\n",
        "custos_http_responses_total{class=\"4xx\"} 2\n", "custos_log_size 1\n",
        "custos_block_height 1\n", "custos_pending_statements 0\n", "custos_keys 1\n",
        "# TYPE custos_storage_bytes gauge\n", "# TYPE process_resident_memory_bytes gauge\n"}) {
    EXPECT_NE(m.body.find(line), std::string::npos) << line << "\n" << m.body;
  }
  // Every sample line is "name[{labels}] value".
  size_t pos = 0;
  while (pos < m.body.size()) {
    size_t end = m.body.find('\n', pos);
    ASSERT_NE(end, std::string::npos) << "last line not terminated";
    std::string line = m.body.substr(pos, end - pos);
    pos = end + 1;
    if (line.rfind("# ", 0) == 0) continue;
    size_t space = line.rfind(' ');
    ASSERT_NE(space, std::string::npos) << line;
    char* parse_end = nullptr;
    std::strtod(line.c_str() + space + 1, &parse_end);
    EXPECT_EQ(*parse_end, '\0') << line;
  }
}

// ---------------------------------------------------------------------------
// Routing

TEST_F(RouterTest, UnknownRoutesAre404) {
  for (const char* path : {"/", "", "/v2/entries", "/v1", "/v1/nothing", "/v1/entries/a/b/c",
                           "/v1/entries/"
                           "0000000000000000000000000000000000000000000000000000000000000000/other",
                           "/v1/proofs", "/v1/proofs/inclusion", "/v1/blocks", "/v1/keys",
                           "/healthz/x", "/metrics/x", "/V1/node"}) {
    SCOPED_TRACE(path);
    expect_problem(get(path), 404, "not-found");
  }
  // Repeated slashes are tolerated.
  EXPECT_EQ(get("//v1//node/").status, 200);
}

TEST_F(RouterTest, InvalidUtf8InPathOrMethodIsStillAProblem) {
  // The detail names the path; it must not make JSON encoding fail (a 500).
  Response r = get("/s\xff\xfe/x");
  expect_problem(r, 404, "not-found");
  EXPECT_NE(r.body.find("\xef\xbf\xbd"), std::string::npos) << r.body;  // U+FFFD
  expect_problem(call("G\xc3T", "/v1/node"), 405, "method-not-allowed");
  expect_problem(call("POST", "/healthz\xc0"), 404, "not-found");
}

TEST_F(RouterTest, WrongMethodsAre405) {
  const std::string id(64, '0');
  for (const auto& [method, path] : std::vector<std::pair<std::string, std::string>>{
           {"DELETE", "/v1/entries"},
           {"PUT", "/v1/entries"},
           {"GET", "/v1/entries/batch"},
           {"POST", "/v1/entries/" + id},
           {"POST", "/v1/entries/" + id + "/receipt"},
           {"POST", "/v1/checkpoint"},
           {"POST", "/v1/proofs/consistency"},
           {"POST", "/v1/blocks/0"},
           {"PATCH", "/v1/keys/" + id},
           {"POST", "/v1/node"},
           {"POST", "/v1/genesis"},
           {"POST", "/healthz"},
           {"DELETE", "/metrics"},
           {"get", "/v1/node"},  // methods are case-sensitive
       }) {
    SCOPED_TRACE(method + " " + path);
    expect_problem(call(method, path), 405, "method-not-allowed");
  }
}

TEST_F(RouterTest, HeadIsAnsweredLikeGet) {
  Response h = call("HEAD", "/v1/node");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body, get("/v1/node").body);
}

}  // namespace
}  // namespace custos::api
