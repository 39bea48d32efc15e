// Helpers for the consortium tests (cluster_test.cc): real `custos node
// --config` processes on loopback, a TCP proxy per directed peer link that can
// cut a node off its peers, and a client load that records every
// acknowledged registration.
//
// Contract:
// - Cluster::init() runs `custos init` in a TempDir and edits the node
//   configs (shorter round timeouts; with `proxied`, every peer address goes
//   through a TcpProxy owned by the Cluster). Node i writes its output to
//   DIR/node-i/node.log; dump_logs() prints their tails for a failed test.
// - API and peer ports are one block [base, base + 2n) below the kernel's
//   ephemeral range, drawn from the test's seed and checked free by binding,
//   so tests running side by side do not collide. Proxies use ephemeral ports.
// - A Cluster SIGKILLs every node it still runs when destroyed; nodes also die
//   with the test process (PR_SET_PDEATHSIG in harness.h spawn()). Spawn from
//   the test's main thread only.
// - Nothing here throws on what a node answers: helpers return
//   AssertionResult / std::optional. Setup failures (no port, no socket)
//   throw, as in harness.h, and gtest reports them.
// - Every HTTP request opens its own connection (no keep-alive): an idle
//   keep-alive connection would delay a node's clean stop.
#pragma once

#include <poll.h>

#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>

#include "crypto/hash.h"
#include "integration/harness.h"

namespace custos::integration {

// Connections one proxy carries at once; more are refused (closed at once).
inline constexpr size_t kProxyLinksMax = 64;
// Bytes one pump thread moves per read.
inline constexpr size_t kProxyBufferBytes = 64 * 1024;
// How often the proxy's accept loop checks for shutdown.
inline constexpr int kProxyPollMs = 50;
// Acknowledgements a Load records; beyond this it stops and reports it.
inline constexpr size_t kLoadAcksMax = 200000;
// A load client's wait for one answer, and how long it then avoids that node.
inline constexpr int kLoadReadTimeoutS = 3;
inline constexpr int kLoadAvoidMs = 2000;
// Unexpected answers a Load keeps as examples (all are counted).
inline constexpr size_t kLoadExamplesMax = 20;
// Log bytes printed per node when a test fails.
inline constexpr size_t kLogTailBytes = 6000;
// Entries fetched per page when listing a whole log (the API's maximum).
inline constexpr size_t kListPageEntries = 1000;
// Pages listed at most (kListPageEntries each) before giving up.
inline constexpr size_t kListPagesMax = 1000;

using Millis = std::chrono::milliseconds;

// The seed of a test: CUSTOS_CLUSTER_SEED when set (to replay), else random.
inline uint64_t cluster_seed() {
  if (const char* s = std::getenv("CUSTOS_CLUSTER_SEED")) return std::stoull(s);
  return (static_cast<uint64_t>(std::random_device{}()) << 32) | std::random_device{}();
}

// GET on a fresh connection. `read_timeout_s` bounds a stuck (paused) node.
inline httplib::Result http_get(int port, const std::string& path,
                                const httplib::Headers& headers = {}, int read_timeout_s = 5) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(1, 0);
  c.set_read_timeout(read_timeout_s, 0);
  c.set_keep_alive(false);
  return c.Get(path, headers);
}

inline std::string tail(const std::string& text, size_t bytes) {
  return text.size() <= bytes ? text : text.substr(text.size() - bytes);
}

