// `custos bench`: drives running nodes over HTTP with many concurrent signed
// statements (clients spread over the nodes given) and reports registered
// statements/s beside the signature-verification limit of this machine,
// measured in the same run. Each node checks each statement once, so with k
// nodes sharing the machine the limit is the machine's verify rate / k.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "cli/common.h"
#include "cli/signing.h"
#include "codec/cbor.h"
#include "core/quorum.h"
#include "cose/receipt.h"
#include "crypto/hash.h"
#include "domain/model.h"
#include "ledger/genesis.h"
#include "ledger/policy.h"

namespace custos::cli {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

struct BenchOptions {
  std::vector<std::string> nodes{kDefaultNodeUrl};
  size_t nodes_on_machine = 0;  // 0: as many as --node URLs
  double rate = 0;              // statements/s to offer (0: as fast as the clients go)
  std::string admin_key;
  std::string alg = "ed25519";
  size_t count = 50000;
  size_t concurrency = 32;
  size_t batch = 32;
  size_t payload_bytes = 100;
  size_t receipts = 200;
  std::string data_dir;
  bool json = false;
  // "statements": generic application/cbor statements of issuer keys (the
  // ledger core); "device-events": each client is a registered, installed
  // infusion pump signing device events (the health domain's rules run on
  // every one); "compare": both, one after the other, and the cost of the
  // domain rules as the difference in throughput.
  std::string workload = "statements";
  bool report = true;  // print this run's figures (compare --json prints only its own)
};

constexpr std::string_view kWorkloadStatements = "statements";
constexpr std::string_view kWorkloadDevices = "device-events";
constexpr std::string_view kWorkloadCompare = "compare";

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// A payload shaped like a device event: a small CBOR map. The padding is
// random so RocksDB's compression cannot flatter the bytes-per-entry figure.
Bytes event_payload(size_t worker, size_t i, size_t pad_bytes) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  Bytes pad(pad_bytes);
  for (auto& b : pad) b = static_cast<uint8_t>(rng());
  cbor::Map m;
  m.emplace_back(cbor::text("event"), cbor::text("rate-change"));
  m.emplace_back(cbor::text("device"), cbor::text("pump-" + std::to_string(worker)));
  m.emplace_back(cbor::text("n"), cbor::Value::uint(i));
  m.emplace_back(cbor::text("rate_ml_h"), cbor::Value::float64(12.5));
  m.emplace_back(cbor::text("pad"), cbor::Value::bytes(std::move(pad)));
  return cbor::encode(cbor::Value::map(std::move(m)));
}

// A device event as an infusion pump signs it (the device-events workload).
// The statements workload with --payload-bytes 0 carries the same fields, so
// the two differ only in the rules that run on them.
Bytes device_event_payload(size_t worker, size_t i) {
  cbor::Map m;
  m.emplace_back(cbor::text("event"), cbor::text("rate-change"));
  m.emplace_back(cbor::text("order"), cbor::text("bench-order-" + std::to_string(worker)));
  m.emplace_back(cbor::text("rate_ml_h"), cbor::Value::float64(10 + static_cast<double>(i % 40)));
  return cbor::encode(cbor::Value::map(std::move(m)));
}

// User + system CPU time of this process: the load generator's own share of
// the machine it shares with the nodes.
double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  const auto secs = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return secs(u.ru_utime) + secs(u.ru_stime);
}

struct VerifyRate {
  double per_s = 0;       // verifications per second, all cores
  double cpu_s_each = 0;  // CPU seconds one verification took
};

