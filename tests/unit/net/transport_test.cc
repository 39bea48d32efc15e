// Real TCP and TLS on loopback: transports talking to each other, and raw
// clients that misbehave on purpose.
#include "net/transport.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <asio.hpp>
#include <asio/ssl.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "net/certificate.h"
#include "net/frame.h"

namespace custos::net {
namespace {

using Tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kWaitMax{15000};  // generous: the machine is shared

struct Identity {
  crypto::PrivateKey key;
  std::string key_pem;
  std::string certificate_pem;
};

Identity new_identity(const std::string& name) {
  Result<crypto::PrivateKey> key = crypto::PrivateKey::generate(crypto::Algorithm::kEd25519);
  EXPECT_TRUE(key.ok());
  Result<std::string> cert = self_signed_certificate_pem(*key, name, 365);
  EXPECT_TRUE(cert.ok());
  return Identity{*key, key->to_pem(), *cert};
}

// A port nobody uses right now, below Linux's ephemeral range (32768+) so
// that no outgoing connection of another transport can take it as its local
// port between now and the moment the test binds it. Never the same port
// twice in one process.
uint16_t free_port() {
  static std::mutex mu;
  static std::set<uint16_t> handed_out;
  static std::mt19937 rng(std::random_device{}());
  std::lock_guard<std::mutex> lock(mu);
  std::uniform_int_distribution<int> pick(20000, 32000);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    auto port = static_cast<uint16_t>(pick(rng));
    if (handed_out.count(port) != 0) continue;
    asio::io_context io;
    Tcp::acceptor probe(io);
    std::error_code ec;
    probe.open(Tcp::v4(), ec);
    if (!ec) probe.bind(Tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
    if (ec) continue;
    handed_out.insert(port);
    return port;
  }
  ADD_FAILURE() << "no free port found";
  return 0;
}

bool wait_until(const std::function<bool()>& done, milliseconds timeout = kWaitMax) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return done();
}

Bytes text_frame(const std::string& text) {
  return to_bytes(text);
}

// Collects delivered frames; must outlive the transport that feeds it.
class Inbox {
 public:
  Handler handler() {
    return [this](uint32_t from, Bytes frame) {
      std::lock_guard<std::mutex> lock(mu_);
      frames_.emplace_back(from, std::move(frame));
    };
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return frames_.size();
  }
  std::vector<std::pair<uint32_t, Bytes>> frames() const {
    std::lock_guard<std::mutex> lock(mu_);
    return frames_;
  }
  bool wait_for(size_t count) {
    return wait_until([&] { return size() >= count; });
  }
  // The frames from one node, as text, in arrival order.
  std::vector<std::string> texts_from(uint32_t from) const {
    std::vector<std::string> out;
    for (const auto& [index, frame] : frames()) {
      if (index == from) out.emplace_back(as_string_view(frame));
    }
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::pair<uint32_t, Bytes>> frames_;
};

// Keys, certificates and ports of an n-node cluster on loopback.
struct Cluster {
  explicit Cluster(size_t n) {
    for (size_t i = 0; i < n; ++i) {
      ids.push_back(new_identity("custos-node-" + std::to_string(i)));
      keys.push_back(ids.back().key.public_key());
      ports.push_back(free_port());
    }
  }

  TransportConfig config(uint32_t self) const {
    TransportConfig c;
    c.self_index = self;
    c.listen_port = ports[self];
    for (uint32_t i = 0; i < ids.size(); ++i) {
      if (i != self) c.peers.push_back(Peer{i, "127.0.0.1", ports[i]});
    }
    c.key_pem = ids[self].key_pem;
    c.certificate_pem = ids[self].certificate_pem;
    c.node_keys = keys;
    c.reconnect_min_ms = 10;
    c.reconnect_max_ms = 200;
    c.handshake_timeout_ms = 3000;
    return c;
  }

