#include "gateway/nodes.h"

#include <httplib.h>

#include "gateway/limits.h"

namespace custos::gateway {

int64_t now_ms_wall() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t now_ms_steady() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

NodeSet::NodeSet(std::vector<std::string> urls, Metrics& metrics)
    : urls_(std::move(urls)),
      avoid_until_ms_(new std::atomic<int64_t>[urls_.size()]),
      metrics_(metrics) {
  for (size_t i = 0; i < urls_.size(); ++i) avoid_until_ms_[i] = 0;
}

std::vector<size_t> NodeSet::order() const {
  const int64_t now = now_ms_steady();
  std::vector<size_t> healthy;
  std::vector<size_t> avoided;
  const size_t start = preferred_.load();
  for (size_t k = 0; k < urls_.size(); ++k) {
    const size_t i = (start + k) % urls_.size();
    (avoid_until_ms_[i].load() > now ? avoided : healthy).push_back(i);
  }
  healthy.insert(healthy.end(), avoided.begin(), avoided.end());
  return healthy;
}

void NodeSet::failed(size_t index) {
  avoid_until_ms_[index] = now_ms_steady() + limits::kNodeAvoidMs;
  metrics_.node_errors++;
}

void NodeSet::succeeded(size_t index) {
  avoid_until_ms_[index] = 0;
  preferred_ = index;
}

NodeClient::NodeClient(NodeSet& nodes) : nodes_(nodes) {}
NodeClient::~NodeClient() = default;

httplib::Client& NodeClient::client(size_t index) {
  auto& c = clients_[index];
  if (!c) {
    c = std::make_unique<httplib::Client>(nodes_.urls()[index]);
    c->set_connection_timeout(limits::kNodeConnectTimeoutMs / 1000,
                              (limits::kNodeConnectTimeoutMs % 1000) * 1000);
    c->set_read_timeout(limits::kNodeReadTimeoutMs / 1000, 0);
    c->set_write_timeout(10, 0);
    c->set_keep_alive(true);
  }
  return *c;
}

template <typename Call>
Result<NodeReply> NodeClient::with_failover(Call call) {
  std::string failures;
  bool first = true;
  for (size_t i : nodes_.order()) {
    if (!first) nodes_.metrics().node_failovers++;
    first = false;
    httplib::Result res = call(client(i));
    std::string why;
    if (!res) {
      why = httplib::to_string(res.error());
    } else if (res->status >= 500) {
      why = "HTTP " + std::to_string(res->status);
    } else {
      nodes_.succeeded(i);
      return NodeReply{res->status, res->get_header_value("Content-Type"), res->body,
                       nodes_.urls()[i]};
    }
    nodes_.failed(i);
    clients_.erase(i);  // a fresh connection next time
    failures += (failures.empty() ? "" : "; ") + nodes_.urls()[i] + ": " + why;
  }
  return error(ErrorCode::kUnavailable, "no node answered: " + failures);
}

Result<NodeReply> NodeClient::get(const std::string& path, const std::string& accept) {
  return with_failover([&](httplib::Client& c) {
    return c.Get(path, httplib::Headers{{"Accept", accept}});
  });
}

Result<NodeReply> NodeClient::post(const std::string& path, const std::string& body,
                                   const std::string& content_type) {
  return with_failover([&](httplib::Client& c) { return c.Post(path, body, content_type); });
}

}  // namespace custos::gateway
