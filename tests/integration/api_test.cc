// The HTTP API of a real `custos node` process, used the way clients use it:
// every route's success path with its documented fields, and every error
// path on purpose, each checked for status, problem type and that nothing
// was written to the log.
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <map>
#include <set>

#include "core/limits.h"
#include "cose/receipt.h"
#include "crypto/hash.h"
#include "integration/harness.h"
#include "ledger/block.h"
#include "merkle/merkle.h"

namespace custos::integration {
namespace {

// One node for the whole suite: starting RocksDB per test would dominate the
// runtime. Tests stay independent by using their own keys, issuers and
// subjects, and by measuring the log before and after instead of assuming it.
class ApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    node_ = new NodeProcess(dir_->path());
    ASSERT_TRUE(node_->start());
    admin_ = new crypto::PrivateKey(node_->admin_key());
  }
  static void TearDownTestSuite() {
    if (node_ && node_->running()) {
      EXPECT_EQ(node_->stop(), 0) << slurp(node_->log_path());
    }
    delete admin_;
    delete node_;
    delete dir_;
    admin_ = nullptr;
    node_ = nullptr;
    dir_ = nullptr;
  }

  void SetUp() override {
    ASSERT_NE(node_, nullptr);
    ASSERT_TRUE(node_->running());
    client_ = make_client(node_->port());
  }

  // A new key registered with `roles`; its issuer name is unique per call so
  // queries by issuer see only this test's entries.
  Signer registered_signer(const std::string& issuer_prefix,
                           const std::vector<std::string>& roles = {"issuer"},
                           crypto::Algorithm alg = crypto::Algorithm::kEd25519) {
    static std::atomic<int> n{0};
    Signer s = Signer::generate(issuer_prefix + "-" + std::to_string(n++), alg);
    EXPECT_TRUE(register_key(*client_, *admin_, s.key.public_key(), s.issuer, roles));
    return s;
  }

  Json submit_ok(const Bytes& statement, int want_status = 201) {
    auto res = post_cose(*client_, statement);
    EXPECT_TRUE(res) << httplib::to_string(res.error());
    if (!res) return Json();
    EXPECT_EQ(res->status, want_status) << res->body;
    return Json::parse(res->body, nullptr, false);
  }

  static TempDir* dir_;
  static NodeProcess* node_;
  static crypto::PrivateKey* admin_;
  std::unique_ptr<httplib::Client> client_;
};

TempDir* ApiTest::dir_ = nullptr;
NodeProcess* ApiTest::node_ = nullptr;
crypto::PrivateKey* ApiTest::admin_ = nullptr;

Json payload_doc(int i) {
  return Json{{"reading", i}, {"unit", "mmol/L"}, {"ok", true}};
}

TEST_F(ApiTest, PostEntryRegistersAndAnswersJson) {
  Signer s = registered_signer("pump");
  const uint64_t before = log_size(*client_);
  Bytes st = s.sign_json("pump-17", payload_doc(1));
  Json j = submit_ok(st, 201);
  EXPECT_EQ(j.value("status", ""), "registered");
  EXPECT_EQ(j.value("id", ""), to_hex(crypto::sha256(st)));
  EXPECT_EQ(j["index"].get<uint64_t>(), before);
  EXPECT_GE(j["height"].get<uint64_t>(), 1u);
  EXPECT_FALSE(j.contains("sequence_gap"));
  EXPECT_EQ(log_size(*client_), before + 1);

  // The same bytes again: idempotent, 200 with the original place.
  Json again = submit_ok(st, 200);
  EXPECT_EQ(again.value("status", ""), "already-registered");
  EXPECT_EQ(again["index"], j["index"]);
  EXPECT_EQ(again["height"], j["height"]);
  EXPECT_EQ(log_size(*client_), before + 1);
}

TEST_F(ApiTest, Es256KeysWorkEndToEnd) {
  Signer s = registered_signer("es256", {"issuer"}, crypto::Algorithm::kES256);
  Bytes st = s.sign_json("monitor-1", payload_doc(2));
  Json j = submit_ok(st);
  auto e = json_of(client_->Get("/v1/entries/" + j.value("id", "")));
  EXPECT_EQ(e.value("alg", ""), "ES256");
  auto receipt = client_->Get("/v1/entries/" + j.value("id", "") + "/receipt");
  ASSERT_TRUE(receipt && receipt->status == 200);
  auto parsed = single_receipt(as_view(receipt->body));
  ASSERT_TRUE(parsed.ok()) << parsed.status().to_string();
  EXPECT_TRUE(cose::verify_receipt(*parsed, st, node_->node_key()).ok());
}

