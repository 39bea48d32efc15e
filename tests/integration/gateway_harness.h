// Real parts for the gateway tests: a Mosquitto broker configured by
// `custos broker init`, `custos gateway` processes, devices provisioned on a
// real `custos node --dev` (maker organisation, maker engineer key, device
// registration signed by the maker with the device's own key), and an MQTT 5
// client over TLS (libmosquitto) that publishes, records PUBACKs and
// collects answers. Header-only like harness.h.
#pragma once

#include <mosquitto.h>
#include <mqtt_protocol.h>

#include <map>
#include <mutex>
#include <set>

#include "crypto/hash.h"
#include "integration/harness.h"

namespace custos::integration {

inline const char* pump_example_binary() {
  return CUSTOS_PUMP_EXAMPLE;
}

inline std::string mosquitto_binary() {
  for (const char* p : {"/usr/sbin/mosquitto", "/usr/bin/mosquitto"}) {
    if (::access(p, X_OK) == 0) return p;
  }
  return "mosquitto";
}

inline bool port_open(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// `custos broker init` once, then mosquitto started, stopped and killed.
class BrokerProcess {
 public:
  explicit BrokerProcess(std::string dir) : dir_(std::move(dir)), port_(free_port()) {
    // Command output goes beside DIR: DIR itself is made by the command.
    const std::string parent = std::filesystem::path(dir_).parent_path().string();
    auto r = run_custos(parent, {"broker", "init", "--dir", dir_, "--port", std::to_string(port_)});
    if (r.exit_code != 0) {
      throw std::runtime_error("broker init: exit " + std::to_string(r.exit_code) + ": " + r.err +
                               r.out);
    }
  }
  ~BrokerProcess() {
    if (pid_ > 0) kill();
  }
  const std::string& dir() const { return dir_; }
  int port() const { return port_; }
  ::testing::AssertionResult start() {
    pid_ = spawn({mosquitto_binary(), "-c", dir_ + "/mosquitto.conf"}, dir_ + "/stdout.log",
                 dir_ + "/stdout.log");
    if (eventually([&] { return port_open(port_); }, std::chrono::seconds(10))) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << "mosquitto did not listen: " << slurp(dir_ + "/stdout.log")
           << slurp(dir_ + "/mosquitto.log");
  }
  // SIGTERM: mosquitto saves its persistence (sessions, queued messages).
  int stop() { return signal(SIGTERM); }
  int kill() { return signal(SIGKILL); }
  // A device's TLS certificate: returns the path prefix (.crt, .key).
  std::string issue(const std::string& device) {
    const std::string out = dir_ + "/dev-" + device;
    auto r = run_custos(dir_, {"broker", "issue", "--dir", dir_, "--device", device, "--out", out});
    if (r.exit_code != 0) throw std::runtime_error("broker issue: " + r.err);
    return out;
  }

 private:
  int signal(int sig) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, sig);
    int code = wait_exit(pid_);
    pid_ = -1;
    return code;
  }
  std::string dir_;
  int port_;
  pid_t pid_ = -1;
};

class GatewayProcess {
 public:
  GatewayProcess(std::string root, const BrokerProcess& broker, std::vector<std::string> nodes,
                 std::vector<std::string> extra = {})
      : root_(std::move(root)),
        broker_dir_(broker.dir()),
        nodes_(std::move(nodes)),
        extra_(std::move(extra)),
        metrics_port_(free_port()) {
    std::filesystem::create_directories(root_);
  }
  ~GatewayProcess() {
    if (pid_ > 0) kill();
  }
  std::string log_path() const { return root_ + "/gateway.log"; }
  std::string spool_dir() const { return root_ + "/spool"; }
  bool running() const { return pid_ > 0; }

