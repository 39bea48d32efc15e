#include "gateway/gateway.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "codec/cbor.h"
#include "crypto/hash.h"
#include "gateway/check.h"
#include "gateway/key_cache.h"
#include "gateway/nodes.h"
#include "gateway/spool.h"

namespace custos::gateway {

namespace {

using Json = nlohmann::json;

constexpr size_t kReaderBatchMax = 1024;  // spool records read per turn
// Synced records handed from the ingest thread to the reader in memory
// (parsed already), and at most a quarter of the spool's message limit;
// past this the reader reads them from the spool.
constexpr size_t kHandoffRecordsMax = 2048;
constexpr int kReceiptTries = 5;  // a receipt is normally ready at once
constexpr int kIdleWaitMs = 200;

Result<std::pair<std::string, int>> split_host_port(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return error(ErrorCode::kInvalidArgument, "--metrics-listen wants HOST:PORT");
  }
  const int port = std::atoi(listen.c_str() + colon + 1);
  if (port < 0 || port > 65535) return error(ErrorCode::kInvalidArgument, "bad port in " + listen);
  return std::make_pair(listen.substr(0, colon), port);
}

std::string hex_or_empty(const Bytes& b) {
  return b.empty() ? std::string() : to_hex(b);
}

// Interruptible sleep for the worker threads.
class Stopper {
 public:
  void stop() {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
    cv_.notify_all();
  }
  bool stopped() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stopped_;
  }
  // False when stopped.
  bool sleep_ms(int ms) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stopped_; });
    return !stopped_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
};

int next_backoff(int ms) {
  return std::min(ms * 2, limits::kNodeRetryMsMax);
}

}  // namespace

Status validate(const GatewayOptions& o) {
  auto bad = [](const std::string& what) { return error(ErrorCode::kInvalidArgument, what); };
  if (o.nodes.empty()) return bad("--node: at least one node URL");
  if (o.nodes.size() > limits::kNodesMax) {
    return bad("--node: at most " + std::to_string(limits::kNodesMax) + " nodes");
  }
  if (o.spool_dir.empty()) return bad("--spool-dir is required");
  if (o.spool_messages_max < 16) return bad("--spool-max-messages: at least 16");
  if (o.spool_bytes_max < (1u << 20)) return bad("--spool-max-bytes: at least 1 MiB");
  if (o.batch_statements_max < 1 || o.batch_statements_max > limits::kBatchStatementsMax) {
    return bad("--batch-max: 1 to " + std::to_string(limits::kBatchStatementsMax));
  }
  if (o.batch_bytes_max < limits::kMessageBytesMax || o.batch_bytes_max > limits::kBatchBytesMax) {
    return bad("--batch-bytes: " + std::to_string(limits::kMessageBytesMax) + " to " +
               std::to_string(limits::kBatchBytesMax));
  }
  if (o.batch_wait_ms < 0 || o.batch_wait_ms > 10000) return bad("--batch-wait-ms: 0 to 10000");
  if (o.lanes < 1 || o.lanes > limits::kLanesMax) {
    return bad("--lanes: 1 to " + std::to_string(limits::kLanesMax));
  }
  if (o.key_cache_entries < 1) return bad("--key-cache: at least 1");
  if (o.key_cache_ttl_ms < 0) return bad("--key-ttl-ms: not negative");
  return Status();
}

// A statement checked and on its way to a node.
// A spooled statement on its way to a node: parsed, not yet checked
// against its key (its lane does that).
struct Work {
  SpoolRecord record;
  DeviceTopic topic;
  uint64_t sequence = 0;
  std::shared_ptr<const Prechecked> checked;
};

struct Gateway::Impl {
  GatewayOptions options;
  Metrics metrics;
  std::unique_ptr<Spool> spool;
  std::unique_ptr<NodeSet> nodes;
  std::unique_ptr<BrokerLink> broker;
  Stopper stopper;

