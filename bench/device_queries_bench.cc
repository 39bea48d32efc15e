// Latency of the device queries over a large ledger (target p99 < 50 ms at
// 10^6 and 10^7 entries): a device's record, a timeline page (first, newest,
// within a time window), the state at a time, and an advisory's exposure.
//
// The ledger is built with Ledger::append_block directly, running the domain
// rules, in blocks of kBenchBlockEntries: organisations and keys, firmware
// releases, devices delivered to two hospitals, then device-signed events
// round-robin with firmware installs now and then. Statements are signed but
// not verified on the way in (admission's signature check is measured by
// BM_Verify; it is not what these queries cost).
//
//   CUSTOS_DEVICE_BENCH_ENTRIES  log size to build (default 5000: a smoke run)
//   CUSTOS_DEVICE_BENCH_DEVICES  devices (default 100)
//   CUSTOS_DEVICE_BENCH_DIR      keep the ledger here and reuse it on the next
//                                run with the same sizes (building 10^7 takes long)
//
// Each benchmark reports p50_us and p99_us counters over its iterations.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "codec/cbor.h"
#include "core/file.h"
#include "cose/statement.h"
#include "crypto/hash.h"
#include "domain/device_queries.h"
#include "domain/model.h"
#include "domain/rules.h"
#include "ledger/ledger.h"