TEST_F(ApiTest, GetEntryAsJsonAndAsCose) {
  Signer s = registered_signer("glucometer");
  Bytes st = s.sign_json("patient-42", payload_doc(7));
  Json reg = submit_ok(st);
  const std::string id = reg.value("id", "");

  Json e = json_of(client_->Get("/v1/entries/" + id));
  EXPECT_EQ(e.value("id", ""), id);
  EXPECT_EQ(e["index"], reg["index"]);
  EXPECT_EQ(e["height"], reg["height"]);
  EXPECT_EQ(e.value("issuer", ""), s.issuer);
  EXPECT_EQ(e.value("subject", ""), "patient-42");
  EXPECT_EQ(e.value("content_type", ""), "application/cbor");
  EXPECT_EQ(e.value("kid", ""), s.kid_hex());
  EXPECT_EQ(e.value("alg", ""), "Ed25519");
  EXPECT_EQ(e["sequence"].get<uint64_t>(), 1u);
  EXPECT_EQ(e["payload"], payload_doc(7));
  EXPECT_GT(e["registered_ms"].get<uint64_t>(), 0u);
  EXPECT_EQ(e.value("registered_at", "").back(), 'Z');
  auto raw = base64_decode(e.value("statement_base64", ""));
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(*raw, st);

  auto cose_res = client_->Get("/v1/entries/" + id, {{"Accept", "application/cose"}});
  ASSERT_TRUE(cose_res);
  EXPECT_EQ(cose_res->status, 200);
  EXPECT_EQ(cose_res->get_header_value("Content-Type"), "application/cose");
  EXPECT_EQ(cose_res->body, as_string(st));
}

TEST_F(ApiTest, ReceiptVerifiesOfflineWithTheNodeKey) {
  Signer s = registered_signer("ventilator");
  std::vector<Bytes> statements;
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    statements.push_back(s.sign_json("icu-bed-3", payload_doc(i)));
    ids.push_back(submit_ok(statements.back()).value("id", ""));
  }
  // The node key as a verifier gets it out of band: the PEM file --dev
  // wrote, and /v1/node must agree with it.
  const crypto::PublicKey& node_key = node_->node_key();
  Json info = json_of(client_->Get("/v1/node"));
  EXPECT_EQ(info.value("public_key_pem", ""), node_key.to_pem());
  for (size_t i = 0; i < ids.size(); ++i) {
    auto res = client_->Get("/v1/entries/" + ids[i] + "/receipt");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/cbor");
    auto receipt = single_receipt(as_view(res->body));
    ASSERT_TRUE(receipt.ok()) << receipt.status().to_string();
    EXPECT_EQ(receipt->header.kid, node_key.kid());
    Status ok = cose::verify_receipt(*receipt, statements[i], node_key);
    EXPECT_TRUE(ok.ok()) << ok.to_string();
    // Bound to its own statement: the neighbour's bytes do not verify.
    EXPECT_FALSE(cose::verify_receipt(*receipt, statements[(i + 1) % ids.size()], node_key).ok());
    // And to the node key: another key does not verify it.
    auto other = crypto::PrivateKey::generate(crypto::Algorithm::kEd25519);
    EXPECT_FALSE(cose::verify_receipt(*receipt, statements[i], other->public_key()).ok());
  }
}

