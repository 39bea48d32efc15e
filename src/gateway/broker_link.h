// The gateway's MQTT 5 connection to the broker (libmosquitto over TLS with
// a client certificate), driven by its own loop so that the spool is synced
// before any PUBACK leaves:
//
//   libmosquitto 2.0 queues the PUBACK of a QoS 1 message *before* it calls
//   on_message (lib/handle_publish.c). Without mosquitto_threaded_set(true)
//   and outside a callback, the queue is written to the socket at once, so a
//   crash inside on_message would lose a message the broker counts as
//   delivered. With threaded mode set, packet__queue() only queues; writes
//   happen in mosquitto_loop_write(), which this loop calls only after the
//   hook before_write() (the spool's fsync) returned ok. So a group of
//   messages is read, spooled, synced once, and only then PUBACKed (group
//   commit). tests/integration/gateway_test.cc kills the gateway inside
//   on_message and checks the broker delivers the message again.
//
// The session is persistent (clean start off, session expiry set), so while
// the gateway is away or paused the broker queues messages for it, and
// resends the ones it did not PUBACK.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <mutex>
#include <string>

#include "core/bytes.h"
#include "core/status.h"
#include "gateway/metrics.h"

struct mosquitto;
struct mosquitto_message;
typedef struct mqtt5__property mosquitto_property;

namespace custos::gateway {

struct BrokerOptions {
  std::string host = "127.0.0.1";
  int port = 8883;
  std::string ca_file;
  std::string cert_file;  // the gateway's client certificate (CN = its user name)
  std::string key_file;
  std::string client_id = "custos-gateway";
  int keepalive_s = 30;
  uint32_t session_expiry_s = 7 * 24 * 3600;  // how long the broker queues for us
};

struct InMessage {
  std::string topic;
  ByteView payload;
  std::string response_topic;
  Bytes correlation;
  bool want_receipt = false;  // user property receipt=1
  uint64_t sent_ms = 0;       // user property sent_ms (device clock)
};

struct OutMessage {
  std::string topic;
  std::string payload;  // JSON
  Bytes correlation;
};

class BrokerLink {
 public:
  struct Hooks {
    // Loop thread, once per message read. Must take what it keeps (the
    // payload view dies after it returns).
    std::function<void(const InMessage&)> on_message;
    // Loop thread, after a group of reads and before any write: make what
    // on_message took durable. kUnavailable: something was not kept, so the
    // connection is dropped with the group's PUBACKs unsent (the broker
    // redelivers). Any other error stops the loop with no PUBACK sent.
    std::function<Status()> before_write;
    // Polled by the loop: while true, ingest is paused (disconnected, the
    // broker queues for the session).
    std::function<bool()> should_pause;
  };

  BrokerLink(BrokerOptions options, Hooks hooks, Metrics& metrics);
  ~BrokerLink();
  BrokerLink(const BrokerLink&) = delete;
  BrokerLink& operator=(const BrokerLink&) = delete;

  // Connects, reconnects with backoff, and loops until stop(). Returns an
  // error only when before_write() failed or libmosquitto cannot be set up.
  Status run();
  void stop();
  // Thread-safe: queues an answer to a device (QoS 1). False when the
  // outbox is full (counted as dropped).
  bool send(OutMessage message);

 private:
  static void on_connect(struct mosquitto*, void* self, int rc, int flags,
                         const mosquitto_property* props);
  static void on_disconnect(struct mosquitto*, void* self, int rc, const mosquitto_property* props);
  static void on_message(struct mosquitto*, void* self, const struct mosquitto_message* msg,
                         const mosquitto_property* props);
  Status setup();
  bool connect_once();
  Status pump(int timeout_ms);
  void read_group();
  void drop_connection();
  void flush_outbox();
  void wake();

  BrokerOptions options_;
  Hooks hooks_;
  Metrics& metrics_;
  struct mosquitto* mosq_ = nullptr;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  bool connected_ = false;  // CONNACK received on the current socket
  size_t group_messages_ = 0;
  bool unsynced_ = false;
  std::mutex outbox_mu_;
  std::deque<OutMessage> outbox_;
};

}  // namespace custos::gateway
