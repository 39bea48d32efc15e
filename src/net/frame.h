// Wire format of node-to-node connections, inside TLS 1.3.
//
// Every message is a frame: a 4-byte big-endian length, then that many bytes
// (1 <= length <= the configured frame_bytes_max; 0 is never valid).
//
// A connection carries frames one way only, from the node that dialed to the
// node that listens. Before any application frame:
//   dialer   -> listener  hello frame: kHelloMagic, from_index, to_index
//   listener -> dialer    ack frame:   kAckMagic,   from_index, to_index
// (indices 4-byte big-endian, so both frames are kHelloBytes long). The
// listener checks that `from` is the index its TLS peer's key belongs to and
// `to` is itself; a node configured with another node's key, or dialing the
// wrong address, is refused instead of being believed. The dialer sends
// application frames only after the ack, so frames are never written into a
// connection the listener is about to refuse. Pure functions, thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "core/bytes.h"
#include "core/status.h"

namespace custos::net {

inline constexpr size_t kFrameHeaderBytes = 4;
// Default largest frame: a 16 MiB consensus block of statements plus its
// encoding and signatures must fit with room to spare.
inline constexpr size_t kFrameBytesMax = 32 * 1024 * 1024;
// The length field is 32 bits; no configuration may exceed it.
inline constexpr size_t kFrameBytesLimit = 0xffffffffu;

using FrameHeader = std::array<uint8_t, kFrameHeaderBytes>;

FrameHeader encode_frame_header(uint32_t length);
// The length of the frame, or kMalformed if it is 0 (never valid) and
// kTooLarge if it exceeds frame_bytes_max.
Result<uint32_t> decode_frame_header(const FrameHeader& header, size_t frame_bytes_max);

inline constexpr size_t kHelloBytes = 16;
inline constexpr std::array<uint8_t, 8> kHelloMagic = {'c', 'u', 's', 't', 'o', 's', 'H', '1'};
inline constexpr std::array<uint8_t, 8> kAckMagic = {'c', 'u', 's', 't', 'o', 's', 'A', '1'};

struct Hello {
  uint32_t from_index = 0;
  uint32_t to_index = 0;
};

// The frame body (no length prefix) of a hello (is_ack false) or an ack.
Bytes encode_hello(bool is_ack, Hello hello);
// kMalformed unless `body` is exactly a hello (or ack, per is_ack).
Result<Hello> decode_hello(bool is_ack, ByteView body);

}  // namespace custos::net