  // A spooled record with its precheck, as the ingest thread made it.
  struct Parsed {
    SpoolRecord record;
    Prechecked checked;
  };

  // Ingest -> reader: records up to synced_seq are durable. The ingest
  // thread also hands them over parsed (`handoff`, in seq order, bounded),
  // so the reader neither reads them back nor parses them again; whatever
  // is not handed over (a full hand-off, records from an earlier run) the
  // reader reads from the spool.
  std::mutex synced_mu;
  std::condition_variable synced_cv;
  uint64_t synced_seq = 0;
  std::deque<Parsed> handoff;
  uint64_t appended_seq = 0;   // loop thread only
  std::vector<Parsed> staged;  // loop thread only: appended, not yet synced
  Status ingest_failure;       // loop thread only

  struct Lane {
    std::mutex mu;
    std::condition_variable cv;  // items arrived / room freed
    std::deque<Work> queue;
    std::thread thread;
    std::atomic<size_t> key_cache_size{0};
  };
  std::vector<std::unique_ptr<Lane>> lanes;
  std::thread reader;
  std::unique_ptr<httplib::Server> http;
  std::thread http_thread;
  std::atomic<int> http_port{0};

  // --- answers ---
  void send_error(const DeviceTopic& topic, const Refusal& r, const Bytes& correlation,
                  const std::string& id_hex) {
    metrics.refuse(r.reason);
    spdlog::debug("refused {} from {}: {}", reason_name(r.reason), topic.device_id, r.detail);
    Json doc = {{"type", std::string("urn:custos:problem:") + reason_name(r.reason)},
                {"reason", reason_name(r.reason)},
                {"detail", r.detail.substr(0, limits::kProblemDetailBytesMax)},
                {"correlation", hex_or_empty(correlation)}};
    if (!id_hex.empty()) doc["id"] = id_hex;
    if (broker->send(OutMessage{topic.with_kind(TopicKind::kError), doc.dump(), correlation})) {
      metrics.errors_published++;
    }
  }

  void send_ack(const Work& w, Json result, NodeClient& client) {
    if (w.record.response_topic.empty()) return;
    Json doc = {{"id", to_hex(w.record.id)},
                {"index", result.value("index", uint64_t{0})},
                {"height", result.value("height", uint64_t{0})},
                {"status", result.value("status", std::string("registered"))},
                {"sequence", w.sequence},
                {"correlation", hex_or_empty(w.record.correlation)}};
    if (result.contains("sequence_gap")) doc["sequence_gap"] = result["sequence_gap"];
    // Accepted but noteworthy (docs/domain.md): the device and its operators
    // should hear it, e.g. that it runs firmware under an advisory.
    if (result.contains("flags")) doc["flags"] = result["flags"];
    if (w.record.want_receipt) {
      for (int i = 0; i < kReceiptTries; ++i) {
        auto r = client.get("/v1/entries/" + to_hex(w.record.id) + "/receipt", "application/cbor");
        if (r.ok() && r->status == 200) {
          doc["receipt"] = base64_encode(as_view(r->body));
          break;
        }
        if (!stopper.sleep_ms(50 << i)) break;
      }
    }
    if (broker->send(OutMessage{w.record.response_topic, doc.dump(), w.record.correlation})) {
      metrics.acks_published++;
    }
  }

  void finish(const SpoolRecord& record) {
    if (Status s = spool->remove(record); !s.ok()) {
      spdlog::error("spool remove: {}", s.to_string());
    }
  }

  void refuse_spooled(const Work& w, const Refusal& r) {
    send_error(w.topic, r, w.record.correlation, to_hex(w.record.id));
    finish(w.record);
  }

