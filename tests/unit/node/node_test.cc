// Node: a one-node consortium (the consensus replica with no peers) over a
// real ledger in a temporary directory. Concurrent submitters, batches,
// idempotent resubmission, backpressure, registration timeouts, restart and
// metrics. Consortia of several nodes are tested with real processes in
// tests/integration/cluster_test.cc and in the simulation (tests/sim).
#include "node/node.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "crypto/hash.h"
#include "ledger/audit.h"
#include "unit/ledger/ledger_fixture.h"

namespace custos::node {
namespace {

using testutil::Fields;
using testutil::ledger_config;
using testutil::new_key;
using testutil::registration;
using testutil::sign;
using testutil::TempDir;
using testutil::test_keys;

constexpr int kThreads = 8;

const crypto::PrivateKey& thread_key(int i) {
  static const std::vector<crypto::PrivateKey> kKeys = [] {
    std::vector<crypto::PrivateKey> keys;
    for (int k = 0; k < kThreads; ++k) keys.push_back(new_key());
    return keys;
  }();
  return kKeys.at(i);
}

uint64_t refused(Metrics& m, ErrorCode code) {
  return m.statements_refused[static_cast<int>(code)].load();
}

class NodeTest : public ::testing::Test {
 protected:
  NodeConfig config(int block_interval_ms = 1) {
    NodeConfig c;
    c.ledger = ledger_config(dir_.path());
    c.block_interval_ms = block_interval_ms;
    return c;
  }

  void start(NodeConfig c) {
    node_.reset();
    auto n = Node::start(std::move(c));
    ASSERT_TRUE(n.ok()) << n.status().to_string();
    node_ = std::move(n).value();
  }

  Submission must_submit(const Bytes& bytes) {
    auto s = node_->submit(bytes);
    if (!s.ok()) throw std::runtime_error("submit: " + s.status().to_string());
    return std::move(s).value();
  }

  // Registers the per-thread keys as issuers with one batch.
  void register_thread_keys() {
    std::vector<Bytes> regs;
    for (int i = 0; i < kThreads; ++i) {
      regs.push_back(registration(test_keys().admin, ++admin_seq_, thread_key(i).public_key(),
                                  ledger::kRoleIssuer, "thread-" + std::to_string(i)));
    }
    std::vector<ByteView> views(regs.begin(), regs.end());
    auto results = node_->submit_batch(views);
    ASSERT_EQ(results.size(), regs.size());
    for (auto& r : results) ASSERT_TRUE(r.ok()) << r.status().to_string();
  }

