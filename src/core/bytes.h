// Byte strings and their hex form.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace custos {

using Bytes = std::vector<uint8_t>;
using ByteView = std::span<const uint8_t>;
using Hash256 = std::array<uint8_t, 32>;

// Hash of a SHA-256 output (an entry, block or key id) for unordered
// containers: its bytes are already uniform, so its first eight will do.
struct Hash256Hash {
  size_t operator()(const Hash256& h) const noexcept {
    size_t v;
    std::memcpy(&v, h.data(), sizeof v);
    return v;
  }
};

inline ByteView as_view(std::string_view s) {
  return ByteView(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}
inline std::string_view as_string_view(ByteView b) {
  return std::string_view(reinterpret_cast<const char*>(b.data()), b.size());
}
inline Bytes to_bytes(std::string_view s) {
  return Bytes(s.begin(), s.end());
}

// Lower-case hex.
std::string to_hex(ByteView bytes);
// Accepts upper or lower case; refuses odd lengths and non-hex characters.
Result<Bytes> from_hex(std::string_view hex);
// Exactly 64 hex characters -> 32 bytes.
Result<Hash256> hash_from_hex(std::string_view hex);

// RFC 3986 percent-encoding of a URI query value (unreserved characters kept).
std::string percent_encode(std::string_view text);

std::string base64_encode(ByteView bytes);
Result<Bytes> base64_decode(std::string_view text);

// Big-endian fixed-width integers, used in storage keys so that byte order
// equals numeric order.
void append_be64(Bytes& out, uint64_t value);
uint64_t read_be64(const uint8_t* data);
void append_be32(Bytes& out, uint32_t value);
uint32_t read_be32(const uint8_t* data);

}  // namespace custos