  void registered(const Work& w, const Json& result, NodeClient& client) {
    metrics.registered++;
    const int64_t now = now_ms_wall();
    int64_t from = static_cast<int64_t>(w.record.received_ms);
    // The device's clock if it said when it published and looks sane.
    if (w.record.sent_ms > 0 && static_cast<int64_t>(w.record.sent_ms) <= now &&
        now - static_cast<int64_t>(w.record.sent_ms) < 24 * 3600 * 1000LL) {
      from = static_cast<int64_t>(w.record.sent_ms);
    }
    metrics.publish_to_registered_s.observe(static_cast<double>(now - from) / 1000.0);
    send_ack(w, result, client);
    finish(w.record);
  }

  // --- ingest (broker loop thread) ---
  void on_message(const InMessage& m) {
    metrics.received++;
    PrecheckResult r = precheck(m.topic, m.payload);
    if (auto* refusal = std::get_if<Refusal>(&r)) {
      auto topic = parse_device_topic(m.topic);
      if (!topic.ok() || refusal->reason == Reason::kBadTopic) {
        metrics.refuse(refusal->reason);  // nowhere to answer
        spdlog::debug("refused message on '{}': {}", m.topic.substr(0, 128), refusal->detail);
        return;
      }
      send_error(*topic, *refusal, m.correlation, std::string());
      return;
    }
    if (auto* offline = std::get_if<DeviceOffline>(&r)) {
      metrics.devices_offline++;
      spdlog::info("device {} went offline (its will, published by the broker)",
                   offline->topic.device_id);
      return;
    }
    auto& checked = std::get<Prechecked>(r);
    SpoolRecord rec;
    rec.topic = m.topic;
    rec.statement.assign(m.payload.begin(), m.payload.end());
    rec.id = crypto::sha256(m.payload);
    // Answers go to the device's own ack topic only, whatever it asked for:
    // the gateway never publishes where a device points it.
    if (!m.response_topic.empty()) rec.response_topic = checked.topic.with_kind(TopicKind::kAck);
    rec.correlation = m.correlation;
    rec.want_receipt = m.want_receipt;
    rec.received_ms = static_cast<uint64_t>(now_ms_wall());
    rec.sent_ms = m.sent_ms;
    auto added = spool->append(rec);
    if (!added.ok()) {
      if (ingest_failure.ok()) ingest_failure = added.status();
      return;
    }
    switch (*added) {
      case Spool::Append::kAdded:
        metrics.spooled++;
        appended_seq = rec.seq;
        staged.push_back(Parsed{std::move(rec), std::move(checked)});
        break;
      case Spool::Append::kDuplicate:
        metrics.duplicates++;
        break;
      case Spool::Append::kFull:
        // Not kept, so its queued PUBACK must not leave: the group's
        // connection is dropped (before_write) and the broker redelivers.
        overflow = true;
        break;
    }
  }

  bool overflow = false;  // loop thread only: a message of this group was not kept

  Status before_write() {
    if (!ingest_failure.ok()) return ingest_failure;
    const auto t0 = std::chrono::steady_clock::now();
    CUSTOS_RETURN_IF_ERROR(spool->sync());
    if (overflow) {
      overflow = false;
      metrics.spool_overflows++;
      publish_synced();
      return error(ErrorCode::kUnavailable, "spool full: dropping the connection unacknowledged");
    }
    metrics.spool_syncs++;
    metrics.spool_sync_s.observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    publish_synced();
    return Status();
  }

  size_t handoff_max() const {
    return std::clamp<size_t>(options.spool_messages_max / 4, 1, kHandoffRecordsMax);
  }

  void publish_synced() {
    std::lock_guard<std::mutex> lock(synced_mu);
    synced_seq = appended_seq;
    for (Parsed& p : staged) {
      if (handoff.size() >= handoff_max()) break;  // the reader reads the rest
      handoff.push_back(std::move(p));
    }
    staged.clear();
    synced_cv.notify_all();
  }

  bool paused = false;  // loop thread only
  bool should_pause() {
    const double fill = spool->fill();
    if (!paused && fill >= limits::kSpoolPauseFraction) paused = true;
    if (paused && fill <= limits::kSpoolResumeFraction) paused = false;
    return paused;
  }

