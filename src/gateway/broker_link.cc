#include "gateway/broker_link.h"

#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "gateway/limits.h"

namespace custos::gateway {

namespace {

constexpr int kPollMs = 100;
constexpr int kReconnectMsMin = 100;
constexpr int kReconnectMsMax = 5000;
constexpr size_t kOutboxPublishesPerTurn = 256;
// What the gateway subscribes to (QoS 1). Retained messages are not sent on
// subscribe: a retained status was handled when it was published.
constexpr const char* kFilters[] = {"iomt/v1/+/+/+/+/event", "iomt/v1/+/+/+/+/alarm",
                                    "iomt/v1/+/+/+/+/status"};

// Test hook (tests/integration/gateway_test.cc): CUSTOS_GATEWAY_FAULT=
// "kill-in-on-message=N" kills the process inside the Nth on_message, before
// anything is spooled, half a second after it was called.
long fault_kill_at() {
  const char* f = std::getenv("CUSTOS_GATEWAY_FAULT");
  constexpr std::string_view kKey = "kill-in-on-message=";
  if (!f || std::string_view(f).substr(0, kKey.size()) != kKey) return 0;
  return std::strtol(f + kKey.size(), nullptr, 10);
}

std::string read_string_property(const mosquitto_property* props, int id) {
  char* value = nullptr;
  if (!mosquitto_property_read_string(props, id, &value, false) || !value) return {};
  std::string s(value);
  std::free(value);
  return s;
}

void read_user_properties(const mosquitto_property* props, InMessage& m) {
  const mosquitto_property* p = props;
  bool skip = false;
  for (size_t n = 0; n < limits::kUserPropertiesMax; ++n) {
    char* name = nullptr;
    char* value = nullptr;
    p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, skip);
    if (!p) break;
    skip = true;
    const std::string_view k = name ? name : "";
    const std::string_view v = value ? value : "";
    if (k == "receipt") m.want_receipt = v == "1";
    if (k == "sent_ms") m.sent_ms = std::strtoull(std::string(v).c_str(), nullptr, 10);
    std::free(name);
    std::free(value);
  }
}

}  // namespace