TEST_F(ApiTest, CheckpointAsJsonAndAsSignedCose) {
  Signer s = registered_signer("checkpoint");
  submit_ok(s.sign_json("x", payload_doc(1)));
  Json j = json_of(client_->Get("/v1/checkpoint"));
  auto res = client_->Get("/v1/checkpoint", {{"Accept", "application/cose"}});
  ASSERT_TRUE(res && res->status == 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/cose");
  auto header = ledger::verify_checkpoint(as_view(res->body), node_->node_key());
  ASSERT_TRUE(header.ok()) << header.status().to_string();
  // Nothing was submitted in between, so both describe the same block.
  EXPECT_EQ(header->height, j["height"].get<uint64_t>());
  EXPECT_EQ(header->log_size, j["log_size"].get<uint64_t>());
  EXPECT_EQ(to_hex(header->root), j.value("root", ""));
  EXPECT_EQ(base64_encode(as_view(res->body)), j.value("checkpoint_base64", ""));
  // A checkpoint is bound to the node key.
  auto other = crypto::PrivateKey::generate(crypto::Algorithm::kEd25519);
  EXPECT_FALSE(ledger::verify_checkpoint(as_view(res->body), other->public_key()).ok());
}

Hash256 hash_of(const Json& hex) {
  auto h = hash_from_hex(hex.get<std::string>());
  EXPECT_TRUE(h.ok()) << hex;
  return h.ok() ? *h : Hash256{};
}

TEST_F(ApiTest, ConsistencyProofsJsonAndCborVerify) {
  Signer s = registered_signer("consistency");
  submit_ok(s.sign_json("c", payload_doc(0)));
  Json cp1 = json_of(client_->Get("/v1/checkpoint"));
  for (int i = 1; i <= 6; ++i) submit_ok(s.sign_json("c", payload_doc(i)));
  Json cp2 = json_of(client_->Get("/v1/checkpoint"));
  const uint64_t size1 = cp1["log_size"], size2 = cp2["log_size"];
  ASSERT_LT(size1, size2);
  const std::string q =
      "/v1/proofs/consistency?from=" + std::to_string(size1) + "&to=" + std::to_string(size2);

  Json pj = json_of(client_->Get(q));
  EXPECT_EQ(pj["from"].get<uint64_t>(), size1);
  EXPECT_EQ(pj["to"].get<uint64_t>(), size2);
  std::vector<Hash256> path;
  for (const auto& h : pj["proof"]) path.push_back(hash_of(h));
  Hash256 root1 = hash_of(cp1["root"]), root2 = hash_of(cp2["root"]);
  Status ok = merkle::verify_consistency(size1, size2, root1, root2, path);
  EXPECT_TRUE(ok.ok()) << ok.to_string();
  EXPECT_FALSE(merkle::verify_consistency(size1, size2, root2, root1, path).ok());

  auto res = client_->Get(q, {{"Accept", "application/cbor"}});
  ASSERT_TRUE(res && res->status == 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "application/cbor");
  auto proof = cose::decode_consistency_proof(as_view(res->body));
  ASSERT_TRUE(proof.ok()) << proof.status().to_string();
  EXPECT_EQ(proof->size1, size1);
  EXPECT_EQ(proof->size2, size2);
  EXPECT_EQ(proof->path, path);
  EXPECT_TRUE(merkle::verify_consistency(size1, size2, root1, root2, proof->path).ok());

  // from == to is the empty proof.
  Json same = json_of(client_->Get("/v1/proofs/consistency?from=" + std::to_string(size2) +
                                   "&to=" + std::to_string(size2)));
  EXPECT_TRUE(same["proof"].empty());
}

TEST_F(ApiTest, BlocksFormAHashChain) {
  Signer s = registered_signer("blocks");
  for (int i = 0; i < 3; ++i) submit_ok(s.sign_json("b", payload_doc(i)));
  Json head = json_of(client_->Get("/v1/checkpoint"));
  const uint64_t height = head["height"];
  Json prev;
  uint64_t entries = 0;
  for (uint64_t h = 0; h <= height; ++h) {
    Json b = json_of(client_->Get("/v1/blocks/" + std::to_string(h)));
    ASSERT_EQ(b["height"].get<uint64_t>(), h);
    if (h == 0) {
      EXPECT_EQ(b.value("prev_hash", ""), std::string(64, '0'));
      EXPECT_EQ(b["log_size"].get<uint64_t>(), 0u);
      Json info = json_of(client_->Get("/v1/node"));
      EXPECT_EQ(b.value("genesis_hash", ""), info.value("genesis_hash", ""));
    } else {
      EXPECT_EQ(b.value("prev_hash", ""), prev.value("header_hash", "")) << "at height " << h;
      EXPECT_GE(b["time_ms"].get<uint64_t>(), prev["time_ms"].get<uint64_t>());
      EXPECT_GE(b["entries"].get<uint64_t>(), 1u);
      EXPECT_FALSE(b.contains("genesis_hash"));
    }
    entries += b["entries"].get<uint64_t>();
    EXPECT_EQ(b["log_size"].get<uint64_t>(), entries);
    prev = b;
  }
  EXPECT_EQ(prev.value("header_hash", ""), head.value("header_hash", ""));
  EXPECT_EQ(prev.value("root", ""), head.value("root", ""));
  EXPECT_TRUE(
      is_problem(client_->Get("/v1/blocks/" + std::to_string(height + 1000)), 404, "not-found"));
}

// Pages through /v1/entries with `query` and `limit`, returning the ids in
// the order served; checks that pages never exceed the limit.
std::vector<std::string> page_through(httplib::Client& c, const std::string& query, int limit,
                                      int* pages) {
  std::vector<std::string> ids;
  std::string cursor;
  *pages = 0;
  for (int guard = 0; guard < 1000; ++guard) {
    std::string path = "/v1/entries?" + query + "&limit=" + std::to_string(limit);
    if (!cursor.empty()) path += "&cursor=" + cursor;
    Json page = json_of(c.Get(path));
    if (!page.is_object()) return ids;
    ++*pages;
    EXPECT_LE(page["entries"].size(), static_cast<size_t>(limit));
    for (const auto& e : page["entries"]) {
      ids.push_back(e.value("id", ""));
      EXPECT_FALSE(e.contains("statement_base64")) << "listings carry no statement bytes";
    }
    if (page["next_cursor"].is_null()) return ids;
    cursor = page["next_cursor"].get<std::string>();
  }
  ADD_FAILURE() << "paging did not end";
  return ids;
}

TEST_F(ApiTest, EntriesQueryPagesReturnExactlyTheMatchesInOrder) {
  // Two issuers, two subjects, two content types, interleaved, so every
  // filter has to skip entries of the others.
  Signer a = registered_signer("qa", {"issuer", "opaque"});
  Signer b = registered_signer("qb", {"issuer", "opaque"});
  const std::string other_type = "application/vnd.example.reading+cbor";
  struct Made {
    std::string id, issuer, subject, type;
    uint64_t index;
  };
  std::vector<Made> made;
  for (int i = 0; i < 23; ++i) {
    Signer& s = (i % 3 == 0) ? b : a;
    const std::string subject = (i % 2 == 0) ? "dev-even" : "dev-odd";
    const std::string type = (i % 4 == 1) ? other_type : std::string(ledger::kTypeCbor);
    auto v = cbor::from_json(payload_doc(i));
    Json r = submit_ok(s.sign(subject, cbor::encode(*v), type));
    made.push_back({r.value("id", ""), s.issuer, subject, type, r["index"].get<uint64_t>()});
  }
  auto expect = [&](auto pred) {
    std::vector<std::string> ids;
    for (const auto& m : made)
      if (pred(m)) ids.push_back(m.id);
    return ids;
  };
  int pages = 0;
  EXPECT_EQ(page_through(*client_, "issuer=" + a.issuer, 4, &pages),
            expect([&](const Made& m) { return m.issuer == a.issuer; }));
  EXPECT_GE(pages, 4);
  EXPECT_EQ(page_through(*client_, "issuer=" + a.issuer + "&subject=dev-odd", 3, &pages),
            expect([&](const Made& m) { return m.issuer == a.issuer && m.subject == "dev-odd"; }));
  EXPECT_GE(pages, 3);
  EXPECT_EQ(page_through(*client_, "issuer=" + b.issuer + "&type=" + percent_encode(other_type), 2,
                         &pages),
            expect([&](const Made& m) { return m.issuer == b.issuer && m.type == other_type; }));
  EXPECT_EQ(page_through(*client_, "issuer=" + a.issuer + "&subject=nobody", 5, &pages),
            std::vector<std::string>{});

  // Time windows: from is inclusive, to exclusive, on registration time.
  std::map<std::string, uint64_t> ms;
  for (const auto& m : made) {
    ms[m.id] = json_of(client_->Get("/v1/entries/" + m.id))["registered_ms"].get<uint64_t>();
  }
  const uint64_t from = ms[made[5].id], to = ms[made[17].id];
  ASSERT_LE(from, to);
  EXPECT_EQ(page_through(*client_,
                         "issuer=" + a.issuer + "&from=" + std::to_string(from) +
                             "&to=" + std::to_string(to),
                         3, &pages),
            expect([&](const Made& m) {
              return m.issuer == a.issuer && ms[m.id] >= from && ms[m.id] < to;
            }));
  // The RFC 3339 form names the same instant.
  Json e5 = json_of(client_->Get("/v1/entries/" + made[5].id));
  EXPECT_EQ(page_through(*client_, "issuer=" + a.issuer + "&from=" + e5.value("registered_at", ""),
                         50, &pages),
            expect([&](const Made& m) { return m.issuer == a.issuer && ms[m.id] >= from; }));

  // A cursor starts the listing at that log index.
  Json page = json_of(client_->Get(
      "/v1/entries?subject=dev-even&cursor=" + std::to_string(made[10].index) + "&limit=1000"));
  std::vector<std::string> got;
  for (const auto& e : page["entries"]) {
    if (e.value("issuer", "") == a.issuer || e.value("issuer", "") == b.issuer)
      got.push_back(e.value("id", ""));
  }
  EXPECT_EQ(got, expect([&](const Made& m) {
              return m.subject == "dev-even" && m.index >= made[10].index;
            }));
}

TEST_F(ApiTest, KeysHealthAndMetrics) {
  Signer s = registered_signer("meta");
  Json k = json_of(client_->Get("/v1/keys/" + s.kid_hex()));
  EXPECT_EQ(k.value("kid", ""), s.kid_hex());
  EXPECT_EQ(k.value("name", ""), s.issuer);
  EXPECT_EQ(k.value("alg", ""), "Ed25519");
  EXPECT_EQ(k.value("status", ""), "active");
  EXPECT_EQ(k["roles"], Json::array({"issuer"}));
  EXPECT_EQ(k["last_sequence"].get<uint64_t>(), 0u);
  EXPECT_EQ(k.value("public_key_pem", ""), s.key.public_key().to_pem());
  EXPECT_TRUE(k["registered_index"].is_number());
  submit_ok(s.sign_json("m", payload_doc(1)));
  EXPECT_EQ(json_of(client_->Get("/v1/keys/" + s.kid_hex()))["last_sequence"].get<uint64_t>(), 1u);
  // The genesis admin has no registration index.
  Json admin = json_of(client_->Get("/v1/keys/" + to_hex(admin_->public_key().kid())));
  EXPECT_TRUE(admin["registered_index"].is_null());
  EXPECT_EQ(admin.value("name", ""), "admin");

  Json h = json_of(client_->Get("/healthz"));
  EXPECT_EQ(h.value("status", ""), "ok");
  EXPECT_GE(h["log_size"].get<uint64_t>(), 2u);
  EXPECT_GE(h["height"].get<uint64_t>(), 1u);

  auto m = client_->Get("/metrics");
  ASSERT_TRUE(m && m->status == 200);
  EXPECT_EQ(m->get_header_value("Content-Type").rfind("text/plain", 0), 0u);
  // Every registration in this node went through the counter, so it equals
  // the log size (nothing else writes entries).
  std::map<std::string, double> values;
  std::istringstream lines(m->body);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    auto sp = line.rfind(' ');
    ASSERT_NE(sp, std::string::npos) << line;
    values[line.substr(0, sp)] = std::stod(line.substr(sp + 1));
  }
  const uint64_t size = log_size(*client_);
  EXPECT_EQ(values["custos_statements_registered_total"], static_cast<double>(size));
  EXPECT_EQ(values["custos_log_size"], static_cast<double>(size));
  for (const char* name :
       {"custos_blocks_written_total", "custos_block_height", "custos_http_requests_total",
        "custos_keys", "custos_pending_statements", "custos_storage_bytes",
        "custos_sequence_gaps_total", "custos_registration_latency_seconds_count"}) {
    EXPECT_TRUE(values.count(name)) << name << " missing from\n" << m->body;
  }
  EXPECT_NE(m->body.find("custos_statements_refused_total{reason="), std::string::npos);
  EXPECT_NE(m->body.find("# TYPE custos_statements_registered_total counter"), std::string::npos);
}