// ---------------------------------------------------------------------------
// TcpProxy: forwards every connection made to its port to 127.0.0.1:target.
// cut() closes all of them and refuses new ones until heal(). A connection
// is two threads (one per direction) doing blocking reads and writes; each
// proxy has at most kProxyLinksMax.
class TcpProxy {
 public:
  explicit TcpProxy(uint16_t target_port) : target_port_(target_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr = loopback(0);
    if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) ||
        ::listen(listen_fd_, 64)) {
      throw std::runtime_error("proxy: cannot listen on loopback");
    }
    socklen_t len = sizeof addr;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~TcpProxy() {
    stopping_ = true;
    acceptor_.join();
    std::lock_guard lock(mu_);
    close_all_locked();
    ::close(listen_fd_);
  }
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  uint16_t port() const { return port_; }
  // Closes every connection and refuses new ones (the dialer sees its
  // connection accepted and closed at once, as with a dead link).
  void cut() {
    std::lock_guard lock(mu_);
    cut_ = true;
    close_all_locked();
  }
  void heal() {
    std::lock_guard lock(mu_);
    cut_ = false;
  }
  // Connections refused while cut (or over kProxyLinksMax): proof that the
  // node kept trying.
  uint64_t refused() const { return refused_.load(); }
  uint64_t accepted() const { return accepted_.load(); }

 private:
  struct Link {
    int client = -1, upstream = -1;
    std::atomic<int> pumps_running{2};
    std::thread up, down;
  };

  static sockaddr_in loopback(uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    return addr;
  }

  static int connect_loopback(uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr = loopback(port);
    if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
    if (fd >= 0) ::close(fd);
    return -1;
  }

  // Copies from -> to until either side ends, then ends both, so the pump
  // of the other direction wakes up too. MSG_NOSIGNAL: a closed peer must
  // not SIGPIPE the test process.
  static void pump(Link* link, int from, int to) {
    std::vector<char> buffer(kProxyBufferBytes);
    for (;;) {
      ssize_t n = ::recv(from, buffer.data(), buffer.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      ssize_t sent = 0;
      while (sent < n) {
        ssize_t w = ::send(to, buffer.data() + sent, static_cast<size_t>(n - sent), MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        sent += w;
      }
      if (sent < n) break;
    }
    ::shutdown(from, SHUT_RDWR);
    ::shutdown(to, SHUT_RDWR);
    --link->pumps_running;
  }

  void accept_loop() {
    while (!stopping_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, kProxyPollMs) <= 0) continue;
      int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      std::lock_guard lock(mu_);
      reap_locked();
      int upstream = -1;
      if (cut_ || links_.size() >= kProxyLinksMax ||
          (upstream = connect_loopback(target_port_)) < 0) {
        if (cut_) ++refused_;
        ::close(client);
        continue;
      }
      ++accepted_;
      auto link = std::make_unique<Link>();
      link->client = client;
      link->upstream = upstream;
      Link* l = link.get();
      l->up = std::thread([l] { pump(l, l->client, l->upstream); });
      l->down = std::thread([l] { pump(l, l->upstream, l->client); });
      links_.push_back(std::move(link));
    }
  }

  static void finish(Link& l) {
    l.up.join();
    l.down.join();
    ::close(l.client);
    ::close(l.upstream);
  }

  // Joins and closes links whose both directions ended on their own.
  void reap_locked() {
    for (auto it = links_.begin(); it != links_.end();) {
      if ((*it)->pumps_running.load() == 0) {
        finish(**it);
        it = links_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void close_all_locked() {
    for (auto& l : links_) {
      ::shutdown(l->client, SHUT_RDWR);
      ::shutdown(l->upstream, SHUT_RDWR);
    }
    for (auto& l : links_) finish(*l);
    links_.clear();
  }

  const uint16_t target_port_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> refused_{0}, accepted_{0};
  std::mutex mu_;
  bool cut_ = false;
  std::vector<std::unique_ptr<Link>> links_;
  std::thread acceptor_;
};

// ---------------------------------------------------------------------------

struct ClusterOptions {
  size_t nodes = 4;
  // Shorter than the `custos init` defaults (1000 / 500 ms) so that timeouts,
  // view changes and catch-up happen within a few seconds of test time.
  uint64_t round_timeout_ms = 300;
  uint64_t idle_proposal_ms = 100;
  bool proxied = false;  // every directed peer link through a TcpProxy
};

// What /v1/node says about a node's log.
struct NodeHead {
  uint64_t log_size = 0;
  uint64_t height = 0;
  std::string root;  // hex
};

class Cluster {
 public:
  Cluster(const TempDir& tmp, ClusterOptions options, uint64_t seed)
      : dir_(tmp / "consortium"), options_(options), rng_(seed) {
    pids_.assign(options_.nodes, -1);
    paused_.assign(options_.nodes, false);
  }
  ~Cluster() {
    for (size_t i = 0; i < pids_.size(); ++i) {
      if (pids_[i] > 0) kill(i);
    }
  }
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  size_t size() const { return options_.nodes; }
  const std::string& dir() const { return dir_; }
  std::string node_dir(size_t i) const { return dir_ + "/node-" + std::to_string(i); }
  std::string config_path(size_t i) const { return node_dir(i) + "/config.json"; }
  std::string data_dir(size_t i) const { return node_dir(i) + "/data"; }
  std::string log_path(size_t i) const { return node_dir(i) + "/node.log"; }
  std::string genesis_path() const { return dir_ + "/genesis.json"; }
  int api_port(size_t i) const { return base_port_ + static_cast<int>(i); }
  int peer_port(size_t i) const { return base_port_ + static_cast<int>(size() + i); }
  bool running(size_t i) const { return pids_[i] > 0; }
  int base_port() const { return base_port_; }

  // `custos init`, then the config edits described in ClusterOptions.
  ::testing::AssertionResult init(const std::string& scratch) {
    base_port_ = pick_port_base(2 * static_cast<int>(size()));
    if (base_port_ < 0) return ::testing::AssertionFailure() << "no free block of ports";
    CommandResult r = run_custos(
        scratch, {"init", "--dir", dir_, "--nodes", std::to_string(size()), "--api-base-port",
                  std::to_string(api_port(0)), "--peer-base-port", std::to_string(peer_port(0))});
    if (r.exit_code != 0) {
      return ::testing::AssertionFailure() << "custos init: " << r.exit_code << " " << r.err;
    }
    if (options_.proxied) make_proxies();
    for (size_t i = 0; i < size(); ++i) {
      auto edited = edit_config(i);
      if (!edited) return edited;
    }
    std::printf("[cluster] %zu nodes in %s: API ports %d.., peer ports %d..%s\n", size(),
                dir_.c_str(), api_port(0), peer_port(0), options_.proxied ? " (proxied)" : "");
    std::fflush(stdout);
    return ::testing::AssertionSuccess();
  }

  crypto::PrivateKey admin_key() const {
    auto k = crypto::PrivateKey::from_pem(slurp(dir_ + "/admin/admin.key"));
    if (!k.ok()) throw std::runtime_error("admin key: " + k.status().to_string());
    return std::move(k).value();
  }

  // Starts every node, then waits for each to answer.
  ::testing::AssertionResult start_all(Millis timeout = std::chrono::seconds(30)) {
    for (size_t i = 0; i < size(); ++i) launch(i);
    for (size_t i = 0; i < size(); ++i) {
      auto ok = wait_healthy(i, timeout);
      if (!ok) return ok;
    }
    return ::testing::AssertionSuccess();
  }

  ::testing::AssertionResult start(size_t i, Millis timeout = std::chrono::seconds(30)) {
    if (running(i)) return ::testing::AssertionFailure() << "node " << i << " already runs";
    launch(i);
    return wait_healthy(i, timeout);
  }

  void launch(size_t i) {
    // CUSTOS_CLUSTER_LOG_LEVEL=debug makes the node logs tell more on replay.
    const char* level = std::getenv("CUSTOS_CLUSTER_LOG_LEVEL");
    pids_[i] = spawn({custos_binary(), "node", "--config", config_path(i), "--log-level",
                      level ? level : "info"},
                     log_path(i), log_path(i));
    paused_[i] = false;
  }

  // SIGKILL; returns the exit code (128 + 9 expected).
  int kill(size_t i) { return signal_and_wait(i, SIGKILL); }

  // SIGTERM, then waits up to `timeout`; a node that does not stop by then is
  // SIGKILLed and -1 returned, so a hung stop fails the test but not the run.
  int stop(size_t i, Millis timeout = std::chrono::seconds(15)) {
    if (!running(i)) return -1;
    if (paused_[i]) resume(i);
    ::kill(pids_[i], SIGTERM);
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pids_[i], &status, WNOHANG) == pids_[i]) {
        pids_[i] = -1;
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
      }
      std::this_thread::sleep_for(Millis(20));
    }
    kill(i);
    return -1;
  }

  void pause(size_t i) {
    ::kill(pids_[i], SIGSTOP);
    paused_[i] = true;
  }
  void resume(size_t i) {
    ::kill(pids_[i], SIGCONT);
    paused_[i] = false;
  }

  // Cuts node i off its peers (both directions of every link) / heals it.
  void cut(size_t i) {
    for_links_of(i, [](TcpProxy& p) { p.cut(); });
  }
  void heal(size_t i) {
    for_links_of(i, [](TcpProxy& p) { p.heal(); });
  }
  // Connections node i's links refused while cut.
  uint64_t refused_links(size_t i) {
    uint64_t n = 0;
    for_links_of(i, [&](TcpProxy& p) { n += p.refused(); });
    return n;
  }

  std::optional<Json> health(size_t i) const {
    auto res = http_get(api_port(i), "/healthz", {}, 2);
    if (!res) return std::nullopt;
    Json j = Json::parse(res->body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    return j;
  }

  std::optional<NodeHead> head(size_t i) const {
    auto res = http_get(api_port(i), "/v1/node", {}, 2);
    if (!res || res->status != 200) return std::nullopt;
    Json j = Json::parse(res->body, nullptr, false);
    if (j.is_discarded() || !j.contains("log_size")) return std::nullopt;
    return NodeHead{j["log_size"].get<uint64_t>(), j["height"].get<uint64_t>(),
                    j.value("root", "")};
  }

  // The leader of the current round as the first answering node sees it.
  std::optional<size_t> leader() const {
    for (size_t i = 0; i < size(); ++i) {
      if (!running(i) || paused_[i]) continue;
      auto h = health(i);
      if (h && h->contains("consensus")) return (*h)["consensus"]["leader"].get<size_t>();
    }
    return std::nullopt;
  }

  // Waits until every node in `nodes` reports the same log size (at least
  // `min_log_size`) and the same root.
  ::testing::AssertionResult wait_converged(const std::vector<size_t>& nodes, uint64_t min_log_size,
                                            Millis timeout) const {
    const auto deadline = Clock::now() + timeout;
    std::string last;
    while (Clock::now() < deadline) {
      std::set<std::pair<uint64_t, std::string>> heads;
      last.clear();
      bool all = true;
      for (size_t i : nodes) {
        auto h = head(i);
        if (!h) {
          all = false;
          last += " node-" + std::to_string(i) + ": no answer;";
          continue;
        }
        heads.insert({h->log_size, h->root});
        last += " node-" + std::to_string(i) + ": size " + std::to_string(h->log_size) +
                " height " + std::to_string(h->height) + " root " + h->root.substr(0, 16) + ";";
        all = all && h->log_size >= min_log_size;
      }
      if (all && heads.size() == 1) return ::testing::AssertionSuccess();
      std::this_thread::sleep_for(Millis(100));
    }
    return ::testing::AssertionFailure()
           << "no convergence within " << timeout.count()
           << " ms (want log size >= " << min_log_size << "):" << last;
  }

  ::testing::AssertionResult wait_log_size(size_t i, uint64_t min_log_size, Millis timeout) const {
    const auto deadline = Clock::now() + timeout;
    uint64_t seen = 0;
    while (Clock::now() < deadline) {
      if (auto h = head(i); h) {
        seen = h->log_size;
        if (seen >= min_log_size) return ::testing::AssertionSuccess();
      }
      std::this_thread::sleep_for(Millis(50));
    }
    return ::testing::AssertionFailure() << "node-" << i << " at log size " << seen << ", want "
                                         << min_log_size << " within " << timeout.count() << " ms";
  }

  // Every entry id of node i's log in index order, page by page.
  std::optional<std::vector<std::string>> entry_ids(size_t i) const {
    std::vector<std::string> ids;
    std::string cursor = "0";
    for (size_t page = 0; page < kListPagesMax; ++page) {
      auto res = http_get(api_port(i), "/v1/entries?limit=" + std::to_string(kListPageEntries) +
                                           "&cursor=" + cursor);
      if (!res || res->status != 200) return std::nullopt;
      Json doc = Json::parse(res->body, nullptr, false);
      if (doc.is_discarded() || !doc.contains("entries")) return std::nullopt;
      for (const auto& e : doc["entries"]) {
        if (e.value("index", UINT64_MAX) != ids.size()) return std::nullopt;
        ids.push_back(e.value("id", ""));
      }
      if (doc["next_cursor"].is_null()) return ids;
      cursor = doc["next_cursor"].get<std::string>();
    }
    return std::nullopt;
  }

  // Prints the end of every node's log (for a failed test).
  void dump_logs() const {
    for (size_t i = 0; i < size(); ++i) {
      std::fprintf(stderr, "[cluster] ---- end of %s ----\n%s\n", log_path(i).c_str(),
                   tail(slurp(log_path(i)), kLogTailBytes).c_str());
    }
  }

 private:
  // A block of `span` consecutive ports in [20000, 32000): below the usual
  // ephemeral range (32768+), so outgoing connections never hold them.
  int pick_port_base(int span) {
    std::uniform_int_distribution<int> base(20000, 32000 - span);
    for (int attempt = 0; attempt < 200; ++attempt) {
      const int b = base(rng_);
      bool free = true;
      for (int p = b; p < b + span && free; ++p) free = port_is_free(p);
      if (free) return b;
    }
    return -1;
  }

  static bool port_is_free(int port) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
  }

  // proxies_[from * n + to] carries node `from`'s connection to node `to`.
  void make_proxies() {
    proxies_.resize(size() * size());
    for (size_t from = 0; from < size(); ++from) {
      for (size_t to = 0; to < size(); ++to) {
        if (from == to) continue;
        proxies_[from * size() + to] =
            std::make_unique<TcpProxy>(static_cast<uint16_t>(peer_port(to)));
      }
    }
  }

  template <typename F>
  void for_links_of(size_t node, F&& f) {
    for (size_t k = 0; k < size(); ++k) {
      if (k == node || proxies_.empty()) continue;
      f(*proxies_[node * size() + k]);
      f(*proxies_[k * size() + node]);
    }
  }

  ::testing::AssertionResult edit_config(size_t i) {
    Json config = Json::parse(slurp(config_path(i)), nullptr, false);
    if (config.is_discarded() || !config.contains("peers")) {
      return ::testing::AssertionFailure() << config_path(i) << " is not a node config";
    }
    config["round_timeout_ms"] = options_.round_timeout_ms;
    config["idle_proposal_ms"] = options_.idle_proposal_ms;
    if (options_.proxied) {
      for (auto& peer : config["peers"]) {
        const size_t k = peer["index"].get<size_t>();
        peer["address"] = "127.0.0.1:" + std::to_string(proxies_[i * size() + k]->port());
      }
    }
    spit(config_path(i), config.dump(2) + "\n");
    return ::testing::AssertionSuccess();
  }

  // Healthy = /healthz answers 200 and /v1/node names node i's own key (not
  // another process that took the port).
  ::testing::AssertionResult wait_healthy(size_t i, Millis timeout) {
    auto key = crypto::PublicKey::from_pem(slurp(node_dir(i) + "/node.pub"));
    if (!key.ok()) return ::testing::AssertionFailure() << "node.pub: " << key.status().to_string();
    const std::string kid = to_hex(key->kid());
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pids_[i], &status, WNOHANG) == pids_[i]) {
        pids_[i] = -1;
        return ::testing::AssertionFailure()
               << "node-" << i << " exited during start (status " << status << "); log:\n"
               << tail(slurp(log_path(i)), kLogTailBytes);
      }
      auto res = http_get(api_port(i), "/healthz", {}, 2);
      if (res && res->status == 200) {
        auto info = http_get(api_port(i), "/v1/node", {}, 2);
        if (info && info->status == 200 &&
            Json::parse(info->body, nullptr, false).value("kid", "") == kid) {
          return ::testing::AssertionSuccess();
        }
        return ::testing::AssertionFailure()
               << "port " << api_port(i) << " is answered by another process";
      }
      std::this_thread::sleep_for(Millis(20));
    }
    return ::testing::AssertionFailure()
           << "node-" << i << " not healthy within " << timeout.count() << " ms";
  }

  int signal_and_wait(size_t i, int sig) {
    if (!running(i)) return -1;
    ::kill(pids_[i], sig);
    const int code = wait_exit(pids_[i]);
    pids_[i] = -1;
    paused_[i] = false;
    return code;
  }

  std::string dir_;
  ClusterOptions options_;
  std::mt19937_64 rng_;
  int base_port_ = -1;
  std::vector<pid_t> pids_;
  std::vector<bool> paused_;
  std::vector<std::unique_ptr<TcpProxy>> proxies_;
};

