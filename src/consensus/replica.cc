#include "consensus/replica.h"

namespace custos::consensus {

// Work in progress: the state machine is being written; this stub keeps the
// API compiling for its users.
struct Replica::State {
  Config config;
  Block committed;
  SafetyRules safety;
  State(Config c, Recovered r)
      : config(std::move(c)), committed(std::move(r.committed)), safety(std::move(r.safety)) {}
};

Status validate_config(const Config&) {
  return Status();
}

Recovered initial_recovered(const Block& genesis) {
  Recovered r;
  r.safety.high_qc = genesis_qc(genesis.id());
  r.committed = genesis;
  return r;
}

Replica::Replica(Config config, Recovered recovered, const BlockReader&, PayloadSource)
    : s_(std::make_unique<State>(std::move(config), std::move(recovered))) {}
Replica::~Replica() = default;
Output Replica::start(uint64_t) {
  return {};
}
Output Replica::on_message(NodeIndex, Message, uint64_t) {
  return {};
}
Output Replica::on_timer(uint64_t) {
  return {};
}
Output Replica::on_payload_available(uint64_t) {
  return {};
}
uint64_t Replica::round() const {
  return s_->safety.current_round();
}
const Block& Replica::committed_block() const {
  return s_->committed;
}
NodeIndex Replica::leader(uint64_t round) const {
  return static_cast<NodeIndex>(round % s_->config.validators.size());
}
size_t Replica::pending_blocks() const {
  return 0;
}
const SafetyState& Replica::safety_state() const {
  return s_->safety.state();
}
size_t Replica::validator_count() const {
  return s_->config.validators.size();
}

}  // namespace custos::consensus
