// `custos simulate`: the hospital model played in real time against a
// running consortium, broker and gateway (simulate.h).
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/signing.h"
#include "cli/simulate.h"
#include "cose/statement.h"
#include "crypto/hash.h"
#include "custos_device.h"
#include "domain/model.h"
#include "gateway/broker_config.h"

namespace custos::cli {

namespace {

using hospital::Action;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Latency samples kept for percentiles (the newest; older ones roll off).
constexpr size_t kLatencySamplesMax = 20000;
constexpr uint64_t kLatencyWindowMs = 60000;
// Clinician statements waiting for the desk thread.
constexpr size_t kDeskQueueMax = 1024;
// Entry ids in fault outcomes: enough hex digits to find the entry.
constexpr size_t kIdPrefixChars = 16;
// How long to wait at the end for the answers to what the devices
// published (an offline device's queue is sent first).
constexpr int kDrainTimeoutS = 20;
// Fault messages waiting for the fault thread (a handful per run).
constexpr size_t kFaultQueueMax = 64;

std::atomic<bool> g_stop{false};
void on_signal(int) {
  g_stop = true;
}

uint64_t wall_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// What the run has seen, updated from the device loop and the desk thread.
struct Stats {
  std::mutex mu;
  // The devices' own events (published through the SDK), each counted once,
  // by its first answer: registered; already registered (it had reached the
  // ledger before, e.g. sent again after the link dropped before the
  // broker's PUBACK came back); or refused.
  uint64_t published = 0, acked = 0, already = 0, events_refused = 0;
  // A second answer to an event (it was sent twice), and answers to events
  // an earlier run left queued on a device.
  uint64_t duplicate_answers = 0, earlier_run_answers = 0;
  uint64_t clinician_ok = 0;
  // The hand-made messages of the replay, tamper and cloned-key faults.
  uint64_t fault_messages = 0;
  std::map<std::string, uint64_t> refused;             // reason -> count
  std::map<std::string, uint64_t> flags;               // flag code -> count
  std::map<std::string, uint64_t> faults;              // "fault: what came of it" -> count
  std::deque<std::pair<uint64_t, double>> latency_ms;  // (when acked, ms)
  std::map<std::string, uint64_t> steps;               // order steps registered
  std::vector<std::string> completed_orders;
  std::vector<std::string> programmed_orders;
  struct Outage {
    std::string ward;
    uint64_t devices = 0, from_ms = 0, to_ms = 0;  // wall clock; to_ms 0: still down
  };
  std::optional<Outage> outage;