  std::vector<Identity> ids;
  std::vector<crypto::PublicKey> keys;
  std::vector<uint16_t> ports;
};

std::unique_ptr<Transport> start(TransportConfig config, Inbox& inbox) {
  Result<std::unique_ptr<Transport>> t = Transport::start(std::move(config), inbox.handler());
  EXPECT_TRUE(t.ok()) << t.status().to_string();
  return t.ok() ? std::move(t).value() : nullptr;
}

Transport::PeerStats stats_of(const Transport& t, uint32_t index) {
  for (const auto& s : t.stats()) {
    if (s.index == index) return s;
  }
  ADD_FAILURE() << "no stats for peer " << index;
  return {};
}

bool connected(const Transport& t, uint32_t index) {
  return stats_of(t, index).connected;
}

// A hand-driven client for the attacks: plain TCP or TLS with any key and
// TLS version, every operation bounded by a timeout so a test cannot hang.
class RawClient {
 public:
  explicit RawClient(uint16_t port, int tls_max_version = TLS1_3_VERSION)
      : tls_(asio::ssl::context::tls_client), socket_(io_) {
    SSL_CTX_set_max_proto_version(tls_.native_handle(), tls_max_version);
    tls_.set_verify_mode(asio::ssl::verify_none);
    socket_.connect(Tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }

  // TLS over the connection so far, presenting `id`'s certificate.
  std::error_code handshake(const Identity& id) {
    tls_.use_certificate(asio::buffer(id.certificate_pem), asio::ssl::context::pem);
    tls_.use_private_key(asio::buffer(id.key_pem), asio::ssl::context::pem);
    stream_.emplace(std::move(socket_), tls_);
    return run([&](auto done) { stream_->async_handshake(asio::ssl::stream_base::client, done); });
  }

  // Handshake plus hello; fills `ack` with the listener's ack, or fails.
  std::error_code hello(const Identity& id, Hello hello, std::optional<Hello>* ack = nullptr) {
    if (auto ec = handshake(id)) return ec;
    if (auto ec = write(framed(encode_hello(false, hello)))) return ec;
    Bytes reply;
    if (auto ec = read(kFrameHeaderBytes + kHelloBytes, &reply)) return ec;
    Result<Hello> decoded = decode_hello(true, ByteView(reply).subspan(kFrameHeaderBytes));
    if (!decoded.ok()) return asio::error::invalid_argument;
    if (ack != nullptr) *ack = *decoded;
    return {};
  }

  std::error_code write(ByteView bytes) {
    return run([&](auto done) {
      auto handler = [done](std::error_code ec, size_t) { done(ec); };
      auto buffer = asio::buffer(bytes.data(), bytes.size());
      if (stream_) {
        asio::async_write(*stream_, buffer, handler);
      } else {
        asio::async_write(socket_, buffer, handler);
      }
    });
  }

  // Reads exactly n bytes; the error when the peer closes first.
  std::error_code read(size_t n, Bytes* out) {
    out->assign(n, 0);
    return run([&](auto done) {
      auto handler = [done](std::error_code ec, size_t) { done(ec); };
      if (stream_) {
        asio::async_read(*stream_, asio::buffer(*out), handler);
      } else {
        asio::async_read(socket_, asio::buffer(*out), handler);
      }
    });
  }

  // True when the listener closes the connection within the wait.
  bool closed_by_peer() {
    Bytes sink;
    std::error_code ec = read(1, &sink);
    return ec && ec != asio::error::timed_out;
  }

  static Bytes framed(const Bytes& body) {
    FrameHeader header = encode_frame_header(static_cast<uint32_t>(body.size()));
    Bytes out(header.begin(), header.end());
    out.insert(out.end(), body.begin(), body.end());
    return out;
  }

 private:
  Tcp::socket& lowest() { return stream_ ? stream_->next_layer() : socket_; }

  // Runs one operation to completion, or closes the socket after kWaitMax.
  template <typename Start>
  std::error_code run(Start start) {
    std::optional<std::error_code> result;
    io_.restart();
    start([&result](std::error_code ec) { result = ec; });
    io_.run_for(kWaitMax);
    if (result) return *result;
    std::error_code ignored;
    lowest().close(ignored);
    io_.restart();
    io_.run();  // let the aborted operation finish
    return asio::error::timed_out;
  }

  asio::io_context io_;
  asio::ssl::context tls_;
  Tcp::socket socket_;
  std::optional<asio::ssl::stream<Tcp::socket>> stream_;
};

// ---------------------------------------------------------------------------
// Frames flow

TEST(Transport, ThreeNodesExchangeFramesBothWays) {
  Cluster cluster(3);
  Inbox inboxes[3];
  std::unique_ptr<Transport> nodes[3];
  for (uint32_t i = 0; i < 3; ++i) nodes[i] = start(cluster.config(i), inboxes[i]);
  constexpr int kFramesPerPair = 50;
  for (int k = 0; k < kFramesPerPair; ++k) {
    for (uint32_t from = 0; from < 3; ++from) {
      for (uint32_t to = 0; to < 3; ++to) {
        if (from == to) continue;
        std::string text =
            std::to_string(from) + "->" + std::to_string(to) + " #" + std::to_string(k);
        ASSERT_TRUE(nodes[from]->send(to, text_frame(text)));
      }
    }
  }
  for (uint32_t to = 0; to < 3; ++to) {
    ASSERT_TRUE(inboxes[to].wait_for(2 * kFramesPerPair))
        << "node " << to << " got " << inboxes[to].size();
    for (uint32_t from = 0; from < 3; ++from) {
      if (from == to) continue;
      std::vector<std::string> texts = inboxes[to].texts_from(from);
      ASSERT_EQ(texts.size(), size_t{kFramesPerPair});
      for (int k = 0; k < kFramesPerPair; ++k) {  // in order, none lost
        EXPECT_EQ(texts[k],
                  std::to_string(from) + "->" + std::to_string(to) + " #" + std::to_string(k));
      }
      // The sender counts a write when it completes, which may be after
      // the receiver has the frames.
      EXPECT_TRUE(
          wait_until([&] { return stats_of(*nodes[from], to).frames_sent == kFramesPerPair; }));
      Transport::PeerStats sent = stats_of(*nodes[from], to);
      EXPECT_TRUE(sent.connected);
      EXPECT_EQ(sent.frames_dropped, 0u);
      EXPECT_EQ(stats_of(*nodes[to], from).frames_received, uint64_t{kFramesPerPair});
    }
  }
  EXPECT_EQ(nodes[0]->transport_stats().inbound_handshake_failures, 0u);
}

TEST(Transport, ConcurrentSendersKeepTheirOwnOrder) {
  Cluster cluster(2);
  Inbox inbox0, inbox1;
  auto node0 = start(cluster.config(0), inbox0);
  auto node1 = start(cluster.config(1), inbox1);
  constexpr int kThreads = 4;
  constexpr int kFramesPerThread = 300;
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t) {
    senders.emplace_back([&, t] {
      for (int k = 0; k < kFramesPerThread; ++k) {
        EXPECT_TRUE(node0->send(1, text_frame(std::to_string(t) + ":" + std::to_string(k))));
      }
    });
  }
  for (auto& s : senders) s.join();
  ASSERT_TRUE(inbox1.wait_for(kThreads * kFramesPerThread)) << inbox1.size();
  std::vector<int> next(kThreads, 0);
  for (const std::string& text : inbox1.texts_from(0)) {
    int t = std::stoi(text.substr(0, text.find(':')));
    int k = std::stoi(text.substr(text.find(':') + 1));
    EXPECT_EQ(k, next[t]) << "thread " << t << " frames out of order";
    next[t] = k + 1;
  }
  EXPECT_TRUE(wait_until(
      [&] { return stats_of(*node0, 1).frames_sent == uint64_t{kThreads * kFramesPerThread}; }));
}

TEST(Transport, BroadcastReachesEveryPeer) {
  Cluster cluster(4);
  Inbox inboxes[4];
  std::unique_ptr<Transport> nodes[4];
  for (uint32_t i = 0; i < 4; ++i) nodes[i] = start(cluster.config(i), inboxes[i]);
  nodes[2]->broadcast(text_frame("to all"));
  for (uint32_t i = 0; i < 4; ++i) {
    if (i == 2) continue;
    ASSERT_TRUE(inboxes[i].wait_for(1));
    EXPECT_EQ(inboxes[i].texts_from(2), std::vector<std::string>{"to all"});
  }
  EXPECT_EQ(inboxes[2].size(), 0u);
}

TEST(Transport, FramesAtTheSizeLimitArriveIntactAndLargerOnesAreRefused) {
  Cluster cluster(2);
  Inbox inbox0, inbox1;
  auto node0 = start(cluster.config(0), inbox0);  // default limit: kFrameBytesMax
  auto node1 = start(cluster.config(1), inbox1);
  Bytes largest(kFrameBytesMax);
  for (size_t i = 0; i < largest.size(); ++i) largest[i] = static_cast<uint8_t>(i * 7 + i / 4096);
  Bytes too_large(kFrameBytesMax + 1, 0x55);
  EXPECT_FALSE(node0->send(1, too_large));
  EXPECT_FALSE(node0->send(1, Bytes()));  // length 0 is never a frame
  EXPECT_EQ(stats_of(*node0, 1).frames_dropped, 2u);
  ASSERT_TRUE(node0->send(1, text_frame("before")));
  ASSERT_TRUE(node0->send(1, largest));
  ASSERT_TRUE(node0->send(1, text_frame("after")));
  ASSERT_TRUE(node1->send(0, Bytes(kFrameBytesMax - 1, 0xab)));  // the other direction too
  ASSERT_TRUE(inbox1.wait_for(3));
  auto frames = inbox1.frames();
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].second, text_frame("before"));
  EXPECT_TRUE(frames[1].second == largest) << "the largest frame arrived altered";
  EXPECT_EQ(frames[2].second, text_frame("after"));
  ASSERT_TRUE(inbox0.wait_for(1));
  EXPECT_EQ(inbox0.frames()[0].second, Bytes(kFrameBytesMax - 1, 0xab));
  EXPECT_EQ(stats_of(*node1, 0).bad_frames, 0u);
}