  // --- reader thread: synced spool records, in order, to their lanes ---
  void read_loop() {
    uint64_t cursor = 1;  // next seq to dispatch; each is dispatched once
    while (!stopper.stopped()) {
      uint64_t upto = 0;
      std::deque<Parsed> handed;
      {
        std::unique_lock<std::mutex> lock(synced_mu);
        synced_cv.wait_for(lock, std::chrono::milliseconds(kIdleWaitMs),
                           [&] { return synced_seq >= cursor || stopper.stopped(); });
        upto = synced_seq;
        handed.swap(handoff);
      }
      for (Parsed& p : handed) {
        if (p.record.seq < cursor) continue;  // read from the spool already
        if (p.record.seq > cursor && !read_spool(cursor, p.record.seq - 1)) return;
        cursor = p.record.seq + 1;
        if (!dispatch_checked(std::move(p.record), std::move(p.checked))) return;
      }
      if (cursor <= upto && !read_spool(cursor, upto)) return;
    }
  }

  // Dispatches the spooled records from `cursor` to `last` (synced, not
  // handed over) and moves the cursor past them. False when stopping.
  bool read_spool(uint64_t& cursor, uint64_t last) {
    while (cursor <= last && !stopper.stopped()) {
      auto records = spool->read_from(cursor, kReaderBatchMax);
      if (!records.ok()) {
        spdlog::critical("{}", records.status().to_string());
        fail(records.status());
        return false;
      }
      const bool more = records->size() == kReaderBatchMax;
      for (SpoolRecord& rec : *records) {
        if (rec.seq > last) break;  // handed over, or not yet synced
        cursor = rec.seq + 1;
        metrics.spool_reads++;
        if (!dispatch(std::move(rec))) return false;
      }
      if (!more) cursor = std::max(cursor, last + 1);
    }
    return !stopper.stopped();
  }

  // Parses a record read back from the spool and dispatches it.
  bool dispatch(SpoolRecord rec) {
    PrecheckResult pre = precheck(rec.topic, rec.statement);
    auto* checked = std::get_if<Prechecked>(&pre);
    if (!checked) {  // spooled by another version with other rules
      auto topic = parse_device_topic(rec.topic);
      if (auto* r = std::get_if<Refusal>(&pre); r && topic.ok()) {
        send_error(*topic, *r, rec.correlation, to_hex(rec.id));
      }
      finish(rec);
      return true;
    }
    return dispatch_checked(std::move(rec), std::move(*checked));
  }

  // Queues a record on its device's lane (by kid, so one device's
  // statements stay in order). False when stopping.
  bool dispatch_checked(SpoolRecord rec, Prechecked checked) {
    const Hash256 kid = checked.statement.header.kid;
    const uint64_t sequence = checked.statement.header.sequence;
    DeviceTopic topic = checked.topic;
    Work w{std::move(rec), std::move(topic), sequence,
           std::make_shared<const Prechecked>(std::move(checked))};
    Lane& lane = *lanes[Hash256Hash{}(kid) % lanes.size()];
    std::unique_lock<std::mutex> lock(lane.mu);
    lane.cv.wait(lock,
                 [&] { return lane.queue.size() < limits::kLaneQueueMax || stopper.stopped(); });
    if (stopper.stopped()) return false;
    lane.queue.push_back(std::move(w));
    lane.cv.notify_all();
    return true;
  }

  enum class Checked { kPass, kAnswered, kStop };