  void latency(double ms) {
    latency_ms.emplace_back(wall_ms(), ms);
    if (latency_ms.size() > kLatencySamplesMax) latency_ms.pop_front();
  }
  // Over the last kLatencyWindowMs: what a person watching sees now.
  double percentile(double p) {
    const uint64_t since = wall_ms() - std::min<uint64_t>(wall_ms(), kLatencyWindowMs);
    std::vector<double> v;
    for (const auto& [at, ms] : latency_ms)
      if (at >= since) v.push_back(ms);
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
  }
};

std::string flag_code(const std::string& flag) {
  return flag.substr(0, flag.find(':'));
}

// An event a device published and the gateway has not answered yet.
struct Sent {
  uint64_t ms = 0;
  std::string event;    // the device event's kind; "firmware-install" for an installation
  std::string detail;   // what the fault outcome names: the order, the firmware version
  uint32_t faults = 0;  // hospital::Fault bits this event is part of
};

// One device of the simulation: the SDK's device and what it sent.
struct DeviceSlot {
  custos_device* dev = nullptr;
  const hospital::DeviceInfo* info = nullptr;
  Stats* stats = nullptr;
  int64_t clock_offset_s = 0;
  bool online = true;
  uint64_t offline_since_ms = 0;         // wall clock; 0 while online
  bool rogue_installed = false;          // its later events run the rogue firmware
  uint64_t first_seq = 0, last_seq = 0;  // the sequence numbers this run used
  std::map<uint64_t, Sent> sent;         // by sequence number
};

// What a fault's events came to, by the gateway's answer (docs/gateway.md,
// "Hospital simulator"). Called with stats.mu held.
void note_outcomes(Stats& s, const DeviceSlot& slot, const Sent& e, const std::string& outcome,
                   const std::vector<std::string>& codes) {
  const auto flagged = [&](const char* code) {
    const bool has = std::find(codes.begin(), codes.end(), code) != codes.end();
    return std::string(has ? ", flagged " : ", not flagged ") + code;
  };
  const std::string& id = slot.info->id;
  if (e.faults & hospital::kFaultRogueFirmware) {
    if (e.event == "firmware-install")
      ++s.faults["rogue-firmware: " + id + " installed " + e.detail + ": " + outcome +
                 flagged("firmware-unknown")];
    else
      ++s.faults["rogue-firmware: " + id + "'s later events: " + outcome +
                 flagged("firmware-unknown")];
  }
  if (e.faults & hospital::kFaultClockSkew)
    ++s.faults["clock-skew: " + id + "'s events (clock +" + std::to_string(slot.clock_offset_s) +
               " s): " + outcome + flagged("clock-skew")];
  if ((e.faults & hospital::kFaultSoftLimitOverride) && e.event == "soft-limit-override")
    ++s.faults["soft-limit-override: " + id + " overrode the soft limit of order " + e.detail +
               ": " + outcome];
  if (e.faults & hospital::kFaultWardOutage)
    ++s.faults["ward-outage: events queued while offline, then " + outcome];
}

void on_device_ack(custos_device*, const custos_ack* ack, void* user) {
  auto* slot = static_cast<DeviceSlot*>(user);
  json doc = json::parse(std::string(ack->json, ack->json_len), nullptr, false);
  std::lock_guard lock(slot->stats->mu);
  Stats& s = *slot->stats;
  auto it = slot->sent.find(ack->sequence);
  if (it == slot->sent.end()) {
    // Sequence 0: the correlation is not a sequence number, so this answers
    // a fault's hand-made message on this device's topics, which the
    // fault's own client reports.
    if (ack->sequence == 0) return;
    if (slot->first_seq && ack->sequence >= slot->first_seq && ack->sequence <= slot->last_seq)
      ++s.duplicate_answers;
    else
      ++s.earlier_run_answers;
    return;
  }
  std::string outcome = "registered";
  if (ack->refused) {
    const std::string reason =
        doc.is_object() ? doc.value("reason", std::string("other")) : "other";
    ++s.refused[reason];
    ++s.events_refused;
    outcome = "refused " + reason;
  } else if (doc.is_object() && doc.value("status", "") == "already-registered") {
    ++s.already;
  } else {
    ++s.acked;
  }
  std::vector<std::string> codes;
  if (doc.is_object() && doc.contains("flags") && doc["flags"].is_array()) {
    for (const auto& f : doc["flags"]) {
      if (!f.is_string()) continue;
      codes.push_back(flag_code(f.get<std::string>()));
      ++s.flags[codes.back()];
    }
  }
  s.latency(static_cast<double>(wall_ms() - it->second.ms));
  note_outcomes(s, *slot, it->second, outcome, codes);
  slot->sent.erase(it);
}

// A plain MQTT 5 client with a device's certificate, for the faults that
// send bytes no honest SDK would: a replay, a tampered message, a clone. It
// listens on its identity's ack and error topics and reports the gateway's
// answer.
class RawPublisher {
 public:
  ~RawPublisher() {
    if (mosq_) {
      mosquitto_disconnect(mosq_);
      mosquitto_loop_stop(mosq_, true);
      mosquitto_destroy(mosq_);
    }
  }
  // `base` is the identity's topic prefix: iomt/v1/{site}/{unit}/{class}/{id}.
  Status open(const gateway::BrokerEndpoint& b, const std::string& ca, const std::string& cert,
              const std::string& key, const std::string& client_id, const std::string& base) {
    base_ = base;
    mosq_ = mosquitto_new(client_id.c_str(), true, this);
    if (!mosq_) return error(ErrorCode::kInternal, "mosquitto_new failed");
    mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    if (mosquitto_tls_set(mosq_, ca.c_str(), nullptr, cert.c_str(), key.c_str(), nullptr) !=
        MOSQ_ERR_SUCCESS)
      return error(ErrorCode::kInvalidArgument, "TLS files of " + client_id);
    mosquitto_connect_v5_callback_set(mosq_, &RawPublisher::on_connect);
    mosquitto_subscribe_v5_callback_set(mosq_, &RawPublisher::on_subscribe);
    mosquitto_message_v5_callback_set(mosq_, &RawPublisher::on_message);
    if (mosquitto_connect_bind_v5(mosq_, b.host.c_str(), b.port, 30, nullptr, nullptr) !=
        MOSQ_ERR_SUCCESS)
      return error(ErrorCode::kIo, "cannot reach the broker at " + b.host);
    mosquitto_loop_start(mosq_);
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::seconds(kAnswerWaitS), [&] { return subscribed_; }))
      return error(ErrorCode::kUnavailable, "broker did not take the subscription");
    return Status();
  }
  // The gateway's answer to one message.
  struct Answer {
    bool answered = false;
    bool refused = false;
    std::string status;  // "registered", "already-registered"; or the refusal's reason
    std::string detail;
    std::string describe() const {
      if (!answered) return "no answer";
      if (refused) return "refused: " + status + " (" + detail.substr(0, 80) + ")";
      return "answered " + status;
    }
  };

