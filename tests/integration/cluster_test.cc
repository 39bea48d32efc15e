// A real consortium: four `custos node --config` processes on loopback,
// agreeing through Jolteon over mutual TLS. What these tests hold the nodes
// to:
// - a statement may be submitted to any node, and its receipt bundle, fetched
//   from any other node, verifies offline against the genesis (a quorum of
//   distinct node signatures);
// - with one node killed (follower or leader), paused or cut off, the other
//   three (a quorum) keep committing, and the lagging node then catches up to
//   the byte-identical log (same size, same root, same entries in order);
// - every acknowledged entry is on every node at the index it was
//   acknowledged with, and `custos audit` passes on every data directory;
// - garbage on the peer port costs the node nothing;
// - a bundle with fewer than a quorum of signatures is refused.
//
// Speed: the configs get round_timeout_ms 300 and idle_proposal_ms 100
// (instead of 1000 / 500) so that timeouts and catch-up take seconds.
// Replay: each test prints its seed; CUSTOS_CLUSTER_SEED=<seed> picks the same
// ports, victims and payloads (thread timing still varies). CUSTOS_KEEP_TMP=1
// keeps the consortium directory (node logs in node-i/node.log).
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "integration/cluster_harness.h"
#include "net/certificate.h"
#include "net/frame.h"

namespace custos::integration {
namespace {

using std::chrono::seconds;

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    seed_ = cluster_seed();
    rng_.seed(seed_);
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::printf("[cluster] %s: seed %llu (CUSTOS_CLUSTER_SEED=%llu to replay)\n", info->name(),
                static_cast<unsigned long long>(seed_), static_cast<unsigned long long>(seed_));
    std::fflush(stdout);
    RecordProperty("seed", std::to_string(seed_));
  }
  void TearDown() override {
    if (HasFailure() && cluster_) cluster_->dump_logs();
  }

  ::testing::AssertionResult make_cluster(ClusterOptions options = {}) {
    cluster_ = std::make_unique<Cluster>(tmp_, options, seed_);
    auto ok = cluster_->init(tmp_.path());
    if (!ok) return ok;
    return cluster_->start_all();
  }

  std::vector<size_t> all_nodes() const {
    std::vector<size_t> all;
    for (size_t i = 0; i < cluster_->size(); ++i) all.push_back(i);
    return all;
  }
  size_t pick_node(std::optional<size_t> except = std::nullopt) {
    std::uniform_int_distribution<size_t> d(0, cluster_->size() - 1);
    for (;;) {
      const size_t i = d(rng_);
      if (i != except) return i;
    }
  }
  std::string file(const std::string& name) const { return tmp_ / name; }

  // The bundle for `id` from node `node`; it answers 503 until a quorum of
  // signatures reached it, so this retries for a while.
  ::testing::AssertionResult fetch_receipt(const std::string& id, size_t node, Bytes* out,
                                           Millis timeout = seconds(20)) const {
    const auto deadline = Clock::now() + timeout;
    std::string last = "no answer";
    while (Clock::now() < deadline) {
      auto res = http_get(cluster_->api_port(node), "/v1/entries/" + id + "/receipt");
      if (res && res->status == 200) {
        if (res->get_header_value("Content-Type") != "application/cbor") {
          return ::testing::AssertionFailure()
                 << "receipt Content-Type " << res->get_header_value("Content-Type");
        }
        out->assign(res->body.begin(), res->body.end());
        return ::testing::AssertionSuccess();
      }
      if (res) last = "HTTP " + std::to_string(res->status) + " " + res->body.substr(0, 200);
      std::this_thread::sleep_for(Millis(100));
    }
    return ::testing::AssertionFailure()
           << "no receipt for " << id << " from node-" << node << ": " << last;
  }

  // `custos verify --genesis` on the statement and bundle written to files.
  CommandResult verify_cli(const Bytes& statement, const Bytes& bundle, const std::string& tag) {
    const std::string st = file("verify-" + tag + ".cose");
    const std::string rc = file("verify-" + tag + ".cbor");
    spit(st, as_string(statement));
    spit(rc, as_string(bundle));
    return run_custos(tmp_.path(), {"verify", "--statement", st, "--receipt", rc, "--genesis",
                                    cluster_->genesis_path()});
  }