  // Starts and waits until it is connected to the broker (when `connected`).
  ::testing::AssertionResult start(bool connected = true, const std::string& fault = "") {
    std::vector<std::string> argv{custos_binary(),    "gateway",
                                  "--broker-dir",     broker_dir_,
                                  "--spool-dir",      spool_dir(),
                                  "--metrics-listen", "127.0.0.1:" + std::to_string(metrics_port_),
                                  "--log-level",      "debug",
                                  "--batch-wait-ms",  "5"};
    for (const auto& n : nodes_) {
      argv.push_back("--node");
      argv.push_back(n);
    }
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    if (!fault.empty()) ::setenv("CUSTOS_GATEWAY_FAULT", fault.c_str(), 1);
    pid_ = spawn(argv, root_ + "/stdout.log", log_path());
    ::unsetenv("CUSTOS_GATEWAY_FAULT");
    const bool up = eventually(
        [&] {
          Json s = status();
          return s.is_object() && (!connected || s.value("broker_connected", false));
        },
        std::chrono::seconds(20));
    if (up) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "gateway not up; log:\n" << slurp(log_path());
  }
  int stop() { return signal(SIGTERM); }
  int kill() { return signal(SIGKILL); }
  // Waits for the process to end by itself (a fault it injected).
  int wait() {
    int code = wait_exit(pid_);
    pid_ = -1;
    return code;
  }
  bool exited() {
    int status = 0;
    if (pid_ > 0 && ::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return true;
    }
    return pid_ <= 0;
  }

  Json status() const {
    httplib::Client c("127.0.0.1", metrics_port_);
    c.set_connection_timeout(1, 0);
    c.set_read_timeout(2, 0);
    auto res = c.Get("/status");
    if (!res || res->status != 200) return Json();
    return Json::parse(res->body, nullptr, false);
  }
  std::string metrics() const {
    httplib::Client c("127.0.0.1", metrics_port_);
    auto res = c.Get("/metrics");
    return res && res->status == 200 ? res->body : std::string();
  }
  uint64_t refused(const std::string& reason) const {
    Json s = status();
    if (!s.is_object()) return 0;
    return s["refused_by_reason"].value(reason, uint64_t{0});
  }

 private:
  int signal(int sig) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, sig);
    int code = wait_exit(pid_);
    pid_ = -1;
    return code;
  }
  std::string root_;
  std::string broker_dir_;
  std::vector<std::string> nodes_;
  std::vector<std::string> extra_;
  int metrics_port_;
  pid_t pid_ = -1;
};

// The maker organisation and its engineer, who registers devices.
struct Maker {
  crypto::PrivateKey engineer;
  std::string engineer_name = "acme-eng";
  uint64_t next_sequence = 1;
};

inline Maker register_maker(const std::string& scratch, const std::string& url,
                            const std::string& admin_key_path) {
  auto r = run_custos(scratch, {"org", "register", "--node", url, "--admin-key", admin_key_path,
                                "--id", "acme", "--name", "Acme Medical", "--kind", "maker"});
  if (r.exit_code != 0) throw std::runtime_error("org register: " + r.err);
  Maker m{crypto::PrivateKey::generate(crypto::Algorithm::kES256).value()};
  spit(scratch + "/acme-eng.pub", m.engineer.public_key().to_pem());
  r = run_custos(scratch, {"keys", "register", "--node", url, "--admin-key", admin_key_path,
                           "--key", scratch + "/acme-eng.pub", "--name", m.engineer_name, "--org",
                           "acme", "--roles", "biomed"});
  if (r.exit_code != 0) throw std::runtime_error("keys register: " + r.err);
  return m;
}

inline Maker register_maker(const std::string& scratch, NodeProcess& node) {
  return register_maker(scratch, node.url(), node.admin_key_path());
}

// A device: its signing key registered by the maker, its TLS certificate
// from the broker CA, its topics.
struct Device {
  std::string id;
  crypto::PrivateKey key;
  std::string tls;  // path prefix of .crt / .key
  std::string key_path;
  uint64_t next_sequence = 1;

  std::string topic(const std::string& kind) const {
    return "iomt/v1/st-mary/icu/infusion-pump/" + id + "/" + kind;
  }
  // A signed device event (deterministic CBOR payload from JSON).
  Bytes event(const Json& payload, std::optional<uint64_t> sequence = std::nullopt) {
    cose::StatementHeader h;
    h.content_type = "application/vnd.custos.device-event+cbor";
    h.issuer = id;
    h.subject = "infusion-1";
    h.issued_at_s = unix_seconds();
    h.sequence = sequence ? *sequence : next_sequence;
    next_sequence = std::max(next_sequence, h.sequence + 1);
    return cose::sign_statement(key, h, cbor::encode(cbor::from_json(payload).value()));
  }
  Bytes rate_change(double rate) { return event({{"event", "rate-change"}, {"rate_ml_h", rate}}); }
};