  // Publishes on base/kind with the ack topic as response topic and a
  // correlation of its own, and waits for the gateway's answer to it (the
  // identity's topics also carry the answers to its other messages).
  Answer publish(const std::string& kind, ByteView bytes) {
    static std::atomic<uint64_t> counter{0};
    // Never 8 bytes: the SDK reads 8-byte correlation data as a sequence.
    const std::string correlation = "sim-fault-" + std::to_string(++counter);
    {
      std::lock_guard lock(mu_);
      correlation_hex_ = to_hex(as_view(correlation));
      answer_ = Answer{};
    }
    mosquitto_property* props = nullptr;
    mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, (base_ + "/ack").c_str());
    mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, correlation.data(),
                                  static_cast<uint16_t>(correlation.size()));
    mosquitto_publish_v5(mosq_, nullptr, (base_ + "/" + kind).c_str(),
                         static_cast<int>(bytes.size()), bytes.data(), 1, false, props);
    mosquitto_property_free_all(&props);
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(kAnswerWaitS), [&] { return answer_.answered; });
    return answer_;
  }

 private:
  static constexpr int kAnswerWaitS = 10;

  static void on_connect(struct mosquitto* m, void* self, int rc, int, const mosquitto_property*) {
    if (rc != 0) return;
    auto* p = static_cast<RawPublisher*>(self);
    const std::string ack = p->base_ + "/ack", err = p->base_ + "/error";
    char* topics[] = {const_cast<char*>(ack.c_str()), const_cast<char*>(err.c_str())};
    mosquitto_subscribe_multiple(m, nullptr, 2, topics, 1, 0, nullptr);
  }
  static void on_subscribe(struct mosquitto*, void* self, int, int, const int*,
                           const mosquitto_property*) {
    auto* p = static_cast<RawPublisher*>(self);
    std::lock_guard lock(p->mu_);
    p->subscribed_ = true;
    p->cv_.notify_all();
  }
  static void on_message(struct mosquitto*, void* self, const struct mosquitto_message* msg,
                         const mosquitto_property*) {
    auto* p = static_cast<RawPublisher*>(self);
    json doc = json::parse(
        std::string(static_cast<const char*>(msg->payload), static_cast<size_t>(msg->payloadlen)),
        nullptr, false);
    const std::string topic = msg->topic;
    const bool is_error = topic.size() >= 6 && topic.substr(topic.size() - 6) == "/error";
    std::lock_guard lock(p->mu_);
    if (!doc.is_object() || p->answer_.answered ||
        doc.value("correlation", std::string()) != p->correlation_hex_)
      return;
    p->answer_.answered = true;
    p->answer_.refused = is_error;
    p->answer_.status =
        is_error ? doc.value("reason", std::string("?")) : doc.value("status", std::string("?"));
    p->answer_.detail = doc.value("detail", std::string());
    p->cv_.notify_all();
  }

  struct mosquitto* mosq_ = nullptr;
  std::string base_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool subscribed_ = false;
  std::string correlation_hex_;
  Answer answer_;
};

// Clinicians' statements, signed and sent to a node by a thread of their
// own (a device loop must never wait for HTTP).
class Desk {
 public:
  struct Done {
    std::string order, step;
    std::optional<std::string> entry_hex;
  };
  Desk(const SimulateOptions& o, const SimWorld& w, const hospital::Config& c, Stats& stats)
      : o_(o), w_(w), c_(c), stats_(stats), thread_([this] { run(); }) {}
  ~Desk() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  bool push(Action a) {
    std::lock_guard lock(mu_);
    if (queue_.size() >= kDeskQueueMax) return false;
    queue_.push_back(std::move(a));
    cv_.notify_one();
    return true;
  }
  std::vector<Done> take_done() {
    std::lock_guard lock(mu_);
    std::vector<Done> out;
    out.swap(done_);
    return out;
  }

 private:
  void run() {
    for (;;) {
      Action a;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        a = std::move(queue_.front());
        queue_.pop_front();
      }
      Done d{a.order, a.step, submit(a)};
      std::lock_guard lock(mu_);
      done_.push_back(std::move(d));
    }
  }

  // Signs with the clinician's key and submits, trying the nodes in turn
  // from the one that answered last (a dead node costs one try, not one
  // per statement).
  std::optional<std::string> submit(const Action& a) {
    const std::string key = person_key(w_, a.clinician, c_.wards[a.ward]);
    for (size_t attempt = 0; attempt < o_.nodes.size() * 2; ++attempt) {
      const size_t node = (next_node_ + attempt) % o_.nodes.size();
      NodeClient client(o_.nodes[node]);
      auto st =
          sign_admin_statement(client, key, a.content_type, a.subject, cbor::encode(a.payload));
      if (!st.ok()) continue;  // node down: the next one
      auto reply =
          client.post("/v1/entries", std::string(st->begin(), st->end()), "application/cose");
      if (!reply.ok() || reply->status >= 500) continue;
      next_node_ = node;
      std::lock_guard lock(stats_.mu);
      if (!reply->ok()) {
        json p = json::parse(reply->body, nullptr, false);
        std::string type = p.is_object() ? p.value("type", std::string("other")) : "other";
        ++stats_.refused["clinician " + type.substr(type.rfind(':') + 1)];
        return std::nullopt;
      }
      ++stats_.clinician_ok;
      ++stats_.steps[a.step];
      if (a.step == "programming") stats_.programmed_orders.push_back(a.order);
      return to_hex(crypto::sha256(*st));
    }
    std::lock_guard lock(stats_.mu);
    ++stats_.refused["clinician unreachable"];
    return std::nullopt;
  }

  const SimulateOptions& o_;
  const SimWorld& w_;
  const hospital::Config& c_;
  Stats& stats_;
  size_t next_node_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Action> queue_;
  std::vector<Done> done_;
  bool stopping_ = false;
  std::thread thread_;
};