  // The checks that need the device's key, on the lane's thread (so lanes
  // verify signatures in parallel). kAnswered: refused, or found on the
  // ledger already, and answered.
  Checked check_with_key(Work& w, NodeClient& client, KeyCache& keys) {
    const Prechecked& checked = *w.checked;
    const Hash256 kid = checked.statement.header.kid;
    int backoff = limits::kNodeRetryMsMin;
    for (;;) {
      auto key = keys.get(kid);
      if (!key.ok()) {
        spdlog::warn("waiting for a node to look up key {}: {}", to_hex(kid).substr(0, 16),
                     key.status().message());
        if (!stopper.sleep_ms(backoff)) return Checked::kStop;
        backoff = next_backoff(backoff);
        continue;
      }
      if (!*key) {
        refuse_spooled(w, Refusal{Reason::kUnknownKey,
                                  "key " + to_hex(kid) + " is not registered on the ledger"});
        return Checked::kAnswered;
      }
      std::optional<Refusal> refusal = gateway::check_with_key(checked, **key, keys.last_seen(kid));
      if (refusal && refusal->reason == Reason::kReplay) {
        // The same entry may be registered already (a redelivery after a
        // crash): then it is answered, not refused.
        auto entry = client.get("/v1/entries/" + to_hex(w.record.id));
        if (!entry.ok()) {
          if (!stopper.sleep_ms(backoff)) return Checked::kStop;
          backoff = next_backoff(backoff);
          continue;
        }
        if (entry->status == 200) {
          Json e = Json::parse(entry->body, nullptr, false);
          if (e.is_object()) e["status"] = "already-registered";
          registered(w, e.is_object() ? e : Json::object(), client);
          return Checked::kAnswered;
        }
      }
      if (refusal) {
        refuse_spooled(w, *refusal);
        return Checked::kAnswered;
      }
      // Only statements that verified move the replay floor.
      keys.saw(kid, w.sequence);
      return Checked::kPass;
    }
  }

  // --- lanes ---
  std::vector<Work> take_batch(Lane& lane) {
    std::vector<Work> batch;
    std::unique_lock<std::mutex> lock(lane.mu);
    lane.cv.wait_for(lock, std::chrono::milliseconds(kIdleWaitMs),
                     [&] { return !lane.queue.empty() || stopper.stopped(); });
    if (lane.queue.empty()) return batch;
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(options.batch_wait_ms);
    size_t bytes = 0;
    for (;;) {
      while (!lane.queue.empty() && batch.size() < options.batch_statements_max &&
             bytes + lane.queue.front().record.statement.size() <= options.batch_bytes_max) {
        bytes += lane.queue.front().record.statement.size();
        batch.push_back(std::move(lane.queue.front()));
        lane.queue.pop_front();
      }
      const bool full = batch.size() >= options.batch_statements_max ||
                        (!lane.queue.empty() && bytes + lane.queue.front().record.statement.size() >
                                                    options.batch_bytes_max);
      if (full || stopper.stopped()) break;
      if (!lane.cv.wait_until(lock, deadline, [&] { return !lane.queue.empty(); })) break;
    }
    lane.cv.notify_all();  // room for the reader
    return batch;
  }

  // Sends until every statement has an answer other than "unavailable"
  // (false when stopping: the rest stays in the spool for the next run).
  bool submit(std::vector<Work> batch, NodeClient& client) {
    int backoff = limits::kNodeRetryMsMin;
    while (!batch.empty()) {
      cbor::Array items;
      for (const Work& w : batch) items.push_back(cbor::Value::bytes(ByteView(w.record.statement)));
      const Bytes body = cbor::encode(cbor::Value::array(std::move(items)));
      metrics.batches++;
      metrics.batch_statements.observe(static_cast<double>(batch.size()));
      auto reply = client.post("/v1/entries/batch", std::string(body.begin(), body.end()),
                               "application/cbor");
      if (!reply.ok() || reply->status != 200) {
        spdlog::warn("batch of {} not taken: {}", batch.size(),
                     reply.ok() ? "HTTP " + std::to_string(reply->status) + " " + reply->body
                                : reply.status().message());
        if (!stopper.sleep_ms(backoff)) return false;
        backoff = next_backoff(backoff);
        continue;
      }
      Json doc = Json::parse(reply->body, nullptr, false);
      if (!doc.is_object() || !doc["results"].is_array() || doc["results"].size() != batch.size()) {
        spdlog::error("node {} answered a batch with an unexpected body", reply->node);
        if (!stopper.sleep_ms(backoff)) return false;
        backoff = next_backoff(backoff);
        continue;
      }
      std::vector<Work> retry;
      for (size_t i = 0; i < batch.size(); ++i) {
        const Json& res = doc["results"][i];
        const std::string status = res.value("status", "");
        if (status == "registered" || status == "already-registered") {
          registered(batch[i], res, client);
          continue;
        }
        const Json problem = res.value("problem", Json::object());
        const std::string type = problem.value("type", "");
        if (type == "urn:custos:problem:unavailable" || type.empty()) {
          retry.push_back(std::move(batch[i]));
          continue;
        }
        refuse_spooled(batch[i], Refusal{reason_from_problem_type(type),
                                         problem.value("detail", std::string("refused"))});
      }
      batch = std::move(retry);
      if (!batch.empty() && !stopper.sleep_ms(backoff)) return false;
    }
    return true;
  }