  // The receipt of `ack`, fetched from `node`, verifies offline.
  ::testing::AssertionResult receipt_verifies(const Ack& ack, size_t node) {
    Bytes bundle;
    auto got = fetch_receipt(ack.id, node, &bundle);
    if (!got) return got;
    CommandResult r = verify_cli(ack.statement, bundle, ack.id.substr(0, 16));
    const std::string want = "leaf " + std::to_string(ack.index) + " of a log";
    if (r.exit_code != 0 || r.out.find(want) == std::string::npos ||
        r.out.find("consortium nodes (quorum 3)") == std::string::npos) {
      return ::testing::AssertionFailure()
             << "custos verify of " << ack.id << " (receipt from node-" << node
             << ", acked by node-" << ack.node << "): exit " << r.exit_code << "\n"
             << r.out << r.err;
    }
    return ::testing::AssertionSuccess();
  }

  // Receipts of up to `count` acks (drawn from the seed) from a node other
  // than the one that acknowledged them (or from `from` when given).
  void check_receipt_sample(const std::vector<Ack>& acks, size_t count,
                            std::optional<size_t> from = std::nullopt) {
    ASSERT_FALSE(acks.empty());
    std::uniform_int_distribution<size_t> pick(0, acks.size() - 1);
    for (size_t k = 0; k < count; ++k) {
      const Ack& a = acks[pick(rng_)];
      const size_t node = from ? *from : (a.node + 1 + k % 3) % cluster_->size();
      EXPECT_TRUE(receipt_verifies(a, node));
    }
  }

  // All nodes hold the same log: same size and root, the same ids in the
  // same order, no id twice, and every acknowledged id at its acknowledged
  // index. A statement abandoned by a stopped client may still commit after
  // a first convergence, so a mismatch is retried a few times.
  ::testing::AssertionResult logs_identical(const std::vector<Ack>& acks, Millis timeout) {
    uint64_t min_size = 0;
    for (const Ack& a : acks) min_size = std::max(min_size, a.index + 1);
    ::testing::AssertionResult result = ::testing::AssertionFailure();
    for (int attempt = 0; attempt < 3; ++attempt) {
      result = cluster_->wait_converged(all_nodes(), min_size, timeout);
      if (!result) return result;
      result = same_entries(acks);
      if (result) return result;
      std::this_thread::sleep_for(Millis(500));
    }
    return result;
  }

  ::testing::AssertionResult same_entries(const std::vector<Ack>& acks) const {
    auto reference = cluster_->entry_ids(0);
    if (!reference) return ::testing::AssertionFailure() << "cannot list node-0's entries";
    for (size_t i = 1; i < cluster_->size(); ++i) {
      auto ids = cluster_->entry_ids(i);
      if (!ids) return ::testing::AssertionFailure() << "cannot list node-" << i << "'s entries";
      if (*ids != *reference) {
        size_t k = 0;
        while (k < ids->size() && k < reference->size() && (*ids)[k] == (*reference)[k]) ++k;
        return ::testing::AssertionFailure()
               << "node-" << i << " lists " << ids->size() << " entries, node-0 "
               << reference->size() << "; first difference at index " << k;
      }
    }
    std::set<std::string> unique(reference->begin(), reference->end());
    if (unique.size() != reference->size()) {
      return ::testing::AssertionFailure() << "an entry appears twice in the log";
    }
    for (const Ack& a : acks) {
      if (a.index >= reference->size() || (*reference)[a.index] != a.id) {
        return ::testing::AssertionFailure() << "acknowledged " << a.id << " (index " << a.index
                                             << ", by node-" << a.node << ") is not there";
      }
    }
    auto head = cluster_->head(0);
    if (!head || head->log_size != reference->size()) {
      return ::testing::AssertionFailure() << "log size changed while listing";
    }
    std::printf("[cluster] all %zu nodes hold the same %zu entries (root %s), %zu acknowledged\n",
                cluster_->size(), reference->size(), head->root.substr(0, 16).c_str(), acks.size());
    return ::testing::AssertionSuccess();
  }