TEST_F(ApiTest, BatchGivesOneResultPerStatementInOrder) {
  Signer s = registered_signer("gateway");
  Signer stranger = Signer::generate("stranger");
  const uint64_t before = log_size(*client_);
  Bytes good1 = s.sign_json("ward-1", payload_doc(1));
  Bytes good2 = s.sign_json("ward-1", payload_doc(2));
  Bytes bad_sig = s.sign_json("ward-1", payload_doc(3));
  bad_sig.back() ^= 0x01;  // the signature is the last bstr of the COSE_Sign1
  Bytes good3 = s.sign_json("ward-1", payload_doc(4));
  std::vector<Bytes> batch{good1,
                           to_bytes("not cbor \xff"),
                           good2,
                           bad_sig,
                           stranger.sign_json("x", payload_doc(5)),
                           good3,
                           good1};
  auto res = post_batch(*client_, batch);
  Json j = json_of(res);
  ASSERT_TRUE(j.contains("results"));
  const Json& r = j["results"];
  ASSERT_EQ(r.size(), batch.size());
  auto refused_as = [&](size_t i, const std::string& type) {
    EXPECT_EQ(r[i].value("status", ""), "refused") << r[i];
    EXPECT_EQ(r[i]["problem"].value("type", ""), "urn:custos:problem:" + type) << r[i];
  };
  EXPECT_EQ(r[0].value("status", ""), "registered");
  EXPECT_EQ(r[0].value("id", ""), to_hex(crypto::sha256(good1)));
  refused_as(1, "malformed");
  EXPECT_EQ(r[2].value("status", ""), "registered");
  refused_as(3, "bad-signature");
  refused_as(4, "unknown-key");
  EXPECT_EQ(r[5].value("status", ""), "registered");
  // A duplicate inside the batch is answered with the first one's place.
  EXPECT_EQ(r[6].value("status", ""), "already-registered");
  EXPECT_EQ(r[6]["index"], r[0]["index"]);
  // Registered in the order sent.
  EXPECT_LT(r[0]["index"].get<uint64_t>(), r[2]["index"].get<uint64_t>());
  EXPECT_LT(r[2]["index"].get<uint64_t>(), r[5]["index"].get<uint64_t>());
  EXPECT_EQ(log_size(*client_), before + 3);
  EXPECT_EQ(json_of(client_->Get("/v1/entries/" + r[5].value("id", "")))["payload"],
            payload_doc(4));
}