BrokerLink::BrokerLink(BrokerOptions options, Hooks hooks, Metrics& metrics)
    : options_(std::move(options)), hooks_(std::move(hooks)), metrics_(metrics) {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

BrokerLink::~BrokerLink() {
  if (mosq_) mosquitto_destroy(mosq_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void BrokerLink::wake() {
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
}

void BrokerLink::stop() {
  stopping_ = true;
  wake();
}

bool BrokerLink::send(OutMessage message) {
  {
    std::lock_guard<std::mutex> lock(outbox_mu_);
    if (outbox_.size() >= limits::kOutboxMessagesMax) {
      metrics_.answers_dropped++;
      return false;
    }
    outbox_.push_back(std::move(message));
  }
  wake();
  return true;
}

void BrokerLink::on_connect(struct mosquitto* mosq, void* self_ptr, int rc, int,
                            const mosquitto_property*) {
  auto* self = static_cast<BrokerLink*>(self_ptr);
  if (rc != 0) {
    spdlog::warn("broker refused the connection: {}", mosquitto_reason_string(rc));
    return;
  }
  self->connected_ = true;
  self->metrics_.broker_connects++;
  self->metrics_.broker_connected = 1;
  const int options = MQTT_SUB_OPT_SEND_RETAIN_NEVER;
  int sub = mosquitto_subscribe_multiple(mosq, nullptr, 3, const_cast<char* const*>(kFilters), 1,
                                         options, nullptr);
  if (sub != MOSQ_ERR_SUCCESS) spdlog::warn("subscribe failed: {}", mosquitto_strerror(sub));
  spdlog::info("connected to the broker {}:{} as {}", self->options_.host, self->options_.port,
               self->options_.client_id);
}

void BrokerLink::on_disconnect(struct mosquitto*, void* self_ptr, int rc,
                               const mosquitto_property*) {
  auto* self = static_cast<BrokerLink*>(self_ptr);
  if (self->connected_) spdlog::info("disconnected from the broker ({})", mosquitto_strerror(rc));
  self->connected_ = false;
  self->metrics_.broker_connected = 0;
}

void BrokerLink::on_message(struct mosquitto*, void* self_ptr, const struct mosquitto_message* msg,
                            const mosquitto_property* props) {
  auto* self = static_cast<BrokerLink*>(self_ptr);
  static const long kill_at = fault_kill_at();
  static long seen = 0;
  if (kill_at > 0 && ++seen == kill_at) {
    spdlog::warn("fault injection: killed inside on_message {}", seen);
    // Time for a PUBACK written too early to reach the broker: the kill
    // then tests the order, not a lost TCP segment.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    ::kill(::getpid(), SIGKILL);
  }
  InMessage m;
  m.topic = msg->topic ? msg->topic : "";
  m.payload = ByteView(static_cast<const uint8_t*>(msg->payload),
                       msg->payloadlen > 0 ? static_cast<size_t>(msg->payloadlen) : 0);
  m.response_topic = read_string_property(props, MQTT_PROP_RESPONSE_TOPIC);
  void* corr = nullptr;
  uint16_t corr_len = 0;
  if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &corr_len, false) &&
      corr) {
    const size_t n = std::min<size_t>(corr_len, limits::kCorrelationBytesMax);
    m.correlation.assign(static_cast<uint8_t*>(corr), static_cast<uint8_t*>(corr) + n);
    std::free(corr);
  }
  read_user_properties(props, m);
  self->group_messages_++;
  self->unsynced_ = true;
  self->hooks_.on_message(m);
}

Status BrokerLink::setup() {
  mosq_ = mosquitto_new(options_.client_id.c_str(), /*clean_session=*/false, this);
  if (!mosq_) return error(ErrorCode::kInternal, "mosquitto_new failed");
  mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
  mosquitto_int_option(mosq_, MOSQ_OPT_RECEIVE_MAXIMUM, limits::kReceiveMaximum);
  // The one line the durability argument rests on (see the header).
  mosquitto_threaded_set(mosq_, true);
  int rc = mosquitto_tls_set(mosq_, options_.ca_file.c_str(), nullptr, options_.cert_file.c_str(),
                             options_.key_file.c_str(), nullptr);
  if (rc != MOSQ_ERR_SUCCESS) {
    return error(ErrorCode::kInvalidArgument,
                 std::string("TLS files: ") + mosquitto_strerror(rc) + " (ca " + options_.ca_file +
                     ", cert " + options_.cert_file + ", key " + options_.key_file + ")");
  }
  mosquitto_tls_opts_set(mosq_, 1, "tlsv1.2", nullptr);
  mosquitto_connect_v5_callback_set(mosq_, &BrokerLink::on_connect);
  mosquitto_disconnect_v5_callback_set(mosq_, &BrokerLink::on_disconnect);
  mosquitto_message_v5_callback_set(mosq_, &BrokerLink::on_message);
  return Status();
}

bool BrokerLink::connect_once() {
  mosquitto_property* props = nullptr;
  mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
                               options_.session_expiry_s);
  const int rc = mosquitto_connect_bind_v5(mosq_, options_.host.c_str(), options_.port,
                                           options_.keepalive_s, nullptr, props);
  mosquitto_property_free_all(&props);
  if (rc != MOSQ_ERR_SUCCESS) {
    spdlog::debug("broker connect: {}", mosquitto_strerror(rc));
    return false;
  }
  return true;
}

void BrokerLink::read_group() {
  group_messages_ = 0;
  for (;;) {
    const int rc = mosquitto_loop_read(mosq_, 1);
    if (rc != MOSQ_ERR_SUCCESS) return;  // the library closed the socket
    if (group_messages_ >= limits::kIngestGroupMessagesMax) return;
    // Past the high-water mark: read no more, so the spool's headroom holds
    // what was already read.
    if (hooks_.should_pause()) return;
    pollfd p{mosquitto_socket(mosq_), POLLIN, 0};
    if (p.fd < 0 || ::poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN)) return;
  }
}

// Closes the socket under libmosquitto without writing what it queued (the
// PUBACKs of messages not kept). The next read sees the connection gone and
// the library cleans up; a reconnect starts with an empty queue.
void BrokerLink::drop_connection() {
  const int sock = mosquitto_socket(mosq_);
  if (sock >= 0) ::shutdown(sock, SHUT_RDWR);
  connected_ = false;
  metrics_.broker_connected = 0;
  (void)mosquitto_loop_read(mosq_, 1);
}

