#include "net/transport.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <asio.hpp>
#include <asio/ssl.hpp>
#include <atomic>
#include <chrono>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <utility>

#include "crypto/hash.h"
#include "net/certificate.h"
#include "net/log.h"

namespace custos::net {

namespace {

using Tcp = asio::ip::tcp;
using TlsStream = asio::ssl::stream<Tcp::socket>;

constexpr uint32_t kNoIndex = UINT32_MAX;
// Pause before accepting again after accept() failed (e.g. out of file
// descriptors), so the failure does not spin the I/O thread.
constexpr int kAcceptRetryMs = 100;
// A hello or ack frame with its length prefix.
constexpr size_t kHelloFrameBytes = kFrameHeaderBytes + kHelloBytes;

struct Counters {
  std::atomic<bool> connected{false};
  std::atomic<uint64_t> frames_sent{0};
  std::atomic<uint64_t> frames_received{0};
  std::atomic<uint64_t> frames_dropped{0};
  std::atomic<uint64_t> bad_frames{0};
  std::atomic<uint64_t> handshake_failures{0};
  std::atomic<uint64_t> reconnects{0};
};

// Who the TLS peer is. OpenSSL may call the verify callback several times per
// handshake; the first call decides and later calls repeat the decision.
struct Identity {
  bool decided = false;
  bool accepted = false;
  uint32_t index = kNoIndex;
  std::string refusal;
};

std::string short_kid(const Bytes& spki) {
  Hash256 kid = crypto::sha256(spki);
  return to_hex(ByteView(kid.data(), 8));
}

// The SPKI of the certificate under verification, provided it is validly
// self-signed. Chains are irrelevant: the leaf's key is the identity.
Result<Bytes> leaf_spki(X509_STORE_CTX* store) {
  X509* leaf = X509_STORE_CTX_get0_cert(store);
  if (leaf == nullptr) return error(ErrorCode::kMalformed, "peer sent no certificate");
  unsigned char* der = nullptr;
  int len = i2d_X509(leaf, &der);
  if (len <= 0) return error(ErrorCode::kMalformed, "peer certificate is not encodable");
  Bytes copy(der, der + len);
  OPENSSL_free(der);
  CUSTOS_ASSIGN_OR_RETURN(crypto::PublicKey key, self_signed_certificate_key(copy));
  return key.spki_der();
}

// A verify callback that ignores OpenSSL's chain verdict (there is no CA;
// a self-signed certificate always "fails" it) and pins keys instead:
// `decide` maps the peer's SPKI to its node index or a refusal.
template <typename Decide>
auto pinning_verifier(Identity* identity, Decide decide) {
  return [identity, decide](bool /*preverified*/, asio::ssl::verify_context& context) {
    if (!identity->decided) {
      identity->decided = true;
      Result<Bytes> spki = leaf_spki(context.native_handle());
      Result<uint32_t> index = spki.ok() ? decide(*spki) : Result<uint32_t>(Status(spki.status()));
      if (index.ok()) {
        identity->accepted = true;
        identity->index = *index;
      } else {
        identity->refusal = index.status().message();
      }
    }
    return identity->accepted;
  };
}

// Why a TLS operation failed: our refusal of the peer's certificate says more
// than OpenSSL's "certificate verify failed".
std::string failure_reason(const Identity& identity, const std::error_code& ec, bool timed_out) {
  if (timed_out) return "timed out";
  if (identity.decided && !identity.accepted) return identity.refusal;
  return ec.message();
}

std::string endpoint_text(const Tcp::socket& socket) {
  std::error_code ec;
  Tcp::endpoint ep = socket.remote_endpoint(ec);
  if (ec) return "(unknown address)";
  return ep.address().to_string() + ":" + std::to_string(ep.port());
}

// State shared by both kinds of connection: the TLS stream and a deadline
// that closes it, which aborts whatever operation is pending.
struct Connection {
  Connection(asio::io_context& io, asio::ssl::context& tls, Tcp::socket socket)
      : stream(std::move(socket), tls), deadline(io) {}

  TlsStream stream;
  asio::steady_timer deadline;
  uint64_t deadline_seq = 0;  // a fired timer from an older arm must not close
  bool timed_out = false;
  bool done = false;  // failure reported; later completions are ignored
  Identity identity;
  Bytes hello;  // hello or ack frame in flight (read or written)

