#include "gateway/metrics.h"

#include <cstdio>

namespace custos::gateway {

namespace {

void line(std::string& out, const std::string& name, const std::string& help, const char* type) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

std::string number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void counter(std::string& out, const std::string& name, const std::string& help, uint64_t v) {
  line(out, name, help, "counter");
  out += name + " " + std::to_string(v) + "\n";
}

void gauge(std::string& out, const std::string& name, const std::string& help, double v) {
  line(out, name, help, "gauge");
  out += name + " " + number(v) + "\n";
}

}  // namespace

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  const double micros = value < 0 ? 0 : value * 1e6;
  sum_micros_.fetch_add(static_cast<uint64_t>(micros), std::memory_order_relaxed);
}

double Histogram::quantile(double q) const {
  const uint64_t total = count();
  if (total == 0) return 0;
  const double want = q * static_cast<double>(total);
  uint64_t seen = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i].load(std::memory_order_relaxed);
    if (static_cast<double>(seen) >= want) {
      return i < bounds_.size() ? bounds_[i] : bounds_.back();
    }
  }
  return bounds_.back();
}

void Histogram::render(std::string& out, const std::string& name, const std::string& help) const {
  line(out, name, help, "histogram");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    const std::string le = i < bounds_.size() ? number(bounds_[i]) : "+Inf";
    out += name + "_bucket{le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  out += name + "_sum " + number(static_cast<double>(sum_micros_.load()) / 1e6) + "\n";
  out += name + "_count " + std::to_string(count()) + "\n";
}

uint64_t Metrics::refused_total() const {
  uint64_t n = 0;
  for (const auto& r : refused) n += r.load(std::memory_order_relaxed);
  return n;
}

void Metrics::render(std::string& out, uint64_t spool_depth, uint64_t spool_bytes,
                     uint64_t key_cache_entries) const {
  counter(out, "custos_gateway_received_total", "Messages received from devices", received);
  counter(out, "custos_gateway_spooled_total", "Messages written to the spool", spooled);
  counter(out, "custos_gateway_duplicates_total",
          "Messages redelivered while an identical one was spooled", duplicates);
  counter(out, "custos_gateway_spool_reads_total",
          "Spooled records read back from disk (from an earlier run, or past the hand-off)",
          spool_reads);
  counter(out, "custos_gateway_registered_total",
          "Statements the node answered registered or already-registered", registered);
  line(out, "custos_gateway_refused_total", "Messages refused, by reason", "counter");
  for (int i = 0; i < kReasonCount; ++i) {
    out += std::string("custos_gateway_refused_total{reason=\"") +
           reason_name(static_cast<Reason>(i)) + "\"} " + std::to_string(refused[i].load()) + "\n";
  }
  counter(out, "custos_gateway_devices_offline_total",
          "Offline wills published by the broker for vanished devices", devices_offline);
  counter(out, "custos_gateway_acks_published_total", "Acknowledgements sent to devices",
          acks_published);
  counter(out, "custos_gateway_errors_published_total", "Refusals sent to devices",
          errors_published);
  counter(out, "custos_gateway_answers_dropped_total",
          "Acks or errors not sent (broker down or outbox full)", answers_dropped);
  counter(out, "custos_gateway_batches_total", "Batches sent to nodes", batches);
  counter(out, "custos_gateway_node_failovers_total", "Requests moved to another node",
          node_failovers);
  counter(out, "custos_gateway_node_errors_total", "Node requests that failed", node_errors);
  counter(out, "custos_gateway_key_fetches_total", "Device keys fetched from a node", key_fetches);
  counter(out, "custos_gateway_broker_connects_total", "Connections made to the broker",
          broker_connects);
  counter(out, "custos_gateway_ingest_pauses_total",
          "Times ingest paused because the spool reached its high-water mark", ingest_pauses);
  counter(out, "custos_gateway_spool_syncs_total", "Spool fsyncs (one per group of messages)",
          spool_syncs);
  counter(out, "custos_gateway_spool_overflows_total",
          "Message groups left unacknowledged because the spool was full (the broker redelivers)",
          spool_overflows);
  gauge(out, "custos_gateway_broker_connected", "1 while connected to the broker",
        broker_connected.load());
  gauge(out, "custos_gateway_ingest_paused", "1 while ingest is paused (backpressure)",
        ingest_paused.load());
  gauge(out, "custos_gateway_spool_depth", "Messages in the spool",
        static_cast<double>(spool_depth));
  gauge(out, "custos_gateway_spool_bytes", "Bytes of spooled records",
        static_cast<double>(spool_bytes));
  gauge(out, "custos_gateway_key_cache_entries", "Device keys cached",
        static_cast<double>(key_cache_entries));
  batch_statements.render(out, "custos_gateway_batch_statements", "Statements per batch");
  publish_to_registered_s.render(out, "custos_gateway_publish_to_registered_seconds",
                                 "From the device's publish to registered on the ledger");
  spool_sync_s.render(out, "custos_gateway_spool_sync_seconds", "Duration of one spool fsync");
}

}  // namespace custos::gateway