void BrokerLink::flush_outbox() {
  if (!connected_) return;
  for (size_t n = 0; n < kOutboxPublishesPerTurn; ++n) {
    OutMessage m;
    {
      std::lock_guard<std::mutex> lock(outbox_mu_);
      if (outbox_.empty()) return;
      m = std::move(outbox_.front());
      outbox_.pop_front();
    }
    mosquitto_property* props = nullptr;
    mosquitto_property_add_string(&props, MQTT_PROP_CONTENT_TYPE, "application/json");
    if (!m.correlation.empty()) {
      mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, m.correlation.data(),
                                    static_cast<uint16_t>(m.correlation.size()));
    }
    // QoS 0: devices' sessions are clean, so QoS 1 would not keep an answer
    // for a device that is away; the SDK asks again for an unanswered
    // statement instead (docs/gateway.md, "Topics"). QoS 1 cost two PUBACKs.
    const int rc =
        mosquitto_publish_v5(mosq_, nullptr, m.topic.c_str(), static_cast<int>(m.payload.size()),
                             m.payload.data(), /*qos=*/0, false, props);
    mosquitto_property_free_all(&props);
    if (rc != MOSQ_ERR_SUCCESS) {
      metrics_.answers_dropped++;
      spdlog::debug("answer to {} not sent: {}", m.topic, mosquitto_strerror(rc));
    }
  }
}

Status BrokerLink::pump(int timeout_ms) {
  const int sock = mosquitto_socket(mosq_);
  pollfd fds[2] = {{sock, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  if (mosquitto_want_write(mosq_)) fds[0].events |= POLLOUT;
  ::poll(fds, 2, timeout_ms);
  if (fds[1].revents & POLLIN) {
    uint64_t drained = 0;
    (void)!::read(wake_fd_, &drained, sizeof drained);
  }
  if (fds[0].revents & (POLLIN | POLLERR | POLLHUP)) read_group();
  if (unsynced_) {
    // Before any write: the PUBACKs of this group are queued inside
    // libmosquitto and must not leave before the spool is durable.
    Status s = hooks_.before_write();
    unsynced_ = false;
    if (s.code() == ErrorCode::kUnavailable) {
      spdlog::warn("{}", s.message());
      drop_connection();
      return Status();
    }
    if (!s.ok()) {
      // The group is not durable: its queued PUBACKs must never leave, not
      // even from the shutdown loop below.
      drop_connection();
      return s;
    }
  }
  flush_outbox();
  if (mosquitto_socket(mosq_) >= 0 && mosquitto_want_write(mosq_)) mosquitto_loop_write(mosq_, 1);
  if (mosquitto_socket(mosq_) >= 0) mosquitto_loop_misc(mosq_);
  return Status();
}

Status BrokerLink::run() {
  CUSTOS_RETURN_IF_ERROR(setup());
  int backoff_ms = kReconnectMsMin;
  bool paused = false;
  while (!stopping_) {
    const bool want_pause = hooks_.should_pause();
    if (want_pause != paused) {
      paused = want_pause;
      metrics_.ingest_paused = paused ? 1 : 0;
      if (paused) {
        metrics_.ingest_pauses++;
        spdlog::warn("spool at its high-water mark: ingest paused (the broker queues)");
      } else {
        spdlog::info("spool drained: ingest resumed");
      }
    }
    if (paused && mosquitto_socket(mosq_) >= 0) {
      mosquitto_disconnect(mosq_);  // session kept: the broker queues for us
      for (int i = 0; i < 20 && mosquitto_socket(mosq_) >= 0; ++i) {
        CUSTOS_RETURN_IF_ERROR(pump(10));
      }
      continue;
    }
    if (mosquitto_socket(mosq_) < 0) {
      connected_ = false;
      metrics_.broker_connected = 0;
      if (paused || !connect_once()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(paused ? kPollMs : backoff_ms));
        if (!paused) backoff_ms = std::min(backoff_ms * 2, kReconnectMsMax);
        continue;
      }
      backoff_ms = kReconnectMsMin;
    }
    CUSTOS_RETURN_IF_ERROR(pump(kPollMs));
  }
  if (mosquitto_socket(mosq_) >= 0) {
    mosquitto_disconnect(mosq_);
    for (int i = 0; i < 20 && mosquitto_socket(mosq_) >= 0; ++i) {
      if (!pump(10).ok()) break;
    }
  }
  return Status();
}

}  // namespace custos::gateway