// ---------------------------------------------------------------------------

struct Ack {
  std::string id;
  uint64_t index = 0;
  Bytes statement;
  size_t node = 0;  // the node that acknowledged it
  int thread = 0;
};

// Client threads, each with its own registered key, submitting one statement
// at a time and spreading requests over the nodes (the next node for each
// request). A failed request (no answer, 503, timeout) is retried with the
// same bytes on the next node until it is acknowledged or the load stops:
// identical bytes are registered at most once, so retries are safe.
class Load {
 public:
  Load(const Cluster& cluster, uint64_t seed) : cluster_(cluster), seed_(seed) {}
  ~Load() { stop(); }
  Load(const Load&) = delete;
  Load& operator=(const Load&) = delete;

  // Generates and registers one key per thread through node 0 (one admin
  // sequence, so one node), then waits until every node knows them.
  ::testing::AssertionResult register_clients(int threads) {
    const crypto::PrivateKey admin = cluster_.admin_key();
    auto c = make_client(cluster_.api_port(0));
    c->set_keep_alive(false);
    for (int t = 0; t < threads; ++t) {
      signers_.push_back(Signer::generate("cluster-client-" + std::to_string(t)));
      auto ok = register_key(*c, admin, signers_.back().key.public_key(), signers_.back().issuer);
      if (!ok) return ok;
    }
    auto h = cluster_.head(0);
    if (!h) return ::testing::AssertionFailure() << "node 0 does not answer";
    std::vector<size_t> all;
    for (size_t i = 0; i < cluster_.size(); ++i) all.push_back(i);
    return cluster_.wait_converged(all, h->log_size, std::chrono::seconds(20));
  }

