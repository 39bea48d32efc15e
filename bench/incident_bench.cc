// The incident report on a large ledger: builds a log of N entries through
// Ledger::append_block (infusions of ~9 entries each: order, verification,
// nurse programming, six pump events, spread over many pumps), then times
// complete reports (receipts included) of orders spread over the log and
// reports p50 / p99 latency. docs/performance.md records the figures.
//
//   CUSTOS_INCIDENT_ENTRIES=1000000 custos_microbench --benchmark_filter=Incident
//   CUSTOS_INCIDENT_DIR=/big/disk/dir   keeps the built ledger for later runs
// Default size 20,000 (a smoke run). Filler statements are signed but
// appended without admission's signature check (admission has its own
// benchmarks); the reported orders go through both stages.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>

#include "core/file.h"
#include "cose/statement.h"
#include "crypto/hash.h"
#include "domain/incident.h"
#include "domain/rules.h"
#include "ledger/genesis.h"
#include "ledger/ledger.h"
#include "ledger/policy.h"

namespace custos {
namespace {

using cbor::Value;

constexpr size_t kDefaultEntries = 20000;
constexpr size_t kPumps = 256;
constexpr size_t kEntriesPerInfusion = 9;
constexpr size_t kBlockStatements = 4096;
constexpr size_t kReportedOrders = 64;
constexpr uint64_t kStartMs = 1767225600000;

size_t target_entries() {
  const char* v = std::getenv("CUSTOS_INCIDENT_ENTRIES");
  return v ? std::max<size_t>(std::strtoull(v, nullptr, 10), 1000) : kDefaultEntries;
}

Value map(std::initializer_list<std::pair<const char*, Value>> fields) {
  cbor::Map m;
  for (const auto& [k, v] : fields) m.emplace_back(cbor::text(k), v);
  return Value::map(std::move(m));
}
Value txt(std::string_view s) {
  return cbor::text(s);
}
Value num(double v) {
  return Value::float64(v);
}
Value quantity(double v, const char* unit) {
  return map({{"value", num(v)}, {"unit", txt(unit)}});
}

crypto::PrivateKey key_of(crypto::Algorithm alg = crypto::Algorithm::kEd25519) {
  return crypto::PrivateKey::generate(alg).value();
}

// Builds the ledger: signs statements with per-key sequence numbers and
// appends them in blocks, one second apart.
class Builder {
 public:
  Builder(ledger::Ledger& l, const crypto::PrivateKey& admin) : ledger_(l), admin_(admin) {}

  Hash256 add(const crypto::PrivateKey& key, std::string_view type, const Value& payload,
              bool check = false) {
    cose::StatementHeader h;
    h.content_type = std::string(type);
    h.issuer = "bench";
    h.subject = "bench";
    h.issued_at_s = now_ms_ / 1000;
    h.sequence = ++seq_[key.public_key().kid()];
    Bytes bytes = cose::sign_statement(key, h, cbor::encode(payload));
    const Hash256 id = crypto::sha256(bytes);
    if (check) {
      pending_.push_back(ledger_.admit(bytes).value());
    } else {
      pending_.push_back(ledger::Admitted{cose::parse_statement(bytes).value(), id});
    }
    if (pending_.size() == kBlockStatements) flush();
    return id;
  }

  void flush() {
    if (pending_.empty()) return;
    now_ms_ += 1000;
    auto results = ledger_.append_block(std::move(pending_), now_ms_).value();
    for (const auto& r : results) {
      if (!r.ok()) {
        std::fprintf(stderr, "incident bench: refused: %s\n", r.status().to_string().c_str());
        std::abort();
      }
    }
    pending_.clear();
  }

  crypto::PrivateKey person(const std::string& org, uint32_t roles, const std::string& name) {
    auto k = key_of();
    ledger::KeyRegistration reg{k.public_key().spki_der(), roles, name, org};
    add(admin_, ledger::kTypeKeyRegister, ledger::key_registration_payload(reg), true);
    return k;
  }

