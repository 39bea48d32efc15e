// The durability promise: "an entry acknowledged to a client survives
// SIGKILL at any point". Client threads submit continuously (single
// statements and batches) while the node is killed at random moments and
// restarted on the same data directory; afterwards every acknowledged entry
// must be there, at the index it was acknowledged with, with a receipt that
// verifies offline, no entry twice, and a clean full audit.
//
// The kill moments are drawn from a seed printed at the start; set
// CUSTOS_CRASH_SEED to replay one (thread timing still varies).
#include <map>
#include <mutex>
#include <random>
#include <set>

#include "cose/receipt.h"
#include "crypto/hash.h"
#include "integration/harness.h"
#include "ledger/audit.h"

namespace custos::integration {
namespace {

struct Ack {
  std::string id;
  uint64_t index = 0;
  Bytes statement;
  int thread = 0;
};

// The clients' requests and the kill schedule.
struct Workload {
  int threads = 4;
  double batch_probability = 0.3;  // otherwise POST /v1/entries
  size_t batch_min = 2, batch_max = 32;
  size_t payload_bytes = 64;
  int cycles = 5;               // kill + restart
  int kill_after_min_ms = 800;  // time from (re)start to the next kill
  int kill_after_max_ms = 3500;
  int min_acks_per_life = 1;  // progress check per node life
  // Chance of a second SIGKILL within 150 ms of a restart, while RocksDB
  // recovers and before the node answers.
  double kill_during_recovery_probability = 0.4;
};

uint64_t seed_from_env() {
  if (const char* s = std::getenv("CUSTOS_CRASH_SEED")) return std::stoull(s);
  return std::random_device{}();
}

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override {
    node_ = std::make_unique<NodeProcess>(dir_.path());
    ASSERT_TRUE(node_->start());
    client_ = make_client(node_->port());
  }
  void TearDown() override {
    if (!HasFailure()) return;
    std::string log = slurp(node_->log_path());
    if (log.size() > 4000) log = log.substr(log.size() - 4000);
    std::fprintf(stderr, "[crash] end of the node log:\n%s\n", log.c_str());
  }

  void run(const Workload& w);
  void client_loop(int thread, Signer signer, const Workload& w, uint64_t seed);
  void verify_after_crashes();

  void record(int thread, const Json& answer, const Bytes& statement) {
    std::lock_guard lock(mu_);
    acks_.push_back({answer.value("id", ""), answer["index"].get<uint64_t>(), statement, thread});
  }
  void unexpected(const std::string& what) {
    std::lock_guard lock(mu_);
    if (unexpected_.size() < 20) unexpected_.push_back(what);
    ++unexpected_count_;
  }
  size_t ack_count() {
    std::lock_guard lock(mu_);
    return acks_.size();
  }

  TempDir dir_;
  std::unique_ptr<NodeProcess> node_;
  std::unique_ptr<httplib::Client> client_;