  void start() {
    stop_ = false;
    for (size_t t = 0; t < signers_.size(); ++t) {
      threads_.emplace_back([this, t] { client_loop(static_cast<int>(t)); });
    }
  }
  // Lets each thread finish its request (bounded by the read timeout).
  void stop() {
    stop_ = true;
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

  size_t ack_count() const {
    std::lock_guard lock(mu_);
    return acks_.size();
  }
  std::vector<Ack> acks() const {
    std::lock_guard lock(mu_);
    return acks_;
  }
  uint64_t retries() const { return retries_.load(); }
  // "N acks, R retries, latency p50 X ms, max Y ms" for the test's output.
  std::string summary() const {
    std::lock_guard lock(mu_);
    std::vector<double> sorted = latencies_ms_;
    std::sort(sorted.begin(), sorted.end());
    char text[160];
    std::snprintf(text, sizeof text, "%zu acks, %llu retries, latency p50 %.0f ms, max %.0f ms",
                  acks_.size(), static_cast<unsigned long long>(retries_.load()),
                  sorted.empty() ? 0.0 : sorted[sorted.size() / 2],
                  sorted.empty() ? 0.0 : sorted.back());
    return text;
  }
  ::testing::AssertionResult no_unexpected_answers() const {
    std::lock_guard lock(mu_);
    if (unexpected_count_ == 0) return ::testing::AssertionSuccess();
    auto r = ::testing::AssertionFailure() << unexpected_count_ << " unexpected answers, first:";
    for (const auto& u : unexpected_) r << "\n  " << u;
    return r;
  }
  // Lets the load run for `duration`; then at least `min_acks` must have
  // arrived since the call, waiting up to `grace` more for them.
  ::testing::AssertionResult progress_for(Millis duration, size_t min_acks,
                                          Millis grace = std::chrono::seconds(20)) const {
    const size_t before = ack_count();
    std::this_thread::sleep_for(duration);
    const size_t during = ack_count() - before;
    if (during >= min_acks) return ::testing::AssertionSuccess();
    return wait_acks(min_acks - during, grace);
  }
  // Waits until `more` acknowledgements arrived after this call.
  ::testing::AssertionResult wait_acks(size_t more, Millis timeout) const {
    const size_t want = ack_count() + more;
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (ack_count() >= want) return ::testing::AssertionSuccess();
      std::this_thread::sleep_for(Millis(20));
    }
    return ::testing::AssertionFailure() << "only " << ack_count() << " acks of " << want
                                         << " within " << timeout.count() << " ms";
  }

