// `custos gateway`: devices' signed statements from an MQTT broker to the
// consortium's nodes (docs/gateway.md).
//
//   broker --(loop thread: precheck, spool append; fsync per group; PUBACK)-->
//   spool (RocksDB) --(reader thread: synced records in order)--> lanes (N
//   threads; a device always on the same lane, so its statements keep their
//   order: key from a node (cached), revocation, topic, signature, sequence;
//   then POST /v1/entries/batch with failover)
//   --> answers on the device's ack / error topic, record removed.
//
// Messages leave the spool only when a node answered for them, so a gateway
// crash, a broker restart or a node outage loses nothing the broker
// acknowledged; duplicates that follow are answered "already-registered".
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "gateway/broker_link.h"
#include "gateway/limits.h"
#include "gateway/metrics.h"

namespace custos::gateway {

struct GatewayOptions {
  BrokerOptions broker;
  std::vector<std::string> nodes;  // node base URLs, tried in order with failover
  std::string spool_dir;
  uint64_t spool_messages_max = limits::kSpoolMessagesMaxDefault;
  uint64_t spool_bytes_max = limits::kSpoolBytesMaxDefault;
  size_t batch_statements_max = limits::kBatchStatementsMaxDefault;
  size_t batch_bytes_max = limits::kBatchBytesMaxDefault;
  int batch_wait_ms = limits::kBatchWaitMsDefault;
  int lanes = limits::kLanesDefault;
  size_t key_cache_entries = limits::kKeyCacheEntriesDefault;
  int key_cache_ttl_ms = limits::kKeyCacheTtlMsDefault;
  std::string metrics_listen;  // HOST:PORT for /metrics, /status; empty = none
};

// Checks the options against their limits (kInvalidArgument naming the option).
Status validate(const GatewayOptions& options);

class Gateway {
 public:
  static Result<std::unique_ptr<Gateway>> create(GatewayOptions options);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Runs until stop() (from a signal handler thread or another thread).
  // Returns an error when the spool fails (then no PUBACK was sent for what
  // it could not keep).
  Status run();
  void stop();

  const Metrics& metrics() const;
  // One line of JSON: counters, spool depth, broker state (docs/gateway.md).
  std::string status_json() const;
  std::string metrics_text() const;
  // The port the metrics server listens on (0 when none), once run() started.
  int metrics_port() const;

 private:
  struct Impl;
  explicit Gateway(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace custos::gateway