TEST_F(ApiTest, SequenceGapIsAcceptedAndReported) {
  Signer s = registered_signer("gappy");
  submit_ok(s.sign_json("g", payload_doc(1), 1));
  Json r = submit_ok(s.sign_json("g", payload_doc(2), 5));
  EXPECT_EQ(r.value("status", ""), "registered");
  ASSERT_TRUE(r.contains("sequence_gap")) << r;
  EXPECT_EQ(r["sequence_gap"], (Json{{"expected", 2}, {"got", 5}, {"missing", 3}}));
  Json e = json_of(client_->Get("/v1/entries/" + r.value("id", "")));
  EXPECT_EQ(e["sequence_gap"], r["sequence_gap"]);
  // The next in order has no gap; the skipped numbers stay unusable.
  EXPECT_FALSE(submit_ok(s.sign_json("g", payload_doc(3), 6)).contains("sequence_gap"));
  EXPECT_TRUE(is_problem(post_cose(*client_, s.sign_json("g", payload_doc(4), 3)), 409, "replay"));
}

// --- Error paths: each must answer the documented problem and store nothing.

class ApiErrorTest : public ApiTest {
 protected:
  void SetUp() override {
    ApiTest::SetUp();
    before_ = log_size(*client_);
  }
  void TearDown() override {
    EXPECT_EQ(log_size(*client_), before_) << "a refused request changed the log";
  }
  uint64_t before_ = 0;
};

