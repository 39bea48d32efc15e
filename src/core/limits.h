// Every limit that bounds what custos accepts or holds, in one place, so the
// numbers are easy to find, document (docs/api.md, docs/formats.md) and test.
#pragma once

#include <cstddef>
#include <cstdint>

namespace custos::limits {

// --- Statements (COSE_Sign1) ---
inline constexpr size_t kStatementBytesMax = 64 * 1024;       // one signed statement
inline constexpr size_t kProtectedHeaderBytesMax = 2 * 1024;  // encoded protected header
inline constexpr size_t kUnprotectedHeaderEntriesMax = 16;
inline constexpr size_t kTextFieldBytesMax = 256;   // iss, sub, content type
inline constexpr size_t kCborDepthMax = 16;         // nesting of arrays/maps/tags
inline constexpr size_t kCborItemsMax = 16 * 1024;  // data items in one decoded value

// --- Receipts ---
inline constexpr size_t kReceiptBytesMax = 8 * 1024;
inline constexpr size_t kProofHashesMax = 64;  // a 2^64-leaf tree needs at most 64

// --- HTTP API ---
inline constexpr size_t kHttpBodyBytesMax = 8 * 1024 * 1024;  // batch of statements
inline constexpr size_t kBatchStatementsMax = 1024;           // statements in one batch request
inline constexpr int kHttpReadTimeoutMs = 5000;               // slow clients are cut off
inline constexpr int kHttpWriteTimeoutMs = 5000;
inline constexpr int kHttpKeepAliveIdleS = 5;     // idle keep-alive connection closed after
inline constexpr size_t kHttpWorkerThreads = 64;  // concurrent connections served
inline constexpr size_t kHttpPendingConnectionsMax = 1024;  // accepted, waiting for a worker
inline constexpr size_t kQueryPageEntriesMax = 1000;
inline constexpr size_t kQueryPageEntriesDefault = 100;

// --- Sequencer / blocks ---
inline constexpr size_t kPendingStatementsMax = 65536;  // admitted, not yet in a block
inline constexpr size_t kBlockEntriesMax = 4096;
inline constexpr size_t kBlockBytesMax = 16 * 1024 * 1024;
inline constexpr int kBlockIntervalMsDefault = 5;     // longest a statement waits for its block
inline constexpr int kRegistrationTimeoutMs = 30000;  // client gives up waiting for durability

}  // namespace custos::limits