  void lane_loop(Lane& lane) {
    NodeClient client(*nodes);
    // Each device maps to one lane, so each key is cached by one lane only.
    const size_t per_lane = std::max<size_t>(1, options.key_cache_entries / lanes.size());
    KeyCache keys({per_lane, options.key_cache_ttl_ms}, client, metrics);
    while (!stopper.stopped()) {
      std::vector<Work> taken = take_batch(lane);
      std::vector<Work> batch;
      for (Work& w : taken) {
        const Checked c = check_with_key(w, client, keys);
        if (c == Checked::kStop) return;
        if (c == Checked::kPass) batch.push_back(std::move(w));
      }
      lane.key_cache_size = keys.size();
      if (!batch.empty() && !submit(std::move(batch), client)) return;
      if (Status s = spool->flush_removals(); !s.ok()) {
        spdlog::error("spool remove: {}", s.to_string());
      }
    }
  }

  // --- metrics server ---
  Status start_http() {
    if (options.metrics_listen.empty()) return Status();
    CUSTOS_ASSIGN_OR_RETURN(auto hp, split_host_port(options.metrics_listen));
    http = std::make_unique<httplib::Server>();
    http->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics_text(), "text/plain; version=0.0.4");
    });
    http->Get("/status", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(status_json(), "application/json");
    });
    http->Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(status_json(), "application/json");
    });
    int port = hp.second;
    if (port == 0) {
      port = http->bind_to_any_port(hp.first);
    } else if (!http->bind_to_port(hp.first, port)) {
      port = -1;
    }
    if (port <= 0) {
      return error(ErrorCode::kUnavailable, "cannot listen on " + options.metrics_listen);
    }
    http_port = port;
    http_thread = std::thread([this] { http->listen_after_bind(); });
    return Status();
  }

  std::string metrics_text() const {
    std::string out;
    size_t keys = 0;
    for (const auto& lane : lanes) keys += lane->key_cache_size.load();
    metrics.render(out, spool->depth(), spool->bytes(), keys);
    return out;
  }

  std::string status_json() const {
    Json refused = Json::object();
    for (int i = 0; i < kReasonCount; ++i) {
      if (uint64_t n = metrics.refused[i].load()) refused[reason_name(static_cast<Reason>(i))] = n;
    }
    Json doc = {{"broker_connected", metrics.broker_connected.load() == 1},
                {"ingest_paused", metrics.ingest_paused.load() == 1},
                {"received", metrics.received.load()},
                {"spooled", metrics.spooled.load()},
                {"duplicates", metrics.duplicates.load()},
                {"spool_reads", metrics.spool_reads.load()},
                {"registered", metrics.registered.load()},
                {"refused", metrics.refused_total()},
                {"refused_by_reason", refused},
                {"devices_offline", metrics.devices_offline.load()},
                {"spool_depth", spool->depth()},
                {"spool_bytes", spool->bytes()},
                {"batches", metrics.batches.load()},
                {"node_failovers", metrics.node_failovers.load()},
                {"node_errors", metrics.node_errors.load()},
                {"latency_p50_s", metrics.publish_to_registered_s.quantile(0.5)},
                {"latency_p99_s", metrics.publish_to_registered_s.quantile(0.99)}};
    return doc.dump();
  }

  void join_all();

  std::mutex fail_mu;
  Status failure;
  void fail(const Status& s) {
    {
      std::lock_guard<std::mutex> lock(fail_mu);
      if (failure.ok()) failure = s;
    }
    broker->stop();
  }
};