TEST_F(ApiErrorTest, MalformedCbor) {
  for (const std::string& body : {std::string("\xff\xff\xff", 3), std::string(""),
                                  std::string("\x84\x40\xa0", 3) /* truncated array */}) {
    EXPECT_TRUE(
        is_problem(client_->Post("/v1/entries", body, "application/cose"), 400, "malformed"))
        << "body of " << body.size() << " bytes";
  }
}

TEST_F(ApiErrorTest, CborThatIsNotCose) {
  cbor::Map m;
  m.emplace_back(cbor::text("hello"), cbor::text("world"));
  Bytes body = cbor::encode(cbor::Value::map(std::move(m)));
  EXPECT_TRUE(is_problem(client_->Post("/v1/entries", as_string(body), "application/cose"), 400,
                         "malformed"));
  Bytes arr = cbor::encode(cbor::Value::array({cbor::Value::uint(1), cbor::Value::uint(2)}));
  EXPECT_TRUE(is_problem(client_->Post("/v1/entries", as_string(arr), "application/cose"), 400,
                         "malformed"));
}

TEST_F(ApiErrorTest, BadSignature) {
  Signer s = registered_signer("badsig");
  before_ = log_size(*client_);
  Bytes st = s.sign_json("x", payload_doc(1));
  st.back() ^= 0x80;
  EXPECT_TRUE(is_problem(post_cose(*client_, st), 422, "bad-signature"));
  // Signed by another key under this key's kid.
  Signer impostor = Signer::generate(s.issuer);
  cose::StatementHeader h;
  h.content_type = "application/cbor";
  h.issuer = s.issuer;
  h.subject = "x";
  h.issued_at_s = unix_seconds();
  h.sequence = 1;
  Bytes forged = cose::sign_statement(impostor.key, h, cbor::encode(cbor::Value::uint(1)));
  // Swap the kid in the protected header for the victim's.
  const Hash256 from = impostor.key.public_key().kid(), to = s.key.public_key().kid();
  auto it = std::search(forged.begin(), forged.end(), from.begin(), from.end());
  ASSERT_NE(it, forged.end());
  std::copy(to.begin(), to.end(), it);
  EXPECT_TRUE(is_problem(post_cose(*client_, forged), 422, "bad-signature"));
}

TEST_F(ApiErrorTest, UnknownKey) {
  Signer s = Signer::generate("nobody");
  EXPECT_TRUE(
      is_problem(post_cose(*client_, s.sign_json("x", payload_doc(1))), 422, "unknown-key"));
  EXPECT_TRUE(is_problem(client_->Get("/v1/keys/" + s.kid_hex()), 404, "not-found"));
}

TEST_F(ApiErrorTest, RevokedKey) {
  Signer s = registered_signer("revoked");
  submit_ok(s.sign_json("x", payload_doc(1)));
  ASSERT_TRUE(revoke_key(*client_, *admin_, s.key.public_key().kid()));
  Json k = json_of(client_->Get("/v1/keys/" + s.kid_hex()));
  EXPECT_EQ(k.value("status", ""), "revoked");
  EXPECT_TRUE(k["revoked_index"].is_number());
  before_ = log_size(*client_);
  EXPECT_TRUE(
      is_problem(post_cose(*client_, s.sign_json("x", payload_doc(2))), 422, "revoked-key"));
  // Revoking twice is a conflict, and stores nothing either.
  ledger::KeyRevocation rev{s.key.public_key().kid(), "again"};
  Bytes again = sign_admin(*client_, *admin_, ledger::kTypeKeyRevoke, s.kid_hex(),
                           cbor::encode(ledger::key_revocation_payload(rev)));
  EXPECT_TRUE(is_problem(post_cose(*client_, again), 409, "conflict"));
}

TEST_F(ApiErrorTest, ReplayedSequence) {
  Signer s = registered_signer("replay");
  submit_ok(s.sign_json("x", payload_doc(1), 1));
  submit_ok(s.sign_json("x", payload_doc(2), 2));
  before_ = log_size(*client_);
  // Different bytes, reused or older sequence numbers.
  EXPECT_TRUE(is_problem(post_cose(*client_, s.sign_json("x", payload_doc(3), 2)), 409, "replay"));
  EXPECT_TRUE(is_problem(post_cose(*client_, s.sign_json("x", payload_doc(4), 1)), 409, "replay"));
}

