// What the health domain's rules cost on top of the ledger core, per
// statement: stage 1 on admission (parse + field rules + signature) and
// stage 2 at execution (the domain records read and written in log order),
// for device events against generic statements of the same size. Execution
// runs on one thread per node, so its cost per statement bounds a node's
// throughput; docs/performance.md records the figures.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <random>

#include "codec/cbor.h"
#include "cose/statement.h"
#include "crypto/hash.h"
#include "domain/model.h"
#include "domain/rules.h"
#include "ledger/ledger.h"
#include "ledger/policy.h"

namespace custos {
namespace {

constexpr size_t kDevices = 256;
constexpr size_t kBlockStatements = 512;
constexpr uint64_t kStartMs = 1795000000000;

cbor::Value text(std::string_view s) {
  return cbor::text(s);
}

cbor::Value map(std::initializer_list<std::pair<const char*, cbor::Value>> fields) {
  cbor::Map m;
  for (const auto& [k, v] : fields) m.emplace_back(cbor::text(k), v);
  return cbor::Value::map(std::move(m));
}

// A ledger with the domain rules, a hospital with installed pumps on
// released firmware, and pre-signed device events and generic statements.
class DomainWorld {
 public:
  DomainWorld() {
    char tmpl[] = "/tmp/custos-domain-bench-XXXXXX";
    dir_ = mkdtemp(tmpl);
    admin_ = crypto::PrivateKey::generate(crypto::Algorithm::kEd25519).value();
    node_ = crypto::PrivateKey::generate(crypto::Algorithm::kEd25519).value();
    std::string g = ledger::genesis_json("bench", kStartMs, {{"admin", admin_.public_key()}},
                                         {{"node", node_.public_key()}});
    ledger::LedgerConfig c;
    c.data_dir = dir_;
    c.node_name = "node";
    c.node_key = node_;
    c.genesis = ledger::parse_genesis(as_view(g)).value();
    c.rules = domain::make_rules();
    ledger_ = ledger::Ledger::open(std::move(c)).value();
    setup();
  }
  ~DomainWorld() {
    ledger_.reset();
    std::filesystem::remove_all(dir_);
  }

  ledger::Ledger& ledger() { return *ledger_; }
  uint64_t next_ms() { return now_ms_ += 5; }

  // Signed statements of one kind, fresh sequence numbers each call.
  std::vector<Bytes> device_events(size_t n) {
    std::vector<Bytes> out;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      const size_t d = i % kDevices;
      out.push_back(sign(pumps_[d], domain::kTypeDeviceEvent,
                         map({{"event", text("rate-change")},
                              {"order", text("order-" + std::to_string(d))},
                              {"drug_library", text("DL-1")},
                              {"rate_ml_h", cbor::Value::float64(12.5)}}),
                         "pump-" + std::to_string(d)));
    }
    return out;
  }
  std::vector<Bytes> generic_statements(size_t n) {
    std::vector<Bytes> out;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      const size_t d = i % kDevices;
      out.push_back(sign(issuers_[d], ledger::kTypeCbor,
                         map({{"event", text("rate-change")},
                              {"order", text("order-" + std::to_string(d))},
                              {"drug_library", text("DL-1")},
                              {"rate_ml_h", cbor::Value::float64(12.5)}}),
                         "issuer-" + std::to_string(d)));
    }
    return out;
  }

  std::vector<ledger::Admitted> admit(const std::vector<Bytes>& statements) {
    std::vector<ledger::Admitted> out;
    out.reserve(statements.size());
    for (const auto& s : statements) out.push_back(ledger_->admit(s).value());
    return out;
  }

 private:
  Bytes sign(const crypto::PrivateKey& key, std::string_view type, const cbor::Value& payload,
             const std::string& issuer) {
    cose::StatementHeader h;
    h.content_type = std::string(type);
    h.issuer = issuer;
    h.subject = "bench";
    h.issued_at_s = now_ms_ / 1000;
    h.sequence = ++seq_[key.public_key().kid()];
    return cose::sign_statement(key, h, cbor::encode(payload));
  }

  void submit(const crypto::PrivateKey& key, std::string_view type, const cbor::Value& payload) {
    Bytes st = sign(key, type, payload, "setup");
    std::vector<ledger::Admitted> batch;
    batch.push_back(ledger_->admit(st).value());
    auto results = ledger_->append_block(std::move(batch), next_ms()).value();
    if (!results.at(0).ok()) {
      std::fprintf(stderr, "setup refused: %s\n", results[0].status().to_string().c_str());
      std::abort();
    }
  }

