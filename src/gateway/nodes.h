// Talking to the consortium's nodes over HTTP (docs/api.md) with failover:
// NodeSet is shared by every thread and remembers which nodes failed
// recently; each thread owns a NodeClient (httplib clients are not shared
// between threads). A request goes to the first node not failed within
// limits::kNodeAvoidMs, moving to the next on a transport error, 5xx or 503.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "gateway/metrics.h"

namespace httplib {
class Client;
}

namespace custos::gateway {

struct NodeReply {
  int status = 0;
  std::string content_type;
  std::string body;
  std::string node;  // URL of the node that answered
};

class NodeSet {
 public:
  NodeSet(std::vector<std::string> urls, Metrics& metrics);
  const std::vector<std::string>& urls() const { return urls_; }
  // Node indexes in the order to try them now.
  std::vector<size_t> order() const;
  void failed(size_t index);
  void succeeded(size_t index);
  Metrics& metrics() { return metrics_; }

 private:
  std::vector<std::string> urls_;
  std::unique_ptr<std::atomic<int64_t>[]> avoid_until_ms_;
  std::atomic<size_t> preferred_{0};
  Metrics& metrics_;
};

class NodeClient {
 public:
  explicit NodeClient(NodeSet& nodes);
  ~NodeClient();
  NodeClient(const NodeClient&) = delete;
  NodeClient& operator=(const NodeClient&) = delete;

  // The first answer that is not a transport error, 5xx, or 503; kUnavailable
  // when every node failed (the message names each node's failure).
  Result<NodeReply> get(const std::string& path, const std::string& accept = "application/json");
  Result<NodeReply> post(const std::string& path, const std::string& body,
                         const std::string& content_type);

 private:
  template <typename Call>
  Result<NodeReply> with_failover(Call call);
  httplib::Client& client(size_t index);

  NodeSet& nodes_;
  std::map<size_t, std::unique_ptr<httplib::Client>> clients_;
};

int64_t now_ms_wall();
int64_t now_ms_steady();

}  // namespace custos::gateway