inline Device make_device(const std::string& scratch, int node_port, Maker& maker,
                          BrokerProcess& broker, const std::string& id, bool register_it = true,
                          crypto::Algorithm alg = crypto::Algorithm::kES256) {
  static std::atomic<int> serial{1000};
  Device d{id, crypto::PrivateKey::generate(alg).value(), broker.issue(id),
           scratch + "/" + id + ".key"};
  spit(d.key_path, d.key.to_pem());
  ::chmod(d.key_path.c_str(), 0600);
  if (register_it) {
    cbor::Map udi;
    udi.emplace_back(cbor::text("di"), cbor::text("00614141999996"));
    udi.emplace_back(cbor::text("serial"), cbor::text("SN" + std::to_string(serial++)));
    cbor::Map m;
    m.emplace_back(cbor::text("device"), cbor::text(id));
    m.emplace_back(cbor::text("class"), cbor::text("infusion-pump"));
    m.emplace_back(cbor::text("model"), cbor::text("AP-500"));
    m.emplace_back(cbor::text("udi"), cbor::Value::map(std::move(udi)));
    m.emplace_back(cbor::text("key"), cbor::Value::bytes(d.key.public_key().spki_der()));
    cose::StatementHeader h;
    h.content_type = "application/vnd.custos.device-register+cbor";
    h.issuer = maker.engineer_name;
    h.subject = "device/" + id;
    h.issued_at_s = unix_seconds();
    h.sequence = maker.next_sequence++;
    Bytes st =
        cose::sign_statement(maker.engineer, h, cbor::encode(cbor::Value::map(std::move(m))));
    auto client = make_client(node_port);
    auto res = post_cose(*client, st);
    if (!res || res->status != 201) {
      throw std::runtime_error("device register: " + (res ? res->body : std::string("no answer")));
    }
  }
  return d;
}

inline Device make_device(const std::string& scratch, NodeProcess& node, Maker& maker,
                          BrokerProcess& broker, const std::string& id, bool register_it = true,
                          crypto::Algorithm alg = crypto::Algorithm::kES256) {
  return make_device(scratch, node.port(), maker, broker, id, register_it, alg);
}

// An MQTT 5 client over TLS that publishes QoS 1 and records which
// publishes the broker acknowledged, and collects what arrives on the
// topics it subscribed to. Runs libmosquitto's own thread.
class MqttClient {
 public:
  struct Received {
    std::string topic;
    std::string payload;
    Bytes correlation;
  };

