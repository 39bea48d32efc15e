// The simulated network between replica instances.
//
// Contract: every packet is delivered zero, one or two times (loss,
// duplication), each copy after an independent random delay (which reorders
// them), possibly with a few bytes flipped; whether two instances can talk is
// decided by the partition schedule at DELIVERY time, so a partition also cuts
// packets already in flight. All randomness comes from the caller's seeded
// PRNG; delivery goes through the EventQueue. Instances are addressed by
// instance id (Twins share a validator index, not an instance id).
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/bytes.h"
#include "sim/event_queue.h"

namespace custos::sim {

using InstanceId = uint32_t;

// Copies of one packet in flight: the original plus at most one duplicate.
inline constexpr int kCopiesPerPacketMax = 2;
// Bytes flipped in one corrupted packet (1..this many).
inline constexpr int kCorruptedBytesMax = 3;

struct LinkFaults {
  double loss = 0;       // probability a copy is dropped
  double duplicate = 0;  // probability a second copy is sent
  double corrupt = 0;    // probability a copy has bytes flipped
  uint64_t delay_min_ms = 1;
  uint64_t delay_max_ms = 50;
  double long_delay = 0;  // probability a copy takes up to long_delay_max_ms
  uint64_t long_delay_max_ms = 2'000;
};

// From from_ms on, instances talk only within their group; an instance not
// listed in any group is isolated. No groups = fully connected.
struct PartitionPhase {
  uint64_t from_ms = 0;
  std::vector<std::vector<InstanceId>> groups;
};

struct Packet {
  enum class Kind { kConsensus, kItem };
  Kind kind = Kind::kConsensus;
  Bytes bytes;
  bool corrupted = false;  // set by the network when it flipped bytes
};

struct NetworkStats {
  uint64_t sent = 0;
  uint64_t delivered = 0;
  uint64_t lost = 0;
  uint64_t duplicated = 0;
  uint64_t corrupted = 0;
  uint64_t partitioned = 0;  // dropped at delivery by the partition schedule
};

class Network {
 public:
  using Deliver = std::function<void(InstanceId from, InstanceId to, const Packet& packet)>;

  Network(EventQueue& queue, std::mt19937_64& rng, size_t instance_count, Deliver deliver);

  void set_faults(const LinkFaults& faults) { faults_ = faults; }
  const LinkFaults& faults() const { return faults_; }
  // Phases sorted by from_ms (asserted: the scenario builds them).
  void set_partitions(std::vector<PartitionPhase> phases);
  // Whether a and b can talk now.
  bool connected(InstanceId a, InstanceId b) const;

  void send(InstanceId from, InstanceId to, const Packet& packet);
  const NetworkStats& stats() const { return stats_; }

 private:
  const PartitionPhase* current_phase() const;
  uint64_t draw_delay_ms();
  void corrupt(Bytes& bytes);

  EventQueue& queue_;
  std::mt19937_64& rng_;
  size_t instance_count_;
  Deliver deliver_;
  LinkFaults faults_;
  std::vector<PartitionPhase> phases_;
  NetworkStats stats_;
};

}  // namespace custos::sim