// ---------------------------------------------------------------------------
// Authentication

TEST(Transport, ImpostorWithAnUnlistedKeyDeliversNothing) {
  Cluster cluster(3);
  Inbox inbox0, impostor_inbox;
  auto node0 = start(cluster.config(0), inbox0);
  // The impostor believes it is node 2: same index and address, its own key.
  Identity fake = new_identity("custos-node-2");
  TransportConfig c = cluster.config(2);
  c.key_pem = fake.key_pem;
  c.certificate_pem = fake.certificate_pem;
  c.node_keys[2] = fake.key.public_key();
  auto impostor = start(c, impostor_inbox);
  ASSERT_TRUE(impostor);
  for (int i = 0; i < 20; ++i) impostor->send(0, text_frame("forged"));
  ASSERT_TRUE(wait_until([&] { return stats_of(*impostor, 0).handshake_failures >= 2; }));
  EXPECT_TRUE(wait_until([&] { return node0->transport_stats().inbound_handshake_failures >= 2; }));
  EXPECT_FALSE(connected(*impostor, 0));
  EXPECT_EQ(stats_of(*impostor, 0).frames_sent, 0u);
  EXPECT_EQ(inbox0.size(), 0u);
  // Node 0 dials "node 2" too and refuses the impostor's server key.
  ASSERT_TRUE(wait_until([&] { return stats_of(*node0, 2).handshake_failures >= 1; }));
  EXPECT_FALSE(connected(*node0, 2));
  EXPECT_EQ(impostor_inbox.size(), 0u);
}