  TempDir dir_{"custos-node"};
  std::unique_ptr<Node> node_;
  uint64_t admin_seq_ = 0;
};

TEST_F(NodeTest, StartsAndRegistersAStatement) {
  start(config());
  EXPECT_TRUE(node_->healthy());
  EXPECT_EQ(node_->pending(), 0u);
  EXPECT_EQ(node_->ledger().head().height, 0u);
  Bytes st = sign(test_keys().admin, 1);
  Submission s = must_submit(st);
  EXPECT_FALSE(s.already_registered);
  EXPECT_EQ(s.registered.id, crypto::sha256(st));
  EXPECT_EQ(s.registered.index, 0u);
  EXPECT_EQ(s.registered.height, 1u);
  // Durable and visible by the time submit returns.
  EXPECT_EQ(node_->ledger().head().log_size, 1u);
  auto e = node_->ledger().entry(s.registered.id);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->statement, st);
  EXPECT_TRUE(node_->ledger().receipt(s.registered.id).ok());
}

TEST_F(NodeTest, RefusalsComeBackWithTheirCode) {
  start(config());
  Bytes st = sign(test_keys().admin, 1);
  Bytes bad = st;
  bad.back() ^= 1;
  EXPECT_EQ(node_->submit(bad).status().code(), ErrorCode::kBadSignature);
  EXPECT_EQ(node_->submit(to_bytes("junk")).status().code(), ErrorCode::kMalformed);
  EXPECT_EQ(node_->submit(sign(thread_key(0), 1)).status().code(), ErrorCode::kUnknownKey);
  must_submit(st);
  Fields other;
  other.subject = "other";
  EXPECT_EQ(node_->submit(sign(test_keys().admin, 1, other)).status().code(), ErrorCode::kReplay);
}

TEST_F(NodeTest, ConcurrentSubmitsFromEightThreadsAllRegisterWithDistinctIndexes) {
  start(config(2));
  register_thread_keys();
  constexpr int kPerThread = 25;
  std::vector<std::vector<Result<Submission>>> results(kThreads);
  std::vector<std::vector<Bytes>> sent(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // One key per thread, sequence numbers in order: nothing may be refused.
      for (uint64_t seq = 1; seq <= kPerThread; ++seq) {
        Fields f;
        f.issuer = "urn:dev:thread-" + std::to_string(t);
        sent[t].push_back(sign(thread_key(t), seq, f));
        results[t].push_back(node_->submit(sent[t].back()));
      }
    });
  }
  for (auto& th : threads) th.join();

  std::set<uint64_t> indexes;
  for (int t = 0; t < kThreads; ++t) {
    uint64_t previous = 0;
    for (int j = 0; j < kPerThread; ++j) {
      auto& r = results[t][j];
      ASSERT_TRUE(r.ok()) << "thread " << t << " #" << j << ": " << r.status().to_string();
      EXPECT_FALSE(r->already_registered);
      EXPECT_EQ(r->registered.id, crypto::sha256(sent[t][j]));
      EXPECT_FALSE(r->registered.gap.has_value());
      // A thread's own statements are registered in the order it sent them.
      EXPECT_GT(r->registered.index, previous);
      previous = r->registered.index;
      EXPECT_TRUE(indexes.insert(r->registered.index).second)
          << "index " << r->registered.index << " twice";
      auto e = node_->ledger().entry_at(r->registered.index);
      ASSERT_TRUE(e.ok());
      EXPECT_EQ(e->statement, sent[t][j]);
    }
  }
  // Registrations took 0..7; the threads' statements exactly the rest.
  const uint64_t total = kThreads + kThreads * kPerThread;
  ASSERT_EQ(indexes.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(*indexes.begin(), static_cast<uint64_t>(kThreads));
  EXPECT_EQ(*indexes.rbegin(), total - 1);
  EXPECT_EQ(node_->ledger().head().log_size, total);
  EXPECT_EQ(node_->metrics().statements_registered.load(), total);
  const uint64_t blocks = node_->metrics().blocks_written.load();
  EXPECT_GE(blocks, 2u);
  EXPECT_LE(blocks, total);
  EXPECT_EQ(node_->ledger().head().height, blocks);
  EXPECT_EQ(node_->pending(), 0u);

  node_.reset();
  ledger::AuditReport report;
  Status audit = ledger::audit(dir_.path(), &report);
  EXPECT_TRUE(audit.ok()) << audit.to_string();
  EXPECT_EQ(report.entries, total);
}

TEST_F(NodeTest, SubmitBatchAnswersEachStatementInOrder) {
  start(config());
  const auto& admin = test_keys().admin;
  Bytes a = sign(admin, 1), b = sign(admin, 2), c = sign(admin, 3);
  Bytes bad = b;
  bad.back() ^= 1;
  // The same bytes twice in one batch: the second is answered like a retry.
  std::vector<Bytes> batch{a, bad, b, to_bytes("junk"), b, c};
  std::vector<ByteView> views(batch.begin(), batch.end());
  auto results = node_->submit_batch(views);
  ASSERT_EQ(results.size(), batch.size());
  ASSERT_TRUE(results[0].ok()) << results[0].status().to_string();
  EXPECT_EQ(results[1].status().code(), ErrorCode::kBadSignature);
  ASSERT_TRUE(results[2].ok());
  EXPECT_EQ(results[3].status().code(), ErrorCode::kMalformed);
  ASSERT_TRUE(results[4].ok()) << results[4].status().to_string();
  ASSERT_TRUE(results[5].ok());
  EXPECT_FALSE(results[0]->already_registered);
  EXPECT_FALSE(results[2]->already_registered);
  EXPECT_TRUE(results[4]->already_registered);
  EXPECT_EQ(results[4]->registered.index, results[2]->registered.index);
  EXPECT_EQ(results[4]->registered.id, results[2]->registered.id);
  EXPECT_EQ(results[0]->registered.index, 0u);
  EXPECT_EQ(results[2]->registered.index, 1u);
  EXPECT_EQ(results[5]->registered.index, 2u);
  EXPECT_EQ(node_->ledger().head().log_size, 3u);
  EXPECT_TRUE(node_->submit_batch({}).empty());
}

TEST_F(NodeTest, SameBytesAgainReturnAlreadyRegistered) {
  start(config());
  Bytes st = sign(test_keys().admin, 1);
  Submission first = must_submit(st);
  Submission again = must_submit(st);
  EXPECT_FALSE(first.already_registered);
  EXPECT_TRUE(again.already_registered);
  EXPECT_EQ(again.registered.id, first.registered.id);
  EXPECT_EQ(again.registered.index, first.registered.index);
  EXPECT_EQ(again.registered.height, first.registered.height);
  EXPECT_EQ(node_->ledger().head().log_size, 1u);
  EXPECT_EQ(node_->metrics().statements_registered.load(), 1u);
  // The gap a statement was registered with is reported on retries too.
  Bytes gapped = sign(test_keys().admin, 5);
  Submission g = must_submit(gapped);
  ASSERT_TRUE(g.registered.gap.has_value());
  Submission g2 = must_submit(gapped);
  EXPECT_TRUE(g2.already_registered);
  ASSERT_TRUE(g2.registered.gap.has_value());
  EXPECT_EQ(g2.registered.gap->expected, 2u);
  EXPECT_EQ(g2.registered.gap->got, 5u);
}

