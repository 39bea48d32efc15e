#include "sim/network.h"

#include <algorithm>
#include <cassert>
#include <utility>

namespace custos::sim {

Network::Network(EventQueue& queue, std::mt19937_64& rng, size_t instance_count, Deliver deliver)
    : queue_(queue), rng_(rng), instance_count_(instance_count), deliver_(std::move(deliver)) {}

void Network::set_partitions(std::vector<PartitionPhase> phases) {
  assert(std::is_sorted(phases.begin(), phases.end(),
                        [](const auto& a, const auto& b) { return a.from_ms < b.from_ms; }));
  phases_ = std::move(phases);
}

const PartitionPhase* Network::current_phase() const {
  const PartitionPhase* current = nullptr;
  for (const auto& phase : phases_) {
    if (phase.from_ms > queue_.now_ms()) break;
    current = &phase;
  }
  return current;
}

bool Network::connected(InstanceId a, InstanceId b) const {
  const PartitionPhase* phase = current_phase();
  if (phase == nullptr || phase->groups.empty()) return true;
  for (const auto& group : phase->groups) {
    bool has_a = std::find(group.begin(), group.end(), a) != group.end();
    bool has_b = std::find(group.begin(), group.end(), b) != group.end();
    if (has_a && has_b) return true;
  }
  return false;
}

uint64_t Network::draw_delay_ms() {
  std::uniform_real_distribution<double> coin(0, 1);
  if (coin(rng_) < faults_.long_delay) {
    return std::uniform_int_distribution<uint64_t>(faults_.delay_max_ms,
                                                   faults_.long_delay_max_ms)(rng_);
  }
  return std::uniform_int_distribution<uint64_t>(faults_.delay_min_ms, faults_.delay_max_ms)(rng_);
}

void Network::corrupt(Bytes& bytes) {
  if (bytes.empty()) return;
  int flips = std::uniform_int_distribution<int>(1, kCorruptedBytesMax)(rng_);
  for (int i = 0; i < flips; ++i) {
    size_t at = std::uniform_int_distribution<size_t>(0, bytes.size() - 1)(rng_);
    bytes[at] ^= static_cast<uint8_t>(std::uniform_int_distribution<int>(1, 255)(rng_));
  }
}

void Network::send(InstanceId from, InstanceId to, const Packet& packet) {
  assert(from < instance_count_ && to < instance_count_);
  ++stats_.sent;
  std::uniform_real_distribution<double> coin(0, 1);
  int copies = coin(rng_) < faults_.duplicate ? kCopiesPerPacketMax : 1;
  if (copies > 1) ++stats_.duplicated;
  for (int i = 0; i < copies; ++i) {
    if (coin(rng_) < faults_.loss) {
      ++stats_.lost;
      continue;
    }
    Packet copy = packet;
    if (coin(rng_) < faults_.corrupt) {
      corrupt(copy.bytes);
      copy.corrupted = true;
      ++stats_.corrupted;
    }
    queue_.after(draw_delay_ms(), [this, from, to, copy = std::move(copy)] {
      // Partitions cut packets in flight too: decided on arrival.
      if (!connected(from, to)) {
        ++stats_.partitioned;
        return;
      }
      ++stats_.delivered;
      deliver_(from, to, copy);
    });
  }
}

}  // namespace custos::sim
