// Serves a Router over HTTP/1.1 (cpp-httplib). Bounded: worker threads,
// accepted-but-waiting connections, body size, read/write timeouts (slow
// clients are cut off); see core/limits.h.
#pragma once

#include <memory>
#include <string>

#include "api/router.h"

namespace custos::api {

class Server {
 public:
  Server(node::Node& node);
  ~Server();
  // Binds to host:port (port 0 picks a free one). kIo when it cannot bind.
  Status bind(const std::string& host, int port);
  int port() const;
  // Serves until stop() is called from another thread or a signal handler.
  void serve();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace custos::api