  // Stops every node with SIGTERM (exit 0 expected), then `custos audit` on
  // each data directory; all must pass with the same entries and root.
  void stop_and_audit_all() {
    for (size_t i = 0; i < cluster_->size(); ++i) {
      EXPECT_EQ(cluster_->stop(i), 0) << "node-" << i << " did not stop cleanly";
    }
    std::set<std::pair<uint64_t, std::string>> results;
    for (size_t i = 0; i < cluster_->size(); ++i) {
      CommandResult r =
          run_custos(tmp_.path(), {"audit", "--data-dir", cluster_->data_dir(i), "--json"});
      Json j = Json::parse(r.out, nullptr, false);
      EXPECT_EQ(r.exit_code, 0) << "audit of node-" << i << ": " << r.out << r.err;
      ASSERT_TRUE(j.is_object()) << r.out << r.err;
      EXPECT_TRUE(j.value("ok", false)) << j.dump();
      results.insert({j.value("entries", uint64_t{0}), j.value("root", "")});
    }
    EXPECT_EQ(results.size(), 1u) << "audits disagree on entries/root";
  }

  static std::vector<Ack> slice(const std::vector<Ack>& acks, size_t from, size_t to) {
    to = std::min(to, acks.size());
    from = std::min(from, to);
    return std::vector<Ack>(acks.begin() + static_cast<ptrdiff_t>(from),
                            acks.begin() + static_cast<ptrdiff_t>(to));
  }

  uint64_t log_size_of(size_t i) const {
    auto h = cluster_->head(i);
    return h ? h->log_size : 0;
  }

  TempDir tmp_;
  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  std::unique_ptr<Cluster> cluster_;
};

// ---------------------------------------------------------------------------

TEST_F(ClusterTest, RegistersOnAnyNodeAndReceiptsVerify) {
  ASSERT_TRUE(make_cluster());
  // One client per node, all at once, so the nodes' mempools and forwarding
  // are exercised concurrently; each client's key is registered first.
  constexpr int kPerNode = 3;
  const size_t n = cluster_->size();
  std::vector<Signer> signers;
  {
    auto c = make_client(cluster_->api_port(0));
    c->set_keep_alive(false);
    const crypto::PrivateKey admin = cluster_->admin_key();
    for (size_t i = 0; i < n; ++i) {
      signers.push_back(Signer::generate("device-" + std::to_string(i)));
      ASSERT_TRUE(register_key(*c, admin, signers[i].key.public_key(), signers[i].issuer));
    }
  }
  ASSERT_TRUE(cluster_->wait_converged(all_nodes(), log_size_of(0), seconds(20)));

  std::vector<std::vector<Ack>> acks(n);
  std::vector<std::string> failures(n);
  std::vector<std::thread> clients;
  for (size_t i = 0; i < n; ++i) {
    clients.emplace_back([&, i] {
      for (int k = 0; k < kPerNode; ++k) {
        Bytes st =
            signers[i].sign_json("pump-" + std::to_string(i), {{"event", "start"}, {"k", k}});
        httplib::Client c("127.0.0.1", cluster_->api_port(i));
        c.set_read_timeout(30, 0);
        c.set_keep_alive(false);
        auto res = post_cose(c, st);
        Json doc = res ? Json::parse(res->body, nullptr, false) : Json();
        if (!res || res->status != 201 || !doc.is_object() ||
            doc.value("status", "") != "registered") {
          failures[i] = res ? "HTTP " + std::to_string(res->status) + " " + res->body
                            : "no answer: " + httplib::to_string(res.error());
          return;
        }
        acks[i].push_back({doc.value("id", ""), doc.value("index", uint64_t{0}), st, i, 0});
      }
    });
  }
  for (auto& t : clients) t.join();
  std::vector<Ack> all;
  for (size_t i = 0; i < n; ++i) {
    EXPECT_EQ(failures[i], "") << "submitting to node-" << i;
    EXPECT_EQ(acks[i].size(), static_cast<size_t>(kPerNode));
    all.insert(all.end(), acks[i].begin(), acks[i].end());
  }
  ASSERT_FALSE(HasFailure());

  // Each receipt from the next node over; each statement, byte for byte,
  // from every node.
  for (const Ack& a : all) {
    EXPECT_EQ(a.id, to_hex(crypto::sha256(a.statement)));
    EXPECT_TRUE(receipt_verifies(a, (a.node + 1) % n));
    for (size_t i = 0; i < n; ++i) {
      auto res =
          http_get(cluster_->api_port(i), "/v1/entries/" + a.id, {{"Accept", "application/cose"}});
      ASSERT_TRUE(res && res->status == 200) << "node-" << i << " lacks " << a.id;
      EXPECT_EQ(res->body, as_string(a.statement)) << "node-" << i << " entry " << a.id;
    }
  }
  EXPECT_TRUE(logs_identical(all, seconds(20)));
}