TEST(Transport, KeyOfOneNodeClaimingAnotherIndexIsRefused) {
  Cluster cluster(3);
  Inbox inbox0;
  auto node0 = start(cluster.config(0), inbox0);
  // Node 1's genuine key and certificate, but the hello claims node 2.
  RawClient liar(cluster.ports[0]);
  std::optional<Hello> ack;
  std::error_code ec = liar.hello(cluster.ids[1], Hello{2, 0}, &ack);
  EXPECT_TRUE(ec) << "the listener acknowledged a false claim";
  EXPECT_NE(ec, asio::error::timed_out) << "the listener kept the connection open";
  EXPECT_FALSE(ack.has_value());
  ASSERT_TRUE(wait_until([&] { return stats_of(*node0, 1).handshake_failures == 1; }));
  EXPECT_EQ(stats_of(*node0, 2).handshake_failures, 0u);
  EXPECT_EQ(node0->transport_stats().inbound_handshake_failures, 1u);

  // A hello addressed to another node is refused as well.
  RawClient misdialed(cluster.ports[0]);
  EXPECT_TRUE(misdialed.hello(cluster.ids[1], Hello{1, 2}));
  ASSERT_TRUE(wait_until([&] { return stats_of(*node0, 1).handshake_failures == 2; }));

  // The honest claim with the same key is accepted, and its frames arrive.
  RawClient honest(cluster.ports[0]);
  ASSERT_FALSE(honest.hello(cluster.ids[1], Hello{1, 0}, &ack));
  ASSERT_TRUE(ack.has_value());
  EXPECT_EQ(ack->from_index, 0u);
  EXPECT_EQ(ack->to_index, 1u);
  ASSERT_FALSE(honest.write(RawClient::framed(text_frame("hi"))));
  ASSERT_TRUE(inbox0.wait_for(1));
  EXPECT_EQ(inbox0.texts_from(1), std::vector<std::string>{"hi"});
}