  void close() {
    done = true;
    ++deadline_seq;
    deadline.cancel();
    std::error_code ignored;
    stream.lowest_layer().close(ignored);
  }
};

template <typename Conn>
void arm_deadline(const std::shared_ptr<Conn>& conn, int timeout_ms) {
  uint64_t seq = ++conn->deadline_seq;
  conn->deadline.expires_after(std::chrono::milliseconds(timeout_ms));
  conn->deadline.async_wait([conn, seq](std::error_code ec) {
    if (ec || seq != conn->deadline_seq || conn->done) return;
    conn->timed_out = true;
    std::error_code ignored;
    conn->stream.lowest_layer().close(ignored);  // the pending operation reports the failure
  });
}

template <typename Conn>
void disarm_deadline(const std::shared_ptr<Conn>& conn) {
  ++conn->deadline_seq;
  conn->deadline.cancel();
}

Bytes hello_frame(bool is_ack, Hello hello) {
  FrameHeader header = encode_frame_header(static_cast<uint32_t>(kHelloBytes));
  Bytes frame(header.begin(), header.end());
  Bytes body = encode_hello(is_ack, hello);
  frame.insert(frame.end(), body.begin(), body.end());
  return frame;
}

Result<Hello> parse_hello_frame(bool is_ack, const Bytes& frame) {
  FrameHeader header;
  std::copy_n(frame.begin(), kFrameHeaderBytes, header.begin());
  CUSTOS_ASSIGN_OR_RETURN(uint32_t length, decode_frame_header(header, kHelloBytes));
  if (length != kHelloBytes) return error(ErrorCode::kMalformed, "hello frame has a wrong length");
  return decode_hello(is_ack, ByteView(frame).subspan(kFrameHeaderBytes));
}

enum class Stage { kConnect, kHandshake, kEstablished };

// Our connection to one peer, used only to send.
struct Link : Connection {
  Link(asio::io_context& io, asio::ssl::context& tls) : Connection(io, tls, Tcp::socket(io)) {}

  Stage stage = Stage::kConnect;
  bool writing = false;
  size_t batch_frames = 0;   // frames in the write in flight
  Bytes batch;               // small frames with their headers, coalesced
  FrameHeader big_header{};  // or one large frame, written in place
  Bytes big;
  std::array<uint8_t, 64> sink{};  // the listener never sends after the ack
};

// A connection a peer dialed to us, only read.
struct Inbound : Connection {
  Inbound(asio::io_context& io, asio::ssl::context& tls, Tcp::socket socket)
      : Connection(io, tls, std::move(socket)), remote(endpoint_text(stream.next_layer())) {}

  std::string remote;  // for logs
  bool authenticated = false;
  FrameHeader header{};
  Bytes body;
};

// One configured peer: its outbound queue (shared with senders) and the
// connections to and from it (I/O thread only).
struct PeerState {
  PeerState(asio::io_context& io, Peer p, Bytes key)
      : peer(std::move(p)), spki(std::move(key)), retry_timer(io) {}

  const Peer peer;
  const Bytes spki;  // its pinned key
  Counters counters;

  std::mutex mu;  // guards the three fields below
  std::deque<Bytes> queue;
  size_t queue_bytes = 0;
  bool kick_posted = false;

  std::shared_ptr<Link> link;
  std::shared_ptr<Inbound> inbound;  // the latest authenticated one
  asio::steady_timer retry_timer;
  int backoff_ms = 0;
  bool dialed = false;
};

// Caps warnings to kAnonymousRefusalWarningsPerSecondMax; I/O thread only.
class WarningLimiter {
 public:
  // The suffix to log with a warning allowed now, or nullopt to stay quiet.
  std::optional<std::string> allow() {
    auto now = std::chrono::steady_clock::now();
    if (now - window_start_ >= std::chrono::seconds(1)) {
      window_start_ = now;
      in_window_ = 0;
    }
    if (in_window_ >= kAnonymousRefusalWarningsPerSecondMax) {
      ++suppressed_;
      return std::nullopt;
    }
    ++in_window_;
    uint64_t suppressed = std::exchange(suppressed_, 0);
    if (suppressed == 0) return std::string();
    return " (" + std::to_string(suppressed) + " similar warnings suppressed)";
  }