TEST_F(ApiErrorTest, PolicyRefusesTypesAndRoles) {
  Signer s = registered_signer("policy");  // issuer role only
  before_ = log_size(*client_);
  EXPECT_TRUE(is_problem(post_cose(*client_, s.sign("x", to_bytes("opaque"), "text/plain")), 422,
                         "policy"));
  ledger::KeyRevocation rev{s.key.public_key().kid(), "self"};
  EXPECT_TRUE(
      is_problem(post_cose(*client_, s.sign("x", cbor::encode(ledger::key_revocation_payload(rev)),
                                            std::string(ledger::kTypeKeyRevoke))),
                 422, "policy"));
}

TEST_F(ApiErrorTest, WrongContentType) {
  Signer s = registered_signer("ctype");
  before_ = log_size(*client_);
  Bytes st = s.sign_json("x", payload_doc(1));
  for (const char* ct : {"application/json", "text/plain", "application/cbor"}) {
    EXPECT_TRUE(
        is_problem(client_->Post("/v1/entries", as_string(st), ct), 415, "unsupported-media-type"))
        << ct;
  }
  EXPECT_TRUE(is_problem(
      client_->Post("/v1/entries/batch", as_string(batch_body({st})), "application/cose"), 415,
      "unsupported-media-type"));
  // The statement itself was fine: nothing was kept of it.
  EXPECT_TRUE(
      is_problem(client_->Get("/v1/entries/" + to_hex(crypto::sha256(st))), 404, "not-found"));
}

TEST_F(ApiErrorTest, BodiesOverTheLimits) {
  Signer s = registered_signer("huge");
  before_ = log_size(*client_);
  // A correctly signed statement one byte over the limit (payload padded).
  size_t pad = limits::kStatementBytesMax - 200;
  Bytes st = s.sign("x", cbor::encode(cbor::Value::bytes(Bytes(pad, 0x42))), "application/cbor", 1);
  while (st.size() <= limits::kStatementBytesMax) {
    pad += limits::kStatementBytesMax + 1 - st.size();
    st = s.sign("x", cbor::encode(cbor::Value::bytes(Bytes(pad, 0x42))), "application/cbor", 1);
  }
  ASSERT_GT(st.size(), limits::kStatementBytesMax);
  EXPECT_TRUE(is_problem(post_cose(*client_, st), 413, "too-large"));
  EXPECT_TRUE(
      is_problem(client_->Post("/v1/entries", std::string(limits::kStatementBytesMax + 1, 'x'),
                               "application/cose"),
                 413, "too-large"));
  // Inside a batch the same statement is refused on its own.
  Json r = json_of(post_batch(*client_, {st}));
  ASSERT_EQ(r["results"].size(), 1u);
  EXPECT_EQ(r["results"][0]["problem"].value("type", ""), "urn:custos:problem:too-large");
  // Over the HTTP body limit: refused before the router sees it.
  EXPECT_TRUE(is_problem(
      client_->Post("/v1/entries/batch", std::string(limits::kHttpBodyBytesMax + 1, '\0'),
                    "application/cbor"),
      413, "too-large"));
}

TEST_F(ApiErrorTest, BatchOverTheStatementLimit) {
  Signer s = registered_signer("bigbatch");
  before_ = log_size(*client_);
  std::vector<Bytes> batch;
  for (size_t i = 0; i <= limits::kBatchStatementsMax; ++i) {
    batch.push_back(s.sign_json("x", payload_doc(static_cast<int>(i))));
  }
  ASSERT_EQ(batch.size(), limits::kBatchStatementsMax + 1);
  EXPECT_TRUE(is_problem(post_batch(*client_, batch), 413, "too-large"));
  // Not bstr items, not an array: malformed.
  Bytes texts = cbor::encode(cbor::Value::array({cbor::text("a")}));
  EXPECT_TRUE(is_problem(client_->Post("/v1/entries/batch", as_string(texts), "application/cbor"),
                         400, "malformed"));
  Bytes map = cbor::encode(cbor::Value::map({}));
  EXPECT_TRUE(is_problem(client_->Post("/v1/entries/batch", as_string(map), "application/cbor"),
                         400, "malformed"));
  EXPECT_TRUE(
      is_problem(client_->Post("/v1/entries/batch", "\xff", "application/cbor"), 400, "malformed"));
}