TEST_F(NodeTest, BackpressureRefusesExcessSubmissionsWithUnavailable) {
  // A block interval long enough that nothing is written while we submit,
  // and no idle heartbeat block in between.
  NodeConfig c = config(800);
  c.idle_proposal_ms = 10000;
  c.round_timeout_ms = 20000;
  c.round_timeout_max_ms = 20000;
  c.pending_max = 2;
  start(std::move(c));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // start-up rounds settle
  const auto& admin = test_keys().admin;
  std::vector<Bytes> batch;
  for (uint64_t seq = 1; seq <= 6; ++seq) batch.push_back(sign(admin, seq));
  std::vector<ByteView> views(batch.begin(), batch.end());

  std::vector<Result<Submission>> results;
  std::thread submitter([&] { results = node_->submit_batch(views); });
  // Statements waiting for their block count as pending.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (node_->pending() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(node_->pending(), 2u);
  submitter.join();

  ASSERT_EQ(results.size(), 6u);
  ASSERT_TRUE(results[0].ok()) << results[0].status().to_string();
  ASSERT_TRUE(results[1].ok()) << results[1].status().to_string();
  for (size_t i = 2; i < results.size(); ++i) {
    EXPECT_EQ(results[i].status().code(), ErrorCode::kUnavailable)
        << i << ": " << results[i].status().to_string();
  }
  EXPECT_NE(results[2].status().message().find("capacity"), std::string::npos);
  EXPECT_EQ(refused(node_->metrics(), ErrorCode::kUnavailable), 4u);
  EXPECT_EQ(node_->ledger().head().log_size, 2u);
  EXPECT_EQ(node_->pending(), 0u);
  // Once the queue drains the refused statements go through on retry.
  auto retry = node_->submit(batch[2]);
  ASSERT_TRUE(retry.ok()) << retry.status().to_string();
  EXPECT_EQ(retry->registered.index, 2u);
}

TEST_F(NodeTest, BlockEntriesMaxSplitsABatchIntoSeveralBlocks) {
  NodeConfig c = config(50);
  c.block_entries_max = 3;
  start(std::move(c));
  std::vector<Bytes> batch;
  for (uint64_t seq = 1; seq <= 7; ++seq) batch.push_back(sign(test_keys().admin, seq));
  std::vector<ByteView> views(batch.begin(), batch.end());
  auto results = node_->submit_batch(views);
  for (size_t i = 0; i < results.size(); ++i) {
    ASSERT_TRUE(results[i].ok());
    EXPECT_EQ(results[i]->registered.index, i);
  }
  const auto& l = node_->ledger();
  EXPECT_GE(l.head().height, 3u);
  for (uint64_t h = 1; h <= l.head().height; ++h) EXPECT_LE(l.block(h)->header.entry_count, 3u);
}

TEST_F(NodeTest, RegistrationTimeoutIsUnavailableButTheStatementStillLands) {
  NodeConfig c = config(600);
  c.idle_proposal_ms = 10000;
  c.round_timeout_ms = 20000;
  c.round_timeout_max_ms = 20000;
  c.registration_timeout_ms = 20;
  start(std::move(c));
  // Let the start-up rounds settle: a leader proposes whatever its mempool
  // holds whenever it enters a round, and at start it enters a few at once.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  Bytes st = sign(test_keys().admin, 1);
  auto r = node_->submit(st);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(r.status().message().find("look it up by id"), std::string::npos);
  // The client's advice: look it up by id, then resubmit if absent.
  const Hash256 id = crypto::sha256(st);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!node_->ledger().entry(id).ok() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(node_->ledger().entry(id).ok());
  // A resubmission is answered from the log at once.
  start(config());
  auto retry = node_->submit(st);
  ASSERT_TRUE(retry.ok()) << retry.status().to_string();
  EXPECT_TRUE(retry->already_registered);
}