 private:
  void client_loop(int thread) {
    Signer& signer = signers_[static_cast<size_t>(thread)];
    std::mt19937_64 rng(seed_ + static_cast<uint64_t>(thread));
    // Like a real client, a thread steers clear of a node that just failed
    // it (down, paused, cut off) for a while, then tries it again.
    std::vector<Clock::time_point> avoid_until(cluster_.size(), Clock::now());
    size_t node = static_cast<size_t>(thread) % cluster_.size();
    for (uint64_t n = 0; !stop_; ++n) {
      Bytes blob(48);
      for (auto& b : blob) b = static_cast<uint8_t>(rng());
      const Bytes st = signer.sign_json("cluster-" + std::to_string(thread),
                                        {{"thread", thread}, {"n", n}, {"blob", to_hex(blob)}});
      while (!stop_) {
        node = next_node(node, avoid_until);
        if (submit_once(thread, node, st)) break;
        ++retries_;
        avoid_until[node] = Clock::now() + Millis(kLoadAvoidMs);
        std::this_thread::sleep_for(Millis(20));
      }
    }
  }

  // The next node after `node` that is not being avoided (any node when all
  // are).
  size_t next_node(size_t node, const std::vector<Clock::time_point>& avoid_until) const {
    const auto now = Clock::now();
    for (size_t step = 1; step <= cluster_.size(); ++step) {
      const size_t k = (node + step) % cluster_.size();
      if (avoid_until[k] <= now) return k;
    }
    return (node + 1) % cluster_.size();
  }

