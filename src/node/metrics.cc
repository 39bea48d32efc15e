#include "node/metrics.h"

#include <charconv>
#include <system_error>

namespace custos::node {

namespace {
void line(std::string& out, const std::string& text) {
  out += text;
  out += '\n';
}
// Shortest text that reads back as the same double: "%.17g" would print the
// bucket bound 0.005 as le="0.0050000000000000001", which no one selects.
std::string num(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : std::string("NaN");
}
void counter(std::string& out, const std::string& name, const std::string& help, uint64_t v) {
  line(out, "# HELP " + name + " " + help);
  line(out, "# TYPE " + name + " counter");
  line(out, name + " " + std::to_string(v));
}
}  // namespace

void Histogram::observe(double seconds) {
  size_t i = 0;
  while (i < kBoundsS.size() && seconds > kBoundsS[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(static_cast<uint64_t>(seconds * 1e6), std::memory_order_relaxed);
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  line(out, "# HELP " + name + " " + help);
  line(out, "# TYPE " + name + " histogram");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBoundsS.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    line(out, name + "_bucket{le=\"" + num(kBoundsS[i]) + "\"} " + std::to_string(cumulative));
  }
  cumulative += buckets_[kBoundsS.size()].load(std::memory_order_relaxed);
  line(out, name + "_bucket{le=\"+Inf\"} " + std::to_string(cumulative));
  line(out, name + "_sum " + num(sum_us_.load(std::memory_order_relaxed) / 1e6));
  line(out, name + "_count " + std::to_string(count_.load(std::memory_order_relaxed)));
}

void Metrics::render(std::string& out) const {
  counter(out, "custos_statements_registered_total", "Statements durably registered.",
          statements_registered.load());
  line(out, "# HELP custos_statements_refused_total Statements refused, by reason.");
  line(out, "# TYPE custos_statements_refused_total counter");
  for (int i = 1; i < kErrorCodeCount; ++i) {
    line(out, std::string("custos_statements_refused_total{reason=\"") +
                  error_code_name(static_cast<ErrorCode>(i)) + "\"} " +
                  std::to_string(statements_refused[i].load()));
  }
  line(out,
       "# HELP custos_admission_checks_total Statements signature-checked, by where the check "
       "happened (submission, forward from a peer, execution of a block).");
  line(out, "# TYPE custos_admission_checks_total counter");
  static constexpr std::array<const char*, 3> kCheckedAt = {"submission", "forward", "execution"};
  for (size_t i = 0; i < kCheckedAt.size(); ++i) {
    line(out, std::string("custos_admission_checks_total{at=\"") + kCheckedAt[i] + "\"} " +
                  std::to_string(admission_checks[i].load()));
  }
  counter(out, "custos_blocks_written_total", "Blocks written to storage.", blocks_written.load());
  counter(out, "custos_sequence_gaps_total",
          "Statements accepted with a gap in their key's sequence.", sequence_gaps.load());
  counter(out, "custos_http_requests_total", "HTTP requests received.", http_requests.load());
  line(out, "# HELP custos_http_responses_total HTTP responses, by status class.");
  line(out, "# TYPE custos_http_responses_total counter");
  for (int c = 1; c <= 5; ++c) {
    line(out, "custos_http_responses_total{class=\"" + std::to_string(c) + "xx\"} " +
                  std::to_string(http_responses_by_class[c].load()));
  }
  registration_latency.render(out, "custos_registration_latency_seconds",
                              "From admission to durable registration.");
  block_write_latency.render(out, "custos_block_write_seconds",
                             "Time to write and sync one block.");
}

void render_gauge(std::string& out, const std::string& name, const std::string& help,
                  double value) {
  line(out, "# HELP " + name + " " + help);
  line(out, "# TYPE " + name + " gauge");
  line(out, name + " " + num(value));
}

}  // namespace custos::node