  std::atomic<bool> stop_{false};   // finish the current request, then return
  std::atomic<bool> abort_{false};  // the node is gone for good: give up retrying
  std::atomic<uint64_t> connection_errors_{0};
  std::mutex mu_;
  std::vector<Ack> acks_;
  std::vector<std::string> unexpected_;
  size_t unexpected_count_ = 0;
};

// Sends one request until it gets a definitive answer. A connection error
// means the node died (or is restarting); the answer may be lost, so the
// same bytes go again: already-registered statements answer with their
// original place, the others are registered now.
void CrashTest::client_loop(int thread, Signer signer, const Workload& w, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto c = make_client(node_->port(), 60);
  std::uniform_real_distribution<double> coin(0, 1);
  std::uniform_int_distribution<size_t> batch_size(w.batch_min, w.batch_max);
  uint64_t n = 0;
  while (!stop_ && !abort_) {
    const bool batch = coin(rng) < w.batch_probability;
    std::vector<Bytes> statements(batch ? batch_size(rng) : 1);
    for (auto& st : statements) {
      Bytes blob(w.payload_bytes);
      for (auto& b : blob) b = static_cast<uint8_t>(rng());
      cbor::Map m;
      m.emplace_back(cbor::text("thread"), cbor::Value::uint(static_cast<uint64_t>(thread)));
      m.emplace_back(cbor::text("n"), cbor::Value::uint(n++));
      m.emplace_back(cbor::text("blob"), cbor::Value::bytes(std::move(blob)));
      st = signer.sign("crash-" + std::to_string(thread),
                       cbor::encode(cbor::Value::map(std::move(m))));
    }
    for (;;) {
      if (abort_) return;
      auto res = batch ? post_batch(*c, statements) : post_cose(*c, statements[0]);
      if (!res || res->status == 503) {
        if (!res) ++connection_errors_;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      Json doc = Json::parse(res->body, nullptr, false);
      if (!batch) {
        if ((res->status == 201 && doc.value("status", "") == "registered") ||
            (res->status == 200 && doc.value("status", "") == "already-registered")) {
          record(thread, doc, statements[0]);
        } else {
          unexpected("single: HTTP " + std::to_string(res->status) + " " + res->body);
        }
        break;
      }
      if (res->status != 200 || !doc.contains("results") ||
          doc["results"].size() != statements.size()) {
        unexpected("batch: HTTP " + std::to_string(res->status) + " " + res->body.substr(0, 300));
        break;
      }
      for (size_t i = 0; i < statements.size(); ++i) {
        const Json& r = doc["results"][i];
        const std::string status = r.value("status", "");
        if (status == "registered" || status == "already-registered") {
          record(thread, r, statements[i]);
        } else {
          unexpected("batch item: " + r.dump());
        }
      }
      break;
    }
  }
}

void CrashTest::run(const Workload& w) {
  const uint64_t seed = seed_from_env();
  std::printf("[crash] seed %llu (set CUSTOS_CRASH_SEED=%llu to replay the kill schedule)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  RecordProperty("seed", std::to_string(seed));
  std::mt19937_64 rng(seed);

  // One key per thread, so each thread's sequence numbers are its own.
  const crypto::PrivateKey admin = node_->admin_key();
  std::vector<Signer> signers;
  for (int t = 0; t < w.threads; ++t) {
    signers.push_back(Signer::generate("crash-client-" + std::to_string(t)));
    ASSERT_TRUE(
        register_key(*client_, admin, signers.back().key.public_key(), signers.back().issuer));
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < w.threads; ++t) {
    threads.emplace_back(&CrashTest::client_loop, this, t, signers[t], w, rng());
  }

  std::uniform_int_distribution<int> kill_after(w.kill_after_min_ms, w.kill_after_max_ms);
  std::uniform_int_distribution<int> early(0, 150);
  std::uniform_real_distribution<double> coin(0, 1);
  bool node_ok = true;
  for (int cycle = 0; cycle < w.cycles && node_ok; ++cycle) {
    const size_t acks_before = ack_count();
    const int ms = kill_after(rng);
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    const size_t acks_in_life = ack_count() - acks_before;
    const int code = node_->kill();
    EXPECT_EQ(code, 128 + SIGKILL);
    std::printf("[crash] cycle %d: SIGKILL after %d ms (%zu acks in this life, %zu total)\n", cycle,
                ms, acks_in_life, ack_count());
    EXPECT_GE(acks_in_life, static_cast<size_t>(w.min_acks_per_life))
        << "no progress in life " << cycle;
    // Sometimes kill it again while it recovers: open, replay, first bind.
    if (coin(rng) < w.kill_during_recovery_probability) {
      node_->launch();
      const int early_ms = early(rng);
      std::this_thread::sleep_for(std::chrono::milliseconds(early_ms));
      node_->kill();
      std::printf("[crash] cycle %d: SIGKILL %d ms into a restart\n", cycle, early_ms);
    }
    auto started = node_->start();
    EXPECT_TRUE(started);
    node_ok = static_cast<bool>(started);
  }
  if (node_ok) {
    // A last stretch with the node up, so each client gets its answers.
    const size_t acks_before = ack_count();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    stop_ = true;
    EXPECT_GT(ack_count(), acks_before) << "no progress after the last restart";
  } else {
    abort_ = true;
  }
  for (auto& t : threads) t.join();
  std::printf("[crash] %zu acks, %llu connection errors seen by clients\n", acks_.size(),
              static_cast<unsigned long long>(connection_errors_.load()));
  EXPECT_EQ(unexpected_count_, 0u) << "first unexpected answers:\n"
                                   << [&] {
                                        std::string s;
                                        for (const auto& u : unexpected_) s += u + "\n";
                                        return s;
                                      }();
  ASSERT_TRUE(node_ok);
  verify_after_crashes();
}

void CrashTest::verify_after_crashes() {
  ASSERT_FALSE(acks_.empty());
  const auto started = Clock::now();
  const crypto::PublicKey& node_key = node_->node_key();
  client_ = make_client(node_->port());

  // Each thread's acknowledgements come in log order: its statements are
  // sequential and a retried batch keeps its order.
  std::map<int, uint64_t> last_index;
  std::map<std::string, uint64_t> acked;  // id -> index
  for (const Ack& a : acks_) {
    auto it = last_index.find(a.thread);
    if (it != last_index.end()) {
      EXPECT_GT(a.index, it->second) << "thread " << a.thread << " acked out of order: " << a.id;
    }
    last_index[a.thread] = a.index;
    auto [pos, inserted] = acked.emplace(a.id, a.index);
    EXPECT_TRUE(inserted) << "acknowledged twice: " << a.id;
  }

  // Every acknowledged entry survived with the same bytes, and its receipt
  // places it where it was acknowledged and verifies offline against the
  // node key. (Statements as COSE, not JSON: large payloads make JSON slow.)
  // Several connections, so the check takes seconds, not tens of them.
  std::atomic<size_t> next{0}, missing{0}, changed{0}, bad_receipts{0};
  std::mutex examples_mu;
  std::vector<std::string> examples;
  auto note = [&](std::atomic<size_t>& counter, const std::string& what) {
    if (++counter > 3) return;
    std::lock_guard lock(examples_mu);
    examples.push_back(what);
  };
  auto check = [&] {
    auto c = make_client(node_->port());
    for (size_t i; (i = next++) < acks_.size();) {
      const Ack& a = acks_[i];
      auto res = c->Get("/v1/entries/" + a.id, {{"Accept", "application/cose"}});
      if (!res || res->status != 200) {
        note(missing, "acknowledged entry lost: " + a.id + " at index " + std::to_string(a.index));
        continue;
      }
      if (res->body != as_string(a.statement)) note(changed, "different bytes for " + a.id);
      auto r = c->Get("/v1/entries/" + a.id + "/receipt");
      auto receipt = r && r->status == 200
                         ? single_receipt(as_view(r->body))
                         : Result<cose::Receipt>(error(ErrorCode::kNotFound, "no receipt"));
      if (!receipt.ok() || receipt->proof.leaf_index != a.index ||
          !cose::verify_receipt(*receipt, a.statement, node_key).ok()) {
        note(bad_receipts,
             "no receipt verifying index " + std::to_string(a.index) + " for " + a.id);
      }
    }
  };
  std::vector<std::thread> checkers;
  for (int t = 0; t < 4; ++t) checkers.emplace_back(check);
  for (auto& t : checkers) t.join();
  EXPECT_EQ(missing.load(), 0u) << "of " << acks_.size() << " acknowledged entries";
  EXPECT_EQ(changed.load(), 0u);
  EXPECT_EQ(bad_receipts.load(), 0u);
  for (const auto& e : examples) ADD_FAILURE() << e;
  const double receipts_s = std::chrono::duration<double>(Clock::now() - started).count();

  // The whole log, page by page: no entry twice, nothing beyond the head.
  const uint64_t size = log_size(*client_);
  std::set<std::string> seen;
  uint64_t listed = 0, expect_index = 0;
  std::string cursor = "0";
  for (;;) {
    Json page = json_of(client_->Get("/v1/entries?limit=1000&cursor=" + cursor));
    ASSERT_TRUE(page.is_object());
    for (const auto& e : page["entries"]) {
      EXPECT_EQ(e["index"].get<uint64_t>(), expect_index++);
      EXPECT_TRUE(seen.insert(e.value("id", "")).second) << "duplicate entry " << e.value("id", "");
      ++listed;
    }
    if (page["next_cursor"].is_null()) break;
    cursor = page["next_cursor"].get<std::string>();
  }
  EXPECT_EQ(listed, size);
  for (const auto& [id, index] : acked) EXPECT_TRUE(seen.count(id)) << id;

  // A clean stop, then the offline audit of everything on disk.
  // Our idle keep-alive connection would hold the stop for the keep-alive
  // idle time (httplib waits for it), so close it first.
  client_.reset();
  EXPECT_EQ(node_->stop(), 0);
  const auto audit_started = Clock::now();
  ledger::AuditReport report;
  Status audit = ledger::audit(node_->data_dir(), &report);
  EXPECT_TRUE(audit.ok()) << audit.to_string();
  EXPECT_EQ(report.entries, size);
  std::printf(
      "[crash] receipts checked in %.1f s, log listed and node stopped in %.1f s, audit (%.1f s): "
      "%llu blocks, "
      "%llu entries, %llu signatures\n",
      receipts_s, std::chrono::duration<double>(audit_started - started).count() - receipts_s,
      std::chrono::duration<double>(Clock::now() - audit_started).count(),
      static_cast<unsigned long long>(report.blocks),
      static_cast<unsigned long long>(report.entries),
      static_cast<unsigned long long>(report.signatures_verified));
}

TEST_F(CrashTest, AcknowledgedEntriesSurviveSigkill) {
  Workload w;
  run(w);
}

// Large batches keep the sequencer writing multi-megabyte blocks, so the
// kills land inside big RocksDB writes rather than between small ones.
TEST_F(CrashTest, AcknowledgedEntriesSurviveSigkillDuringLargeBatches) {
  Workload w;
  w.threads = 3;
  w.batch_probability = 1.0;
  w.batch_min = 48;
  w.batch_max = 96;
  w.payload_bytes = 8 * 1024;
  w.cycles = 3;
  w.kill_after_min_ms = 300;
  w.kill_after_max_ms = 1500;
  w.min_acks_per_life = 0;  // a short life may end inside its first block
  run(w);
}

}  // namespace
}  // namespace custos::integration