// Verification rate of this machine with all cores, for the ratio, and the
// CPU time of one verification.
VerifyRate measure_verify_rate(crypto::Algorithm alg, double seconds) {
  auto key = crypto::PrivateKey::generate(alg).value();
  cose::StatementHeader h{
      alg, crypto::cose_algorithm(alg), {}, "application/cbor", "bench", "verify", 1, 1};
  std::vector<cose::Statement> statements;
  for (size_t i = 0; i < 256; ++i) {
    h.sequence = i + 1;
    statements.push_back(
        cose::parse_statement(cose::sign_statement(key, h, event_payload(0, i, 100))).value());
  }
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::atomic<uint64_t> done{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> pool;
  const double cpu_start = process_cpu_seconds();
  const auto start = Clock::now();
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (const auto& s : statements) {
          if (!cose::verify_statement(s, key.public_key()).ok()) std::abort();
        }
        n += statements.size();
      }
      done += n;
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : pool) t.join();
  const double elapsed = seconds_since(start);
  const double ops = static_cast<double>(done);
  return VerifyRate{ops / elapsed, (process_cpu_seconds() - cpu_start) / ops};
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  size_t k = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

uint64_t dir_bytes(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  }
  return total;
}

// Reads one sample of a metric from the node's /metrics text.
double metric(NodeClient& client, const std::string& name) {
  auto reply = client.get("/metrics", "text/plain");
  if (!reply.ok() || !reply->ok()) return -1;
  size_t pos = 0;
  while ((pos = reply->body.find(name + " ", pos)) != std::string::npos) {
    if (pos == 0 || reply->body[pos - 1] == '\n')
      return std::stod(reply->body.substr(pos + name.size() + 1));
    pos += name.size();
  }
  return -1;
}

// Sum of process_cpu_seconds_total over the nodes (0 for a node that does
// not report it).
double nodes_cpu_seconds(const std::vector<std::string>& nodes) {
  double total = 0;
  for (const std::string& url : nodes) {
    NodeClient c(url);
    total += std::max(0.0, metric(c, "process_cpu_seconds_total"));
  }
  return total;
}

Status register_bench_keys(NodeClient& client, const std::string& admin_path,
                           const std::vector<crypto::PrivateKey>& keys) {
  CUSTOS_ASSIGN_OR_RETURN(crypto::PrivateKey admin, load_private_key(admin_path));
  CUSTOS_ASSIGN_OR_RETURN(KeyInfo info, fetch_key_info(client, admin.public_key().kid()));
  cbor::Array items;
  uint64_t seq = info.last_sequence;
  for (size_t i = 0; i < keys.size(); ++i) {
    ledger::KeyRegistration reg{keys[i].public_key().spki_der(), ledger::kRoleIssuer,
                                "bench-" + std::to_string(i)};
    cose::StatementHeader h;
    h.content_type = std::string(ledger::kTypeKeyRegister);
    h.issuer = info.name;
    h.subject = to_hex(keys[i].public_key().kid());
    h.issued_at_s = 1;
    h.sequence = ++seq;
    items.push_back(cbor::Value::bytes(
        cose::sign_statement(admin, h, cbor::encode(ledger::key_registration_payload(reg)))));
  }
  Bytes body = cbor::encode(cbor::Value::array(std::move(items)));
  CUSTOS_ASSIGN_OR_RETURN(
      HttpReply reply,
      client.post("/v1/entries/batch", std::string(body.begin(), body.end()), "application/cbor"));
  if (!reply.ok()) return reply_error(reply);
  if (const size_t refused = reply.body.find("\"refused\""); refused != std::string::npos) {
    const size_t from = reply.body.rfind('{', refused);
    return error(ErrorCode::kPolicy, "registering bench keys: " + reply.body.substr(from, 400));
  }
  return Status();
}