// ---------------------------------------------------------------------------

TEST_F(ClusterTest, SurvivesKillingFollowerThenLeader) {
  ASSERT_TRUE(make_cluster());
  Load load(*cluster_, seed_);
  ASSERT_TRUE(load.register_clients(6));
  load.start();
  ASSERT_TRUE(load.wait_acks(5, seconds(20)));

  // The leader rotates every round; "leader" and "follower" are what
  // /healthz says at the moment of the kill. Each node stays down 2 s
  // (several rotations) so that it has blocks to catch up on.
  auto leader = cluster_->leader();
  ASSERT_TRUE(leader);
  const size_t follower = pick_node(*leader);
  std::printf("[cluster] SIGKILL follower node-%zu (leader node-%zu), %zu acks so far\n", follower,
              *leader, load.ack_count());
  const size_t follower_down_from = load.ack_count();
  EXPECT_EQ(cluster_->kill(follower), 128 + SIGKILL);
  EXPECT_TRUE(load.progress_for(seconds(2), 3)) << "no progress with node-" << follower << " down";
  const size_t follower_down_to = load.ack_count();
  // The others noticed and end its rounds at once (Replica::on_unreachable)
  // instead of waiting out a round timeout each time it would lead.
  const size_t witness = (follower + 1) % cluster_->size();
  const std::string noticed = "consensus: node " + std::to_string(follower) + " is unreachable";
  EXPECT_NE(slurp(cluster_->log_path(witness)).find(noticed), std::string::npos)
      << "node-" << witness << " log:\n"
      << slurp(cluster_->log_path(witness));
  ASSERT_TRUE(cluster_->start(follower));
  EXPECT_TRUE(load.progress_for(seconds(1), 5)) << "no progress after restarting node-" << follower;
  const std::string back = "consensus: node " + std::to_string(follower) + " is reachable again";
  EXPECT_TRUE(
      eventually([&] { return slurp(cluster_->log_path(witness)).find(back) != std::string::npos; },
                 seconds(10), 100))
      << "node-" << witness << " never saw node-" << follower << " back";

  leader = cluster_->leader();
  ASSERT_TRUE(leader);
  std::printf("[cluster] SIGKILL leader node-%zu, %zu acks so far\n", *leader, load.ack_count());
  const size_t leader_down_from = load.ack_count();
  EXPECT_EQ(cluster_->kill(*leader), 128 + SIGKILL);
  EXPECT_TRUE(load.progress_for(seconds(2), 3)) << "no progress with node-" << *leader << " down";
  const size_t leader_down_to = load.ack_count();
  ASSERT_TRUE(cluster_->start(*leader));
  EXPECT_TRUE(load.progress_for(seconds(1), 5)) << "no progress after restarting node-" << *leader;

  load.stop();
  std::printf("[cluster] load: %s\n", load.summary().c_str());
  const std::vector<Ack> acks = load.acks();
  EXPECT_TRUE(load.no_unexpected_answers());
  ASSERT_TRUE(logs_identical(acks, seconds(30)));
  check_receipt_sample(acks, 6);
  // Receipts the restarted nodes serve for entries committed while they
  // were down (they collect the others' signatures when catching up).
  check_receipt_sample(slice(acks, follower_down_from, follower_down_to), 3, follower);
  check_receipt_sample(slice(acks, leader_down_from, leader_down_to), 3, *leader);
  stop_and_audit_all();
}

// ---------------------------------------------------------------------------

