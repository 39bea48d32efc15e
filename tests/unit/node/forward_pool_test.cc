// Forward pool: each forwarded statement is checked once per node, even when
// a block commits it while the pool is still at work; results enter the
// mempool in arrival order; the queue is bounded.
#include "node/forward_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>

#include "crypto/hash.h"
#include "unit/ledger/ledger_fixture.h"

namespace custos::node {
namespace {

using namespace std::chrono_literals;

ledger::Admitted admitted(ByteView bytes) {
  auto st = cose::parse_statement(bytes);
  EXPECT_TRUE(st.ok()) << st.status().to_string();
  return ledger::Admitted{std::move(st).value(), crypto::sha256(bytes)};
}

// A check that counts its calls and holds the check of one chosen statement
// until the test opens the gate.
struct GatedCheck {
  Bytes held;
  std::promise<void> started;
  std::promise<void> gate;
  std::shared_future<void> gate_open = gate.get_future().share();
  std::atomic<int> calls{0};
  std::atomic<int> returned{0};
  std::atomic<bool> held_seen{false};

  ForwardPool::Check fn() {
    return [this](ByteView s) -> Result<ledger::Admitted> {
      ++calls;
      // A second check of the held statement is counted, not held again.
      if (Bytes(s.begin(), s.end()) == held && !held_seen.exchange(true)) {
        started.set_value();
        gate_open.wait();
      }
      auto out = admitted(s);
      ++returned;
      return out;
    };
  }
};

struct Fixture {
  Mempool mempool{1000, 1 << 20};
  std::atomic<int> deliveries{0};
  GatedCheck check;
  ForwardPool pool{mempool, check.fn(), [this] { ++deliveries; }};
  // Two consecutive statements of one key.
  const Bytes a = testutil::sign(testutil::test_keys().admin, 1);
  const Bytes b = testutil::sign(testutil::test_keys().admin, 2);

  // Starts `threads` checking threads on a then b, and returns once a's
  // check is under way and held.
  void start_with_a_held(unsigned threads) {
    check.held = a;
    pool.start(threads);
    pool.push({a, b});
    check.started.get_future().wait();
  }
};

void wait_until(const std::function<bool()>& done) {
  bool reached = false;
  for (int i = 0; i < 500 && !(reached = done()); ++i) std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(reached);
}

TEST(ForwardPoolTest, AClaimOfARunningCheckWaitsForItInsteadOfCheckingAgain) {
  Fixture f;
  const Bytes& a = f.a;
  f.check.held = a;
  f.pool.start(1);
  f.pool.push({a});
  f.check.started.get_future().wait();
  auto claimed = std::async(std::launch::async, [&] { return f.pool.claim(crypto::sha256(a)); });
  EXPECT_EQ(claimed.wait_for(100ms), std::future_status::timeout) << "returned while checking";
  f.check.gate.set_value();
  std::optional<ledger::Admitted> got = claimed.get();
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->id, crypto::sha256(a));
  f.pool.stop();
  EXPECT_EQ(f.check.calls.load(), 1);
  // Handed to execution, so not also left pending in the mempool.
  EXPECT_FALSE(f.mempool.get(crypto::sha256(a)).has_value());
}

TEST(ForwardPoolTest, AClaimOfAQueuedStatementTakesItOutOfTheQueue) {
  Fixture f;
  const Bytes& a = f.a;
  const Bytes& b = f.b;
  f.start_with_a_held(1);  // the only thread is busy with a; b is queued
  EXPECT_EQ(f.pool.queued(), 1u);
  EXPECT_FALSE(f.pool.claim(crypto::sha256(b)).has_value()) << "the caller checks b itself";
  f.check.gate.set_value();
  wait_until([&] { return f.mempool.get(crypto::sha256(a)).has_value(); });
  wait_until([&] { return f.pool.queued() == 0; });  // b taken off the queue...
  f.pool.stop();                                     // ...and finished before this returns
  EXPECT_EQ(f.check.calls.load(), 1) << "b was checked by the pool too";
  EXPECT_FALSE(f.mempool.get(crypto::sha256(b)).has_value());
}

TEST(ForwardPoolTest, ResultsEnterTheMempoolInArrivalOrder) {
  Fixture f;
  f.start_with_a_held(2);
  wait_until([&] { return f.check.returned.load() == 1; });  // b checked while a is held
  EXPECT_EQ(f.mempool.size(), 0u) << "b entered before a";
  EXPECT_EQ(f.deliveries.load(), 0);
  f.check.gate.set_value();
  wait_until([&] { return f.mempool.size() == 2; });
  f.pool.stop();
  EXPECT_GE(f.deliveries.load(), 1);
}

TEST(ForwardPoolTest, AClaimOfAFinishedCheckHandsItOverOnce) {
  Fixture f;
  const Bytes& a = f.a;
  const Bytes& b = f.b;
  f.start_with_a_held(2);
  wait_until([&] { return f.check.calls.load() == 2; });
  // b is checked and waits for a's turn: execution takes it from there.
  std::optional<ledger::Admitted> got;
  wait_until([&] {
    got = f.pool.claim(crypto::sha256(b));
    return got.has_value();
  });
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->id, crypto::sha256(b));
  f.check.gate.set_value();
  wait_until([&] { return f.mempool.get(crypto::sha256(a)).has_value(); });
  f.pool.stop();
  EXPECT_FALSE(f.mempool.get(crypto::sha256(b)).has_value()) << "b delivered after its claim";
  EXPECT_FALSE(f.pool.claim(crypto::sha256(b)).has_value());
  EXPECT_EQ(f.check.calls.load(), 2);
}