TEST_F(ApiErrorTest, BadIdsAndParameters) {
  for (const char* path :
       {"/v1/entries/xyz",
        "/v1/entries/" /* 63 hex */ "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
        "e",
        "/v1/entries/zz/receipt", "/v1/keys/not-a-kid", "/v1/blocks/abc", "/v1/blocks/-1",
        "/v1/entries?limit=0", "/v1/entries?limit=1001", "/v1/entries?limit=ten",
        "/v1/entries?cursor=-3", "/v1/entries?from=yesterday",
        "/v1/entries?to=2026-13-45T99:00:00Z", "/v1/proofs/consistency",
        "/v1/proofs/consistency?from=1", "/v1/proofs/consistency?from=a&to=2",
        "/v1/proofs/consistency?from=0&to=1", "/v1/proofs/consistency?from=3&to=2",
        "/v1/proofs/consistency?from=1&to=99999999"}) {
    EXPECT_TRUE(is_problem(client_->Get(path), 400, "invalid-argument")) << path;
  }
  const std::string missing(64, 'a');
  EXPECT_TRUE(is_problem(client_->Get("/v1/entries/" + missing), 404, "not-found"));
  EXPECT_TRUE(is_problem(client_->Get("/v1/entries/" + missing + "/receipt"), 404, "not-found"));
  EXPECT_TRUE(is_problem(client_->Get("/v1/keys/" + missing), 404, "not-found"));
}

TEST_F(ApiErrorTest, UnknownRoutesAndWrongMethods) {
  for (const char* path : {"/", "/v2/entries", "/v1", "/v1/nothing", "/v1/entries/a/b/c",
                           "/healthz/deep", "/v1/proofs/inclusion"}) {
    EXPECT_TRUE(is_problem(client_->Get(path), 404, "not-found")) << path;
  }
  EXPECT_TRUE(is_problem(client_->Delete("/v1/entries"), 405, "method-not-allowed"));
  EXPECT_TRUE(
      is_problem(client_->Put("/v1/entries", "x", "application/cose"), 405, "method-not-allowed"));
  EXPECT_TRUE(is_problem(client_->Get("/v1/entries/batch"), 405, "method-not-allowed"));
  EXPECT_TRUE(is_problem(client_->Post("/healthz", "", "text/plain"), 405, "method-not-allowed"));
  EXPECT_TRUE(
      is_problem(client_->Post("/v1/checkpoint", "", "text/plain"), 405, "method-not-allowed"));
  EXPECT_TRUE(is_problem(client_->Patch("/v1/keys/" + std::string(64, 'a'), "x", "text/plain"), 405,
                         "method-not-allowed"));
  EXPECT_TRUE(is_problem(client_->Delete("/v1/blocks/1"), 405, "method-not-allowed"));
}

int64_t ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// A client that opens a connection, sends half a request and stalls must
// not hold its worker forever, and must not stop the node serving others.
TEST_F(ApiTest, SlowClientIsCutOffWhileOthersAreServed) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(node_->port()));
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  // Our own recv must outlast the server's read timeout by a margin.
  timeval tv{limits::kHttpReadTimeoutMs / 1000 + limits::kHttpKeepAliveIdleS + 10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  const std::string half = "POST /v1/entries HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty";
  ASSERT_EQ(::send(fd, half.data(), half.size(), 0), static_cast<ssize_t>(half.size()));
  const auto stalled = Clock::now();

  std::atomic<bool> done{false};
  std::atomic<int> served{0}, failed{0};
  std::atomic<int64_t> worst_ms{0};
  std::thread others([&] {
    auto c = make_client(node_->port(), 5);
    while (!done) {
      auto t0 = Clock::now();
      auto res = c->Get("/healthz");
      const int64_t ms = ms_since(t0);
      worst_ms = std::max<int64_t>(worst_ms, ms);
      (res && res->status == 200 ? served : failed)++;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });

  // The node gives up on the request at the read timeout (answering 400),
  // then closes the connection once the keep-alive idle time has passed.
  std::string answer;
  int64_t answered_ms = -1;
  char buf[512];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
    if (answered_ms < 0) answered_ms = ms_since(stalled);
    answer.append(buf, static_cast<size_t>(n));
  }
  const int recv_errno = errno;
  const int64_t closed_ms = ms_since(stalled);
  done = true;
  others.join();
  ::close(fd);

  EXPECT_EQ(n, 0) << "connection not closed by the node (errno " << recv_errno << ")";
  EXPECT_EQ(answer.rfind("HTTP/1.1 400", 0), 0u) << answer;
  EXPECT_NE(answer.find("urn:custos:problem:"), std::string::npos) << answer;
  EXPECT_GE(answered_ms, limits::kHttpReadTimeoutMs - 500);
  EXPECT_LE(answered_ms, limits::kHttpReadTimeoutMs + 2000);
  EXPECT_LE(closed_ms, limits::kHttpReadTimeoutMs + limits::kHttpKeepAliveIdleS * 1000 + 2000);
  EXPECT_GE(served.load(), 20) << "other clients were not served during the stall";
  EXPECT_EQ(failed.load(), 0);
  EXPECT_LT(worst_ms.load(), 2000);
}

}  // namespace
}  // namespace custos::integration