 private:
  ledger::Ledger& ledger_;
  const crypto::PrivateKey& admin_;
  std::map<Hash256, uint64_t> seq_;
  std::vector<ledger::Admitted> pending_;
  uint64_t now_ms_ = kStartMs;
};

struct World {
  crypto::PrivateKey maker, biomed, prescriber, pharmacist, nurse, regulator;
  std::vector<crypto::PrivateKey> pumps;
};

void setup_world(Builder& b, const crypto::PrivateKey& admin, World& w) {
  for (auto [id, kind] : {std::pair{"acme", "maker"}, std::pair{"st-mary", "hospital"},
                          std::pair{"fda", "regulator"}}) {
    b.add(admin, domain::kTypeOrgRegister,
          map({{"id", txt(id)}, {"name", txt(id)}, {"kind", txt(kind)}}), true);
  }
  b.flush();
  w.maker = b.person("acme", ledger::kRoleBiomed, "acme-eng");
  w.biomed = b.person("st-mary", ledger::kRoleBiomed, "sm-biomed");
  w.prescriber = b.person("st-mary", ledger::kRolePrescriber, "dr-house");
  w.pharmacist = b.person("st-mary", ledger::kRolePharmacist, "ph-rao");
  w.nurse = b.person("st-mary", ledger::kRoleNurse, "rn-jones");
  w.regulator = b.person("fda", ledger::kRoleAuditor, "fda-analyst");
  b.flush();
  const Hash256 image = crypto::sha256(as_view("image 2.0.0"));
  b.add(w.maker, domain::kTypeFirmwareRelease,
        map({{"version", txt("2.0.0")},
             {"image_sha256", Value::bytes(ByteView(image))},
             {"sbom_sha256", Value::bytes(ByteView(image))},
             {"models", Value::array({txt("AP-500")})}}),
        true);
  b.add(w.biomed, domain::kTypeDrugLibrary,
        map({{"version", txt("DL-7")}, {"sha256", Value::bytes(ByteView(image))}}), true);
  b.flush();
  for (size_t p = 0; p < kPumps; ++p) {
    const std::string id = "pump-" + std::to_string(p);
    w.pumps.push_back(key_of());
    b.add(w.maker, domain::kTypeDeviceRegister,
          map({{"device", txt(id)},
               {"class", txt("infusion-pump")},
               {"model", txt("AP-500")},
               {"udi", map({{"di", txt("00614141999996")}, {"serial", txt("SN" + id)}})},
               {"key", Value::bytes(ByteView(w.pumps.back().public_key().spki_der()))}}),
          true);
  }
  b.flush();
  for (size_t p = 0; p < kPumps; ++p) {
    const std::string id = "pump-" + std::to_string(p);
    b.add(w.maker, domain::kTypeDeviceCustody, map({{"device", txt(id)}, {"to", txt("st-mary")}}));
    b.add(w.biomed, domain::kTypeDeviceInstall,
          map({{"device", txt(id)}, {"care_area", txt("icu")}, {"location", txt("bed")}}));
    b.add(w.pumps[p], domain::kTypeFirmwareInstall,
          map({{"version", txt("2.0.0")}, {"image_sha256", Value::bytes(ByteView(image))}}));
  }
  b.add(w.regulator, domain::kTypeAdvisory,
        map({{"id", txt("ADV-1")},
             {"maker", txt("acme")},
             {"versions", Value::array({txt("2.0.0")})},
             {"severity", txt("high")}}));
  b.flush();
}

// One infusion: the chain and six pump events, with a soft-limit override
// and an alarm.
void infusion(Builder& b, World& w, size_t n, bool check) {
  const std::string order = "o-" + std::to_string(n);
  const std::string pump = "pump-" + std::to_string(n % kPumps);
  const auto& device = w.pumps[n % kPumps];
  const Hash256 o = b.add(w.prescriber, domain::kTypeMedicationOrder,
                          map({{"order", txt(order)},
                               {"patient", txt("pseudonym:00112233445566778899aabbccddeeff")},
                               {"drug", txt("heparin")},
                               {"dose", quantity(25000, "[iU]")},
                               {"rate", quantity(25, "mL/h")},
                               {"vtbi_ml", num(250)},
                               {"route", txt("intravenous")},
                               {"care_area", txt("icu")}}),
                          check);
  const Hash256 v = b.add(w.pharmacist, domain::kTypePharmacyVerification,
                          map({{"order", txt(order)},
                               {"prev", Value::bytes(ByteView(o))},
                               {"outcome", txt("verified")}}),
                          check);
  b.add(w.nurse, domain::kTypePumpProgramming,
        map({{"order", txt(order)},
             {"prev", Value::bytes(ByteView(v))},
             {"device", txt(pump)},
             {"drug_library", txt("DL-7")},
             {"drug", txt("heparin")},
             {"dose", quantity(25000, "[iU]")},
             {"rate", quantity(25, "mL/h")},
             {"vtbi_ml", num(250)}}),
        check);
  const Value limit = map(
      {{"kind", txt("soft")}, {"bound", txt("upper")}, {"value", num(20)}, {"unit", txt("mL/h")}});
  const Value events[] = {
      map({{"event", txt("programming")},
           {"order", txt(order)},
           {"drug", txt("heparin")},
           {"rate_ml_h", num(25)},
           {"vtbi_ml", num(250)},
           {"drug_library", txt("DL-7")}}),
      map({{"event", txt("soft-limit-override")}, {"order", txt(order)}, {"limit", limit}}),
      map({{"event", txt("start")}, {"order", txt(order)}, {"rate_ml_h", num(25)}}),
      map({{"event", txt("alarm")},
           {"order", txt(order)},
           {"alarm", txt("occlusion-downstream")},
           {"priority", txt("high")}}),
      map({{"event", txt("alarm-cleared")},
           {"order", txt(order)},
           {"alarm", txt("occlusion-downstream")}}),
      map({{"event", txt("completion")}, {"order", txt(order)}}),
  };
  for (const auto& e : events) b.add(device, domain::kTypeDeviceEvent, e, check);
}

struct BuiltLedger {
  std::string dir;
  bool temporary = false;
  std::unique_ptr<ledger::Ledger> ledger;
  std::vector<std::string> orders;  // the orders the benchmark reports on
  ~BuiltLedger() {
    ledger.reset();
    if (temporary) std::filesystem::remove_all(dir);
  }
};

ledger::LedgerConfig config_for(const std::string& dir, crypto::PrivateKey node,
                                ledger::Genesis genesis) {
  ledger::LedgerConfig c;
  c.data_dir = dir;
  c.node_name = "node-0";
  c.node_key = std::move(node);
  c.genesis = std::move(genesis);
  c.rules = domain::make_rules();
  return c;
}

std::vector<std::string> spread_orders(size_t infusions) {
  std::vector<std::string> out;
  for (size_t i = 0; i < kReportedOrders; ++i)
    out.push_back("o-" + std::to_string(i * infusions / kReportedOrders));
  return out;
}

// Reopens a ledger built earlier in CUSTOS_INCIDENT_DIR, or builds one.
std::unique_ptr<BuiltLedger> build(size_t entries) {
  auto out = std::make_unique<BuiltLedger>();
  const char* keep = std::getenv("CUSTOS_INCIDENT_DIR");
  out->dir = keep ? std::string(keep) + "/" + std::to_string(entries)
                  : (std::filesystem::temp_directory_path() /
                     ("custos-incident-bench-" + std::to_string(::getpid())))
                        .string();
  out->temporary = !keep;
  const size_t infusions = entries / kEntriesPerInfusion;
  out->orders = spread_orders(infusions);
  const std::string done = out->dir + "/bench-complete";
  if (keep && std::filesystem::exists(done)) {
    auto genesis = ledger::parse_genesis(read_file(out->dir + "/genesis.json", 1 << 20).value());
    auto node = crypto::PrivateKey::from_pem(
        as_string_view(read_file(out->dir + "/node.key", 1 << 16).value()));
    out->ledger = ledger::Ledger::open(config_for(out->dir, node.value(), genesis.value())).value();
    return out;
  }
  std::filesystem::remove_all(out->dir);
  std::filesystem::create_directories(out->dir);
  auto admin = key_of();
  auto node = key_of();
  const std::string json = ledger::genesis_json("bench", kStartMs, {{"admin", admin.public_key()}},
                                                {{"node-0", node.public_key()}});
  write_file_atomic(out->dir + "/genesis.json", json).ok();
  write_file_atomic(out->dir + "/node.key", node.to_pem(), 0600).ok();
  auto genesis = ledger::parse_genesis(as_view(json)).value();
  out->ledger = ledger::Ledger::open(config_for(out->dir, node, genesis)).value();
  Builder b(*out->ledger, admin);
  World w;
  setup_world(b, admin, w);
  const auto start = std::chrono::steady_clock::now();
  for (size_t n = 0; n < infusions; ++n) {
    // The reported orders go through admission like any client's.
    const bool check = std::find(out->orders.begin(), out->orders.end(),
                                 "o-" + std::to_string(n)) != out->orders.end();
    infusion(b, w, n, check);
  }
  b.flush();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "incident bench: built %llu entries in %.0f s\n",
               static_cast<unsigned long long>(out->ledger->head().log_size), s);
  if (keep) write_file_atomic(done, "1\n").ok();
  return out;
}

void BM_IncidentReport(benchmark::State& state) {
  static std::unique_ptr<BuiltLedger> built = build(target_entries());
  std::vector<double> ms;
  size_t i = 0;
  size_t deviations = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = domain::incident_report(*built->ledger, built->orders[i++ % built->orders.size()]);
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    if (!r.ok() || r->steps.size() != kEntriesPerInfusion) {
      state.SkipWithError(r.ok() ? "unexpected step count" : r.status().to_string().c_str());
      break;
    }
    deviations += r->deviations.size();
    benchmark::DoNotOptimize(r->steps.back().receipt.size());
  }
  if (ms.empty()) return;
  std::sort(ms.begin(), ms.end());
  state.counters["entries"] = static_cast<double>(built->ledger->head().log_size);
  state.counters["p50_ms"] = ms[ms.size() / 2];
  state.counters["p99_ms"] = ms[std::min(ms.size() - 1, ms.size() * 99 / 100)];
  state.counters["max_ms"] = ms.back();
  state.counters["deviations"] = static_cast<double>(deviations) / static_cast<double>(ms.size());
}
BENCHMARK(BM_IncidentReport)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace custos
