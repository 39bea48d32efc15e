// Whole-file reads and crash-safe writes.
#pragma once

#include <string>

#include "core/bytes.h"

namespace custos {

inline constexpr size_t kFileBytesMax = 64ull << 20;  // any file custos reads whole

// kNotFound if missing, kTooLarge above max_bytes, kIo otherwise.
Result<Bytes> read_file(const std::string& path, size_t max_bytes = kFileBytesMax);
// Writes to a temporary file, fsyncs, renames over `path`: readers see the old
// or the new content, never a torn one. `mode` applies to new files (0600
// for private keys).
Status write_file_atomic(const std::string& path, ByteView data, unsigned mode = 0644);
inline Status write_file_atomic(const std::string& path, std::string_view text,
                                unsigned mode = 0644) {
  return write_file_atomic(path, as_view(text), mode);
}
bool file_exists(const std::string& path);

}  // namespace custos