TEST(Transport, ServerWithTheWrongKeyIsRefusedByTheDialer) {
  Cluster cluster(3);
  Inbox inbox0, inbox2;
  // Node 0 believes node 1 listens where node 2 does.
  TransportConfig c0 = cluster.config(0);
  c0.peers[0].port = cluster.ports[2];
  auto node0 = start(c0, inbox0);
  auto node2 = start(cluster.config(2), inbox2);
  ASSERT_TRUE(node0->send(1, text_frame("for node 1 only")));
  ASSERT_TRUE(wait_until([&] { return stats_of(*node0, 1).handshake_failures >= 2; }));
  EXPECT_FALSE(connected(*node0, 1));
  EXPECT_EQ(stats_of(*node0, 1).frames_sent, 0u);
  // The real link from 0 to 2 is unaffected, and node 2 got nothing meant for 1.
  ASSERT_TRUE(node0->send(2, text_frame("for node 2")));
  ASSERT_TRUE(inbox2.wait_for(1));
  EXPECT_EQ(inbox2.texts_from(0), std::vector<std::string>{"for node 2"});
}

TEST(Transport, ClientPresentingTheListenersOwnKeyIsRefused) {
  Cluster cluster(2);
  Inbox inbox0;
  auto node0 = start(cluster.config(0), inbox0);
  RawClient mirror(cluster.ports[0]);
  EXPECT_TRUE(mirror.hello(cluster.ids[0], Hello{0, 0}));
  ASSERT_TRUE(wait_until([&] { return node0->transport_stats().inbound_handshake_failures == 1; }));
  EXPECT_EQ(inbox0.size(), 0u);
}

TEST(Transport, Tls12ClientIsRefused) {
  Cluster cluster(2);
  Inbox inbox0;
  auto node0 = start(cluster.config(0), inbox0);
  RawClient old(cluster.ports[0], TLS1_2_VERSION);
  EXPECT_TRUE(old.handshake(cluster.ids[1]));  // a genuine node key does not help
  ASSERT_TRUE(wait_until([&] { return node0->transport_stats().inbound_handshake_failures == 1; }));
  EXPECT_EQ(inbox0.size(), 0u);
}