 private:
  std::chrono::steady_clock::time_point window_start_{};
  int in_window_ = 0;
  uint64_t suppressed_ = 0;
};

enum class InboundEnd { kHandshake, kBadFrame, kClosed };

Status check_range(bool ok, const std::string& what) {
  if (ok) return Status();
  return error(ErrorCode::kInvalidArgument, "transport config: " + what);
}

Status check_peers(const TransportConfig& c) {
  std::vector<bool> seen(c.node_keys.size(), false);
  CUSTOS_RETURN_IF_ERROR(check_range(c.peers.size() < c.node_keys.size() + 1, "too many peers"));
  for (const Peer& p : c.peers) {
    std::string who = "peer " + std::to_string(p.index);
    CUSTOS_RETURN_IF_ERROR(check_range(p.index < c.node_keys.size(), who + " has no node key"));
    CUSTOS_RETURN_IF_ERROR(check_range(p.index != c.self_index, who + " is this node"));
    CUSTOS_RETURN_IF_ERROR(check_range(!seen[p.index], who + " is listed twice"));
    seen[p.index] = true;
    CUSTOS_RETURN_IF_ERROR(check_range(!p.host.empty() && p.host.size() <= kHostBytesMax,
                                       who + " needs a host of 1 to 253 bytes"));
    CUSTOS_RETURN_IF_ERROR(check_range(p.port != 0, who + " needs a port"));
  }
  return Status();
}

Status check_limits(const TransportConfig& c) {
  CUSTOS_RETURN_IF_ERROR(
      check_range(c.frame_bytes_max >= 1 && c.frame_bytes_max <= kFrameBytesLimit,
                  "frame_bytes_max must be 1 to 2^32-1"));
  CUSTOS_RETURN_IF_ERROR(check_range(c.peer_queue_frames_max >= 1, "peer_queue_frames_max is 0"));
  CUSTOS_RETURN_IF_ERROR(check_range(c.peer_queue_bytes_max >= c.frame_bytes_max,
                                     "peer_queue_bytes_max must hold one largest frame"));
  CUSTOS_RETURN_IF_ERROR(
      check_range(c.reconnect_min_ms >= 1 && c.reconnect_max_ms >= c.reconnect_min_ms,
                  "need 1 <= reconnect_min_ms <= reconnect_max_ms"));
  CUSTOS_RETURN_IF_ERROR(check_range(c.handshake_timeout_ms >= 1 && c.write_timeout_ms >= 1,
                                     "timeouts must be positive"));
  return Status();
}

// The node's own key and certificate must be node_keys[self_index]'s, so that
// a misconfigured node fails at start instead of being refused by everyone.
Status check_identity(const TransportConfig& c) {
  CUSTOS_ASSIGN_OR_RETURN(crypto::PrivateKey key, crypto::PrivateKey::from_pem(c.key_pem));
  CUSTOS_RETURN_IF_ERROR(
      check_range(key.public_key().spki_der() == c.node_keys[c.self_index].spki_der(),
                  "key_pem is not the key of node " + std::to_string(c.self_index)));
  CUSTOS_ASSIGN_OR_RETURN(Bytes der, certificate_der(c.certificate_pem));
  CUSTOS_ASSIGN_OR_RETURN(crypto::PublicKey cert_key, self_signed_certificate_key(der));
  return check_range(cert_key.spki_der() == key.public_key().spki_der(),
                     "certificate_pem does not certify key_pem");
}

Status check_config(const TransportConfig& c) {
  CUSTOS_RETURN_IF_ERROR(check_range(!c.node_keys.empty() && c.node_keys.size() <= kNodesMax,
                                     "node_keys must hold 1 to 1024 keys"));
  CUSTOS_RETURN_IF_ERROR(
      check_range(c.self_index < c.node_keys.size(), "self_index has no node key"));
  CUSTOS_RETURN_IF_ERROR(check_peers(c));
  CUSTOS_RETURN_IF_ERROR(check_limits(c));
  return check_identity(c);
}

// TLS 1.3 only, our certificate and key, no session resumption: a resumed
// session would skip the certificate, and with it the key pinning.
Status configure_tls(asio::ssl::context& tls, const TransportConfig& c, bool server) {
  SSL_CTX* ctx = tls.native_handle();
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set_num_tickets(ctx, 0) != 1) {
    return error(ErrorCode::kInternal, "cannot restrict TLS to version 1.3");
  }
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  std::error_code ec;
  tls.use_certificate(asio::buffer(c.certificate_pem), asio::ssl::context::pem, ec);
  if (!ec) tls.use_private_key(asio::buffer(c.key_pem), asio::ssl::context::pem, ec);
  if (ec || SSL_CTX_check_private_key(ctx) != 1) {
    return error(ErrorCode::kInvalidArgument,
                 "TLS rejects the node key or certificate: " + ec.message());
  }
  asio::ssl::verify_mode mode = asio::ssl::verify_peer;
  if (server) mode |= asio::ssl::verify_fail_if_no_peer_cert;
  tls.set_verify_mode(mode, ec);
  if (ec) return error(ErrorCode::kInternal, "TLS verify mode: " + ec.message());
  return Status();
}

}  // namespace

class Transport::Impl {
 public:
  Impl(TransportConfig config, Handler handler)
      : config_(std::move(config)),
        handler_(std::move(handler)),
        server_tls_(asio::ssl::context::tls_server),
        client_tls_(asio::ssl::context::tls_client),
        work_(asio::make_work_guard(io_)),
        acceptor_(io_),
        resolver_(io_),
        accept_retry_timer_(io_),
        rng_(std::random_device{}()) {}

  ~Impl() {
    if (!thread_.joinable()) return;
    // Close everything on the I/O thread, then stop it at once: completions
    // of the aborted operations are destroyed with io_, never run.
    asio::post(io_, [this] {
      shutdown();
      io_.stop();
    });
    thread_.join();
  }

  Status init();
  void run_thread();

  bool send(uint32_t to_index, Bytes frame);
  void broadcast(const Bytes& frame);
  uint16_t listen_port() const { return listen_port_; }
  std::vector<PeerStats> stats() const;
  TransportStats transport_stats() const;

 private:
  PeerState* peer_of(uint32_t index) const {
    if (index >= slot_of_.size() || slot_of_[index] < 0) return nullptr;
    return peers_[static_cast<size_t>(slot_of_[index])].get();
  }
  Status open_listener();
  void shutdown();