Gateway::Gateway(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Gateway::~Gateway() {
  stop();
  impl_->join_all();
}

Result<std::unique_ptr<Gateway>> Gateway::create(GatewayOptions options) {
  CUSTOS_RETURN_IF_ERROR(validate(options));
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  Impl* p = impl.get();
  CUSTOS_ASSIGN_OR_RETURN(p->spool,
                          Spool::open({p->options.spool_dir, p->options.spool_messages_max,
                                       p->options.spool_bytes_max}));
  p->nodes = std::make_unique<NodeSet>(p->options.nodes, p->metrics);
  // Made here, not in run(): stop() walks them from other threads.
  for (int i = 0; i < p->options.lanes; ++i) p->lanes.push_back(std::make_unique<Impl::Lane>());
  BrokerLink::Hooks hooks;
  hooks.on_message = [p](const InMessage& m) { p->on_message(m); };
  hooks.before_write = [p] { return p->before_write(); };
  hooks.should_pause = [p] { return p->should_pause(); };
  p->broker = std::make_unique<BrokerLink>(p->options.broker, std::move(hooks), p->metrics);
  return std::unique_ptr<Gateway>(new Gateway(std::move(impl)));
}

Status Gateway::run() {
  Impl& g = *impl_;
  if (g.spool->depth() > 0) {
    spdlog::info("spool holds {} messages from before: sending them first", g.spool->depth());
  }
  // Everything spooled by an earlier run is durable already.
  g.appended_seq = g.spool->next_seq() - 1;
  g.synced_seq = g.appended_seq;
  CUSTOS_RETURN_IF_ERROR(g.start_http());
  for (auto& lane : g.lanes) {
    Impl::Lane* l = lane.get();
    l->thread = std::thread([&g, l] { g.lane_loop(*l); });
  }
  g.reader = std::thread([&g] { g.read_loop(); });
  Status s = g.broker->run();
  if (!s.ok()) spdlog::critical("gateway stops: {}", s.to_string());
  stop();
  g.join_all();
  std::lock_guard<std::mutex> lock(g.fail_mu);
  return s.ok() ? g.failure : s;
}

void Gateway::stop() {
  // Only signals: run() joins the threads, so stop() may come from any
  // thread (a signal waiter) at any time, more than once.
  Impl& g = *impl_;
  g.stopper.stop();
  g.broker->stop();
  {
    std::lock_guard<std::mutex> lock(g.synced_mu);
    g.synced_cv.notify_all();
  }
  for (auto& lane : g.lanes) {
    std::lock_guard<std::mutex> lock(lane->mu);
    lane->cv.notify_all();
  }
}

void Gateway::Impl::join_all() {
  for (auto& lane : lanes) {
    if (lane->thread.joinable()) lane->thread.join();
  }
  if (reader.joinable()) reader.join();
  if (http) http->stop();
  if (http_thread.joinable()) http_thread.join();
}

const Metrics& Gateway::metrics() const {
  return impl_->metrics;
}

std::string Gateway::status_json() const {
  return impl_->status_json();
}

std::string Gateway::metrics_text() const {
  return impl_->metrics_text();
}

int Gateway::metrics_port() const {
  return impl_->http_port.load();
}

}  // namespace custos::gateway