TEST(Transport, MisconfiguredNodeFailsToStart) {
  Cluster cluster(3);
  Inbox inbox;
  TransportConfig wrong_key = cluster.config(0);
  wrong_key.key_pem = cluster.ids[1].key_pem;  // claims index 0 with node 1's key
  wrong_key.certificate_pem = cluster.ids[1].certificate_pem;
  EXPECT_EQ(Transport::start(wrong_key, inbox.handler()).status().code(),
            ErrorCode::kInvalidArgument);

  TransportConfig wrong_cert = cluster.config(0);
  wrong_cert.certificate_pem = cluster.ids[1].certificate_pem;
  EXPECT_EQ(Transport::start(wrong_cert, inbox.handler()).status().code(),
            ErrorCode::kInvalidArgument);

  TransportConfig bad_cert = cluster.config(0);
  bad_cert.certificate_pem = "not a certificate";
  EXPECT_EQ(Transport::start(bad_cert, inbox.handler()).status().code(), ErrorCode::kMalformed);

  TransportConfig self_peer = cluster.config(0);
  self_peer.peers.push_back(Peer{0, "127.0.0.1", cluster.ports[0]});
  EXPECT_EQ(Transport::start(self_peer, inbox.handler()).status().code(),
            ErrorCode::kInvalidArgument);

  TransportConfig unknown_peer = cluster.config(0);
  unknown_peer.peers.push_back(Peer{3, "127.0.0.1", 1});
  EXPECT_EQ(Transport::start(unknown_peer, inbox.handler()).status().code(),
            ErrorCode::kInvalidArgument);

  TransportConfig small_queue = cluster.config(0);
  small_queue.peer_queue_bytes_max = small_queue.frame_bytes_max - 1;
  EXPECT_EQ(Transport::start(small_queue, inbox.handler()).status().code(),
            ErrorCode::kInvalidArgument);

  TransportConfig host_name = cluster.config(0);
  host_name.listen_host = "localhost";  // the listener wants an IP literal
  EXPECT_EQ(Transport::start(host_name, inbox.handler()).status().code(),
            ErrorCode::kInvalidArgument);

  EXPECT_EQ(Transport::start(cluster.config(0), Handler()).status().code(),
            ErrorCode::kInvalidArgument);
}

TEST(Transport, TakenPortIsAnIoError) {
  Cluster cluster(2);
  Inbox inbox_a, inbox_b;
  auto first = start(cluster.config(0), inbox_a);
  Result<std::unique_ptr<Transport>> second =
      Transport::start(cluster.config(0), inbox_b.handler());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), ErrorCode::kIo);
}

// ---------------------------------------------------------------------------
// Hostile and broken input

TEST(Transport, GarbageAndNonTlsClientsAreDroppedWhileRealPeersDeliver) {
  Cluster cluster(2);
  Inbox inbox0, inbox1;
  TransportConfig c0 = cluster.config(0);
  c0.handshake_timeout_ms = 300;  // for the silent client
  auto node0 = start(c0, inbox0);
  auto node1 = start(cluster.config(1), inbox1);

  RawClient http(cluster.ports[0]);
  ASSERT_FALSE(http.write(as_view("GET / HTTP/1.1\r\nHost: node0\r\n\r\n")));
  EXPECT_TRUE(http.closed_by_peer());

  RawClient noise(cluster.ports[0]);
  Bytes random_bytes(64 * 1024);
  for (size_t i = 0; i < random_bytes.size(); ++i)
    random_bytes[i] = static_cast<uint8_t>(i * 131 + 17);
  noise.write(random_bytes);  // the listener may close before all of it is written
  EXPECT_TRUE(noise.closed_by_peer());

  // A TLS record header announcing a handshake, then silence: cut off by
  // the handshake timeout rather than held forever.
  RawClient silent(cluster.ports[0]);
  ASSERT_FALSE(silent.write(Bytes{0x16, 0x03, 0x01, 0x02, 0x00}));
  EXPECT_TRUE(silent.closed_by_peer());

  ASSERT_TRUE(wait_until([&] { return node0->transport_stats().inbound_handshake_failures >= 3; }));
  ASSERT_TRUE(node1->send(0, text_frame("still here")));
  ASSERT_TRUE(inbox0.wait_for(1));
  EXPECT_EQ(inbox0.texts_from(1), std::vector<std::string>{"still here"});
  EXPECT_EQ(stats_of(*node0, 1).handshake_failures, 0u);  // unattributed
}

