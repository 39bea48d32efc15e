// Counters and histograms exported at GET /metrics in the Prometheus text
// format (version 0.0.4). Lock-free increments on the hot path; label sets
// are fixed at compile time (error codes, routes), so memory is bounded.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace custos::node {

inline constexpr int kErrorCodeCount = static_cast<int>(ErrorCode::kInternal) + 1;

class Histogram {
 public:
  // Upper bounds in seconds.
  static constexpr std::array<double, 12> kBoundsS = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
                                                      0.1,   0.2,   0.5,   1.0,  2.0,  5.0};
  void observe(double seconds);
  void render(std::string& out, const std::string& name, const std::string& help) const;

 private:
  std::array<std::atomic<uint64_t>, kBoundsS.size() + 1> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_us_{0};
};

struct Metrics {
  std::atomic<uint64_t> statements_registered{0};
  std::array<std::atomic<uint64_t>, kErrorCodeCount> statements_refused{};
  std::atomic<uint64_t> blocks_written{0};
  std::atomic<uint64_t> sequence_gaps{0};
  // Statements parsed and signature-checked, by where the check happened.
  // Each statement should be checked once per node: a sum well above the
  // statements registered means work done twice.
  enum class CheckedAt { kSubmission = 0, kForward, kExecution };
  std::array<std::atomic<uint64_t>, 3> admission_checks{};
  void checked(CheckedAt where) {
    admission_checks[static_cast<int>(where)].fetch_add(1, std::memory_order_relaxed);
  }
  std::atomic<uint64_t> http_requests{0};
  std::array<std::atomic<uint64_t>, 6> http_responses_by_class{};  // index = status / 100
  Histogram registration_latency;                                  // admission to durable
  Histogram block_write_latency;                                   // one synced RocksDB batch

  void refused(ErrorCode code) {
    statements_refused[static_cast<int>(code)].fetch_add(1, std::memory_order_relaxed);
  }
  // Appends the counters above; gauges are added by the caller.
  void render(std::string& out) const;
};

// Appends one gauge in text format.
void render_gauge(std::string& out, const std::string& name, const std::string& help, double value);

}  // namespace custos::node