TEST_F(NodeTest, StoppingWithAStatementPendingNeitherHangsNorAcknowledgesIt) {
  NodeConfig c = config(2000);
  c.idle_proposal_ms = 10000;
  c.round_timeout_ms = 20000;
  c.round_timeout_max_ms = 20000;
  c.registration_timeout_ms = 1;
  start(std::move(c));
  Bytes st = sign(test_keys().admin, 1);
  // The submitter gives up waiting (a leader may still have proposed it in
  // that millisecond, so the outcome of this call is not the point).
  (void)node_->submit(st);
  const auto stop_start = std::chrono::steady_clock::now();
  node_.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - stop_start, std::chrono::milliseconds(1500))
      << "the destructor waited for the block interval";
  // Never acknowledged, so a stop may drop it; the client's advice ("look it
  // up by id before resubmitting") gets it registered exactly once.
  start(config());
  const Hash256 id = crypto::sha256(st);
  if (!node_->ledger().entry(id).ok()) {
    Submission s = must_submit(st);
    EXPECT_FALSE(s.already_registered);
  }
  Submission again = must_submit(st);
  EXPECT_TRUE(again.already_registered);
  EXPECT_EQ(node_->ledger().head().log_size, 1u);
}

TEST_F(NodeTest, RestartKeepsTheLogAndRecognisesResubmissions) {
  start(config());
  Bytes st = sign(test_keys().admin, 1);
  Submission first = must_submit(st);
  must_submit(sign(test_keys().admin, 2));
  start(config());  // closes the old node first
  EXPECT_EQ(node_->ledger().head().log_size, 2u);
  Submission again = must_submit(st);
  EXPECT_TRUE(again.already_registered);
  EXPECT_EQ(again.registered.index, first.registered.index);
  Submission next = must_submit(sign(test_keys().admin, 3));
  EXPECT_EQ(next.registered.index, 2u);
}

TEST_F(NodeTest, MetricsCountersMove) {
  start(config());
  Metrics& m = node_->metrics();
  EXPECT_EQ(m.statements_registered.load(), 0u);
  EXPECT_EQ(m.blocks_written.load(), 0u);
  const auto& admin = test_keys().admin;
  must_submit(sign(admin, 1));
  must_submit(sign(admin, 4));  // a gap
  Bytes bad = sign(admin, 5);
  bad.back() ^= 1;
  (void)node_->submit(bad);
  (void)node_->submit(to_bytes("junk"));
  (void)node_->submit(sign(admin, 2));  // replay, refused by the sequencer
  EXPECT_EQ(m.statements_registered.load(), 2u);
  EXPECT_EQ(m.blocks_written.load(), 2u);
  EXPECT_EQ(m.sequence_gaps.load(), 1u);
  EXPECT_EQ(refused(m, ErrorCode::kBadSignature), 1u);
  EXPECT_EQ(refused(m, ErrorCode::kMalformed), 1u);
  EXPECT_EQ(refused(m, ErrorCode::kReplay), 1u);
  std::string text;
  m.render(text);
  EXPECT_NE(text.find("custos_statements_registered_total 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("custos_blocks_written_total 2\n"), std::string::npos);
  EXPECT_NE(text.find("custos_sequence_gaps_total 1\n"), std::string::npos);
  // Every submission is checked once, the junk included; a one-node
  // consortium has no forwards.
  EXPECT_NE(text.find("custos_admission_checks_total{at=\"submission\"} 5\n"), std::string::npos);
  EXPECT_NE(text.find("custos_admission_checks_total{at=\"forward\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("custos_statements_refused_total{reason=\"bad-signature\"} 1\n"),
            std::string::npos);
  EXPECT_NE(text.find("custos_statements_refused_total{reason=\"replay\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("custos_registration_latency_seconds_count 2\n"), std::string::npos);
  EXPECT_NE(text.find("custos_registration_latency_seconds_bucket{le=\"+Inf\"} 2\n"),
            std::string::npos);
  // Only writes are timed: the block whose one statement was refused wrote nothing.
  EXPECT_NE(text.find("custos_block_write_seconds_count 2\n"), std::string::npos);
}

TEST(HistogramTest, BucketsAreCumulative) {
  Histogram h;
  h.observe(0.0005);
  h.observe(0.003);
  h.observe(0.003);
  h.observe(100);
  std::string text;
  h.render(text, "x", "help");
  EXPECT_NE(text.find("x_bucket{le=\"0.001\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("x_bucket{le=\"0.002\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("x_bucket{le=\"0.005\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("x_bucket{le=\"5\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("x_bucket{le=\"+Inf\"} 4\n"), std::string::npos);
  EXPECT_NE(text.find("x_count 4\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE x histogram\n"), std::string::npos);
}

TEST(UnixTimeTest, IsAfter2025) {
  EXPECT_GT(unix_time_ms(), 1735689600000u);
}

}  // namespace
}  // namespace custos::node