TEST_F(ClusterTest, PausedNodeCatchesUp) {
  ASSERT_TRUE(make_cluster());
  Load load(*cluster_, seed_);
  ASSERT_TRUE(load.register_clients(6));
  load.start();
  ASSERT_TRUE(load.wait_acks(5, seconds(20)));

  const size_t paused = pick_node();
  const size_t witness = (paused + 1) % cluster_->size();
  const uint64_t size_at_pause = log_size_of(witness);
  const size_t acks_at_pause = load.ack_count();
  std::printf("[cluster] SIGSTOP node-%zu at log size %llu\n", paused,
              static_cast<unsigned long long>(size_at_pause));
  cluster_->pause(paused);
  // Several round timeouts (300 ms each) while stopped.
  std::this_thread::sleep_for(seconds(5));
  const size_t acks_during = load.ack_count() - acks_at_pause;
  const uint64_t size_before_resume = log_size_of(witness);
  // With one node of four stopped, every fourth round waits for a timeout
  // and a commit takes about a second, so a few acks is what 5 s give.
  EXPECT_GE(acks_during, 3u) << "the three running nodes did not keep committing";
  EXPECT_GT(size_before_resume, size_at_pause);
  cluster_->resume(paused);
  std::printf("[cluster] SIGCONT node-%zu; others at log size %llu (%zu acks while paused)\n",
              paused, static_cast<unsigned long long>(size_before_resume), acks_during);
  EXPECT_TRUE(load.wait_acks(5, seconds(20)));

  load.stop();
  std::printf("[cluster] load: %s\n", load.summary().c_str());
  const std::vector<Ack> acks = load.acks();
  EXPECT_TRUE(load.no_unexpected_answers());
  ASSERT_TRUE(logs_identical(acks, seconds(30)));
  // The paused node serves receipts for what was committed without it.
  const std::vector<Ack> while_paused = slice(acks, acks_at_pause, acks_at_pause + acks_during);
  check_receipt_sample(while_paused, 4, paused);
}

// ---------------------------------------------------------------------------

TEST_F(ClusterTest, IsolatedNodeCatchesUp) {
  ClusterOptions options;
  options.proxied = true;
  ASSERT_TRUE(make_cluster(options));
  Load load(*cluster_, seed_);
  ASSERT_TRUE(load.register_clients(6));
  load.start();
  ASSERT_TRUE(load.wait_acks(5, seconds(20)));

  const size_t isolated = pick_node();
  const size_t witness = (isolated + 1) % cluster_->size();
  std::printf("[cluster] cutting node-%zu off its peers\n", isolated);
  cluster_->cut(isolated);
  // Let whatever was already delivered settle, then the isolated node must
  // stand still while the others go on.
  std::this_thread::sleep_for(seconds(1));
  const uint64_t isolated_size = log_size_of(isolated);
  const uint64_t witness_size = log_size_of(witness);
  const size_t acks_at_cut = load.ack_count();
  std::this_thread::sleep_for(seconds(4));
  const size_t acks_during = load.ack_count() - acks_at_cut;
  EXPECT_GE(acks_during, 3u) << "the three connected nodes did not keep committing";
  EXPECT_GT(log_size_of(witness), witness_size);
  EXPECT_EQ(log_size_of(isolated), isolated_size) << "the isolated node committed alone";
  EXPECT_GT(cluster_->refused_links(isolated), 0u) << "the isolated node never tried to reconnect";
  if (auto h = cluster_->health(isolated); h) {
    const Json& connected = (*h)["consensus"]["connected"];
    for (size_t k = 0; k < cluster_->size(); ++k) {
      if (k == isolated) continue;
      EXPECT_FALSE(connected[k].get<bool>()) << "link to node-" << k;
    }
  } else {
    ADD_FAILURE() << "the isolated node's API does not answer";
  }
  cluster_->heal(isolated);
  std::printf("[cluster] healed node-%zu at log size %llu; others at %llu (%zu acks while cut)\n",
              isolated, static_cast<unsigned long long>(isolated_size),
              static_cast<unsigned long long>(log_size_of(witness)), acks_during);
  EXPECT_TRUE(load.wait_acks(5, seconds(20)));

  load.stop();
  std::printf("[cluster] load: %s\n", load.summary().c_str());
  const std::vector<Ack> acks = load.acks();
  EXPECT_TRUE(load.no_unexpected_answers());
  ASSERT_TRUE(logs_identical(acks, seconds(30)));
  const std::vector<Ack> while_cut = slice(acks, acks_at_cut, acks_at_cut + acks_during);
  check_receipt_sample(while_cut, 4, isolated);
}

// ---------------------------------------------------------------------------
// Raw connections to a node's peer port.

int connect_to(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  timeval tv{10, 0};  // a read never blocks the test for longer
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

bool send_all(int fd, const Bytes& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t w = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (w <= 0) return false;  // the node may already have dropped us
    sent += static_cast<size_t>(w);
  }
  return true;
}

// True when the node closes the connection (EOF or reset) within the socket
// timeout; whatever it sends first (a TLS alert) is read and ignored.
bool closed_by_node(int fd) {
  uint8_t buffer[4096];
  for (;;) {
    ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n > 0) continue;
    if (n == 0) return true;
    if (errno == EINTR) continue;
    return errno != EAGAIN && errno != EWOULDBLOCK;  // EAGAIN: timed out, still open
  }
}