TEST(ForwardPoolTest, TheSameBytesForwardedTwiceAreCheckedOnce) {
  Fixture f;
  const Bytes& a = f.a;
  const Bytes& b = f.b;
  f.start_with_a_held(1);  // a is being checked, b queued
  f.pool.push({a});        // a second node forwards the same bytes
  EXPECT_EQ(f.pool.queued(), 1u);
  std::optional<ledger::Admitted> got;
  auto claimed = std::async(std::launch::async, [&] { return f.pool.claim(crypto::sha256(a)); });
  EXPECT_EQ(claimed.wait_for(100ms), std::future_status::timeout)
      << "the claim took the duplicate for a queued copy";
  f.check.gate.set_value();
  got = claimed.get();
  ASSERT_TRUE(got.has_value());
  wait_until([&] { return f.mempool.get(crypto::sha256(b)).has_value(); });
  f.pool.stop();
  EXPECT_EQ(f.check.calls.load(), 2);
}

TEST(ForwardPoolTest, UnknownRefusedAndDeliveredStatementsAreNotClaimed) {
  Mempool mempool(1000, 1 << 20);
  const Bytes good = testutil::sign(testutil::test_keys().admin, 1);
  const Bytes bad = {0xa0};  // not a statement: the check refuses it
  ForwardPool pool(
      mempool,
      [](ByteView s) -> Result<ledger::Admitted> {
        if (s.size() < 2) return error(ErrorCode::kInvalidArgument, "not a statement");
        return admitted(s);
      },
      [] {});
  EXPECT_FALSE(pool.claim(crypto::sha256(good)).has_value());
  pool.start(1);
  pool.push({bad, good});
  wait_until([&] { return mempool.get(crypto::sha256(good)).has_value(); });
  EXPECT_FALSE(pool.claim(crypto::sha256(bad)).has_value()) << "a refusal is decided at execution";
  EXPECT_FALSE(pool.claim(crypto::sha256(good)).has_value()) << "the mempool has it";
  EXPECT_EQ(mempool.size(), 1u);
}

TEST(ForwardPoolTest, TheQueueIsBounded) {
  Mempool mempool(1000, 1 << 20);
  std::atomic<int> calls{0};
  ForwardPool pool(
      mempool,
      [&](ByteView) -> Result<ledger::Admitted> {
        ++calls;
        return error(ErrorCode::kInvalidArgument, "refused");
      },
      [] {});
  std::vector<Bytes> many(kForwardQueueStatementsMax + 10);
  for (size_t i = 0; i < many.size(); ++i)
    many[i] = {uint8_t(i), uint8_t(i >> 8), uint8_t(i >> 16)};
  EXPECT_EQ(pool.push(std::move(many)), 10u);  // not started: nothing leaves the queue
  EXPECT_EQ(pool.queued(), kForwardQueueStatementsMax);
  EXPECT_EQ(pool.push({{1, 2, 3, 4}}), 1u);
  EXPECT_EQ(calls.load(), 0);
}

}  // namespace
}  // namespace custos::node