TEST(Transport, BadLengthPrefixDropsTheConnectionAndThePeerMayReconnect) {
  Cluster cluster(2);
  Inbox inbox0;
  TransportConfig c0 = cluster.config(0);
  c0.frame_bytes_max = 1024;
  auto node0 = start(c0, inbox0);

  RawClient oversize(cluster.ports[0]);  // stands in for node 1, with its key
  ASSERT_FALSE(oversize.hello(cluster.ids[1], Hello{1, 0}));
  ASSERT_FALSE(oversize.write(RawClient::framed(text_frame("fine"))));
  FrameHeader too_long = encode_frame_header(1025);
  ASSERT_FALSE(oversize.write(too_long));
  EXPECT_TRUE(oversize.closed_by_peer());
  ASSERT_TRUE(wait_until([&] { return stats_of(*node0, 1).bad_frames == 1; }));

  RawClient empty(cluster.ports[0]);
  ASSERT_FALSE(empty.hello(cluster.ids[1], Hello{1, 0}));
  FrameHeader zero = encode_frame_header(0);
  ASSERT_FALSE(empty.write(zero));
  EXPECT_TRUE(empty.closed_by_peer());
  ASSERT_TRUE(wait_until([&] { return stats_of(*node0, 1).bad_frames == 2; }));

  RawClient again(cluster.ports[0]);
  ASSERT_FALSE(again.hello(cluster.ids[1], Hello{1, 0}));
  ASSERT_FALSE(again.write(RawClient::framed(Bytes(1024, 0x11))));  // exactly the limit
  ASSERT_TRUE(inbox0.wait_for(2));
  auto frames = inbox0.frames();
  EXPECT_EQ(frames[0].second, text_frame("fine"));
  EXPECT_EQ(frames[1].second, Bytes(1024, 0x11));
  EXPECT_EQ(stats_of(*node0, 1).frames_received, 2u);
  EXPECT_EQ(stats_of(*node0, 1).handshake_failures, 0u);
}

// ---------------------------------------------------------------------------
// Failures of peers

TEST(Transport, RestartedPeerIsReconnectedAndFramesFlowAgain) {
  Cluster cluster(2);
  Inbox inbox0, inbox1_old, inbox1_new;
  auto node0 = start(cluster.config(0), inbox0);
  auto node1 = start(cluster.config(1), inbox1_old);
  ASSERT_TRUE(node0->send(1, text_frame("one")));
  ASSERT_TRUE(inbox1_old.wait_for(1));
  ASSERT_TRUE(wait_until([&] { return connected(*node0, 1); }));

  node1.reset();
  ASSERT_TRUE(wait_until([&] { return !connected(*node0, 1); }));
  node1 = start(cluster.config(1), inbox1_new);  // same port
  ASSERT_TRUE(node1);
  // Frames sent while the connection was breaking may be lost; keep sending
  // until one gets through, as consensus would.
  ASSERT_TRUE(wait_until([&] {
    node0->send(1, text_frame("two"));
    return inbox1_new.size() > 0;
  }));
  EXPECT_EQ(inbox1_new.texts_from(0)[0], "two");
  ASSERT_TRUE(node1->send(0, text_frame("back")));
  ASSERT_TRUE(wait_until([&] { return inbox0.texts_from(1).size() == 1; }));
  EXPECT_EQ(inbox0.texts_from(1)[0], "back");
  EXPECT_GE(stats_of(*node0, 1).reconnects, 1u);
  EXPECT_TRUE(connected(*node0, 1));
}