// A TLS 1.3 client on `fd`, with a certificate and key when given.
struct TlsClient {
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;
  ~TlsClient() {
    if (ssl) SSL_free(ssl);
    if (ctx) SSL_CTX_free(ctx);
  }
};

bool tls_setup(TlsClient& t, int fd, const std::string& cert_pem, const std::string& key_pem) {
  t.ctx = SSL_CTX_new(TLS_client_method());
  if (!t.ctx) return false;
  SSL_CTX_set_min_proto_version(t.ctx, TLS1_3_VERSION);
  SSL_CTX_set_verify(t.ctx, SSL_VERIFY_NONE, nullptr);  // the node's key is not what we test
  if (!cert_pem.empty()) {
    BIO* cb = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
    X509* cert = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
    BIO_free(cb);
    BIO* kb = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
    BIO_free(kb);
    const bool ok = cert && key && SSL_CTX_use_certificate(t.ctx, cert) == 1 &&
                    SSL_CTX_use_PrivateKey(t.ctx, key) == 1;
    X509_free(cert);
    EVP_PKEY_free(key);
    if (!ok) return false;
  }
  t.ssl = SSL_new(t.ctx);
  return t.ssl && SSL_set_fd(t.ssl, fd) == 1;
}

bool tls_write(SSL* ssl, const Bytes& bytes) {
  return SSL_write(ssl, bytes.data(), static_cast<int>(bytes.size())) ==
         static_cast<int>(bytes.size());
}