  // True when the statement got a definitive answer (acknowledged, or an
  // unexpected refusal, which is recorded); false to retry elsewhere.
  bool submit_once(int thread, size_t node, const Bytes& st) {
    httplib::Client c("127.0.0.1", cluster_.api_port(node));
    c.set_connection_timeout(1, 0);
    // A paused or isolated node must not hold a client long; a retry
    // elsewhere with the same bytes is safe.
    c.set_read_timeout(kLoadReadTimeoutS, 0);
    c.set_keep_alive(false);
    const auto sent_at = Clock::now();
    auto res = post_cose(c, st);
    if (!res || res->status == 503) return false;
    const auto latency = Clock::now() - sent_at;
    Json doc = Json::parse(res->body, nullptr, false);
    const std::string status = doc.is_object() ? doc.value("status", "") : "";
    const bool ok = (res->status == 201 && status == "registered") ||
                    (res->status == 200 && status == "already-registered");
    const std::string id = ok ? doc.value("id", "") : "";
    if (!ok || id != to_hex(crypto::sha256(st)) || !doc["index"].is_number_unsigned()) {
      unexpected("node-" + std::to_string(node) + ": HTTP " + std::to_string(res->status) + " " +
                 res->body.substr(0, 300));
      return true;
    }
    std::lock_guard lock(mu_);
    if (acks_.size() >= kLoadAcksMax) {
      ++unexpected_count_;  // a test that needs more should raise the limit
      stop_ = true;
      return true;
    }
    acks_.push_back({id, doc["index"].get<uint64_t>(), st, node, thread});
    latencies_ms_.push_back(std::chrono::duration<double, std::milli>(latency).count());
    return true;
  }

  void unexpected(const std::string& what) {
    std::lock_guard lock(mu_);
    if (unexpected_.size() < kLoadExamplesMax) unexpected_.push_back(what);
    ++unexpected_count_;
  }

  const Cluster& cluster_;
  const uint64_t seed_;
  std::vector<Signer> signers_;
  std::vector<std::thread> threads_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> retries_{0};
  mutable std::mutex mu_;
  std::vector<Ack> acks_;
  std::vector<double> latencies_ms_;  // of each ack, same order
  std::vector<std::string> unexpected_;
  size_t unexpected_count_ = 0;
};

}  // namespace custos::integration