TEST(Transport, QueueBoundDropsAndCountsWhilePeerIsDownThenDeliversTheRest) {
  Cluster cluster(3);
  Inbox inbox0, inbox1;
  TransportConfig c0 = cluster.config(0);
  c0.frame_bytes_max = 500;
  c0.peer_queue_frames_max = 10;
  c0.peer_queue_bytes_max = 1000;
  auto node0 = start(c0, inbox0);

  for (int i = 0; i < 10; ++i)
    EXPECT_TRUE(node0->send(1, text_frame("queued " + std::to_string(i))));
  EXPECT_FALSE(node0->send(1, text_frame("no room")));  // frame bound
  EXPECT_EQ(stats_of(*node0, 1).frames_dropped, 1u);

  EXPECT_TRUE(node0->send(2, Bytes(500, 1)));
  EXPECT_TRUE(node0->send(2, Bytes(500, 2)));
  EXPECT_FALSE(node0->send(2, Bytes(1, 3)));  // byte bound
  EXPECT_EQ(stats_of(*node0, 2).frames_dropped, 1u);

  EXPECT_FALSE(node0->send(7, text_frame("nobody")));
  EXPECT_EQ(node0->transport_stats().frames_to_unknown_peers, 1u);

  // Node 0 has found node 1 down (and is backing off) before node 1 starts.
  ASSERT_TRUE(wait_until([&] { return stats_of(*node0, 1).reconnects >= 1; }));
  auto node1 = start(cluster.config(1), inbox1);
  ASSERT_TRUE(inbox1.wait_for(10));
  std::vector<std::string> texts = inbox1.texts_from(0);
  ASSERT_EQ(texts.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(texts[i], "queued " + std::to_string(i));
  ASSERT_TRUE(wait_until([&] { return stats_of(*node0, 1).frames_sent == 10; }));
  EXPECT_EQ(stats_of(*node0, 1).handshake_failures, 0u);  // refused TCP is not a handshake
}

TEST(Transport, DialsToADownPeerBackOff) {
  Cluster cluster(2);
  Inbox inbox0;
  TransportConfig c0 = cluster.config(0);
  c0.reconnect_min_ms = 50;
  c0.reconnect_max_ms = 400;
  auto node0 = start(c0, inbox0);
  std::this_thread::sleep_for(milliseconds(1000));
  // The shortest delays (half of each backoff step) are 25, 50, 100, 200,
  // 200, 200 ms...: 7 redials in a second, 9 allowing for a late reading.
  // Without backoff there would be hundreds.
  uint64_t reconnects = stats_of(*node0, 1).reconnects;
  EXPECT_GE(reconnects, 1u);
  EXPECT_LE(reconnects, 9u);
  EXPECT_FALSE(connected(*node0, 1));
}

TEST(Transport, StuckPeerDoesNotDelayOthers) {
  Cluster cluster(3);
  Inbox inbox0, inbox2;
  // "Node 1" accepts TCP connections (the kernel completes them) and never
  // answers: its TLS handshake can only time out.
  asio::io_context io;
  Tcp::acceptor stuck(io, Tcp::endpoint(asio::ip::make_address("127.0.0.1"), cluster.ports[1]));
  TransportConfig c0 = cluster.config(0);
  c0.handshake_timeout_ms = 200;
  auto node0 = start(c0, inbox0);
  auto node2 = start(cluster.config(2), inbox2);
  auto began = Clock::now();
  for (int i = 0; i < 100; ++i) {
    node0->send(1, text_frame("lost in the void"));
    ASSERT_TRUE(node0->send(2, text_frame("prompt " + std::to_string(i))));
  }
  ASSERT_TRUE(inbox2.wait_for(100));
  EXPECT_LT(Clock::now() - began, milliseconds(5000));
  ASSERT_TRUE(wait_until([&] { return stats_of(*node0, 1).handshake_failures >= 1; }));
  EXPECT_FALSE(connected(*node0, 1));
}

TEST(Transport, DestructionIsPromptWhilePeersAreDownOrStuck) {
  Cluster cluster(4);
  Inbox inbox0;
  asio::io_context io;
  Tcp::acceptor stuck(io, Tcp::endpoint(asio::ip::make_address("127.0.0.1"), cluster.ports[1]));
  TransportConfig c0 = cluster.config(0);
  c0.peers[2].host = "192.0.2.1";  // TEST-NET-1: connects hang, never refused
  auto node0 = start(c0, inbox0);
  for (int i = 0; i < 10; ++i) node0->broadcast(text_frame("x"));
  std::this_thread::sleep_for(milliseconds(300));  // dials are in flight
  auto began = Clock::now();
  node0.reset();
  EXPECT_LT(Clock::now() - began, milliseconds(1000));
}

TEST(Transport, HandlerExceptionsDoNotStopDelivery) {
  Cluster cluster(2);
  Inbox inbox1;
  std::atomic<int> calls{0};
  Result<std::unique_ptr<Transport>> node0 =
      Transport::start(cluster.config(0), [&calls](uint32_t, Bytes) {
        if (calls.fetch_add(1) == 0) throw std::runtime_error("handler bug");
      });
  ASSERT_TRUE(node0.ok());
  auto node1 = start(cluster.config(1), inbox1);
  ASSERT_TRUE(node1->send(0, text_frame("a")));
  ASSERT_TRUE(node1->send(0, text_frame("b")));
  ASSERT_TRUE(wait_until([&] { return calls.load() == 2; }));
}

}  // namespace
}  // namespace custos::net