// Reads exactly `n` bytes; false on error, close or timeout.
bool tls_read(SSL* ssl, size_t n, Bytes* out) {
  out->resize(n);
  size_t got = 0;
  while (got < n) {
    int r = SSL_read(ssl, out->data() + got, static_cast<int>(n - got));
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

// True when the TLS session ends (close, alert or reset) before the socket
// timeout.
bool tls_closed_by_node(SSL* ssl) {
  const auto start = Clock::now();
  uint8_t buffer[1024];
  while (SSL_read(ssl, buffer, sizeof buffer) > 0) {
  }
  ERR_clear_error();
  return Clock::now() - start < seconds(9);
}

Bytes framed(const Bytes& body) {
  Bytes out;
  out.reserve(net::kFrameHeaderBytes + body.size());
  for (uint8_t b : net::encode_frame_header(static_cast<uint32_t>(body.size()))) out.push_back(b);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

TEST_F(ClusterTest, GarbageOnPeerPortIsDropped) {
  ASSERT_TRUE(make_cluster());
  Load load(*cluster_, seed_);
  ASSERT_TRUE(load.register_clients(2));
  load.start();
  ASSERT_TRUE(load.wait_acks(3, seconds(20)));

  const size_t victim = pick_node();
  const int port = cluster_->peer_port(victim);
  const size_t acks_before = load.ack_count();
  std::printf("[cluster] garbage on node-%zu's peer port %d\n", victim, port);

  // Connections that never say anything: closed by the handshake timeout.
  std::vector<int> silent;
  for (int i = 0; i < 8; ++i) silent.push_back(connect_to(port));

  {  // Random bytes instead of a TLS ClientHello.
    int fd = connect_to(port);
    ASSERT_GE(fd, 0);
    Bytes junk(4096);
    for (auto& b : junk) b = static_cast<uint8_t>(rng_());
    send_all(fd, junk);
    EXPECT_TRUE(closed_by_node(fd)) << "random bytes";
    ::close(fd);
  }
  {  // A huge length as the first four bytes (a frame header before TLS).
    int fd = connect_to(port);
    ASSERT_GE(fd, 0);
    send_all(fd, Bytes{0xff, 0xff, 0xff, 0xff, 1, 2, 3});
    EXPECT_TRUE(closed_by_node(fd)) << "huge length before TLS";
    ::close(fd);
  }
  {  // A TLS handshake record announcing 65535 bytes that never come in full.
    int fd = connect_to(port);
    ASSERT_GE(fd, 0);
    send_all(fd, Bytes{0x16, 0x03, 0x01, 0xff, 0xff, 0x01, 0x00});
    EXPECT_TRUE(closed_by_node(fd)) << "oversized TLS record";
    ::close(fd);
  }
  {  // A TLS 1.3 client without a certificate: the node requires one.
    int fd = connect_to(port);
    ASSERT_GE(fd, 0);
    TlsClient t;
    ASSERT_TRUE(tls_setup(t, fd, "", ""));
    if (SSL_connect(t.ssl) == 1) {
      // TLS 1.3 lets the client finish first; the node's refusal follows.
      tls_write(t.ssl, framed(net::encode_hello(false, {0, static_cast<uint32_t>(victim)})));
      EXPECT_TRUE(tls_closed_by_node(t.ssl)) << "TLS without a client certificate";
    }
    ERR_clear_error();
    ::close(fd);
  }
  {  // An impostor: a self-made certificate for a key not in the genesis.
    int fd = connect_to(port);
    ASSERT_GE(fd, 0);
    auto key = crypto::PrivateKey::generate(crypto::Algorithm::kEd25519);
    ASSERT_TRUE(key.ok());
    auto cert = net::self_signed_certificate_pem(*key, "node-0", 30);
    ASSERT_TRUE(cert.ok());
    TlsClient t;
    ASSERT_TRUE(tls_setup(t, fd, *cert, key->to_pem()));
    if (SSL_connect(t.ssl) == 1) {
      tls_write(t.ssl, framed(net::encode_hello(false, {0, static_cast<uint32_t>(victim)})));
      EXPECT_TRUE(tls_closed_by_node(t.ssl)) << "unknown key";
    }
    ERR_clear_error();
    ::close(fd);
  }
  {  // An authenticated peer (another node's real key, as a compromised or
     // buggy node would have) that sends a frame header of 4 GiB - 1.
    const size_t other = (victim + 1) % cluster_->size();
    int fd = connect_to(port);
    ASSERT_GE(fd, 0);
    TlsClient t;
    ASSERT_TRUE(tls_setup(t, fd, slurp(cluster_->node_dir(other) + "/node.crt"),
                          slurp(cluster_->node_dir(other) + "/node.key")));
    ASSERT_EQ(SSL_connect(t.ssl), 1) << "handshake as node-" << other;
    const net::Hello hello{static_cast<uint32_t>(other), static_cast<uint32_t>(victim)};
    ASSERT_TRUE(tls_write(t.ssl, framed(net::encode_hello(false, hello))));
    Bytes ack;
    ASSERT_TRUE(tls_read(t.ssl, net::kFrameHeaderBytes + net::kHelloBytes, &ack))
        << "no ack to a valid hello";
    ASSERT_TRUE(tls_write(t.ssl, Bytes{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}));
    EXPECT_TRUE(tls_closed_by_node(t.ssl)) << "huge frame length from an authenticated peer";
    ERR_clear_error();
    ::close(fd);
  }
  for (int fd : silent) {
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(closed_by_node(fd)) << "a silent connection stayed open";
    ::close(fd);
  }

  // The node kept committing, and answers for itself: submissions to it
  // were acknowledged after all this, it is healthy, and its peer links
  // (the one our fake peer displaced included) are back.
  const size_t acks_after_garbage = load.ack_count();
  EXPECT_TRUE(load.wait_acks(5, seconds(20)));
  load.stop();
  std::printf("[cluster] load: %s\n", load.summary().c_str());
  const std::vector<Ack> acks = load.acks();
  EXPECT_TRUE(load.no_unexpected_answers());
  EXPECT_GT(acks_after_garbage, acks_before) << "no progress during the garbage";
  size_t by_victim = 0;
  for (size_t k = acks_after_garbage; k < acks.size(); ++k) by_victim += acks[k].node == victim;
  EXPECT_GT(by_victim, 0u) << "node-" << victim << " acknowledged nothing afterwards";
  auto h = cluster_->health(victim);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->value("status", ""), "ok");
  const auto deadline = Clock::now() + seconds(10);
  bool all_connected = false;
  while (!all_connected && Clock::now() < deadline) {
    auto now = cluster_->health(victim);
    all_connected = now.has_value();
    if (now) {
      for (const auto& c : (*now)["consensus"]["connected"]) all_connected &= c.get<bool>();
    }
    if (!all_connected) std::this_thread::sleep_for(Millis(100));
  }
  EXPECT_TRUE(all_connected) << "node-" << victim << " did not get all its peer links back";
  // Each connection was refused for its own reason, not by accident (the
  // wording is net/transport.cc's; refusal warnings are rate-limited to 10/s,
  // more than the 5 quick ones here).
  const std::string log = slurp(cluster_->log_path(victim));
  size_t refusals = 0;
  for (size_t at = 0; (at = log.find("refused a connection", at)) != std::string::npos; ++at) {
    ++refusals;
  }
  EXPECT_GE(refusals, 5u) << tail(log, kLogTailBytes);
  EXPECT_NE(log.find("frame of 4294967295 bytes exceeds the limit"), std::string::npos)
      << tail(log, kLogTailBytes);
  EXPECT_TRUE(logs_identical(acks, seconds(30)));
}

// ---------------------------------------------------------------------------

TEST_F(ClusterTest, ReceiptBelowQuorumIsRefused) {
  ASSERT_TRUE(make_cluster());
  Signer signer = Signer::generate("device-q");
  {
    auto c = make_client(cluster_->api_port(0));
    c->set_keep_alive(false);
    ASSERT_TRUE(register_key(*c, cluster_->admin_key(), signer.key.public_key(), signer.issuer));
  }
  Bytes st = signer.sign_json("pump-q", {{"event", "stop"}});
  auto c = make_client(cluster_->api_port(0));
  c->set_keep_alive(false);
  Json doc = json_of(post_cose(*c, st));
  ASSERT_EQ(doc.value("status", ""), "registered");
  const std::string id = doc.value("id", "");

  // The node's bundle verifies; it holds at least a quorum of elements.
  Bytes bundle;
  ASSERT_TRUE(fetch_receipt(id, 1, &bundle));
  CommandResult full = verify_cli(st, bundle, "full");
  ASSERT_EQ(full.exit_code, 0) << full.out << full.err;
  auto decoded = cbor::decode(bundle);
  ASSERT_TRUE(decoded.ok()) << decoded.status().to_string();
  ASSERT_TRUE(decoded->is(cbor::Type::kArray));
  const cbor::Array& elements = decoded->as_array();
  ASSERT_GE(elements.size(), 3u);
  ASSERT_LE(elements.size(), 4u);
  auto bundle_of = [](cbor::Array items) { return cbor::encode(cbor::Value::array(items)); };
  const std::string two_of_three =
      "receipt bundle has 2 of 3 required valid signatures from distinct nodes (consortium of 4 "
      "nodes)";

  // Two of them: one short of the quorum.
  CommandResult two = verify_cli(st, bundle_of({elements[0], elements[1]}), "two");
  EXPECT_EQ(two.exit_code, 1) << two.out << two.err;
  EXPECT_NE(two.err.find(two_of_three), std::string::npos) << two.err;

  // Three elements, but one node twice: still two distinct signers.
  CommandResult dup = verify_cli(st, bundle_of({elements[0], elements[1], elements[0]}), "dup");
  EXPECT_EQ(dup.exit_code, 1) << dup.out << dup.err;
  EXPECT_NE(dup.err.find(two_of_three), std::string::npos) << dup.err;
  EXPECT_NE(dup.err.find("duplicate node"), std::string::npos) << dup.err;

  // Three elements, one with a damaged signature.
  const bool tagged = elements[2].is(cbor::Type::kTag);
  cbor::Value sign1 = tagged ? elements[2].tag_content() : elements[2];
  ASSERT_TRUE(sign1.is(cbor::Type::kArray));
  ASSERT_EQ(sign1.as_array().size(), 4u);
  Bytes signature = sign1.as_array()[3].as_bytes();
  ASSERT_FALSE(signature.empty());
  signature.back() ^= 0x01;
  sign1.as_array()[3] = cbor::Value::bytes(signature);
  const cbor::Value damaged = tagged ? cbor::Value::tag(elements[2].tag_number(), sign1) : sign1;
  CommandResult bad = verify_cli(st, bundle_of({elements[0], elements[1], damaged}), "bad");
  EXPECT_EQ(bad.exit_code, 1) << bad.out << bad.err;
  EXPECT_NE(bad.err.find(two_of_three), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("bad signature"), std::string::npos) << bad.err;

  // One element alone.
  CommandResult one = verify_cli(st, bundle_of({elements[0]}), "one");
  EXPECT_EQ(one.exit_code, 1) << one.out << one.err;
  EXPECT_NE(one.err.find("receipt bundle has 1 of 3 required"), std::string::npos) << one.err;
}

}  // namespace
}  // namespace custos::integration
