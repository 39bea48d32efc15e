// A Router over a real one-node Node running the health domain's rules, in a
// temporary directory, no sockets: the fixture of the domain route tests
// (patient records, FHIR). Statements are signed here with per-key sequence
// numbers and registered through POST /v1/entries like any client's.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "api/router.h"
#include "codec/cbor.h"
#include "domain/model.h"
#include "domain/rules.h"
#include "unit/ledger/ledger_fixture.h"

namespace custos::testutil {

inline cbor::Value cmap(std::initializer_list<std::pair<const char*, cbor::Value>> fields) {
  cbor::Map m;
  for (const auto& [k, v] : fields) m.emplace_back(cbor::text(k), v);
  return cbor::Value::map(std::move(m));
}

class DomainRouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node::NodeConfig c;
    c.ledger = ledger_config(dir_.path());
    c.ledger.rules = rules();
    c.block_interval_ms = 1;
    auto n = node::Node::start(std::move(c));
    ASSERT_TRUE(n.ok()) << n.status().to_string();
    node_ = std::move(n).value();
    router_ = std::make_unique<api::Router>(*node_);
  }
  void TearDown() override {
    router_.reset();
    node_.reset();
  }
  // The rules the node runs (a test may add its own around the domain's).
  virtual std::shared_ptr<const ledger::Rules> rules() const { return domain::make_rules(); }

  api::Response call(const std::string& method, const std::string& path,
                     const std::string& content_type = "", const std::string& body = "",
                     std::multimap<std::string, std::string> query = {}) {
    api::Request r;
    r.method = method;
    r.path = path;
    r.query = std::move(query);
    r.content_type = content_type;
    r.body = body;
    r.remote = "127.0.0.1";
    return router_->handle(r);
  }
  api::Response get(const std::string& path, std::multimap<std::string, std::string> query = {}) {
    return call("GET", path, "", "", std::move(query));
  }
  api::Response post_cose(const std::string& path, const Bytes& statement) {
    return call("POST", path, "application/cose", std::string(statement.begin(), statement.end()));
  }

  static nlohmann::json body(const api::Response& r) {
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "not JSON: " << r.body;
    return j;
  }

  // An RFC 9457 problem of urn:custos:problem:<type> with a detail.
  static void expect_problem(const api::Response& r, int status, const std::string& type,
                             const std::string& detail_part = "") {
    SCOPED_TRACE(r.body);
    EXPECT_EQ(r.status, status);
    EXPECT_EQ(r.content_type, "application/problem+json");
    nlohmann::json j = body(r);
    EXPECT_EQ(j.value("type", ""), "urn:custos:problem:" + type);
    EXPECT_EQ(j.value("status", 0), status);
    EXPECT_FALSE(j.value("title", "").empty());
    EXPECT_NE(j.value("detail", "").find(detail_part), std::string::npos);
  }

  Bytes sign(const crypto::PrivateKey& key, std::string_view type, const cbor::Value& payload,
             const std::string& subject = "subject", uint64_t iat_s = 0) {
    Fields f;
    f.content_type = std::string(type);
    f.issuer = names_.count(key.public_key().kid()) ? names_[key.public_key().kid()] : "admin-1";
    f.subject = subject;
    f.issued_at_s = iat_s ? iat_s : node::unix_time_ms() / 1000;  // 0: now
    f.payload = cbor::encode(payload);
    return testutil::sign(key, ++seq_[key.public_key().kid()], f);
  }

  // Registers through POST /v1/entries; returns the entry id (hex).
  std::string submit(const Bytes& statement) {
    api::Response r = post_cose("/v1/entries", statement);
    EXPECT_EQ(r.status, 201) << r.body;
    return body(r).value("id", "");
  }

  void add_org(const std::string& id, const std::string& kind) {
    submit(sign(test_keys().admin, domain::kTypeOrgRegister,
                cmap({{"id", cbor::text(id)},
                      {"name", cbor::text(id + " name")},
                      {"kind", cbor::text(kind)}})));
  }
  crypto::PrivateKey add_key(const std::string& org, uint32_t roles, const std::string& name) {
    crypto::PrivateKey key = new_key();
    ledger::KeyRegistration reg{key.public_key().spki_der(), roles, name, org};
    submit(
        sign(test_keys().admin, ledger::kTypeKeyRegister, ledger::key_registration_payload(reg)));
    names_[key.public_key().kid()] = name;
    return key;
  }

  uint64_t log_size() const { return node_->ledger().head().log_size; }

  TempDir dir_{"custos-api-domain"};
  std::unique_ptr<node::Node> node_;
  std::unique_ptr<api::Router> router_;
  std::map<Hash256, uint64_t> seq_;
  std::map<Hash256, std::string> names_;
};

}  // namespace custos::testutil