// After registering the bench keys on one node, every node must have
// executed that block before it can admit statements signed by them.
Status wait_for_log_size(const std::vector<std::string>& nodes, double log_size) {
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  for (const std::string& url : nodes) {
    NodeClient c(url);
    while (metric(c, "custos_log_size") < log_size) {
      if (Clock::now() > deadline) {
        return error(ErrorCode::kUnavailable, url + " did not reach log size " +
                                                  std::to_string(static_cast<uint64_t>(log_size)));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  return Status();
}

// Signs one statement for the device setup with `key` at `seq`.
Bytes setup_statement(const crypto::PrivateKey& key, const std::string& issuer, uint64_t seq,
                      std::string_view type, const cbor::Value& payload) {
  cose::StatementHeader h;
  h.content_type = std::string(type);
  h.issuer = issuer;
  h.subject = "bench-setup";
  h.issued_at_s = static_cast<uint64_t>(std::time(nullptr));
  h.sequence = seq;
  return cose::sign_statement(key, h, cbor::encode(payload));
}

// Submits one batch of setup statements and waits until every node holds
// them. Refusals as `conflict` are fine (organisations, releases and
// libraries left by an earlier run); any other refusal is an error.
Status setup_batch(const std::vector<std::string>& nodes, std::vector<Bytes> statements) {
  NodeClient client(nodes.front());
  cbor::Array items;
  for (auto& st : statements) items.push_back(cbor::Value::bytes(std::move(st)));
  Bytes body = cbor::encode(cbor::Value::array(std::move(items)));
  CUSTOS_ASSIGN_OR_RETURN(
      HttpReply reply,
      client.post("/v1/entries/batch", std::string(body.begin(), body.end()), "application/cbor"));
  if (!reply.ok()) return reply_error(reply);
  json answer = json::parse(reply.body, nullptr, false);
  if (!answer.is_object() || !answer.contains("results"))
    return error(ErrorCode::kMalformed, "unreadable batch answer");
  for (const auto& r : answer["results"]) {
    if (r.value("status", "") != "refused") continue;
    const std::string type = r["problem"].value("type", "");
    if (type.find("conflict") == std::string::npos)
      return error(ErrorCode::kPolicy, "device setup refused: " + r["problem"].dump());
  }
  return wait_for_log_size(nodes, metric(client, "custos_log_size"));
}

cbor::Value map_of(std::initializer_list<std::pair<const char*, cbor::Value>> fields) {
  cbor::Map m;
  for (const auto& [k, v] : fields) m.emplace_back(cbor::text(k), v);
  return cbor::Value::map(std::move(m));
}

// Makes each bench key an infusion pump of a hospital: a maker and a
// hospital (with an engineer each), a firmware release and a drug library,
// then per pump its registration by the maker (with its firmware), custody to
// the hospital and installation. Four batches, each executed everywhere
// before the next.
Status register_bench_devices(const std::vector<std::string>& nodes, const std::string& admin_path,
                              const std::vector<crypto::PrivateKey>& keys) {
  NodeClient client(nodes.front());
  CUSTOS_ASSIGN_OR_RETURN(crypto::PrivateKey admin, load_private_key(admin_path));
  CUSTOS_ASSIGN_OR_RETURN(KeyInfo info, fetch_key_info(client, admin.public_key().kid()));
  const auto text = [](std::string_view s) { return cbor::text(s); };
  CUSTOS_ASSIGN_OR_RETURN(crypto::PrivateKey maker,
                          crypto::PrivateKey::generate(crypto::Algorithm::kEd25519));
  CUSTOS_ASSIGN_OR_RETURN(crypto::PrivateKey biomed,
                          crypto::PrivateKey::generate(crypto::Algorithm::kEd25519));
  uint64_t admin_seq = info.last_sequence, maker_seq = 0, biomed_seq = 0;
  std::vector<Bytes> phase;
  for (const auto& [id, kind] :
       {std::pair{"bench-maker", "maker"}, std::pair{"bench-hospital", "hospital"}}) {
    phase.push_back(
        setup_statement(admin, info.name, ++admin_seq, domain::kTypeOrgRegister,
                        map_of({{"id", text(id)}, {"name", text(id)}, {"kind", text(kind)}})));
  }
  const std::string run = std::to_string(std::time(nullptr));
  for (const auto& [key, org] :
       {std::pair{&maker, "bench-maker"}, std::pair{&biomed, "bench-hospital"}}) {
    ledger::KeyRegistration reg{key->public_key().spki_der(), ledger::kRoleBiomed,
                                std::string(org) + "-eng-" + run, org};
    phase.push_back(setup_statement(admin, info.name, ++admin_seq, ledger::kTypeKeyRegister,
                                    ledger::key_registration_payload(reg)));
  }
  CUSTOS_RETURN_IF_ERROR(setup_batch(nodes, std::move(phase)));
  const Hash256 image = crypto::sha256(as_view(std::string_view("bench firmware 1.0")));
  phase.clear();
  phase.push_back(setup_statement(maker, "maker", ++maker_seq, domain::kTypeFirmwareRelease,
                                  map_of({{"version", text("1.0")},
                                          {"image_sha256", cbor::Value::bytes(ByteView(image))},
                                          {"sbom_sha256", cbor::Value::bytes(ByteView(image))},
                                          {"models", cbor::Value::array({text("AP-500")})}})));
  phase.push_back(setup_statement(
      biomed, "biomed", ++biomed_seq, domain::kTypeDrugLibrary,
      map_of({{"version", text("DL-bench")}, {"sha256", cbor::Value::bytes(ByteView(image))}})));
  const auto device_id = [&](size_t i) { return "bench-" + run + "-" + std::to_string(i); };
  for (size_t i = 0; i < keys.size(); ++i) {
    phase.push_back(setup_statement(
        maker, "maker", ++maker_seq, domain::kTypeDeviceRegister,
        map_of({{"device", text(device_id(i))},
                {"class", text("infusion-pump")},
                {"model", text("AP-500")},
                {"udi", map_of({{"di", text("00614141999996")},
                                {"serial", text("B" + run + "-" + std::to_string(i))}})},
                {"key", cbor::Value::bytes(ByteView(keys[i].public_key().spki_der()))},
                {"firmware", map_of({{"version", text("1.0")},
                                     {"image_sha256", cbor::Value::bytes(ByteView(image))}})}})));
  }
  CUSTOS_RETURN_IF_ERROR(setup_batch(nodes, std::move(phase)));
  phase.clear();
  for (size_t i = 0; i < keys.size(); ++i) {
    phase.push_back(
        setup_statement(maker, "maker", ++maker_seq, domain::kTypeDeviceCustody,
                        map_of({{"device", text(device_id(i))}, {"to", text("bench-hospital")}})));
  }
  CUSTOS_RETURN_IF_ERROR(setup_batch(nodes, std::move(phase)));
  phase.clear();
  for (size_t i = 0; i < keys.size(); ++i) {
    phase.push_back(setup_statement(biomed, "biomed", ++biomed_seq, domain::kTypeDeviceInstall,
                                    map_of({{"device", text(device_id(i))},
                                            {"care_area", text("icu")},
                                            {"location", text("bed " + std::to_string(i))}})));
  }
  return setup_batch(nodes, std::move(phase));
}

Result<json> run_bench(const BenchOptions& o);

// Both workloads back to back, the same size and shape, and what the domain
// rules cost: 1 - (device events/s) / (generic statements/s).
Status bench_compare(const BenchOptions& o) {
  BenchOptions bare = o, devices = o;
  bare.report = devices.report = !o.json;
  bare.workload = kWorkloadStatements;
  bare.payload_bytes = 0;
  devices.workload = kWorkloadDevices;
  CUSTOS_ASSIGN_OR_RETURN(json a, run_bench(bare));
  CUSTOS_ASSIGN_OR_RETURN(json b, run_bench(devices));
  const double bare_rate = a["registered_per_s"].get<double>();
  const double device_rate = b["registered_per_s"].get<double>();
  const double cost = bare_rate > 0 ? 1 - device_rate / bare_rate : 0;
  const double bare_cpu = a["nodes_cpu_us_per_statement"].get<double>();
  const double device_cpu = b["nodes_cpu_us_per_statement"].get<double>();
  json out = {{"statements", a},
              {"device_events", b},
              {"domain_cost_throughput", cost},
              {"domain_cost_cpu", bare_cpu > 0 ? device_cpu / bare_cpu - 1 : 0}};
  if (o.json) {
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::printf(
        "\ndomain rules: %.0f device events/s against %.0f generic statements/s of the same shape "
        "-> %.1f%% slower; node CPU per statement %.1f us against %.1f us (%+.1f%%)\n",
        device_rate, bare_rate, cost * 100, device_cpu, bare_cpu,
        out["domain_cost_cpu"].get<double>() * 100);
  }
  return Status();
}

Status bench(const BenchOptions& o) {
  if (o.workload == kWorkloadCompare) return bench_compare(o);
  return run_bench(o).status();
}

Result<json> run_bench(const BenchOptions& o) {
  if (o.workload != kWorkloadStatements && o.workload != kWorkloadDevices)
    return error(ErrorCode::kInvalidArgument, "--workload: statements, device-events or compare");
  const bool devices = o.workload == kWorkloadDevices;
  CUSTOS_ASSIGN_OR_RETURN(crypto::Algorithm alg, crypto::algorithm_from_name(o.alg));
  if (o.nodes.empty()) return error(ErrorCode::kInvalidArgument, "--node: at least one URL");
  if (o.concurrency == 0 || o.batch == 0 || o.batch > limits::kBatchStatementsMax || o.count == 0) {
    return error(ErrorCode::kInvalidArgument,
                 "concurrency, batch (<= 1024) and count must be positive");
  }
  NodeClient probe(o.nodes[0]);
  const size_t sharing = o.nodes_on_machine ? o.nodes_on_machine : o.nodes.size();
  std::fprintf(stderr, "measuring %s verification rate on all cores...\n",
               crypto::algorithm_name(alg));
  const VerifyRate verify_before = measure_verify_rate(alg, 2.0);

  std::vector<crypto::PrivateKey> keys;
  for (size_t i = 0; i < o.concurrency; ++i)
    keys.push_back(crypto::PrivateKey::generate(alg).value());
  if (devices) {
    std::fprintf(stderr, "registering %zu infusion pumps...\n", keys.size());
    CUSTOS_RETURN_IF_ERROR(register_bench_devices(o.nodes, o.admin_key, keys));
  } else {
    CUSTOS_RETURN_IF_ERROR(register_bench_keys(probe, o.admin_key, keys));
    CUSTOS_RETURN_IF_ERROR(wait_for_log_size(o.nodes, metric(probe, "custos_log_size")));
  }

  // Everything is signed before the clock starts, so the load generator's own
  // signing does not compete with the node for the cores while measuring.
  std::fprintf(stderr, "signing %zu statements...\n", o.count);
  const size_t per_worker = (o.count + o.concurrency - 1) / o.concurrency;
  std::vector<std::vector<Bytes>> work(o.concurrency);
  size_t statement_bytes = 0;
  {
    std::vector<std::thread> signers;
    std::mutex mu;
    for (size_t w = 0; w < o.concurrency; ++w) {
      signers.emplace_back([&, w] {
        cose::StatementHeader h;
        h.content_type = devices ? std::string(domain::kTypeDeviceEvent) : "application/cbor";
        h.issuer = "bench-" + std::to_string(w);
        h.subject = "pump-" + std::to_string(w);
        // Device events are checked against the block time (clock-skew).
        h.issued_at_s = devices ? static_cast<uint64_t>(std::time(nullptr)) : 1;
        size_t bytes = 0;
        for (size_t i = 0; i < per_worker && w * per_worker + i < o.count; ++i) {
          h.sequence = i + 1;
          work[w].push_back(cose::sign_statement(
              keys[w], h,
              devices ? device_event_payload(w, i) : event_payload(w, i, o.payload_bytes)));
          bytes += work[w].back().size();
        }
        std::lock_guard lock(mu);
        statement_bytes += bytes;
      });
      if (signers.size() == std::thread::hardware_concurrency()) {
        for (auto& t : signers) t.join();
        signers.clear();
      }
    }
    for (auto& t : signers) t.join();
  }
  // Request bodies are built before the clock starts too: the load generator
  // shares the cores with the node(s) it measures, so whatever it spends
  // while submitting is taken from them.
  std::vector<std::vector<std::string>> bodies(o.concurrency);
  for (size_t w = 0; w < o.concurrency; ++w) {
    for (size_t i = 0; i < work[w].size(); i += o.batch) {
      const size_t n = std::min(o.batch, work[w].size() - i);
      if (o.batch == 1) {
        bodies[w].emplace_back(work[w][i].begin(), work[w][i].end());
        continue;
      }
      cbor::Array items;
      for (size_t k = 0; k < n; ++k) items.push_back(cbor::Value::bytes(ByteView(work[w][i + k])));
      Bytes body = cbor::encode(cbor::Value::array(std::move(items)));
      bodies[w].emplace_back(body.begin(), body.end());
    }
  }
  const double log_size_before = metric(probe, "custos_log_size");
  const uint64_t disk_before = o.data_dir.empty() ? 0 : dir_bytes(o.data_dir);

  std::fprintf(stderr, "submitting with %zu clients, %zu statements per request...\n",
               o.concurrency, o.batch);
  std::vector<std::vector<double>> latencies(o.concurrency);
  std::atomic<size_t> refused{0}, failed{0};
  std::vector<std::string> sample_ids(o.concurrency);
  const double cpu_before = process_cpu_seconds();
  const double nodes_cpu_before = nodes_cpu_seconds(o.nodes);
  const auto start = Clock::now();
  std::vector<std::thread> clients;
  for (size_t w = 0; w < o.concurrency; ++w) {
    clients.emplace_back([&, w] {
      NodeClient client(o.nodes[w % o.nodes.size()]);
      // With --rate, each client offers its share at a fixed pace (open
      // loop), so latency is measured at that load rather than at saturation.
      const double per_client_s =
          o.rate > 0 ? static_cast<double>(o.batch * o.concurrency) / o.rate : 0;
      for (size_t i = 0, r = 0; i < work[w].size(); i += o.batch, ++r) {
        const size_t n = std::min(o.batch, work[w].size() - i);
        if (per_client_s > 0) {
          std::this_thread::sleep_until(
              start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(
                          per_client_s * static_cast<double>(i / o.batch))));
        }
        const auto t0 = Clock::now();
        Result<HttpReply> reply =
            o.batch == 1 ? client.post("/v1/entries", bodies[w][r], "application/cose")
                         : client.post("/v1/entries/batch", bodies[w][r], "application/cbor");
        const double latency = seconds_since(t0);
        if (!reply.ok() || !reply->ok()) {
          failed += n;
          continue;
        }
        if (reply->body.find("\"refused\"") != std::string::npos) ++refused;
        for (size_t k = 0; k < n; ++k) latencies[w].push_back(latency);
        sample_ids[w] = to_hex(crypto::sha256(work[w][i]));
      }
    });
  }
  for (auto& t : clients) t.join();
  const double elapsed = seconds_since(start);
  const double generator_cores = (process_cpu_seconds() - cpu_before) / elapsed;
  const double nodes_cpu = nodes_cpu_seconds(o.nodes) - nodes_cpu_before;
  // The machine is shared and noisy: measure the limit again now that the
  // node is idle and keep the higher figure, so the ratio is not flattered by
  // one unlucky measurement.
  const VerifyRate verify_after = measure_verify_rate(alg, 2.0);
  const double verify_rate_machine = std::max(verify_before.per_s, verify_after.per_s);
  const double verify_rate = verify_rate_machine / static_cast<double>(sharing);
  const double verify_cpu_s = std::min(verify_before.cpu_s_each, verify_after.cpu_s_each);

  std::vector<double> all;
  for (auto& v : latencies) all.insert(all.end(), v.begin(), v.end());
  const double registered = static_cast<double>(all.size());
  const double rate = registered / elapsed;
  const double p50 = percentile(all, 0.50), p99 = percentile(all, 0.99);
  // CPU the nodes spent per registered statement, all nodes together, beside
  // what the verifications alone cost (each node verifies each statement
  // once): the share of the nodes' CPU that is verification. Unlike the
  // throughput ratio it does not depend on how busy the machine is.
  const double cpu_per_statement = registered > 0 ? nodes_cpu / registered : 0;
  const double verify_share =
      cpu_per_statement > 0 ? verify_cpu_s * static_cast<double>(o.nodes.size()) / cpu_per_statement
                            : 0;
  const double log_size_after = metric(probe, "custos_log_size");
  double peak_rss = 0;
  for (const std::string& url : o.nodes) {
    NodeClient c(url);
    peak_rss = std::max(peak_rss, metric(c, "custos_peak_resident_memory_bytes"));
  }

  // Receipts: size, time to fetch (generation + HTTP) and time to verify.
  // Receipts are bundles signed by a quorum; check them against the genesis.
  CUSTOS_ASSIGN_OR_RETURN(HttpReply genesis_reply, probe.get("/v1/genesis"));
  CUSTOS_ASSIGN_OR_RETURN(ledger::Genesis genesis,
                          ledger::parse_genesis(as_view(genesis_reply.body)));
  std::vector<crypto::PublicKey> node_keys;
  for (const auto& n : genesis.nodes) node_keys.push_back(n.key);
  double receipt_fetch_s = 0, receipt_verify_s = 0, receipt_bytes = 0;
  size_t receipts_done = 0;
  std::mt19937_64 rng(42);
  for (size_t i = 0; i < o.receipts; ++i) {
    const size_t w = rng() % o.concurrency;
    if (work[w].empty()) continue;
    const Bytes& st = work[w][rng() % work[w].size()];
    const std::string id = to_hex(crypto::sha256(st));
    auto t0 = Clock::now();
    auto reply = probe.get("/v1/entries/" + id + "/receipt", "application/cbor");
    receipt_fetch_s += seconds_since(t0);
    if (!reply.ok() || !reply->ok()) continue;
    t0 = Clock::now();
    auto bundle = cose::parse_receipt_bundle(as_view(reply->body));
    Status v = bundle.ok() ? cose::verify_receipt_bundle(*bundle, st, node_keys,
                                                         quorum_size(node_keys.size()))
                           : bundle.status();
    receipt_verify_s += seconds_since(t0);
    if (!v.ok())
      return error(ErrorCode::kBadSignature, "a benchmark receipt did not verify: " + v.message());
    receipt_bytes += static_cast<double>(reply->body.size());
    ++receipts_done;
  }
  if (!o.data_dir.empty()) {
    // let the memtable reach the WAL/SST accounting consistently
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const uint64_t disk_after = o.data_dir.empty() ? 0 : dir_bytes(o.data_dir);

  json j = {
      {"workload", o.workload},
      {"algorithm", crypto::algorithm_name(alg)},
      {"statements", o.count},
      {"registered", registered},
      {"failed", failed.load()},
      {"requests_with_refusals", refused.load()},
      {"concurrency", o.concurrency},
      {"batch", o.batch},
      {"seconds", elapsed},
      {"registered_per_s", rate},
      {"nodes", o.nodes.size()},
      {"nodes_sharing_machine", sharing},
      {"offered_rate_per_s", o.rate},
      {"verify_per_s_all_cores", verify_rate_machine},
      {"verify_limit_per_s", verify_rate},
      {"ratio_to_verify_limit", rate / verify_rate},
      {"load_generator_cores", generator_cores},
      {"nodes_cpu_us_per_statement", cpu_per_statement * 1e6},
      {"verify_cpu_us", verify_cpu_s * 1e6},
      {"verify_share_of_node_cpu", verify_share},
      {"latency_p50_ms", p50 * 1000},
      {"latency_p99_ms", p99 * 1000},
      {"statement_bytes_avg", static_cast<double>(statement_bytes) / static_cast<double>(o.count)},
      {"log_size", log_size_after},
      {"node_peak_rss_mb", peak_rss / 1e6}};
  if (!o.data_dir.empty() && log_size_after > log_size_before) {
    j["disk_bytes"] = disk_after;
    j["disk_bytes_per_entry_this_run"] =
        static_cast<double>(disk_after - std::min(disk_after, disk_before)) /
        (log_size_after - log_size_before);
    j["disk_bytes_per_entry_total"] = static_cast<double>(disk_after) / log_size_after;
  }
  if (receipts_done) {
    j["receipt_bytes_avg"] = receipt_bytes / static_cast<double>(receipts_done);
    j["receipt_fetch_ms_avg"] = receipt_fetch_s * 1000 / static_cast<double>(receipts_done);
    j["receipt_verify_ms_avg"] = receipt_verify_s * 1000 / static_cast<double>(receipts_done);
  }
  if (!o.report) {
  } else if (o.json) {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("registered %.0f statements in %.2f s: %.0f/s\n", registered, elapsed, rate);
    std::printf(
        "verification limit (%s, all cores, same run): %.0f/s / %zu node(s) = %.0f/s -> ratio "
        "%.2f\n",
        crypto::algorithm_name(alg), verify_rate_machine, sharing, verify_rate, rate / verify_rate);
    std::printf(
        "latency to a quorum-signed registration: p50 %.1f ms, p99 %.1f ms (per request of %zu)\n",
        p50 * 1000, p99 * 1000, o.batch);
    std::printf("peak RSS of the largest node %.1f MB at log size %.0f\n", peak_rss / 1e6,
                log_size_after);
    std::printf("load generator (this process) used %.3f cores while submitting\n",
                generator_cores);
    if (nodes_cpu > 0) {
      std::printf(
          "node CPU per statement (%zu node(s) together): %.1f us; one verification %.1f us -> "
          "verification is %.2f of the nodes' CPU\n",
          o.nodes.size(), cpu_per_statement * 1e6, verify_cpu_s * 1e6, verify_share);
    }
    if (j.contains("disk_bytes_per_entry_this_run")) {
      std::printf("disk: %.0f bytes per entry (statement avg %.0f bytes)\n",
                  j["disk_bytes_per_entry_this_run"].get<double>(),
                  j["statement_bytes_avg"].get<double>());
    }
    if (receipts_done) {
      std::printf("receipts: %.0f bytes, fetch %.2f ms, verify %.3f ms (avg of %zu)\n",
                  j["receipt_bytes_avg"].get<double>(), j["receipt_fetch_ms_avg"].get<double>(),
                  j["receipt_verify_ms_avg"].get<double>(), receipts_done);
    }
  }
  if (failed)
    return error(ErrorCode::kUnavailable, std::to_string(failed.load()) + " statements failed");
  return j;
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* cmd = app.add_subcommand(
      "bench", "Load a running node and report throughput against the verify limit");
  cmd->add_option("--node", o->nodes, "Node URL; repeat to spread the clients over several nodes")
      ->capture_default_str();
  cmd->add_option("--nodes-on-machine", o->nodes_on_machine,
                  "Nodes sharing this machine's cores (default: the number of --node URLs)");
  cmd->add_option("--rate", o->rate, "Offered load in statements/s (default: as fast as possible)");
  cmd->add_option("--admin-key", o->admin_key, "Admin key PEM (registers one bench key per client)")
      ->required();
  cmd->add_option("--alg", o->alg, "ed25519 or es256")->capture_default_str();
  cmd->add_option("--count", o->count, "Statements to submit")->capture_default_str();
  cmd->add_option("--concurrency", o->concurrency, "Concurrent HTTP clients")
      ->capture_default_str();
  cmd->add_option("--batch", o->batch, "Statements per request (1 = POST /v1/entries)")
      ->capture_default_str();
  cmd->add_option("--payload-bytes", o->payload_bytes, "Padding in each payload")
      ->capture_default_str();
  cmd->add_option("--receipts", o->receipts, "Receipts to fetch and verify afterwards")
      ->capture_default_str();
  cmd->add_option("--data-dir", o->data_dir, "The node's data directory, to measure bytes on disk");
  cmd->add_option("--workload", o->workload,
                  "statements (generic, the ledger core), device-events (installed pumps, the "
                  "domain rules on every one) or compare (both, and the domain rules' cost)")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([o] {
    if (Status s = bench(*o); !s.ok()) exit_status() = fail(s);
  });
}

}  // namespace custos::cli