  MqttClient(const BrokerProcess& broker, const std::string& client_id, const std::string& tls,
             bool clean = true)
      : client_id_(client_id) {
    mosq_ = mosquitto_new(client_id.c_str(), clean, this);
    mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    mosquitto_tls_set(mosq_, (broker.dir() + "/ca.crt").c_str(), nullptr, (tls + ".crt").c_str(),
                      (tls + ".key").c_str(), nullptr);
    mosquitto_reconnect_delay_set(mosq_, 1, 2, false);
    mosquitto_connect_v5_callback_set(
        mosq_, [](mosquitto*, void* self, int rc, int, const mosquitto_property*) {
          auto* c = static_cast<MqttClient*>(self);
          c->connected_ = rc == 0;
          if (rc == 0) {
            std::lock_guard<std::mutex> lock(c->mu_);
            for (const auto& t : c->subscriptions_)
              mosquitto_subscribe_v5(c->mosq_, nullptr, t.c_str(), 1, 0, nullptr);
          }
        });
    mosquitto_disconnect_v5_callback_set(
        mosq_, [](mosquitto*, void* self, int, const mosquitto_property*) {
          static_cast<MqttClient*>(self)->connected_ = false;
        });
    mosquitto_publish_v5_callback_set(
        mosq_, [](mosquitto*, void* self, int mid, int reason, const mosquitto_property*) {
          auto* c = static_cast<MqttClient*>(self);
          std::lock_guard<std::mutex> lock(c->mu_);
          auto it = c->in_flight_.find(mid);
          if (it == c->in_flight_.end()) return;
          if (reason < 0x80) c->acked_.push_back(it->second);
          c->in_flight_.erase(it);
        });
    mosquitto_message_v5_callback_set(mosq_, [](mosquitto*, void* self, const mosquitto_message* m,
                                                const mosquitto_property* props) {
      auto* c = static_cast<MqttClient*>(self);
      Received r{
          m->topic,
          std::string(static_cast<const char*>(m->payload), static_cast<size_t>(m->payloadlen)),
          {}};
      void* corr = nullptr;
      uint16_t len = 0;
      if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &len, false) &&
          corr) {
        r.correlation.assign(static_cast<uint8_t*>(corr), static_cast<uint8_t*>(corr) + len);
        free(corr);
      }
      std::lock_guard<std::mutex> lock(c->mu_);
      c->received_.push_back(std::move(r));
    });
    mosquitto_connect_bind_v5(mosq_, "127.0.0.1", broker.port(), 10, nullptr, nullptr);
    mosquitto_loop_start(mosq_);
  }
  ~MqttClient() {
    mosquitto_disconnect(mosq_);
    mosquitto_loop_stop(mosq_, true);
    mosquitto_destroy(mosq_);
  }
  bool wait_connected() {
    return eventually([&] { return connected_.load(); }, std::chrono::seconds(10));
  }
  void subscribe(const std::string& topic) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      subscriptions_.push_back(topic);
    }
    mosquitto_subscribe_v5(mosq_, nullptr, topic.c_str(), 1, 0, nullptr);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // SUBACK
  }
  // Publishes QoS 1 with a response topic and correlation data; `tag`
  // names the message in acked().
  bool publish(const std::string& topic, const Bytes& payload, const std::string& tag,
               const std::string& response_topic = "", const std::string& correlation = "") {
    mosquitto_property* props = nullptr;
    if (!response_topic.empty()) {
      mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, response_topic.c_str());
    }
    if (!correlation.empty()) {
      mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, correlation.data(),
                                    static_cast<uint16_t>(correlation.size()));
    }
    int mid = 0;
    std::lock_guard<std::mutex> lock(mu_);
    int rc = mosquitto_publish_v5(mosq_, &mid, topic.c_str(), static_cast<int>(payload.size()),
                                  payload.data(), 1, false, props);
    mosquitto_property_free_all(&props);
    if (rc != MOSQ_ERR_SUCCESS) return false;
    in_flight_[mid] = tag;
    return true;
  }
  std::vector<std::string> acked() {
    std::lock_guard<std::mutex> lock(mu_);
    return acked_;
  }
  std::vector<Received> received() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }
  // The first message on `topic` whose JSON has "correlation" == hex(corr).
  std::optional<Json> answer(const std::string& topic, const std::string& correlation,
                             std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    std::optional<Json> found;
    eventually(
        [&] {
          for (const auto& r : received()) {
            if (r.topic != topic) continue;
            Json doc = Json::parse(r.payload, nullptr, false);
            if (doc.is_object() && doc.value("correlation", "") == to_hex(as_view(correlation))) {
              found = doc;
              return true;
            }
          }
          return false;
        },
        timeout);
    return found;
  }

 private:
  std::string client_id_;
  mosquitto* mosq_ = nullptr;
  std::atomic<bool> connected_{false};
  std::mutex mu_;
  std::vector<std::string> subscriptions_;
  std::map<int, std::string> in_flight_;
  std::vector<std::string> acked_;
  std::vector<Received> received_;
};

// Whether the node has the entry (by id).
inline bool on_ledger(httplib::Client& c, const Bytes& statement) {
  auto res = c.Get("/v1/entries/" + to_hex(crypto::sha256(statement)));
  return res && res->status == 200;
}

// Every statement of `sent` is on the ledger within `within`.
inline bool all_on_ledger(httplib::Client& c, const std::vector<Bytes>& sent,
                          std::chrono::milliseconds within) {
  return eventually(
      [&] {
        for (const auto& s : sent) {
          if (!on_ledger(c, s)) return false;
        }
        return true;
      },
      within);
}

// Entries by issuer (all pages).
inline std::vector<std::string> entry_ids_by_issuer(httplib::Client& c, const std::string& issuer) {
  std::vector<std::string> ids;
  std::string cursor;
  for (int page = 0; page < 1000; ++page) {
    std::string path = "/v1/entries?limit=1000&issuer=" + percent_encode(issuer);
    if (!cursor.empty()) path += "&cursor=" + cursor;
    auto res = c.Get(path);
    if (!res || res->status != 200) break;
    Json doc = Json::parse(res->body);
    for (const auto& e : doc["entries"]) ids.push_back(e["id"].get<std::string>());
    if (doc["next_cursor"].is_null()) break;
    cursor = doc["next_cursor"].get<std::string>();
  }
  return ids;
}

}  // namespace custos::integration