namespace custos {
namespace {

constexpr size_t kBenchBlockEntries = 1000;
constexpr uint64_t kBenchBlockIntervalMs = 1000;
constexpr uint64_t kBenchStartMs = 1767225600000;  // 2026-01-01
// One firmware install per this many events of a device.
constexpr uint64_t kEventsPerFirmwareChange = 500;

size_t env_size(const char* name, size_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? static_cast<size_t>(std::strtoull(v, nullptr, 10)) : fallback;
}

cbor::Value map(std::initializer_list<std::pair<const char*, cbor::Value>> fields) {
  cbor::Map m;
  for (const auto& [k, v] : fields) m.emplace_back(cbor::text(k), v);
  return cbor::Value::map(std::move(m));
}

cbor::Value digest(std::string_view s) {
  Hash256 h = crypto::sha256(as_view(s));
  return cbor::Value::bytes(ByteView(h));
}

std::string device_id(size_t i) {
  return "pump-" + std::to_string(i);
}

// Builds (or reopens) the benchmark ledger and answers queries over it.
class BenchLedger {
 public:
  BenchLedger() {
    entries_ = std::max<size_t>(env_size("CUSTOS_DEVICE_BENCH_ENTRIES", 5000), 1000);
    devices_ = std::max<size_t>(env_size("CUSTOS_DEVICE_BENCH_DEVICES", 100), 2);
    if (const char* d = std::getenv("CUSTOS_DEVICE_BENCH_DIR"); d && *d) {
      dir_ =
          std::string(d) + "/devices-" + std::to_string(entries_) + "-" + std::to_string(devices_);
      keep_ = true;
    } else {
      std::string tmpl = std::filesystem::temp_directory_path().string() + "/custos-bench-XXXXXX";
      if (!mkdtemp(tmpl.data())) std::abort();
      dir_ = tmpl;
    }
    std::filesystem::create_directories(dir_);
    admin_ = key_in("admin.key");
    node_key_ = key_in("node.key");
    open();
    // The marker holds the time the events start (every device installed).
    if (auto marker = read_file(dir_ + "/complete", 64); marker.ok()) {
      events_from_ms_ =
          std::strtoull(std::string(marker->begin(), marker->end()).c_str(), nullptr, 10);
    } else {
      build();
      check(write_file_atomic(dir_ + "/complete", std::to_string(events_from_ms_) + "\n"),
            "marker");
    }
    last_ms_ = ledger_->head().time_ms;
    std::fprintf(stderr, "device bench ledger: %llu entries, %zu devices, %s\n",
                 static_cast<unsigned long long>(ledger_->head().log_size), devices_, dir_.c_str());
  }
  ~BenchLedger() {
    ledger_.reset();
    if (!keep_) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  const ledger::Ledger& ledger() const { return *ledger_; }
  size_t devices() const { return devices_; }
  uint64_t first_ms() const { return kBenchStartMs; }
  uint64_t events_from_ms() const { return events_from_ms_; }
  uint64_t last_ms() const { return last_ms_; }

 private:
  static void check(const Status& s, const char* what) {
    if (!s.ok()) {
      std::fprintf(stderr, "device bench: %s: %s\n", what, s.to_string().c_str());
      std::abort();
    }
  }

  crypto::PrivateKey key_in(const std::string& name) {
    const std::string path = dir_ + "/" + name;
    if (auto pem = read_file(path, 64 * 1024); pem.ok()) {
      auto k = crypto::PrivateKey::from_pem(as_string_view(*pem));
      check(k.status(), "key");
      return std::move(k).value();
    }
    auto k = crypto::PrivateKey::generate(crypto::Algorithm::kEd25519);
    check(k.status(), "keygen");
    check(write_file_atomic(path, k->to_pem(), 0600), "key file");
    return std::move(k).value();
  }

  // Device keys derive from the device index so a reused ledger needs no
  // key files for them (they are only used while building).
  void open() {
    const std::string json =
        ledger::genesis_json("bench", kBenchStartMs, {{"admin", admin_.public_key()}},
                             {{"node", node_key_.public_key()}});
    // The genesis embeds created_ms only; the same keys give the same bytes.
    auto genesis = ledger::parse_genesis(as_view(json));
    check(genesis.status(), "genesis");
    ledger::LedgerConfig c;
    c.data_dir = dir_;
    c.node_name = "node";
    c.node_key = node_key_;
    c.genesis = std::move(genesis).value();
    c.rules = domain::make_rules();
    auto l = ledger::Ledger::open(std::move(c));
    check(l.status(), "open");
    ledger_ = std::move(l).value();
  }

  void add(const crypto::PrivateKey& key, std::string_view type, const cbor::Value& payload) {
    cose::StatementHeader h;
    h.content_type = std::string(type);
    h.issuer = "bench";
    h.subject = "bench";
    h.issued_at_s = now_ms_ / 1000;
    h.sequence = ++seq_[key.public_key().kid()];
    Bytes bytes = cose::sign_statement(key, h, cbor::encode(payload));
    auto st = cose::parse_statement(bytes);
    check(st.status(), "parse");
    pending_.push_back(ledger::Admitted{std::move(st).value(), crypto::sha256(bytes)});
    if (pending_.size() == kBenchBlockEntries) flush();
  }

  void flush() {
    if (pending_.empty()) return;
    now_ms_ += kBenchBlockIntervalMs;
    auto r = ledger_->append_block(std::move(pending_), now_ms_);
    check(r.status(), "append");
    for (const auto& one : *r) check(one.status(), "statement refused");
    pending_.clear();
  }

  crypto::PrivateKey member(const std::string& org, uint32_t roles, const std::string& name) {
    auto k = crypto::PrivateKey::generate(crypto::Algorithm::kEd25519);
    check(k.status(), "keygen");
    ledger::KeyRegistration reg{k->public_key().spki_der(), roles, name, org};
    add(admin_, ledger::kTypeKeyRegister, ledger::key_registration_payload(reg));
    return std::move(k).value();
  }

  void build() {
    for (auto [id, kind] : {std::pair{"acme", "maker"}, std::pair{"st-mary", "hospital"},
                            std::pair{"city-general", "hospital"}, std::pair{"fda", "regulator"}})
      add(admin_, domain::kTypeOrgRegister,
          map({{"id", cbor::text(id)}, {"name", cbor::text(id)}, {"kind", cbor::text(kind)}}));
    flush();  // keys need their organisations in an earlier block
    auto maker = member("acme", ledger::kRoleBiomed, "acme-eng");
    auto hospitals = std::vector{member("st-mary", ledger::kRoleBiomed, "sm-biomed"),
                                 member("city-general", ledger::kRoleBiomed, "cg-biomed")};
    auto regulator = member("fda", ledger::kRoleAuditor, "fda");
    flush();
    const std::vector<std::string> versions{"1.0.0", "2.0.0"};
    for (const auto& v : versions)
      add(maker, domain::kTypeFirmwareRelease,
          map({{"version", cbor::text(v)},
               {"image_sha256", digest("image " + v)},
               {"sbom_sha256", digest("sbom " + v)},
               {"models", cbor::Value::array({cbor::text("AP-500")})}}));
    std::vector<crypto::PrivateKey> keys;
    for (size_t i = 0; i < devices_; ++i) {
      keys.push_back(crypto::PrivateKey::generate(crypto::Algorithm::kEd25519).value());
      add(maker, domain::kTypeDeviceRegister,
          map({{"device", cbor::text(device_id(i))},
               {"class", cbor::text("infusion-pump")},
               {"model", cbor::text("AP-500")},
               {"udi", map({{"di", cbor::text("00614141999996")},
                            {"serial", cbor::text("SN" + std::to_string(i))}})},
               {"key", cbor::Value::bytes(ByteView(keys.back().public_key().spki_der()))},
               {"firmware", map({{"version", cbor::text("1.0.0")},
                                 {"image_sha256", digest("image 1.0.0")}})}}));
    }
    flush();
    for (size_t i = 0; i < devices_; ++i) {
      add(maker, domain::kTypeDeviceCustody,
          map({{"device", cbor::text(device_id(i))},
               {"to", cbor::text(i % 2 ? "city-general" : "st-mary")}}));
    }
    flush();
    for (size_t i = 0; i < devices_; ++i) {
      add(hospitals[i % 2], domain::kTypeDeviceInstall,
          map({{"device", cbor::text(device_id(i))},
               {"care_area", cbor::text("icu")},
               {"location", cbor::text("bed " + std::to_string(i))}}));
    }
    add(regulator, domain::kTypeAdvisory,
        map({{"id", cbor::text("ADV-1")},
             {"maker", cbor::text("acme")},
             {"versions", cbor::Value::array({cbor::text("1.0.0")})},
             {"severity", cbor::text("high")}}));
    flush();
    events_from_ms_ = now_ms_;
    // Events round-robin; every kEventsPerFirmwareChange-th event of a
    // device is a firmware install alternating between the two versions.
    uint64_t n = 0;
    while (ledger_->head().log_size + pending_.size() < entries_) {
      const size_t i = n % devices_;
      const uint64_t round = n / devices_;
      // Each device changes at its own phase, so at any time about half of
      // them run the advised factory version.
      const uint64_t phase = round + (i * kEventsPerFirmwareChange) / devices_;
      if (phase % kEventsPerFirmwareChange == kEventsPerFirmwareChange - 1) {
        const std::string& v = versions[(phase / kEventsPerFirmwareChange + 1) % 2];
        add(keys[i], domain::kTypeFirmwareInstall,
            map({{"version", cbor::text(v)}, {"image_sha256", digest("image " + v)}}));
      } else {
        add(keys[i], domain::kTypeDeviceEvent,
            map({{"event", cbor::text("rate-change")},
                 {"rate_ml_h", cbor::Value::float64(static_cast<double>(10 + round % 90))}}));
      }
      ++n;
    }
    flush();
  }

  size_t entries_ = 0;
  size_t devices_ = 0;
  std::string dir_;
  bool keep_ = false;
  crypto::PrivateKey admin_, node_key_;
  std::unique_ptr<ledger::Ledger> ledger_;
  std::map<Hash256, uint64_t> seq_;
  std::vector<ledger::Admitted> pending_;
  uint64_t now_ms_ = kBenchStartMs;
  uint64_t last_ms_ = 0;
  uint64_t events_from_ms_ = 0;
};

BenchLedger& bench_ledger() {
  static BenchLedger l;
  return l;
}

// Runs `query` once per iteration and reports latency percentiles.
template <typename F>
void measure(benchmark::State& state, F query) {
  std::vector<double> us;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    query();
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  std::sort(us.begin(), us.end());
  if (us.empty()) return;
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p99_us"] = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  state.counters["entries"] = static_cast<double>(bench_ledger().ledger().head().log_size);
}

template <typename R>
void must(const Result<R>& r) {
  if (!r.ok()) {
    std::fprintf(stderr, "device bench query failed: %s\n", r.status().to_string().c_str());
    std::abort();
  }
}

void BM_DeviceRecord(benchmark::State& state) {
  BenchLedger& b = bench_ledger();
  domain::DeviceQueries q(b.ledger());
  std::mt19937_64 rng(1);
  measure(state, [&] { must(q.device(device_id(rng() % b.devices()))); });
}
BENCHMARK(BM_DeviceRecord);

void BM_DeviceTimelinePage(benchmark::State& state) {
  BenchLedger& b = bench_ledger();
  domain::DeviceQueries q(b.ledger());
  std::mt19937_64 rng(2);
  const bool newest = state.range(0) == 1;
  measure(state, [&] {
    domain::TimelineQuery tq;
    tq.limit = 100;
    tq.descending = newest;
    must(q.timeline(device_id(rng() % b.devices()), tq));
  });
}
BENCHMARK(BM_DeviceTimelinePage)->ArgName("newest_first")->Arg(0)->Arg(1);

// A one-hour window somewhere in the ledger's history.
void BM_DeviceTimelineWindow(benchmark::State& state) {
  BenchLedger& b = bench_ledger();
  domain::DeviceQueries q(b.ledger());
  std::mt19937_64 rng(3);
  const uint64_t span = std::max<uint64_t>(b.last_ms() - b.first_ms(), 1);
  measure(state, [&] {
    domain::TimelineQuery tq;
    tq.from_ms = b.first_ms() + rng() % span;
    tq.to_ms = *tq.from_ms + 3600 * 1000;
    tq.limit = 100;
    must(q.timeline(device_id(rng() % b.devices()), tq));
  });
}
BENCHMARK(BM_DeviceTimelineWindow);

void BM_DeviceStateAtTime(benchmark::State& state) {
  BenchLedger& b = bench_ledger();
  domain::DeviceQueries q(b.ledger());
  std::mt19937_64 rng(4);
  // Any time after every device is installed.
  const uint64_t span = std::max<uint64_t>(b.last_ms() - b.events_from_ms(), 1);
  measure(state, [&] {
    const uint64_t at = b.events_from_ms() + rng() % span;
    must(q.state_at(device_id(rng() % b.devices()), at));
  });
}
BENCHMARK(BM_DeviceStateAtTime);

void BM_DeviceAdvisoryExposure(benchmark::State& state) {
  domain::DeviceQueries q(bench_ledger().ledger());
  measure(state, [&] { must(q.exposure("ADV-1", "", domain::kExposurePageDefault)); });
}
BENCHMARK(BM_DeviceAdvisoryExposure);

}  // namespace
}  // namespace custos