// The hand-made fault messages (replay, tamper, cloned key), each over a
// TLS connection of its own and waiting up to seconds for the gateway's
// answer, run here in order: the device loop keeps pumping meanwhile, so
// the devices' own events and the ward outage keep their timing.
class FaultThread {
 public:
  FaultThread() : thread_([this] { run(); }) {}
  ~FaultThread() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  bool push(std::function<void()> task) {
    std::lock_guard lock(mu_);
    if (queue_.size() >= kFaultQueueMax) return false;
    queue_.push_back(std::move(task));
    cv_.notify_all();
    return true;
  }
  // Waits until every task pushed so far has run.
  void finish() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return queue_.empty() && !busy_; });
  }

 private:
  void run() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, nothing left
        task = std::move(queue_.front());
        queue_.pop_front();
        busy_ = true;
      }
      task();
      std::lock_guard lock(mu_);
      busy_ = false;
      cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool busy_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

std::vector<std::string> split_csv(const std::string& csv) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= csv.size()) {
    size_t j = csv.find(',', i);
    if (j == std::string::npos) j = csv.size();
    if (j > i) out.push_back(csv.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

class Simulation {
 public:
  Simulation(const SimulateOptions& o, hospital::Hospital& h, const SimWorld& w,
             gateway::BrokerEndpoint broker)
      : o_(o), h_(h), w_(w), broker_(std::move(broker)) {}

  Status run() {
    CUSTOS_RETURN_IF_ERROR(open_devices());
    Desk desk(o_, w_, h_.config(), stats_);
    const auto start = Clock::now();
    auto next_summary = start;
    std::vector<Action> later;  // actions whose time has not come (network back up)
    while (!g_stop) {
      const uint64_t now = wall_ms();
      std::vector<Action> due;
      for (auto it = later.begin(); it != later.end();) {
        if (it->at_ms <= now && !too_early(*it, now)) {
          due.push_back(std::move(*it));
          it = later.erase(it);
        } else {
          ++it;
        }
      }
      for (Action& a : h_.advance(now)) (a.at_ms <= now ? due : later).push_back(std::move(a));
      for (Action& a : due) dispatch(a, desk);
      for (auto& d : desk.take_done()) h_.registered(d.order, d.step, d.entry_hex);
      pump_devices();
      if (Clock::now() >= next_summary) {
        summary(std::chrono::duration<double>(Clock::now() - start).count(), false);
        next_summary += std::chrono::milliseconds(static_cast<int>(o_.summary_interval_s * 1000));
      }
      if (o_.duration_s && Clock::now() - start >= std::chrono::seconds(o_.duration_s)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    faults_.finish();  // its counts belong in the final summary
    drain();
    summary(std::chrono::duration<double>(Clock::now() - start).count(), true);
    for (auto& s : slots_) custos_device_close(s->dev);
    return Status();
  }

 private:
  Status open_devices() {
    for (size_t i = 0; i < h_.devices().size(); ++i) {
      const auto& info = h_.devices()[i];
      const auto& paths = w_.devices[i];
      auto slot = std::make_unique<DeviceSlot>();
      slot->info = &info;
      slot->stats = &stats_;
      custos_device_config c{};
      c.device_id = info.id.c_str();
      c.site = h_.config().site.c_str();
      c.unit = info.care_area.c_str();
      c.device_class = info.class_name.c_str();
      c.key_path = paths.key.c_str();
      c.state_dir = paths.state_dir.c_str();
      c.sequence_block = 64;  // one fsync per 64 events; a crash skips at most 63 (a gap)
      c.host = broker_.host.c_str();
      c.port = broker_.port;
      const std::string ca = o_.broker_dir + "/ca.crt";
      c.ca_path = ca.c_str();
      c.cert_path = paths.tls_cert.c_str();
      c.cert_key_path = paths.tls_key.c_str();
      c.want_acks = 1;
      // Inside the end's drain: an answer lost while connected is asked for again.
      c.answer_resend_ms = 15000;
      // The clock-skew fault: one monitor's clock runs ahead from the start.
      if (h_.skewed_device() == i) c.clock_offset_s = h_.config().clock_skew_s;
      slot->clock_offset_s = c.clock_offset_s;
      c.on_ack = on_device_ack;
      c.user = slot.get();
      int rc = custos_device_open(&c, &slot->dev);
      if (rc != CUSTOS_OK)
        return error(ErrorCode::kInvalidArgument, "device " + info.id + ": " + custos_strerror(rc));
      slots_.push_back(std::move(slot));
    }
    return Status();
  }

  void pump_devices() {
    for (auto& s : slots_) {
      if (s->online) custos_device_loop(s->dev, 0);
    }
  }

  void publish(DeviceSlot& s, const Action& a) {
    const cbor::Value* ev = a.payload.find("event");
    const std::string event = ev && ev->is(cbor::Type::kText) ? ev->as_text() : "";
    const char* kind = event == "status"                                ? "status"
                       : (event == "alarm" || event == "alarm-cleared") ? "alarm"
                                                                        : "event";
    const Bytes payload = cbor::encode(a.payload);
    const int64_t seq = custos_device_publish(s.dev, a.content_type.c_str(), kind, payload.data(),
                                              payload.size(), a.subject.c_str());
    std::lock_guard lock(stats_.mu);
    if (seq < 0) {
      ++stats_.refused[std::string("device ") + custos_strerror(static_cast<int>(seq))];
      return;
    }
    ++stats_.published;
    const auto sequence = static_cast<uint64_t>(seq);
    if (s.first_seq == 0) s.first_seq = sequence;
    s.last_seq = sequence;
    Sent sent;
    sent.ms = wall_ms();
    sent.faults = a.fault;
    if (a.content_type == domain::kTypeFirmwareInstall) {
      sent.event = "firmware-install";
      const cbor::Value* v = a.payload.find("version");
      sent.detail = v && v->is(cbor::Type::kText) ? v->as_text() : "?";
    } else {
      sent.event = event;
      if (a.subject.rfind("order/", 0) == 0) sent.detail = a.subject.substr(6);
    }
    if (h_.skewed_device() == a.device) sent.faults |= hospital::kFaultClockSkew;
    if (s.rogue_installed) sent.faults |= hospital::kFaultRogueFirmware;
    if (a.fault & hospital::kFaultRogueFirmware) s.rogue_installed = true;
    if (!s.online) {
      sent.faults |= hospital::kFaultWardOutage;
      ++stats_.faults["ward-outage: events queued on " + s.info->care_area +
                      "'s devices while offline"];
    }
    s.sent[sequence] = std::move(sent);
    if (event == "completion") stats_.completed_orders.push_back(a.subject.substr(6));
  }

  // A network coming back before the outage has lasted its whole length:
  // the loss may have begun late (a slow turn of the device loop), and the
  // outage is promised to last --outage-s.
  bool too_early(const Action& a, uint64_t now_ms) const {
    if (a.kind != Action::Kind::kNetworkUp) return false;
    const uint64_t since = slots_[a.device]->offline_since_ms;
    return since != 0 && now_ms < since + h_.config().ward_outage_ms;
  }

  // The network of one device goes down or comes back (the ward-outage fault).
  void network(DeviceSlot& s, bool up) {
    if (s.online == up) return;
    custos_device_set_offline(s.dev, up ? 0 : 1);
    s.online = up;
    s.offline_since_ms = up ? 0 : wall_ms();
    std::lock_guard lock(stats_.mu);
    if (!stats_.outage) stats_.outage = Stats::Outage{s.info->care_area, 0, wall_ms(), 0};
    if (up) {
      stats_.outage->to_ms = wall_ms();
      return;
    }
    ++stats_.outage->devices;
    ++stats_.faults["ward-outage: " + s.info->care_area + "'s devices lost the network for " +
                    std::to_string(h_.config().ward_outage_ms / 1000) + " s"];
  }

  void dispatch(Action& a, Desk& desk) {
    switch (a.kind) {
      case Action::Kind::kClinician: {
        // push() takes the action: keep what a refusal needs.
        const std::string order = a.order, step = a.step;
        if (!desk.push(std::move(a))) h_.registered(order, step, std::nullopt);
        return;
      }
      case Action::Kind::kDevice:
        publish(*slots_[a.device], a);
        return;
      case Action::Kind::kNetworkDown:
        network(*slots_[a.device], false);
        return;
      case Action::Kind::kNetworkUp:
        network(*slots_[a.device], true);
        return;
      case Action::Kind::kReplay:
      case Action::Kind::kTamper:
      case Action::Kind::kClone:
        if (!faults_.push([this, a] { fault(a); })) note("faults", "queue full, one dropped");
        return;
    }
  }

  // On the fault thread.
  void fault(const Action& a) {
    if (a.kind == Action::Kind::kReplay) return replay(a);
    if (a.kind == Action::Kind::kTamper) return tamper(a);
    clone(a);
  }

  // The exact bytes of one of the device's registered statements (its
  // first), again: the ledger must not hold it twice.
  void replay(const Action& a) {
    const auto& info = h_.devices()[a.device];
    for (const std::string& node : o_.nodes) {
      NodeClient client(node);
      auto page = client.get("/v1/entries?issuer=" + info.id + "&limit=1");
      if (!page.ok() || !page->ok()) continue;  // node down: the next one
      json j = json::parse(page->body, nullptr, false);
      if (!j.is_object() || !j.contains("entries") || !j["entries"].is_array() ||
          j["entries"].empty())
        return note("replay", "nothing to replay yet");
      const std::string id = j["entries"][0].value("id", std::string());
      auto st = client.get("/v1/entries/" + id, "application/cose");
      if (!st.ok() || !st->ok()) continue;
      const std::string answer =
          send_raw(a.device, device_base(a.device), "event", as_view(st->body));
      return note("replay", info.id + "'s entry " + id.substr(0, kIdPrefixChars) +
                                "... sent again, " + answer);
    }
    note("replay", "no node answered");
  }

  // A statement signed by the device's key with one payload byte flipped.
  void tamper(const Action& a) {
    auto key = load_private_key(w_.devices[a.device].key);
    if (!key.ok()) return note("tamper", key.status().message());
    Bytes st = sign_as_device(*key, a, wall_ms() / 1000);
    st[st.size() - 70] ^= 0x01;  // inside the payload, before the 64-byte signature
    const std::string answer = send_raw(a.device, device_base(a.device), "status", st);
    note("tamper", "one byte of " + h_.devices()[a.device].id + "'s status flipped, " + answer);
  }

  // A second client holding the pump's key publishes from its own identity.
  void clone(const Action& a) {
    auto key = load_private_key(w_.devices[a.device].key);
    if (!key.ok()) return note("cloned-key", key.status().message());
    Bytes st = sign_as_device(*key, a, wall_ms() / 1000);
    const auto& info = h_.devices()[a.device];
    const std::string base = "iomt/v1/" + h_.config().site + "/" + info.care_area + "/" +
                             info.class_name + "/sim-clone-1";
    RawPublisher p;
    Status s = p.open(broker_, o_.broker_dir + "/ca.crt", w_.clone_tls_cert, w_.clone_tls_key,
                      "sim-clone-1", base);
    if (!s.ok()) return note("cloned-key", s.message());
    const std::string answer = counted(p.publish("status", st));
    note("cloned-key", "sim-clone-1 signing with " + info.id + "'s key, " + answer);
  }

  // Numbers far above the SDK's: refused statements never advance a key's
  // sequence, so the device's own numbering is untouched.
  Bytes sign_as_device(const crypto::PrivateKey& key, const Action& a, uint64_t iat_s) {
    cose::StatementHeader h;
    h.content_type = a.content_type;
    h.issuer = h_.devices()[a.device].id;
    h.subject = a.subject;
    h.issued_at_s = iat_s;
    h.sequence = (uint64_t{1} << 62) + raw_sequence_++;
    return cose::sign_statement(key, h, cbor::encode(a.payload));
  }

  std::string device_base(size_t device) const {
    const auto& info = h_.devices()[device];
    return "iomt/v1/" + h_.config().site + "/" + info.care_area + "/" + info.class_name + "/" +
           info.id;
  }

  // Publishes a fault's message with the device's own TLS identity (another
  // client id) and says what the gateway answered.
  std::string send_raw(size_t device, const std::string& base, const std::string& kind,
                       ByteView bytes) {
    RawPublisher p;
    Status s = p.open(broker_, o_.broker_dir + "/ca.crt", w_.devices[device].tls_cert,
                      w_.devices[device].tls_key, h_.devices()[device].id + "-raw", base);
    if (!s.ok()) return s.message();
    return counted(p.publish(kind, bytes));
  }

  // A fault's message counts as one, its refusal under its reason.
  std::string counted(const RawPublisher::Answer& answer) {
    std::lock_guard lock(stats_.mu);
    ++stats_.fault_messages;
    if (answer.answered && answer.refused) ++stats_.refused[answer.status];
    return answer.describe();
  }

  void note(const std::string& fault, const std::string& what) {
    std::lock_guard lock(stats_.mu);
    ++stats_.faults[fault + ": " + what];
  }

  // At the end: let queued events reach the ledger and their acks come back.
  void drain() {
    const auto until = Clock::now() + std::chrono::seconds(kDrainTimeoutS);
    for (auto& s : slots_) network(*s, true);
    while (Clock::now() < until) {
      pump_devices();
      size_t waiting = 0;
      {
        std::lock_guard lock(stats_.mu);
        for (auto& s : slots_) waiting += s->sent.size();
      }
      if (waiting == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  // The newest view among the nodes that answer, and which answer.
  json node_info(std::vector<bool>& up) {
    json best = json::object();
    up.assign(o_.nodes.size(), false);
    for (size_t i = 0; i < o_.nodes.size(); ++i) {
      NodeClient client(o_.nodes[i]);
      auto r = client.get("/v1/node");
      if (!r.ok() || !r->ok()) continue;
      json j = json::parse(r->body, nullptr, false);
      if (!j.is_object()) continue;
      up[i] = true;
      if (j.value("height", uint64_t{0}) >= best.value("height", uint64_t{0})) best = j;
    }
    return best;
  }

  void summary(double elapsed_s, bool final) {
    std::vector<bool> up;
    const json node = node_info(up);
    size_t online = 0, pending = 0;
    for (auto& s : slots_) {
      online += s->online && custos_device_connected(s->dev) ? 1 : 0;
      pending += custos_device_pending(s->dev);
    }
    std::lock_guard lock(stats_.mu);
    size_t unanswered = 0;
    for (auto& s : slots_) unanswered += s->sent.size();
    json outage = nullptr;
    if (stats_.outage) {
      outage = {{"ward", stats_.outage->ward},
                {"devices", stats_.outage->devices},
                {"from_ms", stats_.outage->from_ms},
                {"to_ms", stats_.outage->to_ms ? json(stats_.outage->to_ms) : json(nullptr)}};
    }
    json j = {{"elapsed_s", elapsed_s},
              {"final", final},
              {"devices", slots_.size()},
              {"devices_online", online},
              {"events_published", stats_.published},
              {"events_registered", stats_.acked},
              {"already_registered", stats_.already},
              {"events_refused", stats_.events_refused},
              {"events_unanswered", unanswered},
              {"duplicate_answers", stats_.duplicate_answers},
              {"earlier_run_answers", stats_.earlier_run_answers},
              {"fault_messages", stats_.fault_messages},
              {"events_per_s",
               static_cast<double>(stats_.acked + stats_.already) / std::max(elapsed_s, 1e-9)},
              {"queued_on_devices", pending},
              {"clinician_statements", stats_.clinician_ok},
              {"orders", stats_.steps},
              {"nodes_up", up},
              {"blocks", node.value("height", uint64_t{0})},
              {"log_size", node.value("log_size", uint64_t{0})},
              {"time_to_receipt_p50_ms", stats_.percentile(0.5)},
              {"time_to_receipt_p99_ms", stats_.percentile(0.99)},
              {"refused", stats_.refused},
              {"flags", stats_.flags},
              {"faults", stats_.faults},
              {"ward_outage", outage}};
    if (o_.json) {
      std::printf("%s\n", j.dump().c_str());
      std::fflush(stdout);
      return;
    }
    panel(j, final);
  }

  void panel(const json& j, bool final) {
    std::string out;
    const auto line = [&](const std::string& s) { out += s + "\n"; };
    char buf[256];
    if (!o_.no_clear && isatty(STDOUT_FILENO) && !final) out += "\033[H\033[2J";
    std::snprintf(buf, sizeof buf, "custos simulate  %s  %.0f s   (Ctrl-C stops)",
                  h_.config().hospital.c_str(), j["elapsed_s"].get<double>());
    line(buf);
    std::snprintf(buf, sizeof buf, "  devices online   %zu / %zu   queued on devices %zu",
                  j["devices_online"].get<size_t>(), j["devices"].get<size_t>(),
                  j["queued_on_devices"].get<size_t>());
    line(buf);
    std::snprintf(buf, sizeof buf,
                  "  device events    %llu published, %llu registered (%.1f/s), %llu already "
                  "registered, %llu refused, %llu awaiting an answer",
                  (unsigned long long)j["events_published"].get<uint64_t>(),
                  (unsigned long long)j["events_registered"].get<uint64_t>(),
                  j["events_per_s"].get<double>(),
                  (unsigned long long)j["already_registered"].get<uint64_t>(),
                  (unsigned long long)j["events_refused"].get<uint64_t>(),
                  (unsigned long long)j["events_unanswered"].get<uint64_t>());
    line(buf);
    std::snprintf(buf, sizeof buf,
                  "  time to receipt  p50 %.0f ms   p99 %.0f ms (last minute; publish -> "
                  "quorum-signed entry)",
                  j["time_to_receipt_p50_ms"].get<double>(),
                  j["time_to_receipt_p99_ms"].get<double>());
    line(buf);
    std::string nodes;
    size_t n_up = 0;
    for (size_t i = 0; i < j["nodes_up"].size(); ++i) {
      const bool is_up = j["nodes_up"][i].get<bool>();
      n_up += is_up ? 1 : 0;
      nodes += "  " + std::to_string(i) + (is_up ? " up" : " DOWN");
    }
    std::snprintf(buf, sizeof buf,
                  "  ledger           %llu blocks, %llu entries;  nodes %zu of %zu:",
                  (unsigned long long)j["blocks"].get<uint64_t>(),
                  (unsigned long long)j["log_size"].get<uint64_t>(), n_up, j["nodes_up"].size());
    line(buf + nodes);
    std::string orders;
    for (const char* step : {"order", "verification", "programming"})
      orders +=
          std::string(step) + " " + std::to_string(j["orders"].value(step, uint64_t{0})) + "  ";
    line("  infusion chain   " + orders + "completed " + std::to_string(completed()));
    const auto counts = [&](const char* title, const json& m) {
      if (m.empty()) return line(std::string("  ") + title + " none");
      std::string s;
      for (const auto& [k, v] : m.items()) s += k + " " + std::to_string(v.get<uint64_t>()) + ", ";
      line(std::string("  ") + title + " " + s.substr(0, s.size() - 2));
    };
    counts("refused          ", j["refused"]);
    counts("flags raised     ", j["flags"]);
    if (!j["faults"].empty()) {
      line("  faults injected");
      for (const auto& [k, v] : j["faults"].items()) {
        const auto n = v.get<uint64_t>();
        line("    " + k + (n > 1 ? " (" + std::to_string(n) + ")" : ""));
      }
    }
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
  }

  size_t completed() const { return stats_.completed_orders.size(); }

 public:
  // An infusion worth a report: the newest completed, else the newest programmed.
  std::optional<std::string> order_to_report() {
    std::lock_guard lock(stats_.mu);
    if (!stats_.completed_orders.empty()) return stats_.completed_orders.back();
    if (!stats_.programmed_orders.empty()) return stats_.programmed_orders.back();
    return std::nullopt;
  }

 private:
  const SimulateOptions& o_;
  hospital::Hospital& h_;
  const SimWorld& w_;
  gateway::BrokerEndpoint broker_;
  Stats stats_;
  std::vector<std::unique_ptr<DeviceSlot>> slots_;
  uint64_t raw_sequence_ = 0;  // fault thread only
  FaultThread faults_;         // last: stopped before what its tasks use
};

Result<hospital::Config> hospital_config(const SimulateOptions& o) {
  hospital::Config c;
  c.wards = split_csv(o.wards);
  if (c.wards.empty() || c.wards.size() > 16)
    return error(ErrorCode::kInvalidArgument, "--wards: 1 to 16 ward names");
  for (const auto& w : c.wards) {
    for (char ch : w) {
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-')
        return error(ErrorCode::kInvalidArgument, "--wards: '" + w + "' may hold only a-z 0-9 -");
    }
  }
  if (o.beds == 0 || o.beds > 64) return error(ErrorCode::kInvalidArgument, "--beds: 1 to 64");
  if (o.status_interval_ms < 100)
    return error(ErrorCode::kInvalidArgument, "--status-interval-ms: at least 100");
  c.beds_per_ward = o.beds;
  c.status_interval_ms = o.status_interval_ms;
  c.seed = o.seed;
  // Order ids carry the start time (base 36) so a second run on the same
  // ledger never reuses one.
  std::string run;
  for (uint64_t t = wall_ms() / 1000; t > 0; t /= 36)
    run.insert(run.begin(), "0123456789abcdefghijklmnopqrstuvwxyz"[t % 36]);
  c.run = run;
  if (!(o.summary_interval_s >= 0.1))
    return error(ErrorCode::kInvalidArgument, "--summary-interval-s: at least 0.1");
  if (!(o.speed >= 0.1 && o.speed <= 100))
    return error(ErrorCode::kInvalidArgument, "--speed: 0.1 to 100");
  if (o.outage_s == 0 || o.outage_s > 3600)
    return error(ErrorCode::kInvalidArgument, "--outage-s: 1 to 3600");
  c = hospital::at_speed(c, o.speed);
  c.fault_at_ms = o.fault_at_s * 1000;
  c.ward_outage_ms = o.outage_s * 1000;
  std::string unknown;
  auto faults = hospital::faults_from_names(o.faults, &unknown);
  if (!faults) {
    std::string all;
    for (const auto& n : hospital::all_fault_names()) all += " " + n;
    return error(ErrorCode::kInvalidArgument,
                 "--faults: unknown fault '" + unknown + "' (all," + all + ")");
  }
  c.faults = *faults;
  return c;
}

Status simulate(const SimulateOptions& o) {
  CUSTOS_ASSIGN_OR_RETURN(hospital::Config config, hospital_config(o));
  CUSTOS_ASSIGN_OR_RETURN(gateway::BrokerEndpoint broker, gateway::read_broker_json(o.broker_dir));
  hospital::Hospital h(config);
  std::fprintf(stderr, "provisioning %zu devices of %s (once; found again on later runs)\n",
               h.devices().size(), config.hospital.c_str());
  CUSTOS_ASSIGN_OR_RETURN(SimWorld world, provision(o, h));
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  mosquitto_lib_init();
  Simulation sim(o, h, world, broker);
  Status s = sim.run();
  mosquitto_lib_cleanup();
  if (!s.ok()) return s;
  if (!o.json) {
    auto order = sim.order_to_report();
    std::printf("\nWhere to look next:\n");
    std::printf(
        "  curl -s %s/v1/entries?flag=firmware-under-advisory   # events from pumps under %s\n",
        o.nodes.front().c_str(), world.advisory_id.c_str());
    std::printf("  custos advisory exposure --node %s %s                  # which devices, where\n",
                o.nodes.front().c_str(), world.advisory_id.c_str());
    if (order)
      std::printf("  custos report --node %s %s   # an infusion, step by step, with receipts\n",
                  o.nodes.front().c_str(), order->c_str());
  }
  return Status();
}

}  // namespace

void add_simulate_command(CLI::App& app) {
  auto o = std::make_shared<SimulateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "simulate",
      "Run a simulated hospital: wards, beds, pumps and monitors as MQTT devices, "
      "and the infusion chain");
  cmd->add_option("--node", o->nodes, "Node URL (repeat for failover)")->capture_default_str();
  cmd->add_option("--admin-key", o->admin_key, "Consortium admin private key PEM")->required();
  cmd->add_option("--broker-dir", o->broker_dir, "Broker directory (custos broker init)")
      ->required();
  cmd->add_option("--dir", o->dir, "Where the simulation keeps keys, certificates, device state")
      ->capture_default_str();
  cmd->add_option("--wards", o->wards, "Comma-separated ward names")->capture_default_str();
  cmd->add_option("--beds", o->beds, "Beds per ward (a pump and a monitor each)")
      ->capture_default_str();
  cmd->add_option("--status-interval-ms", o->status_interval_ms, "Each device's status report")
      ->capture_default_str();
  cmd->add_option("--duration-s", o->duration_s, "Stop after this long (0: at Ctrl-C)")
      ->capture_default_str();
  cmd->add_option("--faults", o->faults,
                  "Inject: all or replay,tamper,cloned-key,rogue-firmware,clock-skew,"
                  "soft-limit-override,ward-outage");
  cmd->add_option("--fault-at-s", o->fault_at_s, "When to inject them")->capture_default_str();
  cmd->add_option("--outage-s", o->outage_s, "How long the ward-outage fault lasts")
      ->capture_default_str();
  cmd->add_option("--speed", o->speed,
                  "Play the wards this many times faster (idle times, infusions, clinicians' "
                  "steps; not status reports or faults)")
      ->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed of the hospital model")->capture_default_str();
  cmd->add_option("--summary-interval-s", o->summary_interval_s, "How often to print the summary")
      ->capture_default_str();
  cmd->add_flag("--json", o->json, "One JSON summary line per interval");
  cmd->add_flag("--no-clear", o->no_clear, "Do not redraw the summary in place");
  cmd->callback([o] {
    if (Status s = simulate(*o); !s.ok()) exit_status() = fail(s);
  });
}

}  // namespace custos::cli