  // Outbound (dialer) side.
  void dial(PeerState& p);
  void connect(PeerState& p, const std::shared_ptr<Link>& link, const Tcp::endpoint& endpoint);
  void on_connected(PeerState& p, const std::shared_ptr<Link>& link, std::error_code ec);
  void on_client_handshake(PeerState& p, const std::shared_ptr<Link>& link, std::error_code ec);
  void on_ack(PeerState& p, const std::shared_ptr<Link>& link, std::error_code ec);
  void watch_for_close(PeerState& p, const std::shared_ptr<Link>& link);
  void link_failed(PeerState& p, const std::shared_ptr<Link>& link, const std::string& why);
  void schedule_dial(PeerState& p);
  void on_kick(PeerState& p);
  void pump(PeerState& p);
  bool take_batch(PeerState& p, Link& link);
  void on_written(PeerState& p, const std::shared_ptr<Link>& link, std::error_code ec);

  // Inbound (listener) side.
  void accept_next();
  void on_accept(Tcp::socket socket);
  Result<uint32_t> identify(const Bytes& spki) const;
  void on_server_handshake(const std::shared_ptr<Inbound>& conn, std::error_code ec);
  void on_hello(const std::shared_ptr<Inbound>& conn, std::error_code ec);
  void on_ack_written(const std::shared_ptr<Inbound>& conn, std::error_code ec);
  void read_header(const std::shared_ptr<Inbound>& conn);
  void on_header(const std::shared_ptr<Inbound>& conn, std::error_code ec);
  void on_body(const std::shared_ptr<Inbound>& conn, std::error_code ec);
  void inbound_ended(const std::shared_ptr<Inbound>& conn, InboundEnd how, const std::string& why);
  void deliver(uint32_t from_index, Bytes frame);

  const TransportConfig config_;
  const Handler handler_;
  asio::ssl::context server_tls_;
  asio::ssl::context client_tls_;
  // Declared after the TLS contexts and before every I/O object, so it is
  // destroyed after the objects and before the contexts their streams use.
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  Tcp::acceptor acceptor_;
  Tcp::resolver resolver_;
  asio::steady_timer accept_retry_timer_;
  std::vector<Bytes> node_spki_;
  std::vector<int> slot_of_;  // node index -> position in peers_, or -1
  std::vector<std::unique_ptr<PeerState>> peers_;
  std::set<std::shared_ptr<Inbound>> handshaking_;
  std::mt19937_64 rng_;  // backoff jitter, I/O thread only
  WarningLimiter anonymous_warnings_;
  bool stopping_ = false;
  uint16_t listen_port_ = 0;
  std::atomic<uint64_t> accepted_{0};
  std::atomic<uint64_t> refused_{0};
  std::atomic<uint64_t> inbound_handshake_failures_{0};
  std::atomic<uint64_t> unknown_peer_drops_{0};
  std::thread thread_;
};

Status Transport::Impl::init() {
  CUSTOS_RETURN_IF_ERROR(check_config(config_));
  CUSTOS_RETURN_IF_ERROR(configure_tls(server_tls_, config_, /*server=*/true));
  CUSTOS_RETURN_IF_ERROR(configure_tls(client_tls_, config_, /*server=*/false));
  for (const crypto::PublicKey& key : config_.node_keys) node_spki_.push_back(key.spki_der());
  slot_of_.assign(config_.node_keys.size(), -1);
  for (const Peer& peer : config_.peers) {
    slot_of_[peer.index] = static_cast<int>(peers_.size());
    peers_.push_back(std::make_unique<PeerState>(io_, peer, node_spki_[peer.index]));
    peers_.back()->backoff_ms = config_.reconnect_min_ms;
  }
  return open_listener();
}

Status Transport::Impl::open_listener() {
  std::error_code ec;
  asio::ip::address address = asio::ip::make_address(config_.listen_host, ec);
  if (ec) {
    return error(
        ErrorCode::kInvalidArgument,
        "transport config: listen_host must be an IP address, got '" + config_.listen_host + "'");
  }
  Tcp::endpoint endpoint(address, config_.listen_port);
  std::string where = config_.listen_host + ":" + std::to_string(config_.listen_port);
  // SO_REUSEADDR only (not SO_REUSEPORT): a restarted node can bind despite
  // connections in TIME_WAIT, while a second live node on the port fails.
  if (acceptor_.open(endpoint.protocol(), ec) ||
      acceptor_.set_option(Tcp::acceptor::reuse_address(true), ec) ||
      acceptor_.bind(endpoint, ec) ||
      acceptor_.listen(asio::socket_base::max_listen_connections, ec)) {
    return error(ErrorCode::kIo, "cannot listen on " + where + ": " + ec.message());
  }
  listen_port_ = acceptor_.local_endpoint(ec).port();
  if (ec) return error(ErrorCode::kIo, "cannot read the listening port: " + ec.message());
  return Status();
}

void Transport::Impl::run_thread() {
  asio::post(io_, [this] {
    accept_next();
    for (auto& p : peers_) dial(*p);
  });
  thread_ = std::thread([this] {
    for (;;) {
      try {
        io_.run();
        return;
      } catch (const std::exception& e) {
        log::error(std::string("I/O thread: ") + e.what() + "; continuing");
      }
    }
  });
}

void Transport::Impl::shutdown() {
  stopping_ = true;
  std::error_code ignored;
  acceptor_.close(ignored);
  resolver_.cancel();
  accept_retry_timer_.cancel();
  for (auto& p : peers_) {
    p->retry_timer.cancel();
    if (p->link) p->link->close();
    if (p->inbound) p->inbound->close();
  }
  for (const auto& conn : handshaking_) conn->close();
}

