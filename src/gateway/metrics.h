// The gateway's counters, gauges and histograms, served at GET /metrics in
// the Prometheus text format and summarised in the --json status line.
// Lock-free increments; every label set is fixed (Reason), so memory is
// bounded whatever devices send.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "gateway/check.h"

namespace custos::gateway {

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds)
      : bounds_(std::move(bounds)), buckets_(bounds_.size() + 1) {}
  void observe(double value);
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  // A quantile estimated from the buckets (upper bound of the bucket).
  double quantile(double q) const;
  void render(std::string& out, const std::string& name, const std::string& help) const;

 private:
  std::vector<double> bounds_;
  std::vector<std::atomic<uint64_t>> buckets_;
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micros_{0};
};

struct Metrics {
  std::atomic<uint64_t> received{0};     // messages from devices (any kind)
  std::atomic<uint64_t> spooled{0};      // passed the precheck, written to the spool
  std::atomic<uint64_t> duplicates{0};   // redelivered while still spooled
  std::atomic<uint64_t> spool_reads{0};  // records read back (not handed over in memory)
  std::atomic<uint64_t> registered{0};   // the node answered registered / already-registered
  std::array<std::atomic<uint64_t>, kReasonCount> refused{};
  std::atomic<uint64_t> devices_offline{0};  // broker-published wills
  std::atomic<uint64_t> acks_published{0};
  std::atomic<uint64_t> errors_published{0};
  std::atomic<uint64_t> answers_dropped{0};  // outbox full or broker down
  std::atomic<uint64_t> batches{0};
  std::atomic<uint64_t> node_failovers{0};  // a request moved to another node
  std::atomic<uint64_t> node_errors{0};     // requests that failed (transport or 5xx)
  std::atomic<uint64_t> key_fetches{0};
  std::atomic<uint64_t> broker_connects{0};
  std::atomic<uint64_t> ingest_pauses{0};  // spool high-water mark reached
  std::atomic<uint64_t> spool_syncs{0};
  std::atomic<uint64_t> spool_overflows{0};  // groups dropped unacknowledged (spool full)
  std::atomic<int> broker_connected{0};
  std::atomic<int> ingest_paused{0};
  Histogram batch_statements{{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}};
  // From the device's publish (user property sent_ms, else the gateway's
  // receipt of the message) to the node's "registered".
  Histogram publish_to_registered_s{
      {0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 300}};
  Histogram spool_sync_s{{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5}};

  void refuse(Reason r) { refused[static_cast<int>(r)].fetch_add(1, std::memory_order_relaxed); }
  uint64_t refused_total() const;
  // Prometheus text; the spool and key cache gauges come from the caller.
  void render(std::string& out, uint64_t spool_depth, uint64_t spool_bytes,
              uint64_t key_cache_entries) const;
};

}  // namespace custos::gateway
