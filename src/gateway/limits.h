// Every limit of the device gateway as a named constant (docs/gateway.md,
// "Limits"). Defaults of command-line options are marked as such; the
// others are fixed.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/limits.h"

namespace custos::gateway::limits {

// --- Messages from devices ---
// A payload is one signed statement; the node refuses more than this anyway.
inline constexpr size_t kMessageBytesMax = custos::limits::kStatementBytesMax;
// The broker drops bigger packets itself (mosquitto.conf max_packet_size),
// so a message between the two limits reaches the gateway and is refused
// with a reason the device can read.
inline constexpr size_t kBrokerPacketBytesMax = 2 * kMessageBytesMax;
inline constexpr size_t kTopicBytesMax = 512;
inline constexpr size_t kTopicSegmentBytesMax = 64;  // site, unit, class, device id
inline constexpr size_t kCorrelationBytesMax = 64;   // MQTT 5 correlation data echoed back
inline constexpr size_t kUserPropertiesMax = 16;     // read from one message

// --- Spool (durable queue between the broker and the nodes) ---
inline constexpr uint64_t kSpoolMessagesMaxDefault = 1'000'000;
inline constexpr uint64_t kSpoolBytesMaxDefault = 1ull << 30;  // 1 GiB of records
// Ingest pauses (disconnects, so the broker queues) above this share of the
// spool and resumes below the low mark; the gap leaves room for what is in
// flight between the broker and the gateway when the pause starts.
inline constexpr double kSpoolPauseFraction = 0.9;
inline constexpr double kSpoolResumeFraction = 0.7;
// Messages read from the broker before one fsync of the spool and the
// PUBACKs that follow it (group commit).
inline constexpr size_t kIngestGroupMessagesMax = 512;
// Spool deletions (records answered) written together; more wait in memory.
inline constexpr size_t kSpoolRemovalsPerWrite = 256;
// MQTT 5 receive maximum the gateway announces: in-flight QoS 1 messages
// from the broker before it must wait for PUBACKs.
inline constexpr int kReceiveMaximum = 1024;

// --- Batches to the node (POST /v1/entries/batch) ---
// As many as a node takes in one request: under load fuller batches make
// fuller consensus blocks, and each block costs every node signatures, a
// synced write and receipts (docs/performance.md: 0.47-0.49 of the signature
// limit with 256, 0.47-0.50 with 1024; latency at half load the same).
inline constexpr size_t kBatchStatementsMaxDefault = custos::limits::kBatchStatementsMax;
inline constexpr size_t kBatchStatementsMax = custos::limits::kBatchStatementsMax;  // node's
inline constexpr size_t kBatchBytesMaxDefault = 1 << 20;
inline constexpr size_t kBatchBytesMax = custos::limits::kHttpBodyBytesMax / 2;
inline constexpr int kBatchWaitMsDefault = 20;  // oldest statement waits at most this
// Batches in flight (one per lane). Under load more batches in flight make
// fuller consensus blocks (docs/performance.md: 8 lanes 0.48-0.51 of the
// signature limit, 4 lanes 0.47-0.50, 2 lanes 0.42-0.45).
inline constexpr int kLanesDefault = 8;
inline constexpr int kLanesMax = 64;
// Statements waiting for their lane; the spool reader blocks above it.
inline constexpr size_t kLaneQueueMax = 4 * kBatchStatementsMax;

// --- Node access ---
inline constexpr size_t kNodesMax = 16;
inline constexpr int kNodeConnectTimeoutMs = 2000;
inline constexpr int kNodeReadTimeoutMs = 35000;  // a batch waits for commit + quorum
inline constexpr int kNodeRetryMsMin = 100;
inline constexpr int kNodeRetryMsMax = 5000;
inline constexpr int kNodeAvoidMs = 5000;  // a failed node is tried last for this long

// --- Key cache ---
inline constexpr size_t kKeyCacheEntriesDefault = 65536;  // shared out among the lanes
inline constexpr int kKeyCacheTtlMsDefault = 60'000;      // a revocation is seen within this
inline constexpr int kUnknownKeyTtlMs = 5'000;            // negative answers are cached shorter

// --- Answers to devices ---
inline constexpr size_t kOutboxMessagesMax = 65536;  // acks/errors waiting for the broker
inline constexpr size_t kProblemDetailBytesMax = 512;

}  // namespace custos::gateway::limits