// ---------------------------------------------------------------------------
// Sending

bool Transport::Impl::send(uint32_t to_index, Bytes frame) {
  PeerState* p = peer_of(to_index);
  if (p == nullptr) {
    unknown_peer_drops_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  if (frame.empty() || frame.size() > config_.frame_bytes_max) {
    p->counters.frames_dropped.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  bool kick = false;
  {
    std::lock_guard<std::mutex> lock(p->mu);
    if (p->queue.size() >= config_.peer_queue_frames_max ||
        frame.size() > config_.peer_queue_bytes_max - p->queue_bytes) {
      p->counters.frames_dropped.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    p->queue_bytes += frame.size();
    p->queue.push_back(std::move(frame));
    kick = !p->kick_posted;
    p->kick_posted = true;
  }
  // One wake-up per burst of sends, not one per frame.
  if (kick) asio::post(io_, [this, p] { on_kick(*p); });
  return true;
}

void Transport::Impl::broadcast(const Bytes& frame) {
  for (const auto& p : peers_) send(p->peer.index, frame);
}

void Transport::Impl::on_kick(PeerState& p) {
  {
    std::lock_guard<std::mutex> lock(p.mu);
    p.kick_posted = false;
  }
  pump(p);
}

void Transport::Impl::pump(PeerState& p) {
  std::shared_ptr<Link> link = p.link;
  if (stopping_ || !link || link->stage != Stage::kEstablished || link->writing) return;
  if (!take_batch(p, *link)) return;
  link->writing = true;
  arm_deadline(link, config_.write_timeout_ms);
  std::array<asio::const_buffer, 2> buffers;
  if (link->big.empty()) {
    buffers = {asio::buffer(link->batch), asio::const_buffer()};
  } else {
    buffers = {asio::buffer(link->big_header), asio::buffer(link->big)};
  }
  asio::async_write(link->stream, buffers,
                    [this, &p, link](std::error_code ec, size_t) { on_written(p, link, ec); });
}

// Moves the next write out of the queue: one large frame written in place,
// or small frames copied together so that they share TLS records and
// syscalls. False when the queue is empty.
bool Transport::Impl::take_batch(PeerState& p, Link& link) {
  link.batch.clear();
  link.big.clear();
  link.batch_frames = 0;
  std::vector<Bytes> small;
  {
    std::lock_guard<std::mutex> lock(p.mu);
    if (p.queue.empty()) return false;
    if (kFrameHeaderBytes + p.queue.front().size() > kWriteBatchBytesMax) {
      link.big = std::move(p.queue.front());
      p.queue.pop_front();
      p.queue_bytes -= link.big.size();
      link.big_header = encode_frame_header(static_cast<uint32_t>(link.big.size()));
      link.batch_frames = 1;
      return true;
    }
    size_t batch_bytes = 0;
    while (!p.queue.empty() &&
           batch_bytes + kFrameHeaderBytes + p.queue.front().size() <= kWriteBatchBytesMax) {
      batch_bytes += kFrameHeaderBytes + p.queue.front().size();
      p.queue_bytes -= p.queue.front().size();
      small.push_back(std::move(p.queue.front()));
      p.queue.pop_front();
    }
  }
  for (const Bytes& frame : small) {
    FrameHeader header = encode_frame_header(static_cast<uint32_t>(frame.size()));
    link.batch.insert(link.batch.end(), header.begin(), header.end());
    link.batch.insert(link.batch.end(), frame.begin(), frame.end());
  }
  link.batch_frames = small.size();
  return true;
}

void Transport::Impl::on_written(PeerState& p, const std::shared_ptr<Link>& link,
                                 std::error_code ec) {
  if (link != p.link || link->done) return;  // torn down; link_failed counted the loss
  if (ec) {
    link_failed(p, link, failure_reason(link->identity, ec, link->timed_out));
    return;
  }
  link->writing = false;
  disarm_deadline(link);
  p.counters.frames_sent.fetch_add(link->batch_frames, std::memory_order_relaxed);
  pump(p);
}

// ---------------------------------------------------------------------------
// Dialing

void Transport::Impl::dial(PeerState& p) {
  if (stopping_) return;
  if (p.dialed) p.counters.reconnects.fetch_add(1, std::memory_order_relaxed);
  p.dialed = true;
  auto link = std::make_shared<Link>(io_, client_tls_);
  p.link = link;
  link->stream.set_verify_callback(
      pinning_verifier(&link->identity, [&p](const Bytes& spki) -> Result<uint32_t> {
        if (spki == p.spki) return p.peer.index;
        return error(ErrorCode::kUnknownKey, "the server's key (kid " + short_kid(spki) +
                                                 ") is not the key of node " +
                                                 std::to_string(p.peer.index));
      }));
  arm_deadline(link, config_.handshake_timeout_ms);
  std::error_code ec;
  asio::ip::address address = asio::ip::make_address(p.peer.host, ec);
  if (!ec) {
    connect(p, link, Tcp::endpoint(address, p.peer.port));
    return;
  }
  resolver_.async_resolve(
      p.peer.host, std::to_string(p.peer.port),
      [this, &p, link](std::error_code rec, Tcp::resolver::results_type results) {
        if (link != p.link || link->done) return;
        if (rec || results.empty()) {
          link_failed(p, link, "cannot resolve " + p.peer.host + ": " + rec.message());
          return;
        }
        connect(p, link, results.begin()->endpoint());
      });
}

void Transport::Impl::connect(PeerState& p, const std::shared_ptr<Link>& link,
                              const Tcp::endpoint& endpoint) {
  link->stream.lowest_layer().async_connect(
      endpoint, [this, &p, link](std::error_code ec) { on_connected(p, link, ec); });
}

void Transport::Impl::on_connected(PeerState& p, const std::shared_ptr<Link>& link,
                                   std::error_code ec) {
  if (link != p.link || link->done) return;
  if (ec) {
    link_failed(p, link, failure_reason(link->identity, ec, link->timed_out));
    return;
  }
  std::error_code ignored;
  link->stream.lowest_layer().set_option(Tcp::no_delay(true), ignored);
  link->stage = Stage::kHandshake;
  link->stream.async_handshake(
      asio::ssl::stream_base::client,
      [this, &p, link](std::error_code hec) { on_client_handshake(p, link, hec); });
}

void Transport::Impl::on_client_handshake(PeerState& p, const std::shared_ptr<Link>& link,
                                          std::error_code ec) {
  if (link != p.link || link->done) return;
  if (ec) {
    link_failed(p, link, failure_reason(link->identity, ec, link->timed_out));
    return;
  }
  link->hello = hello_frame(/*is_ack=*/false, Hello{config_.self_index, p.peer.index});
  asio::async_write(
      link->stream, asio::buffer(link->hello), [this, &p, link](std::error_code wec, size_t) {
        if (link != p.link || link->done) return;
        if (wec) {
          link_failed(p, link, failure_reason(link->identity, wec, link->timed_out));
          return;
        }
        // The listener refuses after our handshake completes (TLS 1.3 checks the
        // client certificate last); its alert arrives here instead of an ack.
        link->hello.assign(kHelloFrameBytes, 0);
        asio::async_read(link->stream, asio::buffer(link->hello),
                         [this, &p, link](std::error_code rec, size_t) { on_ack(p, link, rec); });
      });
}

void Transport::Impl::on_ack(PeerState& p, const std::shared_ptr<Link>& link, std::error_code ec) {
  if (link != p.link || link->done) return;
  if (ec) {
    link_failed(p, link,
                "no ack from the listener: " + failure_reason(link->identity, ec, link->timed_out));
    return;
  }
  Result<Hello> ack = parse_hello_frame(/*is_ack=*/true, link->hello);
  if (!ack.ok() || ack->from_index != p.peer.index || ack->to_index != config_.self_index) {
    link_failed(p, link, ack.ok() ? "ack names the wrong nodes" : ack.status().message());
    return;
  }
  disarm_deadline(link);
  link->stage = Stage::kEstablished;
  p.backoff_ms = config_.reconnect_min_ms;
  p.counters.connected.store(true);
  log::info("connected to node " + std::to_string(p.peer.index) + " at " + p.peer.host + ":" +
            std::to_string(p.peer.port));
  watch_for_close(p, link);
  pump(p);
}

// The listener never writes after the ack, so any completion of this read
// means the connection is gone (or the peer is not following the protocol).
// Without it a dead peer would be noticed only by a failed write.
void Transport::Impl::watch_for_close(PeerState& p, const std::shared_ptr<Link>& link) {
  link->stream.async_read_some(
      asio::buffer(link->sink), [this, &p, link](std::error_code ec, size_t) {
        if (link != p.link || link->done) return;
        link_failed(
            p, link,
            ec ? failure_reason(link->identity, ec, link->timed_out) : "peer sent unexpected data");
      });
}

void Transport::Impl::link_failed(PeerState& p, const std::shared_ptr<Link>& link,
                                  const std::string& why) {
  link->close();
  p.link.reset();
  p.counters.connected.store(false);
  if (link->writing)
    p.counters.frames_dropped.fetch_add(link->batch_frames, std::memory_order_relaxed);
  std::string who = "node " + std::to_string(p.peer.index) + " at " + p.peer.host + ":" +
                    std::to_string(p.peer.port);
  switch (link->stage) {
    case Stage::kConnect:
      log::debug("cannot connect to " + who + ": " + why);
      break;
    case Stage::kHandshake:
      p.counters.handshake_failures.fetch_add(1, std::memory_order_relaxed);
      log::warn("handshake with " + who + " failed: " + why);
      break;
    case Stage::kEstablished:
      log::info("connection to " + who + " lost: " + why);
      break;
  }
  schedule_dial(p);
}

// Exponential backoff with "equal jitter": a delay drawn from [b/2, b], so
// that nodes restarted together do not dial in lock step.
void Transport::Impl::schedule_dial(PeerState& p) {
  if (stopping_) return;
  int backoff_ms = p.backoff_ms;
  std::uniform_int_distribution<int> jitter(backoff_ms / 2, backoff_ms);
  int delay_ms = std::max(1, jitter(rng_));
  p.backoff_ms = std::min(config_.reconnect_max_ms, backoff_ms > config_.reconnect_max_ms / 2
                                                        ? config_.reconnect_max_ms
                                                        : backoff_ms * 2);
  p.retry_timer.expires_after(std::chrono::milliseconds(delay_ms));
  p.retry_timer.async_wait([this, &p](std::error_code ec) {
    if (!ec && !stopping_) dial(p);
  });
}

// ---------------------------------------------------------------------------
// Listening

void Transport::Impl::accept_next() {
  acceptor_.async_accept([this](std::error_code ec, Tcp::socket socket) {
    if (stopping_) return;
    if (ec) {
      log::warn("accept failed: " + ec.message());
      accept_retry_timer_.expires_after(std::chrono::milliseconds(kAcceptRetryMs));
      accept_retry_timer_.async_wait([this](std::error_code tec) {
        if (!tec && !stopping_) accept_next();
      });
      return;
    }
    on_accept(std::move(socket));
    accept_next();
  });
}

void Transport::Impl::on_accept(Tcp::socket socket) {
  accepted_.fetch_add(1, std::memory_order_relaxed);
  std::error_code ignored;
  if (handshaking_.size() >= kInboundHandshakesMax) {
    refused_.fetch_add(1, std::memory_order_relaxed);
    log::warn("refusing a connection from " + endpoint_text(socket) +
              ": too many handshakes in progress");
    socket.close(ignored);
    return;
  }
  socket.set_option(Tcp::no_delay(true), ignored);
  auto conn = std::make_shared<Inbound>(io_, server_tls_, std::move(socket));
  handshaking_.insert(conn);
  conn->stream.set_verify_callback(
      pinning_verifier(&conn->identity, [this](const Bytes& spki) { return identify(spki); }));
  arm_deadline(conn, config_.handshake_timeout_ms);
  conn->stream.async_handshake(asio::ssl::stream_base::server,
                               [this, conn](std::error_code ec) { on_server_handshake(conn, ec); });
}

Result<uint32_t> Transport::Impl::identify(const Bytes& spki) const {
  auto it = std::find(node_spki_.begin(), node_spki_.end(), spki);
  if (it == node_spki_.end()) {
    return error(ErrorCode::kUnknownKey,
                 "the client's key (kid " + short_kid(spki) + ") is no node's key");
  }
  auto index = static_cast<uint32_t>(it - node_spki_.begin());
  if (index == config_.self_index) {
    return error(ErrorCode::kUnknownKey, "the client presents this node's own key");
  }
  if (peer_of(index) == nullptr) {
    return error(ErrorCode::kUnknownKey,
                 "the client is node " + std::to_string(index) + ", not a configured peer");
  }
  return index;
}

void Transport::Impl::on_server_handshake(const std::shared_ptr<Inbound>& conn,
                                          std::error_code ec) {
  if (conn->done) return;
  if (ec || !conn->identity.accepted) {
    inbound_ended(conn, InboundEnd::kHandshake,
                  failure_reason(conn->identity, ec, conn->timed_out));
    return;
  }
  conn->hello.assign(kHelloFrameBytes, 0);
  asio::async_read(conn->stream, asio::buffer(conn->hello),
                   [this, conn](std::error_code rec, size_t) { on_hello(conn, rec); });
}

void Transport::Impl::on_hello(const std::shared_ptr<Inbound>& conn, std::error_code ec) {
  if (conn->done) return;
  if (ec) {
    inbound_ended(conn, InboundEnd::kHandshake,
                  "no hello: " + failure_reason(conn->identity, ec, conn->timed_out));
    return;
  }
  Result<Hello> hello = parse_hello_frame(/*is_ack=*/false, conn->hello);
  if (!hello.ok()) {
    inbound_ended(conn, InboundEnd::kHandshake, hello.status().message());
    return;
  }
  uint32_t index = conn->identity.index;
  if (hello->from_index != index || hello->to_index != config_.self_index) {
    inbound_ended(conn, InboundEnd::kHandshake,
                  "hello claims node " + std::to_string(hello->from_index) + " dialing node " +
                      std::to_string(hello->to_index) + ", but the key is node " +
                      std::to_string(index) + "'s and this is node " +
                      std::to_string(config_.self_index));
    return;
  }
  conn->hello = hello_frame(/*is_ack=*/true, Hello{config_.self_index, index});
  asio::async_write(conn->stream, asio::buffer(conn->hello),
                    [this, conn](std::error_code wec, size_t) { on_ack_written(conn, wec); });
}

void Transport::Impl::on_ack_written(const std::shared_ptr<Inbound>& conn, std::error_code ec) {
  if (conn->done) return;
  if (ec) {
    inbound_ended(conn, InboundEnd::kHandshake,
                  failure_reason(conn->identity, ec, conn->timed_out));
    return;
  }
  disarm_deadline(conn);
  handshaking_.erase(conn);
  conn->authenticated = true;
  PeerState* p = peer_of(conn->identity.index);
  // One inbound connection per peer: a newer one means the peer restarted or
  // lost the old one without us noticing (half-open), so the old one goes.
  if (p->inbound) p->inbound->close();
  p->inbound = conn;
  log::info("accepted node " + std::to_string(conn->identity.index) + " from " + conn->remote);
  read_header(conn);
}

void Transport::Impl::read_header(const std::shared_ptr<Inbound>& conn) {
  asio::async_read(conn->stream, asio::buffer(conn->header),
                   [this, conn](std::error_code ec, size_t) { on_header(conn, ec); });
}

void Transport::Impl::on_header(const std::shared_ptr<Inbound>& conn, std::error_code ec) {
  if (conn->done) return;
  if (ec) {
    inbound_ended(conn, InboundEnd::kClosed, ec.message());
    return;
  }
  Result<uint32_t> length = decode_frame_header(conn->header, config_.frame_bytes_max);
  if (!length.ok()) {
    inbound_ended(conn, InboundEnd::kBadFrame, length.status().message());
    return;
  }
  conn->body.resize(*length);
  asio::async_read(conn->stream, asio::buffer(conn->body),
                   [this, conn](std::error_code rec, size_t) { on_body(conn, rec); });
}

void Transport::Impl::on_body(const std::shared_ptr<Inbound>& conn, std::error_code ec) {
  if (conn->done) return;
  if (ec) {
    inbound_ended(conn, InboundEnd::kClosed, ec.message());
    return;
  }
  uint32_t from = conn->identity.index;
  peer_of(from)->counters.frames_received.fetch_add(1, std::memory_order_relaxed);
  deliver(from, std::exchange(conn->body, Bytes()));
  if (!conn->done && !stopping_) read_header(conn);
}

void Transport::Impl::deliver(uint32_t from_index, Bytes frame) {
  try {
    handler_(from_index, std::move(frame));
  } catch (const std::exception& e) {
    log::error("frame handler threw: " + std::string(e.what()));
  } catch (...) {
    log::error("frame handler threw a non-exception");
  }
}

void Transport::Impl::inbound_ended(const std::shared_ptr<Inbound>& conn, InboundEnd how,
                                    const std::string& why) {
  conn->close();
  handshaking_.erase(conn);
  PeerState* p = conn->identity.accepted ? peer_of(conn->identity.index) : nullptr;
  if (p != nullptr && p->inbound == conn) p->inbound.reset();
  std::string who =
      (p != nullptr ? "node " + std::to_string(p->peer.index) + " at " : "") + conn->remote;
  switch (how) {
    case InboundEnd::kHandshake:
      inbound_handshake_failures_.fetch_add(1, std::memory_order_relaxed);
      if (p != nullptr) {
        p->counters.handshake_failures.fetch_add(1, std::memory_order_relaxed);
        log::warn("refused a connection from " + who + ": " + why);
      } else if (std::optional<std::string> suffix = anonymous_warnings_.allow()) {
        log::warn("refused a connection from " + who + ": " + why + *suffix);
      }
      break;
    case InboundEnd::kBadFrame:
      if (p != nullptr) p->counters.bad_frames.fetch_add(1, std::memory_order_relaxed);
      log::warn("dropped the connection from " + who + ": " + why);
      break;
    case InboundEnd::kClosed:
      log::info("connection from " + who + " closed: " + why);
      break;
  }
}

// ---------------------------------------------------------------------------
// Statistics and the public face

std::vector<Transport::PeerStats> Transport::Impl::stats() const {
  std::vector<PeerStats> out;
  out.reserve(peers_.size());
  for (const auto& p : peers_) {
    const Counters& c = p->counters;
    out.push_back(PeerStats{p->peer.index, c.connected.load(), c.frames_sent.load(),
                            c.frames_received.load(), c.frames_dropped.load(), c.bad_frames.load(),
                            c.handshake_failures.load(), c.reconnects.load()});
  }
  return out;
}

Transport::TransportStats Transport::Impl::transport_stats() const {
  return TransportStats{accepted_.load(), refused_.load(), inbound_handshake_failures_.load(),
                        unknown_peer_drops_.load()};
}

Result<std::unique_ptr<Transport>> Transport::start(TransportConfig config, Handler handler) {
  if (!handler) return error(ErrorCode::kInvalidArgument, "transport needs a frame handler");
  auto impl = std::make_unique<Impl>(std::move(config), std::move(handler));
  CUSTOS_RETURN_IF_ERROR(impl->init());
  impl->run_thread();
  return std::unique_ptr<Transport>(new Transport(std::move(impl)));
}

Transport::Transport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Transport::~Transport() = default;

bool Transport::send(uint32_t to_index, Bytes frame) {
  return impl_->send(to_index, std::move(frame));
}
void Transport::broadcast(const Bytes& frame) {
  impl_->broadcast(frame);
}
uint16_t Transport::listen_port() const {
  return impl_->listen_port();
}
std::vector<Transport::PeerStats> Transport::stats() const {
  return impl_->stats();
}
Transport::TransportStats Transport::transport_stats() const {
  return impl_->transport_stats();
}

}  // namespace custos::net
