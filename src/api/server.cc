#include "api/server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace custos::api {

namespace {

// httplib's own pool queues without bound. This one holds at most
// limits::kHttpPendingConnectionsMax accepted connections; past that the
// accept loop waits, and further clients wait in the kernel's listen backlog
// instead of in our memory.
class BoundedPool : public httplib::TaskQueue {
 public:
  BoundedPool(size_t threads, size_t queue_max) : queue_max_(queue_max) {
    for (size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
  }
  void enqueue(std::function<void()> fn) override {
    std::unique_lock lock(mu_);
    not_full_.wait(lock, [&] { return jobs_.size() < queue_max_ || shutdown_; });
    if (shutdown_) return;
    jobs_.push_back(std::move(fn));
    not_empty_.notify_one();
  }
  void shutdown() override {
    {
      std::lock_guard lock(mu_);
      shutdown_ = true;
    }
    not_empty_.notify_all();
    not_full_.notify_all();
    for (auto& t : workers_) t.join();
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mu_);
        not_empty_.wait(lock, [&] { return !jobs_.empty() || shutdown_; });
        if (jobs_.empty()) return;
        fn = std::move(jobs_.front());
        jobs_.pop_front();
        not_full_.notify_one();
      }
      fn();
    }
  }

  const size_t queue_max_;
  std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> workers_;
  bool shutdown_ = false;
};

Request to_request(const httplib::Request& req) {
  Request r;
  r.method = req.method;
  r.path = req.path;
  for (const auto& [k, v] : req.params) r.query.emplace(k, v);
  r.content_type = req.get_header_value("Content-Type");
  r.accept = req.get_header_value("Accept");
  r.body = req.body;
  r.remote = req.remote_addr;
  return r;
}

void send(const Response& from, httplib::Response& to) {
  to.status = from.status;
  for (const auto& [k, v] : from.headers) to.set_header(k, v);
  to.set_content(from.body, from.content_type);
}

}  // namespace

struct Server::Impl {
  explicit Impl(node::Node& n) : router(n) {}
  Router router;
  httplib::Server http;
  int port = 0;
};

Server::Server(node::Node& node) : impl_(std::make_unique<Impl>(node)) {
  auto& http = impl_->http;
  http.new_task_queue = [] {
    return new BoundedPool(limits::kHttpWorkerThreads, limits::kHttpPendingConnectionsMax);
  };
  http.set_payload_max_length(limits::kHttpBodyBytesMax);
  http.set_read_timeout(std::chrono::milliseconds(limits::kHttpReadTimeoutMs));
  http.set_write_timeout(std::chrono::milliseconds(limits::kHttpWriteTimeoutMs));
  http.set_keep_alive_max_count(100000);
  // Idle keep-alive connections hold a worker; a short timeout frees it and
  // bounds how long a clean shutdown waits for them.
  http.set_keep_alive_timeout(limits::kHttpKeepAliveIdleS);
  http.set_tcp_nodelay(true);
  // httplib's default sets SO_REUSEPORT, which lets a second process bind the
  // same port and silently take half of the clients (two nodes on one port
  // split the traffic between two ledgers). SO_REUSEADDR alone still allows a
  // quick restart while old connections sit in TIME_WAIT.
  http.set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  auto handler = [this](const httplib::Request& req, httplib::Response& res) {
    send(impl_->router.handle(to_request(req)), res);
  };
  for (const char* pattern : {R"(/.*)"}) {
    http.Get(pattern, handler);
    http.Post(pattern, handler);
    http.Put(pattern, handler);
    http.Delete(pattern, handler);
    http.Patch(pattern, handler);
  }
  // Errors httplib detects itself (oversized body, unparsable request) are
  // answered as problem details too.
  http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string type = res.status == 413   ? "too-large"
                       : res.status == 404 ? "not-found"
                                           : "bad-request";
    std::string detail =
        res.status == 413
            ? "request body larger than " + std::to_string(limits::kHttpBodyBytesMax) + " bytes"
            : "the request could not be processed";
    send(problem(res.status, type, detail), res);
  });
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        send(problem(500, "internal", "internal error"), res);
      });
}

Server::~Server() = default;

Status Server::bind(const std::string& host, int port) {
  if (port == 0) {
    impl_->port = impl_->http.bind_to_any_port(host);
    if (impl_->port <= 0) return error(ErrorCode::kIo, "cannot bind " + host);
    return Status();
  }
  if (!impl_->http.bind_to_port(host, port)) {
    return error(ErrorCode::kIo, "cannot bind " + host + ":" + std::to_string(port) + " (in use?)");
  }
  impl_->port = port;
  return Status();
}

int Server::port() const {
  return impl_->port;
}
void Server::serve() {
  impl_->http.listen_after_bind();
}
void Server::stop() {
  impl_->http.stop();
}

}  // namespace custos::api