  crypto::PrivateKey key_for(const std::string& org, uint32_t roles) {
    auto key = crypto::PrivateKey::generate(crypto::Algorithm::kEd25519).value();
    ledger::KeyRegistration reg{key.public_key().spki_der(), roles, "k", org};
    submit(admin_, ledger::kTypeKeyRegister, ledger::key_registration_payload(reg));
    return key;
  }

  void setup() {
    submit(admin_, domain::kTypeOrgRegister,
           map({{"id", text("acme")}, {"name", text("Acme")}, {"kind", text("maker")}}));
    submit(admin_, domain::kTypeOrgRegister,
           map({{"id", text("st-mary")}, {"name", text("St Mary")}, {"kind", text("hospital")}}));
    auto maker = key_for("acme", ledger::kRoleBiomed);
    auto biomed = key_for("st-mary", ledger::kRoleBiomed);
    const Hash256 image = crypto::sha256(as_view(std::string_view("image")));
    submit(maker, domain::kTypeFirmwareRelease,
           map({{"version", text("1.0")},
                {"image_sha256", cbor::Value::bytes(ByteView(image))},
                {"sbom_sha256", cbor::Value::bytes(ByteView(image))},
                {"models", cbor::Value::array({text("AP-500")})}}));
    submit(biomed, domain::kTypeDrugLibrary,
           map({{"version", text("DL-1")}, {"sha256", cbor::Value::bytes(ByteView(image))}}));
    for (size_t d = 0; d < kDevices; ++d) {
      auto pump = crypto::PrivateKey::generate(crypto::Algorithm::kEd25519).value();
      const std::string id = "pump-" + std::to_string(d);
      char serial[16];
      std::snprintf(serial, sizeof serial, "SN%06zu", d);
      submit(maker, domain::kTypeDeviceRegister,
             map({{"device", text(id)},
                  {"class", text("infusion-pump")},
                  {"model", text("AP-500")},
                  {"udi", map({{"di", text("00614141999996")}, {"serial", text(serial)}})},
                  {"key", cbor::Value::bytes(ByteView(pump.public_key().spki_der()))},
                  {"firmware", map({{"version", text("1.0")},
                                    {"image_sha256", cbor::Value::bytes(ByteView(image))}})}}));
      submit(maker, domain::kTypeDeviceCustody,
             map({{"device", text(id)}, {"to", text("st-mary")}}));
      submit(biomed, domain::kTypeDeviceInstall,
             map({{"device", text(id)}, {"care_area", text("icu")}, {"location", text("bed")}}));
      pumps_.push_back(std::move(pump));
      issuers_.push_back(key_for("", ledger::kRoleIssuer));
    }
  }

  std::string dir_;
  crypto::PrivateKey admin_, node_;
  std::unique_ptr<ledger::Ledger> ledger_;
  std::vector<crypto::PrivateKey> pumps_, issuers_;
  std::map<Hash256, uint64_t> seq_;
  uint64_t now_ms_ = kStartMs;
};

DomainWorld& world() {
  static DomainWorld* w = new DomainWorld();  // lives for the process
  return *w;
}

// Stage 2: one block of kBlockStatements statements executed and written.
void BM_Execute(benchmark::State& state, bool device_events) {
  DomainWorld& w = world();
  for (auto _ : state) {
    state.PauseTiming();
    auto statements =
        device_events ? w.device_events(kBlockStatements) : w.generic_statements(kBlockStatements);
    auto batch = w.admit(statements);
    state.ResumeTiming();
    auto results = w.ledger().append_block(std::move(batch), w.next_ms());
    if (!results.ok() || !results->back().ok()) state.SkipWithError("statement refused");
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kBlockStatements));
}
BENCHMARK_CAPTURE(BM_Execute, DeviceEvents, true)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Execute, GenericStatements, false)->Unit(benchmark::kMillisecond);

// Stage 1: admission of one statement (parse, field rules, signature).
void BM_Admit(benchmark::State& state, bool device_events) {
  DomainWorld& w = world();
  auto statements = device_events ? w.device_events(1024) : w.generic_statements(1024);
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(w.ledger().admit(statements[i++ % 1024]).ok());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_Admit, DeviceEvents, true);
BENCHMARK_CAPTURE(BM_Admit, GenericStatements, false);

}  // namespace
}  // namespace custos
