// Node-to-node transport: framed messages over mutual TLS 1.3 on TCP.
//
// Contract:
// - Each node dials one outbound connection per peer and uses it only to
//   send; connections it accepts are only read. Each direction between two
//   nodes therefore has its own connection (wire format: net/frame.h).
// - TLS 1.3 only, both sides present a certificate, and authentication is by
//   key pinning: a peer is node i iff its certificate's public key equals
//   node_keys[i] and the certificate's signature verifies under that key. A
//   wrong or unknown key fails the handshake (counted, logged at warn).
// - Delivery is best effort and at most once, in order per connection:
//   frames are dropped (and counted) when the peer's queue is full, when a
//   connection breaks with frames in flight, or when a frame is too big.
//   Consensus retransmits on its own timeouts.
// - A peer that misbehaves on the wire (bad length, garbage) loses its
//   connection; the node keeps running and the peer may reconnect.
// - All network work runs on one internal I/O thread. send(), broadcast(),
//   stats() and listen_port() are thread-safe and never block on the network.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/bytes.h"
#include "core/status.h"
#include "crypto/keys.h"
#include "net/frame.h"

namespace custos::net {

// Outbound queue of one peer: frames and bytes waiting to be written. Enough
// for a few full blocks plus the small consensus messages around them.
inline constexpr size_t kPeerQueueFramesMax = 8192;
inline constexpr size_t kPeerQueueBytesMax = 64 * 1024 * 1024;
// Cluster size bound: node_keys and peers beyond this are refused at start.
inline constexpr size_t kNodesMax = 1024;
// Accepted connections still in their TLS handshake or hello at one time;
// more are closed at once so that unauthenticated clients cannot pile up.
inline constexpr size_t kInboundHandshakesMax = 64;
// Small frames are coalesced into one TLS write up to this many bytes.
inline constexpr size_t kWriteBatchBytesMax = 256 * 1024;
// Warnings logged per second about refused connections that no peer can be
// blamed for (scanners, garbage, unknown keys); the rest are counted and
// summarized, so a flood of them cannot flood the log.
inline constexpr int kAnonymousRefusalWarningsPerSecondMax = 10;
// Longest host name or address accepted for a peer or the listener.
inline constexpr size_t kHostBytesMax = 253;

struct Peer {
  uint32_t index = 0;
  std::string host;  // IP literal or DNS name
  uint16_t port = 0;
};

struct TransportConfig {
  uint32_t self_index = 0;
  std::string listen_host = "127.0.0.1";     // an IP literal ("0.0.0.0" for all)
  uint16_t listen_port = 0;                  // 0: ephemeral (tests); see Transport::listen_port()
  std::vector<Peer> peers;                   // every other node
  std::string key_pem;                       // this node's Ed25519 (or ES256) key, PKCS#8 PEM
  std::string certificate_pem;               // its certificate (net/certificate.h)
  std::vector<crypto::PublicKey> node_keys;  // genesis order: node_keys[i] is node i's key
  size_t frame_bytes_max = kFrameBytesMax;   // largest frame sent or accepted
  size_t peer_queue_frames_max = kPeerQueueFramesMax;
  size_t peer_queue_bytes_max = kPeerQueueBytesMax;
  int reconnect_min_ms = 50, reconnect_max_ms = 2000;  // backoff bounds, with jitter
  int handshake_timeout_ms = 5000;                     // TCP connect + TLS + hello/ack, either side
  int write_timeout_ms = 10000;  // one batch write; longer means the peer is stuck
};

// Called on the transport's I/O thread for every complete frame from an
// authenticated peer. Must not block for long and must not destroy the
// Transport. Exceptions it throws are logged and swallowed.
using Handler = std::function<void(uint32_t from_index, Bytes frame)>;

class Transport {
 public:
  // Validates the config (kInvalidArgument, e.g. the key does not match
  // node_keys[self_index] or the certificate), binds the listener (kIo if the
  // port is taken) and starts dialing every peer.
  static Result<std::unique_ptr<Transport>> start(TransportConfig config, Handler handler);
  // Stops the I/O thread and closes every connection; returns promptly even
  // when peers are down or stuck. Queued frames are discarded.
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Queues `frame` for peer `to_index`; non-blocking. False when dropped:
  // empty frame, frame larger than frame_bytes_max, or queue full (counted
  // in that peer's frames_dropped), or an index that is not a configured
  // peer (counted in frames_to_unknown_peers). Frames queued while
  // disconnected are sent after reconnecting.
  bool send(uint32_t to_index, Bytes frame);
  // send() to every peer.
  void broadcast(const Bytes& frame);
  uint16_t listen_port() const;

  struct PeerStats {
    uint32_t index;
    bool connected;               // outbound connection established (hello acknowledged)
    uint64_t frames_sent;         // written to the outbound connection
    uint64_t frames_received;     // delivered to the handler from this peer
    uint64_t frames_dropped;      // refused by send() or lost with a broken connection
    uint64_t bad_frames;          // inbound connections from this peer dropped for bad framing
    uint64_t handshake_failures;  // outbound, and inbound ones whose key is this peer's
    uint64_t reconnects;          // outbound dial attempts after the first
  };
  // One entry per configured peer, in config order.
  std::vector<PeerStats> stats() const;

  // Totals not attributable to one peer. Inbound connections whose peer is
  // unknown (unknown key, not TLS, TLS 1.2, ...) show up only here.
  struct TransportStats {
    uint64_t connections_accepted;
    uint64_t connections_refused;         // over kInboundHandshakesMax
    uint64_t inbound_handshake_failures;  // every failed inbound handshake, attributed or not
    uint64_t frames_to_unknown_peers;     // send() to an index that is not a configured peer
  };
  TransportStats transport_stats() const;

 private:
  class Impl;
  explicit Transport(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace custos::net
