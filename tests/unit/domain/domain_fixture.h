// A ledger running the health domain's rules, and builders for domain
// statements: the fixture every domain unit test starts from. Statements go
// through both stages (admit, then append_block), as on a node.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "codec/cbor.h"
#include "domain/model.h"
#include "domain/rules.h"
#include "ledger/audit.h"
#include "ledger/ledger.h"
#include "unit/ledger/ledger_fixture.h"

namespace custos::testutil {

// A CBOR map built tersely: map({{"id", text("x")}, {"n", cbor::Value::uint(1)}}).
inline cbor::Value map(std::initializer_list<std::pair<const char*, cbor::Value>> fields) {
  cbor::Map m;
  for (const auto& [k, v] : fields) m.emplace_back(cbor::text(k), v);
  return cbor::Value::map(std::move(m));
}
inline cbor::Value txt(std::string_view s) {
  return cbor::text(s);
}
inline cbor::Value num(double v) {
  return cbor::Value::float64(v);
}
inline cbor::Value digest(const Hash256& h) {
  return cbor::Value::bytes(ByteView(h));
}
inline cbor::Value texts(std::initializer_list<const char*> items) {
  cbor::Array a;
  for (const char* i : items) a.push_back(cbor::text(i));
  return cbor::Value::array(std::move(a));
}

class DomainLedger {
 public:
  explicit DomainLedger(const std::string& dir, uint64_t start_ms = 1767225600000)
      : rules_(domain::make_rules()), now_ms_(start_ms) {
    auto config = ledger_config(dir);
    config.rules = rules_;
    auto l = ledger::Ledger::open(std::move(config));
    EXPECT_TRUE(l.ok()) << l.status().to_string();
    ledger_ = std::move(l).value();
  }

  ledger::Ledger& ledger() { return *ledger_; }
  const ledger::Rules& rules() const { return *rules_; }
  const crypto::PrivateKey& admin() const { return test_keys().admin; }
  uint64_t now_ms() const { return now_ms_; }
  void advance_ms(uint64_t ms) { now_ms_ += ms; }

  // Signs with the key's next sequence number (tracked here), iat = now.
  Bytes sign(const crypto::PrivateKey& key, std::string_view content_type,
             const cbor::Value& payload, std::string subject = "subject") {
    Fields f;
    f.content_type = std::string(content_type);
    f.issuer = to_hex(key.public_key().kid()).substr(0, 16);
    f.subject = std::move(subject);
    f.issued_at_s = now_ms_ / 1000;
    f.payload = cbor::encode(payload);
    return testutil::sign(key, ++seq_[key.public_key().kid()], f);
  }

  // Both stages, one statement per block; each block 1 s after the last.
  Result<ledger::Registered> submit(ByteView statement) {
    CUSTOS_ASSIGN_OR_RETURN(ledger::Admitted a, ledger_->admit(statement));
    std::vector<ledger::Admitted> batch;
    batch.push_back(std::move(a));
    now_ms_ += 1000;
    CUSTOS_ASSIGN_OR_RETURN(auto results, ledger_->append_block(std::move(batch), now_ms_));
    return std::move(results.at(0));
  }
  Result<ledger::Registered> submit(const crypto::PrivateKey& key, std::string_view type,
                                    const cbor::Value& payload, std::string subject = "subject") {
    Bytes st = sign(key, type, payload, std::move(subject));
    return submit(st);
  }

  // An organisation registered by the consortium admin, and a key of it.
  void add_org(const std::string& id, const std::string& kind) {
    auto r = submit(admin(), domain::kTypeOrgRegister,
                    map({{"id", txt(id)}, {"name", txt(id + " name")}, {"kind", txt(kind)}}));
    ASSERT_TRUE(r.ok()) << r.status().to_string();
  }
  crypto::PrivateKey add_key(const std::string& org, uint32_t roles, const std::string& name,
                             crypto::Algorithm alg = crypto::Algorithm::kEd25519) {
    crypto::PrivateKey key = new_key(alg);
    ledger::KeyRegistration reg{key.public_key().spki_der(), roles, name, org};
    auto r = submit(admin(), ledger::kTypeKeyRegister, ledger::key_registration_payload(reg));
    EXPECT_TRUE(r.ok()) << r.status().to_string();
    return key;
  }

  // Audits the directory with the rules (closing the ledger first).
  Status audit(const std::string& dir, ledger::AuditReport* report) {
    ledger_.reset();
    return ledger::audit(dir, report, nullptr, rules_.get());
  }

 private:
  std::shared_ptr<const ledger::Rules> rules_;
  std::unique_ptr<ledger::Ledger> ledger_;
  std::map<Hash256, uint64_t> seq_;
  uint64_t now_ms_;
};

}  // namespace custos::testutil
