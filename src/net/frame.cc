#include "net/frame.h"

#include <algorithm>
#include <string>

namespace custos::net {

namespace {

void put_be32(uint8_t* out, uint32_t value) {
  out[0] = static_cast<uint8_t>(value >> 24);
  out[1] = static_cast<uint8_t>(value >> 16);
  out[2] = static_cast<uint8_t>(value >> 8);
  out[3] = static_cast<uint8_t>(value);
}

uint32_t get_be32(const uint8_t* in) {
  return (uint32_t{in[0]} << 24) | (uint32_t{in[1]} << 16) | (uint32_t{in[2]} << 8) |
         uint32_t{in[3]};
}

}  // namespace

FrameHeader encode_frame_header(uint32_t length) {
  FrameHeader header;
  put_be32(header.data(), length);
  return header;
}

Result<uint32_t> decode_frame_header(const FrameHeader& header, size_t frame_bytes_max) {
  uint32_t length = get_be32(header.data());
  if (length == 0) return error(ErrorCode::kMalformed, "frame of length 0");
  if (length > frame_bytes_max) {
    return error(ErrorCode::kTooLarge, "frame of " + std::to_string(length) +
                                           " bytes exceeds the limit of " +
                                           std::to_string(frame_bytes_max));
  }
  return length;
}

Bytes encode_hello(bool is_ack, Hello hello) {
  const auto& magic = is_ack ? kAckMagic : kHelloMagic;
  Bytes body(kHelloBytes);
  std::copy(magic.begin(), magic.end(), body.begin());
  put_be32(body.data() + 8, hello.from_index);
  put_be32(body.data() + 12, hello.to_index);
  return body;
}

Result<Hello> decode_hello(bool is_ack, ByteView body) {
  const auto& magic = is_ack ? kAckMagic : kHelloMagic;
  if (body.size() != kHelloBytes || !std::equal(magic.begin(), magic.end(), body.begin())) {
    return error(ErrorCode::kMalformed,
                 is_ack ? "expected a custos-net ack frame" : "expected a custos-net hello frame");
  }
  return Hello{get_be32(body.data() + 8), get_be32(body.data() + 12)};
}

}  // namespace custos::net
