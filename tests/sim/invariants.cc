#include "sim/invariants.h"

#include <algorithm>
#include <cassert>
#include <string>

namespace custos::sim {
namespace {

std::string short_hex(const Hash256& id) {
  return to_hex(ByteView(id.data(), 8));
}

Status violation(std::string message) {
  return error(ErrorCode::kCorruption, "SAFETY VIOLATION: " + message);
}

}  // namespace

void CommitChecker::track(InstanceId instance) {
  chains_[instance] = {genesis_};
}

size_t CommitChecker::length(InstanceId instance) const {
  auto it = chains_.find(instance);
  return it == chains_.end() ? 0 : it->second.size();
}

Status CommitChecker::on_commit(InstanceId instance, const CommitRecord& block) {
  auto it = chains_.find(instance);
  if (it == chains_.end()) return Status();  // not an honest replica
  auto& chain = it->second;
  const CommitRecord& previous = chain.back();
  size_t height = chain.size();
  std::string where =
      "instance " + std::to_string(instance) + " height " + std::to_string(height) + ": ";
  if (block.parent_id != previous.id) {
    return violation(where + "block " + short_hex(block.id) + " has parent " +
                     short_hex(block.parent_id) + " but the previous commit is " +
                     short_hex(previous.id));
  }
  if (block.round <= previous.round) {
    return violation(where + "round " + std::to_string(block.round) + " does not increase over " +
                     std::to_string(previous.round));
  }
  if (height - 1 < reference_.size()) {
    const CommitRecord& reference = reference_[height - 1];
    if (reference.id != block.id) {
      return violation(where + "committed " + short_hex(block.id) + " (round " +
                       std::to_string(block.round) + ") but instance " +
                       std::to_string(reference_by_[height - 1]) + " committed " +
                       short_hex(reference.id) + " (round " + std::to_string(reference.round) +
                       ") at that height");
    }
  } else {
    reference_.push_back(block);
    reference_by_.push_back(instance);
  }
  chain.push_back(block);
  return Status();
}

void CommitChecker::truncate(InstanceId instance, size_t length) {
  auto it = chains_.find(instance);
  if (it == chains_.end()) return;
  assert(length >= 1);
  if (it->second.size() > length) it->second.resize(length);
}

Status CommitChecker::check_prefixes() const {
  for (const auto& [instance, chain] : chains_) {
    if (chain.size() - 1 > reference_.size()) {
      return violation("instance " + std::to_string(instance) + " is longer than the reference");
    }
    for (size_t h = 1; h < chain.size(); ++h) {
      if (chain[h].id != reference_[h - 1].id) {
        return violation("instance " + std::to_string(instance) + " is not a prefix at height " +
                         std::to_string(h));
      }
    }
  }
  return Status();
}

void ReceiptChecker::track(InstanceId instance) {
  logs_[instance];
}

void ReceiptChecker::append(InstanceId instance, ByteView item) {
  auto it = logs_.find(instance);
  if (it == logs_.end()) return;
  it->second.items.emplace_back(item.begin(), item.end());
  it->second.tree.append(item);
}

void ReceiptChecker::truncate(InstanceId instance, size_t size) {
  auto it = logs_.find(instance);
  if (it == logs_.end() || it->second.items.size() <= size) return;
  Log& log = it->second;
  log.items.resize(size);
  log.tree = merkle::MemoryTree();
  for (const auto& item : log.items) log.tree.append(item);
}

size_t ReceiptChecker::size(InstanceId instance) const {
  auto it = logs_.find(instance);
  return it == logs_.end() ? 0 : it->second.items.size();
}

const Bytes& ReceiptChecker::item(InstanceId instance, size_t index) const {
  return logs_.at(instance).items.at(index);
}

Status ReceiptChecker::check(std::mt19937_64& rng) {
  for (auto a = logs_.begin(); a != logs_.end(); ++a) {
    for (auto b = std::next(a); b != logs_.end(); ++b) {
      CUSTOS_RETURN_IF_ERROR(check_pair(a->first, a->second, b->first, b->second, rng));
    }
  }
  return Status();
}

Status ReceiptChecker::check_pair(InstanceId a, Log& log_a, InstanceId b, Log& log_b,
                                  std::mt19937_64& rng) {
  uint64_t common = std::min(log_a.items.size(), log_b.items.size());
  if (common == 0) return Status();
  std::string pair = "instances " + std::to_string(a) + " and " + std::to_string(b) + " at size " +
                     std::to_string(common) + ": ";
  auto root_a = merkle::root(log_a.tree, common);
  auto root_b = merkle::root(log_b.tree, common);
  if (!root_a.ok() || !root_b.ok()) return violation(pair + "cannot compute roots");
  if (*root_a != *root_b) {
    return violation(pair + "executed-log roots differ " + short_hex(*root_a) + " vs " +
                     short_hex(*root_b));
  }
  uint64_t index = std::uniform_int_distribution<uint64_t>(0, common - 1)(rng);
  auto proof = merkle::inclusion_proof(log_a.tree, index, common);
  if (!proof.ok()) return violation(pair + "no inclusion proof: " + proof.status().to_string());
  auto implied = merkle::root_from_inclusion_proof(merkle::leaf_hash(log_a.items[index]), index,
                                                   common, *proof);
  if (!implied.ok() || *implied != *root_b) {
    return violation(pair + "receipt for item " + std::to_string(index) +
                     " does not verify against the other replica's root");
  }
  return Status();
}

}  // namespace custos::sim
